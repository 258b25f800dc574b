/*
 * tests/test_config.c: film.yaml v1 (config/config.h, docs/CONFIG.md).
 *
 * What a colorist can write: defaults for every key left out, every key of DESIGN.md §8 parsed,
 * relative paths resolved against the file's folder, the shipped examples loading. What a
 * colorist gets wrong: a table of bad files, each asserting the exact line:col the message
 * points at and words it must contain (the key path, what was expected, what to do). And the
 * file checks, on real files in a temporary folder (mkdtemp).
 *
 * Run it under VF_SANITIZE=ON too: every error path must free what it built.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/wait.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static int load(struct vf_film **f, const char *yaml, struct vf_error *err)
{
    vf_error_clear(err);
    return vf_config_load_string(f, yaml, strlen(yaml), "f.yaml", "/films/reel1", err);
}

static struct vf_film *load_ok(const char *yaml)
{
    struct vf_film *f = NULL;
    struct vf_error err = {0};
    int rc = load(&f, yaml, &err);
    if (rc != 0)
        fail_msg("expected this film.yaml to load, got %d: %s\n---\n%s", rc, err.msg, yaml);
    assert_non_null(f);
    return f;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *cat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s%s", a, b);
    return s;
}

#define MIN "version: 1\ninput: in.mkv\noutput: out.mkv\n"

/* ---- good input --------------------------------------------------------------------------- */

static void config_minimal_gets_every_default(void **state)
{
    (void)state;
    struct vf_film *f = load_ok(MIN);
    assert_int_equal(f->version, 1);
    assert_string_equal(f->path, "f.yaml");
    assert_string_equal(f->dir, "/films/reel1");
    assert_string_equal(f->input, "/films/reel1/in.mkv");
    assert_string_equal(f->output, "/films/reel1/out.mkv");
    assert_string_equal(f->work_dir, "/films/reel1/out.mkv.vaefarm");
    assert_null(f->model);
    assert_int_equal(f->inference_h, 0);
    assert_int_equal(f->inference_w, 0);
    assert_int_equal(f->precision, VF_PRECISION_DEFAULT);
    assert_int_equal(f->detect, VF_DETECT_AUTO);
    assert_true(f->threshold == 0.3);
    assert_int_equal(f->min_shot_length, 12);
    assert_null(f->edl);
    assert_null(f->shots);
    assert_int_equal(f->n_shots, 0);
    assert_int_equal(f->shots_pos.line, 0);
    assert_null(f->references);
    assert_int_equal(f->n_references, 0);
    assert_null(f->default_reference);
    assert_int_equal(f->chunk_length, 240);
    assert_int_equal(f->warmup, 16);
    assert_int_equal(f->ranks, 0); /* absent: the coordinator decides (docs/PLAN.md) */
    assert_string_equal(f->codec, "ffv1");
    assert_null(f->pix_fmt);
    assert_null(f->encode_options);
    assert_int_equal(f->n_encode_options, 0);
    assert_int_equal(f->audio, VF_AUDIO_COPY);
    assert_int_equal(f->passthrough, VF_PASSTHROUGH_AUTO);
    /* Defaults were not written anywhere; given keys were. */
    assert_int_equal(vf_config_key_pos(f, "chunks.length").line, 0);
    assert_int_equal(vf_config_key_pos(f, "input").line, 2);
    assert_int_equal(vf_config_key_pos(f, "input").col, 8);
    assert_int_equal(vf_config_key_pos(f, "no.such.key").line, 0);
    vf_config_destroy(&f);
    assert_null(f);
}

static const char full_yaml[] =
    "# every key, none at its default\n"
    "version: 1\n"
    "input: reels/reel1.mkv\n"
    "output: /abs/out/reel1_color.mov\n"
    "model: models/full.safetensors\n"
    "inference_size: [216, 384]\n"
    "precision: f16\n"
    "shots:\n"
    "  detect: off\n"
    "  threshold: 0.45\n"
    "  min_length: 3\n"
    "  list:\n"
    "    - { start: 0,   end: 240, reference: refs/street.png }\n"
    "    - { start: 240, end: 611 }\n"
    "    - start: 611\n"
    "      end: 700\n"
    "      reference: /abs/refs/sea.png\n"
    "references:\n"
    "  - { frame: 300, image: refs/room.png }\n"
    "  - { frame: 0, image: 'refs/a b.png' }\n"
    "default_reference: refs/any.png\n"
    "chunks:\n"
    "  length: 100\n"
    "  warmup: 0\n"
    "encode:\n"
    "  codec: prores_ks\n"
    "  pix_fmt: yuv422p10le\n"
    "  options: { profile: 3, vendor: apl0, crf: \"16\", bits: 1.5e3 }\n"
    "audio: none\n"
    "work_dir: work\n"
    "ranks: 64\n"
    "reference_passthrough: off\n";

