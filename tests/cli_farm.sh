#!/usr/bin/env bash
# The farm end to end (docs/FARM.md): `vaefarm film.yaml` and `mpirun -np N vaefarm film.yaml`
# on a short cut of the standard test film (100 frames, 3 shots, FLAC audio), with the default
# model (VAEFARM_MODEL: the reference's seeded tiny model, made by the `model` fixture).
#   - -np 1, 2 and 4, and one thread without the pipeline's threads, give byte-identical output (so
#     do three such libx264 runs of the film with its timestamps offset); frame count, every frame's timestamp and the
#     decoded audio equal the input's; the luma is the input's, bit for bit
#   - a rerun resumes everything (no chunk redone) and gives the same bytes; a shot split or
#     merged before chunks renumbers them, and a rerun keeps their segments under the new ids,
#     giving a fresh run's bytes, and leaves no temporary file (`vaefarm plan` says so beforehand,
#     with the run's hashes, touching nothing); encode.pix_fmt written out as the
#     default redoes nothing; a seam file of another segment, or a damaged one, is left out of
#     the seam report with a warning; without hard links (strace makes link(2) fail) the
#     segments are copied
#   - kill -9 of one rank mid-job; the rerun completes, the journal shows no chunk done twice,
#     and the output is byte-identical to an uninterrupted run
#   - SIGTERM: exit 10 within 10 s, nothing at the output path; the rerun resumes, same bytes;
#     SIGUSR2 to mpirun (which passes it on; a SIGTERM it answers with exit 1 and SIGKILLs):
#     mpirun returns 10, and the rerun resumes, same bytes
#   - a chunk with an undecodable frame: retried on both ranks, then the job fails naming the
#     chunk and frame; nothing at the output path; the other chunks stay in the journal
#   - the seam error is reported for every boundary with warm-up
#   - reference pass-through: each shot's first frame (its reference's own picture) passes, 3
#     in the report; reference_passthrough: off passes none and gives other bytes
#   - a model with C.gate_ramp K (the bundled one, without propagate): chunks.warmup under K - 1
#     with chunks that warm up from inside their shot is warned about, K - 1 is not, nor is any
#     warm-up with the pass-through off
#   - film-size propagation (propagate, 5 shares; and with subpixel, which changes only the
#     carried frames): chunks whose warm-up reaches the shot's
#     pass-through give its carried frames as one chunk per shot does; a warm-up under 5 is
#     warned about
#   - a rotated phone film stays rotated, and probe shows it; a full output disk is refused
#     before the merge writes (exit 6), and the rerun with room made only merges; a full work
#     folder stops the job at the chunk it could not write, without retries (exit 6), and the
#     rerun with room made resumes the chunks done; in both, the first chunk written warns that
#     the disk lacks room, and a run with room does not
#   - films whose luma is not a plane of its own, untagged: packed YUV (uyvy422 in .mov, yuyv422
#     in .avi) and big-endian YUV and grey (yuv420p10be, gray16be in .nut) keep their luma bit for
#     bit; RGB (qtrle rgb24; FFV1 bgr0, tagged pc and gbr), a GIF and a palette film (pal8) come
#     out full range ("pc") and tagged with the matrix their luma was made with (BT.601 at 64
#     lines, not "gbr"), their luma BT.601's Y' within a half level (a level through the palette);
#     a reference named with a printf pattern (ref%03d.png) is read as named
# Usage: cli_farm.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -uo pipefail
source "$(dirname "$0")/farm_lib.sh" "$@"

# --- the film: frames [0, 100) of film_grey.mkv (cuts at 50 and 65), with its audio
films="$data/films"
ffmpeg -loglevel error -i "$films/film_grey.mkv" -frames:v 100 -t 4 -map 0 -c:v copy -c:a flac \
  "$tmp/grey.mkv" || { bad "make the test film"; exit 1; }
cp "$films/film_ref_0.png" "$films/film_ref_1.png" "$films/film_ref_2.png" "$tmp/"
mkyaml() { # NAME INPUT EXTRA...
  { printf 'version: 1\ninput: %s\noutput: %s.mkv\ninference_size: [72, 128]\n' "$2" "$1"
    printf 'shots:\n  detect: off\n  list:\n'
    printf '    - { start: 0, end: 50, reference: film_ref_0.png }\n'
    printf '    - { start: 50, end: 65, reference: film_ref_1.png }\n'
    printf '    - { start: 65, end: 100, reference: film_ref_2.png }\n'
    printf 'chunks: { length: 20, warmup: 4 }\n%s' "${3:-}"; } >"$tmp/$1.yaml"
}
journal_chunks() { python3 -c "import json,sys; print(' '.join(str(json.loads(l)['chunk']) for l in open(sys.argv[1])))" "$1"; }
report() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$tmp/$1.mkv.vaefarm/report.json" "$2"; }

# --- one rank, two, four: the same bytes
mkyaml np1 grey.mkv
t0=$(date +%s.%N)
"$vf" "$tmp/np1.yaml" --quiet; rc=$?
t1=$(date +%s.%N)
check "np 1 runs (exit $rc)" [ "$rc" = 0 ]
echo "     np 1: $(python3 -c "print(round($t1-$t0,1))") s"
for n in 2 4; do
  mkyaml np$n grey.mkv
  mpi $n "$tmp/np$n.yaml" >"$tmp/np$n.log" 2>&1; rc=$?
  check "np $n runs (exit $rc)" [ "$rc" = 0 ]
  check "np $n output is byte-identical to np 1" cmp -s "$tmp/np1.mkv" "$tmp/np$n.mkv"
done
check "np 1: no warning of a disk short of room" \
  all '! grep -q "MiB free, but" "$tmp/np1.mkv.vaefarm/vaefarm.log"'
mkyaml t1 grey.mkv
# the output's temporary file of a merge killed before its rename goes (its pid is gone); a
# look-alike stays, and so does one whose pid lives (a merge of the same output running now)
( : ) & dead=$!; wait $dead
head -c 4096 /dev/urandom >"$tmp/.t1.mkv.$dead-0.tmp.mkv"
: >"$tmp/.t1.mkv.notapid-0.tmp.mkv"
: >"$tmp/.t1.mkv.$$-0.tmp.mkv"
"$vf" "$tmp/t1.yaml" --quiet --threads 1 --queue 0; rc=$?
check "one thread, no pipeline threads (exit $rc): the same bytes" \
  all '[ "$rc" = 0 ] && cmp -s "$tmp/np1.mkv" "$tmp/t1.mkv"'
