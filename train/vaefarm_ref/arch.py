"""Architecture description (docs/NETWORK.md, "Weights file"): presets and validation.

The dict is what the weights file's __metadata__["vaefarm"] JSON holds.
"""
import copy
import json
import struct

FORMAT = "vaefarm-net-v1"

TINY = {
    "format": FORMAT, "name": "tiny",
    "F": {"stem": 16, "widths": [16, 32, 64, 128], "blocks": [2, 2, 2, 2]},
    "A": {"adapter": 16, "res_blocks": 3, "tau": 0.005,
          "refine": {"radius": 4, "patch": 5, "h": 0.005, "temporal": 2, "temporal_h": 0.0025,
                     "subpixel": True}},
    "C": {"widths": [16, 32, 64, 128], "enc_convs": [1, 1, 2, 2], "mid": [[2, 2], [1]],
          "latent": 128, "dec_widths": [64, 32, 32], "dec_convs": [1, 1, 1], "residual": True},
    "inference_size": [144, 256],
    "upsample": {"radius": 0, "eps": 0.001},
}

FULL = {
    "format": FORMAT, "name": "full",
    "F": {"stem": 64, "widths": [64, 128, 256, 512], "blocks": [3, 4, 6, 3]},
    "A": {"adapter": 64, "res_blocks": 3, "tau": 0.01},
    "C": {"widths": [64, 128, 256, 512], "enc_convs": [2, 2, 3, 3],
          "mid": [[2, 2, 2], [2, 2, 2], [1, 1, 1]],
          "latent": 512, "dec_widths": [256, 128, 128], "dec_convs": [2, 1, 1]},
    "inference_size": [216, 384],
    "upsample": {"radius": 0, "eps": 0.001},
}

PRESETS = {"tiny": TINY, "full": FULL}
# Post-processing step 1 (docs/NETWORK.md): the guided filter's radius and ε; radius 0 is plain
# bilinear upsampling. Absent from a file: the guided filter (r 2, ε 1e-3) of the files before it.
UPSAMPLE_DEFAULT = {"radius": 2, "eps": 0.001}
UPSAMPLE_MAX_RADIUS = 8


class ArchError(ValueError):
    pass


def _posint(v, where):
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ArchError("%s: expected a positive integer, got %r" % (where, v))
    return v


def _nonnegint(v, where):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ArchError("%s: expected an integer >= 0, got %r" % (where, v))
    return v


def _intlist(v, n, where, check=_posint):
    if not isinstance(v, list) or len(v) != n:
        raise ArchError("%s: expected a list of %d integers, got %r" % (where, n, v))
    return [check(x, "%s[%d]" % (where, i)) for i, x in enumerate(v)]


def _obj(d, key, where):
    if not isinstance(d, dict) or key not in d:
        raise ArchError("%s: missing key %r" % (where, key))
    return d[key]


REFINE_MAX_RADIUS = 7
REFINE_MAX_PATCH = 9
REFINE_MAX_TEMPORAL = 5
REFINE_MAX_PREDICT = 3   # A.refine.predict: the motion-predicted window's radius
MOTION_RADIUS_MAX = 16   # C.gate_motion_radius: the per-pixel motion factor's window, (2r+1)² pixels
GATE_RAMP_MAX = 1000     # C.gate_ramp: frames over which the gate opens after a pass-through
PROPAGATE_MAX_RADIUS = 16   # propagate.radius: block matching's search window, (2r+1)² moves
PROPAGATE_MAX_PATCH = 15    # propagate.patch: the matched window's side (odd)
PROPAGATE_MAX_FRAMES = 16   # len(propagate.shares): frames after a pass-through that take it
PROPAGATE_MAX_CONFIDENCE = 1e6


def _window(d, where, max_radius, max_patch):
    """A matching window's d["radius"] in [1, max_radius] and d["patch"] odd in [1, max_patch]."""
    radius = _posint(d["radius"], where + ".radius")
    patch = _posint(d["patch"], where + ".patch")
    if radius > max_radius:
        raise ArchError("%s.radius: at most %d, got %d" % (where, max_radius, radius))
    if patch % 2 == 0 or patch > max_patch:
        raise ArchError("%s.patch: an odd number up to %d, got %d" % (where, max_patch, patch))
    return radius, patch


