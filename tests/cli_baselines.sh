#!/usr/bin/env bash
# The quality baselines (scripts/baselines.py, docs/QUALITY.md) on a tiny film, and
# scripts/quality.py end to end on it. The film: 2 shots of 16 frames, 160x96, each a pure
# translation of a test photo (2 px right a frame; then 2 px right and 1 px down a frame), colour
# truth FFV1 yuv444p + its grey (the Y plane) + each shot's first colour frame as reference.
# Checks, on the real outputs:
#   - every method's output has the truth's frame count and size, and its luma is the input's,
#     bit for bit
#   - ceiling: ab PSNR far above every other method (>= 45 dB and >= 15 dB above the best other)
#   - transfer: per shot the a, b it predicts are the reference's mean a, b at every pixel; the
#     written film's mean a, b (decoded, mid-tone pixels) within 1.5 of the reference's
#   - flow: on pure translation beats the global transfer by >= 5 dB RGB PSNR and ab PSNR; each
#     shot's first frame (the reference's own colour) >= 40 dB RGB PSNR; warp too (vaefarm's
#     reference pass-through, which the warp baseline does as the model)
#   - warp: A's W^ab as baselines.py computes it (without C) equals net.frame()'s warp_ab, from the
#     zero state and after a frame (max 0.25, mean 2e-3 ab units: float rounding)
#   - the Newton keep_luma gives the reference bisection's 8-bit Cb, Cr (all but rounding ties)
#   - quality.py: runs the model through vaefarm and every baseline, writes quality.md, .csv, strips,
#     per-shot figures (eval --cuts) whose frame-weighted means are the film's, and whose
#     flicker is the film's within shots
#   - gain_by_position.py --by-frame and propagate_study.py on the quality folder: their rows;
#     propagate_study.py's matcher (--subpixel too) on a texture moved by known amounts;
#     no share propagated changes nothing
#   - warp with film-size propagation (arch propagate): frames 1-2 after each reference carry
#     (frame 1 nearer the truth than the warp's own on these pans), every other frame unchanged
#   - gain_by_size.py: both sizes' rows; a zero correction gives C minus its warp = 0 everywhere;
#     the warp's own error at the film's size (--absolute) is that of baselines.py's warp
# Usage: cli_baselines.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -uo pipefail
vf=$1; data=$2; src=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
py=/usr/bin/python3
model="$data/models/vaefarm-tiny.safetensors"
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)
torgb="scale=in_color_matrix=bt601:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24"

# --- the tiny film
"${ff[@]}" -loop 1 -i "$data/photos/00.png" -loop 1 -i "$data/photos/07.png" -filter_complex \
  "[0:v]crop=160:96:'40+2*n':60,trim=end_frame=16,setpts=N/25/TB,format=yuv444p[a];[1:v]crop=160:96:'40+2*n':'40+n',trim=end_frame=16,setpts=N/25/TB,format=yuv444p[b];[a][b]concat=n=2:v=1,scale=out_color_matrix=bt601:out_range=tv,format=yuv444p,split=3[c][g0][r0];[g0]extractplanes=y[g];[r0]select='eq(n\,0)+eq(n\,16)',${torgb}[r]" \
  -map "[c]" -r 25 -c:v ffv1 -pix_fmt yuv444p -colorspace smpte170m -color_range tv "$tmp/tiny_color.mkv" \
  -map "[g]" -r 25 -c:v ffv1 -pix_fmt gray -colorspace smpte170m -color_range tv "$tmp/tiny_grey.mkv" \
  -map "[r]" -fps_mode passthrough -start_number 0 "$tmp/tiny_ref_%d.png" \
  || { bad "make the tiny film"; exit 1; }
cat >"$tmp/tiny.json" <<'EOF'
{"name": "tiny", "frames": 32, "fps": [25, 1], "width": 160, "height": 96,
 "grey": "tiny_grey.mkv", "truth": "tiny_color.mkv",
 "shots": [{"start": 0, "end": 16, "reference": "tiny_ref_0.png"},
           {"start": 16, "end": 32, "reference": "tiny_ref_1.png"}],
 "source": "test photos 00, 07 translated", "shots_from": "made so"}
EOF
nf() { ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets,width,height -of csv=p=0 "$1"; }
check "the tiny film: 32 frames of 160x96, grey and colour" \
  [ "$(nf "$tmp/tiny_color.mkv")" = "160,96,32" -a "$(nf "$tmp/tiny_grey.mkv")" = "160,96,32" ]

