"""The vaefarm network in PyTorch, to the operation of docs/NETWORK.md.

state_dict names are the weights file's tensor names (F.*, A.*, C.*). Inference is in eval mode
(BN uses running statistics; InstanceNorm always uses the instance's statistics)."""
import torch
import torch.nn as nn
import torch.nn.functional as Fn

from . import lab as labmod
from .arch import get_arch

# reference pass-through: node/node.h's VF_PASSTHROUGH_TOL, VF_PASSTHROUGH_FRACTION
PASSTHROUGH_TOL = 4.0 / 255.0
PASSTHROUGH_FRACTION = 0.005


def l2n(x):
    """Divide each position's channel vector by max(||x||_2, 1e-6) (channel dim 1)."""
    return Fn.normalize(x, p=2.0, dim=1, eps=1e-6)


def centre_l2n(x):
    """Each channel minus its mean over the positions, then l2n."""
    return l2n(x - x.mean(dim=(2, 3), keepdim=True))


def conv_reflect(cin, cout, k=3, dilation=1, groups=1, bias=True):
    """conv k×k reflect: ReflectionPad2d(dilation·(k−1)/2) then an unpadded convolution."""
    pad = dilation * (k - 1) // 2
    if pad == 0:
        return nn.Conv2d(cin, cout, k, dilation=dilation, groups=groups, bias=bias)
    return nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, groups=groups, bias=bias,
                     padding_mode="reflect")


def inorm(c):
    return nn.InstanceNorm2d(c, affine=True, eps=1e-5)


def axis_matrix(n_in, n_out):
    """node/chunk.c axis_make as a dense n_out × n_in matrix (float64): the area average when
    shrinking, bilinear (align_corners=False, clamped) when growing or equal."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    s = n_in / n_out
    for o in range(n_out):
        if s > 1:
            lo, hi = o * s, (o + 1) * s
            i = int(lo)
            while i < n_in and i < hi:
                ov = min(hi, i + 1.0) - max(lo, float(i))
                if ov > 0:
                    m[o, i] += ov / s
                i += 1
        else:
            x = max((o + 0.5) * s - 0.5, 0.0)
            i0 = min(int(x), n_in - 1)
            m[o, i0] += 1 - (x - i0)
            m[o, min(i0 + 1, n_in - 1)] += x - i0
    return m


def resize_engine(x, size):
    """x (… × H × W) to size as vaefarm resizes a film's frame to the network's size (and the
    reference to it): separable, node/chunk.c's axis weights; identity when already that size."""
    H, W = x.shape[-2:]
    if (H, W) == tuple(size):
        return x
    mh, mw = (axis_matrix(n, m).to(x) for n, m in ((H, size[0]), (W, size[1])))
    return mh @ x @ mw.T


def resize_bilinear(x, size):
    """bilinear, align_corners=False, no antialias; identity when already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return Fn.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def nearest_up(x, s):
    return Fn.interpolate(x, scale_factor=s, mode="nearest")


# ----------------------------------------------------------------------------------------- F

class Bottleneck(nn.Module):
    """torchvision v1.5 bottleneck (stride on conv2)."""

    def __init__(self, inplanes, width, stride):
        super().__init__()
        out = width * 4
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out))
        else:
            self.downsample = None

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + idt)


class Trunk(nn.Module):
    """ResNet trunk in torchvision's layout for any stem/widths/blocks; forward -> 4 raw taps."""

    def __init__(self, stem, widths, blocks):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = stem
        for i, (w, n) in enumerate(zip(widths, blocks)):
            layer = []
            for b in range(n):
                layer.append(Bottleneck(inplanes, w, 2 if (b == 0 and i > 0) else 1))
                inplanes = w * 4
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layer))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        taps = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            taps.append(x)
        return taps


# ----------------------------------------------------------------------------------------- A

class Adapter(nn.Module):
    def __init__(self, cin, a, k):
        super().__init__()
        self.conv = conv_reflect(cin, a, k)
        self.norm = inorm(a)
        self.act = nn.PReLU(a)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = conv_reflect(c, c, 3)
        self.norm1 = inorm(c)
        self.act = nn.PReLU(c)
        self.conv2 = conv_reflect(c, c, 3)
        self.norm2 = inorm(c)

    def forward(self, x):
        return x + self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


class Corr(nn.Module):
    def __init__(self, tap_channels, a, res_blocks, tau):
        super().__init__()
        self.tau = tau
        self.adapt = nn.ModuleList([Adapter(c, a, 3 if k < 2 else 1)
                                    for k, c in enumerate(tap_channels)])
        self.res = nn.ModuleList([ResBlock(4 * a) for _ in range(res_blocks)])
        self.theta = nn.Conv2d(4 * a, 4 * a, 1)
        self.phi = nn.Conv2d(4 * a, 4 * a, 1)

    def features(self, taps, size4):
        """Shared part: adapters (+ bilinear to H/4×W/4), concatenation, residual blocks."""
        x = torch.cat([resize_bilinear(ad(t), size4) for ad, t in zip(self.adapt, taps)], dim=1)
        for blk in self.res:
            x = blk(x)
        return x

    def frame_side(self, taps, size4):
        """θ, centred and l2n'd."""
        return centre_l2n(self.theta(self.features(taps, size4)))

    def ref_side(self, taps, size4):
        """φ, centred and l2n'd."""
        return centre_l2n(self.phi(self.features(taps, size4)))

    def attend(self, theta, phi, ref_ab4, with_pos=False):
        """theta, phi: N×c×h×w (centred, l2n'd); ref_ab4: N×2×h×w.
        Returns (W^ab N×2×h×w, S N×1×h×w) at H/4×W/4 (before the nearest ×4); with_pos, also the
        expected position N×2×h×w (y, x in pixels of the matched cell's top-left corner: the
        same softmax over the values 4·row, 4·column), which the refinement searches around."""
        n, c, h, w = theta.shape
        th = theta.reshape(n, c, h * w).transpose(1, 2)        # N × (hw) × c
        ph = phi.reshape(n, c, h * w)                           # N × c × (hw)
        f = torch.bmm(th, ph)                                   # f(i, j) = θ_iᵀ φ_j
        S = f.max(dim=2).values                                 # N × hw
        p = torch.softmax(f / self.tau, dim=2)                  # softmax subtracts the row max
        v = ref_ab4
        if with_pos:
            v = torch.cat([ref_ab4, cell_positions(n, h, w, ref_ab4)], dim=1)
        k = v.shape[1]
        out = torch.bmm(p, v.reshape(n, k, h * w).transpose(1, 2)).transpose(1, 2).reshape(n, k, h, w)
        res = (out[:, :2], S.reshape(n, 1, h, w))
        return res + (out[:, 2:],) if with_pos else res


def cell_positions(n, h, w, like):
    """N×2×h×w: (4·row, 4·column) of each cell of A's grid, the top-left pixel it covers."""
    yy = torch.arange(h, dtype=like.dtype, device=like.device).view(h, 1).expand(h, w)
    xx = torch.arange(w, dtype=like.dtype, device=like.device).view(1, w).expand(h, w)
    return (4.0 * torch.stack([yy, xx]))[None].expand(n, 2, h, w)


