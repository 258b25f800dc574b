"""Colour conversions with the exact constants of docs/NETWORK.md (f32 torch tensors).

Channel dimension is -3 (C×H×W or N×C×H×W). Python float constants are applied to f32 tensors,
so the arithmetic is f32 (as in the C engine)."""
import torch

# sRGB primaries, D65.
M = [[0.4124564, 0.3575761, 0.1804375],
     [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
M_INV = [[3.2404542, -1.5371385, -0.4985314],
         [-0.9692660, 1.8760108, 0.0415560],
         [0.0556434, -0.2040259, 1.0572252]]
WHITE = (0.95047, 1.0, 1.08883)
DELTA = 6.0 / 29.0
DELTA3 = DELTA ** 3            # (6/29)^3, threshold of f
F_SLOPE = 3.0 * DELTA ** 2     # 3*(6/29)^2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def lin(c):
    """sRGB transfer inverse: c <= 0.04045 ? c/12.92 : ((c+0.055)/1.055)^2.4"""
    return torch.where(c <= 0.04045, c / 12.92, torch.pow((c + 0.055) / 1.055, 2.4))


def gam(c):
    """sRGB transfer: c <= 0.0031308 ? 12.92c : 1.055 c^(1/2.4) - 0.055 (no clamp)."""
    pos = torch.clamp(c, min=0.0031308)  # keeps pow away from negatives in the unused branch
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * torch.pow(pos, 1.0 / 2.4) - 0.055)


def f(t):
    """Lab f: t > (6/29)^3 ? t^(1/3) : t/(3(6/29)^2) + 4/29"""
    pos = torch.clamp(t, min=DELTA3)
    return torch.where(t > DELTA3, torch.pow(pos, 1.0 / 3.0), t / F_SLOPE + 4.0 / 29.0)


def finv(t):
    """Lab f^-1: t > 6/29 ? t^3 : 3(6/29)^2 (t - 4/29)"""
    return torch.where(t > DELTA, t * t * t, F_SLOPE * (t - 4.0 / 29.0))


def _mat3(m, x):
    c0, c1, c2 = x.unbind(-3)
    return torch.stack([m[i][0] * c0 + m[i][1] * c1 + m[i][2] * c2 for i in range(3)], dim=-3)


def rgb_to_lab(rgb):
    """sRGB [0,1] (3 planes) -> Lab (L in [0,100])."""
    xyz = _mat3(M, lin(rgb))
    X, Y, Z = xyz.unbind(-3)
    fx, fy, fz = f(X / WHITE[0]), f(Y), f(Z / WHITE[2])
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_xyz(L, a, b):
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    return torch.stack([WHITE[0] * finv(fx), finv(fy), WHITE[2] * finv(fz)], dim=-3)


def lab_to_linear(lab):
    L, a, b = lab.unbind(-3)
    return _mat3(M_INV, lab_to_xyz(L, a, b))


def lab_to_rgb(lab, clamp=True):
    """Lab -> sRGB R'G'B' = clamp01(gam(M^-1 XYZ)) (clamp=False: unclamped)."""
    rgb = gam(lab_to_linear(lab))
    return rgb.clamp(0.0, 1.0) if clamp else rgb


def grey_to_L(y):
    """Lightness of a neutral grey Y' in [0,1]: L = 116 f(lin(Y')) - 16."""
    return 116.0 * f(lin(y)) - 16.0


def luma(rgb, kr, kb):
    R, G, B = rgb.unbind(-3)
    return kr * R + (1.0 - kr - kb) * G + kb * B


def imagenet_norm(rgb):
    """Per-channel (x - mean) / std, channel dim -3."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb - mean) / std
