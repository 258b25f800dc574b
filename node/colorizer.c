/*
 * node/colorizer.c: one colorizer instance: every primitive and buffer for its size and precision
 * made at creation, then the reference pass (once per shot), the frame pass (F, A, C: the
 * recurrence of DESIGN.md §3) and the post-processing, with no allocation per frame.
 * docs/NETWORK.md is the specification; train/vaefarm_ref/model.py is the same network in PyTorch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "node/internal.h"

#define ATTN_ROWS 256           /* rows of the score matrix computed at once (L2-sized block) */

struct cz_norm {                /* an InstanceNorm's affine (and PReLU slopes) on the device */
    struct vf_tensor gamma, beta, slopes;
};

struct cz_block {
    struct vf_conv *c1, *c2, *c3, *ds;
    struct vf_tensor h1, h2;
};

struct vf_colorizer {
    const struct vf_net *net;
    struct vf_backend *be;
    enum vf_dtype dt;           /* C's precision (the run's) */
    enum vf_dtype dt_fa;        /* F's and A's: always f32 (the correspondence, see create_a) */
    int h, w, h4, w4, npos, fh, fw;
    float kr, kb;
    struct vf_colorizer_times times;

    /* inputs */
    struct vf_tensor grey;      /* f32 1 × H × W: the frame's grey (also the guided filter's guide) */
    struct vf_tensor ref_rgb;   /* f32 3 × H × W */
    struct vf_tensor ref_lab;   /* f32 3 × H × W */
    struct vf_tensor ref_ab;    /* f32 2 × H × W (dense copy of ref_lab's a, b) */
    struct vf_tensor fin;       /* dt 3 × H × W: F's normalised input */

    /* F */
    struct vf_conv *f_conv1;
    struct vf_tensor f_stem, f_pooled;
    struct vf_pool *f_pool;
    struct cz_block fb[4][VF_NET_MAX_BLOCKS];
    struct vf_tensor f_out[4], tap[4];

    /* A */
    struct vf_conv *a_conv[4];
    struct cz_norm a_norm[4];
    struct vf_tensor a_k[4], cat;
    struct vf_conv *r_conv1[VF_NET_MAX_BLOCKS], *r_conv2[VF_NET_MAX_BLOCKS];
    struct cz_norm r_norm1[VF_NET_MAX_BLOCKS], r_norm2[VF_NET_MAX_BLOCKS];
    struct vf_tensor r1, r2;
    struct vf_conv *theta, *phi;
    struct vf_tensor th, ph;    /* f32 4a × H/4 × W/4, centred and l2n'd */
    struct vf_pool *ab_pool;
    struct vf_tensor ref_ab_lo; /* f32 2 × H/4 × W/4 */
    struct vf_matmul *mm, *mm_tail;
    struct vf_tensor scores;    /* f32 ATTN_ROWS × N */
    struct vf_tensor wab_lo, conf_lo;   /* f32 2 (1) × H/4 × W/4 */
    struct vf_tensor wab_up;    /* f32 2 × H × W: W^ab at the network's size (nearest ×4, or the
                                 * refined warp), added to C's output when the arch is residual
                                 * (kept f32: cin holds it in C's precision) */
    /* A.refine: the attention's values [a, b, 4·row, 4·column] and its output (W^ab and the
     * expected position), f32 4 × H/4 × W/4; the reference's Y′ (f32 1 × H × W) */
    struct vf_tensor att_v, att_o, ref_y;
    /* A.refine.temporal: the frame's L, and frame t−1's L and warp W^ab, f32 1, 1, 2 × H × W
     * (the recurrent state beside X̂(t−1)); a reset writes VF_REFINE_NO_PREV into prev_l (no
     * candidates) from host_noprev (H × W, then 2 × H × W zeros) */
    struct vf_tensor l32, prev_l, prev_ab;
    float *host_noprev;
    /* A.refine.predict: frame t−1's motion (its cheapest temporal displacements) and this
     * frame's, f32 2 × H × W (the recurrent state; a reset and a pass-through zero it) */
    struct vf_tensor disp_prev, disp_new;
    bool have_ref;
    bool have_frame;            /* a frame since the last reference: post has something */
    bool stale_state;           /* a reset failed (a device error): the next frame resets first */

    /* the reference's luma Y′ (host H × W): A.refine's, and what each frame's grey is compared
     * with for reference pass-through (opts.passthrough); for that too, the reference's Lab at
     * full size (f32 3 × full, when there is a full size), set from rgb_full */
    bool passthrough;
    float *ref_luma;
    struct vf_tensor ref_lab_full;
    bool have_ref_full;
    bool frame_passthrough;     /* the last frame took the reference's colours */

    /* C */
    struct vf_tensor cin;       /* dt 7 × H × W: [L, W^ab, S, L(t−1), ab(t−1)] (the −50 of
                                   L′ is folded into the first convolution's bias) */
    float *c_bias0;             /* that folded bias */
    struct vf_conv *enc[4][VF_NET_MAX_BLOCKS], *down[3], *mid[8][8], *mu, *out;
    struct vf_tensor enc_t[4][VF_NET_MAX_BLOCKS], down_t[3], mid_t[8][8], z;
    struct cz_norm enc_norm[4], mid_norm[8];
    struct vf_conv *dec_up[3], *dec_skip[3], *dec_conv[3][VF_NET_MAX_BLOCKS];
    struct vf_tensor dec_near[3], dec_u[3], dec_t[3][VF_NET_MAX_BLOCKS];
    struct cz_norm dec_norm[2];
    struct vf_tensor ab;        /* f32 2 × H × W */
    struct vf_tensor c_out;     /* C.gate: C.out's f32 3 × H × W before the gate */
    struct vf_tensor motion;    /* C.gate_motion: the factor on the gate, f32, 1 value (or 1 × h × w
                                   with C.gate_motion_radius) */
    /* C.gate_ramp: frames since the last pass-through frame (0: that frame), −1 for none since
     * the last reset (the recurrent state's age; host; gate_scale reads it) */
    long since_passthrough;
    float *zero_state;          /* host 3 × H × W: L = 50 (L′ = 0), ab = 0 */
    float *host_lo;             /* host 3 × H/4 × W/4: W^ab and S as computed (f32), for taps */

    /* post-processing */
    struct vf_tensor grey_full, ab_full, rgb_full, cbcr_full, scratch;
    /* propagate (arch): the last post-processed frame's grey and final a, b at the film's size,
     * what the next frame carries; frame_serial counts the frames run, prop_serial is the
     * serial of the frame the state holds (−1: none, after a reset or a frame that no frame
     * carries from), post_serial the serial of the last frame post-processed (its ab_full is
     * final: a second post of it reuses it); prop_scratch: vf_op_carry_ab's */
    struct vf_tensor prop_grey, prop_ab, prop_scratch;
    long frame_serial, prop_serial, post_serial;

    /* CUDA graph of one frame's F, A and C (opts.graph on a backend that captures): captured
     * at the second frame, replayed from then on. The first frame runs eagerly: it is the
     * warm-up that makes cuBLAS, cuDNN and CUDA do their lazy first-call work (module loading,
     * heuristics, internal set-up) outside the capture, where some of it is not allowed. Every
     * tensor the graph touches is allocated above, once; a reference or a reset rewrites them
     * in place, so the graph stays valid. The backend's shared workspace is not the
     * colorizer's: a primitive created later on the same backend may move it, and the next
     * frame then captures again (vf_graph_current). */
    bool use_graph;
    bool graph_warm;            /* a whole frame has run eagerly (the warm-up) */
    struct vf_graph *graph;
};

#define TRY(x)                                                                                 \
    do {                                                                                       \
        rc = (x);                                                                              \
        if (rc) goto fail;                                                                     \
    } while (0)

