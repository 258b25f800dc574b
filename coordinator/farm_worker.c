/*
 * coordinator/farm_worker.c: what every rank does (docs/FARM.md "Ranks and roles"): say READY,
 * then for each ASSIGN colorize the chunk with node/'s pipeline, write its seam file and report
 * DONE (the checksum and timings, or the error), until STOP. The loop always runs on a thread
 * and talks through mailboxes: rank 0's to its coordinator; on other ranks to the main thread,
 * which relays to rank 0 over MPI (only main threads call MPI: MPI_THREAD_FUNNELED), sends a
 * heartbeat at least every second while a chunk runs, and stops the rank when rank 0 no longer
 * answers. With --null-colorizer the chunk is a sleep of MS per frame: no network, no codecs.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/farm.h"

struct progress {
    const struct vf_link *link;
    struct vf_farm *f;
    int chunk;
    double last;                /* when the last PROGRESS went */
};

/* After each frame: at most once a second a PROGRESS (into a mailbox: any thread may). A STOP
 * needs no look here: whoever receives it (rank 0's coordinator, another rank's relay) sets
 * vf_farm_stop. */
static void on_progress(void *opaque, int64_t done, int64_t total)
{
    struct progress *p = opaque;
    double now = vf_now();
    if (now - p->last < 1.0 && done < total)
        return;
    p->last = now;
    struct vf_error err = {0};
    struct vf_msg m;
    vf_msg_init(&m, VF_MSG_PROGRESS, p->f->rank);
    m.chunk = p->chunk;
    m.done = done;
    m.total = total;
    if (vf_link_send(p->link, &m, &err) < 0)
        atomic_store(&vf_farm_stop, 1);   /* the coordinator is gone: stop */
}

static void sleep_until(double t)
{
    double s = t - vf_now();
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The null colorizer (--null-colorizer MS): each frame of the chunk, warm-up included, takes MS
 * ms; nothing is decoded, colorized or written. Stops before a frame like the real pipeline. */
static int null_chunk(struct vf_farm *f, const struct vf_farm_chunk *fc, struct progress *pg,
                      struct vf_msg *done, struct vf_error *err)
{
    int64_t total = fc->end - fc->warm_start;
    double t0 = vf_now();
    for (int64_t i = 0; i < total; i++) {
        if (atomic_load(&vf_farm_stop))
            return vf_error_set(err, VF_EINTERRUPTED, "rank %d: chunk %d stopped before frame "
                                "%lld%s", f->rank, fc->id, (long long)(fc->warm_start + i),
                                vf_farm_signal ? " (a signal)" : "");
        if (f->null_ms > 0)
            sleep_until(t0 + (double)(i + 1) * f->null_ms / 1000);
        on_progress(pg, i + 1, total);
    }
    done->frames_kept = fc->end - fc->start;
    done->frames_warmup = fc->start - fc->warm_start;
    done->t_infer = done->t_total = vf_now() - t0;
    return VF_OK;
}

char *vf_farm_segment_path(const struct vf_farm *f, int chunk, const char *ext, int rank, int pid,
                           struct vf_error *err)
{
    char name[96];
    if (rank < 0)
        snprintf(name, sizeof name, "%05d.%s", chunk, ext);
    else
        snprintf(name, sizeof name, "%05d.r%d-%d.%s", chunk, rank, pid, ext);
    return vf_path_join(f->seg_dir, name, err);
}

bool vf_farm_segment_rank_name(const char *name)
{
    const char *p = name;
    for (int i = 0; i < 5; i++, p++)
        if (*p < '0' || *p > '9')
            return false;
    if (strncmp(p, ".r", 2) != 0)
        return false;
    p += 2;
    for (int part = 0; part < 2; part++) {
        const char *d = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == d || *p != (part ? '.' : '-'))
            return false;
        p++;
    }
    return strcmp(p, "mkv") == 0 || strcmp(p, "seam") == 0;
}