# libx264 with its B-frames and macroblock tree read memory they never wrote near a segment's end:
# until session 34 the first chunk's segment differed in 1 run of 2 or 3, and more with the
# film's timestamps offset. With the heap's bytes made the same (coordinator/cmd_run.c), three runs
# in three ways give one film. (AddressSanitizer's allocator takes no mallopt: there it fills
# every block itself, which its max_malloc_fill_size option extends to the whole block.)
ffmpeg -loglevel error -i "$tmp/grey.mkv" -map 0:v -c copy -output_ts_offset 10 "$tmp/grey10.mkv" \
  || bad "make the offset film"
for v in x1 x2 x3; do mkyaml $v grey10.mkv $'encode: {codec: libx264}\naudio: none\n'; done
(export ASAN_OPTIONS="${ASAN_OPTIONS:-}:max_malloc_fill_size=2147483647:malloc_fill_byte=90"
 "$vf" "$tmp/x1.yaml" --quiet && "$vf" "$tmp/x2.yaml" --quiet --threads 1 --queue 0 &&
   mpi 2 "$tmp/x3.yaml" --quiet --threads 1) || bad "libx264 runs"
check "libx264: one run, one without the pipeline's threads and one on 2 ranks give the same bytes" \
  all 'cmp -s "$tmp/x1.mkv" "$tmp/x2.mkv" && cmp -s "$tmp/x1.mkv" "$tmp/x3.mkv"'
check "a killed merge's temporary output removed, a look-alike and a live one kept" \
  all '[ ! -e "$tmp/.t1.mkv.$dead-0.tmp.mkv" ] && [ -e "$tmp/.t1.mkv.notapid-0.tmp.mkv" ] && [ -e "$tmp/.t1.mkv.$$-0.tmp.mkv" ]'
rm -f "$tmp/.t1.mkv.notapid-0.tmp.mkv" "$tmp/.t1.mkv.$$-0.tmp.mkv"
check "np 4 used every rank" python3 - "$tmp/np4.mkv.vaefarm/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ranks"] == 4 and all(p["chunks"] >= 1 for p in r["per_rank"]), r["per_rank"]
assert r["chunks"] == 6 and r["chunks_run"] == 6, r
# each CPU rank's peak memory (its process's) holds its network's, which is on the order of the
# tiny model's tensors at 72x128 plus the film-size tensors (tens of MiB, not bytes or GiB)
for p in r["per_rank"]:
    assert 1 < p["network_memory_mib"] < 1000 and p["peak_memory_mib"] > p["network_memory_mib"], p
PY
check "np 4: the summary shows each rank's peak memory and its network's" \
  [ "$(grep -c "^  rank [0-3] on .*, peak memory [0-9]* MiB (its network [0-9]*)$" "$tmp/np4.log")" = 4 ]

# --- the output is the input's twin but for chroma
pts() { ffprobe -v error -select_streams "$2" -show_entries packet=pts -of csv=p=0 "$1"; }
check "frame count and every video timestamp equal the input's" \
  cmp -s <(pts "$tmp/grey.mkv" v:0) <(pts "$tmp/np1.mkv" v:0)
check "100 frames" [ "$(pts "$tmp/np1.mkv" v:0 | wc -l)" = 100 ]
amd5() { ffmpeg -loglevel error -i "$1" -map 0:a:0 -f md5 -; }
check "decoded audio equals the input's" [ "$(amd5 "$tmp/grey.mkv")" = "$(amd5 "$tmp/np1.mkv")" ]
ymd5() { ffmpeg -loglevel error -i "$1" -map 0:v:0 -vf extractplanes=y -f md5 -; }
check "luma is the input's, bit for bit" [ "$(ymd5 "$tmp/grey.mkv")" = "$(ymd5 "$tmp/np1.mkv")" ]
check "chroma is not neutral" python3 - "$tmp/np1.mkv" <<'PY'
import subprocess, sys
raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", sys.argv[1], "-frames:v", "1",
                      "-vf", "extractplanes=u", "-f", "rawvideo", "-"], capture_output=True).stdout
assert raw and max(abs(b - 128) for b in raw) > 4
PY
check "report: seam error for each boundary with warm-up" python3 - "$tmp/np1.mkv.vaefarm" <<'PY'
import json, sys
r = json.load(open(sys.argv[1] + "/report.json"))
c = json.load(open(sys.argv[1] + "/plan.json"))["chunks"]
# 3 chunks in shot 0, 1 in shot 1, 2 in shot 2: 3 boundaries inside shots
want = [b["start"] - 1 for a, b in zip(c, c[1:]) if a["shot"] == b["shot"]]
s = r["seams"]
assert len(want) == 3 and [x["frame"] for x in s] == want, (s, want)
assert all(x["warmup"] == 4 and x["error"] > 0 for x in s), s
assert r["seam_error"]["measured"] == 3 and r["frames"] == 100, r["seam_error"]
assert r["model"]["weights"].startswith("random"), r["model"]
# reference pass-through (docs/NODE.md): each shot's reference is its first frame in colour
assert r["reference_passthrough"] is True and r["passthrough_frames_run"] == 3, r
PY
mkyaml nopt grey.mkv 'reference_passthrough: off'
"$vf" "$tmp/nopt.yaml" --quiet; rc=$?
check "reference_passthrough: off (exit $rc): no frame passed through, other bytes" \
  all '[ "$rc" = 0 ] && [ "$(report nopt passthrough_frames_run)" = 0 ] && ! cmp -s "$tmp/np1.mkv" "$tmp/nopt.mkv"'

# --- a model whose C ramps in after a pass-through (the bundled one: C.gate_ramp 4): a warm-up
# under K - 1 = 3 frames (1, 2) in chunks that warm up from inside their shot is warned about
# (docs/PLAN.md), 3 is not, nor is any warm-up with the pass-through off
ffmpeg -loglevel error -i "$films/film_grey.mkv" -frames:v 24 -an -c:v copy "$tmp/g24.mkv" ||
  bad "make the 24-frame film"
# the bundled model without film-size propagation (below), whatever it holds: only the ramp
/usr/bin/python3 "$src/train/set_arch.py" "$src/models/vaefarm-tiny.safetensors" "$tmp/ramp.safetensors" \
  'propagate=none' >/dev/null || bad "make the ramp-only model"
g24run() { # NAME MODEL LENGTH WARMUP EXTRA: run the 24-frame film of two shots
  { printf 'version: 1\ninput: g24.mkv\noutput: %s.mkv\ninference_size: [72, 128]\n' "$1"
    printf 'model: %s\n' "$2"
    printf 'shots:\n  detect: off\n  list:\n'
    printf '    - { start: 0, end: 12, reference: film_ref_0.png }\n'
    printf '    - { start: 12, end: 24, reference: film_ref_1.png }\n'
    printf 'chunks: { length: %s, warmup: %s }\n%s' "$3" "$4" "${5:-}"; } >"$tmp/$1.yaml"
  "$vf" "$tmp/$1.yaml" >"$tmp/$1.log" 2>&1
}
ramp() { g24run "$1" "$tmp/ramp.safetensors" 6 "$2" "${3:-}"; }  # NAME WARMUP EXTRA
ramp ramp1 1; rc=$?
check "warm-up 1 under C.gate_ramp 4 (exit $rc): warned, naming the fix" all '[ "$rc" = 0 ] &&
  grep -qF "chunks.warmup 1 is under the 3 frames after a reference pass-through that the model treats apart (C.gate_ramp - 1 = 3, len(propagate.shares) = 0): 2 chunks warm up from inside their shot (chunk 1 at frame 6, warm-up from 5), and one whose warm-up begins up to 2 frames after a frame that passes through the shot'"'"'s reference gives its first kept frames C'"'"'s whole correction, unlike one pass over the shot (docs/PLAN.md). Set chunks.warmup to 3 or more" "$tmp/ramp1.log"'
