// needs: golden
/* tests/test_net.c: the network's weights file beyond the safetensors layer: the architecture in
 * the metadata, every tensor checked against it, presets, parameter and MAC counts. Each damaged
 * file is made from the reference's tiny model (golden fixture) by rewriting its header. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "node/node.h"

struct file {
    unsigned char *bytes;
    size_t len;
};

static struct file read_model(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/tiny/model.safetensors", VF_TEST_DATA);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (the golden fixture makes it)", path);
    struct file m = {0};
    fseek(f, 0, SEEK_END);
    m.len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    m.bytes = malloc(m.len);
    assert_non_null(m.bytes);
    assert_int_equal(fread(m.bytes, 1, m.len, f), m.len);
    fclose(f);
    return m;
}

static json_t *header_of(const struct file *m)
{
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)m->bytes[i] << (8 * i);
    json_error_t je;
    json_t *h = json_loadb((const char *)m->bytes + 8, (size_t)n, 0, &je);
    assert_non_null(h);
    return h;
}

/* A new file: header h (dumped), then the data of m, then `extra` bytes of value `fill`. */
static struct file rebuild(const struct file *m, json_t *h, size_t extra, unsigned char fill)
{
    uint64_t n0 = 0;
    for (int i = 0; i < 8; i++) n0 |= (uint64_t)m->bytes[i] << (8 * i);
    char *text = json_dumps(h, JSON_COMPACT);
    assert_non_null(text);
    size_t hl = strlen(text), data = m->len - 8 - (size_t)n0;
    struct file o = {.len = 8 + hl + data + extra};
    o.bytes = malloc(o.len);
    assert_non_null(o.bytes);
    for (int i = 0; i < 8; i++) o.bytes[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(o.bytes + 8, text, hl);
    memcpy(o.bytes + 8 + hl, m->bytes + 8 + n0, data);
    memset(o.bytes + 8 + hl + data, fill, extra);
    free(text);
    return o;
}

static int load(const struct file *f, struct vf_error *err)
{
    struct vf_net *net = NULL;
    int rc = vf_net_load_buffer(f->bytes, f->len, "damaged.safetensors", &net, err);
    vf_net_free(&net);
    return rc;
}

static void set_meta(json_t *h, const char *text)
{
    json_t *meta = json_object_get(h, "__metadata__");
    assert_non_null(meta);
    if (text) json_object_set_new(meta, "vaefarm", json_string(text));
    else json_object_del(meta, "vaefarm");
}

/* The model's bytes with `arch` (dumped compact) as the header's architecture metadata. */
static struct file with_arch(const struct file *m, json_t *h, const json_t *arch)
{
    char *t = json_dumps(arch, JSON_COMPACT);
    set_meta(h, t);
    free(t);
    return rebuild(m, h, 0, 0);
}

static char *meta_text(json_t *h)
{
    json_t *meta = json_object_get(h, "__metadata__");
    return strdup(json_string_value(json_object_get(meta, "vaefarm")));
}

static void expect(const struct file *f, int code, const char *needle)
{
    struct vf_error err = {0};
    int rc = load(f, &err);
    printf("  -> %s\n", err.msg);
    assert_int_equal(rc, code);
    if (!strstr(err.msg, needle)) fail_msg("message lacks \"%s\": %s", needle, err.msg);
}

/* Each of the n values in bad (their references taken), set as section.key of arch, makes the
 * file refused with a message that holds needle. */
static void expect_each(const struct file *m, json_t *h, json_t *arch, const char *section,
                        const char *key, json_t **bad, size_t n, const char *needle)
{
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(json_object_get(arch, section), key, bad[i]);
        struct file f = with_arch(m, h, arch);
        expect(&f, VF_EINVAL, needle);
        free(f.bytes);
    }
}

