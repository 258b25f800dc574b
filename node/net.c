/*
 * node/net.c: the network's weights (docs/NETWORK.md): the architecture from the weights file's
 * metadata, every tensor fetched by name and checked against the shape the architecture
 * implies, batch norm folded into F's convolutions, and the multiply-accumulate count.
 * The forward pass over these weights is node/colorizer.c.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "node/internal.h"

#define NET_FORMAT "vaefarm-net-v1"

/* ============================== architectures ============================================== */

static void arch_tiny(struct vf_arch *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "tiny");
    a->f_stem = 16;
    int fw[4] = {16, 32, 64, 128}, fb[4] = {2, 2, 2, 2};
    memcpy(a->f_widths, fw, sizeof fw);
    memcpy(a->f_blocks, fb, sizeof fb);
    a->a_adapter = 16;
    a->a_res_blocks = 3;
    a->tau = 0.005f;
    int cw[4] = {16, 32, 64, 128}, ce[4] = {1, 1, 2, 2};
    memcpy(a->c_widths, cw, sizeof cw);
    memcpy(a->c_enc_convs, ce, sizeof ce);
    a->c_mid_groups = 2;
    a->c_mid_len[0] = 2;
    a->c_mid_dil[0][0] = 2;
    a->c_mid_dil[0][1] = 2;
    a->c_mid_len[1] = 1;
    a->c_mid_dil[1][0] = 1;
    a->c_latent = 128;
    int dw[3] = {64, 32, 32}, dc[3] = {1, 1, 1};
    memcpy(a->c_dec_widths, dw, sizeof dw);
    memcpy(a->c_dec_convs, dc, sizeof dc);
    a->c_residual = true;
    a->a_refine_radius = 4;
    a->a_refine_patch = 5;
    a->a_refine_h = 0.005f;
    a->a_refine_temporal = 2;
    a->a_refine_temporal_h = 0.0025f;
    a->a_refine_subpixel = true;
    a->inference_h = 144;
    a->inference_w = 256;
    a->up_radius = 0;
    a->up_eps = 1e-3f;
}

static void arch_full(struct vf_arch *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "full");
    a->f_stem = 64;
    int fw[4] = {64, 128, 256, 512}, fb[4] = {3, 4, 6, 3};
    memcpy(a->f_widths, fw, sizeof fw);
    memcpy(a->f_blocks, fb, sizeof fb);
    a->a_adapter = 64;
    a->a_res_blocks = 3;
    a->tau = 0.01f;
    int cw[4] = {64, 128, 256, 512}, ce[4] = {2, 2, 3, 3};
    memcpy(a->c_widths, cw, sizeof cw);
    memcpy(a->c_enc_convs, ce, sizeof ce);
    a->c_mid_groups = 3;
    for (int g = 0; g < 3; g++) {
        a->c_mid_len[g] = 3;
        for (int j = 0; j < 3; j++) a->c_mid_dil[g][j] = g < 2 ? 2 : 1;
    }
    a->c_latent = 512;
    int dw[3] = {256, 128, 128}, dc[3] = {2, 1, 1};
    memcpy(a->c_dec_widths, dw, sizeof dw);
    memcpy(a->c_dec_convs, dc, sizeof dc);
    a->inference_h = 216;
    a->inference_w = 384;
    a->up_radius = 0;
    a->up_eps = 1e-3f;
}

int vf_arch_preset(const char *name, struct vf_arch *arch, struct vf_error *err)
{
    if (strcmp(name, "tiny") == 0) arch_tiny(arch);
    else if (strcmp(name, "full") == 0) arch_full(arch);
    else
        return vf_error_set(err, VF_EINVAL,
                            "unknown architecture '%s': the presets are 'tiny' and 'full' "
                            "(or give a weights file)", name);
    return VF_OK;
}

/* ---- metadata JSON → arch ---- */

#define MAX_WIDTH 8192
#define MAX_ADAPTER 2048        /* 4·adapter channels are centred: kernels' limit is 8192 */
#define MAX_REPEAT VF_NET_MAX_BLOCKS

static int json_int_in(json_t *obj, const char *key, int lo, int hi, int *out, const char *what,
                       const char *sect, struct vf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || !json_is_integer(v))
        return vf_error_set(err, VF_EINVAL,
                            "%s: architecture metadata: %s.%s must be an integer (%s)", what, sect,
                            key, v ? "found another type" : "missing");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return vf_error_set(err, VF_EINVAL,
                            "%s: architecture metadata: %s.%s = %" JSON_INTEGER_FORMAT
                            " is out of range [%d, %d]", what, sect, key, x, lo, hi);
    *out = (int)x;
    return VF_OK;
}

static int json_ints_in(json_t *obj, const char *key, int n, int lo, int hi, int *out,
                        const char *what, const char *sect, struct vf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || !json_is_array(v) || (int)json_array_size(v) != n)
        return vf_error_set(err, VF_EINVAL,
                            "%s: architecture metadata: %s.%s must be an array of %d integers",
                            what, sect, key, n);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi)
            return vf_error_set(err, VF_EINVAL,
                                "%s: architecture metadata: %s.%s[%d] must be an integer in "
                                "[%d, %d]", what, sect, key, i, lo, hi);
        out[i] = (int)json_integer_value(e);
    }
    return VF_OK;
}

static json_t *json_section(json_t *root, const char *key, const char *what, struct vf_error *err)
{
    json_t *s = json_object_get(root, key);
    if (!s || !json_is_object(s)) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: section \"%s\" missing or not an "
                     "object", what, key);
        return NULL;
    }
    return s;
}

#define ARCH_RANGE(v, lo, hi, name)                                                            \
    do {                                                                                       \
        if ((v) < (lo) || (v) > (hi))                                                          \
            return vf_error_set(err, VF_EINVAL, "%s: architecture: %s = %d is out of range "   \
                                "[%d, %d]", what, name, (int)(v), (int)(lo), (int)(hi));       \
    } while (0)