ramp ramp2 2; rc=$?
check "warm-up 2 = K - 2 (exit $rc): warned" all '[ "$rc" = 0 ] &&
  grep -qF "chunks.warmup 2 is under the 3 frames after a reference pass-through that the model treats apart (C.gate_ramp - 1 = 3, len(propagate.shares) = 0): 2 chunks warm up from inside their shot (chunk 1 at frame 6, warm-up from 4), and one whose warm-up begins up to 1 frames" "$tmp/ramp2.log"'
ramp ramp3 3; rc=$?
check "warm-up 3 (exit $rc): no ramp warning" all '[ "$rc" = 0 ] && ! grep -q "chunks.warmup" "$tmp/ramp3.log"'
ramp rampoff 1 'reference_passthrough: off'; rc=$?
check "warm-up 1, pass-through off (exit $rc): no ramp warning" \
  all '[ "$rc" = 0 ] && ! grep -q "chunks.warmup" "$tmp/rampoff.log"'

# --- film-size propagation (arch propagate, 5 shares: the bundled model's with it set by
# train/set_arch.py): chunks of 3 frames whose warm-up of 3 reaches back to each shot's
# pass-through frame give that shot's first 6 frames (the pass-through, the 5 that carry) as one
# chunk per shot does, decoded frame for frame: the warm-up post-processes the frames the next
# one carries. (Later chunks warm up from inside the shot: their recurrence, and so their bytes,
# differ from one pass by the seam error, as without propagation.) A warm-up of 2 is warned about.
/usr/bin/python3 "$src/train/set_arch.py" "$src/models/vaefarm-tiny.safetensors" "$tmp/prop.safetensors" \
  'propagate={"radius":6,"patch":5,"shares":[1,0.8,0.6,0.4,0.2],"confidence":12}' >/dev/null ||
  bad "make the propagating model"
prop() { g24run "$1" "$tmp/prop.safetensors" "$2" "$3"; }  # NAME LENGTH WARMUP
first6() { ffmpeg -loglevel error -i "$1" -map 0:v:0 -f framemd5 - | grep -v '^#' | sed -n '1,6p;13,18p'; }
prop prop12 12 0; rc1=$?
prop prop3 3 3; rc2=$?
check "propagate: chunks of 3 warmed up from the pass-through = one chunk per shot (exit $rc1, $rc2)" \
  all '[ "$rc1" = 0 ] && [ "$rc2" = 0 ] && [ "$(report prop3 passthrough_frames_run)" = 2 ] &&
  [ "$(first6 "$tmp/prop3.mkv" | wc -l)" = 12 ] && cmp -s <(first6 "$tmp/prop12.mkv") <(first6 "$tmp/prop3.mkv")'
# with propagate.subpixel: the carried frames (1-5 after the pass-through: only the first shot's
# reference is its own first frame) change, no other frame does (the carry feeds only the
# output), and the chunks of 3 still give one pass's frames
/usr/bin/python3 "$src/train/set_arch.py" "$tmp/prop.safetensors" "$tmp/propsub.safetensors" \
  'propagate={"radius":6,"patch":5,"shares":[1,0.8,0.6,0.4,0.2],"confidence":12,"subpixel":true}' \
  >/dev/null || bad "make the sub-pixel propagating model"
