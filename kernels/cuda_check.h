/* kernels/cuda_check.h: private to kernels/' .cu files: the one CUDA check macro. On failure it
 * records VF_EINTERNAL with the call and CUDA's own message, then jumps to `label`. */
#ifndef VF_KERNELS_CUDA_CHECK_H
#define VF_KERNELS_CUDA_CHECK_H

#include <cuda_runtime.h>

extern "C" {
#include "common/common.h"
}

#define VF_CHECK_CUDA(call, err, label)                                                        \
    do {                                                                                       \
        cudaError_t rc_ = (call);                                                              \
        VF_CHECK_(rc_ != cudaSuccess, err, VF_EINTERNAL, label, #call, cudaGetErrorString(rc_)); \
    } while (0)

#endif /* VF_KERNELS_CUDA_CHECK_H */
