"""Training batches: 2-frame clips with a reference, made on the fly from the crops cache.

The cache (train/make_dataset.py) holds photos and real-clip frames at a canvas of Hc×Wc (180×320).
A batch is a pure function of (seed, step, rank): every random number comes from one
torch.Generator seeded from those three, so the data cursor of a checkpoint is just its step and a
resumed run sees exactly the batches an uninterrupted one would. All image work is torch
(grid_sample), on the training device.

Per sample (docs/TRAINING.md has the numbers and why):
- a **camera view** A1 of a photo: zoom (log-uniform, from 1:1 canvas pixels to nearly the whole
  canvas), position, small roll, horizontal flip; frame t−1 = the photo through A1.
- a **motion** to frame t: frame t(q) = frame t−1(φ(q)), φ = an affine move (translate, zoom,
  rotate; now and then 3× larger) plus, half the time, a smooth elastic displacement field; φ is
  returned, so the temporal loss knows where each pixel of frame t was in frame t−1.
- or (p_clip) two frames 1–2 apart of a **real clip** through the same view (no known φ).
- a **reference**: the clip's own frame t, flipped (p 0.5) and cropped / zoomed out (self
  reference; its colours are the truth's, so the L1 term applies), or a similar photo (nearest in
  colour layout, similar.npy), or any other photo.
- the **grey input** is the truth's luma Y′ (BT.709 or BT.601 weights, at random) plus Gaussian
  luminance noise; the truth stays clean.
"""
import hashlib
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as Fn

BT709 = (0.2126, 0.0722)
BT601 = (0.299, 0.114)


class DataConfig:
    def __init__(self, **kw):
        self.p_clip = 0.2           # real-clip samples (the rest: photo + synthetic motion)
        self.p_self = 0.5           # self reference (L1 applies)
        self.p_similar = 0.25       # a similar photo (of the rest: any other photo)
        self.roll_deg = 3.0         # camera view roll, uniform ±
        self.move_px = 0.03         # motion: translation std, fraction of the frame width
        self.zoom_std = 0.03        # motion: log zoom std
        self.rot_std_deg = 1.0      # motion: rotation std
        self.p_fast = 0.2           # motion ×3
        self.p_elastic = 0.5
        self.elastic_std = 0.04     # elastic displacement std, normalised units (±1 = half the frame)
        self.elastic_grid = (3, 5)  # control points (rows, cols), bicubic up
        self.ref_crop = (0.6, 1.2)  # self reference: frame t's view scaled by this (<1 crop, >1 wider)
        self.noise_max = 0.015      # luminance noise: std ~ U(0, noise_max) in Y′ units
        for k, v in kw.items():
            if not hasattr(self, k):
                raise ValueError("unknown data option %s" % k)
            setattr(self, k, v)

    def as_dict(self):
        return dict(self.__dict__)


class Cache:
    """The crops cache in memory (uint8 tensors on `device`)."""

    def __init__(self, root, device="cpu"):
        with open(os.path.join(root, "index.json")) as fp:
            self.index = json.load(fp)
        if self.index.get("format") != "vaefarm-train-cache-v1":
            raise ValueError("%s: not a vaefarm training cache" % root)
        self.photos = torch.from_numpy(np.load(os.path.join(root, "photos.npy"))).to(device)
        self.frames = torch.from_numpy(np.load(os.path.join(root, "clips.npy"))).to(device)
        self.similar = np.load(os.path.join(root, "similar.npy"))
        self.clips = [(c["start"], c["frames"]) for c in self.index["clips"]]
        self.canvas = tuple(self.index["canvas"])
        self.root = root

    @classmethod
    def synthetic(cls, n_photos=6, n_frames=6, canvas=(90, 160), seed=0, device="cpu"):
        """A small random cache (smooth colour fields + texture) for tests; no files."""
        self = cls.__new__(cls)
        g = torch.Generator().manual_seed(seed)
        hc, wc = canvas

        def img(n):
            lo = torch.rand(n, 3, 4, 6, generator=g)
            x = Fn.interpolate(lo, size=(hc, wc), mode="bicubic", align_corners=True)
            x = x + 0.08 * torch.rand(n, 3, hc, wc, generator=g)
            return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

        self.photos = img(n_photos).to(device)
        one = img(1)[0]
        self.frames = torch.stack([torch.roll(one, shifts=2 * i, dims=1) for i in range(n_frames)]).to(device)
        k = min(3, n_photos - 1)
        self.similar = np.stack([np.array([(i + j + 1) % n_photos for j in range(k)]) for i in range(n_photos)])
        self.clips = [(0, n_frames)] if n_frames >= 2 else []
        self.canvas = canvas
        self.index = {"format": "vaefarm-train-cache-v1", "canvas": list(canvas), "synthetic": True}
        self.root = None
        return self


