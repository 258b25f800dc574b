#!/usr/bin/env bash
# The vaefarm command line against good and bad input: exit codes, messages that say what,
# where and what to do, --json documents that parse, and nothing written where nothing should be.
# Usage: cli_errors.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -uo pipefail
vf=$1; data=$2; src=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
log="$data/cli_errors.log"; : >"$log"

# expect NAME EXIT SUBSTRING... -- CMD...: run CMD, check its exit code and that stderr holds
# every SUBSTRING (case-insensitive).
expect() {
  local name=$1 want=$2; shift 2
  local subs=()
  while [ "$1" != "--" ]; do subs+=("$1"); shift; done; shift
  "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
  local ok=1
  [ "$got" = "$want" ] || ok=0
  for s in "${subs[@]}"; do grep -qiF -- "$s" "$tmp/err" || ok=0; done
  { echo "### $name (exit $got)"; cat "$tmp/err"; echo; } >>"$log"
  if [ $ok = 1 ]; then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name: exit $got (want $want); stderr:"; cat "$tmp/err"
       echo "  wanted substrings: ${subs[*]}"; fi
}

film="$data/films/film_grey.mkv"
cp "$data/films/film_ref_0.png" "$tmp/ref.png"
frames=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['frames'])" "$data/films/film.json")
mkyaml() { printf 'version: 1\ninput: %s\noutput: %s/out.mkv\ndefault_reference: ref.png\n%s' "$film" "$tmp" "$1" >"$tmp/f.yaml"; }

# --- good input
expect "version" 0 -- "$vf" --version
expect "help lists keys" 0 -- "$vf" --help
grep -q "chunks.warmup" "$tmp/out" || { echo "FAIL help lacks chunks.warmup"; fail=$((fail+1)); }
expect "probe" 0 -- "$vf" probe "$film"
grep -q "$frames" "$tmp/out" || { echo "FAIL probe does not say $frames frames"; fail=$((fail+1)); }
expect "probe --json" 0 -- "$vf" probe "$film" --json
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['frames']==$frames, d['frames']" "$tmp/out" \
  && pass=$((pass+1)) || { echo "FAIL probe --json: not JSON or wrong frame count"; fail=$((fail+1)); }
mkyaml $'chunks: {length: 50, warmup: 8}\n'
expect "plan" 0 -- "$vf" plan "$tmp/f.yaml" --simulate 3
expect "plan --json" 0 -- "$vf" plan "$tmp/f.yaml" --json --simulate 4
python3 - "$tmp/out" "$frames" <<'PY' && pass=$((pass+1)) || { echo "FAIL plan --json"; fail=$((fail+1)); }
import json, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[2])
kept = sorted((c["start"], c["end"]) for c in d["chunks"])
assert kept[0][0] == 0 and kept[-1][1] == n and all(a[1] == b[0] for a, b in zip(kept, kept[1:]))
s = d["simulation"]; assert s["makespan_frames"] >= s["lower_bound_frames"] > 0
# no work folder yet: every chunk is to do; the model is the one a run resolves (the bundled one)
r = d["rerun"]
assert (r["journal"], r["keep"], r["renumbered"], r["redo"]) == (False, 0, 0, len(d["chunks"])), r
assert r["work_frames"] == sum(c["end"] - c["warm_start"] for c in d["chunks"]), r
assert all(c["rerun"] == "redo" and c["why"] == "not journaled" for c in d["chunks"])
assert d["model"]["arch"] == "tiny" and d["precision"] in ("bf16", "f32"), (d["model"], d["precision"])
PY
bundled=$(sha256sum "$src/models/vaefarm-tiny.safetensors" | cut -c1-64)
python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['model']['sha256'] == sys.argv[2]" "$tmp/out" "$bundled" \
  && pass=$((pass+1)) || { echo "FAIL plan --json: not the bundled model's sha256 $bundled"; fail=$((fail+1)); }
[ ! -e "$tmp/out.mkv" ] && [ ! -e "$tmp/out.mkv.vaefarm" ] && pass=$((pass+1)) \
  || { echo "FAIL plan wrote files"; fail=$((fail+1)); }
expect "plan: no work folder yet" 0 -- "$vf" plan "$tmp/f.yaml"
grep -q "out.mkv.vaefarm: no journal yet: a run colorizes all" "$tmp/out" && pass=$((pass+1)) \
  || { echo "FAIL plan does not say that a run colorizes every chunk"; fail=$((fail+1)); }
