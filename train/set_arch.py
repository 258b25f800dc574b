#!/usr/bin/python3
"""Set architecture keys of a weights file, keeping its tensors.

    train/set_arch.py IN.safetensors OUT.safetensors KEY=VALUE [KEY=VALUE ...]

KEY is a dotted path into the file's architecture (__metadata__["vaefarm"], docs/NETWORK.md
"Weights file"), e.g. A.refine.predict; VALUE is JSON (3, 0.005, true, [144, 256]) or `none`,
which removes the key. For the keys that change what runs around the weights and not the
weights themselves (A.refine's windows, C.gate_motion, inference_size, upsample): the result is
checked as any file is (vaefarm_ref/arch.py parse_arch: an unknown key or a value out of range
is refused, naming it), the tensors are written as they were, and __metadata__["vaefarm_weights"]
gains what was changed. OUT appears only when complete; IN is never written (OUT may not be IN).
Needs Debian's /usr/bin/python3 (numpy)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402
from cli_io import out_file_error  # noqa: E402
from vaefarm_ref.arch import ArchError, arch_json, parse_arch  # noqa: E402


def set_key(arch, path, value):
    """arch with the dotted key path set to value (None: removed); its parents must exist."""
    *parents, last = path.split(".")
    d = arch
    for i, k in enumerate(parents):
        if not isinstance(d, dict) or k not in d:
            raise KeyError("%s: the architecture has no %s" % (path, ".".join(parents[:i + 1])))
        d = d[k]
    if not isinstance(d, dict):
        raise KeyError("%s: %s is not an object" % (path, ".".join(parents)))
    if value is None:
        d.pop(last, None)
    else:
        d[last] = value


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        sys.exit(__doc__)
    src, dst = argv[0], argv[1]
    why = out_file_error("OUT", dst, (("IN", src),))
    if why:
        sys.exit("set_arch: " + why)
    try:
        tensors, meta = safetensors_io.load(src, as_torch=False)
    except (OSError, safetensors_io.SafetensorsError) as e:
        sys.exit("set_arch: %s" % e)
    if "vaefarm" not in meta:
        sys.exit("set_arch: %s has no vaefarm architecture in its __metadata__" % src)
    arch = json.loads(meta["vaefarm"])
    changes = []
    for a in argv[2:]:
        key, text = a.split("=", 1)
        try:
            value = None if text == "none" else json.loads(text)
        except ValueError:
            sys.exit("set_arch: %s: %r is not JSON (a number, true/false, a list) nor none" % (key, text))
        try:
            set_key(arch, key, value)
        except KeyError as e:
            sys.exit("set_arch: %s" % e.args[0])
        changes.append("%s=%s" % (key, text))
    try:
        meta["vaefarm"] = arch_json(arch)
    except ArchError as e:
        sys.exit("set_arch: the new architecture is refused: %s" % e)
    meta["vaefarm_weights"] = "%s; arch %s (train/set_arch.py)" % (
        meta.get("vaefarm_weights", "no description"), ", ".join(changes))
    safetensors_io.save(dst, tensors, meta)
    print("set_arch: wrote %s (%s)" % (dst, ", ".join(changes)))


if __name__ == "__main__":
    main(sys.argv[1:])
