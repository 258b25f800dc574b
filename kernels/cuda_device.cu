/* kernels/cuda_device.cu: GPU discovery for the CUDA backend. Every CUDA call is checked. */
#include <cstdio>

#include <cuda_runtime.h>

extern "C" {
#include "kernels/kernels.h"
}

#include "kernels/cuda_check.h"

extern "C" bool vf_kernels_has_cuda(void) { return true; }

extern "C" int vf_kernels_gpu_count(int *count, struct vf_error *err)
{
    *count = 0;
    cudaError_t rc = cudaGetDeviceCount(count);
    /* no driver or no device: a CPU rank, not a failure */
    if (rc == cudaErrorNoDevice || rc == cudaErrorInsufficientDriver) {
        *count = 0;
        (void)cudaGetLastError(); /* clear the sticky error state */
        return VF_OK;
    }
    VF_CHECK_CUDA(rc, err, fail);
    return VF_OK;
fail:
    *count = 0;
    return vf_error_prefix(err, "the CUDA driver is installed but does not answer; check "
                                "nvidia-smi, or hide the GPUs (CUDA_VISIBLE_DEVICES=) to run on the CPU");
}

extern "C" int vf_kernels_gpu_describe(int device, char *buf, size_t len, struct vf_error *err)
{
    cudaDeviceProp p;
    VF_CHECK_CUDA(cudaGetDeviceProperties(&p, device), err, fail);
    snprintf(buf, len, "GPU %d: %s, %.1f GiB, compute capability %d.%d", device, p.name,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.major, p.minor);
    return VF_OK;
fail:
    if (len)
        buf[0] = '\0';
    return vf_error_prefix(err, "GPU %d", device);
}

extern "C" int vf_kernels_gpu_cc(int device, int *cc, struct vf_error *err)
{
    int major = 0, minor = 0;
    *cc = 0;
    VF_CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), err,
                  fail);
    VF_CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), err,
                  fail);
    *cc = major * 10 + minor;
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d", device);
}
