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
# a mistyped verb is said to be one, with the verb meant, not taken for a film.yaml's name (it
# was: "vaefarm run: unexpected argument 'film.yaml'")
expect "mistyped verb" 2 "'plna' is neither a verb (run, plan, probe, eval, bench) nor a film.yaml file (did you mean 'plan'?)" -- "$vf" plna film.yaml
expect "a mistyped verb is shown escaped" 2 "'pl\\x1B[7mna' is neither a verb" -- "$vf" "$(printf 'pl\033[7mna')" film.yaml
expect "a missing film.yaml is still one" 4 "cannot open the film.yaml" "nothere.yaml" -- "$vf" nothere.yaml
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
# a run on another node of a shared file system: NFS takes its flock as a whole-file POSIX lock
# of the server's, which /proc/locks here does not list; here a POSIX lock (lockf) stands for it,
# and the lock's text names the run and its node. plan sees it by a test lock; a run refused by
# a lock names the pid and host the text gives.
mkdir -p "$tmp/out.mkv.vaefarm"
printf '4242 render-node-07\n' > "$tmp/out.mkv.vaefarm/lock"
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+"); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(60)' "$tmp/out.mkv.vaefarm/lock" & holder=$!
for _ in $(seq 100); do grep -q " POSIX .* $holder " /proc/locks 2>/dev/null && break; sleep 0.05; done
expect "plan: a run on another node holds the work folder" 0 -- "$vf" plan "$tmp/f.yaml"
grep -q "^warning: a run (pid 4242 on render-node-07, by the lock's text) holds $tmp/out.mkv.vaefarm's lock through the shared file system now: a run started now would be refused" "$tmp/out" &&
  pass=$((pass+1)) || { echo "FAIL plan does not see a lock held through the file system"; cat "$tmp/out"; fail=$((fail+1)); }
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
# the lock's text is anyone's to write: a host name that is not one (bytes of Latin-1 here) is
# not repeated (it broke plan --json), and a held lock with no text still is one
for text in '77 h\377st\n' ''; do
  printf "$text" > "$tmp/out.mkv.vaefarm/lock"
  python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+"); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(60)' "$tmp/out.mkv.vaefarm/lock" & holder=$!
  for _ in $(seq 100); do grep -q " POSIX .* $holder " /proc/locks 2>/dev/null && break; sleep 0.05; done
  want="pid 77 on a host it does not name, by the lock's text"; [ -n "$text" ] || want="pid unknown"
  expect "plan --json: a lock held with the text '$text'" 0 -- "$vf" plan "$tmp/f.yaml" --json
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert any(("a run (%s) holds" % sys.argv[2]) in w for w in d["warnings"]), d["warnings"]' "$tmp/out" "$want" &&
    pass=$((pass+1)) || { echo "FAIL plan --json with the lock's text '$text'"; cat "$tmp/out"; fail=$((fail+1)); }
  kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
done
printf '4242 render-node-07\n' > "$tmp/out.mkv.vaefarm/lock"
expect "plan: the lock's text alone is no holder" 0 -- "$vf" plan "$tmp/f.yaml"
grep -qE "is working in|lock through" "$tmp/out" && { echo "FAIL plan takes a lock's leftover text for a holder"; cat "$tmp/out"; fail=$((fail+1)); } || pass=$((pass+1))
flock "$tmp/out.mkv.vaefarm/lock" sleep 60 & holder=$!
for _ in $(seq 100); do grep -q " FLOCK .* $holder " /proc/locks 2>/dev/null && break; sleep 0.05; done
expect "run: the lock's holder named with its host" 3 "out.mkv.vaefarm is in use by another vaefarm run (pid 4242 on render-node-07): wait for it to end" -- \
  "$vf" run "$tmp/f.yaml" --quiet
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
expect "video the container refuses" 3 "out.mov" "cannot hold ffv1 video" "write a .mkv output, or choose an encode.codec" -- "$vf" plan "$tmp/f.yaml"
# an encoder that will not open quotes FFmpeg's own first error line, which reaches stderr only
# with --verbose (the old DNxHD profile at 320x180: FFmpeg lists its valid profiles)
mkout out.mkv $'encode: {codec: dnxhd, options: {profile: dnxhd}}\n'
expect "dnxhd profile at 320x180" 3 "cannot open the dnxhd encoder for 320x180 yuv422p" "FFmpeg said: video parameters incompatible with DNxHD" -- "$vf" plan "$tmp/f.yaml" --quiet
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
# two transport streams joined with cat: the second's clock starts again, so sorted by time the
# two would interleave; refused at the packet where it goes back, with the ways out
for k in 1 2; do
  ffmpeg -nostdin -v error -f lavfi -i testsrc2=s=64x48:r=25,format=yuv420p -t 2 -c:v mpeg2video \
    -output_ts_offset $([ $k = 1 ] && echo 0 || echo 0.5) -f mpegts "$tmp/part$k.ts"
