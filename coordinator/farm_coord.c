/*
 * coordinator/farm_coord.c: rank 0's coordinator (docs/FARM.md): decide from the journal what
 * is already done, hand out the rest longest chunk first to whichever rank is idle, journal
 * every finished chunk (fsync) before anything else, retry a failed chunk elsewhere, stop
 * everyone on a signal or a chunk that keeps failing, show progress, and at the end merge the
 * segments into the output and write report.json.
 *
 * The loop polls (the mailbox of rank 0's own worker, then MPI_Iprobe) and waits on that mailbox
 * 1 ms doubling to 20 ms when nothing came, so it costs little CPU; that cost is measured
 * (coordinator_cpu_s, coordinator_share). A rank that sends nothing for --rank-timeout seconds
 * (a rank that runs a chunk sends a heartbeat every second, an idle one a PING every quarter of
 * the timeout) is lost: its chunk goes to another rank, it gets no more work, and at the end,
 * once every other rank has stopped, it is ended if it is still there, so that MPI_Finalize does
 * not wait for it. Workers write their segments under names of their own; this thread renames
 * one to the chunk's name when it journals the chunk. With --null-colorizer there is no journal,
 * no files, no merge and no seam report.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/coordinator.h"
#include "coordinator/farm.h"

#define MAX_FAILED 16

enum cstate { C_TODO, C_RUNNING, C_DONE };

struct cinfo {
    enum cstate state;
    bool resumed;
    int rank;                   /* running on / made by */
    int attempts;               /* failures so far */
    int failed_on[MAX_FAILED];
    char last_error[VF_ERROR_MSG_MAX];
    int last_status;
    int64_t done;               /* frames of this chunk colorized so far (warm-up included) */
    char checksum[65];          /* done: its segment's sha256 (its seam file names it too) */
};

struct rinfo {
    bool ready;                 /* said READY */
    bool gone;                  /* said BYE (after STOP) or LEAVE (gave up), or lost: no more work,
                                 * nothing more is waited for */
    bool lost;                  /* silent for rank_timeout (or unreachable) */
    bool ended;                 /* lost, and then said BYE or LEAVE, or was ended (or is gone) */
    bool said_bye;              /* said BYE or LEAVE: its relay waits for RELEASE */
    bool released;              /* was told RELEASE */
    int chunk;                  /* running, or -1 */
    int pid;
    char host[64], device[64];
    int chunks;
    int64_t frames, warm;
    double busy, decode, infer, encode;
    int64_t mem_peak, mem_network;  /* the most its DONEs said (bytes; 0: none said) */
    double last_heard;          /* when its last message came */
    double assigned_at;         /* when its running chunk was sent */
    double lost_at;             /* since the coordinator's start */
    double lost_silent;         /* how long it had been silent */
    int lost_chunk;
};

struct held {                   /* a message kept while rank 0 works on something else */
    int from;
    struct vf_msg m;
};

struct coord {
    struct vf_farm *f;
    const struct vf_link *w0;
    struct vf_journal *journal;
    struct cinfo *c;
    struct rinfo *r;
    int *order;                 /* chunk ids, longest first */
    bool null;                  /* --null-colorizer: no journal, no segments, no merge */
    size_t head;                /* order[i] for i < head is not to do */
    size_t assignments, reassigned;
    int n_lost;
    double last_lost_check;
    bool stopping;              /* STOP went out: no more work, no reassignment */
    bool holding;               /* a helper thread works: keep messages but PINGs for later */
    struct held *held;
    size_t n_held, cap_held;
    int64_t work_total;         /* frames to colorize in this run (kept + warm-up) */
    int64_t work_done;          /* of them, finished chunks */
    int64_t kept_total, kept_done, kept_run;
    size_t n_done, n_resumed, n_run, retries;
    size_t n_renumbered;        /* of the resumed, chunks an earlier plan made under another id */
    int64_t warm_run;
    int64_t passthrough_run;    /* frames that took their reference's colours (node.h) */
    double t_start, setup_s;    /* the job's start (vf_now), rank 0's setup */
    double cpu_s, coord_wall_s, colorize_s;   /* the scheduling's CPU, wall, colorizing time */
    json_t *rep;                /* report.json's document */
    int status;                 /* VF_OK, or why the job stops */
    char why[VF_ERROR_MSG_MAX + 512];
    double t0, t_first_assign, t_last_done, last_line;
    double rate_t[64];
    int64_t rate_v[64];
    int rate_n;
    bool live_shown;
    bool room_checked;          /* check_room has run (at the run's first chunk written) */
};

static const struct vf_log_ctx LOG = {.module = "farm", .rank = 0, .chunk = -1};

static int64_t cost(const struct vf_farm_chunk *c) { return c->end - c->warm_start; }

static struct vf_farm *g_sort_farm;
static int cmp_longest(const void *a, const void *b)
{
    const struct vf_farm_chunk *x = &g_sort_farm->chunks[*(const int *)a];
    const struct vf_farm_chunk *y = &g_sort_farm->chunks[*(const int *)b];
    int64_t cx = cost(x), cy = cost(y);
    if (cx != cy)
        return cx > cy ? -1 : 1;
    return x->id - y->id;
}

static int send_to(struct coord *k, int rank, const struct vf_msg *m, struct vf_error *err)
{
    if (rank == 0)
        return vf_mailbox_put(k->w0->to_worker, m, err);
    /* the coordinator's messages have no text: they go out inline, at once, whatever the
     * receiver does; one that does not within 2 s marks its rank lost (the caller's part) */
    return vf_msg_send_mpi(m, rank, 2.0, err);
}

/* 1 with a message (from rank 0's worker or any other rank), 0 when none is waiting. */
static int poll_msg(struct coord *k, struct vf_msg *m, int *from, struct vf_error *err)
{
    if (vf_mailbox_get(k->w0->to_coord, m, 0)) {
        *from = 0;
        return 1;
    }
    if (k->f->size == 1)
        return 0;
    return vf_msg_recv_mpi(MPI_ANY_SOURCE, m, from, err);
}

/* ---- resume ------------------------------------------------------------------------------- */

/* Chunk index i is done by its journal entry e (of its id, or of the id it had before). */
static void mark_resumed(struct coord *k, size_t i, const struct vf_journal_entry *e)
{
    const struct vf_farm_chunk *fc = &k->f->chunks[i];
    k->c[i].state = C_DONE;
    k->c[i].resumed = true;
    k->c[i].rank = e->rank;
    memcpy(k->c[i].checksum, e->checksum, sizeof k->c[i].checksum);
    k->n_done++;
    k->n_resumed++;
    k->kept_done += fc->end - fc->start;
}

/* Chunk `fc`'s journal entry r->entry does not stand: say why (a later plan's chunk that took
 * the name is no damage: only a verbose line). */
static void say_not_standing(const struct coord *k, const struct vf_farm_chunk *fc,
                             const struct vf_resume *r)
{
    char canon[32];
    vf_farm_journal_segment(canon, sizeof canon, fc->id);
    if (r->why == VF_RESUME_TAKEN)
        vf_log(&LOG, VF_LOG_VERBOSE, "chunk %d: its segment %s holds another plan's chunk %d "
               "now: colorizing it again", fc->id, r->entry->segment, fc->id);
    else if (r->why == VF_RESUME_WRONG_NAME)
        vf_log(&LOG, VF_LOG_WARN, "chunk %d: journaled as %s, not %s: colorizing it again", fc->id,
               r->entry->segment, canon);
    else
        vf_log(&LOG, VF_LOG_WARN, "chunk %d: journaled, but its segment %s/%s is %s: colorizing "
               "it again", fc->id, k->f->work_dir, r->entry->segment,
               r->why == VF_RESUME_MISSING ? "missing" : "changed");
}

struct renumbered {             /* a chunk whose segment an earlier plan made under another id */
    size_t i;                   /* the chunk's index */
    int id;                     /* and id */
    struct vf_journal_entry e;  /* that plan's entry (a copy: appending moves the journal's) */
    char *seg, *seam;           /* links to its files under names of this run's own (*.tmp) */
    int seam_errno;             /* why its seam file could not be linked (0: it was) */
};

/* Copy src to dst, created here, fsync'd: the segment's other name where the work folder's file
 * system has no hard links (exFAT, some network and FUSE file systems). 0, or -1 with errno. */
static int copy_file(const char *src, const char *dst)
{
    enum { BUF = 1 << 20 };
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    char *buf = malloc(BUF);
    if (in >= 0 && buf && (out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) >= 0) {
        ssize_t n;
        while ((n = read(in, buf, BUF)) > 0 && vf_write_all(out, buf, (size_t)n, NULL) == 0)
            ;
        rc = n == 0 && fsync(out) == 0 ? 0 : -1;
    } else if (!buf) {
        errno = ENOMEM;
    }
    int e = errno;
    if (out >= 0 && close(out) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0 && out >= 0)
        unlink(dst);
    if (in >= 0)
        close(in);
    free(buf);
    errno = e;
    return rc;
}

/* Give `src` the name `tmp` as well: a hard link, else (a file system without them) a copy,
 * checked against `sha` when given. 0, or -1 with errno. */
static int second_name(const char *src, const char *tmp, const char *sha, bool *copied)
{
    *copied = false;
    if (link(src, tmp) == 0)
        return 0;
    if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP && errno != EMLINK &&
        errno != ENOSYS)
        return -1;
    if (copy_file(src, tmp) != 0)
        return -1;
    *copied = true;
    char sum[65];
    struct vf_error e = {0};
    if (sha && (vf_shard_file_checksum(tmp, sum, &e) < 0 || strcmp(sum, sha) != 0)) {
        unlink(tmp);
        errno = EIO;
        return -1;
    }
    return 0;
}