static void config_full_parses_every_key(void **state)
{
    (void)state;
    struct vf_film *f = load_ok(full_yaml);
    assert_string_equal(f->input, "/films/reel1/reels/reel1.mkv");
    assert_string_equal(f->output, "/abs/out/reel1_color.mov");
    assert_string_equal(f->model, "/films/reel1/models/full.safetensors");
    assert_int_equal(f->inference_h, 216);
    assert_int_equal(f->inference_w, 384);
    assert_int_equal(f->precision, VF_PRECISION_F16);
    assert_string_equal(vf_precision_name(f->precision), "f16");
    assert_int_equal(f->detect, VF_DETECT_OFF); /* YAML 1.2: `off` is a string, not false */
    assert_true(f->threshold == 0.45);
    assert_int_equal(f->min_shot_length, 3);

    assert_int_equal(f->n_shots, 3);
    assert_int_equal(f->shots_pos.line, 13);
    assert_int_equal(f->shots_pos.col, 5);
    assert_int_equal(f->shots[0].start, 0);
    assert_int_equal(f->shots[0].end, 240);
    assert_string_equal(f->shots[0].reference, "/films/reel1/refs/street.png");
    assert_int_equal(f->shots[0].pos.line, 13);
    assert_int_equal(f->shots[0].pos.col, 7);
    assert_int_equal(f->shots[0].reference_pos.line, 13);
    assert_int_equal(f->shots[0].reference_pos.col, 42);
    assert_int_equal(f->shots[1].start, 240);
    assert_int_equal(f->shots[1].end, 611);
    assert_null(f->shots[1].reference);
    assert_int_equal(f->shots[1].reference_pos.line, 0);
    assert_int_equal(f->shots[2].start, 611);
    assert_int_equal(f->shots[2].end, 700);
    assert_string_equal(f->shots[2].reference, "/abs/refs/sea.png");
    assert_int_equal(f->shots[2].pos.line, 15);
    assert_int_equal(f->shots[2].pos.col, 7);

    assert_int_equal(f->n_references, 2);
    assert_int_equal(f->references[0].frame, 300);
    assert_string_equal(f->references[0].image, "/films/reel1/refs/room.png");
    assert_int_equal(f->references[0].pos.line, 19);
    assert_int_equal(f->references[0].image_pos.line, 19);
    assert_int_equal(f->references[0].image_pos.col, 26);
    assert_int_equal(f->references[1].frame, 0);
    assert_string_equal(f->references[1].image, "/films/reel1/refs/a b.png");
    assert_string_equal(f->default_reference, "/films/reel1/refs/any.png");

    assert_int_equal(f->chunk_length, 100);
    assert_int_equal(f->warmup, 0);
    assert_string_equal(f->codec, "prores_ks");
    assert_string_equal(f->pix_fmt, "yuv422p10le");
    assert_int_equal(f->n_encode_options, 4);
    assert_string_equal(f->encode_options[0].key, "profile");
    assert_string_equal(f->encode_options[0].value, "3");
    assert_string_equal(f->encode_options[1].key, "vendor");
    assert_string_equal(f->encode_options[1].value, "apl0");
    assert_string_equal(f->encode_options[2].key, "crf");
    assert_string_equal(f->encode_options[2].value, "16");
    assert_string_equal(f->encode_options[3].value, "1.5e3"); /* kept as written */
    assert_int_equal(f->audio, VF_AUDIO_NONE);
    assert_string_equal(f->work_dir, "/films/reel1/work");
    assert_int_equal(f->ranks, 64);
    assert_int_equal(f->passthrough, VF_PASSTHROUGH_OFF); /* YAML 1.2: `off` is a string */
    assert_int_equal(vf_config_key_pos(f, "ranks").line, 31);
    assert_int_equal(vf_config_key_pos(f, "chunks.length").line, 23);
    assert_int_equal(vf_config_key_pos(f, "chunks.length").col, 11);
    vf_config_destroy(&f);
}

/* chunks.length: auto (stored as VF_CHUNK_AUTO) and ranks: (docs/PLAN.md "Auto chunking"). */
static void config_chunks_auto_and_ranks(void **state)
{
    (void)state;
    struct vf_film *f = load_ok(MIN "ranks: 1024\nchunks:\n  length: auto\n  warmup: 8\n");
    assert_int_equal(f->chunk_length, VF_CHUNK_AUTO);
    assert_int_equal(f->warmup, 8);
    assert_int_equal(f->ranks, 1024);
    assert_int_equal(vf_config_key_pos(f, "chunks.length").line, 6);
    assert_int_equal(vf_config_key_pos(f, "chunks.length").col, 11);
    assert_int_equal(vf_config_key_pos(f, "ranks").line, 4);
    vf_config_destroy(&f);
    f = load_ok(MIN "chunks: {length: 'auto'}\n"); /* quoted: the same word */
    assert_int_equal(f->chunk_length, VF_CHUNK_AUTO);
    assert_int_equal(f->ranks, 0);
    vf_config_destroy(&f);
    f = load_ok(MIN "ranks: 1\nchunks: {length: 1}\n"); /* ranks with a fixed length: kept, unused */
    assert_int_equal(f->chunk_length, 1);
    assert_int_equal(f->ranks, 1);
    vf_config_destroy(&f);
}