done
cat "$tmp/part1.ts" "$tmp/part2.ts" >"$tmp/joined.ts"
expect "probe: two recordings joined with cat" 3 "the video's clock goes back 1.5" "concat demuxer" -- "$vf" probe "$tmp/joined.ts"
# a DV AVI cut mid-frame: the advised remux leaves out the frame the cut went into (a plain
# remux kept its half packet, which failed at decoding), and the result plans
ffmpeg -nostdin -v error -f lavfi -i testsrc2=s=720x576:r=25,format=yuv420p -t 0.8 -c:v dvvideo "$tmp/dv.avi"
head -c $(( $(stat -c %s "$tmp/dv.avi") * 2 / 3 )) "$tmp/dv.avi" >"$tmp/dvcut.avi"
expect "probe: a DV AVI cut mid-frame" 5 "declares 20 video frames" "-map 0 -c copy -frames:v" -- "$vf" probe "$tmp/dvcut.avi"
keep=$(grep -o -- "-frames:v [0-9]*" "$tmp/err" | cut -d' ' -f2)
ffmpeg -nostdin -v error -i "$tmp/dvcut.avi" -map 0 -c copy -frames:v "${keep:-0}" "$tmp/dvcut.mkv"
printf 'version: 1\ninput: %s/dvcut.mkv\noutput: %s/dvcut_c.mkv\ndefault_reference: %s/ref.png\n' "$tmp" "$tmp" "$tmp" >"$tmp/dvcut.yaml"
expect "plan: the advised remux of a cut DV AVI" 0 -- "$vf" plan "$tmp/dvcut.yaml" --quiet
# the plain remux keeps the cut frame: named, with what to do, at the frame that fails
ffmpeg -nostdin -v error -i "$tmp/dvcut.avi" -map 0 -c copy "$tmp/dvplain.mkv"
sed "s|dvcut.mkv|dvplain.mkv|" "$tmp/dvcut.yaml" >"$tmp/dvplain.yaml"
expect "plan: a DV frame cut short" 5 "does not decode (FFmpeg: its decoder gave no reason); the stream is damaged there, or its last frame was cut short" "-c:v ffv1" -- "$vf" plan "$tmp/dvplain.yaml" --quiet
# a complete Matroska reel that starts at 3.5 s (ffmpeg's segment muxer keeps timestamps): its
# DURATION tag is the end time, not a length it falls short of
ffmpeg -v error -y -i "$film" -frames:v 30 -map 0:v -c:v ffv1 -output_ts_offset 3.5 "$tmp/late.mkv" \
  || { echo "FAIL make late.mkv"; fail=$((fail+1)); }
expect "a reel that starts late" 0 -- "$vf" probe "$tmp/late.mkv"
grep -q "frames      30 at" "$tmp/out" && pass=$((pass+1)) || { echo "FAIL late.mkv: not 30 frames"; cat "$tmp/out"; fail=$((fail+1)); }

