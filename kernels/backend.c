/* kernels/backend.c: the CPU backend (oneDNN engine + stream, OpenMP threads), dtypes, device
 * memory and tensors (NHWC storage in f32/bf16/f16, channel-slice views). See kernels.h. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/internal.h"
#ifdef VF_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

/* ============================== dtypes ===================================================== */

size_t vf_dtype_size(enum vf_dtype dt)
{
    switch (dt) {
    case VF_F32: return 4;
    case VF_BF16: return 2;
    case VF_F16: return 2;
    }
    return 0;
}

const char *vf_dtype_name(enum vf_dtype dt)
{
    switch (dt) {
    case VF_F32: return "f32";
    case VF_BF16: return "bf16";
    case VF_F16: return "f16";
    }
    return "unknown";
}

int vf_dtype_parse(const char *s, enum vf_dtype *dt)
{
    if (s && strcmp(s, "f32") == 0)
        *dt = VF_F32;
    else if (s && strcmp(s, "bf16") == 0)
        *dt = VF_BF16;
    else if (s && strcmp(s, "f16") == 0)
        *dt = VF_F16;
    else
        return VF_EINVAL;
    return VF_OK;
}

/* ============================== scalar conversions ========================================= */
/* f32 ↔ bf16: round to nearest, ties to even; NaN stays a (quiet) NaN, never becomes Inf. */
static inline uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)         /* NaN: keep the sign, force quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* f32 → IEEE binary16: round to nearest even, overflow to ±Inf, gradual underflow to
 * subnormals, NaN stays NaN. */
static inline uint16_t f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)                          /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u)                         /* ≥ 65520 rounds to Inf (and Inf itself) */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {                        /* below 2^-14: subnormal half or zero */
        if (a < 0x33000000u)                      /* < 2^-25: rounds to ±0 */
            return (uint16_t)sign;
        uint32_t e = a >> 23;                     /* 102 .. 112 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u; /* 24-bit significand */
        uint32_t shift = 126u - e;                /* 14 .. 24: value = m · 2^(e-150) */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias exponent 127 → 15, round the 13 dropped bits to nearest even */
    uint32_t r = a - 0x38000000u;                 /* (e-112) << 23 | mantissa */
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

static inline float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    uint32_t u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13);
    } else if (e == 0) {
        if (m == 0) {
            u = sign;
        } else {                                  /* subnormal: normalise */
            int k = 0;
            while (!(m & 0x400u)) {
                m <<= 1;
                k++;
            }
            m &= 0x3ffu;
            u = sign | ((uint32_t)(113 - k) << 23) | (m << 13);
        }
    } else {
        u = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ============================== backend ==================================================== */

const char *vf_dnnl_status_str_(dnnl_status_t s)
{
    switch (s) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "oneDNN: out of memory";
    case dnnl_invalid_arguments: return "oneDNN: invalid arguments";
    case dnnl_unimplemented: return "oneDNN: no implementation for these parameters";
    case dnnl_iterator_ends: return "oneDNN: iterator ends";
    case dnnl_runtime_error: return "oneDNN: runtime error";
    case dnnl_not_required: return "oneDNN: not required";
    }
    return "oneDNN: unknown status";
}

