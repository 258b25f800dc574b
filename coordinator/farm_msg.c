/*
 * coordinator/farm_msg.c: the farm's messages and the two ways they travel (MPI between
 * processes; a mailbox between rank 0's coordinator and its worker thread), the process-wide
 * stop flag that signals and STOP set, and the seam files (docs/FARM.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/crc.h>

#include "config/config.h"
#include "coordinator/farm.h"

atomic_int vf_farm_stop;
volatile sig_atomic_t vf_farm_signal;

static void on_signal(int sig)
{
    vf_farm_signal = sig;
    atomic_store(&vf_farm_stop, 1);
}

void vf_farm_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* sigaction only fails for an invalid signal number; these are valid. SIGUSR1 and SIGUSR2
     * stop as SIGTERM does: Open MPI's mpirun passes them on to every rank and then returns the
     * ranks' status (10), where a SIGTERM to mpirun ends it with 1 and SIGKILLs the ranks after a
     * few seconds (slurm/README.md) */
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGUSR1, &sa, NULL);
    (void)sigaction(SIGUSR2, &sa, NULL);
}

const char *vf_farm_signal_name(int sig)
{
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "a signal";
    }
}

void vf_msg_init(struct vf_msg *m, int type, int rank)
{
    memset(m, 0, sizeof *m);
    memcpy(m->magic, VF_MSG_MAGIC, 4);
    m->version = VF_MSG_VERSION;
    m->type = type;
    m->rank = rank;
}

int vf_msg_check(const struct vf_msg *m, int from, struct vf_error *err)
{
    if (memcmp(m->magic, VF_MSG_MAGIC, 4) != 0)
        return vf_error_set(err, VF_EINVAL, "rank %d sent a message that is not vaefarm's: run the "
                            "same vaefarm on every rank", from);
    if (m->version != VF_MSG_VERSION)
        return vf_error_set(err, VF_EINVAL, "rank %d speaks message version %d, this build speaks "
                            "%d: run the same vaefarm on every rank", from, (int)m->version,
                            VF_MSG_VERSION);
    if (m->type < VF_MSG_READY || m->type > VF_MSG_RELEASE)
        return vf_error_set(err, VF_EINVAL, "rank %d sent a message of unknown type %d", from,
                            (int)m->type);
    return VF_OK;
}

/* ---- on the wire (MPI) ----------------------------------------------------------------------- */

struct wire {                   /* then the strings' bytes: checksum, host, device, text */
    char magic[4];
    int32_t version;            /* where vf_msg has it too: an older build's message is named */
    int32_t type, rank, chunk, attempt, status, pid;
    int64_t done, total, frames_kept, frames_warmup, frames_passthrough;
    double t_decode, t_infer, t_encode, t_total;
    int64_t mem_peak, mem_network;
    uint16_t len[4];
};
#define WIRE_MAX (sizeof(struct wire) + 65 + 64 + 64 + VF_ERROR_MSG_MAX)
/* READY (host, device) and DONE (checksum) stay under Open MPI's inline send size (vader's
 * btl_vader_max_inline_send, 256 bytes) */
_Static_assert(sizeof(struct wire) + 63 + 63 <= 256 && sizeof(struct wire) + 64 <= 256,
               "a message without a text must stay under 256 bytes");

static size_t pack(const struct vf_msg *m, unsigned char *buf)
{
    struct wire w = {.version = m->version, .type = m->type, .rank = m->rank, .chunk = m->chunk,
                     .attempt = m->attempt, .status = m->status, .pid = m->pid, .done = m->done,
                     .total = m->total, .frames_kept = m->frames_kept,
                     .frames_warmup = m->frames_warmup,
                     .frames_passthrough = m->frames_passthrough, .t_decode = m->t_decode,
                     .t_infer = m->t_infer, .t_encode = m->t_encode, .t_total = m->t_total,
                     .mem_peak = m->mem_peak, .mem_network = m->mem_network};
    memcpy(w.magic, m->magic, 4);
    const char *str[4] = {m->checksum, m->host, m->device, m->text};
    const size_t cap[4] = {sizeof m->checksum, sizeof m->host, sizeof m->device, sizeof m->text};
    size_t n = sizeof w;
    for (int i = 0; i < 4; i++) {
        size_t l = strnlen(str[i], cap[i] - 1);
        w.len[i] = (uint16_t)l;
        memcpy(buf + n, str[i], l);
        n += l;
    }
    memcpy(buf, &w, sizeof w);
    return n;
}

