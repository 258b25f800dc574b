/* kernels/lanes256.c: kernels/lanes_impl.h's lanes built for AVX2 and FMA (-mavx2 -mfma,
 * kernels/CMakeLists.txt): the table vf_lanes256_, for CPUs without AVX-512F. */
#define LANES_BITS 256
#include "kernels/lanes_impl.h"
