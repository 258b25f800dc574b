/*
 * node/safetensors.c: the safetensors reader (node.h, docs/WEIGHTS.md).
 *
 * Trusts nothing: the header length, the JSON, every dtype, shape and offset are checked, the
 * tensors must cover the data exactly (the spec's "entirely indexed, no holes"), and every
 * failure is a negative VF_E* code with a message naming the file, the tensor, the field, the
 * value found and what was expected. Every error path frees what it built. Strings from the
 * file are escaped before they go into a message (no control bytes reach a terminal or a log).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "node/node.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtypes ------------------------------------------------------------------------------- */
static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    [VF_ST_F32] = {"F32", 4}, [VF_ST_BF16] = {"BF16", 2}, [VF_ST_F16] = {"F16", 2},
    [VF_ST_F64] = {"F64", 8}, [VF_ST_I64] = {"I64", 8},   [VF_ST_I32] = {"I32", 4},
    [VF_ST_I16] = {"I16", 2}, [VF_ST_I8] = {"I8", 1},     [VF_ST_U8] = {"U8", 1},
    [VF_ST_BOOL] = {"BOOL", 1},
};
#define ST_NDTYPES (sizeof st_dtypes / sizeof st_dtypes[0])
#define ST_DTYPE_LIST "F32, BF16, F16, F64, I64, I32, I16, I8, U8, BOOL"

/* Dtypes of the safetensors spec that vaefarm does not read (a valid file, not a damaged one). */
static const char *const st_unsupported[] = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3",
                                             "F6_E3M2", "U16", "U32", "U64", "C64"};

const char *vf_st_dtype_name(enum vf_st_dtype dt)
{
    if ((unsigned)dt < ST_NDTYPES)
        return st_dtypes[dt].name;
    return "unknown";
}

/* ---- messages ----------------------------------------------------------------------------- */
/* A bounded text buffer: appends never overflow, a cut is marked with "...". */
struct sbuf {
    char *p;
    size_t cap, len;
    bool full;
};

static void sb_init(struct sbuf *b, char *p, size_t cap)
{
    b->p = p;
    b->cap = cap;
    b->len = 0;
    b->full = false;
    p[0] = '\0';
}

/* Append n bytes; when they do not fit (keeping room for "..."), mark the buffer full. */
static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->full)
        return;
    if (b->len + n + 4 > b->cap) {
        memcpy(b->p + b->len, "...", 4);
        b->len += 3;
        b->full = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Append a string from the file: printable ASCII and well-formed UTF-8 sequences (C1 controls
 * excepted) are kept, every other byte becomes \xNN. */
static void sb_clean(struct sbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && !b->full) {
        unsigned c = u[i];
        size_t k = 0; /* length of a well-formed UTF-8 sequence at i, 0 if none */
        if (c >= 0x20 && c < 0x7f)
            k = 1;
        else if (c >= 0xc2 && c <= 0xf4) {
            size_t want = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
            if (i + want <= n) {
                k = want;
                for (size_t j = 1; j < want; j++)
                    if ((u[i + j] & 0xc0) != 0x80)
                        k = 0;
                if (k == 2 && c == 0xc2 && u[i + 1] < 0xa0)
                    k = 0; /* U+0080..U+009F: C1 controls */
            }
        }
        if (k) {
            sb_put(b, s + i, k);
            i += k;
        } else {
            sb_printf(b, "\\x%02x", c);
            i++;
        }
    }
}

/* A JSON value as found in the file, short: 42, 2.5, "F32", [1, 2], an object, ... */
static void sb_json(struct sbuf *b, const json_t *v, int depth)
{
    if (!v) {
        sb_put(b, "nothing", 7);
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (json_object_size(v) == 1)
            sb_put(b, "an object with 1 key", 20);
        else
            sb_printf(b, "an object with %zu keys", json_object_size(v));
        break;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (depth > 1) {
            sb_printf(b, "[%zu values]", n);
            break;
        }
        sb_put(b, "[", 1);
        for (size_t i = 0; i < n && !b->full; i++) {
            if (i)
                sb_put(b, ", ", 2);
            if (i == 16) {
                sb_printf(b, "... (%zu values)", n);
                break;
            }
            sb_json(b, json_array_get(v, i), depth + 1);
        }
        sb_put(b, "]", 1);
        break;
    }
    case JSON_STRING: {
        size_t n = json_string_length(v);
        sb_put(b, "\"", 1);
        sb_clean(b, json_string_value(v), n > 96 ? 96 : n);
        if (n > 96)
            sb_put(b, "...", 3);
        sb_put(b, "\"", 1);
        break;
    }
    case JSON_INTEGER:
        sb_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: {
        char num[64];
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        if (!strpbrk(num, ".eEn"))
            strcat(num, ".0"); /* 2.0 stays visibly a float */
        sb_put(b, num, strlen(num));
        break;
    }
    case JSON_TRUE: sb_put(b, "true", 4); break;
    case JSON_FALSE: sb_put(b, "false", 5); break;
    case JSON_NULL: sb_put(b, "null", 4); break;
    }
}