static bool isa_has_bf16(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

int vf_backend_create(struct vf_backend **out, const struct vf_backend_opts *opts,
                      struct vf_error *err)
{
    *out = NULL;
    if (!opts)
        return vf_error_set(err, VF_EINVAL, "vf_backend_create: no options given");
    if (opts->device == VF_DEVICE_CUDA) {
#ifdef VF_HAVE_CUDA
        struct vf_backend *be = vf_calloc(1, sizeof *be, err);
        if (!be)
            return VF_ENOMEM;
        be->device = VF_DEVICE_CUDA;
        be->threads = 1;
        int rc = vf_cuda_init(be, opts->gpu, err);
        if (rc) {
            free(be);
            return rc;
        }
        *out = be;
        return VF_OK;
#else
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "GPU %d: this vaefarm was built without the CUDA backend; rebuild "
                            "with the CUDA toolkit installed (cmake -DVF_CUDA=ON), or run on the "
                            "CPU", opts->gpu);
#endif
    }
    if (opts->device != VF_DEVICE_CPU)
        return vf_error_set(err, VF_EINVAL, "vf_backend_create: unknown device kind %d",
                            (int)opts->device);
    /* Determinism (DESIGN.md §4): no nested parallel regions, whatever OMP_MAX_ACTIVE_LEVELS
     * says; the chunked matmul relies on oneDNN running single-threaded inside each chunk. */
    omp_set_max_active_levels(1);
    if (opts->threads < 0)
        return vf_error_set(err, VF_EINVAL,
                            "CPU backend: threads = %d; give a positive count or 0 for all cores",
                            opts->threads);
    struct vf_backend *be = vf_calloc(1, sizeof *be, err);
    if (!be)
        return VF_ENOMEM;
    be->device = VF_DEVICE_CPU;
    be->threads = opts->threads > 0 ? opts->threads : omp_get_num_procs();
    if (be->threads < 1)
        be->threads = 1;
    be->has_bf16 = isa_has_bf16();
    be->mem_budget = opts->mem_budget;
    VF_CHECK_DNNL(dnnl_engine_create(&be->engine, dnnl_cpu, 0), err, fail);
    VF_CHECK_DNNL(dnnl_stream_create(&be->stream, be->engine, dnnl_stream_default_flags), err,
                  fail);
    *out = be;
    return VF_OK;
fail:
    vf_backend_destroy(&be);
    return err ? err->code : VF_EINTERNAL;
}

void vf_backend_destroy(struct vf_backend **bep)
{
    if (!bep || !*bep)
        return;
    struct vf_backend *be = *bep;
    vf_be_free_(be, be->ws, be->ws_bytes);
#ifdef VF_HAVE_CUDA
    if (be->cuda)
        vf_cuda_fini(be);
#endif
    if (be->stream)
        dnnl_stream_destroy(be->stream);
    if (be->engine)
        dnnl_engine_destroy(be->engine);
    free(be);
    *bep = NULL;
}

enum vf_device vf_backend_device(const struct vf_backend *be) { return be->device; }
int vf_backend_threads(const struct vf_backend *be) { return be->threads; }

bool vf_kernels_cc_supports(int cc, enum vf_dtype dt)
{
    return dt == VF_F32 || (dt == VF_F16 && cc >= 70) || (dt == VF_BF16 && cc >= 80);
}

bool vf_backend_supports(const struct vf_backend *be, enum vf_dtype dt)
{
#ifdef VF_HAVE_CUDA
    /* cuDNN/cuBLAS: f16 tensor cores from Volta (7.0), bf16 from Ampere (8.0) */
    if (VF_BE_CUDA(be))
        return vf_kernels_cc_supports(vf_cuda_cc(be), dt);
#endif
    switch (dt) {
    case VF_F32: return true;
    case VF_BF16: return be->has_bf16;
    case VF_F16: return false;
    }
    return false;
}

int vf_backend_sync(struct vf_backend *be, struct vf_error *err)
{
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(be))
        return vf_cuda_sync(be, err);
#endif
    VF_CHECK_DNNL(dnnl_stream_wait(be->stream), err, fail);
    return VF_OK;
fail:
    return err ? err->code : VF_EINTERNAL;
}

size_t vf_backend_bytes(const struct vf_backend *be) { return be->bytes; }

void vf_backend_set_mem_budget(struct vf_backend *be, size_t bytes) { be->mem_budget = bytes; }

void vf_be_enter_(const struct vf_backend *be)
{
    if (VF_BE_CUDA(be))
        return;
    if (omp_get_max_threads() != be->threads)
        omp_set_num_threads(be->threads);
}

void *vf_be_alloc_(struct vf_backend *be, size_t bytes, struct vf_error *err)
{
    size_t sz = bytes ? bytes : 1;
    if (sz > SIZE_MAX - 63) {
        vf_error_set(err, VF_ENOMEM, "device allocation of %zu bytes is too large", bytes);
        return NULL;
    }
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(be)) {
        void *d = vf_cuda_alloc(be, bytes, err);
        if (d)
            be->bytes += bytes;
        return d;
    }
