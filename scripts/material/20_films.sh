#!/usr/bin/env bash
# Test material (tests/MATERIAL.md): test films with known cuts, made from OUTDIR/photos (10_fetch.sh).
#   films/<name>_color.mkv   ground truth: FFV1 (level 3, every frame a keyframe), yuv444p, BT.601
#                            limited range (tagged smpte170m/tv), 25 fps, FLAC 48 kHz audio
#   films/<name>_grey.mkv    the input: FFV1 gray, its samples exactly the colour file's Y plane
#                            (extractplanes=y, so bit-exact), same audio (stream copy)
#   films/<name>.json        frames, fps, size, cuts, shots (see tests/MATERIAL.md)
#   films/<name>_ref_K.png   RGB24 PNG of shot K's first colour frame (BT.601 limited -> RGB)
# Films (each shot one photo with a camera move made by zoompan, hard cuts between shots):
#   film  320x180, 6 shots, 300 frames (12 s): the standard test film; a sine tone per shot
#   hard  320x180, 7 shots, 275 frames: cuts between photos of like brightness and content (and one
#         between two framings of the same photo), and a fast zoom (x2.2 in 10 frames) inside shot 3
#         that is not a cut (listed in "fast_motion"); pink noise audio
#   many  240x180 (4:3), 20 shots of 12..24 frames, 335 frames; a sine tone per shot
#   city  cityCC0.mpg (real footage, 720x405, 25 fps, 190 frames, no audio): city_grey.mkv (FFV1
#         gray, its luma), city.json with the one real cut at frame 116, city_ref_0.png and
#         city_ref_1.png; the colour truth is OUTDIR/clips/cityCC0.mpg itself (its frames in
#         presentation order: the grey's frame n is the clip's decoded frame n).
# Deterministic: bitexact muxing, fixed seeds, no random UIDs: the same bytes on every run with the
# same FFmpeg. Idempotent: a film whose .json exists is kept (the .json is renamed into place last). Each film is checked as it is made: exact frame counts
# (ffprobe -count_frames) = the sum of the shot lengths, colour really colourful, grey really grey
# and equal to the colour's luma.
set -euo pipefail
out=${1:?usage: 20_films.sh OUTDIR}
photos=$out/photos
dir=$out/films
mkdir -p "$dir"
[ -s "$photos/00.png" ] || { echo "20_films: no photos in $photos (run 10_fetch.sh first)" >&2; exit 1; }
# Everything is made in a private folder and renamed into place when checked, so a half-made film
# never counts as done, and two runs at once into the same OUTDIR do not tread on each other.
work=$(mktemp -d "$dir/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y -threads 2)
bitexact=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact)
ffv1=(-c:v ffv1 -level 3 -g 1 -slices 4 -slicecrc 1)
tags=(-colorspace smpte170m -color_range tv)
torgb="scale=in_color_matrix=bt601:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24"

die() { echo "20_films: $*" >&2; exit 1; }

# y_md5 FILE OUT [sat]: per-frame md5 of the luma (or gray) plane, one line per decoded
# frame ("pts,md5"), into OUT; with a third argument, also the mean saturation over all frames
# (signalstats SATAVG, 8-bit scale) into OUT.sat. One decoding pass.
y_md5() {
  local f=$1 o=$2
  if [ $# -gt 2 ]; then
    "${ff[@]}" -i "$f" -map 0:v -vf extractplanes=y -f framemd5 "$o.md5" \
      -map 0:v -vf "signalstats,metadata=print:key=lavfi.signalstats.SATAVG:file='$o.log'" -f null -
    sed -n 's/^lavfi.signalstats.SATAVG=//p' "$o.log" | awk '{s += $1; n++} END {printf "%.3f\n", n ? s / n : 0}' >"$o.sat"
  else
    "${ff[@]}" -i "$f" -map 0:v -f framemd5 "$o.md5"
  fi
  grep -v '^#' "$o.md5" | awk -F, '{gsub(/ /, ""); print $3 "," $6}' >"$o"
}
# check_pair NAME FRAMES COLOUR GREY: the colour is colourful, the grey is gray and equal to the
# colour's luma frame for frame (same timestamps), both have FRAMES frames (decoded and in packets).
check_pair() {
  local name=$1 frames=$2 c=$3 g=$4 t n s pf
  t=$(mktemp -d "$work/check.XXXXXX")
  y_md5 "$c" "$t/c" sat
  y_md5 "$g" "$t/g"
  s=$(cat "$t/c.sat")
  awk -v s="$s" 'BEGIN {exit !(s >= 8)}' || die "$name: colour output is not colourful (SATAVG $s)"
  for f in "$t/c" "$t/g"; do
    n=$(wc -l <"$f")
    [ "$n" = "$frames" ] || die "$name: $f decodes to $n frames, expected $frames"
  done
  for f in "$c" "$g"; do
    case $f in *.mkv) ;; *) continue ;; esac   # packets = frames in Matroska (FFV1: intra)
    n=$(ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets \
      -of csv=p=0 "$f" | tr -d ', \n')
    [ "$n" = "$frames" ] || die "$name: $(basename "$f") has $n packets, expected $frames"
  done
  pf=$(ffprobe -v error -select_streams v:0 -show_entries stream=pix_fmt -of csv=p=0 "$g" | tr -d ', \n')
  [ "$pf" = gray ] || die "$name: grey output is $pf, not gray"
  cmp -s "$t/c" "$t/g" || die "$name: grey is not the colour's luma"
  rm -rf "$t"
}

