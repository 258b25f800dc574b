#!/usr/bin/python3
"""PNG of the loss curves of a training log (train/train.py's or train/finetune_c.py's OUT/log.jsonl).

    train/plot_losses.py train/checkpoints/tiny/log.jsonl --out docs/img/train_losses.png [--smooth 50]

One panel per term (unweighted, log scale; the weight is in the title), plus the weighted total
and the |ab| errors of the output and of the warp alone against the truth (Lab units). Thin line:
every step; thick line: a moving average over --smooth steps. The x axis is the step (the top
axis of the total's panel gives hours of training). A stage-5 log (finetune_c.py) has its own four
terms, and its validation errors (C and the warp alone, on held-out sequences) as points."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cli_io import out_file_error  # noqa: E402


def read(path):
    """The log's records, by step; a ValueError naming the line for one that is not a record with
    a step, but the last line, which a run killed while writing it cut short: dropped with a
    warning, as a resume drops it (train.py's truncate_log)."""
    recs = []
    with open(path) as fp:
        lines = [(i, ln.strip()) for i, ln in enumerate(fp, 1) if ln.strip()]
    for k, (i, ln) in enumerate(lines):
        try:
            r = json.loads(ln)
        except ValueError as e:
            if k == len(lines) - 1 and k > 0:
                print("plot_losses: warning: %s: its last line (%d) is cut short (a run killed while "
                      "writing it?): left out" % (path, i), file=sys.stderr)
                break
            raise ValueError("line %d is not JSON (%s)" % (i, e)) from None
        if not isinstance(r, dict) or not isinstance(r.get("step"), int):
            raise ValueError("line %d is not a record with a step" % i)
        recs.append(r)
    recs.sort(key=lambda r: r["step"])
    return recs


def smooth(y, n):
    if n <= 1 or len(y) < 2:
        return y
    n = min(n, len(y))
    c = np.cumsum(np.insert(np.asarray(y, dtype=np.float64), 0, 0.0))
    out = (c[n:] - c[:-n]) / n
    head = [np.mean(y[:i + 1]) for i in range(n - 1)]
    return np.concatenate([head, out])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("--out", required=True)
    ap.add_argument("--smooth", type=int, default=0, help="moving average (default: steps/50, at least 5)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    why = out_file_error("--out", args.out, (("the log", args.log),), "losses.png")
    if why:
        sys.exit("plot_losses: " + why)
    try:
        recs = read(args.log)
    except OSError as e:
        sys.exit("plot_losses: %s: %s" % (args.log, e.strerror))
    except ValueError as e:
        sys.exit("plot_losses: %s is not a training log, a JSON record a line (%s)" % (args.log, e))
    if not recs:
        sys.exit("plot_losses: %s has no records" % args.log)
    from vaefarm_train.losses import DEFAULT_WEIGHTS
    from vaefarm_train.step import TERMS
    weights = dict(DEFAULT_WEIGHTS)
    terms = list(TERMS)
    conf = os.path.join(os.path.dirname(os.path.abspath(args.log)), "config.json")
    if os.path.exists(conf):                 # the run's own weights (train.py writes config.json)
        with open(conf) as fp:
            cj = json.load(fp)
        weights.update(cj.get("weights", {}))
        if "sequences" in cj:                # finetune_c.py (stage 5): its weights, its terms
            weights = cj["config"]["weights"]
            terms = list(weights)
    val = [r for r in recs if "val_c_err" in r]
    recs = [r for r in recs if r["step"] >= 0]
    steps = np.array([r["step"] for r in recs])
    n = args.smooth or max(5, len(recs) // 50)
    panels = terms + ["total", "errors"]
    rows = (len(panels) + 2) // 3
    fig, axes = plt.subplots(rows, 3, figsize=(15, 10 * rows / 3), constrained_layout=True)
    for ax, key in zip(axes.ravel(), panels):
        if key == "errors":
            for k, lab in (("ab_err", "output"), ("warp_err", "warp alone")):
                y = np.array([r.get(k, np.nan) for r in recs], dtype=np.float64)
                if np.all(np.isnan(y)):
                    continue
                ax.plot(steps, y, lw=0.4, alpha=0.35)
                ax.plot(steps, smooth(y, n), lw=1.8, label=lab, color=ax.lines[-1].get_color())
            for k, lab, mk in (("val_c_err", "output, validation", "o"), ("val_warp_err", "warp, validation", "s")):
                if val:
                    ax.plot([max(r["step"], 0) for r in val], [r[k] for r in val], mk + "-", ms=4, label=lab)
            ax.set_title("mean |ab − truth| of frame t (Lab units)")
            ax.legend()
        else:
            # a term added after a run began has no value in the older records
            y = np.array([r.get(key, np.nan) for r in recs], dtype=np.float64)
            ok = ~np.isnan(y)
            ax.plot(steps[ok], y[ok], lw=0.4, alpha=0.35, color="C0")
            ax.plot(steps[ok], smooth(y[ok], n), lw=1.8, color="C0")
            if np.all(y[ok] > 0):
                ax.set_yscale("log")
            ax.set_title(key + ("" if key == "total" else "  (weight %g)" % weights[key]))
            if key == "total" and "train_seconds" in recs[-1]:
                hrs = recs[-1]["train_seconds"] / 3600.0
                ax.text(0.98, 0.95, "%d steps, %.2f h" % (steps[-1] + 1, hrs), transform=ax.transAxes,
                        ha="right", va="top")
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(args.title or "vaefarm training: %s (moving average over %d steps)" % (args.log, n))
    try:
        fig.savefig(args.out + ".tmp", dpi=90, format="png")
        os.replace(args.out + ".tmp", args.out)   # the picture appears only when complete
    except OSError as e:
        if os.path.exists(args.out + ".tmp"):
            os.unlink(args.out + ".tmp")
        sys.exit("plot_losses: --out %s: %s" % (args.out, e.strerror or e))
    print("plot_losses: %d records -> %s" % (len(recs), args.out))


if __name__ == "__main__":
    main()
