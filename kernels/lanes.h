/*
 * kernels/lanes.h: RL pixels side by side, one per lane of a GCC vector (internal to kernels/).
 * Code written with these runs each lane's operations in a scalar body's order (no FMA
 * contraction, kernels/CMakeLists.txt), so each lane gets that body's bits: ops.c's warp
 * refinement (refine_lanes) and lanes_impl.h's keep-luma solver.
 */
#ifndef VF_KERNELS_LANES_H
#define VF_KERNELS_LANES_H

#include <string.h>

enum { RL = 16 };
typedef float rl_f __attribute__((vector_size(RL * sizeof(float))));
typedef int rl_i __attribute__((vector_size(RL * sizeof(int))));
/* RL floats from p (any alignment) as a vector; v into RL floats at p. */
#define RL_LD(p) ({ rl_f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define RL_ST(p, v) do { const rl_f s_ = (v); memcpy((p), &s_, sizeof s_); } while (0)
/* m = p < m ? p : m in every lane (NaN in p keeps m): vf_min_run's step. */
#define RL_MIN(m, p) do { const rl_f p_ = (p); const rl_i lt_ = p_ < (m);                      \
        (m) = (rl_f)(((rl_i)p_ & lt_) | ((rl_i)(m) & ~lt_)); } while (0)
/* where mask, a, else b */
#define RL_SEL(mask, a, b) ((rl_f)(((rl_i)(a) & (mask)) | ((rl_i)(b) & ~(mask))))

/* Whether any lane of the mask *m is set. */
static inline int rl_any(const rl_i *m)
{
    int n = 0;
    for (int l = 0; l < RL; l++)
        n |= (*m)[l];
    return n != 0;
}

#endif /* VF_KERNELS_LANES_H */