int vf_arch_check(const struct vf_arch *a, const char *what, struct vf_error *err)
{
    ARCH_RANGE(a->f_stem, a->f_widths[0], a->f_widths[0], "F.stem (must equal F.widths[0])");
    for (int i = 0; i < 4; i++) {
        ARCH_RANGE(a->f_widths[i], 1, MAX_WIDTH, "F.widths[i]");
        ARCH_RANGE(a->f_blocks[i], 1, MAX_REPEAT, "F.blocks[i]");
        ARCH_RANGE(a->c_widths[i], 1, MAX_WIDTH, "C.widths[i]");
        ARCH_RANGE(a->c_enc_convs[i], 1, MAX_REPEAT, "C.enc_convs[i]");
    }
    for (int k = 0; k < 3; k++) {
        ARCH_RANGE(a->c_dec_widths[k], 1, MAX_WIDTH, "C.dec_widths[k]");
        ARCH_RANGE(a->c_dec_convs[k], 0, MAX_REPEAT, "C.dec_convs[k]");
    }
    ARCH_RANGE(a->a_adapter, 1, MAX_ADAPTER, "A.adapter");
    ARCH_RANGE(a->a_res_blocks, 0, MAX_REPEAT, "A.res_blocks");
    ARCH_RANGE(a->c_latent, 1, MAX_WIDTH, "C.latent");
    ARCH_RANGE(a->c_gate_ramp, 0, VF_GATE_RAMP_MAX, "C.gate_ramp (0: none)");
    ARCH_RANGE(a->c_mid_groups, 1, 8, "len(C.mid)");
    for (int g = 0; g < a->c_mid_groups; g++) {
        ARCH_RANGE(a->c_mid_len[g], 1, 8, "len(C.mid[g])");
        for (int j = 0; j < a->c_mid_len[g]; j++) ARCH_RANGE(a->c_mid_dil[g][j], 1, 16, "C.mid[g][j]");
    }
    if (a->c_gate && !a->c_residual)
        return vf_error_set(err, VF_EINVAL, "%s: architecture: C.gate needs C.residual (the gate "
                            "scales the correction to the warp)", what);
    if (a->c_gate_motion > 0.0f && !a->c_gate)
        return vf_error_set(err, VF_EINVAL, "%s: architecture: C.gate_motion needs C.gate (it "
                            "scales the gate)", what);
    if (a->c_gate_ramp && !a->c_gate)
        return vf_error_set(err, VF_EINVAL, "%s: architecture: C.gate_ramp needs C.gate (it "
                            "scales the gate)", what);
    if (a->c_gate_motion_px && !(a->c_gate_motion > 0.0f))
        return vf_error_set(err, VF_EINVAL, "%s: architecture: C.gate_motion_radius needs "
                            "C.gate_motion (it makes its factor per pixel)", what);
    if (a->c_gate_motion_px && (a->c_gate_motion_radius < 0 || a->c_gate_motion_radius > VF_MOTION_RADIUS_MAX))
        return vf_error_set(err, VF_EINVAL, "%s: architecture: C.gate_motion_radius %d is not in "
                            "[0, %d]", what, a->c_gate_motion_radius, VF_MOTION_RADIUS_MAX);
    if (!(a->tau > 1e-6f && a->tau < 1e3f))
        return vf_error_set(err, VF_EINVAL, "%s: architecture: A.tau = %g is out of range "
                            "(1e-6, 1e3)", what, (double)a->tau);
    if (a->a_refine_radius && (a->a_refine_radius < 1 || a->a_refine_radius > VF_REFINE_MAX_RADIUS ||
                               a->a_refine_patch < 1 || a->a_refine_patch > VF_REFINE_MAX_PATCH ||
                               a->a_refine_patch % 2 == 0 || !(a->a_refine_h > 0.0f) ||
                               !(a->a_refine_h < 10.0f)))
        return vf_error_set(err, VF_EINVAL, "%s: architecture: A.refine (radius %d, patch %d, h "
                            "%g) is out of range: radius in [1, %d], patch odd in [1, %d], h in "
                            "(0, 10)", what, a->a_refine_radius, a->a_refine_patch,
                            (double)a->a_refine_h, VF_REFINE_MAX_RADIUS, VF_REFINE_MAX_PATCH);
    if (a->a_refine_temporal &&
        (!a->a_refine_radius || a->a_refine_temporal < 0 ||
         a->a_refine_temporal > VF_REFINE_MAX_TEMPORAL || !(a->a_refine_temporal_h > 0.0f) ||
         !(a->a_refine_temporal_h < 10.0f)))
        return vf_error_set(err, VF_EINVAL, "%s: architecture: A.refine.temporal %d (h_t %g) is "
                            "out of range: it needs A.refine, radius in [0, %d], h_t in (0, 10)",
                            what, a->a_refine_temporal, (double)a->a_refine_temporal_h,
                            VF_REFINE_MAX_TEMPORAL);
    if (a->a_refine_subpixel && !a->a_refine_temporal)
        return vf_error_set(err, VF_EINVAL, "%s: architecture: A.refine.subpixel needs "
                            "A.refine.temporal > 0 (it reads the temporal candidates' costs)",
                            what);
    if (a->a_refine_predict < 0 || a->a_refine_predict > VF_REFINE_MAX_PREDICT ||
        (a->a_refine_predict && !a->a_refine_temporal))
        return vf_error_set(err, VF_EINVAL, "%s: architecture: A.refine.predict %d is out of "
                            "range: [0, %d], and above 0 it needs A.refine.temporal > 0 (it "
                            "carries the temporal candidates' cheapest displacement)", what,
                            a->a_refine_predict, VF_REFINE_MAX_PREDICT);
    ARCH_RANGE(a->inference_h, 32, 8192, "inference_size[0]");
    ARCH_RANGE(a->inference_w, 32, 8192, "inference_size[1]");
    if (a->inference_h % 8 || a->inference_w % 8)
        return vf_error_set(err, VF_EINVAL, "%s: architecture: inference_size %dx%d must be "
                            "multiples of 8", what, a->inference_h, a->inference_w);
    ARCH_RANGE(a->up_radius, 0, VF_UPSAMPLE_MAX_RADIUS, "upsample.radius");
    if (!(a->up_eps > 0.0f) || !(a->up_eps < 1.0f))
        return vf_error_set(err, VF_EINVAL, "%s: architecture: upsample.eps = %g is out of "
                            "range (0, 1)", what, (double)a->up_eps);
    ARCH_RANGE(a->prop_frames, 0, VF_PROPAGATE_MAX_FRAMES, "len(propagate.shares) (0: none)");
    if (a->prop_frames) {
        ARCH_RANGE(a->prop_radius, 1, VF_PROPAGATE_MAX_RADIUS, "propagate.radius");
        ARCH_RANGE(a->prop_patch, 1, VF_PROPAGATE_MAX_PATCH, "propagate.patch");
        if (a->prop_patch % 2 == 0)
            return vf_error_set(err, VF_EINVAL, "%s: architecture: propagate.patch %d must be "
                                "odd", what, a->prop_patch);
        for (int k = 0; k < a->prop_frames; k++)
            if (!(a->prop_shares[k] >= 0.0f && a->prop_shares[k] <= 1.0f))
                return vf_error_set(err, VF_EINVAL, "%s: architecture: propagate.shares[%d] = "
                                    "%g is not in [0, 1]", what, k, (double)a->prop_shares[k]);
        if (!(a->prop_confidence >= 0.0f && a->prop_confidence < 1e6f))
            return vf_error_set(err, VF_EINVAL, "%s: architecture: propagate.confidence = %g is "
                                "not in [0, 1e6)", what, (double)a->prop_confidence);
    }
    return VF_OK;
}