/* One ASSIGN: colorize, write the seam file, fill `done`. */
static void run_chunk(struct vf_farm *f, const struct vf_link *link, const struct vf_msg *a,
                      float *ref, float *ref_full, char **ref_path, struct progress *pg,
                      struct vf_msg *done)
{
    struct vf_error err = {0};
    struct vf_chunk_result res = {0};
    char *seg = NULL, *seam = NULL;
    int rc = VF_OK;
    *pg = (struct progress){.link = link, .f = f, .chunk = a->chunk, .last = vf_now()};
    vf_msg_init(done, VF_MSG_DONE, f->rank);
    done->chunk = a->chunk;
    done->attempt = a->attempt;
    if (a->chunk < 0 || (size_t)a->chunk >= f->n_chunks) {
        rc = vf_error_set(&err, VF_EINTERNAL, "rank %d was assigned chunk %d of %zu", f->rank,
                          (int)a->chunk, f->n_chunks);
        goto out;
    }
    const struct vf_farm_chunk *fc = &f->chunks[a->chunk];
    if (f->null_ms >= 0) {
        rc = null_chunk(f, fc, pg, done, &err);
        goto out;
    }
    /* The reference's features are computed once per distinct image on this rank; the same
     * image gives the same features, so reusing them changes no byte. */
    bool same_ref = *ref_path && strcmp(*ref_path, fc->reference) == 0;
    if (!same_ref) {
        free(*ref_path);
        *ref_path = NULL;
        char sum[65];
        if ((rc = vf_shard_file_checksum(fc->reference, sum, &err)) < 0)
            goto out;
        if (strcmp(sum, fc->reference_sha) != 0) {
            rc = vf_error_set(&err, VF_EINVAL, "reference image %s is not the file rank 0 planned "
                              "with (sha256 %.12s..., rank 0 read %.12s...): it changed during the "
                              "job, or this node sees another copy; every rank must see the same "
                              "files", fc->reference, sum, fc->reference_sha);
            goto out;
        }
        if ((rc = vf_node_load_reference(fc->reference, f->h, f->w, ref, NULL, &err)) < 0)
            goto out;
        if (ref_full && (rc = vf_node_load_reference(fc->reference, f->info->height,
                                                     f->info->width, ref_full, NULL, &err)) < 0)
            goto out;
        if (!(*ref_path = vf_strdup(fc->reference, &err))) {
            rc = VF_ENOMEM;
            goto out;
        }
    }
    /* this rank's own names: rank 0 renames them to the chunk's when it journals the chunk */
    seg = vf_farm_segment_path(f, fc->id, "mkv", f->rank, (int)getpid(), &err);
    seam = vf_farm_segment_path(f, fc->id, "seam", f->rank, (int)getpid(), &err);
    if (!seg || !seam) {
        rc = VF_ENOMEM;
        goto out;
    }
    struct vf_chunk ch = {.id = fc->id, .shot = fc->shot, .warm_start = fc->warm_start,
                          .start = fc->start, .end = fc->end, .reference = fc->reference};
    memcpy(ch.hash, fc->hash, sizeof ch.hash);
    struct vf_chunk_job job = {
        .info = f->info, .chunk = &ch, .encode = &f->spec, .segment = seg,
        .colorizer = f->cz, .h = f->h, .w = f->w, .reference_rgb = same_ref ? NULL : ref,
        .reference_rgb_full = same_ref ? NULL : ref_full,
        .queue = f->queue, .stop = &vf_farm_stop, .progress = on_progress,
        .progress_opaque = pg};
    rc = vf_node_colorize_chunk(&job, &res, &err);   /* it resets the recurrent state first */
    if (rc < 0) {
        if (rc != VF_EINTERRUPTED) {
            /* the colorizer may hold a half-set reference: load it again next time */
            free(*ref_path);
            *ref_path = NULL;
        }
        goto out;
    }
    /* seam data only feeds the report: a failure to write it costs that boundary, not the chunk */
    struct vf_error se = {0};
    if (vf_seam_write(seam, res.checksum, f->h, f->w, res.warm_ab, res.last_ab, &se) < 0)
        vf_log(NULL, VF_LOG_WARN, "rank %d: %s (its boundary drops out of the seam report)",
               f->rank, se.msg);
    memcpy(done->checksum, res.checksum, sizeof done->checksum);
    done->frames_kept = res.frames_kept;
    done->frames_warmup = res.frames_warmup;
    done->frames_passthrough = res.frames_passthrough;
    done->t_decode = res.t_decode;
    done->t_infer = res.t_infer;
    done->t_encode = res.t_encode;
    done->t_total = res.t_total;
out:
    if (rc < 0)
        snprintf(done->text, sizeof done->text, "%s", err.msg);
    done->status = rc;
    vf_node_chunk_result_free(&res);
    free(seg);
    free(seam);
}

/* The worker's last words: LEAVE (it gives up: status and why) or BYE (after a STOP). Every
 * message a rank sent before them reaches the coordinator first (MPI keeps the order per pair),
 * so a coordinator that waits for them has received everything before MPI_Finalize. */
