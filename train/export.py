#!/usr/bin/python3
"""Write a vaefarm weights file (f32 safetensors with the architecture in __metadata__).

    export.py --arch tiny|full --seed S --out model.safetensors [--from-checkpoint CKPT] [--force]

Without --from-checkpoint the weights are the seeded random init (vaefarm_ref/init.py); with it,
they come from a training checkpoint: a .pt/.pth holding a state_dict (or {"model"|"state_dict":
state_dict, optionally "arch": arch dict}) or a vaefarm .safetensors file. A checkpoint that holds
its architecture (train/train.py's, a weights file) is exported as that architecture: an --arch
that differs from it is refused (leave --arch out; train/set_arch.py changes a file's afterwards);
--arch (default tiny) is for a bare state dict.
A random init is not written over a file that holds trained weights (its metadata's
vaefarm_weights) without --force. Prints the parameter count per module (F, A, C)."""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import safetensors_io  # noqa: E402
from cli_io import first_line, out_file_error  # noqa: E402
from vaefarm_ref import build, load_weights, state_dict_f32  # noqa: E402
from vaefarm_ref.arch import PRESETS, arch_json, get_arch, parse_arch  # noqa: E402
from vaefarm_ref.init import init_weights  # noqa: E402


def param_counts(net):
    """Learnable parameters per module (BN running statistics are not counted)."""
    out = {m: sum(p.numel() for p in getattr(net, m).parameters()) for m in ("F", "A", "C")}
    out["total"] = out["F"] + out["A"] + out["C"]
    return out


def print_counts(net, fp=None):
    c = param_counts(net)
    fp = fp or sys.stdout
    print("parameters (%s): F %s, A %s, C %s, total %s" % (
        net.arch["name"], *("{:,}".format(c[k]) for k in ("F", "A", "C", "total"))), file=fp)
    return c


def save_weights(path, net, weights=None):
    """weights: what the values are, for __metadata__["vaefarm_weights"] (vaefarm reports it);
    e.g. "random init, seed 0" for an untrained file."""
    meta = {"vaefarm": arch_json(net.arch)}
    if weights:
        meta["vaefarm_weights"] = weights
    safetensors_io.save(path, state_dict_f32(net), meta)


def load_model(path):
    """Build the network a weights file describes and load it (eval mode)."""
    tensors, meta = safetensors_io.load(path)
    if "vaefarm" not in meta:
        raise ValueError("%s: no vaefarm key in __metadata__" % path)
    net = build(parse_arch(meta["vaefarm"]))
    load_weights(net, {k: v.float() for k, v in tensors.items()})
    return net


def arch_diff(a, b, prefix=""):
    """The dotted keys (A.refine.subpixel, C.gate, propagate) where two arch dicts differ."""
    keys = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            keys.append(prefix + k)
        elif isinstance(a[k], dict) and isinstance(b[k], dict):
            keys += arch_diff(a[k], b[k], prefix + k + ".")
        elif a[k] != b[k]:
            keys.append(prefix + k)
    return keys


def read_checkpoint(path, arch):
    """-> (arch, state dict, whether the file holds its own architecture) from a .pt/.pth
    checkpoint or a .safetensors file; arch: the one for a file without its own."""
    if path.endswith(".safetensors"):
        tensors, meta = safetensors_io.load(path)
        own = "vaefarm" in meta
        if own:
            arch = parse_arch(meta["vaefarm"])
        return arch, {k: v.float() for k, v in tensors.items()}, own
    ck = torch.load(path, map_location="cpu")
    own = isinstance(ck, dict) and "arch" in ck
    if own:
        # a checkpoint saved before the upsample key: the upsampling asked (arch), which has no
        # weights and is not trained; a weights file's own metadata (above) is kept as it is
        up = {} if "upsample" in ck["arch"] or arch is None else {"upsample": get_arch(arch)["upsample"]}
        arch = get_arch(dict(ck["arch"], **up))
    for key in ("model", "state_dict"):
        if isinstance(ck, dict) and key in ck and isinstance(ck[key], dict):
            ck = ck[key]
            break
    if not isinstance(ck, dict) or not all(isinstance(k, str) for k in ck):
        raise ValueError("holds no state dict (a dict of tensors)")
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in ck.items()}
    return arch, sd, own


def load_checkpoint(path, arch):
    """-> (arch, state dict) from a .pt/.pth checkpoint or a .safetensors file."""
    return read_checkpoint(path, arch)[:2]