/* An object's keys against a NULL-ended list: the first unknown one is an error that names it
 * (with prefix, e.g. "C.") and lists the known ones. */
static int unknown_key(json_t *obj, const char *const *known, const char *prefix, const char *what,
                       struct vf_error *err)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        size_t k = 0;
        while (known[k] && strcmp(key, known[k]) != 0) k++;
        if (!known[k]) {
            char list[256] = "";
            for (size_t m = 0; known[m]; m++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", m ? ", " : "",
                         known[m]);
            return vf_error_set(err, VF_EINVAL, "%s: architecture metadata: unknown key \"%s%s\" "
                                "(known: %s)", what, prefix, key, list);
        }
    }
    return VF_OK;
}

int vf_arch_from_json(const char *text, const char *what, struct vf_arch *a, struct vf_error *err)
{
    memset(a, 0, sizeof *a);
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return vf_error_set(err, VF_EINVAL,
                            "%s: the \"vaefarm\" metadata is not valid JSON (line %d: %s)", what,
                            je.line, je.text);
    int rc = VF_EINVAL;
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_object(root) || !json_is_string(fmt) ||
        strcmp(json_string_value(fmt), NET_FORMAT) != 0) {
        vf_error_set(err, VF_EUNSUPPORTED,
                     "%s: architecture metadata format is %s%s%s; this vaefarm reads \"%s\" "
                     "(re-export the model with train/export.py)", what,
                     json_is_string(fmt) ? "\"" : "", json_is_string(fmt) ? json_string_value(fmt)
                                                                         : "missing",
                     json_is_string(fmt) ? "\"" : "", NET_FORMAT);
        rc = VF_EUNSUPPORTED;
        goto out;
    }
    /* as train/vaefarm_ref/arch.py: an unknown key (a typo, or a key of a newer vaefarm) must
     * not silently change the network or its post-processing */
    static const char *const known[] = {"format", "name", "F", "A", "C", "inference_size",
                                        "upsample", "propagate", NULL};
    if (unknown_key(root, known, "", what, err)) goto out;
    json_t *name = json_object_get(root, "name");
    snprintf(a->name, sizeof a->name, "%s", json_is_string(name) ? json_string_value(name) : "?");
    for (char *p = a->name; *p; p++)   /* printed in messages and reports */
        if (*p < 0x20 || *p >= 0x7f) *p = '?';
    json_t *F = json_section(root, "F", what, err), *A = NULL, *C = NULL;
    if (!F || !(A = json_section(root, "A", what, err)) || !(C = json_section(root, "C", what, err)))
        goto out;
    static const char *const known_c[] = {"widths", "enc_convs", "mid", "latent", "dec_widths",
                                          "dec_convs", "residual", "gate", "gate_motion",
                                          "gate_motion_radius", "gate_ramp", NULL};
    if (unknown_key(C, known_c, "C.", what, err)) goto out;
    if (json_int_in(F, "stem", 1, MAX_WIDTH, &a->f_stem, what, "F", err) ||
        json_ints_in(F, "widths", 4, 1, MAX_WIDTH, a->f_widths, what, "F", err) ||
        json_ints_in(F, "blocks", 4, 1, MAX_REPEAT, a->f_blocks, what, "F", err) ||
        json_int_in(A, "adapter", 1, MAX_ADAPTER, &a->a_adapter, what, "A", err) ||
        json_int_in(A, "res_blocks", 0, MAX_REPEAT, &a->a_res_blocks, what, "A", err) ||
        json_ints_in(C, "widths", 4, 1, MAX_WIDTH, a->c_widths, what, "C", err) ||
        json_ints_in(C, "enc_convs", 4, 1, MAX_REPEAT, a->c_enc_convs, what, "C", err) ||
        json_int_in(C, "latent", 1, MAX_WIDTH, &a->c_latent, what, "C", err) ||
        json_ints_in(C, "dec_widths", 3, 1, MAX_WIDTH, a->c_dec_widths, what, "C", err) ||
        json_ints_in(C, "dec_convs", 3, 0, MAX_REPEAT, a->c_dec_convs, what, "C", err))
        goto out;
    if (a->f_stem != a->f_widths[0]) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: F.stem (%d) must equal "
                     "F.widths[0] (%d)", what, a->f_stem, a->f_widths[0]);
        goto out;
    }
    json_t *tau = json_object_get(A, "tau");
    if (!json_is_number(tau) || !(json_number_value(tau) > 1e-6) ||
        !(json_number_value(tau) < 1e3)) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: A.tau must be a number in "
                     "(1e-6, 1e3)", what);
        goto out;
    }
    a->tau = (float)json_number_value(tau);
    json_t *refine = json_object_get(A, "refine");      /* optional, off when absent */
    if (refine) {
        json_t *rh = json_object_get(refine, "h");
        json_t *tr = json_object_get(refine, "temporal"), *th = json_object_get(refine, "temporal_h");
        json_t *sp = json_object_get(refine, "subpixel"), *pr = json_object_get(refine, "predict");
        if (!json_is_object(refine) ||
            json_object_size(refine) != 3u + (tr ? 2u : 0u) + (sp ? 1u : 0u) + (pr ? 1u : 0u) ||
            !json_is_number(rh) || (tr && !json_is_number(th)) || (sp && !json_is_boolean(sp))) {
            vf_error_set(err, VF_EINVAL, "%s: architecture metadata: A.refine must be an object "
                         "{\"radius\": 1..%d, \"patch\": odd 1..%d, \"h\": a number} and "
                         "optionally both \"temporal\": 0..%d and \"temporal_h\": a number, and "
                         "\"subpixel\": true or false, and \"predict\": 0..%d",
                         what, VF_REFINE_MAX_RADIUS, VF_REFINE_MAX_PATCH, VF_REFINE_MAX_TEMPORAL,
                         VF_REFINE_MAX_PREDICT);
            goto out;
        }
        if (json_int_in(refine, "radius", 1, VF_REFINE_MAX_RADIUS, &a->a_refine_radius, what,
                        "A.refine", err) ||
            json_int_in(refine, "patch", 1, VF_REFINE_MAX_PATCH, &a->a_refine_patch, what,
                        "A.refine", err) ||
            (tr && json_int_in(refine, "temporal", 0, VF_REFINE_MAX_TEMPORAL,
                               &a->a_refine_temporal, what, "A.refine", err)) ||
            (pr && json_int_in(refine, "predict", 0, VF_REFINE_MAX_PREDICT,
                               &a->a_refine_predict, what, "A.refine", err)))
            goto out;
        if (tr) a->a_refine_temporal_h = (float)json_number_value(th);
        a->a_refine_subpixel = sp && json_is_true(sp);
        a->a_refine_h = (float)json_number_value(rh);
    }
    json_t *mid = json_object_get(C, "mid");
    int ng = json_is_array(mid) ? (int)json_array_size(mid) : -1;
    if (ng < 1 || ng > 8) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: C.mid must be an array of 1 to 8 "
                     "groups of dilations", what);
        goto out;
    }
    a->c_mid_groups = ng;
    for (int g = 0; g < ng; g++) {
        json_t *grp = json_array_get(mid, (size_t)g);
        int nl = json_is_array(grp) ? (int)json_array_size(grp) : -1;
        if (nl < 1 || nl > 8) {
            vf_error_set(err, VF_EINVAL, "%s: architecture metadata: C.mid[%d] must be an array "
                         "of 1 to 8 dilations", what, g);
            goto out;
        }
        a->c_mid_len[g] = nl;
        for (int j = 0; j < nl; j++) {
            json_t *d = json_array_get(grp, (size_t)j);
            if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > 16) {
                vf_error_set(err, VF_EINVAL, "%s: architecture metadata: C.mid[%d][%d] must be "
                             "a dilation in [1, 16]", what, g, j);
                goto out;
            }
            a->c_mid_dil[g][j] = (int)json_integer_value(d);
        }
    }
    json_t *residual = json_object_get(C, "residual");   /* optional, false when absent */
    if (residual && !json_is_boolean(residual)) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: C.residual must be true or "
                     "false", what);
        goto out;
    }
    a->c_residual = json_is_true(residual);
    json_t *gate = json_object_get(C, "gate");   /* optional, false when absent */
    if (gate && !json_is_boolean(gate)) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: C.gate must be true or false",
                     what);
        goto out;
    }
    a->c_gate = json_is_true(gate);
    json_t *motion = json_object_get(C, "gate_motion");   /* optional, none when absent */
    if (motion && (!json_is_number(motion) || !(json_number_value(motion) >= 1e-6) ||
                   !(json_number_value(motion) < 1e6))) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: C.gate_motion must be a positive "
                     "number (κ, in units of L) in [1e-6, 1e6)", what);
        goto out;
    }
    a->c_gate_motion = motion ? (float)json_number_value(motion) : 0.0f;
    json_t *mradius = json_object_get(C, "gate_motion_radius");   /* optional: per image when absent */
    if (mradius && (!json_is_integer(mradius) || json_integer_value(mradius) < 0 ||
                    json_integer_value(mradius) > VF_MOTION_RADIUS_MAX)) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: C.gate_motion_radius must be an "
                     "integer in [0, %d] (pixels)", what, VF_MOTION_RADIUS_MAX);
        goto out;
    }
    a->c_gate_motion_px = mradius != NULL;
    a->c_gate_motion_radius = mradius ? (int)json_integer_value(mradius) : 0;
    json_t *ramp = json_object_get(C, "gate_ramp");   /* optional, none when absent */
    if (ramp && (!json_is_integer(ramp) || json_integer_value(ramp) < 1 ||
                 json_integer_value(ramp) > VF_GATE_RAMP_MAX)) {
        vf_error_set(err, VF_EINVAL, "%s: architecture metadata: C.gate_ramp must be an integer "
                     "in [1, %d] (frames)", what, VF_GATE_RAMP_MAX);
        goto out;
    }
    a->c_gate_ramp = ramp ? (int)json_integer_value(ramp) : 0;
    int size[2];
    if (json_ints_in(root, "inference_size", 2, 32, 8192, size, what, "(top)", err)) goto out;
    a->inference_h = size[0];
    a->inference_w = size[1];
    json_t *up = json_object_get(root, "upsample");   /* optional: the guided filter when absent */
    a->up_radius = 2;
    a->up_eps = 1e-3f;
    if (up) {
        json_t *ue = json_object_get(up, "eps");
        if (!json_is_object(up) || json_object_size(up) != 2 || !json_is_number(ue)) {
            vf_error_set(err, VF_EINVAL, "%s: architecture metadata: upsample must be an object "
                         "{\"radius\": 0..%d, \"eps\": a number in (0, 1)}", what,
                         VF_UPSAMPLE_MAX_RADIUS);
            goto out;
        }
        if (json_int_in(up, "radius", 0, VF_UPSAMPLE_MAX_RADIUS, &a->up_radius, what, "upsample",
                        err))
            goto out;
        a->up_eps = (float)json_number_value(ue);
    }
    json_t *prop = json_object_get(root, "propagate");   /* optional: none when absent */
    a->prop_frames = 0;
    a->prop_subpixel = false;
    if (prop) {
        json_t *sh = json_object_get(prop, "shares"), *conf = json_object_get(prop, "confidence");
        json_t *sub = json_object_get(prop, "subpixel");   /* optional: false when absent */
        size_t n = json_is_array(sh) ? json_array_size(sh) : 0;
        bool ok = json_is_object(prop) && json_object_size(prop) == 4 + (sub != NULL) &&
                  (!sub || json_is_boolean(sub)) && n >= 1 &&
                  n <= VF_PROPAGATE_MAX_FRAMES && json_is_number(conf) &&
                  json_number_value(conf) >= 0.0 && json_number_value(conf) < 1e6;
        for (size_t k = 0; ok && k < n; k++) {
            json_t *v = json_array_get(sh, k);
            ok = json_is_number(v) && json_number_value(v) >= 0.0 && json_number_value(v) <= 1.0;
            if (ok) a->prop_shares[k] = (float)json_number_value(v);
        }
        if (!ok) {
            vf_error_set(err, VF_EINVAL, "%s: architecture metadata: propagate must be an object "
                         "{\"radius\": 1..%d, \"patch\": odd 1..%d, \"shares\": 1 to %d numbers in "
                         "[0, 1], \"confidence\": a number in [0, 1e6), optionally "
                         "\"subpixel\": true or false}", what,
                         VF_PROPAGATE_MAX_RADIUS, VF_PROPAGATE_MAX_PATCH, VF_PROPAGATE_MAX_FRAMES);
            goto out;
        }
        if (json_int_in(prop, "radius", 1, VF_PROPAGATE_MAX_RADIUS, &a->prop_radius, what,
                        "propagate", err) ||
            json_int_in(prop, "patch", 1, VF_PROPAGATE_MAX_PATCH, &a->prop_patch, what,
                        "propagate", err))
            goto out;
        a->prop_frames = (int)n;
        a->prop_confidence = (float)json_number_value(conf);
        a->prop_subpixel = sub && json_is_true(sub);
    }
    rc = vf_arch_check(a, what, err);
