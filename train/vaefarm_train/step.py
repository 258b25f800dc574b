"""One training forward pass: the 2-frame recurrence of DESIGN.md §3 and the losses.

TrainStep wraps the reference network (vaefarm_ref.Net) so that DistributedDataParallel sees one
forward per step. It repeats what Net.reference()/Net.frame() compute (docs/NETWORK.md), with
three differences that only training needs: C runs forward_train (z = μ + σ·ε, and μ, log σ² for
the KL), F runs once on [grey t−1, grey t, reference] as one batch, and the raw (not l2n'd) taps
are kept for the losses."""
import torch
import torch.nn as nn
import torch.nn.functional as Fn

try:
    from torch.func import functional_call           # torch ≥ 2.0
except ImportError:                                  # torch 1.13
    from torch.nn.utils.stateless import functional_call

from vaefarm_ref import lab as labmod
from vaefarm_ref.model import l2n, luma_of

from . import losses as L

TERMS = ("perc", "kl", "context", "smooth", "l1", "temporal", "corr")


class TrainStep(nn.Module):
    def __init__(self, net, weights=None):
        super().__init__()
        self.net = net
        self.weights = dict(L.DEFAULT_WEIGHTS)
        if weights:
            unknown = set(weights) - set(self.weights)
            if unknown:
                raise ValueError("unknown loss terms %s" % sorted(unknown))
            self.weights.update(weights)

    def train(self, mode=True):
        """A and C train; F's BatchNorm always uses its running statistics (frozen BN, as at
        inference; its affine weights still learn)."""
        super().train(mode)
        self.net.F.eval()
        return self

    def frozen_f(self, x):
        """F with its parameters detached: gradients reach the image, not F (the loss network
        must not learn to make the loss small)."""
        params = {k: v.detach() for k, v in self.net.F.named_parameters()}
        return functional_call(self.net.F, params, (labmod.imagenet_norm(x),))

    def colorize(self, b, sample=True):
        """The recurrence: frame t−1 from the zero state, frame t from t−1's output.
        -> dict: ab1, ab2, mu1, lv1, mu2, lv2, warp1, warp2 (W^ab at H×W, A's output), wab4_1, wab4_2 (W^ab
        at A's resolution), ref_raw (raw taps of the reference)."""
        net = self.net
        g1, g2, ref = b["grey1"], b["grey2"], b["ref"]
        n, _, H, W = g1.shape
        net.check_size(H, W)
        size4 = (H // 4, W // 4)
        x = torch.cat([g1.expand(n, 3, H, W), g2.expand(n, 3, H, W), ref], dim=0)
        raw = net.F(labmod.imagenet_norm(x))
        taps = [l2n(t) for t in raw]
        phi = net.A.ref_side([t[2 * n:] for t in taps], size4)
        ab_full = labmod.rgb_to_lab(ref)[:, 1:3]
        ref_ab = Fn.avg_pool2d(ab_full, 4, stride=4)
        theta = net.A.frame_side([t[:2 * n] for t in taps], size4)
        refs = [phi, ref_ab]
        refine = net.arch["A"].get("refine")
        if refine:
            refs += [luma_of(ref, b["kr"], b["kb"]), ab_full]
        out = {"ref_raw": [t[2 * n:] for t in raw]}
        temporal = bool(refine and refine.get("temporal"))
        if not temporal:
            both = net.correspond(torch.cat([g1, g2], 0), theta, *[r.repeat(2, 1, 1, 1) for r in refs])
        prev = torch.zeros(n, 3, H, W, dtype=g1.dtype, device=g1.device)
        pw = None
        for k, g, sl in ((1, g1, slice(0, n)), (2, g2, slice(n, 2 * n))):
            if temporal:    # frame t's refinement reads frame t−1's warp: one per frame
                wab4, _, warp_ab, conf = net.correspond(g, theta[sl], *refs, prev=pw)
            else:
                wab4, _, warp_ab, conf = (t[sl] for t in both)
            Lg = labmod.grey_to_L(g)
            x7 = torch.cat([Lg - 50.0, warp_ab, conf, prev], dim=1)
            ab, mu, lv = net.C.forward_train(x7, sample=sample)
            prev = torch.cat([Lg - 50.0, ab], dim=1)
            pw = torch.cat([Lg - 50.0, warp_ab], dim=1).detach()
            out.update({"ab%d" % k: ab, "mu%d" % k: mu, "lv%d" % k: lv, "warp%d" % k: warp_ab,
                        "wab4_%d" % k: wab4})
        return out

    def forward(self, b):
        o = self.colorize(b)
        n = b["grey1"].shape[0]
        lab1, lab2 = labmod.rgb_to_lab(b["rgb1"]), labmod.rgb_to_lab(b["rgb2"])
        ab1, ab2 = o["ab1"], o["ab2"]
        # the output as a colour image: the truth's L with the predicted ab
        pred = labmod.lab_to_rgb(torch.cat([torch.cat([lab1[:, :1], ab1], 1),
                                            torch.cat([lab2[:, :1], ab2], 1)], 0), clamp=True)
        fp = self.frozen_f(pred)
        with torch.no_grad():
            ft = self.net.F(labmod.imagenet_norm(torch.cat([b["rgb1"], b["rgb2"]], 0)))[3]
        t = {}
        t["perc"] = L.perceptual_loss(fp[3], ft)
        t["kl"] = 0.5 * (L.kl_loss(o["mu1"], o["lv1"]) + L.kl_loss(o["mu2"], o["lv2"]))
        ctx = 0.0
        for k, w in L.CONTEXT_LAYERS.items():
            y = o["ref_raw"][k].detach()
            ctx = ctx + w * L.contextual_loss(fp[k], torch.cat([y, y], 0))
        t["context"] = ctx
        t["smooth"] = 0.5 * (L.smoothness_loss(ab1, lab1) + L.smoothness_loss(ab2, lab2))
        t["l1"] = 0.5 * (L.l1_self_loss(ab1, lab1[:, 1:3], b["self_ref"])
                         + L.l1_self_loss(ab2, lab2[:, 1:3], b["self_ref"]))
        t["temporal"] = L.temporal_loss(ab2, ab1, b["phi"], b["tmask"])
        t["corr"] = 0.5 * (L.corr_self_loss(o["wab4_1"], lab1[:, 1:3], b["self_ref"])
                           + L.corr_self_loss(o["wab4_2"], lab2[:, 1:3], b["self_ref"]))
        total = sum(self.weights[k] * t[k] for k in TERMS if self.weights[k] != 0)
        t["total"] = total
        # not losses, for the log: how far the warp alone and the output are from the truth
        with torch.no_grad():
            t["ab_err"] = torch.mean(torch.abs(ab2 - lab2[:, 1:3]))
            t["warp_err"] = torch.mean(torch.abs(o["warp2"] - lab2[:, 1:3]))
        t["n"] = torch.tensor(float(n))
        return t
