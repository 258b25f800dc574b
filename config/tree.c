/*
 * config/tree.c: libyaml's event stream -> a tree of cfg_node with 1-based line:col.
 *
 * The tree is what parse.c walks against the option table. Building our own tree (instead of
 * libyaml's document API) keeps every node's position and lets us refuse, with a position,
 * what film.yaml never needs and would only make it ambiguous: anchors and aliases (shared
 * values hide which key a value belongs to), several documents in one stream, and nesting
 * deeper than CFG_MAX_DEPTH (which also bounds the recursion here).
 *
 * Plain scalars are typed with the YAML 1.2 core schema (so `off` and `yes` are strings, not
 * booleans as in YAML 1.1); quoted and block scalars are strings.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/internal.h"

struct tree_ctx {
    yaml_parser_t parser;
    const char *name;   /* the file, for messages */
    const char *yaml;   /* the whole input, to place reader errors */
    size_t len;
    struct vf_error *err;
};

#define TAG_PREFIX "tag:yaml.org,2002:"

/* ---- values shown in messages ------------------------------------------------------------- */

const char *cfg_quote(const char *text, size_t len, char *buf, size_t size)
{
    const size_t max_shown = 40; /* characters of the value shown before "..." */
    size_t o = 0, shown = 0, i = 0;
    VF_ASSERT(size >= 16);
    for (; i < len && shown < max_shown && o + 8 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c == '\t') {
            buf[o++] = '\\';
            buf[o++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
        if ((c & 0xc0) != 0x80)
            shown++;
    }
    /* Never cut a UTF-8 sequence: finish the one in progress. */
    while (i < len && ((unsigned char)text[i] & 0xc0) == 0x80 && o + 5 < size)
        buf[o++] = text[i++];
    if (i < len && o + 4 <= size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

const char *cfg_describe(const struct cfg_node *node, char *buf, size_t size)
{
    char q[CFG_SHOW_MAX];
    if (!node) {
        snprintf(buf, size, "nothing");
    } else if (node->kind == CFG_NODE_MAPPING) {
        snprintf(buf, size, "a mapping (key: value pairs)");
    } else if (node->kind == CFG_NODE_SEQUENCE) {
        snprintf(buf, size, "a list");
    } else {
        cfg_quote(node->text, node->len, q, sizeof q);
        switch (node->type) {
        case CFG_NULL: snprintf(buf, size, "an empty value"); break;
        case CFG_BOOL: snprintf(buf, size, "the boolean %s", q); break;
        case CFG_INT: snprintf(buf, size, "the integer %s", q); break;
        case CFG_FLOAT: snprintf(buf, size, "the number %s", q); break;
        case CFG_STRING:
            snprintf(buf, size, node->quoted ? "the quoted string \"%s\"" : "the string '%s'", q);
            break;
        }
    }
    return buf;
}

/* ---- scalar typing (YAML 1.2 core schema) ------------------------------------------------- */

static bool is_float_text(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!strcmp(s, ".inf") || !strcmp(s, ".Inf") || !strcmp(s, ".INF"))
        return true;
    bool digits = false;
    while (isdigit((unsigned char)*s)) {
        s++;
        digits = true;
    }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) {
            s++;
            digits = true;
        }
    }
    if (!digits)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!vf_str_is_digits(s))
            return false;
        return true;
    }
    return *s == '\0';
}

static enum cfg_scalar_type resolve_plain(const char *s, size_t len)
{
    if (strlen(s) != len)
        return CFG_STRING; /* holds a NUL: not a number of any kind */
    if (!strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
        !strcmp(s, "NULL"))
        return CFG_NULL;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") || !strcmp(s, "false") ||
        !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return CFG_BOOL;
    if (vf_str_is_digits(s + (*s == '+' || *s == '-')))
        return CFG_INT;
    if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN") || is_float_text(s))
        return CFG_FLOAT;
    return CFG_STRING;
}

/* ---- errors ------------------------------------------------------------------------------- */