static void config_accepts_flow_style_nulls_and_quotes(void **state)
{
    (void)state;
    /* An empty optional key means its default; empty sections are fine; numbers may be ints
     * where a float is expected; comments and a leading '---' are fine. */
    struct vf_film *f = load_ok("---\n{version: 1, input: \"in.mkv\", output: 'o.mkv',\n"
                                " model: , shots: {threshold: 1, list: []}, chunks: ~,\n"
                                " encode: {options: {}}, precision: bf16}  # flow\n...\n");
    assert_null(f->model);
    assert_true(f->threshold == 1.0);
    assert_int_equal(f->n_shots, 0);
    assert_null(f->shots);
    assert_int_equal(f->chunk_length, 240);
    assert_int_equal(f->n_encode_options, 0);
    assert_int_equal(f->precision, VF_PRECISION_BF16);
    vf_config_destroy(&f);
    /* so for integers and numbers: each keeps its default (they were refused as "an empty
     * value" before session 38), while a required one is still an error (below) */
    f = load_ok(MIN "ranks:\nchunks: {length: ~, warmup: }\nshots:\n  threshold: ~\n  min_length:\n");
    assert_int_equal(f->ranks, 0);
    assert_int_equal(f->chunk_length, 240);
    assert_int_equal(f->warmup, 16);
    assert_true(f->threshold == 0.3);
    assert_int_equal(f->min_shot_length, 12);
    vf_config_destroy(&f);
}

static void config_relative_paths_follow_the_yaml_folder(void **state)
{
    (void)state;
    struct vf_error err = {0};
    struct vf_film *f = NULL;
    /* Without a folder (or "."), relative paths stay relative to the current directory. */
    assert_int_equal(vf_config_load_string(&f, MIN, strlen(MIN), "x.yaml", NULL, &err), 0);
    assert_string_equal(f->input, "in.mkv");
    assert_string_equal(f->dir, ".");
    vf_config_destroy(&f);
    assert_int_equal(vf_config_load_string(&f, MIN, strlen(MIN), "x.yaml", "rel/dir/", &err), 0);
    assert_string_equal(f->input, "rel/dir/in.mkv");
    vf_config_destroy(&f);

    /* From a file: its folder. */
    char tmpl[] = "/tmp/vf_config_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char *path = cat(tmpl, "/film.yaml");
    write_file(path, MIN "references: [{frame: 0, image: ../r.png}]\nwork_dir: /w\n");
    assert_int_equal(vf_config_load(&f, path, &err), 0);
    char *want = cat(tmpl, "/in.mkv");
    assert_string_equal(f->input, want);
    free(want);
    want = cat(tmpl, "/../r.png");
    assert_string_equal(f->references[0].image, want);
    free(want);
    assert_string_equal(f->work_dir, "/w");
    assert_string_equal(f->path, path);
    assert_string_equal(f->dir, tmpl);
    vf_config_destroy(&f);
    unlink(path);
    rmdir(tmpl);
    free(path);
}

/* ---- bad input ---------------------------------------------------------------------------- */

struct bad_case {
    const char *what;
    const char *yaml;
    int line, col;      /* where the message must point */
    const char *want;   /* substrings the message must hold */
    const char *want2;
};

