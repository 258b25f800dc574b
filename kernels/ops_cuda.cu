/*
 * kernels/ops_cuda.cu: the CUDA backend's operators beyond the elementwise ones of
 * kernels/elem_cuda.cu: instance norm (with its affine and activation, PReLU included), resize
 * (nearest, bilinear), add, concat, l2norm (with optional centring), attention rows (max,
 * softmax with temperature, weighted sum), guided upsampling and film-size propagation. Their
 * per-element bodies are kernels/elem.h's, the same as the CPU loops of kernels/ops.c (one
 * source, two targets); tensors are NHWC with a pixel stride (channel-slice views),
 * f32/bf16/f16 storage, f32 arithmetic (kernels/cuda_elem.cuh's loads and stores).
 *
 * Reductions and determinism: every reduction runs inside one thread block, in an order fixed by
 * the sizes alone: each thread sums its share (a fixed stride of positions or columns) in double,
 * then the threads' sums are added by a fixed tree (shared memory, or warp shuffles down then one
 * warp over the warps' sums). No atomics, no split across blocks: an operator gives the same bits
 * on every run on the same GPU and build. Double (not Kahan or pairwise f32) because the CPU side
 * accumulates these sums in double too (kernels.h), so both backends' statistics are accurate to
 * well below f32 rounding and differ only in the last bits; A100/H100-class GPUs (the build's
 * targets) run double at half the f32 rate, and these sums are a small part of the work. Results
 * are not bit-identical to the CPU's: the order of the sums differs, and nvcc contracts a·b + c
 * into FMAs.
 *
 * Memory: nothing is allocated. Instance-norm statistics live in shared memory (one block per
 * image × 8 channels); l2norm's centring means too (one block per image: the means of all
 * channels are needed at every position); guided upsampling uses the caller's scratch tensor,
 * with kernels/ops.c's layout (VF_GU_HS + VF_GU_AB double planes of the low-resolution size).
 *
 * Every launch is checked with cudaGetLastError (launched()); errors inside a kernel surface at
 * the next synchronisation (vf_backend_sync).
 */
#include <climits>

#include <cuda_runtime.h>

extern "C" {
#include "kernels/cuda_ops.h"
}
#include "kernels/cuda_elem.cuh"

namespace {

constexpr unsigned kFull = 0xffffffffu;

/* ============================== fixed-order reductions ===================================== */

/* Sum over the 32 lanes of a warp by shuffles down (offsets 16, 8, 4, 2, 1): a fixed tree, the
 * total in lane 0 (other lanes hold partial sums). All 32 lanes must take part. */
__device__ __forceinline__ double warp_sum(double x)
{
    for (int o = 16; o > 0; o >>= 1)
        x += __shfl_down_sync(kFull, x, o);
    return x;
}

/* Maximum over a warp, same tree (a NaN is kept where it meets a number on the right: as the
 * CPU's scan, ties and NaN do not matter to the softmax but make the result well defined). */
__device__ __forceinline__ float warp_max(float x)
{
    for (int o = 16; o > 0; o >>= 1) {
        const float y = __shfl_down_sync(kFull, x, o);
        x = y > x ? y : x;
    }
    return x;
}

/* Sum of NV values over a 1-D block (blockDim.x a multiple of 32, ≤ 1024): each warp's tree,
 * then warp 0's tree over the warps' sums in warp order. Every thread gets the totals.
 * sh: NV · 32 doubles of shared memory. */
template <int NV>
__device__ __forceinline__ void block_sum(double (&v)[NV], double *sh)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int k = 0; k < NV; k++)
        v[k] = warp_sum(v[k]);
    if (lane == 0)
#pragma unroll
        for (int k = 0; k < NV; k++)
            sh[k * 32 + warp] = v[k];
    __syncthreads();
    if (warp == 0) {
#pragma unroll
        for (int k = 0; k < NV; k++) {
            double x = warp_sum(lane < nw ? sh[k * 32 + lane] : 0.0);
            if (lane == 0)
                sh[k * 32] = x;
        }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < NV; k++)
        v[k] = sh[k * 32];
    __syncthreads();   /* sh may be reused at once */
}

/* Maximum over a 1-D block, the same shape as block_sum. sh: 32 floats of shared memory. */
__device__ __forceinline__ float block_max(float x, float *sh)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = warp_max(x);
    if (lane == 0)
        sh[warp] = x;
    __syncthreads();
    if (warp == 0) {
        const float y = warp_max(lane < nw ? sh[lane] : sh[0]);
        if (lane == 0)
            sh[0] = y;
    }
    __syncthreads();
    x = sh[0];
    __syncthreads();
    return x;
}