/* A tensor or key name for a message: escaped, at most ~200 bytes. */
struct name_buf {
    char s[224];
};
static const char *clean_name(struct name_buf *nb, const char *s)
{
    struct sbuf b;
    sb_init(&b, nb->s, sizeof nb->s);
    sb_clean(&b, s, strlen(s));
    return nb->s;
}

struct json_buf {
    char s[256];
};
static const char *show(struct json_buf *jb, const json_t *v)
{
    struct sbuf b;
    sb_init(&b, jb->s, sizeof jb->s);
    sb_json(&b, v, 0);
    return jb->s;
}

/* Parse state shared by the checks: the file's name for messages and the error. */
struct ctx {
    const char *what;
    struct vf_error *err;
};

/* "what: <message>" */
static int fail(const struct ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const struct ctx *c, int code, const char *fmt, ...)
{
    char msg[VF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vf_error_set(c->err, code, "%s: %s", c->what, msg);
}

/* "what: tensor 'name': <message>" */
static int fail_t(const struct ctx *c, const char *name, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_t(const struct ctx *c, const char *name, int code, const char *fmt, ...)
{
    char msg[VF_ERROR_MSG_MAX];
    struct name_buf nb;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vf_error_set(c->err, code, "%s: tensor '%s': %s", c->what, clean_name(&nb, name), msg);
}

/* ---- parsing ------------------------------------------------------------------------------ */
/* One tensor while parsing: its place in the data, its order in the header (for a stable
 * sort) and the tensor itself (name owned here until the result takes it). */
struct slot {
    uint64_t begin, end;
    size_t order;
    struct vf_st_tensor t;
};

static int slot_cmp(const void *pa, const void *pb)
{
    const struct slot *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int parse_dtype(const struct ctx *c, const char *name, const json_t *v, enum vf_st_dtype *dt)
{
    struct json_buf jb;
    if (!json_is_string(v))
        return fail_t(c, name, VF_EINVAL, "dtype %s: expected a string, one of " ST_DTYPE_LIST,
                      show(&jb, v));
    const char *s = json_string_value(v);
    for (size_t i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) {
            *dt = (enum vf_st_dtype)i;
            return VF_OK;
        }
    for (size_t i = 0; i < sizeof st_unsupported / sizeof st_unsupported[0]; i++)
        if (strcmp(s, st_unsupported[i]) == 0)
            return fail_t(c, name, VF_EUNSUPPORTED,
                          "dtype %s: a safetensors dtype vaefarm does not read (it reads "
                          ST_DTYPE_LIST "); save the weights as F32, BF16 or F16",
                          show(&jb, v));
    return fail_t(c, name, VF_EINVAL,
                  "dtype %s: not a safetensors dtype; expected one of " ST_DTYPE_LIST,
                  show(&jb, v));
}

static int parse_shape(const struct ctx *c, const char *name, const json_t *v,
                       struct vf_st_tensor *t)
{
    struct json_buf jb;
    if (!json_is_array(v))
        return fail_t(c, name, VF_EINVAL,
                      "shape %s: expected an array of non-negative integers ([] for a scalar)",
                      show(&jb, v));
    size_t nd = json_array_size(v);
    if (nd > VF_ST_MAX_DIMS)
        return fail_t(c, name, VF_EUNSUPPORTED,
                      "shape %s: %zu dimensions, vaefarm reads tensors of at most %d", show(&jb, v),
                      nd, VF_ST_MAX_DIMS);
    /* The product of the non-zero dimensions must fit in 64 bits even when a zero makes the
     * count 0, so that no partial product of the shape a consumer computes can overflow. */
    int64_t prod = 1;
    bool zero = false;
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(v, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) {
            struct json_buf db;
            return fail_t(c, name, VF_EINVAL,
                          "shape %s: dimension %zu is %s, expected a non-negative integer",
                          show(&jb, v), i, show(&db, d));
        }
        int64_t x = (int64_t)json_integer_value(d);
        t->shape[i] = x;
        if (x == 0) {
            zero = true;
            continue;
        }
        if (prod > INT64_MAX / x)
            return fail_t(c, name, VF_EINVAL,
                          "shape %s: the product of the dimensions overflows 64 bits; the file "
                          "is damaged",
                          show(&jb, v));
        prod *= x;
    }
    t->ndim = (int)nd;
    t->count = zero ? 0 : prod;
    size_t isz = st_dtypes[t->dtype].size;
    if (t->count > INT64_MAX / (int64_t)isz || (uint64_t)t->count * isz > SIZE_MAX)
        return fail_t(c, name, VF_EINVAL,
                      "shape %s: %" PRId64 " values of %s (%zu bytes each) overflow 64 bits; the "
                      "file is damaged",
                      show(&jb, v), t->count, st_dtypes[t->dtype].name, isz);
    t->nbytes = (size_t)t->count * isz;
    return VF_OK;
}

static int parse_offsets(const struct ctx *c, const char *name, const json_t *v,
                         uint64_t data_len, struct slot *s)
{
    struct json_buf jb;
    if (!json_is_array(v) || json_array_size(v) != 2)
        return fail_t(c, name, VF_EINVAL,
                      "data_offsets %s: expected [begin, end], two non-negative integers",
                      show(&jb, v));
    for (size_t i = 0; i < 2; i++) {
        const json_t *x = json_array_get(v, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0) {
            struct json_buf xb;
            return fail_t(c, name, VF_EINVAL,
                          "data_offsets %s: %s is %s, expected a non-negative integer",
                          show(&jb, v), i ? "end" : "begin", show(&xb, x));
        }
    }
    uint64_t b = (uint64_t)json_integer_value(json_array_get(v, 0));
    uint64_t e = (uint64_t)json_integer_value(json_array_get(v, 1));
    if (e < b)
        return fail_t(c, name, VF_EINVAL,
                      "data_offsets [%" PRIu64 ", %" PRIu64 "]: end before begin", b, e);
    if (e > data_len)
        return fail_t(c, name, VF_EINVAL,
                      "data_offsets [%" PRIu64 ", %" PRIu64 "]: end is beyond the %" PRIu64
                      " bytes of data after the header; the file is truncated or damaged",
                      b, e, data_len);
    if (e - b != (uint64_t)s->t.nbytes) {
        char shp[160];
        struct sbuf sb;
        sb_init(&sb, shp, sizeof shp);
        sb_put(&sb, "[", 1);
        for (int i = 0; i < s->t.ndim; i++)
            sb_printf(&sb, "%s%" PRId64, i ? ", " : "", s->t.shape[i]);
        sb_put(&sb, "]", 1);
        return fail_t(c, name, VF_EINVAL,
                      "data_offsets [%" PRIu64 ", %" PRIu64 "]: %" PRIu64 " bytes, but shape %s "
                      "of %s needs %zu (%" PRId64 " values of %zu bytes); the file is damaged",
                      b, e, e - b, shp, st_dtypes[s->t.dtype].name, s->t.nbytes, s->t.count,
                      st_dtypes[s->t.dtype].size);
    }
    s->begin = b;
    s->end = e;
    return VF_OK;
}

static int parse_entry(const struct ctx *c, const char *name, const json_t *v, uint64_t data_len,
                       struct slot *s)
{
    struct json_buf jb;
    if (!name[0])
        return fail(c, VF_EINVAL, "a tensor has an empty name \"\"; every tensor needs a name");
    if (!json_is_object(v))
        return fail_t(c, name, VF_EINVAL,
                      "expected an object {\"dtype\", \"shape\", \"data_offsets\"}, found %s",
                      show(&jb, v));
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0) {
            struct name_buf kb;
            return fail_t(c, name, VF_EINVAL,
                          "unknown key '%s'; an entry has exactly \"dtype\", \"shape\" and "
                          "\"data_offsets\"",
                          clean_name(&kb, k));
        }
    }
    static const char *const need[] = {"dtype", "shape", "data_offsets"};
    for (size_t i = 0; i < 3; i++)
        if (!json_object_get(v, need[i]))
            return fail_t(c, name, VF_EINVAL,
                          "no \"%s\"; an entry has exactly \"dtype\", \"shape\" and "
                          "\"data_offsets\"",
                          need[i]);
    int rc = parse_dtype(c, name, json_object_get(v, "dtype"), &s->t.dtype);
    if (rc == VF_OK)
        rc = parse_shape(c, name, json_object_get(v, "shape"), &s->t);
    if (rc == VF_OK)
        rc = parse_offsets(c, name, json_object_get(v, "data_offsets"), data_len, s);
    return rc;
}

