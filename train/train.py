#!/usr/bin/python3
"""Train the vaefarm network (docs/TRAINING.md).

    train/train.py --out train/checkpoints/tiny --steps 20000 --max-minutes 170
    train/train.py --resume train/checkpoints/tiny/last.pt --steps 20000 --max-minutes 170
    train/train.py --arch full --init full-imagenet.safetensors --size 216 384 --batch 8 --lr-f 1e-5 \\
        --out runs/full          # one process per GPU: see docs/TRAINING.md "Devices" (Debian's
                                 # torch 1.13: torchrun fails at start; start the ranks yourself)
    train/export.py --from-checkpoint train/checkpoints/tiny/last.pt --out models/vaefarm-tiny.safetensors

Data: the crops cache of train/fetch_data.sh (~/.cache/vaefarm/train). Every step is a pure function
of (seed, step, rank) and the model/optimizer state, so a checkpoint (model, optimizer, step, RNG
states, data cursor = step) resumes into exactly the run that was not interrupted. Checkpoints:
OUT/last.pt every --ckpt-every steps, at the end, at --max-minutes and on SIGTERM/SIGINT/SIGUSR1
(the step in flight finishes first). Log: OUT/log.jsonl, one JSON object per step with every loss
term (unweighted), the weighted total, learning rate, gradient norm and seconds per step;
train/plot_losses.py draws it. OUT: --out, else --resume's folder, else train/checkpoints/tiny; a
new run refuses an OUT holding a last.pt, log.jsonl or config.json, a resume one holding another
run's; OUT/train.lock keeps two runs out of one OUT. Device: CUDA when present (several GPUs: one
process per GPU with torchrun's variables, DDP, docs/TRAINING.md "Devices"; each rank its own
batches), else the CPU with --threads threads (2).
"""
import argparse
import contextlib
import errno
import fcntl
import io
import json
import math
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import safetensors_io  # noqa: E402
from cli_io import TOO_SMALL, first_line  # noqa: E402
from export import arch_diff  # noqa: E402
from vaefarm_ref import build, load_weights  # noqa: E402
from vaefarm_ref.arch import PRESETS, ArchError, get_arch  # noqa: E402
from vaefarm_ref.init import init_weights  # noqa: E402
from vaefarm_train.data import Cache, DataConfig, batch_seed, make_batch  # noqa: E402
from vaefarm_train.losses import DEFAULT_WEIGHTS  # noqa: E402
from vaefarm_train.step import TERMS, TrainStep  # noqa: E402

CKPT_FORMAT = "vaefarm-train-ckpt-v1"
# options that shape the training: on --resume they come from the checkpoint (a different value
# on the command line overrides it, with a warning: the continuation is then not exact)
SHAPING = {"arch": "tiny", "seed": 0, "batch": 8, "size": [64, 112], "lr": 3e-4, "lr_f": None,
           "wd": 1e-4, "beta1": 0.0, "beta2": 0.999, "warmup": 100, "cosine_to": 0, "clip": 0.0,
           "weights": "", "init": None, "overfit": False, "freeze": "", "fresh_c": False}