/* ---- creation helpers ---- */

static int mkconv(struct vf_colorizer *c, enum vf_dtype dt, struct vf_conv **cv,
                  struct vf_tensor *dst, const struct net_conv *nw, const float *bias, int stride, enum vf_pad pm,
                  int dil, bool residual, enum vf_act act, float alpha, float scale,
                  enum vf_dtype dst_dt, int h, int w, struct vf_error *err)
{
    struct vf_conv_desc d = {
        .ic = nw->ic, .oc = nw->oc, .kh = nw->k, .kw = nw->k, .stride = stride,
        .pad = dil * (nw->k - 1) / 2, .pad_mode = nw->k > 1 ? pm : VF_PAD_ZERO,
        .dilation = dil, .groups = nw->groups, .residual = residual, .act = act,
        .alpha = alpha, .scale = scale,
    };
    int rc = vf_conv_create(cv, c->be, &d, dt, dst_dt, 1, h, w, nw->w, bias ? bias : nw->b,
                            err);
    if (rc || !dst) return rc;
    int oh, ow;
    vf_conv_out_size(&d, h, w, &oh, &ow);
    return vf_tensor_alloc(dst, c->be, dst_dt, 1, nw->oc, oh, ow, err);
}

static int mknorm(struct vf_colorizer *c, struct cz_norm *n, const struct net_norm *nm,
                  const float *slopes, struct vf_error *err)
{
    int rc = vf_tensor_alloc(&n->gamma, c->be, VF_F32, 1, nm->c, 1, 1, err);
    if (!rc) rc = vf_tensor_upload(&n->gamma, nm->gamma, err);
    if (!rc) rc = vf_tensor_alloc(&n->beta, c->be, VF_F32, 1, nm->c, 1, 1, err);
    if (!rc) rc = vf_tensor_upload(&n->beta, nm->beta, err);
    if (!rc && slopes) {
        rc = vf_tensor_alloc(&n->slopes, c->be, VF_F32, 1, nm->c, 1, 1, err);
        if (!rc) rc = vf_tensor_upload(&n->slopes, slopes, err);
    }
    return rc;
}

static void norm_release(struct cz_norm *n)
{
    vf_tensor_free(&n->gamma);
    vf_tensor_free(&n->beta);
    vf_tensor_free(&n->slopes);
}

static int in_norm(struct vf_tensor *t, const struct cz_norm *n, enum vf_act act,
                   struct vf_error *err)
{
    return vf_op_instance_norm(t, t, 1e-5f, &n->gamma, &n->beta, act, 0.0f,
                               act == VF_ACT_PRELU ? &n->slopes : NULL, err);
}

void vf_colorizer_destroy(struct vf_colorizer **pc)
{
    struct vf_colorizer *c = pc ? *pc : NULL;
    if (!c) return;
    vf_graph_destroy(&c->graph);
    vf_tensor_free(&c->grey);
    vf_tensor_free(&c->ref_rgb);
    vf_tensor_free(&c->ref_lab);
    vf_tensor_free(&c->ref_ab);
    vf_tensor_free(&c->fin);
    vf_conv_destroy(&c->f_conv1);
    vf_tensor_free(&c->f_stem);
    vf_tensor_free(&c->f_pooled);
    vf_pool_destroy(&c->f_pool);
    for (int l = 0; l < 4; l++) {
        for (int b = 0; b < VF_NET_MAX_BLOCKS; b++) {
            struct cz_block *bk = &c->fb[l][b];
            vf_conv_destroy(&bk->c1);
            vf_conv_destroy(&bk->c2);
            vf_conv_destroy(&bk->c3);
            vf_conv_destroy(&bk->ds);
            vf_tensor_free(&bk->h1);
            vf_tensor_free(&bk->h2);
        }
        vf_tensor_free(&c->f_out[l]);
        vf_tensor_free(&c->tap[l]);
        vf_conv_destroy(&c->a_conv[l]);
        norm_release(&c->a_norm[l]);
        vf_tensor_free(&c->a_k[l]);
    }
    vf_tensor_free(&c->cat);
    for (int i = 0; i < VF_NET_MAX_BLOCKS; i++) {
        vf_conv_destroy(&c->r_conv1[i]);
        vf_conv_destroy(&c->r_conv2[i]);
        norm_release(&c->r_norm1[i]);
        norm_release(&c->r_norm2[i]);
    }
    vf_tensor_free(&c->r1);
    vf_tensor_free(&c->r2);
    vf_conv_destroy(&c->theta);
    vf_conv_destroy(&c->phi);
    vf_tensor_free(&c->th);
    vf_tensor_free(&c->ph);
    vf_pool_destroy(&c->ab_pool);
    vf_tensor_free(&c->ref_ab_lo);
    vf_matmul_destroy(&c->mm);
    vf_matmul_destroy(&c->mm_tail);
    vf_tensor_free(&c->scores);
    vf_tensor_free(&c->wab_lo);
    vf_tensor_free(&c->wab_up);
    vf_tensor_free(&c->att_v);
    vf_tensor_free(&c->att_o);
    vf_tensor_free(&c->ref_y);
    vf_tensor_free(&c->l32);
    vf_tensor_free(&c->prev_l);
    vf_tensor_free(&c->prev_ab);
    vf_tensor_free(&c->disp_prev);
    vf_tensor_free(&c->disp_new);
    free(c->host_noprev);
    vf_tensor_free(&c->conf_lo);
    vf_tensor_free(&c->cin);
    free(c->c_bias0);
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < VF_NET_MAX_BLOCKS; j++) {
            vf_conv_destroy(&c->enc[l][j]);
            vf_tensor_free(&c->enc_t[l][j]);
        }
        norm_release(&c->enc_norm[l]);
    }
    for (int l = 0; l < 3; l++) {
        vf_conv_destroy(&c->down[l]);
        vf_tensor_free(&c->down_t[l]);
    }
    for (int g = 0; g < 8; g++) {
        for (int j = 0; j < 8; j++) {
            vf_conv_destroy(&c->mid[g][j]);
            vf_tensor_free(&c->mid_t[g][j]);
        }
        norm_release(&c->mid_norm[g]);
    }
    vf_conv_destroy(&c->mu);
    vf_tensor_free(&c->z);
    for (int k = 0; k < 3; k++) {
        vf_conv_destroy(&c->dec_up[k]);
        vf_conv_destroy(&c->dec_skip[k]);
        vf_tensor_free(&c->dec_near[k]);
        vf_tensor_free(&c->dec_u[k]);
        for (int j = 0; j < VF_NET_MAX_BLOCKS; j++) {
            vf_conv_destroy(&c->dec_conv[k][j]);
            vf_tensor_free(&c->dec_t[k][j]);
        }
    }
    norm_release(&c->dec_norm[0]);
    norm_release(&c->dec_norm[1]);
    vf_conv_destroy(&c->out);
    vf_tensor_free(&c->ab);
    vf_tensor_free(&c->c_out);
    vf_tensor_free(&c->motion);
    free(c->zero_state);
    free(c->host_lo);
    free(c->ref_luma);
    vf_tensor_free(&c->ref_lab_full);
    vf_tensor_free(&c->grey_full);
    vf_tensor_free(&c->ab_full);
    vf_tensor_free(&c->rgb_full);
    vf_tensor_free(&c->cbcr_full);
    vf_tensor_free(&c->scratch);
    vf_tensor_free(&c->prop_grey);
    vf_tensor_free(&c->prop_ab);
    vf_tensor_free(&c->prop_scratch);
    free(c);
    *pc = NULL;
}