/* ============================== per-channel statistics ==================================== */
/* A block of CH_W × CH_P threads: threadIdx.x picks one of CH_W consecutive channels (adjacent
 * lanes read adjacent elements of a pixel), threadIdx.y one of CH_P position lanes; lane y sums
 * positions y, y + CH_P, ... in order, in double, then col_sum adds the lanes by a fixed tree. The
 * same 8 channels per group as the CPU's instance-norm tasks (kernels/ops.c, IN_CH). */
constexpr int CH_W = 8;
constexpr int CH_P = 64;
constexpr int CH_THREADS = CH_W * CH_P;

/* Sum of x over threadIdx.y for each threadIdx.x (tree: halves, in order); every thread gets
 * its column's total. red: shared [CH_P][CH_W]. */
__device__ __forceinline__ double col_sum(double x, double (*red)[CH_W])
{
    const int tx = threadIdx.x, ty = threadIdx.y;
    red[ty][tx] = x;
    __syncthreads();
    for (int s = CH_P / 2; s > 0; s >>= 1) {
        if (ty < s)
            red[ty][tx] += red[ty + s][tx];
        __syncthreads();
    }
    const double r = red[0][tx];
    __syncthreads();
    return r;
}

/* Σ over the image's positions [base, base + hw) of channel ch (0 where !on), for the block. */
__device__ __forceinline__ double chan_sum(const view &s, long long base, long long hw, int ch,
                                           bool on, double (*red)[CH_W])
{
    double acc = 0.0;
    if (on)
        for (long long q = threadIdx.y; q < hw; q += CH_P)
            acc += (double)vld(s, (base + q) * s.stride + ch);
    return col_sum(acc, red);
}

/* ============================== instance norm ============================================== */

/* Block: image blockIdx.x / nchunk, channels (blockIdx.x % nchunk)·CH_W + threadIdx.x. Two
 * passes of statistics (mean, then squared deviations from it, double), as the CPU; then
 * γ·x̂ + β and the activation. The block owns its channels of its image and writes only after
 * both passes (col_sum's barriers), so in place is safe. */
__global__ void __launch_bounds__(CH_THREADS)
k_instance_norm(view s, view d, long long hw, int nchunk, float eps, const float *gamma,
                const float *beta, int act, float alpha, const float *slopes)
{
    __shared__ double red[CH_P][CH_W];
    const long long img = blockIdx.x / nchunk;
    const int ch = (int)(blockIdx.x % nchunk) * CH_W + (int)threadIdx.x;
    const bool on = ch < s.c;
    const long long base = img * hw;
    const double mean = chan_sum(s, base, hw, ch, on, red) / (double)hw;
    double sq = 0.0;
    if (on)
        for (long long q = threadIdx.y; q < hw; q += CH_P) {
            const double dv = (double)vld(s, (base + q) * s.stride + ch) - mean;
            sq += dv * dv;
        }
    sq = col_sum(sq, red);
    if (!on)
        return;
    const float mf = (float)mean, rs = vf_in_rstd(sq, hw, eps);
    const float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
    const float sl = act == VF_ACT_PRELU ? slopes[ch] : 0.0f;
    for (long long q = threadIdx.y; q < hw; q += CH_P) {
        const float x = vld(s, (base + q) * s.stride + ch);
        vst(d, (base + q) * d.stride + ch, vact(vf_in_affine(x, mf, rs, g, b), act, alpha, sl));
    }
}

/* ============================== resize ===================================================== */

__global__ void k_resize(view s, view d, int ih, int iw, int oh, int ow, int mode, long long n)
{
    GRID_STRIDE(i, n)
    {
        const int c = d.c;
        const long long p = i / c;
        const int ch = (int)(i - p * c);
        const int x = (int)(p % ow);
        const long long row = p / ow;
        const int y = (int)(row % oh);
        const long long irow = (row / oh) * ih;
        float o;
        if (mode == VF_RESIZE_NEAREST) {
            const int sy = vf_nearest_src(y, ih, oh), sx = vf_nearest_src(x, iw, ow);
            o = vld(s, ((irow + sy) * iw + sx) * s.stride + ch);
        } else {
            int y0, y1, x0, x1;
            float hy0, hy1, wx0, wx1;
            vf_linear_src(y, ih, oh, &y0, &y1, &hy0, &hy1);
            vf_linear_src(x, iw, ow, &x0, &x1, &wx0, &wx1);
            const float a = vld(s, ((irow + y0) * iw + x0) * s.stride + ch);
            const float b = vld(s, ((irow + y0) * iw + x1) * s.stride + ch);
            const float cc = vld(s, ((irow + y1) * iw + x0) * s.stride + ch);
            const float dd = vld(s, ((irow + y1) * iw + x1) * s.stride + ch);
            o = vf_bilerp(hy0, hy1, wx0, wx1, a, b, cc, dd);
        }
        vst(d, p * d.stride + ch, o);
    }
}

/* ============================== add ======================================================== */

