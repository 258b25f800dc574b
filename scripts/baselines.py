#!/usr/bin/python3
"""Baseline colorizers for docs/QUALITY.md, on the same films, frames and size as the model.

    scripts/baselines.py FILM.json --out-dir DIR [--methods transfer,flow,...] [--model FILE]

FILM.json is an evaluation film's descriptor (scripts/make_eval_films.sh): grey, truth, shots with
their references (paths relative to the JSON's folder). Writes DIR/<method>.mkv for each method and
DIR/<method>.json (what ran, how long). Needs Debian's /usr/bin/python3 (torch, numpy, cv2).

Every method predicts a* b* (CIE Lab, the network's Lab: train/vaefarm_ref/lab.py) at the film's
full size and goes through the model's own composition (docs/NETWORK.md "Post-processing" step 2,
`Net.keep_luma` of the PyTorch reference): each pixel gets the colour with that a, b whose luma Y'
equals the input's grey. The output (FFV1, yuv444p, lossless) carries the input's Y plane
unchanged, bit for bit, and only new Cb, Cr (packed as the C engine packs them, node/chunk.c): the
same "keeps the film's tones" rule as the model, so every method is judged on its chroma only.

Methods:
  transfer    global colour transfer from the shot's reference (Reinhard et al. 2001, on a and b
              only, per shot): ab = (ab_in - mean_in) * std_ref / std_in + mean_ref per channel.
              The input is grey: read as Lab (R' = G' = B' = Y') its a, b are 0 at every pixel,
              so std_in = 0 and there is no variation to scale (the term is taken as 0): on a grey
              film the transfer reduces to the reference's mean a, b everywhere in the shot, a
              constant tint under the film's own tones. The reference's std cannot be transferred.
  transfer_l  (ours, not in the issue) the same idea conditioned on luminance, as in the global
              part of Welsh et al. 2002: the reference's mean a, b in each of 32 bands of its luma
              Y' (same Kr, Kb as the film), looked up per pixel of the grey by linear
              interpolation between band centres (bands with under 16 reference pixels skipped).
              Dark stays dark-coloured, sky-bright stays sky-coloured; still no texture, no motion.
  warp        the model's correspondence alone: A's W^ab (attention-warped reference chroma,
              docs/NETWORK.md "A") from the PyTorch reference with the given weights file, at the
              model's inference size (vaefarm's default, computed as node/chunk.c does, unless
              --inference-size says otherwise), without C: the same
              upsampling to full size (post step 1: bilinear, or the guided filter of a
              model whose upsample.radius is above 0) and the same composition. The grey and
              the reference are resized as the C engine resizes them (area average when
              shrinking, bilinear when growing). With vaefarm's reference pass-through
              (docs/NODE.md): a frame whose grey is the reference's luma takes the
              reference's a, b at full size, and the next frame's warp reads them. With the
              model's film-size propagation (arch propagate, post-processing 1b), the frames
              right after a pass-through carry the previous frame's a, b as vaefarm does.
  flow        the reference carried frame to frame by dense optical flow: the shot's first frame
              gets the reference's a, b (the reference IS that frame's colour, so that frame is
              right up to rounding); frame t gets frame t-1's a, b warped by the backward
              Farneback flow from t to t-1 on the 8-bit grey frames (OpenCV
              calcOpticalFlowFarneback, pyr_scale 0.5, levels 4, winsize 15, iterations 3,
              poly_n 5, poly_sigma 1.2; cv2.remap bilinear, border replicated).
  ceiling     the truth's own a, b (from its YUV in float, BT.601/709 per its tag, clamped to
              [0,1] R'G'B') under the input's luma: what a colorizer that keeps the film's tones
              and predicts a, b perfectly would output. What separates it from the truth: the
              8-bit Cb, Cr and colours whose a, b cannot have the input's luma inside the gamut
              (keep_luma clamps).
  ceiling_inf the ceiling at the model's inference size: the truth's a, b area-averaged to the
              inference size (as `warp` computes it), then the model's upsampling and
              composition. What a model that runs at that size and predicts a, b perfectly there
              would output: the bound that the resolution of the network's output sets.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "train"))

import cv2  # noqa: E402
import torch  # noqa: E402

from vaefarm_ref import lab as labmod  # noqa: E402
from vaefarm_ref.model import Net, axis_matrix, luma_of  # noqa: E402

METHODS = ("transfer", "transfer_l", "warp", "flow", "ceiling", "ceiling_inf")
BATCH = 8                      # frames composed at once
FARNEBACK = dict(pyr_scale=0.5, levels=4, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
BANDS = 32                     # transfer_l: luma bands
BAND_MIN = 16                  # transfer_l: fewest reference pixels for a band to count


# ------------------------------------------------------------------------------------ media

def probe(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                        "stream=width,height,pix_fmt,color_space,color_range,sample_aspect_ratio",
                        "-of", "json", path], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["streams"][0]


def matrix(info):
    """(kr, kb, ffmpeg colorspace name) as vaefarm picks them (node/chunk.c vf_node_colorizer_opts)."""
    cs = info.get("color_space", "unknown")
    table = {"bt709": (0.2126, 0.0722), "smpte170m": (0.299, 0.114), "bt470bg": (0.299, 0.114),
             "bt2020nc": (0.2627, 0.0593), "bt2020c": (0.2627, 0.0593), "fcc": (0.30, 0.11),
             "smpte240m": (0.212, 0.087)}
    if cs in table:
        return table[cs] + (cs,)
    if int(info["height"]) >= 720:
        return 0.2126, 0.0722, "bt709"
    return 0.299, 0.114, "smpte170m"


def read_frames(path, pix_fmt, w, h, planes):
    """All frames of a video as uint8 N x planes x h x w (decoded in presentation order)."""
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0",
                        "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                       capture_output=True, check=True)
    n = len(r.stdout) // (planes * w * h)
    if n * planes * w * h != len(r.stdout):
        raise RuntimeError("%s: decoded size is not a whole number of frames" % path)
    return np.frombuffer(r.stdout, np.uint8).reshape(n, planes, h, w)


def read_png(path):
    """An RGB PNG as float32 3 x H x W in [0, 1]."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if bgr is None:
        raise RuntimeError("cannot read %s" % path)
    scale = 65535.0 if bgr.dtype == np.uint16 else 255.0
    return np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / scale)


