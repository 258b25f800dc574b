/*
 * kernels/elem.h: the per-element bodies of the operators, one source for two targets: the CPU
 * loops of kernels/ops.c (C11) and the CUDA kernels of kernels/elem_cuda.cu (nvcc, C++). Every
 * function is `static inline VF_HD` (__host__ __device__ under nvcc), uses float arithmetic and
 * only math functions that exist on both sides (powf, cbrtf, expf, tanhf, sqrtf, sqrt, floorf).
 *
 * The colour maths are docs/NETWORK.md's, to the constant: sRGB transfer lin()/gam(), CIE Lab
 * (D65) with the matrix M and its inverse as written there, the neutral-grey lightness reading,
 * ImageNet's normalisation, and the keep-luma solve (the root of 20 bisection steps on L*, found
 * by a safeguarded Newton iteration that falls back to them).
 *
 * Storage conversions: bf16 and f16 ↔ f32, round to nearest even, NaN stays NaN (quiet),
 * overflow to ±inf, f16 subnormals exact.
 */
#ifndef VF_KERNELS_ELEM_H
#define VF_KERNELS_ELEM_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"   /* VF_REFINE_MAX_RADIUS */

#ifdef __CUDACC__
#define VF_HD __host__ __device__
#else
#define VF_HD
#endif

/* ============================== storage conversions ======================================== */

static inline VF_HD uint32_t vf_f32_bits(float f)
{
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

static inline VF_HD float vf_bits_f32(uint32_t u)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

static inline VF_HD float vf_bf16_to_f32(uint16_t h) { return vf_bits_f32((uint32_t)h << 16); }

static inline VF_HD uint16_t vf_f32_to_bf16(float f)
{
    uint32_t x = vf_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)           /* NaN: keep sign and top payload, quiet */
        return (uint16_t)((x >> 16) | 0x0040u);
    x += 0x7fffu + ((x >> 16) & 1u);               /* round to nearest even (inf stays inf) */
    return (uint16_t)(x >> 16);
}

static inline VF_HD float vf_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {                                  /* zero or subnormal: m · 2^-24, exact */
        float v = (float)m * 5.9604644775390625e-8f;
        return vf_bits_f32(vf_f32_bits(v) | sign);
    }
    if (e == 31)                                   /* inf, NaN (payload kept) */
        return vf_bits_f32(sign | 0x7f800000u | (m << 13));
    return vf_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

static inline VF_HD uint16_t vf_f32_to_f16(float f)
{
    uint32_t x = vf_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)                          /* NaN: quiet, top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x47800000u)                         /* ≥ 65536 (and inf): inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) {                       /* normal f16 range (≥ 2^-14) */
        uint32_t r = ax - 0x38000000u;             /* rebias 127 → 15 */
        uint32_t q = r >> 13, rem = r & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
            q++;                                   /* a carry into the exponent is right,
                                                      up to 0x7c00 = inf */
        return (uint16_t)(sign | q);
    }
    if (ax < 0x33000000u)                          /* < 2^-25: rounds to ±0 */
        return sign;
    /* subnormal f16: value = m · 2^(e−150), in units of 2^-24: m >> (126 − e) */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e;                     /* 14..24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return (uint16_t)(sign | q);
}

/* ============================== activations ================================================ */

static inline VF_HD float vf_relu(float x) { return x < 0.0f ? 0.0f : x; }
static inline VF_HD float vf_lrelu(float x, float alpha) { return x < 0.0f ? alpha * x : x; }
/* PReLU is a leaky ReLU with the channel's slope. */
static inline VF_HD float vf_prelu(float x, float slope) { return x < 0.0f ? slope * x : x; }
static inline VF_HD float vf_tanh(float x) { return tanhf(x); }
/* The gated correction of C (arch C.gate, docs/NETWORK.md "C"): w + f·(σ(g)·scale·tanh(o)), in
 * the reference's order (σ(g) times scale·tanh(o), times the image's motion factor f of
 * C.gate_motion, 1 without it, then + w). σ(g) = 1 / (1 + e^−g): 0 when e^−g overflows, no NaN. */
static inline VF_HD float vf_gated(float w, float o, float g, float scale, float f)
{
    return w + f * ((1.0f / (1.0f + expf(-g))) * (scale * tanhf(o)));
}

/* C.gate_motion's factor from the mean m of |L(t) − L(t−1)| over an image: m / (m + κ). */
static inline VF_HD float vf_motion_factor(double m, float kappa)
{
    return (float)(m / (m + (double)kappa));
}

/* ============================== colour (docs/NETWORK.md) =================================== */

/* sRGB transfer: lin = decode (R′ → R), gam = encode (R → R′). */
static inline VF_HD float vf_srgb_lin(float c)
{
    return c <= 0.04045f ? c / 12.92f : powf((c + 0.055f) / 1.055f, 2.4f);
}
static inline VF_HD float vf_srgb_gam(float c)
{
    return c <= 0.0031308f ? 12.92f * c : 1.055f * powf(c, 1.0f / 2.4f) - 0.055f;
}

/* CIE f and its inverse; δ = 6/29. */
#define VF_LAB_D 0.20689655172413793f          /* 6/29 */
#define VF_LAB_D3 0.008856451679035631f        /* (6/29)³ */
#define VF_LAB_3D2 0.12841854934601665f        /* 3·(6/29)² */
#define VF_LAB_4_29 0.13793103448275862f       /* 4/29 */

static inline VF_HD float vf_lab_f(float t)
{
    return t > VF_LAB_D3 ? cbrtf(t) : t / VF_LAB_3D2 + VF_LAB_4_29;
}
static inline VF_HD float vf_lab_finv(float t)
{
    return t > VF_LAB_D ? t * t * t : VF_LAB_3D2 * (t - VF_LAB_4_29);
}

/* D65 white. */
#define VF_XN 0.95047f
#define VF_YN 1.0f
#define VF_ZN 1.08883f

/* M (linear sRGB → XYZ) and M⁻¹, the 9 numbers of NETWORK.md each. */
#define VF_M00 0.4124564f
#define VF_M01 0.3575761f
#define VF_M02 0.1804375f
#define VF_M10 0.2126729f
#define VF_M11 0.7151522f
#define VF_M12 0.0721750f
#define VF_M20 0.0193339f
#define VF_M21 0.1191920f
#define VF_M22 0.9503041f

#define VF_MI00 3.2404542f
#define VF_MI01 (-1.5371385f)
#define VF_MI02 (-0.4985314f)
#define VF_MI10 (-0.9692660f)
#define VF_MI11 1.8760108f
#define VF_MI12 0.0415560f
#define VF_MI20 0.0556434f
#define VF_MI21 (-0.2040259f)
#define VF_MI22 1.0572252f

/* ImageNet normalisation of F's input: (x − mean) / std per channel R, G, B. */
#define VF_IMNET_MEAN_R 0.485f
#define VF_IMNET_MEAN_G 0.456f
#define VF_IMNET_MEAN_B 0.406f
#define VF_IMNET_STD_R 0.229f
#define VF_IMNET_STD_G 0.224f
#define VF_IMNET_STD_B 0.225f

typedef struct {
    float x, y, z;
} vf_f3;

static inline VF_HD vf_f3 vf_f3_make(float x, float y, float z)
{
    vf_f3 r;
    r.x = x;
    r.y = y;
    r.z = z;
    return r;
}

static inline VF_HD float vf_clamp01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

/* ImageNet-normalised channel k (0 R, 1 G, 2 B) of value x. */
static inline VF_HD float vf_imnet_norm(float x, int k)
{
    return k == 0 ? (x - VF_IMNET_MEAN_R) / VF_IMNET_STD_R
         : k == 1 ? (x - VF_IMNET_MEAN_G) / VF_IMNET_STD_G
                  : (x - VF_IMNET_MEAN_B) / VF_IMNET_STD_B;
}