g24run propsub12 "$tmp/propsub.safetensors" 12 0; rc1=$?
g24run propsub3 "$tmp/propsub.safetensors" 3 3; rc2=$?
md5s() { ffmpeg -loglevel error -i "$1" -map 0:v:0 -f framemd5 - | grep -v '^#' | awk -F, '{print $NF}'; }
check "propagate.subpixel: frames 1-5 after the pass-through change, the others not; chunks of 3 = one pass (exit $rc1, $rc2)" \
  all '[ "$rc1" = 0 ] && [ "$rc2" = 0 ] &&
  [ "$(paste -d" " <(md5s "$tmp/prop12.mkv") <(md5s "$tmp/propsub12.mkv") | awk "{ printf \"%s\", (\$1 == \$2) ? \"=\" : \"x\" }")" = "=xxxxx==================" ] &&
  cmp -s <(first6 "$tmp/propsub12.mkv") <(first6 "$tmp/propsub3.mkv")'
prop prop3w2 3 2; rc=$?
check "propagate: warm-up 2 under its 5 frames (exit $rc): warned" all '[ "$rc" = 0 ] &&
  grep -qF "chunks.warmup 2 is under the 5 frames after a reference pass-through that the model treats apart (C.gate_ramp - 1 = 3, len(propagate.shares) = 5)" "$tmp/prop3w2.log" &&
  grep -qF "gives its first kept frames C'"'"'s whole correction and none of the carried colours, unlike" "$tmp/prop3w2.log"'
prop prop6w4 6 4; rc=$?
check "propagate: warm-up 4, past the ramp (exit $rc): warned for the carried colours only" all '[ "$rc" = 0 ] &&
  grep -qF "chunks.warmup 4 is under the 5 frames" "$tmp/prop6w4.log" &&
  grep -qF "gives its first kept frames none of the carried colours, unlike" "$tmp/prop6w4.log"'

# --- rerun: everything resumes
"$vf" "$tmp/np1.yaml" --quiet; rc=$?
check "rerun (exit $rc) resumes all 6 chunks" \
  all '[ "$rc" = 0 ] && [ "$(report np1 chunks_resumed)" = 6 ] && [ "$(report np1 chunks_run)" = 0 ]'
check "rerun: same bytes" cmp -s "$tmp/np1.mkv" "$tmp/np2.mkv"
"$vf" "$tmp/np1.yaml" --json >"$tmp/json.out" 2>/dev/null; rc=$?
check "run --json (exit $rc): one JSON document, report.json's" python3 - "$tmp/json.out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "ok" and d["frames"] == 100 and d["chunks_resumed"] == 6, d
assert all(p["host"] and p["device"] == "cpu" for p in d["per_rank"]), d["per_rank"]
# one rank: the resume check ran on the coordinator's own thread, whose CPU time is counted once
c = d["coordinator"]
assert 0 < c["cpu_s"] <= c["wall_s"] * 1.02 + 0.002 and c["share"] <= 1.02, c
assert d["fps_colorize"] is None, d["fps_colorize"]   # nothing colorized: no speed measured
PY

# --- a shot list edited before the last two chunks renumbers them: a rerun keeps their segments
# under the new ids (docs/FARM.md, setup step 4), whichever way the ids move; the pixel format
# written out as the codec's default (ffv1, 8 bits: yuv444p) redoes nothing
shotyaml() { # NAME CUTS EXTRA: np1's film with shot 1 ([50, 65)) cut at CUTS (e.g. "58")
  { printf 'version: 1\ninput: grey.mkv\noutput: renum.mkv\nwork_dir: %s.work\n' "$1"
    printf 'inference_size: [72, 128]\nshots:\n  detect: off\n  list:\n'
    printf '    - { start: 0, end: 50, reference: film_ref_0.png }\n'
    local a=50 b
    for b in $2 65; do printf '    - { start: %s, end: %s, reference: film_ref_1.png }\n' $a $b; a=$b; done
    printf '    - { start: 65, end: 100, reference: film_ref_2.png }\n'
    printf 'chunks: { length: 20, warmup: 4 }\n%s' "${3:-}"; } >"$tmp/$1.yaml"
}
# chunks run, resumed, renumbered, and whether every boundary with warm-up has its seam (the seam
# files move with their segments)
counts() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s=d['seam_error']; print(d['chunks_run'], d['chunks_resumed'], d['chunks_renumbered'], 'seams' if s['measured'] == s['boundaries'] > 0 else 'seams missing')" "$tmp/$1.work/report.json"; }
cp -r "$tmp/np1.mkv.vaefarm" "$tmp/renum.work"
# as a crash while chunks took new ids may leave it: chunk 6's name a link to chunk 5's segment
ln "$tmp/renum.work/segments/00005.mkv" "$tmp/renum.work/segments/00006.mkv"
shotyaml renum 58
# `vaefarm plan` says beforehand what the run then does, and changes nothing in the work folder
listing() { (cd "$tmp/renum.work" && find . -printf '%p %s %T@ %i\n' | sort && sha256sum journal); }
listing >"$tmp/renum.before"
cp "$tmp/renum.work/report.json" "$tmp/renum.report.before"   # np 1's: the speed plan times with
"$vf" plan "$tmp/renum.yaml" --json --simulate 2 >"$tmp/renum.plan.json" 2>"$tmp/renum.plan.log"; prc=$?
"$vf" plan "$tmp/renum.yaml" >"$tmp/renum.plan.txt" 2>>"$tmp/renum.plan.log"
listing >"$tmp/renum.after"
"$vf" "$tmp/renum.yaml" --quiet 2>"$tmp/renum.log"; rc=$?
cp "$tmp/renum.mkv" "$tmp/renum_split.mkv"
check "plan before the split's run (exit $prc): keep 0-2, 3-4 to do, 5-6 from chunks 4-5; the run's plan hash; the work folder untouched" \
  all '[ "$prc" = 0 ] && cmp -s "$tmp/renum.before" "$tmp/renum.after" && python3 - "$tmp/renum.plan.json" "$tmp/renum.work/plan.json" "$tmp/renum.work/report.json" "$tmp/renum.report.before" <<"PY"
import json, sys
p, run, rep, last = (json.load(open(a)) for a in sys.argv[1:])
# seconds at the last run's measured speed: its ranks' busy time over their frames of work
ms = 1000 * sum(r["busy_s"] for r in last["per_rank"]) / sum(r["frames"] + r["warmup_frames"] for r in last["per_rank"])
sim = p["simulation"]
assert sim["ms_per_frame_from"] == "report.json" and abs(sim["ms_per_frame"] - ms) < 1e-6 * ms, (sim, ms)
assert abs(sim["rerun_makespan_seconds"] - sim["rerun_makespan_frames"] * ms / 1000) < 1e-6, sim
assert abs(sim["makespan_seconds"] - sim["makespan_frames"] * ms / 1000) < 1e-6, sim
got = [(c["rerun"], c.get("from"), c.get("why")) for c in p["chunks"]]
want = [("keep", None, None)] * 3 + [("redo", None, "not journaled")] * 2 + [("renumbered", 4, None), ("renumbered", 5, None)]
assert got == want, got
r = p["rerun"]
assert (r["journal"], r["keep"], r["renumbered"], r["redo"]) == (True, 3, 2, 2), r
assert r["work_frames"] == sum(c["end"] - c["warm_start"] for c in p["chunks"][3:5]), r
assert r["kept_frames_done"] == 100 - (65 - 50) and r["kept_frames"] == 100, r
# on 2 ranks the two chunks left run side by side: the longer one is the makespan
assert p["simulation"]["rerun_makespan_frames"] == max(c["end"] - c["warm_start"] for c in p["chunks"][3:5]), p["simulation"]
assert (rep["chunks_run"], rep["chunks_resumed"], rep["chunks_renumbered"]) == (2, 5, 2), rep
assert p["hash"] == run["hash"] and [c["hash"] for c in p["chunks"]] == [c["hash"] for c in run["chunks"]]
assert p["model"]["sha256"] == run["model"]["sha256"] and p["precision"] == run["precision"]
assert p["inference_size"] == run["inference_size"], (p["inference_size"], run["inference_size"])
PY
  grep -q "a run now keeps 5 of 7 chunks (85 of 100 kept frames; 2 of them an earlier plan.s under other ids) and colorizes 2" "$tmp/renum.plan.txt"'
"$vf" plan "$tmp/renum.yaml" >"$tmp/renum.plan2.txt" 2>&1; prc=$?
check "plan after it (exit $prc): a run now keeps all 7" \
  all '[ "$prc" = 0 ] && grep -q "a run now keeps 7 of 7 chunks (100 of 100 kept frames) and colorizes 0 (0 frames of work)" "$tmp/renum.plan2.txt"'
shotyaml fresh 58
(cd "$tmp" && sed 's/renum.mkv/fresh.mkv/' fresh.yaml >fresh2.yaml && "$vf" fresh2.yaml --quiet); rc2=$?
check "shot 1 split at 58 (exit $rc, $rc2): 2 chunks run, 5 resumed, 2 of them renumbered (run resumed renumbered: $(counts renum)); a fresh run's bytes" \
  all '[ "$rc" = 0 ] && [ "$rc2" = 0 ] && [ "$(counts renum)" = "2 5 2 seams" ] && cmp -s "$tmp/renum_split.mkv" "$tmp/fresh.mkv" &&
  [ -z "$(ls "$tmp/renum.work/segments" | grep -v "^0000[0-6]\.\(mkv\|seam\)$")" ]'
# files that are not files where a segment and plan.json belong: a FIFO and a link to /dev/zero
# (whose checksum never ended, and a SIGTERM did not stop the run) are segments to redo, a FIFO
# plan.json is no record; neither plan nor the run waits on them
cp -r "$tmp/renum.work" "$tmp/odd.work"
rm "$tmp/odd.work/segments/00001.mkv" "$tmp/odd.work/segments/00002.mkv" "$tmp/odd.work/plan.json"
mkfifo "$tmp/odd.work/segments/00001.mkv" "$tmp/odd.work/plan.json"
ln -s /dev/zero "$tmp/odd.work/segments/00002.mkv"
sed 's/^work_dir: .*/work_dir: odd.work/; s/^output: .*/output: odd.mkv/' "$tmp/renum.yaml" >"$tmp/odd.yaml"
timeout 60 "$vf" plan "$tmp/odd.yaml" --json >"$tmp/odd.plan.json" 2>"$tmp/odd.plan.log"; prc=$?
rm "$tmp/odd.work/plan.json"
timeout 120 "$vf" "$tmp/odd.yaml" --quiet 2>"$tmp/odd.log"; rc=$?
check "a FIFO and a link to /dev/zero as segments (exit $prc, $rc): plan says both are to redo, the run redoes them, a fresh run's bytes" \
  all '[ "$prc$rc" = 00 ] && python3 - "$tmp/odd.plan.json" <<"PY" &&
import json, sys
d = json.load(open(sys.argv[1]))
got = [(c["rerun"], c.get("why")) for c in d["chunks"]]
assert got == [("keep", None)] + [("redo", "segment missing or unreadable")] * 2 + [("keep", None)] * 4, got
PY
  [ "$(counts odd)" = "2 5 0 seams" ] && cmp -s "$tmp/odd.mkv" "$tmp/fresh.mkv"'
shotyaml renum ""
"$vf" "$tmp/renum.yaml" --quiet 2>>"$tmp/renum.log"; rc=$?
check "the split undone (exit $rc): chunk 3 run again, chunks 5 and 6 back as 4 and 5 ($(counts renum)); np 1's bytes" \
  all '[ "$rc" = 0 ] && [ "$(counts renum)" = "1 5 2 seams" ] && cmp -s "$tmp/renum.mkv" "$tmp/np1.mkv"'
shotyaml renum "" "encode: { codec: ffv1, pix_fmt: yuv444p }"$'\n'
"$vf" "$tmp/renum.yaml" --quiet 2>>"$tmp/renum.log"; rc=$?
check "pix_fmt: yuv444p written out, ffv1's default (exit $rc): all 6 resumed ($(counts renum)), same bytes" \
  all '[ "$rc" = 0 ] && [ "$(counts renum)" = "0 6 0 seams" ] && cmp -s "$tmp/renum.mkv" "$tmp/np1.mkv"'
# seam files that do not go with their chunk's segment (another chunk's, as a crash while chunks
# took new ids may leave) or are damaged are left out of the seam report, each with a warning
cp "$tmp/renum.work/segments/00000.seam" "$tmp/renum.work/segments/00005.seam"
python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(-3,2); b=f.read(1); f.seek(-3,2); f.write(bytes([b[0]^1]))" \
  "$tmp/renum.work/segments/00001.seam"
# and one whose header promises 8192x8192 frames: refused by its size, nothing allocated for it
python3 -c "import struct,sys; f=open(sys.argv[1],'r+b'); f.seek(72); f.write(struct.pack('<II', 8192, 8192))" \
  "$tmp/renum.work/segments/00002.seam"
"$vf" "$tmp/renum.yaml" 2>"$tmp/seams.log" >/dev/null; rc=$?
check "a seam file of another segment and a damaged one (exit $rc): left out of the report, each warned about" \
  all '[ "$rc" = 0 ] && [ "$(counts renum)" = "0 6 0 seams missing" ] &&
  grep -q "chunk 5: no seam data (seam file .*00005.seam: made with another segment than the chunk" "$tmp/seams.log" &&
  grep -q "chunk 1: no seam data (seam file .*00001.seam: damaged (its CRC does not match))" "$tmp/seams.log" &&
  grep -q "chunk 2: no seam data (seam file .*00002.seam: damaged ([0-9]* bytes, not the 8192x8192 frames its header promises))" "$tmp/seams.log"'
# a file system without hard links (link(2) fails with EPERM, as on exFAT: injected by strace):
# the renumbered segments are copied instead, checked against their checksums
if strace -f -qq -o /dev/null -e trace=link -e inject=link:error=EPERM true 2>/dev/null; then
  cp -r "$tmp/np1.mkv.vaefarm" "$tmp/nolink.work"
  shotyaml nolink 58
  # (LeakSanitizer stops the threads with ptrace, which a traced process cannot: no leak check)
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -o /dev/null -e trace=link -e inject=link:error=EPERM \
    "$vf" "$tmp/nolink.yaml" --verbose >/dev/null 2>"$tmp/nolink.log"; rc=$?
  check "no hard links (exit $rc): the 2 renumbered segments copied ($(counts nolink)), a fresh run's bytes" \
    all '[ "$rc" = 0 ] && [ "$(counts nolink)" = "2 5 2 seams" ] && cmp -s "$tmp/renum.mkv" "$tmp/fresh.mkv" &&
    [ "$(grep -c "copied to .*(this file system has no hard links)" "$tmp/nolink.log")" = 4 ] &&
    [ -z "$(ls "$tmp/nolink.work/segments" | grep -v "^0000[0-6]\.\(mkv\|seam\)$")" ]'
else
  echo "skip no hard links: strace cannot inject link(2) failures here"
fi

# --- another model with no model: in film.yaml (as a new bundled model comes): the run hashes
# the file it resolved ($VAEFARM_MODEL here), so a resume redoes every chunk
cp "$VAEFARM_MODEL" "$tmp/other.safetensors"
python3 - "$tmp/other.safetensors" <<'PY'
import sys
with open(sys.argv[1], "r+b") as fp:   # a mantissa's low bit in the last tensor
    fp.seek(-4, 2)
    b = fp.read(1)
    fp.seek(-4, 2)
    fp.write(bytes([b[0] ^ 1]))
PY
VAEFARM_MODEL="$tmp/other.safetensors" "$vf" plan "$tmp/np4.yaml" --json >"$tmp/other.plan.json"; prc=$?
VAEFARM_MODEL="$tmp/other.safetensors" "$vf" "$tmp/np4.yaml" --quiet; rc=$?
check "another model via \$VAEFARM_MODEL (exit $prc, $rc): all 6 chunks redone, none resumed; plan said so, naming the model's change" \
  all '[ "$prc$rc" = 00 ] && [ "$(report np4 chunks_resumed)" = 0 ] && [ "$(report np4 chunks_run)" = 6 ] &&
  python3 - "$tmp/other.plan.json" "$(sha256sum "$VAEFARM_MODEL" | cut -c1-64)" "$(sha256sum "$tmp/other.safetensors" | cut -c1-64)" <<"PY"
import json, sys
r = json.load(open(sys.argv[1]))["rerun"]
assert (r["keep"], r["redo"]) == (0, 6) and r["changed"] == {"model sha256": sys.argv[2:4]}, r
PY'

# --- kill -9 one rank mid-job, then run again
mkyaml kill grey.mkv
mpi 2 "$tmp/kill.yaml" --quiet >"$tmp/kill.log" 2>&1 &
mpipid=$!
for _ in $(seq 2400); do   # up to 120 s: a loaded machine under ASan is slow to journal
  [ "$(cat "$tmp/kill.mkv.vaefarm/journal" 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05
done
victim=$(pgrep -f "$vf $tmp/kill.yaml" | tail -1)
[ -n "$victim" ] && kill -9 "$victim"
wait $mpipid; rc=$?
before=$(journal_chunks "$tmp/kill.mkv.vaefarm/journal")
check "killed job failed (exit $rc) with chunks journaled ($before)" all '[ "$rc" != 0 ] && [ -n "$before" ]'
check "killed job: nothing at the output path" [ ! -e "$tmp/kill.mkv" ]
mpi 2 "$tmp/kill.yaml" --quiet >>"$tmp/kill.log" 2>&1; rc=$?
after=$(journal_chunks "$tmp/kill.mkv.vaefarm/journal")
check "rerun after kill -9 completes (exit $rc)" [ "$rc" = 0 ]
check "journal: the first run's chunks kept, none done twice ($before | $after)" python3 - "$before" "$after" <<'PY'
import sys
b, a = sys.argv[1].split(), sys.argv[2].split()
assert a[:len(b)] == b and len(set(a)) == len(a) == 6, (b, a)
PY
n_before=$(echo $before | wc -w)
check "report: $n_before chunks resumed" [ "$(report kill chunks_resumed)" = "$n_before" ]
check "output after kill -9 + rerun is byte-identical" cmp -s "$tmp/np1.mkv" "$tmp/kill.mkv"
check "no temporary files left" [ -z "$(ls "$tmp/kill.mkv.vaefarm/segments" | grep -F .tmp)" ]

# --- SIGTERM: out within 10 s, resumable
mkyaml term grey.mkv
"$vf" "$tmp/term.yaml" --quiet >"$tmp/term.log" 2>&1 &
pid=$!
for _ in $(seq 2400); do   # up to 120 s: a loaded machine under ASan is slow to journal
  [ "$(cat "$tmp/term.mkv.vaefarm/journal" 2>/dev/null | wc -l)" -ge 1 ] && break; sleep 0.05
done
"$vf" "$tmp/term.yaml" >"$tmp/lock.log" 2>&1; rc=$?
check "a second run on the same work folder is refused (exit $rc)" \
  all '[ "$rc" = 3 ] && grep -q "in use by another vaefarm run (pid $pid on $(hostname))" "$tmp/lock.log"'
kill -TERM $pid; ts=$(date +%s.%N)
wait $pid; rc=$?
secs=$(python3 -c "print(round($(date +%s.%N)-$ts,2))")
check "SIGTERM: exit 10 (got $rc) in $secs s (< 10)" all '[ "$rc" = 10 ] && python3 -c "assert $secs < 10"'
check "SIGTERM: the message says how to resume" grep -q "run the same command to resume" "$tmp/term.log"
check "SIGTERM: nothing at the output path" [ ! -e "$tmp/term.mkv" ]
"$vf" "$tmp/term.yaml" --quiet; rc=$?
check "resume after SIGTERM (exit $rc), same bytes" all '[ "$rc" = 0 ] && cmp -s "$tmp/np1.mkv" "$tmp/term.mkv"'
mkyaml usr2 grey.mkv
mpirun -np 2 --oversubscribe "$vf" "$tmp/usr2.yaml" --threads 1 >"$tmp/usr2.log" 2>&1 &
pid=$!
for _ in $(seq 2400); do
  [ "$(cat "$tmp/usr2.mkv.vaefarm/journal" 2>/dev/null | wc -l)" -ge 1 ] && break; sleep 0.05
done
kill -USR2 $pid
wait $pid; rc=$?
check "SIGUSR2 to mpirun: every rank stops cleanly, mpirun returns 10 (got $rc), nothing at the output path" \
  all '[ "$rc" = 10 ] && grep -Eq "interrupted( by SIGUSR2)?; .*run the same command to resume" "$tmp/usr2.mkv.vaefarm/vaefarm.log" && [ ! -e "$tmp/usr2.mkv" ] ||
       { cat "$tmp/usr2.log"; false; }'
mpi 2 "$tmp/usr2.yaml" --quiet --threads 1; rc=$?
check "resume after SIGUSR2 (exit $rc), same bytes" all '[ "$rc" = 0 ] && cmp -s "$tmp/np1.mkv" "$tmp/usr2.mkv"'

# --- a chunk that always fails: frame 55 (chunk [50, 65), the shortest, so it runs last)
cp "$tmp/grey.mkv" "$tmp/damaged.mkv"
python3 - "$tmp/damaged.mkv" 55 <<'PY'
import subprocess, sys
path, frame = sys.argv[1], int(sys.argv[2])
out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                      "packet=size,pos", "-of", "csv=p=0", path], capture_output=True, text=True,
                     check=True).stdout.split()