out:
    json_decref(root);
    return rc;
}

/* ============================== weights ==================================================== */

/* Where weights come from while the net is built: a parsed file, or a seeded generator. */
struct source {
    const struct vf_safetensors *st;    /* NULL: random */
    uint64_t rng;
    const char *what;
    bool *used;                         /* per st tensor */
};

static double rng_uniform(uint64_t *s)  /* splitmix64 → [0, 1) */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_normal(uint64_t *s)
{
    double u1 = rng_uniform(s), u2 = rng_uniform(s);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

enum init_kind { INIT_CONV, INIT_BIAS, INIT_ONE, INIT_ZERO, INIT_VAR, INIT_MEAN, INIT_SLOPE };

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* Fetch tensor `name` of the given shape as freshly allocated f32 (caller frees). */
static int fetch(struct source *src, const char *name, int ndim, const int64_t *shape,
                 enum init_kind init, float **out, struct vf_error *err)
{
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) count *= shape[i];
    float *buf = NULL;
    if (!src->st) {
        buf = vf_calloc((size_t)count, sizeof(float), err);
        if (!buf) return VF_ENOMEM;
        int64_t fan_in = ndim == 4 ? shape[1] * shape[2] * shape[3] : 1;
        double std = sqrt(2.0 / (double)fan_in);
        for (int64_t i = 0; i < count; i++) {
            uint64_t *r = &src->rng;
            switch (init) {
            case INIT_CONV: buf[i] = (float)(std * rng_normal(r)); break;
            case INIT_BIAS: buf[i] = (float)(0.01 * rng_normal(r)); break;
            case INIT_ONE: buf[i] = (float)(0.8 + 0.4 * rng_uniform(r)); break;
            case INIT_ZERO: buf[i] = (float)(0.1 * rng_normal(r)); break;
            case INIT_VAR: buf[i] = (float)(0.5 + rng_uniform(r)); break;
            case INIT_MEAN: buf[i] = (float)(0.1 * rng_normal(r)); break;
            case INIT_SLOPE: buf[i] = (float)(0.1 + 0.2 * rng_uniform(r)); break;
            }
        }
        *out = buf;
        return VF_OK;
    }
    const struct vf_st_tensor *t = vf_safetensors_find(src->st, name);
    if (!t) {
        return vf_error_set(err, VF_EINVAL,
                            "%s: tensor '%s' is missing, but the architecture in the file's "
                            "metadata needs it (a weights file of another architecture?)",
                            src->what, name);
    }
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return vf_error_set(err, VF_EINVAL,
                            "%s: tensor '%s' has shape %s, but the architecture in the file's "
                            "metadata needs %s", src->what, name, got, want);
    }
    buf = vf_calloc((size_t)count, sizeof(float), err);
    if (!buf) return VF_ENOMEM;
    int rc = vf_st_to_f32(t, buf, err);
    if (rc) {
        free(buf);
        return vf_error_prefix(err, "%s", src->what);
    }
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(buf[i])) {
            free(buf);
            return vf_error_set(err, VF_EINVAL, "%s: tensor '%s' holds a non-finite value at "
                                "element %" PRId64, src->what, name, i);
        }
    src->used[t - src->st->tensors] = true;
    *out = buf;
    return VF_OK;
}