static int create_f(struct vf_colorizer *c, struct vf_error *err)
{
    const struct vf_net *net = c->net;
    const struct vf_arch *a = &net->arch;
    int rc;
    TRY(vf_tensor_alloc(&c->fin, c->be, c->dt_fa, 1, 3, c->h, c->w, err));
    TRY(mkconv(c, c->dt_fa, &c->f_conv1, &c->f_stem, &net->f_conv1, NULL, 2, VF_PAD_ZERO, 1, false,
               VF_ACT_RELU, 0, 0, c->dt_fa, c->h, c->w, err));
    struct vf_pool_desc pd = {.kind = VF_POOL_MAX, .k = 3, .stride = 2, .pad = 1};
    int ph, pw;
    vf_pool_out_size(&pd, c->f_stem.h, c->f_stem.w, &ph, &pw);
    TRY(vf_pool_create(&c->f_pool, c->be, &pd, c->dt_fa, 1, c->f_stem.c, c->f_stem.h, c->f_stem.w,
                       err));
    TRY(vf_tensor_alloc(&c->f_pooled, c->be, c->dt_fa, 1, c->f_stem.c, ph, pw, err));
    const struct vf_tensor *x = &c->f_pooled;
    for (int l = 0; l < 4; l++) {
        for (int b = 0; b < a->f_blocks[l]; b++) {
            const struct net_bottleneck *nb = &net->f_block[l][b];
            struct cz_block *bk = &c->fb[l][b];
            TRY(mkconv(c, c->dt_fa, &bk->c1, &bk->h1, &nb->c1, NULL, 1, VF_PAD_ZERO, 1, false, VF_ACT_RELU,
                       0, 0, c->dt_fa, x->h, x->w, err));
            TRY(mkconv(c, c->dt_fa, &bk->c2, &bk->h2, &nb->c2, NULL, nb->stride, VF_PAD_ZERO, 1, false,
                       VF_ACT_RELU, 0, 0, c->dt_fa, bk->h1.h, bk->h1.w, err));
            if (nb->ds.w)
                TRY(mkconv(c, c->dt_fa, &bk->ds, &c->f_out[l], &nb->ds, NULL, nb->stride, VF_PAD_ZERO, 1,
                           false, VF_ACT_NONE, 0, 0, c->dt_fa, x->h, x->w, err));
            TRY(mkconv(c, c->dt_fa, &bk->c3, NULL, &nb->c3, NULL, 1, VF_PAD_ZERO, 1, true, VF_ACT_RELU, 0,
                       0, c->dt_fa, bk->h2.h, bk->h2.w, err));
            x = &c->f_out[l];
        }
        TRY(vf_tensor_alloc(&c->tap[l], c->be, c->dt_fa, 1, x->c, x->h, x->w, err));
    }
fail:
    return rc;
}

static int create_a(struct vf_colorizer *c, struct vf_error *err)
{
    const struct vf_net *net = c->net;
    const struct vf_arch *a = &net->arch;
    int ad = a->a_adapter, cat = 4 * ad, rc;
    for (int k = 0; k < 4; k++) {
        TRY(mkconv(c, c->dt_fa, &c->a_conv[k], &c->a_k[k], &net->a_adapt[k].conv, NULL, 1, VF_PAD_REFLECT,
                   1, false, VF_ACT_NONE, 0, 0, c->dt_fa, c->tap[k].h, c->tap[k].w, err));
        TRY(mknorm(c, &c->a_norm[k], &net->a_adapt[k].norm, net->a_adapt[k].slopes, err));
    }
    TRY(vf_tensor_alloc(&c->cat, c->be, c->dt_fa, 1, cat, c->h4, c->w4, err));
    for (int i = 0; i < a->a_res_blocks; i++) {
        const struct net_res *r = &net->a_res[i];
        TRY(mkconv(c, c->dt_fa, &c->r_conv1[i], i ? NULL : &c->r1, &r->conv1, NULL, 1, VF_PAD_REFLECT, 1,
                   false, VF_ACT_NONE, 0, 0, c->dt_fa, c->h4, c->w4, err));
        TRY(mkconv(c, c->dt_fa, &c->r_conv2[i], i ? NULL : &c->r2, &r->conv2, NULL, 1, VF_PAD_REFLECT, 1,
                   false, VF_ACT_NONE, 0, 0, c->dt_fa, c->h4, c->w4, err));
        TRY(mknorm(c, &c->r_norm1[i], &r->norm1, r->slopes, err));
        TRY(mknorm(c, &c->r_norm2[i], &r->norm2, NULL, err));
    }
    TRY(mkconv(c, c->dt_fa, &c->theta, &c->th, &net->a_theta, NULL, 1, VF_PAD_ZERO, 1, false, VF_ACT_NONE,
               0, 0, VF_F32, c->h4, c->w4, err));
    TRY(mkconv(c, c->dt_fa, &c->phi, &c->ph, &net->a_phi, NULL, 1, VF_PAD_ZERO, 1, false, VF_ACT_NONE, 0,
               0, VF_F32, c->h4, c->w4, err));
    struct vf_pool_desc pd = {.kind = VF_POOL_AVG, .k = 4, .stride = 4, .pad = 0};
    TRY(vf_pool_create(&c->ab_pool, c->be, &pd, VF_F32, 1, 2, c->h, c->w, err));
    TRY(vf_tensor_alloc(&c->ref_ab_lo, c->be, VF_F32, 1, 2, c->h4, c->w4, err));
    /* F and A run in f32 whatever the precision: τ = 0.01 turns a score error of 1e-3 (bf16
     * features) into a tenth of a logit, and the warp by 10% (docs/NETWORK.md, Precision). */
    int rows = c->npos < ATTN_ROWS ? c->npos : ATTN_ROWS;
    struct vf_matmul_desc md = {.m = rows, .n = c->npos, .k = cat, .lda = cat, .ldb = cat,
                                .ldc = c->npos, .trans_b = true};
    TRY(vf_matmul_create(&c->mm, c->be, &md, VF_F32, err));
    if (c->npos % rows) {
        md.m = c->npos % rows;
        TRY(vf_matmul_create(&c->mm_tail, c->be, &md, VF_F32, err));
    }
    TRY(vf_tensor_alloc(&c->scores, c->be, VF_F32, 1, c->npos, rows, 1, err));
    TRY(vf_tensor_alloc(&c->wab_lo, c->be, VF_F32, 1, 2, c->h4, c->w4, err));
    TRY(vf_tensor_alloc(&c->conf_lo, c->be, VF_F32, 1, 1, c->h4, c->w4, err));
    if (net->arch.c_residual || net->arch.a_refine_radius)
        TRY(vf_tensor_alloc(&c->wab_up, c->be, VF_F32, 1, 2, c->h, c->w, err));
    if (net->arch.a_refine_radius) {
        TRY(vf_tensor_alloc(&c->att_v, c->be, VF_F32, 1, 4, c->h4, c->w4, err));
        TRY(vf_tensor_alloc(&c->att_o, c->be, VF_F32, 1, 4, c->h4, c->w4, err));
        TRY(vf_tensor_alloc(&c->ref_y, c->be, VF_F32, 1, 1, c->h, c->w, err));
        /* the reference's luma plane (H × W, calloc'd; each reference overwrites it), first
         * used as the host plane of the values' position channels (a, b come with each
         * reference): planar, a and b 0, then 4·row, 4·column */
        float *v = c->ref_luma;
        for (int y = 0; y < c->h4; y++)
            for (int x = 0; x < c->w4; x++) {
                v[2 * (size_t)c->npos + (size_t)y * c->w4 + x] = 4.0f * (float)y;
                v[3 * (size_t)c->npos + (size_t)y * c->w4 + x] = 4.0f * (float)x;
            }
        TRY(vf_tensor_upload(&c->att_v, v, err));
    }
    if (net->arch.a_refine_temporal) {
        TRY(vf_tensor_alloc(&c->l32, c->be, VF_F32, 1, 1, c->h, c->w, err));
        TRY(vf_tensor_alloc(&c->prev_l, c->be, VF_F32, 1, 1, c->h, c->w, err));
        TRY(vf_tensor_alloc(&c->prev_ab, c->be, VF_F32, 1, 2, c->h, c->w, err));
        const size_t P = (size_t)c->h * (size_t)c->w;
        c->host_noprev = vf_calloc(3 * P, sizeof(float), err);
        if (!c->host_noprev) return VF_ENOMEM;
        for (size_t i = 0; i < P; i++) c->host_noprev[i] = VF_REFINE_NO_PREV;
    }
    if (net->arch.a_refine_predict) {
        TRY(vf_tensor_alloc(&c->disp_prev, c->be, VF_F32, 1, 2, c->h, c->w, err));
        TRY(vf_tensor_alloc(&c->disp_new, c->be, VF_F32, 1, 2, c->h, c->w, err));
    }
fail:
    return rc;
}

