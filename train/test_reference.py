#!/usr/bin/python3
"""Tests of the Python side (plain asserts; exit status non-zero on failure).

    /usr/bin/python3 train/test_reference.py

torchvision ResNet-50 trunk equivalence (through convert_resnet.py), safetensors round trip and
validation, Lab round trip, state_dict names against docs/NETWORK.md, architecture validation,
weights-file round trip, post-processing invariants; prints the parameter counts."""
import copy
import json
import math
import os
import re
import struct
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import safetensors_io  # noqa: E402
from convert_resnet import ConvertError, convert, resnet_to_F  # noqa: E402
from export import load_model, make_model, param_counts, save_weights  # noqa: E402
from vaefarm_ref import build  # noqa: E402
from vaefarm_ref import lab  # noqa: E402
from vaefarm_ref.arch import ArchError, FULL, TINY, parse_arch  # noqa: E402

TMP = tempfile.mkdtemp(prefix="vaefarm_test_")


def rel_err(a, b):
    return float((a - b).abs().max() / max(b.abs().max().item(), 1e-30))


def test_resnet50_trunk():
    import torchvision
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None).eval()   # random init, no download
    with torch.no_grad():                                   # non-trivial BN statistics
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.8, 1.2)
                m.bias.normal_(0, 0.1)
    sd = tv.state_dict()
    # strict load of the trunk after dropping fc.*
    full = build("full")
    full.F.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")}, strict=True)
    # through the converter and the weights file
    pth = os.path.join(TMP, "r50.pth")
    torch.save(sd, pth)
    out = os.path.join(TMP, "full_r50.safetensors")
    convert(pth, out, seed=3)
    net = load_model(out)
    tensors, meta = safetensors_io.load(out)
    assert not any(k.startswith("F.fc") for k in tensors), "fc.* must be dropped"
    assert meta["vaefarm_weights"] == "random init, seed 3; F from r50.pth (train/convert_resnet.py)", meta
    for k, v in sd.items():
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked"):
            assert torch.equal(tensors["F." + k], v.float()), k
    got = {}
    hooks = [getattr(tv, n).register_forward_hook(lambda m, i, o, n=n: got.__setitem__(n, o))
             for n in ("layer1", "layer2", "layer3", "layer4")]
    x = torch.randn(1, 3, 216, 384)
    with torch.no_grad():
        tv(x)
        ours = net.F(x)
    for h in hooks:
        h.remove()
    for k, o in enumerate(ours):
        ref = got["layer%d" % (k + 1)]
        assert o.shape == ref.shape, (o.shape, ref.shape)
        e = rel_err(o, ref)
        assert e <= 1e-5, "layer%d: relative error %g" % (k + 1, e)
    assert [tuple(t.shape[-2:]) for t in ours] == [(54, 96), (27, 48), (14, 24), (7, 12)]
    # refusals: wrong shapes, missing tensors, a tiny file to update
    bad = dict(sd)
    bad["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    try:
        resnet_to_F(bad, net)
        raise AssertionError("shape mismatch accepted")
    except ConvertError as e:
        assert "layer1.0.conv2.weight" in str(e)
    try:
        resnet_to_F({k: v for k, v in sd.items() if "layer4" not in k}, net)
        raise AssertionError("missing tensors accepted")
    except ConvertError:
        pass
    tiny = os.path.join(TMP, "tiny.safetensors")
    save_weights(tiny, make_model("tiny", 0))
    try:
        convert(pth, os.path.join(TMP, "x.safetensors"), into=tiny)
        raise AssertionError("conversion into a tiny file accepted")
    except ConvertError:
        pass


def test_safetensors_roundtrip():
    rng = np.random.default_rng(1)
    T = {"a.f32": torch.from_numpy(rng.standard_normal((3, 5, 7)).astype(np.float32)),
         "b.f16": torch.from_numpy(rng.standard_normal((4,)).astype(np.float16)),
         "c.bf16": torch.randn(2, 3).to(torch.bfloat16),
         "d.i64": torch.arange(5),
         "e.scalar": torch.tensor(3.5),
         "f.empty": torch.zeros(0, 4)}
    p = os.path.join(TMP, "rt.safetensors")
    meta = {"vaefarm": json.dumps(TINY)}
    safetensors_io.save(p, T, meta)
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0, "header not padded to 8"
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"] == meta
    assert header["a.f32"]["dtype"] == "F32" and header["c.bf16"]["dtype"] == "BF16"
    spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    pos = 0
    for b, e in spans:
        assert b == pos, "hole"
        pos = e
    assert pos == len(raw) - 8 - n
    U, m = safetensors_io.load(p)
    assert m == meta and set(U) == set(T)
    for k in T:
        assert U[k].dtype == T[k].dtype and torch.equal(U[k], T[k]), k
    # corrupt files are refused
    for cut in (5, 8 + n - 3, len(raw) - 1):
        q = os.path.join(TMP, "cut.safetensors")
        open(q, "wb").write(raw[:cut])
        try:
            safetensors_io.load(q)
            raise AssertionError("truncated file (%d bytes) accepted" % cut)
        except safetensors_io.SafetensorsError:
            pass
    bad = dict(header)
    bad["a.f32"] = dict(bad["a.f32"], shape=[3, 5, 8])
    h = json.dumps(bad).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    q = os.path.join(TMP, "bad.safetensors")
    open(q, "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
    try:
        safetensors_io.load(q)
        raise AssertionError("shape/offset mismatch accepted")
    except safetensors_io.SafetensorsError:
        pass


def test_lab():
    torch.manual_seed(2)
    rgb = torch.rand(3, 64, 64)
    rgb[:, 0, :8] = 0.0
    rgb[:, 0, 8:16] = 1.0
    back = lab.lab_to_rgb(lab.rgb_to_lab(rgb), clamp=False)
    e = float((back - rgb).abs().max())
    assert e < 2e-4, "rgb -> Lab -> rgb error %g" % e
    y = torch.linspace(0, 1, 1001)
    L = lab.grey_to_L(y)
    Lab3 = lab.rgb_to_lab(y.expand(3, 1, 1001))[:, 0]
    assert float((L - Lab3[0]).abs().max()) < 1e-2 and float(Lab3[1:].abs().max()) < 1e-2
    assert abs(float(L[0])) < 1e-4 and abs(float(L[-1]) - 100.0) < 1e-3
    assert bool((L[1:] > L[:-1]).all()), "L(Y') must increase"
    # M and M^-1 are inverse to the 7 digits given
    M, Mi = torch.tensor(lab.M, dtype=torch.float64), torch.tensor(lab.M_INV, dtype=torch.float64)
    assert float((M @ Mi - torch.eye(3, dtype=torch.float64)).abs().max()) < 1e-6


NAME_PATTERNS = [
    r"F\.conv1\.weight", r"F\.bn1\.(weight|bias|running_mean|running_var)",
    r"F\.layer[1-4]\.\d+\.conv[123]\.weight",
    r"F\.layer[1-4]\.\d+\.bn[123]\.(weight|bias|running_mean|running_var)",
    r"F\.layer[1-4]\.0\.downsample\.0\.weight",
    r"F\.layer[1-4]\.0\.downsample\.1\.(weight|bias|running_mean|running_var)",
    r"A\.adapt\.[0-3]\.conv\.(weight|bias)", r"A\.adapt\.[0-3]\.norm\.(weight|bias)",
    r"A\.adapt\.[0-3]\.act\.weight",
    r"A\.res\.\d+\.conv[12]\.(weight|bias)", r"A\.res\.\d+\.norm[12]\.(weight|bias)",
    r"A\.res\.\d+\.act\.weight", r"A\.(theta|phi)\.(weight|bias)",
    r"C\.enc\.[0-3]\.\d+\.(weight|bias)", r"C\.enc\.[0-3]\.norm\.(weight|bias)",
    r"C\.enc\.[0-2]\.down\.weight",
    r"C\.mid\.\d+\.\d+\.(weight|bias)", r"C\.mid\.\d+\.norm\.(weight|bias)",
    r"C\.(mu|logvar|out)\.(weight|bias)",
    r"C\.dec\.[0-2]\.(up|skip)\.(weight|bias)", r"C\.dec\.[0-2]\.\d+\.(weight|bias)",
    r"C\.dec\.[01]\.norm\.(weight|bias)",
]


def test_names():
    pat = re.compile("^(" + "|".join(NAME_PATTERNS) + ")$")
    doc = os.path.join(HERE, "..", "docs", "NETWORK.md")
    listed = []
    if os.path.exists(doc):
        text = open(doc).read()
        sec = text[text.index("## Weights file"):]
        listed = re.findall(r"`([FAC]\.[A-Za-z0-9_.]+)`", sec)
        listed = [n for n in listed if not n.endswith(".")]
        assert len(listed) >= 20, listed
    for name in ("tiny", "full"):
        net = build(name)
        sd = net.state_dict()
        names = [k for k in sd if not k.endswith("num_batches_tracked")]
        bad = [k for k in names if not pat.match(k)]
        assert not bad, "%s: names outside the NETWORK.md pattern: %s" % (name, bad[:5])
        missing = [n for n in listed if n not in sd]
        assert not missing, "%s: names NETWORK.md lists are missing: %s" % (name, missing)
        # conv weights OIHW, depthwise down (c,1,1,1), no bias in F or on down
        assert tuple(sd["C.enc.1.down.weight"].shape) == (net.arch["C"]["widths"][1], 1, 1, 1)
        assert not any(k.startswith("F.") and re.search(r"conv\d\.bias|downsample\.0\.bias", k) for k in sd)
        assert "C.enc.3.down.weight" not in sd and "C.dec.2.norm.weight" not in sd
        c = param_counts(net)
        print("  %-4s parameters: F %10s  A %10s  C %10s  total %11s"
              % (name, *("{:,}".format(c[k]) for k in ("F", "A", "C", "total"))))
    c = param_counts(build("full"))
    assert 55e6 < c["total"] < 65e6


def test_arch_validation():
    assert parse_arch(json.dumps(FULL)) == parse_arch(FULL)
    for mutate in (lambda a: a.update(format="x"), lambda a: a["F"].update(stem=32),
                   lambda a: a["C"].update(mid=[]), lambda a: a.update(inference_size=[100, 256]),
                   lambda a: a["A"].update(tau=0), lambda a: a["C"].update(widths=[1, 2, 3]),
                   lambda a: a.update(extra=1), lambda a: a["C"].update(residual=1),
                   lambda a: a["C"].update(residuals=True),
                   lambda a: a["A"]["refine"].update(radius=0), lambda a: a["A"]["refine"].update(patch=4),
                   lambda a: a["A"]["refine"].update(h=0), lambda a: a["A"]["refine"].update(k=1),
                   lambda a: a["A"].update(refine=True),
                   lambda a: a.update(upsample={"radius": 9, "eps": 1e-3}),
                   lambda a: a.update(upsample={"radius": -1, "eps": 1e-3}),
                   lambda a: a.update(upsample={"radius": 1, "eps": 0}),
                   lambda a: a.update(upsample={"radius": 1}),
                   lambda a: a.update(upsample={"radius": 1.5, "eps": 1e-3}),
                   lambda a: a.update(upsample={"radius": 0, "eps": 1e-46}),   # 0 in f32
                   lambda a: a.update(upsample={"radius": 0, "eps": 0.99999999}),   # 1 in f32
                   lambda a: a.update(upsample={"radius": 0, "eps": 1e-3, "x": 1}),
                   lambda a: a["C"].update(gate_ramp=4),                 # needs C.gate
                   lambda a: a["C"].update(gate=True, gate_ramp=0),
                   lambda a: a["C"].update(gate=True, gate_ramp=1001),
                   lambda a: a["C"].update(gate=True, gate_ramp=4.0),
                   lambda a: a["C"].update(gate=True, gate_ramp=True),
                   lambda a: a["C"].update(gate=True, gate_ramp="4"),
                   lambda a: a.update(propagate={"radius": 6, "patch": 5, "shares": [1]}),
                   lambda a: a.update(propagate={"radius": 0, "patch": 5, "shares": [1], "confidence": 0}),
                   lambda a: a.update(propagate={"radius": 17, "patch": 5, "shares": [1], "confidence": 0}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 4, "shares": [1], "confidence": 0}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 17, "shares": [1], "confidence": 0}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 5, "shares": [], "confidence": 0}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 5, "shares": [1.5], "confidence": 0}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 5, "shares": [1] * 17, "confidence": 0}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 5, "shares": [True], "confidence": 0}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 5, "shares": [1], "confidence": -1}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 5, "shares": [1], "confidence": 1e6}),
                   lambda a: a.update(propagate={"radius": 6, "patch": 5, "shares": [1], "confidence": 0, "k": 1}),
                   lambda a: a.update(propagate=[6, 5])):
        a = json.loads(json.dumps(TINY))
        mutate(a)
        try:
            parse_arch(a)
            raise AssertionError("bad arch accepted: %s" % a)
        except ArchError:
            pass
    a = json.loads(json.dumps(TINY))
    a["C"].update(gate=True, gate_ramp=1000)
    assert parse_arch(a)["C"]["gate_ramp"] == 1000
    # C.residual is optional (older files have no key: ab straight from C), tiny's is true
    a = json.loads(json.dumps(FULL))
    assert "residual" not in a["C"] and parse_arch(a)["C"]["residual"] is False
    assert parse_arch(TINY)["C"]["residual"] is True
    # A.refine is optional too (off when absent), tiny's is on
    assert "refine" not in parse_arch(FULL)["A"] and parse_arch(TINY)["A"]["refine"]["radius"] == 4
    # upsample: absent, the guided filter of the files written before the key; the presets' is
    # bilinear (radius 0), and Net.upsample uses the arch's values
    a = json.loads(json.dumps(TINY))
    del a["upsample"]
    assert parse_arch(a)["upsample"] == {"radius": 2, "eps": 1e-3}
    assert parse_arch(TINY)["upsample"] == {"radius": 0, "eps": 1e-3}


