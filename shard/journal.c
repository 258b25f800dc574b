/*
 * shard/journal.c: <work_dir>/journal, one JSON line per finished chunk (shard.h, "journal";
 * DESIGN.md §6, docs/FARM.md).
 *
 * The file is only ever appended to, by one process, one whole line per append (written on after
 * a short write: vf_write_all), fsync'd before vf_journal_append returns; so after any crash it
 * is a run of complete lines, possibly followed
 * by the beginning of one more (the append the crash cut short). Open reads every line back:
 *   - a last line without its newline, or a last line that is not JSON, is that cut-short append:
 *     it is dropped with a warning and cut off the file (ftruncate) before the next append;
 *   - any other damage (a bad line before the last, a field missing, of the wrong type or out of
 *     range, an unknown key, a "v" other than 1) is VF_ECORRUPT naming the file and the line.
 *
 * Invariants of an open journal:
 *   - entries[0..n) are the file's good lines in file order; `size` is the byte offset where the
 *     good lines end, i.e. where the next append goes;
 *   - the file holds exactly those bytes, except while `truncate_pending` (a dropped last line
 *     or a failed append still lies after `size`; the next append cuts it off first).
 */
#include "shard/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "shard/internal.h"

#define JOURNAL_VERSION 1
#define WHY_MAX 512 /* what is wrong with one line, for messages */

struct vf_journal {
    char *path;
    char *dir;                  /* the work folder: "remove <dir> to start over" */
    int fd;                     /* O_RDWR | O_APPEND */
    struct vf_journal_entry *entries;
    size_t n, cap;
    off_t size;                 /* end of the last good line: where the next append goes */
    bool truncate_pending;      /* bytes after `size` to cut off before the next append */
    bool read_only;             /* vf_journal_read: fd is O_RDONLY; append refuses */
};

static const struct vf_log_ctx log_ctx = {.module = "journal", .rank = -1, .chunk = -1};

/* The keys of a version-1 line, in the order append writes them. */
static const char *const keys[] = {"v",        "chunk", "hash",    "segment", "frames",
                                   "checksum", "rank",  "attempt", "seconds", "decode",
                                   "infer",    "encode", "time"};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* ---- validation (shared by reading and appending) ----------------------------------------- */

static bool is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[64] == '\0';
}

/* A path relative to the work folder that stays inside it: not empty, not absolute, no ".."
 * component, no control characters, shorter than the entry's field. */
static bool is_segment_path(const char *s)
{
    size_t len = strnlen(s, 256);
    if (len == 0 || len >= 256 || s[0] == '/')
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
    for (const char *c = s; *c;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return false;
        c += n;
        if (*c == '/')
            c++;
    }
    return true;
}

static bool digits(const char *s, int n, int lo, int hi)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = 10 * v + (s[i] - '0');
    }
    return v >= lo && v <= hi;
}

/* "YYYY-MM-DDTHH:MM:SSZ" */
static bool is_utc_time(const char *s)
{
    return strnlen(s, 21) == 20 && digits(s, 4, 0, 9999) && s[4] == '-' && digits(s + 5, 2, 1, 12) &&
           s[7] == '-' && digits(s + 8, 2, 1, 31) && s[10] == 'T' && digits(s + 11, 2, 0, 23) &&
           s[13] == ':' && digits(s + 14, 2, 0, 59) && s[16] == ':' && digits(s + 17, 2, 0, 60) &&
           s[19] == 'Z';
}

static bool is_duration(double v) { return isfinite(v) && v >= 0; }

/* Check every field of `e` (its time too when `with_time`); on failure describe the first bad
 * field in `why` and return false. */
