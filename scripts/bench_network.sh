#!/usr/bin/env bash
# The network's speed, side by side in one run on this machine (docs/BENCHMARKS.md): vaefarm's C
# engine (`vaefarm bench`, with its reference convolution) and the same network in PyTorch at its
# CPU settings (train/bench_torch.py): tiny at 144x256 as the preset is (with A's refinement) and
# without the refinement (the network issue 4's goals were set on), with the same random weights
# on both sides (seed 0, exported by train/export.py), and full at 216x384 (vaefarm's own random
# weights: a 245 MB export otherwise); f32 and bf16.
# Post-processing at twice the inference size on both sides. Prints a Markdown table; the JSON
# documents and the exported models go to OUTDIR (default out/bench).
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
# the weights PyTorch measures (make_model(arch, 0)), for vaefarm
/usr/bin/python3 - "$root/train" "$out" <<'PY'
import copy, json, os, sys
sys.path.insert(0, sys.argv[1])
from vaefarm_ref.arch import PRESETS
a = copy.deepcopy(PRESETS["tiny"])
a["A"].pop("refine", None)
json.dump(a, open(os.path.join(sys.argv[2], "tiny_norefine.json"), "w"))
PY
/usr/bin/python3 "$root/train/export.py" --arch tiny --seed 0 --out "$out/tiny.safetensors" >/dev/null
/usr/bin/python3 "$root/train/export.py" --arch "$out/tiny_norefine.json" --seed 0 \
  --out "$out/tiny_norefine.safetensors" >/dev/null
# name  vaefarm model  size  vaefarm frames  torch frames  torch warm-up  torch options  settings
# (PyTorch's refinement, the reference model's, takes seconds a frame: fewer frames there)
while read -r name model size frames tframes twarm topts settings; do
  for prec in $precs; do
    "$vf" bench --model "$model" --size "$size" --precision "$prec" --frames "$frames" --json \
      > "$out/vaefarm_${name}_${prec}.json" </dev/null
  done
  arch=${name%%_*}
  [ "$topts" = "-" ] && topts=""
  /usr/bin/python3 "$root/train/bench_torch.py" --arch "$arch" $topts --size ${size%x*} ${size#*x} \
    --frames "$tframes" --warmup "$twarm" --settings "$settings" --json \
    > "$out/torch_${name}.json" 2>"$out/torch_${name}.log" </dev/null
done <<EOF2
tiny $out/tiny.safetensors 144x256 20 4 1 - f32,bf16_cl,bf16_cl_fa32
tiny_norefine $out/tiny_norefine.safetensors 144x256 20 20 3 --no-refine f32,f32_cl,bf16_cl,bf16_cl_jit,bf16_cl_fa32,bf16_cl_jit_fa32
full full 216x384 4 4 1 - f32,f32_cl,bf16_cl,bf16_cl_jit,bf16_cl_fa32
EOF2
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
# a PyTorch setting outputs the network's a, b when within 3e-2 of its f32 (bench_torch's
# ab_rel_err, the larger of frame 0's and the last frame's); f32 is the reference itself
FAITHFUL = 3e-2
print("| model | engine | precision | F ms | A ms | C ms | post ms | frames/s | vs PyTorch's fastest | vs PyTorch's fastest faithful | % of ref. conv |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in ("tiny", "tiny_norefine", "full"):
    t = json.load(open(os.path.join(out, "torch_%s.json" % name)))
    ok = [r for r in t["results"] if "fps" in r]
    best = max(ok, key=lambda r: r["fps"]) if ok else {"fps": float("nan")}
    fa = [r for r in ok if r["setting"] == "f32" or r.get("ab_rel_err", 1.0) <= FAITHFUL]
    bestf = max(fa, key=lambda r: r["fps"]) if fa else {"fps": float("nan")}
    label = name.replace("_norefine", " without refinement")
    for prec in os.environ["VF_PRECS"].split():
        v = json.load(open(os.path.join(out, "vaefarm_%s_%s.json" % (name, prec))))
        m = v["ms_per_frame"]
        print("| %s %dx%d | vaefarm (C) | %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.2fx | %.2fx | %.0f%% (ref %.0f GFLOP/s) |" % (
            label, v["size"][0], v["size"][1], prec, m["F"], m["A"], m["C"], m["post"],
            v["frames_per_second"], v["frames_per_second"] / best["fps"],
            v["frames_per_second"] / bestf["fps"],
            100 * v["ratio_to_reference_conv"], v["reference_conv"]["gflops"]))
    for r in ok:
        err = r.get("ab_rel_err")
        tags = [s for s, on in (("fastest", r is best), ("fastest faithful", r is bestf)) if on]
        print("| %s | PyTorch %s | %s (ab err %s)%s | %.1f | %.1f | %.1f | %.1f | %.2f | | | |" % (
            label, t["torch"], r["setting"], "-" if err is None else "%.2g" % err,
            " **%s**" % ", ".join(tags) if tags else "", r["ms"]["F"], r["ms"]["A"], r["ms"]["C"],
            r["ms"]["post"], r["fps"]))
    for r in t["results"]:
        if "error" in r:
            print("| %s | PyTorch | %s failed: %s | | | | | | | | |" % (label, r["setting"], r["error"][:80]))
PY
