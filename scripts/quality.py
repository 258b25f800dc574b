#!/usr/bin/python3
"""Colorization quality of the bundled model against the baselines, on the evaluation films.

    scripts/quality.py [--model FILE] [--films film,hard,many,vtest,city] [--build DIR] [--out DIR]

For every evaluation film (scripts/make_eval_films.sh: test films made only from packages held
out of training, each shot's first colour frame as its reference) this runs
  - the model through vaefarm itself (a film.yaml with the film's shots and references, the
    given weights file, everything else vaefarm's defaults: inference size, precision, chunks),
  - every baseline of scripts/baselines.py (transfer, transfer_l, warp, flow, ceiling_inf, ceiling),
  - `vaefarm eval --json` of each against the colour truth,
and writes into OUT (default out/quality):
  quality.md       the table film x method: RGB PSNR/SSIM, ab PSNR/SSIM, colourfulness and flicker
                   (each beside the truth's), the mean over the films, issue 6's checks, per shot
                   the model against its warp and flow (eval --cuts at the film's shots), timings
  quality.csv      the same numbers, one row per film and method
  quality.json     everything, with the commands' settings and every method's per-shot figures
  strips/<film>_shot<K>.png   one strip per shot (several shots per film): grey input,
                   reference, model, each baseline but the ceilings, truth, at half size, each
                   tile labelled with its method and that frame's RGB PSNR
  films/           the evaluation films (made on the first run, kept)
  runs/<film>/     each method's output (<method>.mkv), its eval (<method>.eval.json) and what
                   made it; a stamp beside each records its inputs (film, model, code (the warp's and
                   ceiling_inf's: the PyTorch reference's too), binary):
                   an output whose inputs did not change is reused (--fresh: redo everything).
With --validation, the validation films instead (vfilm, vmany, tree, megamind: made as the
evaluation films are, from other files of the same held-out packages; docs/QUALITY.md "The
validation films"), into out/validation: choose models and settings there, and measure the
evaluation films once, at the end.
Needs Debian's /usr/bin/python3 (torch, numpy, cv2) and a built vaefarm (--build, default build).
"""
import argparse
import contextlib
import csv
import io
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "train"))
FILMS = ("film", "hard", "many", "vtest", "city")
VALIDATION_FILMS = ("vfilm", "vmany", "tree", "megamind")
BASELINES = ("transfer", "transfer_l", "warp", "flow", "ceiling_inf", "ceiling")
METHODS = ("model",) + BASELINES
STRIP_METHODS = ("model", "transfer", "transfer_l", "warp", "flow")
CEILINGS = ("ceiling", "ceiling_inf")
LABEL = {"model": "model (vaefarm)", "transfer": "global transfer", "transfer_l": "luma-band transfer",
         "warp": "warp alone (W^ab)", "flow": "Farneback flow", "ceiling_inf": "ceiling at inference size + post",
         "ceiling": "ceiling (truth ab)"}
STRIP_SHOTS_MAX = {"many": 4, "vmany": 4}      # shots per film with a strip (default: all, at most 8)


def r8(x):
    """x to the nearest multiple of 8, at least 32 (node/chunk.c round8_min32)."""
    k = int(math.floor(x / 8 + 0.5))
    return 32 if k < 4 else k * 8