# control characters in a file name are shown escaped, never sent to the terminal (an escape
# sequence that clears the screen, a carriage return that hides the start of the line)
printf 'version: 1\ninput: "in\\x1b[2J\\rX.mkv"\noutput: o.mkv\n' >"$tmp/ctl.yaml"
expect "plan: an escape sequence in a file name" 4 '/in\x1B[2J\x0DX.mkv does not exist' -- "$vf" plan "$tmp/ctl.yaml"
expect "probe: an escape sequence in a file name" 4 'a\x1B[2Jb.mkv: No such file' -- "$vf" probe "$(printf 'a\033[2Jb.mkv')"
grep -q "$(printf '\033')" "$tmp/err" && { echo "FAIL a raw ESC reached stderr"; fail=$((fail+1)); } || pass=$((pass+1))
# the colour video's codec in a container that cannot hold it: the fix is the codec or a .mkv,
# not the source's other streams
printf 'version: 1\ninput: %s\noutput: %s/v.mp4\ndefault_reference: %s/ref.png\naudio: none\n' "$film" "$tmp" "$tmp" >"$tmp/v.yaml"
expect "plan: ffv1 into .mp4" 3 "a .mp4 file cannot hold ffv1 video, which encode.codec makes: write a .mkv output, or choose an encode.codec that a .mp4 file holds" -- "$vf" plan "$tmp/v.yaml" --quiet
grep -q "audio: none" "$tmp/err" && { echo "FAIL ffv1 into .mp4: told to leave the audio out"; fail=$((fail+1)); } || pass=$((pass+1))
# a film whose first frame's timestamp is negative (a transport stream across its clock wrap):
# refused before any work with the remux that fixes it (its segments could never be merged)
ffmpeg -nostdin -v error -f lavfi -i testsrc2=s=64x48:r=25,format=gray,format=yuv420p -t 1 \
  -c:v mpeg2video -g 12 -bf 2 -output_ts_offset 95441 -f mpegts "$tmp/neg.ts"
printf 'version: 1\ninput: %s/neg.ts\noutput: %s/n.mkv\ndefault_reference: %s/ref.png\n' "$tmp" "$tmp" "$tmp" >"$tmp/neg.yaml"
expect "plan: a first frame before 0" 3 "neg.ts: its first frame's timestamp is negative (-" "-avoid_negative_ts make_zero" -- "$vf" plan "$tmp/neg.yaml" --quiet
expect "run: a first frame before 0" 3 "its first frame's timestamp is negative" -- "$vf" "$tmp/neg.yaml" --quiet
[ ! -e "$tmp/n.mkv.vaefarm/segments" ] && pass=$((pass+1)) || { echo "FAIL run with a first frame before 0 made segments"; fail=$((fail+1)); }
# FFV1 at 2 pixels high: one slice (cut into slices FFmpeg 5.1 decodes it otherwise), the luma
# kept exactly; at 1 pixel wide (wrong at any slice count) refused
ffmpeg -nostdin -v error -f lavfi -i testsrc2=s=16x2:r=25,format=gray -t 0.2 -c:v ffv1 "$tmp/thin.mkv"
ffmpeg -nostdin -v error -f lavfi -i testsrc2=s=1x16:r=25,format=gray -t 0.2 -c:v ffv1 "$tmp/one.mkv"
for n in thin one; do
  printf 'version: 1\ninput: %s/%s.mkv\noutput: %s/%s_c.mkv\ndefault_reference: %s/ref.png\ninference_size: [32, 32]\n' "$tmp" $n "$tmp" $n "$tmp" >"$tmp/$n.yaml"
done
expect "run: a film 2 pixels high in ffv1" 0 -- "$vf" "$tmp/thin.yaml" --quiet --threads 1
cmp -s <(ffmpeg -nostdin -v error -i "$tmp/thin.mkv" -f rawvideo -pix_fmt gray -) \
       <(ffmpeg -nostdin -v error -i "$tmp/thin_c.mkv" -vf extractplanes=y -f rawvideo -pix_fmt gray -) &&
  pass=$((pass+1)) || { echo "FAIL a film 2 pixels high: its luma changed"; fail=$((fail+1)); }