__global__ void k_add(view a, view b, view d, long long n)
{
    GRID_STRIDE(i, n)
    {
        const long long p = i / a.c;
        const int ch = (int)(i - p * a.c);
        vst(d, p * d.stride + ch, vld(a, p * a.stride + ch) + vld(b, p * b.stride + ch));
    }
}

/* ============================== gated add ================================================== */

/* One thread per value of w: dst = vf_gated(w, o[c], o[gate], scale, f), the gate o's last
 * channel, f the factor (f32, dense: pixel p's is f[p / fdiv], fdiv h·w for one per image, 1 for
 * one per pixel; 1 when f is null). */
__global__ void k_gated_add(view o, view w, view d, float scale, const float *f, long long fdiv,
                            long long n)
{
    GRID_STRIDE(i, n)
    {
        const long long p = i / w.c;
        const int ch = (int)(i - p * w.c);
        vst(d, p * d.stride + ch, vf_gated(vld(w, p * w.stride + ch), vld(o, p * o.stride + ch),
                                           vld(o, p * o.stride + w.c), scale, f ? f[p / fdiv] : 1.0f));
    }
}

/* One block per image: Σ |a − b| over its pixels in double (each thread a fixed stride, then
 * block_sum's fixed tree), thread 0 writes vf_motion_factor(mean, kappa). */
__global__ void __launch_bounds__(kThreads) k_motion_factor(view a, view b, float kappa,
                                                            float *dst, long long hw)
{
    __shared__ double sh[32];
    const long long p0 = (long long)blockIdx.x * hw;
    double v[1] = {0.0};
    for (long long p = threadIdx.x; p < hw; p += blockDim.x)
        v[0] += fabs((double)vld(a, (p0 + p) * a.stride) - (double)vld(b, (p0 + p) * b.stride));
    block_sum<1>(v, sh);
    if (threadIdx.x == 0)
        dst[blockIdx.x] = vf_motion_factor(v[0] / (double)hw, kappa);
}

/* One thread per pixel p of a (n images of H × W): vf_motion_factor of the mean |a − b| over its
 * (2r + 1)² window clipped at the borders, summed in double row by row (ops.c's order). */
__global__ void k_motion_map(view a, view b, float kappa, int r, int H, int W, float *dst,
                             long long n)
{
    GRID_STRIDE(p, n)
    {
        const long long hw = (long long)H * W, i = p / hw, q = p - i * hw;
        const int y = (int)(q / W), x = (int)(q - (long long)y * W);
        const int y0 = max(y - r, 0), y1 = min(y + r, H - 1), x0 = max(x - r, 0), x1 = min(x + r, W - 1);
        double s = 0.0;
        for (int v = y0; v <= y1; v++)
            for (int u = x0; u <= x1; u++) {
                const long long k = i * hw + (long long)v * W + u;
                s += fabs((double)vld(a, k * a.stride) - (double)vld(b, k * b.stride));
            }
        dst[p] = vf_motion_factor(s / ((double)(y1 - y0 + 1) * (x1 - x0 + 1)), kappa);
    }
}

/* ============================== l2norm ===================================================== */

/* One position p, by one whole warp: lane l takes channels l, l + 32, ...; Σ (x − μ)² in double,
 * warp_sum, lane 0's total broadcast (every lane divides by the same value); then
 * (x − μ) / max(‖·‖, ε). mean: c floats (shared memory) or NULL for no centring. Each lane
 * writes only what it read, after the sum: in place is safe. */
__device__ __forceinline__ void l2_position(const view &s, const view &d, long long p,
                                            const float *mean, float eps, int lane)
{
    const int c = s.c;
    double ss = 0.0;
    for (int ch = lane; ch < c; ch += 32) {
        const float x = vld(s, p * s.stride + ch);
        const float dv = mean ? x - mean[ch] : x;
        ss += (double)dv * (double)dv;
    }
    ss = __shfl_sync(kFull, warp_sum(ss), 0);
    const float den = vf_l2_den(ss, eps);
    for (int ch = lane; ch < c; ch += 32) {
        const float x = vld(s, p * s.stride + ch);
        vst(d, p * d.stride + ch, (mean ? x - mean[ch] : x) / den);
    }
}

/* Without centring: one warp per position (grid-stride over warps). */
__global__ void k_l2norm(view s, view d, long long np, float eps)
{
    const long long w0 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const long long nw = ((long long)gridDim.x * blockDim.x) >> 5;
    const int lane = threadIdx.x & 31;
    for (long long p = w0; p < np; p += nw)   /* the same p for the whole warp */
        l2_position(s, d, p, nullptr, eps, lane);
}

/* With centring: one block (CH_W × CH_P threads) per image: the channel means (chan_sum, the
 * groups of CH_W channels in turn) into shared memory, then the block's warps take positions
 * warp, warp + 16, ... Dynamic shared memory: c floats. */
