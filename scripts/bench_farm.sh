#!/usr/bin/env bash
# Farm throughput on this machine (docs/BENCHMARKS.md "The farm"): the standard test film
# (tests/MATERIAL.md: films/film_grey.mkv, 300 frames 320x180, 6 listed shots) with the default
# model, chunks of 40 kept frames and 8 warm-up frames, colorized from scratch at -np 1 and -np 2,
# each with the default threads (cores / ranks) and with one thread per rank. Prints one line per
# run from its report.json: wall time, frames/s, colorizing frames/s, each rank's busy share of
# the colorizing phase and of the wall time, the decode/infer/encode split, the coordinator's CPU
# time and its share of the wall time; and checks that every run's output has the same bytes.
# Usage: scripts/bench_farm.sh [BUILD_DIR] [TESTDATA]   (defaults: build, build/testdata)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd); data=$(cd "${2:-$build/testdata}" && pwd)
vf="$build/coordinator/vaefarm"
films="$data/films"
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
yaml() { # NAME
  python3 - "$films" "$out/$1" >"$out/$1.yaml" <<'PY'
import json, sys
films, out = sys.argv[1], sys.argv[2]
m = json.load(open(films + "/film.json"))
print("version: 1\ninput: %s/film_grey.mkv\noutput: %s.mkv\nshots:\n  detect: off\n  list:" % (films, out))
for s in m["shots"]:
    print("    - { start: %d, end: %d, reference: %s/%s }" % (s["start"], s["end"], films, s["reference"]))
print("chunks: { length: 40, warmup: 8 }")
PY
}
echo "vaefarm farm benchmark: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
first=""
for cfg in "1 0" "1 1" "2 0" "2 1"; do
  set -- $cfg; n=$1; t=$2
  name="np${n}_t${t}"; yaml "$name"
  args=(--quiet); [ "$t" != 0 ] && args+=(--threads "$t")
  if [ "$n" = 1 ]; then "$vf" "$out/$name.yaml" "${args[@]}"
  else mpirun -np "$n" --oversubscribe "$vf" "$out/$name.yaml" "${args[@]}"; fi
  python3 - "$out/$name.mkv.vaefarm/report.json" "$n" "$t" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ranks = " ".join("r%d %.0f%%/%.0f%%" % (p["rank"], 100 * p["busy_share"], 100 * p["wall_share"])
                 for p in r["per_rank"])
s = r["split"]
print("-np %s threads %-7s wall %6.2f s  %6.2f fps  colorize %6.2f fps  busy (of colorize/of wall) %s"
      "  decode %.1f infer %.1f encode %.1f s  coordinator CPU %.3f s = %.2f%% of wall" % (
          sys.argv[2], sys.argv[3] if sys.argv[3] != "0" else "default(%d)" % r["threads_per_rank"],
          r["wall_s"], r["fps"], r["fps_colorize"], ranks, s["decode_s"], s["infer_s"],
          s["encode_s"], r["coordinator_cpu_s"], 100 * r["coordinator_cpu_s"] / r["wall_s"]))
PY
  if [ -z "$first" ]; then first="$out/$name.mkv"
  elif ! cmp -s "$first" "$out/$name.mkv"; then echo "output of $name differs from np1_t0"; exit 1; fi
done
echo "every run's output is byte-identical"
