#!/usr/bin/python3
"""How exact can an engine be against a golden directory? PyTorch f32 and a bf16 emulation of the
C engine, measured against float64.

    precision.py DIR [--frames N] [--no-bf16]

DIR holds model.safetensors and golden.safetensors (golden.py). The float64 reference is the
golden itself when golden.py computed it in float64 (metadata "compute": "float64"), else it is
recomputed here. Per tensor, worst over the frames, relative L2 error ‖x − f64‖₂ / ‖f64‖₂
(tests/test_golden.c's measure) and, for f32 chained, max|x − f64| / max|f64|:
  f32 chained   the whole sequence in PyTorch f32 from the golden inputs (an f32 engine end to end)
  f32 staged    each stage in f32 from the golden's input of that stage (attention from theta_t /
                ref_phi / ref_ab_pool, C from x7_t, post from ab_t)
  bf16C chained the C engine's bf16 mode emulated: F, A and post in f32, C in bf16 (below)
  bf16C staged  C alone in bf16 emulation from x7_t
  autocast      C alone from x7_t under torch.autocast("cpu", bfloat16) (for comparison)
bf16 emulation of node/colorizer.c with precision bf16: every convolution of C reads bf16 inputs
and bf16 weights and accumulates in f32 (f32 bias), its output is stored bf16; C's input is stored
bf16 with L (not L − 50) in channels 0 and 4, the −50 folded into the first bias with the f32
weights; `skip` accumulates onto the stored `up` output before the activation; InstanceNorm
computes in f32 and stores bf16; C.out writes 128·tanh(·) in f32.
Also prints how much X̂(t−1) moves ab: ‖C(x7) − C(x7 with X̂(t−1) = 0)‖₂ / ‖C(x7)‖₂, frames ≥ 1."""
import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as Fn  # noqa: E402

import safetensors_io  # noqa: E402
from export import load_model  # noqa: E402


def rel_l2(a, b):
    return float((a.double() - b.double()).norm()) / max(float(b.double().norm()), 1e-30)


def rel_max(a, b):
    return float((a.double() - b.double()).abs().max()) / max(float(b.double().abs().max()), 1e-30)


def rb(t):
    """Round to bf16 (nearest even), keep the dtype."""
    return t.to(torch.bfloat16).to(t.dtype)


def bf16_colornet(C, input_f32=False):
    """An f32 copy of C (a ColorNet) that rounds like the C engine's bf16 mode (docstring);
    input_f32: C's 7-channel input and C.enc.0.0's weights stay f32 (an engine variant)."""
    Cq = copy.deepcopy(C).float()
    skips = {id(lvl.skip) for lvl in Cq.dec}
    e00 = Cq.enc[0]._modules["0"]
    with torch.no_grad():
        w32 = e00.weight.clone()
        for m in Cq.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(rb(m.weight))
        # the engine folds −50 into the bias with the f32 weights and convolves bf16(L):
        # conv(rb(L) − 50, w_bf) + b − 50·Σ(w_f32 − w_bf) over channels 0, 4 is the same sum
        e00.bias.sub_(50.0 * (w32[:, [0, 4]] - e00.weight[:, [0, 4]]).sum(dim=(1, 2, 3)))
        if input_f32:
            e00.weight.copy_(w32)
            e00.bias.copy_(C.enc[0]._modules["0"].bias)

    def pre(m, inp):
        x = inp[0]
        if m is e00:
            if input_f32:
                return (x,)
            x = x.clone()
            x[:, 0] += 50.0
            x[:, 4] += 50.0
            x = rb(x)
            x[:, 0] -= 50.0      # exact: rb(L) has 8 significant bits, L in [0, 100]
            x[:, 4] -= 50.0
            return (x,)
        return (rb(x),)

    def post(m, inp, out):
        return rb(out)

    for m in Cq.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_pre_hook(pre)
            if m is not Cq.out and id(m) not in skips:
                m.register_forward_hook(post)
        elif isinstance(m, nn.InstanceNorm2d):
            m.register_forward_hook(post)
    return Cq


