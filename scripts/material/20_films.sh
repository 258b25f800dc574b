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
torgb="scale=in_color_matrix=bt601:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24"

die() { echo "20_films: $*" >&2; exit 1; }

# y_md5, check_pair, make_film NAME W H AUDIO SHOTS... (scripts/lib/films.sh)
. "$(dirname "$0")/../lib/films.sh"

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