static bool entry_ok(const struct vf_journal_entry *e, bool with_time, char why[WHY_MAX])
{
    if (e->chunk < 0)
        snprintf(why, WHY_MAX, "\"chunk\" must be >= 0, not %d", e->chunk);
    else if (!is_hex64(e->hash))
        snprintf(why, WHY_MAX, "\"hash\" must be 64 lowercase hex digits (a sha256)");
    else if (!is_segment_path(e->segment))
        snprintf(why, WHY_MAX,
                 "\"segment\" must be a path inside the work folder (relative, no \"..\", no "
                 "control characters, under 256 bytes)");
    else if (e->frames < 1)
        snprintf(why, WHY_MAX, "\"frames\" must be >= 1, not %lld", (long long)e->frames);
    else if (!is_hex64(e->checksum))
        snprintf(why, WHY_MAX, "\"checksum\" must be 64 lowercase hex digits (a sha256)");
    else if (e->rank < 0)
        snprintf(why, WHY_MAX, "\"rank\" must be >= 0, not %d", e->rank);
    else if (e->attempt < 1)
        snprintf(why, WHY_MAX, "\"attempt\" must be >= 1, not %d", e->attempt);
    else if (!is_duration(e->seconds))
        snprintf(why, WHY_MAX, "\"seconds\" must be a finite number >= 0, not %g", e->seconds);
    else if (!is_duration(e->t_decode))
        snprintf(why, WHY_MAX, "\"decode\" must be a finite number >= 0, not %g", e->t_decode);
    else if (!is_duration(e->t_infer))
        snprintf(why, WHY_MAX, "\"infer\" must be a finite number >= 0, not %g", e->t_infer);
    else if (!is_duration(e->t_encode))
        snprintf(why, WHY_MAX, "\"encode\" must be a finite number >= 0, not %g", e->t_encode);
    else if (with_time && !is_utc_time(e->time))
        snprintf(why, WHY_MAX, "\"time\" must be UTC ISO 8601, YYYY-MM-DDTHH:MM:SSZ");
    else
        return true;
    return false;
}

/* ---- reading one line --------------------------------------------------------------------- */

static bool get_int(json_t *o, const char *key, json_int_t min, json_int_t max, json_int_t *out,
                    char why[WHY_MAX])
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        snprintf(why, WHY_MAX, "\"%s\" must be an integer", key);
        return false;
    }
    *out = json_integer_value(v);
    if (*out < min || *out > max) {
        snprintf(why, WHY_MAX, "\"%s\" must be from %lld to %lld, not %lld", key, (long long)min,
                 (long long)max, (long long)*out);
        return false;
    }
    return true;
}

static bool get_num(json_t *o, const char *key, double *out, char why[WHY_MAX])
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) {
        snprintf(why, WHY_MAX, "\"%s\" must be a number", key);
        return false;
    }
    *out = json_number_value(v);
    return true;
}

/* Copy string `key` into dst[size]; it must fit and hold no NUL. */
static bool get_str(json_t *o, const char *key, char *dst, size_t size, char why[WHY_MAX])
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        snprintf(why, WHY_MAX, "\"%s\" must be a string", key);
        return false;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len >= size || strlen(s) != len) {
        snprintf(why, WHY_MAX, "\"%s\" is too long or holds a NUL character", key);
        return false;
    }
    memcpy(dst, s, len + 1);
    return true;
}

enum line_result { LINE_OK, LINE_NOT_JSON, LINE_BAD, LINE_VERSION };

/* Parse line `line` (len bytes, no newline) into *e. LINE_NOT_JSON: not a JSON document (what
 * a cut-short append leaves); LINE_BAD: JSON, but not a valid entry; LINE_VERSION: an entry of
 * another format version (*version). `why` says what is wrong. */