# --- every baseline
methods="transfer transfer_l warp flow ceiling_inf ceiling"
t0=$(date +%s.%N)
"$py" "$src/scripts/baselines.py" "$tmp/tiny.json" --out-dir "$tmp/b" --model "$model" >"$tmp/b.log" 2>&1
rc=$?
echo "     baselines: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
check "baselines.py runs (exit $rc)" [ "$rc" = 0 ] || cat "$tmp/b.log"
ymd5() { ffmpeg -loglevel error -i "$1" -map 0:v:0 -vf extractplanes=y -f framemd5 - | grep -v '^#' | awk -F, '{print $NF}'; }
ymd5 "$tmp/tiny_grey.mkv" >"$tmp/grey.md5"
for m in $methods; do
  check "$m: 32 frames of 160x96" [ "$(nf "$tmp/b/$m.mkv" 2>/dev/null)" = "160,96,32" ]
  check "$m: luma is the input's, bit for bit" cmp -s "$tmp/grey.md5" <(ymd5 "$tmp/b/$m.mkv")
  "$vf" eval --truth "$tmp/tiny_color.mkv" --output "$tmp/b/$m.mkv" --json --per-frame --threads 1 \
    >"$tmp/$m.eval.json" 2>/dev/null || bad "$m: eval"
done

# shellcheck disable=SC2086  # the method names, one word each
check "ceiling: ab PSNR >= 45 dB and >= 15 dB above every other method" "$py" - "$tmp" $methods <<'PY'
import json, sys
d, methods = sys.argv[1], sys.argv[2:]
ev = {m: json.load(open("%s/%s.eval.json" % (d, m))) for m in methods}
ab = {m: e["ab"]["psnr"] for m, e in ev.items()}
others = max(v for m, v in ab.items() if m not in ("ceiling",))
print("     ab PSNR:", ", ".join("%s %.2f" % kv for kv in ab.items()))
print("     RGB PSNR:", ", ".join("%s %.2f" % (m, e["rgb"]["psnr"]) for m, e in ev.items()))
assert ab["ceiling"] >= 45 and ab["ceiling"] >= others + 15, ab
PY
check "flow beats the global transfer on pure translation by >= 5 dB (RGB and ab PSNR)" "$py" - "$tmp" <<'PY'
import json, sys
e = lambda m: json.load(open("%s/%s.eval.json" % (sys.argv[1], m)))  # noqa: E731
f, t = e("flow"), e("transfer")
assert f["rgb"]["psnr"] >= t["rgb"]["psnr"] + 5 and f["ab"]["psnr"] >= t["ab"]["psnr"] + 5, \
    (f["rgb"]["psnr"], t["rgb"]["psnr"], f["ab"]["psnr"], t["ab"]["psnr"])
assert f["rgb"]["ssim"] > t["rgb"]["ssim"]
PY
for m in flow warp; do   # warp: by vaefarm's reference pass-through
check "$m: each shot's first frame (the reference's colour) >= 40 dB" "$py" - "$tmp" "$m" <<'PY'
import json, sys
pf = json.load(open("%s/%s.eval.json" % tuple(sys.argv[1:3])))["per_frame"]
v = [pf[i]["psnr_rgb"] for i in (0, 16)]
print("     first frames:", v)
assert min(v) >= 40, v
PY
done