static const struct bad_case bad_cases[] = {
    /* the stream */
    {"empty file", "", 1, 1, "empty", "version: 1"},
    {"only comments", "# nothing\n\n", 1, 1, "empty", NULL},
    {"empty document", "---\n", 2, 1, "document is empty", NULL},
    {"not a mapping", "- a\n- b\n", 1, 1, "expected a mapping of keys at the top level", "a list"},
    {"a scalar document", "hello\n", 1, 1, "top level", "the string 'hello'"},
    {"malformed flow", "version: 1\ninput: [a, b\n", 3, 1, "malformed YAML", "flow sequence"},
    {"bad indentation", MIN "shots:\n  detect: auto\n threshold: 0.3\n", 6, 2, "malformed YAML",
     NULL},
    {"tab indentation", MIN "chunks:\n\tlength: 5\n", 5, 1, "malformed YAML", "tabs"},
    {"unclosed quote", MIN "model: \"abc\n", 5, 1, "malformed YAML", "quoted scalar"},
    {"invalid UTF-8", MIN "model: \"a\xc3(\"\n", 4, 10, "UTF-8", NULL},
    {"two documents", MIN "---\nversion: 1\n", 4, 1, "second YAML document", "'---'"},
    {"anchor", MIN "model: &m a.st\n", 4, 8, "anchors", "write each value out"},
    {"alias", "version: 1\ninput: a\noutput: *o\n", 3, 9, "aliases", NULL},
    {"unknown tag", MIN "model: !weights a\n", 4, 8, "unsupported YAML tag", "!weights"},
    {"too deep", MIN "encode: {options: {a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]"
                 "]]]]]]]]]]]]]]]]]]]}}\n", 4, 52, "nested more than 32 levels", NULL},
    /* the version */
    {"missing version", "input: a\noutput: b\n", 1, 1, "missing required key 'version'", "version: 1"},
    {"version 2", "input: a\noutput: b\nversion: 2\n", 3, 10, "version 2 film.yaml",
     "reads version 1"},
    {"version 2 wins over unknown keys", "future_key: 1\nversion: 2\n", 2, 10, "version 2", NULL},
    {"version as text", "version: one\ninput: a\noutput: b\n", 1, 10, "version: expected 1",
     "the string 'one'"},
    {"version 1.0", "version: 1.0\ninput: a\noutput: b\n", 1, 10, "expected 1", "1.0"},
    /* required keys, duplicates, unknown keys */
    {"missing input", "version: 1\noutput: b.mkv\n", 1, 1, "missing required key 'input'",
     "input: reels/reel1.mkv"},
    {"missing output", "version: 1\ninput: a.mkv\n", 1, 1, "missing required key 'output'", NULL},
    {"empty input", "version: 1\ninput:\noutput: b\n", 2, 7, "input: expected a file path",
     "an empty value"},
    {"empty shot start", MIN "shots:\n  list:\n    - {start: , end: 5}\n", 6, 15,
     "shots.list[0].start: expected", "an empty value"},
    {"empty quoted input", "version: 1\ninput: ''\noutput: b\n", 2, 8, "input: expected a file path",
     "empty string"},
    {"duplicate key", MIN "output: again.mkv\n", 4, 1, "output: duplicate key",
     "first given at line 3"},
    {"duplicate nested key", MIN "chunks:\n  length: 5\n  length: 6\n", 6, 3,
     "chunks.length: duplicate key", NULL},
    {"unknown key typo", MIN "chunks:\n  lenght: 10\n", 5, 3, "chunks.lenght: unknown key",
     "did you mean 'length'?"},
    {"unknown top-level typo", MIN "refrences: []\n", 4, 1, "did you mean 'references'?", NULL},
    {"unknown key prefix", MIN "work: x\n", 4, 1, "did you mean 'work_dir'?", NULL},
    {"key at the wrong level", MIN "threshold: 0.5\n", 4, 1, "did you mean 'shots.threshold'?",
     "under 'shots:'"},
    {"top-level key nested", MIN "shots:\n  references: []\n", 5, 3, "top-level key", NULL},
    {"dotted key", MIN "chunks.length: 5\n", 4, 1, "dotted keys are not read", "'chunks:'"},
    {"unknown key, no suggestion", MIN "colour_me: yes\n", 4, 1, "colour_me: unknown key",
     "version, input, output"},
    {"unknown key in a list entry", MIN "shots: {list: [{start: 0, end: 5, refrence: a}]}\n", 4,
     35, "shots.list[0].refrence: unknown key", "did you mean 'reference'?"},
    {"non-scalar key", MIN "[a]: 1\n", 4, 1, "expected a key name", "a list"},
    {"long unknown key truncated", MIN
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: 1\n",
     4, 1, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...: unknown key", NULL},
    /* types */
    {"string for integer", MIN "chunks: {length: abc}\n", 4, 18, "chunks.length: expected an integer >= 1",
     "the string 'abc'"},
    {"quoted integer", MIN "chunks: {length: \"240\"}\n", 4, 18, "quoted string \"240\"",
     "remove the quotes"},
    {"float for integer", MIN "chunks:\n  warmup: 1.5\n", 5, 11, "chunks.warmup: expected an integer",
     "the number 1.5"},
    {"bool for integer", MIN "chunks: {length: true}\n", 4, 18, "the boolean true", NULL},
    {"mapping for integer", MIN "chunks: {length: {a: 1}}\n", 4, 18, "expected an integer",
     "a mapping"},
    {"mapping for a path", MIN "model: {a: 1}\n", 4, 8, "model: expected a file path", "a mapping"},
    {"list for a path", MIN "default_reference: [a, b]\n", 4, 20, "default_reference: expected a file path",
     "a list"},
    {"scalar for a section", MIN "shots: auto\n", 4, 8, "shots: expected a mapping",
     "detect, threshold, min_length, edl, list"},
    {"scalar for a list", MIN "references: refs/a.png\n", 4, 13,
     "references: expected a list of {frame, image}", NULL},
    {"scalar list entry", MIN "references: [refs/a.png]\n", 4, 14, "references[0]: expected an entry",
     NULL},
    {"negative integer", MIN "chunks: {warmup: -1}\n", 4, 18, "expected an integer >= 0", "found -1"},
    {"zero chunk length", MIN "chunks: {length: 0}\n", 4, 18, "expected an integer >= 1 or auto",
     "found 0"},
    {"chunk length typo of auto", MIN "chunks: {length: atuo}\n", 4, 18,
     "chunks.length: expected an integer >= 1 or auto", "did you mean 'auto'?"},
    {"chunk length word", MIN "chunks: {length: long}\n", 4, 18,
     "chunks.length: expected an integer >= 1 or auto", "the string 'long'"},
    {"auto for warmup", MIN "chunks: {warmup: auto}\n", 4, 18,
     "chunks.warmup: expected an integer >= 0, found the string 'auto'", NULL},
    {"zero ranks", MIN "ranks: 0\n", 4, 8, "ranks: expected an integer >= 1", "found 0"},
    {"negative ranks", MIN "ranks: -4\n", 4, 8, "ranks: expected an integer >= 1", "found -4"},
    {"auto ranks", MIN "ranks: auto\n", 4, 8, "ranks: expected an integer >= 1", "'auto'"},
    {"fractional ranks", MIN "ranks: 1.5\n", 4, 8, "ranks: expected an integer", "1.5"},
    {"too many ranks", MIN "ranks: 2000000\n", 4, 8, "more than the largest accepted (1048576)",
     NULL},
    {"ranks in chunks", MIN "chunks: {ranks: 4}\n", 4, 10, "top-level key", NULL},
    {"integer overflow", MIN "chunks: {length: 99999999999999999999}\n", 4, 18,
     "does not fit in 64 bits", NULL},
    {"integer too large", MIN "chunks: {length: 9000000000000000000}\n", 4, 18,
     "more than the largest accepted", NULL},
    {"threshold zero", MIN "shots: {threshold: 0}\n", 4, 20,
     "shots.threshold: expected a number > 0 and <= 1", "the integer 0"},
    {"threshold above one", MIN "shots: {threshold: 1.01}\n", 4, 20, "<= 1", "1.01"},
    {"threshold text", MIN "shots: {threshold: high}\n", 4, 20, "expected a number", "'high'"},
    {"threshold nan", MIN "shots: {threshold: .nan}\n", 4, 20, "expected a number", NULL},
    {"threshold quoted", MIN "shots: {threshold: '0.5'}\n", 4, 20, "remove the quotes", NULL},
    {"min_length zero", MIN "shots: {min_length: 0}\n", 4, 21, "shots.min_length", ">= 1"},
    {"inference size not a pair", MIN "inference_size: [216]\n", 4, 17,
     "inference_size: expected [height, width]", "a list of 1 value"},
    {"inference size scalar", MIN "inference_size: 216x384\n", 4, 17, "expected [height, width]",
     NULL},
    {"inference size not multiple of 8", MIN "inference_size: [216, 383]\n", 4, 23,
     "inference_size[1] (width): expected a multiple of 8", "found 383"},
    {"inference size negative", MIN "inference_size: [-8, 384]\n", 4, 18, "inference_size[0] (height)",
     "found -8"},
    {"inference size under F's 32", MIN "inference_size: [24, 384]\n", 4, 18,
     "inference_size[0] (height)", "found 24"},
    {"bad enum", MIN "precision: f64\n", 4, 12, "precision: expected one of f32, bf16, f16",
     "'f64'"},
    {"enum with suggestion", MIN "audio: Copy\n", 4, 8, "expected one of copy, none",
     "did you mean 'copy'?"},
    {"enum as boolean", MIN "shots: {detect: false}\n", 4, 17, "one of auto, off", "the boolean false"},
    {"bad codec", MIN "encode: {codec: x264}\n", 4, 17, "encode.codec: expected one of ffv1, prores_ks",
     "hevc_nvenc"},
    {"encode option with a mapping value", MIN "encode: {options: {crf: {a: 1}}}\n", 4, 25,
     "encode.options.crf: expected a value", NULL},
    {"encode option without value", MIN "encode: {options: {crf: }}\n", 4, 25,
     "encode.options.crf: expected a value", "an empty value"},
    {"encode options duplicate", MIN "encode:\n  options:\n    crf: 1\n    crf: 2\n", 7, 5,
     "encode.options.crf: duplicate key", NULL},
    {"encode options as a list", MIN "encode: {options: [crf, 16]}\n", 4, 19,
     "expected a mapping of option: value", NULL},
    {"long value truncated", MIN "precision: "
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n",
     4, 12, "'ffffffffffffffffffffffffffffffffffffffff...'", NULL},
    /* shots.list, references */
    {"shot end equals start", MIN "shots:\n  list:\n    - {start: 5, end: 5}\n", 6, 23,
     "shots.list[0].end: expected an integer > start (5)", "end is exclusive"},
    {"shot missing end", MIN "shots:\n  list:\n    - {start: 5}\n", 6, 7,
     "shots.list[0]: missing required key 'end'", NULL},
    {"shot negative start", MIN "shots: {list: [{start: -1, end: 5}]}\n", 4, 24,
     "shots.list[0].start: expected an integer >= 0", NULL},
    {"overlapping shots", MIN "shots:\n  list:\n    - {start: 0, end: 100, reference: r.png}\n"
                          "    - {start: 90, end: 200, reference: r.png}\n",
     7, 7, "shots.list[1]: frames [90, 200) overlap the previous entry (line 6", "start at 100"},
    {"descending shots", MIN "shots:\n  list:\n    - {start: 100, end: 200}\n    - {start: 0, end: 100}\n",
     7, 7, "shots.list[1]: starts at frame 0, before the previous entry", "ascending order"},
    {"list and EDL", MIN "shots:\n  edl: cuts.edl\n  list: [{start: 0, end: 5}]\n", 5, 8,
     "shots.edl: cannot be used together with shots.list (line 6)", NULL},
    {"reference without image", MIN "references:\n  - frame: 3\n", 5, 5,
     "references[0]: missing required key 'image'", NULL},
    {"two references for one frame", MIN "references:\n  - {frame: 3, image: a.png}\n"
                                     "  - {frame: 3, image: b.png}\n",
     6, 5, "references[1].frame: frame 3 already has a reference (references[0], line 5)", NULL},
    /* paths */
    {"output is the input", "version: 1\ninput: a.mkv\noutput: a.mkv\n", 3, 9,
     "output: is the input file", "never writes its input"},
};

static void config_bad_inputs_point_at_the_problem(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        struct vf_film *f = NULL;
        struct vf_error err = {0};
        int rc = load(&f, b->yaml, &err);
        char where[64];
        snprintf(where, sizeof where, "f.yaml:%d:%d: ", b->line, b->col);
        bool ok = rc == VF_EINVAL && f == NULL && !strncmp(err.msg, where, strlen(where)) &&
                  strstr(err.msg, b->want) && (!b->want2 || strstr(err.msg, b->want2)) &&
                  !strchr(err.msg, '\n') && strlen(err.msg) < 600;
        if (!ok) {
            print_error("case '%s': rc %d, message:\n  %s\nwanted %s... holding \"%s\"%s%s%s\n",
                        b->what, rc, err.msg, where, b->want, b->want2 ? " and \"" : "",
                        b->want2 ? b->want2 : "", b->want2 ? "\"" : "");
            failures++;
        }
        vf_config_destroy(&f);
    }
    assert_int_equal(failures, 0);
}

