#!/usr/bin/env bash
# chunks.length: auto end to end (docs/PLAN.md "Auto chunking"), on frames [0, 100) of the
# standard test film (shots [0,50) [50,65) [65,100), warm-up 4):
#   - `plan --simulate R` plans for R ranks: 2 and 3 ranks give different chunks; the JSON has
#     makespan_frames >= lower_bound_frames and efficiency = their ratio
#   - `mpirun -np 2` records the rank count it planned for in plan.json
#   - stopped part-way and resumed with -np 3, the job keeps the 2-rank plan: same plan hash,
#     only the missing chunks run, byte-identical output
#   - `ranks: 2` in the film.yaml, one process, a fresh work folder: the same plan, the same bytes
#   - `ranks:` in the film.yaml wins over the work folder's record
#   - null-colorizer runs plan for their own -np each time (they resume nothing)
#   - `vaefarm plan` gives a run's hash; with --simulate it shows R ranks' chunks but says what a
#     run now would do with the run's own; a precision given once and then left to the default
#     is resolved as this machine would, not as plan.json recorded it
# Usage: cli_plan_auto.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -uo pipefail
source "$(dirname "$0")/farm_lib.sh" "$@"
jq_() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
# the chunks' frames (`vaefarm plan` resolves the model and precision as a run does, so their plan
# hashes match too; the frames say which cut it is)
geom() { jq_ "$1" '" ".join("%d-%d-%d" % (c["warm_start"], c["start"], c["end"]) for c in d["chunks"])'; }

films="$data/films"
ffmpeg -loglevel error -i "$films/film_grey.mkv" -frames:v 100 -map 0:v -c:v copy "$tmp/grey.mkv" \
  || { bad "make the test film"; exit 1; }
cp "$films/film_ref_0.png" "$films/film_ref_1.png" "$films/film_ref_2.png" "$tmp/"
mkyaml() { # NAME [EXTRA]: work folder <NAME>.mkv.vaefarm unless EXTRA sets work_dir
  { printf 'version: 1\ninput: grey.mkv\noutput: %s.mkv\ninference_size: [72, 128]\naudio: none\n' "$1"
    printf 'shots:\n  detect: off\n  list:\n'
    printf '    - { start: 0, end: 50, reference: film_ref_0.png }\n'
    printf '    - { start: 50, end: 65, reference: film_ref_1.png }\n'
    printf '    - { start: 65, end: 100, reference: film_ref_2.png }\n'
    printf 'chunks: { length: auto, warmup: 4 }\n%s' "${2:-}"; } >"$tmp/$1.yaml"
}

# --- plan --simulate R plans for R
mkyaml a
for r in 1 2 3; do
  "$vf" plan "$tmp/a.yaml" --simulate $r --json >"$tmp/sim$r.json"; rc=$?
  check "plan --simulate $r (exit $rc) plans for $r ranks" \
    [ "$rc:$(jq_ "$tmp/sim$r.json" 'd["chunking"]["ranks"], d["chunk_length"]')" = "0:($r, 'auto')" ]
done
check "the simulation: makespan >= bound, efficiency = bound / makespan, work = frames + warm-up" \
  python3 - "$tmp"/sim{1,2,3}.json <<'PY'
import json, sys
for p in sys.argv[1:]:
    d = json.load(open(p)); s = d["simulation"]
    work = sum(c["end"] - c["warm_start"] for c in d["chunks"])
    assert s["work_frames"] == work and s["lower_bound_frames"] <= s["makespan_frames"], s
    assert abs(s["efficiency"] - s["lower_bound_frames"] / s["makespan_frames"]) < 1e-9, s
    assert s["plan_lower_bound_frames"] >= s["lower_bound_frames"], s
    assert d["chunking"]["target_frames"] >= s["lower_bound_frames"], d["chunking"]
    # no work folder yet: a run on R ranks would cut these very chunks, all of them to do
    r = d["rerun"]
    assert "ranks" not in r and r["chunks"] == len(d["chunks"]) and r["redo"] == len(d["chunks"]), r
    assert s["rerun_makespan_frames"] == s["makespan_frames"], s
