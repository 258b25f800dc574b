#!/usr/bin/python3
"""Make a long test film for planning and scaling studies (docs/PLAN.md "Auto chunking").

Writes, in OUTDIR:
  film.mkv    N frames of FFmpeg's testsrc2 pattern, grey, tiny (64x36 by default), FFV1 at
              24 fps: a 240-frame clip made once and repeated by stream copy, so a 2-hour film
              (172,800 frames) takes about two seconds and 73 MB. `vaefarm probe` counts exactly
              N frames (every packet is a frame; the probe demuxes, it does not guess).
  ref.png     one 16x16 colour reference, the film's default_reference
  film.yaml   version 1, with an explicit shots.list (so nothing runs shot detection over the
              film), chunks {length, warmup}, and output/work_dir inside OUTDIR

Shot lengths are log-normal: ln(length) ~ Normal(mu, sigma) with mu = ln(mean) - sigma^2 / 2,
so the mean is `--mean-seconds` (8 s = 192 frames at 24 fps) whatever sigma; sigma (natural
log) defaults to 1.0, the spread of cutting rates in feature films (a shot of a quarter of
the mean is as common as one of 2.7 times the mean). Lengths are rounded to whole frames and
at least `--min-shot` frames (12: half a second); the last shot takes what is left, merged
into the one before it when that would be shorter than the minimum. Python's
random.Random(seed) makes the list, so a seed always gives the same film.yaml.

Usage:
  scripts/make_long_film.py OUTDIR [--frames 172800] [--fps 24] [--mean-seconds 8]
                            [--sigma 1.0] [--seed 1] [--min-shot 12] [--size 64x36]
                            [--chunks auto|N] [--warmup 16] [--ranks R]
Then e.g.  vaefarm plan OUTDIR/film.yaml --simulate 1024 --json
"""
import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile


def shot_lengths(frames, mean, sigma, seed, min_shot):
    rng = random.Random(seed)
    mu = math.log(mean) - sigma * sigma / 2
    out, total = [], 0
    while total < frames:
        n = max(min_shot, int(round(rng.lognormvariate(mu, sigma))))
        rest = frames - total
        if n >= rest or rest - n < min_shot:
            n = rest  # what would be left is too short for a shot: this one takes it
        out.append(n)
        total += n
    if len(out) > 1 and out[-1] < min_shot:
        out[-2] += out.pop()
    return out


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("make_long_film: %s failed:\n%s" % (" ".join(cmd), r.stderr.strip()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--frames", type=int, default=172800, help="frames in the film (default: 2 h at 24 fps)")
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--mean-seconds", type=float, default=8.0, help="mean shot length")
    ap.add_argument("--sigma", type=float, default=1.0, help="log-normal sigma (natural log)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-shot", type=int, default=12, help="shortest shot, frames")
    ap.add_argument("--size", default="64x36", help="WxH of the video")
    ap.add_argument("--chunks", default="auto", help="chunks.length: auto or a number of frames")
    ap.add_argument("--warmup", type=int, default=16, help="chunks.warmup")
    ap.add_argument("--ranks", type=int, default=0, help="write ranks: R into the film.yaml")
    a = ap.parse_args()
    if a.frames < 1 or a.fps < 1 or a.mean_seconds <= 0 or a.sigma < 0 or a.min_shot < 1:
        sys.exit("make_long_film: --frames, --fps, --mean-seconds and --min-shot must be positive")
    if a.chunks != "auto" and not (a.chunks.isdigit() and int(a.chunks) >= 1):
        sys.exit("make_long_film: --chunks is auto or a positive number of frames")
    if a.warmup < 0 or a.ranks < 0:   # the film.yaml vaefarm would refuse
        sys.exit("make_long_film: --warmup and --ranks must be 0 or more (--ranks 0: none written)")
    os.makedirs(a.outdir, exist_ok=True)
    film = os.path.join(a.outdir, "film.mkv")
    ref = os.path.join(a.outdir, "ref.png")

    # the video: one 240-frame FFV1 clip (intra-only, so any repeat point is a keyframe),
    # repeated by stream copy up to exactly --frames frames
    clip_frames = min(240, a.frames)
    with tempfile.TemporaryDirectory(dir=a.outdir) as tmp:
        clip = os.path.join(tmp, "clip.mkv")
        run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             "testsrc2=size=%s:rate=%d" % (a.size, a.fps), "-frames:v", str(clip_frames),
             "-pix_fmt", "gray", "-c:v", "ffv1", "-g", "1", clip])
        run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", clip,
             "-frames:v", str(a.frames), "-c", "copy", film])
    run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "color=c=0xc08040:size=16x16", "-frames:v", "1", ref])

    mean = a.mean_seconds * a.fps
    shots = shot_lengths(a.frames, mean, a.sigma, a.seed, a.min_shot)
    lines = [
        "# made by scripts/make_long_film.py %s" % " ".join(sys.argv[1:]),
        "# %d frames at %d fps, %d shots, log-normal lengths: mean %.1f s, sigma %.2f, seed %d"
        % (a.frames, a.fps, len(shots), a.mean_seconds, a.sigma, a.seed),
        "version: 1",
        "input: film.mkv",
        "output: out/film_color.mkv",
        "default_reference: ref.png",
    ]
    if a.ranks:
        lines.append("ranks: %d" % a.ranks)
    lines += ["chunks: {length: %s, warmup: %d}" % (a.chunks, a.warmup), "shots:", "  detect: off",
              "  list:"]
    at = 0
    for n in shots:
        lines.append("    - {start: %d, end: %d}" % (at, at + n))
        at += n
    assert at == a.frames
    os.makedirs(os.path.join(a.outdir, "out"), exist_ok=True)
    with open(os.path.join(a.outdir, "film.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d frames (%.1f min at %d fps), %d shots: mean %.1f frames, median %d, "
          "shortest %d, longest %d" % (os.path.join(a.outdir, "film.yaml"), a.frames,
                                       a.frames / a.fps / 60, a.fps, len(shots),
                                       statistics.mean(shots), statistics.median(shots),
                                       min(shots), max(shots)))


if __name__ == "__main__":
    main()
