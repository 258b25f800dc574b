#!/usr/bin/env bash
# The coordinator at scale and lost ranks (docs/FARM.md "The null colorizer", "Lost ranks"):
#   - --null-colorizer on 16 oversubscribed ranks: every chunk assigned exactly once, every rank
#     used, nothing at the output path and nothing of a real run's (journal, segments) written,
#     report.json marked null with the coordinator's figures; a real run afterwards resumes
#     nothing from it, and a null run after that leaves the real run's journal and output alone
#   - mpirun --enable-recovery, kill -9 of a rank mid-chunk: the rank is lost after
#     --rank-timeout, its chunk is reassigned (assigned twice, done once), the job completes;
#     in real mode the output is byte-identical to a one-rank run
#   - SIGSTOP of a rank mid-chunk (a hung rank): lost, reassigned, the job completes, and the
#     stopped rank is ended at the end so that MPI_Finalize does not wait for it (with and
#     without --enable-recovery; without, the launcher ends the job: mpirun exits 1 after the
#     report)
#   - SIGSTOP of an idle rank (right after its READY; the tail of every film): lost all the same
#     (an idle rank PINGs rank 0), ended at the end, the job ends in seconds, not never
#   - SIGTERM to the other ranks while a stopped rank is lost, without --enable-recovery: they
#     stop and the job exits 10 (resumable: what Slurm's templates requeue), not 137
#   - rank 0 killed under --enable-recovery: every other rank stops within --rank-timeout
# Usage: cli_farm_scale.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -uo pipefail
source "$(dirname "$0")/farm_lib.sh" "$@"
since() { python3 -c "import sys; print(round($(date +%s.%N) - float(sys.argv[1]), 1))" "$1"; }

films="$data/films"
cp "$films/film_grey.mkv" "$tmp/grey.mkv"        # 300 frames; the null colorizer never decodes it
ffmpeg -loglevel error -i "$films/film_grey.mkv" -frames:v 100 -t 4 -map 0 -c:v copy -c:a flac \
  "$tmp/short.mkv" || { bad "make the test film"; exit 1; }
cp "$films/film_ref_0.png" "$films/film_ref_1.png" "$films/film_ref_2.png" "$tmp/"
mkyaml() { # NAME INPUT LENGTH WARMUP
  { printf 'version: 1\ninput: %s\noutput: %s.mkv\ninference_size: [72, 128]\n' "$2" "$1"
    printf 'shots: { detect: off }\ndefault_reference: film_ref_0.png\n'
    printf 'chunks: { length: %s, warmup: %s }\n' "$3" "$4"; } >"$tmp/$1.yaml"
}
# the pid of rank R of the job running NAME.yaml
rank_pid() {
  local p
  for p in $(pgrep -f "$vf run $tmp/$1.yaml"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "PMIX_RANK=$2" && { echo "$p"; return; }
  done
}
# wait until the log of NAME says a chunk went to rank R; then its pid
wait_assigned() { # NAME LOG R
  for _ in $(seq 600); do
    grep -q -- "-> rank $3, attempt" "$2" 2>/dev/null && { rank_pid "$1" "$3"; return; }
    sleep 0.05
  done
}
# every chunk of LOG assigned COUNT times in total, and each chunk done exactly once
log_check() { # LOG CHUNKS ASSIGNMENTS
  python3 - "$@" <<'PY'
import re, sys, collections
log, chunks, assigns = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3])
a = collections.Counter(int(m) for m in re.findall(r"\] chunk (\d+) \(frames [0-9.]+\) -> rank", log))
d = collections.Counter(int(m) for m in re.findall(r"\] chunk (\d+) done on rank", log))
assert sorted(a) == list(range(chunks)) and sum(a.values()) == assigns, (len(a), sum(a.values()))
assert sorted(d) == list(range(chunks)) and set(d.values()) == {1}, d
PY
}