def refine_centres(pos4, H, W):
    """Each pixel's refinement position v = pos + (y mod 4, x mod 4) (NETWORK.md, "A", refine):
    its floor (by, bx: N×H×W, long) and fractions (fy, fx: N×1×HW)."""
    n = pos4.shape[0]
    pos = nearest_up(pos4, 4)
    yy = torch.arange(H, device=pos4.device).view(1, H, 1)
    xx = torch.arange(W, device=pos4.device).view(1, 1, W)
    vy = pos[:, 0] + (yy % 4).to(pos.dtype)
    vx = pos[:, 1] + (xx % 4).to(pos.dtype)
    by, bx = torch.floor(vy), torch.floor(vx)
    fy, fx = (vy - by).reshape(n, 1, H * W), (vx - bx).reshape(n, 1, H * W)
    return by.long(), bx.long(), fy, fx


def refine_blend(cost, cab, fy, fx, h, tcost=None, tab=None):
    """The refinement's output from its candidates: cost N×D×D×HW, cab (their a, b) N×2×D×D×HW,
    D = 2·radius + 2: the softmax(−cost/h²) average over each of the four (D−1)² windows
    (centres floor(v) + {0, 1}²), blended bilinearly by v's fractions fy, fx. tcost N×K×HW, tab
    N×2×K×HW: the temporal candidates, which join every window's softmax."""
    n, D, _, P = cost.shape
    k = D - 1
    out = torch.zeros(n, 2, P, dtype=cost.dtype, device=cost.device)
    for oy in (0, 1):
        for ox in (0, 1):
            c = cost[:, oy:oy + k, ox:ox + k].reshape(n, k * k, P)
            a = cab[:, :, oy:oy + k, ox:ox + k].reshape(n, 2, k * k, P)
            if tcost is not None:
                c, a = torch.cat([c, tcost], 1), torch.cat([a, tab], 2)
            w = torch.softmax(c * (-1.0 / (h * h)), dim=1).unsqueeze(1)
            blend = (fy if oy else 1 - fy) * (fx if ox else 1 - fx)
            out += blend * (w * a).sum(dim=2)
    return out


def temporal_candidates(cur, prev, prev_ab, radius, patch):
    """The refinement's temporal candidates (NETWORK.md, "A", refine, temporal): X̂(t−1)'s a, b
    at s = clamp((y, x) + d), d in [−radius, radius]² (rows outer), each costing the mean squared
    difference of the patch×patch windows (coordinates clamped) of the frame's lightness around
    (y, x) and X̂(t−1)'s around s, in units of L/100. cur, prev: N×1×H×W, L − 50 (only
    differences count); prev_ab N×2×H×W -> (cost N×K×HW, a, b N×2×K×HW), K = (2·radius + 1)²."""
    n, _, H, W = cur.shape
    r = patch // 2
    pad = lambda t: Fn.pad(t, (r, r, r, r), mode="replicate")  # noqa: E731
    cp = Fn.unfold(pad(cur), patch)                     # N × p² × HW: each pixel's window
    pp = Fn.unfold(pad(prev), patch)
    yy = torch.arange(H, device=cur.device).view(H, 1)
    xx = torch.arange(W, device=cur.device).view(1, W)
    abf = prev_ab.reshape(n, 2, H * W)
    costs, cab = [], []
    for dy in range(-radius, radius + 1):
        sy = (yy + dy).clamp(0, H - 1)
        for dx in range(-radius, radius + 1):
            idx = (sy * W + (xx + dx).clamp(0, W - 1)).reshape(-1)
            d = (cp - pp[:, :, idx]) * 0.01
            costs.append((d * d).mean(dim=1))
            cab.append(abf[:, :, idx])
    return torch.stack(costs, 1), torch.stack(cab, 2)


# The sub-pixel step's regularisation, relative to the mean of the patch's two gradient energies
SUBPIXEL_LAMBDA = 0.01


def bilinear_at(img, yy, xx):
    """img N×C×H×W sampled bilinearly at (yy, xx) (N×P, pixels), each clamped to the image first
    -> N×C×P."""
    n, c, H, W = img.shape
    yy, xx = yy.clamp(0, H - 1), xx.clamp(0, W - 1)
    y0, x0 = torch.floor(yy).clamp(max=H - 2), torch.floor(xx).clamp(max=W - 2)
    fy, fx = (yy - y0)[:, None], (xx - x0)[:, None]
    y0, x0 = y0.long(), x0.long()
    f = img.reshape(n, c, H * W)

    def g(a, b):
        return f.gather(2, (a * W + b)[:, None].expand(n, c, a.shape[1]))
    return ((1 - fy) * ((1 - fx) * g(y0, x0) + fx * g(y0, x0 + 1))
            + fy * ((1 - fx) * g(y0 + 1, x0) + fx * g(y0 + 1, x0 + 1)))


# The cost of a motion-predicted candidate whose displacement lies in the temporal window (which
# already holds it): it weighs exactly 0 in every softmax and is never the cheapest
PREDICT_EXCLUDED = 1.0e30


def temporal_displacements(n, radius, P, device):
    """The temporal candidates' displacements d (rows outer), N×2×K×P long, K = (2·radius + 1)²."""
    r = torch.arange(-radius, radius + 1, device=device)
    d = torch.stack(torch.meshgrid(r, r, indexing="ij")).reshape(2, -1)
    return d[None, :, :, None].expand(n, 2, d.shape[1], P)


def temporal_predicted(cur, prev, prev_ab, motion, radius, predict, patch):
    """The refinement's motion-predicted temporal candidates (NETWORK.md, "A", refine, predict):
    at each pixel (y, x), m = motion(y, x) (frame t−1's cheapest temporal displacement, the
    recurrent state), the candidates X̂(t−1)'s warp a, b at s = clamp((y, x) + m + d),
    d in [−predict, predict]² (rows outer), costed as temporal_candidates() costs its own; a
    displacement m + d inside [−radius, radius]² (temporal_candidates()' window, which already
    holds it) costs PREDICT_EXCLUDED instead. cur, prev: N×1×H×W (L − 50); prev_ab, motion:
    N×2×H×W (motion (dy, dx) in whole pixels within the image, as correspond() writes it; read
    clamped to ±H, ±W and rounded) -> (cost N×K×HW, a, b N×2×K×HW, displacements m + d
    N×2×K×HW long), K = (2·predict + 1)²."""
    n, _, H, W = cur.shape
    r, P = patch // 2, H * W
    Wp = W + 2 * r
    cp = Fn.unfold(Fn.pad(cur, (r, r, r, r), mode="replicate"), patch)     # N × p² × HW
    pp = Fn.pad(prev, (r, r, r, r), mode="replicate").reshape(n, -1)
    # whole pixels within the image (the engine's vf_motion_read): the state holds no other
    lim = torch.tensor([H, W], dtype=motion.dtype, device=motion.device).view(1, 2, 1, 1)
    m = torch.maximum(torch.minimum(motion, lim), -lim).round().long().reshape(n, 2, P)
    pix = torch.arange(P, device=cur.device)
    py, px = pix // W, pix % W
    # the patch's offsets in the padded image: clamped coordinates are the replicate padding's
    off = (torch.arange(patch, device=cur.device).view(patch, 1) * Wp
           + torch.arange(patch, device=cur.device).view(1, patch)).reshape(1, -1, 1)
    abf = prev_ab.reshape(n, 2, P)
    costs, cab, disp = [], [], []
    for dy in range(-predict, predict + 1):
        ey = m[:, 0] + dy
        sy = (py + ey).clamp(0, H - 1)
        for dx in range(-predict, predict + 1):
            ex = m[:, 1] + dx
            sx = (px + ex).clamp(0, W - 1)
            win = pp.gather(1, ((sy * Wp + sx)[:, None] + off).reshape(n, -1)).reshape(n, patch * patch, P)
            d = (cp - win) * 0.01
            c = (d * d).mean(dim=1)
            inside = (ey.abs() <= radius) & (ex.abs() <= radius)
            costs.append(torch.where(inside, torch.full_like(c, PREDICT_EXCLUDED), c))
            cab.append(abf.gather(2, (sy * W + sx)[:, None].expand(n, 2, P)))
            disp.append(torch.stack([ey, ex], 1))
    return torch.stack(costs, 1), torch.stack(cab, 2), torch.stack(disp, 2)