MODULES = ("F", "A", "C")
DEFAULT_OUT = "train/checkpoints/tiny"
RUN_FILES = ("last.pt", "log.jsonl", "config.json")     # what a run writes into OUT


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = ap.add_argument
    a("--out", help="folder for last.pt, log.jsonl and config.json (default: the folder of "
      "--resume CKPT, else %s)" % DEFAULT_OUT)
    a("--resume", metavar="CKPT", help="continue from this checkpoint ('auto': OUT/last.pt if present)")
    a("--steps", type=int, default=10000, help="stop when the step count reaches this")
    a("--max-minutes", type=float, default=0, help="stop (with a checkpoint) after this wall time")
    a("--ckpt-every", type=int, default=200, help="checkpoint every N steps")
    a("--keep-every", type=int, default=0, help="also keep OUT/stepNNNNNNN.pt every N steps")
    a("--print-every", type=int, default=10)
    a("--data", default=os.path.join(os.path.expanduser("~"), ".cache", "vaefarm", "train"))
    a("--synthetic-data", action="store_true", help="a small random in-memory set (tests)")
    a("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    a("--threads", type=int, default=2, help="CPU threads (CPU device)")
    # shaping options (defaults in SHAPING)
    a("--arch", help="tiny | full | a JSON file | init: --init's own (default: tiny, or the "
      "checkpoint's own at a resume)")
    a("--seed", type=int)
    a("--batch", type=int, help="clips per step and rank (default 8)")
    a("--size", type=int, nargs=2, metavar=("H", "W"), help="training size (default 64 112)")
    a("--lr", type=float, help="AdamW learning rate of A and C (default 3e-4)")
    a("--lr-f", type=float, help="learning rate of F (default: --lr; 1e-5 for an ImageNet F)")
    a("--wd", type=float, help="AdamW weight decay on conv weights (default 1e-4)")
    a("--beta1", type=float, help="AdamW β1 (default 0: no momentum, so checkpoints omit the first "
      "moment: see docs/TRAINING.md)")
    a("--beta2", type=float)
    a("--warmup", type=int, help="linear warm-up steps (default 100)")
    a("--cosine-to", type=int, help="cosine decay to 0.1·lr at this step (default 0: constant)")
    a("--clip", type=float, help="gradient norm clip (default 0: none)")
    a("--weights", help="loss weights, e.g. 'perc=0.001,kl=1,context=0.2,smooth=5,l1=2,temporal=0.02'")
    a("--init", help="start from this vaefarm weights file (e.g. convert_resnet.py's output)")
    a("--overfit", action="store_true", default=None, help="the same batch (step 0's) every step")
    a("--freeze", help="modules that do not learn, e.g. 'F,A': no gradient, not in the optimizer "
      "(the losses still reach the output through them)")
    a("--fresh-c", action="store_true", default=None, help="with --init: C from the seeded init "
      "(C.out zeroed in a residual C), everything else from the file; C's architecture may differ "
      "from the file's (the loss ablations, docs/QUALITY.md)")
    return ap.parse_args(argv)


def seeded_init(net, seed):
    """The reference's seeded init, C.out zeroed in a residual C (it starts as its warp)."""
    init_weights(net, seed)
    if net.arch["C"]["residual"]:
        zero_colour_out(net)


def zero_colour_out(net):
    """A residual C (ab = W^ab + 128·tanh(C.out(x))) starts from C.out = 0, i.e. as its warp:
    C then learns a correction instead of first having to learn to copy W^ab (docs/TRAINING.md)."""
    with torch.no_grad():
        net.C.out.weight.zero_()
        net.C.out.bias.zero_()


def parse_weights(s, defaults=DEFAULT_WEIGHTS, prog="train"):
    """"perc=…,kl=…" -> the loss weights: defaults with those terms replaced (finetune_c.py passes
    its own terms)."""
    w = dict(defaults)
    for part in filter(None, (s or "").split(",")):
        k, eq, v = part.partition("=")
        if k.strip() not in w:
            raise SystemExit("%s: unknown loss term %r (terms: %s)" % (prog, k, ", ".join(w)))
        try:
            val = float(v) if eq else None
        except ValueError:
            val = None
        if val is None or not math.isfinite(val):
            raise SystemExit("%s: --weights %r: %r is not term=number (e.g. 'perc=0.001,kl=1')"
                             % (prog, s, part))
        w[k.strip()] = val
    return w


def fail(msg, prog="train"):
    """Stop with a one-line message (exit status 1); prog: the script's name, for finetune_c.py's
    use of the run-folder helpers below."""
    raise SystemExit(prog + ": " + msg)


# the least value of each count and number (NaN is refused too); --lr-f None is --lr's
ARG_MIN = {"steps": 0, "max_minutes": 0, "ckpt_every": 1, "keep_every": 0, "print_every": 0, "threads": 1}
CFG_MIN = {"batch": 1, "lr": 0, "lr_f": 0, "wd": 0, "warmup": 0, "cosine_to": 0, "clip": 0}


def opt_name(k):
    return "--" + k.replace("_", "-")


def check_min(values, mins, prog="train"):
    """Each option of mins (name -> least value) that values (a dict: vars(args), a config) gives,
    not None, is at least its least value; NaN is refused too. One line otherwise."""
    for k, lo in mins.items():
        v = values.get(k)
        if v is not None and not v >= lo:
            fail("%s %s: must be %s" % (opt_name(k), v, "at least %d" % lo if lo else "0 or more"), prog)


def check_args(args):
    """The command line's counts, device and files, before anything is read or written."""
    check_min(vars(args), ARG_MIN)
    if args.device != "auto":
        try:
            dev = torch.device(args.device)
        except RuntimeError:
            fail("--device %s: not auto, cpu, cuda or cuda:N" % args.device)
        if dev.type not in ("cpu", "cuda"):
            fail("--device %s: not auto, cpu, cuda or cuda:N" % args.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            fail("--device %s: no CUDA device here; use --device cpu (or auto)" % args.device)
    for opt, path in (("--resume", None if args.resume == "auto" else args.resume), ("--init", args.init)):
        if path and os.path.isdir(path):
            fail("%s %s is a folder, not a file%s" % (opt, path, " (its last.pt? or --resume auto --out %s)"
                                                      % path if opt == "--resume" else ""))
        if path and not os.path.exists(path):
            fail("%s %s: no such file" % (opt, path))
    if not args.synthetic_data and not os.path.exists(os.path.join(args.data, "index.json")):
        fail("no training cache in %s (run train/fetch_data.sh, or give --data)" % args.data)


def check_lr(cfg, keys=("lr", "lr_f"), prog="train"):
    """A learning rate is finite and at most 1: AdamW's steps are about lr in size, so 3e4 for
    3e-4 (or inf) wrecks the weights at the first step, and the checkpoint after it."""
    for k in keys:
        v = cfg.get(k)
        if v is not None and not (math.isfinite(v) and v <= 1):
            fail("%s %s: must be finite and at most 1 (this network trains at 1e-4 to 1e-3): a "
                 "typo?" % (opt_name(k), v), prog)


def check_config(cfg):
    """The shaping options (command line and checkpoint merged)."""
    check_min(cfg, CFG_MIN)
    check_lr(cfg)
    if not math.isfinite(cfg["wd"]):
        fail("--wd %s: must be finite" % cfg["wd"])
    for k in ("beta1", "beta2"):
        if not 0 <= cfg[k] < 1:
            fail("--%s %s: must be in [0, 1)" % (k, cfg[k]))
    size = list(cfg["size"])
    if len(size) != 2 or any(v <= 0 or v % 8 for v in size):
        fail("--size %s: both must be positive multiples of 8 (the network works on 8×8 blocks at "
             "its coarsest), e.g. 64 112" % " ".join(map(str, size)))


def load_arch(spec):
    """--arch: 'tiny' | 'full' | a JSON file (or an arch dict) -> the validated architecture."""
    if isinstance(spec, dict):
        return get_arch(spec)
    if spec in PRESETS:
        return get_arch(spec)
    if not os.path.isfile(spec):
        fail("--arch %s: not tiny, full or a JSON file of an architecture (docs/NETWORK.md)" % spec)
    try:
        with open(spec) as fp:
            d = json.load(fp)
    except (OSError, ValueError) as e:
        fail("--arch %s: not a JSON file of an architecture (%s)" % (spec, e))
    try:
        return get_arch(d)
    except ArchError as e:
        fail("--arch %s: %s" % (spec, e))


def torch_file(path):
    """True for a file torch.save wrote (a zip, or a pickle before torch 1.6)."""
    with open(path, "rb") as fp:
        head = fp.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def load_resume(path):
    """--resume CKPT -> the checkpoint dict; anything else stops with what it is and what to do."""
    try:
        ck = torch.load(path, map_location="cpu")
    except Exception as e:        # torch.load raises what the unpickler or the zip reader raise
        if safetensors_io.is_safetensors(path):
            fail("--resume %s is a weights file, not a training checkpoint: start a new run from it "
                 "with --init %s (and another --out)" % (path, path))
        fail("--resume %s is not a training checkpoint of train/train.py (%s: %s)"
             % (path, type(e).__name__, first_line(e)))
    if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
        what = ck.get("format") if isinstance(ck, dict) else None
        fail("--resume %s is not a training checkpoint of train/train.py (%s)%s" % (
            path, CKPT_FORMAT, "; it is %s (train/finetune_c.py train --resume resumes it)" % what
            if what == "vaefarm-finetune-c-v1" else ""))
    return ck


def load_net_file(path, opt, torch_advice, prog="train"):
    """OPT FILE, a vaefarm weights file -> the network it holds; a PyTorch file stops with
    torch_advice (how to make a weights file of it), anything else with what it is."""
    from export import load_model
    try:
        return load_model(path)
    except safetensors_io.SafetensorsError as e:
        if torch_file(path):
            fail("%s %s is a PyTorch file (torch.save), not a vaefarm weights file: %s"
                 % (opt, path, torch_advice), prog)
        fail("%s %s: not a vaefarm weights file (%s)" % (opt, path, e), prog)
    except (ValueError, RuntimeError, OSError) as e:
        fail("%s %s: %s" % (opt, path, first_line(e)), prog)


def load_init(path):
    """--init FILE -> the network it holds; a .pth or anything else stops with what to do."""
    return load_net_file(path, "--init", "convert a torchvision ResNet-50 with "
                         "train/convert_resnet.py first, or export a train.py checkpoint with "
                         "train/export.py --from-checkpoint")


def same_config(out, config):
    """Whether OUT/config.json records this run's configuration (its "config")."""
    try:
        with open(os.path.join(out, "config.json")) as fp:
            return json.load(fp).get("config") == json.loads(json.dumps(config))
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out, resume, prog="train", restart=None):
    """A new run starts in an OUT without RUN_FILES; a resume continues in the resumed checkpoint's
    own OUT or in a fresh one, never over another run's files. restart (--resume auto without a
    last.pt): this run's configuration; an OUT whose config.json records the same one holds this
    very run, stopped before its first checkpoint, and it starts over there."""
    held = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
    last = os.path.join(out, "last.pt")
    if resume is None:
        if "last.pt" in held:
            fail("%s exists: continue it with --resume %s (or --resume auto), or pick another --out"
                 % (last, last), prog)
        if held and restart is not None and same_config(out, restart):
            return
        if held:
            fail("%s holds %s of an earlier run (no last.pt to resume): pick another --out, or delete "
                 "them to start a new run there" % (out, ", ".join(held)), prog)
    elif "last.pt" in held and not os.path.samefile(resume, last):
        fail("--out %s holds another checkpoint (its last.pt), not the --resume %s: the run would "
             "overwrite it, its log.jsonl and config.json. Resume into the checkpoint's own folder or "
             "into an --out without them (to go back to an older checkpoint of that run in its folder, "
             "move last.pt away first)" % (out, resume), prog)
    elif held and not os.path.samefile(os.path.dirname(os.path.abspath(resume)), out):
        fail("--out %s holds %s of another run: the resume of %s would mix its log into them; pick "
             "another --out, or delete them" % (out, ", ".join(held), resume), prog)


def lock_out(out, prog="train"):
    """OUT/train.lock, held (flock) while a run writes into OUT: -> its descriptor (close it to let
    go). A second run into the same OUT is refused, naming the first one's process."""
    path = os.path.join(out, "train.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        fail("cannot write in --out %s (%s)" % (out, e.strerror), prog)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            fail("cannot lock %s (%s): --out must be on a file system with locks (not every NFS "
                 "mount has them)" % (path, e.strerror), prog)
        pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        fail("%s is in use by another run of train.py or finetune_c.py (process %s holds %s): wait "
             "for it to end (or stop it), or pick another --out" % (out, pid, path), prog)
    os.ftruncate(fd, 0)
    os.write(fd, b"%d\n" % os.getpid())
    return fd


def remove_stale_tmp(out, prog="train"):
    """The temporary files of a run killed while writing (the file each would replace is intact)."""
    for f in sorted(os.listdir(out)):
        if f in ("last.pt.tmp", "log.jsonl.tmp", "config.json.tmp") or (
                f.startswith("step") and f.endswith(".pt.tmp")):
            os.remove(os.path.join(out, f))
            print("%s: removed %s (left by a run stopped while writing it)" % (prog, os.path.join(out, f)),
                  file=sys.stderr)


def write_json_atomic(path, obj):
    with open(path + ".tmp", "w") as fp:
        json.dump(obj, fp, indent=1)
        fp.flush()
        os.fsync(fp.fileno())
    os.replace(path + ".tmp", path)


class Run:
    """Process-wide state: device, distributed rank, stop requests."""

    def __init__(self, args):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = args.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev == "cuda" and self.world > 1:
            dev = "cuda:%d" % self.local
        self.device = torch.device(dev)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        else:
            torch.set_num_threads(args.threads)
        if self.world > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.stop_signal = 0
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(s, self._on_signal)

    def _on_signal(self, signum, frame):
        if self.stop_signal:             # a second signal: leave now
            raise KeyboardInterrupt
        self.stop_signal = signum
        print("train: signal %d: stopping after this step (checkpoint first)" % signum, file=sys.stderr, flush=True)

    def any(self, flag):
        """True on every rank if flag is true on any."""
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item() > 0

    def mean(self, vals):
        if self.world == 1:
            return vals
        t = torch.stack([v.detach().float() for v in vals])
        dist.all_reduce(t)
        return list(t / self.world)

    def barrier(self):
        if self.world > 1:
            dist.barrier()


def lr_at(step, base, warmup, cosine_to):
    f = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if cosine_to and step > warmup:
        p = min(1.0, (step - warmup) / max(1, cosine_to - warmup))
        f *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))
    return base * f