static int fetch_conv(struct source *src, struct vf_net *net, const char *prefix, int ic, int oc,
                      int k, int groups, bool bias, struct net_conv *cv, struct vf_error *err)
{
    char name[160];
    int64_t shape[4] = {oc, ic / groups, k, k};
    cv->ic = ic;
    cv->oc = oc;
    cv->k = k;
    cv->groups = groups;
    snprintf(name, sizeof name, "%s.weight", prefix);
    int rc = fetch(src, name, 4, shape, INIT_CONV, &cv->w, err);
    if (rc) return rc;
    net->params += shape[0] * shape[1] * shape[2] * shape[3];
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        rc = fetch(src, name, 1, shape, INIT_BIAS, &cv->b, err);
        if (rc) return rc;
        net->params += oc;
    }
    return VF_OK;
}

/* A per-channel vector: IN gamma/beta, PReLU slopes. */
static int fetch_vec(struct source *src, struct vf_net *net, const char *prefix,
                     const char *suffix, int n, enum init_kind init, float **out,
                     struct vf_error *err)
{
    char name[160];
    int64_t shape[1] = {n};
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    int rc = fetch(src, name, 1, shape, init, out, err);
    if (!rc) net->params += n;
    return rc;
}

static int fetch_norm(struct source *src, struct vf_net *net, const char *prefix, int n,
                      struct net_norm *nm, struct vf_error *err)
{
    nm->c = n;
    int rc = fetch_vec(src, net, prefix, "weight", n, INIT_ONE, &nm->gamma, err);
    if (!rc) rc = fetch_vec(src, net, prefix, "bias", n, INIT_ZERO, &nm->beta, err);
    return rc;
}

