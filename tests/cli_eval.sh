#!/usr/bin/env bash
# `vaefarm eval` end to end (docs/EVAL.md) on cuts of the standard test film:
#   - golden values: against tests/eval_ref.py (the metrics again in numpy float64) on planar RGB
#     clips (gbrp, gbrp16le: both sides read the same samples), film summary and every frame.
#     Tolerances: R′G′B′ metrics and colourfulness 1e-7 relative (the JSON has 10 significant
#     digits); ab MSE and flicker 1e-5 relative, ab PSNR 1e-4 dB, ab SSIM 1e-5 (vaefarm's Lab is
#     float32, the network's own; seen: 1.4e-7, 1e-7, 6e-7 dB, 4e-8); worst-frame indices equal
#   - a film against itself: PSNR at the 100 dB cap, SSIM 1, the two colourfulness and flicker
#     values equal; --threads 1 and 2 give the same document
#   - against a desaturated copy (ffmpeg hue=s=0): colourfulness ~0 and flicker ~0 for the output
#     beside the truth's own, lower PSNR/SSIM; other pixel formats (H.264 4:2:0, 10-bit, grey)
#   - shots: --cuts against eval_ref.py's per-shot figures (each shot's flicker without its
#     cut); --shots FILM.yaml gives the same document as --cuts at its plan's shot starts; the
#     film's own figures do not change with shots; bad --cuts / --shots (exit 2, 3, 4)
#   - errors: frame counts or sizes that differ (exit 3, both files named, what to do), a
#     missing file (exit 4), not a video (exit 5), bad command lines (exit 2), frames smaller
#     than the SSIM window (exit 3); --json: one document on stdout, nothing else there
# Usage: cli_eval.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -uo pipefail
vf=$1; data=$2; src=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
ff() { ffmpeg -loglevel error -y "$@"; }
color="$data/films/film_color.mkv"

# expect NAME EXIT SUBSTRING... -- CMD...: exit code and every SUBSTRING in stderr (any case)
expect() {
  local name=$1 want=$2; shift 2
  local subs=()
  while [ "$1" != "--" ]; do subs+=("$1"); shift; done; shift
  "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
  local good=1
  [ "$got" = "$want" ] || good=0
  for s in "${subs[@]}"; do grep -qiF -- "$s" "$tmp/err" || good=0; done
  if [ $good = 1 ]; then ok "$name"
  else bad "$name: exit $got (want $want), wanted: ${subs[*]}"; cat "$tmp/err"; fi
}

# --- the clips
ff -i "$color" -frames:v 8 -vf format=gbrp -c:v ffv1 "$tmp/t8.mkv" &&
ff -i "$color" -frames:v 8 -vf "hue=h=25:s=0.6,gblur=sigma=0.8,format=gbrp" -c:v ffv1 "$tmp/o8.mkv" &&
ff -i "$color" -frames:v 8 -vf "hue=h=-15:s=1.3,format=gbrp16le" -c:v ffv1 "$tmp/o16.mkv" &&
ff -i "$color" -ss 2.4 -frames:v 8 -vf format=gbrp16le -c:v ffv1 "$tmp/t16.mkv" &&
ff -i "$color" -frames:v 12 -c:v ffv1 "$tmp/truth.mkv" &&
ff -i "$color" -frames:v 12 -vf hue=s=0 -c:v ffv1 "$tmp/desat.mkv" &&
ff -i "$color" -frames:v 11 -c:v ffv1 "$tmp/short.mkv" &&
ff -i "$color" -frames:v 12 -vf scale=160:90 -c:v ffv1 "$tmp/small.mkv" &&
ff -i "$color" -frames:v 12 -c:v libx264 -pix_fmt yuv420p -crf 20 "$tmp/h264.mkv" &&
ff -i "$color" -frames:v 12 -c:v ffv1 -pix_fmt yuv420p10le "$tmp/deep.mkv" &&
ff -i "$data/films/film_grey.mkv" -frames:v 12 -c:v copy "$tmp/grey.mkv" &&
ff -i "$color" -frames:v 1 -c:v ffv1 "$tmp/one.mkv" &&
ff -i "$color" -frames:v 3 -vf scale=8:8 -c:v ffv1 "$tmp/tiny.mkv" \
  || { bad "make the clips"; exit 1; }
echo "not a video" >"$tmp/text.mkv"

all_in() { local f=$1; shift; for s in "$@"; do grep -qF -- "$s" "$f" || return 1; done; }
all_in_out() { all_in "$tmp/out" "$@"; }

