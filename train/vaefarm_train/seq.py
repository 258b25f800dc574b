"""Sequences for stage 5 (train/finetune_c.py, docs/TRAINING.md): a shot's first T frames with
the shot's first frame as its colour reference, vaefarm's keyframe case.

A sequence is a pure function of (cache, seed, index, size, T): every random number comes from
one generator seeded from them (data.py's _Rng), so the prepared set can be remade exactly.

- a **camera move** over a photo of the crops cache: a view as data.py's (zoom, position, roll,
  flip), then a constant velocity (log-uniform 0.2 to 6 pixels a frame at the output size, any
  direction) and, half the time, a steady zoom (log-rate ±0.6 % a frame; now and then a fast
  one, 2 to 8 %), as the evaluation films' moves (scripts/lib/moves.sh); the view stops where it
  would leave the canvas. φ_t, frame t's pixel -> its place in frame t−1, is exact.
  Or (p_still, 0 by default) the view holds: a static camera, the shot whose warp is all but
  perfect and which C must leave alone (vtest's background; a hold before a move).
- or (p_clip) T consecutive frames of a **real clip** through one view (φ unknown, mask 0).

Frame 0 is the reference (8-bit, as a PNG); every frame's RGB is rounded to 8 bits and its grey
is that RGB's luma Y′ (BT.709 or BT.601 weights, at random) rounded to 8 bits, as a film's Y
plane; from frame 1, now and then Gaussian luminance noise (the truth stays clean)."""
import math

import numpy as np
import torch
import torch.nn.functional as Fn

from vaefarm_ref.model import resize_engine

from .data import BT601, BT709, _affine, _apply, _Rng, _sample, _view, batch_seed, luma


class SeqConfig:
    def __init__(self, **kw):
        self.p_clip = 0.25
        self.roll_deg = 3.0
        self.speed_px = (0.2, 6.0)   # log-uniform, output pixels a frame
        self.p_zoom = 0.5
        self.zoom_rate = 0.006       # log zoom a frame, uniform ±
        self.p_fast_zoom = 0.1       # of the zooms: 2 to 8 % a frame
        self.p_noise = 0.3
        self.p_still = 0.0           # of the photo sequences: a held camera (no move, no zoom)
        self.noise_max = 0.01
        for k, v in kw.items():
            if not hasattr(self, k):
                raise ValueError("unknown sequence option %s (known: %s)" % (k, ", ".join(self.__dict__)))
            d = getattr(self, k)
            n = len(d) if isinstance(d, tuple) else 1
            if (len(v) if isinstance(v, (tuple, list)) else 1) != n or (n > 1 and not isinstance(v, (tuple, list))):
                raise ValueError("sequence option %s takes %d number%s" % (k, n, "s" if n > 1 else ""))
            setattr(self, k, tuple(float(x) for x in v) if n > 1 else float(v))
        lo, hi = self.speed_px
        if not 0 < lo <= hi:
            raise ValueError("speed_px needs 0 < low <= high, not %g, %g" % (lo, hi))
        if not all(0 <= getattr(self, k) <= 1 for k in self.__dict__ if k.startswith("p_")):
            raise ValueError("the p_ options are probabilities (0 to 1)")

    def as_dict(self):
        return dict(self.__dict__)


def _mat3(theta):
    return np.concatenate([theta, [[0.0, 0.0, 1.0]]], axis=0)