/* Every prefix of a valid file either loads or fails cleanly (and frees what it built): the
 * error paths in the middle of lists, maps and scalars. ASan checks the freeing. */
static void config_every_truncation_fails_cleanly(void **state)
{
    (void)state;
    size_t n = strlen(full_yaml);
    for (size_t len = 0; len < n; len++) {
        struct vf_film *f = NULL;
        struct vf_error err = {0};
        int rc = vf_config_load_string(&f, full_yaml, len, "f.yaml", "/d", &err);
        if (rc == 0) {
            assert_non_null(f);
            vf_config_destroy(&f);
        } else {
            assert_null(f);
            assert_int_equal(rc, VF_EINVAL);
            assert_true(!strncmp(err.msg, "f.yaml:", 7));
        }
    }
}

/* Random byte edits of a valid file (fixed seed, so a failure reproduces): never a crash, a
 * leak or a message without a position. */
static void config_mutated_files_fail_cleanly(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]:,-#&*!|>'\"\t\n 0.9ax\xc3\x80\xff";
    size_t n = strlen(full_yaml);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    uint64_t seed = 12345;
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, full_yaml, n + 1);
        for (int k = 0; k < 1 + round % 4; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(seed >> 33) % n;
            buf[at] = alphabet[(seed >> 20) % (sizeof alphabet - 1)];
        }
        struct vf_film *f = NULL;
        struct vf_error err = {0};
        int rc = vf_config_load_string(&f, buf, n, "f.yaml", "/d", &err);
        if (rc == 0) {
            vf_config_destroy(&f);
            continue;
        }
        assert_null(f);
        if (rc != VF_EINVAL || strncmp(err.msg, "f.yaml:", 7))
            fail_msg("round %d: rc %d: %s\n---\n%s", round, rc, err.msg, buf);
    }
    free(buf);
}