expect "run: a film 1 pixel wide in ffv1" 3 "ffv1 does not keep a 1x16 picture" "choose another encode.codec" -- "$vf" "$tmp/one.yaml" --quiet
# a timecode only the codec carries (MPEG-2's GOP header): the colour film gets it as a tag
# (Matroska TIMECODE; a .mov's tmcd track is made from the same tag)
ffmpeg -nostdin -v error -f lavfi -i testsrc2=s=64x48:r=25,format=gray,format=yuv420p -t 0.4 \
  -c:v mpeg2video -g 12 -bf 2 -timecode 01:02:03:04 -f vob "$tmp/gop_tc.vob"
printf 'version: 1\ninput: %s/gop_tc.vob\noutput: %s/gop_tc.mkv\ndefault_reference: %s/ref.png\ninference_size: [32, 32]\n' "$tmp" "$tmp" "$tmp" >"$tmp/gop_tc.yaml"
expect "run: a timecode in the MPEG-2 GOP header" 0 -- "$vf" "$tmp/gop_tc.yaml" --quiet --threads 1
"$vf" probe "$tmp/gop_tc.mkv" | grep -q "timecode *01:02:03:04" &&
  pass=$((pass+1)) || { echo "FAIL the GOP header's timecode is not in the colour film"; fail=$((fail+1)); }
# a precision this machine's rank 0 does not compute in (f16 on a CPU): plan warns, a run refuses
printf 'version: 1\ninput: %s\noutput: %s/p.mkv\ndefault_reference: %s/ref.png\nprecision: f16\n' "$film" "$tmp" "$tmp" >"$tmp/p16.yaml"
expect "plan: precision f16 on a CPU" 0 -- env CUDA_VISIBLE_DEVICES= "$vf" plan "$tmp/p16.yaml" --quiet
grep -q "^warning: $tmp/p16.yaml:5:12: precision f16: a CPU rank on this machine does not compute in it, so a run started here would be refused (exit 3)" "$tmp/out" &&
  pass=$((pass+1)) || { echo "FAIL plan does not warn of a precision the run refuses"; cat "$tmp/out"; fail=$((fail+1)); }
expect "run: precision f16 on a CPU" 3 "p16.yaml:5:12: precision f16: the cpu backend of rank 0 does not compute in it" -- \
  env CUDA_VISIBLE_DEVICES= "$vf" run "$tmp/p16.yaml" --quiet
# files named like FFmpeg URLs are read as named (pipe:0 would be stdin, concat:X another file)
ffmpeg -v error -y -i "$film" -frames:v 24 -c:v ffv1 "$tmp/short.mkv" || { echo "FAIL make short.mkv"; fail=$((fail+1)); }
cp "$tmp/short.mkv" "$tmp/pipe:0"; cp "$data/films/film_ref_0.png" "$tmp/concat:ref.png"
digest=$("$vf" probe "$tmp/short.mkv" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['video_digest'])")
cp "$data/films/film_ref_0.png" "$tmp/concat:short.mkv"   # the concat protocol would read short.mkv
for name in "pipe:0" "concat:short.mkv"; do
  (cd "$tmp" && "$vf" probe "$name" --json </dev/null >"$tmp/out" 2>"$tmp/err"); rc=$?
  got=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['video_digest'])" "$tmp/out" 2>/dev/null)
  want=$digest; [ "$name" = "pipe:0" ] || want=$("$vf" probe "$data/films/film_ref_0.png" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['video_digest'])")
  [ $rc = 0 ] && [ "$got" = "$want" ] && pass=$((pass+1)) \
    || { echo "FAIL probe $name: exit $rc, digest $got (want $want)"; cat "$tmp/err"; fail=$((fail+1)); }
