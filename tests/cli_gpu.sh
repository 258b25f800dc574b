#!/usr/bin/env bash
# The farm on GPUs (docs/GPU.md): the cli_farm test film colorized by ranks on CUDA backends.
#   - 1 rank and 2 ranks sharing GPU 0 give byte-identical output; report.json says every rank
#     ran on cuda:0
#   - bf16 and f32 (f16 where the GPU has it) each give byte-identical output across two runs
#   - with 2 or more GPUs: 2 ranks on their own GPUs (weights broadcast over NCCL) and the same
#     with VAEFARM_NCCL=0 (MPI) give the 1-rank bytes
# Reports "skipped: no GPU" (exit 77) where the build has no CUDA backend or no GPU is visible.
# Usage: cli_gpu.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -uo pipefail
source "$(dirname "$0")/farm_lib.sh" "$@"

gpus=$("$vf" --version | sed -n 's/.*cuda backend: built; \([0-9]*\) GPU.*/\1/p')
if [ -z "$gpus" ] || [ "$gpus" = 0 ]; then
  echo "skipped: no GPU ($("$vf" --version | grep 'cuda backend'))"
  exit 77
fi
echo "     $gpus GPU(s): $("$vf" --version | grep -m1 'GPU 0')"

films="$data/films"
if command -v ffmpeg >/dev/null; then
  ffmpeg -loglevel error -i "$films/film_grey.mkv" -frames:v 100 -t 4 -map 0 -c:v copy -c:a flac \
    "$tmp/grey.mkv" || { bad "make the test film"; exit 1; }
else   # a lent GPU machine: scripts/gpu_bundle.sh farm carries the film already cut
  cp "$films/film_grey.mkv" "$tmp/grey.mkv"
fi
cp "$films/film_ref_0.png" "$films/film_ref_1.png" "$films/film_ref_2.png" "$tmp/"
mkyaml() { # NAME EXTRA...
  { printf 'version: 1\ninput: grey.mkv\noutput: %s.mkv\n' "$1"
    printf 'shots:\n  detect: off\n  list:\n'
    printf '    - { start: 0, end: 50, reference: film_ref_0.png }\n'
    printf '    - { start: 50, end: 65, reference: film_ref_1.png }\n'
    printf '    - { start: 65, end: 100, reference: film_ref_2.png }\n'
    printf 'chunks: { length: 20, warmup: 4 }\n%b' "${2:-}"; } >"$tmp/$1.yaml"
}
devices() { python3 -c "import json,sys; print(' '.join(sorted(set(r['device'] for r in json.load(open(sys.argv[1]))['per_rank']))))" "$tmp/$1.mkv.vaefarm/report.json"; }

# --- 1 rank and 2 ranks on GPU 0
mkyaml g1 'inference_size: [144, 256]\n'
CUDA_VISIBLE_DEVICES=0 "$vf" "$tmp/g1.yaml" --quiet; rc=$?
check "1 rank on GPU 0 (exit $rc)" [ "$rc" = 0 ]
check "report: cuda:0 ($(devices g1))" [ "$(devices g1)" = "cuda:0" ]
mkyaml g2 'inference_size: [144, 256]\n'
CUDA_VISIBLE_DEVICES=0 mpi 2 "$tmp/g2.yaml" --quiet; rc=$?
check "2 ranks sharing GPU 0 (exit $rc)" [ "$rc" = 0 ]
check "2 ranks on one GPU: the 1-rank bytes" cmp -s "$tmp/g1.mkv" "$tmp/g2.mkv"
check "report: both ranks on cuda:0" [ "$(devices g2)" = "cuda:0" ]

# --- every precision the GPU has: two runs, the same bytes
for p in f32 bf16 f16; do
  mkyaml "p${p}a" "inference_size: [144, 256]\nprecision: $p\n"
  mkyaml "p${p}b" "inference_size: [144, 256]\nprecision: $p\n"
  CUDA_VISIBLE_DEVICES=0 "$vf" "$tmp/p${p}a.yaml" --quiet 2>"$tmp/p$p.err"; rc=$?
  if [ "$rc" != 0 ] && grep -q "does not compute in it" "$tmp/p$p.err"; then
    echo "     $p: not on this GPU ($(head -1 "$tmp/p$p.err"))"; continue
  fi
  check "$p runs (exit $rc)" [ "$rc" = 0 ]
  CUDA_VISIBLE_DEVICES=0 "$vf" "$tmp/p${p}b.yaml" --quiet
  check "$p: a second run gives the same bytes" cmp -s "$tmp/p${p}a.mkv" "$tmp/p${p}b.mkv"
done

# --- two GPUs: NCCL and MPI broadcasts of the weights give the same bytes
if [ "$gpus" -ge 2 ]; then
  mkyaml n2 'inference_size: [144, 256]\n'
  CUDA_VISIBLE_DEVICES=0,1 mpi 2 "$tmp/n2.yaml" --verbose 2>"$tmp/n2.err"; rc=$?
  check "2 ranks on 2 GPUs (exit $rc)" [ "$rc" = 0 ]
  check "weights over NCCL" grep -q "over NCCL" "$tmp/n2.err"
  check "2 GPUs: the 1-rank bytes" cmp -s "$tmp/g1.mkv" "$tmp/n2.mkv"
  check "report: cuda:0 and cuda:1" [ "$(devices n2)" = "cuda:0 cuda:1" ]
  mkyaml m2 'inference_size: [144, 256]\n'
  VAEFARM_NCCL=0 CUDA_VISIBLE_DEVICES=0,1 mpi 2 "$tmp/m2.yaml" --quiet; rc=$?
  check "2 GPUs, weights over MPI (exit $rc)" [ "$rc" = 0 ]
  check "MPI broadcast: the same bytes" cmp -s "$tmp/g1.mkv" "$tmp/m2.mkv"
else
  echo "     one GPU: the NCCL broadcast is not tried"
fi

echo "cli_gpu: $pass passed, $fail failed"
[ "$fail" = 0 ]