# the methods' own a, b, the warp shortcut and keep_luma against the reference's code
cat >"$tmp/inner.py" <<'PY'
import os, sys, json
import numpy as np, torch
d, src, model = sys.argv[1:4]
sys.path.insert(0, os.path.join(src, "scripts"))
import baselines as B
from vaefarm_ref import lab
from vaefarm_ref.model import Net
torch.set_num_threads(1)
film = B.Film(os.path.join(d, "tiny.json"))
what = sys.argv[4]
if what == "transfer":
    ab = np.concatenate([x for _, x in B.ab_transfer(film)])
    import subprocess
    out = np.frombuffer(subprocess.run(
        ["ffmpeg", "-v", "error", "-i", os.path.join(d, "b", "transfer.mkv"), "-sws_flags",
         "bicubic+accurate_rnd+full_chroma_int", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-"],
        capture_output=True, check=True).stdout, np.uint16).reshape(-1, 96, 160, 3)
    for s, e, ref in film.shots:
        mu = B.lab_of(B.read_png(ref))[1:3].reshape(2, -1).mean(1)
        dev = np.abs(ab[s:e] - mu[None, :, None, None]).max()
        assert dev < 1e-3, ("predicted ab", s, dev)
        # the written film, decoded (rgb48: no 8-bit RGB rounding), Lab of its mid-tone pixels
        rgb = out[s:e].transpose(0, 3, 1, 2).astype(np.float32) / 65535.0
        lab = B.lab_of(rgb)
        mid = (lab[:, 0] > 25) & (lab[:, 0] < 85)
        got = np.array([lab[:, 1][mid].mean(), lab[:, 2][mid].mean()])
        print("     shot %d: reference mean ab %.3f %.3f, predicted %.3f %.3f, written (mid-tones) %.3f %.3f"
              % (s, mu[0], mu[1], ab[s, 0].mean(), ab[s, 1].mean(), got[0], got[1]))
        assert np.abs(got - mu).max() < 1.5, (got, mu)
elif what == "warp":
    net = B.load_net(model)
    H, W = B.inference_size(net.arch, film.w, film.h)
    s, e, ref = film.shots[1]
    with torch.no_grad():
        cache = net.reference(torch.from_numpy(B.resize(B.read_png(ref), H, W)))
        g = torch.from_numpy(B.resize(film.grey(film.Y[s + 5:s + 7])[:, None], H, W))
        mine, motion = B.warp_lo(net, g, cache)
        o = [net.frame(g[i, 0], cache, None) for i in range(2)]
        theirs = torch.stack([x["warp_ab"] for x in o])
        # and after a previous frame (the refinement's temporal candidates, when the arch has
        # them, and the motion-predicted ones with the motion carried)
        prev = torch.cat([lab.grey_to_L(g[:1]) - 50.0, mine[:1], motion[:1]], dim=1)
        mine = torch.cat([mine, B.warp_lo(net, g[1:], cache, prev)[0]])
        theirs = torch.cat([theirs, net.frame(g[1, 0], cache, o[0]["prev"])["warp_ab"][None]])
    d = (mine - theirs).abs()
    err, mean = d.max().item(), d.mean().item()
    print("     inference size %dx%d, |W^ab - net.frame's|: max %.2e, mean %.2e (ab units)" % (H, W, err, mean))
    # float32 rounding of batched against one-frame products; with A.refine the softmax's
    # expected positions and the refinement's 1/h² carry it a little further (docs/NETWORK.md)
    assert err < 0.25 and mean < 2e-3, (err, mean)
elif what == "keep_luma":
    ab = np.concatenate([x for _, x in B.ab_flow(film)])
    g = torch.from_numpy(film.grey(film.Y)[:, None])
    ab[:4] *= 3.0   # also colours far out of gamut
    mine = B.keep_luma(g, torch.from_numpy(ab), film.kr, film.kb)
    _, ref, _ = Net.keep_luma(g, torch.from_numpy(ab), film.kr, film.kb)
    q = lambda c: torch.floor(128 + 224 * c + 0.5)  # noqa: E731
    diff = (q(mine) != q(ref)).sum().item()
    print("     Cb, Cr codes that differ: %d of %d; max |d cbcr| %.2e" % (diff, ref.numel(), (mine - ref).abs().max().item()))
    assert diff <= ref.numel() * 1e-4 and (mine - ref).abs().max().item() < 1e-4
PY
for w in transfer warp keep_luma; do
  check "$w (methods' internals)" "$py" "$tmp/inner.py" "$tmp" "$src" "$model" "$w"
done

# --- quality.py end to end on the tiny film
t0=$(date +%s.%N)
"$py" "$src/scripts/quality.py" --films "$tmp/tiny.json" --vaefarm "$vf" --model "$model" \
  --out "$tmp/q" >"$tmp/q.log" 2>&1
rc=$?
echo "     quality.py: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
check "quality.py runs (exit $rc)" [ "$rc" = 0 ] || cat "$tmp/q.log"
check "quality.csv: the 7 methods with their numbers; quality.md; 2 strips" "$py" - "$tmp/q" <<'PY'
import csv, os, sys
q = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(q, "quality.csv"))))
assert [r["method"] for r in rows] == ["model", "transfer", "transfer_l", "warp", "flow",
                                        "ceiling_inf", "ceiling"], rows