PY
h2=$(jq_ "$tmp/sim2.json" 'd["hash"]'); h3=$(jq_ "$tmp/sim3.json" 'd["hash"]')
g2=$(geom "$tmp/sim2.json"); g3=$(geom "$tmp/sim3.json")
n2=$(jq_ "$tmp/sim2.json" 'len(d["chunks"])'); n3=$(jq_ "$tmp/sim3.json" 'len(d["chunks"])')
check "2 and 3 ranks give different plans ($n2 and $n3 chunks)" \
  all '[ "$h2" != "$h3" ] && [ "$g2" != "$g3" ]'
"$vf" plan "$tmp/a.yaml" --json >"$tmp/plan0.json"; rc=$?
check "plan without --simulate, no work folder yet: one process (exit $rc)" \
  [ "$(jq_ "$tmp/plan0.json" 'd["chunking"]["ranks"]')" = 1 ]

# --- mpirun -np 2: planned for 2, recorded in plan.json
mpi 2 "$tmp/a.yaml" --quiet >"$tmp/a.log" 2>&1; rc=$?
check "np 2 runs (exit $rc)" [ "$rc" = 0 ]
w="$tmp/a.mkv.vaefarm"
check "plan.json records 2 ranks and the 2-rank chunks" \
  all '[ "$(jq_ "$w/plan.json" "d[\"chunking\"][\"ranks\"]")" = 2 ] && [ "$(geom "$w/plan.json")" = "$g2" ]'
hrun=$(jq_ "$w/plan.json" 'd["hash"]')
cp "$tmp/a.mkv" "$tmp/a_np2.mkv"
"$vf" plan "$tmp/a.yaml" --json >"$tmp/plan1.json"
check "plan without --simulate now shows what a resume does: 2 ranks, from plan.json, the run's hash" \
  [ "$(jq_ "$tmp/plan1.json" 'd["chunking"]["ranks"], d["hash"] == "'"$h2"'" == "'"$hrun"'"')" = "(2, True)" ]
check "plan.json says film.yaml left the precision to the backend" \
  [ "$(jq_ "$w/plan.json" 'd["precision_default"], d["precision"] == "'"$(jq_ "$tmp/plan0.json" 'd["precision"]')"'"')" = "(True, True)" ]
# --simulate 3 shows the 3-rank cut, but what a run now does is for the run's own (2-rank) chunks
"$vf" plan "$tmp/a.yaml" --json --simulate 3 >"$tmp/plan1s.json"; rc=$?
"$vf" plan "$tmp/a.yaml" --simulate 3 >"$tmp/plan1s.txt"; rc2=$?
check "plan --simulate 3 after the 2-rank run (exit $rc, $rc2): 3-rank chunks shown, the run keeps all $n2 of its own" \
  all '[ "$rc$rc2" = 00 ] && python3 - "$tmp/plan1s.json" "$n2" <<"PY" &&
import json, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[2]); r = d["rerun"]
assert d["chunking"]["ranks"] == 3 and all("rerun" not in c for c in d["chunks"]), d["chunks"][0]
assert (r["journal"], r["ranks"], r["chunks"], r["keep"], r["redo"]) == (True, 2, n, n, 0), r
assert d["simulation"]["rerun_makespan_frames"] == 0, d["simulation"]
PY
  grep -q "a run now (with its own chunks: $n2, cut for 2 ranks, the work folder.s plan.json, not for --simulate.s) keeps $n2 of $n2 chunks" "$tmp/plan1s.txt"'