/* Linear-light sRGB R, G, B → Lab: vf_rgb_to_lab after the transfer (kernels/quality.c feeds it
 * from a table of vf_srgb_lin over the integer sample values). */
static inline VF_HD vf_f3 vf_lin_to_lab(float lr, float lg, float lb)
{
    float X = VF_M00 * lr + VF_M01 * lg + VF_M02 * lb;
    float Y = VF_M10 * lr + VF_M11 * lg + VF_M12 * lb;
    float Z = VF_M20 * lr + VF_M21 * lg + VF_M22 * lb;
    float fx = vf_lab_f(X / VF_XN), fy = vf_lab_f(Y / VF_YN), fz = vf_lab_f(Z / VF_ZN);
    return vf_f3_make(116.0f * fy - 16.0f, 500.0f * (fx - fy), 200.0f * (fy - fz));
}

/* sRGB R′G′B′ in [0,1] → Lab. */
static inline VF_HD vf_f3 vf_rgb_to_lab(float r, float g, float b)
{
    return vf_lin_to_lab(vf_srgb_lin(r), vf_srgb_lin(g), vf_srgb_lin(b));
}

/* Lab → linear-light XYZ. */
static inline VF_HD vf_f3 vf_lab_to_xyz(float L, float a, float b)
{
    float fy = (L + 16.0f) / 116.0f;
    float fx = fy + a / 500.0f;
    float fz = fy - b / 200.0f;
    return vf_f3_make(VF_XN * vf_lab_finv(fx), VF_YN * vf_lab_finv(fy), VF_ZN * vf_lab_finv(fz));
}

/* Lab → sRGB R′G′B′, clamped to [0,1] after the transfer: clamp01(gam(M⁻¹·XYZ)). */
static inline VF_HD vf_f3 vf_lab_to_rgb(float L, float a, float b)
{
    vf_f3 t = vf_lab_to_xyz(L, a, b);
    float lr = VF_MI00 * t.x + VF_MI01 * t.y + VF_MI02 * t.z;
    float lg = VF_MI10 * t.x + VF_MI11 * t.y + VF_MI12 * t.z;
    float lb = VF_MI20 * t.x + VF_MI21 * t.y + VF_MI22 * t.z;
    return vf_f3_make(vf_clamp01(vf_srgb_gam(lr)), vf_clamp01(vf_srgb_gam(lg)),
                      vf_clamp01(vf_srgb_gam(lb)));
}

/* A neutral grey's lightness: L = 116·f(lin(Y′)) − 16 (R = G = B = Y′, so Y = lin(Y′)). */
static inline VF_HD float vf_grey_to_l(float grey)
{
    return 116.0f * vf_lab_f(vf_srgb_lin(grey)) - 16.0f;
}

/* Luma of R′G′B′ for the output matrix: Kr·R′ + (1 − Kr − Kb)·G′ + Kb·B′. */
static inline VF_HD float vf_luma(vf_f3 c, float kr, float kb)
{
    return kr * c.x + (1.0f - kr - kb) * c.y + kb * c.z;
}

/* Keep the film's luma (NETWORK.md post-processing 2): the colour with chroma (a, b) whose
 * clamped R′G′B′ has luma `grey`: L* in [0, 100] by 20 bisection steps (lo = mid when the luma
 * at mid is below the target, else hi = mid; L* = (lo + hi)/2). Returns that colour. This is
 * the definition; vf_keep_luma_rgb below finds the same root faster and falls back to this. */
#define VF_KEEP_LUMA_STEPS 20
static inline VF_HD vf_f3 vf_keep_luma_rgb_bisect(float grey, float a, float b, float kr, float kb)
{
    float lo = 0.0f, hi = 100.0f;
    for (int i = 0; i < VF_KEEP_LUMA_STEPS; i++) {
        float mid = 0.5f * (lo + hi);
        if (vf_luma(vf_lab_to_rgb(mid, a, b), kr, kb) < grey)
            lo = mid;
        else
            hi = mid;
    }
    return vf_lab_to_rgb(0.5f * (lo + hi), a, b);
}

/* clamp01(gam(lin)) (the same float as vf_clamp01(vf_srgb_gam(lin))) and its derivative d/dlin,
 * 0 where clamped. Above 1.001 the result is 1 without the powf. */
static inline VF_HD float vf_gam01_d(float lin, float *d)
{
    if (lin <= 0.0031308f) {
        const float v = 12.92f * lin;
        *d = v > 0.0f ? 12.92f : 0.0f;
        return v < 0.0f ? 0.0f : v;
    }
    if (lin >= 1.001f) {
        *d = 0.0f;
        return 1.0f;
    }
    const float v = 1.055f * powf(lin, 1.0f / 2.4f) - 0.055f;
    if (v >= 1.0f) {
        *d = 0.0f;
        return v > 1.0f ? 1.0f : v;
    }
    *d = (v + 0.055f) / (2.4f * lin);      /* 1.055/2.4 · lin^(1/2.4 − 1) */
    return v;
}

/* The keep-luma function at L: the clamped colour *c (= vf_lab_to_rgb(L, a, b), bit for bit),
 * its luma (returned) and d(luma)/dL (*dg; 0 for clamped channels). */
static inline VF_HD float vf_keep_luma_eval(float L, float a, float b, float kr, float kb,
                                            vf_f3 *c, float *dg)
{
    const float fy = (L + 16.0f) / 116.0f;
    const float fx = fy + a / 500.0f;
    const float fz = fy - b / 200.0f;
    const float X = VF_XN * vf_lab_finv(fx), Y = VF_YN * vf_lab_finv(fy);
    const float Z = VF_ZN * vf_lab_finv(fz);
    const float lr = VF_MI00 * X + VF_MI01 * Y + VF_MI02 * Z;
    const float lg = VF_MI10 * X + VF_MI11 * Y + VF_MI12 * Z;
    const float lb = VF_MI20 * X + VF_MI21 * Y + VF_MI22 * Z;
    /* d/dL of X, Y, Z (finv′(t) = 3t² above δ, 3δ² below), 1/116 applied at the end */
    const float dX = VF_XN * (fx > VF_LAB_D ? 3.0f * fx * fx : VF_LAB_3D2);
    const float dY = VF_YN * (fy > VF_LAB_D ? 3.0f * fy * fy : VF_LAB_3D2);
    const float dZ = VF_ZN * (fz > VF_LAB_D ? 3.0f * fz * fz : VF_LAB_3D2);
    float dr, dgg, db;
    c->x = vf_gam01_d(lr, &dr);
    c->y = vf_gam01_d(lg, &dgg);
    c->z = vf_gam01_d(lb, &db);
    const float kg = 1.0f - kr - kb;
    *dg = (kr * dr * (VF_MI00 * dX + VF_MI01 * dY + VF_MI02 * dZ) +
           kg * dgg * (VF_MI10 * dX + VF_MI11 * dY + VF_MI12 * dZ) +
           kb * db * (VF_MI20 * dX + VF_MI21 * dY + VF_MI22 * dZ)) *
          (1.0f / 116.0f);
    return vf_luma(*c, kr, kb);
}

/* The L* the 20 bisection steps give when every luma is below the target (all lo = mid), and
 * when none is (all hi = mid): 100 − 100/2²¹ in float steps, and 100/2²¹. */
#define VF_KEEP_LUMA_LMAX 99.9999542f
#define VF_KEEP_LUMA_LMIN 4.76837158203125e-05f
/* Newton: iterations before the fallback, the step that ends it (L* units), the least slope. */
#define VF_KEEP_LUMA_NEWTON 12
#define VF_KEEP_LUMA_TOL 2e-5f
#define VF_KEEP_LUMA_DMIN 1e-6f
/* Chroma a² + b² below which the luma of either matrix (BT.709, BT.601) increases with L*
 * (tests/test_ops.c scans it; it first dips near a² + b² = 136²): only there Newton's root is
 * the bisection's; beyond, the bisection itself runs. */