static int at_error(struct tree_ctx *t, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int at_error(struct tree_ctx *t, yaml_mark_t m, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return vf_error_set(t->err, VF_EINVAL, "%s:%zu:%zu: %s", t->name, m.line + 1, m.column + 1,
                        what);
}

/* Line and column (1-based) of a byte offset, for reader errors that only give an offset. */
static void offset_to_pos(const struct tree_ctx *t, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < t->len; i++) {
        if (t->yaml[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)t->yaml[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

static int parser_error(struct tree_ctx *t)
{
    const yaml_parser_t *p = &t->parser;
    const char *problem = p->problem ? p->problem : "unknown problem";
    size_t line, col;
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return vf_error_set(t->err, VF_ENOMEM, "%s: out of memory while parsing the YAML", t->name);
    case YAML_READER_ERROR: {
        /* libyaml names the bad byte; point at the start of the character it belongs to. */
        size_t off = p->problem_offset < t->len ? p->problem_offset : t->len;
        if (p->problem && strstr(p->problem, "trailing"))
            while (off > 0 && ((unsigned char)t->yaml[off - 1] & 0x80)) {
                off--;
                if (((unsigned char)t->yaml[off] & 0xc0) == 0xc0)
                    break;
            }
        offset_to_pos(t, off, &line, &col);
        if (p->problem_value != -1)
            return vf_error_set(t->err, VF_EINVAL,
                                "%s:%zu:%zu: cannot read the file as text: %s (byte 0x%02x at "
                                "offset %zu); save film.yaml as UTF-8 text",
                                t->name, line, col, problem, (unsigned)p->problem_value & 0xffu,
                                p->problem_offset);
        return vf_error_set(t->err, VF_EINVAL,
                            "%s:%zu:%zu: cannot read the file as text: %s (offset %zu); save "
                            "film.yaml as UTF-8 text",
                            t->name, line, col, problem, p->problem_offset);
    }
    default:
        break;
    }
    /* Scanner and parser errors: libyaml's own words, its position, and the construct it was
     * in. A tab where indentation is expected is the most common cause: say so. */
    const yaml_mark_t *m = &p->problem_mark;
    const char *hint = "fix the YAML syntax there (indentation, quotes, brackets, ':' after keys)";
    if (m->index < t->len && t->yaml[m->index] == '\t')
        hint = "YAML does not allow tabs for indentation: use spaces";
    if (p->context)
        return vf_error_set(t->err, VF_EINVAL,
                            "%s:%zu:%zu: malformed YAML: %s (%s started at line %zu, column "
                            "%zu); %s",
                            t->name, m->line + 1, m->column + 1, problem, p->context,
                            p->context_mark.line + 1, p->context_mark.column + 1, hint);
    return vf_error_set(t->err, VF_EINVAL, "%s:%zu:%zu: malformed YAML: %s; %s", t->name,
                        m->line + 1, m->column + 1, problem, hint);
}

static int next_event(struct tree_ctx *t, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&t->parser, ev))
        return parser_error(t);
    return 0;
}

/* ---- building ----------------------------------------------------------------------------- */

void cfg_tree_free(struct cfg_node *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n_kids; i++)
        cfg_tree_free(node->kids[i]);
    free(node->kids);
    free(node->text);
    free(node);
}

static int add_kid(struct cfg_node *parent, struct cfg_node *kid, size_t *cap, struct vf_error *err)
{
    if (parent->n_kids == *cap) {
        size_t ncap = *cap ? 2 * *cap : 8;
        struct cfg_node **k = realloc(parent->kids, ncap * sizeof *k);
        if (!k) {
            cfg_tree_free(kid);
            return vf_error_set(err, VF_ENOMEM, "out of memory reading film.yaml");
        }
        parent->kids = k;
        *cap = ncap;
    }
    parent->kids[parent->n_kids++] = kid;
    return 0;
}

/* Refuse a tag we do not understand; a core-schema tag on a scalar sets its type. */
static int check_tag(struct tree_ctx *t, const yaml_event_t *ev, const char *tag,
                     struct cfg_node *node)
{
    if (!tag || !strcmp(tag, "!"))
        return 0;
    if (!strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX))) {
        const char *k = tag + strlen(TAG_PREFIX);
        if (node->kind == CFG_NODE_SCALAR) {
            if (!strcmp(k, "str")) {
                node->type = CFG_STRING;
                return 0;
            }
            if (!strcmp(k, "int") || !strcmp(k, "float") || !strcmp(k, "bool") || !strcmp(k, "null")) {
                node->type = resolve_plain(node->text, node->len);
                return 0;
            }
        } else if (!strcmp(k, node->kind == CFG_NODE_MAPPING ? "map" : "seq")) {
            return 0;
        }
    }
    char q[CFG_SHOW_MAX];
    return at_error(t, ev->start_mark,
                    "unsupported YAML tag '%s'; film.yaml needs no tags: remove it",
                    cfg_quote(tag, strlen(tag), q, sizeof q));
}