# a journal that cannot be read (a folder in its place): the plan is shown, with a warning saying
# why what a run would keep is missing from it (a run stops there)
mkdir -p "$tmp/out.mkv.vaefarm/journal"
expect "plan: journal unreadable" 0 -- "$vf" plan "$tmp/f.yaml" --quiet
grep -q "out.mkv.vaefarm: its journal cannot be read, so what a run would keep is not known (and a run would stop at it): journal $tmp/out.mkv.vaefarm/journal: not a regular file" "$tmp/out" &&
  grep -q "^plan hash " "$tmp/out" && pass=$((pass+1)) \
  || { echo "FAIL plan with an unreadable journal"; cat "$tmp/out"; fail=$((fail+1)); }
rm -r "$tmp/out.mkv.vaefarm"
# what would stop a run at its start, said by plan: a run holding the work folder's lock (here
# flock(1), on this machine), a plan.json that is a folder
mkdir -p "$tmp/out.mkv.vaefarm/plan.json"
flock "$tmp/out.mkv.vaefarm/lock" sleep 60 & holder=$!
for _ in $(seq 100); do grep -q " FLOCK .* $holder " /proc/locks 2>/dev/null && break; sleep 0.05; done
expect "plan: a run holds the work folder" 0 -- "$vf" plan "$tmp/f.yaml"
grep -q "^warning: a run (pid $holder, on this machine) is working in $tmp/out.mkv.vaefarm now: a run started now would be refused" "$tmp/out" &&
  grep -q "^warning: $tmp/out.mkv.vaefarm/plan.json is a folder: a run would fail writing its plan there; remove it" "$tmp/out" &&
  pass=$((pass+1)) || { echo "FAIL plan does not say the lock is held and plan.json is a folder"; cat "$tmp/out"; fail=$((fail+1)); }
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
rm -r "$tmp/out.mkv.vaefarm"
expect "plan: no model" 4 "\$VAEFARM_MODEL's model cannot be read: $tmp/none.safetensors: No such file" "fix the variable" -- \
  env VAEFARM_MODEL="$tmp/none.safetensors" "$vf" plan "$tmp/f.yaml"
# a folder named as the model: said so, by plan and run alike (a run once read it as a file of
# 2^63 bytes and said "out of memory")
for verb in plan run; do
  expect "$verb: \$VAEFARM_MODEL a folder" 3 "\$VAEFARM_MODEL's model cannot be read: $tmp is a folder, not a file" -- \
    env VAEFARM_MODEL="$tmp" "$vf" $verb "$tmp/f.yaml" --quiet
done

# --- help after a verb is the help; --quiet with --verbose is a contradiction
for verb in run plan probe eval bench; do
  expect "$verb --help" 0 -- "$vf" $verb --help
  grep -q "exit codes" "$tmp/out" && pass=$((pass+1)) || { echo "FAIL $verb --help printed no help"; fail=$((fail+1)); }
done
expect "quiet and verbose" 2 "--quiet and --verbose" -- "$vf" plan "$tmp/f.yaml" --quiet --verbose

# --- bad command lines
expect "no arguments" 2 "usage" -- "$vf"
expect "probe without file" 2 "usage" -- "$vf" probe
expect "simulate not a number" 2 "--simulate" -- "$vf" plan "$tmp/f.yaml" --simulate x
expect "frame-ms without simulate" 2 "give --simulate RANKS with it" -- "$vf" plan "$tmp/f.yaml" --frame-ms 40

# --- bad film.yaml
printf 'version: 1\ninput: [a, b\n' >"$tmp/f.yaml"
expect "malformed YAML" 3 "f.yaml:" -- "$vf" plan "$tmp/f.yaml"
mkyaml $'chunks: {length: abc}\n'
expect "wrong type" 3 "f.yaml:5" "chunks.length" -- "$vf" plan "$tmp/f.yaml"
mkyaml $'chunks: {lenght: 10}\n'
expect "unknown key" 3 "f.yaml:5" "did you mean" "length" -- "$vf" plan "$tmp/f.yaml"
mkyaml $'precision: f64\n'
expect "bad enum" 3 "precision" "bf16" -- "$vf" plan "$tmp/f.yaml"
printf 'version: 2\ninput: a.mkv\noutput: b.mkv\n' >"$tmp/f.yaml"
expect "wrong version" 3 "version" -- "$vf" plan "$tmp/f.yaml"
printf 'version: 1\noutput: b.mkv\n' >"$tmp/f.yaml"
expect "missing input key" 3 "input" -- "$vf" plan "$tmp/f.yaml"
expect "yaml not found" 4 "nope.yaml" -- "$vf" plan "$tmp/nope.yaml"