#define VF_KEEP_LUMA_CHROMA2 (120.0f * 120.0f)

/* The keep-luma colour (the same root as vf_keep_luma_rgb_bisect, found by a safeguarded Newton
 * iteration on L* from the neutral reading of the grey, which is the root when a = b = 0):
 * each evaluation narrows a bracket [bl, bh] (luma(bl) < grey ≤ luma(bh)); a step that leaves
 * it goes to the bisection's end point (L* = 100/2²¹ or 100 − 100/2²¹, where it stops when
 * every luma is above or below the target) or halves the bracket. It returns the colour at the
 * last point once the Newton step or the bracket is under VF_KEEP_LUMA_TOL (2e-5; so |ΔL*| to
 * the bisection's root ≤ 2e-5 + its half-width 4.8e-5 where the luma increases through the
 * root), and falls back to the 20 bisection steps when the slope is not positive (clamped,
 * flat or decreasing luma), the input is not finite, the chroma radius is ≥ 120 (where luma
 * stops increasing in L*: checked for BT.709 and BT.601), or VF_KEEP_LUMA_NEWTON (12) steps do
 * not converge. */
static inline VF_HD vf_f3 vf_keep_luma_rgb(float grey, float a, float b, float kr, float kb)
{
    if (!(a * a + b * b < VF_KEEP_LUMA_CHROMA2))
        return vf_keep_luma_rgb_bisect(grey, a, b, kr, kb);
    float bl = 0.0f, bh = 100.0f;      /* 0 and 100: not evaluated */
    /* the neutral reading 116·f(lin(grey)) − 16 with f = cbrt: one powf (a start, not a result) */
    float x = grey > 0.04045f ? 116.0f * powf((grey + 0.055f) / 1.055f, 0.8f) - 16.0f
                              : 116.0f * vf_lab_f(grey / 12.92f) - 16.0f;
    x = x > VF_KEEP_LUMA_LMIN ? x : VF_KEEP_LUMA_LMIN;   /* NaN too */
    x = x < VF_KEEP_LUMA_LMAX ? x : VF_KEEP_LUMA_LMAX;
    for (int it = 0; it < VF_KEEP_LUMA_NEWTON; it++) {
        vf_f3 c;
        float d;
        const float g = vf_keep_luma_eval(x, a, b, kr, kb, &c, &d);
        if (g < grey) {
            if (x >= VF_KEEP_LUMA_LMAX)
                return c;
            bl = x;
        } else {
            if (x <= VF_KEEP_LUMA_LMIN)
                return c;
            bh = x;
        }
        if (bh - bl <= VF_KEEP_LUMA_TOL)
            return c;
        float xn;
        if (d > VF_KEEP_LUMA_DMIN) {
            const float step = (grey - g) / d;
            if (fabsf(step) <= VF_KEEP_LUMA_TOL)
                return c;
            xn = x + step;
        } else if (d < -VF_KEEP_LUMA_DMIN || d != d) {
            break;                     /* decreasing (or NaN): the bisection decides */
        } else if (g < grey) {         /* flat here (every channel clamped) */
            xn = bh == 100.0f ? VF_KEEP_LUMA_LMAX : 0.5f * (bl + bh);
        } else {
            xn = bl == 0.0f ? VF_KEEP_LUMA_LMIN : 0.5f * (bl + bh);
        }
        if (!(xn > bl && xn < bh)) {
            if (xn >= bh)
                xn = bh == 100.0f ? VF_KEEP_LUMA_LMAX : 0.5f * (bl + bh);
            else
                xn = bl == 0.0f ? VF_KEEP_LUMA_LMIN : 0.5f * (bl + bh);
        }
        x = xn;
    }
    return vf_keep_luma_rgb_bisect(grey, a, b, kr, kb);
}

/* Cb and Cr of R′G′B′ with its own luma Y: Cb = (B′ − Y)/(2(1 − Kb)), Cr = (R′ − Y)/(2(1 − Kr)). */
static inline VF_HD float vf_cb(vf_f3 c, float kr, float kb)
{
    return (c.z - vf_luma(c, kr, kb)) / (2.0f * (1.0f - kb));
}
static inline VF_HD float vf_cr(vf_f3 c, float kr, float kb)
{
    return (c.x - vf_luma(c, kr, kb)) / (2.0f * (1.0f - kr));
}

/* ============================== operators' per-element bodies ============================== */
/* What kernels/ops.c's loops and kernels/ops_cuda.cu's kernels compute per output element, in
 * the same operation order (so the CPU's results do not depend on which side calls them; nvcc
 * may still contract a·b + c into an FMA, so the GPU's can differ in the last bits). */

static inline VF_HD int vf_imin(int a, int b) { return a < b ? a : b; }
static inline VF_HD int vf_imax(int a, int b) { return a > b ? a : b; }
/* v clamped to [lo, hi] (a coordinate to the picture: vf_clampi(y, 0, H − 1)). */
static inline VF_HD int vf_clampi(int v, int lo, int hi) { return vf_imin(vf_imax(v, lo), hi); }

/* ---- resize (PyTorch's conventions) ---- */

/* PyTorch's 'nearest' (upsample_nearest2d with an output size): identity, ×2 by a shift,
 * otherwise min(floor(dst · (float)(in/out)), in − 1) in float arithmetic. */
static inline VF_HD int vf_nearest_src(int dst, int in, int out)
{
    if (out == in)
        return dst;
    if (out == 2 * in)
        return dst >> 1;
    float scale = (float)in / (float)out;
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

/* PyTorch's linear source index, align_corners=False: real = scale·(dst + 0.5) − 0.5 in float,
 * negative clamped to 0; i0 = min(floor(real), in − 1), i1 = i0 + (i0 < in − 1), λ1 = real − i0
 * clamped to [0, 1], λ0 = 1 − λ1. */
static inline VF_HD void vf_linear_src(int dst, int in, int out, int *i0, int *i1, float *l0,
                                       float *l1)
{
    float scale = (float)in / (float)out;
    float real = scale * ((float)dst + 0.5f) - 0.5f;
    if (real < 0.0f)
        real = 0.0f;
    int i = vf_imin((int)floorf(real), in - 1);
    float l = real - (float)i;
    l = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l);
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l1 = l;
    *l0 = 1.0f - l;
}

/* Bilinear blend of the four neighbours a (y0, x0), b (y0, x1), c (y1, x0), d (y1, x1). */
static inline VF_HD float vf_bilerp(float hy0, float hy1, float wx0, float wx1, float a, float b,
                                    float c, float d)
{
    return hy0 * (wx0 * a + wx1 * b) + hy1 * (wx0 * c + wx1 * d);
}

/* ---- instance norm ---- */

/* 1/√(σ² + ε) from the sum of squared deviations over hw positions (double), as f32. */
static inline VF_HD float vf_in_rstd(double sq, long long hw, float eps)
{
    return (float)(1.0 / sqrt(sq / (double)hw + (double)eps));
}

/* γ·(x − μ)/σ + β (before the activation). */
static inline VF_HD float vf_in_affine(float x, float mean, float rstd, float gamma, float beta)
{
    return (x - mean) * rstd * gamma + beta;
}

/* ---- l2norm ---- */

/* The divisor of a position: max(‖x‖, ε) from the sum of squares (double). */
static inline VF_HD float vf_l2_den(double ss, float eps)
{
    float nrm = (float)sqrt(ss);
    return nrm > eps ? nrm : eps;
}

/* ---- warp refinement (docs/NETWORK.md, "A", refine) ---- */

