#!/usr/bin/env bash
# `vaefarm bench` from the command line: a JSON document that parses and holds the figures
# docs/BENCHMARKS.md uses; bad options, sizes and weights files give the documented exit codes.
# Usage: cli_bench.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -uo pipefail
vf=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # name want-exit substring -- cmd...
  local name=$1 want=$2 sub=$3; shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
  if [ "$got" = "$want" ] && grep -qiF -- "$sub" "$tmp/err" "$tmp/out"; then echo "ok   $name"
  else echo "FAIL $name: exit $got (want $want), wanted '$sub'"; cat "$tmp/err"; fail=1; fi
}
check "tiny bench --json" 0 '"frames_per_second"' -- \
  "$vf" bench --model tiny --size 64x96 --full-size 128x192 --frames 2 --threads 1 --json
/usr/bin/python3 - "$tmp/out" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
assert d["architecture"] == "tiny" and d["size"] == [64, 96] and d["full_size"] == [128, 192], d
for k in ("F", "A", "C", "post", "total"):
    assert d["ms_per_frame"][k] > 0, k
assert d["gmac_per_frame"]["total"] > 0 and d["reference_conv"]["gflops"] > 0
assert 0 < d["ratio_to_reference_conv"] < 10
assert "propagate_ms_per_carried_frame" not in d   # the preset has no propagate
m = d["memory_kib"]
assert m["rss_after_create"] > 0 and m["rss_after_frames"] - m["rss_after_create"] < 8192, m
print("ok   bench JSON has every figure")
PY
# a model with film-size propagation (the golden's model_carry, arch propagate): its carried
# frame is timed apart, and a model without it has no such figure
check "propagate model --json" 0 '"propagate_ms_per_carried_frame"' -- \
  "$vf" bench --model "$2/golden/tiny/model_carry.safetensors" --size 64x96 --full-size 128x192 \
  --frames 1 --threads 1 --no-reference-conv --json
/usr/bin/python3 - "$tmp/out" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
assert d["propagate_ms_per_carried_frame"] > 0, d
# not timed (--no-reference-conv): null, not a zero that reads as a figure
assert d["reference_conv"]["gflops"] is None and d["reference_conv"]["ms"] is None, d
assert d["ratio_to_reference_conv"] is None and d["reference_conv"]["network_gflops"] > 0, d
print("ok   bench JSON times the carried frame")
PY
check "propagate model, human output" 0 "ms per carried frame (128x192, radius 7, patch 3; the first 3 frames" -- \
  "$vf" bench --model "$2/golden/tiny/model_carry.safetensors" --size 64x96 --full-size 128x192 \
  --frames 1 --threads 1 --no-reference-conv
check "human output" 0 "GMAC/frame" -- \
  "$vf" bench --model tiny --size 64x96 --frames 1 --no-reference-conv --threads 1
# no --threads: all cores, and the figures say how many ran (not 0)
cores=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')   # nproc obeys OMP_NUM_THREADS
check "no --threads: the JSON says the $cores threads that ran" 0 "\"threads\": $cores," -- \
  "$vf" bench --model tiny --size 64x96 --frames 1 --no-reference-conv --json
check "no --threads: so does the human output, with f32, bench's default precision" 0 \
  "64x96, f32, 1 frames, oneDNN" -- "$vf" bench --model tiny --size 64x96 --frames 1 --no-reference-conv
grep -q ", $cores thread" "$tmp/out" || { echo "FAIL human output: no '$cores thread'"; fail=1; }
check "unknown option" 2 "unknown or incomplete option" -- "$vf" bench --fast
check "bad size syntax" 2 "--size wants HxW" -- "$vf" bench --size 100
check "size not a multiple of 8" 3 "multiples of 8" -- "$vf" bench --size 100x100 --frames 1
check "neither a preset nor a file" 4 "'tiny' or 'full'" -- "$vf" bench --model huge
check "missing weights file" 4 "nope.safetensors" -- "$vf" bench --model "$tmp/nope.safetensors"
printf 'not a safetensors file' >"$tmp/bad.safetensors"
check "damaged weights file" 3 "bad.safetensors" -- "$vf" bench --model "$tmp/bad.safetensors"
check "f16 on the CPU" 3 "precision f16" -- "$vf" bench --precision f16 --frames 1
exit $fail
