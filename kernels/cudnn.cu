/*
 * kernels/cudnn.cu: the CUDA backend's primitives (kernels/cuda_ops.h, "primitives"):
 * convolution and pooling on cuDNN's (legacy, cuDNN 9) convolution and pooling API, matmul on
 * cublasGemmEx. kernels/dnnl.c validates the descriptions and the run-time tensors and then
 * dispatches here for a CUDA backend; these functions trust what they are given.
 *
 * Convolution.
 *   Layout: source and destination NHWC (cuDNN's CUDNN_TENSOR_NHWC), weights uploaded once in
 *   KRSC (cuDNN's NHWC filter format: oc × kh × kw × ic/groups), converted to the compute dtype
 *   on the host at creation; bias f32 on the device.
 *   Algorithm: chosen once, at creation, from cudnnGetConvolutionForwardAlgorithm_v7's
 *   heuristic ranking (fastest expected first): the first one that reports success, is
 *   CUDNN_DETERMINISTIC, and whose workspace (cudnnGetConvolutionForwardWorkspaceSize, for the
 *   math type actually set) fits VF_CUDNN_WS_CAP. Not cudnnFindConvolutionForwardAlgorithm:
 *   it picks by timing, so two ranks (or two runs) on the same GPU model could pick different
 *   algorithms and produce different bits; the heuristic is a pure function of the shapes, the
 *   GPU and cuDNN's version.
 *   Math: f32 runs with CUDNN_FMA_MATH (no TF32: the f32 golden tests need full f32 products);
 *   bf16/f16 ask for CUDNN_TENSOR_OP_MATH (tensor cores), f32 accumulation (cuDNN's
 *   PSEUDO_HALF/PSEUDO_BFLOAT16 configurations, compute type f32). The heuristic ranks
 *   (algorithm, math type) pairs: the descriptor takes the chosen entry's math type (cuDNN 7.4
 *   and later select the kernel by both), and f32 takes FMA entries only.
 *   Workspace (the backend's shared be->ws, reserved at creation, looked up per run):
 *   [padded or dense source | dense y in the compute dtype | cuDNN's own workspace].
 *   Reflect padding fills the first region by a kernel and cuDNN convolves it with pad 0 (as
 *   kernels/dnnl.c does); a channel-slice source (pix_stride > ic) is copied into it densely.
 *   Epilogue, in kernels/dnnl.c's post-op order: y = conv(x) + bias, + residual (dst on entry),
 *   activation (NONE/RELU/LRELU/TANH, kernels/elem.h's bodies), · scale, stored in dst's dtype.
 *     - "direct" runs (dst dense and of the compute dtype): cuDNN writes dst itself, with
 *       beta = 1 when residual (cuDNN blends in f32: y = conv + dst), then one in-place epilogue
 *       kernel adds the bias and applies the activation and scale (skipped when there is none of
 *       them). The sum order is (conv + residual) + bias instead of oneDNN's
 *       (conv + bias) + residual: in f32 the same values to an f32 rounding. In bf16/f16 cuDNN
 *       stores conv + residual in dst's dtype before the epilogue adds the bias and applies the
 *       activation and scale, so the value is rounded twice where oneDNN rounds once, after all
 *       post-ops: an extra error of up to half a bf16/f16 ulp of |conv + residual|, larger than
 *       the result's own ulp where the bias cancels most of it (bf16: conv 100.3, bias -100
 *       gives 0.5, oneDNN 0.3008). cuDNN's legacy API has no bf16/f16-in, f32-out convolution,
 *       so this is not avoidable here (the same holds for the second kind of run below).
 *     - otherwise (a channel-slice destination, or an f32 destination of a bf16/f16
 *       convolution): cuDNN writes the dense y region of the workspace in the compute dtype
 *       (cuDNN's legacy API has no bf16/f16-in, f32-out configuration), and the epilogue kernel
 *       reads y, adds bias and residual (read from dst) in f32, applies the activation and the
 *       scale and writes dst through its pixel stride and dtype. For bf16/f16 → f32 the
 *       convolution's f32 accumulator is therefore rounded once to bf16/f16 before the
 *       epilogue (oneDNN keeps it in f32): a relative error of at most 2^-9 (bf16) / 2^-12 (f16)
 *       of the convolution's value, within the precision of its bf16/f16 inputs.
 *   A run enqueues at most three kernels (gather, cuDNN, epilogue) and allocates nothing.
 *
 * Pooling: cudnnPoolingForward, CUDNN_POOLING_MAX or CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
 * NHWC; channel-slice views are copied through the workspace (dense in, dense out).
 *
 * Matmul: row-major C = A·B (or A·Bᵀ) is column-major Cᵀ = Bᵀ·Aᵀ, i.e. cublasGemmEx(opB, N,
 * n, m, k, B, ldb, A, lda, C, ldc) with opB = T for trans_b. Compute CUBLAS_COMPUTE_32F for
 * every dtype: f32 products stay f32 (the backend's cuBLAS handle is in CUBLAS_DEFAULT_MATH, no
 * TF32; should it ever be in TF32 mode, CUBLAS_COMPUTE_32F_PEDANTIC is used instead), bf16/f16
 * inputs run on tensor cores with f32 accumulation and an f32 C. Determinism: cuBLAS gives
 * bit-identical results run to run for the same problem on the same GPU architecture and SM
 * count with one stream per handle (cuBLAS's "results reproducibility"); GemmEx's split-K
 * reductions are done in a workspace, not with atomics.
 *
 * Every CUDA, cuDNN and cuBLAS call's result is checked. Compiled; not yet run on a GPU.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" {
#include "kernels/cuda_ops.h"
#include "kernels/internal.h"
}
#include "kernels/elem.h"

#include "kernels/cuda_check.h"

/* cuDNN workspace cap per convolution (algorithms that want more are passed over). */
#define VF_CUDNN_WS_CAP ((size_t)256 << 20)