static int unpack(const unsigned char *buf, size_t n, int from, struct vf_msg *m,
                  struct vf_error *err)
{
    struct wire w;
    memset(m, 0, sizeof *m);
    if (n < 8)
        return vf_error_set(err, VF_EINVAL, "rank %d sent a message of %zu bytes, which is not "
                            "vaefarm's: run the same vaefarm on every rank", from, n);
    memcpy(m->magic, buf, 4);
    memcpy(&m->version, buf + 4, 4);
    m->type = VF_MSG_READY;                 /* magic and version first: names an older build */
    int rc = vf_msg_check(m, from, err);
    if (rc < 0)
        return rc;
    if (n < sizeof w)
        return vf_error_set(err, VF_EINVAL, "rank %d sent a truncated message (%zu bytes)", from, n);
    memcpy(&w, buf, sizeof w);
    char *str[4] = {m->checksum, m->host, m->device, m->text};
    const size_t cap[4] = {sizeof m->checksum, sizeof m->host, sizeof m->device, sizeof m->text};
    size_t off = sizeof w;
    for (int i = 0; i < 4; i++) {
        if (w.len[i] >= cap[i] || off + w.len[i] > n)
            return vf_error_set(err, VF_EINVAL, "rank %d sent a malformed message", from);
        memcpy(str[i], buf + off, w.len[i]);
        str[i][w.len[i]] = 0;
        off += w.len[i];
    }
    if (off != n)
        return vf_error_set(err, VF_EINVAL, "rank %d sent a malformed message", from);
    m->type = w.type;
    m->rank = w.rank;
    m->chunk = w.chunk;
    m->attempt = w.attempt;
    m->status = w.status;
    m->pid = w.pid;
    m->done = w.done;
    m->total = w.total;
    m->frames_kept = w.frames_kept;
    m->frames_warmup = w.frames_warmup;
    m->frames_passthrough = w.frames_passthrough;
    m->t_decode = w.t_decode;
    m->t_infer = w.t_infer;
    m->t_encode = w.t_encode;
    m->t_total = w.t_total;
    m->mem_peak = w.mem_peak;
    m->mem_network = w.mem_network;
    return vf_msg_check(m, from, err);
}

/* Sends that never completed (their receiver died or hangs): MPI may still read their buffers,
 * which are therefore kept (reachable) until the process ends. */
static struct abandoned {
    struct abandoned *next;
    unsigned char buf[];
} *g_abandoned;

int vf_msg_send_mpi(const struct vf_msg *m, int dest, double timeout_s, struct vf_error *err)
{
    struct abandoned *a = malloc(sizeof *a + WIRE_MAX);
    if (!a)
        return vf_error_set(err, VF_ENOMEM, "out of memory for a message to rank %d", dest);
    size_t n = pack(m, a->buf);
    MPI_Request req = MPI_REQUEST_NULL;
    VF_CHECK_MPI(MPI_Isend(a->buf, (int)n, MPI_BYTE, dest, VF_MSG_TAG, MPI_COMM_WORLD, &req), err,
                 fail);
    /* a message without a text completes at once (inline); a bigger one when the receiver takes
     * it: test with short sleeps until then */
    double until = vf_now() + timeout_s;
    for (int spins = 0;; spins++) {
        int done = 0;
        VF_CHECK_MPI(MPI_Test(&req, &done, MPI_STATUS_IGNORE), err, fail);
        if (done) {
            free(a);
            return VF_OK;
        }
        if (vf_now() >= until)
            break;
        if (spins >= 16)
            vf_farm_sleep_ms(1);
    }
    VF_CHECK_MPI(MPI_Request_free(&req), err, fail);
    a->next = g_abandoned;
    g_abandoned = a;
    return vf_error_set(err, VF_FARM_ELOST, "rank %d has not taken a message for %.1f s: it is "
                        "gone or hangs", dest, timeout_s);
fail:
    if (req == MPI_REQUEST_NULL)
        free(a);
    else {                              /* MPI may still hold the buffer */
        a->next = g_abandoned;
        g_abandoned = a;
    }
    return err->code;
}

