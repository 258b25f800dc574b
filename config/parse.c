/*
 * config/parse.c: the YAML tree -> struct vf_film, driven by the option table (options.c).
 *
 * One walker handles every mapping (the top level, sections, list entries): each key is looked
 * up in the table by its full path ("chunks.length", "shots.list[].end"), its value converted
 * by type and checked against the row's bounds, and its position recorded. Errors stop at the
 * first problem and read
 *     FILE:LINE:COL: KEY.PATH: expected WHAT, found WHAT; WHAT TO DO
 * with the position of the offending node (the value, or the key for unknown and duplicate
 * keys, or the mapping for a missing key).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

#define AT(base, off, type) ((type *)((char *)(base) + (off)))
#define PATH_MAX_SHOWN 192 /* a key path in a message: "shots.list[12].reference" */

/* The array pointer of a LIST or STRMAP row, whose pointee type only the row knows. */
static void *get_ptr(const void *base, size_t off)
{
    void *p;
    memcpy(&p, (const char *)base + off, sizeof p);
    return p;
}

static void set_ptr(void *base, size_t off, void *p)
{
    memcpy((char *)base + off, &p, sizeof p);
}

struct parse_ctx {
    struct vf_film *film;
    struct vf_error *err;
};

/* "FILE:LINE:COL: PATH: what" (no "PATH: " when path is empty). `at` NULL means 1:1. */
static int perr(const struct parse_ctx *c, const struct cfg_node *at, const char *path,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int perr(const struct parse_ctx *c, const struct cfg_node *at, const char *path,
                const char *fmt, ...)
{
    char what[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return vf_error_set(c->err, VF_EINVAL, "%s:%d:%d: %s%s%s", c->film->path, at ? at->line : 1,
                        at ? at->col : 1, path && path[0] ? path : "", path && path[0] ? ": " : "",
                        what);
}

/* A key path for messages; cut short when absurdly long (the position still says where). */
static void path_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void path_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* An option's scope: "" for keys stored in struct vf_film, "shots.list[]" for the keys of a
 * shots.list entry, and so on. */
static bool in_scope(const struct cfg_option *opt, const char *scope)
{
    const char *last = NULL;
    for (const char *p = strstr(opt->name, "[]"); p; p = strstr(p + 2, "[]"))
        last = p;
    size_t n = last ? (size_t)(last - opt->name) + 2 : 0;
    return strlen(scope) == n && !strncmp(opt->name, scope, n);
}

static void record_pos(const struct parse_ctx *c, const struct cfg_option *opt, void *base,
                       bool in_item, const struct cfg_node *v)
{
    struct vf_config_pos p = {v->line, v->col};
    if (!in_item)
        c->film->key_pos[cfg_option_index(opt)] = p;
    else if (opt->pos_offset != CFG_NO_POS)
        *AT(base, opt->pos_offset, struct vf_config_pos) = p;
}

/* ---- scalars ------------------------------------------------------------------------------ */

static const char *example_hint(const struct cfg_option *opt, char *buf, size_t size)
{
    snprintf(buf, size, "; write it like '%s'", opt->example ? opt->example : opt->name);
    return buf;
}

static bool looks_int(const char *s, size_t len)
{
    size_t sign = len && (s[0] == '-' || s[0] == '+');
    return len > sign && strlen(s) == len && strspn(s + sign, "0123456789") == len - sign;
}

/* An integer value: a plain decimal scalar within the row's bounds. */
static int get_int(const struct parse_ctx *c, const struct cfg_option *opt,
                   const struct cfg_node *v, const char *path, int64_t *out)
{
    char exp[256], found[CFG_SHOW_MAX + 32], hint[160];
    cfg_expected(opt, exp, sizeof exp);
    if (opt->type == CFG_T_SIZE)
        snprintf(exp, sizeof exp, "a multiple of 8 from %" PRId64 " to %" PRId64, opt->imin,
                 opt->imax);
    example_hint(opt, hint, sizeof hint);
    cfg_describe(v, found, sizeof found);
    if (v->kind != CFG_NODE_SCALAR || v->type == CFG_NULL || v->type == CFG_BOOL)
        return perr(c, v, path, "expected %s, found %s%s", exp, found, hint);
    if (v->type == CFG_FLOAT)
        return perr(c, v, path, "expected %s, found %s: frames and sizes are whole numbers%s", exp,
                    found, hint);
    if (v->type == CFG_STRING) {
        if (v->quoted && looks_int(v->text, v->len))
            return perr(c, v, path, "expected %s, found %s; remove the quotes", exp, found);
        return perr(c, v, path, "expected %s, found %s%s", exp, found, hint);
    }
    errno = 0;
    char *end;
    long long x = strtoll(v->text, &end, 10);
    if (errno == ERANGE || *end)
        return perr(c, v, path, "expected %s, found %s, which does not fit in 64 bits (the "
                    "largest accepted is %" PRId64 ")", exp, found, opt->imax);
    if (x < opt->imin || (opt->type == CFG_T_SIZE && x % 8))
        return perr(c, v, path, "expected %s, found %lld%s", exp, x, hint);
    if (x > opt->imax)
        return perr(c, v, path, "expected %s, found %lld, more than the largest accepted (%" PRId64
                    ")", exp, x, opt->imax);
    *out = (int64_t)x;
    return 0;
}

static int get_number(const struct parse_ctx *c, const struct cfg_option *opt,
                      const struct cfg_node *v, const char *path, double *out)
{
    char exp[256], found[CFG_SHOW_MAX + 32], hint[160];
    cfg_expected(opt, exp, sizeof exp);
    example_hint(opt, hint, sizeof hint);
    cfg_describe(v, found, sizeof found);
    if (v->kind != CFG_NODE_SCALAR || (v->type != CFG_INT && v->type != CFG_FLOAT)) {
        if (v->kind == CFG_NODE_SCALAR && v->type == CFG_STRING && v->quoted) {
            char *end;
            (void)strtod(v->text, &end);
            if (v->len && end == v->text + v->len)
                return perr(c, v, path, "expected %s, found %s; remove the quotes", exp, found);
        }
        return perr(c, v, path, "expected %s, found %s%s", exp, found, hint);
    }
    double x = strtod(v->text, NULL);
    bool below = opt->flags & CFG_F_MIN_EXCLUSIVE ? !(x > opt->dmin) : !(x >= opt->dmin);
    if (!isfinite(x) || below || !(x <= opt->dmax))
        return perr(c, v, path, "expected %s, found %s%s", exp, found, hint);
    *out = x;
    return 0;
}

/* A text value: any non-empty scalar, as written. NULL in *out (and 0) for an empty value of
 * an optional key, which means "the default". */
static int get_text(const struct parse_ctx *c, const struct cfg_option *opt,
                    const struct cfg_node *v, const char *path, const char **out)
{
    char exp[256], found[CFG_SHOW_MAX + 32], hint[160];
    *out = NULL;
    cfg_expected(opt, exp, sizeof exp);
    example_hint(opt, hint, sizeof hint);
    cfg_describe(v, found, sizeof found);
    if (v->kind != CFG_NODE_SCALAR)
        return perr(c, v, path, "expected %s, found %s%s", exp, found, hint);
    if (v->type == CFG_NULL) {
        if (opt->flags & CFG_F_REQUIRED)
            return perr(c, v, path, "expected %s, found %s%s", exp, found, hint);
        return 0;
    }
    if (v->len == 0)
        return perr(c, v, path, "expected %s, found an empty string%s", exp, hint);
    if (strlen(v->text) != v->len)
        return perr(c, v, path, "expected %s, found text holding a NUL character%s", exp, hint);
    *out = v->text;
    return 0;
}

static int get_name(const struct parse_ctx *c, const struct cfg_option *opt,
                    const struct cfg_node *v, const char *path, int *index)
{
    char exp[256], found[CFG_SHOW_MAX + 32], hint[160] = "";
    size_t n = 0;
    *index = -1;
    if (v->kind == CFG_NODE_SCALAR && v->type == CFG_NULL && !(opt->flags & CFG_F_REQUIRED))
        return 0;
    for (; opt->names[n]; n++)
        if (v->kind == CFG_NODE_SCALAR && !strcmp(v->text, opt->names[n])) {
            *index = (int)n;
            return 0;
        }
    cfg_expected(opt, exp, sizeof exp);
    cfg_describe(v, found, sizeof found);
    const char *s = v->kind == CFG_NODE_SCALAR ? cfg_suggest(v->text, opt->names, n) : NULL;
    if (s)
        snprintf(hint, sizeof hint, " (did you mean '%s'?)", s);
    else
        example_hint(opt, hint, sizeof hint);
    return perr(c, v, path, "expected %s, found %s%s", exp, found, hint);
}

static int set_string(const struct parse_ctx *c, char **slot, const char *text, bool is_path)
{
    char *s = is_path && strcmp(c->film->dir, ".") ? vf_path_join(c->film->dir, text, c->err)
                                                  : vf_strdup(text, c->err);
    if (!s)
        return c->err ? c->err->code : VF_ENOMEM;
    free(*slot);
    *slot = s;
    return 0;
}

static int parse_scalar(const struct parse_ctx *c, const struct cfg_option *opt,
                        const struct cfg_node *v, const char *path, void *base)
{
    char found[CFG_SHOW_MAX + 32], hint[160];
    int64_t i64;
    const char *text;
    int idx, rc;

    switch (opt->type) {
    case CFG_T_VERSION:
        cfg_describe(v, found, sizeof found);
        if (v->kind != CFG_NODE_SCALAR || v->type != CFG_INT)
            return perr(c, v, path, "expected %d, found %s; write 'version: %d' as the first line",
                        VF_CONFIG_VERSION, found, VF_CONFIG_VERSION);
        if (strtoll(v->text, NULL, 10) != VF_CONFIG_VERSION)
            return perr(c, v, path,
                        "this is a version %s film.yaml, but this vaefarm reads version %d only; "
                        "use a vaefarm that reads version %s, or rewrite the file for version %d "
                        "(docs/CONFIG.md)",
                        cfg_quote(v->text, v->len, found, sizeof found), VF_CONFIG_VERSION,
                        found, VF_CONFIG_VERSION);
        *AT(base, opt->offset, int) = VF_CONFIG_VERSION;
        return 0;
    case CFG_T_INT:
    case CFG_T_NUMBER:
        /* an empty value (`key:`, `key: ~`) of an optional key: the default stays */
        if (v->kind == CFG_NODE_SCALAR && v->type == CFG_NULL && !(opt->flags & CFG_F_REQUIRED))
            return 0;
        if (opt->type == CFG_T_NUMBER)
            return get_number(c, opt, v, path, AT(base, opt->offset, double));
        if ((opt->flags & CFG_F_AUTO) && v->kind == CFG_NODE_SCALAR && v->type == CFG_STRING) {
            static const char *const autos[] = {"auto"};
            if (!strcmp(v->text, "auto")) {
                *AT(base, opt->offset, int64_t) = 0;
                return 0;
            }
            if (cfg_suggest(v->text, autos, 1))
                return perr(c, v, path, "expected %s, found %s (did you mean 'auto'?)",
                            cfg_expected(opt, hint, sizeof hint),
                            cfg_describe(v, found, sizeof found));
        }
        rc = get_int(c, opt, v, path, &i64);
        if (rc == 0)
            *AT(base, opt->offset, int64_t) = i64;
        return rc;
    case CFG_T_STRING:
    case CFG_T_PATH:
        rc = get_text(c, opt, v, path, &text);
        if (rc < 0 || !text)
            return rc;
        return set_string(c, AT(base, opt->offset, char *), text, opt->type == CFG_T_PATH);
    case CFG_T_ENUM:
        rc = get_name(c, opt, v, path, &idx);
        if (rc == 0 && idx >= 0)
            *AT(base, opt->offset, int) = opt->values[idx];
        return rc;
    case CFG_T_CHOICE:
        rc = get_name(c, opt, v, path, &idx);
        if (rc < 0 || idx < 0)
            return rc;
        return set_string(c, AT(base, opt->offset, char *), opt->names[idx], false);
    case CFG_T_SIZE: {
        int64_t hw[2];
        char exp[256], ipath[PATH_MAX_SHOWN + 8];
        if (v->kind == CFG_NODE_SCALAR && v->type == CFG_NULL)
            return 0;
        if (v->kind != CFG_NODE_SEQUENCE || v->n_kids != 2) {
            cfg_describe(v, found, sizeof found);
            if (v->kind == CFG_NODE_SEQUENCE)
                snprintf(found, sizeof found, "a list of %zu value%s", v->n_kids,
                         v->n_kids == 1 ? "" : "s");
            return perr(c, v, path, "expected %s, found %s%s", cfg_expected(opt, exp, sizeof exp),
                        found, example_hint(opt, hint, sizeof hint));
        }
        for (int k = 0; k < 2; k++) {
            path_fmt(ipath, sizeof ipath, "%s[%d] (%s)", path, k, k ? "width" : "height");
            rc = get_int(c, opt, v->kids[k], ipath, &hw[k]);
            if (rc < 0)
                return rc;
        }
        *AT(base, opt->offset, int) = (int)hw[0];
        *AT(base, opt->offset2, int) = (int)hw[1];
        return 0;
    }
    default:
        VF_ASSERT(!"not a scalar option");
    }
    return 0;
}

/* ---- mappings ----------------------------------------------------------------------------- */

static int parse_mapping(const struct parse_ctx *c, const struct cfg_node *map, const char *prefix,
                         const char *shown, void *base, bool in_item);

static void join_path(char *buf, size_t size, const char *shown, const char *key)
{
    char q[CFG_SHOW_MAX];
    cfg_quote(key, strlen(key), q, sizeof q);
    path_fmt(buf, size, "%s%s%s", shown, shown[0] ? "." : "", q);
}

static int unknown_key(const struct parse_ctx *c, const struct cfg_node *k, const char *prefix,
                       const char *path)
{
    const char *leaves[64], *key = k->text;
    size_t n = 0;
    char keys[512] = "";
    size_t o = 0;
    for (size_t i = 0; i < cfg_n_options && n < 64; i++) {
        if (!cfg_option_is_child(&cfg_options[i], prefix))
            continue;
        leaves[n++] = cfg_option_leaf(&cfg_options[i]);
        o += (size_t)snprintf(keys + o, o < sizeof keys ? sizeof keys - o : 0, "%s%s",
                              o ? ", " : "", leaves[n - 1]);
        if (o >= sizeof keys)
            o = sizeof keys - 1;
    }
    const char *s = strchr(key, '.') ? NULL : cfg_suggest(key, leaves, n);
    if (s)
        return perr(c, k, path, "unknown key (did you mean '%s'?)", s);
    /* A key that exists elsewhere: say where it belongs. */
    for (size_t i = 0; i < cfg_n_options; i++) {
        const struct cfg_option *opt = &cfg_options[i];
        if (strcmp(cfg_option_leaf(opt), key) && strcmp(opt->name, key))
            continue;
        char parent[128] = "";
        if (cfg_option_leaf(opt) != opt->name)
            snprintf(parent, sizeof parent, "%.*s", (int)(cfg_option_leaf(opt) - opt->name - 1),
                     opt->name);
        if (!strcmp(parent, prefix))
            continue;
        if (!parent[0])
            return perr(c, k, path, "unknown key here: '%s' is a top-level key; move it out of "
                        "'%s:' (no indentation)", key, prefix);
        if (!strcmp(opt->name, key))
            return perr(c, k, path, "unknown key: dotted keys are not read; nest it instead: "
                        "'%s:' then '%s: ...' indented below it",
                        parent, cfg_option_leaf(opt));
        size_t pl = strlen(parent);
        if (pl > 2 && !strcmp(parent + pl - 2, "[]"))
            return perr(c, k, path, "unknown key here: '%s' is a key of each %.*s entry",
                        key, (int)pl - 2, parent);
        return perr(c, k, path, "unknown key here (did you mean '%s'? it belongs under '%s:')",
                    opt->name, parent);
    }
    return perr(c, k, path, "unknown key; the keys accepted here are: %s", keys);
}

/* Per-entry rules of shots.list, checked as each entry is read so the message points at it. */
static int check_shot(const struct parse_ctx *c, const struct cfg_node *item, size_t i,
                      const char *shown)
{
    const struct vf_shot_spec *s = &c->film->shots[i];
    char path[PATH_MAX_SHOWN + 8];
    if (s->end <= s->start) {
        path_fmt(path, sizeof path, "%s.end", shown);
        return perr(c, cfg_tree_get(item, "end"), path,
                    "expected an integer > start (%" PRId64 "), found %" PRId64
                    "; end is exclusive: frames 0 to 239 are {start: 0, end: 240}",
                    s->start, s->end);
    }
    if (i == 0)
        return 0;
    const struct vf_shot_spec *p = &c->film->shots[i - 1];
    if (s->start < p->start)
        return perr(c, item, shown,
                    "starts at frame %" PRId64 ", before the previous entry (line %d, frames [%"
                    PRId64 ", %" PRId64 ")); list the shots in ascending order of frames",
                    s->start, p->pos.line, p->start, p->end);
    if (s->start < p->end)
        return perr(c, item, shown,
                    "frames [%" PRId64 ", %" PRId64 ") overlap the previous entry (line %d, frames "
                    "[%" PRId64 ", %" PRId64 ")); end is exclusive, so this shot may start at %"
                    PRId64 " at the earliest",
                    s->start, s->end, p->pos.line, p->start, p->end, p->end);
    return 0;
}

static int parse_list(const struct parse_ctx *c, const struct cfg_option *opt,
                      const struct cfg_node *v, const char *path, void *base, bool in_item)
{
    char exp[256], found[CFG_SHOW_MAX + 32], hint[160], item_prefix[128],
        ipath[PATH_MAX_SHOWN + 24];
    if (v->kind == CFG_NODE_SCALAR && v->type == CFG_NULL)
        return 0;
    cfg_expected(opt, exp, sizeof exp);
    if (v->kind != CFG_NODE_SEQUENCE)
        return perr(c, v, path, "expected %s, found %s%s", exp, cfg_describe(v, found, sizeof found),
                    example_hint(opt, hint, sizeof hint));
    if (v->n_kids == 0)
        return 0;
    size_t *count = AT(base, opt->offset2, size_t);
    char *items = vf_calloc(v->n_kids, opt->item_size, c->err);
    if (!items)
        return c->err ? c->err->code : VF_ENOMEM;
    set_ptr(base, opt->offset, items);
    snprintf(item_prefix, sizeof item_prefix, "%s[]", opt->name);
    for (size_t i = 0; i < v->n_kids; i++) {
        const struct cfg_node *item = v->kids[i];
        void *ib = items + i * opt->item_size;
        path_fmt(ipath, sizeof ipath, "%s[%zu]", path, i);
        *count = i + 1; /* from here on vf_config_destroy frees this entry */
        *AT(ib, opt->item_pos, struct vf_config_pos) = (struct vf_config_pos){item->line, item->col};
        if (item->kind != CFG_NODE_MAPPING)
            return perr(c, item, ipath, "expected an entry like {%s}, found %s", opt->example,
                        cfg_describe(item, found, sizeof found));
        int rc = parse_mapping(c, item, item_prefix, ipath, ib, true);
        if (rc < 0)
            return rc;
        if (!in_item && !strcmp(opt->name, "shots.list")) {
            rc = check_shot(c, item, i, ipath);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int parse_strmap(const struct parse_ctx *c, const struct cfg_option *opt,
                        const struct cfg_node *v, const char *path, void *base)
{
    char exp[256], found[CFG_SHOW_MAX + 32], hint[160], kpath[PATH_MAX_SHOWN + 48];
    if (v->kind == CFG_NODE_SCALAR && v->type == CFG_NULL)
        return 0;
    if (v->kind != CFG_NODE_MAPPING)
        return perr(c, v, path, "expected %s, found %s%s", cfg_expected(opt, exp, sizeof exp),
                    cfg_describe(v, found, sizeof found), example_hint(opt, hint, sizeof hint));
    size_t *count = AT(base, opt->offset2, size_t);
    size_t n = v->n_kids / 2;
    if (n == 0)
        return 0;
    struct vf_encode_option *arr = vf_calloc(n, sizeof *arr, c->err);
    if (!arr)
        return c->err ? c->err->code : VF_ENOMEM;
    set_ptr(base, opt->offset, arr);
    for (size_t i = 0; i < n; i++) {
        const struct cfg_node *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        if (k->kind != CFG_NODE_SCALAR || k->type == CFG_NULL || !k->len ||
            strlen(k->text) != k->len)
            return perr(c, k, path, "expected an option name as the key, found %s",
                        cfg_describe(k, found, sizeof found));
        join_path(kpath, sizeof kpath, path, k->text);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(v->kids[2 * j]->text, k->text))
                return perr(c, k, kpath, "duplicate key (first given at line %d); keep one",
                            v->kids[2 * j]->line);
        if (val->kind != CFG_NODE_SCALAR || val->type == CFG_NULL || strlen(val->text) != val->len)
            return perr(c, val, kpath, "expected a value (text or a number), found %s; write "
                        "it like 'crf: \"16\"'", cfg_describe(val, found, sizeof found));
        struct vf_encode_option *eo = &arr[i];
        *count = i + 1;
        eo->key = vf_strdup(k->text, c->err);
        eo->value = vf_strdup(val->text, c->err);
        if (!eo->key || !eo->value)
            return c->err ? c->err->code : VF_ENOMEM;
    }
    return 0;
}

static int parse_mapping(const struct parse_ctx *c, const struct cfg_node *map, const char *prefix,
                         const char *shown, void *base, bool in_item)
{
    char path[PATH_MAX_SHOWN], tname[160], found[CFG_SHOW_MAX + 32], exp[256], hint[160];
    int rc;
    for (size_t i = 0; i + 1 < map->n_kids; i += 2) {
        const struct cfg_node *k = map->kids[i], *v = map->kids[i + 1];
        if (k->kind != CFG_NODE_SCALAR || k->type == CFG_NULL || strlen(k->text) != k->len)
            return perr(c, k, shown, "expected a key name, found %s",
                        cfg_describe(k, found, sizeof found));
        join_path(path, sizeof path, shown, k->text);
        for (size_t j = 0; j < i; j += 2) {
            const struct cfg_node *pk = map->kids[j];
            if (!strcmp(pk->text, k->text))
                return perr(c, k, path, "duplicate key (first given at line %d, column %d); keep "
                            "one of the two", pk->line, pk->col);
        }
        const struct cfg_option *opt = NULL;
        if (k->len < 64 && !strchr(k->text, '.')) {
            snprintf(tname, sizeof tname, "%s%s%s", prefix, prefix[0] ? "." : "", k->text);
            opt = cfg_option_find(tname);
        }
        if (!opt)
            return unknown_key(c, k, prefix, path);

        switch (opt->type) {
        case CFG_T_SECTION:
            if (v->kind == CFG_NODE_SCALAR && v->type == CFG_NULL)
                break;
            if (v->kind != CFG_NODE_MAPPING)
                return perr(c, v, path, "expected %s, found %s%s",
                            cfg_expected(opt, exp, sizeof exp),
                            cfg_describe(v, found, sizeof found),
                            example_hint(opt, hint, sizeof hint));
            rc = parse_mapping(c, v, opt->name, path, base, in_item);
            if (rc < 0)
                return rc;
            break;
        case CFG_T_LIST:
            rc = parse_list(c, opt, v, path, base, in_item);
            if (rc < 0)
                return rc;
            break;
        case CFG_T_STRMAP:
            rc = parse_strmap(c, opt, v, path, base);
            if (rc < 0)
                return rc;
            break;
        default:
            rc = parse_scalar(c, opt, v, path, base);
            if (rc < 0)
                return rc;
            break;
        }
        if (!(v->kind == CFG_NODE_SCALAR && v->type == CFG_NULL))
            record_pos(c, opt, base, in_item, v);
    }

    /* Required keys of this mapping, reported at the mapping itself. */
    for (size_t i = 0; i < cfg_n_options; i++) {
        const struct cfg_option *opt = &cfg_options[i];
        if (!(opt->flags & CFG_F_REQUIRED) || !cfg_option_is_child(opt, prefix))
            continue;
        const char *leaf = cfg_option_leaf(opt);
        if (!cfg_tree_get(map, leaf))
            return perr(c, map, shown, "missing required key '%s' (%s); add a line like '%s'", leaf,
                        opt->help, opt->example);
    }
    return 0;
}

/* ---- defaults, cross-key rules ------------------------------------------------------------ */

static void apply_number_defaults(void *base, const char *scope)
{
    for (size_t i = 0; i < cfg_n_options; i++) {
        const struct cfg_option *opt = &cfg_options[i];
        if (!in_scope(opt, scope))
            continue;
        if (opt->type == CFG_T_INT)
            *AT(base, opt->offset, int64_t) = opt->idef;
        else if (opt->type == CFG_T_NUMBER)
            *AT(base, opt->offset, double) = opt->ddef;
        else if (opt->type == CFG_T_ENUM && opt->sdef)
            for (size_t k = 0; opt->names[k]; k++)
                if (!strcmp(opt->names[k], opt->sdef))
                    *AT(base, opt->offset, int) = opt->values[k];
    }
}

static int apply_string_defaults(const struct parse_ctx *c, void *base, const char *scope)
{
    for (size_t i = 0; i < cfg_n_options; i++) {
        const struct cfg_option *opt = &cfg_options[i];
        if (!in_scope(opt, scope) || !opt->sdef)
            continue;
        if ((opt->type == CFG_T_STRING || opt->type == CFG_T_CHOICE) &&
            !*AT(base, opt->offset, char *)) {
            int rc = set_string(c, AT(base, opt->offset, char *), opt->sdef, false);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static const struct cfg_node *node_at(const struct vf_film *film, const char *key,
                                      struct cfg_node *tmp)
{
    struct vf_config_pos p = vf_config_key_pos(film, key);
    tmp->line = p.line ? p.line : 1;
    tmp->col = p.col ? p.col : 1;
    return tmp;
}

static int finish(const struct parse_ctx *c)
{
    struct vf_film *f = c->film;
    struct cfg_node tmp = {0};
    int rc = apply_string_defaults(c, f, "");
    if (rc < 0)
        return rc;
    if (!f->work_dir) {
        size_t n = strlen(f->output) + sizeof ".vaefarm";
        f->work_dir = malloc(n);
        if (!f->work_dir)
            return vf_error_set(c->err, VF_ENOMEM, "out of memory");
        snprintf(f->work_dir, n, "%s.vaefarm", f->output);
    }
    f->shots_pos = vf_config_key_pos(f, "shots.list");

    if (f->n_shots && f->edl)
        return perr(c, node_at(f, "shots.edl", &tmp), "shots.edl",
                    "cannot be used together with shots.list (line %d): both define the shots; "
                    "keep one of the two",
                    f->shots_pos.line);
    for (size_t i = 0; i < f->n_references; i++)
        for (size_t j = 0; j < i; j++)
            if (f->references[i].frame == f->references[j].frame) {
                char path[64];
                snprintf(path, sizeof path, "references[%zu].frame", i);
                tmp.line = f->references[i].pos.line;
                tmp.col = f->references[i].pos.col;
                return perr(c, &tmp, path,
                            "frame %" PRId64 " already has a reference (references[%zu], line %d); "
                            "give each shot one reference",
                            f->references[i].frame, j, f->references[j].pos.line);
            }
    if (!strcmp(f->input, f->output))
        return perr(c, node_at(f, "output", &tmp), "output",
                    "is the input file (%s); vaefarm never writes its input: choose another "
                    "output path", f->input);
    if (!strcmp(f->input, f->work_dir))
        return perr(c, node_at(f, "work_dir", &tmp), "work_dir",
                    "is the input file (%s); choose another folder", f->input);
    return 0;
}

int cfg_parse_film(struct vf_film *film, const struct cfg_node *root, struct vf_error *err)
{
    struct parse_ctx c = {.film = film, .err = err};
    char found[CFG_SHOW_MAX + 32];
    const char *need = "a film.yaml needs at least 'version: 1', 'input: FILM' and "
                       "'output: FILE' (see config/examples/minimal.yaml)";
    if (!root)
        return perr(&c, NULL, NULL, "the file is empty; %s", need);
    if (root->kind == CFG_NODE_SCALAR && root->type == CFG_NULL)
        return perr(&c, root, NULL, "the document is empty; %s", need);
    if (root->kind != CFG_NODE_MAPPING)
        return perr(&c, root, NULL,
                    "expected a mapping of keys at the top level (version: 1, input: ..., "
                    "output: ...), found %s",
                    cfg_describe(root, found, sizeof found));

    apply_number_defaults(film, "");
    /* The version first: a file for another version fails on that, not on a key it renamed. */
    const struct cfg_node *v = cfg_tree_get(root, "version");
    if (v) {
        int rc = parse_scalar(&c, cfg_option_find("version"), v, "version", film);
        if (rc < 0)
            return rc;
    }
    int rc = parse_mapping(&c, root, "", "", film, false);
    if (rc < 0)
        return rc;
    return finish(&c);
}

void cfg_free_owned(void *base, const char *scope)
{
    char sub[128];
    for (size_t i = 0; i < cfg_n_options; i++) {
        const struct cfg_option *opt = &cfg_options[i];
        if (!in_scope(opt, scope))
            continue;
        switch (opt->type) {
        case CFG_T_STRING:
        case CFG_T_PATH:
        case CFG_T_CHOICE:
            free(*AT(base, opt->offset, char *));
            *AT(base, opt->offset, char *) = NULL;
            break;
        case CFG_T_LIST: {
            char *items = get_ptr(base, opt->offset);
            size_t n = *AT(base, opt->offset2, size_t);
            snprintf(sub, sizeof sub, "%s[]", opt->name);
            for (size_t k = 0; items && k < n; k++)
                cfg_free_owned(items + k * opt->item_size, sub);
            free(items);
            set_ptr(base, opt->offset, NULL);
            *AT(base, opt->offset2, size_t) = 0;
            break;
        }
        case CFG_T_STRMAP: {
            struct vf_encode_option *eo = get_ptr(base, opt->offset);
            size_t n = *AT(base, opt->offset2, size_t);
            for (size_t k = 0; eo && k < n; k++) {
                free(eo[k].key);
                free(eo[k].value);
            }
            free(eo);
            set_ptr(base, opt->offset, NULL);
            *AT(base, opt->offset2, size_t) = 0;
            break;
        }
        default:
            break;
        }
    }
}
