/*
 * tests/test_journal.c: the journal, <work_dir>/journal (shard.h "journal", docs/FARM.md).
 *
 * Every test works in its own temporary folder (mkdtemp under /tmp, made and removed by the
 * cmocka fixtures, so a failing test leaves nothing behind) and
 * writes damaged journals by hand: torn last lines (what a crash in an append leaves) are
 * dropped with a warning and cut off before the next append, every other damage is
 * VF_ECORRUPT naming the line. Short and failed writes are provoked with RLIMIT_FSIZE, which
 * works for root too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shard/shard.h"

#define HASH_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HASH_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define HASH_C "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SUM_1 "1111111111111111111111111111111111111111111111111111111111111111"

/* ---- a temporary folder per test ---------------------------------------------------------- */

struct tmp {
    char dir[64];
    char path[128]; /* dir/journal */
};

static void tmp_make(struct tmp *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/vf-journal-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/journal", t->dir);
}

static void remove_tree(const char *path);

/* cmocka fixtures: a fresh folder per test, removed even when the test fails */
static int tmp_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    tmp_make(t);
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;
    remove_tree(t->dir);
    free(t);
    return 0;
}

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                char sub[PATH_MAX];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                remove_tree(sub);
            }
            closedir(d);
        }
        assert_int_equal(rmdir(path), 0);
    } else {
        assert_int_equal(unlink(path), 0);
    }
}

static void write_file(const char *path, const char *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

/* The whole file, NUL-terminated (free()). */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t r;
    while ((r = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
        n += r;
        assert_true(n < cap - 1);
    }
    assert_int_equal(ferror(f), 0);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- captured warnings -------------------------------------------------------------------- */

static char warnings[8192];
static int n_warnings;

static void capture(void *opaque, int level, const struct vf_log_ctx *ctx, const char *line)
{
    (void)opaque;
    if (level == VF_LOG_WARN && ctx && ctx->module && !strcmp(ctx->module, "journal")) {
        n_warnings++;
        size_t len = strlen(warnings);
        snprintf(warnings + len, sizeof warnings - len, "%s\n", line);
    }
}

static void capture_start(void)
{
    warnings[0] = '\0';
    n_warnings = 0;
    vf_log_set_sink(capture, NULL);
}

static void capture_stop(void) { vf_log_set_sink(NULL, NULL); }

/* ---- entries ------------------------------------------------------------------------------ */

static struct vf_journal_entry entry(int chunk, const char *hash, int attempt)
{
    struct vf_journal_entry e = {.chunk = chunk,
                                 .frames = 240,
                                 .rank = 3,
                                 .attempt = attempt,
                                 .seconds = 81.25,
                                 .t_decode = 1.5,
                                 .t_infer = 77.0,
                                 .t_encode = 2.5};
    snprintf(e.hash, sizeof e.hash, "%s", hash);
    snprintf(e.segment, sizeof e.segment, "segments/%05d.mkv", chunk);
    snprintf(e.checksum, sizeof e.checksum, "%s", SUM_1);
    return e;
}

static void append_ok(struct vf_journal *j, struct vf_journal_entry *e)
{
    struct vf_error err = {0};
    int r = vf_journal_append(j, e, &err);
    if (r != 0)
        fail_msg("append: %s", err.msg);
}

static struct vf_journal *open_ok(const char *path)
{
    struct vf_journal *j = NULL;
    struct vf_error err = {0};
    int r = vf_journal_open(&j, path, &err);
    if (r != 0)
        fail_msg("open %s: %s", path, err.msg);
    assert_non_null(j);
    return j;
}

static bool is_utc_time(const char *s)
{
    int y, mo, d, h, mi, se;
    char z;
    return strlen(s) == 20 && sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z) == 7 &&
           z == 'Z' && y >= 2020 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31;
}

static void assert_same_entry(const struct vf_journal_entry *a, const struct vf_journal_entry *b)
{
    assert_int_equal(a->chunk, b->chunk);
    assert_string_equal(a->hash, b->hash);
    assert_string_equal(a->segment, b->segment);
    assert_int_equal(a->frames, b->frames);
    assert_string_equal(a->checksum, b->checksum);
    assert_int_equal(a->rank, b->rank);
    assert_int_equal(a->attempt, b->attempt);
    assert_true(a->seconds == b->seconds); /* exact: the text round-trips every double */
    assert_true(a->t_decode == b->t_decode);
    assert_true(a->t_infer == b->t_infer);
    assert_true(a->t_encode == b->t_encode);
    assert_string_equal(a->time, b->time);
}

/* A version-1 line with every field valid, except `key` set to the raw JSON `raw` (or left
 * out when raw is NULL; added when key is not one of the fields). */
static void make_line(char *buf, size_t size, const char *key, const char *raw)
{
    static const char *const fields[][2] = {
        {"v", "1"},
        {"chunk", "12"},
        {"hash", "\"" HASH_A "\""},
        {"segment", "\"segments/00012.mkv\""},
        {"frames", "240"},
        {"checksum", "\"" SUM_1 "\""},
        {"rank", "3"},
        {"attempt", "1"},
        {"seconds", "81.25"},
        {"decode", "1.5"},
        {"infer", "77.0"},
        {"encode", "2.5"},
        {"time", "\"2026-11-25T07:30:00Z\""},
    };
    bool found = false;
    snprintf(buf, size, "{");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = fields[i][1];
        if (key && !strcmp(key, fields[i][0])) {
            found = true;
            if (!raw)
                continue;
            v = raw;
        }
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s\"%s\":%s", len > 1 ? "," : "", fields[i][0], v);
    }
    size_t len = strlen(buf);
    if (key && !found)
        snprintf(buf + len, size - len, ",\"%s\":%s", key, raw);
    len = strlen(buf);
    snprintf(buf + len, size - len, "}\n");
}