static void last_words(struct vf_farm *f, const struct vf_link *link, int type, int status,
                       const struct vf_error *why)
{
    struct vf_msg m;
    struct vf_error e = {0};
    vf_msg_init(&m, type, f->rank);
    m.status = status;
    if (why && why->msg[0])
        snprintf(m.text, sizeof m.text, "%s", why->msg);
    if (vf_link_send(link, &m, &e) < 0)
        vf_log(NULL, VF_LOG_WARN, "rank %d: could not tell the coordinator: %s", f->rank, e.msg);
}

/* The loop itself, on a thread, through mailboxes. */
static int worker_loop(struct vf_farm *f, const struct vf_link *link, struct vf_error *err)
{
    struct vf_msg m;
    char *ref_path = NULL;
    bool stopped = false;
    int rc;
    float *ref = NULL, *ref_full = NULL;
    /* the reference at inference size, and at the film's for pass-through frames (node.h) */
    if (f->null_ms < 0 &&
        (!(ref = vf_calloc((size_t)3 * f->h * f->w, sizeof *ref, err)) ||
         (f->passthrough && !(ref_full = vf_calloc((size_t)3 * f->info->height * f->info->width,
                                                   sizeof *ref_full, err))))) {
        rc = VF_ENOMEM;
        goto out;
    }
    vf_msg_init(&m, VF_MSG_READY, f->rank);
    snprintf(m.host, sizeof m.host, "%s", f->host);
    snprintf(m.device, sizeof m.device, "%s", f->device);
    m.pid = (int32_t)getpid();
    if ((rc = vf_link_send(link, &m, err)) < 0)
        goto out;
    for (;;) {
        rc = vf_link_recv(link, &m, 0.25, err);
        if (rc < 0)
            goto out;
        if (rc == 0)
            continue;
        if (m.type == VF_MSG_STOP) {
            rc = m.status;
            if (rc < 0 && m.text[0])          /* a stop of this rank alone says why */
                vf_error_set(err, rc, "%s", m.text);
            else if (rc == VF_FARM_ELOST)
                vf_error_set(err, rc, "rank %d (%s): rank 0 declared this rank lost (nothing came "
                             "from it for over %g s while it ran a chunk: it was stopped, hung or "
                             "unreachable) and gave its work to other ranks; this rank stops",
                             f->rank, f->host, f->rank_timeout);
            stopped = true;
            break;
        }
        if (m.type != VF_MSG_ASSIGN)
            continue;
        struct progress pg;
        struct vf_msg done;
        run_chunk(f, link, &m, ref, ref_full, &ref_path, &pg, &done);
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            done.mem_peak = (int64_t)ru.ru_maxrss * 1024;   /* KiB on Linux */
        done.mem_network = f->be ? (int64_t)vf_backend_bytes(f->be) : 0;
        if ((rc = vf_link_send(link, &done, err)) < 0)
            goto out;
    }
out:
    if (stopped)
        last_words(f, link, VF_MSG_BYE, rc, NULL);
    else
        last_words(f, link, VF_MSG_LEAVE, rc < 0 ? rc : VF_EINTERNAL, err);
    free(ref);
    free(ref_full);
    free(ref_path);
    return rc;
}

/* ---- the relay: the main thread of ranks other than 0 --------------------------------------- */

struct runner {
    struct vf_farm *f;
    struct vf_link link;        /* the loop's mailboxes */
    int rc;
    struct vf_error err;
};

static void *runner_main(void *opaque)
{
    struct runner *r = opaque;
    r->rc = worker_loop(r->f, &r->link, &r->err);
    return NULL;
}

/* Stop this rank's loop on its own (rank 0 is gone): the running chunk stops at its next frame. */
static void stop_loop(struct runner *r, int status)
{
    struct vf_msg m;
    struct vf_error e = {0};
    vf_msg_init(&m, VF_MSG_STOP, 0);
    m.status = status;
    atomic_store(&vf_farm_stop, 1);
    if (vf_mailbox_put(r->link.to_worker, &m, &e) < 0)
        vf_log(NULL, VF_LOG_ERROR, "rank %d: %s", r->f->rank, e.msg);
}

/* END_RANK: rank 0 asks this rank to end a lost rank of this node that is still there (it holds
 * no work, and MPI_Finalize would wait for it forever). */