size, pos = map(int, out[frame].split(","))   # FFV1: every frame a keyframe, decode order = frames
b = bytearray(open(path, "rb").read())
b[pos + 4:pos + size] = b"\xff" * (size - 4)  # the payload after the SimpleBlock header
open(path, "wb").write(b)
PY
mkyaml bad damaged.mkv
mpi 2 "$tmp/bad.yaml" >"$tmp/bad.log" 2>&1; rc=$?
check "undecodable frame: exit 5 (media error), got $rc" [ "$rc" = 5 ]
check "undecodable frame: retried" [ "$(grep -c 'retrying' "$tmp/bad.log")" = 2 ]
check "undecodable frame: the message names chunk, frames, attempts and frame" \
  grep -q "chunk 3 (frames 50..64, warm-up from 50, shot 1) failed 3 times (ranks .*frame 55" "$tmp/bad.log"
check "undecodable frame: nothing at the output path" [ ! -e "$tmp/bad.mkv" ]
check "undecodable frame: the other 5 chunks stay in the journal" \
  [ "$(journal_chunks "$tmp/bad.mkv.vaefarm/journal" | wc -w)" = 5 ]
check "undecodable frame: no temporary output left" [ -z "$(ls -a "$tmp" | grep '^\.bad')" ]

# --- the output is the input's twin: a display matrix (a phone's rotation) travels with the video
ffmpeg -loglevel error -i "$films/film_grey.mkv" -frames:v 12 -map 0:v -c:v libx264 -pix_fmt yuv420p \
  "$tmp/plain.mp4" && ffmpeg -loglevel error -i "$tmp/plain.mp4" -c copy -metadata:s:v rotate=90 \
  "$tmp/rot.mp4" || bad "make the rotated film"