__global__ void __launch_bounds__(CH_THREADS) k_l2norm_center(view s, view d, long long hw,
                                                              float eps)
{
    extern __shared__ float mean[];
    __shared__ double red[CH_P][CH_W];
    const int c = s.c;
    const long long base = (long long)blockIdx.x * hw;
    for (int c0 = 0; c0 < c; c0 += CH_W) {
        const int ch = c0 + (int)threadIdx.x;
        const double sum = chan_sum(s, base, hw, ch, ch < c, red);
        if (ch < c && threadIdx.y == 0)
            mean[ch] = (float)(sum / (double)hw);
    }
    __syncthreads();
    const int tid = (int)(threadIdx.y * CH_W + threadIdx.x);
    const int lane = tid & 31, warp = tid >> 5;
    for (long long q = warp; q < hw; q += CH_THREADS / 32)
        l2_position(s, d, base + q, mean, eps, lane);
}

/* ============================== attention rows ============================================= */

constexpr int ATT_T = 256;   /* threads per row */
constexpr int ATT_K = 8;     /* value channels per pass over a row */

/* One block per row (grid-stride over rows): the maximum (block_max), then per pass of up to
 * ATT_K value channels: e_j = exp((f_j − max)/τ) (vf_att_exp, the CPU's own), thread t summing
 * columns t, t + ATT_T, ... of e_j and e_j·v[j][k] in double, block_sum, out = Σ e·v / Σ e. */
__global__ void __launch_bounds__(ATT_T)
k_attention(const float *f, int rows, int ncols, long long ld, float tau, const float *v, int vc,
            float *s, float *out)
{
    __shared__ double sh[(ATT_K + 1) * 32];
    __shared__ float shm[32];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *fr = f + (long long)r * ld;
        float m = fr[0];
        for (int j = threadIdx.x; j < ncols; j += ATT_T)
            m = fr[j] > m ? fr[j] : m;
        m = block_max(m, shm);
        if (threadIdx.x == 0 && s)
            s[r] = m;
        for (int c0 = 0; c0 < vc; c0 += ATT_K) {
            const int nc = vc - c0 < ATT_K ? vc - c0 : ATT_K;
            double acc[ATT_K + 1];
#pragma unroll
            for (int k = 0; k <= ATT_K; k++)
                acc[k] = 0.0;
            for (int j = threadIdx.x; j < ncols; j += ATT_T) {
                const float e = vf_att_exp((fr[j] - m) / tau);
                const float *vj = v + (long long)j * vc + c0;
                acc[0] += (double)e;
#pragma unroll
                for (int k = 0; k < ATT_K; k++)
                    if (k < nc)
                        acc[1 + k] += (double)e * (double)vj[k];
            }
            block_sum<ATT_K + 1>(acc, sh);
            if (threadIdx.x == 0) {
                float *o = out + (long long)r * vc + c0;
#pragma unroll
                for (int k = 0; k < ATT_K; k++)
                    if (k < nc)
                        o[k] = (float)(acc[1 + k] / acc[0]);
            }
        }
    }
}

/* ============================== guided upsampling ========================================== */
/* kernels/ops.c's five stages, one kernel each, one thread per output pixel with the CPU's
 * per-pixel bodies (kernels/elem.h vf_gu_*), so each value is summed in the CPU's order, in
 * double. hs: VF_GU_HS planes of P = H·W doubles, abp: VF_GU_AB planes after them. */

/* 1. horizontal window sums of I, I², p_a, p_b, I·p_a, I·p_b (image's pixels from lo0) */
__global__ void k_gu_hsum_q(view g, view ab, long long lo0, int H, int W, int r, double *hs)
{
    const long long P = (long long)H * W;
    GRID_STRIDE(i, P)
    {
        const int y = (int)(i / W), x = (int)(i - (long long)y * W);
        double acc[VF_GU_HS], q[VF_GU_HS];
#pragma unroll
        for (int k = 0; k < VF_GU_HS; k++)
            acc[k] = 0.0;
        const int xb = vf_imin(x + r, W - 1);
        for (int xx = vf_imax(x - r, 0); xx <= xb; xx++) {
            const long long px = lo0 + (long long)y * W + xx;
            const long long o = px * ab.stride;
            vf_gu_quantities(vld(g, px * g.stride), vld(ab, o), vld(ab, o + 1), q);
#pragma unroll
            for (int k = 0; k < VF_GU_HS; k++)
                acc[k] += q[k];
        }
#pragma unroll
        for (int k = 0; k < VF_GU_HS; k++)
            hs[k * P + i] = acc[k];
    }
}

