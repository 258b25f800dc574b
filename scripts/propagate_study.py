#!/usr/bin/python3
"""What film-size propagation could add in the first frames after each shot's reference: an
estimate on the outputs of a scripts/quality.py run (evaluation or validation films).

    scripts/propagate_study.py --quality out/quality [--method model] [--weights 1,.75,.5,.25]
                               [--radius 6] [--patch 5] [--confidence S] [--subpixel]
                               [--films film,hard]

docs/QUALITY.md (session 25) found the model 0.6 to 2.8 dB under Farneback flow in the five
frames after a reference, and above it later: flow carries the reference's colours at the
film's size, the network only at its own. This prints, per film, the mean RGB PSNR of the
method's output (runs/<film>/<method>.mkv) and how it changes when, on the k-th frame after
each shot's reference (k = 1 .. len(weights)), its chroma is replaced in part (weight w_k) by
  - flow: the flow baseline's (runs/<film>/flow.mkv) frame, blended in R′G′B′ (both keep the
    film's luma);
  - match: the previous output frame's chroma (the blended one, so it chains from the
    reference) carried by block matching at the film's size: per pixel the displacement within
    ±radius whose patch × patch window of luma at t − 1 is closest (sum of squares, a
    1e-3·|d|² tie-break towards small moves) to the window at t; chroma in Y′CbCr (BT.601, full
    range), luma the output's own. With --confidence S, each pixel's share is also scaled by
    exp(−c / (patch² S²)), c its best match's sum of squares (luma on the 8-bit scale): a match
    that is off by S on average keeps e⁻¹ of its share. With --subpixel the move is refined to
    a fraction of a pixel by one Lucas–Kanade step over the window and the chroma sampled
    there bilinearly (the engine's propagate.subpixel, docs/NETWORK.md, does the same with
    clamped central differences).
It only reads the quality folder and writes nothing. An estimate, not the engine: vaefarm would
carry a, b in Lab and keep the luma by its own rule (docs/NETWORK.md, post-processing).
Needs numpy and ffmpeg (Debian's /usr/bin/python3).
"""
import argparse
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gain_by_position import quality_films, run_output  # noqa: E402

YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
RGB = np.linalg.inv(YCC)


def fail(msg):
    sys.exit("propagate_study: " + msg)


def frames(path, w, h):
    """Every frame of a video as (N, h, w, 3) float64 R′G′B′ (rgb24 converted as eval's
    decoder converts: swscale's bicubic, accurate rounding, full chroma), as stored: no frame
    duplicated or dropped to a constant rate."""
    r = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-map", "0:v:0",
                        "-fps_mode", "passthrough", "-sws_flags",
                        "bicubic+accurate_rnd+full_chroma_int", "-f", "rawvideo", "-pix_fmt",
                        "rgb24", "-"], capture_output=True)
    if r.returncode:
        fail("ffmpeg could not read %s: %s" % (path, r.stderr.decode(errors="replace").strip()))
    return np.frombuffer(r.stdout, np.uint8).reshape(-1, h, w, 3).astype(np.float64)


def box(x, p):
    """Sum over each p × p window centred on every pixel (edges replicated), p odd."""
    r = p // 2
    c = np.pad(x, r, mode="edge").cumsum(0).cumsum(1)
    c = np.pad(c, ((1, 0), (1, 0)))
    h, w = x.shape
    return c[p:p + h, p:p + w] - c[:h, p:p + w] - c[p:p + h, :w] + c[:h, :w]


def bilinear(c, y, x):
    """c (h, w, k) sampled at real coordinates (clamped to the picture)."""
    h, w = c.shape[:2]
    y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (y - y0)[..., None], (x - x0)[..., None]
    return ((1 - fy) * ((1 - fx) * c[y0, x0] + fx * c[y0, x1])
            + fy * ((1 - fx) * c[y1, x0] + fx * c[y1, x1]))


