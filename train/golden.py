#!/usr/bin/python3
"""Golden tensors for the C engine's test (see docs/REFERENCE.md).

The weights are the seeded random init (export.py) with C calibrated on this scene's frame 0
(vaefarm_ref/init.py, calibrate_colornet), written as F32; the forward pass runs in float64 from
the F32 inputs and every output is rounded to F32 once, so the golden is exact arithmetic on the
file's weights and inputs, not one f32 implementation's rounding.

    golden.py --arch tiny|full --seed S [--size H W] [--full-size h w] [--frames 5] --out DIR [--extra] [--guided] [--gated]

Writes DIR/model.safetensors (as export.py: seeded random init) and DIR/golden.safetensors
(F32; removed first and written last, so that a golden file is never left beside weights it was
not made from: scripts/make_golden.sh writes into a folder of its own and renames it): inputs ref_rgb (3×H×W), ref_rgb_full (3×h×w), grey_t{t} (H×W), grey_full_t{t} (h×w);
per frame t outputs
f_tap{k}_t{t} (l2n'd taps), warp_ab_t{t} (2×H×W), conf_t{t} (1×H×W), ab_t{t} (2×H×W),
rgb_full_t{t} (3×h×w), cbcr_full_t{t} (2×h×w, Cb then Cr), BT.709 (kr 0.2126, kb 0.0722).
Frame 0 starts from the zero state, frame t from frame t−1's X̂. Stage inputs, so that each
stage can be checked on its own: ref_phi (4a×H/4×W/4), ref_ab_pool (2×H/4×W/4), theta_t{t}
(4a×H/4×W/4), x7_t{t} (7×H×W, C's input), ab_full_t{t} (2×h×w, after post step 1: the arch's upsampling).
Reference pass-through (frame 0 is the reference's own picture): pt_ab_t0 (its a, b, 2×H×W),
pt_cbcr_full_t0 (from the full-size reference's a, b), pt_ab_t1 and pt_cbcr_full_t1 (frame 1 from
that state); and with film-size propagation (arch propagate, GOLDEN_CARRY):
DIR/model_carry.safetensors, carry_ab_full_t0 (the reference's a, b), carry_up_t{t} (frame t's a, b
upsampled, from the pass-through's state), carry_ab_full_t{t} (after the carry), carry_cbcr_full_t{t}, carry_sub_ab_full_t{t} (the
carry with propagate.subpixel from the same inputs, t ≤ 3). --guided, for an arch with bilinear post step 1 (upsample radius 0): also
DIR/model_guided.safetensors (the same weights under the guided filter, radius 2, ε 1e-3) and
guided_ab_full_t0, guided_cbcr_full_t0 (frame 0's post-processing through it). --gated, for a
residual C: also DIR/model_gated.safetensors (the same weights with a gate on C, arch C.gate, its
channel's weights seeded) and gated_ab_t{t}, gated_rgb_full_t{t}, gated_cbcr_full_t{t} (its frames
from the zero state; F's taps, the warp and conf are the plain model's), and the same again with
the gate's motion factor (arch C.gate_motion, κ 4): DIR/model_motion.safetensors, motion_ab_t{t},
motion_rgb_full_t{t}, motion_cbcr_full_t{t}; and the gate's ramp after a pass-through (arch C.gate_ramp,
K 3): DIR/model_ramp.safetensors, ramp_pt_ab_t{t} (frame 0 passed through, frames 1.. from it).
--extra adds ref_tap{k}, L_t{t} (1×H×W) and Lstar_t{t} (1×h×w, the bisection's L*)."""
import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import safetensors_io  # noqa: E402
from cli_io import TOO_SMALL, first_line  # noqa: E402
from vaefarm_ref import lab as labmod  # noqa: E402
from export import make_model, print_counts, save_weights  # noqa: E402
from vaefarm_ref.arch import arch_json  # noqa: E402
from vaefarm_ref.init import calibrate_colornet  # noqa: E402
from vaefarm_ref.model import motion_factor  # noqa: E402