/* conv (no bias) + BN → conv with bias: w' = w·γ/√(var+ε), b' = β − mean·γ/√(var+ε). */
static int fetch_conv_bn(struct source *src, struct vf_net *net, const char *conv,
                         const char *bn, int ic, int oc, int k, struct net_conv *cv,
                         struct vf_error *err)
{
    int rc = fetch_conv(src, net, conv, ic, oc, k, 1, false, cv, err);
    float *g = NULL, *b = NULL, *m = NULL, *v = NULL;
    if (!rc) rc = fetch_vec(src, net, bn, "weight", oc, INIT_ONE, &g, err);
    if (!rc) rc = fetch_vec(src, net, bn, "bias", oc, INIT_ZERO, &b, err);
    if (!rc) rc = fetch_vec(src, net, bn, "running_mean", oc, INIT_MEAN, &m, err);
    if (!rc) rc = fetch_vec(src, net, bn, "running_var", oc, INIT_VAR, &v, err);
    if (!rc) {
        net->params -= 2 * oc;  /* running statistics are not parameters */
        cv->b = vf_calloc((size_t)oc, sizeof(float), err);
        if (!cv->b) rc = VF_ENOMEM;
    }
    if (!rc) {
        size_t per = (size_t)ic * (size_t)k * (size_t)k;
        for (int o = 0; o < oc; o++) {
            if (!(v[o] >= 0.0f)) {
                rc = vf_error_set(err, VF_EINVAL, "%s: tensor '%s.running_var' is negative at "
                                  "channel %d", src->what, bn, o);
                break;
            }
            double s = (double)g[o] / sqrt((double)v[o] + 1e-5);
            for (size_t i = 0; i < per; i++)
                cv->w[(size_t)o * per + i] = (float)((double)cv->w[(size_t)o * per + i] * s);
            cv->b[o] = (float)((double)b[o] - (double)m[o] * s);
        }
    }
    free(g);
    free(b);
    free(m);
    free(v);
    return rc;
}

static void conv_free(struct net_conv *cv)
{
    free(cv->w);
    free(cv->b);
    cv->w = cv->b = NULL;
}

static void norm_free(struct net_norm *n)
{
    free(n->gamma);
    free(n->beta);
    n->gamma = n->beta = NULL;
}

void vf_net_free(struct vf_net **pnet)
{
    struct vf_net *net = pnet ? *pnet : NULL;
    if (!net) return;
    conv_free(&net->f_conv1);
    for (int l = 0; l < 4; l++)
        for (int b = 0; b < VF_NET_MAX_BLOCKS; b++) {
            struct net_bottleneck *bk = &net->f_block[l][b];
            conv_free(&bk->c1);
            conv_free(&bk->c2);
            conv_free(&bk->c3);
            conv_free(&bk->ds);
        }
    for (int k = 0; k < 4; k++) {
        conv_free(&net->a_adapt[k].conv);
        norm_free(&net->a_adapt[k].norm);
        free(net->a_adapt[k].slopes);
    }
    for (int i = 0; i < VF_NET_MAX_BLOCKS; i++) {
        conv_free(&net->a_res[i].conv1);
        conv_free(&net->a_res[i].conv2);
        norm_free(&net->a_res[i].norm1);
        norm_free(&net->a_res[i].norm2);
        free(net->a_res[i].slopes);
    }
    conv_free(&net->a_theta);
    conv_free(&net->a_phi);
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < VF_NET_MAX_BLOCKS; j++) conv_free(&net->c_enc[l][j]);
        norm_free(&net->c_enc_norm[l]);
        conv_free(&net->c_down[l]);
    }
    for (int g = 0; g < 8; g++) {
        for (int j = 0; j < 8; j++) conv_free(&net->c_mid[g][j]);
        norm_free(&net->c_mid_norm[g]);
    }
    conv_free(&net->c_mu);
    for (int k = 0; k < 3; k++) {
        conv_free(&net->c_dec[k].up);
        conv_free(&net->c_dec[k].skip);
        for (int j = 0; j < VF_NET_MAX_BLOCKS; j++) conv_free(&net->c_dec[k].convs[j]);
        norm_free(&net->c_dec[k].norm);
    }
    conv_free(&net->c_out);
    free(net);
    *pnet = NULL;
}

