#!/usr/bin/python3
"""Scaling study for vaefarm (docs/SCALING.md): strong and weak scaling, measured and simulated.

Runs, on this machine:
  strong  the same film (the standard test film looped --strong-loops times) at every rank count
          of --ranks, from scratch, --threads CPU threads per rank; and, as what this machine
          gives two processes, two independent 1-rank jobs at once on half the film each;
  weak    a film --weak-loops x R long at R ranks (film length proportional to the rank count);
and, beyond what this machine has, `vaefarm plan FILM --simulate R --json` for every R of
--simulate (the coordinator's own schedule, in frames of work), turned into seconds with the
measured time per frame of work of the 1-rank run.

Collects every run's report.json and writes, under --out:
  scaling.csv          one row per measured run and per simulated rank count
  throughput.png       frames/s against ranks: measured (strong, weak) and predicted
  efficiency.png       parallel efficiency against ranks: measured and predicted
  busy.png             each rank's busy share of the colorizing phase, per run
  split.png            decode / infer / encode seconds (summed over ranks), per run
  makespan.png         predicted against measured colorizing time, per run
  planning.png         simulated schedule / lower bound on a 2-hour log-normal film, for
                       chunks.length auto and fixed 240-frame chunks (--long-film)
  reports/*.json       the report.json of every run
Every run's output must be byte-identical to the 1-rank run's output of the same film (checked).

Needs Debian's python3 (matplotlib: scripts/setup.sh installs python3-matplotlib), a built
vaefarm, the test material (scripts/make_test_material.sh) and the default model.
Usage: scripts/scaling.py [--build build] [--data build/testdata] [--out out/scaling]
                          [--ranks 1,2] [--threads 1] [--strong-loops 4] [--weak-loops 2]
                          [--simulate 1,2,4,...,1024] [--chunk 40] [--warmup 8] [--series strong,weak]
"""
import argparse
import contextlib
import csv
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what a study writes into --out (besides reports/*.json): an earlier study's go first
PRODUCTS = ("scaling.csv", "throughput.png", "efficiency.png", "busy.png", "split.png",
            "makespan.png", "planning.png")


def die(msg):
    sys.exit("scaling.py: " + msg)


def ints(text):
    try:
        vals = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError("expected a comma-separated list of whole numbers, got %r" % text)
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError("expected positive whole numbers, got %r" % text)
    return vals


def positive(text):
    """A whole number >= 1 (a loop count: ffmpeg's -stream_loop -1, from 0 loops, never ends)."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError("expected a whole number of at least 1, got %r" % text)
    return v


def make_film(films, loops, work, chunk, warmup):
    """The standard test film looped `loops` times (stream copy: exact frames and timestamps),
    with its listed shots repeated. Returns the film.yaml path."""
    meta = json.load(open(os.path.join(films, "film.json")))
    name = "film_x%d" % loops
    video = os.path.join(work, name + ".mkv")
    if not os.path.exists(video):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i",
                        os.path.join(films, "film_grey.mkv"), "-map", "0", "-c", "copy", video],
                       check=True)
    lines = ["version: 1", "input: " + video, "output: OUTPUT", "shots:", "  detect: off", "  list:"]
    for k in range(loops):
        off = k * meta["frames"]
        for s in meta["shots"]:
            lines.append("    - { start: %d, end: %d, reference: %s }" %
                         (s["start"] + off, s["end"] + off, os.path.join(films, s["reference"])))
    lines.append("chunks: { length: %d, warmup: %d }" % (chunk, warmup))
    return name, meta["frames"] * loops, "\n".join(lines) + "\n"


def run_job(vf, yaml_text, ranks, threads, work, tag):
    out = os.path.join(work, tag + ".mkv")
    wd = out + ".vaefarm"
    shutil.rmtree(wd, ignore_errors=True)
    if os.path.exists(out):
        os.remove(out)
    path = os.path.join(work, tag + ".yaml")
    with open(path, "w") as f:
        f.write(yaml_text.replace("OUTPUT", out))
    cmd = [vf, path, "--quiet", "--threads", str(threads)]
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe"] + cmd
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print("  $ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, env=env).returncode
    if rc != 0:
        die("%s failed (exit %d): see its message above and %s/vaefarm.log" % (tag, rc, wd))
    return path, out, json.load(open(os.path.join(wd, "report.json")))


def simulate(vf, yaml_path, ranks):
    p = subprocess.run([vf, "plan", yaml_path, "--json", "--simulate", str(ranks)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        die("vaefarm plan %s --simulate %d failed (exit %d): %s"
            % (yaml_path, ranks, p.returncode, p.stderr.strip()))
    doc = json.loads(p.stdout)
    sim = doc["simulation"]
    return sim["makespan_frames"], sim["lower_bound_frames"], sim["work_frames"]


def independent_pair(vf, films, a, work, rows):
    """What this machine gives two processes: two independent 1-rank jobs at once, each on half
    the strong film. The farm's 2-rank run is judged against this as well as against 2x."""
    fname, frames, text = make_film(films, a.strong_loops // 2, work, a.chunk, a.warmup)
    procs, paths = [], []
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    for k in range(2):
        out = os.path.join(work, "pair%d.mkv" % k)
        shutil.rmtree(out + ".vaefarm", ignore_errors=True)
        path = os.path.join(work, "pair%d.yaml" % k)
        with open(path, "w") as f:
            f.write(text.replace("OUTPUT", out))
        paths.append(out)
        cmd = [vf, path, "--quiet", "--threads", str(a.threads)]
        print("  $ " + " ".join(cmd) + " &", flush=True)
        procs.append(subprocess.Popen(cmd, env=env))
    for k, p in enumerate(procs):
        if p.wait() != 0:
            die("independent job %d failed (exit %d)" % (k, p.returncode))
    reps = [json.load(open(os.path.join(o + ".vaefarm", "report.json"))) for o in paths]
    t = max(r["colorize_s"] for r in reps)
    one = [r for r in rows if r["series"] == "strong" and r["ranks"] == 1][0]
    two = [r for r in rows if r["series"] == "strong" and r["ranks"] == 2][0]
    row = {"series": "pair", "kind": "measured", "ranks": 2, "threads": a.threads,
           "frames": 2 * frames, "colorize_s": round(t, 3),
           "fps_colorize": round(2 * frames / t, 3),
           "speedup": round(one["colorize_s"] / t, 4),
           "efficiency": round(one["colorize_s"] / t / 2, 4)}
    print("    two independent 1-rank jobs at once, %d frames each: colorize %.2f s, %.2f fps: "
          "%.3fx one rank; the farm's 2 ranks reach %.1f%% of that" %
          (frames, t, row["fps_colorize"], row["speedup"],
           100.0 * two["fps_colorize"] / row["fps_colorize"]), flush=True)
    return row


def planning_study(vf, frames, ranks_list, work):
    """plan --simulate on a long log-normal film, chunks.length auto against fixed 240."""
    rows = []
    print("planning study: %d-frame log-normal film (scripts/make_long_film.py, seed 1), "
          "warm-up 16" % frames, flush=True)
    for chunks in ("auto", "240"):
        d = os.path.join(work, "long_" + chunks)
        subprocess.run([os.path.join(ROOT, "scripts", "make_long_film.py"), d, "--frames",
                        str(frames), "--chunks", chunks, "--warmup", "16"], check=True,
                       stdout=subprocess.DEVNULL)
        for r in ranks_list:
            mk, lb, wk = simulate(vf, os.path.join(d, "film.yaml"), r)
            rows.append({"series": "plan-" + ("auto" if chunks == "auto" else "fixed240"),
                         "kind": "simulated", "ranks": r, "frames": frames, "work_frames": wk,
                         "makespan_frames": mk, "lower_bound_frames": lb,
                         "efficiency": round(lb / mk, 4)})
            print("    %-5s %5d ranks: makespan %7d, bound %7d frames of work: %.1f%%"
                  % (chunks, r, mk, lb, 100.0 * lb / mk), flush=True)
    return rows


def row_of(series, rep, t1_s, ms_per_work_frame, predicted_frames):
    ranks = rep["ranks"]
    busy = [p["busy_share"] for p in rep["per_rank"]]
    sp = rep["split"]
    predicted_s = predicted_frames * ms_per_work_frame / 1000.0
    return {
        "series": series, "kind": "measured", "ranks": ranks, "threads": rep["threads_per_rank"],
        "frames": rep["frames"], "chunks": rep["chunks"],
        "work_frames": rep["frames"] + rep["warmup_frames_run"],
        "wall_s": round(rep["wall_s"], 3), "setup_s": round(rep["setup_s"], 3),
        "colorize_s": round(rep["colorize_s"], 3), "merge_s": round(rep["merge_s"], 3),
        "fps": round(rep["fps"], 3), "fps_colorize": round(rep["fps_colorize"], 3),
        # strong: speed-up of the colorizing phase over 1 rank; weak: t(1) / t(R) for R x the work
        "speedup": round(t1_s / rep["colorize_s"] * (ranks if series == "weak" else 1), 4),
        "efficiency": round(t1_s / rep["colorize_s"] / (1 if series == "weak" else ranks), 4),
        "busy_min": round(min(busy), 4), "busy_mean": round(sum(busy) / len(busy), 4),
        "decode_s": round(sp["decode_s"], 3), "infer_s": round(sp["infer_s"], 3),
        "encode_s": round(sp["encode_s"], 3),
        "coordinator_cpu_s": round(rep["coordinator_cpu_s"], 4),
        "coordinator_share": round(rep["coordinator_cpu_s"] / rep["wall_s"], 5),
        "makespan_frames": predicted_frames, "predicted_colorize_s": round(predicted_s, 3),
    }


def plot(rows, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meas = [r for r in rows if r["kind"] == "measured" and r["series"] != "pair"]
    sims = [r for r in rows if r["kind"] == "simulated"]

    def series(kind_rows, name):
        return sorted((r for r in kind_rows if r["series"] == name), key=lambda r: r["ranks"])

    if meas or series(sims, "strong"):
        plot_speed(plt, meas, sims, series, out)
    plot_rest(plt, meas, sims, series, out)


def plot_speed(plt, meas, sims, series, out):
    # throughput
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, style in (("strong", "o-"), ("weak", "s-")):
        s = series(meas, name)
        if s:
            ax.plot([r["ranks"] for r in s], [r["fps_colorize"] for r in s], style,
                    label="measured, %s" % name)
    s = series(sims, "strong")
    if s:
        ax.plot([r["ranks"] for r in s], [r["fps_colorize"] for r in s], "--", color="grey",
                label="predicted (plan --simulate), strong")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    ax.set_xlabel("ranks")
    ax.set_ylabel("frames/s (colorizing phase)")
    ax.set_title("vaefarm throughput")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=110)
    plt.close(fig)

    # efficiency
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, style in (("strong", "o-"), ("weak", "s-")):
        s = series(meas, name)
        if s:
            ax.plot([r["ranks"] for r in s], [r["efficiency"] for r in s], style,
                    label="measured, %s" % name)
    for name, style in (("strong", "--"), ("strong-bound", ":")):
        s = series(sims, name)
        if s:
            ax.plot([r["ranks"] for r in s], [r["efficiency"] for r in s], style, color="grey",
                    label={"strong": "predicted schedule, strong",
                           "strong-bound": "lower bound / schedule"}[name])
    if sims:
        ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("ranks")
    ax.set_ylabel("efficiency")
    ax.set_title("parallel efficiency")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "efficiency.png"), dpi=110)
    plt.close(fig)



def plot_rest(plt, meas, sims, series, out):
    plan = [r for r in sims if r["series"].startswith("plan-")]
    if plan:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for name, style in (("plan-auto", "o-"), ("plan-fixed240", "s--")):
            s = series(sims, name)
            ax.plot([r["ranks"] for r in s], [r["efficiency"] for r in s], style,
                    label={"plan-auto": "chunks.length: auto",
                           "plan-fixed240": "fixed 240-frame chunks"}[name])
        ax.axhline(0.95, color="grey", lw=0.8, ls=":", label="goal 95%")
        ax.set_xscale("log", base=2)
        ax.set_ylim(0.5, 1.02)
        ax.set_xlabel("ranks (simulated)")
        ax.set_ylabel("lower bound / makespan")
        ax.set_title("planned schedule on a %d-frame film" % plan[0]["frames"])
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "planning.png"), dpi=110)
        plt.close(fig)

    if not meas:
        return
    labels = ["%s np%d" % (r["series"], r["ranks"]) for r in meas]
    # busy share per rank
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    width = 0.8 / max(r["ranks"] for r in meas)
    labelled = set()
    for i, r in enumerate(meas):
        for k, share in enumerate(r["per_rank_busy"]):
            ax.bar(i + k * width, share, width, color="C%d" % (k % 10),
                   label=None if k in labelled else "rank %d" % k)
            labelled.add(k)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(meas))], labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("busy share of the colorizing phase")
    ax.set_title("per-rank busy share")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "busy.png"), dpi=110)
    plt.close(fig)

    # decode / infer / encode split
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bottom = [0.0] * len(meas)
    for key, color in (("decode_s", "C0"), ("infer_s", "C1"), ("encode_s", "C2")):
        vals = [r[key] for r in meas]
        ax.bar(range(len(meas)), vals, bottom=bottom, color=color, label=key[:-2])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(meas)), labels)
    ax.set_ylabel("seconds, summed over ranks")
    ax.set_title("decode / infer / encode")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "split.png"), dpi=110)
    plt.close(fig)

    # predicted vs measured makespan
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    xs = [r["predicted_colorize_s"] for r in meas]
    ys = [r["colorize_s"] for r in meas]
    ax.plot(xs, ys, "o")
    for x, y, lab in zip(xs, ys, labels):
        ax.annotate(lab, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    hi = max(xs + ys) * 1.1
    ax.plot([0, hi], [0, hi], "--", color="grey", label="measured = predicted")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("predicted colorizing time, s (schedule x 1-rank s/frame)")
    ax.set_ylabel("measured colorizing time, s")
    ax.set_title("predicted vs measured makespan")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "makespan.png"), dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--data", default=None, help="test material (default BUILD/testdata)")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "scaling"))
    ap.add_argument("--ranks", type=ints, default=[1, 2], help="measured rank counts (default 1,2)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per rank (default 1)")
    ap.add_argument("--strong-loops", type=positive, default=4,
                    help="strong series: the 300-frame test film looped this many times")
    ap.add_argument("--weak-loops", type=positive, default=2,
                    help="weak series: the test film looped this many times per rank")
    ap.add_argument("--simulate", type=ints, default=[1 << k for k in range(11)],
                    help="simulated rank counts (default 1,2,4,...,1024)")
    ap.add_argument("--chunk", type=positive, default=40, help="chunks.length (default 40)")
    ap.add_argument("--warmup", type=int, default=8, help="chunks.warmup (default 8)")
    ap.add_argument("--series", default="strong,weak", help="strong,weak (default both)")
    ap.add_argument("--long-film", type=int, default=172800, metavar="FRAMES",
                    help="planning study: a log-normal film of this many frames "
                         "(scripts/make_long_film.py, default 2 h at 24 fps; 0: skip), simulated "
                         "at every --simulate count with chunks.length auto and with fixed 240")
    a = ap.parse_args()

    a.build = os.path.abspath(a.build)
    vf = os.path.join(a.build, "coordinator", "vaefarm")
    films = os.path.abspath(os.path.join(a.data or os.path.join(a.build, "testdata"), "films"))
    if not os.access(vf, os.X_OK):
        die("%s not found: build first (cmake -S . -B build && cmake --build build)" % vf)
    if not os.path.exists(os.path.join(films, "film.json")):
        die("%s/film.json not found: make the test material (scripts/make_test_material.sh %s)"
            % (films, os.path.dirname(films)))
    series = [s for s in a.series.split(",") if s]
    for s in series:
        if s not in ("strong", "weak"):
            die("--series takes strong and/or weak, got %r" % s)
    if not series and not a.long_film:
        die("nothing to measure: --series names no series and --long-film is 0")
    if 1 not in a.ranks:
        die("--ranks must include 1 (every speed-up is against the 1-rank run)")
    # this study's products of an earlier one go first: a run with fewer series, or one stopped
    # midway, must not leave plots and reports beside a CSV that does not hold them
    for f in PRODUCTS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(a.out, f))
    reports = os.path.join(a.out, "reports")
    if os.path.isdir(reports):
        for f in os.listdir(reports):
            if f.endswith(".json"):
                os.unlink(os.path.join(reports, f))
    os.makedirs(reports, exist_ok=True)
    work = tempfile.mkdtemp(prefix="vaefarm-scaling-")
    rows = []
    try:
        for name in series:
            print("%s scaling, ranks %s, %d thread(s) per rank" %
                  (name, ",".join(map(str, a.ranks)), a.threads), flush=True)
            t1 = ms_frame = None
            first_out = {}
            for r in sorted(a.ranks):
                loops = a.strong_loops if name == "strong" else a.weak_loops * r
                fname, frames, text = make_film(films, loops, work, a.chunk, a.warmup)
                tag = "%s_np%d" % (name, r)
                path, out, rep = run_job(vf, text, r, a.threads, work, tag)
                shutil.copy(os.path.join(out + ".vaefarm", "report.json"),
                            os.path.join(a.out, "reports", tag + ".json"))
                if r == 1:
                    t1 = rep["colorize_s"]
                    ms_frame = 1000.0 * rep["colorize_s"] / (rep["frames"] + rep["warmup_frames_run"])
                # the same film at any rank count must give the same bytes
                if fname in first_out:
                    if not filecmp.cmp(first_out[fname], out, shallow=False):
                        die("%s: output differs from the 1-rank run of %s" % (tag, fname))
                else:
                    first_out[fname] = out
                mk, _, _ = simulate(vf, path, r)
                row = row_of(name, rep, t1, ms_frame, mk)
                row["per_rank_busy"] = [p["busy_share"] for p in rep["per_rank"]]
                rows.append(row)
                print("    %d rank(s): %d frames, colorize %.2f s (predicted %.2f s), %.2f fps, "
                      "speed-up %.3f, efficiency %.3f, busy %.0f-%.0f%%, coordinator %.2f%% of wall"
                      % (r, frames, row["colorize_s"], row["predicted_colorize_s"],
                         row["fps_colorize"], row["speedup"], row["efficiency"],
                         100 * row["busy_min"], 100 * max(row["per_rank_busy"]),
                         100 * row["coordinator_share"]), flush=True)
            if name == "strong" and 2 in a.ranks and a.strong_loops % 2 == 0:
                rows.append(independent_pair(vf, films, a, work, rows))
            if name == "strong" and a.simulate:
                one = [r for r in rows if r["series"] == "strong" and r["ranks"] == 1][0]
                for r in a.simulate:
                    mk, lb, wk = simulate(vf, path, r)
                    t = mk * ms_frame / 1000.0
                    for sname, eff in (("strong", one["makespan_frames"] / (mk * r)),
                                       ("strong-bound", lb / mk)):
                        rows.append({"series": sname, "kind": "simulated", "ranks": r,
                                     "frames": one["frames"], "work_frames": wk,
                                     "makespan_frames": mk, "lower_bound_frames": lb,
                                     "predicted_colorize_s": round(t, 3),
                                     "fps_colorize": round(one["frames"] / t, 3),
                                     "efficiency": round(eff, 4)})
        if a.long_film:
            rows += planning_study(vf, a.long_film, a.simulate, work)
        fields = []
        for r in rows:
            for k in r:
                if k not in fields and k != "per_rank_busy":
                    fields.append(k)
        plot(rows, a.out)
        # the CSV last, whole (tmp, rename): it is there only when the plots are
        tmp = os.path.join(a.out, "scaling.csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields + ["per_rank_busy"])
            w.writeheader()
            for r in rows:
                d = dict(r)
                if "per_rank_busy" in d:
                    d["per_rank_busy"] = " ".join("%.4f" % v for v in d["per_rank_busy"])
                w.writerow(d)
        os.replace(tmp, os.path.join(a.out, "scaling.csv"))
        print("wrote %s/scaling.csv and the plots"
              % a.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