printf 'version: 1\ninput: rot.mp4\noutput: rot_out.mp4\ndefault_reference: film_ref_0.png\ninference_size: [48, 88]\nencode: {codec: libx264}\naudio: none\n' >"$tmp/rot.yaml"
"$vf" "$tmp/rot.yaml" --threads 1 >"$tmp/rot.log" 2>&1; rc=$?
check "rotated film (exit $rc): the output keeps its rotation, unwarned" \
  all '[ "$rc" = 0 ] && ffprobe -v error -show_streams "$tmp/rot_out.mp4" | grep -q "^rotation=90" &&
       ! grep -q "display matrix" "$tmp/rot.log"'
# a .mkv output: where this FFmpeg's Matroska muxer drops the matrix (5.1 does), plan and run say
# so before any work, naming the way out; where it keeps it, they say nothing
sed 's|^output: rot_out.mp4|output: rot_out.mkv|' "$tmp/rot.yaml" >"$tmp/rotk.yaml"
"$vf" "$tmp/rotk.yaml" --threads 1 >"$tmp/rotk.log" 2>&1; rc=$?
"$vf" plan "$tmp/rotk.yaml" >"$tmp/rotk.plan" 2>&1
if "$vf" probe "$tmp/rot_out.mkv" | grep -q "^  display     rotation 90"; then
  check "rotated film to .mkv (exit $rc): the muxer kept the matrix, and nothing warned" \
    all '[ "$rc" = 0 ] && ! grep -q "Matroska muxer does not write" "$tmp/rotk.log" "$tmp/rotk.plan"'
