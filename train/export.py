#!/usr/bin/python3
"""Write a vaefarm weights file (f32 safetensors with the architecture in __metadata__).

    export.py --arch tiny|full --seed S --out model.safetensors [--from-checkpoint CKPT]

Without --from-checkpoint the weights are the seeded random init (vaefarm_ref/init.py); with it,
they come from a training checkpoint: a .pt/.pth holding a state_dict (or {"model"|"state_dict":
state_dict, optionally "arch": arch dict}) or a vaefarm .safetensors file.
Prints the parameter count per module (F, A, C)."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import safetensors_io  # noqa: E402
from vaefarm_ref import build, load_weights, state_dict_f32  # noqa: E402
from vaefarm_ref.arch import arch_json, get_arch, parse_arch  # noqa: E402
from vaefarm_ref.init import init_weights  # noqa: E402


def param_counts(net):
    """Learnable parameters per module (BN running statistics are not counted)."""
    out = {m: sum(p.numel() for p in getattr(net, m).parameters()) for m in ("F", "A", "C")}
    out["total"] = out["F"] + out["A"] + out["C"]
    return out


def print_counts(net, fp=sys.stdout):
    c = param_counts(net)
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


def load_checkpoint(path, arch):
    """-> (arch, state dict) from a .pt/.pth checkpoint or a .safetensors file."""
    if path.endswith(".safetensors"):
        tensors, meta = safetensors_io.load(path)
        if "vaefarm" in meta:
            arch = parse_arch(meta["vaefarm"])
        return arch, {k: v.float() for k, v in tensors.items()}
    ck = torch.load(path, map_location="cpu")
    if isinstance(ck, dict) and "arch" in ck:
        # a checkpoint saved before the upsample key: the upsampling asked (arch), which has no
        # weights and is not trained; a weights file's own metadata (above) is kept as it is
        up = {} if "upsample" in ck["arch"] or arch is None else {"upsample": get_arch(arch)["upsample"]}
        arch = get_arch(dict(ck["arch"], **up))
    for key in ("model", "state_dict"):
        if isinstance(ck, dict) and key in ck and isinstance(ck[key], dict):
            ck = ck[key]
            break
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in ck.items()}
    return arch, sd


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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="tiny", help="tiny | full | a JSON file with the arch dict")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--from-checkpoint", dest="ckpt")
    args = ap.parse_args()
    arch = args.arch
    if arch not in ("tiny", "full"):
        with open(arch) as fp:
            arch = json.load(fp)
    net = make_model(arch, args.seed, args.ckpt)
    save_weights(args.out, net, describe_checkpoint(args.ckpt) if args.ckpt else "random init, seed %d" % args.seed)
    print_counts(net)
    print("wrote %s (%d tensors, %.1f MB)" % (args.out, len(state_dict_f32(net)),
                                              os.path.getsize(args.out) / 1e6))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
