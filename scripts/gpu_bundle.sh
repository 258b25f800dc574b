#!/usr/bin/env bash
# Build vaefarm with the CUDA backend here and pack, into .gpu/ (git-ignored), what the lent GPU
# machine (the `device` tool) needs and lacks, for its `carry`: the binaries (vaefarm, the test
# programs), the shared libraries they load that the device does not have (FFmpeg and its codecs,
# oneDNN, libyaml, jansson, cmocka, Open MPI with its plugins and launcher), and the test films.
# The device has nvcc, CMake, the CUDA runtime, cuBLAS, and cuDNN and NCCL as Python wheels
# (scripts/gpu_check.sh finds them). docs/GPU.md says how to use it; see the size it prints:
# what travels (working tree + .gpu) must stay under 64 MiB.
# Usage: scripts/gpu_bundle.sh            then: device run, carry [".gpu"], scripts/gpu_check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
b=build-gpu
cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DVF_CUDA=ON -DVF_WERROR=ON >/dev/null
cmake --build "$b" -j"$(nproc)" >/dev/null
ctest --test-dir "$b" -R '^(material|model)$' >/dev/null   # the test films and the model

stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" .gpu
cp "$b/coordinator/vaefarm" "$stage/bin/"
for t in "$b"/tests/test_*; do [ -x "$t" ] && cp "$t" "$stage/bin/"; done
# the libraries: everything the binaries load but glibc, the C++ runtime and the CUDA stack
skip='^(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libgcc_s|libstdc\+\+|libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl)\.so'
for f in "$stage"/bin/*; do ldd "$f"; done | awk '/=>/ {print $3}' | sort -u | while read -r lib; do
  base=$(basename "$lib")
  [[ $base =~ $skip ]] || cp -L "$lib" "$stage/lib/"
done
# Open MPI: its own plugin folder and launcher, unpacked at Debian's paths there
tar -C / -cf "$stage/openmpi.tar" usr/lib/x86_64-linux-gnu/openmpi usr/bin/orterun usr/bin/orted \
  usr/bin/mpirun usr/share/openmpi etc/openmpi 2>/dev/null || true
# the test films and the model the cli tests use
tar -C "$b" -cf "$stage/testdata.tar" testdata/films testdata/models
tar -C "$stage" -cf - . | xz -T0 -6 > .gpu/bundle.tar.xz
echo "gpu_bundle: .gpu/bundle.tar.xz $(du -h .gpu/bundle.tar.xz | cut -f1); working tree $(git ls-files -z | du -ch --files0-from=- | tail -1 | cut -f1) tracked (64 MiB in all may travel)"
