/*
 * coordinator/farm_resume.c: what a run does with each chunk of its plan, given the work folder's
 * journal (docs/FARM.md "Ranks and roles", setup step 4): keep the segment it journaled, take the
 * segment an earlier plan made for the same frames and settings under another id, or colorize it.
 * Rank 0's coordinator acts on the answer (farm_coord.c decide_done); `vaefarm plan` prints it.
 * Both read the same files the same way, so the plan says what the run then does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/farm.h"
#include "shard/shard.h"

int vf_farm_lock_write(int fd, long pid, const char *host)
{
    char text[128];
    int n = snprintf(text, sizeof text, "%ld %s\n", pid, host && host[0] ? host : "?");
    if (n < 0 || (size_t)n >= sizeof text)
        return -1;
    /* written over the old text, then cut to it (a reader never finds the file empty), and
     * synced: on NFS another node reads the server's copy, which an unsynced write reaches only
     * when the lock is let go at the run's end */
    return pwrite(fd, text, (size_t)n, 0) == n && ftruncate(fd, n) == 0 && fdatasync(fd) == 0
               ? 0 : -1;
}

bool vf_farm_lock_read(int fd, long *pid, char *host, size_t host_len)
{
    char text[128] = {0};
    char name[64] = "";
    *pid = 0;
    if (host_len)
        host[0] = '\0';
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    if (n <= 0 || sscanf(text, "%ld %63s", pid, name) < 1 || *pid <= 0) {
        *pid = 0;
        return false;
    }
    /* a host name as hosts are named (RFC 952/1123 letters, digits, '-', '.'; '_' as some
     * sites have it), else none: the text is anyone's to write, and it goes into messages */
    if (host_len && strcmp(name, "?") && strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
                                             strlen(name))
        snprintf(host, host_len, "%s", name);
    return true;
}

void vf_farm_journal_segment(char *buf, size_t n, int id)
{
    snprintf(buf, n, "segments/%05d.mkv", id);
}

/* The checksums of the segments read so far, by chunk id: a segment is read once even when it is
 * both a chunk's own and another's source (a split). */
struct sums {
    const char *work_dir;
    struct sum_of {
        int id;
        char sum[65];           /* "": missing or unreadable */
    } *v;
    size_t n, cap;
};

enum standing { NO_MEMORY = -1, STANDS, WRONG_NAME, MISSING, CHANGED };

/* Whether journal entry `e` still stands: its segment is its chunk's own name and has the
 * journaled checksum (the file's is left in `sum`, "" when it could not be read). */
static enum standing entry_stands(struct sums *c, const struct vf_journal_entry *e, char sum[65],
                                  struct vf_error *err)
{
    char canon[32];
    sum[0] = '\0';
    vf_farm_journal_segment(canon, sizeof canon, e->chunk);
    if (strcmp(e->segment, canon) != 0)
        return WRONG_NAME;
    size_t i = 0;
    while (i < c->n && c->v[i].id != e->chunk)
        i++;
    if (i == c->n) {
        if (c->n == c->cap) {
            size_t cap = c->cap ? 2 * c->cap : 64;
            struct sum_of *v = realloc(c->v, cap * sizeof *v);
            if (!v) {
                vf_error_set(err, VF_ENOMEM, "out of memory checking the journaled segments");
                return NO_MEMORY;
            }
            c->v = v;
            c->cap = cap;
        }
        struct vf_error e2 = {0};
        char *path = vf_path_join(c->work_dir, e->segment, err);
        if (!path)
            return NO_MEMORY;
        c->v[i].id = e->chunk;
        if (vf_shard_file_checksum(path, c->v[i].sum, &e2) < 0)
            c->v[i].sum[0] = '\0';
        free(path);
        c->n++;
    }
    memcpy(sum, c->v[i].sum, 65);
    if (!sum[0])
        return MISSING;
    return strcmp(sum, e->checksum) == 0 ? STANDS : CHANGED;
}

/* The newest entry of another chunk id with `hash` whose segment stands; NULL when none does, or
 * on an error (*rc < 0). */
static const struct vf_journal_entry *renumbered_source(const struct vf_journal *j, struct sums *c,
                                                        int id, const char *hash, int *rc,
                                                        struct vf_error *err)
{
    char sum[65];
    for (size_t x = vf_journal_count(j); x-- > 0;) {
        const struct vf_journal_entry *o = vf_journal_get(j, x);
        if (o->chunk == id || strcmp(o->hash, hash) != 0)
            continue;
        enum standing st = entry_stands(c, o, sum, err);
        if (st == NO_MEMORY) {
            *rc = VF_ENOMEM;
            return NULL;
        }
        if (st == STANDS)
            return o;
    }
    return NULL;
}

int vf_farm_resume_decide(const char *work_dir, const struct vf_journal *j, size_t n,
                          const char *const *hash, struct vf_resume *out, struct vf_error *err)
{
    struct sums sums = {.work_dir = work_dir};
    int rc = VF_OK;
    for (size_t i = 0; i < n && rc == VF_OK; i++) {
        const int id = (int)i;
        struct vf_resume *r = &out[i];
        *r = (struct vf_resume){.how = VF_RESUME_REDO, .why = VF_RESUME_NOT_JOURNALED};
        const struct vf_journal_entry *e = vf_journal_find(j, id, hash[i]);
        char sum[65];
        enum standing st = e ? entry_stands(&sums, e, sum, err) : MISSING;
        if (st == NO_MEMORY) {
            rc = VF_ENOMEM;
            break;
        }
        if (st == STANDS) {
            *r = (struct vf_resume){.how = VF_RESUME_KEEP, .entry = e};
            continue;
        }
        /* the same frames and settings under another id in an earlier plan */
        const struct vf_journal_entry *o = renumbered_source(j, &sums, id, hash[i], &rc, err);
        if (o) {
            *r = (struct vf_resume){.how = VF_RESUME_RENUMBERED, .entry = o};
        } else if (e) {
            /* its segment holds what a later entry for the same id journaled: a later plan's
             * chunk took the name (no damage) */
            const struct vf_journal_entry *later = vf_journal_find(j, id, NULL);
            r->entry = e;
            r->why = st == WRONG_NAME ? VF_RESUME_WRONG_NAME
                     : st == MISSING  ? VF_RESUME_MISSING
                     : later && later != e && !strcmp(sum, later->checksum) ? VF_RESUME_TAKEN
                                                                            : VF_RESUME_CHANGED;
        }
    }
    free(sums.v);
    return rc;
}