class Film:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        here = os.path.dirname(self.path)
        d = json.load(open(self.path))
        self.desc = d
        self.name = d.get("name", os.path.splitext(os.path.basename(path))[0])
        at = lambda p: p if os.path.isabs(p) else os.path.join(here, p)  # noqa: E731
        self.grey_path, self.truth_path = at(d["grey"]), at(d["truth"])
        self.shots = [(int(s["start"]), int(s["end"]), at(s["reference"])) for s in d["shots"]]
        self.info = probe(self.grey_path)
        self.w, self.h = int(self.info["width"]), int(self.info["height"])
        self.kr, self.kb, self.colorspace = matrix(self.info)
        self.full_range = self.info.get("color_range") == "pc"
        self.fps = "%d/%d" % tuple(d.get("fps", [25, 1]))
        self._Y = None
        s = self.shots
        if s[0][0] != 0 or any(a[1] != b[0] for a, b in zip(s, s[1:])) or any(a >= b for a, b, _ in s):
            raise ValueError("%s: shots must cover [0, frames) in order" % path)

    @property
    def Y(self):
        """The grey's 8-bit luma samples, N x h x w."""
        if self._Y is None:
            self._Y = read_frames(self.grey_path, "gray", self.w, self.h, 1)[:, 0]
            if len(self._Y) != self.shots[-1][1]:
                raise ValueError("%s: %d frames, the shots cover %d" % (self.grey_path, len(self._Y),
                                                                         self.shots[-1][1]))
        return self._Y

    def grey(self, Yb):
        """uint8 luma (... x h x w) -> Y' in [0, 1] float32, as node/chunk.c make_grey reads it."""
        y = Yb.astype(np.float32)
        y = y / 255.0 if self.full_range else (y - 16.0) / 219.0
        return np.clip(y, 0.0, 1.0)

    def truth_rgb(self):
        """The truth's frames as float R'G'B' in [0, 1] (its YUV in float, its own matrix and
        range, clamped), N x 3 x h x w float32. Generator over frames."""
        info = probe(self.truth_path)
        kr, kb, _ = matrix(info)
        full = info.get("color_range") == "pc"
        yuv = read_frames(self.truth_path, "yuv444p", self.w, self.h, 3)
        for f in yuv:
            Y, U, V = (f[i].astype(np.float32) for i in range(3))
            if full:
                Y, U, V = Y / 255.0, (U - 128.0) / 255.0, (V - 128.0) / 255.0
            else:
                Y, U, V = (Y - 16.0) / 219.0, (U - 128.0) / 224.0, (V - 128.0) / 224.0
            R = Y + 2.0 * (1.0 - kr) * V
            B = Y + 2.0 * (1.0 - kb) * U
            G = (Y - kr * R - kb * B) / (1.0 - kr - kb)
            yield np.clip(np.stack([R, G, B]), 0.0, 1.0)