static void the_reference_model_loads(void **state)
{
    (void)state;
    struct file m = read_model();
    struct vf_error err = {0};
    struct vf_net *net = NULL;
    assert_int_equal(vf_net_load_buffer(m.bytes, m.len, "tiny", &net, &err), VF_OK);
    const struct vf_arch *a = vf_net_arch(net);
    assert_string_equal(a->name, "tiny");
    assert_int_equal(a->inference_h, 144);
    assert_true(a->c_residual);   /* the file says so, as the preset does */
    struct vf_arch pre;
    assert_int_equal(vf_arch_preset("tiny", &pre, &err), VF_OK);
    assert_true(pre.c_residual);
    assert_int_equal(a->up_radius, pre.up_radius);   /* bilinear upsampling, as the preset */
    assert_int_equal(a->up_radius, 0);
    printf("tiny: %.3f M parameters\n", vf_net_params(net) / 1e6);
    assert_true(vf_net_params(net) > 1000000 && vf_net_params(net) < 4000000);
    double f, ac, c, at;
    vf_net_macs(net, 144, 256, &f, &ac, &c, &at);
    printf("tiny at 144x256: F %.3f, A %.3f (attention %.3f), C %.3f GMAC\n", f / 1e9, ac / 1e9,
           at / 1e9, c / 1e9);
    /* The attention products alone: N² · (4a + 4) with N = 36·64 (values: a, b and, for the
     * refinement, the cells' positions). */
    assert_true(fabs(at - 2304.0 * 2304.0 * 68.0) < 1.0);
    vf_net_free(&net);
    free(m.bytes);
}

static void presets_match_network_md(void **state)
{
    (void)state;
    struct vf_arch a;
    struct vf_error err = {0};
    assert_int_equal(vf_arch_preset("full", &a, &err), VF_OK);
    struct vf_net *net = NULL;
    assert_int_equal(vf_net_random(&a, 1, &net, &err), VF_OK);
    double f, ac, c, at;
    vf_net_macs(net, 216, 384, &f, &ac, &c, &at);
    printf("full: %.2f M parameters; at 216x384: F %.2f, A %.2f (attention %.2f), C %.2f GMAC\n",
           vf_net_params(net) / 1e6, f / 1e9, ac / 1e9, at / 1e9, c / 1e9);
    /* ResNet-50's trunk is 4.09 GMAC at 224x224: scale by pixels. */
    assert_true(fabs(f / 1e9 - 4.09 * 216 * 384 / (224.0 * 224)) < 0.25);
    assert_true(fabs(at / 1e9 - 5184.0 * 5184 * 258 / 1e9) < 1e-6);
    vf_net_free(&net);
    assert_int_equal(vf_arch_preset("huge", &a, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "'tiny' and 'full'"));
}