/* Open must fail with VF_ECORRUPT, naming the file, line `line`, `needle` and the way out. */
static void expect_corrupt(const struct tmp *t, int line, const char *needle)
{
    struct vf_journal *j = NULL;
    struct vf_error err = {0};
    int r = vf_journal_open(&j, t->path, &err);
    if (r != VF_ECORRUPT)
        fail_msg("expected VF_ECORRUPT for %s, got %d: %s", needle, r, err.msg);
    assert_null(j);
    char want[256];
    snprintf(want, sizeof want, "%s line %d", t->path, line);
    if (!strstr(err.msg, want) || !strstr(err.msg, needle))
        fail_msg("message lacks '%s' or '%s': %s", want, needle, err.msg);
    snprintf(want, sizeof want, "remove %s to start over", t->dir);
    if (!strstr(err.msg, want))
        fail_msg("message lacks '%s': %s", want, err.msg);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void journal_roundtrip_keeps_every_field(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    mode_t mask = umask(022);
    struct vf_journal *j = open_ok(t.path);
    umask(mask);
    struct stat st;
    assert_int_equal(stat(t.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(vf_journal_count(j), 0);
    assert_null(vf_journal_get(j, 0));

    struct vf_journal_entry e[3] = {entry(0, HASH_A, 1), entry(12, HASH_B, 2), entry(7, HASH_C, 3)};
    e[1].frames = INT64_C(1) << 40;
    e[1].rank = 0;
    e[1].seconds = 0.1; /* not exact in binary: must still come back bit for bit */
    e[1].t_decode = 0;
    e[1].t_infer = 1e-300;
    e[1].t_encode = 123456.789;
    snprintf(e[2].segment, sizeof e[2].segment, "seg ments/caf\xc3\xa9 \"x\"\\y.mkv");
    e[2].rank = INT_MAX;
    e[2].chunk = INT_MAX;
    for (int i = 0; i < 3; i++) {
        append_ok(j, &e[i]);
        assert_true(is_utc_time(e[i].time));
        assert_int_equal(vf_journal_count(j), (size_t)i + 1);
        assert_same_entry(vf_journal_get(j, (size_t)i), &e[i]);
    }
    vf_journal_close(&j);
    assert_null(j);
    vf_journal_close(&j); /* NULL-safe */

    size_t len;
    char *text = read_text(t.path, &len);
    assert_int_equal(count_lines(text), 3);
    assert_int_equal(text[len - 1], '\n');
    assert_memory_equal(text, "{\"v\":1,\"chunk\":0,\"hash\":\"" HASH_A "\",\"segment\":\"segments/00000.mkv\"",
                        strlen("{\"v\":1,\"chunk\":0,\"hash\":\"" HASH_A "\",\"segment\":\"segments/00000.mkv\""));
    free(text);

    j = open_ok(t.path);
    assert_int_equal(vf_journal_count(j), 3);
    for (size_t i = 0; i < 3; i++)
        assert_same_entry(vf_journal_get(j, i), &e[i]);
    assert_null(vf_journal_get(j, 3));
    /* appending after a reopen goes at the end */
    struct vf_journal_entry e4 = entry(1, HASH_A, 1);
    append_ok(j, &e4);
    vf_journal_close(&j);
    j = open_ok(t.path);
    assert_int_equal(vf_journal_count(j), 4);
    assert_same_entry(vf_journal_get(j, 3), &e4);
    vf_journal_close(&j);
}

static void journal_find_returns_the_latest(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    struct vf_journal *j = open_ok(t.path);
    assert_null(vf_journal_find(j, 5, HASH_A));
    struct vf_journal_entry e[] = {entry(5, HASH_A, 1), entry(5, HASH_B, 1), entry(5, HASH_A, 2),
                                   entry(6, HASH_A, 1)};
    for (size_t i = 0; i < 4; i++)
        append_ok(j, &e[i]);
    for (int pass = 0; pass < 2; pass++) { /* before and after a reopen */
        const struct vf_journal_entry *f = vf_journal_find(j, 5, HASH_A);
        assert_non_null(f);
        assert_int_equal(f->attempt, 2);
        assert_ptr_equal(f, vf_journal_get(j, 2));
        f = vf_journal_find(j, 5, HASH_B);
        assert_non_null(f);
        assert_ptr_equal(f, vf_journal_get(j, 1));
        f = vf_journal_find(j, 6, HASH_A);
        assert_non_null(f);
        assert_int_equal(f->chunk, 6);
        assert_null(vf_journal_find(j, 5, HASH_C));
        assert_null(vf_journal_find(j, 6, HASH_B));
        assert_null(vf_journal_find(j, 7, HASH_A));
        /* any hash: the latest entry for the chunk */
        assert_ptr_equal(vf_journal_find(j, 5, NULL), vf_journal_get(j, 2));
        assert_ptr_equal(vf_journal_find(j, 6, NULL), vf_journal_get(j, 3));
        assert_null(vf_journal_find(j, 7, NULL));
        vf_journal_close(&j);
        j = open_ok(t.path);
    }
    vf_journal_close(&j);
}

/* A good line, then `tail` (what a crash left): open drops the tail with a warning, the next
 * append leaves exactly the good line and the new one. */
static void torn_tail_case(const struct tmp *tp, const char *tail, size_t tail_len)
{
    struct tmp t = *tp;
    if (unlink(t.path) < 0)
        assert_int_equal(errno, ENOENT);
    struct vf_journal *j = open_ok(t.path);
    struct vf_journal_entry e1 = entry(1, HASH_A, 1);
    append_ok(j, &e1);
    vf_journal_close(&j);
    size_t good_len;
    char *good = read_text(t.path, &good_len);

    char *damaged = malloc(good_len + tail_len);
    assert_non_null(damaged);
    memcpy(damaged, good, good_len);
    memcpy(damaged + good_len, tail, tail_len);
    write_file(t.path, damaged, good_len + tail_len);
    free(damaged);

    capture_start();
    j = open_ok(t.path);
    capture_stop();
    assert_int_equal(vf_journal_count(j), 1);
    assert_same_entry(vf_journal_get(j, 0), &e1);
    assert_int_equal(n_warnings, 1);
    char want[256];
    snprintf(want, sizeof want, "%s line 2", t.path);
    if (!strstr(warnings, want) || !strstr(warnings, "incomplete"))
        fail_msg("warning lacks '%s': %s", want, warnings);

    struct vf_journal_entry e2 = entry(2, HASH_B, 1);
    append_ok(j, &e2);
    vf_journal_close(&j);

    size_t len;
    char *text = read_text(t.path, &len);
    assert_true(len > good_len);
    assert_memory_equal(text, good, good_len);
    const char *second = text + good_len;
    assert_non_null(strstr(second, "\"chunk\":2,"));
    assert_ptr_equal(strchr(second, '\n'), text + len - 1); /* one complete line, nothing after */
    assert_int_equal(count_lines(text), 2);
    assert_int_equal(strlen(text), len); /* no NUL bytes left behind */
    free(text);

    capture_start();
    j = open_ok(t.path);
    capture_stop();
    assert_int_equal(n_warnings, 0);
    assert_int_equal(vf_journal_count(j), 2);
    assert_same_entry(vf_journal_get(j, 1), &e2);
    vf_journal_close(&j);
    free(good);
}

static void journal_torn_last_line_is_dropped_and_cut_off(void **state)
{
    const struct tmp *t = *state;
    char line[1024];
    make_line(line, sizeof line, NULL, NULL);
    /* a prefix of a line, no newline */
    torn_tail_case(t, "{\"v\":1,\"chunk\":3,\"hash\":\"0123", strlen("{\"v\":1,\"chunk\":3,\"hash\":\"0123"));
    /* a whole entry whose newline did not make it */
    torn_tail_case(t, line, strlen(line) - 1);
    /* partial JSON with a newline (not a complete entry) */
    torn_tail_case(t, "{\"v\":1,\"chu\n", strlen("{\"v\":1,\"chu\n"));
    /* zeros: a crash after the size grew but before the data reached the disk */
    static const char zeros[100];
    torn_tail_case(t, zeros, sizeof zeros);
    /* a lone newline */
    torn_tail_case(t, "\n", 1);
}

static void journal_opening_a_torn_journal_changes_nothing_until_append(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    char line[1024], text[2048];
    make_line(line, sizeof line, NULL, NULL);
    snprintf(text, sizeof text, "%s{\"v\":1,", line);
    write_text(t.path, text);
    capture_start();
    struct vf_journal *j = open_ok(t.path);
    vf_journal_close(&j);
    capture_stop();
    char *after = read_text(t.path, NULL);
    assert_string_equal(after, text);
    free(after);
}

/* vf_journal_read (what `vaefarm plan` uses): a missing journal is VF_ENOENT and stays missing; a
 * torn one reads its good entries and stays byte for byte as it was, even after an append, which
 * it refuses; a damaged middle line is VF_ECORRUPT as for open. */
static void journal_read_only_changes_nothing(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    struct vf_journal *j = NULL;
    struct vf_error err = {0};
    assert_int_equal(vf_journal_read(&j, t.path, &err), VF_ENOENT);
    assert_null(j);
    assert_non_null(strstr(err.msg, t.path));
    assert_int_equal(access(t.path, F_OK), -1);

    struct vf_journal *w = open_ok(t.path);
    struct vf_journal_entry a = entry(0, HASH_A, 1), b = entry(1, HASH_B, 1);
    append_ok(w, &a);
    append_ok(w, &b);
    vf_journal_close(&w);
    size_t good_len;
    char *good = read_text(t.path, &good_len);
    char text[4096];
    snprintf(text, sizeof text, "%s{\"v\":1,\"chu", good);
    write_text(t.path, text);
    struct stat before;
    assert_int_equal(stat(t.path, &before), 0);

    capture_start();
    err = (struct vf_error){0};
    int r = vf_journal_read(&j, t.path, &err);
    if (r != 0)
        fail_msg("read %s: %s", t.path, err.msg);
    assert_int_equal(n_warnings, 1);   /* the torn line, as open says it */
    assert_int_equal(vf_journal_count(j), 2);
    assert_same_entry(vf_journal_find(j, 1, HASH_B), &b);
    struct vf_journal_entry c = entry(2, HASH_C, 1);
    err = (struct vf_error){0};
    assert_int_equal(vf_journal_append(j, &c, &err), VF_EINTERNAL);
    assert_non_null(strstr(err.msg, "opened to read"));
    assert_int_equal(vf_journal_count(j), 2);
    vf_journal_close(&j);
    capture_stop();

    char *after = read_text(t.path, NULL);
    assert_string_equal(after, text);
    struct stat now;
    assert_int_equal(stat(t.path, &now), 0);
    assert_true(now.st_size == before.st_size && now.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                now.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    free(after);

    /* damage before the last line: corrupt, as for open */
    snprintf(text, sizeof text, "{\"v\":1}\n%s", good);
    write_text(t.path, text);
    err = (struct vf_error){0};
    assert_int_equal(vf_journal_read(&j, t.path, &err), VF_ECORRUPT);
    assert_null(j);
    assert_non_null(strstr(err.msg, "line 1"));
    free(good);
}

static void journal_damaged_middle_line_is_corrupt(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    char good[1024], text[4096];
    make_line(good, sizeof good, NULL, NULL);

    snprintf(text, sizeof text, "%sgarbage\n%s", good, good);
    write_text(t.path, text);
    expect_corrupt(&t, 2, "not valid JSON");
    char *after = read_text(t.path, NULL);
    assert_string_equal(after, text); /* a damaged journal is left as it is */
    free(after);

    /* a torn line followed by more lines is not a torn append */
    snprintf(text, sizeof text, "%s%s{\"v\":1,\"chu\n%s", good, good, good);
    write_text(t.path, text);
    expect_corrupt(&t, 3, "not valid JSON");

    /* an empty line in the middle */
    snprintf(text, sizeof text, "%s\n%s", good, good);
    write_text(t.path, text);
    expect_corrupt(&t, 2, "not valid JSON");

    /* a complete JSON last line that is not a valid entry is damage, not a torn append */
    char bad[1024];
    make_line(bad, sizeof bad, "frames", "0");
    snprintf(text, sizeof text, "%s%s", good, bad);
    write_text(t.path, text);
    expect_corrupt(&t, 2, "\"frames\"");
}

static void journal_other_version_is_corrupt(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    char good[1024], v2[1024], text[4096];
    make_line(good, sizeof good, NULL, NULL);
    make_line(v2, sizeof v2, "v", "2");
    snprintf(text, sizeof text, "%s%s%s", good, v2, good);
    write_text(t.path, text);
    expect_corrupt(&t, 2, "version 2");
    /* also as the last line: a whole line of another version is never a torn append */
    snprintf(text, sizeof text, "%s%s%s", good, good, v2);
    write_text(t.path, text);
    expect_corrupt(&t, 3, "version 2");
    write_text(t.path, v2);
    expect_corrupt(&t, 1, "version 2");
    make_line(v2, sizeof v2, "v", "0");
    write_text(t.path, v2);
    expect_corrupt(&t, 1, "version 0");
    make_line(v2, sizeof v2, "v", "\"1\"");
    write_text(t.path, v2);
    expect_corrupt(&t, 1, "\"v\"");
    make_line(v2, sizeof v2, "v", NULL);
    write_text(t.path, v2);
    expect_corrupt(&t, 1, "\"v\"");
}

static void journal_invalid_fields_are_corrupt(void **state)
{
    static const struct {
        const char *key, *raw, *needle;
    } cases[] = {
        {"chunk", "-1", "\"chunk\""},
        {"chunk", "1.0", "\"chunk\""},
        {"chunk", "\"3\"", "\"chunk\""},
        {"chunk", "2147483648", "\"chunk\""},
        {"chunk", NULL, "\"chunk\" is missing"},
        {"hash", "\"" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef" "\"", "\"hash\""},
        {"hash", "\"0123456789abcdef\"", "\"hash\""},
        {"hash", "\"" HASH_A "0\"", "\"hash\""},
        {"hash", "null", "\"hash\""},
        {"segment", "\"/tmp/x.mkv\"", "\"segment\""},
        {"segment", "\"../x.mkv\"", "\"segment\""},
        {"segment", "\"segments/../../x.mkv\"", "\"segment\""},
        {"segment", "\"segments/..\"", "\"segment\""},
        {"segment", "\"\"", "\"segment\""},
        {"segment", "\"a\\nb\"", "\"segment\""},
        {"segment", "\"a\\u0000b\"", "damaged"}, /* jansson refuses it already */
        {"frames", "0", "\"frames\""},
        {"frames", "-5", "\"frames\""},
        {"frames", "2.5", "\"frames\""},
        {"checksum", "\"zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"", "\"checksum\""},
        {"rank", "-1", "\"rank\""},
        {"rank", "true", "\"rank\""},
        {"attempt", "0", "\"attempt\""},
        {"seconds", "-0.5", "\"seconds\""},
        {"seconds", "\"81\"", "\"seconds\""},
        {"decode", "-1", "\"decode\""},
        {"infer", "null", "\"infer\""},
        {"encode", "-1e-9", "\"encode\""},
        {"time", "\"2026-11-25 07:30:00\"", "\"time\""},
        {"time", "\"2026-13-25T07:30:00Z\"", "\"time\""},
        {"time", "\"2026-11-25T07:30:00+01:00\"", "\"time\""},
        {"time", NULL, "\"time\" is missing"},
        {"colour", "1", "unknown key \"colour\""},
        {"chunk", "12,\"chunk\":13", "not valid JSON"}, /* a duplicate key */
    };
    struct tmp t = *(struct tmp *)*state;
    char good[1024], bad[2048], text[4096];
    make_line(good, sizeof good, NULL, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        make_line(bad, sizeof bad, cases[i].key, cases[i].raw);
        snprintf(text, sizeof text, "%s%s%s", good, bad, good);
        write_text(t.path, text);
        expect_corrupt(&t, 2, cases[i].needle);
    }
    /* not an object */
    snprintf(text, sizeof text, "[1,2]\n%s", good);
    write_text(t.path, text);
    expect_corrupt(&t, 1, "not a JSON object");
    /* the unmodified line is fine (the table above tests only what it means to) */
    snprintf(text, sizeof text, "%s%s", good, good);
    write_text(t.path, text);
    struct vf_journal *j = open_ok(t.path);
    assert_int_equal(vf_journal_count(j), 2);
    assert_string_equal(vf_journal_get(j, 0)->time, "2026-11-25T07:30:00Z");
    vf_journal_close(&j);
}

static void journal_append_rejects_invalid_entries(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    struct vf_journal *j = open_ok(t.path);
    struct vf_journal_entry ok = entry(4, HASH_A, 1);
    append_ok(j, &ok);
    struct stat before;
    assert_int_equal(stat(t.path, &before), 0);

    for (int i = 0; i < 12; i++) {
        struct vf_journal_entry e = entry(4, HASH_A, 1);
        const char *needle = NULL;
        switch (i) {
        case 0: e.chunk = -1; needle = "\"chunk\""; break;
        case 1: e.hash[10] = 'G'; needle = "\"hash\""; break;
        case 2: e.hash[63] = '\0'; needle = "\"hash\""; break;
        case 3: snprintf(e.segment, sizeof e.segment, "../x.mkv"); needle = "\"segment\""; break;
        case 4: snprintf(e.segment, sizeof e.segment, "/abs.mkv"); needle = "\"segment\""; break;
        case 5: e.frames = 0; needle = "\"frames\""; break;
        case 6: snprintf(e.checksum, sizeof e.checksum, "x"); needle = "\"checksum\""; break;
        case 7: e.rank = -2; needle = "\"rank\""; break;
        case 8: e.attempt = 0; needle = "\"attempt\""; break;
        case 9: e.seconds = NAN; needle = "\"seconds\""; break;
        case 10: e.t_infer = INFINITY; needle = "\"infer\""; break;
        case 11: memset(e.segment, 'a', sizeof e.segment); needle = "\"segment\""; break;
        }
        struct vf_error err = {0};
        assert_int_equal(vf_journal_append(j, &e, &err), VF_EINVAL);
        if (!strstr(err.msg, needle) || !strstr(err.msg, t.path))
            fail_msg("case %d: message lacks '%s': %s", i, needle, err.msg);
    }
    struct stat after;
    assert_int_equal(stat(t.path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(vf_journal_count(j), 1);
    vf_journal_close(&j);
}

static void journal_failed_write_leaves_nothing(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    struct vf_journal *j = open_ok(t.path);
    struct vf_journal_entry e = entry(1, HASH_A, 1);
    append_ok(j, &e);
    struct stat st;
    assert_int_equal(stat(t.path, &st), 0);
    char *before = read_text(t.path, NULL);

    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    for (int i = 0; i < 2; i++) {
        /* i = 0: 40 bytes fit (a short write: the write of the rest then says why); i = 1: none
         * (EFBIG) */
        struct rlimit lim = saved;
        lim.rlim_cur = (rlim_t)st.st_size + (i == 0 ? 40 : 0);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        struct vf_journal_entry e2 = entry(2, HASH_B, 1);
        struct vf_error err = {0};
        int r = vf_journal_append(j, &e2, &err);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        assert_int_equal(r, VF_EIO);
        if (!strstr(err.msg, t.path) || !strstr(err.msg, "File too large") ||
            (i == 0) != (strstr(err.msg, "(wrote 40 of ") != NULL))
            fail_msg("case %d: %s", i, err.msg);
        assert_int_equal(vf_journal_count(j), 1);
        char *after = read_text(t.path, NULL);
        assert_string_equal(after, before);
        free(after);
    }
    signal(SIGXFSZ, old);
    /* the journal still works */
    struct vf_journal_entry e3 = entry(3, HASH_C, 1);
    append_ok(j, &e3);
    vf_journal_close(&j);
    j = open_ok(t.path);
    assert_int_equal(vf_journal_count(j), 2);
    assert_same_entry(vf_journal_get(j, 1), &e3);
    vf_journal_close(&j);
    free(before);
}

static void journal_unwritable_places_give_clear_errors(void **state)
{
    struct tmp t = *(struct tmp *)*state;
    struct vf_journal *j = NULL;
    struct vf_error err = {0};
    char path[256], dir[200];

    /* a read-only folder (root may write anyway: then there is nothing to check) */
    snprintf(dir, sizeof dir, "%s/ro", t.dir);
    assert_int_equal(mkdir(dir, 0555), 0);
    snprintf(path, sizeof path, "%s/journal", dir);
    if (access(dir, W_OK) != 0) {
        assert_int_equal(vf_journal_open(&j, path, &err), VF_EIO);
        assert_null(j);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, strerror(EACCES)));
        assert_non_null(strstr(err.msg, "writable"));
    } else {
        print_message("running as root: the read-only folder case is skipped\n");
    }

    /* a folder that is a file */
    snprintf(dir, sizeof dir, "%s/file", t.dir);
    write_text(dir, "x");
    snprintf(path, sizeof path, "%s/journal", dir);
    assert_int_equal(vf_journal_open(&j, path, &err), VF_EIO);
    assert_null(j);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, strerror(ENOTDIR)));

    /* a folder that does not exist */
    snprintf(path, sizeof path, "%s/missing/journal", t.dir);
    assert_int_equal(vf_journal_open(&j, path, &err), VF_ENOENT);
    assert_null(j);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "folder"));

    /* the journal is a folder */
    snprintf(path, sizeof path, "%s/sub", t.dir);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_true(vf_journal_open(&j, path, &err) < 0);
    assert_null(j);
    assert_non_null(strstr(err.msg, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(journal_roundtrip_keeps_every_field, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_find_returns_the_latest, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_torn_last_line_is_dropped_and_cut_off, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_opening_a_torn_journal_changes_nothing_until_append, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_read_only_changes_nothing, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_damaged_middle_line_is_corrupt, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_other_version_is_corrupt, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_invalid_fields_are_corrupt, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_append_rejects_invalid_entries, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_failed_write_leaves_nothing, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(journal_unwritable_places_give_clear_errors, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
