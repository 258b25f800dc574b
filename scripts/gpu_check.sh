#!/usr/bin/env bash
# Run on the lent GPU machine (the `device` tool), in the repository root, with carry [".gpu"]
# made by scripts/gpu_bundle.sh: the GPU tests and the benchmarks of docs/GPU.md, logs and JSON
# into $OUT (at most 8 files). Budget: about 8 minutes on an H100/H200.
#   1. the CUDA operators and primitives against the CPU backend (test_cuda_ops, test_cuda_prims)
#   2. the golden tensors (made there with that machine's PyTorch) and test_golden's cuda_* cases
#   3. the farm on the GPU: tests/cli_gpu.sh (1 and 2 ranks, precisions, out of memory)
#   4. vaefarm bench, full model at 216×384, f32/bf16/f16, with and without the CUDA graph
# Usage (device run): bash scripts/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
root=$(pwd)
log="$OUT/gpu_check.log"
exec > >(tee "$log") 2>&1
echo "gpu_check: $(date -u), $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"

# the build's absolute paths (/work/main/...) resolve here too
[ -e /work/main ] || { mkdir -p /work && ln -s "$root" /work/main; }
u=/tmp/vf; mkdir -p "$u"
xz -dc .gpu/bundle.tar.xz | tar -C "$u" -xf - || { echo "no .gpu/bundle.tar.xz: run scripts/gpu_bundle.sh here first"; exit 2; }
tar -C / -xf "$u/openmpi.tar"
mkdir -p build-gpu && tar -C build-gpu -xf "$u/testdata.tar"
py=$(command -v python3)
nvlibs=$("$py" -c 'import nvidia, os; b = nvidia.__path__[0]; print(":".join(os.path.join(b, d, "lib") for d in sorted(os.listdir(b)) if os.path.isdir(os.path.join(b, d, "lib"))))' 2>/dev/null)
export LD_LIBRARY_PATH="$u/lib:$nvlibs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PATH="$u/bin:$PATH" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
vf="$u/bin/vaefarm"
"$vf" --version || { echo "vaefarm does not start here (ldd below)"; ldd "$vf" | grep 'not found'; exit 3; }

step() { echo; echo "=== $*"; }
step "1. CUDA operators and primitives"
timeout 120 "$u/bin/test_cuda_ops"; echo "test_cuda_ops: exit $?"
timeout 120 "$u/bin/test_cuda_prims"; echo "test_cuda_prims: exit $?"

step "2. golden tensors (this machine's PyTorch) and the network on the GPU"
VF_PYTHON="$py" timeout 240 scripts/make_golden.sh build-gpu/testdata/golden
timeout 240 "$u/bin/test_golden"; echo "test_golden: exit $?"

step "3. the farm on the GPU"
timeout 200 bash tests/cli_gpu.sh "$vf" "$root/build-gpu/testdata" "$root"; echo "cli_gpu: exit $?"

step "4. bench: full model at 216x384"
for p in f32 bf16 f16; do
  for g in --graph --no-graph; do
    timeout 60 "$vf" bench --device cuda --model full --size 216x384 --precision "$p" \
      --frames 200 $g --json > "$OUT/bench_full_${p}${g/--/_}.json" && \
      "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], "%.1f fps" % d["frames_per_second"], d["ms_per_frame"])' \
        "$OUT/bench_full_${p}${g/--/_}.json" "$p" "$g"
  done
done
echo "gpu_check: done $(date -u)"