static void metadata_problems_are_named(void **state)
{
    (void)state;
    struct file m = read_model();
    json_t *h = header_of(&m);
    char *orig = meta_text(h);

    set_meta(h, NULL);
    struct file f = rebuild(&m, h, 0, 0);
    expect(&f, VF_EINVAL, "not a vaefarm weights file");
    free(f.bytes);

    set_meta(h, "{not json");
    f = rebuild(&m, h, 0, 0);
    expect(&f, VF_EINVAL, "not valid JSON");
    free(f.bytes);

    json_t *arch = json_loads(orig, 0, NULL);
    json_object_set_new(arch, "format", json_string("vaefarm-net-v9"));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EUNSUPPORTED, "vaefarm-net-v9");
    free(f.bytes);

    json_object_set_new(arch, "format", json_string("vaefarm-net-v1"));
    json_array_set_new(json_object_get(json_object_get(arch, "F"), "widths"), 1,
                       json_integer(-3));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "F.widths[1]");
    free(f.bytes);
    json_decref(arch);

    arch = json_loads(orig, 0, NULL);
    json_object_set_new(json_object_get(arch, "C"), "residual", json_string("yes"));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "C.residual must be true or false");
    free(f.bytes);
    /* a gated C (train/finetune_c.py --gate): a boolean, on a residual C, with a 3-channel
     * C.out (this file's has 2: refused by the tensor's name, not misread) */
    json_object_set_new(json_object_get(arch, "C"), "residual", json_false());
    json_object_set_new(json_object_get(arch, "C"), "gate", json_string("yes"));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "C.gate must be true or false");
    free(f.bytes);
    json_object_set_new(json_object_get(arch, "C"), "gate", json_true());
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "C.gate needs C.residual");
    free(f.bytes);
    json_object_set_new(json_object_get(arch, "C"), "residual", json_true());
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "C.out.weight");
    free(f.bytes);
    /* the gate's motion factor (finetune_c.py calibrate --motions): a positive number, on a
     * gated C */
    json_t *bad_motion[] = {json_string("2"), json_real(0.0), json_real(-1.0), json_real(1e-46),
                            json_real(1e7)};
    expect_each(&m, h, arch, "C", "gate_motion", bad_motion, sizeof bad_motion / sizeof bad_motion[0],
                "C.gate_motion must be a positive number");
    json_object_set_new(json_object_get(arch, "C"), "gate_motoin", json_real(2.0));   /* a typo */
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "unknown key \"C.gate_motoin\"");
    free(f.bytes);
    json_object_del(json_object_get(arch, "C"), "gate_motoin");
    /* its window per pixel (C.gate_motion_radius): an integer in [0, 16], with C.gate_motion */
    json_t *bad_radius[] = {json_string("2"), json_integer(-1), json_integer(17), json_real(2.5)};
    json_object_set_new(json_object_get(arch, "C"), "gate_motion", json_real(2.0));
    expect_each(&m, h, arch, "C", "gate_motion_radius", bad_radius, sizeof bad_radius / sizeof bad_radius[0],
                "C.gate_motion_radius must be an integer in [0, 16]");
    json_object_set_new(json_object_get(arch, "C"), "gate_motion_radius", json_integer(3));
    json_object_del(json_object_get(arch, "C"), "gate_motion");
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "C.gate_motion_radius needs C.gate_motion");
    free(f.bytes);
    json_object_del(json_object_get(arch, "C"), "gate_motion_radius");
    json_object_set_new(json_object_get(arch, "C"), "gate_motion", json_real(2.0));
    json_object_set_new(json_object_get(arch, "C"), "gate", json_false());
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "C.gate_motion needs C.gate");
    free(f.bytes);
    json_object_del(json_object_get(arch, "C"), "gate_motion");
    /* the gate's ramp after a pass-through (C.gate_ramp): an integer in [1, 1000], on a gated C */
    json_t *bad_ramp[] = {json_string("8"), json_integer(0), json_integer(-2), json_integer(1001),
                          json_real(8.0), json_true()};
    expect_each(&m, h, arch, "C", "gate_ramp", bad_ramp, sizeof bad_ramp / sizeof bad_ramp[0],
                "C.gate_ramp must be an integer in [1, 1000] (frames)");
    json_object_set_new(json_object_get(arch, "C"), "gate_ramp", json_integer(8));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "C.gate_ramp needs C.gate");
    free(f.bytes);
    json_object_del(json_object_get(arch, "C"), "gate_ramp");
    json_object_del(json_object_get(arch, "C"), "gate");
    /* absent: C predicts ab directly (files written before the key existed) */
    json_object_del(json_object_get(arch, "C"), "residual");
    f = with_arch(&m, h, arch);
    struct vf_error e2 = {0};
    struct vf_net *direct = NULL;
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "direct", &direct, &e2), VF_OK);
    assert_false(vf_net_arch(direct)->c_residual);
    vf_net_free(&direct);
    free(f.bytes);
    json_decref(arch);

    /* propagate (post-processing 1b): an object of radius, patch, shares and confidence, each
     * in range, and optionally subpixel, a boolean; valid, it is read (absent: none) */
    arch = json_loads(orig, 0, NULL);
    const char *bad_prop[] = {
        "[6, 5]", "{\"radius\": 6, \"patch\": 5, \"shares\": [1]}",
        "{\"radius\": 6, \"patch\": 5, \"shares\": [], \"confidence\": 0}",
        "{\"radius\": 6, \"patch\": 5, \"shares\": [1.5], \"confidence\": 0}",
        "{\"radius\": 6, \"patch\": 5, \"shares\": [1], \"confidence\": -1}",
        "{\"radius\": 6, \"patch\": 5, \"shares\": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1], "
        "\"confidence\": 0}",
        "{\"radius\": 17, \"patch\": 5, \"shares\": [1], \"confidence\": 0}",
        "{\"radius\": 6, \"patch\": 4, \"shares\": [1], \"confidence\": 0}",
        "{\"radius\": 6, \"patch\": 5, \"shares\": [1], \"confidence\": 0, \"subpixel\": 1}",
        "{\"radius\": 6, \"patch\": 5, \"shares\": [1], \"confidence\": 0, \"other\": true}"};
    const char *bad_prop_msg[] = {"propagate must be an object", "propagate must be an object",
                                  "propagate must be an object", "propagate must be an object",
                                  "propagate must be an object", "propagate must be an object",
                                  "propagate.radius", "propagate.patch 4 must be odd",
                                  "optionally \"subpixel\": true or false",
                                  "propagate must be an object"};
    for (size_t i = 0; i < sizeof bad_prop / sizeof bad_prop[0]; i++) {
        json_object_set_new(arch, "propagate", json_loads(bad_prop[i], 0, NULL));
        f = with_arch(&m, h, arch);
        expect(&f, VF_EINVAL, bad_prop_msg[i]);
        free(f.bytes);
    }
    json_object_set_new(arch, "propagate", json_loads("{\"radius\": 6, \"patch\": 5, \"shares\": "
                                                      "[1, 0.5], \"confidence\": 12}", 0, NULL));
    f = with_arch(&m, h, arch);
    struct vf_net *prop = NULL;
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "propagate", &prop, &e2), VF_OK);
    const struct vf_arch *pa = vf_net_arch(prop);
    assert_true(pa->prop_frames == 2 && pa->prop_radius == 6 && pa->prop_patch == 5 &&
                pa->prop_shares[1] == 0.5f && pa->prop_confidence == 12.0f && !pa->prop_subpixel);
    vf_net_free(&prop);
    free(f.bytes);
    json_object_set_new(arch, "propagate", json_loads("{\"radius\": 6, \"patch\": 5, \"shares\": "
                                                      "[1], \"confidence\": 12, \"subpixel\": "
                                                      "true}", 0, NULL));
    f = with_arch(&m, h, arch);
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "propagate", &prop, &e2), VF_OK);
    assert_true(vf_net_arch(prop)->prop_subpixel && vf_net_arch(prop)->prop_frames == 1);
    vf_net_free(&prop);
    free(f.bytes);
    json_decref(arch);

    /* A.refine.subpixel (the sub-pixel temporal candidate): a boolean, only with the temporal
     * candidates */
    arch = json_loads(orig, 0, NULL);
    json_t *refine = json_object_get(json_object_get(arch, "A"), "refine");
    assert_non_null(json_object_get(refine, "temporal"));
    json_object_set_new(refine, "subpixel", json_real(0.2));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "\"subpixel\": true or false");
    free(f.bytes);
    json_object_set_new(refine, "subpixel", json_true());
    f = with_arch(&m, h, arch);
    struct vf_net *sp = NULL;
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "subpixel", &sp, &e2), VF_OK);
    assert_true(vf_net_arch(sp)->a_refine_subpixel);
    vf_net_free(&sp);
    free(f.bytes);
    json_object_set_new(refine, "temporal", json_integer(0));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "A.refine.subpixel needs A.refine.temporal > 0");
    free(f.bytes);
    json_object_set_new(refine, "subpixel", json_false());
    f = with_arch(&m, h, arch);
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "no subpixel", &sp, &e2), VF_OK);
    assert_false(vf_net_arch(sp)->a_refine_subpixel);
    vf_net_free(&sp);
    free(f.bytes);
    json_decref(arch);

    /* A.refine.predict (the motion-predicted temporal candidates): an integer in [0, 3], above
     * 0 only with the temporal candidates; absent: 0 */
    arch = json_loads(orig, 0, NULL);
    refine = json_object_get(json_object_get(arch, "A"), "refine");
    f = with_arch(&m, h, arch);
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "no predict", &sp, &e2), VF_OK);
    assert_int_equal(vf_net_arch(sp)->a_refine_predict, 0);
    vf_net_free(&sp);
    free(f.bytes);
    json_object_set_new(refine, "predict", json_integer(2));
    f = with_arch(&m, h, arch);
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "predict", &sp, &e2), VF_OK);
    assert_int_equal(vf_net_arch(sp)->a_refine_predict, 2);
    vf_net_free(&sp);
    free(f.bytes);
    json_object_set_new(refine, "predict", json_integer(VF_REFINE_MAX_PREDICT + 1));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "A.refine.predict = 4 is out of range [0, 3]");
    free(f.bytes);
    json_object_set_new(refine, "predict", json_real(1.5));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "A.refine.predict must be an integer");
    free(f.bytes);
    json_object_set_new(refine, "predict", json_integer(1));
    json_object_set_new(refine, "subpixel", json_false());
    json_object_set_new(refine, "temporal", json_integer(0));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "A.refine.predict 1 is out of range: [0, 3], and above 0 it needs "
           "A.refine.temporal > 0");
    free(f.bytes);
    json_decref(arch);

    /* upsample (post step 1): the file's radius and ε are used; absent, the guided filter of
     * the files written before the key (radius 2, ε 1e-3); out of range or malformed: refused */
    arch = json_loads(orig, 0, NULL);
    json_object_set_new(arch, "upsample", json_pack("{s:i, s:f}", "radius", 3, "eps", 0.01));
    f = with_arch(&m, h, arch);
    struct vf_net *up = NULL;
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "up", &up, &e2), VF_OK);
    assert_int_equal(vf_net_arch(up)->up_radius, 3);
    assert_true(vf_net_arch(up)->up_eps == 0.01f);
    vf_net_free(&up);
    free(f.bytes);
    json_object_del(arch, "upsample");
    f = with_arch(&m, h, arch);
    assert_int_equal(vf_net_load_buffer(f.bytes, f.len, "no upsample", &up, &e2), VF_OK);
    assert_int_equal(vf_net_arch(up)->up_radius, 2);
    assert_true(vf_net_arch(up)->up_eps == 1e-3f);
    vf_net_free(&up);
    free(f.bytes);
    json_object_set_new(arch, "upsample", json_pack("{s:i, s:f}", "radius", 9, "eps", 0.01));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "upsample.radius = 9 is out of range [0, 8]");
    free(f.bytes);
    json_object_set_new(arch, "upsample", json_pack("{s:i, s:f}", "radius", 0, "eps", 0.0));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "upsample.eps = 0 is out of range (0, 1)");
    free(f.bytes);
    json_object_set_new(arch, "upsample", json_pack("{s:i}", "radius", 0));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "upsample must be an object");
    free(f.bytes);
    json_object_set_new(arch, "upsample", json_pack("{s:i, s:f, s:i}", "radius", 0, "eps", 1e-3,
                                                    "extra", 1));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "upsample must be an object");
    free(f.bytes);
    json_object_set_new(arch, "upsample", json_pack("{s:f, s:f}", "radius", 1.5, "eps", 1e-3));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "upsample.radius must be an integer");
    free(f.bytes);
    json_object_del(arch, "upsample");
    json_object_set_new(arch, "upsampel", json_pack("{s:i, s:f}", "radius", 0, "eps", 1e-3));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "unknown key \"upsampel\"");
    free(f.bytes);
    json_decref(arch);

    /* The architecture of `full` over the tensors of `tiny`. */
    arch = json_loads(orig, 0, NULL);
    json_object_set_new(json_object_get(arch, "F"), "stem", json_integer(64));
    json_t *fw = json_object_get(json_object_get(arch, "F"), "widths");
    for (int i = 0; i < 4; i++) json_array_set_new(fw, (size_t)i, json_integer(64 << i));
    f = with_arch(&m, h, arch);
    expect(&f, VF_EINVAL, "'F.conv1.weight' has shape [16, 3, 7, 7]");
    free(f.bytes);
    json_decref(arch);

    free(orig);
    json_decref(h);
    free(m.bytes);
}