def frozen_modules(cfg):
    names = [m.strip() for m in (cfg["freeze"] or "").split(",") if m.strip()]
    bad = [m for m in names if m not in MODULES]
    if bad:
        raise SystemExit("train: --freeze %s: no module %s (modules: %s)" % (cfg["freeze"], ", ".join(bad),
                                                                          ", ".join(MODULES)))
    if set(names) == set(MODULES):
        raise SystemExit("train: --freeze %s leaves nothing to train" % cfg["freeze"])
    return sorted(set(names), key=MODULES.index)


def param_groups(net, cfg):
    """4 groups: F / A+C, each with and without weight decay (decay on conv weights only); a
    frozen module's parameters (requires_grad False) are in none."""
    groups = []
    for name, lr in (("F", cfg["lr_f"] if cfg["lr_f"] is not None else cfg["lr"]), ("AC", cfg["lr"])):
        mods = [net.F] if name == "F" else [net.A, net.C]
        decay, no = [], []
        for m in mods:
            for pn, p in m.named_parameters():
                if p.requires_grad:
                    (decay if p.dim() == 4 else no).append(p)
        groups.append({"params": decay, "weight_decay": cfg["wd"], "base_lr": lr, "name": name + ".decay"})
        groups.append({"params": no, "weight_decay": 0.0, "base_lr": lr, "name": name + ".nodecay"})
    return groups


