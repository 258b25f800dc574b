#!/usr/bin/python3
"""How saturated the model's colours are, next to the truth's and the warp's, on training batches.

    train/diagnose.py CHECKPOINT [--batches 4] [--size 64x112] [--data DIR]

Draws batches the way train.py does (a fixed seed far from the run's own steps), runs the
recurrence without sampling (the latent's mean, as at inference) and prints, for frame t (the
second of each clip): the mean |a, b| of the truth, of the model's output and of the warp alone
(A's W^ab), and the mean |ab − truth| of the output and of the warp. An output whose |ab| is far
below the truth's while its error beats the warp's is predicting the mean colour (desaturation),
not using the warp (docs/TRAINING.md). Each figure is given over all samples and apart for those
whose reference is their own frame (the evaluation films' case) and those with another image.
Needs Debian's /usr/bin/python3 (torch) and the training cache (train/fetch_data.sh).
"""
import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vaefarm_ref import build, load_weights  # noqa: E402
from vaefarm_ref import lab as labmod  # noqa: E402
from vaefarm_ref.arch import get_arch  # noqa: E402
from vaefarm_train.data import Cache, DataConfig, make_batch  # noqa: E402
from vaefarm_train.step import TrainStep  # noqa: E402


def per(x):
    """Mean |x| of each sample of a batch, as a list."""
    return x.abs().mean(dim=(1, 2, 3)).tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--size", default="64x112")
    ap.add_argument("--data", default=None, help="the training cache (default: the checkpoint's)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    try:
        h, w = (int(x) for x in a.size.lower().split("x"))
    except ValueError:
        sys.exit("diagnose: --size %s: write it HxW, e.g. 64x112" % a.size)
    if h < 40 or w < 40 or h % 8 or w % 8 or a.batches < 1:
        sys.exit("diagnose: --size %s --batches %d: the sides multiples of 8 and at least 40, and "
                 "at least one batch" % (a.size, a.batches))
    if not os.path.isfile(a.checkpoint):
        sys.exit("diagnose: %s: no such file (a train/train.py checkpoint, RUN/last.pt)" % a.checkpoint)
    try:
        ck = torch.load(a.checkpoint, map_location="cpu")
        cfg, arch, model = ck["config"], ck["arch"], ck["model"]
    except Exception as e:   # torch.load's errors are of many kinds: one line for each
        sys.exit("diagnose: %s is not a checkpoint of train/train.py (%s): a weights file or a "
                 "finetune_c.py checkpoint has no training batches to draw" % (
                     a.checkpoint, str(e).splitlines()[0] if str(e) else type(e).__name__))
    net = build(get_arch(arch))   # the checkpoint's own (a preset may have changed since)
    load_weights(net, model)
    st = TrainStep(net).eval()
    if a.data is None and ck.get("data", {}).get("synthetic"):
        cache = Cache.synthetic()      # the run trained on synthetic data: draw the same kind
    else:
        data = a.data or ck.get("data", {}).get("root") or os.path.expanduser("~/.cache/vaefarm/train")
        try:
            cache = Cache(data)
        except (OSError, ValueError, KeyError) as e:
            sys.exit("diagnose: the training cache in %s cannot be read (%s): build it "
                     "(train/fetch_data.sh) or give --data" % (data, e))
    dcfg = DataConfig(**ck["data_config"]) if "data_config" in ck else DataConfig()
    names = ["|ab| truth", "|ab| model", "|ab| warp", "|ab - truth| model", "|ab - truth| warp"]
    rows = []                                   # one per sample: the five figures, self reference?
    with torch.no_grad():
        for s in range(a.batches):
            b = make_batch(cache, cfg["batch"], (h, w), 123, 900000 + s, 0, dcfg)
            o = st.colorize(b, sample=False)
            truth = labmod.rgb_to_lab(b["rgb2"])[:, 1:3]
            cols = [per(truth), per(o["ab2"]), per(o["warp2"]), per(o["ab2"] - truth), per(o["warp2"] - truth)]
            rows += [(tuple(c[i] for c in cols), bool(b["self_ref"][i] > 0)) for i in range(len(cols[0]))]
    print("%s (step %s), %d batches of %d at %dx%d:" % (a.checkpoint, ck.get("step"), a.batches,
                                                     cfg["batch"], h, w))
    groups = [("all", rows), ("self reference", [r for r in rows if r[1]]),
              ("other reference", [r for r in rows if not r[1]])]
    print("  %-20s" % "" + "".join("%18s" % ("%s (%d)" % (g, len(rs))) for g, rs in groups))
    for i, name in enumerate(names):
        print("  %-20s" % name + "".join("%18s" % ("%.2f" % statistics.mean(r[0][i] for r in rs) if rs else "-")
                                         for _, rs in groups))


if __name__ == "__main__":
    main()