static void tensor_problems_are_named(void **state)
{
    (void)state;
    struct file m = read_model();

    /* A tensor renamed: the architecture misses it. */
    json_t *h = header_of(&m);
    json_t *e = json_deep_copy(json_object_get(h, "A.theta.bias"));
    json_object_del(h, "A.theta.bias");
    json_object_set_new(h, "A.theta.b", e);
    struct file f = rebuild(&m, h, 0, 0);
    expect(&f, VF_EINVAL, "tensor 'A.theta.bias' is missing");
    free(f.bytes);
    json_decref(h);

    /* One more tensor than the architecture has. */
    h = header_of(&m);
    uint64_t n0 = 0;
    for (int i = 0; i < 8; i++) n0 |= (uint64_t)m.bytes[i] << (8 * i);
    json_int_t end = (json_int_t)(m.len - 8 - n0);
    json_object_set_new(h, "C.extra.weight",
                        json_pack("{s:s, s:[i], s:[I,I]}", "dtype", "F32", "shape", 1,
                                  "data_offsets", end, end + 4));
    f = rebuild(&m, h, 4, 0);
    expect(&f, VF_EINVAL, "'C.extra.weight' is not part of the 'tiny' architecture");
    free(f.bytes);
    /* ... but C.logvar (training only) and BN's num_batches_tracked are fine. */
    json_object_del(h, "C.extra.weight");
    json_object_set_new(h, "F.bn1.num_batches_tracked",
                        json_pack("{s:s, s:[], s:[I,I]}", "dtype", "I64", "shape", "data_offsets", end,
                                  end + 8));
    f = rebuild(&m, h, 8, 0);
    struct vf_error err = {0};
    assert_int_equal(load(&f, &err), VF_OK);
    free(f.bytes);
    json_decref(h);

    /* A NaN in a weight. */
    h = header_of(&m);
    json_t *off = json_object_get(json_object_get(h, "C.out.weight"), "data_offsets");
    size_t at = 8 + (size_t)n0 + (size_t)json_integer_value(json_array_get(off, 0));
    struct file g = {.len = m.len};
    g.bytes = malloc(m.len);
    memcpy(g.bytes, m.bytes, m.len);
    const unsigned char nan_le[4] = {0x00, 0x00, 0xc0, 0x7f};
    memcpy(g.bytes + at, nan_le, 4);
    expect(&g, VF_EINVAL, "'C.out.weight' holds a non-finite value");
    free(g.bytes);
    json_decref(h);
    free(m.bytes);
}