/* min(m, p[0], …, p[n − 1]) over the values that are not NaN (m if none is smaller): four
 * running minima, so the compares do not wait on one another. The refinement's costs are never
 * −0, so the order in which equal values meet does not show in the result. */
static inline VF_HD float vf_min_run(const float *p, int n, float m)
{
    float m0 = m, m1 = m, m2 = m, m3 = m;
    int k = 0;
    for (; k + 4 <= n; k += 4) {
        m0 = p[k] < m0 ? p[k] : m0;
        m1 = p[k + 1] < m1 ? p[k + 1] : m1;
        m2 = p[k + 2] < m2 ? p[k + 2] : m2;
        m3 = p[k + 3] < m3 ? p[k + 3] : m3;
    }
    for (; k < n; k++)
        m0 = p[k] < m0 ? p[k] : m0;
    m0 = m1 < m0 ? m1 : m0;
    m2 = m3 < m2 ? m3 : m2;
    return m2 < m0 ? m2 : m0;
}

/* A refinement weight exp(t), t = −(cost − m)·inv_h2 ≤ 0 (m the least cost where it is taken,
 * whose own weight is 1): 0 below VF_REFINE_EXP_MIN (e^−69 = 1.03e−30: a window's weight sum,
 * at most 396 weights, moves by less than 4e−28 relative, and no weight is subnormal:
 * subnormal operands cost the CPU a microcode assist per vector instruction), else expf(t);
 * NaN stays NaN. */
#define VF_REFINE_EXP_MIN (-69.0f)
static inline VF_HD float vf_refine_weight(float t)
{
    return t < VF_REFINE_EXP_MIN ? 0.0f : expf(t);
}

/* The normalised softmax sums Σ w·a, Σ w·b of one window (rows [i0, i0 + K), columns [j0, j0 + K)
 * of the D × D candidates) joined by the nt temporal candidates (tcost, te, ta, tb; their costs
 * already in the window's units; tmin their minimum, vf_min_run), w = exp(−(cost −
 * cmin)·inv_h2); e and te hold exp(−(cost − gmin)·inv_h2) of every candidate, used as they are
 * when the minimum over the window and the temporal candidates is the global one (every exp
 * vf_refine_weight's). */
static inline VF_HD void vf_refine_window(const float *cost, const float *e, const float *ca,
                                          const float *cb, int D, int i0, int j0,
                                          const float *tcost, const float *te, const float *ta,
                                          const float *tb, int nt, float tmin, float gmin,
                                          float inv_h2, float *oa, float *ob)
{
    const int K = D - 1;
    float cmin = tmin;
    for (int i = i0; i < i0 + K; i++)
        cmin = vf_min_run(cost + i * D + j0, K, cmin);
    float sw = 0.0f, sa = 0.0f, sb = 0.0f;
    const int shared = cmin == gmin;
    for (int i = i0; i < i0 + K; i++)
        for (int j = j0; j < j0 + K; j++) {
            const int k = i * D + j;
            const float w = shared ? e[k] : vf_refine_weight(-(cost[k] - cmin) * inv_h2);
            sw += w;
            sa += w * ca[k];
            sb += w * cb[k];
        }
    for (int k = 0; k < nt; k++) {
        const float w = shared ? te[k] : vf_refine_weight(-(tcost[k] - cmin) * inv_h2);
        sw += w;
        sa += w * ta[k];
        sb += w * tb[k];
    }
    *oa = sa / sw;
    *ob = sb / sw;
}

/* The n × n window of img (H × W, rows of W) whose top left is (y0, x0), coordinates clamped,
 * into out (row-major). */
static inline VF_HD void vf_window_clamped(const float *img, int H, int W, int y0, int x0, int n,
                                           float *out)
{
    for (int u = 0; u < n; u++) {
        const float *row = img + (size_t)vf_clampi(y0 + u, 0, H - 1) * (size_t)W;
        for (int v = 0; v < n; v++)
            out[u * n + v] = row[vf_clampi(x0 + v, 0, W - 1)];
    }
}

/* Σ (p − window)² of a patch × patch patch p (row-major) against the patch × patch window
 * whose top left is w (rows of `stride`), all inside. */
static inline VF_HD float vf_patch_ssd(const float *p, const float *w, int stride, int patch)
{
    float acc = 0.0f;
    for (int u = 0; u < patch; u++)
        for (int v = 0; v < patch; v++) {
            const float d = p[u * patch + v] - w[u * stride + v];
            acc += d * d;
        }
    return acc;
}

/* Σ (p − window)² · f for an n × n grid of candidates, all inside the region reg (G × G, G =
 * n + patch − 1; candidate (i, j)'s window has its top left at reg[i·G + j]), into out[i·n + j]:
 * a candidate row at a time, its n columns the inner (vectorisable) loop, each candidate's sum
 * in vf_patch_ssd's order. n at most VF_SSD_GRID_MAX. */
#define VF_SSD_GRID_MAX (2 * VF_REFINE_MAX_RADIUS + 2 > 2 * VF_REFINE_MAX_TEMPORAL + 1          \
                             ? 2 * VF_REFINE_MAX_RADIUS + 2                                    \
                             : 2 * VF_REFINE_MAX_TEMPORAL + 1)
static inline VF_HD void vf_patch_ssd_grid(const float *p, const float *reg, int n, int patch,
                                           float f, float *out)
{
    const int G = n + patch - 1;
    for (int i = 0; i < n; i++) {
        float acc[VF_SSD_GRID_MAX];
        for (int j = 0; j < n; j++)
            acc[j] = 0.0f;
        for (int u = 0; u < patch; u++)
            for (int v = 0; v < patch; v++) {
                const float gv = p[u * patch + v];
                const float *rg = reg + (i + u) * G + v;
                for (int j = 0; j < n; j++) {
                    const float d = gv - rg[j];
                    acc[j] += d * d;
                }
            }
        for (int j = 0; j < n; j++)
            out[i * n + j] = acc[j] * f;
    }
}

/* The same against the patch × patch window of img (H × W) around (y, x), coordinates clamped. */
static inline VF_HD float vf_patch_ssd_clamped(const float *p, const float *img, int H, int W,
                                               int y, int x, int patch)
{
    const int r = patch / 2;
    float acc = 0.0f;
    for (int u = 0; u < patch; u++) {
        const float *row = img + (size_t)vf_clampi(y - r + u, 0, H - 1) * (size_t)W;
        for (int v = 0; v < patch; v++) {
            const float d = p[u * patch + v] - row[vf_clampi(x - r + v, 0, W - 1)];
            acc += d * d;
        }
    }
    return acc;
}

/* Whether every reference candidate around the centre (by, bx), radius `radius`, lies in the
 * H × W image (vf_refine_px's candidates: rows by − radius … by + radius + 1, the same columns). */
static inline VF_HD int vf_refine_spatial_inside(int H, int W, int by, int bx, int radius)
{
    return by - radius >= 0 && by + radius + 1 <= H - 1 && bx - radius >= 0 &&
           bx + radius + 1 <= W - 1;
}

/* Whether every temporal candidate's patch window of the pixels (y, x0 … x1) lies in the H × W
 * image (radius tr, patch half-width r): then none of their coordinates clamps. */
static inline VF_HD int vf_refine_temporal_inside(int H, int W, int y, int x0, int x1, int tr,
                                                  int r)
{
    return y - tr - r >= 0 && y + tr + r <= H - 1 && x0 - tr - r >= 0 && x1 + tr + r <= W - 1;
}

/* The factor of a temporal candidate's patch sum: scale × the mean over the patch, in units of
 * L/100 (vf_refine_temporal, vf_refine_predicted). */
static inline VF_HD float vf_refine_temporal_f(float scale, int patch)
{
    return scale * 1e-4f / (float)(patch * patch);
}