static int parse_meta(const struct ctx *c, const json_t *v, struct vf_safetensors *st)
{
    struct json_buf jb;
    if (!json_is_object(v))
        return fail(c, VF_EINVAL, "\"__metadata__\" is %s, expected an object of string -> string",
                    show(&jb, v));
    size_t n = json_object_size(v);
    st->meta_keys = vf_calloc(n, sizeof *st->meta_keys, c->err);
    st->meta_values = vf_calloc(n, sizeof *st->meta_values, c->err);
    if (!st->meta_keys || !st->meta_values)
        return fail(c, VF_ENOMEM, "out of memory reading the %zu metadata entries", n);
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        if (!json_is_string(x)) {
            struct name_buf kb;
            return fail(c, VF_EINVAL,
                        "\"__metadata__\" key '%s' is %s, expected a string (metadata values are "
                        "strings; nested JSON is written as a string)",
                        clean_name(&kb, k), show(&jb, x));
        }
        size_t i = st->n_meta;
        st->meta_keys[i] = strdup(k);
        st->meta_values[i] = strdup(json_string_value(x));
        if (st->meta_keys[i] || st->meta_values[i])
            st->n_meta++; /* so that close frees what was copied */
        if (!st->meta_keys[i] || !st->meta_values[i])
            return fail(c, VF_ENOMEM, "out of memory copying the metadata");
    }
    return VF_OK;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Parse buf[0..len). `owned` (buf itself, or NULL when borrowing) becomes the result's, or is
 * freed on failure. */
