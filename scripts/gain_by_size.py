#!/usr/bin/python3
"""What C gains on its warp at the network's size, and what is left of it at the film's.

    scripts/gain_by_size.py [--model M.safetensors] [--frames 6] FILM.json...

FILM.json: an evaluation or validation film's descriptor (scripts/make_eval_films.sh). For the
first --frames frames of every shot (the reference frame passed through, as vaefarm does, then
the PyTorch reference's frame chain: C on the warp, the warp's own chain not depending on C),
this prints C's output minus its warp, as mean squared error in a, b against the truth's, by
place after the reference (a frame that is its reference's own picture, as a held shot's start,
is passed through as vaefarm does, Net.is_reference_frame, and counts nowhere):
  - at the network's size: against the truth resized as the C engine resizes a frame
    (what stage 5 trains and validates on, docs/TRAINING.md);
  - at the film's size: both upsampled by the model's own upsampling, against the truth's a, b
    (what `vaefarm eval` and docs/QUALITY.md judge, but for the model's film-size propagation,
    arch propagate, which is left out here: it carries the same colours into both, C's and the
    warp's, and so would move the two alike).
Negative: C is closer to the truth than its warp. --absolute adds each one's own mean squared
error. docs/QUALITY.md ("Reading it", session 18) has what it found. Needs Debian's
/usr/bin/python3 (torch, numpy, OpenCV); one thread.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import baselines as B  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("films", nargs="+", help="film descriptors (.json)")
    ap.add_argument("--model", default=os.environ.get("VAEFARM_MODEL") or
                    os.path.join(ROOT, "models", "vaefarm-tiny.safetensors"),
                    help="default: $VAEFARM_MODEL, else the bundled model (as quality.py)")
    ap.add_argument("--frames", type=int, default=6,
                    help="frames of each shot from its reference (default 6: the reference and 5)")
    ap.add_argument("--absolute", action="store_true",
                    help="also print C's and the warp's own mean squared errors")
    args = ap.parse_args()
    if args.frames < 2:
        ap.error("--frames must be at least 2 (the reference and one frame)")
    if not os.path.exists(args.model):
        sys.exit("gain_by_size: no model %s" % args.model)
    torch.set_num_threads(1)
    try:
        net = B.load_net(args.model)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        sys.exit("gain_by_size: %s: not a vaefarm model (%s)" % (args.model, e))
    K = args.frames
    print("C minus its warp, ab mean squared error, by frame after the shot's reference (%s)"
          % os.path.basename(args.model))
    print("| film | size | %s |" % " | ".join("frame %d" % k for k in range(1, K)))
    print("|---|---|" + "---|" * (K - 1))
    for path in args.films:
        try:
            measure(net, path, K, args.absolute)
        except (OSError, ValueError, KeyError, RuntimeError, subprocess.CalledProcessError) as e:
            sys.exit("gain_by_size: %s: %s" % (path, e))
    return 0


def measure(net, path, K, absolute):
    """Print the film's two rows (and with absolute, C's and the warp's own four)."""
    film = B.Film(path)
    H, W = B.inference_size(net.arch, film.w, film.h, "default")
    Y = film.Y
    truth = film.truth_rgb()
    acc = np.zeros((K, 2, 2))    # frame place, (network size, film size), (C, warp)
    n = np.zeros(K)
    shot_of = {}
    for start, end, ref in film.shots:
        for k, t in enumerate(range(start, min(end, start + K))):
            shot_of[t] = (k, ref)
    seen = 0
    with torch.no_grad():
        prev = cache = ref_rgb = ref_y = None
        for t, tr in enumerate(truth):
            seen += 1
            if t not in shot_of:
                continue
            k, ref = shot_of[t]
            gf = torch.from_numpy(film.grey(Y[t:t + 1])[:, None])
            g = torch.from_numpy(B.resize(gf.numpy(), H, W))
            if k == 0:
                ref_rgb, cache, ref_y = B.shot_reference(net, film, ref, H, W)
            if net.is_reference_frame(g[0, 0], ref_y):
                # the reference's own picture: passed through, its colours the next state
                prev = net.passthrough(g, ref_rgb[None])["prev"]
                continue
            o = net.frame(g, cache, prev)
            prev = o["prev"]
            t_lo = B.lab_of(B.resize(tr[None], H, W)[0])[1:3]
            t_hi = B.lab_of(tr)[1:3]
            for j, ab in enumerate((o["ab"], o["warp_ab"])):
                acc[k, 0, j] += float(((ab[0].numpy() - t_lo) ** 2).mean())
                up = net.upsample(g, ab, gf)[0].numpy()
                acc[k, 1, j] += float(((up - t_hi) ** 2).mean())
            n[k] += 1
    if seen != len(Y):
        raise ValueError("the truth has %d frames, the grey %d" % (seen, len(Y)))
    for s, name in ((0, "network %dx%d" % (H, W)), (1, "film %dx%d" % (film.h, film.w))):
        print("| %s | %s | %s |" % (film.name, name, " | ".join(
            "%+.3f" % ((acc[k, s, 0] - acc[k, s, 1]) / n[k]) if n[k] else "-" for k in range(1, K))),
            flush=True)
        if absolute:
            for j, who in enumerate(("C", "warp")):
                print("| %s | %s, %s's own | %s |" % (film.name, name, who, " | ".join(
                    "%.4f" % (acc[k, s, j] / n[k]) if n[k] else "-" for k in range(1, K))), flush=True)


if __name__ == "__main__":
    sys.exit(main())
