#!/usr/bin/python3
"""Stage 5 (docs/TRAINING.md): fine-tune C alone on T-frame sequences at the inference size.

    finetune_c.py prepare --model M.safetensors --out SEQ --sequences 400 --frames 8
    finetune_c.py train   --model M.safetensors --seqs SEQ --out RUN --max-minutes 60
    finetune_c.py export  --model M.safetensors --from RUN/last.pt --out NEW.safetensors
    finetune_c.py calibrate --model M.safetensors --seqs SEQ --val 8 --shifts 0,-1,-2 [--motions 0,1,2 [--motion-radius R]] [--out NEW]

F and A are frozen, and A's warp chain does not read C (frame t's temporal candidates read frame
t−1's warp, not C's output: docs/NETWORK.md), so `prepare` runs F and A once per sequence and
stores what C reads of them: per frame (L − 50, W^ab, S) and the truth's a, b, with the known
motion φ. `train` then runs only C, through the recurrence, over all T frames of a sequence:
frame 0 is the shot's reference itself, vaefarm's reference pass-through gives it the
reference's a, b (docs/NODE.md), and frame t's X̂(t−1) is C's own output for frame t−1 (frame
1's: the reference's a, b), with the gradient through the chain. On a CPU, C's forward pass is
about a ninth of the whole network's at 144×256 (A's refinement is most of it), which makes the
inference size and T frames affordable there.

Losses per frame t ≥ 1, mean over frames: l1 (ours; every frame here has a self reference) 2.0,
smoothness (paper) 5.0, KL (paper) 1.0, temporal (ours, the known φ) 0.02, log-MSE (ours: each
frame's 10·log10(MSE_ab), the evaluation's mean of frames' PSNR) 0 (session 12's run: 0.5); the perceptual and
contextual terms need F on every output and are left to the earlier stages (`--weights` changes
any). Validation: the last `--val` sequences are never trained on; every `--val-every` steps the
log gets their mean |ab − truth| and ab PSNR for C (z = μ) and for the warp alone.

Checkpoints: RUN/last.pt every --ckpt-every steps, at the end, at --max-minutes and on SIGTERM or
SIGINT (exit 143 / 130); `--resume auto` continues one bit-exactly (batches are a function of
(seed, step)). Log: RUN/log.jsonl, one object per step (every term unweighted). RUN: a new run
refuses one holding a last.pt, log.jsonl or config.json (another run's); a resume continues in
the checkpoint's own RUN or in a new one, on the sets it was trained on (the checkpoint records
their meta.json); a setting given at a resume replaces the run's with a warning (--val, the
held-out sequences, is refused); RUN/train.lock (SEQ/train.lock for `prepare`) keeps a second
process out. Bad files and options stop with one line (exit status 1).

Film-size sets (session 19): `prepare --film-scale S --data BIGCACHE` makes each sequence at S
times the network's size, a film's (the films are 1.07 to 1.43 times it), and runs the frozen
chain on it resized as vaefarm resizes a film (area average); the shard keeps the film-size
truth's a, b (float16) beside the network-size one. The cache's canvas must be larger than the
film (`make_dataset.py --canvas 360 640`: the default 180×320 holds no detail past the network's
size). `train --film-loss` then takes the l1 and log-MSE terms of C's a, b after the model's
bilinear upsampling to the film's size, as `vaefarm eval` judges them; validation reports both
sizes (val_c_film_fpsnr …) and `calibrate` chooses at the film's.

`calibrate` moves the bias of a gated C's gate by each shift (with --motions, under each κ of the
gate's motion factor too, arch C.gate_motion; per pixel with --motion-radius, arch
C.gate_motion_radius), prints the validation of each, and with --out
writes the model with the pair of the best mean of frames' PSNR over the sets."""
import argparse
import json
import math
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import safetensors_io  # noqa: E402
from cli_io import first_line, out_file_error  # noqa: E402
from export import save_weights  # noqa: E402
from safetensors_io import file_sha256 as sha256, warp_sha256 as _warp_sha256  # noqa: E402
from train import CKPT_FORMAT as TRAIN_CKPT_FORMAT, opt_name, parse_weights, zero_colour_out  # noqa: E402
from train import check_finite_weights, check_lr, save_torch_atomic  # noqa: E402
from train import (check_min, check_out, load_net_file, lock_out, remove_stale_tmp,  # noqa: E402
                   truncate_log, write_json_atomic)
from vaefarm_ref import lab as labmod  # noqa: E402
from vaefarm_ref.arch import arch_json  # noqa: E402
from vaefarm_ref.model import gate_ramp_factor, resize_bilinear  # noqa: E402
from vaefarm_train.data import Cache, batch_seed  # noqa: E402
from vaefarm_train.losses import kl_loss, l1_self_loss, log_mse_loss, smoothness_loss, temporal_loss  # noqa: E402
from vaefarm_train.seq import SeqConfig, make_sequence, to_network  # noqa: E402


def warp_sha256(path):
    """The stamp of what a sequence set depends on: F and A, not C nor the film-size carry."""
    return _warp_sha256(path, carry=False)


SEQ_FORMAT = "vaefarm-seq-v1"
CKPT_FORMAT = "vaefarm-finetune-c-v1"
WEIGHTS = {"l1": 2.0, "smooth": 5.0, "kl": 1.0, "temporal": 0.02, "logmse": 0.0, "gate": 0.0}
SHARD = 8   # sequences a shard (and a batch of the frozen network in prepare)


def fail(msg):
    raise SystemExit("finetune_c: " + msg)


def need_file(opt, path, what):
    if os.path.isdir(path):
        fail("%s %s is a folder, not %s" % (opt, path, what))
    if not os.path.exists(path):
        fail("%s %s: no such file" % (opt, path))


def need_folder(opt, path):
    """An output folder: a folder or nothing yet, not a file."""
    if os.path.exists(path) and not os.path.isdir(path):
        fail("%s %s is a file, not a folder" % (opt, path))


def out_file(opt, path, inputs):
    """A file to write: its folder must exist, and it is neither a folder nor one of inputs
    ((option, path) pairs of the files the command reads)."""
    why = out_file_error(opt, path, inputs)
    if why:
        fail(why)


def model_arg(path, opt="--model"):
    """--model FILE -> the network; anything but a vaefarm weights file stops with one line."""
    need_file(opt, path, "a weights file")
    return load_net_file(path, opt, "export a stage-5 checkpoint with `finetune_c.py export`, a "
                         "train/train.py one with train/export.py --from-checkpoint", "finetune_c")