def rng_state():
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st):
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def slim_optimizer_state(opt):
    """AdamW's state_dict without exp_avg where β1 = 0: there exp_avg is overwritten by the
    gradient (exp_avg·0 + g, exactly g) before it is read, so dropping it changes nothing and
    keeps a tiny checkpoint under 20 MB (model + exp_avg_sq)."""
    sd = opt.state_dict()
    state = {}
    for g in sd["param_groups"]:
        for i in g["params"]:
            st = dict(sd["state"].get(i, {}))
            if g["betas"][0] == 0.0 and "exp_avg" in st:
                st["exp_avg"] = None
            if st:
                state[i] = st
    return {"state": state, "param_groups": sd["param_groups"]}


def load_optimizer_state(opt, sd):
    params = [p for g in opt.param_groups for p in g["params"]]
    state = {}
    for i, st in sd["state"].items():
        st = dict(st)
        if st.get("exp_avg", 0) is None:
            st["exp_avg"] = torch.zeros_like(params[int(i)], memory_format=torch.preserve_format)
        state[i] = st
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


def check_finite_weights(state, step, prog="train"):
    """Refuse to checkpoint weights a diverged step made non-finite: the last checkpoint, written
    before, is what a resume (with a lower --lr) should start from."""
    bad = [k for k, v in state.items() if torch.is_floating_point(v) and not torch.isfinite(v).all()]
    if bad:
        fail("step %d: %d tensor%s of the weights hold NaN or inf (%s%s): the training diverged; "
             "not checkpointed, so the last checkpoint stands: resume from it with a lower --lr"
             % (step, len(bad), "" if len(bad) == 1 else "s", ", ".join(bad[:3]),
                ", ..." if len(bad) > 3 else ""), prog)


