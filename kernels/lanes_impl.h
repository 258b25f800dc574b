/*
 * kernels/lanes_impl.h: RL (16) lanes of work, each lane with a scalar body's bits: the
 * keep-luma operator's solver and its powf, and expf for the warp refinement's weights. Built
 * twice, as a whole file for each instruction set (kernels/CMakeLists.txt): kernels/lanes512.c
 * for AVX-512F (LANES_BITS 512: the table vf_lanes512_) and kernels/lanes256.c for AVX2 + FMA
 * (LANES_BITS 256: vf_lanes256_, 8 lanes at a time, twice a call). kernels/ops.c picks the
 * widest the CPU runs (vf_lanes_) and runs the scalar code where neither: every path gives the
 * same bits. Whole files because GCC 12 compiles the float compares of 64-byte vectors in a
 * target_clones("avx512f") function lane by lane (with the whole file built for the ISA it uses
 * vcmpps).
 */
#include <math.h>
#include <string.h>

#include "kernels/elem.h"
#include "kernels/internal.h"
#include "kernels/lanes.h"

#if VF_HAVE_LANES
#include <immintrin.h>

/* The lanes of one vector here: LW = 16 floats (a zmm) for AVX-512F, 8 (a ymm) for AVX2: GCC 12
 * compiles the float compares of vectors wider than the ISA's lane by lane (vcomiss), so the
 * AVX2 build works on 8 lanes at a time, twice for the RL (16) of each call. */
#if LANES_BITS == 512
enum { LW = 16 };
#else
enum { LW = 8 };
#endif
typedef float lw_f __attribute__((vector_size(LW * sizeof(float))));
typedef int lw_i __attribute__((vector_size(LW * sizeof(int))));
#define LW_LD(p) ({ lw_f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define LW_ST(p, v) do { const lw_f s_ = (v); memcpy((p), &s_, sizeof s_); } while (0)
#define LW_SEL(mask, a, b) ((lw_f)(((lw_i)(a) & (mask)) | ((lw_i)(b) & ~(mask))))
static inline int lw_any(const lw_i *m)
{
    int n = 0;
    for (int l = 0; l < LW; l++)
        n |= (*m)[l];
    return n != 0;
}

/* ---- powf in LW lanes ----
 * powf(x, y) for the exponents keep-luma uses, the same float as libm's. Each lane computes x^y
 * in double, within 1e-12 of it: x = m·2^k with m in [√½, √2), ln m by the atanh series to s¹³
 * and 2^f for |f| ≤ ½ by Taylor's to the 10th power, both by Estrin's scheme with FMAs (the
 * order of these sums is free: only the float they round to counts). Rounded to float, that is
 * the correctly rounded result unless x^y lies within 2^−31 of its size from a midpoint between
 * two floats. glibc's powf (0.82 ulp at most) is correctly rounded except there too: on this
 * domain it misrounds only within 1e−10 of a midpoint. So the lanes near a midpoint (about 1.6%)
 * call libm's powf. tests/test_ops.c checks every float of the domain, both exponents, against
 * libm's. The double work runs in halves of LW / 2 lanes (a zmm each; a ymm with AVX2)
 * with no conversion of doubles to 64-bit integers (AVX-512DQ's), the rounding to an integer
 * and the midpoint test done on the bits. The FMAs' results differ in no bit between the two
 * builds (the same IEEE fused operation), so neither do the lanes'. */
typedef float rl_h __attribute__((vector_size(LW / 2 * sizeof(float))));
typedef double rl_hd __attribute__((vector_size(LW / 2 * sizeof(double))));
typedef long long rl_hl __attribute__((vector_size(LW / 2 * sizeof(long long))));
typedef int rl_hi __attribute__((vector_size(LW / 2 * sizeof(int))));
/* a·b + c rounded once, and a constant in every lane */
#if LANES_BITS == 512
#define FMA(a, b, c) ((rl_hd)_mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c)))
#else
#define FMA(a, b, c) ((rl_hd)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#endif
#define C(v) ((rl_hd){0} + (v))

/* LW / 2 lanes: 2^t for |t| < 1000 whose 2^t is a normal float, rounded to float into r, and
 * near[l] = −1 where 2^t lies within 2^22 of its double's units (2^−30 of 2^⌊t⌋, at least 2^−31
 * of 2^t) from a midpoint between two floats, else 0. */