/* Chunks of an earlier plan under other ids (a shot list changed before them) take their ids:
 * every source is first hard-linked (or, without hard links, copied and checked) to a temporary
 * name (a chunk's name may be another's source), then each is renamed to its chunk's names and
 * the chunk journaled. A failure leaves the chunk to do; a crash on the way leaves *.tmp files,
 * which the next run removes, segments whose checksums no longer match, which it colorizes
 * again, and seam files that name another segment, which the seam report leaves out. */
static int take_renumbered(struct coord *k, struct renumbered *mv, size_t n, struct vf_error *err)
{
    struct vf_farm *f = k->f;
    const char *ext[] = {"mkv", "seam"};
    int rc = VF_OK;
    for (size_t m = 0; m < n && rc == VF_OK; m++) {
        const struct vf_farm_chunk *fc = &f->chunks[mv[m].i];
        for (int x = 0; x < 2; x++) {
            char name[64];
            snprintf(name, sizeof name, "%05d.%s.from-%05d.tmp", fc->id, ext[x], mv[m].e.chunk);
            char *src = vf_farm_segment_path(f, mv[m].e.chunk, ext[x], -1, 0, err);
            char *tmp = src ? vf_path_join(f->seg_dir, name, err) : NULL;
            if (!tmp) {
                free(src);
                rc = VF_ENOMEM;
                break;
            }
            unlink(tmp);
            bool copied;
            if (second_name(src, tmp, x == 0 ? mv[m].e.checksum : NULL, &copied) == 0) {
                *(x == 0 ? &mv[m].seg : &mv[m].seam) = tmp;
                if (copied)
                    vf_log(&LOG, VF_LOG_VERBOSE, "chunk %d: %s copied to %s (this file system "
                           "has no hard links)", fc->id, src, tmp);
            } else if (x == 0) {
                vf_log(&LOG, VF_LOG_WARN, "chunk %d: could not give %s the name %s: %s "
                       "(colorizing it again)", fc->id, src, tmp, strerror(errno));
                free(tmp);
                free(src);
                break; /* no segment: its seam file is not wanted */
            } else {
                mv[m].seam_errno = errno;
                free(tmp);
            }
            free(src);
        }
    }
    for (size_t m = 0; m < n && rc == VF_OK; m++) {
        const struct vf_farm_chunk *fc = &f->chunks[mv[m].i];
        if (!mv[m].seg)
            continue;
        char *dst = vf_farm_segment_path(f, fc->id, "mkv", -1, 0, err);
        char *sdst = vf_farm_segment_path(f, fc->id, "seam", -1, 0, err);
        if (!dst || !sdst) {
            rc = VF_ENOMEM;
        } else if (rename(mv[m].seg, dst) != 0) {
            vf_log(&LOG, VF_LOG_WARN, "chunk %d: could not rename %s to %s: %s (colorizing it "
                   "again)", fc->id, mv[m].seg, dst, strerror(errno));
        } else {
            /* the seam file goes with its segment; without one, no other chunk's stands in */
            if (!mv[m].seam || rename(mv[m].seam, sdst) != 0) {
                int why = mv[m].seam ? errno : mv[m].seam_errno;
                if (why && why != ENOENT)
                    vf_log(&LOG, VF_LOG_WARN, "chunk %d: its seam file did not follow its segment "
                           "(%s): its boundary drops out of the seam report", fc->id, strerror(why));
                unlink(sdst);
            }
            struct vf_journal_entry e = mv[m].e;
            e.chunk = fc->id;
            vf_farm_journal_segment(e.segment, sizeof e.segment, fc->id);
            rc = vf_journal_append(k->journal, &e, err);
            if (rc == VF_OK) {
                mark_resumed(k, mv[m].i, &e);
                k->n_renumbered++;
                k->work_total -= cost(fc);
                vf_log(&LOG, VF_LOG_VERBOSE, "chunk %d: the segment of chunk %d of an earlier plan "
                       "(the same frames and settings) is kept as %s", fc->id, mv[m].e.chunk, dst);
            }
        }
        free(dst);
        free(sdst);
    }
    /* the links that were not renamed, and those whose rename did nothing (the name was already a
     * link to the same file) */
    for (size_t m = 0; m < n; m++) {
        if (mv[m].seg)
            unlink(mv[m].seg);
        if (mv[m].seam)
            unlink(mv[m].seam);
        free(mv[m].seg);
        free(mv[m].seam);
    }
    return rc;
}

/* The order the renamed chunks take their names in: a name that one takes is a later one's source
 * (its old id) only when ids moved; then the chunk that reads it goes first, so a crash loses the
 * least. Ids moved down (a shot merged or removed before): ascending; moved up: descending (the
 * chunks keep their frame order, so no name is both). */
static int cmp_rename_order(const void *a, const void *b)
{
    const struct renumbered *x = a, *y = b;
    bool xdown = x->e.chunk > x->id, ydown = y->e.chunk > y->id;
    if (xdown != ydown)
        return xdown ? -1 : 1;
    return xdown ? (x->id > y->id) - (x->id < y->id) : (y->id > x->id) - (y->id < x->id);
}

static int decide_done(struct coord *k, struct vf_error *err)
{
    struct vf_farm *f = k->f;
    struct renumbered *mv = NULL;
    struct vf_resume *how = NULL;
    const char **hash = NULL;
    size_t n_mv = 0;
    int rc = VF_OK;
    for (size_t i = 0; i < f->n_chunks; i++)
        k->kept_total += f->chunks[i].end - f->chunks[i].start;
    if (k->null) {
        for (size_t i = 0; i < f->n_chunks; i++)
            k->work_total += cost(&f->chunks[i]);
        return VF_OK;
    }
    if (!(how = vf_calloc(f->n_chunks + 1, sizeof *how, err)) ||
        !(hash = vf_calloc(f->n_chunks + 1, sizeof *hash, err)) ||
        !(mv = vf_calloc(f->n_chunks + 1, sizeof *mv, err))) {
        rc = VF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < f->n_chunks; i++)
        hash[i] = f->chunks[i].hash;
    if ((rc = vf_farm_resume_decide(f->work_dir, k->journal, f->n_chunks, hash, how, err)) < 0)
        goto out;
    for (size_t i = 0; i < f->n_chunks; i++) {
        const struct vf_farm_chunk *fc = &f->chunks[i];
        if (how[i].how == VF_RESUME_KEEP) {
            mark_resumed(k, i, how[i].entry);
            continue;
        }
        k->work_total += cost(fc);
        if (how[i].how == VF_RESUME_RENUMBERED)
            mv[n_mv++] = (struct renumbered){.i = i, .id = fc->id, .e = *how[i].entry};
        else if (how[i].entry)
            say_not_standing(k, fc, &how[i]);
    }
    if (n_mv) {
        qsort(mv, n_mv, sizeof *mv, cmp_rename_order);
        rc = take_renumbered(k, mv, n_mv, err);
    }
out:
    free(how);
    free(hash);
    free(mv);
    return rc;
}

/* ---- progress ----------------------------------------------------------------------------- */

static int64_t work_now(const struct coord *k)
{
    int64_t w = k->work_done;
    for (size_t i = 0; i < k->f->n_chunks; i++)
        if (k->c[i].state == C_RUNNING)
            w += k->c[i].done;
    return w;
}

static void fmt_eta(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, n, "--");
    else if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, n, "%ds", (int)s);
}

/* A sample of the work done every 0.5 s (the rate is over the last 10 s of them). */
static void sample_rate(struct coord *k)
{
    double now = vf_now();
    if (k->rate_n == 0 || now - k->rate_t[(k->rate_n - 1) % 64] >= 0.5) {
        k->rate_t[k->rate_n % 64] = now;
        k->rate_v[k->rate_n % 64] = work_now(k);
        k->rate_n++;
    }
}

static void progress_line(struct coord *k, char *buf, size_t n)
{
    double now = vf_now();
    int64_t w = work_now(k);
    sample_rate(k);
    int newest = (k->rate_n - 1) % 64, oldest = newest;
    for (int i = 1; i < 64 && i < k->rate_n; i++) {
        int j = (k->rate_n - 1 - i) % 64;
        if (now - k->rate_t[j] > 10)
            break;
        oldest = j;
    }
    double dt = k->rate_t[newest] - k->rate_t[oldest];
    double fps = dt > 0 ? (k->rate_v[newest] - k->rate_v[oldest]) / dt : 0;
    int64_t kept = k->kept_done;
    for (size_t i = 0; i < k->f->n_chunks; i++)
        if (k->c[i].state == C_RUNNING) {
            const struct vf_farm_chunk *fc = &k->f->chunks[i];
            int64_t d = k->c[i].done - (fc->start - fc->warm_start);
            kept += d > 0 ? d : 0;
        }
    int busy = 0;
    for (int r = 0; r < k->f->size; r++)
        busy += k->r[r].chunk >= 0;
    char eta[32], lost[32] = "";
    fmt_eta(fps > 0 ? (k->work_total - w) / fps : -1, eta, sizeof eta);
    if (k->n_lost)
        snprintf(lost, sizeof lost, " (%d lost)", k->n_lost);
    snprintf(buf, n, "[%3d%%] %lld/%lld frames  %.1f fps  ETA %s  ranks busy %d/%d%s  chunks %zu/%zu "
             "(%zu resumed)",
             k->kept_total ? (int)(100 * kept / k->kept_total) : 100, (long long)kept,
             (long long)k->kept_total, fps, eta, busy, k->f->size, lost, k->n_done, k->f->n_chunks,
             k->n_resumed);
}