def refine_warp_direct(grey, ref_y, ref_ab, pos4, radius, patch, h):
    """NETWORK.md's refinement computed as it reads, pixel by pixel (the oracle for
    vaefarm_ref.model.refine_warp, which computes it per cell; the two share the pixels'
    positions, refine_centres, and the blend of the candidates, refine_blend: the costs differ).
    grey, ref_y: N×1×H×W (the frame's Y′ and the reference's, from its R′G′B′ with the film's
    Kr, Kb); ref_ab: N×2×H×W (the reference's a, b, not pooled); pos4: N×2×H/4×W/4 (attend()'s
    expected positions). Pixel (y, x) of cell (y/4, x/4) looks around v = pos + (y mod 4, x mod 4).
    Around an integer centre c, each candidate s = clamp(c + d), d in [−radius, radius]², costs
    the mean squared difference of the patch×patch luma windows around (y, x) and s (coordinates
    clamped to the image) and R(c) = Σ_d w_d ref_ab(s_d), w = softmax_d(−cost_d / h²). The output
    is the bilinear blend of R over the four centres around v, floor(v) + {0, 1}², weighted by
    v's fractions, so it moves continuously with v. No gradient: it moves pixels of the
    reference, and A learns through W^ab's own losses."""
    import torch.nn.functional as Fn
    from vaefarm_ref.model import refine_blend, refine_centres
    with torch.no_grad():
        n, _, H, W = grey.shape
        r = patch // 2
        p2 = patch * patch
        D = 2 * radius + 2
        by, bx, fy, fx = refine_centres(pos4, H, W)

        def windows(x):
            return Fn.unfold(Fn.pad(x, (r, r, r, r), mode="replicate"), patch).reshape(n, p2, H * W)

        pf, pr = windows(grey), windows(ref_y)
        abf = ref_ab.reshape(n, 2, H * W)
        cost = torch.empty(n, D, D, H * W, dtype=grey.dtype, device=grey.device)
        cab = torch.empty(n, 2, D, D, H * W, dtype=grey.dtype, device=grey.device)
        for i, dy in enumerate(range(-radius, radius + 2)):
            sy = (by + dy).clamp(0, H - 1)
            for j, dx in enumerate(range(-radius, radius + 2)):
                sx = (bx + dx).clamp(0, W - 1)
                idx = (sy * W + sx).reshape(n, 1, H * W)
                cost[:, i, j] = ((pf - pr.gather(2, idx.expand(n, p2, H * W))) ** 2).mean(dim=1)
                cab[:, :, i, j] = abf.gather(2, idx.expand(n, 2, H * W))
        return refine_blend(cost, cab, fy, fx, h).reshape(n, 2, H, W)