def model_arch(path):
    """The architecture JSON in a weights file's safetensors header (docs/WEIGHTS.md)."""
    try:
        with open(path, "rb") as fp:
            n = int.from_bytes(fp.read(8), "little")
            if not 0 < n < 1 << 27:
                raise ValueError("no safetensors header")
            head = json.loads(fp.read(n))
        return json.loads(head["__metadata__"]["vaefarm"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit("quality: %s is not a vaefarm weights file (%s: %s)" % (path, type(e).__name__, e))


def log(msg):
    print("quality: " + msg, flush=True)


def sha256(path):
    from safetensors_io import file_sha256   # train/
    return file_sha256(path)


def warp_sha256(path):
    """What the warp baseline reads of a weights file (train/safetensors_io.py): a model that
    changes only C reuses its predecessor's warp."""
    from safetensors_io import warp_sha256 as w   # train/
    return w(path)


def fstat(path):
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, int(st.st_mtime)]


def output_id(path):
    return fstat(path) + [sha256(path)]


def stamp_ok(path, key):
    """Whether path was made from key and is the very file then stamped (its size and time: an
    output an interrupted later run rewrote under the old stamp is not taken for it)."""
    try:
        st = json.load(open(path + ".stamp"))
        return os.path.exists(path) and st == {"key": key, "output": fstat(path)}
    except (OSError, ValueError):
        return False


def stamp_clear(path):
    """Before path is made again: its stamp goes first, so an interrupted remake leaves none."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + ".stamp")


def write_atomic(path, text):
    with open(path + ".tmp", "w", newline="") as fp:
        fp.write(text)
    os.replace(path + ".tmp", path)


def stamp_write(path, key):
    write_atomic(path + ".stamp", json.dumps({"key": key, "output": fstat(path)}))


def run(cmd, **kw):
    t0 = time.time()
    r = subprocess.run(cmd, **kw)
    if r.returncode != 0:
        sys.exit("quality: failed (exit %d): %s" % (r.returncode, " ".join(shlex.quote(c) for c in cmd)))
    return time.time() - t0, r


class Film:
    def __init__(self, path):
        self.json = os.path.abspath(path)
        self.dir = os.path.dirname(self.json)
        self.d = json.load(open(self.json))
        self.name = self.d["name"]
        self.grey, self.truth = self.at(self.d["grey"]), self.at(self.d["truth"])
        self.shots = [(s["start"], s["end"], self.at(s["reference"])) for s in self.d["shots"]]

    def at(self, p):
        return p if os.path.isabs(p) else os.path.join(self.dir, p)

    def inputs_key(self):
        return {"descriptor": self.d, "files": [fstat(self.grey), fstat(self.truth)] +
                [fstat(r) for _, _, r in self.shots]}


# ------------------------------------------------------------------------------------ steps

def run_model(film, rundir, args, key, timings):
    out = os.path.join(rundir, "model.mkv")
    if not args.fresh and stamp_ok(out, key):
        return
    work = out + ".vaefarm"
    stamp_clear(out)
    for p in (out, work):
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.unlink(p)
    y = ["version: 1", "input: " + json.dumps(film.grey), "output: model.mkv",
         "model: " + json.dumps(os.path.abspath(args.model)), "audio: none"]
    if args.inference_size == "full":
        y.append("inference_size: [%d, %d]" % (r8(film.d["height"]), r8(film.d["width"])))
    elif args.inference_size != "default":
        y.append("inference_size: [%s]" % ", ".join(args.inference_size.lower().split("x")))
    if args.precision != "default":
        y.append("precision: " + args.precision)
    y += ["shots:", "  detect: off", "  list:"]
    y += ["    - { start: %d, end: %d, reference: %s }" % (s, e, json.dumps(r)) for s, e, r in film.shots]
    yaml = os.path.join(rundir, "model.yaml")
    with open(yaml, "w") as fp:
        fp.write("\n".join(y) + "\n")
    cmd = [args.vaefarm, yaml, "--quiet"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.ranks > 1:
        cmd = ["mpirun", "-np", str(args.ranks), "--oversubscribe"] + cmd
    log("%s: model via vaefarm (%d frames)" % (film.name, film.d["frames"]))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    dt, _ = run(cmd, env=env)
    timings.append((film.name, "model (vaefarm run)", dt))
    stamp_write(out, key)


def run_baselines(film, rundir, methods, args, keys, timings):
    todo = [m for m in methods if args.fresh or not stamp_ok(os.path.join(rundir, m + ".mkv"), keys[m])]
    if not todo:
        return
    for m in todo:
        stamp_clear(os.path.join(rundir, m + ".mkv"))
    log("%s: baselines %s" % (film.name, ", ".join(todo)))
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "baselines.py"), film.json, "--out-dir", rundir,
           "--methods", ",".join(todo), "--model", os.path.abspath(args.model),
           "--threads", str(args.py_threads), "--inference-size", args.inference_size]
    run(cmd)
    for m in todo:
        info = json.load(open(os.path.join(rundir, m + ".json")))
        timings.append((film.name, m, info["seconds"]))
        stamp_write(os.path.join(rundir, m + ".mkv"), keys[m])


def run_eval(film, rundir, method, args, timings):
    out = os.path.join(rundir, method + ".mkv")
    ej = os.path.join(rundir, method + ".eval.json")
    cuts = [s for s, _, _ in film.shots[1:]]
    key = {"truth": fstat(film.truth), "output": fstat(out), "vaefarm": args.vaefarm_sha,
           "cuts": cuts}
    if args.fresh or not stamp_ok(ej, key):
        stamp_clear(ej)
        cmd = [args.vaefarm, "eval", "--truth", film.truth, "--output", out, "--json",
               "--threads", str(args.eval_threads)]
        if cuts:
            cmd += ["--cuts", ",".join(str(c) for c in cuts)]
        dt, r = run(cmd, capture_output=True, text=True)
        timings.append((film.name, "eval " + method, dt))
        write_atomic(ej, r.stdout)
        write_atomic(ej + ".seconds", "%.2f\n" % dt)
        stamp_write(ej, key)
    return json.load(open(ej))


# ----------------------------------------------------------------------------------- strips

def decode_frames(path, frames, w, h):
    """The frames (indices, ascending) of a video as RGB24 arrays, converted by its own tags
    (swscale's bicubic + accurate rounding, as eval's decoder)."""
    sel = "+".join("eq(n\\,%d)" % f for f in frames)
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0", "-vf",
                        "select='%s'" % sel, "-fps_mode", "passthrough", "-sws_flags",
                        "bicubic+accurate_rnd+full_chroma_int", "-f", "rawvideo", "-pix_fmt",
                        "rgb24", "-"], capture_output=True, check=True)
    a = np.frombuffer(r.stdout, np.uint8)
    if a.size != len(frames) * h * w * 3:
        raise RuntimeError("%s: could not decode frames %s" % (path, frames))
    return {f: x for f, x in zip(frames, a.reshape(len(frames), h, w, 3))}


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else min(100.0, 10 * math.log10(255.0 ** 2 / mse))


def make_strips(film, rundir, strips_dir, methods):
    import cv2
    w, h = film.d["width"], film.d["height"]
    nmax = STRIP_SHOTS_MAX.get(film.name, 8)
    shots = [(k, s, e, r) for k, (s, e, r) in enumerate(film.shots)][:nmax]
    frames = sorted({(s + e) // 2 for _, s, e, _ in shots})
    vids = {"grey": film.grey, "truth": film.truth}
    vids.update({m: os.path.join(rundir, m + ".mkv") for m in methods})
    dec = {k: decode_frames(p, frames, w, h) for k, p in vids.items()}
    tw = 160
    th = int(round(h * tw / w))
    bar = 16
    written = []
    for k, s, e, ref in shots:
        f = (s + e) // 2
        truth = dec["truth"][f]
        refimg = cv2.cvtColor(cv2.imread(ref, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        tiles = [("grey input, frame %d" % f, dec["grey"][f]), ("reference (frame %d)" % s, refimg)]
        tiles += [("%s %.1f dB" % (m if m != "model" else "model", psnr(dec[m][f], truth)), dec[m][f])
                  for m in methods]
        tiles.append(("truth", truth))
        row = []
        for label, img in tiles:
            t = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
            lab = np.full((bar, tw, 3), 32, np.uint8)
            cv2.putText(lab, label, (3, bar - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.34, (235, 235, 235), 1,
                        cv2.LINE_AA)
            row.append(np.vstack([lab, t]))
            row.append(np.full((th + bar, 2, 3), 255, np.uint8))
        strip = np.hstack(row[:-1])
        path = os.path.join(strips_dir, "%s_shot%d.png" % (film.name, k))
        cv2.imwrite(path, cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(path)
    return written


# ---------------------------------------------------------------------------------- reports

COLS = [("rgb_psnr", "RGB PSNR (dB)", "%.2f"), ("rgb_ssim", "RGB SSIM", "%.4f"),
        ("ab_psnr", "ab PSNR (dB)", "%.2f"), ("ab_ssim", "ab SSIM", "%.4f")]


def row_of(film, method, ev, seconds):
    return {"film": film.name, "method": method, "frames": ev["frames"], "width": ev["width"],
            "height": ev["height"], "rgb_psnr": ev["rgb"]["psnr"], "rgb_ssim": ev["rgb"]["ssim"],
            "rgb_psnr_pooled": ev["rgb"]["psnr_pooled"], "ab_psnr": ev["ab"]["psnr"],
            "ab_ssim": ev["ab"]["ssim"], "ab_psnr_pooled": ev["ab"]["psnr_pooled"],
            "colourfulness": ev["colourfulness"]["output"],
            "colourfulness_truth": ev["colourfulness"]["truth"],
            "flicker": ev["flicker"]["output"], "flicker_truth": ev["flicker"]["truth"],
            "flicker_in_shots": ev["flicker"].get("output_in_shots"),
            "flicker_truth_in_shots": ev["flicker"].get("truth_in_shots"),
            "seconds": seconds}


def shot_rows(film, method, ev):
    """The eval's per-shot figures (one shot, the film's own, where it has no cuts)."""
    shots = ev.get("shots") or [dict(ev, shot=0, start=0, end=ev["frames"])]
    return [{"film": film.name, "method": method, "shot": s["shot"], "start": s["start"],
             "end": s["end"], "rgb_psnr": s["rgb"]["psnr"], "rgb_ssim": s["rgb"]["ssim"],
             "ab_psnr": s["ab"]["psnr"], "ab_ssim": s["ab"]["ssim"],
             "flicker": s["flicker"]["output"], "flicker_truth": s["flicker"]["truth"]}
            for s in shots]


def shots_section(films, shot_rows_):
    """quality.md's per-shot comparison of the model with its warp and with flow."""
    by = {(r["film"], r["method"], r["shot"]): r for r in shot_rows_}
    L = ["", "## Per shot: the model against its warp and flow", "",
         "`vaefarm eval --cuts` at each film's shots (docs/EVAL.md \"Shots\"): each shot's mean "
         "over its frames. Won: shots where the model's RGB PSNR (SSIM) is above the method's; "
         "worst: the smallest margin and its shot (frames).", "",
         "| film | shots | RGB PSNR vs warp: won, worst (dB) | RGB SSIM vs warp: won, worst | "
         "RGB PSNR vs flow: won, worst (dB) | RGB SSIM vs flow: won, worst |",
         "|---|---|---|---|---|---|"]
    detail = ["", "Every shot: the model's RGB PSNR and SSIM and its margins over the warp and "
              "flow (flicker: within the shot, the cut left out).", "",
              "| film | shot | frames | model RGB PSNR | − warp | − flow | model SSIM | − warp | "
              "− flow | flicker model / warp (truth) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for f in films:
        mine = sorted((r for r in shot_rows_ if r["film"] == f.name and r["method"] == "model"),
                      key=lambda r: r["shot"])
        if not mine:
            continue
        cells = [f.name, str(len(mine))]
        for other in ("warp", "flow"):
            for k, fmt in (("rgb_psnr", "%+.4f"), ("rgb_ssim", "%+.6f")):
                d = [(r[k] - by[(f.name, other, r["shot"])][k], r) for r in mine
                     if (f.name, other, r["shot"]) in by]
                if not d:
                    cells.append("-")
                    continue
                worst = min(d, key=lambda x: x[0])
                cells.append("%d of %d, %s (shot %d, %d–%d)" % (
                    sum(x > 0 for x, _ in d), len(d), fmt % worst[0], worst[1]["shot"],
                    worst[1]["start"], worst[1]["end"]))
        L.append("| " + " | ".join(cells) + " |")
        for r in mine:
            w, fl = by.get((f.name, "warp", r["shot"])), by.get((f.name, "flow", r["shot"]))
            dd = lambda o, k, fmt: fmt % (r[k] - o[k]) if o else "-"  # noqa: E731
            flk = "-" if r["flicker"] is None else "%.3f / %s (%.3f)" % (
                r["flicker"], "%.3f" % w["flicker"] if w and w["flicker"] is not None else "-",
                r["flicker_truth"])
            detail.append("| %s | %d | %d–%d | %.3f | %s | %s | %.5f | %s | %s | %s |" % (
                f.name, r["shot"], r["start"], r["end"], r["rgb_psnr"],
                dd(w, "rgb_psnr", "%+.4f"), dd(fl, "rgb_psnr", "%+.4f"), r["rgb_ssim"],
                dd(w, "rgb_ssim", "%+.6f"), dd(fl, "rgb_ssim", "%+.6f"), flk))
    return L + detail


def fmt_row(r, best):
    cells = [r["film"], LABEL.get(r["method"], r["method"])]
    for k, _, f in COLS:
        v = f % r[k]
        cells.append("**%s**" % v if best.get(k) == r["method"] else v)
    cells.append("%.1f (%.1f)" % (r["colourfulness"], r["colourfulness_truth"]))
    fl = r["flicker"]
    cells.append("%.3f (%.3f)" % (fl, r["flicker_truth"]) if fl is not None else "-")
    return "| " + " | ".join(cells) + " |"


def write_reports(args, films, rows, shot_rows_, timings, strips, meta):
    out = args.out
    # the three reports are made in memory, then each written whole (tmp, rename): a run that
    # stops midway leaves the last complete set
    buf = io.StringIO(newline="")
    wr = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    wr.writeheader()
    wr.writerows(rows)
    m2 = dict(meta, step_seconds={"%s/%s" % k: v for k, v in meta["step_seconds"].items()})
    report_json = json.dumps({"meta": m2, "rows": rows, "shots": shot_rows_,
                              "timings_this_run": timings, "strips": strips}, indent=1)

    L = ["# Colorization quality (made by scripts/quality.py)", "",
         "Command: `%s`  " % meta["command"], "Date: %s  " % meta["date"],
         "Model: `%s` (sha256 %s…): %s  " % (meta["model"], meta["model_sha256"][:12], meta["weights"]),
         "vaefarm: `%s`; model run: precision %s, %s" % (meta["vaefarm"], meta["precision"],
                                                         meta["model_run"]), "",
         "## Films", "",
         "| film | frames | size | fps | shots | source | shots from |", "|---|---|---|---|---|---|---|"]
    for f in films:
        d = f.d
        L.append("| %s | %d | %d×%d | %g | %d | %s | %s |" % (
            f.name, d["frames"], d["width"], d["height"], d["fps"][0] / d["fps"][1], len(f.shots),
            d.get("source", ""), d.get("shots_from", "")))
    L += ["", "## Results", "",
          "Each film against its colour truth (`vaefarm eval`, docs/EVAL.md: means over frames; "
          "ab PSNR on the data range 256). Colourfulness and flicker: the output's (the truth's). "
          "Bold: the best non-ceiling method per film.", "",
          "| film | method | " + " | ".join(c[1] for c in COLS) + " | colourfulness (truth) | flicker Δab (truth) |",
          "|---|---|" + "---|" * (len(COLS) + 2)]
    for f in films:
        rs = [r for r in rows if r["film"] == f.name]
        cand = [r for r in rs if r["method"] not in CEILINGS]
        best = {k: max(cand, key=lambda r: r[k])["method"] for k, _, _ in COLS} if cand else {}
        L += [fmt_row(r, best) for r in rs]
    # mean over films
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    L += ["", "## Mean over the films", "",
          "Unweighted mean of the per-film means (%s)." % ", ".join(f.name for f in films), "",
          "| method | " + " | ".join(c[1] for c in COLS) + " | colourfulness (truth) | flicker (truth) |",
          "|---|" + "---|" * (len(COLS) + 2)]
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        if len(rs) != len(films):
            continue
        mean = lambda k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
        fl = [r["flicker"] for r in rs if r["flicker"] is not None]
        flt = [r["flicker_truth"] for r in rs if r["flicker_truth"] is not None]
        L.append("| %s | %s | %.1f (%.1f) | %s |" % (
            LABEL.get(m, m), " | ".join(f_ % mean(k) for k, _, f_ in COLS), mean("colourfulness"),
            mean("colourfulness_truth"),
            "%.3f (%.3f)" % (sum(fl) / len(fl), sum(flt) / len(flt)) if fl else "-"))
    # issue 6's checks
    if "model" in methods:
        L += ["", "## Issue 6's bar, film by film", "",
              "The model must beat every baseline (transfer, luma-band transfer, warp, flow; not the "
              "ceilings) on RGB PSNR and SSIM, with flicker no worse than the warp alone's.", "",
              "| film | RGB PSNR: model − best baseline (dB) | RGB SSIM: model − best baseline | "
              "flicker: model − warp (within shots) | from the ceiling (RGB PSNR dB: ceiling, at inference size) | all met |",
              "|---|---|---|---|---|---|"]
        for f in films:
            rs = {r["method"]: r for r in rows if r["film"] == f.name}
            if "model" not in rs:
                continue
            base = [rs[m] for m in rs if m not in CEILINGS + ("model",)]
            if not base:
                continue
            mo = rs["model"]
            bp = max(base, key=lambda r: r["rgb_psnr"])
            bs = max(base, key=lambda r: r["rgb_ssim"])
            dp, ds = mo["rgb_psnr"] - bp["rgb_psnr"], mo["rgb_ssim"] - bs["rgb_ssim"]
            dfl = (mo["flicker"] - rs["warp"]["flicker"]) if "warp" in rs and mo["flicker"] is not None else None
            dfs = (mo["flicker_in_shots"] - rs["warp"]["flicker_in_shots"]) \
                if dfl is not None and mo.get("flicker_in_shots") is not None \
                and rs["warp"].get("flicker_in_shots") is not None else None
            ceil = "%.1f, %.1f" % (rs["ceiling"]["rgb_psnr"] - mo["rgb_psnr"],
                                   rs["ceiling_inf"]["rgb_psnr"] - mo["rgb_psnr"]) \
                if "ceiling" in rs and "ceiling_inf" in rs else "-"
            met = dp > 0 and ds > 0 and (dfl is None or dfl <= 0) and (dfs is None or dfs <= 0)
            L.append("| %s | %+.2f (vs %s) | %+.4f (vs %s) | %s | %s | %s |" % (
                f.name, dp, bp["method"], ds, bs["method"],
                "-" if dfl is None else "%+.3f" % dfl if dfs is None else "%+.3f (%+.3f)" % (dfl, dfs), ceil, "yes" if met else "**no**"))
    if "model" in methods:
        L += shots_section(films, shot_rows_)
    # timings: the seconds each output took when it was made (in this run or an earlier one)
    steps = ["model"] + list(BASELINES)
    L += ["", "## Timings", "",
          "Wall seconds each step took when its output was made (%d of %d steps in this run, the "
          "rest reused from an earlier run): the model's is its whole `vaefarm` run (report.json "
          "wall_s), eval is the sum of every method's `vaefarm eval`." % (
              len([t for t in timings if t[0] != "all"]), len(meta["step_seconds"])), "",
          "| film | " + " | ".join(steps) + " | eval | total |", "|---|" + "---|" * (len(steps) + 2)]
    for f in films:
        t = {st: sec for (fn, st), sec in meta["step_seconds"].items() if fn == f.name}
        ev = sum(sec for st, sec in t.items() if st.startswith("eval "))
        cells = ["%.1f" % t[st] if st in t else "-" for st in steps]
        L.append("| %s | %s | %.1f | %.1f |" % (f.name, " | ".join(cells), ev, sum(t.values())))
    mk = [sec for fn, st, sec in timings if fn == "all"]
    L += ["", "Making the %s films: %s. This run's wall time: %.0f s." % (
        args.set, "%.0f s" % sum(mk) if mk else "reused", meta["wall_s"])]
    L += ["", "## Strips", "", "Middle frame of each shot: grey input, reference, %s, truth "
          "(each tile: that frame's RGB PSNR against the truth)." % ", ".join(STRIP_METHODS), ""]
    L += ["- `%s`" % os.path.relpath(p, out) for p in strips]
    write_atomic(os.path.join(out, "quality.csv"), buf.getvalue())
    write_atomic(os.path.join(out, "quality.json"), report_json)
    write_atomic(os.path.join(out, "quality.md"), "\n".join(L) + "\n")


# ------------------------------------------------------------------------------------- main

def main():
    t_start = time.time()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("VAEFARM_MODEL") or
                    os.path.join(ROOT, "models", "vaefarm-tiny.safetensors"),
                    help="weights file (default: $VAEFARM_MODEL, else the bundled models/vaefarm-tiny.safetensors)")
    ap.add_argument("--films", help="comma-separated names (default: all of the set) or descriptor .json paths")
    ap.add_argument("--validation", action="store_true",
                    help="the validation films instead (%s; scripts/make_eval_films.sh --validation; "
                    "default --out out/validation): for choosing among models and settings, so "
                    "that the evaluation films are measured once, never tuned on" % ", ".join(VALIDATION_FILMS))
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="vaefarm build folder (default: build)")
    ap.add_argument("--out", help="output folder (default out/quality, with --validation out/validation)")
    ap.add_argument("--material", help="test material folder (default: <build>/testdata when it has "
                    "the films, else OUT/material); not read with --validation")
    ap.add_argument("--vaefarm", help="the vaefarm binary (default: <build>/coordinator/vaefarm)")
    ap.add_argument("--threads", type=int, default=0, help="the model run's threads (default: vaefarm's own)")
    ap.add_argument("--eval-threads", type=int, default=1,
                    help="vaefarm eval's threads (default 1: on a busy 2-core machine one is faster; "
                    "the results do not depend on it)")
    ap.add_argument("--py-threads", type=int, default=1, help="baselines' torch/OpenCV threads (default 1)")
    ap.add_argument("--ranks", type=int, default=1, help="MPI ranks for the model's run (default 1)")
    ap.add_argument("--precision", default="default", choices=("default", "f32", "bf16", "f16"),
                    help="the model run's precision (default: vaefarm's, the fastest exact-enough "
                    "for the CPU: bf16 where it has AVX-512 bf16 or AMX, else f32)")
    ap.add_argument("--inference-size", default="default",
                    help="the model's (and warp's, ceiling_inf's) inference size: default (vaefarm's: "
                    "the model's pixel count at the film's aspect), full (the film's size to "
                    "multiples of 8) or HxW")
    ap.add_argument("--fresh", action="store_true", help="redo everything (default: reuse outputs whose inputs did not change)")
    ap.add_argument("--no-strips", action="store_true")
    args = ap.parse_args()
    args.set = "validation" if args.validation else "evaluation"
    known = VALIDATION_FILMS if args.validation else FILMS
    if args.films is None:
        args.films = ",".join(known)
    for n in args.films.split(","):
        if n and not n.endswith(".json") and n not in known:
            ap.error("no %s film %r (known: %s; or a descriptor .json path)"
                     % (args.set, n, ", ".join(known)))
    if args.out is None:
        args.out = os.path.join(ROOT, "out", "validation" if args.validation else "quality")

    args.vaefarm = os.path.abspath(args.vaefarm or os.path.join(args.build, "coordinator", "vaefarm"))
    if not os.access(args.vaefarm, os.X_OK):
        sys.exit("quality: no vaefarm at %s (build it: cmake -S . -B build && cmake --build build)" % args.vaefarm)
    args.vaefarm_sha = sha256(args.vaefarm)
    default_model = os.path.join(ROOT, "models", "vaefarm-tiny.safetensors")
    if not os.path.exists(args.model):
        if os.path.abspath(args.model) == default_model:
            sys.exit("quality: the bundled model %s is missing: restore it (git checkout -- models/)"
                     % default_model)
        sys.exit("quality: no model %s" % args.model)
    args.model = os.path.abspath(args.model)
    arch = model_arch(args.model)   # first: it says in one line a file that is not a model
    model_sha = sha256(args.model)
    warp_sha = warp_sha256(args.model)
    methods = [m for m in args.methods.split(",") if m]
    if not methods or not [n for n in args.films.split(",") if n]:
        ap.error("--methods and --films name at least one each")
    if args.ranks < 1:
        ap.error("--ranks %d: at least 1" % args.ranks)
    for m in methods:
        if m not in METHODS:
            ap.error("unknown method %s (known: %s)" % (m, ", ".join(METHODS)))
    args.out = os.path.abspath(args.out)
    films_dir = os.path.join(args.out, "films")
    os.makedirs(films_dir, exist_ok=True)
    material = args.material
    if not material:
        td = os.path.join(os.path.abspath(args.build), "testdata")
        material = td if os.path.exists(os.path.join(td, "films", "many.json")) else os.path.join(args.out, "material")
    timings = []

    names = [n for n in args.films.split(",") if n]
    made = [n for n in names if not n.endswith(".json")]
    if made:   # only the films asked for are made (and their material fetched)
        dt, _ = run([os.path.join(ROOT, "scripts", "make_eval_films.sh")] + (["--validation"] if args.validation else [])
                    + ["--films", ",".join(made), films_dir, args.vaefarm, material])
        if dt > 5:
            timings.append(("all", "make the %s films" % args.set, dt))
    films = []
    for n in names:
        path = n if n.endswith(".json") else os.path.join(films_dir, n + ".json")
        try:
            films.append(Film(path))
        except (OSError, ValueError, KeyError) as e:
            sys.exit("quality: %s is not a readable film descriptor (%s: %s)" % (path, type(e).__name__, e))
    if args.py_threads < 1 or args.eval_threads < 1:
        sys.exit("quality: --py-threads and --eval-threads are at least 1")

    code_sha = sha256(os.path.join(ROOT, "scripts", "baselines.py"))
    # the warp and ceiling_inf run the PyTorch reference's network: its code is theirs too
    ref_dir = os.path.join(ROOT, "train", "vaefarm_ref")
    ref_sha = [sha256(os.path.join(ref_dir, f)) for f in sorted(os.listdir(ref_dir)) if f.endswith(".py")]
    rows, strips, srows = [], [], []
    model_run, step_seconds = {}, {}
    for film in films:
        rundir = os.path.join(args.out, "runs", film.name)
        os.makedirs(rundir, exist_ok=True)
        inputs = film.inputs_key()
        size = {"spec": args.inference_size, "arch": arch.get("inference_size"),
                "upsample": arch.get("upsample")}   # warp and ceiling_inf depend on both
        keys = {m: {"method": m, "inputs": inputs, "code": code_sha,
                    "model": {"F+A": warp_sha} if m == "warp" else None,
                    "size": size if m in ("warp", "ceiling_inf") else None,
                    "reference": ref_sha if m in ("warp", "ceiling_inf") else None} for m in BASELINES}
        if "model" in methods:
            run_model(film, rundir, args, {"method": "model", "inputs": inputs, "model": model_sha,
                                           "vaefarm": args.vaefarm_sha, "ranks": args.ranks,
                                           "size": size, "threads": args.threads,
                                           "precision": args.precision}, timings)
            rep = json.load(open(os.path.join(rundir, "model.mkv.vaefarm", "report.json")))
            model_run[film.name] = rep
        run_baselines(film, rundir, [m for m in methods if m in BASELINES], args, keys, timings)
        for m in methods:
            ev = run_eval(film, rundir, m, args, timings)
            if ev["frames"] != film.d["frames"]:
                sys.exit("quality: %s %s: %d frames, the truth has %d" % (film.name, m, ev["frames"], film.d["frames"]))
            if m == "model":
                secs = model_run[film.name]["wall_s"]
            else:
                secs = json.load(open(os.path.join(rundir, m + ".json")))["seconds"]
            rows.append(row_of(film, m, ev, secs))
            srows += shot_rows(film, m, ev)
            step_seconds[(film.name, m)] = secs
            try:
                step_seconds[(film.name, "eval " + m)] = float(open(os.path.join(rundir, m + ".eval.json.seconds")).read())
            except (OSError, ValueError):
                pass
        if not args.no_strips:
            sd = os.path.join(args.out, "strips")
            os.makedirs(sd, exist_ok=True)
            strips += make_strips(film, rundir, sd, [m for m in STRIP_METHODS if m in methods])

    weights = precision = "-"
    desc = []
    for name, rep in model_run.items():
        weights = rep["model"].get("weights", "-")
        precision = rep.get("precision", "-")
        desc.append("%s %dx%d %.1f frames/s" % (name, rep["inference_size"][0], rep["inference_size"][1], rep["fps"]))
    meta = {"command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "model": os.path.relpath(args.model, ROOT),
            "model_sha256": model_sha, "weights": weights, "precision": precision,
            "model_run": "inference size and speed per film: " + ", ".join(desc) if desc else "-",
            "vaefarm": os.path.relpath(args.vaefarm, ROOT), "vaefarm_sha256": args.vaefarm_sha,
            "wall_s": time.time() - t_start, "films": {f.name: f.d for f in films},
            "step_seconds": step_seconds,
            # each output measured ([path, size, mtime, sha256]): scripts/gain_by_position.py
            # and propagate_study.py check that runs/ still holds these files (by their bytes
            # where the times differ: a copied folder)
            "outputs": {f.name: {m: output_id(os.path.join(args.out, "runs", f.name, m + ".mkv"))
                                 for m in methods} for f in films}}
    write_reports(args, films, rows, srows, timings, strips, meta)
    log("wrote %s (%.0f s)" % (os.path.join(args.out, "quality.md"), time.time() - t_start))


if __name__ == "__main__":
    main()