# move_expr MOVE LEN: zoompan "z:x:y" expressions (scripts/lib/moves.sh)
. "$(dirname "$0")/../lib/moves.sh"

# make_film NAME W H AUDIO SHOTS...   (each shot "PHOTO MOVE LEN"; AUDIO: tones | noise)
make_film() {
  local name=$1 w=$2 h=$3 audio=$4; shift 4
  [ -s "$dir/$name.json" ] && return 0
  local inputs=() graph="" cat="" k=0 start=0 frames=0 spec photo move len z x y freq
  local starts=() lens=() photos_used=() moves=() fast=()
  local sw=$((w * 4)) sh=$((h * 4))   # zoompan crops from a 4x image: smooth sub-pixel moves
  for spec in "$@"; do
    read -r photo move len <<<"$spec"
    [ -s "$photos/$photo.png" ] || die "$name: no photo $photo.png"
    inputs+=(-i "$photos/$photo.png")
    IFS=: read -r z x y < <(move_expr "$move" "$len")
    graph+="[$k:v]scale=$sw:$sh:force_original_aspect_ratio=increase:out_color_matrix=bt601:out_range=tv"
    graph+=":flags=bicubic+accurate_rnd+full_chroma_int,crop=$sw:$sh,format=yuv444p,"
    graph+="zoompan=z='$z':x='$x':y='$y':d=$len:s=${w}x$h:fps=25,setsar=1[v$k];"
    if [ "$audio" = noise ]; then
      graph+="anoisesrc=color=pink:amplitude=0.25:sample_rate=48000:seed=$((1000 + k)),"
    else
      freq=$((300 + 110 * k))
      graph+="sine=frequency=$freq:sample_rate=48000,volume=0.5,"
    fi
    graph+="atrim=end_sample=$((len * 1920)),asetpts=N/SR/TB[a$k];"
    cat+="[v$k][a$k]"
    starts+=("$start"); lens+=("$len"); photos_used+=("$photo"); moves+=("$move")
    [ "$move" = fast_zoom ] && fast+=("[$((start + 20)),$((start + 31))]")
    start=$((start + len)); k=$((k + 1))
  done
  frames=$start
  # One pass makes the colour film, its grey twin (extractplanes=y: exactly the colour's Y plane)
  # and the references (each shot's first colour frame). The split's branches all take yuv444p
  # (no format=gray after a split: see DATA.md's trap); check_pair verifies the result.
  local sel="" i
  for i in "${starts[@]}"; do sel+="${sel:++}eq(n\\,$i)"; done
  graph+="${cat}concat=n=$k:v=1:a=1[v][a];[v]format=yuv444p,split=3[vc][vg0][vr0];"
  graph+="[vg0]extractplanes=y[vg];[vr0]select='$sel',${torgb}[vr];[a]asplit[ac][ag]"
  local c="$work/${name}_color.mkv" g="$work/${name}_grey.mkv"
  rm -f "$work/${name}_ref_"*.png
  "${ff[@]}" "${inputs[@]}" -filter_complex "$graph" \
    -map "[vc]" -map "[ac]" "${ffv1[@]}" -pix_fmt yuv444p "${tags[@]}" -c:a flac "${bitexact[@]}" \
      -metadata title="vaefarm test film $name (colour)" "$c" \
    -map "[vg]" -map "[ag]" "${ffv1[@]}" -pix_fmt gray "${tags[@]}" -c:a flac "${bitexact[@]}" \
      -metadata title="vaefarm test film $name (grey)" "$g" \
    -map "[vr]" -fps_mode passthrough -start_number 0 -f image2 "$work/${name}_ref_%d.png"
  check_pair "$name" "$frames" "$c" "$g"
  [ -s "$work/${name}_ref_$((k - 1)).png" ] && [ ! -e "$work/${name}_ref_$k.png" ] \
    || die "$name: wrong number of reference frames"

  local cuts="" shots="" fm=""
  for ((i = 0; i < k; i++)); do
    [ "$i" -gt 0 ] && cuts+="${cuts:+,}${starts[$i]}"
    shots+="${shots:+,}"$'\n    '"{\"start\":${starts[$i]},\"end\":$((starts[i] + lens[i])),"
    shots+="\"reference\":\"${name}_ref_$i.png\",\"photo\":\"${photos_used[$i]}.png\",\"move\":\"${moves[$i]}\"}"
  done
  fm=$(IFS=,; echo "${fast[*]}")
  for ((i = 0; i < k; i++)); do mv "$work/${name}_ref_$i.png" "$dir/${name}_ref_$i.png"; done
  mv "$c" "$dir/${name}_color.mkv"
  mv "$g" "$dir/${name}_grey.mkv"
  printf '{"frames":%d,"fps":[25,1],"width":%d,"height":%d,"cuts":[%s],\n  "fast_motion":[%s],\n  "shots":[%s\n  ]}\n' \
    "$frames" "$w" "$h" "$cuts" "$fm" "$shots" >"$work/$name.json"
  mv "$work/$name.json" "$dir/$name.json"
}