assert all(r["film"] == "tiny" and r["frames"] == "32" and float(r["rgb_psnr"]) > 5 for r in rows)
md = open(os.path.join(q, "quality.md")).read()
assert "| tiny | model (vaefarm) |" in md and "Issue 6's bar" in md
assert sorted(os.listdir(os.path.join(q, "strips"))) == ["tiny_shot0.png", "tiny_shot1.png"]
# per shot (eval --cuts 16): two shots of 16 frames per method, whose frame-weighted means are
# the film's; the section compares the model with its warp and flow shot by shot
import json
doc = json.load(open(os.path.join(q, "quality.json")))
for r in rows:
    sh = [s for s in doc["shots"] if s["method"] == r["method"]]
    assert [(s["shot"], s["start"], s["end"]) for s in sh] == [(0, 0, 16), (1, 16, 32)], sh
    for k in ("rgb_psnr", "rgb_ssim", "ab_psnr"):
        assert abs(sum(s[k] * (s["end"] - s["start"]) for s in sh) / 32 - float(r[k])) < 1e-6, (r, k)
    # the film's flicker within shots: its shots' (15 frames each with a previous one in the shot)
    assert abs((sh[0]["flicker"] + sh[1]["flicker"]) / 2 - float(r["flicker_in_shots"])) < 1e-6, (r, sh)
assert "## Per shot: the model against its warp and flow" in md and "| tiny | 2 | " in md, md
assert md.count("\n| tiny | 0 | 0–16 |") == 1 and md.count("\n| tiny | 1 | 16–32 |") == 1, md
PY
check "quality.py again: everything reused (no step rerun)" bash -c \
  "'$py' '$src/scripts/quality.py' --films '$tmp/tiny.json' --vaefarm '$vf' --model '$model' --out '$tmp/q' --no-strips | grep -q baselines && exit 1; grep -q '^| tiny | model' '$tmp/q/quality.md' && grep -q '(0 of 14 steps in this run' '$tmp/q/quality.md'"

# --- a model that changes only C keeps its warp (stamped with F, A and the arch), one that
# changes A redoes it
"$py" - "$src" "$model" "$tmp" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "train"))
import safetensors_io as st
t, m = st.load(sys.argv[2])
for part in ("C", "A"):
    u = dict(t)
    k = next(k for k in sorted(u) if k.startswith(part + ".") and u[k].dtype.is_floating_point)
    u[k] = u[k] * 0.5
    st.save(os.path.join(sys.argv[3], "only_%s.safetensors" % part), u, dict(m, vaefarm_weights="test: %s changed" % part))
PY
for part in C A; do
  "$py" "$src/scripts/quality.py" --films "$tmp/tiny.json" --vaefarm "$vf" --model "$tmp/only_$part.safetensors" \
    --out "$tmp/q" --no-strips --methods model,warp >"$tmp/q_$part.log" 2>&1
  echo "$part: $?" >>"$tmp/q_rc"
done
check "quality.py: a new C reruns the model, not the warp; a new A reruns the warp" bash -c \
  "grep -q 'C: 0' '$tmp/q_rc' && grep -q 'A: 0' '$tmp/q_rc' && grep -q 'model via vaefarm' '$tmp/q_C.log' && \
   ! grep -q 'baselines warp' '$tmp/q_C.log' && grep -q 'baselines warp' '$tmp/q_A.log'" || cat "$tmp/q_C.log" "$tmp/q_A.log"

# --- gain_by_size.py: C minus its warp at the network's and the film's size; with the
# correction's rows of C.out at 0 (a residual C: ab = W^ab + 128 tanh(0)) C is exactly its
# warp, so every entry is 0
"$py" - "$src" "$model" "$tmp" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "train"))
import safetensors_io as st
t, m = st.load(sys.argv[2])
import json
assert json.loads(m["vaefarm"])["C"].get("residual"), "the test model's C is not residual"
t["C.out.weight"][:2] = 0.0
t["C.out.bias"][:2] = 0.0
st.save(os.path.join(sys.argv[3], "shut.safetensors"), t, dict(m, vaefarm_weights="test: no correction"))
PY
"$py" "$src/scripts/gain_by_size.py" --model "$model" --frames 4 --absolute "$tmp/tiny.json" >"$tmp/gbs.txt" 2>&1
"$py" "$src/scripts/gain_by_size.py" --model "$tmp/shut.safetensors" --frames 4 "$tmp/tiny.json" >"$tmp/gbs_shut.txt" 2>&1
check "gain_by_size.py: both sizes, frames 1-3; C moves the model off its warp, a zero correction does not" \
  "$py" - "$tmp/gbs.txt" "$tmp/gbs_shut.txt" <<'PY' || cat "$tmp/gbs.txt" "$tmp/gbs_shut.txt"