done
# a run of a film whose files are named like URLs, to an output named like one: read and written
# as named (the segments, the merge's temporary file and the output in the same folder)
printf 'version: 1\ninput: pipe:0\noutput: "concat:out.mkv"\ndefault_reference: concat:ref.png\nshots: {detect: off}\nchunks: {length: 10, warmup: 2}\n' >"$tmp/url.yaml"
(cd "$tmp" && timeout 300 "$vf" run url.yaml --quiet </dev/null >"$tmp/out" 2>"$tmp/err"); rc=$?
n=$("$vf" probe "$tmp/concat:out.mkv" --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['frames'])" 2>/dev/null)
[ $rc = 0 ] && [ "$n" = 24 ] && pass=$((pass+1)) \
  || { echo "FAIL run with URL-like names: exit $rc, $n frames (want 24)"; cat "$tmp/err"; fail=$((fail+1)); }
rm -rf "$tmp/concat:out.mkv" "$tmp/concat:out.mkv.vaefarm"
# a pipe is refused at once (it cannot be read twice, and opening it would wait for a writer)
mkfifo "$tmp/pipe.mkv"
expect "probe: a FIFO" 3 "pipe.mkv is a pipe (FIFO), not a video file" "save a stream to a file first" -- timeout 20 "$vf" probe "$tmp/pipe.mkv"
expect "eval: a FIFO" 3 "pipe.mkv is a pipe (FIFO), not a video file" -- timeout 20 "$vf" eval --truth "$film" --output "$tmp/pipe.mkv"
expect "probe: a device" 3 "/dev/null is a device or socket, not a video file" -- "$vf" probe /dev/null
# a film.yaml in a folder whose name is not UTF-8 (Latin-1 on an old file server): plan and run
# refuse it, saying how to go on, rather than failing to write plan.json; from inside, it plans
lat=$(printf '%s/caf\351' "$tmp"); mkdir "$lat"
printf 'version: 1\ninput: %s\noutput: out.mkv\ndefault_reference: %s/ref.png\n' "$film" "$tmp" >"$lat/f.yaml"
expect "plan: a folder name that is not UTF-8" 3 "is not UTF-8" "run it from inside the film's folder" -- "$vf" plan "$lat/f.yaml"
expect "run: a folder name that is not UTF-8" 3 "is not UTF-8" "run it from inside the film's folder" -- "$vf" run "$lat/f.yaml"
(cd "$lat" && "$vf" plan f.yaml --json >"$tmp/out" 2>"$tmp/err") && python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$tmp/out" \
  && pass=$((pass+1)) || { echo "FAIL plan from inside a Latin-1 folder"; cat "$tmp/err"; fail=$((fail+1)); }
# probe and eval show such a name with U+FFFD in --json (it is text for people there)
cp "$film" "$lat/grey.mkv"
expect "probe --json: a name that is not UTF-8" 0 -- "$vf" probe "$lat/grey.mkv" --json
python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['path']; assert p.endswith('caf\ufffd/grey.mkv'), p" "$tmp/out" \
  && pass=$((pass+1)) || { echo "FAIL probe --json path"; fail=$((fail+1)); }
expect "eval --json: a name that is not UTF-8" 0 -- "$vf" eval --truth "$lat/grey.mkv" --output "$film" --json
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['truth'].endswith('caf\ufffd/grey.mkv'), d['truth']" "$tmp/out" \
  && pass=$((pass+1)) || { echo "FAIL eval --json path"; fail=$((fail+1)); }

# an AVI whose capture dropped frames 5-7 (empty index entries, which FFmpeg never delivers) is
# complete: its 20 frames span its 23 declared slots; cut short it is truncated
ffmpeg -v error -y -f lavfi -i testsrc2=s=64x48:r=25:d=0.8 -vf "setpts='(N+if(gte(N,5),3,0))/25/TB'" \
  -fps_mode passthrough -c:v mjpeg "$tmp/drops.avi" || { echo "FAIL make drops.avi"; fail=$((fail+1)); }