static int build(struct vf_net *net, struct source *src, struct vf_error *err)
{
    const struct vf_arch *a = &net->arch;
    char p[128], q[128];
    int rc;
    if ((rc = vf_arch_check(a, src->what, err))) return rc;
    /* F */
    if ((rc = fetch_conv_bn(src, net, "F.conv1", "F.bn1", 3, a->f_stem, 7, &net->f_conv1, err)))
        return rc;
    int in = a->f_stem;
    for (int l = 0; l < 4; l++) {
        int w = a->f_widths[l];
        for (int b = 0; b < a->f_blocks[l]; b++) {
            struct net_bottleneck *bk = &net->f_block[l][b];
            bk->stride = (l > 0 && b == 0) ? 2 : 1;
            snprintf(p, sizeof p, "F.layer%d.%d.conv1", l + 1, b);
            snprintf(q, sizeof q, "F.layer%d.%d.bn1", l + 1, b);
            if ((rc = fetch_conv_bn(src, net, p, q, in, w, 1, &bk->c1, err))) return rc;
            snprintf(p, sizeof p, "F.layer%d.%d.conv2", l + 1, b);
            snprintf(q, sizeof q, "F.layer%d.%d.bn2", l + 1, b);
            if ((rc = fetch_conv_bn(src, net, p, q, w, w, 3, &bk->c2, err))) return rc;
            snprintf(p, sizeof p, "F.layer%d.%d.conv3", l + 1, b);
            snprintf(q, sizeof q, "F.layer%d.%d.bn3", l + 1, b);
            if ((rc = fetch_conv_bn(src, net, p, q, w, 4 * w, 1, &bk->c3, err))) return rc;
            if (b == 0) {   /* torchvision: a downsample wherever shape changes (here: block 0) */
                snprintf(p, sizeof p, "F.layer%d.0.downsample.0", l + 1);
                snprintf(q, sizeof q, "F.layer%d.0.downsample.1", l + 1);
                if ((rc = fetch_conv_bn(src, net, p, q, in, 4 * w, 1, &bk->ds, err))) return rc;
            }
            in = 4 * w;
        }
    }
    /* A */
    int ad = a->a_adapter, cat = 4 * ad;
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "A.adapt.%d.conv", k);
        if ((rc = fetch_conv(src, net, p, 4 * a->f_widths[k], ad, k < 2 ? 3 : 1, 1, true,
                             &net->a_adapt[k].conv, err)))
            return rc;
        snprintf(p, sizeof p, "A.adapt.%d.norm", k);
        if ((rc = fetch_norm(src, net, p, ad, &net->a_adapt[k].norm, err))) return rc;
        snprintf(p, sizeof p, "A.adapt.%d.act", k);
        if ((rc = fetch_vec(src, net, p, "weight", ad, INIT_SLOPE, &net->a_adapt[k].slopes, err)))
            return rc;
    }
    for (int i = 0; i < a->a_res_blocks; i++) {
        struct net_res *r = &net->a_res[i];
        snprintf(p, sizeof p, "A.res.%d.conv1", i);
        if ((rc = fetch_conv(src, net, p, cat, cat, 3, 1, true, &r->conv1, err))) return rc;
        snprintf(p, sizeof p, "A.res.%d.norm1", i);
        if ((rc = fetch_norm(src, net, p, cat, &r->norm1, err))) return rc;
        snprintf(p, sizeof p, "A.res.%d.act", i);
        if ((rc = fetch_vec(src, net, p, "weight", cat, INIT_SLOPE, &r->slopes, err))) return rc;
        snprintf(p, sizeof p, "A.res.%d.conv2", i);
        if ((rc = fetch_conv(src, net, p, cat, cat, 3, 1, true, &r->conv2, err))) return rc;
        snprintf(p, sizeof p, "A.res.%d.norm2", i);
        if ((rc = fetch_norm(src, net, p, cat, &r->norm2, err))) return rc;
    }
    if ((rc = fetch_conv(src, net, "A.theta", cat, cat, 1, 1, true, &net->a_theta, err))) return rc;
    if ((rc = fetch_conv(src, net, "A.phi", cat, cat, 1, 1, true, &net->a_phi, err))) return rc;
    /* C */
    in = 7;
    for (int l = 0; l < 4; l++) {
        int w = a->c_widths[l];
        for (int j = 0; j < a->c_enc_convs[l]; j++) {
            snprintf(p, sizeof p, "C.enc.%d.%d", l, j);
            if ((rc = fetch_conv(src, net, p, in, w, 3, 1, true, &net->c_enc[l][j], err)))
                return rc;
            in = w;
        }
        snprintf(p, sizeof p, "C.enc.%d.norm", l);
        if ((rc = fetch_norm(src, net, p, w, &net->c_enc_norm[l], err))) return rc;
        if (l < 3) {
            snprintf(p, sizeof p, "C.enc.%d.down", l);
            if ((rc = fetch_conv(src, net, p, w, w, 1, w, false, &net->c_down[l], err))) return rc;
        }
    }
    for (int g = 0; g < a->c_mid_groups; g++) {
        for (int j = 0; j < a->c_mid_len[g]; j++) {
            snprintf(p, sizeof p, "C.mid.%d.%d", g, j);
            if ((rc = fetch_conv(src, net, p, in, in, 3, 1, true, &net->c_mid[g][j], err)))
                return rc;
        }
        snprintf(p, sizeof p, "C.mid.%d.norm", g);
        if ((rc = fetch_norm(src, net, p, in, &net->c_mid_norm[g], err))) return rc;
    }
    if ((rc = fetch_conv(src, net, "C.mu", in, a->c_latent, 1, 1, true, &net->c_mu, err)))
        return rc;
    in = a->c_latent;
    for (int k = 0; k < 3; k++) {
        struct net_dec *d = &net->c_dec[k];
        int w = a->c_dec_widths[k];
        snprintf(p, sizeof p, "C.dec.%d.up", k);
        if ((rc = fetch_conv(src, net, p, in, w, 3, 1, true, &d->up, err))) return rc;
        snprintf(p, sizeof p, "C.dec.%d.skip", k);
        if ((rc = fetch_conv(src, net, p, a->c_widths[2 - k], w, 3, 1, true, &d->skip, err)))
            return rc;
        for (int j = 0; j < a->c_dec_convs[k]; j++) {
            snprintf(p, sizeof p, "C.dec.%d.%d", k, j);
            if ((rc = fetch_conv(src, net, p, w, w, 3, 1, true, &d->convs[j], err))) return rc;
        }
        if (k < 2) {
            snprintf(p, sizeof p, "C.dec.%d.norm", k);
            if ((rc = fetch_norm(src, net, p, w, &d->norm, err))) return rc;
        }
        in = w;
    }
    if ((rc = fetch_conv(src, net, "C.out", in, a->c_gate ? 3 : 2, 1, 1, true, &net->c_out, err)))
        return rc;
    return VF_OK;
}

/* A name from the file, safe to print: printable ASCII kept, the rest as '?', cut at 100. */
static const char *printable(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len && i < 100; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[i] = 0;
    return buf;
}

/* Tensors the file may carry that inference does not use. */
static bool ignorable(const char *name)
{
    size_t n = strlen(name);
    const char *nbt = "num_batches_tracked";
    return strncmp(name, "C.logvar.", 9) == 0 ||
           (n >= strlen(nbt) && strcmp(name + n - strlen(nbt), nbt) == 0);
}

static int net_from_st(const struct vf_safetensors *st, const char *what, struct vf_net **out,
                       struct vf_error *err)
{
    const char *meta = vf_safetensors_meta(st, "vaefarm");
    if (!meta)
        return vf_error_set(err, VF_EINVAL,
                            "%s: no \"vaefarm\" key in the file's __metadata__: this is not a "
                            "vaefarm weights file (export one with train/export.py, or convert "
                            "torchvision ResNet-50 weights with train/convert_resnet.py)", what);
    struct vf_net *net = vf_calloc(1, sizeof *net, err);
    if (!net) return VF_ENOMEM;
    int rc = vf_arch_from_json(meta, what, &net->arch, err);
    bool *used = NULL;
    if (!rc) {
        used = vf_calloc(st->n ? st->n : 1, sizeof(bool), err);
        if (!used) rc = VF_ENOMEM;
    }
    if (!rc) {
        struct source src = {.st = st, .what = what, .used = used};
        rc = build(net, &src, err);
    }
    char safe[128];
    for (size_t i = 0; !rc && i < st->n; i++)
        if (!used[i] && !ignorable(st->tensors[i].name))
            rc = vf_error_set(err, VF_EINVAL,
                              "%s: tensor '%s' is not part of the '%s' architecture the file's "
                              "metadata describes (a file of another architecture, or a damaged "
                              "export)", what, printable(st->tensors[i].name, safe, sizeof safe),
                              net->arch.name);
    free(used);
    if (rc) {
        vf_net_free(&net);
        return rc;
    }
    *out = net;
    return VF_OK;
}