static void show_progress(struct coord *k, bool force)
{
    struct vf_farm *f = k->f;
    double now = vf_now();
    if (f->quiet || f->json)
        return;
    char line[256];
    if (f->tty) {
        if (!force && now - k->last_line < 0.5)
            return;
        k->last_line = now;
        progress_line(k, line, sizeof line);
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        k->live_shown = true;
    } else {
        if (!force && now - k->last_line < 30)
            return;
        k->last_line = now;
        progress_line(k, line, sizeof line);
        vf_log(&LOG, VF_LOG_INFO, "%s", line);
    }
}

static void clear_live(struct coord *k)
{
    if (k->live_shown) {
        fputs("\r\033[K", stderr);
        k->live_shown = false;
    }
}

/* ---- scheduling --------------------------------------------------------------------------- */

static bool failed_on(const struct cinfo *c, int rank)
{
    for (int i = 0; i < c->attempts && i < MAX_FAILED; i++)
        if (c->failed_on[i] == rank)
            return true;
    return false;
}

/* The longest chunk `rank` may take: not one that failed there while another rank that has not
 * failed it exists. -1 when none. */
static int pick(struct coord *k, int rank)
{
    /* the chunks before `head` are running or done: each assignment does not scan them again
     * (a chunk that goes back to the queue moves head back) */
    while (k->head < k->f->n_chunks && k->c[k->order[k->head]].state != C_TODO)
        k->head++;
    for (size_t i = k->head; i < k->f->n_chunks; i++) {
        int id = k->order[i];
        struct cinfo *c = &k->c[id];
        if (c->state != C_TODO)
            continue;
        if (!failed_on(c, rank))
            return id;
        bool other = false;
        for (int r = 0; r < k->f->size && !other; r++)
            other = r != rank && k->r[r].ready && !k->r[r].gone && !failed_on(c, r);
        if (!other)
            return id;
    }
    return -1;
}

static void declare_lost(struct coord *k, int r, double silent, const char *why);

/* RELEASE to rank r, which said BYE or LEAVE: nothing more comes from rank 0, its relay may
 * leave for MPI_Finalize (docs/FARM.md "Messages"). */
static void release(struct coord *k, int r)
{
    struct rinfo *ri = &k->r[r];
    if (r == 0 || ri->released)
        return;
    ri->released = true;
    struct vf_msg m;
    struct vf_error e = {0};
    vf_msg_init(&m, VF_MSG_RELEASE, 0);
    if (send_to(k, r, &m, &e) < 0)
        vf_log(&LOG, VF_LOG_VERBOSE, "rank %d: RELEASE not sent: %s", r, e.msg);
}

static int assign_idle(struct coord *k, struct vf_error *err)
{
    for (int r = 0; r < k->f->size; r++) {
        if (!k->r[r].ready || k->r[r].gone || k->r[r].chunk >= 0)
            continue;
        int id = pick(k, r);
        if (id < 0)
            continue;
        struct vf_msg m;
        vf_msg_init(&m, VF_MSG_ASSIGN, 0);
        m.chunk = id;
        m.attempt = k->c[id].attempts + 1;
        struct vf_error e = {0};
        if (send_to(k, r, &m, &e) < 0) {
            if (r == 0) {
                *err = e;
                return e.code;
            }
            /* another rank that cannot be reached is lost; the chunk stays in the queue */
            declare_lost(k, r, 0, e.msg);
            continue;
        }
        double now = vf_now();
        if (k->t_first_assign == 0)
            k->t_first_assign = now;
        k->assignments++;
        k->c[id].state = C_RUNNING;
        k->c[id].rank = r;
        k->c[id].done = 0;
        k->r[r].chunk = id;
        k->r[r].assigned_at = now;
        vf_log(&LOG, VF_LOG_VERBOSE, "chunk %d (frames %lld..%lld) -> rank %d, attempt %d", id,
               (long long)k->f->chunks[id].start, (long long)k->f->chunks[id].end - 1, r,
               (int)m.attempt);
    }
    return VF_OK;
}

static void chunk_failed(struct coord *k, int id, int from, int status, const char *text);

/* A finished chunk's segment and seam file, which rank `from` wrote under its own names, take the
 * chunk's names (before the chunk is journaled): only this thread writes a chunk's final name, so
 * a rank that was declared lost and comes back cannot replace a segment that the journal names or
 * that the merge reads. */
static int take_segment(struct coord *k, int from, int id, char *why, size_t why_len)
{
    struct vf_farm *f = k->f;
    int pid = k->r[from].pid;
    struct vf_error e = {0};
    char *src = vf_farm_segment_path(f, id, "mkv", from, pid, &e);
    char *dst = vf_farm_segment_path(f, id, "mkv", -1, 0, &e);
    char *ssrc = vf_farm_segment_path(f, id, "seam", from, pid, &e);
    char *sdst = vf_farm_segment_path(f, id, "seam", -1, 0, &e);
    int rc = VF_OK;
    if (!src || !dst || !ssrc || !sdst) {
        snprintf(why, why_len, "rank 0: out of memory for the segment's name");
        rc = VF_ENOMEM;
    } else if (rename(src, dst) != 0) {
        rc = vf_io_status(errno);
        snprintf(why, why_len, "rank 0 could not rename rank %d's segment %s to %s: %s", from, src,
                 dst, strerror(errno));
    } else if (rename(ssrc, sdst) != 0) {
        /* no seam file (the rank could not write it, and said so): a seam file of an earlier
         * attempt must not stand in for it */
        if (errno != ENOENT) {
            vf_log(&LOG, VF_LOG_WARN, "chunk %d: could not rename %s to %s: %s (its boundary drops "
                   "out of the seam report)", id, ssrc, sdst, strerror(errno));
            unlink(ssrc);
        }
        unlink(sdst);
    }
    free(src);
    free(dst);
    free(ssrc);
    free(sdst);
    return rc;
}

/* The files of a chunk that a lost rank finished after all: another rank's are the chunk's. */
static void drop_rank_files(struct coord *k, int from, int id)
{
    const char *ext[] = {"mkv", "seam"};
    for (int i = 0; i < 2; i++) {
        char *p = vf_farm_segment_path(k->f, id, ext[i], from, k->r[from].pid, NULL);
        if (p && unlink(p) == 0)
            vf_log(&LOG, VF_LOG_VERBOSE, "removed %s, which lost rank %d made", p, from);
        free(p);
    }
}

/* Once, when a run's first chunk is written: its segment's size a frame times the frames left,
 * and its seam file's times the chunks left, against the room on the work folder's disk; its
 * segment's size a frame times the whole film against the output's, which the merge fills (on
 * one disk, the two add up). A warning early in the night where a full disk would stop the job
 * hours later; an estimate from one chunk, and the message says so. */
static void check_room(struct coord *k, const struct vf_farm_chunk *fc, int64_t frames)
{
    struct vf_farm *f = k->f;
    k->room_checked = true;
    char *seg = vf_farm_segment_path(f, fc->id, "mkv", -1, 0, NULL);
    char *seam = vf_farm_segment_path(f, fc->id, "seam", -1, 0, NULL);
    char *out_dir = vf_path_dirname(f->film->output, NULL);
    struct stat st, sst;
    uint64_t work_room, out_room;
    dev_t work_dev, out_dev;
    if (seg && seam && out_dir && frames > 0 && stat(seg, &st) == 0 &&
        vf_dir_room(f->work_dir, &work_room, &work_dev)) {
        double work_free = (double)work_room, out_free = 0;
        double per_frame = (double)st.st_size / (double)frames;
        double per_seam = stat(seam, &sst) == 0 ? (double)sst.st_size : 0;
        int64_t left = k->kept_total - k->kept_done;
        double need_work = per_frame * (double)left + per_seam * (double)(f->n_chunks - k->n_done);
        double need_out = per_frame * (double)f->frames;
        bool out_known = vf_dir_room(out_dir, &out_room, &out_dev);
        if (out_known)
            out_free = (double)out_room;
        bool one_disk = out_known && out_dev == work_dev;
        const double mib = 1048576.0;
        char also[128] = "";
        if (one_disk)
            snprintf(also, sizeof also, ", and the merged film about %.1f MiB more on the same disk",
                     need_out / mib);
        if (need_work + (one_disk ? need_out : 0) > work_free)
            vf_log(&LOG, VF_LOG_WARN, "the disk of the work folder %s has %.1f MiB free, but at "
                   "chunk %d's size (%.1f KiB a frame) the %lld frames left need about %.1f MiB of "
                   "segments and seam files there%s: make room, or the job stops when the disk is "
                   "full (what is done is kept)", f->work_dir, work_free / mib, fc->id, per_frame / 1024,
                   (long long)left, need_work / mib, also);
        if (out_known && !one_disk && need_out > out_free)
            vf_log(&LOG, VF_LOG_WARN, "the output's disk (%s) has %.1f MiB free, but at chunk %d's "
                   "size (%.1f KiB a frame) the merged film needs about %.1f MiB: make room before "
                   "the merge, which refuses it then (the colorized segments are kept)", out_dir,
                   out_free / mib, fc->id, per_frame / 1024, need_out / mib);
    }
    free(seg);
    free(seam);
    free(out_dir);
}