def make_sequence(cache, T, size, seed, index, cfg=None):
    """-> dict: rgb (T×3×H×W, 8-bit values in [0,1]; rgb[0] is the reference), grey (T×1×H×W),
    phi (T×H×W×2: frame t's pixel -> frame t−1's normalised position; phi[0] unused), tmask
    (T×1×H×W: 1 where phi is known and inside frame t−1), kr, kb (floats), kind (str)."""
    if T < 2:
        raise ValueError("a sequence needs at least 2 frames, not %d" % T)
    cfg = cfg or SeqConfig()
    H, W = size
    Hc, Wc = cache.canvas
    rng = _Rng(batch_seed(seed, index, 0x5E9))
    f32 = dict(dtype=torch.float32)
    base = Fn.affine_grid(torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], **f32), (1, 1, H, W),
                          align_corners=False)[0]
    long_clips = [c for c in cache.clips if c[1] >= T]
    k0, ang, cx0, cy0, flip = _view(rng, H, W, Hc, Wc, cfg.roll_deg)
    frames, phis, masks = [], [], []
    if long_clips and rng.u() < cfg.p_clip:
        start, n = long_clips[rng.i(len(long_clips))]
        t0 = rng.i(n - T + 1)
        th = torch.tensor(_affine(k0, ang, cx0, cy0, flip, H, W, Hc, Wc), **f32)
        grid = _apply(th, base)
        for t in range(T):
            src = cache.frames[start + t0 + t].permute(2, 0, 1).to(torch.float32) / 255.0
            frames.append(_sample(src, grid, k0))
            phis.append(base.clone())
            masks.append(torch.zeros(1, H, W, **f32))
        kind = "clip"
    else:
        src = cache.photos[rng.i(cache.photos.shape[0])].permute(2, 0, 1).to(torch.float32) / 255.0
        speed = math.exp(rng.u(*(math.log(s) for s in cfg.speed_px)))
        direc = rng.u(0.0, 2.0 * math.pi)
        zr = 0.0
        if rng.u() < cfg.p_zoom:
            zr = rng.u(-cfg.zoom_rate, cfg.zoom_rate)
            if rng.u() < cfg.p_fast_zoom:
                zr = math.copysign(rng.u(0.02, 0.08), zr)
        still = cfg.p_still > 0 and rng.u() < cfg.p_still   # no draw at 0: older sets remake
        if still:
            speed, zr = 0.0, 0.0
        kmax = min(Wc / W, Hc / H) * 0.98
        prev3 = None
        cx, cy = cx0, cy0
        for t in range(T):
            k = min(max(k0 * math.exp(-zr * t), 0.5), kmax)
            if t > 0:   # a step of `speed` output pixels = speed·k canvas pixels
                cx += speed * k * math.cos(direc)
                cy += speed * k * math.sin(direc)
            mx, my = max(Wc / 2.0 - k * W / 2.0, 0.0), max(Hc / 2.0 - k * H / 2.0, 0.0)
            cx, cy = min(max(cx, -mx), mx), min(max(cy, -my), my)
            th = _affine(k, ang, cx, cy, flip, H, W, Hc, Wc)
            frames.append(_sample(src, _apply(torch.tensor(th, **f32), base), k))
            if prev3 is None:
                phis.append(base.clone())
                masks.append(torch.zeros(1, H, W, **f32))
            else:
                m = (np.linalg.inv(prev3) @ _mat3(th))[:2]
                phi = _apply(torch.tensor(m, **f32), base)
                phis.append(phi)
                masks.append((phi.abs() <= 1.0).all(dim=-1).to(torch.float32)[None])
            prev3 = _mat3(th)
        kind = "still" if still else "photo"
    kr, kb = BT709 if rng.u() < 0.5 else BT601
    rgb = (torch.stack(frames).clamp(0, 1) * 255.0).round() / 255.0
    grey = torch.stack([luma(x, kr, kb) for x in rgb])
    noisy = torch.zeros(T, 1, 1, 1, **f32)
    if rng.u() < cfg.p_noise:
        noisy[1:] = rng.u(0.0, cfg.noise_max)
    grey = grey + rng.tensor_n((T, 1, H, W)) * noisy
    grey = (grey.clamp(0, 1) * 255.0).round() / 255.0
    return {"rgb": rgb, "grey": grey, "phi": torch.stack(phis), "tmask": torch.stack(masks),
            "kr": kr, "kb": kb, "kind": kind}


def to_network(seq, size):
    """A sequence made at a film's size -> what vaefarm's network sees of it at `size` (H, W): the
    grey and the frames resized as vaefarm resizes a film's frames and its reference (area
    average, node/chunk.c; not rounded), φ and its mask resampled (φ is affine in normalised
    coordinates: its bilinear samples are exact away from the edges; the mask keeps a pixel
    where φ stays inside and the film's mask was set). -> dict as make_sequence's, rgb_film the
    film-size frames."""
    H, W = size
    phi = Fn.interpolate(seq["phi"].permute(0, 3, 1, 2), size=(H, W), mode="bilinear",
                         align_corners=False).permute(0, 2, 3, 1).contiguous()
    inside = (phi.abs() <= 1.0).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).to(torch.float32)
    film_mask = Fn.interpolate(seq["tmask"], size=(H, W), mode="area") > 0.5
    return dict(seq, rgb=resize_engine(seq["rgb"], size), grey=resize_engine(seq["grey"], size),
                phi=phi, tmask=inside * film_mask, rgb_film=seq["rgb"])