def _refine(r):
    """A.refine (NETWORK.md, "A"): the local refinement of the warp at the network's size."""
    if (not isinstance(r, dict)
            or set(r) - {"temporal", "temporal_h", "subpixel", "predict"} != {"radius", "patch", "h"}
            or ("temporal" in r) != ("temporal_h" in r)):
        raise ArchError("A.refine: expected an object with keys radius, patch, h and optionally "
                        "both temporal and temporal_h, subpixel and predict; got %r" % (r,))
    radius, patch = _window(r, "A.refine", REFINE_MAX_RADIUS, REFINE_MAX_PATCH)
    out = {"radius": radius, "patch": patch, "h": _width(r["h"], "A.refine.h")}
    if "temporal" in r:     # 0: off, as when absent
        t = _nonnegint(r["temporal"], "A.refine.temporal")
        if t > REFINE_MAX_TEMPORAL:
            raise ArchError("A.refine.temporal: at most %d, got %d" % (REFINE_MAX_TEMPORAL, t))
        th = _width(r["temporal_h"], "A.refine.temporal_h")
        if t:
            out.update(temporal=t, temporal_h=th)
    if "subpixel" in r:     # the sub-pixel temporal candidate: true or false (absent: false)
        if not isinstance(r["subpixel"], bool):
            raise ArchError("A.refine.subpixel: true or false, got %r" % (r["subpixel"],))
        if r["subpixel"] and "temporal" not in out:
            raise ArchError("A.refine.subpixel: needs the temporal candidates (A.refine.temporal "
                            "> 0), whose costs it reads")
        if r["subpixel"]:
            out["subpixel"] = True
    if "predict" in r:      # the motion-predicted temporal candidates' radius (0 or absent: none)
        p = _nonnegint(r["predict"], "A.refine.predict")
        if p > REFINE_MAX_PREDICT:
            raise ArchError("A.refine.predict: at most %d, got %d" % (REFINE_MAX_PREDICT, p))
        if p and "temporal" not in out:
            raise ArchError("A.refine.predict: needs the temporal candidates (A.refine.temporal "
                            "> 0), whose cheapest displacement it carries to the next frame")
        if p:
            out["predict"] = p
    return out


def _upsample(u):
    if not isinstance(u, dict) or set(u) != {"radius", "eps"}:
        raise ArchError("upsample: expected an object with keys radius and eps; got %r" % (u,))
    r = _nonnegint(u["radius"], "upsample.radius")
    if r > UPSAMPLE_MAX_RADIUS:
        raise ArchError("upsample.radius: at most %d, got %d" % (UPSAMPLE_MAX_RADIUS, r))
    e = u["eps"]
    # in (0, 1) as the C engine's f32 holds it (node/net.c), so that both accept the same files
    if (isinstance(e, bool) or not isinstance(e, (int, float))
            or not 0 < e < 1 or not 0 < struct.unpack("f", struct.pack("f", e))[0] < 1):
        raise ArchError("upsample.eps: expected a number in (0, 1), got %r" % (e,))
    return {"radius": r, "eps": float(e)}