/* 2. vertical sums → box means → A, B per ab channel */
__global__ void k_gu_coef(const double *hs, double *abp, int H, int W, int r, double eps)
{
    const long long P = (long long)H * W;
    GRID_STRIDE(i, P)
    {
        const int y = (int)(i / W), x = (int)(i - (long long)y * W);
        double m[VF_GU_HS], c[VF_GU_AB];
        vf_gu_vmean(hs, (size_t)P, H, W, y, x, r, VF_GU_HS, m);
        vf_gu_coef(m, eps, c);
#pragma unroll
        for (int k = 0; k < VF_GU_AB; k++)
            abp[k * P + i] = c[k];
    }
}

/* 3. horizontal sums of A, B (abp → hs) */
__global__ void k_gu_hsum_ab(const double *abp, double *hs, int H, int W, int r)
{
    const long long P = (long long)H * W;
    GRID_STRIDE(i, P)
    {
        const int y = (int)(i / W), x = (int)(i - (long long)y * W);
        double acc[VF_GU_AB];
        vf_gu_hsum(abp, (size_t)P, W, y, x, r, VF_GU_AB, acc);
#pragma unroll
        for (int k = 0; k < VF_GU_AB; k++)
            hs[k * P + i] = acc[k];
    }
}

/* 4. vertical sums → box(A), box(B) (hs → abp) */
__global__ void k_gu_box_ab(const double *hs, double *abp, int H, int W, int r)
{
    const long long P = (long long)H * W;
    GRID_STRIDE(i, P)
    {
        const int y = (int)(i / W), x = (int)(i - (long long)y * W);
        double m[VF_GU_AB];
        vf_gu_vmean(hs, (size_t)P, H, W, y, x, r, VF_GU_AB, m);
#pragma unroll
        for (int k = 0; k < VF_GU_AB; k++)
            abp[k * P + i] = m[k];
    }
}

/* 5. full resolution: ab = up(box A)·I + up(box B), bilinear as PyTorch (image's pixels from
 * full0) */
__global__ void k_gu_apply(const double *abp, int H, int W, view gf, view af, long long full0,
                           int h, int w)
{
    const long long P = (long long)H * W, n = (long long)h * w;
    GRID_STRIDE(i, n)
    {
        const int y = (int)(i / w), x = (int)(i - (long long)y * w);
        int y0, y1, x0, x1;
        float hy0, hy1, wx0, wx1;
        vf_linear_src(y, H, h, &y0, &y1, &hy0, &hy1);
        vf_linear_src(x, W, w, &x0, &x1, &wx0, &wx1);
        double up[VF_GU_AB];
        vf_gu_upsample(abp, (size_t)P, W, y0, y1, hy0, hy1, x0, x1, wx0, wx1, up);
        const long long fp = full0 + i;
        const float I = vld(gf, fp * gf.stride);
        const long long o = fp * af.stride;
        vst(af, o, vf_gu_apply(up, I, 0));
        vst(af, o + 1, vf_gu_apply(up, I, 1));
    }
}

/* Film-size propagation: one thread per pixel of image img (pixels from p0), every move and its
 * window summed in Net.carry's order (kernels/elem.h's rounded operations: no FMA), the first
 * least cost kept; with subpixel the move refined by the Lucas–Kanade step and the a, b sampled
 * bilinearly (the same elem.h bodies as the CPU's); then the carried a, b blended in. */
