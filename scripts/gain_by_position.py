#!/usr/bin/python3
"""Where in a shot one method gains on another: per-frame RGB PSNR of A minus B on each film
of a scripts/quality.py run (evaluation or validation), grouped by the frame's place after its
shot's reference (1-5, 6-20, later) and by B's own PSNR (terciles of the film's frames).

    scripts/gain_by_position.py --quality out/quality [--a model] [--b warp] [--vaefarm build/coordinator/vaefarm]

Runs `vaefarm eval --per-frame --json` of runs/<film>/<A>.mkv and <B>.mkv against the film's
colour truth (cached beside them as <A>.perframe.json, remade when the output is newer), skips
each shot's first frame (the reference, passed through) and prints one row per film.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np


def fail(msg):
    sys.exit("gain_by_position: " + msg)


def per_frame(vaefarm, truth, out):
    cache = out[:-len(".mkv")] + ".perframe.json"
    if not os.path.exists(cache) or os.path.getmtime(cache) < os.path.getmtime(out):
        r = subprocess.run([vaefarm, "eval", "--truth", truth, "--output", out, "--per-frame", "--json"],
                           capture_output=True, text=True)
        if r.returncode:
            fail("vaefarm eval of %s: %s" % (out, r.stderr.strip()))
        tmp = cache + ".tmp"
        with open(tmp, "w") as fp:
            fp.write(r.stdout)
        os.replace(tmp, cache)
    with open(cache) as fp:
        return np.array([f["psnr_rgb"] for f in json.load(fp)["per_frame"]])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quality", required=True, help="a scripts/quality.py --out folder")
    ap.add_argument("--a", default="model")
    ap.add_argument("--b", default="warp")
    ap.add_argument("--vaefarm", default="build/coordinator/vaefarm")
    args = ap.parse_args()
    if not os.access(args.vaefarm, os.X_OK):
        fail("%s is not an executable vaefarm (--vaefarm)" % args.vaefarm)
    films = sorted(f[:-5] for f in os.listdir(os.path.join(args.quality, "films")) if f.endswith(".json"))
    if not films:
        fail("%s/films has no film descriptions: is it a scripts/quality.py --out folder?" % args.quality)
    print("RGB PSNR of %s minus %s, dB, mean over frames (each shot's reference frame left out)" % (args.a, args.b))
    print("| film | all | frames 1-5 | 6-20 | later | %s's low third | middle | high third |" % args.b)
    print("|---|---|---|---|---|---|---|---|")
    for film in films:
        with open(os.path.join(args.quality, "films", film + ".json")) as fp:
            desc = json.load(fp)
        # relative to the description's folder, as quality.py reads it
        truth = os.path.join(args.quality, "films", desc["truth"])
        if not os.path.exists(truth):   # a copied quality folder: the truth beside the description
            truth = os.path.join(args.quality, "films", os.path.basename(truth))
        if not os.path.exists(truth):
            truth = os.path.join(args.quality, "material", "films", os.path.basename(desc["truth"]))
        runs = os.path.join(args.quality, "runs", film)
        pa = per_frame(args.vaefarm, truth, os.path.join(runs, args.a + ".mkv"))
        pb = per_frame(args.vaefarm, truth, os.path.join(runs, args.b + ".mkv"))
        if len(pa) != len(pb):
            fail("%s: %s has %d frames, %s %d" % (film, args.a, len(pa), args.b, len(pb)))
        pos = np.zeros(len(pa), int)
        for s in desc["shots"]:
            pos[s["start"]:s["end"]] = np.arange(s["end"] - s["start"])
        keep = pos > 0
        g, b, p = (pa - pb)[keep], pb[keep], pos[keep]
        cuts = np.quantile(b, [1 / 3, 2 / 3])

        def mean(sel):
            return "%+.3f" % g[sel].mean() if sel.any() else "–"
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            film, mean(p > 0), mean(p <= 5), mean((p > 5) & (p <= 20)), mean(p > 20),
            mean(b < cuts[0]), mean((b >= cuts[0]) & (b < cuts[1])), mean(b >= cuts[1])))


if __name__ == "__main__":
    main()
