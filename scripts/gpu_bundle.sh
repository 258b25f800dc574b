#!/usr/bin/env bash
# Build vaefarm with the CUDA backend here and pack, into .gpu/ (git-ignored), what the lent GPU
# machine (the `device` tool) needs and lacks, for its `carry` (docs/GPU.md). That machine has
# nvcc, CMake, the CUDA runtime, cuBLAS, and cuDNN and NCCL as Python wheels (scripts/gpu_check.sh
# finds them), but none of Debian's FFmpeg, oneDNN, Open MPI, libyaml, jansson or cmocka. What
# travels (working tree + carry) must stay under 64 MiB, so there are two bundles, one per call:
#   kernels  test_cuda_ops, test_cuda_prims, test_golden (linked --as-needed: no FFmpeg) and the
#            libraries they load: oneDNN, cmocka, jansson, libgomp            (about 7 MiB xz)
#   farm     vaefarm, the libraries it loads (FFmpeg and its codec libraries, oneDNN, ...), Open
#            MPI with its plugins, PMIx and launcher, ffmpeg, the first 100 frames of the cli_gpu
#            test film (about 60 MiB xz: move train/checkpoints/tiny/last.pt (17 MB) out of the working tree
#            for that call, or it does not fit; docs/GPU.md)
# Usage: scripts/gpu_bundle.sh kernels|farm    then: device run, carry [".gpu"],
#        command "bash scripts/gpu_check.sh kernels|farm"
set -euo pipefail
mode=${1:?usage: gpu_bundle.sh kernels|farm}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
b=build-gpu
cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DVF_CUDA=ON -DVF_WERROR=ON >/dev/null
cmake --build "$b" -j"$(nproc)" >/dev/null

stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" .gpu
case $mode in
  kernels) cp "$b"/tests/test_cuda_ops "$b"/tests/test_cuda_prims "$b"/tests/test_golden "$stage/bin/" ;;
  farm) cp "$b/coordinator/vaefarm" "$stage/bin/"
        ctest --test-dir "$b" -R '^(material|model)$' >/dev/null   # the test films and the model
        mkdir -p "$stage/testdata/films"
        # cli_gpu uses the first 100 frames (4 s) of the test film; the model is made there
        ffmpeg -loglevel error -i "$b"/testdata/films/film_grey.mkv -frames:v 100 -t 4 -map 0 \
          -c copy "$stage/testdata/films/film_grey.mkv"
        cp "$b"/testdata/films/film_ref_[012].png "$stage/testdata/films/"
        # Open MPI: its plugin folder and launcher, unpacked at Debian's paths there
        # Open MPI with PMIx (its plugin and libpmix), unpacked at Debian's paths there; their
        # own libraries go through the ldd pass below
        tar -C / -cf "$stage/openmpi.tar" usr/lib/x86_64-linux-gnu/openmpi usr/bin/orterun \
          usr/bin/orted usr/bin/mpirun usr/share/openmpi etc/openmpi usr/lib/x86_64-linux-gnu/pmix2
        cp /usr/bin/ffmpeg "$stage/bin/" ;;
  *) echo "gpu_bundle: kernels or farm, not '$mode'" >&2; exit 2 ;;
esac
# the libraries: everything the binaries load but glibc, the C++ runtime and the CUDA stack
skip='^(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libgcc_s|libstdc\+\+|libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl)\.so'
plugins=""
[ "$mode" = farm ] && plugins=$(find /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 -name '*.so*' -type f)
for f in "$stage"/bin/* $plugins; do ldd "$f"; done | awk '/=>/ {print $3}' | sort -u | while read -r lib; do
  base=$(basename "$lib")
  [[ $base =~ $skip ]] || cp -L "$lib" "$stage/lib/"
done
echo "$mode" > "$stage/MODE"
tar -C "$stage" -cf - . | xz -T0 -6 > ".gpu/$mode.tar.xz"
tracked=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
echo "gpu_bundle: .gpu/$mode.tar.xz $(( $(stat -c %s ".gpu/$mode.tar.xz") >> 20 )) MiB; tracked files $(( tracked >> 20 )) MiB (64 MiB in all may travel)"