#endif
    sz = (sz + 63) & ~(size_t)63;
    if (be->mem_budget && (bytes > be->mem_budget || be->bytes > be->mem_budget - bytes)) {
        vf_error_set(err, VF_ENOMEM,
                     "out of memory: %zu MiB more on the CPU backend would take it past the %zu "
                     "MiB it may hold (it holds %zu MiB; its budget: the memory available on this "
                     "node shared among its ranks, or VAEFARM_MEMORY_LIMIT); use a smaller "
                     "inference_size, fewer ranks per node, or a node with more memory",
                     (bytes + (1u << 20) - 1) >> 20, be->mem_budget >> 20, be->bytes >> 20);
        return NULL;
    }
    void *p = aligned_alloc(64, sz);
    if (!p) {
        vf_error_set(err, VF_ENOMEM,
                     "out of memory allocating %zu bytes on the CPU backend (it holds %zu bytes "
                     "already); use a smaller frame size or fewer ranks per node",
                     bytes, be->bytes);
        return NULL;
    }
    memset(p, 0, sz);
    be->bytes += bytes;
    return p;
}

void vf_be_free_(struct vf_backend *be, void *p, size_t bytes)
{
    if (!p)
        return;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(be)) {
        vf_cuda_free(be, p);
        be->bytes -= bytes;
        return;
    }
#endif
    free(p);
    be->bytes -= bytes;
}

int vf_be_reserve_(struct vf_backend *be, size_t bytes, struct vf_error *err)
{
    if (bytes <= be->ws_bytes)
        return VF_OK;
    void *p = vf_be_alloc_(be, bytes, err);
    if (!p)
        return err ? vf_error_prefix(err, "primitive workspace") : VF_ENOMEM;
    vf_be_free_(be, be->ws, be->ws_bytes);
    be->ws = p;
    be->ws_bytes = bytes;
    be->ws_moves++;   /* graphs captured before this read the freed buffer: stale */
    return VF_OK;
}

/* ============================== tensors ==================================================== */

static size_t tensor_bytes(enum vf_dtype dt, int n, int c, int h, int w)
{
    return (size_t)n * (size_t)h * (size_t)w * (size_t)c * vf_dtype_size(dt);
}

int vf_tensor_alloc(struct vf_tensor *t, struct vf_backend *be, enum vf_dtype dt, int n, int c,
                    int h, int w, struct vf_error *err)
{
    memset(t, 0, sizeof *t);
    if (dt != VF_F32 && dt != VF_BF16 && dt != VF_F16)
        return vf_error_set(err, VF_EINVAL, "tensor: unknown dtype %d", (int)dt);
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return vf_error_set(err, VF_EINVAL,
                            "tensor: bad shape %d x %d x %d x %d (n x c x h x w must be positive)",
                            n, c, h, w);
    /* overflow: every product must fit; int dims, so check in double first */
    double total = (double)n * c * h * w * (double)vf_dtype_size(dt);
    if (total > (double)SIZE_MAX / 2)
        return vf_error_set(err, VF_ENOMEM, "tensor: %d x %d x %d x %d is too large", n, c, h, w);
    size_t bytes = tensor_bytes(dt, n, c, h, w);
    void *p = vf_be_alloc_(be, bytes, err);
    if (!p)
        return err ? vf_error_prefix(err, "tensor %d x %d x %d x %d %s", n, c, h, w,
                                     vf_dtype_name(dt))
                   : VF_ENOMEM;
    t->dtype = dt;
    t->n = n;
    t->c = c;
    t->h = h;
    t->w = w;
    t->pix_stride = c;
    t->data = p;
    t->be = be;
    t->owned = true;
#ifdef VF_HAVE_CUDA
    /* host data crosses through staging sized for the largest tensor (no allocation in a run) */
    if (VF_BE_CUDA(be)) {
        int rc = vf_cuda_reserve_staging(be, vf_tensor_count(t) * sizeof(float), err);
        if (rc) {
            vf_tensor_free(t);
            return rc;
        }
    }
#endif
    return VF_OK;
}