import sys
def rows(path):
    r = {}
    for line in open(path):
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(c) == 5 and c[0] == "tiny":
            r[c[1].split()[0]] = [float(x) for x in c[2:]]
    assert set(r) == {"network", "film"}, open(path).read()
    return r
own, shut = rows(sys.argv[1]), rows(sys.argv[2])
assert any(abs(v) > 1e-3 for k in own for v in own[k]), own
assert all(abs(v) < 1e-3 for k in shut for v in shut[k]), shut
PY
check "gain_by_size.py --absolute: the warp's own error at the film's size is baselines.py warp's" \
  "$py" - "$tmp/gbs.txt" "$tmp/tiny.json" "$src" "$model" <<'PY' || cat "$tmp/gbs.txt"
import os, sys
import numpy as np
sys.path.insert(0, os.path.join(sys.argv[3], "scripts"))
import baselines as B
got = None
for line in open(sys.argv[1]):
    c = [x.strip() for x in line.strip().strip("|").split("|")]
    if c[0] == "tiny" and c[1].startswith("film") and c[1].endswith("warp's own"):
        got = [float(x) for x in c[2:]]
film = B.Film(sys.argv[2])
truth = list(film.truth_rgb())
place = {t: t - s for s, e, _ in film.shots for t in range(s, e)}
acc, n = np.zeros(4), np.zeros(4)
for t, ab in B.ab_warp(film, sys.argv[4]):
    for i in range(len(ab)):
        k = place[t + i]
        if 1 <= k <= 3:
            acc[k] += ((ab[i] - B.lab_of(truth[t + i])[1:3]) ** 2).mean()
            n[k] += 1
want = acc[1:] / n[1:]
assert got is not None and np.allclose(got, want, rtol=1e-3, atol=1e-4), (got, want)
PY

# --- the warp of a model with film-size propagation (arch propagate: radius 3, patch 3, shares
# 1, 0.5, no confidence): frames 1 and 2 after each shot's pass-through carry, the others are the
# plain model's warp exactly; on these whole-pixel pans (2 pixels a frame) frame 1 takes the
# reference's a, b moved, nearer the truth than the warp's own
"$py" "$src/train/set_arch.py" "$model" "$tmp/prop.safetensors" \
  'propagate={"radius":3,"patch":3,"shares":[1,0.5],"confidence":0}' >/dev/null || bad "set_arch propagate"
check "warp with propagate: frames 1-2 after the reference carry (nearer the truth), the rest unchanged" \
  "$py" - "$src" "$tmp/tiny.json" "$model" "$tmp/prop.safetensors" <<'PY'
import sys
import numpy as np
sys.path[:0] = [sys.argv[1] + "/scripts", sys.argv[1] + "/train"]
import baselines as B
film = B.Film(sys.argv[2])
truth = [B.lab_of(x)[1:3] for x in film.truth_rgb()]
place = {t: t - s for s, e, _ in film.shots for t in range(s, e)}
def frames(model):
    out = {}
    for t, ab in B.ab_warp(film, model):
        for i in range(len(ab)):
            out[t + i] = ab[i]
    return out
plain, prop = frames(sys.argv[3]), frames(sys.argv[4])
err = lambda ab, t: float(((ab - truth[t]) ** 2).mean())  # noqa: E731
for t, k in place.items():
    same = np.array_equal(plain[t], prop[t])
    assert same == (k not in (1, 2)), (t, k, same)
    if k == 1:
        assert err(prop[t], t) < 0.5 * err(plain[t], t), (t, err(prop[t], t), err(plain[t], t))
print("     frame 1 ab MSE, carried / the warp's: %s" % ", ".join(
    "%.2f / %.2f" % (err(prop[t], t), err(plain[t], t)) for t, k in place.items() if k == 1))
PY