# --- missing files, all reported at once
printf 'version: 1\ninput: missing.mkv\noutput: out.mkv\nreferences:\n  - {frame: 0, image: gone.png}\ndefault_reference: gone2.png\n' >"$tmp/f.yaml"
expect "missing files" 4 "missing.mkv" "gone.png" "gone2.png" -- "$vf" plan "$tmp/f.yaml"

# --- output that cannot be written
printf 'version: 1\ninput: %s\noutput: /nonexistent-dir/out.mkv\ndefault_reference: ref.png\n' "$film" >"$tmp/f.yaml"
expect "unwritable output" 4 "nonexistent-dir" -- "$vf" plan "$tmp/f.yaml"
printf 'version: 1\ninput: %s\noutput: %s\ndefault_reference: ref.png\n' "$film" "$film" >"$tmp/f.yaml"
expect "output is the input" 3 "input" -- "$vf" plan "$tmp/f.yaml"
# a name that fits the file system but not with the merge's temporary name around it
long=$(printf 'a%.0s' $(seq 221)).mkv
printf 'version: 1\ninput: %s\noutput: %s\ndefault_reference: ref.png\n' "$film" "$long" >"$tmp/f.yaml"
expect "output name too long for the temporary name" 3 "f.yaml:3:9" "225 characters long" "adds 31" "at most 224 characters" -- "$vf" plan "$tmp/f.yaml"

# a work folder whose segments/ this user cannot write (another user's run made it): refused at
# start-up, before any chunk is colorized (root is made `nobody` for it; anyone else gets a
# read-only segments/ of their own); nothing is written
perm=$(mktemp -d); chmod 755 "$perm"
cp "$tmp/ref.png" "$perm/"
printf 'version: 1\ninput: %s\noutput: out.mkv\nwork_dir: w\ndefault_reference: ref.png\n' "$film" >"$perm/f.yaml"
mkdir -p "$perm/w/segments"
as=(); ok_as=1
if [ "$(id -u)" = 0 ]; then
  chown 65534 "$perm" "$perm/w"; as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  # nobody must reach the program, the film and the model (not so in a mode-700 home)
  "${as[@]}" test -x "$vf" -a -r "$film" -a -r "$src/models/vaefarm-tiny.safetensors" -a -r "$perm/f.yaml" || ok_as=0
else
  chmod 555 "$perm/w/segments"
fi
if [ $ok_as = 1 ]; then
  touch "$perm/w/vaefarm.log"   # another user's run's log: this one could not append to it
  [ "$(id -u)" = 0 ] || chmod 444 "$perm/w/vaefarm.log"
  expect "plan: segments folder not writable" 0 -- ${as[@]+"${as[@]}"} "$vf" plan "$perm/f.yaml"
  grep -q "^warning: the work folder's segments folder $perm/w/segments cannot be written (Permission denied): a run by this user would be refused" "$tmp/out" &&
    grep -q "^warning: $perm/w/vaefarm.log cannot be written (Permission denied): a run by this user would stop at it" "$tmp/out" \
    && pass=$((pass+1)) || { echo "FAIL plan does not say segments/ cannot be written"; cat "$tmp/out"; fail=$((fail+1)); }
  expect "segments folder not writable" 6 "segments folder $perm/w/segments cannot be written" "make it writable for this user, or give another work_dir" -- \
    ${as[@]+"${as[@]}"} "$vf" "$perm/f.yaml" --quiet
  [ -z "$(ls -A "$perm/w/segments")" ] && [ ! -e "$perm/out.mkv" ] && [ ! -e "$perm/w/journal" ] && [ ! -s "$perm/w/vaefarm.log" ] && pass=$((pass+1)) \
    || { echo "FAIL unwritable segments: something was written"; ls -lR "$perm"; fail=$((fail+1)); }
  # another user's film, whose folders this one cannot write: plan shows it, saying a run would stop
  mkdir "$perm/theirs" && cp "$perm/ref.png" "$perm/theirs/" && grep -v '^work_dir' "$perm/f.yaml" >"$perm/theirs/f.yaml"
  [ "$(id -u)" = 0 ] || chmod 555 "$perm/theirs"
  expect "plan of a film in a folder this user cannot write" 0 -- ${as[@]+"${as[@]}"} "$vf" plan "$perm/theirs/f.yaml" --quiet
  grep -q "^warning: .*f.yaml:3:9: output: the output's folder $perm/theirs is not writable" "$tmp/out" &&
    grep -q "f.yaml: work_dir (not set): the work folder's parent $perm/theirs is not writable" "$tmp/out" &&
    grep -q "^(a run by this user would stop there; the plan is shown all the same)" "$tmp/out" &&
    grep -q "^plan hash " "$tmp/out" && pass=$((pass+1)) || { echo "FAIL plan of another user's film"; cat "$tmp/out"; fail=$((fail+1)); }