int vf_msg_recv_mpi(int source, struct vf_msg *m, int *from, struct vf_error *err)
{
    int flag = 0, count = 0;
    MPI_Status st;
    unsigned char buf[WIRE_MAX];
    VF_CHECK_MPI(MPI_Iprobe(source, VF_MSG_TAG, MPI_COMM_WORLD, &flag, &st), err, fail);
    if (!flag)
        return 0;
    VF_CHECK_MPI(MPI_Get_count(&st, MPI_BYTE, &count), err, fail);
    int src = st.MPI_SOURCE;
    if (count < 0 || (size_t)count > sizeof buf) {
        /* take it off the queue all the same (into a buffer of its size), then say what it is */
        void *junk = malloc(count > 0 ? (size_t)count : 1);
        if (junk) {
            VF_CHECK_MPI(MPI_Recv(junk, count, MPI_BYTE, src, VF_MSG_TAG, MPI_COMM_WORLD, &st),
                         err, fail_junk);
            int rc = (size_t)count >= 8 ? unpack(junk, 8, src, m, err) : VF_OK;
            free(junk);
            if (rc < 0)
                return rc;
        }
        return vf_error_set(err, VF_EINVAL, "rank %d sent a message of %d bytes, this build's are "
                            "at most %zu: run the same vaefarm on every rank", src, count,
                            sizeof buf);
fail_junk:
        free(junk);
        return err->code;
    }
    VF_CHECK_MPI(MPI_Recv(buf, count, MPI_BYTE, src, VF_MSG_TAG, MPI_COMM_WORLD, &st), err, fail);
    if (from)
        *from = src;
    int rc = unpack(buf, (size_t)count, src, m, err);
    return rc < 0 ? rc : 1;
fail:
    return err->code;
}

/* ---- mailbox ------------------------------------------------------------------------------ */

struct vf_mailbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct vf_msg *q;
    size_t head, n, cap;
};

int vf_mailbox_create(struct vf_mailbox **out, struct vf_error *err)
{
    struct vf_mailbox *mb = vf_calloc(1, sizeof *mb, err);
    if (!mb)
        return VF_ENOMEM;
    /* room up front for more than a worker and its coordinator ever queue (ASSIGN, PROGRESS,
     * DONE, STOP, BYE), so that a STOP never fails for want of memory */
    mb->cap = 64;
    if (!(mb->q = vf_calloc(mb->cap, sizeof *mb->q, err))) {
        free(mb);
        return VF_ENOMEM;
    }
    int rc = pthread_mutex_init(&mb->mu, NULL);
    if (rc) {
        free(mb->q);
        free(mb);
        return vf_error_set(err, VF_EINTERNAL, "pthread_mutex_init: %s", strerror(rc));
    }
    /* timed waits on the monotonic clock: a change of the wall clock (NTP stepping it) neither
     * cuts a wait short nor stretches it */
    pthread_condattr_t ca;
    const char *what = "pthread_condattr_init";
    if (!(rc = pthread_condattr_init(&ca))) {
        what = "pthread_condattr_setclock(CLOCK_MONOTONIC)";
        if (!(rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC))) {
            what = "pthread_cond_init";
            rc = pthread_cond_init(&mb->cv, &ca);
        }
        VF_ASSERT(pthread_condattr_destroy(&ca) == 0);
    }
    if (rc) {
        VF_ASSERT(pthread_mutex_destroy(&mb->mu) == 0);
        free(mb->q);
        free(mb);
        return vf_error_set(err, VF_EINTERNAL, "%s: %s", what, strerror(rc));
    }
    *out = mb;
    return VF_OK;
}

void vf_mailbox_destroy(struct vf_mailbox **mb)
{
    if (!mb || !*mb)
        return;
    VF_ASSERT(pthread_cond_destroy(&(*mb)->cv) == 0);
    VF_ASSERT(pthread_mutex_destroy(&(*mb)->mu) == 0);
    free((*mb)->q);
    free(*mb);
    *mb = NULL;
}

int vf_mailbox_put(struct vf_mailbox *mb, const struct vf_msg *m, struct vf_error *err)
{
    int rc = VF_OK;
    VF_ASSERT(pthread_mutex_lock(&mb->mu) == 0);
    if (mb->n == mb->cap) {
        size_t cap = mb->cap ? 2 * mb->cap : 8;
        struct vf_msg *q = vf_calloc(cap, sizeof *q, err);
        if (!q) {
            rc = VF_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < mb->n; i++)
            q[i] = mb->q[(mb->head + i) % mb->cap];
        free(mb->q);
        mb->q = q;
        mb->cap = cap;
        mb->head = 0;
    }
    mb->q[(mb->head + mb->n) % mb->cap] = *m;
    mb->n++;
    VF_ASSERT(pthread_cond_signal(&mb->cv) == 0);
out:
    VF_ASSERT(pthread_mutex_unlock(&mb->mu) == 0);
    return rc;
}