def save_torch_atomic(obj, path, prog="train"):
    """torch.save of obj to PATH whole: serialised in memory first (torch's file writer aborts
    the process when the disk fills), written to PATH.tmp, synced, renamed; on a write error the
    .tmp is removed and the old PATH stands, with one line of error."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as fp:
            fp.write(buf.getbuffer())
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        fail("writing %s: %s (the previous file, if any, is unchanged): make room, or give another "
             "--out" % (path, e.strerror or e), prog)


def save_checkpoint(path, net, opt, step, cfg, data_id, train_seconds, world=1):
    model = net.state_dict()
    check_finite_weights(model, step)
    ck = {"format": CKPT_FORMAT, "arch": net.arch, "model": model,
          "optimizer": slim_optimizer_state(opt), "step": step, "config": cfg, "rng": rng_state(),
          "data_cursor": {"step": step, "seed": cfg["seed"], "kind": "pure function of (seed, step, rank)"},
          "data": data_id, "world": world, "train_seconds": train_seconds, "torch": torch.__version__}
    save_torch_atomic(ck, path)


# PyTorch's words for an input too small for a layer: the only first-step errors --size explains
def checkpoint(run, main0, paths, net, opt, step, cfg, data_id, train_seconds):
    """Rank 0 writes the checkpoints; every rank learns whether it could (weights gone
    non-finite, a full disk) and stops with it, rather than wait for rank 0 at the next
    collective."""
    why = None
    if main0:
        try:
            for p in paths:
                save_checkpoint(p, net, opt, step, cfg, data_id, train_seconds, run.world)
        except SystemExit as e:
            why = str(e.code)
    if run.any(why is not None):
        raise SystemExit(why or "train: rank 0 could not write the checkpoint (it says why)")


def data_diff(saved, now):
    """What differs between a checkpoint's data identity and this run's: the keys both have, but
    the cache's folder (root); synthetic against a cache; package versions by name."""
    if bool(saved.get("synthetic")) != bool(now.get("synthetic")):
        name = lambda d: "the synthetic set" if d.get("synthetic") else "the cache %s" % d.get("root")
        return ["%s, now %s" % (name(saved), name(now))]
    out = []
    for k in sorted(set(saved) & set(now) - {"root", "packages"}):
        if saved[k] != now[k]:
            out.append("%s %s, now %s" % (k, saved[k], now[k]))
    p0, p1 = saved.get("packages"), now.get("packages")
    if isinstance(p0, dict) and isinstance(p1, dict) and p0 != p1:
        names = sorted(k for k in set(p0) | set(p1) if p0.get(k) != p1.get(k))
        out.append("packages %s" % ", ".join("%s %s -> %s" % (n, p0.get(n, "none"), p1.get(n, "none"))
                                             for n in names[:4]) + (" ..." if len(names) > 4 else ""))
    return out


def truncate_log(path, step):
    """Keep the log lines of steps < step (those after the checkpoint are done again)."""
    if not os.path.exists(path):
        return
    with open(path) as fp:
        lines = [ln for ln in fp if ln.strip()]
    keep = []
    for ln in lines:
        try:
            if json.loads(ln)["step"] < step:
                keep.append(ln)
        except (ValueError, KeyError):
            pass
    with open(path + ".tmp", "w") as fp:
        fp.writelines(keep)
    os.replace(path + ".tmp", path)


