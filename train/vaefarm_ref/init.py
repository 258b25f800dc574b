"""Seeded random initialisation that keeps activations in a sane range through depth.

- every convolution: kaiming-normal, fan_in, ReLU gain: N(0, 2/fan_in), fan_in = in/groups·kh·kw;
  conv biases N(0, 0.01²). Two exceptions: in F, the convolutions whose outputs a bottleneck sums
  (conv3 and downsample.0) use gain 1, N(0, 1/fan_in), so that the sum of the two branches has the
  second moment of one ReLU-gain conv and activations do not grow ×1.6 per block (with gain √2
  everywhere, ResNet-50's layer4 reaches |x| ≈ 5·10⁴, near f16's limit); C.out uses gain 0.25,
  N(0, 0.0625/fan_in), so that 128·tanh(·) is not saturated; in A and C (C.enc.0.0 and the
  depthwise C.enc.ℓ.down excepted) each filter is made zero-mean (then rescaled to the kaiming
  std): their inputs follow ReLU/PReLU and have positive means, and with plain kaiming filters
  many channels are shifted far negative, nearly dead after the ReLU, and InstanceNorm then
  magnifies their rounding (full C: f32 vs f64 error 7e-5 → 3e-5); and C.enc.0.0's weights on
  the X̂(t−1) input channels (4, 5, 6) are multiplied by 0.01: with the plain init a random C maps
  X̂(t−1) to X̂(t) with a gain of ~8 per frame, f32 rounding grows ×8 per frame and a 5-frame
  golden sequence is chaotic (the f32 reference differs from an f64 run by 40% at frame 4).
  With 0.01 the f32-vs-f64 error of ab stays ≈1e-4 (tiny) / ≈1e-3 (full) over 5 frames while
  X̂(t−1) still changes ab by 17% (tiny) / 65% (full): an engine that drops it fails.
calibrate_colornet (below) then re-scales C on one input (golden.py: the golden scene), LSUV-style.
Drawn from one torch.Generator seeded with `seed`, modules in named_modules() order, tensors in
the order listed above, so the weights are the same on every machine.
"""
import math

import torch
import torch.nn as nn


OUT_GAIN = 0.25
PREV_SCALE = 0.01
CENTRE_FILTERS = True
CENTRE_C = True


