/* common/common.c: errors, logging and small helpers (see common.h). */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* The next unit of text at p: a whole UTF-8 character to keep (its length; *esc false), or bytes
 * to write as \xNN (*esc true): a C0 control but tab and newline, DEL, a C1 control (C2 80..C2
 * 9F, both bytes), or one byte that starts no valid UTF-8 sequence (as jansson checks: no
 * overlong forms, no surrogates, nothing past U+10FFFF). Reads no byte past a NUL. */
static size_t next_unit(const unsigned char *p, bool *esc)
{
    const unsigned c = p[0];
    *esc = false;
    if (c < 0x80) {
        *esc = (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f;
        return 1;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;   /* the second byte's range */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : lo;
        hi = c == 0xed ? 0x9f : hi;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi;
    } else {
        *esc = true;
        return 1;
    }
    if (p[1] < lo || p[1] > hi) {
        *esc = true;
        return 1;
    }
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) {
            *esc = true;
            return 1;
        }
    *esc = c == 0xc2 && p[1] <= 0x9f;
    return len;
}

void vf_escape_controls(char *s, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    bool esc = false;
    size_t k;
    while (*p && (k = next_unit(p, &esc), !esc))
        p += k;
    if (!*p || cap < 2)
        return;
    char *out = malloc(cap);
    if (!out) {   /* no room to expand them: each escaped byte becomes '?' */
        for (unsigned char *q = (unsigned char *)s; *q; q += k)
            if ((k = next_unit(q, &esc)), esc)
                memset(q, '?', k);
        return;
    }
    size_t n = (size_t)(p - (const unsigned char *)s);
    memcpy(out, s, n);
    while (*p) {   /* what does not fit is cut at a whole unit, never inside a character */
        k = next_unit(p, &esc);
        if (n + (esc ? 4 * k : k) >= cap)
            break;
        if (esc) {
            for (size_t i = 0; i < k; i++, p++)
                n += (size_t)snprintf(out + n, cap - n, "\\x%02X", *p);
        } else {
            memcpy(out + n, p, k);
            n += k;
            p += k;
        }
    }
    out[n] = '\0';
    memcpy(s, out, n + 1);
    free(out);
}

int vf_error_set(struct vf_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        vf_escape_controls(err->msg, sizeof err->msg);
        err->code = code;
    }
    return code;
}

int vf_error_prefix(struct vf_error *err, const char *fmt, ...)
{
    if (!err)
        return VF_EINTERNAL;
    char head[VF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof head - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err->code;
    size_t hl = strlen(head);
    memcpy(head + hl, ": ", 3);
    hl += 2;
    size_t ol = strnlen(err->msg, sizeof err->msg - 1);
    if (hl + ol > sizeof err->msg - 1)
        ol = sizeof err->msg - 1 - hl; /* keep the new context, cut the old tail */
    memmove(err->msg + hl, err->msg, ol);
    memcpy(err->msg, head, hl);
    err->msg[hl + ol] = '\0';
    vf_escape_controls(err->msg, sizeof err->msg);
    return err->code;
}

int vf_error_suffix(struct vf_error *err, const char *fmt, ...)
{
    if (!err)
        return VF_EINTERNAL;
    size_t n = strnlen(err->msg, sizeof err->msg - 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - n, fmt, ap);
    va_end(ap);
    vf_escape_controls(err->msg, sizeof err->msg);
    return err->code;
}

void vf_error_clear(struct vf_error *err)
{
    if (err) {
        err->code = VF_OK;
        err->msg[0] = '\0';
    }
}

const char *vf_status_str(int code)
{
    switch (code) {
    case VF_OK: return "success";
    case VF_EINVAL: return "invalid input";
    case VF_ENOENT: return "file not found";
    case VF_EIO: return "input/output error";
    case VF_ENOMEM: return "out of memory";
    case VF_EMEDIA: return "media error";
    case VF_EUNSUPPORTED: return "not supported";
    case VF_ECORRUPT: return "corrupt file";
    case VF_EINTERNAL: return "internal error";
    case VF_EINTERRUPTED: return "interrupted";
    case VF_ENOSPC: return "no space left on device";
    }
    return "unknown error";
}

int vf_io_status(int errnum)
{
    return errnum == ENOSPC || errnum == EDQUOT ? VF_ENOSPC : VF_EIO;
}

int vf_write_all(int fd, const void *p, size_t n, size_t *done)
{
    const char *c = p;
    size_t left = n;
    int r = 0;
    while (left) {
        ssize_t k = write(fd, c, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = ENOSPC;
            r = -1;
            break;
        }
        c += k;
        left -= (size_t)k;
    }
    if (done)
        *done = n - left;
    return r;
}

bool vf_dir_room(const char *dir, uint64_t *free_bytes, dev_t *dev)
{
    struct statvfs sv;
    struct stat st;
    if (statvfs(dir, &sv) != 0 || sv.f_blocks == 0 || (dev && stat(dir, &st) != 0))
        return false;
    *free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (dev)
        *dev = st.st_dev;
    return true;
}

/* ---- logging ------------------------------------------------------------------------------ */
static void default_sink(void *opaque, int level, const struct vf_log_ctx *ctx, const char *line)
{
    static const char *names[] = {"error", "warning", "info", "verbose", "debug"};
    (void)opaque;
    const char *mod = ctx && ctx->module ? ctx->module : "vaefarm";
    if (level <= VF_LOG_WARN)
        fprintf(stderr, "[%s] %s: %s\n", mod, names[level], line);
    else
        fprintf(stderr, "[%s] %s\n", mod, line);
}

static vf_log_sink_fn log_sink = default_sink;
static void *log_opaque;
static int log_level = VF_LOG_INFO;

void vf_log_set_sink(vf_log_sink_fn sink, void *opaque)
{
    log_sink = sink ? sink : default_sink;
    log_opaque = opaque;
}

void vf_log_set_level(int level) { log_level = level; }
int vf_log_get_level(void) { return log_level; }

void vf_log(const struct vf_log_ctx *ctx, int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    vf_escape_controls(line, sizeof line);
    if (level < VF_LOG_ERROR)
        level = VF_LOG_ERROR;
    if (level > VF_LOG_DEBUG)
        level = VF_LOG_DEBUG;
    log_sink(log_opaque, level, ctx, line);
}

__attribute__((noreturn)) void vf_assert_fail_(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "vaefarm: internal error: assertion `%s` failed in %s (%s:%d)\n"
                    "this is a bug in vaefarm; please report it with the command you ran\n",
            expr, func, file, line);
    abort();
}