namespace {

const int kThreads = 256;

size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

unsigned grid_for(long long n)
{
    long long b = (n + kThreads - 1) / kThreads;
    const long long cap = 65536;   /* grid-stride loops cover the rest */
    return (unsigned)(b < 1 ? 1 : (b > cap ? cap : b));
}

#define GRID_STRIDE(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);            \
         i += (long long)gridDim.x * blockDim.x)

cudnnDataType_t cudnn_dt(enum vf_dtype dt)
{
    switch (dt) {
    case VF_BF16: return CUDNN_DATA_BFLOAT16;
    case VF_F16: return CUDNN_DATA_HALF;
    default: return CUDNN_DATA_FLOAT;
    }
}

cudaDataType_t cuda_dt(enum vf_dtype dt)
{
    switch (dt) {
    case VF_BF16: return CUDA_R_16BF;
    case VF_F16: return CUDA_R_16F;
    default: return CUDA_R_32F;
    }
}

/* After a launch: the launch's own error (bad configuration, no device, ...). */
int launched(const char *what, struct vf_error *err)
{
    VF_CHECK_CUDA(cudaGetLastError(), err, fail);
    return VF_OK;
fail:
    return vf_error_prefix(err, "%s", what);
}

/* ---- pixel copies: dense gather (with reflect padding) and strided scatter ---------------- */

/* PyTorch ReflectionPad2d index (pad < n): mirror without repeating the edge. */
__device__ __forceinline__ int reflect_index(int i, int n)
{
    if (i < 0)
        return -i;
    if (i >= n)
        return 2 * (n - 1) - i;
    return i;
}

/* dst (n × (h+2·pad) × (w+2·pad) × c, pixel stride dps) ← src (n × h × w × c, pixel stride sps)
 * reflected by pad (pad 0: a plain copy between pixel strides). Raw element copies. */
template <typename T>
__global__ void k_copy_pixels(const T *__restrict__ src, long long sps, T *__restrict__ dst,
                              long long dps, int c, int h, int w, int pad, long long total)
{
    const int hp = h + 2 * pad, wp = w + 2 * pad;
    GRID_STRIDE(i, total)
    {
        const long long pix = i / c;
        const int ch = (int)(i - pix * c);
        const int x = (int)(pix % wp);
        const long long r = pix / wp;
        const int y = (int)(r % hp);
        const long long img = r / hp;
        const int sy = reflect_index(y - pad, h), sx = reflect_index(x - pad, w);
        dst[pix * dps + ch] = src[((img * h + sy) * w + sx) * sps + ch];
    }
}

int copy_pixels(const void *src, long long sps, void *dst, long long dps, enum vf_dtype dt,
                int n, int c, int h, int w, int pad, cudaStream_t stream, struct vf_error *err)
{
    const long long total = (long long)n * (h + 2 * pad) * (w + 2 * pad) * c;
    if (total == 0)
        return VF_OK;
    if (dt == VF_F32)
        k_copy_pixels<float><<<grid_for(total), kThreads, 0, stream>>>(
            static_cast<const float *>(src), sps, static_cast<float *>(dst), dps, c, h, w, pad,
            total);
    else
        k_copy_pixels<uint16_t><<<grid_for(total), kThreads, 0, stream>>>(
            static_cast<const uint16_t *>(src), sps, static_cast<uint16_t *>(dst), dps, c, h, w,
            pad, total);
    return launched(pad ? "reflect padding" : "pixel copy", err);
}

