#!/usr/bin/env bash
# Run on the lent GPU machine (the `device` tool), in the repository root, with carry [".gpu"]
# made by `scripts/gpu_bundle.sh MODE` here (docs/GPU.md). Logs and JSON go to $OUT (8 files at
# most come back).
#   kernels (about 4 minutes on an H200):
#     1. the CUDA operators and primitives against the CPU backend (test_cuda_ops, test_cuda_prims)
#     2. the golden tensors, made there with that machine's PyTorch, and test_golden (its cuda_*
#        cases: tiny and full, f32/bf16/f16, graph replay = eager = a second run)
#   farm (about 5 minutes):
#     3. the farm on the GPU: tests/cli_gpu.sh (1 and 2 ranks, precisions, out of memory)
#     4. vaefarm bench, full model at 216×384, f32/bf16/f16, with and without the CUDA graph
# Usage (device run): bash scripts/gpu_check.sh kernels|farm
set -uo pipefail
mode=${1:?usage: gpu_check.sh kernels|farm}
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
root=$(pwd)
exec > >(tee "$OUT/gpu_check_$mode.log") 2>&1
echo "gpu_check $mode: $(date -u), $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"

# the build's absolute paths (/work/main/build-gpu/...) resolve here too
[ -e /work/main ] || { mkdir -p /work && ln -s "$root" /work/main; }
u=/tmp/vf; mkdir -p "$u"
xz -dc ".gpu/$mode.tar.xz" | tar -C "$u" -xf - ||
  { echo "no .gpu/$mode.tar.xz: run scripts/gpu_bundle.sh $mode here first"; exit 2; }
py=$(command -v python3)
nvlibs=$("$py" -c 'import nvidia, os; b = nvidia.__path__[0]; print(":".join(os.path.join(b, d, "lib") for d in sorted(os.listdir(b)) if os.path.isdir(os.path.join(b, d, "lib"))))' 2>/dev/null)
export LD_LIBRARY_PATH="$u/lib:$nvlibs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PATH="$u/bin:$PATH" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for f in "$u"/bin/*; do
  miss=$(ldd "$f" | grep 'not found') && { echo "$(basename "$f") cannot load: $miss"; exit 3; }
done
step() { echo; echo "=== $*"; }
failed=""
note() { local name=$1 rc=$2; echo "$name: exit $rc"; [ "$rc" = 0 ] || failed="$failed $name"; }

if [ "$mode" = kernels ]; then
  step "1. CUDA operators and primitives"
  timeout 120 "$u/bin/test_cuda_ops"; note test_cuda_ops $?
  timeout 120 "$u/bin/test_cuda_prims"; note test_cuda_prims $?
  step "2. golden tensors (this machine's PyTorch) and the network on the GPU"
  VF_PYTHON="$py" timeout 240 scripts/make_golden.sh build-gpu/testdata/golden; grc=$?
  note make_golden $grc
  if [ "$grc" = 0 ]; then timeout 240 "$u/bin/test_golden"; note test_golden $?
  else echo "gpu_check: no golden tensors, test_golden not run"; fi
else
  vf="$u/bin/vaefarm"
  tar -C / -xf "$u/openmpi.tar"
  mkdir -p build-gpu && cp -r "$u/testdata" build-gpu/
  VF_PYTHON="$py" scripts/make_model.sh build-gpu/testdata/models/vaefarm-tiny.safetensors
  "$vf" --version
  step "3. the farm on the GPU"
  timeout 200 bash tests/cli_gpu.sh "$vf" "$root/build-gpu/testdata" "$root"; note cli_gpu $?
  step "4. bench: full model at 216x384"
  for p in f32 bf16 f16; do
    for g in graph no-graph; do
      j="$OUT/bench_full_${p}_$g.json"
      timeout 60 "$vf" bench --device cuda --model full --size 216x384 --precision "$p" \
        --frames 200 "--$g" --json > "$j"; note "bench $p $g" $?
      [ -s "$j" ] &&
        "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], "%.1f fps" % d["frames_per_second"], d["ms_per_frame"])' "$j" "$p" "$g"
    done
  done
fi
echo "gpu_check $mode: done $(date -u)${failed:+; FAILED:$failed}"
[ -z "$failed" ]