static int create_c(struct vf_colorizer *c, struct vf_error *err)
{
    const struct vf_net *net = c->net;
    const struct vf_arch *a = &net->arch;
    int rc;
    TRY(vf_tensor_alloc(&c->cin, c->be, c->dt, 1, 7, c->h, c->w, err));
    /* Fold L′ = L − 50 (channels 0 and 4) into the first convolution's bias. Exact with
     * reflection padding: every padded value is a real pixel, so the shift is uniform. */
    const struct net_conv *c0 = &net->c_enc[0][0];
    c->c_bias0 = vf_calloc((size_t)c0->oc, sizeof(float), err);
    if (!c->c_bias0) return VF_ENOMEM;
    const size_t kk = (size_t)c0->k * (size_t)c0->k;
    for (int o = 0; o < c0->oc; o++) {
        double s = 0;
        for (size_t i = 0; i < kk; i++)
            s += (double)c0->w[((size_t)o * (size_t)c0->ic + 0) * kk + i] +
                 (double)c0->w[((size_t)o * (size_t)c0->ic + 4) * kk + i];
        c->c_bias0[o] = (float)((double)c0->b[o] - 50.0 * s);
    }
    int h = c->h, w = c->w;
    const struct vf_tensor *x = &c->cin;
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < a->c_enc_convs[l]; j++) {
            TRY(mkconv(c, c->dt, &c->enc[l][j], &c->enc_t[l][j], &net->c_enc[l][j],
                       l == 0 && j == 0 ? c->c_bias0 : NULL, 1, VF_PAD_REFLECT, 1, false,
                       VF_ACT_RELU, 0, 0, c->dt, h, w, err));
            x = &c->enc_t[l][j];
        }
        TRY(mknorm(c, &c->enc_norm[l], &net->c_enc_norm[l], NULL, err));
        if (l < 3) {
            TRY(mkconv(c, c->dt, &c->down[l], &c->down_t[l], &net->c_down[l], NULL, 2, VF_PAD_ZERO, 1,
                       false, VF_ACT_NONE, 0, 0, c->dt, h, w, err));
            x = &c->down_t[l];
            h = x->h;
            w = x->w;
        }
    }
    for (int g = 0; g < a->c_mid_groups; g++) {
        for (int j = 0; j < a->c_mid_len[g]; j++)
            TRY(mkconv(c, c->dt, &c->mid[g][j], &c->mid_t[g][j], &net->c_mid[g][j], NULL, 1,
                       VF_PAD_REFLECT, a->c_mid_dil[g][j], false, VF_ACT_RELU, 0, 0, c->dt, h, w,
                       err));
        TRY(mknorm(c, &c->mid_norm[g], &net->c_mid_norm[g], NULL, err));
    }
    TRY(mkconv(c, c->dt, &c->mu, &c->z, &net->c_mu, NULL, 1, VF_PAD_ZERO, 1, false, VF_ACT_NONE, 0, 0,
               c->dt, h, w, err));
    x = &c->z;
    for (int k = 0; k < 3; k++) {
        const struct net_dec *d = &net->c_dec[k];
        int s = 2 - k;
        const struct vf_tensor *skip = &c->enc_t[s][a->c_enc_convs[s] - 1];
        enum vf_act act = k < 2 ? VF_ACT_RELU : VF_ACT_LRELU;
        TRY(vf_tensor_alloc(&c->dec_near[k], c->be, c->dt, 1, x->c, skip->h, skip->w, err));
        TRY(mkconv(c, c->dt, &c->dec_up[k], &c->dec_u[k], &d->up, NULL, 1, VF_PAD_REFLECT, 1, false,
                   VF_ACT_NONE, 0, 0, c->dt, skip->h, skip->w, err));
        TRY(mkconv(c, c->dt, &c->dec_skip[k], NULL, &d->skip, NULL, 1, VF_PAD_REFLECT, 1, true, act,
                   0.2f, 0, c->dt, skip->h, skip->w, err));
        x = &c->dec_u[k];
        for (int j = 0; j < a->c_dec_convs[k]; j++) {
            TRY(mkconv(c, c->dt, &c->dec_conv[k][j], &c->dec_t[k][j], &d->convs[j], NULL, 1,
                       VF_PAD_REFLECT, 1, false, act, 0.2f, 0, c->dt, skip->h, skip->w, err));
            x = &c->dec_t[k][j];
        }
        if (k < 2) TRY(mknorm(c, &c->dec_norm[k], &d->norm, NULL, err));
    }
    if (a->c_gate) {   /* 3 raw channels; vf_op_gated_add applies tanh, the gate and W^ab */
        TRY(mkconv(c, c->dt, &c->out, &c->c_out, &net->c_out, NULL, 1, VF_PAD_ZERO, 1, false,
                   VF_ACT_NONE, 0, 0, VF_F32, c->h, c->w, err));
        TRY(vf_tensor_alloc(&c->ab, c->be, VF_F32, 1, 2, c->h, c->w, err));
        if (a->c_gate_motion > 0.0f)
            TRY(vf_tensor_alloc(&c->motion, c->be, VF_F32, 1, 1, a->c_gate_motion_px ? c->h : 1,
                                a->c_gate_motion_px ? c->w : 1, err));
    } else {
        TRY(mkconv(c, c->dt, &c->out, &c->ab, &net->c_out, NULL, 1, VF_PAD_ZERO, 1, false,
                   VF_ACT_TANH, 0, 128.0f, VF_F32, c->h, c->w, err));
    }
    c->zero_state = vf_calloc((size_t)3 * (size_t)c->h * (size_t)c->w, sizeof(float), err);
    if (!c->zero_state) return VF_ENOMEM;
    for (size_t i = 0; i < (size_t)c->h * (size_t)c->w; i++) c->zero_state[i] = 50.0f;
    c->host_lo = vf_calloc((size_t)3 * (size_t)c->npos, sizeof(float), err);
    if (!c->host_lo) return VF_ENOMEM;
fail:
    return rc;
}