# -------------------------------------------------------------------------- resizing (C's)

def resize(x, h, w):
    """x (... x H x W float32) -> (... x h x w), separable as the C engine resizes (the weights
    of vaefarm_ref.model.axis_matrix, node/chunk.c's, in float32)."""
    H, W = x.shape[-2:]
    if (H, W) == (h, w):
        return x
    mh, mw = (axis_matrix(n, m).numpy().astype(np.float32) for n, m in ((H, h), (W, w)))
    return mh @ x @ mw.T


def r8(x):
    """x to the nearest multiple of 8, at least 32 (node/chunk.c round8_min32)."""
    k = int(math.floor(x / 8 + 0.5))
    return 32 if k < 4 else k * 8


def inference_size(arch, w, h, spec="default"):
    """The size the network runs at. spec "default": vaefarm's default (node/chunk.c
    vf_node_inference_size: the model's pixel count at the film's aspect, square pixels);
    "full": the film's own size to the nearest multiples of 8; "HxW": that size."""
    if spec == "full":
        return r8(h), r8(w)
    if spec != "default":
        H, W = (int(v) for v in spec.lower().split("x"))
        if H % 8 or W % 8 or H < 32 or W < 32:
            raise ValueError("inference size %s: multiples of 8, at least 32" % spec)
        return H, W
    n = arch["inference_size"][0] * arch["inference_size"][1]
    aspect = w / h
    return r8(math.sqrt(n / aspect)), r8(math.sqrt(n * aspect))


# ---------------------------------------------------------------------------------- methods
# Each yields (first frame index, ab float32 N x 2 x h x w) in frame order, in batches.

def lab_of(rgb):
    return labmod.rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb))).numpy()


def ref_full(film, path):
    """A reference at the film's size (it is the shot's first frame, so normally already is)."""
    return resize(read_png(path), film.h, film.w)


def ab_transfer(film):
    Y = film.Y
    for start, end, ref in film.shots:
        ref_ab = lab_of(ref_full(film, ref))[1:3].reshape(2, -1).astype(np.float64)
        mu_ref, sd_ref = ref_ab.mean(1), ref_ab.std(1)
        # the input's own a, b: its grey read as Lab (R' = G' = B' = Y'), statistics over the shot
        s1, s2, n = np.zeros(2), np.zeros(2), 0
        for t in range(start, end, BATCH):
            g = film.grey(Y[t:min(t + BATCH, end)])[:, None]
            ab = lab_of(np.repeat(g, 3, axis=1))[:, 1:3].astype(np.float64)
            s1 += ab.sum(axis=(0, 2, 3))
            s2 += (ab * ab).sum(axis=(0, 2, 3))
            n += ab.shape[0] * ab.shape[2] * ab.shape[3]
        mu_in = s1 / n
        sd_in = np.sqrt(np.maximum(s2 / n - mu_in ** 2, 0))
        k = np.where(sd_in > 1e-3, sd_ref / np.maximum(sd_in, 1e-12), 0.0)   # grey: sd_in = 0
        for t in range(start, end, BATCH):
            b = min(t + BATCH, end)
            g = film.grey(Y[t:b])[:, None]
            ab = lab_of(np.repeat(g, 3, axis=1))[:, 1:3].astype(np.float64)
            out = (ab - mu_in[:, None, None]) * k[:, None, None] + mu_ref[:, None, None]
            yield t, out.astype(np.float32)


