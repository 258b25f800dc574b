#!/usr/bin/env bash
# The network's speed, side by side in one run on this machine (docs/BENCHMARKS.md): vaefarm's C
# engine (`vaefarm bench`, with its reference convolution) and the same network in PyTorch at its
# CPU settings (train/bench_torch.py), for tiny at 144x256 and full at 216x384, f32 and bf16.
# Post-processing at twice the inference size on both sides. Prints a Markdown table; the JSON
# documents go to OUTDIR (default out/bench).
# Usage: scripts/bench_network.sh [BUILD_DIR] [OUTDIR]      (run on a quiet machine)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$root/out/bench}
vf="$build/coordinator/vaefarm"
[ -x "$vf" ] || { echo "bench_network: build first ($vf missing)" >&2; exit 1; }
mkdir -p "$out"
{ lscpu | grep -E 'Model name|^CPU\(s\)' | sed 's/^/# /'; } || true
precs="f32"
"$vf" bench --model tiny --size 32x32 --frames 1 --precision bf16 --no-reference-conv >/dev/null 2>&1 \
  && precs="f32 bf16" || echo "# this CPU has no bf16: f32 only"
export VF_PRECS="$precs"
for cfg in "tiny 144x256 20 3" "full 216x384 4 1"; do
  set -- $cfg
  arch=$1 size=$2 frames=$3 warm=$4
  for prec in $precs; do
    "$vf" bench --model "$arch" --size "$size" --precision "$prec" --frames "$frames" --json \
      > "$out/vaefarm_${arch}_${prec}.json"
  done
  /usr/bin/python3 "$root/train/bench_torch.py" --arch "$arch" --size ${size%x*} ${size#*x} \
    --frames "$frames" --warmup "$warm" --settings f32,f32_cl,bf16_cl,bf16_cl_jit --json \
    > "$out/torch_${arch}.json" 2>"$out/torch_${arch}.log"
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print("| model | engine | precision | F ms | A ms | C ms | post ms | frames/s | vs PyTorch best | % of ref. conv |")
print("|---|---|---|---|---|---|---|---|---|---|")
for arch in ("tiny", "full"):
    t = json.load(open(os.path.join(out, "torch_%s.json" % arch)))
    ok = [r for r in t["results"] if "fps" in r]
    best = max(ok, key=lambda r: r["fps"]) if ok else {"fps": float("nan")}
    for prec in os.environ["VF_PRECS"].split():
        v = json.load(open(os.path.join(out, "vaefarm_%s_%s.json" % (arch, prec))))
        m = v["ms_per_frame"]
        print("| %s %dx%d | vaefarm (C) | %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.2fx | %.0f%% (ref %.0f GFLOP/s) |" % (
            arch, v["size"][0], v["size"][1], prec, m["F"], m["A"], m["C"], m["post"],
            v["frames_per_second"], v["frames_per_second"] / best["fps"],
            100 * v["ratio_to_reference_conv"], v["reference_conv"]["gflops"]))
    for r in ok:
        print("| %s | PyTorch %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f | %s | |" % (
            arch, t["torch"], r["setting"], r["ms"]["F"], r["ms"]["A"], r["ms"]["C"], r["ms"]["post"],
            r["fps"], "best" if r is best else ""))
PY