__global__ void k_carry_ab(view g, view pg, view pab, view ab, long long p0, int h, int w,
                           float share, float confidence, int radius, int patch, bool subpixel)
{
    const long long P = (long long)h * w;
    const int r = patch / 2;
    GRID_STRIDE(i, P)
    {
        const int y = (int)(i / w), x = (int)(i - (long long)y * w);
        double best = INFINITY;
        int by = 0, bx = 0;
        for (int dy = -radius; dy <= radius; dy++) {
            for (int dx = -radius; dx <= radius; dx++) {
                double c = 0.0;
                for (int oy = -r; oy <= r; oy++) {
                    const int qy = vf_clampi(y + oy, 0, h - 1);
                    const long long prow = p0 + (long long)vf_clampi(qy + dy, 0, h - 1) * w;
                    double s = 0.0;
                    for (int ox = -r; ox <= r; ox++) {
                        const int qx = vf_clampi(x + ox, 0, w - 1);
                        const int sx = vf_clampi(qx + dx, 0, w - 1);
                        const float cur = vld(g, (p0 + (long long)qy * w + qx) * g.stride);
                        s = VF_DADD_RN(s, vf_carry_sq(cur, vld(pg, (prow + sx) * pg.stride)));
                    }
                    c = VF_DADD_RN(c, s);
                }
                c = VF_DADD_RN(c, vf_carry_tie(dy, dx));
                if (c < best) {
                    best = c;
                    by = dy;
                    bx = dx;
                }
            }
        }
        const float s = vf_carry_share(share, confidence, patch, best);
        const long long o = (p0 + i) * ab.stride;
        float carried[2];
        if (subpixel) {   /* the Lucas–Kanade step (kernels/elem.h), then bilinear taps */
            double S[5] = {0.0, 0.0, 0.0, 0.0, 0.0}, oy, ox, wy, wx;
            for (int a = -r; a <= r; a++) {
                const int qy = vf_clampi(y + a, 0, h - 1), my = vf_clampi(qy + by, 0, h - 1);
                const long long row = p0 + (long long)my * w;
                const long long up = p0 + (long long)vf_clampi(my - 1, 0, h - 1) * w;
                const long long down = p0 + (long long)vf_clampi(my + 1, 0, h - 1) * w;
                for (int b = -r; b <= r; b++) {
                    const int qx = vf_clampi(x + b, 0, w - 1), mx = vf_clampi(qx + bx, 0, w - 1);
                    vf_carry_lk_add(S, vld(g, (p0 + (long long)qy * w + qx) * g.stride),
                                    vld(pg, (row + mx) * pg.stride),
                                    vld(pg, (row + vf_clampi(mx - 1, 0, w - 1)) * pg.stride),
                                    vld(pg, (row + vf_clampi(mx + 1, 0, w - 1)) * pg.stride),
                                    vld(pg, (up + mx) * pg.stride),
                                    vld(pg, (down + mx) * pg.stride));
                }
            }
            vf_carry_lk(S, &oy, &ox);
            int y0, y1, x0, x1;
            vf_carry_taps(y + by, oy, h, &y0, &y1, &wy);
            vf_carry_taps(x + bx, ox, w, &x0, &x1, &wx);
            const long long t00 = (p0 + (long long)y0 * w + x0) * pab.stride;
            const long long t01 = (p0 + (long long)y0 * w + x1) * pab.stride;
            const long long t10 = (p0 + (long long)y1 * w + x0) * pab.stride;
            const long long t11 = (p0 + (long long)y1 * w + x1) * pab.stride;
            for (int ch = 0; ch < 2; ch++)
                carried[ch] = vf_carry_bilinear(vld(pab, t00 + ch), vld(pab, t01 + ch),
                                                vld(pab, t10 + ch), vld(pab, t11 + ch), wy, wx);
        } else {
            const long long so = (p0 + (long long)vf_clampi(y + by, 0, h - 1) * w +
                                  vf_clampi(x + bx, 0, w - 1)) * pab.stride;
            carried[0] = vld(pab, so);
            carried[1] = vld(pab, so + 1);
        }
        vst(ab, o, vf_carry_mix(s, carried[0], vld(ab, o)));
        vst(ab, o + 1, vf_carry_mix(s, carried[1], vld(ab, o + 1)));
    }
}

cudaStream_t as_stream(void *stream) { return static_cast<cudaStream_t>(stream); }

} // namespace

/* ============================== launchers ================================================== */

extern "C" int vf_cuda_instance_norm(const struct vf_tensor *src, struct vf_tensor *dst,
                                     float eps, const float *gamma, const float *beta,
                                     enum vf_act act, float alpha, const float *slopes,
                                     void *stream, struct vf_error *err)
{
    const int nchunk = (src->c + CH_W - 1) / CH_W;
    const long long blocks = (long long)src->n * nchunk;
    if (blocks > INT_MAX)
        return vf_error_set(err, VF_EUNSUPPORTED, "vf_cuda_instance_norm: %d images × %d "
                            "channels is too many", src->n, src->c);
    k_instance_norm<<<(unsigned)blocks, dim3(CH_W, CH_P), 0, as_stream(stream)>>>(
        make_view(src), make_view(dst), (long long)src->h * src->w, nchunk, eps, gamma, beta,
        (int)act, alpha, slopes);
    return launched("vf_cuda_instance_norm", err);
}

extern "C" int vf_cuda_resize(const struct vf_tensor *src, struct vf_tensor *dst,
                              enum vf_resize mode, void *stream, struct vf_error *err)
{
    const long long n = pixels(dst) * dst->c;
    k_resize<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(
        make_view(src), make_view(dst), src->h, src->w, dst->h, dst->w, (int)mode, n);
    return launched("vf_cuda_resize", err);
}

extern "C" int vf_cuda_add(const struct vf_tensor *a, const struct vf_tensor *b,
                           struct vf_tensor *dst, void *stream, struct vf_error *err)
{
    const long long n = pixels(a) * a->c;
    k_add<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(make_view(a), make_view(b),
                                                           make_view(dst), n);
    return launched("vf_cuda_add", err);
}

extern "C" int vf_cuda_gated_add(const struct vf_tensor *o, const struct vf_tensor *w, float scale,
                                 const struct vf_tensor *factor, long fdiv, struct vf_tensor *dst,
                                 void *stream, struct vf_error *err)
{
    const long long n = pixels(w) * w->c;
    const float *f = factor ? (const float *)factor->data : nullptr;
    k_gated_add<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(
        make_view(o), make_view(w), make_view(dst), scale, f, (long long)fdiv, n);
    return launched("vf_cuda_gated_add", err);
}