def temporal_best(cost, disp):
    """The cheapest temporal candidate of each pixel (the first on ties) of costs N×K×HW with
    displacements disp N×2×K×HW -> (its index N×HW, its displacement d* N×2×HW)."""
    best = cost.argmin(dim=1)
    return best, disp.gather(2, best[:, None, None].expand(-1, 2, 1, -1))[:, :, 0]


def temporal_subpixel(cost, cur, prev, prev_ab, radius, patch, disp=None):
    """The refinement's sub-pixel temporal candidate (NETWORK.md, "A", refine, sub-pixel): from
    temporal_candidates()' costs (N×K×HW, K = (2·radius + 1)², rows outer), at each pixel (y, x)
    the cheapest displacement d* (the first on ties), its source s = clamp((y, x) + d*), and one
    Lucas–Kanade step from there: with g = frame t−1's lightness gradient (central differences,
    coordinates clamped) at the patch's positions around s (clamped) and e = cur − prev there,
    o = (G + λI)⁻¹ Σ g·e, G = Σ g gᵀ, λ = SUBPIXEL_LAMBDA · (G_yy + G_xx) / 2 (o = 0 where G is
    0), each component clamped to [−½, ½]. The candidate is X̂(t−1)'s warp prev_ab (N×2×H×W)
    sampled bilinearly at s + o (clamped to the image), at d*'s cost. cur, prev: N×1×H×W, the
    lightness of temporal_candidates(). disp (N×2×K×HW long): the candidates' displacements when
    there are more than temporal_candidates()' (the motion-predicted ones, temporal_predicted()),
    None: those of its (2·radius + 1)² window. -> (cost N×1×HW, a, b N×2×1×HW)."""
    n, _, P = cost.shape
    H, W = prev.shape[2:]
    r = patch // 2
    if disp is None:
        disp = temporal_displacements(n, radius, P, cost.device)
    best, ds = temporal_best(cost, disp)
    pix = torch.arange(P, device=cost.device)
    py, px = pix // W, pix % W
    sy = (py + ds[:, 0]).clamp(0, H - 1)
    sx = (px + ds[:, 1]).clamp(0, W - 1)
    ys, xs = torch.arange(H, device=cost.device), torch.arange(W, device=cost.device)
    up, dn = (ys + 1).clamp(max=H - 1), (ys - 1).clamp(min=0)
    rt, lf = (xs + 1).clamp(max=W - 1), (xs - 1).clamp(min=0)
    gy = (0.5 * (prev[:, :, up] - prev[:, :, dn])).reshape(n, P)
    gx = (0.5 * (prev[:, :, :, rt] - prev[:, :, :, lf])).reshape(n, P)
    pf, cf = prev.reshape(n, P), cur.reshape(n, P)
    Gyy = Gxy = Gxx = by = bx = torch.zeros(n, P, dtype=cost.dtype, device=cost.device)
    for u in range(-r, r + 1):
        qy, cy = (sy + u).clamp(0, H - 1), (py + u).clamp(0, H - 1)
        for v in range(-r, r + 1):
            q = qy * W + (sx + v).clamp(0, W - 1)
            e = cf[:, cy * W + (px + v).clamp(0, W - 1)] - pf.gather(1, q)
            a, b = gy.gather(1, q), gx.gather(1, q)
            Gyy, Gxy, Gxx = Gyy + a * a, Gxy + a * b, Gxx + b * b
            by, bx = by + a * e, bx + b * e
    lam = SUBPIXEL_LAMBDA * 0.5 * (Gyy + Gxx)
    det = (Gyy + lam) * (Gxx + lam) - Gxy * Gxy
    ok = det > 0
    safe = torch.where(ok, det, torch.ones_like(det))
    oy = torch.where(ok, ((Gxx + lam) * by - Gxy * bx) / safe, torch.zeros_like(det)).clamp(-0.5, 0.5)
    ox = torch.where(ok, ((Gyy + lam) * bx - Gxy * by) / safe, torch.zeros_like(det)).clamp(-0.5, 0.5)
    c0 = cost.gather(1, best[:, None])
    return c0, bilinear_at(prev_ab, sy.to(cost.dtype) + oy, sx.to(cost.dtype) + ox)[:, :, None]