/* ---- the convolution's epilogue ----------------------------------------------------------- */

__device__ __forceinline__ float ld_as_f32(const void *p, int dt, long long off)
{
    switch (dt) {
    case VF_BF16: return vf_bf16_to_f32(static_cast<const uint16_t *>(p)[off]);
    case VF_F16: return vf_f16_to_f32(static_cast<const uint16_t *>(p)[off]);
    default: return static_cast<const float *>(p)[off];
    }
}

__device__ __forceinline__ void st_from_f32(void *p, int dt, long long off, float x)
{
    switch (dt) {
    case VF_BF16: static_cast<uint16_t *>(p)[off] = vf_f32_to_bf16(x); break;
    case VF_F16: static_cast<uint16_t *>(p)[off] = vf_f32_to_f16(x); break;
    default: static_cast<float *>(p)[off] = x; break;
    }
}

struct epilogue {
    const void *y;              /* the convolution's output (dt, pixel stride ys) */
    int ydt;
    long long ys;
    void *dst;                  /* the destination (dst_dt, pixel stride ds); may be y */
    int ddt;
    long long ds;
    const float *bias;          /* oc floats or NULL */
    bool residual;              /* add dst's value on entry (only when dst != y) */
    int act;
    float alpha, scale;
    int oc;
};

/* dst = (act(y + bias + residual)) · scale, in f32, per element. y and dst may alias (the
 * same element is read, then written, by one thread). */
__global__ void k_conv_epilogue(epilogue e, long long total)
{
    GRID_STRIDE(i, total)
    {
        const long long p = i / e.oc;
        const int ch = (int)(i - p * e.oc);
        float v = ld_as_f32(e.y, e.ydt, p * e.ys + ch);
        if (e.bias)
            v += e.bias[ch];
        if (e.residual)
            v += ld_as_f32(e.dst, e.ddt, p * e.ds + ch);
        switch (e.act) {
        case VF_ACT_RELU: v = vf_relu(v); break;
        case VF_ACT_LRELU: v = vf_lrelu(v, e.alpha); break;
        case VF_ACT_TANH: v = vf_tanh(v); break;
        default: break;
        }
        v *= e.scale;
        st_from_f32(e.dst, e.ddt, p * e.ds + ch, v);
    }
}

const char *algo_name(cudnnConvolutionFwdAlgo_t a)
{
    switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "implicit_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "implicit_precomp_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "direct";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "fft";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "fft_tiling";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "winograd";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "winograd_nonfused";
    default: return "unknown";
    }
}

/* Host conversion of one f32 weight to the compute dtype's bits (kernels/elem.h's rounding,
 * the same as the upload's). */
void put_weight(void *dst, size_t i, enum vf_dtype dt, float v)
{
    switch (dt) {
    case VF_BF16: static_cast<uint16_t *>(dst)[i] = vf_f32_to_bf16(v); break;
    case VF_F16: static_cast<uint16_t *>(dst)[i] = vf_f32_to_f16(v); break;
    default: static_cast<float *>(dst)[i] = v; break;
    }
}

/* Copy host memory to the device in stream order and wait (creation only). */
int upload_sync(void *d, const void *h, size_t bytes, cudaStream_t stream, struct vf_error *err)
{
    VF_CHECK_CUDA(cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, stream), err, fail);
    VF_CHECK_CUDA(cudaStreamSynchronize(stream), err, fail);
    return VF_OK;
fail:
    return VF_EINTERNAL;
}

} // namespace

/* ============================== convolution ================================================ */

struct vf_cudnn_conv {
    struct vf_backend *be;
    struct vf_conv_desc d;
    enum vf_dtype dt, dst_dt;
    int n, h, w, oh, ow;
    int ch, cw;                 /* the convolution's input size (padded for reflect) */
    bool reflect;
    float scale;                /* d.scale, 0 → 1 */
    cudnnTensorDescriptor_t x_desc, y_desc;
    cudnnFilterDescriptor_t w_desc;
    cudnnConvolutionDescriptor_t c_desc;
    cudnnConvolutionFwdAlgo_t algo;
    void *wei;
    size_t wei_bytes;
    float *bias;
    size_t bias_bytes;
    size_t in_off, y_off, cws_off, cws_bytes;   /* regions of the backend workspace */
    char impl[VF_CUDA_IMPL_MAX];
};