extern "C" int vf_cuda_motion_factor(const struct vf_tensor *a, const struct vf_tensor *b, float kappa,
                                     int radius, struct vf_tensor *dst, void *stream, struct vf_error *err)
{
    if (radius >= 0) {
        const long long n = pixels(a);
        k_motion_map<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(
            make_view(a), make_view(b), kappa, radius, a->h, a->w, (float *)dst->data, n);
        return launched("vf_cuda_motion_factor", err);
    }
    k_motion_factor<<<a->n, kThreads, 0, as_stream(stream)>>>(make_view(a), make_view(b), kappa,
                                                              (float *)dst->data,
                                                              (long long)a->h * a->w);
    return launched("vf_cuda_motion_factor", err);
}

extern "C" int vf_cuda_concat(const struct vf_tensor *const *srcs, int n, struct vf_tensor *dst,
                              void *stream, struct vf_error *err)
{
    int dc0 = 0;
    for (int i = 0; i < n; i++) {
        struct vf_tensor part = *dst;   /* channels [dc0, dc0 + srcs[i]->c) of dst */
        part.c = srcs[i]->c;
        part.data = static_cast<char *>(dst->data) + (size_t)dc0 * vf_dtype_size(dst->dtype);
        part.owned = false;
        int rc = vf_cuda_cast(srcs[i], &part, stream, err);
        if (rc != VF_OK) {
            vf_error_prefix(err, "vf_cuda_concat: source %d", i);
            return rc;
        }
        dc0 += srcs[i]->c;
    }
    return VF_OK;
}

extern "C" int vf_cuda_l2norm(const struct vf_tensor *src, struct vf_tensor *dst, bool center,
                              float eps, void *stream, struct vf_error *err)
{
    const long long hw = (long long)src->h * src->w;
    if (center) {
        k_l2norm_center<<<(unsigned)src->n, dim3(CH_W, CH_P), (size_t)src->c * sizeof(float),
                          as_stream(stream)>>>(make_view(src), make_view(dst), hw, eps);
    } else {
        const long long np = pixels(src);
        const long long per = kThreads / 32;   /* positions (warps) per block */
        long long blocks = (np + per - 1) / per;
        blocks = blocks > 65536 ? 65536 : blocks;
        k_l2norm<<<(unsigned)blocks, kThreads, 0, as_stream(stream)>>>(make_view(src),
                                                                        make_view(dst), np, eps);
    }
    return launched("vf_cuda_l2norm", err);
}

extern "C" int vf_cuda_attention_rows(const float *f, int rows, int ncols, int ld, float tau,
                                      const float *v, int vc, float *s, float *out, void *stream,
                                      struct vf_error *err)
{
    if (rows <= 0)
        return VF_OK;
    k_attention<<<(unsigned)rows, ATT_T, 0, as_stream(stream)>>>(f, rows, ncols, (long long)ld,
                                                                tau, v, vc, s, out);
    return launched("vf_cuda_attention_rows", err);
}

__global__ void k_warp_refine(const float *grey, const float *ry, const float *rab,
                              const float *pos, int pos_stride, int n, int H, int W, int radius,
                              int patch, float inv_h2, const float *tl, const float *tpl,
                              const float *tpab, int tr, float scale, int subpixel, int predict,
                              const float *motion, float *motion_out, float *out)
{
    const long long P = (long long)H * W;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n * P;
         i += (long long)gridDim.x * blockDim.x) {
        const int img = (int)(i / P);
        const int y = (int)((i % P) / W), x = (int)(i % W);
        const float *pp = pos + (((long long)img * (H / 4) + y / 4) * (W / 4) + x / 4) * pos_stride;
        float *o = out + i * 2;
        struct vf_refine_prev prev = {};
        if (tl) {
            prev.l = tl + img * P;
            prev.prev_l = tpl + img * P;
            prev.prev_ab = tpab + img * P * 2;
            prev.radius = tr;
            prev.scale = scale;
            prev.subpixel = subpixel;
            prev.predict = predict;
            if (predict) {
                prev.motion = motion + img * P * 2;
                prev.motion_out = motion_out + img * P * 2;
            }
        }
        vf_refine_px(grey + img * P, ry + img * P, rab + img * P * 2, H, W, y, x, pp[0], pp[1],
                     radius, patch, inv_h2, &prev, o, o + 1);
    }
}

extern "C" int vf_cuda_ops_stack_bytes(size_t *bytes, struct vf_error *err)
{
    /* the kernels whose bodies keep arrays per thread (elem.h's refinement, carry, attention) */
    const void *const kernels[] = {reinterpret_cast<const void *>(k_warp_refine),
                                   reinterpret_cast<const void *>(k_carry_ab),
                                   reinterpret_cast<const void *>(k_attention)};
    *bytes = 0;
    for (const void *k : kernels) {
        cudaFuncAttributes a;
        VF_CHECK_CUDA(cudaFuncGetAttributes(&a, k), err, fail);
        if (a.localSizeBytes > *bytes)
            *bytes = a.localSizeBytes;
    }
    return VF_OK;
fail:
    return vf_error_prefix(err, "the kernels' local memory");
}