else
  check "rotated film to .mkv (exit $rc): the matrix is lost, and plan and run said so first, with the way out" \
    all 'w="rot_out.mkv: the source .*rot.mp4 is shown turned by 90 degrees (its display matrix), which this FFmpeg.s Matroska muxer does not write: .* write a .mov output (encode.codec prores_ks or dnxhd) or an .mp4 one"
         [ "$rc" = 0 ] && grep -q "$w" "$tmp/rotk.log" && grep -q "$w" "$tmp/rotk.plan"'
fi
check "probe shows the rotation of the source and of the output, and none on the plain film" \
  all '"$vf" probe "$tmp/rot.mp4" | grep -q "^  display     rotation 90 (display matrix" &&
       "$vf" probe "$tmp/rot_out.mp4" --json | grep -q "\"display_rotation\": 90.0" &&
       "$vf" probe "$tmp/rot_out.mp4" --json | grep -q "\"display_mirrored\": false" &&
       "$vf" probe "$tmp/plain.mp4" --json | grep -q "\"display_rotation\": null" &&
       "$vf" probe "$tmp/plain.mp4" --json | grep -q "\"display_mirrored\": null" &&
       ! "$vf" probe "$tmp/plain.mp4" | grep -q "^  display"'

# --- a full disk: the merge refuses before writing a byte when the output's file system has less
# room than the colorized video, and the rerun, with room made, only merges. A 4 KiB tmpfs in a
# private mount namespace stands for the full disk.
mkdir -p "$tmp/small"
printf 'version: 1\ninput: rot.mp4\noutput: small/space.mp4\nwork_dir: space.vaefarm\ndefault_reference: film_ref_0.png\ninference_size: [48, 88]\nencode: {codec: libx264}\naudio: none\n' >"$tmp/space.yaml"
ns=(unshare --mount --propagation private); [ "$(id -u)" = 0 ] || ns+=(--map-root-user)
if "${ns[@]}" mount -t tmpfs -o size=4k tmpfs "$tmp/small" 2>/dev/null; then
  VF="$vf" T="$tmp" "${ns[@]}" sh -c '
    mount -t tmpfs -o size=4k tmpfs "$T/small" || exit 1
    "$VF" "$T/space.yaml" --quiet --threads 1 2>"$T/space.err"; echo $? >"$T/space.rc1"
    ls -A "$T/small" >"$T/space.ls"
    mount -o remount,size=16m "$T/small" || exit 1
    "$VF" "$T/space.yaml" --threads 1 >"$T/space.log2" 2>&1; echo $? >"$T/space.rc2"
    cp "$T/small/space.mp4" "$T/space.mp4"'
  check "full disk (exit $(cat "$tmp/space.rc1")): refused before the merge writes, with what to do" \
    all '[ "$(cat "$tmp/space.rc1")" = 6 ] && [ ! -s "$tmp/space.ls" ] &&
         grep -q "space.mp4 needs at least .* MiB (its video alone) but .*small has 0.0 MiB free: make room there and run the same command again (the colorized segments are kept: it only merges)" "$tmp/space.err"'
  check "full disk: the first chunk written warned that the output's disk lacks room for the film" \
    grep -q "the output.s disk (.*/small) has 0.0 MiB free, but at chunk 0.s size (.* KiB a frame) the merged film needs about .* MiB: make room before the merge" "$tmp/space.vaefarm/vaefarm.log"
  check "full disk, room made: the rerun resumes every chunk and merges the whole film" \
    all '[ "$(cat "$tmp/space.rc2")" = 0 ] && grep -q "(1 resumed)" "$tmp/space.log2" &&
         [ "$(ffprobe -v error -count_frames -show_entries stream=nb_read_frames -of default=nk=1:nw=1 "$tmp/space.mp4")" = 12 ]'
  # a full work folder (3 MiB: one to three of the six segments fit): the chunk that cannot be
  # written is not retried, since every rank writes there and a retry would colorize it again
  # only to fail the same way; exit 6 says what to do, the chunks done stay in the journal, and
  # the rerun with room made resumes them and gives the uninterrupted run's bytes
  mkdir -p "$tmp/smallw"
  mkyaml wfull grey.mkv $'work_dir: smallw/wfull.vaefarm\n'
  sed -i 's|^output: .*|output: smallw/wfull.mkv|' "$tmp/wfull.yaml"
  VF="$vf" T="$tmp" "${ns[@]}" sh -c '
    mount -t tmpfs -o size=3m tmpfs "$T/smallw" || exit 1
    "$VF" "$T/wfull.yaml" --quiet --threads 1 2>"$T/wfull.err"; echo $? >"$T/wfull.rc1"
    cp "$T/smallw/wfull.vaefarm/vaefarm.log" "$T/wfull.log1"
    wc -l <"$T/smallw/wfull.vaefarm/journal" >"$T/wfull.done"
    ls "$T/smallw" | grep -c "^wfull.mkv" >"$T/wfull.out1"
    mount -o remount,size=32m "$T/smallw" || exit 1
    "$VF" "$T/wfull.yaml" --threads 1 >"$T/wfull.log2" 2>&1; echo $? >"$T/wfull.rc2"
    cp "$T/smallw/wfull.mkv" "$T/wfull.mkv"'
  done1=$(cat "$tmp/wfull.done")
  check "full work folder (exit $(cat "$tmp/wfull.rc1")): the first chunk written warned, then it stopped at the first it could not write, not retried, with what to do; $done1 chunks done" \
    all '[ "$(cat "$tmp/wfull.rc1")" = 6 ] && [ "$done1" -ge 1 ] && [ "$done1" -lt 6 ] &&
         grep -q "the disk of the work folder .*smallw/wfull.vaefarm has .* MiB free, but at chunk .* KiB a frame) the .* frames left need about .* MiB of segments and seam files there, and the merged film about .* MiB more on the same disk: make room" "$tmp/wfull.log1" &&
         ! grep -q retrying "$tmp/wfull.log1" && [ "$(cat "$tmp/wfull.out1")" = 0 ] &&
         grep -q "No space left on device; not retried, every rank writes there: make room on the disk of the work folder .*smallw/wfull.vaefarm" "$tmp/wfull.err" &&
         grep -Eq "the $done1 chunks? that finished (is|are) kept in the journal" "$tmp/wfull.err"'
  check "full work folder, room made: the rerun resumes the chunks done and gives np 1's bytes" \
    all '[ "$(cat "$tmp/wfull.rc2")" = 0 ] && grep -q "($done1 resumed)" "$tmp/wfull.log2" &&
         cmp -s "$tmp/np1.mkv" "$tmp/wfull.mkv"'