int vf_mailbox_get(struct vf_mailbox *mb, struct vf_msg *m, double timeout_s)
{
    VF_ASSERT(pthread_mutex_lock(&mb->mu) == 0);
    if (mb->n == 0 && timeout_s > 0) {
        struct timespec ts;
        VF_ASSERT(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);   /* the condition's clock */
        double t = ts.tv_sec + ts.tv_nsec * 1e-9 + timeout_s;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_nsec = 999999999L;
        while (mb->n == 0) {
            int rc = pthread_cond_timedwait(&mb->cv, &mb->mu, &ts);
            if (rc == ETIMEDOUT)
                break;
            VF_ASSERT(rc == 0);
        }
    }
    int got = 0;
    if (mb->n) {
        *m = mb->q[mb->head];
        mb->head = (mb->head + 1) % mb->cap;
        mb->n--;
        got = 1;
    }
    VF_ASSERT(pthread_mutex_unlock(&mb->mu) == 0);
    return got;
}

/* ---- links -------------------------------------------------------------------------------- */

int vf_link_send(const struct vf_link *l, const struct vf_msg *m, struct vf_error *err)
{
    if (!l->mpi)
        return vf_mailbox_put(l->to_coord, m, err);
    return vf_msg_send_mpi(m, 0, l->timeout > 0 ? l->timeout : 60, err);
}

void vf_farm_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int vf_link_recv(const struct vf_link *l, struct vf_msg *m, double timeout_s, struct vf_error *err)
{
    if (!l->mpi)
        return vf_mailbox_get(l->to_worker, m, timeout_s);
    double until = vf_now() + timeout_s;
    for (;;) {
        int rc = vf_msg_recv_mpi(0, m, NULL, err);
        if (rc != 0)
            return rc;
        if (vf_now() >= until)
            return 0;
        vf_farm_sleep_ms(2);
    }
}

/* ---- lost ranks, null mode --------------------------------------------------------------- */

/* The value of `key` in a NUL-separated environment block, or NULL. */
static const char *env_in(const char *env, size_t n, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < n;) {
        const char *e = env + i;
        size_t l = strnlen(e, n - i);
        if (l > kl && strncmp(e, key, kl) == 0 && e[kl] == '=')
            return e + kl + 1;
        i += l + 1;
    }
    return NULL;
}