static int parse(const unsigned char *buf, size_t len, void *owned, const struct ctx *c,
                 struct vf_safetensors **out)
{
    struct vf_safetensors *st = NULL;
    struct slot *slots = NULL;
    size_t nslots = 0;
    json_t *root = NULL;
    int rc;

    if (len < 8) {
        rc = fail(c, VF_EINVAL,
                  "%zu bytes, too short for a safetensors file (it starts with an 8-byte header "
                  "length); the file is empty, truncated or not a weights file",
                  len);
        goto out;
    }
    uint64_t hlen = le64(buf);
    if (hlen > VF_ST_MAX_HEADER) {
        rc = fail(c, VF_EINVAL,
                  "header length %" PRIu64 " bytes is more than the %u MiB vaefarm accepts; the "
                  "file is damaged or not a safetensors file",
                  hlen, VF_ST_MAX_HEADER >> 20);
        goto out;
    }
    if (hlen > (uint64_t)len - 8) {
        rc = fail(c, VF_EINVAL,
                  "header length %" PRIu64 " bytes, but only %zu bytes follow the 8-byte length; "
                  "the file is truncated or not a safetensors file",
                  hlen, len - 8);
        goto out;
    }
    const unsigned char *data = buf + 8 + hlen;
    uint64_t data_len = (uint64_t)len - 8 - hlen;

