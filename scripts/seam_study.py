#!/usr/bin/python3
"""Seam study (DESIGN.md §4, docs/FARM.md): how far does chunking move the output from one
sequential pass, with and without warm-up?

    scripts/seam_study.py VAEFARM TESTDATA OUTDIR [--warmups 0,4,16] [--length 40] [--size H W]

Colorizes the standard test film (tests/MATERIAL.md: films/film_grey.mkv, 300 frames, shots of
50, 15, 150, 30, 20 and 35 frames, each with its own reference) once as one sequential pass per
shot (chunks longer than any shot) and once per warm-up with chunks of --length kept frames, then
compares every chunked output with the sequential one frame by frame in CIE Lab (D65, from the
decoded RGB): mean |delta a| and |delta b| per frame. Prints, per warm-up: the seam error of
report.json (the model's own ab at inference size, last warm-up frame against the previous
chunk's last kept frame), and the difference from the sequential pass at the first frames after
every chunk boundary and over all frames. Writes OUTDIR/seam_study.json.
Needs Debian's python3 with numpy; ffmpeg on PATH. Uses the default model ($VAEFARM_MODEL)."""
import argparse
import json
import os
import subprocess
import sys

import numpy as np


def lab_ab(rgb8):
    """uint8 (..., 3) sRGB -> (..., 2) a*, b* (D65)."""
    c = rgb8.astype(np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([a, b], -1)


def fail(msg):
    sys.exit("seam_study: " + msg)


def frames_ab(path, w, h, frames):
    r = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", path, "-f", "rawvideo",
                        "-pix_fmt", "rgb24", "-"], capture_output=True)
    if r.returncode != 0:
        fail("ffmpeg could not decode %s (exit %d): %s" % (path, r.returncode,
                                                          (r.stderr.decode(errors="replace").strip().splitlines() or [""])[0]))
    if len(r.stdout) != frames * h * w * 3:
        fail("%s: %d bytes of %dx%d RGB, not the film's %d frames" % (path, len(r.stdout), w, h, frames))
    rgb = np.frombuffer(r.stdout, np.uint8).reshape(-1, h, w, 3)
    return np.stack([lab_ab(f) for f in rgb])


def run(vf, yaml):
    try:
        r = subprocess.run([vf, yaml, "--quiet"])
    except OSError as e:
        fail("cannot run %s: %s" % (vf, e.strerror))
    if r.returncode != 0:   # vaefarm said why above
        fail("vaefarm failed on %s (exit %d)" % (yaml, r.returncode))


def load_json(path, what):
    try:
        with open(path) as fp:
            return json.load(fp)
    except (OSError, ValueError) as e:
        fail("%s: %s (%s)" % (path, getattr(e, "strerror", None) or e, what))