# The standard test film: 6 shots, one short (15), one long (150), all six kinds of move.
make_film film 320 180 tones \
  "00 zoom_in 50" "03 pan_right 15" "07 pan_left 150" "15 zoom_out 30" "01 tilt_down 20" \
  "14 tilt_up 35"

# Hard cuts to find: Eze -> ruins (both brown hillsides, like colours), ruins -> the same ruins
# reframed, then photos of nearly equal mean luma (signalstats YAVG at 320x180: 10 136, 22 137,
# 19 135, 16 140), and a fast zoom inside shot 3 (frames 140..150, "fast_motion":[[140,151]])
# that is not a cut.
make_film hard 320 180 noise \
  "12 pan_right 50" "13 pan_right 40" "13 reframe 30" "10 fast_zoom 75" "22 zoom_out 15" \
  "19 tilt_down 40" "16 pan_left 25"

# Many short shots, 4:3: photo 5k mod 24 for shot k (20 different photos), the moves in turn.
many_lens=(14 20 12 18 24 15 12 22 16 13 19 12 21 17 14 23 12 16 20 15)
many_moves=(zoom_in pan_right tilt_down zoom_out pan_left tilt_up diagonal)
many=()
for ((k = 0; k < ${#many_lens[@]}; k++)); do
  many+=("$(printf %02d $((5 * k % 24))) ${many_moves[$((k % 7))]} ${many_lens[$k]}")
done
make_film many 240 180 tones "${many[@]}"

# --- city: real footage with one real cut ---------------------------------------------------
# The cut: cityCC0.mpg has 190 frames (ffprobe -count_frames), counted in presentation order from
# 0. FFmpeg's scene score (select='gte(scene,0)', lavfi.scene_score) is 0.41 at frame 116 and at
# most 0.07 at every other frame (0.05 at 117, 0.07 at frame 1); scdet agrees. Frames 113..120
# extracted as PNGs and looked at: 113-115 are one shot (looking up at several towers, greenish
# windows, purple sky), 116 onwards another (two tall towers against a dark blue sky). So the only
# cut is at frame 116 (the first frame of the second shot): shots [0,116) and [116,190).
city_cut=116
city_frames=190
if [ ! -s "$dir/city.json" ]; then
  src=$out/clips/cityCC0.mpg
  [ -s "$src" ] || die "no $src (run 10_fetch.sh first)"
  g="$work/city_grey.mkv"
  # The colour truth is the clip itself. -fps_mode passthrough: no frame dropped or duplicated;
  # the grey starts at 0 (FFmpeg drops the MPEG-PS start offset of 0.54 s), 25 fps, 40 ms a frame.
  rm -f "$work/city_ref_"*.png
  "${ff[@]}" -i "$src" -filter_complex \
    "[0:v]split[a][b];[a]extractplanes=y[g];[b]select='eq(n\\,0)+eq(n\\,$city_cut)',${torgb}[r]" \
    -map "[g]" -fps_mode passthrough "${ffv1[@]}" -pix_fmt gray -color_range tv "${bitexact[@]}" \
      -metadata title="cityCC0 (grey)" "$g" \
    -map "[r]" -fps_mode passthrough -start_number 0 -f image2 "$work/city_ref_%d.png"
  check_pair city "$city_frames" "$src" "$g"
  for i in 0 1; do mv "$work/city_ref_$i.png" "$dir/city_ref_$i.png"; done
  mv "$g" "$dir/city_grey.mkv"
  printf '{"frames":%d,"fps":[25,1],"width":720,"height":405,"cuts":[%d],\n  "fast_motion":[],\n  "truth":"../clips/cityCC0.mpg",\n  "shots":[\n    {"start":0,"end":%d,"reference":"city_ref_0.png"},\n    {"start":%d,"end":%d,"reference":"city_ref_1.png"}\n  ]}\n' \
    "$city_frames" "$city_cut" "$city_cut" "$city_cut" "$city_frames" >"$work/city.json"
  mv "$work/city.json" "$dir/city.json"
fi
