"""The training losses (docs/TRAINING.md gives the definitions, weights and what is ours).

Units: ab in Lab units (±128, what C outputs), L in [0, 100]. Every function returns a scalar
(mean over the batch)."""
import torch
import torch.nn.functional as Fn

# DESIGN.md §3: L = 0.001·L_perc + 1.0·L_KL + 0.2·L_context + 5.0·L_smooth.
# Ours (documented as additions): L1 on self-reference samples (2.0, the value of the DEVC code
# for its own self-reference L1), the temporal term (0.02, DEVC's weight for its consistency loss)
# and the correspondence term (2.0, the L1 term's weight: the same L1, on A's warp instead of C's output).
DEFAULT_WEIGHTS = {"perc": 0.001, "kl": 1.0, "context": 0.2, "smooth": 5.0, "l1": 2.0, "temporal": 0.02,
                   "corr": 2.0}
# contextual loss: weight per F tap (layer2, layer3, layer4), as DEVC weights relu3/4/5 (2, 4, 8)
CONTEXT_LAYERS = {1: 2.0, 2: 4.0, 3: 8.0}
CONTEXT_H = 0.1
SMOOTH_ALPHA = 10.0
LOG_MSE_FLOOR = 0.01


def kl_loss(mu, logvar):
    """KL(N(μ, σ²) || N(0, 1)), mean over the latent's elements (channels × positions) and batch."""
    return 0.5 * torch.mean(mu * mu + torch.exp(logvar) - 1.0 - logvar)


def perceptual_loss(feat_pred, feat_true):
    """MSE between the feature maps (the frozen-weights F's layer4 of output and truth)."""
    return torch.mean((feat_pred - feat_true) ** 2)


def contextual_loss(x, y, h=CONTEXT_H):
    """Contextual loss (Mechrez et al. 2018), in DEVC's "forward" direction: for each output
    feature i its best match j in the reference. x: output features N×C×h×w, y: reference
    features N×C×h'×w'. Both centred on the reference's mean, l2-normalised; d = 1 − cos;
    d̃ = d / (min_j d + 1e-5); w = exp((1 − d̃)/h); A = w / Σ_j w; CX = mean_i max_j A;
    loss = −log CX, mean over the batch."""
    n, c = x.shape[:2]
    mu = y.reshape(n, c, -1).mean(dim=2)[:, :, None]
    xs = Fn.normalize(x.reshape(n, c, -1) - mu, dim=1)
    ys = Fn.normalize(y.reshape(n, c, -1) - mu, dim=1)
    d = 1.0 - torch.bmm(xs.transpose(1, 2), ys)                # N × |x| × |y|
    dn = d / (d.min(dim=2, keepdim=True).values + 1e-5)
    w = torch.exp((1.0 - dn) / h)
    A = w / w.sum(dim=2, keepdim=True)
    cx = A.max(dim=2).values.mean(dim=1)
    return torch.mean(-torch.log(cx + 1e-12))


def smoothness_loss(ab_pred, lab_true, alpha=SMOOTH_ALPHA):
    """DEVC's smoothness: each pixel's ab should equal the average of its 3×3 neighbourhood's
    predicted ab weighted by softmax_j(−‖Lab_true(j) − Lab_true(i)‖² / alpha) (the truth's Lab, L
    in [0,100]; borders replicate). MSE in ab units."""
    n, _, H, W = ab_pred.shape

    def patches(t):
        c = t.shape[1]
        p = Fn.pad(t, (1, 1, 1, 1), mode="replicate")
        return Fn.unfold(p, 3).view(n, c, 9, H, W)

    lab = patches(lab_true)
    diff = ((lab - lab_true[:, :, None]) ** 2).sum(dim=1)       # N × 9 × H × W
    wgt = torch.softmax(-diff / alpha, dim=1)
    avg = (patches(ab_pred) * wgt[:, None]).sum(dim=2)          # N × 2 × H × W
    return torch.mean((ab_pred - avg) ** 2)


def log_mse_loss(ab_pred, ab_true, floor=LOG_MSE_FLOOR):
    """Ours (stage 5): the mean over the batch's frames of 10·log10(MSE_ab + floor), each frame's
    MSE over its own pixels: −(its ab PSNR) up to a constant. The evaluation averages PSNR over
    frames, so a frame the warp already gets nearly right counts as much as a hard one; an L1 or
    MSE over all pixels lets a network trade a little error on the easy frames for less on the hard
    ones, which the per-frame mean of PSNR punishes. The floor (ab units²) caps a frame's weight
    (10^(−floor) at 0: 0.01 is 66 dB)."""
    mse = ((ab_pred - ab_true) ** 2).mean(dim=(1, 2, 3))
    return (10.0 * torch.log10(mse + floor)).mean()


def l1_self_loss(ab_pred, ab_true, self_ref):
    """Ours: mean |Δab| over the samples whose reference is their own frame (0 when none)."""
    m = self_ref.view(-1, 1, 1, 1)
    cnt = m.sum() * ab_pred.shape[1] * ab_pred.shape[2] * ab_pred.shape[3]
    return (torch.abs(ab_pred - ab_true) * m).sum() / cnt.clamp(min=1.0)


def corr_self_loss(wab4, ab_true, self_ref):
    """Ours: the L1 term on A's warp alone: mean |W^ab − truth| at A's resolution (the truth's ab
    4×4 area-averaged, as the reference's ab is before the attention) over the self-reference
    samples. It trains the correspondence (A and F) directly, instead of only through C."""
    return l1_self_loss(wab4, Fn.avg_pool2d(ab_true, 4, stride=4), self_ref)


def warp(x, phi):
    """x N×C×H×W sampled at phi (N×H×W×2, normalised, align_corners=False), border padding."""
    return Fn.grid_sample(x, phi, mode="bilinear", padding_mode="border", align_corners=False)


def temporal_loss(ab_t, ab_prev, phi, mask):
    """Ours: MSE between frame t's ab and frame t−1's ab carried to t by the known motion φ
    (synthetic clips), over the pixels of frame t visible in frame t−1 (mask); 0 when none."""
    d = (ab_t - warp(ab_prev, phi)) ** 2 * mask
    return d.sum() / (mask.sum() * ab_t.shape[1]).clamp(min=1.0)