extern "C" int vf_cuda_warp_refine(const struct vf_tensor *grey, const struct vf_tensor *ref_y,
                                   const struct vf_tensor *ref_ab, const struct vf_tensor *pos,
                                   int radius, int patch, float inv_h2,
                                   const struct vf_refine_temporal_args *tp, float scale,
                                   struct vf_tensor *dst, void *stream, struct vf_error *err)
{
    const long long n = pixels(grey);
    k_warp_refine<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(
        static_cast<const float *>(grey->data), static_cast<const float *>(ref_y->data),
        static_cast<const float *>(ref_ab->data), static_cast<const float *>(pos->data),
        pos->pix_stride, grey->n, grey->h, grey->w, radius, patch, inv_h2,
        tp ? static_cast<const float *>(tp->l->data) : nullptr,
        tp ? static_cast<const float *>(tp->prev_l->data) : nullptr,
        tp ? static_cast<const float *>(tp->prev_ab->data) : nullptr, tp ? tp->radius : 0, scale,
        tp ? tp->subpixel : 0, tp ? tp->predict : 0,
        tp && tp->predict ? static_cast<const float *>(tp->motion->data) : nullptr,
        tp && tp->predict ? static_cast<float *>(tp->motion_out->data) : nullptr,
        static_cast<float *>(dst->data));
    return launched("vf_cuda_warp_refine", err);
}

extern "C" int vf_cuda_guided_upsample(const struct vf_tensor *grey_lo,
                                       const struct vf_tensor *ab_lo,
                                       const struct vf_tensor *grey_full,
                                       struct vf_tensor *ab_full, int radius, float eps,
                                       struct vf_tensor *scratch, void *stream,
                                       struct vf_error *err)
{
    const int H = grey_lo->h, W = grey_lo->w, h = grey_full->h, w = grey_full->w;
    const long long P = (long long)H * W, full = (long long)h * w;
    double *hs = static_cast<double *>(scratch->data);
    double *abp = hs + (size_t)VF_GU_HS * (size_t)P;
    const cudaStream_t st = as_stream(stream);
    const view g = make_view(grey_lo), ab = make_view(ab_lo);
    const view gf = make_view(grey_full), af = make_view(ab_full);
    int rc;
    for (int img = 0; img < grey_lo->n; img++) {
        k_gu_hsum_q<<<grid_for(P), kThreads, 0, st>>>(g, ab, (long long)img * P, H, W, radius,
                                                      hs);
        if ((rc = launched("vf_cuda_guided_upsample (window sums)", err)) != VF_OK)
            return rc;
        k_gu_coef<<<grid_for(P), kThreads, 0, st>>>(hs, abp, H, W, radius, (double)eps);
        if ((rc = launched("vf_cuda_guided_upsample (coefficients)", err)) != VF_OK)
            return rc;
        k_gu_hsum_ab<<<grid_for(P), kThreads, 0, st>>>(abp, hs, H, W, radius);
        if ((rc = launched("vf_cuda_guided_upsample (coefficient sums)", err)) != VF_OK)
            return rc;
        k_gu_box_ab<<<grid_for(P), kThreads, 0, st>>>(hs, abp, H, W, radius);
        if ((rc = launched("vf_cuda_guided_upsample (coefficient means)", err)) != VF_OK)
            return rc;
        k_gu_apply<<<grid_for(full), kThreads, 0, st>>>(abp, H, W, gf, af, (long long)img * full,
                                                       h, w);
        if ((rc = launched("vf_cuda_guided_upsample (upsampling)", err)) != VF_OK)
            return rc;
    }
    return VF_OK;
}

extern "C" int vf_cuda_carry_ab(const struct vf_tensor *grey, const struct vf_tensor *prev_grey,
                                const struct vf_tensor *prev_ab, struct vf_tensor *ab,
                                float share, float confidence, int radius, int patch,
                                bool subpixel, void *stream, struct vf_error *err)
{
    const long long P = (long long)grey->h * grey->w;
    for (int img = 0; img < grey->n; img++) {
        k_carry_ab<<<grid_for(P), kThreads, 0, as_stream(stream)>>>(
            make_view(grey), make_view(prev_grey), make_view(prev_ab), make_view(ab),
            (long long)img * P, grey->h, grey->w, share, confidence, radius, patch, subpixel);
        const int rc = launched("vf_cuda_carry_ab", err);
        if (rc != VF_OK)
            return rc;
    }
    return VF_OK;
}
