#!/usr/bin/env bash
# Test material (tests/MATERIAL.md): a 2-minute film, long/long.mkv, for whole-pipeline runs.
#   long/long.mkv    2880 frames, 24 fps (120 s), 256x144, SAR 1:1; a grey film as scanned b/w
#                    films usually come: FFV1 level 3, yuv420p with neutral chroma (U = V = 128),
#                    a keyframe every 24 frames (seeking must go back to one), BT.601 limited range.
#                    Stream 1: FLAC 48 kHz mono, one sine tone per shot (tone_hz in the json), so
#                    audio misaligned with the video shows. Stream 2: subtitles (SubRip, 6 cues,
#                    language eng). 4 chapters, at shot starts. Title metadata.
#   long/long.json   frames, fps, size, cuts, shots (as films/<name>.json), plus gop, tone_hz per
#                    shot, subtitle cues and chapters (see tests/MATERIAL.md)
#   long/long_ref_K.png  shot K's first frame in colour (RGB24 PNG), its reference
# 24 shots, one per photo (OUTDIR/photos/00..23.png), each with a camera move (zoompan), 12 to
# 600 frames long. Deterministic (bitexact muxing). Idempotent: kept when long.json exists.
set -euo pipefail
out=${1:?usage: 40_long.sh OUTDIR}
photos=$out/photos
dir=$out/long
mkdir -p "$dir"
[ -s "$dir/long.json" ] && exit 0
[ -s "$photos/23.png" ] || { echo "40_long: no photos in $photos (run 10_fetch.sh first)" >&2; exit 1; }
die() { echo "40_long: $*" >&2; exit 1; }
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y -threads 2)

w=256 h=144 fps=24 sr=48000 gop=24
spf=$((sr / fps))                     # audio samples per frame: 2000
lens=(96 240 48 600 72 24 144 120 36 192 60 84 300 48 12 96 120 72 24 180 60 36 96 120)
moves=(zoom_in pan_right tilt_down zoom_out pan_left tilt_up diagonal)
sw=$((w * 4)) sh=$((h * 4))

# move_expr MOVE LEN: zoompan "z:x:y" expressions (scripts/lib/moves.sh, shared with 20_films.sh)
. "$(dirname "$0")/../lib/moves.sh"

