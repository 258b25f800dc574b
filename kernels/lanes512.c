/* kernels/lanes512.c: kernels/lanes_impl.h's lanes built for AVX-512F (-mavx512f,
 * kernels/CMakeLists.txt): the table vf_lanes512_. */
#define LANES_BITS 512
#include "kernels/lanes_impl.h"
