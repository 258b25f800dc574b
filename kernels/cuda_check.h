/* kernels/cuda_check.h: private to kernels/' .cu files: the CUDA, cuBLAS and cuDNN check macros. On failure it
 * records VF_EINTERNAL with the call and CUDA's own message, then jumps to `label`. */
#ifndef VF_KERNELS_CUDA_CHECK_H
#define VF_KERNELS_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" {
#include "common/common.h"
}

#define VF_CHECK_CUDA(call, err, label)                                                        \
    do {                                                                                       \
        cudaError_t rc_ = (call);                                                              \
        VF_CHECK_(rc_ != cudaSuccess, err, VF_EINTERNAL, label, #call, cudaGetErrorString(rc_)); \
    } while (0)

/* The same for cuBLAS and cuDNN statuses. */
#define VF_CHECK_CUBLAS(call, err, label)                                                      \
    do {                                                                                       \
        cublasStatus_t st_ = (call);                                                           \
        VF_CHECK_(st_ != CUBLAS_STATUS_SUCCESS, err, VF_EINTERNAL, label, #call,               \
                  cublasGetStatusString(st_));                                                 \
    } while (0)

#define VF_CHECK_CUDNN(call, err, label)                                                       \
    do {                                                                                       \
        cudnnStatus_t st_ = (call);                                                            \
        VF_CHECK_(st_ != CUDNN_STATUS_SUCCESS, err, VF_EINTERNAL, label, #call,                \
                  cudnnGetErrorString(st_));                                                   \
    } while (0)

#endif /* VF_KERNELS_CUDA_CHECK_H */