def refine_warp(grey, ref_y, ref_ab, pos4, radius, patch, h, temporal=None):
    """The local refinement of the warp (NETWORK.md, "A", refine), at the network's size.
    grey, ref_y: N×1×H×W (the frame's Y′ and the reference's, from its R′G′B′ with the film's
    Kr, Kb); ref_ab: N×2×H×W (the reference's a, b, not pooled); pos4: N×2×H/4×W/4 (attend()'s
    expected positions, within [0, H−4] × [0, W−4]: convex combinations of cell corners).
    Pixel (y, x) of cell (y/4, x/4) looks around v = pos + (y mod 4, x mod 4). Around an integer
    centre c, each candidate s = clamp(c + d), d in [−radius, radius]², costs the mean squared
    difference of the patch×patch luma windows around (y, x) and s (coordinates clamped to the
    image) and R(c) = Σ_d w_d ref_ab(s_d), w = softmax_d(−cost_d / h²). The output is the
    bilinear blend of R over the four centres around v, floor(v) + {0, 1}², weighted by v's
    fractions, so it moves continuously with v. temporal: (cost, a, b) of temporal_candidates(),
    which join each centre's softmax, or None. No gradient: it moves pixels of the reference (and
    of X̂(t−1)), and A learns through W^ab's own losses.
    Computed per 4×4 cell: every pixel of a cell has the same v − (y, x) up to its fraction, so
    the costs of the (2·radius + 4)² displacements around the cell's floor(pos) are one grouped
    correlation of the pixels' grey patches over the cell's reference region (test_reference.py
    checks it against the direct per-pixel definition)."""
    with torch.no_grad():
        n, _, H, W = grey.shape
        r = patch // 2
        h4, w4 = H // 4, W // 4
        nc = h4 * w4
        E = 2 * radius + 4                  # cell candidates per axis: −radius−1 … radius+2
        D = 2 * radius + 2                  # pixel candidates per axis: −radius … radius+1
        by, bx, fy, fx = refine_centres(pos4, H, W)
        # each cell's base: floor of its expected position (within [0, H−4] × [0, W−4]: a convex
        # combination of cell corners)
        cy = torch.floor(pos4[:, 0]).long().clamp(0, H - 4)
        cx = torch.floor(pos4[:, 1]).long().clamp(0, W - 4)
        # costs per cell and candidate: |g − r|² = Σg² − 2·g⋆r + Σr² over each pixel's patch, the
        # cross term a grouped correlation of the pixel's grey patch over the cell's reference
        # region (rows c − radius − 1 − r … c + radius + 5 + r), in the tensors' own precision
        S = 2 * radius + 2 * r + 7
        Pl, Ph = radius + 1 + r, radius + r + 2
        rp = Fn.pad(ref_y, (Pl, Ph, Pl, Ph), mode="replicate")
        Wp = W + Pl + Ph
        ar = torch.arange(S, device=grey.device)
        ridx = ((cy.reshape(n, nc, 1, 1) + ar.view(1, 1, S, 1)) * Wp
                + cx.reshape(n, nc, 1, 1) + ar.view(1, 1, 1, S))
        reg = rp.reshape(n, -1).gather(1, ridx.reshape(n, -1)).reshape(n * nc, 1, S, S)
        gp = Fn.unfold(Fn.pad(grey, (r, r, r, r), mode="replicate"), patch)     # n × p² × HW
        gp = gp.view(n, patch * patch, h4, 4, w4, 4).permute(0, 2, 4, 3, 5, 1)  # n,h4,w4,ky,kx,p²
        # centred on the cell's mean reference luma: the expansion cancels less
        mu = reg.mean(dim=(1, 2, 3))
        reg = reg - mu.view(n * nc, 1, 1, 1)
        gp = gp.reshape(n * nc * 16, 1, patch, patch) - mu.repeat_interleave(16).view(-1, 1, 1, 1)
        xc = Fn.conv2d(reg.view(1, n * nc, S, S), gp, groups=n * nc)       # 1 × n·nc·16 × FO × FO
        FO = S - patch + 1
        r2 = Fn.avg_pool2d(reg * reg, patch, stride=1) * (patch * patch)   # n·nc × 1 × FO × FO
        g2 = (gp * gp).sum(dim=(1, 2, 3)).view(n * nc, 16, 1)
        k16 = torch.arange(4, device=grey.device)
        ae = torch.arange(E, device=grey.device)
        sel = ((k16.view(4, 1, 1, 1) + ae.view(1, 1, E, 1)) * FO
               + k16.view(1, 4, 1, 1) + ae.view(1, 1, 1, E)).reshape(1, 16, E * E)
        xs = xc.view(n * nc, 16, FO * FO).gather(2, sel.expand(n * nc, 16, E * E))
        rs = r2.view(n * nc, 1, FO * FO).expand(n * nc, 16, FO * FO).gather(2, sel.expand(n * nc, 16, E * E))
        costc = (g2 - 2 * xs + rs) * (1.0 / (patch * patch))              # n·nc × 16 × E²
        costc = costc.view(n, h4, w4, 4, 4, E * E).permute(0, 5, 1, 3, 2, 4).reshape(n, E * E, H * W)
        # each pixel's own base (floor of its position) against its cell's base
        ky = (torch.arange(H, device=grey.device) % 4).view(1, H, 1).expand(1, H, W)
        kx = (torch.arange(W, device=grey.device) % 4).view(1, 1, W).expand(1, H, W)
        cyu = nearest_up(cy.unsqueeze(1).to(pos4.dtype), 4)[:, 0].long()
        cxu = nearest_up(cx.unsqueeze(1).to(pos4.dtype), 4)[:, 0].long()
        abf = ref_ab.reshape(n, 2, H * W)
        cost = torch.empty(n, D, D, H * W, dtype=grey.dtype, device=grey.device)
        cab = torch.empty(n, 2, D, D, H * W, dtype=grey.dtype, device=grey.device)
        for a, dy in enumerate(range(-radius, radius + 2)):
            sy = (by + dy).clamp(0, H - 1)
            jy = (sy - cyu - ky + radius + 1).clamp(0, E - 1)
            for b, dx in enumerate(range(-radius, radius + 2)):
                sx = (bx + dx).clamp(0, W - 1)
                jx = (sx - cxu - kx + radius + 1).clamp(0, E - 1)
                cost[:, a, b] = costc.gather(1, (jy * E + jx).reshape(n, 1, H * W))[:, 0]
                cab[:, :, a, b] = abf.gather(2, (sy * W + sx).reshape(n, 1, H * W).expand(n, 2, H * W))
        tc, ta = temporal if temporal is not None else (None, None)
        return refine_blend(cost, cab, fy, fx, h, tc, ta).reshape(n, 2, H, W)


# ----------------------------------------------------------------------------------------- C

class Level(nn.Module):
    """A container whose children are registered by name ("0", "1", ..., "norm", "down", ...)."""

    def __init__(self, **named):
        super().__init__()
        for k, m in named.items():
            self.add_module(k, m)

    def convs(self):
        out, j = [], 0
        while str(j) in self._modules:
            out.append(self._modules[str(j)])
            j += 1
        return out


