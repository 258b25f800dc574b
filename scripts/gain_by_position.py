#!/usr/bin/python3
"""Where in a shot one method gains on another: per-frame RGB PSNR of A minus B on each film
of a scripts/quality.py run (evaluation or validation), grouped by the frame's place after its
shot's reference (1-5, 6-20, later) and by B's own PSNR (terciles of the film's frames).

    scripts/gain_by_position.py --quality out/quality [--a model] [--b warp] [--vaefarm build/coordinator/vaefarm]
                                [--by-frame N]

Runs `vaefarm eval --per-frame --json` of runs/<film>/<A>.mkv and <B>.mkv against the film's
colour truth (cached beside them as <A>.perframe.json, remade when the output is newer), skips
each shot's first frame (the reference, passed through) and prints one row per film. With
--by-frame N, then a second table: A, A minus B and the ceiling at inference size by place after
the reference (frames 1 .. N one by one, then N+1-16, 17-32, later), over every shot of every film.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))
from safetensors_io import file_sha256  # noqa: E402  (quality.py hashes the outputs with it)


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


_recorded = {}


def run_output(quality, film, method):
    """runs/<film>/<method>.mkv of a quality folder, checked against the file quality.json says
    was measured (its path, size and time, where the run recorded them): a later run, stopped
    midway, may have remade it with another model or setting, and the figures would mix them."""
    path = os.path.join(quality, "runs", film, method + ".mkv")
    if not os.path.exists(path):
        fail("%s is missing: run scripts/quality.py with --methods %s (and the same --out)"
             % (path, method))
    if quality not in _recorded:
        try:
            with open(os.path.join(quality, "quality.json")) as fp:
                _recorded[quality] = json.load(fp)["meta"].get("outputs", {})
        except (OSError, ValueError, KeyError):
            _recorded[quality] = {}
    was = _recorded[quality].get(film, {}).get(method)
    st = os.stat(path)
    same = was is None or (was[1] == st.st_size and (was[2] == int(st.st_mtime) or (
        len(was) > 3 and was[3] == file_sha256(path))))   # a copied folder: its bytes
    if not same:
        fail("%s is not the file %s/quality.json measured (it was made again since, by a run that "
             "did not finish?): run scripts/quality.py to its end with the same --out" % (path, quality))
    return path


def quality_films(quality):
    """[(name, descriptor, truth)] of every film of a scripts/quality.py --out folder, in the
    order of its run (quality.json); the truth is the file the run's evals compared with."""
    try:
        with open(os.path.join(quality, "quality.json")) as fp:
            films = json.load(fp)["meta"]["films"]
    except (OSError, ValueError, KeyError) as e:
        fail("%s/quality.json does not hold a run's films (%s): is it a scripts/quality.py "
             "--out folder, run to its end?" % (quality, e))
    out = []
    for name, desc in films.items():
        runs = os.path.join(quality, "runs", name)
        evals = sorted(f for f in os.listdir(runs) if f.endswith(".eval.json")) \
            if os.path.isdir(runs) else []
        if not evals:
            fail("%s has no eval (*.eval.json) to say where %s's truth is" % (runs, name))
        with open(os.path.join(runs, evals[0])) as fp:
            truth = json.load(fp)["truth"]
        # a copied quality folder: the truth beside the descriptions, or in its material
        for p in (truth, os.path.join(quality, "films", os.path.basename(truth)),
                  os.path.join(quality, "material", "films", os.path.basename(truth))):
            if os.path.exists(p):
                break
        else:
            fail("%s's truth %s (from %s) is gone, and not under %s/films or material/films" % (
                name, truth, evals[0], quality))
        truth = p
        out.append((name, desc, truth))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quality", required=True, help="a scripts/quality.py --out folder")
    ap.add_argument("--a", default="model")
    ap.add_argument("--b", default="warp")
    ap.add_argument("--vaefarm", default="build/coordinator/vaefarm")
    ap.add_argument("--by-frame", type=int, default=0, metavar="N",
                    help="also a table by place after the reference, frames 1..N one by one")
    args = ap.parse_args()
    if not 0 <= args.by_frame <= 15:
        fail("--by-frame wants 0..15 (the frames shown one by one before the 16-frame groups)")
    if not os.access(args.vaefarm, os.X_OK):
        fail("%s is not an executable vaefarm (--vaefarm)" % args.vaefarm)
    films = quality_films(args.quality)
    print("RGB PSNR of %s minus %s, dB, mean over frames (each shot's reference frame left out)" % (args.a, args.b))
    print("| film | all | frames 1-5 | 6-20 | later | %s's low third | middle | high third |" % args.b)
    print("|---|---|---|---|---|---|---|---|")
    pooled = []   # (place after the reference, A, B, ceiling at inference size) per frame
    for film, desc, truth in films:
        pa = per_frame(args.vaefarm, truth, run_output(args.quality, film, args.a))
        pb = per_frame(args.vaefarm, truth, run_output(args.quality, film, args.b))
        if len(pa) != len(pb):
            fail("%s: %s has %d frames, %s %d" % (film, args.a, len(pa), args.b, len(pb)))
        pos = np.zeros(len(pa), int)
        for s in desc["shots"]:
            pos[s["start"]:s["end"]] = np.arange(s["end"] - s["start"])
        if args.by_frame:
            pc = per_frame(args.vaefarm, truth, run_output(args.quality, film, "ceiling_inf"))
            pooled += [(int(k), a, b, c) for k, a, b, c in zip(pos, pa, pb, pc) if k > 0]
        keep = pos > 0
        g, b, p = (pa - pb)[keep], pb[keep], pos[keep]
        cuts = np.quantile(b, [1 / 3, 2 / 3])

        def mean(sel):
            return "%+.3f" % g[sel].mean() if sel.any() else "–"
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            film, mean(p > 0), mean(p <= 5), mean((p > 5) & (p <= 20)), mean(p > 20),
            mean(b < cuts[0]), mean((b >= cuts[0]) & (b < cuts[1])), mean(b >= cuts[1])))
    if args.by_frame:
        n = args.by_frame
        groups = [(str(k), k, k) for k in range(1, n + 1)] + [
            ("%d-16" % (n + 1), n + 1, 16), ("17-32", 17, 32), ("later", 33, 1 << 30)]
        print("\nBy place after the reference, every shot of every film: mean RGB PSNR (dB)")
        print("| frame after the reference | frames | %s | %s minus %s | ceiling at inference size |" % (
            args.a, args.a, args.b))
        print("|---|---|---|---|---|")
        for label, lo, hi in groups:
            sel = [r for r in pooled if lo <= r[0] <= hi]
            if sel:
                a, b, c = (np.mean([r[j] for r in sel]) for j in (1, 2, 3))
                print("| %s | %d | %.2f | %+.3f | %.2f |" % (label, len(sel), a, a - b, c))


if __name__ == "__main__":
    main()