def batch_seed(seed, step, rank):
    h = hashlib.sha256(("%d:%d:%d" % (seed, step, rank)).encode()).hexdigest()
    return int(h[:15], 16)


class _Rng:
    """Draws from one CPU torch.Generator (identical on every device)."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def u(self, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand((), generator=self.g, dtype=torch.float64).item()

    def n(self, std=1.0):
        return std * torch.randn((), generator=self.g, dtype=torch.float64).item()

    def i(self, n):
        return int(torch.randint(n, (), generator=self.g).item())

    def tensor_n(self, shape):
        return torch.randn(shape, generator=self.g)


def _affine(kscale, ang, cx, cy, flip, H, W, Hc, Wc):
    """2×3 matrix: frame normalised coords -> source normalised coords (align_corners=False).
    kscale: source pixels per frame pixel; ang: radians; (cx, cy): centre in source pixels from the
    source centre; flip: mirror x."""
    # frame normalised -> frame pixels (centred)
    Nf = np.diag([W / 2.0, H / 2.0])
    if flip:
        Nf = Nf @ np.diag([-1.0, 1.0])
    c, s = math.cos(ang), math.sin(ang)
    R = np.array([[c, -s], [s, c]]) * kscale
    Ns = np.diag([2.0 / Wc, 2.0 / Hc])
    M = Ns @ R @ Nf
    t = Ns @ np.array([cx, cy])
    return np.concatenate([M, t[:, None]], axis=1)


def _view(rng, H, W, Hc, Wc, roll_deg):
    """A random camera view of the canvas: (2×3 matrix, source px per frame px)."""
    kmin = 1.0                                  # 1:1 pixels
    kmax = min(Wc / W, Hc / H) * 0.98           # nearly the whole canvas
    k = math.exp(rng.u(math.log(kmin), math.log(max(kmax, kmin))))
    ang = math.radians(rng.u(-1, 1) * roll_deg)
    half_w, half_h = k * W / 2.0, k * H / 2.0
    mx, my = max(Wc / 2.0 - half_w, 0.0), max(Hc / 2.0 - half_h, 0.0)
    cx, cy = rng.u(-mx, mx), rng.u(-my, my)
    flip = rng.u() < 0.5
    return (k, ang, cx, cy, flip)


def _apply(theta, grid):
    """theta 2×3 (tensor), grid ...×2 -> ...×2."""
    return grid @ theta[:, :2].T + theta[:, 2]


def _sample(src, grid, k):
    """src 3×Hc×Wc float; grid H×W×2 in source normalised coords; k source px per frame px.
    Pre-filters with 2× average pools so that bilinear sampling does not alias."""
    lvl = 0
    while k >= 2.0 and min(src.shape[-2:]) >= 16 and lvl < 3:
        src = Fn.avg_pool2d(src[None], 2)[0]
        k /= 2.0
        lvl += 1
    return Fn.grid_sample(src[None], grid[None], mode="bilinear", padding_mode="reflection",
                          align_corners=False)[0]


def luma(rgb, kr, kb):
    return kr * rgb[0:1] + (1.0 - kr - kb) * rgb[1:2] + kb * rgb[2:3]


def make_batch(cache, batch, size, seed, step, rank=0, cfg=None, device="cpu"):
    """-> dict of tensors on `device`:
    rgb1, rgb2 (B×3×H×W truth, sRGB [0,1]), grey1, grey2 (B×1×H×W noisy Y′), ref (B×3×H×W),
    self_ref (B, 1. where the reference is the clip's own frame), phi (B×H×W×2: frame t pixel ->
    frame t−1 normalised position), tmask (B×1×H×W: 1 where phi is known and inside frame t−1),
    kr, kb (B: the luma weights the grey was made with, which A's refinement reads the
    reference's luma with), kind (list of str)."""
    cfg = cfg or DataConfig()
    H, W = size
    Hc, Wc = cache.canvas
    rng = _Rng(batch_seed(seed, step, rank))
    f32 = dict(dtype=torch.float32, device=device)
    base = Fn.affine_grid(torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], **f32), (1, 1, H, W),
                          align_corners=False)[0]                                  # H×W×2
    n_photos = cache.photos.shape[0]
    out = {k: [] for k in ("rgb1", "rgb2", "grey1", "grey2", "ref", "self_ref", "phi", "tmask", "kind",
                           "kr", "kb")}

    def photo(i):
        return cache.photos[i].permute(2, 0, 1).to(torch.float32) / 255.0

    def frame(i):
        return cache.frames[i].permute(2, 0, 1).to(torch.float32) / 255.0

    def view_grid(v, pre=None):
        k, ang, cx, cy, flip = v
        th = torch.tensor(_affine(k, ang, cx, cy, flip, H, W, Hc, Wc), **f32)
        g = base if pre is None else pre
        return _apply(th, g), k

    for b in range(batch):
        use_clip = len(cache.clips) > 0 and rng.u() < cfg.p_clip
        v = _view(rng, H, W, Hc, Wc, cfg.roll_deg)
        if use_clip:
            c = rng.i(len(cache.clips))
            start, n = cache.clips[c]
            gap = 1 + rng.i(2) if n > 2 else 1
            t0 = rng.i(n - gap)
            s1, s2 = frame(start + t0), frame(start + t0 + gap)
            g1, k = view_grid(v)
            x1, x2 = _sample(s1, g1, k), _sample(s2, g1, k)
            phi = base.clone()
            tmask = torch.zeros(1, H, W, **f32)
            idx, own = None, s2
            kind = "clip"
        else:
            idx = rng.i(n_photos)
            src = photo(idx)
            g1, k = view_grid(v)
            # motion in frame pixels, as a matrix on normalised frame coords
            fast = 3.0 if rng.u() < cfg.p_fast else 1.0
            tx = rng.n(cfg.move_px * W) * fast
            ty = rng.n(cfg.move_px * W) * fast
            z = math.exp(rng.n(cfg.zoom_std) * fast)
            a = math.radians(rng.n(cfg.rot_std_deg) * fast)
            c_, s_ = math.cos(a) * z, math.sin(a) * z
            # in pixels: p' = R p + t; normalised: q' = D^-1 R D q + D^-1 t, D = diag(W/2, H/2)
            D = np.diag([W / 2.0, H / 2.0])
            Rm = np.linalg.inv(D) @ np.array([[c_, -s_], [s_, c_]]) @ D
            tm = np.linalg.inv(D) @ np.array([tx, ty])
            mth = torch.tensor(np.concatenate([Rm, tm[:, None]], axis=1), **f32)
            phi = _apply(mth, base)
            if rng.u() < cfg.p_elastic:
                gh, gw = cfg.elastic_grid
                ctrl = rng.tensor_n((1, 2, gh, gw)).to(device) * (cfg.elastic_std * rng.u())
                d = Fn.interpolate(ctrl, size=(H, W), mode="bicubic", align_corners=True)[0]
                phi = phi + d.permute(1, 2, 0)
            g2, _ = view_grid(v, phi)
            x1, x2 = _sample(src, g1, k), _sample(src, g2, k)
            tmask = ((phi.abs() <= 1.0).all(dim=-1)).to(torch.float32)[None]
            own = None
            kind = "photo"
        # reference
        r = rng.u()
        if r < cfg.p_self:
            cs = rng.u(*cfg.ref_crop)
            ox, oy = rng.u(-1, 1) * abs(1 - cs), rng.u(-1, 1) * abs(1 - cs)
            fl = -1.0 if rng.u() < 0.5 else 1.0
            rth = torch.tensor([[cs * fl, 0.0, ox], [0.0, cs, oy]], **f32)
            rg = _apply(rth, base)
            if use_clip:
                g, k2 = view_grid(v, rg)
                ref = _sample(own, g, k2 * cs)
            else:
                g, k2 = view_grid(v, _apply(mth, rg))
                ref = _sample(src, g, k2 * cs)
            self_ref = 1.0
        else:
            if r < cfg.p_self + cfg.p_similar and idx is not None and cache.similar.shape[1] > 0:
                j = int(cache.similar[idx][rng.i(cache.similar.shape[1])])
            else:
                j = rng.i(n_photos)
                if idx is not None and j == idx and n_photos > 1:
                    j = (j + 1 + rng.i(n_photos - 1)) % n_photos
            vr = _view(rng, H, W, Hc, Wc, cfg.roll_deg)
            g, k2 = view_grid(vr)
            ref = _sample(photo(j), g, k2)
            self_ref = 0.0
        kr, kb = BT709 if rng.u() < 0.5 else BT601
        sig = rng.u(0.0, cfg.noise_max)
        n1 = rng.tensor_n((1, H, W)).to(device) * sig
        n2 = rng.tensor_n((1, H, W)).to(device) * sig
        x1, x2, ref = x1.clamp(0, 1), x2.clamp(0, 1), ref.clamp(0, 1)
        out["rgb1"].append(x1)
        out["rgb2"].append(x2)
        out["grey1"].append((luma(x1, kr, kb) + n1).clamp(0, 1))
        out["grey2"].append((luma(x2, kr, kb) + n2).clamp(0, 1))
        out["ref"].append(ref)
        out["kr"].append(torch.tensor(kr, **f32))
        out["kb"].append(torch.tensor(kb, **f32))
        out["self_ref"].append(torch.tensor(self_ref, **f32))
        out["phi"].append(phi)
        out["tmask"].append(tmask)
        out["kind"].append(kind)
    res = {k: torch.stack(v) for k, v in out.items() if k != "kind"}
    res["kind"] = out["kind"]
    return res
