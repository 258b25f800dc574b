#!/usr/bin/env bash
# Test material: one short film in each input codec vaefarm must read frame-exactly
# (tests/MATERIAL.md). Output: OUTDIR/codecs/
#   h264.mkv      libx264, 3 B-frames with b-pyramid, open GOPs, keyint 24 with scene-cut
#   hevc.mkv      libx265, open GOPs (CRA + RASL pictures), 4 B-frames, keyint 24
#   mpeg2.ts      mpeg2video, 2 B-frames, open GOPs (mpeg2's default), MPEG-TS, MP2 audio
#   prores.mov    prores_ks, yuv422p10le (intra only, 10-bit luma)
#   ffv1.mkv      FFV1, yuv420p
#   ffv1_gray.mkv FFV1, gray (a grey input, the kind vaefarm colorizes)
#   mjpeg.avi     MJPEG, yuvj420p (full range), PCM audio
#   ffv1_rgb.mkv  FFV1 from gbrp (decodes as packed bgr0: an RGB input, luma is converted)
#   h264.mp4      h264.mkv's packets remuxed to MP4 (moov first, an edit list for the B-frame
#                 delay) with a 10:00:00:00 timecode track
#   trim.mp4      h264.mkv cut at 1.3 s without re-encoding (-ss 1.3 -c copy): an MP4 edit list
#                 hides the lead-in from the keyframe before 1.3 s (packets flagged discard), so
#                 the first frames shown are not keyframes and depend on hidden ones
#   vfr.mkv       variable frame rate: 25 fps, then 1/15 s per frame from frame 100 on
#                 (libx264 with B-frames; 200 frames)
#   audio_only.mka  no video stream at all (for probe's error path)
# Each file has an audio track. The source is OUTDIR/films/film_color.mkv when 20_films.sh has
# made it (its first 10 s), else a self-made 10 s 320x180 25 fps clip (testsrc2, then a zooming mandelbrot: one
# hard cut, steady motion). Idempotent: a file that exists is kept (files are written to a
# temporary name and renamed, so a half-written file never counts as done).
set -euo pipefail
out=${1:?usage: 30_codecs.sh OUTDIR}
dir=$out/codecs
mkdir -p "$dir"
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)

src=$out/films/film_color.mkv
if [ ! -f "$src" ]; then
  src=$dir/source.mkv
  if [ ! -f "$src" ]; then
    "${ff[@]}" \
      -f lavfi -i "testsrc2=s=320x180:r=25:d=5" \
      -f lavfi -i "mandelbrot=s=320x180:r=25:start_scale=2:end_scale=0.05:end_pts=5,trim=duration=5,setpts=PTS-STARTPTS" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
      -filter_complex "[0:v]format=yuv444p[a];[1:v]format=yuv444p[b];[a][b]concat=n=2:v=1:a=0[v]" \
      -map "[v]" -map 2:a -c:v ffv1 -c:a flac "$dir/.source.tmp.mkv"
    mv "$dir/.source.tmp.mkv" "$src"
  fi
fi

# make NAME EXT ARGS...: encode the source to $dir/NAME unless it is there already.
make() {
  local name=$1; shift
  [ -f "$dir/$name" ] && return 0
  local tmp=$dir/.tmp.$name
  "${ff[@]}" -t 10 -i "$src" -map 0:v:0 -map 0:a:0? "$@" "$tmp"
  mv "$tmp" "$dir/$name"
}

make h264.mkv -c:v libx264 -preset veryfast -pix_fmt yuv420p \
  -x264-params "bframes=3:b-pyramid=normal:open-gop=1:keyint=24:min-keyint=4:scenecut=40:b-adapt=0:log-level=error" \
  -c:a aac -b:a 96k
make hevc.mkv -c:v libx265 -preset fast -pix_fmt yuv420p \
  -x265-params "open-gop=1:bframes=4:keyint=24:min-keyint=4:scenecut=40:log-level=error" \
  -c:a aac -b:a 96k
make mpeg2.ts -c:v mpeg2video -q:v 4 -bf 2 -g 12 -pix_fmt yuv420p -c:a mp2 -b:a 128k -f mpegts
make prores.mov -c:v prores_ks -profile:v 2 -pix_fmt yuv422p10le -c:a pcm_s16le
make ffv1.mkv -c:v ffv1 -pix_fmt yuv420p -c:a flac
make ffv1_gray.mkv -c:v ffv1 -pix_fmt gray -c:a flac
make mjpeg.avi -c:v mjpeg -q:v 3 -pix_fmt yuvj420p -c:a pcm_s16le
make ffv1_rgb.mkv -c:v ffv1 -pix_fmt gbrp -c:a flac

if [ ! -f "$dir/h264.mp4" ]; then
  "${ff[@]}" -i "$dir/h264.mkv" -map 0 -c copy -movflags +faststart -timecode 10:00:00:00 \
    -f mp4 "$dir/.tmp.h264.mp4"
  mv "$dir/.tmp.h264.mp4" "$dir/h264.mp4"
fi

if [ ! -f "$dir/trim.mp4" ]; then
  "${ff[@]}" -ss 1.3 -i "$dir/h264.mkv" -map 0 -c copy -f mp4 "$dir/.tmp.trim.mp4"
  mv "$dir/.tmp.trim.mp4" "$dir/trim.mp4"
fi

if [ ! -f "$dir/vfr.mkv" ]; then
  "${ff[@]}" -t 10 -i "$src" -map 0:v:0 -map 0:a:0? -frames:v 200 \
    -vf "setpts='if(lt(N,100),N*0.04,4+(N-100)/15)/TB'" -fps_mode passthrough \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -x264-params "bframes=2:keyint=30:log-level=error" \
    -c:a flac -f matroska "$dir/.tmp.vfr.mkv"
  mv "$dir/.tmp.vfr.mkv" "$dir/vfr.mkv"
fi

if [ ! -f "$dir/audio_only.mka" ]; then
  "${ff[@]}" -i "$src" -map 0:a:0 -c:a flac -f matroska "$dir/.tmp.audio_only.mka"
  mv "$dir/.tmp.audio_only.mka" "$dir/audio_only.mka"
fi