def band_table(film, ref_rgb):
    """transfer_l: (band centres, mean a, mean b) over the bands with enough reference pixels."""
    kr, kb = film.kr, film.kb
    y = (kr * ref_rgb[0] + (1 - kr - kb) * ref_rgb[1] + kb * ref_rgb[2]).ravel()
    ab = lab_of(ref_rgb)[1:3].reshape(2, -1)
    band = np.minimum((y * BANDS).astype(np.int64), BANDS - 1)
    cnt = np.bincount(band, minlength=BANDS)
    ok = cnt >= BAND_MIN
    if not ok.any():
        ok = cnt > 0
    centres = (np.arange(BANDS) + 0.5) / BANDS
    ma = np.bincount(band, ab[0], BANDS) / np.maximum(cnt, 1)
    mb = np.bincount(band, ab[1], BANDS) / np.maximum(cnt, 1)
    return centres[ok], ma[ok], mb[ok]


def ab_transfer_l(film):
    Y = film.Y
    for start, end, ref in film.shots:
        c, ma, mb = band_table(film, ref_full(film, ref))
        for t in range(start, end, BATCH):
            g = film.grey(Y[t:min(t + BATCH, end)])
            yield t, np.stack([np.interp(g, c, ma), np.interp(g, c, mb)], axis=1).astype(np.float32)


def load_net(model):
    from export import load_model   # train/export.py
    return load_model(model)