static void end_rank(const struct vf_farm *f, const struct vf_msg *m)
{
    char why[512] = "";
    int rc = vf_farm_end_rank((int)m->pid, (int)m->done, why, sizeof why);
    if (rc > 0)
        vf_log(NULL, VF_LOG_WARN, "rank %d: ended lost rank %lld (pid %d) on %s", f->rank,
               (long long)m->done, (int)m->pid, f->host);
    else if (rc == 0 && why[0])
        vf_log(NULL, VF_LOG_WARN, "rank %d: not ending lost rank %lld on %s: %s", f->rank,
               (long long)m->done, f->host, why);
    else if (rc < 0)
        vf_log(NULL, VF_LOG_ERROR, "rank %d: could not end lost rank %lld (pid %d) on %s: %s; "
               "end it by hand, MPI_Finalize waits for it", f->rank, (long long)m->done,
               (int)m->pid, f->host, why);
}

static int relay(struct vf_farm *f, struct vf_error *err)
{
    const struct vf_link mpi = {.mpi = true, .timeout = f->rank_timeout};
    struct runner r = {.f = f};
    struct vf_error lost = {0};         /* this rank stops on its own: why */
    bool started = false;
    pthread_t th;
    int rc;
    if ((rc = vf_mailbox_create(&r.link.to_coord, err)) < 0 ||
        (rc = vf_mailbox_create(&r.link.to_worker, err)) < 0)
        goto out;
    int e = pthread_create(&th, NULL, runner_main, &r);
    if (e) {
        rc = vf_error_set(err, VF_EINTERNAL, "rank %d: pthread_create: %s", f->rank, strerror(e));
        /* rank 0 waits for this rank's READY or LEAVE */
        last_words(f, &mpi, VF_MSG_LEAVE, rc, err);
        goto out;
    }
    started = true;
    const double timeout = f->rank_timeout, beat = fmin(1.0, timeout / 4), ping = timeout / 4;
    double now = vf_now(), last_sent = now, last_heard = now, last_ping = now;
    int chunk = -1;
    int64_t done = 0, total = 0;
    bool coord_gone = false, told_signal = false, finished = false;
    int overdue = 0;                    /* looks at MPI in a row, rank 0 silent too long */
    while (!finished) {
        struct vf_msg m;
        struct vf_error e2 = {0};
        /* the loop's messages go out at once; otherwise look at MPI every 2 ms while idle (an
         * ASSIGN is taken within that), every 50 ms while a chunk runs (a STOP, a PONG) */
        if (vf_mailbox_get(r.link.to_coord, &m, chunk >= 0 ? 0.05 : 0.002)) {
            if (m.type == VF_MSG_PROGRESS) {
                done = m.done;
                total = m.total;
            } else if (m.type == VF_MSG_DONE) {
                chunk = -1;
                told_signal |= m.status == VF_EINTERRUPTED;
            } else if (m.type == VF_MSG_BYE || m.type == VF_MSG_LEAVE) {
                finished = true;
            }
            if (coord_gone)
                continue;
            if (vf_link_send(&mpi, &m, &e2) < 0) {
                coord_gone = true;
                vf_error_set(&lost, e2.code, "rank %d (%s): cannot reach rank 0 (%s): this rank "
                             "stops", f->rank, f->host, e2.msg);
                if (!finished)
                    stop_loop(&r, lost.code);
            }
            last_sent = vf_now();
            continue;
        }
        now = vf_now();
        if (coord_gone)
            continue;                   /* wait for the loop's BYE */
        int got = vf_link_recv(&mpi, &m, 0, &e2);
        if (got < 0) {
            coord_gone = true;
            lost = e2;
            stop_loop(&r, lost.code);
            continue;
        }
        if (got == 1) {
            last_heard = now;
            switch (m.type) {
            case VF_MSG_ASSIGN:
                chunk = m.chunk;
                done = total = 0;
                last_sent = now;        /* the heartbeat's clock starts with the chunk */
                break;
            case VF_MSG_STOP:
                if (chunk >= 0 || m.status < 0)
                    atomic_store(&vf_farm_stop, 1);   /* the running chunk stops */
                break;
            case VF_MSG_END_RANK:
                end_rank(f, &m);
                break;
            default:
                break;
            }
            if (m.type == VF_MSG_ASSIGN || m.type == VF_MSG_STOP) {
                if (vf_mailbox_put(r.link.to_worker, &m, &e2) < 0) {
                    coord_gone = true;
                    lost = e2;
                    stop_loop(&r, lost.code);
                }
            }
            continue;
        }
        /* rank 0 silent too long; a message that came while this rank did not run (it was
         * stopped, or starved of CPU) may take a second look at MPI to show: three in a row */
        overdue = now - last_heard > timeout ? overdue + 1 : 0;
        if (overdue > 3) {
            coord_gone = true;
            vf_error_set(&lost, VF_FARM_ELOST, "rank %d (%s): rank 0 (the coordinator) has not "
                         "answered for %.0f s: it is gone or hung; this rank stops", f->rank,
                         f->host, now - last_heard);
            stop_loop(&r, lost.code);
            continue;
        }
        struct vf_msg out;
        if (vf_farm_signal && !told_signal && chunk < 0) {
            /* a signal that reached only this rank while it is idle: tell the coordinator (while
             * a chunk runs, the chunk stops and its DONE says so) */
            vf_msg_init(&out, VF_MSG_DONE, f->rank);
            out.chunk = -1;
            out.status = VF_EINTERRUPTED;
            snprintf(out.text, sizeof out.text, "rank %d: interrupted by %s", f->rank,
                     vf_farm_signal_name(vf_farm_signal));
            told_signal = true;
        } else if (chunk >= 0 && now - last_sent >= beat) {
            /* the heartbeat: the chunk's progress again, so that rank 0 knows this rank lives */
            vf_msg_init(&out, VF_MSG_PROGRESS, f->rank);
            out.chunk = chunk;
            out.done = done;
            out.total = total;
        } else if (now - last_heard >= ping && now - last_ping >= ping) {
            /* rank 0 has been silent a while: it answers a PING at once when it lives */
            vf_msg_init(&out, VF_MSG_PING, f->rank);
            last_ping = now;
        } else {
            continue;
        }
        if (vf_link_send(&mpi, &out, &e2) < 0) {
            coord_gone = true;
            vf_error_set(&lost, e2.code, "rank %d (%s): cannot reach rank 0 (%s): this rank stops",
                         f->rank, f->host, e2.msg);
            stop_loop(&r, lost.code);
        }
        last_sent = now;
    }
    /* After the BYE (or LEAVE) rank 0 still says RELEASE: nothing more comes from it. Until then
     * this thread takes every message, so that none is left unreceived at MPI_Finalize (a PONG to
     * a PING sent just before the BYE), and ends a lost rank of this node when asked (END_RANK:
     * rank 0 sends those before RELEASE). It keeps watching rank 0 as before: silent for
     * --rank-timeout, it is gone, and this rank leaves all the same. */
    while (started && finished && !coord_gone) {
        struct vf_msg m;
        struct vf_error e2 = {0};
        int got = vf_link_recv(&mpi, &m, 0, &e2);
        now = vf_now();
        if (got < 0) {
            vf_log(NULL, VF_LOG_VERBOSE, "rank %d: after BYE: %s", f->rank, e2.msg);
            break;
        }
        if (got == 1) {
            last_heard = now;
            if (m.type == VF_MSG_RELEASE) {
                f->abort_job = m.status == 1;   /* leave as rank 0 does (cmd_run.c) */
                break;
            }
            if (m.type == VF_MSG_END_RANK)
                end_rank(f, &m);
            continue;
        }
        if (now - last_heard > timeout) {
            vf_log(NULL, VF_LOG_VERBOSE, "rank %d: no RELEASE from rank 0 for %.0f s after BYE: "
                   "leaving", f->rank, now - last_heard);
            break;
        }
        if (now - last_heard >= ping && now - last_ping >= ping) {
            struct vf_msg out;
            vf_msg_init(&out, VF_MSG_PING, f->rank);
            last_ping = now;
            if (vf_link_send(&mpi, &out, &e2) < 0)
                break;
        }
        vf_farm_sleep_ms(2);
    }
out:
    if (started) {
        int e3 = pthread_join(th, NULL);
        VF_ASSERT(e3 == 0);
        if (lost.code < 0) {
            *err = lost;
            rc = lost.code;
        } else {
            *err = r.err;
            rc = r.rc;
        }
    }
    vf_mailbox_destroy(&r.link.to_coord);
    vf_mailbox_destroy(&r.link.to_worker);
    return rc;
}

int vf_farm_worker(struct vf_farm *f, const struct vf_link *link, struct vf_error *err)
{
    return link->mpi ? relay(f, err) : worker_loop(f, link, err);
}
