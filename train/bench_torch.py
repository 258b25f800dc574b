#!/usr/bin/python3
"""The vaefarm network in PyTorch on the CPU, at several settings, each measured in this process.

    bench_torch.py --arch tiny|full [--no-refine] [--size H W] [--frames N] [--warmup W]
                   [--threads T] [--settings a,b,...] [--json]

Settings:
  f32            (a) plain f32, NCHW, eager
  f32_cl         (b) f32, channels_last, eager
  bf16_cl        (c) torch.autocast('cpu', bfloat16) + channels_last, eager
  bf16_cl_jit    (d) (c) + torch.jit.trace + torch.jit.freeze (conv-BN folding)
  f32_cl_jit     (e) f32 + channels_last + trace + freeze
  f32_cl_ofi     (e) f32_cl_jit + torch.jit.optimize_for_inference (oneDNN layouts)
  bf16_cl_jit_attnconv (e) bf16_cl_jit with the attention products as 1×1 convolutions
  f32_cl_jit_attnconv  (e) f32_cl_jit with the attention products as 1×1 convolutions
  bf16_cl_fa32   (f) bf16_cl with F and A (its convolutions, the attention and the refinement)
                 in f32, as vaefarm's bf16 runs them (the softmax at τ 0.005–0.01 turns bf16
                 features into another warp: docs/NETWORK.md, Precision): C alone in bf16
  bf16_cl_jit_fa32 (f) the same traced as in (d)
For each: ms per frame for F (the frame only), A (frame side, attention and, when the arch has
it, the warp's refinement with its temporal candidates carried frame to frame, as the reference
model's Net.correspond computes them; reference cached; traced only without the refinement,
whose Python control flow stays eager; the _attnconv settings need an arch without it),
C, post-processing (always f32, at 2× the inference size) and frames/s (F+A+C+post); warm-up
iterations excluded; median over --frames frames. ab_rel_err: max|ab − ab_f32| / max|ab_f32|
against setting (a), the larger of frame 0's and the last frame's (after the recurrence and,
with the refinement, its temporal candidates). Random weights (seed 0); synthetic input
(golden.py's scene).
--no-refine: the preset without A's refinement (the warp is the attention's, nearest ×4), the
network issue 4's goals were set on (scripts/bench_network.sh exports the same for vaefarm).
OPENBLAS_NUM_THREADS defaults to 1 (see below). Also prints the multiply-accumulates per frame (convolutions counted with forward hooks,
attention products analytically)."""
import os
# OpenBLAS (torch's BLAS here) would start its own pthreads beside OpenMP's and spin on the same
# cores: measured ×3–7 slower, erratic F times on a 2-core machine. Set before torch loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import copy
import json
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as Fn  # noqa: E402

from cli_io import first_line  # noqa: E402
from export import make_model, param_counts  # noqa: E402
from vaefarm_ref.arch import PRESETS  # noqa: E402
from golden import grey_of, scene  # noqa: E402
from vaefarm_ref import lab as labmod  # noqa: E402
from vaefarm_ref.model import l2n, nearest_up  # noqa: E402