static int on_done(struct coord *k, int from, const struct vf_msg *m, struct vf_error *err)
{
    struct vf_farm *f = k->f;
    struct rinfo *ri = &k->r[from];
    if (m->chunk < 0) {          /* a rank interrupted while idle */
        if (m->status == VF_EINTERRUPTED && k->status == VF_OK) {
            k->status = VF_EINTERRUPTED;
            snprintf(k->why, sizeof k->why, "%s", m->text);
        }
        return VF_OK;
    }
    if ((size_t)m->chunk >= f->n_chunks || ri->chunk != m->chunk)
        return vf_error_set(err, VF_EINTERNAL, "rank %d reported chunk %d, which it was not "
                            "running", from, (int)m->chunk);
    struct cinfo *c = &k->c[m->chunk];
    const struct vf_farm_chunk *fc = &f->chunks[m->chunk];
    ri->chunk = -1;
    k->t_last_done = vf_now();
    ri->mem_peak = m->mem_peak > ri->mem_peak ? m->mem_peak : ri->mem_peak;
    ri->mem_network = m->mem_network > ri->mem_network ? m->mem_network : ri->mem_network;
    if (m->status == VF_OK) {
        char why[VF_ERROR_MSG_MAX];
        int tr;
        if (!k->null && (tr = take_segment(k, from, fc->id, why, sizeof why)) < 0) {
            ri->busy += m->t_total;
            chunk_failed(k, m->chunk, from, tr, why);
            return VF_OK;
        }
        struct vf_journal_entry e = {.chunk = fc->id, .frames = m->frames_kept, .rank = from,
                                     .attempt = m->attempt, .seconds = m->t_total,
                                     .t_decode = m->t_decode, .t_infer = m->t_infer,
                                     .t_encode = m->t_encode};
        memcpy(e.hash, fc->hash, sizeof e.hash);
        memcpy(e.checksum, m->checksum, sizeof e.checksum);
        vf_farm_journal_segment(e.segment, sizeof e.segment, fc->id);
        int rc = k->null ? VF_OK : vf_journal_append(k->journal, &e, err);
        if (rc < 0)
            return rc;
        c->state = C_DONE;
        c->rank = from;
        memcpy(c->checksum, e.checksum, sizeof c->checksum);
        k->n_done++;
        k->n_run++;
        k->work_done += cost(fc);
        k->kept_done += fc->end - fc->start;
        k->warm_run += m->frames_warmup;
        k->passthrough_run += m->frames_passthrough;
        k->kept_run += m->frames_kept;
        ri->chunks++;
        ri->frames += m->frames_kept;
        ri->warm += m->frames_warmup;
        ri->busy += m->t_total;
        ri->decode += m->t_decode;
        ri->infer += m->t_infer;
        ri->encode += m->t_encode;
        if (!k->null && !k->room_checked)
            check_room(k, fc, m->frames_kept);
        vf_log(&LOG, VF_LOG_VERBOSE, "chunk %d done on rank %d in %.2f s (%lld frames, %lld "
               "warm-up, %lld passed through)", fc->id, from, m->t_total,
               (long long)m->frames_kept, (long long)m->frames_warmup,
               (long long)m->frames_passthrough);
        return VF_OK;
    }
    ri->busy += m->t_total;
    if (m->status == VF_EINTERRUPTED) {
        c->state = C_TODO;
        c->done = 0;
        k->head = 0;
        if (k->status == VF_OK) {
            k->status = VF_EINTERRUPTED;
            snprintf(k->why, sizeof k->why, "%s", m->text);
        }
        return VF_OK;
    }
    chunk_failed(k, m->chunk, from, m->status, m->text);
    return VF_OK;
}

/* Chunk `id` failed on rank `from` (or `from` was lost while it ran it): back into the queue
 * for another rank, or, after its last attempt, the job fails with it. A full disk fails it at
 * once: every rank writes its segments into the one work folder, so a retry would colorize the
 * chunk again only to fail at the same place. */
static void chunk_failed(struct coord *k, int id, int from, int status, const char *text)
{
    struct vf_farm *f = k->f;
    struct rinfo *ri = &k->r[from];
    struct cinfo *c = &k->c[id];
    const struct vf_farm_chunk *fc = &f->chunks[id];
    c->state = C_TODO;
    c->done = 0;
    k->head = 0;
    if (c->attempts < MAX_FAILED)
        c->failed_on[c->attempts] = from;
    c->attempts++;
    c->last_status = status;
    snprintf(c->last_error, sizeof c->last_error, "%s", text);
    clear_live(k);
    if (k->status != VF_OK)
        return;
    if (status == VF_ENOSPC) {
        k->status = status;
        snprintf(k->why, sizeof k->why,
                 "rank %d (%s): %.1500s; not retried, every rank writes there: make room on the "
                 "disk of the work folder %s", from, ri->host, text, f->work_dir);
        return;
    }
    if (c->attempts <= f->retries) {
        k->retries++;
        /* a lost rank's chunk: declare_lost has said it */
        vf_log(&LOG, status == VF_FARM_ELOST ? VF_LOG_VERBOSE : VF_LOG_WARN,
               "chunk %d failed on rank %d (%s), attempt %d of %d, retrying: %s", fc->id, from,
               ri->host, c->attempts, f->retries + 1, text);
        return;
    }
    char ranks[256] = "";
    size_t len = 0;
    for (int i = 0; i < c->attempts && i < MAX_FAILED; i++)
        len += (size_t)snprintf(ranks + len, len < sizeof ranks ? sizeof ranks - len : 0, "%s%d",
                                i ? ", " : "", c->failed_on[i]);
    k->status = status == VF_FARM_ELOST ? VF_EINTERNAL : status;
    char times[32] = "once";
    if (c->attempts != 1)
        snprintf(times, sizeof times, "%d times", c->attempts);
    snprintf(k->why, sizeof k->why,
             "chunk %d (frames %lld..%lld, warm-up from %lld, shot %d) failed %s (rank%s %s); "
             "last error (rank %d on %s): %.1500s", fc->id, (long long)fc->start,
             (long long)fc->end - 1, (long long)fc->warm_start, fc->shot, times,
             c->attempts == 1 ? "" : "s", ranks, from, ri->host, text);
}

/* The job goes on while some rank may still colorize. */
static void check_any_left(struct coord *k, int from, const char *why)
{
    bool live = false;
    for (int r = 0; r < k->f->size; r++)
        live |= !k->r[r].gone;
    if (!live && k->status == VF_OK) {
        k->status = VF_EINTERNAL;
        snprintf(k->why, sizeof k->why, "no rank is left to colorize (the last, rank %d, %.1500s)",
                 from, why);
    }
}

/* Rank r sends nothing (it died, was stopped or hangs) or cannot be reached: it gets no more
 * work, its chunk goes to another rank, and nothing more is waited for from it. It is told STOP,
 * in case it comes back: it then stops and exits non-zero. Once the job stops (k->stopping: STOP
 * has gone out to every rank) it is only marked, to be ended at the end. */
static void declare_lost(struct coord *k, int r, double silent, const char *why)
{
    struct rinfo *ri = &k->r[r];
    if (ri->lost || r == 0)
        return;
    ri->lost = ri->gone = true;
    ri->lost_at = vf_now() - k->t0;
    ri->lost_silent = silent;
    ri->lost_chunk = ri->chunk;
    k->n_lost++;
    char text[VF_ERROR_MSG_MAX];
    if (why)
        snprintf(text, sizeof text, "rank %d (%s, pid %d) is lost: %.900s", r, ri->host, ri->pid,
                 why);
    else if (ri->chunk >= 0)
        snprintf(text, sizeof text, "rank %d (%s, pid %d) is lost: nothing from it for %.1f s "
                 "(--rank-timeout %g) while it ran chunk %d", r, ri->host, ri->pid, silent,
                 k->f->rank_timeout, ri->chunk);
    else
        snprintf(text, sizeof text, "rank %d (%s, pid %d) is lost: nothing from it for %.1f s "
                 "(--rank-timeout %g) while %s", r, ri->host, ri->pid, silent, k->f->rank_timeout,
                 !ri->ready ? "it never said READY" : k->stopping ? "idle, and it did not answer STOP"
                 : "idle (an idle rank PINGs rank 0)");
    clear_live(k);
    if (k->stopping) {
        vf_log(&LOG, VF_LOG_ERROR, "%s", text);
        return;
    }
    if (ri->chunk >= 0)
        vf_log(&LOG, VF_LOG_ERROR, "%s; chunk %d goes to another rank, rank %d gets no more work",
               text, ri->chunk, r);
    else
        vf_log(&LOG, VF_LOG_ERROR, "%s; it gets no more work", text);
    struct vf_msg m;
    struct vf_error e = {0};
    vf_msg_init(&m, VF_MSG_STOP, 0);
    m.status = VF_FARM_ELOST;           /* no text: it goes out inline even to a stopped rank */
    if (send_to(k, r, &m, &e) < 0)
        vf_log(&LOG, VF_LOG_VERBOSE, "rank %d: STOP not sent: %s", r, e.msg);
    int id = ri->chunk;
    ri->chunk = -1;
    if (id >= 0) {
        k->reassigned++;
        chunk_failed(k, id, r, VF_FARM_ELOST, text);
    }
    check_any_left(k, r, "was lost");
}

static int drain(struct coord *k, struct vf_error *err);

/* The ranks that have sent nothing for rank_timeout seconds, running a chunk or not: a running
 * chunk's relay sends a heartbeat every second, an idle rank's relay PINGs rank 0 every quarter
 * of the timeout, and a rank that has not said READY yet is timed from the coordinator's start,
 * so silence means dead, stopped or unreachable (the tail of every film leaves ranks idle: one
 * stopped then would otherwise keep MPI_Finalize waiting forever). */
static int stale_ranks(struct coord *k, double now, bool declare)
{
    int n = 0;
    for (int r = 1; r < k->f->size; r++) {
        struct rinfo *ri = &k->r[r];
        if (ri->gone)
            continue;
        double since = ri->last_heard;
        if (ri->chunk >= 0 && ri->assigned_at > since)
            since = ri->assigned_at;
        if (now - since > k->f->rank_timeout) {
            n++;
            if (declare)
                declare_lost(k, r, now - since, NULL);
        }
    }
    return n;
}

/* Every rank that has sent nothing for rank_timeout seconds is lost (looked at ten times a
 * second at most). Before that, the messages waiting are taken twice more: a probe
 * can miss one that it has just pulled in (after rank 0 itself did not run for a while, many). */