/* tiny's preset (into *a) with random weights at seed 3, and a CPU backend. */
static void tiny_random_on_cpu(struct vf_arch *a, struct vf_net **net, struct vf_backend **be)
{
    struct vf_error err = {0};
    struct vf_backend_opts bo = {.device = VF_DEVICE_CPU};
    assert_int_equal(vf_arch_preset("tiny", a, &err), VF_OK);
    assert_int_equal(vf_net_random(a, 3, net, &err), VF_OK);
    assert_int_equal(vf_backend_create(be, &bo, &err), VF_OK);
}

static void colorizer_refuses_bad_sizes(void **state)
{
    (void)state;
    struct vf_arch a;
    struct vf_error err = {0};
    struct vf_net *net = NULL;
    struct vf_backend *be = NULL;
    tiny_random_on_cpu(&a, &net, &be);
    struct vf_colorizer *cz = NULL;
    struct vf_colorizer_opts o = {.be = be, .precision = VF_F32, .h = 100, .w = 256};
    assert_int_equal(vf_colorizer_create(&cz, net, &o, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "multiples of 8"));
    o.h = 16;
    assert_int_equal(vf_colorizer_create(&cz, net, &o, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "between 32 and 8192"));
    o.h = 64;
    o.w = 64;
    o.full_h = 128;     /* one side only */
    assert_int_equal(vf_colorizer_create(&cz, net, &o, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "give both sides"));
    o.full_w = 128;
    assert_int_equal(vf_colorizer_create(&cz, net, &o, &err), VF_OK);
    static float grey[128 * 128], ab[2 * 128 * 128], ref[3 * 64 * 64];
    assert_int_equal(vf_colorizer_frame(cz, grey, ab, NULL, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "before any reference"));
    assert_int_equal(vf_colorizer_set_reference(cz, ref, NULL, &err), VF_OK);
    assert_int_equal(vf_colorizer_post(cz, grey, NULL, ab, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "before any frame"));
    assert_int_equal(vf_colorizer_frame(cz, grey, ab, NULL, &err), VF_OK);
    assert_int_equal(vf_colorizer_post(cz, grey, NULL, ab, &err), VF_OK);
    vf_colorizer_destroy(&cz);
    /* Creation failing halfway frees what it made (ASan checks): a dilation of 16 in C's
     * bottleneck cannot reflect-pad a 64x64 input's 8x8 level. */
    a.c_mid_dil[0][0] = 16;
    struct vf_net *bad = NULL;
    assert_int_equal(vf_net_random(&a, 3, &bad, &err), VF_OK);
    o.full_h = o.full_w = 0;
    assert_true(vf_colorizer_create(&cz, bad, &o, &err) < 0);
    assert_null(cz);
    printf("  -> %s\n", err.msg);
    vf_net_free(&bad);
    /* An architecture out of range is refused before anything is built. */
    a.c_mid_dil[0][0] = 2;
    a.c_mid_groups = 9;
    assert_int_equal(vf_net_random(&a, 3, &bad, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "len(C.mid)"));
    vf_colorizer_destroy(&cz);
    vf_backend_destroy(&be);
    vf_net_free(&net);
}