inputs=() graph="" cat="" sel="" starts=() tones=() start=0
for ((k = 0; k < ${#lens[@]}; k++)); do
  len=${lens[$k]} photo=$(printf %02d "$k") move=${moves[$((k % 7))]}
  inputs+=(-i "$photos/$photo.png")
  IFS=: read -r z x y < <(move_expr "$move" "$len")
  tone=$((200 + 75 * k))
  graph+="[$k:v]scale=$sw:$sh:force_original_aspect_ratio=increase:out_color_matrix=bt601:out_range=tv"
  graph+=":flags=bicubic+accurate_rnd+full_chroma_int,crop=$sw:$sh,format=yuv420p,"
  graph+="zoompan=z='$z':x='$x':y='$y':d=$len:s=${w}x$h:fps=$fps,setsar=1[v$k];"
  graph+="sine=frequency=$tone:sample_rate=$sr,volume=0.4,atrim=end_sample=$((len * spf)),asetpts=N/SR/TB[a$k];"
  cat+="[v$k][a$k]"
  sel+="${sel:++}eq(n\\,$start)"
  starts+=("$start"); tones+=("$tone")
  start=$((start + len))
done
frames=$start
[ "$frames" -eq $((120 * fps)) ] || die "shots add up to $frames frames, not $((120 * fps))"
n=${#lens[@]}
torgb="scale=in_color_matrix=bt601:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24"
# The grey film: lutyuv sets U and V to 128 and leaves Y as it is. The references come from the
# colour frames before it.
graph+="${cat}concat=n=$n:v=1:a=1[v][a];[v]split[vc][vr0];[vc]lutyuv=u=128:v=128[vg];"
graph+="[vr0]select='$sel',${torgb}[vr]"

tmp=$(mktemp -d "$dir/.long.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Subtitles (SubRip) and chapters (ffmetadata, time base 1/24 s: chapter k starts at a shot's first
# frame). Times: frame f starts at f/24 s.
ms() { printf '%02d:%02d:%02d,%03d' $(($1 / 3600000)) $(($1 / 60000 % 60)) $(($1 / 1000 % 60)) $(($1 % 1000)); }
cue_frames=(24 360 1000 1500 2100 2800)   # each cue shows for 48 frames (2 s)
cue_text=("vaefarm long test film" "Shot two: a slow pan" "A 600-frame shot (25 s)" \
          "Subtitles must survive the merge" "Almost done" "The end")
: >"$tmp/long.srt"; subs=""
for ((i = 0; i < ${#cue_frames[@]}; i++)); do
  a=$((cue_frames[i] * 1000 / fps)) b=$(((cue_frames[i] + 48) * 1000 / fps))
  printf '%d\n%s --> %s\n%s\n\n' $((i + 1)) "$(ms $a)" "$(ms $b)" "${cue_text[$i]}" >>"$tmp/long.srt"
  subs+="${subs:+,}"$'\n    '"{\"start_ms\":$a,\"end_ms\":$b,\"text\":\"${cue_text[$i]}\"}"
done
chap_shots=(0 4 12 19)        # chapters start at these shots
{ echo ";FFMETADATA1"; echo "title=vaefarm long test film"
  for ((i = 0; i < ${#chap_shots[@]}; i++)); do
    s=${starts[${chap_shots[$i]}]}
    if [ $((i + 1)) -lt ${#chap_shots[@]} ]; then e=${starts[${chap_shots[$((i + 1))]}]}; else e=$frames; fi
    printf '[CHAPTER]\nTIMEBASE=1/%d\nSTART=%d\nEND=%d\ntitle=Part %d\n' "$fps" "$s" "$e" $((i + 1))
  done; } >"$tmp/meta.txt"
chapters=""
for ((i = 0; i < ${#chap_shots[@]}; i++)); do
  chapters+="${chapters:+,}{\"start\":${starts[${chap_shots[$i]}]},\"title\":\"Part $((i + 1))\"}"
done

nin=${#inputs[@]}; nin=$((nin / 2))   # input index of the subtitles; metadata is the next one
"${ff[@]}" "${inputs[@]}" -i "$tmp/long.srt" -f ffmetadata -i "$tmp/meta.txt" \
  -filter_complex "$graph" \
  -map "[vg]" -map "[a]" -map "$nin:s" -map_metadata $((nin + 1)) -map_chapters $((nin + 1)) \
    -c:v ffv1 -level 3 -g "$gop" -slices 4 -slicecrc 1 -pix_fmt yuv420p \
    -colorspace smpte170m -color_range tv \
    -c:a flac -c:s subrip -metadata:s:a:0 language=eng -metadata:s:s:0 language=eng \
    -fflags +bitexact -flags:v +bitexact -flags:a +bitexact "$tmp/long.mkv" \
  -map "[vr]" -fps_mode passthrough -start_number 0 -f image2 "$tmp/long_ref_%d.png"

# Checks: exact frame count (decoded), neutral chroma, the streams, the audio length.
nf=$("${ff[@]}" -i "$tmp/long.mkv" -map 0:v \
       -vf "signalstats,metadata=print:key=lavfi.signalstats.SATMAX:file=-" -f null - \
     | sed -n 's/^lavfi.signalstats.SATMAX=//p' | awk '$1 != 0 {bad++} END {print NR, bad + 0}')
[ "$nf" = "$frames 0" ] || die "long.mkv: decoded frames / frames with chroma: $nf, expected $frames 0"
types=$(ffprobe -v error -show_entries stream=codec_type,codec_name -of csv=p=0 "$tmp/long.mkv" | tr '\n' ' ')
[ "$types" = "ffv1,video flac,audio subrip,subtitle " ] || die "long.mkv streams: $types"
ns=$("${ff[@]}" -i "$tmp/long.mkv" -map 0:a -f s16le - | wc -c)
[ "$ns" -eq $((frames * spf * 2)) ] || die "long.mkv: $((ns / 2)) audio samples, expected $((frames * spf))"
nc=$(ffprobe -v error -show_chapters -of csv=p=0 "$tmp/long.mkv" | wc -l)
[ "$nc" -eq ${#chap_shots[@]} ] || die "long.mkv: $nc chapters"
[ -s "$tmp/long_ref_$((n - 1)).png" ] && [ ! -e "$tmp/long_ref_$n.png" ] || die "wrong number of references"

cuts="" shots="" tj=""
for ((k = 0; k < n; k++)); do
  [ "$k" -gt 0 ] && cuts+="${cuts:+,}${starts[$k]}"
  shots+="${shots:+,}"$'\n    '"{\"start\":${starts[$k]},\"end\":$((starts[k] + lens[k])),"
  shots+="\"reference\":\"long_ref_$k.png\",\"photo\":\"$(printf %02d "$k").png\",\"move\":\"${moves[$((k % 7))]}\"}"
  tj+="${tj:+,}${tones[$k]}"
done
for ((k = 0; k < n; k++)); do mv "$tmp/long_ref_$k.png" "$dir/long_ref_$k.png"; done
mv "$tmp/long.mkv" "$dir/long.mkv"
{
  printf '{"frames":%d,"fps":[%d,1],"width":%d,"height":%d,"gop":%d,"cuts":[%s],"fast_motion":[],\n' \
    "$frames" "$fps" "$w" "$h" "$gop" "$cuts"
  printf '  "audio":{"codec":"flac","sample_rate":%d,"channels":1,"samples":%d},\n' "$sr" $((frames * spf))
  printf '  "tone_hz":[%s],\n' "$tj"
  printf '  "subtitles":[%s\n  ],\n' "$subs"
  printf '  "chapters":[%s],\n' "$chapters"
  printf '  "shots":[%s\n  ]}\n' "$shots"
} >"$tmp/long.json"
mv "$tmp/long.json" "$dir/long.json"
