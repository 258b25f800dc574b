#!/usr/bin/python3
"""The metrics of `vaefarm eval` (docs/EVAL.md), written again in numpy float64, independently
of kernels/quality.c: the SSIM window is applied as one 2-D 11x11 weighted sum over every valid
position (not as two 1-D passes), CIE Lab in float64 from the textbook constants, colourfulness
and flicker straight from their definitions.

    eval_ref.py videos TRUTH OUTPUT [--frames N] [--cuts F,F...]
                                                   per-frame and film metrics of two videos, as
                                                   JSON (the keys of `vaefarm eval --json`); with
                                                   --cuts, per shot too (shots start at 0 and at
                                                   each F; a shot's flicker leaves out its first
                                                   frame)
    eval_ref.py synthetic                          the values tests/test_quality.c hard-codes

For `videos`, the files must hold planar RGB (gbrp, gbrp16le...): they are read back as raw
gbrp / gbrp16le by the ffmpeg command line, a lossless repacking, so both sides see the same
samples. (For YUV files the two sides' YUV->RGB conversions would differ, and with them the
numbers; vaefarm's own is shard/'s decoder.)
"""
import json
import subprocess
import sys

import numpy as np

PSNR_CAP = 100.0
RGB_RANGE = 255.0
AB_RANGE = 256.0
K1, K2, SIGMA, WIN = 0.01, 0.03, 1.5, 11


# ---- the metrics ---------------------------------------------------------------------------
def psnr(mse, rng):
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10 * np.log10(rng * rng / mse))


def window():
    ax = np.arange(WIN) - (WIN - 1) / 2
    g2 = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * SIGMA ** 2))
    return g2 / g2.sum()


def wfilter(img, w2):
    """The weighted sum of every valid 11x11 window of img (valid positions only)."""
    v = np.lib.stride_tricks.sliding_window_view(img, (WIN, WIN))
    return np.einsum("ijkl,kl->ij", v, w2)


def ssim(x, y, rng):
    """Mean SSIM map of 2-D float64 images x, y (Wang et al. 2004, Gaussian window)."""
    w2 = window()
    c1, c2 = (K1 * rng) ** 2, (K2 * rng) ** 2
    mx, my = wfilter(x, w2), wfilter(y, w2)
    vx = wfilter(x * x, w2) - mx * mx
    vy = wfilter(y * y, w2) - my * my
    cxy = wfilter(x * y, w2) - mx * my
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return m.mean()