def sequence(net, T, n, kr, kb, dtype, C=None):
    """Run the golden's inputs through net in dtype (C replaced by C if given): dict name -> tensor."""
    X = lambda k: T[k].to(dtype)  # noqa: E731
    out = {}
    Corig = net.C
    if C is not None:
        net.C = C
    try:
        cache = net.reference(X("ref_rgb"))
        out["ref_phi"] = cache["phi"]
        prev = None
        for t in range(n):
            g, gf = X("grey_t%d" % t), X("grey_full_t%d" % t)
            o = net.frame(g, cache, prev)
            if C is not None:
                o["ab"] = o["ab"].to(dtype)
                o["prev"] = o["prev"].to(dtype)
            prev = o["prev"]
            p = net.post_full(g[None, None], o["ab"][None], gf[None, None], kr, kb)
            out.update({"f_tap%d_t%d" % (k, t): v for k, v in enumerate(o["taps"])})
            out.update({"theta_t%d" % t: o["theta"], "warp_ab_t%d" % t: o["warp_ab"],
                        "conf_t%d" % t: o["conf"], "x7_t%d" % t: o["x7"], "ab_t%d" % t: o["ab"],
                        "ab_full_t%d" % t: p["ab_full"][0], "rgb_full_t%d" % t: p["rgb"][0],
                        "cbcr_full_t%d" % t: p["cbcr"][0]})
    finally:
        net.C = Corig
    return out


KINDS = ["f_tap0", "f_tap1", "f_tap2", "f_tap3", "theta", "warp_ab", "conf", "x7", "ab", "ab_full",
         "rgb_full", "cbcr_full"]


def kind(name):
    return name.rsplit("_t", 1)[0] if "_t" in name and name[-1].isdigit() else name


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--frames", type=int, default=0, help="frames to check (default: all)")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 columns")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    T, meta = safetensors_io.load(os.path.join(args.dir, "golden.safetensors"))
    net = load_model(os.path.join(args.dir, "model.safetensors"))
    info = json.loads(meta.get("golden", "{}"))
    kr, kb = info.get("kr", 0.2126), info.get("kb", 0.0722)
    n = sum(1 for k in T if k.startswith("ab_t"))
    if args.frames:
        n = min(n, args.frames)
    t0 = time.time()
    with torch.no_grad():
        if info.get("compute") == "float64":
            ref = T
            src = "the golden (computed in float64)"
        else:
            ref = sequence(net.double(), T, n, kr, kb, torch.float64)
            net.float()
            src = "float64, recomputed here (the golden was computed in %s)" % info.get("compute", "float32")
        cols = {}
        cols["f32 chained"] = sequence(net, T, n, kr, kb, torch.float32)
        st = {}
        for t in range(n):
            w4, s4 = net.A.attend(T["theta_t%d" % t][None], T["ref_phi"][None], T["ref_ab_pool"][None])
            st["warp_ab_t%d" % t] = Fn.interpolate(w4, scale_factor=4)[0]
            st["conf_t%d" % t] = Fn.interpolate(s4, scale_factor=4)[0]
            st["ab_t%d" % t] = net.C(T["x7_t%d" % t][None])[0]
            g, gf = T["grey_t%d" % t], T["grey_full_t%d" % t]
            p = net.post_full(g[None, None], T["ab_t%d" % t][None], gf[None, None], kr, kb)
            st["ab_full_t%d" % t], st["rgb_full_t%d" % t], st["cbcr_full_t%d" % t] = \
                p["ab_full"][0], p["rgb"][0], p["cbcr"][0]
        cols["f32 staged"] = st
        if not args.no_bf16:
            Cq = bf16_colornet(net.C)
            cols["bf16C chained"] = sequence(net, T, n, kr, kb, torch.float32, C=Cq)
            cols["bf16C staged"] = {"ab_t%d" % t: Cq(T["x7_t%d" % t][None])[0] for t in range(n)}
            ac = {}
            for t in range(n):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    ac["ab_t%d" % t] = net.C(T["x7_t%d" % t][None])[0].float()
            cols["autocast staged"] = ac
        infl = []
        for t in range(1, n):
            x7 = T["x7_t%d" % t][None].clone()
            a = net.C(x7)
            x7[:, 4:7] = 0
            infl.append(rel_l2(net.C(x7), a))
    names = list(cols)
    print("reference: %s; %d frames; worst relative L2 over the frames (f32 chained: also max rel)"
          % (src, n))
    print("%-10s" % "tensor" + "".join("%16s" % c for c in names) + "%14s" % "f32 max rel")
    for k in KINDS:
        row, any_ = "%-10s" % k, False
        for c in names:
            es = [rel_l2(v, ref[nm]) for nm, v in cols[c].items() if kind(nm) == k and nm in ref]
            row += "%16s" % ("%.2e" % max(es) if es else "")
            any_ |= bool(es)
        es = [rel_max(v, ref[nm]) for nm, v in cols["f32 chained"].items() if kind(nm) == k and nm in ref]
        row += "%14s" % ("%.2e" % max(es) if es else "")
        if any_:
            print(row)
    if infl:
        print("X̂(t−1) moves ab by %s (relative L2, frames 1..%d)" % (
            ", ".join("%.1f%%" % (100 * v) for v in infl), n - 1))
    print("time %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