static void config_load_reports_missing_and_odd_files(void **state)
{
    (void)state;
    struct vf_film *f = NULL;
    struct vf_error err = {0};
    assert_int_equal(vf_config_load(&f, "/nonexistent/film.yaml", &err), VF_ENOENT);
    assert_null(f);
    assert_non_null(strstr(err.msg, "/nonexistent/film.yaml"));
    assert_int_equal(vf_config_load(&f, "/tmp", &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "is a folder"));
    vf_config_destroy(&f); /* NULL-safe */
    vf_config_destroy(NULL);
}

/* ---- file checks -------------------------------------------------------------------------- */

struct tmp_film {
    char dir[64];
    char yaml[128];
};

static void tmp_setup(struct tmp_film *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/vf_config_XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->yaml, sizeof t->yaml, "%s/film.yaml", t->dir);
}

static void tmp_touch(struct tmp_film *t, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", t->dir, name);
    write_file(p, "x");
}

static void tmp_teardown(struct tmp_film *t)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

static void config_check_files_reports_every_problem(void **state)
{
    (void)state;
    struct tmp_film t;
    tmp_setup(&t);
    tmp_touch(&t, "ref.png");
    char sub[256];
    snprintf(sub, sizeof sub, "%s/adir", t.dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    write_file(t.yaml, "version: 1\n"
                       "input: missing.mkv\n"
                       "output: nodir/out.mkv\n"
                       "model: none.safetensors\n"
                       "shots:\n"
                       "  list:\n"
                       "    - {start: 0, end: 5, reference: gone1.png}\n"
                       "    - {start: 5, end: 9, reference: ref.png}\n"
                       "references:\n"
                       "  - {frame: 0, image: gone2.png}\n"
                       "default_reference: adir\n");
    struct vf_film *f = NULL;
    struct vf_error err = {0};
    assert_int_equal(vf_config_load(&f, t.yaml, &err), 0);
    int rc = vf_config_check_files(f, NULL, &err);
    /* A folder given as a file outranks missing files. */
    assert_int_equal(rc, VF_EINVAL);
    static const char *const want[] = {
        ":2:8: input: ", "missing.mkv does not exist",
        ":7:37: shots.list[0].reference: ", "gone1.png does not exist",
        ":10:23: references[0].image: ", "gone2.png does not exist",
        ":11:20: default_reference: ", "adir is a folder",
        ":4:8: model: ", "none.safetensors does not exist",
        ":3:9: output: ", "nodir does not exist; create it",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(err.msg, want[i]))
            fail_msg("missing \"%s\" in:\n%s", want[i], err.msg);
    /* One line per problem, each starting with the file; ref.png (present) not reported. */
    int lines = 1;
    for (const char *p = err.msg; (p = strchr(p, '\n')); p++) {
        lines++;
        assert_true(!strncmp(p + 1, t.yaml, strlen(t.yaml)));
    }
    assert_int_equal(lines, 6);
    assert_null(strstr(err.msg, "ref.png"));
    vf_config_destroy(&f);

    /* Only missing files: VF_ENOENT. */
    write_file(t.yaml, "version: 1\ninput: missing.mkv\noutput: out.mkv\nshots: {edl: cuts.edl}\n");
    assert_int_equal(vf_config_load(&f, t.yaml, &err), 0);
    assert_int_equal(vf_config_check_files(f, NULL, &err), VF_ENOENT);
    assert_non_null(strstr(err.msg, ":4:14: shots.edl: "));
    assert_non_null(strstr(err.msg, ":2:8: input: "));
    vf_config_destroy(&f);
    tmp_teardown(&t);
}

static void config_check_files_passes_a_complete_film(void **state)
{
    (void)state;
    struct tmp_film t;
    tmp_setup(&t);
    tmp_touch(&t, "in.mkv");
    tmp_touch(&t, "ref.png");
    tmp_touch(&t, "m.safetensors");
    tmp_touch(&t, "cuts.edl");
    write_file(t.yaml, "version: 1\ninput: in.mkv\noutput: out.mkv\nmodel: m.safetensors\n"
                       "shots: {edl: cuts.edl}\nreferences: [{frame: 0, image: ref.png}]\n"
                       "default_reference: ref.png\nwork_dir: new/deeper/work\n");
    struct vf_film *f = NULL;
    struct vf_error err = {0};
    assert_int_equal(vf_config_load(&f, t.yaml, &err), 0);
    int rc = vf_config_check_files(f, NULL, &err);
    if (rc != 0)
        fail_msg("unexpected problems (%d):\n%s", rc, err.msg);
    vf_config_destroy(&f);
    tmp_teardown(&t);
}

static void config_check_files_refuses_to_write_the_input(void **state)
{
    (void)state;
    struct tmp_film t;
    tmp_setup(&t);
    tmp_touch(&t, "in.mkv");
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/in.mkv", t.dir);
    snprintf(b, sizeof b, "%s/same.mkv", t.dir);
    assert_int_equal(link(a, b), 0); /* another name for the same file */
    write_file(t.yaml, "version: 1\ninput: in.mkv\noutput: same.mkv\n");
    struct vf_film *f = NULL;
    struct vf_error err = {0};
    assert_int_equal(vf_config_load(&f, t.yaml, &err), 0);
    assert_int_equal(vf_config_check_files(f, NULL, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, ":3:9: output: "));
    assert_non_null(strstr(err.msg, "is the input file"));
    vf_config_destroy(&f);

    /* An output that is a folder, and a work_dir that is a file. */
    write_file(t.yaml, "version: 1\ninput: in.mkv\noutput: .\nwork_dir: in.mkv.w\n");
    tmp_touch(&t, "in.mkv.w");
    assert_int_equal(vf_config_load(&f, t.yaml, &err), 0);
    assert_int_equal(vf_config_check_files(f, NULL, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, ":3:9: output: "));
    assert_non_null(strstr(err.msg, "is a folder"));
    assert_non_null(strstr(err.msg, ":4:11: work_dir: "));
    assert_non_null(strstr(err.msg, "is not a folder"));
    vf_config_destroy(&f);
    tmp_teardown(&t);
}

/* The check itself, run as whoever the caller is: 0 when it reports the folder unwritable. */
static int unwritable_output_is_reported(const char *yaml)
{
    struct vf_film *f = NULL;
    struct vf_error err = {0};
    if (vf_config_load(&f, yaml, &err) != 0)
        return 1;
    int rc = vf_config_check_files(f, NULL, &err);
    vf_config_destroy(&f);
    if (rc != VF_EIO || !strstr(err.msg, "not writable")) {
        fprintf(stderr, "check_files gave %d: %s\n", rc, err.msg);
        return 1;
    }
    return 0;
}

static void config_check_files_reports_unwritable_output(void **state)
{
    (void)state;
    struct tmp_film t;
    tmp_setup(&t);
    tmp_touch(&t, "in.mkv");
    char ro[256];
    snprintf(ro, sizeof ro, "%s/ro", t.dir);
    assert_int_equal(mkdir(ro, 0555), 0);
    write_file(t.yaml, "version: 1\ninput: in.mkv\noutput: ro/out.mkv\nwork_dir: w\n");
    if (geteuid() != 0) {
        assert_int_equal(unwritable_output_is_reported(t.yaml), 0);
    } else {
        /* root writes anywhere: check as user nobody in a child process */
        char in[256];
        snprintf(in, sizeof in, "%s/in.mkv", t.dir);
        assert_int_equal(chmod(t.dir, 0755), 0);
        assert_int_equal(chmod(in, 0644), 0);
        assert_int_equal(chmod(t.yaml, 0644), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(2);
            _exit(unwritable_output_is_reported(t.yaml));
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    tmp_teardown(&t);
}

/* ---- examples and the key reference ------------------------------------------------------- */

static void config_examples_all_load(void **state)
{
    (void)state;
    const char *dir = VF_SOURCE_DIR "/config/examples";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".yaml"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct vf_film *f = NULL;
        struct vf_error err = {0};
        int rc = vf_config_load(&f, path, &err);
        if (rc != 0)
            fail_msg("%s does not load: %s", path, err.msg);
        vf_config_destroy(&f);
        n++;
    }
    closedir(d);
    assert_true(n >= 3);
}

static void config_print_keys_lists_every_key(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    vf_config_print_keys(f);
    assert_int_equal(fclose(f), 0);
    static const char *const keys[] = {
        "version", "input", "output", "model", "inference_size", "precision", "shots.detect",
        "shots.threshold", "shots.min_length", "shots.edl", "shots.list[].start",
        "shots.list[].end", "shots.list[].reference", "references[].frame", "references[].image",
        "default_reference", "reference_passthrough", "ranks", "chunks.length", "chunks.warmup",
        "encode.codec", "encode.pix_fmt", "encode.options", "audio", "work_dir",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", keys[i]);
        if (!strstr(buf, line))
            fail_msg("key reference lacks %s:\n%s", keys[i], buf);
    }
    assert_non_null(strstr(buf, "default 240"));
    assert_non_null(strstr(buf, "integer >= 1 | auto (default 240)"));
    assert_non_null(strstr(buf, "ranks                    integer in [1, 1048576] (default"));
    assert_non_null(strstr(buf, "f32 | bf16 | f16"));
    assert_non_null(strstr(buf, "<output>.vaefarm"));

    /* docs/CONFIG.md and the README carry the same reference, line for line. */
    static const char *const docs[] = {VF_SOURCE_DIR "/docs/CONFIG.md", VF_SOURCE_DIR "/README.md"};
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        FILE *doc = fopen(docs[d], "r");
        assert_non_null(doc);
        char *text = NULL;
        size_t cap = 0;
        ssize_t got = getdelim(&text, &cap, '\0', doc);
        fclose(doc);
        assert_true(got > 0);
        char *copy = strdup(buf);
        assert_non_null(copy);
        char *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            if (!strstr(text, line))
                fail_msg("%s is out of date (regenerate its key list from vaefarm --help); it "
                         "lacks:\n%s", docs[d], line);
        free(copy);
        free(text);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_minimal_gets_every_default),
        cmocka_unit_test(config_full_parses_every_key),
        cmocka_unit_test(config_chunks_auto_and_ranks),
        cmocka_unit_test(config_accepts_flow_style_nulls_and_quotes),
        cmocka_unit_test(config_relative_paths_follow_the_yaml_folder),
        cmocka_unit_test(config_bad_inputs_point_at_the_problem),
        cmocka_unit_test(config_every_truncation_fails_cleanly),
        cmocka_unit_test(config_mutated_files_fail_cleanly),
        cmocka_unit_test(config_load_reports_missing_and_odd_files),
        cmocka_unit_test(config_check_files_reports_every_problem),
        cmocka_unit_test(config_check_files_passes_a_complete_film),
        cmocka_unit_test(config_check_files_refuses_to_write_the_input),
        cmocka_unit_test(config_check_files_reports_unwritable_output),
        cmocka_unit_test(config_examples_all_load),
        cmocka_unit_test(config_print_keys_lists_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