expect "an AVI with dropped frames" 0 -- "$vf" probe "$tmp/drops.avi"
grep -q "frames      20 at" "$tmp/out" && grep -q "^  gap         0.160 s after frame 4 (at 0.160 s): 3 frame times with no frame" "$tmp/out" \
  && pass=$((pass+1)) || { echo "FAIL drops.avi: not 20 frames and the gap"; cat "$tmp/out"; fail=$((fail+1)); }
"$vf" probe "$tmp/drops.avi" --json | python3 -c "import json,sys; g=json.load(sys.stdin)['gap']; assert (g['after_frame'], g['missing_frames']) == (4, 3) and abs(g['seconds'] - 0.16) < 1e-9, g" \
  && pass=$((pass+1)) || { echo "FAIL drops.avi: probe --json's gap"; fail=$((fail+1)); }
"$vf" probe "$film" --json | python3 -c "import json,sys; assert json.load(sys.stdin)['gap'] is None" \
  && pass=$((pass+1)) || { echo "FAIL film_grey.mkv: a gap where there is none"; fail=$((fail+1)); }
# a film whose frame times jump mid-way (frames lost to damage): plan and run say so before work
ffmpeg -v error -y -f lavfi -i testsrc2=s=64x48:r=25:d=1.2 -vf "setpts='N+if(gte(N,12),15,0)'" \
  -fps_mode passthrough -c:v ffv1 "$tmp/hole.mkv" || { echo "FAIL make hole.mkv"; fail=$((fail+1)); }
printf 'version: 1\ninput: hole.mkv\noutput: hole_out.mkv\ndefault_reference: concat:ref.png\n' >"$tmp/hole.yaml"
expect "a film with a hole in its frame times" 0 "input $tmp/hole.mkv: its frame times jump by 0.640 s after frame 11 (at 0.440 s): 15 frame times with no frame" -- "$vf" plan "$tmp/hole.yaml"
head -c $(( $(stat -c %s "$tmp/drops.avi") * 3 / 4 )) "$tmp/drops.avi" >"$tmp/cut.avi"
expect "an AVI cut short" 5 "cut.avi" "probably truncated" -- "$vf" probe "$tmp/cut.avi"

# a Matroska film with ASS subtitles and their font (an attachment): a .mkv output keeps both;
# an MP4's mov_text subtitles, which Matroska cannot hold, are refused with what to do
printf '[Script Info]\nScriptType: v4.00+\n\n[Events]\nFormat: Layer, Start, End, Style, Text\nDialogue: 0,0:00:00.00,0:00:00.50,Default,hello\n' >"$tmp/s.ass"
head -c 3000 /dev/urandom >"$tmp/font.ttf"
ffmpeg -v error -y -i "$tmp/short.mkv" -i "$tmp/s.ass" -map 0:v -map 1 -c:v copy -c:s ass \
  -attach "$tmp/font.ttf" -metadata:s:t mimetype=application/x-truetype-font "$tmp/fonts.mkv" \
  || { echo "FAIL make fonts.mkv"; fail=$((fail+1)); }
printf 'version: 1\ninput: fonts.mkv\noutput: fonts_out.mkv\ndefault_reference: concat:ref.png\nshots: {detect: off}\n' >"$tmp/fonts.yaml"
expect "subtitles and a font into .mkv" 0 -- timeout 300 "$vf" run "$tmp/fonts.yaml" --quiet
ffprobe -v error -show_entries stream=codec_type:stream_tags=filename -of csv=p=0 "$tmp/fonts_out.mkv" >"$tmp/streams" 2>&1
grep -q "^subtitle" "$tmp/streams" && grep -q "^attachment,font.ttf" "$tmp/streams" && pass=$((pass+1)) \
  || { echo "FAIL fonts_out.mkv lacks the subtitles or the font:"; cat "$tmp/streams"; fail=$((fail+1)); }