def match(cur_y, prev_y, prev_c, radius, patch, subpixel=False):
    """prev_c (h, w, 2) carried to each pixel from its best-matching displacement, and that
    match's cost (sum of squares over the window, plus the tie-break). subpixel: the move refined
    by one Lucas–Kanade step over the same window (the previous luma's central-difference
    gradient at the moved pixels; at most a pixel each way; none where the window's gradients
    do not fix both axes), prev_c sampled there bilinearly."""
    h, w = cur_y.shape
    py = np.pad(prev_y, radius, mode="edge")
    best = np.full((h, w), np.inf)
    my, mx = np.zeros((h, w), int), np.zeros((h, w), int)
    for dy in range(-radius, radius + 1):   # the first of equal costs, rows of moves outer
        for dx in range(-radius, radius + 1):
            s = py[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
            cost = box((cur_y - s) ** 2, patch) + 1e-3 * (dx * dx + dy * dy)
            m = cost < best
            best[m], my[m], mx[m] = cost[m], dy, dx
    y, x = np.mgrid[0:h, 0:w].astype(float)
    y, x = y + my, x + mx
    if subpixel:   # one Lucas–Kanade step from the whole-pixel move, over the same window
        ys, xs = np.clip(y, 0, h - 1).astype(int), np.clip(x, 0, w - 1).astype(int)
        gy, gx = (g[ys, xs] for g in np.gradient(prev_y))
        res = cur_y - prev_y[ys, xs]
        sxx, sxy, syy = box(gx * gx, patch), box(gx * gy, patch), box(gy * gy, patch)
        sxr, syr = box(gx * res, patch), box(gy * res, patch)
        det = sxx * syy - sxy * sxy
        ok = det > 1e-6 * (sxx + syy) ** 2 + 1e-9   # not flat, not an edge alone
        det = np.where(ok, det, 1)
        x += np.clip(np.where(ok, (syy * sxr - sxy * syr) / det, 0), -1, 1)
        y += np.clip(np.where(ok, (sxx * syr - sxy * sxr) / det, 0), -1, 1)
    return bilinear(prev_c, y, x), best


def psnr(x, t):
    mse = ((x - t) ** 2).mean(axis=(1, 2, 3))
    return np.minimum(100.0, 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-30)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quality", required=True, help="a scripts/quality.py --out folder")
    ap.add_argument("--method", default="model")
    ap.add_argument("--weights", default="1,.75,.5,.25",
                    help="the propagated share on frames 1, 2, ... after the reference")
    ap.add_argument("--radius", type=int, default=6)
    ap.add_argument("--patch", type=int, default=5)
    ap.add_argument("--confidence", type=float, default=0,
                    help="S > 0: shares scaled by exp(-cost / (patch^2 S^2)) (default 0: not)")
    ap.add_argument("--subpixel", action="store_true",
                    help="refine each match by one Lucas-Kanade step (chroma sampled bilinearly)")
    ap.add_argument("--films", help="comma-separated (default: every film of the folder)")
    args = ap.parse_args()
    try:
        weights = [float(x) for x in args.weights.split(",")]
    except ValueError:
        fail("--weights wants numbers separated by commas, e.g. 1,.75,.5,.25; got %r"
             % args.weights)
    if not all(0 <= x <= 1 for x in weights):
        fail("--weights are shares in [0, 1]; got %s" % args.weights)
    if args.confidence < 0:
        fail("--confidence wants S >= 0 (0: shares not scaled), got %g" % args.confidence)
    if not 0 <= args.radius <= 16 or args.patch < 1 or args.patch % 2 == 0:
        fail("--radius wants 0..16 and --patch an odd number >= 1")
    films = quality_films(args.quality)
    if args.films:
        want = args.films.split(",")
        missing = sorted(set(want) - {n for n, _, _ in films})
        if missing:
            fail("no film %s in %s" % (", ".join(missing), args.quality))
        films = [f for f in films if f[0] in want]
    print("RGB PSNR (dB, mean over frames) of %s, and its change with the first %d frames after "
          "each reference propagated (weights %s; match: radius %d, patch %d, confidence %s%s)" % (
              args.method, len(weights), args.weights, args.radius, args.patch,
              args.confidence or "none", ", sub-pixel" if args.subpixel else ""))
    print("| film | %s | + flow | + match |" % args.method)
    print("|---|---|---|---|")
    gains = []
    for name, desc, truth in films:
        w, h = desc["width"], desc["height"]
        t = frames(truth, w, h)
        out = frames(run_output(args.quality, name, args.method), w, h)
        flow = frames(run_output(args.quality, name, "flow"), w, h)
        if not len(t) == len(out) == len(flow):
            fail("%s: the truth, %s and flow have %d, %d, %d frames" % (
                name, args.method, len(t), len(out), len(flow)))
        pos = np.zeros(len(t), int)
        for s in desc["shots"]:
            pos[s["start"]:s["end"]] = np.arange(s["end"] - s["start"])
        ycc = out @ YCC.T
        blend, carried = out.copy(), out.copy()
        prev = None
        for i, k in enumerate(pos):
            if k == 0:
                prev = ycc[i]
                continue
            if k > len(weights):
                continue
            a = weights[k - 1]
            blend[i] = np.round(a * flow[i] + (1 - a) * out[i])
            cur = ycc[i].copy()
            c, cost = match(ycc[i][..., 0], ycc[i - 1][..., 0], prev[..., 1:], args.radius,
                            args.patch, args.subpixel)
            share = a * np.exp(-cost / (args.patch ** 2 * args.confidence ** 2))[..., None] \
                if args.confidence > 0 else a
            cur[..., 1:] = share * c + (1 - share) * cur[..., 1:]
            carried[i] = np.clip(np.round(cur @ RGB.T), 0, 255)
            prev = carried[i] @ YCC.T
        base = psnr(out, t).mean()
        g = (psnr(blend, t).mean() - base, psnr(carried, t).mean() - base)
        gains.append(g)
        print("| %s | %.3f | %+.3f | %+.3f |" % (name, base, g[0], g[1]))
    print("| mean | | %+.3f | %+.3f |" % tuple(np.mean(gains, axis=0)))


if __name__ == "__main__":
    main()
