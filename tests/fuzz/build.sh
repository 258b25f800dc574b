#!/bin/sh
# tests/fuzz/build.sh: build the libFuzzer harnesses (clang). Usage: tests/fuzz/build.sh [outdir]
# The project's C libraries are built with coverage + ASan + UBSan (build-fuzz/); kernels/ does
# not build with clang (target_clones + flatten in kernels/ops.c), so fuzz_arch links a GCC
# build of vf_kernels (build-gcc/, not instrumented: only net.c's own JSON code is fuzzed).
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$SRC/build-fuzz}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-g -O1 -Wall -Wextra -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$SRC"
mkdir -p "$OUT" "$SRC/build-gcc"
(cd "$OUT" && CC=clang cmake "$SRC" -DVF_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link $SAN" >/dev/null &&
    make -j2 vf_common vf_config vf_shard >/dev/null)
(cd "$SRC/build-gcc" && CC=gcc cmake "$SRC" -DVF_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    make -j2 vf_kernels >/dev/null)
FF=$(pkg-config --cflags --libs libavformat libavcodec libavutil libswscale libavfilter)
YAML=$(pkg-config --cflags --libs yaml-0.1)
JANSSON=$(pkg-config --cflags --libs jansson)
LIBS="$OUT/shard/libvf_shard.a $OUT/config/libvf_config.a $OUT/common/libvf_common.a"
CC="clang $CFLAGS -fsanitize=fuzzer $SAN"
$CC -o "$OUT/fuzz_config" "$SRC/tests/fuzz/fuzz_config.c" $LIBS $YAML -lm
$CC -o "$OUT/fuzz_edl" "$SRC/tests/fuzz/fuzz_edl.c" $LIBS $YAML $FF $JANSSON -lm
$CC -o "$OUT/fuzz_journal" "$SRC/tests/fuzz/fuzz_journal.c" $LIBS $YAML $FF $JANSSON -lm
$CC -o "$OUT/fuzz_seam" "$SRC/tests/fuzz/fuzz_seam.c" "$SRC/coordinator/farm_msg.c" \
    $(mpicc --showme:compile) $LIBS $YAML $FF $JANSSON $(mpicc --showme:link) -lm
$CC -o "$OUT/fuzz_safetensors" "$SRC/tests/fuzz/fuzz_safetensors.c" "$SRC/node/safetensors.c" \
    $LIBS $JANSSON -lm
$CC -fopenmp -o "$OUT/fuzz_arch" "$SRC/tests/fuzz/fuzz_arch.c" "$SRC/node/net.c" \
    "$SRC/node/safetensors.c" "$SRC/build-gcc/kernels/libvf_kernels.a" $LIBS $JANSSON \
    -ldnnl -lgomp -lm
echo "built: $OUT/fuzz_{config,edl,journal,seam,safetensors,arch}"