static enum line_result parse_line(const char *line, size_t len, struct vf_journal_entry *e,
                                   json_int_t *version, char why[WHY_MAX])
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        snprintf(why, WHY_MAX, "not valid JSON (%s at column %d)", jerr.text, jerr.column);
        return LINE_NOT_JSON;
    }
    enum line_result r = LINE_BAD;
    memset(e, 0, sizeof *e);
    if (!json_is_object(o)) {
        snprintf(why, WHY_MAX, "not a JSON object");
        goto out;
    }
    json_t *v = json_object_get(o, "v");
    if (!json_is_integer(v)) {
        snprintf(why, WHY_MAX, "\"v\" (the format version) is missing or not an integer");
        goto out;
    }
    if (json_integer_value(v) != JOURNAL_VERSION) {
        *version = json_integer_value(v);
        r = LINE_VERSION;
        goto out;
    }
    const char *key;
    json_t *value;
    json_object_foreach(o, key, value)
    {
        size_t k = 0;
        while (k < N_KEYS && strcmp(key, keys[k]))
            k++;
        if (k == N_KEYS) {
            snprintf(why, WHY_MAX, "unknown key \"%.64s\"", key);
            goto out;
        }
    }
    for (size_t k = 0; k < N_KEYS; k++)
        if (!json_object_get(o, keys[k])) {
            snprintf(why, WHY_MAX, "\"%s\" is missing", keys[k]);
            goto out;
        }
    json_int_t chunk, frames, rank, attempt;
    if (!get_int(o, "chunk", 0, INT_MAX, &chunk, why) || !get_str(o, "hash", e->hash, sizeof e->hash, why) ||
        !get_str(o, "segment", e->segment, sizeof e->segment, why) ||
        !get_int(o, "frames", 1, INT64_MAX, &frames, why) ||
        !get_str(o, "checksum", e->checksum, sizeof e->checksum, why) ||
        !get_int(o, "rank", 0, INT_MAX, &rank, why) || !get_int(o, "attempt", 1, INT_MAX, &attempt, why) ||
        !get_num(o, "seconds", &e->seconds, why) || !get_num(o, "decode", &e->t_decode, why) ||
        !get_num(o, "infer", &e->t_infer, why) || !get_num(o, "encode", &e->t_encode, why) ||
        !get_str(o, "time", e->time, sizeof e->time, why))
        goto out;
    e->chunk = (int)chunk;
    e->frames = (int64_t)frames;
    e->rank = (int)rank;
    e->attempt = (int)attempt;
    if (entry_ok(e, true, why))
        r = LINE_OK;
out:
    json_decref(o);
    return r;
}

/* ---- open --------------------------------------------------------------------------------- */

static int reserve(struct vf_journal *j, struct vf_error *err)
{
    if (j->n < j->cap)
        return 0;
    size_t cap = j->cap ? 2 * j->cap : 64;
    struct vf_journal_entry *p = realloc(j->entries, cap * sizeof *p);
    if (!p)
        return vf_error_set(err, VF_ENOMEM, "journal %s: out of memory for %zu entries", j->path, cap);
    j->entries = p;
    j->cap = cap;
    return 0;
}