/* Choose the algorithm (see the file's comment); sets cv->algo, cv->cws_bytes, cv->impl. */
static int conv_choose_algo(struct vf_cudnn_conv *cv, cudnnHandle_t h, struct vf_error *err)
{
    int max_count = 0, got = 0, rc = VF_EINTERNAL;
    cudnnConvolutionFwdAlgoPerf_t *perf = NULL;
    VF_CHECK_CUDNN(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count), err, fail);
    if (max_count < 1)
        max_count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    perf = static_cast<cudnnConvolutionFwdAlgoPerf_t *>(calloc((size_t)max_count, sizeof *perf));
    if (!perf) {
        rc = vf_error_set(err, VF_ENOMEM, "out of host memory");
        goto fail;
    }
    VF_CHECK_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, cv->x_desc, cv->w_desc, cv->c_desc,
                                                          cv->y_desc, max_count, &got, perf),
                   err, fail);
    for (int i = 0; i < got; i++) {
        const cudnnConvolutionFwdAlgoPerf_t *p = &perf[i];
        if (p->status != CUDNN_STATUS_SUCCESS || p->determinism != CUDNN_DETERMINISTIC ||
            p->memory > VF_CUDNN_WS_CAP)
            continue;
        /* cuDNN ranks (algorithm, math type) pairs, and the determinism and memory above are
         * the pair's: the descriptor takes the entry's math type, so that the kernel that runs
         * is the one checked; f32 keeps FMA (no TF32: the f32 golden tests need f32 products) */
        if (cv->dt == VF_F32 && p->mathType != CUDNN_FMA_MATH)
            continue;
        VF_CHECK_CUDNN(cudnnSetConvolutionMathType(cv->c_desc, p->mathType), err, fail);
        /* the workspace for that pair; an algorithm this configuration does not support fails
         * here and is passed over */
        size_t bytes = 0;
        if (cudnnGetConvolutionForwardWorkspaceSize(h, cv->x_desc, cv->w_desc, cv->c_desc,
                                                    cv->y_desc, p->algo, &bytes) !=
                CUDNN_STATUS_SUCCESS ||
            bytes > VF_CUDNN_WS_CAP)
            continue;
        cv->algo = p->algo;
        cv->cws_bytes = bytes;
        snprintf(cv->impl, sizeof cv->impl, "cudnn:%s (%s)", algo_name(p->algo),
                 p->mathType == CUDNN_FMA_MATH         ? "fma"
                 : p->mathType == CUDNN_TENSOR_OP_MATH ? "tensor op"
                 : p->mathType == CUDNN_DEFAULT_MATH   ? "default math"
                                                       : "tensor op, conversion allowed");
        free(perf);
        return VF_OK;
    }
    rc = vf_error_set(err, VF_EUNSUPPORTED,
                      "cuDNN offers no deterministic forward algorithm for the %dx%d "
                      "convolution %d -> %d channels (stride %d, dilation %d, groups %d) at "
                      "%dx%d in %s within a %zu MiB workspace (%d candidates); try another "
                      "precision", cv->d.kh, cv->d.kw, cv->d.ic, cv->d.oc, cv->d.stride,
                      cv->d.dilation, cv->d.groups, cv->ch, cv->cw, vf_dtype_name(cv->dt),
                      VF_CUDNN_WS_CAP >> 20, got);
fail:
    free(perf);
    return rc;
}

extern "C" int vf_cudnn_conv_create(struct vf_cudnn_conv **out, struct vf_backend *be,
                                    const struct vf_conv_desc *d, enum vf_dtype dt,
                                    enum vf_dtype dst_dt, int n, int h, int w,
                                    const float *weight, const float *bias,
                                    struct vf_error *err)
{
    *out = NULL;
    int rc = VF_EINTERNAL;
    void *host_w = NULL;
    cudaStream_t stream = static_cast<cudaStream_t>(vf_cuda_stream(be));
    cudnnHandle_t hdl = static_cast<cudnnHandle_t>(vf_cuda_cudnn(be));
    struct vf_cudnn_conv *cv =
        static_cast<struct vf_cudnn_conv *>(calloc(1, sizeof(struct vf_cudnn_conv)));
    if (!cv)
        return vf_error_set(err, VF_ENOMEM, "out of host memory");
    cv->be = be;
    cv->d = *d;
    cv->dt = dt;
    cv->dst_dt = dst_dt;
    cv->n = n;
    cv->h = h;
    cv->w = w;
    vf_conv_out_size(d, h, w, &cv->oh, &cv->ow);
    cv->reflect = d->pad_mode == VF_PAD_REFLECT && d->pad > 0;
    cv->ch = cv->reflect ? h + 2 * d->pad : h;
    cv->cw = cv->reflect ? w + 2 * d->pad : w;
    cv->scale = d->scale != 0.0f ? d->scale : 1.0f;
    const int cpad = cv->reflect ? 0 : d->pad;
    const int g = d->groups, icg = d->ic / g;
    const size_t es = vf_dtype_size(dt);