def write_text(path, text):
    try:
        with open(path + ".tmp", "w") as fp:
            fp.write(text)
        os.replace(path + ".tmp", path)   # the file appears only when complete
    except OSError as e:
        fail("writing %s: %s" % (path, e.strerror))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vaefarm")
    ap.add_argument("testdata")
    ap.add_argument("outdir")
    ap.add_argument("--warmups", default="0,4,16")
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--size", type=int, nargs=2, default=None)
    ap.add_argument("--after", type=int, default=8, help="frames after each boundary to report")
    a = ap.parse_args()
    try:
        warmups = [int(x) for x in a.warmups.split(",")]
    except ValueError:
        fail("--warmups %s: give warm-up frame counts separated by commas, e.g. 0,4,16" % a.warmups)
    if any(wu < 0 for wu in warmups):
        fail("--warmups %s: warm-ups are 0 or more frames" % a.warmups)
    if a.length < 1 or a.after < 1:
        fail("--length and --after must be 1 or more (got %d and %d)" % (a.length, a.after))
    if a.size and (min(a.size) < 32 or a.size[0] % 8 or a.size[1] % 8):
        fail("--size %d %d: vaefarm's inference_size takes multiples of 8, 32 or more" % tuple(a.size))
    films = os.path.join(os.path.abspath(a.testdata), "films")
    meta = load_json(os.path.join(films, "film.json"), "the test film's descriptor; scripts/make_test_material.sh makes it")
    if os.path.exists(a.outdir) and not os.path.isdir(a.outdir):
        fail("OUTDIR %s is not a folder" % a.outdir)
    try:
        os.makedirs(a.outdir, exist_ok=True)
    except OSError as e:
        fail("cannot make OUTDIR %s: %s" % (a.outdir, e.strerror))
    out = os.path.abspath(a.outdir)

    def yaml(name, length, warmup):
        lines = ["version: 1", "input: %s/film_grey.mkv" % films, "output: %s/%s.mkv" % (out, name),
                 "shots:", "  detect: off", "  list:"]
        for s in meta["shots"]:
            lines.append("    - { start: %d, end: %d, reference: %s/%s }" % (
                s["start"], s["end"], films, s["reference"]))
        lines.append("chunks: { length: %d, warmup: %d }" % (length, warmup))
        if a.size:
            lines.append("inference_size: [%d, %d]" % tuple(a.size))
        p = os.path.join(out, name + ".yaml")
        write_text(p, "\n".join(lines) + "\n")
        return p

    w, h = meta["width"], meta["height"]
    run(a.vaefarm, yaml("sequential", 100000, 0))
    seq = frames_ab(os.path.join(out, "sequential.mkv"), w, h, meta["frames"])
    # frame-to-frame |delta ab| of the sequential pass itself: the scale of normal motion
    own = np.abs(np.diff(seq, axis=0)).mean(axis=(1, 2, 3))
    cuts = set(meta["cuts"])
    own_in_shot = float(np.mean([own[i - 1] for i in range(1, len(seq)) if i not in cuts]))
    result = {"film": "films/film_grey.mkv", "frames": len(seq), "chunk_length": a.length,
              "sequential_frame_to_frame_dab": own_in_shot, "warmups": []}
    print("film_grey.mkv: %d frames, chunks of %d kept frames; sequential pass: mean |dab| between "
          "consecutive frames %.3f" % (len(seq), a.length, own_in_shot))
    print("%7s %10s %6s %10s %12s %12s %10s" % ("warm-up", "boundaries", "seam", "d@first",
                                                "d@first+%d" % (a.after - 1), "d all frames",
                                                "d max"))
    for wu in warmups:
        name = "warmup%d" % wu
        run(a.vaefarm, yaml(name, a.length, wu))
        rep = load_json(os.path.join(out, name + ".mkv.vaefarm", "report.json"), "the run's report")
        plan = load_json(os.path.join(out, name + ".mkv.vaefarm", "plan.json"), "the run's plan")
        ch = frames_ab(os.path.join(out, name + ".mkv"), w, h, len(seq))
        d = np.abs(ch - seq).mean(axis=(1, 2, 3))          # per frame, ab units
        starts = [c2["start"] for c1, c2 in zip(plan["chunks"], plan["chunks"][1:])
                  if c1["shot"] == c2["shot"]]
        # no boundary (chunks as long as every shot): nothing to profile
        prof = [float(np.mean([d[s + k] for s in starts if s + k < len(d)]))
                if any(s + k < len(d) for s in starts) else None for k in range(a.after)]
        seam = rep["seam_error"]
        row = {"warmup": wu, "boundaries": starts, "seam_error_mean": seam["mean"] if seam["measured"] else None,
               "seam_error_max": seam["max"] if seam["measured"] else None,
               "diff_after_boundary": prof, "diff_all_frames": float(d.mean()),
               "diff_max_frame": float(d.max()), "diff_per_frame": [float(x) for x in d],
               "wall_s": rep["wall_s"], "warmup_frames_run": rep["warmup_frames_run"]}
        result["warmups"].append(row)
        opt = lambda x: "-" if x is None else "%.3f" % x  # noqa: E731
        print("%7d %10d %6s %10s %12s %12.4f %10.3f" % (
            wu, len(starts), opt(seam["mean"] if seam["measured"] else None), opt(prof[0]),
            opt(prof[-1]), d.mean(), d.max()))
    write_text(os.path.join(out, "seam_study.json"), json.dumps(result, indent=1))
    print("wrote %s" % os.path.join(out, "seam_study.json"))


if __name__ == "__main__":
    sys.exit(main())
