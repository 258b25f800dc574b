#!/usr/bin/env bash
# Make the test material (tests/MATERIAL.md) into OUTDIR: runs scripts/material/*.sh in order.
# Each piece is idempotent; the whole thing is safe to run again and again.
# Usage: scripts/make_test_material.sh OUTDIR
set -euo pipefail
out=${1:?usage: make_test_material.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
export VF_CACHE_DIR=${VF_CACHE_DIR:-$HOME/.cache/vaefarm}
mkdir -p "$out" "$VF_CACHE_DIR"
for piece in "$here"/material/*.sh; do
  [ -e "$piece" ] || continue
  t0=$(date +%s.%N)
  bash "$piece" "$out"
  awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$(basename "$piece")" 'BEGIN{printf "material: %s done in %.1f s\n", n, b-a}'
done