# --- golden values against the numpy reference
golden() { # NAME TRUTH OUTPUT [CUTS]
  local cuts=(); [ -n "${4:-}" ] && cuts=(--cuts "$4")
  "$vf" eval --truth "$2" --output "$3" --json --per-frame "${cuts[@]}" >"$tmp/c.json" 2>"$tmp/c.err" \
    || { bad "$1: vaefarm eval failed: $(cat "$tmp/c.err")"; return; }
  /usr/bin/python3 "$src/tests/eval_ref.py" videos "$2" "$3" "${cuts[@]}" >"$tmp/p.json" \
    || { bad "$1: eval_ref.py failed"; return; }
  check "$1: vaefarm eval = numpy reference (film and every frame)" \
    /usr/bin/python3 - "$tmp/c.json" "$tmp/p.json" <<'PY'
import json, sys
c, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
TOL = {  # key: (kind, tolerance)
    "psnr_rgb": ("rel", 1e-7), "ssim_rgb": ("rel", 1e-7), "mse_rgb": ("rel", 1e-7),
    "colourfulness_output": ("rel", 1e-7), "colourfulness_truth": ("rel", 1e-7),
    "psnr_ab": ("abs", 1e-4), "ssim_ab": ("abs", 1e-5), "mse_ab": ("rel", 1e-5),
    "flicker_output": ("rel", 1e-5), "flicker_truth": ("rel", 1e-5)}
bad = []
def cmp(where, key, a, b):
    kind, tol = TOL[key]
    if a is None or b is None:
        if not (a is None and b is None): bad.append((where, key, a, b))
        return
    err = abs(a - b) / (max(abs(b), 1.0) if kind == "rel" else 1.0)
    if err > tol: bad.append((where, key, a, b, err))
assert c["frames"] == p["frames"] == len(c["per_frame"]) == len(p["per_frame"])
def span(where, c, p):
    for kind in ("rgb", "ab"):
        for k in ("psnr", "psnr_min", "psnr_pooled", "ssim", "ssim_min", "mse"):
            base = k.split("_")[0]
            cmp(where, base + "_" + kind, c[kind][k], p[kind][k])
        for k in ("psnr_min_frame", "ssim_min_frame"):
            if c[kind][k] != p[kind][k]: bad.append((where, kind, k, c[kind][k], p[kind][k]))
    for k in ("output", "truth"):
        cmp(where, "colourfulness_" + k, c["colourfulness"][k], p["colourfulness"][k])
        cmp(where, "flicker_" + k, c["flicker"][k], p["flicker"][k])
span("film", c, p)
for k in ("output", "truth"):   # without cuts: the film's own flicker
    cmp("film in shots", "flicker_" + k, c["flicker"][k + "_in_shots"], p["flicker"][k + "_in_shots"])
if "shots" in p:
    assert c["shots_from"].startswith("--cuts ") and len(c["shots"]) == len(p["shots"]), c["shots"]
    for sc, sp in zip(c["shots"], p["shots"]):
        for k in ("shot", "start", "end", "frames"):
            if sc[k] != sp[k]: bad.append(("shot", k, sc[k], sp[k]))
        span("shot %d" % sc["shot"], sc, sp)
else:
    assert c["shots"] == [] and c["shots_from"] is None, (c["shots"], c["shots_from"])
for fc, fp in zip(c["per_frame"], p["per_frame"]):
    assert fc["frame"] == fp["frame"]
    for k in TOL:
        cmp("frame %d" % fc["frame"], k, fc[k], fp[k])
if bad:
    for b in bad: print("  mismatch:", b)
    sys.exit(1)
PY
}
golden "8-bit RGB" "$tmp/t8.mkv" "$tmp/o8.mkv"
golden "8-bit truth, 16-bit output" "$tmp/t8.mkv" "$tmp/o16.mkv"
golden "16-bit truth, 8-bit output" "$tmp/t16.mkv" "$tmp/o8.mkv"
golden "shots (--cuts 3,5,7: a one-frame shot at 7)" "$tmp/t8.mkv" "$tmp/o8.mkv" 3,5,7

# --- shots from a film.yaml: its plan's shots, the same figures as --cuts at their starts
ff -i "$tmp/t8.mkv" -frames:v 1 "$tmp/ref.png" || bad "make the reference"
printf '%s\n' "version: 1" "input: t8.mkv" "output: out/colour.mkv" "shots:" "  list:" \
  "    - { start: 0, end: 3, reference: ref.png }" "    - { start: 3, end: 8, reference: ref.png }" \
  >"$tmp/film8.yaml"
