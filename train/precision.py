#!/usr/bin/python3
"""How far is the f32 golden from exact arithmetic? Recomputes a golden directory in float64.

    precision.py DIR [--frames N]

DIR holds model.safetensors and golden.safetensors (golden.py). For each output tensor prints
max|f32 − f64| / max|f64|, the 99.9th percentile of |f32 − f64| / max|f64|, and the relative L2
error ‖f32 − f64‖₂ / ‖f64‖₂ (tests/test_golden.c's measure), twice:
  chained  — the whole sequence recomputed in f64 from the inputs (as a C engine runs it);
  staged   — each stage recomputed in f64 from the golden's f32 input of that stage
             (F from grey_t, attention from theta_t/ref_phi/ref_ab_pool, C from x7_t,
             post from ab_t), which is what a per-stage check of another f32 engine can reach.
A tolerance for the C engine below these figures cannot be met by any f32 implementation."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import safetensors_io  # noqa: E402
from export import load_model  # noqa: E402


def err(a, b):
    d = (a.double() - b.double()).abs()
    m = max(float(b.abs().max()), 1e-30)
    l2 = float(d.norm()) / max(float(b.double().norm()), 1e-30)
    return float(d.max()) / m, float(np.percentile(d.numpy().ravel(), 99.9)) / m, l2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--frames", type=int, default=0, help="frames to check (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    T, meta = safetensors_io.load(os.path.join(args.dir, "golden.safetensors"))
    net = load_model(os.path.join(args.dir, "model.safetensors")).double()
    import json
    info = json.loads(meta.get("golden", "{}"))
    kr, kb = info.get("kr", 0.2126), info.get("kb", 0.0722)
    n = sum(1 for k in T if k.startswith("ab_t"))
    if args.frames:
        n = min(n, args.frames)
    rows = []
    with torch.no_grad():
        cache = net.reference(T["ref_rgb"].double())
        rows.append(("ref_phi", "chained") + err(T["ref_phi"], cache["phi"]))
        prev = None
        for t in range(n):
            g, gf = T["grey_t%d" % t].double(), T["grey_full_t%d" % t].double()
            o = net.frame(g, cache, prev)
            prev = o["prev"]
            p = net.post_full(g[None, None], o["ab"][None], gf[None, None], kr, kb)
            got = {"f_tap%d_t%d" % (k, t): v for k, v in enumerate(o["taps"])}
            got.update({"theta_t%d" % t: o["theta"], "warp_ab_t%d" % t: o["warp_ab"],
                        "conf_t%d" % t: o["conf"], "ab_t%d" % t: o["ab"],
                        "ab_full_t%d" % t: p["ab_full"][0], "rgb_full_t%d" % t: p["rgb"][0],
                        "cbcr_full_t%d" % t: p["cbcr"][0]})
            for k, v in got.items():
                if k in T:
                    rows.append((k, "chained") + err(T[k], v))
            # staged: each stage from the golden's own input of that stage
            if "theta_t%d" % t in T:
                w4, s4 = net.A.attend(T["theta_t%d" % t][None].double(), T["ref_phi"][None].double(),
                                      T["ref_ab_pool"][None].double())
                up = torch.nn.functional.interpolate
                rows.append(("warp_ab_t%d" % t, "staged") + err(T["warp_ab_t%d" % t], up(w4, scale_factor=4)[0]))
                rows.append(("conf_t%d" % t, "staged") + err(T["conf_t%d" % t], up(s4, scale_factor=4)[0]))
            if "x7_t%d" % t in T:
                rows.append(("ab_t%d" % t, "staged") + err(T["ab_t%d" % t], net.C(T["x7_t%d" % t][None].double())[0]))
            p = net.post_full(g[None, None], T["ab_t%d" % t][None].double(), gf[None, None], kr, kb)
            for k, v in (("ab_full", p["ab_full"]), ("rgb_full", p["rgb"]), ("cbcr_full", p["cbcr"])):
                if "%s_t%d" % (k, t) in T:
                    rows.append(("%s_t%d" % (k, t), "staged") + err(T["%s_t%d" % (k, t)], v[0]))
    print("%-16s %-8s %12s %12s %12s" % ("tensor", "how", "max rel", "p99.9 rel", "rel L2"))
    for name, how, e, p, l2 in rows:
        print("%-16s %-8s %12.3g %12.3g %12.3g" % (name, how, e, p, l2))


if __name__ == "__main__":
    main()