def test_refine_per_cell_equals_direct():
    """refine_warp (per-cell grouped correlation) against the per-pixel definition, in float64
    (≤ 1e-8 on a, b of ±50) over radii, patches, batch sizes and positions at the range's ends
    and a hair under integers; in float32 the expansion's rounding, through 1/h² = 4·10⁴, moves
    the output by a few hundredths at most (asserted: ≤ 0.2, mean ≤ 1e-3)."""
    from vaefarm_ref.model import refine_warp
    for (H, W, n, R, p, dt) in ((32, 48, 2, 4, 5, torch.float64), (20, 28, 3, 1, 1, torch.float64),
                                (24, 36, 1, 7, 9, torch.float64), (16, 16, 2, 2, 3, torch.float64),
                                (48, 64, 1, 4, 5, torch.float32)):
        g = torch.Generator().manual_seed(H)
        grey = torch.rand(n, 1, H, W, generator=g, dtype=dt)
        ry = torch.rand(n, 1, H, W, generator=g, dtype=dt)
        ab = torch.rand(n, 2, H, W, generator=g, dtype=dt) * 100 - 50
        pos = torch.rand(n, 2, H // 4, W // 4, generator=g, dtype=dt)
        pos = pos * torch.tensor([H - 4.0, W - 4.0], dtype=dt).view(1, 2, 1, 1)
        pos[:, :, 0, 0] = 0
        pos[:, 0, -1, -1], pos[:, 1, -1, -1] = H - 4, W - 4
        pos[:, 0, 1, 1], pos[:, 1, 1, 1] = H - 4 - 1e-9, 3 - 1e-9
        a = refine_warp_direct(grey, ry, ab, pos, R, p, 0.005)
        b = refine_warp(grey, ry, ab, pos, R, p, 0.005)
        d = (a - b).abs()
        if dt == torch.float64:
            assert float(d.max()) < 1e-8, (H, W, R, p, float(d.max()))
        else:
            assert float(d.max()) < 0.2 and float(d.mean()) < 1e-3, (float(d.max()), float(d.mean()))


def test_refine_recovers_shifts():
    """The refinement finds, around positions that do not know it, where each pixel of a moved
    frame came from in the reference, and carries that pixel's a, b; with positions that do
    know it (the expected position moved by the shift) it finds the same from further away."""
    from vaefarm_ref.model import cell_positions, refine_warp
    g = torch.Generator().manual_seed(3)
    H, W, dy, dx = 32, 48, 2, -3
    ry = torch.rand(1, 1, H, W, generator=g)
    ab = torch.rand(1, 2, H, W, generator=g) * 100 - 50
    ys = (torch.arange(H) + dy).clamp(0, H - 1)
    xs = (torch.arange(W) + dx).clamp(0, W - 1)
    grey = ry[:, :, ys][:, :, :, xs]
    want = ab[:, :, ys][:, :, :, xs]
    pos = cell_positions(1, H // 4, W // 4, ry)
    m = 4 + 2 + 1
    for p, radius in ((pos, 4), (pos + torch.tensor([4.0 * dy, 4.0 * dx]).view(1, 2, 1, 1) / 4, 1)):
        out = refine_warp(grey, ry, ab, p, radius, 5, 0.005)
        err = (out - want)[:, :, m:H - m, m:W - m].abs().max()
        assert float(err) < 1e-3, (radius, float(err))
    # a radius too small for the shift does not find it
    out = refine_warp(grey, ry, ab, pos, 1, 5, 0.005)
    assert float((out - want)[:, :, m:H - m, m:W - m].abs().max()) > 10


def test_refine_is_continuous():
    """The refined warp moves continuously with the expected position: positions that straddle
    an integer by 1e-4 px (where a window centred on floor() or round() of the position would jump
    by a whole pixel) give outputs within 0.05 of each other on a, b spanning ±50, so the C engine
    and this reference, whose positions differ by float noise, agree."""
    from vaefarm_ref.model import refine_warp
    g = torch.Generator().manual_seed(5)
    H, W = 32, 48
    f64 = torch.float64
    ry = torch.rand(1, 1, H, W, generator=g, dtype=f64)
    grey = torch.rand(1, 1, H, W, generator=g, dtype=f64)
    ab = torch.rand(1, 2, H, W, generator=g, dtype=f64) * 100 - 50
    # integer positions inside [1, H − 5] × [1, W − 5], so that ±1e-4 and +1 stay in range
    base = torch.stack([torch.randint(1, H - 4, (H // 4, W // 4), generator=g),
                        torch.randint(1, W - 4, (H // 4, W // 4), generator=g)]).unsqueeze(0).to(f64)
    lo = refine_warp(grey, ry, ab, base - 1e-4, 4, 5, 0.005)
    hi = refine_warp(grey, ry, ab, base + 1e-4, 4, 5, 0.005)
    assert float((lo - hi).abs().max()) < 0.05, float((lo - hi).abs().max())
    # half way between two centres the output is the mean of the two windows' results
    mid = refine_warp(grey, ry, ab, base + torch.tensor([0.5, 0.0], dtype=f64).view(1, 2, 1, 1), 4, 5, 0.005)
    up = refine_warp(grey, ry, ab, base + torch.tensor([1.0, 0.0], dtype=f64).view(1, 2, 1, 1), 4, 5, 0.005)
    at = refine_warp(grey, ry, ab, base, 4, 5, 0.005)
    assert float((mid - (at + up) / 2).abs().max()) < 1e-8
    assert float((at - up).abs().max()) > 1, "the two centres should differ somewhere"


def test_refine_subpixel():
    """The sub-pixel temporal candidate (NETWORK.md, "A", refine, sub-pixel): at pixels, the
    cheapest displacement, one regularised Lucas–Kanade step from its source and X̂(t−1)'s warp
    sampled bilinearly there, at that displacement's cost (against a direct computation); where
    the frame is X̂(t−1)'s lightness moved by (0.4, −0.3) pixels and its a, b are linear, the
    step finds the move and the refined warp is nearer X̂(t−1)'s a, b at the true source with
    the candidate than without; unmoved, the candidate is X̂(t−1)'s own a, b; and the arch
    accepts subpixel only as a boolean, true only with the temporal candidates."""
    from vaefarm_ref.model import (temporal_subpixel, temporal_candidates, refine_warp,
                                   cell_positions, SUBPIXEL_LAMBDA)
    f64 = torch.float64
    g = torch.Generator().manual_seed(23)
    H, W, R, p = 16, 20, 2, 5
    cur = torch.rand(1, 1, H, W, generator=g, dtype=f64) * 100 - 50
    prev = torch.rand(1, 1, H, W, generator=g, dtype=f64) * 100 - 50
    pab = torch.rand(1, 2, H, W, generator=g, dtype=f64) * 100 - 50
    cost, _ = temporal_candidates(cur, prev, pab, R, p)
    sc, sab = temporal_subpixel(cost, cur, prev, pab, R, p)
    assert sc.shape == (1, 1, H * W) and sab.shape == (1, 2, 1, H * W)
    D = 2 * R + 1
    cl = lambda v, n: min(max(v, 0), n - 1)  # noqa: E731
    P = lambda y, x: float(prev[0, 0, cl(y, H), cl(x, W)])  # noqa: E731
    for (y, x) in ((0, 0), (7, 9), (H - 1, 3), (2, W - 1), (10, 10)):
        c = [float(v) for v in cost[0, :, y * W + x]]
        k = min(range(D * D), key=lambda i: (c[i], i))
        sy, sx = cl(y + k // D - R, H), cl(x + k % D - R, W)
        G = [[0.0, 0.0], [0.0, 0.0]]
        bb = [0.0, 0.0]
        for u in range(-2, 3):
            for v in range(-2, 3):
                qy, qx = cl(sy + u, H), cl(sx + v, W)
                gr = (0.5 * (P(qy + 1, qx) - P(qy - 1, qx)), 0.5 * (P(qy, qx + 1) - P(qy, qx - 1)))
                e = float(cur[0, 0, cl(y + u, H), cl(x + v, W)]) - P(qy, qx)
                for i in range(2):
                    bb[i] += gr[i] * e
                    for j in range(2):
                        G[i][j] += gr[i] * gr[j]
        lam = SUBPIXEL_LAMBDA * 0.5 * (G[0][0] + G[1][1])
        det = (G[0][0] + lam) * (G[1][1] + lam) - G[0][1] ** 2
        oy = min(max(((G[1][1] + lam) * bb[0] - G[0][1] * bb[1]) / det, -0.5), 0.5)
        ox = min(max(((G[0][0] + lam) * bb[1] - G[0][1] * bb[0]) / det, -0.5), 0.5)
        fyy, fxx = min(max(sy + oy, 0.0), H - 1.0), min(max(sx + ox, 0.0), W - 1.0)
        y0, x0 = min(int(math.floor(fyy)), H - 2), min(int(math.floor(fxx)), W - 2)
        fy, fx = fyy - y0, fxx - x0
        want = ((1 - fy) * ((1 - fx) * pab[0, :, y0, x0] + fx * pab[0, :, y0, x0 + 1])
                + fy * ((1 - fx) * pab[0, :, y0 + 1, x0] + fx * pab[0, :, y0 + 1, x0 + 1]))
        assert abs(float(sc[0, 0, y * W + x]) - c[k]) < 1e-15
        assert float((sab[0, :, 0, y * W + x] - want).abs().max()) < 1e-9, (y, x)
    # X̂(t−1) moved by a fraction of a pixel (an analytic field), a, b linear in the position
    H, W, DY, DX = 32, 48, 0.4, -0.3
    yy = torch.arange(H, dtype=f64).view(1, 1, H, 1).expand(1, 1, H, W)
    xx = torch.arange(W, dtype=f64).view(1, 1, 1, W).expand(1, 1, H, W)
    field = lambda y, x: 20 * torch.sin(0.7 * y + 0.3 * x) + 15 * torch.cos(0.4 * x - 0.5 * y)  # noqa: E731
    lin = lambda y, x: torch.cat([2 * y - x + 5, -y + 3 * x - 40], 1)  # noqa: E731
    prev, cur, pab = field(yy, xx), field(yy + DY, xx + DX), lin(yy, xx)
    ry, grey = torch.rand(1, 1, H, W, generator=g, dtype=f64), torch.rand(1, 1, H, W, generator=g, dtype=f64)
    ab = torch.rand(1, 2, H, W, generator=g, dtype=f64) * 100 - 50
    pos = cell_positions(1, H // 4, W // 4, ry)
    tc, ta = temporal_candidates(cur, prev, pab, 2, 5)
    sc, sab = temporal_subpixel(tc, cur, prev, pab, 2, 5)
    m = 2 + 2 + 2
    inner = lambda t: t.reshape(1, 2, H, W)[:, :, m:H - m, m:W - m]  # noqa: E731
    want = lin(yy + DY, xx + DX)[:, :, m:H - m, m:W - m]
    e_cand = float((inner(sab) - want).abs().mean())
    whole = refine_warp(grey, ry, ab, pos, 4, 5, 0.005, (tc * 4, ta))
    sub = refine_warp(grey, ry, ab, pos, 4, 5, 0.005, (torch.cat([tc, sc], 1) * 4, torch.cat([ta, sab], 2)))
    e_whole = float((inner(whole) - want).abs().mean())
    e_sub = float((inner(sub) - want).abs().mean())
    assert e_cand < 0.1 and e_sub < 0.8 * e_whole, (e_cand, e_sub, e_whole)
    tc, _ = temporal_candidates(prev, prev, pab, 2, 5)
    _, sab = temporal_subpixel(tc, prev, prev, pab, 2, 5)
    assert torch.equal(sab.reshape(1, 2, H, W), pab)
    # the arch
    for sp, ok in ((True, True), (False, True), (0.2, False), ("true", False), (1, False)):
        a = json.loads(json.dumps(TINY))
        a["A"]["refine"]["subpixel"] = sp
        try:
            parse_arch(a)
            assert ok, "A.refine.subpixel %r accepted" % (sp,)
        except ArchError:
            assert not ok, "A.refine.subpixel %r refused" % (sp,)
    a = json.loads(json.dumps(TINY))
    a["A"]["refine"] = {"radius": 4, "patch": 5, "h": 0.005, "subpixel": True}
    try:
        parse_arch(a)
        raise AssertionError("A.refine.subpixel accepted without temporal candidates")
    except ArchError as e:
        assert "temporal" in str(e)


def test_refine_temporal():
    """The refinement's temporal candidates (NETWORK.md, "A", refine, temporal): their costs are
    the direct per-pixel definition (borders clamped); where the frame's lightness is X̂(t−1)'s
    moved by (1, −2) and its grey matches nothing in the reference, the warp carries X̂(t−1)'s
    a, b from where each pixel came from; without X̂(t−1) (prev None) the warp is the one of the
    arch without them; and the arch accepts temporal only with temporal_h, in range."""
    from vaefarm_ref.model import temporal_candidates, refine_warp, cell_positions
    f64 = torch.float64
    g = torch.Generator().manual_seed(17)
    H, W, R, p = 16, 20, 2, 5
    cur = torch.rand(2, 1, H, W, generator=g, dtype=f64) * 100 - 50
    prev = torch.rand(2, 1, H, W, generator=g, dtype=f64) * 100 - 50
    pab = torch.rand(2, 2, H, W, generator=g, dtype=f64) * 100 - 50
    cost, cab = temporal_candidates(cur, prev, pab, R, p)
    assert cost.shape == (2, 25, H * W) and cab.shape == (2, 2, 25, H * W)
    cl = lambda v, n: min(max(v, 0), n - 1)  # noqa: E731
    for (n, y, x) in ((0, 0, 0), (1, 7, 9), (0, H - 1, 3), (1, 2, W - 1)):
        for k, (dy, dx) in enumerate((a, b) for a in range(-R, R + 1) for b in range(-R, R + 1)):
            sy, sx = cl(y + dy, H), cl(x + dx, W)
            d = sum(float(cur[n, 0, cl(y + u, H), cl(x + v, W)] - prev[n, 0, cl(sy + u, H), cl(sx + v, W)]) ** 2
                    for u in range(-2, 3) for v in range(-2, 3)) / 25 * 1e-4
            assert abs(float(cost[n, k, y * W + x]) - d) < 1e-12, (n, y, x, k)
            assert torch.equal(cab[n, :, k, y * W + x], pab[n, :, sy, sx])
    # X̂(t−1) moved: found through the temporal candidates, not the (unrelated) reference
    H, W, dy, dx = 32, 48, 1, -2
    ry, grey = torch.rand(1, 1, H, W, generator=g), torch.rand(1, 1, H, W, generator=g)
    ab = torch.rand(1, 2, H, W, generator=g) * 100 - 50
    prev = torch.rand(1, 1, H, W, generator=g) * 100 - 50
    pab = torch.rand(1, 2, H, W, generator=g) * 100 - 50
    ys, xs = (torch.arange(H) + dy).clamp(0, H - 1), (torch.arange(W) + dx).clamp(0, W - 1)
    cur = prev[:, :, ys][:, :, :, xs]
    pos = cell_positions(1, H // 4, W // 4, ry)
    tc, ta = temporal_candidates(cur, prev, pab, 2, 5)
    out = refine_warp(grey, ry, ab, pos, 4, 5, 0.005, (tc * 4, ta))
    plain = refine_warp(grey, ry, ab, pos, 4, 5, 0.005)
    m = 2 + 2 + 1
    want = pab[:, :, ys][:, :, :, xs]
    assert float((out - want)[:, :, m:H - m, m:W - m].abs().max()) < 1e-3
    assert float((plain - want)[:, :, m:H - m, m:W - m].abs().max()) > 10
    # through the network: no X̂(t−1), no candidates
    net = make_model("tiny", 3)
    assert net.arch["A"]["refine"]["temporal"] == 2
    rgb = torch.rand(3, 32, 48, generator=g)
    c = net.reference(rgb)
    gr = torch.rand(1, 32, 48, generator=g)
    with torch.no_grad():
        a = net.frame(gr, c)
        net.arch["A"]["refine"].pop("temporal")
        b = net.frame(gr, c)
        assert torch.equal(a["warp_ab"], b["warp_ab"]) and torch.equal(a["ab"], b["ab"])
        nt = net.frame(gr, c, a["prev"])        # without the candidates
        net.arch["A"]["refine"]["temporal"] = 2
        # with them, frame t's refinement reads W^ab(t−1) (prev's channels 3, 4), not C's output
        # (channels 1, 2): the same frame again with other colours there carries them
        p2 = a["prev"].clone()
        other = torch.rand(2, 32, 48, generator=g, dtype=torch.float32) * 100 - 50
        p2[3:5] = other
        p2[1:3] = torch.rand(2, 32, 48, generator=g, dtype=torch.float32) * 100 - 50
        wo = net.frame(gr, c, p2)
        d_wo = float((wo["warp_ab"] - other).abs()[:, 4:-4, 4:-4].mean())
        d_nt = float((nt["warp_ab"] - other).abs()[:, 4:-4, 4:-4].mean())
        assert d_wo < 1.0 and d_nt > 10, (d_wo, d_nt)
        try:
            net.frame(gr, c, a["prev"][:3])
            raise AssertionError("a 3-channel state accepted with temporal candidates")
        except ValueError:
            pass
    for mutate in (lambda r: r.update(temporal=2), lambda r: r.update(temporal_h=0.01),
                   lambda r: r.update(temporal=6, temporal_h=0.01),
                   lambda r: r.update(temporal=2, temporal_h=0),
                   lambda r: r.update(temporal=-1, temporal_h=0.01)):
        a = json.loads(json.dumps(TINY))
        a["A"]["refine"] = {"radius": 4, "patch": 5, "h": 0.005}
        mutate(a["A"]["refine"])
        try:
            parse_arch(a)
            raise AssertionError("bad A.refine accepted: %s" % a["A"]["refine"])
        except ArchError:
            pass
    a = json.loads(json.dumps(TINY))
    a["A"]["refine"]["temporal"] = 0
    a["A"]["refine"].pop("subpixel")    # which needs them (test_refine_subpixel)
    assert "temporal" not in parse_arch(a)["A"]["refine"]


def test_refine_predict():
    """The motion-predicted temporal candidates (NETWORK.md, "A", refine, predict): their costs,
    a, b and displacements are the direct per-pixel definition around a random integer motion
    field (borders clamped, and those inside the temporal window at PREDICT_EXCLUDED); on a
    textured field moving 1, 2, …, 6 pixels a frame across, the cheapest displacement with them
    (the state carried frame to frame) is the true move on every frame, with a cost of 0, where
    the temporal window (radius 2) alone loses it from the third frame on; through the network
    the state is out["prev"]'s channels 5, 6 (0 at the zero state and after a pass-through;
    where each pixel takes from, clamped to the image), and a motion of 0 adds nothing; the arch takes predict in [0, 3], only with the temporal
    candidates."""
    from vaefarm_ref.model import (temporal_candidates, temporal_predicted, temporal_best,
                                   temporal_displacements, PREDICT_EXCLUDED)
    f64 = torch.float64
    g = torch.Generator().manual_seed(31)
    H, W, R, Q, p = 16, 20, 2, 2, 5
    cur = torch.rand(2, 1, H, W, generator=g, dtype=f64) * 100 - 50
    prev = torch.rand(2, 1, H, W, generator=g, dtype=f64) * 100 - 50
    pab = torch.rand(2, 2, H, W, generator=g, dtype=f64) * 100 - 50
    mot = torch.randint(-6, 7, (2, 2, H, W), generator=g).to(f64)
    cost, cab, disp = temporal_predicted(cur, prev, pab, mot, R, Q, p)
    K = (2 * Q + 1) ** 2
    assert cost.shape == (2, K, H * W) and cab.shape == (2, 2, K, H * W) and disp.shape == (2, 2, K, H * W)
    cl = lambda v, n: min(max(v, 0), n - 1)  # noqa: E731
    excluded = 0
    for n in range(2):
        for (y, x) in ((0, 0), (7, 9), (H - 1, 3), (2, W - 1), (10, 10), (H - 1, W - 1)):
            my, mx = int(mot[n, 0, y, x]), int(mot[n, 1, y, x])
            for k in range(K):
                dy, dx = my + k // (2 * Q + 1) - Q, mx + k % (2 * Q + 1) - Q
                assert (int(disp[n, 0, k, y * W + x]), int(disp[n, 1, k, y * W + x])) == (dy, dx)
                sy, sx = cl(y + dy, H), cl(x + dx, W)
                if abs(dy) <= R and abs(dx) <= R:
                    assert float(cost[n, k, y * W + x]) == PREDICT_EXCLUDED
                    excluded += 1
                    continue
                c = sum(((float(cur[n, 0, cl(y + u, H), cl(x + v, W)])
                          - float(prev[n, 0, cl(sy + u, H), cl(sx + v, W)])) * 0.01) ** 2
                        for u in range(-2, 3) for v in range(-2, 3)) / 25
                assert abs(float(cost[n, k, y * W + x]) - c) < 1e-12
                assert torch.equal(cab[n, :, k, y * W + x], pab[n, :, sy, sx])
    assert excluded > 0
    # an accelerating pan: the state follows it
    H, W = 24, 64
    field = torch.rand(1, 1, H, W + 64, generator=g, dtype=f64) * 100 - 50
    ab = torch.zeros(1, 2, H, W, dtype=f64)
    shift, pos, m_state = 0, [], torch.zeros(1, 2, H, W, dtype=f64)
    prevL = field[:, :, :, :W]
    found = {True: [], False: []}
    for v in range(1, 7):
        shift += v
        curL = field[:, :, :, shift:shift + W]      # frame t(x) = frame t−1(x + v)
        tc, _ = temporal_candidates(curL, prevL, ab, R, p)
        d0 = temporal_displacements(1, R, H * W, curL.device)
        qc, _, qd = temporal_predicted(curL, prevL, ab, m_state, R, Q, p)
        for with_pred in (True, False):
            c = torch.cat([tc, qc], 1) if with_pred else tc
            d = torch.cat([d0, qd], 2) if with_pred else d0
            best, ds = temporal_best(c, d)
            inner = ds.reshape(1, 2, H, W)[:, :, 3:H - 3, 3:W - 12]
            bc = c.gather(1, best[:, None]).reshape(1, H, W)[:, 3:H - 3, 3:W - 12]
            found[with_pred].append(bool((inner[:, 0] == 0).all() and (inner[:, 1] == v).all()
                                          and float(bc.max()) == 0.0))
            if with_pred:
                m_state = ds.reshape(1, 2, H, W).to(f64)
        prevL = curL
    assert all(found[True]), found
    assert found[False] == [True, True, False, False, False, False], found
    # through the network
    net = make_model("tiny", 3)
    rgb = torch.rand(3, 32, 48, generator=g)
    c = net.reference(rgb)
    gr = torch.rand(1, 32, 48, generator=g)
    gr2 = torch.roll(gr, 1, dims=2)
    with torch.no_grad():
        a0 = net.frame(gr, c)
        b0 = net.frame(gr2, c, a0["prev"])
        net.arch["A"]["refine"]["predict"] = 2
        a1 = net.frame(gr, c)
        assert a1["prev"].shape == (7, 32, 48) and not a1["prev"][5:7].any()
        assert torch.equal(a1["prev"][:5], a0["prev"])
        b1 = net.frame(gr2, c, a1["prev"])      # motion 0: every predicted candidate excluded
        assert torch.equal(b1["warp_ab"], b0["warp_ab"])
        mv = b1["prev"][5:7, 4:-4, 4:-4]
        assert float((mv[0] == 0).float().mean()) > 0.9 and float((mv[1] == -1).float().mean()) > 0.9
        # the motion is where each pixel takes from, clamped: it never leaves the image
        m = b1["prev"][5:7]
        yy = torch.arange(32).view(32, 1).expand(32, 48)
        xx = torch.arange(48).view(1, 48).expand(32, 48)
        assert bool(((yy + m[0] >= 0) & (yy + m[0] <= 31) & (xx + m[1] >= 0) & (xx + m[1] <= 47)).all())
        pt = net.passthrough(gr, rgb)
        assert pt["prev"].shape == (7, 32, 48) and not pt["prev"][5:7].any()
        net.arch["A"]["refine"].pop("predict")
    for v, ok in ((0, True), (1, True), (3, True), (4, False), (-1, False), (1.5, False), (True, False)):
        a = json.loads(json.dumps(TINY))
        a["A"]["refine"]["predict"] = v
        try:
            r = parse_arch(a)["A"]["refine"]
            assert ok and r.get("predict", 0) == v, "A.refine.predict %r accepted" % (v,)
        except ArchError:
            assert not ok, "A.refine.predict %r refused" % (v,)
    a = json.loads(json.dumps(TINY))
    a["A"]["refine"] = {"radius": 4, "patch": 5, "h": 0.005, "predict": 2}
    try:
        parse_arch(a)
        raise AssertionError("A.refine.predict accepted without temporal candidates")
    except ArchError as e:
        assert "temporal" in str(e)


def test_weights_and_inference():
    torch.set_num_threads(2)
    net = make_model("tiny", 7)
    p = os.path.join(TMP, "tiny7.safetensors")
    save_weights(p, net)
    net2 = load_model(p)
    H, W = 64, 96
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, H, W, generator=g)
    grey = lab.luma(torch.rand(3, H, W, generator=g), 0.2126, 0.0722)
    with torch.no_grad():
        outs = []
        for m in (net, net2):
            c = m.reference(rgb)
            o0 = m.frame(grey, c)
            o1 = m.frame(grey, c, o0["prev"])
            outs.append(o1["ab"])
            assert o0["warp_ab"].shape == (2, H, W) and o0["conf"].shape == (1, H, W)
            assert [t.shape[0] for t in o0["taps"]] == [64, 128, 256, 512]
            for t in o0["taps"]:
                nrm = t.norm(dim=0)
                assert float((nrm - 1).abs().max()) < 1e-5
            # residual C (tiny): ab = W^ab + 128·tanh(·)
            assert float((o0["ab"] - o0["warp_ab"]).abs().max()) <= 128.0
            assert float((o0["ab"] - o0["warp_ab"]).abs().max()) > 1.0
            # warp_ab is a convex combination of the reference's ab (refined: at full size)
            ra = c["ref_ab_full"] if m.arch["A"].get("refine") else c["ref_ab"]
            for ch in range(2):
                assert float(o0["warp_ab"][ch].min()) >= float(ra[ch].min()) - 1e-3
                assert float(o0["warp_ab"][ch].max()) <= float(ra[ch].max()) + 1e-3
            # batched == unbatched
            ob = m.frame(torch.stack([grey, grey])[:, None], c, None)
            # (batch 2 takes other convolution code paths: f32 rounding differs at ~1e-7; the
            # sharp softmax (tau 0.005) over this random network's flat scores amplifies it in the
            # expected positions, which the refinement's bilinear blend turns into small moves of
            # the warp (measured max 0.3, mean 0.002 on a, b of ±50); C then spreads any change
            # through its instance norms, so C is compared on the same input)
            assert float((ob["theta"][1] - o0["theta"]).abs().max()) < 1e-5
            d = (ob["warp_ab"][1] - o0["warp_ab"]).abs()
            assert float(d.max()) < 1.0 and float(d.mean()) < 0.01, (float(d.max()), float(d.mean()))
            cb = m.C(torch.stack([o0["x7"], o0["x7"]]))
            assert float((cb[1] - o0["ab"]).abs().max()) < 0.5
        assert torch.equal(outs[0], outs[1]), "weights file round trip changed the output"
        # post: luma is kept where attainable; flat ab is copied
        gf = torch.nn.functional.interpolate(grey[None, None], size=(2 * H, 2 * W), mode="bilinear",
                                             align_corners=False)[0, 0].clamp(0.02, 0.98)
        ab = torch.zeros(2, H, W)
        ab[0], ab[1] = 10.0, -15.0
        rgb_o, cbcr = net.post(grey, ab, gf)
        y = lab.luma(rgb_o, 0.2126, 0.0722)
        assert float((y - gf).abs().max()) < 1e-4, float((y - gf).abs().max())
        full = net.post_full(grey[None, None], ab[None], gf[None, None])
        assert float((full["ab_full"][0, 0] - 10).abs().max()) < 1e-3
        assert rgb_o.shape == (3, 2 * H, 2 * W) and cbcr.shape == (2, 2 * H, 2 * W)
        cb = (rgb_o[2] - y) / (2 * (1 - 0.0722))
        assert float((cb - cbcr[0]).abs().max()) < 1e-5
        # post step 1 with the arch's upsample: tiny's radius 0 is bilinear upsampling of ab
        # (windows of one pixel: A = 0, B = ab); a radius above 0 is the guided filter
        abr = torch.randn(1, 2, H, W, generator=torch.Generator().manual_seed(5)) * 30
        bil = torch.nn.functional.interpolate(abr, size=(2 * H, 2 * W), mode="bilinear",
                                              align_corners=False)
        assert net.arch["upsample"]["radius"] == 0
        assert float((net.upsample(grey[None, None], abr, gf[None, None]) - bil).abs().max()) < 1e-4
        assert float((net.guided_up(grey[None, None], abr, gf[None, None], 2, 1e-3) - bil).abs().max()) > 1
        # with C.out zero a residual C outputs its warp exactly; a direct one outputs grey
        for residual in (True, False):
            net.C.residual = residual
            with torch.no_grad():
                w, b = net.C.out.weight.clone(), net.C.out.bias.clone()
                net.C.out.weight.zero_()
                net.C.out.bias.zero_()
                o = net.frame(grey, net.reference(rgb))
                net.C.out.weight.copy_(w)
                net.C.out.bias.copy_(b)
            assert torch.equal(o["ab"], o["warp_ab"] if residual else torch.zeros_like(o["ab"]))
        # logvar for training
        x7 = torch.randn(1, 7, H, W)
        assert net.logvar(x7).shape == (1, 128, H // 8, W // 8)


def test_passthrough():
    """Reference pass-through (docs/NODE.md): the test's bounds (the engine's, node/node.h) and
    the state a frame that passes hands on."""
    from vaefarm_ref.model import Net, luma_of
    net = make_model("tiny", 7)
    H, W = 40, 48                               # 1920 pixels: 9 may be off
    rgb = torch.rand(3, H, W, generator=torch.Generator().manual_seed(3))
    y = luma_of(rgb[None], 0.299, 0.114)[0, 0]
    assert Net.is_reference_frame(y, y)
    assert Net.is_reference_frame(y + 3.9 / 255, y)
    assert not Net.is_reference_frame(y + 4.1 / 255, y)
    for n, want in ((9, True), (10, False)):
        g = y.clone()
        g.view(-1)[:n] += 0.2
        assert Net.is_reference_frame(g, y) == want, n
    assert not Net.is_reference_frame(torch.rand(H, W), y)
    pt = net.passthrough(y, rgb)
    ab = lab.rgb_to_lab(rgb)[1:3]
    assert torch.equal(pt["ab"], ab)
    assert pt["prev"].shape == (5, H, W)
    assert torch.equal(pt["prev"][1:3], ab) and torch.equal(pt["prev"][3:5], ab)
    assert torch.allclose(pt["prev"][0], lab.grey_to_L(y) - 50.0)
    # the next frame runs from it (5 channels: X̂ and W^ab)
    with torch.no_grad():
        o = net.frame(torch.roll(y, 1, dims=1), net.reference(rgb), pt["prev"])
    assert o["ab"].shape == (2, H, W) and bool(torch.isfinite(o["ab"]).all())


def test_carry():
    """propagate (docs/NETWORK.md, post-processing 1b): Net.carry against a plain numpy block
    matcher written from the definition (every pixel, every move, every window position
    clamped to the picture), on a picture that moves by (−2, +3); the arch key is optional and
    round-trips."""
    from vaefarm_ref.model import Net
    rng = np.random.default_rng(3)
    h, w, R, P = 19, 23, 4, 3
    base = rng.random((h + 8, w + 8))
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1)) / 3   # some texture, some smooth
    cur, prev = base[2:2 + h, 4:4 + w], base[4:4 + h, 1:1 + w]      # cur(y, x) = prev(y − 2, x + 3)
    pab = rng.normal(size=(2, h, w)) * 30
    ab = rng.normal(size=(2, h, w)) * 30
    cy = lambda v: min(max(v, 0), h - 1)  # noqa: E731
    cx = lambda v: min(max(v, 0), w - 1)  # noqa: E731
    want_cost = np.zeros((h, w))
    want_move = np.zeros((h, w, 2), int)
    for y in range(h):
        for x in range(w):
            best = None
            for dy in range(-R, R + 1):
                for dx in range(-R, R + 1):
                    c = 0.0
                    for oy in range(-(P // 2), P // 2 + 1):
                        for ox in range(-(P // 2), P // 2 + 1):
                            qy, qx = cy(y + oy), cx(x + ox)
                            c += (255 * cur[qy, qx] - 255 * prev[cy(qy + dy), cx(qx + dx)]) ** 2
                    c += 1e-3 * (dx * dx + dy * dy)
                    if best is None or c < best - 1e-9:
                        best, want_move[y, x] = c, (dy, dx)
            want_cost[y, x] = best
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None]  # noqa: E731
    for share, S in ((1.0, 0.0), (0.6, 12.0)):
        out, cost, move = Net.carry(T(cur[None]), T(prev[None]), T(pab).float(), T(ab).float(),
                                    share, R, P, S)
        assert np.allclose(cost[0, 0].numpy(), want_cost, rtol=1e-12, atol=1e-9)
        assert (move[0].permute(1, 2, 0).numpy() == want_move).all()
        inner = (slice(4, h - 4), slice(4, w - 4))   # away from the borders, the true move
        assert (want_move[inner] == (-2, 3)).all()
        carried = np.stack([pab[c][np.clip(np.arange(h)[:, None] + want_move[..., 0], 0, h - 1),
                                   np.clip(np.arange(w)[None] + want_move[..., 1], 0, w - 1)]
                            for c in range(2)])
        s = share * np.exp(-want_cost / (P * P * S * S)) if S else share
        assert np.allclose(out[0].numpy(), s * carried + (1 - s) * ab, atol=1e-4)
    a = json.loads(json.dumps(TINY))
    assert "propagate" not in parse_arch(a)
    a["propagate"] = {"radius": 6, "patch": 5, "shares": [1, 0.8, 0.6, 0.4, 0.2], "confidence": 12}
    assert parse_arch(json.loads(json.dumps(parse_arch(a))))["propagate"] == {
        "radius": 6, "patch": 5, "shares": [1.0, 0.8, 0.6, 0.4, 0.2], "confidence": 12.0}


def test_carry_subpixel():
    """propagate.subpixel (Net.carry's Lucas–Kanade step): against the definition written pixel
    by pixel in numpy; on a texture moved by whole pixels it changes nothing away from the
    borders; on one moved by fractions of a pixel it carries the colours nearer the truth than
    the whole-pixel move; the arch key is optional, a boolean, and round-trips."""
    from vaefarm_ref.model import Net
    rng = np.random.default_rng(7)
    h, w, R, P = 24, 30, 3, 5
    k = rng.uniform(0.15, 0.7, 10) * np.exp(1j * rng.uniform(0, 2 * np.pi, 10))
    ph = rng.uniform(0, 2 * np.pi, 10)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    tex = lambda y, x: 0.5 + sum(0.04 * np.sin(q.real * x + q.imag * y + f)  # noqa: E731
                                 for q, f in zip(k, ph))
    col = lambda y, x: np.stack([30 * np.sin(0.21 * x + 0.1 * y),  # noqa: E731
                                 25 * np.cos(0.19 * y - 0.05 * x)])
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None]  # noqa: E731
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731

    def by_definition(cur, prev, pab, move):
        g, p, r = 255.0 * f32(cur), 255.0 * f32(prev), P // 2
        cy = lambda v: min(max(v, 0), h - 1)  # noqa: E731
        cx = lambda v: min(max(v, 0), w - 1)  # noqa: E731
        out = np.zeros((2, h, w))
        for y in range(h):
            for x in range(w):
                dy, dx = move[:, y, x]
                S = np.zeros(5)
                for oy in range(-r, r + 1):
                    for ox in range(-r, r + 1):
                        qy, qx = cy(y + oy), cx(x + ox)
                        my, mx = cy(qy + dy), cx(qx + dx)
                        gx = (p[my, cx(mx + 1)] - p[my, cx(mx - 1)]) * 0.5
                        gy = (p[cy(my + 1), mx] - p[cy(my - 1), mx]) * 0.5
                        e = g[qy, qx] - p[my, mx]
                        S += (gx * gx, gx * gy, gy * gy, gx * e, gy * e)
                sxx, sxy, syy, sxe, sye = S
                D = sxx * syy - sxy * sxy
                ox_ = oy_ = 0.0
                if D > 1e-6 * (sxx + syy) ** 2 + 1e-9:
                    ox_ = min(max((syy * sxe - sxy * sye) / D, -1), 1)
                    oy_ = min(max((sxx * sye - sxy * sxe) / D, -1), 1)
                fy = min(max(y + dy + oy_, 0), h - 1)
                fx = min(max(x + dx + ox_, 0), w - 1)
                y0, x0 = int(np.floor(fy)), int(np.floor(fx))
                y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
                wy, wx = fy - y0, fx - x0
                v = f32(pab)
                out[:, y, x] = ((1 - wy) * ((1 - wx) * v[:, y0, x0] + wx * v[:, y0, x1])
                                + wy * ((1 - wx) * v[:, y1, x0] + wx * v[:, y1, x1]))
        return out

    inner = (slice(None), slice(5, h - 5), slice(5, w - 5))
    for (dy, dx), whole in (((2, -1), True), ((0.4, -0.3), False), ((-1.3, 0.7), False)):
        prev, pab = f32(tex(yy, xx)), col(yy, xx)   # greys as the engine holds them, f32
        cur, truth = f32(tex(yy + dy, xx + dx)), col(yy + dy, xx + dx)   # cur(q) = prev(q + d)
        zero = np.zeros((2, h, w))
        args = (T(cur[None]), T(prev[None]), T(pab).float(), T(zero).float(), 1.0, R, P, 0.0)
        plain, cost, move = Net.carry(*args)
        sub, cost2, move2 = Net.carry(*args, subpixel=True)
        assert torch.equal(cost, cost2) and torch.equal(move, move2)
        want = by_definition(cur, prev, pab, move[0].numpy()).astype(np.float32)
        assert np.array_equal(sub[0].numpy(), want), np.abs(sub[0].numpy() - want).max()
        e_plain = np.abs(plain[0].numpy() - truth)[inner].mean()
        e_sub = np.abs(sub[0].numpy() - truth)[inner].mean()
        if whole:
            assert e_plain < 1e-4 and e_sub < 1e-4, (e_plain, e_sub)
        else:
            assert e_sub < 0.6 * e_plain, (dy, dx, e_plain, e_sub)
    a = json.loads(json.dumps(TINY))
    a["propagate"] = {"radius": 6, "patch": 5, "shares": [1], "confidence": 12, "subpixel": True}
    assert parse_arch(json.loads(json.dumps(parse_arch(a))))["propagate"]["subpixel"] is True
    a["propagate"]["subpixel"] = False
    assert "subpixel" not in parse_arch(a)["propagate"]
    for bad in (1, "yes", None):
        a["propagate"]["subpixel"] = bad
        try:
            parse_arch(a)
            raise AssertionError("propagate.subpixel %r accepted" % (bad,))
        except ArchError as e:
            assert "propagate.subpixel" in str(e), e


def test_gate_ramp():
    """C.gate_ramp (docs/NETWORK.md "C"): the k-th frame after a reference pass-through has C's
    gated correction scaled by min(1, k / K), counted by the state's last channel; the zero
    state (a reset, a warm-up) has none, and the model is then the one without the ramp."""
    from vaefarm_ref.model import gate_ramp_factor, luma_of
    K = 3
    want = {-1: 1.0, 0: 1 / 3, 1: 2 / 3, 2: 1.0, 50: 1.0}
    for age, r in want.items():
        assert abs(float(gate_ramp_factor(torch.tensor(float(age)), K)) - r) < 1e-7, (age, r)
    plain = make_model("tiny", 7)
    gen = torch.Generator().manual_seed(8)
    gw = torch.randn(plain.C.out.weight[:1].shape, generator=gen) * (2.0 / plain.C.out.weight.shape[1] ** 0.5)
    plain.add_gate(0.5, gw)
    plain.eval()
    ramped = copy.deepcopy(plain)
    ramped.set_gate_ramp(K)
    assert ramped.arch["C"]["gate_ramp"] == K and ramped.C.gate_ramp == K
    H, W = 48, 64
    rgb = torch.rand(3, H, W, generator=torch.Generator().manual_seed(4))
    y = luma_of(rgb[None], 0.2126, 0.0722)[0, 0]
    frames = [torch.roll(y, 2 * t, dims=1) for t in range(6)]
    with torch.no_grad():
        cache = plain.reference(rgb)
        pt = ramped.passthrough(frames[0], rgb)
        assert pt["prev"].shape[0] == plain.passthrough(frames[0], rgb)["prev"].shape[0] + 1
        assert float(pt["prev"][-1].abs().max()) == 0.0
        state = pt["prev"]
        for k in range(1, 6):
            o = ramped.frame(frames[k], cache, state)
            p = plain.frame(frames[k], cache, state[:-1])     # the same input, no ramp
            assert torch.equal(o["warp_ab"], p["warp_ab"])
            r = min(1.0, k / K)
            got, full = o["ab"] - o["warp_ab"], p["ab"] - p["warp_ab"]
            assert float(full.abs().mean()) > 0.1, k           # C corrects: the test can fail
            assert torch.allclose(got, r * full, atol=1e-4), (k, float((got - r * full).abs().max()))
            assert torch.equal(o["prev"][-1], torch.full((H, W), float(k))), k
            state = o["prev"]
        # the zero state: no pass-through, no ramp, the same model as without it
        o, p = ramped.frame(frames[1], cache), plain.frame(frames[1], cache)
        assert torch.equal(o["ab"], p["ab"]) and float(o["prev"][-1].max()) == -1.0
        o2, p2 = ramped.frame(frames[2], cache, o["prev"]), plain.frame(frames[2], cache, p["prev"])
        assert torch.equal(o2["ab"], p2["ab"]) and float(o2["prev"][-1].max()) == -1.0
        try:   # a state without the age is refused, not misread
            ramped.frame(frames[2], cache, p["prev"])
            raise AssertionError("a state without its age was accepted")
        except ValueError as e:
            assert "gate_ramp" in str(e)
    try:
        make_model("tiny", 7).set_gate_ramp(K)       # no gate
        raise AssertionError("a ramp without a gate was accepted")
    except ArchError:
        pass


def main():
    tests = [test_safetensors_roundtrip, test_lab, test_arch_validation, test_names,
             test_refine_per_cell_equals_direct, test_refine_recovers_shifts,
             test_refine_is_continuous, test_refine_temporal, test_refine_subpixel,
             test_refine_predict,
             test_weights_and_inference, test_passthrough, test_gate_ramp, test_carry,
             test_carry_subpixel,
             test_resnet50_trunk]
    torch.set_num_threads(2)
    failed = 0
    t00 = time.time()
    for t in tests:
        t0 = time.time()
        try:
            t()
            print("ok   %-32s %.1f s" % (t.__name__, time.time() - t0))
        except Exception:  # noqa: BLE001
            failed += 1
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
    print("%d/%d passed in %.1f s" % (len(tests) - failed, len(tests), time.time() - t00))
    import shutil
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