def resolve_arch(args, cfg, ck, resume, main0):
    """-> (the architecture to train, the --init network or None); sets cfg["arch"] for a new run.
    A resume trains the checkpoint's own architecture unless --arch asks for another, which is
    refused (the weights and optimizer state are the checkpoint's); a new run from --init trains
    --arch (tiny by default; 'init': the file's own), which must agree with the file's but for what
    has no weights."""
    if ck is not None:
        trained = dict(ck["arch"])
        try:
            get_arch(trained)
        except ArchError as e:
            fail("%s: the architecture it holds is not valid here (%s)" % (resume, e))
        if args.arch is None:
            if "upsample" not in trained:     # saved before the key: the preset's (not trained)
                trained["upsample"] = get_arch(cfg["arch"] if isinstance(cfg["arch"], str)
                                               and cfg["arch"] in PRESETS else "tiny")["upsample"]
            arch = get_arch(trained)
            note = ""
            if isinstance(cfg["arch"], str) and cfg["arch"] in PRESETS:
                d = arch_diff(arch, get_arch(cfg["arch"]))
                if d:
                    note = "; the %r preset differs now, in %s" % (cfg["arch"], ", ".join(d))
            if main0:
                print("train: %s's own architecture (%s, as it was trained%s)" % (resume, arch["name"], note),
                      file=sys.stderr)
            return arch, None
        arch = load_arch(args.arch)
        # upsample (post-processing, no weights, not trained) is the one asked now, whatever the
        # checkpoint was saved with (older checkpoints lack it, and C.residual)
        d = arch_diff(get_arch(dict(trained, upsample=arch["upsample"])), arch)
        if d:
            fail("%s was trained as %s; the --arch %s asked differs from it in %s: resume without "
                 "--arch (the checkpoint's own), or start a new run with --init from its export"
                 % (resume, json.dumps(ck["arch"]), args.arch, ", ".join(d)))
        return arch, None        # cfg["arch"]: the checkpoint's (the same architecture)
    if not cfg["init"]:
        if args.arch == "init":
            fail("--arch init is --init's own architecture: give --init FILE")
        cfg["arch"] = args.arch or "tiny"
        return load_arch(cfg["arch"]), None
    src = load_init(cfg["init"])
    if args.arch == "init":         # the file's own
        cfg["arch"] = src.arch
        if main0:
            print("train: --init %s's own architecture (%s)" % (cfg["init"], src.arch["name"]), file=sys.stderr)
        return get_arch(src.arch), src
    # the tiny preset unless --arch is given, as always (the documented stages and ablations)
    cfg["arch"] = args.arch or "tiny"
    arch = load_arch(cfg["arch"])
    # the differences allowed, none of which has weights: the name, a direct C becoming residual
    # (the reverse has no meaning: a residual C.out is a correction of the warp, not colours),
    # A's temperature and refinement, and the upsampling (post-processing); with --fresh-c, C's
    # architecture is the one asked: none of its weights come from the file
    same = dict(src.arch, name=arch["name"],
                C=arch["C"] if cfg["fresh_c"] else dict(src.arch["C"], residual=arch["C"]["residual"]),
                upsample=arch["upsample"],
                A=dict(arch["A"], adapter=src.arch["A"]["adapter"], res_blocks=src.arch["A"]["res_blocks"]))
    d = arch_diff(same, arch)
    if src.arch["C"]["residual"] and not arch["C"]["residual"] and not cfg["fresh_c"]:
        d.append("C.residual (a residual C's output is a correction of the warp, not colours)")
    if d:
        fail("--init %s (a %r network) is not the --arch asked (%s%s): they differ in %s; give "
             "--arch init to train the file's own" % (cfg["init"], src.arch["name"], cfg["arch"],
                                                      "" if args.arch else ", the default", ", ".join(d)))
    return arch, src


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    if args.out is None:
        args.out = (os.path.dirname(args.resume) or ".") if args.resume and args.resume != "auto" else DEFAULT_OUT
    rank = int(os.environ.get("RANK", "0"))
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        fail("--out %s is a file, not a folder: give a folder for last.pt, log.jsonl and config.json"
             % args.out)
    last = os.path.join(args.out, "last.pt")
    resume = args.resume
    if resume == "auto":
        resume = last if os.path.exists(last) else None
    ck = load_resume(resume) if resume else None
    cfg = dict(SHAPING)
    if ck is not None:
        cfg.update(ck["config"])
    for k in SHAPING:
        v = getattr(args, k)
        if v is None or k == "arch":      # the architecture: resolve_arch
            continue
        if k == "freeze":     # one spelling of a set: 'A, F' is 'F,A'
            v = ",".join(frozen_modules({"freeze": v}))
        if k == "weights":
            parse_weights(v)
        if ck is not None and v != cfg[k] and k in ("freeze", "fresh_c"):
            # the optimizer's state is per trained parameter, and a fresh C was made at the start
            raise SystemExit("train: --%s %r differs from the checkpoint's %r: start a new run (with "
                             "--init from its export) instead" % (k.replace("_", "-"), v, cfg[k]))
        if ck is not None and v != cfg[k] and rank == 0:
            print("train: warning: --%s %r overrides the checkpoint's %r: the continuation is not exact"
                  % (k.replace("_", "-"), v, cfg[k]), file=sys.stderr)
        cfg[k] = v
    check_config(cfg)
    cfg["size"] = list(cfg["size"])
    weights = parse_weights(cfg["weights"])
    if cfg["fresh_c"] and not cfg["init"]:
        raise SystemExit("train: --fresh-c needs --init (the file the rest of the model comes from)")
    arch, src = resolve_arch(args, cfg, ck, resume, rank == 0)
    frozen_modules(cfg)

    # OUT: rank 0 alone writes into it, under OUT/train.lock against another run, and only after
    # every rank has checked it; a refusal on any rank stops every rank (none waits for the others)
    run = Run(args)
    lock = refusal = None
    try:
        if rank == 0:
            try:
                os.makedirs(args.out, exist_ok=True)
            except OSError as e:
                fail("cannot make --out %s (%s)" % (args.out, e.strerror))
            lock = lock_out(args.out)
            remove_stale_tmp(args.out)
        # --resume auto with no last.pt: the same command after a stop before the first checkpoint
        check_out(args.out, resume, restart=cfg if args.resume == "auto" else None)
    except SystemExit as e:
        refusal = e
    try:
        if run.any(refusal is not None):
            if refusal is None:
                refusal = SystemExit("train: rank %d: stopped, another rank refused --out %s (its "
                                     "message)" % (rank, args.out))
            if run.world > 1:
                # leave without the interpreter's teardown: gloo's threads, their peer gone,
                # could abort it ("terminate called without an active exception", exit 134)
                print(refusal.code if isinstance(refusal.code, str) else "train: stopped",
                      file=sys.stderr, flush=True)
                sys.stdout.flush()
                os._exit(refusal.code if isinstance(refusal.code, int) else 1)
            raise refusal
        loaded = {"ck": ck, "src": src}      # train() lets go of them once used
        del ck, src
        return train(args, run, cfg, weights, arch, loaded, resume)
    finally:
        if lock is not None:
            os.close(lock)