    json_error_t je;
    root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        /* jansson sets a text for every parse error; an empty one is an allocation that
         * failed before it could say so (e.g. its lexer's buffer). */
        if (json_error_code(&je) == json_error_out_of_memory || je.text[0] == '\0') {
            rc = fail(c, VF_ENOMEM, "out of memory parsing the %" PRIu64 "-byte header", hlen);
            goto out;
        }
        char txt[sizeof je.text * 4 + 8];
        struct sbuf sb;
        sb_init(&sb, txt, sizeof txt);
        sb_clean(&sb, je.text, strnlen(je.text, sizeof je.text));
        rc = fail(c, VF_EINVAL,
                  "the %" PRIu64 "-byte header is not valid JSON: %s (header line %d, column %d); "
                  "the file is damaged or not a safetensors file",
                  hlen, txt, je.line, je.column);
        goto out;
    }
    if (!json_is_object(root)) {
        struct json_buf jb;
        rc = fail(c, VF_EINVAL,
                  "the header is %s, expected a JSON object of tensor name -> {\"dtype\", "
                  "\"shape\", \"data_offsets\"}",
                  show(&jb, root));
        goto out;
    }

    if (buf[8] != '{') { /* JSON allows leading whitespace, the format does not */
        rc = fail(c, VF_EINVAL,
                  "the header starts with byte 0x%02x, not '{' as the safetensors format "
                  "requires; the file is damaged or was written by another tool",
                  buf[8]);
        goto out;
    }

    st = calloc(1, sizeof *st);
    if (!st) {
        rc = fail(c, VF_ENOMEM, "out of memory");
        goto out;
    }
    const json_t *meta = json_object_get(root, "__metadata__");
    size_t ntens = json_object_size(root) - (meta ? 1 : 0);
    slots = vf_calloc(ntens, sizeof *slots, c->err);
    st->tensors = vf_calloc(ntens, sizeof *st->tensors, c->err);
    if (!slots || !st->tensors) {
        rc = fail(c, VF_ENOMEM, "out of memory for %zu tensors", ntens);
        goto out;
    }
    if (meta && (rc = parse_meta(c, meta, st)) != VF_OK)
        goto out;

    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        VF_ASSERT(nslots < ntens);
        struct slot *s = &slots[nslots];
        s->order = nslots;
        if ((rc = parse_entry(c, key, val, data_len, s)) != VF_OK)
            goto out;
        s->t.name = strdup(key);
        if (!s->t.name) {
            rc = fail(c, VF_ENOMEM, "out of memory copying tensor names");
            goto out;
        }
        s->t.data = data + s->begin;
        nslots++;
    }
    VF_ASSERT(nslots == ntens);

    /* The data must be covered exactly: sorted by offset, each tensor begins where the
     * previous one ended, the first at 0, the last at the end of the file. */
    qsort(slots, nslots, sizeof *slots, slot_cmp);
    uint64_t pos = 0;
    for (size_t i = 0; i < nslots; i++) {
        const struct slot *s = &slots[i], *p = i ? &slots[i - 1] : NULL;
        if (s->begin < pos) {
            struct name_buf pb;
            rc = fail_t(c, s->t.name, VF_EINVAL,
                        "data_offsets [%" PRIu64 ", %" PRIu64 "] overlap those of tensor '%s' "
                        "[%" PRIu64 ", %" PRIu64 "]; each byte of the data belongs to exactly one "
                        "tensor: the file is damaged",
                        s->begin, s->end, clean_name(&pb, p->t.name), p->begin, p->end);
            goto out;
        }
        if (s->begin > pos) {
            struct name_buf pb;
            if (p)
                rc = fail_t(c, s->t.name, VF_EINVAL,
                            "data_offsets [%" PRIu64 ", %" PRIu64 "] leave a hole: bytes [%" PRIu64
                            ", %" PRIu64 ") after tensor '%s' belong to no tensor; the file is "
                            "damaged",
                            s->begin, s->end, pos, s->begin, clean_name(&pb, p->t.name));
            else
                rc = fail_t(c, s->t.name, VF_EINVAL,
                            "data_offsets [%" PRIu64 ", %" PRIu64 "] leave a hole: bytes [0, %"
                            PRIu64 ") at the start of the data belong to no tensor (the first "
                            "tensor must begin at 0); the file is damaged",
                            s->begin, s->end, s->begin);
            goto out;
        }
        pos = s->end;
    }
    if (pos != data_len) {
        rc = fail(c, VF_EINVAL,
                  "%" PRIu64 " trailing byte%s: the data after the header has %" PRIu64
                  " bytes but the tensors end at %" PRIu64 "; every byte must belong to a "
                  "tensor: the file is damaged or was written by another tool",
                  data_len - pos, data_len - pos == 1 ? "" : "s", data_len, pos);
        goto out;
    }

    for (size_t i = 0; i < nslots; i++) {
        st->tensors[i] = slots[i].t;
        slots[i].t.name = NULL; /* now the result's */
    }
    st->n = nslots;
    st->buf_ = owned;
    st->len_ = len;
    owned = NULL;
    *out = st;
    st = NULL;
    rc = VF_OK;
out:
    for (size_t i = 0; i < nslots; i++)
        free(slots[i].t.name);
    free(slots);
    vf_safetensors_close(&st);
    json_decref(root);
    free(owned);
    return rc;
}