/* Reference pass-through's test (node.h): a frame is the reference's own picture when at most
 * 0.5% of its pixels differ from the reference's luma (film Kr, Kb) by more than 4/255. */
static void passthrough_decides_by_the_reference_luma(void **state)
{
    (void)state;
    enum { S = 64, P = S * S };
    struct vf_arch a;
    struct vf_error err = {0};
    struct vf_net *net = NULL;
    struct vf_backend *be = NULL;
    tiny_random_on_cpu(&a, &net, &be);
    static float ref[3 * P], luma[P], grey[P], ab[2 * P];
    const float kr = 0.299f, kb = 0.114f;     /* BT.601: not the default, so it must be used */
    for (int i = 0; i < P; i++) {
        ref[i] = 0.2f + 0.6f * (float)(i % S) / S;
        ref[P + i] = 0.3f + 0.4f * (float)(i / S) / S;
        ref[2 * P + i] = 0.5f + 0.3f * sinf(0.1f * (float)i);
        luma[i] = kr * ref[i] + (1 - kr - kb) * ref[P + i] + kb * ref[2 * P + i];
    }
    for (int on = 0; on < 2; on++) {
        struct vf_colorizer *cz = NULL;
        struct vf_colorizer_opts o = {.be = be, .precision = VF_F32, .h = S, .w = S, .kr = kr,
                                      .kb = kb, .passthrough = on};
        assert_int_equal(vf_colorizer_create(&cz, net, &o, &err), VF_OK);
        assert_int_equal(vf_colorizer_set_reference(cz, ref, NULL, &err), VF_OK);
        struct { const char *what; float shift; int n_off; bool is_ref; } cases[] = {
            {"the reference's luma", 0, 0, true},
            {"every pixel 3.9/255 brighter", 3.9f / 255, 0, true},
            {"every pixel 4.1/255 brighter", 4.1f / 255, 0, false},
            {"20 of 4096 pixels (0.49%) off by 0.2", 0, 20, true},
            {"21 of 4096 pixels (0.51%) off by 0.2", 0, 21, false},
            {"the reference's luma again", 0, 0, true},
        };
        long before = 0;
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            for (int i = 0; i < P; i++) grey[i] = luma[i] + cases[k].shift;
            for (int j = 0; j < cases[k].n_off; j++) grey[(j * 97) % P] += 0.2f;
            assert_int_equal(vf_colorizer_frame(cz, grey, ab, NULL, &err), VF_OK);
            long now = vf_colorizer_times(cz)->passthrough;
            printf("  pass-through %s: %s -> %s\n", on ? "on" : "off", cases[k].what,
                   now > before ? "the reference's colours" : "the network");
            assert_int_equal(now - before, on && cases[k].is_ref);
            before = now;
        }
        vf_colorizer_destroy(&cz);
    }
    vf_backend_destroy(&be);
    vf_net_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_reference_model_loads),
        cmocka_unit_test(presets_match_network_md),
        cmocka_unit_test(metadata_problems_are_named),
        cmocka_unit_test(tensor_problems_are_named),
        cmocka_unit_test(colorizer_refuses_bad_sizes),
        cmocka_unit_test(passthrough_decides_by_the_reference_luma),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
