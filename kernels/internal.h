/* kernels/internal.h: private to kernels/: the backend's state and the oneDNN check macro. */
#ifndef VF_KERNELS_INTERNAL_H
#define VF_KERNELS_INTERNAL_H

#include <oneapi/dnnl/dnnl.h>

#include "kernels/kernels.h"

struct vf_backend {
    enum vf_device device;
    int threads;                /* OpenMP threads for C operators and oneDNN (CPU) */
    dnnl_engine_t engine;       /* CPU: oneDNN engine and stream */
    dnnl_stream_t stream;
    struct vf_cuda_ctx *cuda;   /* CUDA: device, stream, cuBLAS/cuDNN handles, staging
                                   (kernels/cuda_backend.cu); NULL on the CPU */
    size_t bytes;               /* memory held now (tensors, primitives) */
    size_t mem_budget;          /* CPU: the most `bytes` may reach (vf_backend_opts); 0: none */
    bool has_bf16;              /* the CPU ISA computes bf16 natively (avx512_core_bf16, AMX) */
    /* Run-time workspace shared by this backend's primitives (reflect padding, dense copies of
     * channel-slice views, oneDNN scratchpads): one operator runs at a time on the stream, so
     * one buffer, grown at primitive creation (vf_be_reserve_) to the largest need, serves all.
     * Never reallocated by a run; primitives look the pointer up at run time. A CUDA graph
     * holds the pointer it captured: ws_moves counts the reallocations, and a graph captured
     * before the last one is stale (vf_graph_current). */
    void *ws;
    size_t ws_bytes;
    unsigned long ws_moves;
};

/* A hot CPU loop also built for AVX2, the build picked at load time. Only for element-wise loops
 * (no FMA contraction: -ffp-contract=off, kernels/CMakeLists.txt; no reassociation), so that both
 * builds give the same bits. VF_SIMD_CLONES_512 adds an AVX-512 build, for code written with
 * 64-byte GCC vectors (ops.c refine_lanes, motion_row), which the other builds split into halves
 * or quarters. */
#if defined(__x86_64__) && defined(__GNUC__)
#define VF_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#define VF_SIMD_CLONES_512 __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VF_SIMD_CLONES
#define VF_SIMD_CLONES_512
#endif

/* Inline every call in the function (GCC, clang), so that a VF_SIMD_CLONES function's clones
 * compile the elem.h bodies they call for their own target. */
#if defined(__GNUC__)
#define VF_FLATTEN __attribute__((flatten))
#else
#define VF_FLATTEN
#endif

/* Whether `be` is a CUDA backend. Dispatch to the CUDA launchers (kernels/cuda_ops.h) sits
 * under #ifdef VF_HAVE_CUDA: a build without the CUDA backend never creates one. */
#define VF_BE_CUDA(be) ((be)->device == VF_DEVICE_CUDA)

/* Check a oneDNN status: on failure record VF_EINTERNAL with the call and the status name,
 * then goto label. */
const char *vf_dnnl_status_str_(dnnl_status_t s);
#define VF_CHECK_DNNL(stmt, err, label)                                                        \
    do {                                                                                       \
        dnnl_status_t vf_st_ = (stmt);                                                         \
        VF_CHECK_(vf_st_ != dnnl_success, err, VF_EINTERNAL, label, #stmt,                     \
                  vf_dnnl_status_str_(vf_st_));                                                \
    } while (0)

/* Device allocation accounted in be->bytes (64-byte aligned on the CPU, zeroed). */
void *vf_be_alloc_(struct vf_backend *be, size_t bytes, struct vf_error *err);
void vf_be_free_(struct vf_backend *be, void *p, size_t bytes);

/* Grow the shared workspace to at least `bytes` (at creation only; never in a run). */
int vf_be_reserve_(struct vf_backend *be, size_t bytes, struct vf_error *err);

/* The oneDNN implementation a primitive runs (e.g. "brgconv:avx512_core"), for tests and logs. */
struct vf_conv;
struct vf_matmul;
struct vf_pool;
const char *vf_conv_impl_(const struct vf_conv *cv);
const char *vf_matmul_impl_(const struct vf_matmul *mm);
const char *vf_pool_impl_(const struct vf_pool *p);

/* Set the OpenMP thread count for the operators run next on this backend. */
void vf_be_enter_(const struct vf_backend *be);

/* 16 lanes (kernels/lanes_impl.h), built on x86-64 with GCC or clang for AVX-512F
 * (kernels/lanes512.c) and for AVX2 + FMA (kernels/lanes256.c); kernels/CMakeLists.txt then
 * defines VF_HAVE_LANES for the library's sources, and kernels/ops.c calls the widest the CPU
 * runs (vf_lanes_). Each table's functions:
 * keep_luma: vf_keep_luma_rgb for the 16 pixels grey[l], a[l], b[l] into rgb[3l..3l+2], bit for
 * bit. powf: out[l] = powf(x[l], y) for 16 values, libm's float, for any x, computed as a vector
 * for x in the open interval (VF_POWF_LANES_LO, VF_POWF_LANES_HI) and y = 1/2.4f (the sRGB
 * encoding, vf_gam01_d) or 0.8f (the keep-luma start), the only exponents that tests/test_ops.c
 * checks there. expf: out[l] = expf(t[l]), libm's float, for the lanes l whose bit is set in
 * `want` (the others unwritten), computed as a vector for t in [VF_EXPF_LANES_LO,
 * VF_EXPF_LANES_HI]. */
#ifndef VF_HAVE_LANES
#define VF_HAVE_LANES 0
#endif
struct vf_lanes {
    const char *isa;            /* "AVX-512F", "AVX2" */
    void (*keep_luma)(const float *grey, const float *a, const float *b, float kr, float kb,
                      float *rgb);
    void (*powf)(const float *x, float y, float *out);
    void (*expf)(const float *t, unsigned want, float *out);   /* NULL: libm's (AVX2) */
};
#if VF_HAVE_LANES
extern const struct vf_lanes vf_lanes512_, vf_lanes256_;
#endif
#define VF_POWF_LANES_LO 0.0031308f
#define VF_POWF_LANES_HI 1.001f
#define VF_EXPF_LANES_LO (-69.0f)
#define VF_EXPF_LANES_HI (-0x1p-12f)
/* out[i] = expf(x[i]) (exp) or powf(x[i], y) for i < n, 16 at a time through vf_lanes_()'s
 * where there are lanes, libm's for the rest and elsewhere (for tests); returns whether the
 * vector path ran. */
bool vf_libm_lanes_(bool exp, const float *x, long n, float y, float *out);
/* The widest lanes this CPU runs (AVX-512F, else AVX2 with FMA), at most vf_lanes_cap_'s width;
 * NULL: none, every operator takes its scalar path. vf_lanes_cap_(512) (the default), 256 or 0
 * (tests run every path; not while operators run). */
const struct vf_lanes *vf_lanes_(void);
void vf_lanes_cap_(int bits);

#endif /* VF_KERNELS_INTERNAL_H */