int vf_colorizer_create(struct vf_colorizer **out, const struct vf_net *net,
                        const struct vf_colorizer_opts *opts, struct vf_error *err)
{
    *out = NULL;
    if (opts->h < 32 || opts->w < 32 || opts->h % 8 || opts->w % 8 || opts->h > 8192 ||
        opts->w > 8192)
        return vf_error_set(err, VF_EINVAL,
                            "inference size %dx%d: height and width must be multiples of 8 "
                            "between 32 and 8192 (F downsamples by 32; e.g. 216x384)", opts->h,
                            opts->w);
    if (opts->full_h < 0 || opts->full_w < 0 || opts->full_h > 16384 || opts->full_w > 16384 ||
        (opts->full_h > 0) != (opts->full_w > 0))
        return vf_error_set(err, VF_EINVAL, "full size %dx%d: give both sides, each up to 16384, "
                            "or 0x0 for no post-processing", opts->full_h, opts->full_w);
    if (opts->precision != VF_F32 && !vf_backend_supports(opts->be, opts->precision))
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "precision %s is not available on this backend (the CPU backend "
                            "computes bf16 only where the ISA has it, and f16 nowhere: oneDNN "
                            "2.6 has no f16 CPU kernels); use precision f32",
                            vf_dtype_name(opts->precision));
    struct vf_colorizer *c = vf_calloc(1, sizeof *c, err);
    if (!c) return VF_ENOMEM;
    c->net = net;
    c->be = opts->be;
    c->use_graph = opts->graph && vf_backend_can_capture(opts->be);
    c->dt = opts->precision;
    c->dt_fa = VF_F32;
    c->h = opts->h;
    c->w = opts->w;
    c->h4 = opts->h / 4;
    c->w4 = opts->w / 4;
    c->npos = c->h4 * c->w4;
    c->fh = opts->full_h;
    c->fw = opts->full_w;
    c->kr = opts->kr == 0 && opts->kb == 0 ? 0.2126f : opts->kr;
    c->kb = opts->kr == 0 && opts->kb == 0 ? 0.0722f : opts->kb;
    int rc;
    TRY(vf_tensor_alloc(&c->grey, c->be, VF_F32, 1, 1, c->h, c->w, err));
    TRY(vf_tensor_alloc(&c->ref_rgb, c->be, VF_F32, 1, 3, c->h, c->w, err));
    TRY(vf_tensor_alloc(&c->ref_lab, c->be, VF_F32, 1, 3, c->h, c->w, err));
    TRY(vf_tensor_alloc(&c->ref_ab, c->be, VF_F32, 1, 2, c->h, c->w, err));
    c->passthrough = opts->passthrough;
    c->ref_luma = vf_calloc((size_t)c->h * (size_t)c->w, sizeof(float), err);
    if (!c->ref_luma) {
        rc = VF_ENOMEM;
        goto fail;
    }
    TRY(create_f(c, err));
    TRY(create_a(c, err));
    TRY(create_c(c, err));
    if (c->fh > 0 && c->fw > 0) {
        TRY(vf_tensor_alloc(&c->grey_full, c->be, VF_F32, 1, 1, c->fh, c->fw, err));
        TRY(vf_tensor_alloc(&c->ab_full, c->be, VF_F32, 1, 2, c->fh, c->fw, err));
        TRY(vf_tensor_alloc(&c->rgb_full, c->be, VF_F32, 1, 3, c->fh, c->fw, err));
        TRY(vf_tensor_alloc(&c->cbcr_full, c->be, VF_F32, 1, 2, c->fh, c->fw, err));
        if (c->net->arch.up_radius > 0) { /* the guided filter's window sums */
            size_t se = vf_guided_scratch_elems(c->h, c->w);
            TRY(vf_tensor_alloc(&c->scratch, c->be, VF_F32, 1, (int)se, 1, 1, err));
        }
        if (c->passthrough)
            TRY(vf_tensor_alloc(&c->ref_lab_full, c->be, VF_F32, 1, 3, c->fh, c->fw, err));
        if (c->passthrough && c->net->arch.prop_frames) {   /* only after a pass-through */
            TRY(vf_tensor_alloc(&c->prop_grey, c->be, VF_F32, 1, 1, c->fh, c->fw, err));
            TRY(vf_tensor_alloc(&c->prop_ab, c->be, VF_F32, 1, 2, c->fh, c->fw, err));
            if (vf_backend_device(c->be) == VF_DEVICE_CPU) {   /* CUDA needs none */
                size_t se = vf_carry_scratch_elems(c->fh, c->fw);
                TRY(vf_tensor_alloc(&c->prop_scratch, c->be, VF_F32, 1, (int)se, 1, 1, err));
            }
        }
    }
    TRY(vf_colorizer_reset(c, err));
    *out = c;
    return VF_OK;
fail:
    vf_colorizer_destroy(&c);
    return rc;
}

/* ---- passes ---- */

static int run_f(struct vf_colorizer *c, struct vf_error *err)
{
    const struct vf_arch *a = &c->net->arch;
    int rc;
    TRY(vf_conv_run(c->f_conv1, &c->fin, &c->f_stem, err));
    TRY(vf_pool_run(c->f_pool, &c->f_stem, &c->f_pooled, err));
    const struct vf_tensor *x = &c->f_pooled;
    for (int l = 0; l < 4; l++) {
        for (int b = 0; b < a->f_blocks[l]; b++) {
            struct cz_block *bk = &c->fb[l][b];
            TRY(vf_conv_run(bk->c1, x, &bk->h1, err));
            TRY(vf_conv_run(bk->c2, &bk->h1, &bk->h2, err));
            if (bk->ds) TRY(vf_conv_run(bk->ds, x, &c->f_out[l], err));
            TRY(vf_conv_run(bk->c3, &bk->h2, &c->f_out[l], err));
            x = &c->f_out[l];
        }
        TRY(vf_op_l2norm(&c->f_out[l], &c->tap[l], false, 1e-6f, err));
    }
fail:
    return rc;
}

/* Adapters, residual blocks and the final 1×1 (θ for a frame, φ for the reference), centred
 * and l2n'd. */
static int run_a_features(struct vf_colorizer *c, struct vf_conv *proj, struct vf_tensor *dst,
                          struct vf_error *err)
{
    const struct vf_arch *a = &c->net->arch;
    int ad = a->a_adapter, rc;
    for (int k = 0; k < 4; k++) {
        TRY(vf_conv_run(c->a_conv[k], &c->tap[k], &c->a_k[k], err));
        TRY(in_norm(&c->a_k[k], &c->a_norm[k], VF_ACT_PRELU, err));
        struct vf_tensor slice = vf_tensor_slice(&c->cat, k * ad, ad);
        if (c->a_k[k].h == c->h4 && c->a_k[k].w == c->w4)
            TRY(vf_op_copy(&c->a_k[k], &slice, err));
        else
            TRY(vf_op_resize(&c->a_k[k], &slice, VF_RESIZE_BILINEAR, err));
    }
    for (int i = 0; i < a->a_res_blocks; i++) {
        TRY(vf_conv_run(c->r_conv1[i], &c->cat, &c->r1, err));
        TRY(in_norm(&c->r1, &c->r_norm1[i], VF_ACT_PRELU, err));
        TRY(vf_conv_run(c->r_conv2[i], &c->r1, &c->r2, err));
        TRY(in_norm(&c->r2, &c->r_norm2[i], VF_ACT_NONE, err));
        TRY(vf_op_add(&c->cat, &c->r2, &c->cat, err));
    }
    TRY(vf_conv_run(proj, &c->cat, dst, err));
    TRY(vf_op_l2norm(dst, dst, true, 1e-6f, err));
fail:
    return rc;
}

static int sync_time(struct vf_colorizer *c, double *acc, double *t0, struct vf_error *err)
{
    int rc = vf_backend_sync(c->be, err);
    double t = vf_now();
    *acc += t - *t0;
    *t0 = t;
    return rc;
}