sed 's/t8.mkv/truth.mkv/; s/end: 8/end: 12/' "$tmp/film8.yaml" >"$tmp/film12.yaml"
"$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --shots "$tmp/film8.yaml" --json >"$tmp/sy.json" 2>"$tmp/sy.err"
check "--shots FILM.yaml: exit 0, nothing on stderr" test $? = 0 -a ! -s "$tmp/sy.err"
"$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --cuts 3 --json >"$tmp/sc.json"
check "--shots FILM.yaml = --cuts at its shots' starts; the film's figures as without shots" \
  python3 - "$tmp/sy.json" "$tmp/sc.json" "$tmp/c.json" <<'PY'
import json, sys
y, c, cuts3 = (json.load(open(p)) for p in sys.argv[1:])
assert y["shots_from"].startswith("--shots ") and y["shots_from"].endswith("film8.yaml"), y["shots_from"]
assert c["shots_from"] == "--cuts 3", c["shots_from"]
assert [(s["start"], s["end"], s["frames"]) for s in y["shots"]] == [(0, 3, 3), (3, 8, 5)], y["shots"]
y["shots_from"] = c["shots_from"]
assert y == c
for k in ("rgb", "ab", "colourfulness"):   # golden's last run: the same films, --cuts 3,5,7
    assert y[k] == cuts3[k], k
f, f3 = y["flicker"], cuts3["flicker"]
assert f["output"] == f3["output"] and f["truth"] == f3["truth"]
assert f["output_in_shots"] != f["output"], f   # frame 3's jump left out
PY
expect "--shots: the human table has a row per shot" 0 \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --shots "$tmp/film8.yaml"
check "--shots: rows 0-3 and 3-8, within-shots flicker" all_in_out "Per shot" " 0-3 " " 3-8 " "within shots"

# --- a film against itself
expect "self (human table)" 0 -- "$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/truth.mkv"
check "self: the table has its rows" all_in "$tmp/out" "PSNR RGB" "SSIM ab" "colourfulness" "flicker" "capped at 100"
"$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/truth.mkv" --json --threads 1 >"$tmp/self1.json" 2>"$tmp/self.err"
rc=$?
check "self --json: exit 0, nothing on stderr" test "$rc" = 0 -a ! -s "$tmp/self.err"
check "self --json: one document, PSNR capped, SSIM 1, equal colourfulness and flicker" \
  python3 - "$tmp/self1.json" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read())   # the whole of stdout is one document
assert d["frames"] == 12 and d["width"] == 320 and d["height"] == 180, d
for k in ("rgb", "ab"):
    assert d[k]["psnr"] == 100 and d[k]["psnr_min"] == 100 and d[k]["psnr_pooled"] == 100, d[k]
    assert abs(d[k]["ssim"] - 1) < 1e-12 and d[k]["mse"] == 0, d[k]
assert d["colourfulness"]["output"] == d["colourfulness"]["truth"] > 20, d["colourfulness"]
assert d["flicker"]["output"] == d["flicker"]["truth"] > 0, d["flicker"]
assert d["conventions"]["psnr_cap_db"] == 100
PY
"$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/truth.mkv" --json --threads 2 >"$tmp/self2.json"
check "--threads 1 and 2: the same document" cmp -s "$tmp/self1.json" "$tmp/self2.json"

# --- a desaturated copy, and other pixel formats
"$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/desat.mkv" --json >"$tmp/desat.json"
check "desaturated: exit 0" [ $? = 0 ]
check "desaturated: colourfulness and flicker ~0 beside the truth's, PSNR and SSIM lower" \
  python3 - "$tmp/desat.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c, f = d["colourfulness"], d["flicker"]
assert c["output"] < 1 and c["truth"] > 20, c
assert f["output"] < 0.05 and f["truth"] > 0.5, f
assert 10 < d["rgb"]["psnr"] < 30 and d["rgb"]["ssim"] < 0.99, d["rgb"]
assert 10 < d["ab"]["psnr"] < 35 and d["ab"]["ssim"] < 0.6, d["ab"]
assert 0 <= d["rgb"]["psnr_min_frame"] < 12
PY
for f in h264 deep grey; do
  "$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/$f.mkv" --json >"$tmp/$f.json"
  check "$f output ($(ffprobe -v error -show_entries stream=pix_fmt -of csv=p=0 "$tmp/$f.mkv")): exit 0, sensible PSNR" \
    python3 - "$tmp/$f.json" "$f" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); kind = sys.argv[2]