# --- the studies over a quality folder: gain_by_position.py --by-frame (by place after the
# reference, the two 16-frame shots: frames 1, 2, then 3-16), propagate_study.py (no share
# propagated: no change, exactly; flow propagated onto itself: no change either)
"$py" "$src/scripts/gain_by_position.py" --quality "$tmp/q" --b flow --vaefarm "$vf" --by-frame 2 >"$tmp/gbp.txt" 2>&1
check "gain_by_position.py --by-frame: a row per film, then frames 1, 2, 3-16 of both shots" \
  "$py" - "$tmp/gbp.txt" <<'PY' || cat "$tmp/gbp.txt"
import sys
rows = [[c.strip() for c in l.strip().strip("|").split("|")] for l in open(sys.argv[1]) if l.startswith("| ")]
assert any(r[0] == "tiny" for r in rows), rows
by = {r[0]: r for r in rows if r[0] in ("1", "2", "3-16", "17-32", "later")}
assert sorted(by) == ["1", "2", "3-16"] and [by[k][1] for k in ("1", "2", "3-16")] == ["2", "2", "26"], by
PY
"$py" "$src/scripts/propagate_study.py" --quality "$tmp/q" --weights 0,0 --confidence 8 >"$tmp/ps0.txt" 2>&1
"$py" "$src/scripts/propagate_study.py" --quality "$tmp/q" --method flow --radius 2 >"$tmp/psf.txt" 2>&1
check "propagate_study.py: shares 0 change nothing; flow blended into itself changes nothing" \
  "$py" - "$tmp/ps0.txt" "$tmp/psf.txt" <<'PY' || cat "$tmp/ps0.txt" "$tmp/psf.txt"
import sys
def row(p):
    r = [[c.strip() for c in l.strip().strip("|").split("|")] for l in open(p) if l.startswith("| tiny ")]
    assert len(r) == 1, open(p).read()
    return r[0]
z, f = row(sys.argv[1]), row(sys.argv[2])
assert z[2] == "+0.000" and z[3] == "+0.000", z
assert float(z[1]) > 20 and f[2] == "+0.000", (z, f)
PY
# propagate_study.py's matcher on a texture moved by known amounts: a whole-pixel move is
# found exactly, with or without --subpixel; a fractional one is carried nearer the truth by the
# Lucas-Kanade step than by the whole-pixel move (measured: 0.43 against 0.92, 0.26 against 0.82)
check "propagate_study.py match: whole-pixel moves exact; --subpixel follows fractional moves" \
  "$py" - "$src/scripts" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from propagate_study import match
h, w = 48, 64
yy, xx = np.mgrid[0:h, 0:w].astype(float)
rng = np.random.default_rng(5)
k = rng.uniform(0.15, 0.7, 12) * np.exp(1j * rng.uniform(0, 2 * np.pi, 12))
ph = rng.uniform(0, 2 * np.pi, 12)
def f(y, x):   # a texture of 12 plane waves: locally distinctive, moved exactly by any amount
    return 128 + sum(14 * np.sin(q.real * x + q.imag * y + p) for q, p in zip(k, ph))
def g(y, x):
    return np.stack([20 * np.sin(0.21 * x + 0.1 * y), 15 * np.cos(0.19 * y - 0.05 * x)], -1)
inner = (slice(8, h - 8), slice(8, w - 8))
for dy, dx in ((2, -3), (0, 0.4), (-1.3, 0.7)):
    cur = f(yy + dy, xx + dx)          # frame t at p is frame t-1 at p + (dy, dx)
    truth = g(yy + dy, xx + dx)
    e = [np.abs(match(cur, f(yy, xx), g(yy, xx), 4, 5, sub)[0] - truth)[inner].mean()
         for sub in (False, True)]
    print("move (%g, %g): mean |error| whole-pixel %.4f, sub-pixel %.4f" % (dy, dx, e[0], e[1]))
    if dy == int(dy) and dx == int(dx):
        assert e[0] < 1e-9 and e[1] < 1e-9, e
    else:
        assert e[1] < 0.6 * e[0], e
PY

# make_eval_films.sh --films: a name of another set is refused before anything is fetched or made
check "make_eval_films.sh --films: an unknown name (exit 2, nothing made)" bash -c \
  "out=\$(bash '$src/scripts/make_eval_films.sh' --validation --films tree,city '$tmp/ef' '$vf' 2>&1); rc=\$?
   [ \$rc = 2 ] && grep -q \"no validation film 'city' (known: vfilm vmany tree megamind)\" <<<\"\$out\" && [ ! -e '$tmp/ef' ]"

echo "cli_baselines: $pass passed, $fail failed"
[ "$fail" = 0 ]
