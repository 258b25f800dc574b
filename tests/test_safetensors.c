/*
 * tests/test_safetensors.c: the safetensors reader (node/node.h, docs/WEIGHTS.md).
 *
 * A small writer builds valid files in memory; the valid cases read them back (metadata, find,
 * every float dtype converted with known values, scalars, zero-size tensors, unaligned data).
 * Then a table of hostile files, each asserting the exact code and words of the message; every
 * truncation of a valid file; a fixed-seed mutation fuzz loop; and open() on real paths (missing,
 * folder, FIFO). Every parse gets a buffer of exactly its length, so that ASan sees any read
 * past the end. Run it under VF_SANITIZE=ON too: every error path must free what it built.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/node.h"

/* ---- a writer ----------------------------------------------------------------------------- */

struct wt {
    const char *name, *dtype;
    int ndim;
    int64_t shape[VF_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
};

/* The file: 8-byte little-endian length, the header, the data. The caller frees. */
static unsigned char *raw_n(const char *header, size_t hlen, const void *data, size_t data_len,
                            size_t *len)
{
    *len = 8 + hlen + data_len;
    unsigned char *f = malloc(*len ? *len : 1);
    assert_non_null(f);
    uint64_t n = hlen;
    for (int i = 0; i < 8; i++)
        f[i] = (unsigned char)(n >> (8 * i));
    memcpy(f + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++)
        f[8 + hlen + i] = data ? ((const unsigned char *)data)[i] : (unsigned char)(i * 37 + 1);
    return f;
}

static unsigned char *raw(const char *header, size_t data_len, size_t *len)
{
    return raw_n(header, strlen(header), NULL, data_len, len);
}

/* A valid file from a list of tensors, laid out in list order; metadata pairs (key, value,
 * ..., NULL) may be NULL. The header is padded with spaces to `pad` bytes (the Python writer
 * pads to 8) or not at all (pad = 1). */
static unsigned char *st_write(const struct wt *t, size_t n, const char *const *meta, size_t pad,
                               size_t *len)
{
    json_t *root = json_object();
    assert_non_null(root);
    if (meta) {
        json_t *m = json_object();
        for (size_t i = 0; meta[i]; i += 2)
            assert_int_equal(json_object_set_new(m, meta[i], json_string(meta[i + 1])), 0);
        assert_int_equal(json_object_set_new(root, "__metadata__", m), 0);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++)
            json_array_append_new(shape, json_integer(t[i].shape[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", t[i].dtype, "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + t[i].nbytes));
        assert_non_null(e);
        assert_int_equal(json_object_set_new(root, t[i].name, e), 0);
        off += t[i].nbytes;
    }
    char *h = json_dumps(root, JSON_COMPACT);
    assert_non_null(h);
    json_decref(root);
    size_t hlen = strlen(h), padded = (hlen + pad - 1) / pad * pad;
    char *hp = malloc(padded + 1);
    assert_non_null(hp);
    memcpy(hp, h, hlen);
    memset(hp + hlen, ' ', padded - hlen);
    free(h);
    unsigned char *data = malloc(off ? off : 1);
    assert_non_null(data);
    for (size_t i = 0, o = 0; i < n; o += t[i].nbytes, i++)
        if (t[i].nbytes)
            memcpy(data + o, t[i].data, t[i].nbytes);
    unsigned char *f = raw_n(hp, padded, data, off, len);
    free(hp);
    free(data);
    return f;
}

/* ---- parsing helpers ---------------------------------------------------------------------- */

/* No control bytes in a message: strings from the file are escaped. */
static void assert_clean_message(const char *msg)
{
    assert_true(msg[0] != '\0');
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            fail_msg("control byte 0x%02x in message: %s", *p, msg);
}

/* Parse a copy of exactly len bytes (so ASan catches reads past the end), borrowing or
 * copying; on failure check the error's shape. */
static int parse(const void *file, size_t len, bool copy, struct vf_safetensors **st,
                 struct vf_error *err)
{
    void *exact = malloc(len ? len : 1);
    assert_non_null(exact);
    if (len)
        memcpy(exact, file, len);
    vf_error_clear(err);
    *st = (struct vf_safetensors *)(uintptr_t)1; /* must be reset to NULL on failure */
    int rc = vf_safetensors_parse(len ? exact : NULL, len, copy, "w.safetensors", st, err);
    if (rc == 0) {
        assert_non_null(*st);
        if (!copy) /* keep the borrowed bytes alive with the result: hand them over */
            (*st)->buf_ = exact, exact = NULL;
    } else {
        assert_true(rc < 0);
        assert_int_equal(err->code, rc);
        assert_null(*st);
        assert_clean_message(err->msg);
        assert_memory_equal(err->msg, "w.safetensors: ", 15);
    }
    free(exact);
    return rc;
}

static struct vf_safetensors *parse_ok(const void *file, size_t len, bool copy)
{
    struct vf_safetensors *st;
    struct vf_error err;
    int rc = parse(file, len, copy, &st, &err);
    if (rc != 0)
        fail_msg("expected a valid file, got %d: %s", rc, err.msg);
    return st;
}

static void expect_fail(const void *file, size_t len, int code, const char *words,
                        const char *label)
{
    for (int copy = 0; copy < 2; copy++) {
        struct vf_safetensors *st;
        struct vf_error err;
        int rc = parse(file, len, copy, &st, &err);
        if (rc != code || !strstr(err.msg, words))
            fail_msg("%s: expected %d with \"%s\", got %d: %s", label, code, words, rc,
                     rc ? err.msg : "(parsed)");
        if (copy == 0)
            print_message("  %-40s -> %d %s\n", label, rc, err.msg);
    }
}

/* ---- valid files -------------------------------------------------------------------------- */

static void st_reads_metadata_tensors_and_every_float_dtype(void **state)
{
    (void)state;
    const float f32[6] = {1.0f, -2.5f, 0.0f, 3.0e38f, 1.0e-45f, -0.0f};
    const uint16_t bf16[4] = {0x3F80, 0xC000, 0x7F80, 0x0000};          /* 1, -2, inf, 0 */
    const uint16_t f16[12] = {0x3C00, 0x0001, 0x7C00, 0xFC00, 0x7E00, 0x8000,
                              0x3555, 0x7BFF, 0x0400, 0x03FF, 0xC000, 0x3800};
    const double f64[4] = {1.5, -0.25, 1e300, 1e-300};
    const float scalar = 42.0f;
    const int32_t i32[2] = {7, -7};
    const struct wt t[] = {
        {"C.out.weight", "F32", 2, {2, 3}, f32, sizeof f32},
        {"b", "BF16", 1, {4}, bf16, sizeof bf16},
        {"h", "F16", 3, {2, 2, 3}, f16, sizeof f16},
        {"d", "F64", 1, {4}, f64, sizeof f64},
        {"s", "F32", 0, {0}, &scalar, sizeof scalar},
        {"zero", "F32", 2, {3, 0}, NULL, 0},
        {"i", "I32", 1, {2}, i32, sizeof i32},
        {"caf\xc3\xa9", "U8", 1, {1}, "x", 1},
    };
    const char *meta[] = {"vaefarm", "{\"format\": \"vaefarm-net-v1\", \"name\": \"tiny\"}",
                          "other", "", NULL};
    for (int copy = 0; copy < 2; copy++)
        for (size_t pad = 1; pad <= 8; pad += 7) {
            size_t len;
            unsigned char *file = st_write(t, sizeof t / sizeof t[0], meta, pad, &len);
            struct vf_safetensors *st = parse_ok(file, len, copy);
            free(file); /* with copy = true nothing points into it any more */

            assert_int_equal(st->n, 8);
            assert_int_equal(st->n_meta, 2);
            assert_string_equal(vf_safetensors_meta(st, "vaefarm"),
                                "{\"format\": \"vaefarm-net-v1\", \"name\": \"tiny\"}");
            assert_string_equal(vf_safetensors_meta(st, "other"), "");
            assert_null(vf_safetensors_meta(st, "missing"));
            assert_null(vf_safetensors_find(st, "missing"));
            assert_null(vf_safetensors_find(st, "__metadata__"));

            float out[12];
            struct vf_error err = {0};
            const struct vf_st_tensor *x = vf_safetensors_find(st, "C.out.weight");
            assert_non_null(x);
            assert_int_equal(x->dtype, VF_ST_F32);
            assert_int_equal(x->ndim, 2);
            assert_int_equal(x->shape[0], 2);
            assert_int_equal(x->shape[1], 3);
            assert_int_equal(x->count, 6);
            assert_int_equal(x->nbytes, 24);
            assert_int_equal(vf_st_to_f32(x, out, &err), 0);
            assert_memory_equal(out, f32, sizeof f32); /* bit-exact, -0 and the subnormal too */

            x = vf_safetensors_find(st, "b");
            assert_int_equal(vf_st_to_f32(x, out, &err), 0);
            assert_true(out[0] == 1.0f && out[1] == -2.0f && isinf(out[2]) && out[2] > 0 &&
                        out[3] == 0.0f);

            x = vf_safetensors_find(st, "h");
            assert_int_equal(x->count, 12);
            assert_int_equal(vf_st_to_f32(x, out, &err), 0);
            assert_true(out[0] == 1.0f);
            assert_true(out[1] == ldexpf(1.0f, -24)); /* smallest subnormal */
            assert_true(isinf(out[2]) && out[2] > 0);
            assert_true(isinf(out[3]) && out[3] < 0);
            assert_true(isnan(out[4]));
            assert_true(out[5] == 0.0f && signbit(out[5]));
            assert_true(out[6] == 0.333251953125f);
            assert_true(out[7] == 65504.0f);
            assert_true(out[8] == ldexpf(1.0f, -14));          /* smallest normal */
            assert_true(out[9] == 1023.0f * ldexpf(1.0f, -24)); /* largest subnormal */
            assert_true(out[10] == -2.0f && out[11] == 0.5f);

            x = vf_safetensors_find(st, "d");
            assert_int_equal(vf_st_to_f32(x, out, &err), 0);
            assert_true(out[0] == 1.5f && out[1] == -0.25f && isinf(out[2]) && out[3] == 0.0f);

            x = vf_safetensors_find(st, "s");
            assert_int_equal(x->ndim, 0);
            assert_int_equal(x->count, 1);
            assert_int_equal(x->nbytes, 4);
            assert_int_equal(vf_st_to_f32(x, out, &err), 0);
            assert_true(out[0] == 42.0f);

            x = vf_safetensors_find(st, "zero");
            assert_int_equal(x->ndim, 2);
            assert_int_equal(x->count, 0);
            assert_int_equal(x->nbytes, 0);
            assert_int_equal(vf_st_to_f32(x, NULL, &err), 0);

            x = vf_safetensors_find(st, "i");
            assert_int_equal(x->dtype, VF_ST_I32);
            assert_int_equal(vf_st_to_f32(x, out, &err), VF_EUNSUPPORTED);
            assert_non_null(strstr(err.msg, "tensor 'i': dtype I32 cannot be converted"));
            int32_t iv[2];
            memcpy(iv, x->data, sizeof iv);
            assert_int_equal(iv[0], 7);
            assert_int_equal(iv[1], -7);

            x = vf_safetensors_find(st, "caf\xc3\xa9");
            assert_non_null(x);
            assert_int_equal(x->dtype, VF_ST_U8);
            assert_memory_equal(x->data, "x", 1);

            /* In order of data offset, contiguous. */
            for (size_t i = 1; i < st->n; i++)
                assert_ptr_equal((const unsigned char *)st->tensors[i - 1].data +
                                     st->tensors[i - 1].nbytes,
                                 st->tensors[i].data);
            vf_safetensors_close(&st);
            assert_null(st);
            vf_safetensors_close(&st); /* twice is harmless */
        }
}

static void st_orders_by_offset_and_reads_unaligned_data(void **state)
{
    (void)state;
    /* Header order is not data order; the odd header length puts the data at an odd address;
     * zero-size tensors sit at the start, in the middle and at the end. */
    const char *h = "{\"z_end\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[10,10]},"
                    "\"second\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[8,10]},"
                    "\"z_mid\":{\"dtype\":\"F64\",\"shape\":[2,0,5],\"data_offsets\":[8,8]},"
                    "\"first\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                    "\"z_start\":{\"shape\":[0],\"data_offsets\":[0,0],\"dtype\":\"BOOL\"}} ";
    unsigned char data[10];
    const double one = -1.0;
    memcpy(data, &one, 8); /* the host is little-endian, as the format */
    data[8] = 0x80;
    data[9] = 0x3F; /* bf16 1.0 */
    size_t hl = strlen(h);
    if (hl % 2 == 0)
        hl--; /* drop one trailing space: an odd header length */
    size_t len;
    unsigned char *file = raw_n(h, hl, data, sizeof data, &len);
    struct vf_safetensors *st = parse_ok(file, len, false);
    assert_int_equal(st->n, 5);
    const char *order[] = {"z_start", "first", "z_mid", "second", "z_end"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(st->tensors[i].name, order[i]);
    assert_true(((uintptr_t)st->tensors[1].data & 1) == 1);
    float out[1];
    struct vf_error err;
    assert_int_equal(vf_st_to_f32(vf_safetensors_find(st, "first"), out, &err), 0);
    assert_true(out[0] == -1.0f);
    assert_int_equal(vf_st_to_f32(vf_safetensors_find(st, "second"), out, &err), 0);
    assert_true(out[0] == 1.0f);
    assert_int_equal(st->n_meta, 0);
    assert_null(vf_safetensors_meta(st, "vaefarm"));
    vf_safetensors_close(&st);
    free(file);

    /* An empty file in the format: "{}" and no data. */
    file = raw("{}", 0, &len);
    st = parse_ok(file, len, true);
    assert_int_equal(st->n, 0);
    vf_safetensors_close(&st);
    free(file);
    file = raw("{\"__metadata__\":{}}        ", 0, &len);
    st = parse_ok(file, len, false);
    assert_int_equal(st->n, 0);
    assert_int_equal(st->n_meta, 0);
    vf_safetensors_close(&st);
    free(file);

    /* what = NULL still names something. */
    file = raw("{", 0, &len);
    struct vf_safetensors *bad = NULL;
    assert_int_equal(vf_safetensors_parse(file, len, false, NULL, &bad, &err), VF_EINVAL);
    assert_null(bad);
    assert_memory_equal(err.msg, "safetensors: ", 13);
    assert_int_equal(vf_safetensors_parse(file, len, true, NULL, &bad, NULL), VF_EINVAL);
    free(file);

    /* A tensor made by hand, inconsistent: an error, not an over-read. */
    float out4[4];
    struct vf_st_tensor bogus = {.name = "bogus", .dtype = VF_ST_F32, .count = 4, .nbytes = 8,
                                 .data = data};
    assert_int_equal(vf_st_to_f32(&bogus, out4, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "tensor 'bogus': 8 bytes do not hold 4 values of F32"));
    bogus.dtype = (enum vf_st_dtype)42;
    assert_int_equal(vf_st_to_f32(&bogus, out4, &err), VF_EINVAL);

    for (int d = VF_ST_F32; d <= VF_ST_BOOL; d++)
        assert_string_not_equal(vf_st_dtype_name((enum vf_st_dtype)d), "unknown");
    assert_string_equal(vf_st_dtype_name(VF_ST_BF16), "BF16");
    assert_string_equal(vf_st_dtype_name((enum vf_st_dtype)99), "unknown");
}

/* ---- hostile files ------------------------------------------------------------------------ */

#define A8 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define E(name, shape, offs)                                                                   \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const struct {
    const char *label, *header;
    size_t data_len;
    int code;
    const char *words;
} hostile[] = {
    {"header not JSON", "hello, world", 0, VF_EINVAL, "12-byte header is not valid JSON"},
    {"header empty", "", 0, VF_EINVAL, "is not valid JSON"},
    {"JSON not an object", "[1, 2]", 0, VF_EINVAL, "the header is [1, 2], expected a JSON object"},
    {"JSON a string", "\"abc\"", 0, VF_EINVAL, "is not valid JSON"},
    {"leading whitespace", " {" A8 "}", 8, VF_EINVAL,
     "the header starts with byte 0x20, not '{' as the safetensors format requires"},
    {"leading newline", "\n{}", 0, VF_EINVAL, "starts with byte 0x0a, not '{'"},
    {"truncated JSON", "{" A8 ",\"b\":{\"dtype\":\"F3", 8, VF_EINVAL, "is not valid JSON"},
    {"trailing garbage", "{" A8 "}x", 8, VF_EINVAL, "is not valid JSON"},
    {"invalid UTF-8 in a name", "{\"a\xff\":{}}", 0, VF_EINVAL, "is not valid JSON"},
    {"overlong UTF-8", "{\"\xc0\xaf\":{}}", 0, VF_EINVAL, "is not valid JSON"},
    {"UTF-16 surrogate", "{\"\xed\xa0\x80\":{}}", 0, VF_EINVAL, "is not valid JSON"},
    {"escaped NUL in a name", "{\"a\\u0000b\":{}}", 0, VF_EINVAL, "is not valid JSON"},
    {"duplicate keys", "{" A8 "," A8 "}", 8, VF_EINVAL, "duplicate"},
    {"duplicate keys, escaped", "{" A8 ",\"\\u0061\":{}}", 8, VF_EINVAL, "duplicate"},
    {"duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, VF_EINVAL,
     "duplicate"},
    {"integer too big for JSON", "{" E("a", "[99999999999999999999]", "[0,8]") "}", 8, VF_EINVAL,
     "is not valid JSON"},
    {"__metadata__ an array", "{\"__metadata__\":[1]," A8 "}", 8, VF_EINVAL,
     "\"__metadata__\" is [1], expected an object of string -> string"},
    {"__metadata__ a string", "{\"__metadata__\":\"x\"}", 0, VF_EINVAL,
     "\"__metadata__\" is \"x\", expected an object"},
    {"__metadata__ value a number", "{\"__metadata__\":{\"k\":\"v\",\"n\":1}," A8 "}", 8,
     VF_EINVAL, "\"__metadata__\" key 'n' is 1, expected a string"},
    {"__metadata__ value an object", "{\"__metadata__\":{\"vaefarm\":{\"format\":1}}}", 0,
     VF_EINVAL, "key 'vaefarm' is an object with 1 key, expected a string"},
    {"entry not an object", "{\"a\":5}", 0, VF_EINVAL, "tensor 'a': expected an object"},
    {"entry an array", "{\"a\":[0,8]}", 8, VF_EINVAL, "tensor 'a': expected an object {\"dtype\", "
     "\"shape\", \"data_offsets\"}, found [0, 8]"},
    {"empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VF_EINVAL,
     "a tensor has an empty name"},
    {"missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VF_EINVAL,
     "tensor 'a': no \"dtype\""},
    {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, VF_EINVAL,
     "tensor 'a': no \"shape\""},
    {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, VF_EINVAL,
     "tensor 'a': no \"data_offsets\""},
    {"extra key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
     VF_EINVAL, "tensor 'a': unknown key 'x'"},
    {"unknown dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     VF_EINVAL, "tensor 'a': dtype \"F33\": not a safetensors dtype; expected one of F32"},
    {"lower-case dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     VF_EINVAL, "dtype \"f32\": not a safetensors dtype"},
    {"dtype a number", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VF_EINVAL,
     "tensor 'a': dtype 4: expected a string"},
    {"dtype F8_E4M3", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8,
     VF_EUNSUPPORTED, "tensor 'a': dtype \"F8_E4M3\": a safetensors dtype vaefarm does not read"},
    {"dtype U32", "{\"a\":{\"dtype\":\"U32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     VF_EUNSUPPORTED, "dtype \"U32\": a safetensors dtype vaefarm does not read"},
    {"shape not an array", "{" E("a", "2", "[0,8]") "}", 8, VF_EINVAL,
     "tensor 'a': shape 2: expected an array of non-negative integers"},
    {"shape negative", "{" E("a", "[-2]", "[0,8]") "}", 8, VF_EINVAL,
     "tensor 'a': shape [-2]: dimension 0 is -2, expected a non-negative integer"},
    {"shape a string dim", "{" E("a", "[1,\"2\"]", "[0,8]") "}", 8, VF_EINVAL,
     "shape [1, \"2\"]: dimension 1 is \"2\", expected a non-negative integer"},
    {"shape a float dim", "{" E("a", "[2.0]", "[0,8]") "}", 8, VF_EINVAL,
     "shape [2.0]: dimension 0 is 2.0, expected a non-negative integer"},
    {"shape null dim", "{" E("a", "[null]", "[0,8]") "}", 8, VF_EINVAL,
     "dimension 0 is null, expected"},
    {"shape nested", "{" E("a", "[[2]]", "[0,8]") "}", 8, VF_EINVAL,
     "shape [[2]]: dimension 0 is [2], expected"},
    {"shape product overflows int64", "{" E("a", "[4294967296,4294967296]", "[0,8]") "}", 8,
     VF_EINVAL, "shape [4294967296, 4294967296]: the product of the dimensions overflows 64 bits"},
    {"shape overflows even with a zero", "{" E("a", "[0,4294967296,4294967296]", "[0,0]") "}", 0,
     VF_EINVAL, "the product of the dimensions overflows 64 bits"},
    {"shape bytes overflow", "{" E("a", "[2305843009213693952,2]", "[0,8]") "}", 8, VF_EINVAL,
     "shape [2305843009213693952, 2]: 4611686018427387904 values of F32 (4 bytes each) overflow"},
    {"shape too many dims", "{" E("a", "[1,1,1,1,1,1,1,1,2]", "[0,8]") "}", 8, VF_EUNSUPPORTED,
     "tensor 'a': shape [1, 1, 1, 1, 1, 1, 1, 1, 2]: 9 dimensions, vaefarm reads tensors of at "
     "most 8"},
    {"data_offsets one value", "{" E("a", "[2]", "[0]") "}", 8, VF_EINVAL,
     "tensor 'a': data_offsets [0]: expected [begin, end]"},
    {"data_offsets three values", "{" E("a", "[2]", "[0,8,8]") "}", 8, VF_EINVAL,
     "data_offsets [0, 8, 8]: expected [begin, end]"},
    {"data_offsets an object", "{" E("a", "[2]", "{\"0\":8}") "}", 8, VF_EINVAL,
     "data_offsets an object with 1 key: expected [begin, end]"},
    {"data_offsets negative", "{" E("a", "[2]", "[-8,0]") "}", 8, VF_EINVAL,
     "data_offsets [-8, 0]: begin is -8, expected a non-negative integer"},
    {"data_offsets float", "{" E("a", "[2]", "[0,8.0]") "}", 8, VF_EINVAL,
     "data_offsets [0, 8.0]: end is 8.0, expected a non-negative integer"},
    {"data_offsets end before begin", "{" E("C.out.weight", "[2]", "[100,50]") "}", 100, VF_EINVAL,
     "w.safetensors: tensor 'C.out.weight': data_offsets [100, 50]: end before begin"},
    {"data_offsets end beyond the data", "{" E("a", "[2]", "[0,8]") "}", 4, VF_EINVAL,
     "tensor 'a': data_offsets [0, 8]: end is beyond the 4 bytes of data after the header"},
    {"data_offsets huge", "{" E("a", "[2]", "[9223372036854775800,9223372036854775807]") "}", 8,
     VF_EINVAL, "end is beyond the 8 bytes of data"},
    {"size != product * itemsize", "{" E("a", "[3]", "[0,8]") "}", 8, VF_EINVAL,
     "tensor 'a': data_offsets [0, 8]: 8 bytes, but shape [3] of F32 needs 12 (3 values of 4 "
     "bytes)"},
    {"zero-size tensor with bytes", "{" E("a", "[0]", "[0,8]") "}", 8, VF_EINVAL,
     "8 bytes, but shape [0] of F32 needs 0"},
    {"overlapping tensors", "{" A8 "," E("b", "[2]", "[4,12]") "}", 12, VF_EINVAL,
     "tensor 'b': data_offsets [4, 12] overlap those of tensor 'a' [0, 8]"},
    {"identical tensors", "{" A8 "," E("b", "[2]", "[0,8]") "}", 8, VF_EINVAL,
     "tensor 'b': data_offsets [0, 8] overlap those of tensor 'a' [0, 8]"},
    {"zero-size inside another", "{" A8 "," E("z", "[0]", "[4,4]") "}", 8, VF_EINVAL,
     "tensor 'z': data_offsets [4, 4] overlap those of tensor 'a'"},
    {"hole between tensors", "{" A8 "," E("b", "[2]", "[12,20]") "}", 20, VF_EINVAL,
     "tensor 'b': data_offsets [12, 20] leave a hole: bytes [8, 12) after tensor 'a' belong to "
     "no tensor"},
    {"first tensor not at 0", "{" E("a", "[2]", "[4,12]") "}", 12, VF_EINVAL,
     "tensor 'a': data_offsets [4, 12] leave a hole: bytes [0, 4) at the start of the data"},
    {"trailing unindexed bytes", "{" A8 "}", 12, VF_EINVAL,
     "4 trailing bytes: the data after the header has 12 bytes but the tensors end at 8"},
    {"no tensors but data", "{}", 3, VF_EINVAL, "3 trailing bytes"},
    {"metadata only but data", "{\"__metadata__\":{\"a\":\"b\"}}", 1, VF_EINVAL,
     "1 trailing byte: the data after the header has 1 bytes"},
    {"data truncated", "{" A8 "," E("b", "[4]", "[8,24]") "}", 20, VF_EINVAL,
     "tensor 'b': data_offsets [8, 24]: end is beyond the 20 bytes of data after the header; the "
     "file is truncated"},
    {"dtype true", "{\"a\":{\"dtype\":true,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     VF_EINVAL, "tensor 'a': dtype true: expected a string"},
    {"shape false dim", "{" E("a", "[false]", "[0,8]") "}", 8, VF_EINVAL,
     "shape [false]: dimension 0 is false, expected"},
    {"shape deeply nested", "{" E("a", "[[[[1]]]]", "[0,8]") "}", 8, VF_EINVAL,
     "dimension 0 is [[[1 values]]], expected"},
    {"shape of 20 dims", "{" E("a", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4,
     VF_EUNSUPPORTED, "1, 1, ... (20 values)]: 20 dimensions, vaefarm reads tensors of at most 8"},
    {"UTF-8 kept, C1 control escaped", "{\"caf\xc3\xa9\\u0085\":5}", 0, VF_EINVAL,
     "tensor 'caf\xc3\xa9\\xc2\\x85': expected an object"},
    {"control bytes in a name are escaped",
     "{\"evil\\u001b[31m\\n\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0, VF_EINVAL,
     "tensor 'evil\\x1b[31m\\x0a': dtype \"X\""},
};

static void st_hostile_headers_fail_with_what_and_where(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        size_t len;
        unsigned char *f = raw(hostile[i].header, hostile[i].data_len, &len);
        expect_fail(f, len, hostile[i].code, hostile[i].words, hostile[i].label);
        free(f);
    }

    /* A long name is cut in messages (the message stays readable). */
    char h[1024], name[601];
    memset(name, 'n', 600);
    name[600] = '\0';
    snprintf(h, sizeof h, "{\"%s\":{\"dtype\":\"Q\",\"shape\":[],\"data_offsets\":[0,0]}}", name);
    size_t len;
    unsigned char *f = raw(h, 0, &len);
    expect_fail(f, len, VF_EINVAL, "nnnnnnnnnn...': dtype \"Q\": not a safetensors dtype",
                "a 600-byte name is cut");
    free(f);
    snprintf(h, sizeof h, "{\"a\":{\"dtype\":\"%s\",\"shape\":[],\"data_offsets\":[0,0]}}",
             name);
    f = raw(h, 0, &len);
    expect_fail(f, len, VF_EINVAL, "nnnnnnnnnn...\": not a safetensors dtype",
                "a 600-byte dtype is cut");
    free(f);

    /* Nesting 100000 deep: jansson's depth limit, not a stack overflow. */
    char *deep = malloc(100001);
    assert_non_null(deep);
    memset(deep, '[', 100000);
    deep[100000] = '\0';
    f = raw(deep, 0, &len);
    expect_fail(f, len, VF_EINVAL, "is not valid JSON: maximum parsing depth reached",
                "100000 nested arrays");
    free(f);
    free(deep);

    /* A NUL byte inside the header. */
    f = raw_n("{\"a\"\0:{}}", 9, NULL, 0, &len);
    expect_fail(f, len, VF_EINVAL, "is not valid JSON", "NUL byte in the header");
    free(f);
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void st_hostile_lengths_fail_cleanly(void **state)
{
    (void)state;
    unsigned char f[64] = {0};
    expect_fail(f, 0, VF_EINVAL, "0 bytes, too short for a safetensors file", "empty file");
    expect_fail(f, 7, VF_EINVAL, "7 bytes, too short for a safetensors file", "7 bytes");

    /* Header length 0: 8 bytes, no JSON. */
    expect_fail(f, 8, VF_EINVAL, "the 0-byte header is not valid JSON", "header length 0");

    memcpy(f + 8, "{}", 2);
    put_le64(f, 1000);
    expect_fail(f, 50, VF_EINVAL,
                "header length 1000 bytes, but only 42 bytes follow the 8-byte length; the file "
                "is truncated",
                "header length larger than the file");
    put_le64(f, 43);
    expect_fail(f, 50, VF_EINVAL, "but only 42 bytes follow", "header length one past the file");
    put_le64(f, UINT64_C(1) << 63);
    expect_fail(f, 50, VF_EINVAL,
                "header length 9223372036854775808 bytes is more than the 100 MiB vaefarm accepts",
                "header length 2^63");
    put_le64(f, UINT64_MAX);
    expect_fail(f, 50, VF_EINVAL, "header length 18446744073709551615 bytes is more than",
                "header length 2^64-1");
    put_le64(f, UINT64_MAX - 7);
    expect_fail(f, 50, VF_EINVAL, "is more than the 100 MiB", "header length 2^64-8 (wraps +8)");
    put_le64(f, (uint64_t)VF_ST_MAX_HEADER + 1);
    expect_fail(f, 50, VF_EINVAL, "header length 104857601 bytes is more than the 100 MiB",
                "header length > 100 MiB");
    put_le64(f, 2);
    struct vf_safetensors *st = parse_ok(f, 10, false);
    vf_safetensors_close(&st);
}

/* Every prefix of a valid file fails cleanly (the full file parses). */
static unsigned char *fuzz_seed_file(size_t *len)
{
    static const float w[6] = {1, 2, 3, 4, 5, 6};
    static const uint16_t h[3] = {0x3C00, 0x0001, 0x7C00};
    static const uint16_t b[2] = {0x3F80, 0xBF80};
    static const double d[1] = {0.5};
    static const struct wt t[] = {
        {"F.conv1.weight", "F32", 4, {1, 1, 2, 3}, w, sizeof w},
        {"A.theta.bias", "F16", 1, {3}, h, sizeof h},
        {"C.mu.weight", "BF16", 2, {2, 1}, b, sizeof b},
        {"C.logvar.bias", "F64", 0, {0}, d, sizeof d},
        {"F.bn1.num_batches_tracked", "I64", 0, {0}, "\1\0\0\0\0\0\0\0", 8},
        {"empty", "F32", 1, {0}, NULL, 0},
    };
    static const char *meta[] = {"vaefarm", "{\"format\": \"vaefarm-net-v1\", \"name\": \"tiny\"}",
                                 NULL};
    return st_write(t, sizeof t / sizeof t[0], meta, 8, len);
}

static void st_every_truncation_fails_cleanly(void **state)
{
    (void)state;
    size_t len;
    unsigned char *f = fuzz_seed_file(&len);
    for (size_t n = 0; n < len; n++) {
        struct vf_safetensors *st;
        struct vf_error err;
        int rc = parse(f, n, n & 1, &st, &err);
        if (rc != VF_EINVAL)
            fail_msg("prefix of %zu of %zu bytes: expected VF_EINVAL, got %d: %s", n, len, rc,
                     err.msg);
    }
    struct vf_safetensors *st = parse_ok(f, len, true);
    assert_int_equal(st->n, 6);
    vf_safetensors_close(&st);
    free(f);
}

/* ---- fuzz --------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}
static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

#define FUZZ_ITERATIONS 20000

/* Replace f[pos, pos + old) by `with` (f has room), keeping the header length field right when
 * the splice is inside the header, so that the JSON stays whole and the checks behind it run. */
static void splice(unsigned char *f, size_t *len, uint64_t *hlen, size_t pos, size_t old,
                   const char *with)
{
    size_t n = strlen(with);
    memmove(f + pos + n, f + pos + old, *len - pos - old);
    memcpy(f + pos, with, n);
    *len = *len - old + n;
    *hlen = *hlen - old + n;
    put_le64(f, *hlen);
}

static void st_mutated_files_never_crash_or_leak(void **state)
{
    (void)state;
    static const char interesting[] = "{}[]\":,-0123456789eE.  \\ntfu";
    static const char *const numbers[] = {"0", "1", "2", "4", "8", "-1", "3", "255", "4294967296",
                                          "9223372036854775807", "9223372036854775808",
                                          "18446744073709551615", "2305843009213693952", "1e3",
                                          "2.0", "null", "[]", "\"8\""};
    static const char *const dtypes[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I8", "U8",
                                         "BOOL", "F8_E4M3", "U16", "X", ""};
    size_t len0;
    unsigned char *seed = fuzz_seed_file(&len0);
    unsigned char *f = malloc(len0 + 1024);
    assert_non_null(f);
    long ok = 0, failed = 0, unsupported = 0;
    for (int it = 0; it < FUZZ_ITERATIONS; it++) {
        memcpy(f, seed, len0);
        size_t len = len0;
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--)
            hlen = hlen << 8 | f[i];
        int muts = 1 + (int)rnd_below(4);
        for (int m = 0; m < muts; m++) {
            if (hlen < 2 || 8 + hlen > len)
                break; /* the header is already gone */
            size_t hpos = 8 + rnd_below(hlen);
            switch (rnd_below(9)) {
            case 0: f[hpos] ^= (unsigned char)(1u << rnd_below(8)); break;
            case 1: f[hpos] = (unsigned char)interesting[rnd_below(sizeof interesting - 1)]; break;
            case 2: f[hpos] = (unsigned char)rnd(); break;
            case 3: f[rnd_below(8)] = (unsigned char)rnd(); break; /* the header length */
            case 4: len = rnd_below(len + 1); break;              /* truncate */
            case 5: f[hpos] = (unsigned char)('0' + rnd_below(10)); break;
            case 6: { /* shift the header length a little: misplaces the header's end */
                uint64_t n = hlen + rnd_below(9) - 4;
                put_le64(f, n);
                hlen = n;
                break;
            }
            case 7: { /* a number (shape, offset) becomes another, or something else */
                size_t p = hpos;
                while (p < 8 + hlen && (f[p] < '0' || f[p] > '9'))
                    p++;
                size_t q = p;
                while (q < 8 + hlen && f[q] >= '0' && f[q] <= '9')
                    q++;
                if (q > p)
                    splice(f, &len, &hlen, p, q - p,
                           numbers[rnd_below(sizeof numbers / sizeof numbers[0])]);
                break;
            }
            case 8: { /* another dtype */
                const char *h = (const char *)f + 8;
                size_t from = hpos - 8;
                const char *d = NULL;
                for (size_t i = from; i + 9 <= hlen && !d; i++)
                    if (memcmp(h + i, "\"dtype\":\"", 9) == 0)
                        d = h + i + 9;
                if (!d)
                    break;
                size_t p = (size_t)((const unsigned char *)d - f), q = p;
                while (q < 8 + hlen && f[q] != '"')
                    q++;
                splice(f, &len, &hlen, p, q - p,
                       dtypes[rnd_below(sizeof dtypes / sizeof dtypes[0])]);
                break;
            }
            }
        }
        struct vf_safetensors *st;
        struct vf_error err;
        int rc = parse(f, len, it & 1, &st, &err);
        if (rc == 0) {
            ok++;
            const unsigned char *lo = NULL;
            for (size_t i = 0; i < st->n; i++) {
                const struct vf_st_tensor *t = &st->tensors[i];
                assert_true(t->ndim >= 0 && t->ndim <= VF_ST_MAX_DIMS);
                assert_true(t->count >= 0);
                if (lo)
                    assert_ptr_equal(lo, t->data);
                lo = (const unsigned char *)t->data + t->nbytes;
                assert_true(t->nbytes == (size_t)t->count *
                                             (t->dtype == VF_ST_F64 || t->dtype == VF_ST_I64 ? 8
                                              : t->dtype == VF_ST_F32 || t->dtype == VF_ST_I32 ? 4
                                              : t->dtype == VF_ST_F16 || t->dtype == VF_ST_BF16 ||
                                                      t->dtype == VF_ST_I16
                                                  ? 2
                                                  : 1));
                if (t->dtype == VF_ST_F32 || t->dtype == VF_ST_F16 || t->dtype == VF_ST_BF16 ||
                    t->dtype == VF_ST_F64) {
                    float *out = malloc(t->count ? (size_t)t->count * sizeof *out : 1);
                    assert_non_null(out);
                    assert_int_equal(vf_st_to_f32(t, out, &err), 0);
                    free(out);
                }
            }
            if (st->n) /* the data is covered exactly, to the file's last byte */
                assert_ptr_equal(lo, (const unsigned char *)st->buf_ + st->len_);
            vf_safetensors_close(&st);
        } else {
            if (rc == VF_EUNSUPPORTED)
                unsupported++;
            else
                assert_int_equal(rc, VF_EINVAL);
            failed++;
        }
    }
    print_message("  fuzz: %d iterations: %ld parsed, %ld refused (%ld as unsupported)\n",
                  FUZZ_ITERATIONS, ok, failed, unsupported);
    assert_true(failed > FUZZ_ITERATIONS / 2);
    free(f);
    free(seed);
}

/* ---- out of memory in the JSON parser ----------------------------------------------------- */

static long json_allocs_left;
static void *failing_malloc(size_t n)
{
    if (json_allocs_left-- <= 0)
        return NULL;
    return malloc(n);
}

/* Fail jansson's k-th allocation for k = 0, 1, ... until the parse succeeds: each failure is a
 * clean error, nothing leaks. */
static void st_out_of_memory_in_the_json_parser_is_reported(void **state)
{
    (void)state;
    size_t len;
    unsigned char *f = fuzz_seed_file(&len);
    long k, nomem = 0;
    for (k = 0;; k++) {
        assert_true(k < 100000);
        struct vf_safetensors *st;
        struct vf_error err;
        json_allocs_left = k;
        json_set_alloc_funcs(failing_malloc, free);
        int rc = parse(f, len, k & 1, &st, &err);
        json_set_alloc_funcs(malloc, free);
        if (rc == 0) {
            vf_safetensors_close(&st);
            break;
        }
        /* jansson reports some failed allocations (in its lexer) as syntax errors. */
        if (rc == VF_ENOMEM)
            assert_non_null(strstr(err.msg, "out of memory parsing the"));
        else if (rc != VF_EINVAL)
            fail_msg("allocation %ld failing: expected VF_ENOMEM, got %d: %s", k, rc, err.msg);
        nomem += rc == VF_ENOMEM;
    }
    print_message("  the parse succeeded once %ld JSON allocations could succeed; %ld of the "
                  "failures were VF_ENOMEM, the others VF_EINVAL\n", k, nomem);
    assert_true(nomem > 0);
    free(f);
}

/* ---- files -------------------------------------------------------------------------------- */

static void st_open_reads_files_and_refuses_the_rest(void **state)
{
    (void)state;
    char dir[] = "/tmp/vf_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], missing[256], fifo[256], empty[256];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    snprintf(missing, sizeof missing, "%s/nope/w.safetensors", dir);
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    snprintf(empty, sizeof empty, "%s/empty.safetensors", dir);

    size_t len;
    unsigned char *bytes = fuzz_seed_file(&len);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    free(bytes);
    fp = fopen(empty, "wb");
    assert_non_null(fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);

    struct vf_safetensors *st = NULL;
    struct vf_error err = {0};
    assert_int_equal(vf_safetensors_open(path, &st, &err), 0);
    assert_int_equal(st->n, 6);
    assert_non_null(vf_safetensors_meta(st, "vaefarm"));
    float out[6];
    assert_int_equal(vf_st_to_f32(vf_safetensors_find(st, "F.conv1.weight"), out, &err), 0);
    assert_true(out[5] == 6.0f);
    vf_safetensors_close(&st);

    assert_int_equal(vf_safetensors_open(missing, &st, &err), VF_ENOENT);
    assert_null(st);
    assert_non_null(strstr(err.msg, missing));
    assert_non_null(strstr(err.msg, "No such file or directory; check the path"));
    print_message("  missing: %s\n", err.msg);

    assert_int_equal(vf_safetensors_open(dir, &st, &err), VF_EINVAL);
    assert_null(st);
    assert_non_null(strstr(err.msg, "is a folder, not a file"));
    assert_non_null(strstr(err.msg, "a regular .safetensors file"));
    print_message("  folder: %s\n", err.msg);

    assert_int_equal(vf_safetensors_open(fifo, &st, &err), VF_EINVAL); /* must not block */
    assert_non_null(strstr(err.msg, "is a pipe (FIFO), not a file"));
    print_message("  fifo: %s\n", err.msg);

    assert_int_equal(vf_safetensors_open(empty, &st, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "empty.safetensors: 0 bytes, too short"));

    if (geteuid() != 0) { /* root reads anything */
        assert_int_equal(chmod(path, 0), 0);
        assert_int_equal(vf_safetensors_open(path, &st, &err), VF_EIO);
        assert_non_null(strstr(err.msg, "Permission denied"));
        print_message("  unreadable: %s\n", err.msg);
    }

    unlink(path);
    unlink(fifo);
    unlink(empty);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(st_reads_metadata_tensors_and_every_float_dtype),
        cmocka_unit_test(st_orders_by_offset_and_reads_unaligned_data),
        cmocka_unit_test(st_hostile_headers_fail_with_what_and_where),
        cmocka_unit_test(st_hostile_lengths_fail_cleanly),
        cmocka_unit_test(st_every_truncation_fails_cleanly),
        cmocka_unit_test(st_mutated_files_never_crash_or_leak),
        cmocka_unit_test(st_out_of_memory_in_the_json_parser_is_reported),
        cmocka_unit_test(st_open_reads_files_and_refuses_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
