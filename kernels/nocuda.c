/* kernels/nocuda.c: the GPU queries of a build without the CUDA backend (VF_CUDA=OFF or no
 * nvcc): no GPUs, never an error. Compiled instead of cuda_device.cu. */
#include <stdio.h>

#include "kernels/kernels.h"

bool vf_kernels_has_cuda(void) { return false; }

int vf_kernels_gpu_count(int *count, struct vf_error *err)
{
    (void)err;
    *count = 0;
    return VF_OK;
}

int vf_kernels_gpu_describe(int device, char *buf, size_t len, struct vf_error *err)
{
    if (len)
        buf[0] = '\0';
    return vf_error_set(err, VF_EUNSUPPORTED,
                        "GPU %d: this vaefarm was built without the CUDA backend; rebuild with "
                        "the CUDA toolkit installed (cmake -DVF_CUDA=ON)", device);
}

int vf_kernels_gpu_cc(int device, int *cc, struct vf_error *err)
{
    *cc = 0;
    return vf_kernels_gpu_describe(device, NULL, 0, err);
}