def motion_factor(x7, kappa, radius=None):
    """C.gate_motion's factor on the gate: m / (m + κ), m the mean of |L(t) − L(t−1)| (x7's
    channels 0 and 4; a held shot gives 0, and C then leaves its warp, the previous frame's
    colours carried, exactly alone). radius None: over the whole frame, one factor an image
    (N×1×1×1); radius r (C.gate_motion_radius): per pixel, over its (2r + 1)² window clipped at
    the frame's borders (the mean of the pixels inside), N×1×H×W, so that C leaves the warp alone
    where the picture is still and corrects where it moves. x7: N×7×H×W."""
    d = (x7[:, 0:1] - x7[:, 4:5]).abs()
    if radius is None:
        m = d.mean(dim=(1, 2, 3), keepdim=True)
    else:
        m = Fn.avg_pool2d(d, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    return m / (m + kappa)


def gate_ramp_factor(age, K):
    """C.gate_ramp's factor on the gate: min(1, k / K) for the k-th frame after a reference
    pass-through (k = age + 1, age the state's: 0 at the pass-through frame), 1 where the state
    has none (age < 0: the zero state, a warm-up). Right after a pass-through the warp carries
    the reference's own colours, nearly exact, and C's correction (learnt for the drift of later
    frames) costs there more than it gains: it comes in over K frames. age: a tensor (any
    shape); float32 result of its shape."""
    k = (age + 1).to(torch.float32)
    return torch.where(age >= 0, torch.clamp(k / float(K), max=1.0), torch.ones_like(k))


class ColorNet(nn.Module):
    def __init__(self, widths, enc_convs, mid, latent, dec_widths, dec_convs, residual=False, gate=False,
                 gate_motion=None, gate_motion_radius=None, gate_ramp=None):
        super().__init__()
        self.residual = residual   # ab = W^ab + 128·tanh(out) (NETWORK.md, "C")
        self.gate = gate           # ab = W^ab + σ(out₂)·128·tanh(out₀,₁): C can leave W^ab alone
        self.gate_motion = gate_motion   # κ: the gate also scaled by motion_factor(x7, κ, r)
        self.gate_motion_radius = gate_motion_radius   # r: that factor per pixel (None: per image)
        self.gate_ramp = gate_ramp   # K: the gate opens over K frames after a pass-through (the
        #                              caller's ramp argument, gate_ramp_factor; kept for training)
        self.enc = nn.ModuleList()
        cin = 7
        for l in range(4):
            m = {}
            for j in range(enc_convs[l]):
                m[str(j)] = conv_reflect(cin if j == 0 else widths[l], widths[l], 3)
            m["norm"] = inorm(widths[l])
            if l < 3:
                m["down"] = nn.Conv2d(widths[l], widths[l], 1, stride=2, groups=widths[l], bias=False)
            self.enc.append(Level(**m))
            cin = widths[l]
        self.mid = nn.ModuleList()
        for grp in mid:
            m = {str(j): conv_reflect(widths[3], widths[3], 3, dilation=d) for j, d in enumerate(grp)}
            m["norm"] = inorm(widths[3])
            self.mid.append(Level(**m))
        self.mu = nn.Conv2d(widths[3], latent, 1)
        self.logvar = nn.Conv2d(widths[3], latent, 1)
        self.dec = nn.ModuleList()
        cin = latent
        for k in range(3):
            s = 2 - k
            m = {"up": conv_reflect(cin, dec_widths[k], 3),
                 "skip": conv_reflect(widths[s], dec_widths[k], 3)}
            for j in range(dec_convs[k]):
                m[str(j)] = conv_reflect(dec_widths[k], dec_widths[k], 3)
            if k < 2:
                m["norm"] = inorm(dec_widths[k])
            self.dec.append(Level(**m))
            cin = dec_widths[k]
        self.out = nn.Conv2d(dec_widths[2], 3 if gate else 2, 1)

    def encode(self, x):
        """-> (skips e_0, e_1, e_2, bottleneck features h) ."""
        skips = []
        for l, lvl in enumerate(self.enc):
            if l > 0:
                x = self.enc[l - 1].down(x)
            for conv in lvl.convs():
                x = Fn.relu(conv(x))
            x = lvl.norm(x)
            skips.append(x)
        for grp in self.mid:
            for conv in grp.convs():
                x = Fn.relu(conv(x))
            x = grp.norm(x)
        return skips[:3], x

    def decode(self, z, skips, x7, ramp=None):
        x = z
        for k, lvl in enumerate(self.dec):
            act = Fn.relu if k < 2 else (lambda t: Fn.leaky_relu(t, 0.2))
            y = act(lvl.up(nearest_up(x, 2)) + lvl.skip(skips[2 - k]))
            for conv in lvl.convs():
                y = act(conv(y))
            if k < 2:
                y = lvl.norm(y)
            x = y
        o = self.out(x)
        ab = 128.0 * torch.tanh(o[:, 0:2])
        if self.gate:
            ab = torch.sigmoid(o[:, 2:3]) * ab
            if self.gate_motion is not None:
                ab = motion_factor(x7, self.gate_motion, self.gate_motion_radius) * ab
            if ramp is not None:   # C.gate_ramp's factor (Net.frame): a number or N×1×1×1
                ab = ramp * ab
        return x7[:, 1:3] + ab if self.residual else ab

    def forward(self, x, ramp=None):
        """Inference: z = μ. x: N×7×H×W -> ab N×2×H×W. ramp: the gated correction's factor
        after a pass-through (gate_ramp_factor; None: 1)."""
        skips, h = self.encode(x)
        return self.decode(self.mu(h), skips, x, ramp)

    def forward_train(self, x, sample=True, ramp=None):
        """Training: returns (ab, mu, logvar); z = μ + σ·ε when sample else μ."""
        skips, h = self.encode(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        return self.decode(z, skips, x, ramp), mu, logvar


# ----------------------------------------------------------------------------------------- Net

def luma_of(rgb, kr, kb):
    """N×3×H×W R′G′B′ -> N×1×H×W Y′ = Kr·R′ + (1 − Kr − Kb)·G′ + Kb·B′ (kr, kb: numbers or
    N-vectors)."""
    kr = torch.as_tensor(kr, dtype=rgb.dtype, device=rgb.device).reshape(-1, 1, 1, 1)
    kb = torch.as_tensor(kb, dtype=rgb.dtype, device=rgb.device).reshape(-1, 1, 1, 1)
    return kr * rgb[:, 0:1] + (1.0 - kr - kb) * rgb[:, 1:2] + kb * rgb[:, 2:3]


def _batched(x, nd):
    """Add a batch dim if x has nd dims (returns tensor, was_unbatched)."""
    if x.dim() == nd:
        return x.unsqueeze(0), True
    return x, False


class Net(nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.arch = get_arch(arch)
        a = self.arch
        self.F = Trunk(a["F"]["stem"], a["F"]["widths"], a["F"]["blocks"])
        taps = [4 * w for w in a["F"]["widths"]]
        self.A = Corr(taps, a["A"]["adapter"], a["A"]["res_blocks"], a["A"]["tau"])
        self.C = self._colornet()

    def _colornet(self):
        """C as self.arch["C"] describes it (fresh weights)."""
        c = self.arch["C"]
        return ColorNet(c["widths"], c["enc_convs"], c["mid"], c["latent"], c["dec_widths"],
                        c["dec_convs"], c["residual"], c.get("gate", False), c.get("gate_motion"),
                        c.get("gate_motion_radius"), c.get("gate_ramp"))

    def set_gate_motion(self, kappa, radius=None):
        """Give the gated C the motion factor (arch C.gate_motion = κ; None: none), per image or,
        with radius r, per pixel over (2r + 1)² windows (arch C.gate_motion_radius). No weight
        changes. The arch's checks (a gated C, κ's and r's bounds) raise ArchError, a ValueError."""
        c = {k: v for k, v in self.arch["C"].items() if k not in ("gate_motion", "gate_motion_radius")}
        if kappa is not None:
            c["gate_motion"] = kappa
        if radius is not None:
            c["gate_motion_radius"] = radius
        self.arch = get_arch(dict(self.arch, C=c))
        self.C.gate_motion = self.arch["C"].get("gate_motion")
        self.C.gate_motion_radius = self.arch["C"].get("gate_motion_radius")

    def set_gate_ramp(self, k):
        """Give the gated C the ramp after a pass-through (arch C.gate_ramp = K frames; None:
        none). No weight changes; the arch's checks raise ArchError, a ValueError."""
        c = {key: v for key, v in self.arch["C"].items() if key != "gate_ramp"}
        if k is not None:
            c["gate_ramp"] = k
        self.arch = get_arch(dict(self.arch, C=c))
        self.C.gate_ramp = self.arch["C"].get("gate_ramp")

    def add_gate(self, bias, weight=None):
        """Give the residual C a gate (arch C.gate: ab = W^ab + σ(out₂)·128·tanh(out₀,₁), a
        saturating switch with which C can leave a right warp alone, where a correction of exactly
        0 asks every output of tanh to be 0): the same weights, and out gets a third channel of
        bias `bias` and weight `weight` (1×in×1×1; default 0), so that by default the correction
        starts scaled by σ(bias) everywhere (0.88 at 2)."""
        c = self.arch["C"]
        if not c["residual"] or c.get("gate"):
            raise ValueError("a gate needs a residual C without one")
        sd = self.C.state_dict()
        w, b = sd["out.weight"], sd["out.bias"]
        g = torch.zeros_like(w[:1]) if weight is None else weight.to(w)
        if g.shape != w[:1].shape:
            raise ValueError("the gate's weight must be %s, got %s" % (list(w[:1].shape), list(g.shape)))
        sd["out.weight"] = torch.cat([w, g])
        sd["out.bias"] = torch.cat([b, torch.full_like(b[:1], float(bias))])
        self.arch = dict(self.arch, C=dict(c, gate=True))
        mode = self.C.training
        self.C = self._colornet().to(w)
        self.C.load_state_dict(sd)
        self.C.train(mode)

    # -- pieces -------------------------------------------------------------------------------
    def taps(self, rgb):
        """rgb N×3×H×W in [0,1] -> 4 l2n'd taps."""
        return [l2n(t) for t in self.F(labmod.imagenet_norm(rgb))]

    @staticmethod
    def check_size(H, W):
        if H % 8 or W % 8:
            raise ValueError("inference size %dx%d: both must be multiples of 8" % (H, W))

    def reference(self, rgb, kr=0.2126, kb=0.0722):
        """rgb (3×H×W or N×3×H×W, sRGB [0,1]) -> cache {phi (centred, l2n'd), ref_ab (pooled
        4×4), taps (l2n'd)} and, when A refines, {ref_y (its luma Y′ with the film's Kr, Kb),
        ref_ab_full (its a, b)}; batched like the input. kr, kb: numbers or N-vectors."""
        x, unb = _batched(rgb, 3)
        H, W = x.shape[-2:]
        self.check_size(H, W)
        taps = self.taps(x)
        phi = self.A.ref_side(taps, (H // 4, W // 4))
        ab = labmod.rgb_to_lab(x)[:, 1:3]
        cache = {"phi": phi, "ref_ab": Fn.avg_pool2d(ab, 4, stride=4), "taps": taps}
        if self.arch["A"].get("refine"):
            cache.update(ref_y=luma_of(x, kr, kb), ref_ab_full=ab)
        if unb:
            cache = {k: ([t[0] for t in v] if isinstance(v, list) else v[0]) for k, v in cache.items()}
        return cache

    def correspond(self, grey, theta, phi, ref_ab4, ref_y=None, ref_ab=None, prev=None,
                   with_motion=False):
        """A's attention and warp for frames grey (N×1×H×W) with features theta against the
        reference's phi, ref_ab4 (and ref_y, ref_ab when A refines) -> (W^ab at H/4, S at H/4,
        W^ab at H×W, S at H×W). Without refine the H×W warp is the nearest ×4 of the H/4 one.
        prev: N×3×H×W, (L − 50, a, b) of frame t−1's lightness and warp W^ab(t−1), for the
        refinement's temporal candidates (when the arch has them), or None for the zero state
        (none); with A.refine.predict, N×5×H×W: frame t−1's motion (dy, dx) too (3 channels:
        motion 0). with_motion: also return the frame's motion, N×2×H×W (its cheapest temporal
        displacement d*, as the pixel it takes from: clamp((y, x) + d*) − (y, x); 0 at the zero
        state or without temporal candidates), the next frame's state."""
        ref = self.arch["A"].get("refine")
        n, _, H, W = grey.shape
        motion = torch.zeros(n, 2, H, W, dtype=grey.dtype, device=grey.device)
        if not ref:
            wab4, S4 = self.A.attend(theta, phi, ref_ab4)
            res = wab4, S4, nearest_up(wab4, 4), nearest_up(S4, 4)
            return res + (motion,) if with_motion else res
        wab4, S4, pos4 = self.A.attend(theta, phi, ref_ab4, with_pos=True)
        temporal = None
        if prev is not None and ref.get("temporal"):
            with torch.no_grad():
                T, patch = ref["temporal"], ref["patch"]
                cur, pl, pab = labmod.grey_to_L(grey) - 50.0, prev[:, 0:1], prev[:, 1:3]
                tc, tab = temporal_candidates(cur, pl, pab, T, patch)
                disp = temporal_displacements(n, T, H * W, grey.device)
                if ref.get("predict"):
                    pm = prev[:, 3:5] if prev.shape[1] >= 5 else motion
                    qc, qab, qd = temporal_predicted(cur, pl, pab, pm, T, ref["predict"], patch)
                    tc, tab, disp = torch.cat([tc, qc], 1), torch.cat([tab, qab], 2), torch.cat([disp, qd], 2)
                if with_motion:     # where d* takes each pixel from, clamped, minus the pixel
                    ds = temporal_best(tc, disp)[1]
                    pix = torch.arange(H * W, device=grey.device)
                    py, px = pix // W, pix % W
                    motion = torch.stack([(py + ds[:, 0]).clamp(0, H - 1) - py,
                                          (px + ds[:, 1]).clamp(0, W - 1) - px], 1)
                    motion = motion.to(grey.dtype).reshape(n, 2, H, W)
                if ref.get("subpixel"):
                    sc, sab = temporal_subpixel(tc, cur, pl, pab, T, patch, disp)
                    tc, tab = torch.cat([tc, sc], 1), torch.cat([tab, sab], 2)
            # in the reference candidates' units: cost / h_t² = (cost · (h / h_t)²) / h²
            temporal = (tc * (ref["h"] / ref["temporal_h"]) ** 2, tab)
        warp = refine_warp(grey, ref_y, ref_ab, pos4, ref["radius"], ref["patch"], ref["h"],
                           temporal)
        res = wab4, S4, warp, nearest_up(S4, 4)
        return res + (motion,) if with_motion else res

    def frame(self, grey, cache, prev_lab=None):
        """grey: H×W, 1×H×W or N×1×H×W (Y' in [0,1]); cache from reference(); prev_lab: the
        recurrent state of frame t−1, out["prev"]: X̂(t−1) = (L−50, a, b) and W^ab(t−1) (a, b),
        5×H×W / N×5×H×W (its first 3 channels alone do when the arch has no temporal
        candidates), with A.refine.predict 7 channels (frame t−1's motion (dy, dx) last), with
        C.gate_ramp one more, last (the frames since a reference pass-through, a constant plane:
        0 for the pass-through frame, −1 for none; the whole out["prev"] is then needed), or
        None for the zero state.
        Returns {taps, warp_ab, conf, ab, prev, L} (unbatched if grey was)."""
        if grey.dim() == 2:
            g, unb = grey[None, None], True
        elif grey.dim() == 3:
            g, unb = grey[None], True
        else:
            g, unb = grey, False
        n, _, H, W = g.shape
        self.check_size(H, W)
        refs = [cache[k] for k in ("phi", "ref_ab", "ref_y", "ref_ab_full") if k in cache]
        refs = [r[None] if r.dim() == 3 else r for r in refs]
        refs = [r.expand(n, -1, -1, -1) if r.shape[0] != n else r for r in refs]
        L = labmod.grey_to_L(g)
        taps = self.taps(g.expand(n, 3, H, W))
        theta = self.A.frame_side(taps, (H // 4, W // 4))
        if prev_lab is not None and prev_lab.dim() == 3:
            prev_lab = prev_lab[None]
        # the motion is state only with A.refine.predict: without it, it is not computed
        predict = bool((self.arch["A"].get("refine") or {}).get("predict"))
        ramp_k = self.arch["C"].get("gate_ramp")
        age = torch.full((n, 1, 1, 1), -1.0, dtype=g.dtype, device=g.device)
        if ramp_k and prev_lab is not None:
            core = 7 if predict else 5
            if prev_lab.shape[1] != core + 1:
                raise ValueError("frame: the arch has C.gate_ramp: prev_lab needs all %d channels "
                                 "of out[\"prev\"] (the last: frames since a pass-through)" % (core + 1))
            age, prev_lab = prev_lab[:, core:, :1, :1], prev_lab[:, :core]
        # the temporal candidates read frame t−1's lightness and warp (not C's output: the warp's
        # chain stays C's input, which C corrects once, not again every frame)
        pw = None if prev_lab is None or prev_lab.shape[1] < 5 else \
            torch.cat([prev_lab[:, 0:1], prev_lab[:, 3:7]], dim=1)
        if pw is None and prev_lab is not None and (self.arch["A"].get("refine") or {}).get("temporal"):
            raise ValueError("frame: the arch has temporal candidates: prev_lab needs W^ab(t−1) "
                             "(5 channels, out[\"prev\"])")
        _, _, warp_ab, conf, *motion = self.correspond(g, theta, *refs, prev=pw, with_motion=predict)
        if prev_lab is None:
            prev = torch.zeros(n, 3, H, W, dtype=g.dtype, device=g.device)
        else:
            prev = prev_lab[:, :3]
        x7 = torch.cat([L - 50.0, warp_ab, conf, prev], dim=1)
        ramp = gate_ramp_factor(age, ramp_k).to(g.dtype) if ramp_k else None
        ab = self.C(x7, ramp)
        if ramp_k:   # the state's age: one frame more, or still none
            age = torch.where(age >= 0, age + 1.0, age).expand(n, 1, H, W)
        out = {"taps": taps, "theta": theta, "warp_ab": warp_ab, "conf": conf, "ab": ab,
               "prev": torch.cat([L - 50.0, ab, warp_ab] + motion + ([age] if ramp_k else []), dim=1),
               "L": L, "x7": x7}
        if unb:
            out = {k: ([t[0] for t in v] if isinstance(v, list) else v[0]) for k, v in out.items()}
        return out

    @staticmethod
    def is_reference_frame(grey, ref_y):
        """Reference pass-through's test (the engine's, node/node.h VF_PASSTHROUGH_TOL and
        _FRACTION): the frame is its reference's own picture when at most 0.5% of the pixels of
        its grey (at inference size) differ from the reference's luma Y′ by more than 4/255."""
        off = int(((grey - ref_y).abs() > PASSTHROUGH_TOL).sum())
        return off <= int(grey.numel() * PASSTHROUGH_FRACTION)

    def passthrough(self, grey, ref_rgb):
        """Reference pass-through (docs/NODE.md): the frame grey (H×W or N×1×H×W) is the
        reference's own picture, so no network runs: {ab: the reference's a, b; prev: the next
        frame's state (L − 50, the reference's a, b as X̂ and as W^ab, with A.refine.predict a
        motion of 0, with C.gate_ramp an age of 0)}, batched like grey. Which frames are (the engine's test, node.h
        VF_PASSTHROUGH_TOL) is not decided here."""
        unb = grey.dim() < 4
        g = grey.reshape(-1, 1, *grey.shape[-2:])
        x = ref_rgb if ref_rgb.dim() == 4 else ref_rgb[None]
        ab = labmod.rgb_to_lab(x)[:, 1:3].expand(g.shape[0], -1, -1, -1)
        st = [labmod.grey_to_L(g) - 50.0, ab, ab]
        if (self.arch["A"].get("refine") or {}).get("predict"):
            st.append(torch.zeros_like(ab))
        if self.arch["C"].get("gate_ramp"):
            st.append(torch.zeros_like(ab[:, :1]))
        out = {"ab": ab, "prev": torch.cat(st, dim=1)}
        return {k: v[0] for k, v in out.items()} if unb else out

    def logvar(self, x7):
        """Training: log σ² of the latent for the 7-channel input."""
        _, h = self.C.encode(x7)
        return self.C.logvar(h)

    # -- post-processing (always f32) ---------------------------------------------------------
    @staticmethod
    def box(x, r):
        """Mean over the (2r+1)² window clipped at the borders (divided by the count inside)."""
        return Fn.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)

    def upsample(self, grey_lo, ab, grey_full):
        """Post step 1 with this architecture's upsample.radius and eps (radius 0: bilinear)."""
        u = self.arch["upsample"]
        if u["radius"] == 0:    # guided_up's A = 0, B = ab exactly: the same bits, 5 passes fewer
            return resize_bilinear(ab, grey_full.shape[-2:])
        return self.guided_up(grey_lo, ab, grey_full, r=u["radius"], eps=u["eps"])

    @staticmethod
    def guided_up(grey_lo, ab, grey_full, r=2, eps=1e-3):
        """Fast guided filter: I = grey_lo N×1×H×W, p = ab N×2×H×W, Ifull N×1×h×w. With r = 0
        every window is one pixel: A = 0 and B = p exactly, so it is bilinear upsampling of p."""
        box = Net.box
        I, p = grey_lo, ab
        mI, mp = box(I, r), box(p, r)
        A = (box(I * p, r) - mI * mp) / (box(I * I, r) - mI * mI + eps)
        B = mp - A * mI
        size = tuple(grey_full.shape[-2:])
        up = lambda t: Fn.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
        return up(box(A, r)) * grey_full + up(box(B, r))

    @staticmethod
    def keep_luma(grey_full, ab_full, kr, kb, steps=20):
        """Bisection for L* in [0, 100] with luma(clamp01(gam(M⁻¹·XYZ(L*, a, b)))) = grey."""
        a, b = ab_full[:, 0:1], ab_full[:, 1:2]
        target = grey_full

        def colour(L):
            return labmod.lab_to_rgb(torch.cat([L, a, b], dim=1), clamp=True)

        lo = torch.zeros_like(target)
        hi = torch.full_like(target, 100.0)
        for _ in range(steps):
            mid = (lo + hi) * 0.5
            below = labmod.luma(colour(mid), kr, kb).unsqueeze(1) < target
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        Ls = (lo + hi) * 0.5
        rgb = colour(Ls)
        R, G, B = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        Y = labmod.luma(rgb, kr, kb).unsqueeze(1)
        cb = (B - Y) / (2.0 * (1.0 - kb))
        cr = (R - Y) / (2.0 * (1.0 - kr))
        return rgb, torch.cat([cb, cr], dim=1), Ls

    def post(self, grey_lo, ab, grey_full, kr=0.2126, kb=0.0722):
        """grey_lo H×W, ab 2×H×W, grey_full h×w (or batched N×1×.., N×2×..) ->
        (rgb 3×h×w, cbcr 2×h×w) in f32."""
        unb = ab.dim() == 3
        def b4(t):  # noqa: E306
            t = t.float()
            while t.dim() < 4:
                t = t.unsqueeze(0)
            return t
        I, p, If = b4(grey_lo), b4(ab), b4(grey_full)
        ab_full = self.upsample(I, p, If)
        rgb, cbcr, _ = self.keep_luma(If, ab_full, kr, kb)
        if unb:
            return rgb[0], cbcr[0]
        return rgb, cbcr

    @staticmethod
    def carry(grey_full, prev_grey_full, prev_ab_full, ab_full, share, radius, patch,
              confidence, subpixel=False):
        """Film-size propagation (arch "propagate", docs/NETWORK.md post-processing): frame t's
        a, b (N×2×h×w, after the upsampling) blended with frame t−1's final a, b carried by block
        matching of the grey (N×1×h×w, Y′ in [0, 1]). Per pixel p, the move d in [−radius,
        radius]² (rows outer, columns inner, the first of equal costs) whose cost
            c(p, d) = Σ_oy Σ_ox (255·(Y(q) − Y₋₁(clamp(q + d))))² + 1e-3·|d|²,
            q = (clamp(py + oy), clamp(px + ox)), |oy|, |ox| ≤ patch // 2,
        is least (coordinates clamped to the picture; the sums in f64, in that order: the C engine's
        and CUDA's to the bit) gives carried = ab₋₁(clamp(p + d)); the pixel's share is s =
        share · exp(−c / (patch² · confidence²)) (share alone with confidence 0), share and
        confidence as f32, s computed in f64 and rounded to f32; ab ← s·carried + (1 − s)·ab in
        f32. Returns (ab, the least cost (f64), the move (N×2×h×w, dy, dx)).

        subpixel: the move is refined by one Lucas–Kanade step over the same window. At each
        window position q, with m = clamp(q + d) the pixel the move lands on, the gradient of
        P = 255·Y₋₁ is gx = (P(my, clamp(mx + 1)) − P(my, clamp(mx − 1)))·0.5 (gy likewise)
        and the residual e = 255·Y(q) − P(m); Sxx, Sxy, Syy, Sxe, Sye are the window's sums of
        gx·gx, gx·gy, gy·gy, gx·e, gy·e (rows outer, columns inner, from 0), D = Sxx·Syy −
        Sxy·Sxy; where D > 1e-6·(Sxx + Syy)² + 1e-9 the step is δx = (Syy·Sxe − Sxy·Sye)/D,
        δy = (Sxx·Sye − Sxy·Sxe)/D, each clamped to [−1, 1] (else 0), and carried is ab₋₁
        sampled bilinearly at (y + dy + δy, x + dx + δx) clamped to the picture: with
        fy, fx that point, y0 = ⌊fy⌋, y1 = min(y0 + 1, h − 1), wy = fy − y0 (x likewise),
        carried = (1 − wy)·((1 − wx)·v(y0, x0) + wx·v(y0, x1)) + wy·((1 − wx)·v(y1, x0) +
        wx·v(y1, x1)), all in f64 and rounded to f32. The cost, and so the share, stay the
        whole-pixel move's."""
        g = grey_full.double() * 255.0
        p = prev_grey_full.double() * 255.0
        n, _, h, w = g.shape
        r = patch // 2
        iy, ix = torch.arange(h), torch.arange(w)
        rows = [(iy + o).clamp(0, h - 1) for o in range(-r, r + 1)]
        cols = [(ix + o).clamp(0, w - 1) for o in range(-r, r + 1)]
        best = torch.full((n, 1, h, w), float("inf"), dtype=torch.float64)
        move = torch.zeros(n, 2, h, w, dtype=torch.long)
        for dy in range(-radius, radius + 1):
            sy = (iy + dy).clamp(0, h - 1)
            for dx in range(-radius, radius + 1):
                sx = (ix + dx).clamp(0, w - 1)
                diff = g - p[:, :, sy][:, :, :, sx]
                sq = diff * diff
                hsum = torch.zeros_like(sq)
                for c in cols:
                    hsum = hsum + sq[:, :, :, c]
                cost = torch.zeros_like(sq)
                for rr in rows:
                    cost = cost + hsum[:, :, rr]
                cost = cost + 1e-3 * float(dx * dx + dy * dy)
                m = cost < best
                best = torch.where(m, cost, best)
                move[:, 0:1][m] = dy
                move[:, 1:2][m] = dx
        if subpixel:
            carried = Net._carry_subpixel(g, p, prev_ab_full, move, rows, cols)
        else:
            yy = (iy.view(1, 1, h, 1) + move[:, 0:1]).clamp(0, h - 1)
            xx = (ix.view(1, 1, 1, w) + move[:, 1:2]).clamp(0, w - 1)
            idx = (yy * w + xx).view(n, 1, -1).expand(n, 2, -1)
            carried = prev_ab_full.float().reshape(n, 2, -1).gather(2, idx).view(n, 2, h, w)
        s32 = lambda v: float(torch.tensor(v, dtype=torch.float32))  # noqa: E731
        sh = s32(share)
        if confidence > 0:
            S = s32(confidence)
            s = (sh * torch.exp(-best / (patch * patch * S * S))).float()
        else:
            s = torch.full_like(best, sh).float()
        return s * carried + (1.0 - s) * ab_full.float(), best, move

    @staticmethod
    def _carry_subpixel(g, p, prev_ab_full, move, rows, cols):
        """carry's sub-pixel step (its docstring): g, p the greys ×255 (f64, N×1×h×w), move
        the whole-pixel moves, rows / cols the window's clamped offsets. Returns carried (f32)."""
        n, _, h, w = g.shape
        iy, ix = torch.arange(h), torch.arange(w)
        flat = p.reshape(n, -1)
        at = lambda yy, xx: flat.gather(1, (yy * w + xx).reshape(n, -1)).view(n, 1, h, w)  # noqa: E731
        dy, dx = move[:, 0:1], move[:, 1:2]
        sums = [torch.zeros_like(g) for _ in range(5)]   # Sxx, Sxy, Syy, Sxe, Sye
        for qy in rows:
            for qx in cols:
                my = (qy.view(1, 1, h, 1) + dy).clamp(0, h - 1)
                mx = (qx.view(1, 1, 1, w) + dx).clamp(0, w - 1)
                gx = (at(my, (mx + 1).clamp(max=w - 1)) - at(my, (mx - 1).clamp(min=0))) * 0.5
                gy = (at((my + 1).clamp(max=h - 1), mx) - at((my - 1).clamp(min=0), mx)) * 0.5
                e = g[:, :, qy][:, :, :, qx] - at(my, mx)
                for k, t in enumerate((gx * gx, gx * gy, gy * gy, gx * e, gy * e)):
                    sums[k] = sums[k] + t
        sxx, sxy, syy, sxe, sye = sums
        det = sxx * syy - sxy * sxy
        ok = det > 1e-6 * ((sxx + syy) * (sxx + syy)) + 1e-9
        safe = torch.where(ok, det, torch.ones_like(det))
        zero = torch.zeros_like(det)
        ox = torch.where(ok, (syy * sxe - sxy * sye) / safe, zero).clamp(-1.0, 1.0)
        oy = torch.where(ok, (sxx * sye - sxy * sxe) / safe, zero).clamp(-1.0, 1.0)
        fy = ((iy.view(1, 1, h, 1) + dy).double() + oy).clamp(0.0, float(h - 1))
        fx = ((ix.view(1, 1, 1, w) + dx).double() + ox).clamp(0.0, float(w - 1))
        y0, x0 = fy.floor().long(), fx.floor().long()
        y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
        wy, wx = fy - y0.double(), fx - x0.double()
        v = prev_ab_full.float().double().reshape(n, 2, -1)
        tap = lambda yy, xx: v.gather(2, (yy * w + xx).view(n, 1, -1).expand(n, 2, -1)).view(n, 2, h, w)  # noqa: E731,E501
        top = (1.0 - wx) * tap(y0, x0) + wx * tap(y0, x1)
        bot = (1.0 - wx) * tap(y1, x0) + wx * tap(y1, x1)
        return ((1.0 - wy) * top + wy * bot).float()

    def post_full(self, grey_lo, ab, grey_full, kr=0.2126, kb=0.0722):
        """As post() but batched and also returns ab_full and L* (for debugging/golden)."""
        ab_full = self.upsample(grey_lo, ab, grey_full)
        rgb, cbcr, Ls = self.keep_luma(grey_full, ab_full, kr, kb)
        return {"ab_full": ab_full, "rgb": rgb, "cbcr": cbcr, "Lstar": Ls}


# ----------------------------------------------------------------------------------------- io

def build(arch):
    return Net(arch).eval()


def state_dict_f32(net):
    """The weights file's tensors: every state_dict entry but num_batches_tracked, as f32."""
    return {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def load_weights(net, tensors):
    """Load a name -> tensor dict (e.g. from a safetensors file); every parameter and buffer must
    be present with its shape (num_batches_tracked excepted); unknown names are an error."""
    own = net.state_dict()
    missing = [k for k in own if k not in tensors and not k.endswith("num_batches_tracked")]
    unknown = [k for k in tensors if k not in own]
    if missing or unknown:
        raise ValueError("weights do not match the architecture: missing %s; unknown %s"
                         % (missing[:8] + (["..."] if len(missing) > 8 else []),
                            unknown[:8] + (["..."] if len(unknown) > 8 else [])))
    for k, v in tensors.items():
        v = torch.as_tensor(v)
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError("%s: shape %s in the weights, %s in the architecture"
                             % (k, tuple(v.shape), tuple(own[k].shape)))
        if k.endswith("num_batches_tracked"):
            continue
        with torch.no_grad():
            own[k].copy_(v.to(own[k].dtype))
    return net
