#!/usr/bin/env bash
# The tests' model: the `tiny` architecture with the PyTorch reference's seeded random init
# (train/export.py --seed 0), fixed whatever training does, so that the tests' expectations do not
# move with the bundled model. It is NOT a trained model: vaefarm says so in its summary and
# report.json ("weights": "random ..."). The bundled default, models/vaefarm-tiny.safetensors, is
# the trained one, committed (docs/TRAINING.md). Idempotent: does nothing when OUT exists and
# was made by the reference code of this checkout (OUT.stamp holds its hash: a changed preset or
# init remakes it).
# VF_PYTHON: a python with torch other than Debian's (scripts/gpu_check.sh).
# Usage: scripts/make_model.sh OUT
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: make_model.sh OUT (the bundled trained model is models/vaefarm-tiny.safetensors, committed)}
stamp=$(cd "$root" && cat train/export.py train/safetensors_io.py train/vaefarm_ref/*.py | sha256sum | cut -c1-16)
if [ -s "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
tmp="$out.$$.tmp"
trap 'rm -f "$tmp"' EXIT
"${VF_PYTHON:-/usr/bin/python3}" "$root/train/export.py" --arch tiny --seed 0 --out "$tmp" >/dev/null
mv "$tmp" "$out"
echo "$stamp" > "$out.stamp"
echo "make_model: wrote $out (tiny architecture, random init at seed 0: not a trained model)"