int vf_safetensors_parse(const void *buf, size_t len, bool copy, const char *what,
                         struct vf_safetensors **out, struct vf_error *err)
{
    VF_ASSERT(out && (buf || len == 0));
    *out = NULL;
    struct ctx c = {what ? what : "safetensors", err};
    void *owned = NULL;
    if (copy && len >= 8) {
        owned = malloc(len);
        if (!owned)
            return fail(&c, VF_ENOMEM, "out of memory copying %zu bytes of weights", len);
        memcpy(owned, buf, len);
        buf = owned;
    }
    return parse(buf, len, owned, &c, out);
}

int vf_safetensors_open(const char *path, struct vf_safetensors **out, struct vf_error *err)
{
    VF_ASSERT(path && out && err);
    *out = NULL;
    struct ctx c = {path, err};
    void *buf = NULL;
    size_t size = 0;
    /* a FIFO is refused without waiting; the message begins with the path */
    if (vf_read_regular(path, &buf, &size, err) < 0)
        return vf_error_suffix(err, "%s",
                               err->code == VF_ENOENT   ? "; check the path (film.yaml's \"model\")"
                               : err->code == VF_EINVAL ? "; vaefarm reads weights from a regular "
                                                          ".safetensors file"
                                                        : "");
    return parse(buf, size, buf, &c, out);   /* parse owns buf */
}

const struct vf_st_tensor *vf_safetensors_find(const struct vf_safetensors *st, const char *name)
{
    if (!st || !name)
        return NULL;
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

const char *vf_safetensors_meta(const struct vf_safetensors *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

void vf_safetensors_close(struct vf_safetensors **pst)
{
    if (!pst || !*pst)
        return;
    struct vf_safetensors *st = *pst;
    if (st->tensors)
        for (size_t i = 0; i < st->n; i++)
            free(st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->buf_);
    free(st);
    *pst = NULL;
}

/* ---- conversion --------------------------------------------------------------------------- */
static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE binary16 → binary32, exact (subnormals, infinities and NaN payloads included). */
static float half_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        uint32_t e = 127 - 15 + 1; /* normalize the subnormal */
        while (!(man & 0x400u)) {
            man <<= 1;
            e--;
        }
        return bits_f32(sign | e << 23 | (man & 0x3ffu) << 13);
    }
    if (exp == 31)
        return bits_f32(sign | 0xffu << 23 | man << 13);
    return bits_f32(sign | (exp + 127 - 15) << 23 | man << 13);
}

int vf_st_to_f32(const struct vf_st_tensor *t, float *out, struct vf_error *err)
{
    VF_ASSERT(t && (out || t->count == 0));
    const char *name = t->name ? t->name : "?";
    struct name_buf nb;
    if ((unsigned)t->dtype >= ST_NDTYPES)
        return vf_error_set(err, VF_EINVAL, "tensor '%s': dtype %d is not a safetensors dtype",
                            clean_name(&nb, name), (int)t->dtype);
    size_t isz = st_dtypes[t->dtype].size;
    if (t->count < 0 || t->nbytes / isz != (uint64_t)t->count || t->nbytes % isz)
        return vf_error_set(err, VF_EINVAL, "tensor '%s': %zu bytes do not hold %" PRId64
                            " values of %s", clean_name(&nb, name), t->nbytes, t->count,
                            st_dtypes[t->dtype].name);
    const unsigned char *p = t->data;
    size_t n = (size_t)t->count;
    switch (t->dtype) {
    case VF_ST_F32:
        for (size_t i = 0; i < n; i++, p += 4)
            out[i] = bits_f32((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                              (uint32_t)p[3] << 24);
        return VF_OK;
    case VF_ST_BF16:
        for (size_t i = 0; i < n; i++, p += 2)
            out[i] = bits_f32(((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16);
        return VF_OK;
    case VF_ST_F16:
        for (size_t i = 0; i < n; i++, p += 2)
            out[i] = half_f32((uint16_t)(p[0] | p[1] << 8));
        return VF_OK;
    case VF_ST_F64:
        for (size_t i = 0; i < n; i++, p += 8) {
            uint64_t u = le64(p);
            double d;
            memcpy(&d, &u, sizeof d);
            out[i] = (float)d; /* IEEE: out of range → ±inf, NaN stays NaN */
        }
        return VF_OK;
    default:
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "tensor '%s': dtype %s cannot be converted to f32; vaefarm reads "
                            "weights stored as F32, BF16, F16 or F64",
                            clean_name(&nb, name), st_dtypes[t->dtype].name);
    }
}