def init_weights(net, seed):
    g = torch.Generator().manual_seed(int(seed))

    def normal(t, std, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                gain = math.sqrt(2.0)
                if name.startswith("F.") and name.endswith((".conv3", ".downsample.0")):
                    gain = 1.0      # the two summed branches of a bottleneck: no growth with depth
                elif name == "C.out":
                    gain = OUT_GAIN  # keeps 128·tanh(·) out of saturation
                normal(m.weight, gain / math.sqrt(fan_in))
                if CENTRE_FILTERS and not name.startswith("F.") and name != "C.enc.0.0" \
                        and (CENTRE_C or not name.startswith("C.")) \
                        and fan_in > 1:
                    # zero-mean filters, rescaled to the kaiming std
                    w = m.weight - m.weight.mean(dim=(1, 2, 3), keepdim=True)
                    m.weight.copy_(w * (gain / math.sqrt(fan_in)) / w.std(dim=(1, 2, 3), keepdim=True))
                if name == "C.enc.0.0":
                    m.weight[:, 4:7] *= PREV_SCALE   # the X̂(t−1) input channels
                if m.bias is not None:
                    normal(m.bias, 0.01)
            elif isinstance(m, nn.BatchNorm2d):
                normal(m.running_mean, 0.1)
                uniform(m.running_var, 0.5, 1.5)
                uniform(m.weight, 0.8, 1.2)
                normal(m.bias, 0.1)
                m.num_batches_tracked.zero_()
            elif isinstance(m, nn.InstanceNorm2d):
                uniform(m.weight, 0.8, 1.2)
                normal(m.bias, 0.1)
            elif isinstance(m, nn.PReLU):
                uniform(m.weight, 0.1, 0.3)
    return net


# --------------------------------------------------------------------------- data-dependent
# LSUV-style calibration of C (Mishkin & Matas 2016, "All you need is a good init"), run once on
# one input (golden.py: the golden scene's frame 0). See docs/REFERENCE.md, "Random test weights".
CAL_BETA = 1.0        # each ReLU'd pre-activation channel: spatial mean +1 std (84% alive)
CAL_OUT_STD = 0.5     # C.out: pre-tanh std 0.5 (128·tanh(·) not saturated)
CAL_PREV_SCALE = 0.03 # C.enc.0.0: X̂(t−1) channels weigh 0.03 × the current ones
CAL_SKIP_RATIO = 3.0  # decoder: std of skip(e) / std of up(x) before their sum
CAL_E00_DC = 2.0      # C.enc.0.0: each 3×3 filter plus this × its mean (low-pass part)


def _stats(y):
    return y.mean(dim=(0, 2, 3)), y.std(dim=(0, 2, 3), unbiased=False)


def _fit(convs, xs, mean, std):
    """Rescale the summed output of convs (applied to xs) per output channel to the given spatial
    mean and std: w ← k·w, with k = std/std(y); the bias of convs[0] carries the shift."""
    y = sum(c(x) for c, x in zip(convs, xs))
    m, s = _stats(y)
    k = std / s.clamp_min(1e-12)
    for i, c in enumerate(convs):
        c.weight.mul_(k.view(-1, 1, 1, 1))
        if c.bias is not None:
            c.bias.mul_(k)
            if i == 0:
                c.bias.add_(mean - k * m)
    return sum(c(x) for c, x in zip(convs, xs))


def calibrate_colornet(C, x7, beta=None, out_std=None, prev_scale=None, skip_ratio=None,
                       e00_dc=None):
    """Data-dependent init of the colour network C (a ColorNet) on one input x7 (N×7×H×W, e.g.
    the golden scene's frame 0, X̂(t−1) = 0). Deterministic; computed in float64, the weights
    then rounded to f32. Why: a seeded random C is ill-conditioned (dead ReLU channels under
    InstanceNorm, a saturated tanh, a chaotic recurrence) and amplified f32 rounding ×10–100;
    the golden test measures an engine's arithmetic, so the weights must not amplify rounding
    more than a trained network does (docs/REFERENCE.md).

    1. C.enc.0.0: each 3×3 filter gets e00_dc × its spatial mean added (a low-pass part: random
       3×3 filters whose taps nearly cancel respond weakly to the smooth input and, once scaled
       to unit std, strongly to rounding noise); its weights on input channel c are divided by
       the RMS of x7's channel c (L−50, W^a, W^b, S; X̂(t−1)'s L−50, a, b use those of L−50, W^a,
       W^b); those on X̂(t−1) then weigh prev_scale (init_weights' PREV_SCALE replaced).
    2. In forward order, every convolution followed by ReLU / LeakyReLU (encoder, bottleneck,
       decoder) is rescaled per output channel to a pre-activation of spatial std 1 and mean
       +beta: every channel is alive after the ReLU and the InstanceNorm that follows never
       divides by a near-zero std. In the decoder, `skip` is first scaled to skip_ratio × the std
       of `up` (the skips carry the shallow, less rounded paths, as in a trained U-Net), then
       `up + skip` is fitted as one.
    3. C.mu: std 1, mean 0; C.out: std out_std, mean 0 (128·tanh(·) not saturated).
    The depthwise downs, the IN affines and C.logvar keep their seeded values."""
    beta = CAL_BETA if beta is None else beta
    out_std = CAL_OUT_STD if out_std is None else out_std
    prev_scale = CAL_PREV_SCALE if prev_scale is None else prev_scale
    skip_ratio = CAL_SKIP_RATIO if skip_ratio is None else skip_ratio
    e00_dc = CAL_E00_DC if e00_dc is None else e00_dc
    dtype = next(C.parameters()).dtype
    C.double()
    x = x7.double()
    import torch.nn.functional as Fn
    with torch.no_grad():
        w = C.enc[0]._modules["0"].weight
        w.add_(e00_dc * w.mean(dim=(2, 3), keepdim=True))   # more low-pass: see CAL_E00_DC
        sd = x.pow(2).mean(dim=(0, 2, 3)).sqrt()      # RMS (not std: S is 0.36 ± 0.05)
        for c, src in zip(range(7), (0, 1, 2, 3, 0, 1, 2)):
            w[:, c] /= max(float(sd[src]), 1e-6)
        w[:, 4:7] *= prev_scale / PREV_SCALE     # init_weights applied PREV_SCALE already
        skips = []
        for l, lvl in enumerate(C.enc):
            if l > 0:
                x = C.enc[l - 1].down(x)
            for conv in lvl.convs():
                x = Fn.relu(_fit([conv], [x], beta, 1.0))
            x = lvl.norm(x)
            skips.append(x)
        for grp in C.mid:
            for conv in grp.convs():
                x = Fn.relu(_fit([conv], [x], beta, 1.0))
            x = grp.norm(x)
        x = _fit([C.mu], [x], 0.0, 1.0)
        for k, lvl in enumerate(C.dec):
            act = Fn.relu if k < 2 else (lambda t: Fn.leaky_relu(t, 0.2))
            xu, xs = Fn.interpolate(x, scale_factor=2, mode="nearest"), skips[2 - k]
            _fit([lvl.up], [xu], 0.0, 1.0)      # skip weighs skip_ratio × up
            _fit([lvl.skip], [xs], 0.0, skip_ratio)
            y = act(_fit([lvl.up, lvl.skip], [xu, xs], beta, 1.0))
            for conv in lvl.convs():
                y = act(_fit([conv], [y], beta, 1.0))
            if k < 2:
                y = lvl.norm(y)
            x = y
        _fit([C.out], [x], 0.0, out_std)
    C.to(torch.float32)            # the weights file's values ...
    C.to(dtype)                    # ... in the caller's dtype
    return C