CL = torch.channels_last
ALL = ["f32", "f32_cl", "bf16_cl", "bf16_cl_jit", "f32_cl_jit", "f32_cl_ofi",
       "bf16_cl_jit_attnconv", "f32_cl_jit_attnconv", "bf16_cl_fa32", "bf16_cl_jit_fa32"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ traceable pieces
class FPart(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.F = net.F

    def forward(self, g):           # g: N×1×H×W grey
        x = labmod.imagenet_norm(g.expand(g.shape[0], 3, g.shape[2], g.shape[3]))
        return tuple(l2n(t) for t in self.F(x))


def attend_conv(theta, phi, ref_ab4, tau):
    """The attention products as 1×1 convolutions (batch 1): f's N channels per position."""
    n, c, h, w = theta.shape
    N = h * w
    wf = phi.reshape(c, N).t().reshape(N, c, 1, 1)
    f = Fn.conv2d(theta, wf)                                  # 1×N×h×w: f(i, j) at channel j
    S = f.max(dim=1, keepdim=True).values
    p = torch.softmax(f / tau, dim=1)
    wab = Fn.conv2d(p, ref_ab4.reshape(2, N, 1, 1))           # 1×2×h×w
    return wab, S


class APart(nn.Module):
    def __init__(self, net, conv=False):
        super().__init__()
        self.net = net
        self.A = net.A
        self.conv = conv

    def forward(self, t0, t1, t2, t3, phi, ref_ab, g=None, ref_y=None, ref_ab_full=None, prev=None):
        """The warp and confidence at H×W; with the arch's refinement (g, ref_y, ref_ab_full
        given; prev: frame t−1's L − 50 and warp, or None for the zero state) Net.correspond's."""
        H4, W4 = t0.shape[2], t0.shape[3]
        th = self.A.frame_side([t0, t1, t2, t3], (H4, W4))
        if g is not None:
            _, _, wab, S = self.net.correspond(g, th, phi, ref_ab, ref_y, ref_ab_full, prev=prev)
            return wab, S
        if self.conv:
            wab, S = attend_conv(th, phi, ref_ab, self.A.tau)
        else:
            wab, S = self.A.attend(th, phi, ref_ab)
        return nearest_up(wab, 4), nearest_up(S, 4)


class CPart(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.C = net.C

    def forward(self, x7):
        return self.C(x7)


class PostPart(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, g, ab, gf):
        return self.net.post(g, ab, gf)


# ------------------------------------------------------------------ settings
class Runner:
    """Callables F(g) -> taps, A(taps, cache) -> (warp, conf), C(x7) -> ab, ref(rgb) -> cache."""

    def __init__(self, base, setting, example):
        self.name = setting
        self.cl = "_cl" in setting
        self.bf16 = setting.startswith("bf16")
        self.jit = "_jit" in setting or "_ofi" in setting
        self.ofi = "_ofi" in setting
        self.attnconv = setting.endswith("attnconv")
        self.fa32 = setting.endswith("_fa32")
        self.refine = bool(base.arch["A"].get("refine"))
        if self.attnconv and self.refine:
            raise ValueError("the _attnconv settings need an arch without A.refine (--no-refine)")
        net = copy.deepcopy(base).eval()
        if self.cl:
            net = net.to(memory_format=CL)
        self.net = net
        self.fpart, self.apart, self.cpart = FPart(net), APart(net, self.attnconv), CPart(net)
        self.post = PostPart(net)
        self.cache = None
        if self.jit:
            g, rgb = example
            self.cache = self.reference(rgb)
            with torch.no_grad(), self.ctx("F"):
                g = self.fmt(g)
                taps = self.fpart(g)
                self.fpart = self.trace(self.fpart, (g,))
            with torch.no_grad(), self.ctx("A"):
                if self.refine:
                    wab, S = self.run_A(taps, g)
                else:
                    args = tuple(taps) + (self.cache["phi"], self.cache["ref_ab"])
                    self.apart = self.trace(self.apart, args)
                    wab, S = self.apart(*args)
            with torch.no_grad(), self.ctx():
                x7 = self.fmt(torch.cat([g.float() * 100 - 50, wab.float(), S.float(),
                                         torch.zeros_like(wab.float()), g.float()], 1))
                self.cpart = self.trace(self.cpart, (x7,))

    def trace(self, mod, args):
        t = torch.jit.trace(mod, args, check_trace=False)
        t = torch.jit.freeze(t.eval())
        if self.ofi:
            t = torch.jit.optimize_for_inference(t)
        return t

    def ctx(self, part=None):
        """The autocast context of a part ("F", "A" or other): bf16 for the bf16 settings,
        except F and A in the _fa32 ones."""
        if self.bf16 and not (part in ("F", "A") and self.fa32):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def fmt(self, x):
        return x.contiguous(memory_format=CL) if self.cl else x.contiguous()

    def reference(self, rgb):
        with torch.no_grad(), self.ctx("A"):
            c = self.net.reference(self.fmt(rgb[None]))
        out = {"phi": c["phi"].contiguous(), "ref_ab": c["ref_ab"].float().contiguous()}
        if self.refine:
            out.update(ref_y=c["ref_y"].float().contiguous(),
                       ref_ab_full=c["ref_ab_full"].float().contiguous())
        return out

    def run_F(self, g):
        with torch.no_grad(), self.ctx("F"):
            return self.fpart(self.fmt(g))

    def run_A(self, taps, g, prev=None):
        """A's warp and confidence at H×W for the frame g (its grey) with F's taps; prev: frame
        t−1's L − 50 and warp (the refinement's temporal candidates), None for the zero state."""
        with torch.no_grad(), self.ctx("A"):
            if self.refine:
                c = self.cache
                return self.apart(*taps, c["phi"], c["ref_ab"], g=g, ref_y=c["ref_y"],
                                  ref_ab_full=c["ref_ab_full"], prev=prev)
            return self.apart(*taps, self.cache["phi"], self.cache["ref_ab"])

    def run_C(self, x7):
        with torch.no_grad(), self.ctx():
            return self.cpart(self.fmt(x7))


def bench_setting(base, setting, frames, warmup, inputs, ab_ref=None):
    g_list, gf_list, rgb = inputs
    t0 = time.perf_counter()
    r = Runner(base, setting, (g_list[0], rgb))
    r.cache = r.reference(rgb)
    prep = time.perf_counter() - t0
    times = {"F": [], "A": [], "C": [], "post": []}
    prev = None
    pw = None       # frame t−1's L − 50 and warp, for the refinement's temporal candidates
    ab0 = None
    for i in range(warmup + frames):
        g, gf = g_list[i % len(g_list)], gf_list[i % len(gf_list)]
        t = [time.perf_counter()]
        taps = r.run_F(g)
        t.append(time.perf_counter())
        wab, S = r.run_A(taps, g, pw)
        t.append(time.perf_counter())
        L = labmod.grey_to_L(g)
        pw = torch.cat([L - 50.0, wab.float()], dim=1).contiguous()
        if prev is None:
            prev = torch.zeros(1, 3, g.shape[2], g.shape[3])
        x7 = torch.cat([L - 50.0, wab.float(), S.float(), prev], dim=1)
        ab = r.run_C(x7).float()
        t.append(time.perf_counter())
        with torch.no_grad():
            r.post(g, ab, gf)
        t.append(time.perf_counter())
        prev = torch.cat([L - 50.0, ab], dim=1).contiguous()
        if i == 0:
            ab0 = ab.contiguous()
        ab_last = ab.contiguous()
        if i >= warmup:
            for k, a, b in zip(("F", "A", "C", "post"), t[:-1], t[1:]):
                times[k].append(1000.0 * (b - a))
    ms = {k: statistics.median(v) for k, v in times.items()}
    total = sum(ms.values())
    res = {"setting": setting, "ms": {k: round(v, 2) for k, v in ms.items()},
           "ms_net": round(ms["F"] + ms["A"] + ms["C"], 2), "ms_total": round(total, 2),
           "fps": round(1000.0 / total, 3), "fps_net": round(1000.0 / (total - ms["post"]), 3),
           "prepare_s": round(prep, 2)}
    if ab_ref is not None:      # frame 0's and the last frame's, against setting (a)'s
        res["ab_rel_err"] = max(float((x - ref).abs().max() / ref.abs().max())
                                for x, ref in zip((ab0, ab_last), ab_ref))
    return res, (ab0, ab_last)


# ------------------------------------------------------------------ MAC count
def count_macs(net, H, W):
    """GMAC per frame: F (frame only), A convs (frame side), attention products, C."""
    macs = {}

    def hook(part):
        def h(m, i, o):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            macs[part] = macs.get(part, 0) + o.numel() // o.shape[0] * k
        return h

    hs = []
    for part in ("F", "A", "C"):
        for m in getattr(net, part).modules():
            if isinstance(m, nn.Conv2d):
                hs.append(m.register_forward_hook(hook(part)))
    with torch.no_grad():
        rgb = torch.rand(3, H, W)
        cache = net.reference(rgb)
        macs.clear()
        net.frame(torch.rand(H, W), cache)
    for h in hs:
        h.remove()
    # A's convs counted above include only the frame side (θ; φ is cached)
    N = (H // 4) * (W // 4)
    c4 = 4 * net.arch["A"]["adapter"]
    out = {"F": macs["F"] / 1e9, "A": macs["A"] / 1e9, "attention": (N * N * c4 + N * N * 2) / 1e9,
           "C": macs["C"] / 1e9}
    out["total"] = sum(out.values())
    return {k: round(v, 3) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="tiny", choices=("tiny", "full"))
    ap.add_argument("--no-refine", action="store_true", help="the preset without A.refine")
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settings", default=",".join(ALL))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    arch = copy.deepcopy(PRESETS[args.arch])
    if args.no_refine:
        arch["A"].pop("refine", None)
    net = make_model(arch, 0)
    H, W = args.size if args.size else net.arch["inference_size"]
    if H % 8 or W % 8:
        sys.exit("bench_torch: --size %dx%d: both must be multiples of 8" % (H, W))
    h, w = 2 * H, 2 * W
    settings = [s for s in args.settings.split(",") if s]
    for s in settings:
        if s not in ALL:
            sys.exit("bench_torch: unknown setting %r (known: %s)" % (s, ", ".join(ALL)))
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    nin = max(2, min(args.frames + args.warmup, 4))
    g_list = [f32(grey_of(scene(H, W, t)))[None, None] for t in range(nin)]
    gf_list = [f32(grey_of(scene(h, w, t, base_size=(H, W))))[None, None] for t in range(nin)]
    rgb = f32(scene(H, W, 0))
    macs = count_macs(net, H, W)
    results, ab_ref = [], None
    for s in settings:
        log("bench_torch: %s ..." % s)
        try:
            res, abs_out = bench_setting(net, s, args.frames, args.warmup, (g_list, gf_list, rgb),
                                         ab_ref)
            if s == "f32":
                ab_ref = abs_out
        except Exception as e:  # noqa: BLE001 (a setting that fails in this torch is reported)
            log(traceback.format_exc())
            res = {"setting": s, "error": "%s: %s" % (type(e).__name__, first_line(e)[:300])}
        results.append(res)
        log("  %s" % json.dumps(res))
    ok = [r for r in results if "fps" in r]
    best = max(ok, key=lambda r: r["fps"])["setting"] if ok else None
    best_net = max(ok, key=lambda r: r["fps_net"])["setting"] if ok else None
    out = {"arch": args.arch, "refine": bool(net.arch["A"].get("refine")), "size": [H, W], "post_size": [h, w], "frames": args.frames,
           "warmup": args.warmup, "threads": args.threads, "torch": torch.__version__,
           "params": param_counts(net), "gmac_per_frame": macs, "results": results,
           "best": best, "best_net_only": best_net}
    if args.json:
        print(json.dumps(out))
        return
    print("vaefarm bench_torch: %s %dx%d (post at %dx%d), %d frames after %d warm-up, %d threads, torch %s"
          % (args.arch, H, W, h, w, args.frames, args.warmup, args.threads, torch.__version__))
    print("GMAC per frame: F %(F).2f  A %(A).2f  attention %(attention).2f  C %(C).2f  total %(total).2f" % macs)
    print("%-22s %9s %9s %9s %9s %9s %8s %10s" % ("setting", "F ms", "A ms", "C ms", "post ms",
                                                  "total ms", "fps", "ab err"))
    for r in results:
        if "error" in r:
            print("%-22s failed: %s" % (r["setting"], r["error"]))
            continue
        m = r["ms"]
        print("%-22s %9.1f %9.1f %9.1f %9.1f %9.1f %8.2f %10s" % (
            r["setting"], m["F"], m["A"], m["C"], m["post"], r["ms_total"], r["fps"],
            "%.2g" % r["ab_rel_err"] if "ab_rel_err" in r else "-"))
    print("best: %s (%.2f fps with post-processing); network only: %s" % (
        best, max(r["fps"] for r in ok), best_net) if ok else "best: none (all failed)")


if __name__ == "__main__":
    main()