static inline void rl_exp2_half(rl_hd t, float *r, int *near)
{
    const rl_hd tb = t + 0x1.8p52;                   /* n = round(t) in its low bits */
    const rl_hd w = (t - (tb - 0x1.8p52)) * M_LN2;
    const rl_hd w2 = w * w, w4 = w2 * w2;
    const rl_hd e0 = FMA(w2, FMA(w, C(1.0 / 6), C(0.5)), w + 1.0);
    const rl_hd e1 = FMA(w2, FMA(w, C(1.0 / 5040), C(1.0 / 720)),
                         FMA(w, C(1.0 / 120), C(1.0 / 24)));
    const rl_hd e2 = FMA(w2, C(1.0 / 3628800), FMA(w, C(1.0 / 362880), C(1.0 / 40320)));
    const rl_hd e = FMA(w4, FMA(w4, e2, e1), e0);
    const rl_hl n = (rl_hl)tb - 0x4338000000000000LL;  /* the bits of 0x1.8p52 */
    const rl_hd p = e * (rl_hd)((n + 1023) << 52);
    const rl_h rh = __builtin_convertvector(p, rl_h);
    /* the 29 bits a float drops: the midpoint at 2^28 */
    const rl_hl low = ((rl_hl)p & 0x1fffffff) - 0x10000000;
    const rl_hl sgn = low >> 63;
    const rl_hi nh = __builtin_convertvector((((low ^ sgn) - sgn) - 0x400000) >> 63, rl_hi);
    memcpy(r, &rh, sizeof rh);
    memcpy(near, &nh, sizeof nh);
}

/* LW / 2 lanes: x^y for x = m·2^k, as rl_exp2_half(y·log₂ x) */
static inline void rl_pow_half(const float *m, const float *k, double y, float *r, int *near)
{
    rl_h mh, kh;
    memcpy(&mh, m, sizeof mh);
    memcpy(&kh, k, sizeof kh);
    const rl_hd md = __builtin_convertvector(mh, rl_hd);
    const rl_hd s = (md - 1.0) / (md + 1.0), s2 = s * s;
    const rl_hd s4 = s2 * s2, s8 = s4 * s4;
    const rl_hd q0 = FMA(s2, C(1.0 / 3), C(1.0)), q1 = FMA(s2, C(1.0 / 7), C(1.0 / 5));
    const rl_hd q2 = FMA(s2, C(1.0 / 11), C(1.0 / 9));
    const rl_hd ql = FMA(s8, FMA(s4, C(1.0 / 13), q2), FMA(s4, q1, q0));
    rl_exp2_half(y * FMA(s * ql, C(2.0 * M_LOG2E), __builtin_convertvector(kh, rl_hd)), r, near);
}

/* *out = powf(*xp, y) in the lanes of *wantp (others: unspecified) */
static inline void rl_powf(const lw_f *xp, float y, const lw_i *wantp, lw_f *out)
{
    const lw_f zero = {0}, x = *xp;
    const lw_i want = *wantp;
    const lw_i in = want & (x > VF_POWF_LANES_LO) & (x < VF_POWF_LANES_HI);
    const lw_i u = (lw_i)LW_SEL(in, x, zero + 1.0f);        /* others: a harmless 1 */
    const lw_i big = (u & 0x7fffff) > 0x3504f3;               /* mantissa above √2 */
    float m[LW], k[LW], r[LW];
    int near[LW];
    LW_ST(m, (lw_f)((u & 0x7fffff) | (0x3f800000 - (big & 0x800000))));   /* m or m/2 */
    LW_ST(k, __builtin_convertvector((u >> 23) - 127 - big, lw_f));     /* big: −1, so k + 1 */
    rl_pow_half(m, k, (double)y, r, near);
    rl_pow_half(m + LW / 2, k + LW / 2, (double)y, r + LW / 2, near + LW / 2);
    lw_i nr;
    memcpy(&nr, near, sizeof nr);
    const lw_i libm = want & (~in | nr);
    *out = LW_LD(r);
    if (lw_any(&libm))
        for (int l = 0; l < LW; l++)
            if (libm[l])
                (*out)[l] = powf(x[l], y);
}

/* ---- keep-luma, LW pixels at a time ----
 * vf_keep_luma_rgb for LW pixels, each in a lane: the same operations in the same order on each
 * lane's values (vf_keep_luma_eval, vf_gam01_d, the Newton step and its safeguards), rl_powf for
 * powf, so each lane's colour is vf_keep_luma_rgb's bit for bit (tests/test_ops.c
 * keep_luma_lanes_match_the_solver). A lane leaves the loop where vf_keep_luma_rgb returns; the
 * lanes that vf_keep_luma_rgb hands to the bisection run it alone, after the others. */