/* The refinement's temporal candidates of pixel (y, x) (docs/NETWORK.md, "A", refine,
 * temporal): frame t−1's warp a, b (pab, interleaved) at s = clamp((y, x) + d), d in
 * [−tr, tr]², rows outer, each costing scale × the mean squared difference of cp (the patch ×
 * patch window of the frame's L around (y, x), coordinates clamped: vf_window_clamped) and the
 * window of pl (frame t−1's L) around s, in units of L/100. Writes (2·tr + 1)² costs and a, b. */
static inline VF_HD void vf_refine_temporal(const float *cp, const float *pl, const float *pab,
                                            int H, int W, int y, int x, int tr, int patch,
                                            float scale, float *tcost, float *ta, float *tb)
{
    enum { TG = 2 * VF_REFINE_MAX_TEMPORAL + VF_REFINE_MAX_PATCH };
    float reg[TG * TG];
    const int r = patch / 2, T = 2 * tr + 1, G = T + patch - 1;
    const float f = vf_refine_temporal_f(scale, patch);
    const int inside = vf_refine_temporal_inside(H, W, y, x, x, tr, r);
    if (inside) {   /* every window in the image: one region of G × G */
        vf_window_clamped(pl, H, W, y - tr - r, x - tr - r, G, reg);
        vf_patch_ssd_grid(cp, reg, T, patch, f, tcost);
    }
    for (int i = 0; i < T; i++) {
        const int sy = vf_clampi(y - tr + i, 0, H - 1);
        for (int j = 0; j < T; j++) {
            const int sx = vf_clampi(x - tr + j, 0, W - 1);
            if (!inside)
                tcost[i * T + j] = vf_patch_ssd_clamped(cp, pl, H, W, sy, sx, patch) * f;
            const size_t o = ((size_t)sy * (size_t)W + (size_t)sx) * 2;
            ta[i * T + j] = pab[o];
            tb[i * T + j] = pab[o + 1];
        }
    }
}

/* The refinement's motion-predicted temporal candidates of pixel (y, x) (docs/NETWORK.md, "A",
 * refine, predict; model.py temporal_predicted): with (my, mx) frame t−1's motion at (y, x),
 * frame t−1's warp a, b at s = clamp((y, x) + (my, mx) + d), d in [−pr, pr]², rows outer, costed
 * as vf_refine_temporal costs its own; a displacement inside [−tr, tr]² (vf_refine_temporal's
 * window, which already holds it) costs VF_PREDICT_EXCLUDED (it weighs exactly 0 and is never
 * the cheapest) with a, b 0. Writes (2·pr + 1)² costs and a, b. */
#define VF_PREDICT_EXCLUDED 1.0e30f
static inline VF_HD void vf_refine_predicted(const float *cp, const float *pl, const float *pab,
                                             int H, int W, int y, int x, int tr, int pr, int my,
                                             int mx, int patch, float scale, float *tcost,
                                             float *ta, float *tb)
{
    const int r = patch / 2, Q = 2 * pr + 1;
    const float f = vf_refine_temporal_f(scale, patch);
    for (int i = 0; i < Q; i++) {
        const int dy = my - pr + i;
        const int sy = vf_clampi(y + dy, 0, H - 1);
        for (int j = 0; j < Q; j++) {
            const int dx = mx - pr + j;
            const int k = i * Q + j;
            if (dy >= -tr && dy <= tr && dx >= -tr && dx <= tr) {
                tcost[k] = VF_PREDICT_EXCLUDED;
                ta[k] = tb[k] = 0.0f;
                continue;
            }
            const int sx = vf_clampi(x + dx, 0, W - 1);
            const size_t o = ((size_t)sy * (size_t)W + (size_t)sx) * 2;
            /* the same sum in the same order; without the clamps where the window is inside */
            const int in = sy >= r && sy + r <= H - 1 && sx >= r && sx + r <= W - 1;
            tcost[k] = (in ? vf_patch_ssd(cp, pl + (size_t)(sy - r) * (size_t)W + (size_t)(sx - r),
                                          W, patch)
                           : vf_patch_ssd_clamped(cp, pl, H, W, sy, sx, patch)) * f;
            ta[k] = pab[o];
            tb[k] = pab[o + 1];
        }
    }
}

/* A motion component as the refinement reads it (model.py temporal_predicted): v rounded to the
 * nearest whole pixel (ties to even), clamped to [−n, n]; NaN reads as 0. */
static inline VF_HD int vf_motion_read(float v, int n)
{
    return v == v ? (int)rintf(fminf(fmaxf(v, (float)-n), (float)n)) : 0;
}

/* Candidate k's displacement of the temporal candidates in vf_refine_px's order: the (2·tr + 1)²
 * of vf_refine_temporal, then the (2·pr + 1)² of vf_refine_predicted around (my, mx). */
static inline VF_HD void vf_refine_disp(int k, int tr, int pr, int my, int mx, int *dy, int *dx)
{
    const int T = 2 * tr + 1, Q = 2 * pr + 1;
    if (k < T * T) {
        *dy = k / T - tr;
        *dx = k % T - tr;
    } else {
        *dy = my + (k - T * T) / Q - pr;
        *dx = mx + (k - T * T) % Q - pr;
    }
}

/* The index of the cheapest of n costs, the first on ties (model.py temporal_best), from their
 * minimum tmin (vf_min_run(tcost, n, INFINITY)): the first cost equal to it, and 0 where
 * tcost[0] is NaN, as the chain best = tcost[k] < tcost[best] ? k : best gives (test_ops checks
 * it against that chain); a scan that stops there instead of n dependent compares. */
static inline VF_HD int vf_refine_best(const float *tcost, int n, float tmin)
{
    int best = 0;
    if (tcost[0] == tcost[0])
        while (best < n - 1 && !(tcost[best] == tmin))
            best++;
    return best;
}

/* The sub-pixel temporal candidate (docs/NETWORK.md, "A", refine, sub-pixel; model.py
 * temporal_subpixel) of pixel (y, x) from the cheapest temporal displacement d* = (dy, dx)
 * (vf_refine_best: the first on ties) and its cost bcost: its source s = clamp((y, x) + d*),
 * and one Lucas–Kanade step from there: g = pl's gradient (central differences, coordinates
 * clamped) at the patch's positions around s (clamped), e = cl − pl there, o = (G + λI)⁻¹ Σ g·e
 * with G = Σ g gᵀ and λ = VF_SUBPIXEL_LAMBDA · (G_yy + G_xx) / 2 (0 where G is 0), each
 * component clamped to [−½, ½]; frame t−1's warp (pab, interleaved) sampled bilinearly at s + o
 * (clamped to the image), at d*'s cost. */
