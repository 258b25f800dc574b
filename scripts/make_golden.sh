#!/usr/bin/env bash
# Make the golden tensors (docs/NETWORK.md, train/golden.py) into OUTDIR/{tiny,full}: the
# PyTorch reference's weights at a fixed seed and its outputs over 5 recurrent frames. Remade
# only when the reference code changed (a stamp holds the hash of train/). Needs Debian's
# python3-torch (scripts/setup.sh installs it).
# Usage: scripts/make_golden.sh OUTDIR
set -euo pipefail
out=${1:?usage: make_golden.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
py=${VF_PYTHON:-/usr/bin/python3}   # VF_PYTHON: another python with torch (scripts/gpu_check.sh)
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "make_golden: Debian's python3-torch is missing: run scripts/setup.sh" >&2
  exit 1
fi
args="--seed 7 --frames 5"   # tests/test_golden.c reads 5 frames (and the sizes from the file)
# full at tiny's 144x256 (/ 288x512), not its own 216x384: float64 ResNet-50 convolutions take
# 186 s there on 2 cores, 69 s here; every op and path is the same (docs/REFERENCE.md)
full_size="--size 144 256"
stamp=$( (cd "$root" && echo "$args $full_size" && cat scripts/make_golden.sh train/golden.py train/export.py train/safetensors_io.py train/vaefarm_ref/*.py) | sha256sum | cut -c1-16)
for arch in tiny full; do
  dir="$out/$arch"
  if [ -f "$dir/golden.safetensors" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "make_golden: $arch up to date"
    continue
  fi
  mkdir -p "$out"
  tmp=$(mktemp -d "$out/.$arch.XXXXXX")   # this run's own: two runs never share a folder
  trap 'rm -rf "$tmp"' EXIT
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$py" "$root/train/golden.py" --arch "$arch" $args $([ "$arch" = full ] && echo "$full_size") \
    $([ "$arch" = tiny ] && echo --guided --gated) --out "$tmp"
  echo "$stamp" > "$tmp/stamp"
  rm -rf "$dir" && mv "$tmp" "$dir"
  awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$arch" 'BEGIN{printf "make_golden: %s done in %.1f s\n", n, b-a}'
done
