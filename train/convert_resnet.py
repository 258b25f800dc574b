#!/usr/bin/python3
"""Put a torchvision ResNet-50 state dict into a FULL vaefarm weights file as its F.* tensors.

    convert_resnet.py RESNET50.pth --out full.safetensors [--into EXISTING.safetensors] [--seed S]

RESNET50.pth: a torchvision resnet50 state dict (torch.save(model.state_dict())), loaded with
torch.load(map_location='cpu'); a {"state_dict"|"model": ...} wrapper and a "module." prefix are
accepted. fc.* and num_batches_tracked are dropped; conv weights and BN weight/bias/running_mean/
running_var go to F.<name>. Every F tensor must be supplied with the same shape, and nothing else:
a mismatch is refused with a message naming the tensor.
The other tensors (A.*, C.*) come from --into (an existing FULL file; it may be the same path as
--out) or, without it, from the seeded random init (--seed, default 0). The file's
__metadata__["vaefarm_weights"] says so ("random init, seed 0; F from resnet50-….pth
(train/convert_resnet.py)"). A file that cannot be read is refused in one line (exit status 1)."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import safetensors_io  # noqa: E402
from cli_io import first_line, out_file_error  # noqa: E402
from export import load_model, make_model, print_counts, save_weights  # noqa: E402
from vaefarm_ref.arch import FULL  # noqa: E402


class ConvertError(ValueError):
    pass


def resnet_to_F(sd, net):
    """Map a torchvision resnet state dict onto net.F's names; check names and shapes."""
    if isinstance(sd, dict):
        for key in ("state_dict", "model"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConvertError("not a state dict of tensors")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[7:]: v for k, v in sd.items()}
    src = {k: v for k, v in sd.items()
           if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    own = {k[2:]: v for k, v in net.state_dict().items()
           if k.startswith("F.") and not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(src))
    unknown = sorted(set(src) - set(own))
    if missing or unknown:
        raise ConvertError("the state dict is not a ResNet-50 trunk of this architecture: "
                           "missing %d tensors %s; unexpected %d tensors %s"
                           % (len(missing), missing[:6], len(unknown), unknown[:6]))
    bad = ["%s: %s in the state dict, %s in F" % (k, tuple(src[k].shape), tuple(own[k].shape))
           for k in sorted(own) if tuple(src[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ConvertError("shape mismatch (refusing to convert):\n  " + "\n  ".join(bad))
    return {"F." + k: v.detach().to(torch.float32) for k, v in src.items()}


def load_pth(pth):
    """torch.load(pth), or a ConvertError that says what the file is."""
    if not os.path.isfile(pth):
        raise ConvertError("no such file")
    try:
        return torch.load(pth, map_location="cpu")
    except Exception as e:        # torch.load raises what the unpickler or the zip reader raise
        if safetensors_io.is_safetensors(pth):
            raise ConvertError("a safetensors file, not a PyTorch .pth: give torchvision's "
                               "resnet50-*.pth (torch.save of its state_dict)")
        raise ConvertError("not a PyTorch .pth (torch.load: %s: %s)"
                           % (type(e).__name__, first_line(e)))


def convert(pth, out, into=None, seed=0):
    why = out_file_error("--out", out, (("the .pth", pth), ("--into", into)), "full-imagenet.safetensors")
    if why:
        raise ConvertError(why)
    if into and not os.path.isfile(into):
        raise ConvertError("--into %s: no such file" % into)
    sd = load_pth(pth)
    if into:
        try:
            net = load_model(into)
            base = safetensors_io.load_metadata(into).get("vaefarm_weights") or "from %s" % os.path.basename(into)
        except (ValueError, OSError) as e:
            raise ConvertError("--into %s: not a vaefarm weights file (%s)" % (into, e))
    else:
        net = make_model("full", seed)
        base = "random init, seed %d" % seed
    if net.arch["F"] != FULL["F"]:
        raise ConvertError("%s holds a %r network whose F is %s, not ResNet-50's %s"
                           % (into, net.arch["name"], json.dumps(net.arch["F"]), json.dumps(FULL["F"])))
    ftensors = resnet_to_F(sd, net)
    own = net.state_dict()
    with torch.no_grad():
        for k, v in ftensors.items():
            own[k].copy_(v)
    save_weights(out, net, "%s; F from %s (train/convert_resnet.py)" % (base, os.path.basename(pth)))
    return net, len(ftensors)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pth")
    ap.add_argument("--out", required=True)
    ap.add_argument("--into", help="existing weights file to update (default: random init)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        net, n = convert(args.pth, args.out, args.into, args.seed)
    except ConvertError as e:
        msg = str(e)       # about an option, or about the .pth
        sys.exit("convert_resnet: " + (msg if msg.startswith("--") else "%s: %s" % (args.pth, msg)))
    print("wrote %s: %d F tensors from %s" % (args.out, n, args.pth))
    print_counts(net)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
