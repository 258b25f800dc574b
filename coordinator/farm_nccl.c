/*
 * coordinator/farm_nccl.c: the weights' bytes from rank 0 to every rank over NCCL, when every
 * rank of the job has a GPU of its own (DESIGN.md §5: "NCCL among GPU ranks"). The NCCL unique
 * id travels over MPI; the bytes go host → rank 0's GPU → ncclBroadcast → every GPU → host, in
 * pieces through one device buffer, so a large model never needs its size in GPU memory twice.
 * Built when the CUDA backend and NCCL are (VF_HAVE_NCCL); otherwise vf_farm_nccl_available()
 * is false and the caller uses MPI_Bcast. Every CUDA, NCCL and MPI call's result is checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "coordinator/farm.h"

#ifdef VF_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#define NCCL_PIECE ((size_t)64 << 20)   /* bytes per broadcast through the device buffer */

#define CHECK_CUDA(call, err, label)                                                           \
    do {                                                                                       \
        cudaError_t rc_ = (call);                                                              \
        VF_CHECK_(rc_ != cudaSuccess, err, VF_EINTERNAL, label, #call, cudaGetErrorString(rc_)); \
    } while (0)
#define CHECK_NCCL(call, err, label)                                                           \
    do {                                                                                       \
        ncclResult_t rc_ = (call);                                                             \
        VF_CHECK_(rc_ != ncclSuccess, err, VF_EINTERNAL, label, #call, ncclGetErrorString(rc_)); \
    } while (0)

bool vf_farm_nccl_available(void) { return true; }

int vf_farm_nccl_bcast(void *buf, size_t len, int gpu, int rank, int size, struct vf_error *err)
{
    ncclUniqueId id;
    ncclComm_t comm = NULL;
    cudaStream_t stream = NULL;
    void *dev = NULL;
    int rc = VF_OK, ready = 1, all_ready = 0;
    memset(&id, 0, sizeof id);
    size_t piece = len < NCCL_PIECE ? len : NCCL_PIECE;
    /* Each rank's own preparation first; every rank then learns whether all are ready before
     * any enters NCCL, so a rank that failed here (no GPU, no memory, no id) leaves no other
     * waiting forever in MPI_Bcast or ncclCommInitRank. */
    CHECK_CUDA(cudaSetDevice(gpu), err, not_ready);
    CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), err, not_ready);
    CHECK_CUDA(cudaMalloc(&dev, piece ? piece : 1), err, not_ready);
    if (rank == 0)
        CHECK_NCCL(ncclGetUniqueId(&id), err, not_ready);
    goto prepared;
not_ready:
    ready = 0;
prepared:
    VF_CHECK_MPI(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD), err, fail);
    VF_CHECK_MPI(MPI_Allreduce(&ready, &all_ready, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), err,
                 fail);
    if (!ready)
        goto fail;  /* err says why */
    if (!all_ready) {
        vf_error_set(err, VF_EINTERNAL, "another rank could not prepare its GPU (it says why)");
        goto fail;
    }
    CHECK_NCCL(ncclCommInitRank(&comm, size, id, rank), err, fail);
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (rank == 0)
            CHECK_CUDA(cudaMemcpyAsync(dev, (char *)buf + off, n, cudaMemcpyHostToDevice, stream),
                       err, fail);
        CHECK_NCCL(ncclBroadcast(dev, dev, n, ncclChar, 0, comm, stream), err, fail);
        if (rank != 0)
            CHECK_CUDA(cudaMemcpyAsync((char *)buf + off, dev, n, cudaMemcpyDeviceToHost, stream),
                       err, fail);
        CHECK_CUDA(cudaStreamSynchronize(stream), err, fail);
    }
    goto out;
fail:
    rc = err->code;
    vf_error_prefix(err, "rank %d, GPU %d: broadcasting the weights over NCCL (set "
                    "VAEFARM_NCCL=0 to use MPI instead; NCCL_DEBUG=WARN says more)", rank, gpu);
out:
    /* teardown: report, do not mask the first error; after a failure the communicator is
     * aborted (ncclCommDestroy may wait for operations that will never complete) */
    if (comm && rc != VF_OK)
        (void)ncclCommAbort(comm);
    else if (comm && ncclCommDestroy(comm) != ncclSuccess)
        rc = vf_error_set(err, VF_EINTERNAL, "rank %d, GPU %d: ncclCommDestroy failed", rank,
                          gpu);
    if (dev && cudaFree(dev) != cudaSuccess && rc == VF_OK)
        rc = vf_error_set(err, VF_EINTERNAL, "rank %d, GPU %d: cudaFree after the weights' "
                          "broadcast failed", rank, gpu);
    if (stream && cudaStreamDestroy(stream) != cudaSuccess && rc == VF_OK)
        rc = vf_error_set(err, VF_EINTERNAL, "rank %d, GPU %d: cudaStreamDestroy failed", rank,
                          gpu);
    return rc;
}

#else /* no NCCL in this build */

bool vf_farm_nccl_available(void) { return false; }

int vf_farm_nccl_bcast(void *buf, size_t len, int gpu, int rank, int size, struct vf_error *err)
{
    (void)buf;
    (void)len;
    (void)size;
    return vf_error_set(err, VF_EUNSUPPORTED, "rank %d, GPU %d: this vaefarm was built without "
                        "NCCL (the CUDA toolkit's libnccl was not found)", rank, gpu);
}

#endif