/* ---- helpers ------------------------------------------------------------------------------ */
char *vf_strdup(const char *s, struct vf_error *err)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        vf_error_set(err, VF_ENOMEM, "out of memory copying a string of %zu bytes", strlen(s));
    return d;
}

void *vf_calloc(size_t n, size_t size, struct vf_error *err)
{
    if (size && n > SIZE_MAX / size) {
        vf_error_set(err, VF_ENOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        vf_error_set(err, VF_ENOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

char *vf_path_join(const char *dir, const char *rel, struct vf_error *err)
{
    if (!rel)
        return NULL;
    if (rel[0] == '/' || !dir || !dir[0])
        return vf_strdup(rel, err);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (!p) {
        vf_error_set(err, VF_ENOMEM, "out of memory joining paths");
        return NULL;
    }
    snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", rel);
    return p;
}

char *vf_path_dirname(const char *path, struct vf_error *err)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (!slash)
        return vf_strdup(".", err);
    if (slash == path)
        return vf_strdup("/", err);
    size_t n = (size_t)(slash - path);
    char *p = malloc(n + 1);
    if (!p) {
        vf_error_set(err, VF_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(p, path, n);
    p[n] = '\0';
    return p;
}

int vf_open_regular(const char *path, int64_t *size, struct vf_error *err)
{
    int fd;   /* (a socket does not open: ENXIO; a file under a lease opens without waiting) */
    do
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;
        vf_error_set(err, e == ENOENT || e == ENOTDIR ? VF_ENOENT : VF_EIO, "%s: %s", path,
                     strerror(e));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        vf_error_set(err, VF_EIO, "%s: %s", path, strerror(e));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        vf_error_set(err, VF_EINVAL, "%s is %s, not a file", path,
                     S_ISDIR(st.st_mode)    ? "a folder"
                     : S_ISFIFO(st.st_mode) ? "a pipe (FIFO)"
                                            : "a device");
        return -1;
    }
    /* reads are plain again (O_NONBLOCK only kept the open from waiting) */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size)
        *size = (int64_t)st.st_size;
    return fd;
}

int vf_read_regular(const char *path, void **buf, size_t *len, struct vf_error *err)
{
    struct vf_error scratch = {0};
    if (!err)
        err = &scratch;
    *buf = NULL;
    *len = 0;
    int64_t n = 0;
    int fd = vf_open_regular(path, &n, err);
    if (fd < 0)
        return err->code;
    int rc = VF_OK;
    char *b = NULL;
    if (n < 0 || (uint64_t)n >= SIZE_MAX / 2) {
        rc = vf_error_set(err, VF_ENOMEM, "%s: %lld bytes cannot be read into memory", path,
                          (long long)n);
        goto out;
    }
    if (!(b = malloc((size_t)n + 1))) {
        rc = vf_error_set(err, VF_ENOMEM, "%s: out of memory for %lld bytes", path, (long long)n);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)n) {
        size_t want = (size_t)n - got;
        ssize_t r = read(fd, b + got, want > ((size_t)1 << 30) ? (size_t)1 << 30 : want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = vf_error_set(err, VF_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) {
            rc = vf_error_set(err, VF_EIO, "%s: read %zu of its %lld bytes: the file shrank while "
                              "being read; try again once nothing writes it", path, got,
                              (long long)n);
            goto out;
        }
        got += (size_t)r;
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    b = NULL;
out:
    free(b);
    close(fd);
    return rc;
}

bool vf_str_is_digits(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* The first number after `key` (a line's start; NULL: the file's first line) in the file at
 * dir/name (×1024 for a "kB" line), or -1 (no file, no such line, "max"). */
static long long read_number(const char *dir, const char *name, const char *key)
{
    char path[8320];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long long v = -1;
    const size_t kl = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f)) {
        if (key && (strncmp(line, key, kl) != 0 || (line[kl] != ' ' && line[kl] != ':')))
            continue;
        const char *p = line + kl + (key && line[kl] == ':');
        char *end = NULL;
        errno = 0;
        const long long n = strtoll(p, &end, 10);
        if (errno == 0 && end != p && n >= 0)
            v = strstr(end, "kB") ? n * 1024 : n;
        break;
    }
    fclose(f);
    return v;
}

/* The least room that the memory control groups from `dir` up to `root` (both included) leave:
 * limit − (use − inactive file pages, which the kernel reclaims first), or -1 where none has a
 * limit. v1: the limit files of the memory hierarchy (limits ≥ 2^60 mean none). */
static long long group_room(const char *root, const char *dir, bool v1)
{
    char d[8200];
    snprintf(d, sizeof d, "%s", dir);
    const size_t rl = strlen(root);
    long long room = -1;
    for (;;) {
        const long long lim = read_number(d, v1 ? "memory.limit_in_bytes" : "memory.max", NULL);
        const long long use = read_number(d, v1 ? "memory.usage_in_bytes" : "memory.current", NULL);
        if (lim >= 0 && lim < (1LL << 60) && use >= 0) {
            long long idle = read_number(d, "memory.stat", v1 ? "total_inactive_file" : "inactive_file");
            const long long held = use - (idle > 0 && idle < use ? idle : 0);
            const long long r = lim > held ? lim - held : 0;
            room = room < 0 || r < room ? r : room;
        }
        char *slash = strrchr(d, '/');
        if (strlen(d) <= rl || !slash || (size_t)(slash - d) < rl)
            break;
        *slash = '\0';   /* the parent group */
    }
    return room;
}

size_t vf_mem_available_at_(const char *proc, const char *cgroup)
{
    long long avail = read_number(proc, "meminfo", "MemAvailable");
    /* this process's groups: "0::/path" (v2), "N:...memory...:/path" (v1) */
    char path[4096];
    snprintf(path, sizeof path, "%s/self/cgroup", proc);
    FILE *f = fopen(path, "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';   /* line: the hierarchy's number */
        const char *ctl = c1 + 1, *rel = c2 + 1;
        bool v2 = !strcmp(line, "0") && !*ctl, v1 = false;
        for (const char *t = ctl; !v2 && *t; t += strcspn(t, ","), t += *t == ',')
            v1 |= !strncmp(t, "memory", 6) && (t[6] == ',' || !t[6]);
        if (!v1 && !v2)
            continue;
        char root[4096], dir[8200];
        snprintf(root, sizeof root, v1 ? "%s/memory" : "%s", cgroup);
        snprintf(dir, sizeof dir, "%s%s", root, strcmp(rel, "/") ? rel : "");
        const long long room = group_room(root, dir, v1);
        if (room >= 0 && (avail < 0 || room < avail))
            avail = room;
    }
    if (f)
        fclose(f);
    if (avail < 0)
        return 0;                       /* unknown */
    return avail > 0 ? (size_t)avail : 1;   /* none left is known: 1 byte, not "unknown" */
}

size_t vf_mem_available(void)
{
    return vf_mem_available_at_("/proc", "/sys/fs/cgroup");
}

double vf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