static int check_lost(struct coord *k, struct vf_error *err)
{
    double now = vf_now();
    if (now - k->last_lost_check < 0.1)
        return VF_OK;
    k->last_lost_check = now;
    if (!stale_ranks(k, now, false))
        return VF_OK;
    for (int i = 0; i < 2; i++) {
        int rc = drain(k, err);
        if (rc < 0)
            return rc;
    }
    stale_ranks(k, now, true);
    return VF_OK;
}

static int handle(struct coord *k, int from, const struct vf_msg *m, struct vf_error *err)
{
    if (from < 0 || from >= k->f->size)
        return vf_error_set(err, VF_EINTERNAL, "a message from rank %d of %d", from, k->f->size);
    struct rinfo *ri = &k->r[from];
    ri->last_heard = vf_now();
    if (ri->released)
        return VF_OK;           /* a PING that crossed the RELEASE: nothing goes back after it */
    if (ri->lost) {
        /* a lost rank that comes back: its work went elsewhere; it was told STOP */
        if (m->type == VF_MSG_DONE && m->status == VF_OK && m->chunk >= 0 && !k->null)
            drop_rank_files(k, from, m->chunk);
        if (m->type == VF_MSG_BYE || m->type == VF_MSG_LEAVE) {
            ri->ended = ri->said_bye = true;
            vf_log(&LOG, VF_LOG_WARN, "lost rank %d (%s) came back and stopped", from, ri->host);
            release(k, from);
        }
        return VF_OK;
    }
    switch (m->type) {
    case VF_MSG_READY:
        ri->ready = true;
        ri->pid = m->pid;
        snprintf(ri->host, sizeof ri->host, "%s", m->host);
        snprintf(ri->device, sizeof ri->device, "%s", m->device);
        vf_log(&LOG, VF_LOG_VERBOSE, "rank %d ready on %s (%s, pid %d)", from, ri->host,
               ri->device, ri->pid);
        return VF_OK;
    case VF_MSG_PING: {
        struct vf_msg p;
        struct vf_error e = {0};
        vf_msg_init(&p, VF_MSG_PONG, 0);
        /* (while a helper thread reads the ranks' state, the silence rule decides later) */
        if (send_to(k, from, &p, &e) < 0 && from != 0 && !k->holding)
            declare_lost(k, from, 0, e.msg);
        return VF_OK;
    }
    case VF_MSG_PROGRESS:
        if (ri->chunk == m->chunk && ri->chunk >= 0)
            k->c[ri->chunk].done = m->done;
        return VF_OK;
    case VF_MSG_DONE:
        return on_done(k, from, m, err);
    case VF_MSG_BYE:
        ri->gone = ri->said_bye = true;
        return VF_OK;
    case VF_MSG_LEAVE:
        ri->gone = ri->said_bye = true;
        if (!k->stopping)
            release(k, from);       /* it gave up mid-job: it need not wait for the end */
        clear_live(k);
        vf_log(&LOG, VF_LOG_ERROR, "rank %d (%s) gave up: %s", from, ri->host,
               m->text[0] ? m->text : vf_status_str(m->status));
        if (ri->chunk >= 0) {           /* not expected: a rank leaves between chunks */
            k->c[ri->chunk].state = C_TODO;
            k->head = 0;
            ri->chunk = -1;
        }
        if (k->status == VF_OK) {
            char why[VF_ERROR_MSG_MAX + 16];
            snprintf(why, sizeof why, "gave up: %s",
                     m->text[0] ? m->text : vf_status_str(m->status));
            check_any_left(k, from, why);
            if (k->status != VF_OK && m->status < 0 && m->status != VF_FARM_ELOST)
                k->status = m->status;
        }
        return VF_OK;
    default:
        return vf_error_set(err, VF_EINTERNAL, "rank %d sent message type %d to the coordinator",
                            from, (int)m->type);
    }
}