KR, KB = 0.2126, 0.0722
GOLDEN_KAPPA = 4.0   # the motion model's C.gate_motion
GOLDEN_MOTION_RADIUS = 2   # the per-pixel motion model's C.gate_motion_radius
GOLDEN_PREDICT = 2   # the motion-predicted model's A.refine.predict
GOLDEN_RAMP = 3      # the ramped model's C.gate_ramp
# the propagating model's propagate: the scene pans 6 pixels a frame at full size
GOLDEN_CARRY = {"radius": 7, "patch": 3, "shares": [1.0, 0.6, 0.3], "confidence": 12.0}
DEFAULT_SIZES = {"tiny": ((144, 256), (288, 512)), "full": ((216, 384), (432, 768))}


# --------------------------------------------------------------------------- synthetic scene
def _soft(d, w):
    """0 → 1 across a soft edge of width w centred at d = 0 (smoothstep)."""
    x = np.clip(d / w + 0.5, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def scene(H, W, t, motion_px=(3.0, 2.0), base_size=None):
    """The continuous scene sampled at the centres of an H×W grid at time t (float64 RGB in
    [0,1], 3×H×W). Coordinates: y = (i+0.5)/H ∈ [0,1], x = (j+0.5)/H (square units, so discs are
    round); the camera pans motion_px (dx, dy) pixels of the base (inference) grid per frame, one
    disc moves on its own. base_size fixes the pixel unit so every size shows the same scene."""
    bH, bW = base_size or (H, W)
    aspect = bW / bH
    y = (np.arange(H) + 0.5) / H
    x = (np.arange(W) + 0.5) / W * aspect
    X, Y = np.meshgrid(x, y)
    X = X + t * motion_px[0] / bH          # pan, in units of the base grid's height
    Y = Y + t * motion_px[1] / bH
    edge = 0.004                            # soft edge width (≈ 0.6 px at H = 144)
    # smooth background: sky-to-ground gradients and a slow colour wave
    R = 0.35 + 0.25 * np.sin(2.1 * X + 0.4) + 0.15 * Y
    G = 0.45 + 0.20 * np.cos(1.7 * X - 1.1 * Y) - 0.10 * Y
    B = 0.70 - 0.45 * Y + 0.10 * np.sin(3.3 * X)
    # textured band (fine sines), darker and greener at the bottom
    band = _soft(Y - 0.68, edge)
    tex = 0.08 * np.sin(2 * np.pi * 14 * X) * np.sin(2 * np.pi * 11 * Y) + 0.05 * np.sin(2 * np.pi * 23 * (X + Y))
    R = R * (1 - band) + band * (0.25 + tex + 0.10 * np.sin(5 * X))
    G = G * (1 - band) + band * (0.55 + tex)
    B = B * (1 - band) + band * (0.20 + 0.5 * tex)
    # a hard-edged rectangle (house) and discs
    rect = _soft(0.12 - np.abs(X - 0.45 * aspect), edge) * _soft(0.15 - np.abs(Y - 0.52), edge)
    R, G, B = [c * (1 - rect) + rect * v for c, v in zip((R, G, B), (0.85, 0.80, 0.70))]
    for (cx, cy, r, col, own) in ((0.22 * aspect, 0.30, 0.10, (0.95, 0.15, 0.10), (0.0, 0.0)),
                                  (0.72 * aspect, 0.40, 0.14, (0.10, 0.35, 0.90), (-5.0, 1.5)),
                                  (0.55 * aspect, 0.82, 0.07, (0.95, 0.85, 0.10), (0.0, 0.0)),
                                  (0.85 * aspect, 0.75, 0.09, (0.20, 0.80, 0.30), (2.0, -1.0))):
        cx = cx + t * own[0] / bH
        cy = cy + t * own[1] / bH
        m = _soft(r - np.hypot(X - cx, Y - cy), edge)
        shade = 1.0 - 0.35 * np.clip(np.hypot(X - cx + 0.3 * r, Y - cy + 0.3 * r) / r, 0, 1.5) ** 2 / 2.25
        R, G, B = [c * (1 - m) + m * v * shade for c, v in zip((R, G, B), col)]
    return np.clip(np.stack([R, G, B]), 0.0, 1.0)


def grey_of(rgb):
    return KR * rgb[0] + (1.0 - KR - KB) * rgb[1] + KB * rgb[2]


# --------------------------------------------------------------------------- main
def run(arch, seed, size, full_size, frames, outdir, extra=False, model=None, calibrate=True,
        dtype=torch.float64, guided=False, gated=False):
    """The golden run. The weights are f32 (the file's values); the forward pass runs in dtype
    (float64: the golden tensors are exact arithmetic rounded to f32 once, the best oracle for
    an f32 engine) from the f32-rounded inputs the C test reads. With calibrate (and no model
    given), C gets the data-dependent init of vaefarm_ref/init.py on this scene's frame 0."""
    os.makedirs(outdir, exist_ok=True)
    # golden.safetensors goes last, so an interrupted run leaves no golden file beside weights it
    # was not made from: the old one goes first
    try:
        os.remove(os.path.join(outdir, "golden.safetensors"))
    except FileNotFoundError:
        pass
    H, W = size
    h, w = full_size
    net = model if model is not None else make_model(arch, seed)
    net.eval()
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    T = {}
    T["ref_rgb"] = f32(scene(H, W, 0, base_size=size))
    T["ref_rgb_full"] = f32(scene(h, w, 0, base_size=size))
    for t in range(frames):
        T["grey_t%d" % t] = f32(grey_of(scene(H, W, t, base_size=size)))
        T["grey_full_t%d" % t] = f32(grey_of(scene(h, w, t, base_size=size)))
    net.to(dtype)
    X = lambda k: T[k].to(dtype)  # noqa: E731
    with torch.no_grad():
        cache = net.reference(X("ref_rgb"))
        if calibrate and model is None:
            calibrate_colornet(net.C, net.frame(X("grey_t0"), cache, None)["x7"][None])
        save_weights(os.path.join(outdir, "model.safetensors"), net)
        T["ref_phi"], T["ref_ab_pool"] = cache["phi"], cache["ref_ab"]
        if extra:
            for k, tp in enumerate(cache["taps"]):
                T["ref_tap%d" % k] = tp
        prev = None
        for t in range(frames):
            o = net.frame(X("grey_t%d" % t), cache, prev)
            prev = o["prev"]
            for k, tp in enumerate(o["taps"]):
                T["f_tap%d_t%d" % (k, t)] = tp
            T["warp_ab_t%d" % t] = o["warp_ab"]
            T["conf_t%d" % t] = o["conf"]
            T["ab_t%d" % t] = o["ab"]
            p = net.post_full(X("grey_t%d" % t)[None, None], o["ab"][None],
                              X("grey_full_t%d" % t)[None, None], KR, KB)
            T["rgb_full_t%d" % t] = p["rgb"][0]
            T["cbcr_full_t%d" % t] = p["cbcr"][0]
            # stage inputs, so each stage can be checked from the golden input of that stage
            T["theta_t%d" % t], T["x7_t%d" % t], T["ab_full_t%d" % t] = o["theta"], o["x7"], p["ab_full"][0]
            if extra:
                T["L_t%d" % t], T["Lstar_t%d" % t] = o["L"], p["Lstar"][0]
        # reference pass-through: frame 0 is the reference's own picture (its grey is the
        # reference's luma), so it takes the reference's a, b (at full size from the full-size
        # reference); frame 1 runs from that state
        if frames >= 2:
            pt = net.passthrough(X("grey_t0"), X("ref_rgb"))
            ref_ab_full = labmod.rgb_to_lab(X("ref_rgb_full")[None])[:, 1:3]
            cbcr0 = net.keep_luma(X("grey_full_t0")[None, None], ref_ab_full, KR, KB)[1]
            o = net.frame(X("grey_t1"), cache, pt["prev"])
            p = net.post_full(X("grey_t1")[None, None], o["ab"][None], X("grey_full_t1")[None, None],
                              KR, KB)
            T["pt_ab_t0"], T["pt_cbcr_full_t0"] = pt["ab"], cbcr0[0]
            T["pt_ab_t1"], T["pt_cbcr_full_t1"] = o["ab"], p["cbcr"][0]
            # film-size propagation (arch propagate, GOLDEN_CARRY): frame 0 passes, frame t's
            # upsampled a, b (carry_up_t{t}) take frame t−1's final ones (carry_ab_full_t{t−1})
            # carried by block matching, on frames 1 .. len(shares)
            cnet = copy.deepcopy(net)
            cnet.arch["propagate"] = dict(GOLDEN_CARRY)
            save_weights(os.path.join(outdir, "model_carry.safetensors"), cnet)
            g = lambda t: X("grey_full_t%d" % t)[None, None]  # noqa: E731
            ab_full, prev = ref_ab_full, pt["prev"]
            T["carry_ab_full_t0"] = ref_ab_full[0]
            for t in range(1, frames):
                o = cnet.frame(X("grey_t%d" % t), cache, prev)
                prev = o["prev"]
                up = cnet.upsample(X("grey_t%d" % t)[None, None], o["ab"][None], g(t))
                T["carry_up_t%d" % t] = up[0]
                if t <= len(GOLDEN_CARRY["shares"]):
                    c = GOLDEN_CARRY
                    new, _, move = cnet.carry(g(t), g(t - 1), ab_full, up, c["shares"][t - 1],
                                              c["radius"], c["patch"], c["confidence"])
                    # the operator with propagate.subpixel, from the same inputs
                    sub = cnet.carry(g(t), g(t - 1), ab_full, up, c["shares"][t - 1],
                                     c["radius"], c["patch"], c["confidence"], subpixel=True)[0]
                    if not float(((sub - new).abs() > 1e-3).float().mean()) > 0.1:
                        raise RuntimeError("golden: the sub-pixel step changes under a tenth of "
                                           "frame %d's carried a, b: too little to test it" % t)
                    T["carry_sub_ab_full_t%d" % t] = sub[0]
                    if t == 1 and not (float((new - up).abs().mean()) > 0.5
                                       and int(move.abs().max()) > 2):
                        raise RuntimeError("golden: the carry changes frame 1 by too little, or "
                                           "moves too little, to test propagate")
                    up = new
                ab_full = up
                T["carry_ab_full_t%d" % t] = ab_full[0]
                T["carry_cbcr_full_t%d" % t] = cnet.keep_luma(g(t), ab_full, KR, KB)[1][0]
        if guided and net.arch["upsample"]["radius"] == 0:
            # the guided filter (post step 1 with upsample.radius > 0), which this arch does not
            # take: the same weights under radius 2, ε 1e-3, and frame 0's post through it
            plain = net.arch["upsample"]
            net.arch["upsample"] = {"radius": 2, "eps": 1e-3}
            save_weights(os.path.join(outdir, "model_guided.safetensors"), net)
            p = net.post_full(X("grey_t0")[None, None], T["ab_t0"][None], X("grey_full_t0")[None, None],
                              KR, KB)
            T["guided_ab_full_t0"], T["guided_cbcr_full_t0"] = p["ab_full"][0], p["cbcr"][0]
            net.arch["upsample"] = plain
        if gated and net.arch["C"]["residual"]:
            # the gated C (arch C.gate): the same weights and a gate channel that varies over the
            # picture (seeded weights of std 2/√in, so σ spans most of (0, 1), bias 0.5); frames
            # from the zero state, each from its own previous output
            gnet = copy.deepcopy(net)   # net (golden.safetensors' arch) stays ungated
            ow = gnet.C.out.weight
            gen = torch.Generator().manual_seed(seed + 1)
            gw = torch.randn(ow[:1].shape, generator=gen, dtype=torch.float32) * (2.0 / ow.shape[1] ** 0.5)
            gnet.add_gate(0.5, gw)
            # and the same with the motion factor (arch C.gate_motion, κ = GOLDEN_KAPPA): this
            # scene's frames move by a few L a pixel, so the factor is well inside (0, 1)
            mnet = copy.deepcopy(gnet)
            mnet.set_gate_motion(GOLDEN_KAPPA)
            # and per pixel (C.gate_motion_radius): the factor over 5×5 windows
            pnet = copy.deepcopy(gnet)
            pnet.set_gate_motion(GOLDEN_KAPPA, GOLDEN_MOTION_RADIUS)
            # and the motion-predicted temporal candidates (A.refine.predict): this scene pans
            # 3 pixels a frame across, beyond tiny's temporal radius 2, which they follow from
            # frame 2 on (frame 1's cheapest displacement is the window's edge)
            qnet = copy.deepcopy(gnet)
            if qnet.arch["A"].get("refine"):
                qnet.arch["A"]["refine"]["predict"] = GOLDEN_PREDICT
            spread, reach = [], []
            variants = [("gated", gnet), ("motion", mnet), ("motion_px", pnet)]
            if (net.arch["A"].get("refine") or {}).get("temporal"):
                variants.append(("predict", qnet))
            for name, vnet in variants:
                save_weights(os.path.join(outdir, "model_%s.safetensors" % name), vnet)
                prev, factors = None, []
                for t in range(frames):
                    o = vnet.frame(X("grey_t%d" % t), cache, prev)
                    x7 = o["x7"].reshape(1, 7, *o["x7"].shape[-2:])
                    if name == "motion":
                        factors.append(float(motion_factor(x7, GOLDEN_KAPPA)))
                    if name == "motion_px" and t > 0:   # frame 0 is from the zero state
                        f = motion_factor(x7, GOLDEN_KAPPA, GOLDEN_MOTION_RADIUS)
                        spread.append((float(f.min()), float(f.max())))
                    if name == "predict":
                        T["predict_warp_ab_t%d" % t] = o["warp_ab"]
                        reach.append(int(o["prev"][5:7].abs().max()))
                    prev = o["prev"]
                    p = vnet.post_full(X("grey_t%d" % t)[None, None], o["ab"][None],
                                       X("grey_full_t%d" % t)[None, None], KR, KB)
                    T["%s_ab_t%d" % (name, t)], T["%s_rgb_full_t%d" % (name, t)] = o["ab"], p["rgb"][0]
                    T["%s_cbcr_full_t%d" % (name, t)] = p["cbcr"][0]
            if frames >= 2:
                # the gate's ramp after a pass-through (arch C.gate_ramp, K = GOLDEN_RAMP): frame
                # 0 passes, frame t runs with C's correction scaled by min(1, t / K)
                rnet = copy.deepcopy(gnet)
                rnet.set_gate_ramp(GOLDEN_RAMP)
                save_weights(os.path.join(outdir, "model_ramp.safetensors"), rnet)
                prev = rnet.passthrough(X("grey_t0"), X("ref_rgb"))["prev"]
                for t in range(1, frames):
                    o = rnet.frame(X("grey_t%d" % t), cache, prev)
                    prev = o["prev"]
                    T["ramp_pt_ab_t%d" % t] = o["ab"]
                full = gnet.frame(X("grey_t1"), cache, gnet.passthrough(X("grey_t0"), X("ref_rgb"))["prev"])
                if not float((full["ab"] - T["ramp_pt_ab_t1"]).abs().mean()) > 0.05:
                    raise RuntimeError("golden: the ramp changes frame 1 by too little to test "
                                       "C.gate_ramp")
            if not all(0.1 < f < 0.95 for f in factors):
                raise RuntimeError("golden: the motion factors %s do not test C.gate_motion" % factors)
            if reach and frames >= 2:
                # the pass-through with it (docs/NODE.md): frame 1 from frame 0 passed through
                # starts from a motion of 0, whatever motion came before
                pt = qnet.passthrough(X("grey_t0"), X("ref_rgb"))
                T["predict_pt_ab_t1"] = qnet.frame(X("grey_t1"), cache, pt["prev"])["ab"]
            last = frames - 1
            if reach and not (max(reach) > net.arch["A"]["refine"]["temporal"] and float(
                    (T["predict_warp_ab_t%d" % last] - T["warp_ab_t%d" % last]).abs().mean()) > 1):
                raise RuntimeError("golden: the motion-predicted candidates' state reaches only %s "
                                   "pixels, or the warp does not change with them: it does not "
                                   "test A.refine.predict" % reach)
            if not all(hi - lo > 0.3 for lo, hi in spread):
                raise RuntimeError("golden: the per-pixel motion factors span only %s: they do not "
                                   "test C.gate_motion_radius" % spread)
    T = {k: v.detach().float().contiguous() for k, v in T.items()}
    for k, v in T.items():
        if not torch.isfinite(v).all():
            raise RuntimeError("golden tensor %s is not finite" % k)
    info = {"arch": net.arch["name"], "seed": seed, "size": [H, W], "full_size": [h, w],
            "frames": frames, "kr": KR, "kb": KB, "dtype": "F32",
            "compute": str(dtype).replace("torch.", ""), "calibrated": bool(calibrate and model is None),
            "mode": "eval, no_grad",
            "torch": torch.__version__, "numpy": np.__version__, "extra": bool(extra),
            "motion_px": [3.0, 2.0]}
    safetensors_io.save(os.path.join(outdir, "golden.safetensors"), T,
                        {"vaefarm": arch_json(net.arch), "golden": json.dumps(info)})
    return net, T


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="tiny", choices=("tiny", "full"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    ap.add_argument("--full-size", type=int, nargs=2, metavar=("h", "w"))
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--extra", action="store_true", help="also write intermediate tensors")
    ap.add_argument("--gated", action="store_true",
                    help="also the same weights with a gate on C (model_gated.safetensors)")
    ap.add_argument("--guided", action="store_true",
                    help="also the same weights under the guided filter (model_guided.safetensors)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    size = tuple(args.size) if args.size else DEFAULT_SIZES[args.arch][0]
    full = tuple(args.full_size) if args.full_size else (
        DEFAULT_SIZES[args.arch][1] if not args.size else (2 * size[0], 2 * size[1]))
    if size[0] < 8 or size[1] < 8 or size[0] % 8 or size[1] % 8:
        sys.exit("golden: --size %d %d: both must be positive multiples of 8" % size)
    if full[0] < 1 or full[1] < 1:
        sys.exit("golden: --full-size %d %d: both must be positive" % full)
    if args.frames < 1:
        sys.exit("golden: --frames must be >= 1")
    if args.threads < 1:
        sys.exit("golden: --threads %d: give 1 or more" % args.threads)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        sys.exit("golden: --out %s is not a folder: give the folder to write the files into" % args.out)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    try:
        net, T = run(args.arch, args.seed, size, full, args.frames, args.out, args.extra,
                     guided=args.guided, gated=args.gated)
    except OSError as e:
        sys.exit("golden: writing into %s: %s" % (args.out, first_line(e)))
    except (RuntimeError, ValueError) as e:
        if not any(m in str(e) for m in TOO_SMALL):
            raise
        sys.exit("golden: --size %d %d: the %s architecture needs larger frames at its coarsest "
                 "level (%s); give a larger --size (tiny: 40 40 and more)"
                 % (size[0], size[1], args.arch, first_line(e)))
    dt = time.time() - t0
    print_counts(net)
    nbytes = os.path.getsize(os.path.join(args.out, "golden.safetensors"))
    print("wrote %s/model.safetensors and %s/golden.safetensors (%d tensors, %.1f MB); "
          "%s seed %d, %dx%d, full %dx%d, %d frames" % (args.out, args.out, len(T), nbytes / 1e6,
                                                         args.arch, args.seed, size[0], size[1],
                                                         full[0], full[1], args.frames))
    print("wall time %.1f s" % dt)


if __name__ == "__main__":
    main()