#define VF_SUBPIXEL_LAMBDA 0.01f
static inline VF_HD void vf_refine_subpixel(int dy, int dx, float bcost, const float *cl,
                                            const float *pl, const float *pab, int H, int W,
                                            int y, int x, int patch, float *scost, float *sa,
                                            float *sb)
{
    const int r = patch / 2;
    const int sy = vf_clampi(y + dy, 0, H - 1);
    const int sx = vf_clampi(x + dx, 0, W - 1);
    float gyy = 0.0f, gxy = 0.0f, gxx = 0.0f, by = 0.0f, bx = 0.0f;
    for (int u = -r; u <= r; u++) {
        const int qy = vf_clampi(sy + u, 0, H - 1);
        const int cy = vf_clampi(y + u, 0, H - 1);
        const float *row = pl + (size_t)qy * (size_t)W;
        const float *up = pl + (size_t)vf_imin(qy + 1, H - 1) * (size_t)W;
        const float *dn = pl + (size_t)vf_imax(qy - 1, 0) * (size_t)W;
        for (int v = -r; v <= r; v++) {
            const int qx = vf_clampi(sx + v, 0, W - 1);
            const float e = cl[(size_t)cy * (size_t)W + (size_t)vf_clampi(x + v, 0, W - 1)] -
                            row[qx];
            const float a = 0.5f * (up[qx] - dn[qx]);
            const float b = 0.5f * (row[vf_imin(qx + 1, W - 1)] - row[vf_imax(qx - 1, 0)]);
            gyy += a * a;
            gxy += a * b;
            gxx += b * b;
            by += a * e;
            bx += b * e;
        }
    }
    const float lam = VF_SUBPIXEL_LAMBDA * 0.5f * (gyy + gxx);
    const float det = (gyy + lam) * (gxx + lam) - gxy * gxy;
    float oy = 0.0f, ox = 0.0f;
    if (det > 0.0f) {
        oy = fminf(fmaxf(((gxx + lam) * by - gxy * bx) / det, -0.5f), 0.5f);
        ox = fminf(fmaxf(((gyy + lam) * bx - gxy * by) / det, -0.5f), 0.5f);
    }
    const float fyy = fminf(fmaxf((float)sy + oy, 0.0f), (float)(H - 1));
    const float fxx = fminf(fmaxf((float)sx + ox, 0.0f), (float)(W - 1));
    const int y0 = vf_imin((int)floorf(fyy), H - 2), x0 = vf_imin((int)floorf(fxx), W - 2);
    const float fy = fyy - (float)y0, fx = fxx - (float)x0;
    const float *p00 = pab + ((size_t)y0 * (size_t)W + (size_t)x0) * 2;
    const float *p10 = p00 + (size_t)W * 2;
    *scost = bcost;
    *sa = (1.0f - fy) * ((1.0f - fx) * p00[0] + fx * p00[2]) + fy * ((1.0f - fx) * p10[0] + fx * p10[2]);
    *sb = (1.0f - fy) * ((1.0f - fx) * p00[1] + fx * p00[3]) + fy * ((1.0f - fx) * p10[1] + fx * p10[3]);
}

/* The temporal candidates' inputs (docs/NETWORK.md, "A", refine, temporal), or none (l NULL):
 * the frame's lightness L, frame t−1's L and warp a, b (interleaved), all H × W; radius;
 * scale = (h/h_t)², the factor that puts their costs in the reference candidates' units;
 * subpixel (not 0): also the sub-pixel candidate (vf_refine_subpixel); predict (not 0): also
 * the motion-predicted candidates (vf_refine_predicted) around frame t−1's motion (motion,
 * (dy, dx) interleaved), and the pixel's cheapest temporal displacement into motion_out (0
 * where prev_l holds VF_REFINE_NO_PREV). */
struct vf_refine_prev {
    const float *l, *prev_l, *prev_ab;
    int radius;
    float scale;
    int subpixel;
    int predict;
    const float *motion;
    float *motion_out;
};

/* The pixel's motion for the next frame (tp->predict): where its cheapest temporal displacement
 * (dy, dx) takes it from, clamped, minus (y, x); 0 where frame t−1 is none (VF_REFINE_NO_PREV). */
static inline VF_HD void vf_refine_motion_out(const struct vf_refine_prev *tp, int H, int W,
                                              int y, int x, int dy, int dx)
{
    const size_t o = ((size_t)y * (size_t)W + (size_t)x) * 2;
    const int none = tp->prev_l[(size_t)y * (size_t)W + (size_t)x] >= 0.5f * VF_REFINE_NO_PREV;
    tp->motion_out[o] = none ? 0.0f : (float)(vf_clampi(y + dy, 0, H - 1) - y);
    tp->motion_out[o + 1] = none ? 0.0f : (float)(vf_clampi(x + dx, 0, W - 1) - x);
}

/* Pixel (y, x) of the refined warp. grey, ry: the frame's and the reference's Y′, H×W planes
 * (element (y, x) at [y·W + x]); rab: the reference's a, b interleaved ([(y·W + x)·2 + ch]);
 * (py, px): the attention's expected position of the pixel's cell. The pixel looks around
 * v = p + (y mod 4, x mod 4). Around an integer centre c, candidate s = clamp(c + d),
 * d in [−radius, radius]², rows outer, costs the mean squared difference of the patch×patch luma
 * windows around (y, x) and s (coordinates clamped), and R(c) = Σ w_d·ab(s_d) with weights
 * exp(−(cost − min cost)·inv_h2), normalised, over the window and tp's temporal candidates (when
 * tp->l is not NULL: vf_refine_temporal). The output blends R over the four centres
 * floor(v) + {0, 1}² bilinearly by v's fractions (continuous in p). The four windows share
 * their (2·radius + 2)² candidates: the grey patch and the reference region they read are
 * copied once (coordinates clamped there), so the cost loops run without clamps. */
static inline VF_HD void vf_refine_px(const float *grey, const float *ry, const float *rab, int H,
                                      int W, int y, int x, float py, float px, int radius,
                                      int patch, float inv_h2, const struct vf_refine_prev *tp,
                                      float *oa, float *ob)
{
    enum {
        DMAX = 2 * VF_REFINE_MAX_RADIUS + 2,
        GMAX = DMAX + VF_REFINE_MAX_PATCH - 1,
        TMAX = (2 * VF_REFINE_MAX_TEMPORAL + 1) * (2 * VF_REFINE_MAX_TEMPORAL + 1) +
               (2 * VF_REFINE_MAX_PREDICT + 1) * (2 * VF_REFINE_MAX_PREDICT + 1) + 1
    };
    float cost[DMAX * DMAX], e[DMAX * DMAX], ca[DMAX * DMAX], cb[DMAX * DMAX];
    float tcost[TMAX], te[TMAX], ta[TMAX], tb[TMAX];
    float gp[VF_REFINE_MAX_PATCH * VF_REFINE_MAX_PATCH], reg[GMAX * GMAX];
    const int r = patch / 2, D = 2 * radius + 2, G = D + patch - 1;
    const float vy = py + (float)(y % 4), vx = px + (float)(x % 4);
    const int by = (int)floorf(vy), bx = (int)floorf(vx);
    const float fy = vy - (float)by, fx = vx - (float)bx;
    const float inv_n = 1.0f / (float)(patch * patch);
    vf_window_clamped(grey, H, W, y - r, x - r, patch, gp);
    /* each candidate's a, b, at the clamped candidate */
    for (int i = 0; i < D; i++) {
        const int sy = vf_clampi(by - radius + i, 0, H - 1);
        for (int j = 0; j < D; j++) {
            const int sx = vf_clampi(bx - radius + j, 0, W - 1);
            const size_t o = ((size_t)sy * (size_t)W + (size_t)sx) * 2;
            ca[i * D + j] = rab[o];
            cb[i * D + j] = rab[o + 1];
        }
    }
    const int inside = vf_refine_spatial_inside(H, W, by, bx, radius);
    if (inside) {
        /* every candidate in the image: one region of G × G, rows by − radius − r … */
        vf_window_clamped(ry, H, W, by - radius - r, bx - radius - r, G, reg);
        vf_patch_ssd_grid(gp, reg, D, patch, inv_n, cost);
    } else {
        /* a candidate leaves the image: it clamps first, then its patch's coordinates do */
        for (int i = 0; i < D; i++) {
            const int sy = vf_clampi(by - radius + i, 0, H - 1);
            for (int j = 0; j < D; j++) {
                const int sx = vf_clampi(bx - radius + j, 0, W - 1);
                cost[i * D + j] = vf_patch_ssd_clamped(gp, ry, H, W, sy, sx, patch) * inv_n;
            }
        }
    }
    int nt = 0;
    float tmin = INFINITY;     /* the temporal candidates' cheapest (vf_min_run) */
    if (tp && tp->l) {
        float cp[VF_REFINE_MAX_PATCH * VF_REFINE_MAX_PATCH];   /* the frame's patch, once */
        vf_window_clamped(tp->l, H, W, y - r, x - r, patch, cp);
        nt = (2 * tp->radius + 1) * (2 * tp->radius + 1);
        vf_refine_temporal(cp, tp->prev_l, tp->prev_ab, H, W, y, x, tp->radius, patch,
                           tp->scale, tcost, ta, tb);
        const size_t o = ((size_t)y * (size_t)W + (size_t)x) * 2;
        int my = 0, mx = 0;
        if (tp->predict) {
            /* the state holds whole pixels within the image (f32, exact); anything else is
             * read as its nearest such value (NaN: 0) */
            my = vf_motion_read(tp->motion[o], H);
            mx = vf_motion_read(tp->motion[o + 1], W);
            vf_refine_predicted(cp, tp->prev_l, tp->prev_ab, H, W, y, x, tp->radius,
                                tp->predict, my, mx, patch, tp->scale, tcost + nt, ta + nt,
                                tb + nt);
            nt += (2 * tp->predict + 1) * (2 * tp->predict + 1);
        }
        tmin = vf_min_run(tcost, nt, INFINITY);
        if (tp->subpixel || tp->predict) {
            const int best = vf_refine_best(tcost, nt, tmin);
            int dy, dx;
            vf_refine_disp(best, tp->radius, tp->predict, my, mx, &dy, &dx);
            if (tp->predict)
                vf_refine_motion_out(tp, H, W, y, x, dy, dx);
            if (tp->subpixel) {
                vf_refine_subpixel(dy, dx, tcost[best], tp->l, tp->prev_l, tp->prev_ab, H, W, y,
                                   x, patch, tcost + nt, ta + nt, tb + nt);
                nt++;
            }
        }
    }
    const float gmin = vf_min_run(cost, D * D, tmin);
    for (int k = 0; k < D * D; k++)
        e[k] = vf_refine_weight(-(cost[k] - gmin) * inv_h2);
    for (int k = 0; k < nt; k++)
        te[k] = vf_refine_weight(-(tcost[k] - gmin) * inv_h2);
    float a = 0.0f, b = 0.0f;
    for (int oy = 0; oy <= 1; oy++) {
        for (int ox = 0; ox <= 1; ox++) {
            const float blend = (oy ? fy : 1.0f - fy) * (ox ? fx : 1.0f - fx);
            if (!(blend > 0.0f))
                continue;
            float wa, wb;
            vf_refine_window(cost, e, ca, cb, D, oy, ox, tcost, te, ta, tb, nt, tmin, gmin, inv_h2,
                             &wa, &wb);
            a += blend * wa;
            b += blend * wb;
        }
    }
    *oa = a;
    *ob = b;
}