else
  echo "skip segments folder not writable: user nobody cannot read $vf, the film or the model here"
fi
chmod -R u+w "$perm"; rm -rf "$perm"

# --- shot lists that overlap or leave gaps
mkyaml "$(printf 'shots:\n  list:\n    - {start: 0, end: 100, reference: ref.png}\n    - {start: 90, end: %d, reference: ref.png}\n' "$frames")"
expect "overlapping shots" 3 "overlap" -- "$vf" plan "$tmp/f.yaml"
mkyaml "$(printf 'shots:\n  list:\n    - {start: 0, end: 100, reference: ref.png}\n    - {start: 110, end: %d, reference: ref.png}\n' "$frames")"
expect "gap in shots" 3 "gap" -- "$vf" plan "$tmp/f.yaml"
mkyaml $'shots:\n  list:\n    - {start: 0, end: 100000, reference: ref.png}\n'
expect "shot past the end" 3 "100000" -- "$vf" plan "$tmp/f.yaml"

# --- encoder settings refused before any work
mkyaml $'encode: {codec: libx264, options: {crff: "16"}}\n'
expect "unknown encoder option" 3 "crff" -- "$vf" plan "$tmp/f.yaml"
mkyaml $'encode: {codec: ffv1, pix_fmt: nv12}\n'
expect "pixel format the encoder lacks" 3 "nv12" -- "$vf" plan "$tmp/f.yaml"

# --- outputs the merge could not write, refused before any work (plan and run alike)
mkout() { printf 'version: 1\ninput: %s\noutput: %s/%s\ndefault_reference: ref.png\n%s' "$film" "$tmp" "$1" "$2" >"$tmp/f.yaml"; }
mkout out.avi ''
expect "container vaefarm does not write" 3 "f.yaml:3:" "out.avi" ".mkv, .mov or .mp4" -- "$vf" plan "$tmp/f.yaml"
expect "container refused by run before work" 3 "out.avi" -- "$vf" run "$tmp/f.yaml" --threads 1
[ ! -e "$tmp/out.avi.vaefarm" ] && pass=$((pass+1)) || { echo "FAIL run made a work folder for out.avi"; fail=$((fail+1)); }
mkout out.mp4 $'encode: {codec: libx264}\n'   # the test film's FLAC audio: experimental in MP4
expect "audio the container refuses" 3 "out.mp4" "audio stream #1 (flac)" "audio: none" -- "$vf" plan "$tmp/f.yaml"
mkout out.mp4 $'encode: {codec: libx264}\naudio: none\n'
expect "the same without the audio" 0 -- "$vf" plan "$tmp/f.yaml"
mkout out.mov $'encode: {codec: ffv1}\naudio: none\n'
expect "video the container refuses" 3 "out.mov" "(ffv1)" "write a .mkv output" -- "$vf" plan "$tmp/f.yaml"
mkout out.mkv $'encode: {codec: dnxhd}\n'   # Matroska holds DNxHD through its VfW tag
expect "dnxhd in mkv" 0 -- "$vf" plan "$tmp/f.yaml"