p = d["rgb"]["psnr"]
if kind == "grey":
    assert 10 < p < 30 and d["colourfulness"]["output"] < 0.01, d
else:   # a close copy: high but not identical
    assert 30 < p < 100 and d["rgb"]["ssim"] > 0.9, d
PY
done
"$vf" eval --truth "$tmp/one.mkv" --output "$tmp/one.mkv" --json >"$tmp/one.json"
check "one frame: flicker and its worst frame are null" python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); f=d['flicker']
assert d['frames']==1 and f['output'] is None and f['truth'] is None and f['output_max'] is None and f['output_max_frame'] is None, d
assert d['rgb']['psnr_min_frame'] == 0 and d['rgb']['ssim_min_frame'] == 0, d" "$tmp/one.json"
expect "--per-frame (human)" 0 -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --per-frame
check "--per-frame prints every frame" [ "$(grep -c '^  frame ' "$tmp/out")" = 8 ]

# --- errors
expect "frame counts differ" 3 "differ in length" "12 frames" "11" "short.mkv" "truth.mkv" \
  -- "$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/short.mkv"
expect "sizes differ" 3 "differ in size" "320x180" "160x90" "small.mkv" "scale" \
  -- "$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/small.mkv" --json
check "an error with --json: nothing on stdout" [ ! -s "$tmp/out" ]
expect "missing output" 4 "--output" "$tmp/nope.mkv" "does not exist" \
  -- "$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/nope.mkv"
expect "both missing: both named" 4 "--truth $tmp/nope1.mkv" "--output $tmp/nope2.mkv" \
  -- "$vf" eval --truth "$tmp/nope1.mkv" --output "$tmp/nope2.mkv"
expect "missing truth" 4 "--truth" "$tmp/nope.mkv" \
  -- "$vf" eval --truth "$tmp/nope.mkv" --output "$tmp/truth.mkv"
expect "not a video" 5 "text.mkv" -- "$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/text.mkv"
expect "frames smaller than the window" 3 "8x8" "11x11" \
  -- "$vf" eval --truth "$tmp/tiny.mkv" --output "$tmp/tiny.mkv"
expect "no --truth" 2 "--truth" "usage" -- "$vf" eval --output "$tmp/truth.mkv"
expect "no --output" 2 "--output" "usage" -- "$vf" eval --truth "$tmp/truth.mkv"
expect "unknown option" 2 "--frobnicate" -- "$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/truth.mkv" --frobnicate
expect "bad --threads" 2 "--threads" -- "$vf" eval --truth "$tmp/truth.mkv" --output "$tmp/truth.mkv" --threads x
expect "--cuts not increasing" 2 "--cuts" "increasing" "5,3" \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --cuts 5,3
expect "--cuts 0 (the first shot starts there anyway)" 2 "--cuts" \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --cuts 0
expect "--cuts not numbers" 2 "--cuts" "e.g." \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --cuts 3,x
expect "--cuts with a sign or a space" 2 "--cuts" "e.g." \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --cuts "3, +5"
expect "--cuts past the end" 3 "--cuts 8" "8 frames" \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --cuts 2,8
expect "--shots and --cuts together" 2 "give one" \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --cuts 2 --shots "$tmp/film8.yaml"
expect "--shots: a film.yaml of another length" 3 "--shots" "12 frames" "8" "film.yaml that made" \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --shots "$tmp/film12.yaml"
expect "--shots: no such film.yaml" 4 "--shots" "nope.yaml" \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --shots "$tmp/nope.yaml"
sed 's/ref.png/gone.png/g' "$tmp/film8.yaml" >"$tmp/noref.yaml"
expect "--shots: a reference that is not there" 4 "--shots" "gone.png" "shot 0" \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --shots "$tmp/noref.yaml"
sed 's/input: t8.mkv/input: gone.mkv/' "$tmp/film8.yaml" >"$tmp/noinput.yaml"
expect "--shots: an input that is not there" 4 "--shots" "input" "gone.mkv" \
  -- "$vf" eval --truth "$tmp/t8.mkv" --output "$tmp/o8.mkv" --shots "$tmp/noinput.yaml"
expect "--help lists eval" 0 -- "$vf" --help
grep -qF "vaefarm eval --truth VIDEO --output VIDEO [--shots FILM.yaml | --cuts F,...]" "$tmp/out" && ok "help shows eval's usage" || bad "help shows eval's usage"

echo "cli_eval: $pass passed, $fail failed"
[ "$fail" = 0 ]