/* ---- attention rows ---- */

/* exp(x) for the softmax weights, x ≤ 0 (f32, branch-free so the column loops vectorise): Cody–
 * Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-7 Taylor polynomial, the scale 2ⁿ by its
 * bits. Within 1.2e-7 (relative) of glibc's expf over every float in [−87, 0] (checked
 * exhaustively); 0 below −87, where e^x < 1.7e-38 (expf gives subnormals there, slow and
 * negligible next to the row's largest weight, 1). NaN stays NaN. */
static inline VF_HD float vf_att_exp(float x)
{
    /* selects by masks (a ternary here keeps gcc from vectorising the loop) */
    const uint32_t keep = (uint32_t)0 - (uint32_t)!(x < -87.0f);     /* ~0, or 0 below −87 */
    const float xc = vf_bits_f32((vf_f32_bits(x) & keep) | (vf_f32_bits(-87.0f) & ~keep));
    const float magic = 12582912.0f;                       /* 1.5·2²³: round to nearest */
    const float t = xc * 1.44269504088896341f + magic;
    const int32_t n = (int32_t)(vf_f32_bits(t) - vf_f32_bits(magic));
    const float fn = t - magic;
    const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const float e = p * vf_bits_f32((uint32_t)(n + 127) << 23);
    return vf_bits_f32(vf_f32_bits(e) & keep);
}

/* ---- guided upsampling (He et al.'s guided filter on the low-resolution guide, its
 * coefficients box-filtered and bilinearly upsampled; NETWORK.md post-processing 1) ----
 * Scratch layout (kernels.h's vf_guided_scratch_elems, in doubles): VF_GU_HS planes of P = H·W
 * (window sums), then VF_GU_AB planes (A_a, B_a, A_b, B_b, later their box means). */
#define VF_GU_HS 6
#define VF_GU_AB 4

/* Stage 1's quantities at one low-resolution pixel: I, I², p_a, p_b, I·p_a, I·p_b. */
static inline VF_HD void vf_gu_quantities(float grey, float pa, float pb, double q[VF_GU_HS])
{
    const double I = (double)grey, a = (double)pa, b = (double)pb;
    q[0] = I;
    q[1] = I * I;
    q[2] = a;
    q[3] = b;
    q[4] = I * a;
    q[5] = I * b;
}

/* Horizontal window sums, columns max(x − r, 0) .. min(x + r, W − 1) in order, of nk planes
 * (P doubles apart) at (y, x). */
static inline VF_HD void vf_gu_hsum(const double *pl, size_t P, int W, int y, int x, int r,
                                    int nk, double *acc)
{
    for (int k = 0; k < nk; k++)
        acc[k] = 0.0;
    const int xb = vf_imin(x + r, W - 1);
    for (int xx = vf_imax(x - r, 0); xx <= xb; xx++)
        for (int k = 0; k < nk; k++)
            acc[k] += pl[(size_t)k * P + (size_t)y * (size_t)W + (size_t)xx];
}

/* Box means at (y, x): the vertical sums (rows in order) of nk planes of horizontal sums,
 * divided by the window's pixel count (clipped at the borders). */
static inline VF_HD void vf_gu_vmean(const double *pl, size_t P, int H, int W, int y, int x,
                                     int r, int nk, double *m)
{
    const int ya = vf_imax(y - r, 0), yb = vf_imin(y + r, H - 1);
    const int cnt = (yb - ya + 1) * (vf_imin(x + r, W - 1) - vf_imax(x - r, 0) + 1);
    for (int k = 0; k < nk; k++)
        m[k] = 0.0;
    for (int yy = ya; yy <= yb; yy++)
        for (int k = 0; k < nk; k++)
            m[k] += pl[(size_t)k * P + (size_t)yy * (size_t)W + (size_t)x];
    for (int k = 0; k < nk; k++)
        m[k] /= (double)cnt;
}

/* The guided filter's coefficients from the box means m (of vf_gu_quantities): per ab channel
 * A = cov(I, p)/(var(I) + ε), B = mean(p) − A·mean(I); c = {A_a, B_a, A_b, B_b}. */
static inline VF_HD void vf_gu_coef(const double m[VF_GU_HS], double eps, double c[VF_GU_AB])
{
    const double var = m[1] - m[0] * m[0];
    for (int ch = 0; ch < 2; ch++) {
        const double A = (m[4 + ch] - m[0] * m[2 + ch]) / (var + eps);
        c[2 * ch] = A;
        c[2 * ch + 1] = m[2 + ch] - A * m[0];
    }
}

/* The VF_GU_AB coefficient planes bilinearly upsampled (vf_linear_src's indices and weights)
 * at one full-resolution pixel, in double. */