/* Process every waiting message; returns how many there were, or < 0. */
static int drain(struct coord *k, struct vf_error *err)
{
    int n = 0;
    for (;;) {
        struct vf_msg m;
        int from = -1;
        int rc = poll_msg(k, &m, &from, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return n;
        n++;
        if (k->holding && m.type != VF_MSG_PING) {
            if (k->n_held == k->cap_held) {
                size_t cap = k->cap_held ? 2 * k->cap_held : 64;
                struct held *h = realloc(k->held, cap * sizeof *h);
                if (!h)
                    return vf_error_set(err, VF_ENOMEM, "out of memory for the ranks' messages");
                k->held = h;
                k->cap_held = cap;
            }
            k->held[k->n_held++] = (struct held){.from = from, .m = m};
            continue;
        }
        if ((rc = handle(k, from, &m, err)) < 0)
            return rc;
    }
}

/* The messages kept while a helper thread worked, in the order they came. */
static int handle_held(struct coord *k, struct vf_error *err)
{
    int rc = VF_OK;
    for (size_t i = 0; i < k->n_held; i++) {
        struct vf_error e = {0};
        int r = handle(k, k->held[i].from, &k->held[i].m, &e);
        if (r < 0 && rc == VF_OK) {     /* the first error; the others are still handled */
            rc = r;
            *err = e;
        }
    }
    k->n_held = 0;
    return rc;
}

struct helper {
    struct coord *k;
    int (*fn)(struct coord *, struct vf_error *);
    int rc;
    double cpu_s;
    struct vf_error err;
    atomic_int finished;
};

static double thread_cpu(void);

static void *helper_main(void *opaque)
{
    struct helper *h = opaque;
    double c0 = thread_cpu();
    h->rc = h->fn(h->k, &h->err);
    h->cpu_s = thread_cpu() - c0;
    atomic_store(&h->finished, 1);
    return NULL;
}

/* Run fn (the resume check, the merge and report: seconds to minutes) on a thread while this
 * thread answers the ranks' PINGs, so that no rank takes rank 0 for gone; their other messages
 * are kept and handled afterwards. *cpu_s: the thread's CPU time (0 when fn ran on this thread,
 * whose own CPU time then holds it). */
static int while_answering(struct coord *k, int (*fn)(struct coord *, struct vf_error *),
                           double *cpu_s, struct vf_error *err)
{
    struct helper h = {.k = k, .fn = fn};
    pthread_t th;
    bool inline_ = k->f->size == 1 || pthread_create(&th, NULL, helper_main, &h) != 0;
    if (inline_) {
        helper_main(&h);                /* no other rank, or no thread: here */
    } else {
        int ms = 1;
        k->holding = true;
        struct vf_error de = {0};
        bool failed = false;
        while (!atomic_load(&h.finished)) {
            if (!failed && drain(k, &de) < 0) {
                failed = true;          /* the thread's work goes on; its end is waited for */
                vf_log(&LOG, VF_LOG_ERROR, "%s", de.msg);
            }
            vf_farm_sleep_ms(ms);
            ms = ms * 2 > 20 ? 20 : ms * 2;
        }
        VF_ASSERT(pthread_join(th, NULL) == 0);
        k->holding = false;
        if (failed && h.rc == VF_OK) {
            h.rc = de.code;
            h.err = de;
        }
    }
    if (cpu_s)
        *cpu_s = inline_ ? 0 : h.cpu_s; /* run here, it is in this thread's own CPU time */
    /* the messages kept meanwhile, whatever the helper's outcome (a BYE or LEAVE among them must
     * not be lost) */
    struct vf_error he = {0};
    int rc = handle_held(k, &he);
    if (h.rc < 0) {
        if (rc < 0)
            vf_log(&LOG, VF_LOG_ERROR, "%s", he.msg);
        *err = h.err;
        return h.rc;
    }
    if (rc < 0)
        *err = he;
    return rc;
}

/* STOP to every rank that has not left; a send that fails does not keep the others from
 * theirs (the first error is returned). */
static int stop_all(struct coord *k, int status, struct vf_error *err)
{
    struct vf_msg m;
    vf_msg_init(&m, VF_MSG_STOP, 0);
    m.status = status;
    if (status != VF_OK)
        atomic_store(&vf_farm_stop, 1);   /* rank 0's own worker */
    int first = VF_OK;
    for (int r = 0; r < k->f->size; r++) {
        if (k->r && k->r[r].gone)
            continue;                     /* it has left its loop: nothing would receive it */
        struct vf_error e = {0};
        if (send_to(k, r, &m, &e) < 0) {
            vf_log(&LOG, VF_LOG_ERROR, "could not tell rank %d to stop: %s", r, e.msg);
            if (first == VF_OK) {
                *err = e;
                first = e.code;
            }
        }
    }
    return first;
}

static double thread_cpu(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the end: merge, seams, report -------------------------------------------------------- */

struct seam {
    int chunk;
    int64_t frame;
    int64_t warmup;
    double error;
};

static size_t seam_errors(struct coord *k, struct seam *out)
{
    struct vf_farm *f = k->f;
    size_t n = 0;
    float *prev_last = NULL;
    int prev_shot = -1, ph = 0, pw = 0;
    for (size_t i = 0; i < f->n_chunks; i++) {
        const struct vf_farm_chunk *fc = &f->chunks[i];
        char *path = vf_farm_segment_path(f, fc->id, "seam", -1, 0, NULL);
        float *warm = NULL, *last = NULL;
        int h = 0, w = 0;
        struct vf_error e = {0};
        if (!path || vf_seam_read(path, k->c[i].checksum, &h, &w, &warm, &last, &e) < 0) {
            vf_log(&LOG, VF_LOG_WARN, "chunk %d: no seam data (%s): its boundary is left out of "
                   "the seam report", fc->id, path ? e.msg : "out of memory");
            free(prev_last);
            prev_last = NULL;
            prev_shot = -1;
            free(path);
            continue;
        }
        double se = prev_last && warm && h == ph && w == pw ? vf_node_seam_error(prev_last, warm, h, w)
                                                            : 0;
        if (!isfinite(se))
            vf_log(&LOG, VF_LOG_WARN, "chunk %d: its seam error is not a number (a NaN in the "
                   "network's output?): left out of the report", fc->id);
        else if (prev_last && prev_shot == fc->shot && warm && h == ph && w == pw)
            out[n++] = (struct seam){.chunk = fc->id, .frame = fc->start - 1,
                                     .warmup = fc->start - fc->warm_start, .error = se};
        free(prev_last);
        free(warm);
        prev_last = last;
        prev_shot = fc->shot;
        ph = h;
        pw = w;
        free(path);
    }
    free(prev_last);
    return n;
}

static int merge(struct coord *k, struct vf_error *err)
{
    struct vf_farm *f = k->f;
    char **segs = vf_calloc(f->n_chunks, sizeof *segs, err);
    int rc = segs ? VF_OK : VF_ENOMEM;
    for (size_t i = 0; i < f->n_chunks && rc == 0; i++)
        if (!(segs[i] = vf_farm_segment_path(f, f->chunks[i].id, "mkv", -1, 0, err)))
            rc = VF_ENOMEM;
    if (rc == 0) {
        struct vf_merge_spec ms = {.output = f->film->output, .source = f->info,
                                   .segments = (const char *const *)segs,
                                   .n_segments = f->n_chunks,
                                   .copy_audio = f->film->audio == VF_AUDIO_COPY,
                                   .copy_subtitles = f->film->audio == VF_AUDIO_COPY};
        rc = vf_shard_merge(&ms, err);
    }
    for (size_t i = 0; segs && i < f->n_chunks; i++)
        free(segs[i]);
    free(segs);
    return rc;
}

int vf_farm_write_json(const char *path, json_t *doc, struct vf_error *err)
{
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (!s)
        return vf_error_set(err, VF_ENOMEM, "%s: could not serialise the JSON", path);
    const void *parts[] = {s, "\n"};
    const size_t lens[] = {strlen(s), 1};
    int rc = vf_farm_write_atomic(path, parts, lens, 2, err);
    free(s);
    return rc;
}

static json_t *report_json(struct coord *k, double wall, double merge_s, const struct seam *seams,
                           size_t n_seams)
{
    struct vf_farm *f = k->f;
    double colorize_s = k->colorize_s;
    json_t *ranks = json_array(), *sj = json_array(), *lost = json_array();
    double dec = 0, inf = 0, enc = 0;
    for (int r = 0; r < f->size; r++) {
        const struct rinfo *ri = &k->r[r];
        dec += ri->decode;
        inf += ri->infer;
        enc += ri->encode;
        json_array_append_new(ranks, json_pack(
            "{s:i, s:s, s:s, s:i, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:o, s:b}", "rank",
            r, "host", ri->host, "device", ri->device, "chunks", ri->chunks, "frames",
            (json_int_t)ri->frames, "warmup_frames", (json_int_t)ri->warm, "busy_s", ri->busy,
            "busy_share", colorize_s > 0 ? ri->busy / colorize_s : 0.0, "wall_share",
            wall > 0 ? ri->busy / wall : 0.0, "decode_s", ri->decode, "infer_s", ri->infer,
            "encode_s", ri->encode, "peak_memory_mib",
            ri->mem_peak > 0 ? json_real(ri->mem_peak / 1048576.0) : json_null(),
            "network_memory_mib",
            ri->mem_network > 0 ? json_real(ri->mem_network / 1048576.0) : json_null(),
            "lost", ri->lost));
        if (ri->lost)
            json_array_append_new(lost, json_pack(
                "{s:i, s:s, s:i, s:i, s:f, s:f}", "rank", r, "host", ri->host, "pid", ri->pid,
                "chunk", ri->lost_chunk, "at_s", ri->lost_at, "silent_s", ri->lost_silent));
    }
    double sum = 0, mx = 0;
    for (size_t i = 0; i < n_seams; i++) {
        sum += seams[i].error;
        mx = fmax(mx, seams[i].error);
        json_array_append_new(sj, json_pack("{s:i, s:I, s:I, s:f}", "chunk", seams[i].chunk,
                                            "frame", (json_int_t)seams[i].frame, "warmup",
                                            (json_int_t)seams[i].warmup, "error", seams[i].error));
    }
    int64_t boundaries = 0;
    for (size_t i = 1; i < f->n_chunks; i++)
        boundaries += f->chunks[i].shot == f->chunks[i - 1].shot;
    const char *recovery = getenv("OMPI_MCA_orte_enable_recovery");
    json_t *doc = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:s, s:s,"
        " s:{s:s, s:s, s:s, s:s},"
        " s:s, s:[i,i], s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I,"
        " s:f, s:f, s:f, s:f, s:f, s:f, s:f,"
        " s:{s:f, s:f, s:f}, s:o, s:o,"
        " s:{s:I, s:I, s:f, s:f}}",
        "version", 1, "status", "ok", "mode", k->null ? "null-colorizer" : "colorize", "film",
        f->film->path, "input", f->film->input, "output", f->film->output, "plan_hash",
        f->plan_hash,
        "model", "path", f->model_path, "arch", f->arch_name, "sha256", f->model_sha, "weights",
        k->null ? "none (null colorizer)"
        : f->model_random ? "random (the reference's seeded init: not a trained model)" : "trained",
        "precision", vf_dtype_name(f->precision), "inference_size", f->h, f->w, "backend",
        f->device, "ranks", f->size, "threads_per_rank", f->threads, "frames",
        (json_int_t)f->frames, "chunks", (json_int_t)f->n_chunks, "chunks_run",
        (json_int_t)k->n_run, "chunks_resumed", (json_int_t)k->n_resumed,
        "chunks_renumbered", (json_int_t)k->n_renumbered, "retries",
        (json_int_t)k->retries, "warmup_frames_run", (json_int_t)k->warm_run,
        "reference_passthrough", f->passthrough, "passthrough_frames_run",
        (json_int_t)k->passthrough_run,
        "wall_s", wall, "setup_s", k->setup_s, "colorize_s", colorize_s, "merge_s", merge_s,
        "fps", wall > 0 ? f->frames / wall : 0.0,
        "fps_colorize", colorize_s > 0 ? (double)k->kept_run / colorize_s : 0.0,
        "coordinator_cpu_s", k->cpu_s,
        "split", "decode_s", dec, "infer_s", inf, "encode_s", enc, "per_rank", ranks, "seams", sj,
        "seam_error", "boundaries", (json_int_t)boundaries, "measured", (json_int_t)n_seams,
        "mean", n_seams ? sum / n_seams : 0.0, "max", mx);
    if (!doc) {
        json_decref(lost);
        return NULL;
    }
    /* null, never a figure, for what was not measured or does not exist */
    if (!k->n_run)
        json_object_set_new(doc, "fps_colorize", json_null());
    if (!n_seams) {
        json_t *se = json_object_get(doc, "seam_error");
        json_object_set_new(se, "mean", json_null());
        json_object_set_new(se, "max", json_null());
    }
    if (k->null) {
        json_t *model = json_object_get(doc, "model");
        json_object_set_new(model, "path", json_null());
        json_object_set_new(model, "arch", json_null());
        json_object_set_new(model, "sha256", json_null());
        json_object_set_new(doc, "precision", json_null());
        if (!f->h)
            json_object_set_new(doc, "inference_size", json_null());
    }
    /* the coordinator at scale: how fast it hands out chunks, what it costs, who was lost */
    json_object_set_new(doc, "coordinator", json_pack(
        "{s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:o, s:b}",
        "assignments", (json_int_t)k->assignments,
        "assignments_per_s", colorize_s > 0 ? (double)k->assignments / colorize_s : 0.0,
        "cpu_s", k->cpu_s, "wall_s", k->coord_wall_s,
        "share", k->coord_wall_s > 0 ? k->cpu_s / k->coord_wall_s : 0.0,
        "rank_timeout_s", f->rank_timeout, "chunks_reassigned", (json_int_t)k->reassigned,
        "ranks_lost", lost, "mpi_recovery", recovery && strcmp(recovery, "1") == 0));
    if (k->null)
        json_object_set_new(doc, "null_colorizer", json_pack(
            "{s:f, s:s}", "ms_per_frame", f->null_ms, "note",
            "a test of the farm: nothing was decoded, colorized or written; no journal"));
    return doc;
}

static void print_summary(struct coord *k, json_t *rep)
{
    struct vf_farm *f = k->f;
    double wall = json_real_value(json_object_get(rep, "wall_s"));
    double col = json_real_value(json_object_get(rep, "colorize_s"));
    json_t *split = json_object_get(rep, "split"), *se = json_object_get(rep, "seam_error");
    if (k->null)
        printf("vaefarm: %s: NULL COLORIZER (%g ms per frame): nothing decoded, colorized or "
               "written\n", f->film->path, f->null_ms);
    else
        printf("vaefarm: %s -> %s\n", f->film->path, f->film->output);
    if (k->n_run == 0)  /* every chunk came from the journal: no speed was measured */
        printf("  %lld frames in %.1f s, every chunk resumed: nothing colorized in this run\n",
               (long long)f->frames, wall);
    else
        printf("  %lld frames in %.1f s: %.2f frames/s overall; colorizing took %.1f s, %.2f "
               "kept frames/s\n", (long long)f->frames, wall,
               json_real_value(json_object_get(rep, "fps")), col,
               json_real_value(json_object_get(rep, "fps_colorize")));
    if (!k->null)
        printf("  %d rank%s (%s, %d thread%s each), %s %dx%d, model %s (%s)\n", f->size,
               f->size == 1 ? "" : "s", f->device, f->threads, f->threads == 1 ? "" : "s",
               vf_dtype_name(f->precision), f->h, f->w, f->arch_name,
               f->model_random ? "RANDOM weights: not a trained model" : "trained");
    printf("  chunks: %zu (%zu colorized, %zu resumed from the journal, %zu retries), %lld "
           "warm-up frames colorized and dropped\n", f->n_chunks, k->n_run, k->n_resumed,
           k->retries, (long long)k->warm_run);
    if (f->passthrough && !k->null)
        printf("  reference pass-through: %lld frame%s took their reference's colours (no "
               "network)\n", (long long)k->passthrough_run, k->passthrough_run == 1 ? "" : "s");
    for (int r = 0; r < f->size; r++) {
        const struct rinfo *ri = &k->r[r];
        char mem[96] = "";
        if (ri->mem_peak > 0 && ri->mem_network > 0)
            snprintf(mem, sizeof mem, ", peak memory %.0f MiB (its network %.0f)",
                     ri->mem_peak / 1048576.0, ri->mem_network / 1048576.0);
        else if (ri->mem_peak > 0)
            snprintf(mem, sizeof mem, ", peak memory %.0f MiB", ri->mem_peak / 1048576.0);
        printf("  rank %d on %s: %d chunk%s, busy %.1f s (%.0f%% of colorizing, %.0f%% of wall "
               "time)%s%s\n", r, ri->host, ri->chunks, ri->chunks == 1 ? "" : "s", ri->busy,
               col > 0 ? 100 * ri->busy / col : 0.0, wall > 0 ? 100 * ri->busy / wall : 0.0, mem,
               ri->lost ? ", LOST" : "");
    }
    printf("  time split (all ranks): decode %.1f s, infer %.1f s, encode %.1f s\n",
           json_real_value(json_object_get(split, "decode_s")),
           json_real_value(json_object_get(split, "infer_s")),
           json_real_value(json_object_get(split, "encode_s")));
    /* its wall time as precisely as its CPU time: a run that resumed every chunk spends 0.04 s */
    printf("  coordinator: %zu assignments, %.1f per s of colorizing; CPU %.3f s, %.2f%% of its "
           "%.3f s\n", k->assignments, col > 0 ? k->assignments / col : 0.0, k->cpu_s,
           k->coord_wall_s > 0 ? 100 * k->cpu_s / k->coord_wall_s : 0.0, k->coord_wall_s);
    if (k->n_lost)
        printf("  %d rank%s lost, %zu chunk%s reassigned (see vaefarm.log)\n", k->n_lost,
               k->n_lost == 1 ? "" : "s", k->reassigned, k->reassigned == 1 ? "" : "s");
    json_int_t nb = json_integer_value(json_object_get(se, "measured"));
    if (nb)
        printf("  seam error: %lld boundaries with warm-up, mean %.3f, max %.3f (|delta ab|)\n",
               (long long)nb, json_real_value(json_object_get(se, "mean")),
               json_real_value(json_object_get(se, "max")));
    printf("  report: %s/report.json\n", f->work_dir);
}

/* ---- the end ------------------------------------------------------------------------------ */

/* On a helper thread (while_answering): the merge, the seam errors and report.json. */
static int finish(struct coord *k, struct vf_error *err)
{
    struct vf_farm *f = k->f;
    struct seam *seams = NULL;
    size_t n_seams = 0;
    double merge_s = 0;
    int rc;
    if (!k->null) {
        double tm = vf_now();
        vf_log(&LOG, VF_LOG_INFO, "merging %zu segments into %s", f->n_chunks, f->film->output);
        if ((rc = merge(k, err)) < 0)
            return rc;
        merge_s = vf_now() - tm;
        if (!(seams = vf_calloc(f->n_chunks ? f->n_chunks : 1, sizeof *seams, err)))
            return VF_ENOMEM;
        n_seams = seam_errors(k, seams);
    }
    k->rep = report_json(k, vf_now() - k->t_start, merge_s, seams, n_seams);
    free(seams);
    if (!k->rep)
        return vf_error_set(err, VF_ENOMEM, "could not build report.json");
    char *rpath = vf_path_join(f->work_dir, "report.json", err);
    if (!rpath)
        return VF_ENOMEM;
    struct vf_error re = {0};
    rc = vf_farm_write_json(rpath, k->rep, &re);
    free(rpath);
    if (rc < 0) {
        /* the output is complete and in place: a report that cannot be written is only a
         * warning; in null mode the report is all there is */
        if (k->null) {
            *err = re;
            return rc;
        }
        vf_log(&LOG, VF_LOG_WARN, "%s (the output is complete)", re.msg);
    }
    return VF_OK;
}

/* A lost rank that may still be there (it hangs, or it was stopped) would keep every rank in
 * MPI_Finalize forever. Called once every other rank has said BYE (and waits for RELEASE), so
 * that whatever they still finished is journaled first. Under mpirun --enable-recovery a rank's
 * death does not end the job: such a rank is ended (SIGKILL, pinned by a pidfd), by rank 0 when
 * it runs on rank 0's node, else by a rank of its node (END_RANK). Without recovery the launcher
 * would take that kill for a crash and end the job itself (mpirun exits 137, srun likewise):
 * rank 0 has the launcher end the job, stopped ranks included, with the job's own exit code
 * instead (f->abort_job, cmd_run.c). Returns true when that is needed. */
static bool end_lost_ranks(struct coord *k, bool recovery)
{
    struct vf_farm *f = k->f;
    bool abort_job = false;
    for (int r = 1; r < f->size; r++) {
        struct rinfo *ri = &k->r[r];
        if (!ri->lost || ri->ended)
            continue;
        ri->ended = true;
        char why[512] = "";
        if (ri->pid <= 0) {
            vf_log(&LOG, VF_LOG_ERROR, "lost rank %d: its pid is unknown: it cannot be ended%s", r,
                   recovery ? "; if it is still there, MPI_Finalize waits for it: end it by hand"
                   : "");
            abort_job |= !recovery;
            continue;
        }
        if (strcmp(ri->host, f->host) == 0) {
            int rc = recovery ? vf_farm_end_rank(ri->pid, r, why, sizeof why)
                              : vf_farm_rank_alive(ri->pid, r, why, sizeof why);
            if (rc > 0 && recovery)
                vf_log(&LOG, VF_LOG_WARN, "lost rank %d (pid %d) was still there: ended it "
                       "(SIGKILL), or MPI_Finalize would wait for it forever", r, ri->pid);
            else if (rc == 0 && why[0])
                vf_log(&LOG, VF_LOG_WARN, "not ending lost rank %d: %s", r, why);
            else if (rc < 0 && recovery)
                vf_log(&LOG, VF_LOG_ERROR, "could not end lost rank %d (pid %d): %s; end it by "
                       "hand: MPI_Finalize waits for it", r, ri->pid, why);
            if (rc != 0 && !recovery) {
                vf_log(&LOG, VF_LOG_WARN, "lost rank %d (pid %d) is still there%s%s%s", r, ri->pid,
                       rc < 0 ? " (or cannot tell: " : "", rc < 0 ? why : "", rc < 0 ? ")" : "");
                abort_job = true;
            }
            continue;
        }
        if (!recovery) {
            vf_log(&LOG, VF_LOG_WARN, "lost rank %d (pid %d on %s) may still be there", r, ri->pid,
                   ri->host);
            abort_job = true;
            continue;
        }
        /* a rank of its node that still listens: running, or waiting for RELEASE */
        int by = -1;
        for (int w = 1; w < f->size && by < 0; w++)
            if (w != r && k->r[w].ready && !k->r[w].lost && (!k->r[w].gone || !k->r[w].released) &&
                strcmp(k->r[w].host, ri->host) == 0)
                by = w;
        struct vf_msg m;
        struct vf_error e = {0};
        vf_msg_init(&m, VF_MSG_END_RANK, 0);
        m.pid = ri->pid;
        m.done = r;
        if (by < 0 || send_to(k, by, &m, &e) < 0)
            vf_log(&LOG, VF_LOG_ERROR, "lost rank %d (pid %d on %s) may still be there and no rank "
                   "on its node can end it: MPI_Finalize waits for it; end it by hand (kill -9 %d "
                   "on %s)", r, ri->pid, ri->host, ri->pid, ri->host);
        else
            vf_log(&LOG, VF_LOG_VERBOSE, "rank %d asked to end lost rank %d (pid %d) on %s", by, r,
                   ri->pid, ri->host);
    }
    return abort_job;
}

/* ---- the loop ----------------------------------------------------------------------------- */

int vf_farm_coordinate(struct vf_farm *f, const struct vf_link *worker0, double t_start,
                       double setup_s, struct vf_error *err)
{
    struct coord k = {.f = f, .w0 = worker0, .status = VF_OK, .null = f->null_ms >= 0,
                      .t_start = t_start, .setup_s = setup_s};
    char *jpath = NULL;
    int rc = VF_OK, summary = VF_EXIT_OK;   /* summary: printing it, an exit code */
    double cpu0 = thread_cpu(), helper_cpu = 0;
    k.c = vf_calloc(f->n_chunks ? f->n_chunks : 1, sizeof *k.c, err);
    k.r = vf_calloc((size_t)f->size, sizeof *k.r, err);
    k.order = vf_calloc(f->n_chunks ? f->n_chunks : 1, sizeof *k.order, err);
    if (!k.c || !k.r || !k.order) {
        rc = VF_ENOMEM;
        goto stop;
    }
    k.t0 = vf_now();
    for (int r = 0; r < f->size; r++) {
        k.r[r].chunk = k.r[r].lost_chunk = -1;
        k.r[r].last_heard = k.t0;
        if (f->ids) {           /* until its READY: what setup gathered */
            k.r[r].pid = f->ids[r].pid;
            snprintf(k.r[r].host, sizeof k.r[r].host, "%.63s", f->ids[r].host);
        }
    }
    for (size_t i = 0; i < f->n_chunks; i++)
        k.order[i] = (int)i;
    g_sort_farm = f;
    qsort(k.order, f->n_chunks, sizeof *k.order, cmp_longest);
    if (k.null) {
        /* a test of the farm: nothing of a real run's journal is read or written */
        vf_log(&LOG, VF_LOG_INFO, "null colorizer: %g ms per frame; no journal, nothing at the "
               "output path; report in %s", f->null_ms, f->work_dir);
        rc = decide_done(&k, err);
    } else {
        if (!(jpath = vf_path_join(f->work_dir, "journal", err))) {
            rc = VF_ENOMEM;
            goto stop;
        }
        if ((rc = vf_journal_open(&k.journal, jpath, err)) < 0)
            goto stop;
        /* checks every journaled segment's checksum: the ranks' PINGs are answered meanwhile */
        rc = while_answering(&k, decide_done, &helper_cpu, err);
    }
    if (rc < 0)
        goto stop;
    if (k.n_resumed)
        vf_log(&LOG, VF_LOG_INFO, "resuming: %zu of %zu chunks are done (journal %s)", k.n_resumed,
               f->n_chunks, jpath);
    if (k.n_renumbered)
        vf_log(&LOG, VF_LOG_INFO, "resuming: %zu of them are an earlier plan's chunks under other "
               "ids (the shot list changed before them), renamed", k.n_renumbered);

    /* Until every chunk is done, or the job stops. When nothing comes, the loop waits on rank 0's
     * worker's mailbox (woken at once by it) 1 ms doubling to 20 ms before it looks at MPI again:
     * an assignment waits at most that long after a quiet spell (chunks take seconds), and the
     * loop costs little CPU beside a busy worker. */
    int idle_ms = 1;
    while (k.n_done < f->n_chunks && k.status == VF_OK) {
        int n = drain(&k, err);
        if (n < 0) {
            rc = n;
            goto stop;
        }
        if (vf_farm_signal && k.status == VF_OK) {
            k.status = VF_EINTERRUPTED;
            snprintf(k.why, sizeof k.why, "interrupted by %s", vf_farm_signal_name(vf_farm_signal));
        }
        if ((rc = check_lost(&k, err)) < 0)
            goto stop;
        if (k.status != VF_OK)
            break;
        if ((rc = assign_idle(&k, err)) < 0)
            goto stop;
        sample_rate(&k);
        show_progress(&k, false);
        if (n == 0) {
            struct vf_msg m;
            if (vf_mailbox_get(worker0->to_coord, &m, idle_ms / 1000.0)) {
                if ((rc = handle(&k, 0, &m, err)) < 0)
                    goto stop;
                idle_ms = 1;
            } else {
                idle_ms = idle_ms * 2 > 20 ? 20 : idle_ms * 2;
            }
        } else {
            idle_ms = 1;
        }
    }
    if (k.status != VF_OK)
        goto stop;
    /* every rank's READY (host, device) for the report, also when every chunk was resumed; a
     * rank that stays silent is lost like any other */
    for (double until = vf_now() + 10; vf_now() < until;) {
        bool all = true;
        for (int r = 0; r < f->size; r++)
            all &= k.r[r].ready || k.r[r].gone;
        if (all)
            break;
        if ((rc = drain(&k, err)) < 0 || (rc = check_lost(&k, err)) < 0)
            goto stop;
        rc = VF_OK;
        vf_farm_sleep_ms(1);
    }
    clear_live(&k);
    k.cpu_s = thread_cpu() - cpu0 + helper_cpu;
    k.coord_wall_s = vf_now() - k.t0;
    k.colorize_s = k.t_first_assign > 0 ? k.t_last_done - k.t_first_assign : 0;

    /* every chunk is done: the output (merge), the seam errors and report.json, on a thread */
    if ((rc = while_answering(&k, finish, NULL, err)) < 0)
        goto stop;
    vf_log(&LOG, VF_LOG_INFO, "done: %lld frames in %.1f s, %zu chunks (%zu resumed), %s%s",
           (long long)f->frames, json_real_value(json_object_get(k.rep, "wall_s")), f->n_chunks,
           k.n_resumed, k.null ? "null colorizer: nothing written at " : "output ",
           f->film->output);
    if (f->json)
        summary = vf_json_print(json_incref(k.rep));
    else if (!f->quiet) {
        print_summary(&k, k.rep);
        summary = vf_stdout_done();
    }

stop:
    clear_live(&k);
    {
        /* A local failure of the coordinator itself stops the job like a failed chunk. */
        int status = rc < 0 ? rc : k.status;
        struct vf_error e2 = {0};
        k.stopping = true;
        if (stop_all(&k, status, &e2) < 0 && rc == VF_OK) {
            *err = e2;
            rc = e2.code;
        }
        /* Wait for every rank's BYE (or LEAVE): running chunks stop within a frame or two and
         * report, and whatever still finishes is journaled; every message the ranks sent is
         * received before MPI_Finalize. A rank silent for --rank-timeout (dead, stopped, hung:
         * a live one answers STOP at once) is lost and not waited for; after 30 s (success) or
         * 8 s (a failure, an interrupt) the ranks that still have not answered are lost too. */
        double until = vf_now() + (status == VF_OK ? 30 : 8);
        while (k.r && vf_now() < until) {
            bool all_gone = true;
            for (int r = 0; r < f->size; r++)
                all_gone &= k.r[r].gone;
            if (all_gone)
                break;
            if (k.status == VF_OK)
                k.status = status;
            if (drain(&k, &e2) < 0 || check_lost(&k, &e2) < 0) {
                vf_log(&LOG, VF_LOG_ERROR, "while the ranks stop: %s", e2.msg);
                break;
            }
            vf_farm_sleep_ms(2);
        }
        for (int r = 1; k.r && r < f->size; r++)
            if (!k.r[r].gone) {
                char why[160];
                snprintf(why, sizeof why, "it has not answered STOP (nothing from it for %.1f s)",
                         vf_now() - k.r[r].last_heard);
                declare_lost(&k, r, vf_now() - k.r[r].last_heard, why);
            }
        if (status != VF_OK && rc == VF_OK) {
            rc = k.status;
            if (k.status == VF_EINTERRUPTED && k.null)
                vf_error_set(err, VF_EINTERRUPTED, "%s; %zu of %zu chunks were done (null "
                             "colorizer: nothing is journaled)", k.why, k.n_done, f->n_chunks);
            else if (k.status == VF_EINTERRUPTED)
                vf_error_set(err, VF_EINTERRUPTED, "%s; %zu of %zu chunks are done and journaled: "
                             "run the same command to resume", k.why, k.n_done, f->n_chunks);
            else if (k.null)
                vf_error_set(err, k.status, "%s\n(null colorizer: nothing is journaled)", k.why);
            else if (k.n_done == 0)
                vf_error_set(err, k.status, "%s\nno chunk finished: fix the cause and run the "
                             "same command again", k.why);
            else
                vf_error_set(err, k.status, "%s\nthe %zu chunk%s that finished %s kept in the "
                             "journal: fix the cause and run the same command to go on", k.why,
                             k.n_done, k.n_done == 1 ? "" : "s", k.n_done == 1 ? "is" : "are");
        }
        /* the lost ranks that may still be there: ended now that the others have stopped and
         * what they finished is journaled (and before they are released: a rank of a lost
         * rank's node may have to end it) */
        bool recovery = vf_farm_mpi_recovery();
        if (k.r && end_lost_ranks(&k, recovery)) {
            f->abort_job = true;
            vf_log(&LOG, VF_LOG_WARN, "a lost rank would keep MPI_Finalize waiting forever: the "
                   "launcher ends the job, every rank, with exit code %d%s%s", vf_exit_code(rc),
                   rc == VF_OK && vf_farm_under_mpirun() ? " (which mpirun reports as 1)"
                   : "", rc == VF_OK ? "; the output and report.json are complete"
                   : k.null ? "" : "; every chunk that finished is journaled");
        }
        /* (under mpirun, when the launcher has to end the job, the ranks that said BYE are
         * released by cmd_run.c once rank 0 has printed why, with word to leave without
         * MPI_Finalize: mpirun would end rank 0 as soon as one of them left) */
        bool later = f->abort_job && vf_farm_under_mpirun() && k.r;
        if (later && !(f->release_later = calloc((size_t)f->size, sizeof(int))))
            later = false;
        for (int r = 1; k.r && r < f->size; r++) {
            if (!k.r[r].said_bye || k.r[r].released)
                continue;
            if (later) {
                f->release_later[f->n_release_later++] = r;
                k.r[r].released = true;
            } else {
                release(&k, r);
            }
        }
        /* a PING a relay sent before its RELEASE came is taken (and not answered), so that it is
         * not left unreceived at MPI_Finalize */
        for (double t = vf_now() + 0.05; k.r && f->size > 1 && vf_now() < t;) {
            if (drain(&k, &e2) < 0)
                break;
            vf_farm_sleep_ms(2);
        }
    }
    /* as for any verb, what a run says on stdout is part of its result; the ranks stopped as
     * after any finished film (the summary is said to have failed only now) */
    if (rc == VF_OK && summary != VF_EXIT_OK)
        rc = vf_error_set(err, summary == VF_EXIT_IO      ? VF_EIO
                               : summary == VF_EXIT_NOMEM ? VF_ENOMEM
                                                          : VF_EINTERNAL,
                          "the film is done (%s), but its summary could not be %s",
                          k.null ? "a null run" : f->film->output,
                          summary == VF_EXIT_IO ? "written to standard output" : "made");
    json_decref(k.rep);
    free(jpath);
    vf_journal_close(&k.journal);
    free(k.c);
    free(k.r);
    free(k.order);
    free(k.held);
    return rc;
}