int vf_colorizer_set_reference(struct vf_colorizer *c, const float *rgb, const float *rgb_full,
                               struct vf_error *err)
{
    double t0 = vf_now(), acc = 0;
    int rc;
    c->have_ref = false;
    c->have_frame = false;
    c->have_ref_full = false;
    if (!rgb) return vf_error_set(err, VF_EINVAL, "colorizer: no reference image given");
    TRY(vf_tensor_upload(&c->ref_rgb, rgb, err));
    TRY(vf_op_rgb_to_lab(&c->ref_rgb, &c->ref_lab, &c->fin, err));
    TRY(run_f(c, err));
    TRY(run_a_features(c, c->phi, &c->ph, err));
    struct vf_tensor ab = vf_tensor_slice(&c->ref_lab, 1, 2);
    TRY(vf_op_copy(&ab, &c->ref_ab, err));
    TRY(vf_pool_run(c->ab_pool, &c->ref_ab, &c->ref_ab_lo, err));
    /* the reference's luma with the film's Kr, Kb: what the frames' grey was made with */
    const size_t P = (size_t)c->h * (size_t)c->w;
    for (size_t i = 0; i < P; i++)
        c->ref_luma[i] = c->kr * rgb[i] + (1.0f - c->kr - c->kb) * rgb[P + i] + c->kb * rgb[2 * P + i];
    if (c->net->arch.a_refine_radius) {
        struct vf_tensor vab = vf_tensor_slice(&c->att_v, 0, 2);
        TRY(vf_op_copy(&c->ref_ab_lo, &vab, err));
        TRY(vf_tensor_upload(&c->ref_y, c->ref_luma, err));
    }
    if (rgb_full && c->passthrough && c->fh > 0) {
        /* staged through the post's RGB output buffer, which has that shape */
        TRY(vf_tensor_upload(&c->rgb_full, rgb_full, err));
        TRY(vf_op_rgb_to_lab(&c->rgb_full, &c->ref_lab_full, NULL, err));
        c->have_ref_full = true;
    }
    TRY(sync_time(c, &acc, &t0, err));
    c->times.reference += acc;
    c->times.references++;
    TRY(vf_colorizer_reset(c, err));
    c->have_ref = true;
    return VF_OK;
fail:
    vf_error_prefix(err, "reference features");
    return rc;
}

int vf_colorizer_reset(struct vf_colorizer *c, struct vf_error *err)
{
    int rc = VF_OK;
    struct vf_tensor prev = vf_tensor_slice(&c->cin, 4, 3);
    c->since_passthrough = -1;
    c->prop_serial = -1;
    c->post_serial = -1;
    /* A host array into a preallocated tensor: on a GPU the upload also reports an earlier
     * kernel's fault (and refuses during a capture), so it is checked like any other call. */
    c->stale_state = true;
    TRY(vf_tensor_upload(&prev, c->zero_state, err));
    if (c->net->arch.a_refine_temporal) {   /* no temporal candidates for the next frame */
        TRY(vf_tensor_upload(&c->prev_l, c->host_noprev, err));
        TRY(vf_tensor_upload(&c->prev_ab, c->host_noprev + (size_t)c->h * (size_t)c->w, err));
    }
    if (c->net->arch.a_refine_predict)      /* no motion yet */
        TRY(vf_tensor_upload(&c->disp_prev, c->host_noprev + (size_t)c->h * (size_t)c->w, err));
    c->stale_state = false;
fail:
    if (rc)
        vf_error_prefix(err, "resetting the recurrent state");
    return rc;
}

static int download_planar(const struct vf_tensor *t, float *dst, struct vf_error *err)
{
    return dst ? vf_tensor_download(t, dst, err) : VF_OK;
}

/* One frame's work, enqueued on the backend's stream with no wait, so that it can be captured
 * into a CUDA graph: F from the uploaded grey, A's correspondence, C and the recurrent state. */
static int enqueue_f(struct vf_colorizer *c, struct vf_error *err)
{
    int rc;
    struct vf_tensor l = vf_tensor_slice(&c->cin, 0, 1);
    TRY(vf_op_grey_to_l(&c->grey, &l, &c->fin, err));
    if (c->net->arch.a_refine_temporal) TRY(vf_op_grey_to_l(&c->grey, &c->l32, NULL, err));
    TRY(run_f(c, err));
fail:
    return rc;
}

static int enqueue_a(struct vf_colorizer *c, struct vf_error *err)
{
    int rc;
    TRY(run_a_features(c, c->theta, &c->th, err));

    const struct vf_arch *a = &c->net->arch;
    int rows = c->npos < ATTN_ROWS ? c->npos : ATTN_ROWS;
    int cat = 4 * a->a_adapter;
    /* with refine the values carry the cells' positions too: W^ab and the expected position */
    const int vc = a->a_refine_radius ? 4 : 2;
    const struct vf_tensor *val = a->a_refine_radius ? &c->att_v : &c->ref_ab_lo;
    struct vf_tensor *res = a->a_refine_radius ? &c->att_o : &c->wab_lo;
    for (int r0 = 0; r0 < c->npos; r0 += rows) {
        int n = c->npos - r0 < rows ? c->npos - r0 : rows;
        struct vf_matmul *mm = n == rows ? c->mm : c->mm_tail;
        const float *th = (const float *)c->th.data + (size_t)r0 * (size_t)cat;
        TRY(vf_matmul_run(mm, th, c->ph.data, c->scores.data, err));
        TRY(vf_op_attention_rows(c->be, c->scores.data, n, c->npos, c->npos, a->tau, val->data,
                                 vc, (float *)c->conf_lo.data + r0,
                                 (float *)res->data + (size_t)r0 * (size_t)vc, err));
    }
    struct vf_tensor wab = vf_tensor_slice(&c->cin, 1, 2), conf = vf_tensor_slice(&c->cin, 3, 1);
    if (a->a_refine_radius) {
        struct vf_tensor w = vf_tensor_slice(&c->att_o, 0, 2), pos = vf_tensor_slice(&c->att_o, 2, 2);
        TRY(vf_op_copy(&w, &c->wab_lo, err));
        const struct vf_refine_temporal_args tp = {
            .l = &c->l32, .prev_l = &c->prev_l, .prev_ab = &c->prev_ab,
            .radius = a->a_refine_temporal, .h = a->a_refine_temporal_h,
            .subpixel = a->a_refine_subpixel, .predict = a->a_refine_predict,
            .motion = &c->disp_prev, .motion_out = &c->disp_new};
        TRY(vf_op_warp_refine(&c->grey, &c->ref_y, &c->ref_ab, &pos, a->a_refine_radius,
                              a->a_refine_patch, a->a_refine_h,
                              a->a_refine_temporal ? &tp : NULL, &c->wab_up, err));
        if (a->a_refine_temporal) {     /* the next frame's: this frame's L and warp */
            TRY(vf_op_copy(&c->l32, &c->prev_l, err));
            TRY(vf_op_copy(&c->wab_up, &c->prev_ab, err));
            if (a->a_refine_predict) TRY(vf_op_copy(&c->disp_new, &c->disp_prev, err));
        }
        TRY(vf_op_copy(&c->wab_up, &wab, err));
    } else if (a->c_residual) {
        TRY(vf_op_resize(&c->wab_lo, &c->wab_up, VF_RESIZE_NEAREST, err));
        TRY(vf_op_copy(&c->wab_up, &wab, err));
    } else {
        TRY(vf_op_resize(&c->wab_lo, &wab, VF_RESIZE_NEAREST, err));
    }
    TRY(vf_op_resize(&c->conf_lo, &conf, VF_RESIZE_NEAREST, err));
fail:
    return rc;
}

/* The scale of C's gated correction for the frame about to run (C.gate_ramp): 128·min(1, k / K)
 * on the k-th frame after a pass-through, 128 without the key or with none since the reset. */
static float gate_scale(const struct vf_colorizer *c)
{
    const int K = c->net->arch.c_gate_ramp;
    const long k = c->since_passthrough + 1;
    return K > 0 && c->since_passthrough >= 0 && k < K ? 128.0f * ((float)k / (float)K) : 128.0f;
}