def warp_lo(net, g_lo, cache, prev=None):
    """A's W^ab for a batch of grey frames at inference size (N x 1 x H x W): net.frame()'s
    warp_ab without running C, and the frame's motion (N x 2 x H x W, net.correspond's). prev:
    frame t−1's L − 50 and W^ab (N x 3 x H x W) for the refinement's temporal candidates, and
    its motion for the motion-predicted ones (N x 5 x H x W), or None (the zero state)."""
    n, _, H, W = g_lo.shape
    taps = net.taps(g_lo.expand(n, 3, H, W))
    theta = net.A.frame_side(taps, (H // 4, W // 4))
    refs = [cache[k][None].expand(n, -1, -1, -1)
            for k in ("phi", "ref_ab", "ref_y", "ref_ab_full") if k in cache]
    return net.correspond(g_lo, theta, *refs, prev=prev, with_motion=True)[2::2]


def shot_reference(net, film, ref, H, W):
    """A shot's reference PNG at the network's size H×W, as vaefarm reads it: -> (its RGB,
    net.reference's cache, its luma, which the pass-through test compares a frame with)."""
    ref_rgb = torch.from_numpy(resize(read_png(ref), H, W))
    return ref_rgb, net.reference(ref_rgb, film.kr, film.kb), luma_of(ref_rgb[None], film.kr, film.kb)[0, 0]


def ab_warp(film, model, net=None, size="default"):
    """The warp alone. With the refinement's temporal candidates (A.refine.temporal) frame t's
    warp reads frame t−1's (its L − 50, W^ab), as in the network, whose warp chain does not
    depend on C: one frame at a time, from the zero state at each shot's start. It is the
    model's own W^ab."""
    net = net or load_net(model)
    H, W = inference_size(net.arch, film.w, film.h, size)
    temporal = bool((net.arch["A"].get("refine") or {}).get("temporal"))
    # the arch's film-size propagation (post-processing 1b) takes the warp too, as vaefarm runs
    # it: frame k after a pass-through carries frame k − 1's final a, b (one frame at a time)
    prop = net.arch.get("propagate")
    step = 1 if temporal or prop else BATCH
    Y = film.Y
    with torch.no_grad():
        for start, end, ref in film.shots:
            ref_rgb, cache, ref_y = shot_reference(net, film, ref, H, W)
            # reference pass-through, as vaefarm runs: a frame that is the reference's own
            # picture takes its a, b (at full size), and the next frame's warp reads them
            ref_ab = torch.from_numpy(lab_of(ref_rgb.numpy())[1:3])
            ref_ab_full = lab_of(ref_full(film, ref))[1:3]
            prev = None
            age, last = -1, None   # frames since the last pass-through; (grey, final a, b)
            for t in range(start, end, step):
                b = min(t + step, end)
                gf = torch.from_numpy(film.grey(Y[t:b])[:, None])
                g = torch.from_numpy(resize(gf.numpy(), H, W))
                pt = [net.is_reference_frame(g[k, 0], ref_y) for k in range(len(g))]
                if step == 1 and pt[0]:
                    if temporal:
                        prev = torch.cat([labmod.grey_to_L(g) - 50.0, ref_ab[None].to(g.dtype)], dim=1)
                    age, last = 0, (gf, torch.from_numpy(ref_ab_full[None].astype(np.float32)))
                    yield t, ref_ab_full[None].astype(np.float32)
                    continue
                wab, motion = warp_lo(net, g, cache, prev)
                if temporal:
                    prev = torch.cat([labmod.grey_to_L(g) - 50.0, wab, motion], dim=1)
                ab = net.upsample(g, wab, gf)
                if prop:
                    age = age + 1 if age >= 0 else -1
                    if 1 <= age <= len(prop["shares"]):
                        ab = net.carry(gf, last[0], last[1], ab, prop["shares"][age - 1],
                                       prop["radius"], prop["patch"], prop["confidence"],
                                       prop.get("subpixel", False))[0]
                    last = (gf, ab.float())
                ab = ab.numpy()
                for k in range(len(g)):
                    if pt[k]:
                        ab[k] = ref_ab_full
                yield t, ab


def ab_flow(film):
    Y = film.Y
    gy, gx = np.mgrid[0:film.h, 0:film.w].astype(np.float32)
    for start, end, ref in film.shots:
        ab = np.ascontiguousarray(lab_of(ref_full(film, ref))[1:3].transpose(1, 2, 0))  # h x w x 2
        batch, t0 = [], start
        for t in range(start, end):
            if t > start:
                fl = cv2.calcOpticalFlowFarneback(Y[t], Y[t - 1], None, **FARNEBACK)
                ab = cv2.remap(ab, gx + fl[..., 0], gy + fl[..., 1], cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
            batch.append(ab.transpose(2, 0, 1))
            if len(batch) == BATCH or t == end - 1:
                yield t0, np.stack(batch)
                batch, t0 = [], t + 1


def ab_ceiling(film):
    batch, t0 = [], 0
    n = film.shots[-1][1]
    for t, rgb in enumerate(film.truth_rgb()):
        batch.append(lab_of(rgb)[1:3])
        if len(batch) == BATCH or t == n - 1:
            yield t0, np.stack(batch)
            batch, t0 = [], t + 1
    if t0 != n:
        raise ValueError("%s: the truth has %d frames, the grey %d" % (film.truth_path, t0, n))


def ab_ceiling_inf(film, model, net=None, size="default"):
    net = net or load_net(model)
    H, W = inference_size(net.arch, film.w, film.h, size)
    Y = film.Y
    for t0, ab in ab_ceiling(film):
        gf = torch.from_numpy(film.grey(Y[t0:t0 + len(ab)])[:, None])
        g = torch.from_numpy(resize(gf.numpy(), H, W))
        yield t0, net.upsample(g, torch.from_numpy(resize(ab, H, W)), gf).numpy()


def method_ab(film, method, model=None, net=None, size="default"):
    if method == "transfer":
        return ab_transfer(film)
    if method == "transfer_l":
        return ab_transfer_l(film)
    if method == "warp":
        return ab_warp(film, model, net, size)
    if method == "flow":
        return ab_flow(film)
    if method == "ceiling":
        return ab_ceiling(film)
    if method == "ceiling_inf":
        return ab_ceiling_inf(film, model, net, size)
    raise ValueError("unknown method %r (known: %s)" % (method, ", ".join(METHODS)))


# ------------------------------------------------------------------------------ composition

def _colour_d(L, a, b):
    """clamp01(gam(M^-1 XYZ(L, a, b))) and its derivative in L (0 where clamped)."""
    fy = (L + 16.0) / 116.0
    fx, fz = fy + a / 500.0, fy - b / 200.0
    D = labmod.DELTA
    finv = lambda t: torch.where(t > D, t * t * t, labmod.F_SLOPE * (t - 4.0 / 29.0))  # noqa: E731
    dfinv = lambda t: torch.where(t > D, 3.0 * t * t, torch.full_like(t, labmod.F_SLOPE))  # noqa: E731
    W = labmod.WHITE
    xyz = (W[0] * finv(fx), finv(fy), W[2] * finv(fz))
    dxyz = (W[0] * dfinv(fx) / 116.0, dfinv(fy) / 116.0, W[2] * dfinv(fz) / 116.0)
    Mi = labmod.M_INV
    out, dout = [], []
    for i in range(3):
        c = Mi[i][0] * xyz[0] + Mi[i][1] * xyz[1] + Mi[i][2] * xyz[2]
        dc = Mi[i][0] * dxyz[0] + Mi[i][1] * dxyz[1] + Mi[i][2] * dxyz[2]
        pos = torch.clamp(c, min=0.0031308)
        p = torch.pow(pos, 1.0 / 2.4)
        g = torch.where(c <= 0.0031308, 12.92 * c, 1.055 * p - 0.055)
        dg = torch.where(c <= 0.0031308, torch.full_like(c, 12.92), (1.055 / 2.4) * p / pos) * dc
        dg = torch.where((g < 0.0) | (g > 1.0), torch.zeros_like(dg), dg)
        out.append(g.clamp(0.0, 1.0))
        dout.append(dg)
    return out, dout


def keep_luma(grey, ab, kr, kb, iters=8, tol=2e-6):
    """Net.keep_luma (docs/NETWORK.md post step 2: the L* in [0, 100] whose clamped colour with
    these a, b has the grey's luma) by safeguarded Newton from the neutral reading, the way the C
    engine finds it; pixels not within tol of the luma after `iters` steps (flat or unreachable
    luma) get the reference's 20-step bisection. grey N x 1 x h x w, ab N x 2 x h x w (f32)
    -> cbcr N x 2 x h x w."""
    target = grey.reshape(-1)
    a, b = ab[:, 0].reshape(-1), ab[:, 1].reshape(-1)
    L = labmod.grey_to_L(target).clamp(0.0, 100.0)
    lo, hi = torch.zeros_like(L), torch.full_like(L, 100.0)
    idx = torch.arange(L.numel())
    kg = 1.0 - kr - kb
    for _ in range(iters):
        if idx.numel() == 0:
            break
        Li, ai, bi, ti = L[idx], a[idx], b[idx], target[idx]
        (R, G, B), (dR, dG, dB) = _colour_d(Li, ai, bi)
        f = kr * R + kg * G + kb * B - ti
        d = kr * dR + kg * dG + kb * dB
        done = f.abs() <= tol
        below = f < 0
        lo_i = torch.where(below, Li, lo[idx])
        hi_i = torch.where(below, hi[idx], Li)
        step = Li - f / torch.where(d > 0, d, torch.ones_like(d))
        ok = (d > 1e-12) & (step > lo_i) & (step < hi_i)
        Ln = torch.where(done, Li, torch.where(ok, step, 0.5 * (lo_i + hi_i)))
        lo[idx], hi[idx], L[idx] = lo_i, hi_i, Ln
        idx = idx[~done]
    if idx.numel():   # the reference's bisection where Newton did not settle
        g = target[idx].view(1, 1, 1, -1)
        abi = torch.stack([a[idx], b[idx]]).view(1, 2, 1, -1)
        _, _, Ls = Net.keep_luma(g, abi, kr, kb)
        L[idx] = Ls.reshape(-1)
    n, _, h, w = ab.shape
    rgb = labmod.lab_to_rgb(torch.stack([L, a, b]).view(3, n, h, w).transpose(0, 1), clamp=True)
    R, G, B = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    Y = kr * R + kg * G + kb * B
    return torch.stack([(B - Y) / (2.0 * (1.0 - kb)), (R - Y) / (2.0 * (1.0 - kr))], dim=1)


def compose(film, Yb, ab):
    """uint8 luma N x h x w + ab N x 2 x h x w -> yuv444p uint8 N x 3 x h x w: the input's Y plane
    and the Cb, Cr of keep_luma's colour (packed as node/chunk.c pack_frame does for 4:4:4)."""
    g = torch.from_numpy(film.grey(Yb)[:, None])
    cbcr = keep_luma(g, torch.from_numpy(np.ascontiguousarray(ab, np.float32)), film.kr, film.kb).numpy()
    if film.full_range:
        c = np.clip(np.floor(128.0 + 255.0 * cbcr + 0.5), 0, 255)
    else:
        c = np.clip(np.floor(np.float32(128.0) + np.float32(224.0) * cbcr + np.float32(0.5)), 16, 240)
    return np.concatenate([Yb[:, None], c.astype(np.uint8)], axis=1)


class Writer:
    """FFV1 yuv444p (lossless, every frame a keyframe), tagged with the matrix used."""

    def __init__(self, film, path):
        self.path, self.tmp = path, path + ".part.mkv"
        rng = "pc" if film.full_range else "tv"
        self.p = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv444p",
             "-s", "%dx%d" % (film.w, film.h), "-framerate", film.fps, "-i", "-",
             "-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "4", "-pix_fmt", "yuv444p",
             "-colorspace", film.colorspace, "-color_range", rng, "-fflags", "+bitexact",
             "-flags:v", "+bitexact", self.tmp], stdin=subprocess.PIPE)
        self.frames = 0

    def write(self, yuv):
        self.p.stdin.write(np.ascontiguousarray(yuv).tobytes())
        self.frames += len(yuv)

    def close(self):
        self.p.stdin.close()
        if self.p.wait() != 0:
            raise RuntimeError("ffmpeg could not write %s" % self.tmp)
        os.replace(self.tmp, self.path)


def run(film, method, out_path, model=None, net=None, size="default"):
    """Colorize the film with one method into out_path; returns what ran and how long."""
    t0 = time.time()
    Y = film.Y
    wr = Writer(film, out_path)
    try:
        expect = 0
        for t, ab in method_ab(film, method, model, net, size):
            if t != expect or ab.shape[-2:] != (film.h, film.w):
                raise RuntimeError("%s: batch at %d (expected %d), %s" % (method, t, expect, ab.shape))
            wr.write(compose(film, Y[t:t + len(ab)], ab))
            expect = t + len(ab)
        if expect != len(Y):
            raise RuntimeError("%s: %d frames made, the film has %d" % (method, expect, len(Y)))
        wr.close()
    except BaseException:
        wr.p.kill()
        wr.p.wait()
        if os.path.exists(wr.tmp):
            os.unlink(wr.tmp)
        raise
    info = {"method": method, "film": film.path, "output": out_path, "frames": wr.frames,
            "seconds": round(time.time() - t0, 2), "kr": film.kr, "kb": film.kb}
    if method in ("warp", "ceiling_inf"):
        info["model"] = model
        info["inference_size"] = list(inference_size(net.arch if net else load_net(model).arch,
                                                     film.w, film.h, size))
    if method == "flow":
        info["farneback"] = FARNEBACK
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("film", help="an evaluation film's descriptor (scripts/make_eval_films.sh)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all)")
    ap.add_argument("--model", default=os.environ.get("VAEFARM_MODEL") or
                    os.path.join(ROOT, "models", "vaefarm-tiny.safetensors"),
                    help="weights file for `warp` (default: $VAEFARM_MODEL, else the bundled model)")
    ap.add_argument("--inference-size", default="default",
                    help="warp and ceiling_inf: default (vaefarm's default for the model), full (the "
                    "film's size, to multiples of 8) or HxW")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch/OpenCV threads (default 1: on a shared machine a second thread can be far slower)")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads %d: at least 1" % args.threads)
    spec = args.inference_size.lower()
    if spec not in ("default", "full"):
        try:
            H, W = (int(v) for v in spec.split("x"))
        except ValueError:
            ap.error("--inference-size %s: default, full or HxW" % args.inference_size)
        if H % 8 or W % 8 or H < 32 or W < 32:
            ap.error("--inference-size %s: multiples of 8, at least 32" % args.inference_size)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            ap.error("unknown method %r (known: %s)" % (m, ", ".join(METHODS)))
    try:
        film = Film(args.film)
    except (OSError, ValueError, KeyError) as e:
        sys.exit("baselines: %s is not a readable film descriptor (%s: %s): make it with "
                 "scripts/make_eval_films.sh" % (args.film, type(e).__name__, e))
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        sys.exit("baselines: --out-dir %s is a file, not a folder" % args.out_dir)
    os.makedirs(args.out_dir, exist_ok=True)
    net = load_net(args.model) if {"warp", "ceiling_inf"} & set(methods) else None
    for m in methods:
        info = run(film, m, os.path.join(args.out_dir, m + ".mkv"), args.model, net, args.inference_size)
        with open(os.path.join(args.out_dir, m + ".json"), "w") as fp:
            json.dump(info, fp, indent=1)
        print("baselines: %s %s: %d frames in %.1f s" % (film.name, m, info["frames"], info["seconds"]))


if __name__ == "__main__":
    main()
