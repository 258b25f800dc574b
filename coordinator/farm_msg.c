/*
 * coordinator/farm_msg.c: the farm's messages and the two ways they travel (MPI between
 * processes; a mailbox between rank 0's coordinator and its worker thread), the process-wide
 * stop flag that signals and STOP set, and the seam files (docs/FARM.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    /* sigaction only fails for an invalid signal number; these two are valid */
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
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
    if (m->type < VF_MSG_READY || m->type > VF_MSG_LEAVE)
        return vf_error_set(err, VF_EINVAL, "rank %d sent a message of unknown type %d", from,
                            (int)m->type);
    return VF_OK;
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
    if ((rc = pthread_cond_init(&mb->cv, NULL))) {
        pthread_mutex_destroy(&mb->mu);
        free(mb->q);
        free(mb);
        return vf_error_set(err, VF_EINTERNAL, "pthread_cond_init: %s", strerror(rc));
    }
    *out = mb;
    return VF_OK;
}

void vf_mailbox_destroy(struct vf_mailbox **mb)
{
    if (!mb || !*mb)
        return;
    pthread_cond_destroy(&(*mb)->cv);
    pthread_mutex_destroy(&(*mb)->mu);
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
        VF_ASSERT(clock_gettime(CLOCK_REALTIME, &ts) == 0);
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
    VF_CHECK_MPI(MPI_Send(m, (int)sizeof *m, MPI_BYTE, 0, VF_MSG_TAG, MPI_COMM_WORLD), err, fail);
    return VF_OK;
fail:
    return err->code;
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
        int flag = 0;
        MPI_Status st;
        VF_CHECK_MPI(MPI_Iprobe(0, VF_MSG_TAG, MPI_COMM_WORLD, &flag, &st), err, fail);
        if (flag) {
            int count = 0;
            VF_CHECK_MPI(MPI_Get_count(&st, MPI_BYTE, &count), err, fail);
            if (count != (int)sizeof *m)
                return vf_error_set(err, VF_EINVAL, "rank 0 sent a message of %d bytes, this build's "
                                    "are %zu: run the same vaefarm on every rank", count, sizeof *m);
            VF_CHECK_MPI(MPI_Recv(m, (int)sizeof *m, MPI_BYTE, 0, VF_MSG_TAG, MPI_COMM_WORLD, &st),
                         err, fail);
            int rc = vf_msg_check(m, 0, err);
            return rc < 0 ? rc : 1;
        }
        if (vf_now() >= until)
            return 0;
        vf_farm_sleep_ms(2);
    }
fail:
    return err->code;
}

/* ---- seam files --------------------------------------------------------------------------- */

#define SEAM_MAGIC "VFSEAM1"

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = ENOSPC;
            return -1;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

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
        bad = parts[i] && write_all(fd, parts[i], lens[i]);
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

int vf_seam_write(const char *path, int h, int w, const float *warm_ab, const float *last_ab,
                  struct vf_error *err)
{
    /* little-endian on every machine vaefarm builds for (x86-64, aarch64) */
    int32_t hdr[3] = {h, w, warm_ab ? 1 : 0};
    size_t n = (size_t)2 * h * w * sizeof(float);
    const void *parts[] = {SEAM_MAGIC, hdr, warm_ab, last_ab};  /* no warm-up: part skipped */
    const size_t lens[] = {8, sizeof hdr, n, n};
    int rc = vf_farm_write_atomic(path, parts, lens, 4, err);
    return rc < 0 ? vf_error_prefix(err, "seam file") : rc;
}

int vf_seam_read(const char *path, int *h, int *w, float **warm_ab, float **last_ab,
                 struct vf_error *err)
{
    *warm_ab = *last_ab = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return vf_error_set(err, errno == ENOENT ? VF_ENOENT : VF_EIO, "seam file %s: %s", path,
                            strerror(errno));
    char magic[8];
    int32_t hdr[3];
    int rc = VF_OK;
    if (fread(magic, 1, 8, fp) != 8 || memcmp(magic, SEAM_MAGIC, 8) != 0 ||
        fread(hdr, sizeof hdr, 1, fp) != 1 || hdr[0] <= 0 || hdr[1] <= 0 || hdr[0] > 8192 ||
        hdr[1] > 8192 || (hdr[2] != 0 && hdr[2] != 1)) {
        rc = vf_error_set(err, VF_ECORRUPT, "seam file %s: not a vaefarm seam file", path);
        goto out;
    }
    size_t n = (size_t)2 * hdr[0] * hdr[1];
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
    *h = hdr[0];
    *w = hdr[1];
out:
    fclose(fp);
    if (rc < 0) {
        free(*warm_ab);
        free(*last_ab);
        *warm_ab = *last_ab = NULL;
    }
    return rc;
}
