/*
 * config/internal.h: what the files of config/ share and nobody else sees.
 *
 *   tree.c     libyaml events -> a small tree of nodes with 1-based line:col, refusing what
 *              film.yaml never needs (anchors, aliases, several documents, deep nesting)
 *   options.c  the option table: every key once, with type, storage, default, bounds, help;
 *              suggestions ("did you mean") and vf_config_print_keys
 *   parse.c    walks the tree against the table: types, bounds, duplicates, unknown and
 *              missing keys, cross-key rules (shot order), path resolution
 *   check.c    vf_config_check_files: the files the film needs, all problems at once
 *   config.c   the public entry points: load, load_string, destroy
 *
 * Internal functions carry the prefix cfg_.
 */
#ifndef VF_CONFIG_INTERNAL_H
#define VF_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "config/config.h"

/* ---- the YAML tree (tree.c) --------------------------------------------------------------- */

enum cfg_node_kind { CFG_NODE_SCALAR, CFG_NODE_MAPPING, CFG_NODE_SEQUENCE };

/* A scalar's type, resolved with the YAML 1.2 core schema for plain scalars; a quoted or block
 * scalar is always a string (so `crf: "16"` is the string 16, `crf: 16` the integer 16). */
enum cfg_scalar_type { CFG_NULL, CFG_BOOL, CFG_INT, CFG_FLOAT, CFG_STRING };

struct cfg_node {
    enum cfg_node_kind kind;
    int line, col;               /* 1-based position of the node's first character */
    /* scalar */
    char *text;                  /* NUL-terminated (may hold NULs before len for odd input) */
    size_t len;
    enum cfg_scalar_type type;
    bool quoted;                 /* written in quotes or as a block scalar */
    /* mapping: kids[2i] is a key, kids[2i+1] its value; sequence: kids[i] */
    struct cfg_node **kids;
    size_t n_kids;
};

/* Deepest nesting accepted: film.yaml needs 4 levels (shots: list: - {start: }). */
#define CFG_MAX_DEPTH 32
/* Largest film.yaml read by vf_config_load. */
#define CFG_MAX_FILE_BYTES (16u << 20)

/* Parse `len` bytes of YAML into one document tree. `*root` is NULL when the stream holds no
 * document at all (an empty file or only comments). Errors are "name:line:col: ...". */
int cfg_tree_load(struct cfg_node **root, const char *yaml, size_t len, const char *name,
                  struct vf_error *err);
void cfg_tree_free(struct cfg_node *node);
/* The value of `key` in a mapping node, or NULL. */
const struct cfg_node *cfg_tree_get(const struct cfg_node *map, const char *key);
/* "a mapping", "the integer 12", "the string 'abc…'": for "found ..." in messages, truncated. */
const char *cfg_describe(const struct cfg_node *node, char *buf, size_t size);
/* Copy `text` into buf quoted and shortened to a readable length, control characters escaped. */
const char *cfg_quote(const char *text, size_t len, char *buf, size_t size);
/* Buffer size that cfg_describe/cfg_quote need for their longest output. */
#define CFG_SHOW_MAX 96

/* ---- the option table (options.c) --------------------------------------------------------- */

enum cfg_type {
    CFG_T_SECTION,  /* a mapping of further keys "<name>.<key>" */
    CFG_T_VERSION,  /* int, must be VF_CONFIG_VERSION */
    CFG_T_INT,      /* int64_t in [imin, imax] */
    CFG_T_NUMBER,   /* double in (dmin, dmax] (CFG_F_MIN_EXCLUSIVE) or [dmin, dmax] */
    CFG_T_STRING,   /* char *: any non-empty scalar, kept as written */
    CFG_T_PATH,     /* char *: a path, resolved against the YAML file's folder */
    CFG_T_ENUM,     /* an enum stored as int: names[i] <-> values[i] */
    CFG_T_CHOICE,   /* char *: one of names[] */
    CFG_T_SIZE,     /* [H, W] into two ints at offset (H) and offset2 (W) */
    CFG_T_LIST,     /* a sequence of mappings with keys "<name>[].<key>"; array at offset,
                     * size_t count at offset2, items of item_size bytes */
    CFG_T_STRMAP,   /* a mapping key -> scalar into struct vf_encode_option at offset, count
                     * at offset2 */
};

enum cfg_flags {
    CFG_F_REQUIRED = 1 << 0,      /* missing -> error */
    CFG_F_MIN_EXCLUSIVE = 1 << 1, /* NUMBER: value must be > dmin */
    CFG_F_MULTIPLE_OF_8 = 1 << 2, /* SIZE: each side a multiple of 8 */
    CFG_F_AUTO = 1 << 3,          /* INT: the word `auto` is also accepted, stored as 0 */
};

#define CFG_NO_POS ((size_t)-1)

struct cfg_option {
    const char *name;           /* full key path; list items are "<list>[].<key>" */
    enum cfg_type type;
    unsigned flags;             /* enum cfg_flags */
    size_t offset;              /* in struct vf_film, or in the list's item struct */
    size_t offset2;             /* SIZE: the width; LIST, STRMAP: the size_t count */
    size_t item_size;           /* LIST: bytes per item */
    size_t item_pos;            /* LIST: offset of the item's struct vf_config_pos */
    size_t pos_offset;          /* keys inside list items: where to record the value's position
                                 * (CFG_NO_POS: nowhere); top-level keys use film->key_pos */
    int64_t imin, imax, idef;   /* INT (and SIZE sides: imin, imax) */
    double dmin, dmax, ddef;    /* NUMBER */
    const char *sdef;           /* STRING/CHOICE/ENUM: the default's name, NULL: none */
    const char *const *names;   /* ENUM/CHOICE: the accepted values, NULL-terminated */
    const int *values;          /* ENUM: the value stored for names[i] */
    const char *type_doc;       /* for the key reference, when the type alone says too little */
    const char *def_doc;        /* for the key reference, when the default is computed */
    const char *example;        /* a valid line, shown in "what to do" */
    const char *help;
};

extern const struct cfg_option cfg_options[];
extern const size_t cfg_n_options;

/* The option named `name` exactly, or NULL. */
const struct cfg_option *cfg_option_find(const char *name);
/* Index of an option in cfg_options (for film->key_pos). */
size_t cfg_option_index(const struct cfg_option *opt);
/* True when `opt` is a key directly inside the mapping whose table prefix is `prefix` ("" for
 * the top level, "shots", "shots.list[]"). */
bool cfg_option_is_child(const struct cfg_option *opt, const char *prefix);
/* The key name relative to its parent ("length" for "chunks.length"). */
const char *cfg_option_leaf(const struct cfg_option *opt);
/* Optimal-string-alignment (Damerau) distance, case-insensitive, on at most 64 characters. */
int cfg_distance(const char *a, const char *b);
/* The candidate closest to `word` when it is close enough to be a likely typo, else NULL. */
const char *cfg_suggest(const char *word, const char *const *cands, size_t n);
/* "an integer >= 1", "one of f32, bf16, f16", ...: what the key expects, for messages. */
const char *cfg_expected(const struct cfg_option *opt, char *buf, size_t size);

/* ---- parsing (parse.c) --------------------------------------------------------------------- */

/* Fill `film` (already holding path, dir and key_pos) from the document tree `root` (NULL for an
 * empty stream), apply defaults and check cross-key rules. */
int cfg_parse_film(struct vf_film *film, const struct cfg_node *root, struct vf_error *err);
/* Free what the table says `base` owns (strings, lists, maps); used by vf_config_destroy. */
void cfg_free_owned(void *base, const char *prefix);

#endif /* VF_CONFIG_INTERNAL_H */