/* The whole file, malloc'd, in *buf (*len bytes). */
static int read_all(struct vf_journal *j, char **buf, size_t *len, struct vf_error *err)
{
    struct stat st;
    if (fstat(j->fd, &st) < 0)
        return vf_error_set(err, VF_EIO, "journal %s: fstat: %s", j->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vf_error_set(err, VF_EINVAL,
                            "journal %s: not a regular file; remove it (or %s) to start over", j->path,
                            j->dir);
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *b = malloc(cap);
    if (!b)
        return vf_error_set(err, VF_ENOMEM, "journal %s: out of memory reading %lld bytes", j->path,
                            (long long)st.st_size);
    for (;;) {
        if (n == cap) { /* the file grew since fstat */
            char *p = realloc(b, 2 * cap);
            if (!p) {
                free(b);
                return vf_error_set(err, VF_ENOMEM, "journal %s: out of memory reading it", j->path);
            }
            b = p;
            cap *= 2;
        }
        ssize_t r = read(j->fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(b);
            return vf_error_set(err, VF_EIO, "journal %s: read: %s", j->path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* Read every line of the open file into j->entries (the damage rules are at the top). */
static int load(struct vf_journal *j, struct vf_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int r = read_all(j, &buf, &len, err);
    if (r < 0)
        return r;
    size_t pos = 0, line_no = 0;
    while (pos < len) {
        line_no++;
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        bool last = !nl || (size_t)(nl - buf) + 1 == len;
        char why[WHY_MAX] = "";
        json_int_t version = 0;
        enum line_result lr = nl ? parse_line(line, line_len, &j->entries[j->n], &version, why)
                                 : LINE_NOT_JSON;
        if (last && (!nl || lr == LINE_NOT_JSON)) {
            vf_log(&log_ctx, VF_LOG_WARN,
                   "journal %s line %zu: dropped an incomplete last entry (%zu bytes, %s; an "
                   "append cut short by a crash): its chunk will run again, and the line is cut "
                   "off before %s append",
                   j->path, line_no, len - pos, nl ? why : "no newline at its end",
                   j->read_only ? "a run's first" : "the next");
            j->truncate_pending = true;
            break;
        }
        if (lr == LINE_VERSION) {
            r = vf_error_set(err, VF_ECORRUPT,
                             "journal %s line %zu: an entry of format version %lld, but this "
                             "vaefarm reads version %d (was the folder used by another vaefarm?): "
                             "remove %s to start over",
                             j->path, line_no, (long long)version, JOURNAL_VERSION, j->dir);
            goto out;
        }
        if (lr != LINE_OK) {
            r = vf_error_set(err, VF_ECORRUPT,
                             "journal %s line %zu: damaged: %s; remove %s to start over", j->path,
                             line_no, why, j->dir);
            goto out;
        }
        j->n++;
        pos += line_len + 1;
        j->size = (off_t)pos;
        if ((r = reserve(j, err)) < 0)
            goto out;
    }
    r = 0;
out:
    free(buf);
    return r;
}

/* Open `path` for appending (creating it) or, with read_only, for reading (VF_ENOENT when it is
 * missing), and read every entry. */
static int journal_open(struct vf_journal **out, const char *path, bool read_only,
                        struct vf_error *err)
{
    VF_ASSERT(out && path);
    *out = NULL;
    struct vf_journal *j = calloc(1, sizeof *j);
    if (!j)
        return vf_error_set(err, VF_ENOMEM, "journal %s: out of memory", path);
    j->fd = -1;
    j->read_only = read_only;
    int r;
    if (!(j->path = vf_strdup(path, err)) || !(j->dir = vf_path_dirname(path, err))) {
        r = VF_ENOMEM;
        goto fail;
    }
    do
        /* O_NONBLOCK: a FIFO in its place must not hang the reader (read_all refuses it) */
        j->fd = read_only ? open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
                          : open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    while (j->fd < 0 && errno == EINTR);
    if (j->fd < 0) {
        int e = errno;
        if (e == EISDIR)
            r = vf_error_set(err, VF_EINVAL, "journal %s is a folder, not a file; remove it (or "
                             "%s) to start over", path, j->dir);
        else if (read_only)
            r = vf_error_set(err, e == ENOENT ? VF_ENOENT : VF_EIO, "journal %s: %s", path,
                             strerror(e));
        else
            r = vf_error_set(err, e == ENOENT ? VF_ENOENT : VF_EIO,
                             "journal %s: cannot open or create it: %s; check that the folder %s "
                             "exists and is writable",
                             path, strerror(e), j->dir);
        goto fail;
    }
    /* the file may be new: make its name durable with it */
    if ((!read_only && (r = vf_shard_fsync_dir_(path, err)) < 0) || (r = reserve(j, err)) < 0 ||
        (r = load(j, err)) < 0)
        goto fail;
    *out = j;
    return 0;
fail:
    vf_journal_close(&j);
    return r;
}

int vf_journal_open(struct vf_journal **out, const char *path, struct vf_error *err)
{
    return journal_open(out, path, false, err);
}

int vf_journal_read(struct vf_journal **out, const char *path, struct vf_error *err)
{
    return journal_open(out, path, true, err);
}

/* ---- queries ------------------------------------------------------------------------------ */

size_t vf_journal_count(const struct vf_journal *j)
{
    VF_ASSERT(j);
    return j->n;
}

const struct vf_journal_entry *vf_journal_get(const struct vf_journal *j, size_t i)
{
    VF_ASSERT(j);
    return i < j->n ? &j->entries[i] : NULL;
}

const struct vf_journal_entry *vf_journal_find(const struct vf_journal *j, int chunk,
                                               const char *hash)
{
    VF_ASSERT(j);
    for (size_t i = j->n; i-- > 0;)
        if (j->entries[i].chunk == chunk && (!hash || !strcmp(j->entries[i].hash, hash)))
            return &j->entries[i];
    return NULL;
}

/* ---- append ------------------------------------------------------------------------------- */

/* Cut the file back to the good lines. 0, or -1 with errno (truncate_pending stays set). */
static int cut_back(struct vf_journal *j)
{
    int r;
    do
        r = ftruncate(j->fd, j->size);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        j->truncate_pending = false;
    return r;
}

/* Undo a failed append: cut off whatever of the line reached the file. Returns `code` with
 * err's message extended when the cut itself failed (the next append tries again). */
static int undo_append(struct vf_journal *j, int code, struct vf_error *err)
{
    j->truncate_pending = true;
    if (cut_back(j) < 0 && err) {
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof err->msg - len,
                 " (and cutting the partial line off failed: %s; the next append tries again)",
                 strerror(errno));
    }
    return code;
}

int vf_journal_append(struct vf_journal *j, struct vf_journal_entry *e, struct vf_error *err)
{
    VF_ASSERT(j && e);
    if (j->read_only)
        return vf_error_set(err, VF_EINTERNAL, "journal %s: opened to read, not to append chunk %d",
                            j->path, e->chunk);
    char why[WHY_MAX];
    if (!entry_ok(e, false, why))
        return vf_error_set(err, VF_EINVAL, "journal %s: entry for chunk %d not appended: %s",
                            j->path, e->chunk, why);
    int r = reserve(j, err);
    if (r < 0)
        return r;

    time_t now = time(NULL);
    struct tm tm;
    if (now == (time_t)-1 || !gmtime_r(&now, &tm) ||
        strftime(e->time, sizeof e->time, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return vf_error_set(err, VF_EINTERNAL, "journal %s: cannot read the UTC time", j->path);

    json_t *o = json_pack("{s:i, s:i, s:s, s:s, s:I, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:s}",
                          "v", JOURNAL_VERSION, "chunk", e->chunk, "hash", e->hash, "segment",
                          e->segment, "frames", (json_int_t)e->frames, "checksum", e->checksum,
                          "rank", e->rank, "attempt", e->attempt, "seconds", e->seconds, "decode",
                          e->t_decode, "infer", e->t_infer, "encode", e->t_encode, "time", e->time);
    if (!o)
        return vf_error_set(err, VF_EINVAL,
                            "journal %s: entry for chunk %d not appended: its segment path is not "
                            "UTF-8 (or out of memory)",
                            j->path, e->chunk);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return vf_error_set(err, VF_ENOMEM, "journal %s: out of memory writing an entry", j->path);
    size_t len = strlen(text);
    char *line = realloc(text, len + 2);
    if (!line) {
        free(text);
        return vf_error_set(err, VF_ENOMEM, "journal %s: out of memory writing an entry", j->path);
    }
    line[len++] = '\n';
    line[len] = '\0';

    if (j->truncate_pending && cut_back(j) < 0) {
        r = vf_error_set(err, VF_EIO,
                         "journal %s: cutting off the incomplete last line (ftruncate to %lld "
                         "bytes): %s",
                         j->path, (long long)j->size, strerror(errno));
        goto out;
    }
    /* One line, written on after a short write (a signal, a filling disk): the write that then
     * fails says why. A crash leaves a prefix of this line at most; undo_append cuts it off. */
    size_t done;
    if (vf_write_all(j->fd, line, len, &done) < 0) {
        int errnum = errno;
        char part[64] = "";
        if (done)
            snprintf(part, sizeof part, " (wrote %zu of %zu bytes)", done, len);
        r = undo_append(j, vf_error_set(err, vf_io_status(errnum), "journal %s: appending chunk %d%s: %s",
                                        j->path, e->chunk, part, strerror(errnum)),
                        err);
        goto out;
    }
    int s;
    do
        s = fsync(j->fd);
    while (s < 0 && errno == EINTR);
    if (s < 0) {
        r = undo_append(j, vf_error_set(err, vf_io_status(errno), "journal %s: fsync after chunk %d: %s",
                                        j->path, e->chunk, strerror(errno)),
                        err);
        goto out;
    }
    j->entries[j->n++] = *e;
    j->size += (off_t)len;
    r = 0;
out:
    free(line);
    return r;
}

void vf_journal_close(struct vf_journal **pj)
{
    struct vf_journal *j = pj ? *pj : NULL;
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd); /* every append was fsync'd: nothing is lost if close fails */
    free(j->entries);
    free(j->dir);
    free(j->path);
    free(j);
    *pj = NULL;
}