static int enqueue_c(struct vf_colorizer *c, struct vf_error *err)
{
    int rc;
    struct vf_tensor l = vf_tensor_slice(&c->cin, 0, 1);
    const struct vf_arch *a = &c->net->arch;
    const struct vf_tensor *x = &c->cin;
    for (int lv = 0; lv < 4; lv++) {
        for (int j = 0; j < a->c_enc_convs[lv]; j++) {
            TRY(vf_conv_run(c->enc[lv][j], x, &c->enc_t[lv][j], err));
            x = &c->enc_t[lv][j];
        }
        struct vf_tensor *e = &c->enc_t[lv][a->c_enc_convs[lv] - 1];
        TRY(in_norm(e, &c->enc_norm[lv], VF_ACT_NONE, err));
        if (lv < 3) {
            TRY(vf_conv_run(c->down[lv], e, &c->down_t[lv], err));
            x = &c->down_t[lv];
        }
    }
    for (int g = 0; g < a->c_mid_groups; g++) {
        for (int j = 0; j < a->c_mid_len[g]; j++) {
            TRY(vf_conv_run(c->mid[g][j], x, &c->mid_t[g][j], err));
            x = &c->mid_t[g][j];
        }
        TRY(in_norm(&c->mid_t[g][a->c_mid_len[g] - 1], &c->mid_norm[g], VF_ACT_NONE, err));
    }
    TRY(vf_conv_run(c->mu, x, &c->z, err));
    x = &c->z;
    for (int k = 0; k < 3; k++) {
        int s = 2 - k;
        const struct vf_tensor *skip = &c->enc_t[s][a->c_enc_convs[s] - 1];
        TRY(vf_op_resize(x, &c->dec_near[k], VF_RESIZE_NEAREST, err));
        TRY(vf_conv_run(c->dec_up[k], &c->dec_near[k], &c->dec_u[k], err));
        TRY(vf_conv_run(c->dec_skip[k], skip, &c->dec_u[k], err));
        x = &c->dec_u[k];
        for (int j = 0; j < a->c_dec_convs[k]; j++) {
            TRY(vf_conv_run(c->dec_conv[k][j], x, &c->dec_t[k][j], err));
            x = &c->dec_t[k][j];
        }
        if (k < 2) TRY(in_norm((struct vf_tensor *)x, &c->dec_norm[k], VF_ACT_NONE, err));
    }
    if (a->c_gate) {   /* W^ab + σ(gate)·correction (times the motion factor: L(t) against L(t−1)) */
        TRY(vf_conv_run(c->out, x, &c->c_out, err));
        struct vf_tensor prev_l = vf_tensor_slice(&c->cin, 4, 1);
        if (a->c_gate_motion > 0.0f)
            TRY(vf_op_motion_factor(&l, &prev_l, a->c_gate_motion,
                                    a->c_gate_motion_px ? a->c_gate_motion_radius : -1, &c->motion, err));
        TRY(vf_op_gated_add(&c->c_out, &c->wab_up, gate_scale(c), a->c_gate_motion > 0.0f ? &c->motion : NULL,
                            &c->ab, err));
    } else {
        TRY(vf_conv_run(c->out, x, &c->ab, err));
        if (a->c_residual) TRY(vf_op_add(&c->ab, &c->wab_up, &c->ab, err));   /* W^ab + correction */
    }
    /* X̂(t) for the next frame: [L(t), ab(t)] */
    struct vf_tensor prev_l = vf_tensor_slice(&c->cin, 4, 1), prev_ab = vf_tensor_slice(&c->cin, 5, 2);
    TRY(vf_op_copy(&l, &prev_l, err));
    TRY(vf_op_copy(&c->ab, &prev_ab, err));
fail:
    return rc;
}

/* Reference pass-through: is this grey (host, H × W) the reference's own picture? At most
 * VF_PASSTHROUGH_FRACTION of the pixels may differ from its luma by more than VF_PASSTHROUGH_TOL
 * (an ordinary frame ends the scan within its first rows). */
static bool is_reference_frame(const struct vf_colorizer *c, const float *grey)
{
    const size_t P = (size_t)c->h * (size_t)c->w;
    const size_t allowed = (size_t)((double)P * VF_PASSTHROUGH_FRACTION);
    size_t off = 0;
    for (size_t i = 0; i < P; i++)
        if (fabsf(grey[i] - c->ref_luma[i]) > VF_PASSTHROUGH_TOL && ++off > allowed)
            return false;
    return true;
}

/* A pass-through frame (the grey uploaded): ab = the reference's, and the recurrent state that
 * C and the temporal candidates read next = (this frame's L, the reference's a, b). */
static int enqueue_passthrough(struct vf_colorizer *c, struct vf_error *err)
{
    int rc;
    struct vf_tensor l = vf_tensor_slice(&c->cin, 0, 1);
    struct vf_tensor prev_l = vf_tensor_slice(&c->cin, 4, 1), prev_ab = vf_tensor_slice(&c->cin, 5, 2);
    TRY(vf_op_grey_to_l(&c->grey, &l, NULL, err));
    TRY(vf_op_copy(&c->ref_ab, &c->ab, err));
    TRY(vf_op_copy(&l, &prev_l, err));
    TRY(vf_op_copy(&c->ab, &prev_ab, err));
    if (c->net->arch.a_refine_temporal) {
        TRY(vf_op_grey_to_l(&c->grey, &c->prev_l, NULL, err));
        TRY(vf_op_copy(&c->ref_ab, &c->prev_ab, err));
    }
    if (c->net->arch.a_refine_predict) TRY(vf_tensor_zero(&c->disp_prev, err));
fail:
    return rc;
}

/* One frame through the network (the grey uploaded): F, A and C, from the CUDA graph once it
 * is captured (the first frame runs eagerly: the warm-up), then ab and the taps out. */
static int network_frame(struct vf_colorizer *c, float *ab, struct vf_colorizer_taps *taps,
                         double *t0, struct vf_error *err)
{
    int rc;
    /* A frame whose gate is ramped (C.gate_ramp, a scale under 128) runs eagerly: the graph holds
     * the full scale as a launch argument. Those are the K − 1 frames after a pass-through. */
    const bool full_scale = gate_scale(c) == 128.0f;
    if (c->graph && !vf_graph_current(c->graph))   /* the shared workspace moved: again */
        vf_graph_destroy(&c->graph);
    if (c->use_graph && c->graph_warm && !c->graph && full_scale) {
        /* Capture once. Nothing captured has run, so a capture that fails (an operator that
         * cannot be captured) costs nothing but a warning: this frame and the rest run eagerly,
         * with the same bytes (the same kernels in the same order). */
        struct vf_error ce = {0};
        int crc = vf_backend_capture_begin(c->be, &ce);
        if (!crc) {
            crc = enqueue_f(c, &ce);
            if (!crc) crc = enqueue_a(c, &ce);
            if (!crc) crc = enqueue_c(c, &ce);
            /* end the capture whatever happened, so the stream is usable again */
            struct vf_error e2 = {0};
            int crc2 = vf_backend_capture_end(c->be, &c->graph, crc ? &e2 : &ce);
            if (!crc) crc = crc2;
        }
        if (crc) {
            vf_graph_destroy(&c->graph);
            c->use_graph = false;
            vf_log(&(struct vf_log_ctx){.module = "node", .rank = -1, .chunk = -1}, VF_LOG_WARN,
                   "CUDA graph capture failed, frames run one operator at a time: %s", ce.msg);
        }
    }
    if (c->use_graph && c->graph && full_scale) {
        TRY(vf_graph_launch(c->graph, err));
        TRY(download_planar(&c->ab, ab, err));
        TRY(sync_time(c, &c->times.graphed, t0, err));
    } else {
        TRY(enqueue_f(c, err));
        TRY(sync_time(c, &c->times.f, t0, err));
        TRY(enqueue_a(c, err));
        TRY(sync_time(c, &c->times.a, t0, err));
        TRY(enqueue_c(c, err));
        TRY(download_planar(&c->ab, ab, err));
        TRY(sync_time(c, &c->times.c, t0, err));
        c->graph_warm = true;
    }
    if (taps) {
        for (int k = 0; k < 4; k++) TRY(download_planar(&c->tap[k], taps->f_tap[k], err));
        /* W^ab and S as A computed them (f32), nearest ×4 here (W^ab refined at full size with
         * A.refine): C's input holds them in C's precision, which would hide A's own accuracy
         * in bf16 runs. */
        float *lo = c->host_lo;
        const bool refined = c->net->arch.a_refine_radius > 0;
        TRY(vf_tensor_download(&c->wab_lo, lo, err));
        TRY(vf_tensor_download(&c->conf_lo, lo + 2 * (size_t)c->npos, err));
        if (refined && taps->warp_ab) TRY(vf_tensor_download(&c->wab_up, taps->warp_ab, err));
        for (int ch = refined ? 2 : 0; ch < 3; ch++) {
            float *dst = ch < 2 ? taps->warp_ab : taps->conf;
            if (!dst) continue;
            dst += (size_t)(ch < 2 ? ch : 0) * (size_t)c->h * (size_t)c->w;
            for (int py = 0; py < c->h; py++)
                for (int px = 0; px < c->w; px++)
                    dst[(size_t)py * c->w + px] =
                        lo[(size_t)ch * c->npos + (size_t)(py / 4) * c->w4 + (size_t)(px / 4)];
        }
    }
fail:
    return rc;
}