ffmpeg -v error -y -i "$tmp/short.mkv" -i "$tmp/s.ass" -map 0:v -map 1 -c:v libx264 -c:s mov_text "$tmp/subs.mp4" \
  || { echo "FAIL make subs.mp4"; fail=$((fail+1)); }
printf 'version: 1\ninput: subs.mp4\noutput: subs_out.mkv\ndefault_reference: concat:ref.png\n' >"$tmp/subs.yaml"
expect "mov_text into .mkv" 3 "cannot hold the subtitle stream #1 (mov_text)" "-c:s srt" "audio: none" -- "$vf" plan "$tmp/subs.yaml"
grep -q "write a .mkv output" "$tmp/err" && { echo "FAIL mov_text into .mkv: told to write a .mkv output"; fail=$((fail+1)); }

# an AVI with MPEG-4 B-frames (Xvid) stores no pts for its I and P frames (genpts gives them):
# the run colours every frame, in order, across chunk boundaries
ffmpeg -v error -y -f lavfi -i testsrc2=s=96x72:r=25:d=1.2 -vf format=gray -c:v mpeg4 -bf 2 -g 12 "$tmp/bframes.avi" \
  || { echo "FAIL make bframes.avi"; fail=$((fail+1)); }
printf 'version: 1\ninput: bframes.avi\noutput: bframes.mkv\ndefault_reference: concat:ref.png\ninference_size: [32, 48]\nshots: {detect: off}\nchunks: {length: 10, warmup: 2}\n' >"$tmp/bframes.yaml"
expect "an AVI with B-frames" 0 -- timeout 300 "$vf" run "$tmp/bframes.yaml" --quiet
# frame i of the colour film has the luma of frame i of the grey one (the pipeline keeps the
# film's tones), and not that of its neighbours: the frames are in the input's order
python3 - "$tmp/bframes.avi" "$tmp/bframes.mkv" <<'PY' && pass=$((pass+1)) || { echo "FAIL bframes.mkv: frames out of order"; fail=$((fail+1)); }
import subprocess, sys
def frames(p):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", p, "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True).stdout
    n = 96 * 72
    return [raw[i:i + n] for i in range(0, len(raw), n)]
def mad(x, y):
    return sum(abs(a - b) for a, b in zip(x, y)) / len(x)
a, b = frames(sys.argv[1]), frames(sys.argv[2])
assert len(a) == len(b) == 30, (len(a), len(b))
same = [mad(x, y) for x, y in zip(a, b)]
shifted = [mad(x, y) for x, y in zip(a[1:], b)]
assert max(same) < 0.5 and min(shifted) > 1, (max(same), min(shifted))   # 0 and 2.1 here
PY
# H.264 in AVI: without B-frames its dts are its times (frame 0 at 0, not a frame late); with
# them nothing can tell its presentation order, and the probe says so before any work
for bf in 0 2; do
  ffmpeg -v error -y -f lavfi -i testsrc2=s=96x72:r=25:d=0.8 -c:v libx264 -bf $bf "$tmp/h264_bf$bf.avi" \
    || { echo "FAIL make h264_bf$bf.avi"; fail=$((fail+1)); }
done
expect "H.264 in AVI, no B-frames" 0 -- "$vf" probe "$tmp/h264_bf0.avi" --json
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert (d['frames'], d['start_pts']) == (20, 0), (d['frames'], d['start_pts'])" "$tmp/out" \
  && pass=$((pass+1)) || { echo "FAIL h264_bf0.avi: not 20 frames from pts 0"; fail=$((fail+1)); }
expect "H.264 in AVI with B-frames" 3 "h264_bf2.avi: its h264 frames are stored without presentation times and reordered" "-c:v ffv1" -- "$vf" probe "$tmp/h264_bf2.avi"