def describe_checkpoint(path):
    """__metadata__["vaefarm_weights"] for weights from a checkpoint: a train/train.py checkpoint
    says its step and training time; anything else only its file name."""
    if path.endswith((".pt", ".pth")):
        ck = torch.load(path, map_location="cpu")
        if isinstance(ck, dict) and ck.get("format") == "vaefarm-train-ckpt-v1":
            return "trained by train/train.py: %d steps, %.0f s (checkpoint %s)" % (
                ck["step"], ck.get("train_seconds", 0.0), os.path.basename(path))
    return "from checkpoint %s" % os.path.basename(path)


def make_model(arch, seed, checkpoint=None):
    arch = get_arch(arch)
    if checkpoint:
        arch, sd = load_checkpoint(checkpoint, arch)
        net = build(arch)
        load_weights(net, sd)
        return net
    return init_weights(build(arch), seed)


def fail(msg):
    raise SystemExit("export: " + msg)


def arch_option(spec):
    """--arch: tiny | full | a JSON file -> the validated arch dict (a one-line error otherwise)."""
    if spec in PRESETS:
        return get_arch(spec)
    try:
        with open(spec) as fp:
            return get_arch(json.load(fp))
    except FileNotFoundError:
        fail("--arch %s: not tiny, full or a JSON file of an architecture" % spec)
    except (OSError, ValueError) as e:     # ArchError is a ValueError, as is bad JSON
        fail("--arch %s: not a JSON file of an architecture (%s)" % (spec, e))


def checkpoint_model(path, arch_spec):
    """The network of --from-checkpoint PATH, with one-line errors for a missing or wrong file and
    for an --arch (arch_spec, None when not given) other than the one the file holds."""
    if not os.path.isfile(path):
        fail("--from-checkpoint %s: no such file" % path)
    given = arch_option(arch_spec) if arch_spec is not None else None
    try:
        arch, sd, own = read_checkpoint(path, given if given is not None else "tiny")
    except Exception as e:         # torch.load raises what the unpickler or the zip reader raise
        fail("--from-checkpoint %s: not a checkpoint or a weights file (%s: %s)"
             % (path, type(e).__name__, first_line(e)))
    if own and given is not None and arch_diff(arch, given):
        fail("--from-checkpoint %s holds its own architecture (%s), which the --arch %s asked differs "
             "from in %s: leave --arch out to export the checkpoint's (train/set_arch.py changes a "
             "file's architecture afterwards)" % (path, arch["name"], arch_spec, ", ".join(arch_diff(arch, given))))
    net = build(arch)
    try:
        load_weights(net, sd)
    except (ValueError, RuntimeError) as e:
        hint = ""
        if any(k.startswith(("conv1.", "layer1.")) for k in sd):
            hint = " (a torchvision ResNet? convert it with train/convert_resnet.py)"
        fail("--from-checkpoint %s: its tensors are not the %s network's%s: %s"
             % (path, "checkpoint's" if own else "--arch %s" % (arch_spec or "tiny"), hint,
                first_line(e)[:300]))
    return net


def trained_weights(path):
    """What an existing vaefarm weights file at path says its weights are, when it is not a
    random init ("" for none, a random init, or anything that is not such a file)."""
    try:
        if not os.path.isfile(path) or not safetensors_io.is_safetensors(path):
            return ""
        what = str(safetensors_io.load_metadata(path).get("vaefarm_weights",
                                                           "trained (it does not say how)"))
    except (OSError, ValueError, AttributeError):
        return ""
    if re.fullmatch(r"random init, seed -?\d+", what):   # export.py's own, untouched since
        return ""
    return what if len(what) <= 100 else what[:100] + "…"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", help="tiny | full | a JSON file with the arch dict (default: the "
                    "checkpoint's own, else tiny)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--from-checkpoint", dest="ckpt")
    ap.add_argument("--force", action="store_true",
                    help="write a random init over a file that holds trained weights")
    args = ap.parse_args(argv)
    arch_file = args.arch if args.arch is not None and args.arch not in PRESETS else None
    why = out_file_error("--out", args.out, (("--from-checkpoint", args.ckpt), ("--arch", arch_file)))
    if why:
        fail(why)
    trained = trained_weights(args.out)
    if not args.ckpt and trained and not args.force:
        fail("--out %s holds trained weights (%s): without --from-checkpoint this writes a random "
             "init over them; give another --out (or --force)" % (args.out, trained))
    if args.ckpt:
        net = checkpoint_model(args.ckpt, args.arch)
    else:
        net = init_weights(build(arch_option(args.arch or "tiny")), args.seed)
    try:
        save_weights(args.out, net, describe_checkpoint(args.ckpt) if args.ckpt else "random init, seed %d" % args.seed)
    except OSError as e:
        fail("--out %s: %s" % (args.out, e))
    print_counts(net)
    print("wrote %s (%d tensors, %.1f MB)" % (args.out, len(state_dict_f32(net)),
                                              os.path.getsize(args.out) / 1e6))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
