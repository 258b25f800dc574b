/*
 * kernels/kernels.h: tensors and operators behind a small backend interface: a CPU backend
 * (oneDNN + C) and a CUDA backend (cuDNN, cuBLAS, .cu kernels). The operators arrive with the
 * network issue; what is here now is what the farm needs first: which backends this build has,
 * which CPU ISA oneDNN dispatches to, and how many GPUs a rank can see.
 *
 * Uses: common/, oneDNN, the CUDA runtime (when built with it). Knows nothing of video or MPI.
 */
#ifndef VF_KERNELS_H
#define VF_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"

/* True when this build has the CUDA backend (CMake found nvcc; -DVF_CUDA). */
bool vf_kernels_has_cuda(void);

/* GPUs this process can use. 0, without error, when the build has no CUDA backend, when no
 * driver is installed or when no device is visible: the rank then uses the CPU backend. A
 * driver that is present but broken is an error. */
int vf_kernels_gpu_count(int *count, struct vf_error *err);

/* One line about GPU `device`: name, memory, compute capability. */
int vf_kernels_gpu_describe(int device, char *buf, size_t len, struct vf_error *err);

/* One line about the CPU backend: oneDNN's version and the ISA its kernels dispatch to
 * (e.g. "oneDNN 2.6.3, ISA avx512_core_bf16"). */
void vf_kernels_cpu_describe(char *buf, size_t len);

#endif /* VF_KERNELS_H */