# --- references that are not pictures, and pixel formats the pipeline does not write, refused
# before any work (they failed only when their chunk ran)
echo "not a picture" >"$tmp/bad.png"
mkout out.mkv "$(printf 'shots:\n  list:\n    - {start: 0, end: 100, reference: ref.png}\n    - {start: 100, end: %d, reference: bad.png}\n' "$frames")"
expect "reference not a picture" 5 "f.yaml:8:" "bad.png" -- "$vf" plan "$tmp/f.yaml"
python3 -c "import sys; open(sys.argv[1],'wb').write(b'\x89PNG\r\n\x1a\n')" "$tmp/cut.png"
printf 'version: 1\ninput: %s\noutput: %s/out.mkv\ndefault_reference: cut.png\n' "$film" "$tmp" >"$tmp/f.yaml"
expect "reference truncated" 5 "f.yaml:4:" "cut.png" -- "$vf" plan "$tmp/f.yaml"
python3 - "$tmp/grey.png" <<'PY'
import struct, sys, zlib
w = h = 16
raw = b"".join(b"\x00" + bytes(v for x in range(w) for v in (x * 16,) * 3) for _ in range(h))
png = b"\x89PNG\r\n\x1a\n"
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
printf 'version: 1\ninput: %s\noutput: %s/out.mkv\ndefault_reference: grey.png\n' "$film" "$tmp" >"$tmp/f.yaml"
expect "grey reference warned" 0 "grey.png is grey" -- "$vf" plan "$tmp/f.yaml"
mkout out.mkv $'encode: {codec: libx264, pix_fmt: gray}\n'
expect "pixel format the pipeline does not write" 3 "f.yaml:5:" "planar YUV" -- "$vf" plan "$tmp/f.yaml"

# --- an output that is a file the film reads, or its own work folder
mkout ref.png ''
expect "output is the reference" 3 "f.yaml:3:" "default_reference" "never writes its inputs" -- "$vf" plan "$tmp/f.yaml"
mkout out.mkv $'work_dir: out.mkv\n'
expect "output is the work folder" 3 "also work_dir" -- "$vf" plan "$tmp/f.yaml"

# --- memory: a CPU rank that would take more than it may gets out of memory (exit 7), not the
# system's out-of-memory killer (here a 300 MiB limit against an inference size needing more)
mkout mem.mkv $'inference_size: [2048, 2048]\n'
expect "memory limit" 7 "out of memory" "300 MiB" "inference_size" -- \
  env VAEFARM_MEMORY_LIMIT=300 "$vf" run "$tmp/f.yaml" --threads 1
[ ! -e "$tmp/mem.mkv" ] && pass=$((pass+1)) || { echo "FAIL an output after out of memory"; fail=$((fail+1)); }
expect "memory limit not a number" 3 "VAEFARM_MEMORY_LIMIT=12G" -- \
  env VAEFARM_MEMORY_LIMIT=12G "$vf" run "$tmp/f.yaml" --threads 1
# the budget holds the frames in flight and the codecs too (at 1920x1080 14 bytes a pixel each, 11
# of them with the default --queue 4: 347 MiB with the output frames and the reference; the h264
# decoder and the ffv1 encoder 372 MiB on one CPU, the decoder's threads following the CPUs, so
# these runs get one; the network about 220-240): 200 MiB cannot hold the frames and codecs, 800
# MiB leaves the network too little, and --queue 0 (one frame, 69 MiB) fits in 800
one_cpu=(taskset -c "$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')")
ffmpeg -loglevel error -i "$film" -frames:v 3 -vf scale=1920:1080 -c:v libx264 -an "$tmp/hd.mkv" \
  || { echo "FAIL make the 1080p film"; fail=$((fail+1)); }
printf 'version: 1\ninput: %s\noutput: %s/hd_out.mkv\ndefault_reference: ref.png\naudio: none\nshots: {detect: off}\n' \
  "$tmp/hd.mkv" "$tmp" >"$tmp/hd.yaml"
expect "memory: the frames and codecs alone past the budget" 7 "out of memory: its frames in flight at 1920x1080, " \
  "MiB (--queue 4; 0 keeps one), and its decoder and ffv1 encoder, " "MiB, need " \
  "more than the 200 MiB this rank may use" "leaving the network nothing" "lower --queue" "a lighter encode.codec" -- \
  "${one_cpu[@]}" env VAEFARM_MEMORY_LIMIT=200 "$vf" run "$tmp/hd.yaml" --threads 1
expect "memory: the frames and codecs leave the network too little" 7 "out of memory" "MiB it may hold" \
  "(of the 800 MiB this rank may use" "its frames in flight at 1920x1080, " "ffv1 encoder, " "MiB, take" -- \
  "${one_cpu[@]}" env VAEFARM_MEMORY_LIMIT=800 "$vf" run "$tmp/hd.yaml" --threads 1
