#!/usr/bin/env bash
# The default model until a trained one is bundled (issue: train the bundled model): the `tiny`
# architecture with the PyTorch reference's seeded random init (train/export.py --seed 0).
# It is NOT a trained model: its colours are not meaningful; vaefarm says so in its summary and
# report.json ("weights": "random ..."). Idempotent: does nothing when the file exists.
# Usage: scripts/make_model.sh [OUT]     (default: models/vaefarm-tiny.safetensors)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/models/vaefarm-tiny.safetensors}
if [ -s "$out" ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
tmp="$out.$$.tmp"
trap 'rm -f "$tmp"' EXIT
"${VF_PYTHON:-/usr/bin/python3}" "$root/train/export.py" --arch tiny --seed 0 --out "$tmp" >/dev/null
mv "$tmp" "$out"
echo "make_model: wrote $out (tiny architecture, random init at seed 0: not a trained model)"