int vf_net_load(const char *path, struct vf_net **out, struct vf_error *err)
{
    struct vf_safetensors *st = NULL;
    int rc = vf_safetensors_open(path, &st, err);
    if (rc) return rc;
    rc = net_from_st(st, path, out, err);
    vf_safetensors_close(&st);
    return rc;
}

int vf_net_load_buffer(const void *buf, size_t len, const char *what, struct vf_net **out,
                       struct vf_error *err)
{
    struct vf_safetensors *st = NULL;
    int rc = vf_safetensors_parse(buf, len, false, what, &st, err);
    if (rc) return rc;
    rc = net_from_st(st, what, out, err);
    vf_safetensors_close(&st);
    return rc;
}

int vf_net_random(const struct vf_arch *arch, uint64_t seed, struct vf_net **out,
                  struct vf_error *err)
{
    struct vf_net *net = vf_calloc(1, sizeof *net, err);
    if (!net) return VF_ENOMEM;
    net->arch = *arch;
    struct source src = {.st = NULL, .rng = seed, .what = "random weights"};
    int rc = build(net, &src, err);
    if (rc) {
        vf_net_free(&net);
        return rc;
    }
    *out = net;
    return VF_OK;
}

const struct vf_arch *vf_net_arch(const struct vf_net *net) { return &net->arch; }
int64_t vf_net_params(const struct vf_net *net) { return net->params; }

/* ============================== multiply-accumulates ======================================= */

static int conv_out(int x, int k, int stride, int pad, int dil)
{
    return (x + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

static double cmacs(const struct net_conv *cv, int oh, int ow)
{
    return (double)oh * ow * cv->oc * (cv->ic / cv->groups) * cv->k * cv->k;
}

void vf_net_macs(const struct vf_net *net, int h, int w, double *f, double *a, double *c,
                 double *attn)
{
    const struct vf_arch *ar = &net->arch;
    double F = 0, A = 0, C = 0;
    int th[4], tw[4];
    int y = conv_out(h, 7, 2, 3, 1), x = conv_out(w, 7, 2, 3, 1);
    F += cmacs(&net->f_conv1, y, x);
    y = conv_out(y, 3, 2, 1, 1);
    x = conv_out(x, 3, 2, 1, 1);
    for (int l = 0; l < 4; l++) {
        for (int b = 0; b < ar->f_blocks[l]; b++) {
            const struct net_bottleneck *bk = &net->f_block[l][b];
            F += cmacs(&bk->c1, y, x);
            int y2 = conv_out(y, 3, bk->stride, 1, 1), x2 = conv_out(x, 3, bk->stride, 1, 1);
            F += cmacs(&bk->c2, y2, x2) + cmacs(&bk->c3, y2, x2);
            if (bk->ds.w) F += cmacs(&bk->ds, y2, x2);
            y = y2;
            x = x2;
        }
        th[l] = y;
        tw[l] = x;
    }
    int h4 = h / 4, w4 = w / 4;
    for (int k = 0; k < 4; k++) A += cmacs(&net->a_adapt[k].conv, th[k], tw[k]);
    for (int i = 0; i < ar->a_res_blocks; i++)
        A += cmacs(&net->a_res[i].conv1, h4, w4) + cmacs(&net->a_res[i].conv2, h4, w4);
    A += cmacs(&net->a_theta, h4, w4);
    double n = (double)h4 * w4;
    /* θᵀφ and softmax · values (ref_ab, and the cells' positions with refine) */
    double at = n * n * 4 * ar->a_adapter + n * n * (ar->a_refine_radius ? 4 : 2);
    A += at;
    if (ar->a_refine_radius) {   /* the refinement: a patch² difference per shared candidate */
        double d = 2.0 * ar->a_refine_radius + 2.0, p = (double)ar->a_refine_patch;
        A += (double)h * w * d * d * p * p;
        if (ar->a_refine_temporal) {  /* and per temporal candidate */
            double t = 2.0 * ar->a_refine_temporal + 1.0;
            A += (double)h * w * t * t * p * p;
            /* the motion-predicted ones: at most, where the motion leaves the window */
            double q = 2.0 * ar->a_refine_predict + 1.0;
            if (ar->a_refine_predict) A += (double)h * w * q * q * p * p;
        }
    }
    int ys[4], xs[4];
    ys[0] = h;
    xs[0] = w;
    for (int l = 1; l < 4; l++) {
        ys[l] = conv_out(ys[l - 1], 1, 2, 0, 1);
        xs[l] = conv_out(xs[l - 1], 1, 2, 0, 1);
    }
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < ar->c_enc_convs[l]; j++) C += cmacs(&net->c_enc[l][j], ys[l], xs[l]);
        if (l < 3) C += cmacs(&net->c_down[l], ys[l + 1], xs[l + 1]);
    }
    for (int g = 0; g < ar->c_mid_groups; g++)
        for (int j = 0; j < ar->c_mid_len[g]; j++) C += cmacs(&net->c_mid[g][j], ys[3], xs[3]);
    C += cmacs(&net->c_mu, ys[3], xs[3]);
    for (int k = 0; k < 3; k++) {
        int s = 2 - k;
        const struct net_dec *d = &net->c_dec[k];
        C += cmacs(&d->up, ys[s], xs[s]) + cmacs(&d->skip, ys[s], xs[s]);
        for (int j = 0; j < ar->c_dec_convs[k]; j++) C += cmacs(&d->convs[j], ys[s], xs[s]);
    }
    C += cmacs(&net->c_out, h, w);
    if (f) *f = F;
    if (a) *a = A;
    if (c) *c = C;
    if (attn) *attn = at;
}