/* Build the node that starts with `ev` (consumed: deleted on every path). */
static int build_node(struct tree_ctx *t, yaml_event_t *ev, int depth, struct cfg_node **out)
{
    char q[CFG_SHOW_MAX];
    int rc = 0;
    struct cfg_node *node = NULL;
    const char *anchor = NULL, *tag = NULL;
    *out = NULL;

    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        rc = at_error(t, ev->start_mark,
                      "YAML aliases (*%s) are not supported in film.yaml; write the value out "
                      "in full",
                      cfg_quote((const char *)ev->data.alias.anchor,
                                strlen((const char *)ev->data.alias.anchor), q, sizeof q));
        goto out;
    case YAML_SCALAR_EVENT:
        anchor = (const char *)ev->data.scalar.anchor;
        tag = (const char *)ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = (const char *)ev->data.sequence_start.anchor;
        tag = (const char *)ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = (const char *)ev->data.mapping_start.anchor;
        tag = (const char *)ev->data.mapping_start.tag;
        break;
    default:
        /* libyaml only starts a node with the events above. */
        rc = at_error(t, ev->start_mark, "unexpected YAML event %d", (int)ev->type);
        goto out;
    }
    if (anchor) {
        rc = at_error(t, ev->start_mark,
                      "YAML anchors (&%s) are not supported in film.yaml; write each value out "
                      "in full",
                      cfg_quote(anchor, strlen(anchor), q, sizeof q));
        goto out;
    }
    if (depth > CFG_MAX_DEPTH) {
        rc = at_error(t, ev->start_mark,
                      "values nested more than %d levels deep; film.yaml needs at most 4",
                      CFG_MAX_DEPTH);
        goto out;
    }

    node = calloc(1, sizeof *node);
    if (!node) {
        rc = vf_error_set(t->err, VF_ENOMEM, "out of memory reading film.yaml");
        goto out;
    }
    node->line = (int)ev->start_mark.line + 1;
    node->col = (int)ev->start_mark.column + 1;

    if (ev->type == YAML_SCALAR_EVENT) {
        node->kind = CFG_NODE_SCALAR;
        node->len = ev->data.scalar.length;
        node->text = malloc(node->len + 1);
        if (!node->text) {
            rc = vf_error_set(t->err, VF_ENOMEM, "out of memory reading film.yaml");
            goto out;
        }
        memcpy(node->text, ev->data.scalar.value, node->len);
        node->text[node->len] = '\0';
        node->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        node->type = node->quoted ? CFG_STRING : resolve_plain(node->text, node->len);
        rc = check_tag(t, ev, tag, node);
        goto out;
    }

    node->kind = ev->type == YAML_MAPPING_START_EVENT ? CFG_NODE_MAPPING : CFG_NODE_SEQUENCE;
    rc = check_tag(t, ev, tag, node);
    if (rc < 0)
        goto out;
    yaml_event_type_t end = ev->type == YAML_MAPPING_START_EVENT ? YAML_MAPPING_END_EVENT
                                                                 : YAML_SEQUENCE_END_EVENT;
    yaml_event_delete(ev);
    size_t cap = 0;
    for (;;) {
        rc = next_event(t, ev);
        if (rc < 0)
            goto out_no_event; /* a failed parse leaves nothing to delete */
        if (ev->type == end)
            break;
        struct cfg_node *kid;
        rc = build_node(t, ev, depth + 1, &kid);
        if (rc < 0)
            goto out_no_event;
        rc = add_kid(node, kid, &cap, t->err);
        if (rc < 0)
            goto out_no_event;
    }
out:
    yaml_event_delete(ev);
out_no_event:
    if (rc < 0) {
        cfg_tree_free(node);
        return rc;
    }
    *out = node;
    return 0;
}

int cfg_tree_load(struct cfg_node **root, const char *yaml, size_t len, const char *name,
                  struct vf_error *err)
{
    struct tree_ctx t = {.name = name, .yaml = yaml, .len = len, .err = err};
    yaml_event_t ev;
    struct cfg_node *doc = NULL;
    int rc;

    *root = NULL;
    if (!yaml_parser_initialize(&t.parser))
        return vf_error_set(err, VF_ENOMEM, "%s: out of memory starting the YAML parser", name);
    yaml_parser_set_input_string(&t.parser, (const unsigned char *)yaml, len);

    rc = next_event(&t, &ev); /* STREAM-START */
    if (rc < 0)
        goto out;
    yaml_event_delete(&ev);
    rc = next_event(&t, &ev); /* DOCUMENT-START, or STREAM-END for an empty stream */
    if (rc < 0)
        goto out;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        goto out; /* no document: the caller says "empty" */
    }
    yaml_event_delete(&ev);
    rc = next_event(&t, &ev); /* the root node */
    if (rc < 0)
        goto out;
    rc = build_node(&t, &ev, 1, &doc);
    if (rc < 0)
        goto out;
    rc = next_event(&t, &ev); /* DOCUMENT-END */
    if (rc < 0)
        goto out;
    yaml_event_delete(&ev);
    rc = next_event(&t, &ev); /* STREAM-END, or a second document */
    if (rc < 0)
        goto out;
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        rc = at_error(&t, ev.start_mark,
                      "a second YAML document starts here; film.yaml holds exactly one: "
                      "remove the '---' line and merge the keys into the first document");
        yaml_event_delete(&ev);
        goto out;
    }
    yaml_event_delete(&ev);
out:
    yaml_parser_delete(&t.parser);
    if (rc < 0) {
        cfg_tree_free(doc);
        return rc;
    }
    *root = doc;
    return 0;
}

const struct cfg_node *cfg_tree_get(const struct cfg_node *map, const char *key)
{
    if (!map || map->kind != CFG_NODE_MAPPING)
        return NULL;
    for (size_t i = 0; i + 1 < map->n_kids; i += 2) {
        const struct cfg_node *k = map->kids[i];
        if (k->kind == CFG_NODE_SCALAR && !strcmp(k->text, key))
            return map->kids[i + 1];
    }
    return NULL;
}