static inline VF_HD void vf_gu_upsample(const double *abp, size_t P, int W, int y0, int y1,
                                        float hy0, float hy1, int x0, int x1, float wx0,
                                        float wx1, double up[VF_GU_AB])
{
    const size_t i00 = (size_t)y0 * W + x0, i01 = (size_t)y0 * W + x1;
    const size_t i10 = (size_t)y1 * W + x0, i11 = (size_t)y1 * W + x1;
    for (int k = 0; k < VF_GU_AB; k++) {
        const double *pl = abp + (size_t)k * P;
        up[k] = (double)hy0 * ((double)wx0 * pl[i00] + (double)wx1 * pl[i01]) +
                (double)hy1 * ((double)wx0 * pl[i10] + (double)wx1 * pl[i11]);
    }
}

/* ab channel ch (0 a, 1 b) at full resolution: up(A)·I + up(B). */
static inline VF_HD float vf_gu_apply(const double up[VF_GU_AB], float grey, int ch)
{
    return (float)(up[2 * ch] * (double)grey + up[2 * ch + 1]);
}

/* ============================== film-size propagation (arch "propagate") ==================== */
/* vf_op_carry_ab's per-element bodies (kernels.h; docs/NETWORK.md, post-processing 1b). Every
 * product and sum is rounded as written, with no fused multiply-add on either side (nvcc would
 * contract them: these macros forbid it there; the C sources are built with -ffp-contract=off,
 * kernels/CMakeLists.txt), so that the costs, and so the moves block matching picks, are the
 * PyTorch reference's (Net.carry) to the bit on both backends. */
#if defined(__CUDA_ARCH__)
#define VF_DMUL_RN(a, b) __dmul_rn((a), (b))
#define VF_DADD_RN(a, b) __dadd_rn((a), (b))
#define VF_DSUB_RN(a, b) __dsub_rn((a), (b))
#define VF_DDIV_RN(a, b) __ddiv_rn((a), (b))
#define VF_FMUL_RN(a, b) __fmul_rn((a), (b))
#define VF_FADD_RN(a, b) __fadd_rn((a), (b))
#define VF_FSUB_RN(a, b) __fsub_rn((a), (b))
#else
#define VF_DMUL_RN(a, b) ((a) * (b))
#define VF_DADD_RN(a, b) ((a) + (b))
#define VF_DSUB_RN(a, b) ((a) - (b))
#define VF_DDIV_RN(a, b) ((a) / (b))
#define VF_FMUL_RN(a, b) ((a) * (b))
#define VF_FADD_RN(a, b) ((a) + (b))
#define VF_FSUB_RN(a, b) ((a) - (b))
#endif

/* 255·Y − 255·Y₋₁: the grey on the 8-bit scale. */
static inline VF_HD double vf_carry_diff(float cur, float prev)
{
    return VF_DSUB_RN(VF_DMUL_RN((double)cur, 255.0), VF_DMUL_RN((double)prev, 255.0));
}

/* One window position's term: (255·Y − 255·Y₋₁)². */
static inline VF_HD double vf_carry_sq(float cur, float prev)
{
    const double d = vf_carry_diff(cur, prev);
    return VF_DMUL_RN(d, d);
}

/* The tie-break towards small moves added to a window's sum: 1e-3·|d|². */
static inline VF_HD double vf_carry_tie(int dy, int dx)
{
    return VF_DMUL_RN(1e-3, (double)(dx * dx + dy * dy));
}

/* The pixel's share of the carried a, b: share · exp(−cost / (patch² · S²)), in f64 and rounded
 * to f32; the share alone with S = 0. */
static inline VF_HD float vf_carry_share(float share, float confidence, int patch, double cost)
{
    if (!(confidence > 0.0f))
        return share;
    const double S = (double)confidence;
    const double den = VF_DMUL_RN(VF_DMUL_RN((double)(patch * patch), S), S);
    return (float)VF_DMUL_RN((double)share, exp(-cost / den));
}

/* The sub-pixel step (propagate.subpixel; Net._carry_subpixel): one window position's terms
 * added to S = (Sxx, Sxy, Syy, Sxe, Sye). prev is Y₋₁ at the pixel the move lands on and l, r,
 * u, d its neighbours left, right, up, down (clamped by the caller): gx = (255·r − 255·l)·0.5,
 * gy likewise, e = 255·cur − 255·prev. */
static inline VF_HD void vf_carry_lk_add(double S[5], float cur, float prev, float l, float r,
                                         float u, float d)
{
    const double gx = VF_DMUL_RN(vf_carry_diff(r, l), 0.5);
    const double gy = VF_DMUL_RN(vf_carry_diff(d, u), 0.5);
    const double e = vf_carry_diff(cur, prev);
    S[0] = VF_DADD_RN(S[0], VF_DMUL_RN(gx, gx));
    S[1] = VF_DADD_RN(S[1], VF_DMUL_RN(gx, gy));
    S[2] = VF_DADD_RN(S[2], VF_DMUL_RN(gy, gy));
    S[3] = VF_DADD_RN(S[3], VF_DMUL_RN(gx, e));
    S[4] = VF_DADD_RN(S[4], VF_DMUL_RN(gy, e));
}

/* The Lucas–Kanade step from the window's sums: (oy, ox), each in [−1, 1]; (0, 0) where the
 * determinant D is not above 1e-6·(Sxx + Syy)² + 1e-9 (flat, or an edge alone). */
static inline VF_HD void vf_carry_lk(const double S[5], double *oy, double *ox)
{
    const double det = VF_DSUB_RN(VF_DMUL_RN(S[0], S[2]), VF_DMUL_RN(S[1], S[1]));
    const double tr = VF_DADD_RN(S[0], S[2]);
    *oy = *ox = 0.0;
    if (det > VF_DADD_RN(VF_DMUL_RN(1e-6, VF_DMUL_RN(tr, tr)), 1e-9)) {
        const double nx = VF_DSUB_RN(VF_DMUL_RN(S[2], S[3]), VF_DMUL_RN(S[1], S[4]));
        const double ny = VF_DSUB_RN(VF_DMUL_RN(S[0], S[4]), VF_DMUL_RN(S[1], S[3]));
        *ox = fmin(fmax(VF_DDIV_RN(nx, det), -1.0), 1.0);
        *oy = fmin(fmax(VF_DDIV_RN(ny, det), -1.0), 1.0);
    }
}

/* One axis of the sample point: f = clamp(base + o, 0, n − 1), its taps i0 = ⌊f⌋ and
 * i1 = min(i0 + 1, n − 1), and the weight of i1, f − i0. */
static inline VF_HD void vf_carry_taps(int base, double o, int n, int *i0, int *i1, double *wt)
{
    const double f = fmin(fmax(VF_DADD_RN((double)base, o), 0.0), (double)(n - 1));
    *i0 = (int)floor(f);
    *i1 = *i0 + 1 < n ? *i0 + 1 : n - 1;
    *wt = VF_DSUB_RN(f, (double)*i0);
}

/* Bilinear sampling in f64 between the taps (row 0: v00, v01; row 1: v10, v11), rounded to
 * f32. */
static inline VF_HD float vf_carry_bilinear(float v00, float v01, float v10, float v11,
                                            double wy, double wx)
{
    const double top = VF_DADD_RN(VF_DMUL_RN(VF_DSUB_RN(1.0, wx), (double)v00),
                                  VF_DMUL_RN(wx, (double)v01));
    const double bot = VF_DADD_RN(VF_DMUL_RN(VF_DSUB_RN(1.0, wx), (double)v10),
                                  VF_DMUL_RN(wx, (double)v11));
    return (float)VF_DADD_RN(VF_DMUL_RN(VF_DSUB_RN(1.0, wy), top), VF_DMUL_RN(wy, bot));
}

/* s·carried + (1 − s)·ab, in f32. */
static inline VF_HD float vf_carry_mix(float s, float carried, float ab)
{
    return VF_FADD_RN(VF_FMUL_RN(s, carried), VF_FMUL_RN(VF_FSUB_RN(1.0f, s), ab));
}

#endif /* VF_KERNELS_ELEM_H */
