/*
 * coordinator/farm_worker.c: what every rank does (docs/FARM.md "Ranks and roles"): say READY,
 * then for each ASSIGN colorize the chunk with node/'s pipeline, write its seam file and report
 * DONE (the checksum and timings, or the error), until STOP. Rank 0 runs this on a thread of
 * its own and talks to the coordinator through mailboxes; other ranks through MPI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/farm.h"

struct progress {
    const struct vf_link *link;
    struct vf_farm *f;
    int chunk;
    double last;                /* when the last PROGRESS went */
    bool stopped;               /* a STOP arrived during the chunk */
    int stop_status;
};

/* After each frame: at most once a second a PROGRESS, and (over MPI) a look for STOP. Rank 0's
 * worker needs no look: its coordinator sets vf_farm_stop itself. */
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
    if (p->link->mpi && vf_link_recv(p->link, &m, 0, &err) == 1 && m.type == VF_MSG_STOP) {
        p->stopped = true;
        p->stop_status = m.status;
        atomic_store(&vf_farm_stop, 1);
    }
}

char *vf_farm_segment_path(const struct vf_farm *f, int chunk, const char *ext, bool relative,
                           struct vf_error *err)
{
    char name[64];
    snprintf(name, sizeof name, "%05d.%s", chunk, ext);
    if (relative) {
        char rel[80];
        snprintf(rel, sizeof rel, "segments/%s", name);
        return vf_strdup(rel, err);
    }
    return vf_path_join(f->seg_dir, name, err);
}

/* One ASSIGN: colorize, write the seam file, fill `done`. */
static void run_chunk(struct vf_farm *f, const struct vf_link *link, const struct vf_msg *a,
                      float *ref, char **ref_path, struct progress *pg, struct vf_msg *done)
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
        if ((rc = vf_node_load_reference(fc->reference, f->h, f->w, ref, &err)) < 0)
            goto out;
        if (!(*ref_path = vf_strdup(fc->reference, &err))) {
            rc = VF_ENOMEM;
            goto out;
        }
    }
    seg = vf_farm_segment_path(f, fc->id, "mkv", false, &err);
    seam = vf_farm_segment_path(f, fc->id, "seam", false, &err);
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
        .queue = f->queue, .stop = &vf_farm_stop, .progress = on_progress,
        .progress_opaque = pg};
    if (same_ref)
        vf_colorizer_reset(f->cz);
    rc = vf_node_colorize_chunk(&job, &res, &err);
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
    if (vf_seam_write(seam, f->h, f->w, res.warm_ab, res.last_ab, &se) < 0)
        vf_log(NULL, VF_LOG_WARN, "rank %d: %s (its boundary drops out of the seam report)",
               f->rank, se.msg);
    memcpy(done->checksum, res.checksum, sizeof done->checksum);
    done->frames_kept = res.frames_kept;
    done->frames_warmup = res.frames_warmup;
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

int vf_farm_worker(struct vf_farm *f, const struct vf_link *link, struct vf_error *err)
{
    struct vf_msg m;
    char *ref_path = NULL;
    bool told_signal = false, stopped = false;
    int rc;
    float *ref = vf_calloc((size_t)3 * f->h * f->w, sizeof *ref, err);
    if (!ref) {
        rc = VF_ENOMEM;
        goto out;
    }
    vf_msg_init(&m, VF_MSG_READY, f->rank);
    snprintf(m.host, sizeof m.host, "%s", f->host);
    snprintf(m.device, sizeof m.device, "%s", f->device);
    if ((rc = vf_link_send(link, &m, err)) < 0)
        goto out;
    for (;;) {
        rc = vf_link_recv(link, &m, 0.25, err);
        if (rc < 0)
            goto out;
        if (rc == 0) {
            /* A signal that reached only this rank while it is idle: tell the coordinator. */
            if (vf_farm_signal && !told_signal && link->mpi) {
                struct vf_msg d;
                vf_msg_init(&d, VF_MSG_DONE, f->rank);
                d.chunk = -1;
                d.status = VF_EINTERRUPTED;
                snprintf(d.text, sizeof d.text, "rank %d: interrupted by signal %d", f->rank,
                         (int)vf_farm_signal);
                if ((rc = vf_link_send(link, &d, err)) < 0)
                    goto out;
                told_signal = true;
            }
            continue;
        }
        if (m.type == VF_MSG_STOP) {
            rc = m.status;
            stopped = true;
            break;
        }
        if (m.type != VF_MSG_ASSIGN)
            continue;
        struct progress pg;
        struct vf_msg done;
        run_chunk(f, link, &m, ref, &ref_path, &pg, &done);
        if ((rc = vf_link_send(link, &done, err)) < 0)
            goto out;
        if (done.status == VF_EINTERRUPTED)
            told_signal = true;
        if (pg.stopped) {
            rc = pg.stop_status;
            stopped = true;
            break;
        }
    }
out:
    if (stopped)
        last_words(f, link, VF_MSG_BYE, rc, NULL);
    else
        last_words(f, link, VF_MSG_LEAVE, rc < 0 ? rc : VF_EINTERNAL, err);
    free(ref);
    free(ref_path);
    return rc;
}