    /* descriptors */
    VF_CHECK_CUDNN(cudnnCreateTensorDescriptor(&cv->x_desc), err, fail);
    VF_CHECK_CUDNN(cudnnCreateTensorDescriptor(&cv->y_desc), err, fail);
    VF_CHECK_CUDNN(cudnnCreateFilterDescriptor(&cv->w_desc), err, fail);
    VF_CHECK_CUDNN(cudnnCreateConvolutionDescriptor(&cv->c_desc), err, fail);
    VF_CHECK_CUDNN(cudnnSetTensor4dDescriptor(cv->x_desc, CUDNN_TENSOR_NHWC, cudnn_dt(dt), n,
                                              d->ic, cv->ch, cv->cw), err, fail);
    VF_CHECK_CUDNN(cudnnSetTensor4dDescriptor(cv->y_desc, CUDNN_TENSOR_NHWC, cudnn_dt(dt), n,
                                              d->oc, cv->oh, cv->ow), err, fail);
    VF_CHECK_CUDNN(cudnnSetFilter4dDescriptor(cv->w_desc, cudnn_dt(dt), CUDNN_TENSOR_NHWC,
                                              d->oc, icg, d->kh, d->kw), err, fail);
    VF_CHECK_CUDNN(cudnnSetConvolution2dDescriptor(cv->c_desc, cpad, cpad, d->stride, d->stride,
                                                   d->dilation, d->dilation,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                   err, fail);
    VF_CHECK_CUDNN(cudnnSetConvolutionGroupCount(cv->c_desc, g), err, fail);
    VF_CHECK_CUDNN(cudnnSetConvolutionMathType(cv->c_desc, dt == VF_F32 ? CUDNN_FMA_MATH
                                                                        : CUDNN_TENSOR_OP_MATH),
                   err, fail);
    {
        /* cuDNN's output size must be ours */
        int on = 0, oc = 0, oh = 0, ow = 0;
        VF_CHECK_CUDNN(cudnnGetConvolution2dForwardOutputDim(cv->c_desc, cv->x_desc, cv->w_desc,
                                                             &on, &oc, &oh, &ow), err, fail);
        if (on != n || oc != d->oc || oh != cv->oh || ow != cv->ow) {
            rc = vf_error_set(err, VF_EINTERNAL,
                              "cuDNN computes an output of %d x %d x %d x %d, expected "
                              "%d x %d x %d x %d", on, oc, oh, ow, n, d->oc, cv->oh, cv->ow);
            goto fail;
        }
    }
    if ((rc = conv_choose_algo(cv, hdl, err)))
        goto fail;
    rc = VF_EINTERNAL;

    /* weights: OIHW f32 → KRSC (o, kh, kw, ic/groups) in dt, once */
    cv->wei_bytes = (size_t)d->oc * d->kh * d->kw * icg * es;
    host_w = malloc(cv->wei_bytes);
    if (!host_w) {
        rc = vf_error_set(err, VF_ENOMEM, "out of host memory for the weights");
        goto fail;
    }
    for (int o = 0; o < d->oc; o++)
        for (int c = 0; c < icg; c++)
            for (int y = 0; y < d->kh; y++)
                for (int x = 0; x < d->kw; x++)
                    put_weight(host_w, (((size_t)o * d->kh + y) * d->kw + x) * icg + c, dt,
                               weight[(((size_t)o * icg + c) * d->kh + y) * d->kw + x]);
    if (!(cv->wei = vf_be_alloc_(be, cv->wei_bytes, err))) {
        rc = VF_ENOMEM;
        goto fail;
    }
    if ((rc = upload_sync(cv->wei, host_w, cv->wei_bytes, stream, err)))
        goto fail;
    if (bias) {
        cv->bias_bytes = (size_t)d->oc * sizeof(float);
        if (!(cv->bias = static_cast<float *>(vf_be_alloc_(be, cv->bias_bytes, err)))) {
            rc = VF_ENOMEM;
            goto fail;
        }
        if ((rc = upload_sync(cv->bias, bias, cv->bias_bytes, stream, err)))
            goto fail;
    }

    /* workspace: [padded/dense source | dense y (dt) | cuDNN's workspace] */
    cv->in_off = 0;
    cv->y_off = align256((size_t)n * cv->ch * cv->cw * d->ic * es);
    cv->cws_off = cv->y_off + align256((size_t)n * cv->oh * cv->ow * d->oc * es);
    if ((rc = vf_be_reserve_(be, cv->cws_off + align256(cv->cws_bytes), err)))
        goto fail;
    free(host_w);
    *out = cv;
    return VF_OK;
fail:
    free(host_w);
    vf_cudnn_conv_destroy(&cv);
    return rc ? rc : VF_EINTERNAL;
}

extern "C" int vf_cudnn_conv_run(struct vf_cudnn_conv *cv, const struct vf_tensor *src,
                                 struct vf_tensor *dst, struct vf_error *err)
{
    struct vf_backend *be = cv->be;
    const struct vf_conv_desc *d = &cv->d;
    cudaStream_t stream = static_cast<cudaStream_t>(vf_cuda_stream(be));
    cudnnHandle_t hdl = static_cast<cudnnHandle_t>(vf_cuda_cudnn(be));
    char *ws = static_cast<char *>(be->ws);
    int rc;