# a stream whose frames change size mid-way is refused by name, with what to do
for sz in 64x48 96x72; do
  ffmpeg -v error -y -f lavfi -i testsrc2=s=$sz:r=25:d=0.4 -c:v libx264 -bf 0 -f h264 "$tmp/p$sz.h264"
done
cat "$tmp/p64x48.h264" "$tmp/p96x72.h264" >"$tmp/p12.h264"
ffmpeg -v error -y -framerate 25 -i "$tmp/p12.h264" -c copy "$tmp/resized.mkv"
ffmpeg -v error -y -f lavfi -i testsrc2=s=64x48:r=25:d=0.8 -c:v ffv1 "$tmp/truth64.mkv"
expect "a size change mid-stream" 3 "resized.mkv: frame 10 is 96x72" "stream began 64x48" "scale=64:48" -- "$vf" eval --truth "$tmp/truth64.mkv" --output "$tmp/resized.mkv"

# a video as a reference: its first frame is used, and plan says so
printf 'version: 1\ninput: short.mkv\noutput: o.mkv\ndefault_reference: bframes.avi\n' >"$tmp/vidref.yaml"
expect "a video as the reference" 0 "reference $tmp/bframes.avi is a video of 30 frames: its first frame is the reference" "-frames:v 1 ref.png" -- "$vf" plan "$tmp/vidref.yaml"

# a reference that is a pipe is refused at once (opening it would wait for a writer)
mkfifo "$tmp/ref_pipe.png"
printf 'version: 1\ninput: short.mkv\noutput: o.mkv\ndefault_reference: ref_pipe.png\n' >"$tmp/fifo.yaml"
expect "a reference that is a FIFO" 3 "default_reference: $tmp/ref_pipe.png is a pipe (FIFO), not a file" -- timeout 20 "$vf" plan "$tmp/fifo.yaml"
# an output that is a file the run manages in its work folder (a segment's place, its journal) is
# refused; one beside them is not
mkdir -p "$tmp/wd/segments"
for out in wd/segments/00000.mkv wd/journal; do
  printf 'version: 1\ninput: short.mkv\noutput: %s\nwork_dir: wd\ndefault_reference: concat:ref.png\n' "$out" >"$tmp/inwd.yaml"
  expect "output $out" 3 "is one of the files of work_dir" "write the output elsewhere" -- "$vf" plan "$tmp/inwd.yaml"
done
printf 'version: 1\ninput: short.mkv\noutput: wd/film.mkv\nwork_dir: wd\ndefault_reference: concat:ref.png\n' >"$tmp/inwd.yaml"
expect "an output beside the work files" 0 -- "$vf" plan "$tmp/inwd.yaml"

# output that cannot be written (a full disk) is an I/O error, in text as in JSON
for cmd in "probe|$film" "probe|$film|--json" "plan|$tmp/fonts.yaml" "eval|--truth|$tmp/short.mkv|--output|$tmp/short.mkv"; do
  IFS='|' read -r -a args <<<"$cmd"
  "$vf" "${args[@]}" >/dev/full 2>"$tmp/err"; rc=$?
  [ $rc = 6 ] && grep -q "could not write to standard output" "$tmp/err" && pass=$((pass+1)) \
    || { echo "FAIL $cmd >/dev/full: exit $rc (want 6)"; cat "$tmp/err"; fail=$((fail+1)); }
done
# a run (here one that resumes every chunk) whose summary cannot be written: the film is done,
# the summary is part of its result as for any verb
"$vf" run "$tmp/bframes.yaml" >/dev/full 2>"$tmp/err"; rc=$?
[ $rc = 6 ] && grep -q "the film is done ($tmp/bframes.mkv), but its summary could not be written" "$tmp/err" \
  && [ -s "$tmp/bframes.mkv" ] && pass=$((pass+1)) \
  || { echo "FAIL run >/dev/full: exit $rc (want 6)"; cat "$tmp/err"; fail=$((fail+1)); }

echo "messages: $log"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