[ ! -e "$tmp/hd_out.mkv" ] && pass=$((pass+1)) || { echo "FAIL an output after out of memory"; fail=$((fail+1)); }
# refused after its setup made the work folder, before any colorizing: the run removes what it
# made (the folder, its plan, log and lock), and only that: a work folder that was there stays,
# with what it held, but for the segments/ folder this run made in it
[ ! -e "$tmp/hd_out.mkv.vaefarm" ] && pass=$((pass+1)) || { echo "FAIL a refused run left the work folder it made: $(ls -R "$tmp/hd_out.mkv.vaefarm")"; fail=$((fail+1)); }
mkdir -p "$tmp/hd_out.mkv.vaefarm" && echo mine >"$tmp/hd_out.mkv.vaefarm/notes.txt"
expect "memory: refused in a work folder that was there" 7 "out of memory" -- \
  "${one_cpu[@]}" env VAEFARM_MEMORY_LIMIT=200 "$vf" run "$tmp/hd.yaml" --threads 1
[ "$(cat "$tmp/hd_out.mkv.vaefarm/notes.txt")" = mine ] && [ ! -e "$tmp/hd_out.mkv.vaefarm/segments" ] \
  && pass=$((pass+1)) || { echo "FAIL a refused run changed a work folder that was there: $(ls "$tmp/hd_out.mkv.vaefarm")"; fail=$((fail+1)); }
rm -rf "$tmp/hd_out.mkv.vaefarm"
# a work_dir whose folders it made in part: those go, by rmdir alone, up to the first it made;
# the folder above, and what another run put in it, stay
mkdir -p "$tmp/wa" && echo other >"$tmp/wa/other.txt"
sed 's|^audio: none|audio: none\nwork_dir: wa/wb/wd|' "$tmp/hd.yaml" >"$tmp/hdw.yaml"
expect "memory: refused with a work_dir it made in part" 7 "out of memory" -- \
  "${one_cpu[@]}" env VAEFARM_MEMORY_LIMIT=200 "$vf" run "$tmp/hdw.yaml" --threads 1
grep -q "^work_dir: wa/wb/wd$" "$tmp/hdw.yaml" && [ "$(ls -A "$tmp/wa")" = other.txt ] && pass=$((pass+1)) \
  || { echo "FAIL a refused run left or took folders: $(ls -R "$tmp/wa")"; fail=$((fail+1)); }
rm -rf "$tmp/wa"
expect "memory: one frame in flight leaves the network enough" 0 -- \
  "${one_cpu[@]}" env VAEFARM_MEMORY_LIMIT=800 "$vf" run "$tmp/hd.yaml" --threads 1 --queue 0 --quiet

# --- media that is not what it should be
echo "this is not a video" >"$tmp/notvideo.mkv"
expect "not a video" 5 "notvideo.mkv" -- "$vf" probe "$tmp/notvideo.mkv"
head -c $(( $(stat -c %s "$film") / 2 )) "$film" >"$tmp/truncated.mkv"
sum_before=$(sha256sum "$tmp/truncated.mkv")
"$vf" probe "$tmp/truncated.mkv" >"$tmp/out" 2>"$tmp/err"; rc=$?
{ echo "### truncated video (exit $rc)"; cat "$tmp/err" "$tmp/out"; echo; } >>"$log"
# A truncated file is either refused (media error) or probed with the frames really in it.
if [ $rc = 5 ] || { [ $rc = 0 ] && ! grep -q " $frames at" "$tmp/out"; }; then pass=$((pass+1)); echo "ok   truncated video ($rc)"
else fail=$((fail+1)); echo "FAIL truncated video: exit $rc"; cat "$tmp/err" "$tmp/out"; fi
[ "$sum_before" = "$(sha256sum "$tmp/truncated.mkv")" ] && pass=$((pass+1)) || { echo "FAIL input was written"; fail=$((fail+1)); }
expect "probe missing file" 4 "nothere.mkv" -- "$vf" probe "$tmp/nothere.mkv"
# a complete Matroska reel that starts at 3.5 s (ffmpeg's segment muxer keeps timestamps): its
# DURATION tag is the end time, not a length it falls short of
ffmpeg -v error -y -i "$film" -frames:v 30 -map 0:v -c:v ffv1 -output_ts_offset 3.5 "$tmp/late.mkv" \
  || { echo "FAIL make late.mkv"; fail=$((fail+1)); }
expect "a reel that starts late" 0 -- "$vf" probe "$tmp/late.mkv"
grep -q "frames      30 at" "$tmp/out" && pass=$((pass+1)) || { echo "FAIL late.mkv: not 30 frames"; cat "$tmp/out"; fail=$((fail+1)); }

echo "messages: $log"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
