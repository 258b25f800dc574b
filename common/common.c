/* common/common.c: errors, logging and small helpers (see common.h). */
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int vf_error_set(struct vf_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
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
    }
    return "unknown error";
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

bool vf_str_is_digits(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* The first number after `key` in the file at `path` (×1024 for a "kB" line), or -1. */
static long long read_number(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long long v = -1;
    const size_t kl = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f)) {
        if (key && strncmp(line, key, kl) != 0)
            continue;
        char *end = NULL;
        errno = 0;
        const long long n = strtoll(line + kl, &end, 10);
        if (errno == 0 && end != line + kl && n >= 0)
            v = strstr(end, "kB") ? n * 1024 : n;
        break;
    }
    fclose(f);
    return v;
}

size_t vf_mem_available(void)
{
    long long avail = read_number("/proc/meminfo", "MemAvailable:");
    /* cgroup v2: the limit ("max": none) less what the group holds; v1: the limit alone */
    const long long max2 = read_number("/sys/fs/cgroup/memory.max", NULL);
    const long long cur2 = read_number("/sys/fs/cgroup/memory.current", NULL);
    const long long lim1 = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", NULL);
    const long long use1 = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", NULL);
    long long group = -1;
    if (max2 >= 0 && cur2 >= 0)
        group = max2 > cur2 ? max2 - cur2 : 0;
    else if (lim1 >= 0 && use1 >= 0 && lim1 < (1LL << 60))
        group = lim1 > use1 ? lim1 - use1 : 0;
    if (group >= 0 && (avail < 0 || group < avail))
        avail = group;
    return avail > 0 ? (size_t)avail : 0;
}

double vf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