def lab_ab(rgb01):
    """(H, W, 3) sRGB R'G'B' in [0, 1] -> (H, W, 2) CIE a*, b* (D65), float64."""
    c = np.where(rgb01 <= 0.04045, rgb01 / 12.92, ((rgb01 + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def colourfulness(rgb8):
    r, g, b = rgb8[..., 0], rgb8[..., 1], rgb8[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


def frame_metrics(t, o, prev):
    """t, o: (H, W, 3) samples on the 8-bit scale (float64), and their max (255 or 65535 scale
    already applied). prev: (ab_t, ab_o) of the previous frame or None."""
    t01, o01 = t / 255.0, o / 255.0
    at, ao = lab_ab(t01), lab_ab(o01)
    mse_rgb = np.mean((t - o) ** 2)
    mse_ab = np.mean((at - ao) ** 2)
    r = {
        "mse_rgb": mse_rgb, "psnr_rgb": psnr(mse_rgb, RGB_RANGE),
        "ssim_rgb": np.mean([ssim(t[..., c], o[..., c], RGB_RANGE) for c in range(3)]),
        "mse_ab": mse_ab, "psnr_ab": psnr(mse_ab, AB_RANGE),
        "ssim_ab": np.mean([ssim(at[..., c], ao[..., c], AB_RANGE) for c in range(2)]),
        "colourfulness_output": colourfulness(o), "colourfulness_truth": colourfulness(t),
        "flicker_output": None, "flicker_truth": None,
    }
    if prev is not None:
        r["flicker_truth"] = np.mean(np.abs(at - prev[0]))
        r["flicker_output"] = np.mean(np.abs(ao - prev[1]))
    return r, (at, ao)


def film(frames, cuts=None):
    """frames: iterable of (t, o) pairs; returns the eval document's metric keys; cuts: the
    first frames of the shots after the first (None: no shots)."""
    per, prev = [], None
    for t, o in frames:
        r, prev = frame_metrics(t, o, prev)
        r["frame"] = len(per)
        per.append(r)
    doc = span(per, 0, len(per))
    doc["per_frame"] = per
    starts = [0] + list(cuts or [])
    in_shots = [p for p in per if p["frame"] not in starts]
    for k in ("output", "truth"):
        v = [p["flicker_" + k] for p in in_shots if p["flicker_" + k] is not None]
        doc["flicker"][k + "_in_shots"] = float(np.mean(v)) if v else None
    if cuts is not None:
        ends = starts[1:] + [len(per)]
        doc["shots"] = []
        for i, (a, b) in enumerate(zip(starts, ends)):
            d = span(per, a, b)
            d.update({"shot": i, "start": a, "end": b})
            doc["shots"].append(d)
    return doc


def span(per, a, b):
    """The metrics over frames [a, b) of per, a span of its own: frame a's flicker (from
    the frame before the span) left out, worst-frame indices the film's."""
    per = per[a:b]

    def col(k):
        return np.array([p[k] for p in per[1:] if p[k] is not None] if k.startswith("flicker")
                        else [p[k] for p in per], dtype=np.float64)

    def pair(kind, rng):
        p, s = col("psnr_" + kind), col("ssim_" + kind)
        return {"psnr": p.mean(), "psnr_min": p.min(), "psnr_min_frame": a + int(p.argmin()),
                "psnr_pooled": psnr(col("mse_" + kind).mean(), rng), "ssim": s.mean(),
                "ssim_min": s.min(), "ssim_min_frame": a + int(s.argmin()),
                "mse": col("mse_" + kind).mean(), "data_range": rng}

    fo, ft = col("flicker_output"), col("flicker_truth")
    return {"frames": len(per), "rgb": pair("rgb", RGB_RANGE), "ab": pair("ab", AB_RANGE),
            "colourfulness": {"output": col("colourfulness_output").mean(),
                              "truth": col("colourfulness_truth").mean()},
            "flicker": {"output": fo.mean() if len(fo) else None,
                        "truth": ft.mean() if len(ft) else None}}


# ---- videos --------------------------------------------------------------------------------
def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height,pix_fmt", "-of", "json", path],
                         capture_output=True, check=True).stdout
    s = json.loads(out)["streams"][0]
    return s["width"], s["height"], s["pix_fmt"]


def read_frames(path, nframes):
    """Yield (H, W, 3) float64 frames on the 8-bit scale, from the file's own planar RGB."""
    w, h, pf = probe(path)
    deep = pf not in ("gbrp", "rgb24", "bgr24", "bgr0", "rgb0")
    raw_fmt, dt, full = ("gbrp16le", "<u2", 65535.0) if deep else ("gbrp", "u1", 255.0)
    cmd = ["ffmpeg", "-loglevel", "error", "-i", path, "-map", "0:v:0"]
    if nframes:
        cmd += ["-frames:v", str(nframes)]
    cmd += ["-f", "rawvideo", "-pix_fmt", raw_fmt, "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    a = np.frombuffer(raw, dtype=dt).reshape(-1, 3, h, w)   # planes G, B, R
    for f in a:
        rgb = np.stack([f[2], f[0], f[1]], -1).astype(np.float64)
        yield rgb * (255.0 / full)


def videos(truth, output, nframes, cuts):
    doc = film(zip(read_frames(truth, nframes), read_frames(output, nframes)), cuts)
    print(json.dumps(doc, indent=1, default=float))


# ---- the unit test's images (tests/test_quality.c) -----------------------------------------
def lcg_image(seed, w, h):
    """The test's pseudo-random 8-bit planes: x <- x*1103515245 + 12345 (mod 2^31), sample =
    (x >> 16) & 255, planes R, G, B row by row."""
    x = seed
    out = np.empty((3, h, w), np.float64)
    for c in range(3):
        for y in range(h):
            for i in range(w):
                x = (x * 1103515245 + 12345) % (1 << 31)
                out[c, y, i] = (x >> 16) & 255
    return out.transpose(1, 2, 0)


def synthetic():
    w, h = 23, 17
    t = lcg_image(1, w, h)
    o = np.clip(np.round(0.75 * t + 0.25 * lcg_image(2, w, h)), 0, 255)   # correlated
    t2 = lcg_image(3, w, h)
    o2 = np.clip(t2 + 9, 0, 255)
    doc = film([(t, o), (t2, o2)])
    for f in doc["per_frame"]:
        print("frame %d:" % f["frame"])
        for k in ("mse_rgb", "psnr_rgb", "ssim_rgb", "mse_ab", "psnr_ab", "ssim_ab",
                  "colourfulness_truth", "colourfulness_output", "flicker_truth",
                  "flicker_output"):
            v = f[k]
            print("  %-22s %s" % (k, "None" if v is None else "%.12g" % v))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "synthetic":
        synthetic()
    elif len(sys.argv) >= 4 and sys.argv[1] == "videos":
        opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
        cuts = [int(x) for x in opts["--cuts"].split(",")] if "--cuts" in opts else None
        videos(sys.argv[2], sys.argv[3], int(opts.get("--frames", 0)), cuts)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