def _propagate(p):
    """propagate (NETWORK.md, post-processing): the film-size carry of a, b into the frames
    right after a reference pass-through. Absent from a file: none (the files before it).
    subpixel (optional, false when absent): the Lucas–Kanade step after the whole-pixel match."""
    keys = {"radius", "patch", "shares", "confidence"}
    if not isinstance(p, dict) or not keys <= set(p) <= keys | {"subpixel"}:
        raise ArchError("propagate: expected an object with keys radius, patch, shares, "
                        "confidence and optionally subpixel; got %r" % (p,))
    sub = p.get("subpixel", False)
    if not isinstance(sub, bool):
        raise ArchError("propagate.subpixel: expected true or false, got %r" % (sub,))
    radius, patch = _window(p, "propagate", PROPAGATE_MAX_RADIUS, PROPAGATE_MAX_PATCH)
    sh = p["shares"]
    if (not isinstance(sh, list) or not 1 <= len(sh) <= PROPAGATE_MAX_FRAMES
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= 1
                   for x in sh)):
        raise ArchError("propagate.shares: expected a list of 1 to %d numbers in [0, 1] (the "
                        "share on frames 1, 2, ... after a pass-through), got %r"
                        % (PROPAGATE_MAX_FRAMES, sh))
    c = p["confidence"]
    if (isinstance(c, bool) or not isinstance(c, (int, float))
            or not 0 <= c < PROPAGATE_MAX_CONFIDENCE):
        raise ArchError("propagate.confidence: expected a number in [0, %g) (0: shares not "
                        "scaled), got %r" % (PROPAGATE_MAX_CONFIDENCE, c))
    out = {"radius": radius, "patch": patch, "shares": [float(x) for x in sh],
           "confidence": float(c)}
    if sub:   # written only when on: the files without it stay byte for byte as they were
        out["subpixel"] = True
    return out


def _width(h, where):
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 < h < 10:
        raise ArchError("%s: expected a number in (0, 10), got %r" % (where, h))
    return float(h)