# --- null colorizer, 16 ranks: 150 chunks of 3 frames (2 kept, 1 warm-up), 5 ms a frame
mkyaml null grey.mkv 2 1
w="$tmp/null.mkv.vaefarm"
t0=$(date +%s.%N)
mpirun -np 16 "$vf" run "$tmp/null.yaml" --null-colorizer 5 >"$tmp/null.out" 2>&1; rc=$?
echo "     null, 16 ranks: $(since "$t0") s"
check "null colorizer, 16 ranks (exit $rc)" [ "$rc" = 0 ]
check "null: nothing at the output path" [ ! -e "$tmp/null.mkv" ]
check "null: no journal, no segments of a real run" \
  all '[ "$(ls "$w")" = null-colorizer ] && [ ! -e "$w/null-colorizer/journal" ] && [ -z "$(ls "$w/null-colorizer/segments")" ]'
check "null: every chunk assigned exactly once, done once" log_check "$w/null-colorizer/vaefarm.log" 150 150
check "null: the summary says so" grep -q "NULL COLORIZER (5 ms per frame)" "$tmp/null.out"
check "null: report.json fields" python3 - "$w/null-colorizer/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["coordinator"]
assert r["mode"] == "null-colorizer" and r["null_colorizer"]["ms_per_frame"] == 5, r["mode"]
assert r["ranks"] == 16 and r["chunks"] == 150 and r["chunks_run"] == 150, r
assert r["chunks_resumed"] == 0 and r["warmup_frames_run"] == 149, r
# what a null run does not have or measure is null, never a placeholder figure
m, se = r["model"], r["seam_error"]
assert m["path"] is None and m["sha256"] is None and r["precision"] is None, (m, r["precision"])
assert se["measured"] == 0 and se["mean"] is None and se["max"] is None, se
assert c["assignments"] == 150 and c["chunks_reassigned"] == 0 and c["ranks_lost"] == [], c
assert c["assignments_per_s"] > 0 and 0 < c["share"] <= 1 and c["cpu_s"] > 0, c
assert 0 < c["wall_s"] <= r["wall_s"] and r["colorize_s"] > 0, (c, r["wall_s"])
p = r["per_rank"]
assert len(p) == 16 and sum(x["chunks"] for x in p) == 150, p
assert all(x["chunks"] >= 1 and x["device"] == "null" and not x["lost"] for x in p), p
# no network: its memory is null, the process's own peak is measured
assert all(x["network_memory_mib"] is None and x["peak_memory_mib"] > 0 for x in p), p
assert all(0 < x["busy_share"] <= 1.05 for x in p), [x["busy_share"] for x in p]
# a frame of work is 5 ms: each rank's busy time is 5 ms per frame it ran (within scheduling)
assert all(x["busy_s"] >= 0.005 * (x["frames"] + x["warmup_frames"]) * 0.95 for x in p), p
PY
echo "     $(grep -o "coordinator: .*" "$tmp/null.out")"

# a real run on the same film resumes nothing from the null run; a null run after it leaves the
# real run's journal and output alone
mkyaml mix short.mkv 20 4
mpirun -np 2 "$vf" run "$tmp/mix.yaml" --null-colorizer 0 --quiet; rc=$?
"$vf" run "$tmp/mix.yaml" --quiet; rc2=$?
check "real run after a null run (exit $rc, $rc2) colorizes every chunk" \
  all '[ "$rc" = 0 ] && [ "$rc2" = 0 ] && python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r[\"mode\"]==\"colorize\" and r[\"chunks_run\"]==5 and r[\"chunks_resumed\"]==0, r" "$tmp/mix.mkv.vaefarm/report.json"'
check "real run: the segments under their chunks' names only, each journaled" python3 - "$tmp/mix.mkv.vaefarm" <<'PY'
import json, os, sys
w = sys.argv[1]
j = sorted(json.loads(l)["segment"] for l in open(w + "/journal"))
assert sorted("segments/" + n for n in os.listdir(w + "/segments") if n.endswith(".mkv")) == j, j
assert sorted(os.listdir(w + "/segments")) == sorted(["%05d.%s" % (i, e) for i in range(5) for e in ("mkv", "seam")]), os.listdir(w + "/segments")
PY
sum1=$(cat "$tmp/mix.mkv.vaefarm/journal" "$tmp/mix.mkv" | md5sum)
rm -f "$tmp/mix.mkv.vaefarm/null-colorizer/report.json"
mpirun -np 2 "$vf" run "$tmp/mix.yaml" --null-colorizer 0 --quiet; rc=$?
check "null run after a real run (exit $rc): journal and output untouched" \
  all '[ "$rc" = 0 ] && [ -s "$tmp/mix.mkv.vaefarm/null-colorizer/report.json" ] && [ "$sum1" = "$(cat "$tmp/mix.mkv.vaefarm/journal" "$tmp/mix.mkv" | md5sum)" ]'


