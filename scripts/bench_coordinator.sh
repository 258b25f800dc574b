#!/usr/bin/env bash
# The coordinator at scale (docs/FARM.md "The coordinator at scale"): the null colorizer on many
# oversubscribed ranks, tiny chunks so that scheduling is what is measured. Prints, per rank
# count and ms per frame: chunks, assignments/s over the colorizing phase, the coordinator
# thread's CPU share of its wall time, and the chunks of rank 0 and of the busiest/idlest other
# rank.
# Usage: scripts/bench_coordinator.sh VAEFARM [RANKS...]   (default ranks: 32 64)
#   FRAMES (default 20000), LENGTH (kept frames per chunk, default 1), MS (ms per frame, a list,
#   default "0 1 5"), MPIRUN_ARGS (extra mpirun options)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/bench_coordinator.sh VAEFARM [RANKS...]   (default ranks: 32 64)" >&2; exit 2; }
vf=$(realpath "$1"); shift
ranks=${*:-32 64}
for n in $ranks; do
  case $n in ''|*[!0-9]*|0|0*) echo "bench_coordinator: rank counts are whole numbers of at least 1, got '$n'" >&2; exit 2;; esac
done
frames=${FRAMES:-20000}; length=${LENGTH:-1}; mss=${MS:-0 1 5}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# a tiny film: the null colorizer never decodes it; rank 0 only probes it and plans
ffmpeg -loglevel error -f lavfi -i "testsrc=size=64x48:rate=24,format=gray" -frames:v "$frames" \
  -c:v ffv1 "$tmp/film.mkv"
ffmpeg -loglevel error -f lavfi -i "testsrc=size=64x48" -frames:v 1 "$tmp/ref.png"
printf 'version: 1\ninput: film.mkv\noutput: out.mkv\nshots: { detect: off }\ndefault_reference: ref.png\nchunks: { length: %s, warmup: 0 }\n' \
  "$length" >"$tmp/film.yaml"
printf '%6s %6s %7s %12s %8s %8s %8s %s\n' ranks ms chunks assign/s coord% colz_s setup_s "chunks: rank0 min..max"
for n in $ranks; do
  for ms in $mss; do
    rm -rf "$tmp/out.mkv.vaefarm"
    # shellcheck disable=SC2086
    mpirun --oversubscribe ${MPIRUN_ARGS:-} -np "$n" "$vf" run "$tmp/film.yaml" \
      --null-colorizer "$ms" --quiet
    python3 - "$tmp/out.mkv.vaefarm/null-colorizer/report.json" "$n" "$ms" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["coordinator"]
ch = [p["chunks"] for p in r["per_rank"]]
rest = ch[1:] or [0]
print("%6s %6s %7d %12.0f %8.2f %8.2f %8.2f %d %d..%d" % (
    sys.argv[2], sys.argv[3], r["chunks"], c["assignments_per_s"], 100 * c["share"],
    r["colorize_s"], r["setup_s"], ch[0], min(rest), max(rest)))
PY
  done
done