def load_ckpt(path, opt):
    """--resume / --from CKPT -> the stage-5 checkpoint dict; anything else stops with what it is."""
    need_file(opt, path, "a checkpoint (RUN/last.pt)")
    try:
        ck = torch.load(path, map_location="cpu")
    except Exception as e:        # torch.load raises what the unpickler or the zip reader raise
        if safetensors_io.is_safetensors(path):
            fail("%s %s is a weights file, not a stage-5 checkpoint (RUN/last.pt)%s" % (
                opt, path, ": a new run fine-tunes it with --model" if opt == "--resume" else ""))
        fail("%s %s is not a stage-5 checkpoint of finetune_c.py (%s: %s)"
             % (opt, path, type(e).__name__, first_line(e)))
    what = ck.get("format") if isinstance(ck, dict) else None
    if what != CKPT_FORMAT:
        fail("%s %s is not a stage-5 checkpoint of finetune_c.py (%s)%s" % (
            opt, path, CKPT_FORMAT, "; it is train/train.py's: train/train.py --resume continues it, "
            "train/export.py --from-checkpoint exports it" if what == TRAIN_CKPT_FORMAT else ""))
    return ck


def meta_diff(old, new, prefix=""):
    """The keys where two sequence sets' meta.json differ, as 'key old -> new' (config.speed_px …)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            if a != b:
                out.append(meta_diff(a, b, prefix + k + "."))
        elif a != b:
            out.append("%s%s %s -> %s" % (prefix, k, json.dumps(a), json.dumps(b)))
    return ", ".join(out)


# ------------------------------------------------------------------------------------ prepare

def parse_seq_options(items):
    """--seq-option K=V items -> SeqConfig keywords: V a number, or numbers separated by commas
    (a range such as speed_px=0.1,2). Unknown keys are SeqConfig's error."""
    out = {}
    for it in items or []:
        k, eq, v = it.partition("=")
        try:
            vals = [float(x) for x in v.split(",")]
        except ValueError:
            vals = None
        if not eq or not k or not vals:
            raise ValueError("%r is not KEY=NUMBER or KEY=NUMBER,NUMBER" % it)
        out[k] = vals[0] if len(vals) == 1 else tuple(vals)
    return out