/* *c = vf_gam01_d(*linp, d) in the lanes of *want */
static inline void kl_gam01_d(const lw_f *linp, const lw_i *want, lw_f *c, lw_f *d)
{
    const lw_f zero = {0}, one = zero + 1.0f, lin = *linp;
    const lw_i lo = lin <= 0.0031308f, hi = lin >= 1.001f, mid = ~lo & ~hi, pw_want = *want & mid;
    lw_f pw;
    rl_powf(&lin, 1.0f / 2.4f, &pw_want, &pw);
    const lw_f vl = 12.92f * lin;
    const lw_f v = 1.055f * pw - 0.055f;
    const lw_i sat = v >= 1.0f;
    const lw_f dm = (v + 0.055f) / (2.4f * LW_SEL(mid, lin, one));
    *d = LW_SEL(lo, LW_SEL(vl > 0.0f, zero + 12.92f, zero), LW_SEL(hi | sat, zero, dm));
    *c = LW_SEL(lo, LW_SEL(vl < 0.0f, zero, vl),
                LW_SEL(hi, one, LW_SEL(sat, LW_SEL(v > 1.0f, one, v), v)));
}

/* vf_lab_finv and its derivative (finv′(t) = 3t² above δ, 3δ² below) */
#define KL_FINV(t) LW_SEL((t) > VF_LAB_D, (t) * (t) * (t), VF_LAB_3D2 * ((t) - VF_LAB_4_29))
#define KL_DFINV(t) LW_SEL((t) > VF_LAB_D, 3.0f * (t) * (t), (lw_f){0} + VF_LAB_3D2)

/* vf_keep_luma_eval in the lanes of *want: the colour c[3], the luma *lu, d/dL in *dg */
static inline void kl_eval(const lw_f *Lp, const lw_f *ap, const lw_f *bp, float kr, float kb,
                           const lw_i *want, lw_f c[3], lw_f *lu, lw_f *dg)
{
    const lw_f L = *Lp, a = *ap, b = *bp;
    const lw_f fy = (L + 16.0f) / 116.0f;
    const lw_f fx = fy + a / 500.0f;
    const lw_f fz = fy - b / 200.0f;
    const lw_f X = VF_XN * KL_FINV(fx), Y = VF_YN * KL_FINV(fy), Z = VF_ZN * KL_FINV(fz);
    const lw_f lr = VF_MI00 * X + VF_MI01 * Y + VF_MI02 * Z;
    const lw_f lg = VF_MI10 * X + VF_MI11 * Y + VF_MI12 * Z;
    const lw_f lb = VF_MI20 * X + VF_MI21 * Y + VF_MI22 * Z;
    const lw_f dX = VF_XN * KL_DFINV(fx), dY = VF_YN * KL_DFINV(fy), dZ = VF_ZN * KL_DFINV(fz);
    lw_f dr, dgg, db;
    kl_gam01_d(&lr, want, &c[0], &dr);
    kl_gam01_d(&lg, want, &c[1], &dgg);
    kl_gam01_d(&lb, want, &c[2], &db);
    const float kg = 1.0f - kr - kb;
    *dg = (kr * dr * (VF_MI00 * dX + VF_MI01 * dY + VF_MI02 * dZ) +
           kg * dgg * (VF_MI10 * dX + VF_MI11 * dY + VF_MI12 * dZ) +
           kb * db * (VF_MI20 * dX + VF_MI21 * dY + VF_MI22 * dZ)) *
          (1.0f / 116.0f);
    *lu = kr * c[0] + kg * c[1] + kb * c[2];
}

