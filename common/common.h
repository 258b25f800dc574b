/*
 * common/common.h: what every vaefarm module shares: the one error type, status codes,
 * context logging, assertions and the generic check macro that the per-library check macros
 * (VF_CHECK_AV in shard/, VF_CHECK_DNNL in kernels/, ...) are built on.
 *
 * common/ sits below every folder of DESIGN.md §2 and uses only libc. It never exits: only
 * coordinator/ decides to end the process.
 */
#ifndef VF_COMMON_H
#define VF_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Status codes: 0 is success, failures are negative. Each has a documented exit code in the
 * README (coordinator maps them). */
enum vf_status {
    VF_OK = 0,
    VF_EINVAL = -1,       /* bad input: configuration, arguments, a file's content */
    VF_ENOENT = -2,       /* a file that must exist does not */
    VF_EIO = -3,          /* reading or writing failed (permissions, disk full, ...) */
    VF_ENOMEM = -4,       /* out of memory */
    VF_EMEDIA = -5,       /* FFmpeg could not demux/decode/encode/mux the media */
    VF_EUNSUPPORTED = -6, /* valid, but not something vaefarm supports */
    VF_ECORRUPT = -7,     /* a file vaefarm wrote (journal, segment) is damaged */
    VF_EINTERNAL = -8,    /* a library failed in a way that is not the user's input */
    VF_EINTERRUPTED = -9, /* stopped by a signal */
    VF_ENOSPC = -10,      /* writing failed because a disk is full or a quota is reached */
};

#define VF_ERROR_MSG_MAX 2048

/* The one error type: a code and a message saying what failed, where (file, line:col, frame,
 * chunk, rank) and what to do. Filled by the function that failed; callers may prepend context. */
struct vf_error {
    int code;                    /* a negative enum vf_status, or VF_OK */
    char msg[VF_ERROR_MSG_MAX];  /* human-readable, one or more lines, no trailing newline */
};

/* Record an error (printf-style) and return `code`, so that `return vf_error_set(...)` reads
 * naturally. `err` may be NULL. A later call overwrites the message. */