# --- stopped after one chunk, resumed with -np 3: the 2-rank plan stays
head -n 1 "$w/journal" >"$w/journal.1" && mv "$w/journal.1" "$w/journal"
rm -f "$tmp/a.mkv"
mpi 3 "$tmp/a.yaml" --quiet >>"$tmp/a.log" 2>&1; rc=$?
check "resume with -np 3 (exit $rc)" [ "$rc" = 0 ]
check "resume keeps the plan: same hash, 2 ranks recorded" \
  [ "$(jq_ "$w/plan.json" 'd["chunking"]["ranks"], d["hash"] == "'"$hrun"'"')" = "(2, True)" ]
check "resume ran only the missing chunks ($((n2 - 1)) of $n2)" \
  [ "$(jq_ "$w/report.json" 'd["chunks_resumed"], d["chunks_run"], d["ranks"]')" = "(1, $((n2 - 1)), 3)" ]
check "resumed output is byte-identical to the uninterrupted one" cmp -s "$tmp/a_np2.mkv" "$tmp/a.mkv"

# --- precision: f32 given, then left out: plan resolves the default as rank 0 would on this
# machine, not as the f32 in plan.json (a run would then redo every chunk where that is bf16)
mkyaml p 'precision: f32
ranks: 1
'
"$vf" "$tmp/p.yaml" --quiet >"$tmp/p.log" 2>&1; rc=$?
mkyaml p 'ranks: 1
'
"$vf" plan "$tmp/p.yaml" --json >"$tmp/planp.json"; rc2=$?
check "precision f32 then default (exit $rc, $rc2): plan resolves the default as this machine, and keeps the chunks only where that is f32" \
  python3 - "$tmp/planp.json" "$tmp/p.mkv.vaefarm/plan.json" "$tmp/plan0.json" <<'PY'
import json, sys
d, run, fresh = (json.load(open(a)) for a in sys.argv[1:])
assert run["precision"] == "f32" and run["precision_default"] is False, run["precision"]
assert d["precision"] == fresh["precision"], (d["precision"], fresh["precision"])
r = d["rerun"]; n = len(d["chunks"])
assert (r["keep"], r["redo"]) == ((n, 0) if d["precision"] == "f32" else (0, n)), (d["precision"], r)
PY

# --- ranks: 2 in the film.yaml, one process, fresh work folder: the same bytes
mkyaml b 'ranks: 2
'
"$vf" "$tmp/b.yaml" --quiet >"$tmp/b.log" 2>&1; rc=$?
check "one process with ranks: 2 (exit $rc): the 2-rank plan" \
  [ "$rc:$(jq_ "$tmp/b.mkv.vaefarm/plan.json" 'd["hash"] == "'"$hrun"'"')" = "0:True" ]
check "one process with ranks: 2: byte-identical to -np 2" cmp -s "$tmp/a_np2.mkv" "$tmp/b.mkv"

# --- ranks: in the film.yaml wins over the work folder's record
mkyaml c "ranks: 3
work_dir: a.mkv.vaefarm
"
"$vf" plan "$tmp/c.yaml" --json >"$tmp/plan3.json"; rc=$?
check "ranks: 3 in the film.yaml wins over plan.json's 2 (exit $rc)" \
  [ "$(jq_ "$tmp/plan3.json" 'd["chunking"]["ranks"], d["hash"] == "'"$h3"'"')" = "(3, True)" ]

# --- a null-colorizer sweep over -np plans each count anew: it resumes nothing, so it never
# keeps an earlier null run's record
mkyaml n
for r in 2 3; do
  mpi $r "$tmp/n.yaml" --null-colorizer 0 --quiet >>"$tmp/n.log" 2>&1; rc=$?
  check "null run -np $r (exit $rc) plans for $r ranks, the chunks of plan --simulate $r" \
    all '[ "$rc" = 0 ] && [ "$(jq_ "$tmp/n.mkv.vaefarm/null-colorizer/plan.json" "d[\"chunking\"][\"ranks\"]")" = $r ] &&
         [ "$(geom "$tmp/n.mkv.vaefarm/null-colorizer/plan.json")" = "$(geom "$tmp/sim$r.json")" ]'
done

echo "cli_plan_auto: $pass passed, $fail failed"
[ "$fail" = 0 ]