/* vf_keep_luma_rgb for the LW pixels grey[l], a[l], b[l] into out[l] */
static inline void keep_luma_lanes(const float *grey, const float *a, const float *b, float kr,
                                   float kb, vf_f3 *out)
{
    const lw_f zero = {0}, one = zero + 1.0f;
    const lw_f g = LW_LD(grey), av = LW_LD(a), bv = LW_LD(b);
    lw_i newton = av * av + bv * bv < VF_KEEP_LUMA_CHROMA2;
    /* the start; !(g > 0.04045) means g/12.92 under δ³ or NaN: vf_lab_f's linear branch */
    const lw_i bright = g > 0.04045f, pw_want = newton & bright;
    const lw_f base = (g + 0.055f) / 1.055f;
    lw_f pw;
    rl_powf(&base, 0.8f, &pw_want, &pw);
    lw_f x = LW_SEL(bright, 116.0f * pw - 16.0f,
                    116.0f * ((g / 12.92f) / VF_LAB_3D2 + VF_LAB_4_29) - 16.0f);
    x = LW_SEL(x > VF_KEEP_LUMA_LMIN, x, zero + VF_KEEP_LUMA_LMIN);
    x = LW_SEL(x < VF_KEEP_LUMA_LMAX, x, zero + VF_KEEP_LUMA_LMAX);
    lw_f bl = zero, bh = zero + 100.0f, res[3] = {zero, zero, zero};
    lw_i live = newton;
    for (int it = 0; it < VF_KEEP_LUMA_NEWTON && lw_any(&live); it++) {
        lw_f c[3], d, lu;
        kl_eval(&x, &av, &bv, kr, kb, &live, c, &lu, &d);
        const lw_i below = lu < g;
        lw_i done = live & ((below & (x >= VF_KEEP_LUMA_LMAX)) |
                            (~below & (x <= VF_KEEP_LUMA_LMIN)));
        lw_i go = live & ~done;
        bl = LW_SEL(go & below, x, bl);
        bh = LW_SEL(go & ~below, x, bh);
        done |= go & (bh - bl <= VF_KEEP_LUMA_TOL);
        go = live & ~done;
        const lw_i pos = d > VF_KEEP_LUMA_DMIN;
        const lw_f step = (g - lu) / LW_SEL(pos, d, one);
        done |= go & pos & ((lw_f)((lw_i)step & 0x7fffffff) <= VF_KEEP_LUMA_TOL);
        for (int k = 0; k < 3; k++)
            res[k] = LW_SEL(done, c[k], res[k]);
        /* decreasing or NaN slopes leave for the bisection */
        go = live & ~done & (pos | ~((d < -VF_KEEP_LUMA_DMIN) | (d != d)));
        const lw_f half = 0.5f * (bl + bh);
        const lw_f up = LW_SEL(bh == 100.0f, zero + VF_KEEP_LUMA_LMAX, half);
        const lw_f dn = LW_SEL(bl == 0.0f, zero + VF_KEEP_LUMA_LMIN, half);
        lw_f xn = LW_SEL(pos, x + step, LW_SEL(below, up, dn));
        xn = LW_SEL((xn > bl) & (xn < bh), xn, LW_SEL(xn >= bh, up, dn));
        x = LW_SEL(go, xn, x);
        newton &= ~(live & ~done & ~go);          /* out of Newton: the bisection */
        live = go;
    }
    float r[3][LW];
    for (int k = 0; k < 3; k++)
        LW_ST(r[k], res[k]);
    for (int l = 0; l < LW; l++)
        out[l] = newton[l] && !live[l] ? vf_f3_make(r[0][l], r[1][l], r[2][l])
                                      : vf_keep_luma_rgb_bisect(grey[l], a[l], b[l], kr, kb);
}

static void lanes_powf(const float *x, float y, float *out)
{
    for (int q = 0; q < RL; q += LW) {
        const lw_f v = LW_LD(x + q);
        const lw_i all = (v == v) | (v != v);
        lw_f r;
        rl_powf(&v, y, &all, &r);
        LW_ST(out + q, r);
    }
}

#if LANES_BITS == 512
static void lanes_expf(const float *t, unsigned want, float *out)
{
    const lw_f zero = {0};
    for (int q = 0; q < RL; q += LW) {
        const lw_f x = LW_LD(t + q);
        const lw_i in = (x >= VF_EXPF_LANES_LO) & (x <= VF_EXPF_LANES_HI);
        float xs[LW], r[LW];
        int near[LW];
        LW_ST(xs, LW_SEL(in, x, zero - 1.0f));       /* others: a harmless −1 */
        for (int h = 0; h < 2; h++) {
            rl_h xh;
            memcpy(&xh, xs + h * LW / 2, sizeof xh);
            rl_exp2_half(__builtin_convertvector(xh, rl_hd) * M_LOG2E, r + h * LW / 2,
                         near + h * LW / 2);
        }
        for (int l = 0; l < LW; l++)
            if (want >> (q + l) & 1u)
                out[q + l] = !in[l] || near[l] ? (t[q + l] == 0.0f ? 1.0f : expf(t[q + l]))
                                               : r[l];
    }
}
#endif

static void lanes_keep_luma(const float *grey, const float *a, const float *b, float kr, float kb,
                            float *rgb)
{
    vf_f3 c[RL];
    for (int q = 0; q < RL; q += LW)
        keep_luma_lanes(grey + q, a + q, b + q, kr, kb, c + q);
    for (int l = 0; l < RL; l++) {
        rgb[3 * l] = c[l].x;
        rgb[3 * l + 1] = c[l].y;
        rgb[3 * l + 2] = c[l].z;
    }
}

#if LANES_BITS == 512
const struct vf_lanes vf_lanes512_ = {"AVX-512F", lanes_keep_luma, lanes_powf, lanes_expf};
#else
/* no expf: with AVX2 the refinement's weights were no faster through it than through libm's
 * (session 31, an AVX-512 machine on its AVX2 path: A 67 to 75 ms either way, noise; keep-luma's
 * post-processing 193/201 → 109/115 ms at 1080p, docs/BENCHMARKS.md) */
const struct vf_lanes vf_lanes256_ = {"AVX2", lanes_keep_luma, lanes_powf, NULL};
#endif

#endif /* VF_HAVE_LANES */
