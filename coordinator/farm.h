/*
 * coordinator/farm.h: the `run` verb's parts (docs/FARM.md): messages and the links that carry
 * them (MPI between processes, a mailbox between rank 0's coordinator and its worker thread),
 * the worker loop, the scheduler, the seam files, progress and the report. Private to
 * coordinator/, the only folder that knows MPI.
 */
#ifndef VF_FARM_H
#define VF_FARM_H

#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"
#include "node/node.h"

/* Every MPI call's result is checked: on failure record VF_EINTERNAL with the call, function,
 * file, line and MPI's own message, then goto label. */
#define VF_CHECK_MPI(call, err, label)                                                         \
    do {                                                                                       \
        int vf_mpi_rc_ = (call);                                                               \
        if (vf_mpi_rc_ != MPI_SUCCESS) {                                                       \
            char vf_mpi_msg_[MPI_MAX_ERROR_STRING] = "";                                       \
            int vf_mpi_len_ = 0;                                                               \
            MPI_Error_string(vf_mpi_rc_, vf_mpi_msg_, &vf_mpi_len_);                           \
            VF_CHECK_(true, err, VF_EINTERNAL, label, #call, vf_mpi_msg_);                     \
        }                                                                                      \
    } while (0)

/* ---- messages (docs/FARM.md "Messages") ---------------------------------------------------- */

#define VF_MSG_MAGIC "VFM1"
#define VF_MSG_VERSION 5   /* 4: DONE carries frames_passthrough; 5: and the rank's memory */
#define VF_MSG_TAG 17
#define VF_SETUP_TAG 18         /* the end of setup: each rank's status to rank 0, its verdict back */

enum vf_msg_type { VF_MSG_READY = 1, VF_MSG_ASSIGN, VF_MSG_PROGRESS, VF_MSG_DONE, VF_MSG_STOP,
                   VF_MSG_BYE, VF_MSG_LEAVE, VF_MSG_PING, VF_MSG_PONG, VF_MSG_END_RANK,
                   VF_MSG_RELEASE };

/* A farm-private status: the STOP that a rank declared lost gets, and what a worker that lost
 * its coordinator returns (exit code 1, "any other failure"). */
#define VF_FARM_ELOST (-100)

/* One record. Between threads it travels whole; over MPI packed (vf_msg_send_mpi): a header of
 * the numbers, then only the strings' bytes, so that every message without a text (all but an
 * error's DONE or LEAVE) is under 256 bytes and Open MPI's shared-memory transport sends it
 * inline: MPI_Send returns without the receiver (a bigger message waits until the receiver
 * takes it, which a stopped or dead rank never does). */
struct vf_msg {
    char magic[4];
    int32_t version;
    int32_t type;
    int32_t rank;               /* the sender */
    int32_t chunk;              /* ASSIGN, PROGRESS, DONE */
    int32_t attempt;            /* ASSIGN, DONE: 1 = first try */
    int32_t status;             /* DONE: 0 or a VF_E* code; STOP: the job's status */
    int32_t pid;                /* READY: the sender's process id; END_RANK: the pid to end */
    int64_t done, total;        /* PROGRESS: frames of the chunk done, of total; END_RANK:
                                 * done = the rank to end */
    int64_t frames_kept, frames_warmup;   /* DONE */
    int64_t frames_passthrough;           /* DONE: frames that took the reference's colours */
    double t_decode, t_infer, t_encode, t_total;   /* DONE: seconds */
    int64_t mem_peak, mem_network;  /* DONE: the rank's peak resident bytes so far (its process's,
                                     * getrusage), and what its network's backend holds (a GPU
                                     * rank's: GPU memory; 0: no network) */
    char checksum[65];          /* DONE: sha256 hex of the segment */
    char host[64];              /* READY: the sender's host name */
    char device[64];            /* READY: what the rank colorizes on */
    char text[VF_ERROR_MSG_MAX]; /* DONE with an error: the message */
};
void vf_msg_init(struct vf_msg *m, int type, int rank);
/* VF_EINVAL naming the sender when m is not a message of this build. */
int vf_msg_check(const struct vf_msg *m, int from, struct vf_error *err);

/* Send m to rank dest, packed; a send that does not complete within timeout_s (the receiver
 * never takes it) is left to MPI and is an error (VF_FARM_ELOST). */
int vf_msg_send_mpi(const struct vf_msg *m, int dest, double timeout_s, struct vf_error *err);
/* 1 with *m (and *from, when not NULL) when a message from `source` (or MPI_ANY_SOURCE) was
 * waiting; 0 when none; < 0 on an error or a message that is not this build's. */
int vf_msg_recv_mpi(int source, struct vf_msg *m, int *from, struct vf_error *err);

/* A mailbox: an unbounded FIFO of messages between two threads of one process. */
struct vf_mailbox;
int vf_mailbox_create(struct vf_mailbox **out, struct vf_error *err);
void vf_mailbox_destroy(struct vf_mailbox **mb);
int vf_mailbox_put(struct vf_mailbox *mb, const struct vf_msg *m, struct vf_error *err);
/* 1 with *m filled, 0 when empty (after waiting up to timeout_s; 0 = do not wait). */
int vf_mailbox_get(struct vf_mailbox *mb, struct vf_msg *m, double timeout_s);

/* How a worker talks to the coordinator: MPI to rank 0 (mpi = true: only a process's main
 * thread may use such a link), or rank 0's mailboxes. */
struct vf_link {
    bool mpi;
    double timeout;             /* mpi: seconds a send may wait for rank 0 (0: 60) */
    struct vf_mailbox *to_coord;
    struct vf_mailbox *to_worker;
};
int vf_link_send(const struct vf_link *l, const struct vf_msg *m, struct vf_error *err);
/* 1 with a message, 0 when none came within timeout_s (polls with short sleeps: a waiting rank
 * does not spin a core that another rank's network needs). */
int vf_link_recv(const struct vf_link *l, struct vf_msg *m, double timeout_s, struct vf_error *err);

/* Sleep `ms` milliseconds (resumed after a signal's interruption): the farm's polling loops. */
void vf_farm_sleep_ms(int ms);

/* Whether process `pid` is rank `rank` of this very job: its environment names this process's
 * PMIx namespace and that rank (so that a recycled pid is never taken for it). 1: it is (and
 * lives); 0: no such process of this job any more (*why is empty when there is no process `pid`,
 * else it says whose the pid is now); < 0: cannot tell, *why says why. */
int vf_farm_rank_alive(int pid, int rank, char *why, size_t why_len);
/* End (SIGKILL) rank `rank` of this job, process `pid`: the process is pinned first (pidfd_open),
 * then checked (vf_farm_rank_alive), then signalled through the pidfd, so that a pid recycled
 * meanwhile is never signalled. 1: ended; 0: not there (or, *why non-empty, the check refused:
 * the pid is another process's); < 0: could not, *why says why. */
int vf_farm_end_rank(int pid, int rank, char *why, size_t why_len);
/* Whether this job runs under mpirun --enable-recovery (a rank's death does not end the job). */
bool vf_farm_mpi_recovery(void);
/* Whether Open MPI's own mpirun (ORTE) started this process (not srun). */
bool vf_farm_under_mpirun(void);

/* ---- NCCL (coordinator/farm_nccl.c) -------------------------------------------------------- */
/* Whether this build has NCCL (the CUDA backend and libnccl). */
bool vf_farm_nccl_available(void);
/* Collective over all ranks of MPI_COMM_WORLD, each on its own GPU `gpu`: rank 0's `len` bytes
 * at buf reach every rank's buf (the id over MPI, the bytes over NCCL). */
int vf_farm_nccl_bcast(void *buf, size_t len, int gpu, int rank, int size, struct vf_error *err);

/* ---- the process-wide stop flag (signals, STOP) -------------------------------------------- */

extern atomic_int vf_farm_stop;        /* non-zero: running chunks stop at the next frame */
extern volatile sig_atomic_t vf_farm_signal;   /* the signal that arrived, or 0 */
void vf_farm_install_signals(void);
/* The name of one of the signals it installs ("SIGUSR2"), for messages; "a signal" otherwise. */
const char *vf_farm_signal_name(int sig);

/* ---- what every rank knows about the job ---------------------------------------------------- */

struct vf_farm_chunk {
    int id, shot;
    int64_t warm_start, start, end;
    char *reference;
    char reference_sha[65];     /* the image's sha256 as rank 0 read it */
    char hash[65];
};

struct vf_farm {
    int rank, size, local_rank, local_size;
    size_t mem_budget;          /* a CPU rank's bytes for its frames, codecs and network
                                   (vf_cpu_memory_budget, create_engine), the least any rank of
                                   this node measured at the start; 0: no limit */
    const char *yaml;
    bool quiet, verbose, json, tty;
    int threads;                /* CPU threads per rank */
    int retries;
    int ranks_per_gpu;
    int gpus, gpu;              /* GPUs this rank sees, and its own ((local rank / ranks per GPU)
                                   mod gpus), or -1: the CPU (no GPU, no CUDA backend) */
    int queue;                  /* the chunk pipeline's queue depth */
    double null_ms;             /* >= 0: the null colorizer (--null-colorizer MS): no network, no
                                 * codecs; each frame of work (warm-up included) takes MS ms */
    double rank_timeout;        /* seconds of silence after which a rank running a chunk is lost,
                                 * and a worker that hears nothing from rank 0 stops (default 60) */
    char host[64];
    /* rank 0: every rank's pid and host, gathered during setup (a rank that never says READY can
     * still be ended) */
    struct vf_rank_id { int32_t pid; char host[64]; } *ids;
    /* leave without MPI_Finalize and have the launcher end the job with this rank's exit code
     * (cmd_run.c): a rank that is still there but answers nothing (stopped, hung) would keep
     * MPI_Finalize waiting, and without mpirun --enable-recovery killing it makes the launcher
     * take the job for crashed. Rank 0 decides; under mpirun its RELEASE tells the other ranks
     * to leave the same way */
    bool abort_job;
    /* rank 0, under mpirun: the ranks whose RELEASE (telling them to leave that way) waits until
     * rank 0 has said why the job ends: they leave at once, and mpirun then ends rank 0 too */
    int *release_later;
    int n_release_later;

    struct vf_film *film;
    struct vf_media_info *info;
    struct vf_encode_spec spec;
    struct vf_farm_chunk *chunks;
    size_t n_chunks;
    int64_t frames;
    char plan_hash[65];
    char model_path[4096];
    char model_sha[65];
    bool model_random;          /* the bundled default is the reference's seeded random init */
    char arch_name[32];
    enum vf_dtype precision;
    bool precision_default;     /* rank 0: film.yaml left precision to the backend (plan.json
                                   says so: `vaefarm plan` resolves a default as this run did) */
    int h, w;
    bool passthrough;           /* film.yaml reference_passthrough: auto (node.h) */
    char *work_dir, *seg_dir;
    char *made_dir;             /* rank 0: the first folder of work_dir this run created, or NULL */
    bool undo_work_dir;         /* rank 0: refused before any colorizing: remove made_dir */

    struct vf_net *net;
    struct vf_backend *be;
    struct vf_colorizer *cz;
    char device[64];
};

/* Segment and seam file paths of a chunk (caller frees): rank < 0, the final name
 * (segments/NNNNN.EXT, what the journal names and the merge reads); else the name rank `rank`
 * (process `pid`) writes, segments/NNNNN.rRANK-PID.EXT, which only rank 0 renames to the final
 * name when it journals the chunk: a rank declared lost that comes back never touches a final
 * name. */
char *vf_farm_segment_path(const struct vf_farm *f, int chunk, const char *ext, int rank, int pid,
                           struct vf_error *err);
/* Whether `name` (a file name in segments/) is such a rank's own name: NNNNN.rR-P.mkv/.seam. */
bool vf_farm_segment_rank_name(const char *name);

/* ---- resume (farm_resume.c; docs/FARM.md "Ranks and roles", setup step 4) ----------------- */

struct vf_journal;
struct vf_journal_entry;

/* The segment's name as the journal holds it, relative to the work folder: segments/NNNNN.mkv. */
void vf_farm_journal_segment(char *buf, size_t n, int id);

enum vf_resume_how {
    VF_RESUME_REDO,             /* colorize it */
    VF_RESUME_KEEP,             /* its own journaled segment stands */
    VF_RESUME_RENUMBERED,       /* an earlier plan made its segment under another id */
};
enum vf_resume_why {            /* REDO: why */
    VF_RESUME_NOT_JOURNALED,    /* no entry with its id and hash */
    VF_RESUME_WRONG_NAME,       /* its entry names another file than segments/NNNNN.mkv */
    VF_RESUME_MISSING,          /* its segment is missing or unreadable */
    VF_RESUME_CHANGED,          /* its segment's checksum is not the journaled one */
    VF_RESUME_TAKEN,            /* a later plan's chunk of that id wrote over it (no damage) */
};
struct vf_resume {
    enum vf_resume_how how;
    enum vf_resume_why why;
    /* KEEP: its entry; RENUMBERED: the earlier plan's (its chunk is the old id); REDO: its own
     * entry that no longer stands, or NULL */
    const struct vf_journal_entry *entry;
};
/* For chunk ids 0..n-1 with hashes hash[0..n): what a run in `work_dir` with journal `j` does
 * with each, into out[0..n). Reads every segment an entry it looks at names (its checksum, once
 * per file); writes nothing. A RENUMBERED chunk keeps the segment only if renaming it works. */
int vf_farm_resume_decide(const char *work_dir, const struct vf_journal *j, size_t n,
                          const char *const *hash, struct vf_resume *out, struct vf_error *err);

/* <work_dir>/lock's text: the holder's pid and host name, "PID HOST\n", written by the run that
 * takes the lock (vf_farm_lock_write, on the locked fd) and read by a run refused there and by
 * `vaefarm plan` (vf_farm_lock_read; a lock written before host names were kept holds "PID\n"
 * and reads with host ""). The text stays after the run ends: it says who took the lock last,
 * not that anyone holds it. */
int vf_farm_lock_write(int fd, long pid, const char *host);
/* false (and pid 0, host "") where the file cannot be read or does not start with a pid */
bool vf_farm_lock_read(int fd, long *pid, char *host, size_t host_len);

/* The worker loop: READY, then ASSIGN → colorize → seam file → DONE, until STOP. Returns the
 * STOP's status (VF_OK when the job succeeded) or a local failure. With an MPI link (ranks other
 * than 0) the loop runs on a thread of its own while the calling (main) thread relays its
 * messages, sends heartbeats while a chunk runs and watches that rank 0 still answers. */
int vf_farm_worker(struct vf_farm *f, const struct vf_link *link, struct vf_error *err);

/* Rank 0: schedule every chunk (journal, retries, signals, progress), then merge and report.
 * `worker0` is rank 0's own worker thread's link. Returns a VF_* status. */
int vf_farm_coordinate(struct vf_farm *f, const struct vf_link *worker0, double t_start,
                       double setup_s, struct vf_error *err);

/* In null-colorizer mode, the film's work folder becomes <work_dir>/null-colorizer (no journal or
 * segments of a real run are touched). */
int vf_farm_null_work_dir(struct vf_film *film, struct vf_error *err);

/* Write `path` whole or not at all: the n parts (a NULL part is skipped) to a temporary file of
 * this process, fsync, rename. */
int vf_farm_write_atomic(const char *path, const void *const *parts, const size_t *lens, int n,
                         struct vf_error *err);

/* Seam files (docs/FARM.md "Files"): the ab of a chunk's last warm-up frame (NULL: none) and
 * of its last kept frame, h x w each, and the sha256 hex of the segment they go with. */
int vf_seam_write(const char *path, const char *segment_sha, int h, int w, const float *warm_ab,
                  const float *last_ab, struct vf_error *err);
/* Reads back; *warm_ab is NULL when the chunk had no warm-up. Caller frees both. VF_ECORRUPT for
 * a file that is not a seam file of this version, is damaged (CRC) or goes with a segment other
 * than `segment_sha` (NULL: any): a seam file left at a chunk's name by an earlier plan's chunk
 * never stands in for its own. */
int vf_seam_read(const char *path, const char *segment_sha, int *h, int *w, float **warm_ab,
                 float **last_ab, struct vf_error *err);

#endif /* VF_FARM_H */