    /* source: as is when dense and unpadded; else reflect-filled / copied into the workspace */
    const void *x = src->data;
    if (cv->reflect || src->pix_stride != src->c) {
        x = ws + cv->in_off;
        if ((rc = copy_pixels(src->data, src->pix_stride, ws + cv->in_off, d->ic, cv->dt, cv->n,
                              d->ic, cv->h, cv->w, cv->reflect ? d->pad : 0, stream, err)))
            return rc;
    }

    const bool direct = dst->pix_stride == dst->c && cv->dst_dt == cv->dt;
    void *y = direct ? dst->data : static_cast<void *>(ws + cv->y_off);
    const float one = 1.0f, beta = direct && d->residual ? 1.0f : 0.0f;
    VF_CHECK_CUDNN(cudnnConvolutionForward(hdl, &one, cv->x_desc, x, cv->w_desc, cv->wei,
                                           cv->c_desc, cv->algo,
                                           cv->cws_bytes ? ws + cv->cws_off : NULL,
                                           cv->cws_bytes, &beta, cv->y_desc, y),
                   err, fail);

    if (!direct || cv->bias || d->act != VF_ACT_NONE || cv->scale != 1.0f) {
        epilogue e;
        e.y = y;
        e.ydt = (int)cv->dt;
        e.ys = direct ? dst->pix_stride : d->oc;
        e.dst = dst->data;
        e.ddt = (int)cv->dst_dt;
        e.ds = dst->pix_stride;
        e.bias = cv->bias;
        e.residual = d->residual && !direct;
        e.act = (int)d->act;
        e.alpha = d->alpha;
        e.scale = cv->scale;
        e.oc = d->oc;
        const long long total = (long long)cv->n * cv->oh * cv->ow * d->oc;
        k_conv_epilogue<<<grid_for(total), kThreads, 0, stream>>>(e, total);
        if ((rc = launched("convolution epilogue", err)))
            return rc;
    }
    return VF_OK;
fail:
    return VF_EINTERNAL;
}

extern "C" const char *vf_cudnn_conv_impl(const struct vf_cudnn_conv *cv)
{
    return cv ? cv->impl : "";
}

extern "C" void vf_cudnn_conv_destroy(struct vf_cudnn_conv **cvp)
{
    if (!cvp || !*cvp)
        return;
    struct vf_cudnn_conv *cv = *cvp;
    /* teardown: cuDNN's destroy calls only free host memory; their status is not actionable */
    if (cv->x_desc)
        (void)cudnnDestroyTensorDescriptor(cv->x_desc);
    if (cv->y_desc)
        (void)cudnnDestroyTensorDescriptor(cv->y_desc);
    if (cv->w_desc)
        (void)cudnnDestroyFilterDescriptor(cv->w_desc);
    if (cv->c_desc)
        (void)cudnnDestroyConvolutionDescriptor(cv->c_desc);
    if (cv->wei)
        vf_be_free_(cv->be, cv->wei, cv->wei_bytes);
    if (cv->bias)
        vf_be_free_(cv->be, cv->bias, cv->bias_bytes);
    free(cv);
    *cvp = NULL;
}

/* ============================== pooling ==================================================== */

struct vf_cudnn_pool {
    struct vf_backend *be;
    enum vf_dtype dt;
    int n, c, h, w, oh, ow;
    cudnnTensorDescriptor_t x_desc, y_desc;
    cudnnPoolingDescriptor_t p_desc;
    size_t in_off, out_off;
    char impl[VF_CUDA_IMPL_MAX];
};

extern "C" int vf_cudnn_pool_create(struct vf_cudnn_pool **out, struct vf_backend *be,
                                    const struct vf_pool_desc *d, enum vf_dtype dt, int n,
                                    int c, int h, int w, struct vf_error *err)
{
    *out = NULL;
    int rc = VF_EINTERNAL;
    struct vf_cudnn_pool *p =
        static_cast<struct vf_cudnn_pool *>(calloc(1, sizeof(struct vf_cudnn_pool)));
    if (!p)
        return vf_error_set(err, VF_ENOMEM, "out of host memory");
    p->be = be;
    p->dt = dt;
    p->n = n;
    p->c = c;
    p->h = h;
    p->w = w;
    vf_pool_out_size(d, h, w, &p->oh, &p->ow);
    const cudnnPoolingMode_t mode = d->kind == VF_POOL_MAX
                                        ? CUDNN_POOLING_MAX
                                        : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
    VF_CHECK_CUDNN(cudnnCreateTensorDescriptor(&p->x_desc), err, fail);
    VF_CHECK_CUDNN(cudnnCreateTensorDescriptor(&p->y_desc), err, fail);
    VF_CHECK_CUDNN(cudnnCreatePoolingDescriptor(&p->p_desc), err, fail);
    VF_CHECK_CUDNN(cudnnSetTensor4dDescriptor(p->x_desc, CUDNN_TENSOR_NHWC, cudnn_dt(dt), n, c,
                                              h, w), err, fail);
    VF_CHECK_CUDNN(cudnnSetTensor4dDescriptor(p->y_desc, CUDNN_TENSOR_NHWC, cudnn_dt(dt), n, c,
                                              p->oh, p->ow), err, fail);
    VF_CHECK_CUDNN(cudnnSetPooling2dDescriptor(p->p_desc, mode, CUDNN_PROPAGATE_NAN, d->k, d->k,
                                               d->pad, d->pad, d->stride, d->stride),
                   err, fail);
    {
        int on = 0, oc = 0, oh = 0, ow = 0;
        VF_CHECK_CUDNN(cudnnGetPooling2dForwardOutputDim(p->p_desc, p->x_desc, &on, &oc, &oh,
                                                         &ow), err, fail);
        if (on != n || oc != c || oh != p->oh || ow != p->ow) {
            rc = vf_error_set(err, VF_EINTERNAL,
                              "cuDNN computes a pooling output of %d x %d x %d x %d, expected "
                              "%d x %d x %d x %d", on, oc, oh, ow, n, c, p->oh, p->ow);
            goto fail;
        }
    }
    snprintf(p->impl, sizeof p->impl, "cudnn:pooling_%s",
             d->kind == VF_POOL_MAX ? "max" : "avg_exclude_padding");
    {
        const size_t es = vf_dtype_size(dt);
        p->in_off = 0;
        p->out_off = align256((size_t)n * c * h * w * es);
        if ((rc = vf_be_reserve_(be, p->out_off + align256((size_t)n * c * p->oh * p->ow * es),
                                 err)))
            goto fail;
    }
    *out = p;
    return VF_OK;
fail:
    vf_cudnn_pool_destroy(&p);
    return rc ? rc : VF_EINTERNAL;
}

extern "C" int vf_cudnn_pool_run(struct vf_cudnn_pool *p, const struct vf_tensor *src,
                                 struct vf_tensor *dst, struct vf_error *err)
{
    struct vf_backend *be = p->be;
    cudaStream_t stream = static_cast<cudaStream_t>(vf_cuda_stream(be));
    cudnnHandle_t hdl = static_cast<cudnnHandle_t>(vf_cuda_cudnn(be));
    char *ws = static_cast<char *>(be->ws);
    int rc;
    const void *x = src->data;
    if (src->pix_stride != src->c) {
        x = ws + p->in_off;
        if ((rc = copy_pixels(src->data, src->pix_stride, ws + p->in_off, p->c, p->dt, p->n,
                              p->c, p->h, p->w, 0, stream, err)))
            return rc;
    }
    const bool dview = dst->pix_stride != dst->c;
    void *y = dview ? static_cast<void *>(ws + p->out_off) : dst->data;
    const float one = 1.0f, zero = 0.0f;
    VF_CHECK_CUDNN(cudnnPoolingForward(hdl, p->p_desc, &one, p->x_desc, x, &zero, p->y_desc, y),
                   err, fail);
    if (dview)
        return copy_pixels(y, p->c, dst->data, dst->pix_stride, p->dt, p->n, p->c, p->oh, p->ow,
                           0, stream, err);
    return VF_OK;
fail:
    return VF_EINTERNAL;
}

extern "C" const char *vf_cudnn_pool_impl(const struct vf_cudnn_pool *p)
{
    return p ? p->impl : "";
}

extern "C" void vf_cudnn_pool_destroy(struct vf_cudnn_pool **pp)
{
    if (!pp || !*pp)
        return;
    struct vf_cudnn_pool *p = *pp;
    if (p->x_desc)
        (void)cudnnDestroyTensorDescriptor(p->x_desc);
    if (p->y_desc)
        (void)cudnnDestroyTensorDescriptor(p->y_desc);
    if (p->p_desc)
        (void)cudnnDestroyPoolingDescriptor(p->p_desc);
    free(p);
    *pp = NULL;
}

/* ============================== matmul ===================================================== */

struct vf_cublas_matmul {
    struct vf_backend *be;
    struct vf_matmul_desc d;
    cudaDataType_t ab_type;
    cublasComputeType_t compute;
    char impl[VF_CUDA_IMPL_MAX];
};

extern "C" int vf_cublas_matmul_create(struct vf_cublas_matmul **out, struct vf_backend *be,
                                       const struct vf_matmul_desc *d, enum vf_dtype dt,
                                       struct vf_error *err)
{
    *out = NULL;
    cublasHandle_t hdl = static_cast<cublasHandle_t>(vf_cuda_cublas(be));
    cublasMath_t mode = CUBLAS_DEFAULT_MATH;
    struct vf_cublas_matmul *mm =
        static_cast<struct vf_cublas_matmul *>(calloc(1, sizeof(struct vf_cublas_matmul)));
    if (!mm)
        return vf_error_set(err, VF_ENOMEM, "out of host memory");
    mm->be = be;
    mm->d = *d;
    mm->ab_type = cuda_dt(dt);
    VF_CHECK_CUBLAS(cublasGetMathMode(hdl, &mode), err, fail);
    /* f32: full f32 products; should the handle allow TF32, insist on pedantic f32 */
    mm->compute = CUBLAS_COMPUTE_32F;
    if (dt == VF_F32 && ((int)mode & 0xf) == (int)CUBLAS_TF32_TENSOR_OP_MATH)
        mm->compute = CUBLAS_COMPUTE_32F_PEDANTIC;
    snprintf(mm->impl, sizeof mm->impl, "cublas:gemmex %s%s, f32 accumulation%s",
             vf_dtype_name(dt), dt == VF_F32 ? "" : " tensor op",
             mm->compute == CUBLAS_COMPUTE_32F_PEDANTIC ? " (pedantic)" : "");
    *out = mm;
    return VF_OK;
fail:
    free(mm);
    return VF_EINTERNAL;
}

extern "C" int vf_cublas_matmul_run(struct vf_cublas_matmul *mm, const void *a, const void *b,
                                    float *c, struct vf_error *err)
{
    const struct vf_matmul_desc *d = &mm->d;
    cublasHandle_t hdl = static_cast<cublasHandle_t>(vf_cuda_cublas(mm->be));
    (void)vf_cuda_stream(mm->be); /* makes the backend's GPU current */
    const float one = 1.0f, zero = 0.0f;
    /* row-major C (m × n) = A·op(B) ⇔ column-major Cᵀ (n × m) = op(B)ᵀ·Aᵀ */
    VF_CHECK_CUBLAS(cublasGemmEx(hdl, d->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, d->n,
                                 d->m, d->k, &one, b, mm->ab_type, d->ldb, a, mm->ab_type,
                                 d->lda, &zero, c, CUDA_R_32F, d->ldc, mm->compute,
                                 CUBLAS_GEMM_DEFAULT),
                    err, fail);
    return VF_OK;
fail:
    return VF_EINTERNAL;
}

extern "C" const char *vf_cublas_matmul_impl(const struct vf_cublas_matmul *mm)
{
    return mm ? mm->impl : "";
}

extern "C" void vf_cublas_matmul_destroy(struct vf_cublas_matmul **mmp)
{
    if (!mmp || !*mmp)
        return;
    free(*mmp);
    *mmp = NULL;
}