def parse_arch(meta):
    """Validate an architecture dict (or its JSON text); return a normalised deep copy.

    Accepts exactly the keys of NETWORK.md; unknown keys are an error (a typo must not silently
    change the network)."""
    if isinstance(meta, (str, bytes)):
        try:
            meta = json.loads(meta)
        except ValueError as e:
            raise ArchError("vaefarm metadata is not valid JSON: %s" % e)
    if not isinstance(meta, dict):
        raise ArchError("vaefarm metadata: expected a JSON object")
    allowed = {"format", "name", "F", "A", "C", "inference_size", "upsample", "propagate"}
    extra = set(meta) - allowed
    if extra:
        raise ArchError("vaefarm metadata: unknown keys %s" % sorted(extra))
    if meta.get("format") != FORMAT:
        raise ArchError("vaefarm metadata: format must be %r, got %r" % (FORMAT, meta.get("format")))
    name = meta.get("name", "")
    if not isinstance(name, str):
        raise ArchError("vaefarm metadata: name must be a string")
    out = {"format": FORMAT, "name": name}

    F = _obj(meta, "F", "metadata")
    if set(F) != {"stem", "widths", "blocks"}:
        raise ArchError("F: expected keys stem, widths, blocks; got %s" % sorted(F))
    f = {"stem": _posint(F["stem"], "F.stem"),
         "widths": _intlist(F["widths"], 4, "F.widths"),
         "blocks": _intlist(F["blocks"], 4, "F.blocks")}
    if f["stem"] != f["widths"][0]:
        raise ArchError("F.stem (%d) must equal F.widths[0] (%d)" % (f["stem"], f["widths"][0]))
    out["F"] = f

    A = _obj(meta, "A", "metadata")
    if not {"adapter", "res_blocks", "tau"} <= set(A) or set(A) - {"adapter", "res_blocks", "tau", "refine"}:
        raise ArchError("A: expected keys adapter, res_blocks, tau and optionally refine; got %s"
                        % sorted(A))
    tau = A["tau"]
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
        raise ArchError("A.tau: expected a positive number, got %r" % (tau,))
    out["A"] = {"adapter": _posint(A["adapter"], "A.adapter"),
                "res_blocks": _nonnegint(A["res_blocks"], "A.res_blocks"),
                "tau": float(tau)}
    if "refine" in A:
        out["A"]["refine"] = _refine(A["refine"])

    C = _obj(meta, "C", "metadata")
    keys = {"widths", "enc_convs", "mid", "latent", "dec_widths", "dec_convs"}
    if not keys <= set(C) or set(C) - keys - {"residual", "gate", "gate_motion", "gate_motion_radius",
                                             "gate_ramp"}:
        raise ArchError("C: expected keys %s and optionally residual, gate, gate_motion, "
                        "gate_motion_radius, gate_ramp; got %s"
                        % (sorted(keys), sorted(C)))
    residual = C.get("residual", False)
    gate = C.get("gate", False)
    for k, v in (("residual", residual), ("gate", gate)):
        if not isinstance(v, bool):
            raise ArchError("C.%s: expected true or false, got %r" % (k, v))
    if gate and not residual:
        raise ArchError("C.gate needs a residual C (the gate scales the correction to W^ab)")
    motion = C.get("gate_motion")
    if motion is not None:
        if isinstance(motion, bool) or not isinstance(motion, (int, float)) or not 1e-6 <= motion < 1e6:
            raise ArchError("C.gate_motion: expected a number in [1e-6, 1e6) (κ, in units of L), got %r"
                            % (motion,))
        if not gate:
            raise ArchError("C.gate_motion needs C.gate (it scales the gate)")
    radius = C.get("gate_motion_radius")
    if radius is not None:
        if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MOTION_RADIUS_MAX:
            raise ArchError("C.gate_motion_radius: expected an integer in [0, %d] (pixels), got %r"
                            % (MOTION_RADIUS_MAX, radius))
        if motion is None:
            raise ArchError("C.gate_motion_radius needs C.gate_motion (it makes its factor per pixel)")
    ramp = C.get("gate_ramp")
    if ramp is not None:
        if isinstance(ramp, bool) or not isinstance(ramp, int) or not 1 <= ramp <= GATE_RAMP_MAX:
            raise ArchError("C.gate_ramp: expected an integer in [1, %d] (frames), got %r"
                            % (GATE_RAMP_MAX, ramp))
        if not gate:
            raise ArchError("C.gate_ramp needs C.gate (it scales the gate)")
    mid = C["mid"]
    if not isinstance(mid, list) or not mid:
        raise ArchError("C.mid: expected a non-empty list of lists of dilations")
    mids = []
    for g, grp in enumerate(mid):
        if not isinstance(grp, list) or not grp:
            raise ArchError("C.mid[%d]: expected a non-empty list of dilations" % g)
        mids.append([_posint(d, "C.mid[%d][%d]" % (g, j)) for j, d in enumerate(grp)])
    out["C"] = {"widths": _intlist(C["widths"], 4, "C.widths"),
                "enc_convs": _intlist(C["enc_convs"], 4, "C.enc_convs"),
                "mid": mids,
                "latent": _posint(C["latent"], "C.latent"),
                "dec_widths": _intlist(C["dec_widths"], 3, "C.dec_widths"),
                "dec_convs": _intlist(C["dec_convs"], 3, "C.dec_convs", _nonnegint),
                "residual": residual}
    if gate:   # written only when on: the files before it keep their metadata (and warp stamp)
        out["C"]["gate"] = True
    if motion is not None:
        out["C"]["gate_motion"] = float(motion)
    if radius is not None:
        out["C"]["gate_motion_radius"] = radius
    if ramp is not None:
        out["C"]["gate_ramp"] = ramp

    size = _intlist(_obj(meta, "inference_size", "metadata"), 2, "inference_size")
    for v in size:
        if v % 8:
            raise ArchError("inference_size %r: both must be multiples of 8" % (size,))
    out["inference_size"] = size
    out["upsample"] = _upsample(meta.get("upsample", UPSAMPLE_DEFAULT))
    if "propagate" in meta:
        out["propagate"] = _propagate(meta["propagate"])
    return out


def get_arch(name_or_dict):
    if isinstance(name_or_dict, str) and name_or_dict in PRESETS:
        return parse_arch(copy.deepcopy(PRESETS[name_or_dict]))
    return parse_arch(name_or_dict)


def arch_json(arch):
    """Compact JSON text of a (validated) arch, for __metadata__["vaefarm"]."""
    return json.dumps(parse_arch(arch), separators=(",", ":"))