# --- kill -9 of rank 3 mid-chunk, mpirun --enable-recovery: 30 chunks of 12 frames, 40 ms each
mkyaml kill grey.mkv 10 2
t0=$(date +%s.%N)
timeout -s KILL 120 mpirun --enable-recovery -np 6 "$vf" run "$tmp/kill.yaml" --null-colorizer 40 \
  --rank-timeout 3 \
  >"$tmp/kill.out" 2>&1 &
mpipid=$!
victim=$(wait_assigned kill "$tmp/kill.mkv.vaefarm/null-colorizer/vaefarm.log" 3)
[ -n "$victim" ] && kill -9 "$victim"
wait $mpipid; rc=$?
echo "     kill -9, 6 ranks: $(since "$t0") s"
check "kill -9 of rank 3 (pid ${victim:-none}): the job completes (exit $rc)" all '[ -n "$victim" ] && [ "$rc" = 0 ]'
check "kill -9: rank 3 lost, its chunk reassigned" python3 - "$tmp/kill.mkv.vaefarm/null-colorizer/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["coordinator"]
lost = c["ranks_lost"]
assert [x["rank"] for x in lost] == [3] and lost[0]["chunk"] >= 0, lost
assert 3 <= lost[0]["silent_s"] < 6, lost
assert c["chunks_reassigned"] == 1 and c["assignments"] == 31 and r["chunks_run"] == 30, c
assert r["per_rank"][3]["lost"] and sum(p["chunks"] for p in r["per_rank"]) == 30, r["per_rank"]
PY
check "kill -9: the lost rank's chunk assigned twice, every chunk done once" \
  log_check "$tmp/kill.mkv.vaefarm/null-colorizer/vaefarm.log" 30 31
check "kill -9: the log says rank 3 is lost" grep -q "rank 3 (.*) is lost: nothing from it" "$tmp/kill.out"

# --- SIGSTOP of rank 2 mid-chunk (a hung rank), with and without --enable-recovery
for mode in recovery plain; do
  mkyaml stop_$mode grey.mkv 10 2
  opt=; [ $mode = recovery ] && opt=--enable-recovery
  t0=$(date +%s.%N)
  timeout -s KILL 120 mpirun $opt -np 6 "$vf" run "$tmp/stop_$mode.yaml" --null-colorizer 40 \
    --rank-timeout 3 >"$tmp/stop_$mode.out" 2>&1 &
  mpipid=$!
  victim=$(wait_assigned stop_$mode "$tmp/stop_$mode.mkv.vaefarm/null-colorizer/vaefarm.log" 2)
  [ -n "$victim" ] && kill -STOP "$victim"
  wait $mpipid; rc=$?
  secs=$(since "$t0")
  echo "     SIGSTOP ($mode), 6 ranks: $secs s"
  # without --enable-recovery the launcher ends the job, the stopped rank with it, after the
  # report: rank 0 leaves with exit code 0 without MPI_Finalize, which mpirun reports as 1
  want='[ "$rc" = 0 ]'; [ $mode = plain ] && want='[ "$rc" = 1 ]'
  check "SIGSTOP of rank 2 ($mode, pid ${victim:-none}): mpirun ends in $secs s (exit $rc)" \
    all "[ -n \"\$victim\" ] && python3 -c 'assert $secs < 60' && $want"
  check "SIGSTOP ($mode): rank 2 lost, chunk reassigned, report complete" \
    python3 - "$tmp/stop_$mode.mkv.vaefarm/null-colorizer/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["coordinator"]