def prepare(args):
    check_min(vars(args), {"threads": 1}, "finetune_c")
    need_folder("--out", args.out)
    net = model_arg(args.model).eval().to(device())
    size = tuple(args.size or net.arch["inference_size"])
    try:
        seq_cfg = SeqConfig(**parse_seq_options(args.seq_option))
    except ValueError as e:
        fail("prepare: --seq-option: %s" % e)
    # model_sha256: the file it was made with; warp_sha256: what the set depends on (F and A)
    meta = {"format": SEQ_FORMAT, "model_sha256": sha256(args.model),
            "warp_sha256": warp_sha256(args.model), "frames": args.frames,
            "size": list(size), "seed": args.seed, "sequences": args.sequences,
            "data": os.path.abspath(args.data) if not args.synthetic_data else "synthetic",
            "config": seq_cfg.as_dict()}
    film_size = None
    if args.film_scale is not None:
        if not 1.0 <= args.film_scale <= 4.0:
            fail("prepare: --film-scale is the films' size over the network's, 1 to 4, not %g" % args.film_scale)
        film_size = [int(round(size[0] * args.film_scale)), int(round(size[1] * args.film_scale))]
        meta["film_size"] = film_size
    meta = json.loads(json.dumps(meta))   # as meta.json reads back (tuples become lists)
    if args.frames < 2 or args.sequences < 1 or any(v <= 0 or v % 8 for v in size):
        fail("prepare: needs --frames >= 2, --sequences >= 1 and a --size of positive multiples of 8")
    if not args.synthetic_data and not os.path.exists(os.path.join(args.data, "index.json")):
        fail("no training cache in %s (run train/fetch_data.sh)" % args.data)
    if not args.synthetic_data:
        try:
            with open(os.path.join(args.data, "index.json")) as fp:
                role = json.load(fp).get("role")
        except (OSError, ValueError, AttributeError) as e:
            fail("prepare: %s is not a training cache's index (%s): build the cache again "
                 "(train/fetch_data.sh)" % (os.path.join(args.data, "index.json"), e))
        if role == "validation":   # recorded only then: older sets match
            meta["data_role"] = "validation"
    fs = film_size or size   # the size the sequences are made at
    if args.synthetic_data:
        cache = Cache.synthetic(canvas=(2 * fs[0], 2 * fs[1]), n_frames=2 * args.frames)
    else:
        try:
            cache = Cache(args.data)
        except (OSError, ValueError, KeyError) as e:
            fail("prepare: the training cache in %s cannot be read (%s: %s): build it again "
                 "(VF_REBUILD=1 train/fetch_data.sh)" % (args.data, type(e).__name__, first_line(e)))
        if 0.98 * cache.canvas[0] < fs[0] or 0.98 * cache.canvas[1] < fs[1]:
            fail("prepare: the cache's canvas (%dx%d, %s) is not larger than the frames (%dx%d): views "
                 "would enlarge it; build a larger one (train/make_dataset.py --canvas 360 640 --out DIR) "
                 "and give it with --data" % (cache.canvas[0], cache.canvas[1], args.data, fs[0], fs[1]))
    os.makedirs(args.out, exist_ok=True)
    lock = lock_out(args.out, "finetune_c")    # SEQ/train.lock: two prepares would write the same shards
    real_c = net.C.forward
    try:
        mpath = os.path.join(args.out, "meta.json")
        if os.path.exists(mpath):
            old = read_json(mpath, "a set's meta.json")
            if old != meta:
                fail("%s was prepared with other settings (%s: %s): pick another --out"
                     % (args.out, mpath, meta_diff(old, meta)))
        else:
            write_json_atomic(mpath, meta)
        net.C.forward = lambda x7, ramp=None: x7[:, 1:3]   # C's output is not read by the warp chain: skip it
        t0 = time.time()
        for s0 in range(0, args.sequences, SHARD):
            path = os.path.join(args.out, "shard%05d.pt" % (s0 // SHARD))
            if os.path.exists(path):
                continue
            n = min(SHARD, args.sequences - s0)
            seqs = [make_sequence(cache, args.frames, fs, args.seed, s0 + i, seq_cfg)
                    for i in range(n)]
            if film_size:
                seqs = [to_network(q, size) for q in seqs]
            with torch.no_grad():
                shard = run_chain(net, seqs)
            if film_size:
                shard["ab_film"] = torch.stack([labmod.rgb_to_lab(q["rgb_film"])[:, 1:3] for q in seqs]
                                               ).to(torch.float16)
            torch.save(shard, path + ".tmp")
            os.replace(path + ".tmp", path)   # a shard appears only when complete
            print("prepare: %d/%d sequences, %.0f s" % (s0 + n, args.sequences, time.time() - t0),
                  flush=True)
    finally:
        net.C.forward = real_c
        os.close(lock)
    return 0


def read_json(path, what):
    """A JSON file the tools wrote (meta.json, config.json); one that does not read stops with one line."""
    try:
        with open(path) as fp:
            d = json.load(fp)
    except (OSError, ValueError) as e:
        fail("%s: not readable as %s (%s): cut short or edited by hand? Mend it or move it away"
             % (path, what, e))
    if not isinstance(d, dict):
        fail("%s: not %s (not a JSON object)" % (path, what))
    return d


def run_chain(net, seqs):
    """The frozen F and A over a batch of sequences -> shard dict (float32 / uint8 tensors,
    N × T × ...): x4 = (L − 50, W^ab, S) per frame (frame 0: L − 50, the reference's a, b and 0:
    the pass-through state), ab (the truth's a, b), phi, tmask, kind."""
    T = seqs[0]["rgb"].shape[0]
    dev = next(net.parameters()).device
    kr = torch.tensor([s["kr"] for s in seqs], device=dev)
    kb = torch.tensor([s["kb"] for s in seqs], device=dev)
    rgb = torch.stack([s["rgb"] for s in seqs]).to(dev)    # N×T×3×H×W
    grey = torch.stack([s["grey"] for s in seqs]).to(dev)  # N×T×1×H×W
    ref = rgb[:, 0]
    cache = net.reference(ref, kr, kb)
    pt = net.passthrough(grey[:, 0], ref)
    prev = pt["prev"]
    x4 = [torch.cat([prev[:, 0:3], torch.zeros_like(prev[:, :1])], dim=1)]
    for t in range(1, T):
        o = net.frame(grey[:, t], cache, prev)
        x4.append(o["x7"][:, :4])
        prev = o["prev"]
    ab = torch.stack([labmod.rgb_to_lab(rgb[:, t])[:, 1:3] for t in range(T)], dim=1)
    return {"x4": torch.stack(x4, dim=1).cpu(), "ab": ab.cpu(), "phi": torch.stack([s["phi"] for s in seqs]),
            "tmask": torch.stack([s["tmask"] for s in seqs]).to(torch.uint8),
            "kind": [s["kind"] for s in seqs]}


def load_seqs(root, model_path):
    meta = read_meta(root, model_path)
    return meta, load_shards(root, meta)


def read_meta(root, model_path):
    """A prepared set's meta.json, checked against the model (its F and A) -> the meta dict."""
    if not os.path.exists(os.path.join(root, "meta.json")):
        fail("%s: no prepared sequences (meta.json): run `finetune_c.py prepare --out %s` first"
             % (root, root))
    meta = read_json(os.path.join(root, "meta.json"), "a set's meta.json")
    if (meta.get("format") != SEQ_FORMAT or not isinstance(meta.get("sequences"), int)
            or not isinstance(meta.get("model_sha256"), str)):
        fail("%s: not a prepared sequence set" % root)
    # a set holds F and A's outputs only: any model with the same F and A (one that stage 5 made
    # from it) may train on it; a set of before warp_sha256 was recorded needs the very file
    key, have = ("warp_sha256", warp_sha256) if "warp_sha256" in meta else ("model_sha256", sha256)
    if meta[key] != have(model_path):
        fail("%s was prepared with a model of another F and A (%s %s…); prepare it again with --model %s"
             % (root, key, meta[key][:8], model_path))
    return meta


def load_shards(root, meta):
    """A prepared set's shards -> the data dict (N × T × ... tensors, kind)."""
    n_shards = (meta["sequences"] + SHARD - 1) // SHARD
    parts = []
    keys = ("x4", "ab", "phi", "tmask") + (("ab_film",) if "film_size" in meta else ())
    for i in range(n_shards):
        p = os.path.join(root, "shard%05d.pt" % i)
        if not os.path.exists(p):
            fail("%s: shard %d of %d missing: finish `prepare` first (it resumes)" % (root, i, n_shards))
        try:
            part = torch.load(p)
        except Exception as e:    # torch.load raises what the unpickler or the zip reader raise
            part = "%s: %s" % (type(e).__name__, first_line(e))
        if not isinstance(part, dict) or not all(k in part for k in keys + ("kind",)):
            fail("%s is not a shard of the set (%s): move it away and run `prepare` again (it makes "
                 "the missing shards)" % (p, part if isinstance(part, str) else "keys %s" % sorted(part)
                                          if isinstance(part, dict) else type(part).__name__))
        parts.append(part)
    data = {k: torch.cat([p[k] for p in parts]) for k in keys}
    data["kind"] = sum((p["kind"] for p in parts), [])
    return data


# -------------------------------------------------------------------------------------- train

def device():
    """CUDA when present (one GPU; the step is small enough), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def batch_of(data, idx, dev="cpu"):   # tmask: uint8; ab_film (a set with film-size truth): float16
    return {k: data[k][idx].to(dev).float() for k in ("x4", "ab", "phi", "tmask", "ab_film") if k in data}


def unroll(C, b, sample):
    """C over a batch's frames 1..T−1 through the recurrence. -> (list of ab, mus, logvars).
    Frame 0 is the pass-through, so frame t is the t-th after it (C.gate_ramp's factor)."""
    x4, T = b["x4"], b["x4"].shape[1]
    prev = x4[:, 0, 0:3]
    abs_, mus, lvs = [], [], []
    for t in range(1, T):
        x7 = torch.cat([x4[:, t], prev], dim=1)
        ramp = gate_ramp_factor(torch.tensor(t - 1.0), C.gate_ramp).item() if C.gate_ramp else None
        if sample is None:
            ab, mu, lv = C(x7, ramp), None, None
        else:
            ab, mu, lv = C.forward_train(x7, sample=sample, ramp=ramp)
        abs_.append(ab)
        mus.append(mu)
        lvs.append(lv)
        prev = torch.cat([x4[:, t, 0:1], ab], dim=1)
    return abs_, mus, lvs


def gate_loss(o, warp, truth, applied):
    """The gate's own term (a gated C, `--weights gate=…`): |σ(gate) − s*| per pixel, s* the
    scale of this frame's correction c that brings the warp closest to the truth,
    clamp(⟨truth − W, c⟩ / |c|², 0, 1), held fixed: 0 where the warp is right or c points away,
    1 where all of c helps. c is the correction C applies, but for σ: applied / σ, applied (C's
    output minus W) holding 128·tanh(o₀,₁), the gate's motion factor and C.gate_ramp's factor.
    o: C.out's N×3×H×W."""
    sg = torch.sigmoid(o[:, 2:3].detach())
    a = applied.detach()
    e = truth - warp
    # ⟨e, c⟩ / (|c|² + 1e-3) with c = a / σ, without dividing by σ
    target = (sg * (e * a).sum(1, keepdim=True) / ((a * a).sum(1, keepdim=True) + 1e-3 * sg * sg)).clamp(0.0, 1.0)
    return (torch.sigmoid(o[:, 2:3]) - target).abs().mean()


def bilinear_up(net):
    """Whether the model upsamples its a, b bilinearly (arch upsample.radius 0), as at_film does."""
    return net.arch["upsample"]["radius"] == 0


def at_film(ab, b):
    """C's (or the warp's) a, b as the films are judged: up to the set's film size by the model's
    upsampling (bilinear, arch upsample.radius 0), beside the film-size truth b["ab_film"]."""
    return resize_bilinear(ab, b["ab_film"].shape[-2:])


def losses(C, b, gate=False, film=False):
    """The stage-5 terms over a batch's frames; gate: also the gate's own term (C gated); film:
    the l1 and log-MSE terms (and ab_err) against the film-size truth, C's a, b upsampled to it."""
    outs = []
    hook = C.out.register_forward_hook(lambda m, i, o: outs.append(o)) if gate else None
    try:
        abs_, mus, lvs = unroll(C, b, sample=True)
    finally:
        if hook is not None:
            hook.remove()
    one = torch.ones(b["x4"].shape[0], device=b["x4"].device)
    terms = {k: 0.0 for k in WEIGHTS if gate or k != "gate"}
    err = 0.0
    for i, ab in enumerate(abs_):
        t = i + 1
        truth = b["ab"][:, t]
        lab = torch.cat([b["x4"][:, t, 0:1] + 50.0, truth], dim=1)
        judged, jtruth = (at_film(ab, b), b["ab_film"][:, t]) if film else (ab, truth)
        terms["l1"] = terms["l1"] + l1_self_loss(judged, jtruth, one)
        terms["smooth"] = terms["smooth"] + smoothness_loss(ab, lab)
        terms["kl"] = terms["kl"] + kl_loss(mus[i], lvs[i])
        terms["logmse"] = terms["logmse"] + log_mse_loss(judged, jtruth)
        if gate:
            warp = b["x4"][:, t, 1:3]
            terms["gate"] = terms["gate"] + gate_loss(outs[i], warp, truth, ab - warp)
        before = abs_[i - 1] if i > 0 else b["x4"][:, 0, 1:3]
        terms["temporal"] = terms["temporal"] + temporal_loss(ab, before, b["phi"][:, t], b["tmask"][:, t])
        err = err + (judged.detach() - jtruth).abs().mean()
    n = len(abs_)
    terms = {k: v / n for k, v in terms.items()}
    return terms, err / n


def held_out(datas, n):
    """The validation sequences: the indices of the last n of each set."""
    return [list(range(d["x4"].shape[0] - n, d["x4"].shape[0])) for d in datas]


def validate(C, datas, vals, dev="cpu", film=True):
    """Mean |ab − truth|, ab PSNR (range 256) and the mean of each frame's ab PSNR (fpsnr, as the
    evaluation averages) over frames 1..T−1 of the validation sequences
    vals[i] of each set datas[i], for C (z = μ) and for the warp alone: over all of them, and with
    more than one set, per set too (keys suffixed _s0, _s1, …). Where every set holds film-size
    truth (and film: the model upsamples bilinearly, see bilinear_up), also the two PSNRs at the
    film's size (val_c_film_psnr, val_c_film_fpsnr, …: C's and the warp's a, b upsampled by the
    model's upsampling, as the films are judged)."""
    out = {}
    film = film and all("ab_film" in d for d in datas)
    zero = {"n": 0}
    for k in ("c", "warp"):
        zero.update({p + k: 0.0 for p in ("se_", "ae_", "fp_") + (("fse_", "ffp_") if film else ())})
    tot = dict(zero)
    with torch.no_grad():
        for si, (data, idx) in enumerate(zip(datas, vals)):
            acc = dict(zero)
            for s in range(0, len(idx), 4):
                b = batch_of(data, idx[s:s + 4], dev)
                abs_, _, _ = unroll(C, b, sample=None)
                for i, ab in enumerate(abs_):
                    truth, warp = b["ab"][:, i + 1], b["x4"][:, i + 1, 1:3]
                    for k, v in (("c", ab), ("warp", warp)):
                        mse = ((v - truth) ** 2).mean(dim=(1, 2, 3))   # per frame of the batch
                        acc["se_" + k] += float(mse.sum())
                        acc["ae_" + k] += float((v - truth).abs().mean()) * truth.shape[0]
                        acc["fp_" + k] += float(psnr256(mse).sum())
                        if film:
                            mse = ((at_film(v, b) - b["ab_film"][:, i + 1]) ** 2).mean(dim=(1, 2, 3))
                            acc["fse_" + k] += float(mse.sum())
                            acc["ffp_" + k] += float(psnr256(mse).sum())
                    acc["n"] += truth.shape[0]
            for k in tot:
                tot[k] += acc[k]
            if len(datas) > 1:
                out.update(_val_record(acc, "_s%d" % si))
    out.update(_val_record(tot, ""))
    return out


def psnr256(mse):
    """ab PSNR of a mean squared error (tensor or float), the range 256."""
    if isinstance(mse, torch.Tensor):
        return 10.0 * torch.log10(256.0 ** 2 / mse.clamp(min=1e-12))
    return 10.0 * math.log10(256.0 ** 2 / max(mse, 1e-12))


def _val_record(acc, suffix):
    out = {}
    n = max(acc["n"], 1)
    for k in ("c", "warp"):
        out["val_%s_err%s" % (k, suffix)] = round(acc["ae_" + k] / n, 5)
        out["val_%s_psnr%s" % (k, suffix)] = round(psnr256(acc["se_" + k] / n), 4)
        out["val_%s_fpsnr%s" % (k, suffix)] = round(acc["fp_" + k] / n, 4)   # the mean of frames' PSNR
        if "fse_" + k in acc:
            out["val_%s_film_psnr%s" % (k, suffix)] = round(psnr256(acc["fse_" + k] / n), 4)
            out["val_%s_film_fpsnr%s" % (k, suffix)] = round(acc["ffp_" + k] / n, 4)
    return out


class Stop:
    """SIGTERM/SIGINT during training: finish the step, checkpoint, exit 128 + signal."""

    def __init__(self):
        self.signal = 0
        self.old = {s: signal.signal(s, self.on) for s in (signal.SIGTERM, signal.SIGINT)}

    def on(self, signum, frame):
        self.signal = signum

    def restore(self):
        for s, h in self.old.items():
            signal.signal(s, h)


def add_gate(net, bias):
    """The reference's Net.add_gate (arch C.gate), a refusal as finetune_c's error."""
    try:
        net.add_gate(bias)
    except ValueError as e:
        fail("--gate: %s" % e)


def one_or_list(xs):
    """A run's sequence sets as its config and config.json record them: one set as itself (as
    session 11's runs did), several as a list."""
    return xs[0] if len(xs) == 1 else xs


def lr_at(cfg, step):
    """The learning rate of a step: linear warm-up over cfg["warmup"] steps, then cfg["lr"]; with
    cfg["decay"] = [a, b], from step a down linearly to 1/20 of it at step b, and that after."""
    lr = cfg["lr"] * min(1.0, (step + 1) / max(cfg["warmup"], 1))
    if cfg.get("decay"):
        a, b = cfg["decay"]
        lr *= 1.0 - 0.95 * min(max((step - a) / max(b - a, 1), 0.0), 1.0)
    return lr


def save_ckpt(path, C, opt, step, cfg, secs, metas):
    """RUN/last.pt, written whole (PATH.tmp, synced, then renamed); metas: the sequence sets'
    meta.json, which a resume must be given again."""
    weights = C.state_dict()
    check_finite_weights(weights, step, "finetune_c")
    save_torch_atomic({"format": CKPT_FORMAT, "step": step, "C": weights,
                       "optimizer": opt.state_dict(), "config": cfg, "sequences": metas,
                       "train_seconds": secs}, path, "finetune_c")


# train's settings of a run and their defaults (a new run's); given at a resume, each replaces the
# run's from there on (with a warning: the continuation is not exact) but --val, the run's from its
# start (refused when it differs, as are --zero-out, --gate, --film-loss and --only-gate)
TRAIN_DEFAULTS = {"batch": 4, "lr": 1e-4, "warmup": 20, "clip": 1.0, "weights": "", "seed": 0, "val": 16}


def check_train_args(args):
    """train's counts, numbers and files, before anything is read or written."""
    check_min(vars(args), {"steps": 0, "max_minutes": 0, "batch": 1, "lr": 0, "warmup": 0, "val": 0,
                           "val_every": 1, "ckpt_every": 1, "print_every": 1, "threads": 1}, "finetune_c")
    check_lr(vars(args), ("lr",), "finetune_c")
    if args.clip is not None and not args.clip > 0:
        fail("--clip %s: must be more than 0 (the bound of the gradient's norm)" % args.clip)
    if args.decay and not 0 <= args.decay[0] < args.decay[1]:
        fail("train: --decay A B needs 0 <= A < B")
    if args.gate is not None and not math.isfinite(args.gate):
        fail("--gate %s: the gate's bias must be a number" % args.gate)
    if args.weights is not None:
        parse_weights(args.weights, WEIGHTS, "finetune_c")
    need_folder("--out", args.out)
    if args.resume and args.resume != "auto":
        need_file("--resume", args.resume, "a checkpoint (RUN/last.pt; or --resume auto)")


def resume_options(args, ck, resume):
    """The run's configuration at a resume: the checkpoint's, with the settings given now that
    may change (TRAIN_DEFAULTS but --val, with a warning where they differ; --decay and
    --gate-lr-mult, which replace the run's as documented); refused: the settings of its start
    (--val, --zero-out, --gate, --film-loss, --only-gate) where they differ."""
    cfg = dict(ck["config"])
    cfg.setdefault("clip", TRAIN_DEFAULTS["clip"])     # checkpoints of session 11's first run lack it
    if args.val is not None and args.val != cfg["val"]:
        fail("--val %d differs from the run's %d: the held-out sequences are the run's from its start "
             "(another --val would validate on trained sequences or train on validation ones); leave "
             "it out, or start a new run" % (args.val, cfg["val"]))
    if args.zero_out and not cfg.get("zero_out"):
        fail("--zero-out is the run's from its start: %s was started without it" % resume)
    if args.gate is not None and args.gate != cfg.get("gate"):
        fail("--gate is the run's from its start: %s was started with %s" % (resume, cfg.get("gate")))
    if args.film_loss and not cfg.get("film_loss"):
        fail("--film-loss is the run's from its start: %s was started without it" % resume)
    if args.only_gate and not cfg.get("only_gate"):
        fail("--only-gate is the run's from its start: %s trains all of C" % resume)
    run_w = dict({k: 0.0 for k in WEIGHTS}, **cfg["weights"])   # a term it lacks was not in its loss
    for k in TRAIN_DEFAULTS:
        v = getattr(args, k)
        if k == "weights" and v is not None:
            v = parse_weights(v, WEIGHTS, "finetune_c")
        was = run_w if k == "weights" else cfg[k]
        if v is None or v == was:
            continue
        show = (lambda d: ",".join("%s=%g" % kv for kv in d.items())) if k == "weights" else str
        print("finetune_c: warning: %s %s overrides the checkpoint's %s: the continuation is not exact"
              % (opt_name(k), show(v), show(was)), file=sys.stderr)
        cfg[k] = v
    if args.decay:   # a schedule given at a resume replaces the run's from here on
        cfg["decay"] = args.decay
    if args.gate_lr_mult:   # so does the gate's rate
        cfg["gate_lr_mult"] = args.gate_lr_mult
    return cfg


def check_resume_sets(ck, resume, metas, roots):
    """A resume trains on the sets its run trained on (batches are a function of seed, step and
    the sets): the checkpoint's record of them, else (older checkpoints) its folder's config.json."""
    was = ck.get("sequences")
    where = resume
    if was is None:
        where = os.path.join(os.path.dirname(os.path.abspath(resume)), "config.json")
        was = read_json(where, "a stage-5 run's config.json").get("sequences") if os.path.exists(where) else None
    if was is None:
        print("finetune_c: warning: neither %s nor its folder records the sequence sets it was trained "
              "on: the --seqs given are not checked against them" % resume, file=sys.stderr)
        return
    was = was if isinstance(was, list) else [was]
    if was == metas:
        return
    if len(was) != len(metas):
        what = "%d sets, now %d" % (len(was), len(metas))
    else:
        what = "; ".join("set %d (%s): %s" % (i, os.path.basename(os.path.normpath(r)), meta_diff(a, b))
                         for i, (a, b, r) in enumerate(zip(was, metas, roots)) if a != b)
    fail("the sequence sets given (--seqs) differ from those the run of %s was trained on (recorded "
         "in %s): %s. Give its sets, in its order, or start a new run" % (resume, where, what))


def train(args):
    check_train_args(args)
    out = args.out
    last = os.path.join(out, "last.pt")
    resume = last if args.resume == "auto" and os.path.exists(last) else args.resume
    if resume == "auto":
        resume = None
    if args.resume != "auto":   # early (nothing read yet); again below, under the lock, with
        check_out(out, resume, "finetune_c")  # --resume auto's restart of a run without last.pt
    torch.set_num_threads(args.threads)
    net = model_arg(args.model)
    dev = device()
    roots = [os.path.abspath(r) for r in args.seqs]
    ck = None
    if resume:
        ck = load_ckpt(resume, "--resume")
        if ck["config"]["model_sha256"] != sha256(args.model):
            fail("%s fine-tunes another model's C (sha256 %s…), not %s's" % (
                resume, ck["config"]["model_sha256"][:8], args.model))
        cfg = resume_options(args, ck, resume)
    else:
        given = {k: getattr(args, k) for k in TRAIN_DEFAULTS}
        cfg = {k: TRAIN_DEFAULTS[k] if v is None else v for k, v in given.items()}
        cfg = {"model_sha256": sha256(args.model), "seqs": one_or_list(roots),
               "batch": cfg["batch"], "lr": cfg["lr"], "seed": cfg["seed"], "val": cfg["val"],
               "weights": parse_weights(cfg["weights"], WEIGHTS, "finetune_c"),
               "warmup": cfg["warmup"], "zero_out": args.zero_out, "clip": cfg["clip"], "decay": args.decay,
               "gate": args.gate, "gate_lr_mult": args.gate_lr_mult or 1.0, "only_gate": args.only_gate,
               "film_loss": args.film_loss}
    gate = cfg.get("gate")
    gated = gate is not None or bool(net.arch["C"].get("gate"))   # --gate, or a gated model's C
    if cfg["weights"].get("gate", 0.0) > 0 and not gated:
        fail("--weights gate=… needs a C with a gate (--gate, or a gated model)")
    if args.gate_lr_mult is not None and (not gated or not args.gate_lr_mult > 0):
        fail("--gate-lr-mult needs a C with a gate (--gate, or a gated model) and a value > 0")
    if args.only_gate and not gated:
        fail("--only-gate needs a C with a gate (--gate, or a gated model)")
    if args.only_gate and args.zero_out:
        fail("--only-gate with --zero-out: a zero correction leaves the gate nothing to scale")
    if gate is not None:
        add_gate(net, gate)
    C = net.C.to(dev)
    only_gate = cfg.get("only_gate", False)
    if only_gate and args.gate_lr_mult is not None:   # a new run, or a resume of one
        fail("--only-gate trains the gate alone at --lr: --gate-lr-mult has nothing to scale against")
    if only_gate:   # C.out alone takes gradients; its correction rows are put back after each step
        for p in C.parameters():
            p.requires_grad_(False)
        for p in (C.out.weight, C.out.bias):
            p.requires_grad_(True)
    opt = torch.optim.AdamW([p for p in C.parameters() if p.requires_grad], lr=cfg["lr"],
                            betas=(0.9, 0.999), weight_decay=1e-4)
    step, secs = 0, 0.0
    if ck:
        C.load_state_dict(ck["C"])
        opt.load_state_dict(ck["optimizer"])
        step, secs = ck["step"], ck["train_seconds"]
    elif cfg["zero_out"]:
        if not net.arch["C"]["residual"]:
            fail("--zero-out needs a residual C (its output is then the warp)")
        zero_colour_out(net)    # C's correction starts at 0: the model starts as its warp
    metas = [read_meta(r, args.model) for r in roots]
    for r, m in zip(roots, metas):
        if m.get("data_role") == "validation":
            fail("%s was prepared from a validation cache (make_dataset.py --validation): it "
                 "validates (calibrate --seqs), it does not train" % r)
    if resume:
        check_resume_sets(ck, resume, metas, roots)
    film_loss = cfg.get("film_loss", False)
    if film_loss and not bilinear_up(net):
        fail("--film-loss upsamples bilinearly; %s upsamples with a guided filter (arch upsample.radius %d)"
             % (args.model, net.arch["upsample"]["radius"]))
    for r, m in zip(roots, metas):
        if film_loss and "film_size" not in m:
            fail("--film-loss: %s holds no film-size truth: prepare a set with --film-scale S" % r)
        if cfg["val"] >= m["sequences"]:
            fail("--val %d leaves no training sequences of the %d in %s" % (cfg["val"], m["sequences"], r))
    datas = [load_shards(r, m) for r, m in zip(roots, metas)]
    n_trains = [d["x4"].shape[0] - cfg["val"] for d in datas]
    vals = held_out(datas, cfg["val"])
    w = cfg["weights"]
    # RUN: written by this process alone (RUN/train.lock), never over another run's files
    os.makedirs(out, exist_ok=True)
    lock = lock_out(out, "finetune_c")
    logf = stop = None
    try:
        remove_stale_tmp(out, "finetune_c")
        check_out(out, resume, "finetune_c", restart=cfg if args.resume == "auto" else None)
        write_json_atomic(os.path.join(out, "config.json"), {"config": cfg, "sequences": one_or_list(metas)})
        logp = os.path.join(out, "log.jsonl")
        # drop the records past the checkpoint (a run killed between checkpoints; at step 0 the
        # validation before it, made again below) and a line cut short by a kill
        truncate_log(logp, step if step > 0 else -1)
        logf = open(logp, "a")
        print("finetune_c: C of %s on %s, step %d; %s" % (args.model, dev, step, "; ".join(
            "%d training + %d validation sequences of %d frames at %s" % (n, len(v), m["frames"], m["size"])
            for n, v, m in zip(n_trains, vals, metas))), flush=True)
        stop = Stop()      # before the first validation: a SIGTERM there still checkpoints
        if step == 0 and cfg["val"]:
            rec = {"step": -1}
            rec.update(validate(C.eval(), datas, vals, dev, bilinear_up(net)))
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            print("before: %s" % rec, flush=True)
        t_start = time.time()
        why = None
        C.train()
        while True:
            if step >= args.steps:
                why = "reached %d steps" % args.steps
            elif args.max_minutes and time.time() - t_start >= args.max_minutes * 60:
                why = "--max-minutes %g" % args.max_minutes
            elif stop.signal:
                why = "signal %d" % stop.signal
            if why:
                break
            t0 = time.time()
            g = torch.Generator().manual_seed(batch_seed(cfg["seed"], step, 0))
            k = 0   # a batch comes from one set (one size), the set drawn by its share of sequences
            if len(datas) > 1:
                j = int(torch.randint(sum(n_trains), (1,), generator=g))
                while j >= n_trains[k]:
                    j -= n_trains[k]
                    k += 1
            idx = torch.randint(n_trains[k], (cfg["batch"],), generator=g).tolist()
            torch.manual_seed(batch_seed(cfg["seed"] + 7919, step, 0))   # the VAE's ε
            for grp in opt.param_groups:
                grp["lr"] = lr_at(cfg, step)
            terms, err = losses(C, batch_of(datas[k], idx, dev), gate=w.get("gate", 0.0) > 0, film=film_loss)
            total = sum(w[k] * terms[k] for k in w if k in terms)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if only_gate:   # the correction's rows do not train: their gradients out of the clip
                for p in (C.out.weight, C.out.bias):
                    p.grad[0:2] = 0
            gn = torch.nn.utils.clip_grad_norm_(C.parameters(), cfg["clip"])
            if not torch.isfinite(gn):
                fail("step %d: gradient norm %s" % (step, float(gn)))
            gmult = cfg.get("gate_lr_mult", 1.0)
            gate_rows = (C.out.weight, C.out.bias) if gmult != 1.0 else ()
            before = [p.detach()[2].clone() for p in gate_rows]
            kept = [p.detach()[0:2].clone() for p in (C.out.weight, C.out.bias)] if only_gate else []
            opt.step()
            with torch.no_grad():   # the gate row's step: AdamW's update of it scaled by gmult
                for p, p0 in zip(gate_rows, before):
                    p[2] = p0 + gmult * (p[2] - p0)
                for p, p0 in zip((C.out.weight, C.out.bias), kept):   # --only-gate: rows 0, 1 as they were
                    p[0:2] = p0
            dt = time.time() - t0
            secs += dt
            rec = {"step": step, "total": round(float(total), 6), "ab_err": round(float(err), 5)}
            rec.update({k: round(float(v), 6) for k, v in terms.items()})
            rec.update({"grad_norm": round(float(gn), 4), "lr": opt.param_groups[0]["lr"], "sec": round(dt, 3),
                        "train_seconds": round(secs, 1)})
            step += 1
            if len(datas) > 1:
                rec["set"] = k
            if cfg["val"] and step % args.val_every == 0:
                rec.update(validate(C.eval(), datas, vals, dev, bilinear_up(net)))
                C.train()
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            if step % args.print_every == 0 or "val_c_err" in rec:
                print(" ".join("%s %s" % kv for kv in rec.items()), flush=True)
            if step % args.ckpt_every == 0:
                save_ckpt(last, C, opt, step, cfg, secs, metas)
        save_ckpt(last, C, opt, step, cfg, secs, metas)
    finally:   # a failure (fail(), an exception) too
        if stop is not None:
            stop.restore()
        if logf is not None:
            logf.close()
        os.close(lock)
    print("finetune_c: stopped at step %d (%s), %.0f s of training; %s" % (step, why, secs, last), flush=True)
    return 128 + stop.signal if stop.signal else 0


def export(args):
    out_file("--out", args.out, (("--model", args.model), ("--from", args.ckpt)))
    net = model_arg(args.model)
    ck = load_ckpt(args.ckpt, "--from")
    if ck["config"]["model_sha256"] != sha256(args.model):
        fail("%s fine-tunes another model's C, not %s" % (args.ckpt, args.model))
    base = safetensors_io.load(args.model)[1].get("vaefarm_weights", "")
    if ck["config"].get("gate") is not None:
        add_gate(net, ck["config"]["gate"])
    net.C.load_state_dict(ck["C"])
    save_weights(args.out, net, "stage 5 (train/finetune_c.py): C fine-tuned %d steps, %.0f s, on %s "
                 "(sha256 %s…: %s)" % (ck["step"], ck["train_seconds"], os.path.basename(args.model),
                                      ck["config"]["model_sha256"][:8], base or "no description"))
    print("wrote %s" % args.out)
    return 0


def calibrate(args):
    """The validation (validate: the last --val sequences of each set) of the model's C with its
    gate's bias moved by each shift and, with --motions, under each κ of C.gate_motion (0: none);
    with --out, the model with the pair of the best mean of frames' ab PSNR over all the sets
    (val_c_fpsnr; val_c_film_fpsnr, at the film's size, where every set holds film-size truth)
    written there (the rest of the file as it was)."""
    check_min(vars(args), {"threads": 1, "val": 1}, "finetune_c")
    if args.out:
        out_file("--out", args.out, (("--model", args.model),))
    torch.set_num_threads(args.threads)
    net = model_arg(args.model)
    if not net.arch["C"].get("gate"):
        fail("calibrate: %s has no gate on C (arch C.gate): nothing to calibrate" % args.model)
    try:
        shifts = [float(x) for x in args.shifts.split(",")]
        if not all(math.isfinite(x) for x in shifts):
            raise ValueError("not finite")
    except ValueError:
        fail("calibrate: --shifts wants numbers separated by commas, e.g. 0,-1,-2; got %r" % args.shifts)
    own = net.arch["C"].get("gate_motion")
    own_r = net.arch["C"].get("gate_motion_radius")
    if args.motion_radius is not None and not args.motions:
        fail("calibrate: --motion-radius goes with --motions (the κ values it makes per pixel)")
    # the swept κ keep the model's own window unless --motion-radius says (-1: per image)
    radius = own_r if args.motion_radius is None else None if args.motion_radius == -1 else args.motion_radius

    def set_motion(m):   # κ m (None: no factor) with the radius chosen above
        net.set_gate_motion(m, radius if m is not None else None)

    def motion_name(m, r):
        return "none" if m is None else "%s, per pixel over radius %d" % (m, r) if r is not None else str(m)
    try:
        motions = [float(x) or None for x in args.motions.split(",")] if args.motions else [own]
        if not all(m is None or math.isfinite(m) for m in motions):
            raise ValueError("not finite")
    except ValueError:
        fail("calibrate: --motions wants numbers separated by commas (κ in units of L; 0: none), "
             "e.g. 0,1,2; got %r" % args.motions)
    for m in motions:   # Net.set_gate_motion's (the arch's) bounds, before the sets are read
        try:
            set_motion(m)
        except ValueError as e:
            fail("calibrate: --motions: each κ must be positive, in [1e-6, 1e6) (or 0: none), and "
                 "--motion-radius an integer in [0, 16]; got %s, %s (%s)" % (args.motions, args.motion_radius, e))
    sets = [load_seqs(os.path.abspath(r), args.model) for r in args.seqs]
    datas = [d for _, d in sets]
    for r, d in zip(args.seqs, datas):
        if not 0 < args.val <= d["x4"].shape[0]:
            fail("calibrate: --val %d, but %s has %d sequences" % (args.val, r, d["x4"].shape[0]))
    vals = held_out(datas, args.val)
    C = net.C
    b0 = float(C.out.bias.data[2])
    best = None
    for m in motions:
        set_motion(m)
        for d in shifts:
            C.out.bias.data[2] = b0 + d
            r = validate(C, datas, vals, film=bilinear_up(net))
            print("calibrate: gate bias %+.3f (shift %+g), gate_motion %s: %s" % (
                b0 + d, d, m if m is not None else "none",
                " ".join("%s %s" % kv for kv in r.items() if "fpsnr" in kv[0])), flush=True)
            key = "val_c_film_fpsnr" if "val_c_film_fpsnr" in r else "val_c_fpsnr"
            if best is None or r[key] > best[2]:
                best = (d, m, r[key])
    print("calibrate: best shift %+g, gate_motion %s (%s %.4f)" % (
        best[0], best[1] if best[1] is not None else "none", key, best[2]))
    if args.out:
        tensors, meta = safetensors_io.load(args.model)
        tensors["C.out.bias"][2] += best[0]
        if args.motions:   # the arch only when κ was swept (a file's other keys stay as written)
            set_motion(best[1])
            meta["vaefarm"] = arch_json(net.arch)
        meta["vaefarm_weights"] = "%s; C's gate bias %+.3f -> %+.3f, gate_motion %s -> %s (finetune_c.py " \
            "calibrate: shift %+g of %s, gate_motion of %s, on %s)" % (
                meta.get("vaefarm_weights", "no description"), b0, b0 + best[0],
                motion_name(own, own_r), motion_name(best[1], radius), best[0],
                args.shifts, args.motions or "the model's own",
                ", ".join(os.path.basename(os.path.normpath(r)) for r in args.seqs))
        safetensors_io.save(args.out, tensors, meta)
        print("wrote %s" % args.out)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--sequences", type=int, default=400)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, nargs=2, help="H W (default: the model's inference size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=os.path.expanduser("~/.cache/vaefarm/train"))
    p.add_argument("--synthetic-data", action="store_true", help="a small random cache (tests)")
    p.add_argument("--film-scale", type=float, metavar="S",
                   help="make the sequences at S times the size, a film's, and run the network on "
                        "them resized as vaefarm resizes a film (the films are 1.07 to 1.43 times "
                        "the network's size); the set keeps the film-size truth too (train "
                        "--film-loss); the cache's canvas must be larger than the film")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seq-option", action="append", metavar="KEY=VALUE",
                   help="a sequence setting of vaefarm_train/seq.py's SeqConfig, e.g. "
                        "speed_px=0.1,2 or p_clip=0.5 (repeatable)")
    t = sub.add_parser("train")
    t.add_argument("--model", required=True)
    t.add_argument("--seqs", required=True, nargs="+",
                   help="prepared sequence sets (several: each batch from one, drawn by its size)")
    t.add_argument("--out", required=True,
                   help="the run's folder (last.pt, log.jsonl, config.json): a new run refuses one "
                        "holding them, a resume continues in the checkpoint's own or in a new one")
    t.add_argument("--resume", help="a checkpoint, or auto (OUT/last.pt when it exists)")
    t.add_argument("--steps", type=int, default=10 ** 9)
    t.add_argument("--max-minutes", type=float, default=0.0)
    # a run's settings (default: a new run's, TRAIN_DEFAULTS; a resume's, the checkpoint's)
    t.add_argument("--batch", type=int, help="sequences a step (default 4; given at a resume, it "
                   "replaces the run's, with a warning, as --lr, --warmup, --clip, --weights and --seed do)")
    t.add_argument("--lr", type=float, help="the learning rate after the warm-up (default 1e-4)")
    t.add_argument("--warmup", type=int, help="steps of linear warm-up (default 20)")
    t.add_argument("--clip", type=float, help="the gradient's norm clipped to this (default 1)")
    t.add_argument("--decay", type=int, nargs=2, metavar=("A", "B"),
                   help="lr down linearly from step A to 1/20 at step B (given at a resume: "
                        "replaces the run's schedule)")
    t.add_argument("--weights",
                   help="l1=…,smooth=…,kl=…,temporal=…,logmse=…,gate=… (0: off; gate needs a gated C)")
    t.add_argument("--seed", type=int, help="the batches are a function of (seed, step) (default 0)")
    t.add_argument("--gate", type=float, metavar="BIAS",
                   help="a new run: give C a gate (arch C.gate), its bias BIAS at the start (2: the "
                        "correction starts at 0.88 of the model's)")
    t.add_argument("--gate-lr-mult", type=float, metavar="M",
                   help="the gate's weights step M times as far as the rest (AdamW's update scaled; "
                        "default 1; given at a resume, it replaces the run's)")
    t.add_argument("--only-gate", action="store_true",
                   help="a new run: train the gate's row of C.out alone (every other weight of C "
                        "frozen), at --lr")
    t.add_argument("--film-loss", action="store_true",
                   help="a new run: the l1 and log-MSE terms compare C's a, b upsampled to the "
                        "sets' film size with their film-size truth (sets prepared with --film-scale)")
    t.add_argument("--zero-out", action="store_true",
                   help="start C's correction at 0 (C.out zeroed): the model starts as its warp")
    t.add_argument("--val", type=int,
                   help="sequences held out for validation (the last of each set; default 16; "
                        "the run's from its start: a resume refuses another)")
    t.add_argument("--val-every", type=int, default=50)
    t.add_argument("--ckpt-every", type=int, default=25)
    t.add_argument("--print-every", type=int, default=10)
    t.add_argument("--threads", type=int, default=2)
    e = sub.add_parser("export")
    e.add_argument("--model", required=True)
    e.add_argument("--from", dest="ckpt", required=True)
    e.add_argument("--out", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("--model", required=True)
    c.add_argument("--seqs", required=True, nargs="+", help="prepared sequence sets")
    c.add_argument("--val", type=int, default=16, help="the last sequences of each set (as train's --val)")
    c.add_argument("--shifts", default="0,-1,-2,-3", help="moves of the gate's bias to try")
    c.add_argument("--motions", default="",
                   help="κ values of C.gate_motion to try with each shift (0: none; default: the "
                        "model's own)")
    c.add_argument("--motion-radius", type=int, default=None,
                   help="with --motions: each κ's factor per pixel, over (2r+1)² windows (arch "
                        "C.gate_motion_radius; -1: per image; default: the model's own)")
    c.add_argument("--out", help="write the model with the best shift (and κ) here")
    c.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.cmd == "calibrate":
        return calibrate(args)
    if args.cmd == "prepare":
        check_min(vars(args), {"threads": 1}, "finetune_c")
        torch.set_num_threads(args.threads)
        return prepare(args)
    return train(args) if args.cmd == "train" else export(args)


if __name__ == "__main__":
    sys.exit(main())
