/* tests/test_util.h: helpers shared by the kernels' cmocka tests (test_prims, test_cuda_prims,
 * test_ops, test_cuda_ops): two seeded generators (the sequences those tests were written with)
 * the relative L2 error and the sentinel pattern of views' parents. Header-only; include after
 * <cmocka.h> and kernels/kernels.h. Each test seeds in main(). */
#ifndef VF_TEST_UTIL_H
#define VF_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* xorshift64: frand() uniform in [-1, 1) */
static uint64_t tu_xs_state = 0x9e3779b97f4a7c15ull;
static inline void tu_xs_seed(uint64_t s) { tu_xs_state = s; }
static inline float frand(void)
{
    tu_xs_state ^= tu_xs_state << 13;
    tu_xs_state ^= tu_xs_state >> 7;
    tu_xs_state ^= tu_xs_state << 17;
    return (float)((double)(tu_xs_state >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* n floats uniform in [-amp, amp) (malloc'd; the test frees) */
static inline float *rand_buf(size_t n, float amp)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = amp * frand();
    return p;
}

/* 64-bit LCG: urand() uniform in [0, 1), rnd(lo, hi) in [lo, hi) */
static uint64_t tu_lcg_state = 0x9e3779b97f4a7c15ull;
static inline void tu_lcg_seed(uint64_t s) { tu_lcg_state = s; }
static inline double urand(void)
{
    tu_lcg_state = tu_lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(tu_lcg_state >> 11) * (1.0 / 9007199254740992.0);
}
static inline double rnd(double lo, double hi) { return lo + (hi - lo) * urand(); }

/* ‖out − ref‖₂ / ‖ref‖₂ (the absolute norm when ref is all zeros) */
static inline double rel_l2f(const float *out, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The sentinel pattern of a parent tensor whose channel-slice views an operation writes:
 * 1000 + 8·(i mod 7), exact in bf16 and f16. (Needs kernels/kernels.h, included before.) */
static inline float tu_sentinel(size_t i) { return 1000.0f + 8.0f * (float)(i % 7); }

/* Fill every element of a (parent) tensor with the sentinel pattern through upload. */
static inline void fill_sentinel(struct vf_tensor *t)
{
    size_t cnt = vf_tensor_count(t);
    float *p = malloc(cnt * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < cnt; i++)
        p[i] = tu_sentinel(i);
    struct vf_error err = {0};
    assert_int_equal(vf_tensor_upload(t, p, &err), VF_OK);
    free(p);
}

/* Channels outside [c0, c0 + nc) of the parent still hold the pattern. */
static inline void check_sentinel(const struct vf_tensor *t, int c0, int nc, const char *what)
{
    size_t cnt = vf_tensor_count(t);
    float *p = malloc(cnt * sizeof *p);
    assert_non_null(p);
    struct vf_error err = {0};
    assert_int_equal(vf_tensor_download(t, p, &err), VF_OK);
    const size_t hw = (size_t)t->h * t->w;
    for (int i = 0; i < t->n; i++)
        for (int ch = 0; ch < t->c; ch++) {
            if (ch >= c0 && ch < c0 + nc)
                continue;
            for (size_t q = 0; q < hw; q++) {
                size_t idx = ((size_t)i * t->c + ch) * hw + q;
                if (p[idx] != tu_sentinel(idx))
                    fail_msg("%s: channel %d outside the view changed at %zu: %g", what, ch, q,
                             p[idx]);
            }
        }
    free(p);
}

#endif /* VF_TEST_UTIL_H */