assert [x["rank"] for x in c["ranks_lost"]] == [2] and c["chunks_reassigned"] == 1, c
assert r["chunks_run"] == 30 and c["assignments"] == 31, r
PY
  if [ $mode = recovery ]; then
    check "SIGSTOP ($mode): the stopped rank was ended at the end" \
      grep -q "lost rank 2 (pid $victim) was still there: ended it" "$tmp/stop_$mode.out"
  else
    check "SIGSTOP ($mode): the launcher ended the job, the stopped rank with it" \
      all "grep -q 'lost rank 2 (pid $victim) is still there' '$tmp/stop_$mode.out' && grep -q 'the launcher ends the job, every rank, with exit code 0' '$tmp/stop_$mode.out'"
  fi
  check "SIGSTOP ($mode): no rank left behind" [ -z "$(pgrep -f "$vf run $tmp/stop_$mode.yaml")" ]
done

# --- SIGSTOP of a rank that is idle (2 chunks of 4.5 s for 4 ranks: once both are handed out, a
# rank of 1-3 that got none), under --enable-recovery: lost after --rank-timeout of silence
# although it runs nothing (an idle rank PINGs rank 0), ended at the end; the job ends on its own
# (it used to wait in MPI_Finalize for as long as the stopped rank lived, here until the 60 s
# kill: exit 137), or for the 30 s that rank 0 waits for BYEs (about 35 s after the stop). Its
# time is counted from the stop and bounded below that, not tightly: 4 ranks on 2 cores beside
# ctest's other tests took 15 s from the start where alone they take 5 s
mkyaml idle grey.mkv 150 2
t0=$(date +%s.%N)
timeout -s KILL 60 mpirun --enable-recovery -np 4 "$vf" run "$tmp/idle.yaml" --null-colorizer 30 \
  --rank-timeout 2 >"$tmp/idle.out" 2>&1 &
mpipid=$!
ilog="$tmp/idle.mkv.vaefarm/null-colorizer/vaefarm.log"
for _ in $(seq 600); do
  [ "$(grep -c -- "-> rank" "$ilog" 2>/dev/null)" = 2 ] && break
  sleep 0.02
done
r=; for x in 3 2 1; do grep -q -- "-> rank $x," "$ilog" || { r=$x; break; }; done
victim=$([ -n "$r" ] && rank_pid idle "$r")
[ -n "$victim" ] && kill -STOP "$victim"; ts=$(date +%s.%N)
wait $mpipid; rc=$?
secs=$(since "$t0"); after=$(since "$ts")
echo "     SIGSTOP of an idle rank, 4 ranks: $secs s, $after s after the stop"
check "SIGSTOP of idle rank ${r:-?} (pid ${victim:-none}): mpirun ends $after s after it (exit $rc)" \
  all "[ -n \"\$victim\" ] && [ \"\$rc\" = 0 ] && python3 -c 'assert $after < 25'"
check "SIGSTOP idle: rank ${r:-?} lost while idle, nothing reassigned" \
  python3 - "$tmp/idle.mkv.vaefarm/null-colorizer/report.json" "${r:-0}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["coordinator"]
assert [(x["rank"], x["chunk"]) for x in c["ranks_lost"]] == [(int(sys.argv[2]), -1)], c["ranks_lost"]
assert c["chunks_reassigned"] == 0 and r["chunks_run"] == 2, c
PY
check "SIGSTOP idle: the log says why, and the stopped rank was ended" \
  all "grep -q 'rank ${r:-?} (.*) is lost: nothing from it for .* while idle' '$tmp/idle.out' && grep -q 'lost rank ${r:-?} (pid $victim) was still there: ended it' '$tmp/idle.out'"
check "SIGSTOP idle: no rank left behind" [ -z "$(pgrep -f "$vf run $tmp/idle.yaml")" ]

# --- SIGSTOP of rank 2 mid-chunk, lost; then SIGTERM to ranks 0, 1 and 3 (what scancel
# --signal=TERM does), without --enable-recovery: the ranks stop, and the job exits 10, the
# interrupt's code (slurm/*.sbatch requeue on it), not 137 (the stopped rank is not killed before
# the others have stopped: that kill made mpirun end the job as crashed). Bounds in this file that
# time a job guard against a hang until the timeout's kill, so they sit well short of it and far
# above a quiet machine's figure: ctest runs other tests beside this one on 2 cores
mkyaml term grey.mkv 10 2
t0=$(date +%s.%N)
timeout -s KILL 60 mpirun -np 4 "$vf" run "$tmp/term.yaml" --null-colorizer 100 --rank-timeout 2 \
  >"$tmp/term.out" 2>&1 &