int vf_farm_rank_alive(int pid, int rank, char *why, size_t why_len)
{
    why[0] = 0;
    const char *ns = getenv("PMIX_NAMESPACE");
    if (!ns || !*ns) {
        snprintf(why, why_len, "no PMIX_NAMESPACE in this process's environment: cannot tell "
                 "whether pid %d is rank %d of this job", pid, rank);
        return -1;
    }
    if (pid <= 0 || pid == (int)getpid()) {
        snprintf(why, why_len, "pid %d is not another process", pid);
        return -1;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ESRCH)
            return 0;
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* the environment block (an exited process that is not reaped yet has none) */
    size_t n = 0, cap = 1 << 16;
    char *env = malloc(cap);
    for (;;) {
        if (!env)
            break;
        if (n + 1 == cap) {
            char *bigger = cap < (1u << 24) ? realloc(env, 2 * cap) : NULL;
            if (!bigger)
                break;
            env = bigger;
            cap *= 2;
        }
        ssize_t k = read(fd, env + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (!env) {
        snprintf(why, why_len, "out of memory reading %s", path);
        return -1;
    }
    env[n] = 0;
    const char *their_ns = env_in(env, n, "PMIX_NAMESPACE");
    const char *their_rank = env_in(env, n, "PMIX_RANK");
    char want[16];
    snprintf(want, sizeof want, "%d", rank);
    bool ours = their_ns && their_rank && strcmp(their_ns, ns) == 0 && strcmp(their_rank, want) == 0;
    if (!ours)
        snprintf(why, why_len, "pid %d is no longer rank %d of this job (%s): not signalled", pid,
                 rank, n == 0 ? "it has exited" : their_ns && strcmp(their_ns, ns) == 0 ?
                 "it is another rank" : "its pid is another process's now");
    free(env);
    return ours ? 1 : 0;     /* 0: gone (or its pid is another process's now) */
}

/* pidfd_open and pidfd_send_signal (Linux 5.1/5.3), through syscall(): glibc before 2.36 has no
 * wrappers. ENOSYS where the kernel (or its headers) lacks them. */
static int pidfd_open_(int pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0u);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int pidfd_kill_(int fd, int sig)
{
#ifdef SYS_pidfd_send_signal
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, (void *)NULL, 0u);
#else
    (void)fd;
    (void)sig;
    errno = ENOSYS;
    return -1;
#endif
}

int vf_farm_end_rank(int pid, int rank, char *why, size_t why_len)
{
    why[0] = 0;
    if (pid <= 0 || pid == (int)getpid()) {
        snprintf(why, why_len, "pid %d is not another process", pid);
        return -1;
    }
    /* pin the process first: whatever the check below reads, the signal goes to the process
     * that had this pid when it was pinned, or nowhere (ESRCH) once that one has exited, never
     * to a process that took its pid meanwhile */
    int fd = pidfd_open_(pid);
    if (fd < 0 && errno == ESRCH)
        return 0;
    if (fd < 0 && errno != ENOSYS) {
        snprintf(why, why_len, "pidfd_open(%d): %s", pid, strerror(errno));
        return -1;
    }
    int rc = vf_farm_rank_alive(pid, rank, why, why_len);
    if (rc <= 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (fd >= 0) {
        int bad = pidfd_kill_(fd, SIGKILL) != 0 ? errno : 0;
        close(fd);
        if (bad == ESRCH)
            return 0;
        if (bad) {
            snprintf(why, why_len, "pidfd_send_signal(%d, SIGKILL): %s", pid, strerror(bad));
            return -1;
        }
        return 1;
    }
    /* a kernel without pidfds (before 5.3): kill(2) just after the check */
    if (kill(pid, SIGKILL) != 0) {
        if (errno == ESRCH)
            return 0;
        snprintf(why, why_len, "kill(%d, SIGKILL): %s", pid, strerror(errno));
        return -1;
    }
    return 1;
}

bool vf_farm_under_mpirun(void)
{
    return getenv("OMPI_MCA_orte_hnp_uri") != NULL;
}

bool vf_farm_mpi_recovery(void)
{
    const char *rec = getenv("OMPI_MCA_orte_enable_recovery");
    return rec && strcmp(rec, "1") == 0;
}

int vf_farm_null_work_dir(struct vf_film *film, struct vf_error *err)
{
    char *dir = vf_path_join(film->work_dir, "null-colorizer", err);
    if (!dir)
        return VF_ENOMEM;
    free(film->work_dir);
    film->work_dir = dir;
    return VF_OK;
}

/* ---- seam files --------------------------------------------------------------------------- */

/* "VFSEAM2\0", the sha256 hex of the segment it goes with (64 bytes), u32 h, w, has_warm, CRC-32
 * of the floats, then h x w x 2 floats of the last warm-up frame's ab (when has_warm) and of the
 * last kept frame's. Version 1 had no segment checksum and no CRC. */
#define SEAM_MAGIC "VFSEAM2"

int vf_farm_write_atomic(const char *path, const void *const *parts, const size_t *lens, int n,
                         struct vf_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return vf_error_set(err, VF_EIO, "%s: %s", tmp, strerror(errno));
    int bad = 0;
    for (int i = 0; i < n && !bad; i++)
        bad = parts[i] && vf_write_all(fd, parts[i], lens[i], NULL);
    if (!bad)
        bad = fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        return vf_error_set(err, VF_EIO, "%s: %s", path, strerror(e));
    }
    return VF_OK;
}

/* CRC-32 (IEEE) of the seam's floats, n bytes each: a damaged file is refused, not measured. */
static int seam_crc(const float *warm_ab, const float *last_ab, size_t n, uint32_t *crc,
                    struct vf_error *err)
{
    const AVCRC *t = av_crc_get_table(AV_CRC_32_IEEE_LE);
    if (!t)
        return vf_error_set(err, VF_EINTERNAL, "libavutil has no CRC-32 table");
    uint32_t c = UINT32_MAX;
    if (warm_ab)
        c = av_crc(t, c, (const uint8_t *)warm_ab, n);
    *crc = av_crc(t, c, (const uint8_t *)last_ab, n) ^ UINT32_MAX;
    return VF_OK;
}

int vf_seam_write(const char *path, const char *segment_sha, int h, int w, const float *warm_ab,
                  const float *last_ab, struct vf_error *err)
{
    VF_ASSERT(segment_sha && strlen(segment_sha) == 64);
    /* little-endian on every machine vaefarm builds for (x86-64, aarch64) */
    size_t n = (size_t)2 * h * w * sizeof(float);
    uint32_t hdr[4] = {(uint32_t)h, (uint32_t)w, warm_ab ? 1 : 0, 0};
    if (seam_crc(warm_ab, last_ab, n, &hdr[3], err) < 0)
        return vf_error_prefix(err, "seam file %s", path);
    const void *parts[] = {SEAM_MAGIC, segment_sha, hdr, warm_ab, last_ab}; /* no warm-up: skipped */
    const size_t lens[] = {8, 64, sizeof hdr, n, n};
    int rc = vf_farm_write_atomic(path, parts, lens, 5, err);
    return rc < 0 ? vf_error_prefix(err, "seam file") : rc;
}

int vf_seam_read(const char *path, const char *segment_sha, int *h, int *w, float **warm_ab,
                 float **last_ab, struct vf_error *err)
{
    *warm_ab = *last_ab = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return vf_error_set(err, errno == ENOENT ? VF_ENOENT : VF_EIO, "seam file %s: %s", path,
                            strerror(errno));
    char magic[8] = {0}, sha[65] = {0};
    uint32_t hdr[4], crc;
    int rc = VF_OK;
    if (fread(magic, 1, 8, fp) != 8 || memcmp(magic, SEAM_MAGIC, 8) != 0) {
        rc = vf_error_set(err, VF_ECORRUPT, "seam file %s: %s", path,
                          memcmp(magic, "VFSEAM", 6) == 0 ? "of another vaefarm version"
                                                          : "not a vaefarm seam file");
        goto out;
    }
    if (fread(sha, 1, 64, fp) != 64 || fread(hdr, sizeof hdr, 1, fp) != 1 || hdr[0] == 0 ||
        hdr[1] == 0 || hdr[0] > 8192 || hdr[1] > 8192 || hdr[2] > 1) {
        rc = vf_error_set(err, VF_ECORRUPT, "seam file %s: damaged (its header is short or out "
                          "of range)", path);
        goto out;
    }
    if (segment_sha && strcmp(sha, segment_sha) != 0) {
        rc = vf_error_set(err, VF_ECORRUPT, "seam file %s: made with another segment than the "
                          "chunk's (sha256 %.12s..., not %.12s...)", path, sha, segment_sha);
        goto out;
    }
    size_t n = (size_t)2 * hdr[0] * hdr[1];
    /* the size the header promises, before any of it is allocated (a damaged header's 8192 x
     * 8192 would take 1 GiB for a file of 88 bytes) */
    struct stat stt = {0};
    if (fstat(fileno(fp), &stt) != 0 ||
        (uint64_t)stt.st_size != 8 + 64 + sizeof hdr + (hdr[2] + 1) * n * sizeof(float)) {
        rc = vf_error_set(err, VF_ECORRUPT, "seam file %s: damaged (%lld bytes, not the %ux%u "
                          "frames its header promises)", path, (long long)stt.st_size, hdr[1],
                          hdr[0]);
        goto out;
    }
    if (hdr[2]) {
        *warm_ab = vf_calloc(n, sizeof(float), err);
        if (!*warm_ab || fread(*warm_ab, sizeof(float), n, fp) != n) {
            rc = *warm_ab ? vf_error_set(err, VF_ECORRUPT, "seam file %s: truncated", path) : VF_ENOMEM;
            goto out;
        }
    }
    *last_ab = vf_calloc(n, sizeof(float), err);
    if (!*last_ab || fread(*last_ab, sizeof(float), n, fp) != n || fgetc(fp) != EOF) {
        rc = *last_ab ? vf_error_set(err, VF_ECORRUPT, "seam file %s: wrong length", path) : VF_ENOMEM;
        goto out;
    }
    if ((rc = seam_crc(*warm_ab, *last_ab, n * sizeof(float), &crc, err)) < 0)
        goto out;
    if (crc != hdr[3]) {
        rc = vf_error_set(err, VF_ECORRUPT, "seam file %s: damaged (its CRC does not match)", path);
        goto out;
    }
    *h = (int)hdr[0];
    *w = (int)hdr[1];
out:
    fclose(fp);
    if (rc < 0) {
        free(*warm_ab);
        free(*last_ab);
        *warm_ab = *last_ab = NULL;
    }
    return rc;
}