def train(args, run, cfg, weights, arch, loaded, resume):
    ck, src = loaded.pop("ck"), loaded.pop("src")
    t_start = time.time()
    main0 = run.rank == 0
    last = os.path.join(args.out, "last.pt")
    log_path = os.path.join(args.out, "log.jsonl")

    # model
    net = build(arch)
    ck_data, ck_world = None, None
    if ck is not None:
        load_weights(net, ck["model"])
        ck_data, ck_world = ck.get("data"), ck.get("world")
    elif src is not None:
        if cfg["fresh_c"]:
            seeded_init(net, cfg["seed"])
            missing, unexpected = net.load_state_dict(
                {k: v for k, v in src.state_dict().items() if not k.startswith("C.")}, strict=False)
            if unexpected or any(not k.startswith("C.") for k in missing):
                raise SystemExit("train: --init %s: tensors %s do not fit" % (cfg["init"], unexpected + missing))
            if main0:
                print("train: --init %s with a fresh C (seeded init, seed %d)" % (cfg["init"], cfg["seed"]),
                      file=sys.stderr)
        else:
            net.load_state_dict(src.state_dict())
            if net.arch["C"]["residual"] and not src.arch["C"]["residual"]:
                zero_colour_out(net)
                if main0:
                    print("train: --init %s predicted ab directly; C.out is zeroed so this residual "
                          "model starts as its warp W^ab" % cfg["init"], file=sys.stderr)
    else:
        seeded_init(net, cfg["seed"])
        if arch["name"] == "full" and main0:
            print("train: warning: full with a random F (no --init): the paper starts F from ImageNet "
                  "weights (train/convert_resnet.py)", file=sys.stderr)
    del src
    for m in frozen_modules(cfg):
        getattr(net, m).requires_grad_(False)
    net.to(run.device)
    step_mod = TrainStep(net, weights).train()
    model = step_mod
    if run.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            step_mod, device_ids=[run.device.index] if run.device.type == "cuda" else None,
            broadcast_buffers=False)
    opt = torch.optim.AdamW(param_groups(net, cfg), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]),
                            eps=1e-8)
    step = 0
    train_seconds = 0.0
    if ck is not None:
        load_optimizer_state(opt, ck["optimizer"])
        # the state's groups carry the checkpoint's settings: this run's (the same, or what
        # --lr, --lr-f, --wd, --beta1, --beta2 gave, with the warning above) replace them
        for g, mine in zip(opt.param_groups, param_groups(net, cfg)):
            g["base_lr"], g["weight_decay"] = mine["base_lr"], mine["weight_decay"]
            g["betas"] = (cfg["beta1"], cfg["beta2"])
        step = int(ck["step"])
        train_seconds = float(ck.get("train_seconds", 0.0))
        set_rng_state(ck["rng"])
    del ck

    # data
    if args.synthetic_data:
        cache = Cache.synthetic(device=run.device)
        data_id = {"synthetic": True}
    else:
        if not os.path.exists(os.path.join(args.data, "index.json")):
            raise SystemExit("train: no training cache in %s (run train/fetch_data.sh)" % args.data)
        try:
            cache = Cache(args.data, device=run.device)
        except (OSError, ValueError, KeyError) as e:   # as finetune_c.py prepare says it
            raise SystemExit("train: the training cache in %s cannot be read (%s: %s): build it "
                             "again (VF_REBUILD=1 train/fetch_data.sh)" % (
                                 args.data, type(e).__name__, first_line(e)))
        if cache.index.get("role") == "validation":
            raise SystemExit("train: %s is a validation cache (make_dataset.py --validation): train on "
                             "the training cache (train/fetch_data.sh)" % args.data)
        data_id = {"root": args.data, "photos": int(cache.photos.shape[0]), "clip_frames": int(cache.frames.shape[0]),
                   "canvas": list(cache.canvas)}
        if isinstance(cache.index.get("packages"), dict):     # the package versions it was made from
            data_id["packages"] = cache.index["packages"]
    dcfg = DataConfig()
    H, W = cfg["size"]
    if main0 and ck_data is not None:
        # the batches are a function of (seed, step, rank) and the data: other data, or another
        # number of ranks (each draws its own), is another run from here on. The cache's folder
        # (root) may differ: train/fetch_data.sh rebuilds the same cache elsewhere
        d = data_diff(ck_data, data_id)
        if d:
            print("train: warning: the data differ from the checkpoint's (%s): the continuation is not "
                  "exact" % "; ".join(d), file=sys.stderr)
    if main0 and ck_world is not None and ck_world != run.world:
        print("train: warning: %d process%s where the checkpoint's run had %d (each rank draws its own "
              "batches; global batch %d -> %d): the continuation is not exact"
              % (run.world, "es" if run.world > 1 else "", ck_world, ck_world * cfg["batch"],
                 run.world * cfg["batch"]), file=sys.stderr)
    if main0:
        truncate_log(log_path, step)
        print("train: %s, %s on %s (world %d), batch %d×%d at %dx%d, step %d -> %d, data %s" % (
            arch["name"], "resumed from %s" % resume if resume else "new run", run.device, run.world,
            cfg["batch"], run.world, H, W, step, args.steps,
            {k: (v if k != "packages" else "%d" % len(v)) for k, v in data_id.items()}), flush=True)
    logf = open(log_path, "a") if main0 else None
    if main0:
        write_json_atomic(os.path.join(args.out, "config.json"),
                          {"config": cfg, "weights": weights, "data": data_id, "data_config": dcfg.as_dict(),
                           "world": run.world, "device": str(run.device)})

    why = None
    first_step = step
    t_prev = time.time()
    c_prev = time.process_time()
    while True:
        if step >= args.steps:
            why = "reached %d steps" % args.steps
        elif args.max_minutes and time.time() - t_start >= args.max_minutes * 60:
            why = "--max-minutes %g" % args.max_minutes
        elif run.stop_signal:
            why = "signal %d" % run.stop_signal
        if run.any(why is not None):
            why = why or "another rank stopped"
            break
        bstep = 0 if cfg["overfit"] else step
        b = make_batch(cache, cfg["batch"], (H, W), cfg["seed"], bstep, run.rank, dcfg, run.device)
        b.pop("kind")
        torch.manual_seed(batch_seed(cfg["seed"] + 7919, step, run.rank))   # the VAE's ε
        for g in opt.param_groups:
            g["lr"] = lr_at(step, g["base_lr"], cfg["warmup"], cfg["cosine_to"])
        if step == first_step:
            try:   # a size too small for the architecture fails here, deep in a layer
                t = model(b)
            except (RuntimeError, ValueError) as e:
                if not any(m in str(e) for m in TOO_SMALL):
                    raise
                fail("--size %d %d: the first step fails at this size (%s): the architecture's "
                     "reflect padding and normalisation need larger frames at its coarsest level "
                     "(tiny: 40 40 and more); give a larger --size" % (H, W, first_line(e)))
        else:
            t = model(b)
        opt.zero_grad(set_to_none=True)
        t["total"].backward()
        if cfg["clip"] and cfg["clip"] > 0:
            gn = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg["clip"])
        else:
            gn = torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in net.parameters() if p.grad is not None))
        if not torch.isfinite(gn):
            raise SystemExit("train: step %d: gradient norm %s (losses %s)" % (
                step, gn.item(), {k: float(v) for k, v in t.items()}))
        opt.step()
        step += 1
        now = time.time()
        dt = now - t_prev
        t_prev = now
        c_now = time.process_time()
        dc, c_prev = c_now - c_prev, c_now
        train_seconds += dt
        keys = list(TERMS) + ["total", "ab_err", "warp_err"]
        vals = run.mean([t[k] for k in keys] + [gn])
        if main0:
            rec = {"step": step - 1, "lr": opt.param_groups[2]["lr"]}
            rec.update({k: round(float(v), 6) for k, v in zip(keys, vals[:-1])})
            rec.update({"grad_norm": round(float(vals[-1]), 4), "sec": round(dt, 4), "cpu_sec": round(dc, 4),
                        "train_seconds": round(train_seconds, 2)})
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            if args.print_every and (step % args.print_every == 0 or step == 1):
                print("step %6d  total %9.3f  %s  %.2f s/step" % (
                    step, rec["total"], " ".join("%s %.4g" % (k, rec[k]) for k in TERMS), dt), flush=True)
        if step % args.ckpt_every == 0 or (args.keep_every and step % args.keep_every == 0):
            paths = [last]
            if args.keep_every and step % args.keep_every == 0:
                paths.append(os.path.join(args.out, "step%07d.pt" % step))
            checkpoint(run, main0, paths, net, opt, step, cfg, data_id, train_seconds)
            run.barrier()
    checkpoint(run, main0, [last], net, opt, step, cfg, data_id, train_seconds)
    if main0:
        logf.close()
        print("train: stopped at step %d (%s); checkpoint %s (%.1f MB); %.0f s of training in all" % (
            step, why, last, os.path.getsize(last) / 1e6, train_seconds), flush=True)
    run.barrier()
    if run.world > 1:
        dist.destroy_process_group()
    if run.stop_signal:
        return 128 + run.stop_signal
    return 0


if __name__ == "__main__":
    sys.exit(main())