mpipid=$!
victim=$(wait_assigned term "$tmp/term.mkv.vaefarm/null-colorizer/vaefarm.log" 2)
[ -n "$victim" ] && kill -STOP "$victim"
for _ in $(seq 300); do
  grep -q "rank 2 (.*) is lost" "$tmp/term.mkv.vaefarm/null-colorizer/vaefarm.log" && break
  sleep 0.02
done
others="$(rank_pid term 0) $(rank_pid term 1) $(rank_pid term 3)"
kill -TERM $others
wait $mpipid; rc=$?
secs=$(since "$t0")
echo "     SIGTERM while rank 2 is lost (plain), 4 ranks: $secs s"
check "SIGTERM while stopped rank 2 (pid ${victim:-none}) is lost: exit $rc (10) in $secs s" \
  all "[ -n \"\$victim\" ] && [ \"\$rc\" = 10 ] && python3 -c 'assert $secs < 45'"
check "SIGTERM while lost: the log says so" \
  all "grep -q 'rank 2 (.*) is lost' '$tmp/term.out' && grep -q 'chunks were done (null colorizer: nothing is journaled)' '$tmp/term.out' && grep -q 'the launcher ends the job, every rank, with exit code 10' '$tmp/term.out'"
check "SIGTERM while lost: no rank left behind" [ -z "$(pgrep -f "$vf run $tmp/term.yaml")" ]

# --- rank 0 killed under --enable-recovery: the others notice and stop (before the 30 s guard)
mkyaml coord grey.mkv 10 2
mpirun --enable-recovery -np 4 "$vf" run "$tmp/coord.yaml" --null-colorizer 40 --rank-timeout 2 \
  >"$tmp/coord.out" 2>&1 &
mpipid=$!
victim=$(wait_assigned coord "$tmp/coord.mkv.vaefarm/null-colorizer/vaefarm.log" 1)
victim=$(rank_pid coord 0)
[ -n "$victim" ] && kill -9 "$victim"; t0=$(date +%s.%N)
( sleep 30; kill -9 $mpipid 2>/dev/null ) & guard=$!
wait $mpipid; rc=$?
secs=$(since "$t0")
kill $guard 2>/dev/null
check "rank 0 killed: the job ends in $secs s (< 25)" \
  all "[ -n \"\$victim\" ] && python3 -c 'assert $secs < 25'"
check "rank 0 killed: the ranks say rank 0 is gone" \
  [ "$(grep -c "rank 0 (the coordinator) has not answered" "$tmp/coord.out")" = 3 ]

# --- real mode: kill -9 of rank 2 mid-chunk under --enable-recovery, same bytes as one rank
# (mix.mkv above: the same film and chunks, colorized by one rank)
mkyaml real short.mkv 20 4
t0=$(date +%s.%N)
timeout -s KILL 120 mpirun --enable-recovery -np 3 "$vf" run "$tmp/real.yaml" --threads 1 \
  --rank-timeout 3 \
  >"$tmp/real.out" 2>&1 &
mpipid=$!
victim=$(wait_assigned real "$tmp/real.mkv.vaefarm/vaefarm.log" 2)
[ -n "$victim" ] && kill -9 "$victim"
wait $mpipid; rc=$?
echo "     real, kill -9 of rank 2: $(since "$t0") s"
check "real, kill -9 of rank 2 (pid ${victim:-none}) mid-chunk: the job completes (exit $rc)" \
  all '[ -n "$victim" ] && [ "$rc" = 0 ]'
check "real, kill -9: output byte-identical to one rank" cmp -s "$tmp/mix.mkv" "$tmp/real.mkv"
check "real, kill -9: rank 2 lost, its chunk reassigned; journal has every chunk once" \
  python3 - "$tmp/real.mkv.vaefarm" <<'PY'
import json, sys
r = json.load(open(sys.argv[1] + "/report.json"))
c = r["coordinator"]
assert [x["rank"] for x in c["ranks_lost"]] == [2] and c["chunks_reassigned"] == 1, c
j = [json.loads(l)["chunk"] for l in open(sys.argv[1] + "/journal")]
assert sorted(j) == list(range(5)), j
PY

echo "cli_farm_scale: $pass passed, $fail failed"
[ "$fail" = 0 ]