void vf_tensor_free(struct vf_tensor *t)
{
    if (!t)
        return;
    if (t->owned && t->data && t->be)
        vf_be_free_(t->be, t->data, tensor_bytes(t->dtype, t->n, t->c, t->h, t->w));
    memset(t, 0, sizeof *t);
}

struct vf_tensor vf_tensor_slice(const struct vf_tensor *t, int c0, int nc)
{
    VF_ASSERT(c0 >= 0 && nc > 0 && c0 + nc <= t->c);
    struct vf_tensor v = *t;
    v.c = nc;
    v.data = (char *)t->data + (size_t)c0 * vf_dtype_size(t->dtype);
    v.owned = false;
    return v;
}

size_t vf_tensor_count(const struct vf_tensor *t)
{
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

static int check_tensor(const struct vf_tensor *t, const char *what, struct vf_error *err)
{
    if (!t || !t->data)
        return vf_error_set(err, VF_EINVAL, "%s: tensor has no data (not allocated?)", what);
    if (t->pix_stride < t->c || t->n <= 0 || t->c <= 0 || t->h <= 0 || t->w <= 0)
        return vf_error_set(err, VF_EINVAL,
                            "%s: bad tensor shape %d x %d x %d x %d (pix_stride %d)", what, t->n,
                            t->c, t->h, t->w, t->pix_stride);
    if (t->dtype != VF_F32 && t->dtype != VF_BF16 && t->dtype != VF_F16)
        return vf_error_set(err, VF_EINVAL, "%s: unknown dtype %d", what, (int)t->dtype);
    return VF_OK;
}

int vf_tensor_upload(struct vf_tensor *t, const float *nchw, struct vf_error *err)
{
    int rc = check_tensor(t, "vf_tensor_upload", err);
    if (rc)
        return rc;
#ifdef VF_HAVE_CUDA
    if (t->be && VF_BE_CUDA(t->be))
        return vf_cuda_upload(t, nchw, err);
#endif
    const int n = t->n, c = t->c;
    const long hw = (long)t->h * t->w;
    const size_t ps = (size_t)t->pix_stride;
    if (t->be)
        vf_be_enter_(t->be);
    for (int i = 0; i < n; i++) {
#pragma omp parallel for schedule(static)
        for (long p = 0; p < hw; p++) {
            const float *s = nchw + (size_t)i * c * hw + p;
            size_t o = ((size_t)i * hw + p) * ps;
            switch (t->dtype) {
            case VF_F32: {
                float *d = (float *)t->data + o;
                for (int ch = 0; ch < c; ch++)
                    d[ch] = s[(size_t)ch * hw];
                break;
            }
            case VF_BF16: {
                uint16_t *d = (uint16_t *)t->data + o;
                for (int ch = 0; ch < c; ch++)
                    d[ch] = f32_to_bf16(s[(size_t)ch * hw]);
                break;
            }
            case VF_F16: {
                uint16_t *d = (uint16_t *)t->data + o;
                for (int ch = 0; ch < c; ch++)
                    d[ch] = f32_to_f16(s[(size_t)ch * hw]);
                break;
            }
            }
        }
    }
    return VF_OK;
}

int vf_tensor_download(const struct vf_tensor *t, float *nchw, struct vf_error *err)
{
    int rc = check_tensor(t, "vf_tensor_download", err);
    if (rc)
        return rc;
#ifdef VF_HAVE_CUDA
    if (t->be && VF_BE_CUDA(t->be))
        return vf_cuda_download(t, nchw, err);
#endif
    const int n = t->n, c = t->c;
    const long hw = (long)t->h * t->w;
    const size_t ps = (size_t)t->pix_stride;
    if (t->be)
        vf_be_enter_(t->be);
    for (int i = 0; i < n; i++) {
#pragma omp parallel for schedule(static)
        for (long p = 0; p < hw; p++) {
            float *d = nchw + (size_t)i * c * hw + p;
            size_t o = ((size_t)i * hw + p) * ps;
            switch (t->dtype) {
            case VF_F32: {
                const float *s = (const float *)t->data + o;
                for (int ch = 0; ch < c; ch++)
                    d[(size_t)ch * hw] = s[ch];
                break;
            }
            case VF_BF16: {
                const uint16_t *s = (const uint16_t *)t->data + o;
                for (int ch = 0; ch < c; ch++)
                    d[(size_t)ch * hw] = bf16_to_f32(s[ch]);
                break;
            }
            case VF_F16: {
                const uint16_t *s = (const uint16_t *)t->data + o;
                for (int ch = 0; ch < c; ch++)
                    d[(size_t)ch * hw] = f16_to_f32(s[ch]);
                break;
            }
            }
        }
    }
    return VF_OK;
}

int vf_tensor_zero(struct vf_tensor *t, struct vf_error *err)
{
    int rc = check_tensor(t, "vf_tensor_zero", err);
    if (rc)
        return rc;
#ifdef VF_HAVE_CUDA
    if (t->be && VF_BE_CUDA(t->be))
        return vf_cuda_zero(t, err);
#endif
    const size_t es = vf_dtype_size(t->dtype);
    const size_t npix = (size_t)t->n * t->h * t->w;
    if (t->pix_stride == t->c) {
        memset(t->data, 0, npix * (size_t)t->c * es);
        return VF_OK;
    }
    const size_t row = (size_t)t->c * es, step = (size_t)t->pix_stride * es;
    for (size_t p = 0; p < npix; p++)
        memset((char *)t->data + p * step, 0, row);
    return VF_OK;
}

/* ============================== CUDA graphs ================================================ */

struct vf_graph {
    struct vf_backend *be;
    void *exec;                 /* cudaGraphExec_t */
    unsigned long ws_moves;     /* the backend's at capture: its workspace pointer is baked in */
};

bool vf_backend_can_capture(const struct vf_backend *be)
{
    return be && VF_BE_CUDA(be);
}

int vf_backend_capture_begin(struct vf_backend *be, struct vf_error *err)
{
    (void)be;
#ifdef VF_HAVE_CUDA
    if (be && VF_BE_CUDA(be))
        return vf_cuda_capture_begin(be, err);
#endif
    return vf_error_set(err, VF_EUNSUPPORTED, "graph capture: only a CUDA backend captures "
                        "(check vf_backend_can_capture)");
}

int vf_backend_capture_end(struct vf_backend *be, struct vf_graph **out, struct vf_error *err)
{
    (void)be;
    *out = NULL;
#ifdef VF_HAVE_CUDA
    if (be && VF_BE_CUDA(be)) {
        void *exec = NULL;
        int rc = vf_cuda_capture_end(be, &exec, err);
        if (rc)
            return rc;
        struct vf_graph *g = vf_calloc(1, sizeof *g, err);
        if (!g) {
            vf_cuda_graph_destroy(exec);
            return VF_ENOMEM;
        }
        g->be = be;
        g->exec = exec;
        g->ws_moves = be->ws_moves;
        *out = g;
        return VF_OK;
    }
#endif
    return vf_error_set(err, VF_EUNSUPPORTED, "graph capture: only a CUDA backend captures");
}

bool vf_graph_current(const struct vf_graph *g)
{
    return g && g->ws_moves == g->be->ws_moves;
}

int vf_graph_launch(struct vf_graph *g, struct vf_error *err)
{
    if (!g)
        return vf_error_set(err, VF_EINVAL, "vf_graph_launch: no graph");
    if (!vf_graph_current(g))
        return vf_error_set(err, VF_EINVAL, "vf_graph_launch: the graph is stale (a primitive "
                            "created after the capture grew the backend's shared workspace, "
                            "whose old address the graph holds): capture again");
#ifdef VF_HAVE_CUDA
    return vf_cuda_graph_launch(g->be, g->exec, err);
#else
    return vf_error_set(err, VF_EUNSUPPORTED, "vf_graph_launch: no CUDA backend in this build");
#endif
}

void vf_graph_destroy(struct vf_graph **gp)
{
    if (!gp || !*gp)
        return;
#ifdef VF_HAVE_CUDA
    vf_cuda_graph_destroy((*gp)->exec);
#endif
    free(*gp);
    *gp = NULL;
}