int vf_error_set(struct vf_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend "context: " to an existing message (keeps the code). Returns err->code. */
int vf_error_prefix(struct vf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends printf-style text (advice: "; check the path") to err's message; returns err->code. */
int vf_error_suffix(struct vf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vf_error_clear(struct vf_error *err);
/* Rewrites, in place within `cap` bytes, each control character of `s` (C0 but tab and
 * newline, DEL, UTF-8 C1) and each byte of invalid UTF-8 as \xNN, so that a file name holding
 * an escape sequence or a carriage return is shown, not obeyed, by a terminal, and every message
 * is valid UTF-8 (a JSON string). vf_error_set, vf_error_prefix, vf_error_suffix and vf_log apply
 * it to every message; text cut at `cap` is lost from the end, at a whole character. */
void vf_escape_controls(char *s, size_t cap);
/* Short name of a status code, e.g. "invalid input". */
const char *vf_status_str(int code);
/* The status of a failed write or file operation that set errno `errnum`: VF_ENOSPC for a full
 * disk or a reached quota (ENOSPC, EDQUOT), else VF_EIO. */
int vf_io_status(int errnum);
/* The bytes an unprivileged writer may still put on the file system of folder `dir` (statvfs's
 * f_bavail), and its device (when `dev` is not NULL); false when not known: the call failed, or
 * the file system reports no size (f_blocks 0: FUSE without statfs), which is not judged. */
bool vf_dir_room(const char *dir, uint64_t *free_bytes, dev_t *dev);
/* write(2) of all n bytes of p to fd, going on after a short write (a signal, a disk filling) and
 * EINTR: 0, or -1 with errno set (ENOSPC where write made no progress without saying why), the
 * bytes that did go out in *done when not NULL. */
int vf_write_all(int fd, const void *p, size_t n, size_t *done);

/* ---- logging ------------------------------------------------------------------------------ */
enum vf_log_level { VF_LOG_ERROR = 0, VF_LOG_WARN, VF_LOG_INFO, VF_LOG_VERBOSE, VF_LOG_DEBUG };

/* Where a line comes from; any field may be left at its zero value (-1 for rank/chunk means
 * "not applicable"). */
struct vf_log_ctx {
    const char *module; /* "shard", "config", ... */
    int rank;           /* MPI rank, or -1 */
    long chunk;         /* chunk id, or -1 */
};

typedef void (*vf_log_sink_fn)(void *opaque, int level, const struct vf_log_ctx *ctx, const char *line);

/* The sink is chosen by coordinator/; the default writes "[module] line" to stderr. */
void vf_log_set_sink(vf_log_sink_fn sink, void *opaque);
void vf_log_set_level(int level);
int vf_log_get_level(void);
void vf_log(const struct vf_log_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- assertions and checks ---------------------------------------------------------------- */
/* A broken invariant (a bug, never bad input): print file:line and abort. */
#define VF_ASSERT(cond)                                                                        \
    do {                                                                                       \
        if (!(cond)) vf_assert_fail_(#cond, __FILE__, __LINE__, __func__);                    \
    } while (0)
__attribute__((noreturn)) void vf_assert_fail_(const char *expr, const char *file, int line,
                                              const char *func);

/* The generic check: when `failed` is true, record `code` with the statement, function, file,
 * line and the library's own message `detail`, then `goto label`. Per-library macros wrap it. */
#define VF_CHECK_(failed, err, code, label, stmt, detail)                                      \
    do {                                                                                       \
        if (failed) {                                                                          \
            vf_error_set((err), (code), "%s failed in %s (%s:%d): %s", (stmt), __func__,       \
                         __FILE__, __LINE__, (detail));                                        \
            goto label;                                                                        \
        }                                                                                      \
    } while (0)

/* ---- small helpers every module needs ----------------------------------------------------- */
/* strdup that records VF_ENOMEM in err on failure. */
char *vf_strdup(const char *s, struct vf_error *err);
/* Allocate n*size bytes, zeroed, checking the product for overflow. */
void *vf_calloc(size_t n, size_t size, struct vf_error *err);
/* Join a folder and a relative path ("dir/rel"); absolute `rel` is returned as is (copied). */
char *vf_path_join(const char *dir, const char *rel, struct vf_error *err);
/* Folder part of a path (malloc'd); "." when it has none. */
char *vf_path_dirname(const char *path, struct vf_error *err);
/* Open `path` to read only if it is a regular file (opening does not wait on a FIFO): the file
 * descriptor (O_CLOEXEC; *size its bytes when size is given), or -1 with err set: VF_ENOENT
 * when it is missing, VF_EINVAL when it is a folder, a pipe (FIFO) or a device ("<path> is a
 * folder, not a file"), VF_EIO otherwise. Messages begin with the path. */
int vf_open_regular(const char *path, int64_t *size, struct vf_error *err);
/* The whole of the regular file `path` (vf_open_regular: the same refusals and messages) in a
 * malloc'd buffer (*buf, NUL-terminated past *len for text; the caller frees), or a status with
 * err set: VF_ENOMEM, or VF_EIO where a read fails or the file shrank while being read. */
int vf_read_regular(const char *path, void **buf, size_t *len, struct vf_error *err);
/* True when s is one or more ASCII digits and nothing else. */
bool vf_str_is_digits(const char *s);
/* Monotonic seconds. */
double vf_now(void);
/* Bytes of memory this process can still take: /proc/meminfo's MemAvailable, or less where the
 * memory control groups it is in, from its own (/proc/self/cgroup) up to the hierarchy's root,
 * leave less (cgroup v2 memory.max, v1 memory.limit_in_bytes: Slurm's --mem, a container's
 * limit), a group's use counted without its inactive file pages (the page cache the kernel
 * reclaims first); 0 when none of it can be read, 1 when nothing is left. */
size_t vf_mem_available(void);
/* The same with other roots for /proc and /sys/fs/cgroup (tests). */
size_t vf_mem_available_at_(const char *proc, const char *cgroup);

#endif /* VF_COMMON_H */