else
  echo "skip full disk: no private mount namespace here (unshare --mount refused), so no small file system"
fi

# --- luma that is not a plane of its own, no range tag: before session 34 every chunk failed
# ("no luma plane of its own (limited range)") after setup had accepted the film
odd=(uyvy.mov "-pix_fmt uyvy422 -c:v rawvideo -tag:v 2vuy" yuyv.avi "-pix_fmt yuyv422 -c:v rawvideo"
     g16be.nut "-pix_fmt gray16be -c:v rawvideo" y10be.nut "-pix_fmt yuv420p10be -c:v rawvideo"
     rgb.mov "-pix_fmt rgb24 -c:v qtrle" anim.gif "" pal.nut "-pix_fmt pal8 -c:v rawvideo"
     bgr.mkv "-pix_fmt bgr0 -c:v ffv1")
for ((i = 0; i < ${#odd[@]}; i += 2)); do
  f=${odd[i]}
  # shellcheck disable=SC2086
  ffmpeg -loglevel error -f lavfi -i testsrc2=size=96x64:rate=24 -frames:v 6 ${odd[i+1]} "$tmp/$f" \
    && printf 'version: 1\ninput: %s\noutput: %s.mkv\ninference_size: [64, 96]\ndefault_reference: film_ref_0.png\naudio: none\nshots: {detect: off}\n' \
      "$f" "odd_${f%.*}" >"$tmp/odd_${f%.*}.yaml" && "$vf" "$tmp/odd_${f%.*}.yaml" --quiet --threads 1 \
    || bad "odd luma: $f did not run"
done
check "packed YUV, big-endian YUV and grey keep their luma bit for bit; RGB, a GIF and a palette come out full range with their luma's matrix, Y' within a half level (a level)" \
  /usr/bin/python3 - "$tmp" <<'PY'
import subprocess, sys
import numpy as np
t, W, H = sys.argv[1], 96, 64
def raw(path, *fmt):
    return subprocess.run(["ffmpeg", "-loglevel", "error", "-i", path, *fmt, "-f", "rawvideo", "-"],
                          capture_output=True, check=True).stdout
def luma(name, dt=np.uint8):   # the output's Y plane, frame by frame (yuv444p or yuv444p16le)
    return np.frombuffer(raw("%s/odd_%s.mkv" % (t, name)), dt).reshape(-1, 3, H, W)[:, 0].astype(int)
def rng(name):   # the output's range and matrix tags
    return subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=color_range,color_space", "-of",
                           "csv=p=0", "%s/odd_%s.mkv" % (t, name)], capture_output=True, text=True).stdout.strip()
u = np.frombuffer(raw(t + "/uyvy.mov"), np.uint8).reshape(-1, H, 2 * W)[:, :, 1::2].astype(int)
y = np.frombuffer(raw(t + "/yuyv.avi"), np.uint8).reshape(-1, H, 2 * W)[:, :, 0::2].astype(int)
g = np.frombuffer(raw(t + "/g16be.nut"), ">u2").reshape(-1, H, W).astype(int)
b = np.frombuffer(raw(t + "/y10be.nut"), ">u2").reshape(-1, W * H * 3 // 2)[:, :W * H].reshape(-1, H, W).astype(int)
assert u.shape[0] == 6 and np.array_equal(u, luma("uyvy")), "uyvy422"
assert np.array_equal(y, luma("yuyv")), "yuyv422"
assert np.array_equal(g, luma("g16be", "<u2")), "gray16be"
assert b.min() >= 64 and b.max() <= 940 and np.array_equal(b, luma("y10be", "<u2")), "yuv420p10be"
assert [rng(n) for n in ("uyvy", "yuyv", "g16be", "y10be")] == ["unknown,unknown"] * 4
for name, src, tol in (("rgb", "rgb.mov", 0.51), ("anim", "anim.gif", 0.51), ("pal", "pal.nut", 1.0),
                       ("bgr", "bgr.mkv", 0.51)):
    c = np.frombuffer(raw("%s/%s" % (t, src), "-pix_fmt", "rgb24"), np.uint8).reshape(-1, H, W, 3).astype(float)
    want = 0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2]
    d = np.abs(want - luma(name)).max()
    assert d <= tol and rng(name) == "pc,smpte170m", (name, d, rng(name))
PY
# FFmpeg's image demuxer takes ref%03d.png for a numbered sequence unless told not to
cp "$tmp/film_ref_0.png" "$tmp/ref%03d.png"
sed -e 's|^output: .*|output: odd_pct.mkv|' -e 's|^default_reference: .*|default_reference: "ref%03d.png"|' \
  "$tmp/odd_uyvy.yaml" >"$tmp/odd_pct.yaml"
check "a reference named ref%03d.png is read as named (the same film as with its copy's plain name)" \
  all '"$vf" "$tmp/odd_pct.yaml" --quiet --threads 1 && cmp -s "$tmp/odd_uyvy.mkv" "$tmp/odd_pct.mkv"'

echo "cli_farm: $pass passed, $fail failed"
[ "$fail" = 0 ]