int vf_colorizer_frame(struct vf_colorizer *c, const float *grey, float *ab,
                       struct vf_colorizer_taps *taps, struct vf_error *err)
{
    if (!c->have_ref)
        return vf_error_set(err, VF_EINVAL, "colorizer: a frame before any reference "
                            "(call vf_colorizer_set_reference first)");
    if (!grey) return vf_error_set(err, VF_EINVAL, "colorizer: no frame given");
    double t0 = vf_now();
    int rc;
    if (c->stale_state)   /* an earlier failure left the state half-reset: the zero state */
        TRY(vf_colorizer_reset(c, err));
    TRY(vf_tensor_upload(&c->grey, grey, err));
    c->frame_passthrough = c->passthrough && is_reference_frame(c, grey);
    if (c->frame_passthrough) {
        TRY(enqueue_passthrough(c, err));
        TRY(download_planar(&c->ab, ab, err));
        TRY(sync_time(c, &c->times.c, &t0, err));   /* as an eager frame's: not a replay */
        c->times.passthrough++;
        c->since_passthrough = 0;
    } else {
        TRY(network_frame(c, ab, taps, &t0, err));
        if (c->since_passthrough >= 0) c->since_passthrough++;
    }
    c->times.frames++;
    c->frame_serial++;
    c->have_frame = true;
    return VF_OK;
fail:
    /* Leave no half-updated recurrence behind: the next frame starts from the zero state (if
     * the device cannot even take that now, stale_state has the next frame try again). The
     * frame's own error is the one reported. */
    {
        struct vf_error reset_err = {0};
        vf_colorizer_reset(c, &reset_err);
    }
    c->have_frame = false;
    vf_error_prefix(err, "frame %ld", c->times.frames);
    return rc;
}

int vf_colorizer_post(struct vf_colorizer *c, const float *grey_full, float *rgb, float *cbcr,
                      struct vf_error *err)
{
    if (c->fh <= 0)
        return vf_error_set(err, VF_EINVAL, "colorizer: created without a full size, so no "
                            "post-processing (set full_h, full_w)");
    if (!c->have_frame)
        return vf_error_set(err, VF_EINVAL, "colorizer: post-processing before any frame since "
                            "the reference (call vf_colorizer_frame first)");
    if (!grey_full) return vf_error_set(err, VF_EINVAL, "colorizer: no full-size grey given");
    double t0 = vf_now();
    int rc;
    TRY(vf_tensor_upload(&c->grey_full, grey_full, err));
    /* the frame's place after the last pass-through (0: that frame), as C.gate_ramp counts */
    const long k = c->since_passthrough;
    const struct vf_arch *a = &c->net->arch;
    if (a->prop_frames && c->post_serial == c->frame_serial) {
        /* this frame again: its a, b are final (carried) already, and the state is its own */
    } else if (c->frame_passthrough && c->have_ref_full) {
        /* the reference's own a, b at full detail */
        struct vf_tensor ref_ab_full = vf_tensor_slice(&c->ref_lab_full, 1, 2);
        TRY(vf_op_copy(&ref_ab_full, &c->ab_full, err));
    } else if (c->net->arch.up_radius == 0) /* the guided filter's A = 0, B = ab: bilinear */
        TRY(vf_op_resize(&c->ab, &c->ab_full, VF_RESIZE_BILINEAR, err));
    else
        TRY(vf_op_guided_upsample(&c->grey, &c->ab, &c->grey_full, &c->ab_full,
                                  c->net->arch.up_radius, c->net->arch.up_eps, &c->scratch, err));
    if (a->prop_frames && c->post_serial != c->frame_serial) {
        /* propagate: the k-th frame after a pass-through carries frame t−1's final a, b, when
         * that very frame was post-processed (the state holds the frame before this one) */
        if (k >= 1 && k <= a->prop_frames && c->prop_serial == c->frame_serial - 1)
            TRY(vf_op_carry_ab(&c->grey_full, &c->prop_grey, &c->prop_ab, &c->ab_full,
                               a->prop_shares[k - 1], a->prop_confidence, a->prop_radius,
                               a->prop_patch, a->prop_subpixel, &c->prop_scratch, err));
        c->prop_serial = -1;
        if (c->passthrough && k >= 0 && k < a->prop_frames) {   /* the next one carries it */
            TRY(vf_op_copy(&c->grey_full, &c->prop_grey, err));
            TRY(vf_op_copy(&c->ab_full, &c->prop_ab, err));
            c->prop_serial = c->frame_serial;
        }
        c->post_serial = c->frame_serial;
    }
    if (rgb || cbcr)
        TRY(vf_op_keep_luma(&c->grey_full, &c->ab_full, c->kr, c->kb, rgb ? &c->rgb_full : NULL,
                            &c->cbcr_full, err));
    TRY(download_planar(&c->rgb_full, rgb, err));
    TRY(download_planar(&c->cbcr_full, cbcr, err));
    TRY(sync_time(c, &c->times.post, &t0, err));
    return VF_OK;
fail:
    c->prop_serial = -1;   /* no half-written state: the next frame carries nothing */
    c->post_serial = -1;
    vf_error_prefix(err, "post-processing");
    return rc;
}

bool vf_colorizer_post_carries(const struct vf_colorizer *c)
{
    const int n = c->net->arch.prop_frames;
    return n > 0 && c->fh > 0 && c->passthrough && c->since_passthrough >= 0 &&
           c->since_passthrough < n;
}

const struct vf_colorizer_times *vf_colorizer_times(const struct vf_colorizer *c)
{
    return &c->times;
}

void vf_colorizer_times_reset(struct vf_colorizer *c) { memset(&c->times, 0, sizeof c->times); }

void vf_colorizer_tap_shape(const struct vf_colorizer *c, int tap, int *ch, int *th, int *tw)
{
    VF_ASSERT(tap >= 0 && tap < 4);
    *ch = c->tap[tap].c;
    *th = c->tap[tap].h;
    *tw = c->tap[tap].w;
}
