/*
 * coordinator/cmd_run.c: `vaefarm [run] FILM.yaml`: the farm (docs/FARM.md). MPI start-up,
 * rank 0's setup (film, model, inference size, precision, plan, work folder, lock), the
 * broadcast of the plan and the weights' bytes, every rank's own setup (probe, network,
 * backend, colorizer), then rank 0 coordinates while every rank (rank 0 on a thread) colorizes.
 * Without mpirun it is a one-rank job (an MPI singleton): the same code path.
 */
#define _GNU_SOURCE 1 /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "coordinator/coordinator.h"
#include "coordinator/farm.h"
#include "shard/shard.h"

#define BCAST_PIECE (1 << 30)   /* bytes per MPI_Bcast of the weights */

static const char run_usage[] =
    "usage: vaefarm [run] FILM.yaml [--threads N] [--retries N] [--queue N] [--ranks-per-gpu N]\n"
    "                              [--rank-timeout S] [--null-colorizer MS]\n"
    "                              [--quiet|--verbose] [--json]\n";

/* ---- logging: rank 0 writes <work_dir>/vaefarm.log; stderr per --quiet/--verbose ---------- */

struct sink {
    FILE *file;
    int rank;
    int stderr_level;
    bool tty;
};
static struct sink g_sink = {.rank = -1, .stderr_level = VF_LOG_INFO};
static pthread_mutex_t g_sink_mu = PTHREAD_MUTEX_INITIALIZER;

static void farm_sink(void *opaque, int level, const struct vf_log_ctx *ctx, const char *line)
{
    static const char *names[] = {"error", "warning", "info", "verbose", "debug"};
    struct sink *s = opaque;
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *lv = level >= 0 && level <= VF_LOG_DEBUG ? names[level] : "log";
    const char *mod = ctx && ctx->module ? ctx->module : "vaefarm";
    if (pthread_mutex_lock(&g_sink_mu) != 0)
        return;
    if (s->file) {
        fprintf(s->file, "%s rank %d %s [%s] %s\n", ts, s->rank, lv, mod, line);
        fflush(s->file);
    }
    if (level <= s->stderr_level) {
        if (s->tty)
            fprintf(stderr, "\r\033[Kvaefarm: %s%s%s\n", level <= VF_LOG_WARN ? lv : "",
                    level <= VF_LOG_WARN ? ": " : "", line);
        else
            fprintf(stderr, "%s vaefarm[%d]: %s%s%s\n", ts, s->rank, level <= VF_LOG_WARN ? lv : "",
                    level <= VF_LOG_WARN ? ": " : "", line);
    }
    pthread_mutex_unlock(&g_sink_mu);
}

/* ---- options ------------------------------------------------------------------------------ */

static int parse_count(const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "vaefarm run: %s needs a whole number in [%d, %d], got '%s'\n%s", opt, lo,
                hi, s ? s : "", run_usage);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Default CPU threads per rank: when the launcher bound this rank to some of the node's cores
 * (mpirun --bind-to core, srun --cpus-per-task), those cores; when it may run anywhere, the
 * node's cores divided by the ranks on the node. */
static int default_threads(int local_size)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (online < 1)
        online = 1;
    if (mine < 1)
        mine = (int)online;
    /* a rank bound to a socket or NUMA domain that it shares with other ranks still takes only
     * its share of the node */
    int share = (int)online / (local_size > 0 ? local_size : 1);
    if (share < 1)
        share = 1;
    int t = mine < online ? (mine < share ? mine : share) : share;
    return t > 0 ? t : 1;
}

/* The bytes a CPU rank's frames in flight, codecs and network may hold (create_engine gives the
 * backend what the first two leave; bench's backend holds it all): VAEFARM_MEMORY_LIMIT
 * (MiB) where set, else 90% of the memory available now (vf_mem_available: MemAvailable, or a
 * control group's limit) shared among the node's `local_size` ranks; 0 (no limit) where
 * neither can be read. An error for a malformed VAEFARM_MEMORY_LIMIT. */
int vf_cpu_memory_budget(int local_size, size_t *budget, struct vf_error *err)
{
    const char *env = getenv("VAEFARM_MEMORY_LIMIT");
    if (env && *env) {
        char *end = NULL;
        errno = 0;
        const unsigned long long mib = strtoull(env, &end, 10);
        if (errno || *end || !vf_str_is_digits(env) || mib == 0 || mib > (SIZE_MAX >> 20))
            return vf_error_set(err, VF_EINVAL, "VAEFARM_MEMORY_LIMIT=%s: give the MiB each CPU "
                                "rank's frames in flight, codecs and network may hold, a whole number "
                                "above 0 (or unset it: the node's available memory shared among "
                                "its ranks)", env);
        *budget = (size_t)mib << 20;
        return VF_OK;
    }
    const size_t avail = vf_mem_available();
    *budget = avail / 10 * 9 / (size_t)(local_size > 0 ? local_size : 1);
    return VF_OK;
}

/* ---- rank 0's setup ----------------------------------------------------------------------- */

/* mkdir -p; *made (when not NULL and still NULL) gets the first folder it created: the top of
 * what this call made (caller frees). */
static int mkdir_p(const char *path, char **made, struct vf_error *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p && *p != '/')
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0755) == 0) {
            if (made && !*made && !(*made = vf_strdup(buf, err)))
                return VF_ENOMEM;
        } else if (errno != EEXIST) {
            return vf_error_set(err, vf_io_status(errno), "cannot create folder %s: %s", buf,
                                strerror(errno));
        }
        if (!c)
            return VF_OK;
        *p = c;
    }
}

/* A run refused before any colorizing leaves nothing behind in the folders it made (f->made_dir,
 * mkdir_p's first): segments/; and when it made the work folder, the files it wrote there (its
 * plan, log and lock; no chunk was journaled), the folder and each folder above it up to the
 * first it made. Folders go by rmdir alone: one that holds anything else (another run's, made
 * meanwhile) stays. A work folder that was there keeps this run's plan, log and lock. */
static void undo_work_dir(const struct vf_farm *f)
{
    const char *files[] = {"plan.json", "vaefarm.log", "lock"};
    size_t top = strlen(f->made_dir);
    bool made_work = top <= strlen(f->work_dir);   /* else made_dir is segments/ alone */
    for (size_t i = 0; made_work && i < sizeof files / sizeof *files; i++) {
        char *p = vf_path_join(f->work_dir, files[i], NULL);
        if (p)
            unlink(p);
        free(p);
    }
    if (rmdir(f->seg_dir) != 0 || !made_work)
        return;
    char *dir = vf_strdup(f->work_dir, NULL);
    while (dir && strlen(dir) >= top && rmdir(dir) == 0 && strlen(dir) > top) {
        char *up = vf_path_dirname(dir, NULL);
        free(dir);
        dir = up;
    }
    free(dir);
}

/* Temporary files a killed run left in segments/, and segments that ranks made under their own
 * names but that were never journaled (a killed or lost rank's; this run holds the lock: none is
 * live). */
static void remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if ((n < 5 || strcmp(e->d_name + n - 4, ".tmp") != 0) &&
            !vf_farm_segment_rank_name(e->d_name))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            vf_log(NULL, VF_LOG_VERBOSE, "removed %s, left by an interrupted run", path);
    }
    closedir(d);
}

static int resolve_precision(struct vf_farm *f, struct vf_error *err)
{
    struct vf_film *film = f->film;
    struct vf_config_pos pos = vf_config_key_pos(film, "precision");
    f->precision_default = film->precision == VF_PRECISION_DEFAULT;
    switch (film->precision) {
    case VF_PRECISION_DEFAULT:
        f->precision = vf_backend_supports(f->be, VF_BF16) ? VF_BF16 : VF_F32;
        film->precision = f->precision == VF_BF16 ? VF_PRECISION_BF16 : VF_PRECISION_F32;
        return VF_OK;
    case VF_PRECISION_F32: f->precision = VF_F32; break;
    case VF_PRECISION_BF16: f->precision = VF_BF16; break;
    case VF_PRECISION_F16: f->precision = VF_F16; break;
    }
    if (!vf_backend_supports(f->be, f->precision))
        return vf_error_set(err, VF_EUNSUPPORTED, "%s:%d:%d: precision %s: the %s backend of "
                            "rank 0 does not compute in it; use f32%s, or leave precision out",
                            film->path, pos.line, pos.col, vf_dtype_name(f->precision), f->device,
                            vf_backend_supports(f->be, VF_BF16) ? " or bf16" : "");
    return VF_OK;
}

static int lock_work_dir(struct vf_farm *f, int *fd, struct vf_error *err)
{
    char *path = vf_path_join(f->work_dir, "lock", err);
    if (!path)
        return VF_ENOMEM;
    int rc = VF_OK;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) {
        rc = vf_error_set(err, VF_EIO, "%s: %s", path, strerror(errno));
    } else if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        long pid;
        char host[64], who[128] = "unknown";
        if (vf_farm_lock_read(*fd, &pid, host, sizeof host))
            snprintf(who, sizeof who, "%ld%s%s", pid, host[0] ? " on " : "", host);
        rc = vf_error_set(err, VF_EINVAL, "%s is in use by another vaefarm run (pid %s): wait for "
                          "it to end, or give this film another work_dir", f->work_dir, who);
        close(*fd);
        *fd = -1;
    } else if (vf_farm_lock_write(*fd, (long)getpid(), f->host) != 0) {
        vf_log(NULL, VF_LOG_WARN, "%s: could not write the pid", path);
    }
    free(path);
    return rc;
}

/* For libx264 and libx265 runs: memory that the heap hands out holds the same bytes on every
 * run and rank. libx264 reads some
 * memory it never wrote (its macroblock tree with B-frames near a segment's end): what it found
 * there changed a segment's bytes from one run to the next (1 run in 2 or 3 for the first chunk
 * of a film, docs/ENCODE.md "Determinism"). Only for them: the memset of every block cost the
 * FFV1 demo about a fifth of its speed. M_PERTURB fills each block malloc returns with one
 * byte; a fixed mmap threshold (glibc's default, without its growth after frees, which follows
 * the run's history) sends the same sizes to the kernel's zeroed pages every time. Under
 * AddressSanitizer's allocator mallopt fails and does nothing, silently (stderr stays the
 * commands' own): its max_malloc_fill_size option does the same there (tests/cli_farm.sh). */
static void same_heap_bytes(void)
{
    (void)mallopt(M_PERTURB, 0x5a);
    (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

/* The colorizer. On the CPU, the rank's memory budget (vf_cpu_memory_budget) holds the chunk
 * pipeline's frames in flight and its decoder and encoder as well as the network: the network
 * gets what they leave. */
static int create_engine(struct vf_farm *f, struct vf_error *err)
{
    size_t frames = vf_node_chunk_bytes(f->info, f->h, f->w, f->queue);
    if (f->passthrough)   /* the worker's reference at the film's size (farm_worker.c) */
        frames += (size_t)3 * f->info->height * f->info->width * sizeof(float);
    const size_t codecs = vf_shard_codec_bytes(&f->spec, f->info);
    const double mib = 1048576.0;
    char what[320] = "", budget[160] = "";
    if (f->gpu < 0 && f->mem_budget) {
        snprintf(what, sizeof what, "its frames in flight at %dx%d, %.0f MiB (--queue %d; 0 keeps "
                 "one), and its decoder and %s encoder, %.0f MiB,", f->info->width,
                 f->info->height, frames / mib, f->queue, f->spec.codec, codecs / mib);
        snprintf(budget, sizeof budget, "the %.0f MiB this rank may use (the memory available on "
                 "this node shared among its ranks, or VAEFARM_MEMORY_LIMIT)", f->mem_budget / mib);
        frames = codecs < SIZE_MAX - frames ? frames + codecs : SIZE_MAX;
        if (frames >= f->mem_budget)
            return vf_error_set(err, VF_ENOMEM, "out of memory: %s need %.0f MiB, more than %s, "
                                "leaving the network nothing; lower --queue, use a smaller "
                                "inference_size or a lighter encode.codec, run fewer ranks per "
                                "node, or use a node with more memory", what, frames / mib, budget);
        vf_backend_set_mem_budget(f->be, f->mem_budget - frames);
        if (f->rank == 0)
            vf_log(NULL, VF_LOG_VERBOSE, "memory of a rank: %s leave the network %.0f MiB of %s",
                   what, (f->mem_budget - frames) / mib, budget);
    }
    /* on a GPU each frame is one CUDA graph replay (node/colorizer.c) */
    struct vf_colorizer_opts co = {.be = f->be, .precision = f->precision, .h = f->h, .w = f->w,
                                   .graph = true, .passthrough = f->passthrough};
    vf_node_colorizer_opts(f->info, &co);
    int rc = vf_colorizer_create(&f->cz, f->net, &co, err);
    if (rc == VF_ENOMEM && what[0]) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n, " (of %s, %s take %.0f MiB, the network the "
                 "rest)", budget, what, frames / mib);
    }
    return rc;
}

/* One GPU per rank, from the node-local rank (DESIGN.md §5): device
 * (local_rank / ranks_per_gpu) mod gpus; no GPU (or no CUDA backend in this build): the CPU
 * (f->gpu = -1). Decided before the broadcasts, which go over NCCL when every rank has a GPU. */
static void choose_gpu(struct vf_farm *f)
{
    struct vf_error e = {0};
    f->gpus = 0;
    f->gpu = -1;
    if (f->null_ms >= 0 || !vf_kernels_has_cuda())
        return;
    if (vf_kernels_gpu_count(&f->gpus, &e) != VF_OK) {
        /* a driver that is there but broken: said once, then the CPU */
        vf_log(NULL, VF_LOG_WARN, "rank %d on %s: %s; colorizing on the CPU", f->rank, f->host,
               e.msg);
        f->gpus = 0;
        return;
    }
    if (f->gpus > 0)
        f->gpu = (f->local_rank / f->ranks_per_gpu) % f->gpus;
}

static int create_backend(struct vf_farm *f, struct vf_error *err)
{
    if (f->gpu >= 0) {
        struct vf_error e = {0};
        struct vf_backend_opts go = {.device = VF_DEVICE_CUDA, .gpu = f->gpu};
        if (vf_backend_create(&f->be, &go, &e) == 0) {
            snprintf(f->device, sizeof f->device, "cuda:%d", f->gpu);
            return VF_OK;
        }
        return vf_error_set(err, e.code, "rank %d on %s, GPU %d (local rank %d, %d rank%s per "
                            "GPU, %d GPU%s visible): %s", f->rank, f->host, f->gpu, f->local_rank,
                            f->ranks_per_gpu, f->ranks_per_gpu == 1 ? "" : "s", f->gpus,
                            f->gpus == 1 ? "" : "s", e.msg);
    }
    struct vf_backend_opts bo = {.device = VF_DEVICE_CPU, .threads = f->threads,
                                 .mem_budget = f->mem_budget};
    int rc = vf_backend_create(&f->be, &bo, err);
    if (rc == 0)
        snprintf(f->device, sizeof f->device, "cpu");
    return rc;
}

static json_t *setup_doc(struct vf_farm *f, const struct vf_plan *plan)
{
    json_t *doc = vf_plan_json(f->film, f->info, plan);
    if (!doc)
        return NULL;
    json_object_set_new(doc, "input_digest", json_string(f->info->video_digest));
    json_object_set_new(doc, "model", json_pack("{s:s, s:s, s:s, s:b}", "path", f->model_path,
                                                "sha256", f->model_sha, "arch", f->arch_name,
                                                "random", f->model_random));
    json_object_set_new(doc, "precision", json_string(vf_dtype_name(f->precision)));
    json_object_set_new(doc, "precision_default", json_boolean(f->precision_default));
    json_object_set_new(doc, "inference_size", json_pack("[i,i]", f->h, f->w));
    json_object_set_new(doc, "reference_passthrough",
                        json_boolean(f->film->passthrough != VF_PASSTHROUGH_OFF));
    /* what rank 0 planned with (the plan hashed every reference's bytes): other ranks check
     * that they see the same files */
    json_t *refs = json_object();
    json_object_set_new(doc, "reference_sha256", refs);
    for (size_t i = 0; refs && i < plan->n_chunks; i++)
        if (plan->chunks[i].reference)
            json_object_set_new(refs, plan->chunks[i].reference,
                                json_string(plan->chunks[i].reference_sha));
    return doc;
}

static int interrupted_in_setup(struct vf_error *err)
{
    return vf_error_set(err, VF_EINTERRUPTED, "interrupted by %s while setting up; nothing was "
                        "colorized yet: run the same command again",
                        vf_farm_signal_name(vf_farm_signal));
}

/* Everything rank 0 decides before any rank starts: on success *doc_text and *weights are the
 * bytes to broadcast. */
static int setup_rank0(struct vf_farm *f, int *lock_fd, char **doc_text, void **weights,
                       size_t *weights_len, struct vf_error *err)
{
    struct vf_plan *plan = NULL;
    struct vf_safetensors *st = NULL;
    json_t *doc = NULL;
    char *path = NULL;
    int rc = vf_film_open(f->yaml, NULL, 0, &f->film, &f->info, err);
    if (vf_farm_signal)   /* a read the signal interrupted fails: the signal is the cause */
        return interrupted_in_setup(err);
    if (rc < 0)
        return rc;
    if (f->null_ms >= 0) {
        /* the null colorizer: no model, no backend, a work folder of its own (docs/FARM.md) */
        if ((rc = vf_farm_null_work_dir(f->film, err)) < 0)
            return rc;
        f->h = f->film->inference_h;
        f->w = f->film->inference_w;
        goto plan;
    }
    if ((rc = vf_film_resolve_model(f->film, err)) < 0)
        return rc;
    snprintf(f->model_path, sizeof f->model_path, "%s", f->film->model);
    if ((rc = vf_read_regular(f->model_path, weights, weights_len, err)) < 0)
        return vf_error_prefix(err, "model");
    if ((rc = vf_net_load_buffer(*weights, *weights_len, f->model_path, &f->net, err)) < 0)
        return rc;
    if ((rc = vf_safetensors_parse(*weights, *weights_len, false, f->model_path, &st, err)) < 0)
        return rc;
    const char *wmeta = vf_safetensors_meta(st, "vaefarm_weights");
    f->model_random = wmeta && strncmp(wmeta, "random", 6) == 0;
    vf_safetensors_close(&st);
    /* the bytes loaded are the bytes hashed, here and in the plan's chunk hashes */
    if ((rc = vf_shard_buffer_checksum(*weights, *weights_len, f->model_sha, err)) < 0)
        return rc;
    snprintf(f->film->model_sha, sizeof f->film->model_sha, "%s", f->model_sha);
    const struct vf_arch *arch = vf_net_arch(f->net);
    snprintf(f->arch_name, sizeof f->arch_name, "%s", arch->name);
    if ((rc = create_backend(f, err)) < 0)
        return rc;
    if ((rc = resolve_precision(f, err)) < 0)
        return rc;
    if (f->film->inference_h == 0)
        vf_node_inference_size(arch, f->info, &f->film->inference_h, &f->film->inference_w);
    f->h = f->film->inference_h;
    f->w = f->film->inference_w;
plan:
    if (f->film->warmup > 0 && f->verbose)
        vf_log(NULL, VF_LOG_VERBOSE, "warm-up %lld frames per non-first chunk",
               (long long)f->film->warmup);
    /* chunks.length auto: the rank count of the first run in this work folder (plan.json), so
     * a resume with another -np keeps its chunks (docs/PLAN.md "Auto chunking"). A null run
     * resumes nothing: it plans for its own -np, as a sweep over -np expects. */
    const char *ranks_from = NULL;
    char bad[VF_ERROR_MSG_MAX + 64] = "";
    json_t *record = f->null_ms < 0 && f->film->chunk_length == VF_CHUNK_AUTO
                         ? vf_plan_record(f->film, bad, sizeof bad) : NULL;
    vf_plan_auto_ranks(f->film, record, bad, f->size,
                       f->null_ms < 0 ? "the MPI size" : "the MPI size: a null run resumes nothing",
                       &ranks_from);
    json_decref(record);
    if (ranks_from)
        vf_log(NULL, VF_LOG_INFO, "chunks.length auto: cut for %lld ranks (%s)",
               (long long)f->film->ranks, ranks_from);
    /* plan with the resolved model, size and precision: the hashes tie the output to them */
    if ((rc = vf_film_plan(f->film, f->info, &plan, err)) < 0)
        goto out;
    if (vf_farm_signal) {
        rc = interrupted_in_setup(err);
        goto out;
    }
    for (size_t i = 0; i < plan->n_warnings; i++)
        vf_log(NULL, VF_LOG_WARN, "%s", plan->warnings[i]);
    char ramp[2048];
    if (f->net && vf_plan_passthrough_warning(f->film, vf_net_arch(f->net), plan, ramp, sizeof ramp))
        vf_log(NULL, VF_LOG_WARN, "%s", ramp);
    snprintf(f->plan_hash, sizeof f->plan_hash, "%s", plan->hash);
    f->work_dir = vf_strdup(f->film->work_dir, err);
    f->seg_dir = vf_path_join(f->film->work_dir, "segments", err);
    if (!f->work_dir || !f->seg_dir) {
        rc = VF_ENOMEM;
        goto out;
    }
    if ((rc = mkdir_p(f->seg_dir, &f->made_dir, err)) < 0)
        goto out;
    /* a segments/ folder left by another user's run: refused now, not at every chunk's write */
    if (access(f->seg_dir, W_OK | X_OK) != 0) {
        rc = vf_error_set(err, VF_EIO, "the work folder's segments folder %s cannot be written "
                          "(%s): make it writable for this user, or give another work_dir",
                          f->seg_dir, strerror(errno));
        goto out;
    }
    if ((rc = lock_work_dir(f, lock_fd, err)) < 0) {
        /* another run holds it, perhaps made meanwhile: its folders are not this run's to undo */
        free(f->made_dir);
        f->made_dir = NULL;
        goto out;
    }
    if (!(path = vf_path_join(f->work_dir, "vaefarm.log", err))) {
        rc = VF_ENOMEM;
        goto out;
    }
    remove_stale_tmp(f->seg_dir);
    if (f->null_ms < 0)   /* the null colorizer's lock is its own folder's: not the output's */
        vf_shard_merge_remove_stale(f->film->output);
    FILE *log = fopen(path, "a");
    if (!log) {
        rc = vf_error_set(err, VF_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    free(path);
    path = NULL;
    if (pthread_mutex_lock(&g_sink_mu) == 0) {
        g_sink.file = log;
        pthread_mutex_unlock(&g_sink_mu);
    }
    if (f->null_ms >= 0)
        vf_log(NULL, VF_LOG_INFO, "vaefarm %s: %s on %d rank%s, null colorizer (%g ms a frame, no "
               "model), plan %.12s", VF_VERSION, f->yaml, f->size, f->size == 1 ? "" : "s",
               f->null_ms, plan->hash);
    else
        vf_log(NULL, VF_LOG_INFO, "vaefarm %s: %s on %d rank%s, %s %dx%d, model %s (%s), plan "
               "%.12s", VF_VERSION, f->yaml, f->size, f->size == 1 ? "" : "s",
               vf_dtype_name(f->precision), f->h, f->w, f->model_path,
               f->model_random ? "random weights" : "trained", plan->hash);
    if (!(doc = setup_doc(f, plan)) || !(*doc_text = json_dumps(doc, JSON_COMPACT))) {
        rc = vf_error_set(err, VF_ENOMEM, "out of memory for the plan document");
        goto out;
    }
    if (!(path = vf_path_join(f->work_dir, "plan.json", err))) {
        rc = VF_ENOMEM;
        goto out;
    }
    rc = vf_farm_write_json(path, doc, err);
out:
    free(path);
    json_decref(doc);
    vf_shard_plan_destroy(&plan);
    return rc;
}

/* ---- every rank: the job from rank 0's document ------------------------------------------- */

static int take_doc(struct vf_farm *f, const char *text, struct vf_error *err)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    int rc = VF_OK;
    if (!doc)
        return vf_error_set(err, VF_EINTERNAL, "the plan from rank 0 does not parse: %s", je.text);
    json_t *chunks = json_object_get(doc, "chunks");
    const char *prec = json_string_value(json_object_get(doc, "precision"));
    const char *hash = json_string_value(json_object_get(doc, "hash"));
    json_t *size = json_object_get(doc, "inference_size");
    json_t *model = json_object_get(doc, "model");
    json_t *passthrough = json_object_get(doc, "reference_passthrough");
    if (!json_is_array(chunks) || !prec || !hash || !json_is_array(size) ||
        json_array_size(size) != 2 || !json_is_object(model) || !json_is_boolean(passthrough) ||
        vf_dtype_parse(prec, &f->precision) < 0) {
        rc = vf_error_set(err, VF_EINTERNAL, "the plan from rank 0 lacks a field");
        goto out;
    }
    f->passthrough = json_is_true(passthrough);
    f->h = (int)json_integer_value(json_array_get(size, 0));
    f->w = (int)json_integer_value(json_array_get(size, 1));
    f->frames = json_integer_value(json_object_get(doc, "frames"));
    snprintf(f->plan_hash, sizeof f->plan_hash, "%s", hash);
    snprintf(f->model_path, sizeof f->model_path, "%s",
             json_string_value(json_object_get(model, "path")) ?: "");
    snprintf(f->model_sha, sizeof f->model_sha, "%s",
             json_string_value(json_object_get(model, "sha256")) ?: "");
    snprintf(f->arch_name, sizeof f->arch_name, "%s",
             json_string_value(json_object_get(model, "arch")) ?: "");
    f->model_random = json_is_true(json_object_get(model, "random"));
    f->n_chunks = json_array_size(chunks);
    f->chunks = vf_calloc(f->n_chunks ? f->n_chunks : 1, sizeof *f->chunks, err);
    if (!f->chunks) {
        rc = VF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < f->n_chunks; i++) {
        json_t *c = json_array_get(chunks, i);
        struct vf_farm_chunk *fc = &f->chunks[i];
        const char *ref = json_string_value(json_object_get(c, "reference"));
        const char *h = json_string_value(json_object_get(c, "hash"));
        fc->id = (int)json_integer_value(json_object_get(c, "id"));
        fc->shot = (int)json_integer_value(json_object_get(c, "shot"));
        fc->warm_start = json_integer_value(json_object_get(c, "warm_start"));
        fc->start = json_integer_value(json_object_get(c, "start"));
        fc->end = json_integer_value(json_object_get(c, "end"));
        if (fc->id != (int)i || !ref || !h || strlen(h) != 64) {
            rc = vf_error_set(err, VF_EINTERNAL, "chunk %zu of rank 0's plan is malformed", i);
            goto out;
        }
        memcpy(fc->hash, h, 65);
        const char *rs = json_string_value(
            json_object_get(json_object_get(doc, "reference_sha256"), ref));
        if (!rs || strlen(rs) != 64) {
            rc = vf_error_set(err, VF_EINTERNAL, "rank 0's plan has no checksum for %s", ref);
            goto out;
        }
        memcpy(fc->reference_sha, rs, 65);
        if (!(fc->reference = vf_strdup(ref, err))) {
            rc = VF_ENOMEM;
            goto out;
        }
    }
    const char *digest = json_string_value(json_object_get(doc, "input_digest"));
    if (f->info && (!digest || strcmp(digest, f->info->video_digest) != 0))
        rc = vf_error_set(err, VF_EINVAL, "this rank reads another input than rank 0 at %s (its "
                          "video differs): every rank must see the same files (a shared "
                          "filesystem)", f->film->input);
out:
    json_decref(doc);
    return rc;
}

/* Ranks other than 0: the same film (rank 0's film.yaml bytes), probed here, and the network from
 * the broadcast bytes. */
static int setup_worker(struct vf_farm *f, const char *yaml, size_t yaml_len, const char *doc_text,
                        const void *weights, size_t weights_len, struct vf_error *err)
{
    char *dir = vf_path_dirname(f->yaml, err);
    if (!dir)
        return VF_ENOMEM;
    int rc = vf_config_load_string(&f->film, yaml, yaml_len, f->yaml, dir, err);
    free(dir);
    if (rc < 0)
        return rc;
    /* the null colorizer needs neither the input nor the network */
    if (f->null_ms >= 0 && (rc = vf_farm_null_work_dir(f->film, err)) < 0)
        return rc;
    if (f->null_ms < 0 && (rc = vf_shard_probe(&f->info, f->film->input, err)) < 0)
        return rc;
    if ((rc = take_doc(f, doc_text, err)) < 0)
        return rc;
    f->work_dir = vf_strdup(f->film->work_dir, err);
    f->seg_dir = vf_path_join(f->film->work_dir, "segments", err);
    if (!f->work_dir || !f->seg_dir)
        return VF_ENOMEM;
    if (f->null_ms >= 0)
        return VF_OK;
    if ((rc = vf_net_load_buffer(weights, weights_len, f->model_path, &f->net, err)) < 0)
        return rc;
    return create_backend(f, err);
}

/* ---- rank 0's worker thread --------------------------------------------------------------- */

struct w0 {
    struct vf_farm *f;
    struct vf_link link;
    int rc;
    struct vf_error err;
};

static void *worker0_main(void *opaque)
{
    struct w0 *w = opaque;
    w->rc = vf_farm_worker(w->f, &w->link, &w->err);
    return NULL;
}

static void farm_free(struct vf_farm *f)
{
    free(f->ids);
    f->ids = NULL;
    free(f->release_later);
    f->release_later = NULL;
    vf_colorizer_destroy(&f->cz);
    vf_backend_destroy(&f->be);
    vf_net_free(&f->net);
    for (size_t i = 0; i < f->n_chunks; i++)
        free(f->chunks[i].reference);
    free(f->chunks);
    free(f->work_dir);
    free(f->seg_dir);
    free(f->made_dir);
    vf_shard_media_info_destroy(&f->info);
    vf_config_destroy(&f->film);
}

/* Wait for a non-blocking collective by testing it, sleeping 1 ms doubling to 20 ms between
 * tests: a rank waiting for rank 0's setup (shot detection can take minutes) does not spin a
 * core, as a blocking MPI_Bcast or MPI_Allreduce does in Open MPI. */
static int wait_request(MPI_Request *req, struct vf_error *err)
{
    int ms = 1;
    for (;;) {
        int done = 0;
        VF_CHECK_MPI(MPI_Test(req, &done, MPI_STATUS_IGNORE), err, fail);
        if (done)
            return VF_OK;
        vf_farm_sleep_ms(ms);
        ms = ms * 2 > 20 ? 20 : ms * 2;
    }
fail:
    return err->code;
}

/* MIN over every rank of `status` (a VF_* code): every rank agrees on success or failure. */
static int agree(int status, struct vf_error *err)
{
    int all = status;
    MPI_Request req;
    VF_CHECK_MPI(MPI_Iallreduce(&status, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &req), err,
                 fail);
    int rc = wait_request(&req, err);
    return rc < 0 ? rc : all;
fail:
    return err->code;
}

/* Rank 0: every rank's pid and host, for a rank that never says READY (or never finishes its
 * setup) to be ended all the same. f->ids is allocated on rank 0 beforehand. */
static int gather_ids(struct vf_farm *f, struct vf_error *err)
{
    struct vf_rank_id me = {.pid = (int32_t)getpid()};
    snprintf(me.host, sizeof me.host, "%.63s", f->host);
    MPI_Request req;
    VF_CHECK_MPI(MPI_Igather(&me, (int)sizeof me, MPI_BYTE, f->ids, (int)sizeof me, MPI_BYTE, 0,
                             MPI_COMM_WORLD, &req), err, fail);
    return wait_request(&req, err);
fail:
    return err->code;
}

/* How long rank 0 waits at the end of setup for the other ranks: --rank-timeout, at least a
 * minute (a rank's own setup, after rank 0's, is a probe, the weights from memory and a backend:
 * seconds, but a GPU's start-up on a busy node can take a while). */
static double setup_wait_s(const struct vf_farm *f)
{
    return f->rank_timeout > 60 ? f->rank_timeout : 60;
}

/* Test each of n requests until all are complete or `until`; done[i] says which are. 1: all
 * complete; 0: the deadline passed first. Sleeps 1 ms doubling to 20 ms between looks. */
static int test_until(MPI_Request *req, bool *done, int n, double until, struct vf_error *err)
{
    int ms = 1;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++) {
            int flag = 0;
            if (!done[i])
                VF_CHECK_MPI(MPI_Test(&req[i], &flag, MPI_STATUS_IGNORE), err, fail);
            done[i] |= flag != 0;
            left += !done[i];
        }
        if (!left)
            return 1;
        if (vf_now() >= until)
            return 0;
        vf_farm_sleep_ms(ms);
        ms = ms * 2 > 20 ? 20 : ms * 2;
    }
fail:
    return err->code;
}

/* A receive that will not complete: cancelled (a cancelled receive completes at once). */
static void cancel_recv(MPI_Request *req)
{
    if (MPI_Cancel(req) != MPI_SUCCESS || MPI_Wait(req, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        vf_log(NULL, VF_LOG_VERBOSE, "cancelling a receive failed");
}

/* Rank 0, after the end of setup failed for want of some ranks' answers: those may still be
 * there (stopped, hung) and would keep every rank in MPI_Finalize. Under mpirun
 * --enable-recovery, rank 0 ends the ones of its node (SIGKILL through a pidfd); without it the
 * job ends with MPI_Abort, which ends them all. */
static void end_missing(struct vf_farm *f, const bool *missing)
{
    if (!vf_farm_mpi_recovery()) {
        f->abort_job = true;
        vf_log(NULL, VF_LOG_WARN, "the launcher ends the job, every rank, so that none waits for "
               "them in MPI_Finalize");
        return;
    }
    for (int r = 1; r < f->size; r++) {
        if (!missing[r])
            continue;
        char why[512] = "";
        int rc = strcmp(f->ids[r].host, f->host) == 0 && f->ids[r].pid > 0
                 ? vf_farm_end_rank(f->ids[r].pid, r, why, sizeof why) : -1;
        if (rc > 0)
            vf_log(NULL, VF_LOG_WARN, "rank %d (pid %d) was still there: ended it (SIGKILL)", r,
                   (int)f->ids[r].pid);
        else if (rc < 0)
            vf_log(NULL, VF_LOG_ERROR, "rank %d (pid %d on %s) may still be there: if it is, "
                   "MPI_Finalize waits for it; end it by hand%s%s", r, (int)f->ids[r].pid,
                   f->ids[r].host, why[0] ? ": " : "", why);
        else if (why[0])
            vf_log(NULL, VF_LOG_WARN, "not ending rank %d: %s", r, why);
    }
}

/* The end of setup: every rank's status to rank 0, which answers each with the verdict (the worst
 * status), so that every rank agrees on success or failure; the rank that failed says why, the
 * others follow quietly. Unlike a collective this has a deadline: a rank that died, was stopped
 * or hangs in its own setup (under mpirun --enable-recovery a dead process does not end the job)
 * is named after setup_wait_s() and the job fails, instead of every rank waiting forever. A rank
 * waits twice that for rank 0's verdict. */
static int agree_setup(struct vf_farm *f, int status, struct vf_error *err)
{
    /* buffers MPI may still hold after a deadline (a request given up on): static */
    static int32_t mine, verdict, *all;
    double wait = setup_wait_s(f);
    if (f->size == 1)
        return status;
    if (f->rank != 0) {
        MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
        bool done[2] = {false, false};
        mine = status;
        verdict = VF_EINTERNAL;
        VF_CHECK_MPI(MPI_Isend(&mine, 1, MPI_INT32_T, 0, VF_SETUP_TAG, MPI_COMM_WORLD, &req[0]),
                     err, fail);
        VF_CHECK_MPI(MPI_Irecv(&verdict, 1, MPI_INT32_T, 0, VF_SETUP_TAG, MPI_COMM_WORLD, &req[1]),
                     err, fail);
        int rc = test_until(req, done, 2, vf_now() + 2 * wait, err);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return verdict;
        if (!done[1])
            cancel_recv(&req[1]);
        if (!done[0])
            VF_CHECK_MPI(MPI_Request_free(&req[0]), err, fail);
        if (status < 0)
            return status;      /* this rank's own failure says more */
        return vf_error_set(err, VF_FARM_ELOST, "rank %d (%s): rank 0 (the coordinator) has not "
                            "answered at the end of setup for %.0f s: it is gone or hung; this "
                            "rank stops", f->rank, f->host, 2 * wait);
    }
    int n = f->size - 1, rc;
    MPI_Request *req = vf_calloc((size_t)n, sizeof *req, err);
    bool *done = vf_calloc((size_t)f->size, sizeof *done, err);
    free(all);
    all = vf_calloc((size_t)n, sizeof *all, err);
    if (!req || !done || !all) {
        /* the others time out waiting for the verdict */
        rc = VF_ENOMEM;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        all[i] = VF_EINTERNAL;
        req[i] = MPI_REQUEST_NULL;
    }
    for (int i = 0; i < n; i++)
        VF_CHECK_MPI(MPI_Irecv(&all[i], 1, MPI_INT32_T, i + 1, VF_SETUP_TAG, MPI_COMM_WORLD,
                               &req[i]), err, mpi_fail);
    if ((rc = test_until(req, done + 1, n, vf_now() + wait, err)) < 0)
        goto out;
    verdict = status;
    char names[768] = "";
    size_t len = 0;
    int missing = 0;
    for (int i = 0; i < n; i++) {
        if (done[i + 1]) {
            if (all[i] < verdict)
                verdict = all[i];
            continue;
        }
        cancel_recv(&req[i]);
        if (missing++ < 8 && len < sizeof names)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%d (%s, pid %d)",
                                    missing > 1 ? ", " : "", i + 1, f->ids[i + 1].host,
                                    (int)f->ids[i + 1].pid);
    }
    free(all);                          /* every receive is complete or cancelled */
    all = NULL;
    if (missing) {
        bool *gone = done;              /* reused: which ranks did not answer */
        for (int r = 1; r < f->size; r++)
            gone[r] = !gone[r];
        gone[0] = false;
        char text[VF_ERROR_MSG_MAX];
        snprintf(text, sizeof text, "rank%s %s%s %s not finished its setup %.0f s after rank 0 "
                 "did: %s dead, stopped or hung (--rank-timeout, at least 60 s here); the job "
                 "stops: run the same command again", missing > 1 ? "s" : "", names,
                 missing > 8 ? " and more" : "", missing > 1 ? "have" : "has", wait,
                 missing > 1 ? "they are" : "it is");
        if (status < 0)
            vf_log(NULL, VF_LOG_ERROR, "%s", text);   /* rank 0's own failure is the message */
        else
            vf_error_set(err, VF_FARM_ELOST, "%s", text);
        if (verdict == VF_OK)
            verdict = VF_FARM_ELOST;
        end_missing(f, gone);
    }
    /* the verdict to every rank, those that did not answer included: a small message goes out at
     * once (inline), whether the receiver takes it or not */
    for (int r = 1; r < f->size; r++) {
        MPI_Request s = MPI_REQUEST_NULL;
        bool sent = false;
        VF_CHECK_MPI(MPI_Isend(&verdict, 1, MPI_INT32_T, r, VF_SETUP_TAG, MPI_COMM_WORLD, &s), err,
                     mpi_fail);
        if ((rc = test_until(&s, &sent, 1, vf_now() + 2, err)) < 0)
            goto out;
        if (!sent)
            VF_CHECK_MPI(MPI_Request_free(&s), err, mpi_fail);
    }
    rc = verdict;
    goto out;
mpi_fail:
    rc = err->code;
out:
    free(req);
    free(done);
    return rc;
fail:
    return err->code;
}

static int bcast_bytes(void *buf, size_t len, struct vf_error *err)
{
    for (size_t off = 0; off < len; off += BCAST_PIECE) {
        size_t n = len - off < BCAST_PIECE ? len - off : BCAST_PIECE;
        VF_CHECK_MPI(MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD), err, fail);
    }
    return VF_OK;
fail:
    return err->code;
}

/* The weights' bytes from rank 0 to every rank: over NCCL when every rank has a GPU of its own
 * (not shared with another rank: NCCL refuses two ranks on one device) and VAEFARM_NCCL is not
 * "0"; else over MPI. Collective: every rank decides the same way (an all-reduce). */
static int bcast_weights(struct vf_farm *f, void *buf, size_t len, struct vf_error *err)
{
    const char *env = getenv("VAEFARM_NCCL");
    int mine = vf_farm_nccl_available() && f->gpu >= 0 && f->ranks_per_gpu == 1 &&
               f->local_size <= f->gpus && !(env && strcmp(env, "0") == 0);
    int all = f->size > 1 ? agree(mine, err) : 0;
    if (all < 0)
        return all;
    if (!all)
        return bcast_bytes(buf, len, err);
    double t0 = vf_now();
    int rc = vf_farm_nccl_bcast(buf, len, f->gpu, f->rank, f->size, err);
    if (rc == VF_OK && f->rank == 0)
        vf_log(NULL, VF_LOG_VERBOSE, "weights: %zu bytes to %d GPU ranks over NCCL in %.3f s",
               len, f->size, vf_now() - t0);
    return rc;
}

/* *lock_fd: rank 0's lock on the work folder, held by the caller until after MPI_Finalize (other
 * ranks may still be ending their chunks when rank 0 leaves this). */
static int run_farm(struct vf_farm *f, int *lock_fd, struct vf_error *err)
{
    double t_start = vf_now();
    char *doc_text = NULL;
    void *weights = NULL, *yaml = NULL;
    size_t weights_len = 0, yaml_len = 0;
    int rc = VF_OK, local = VF_OK;
    struct w0 w0 = {.f = f};
    bool thread_started = false, coordinating = false;

    choose_gpu(f);
    /* 1. rank 0 decides; 2. broadcast its status, the plan document and the weights */
    if (f->rank == 0) {
        /* film.yaml's bytes, read before rank 0 parses it and compared after its setup (shot
         * detection can take minutes): every rank parses the settings rank 0 planned with */
        local = vf_read_regular(f->yaml, &yaml, &yaml_len, err);
        if (local < 0)
            vf_error_prefix(err, "cannot open the film.yaml (check the path)");
        if (local == VF_OK)
            local = setup_rank0(f, lock_fd, &doc_text, &weights, &weights_len, err);
        void *again = NULL;
        size_t again_len = 0;
        if (local == VF_OK &&
            (local = vf_read_regular(f->yaml, &again, &again_len, err)) == VF_OK &&
            (again_len != yaml_len || memcmp(again, yaml, yaml_len) != 0))
            local = vf_error_set(err, VF_EINVAL, "%s changed while vaefarm was setting up: run "
                                 "the same command again", f->yaml);
        free(again);
    }
    int64_t hdr[4] = {local, doc_text ? (int64_t)strlen(doc_text) + 1 : 0, (int64_t)weights_len,
                      (int64_t)yaml_len};
    MPI_Request req;
    VF_CHECK_MPI(MPI_Ibcast(hdr, 4, MPI_INT64_T, 0, MPI_COMM_WORLD, &req), err, mpi_fail);
    if ((rc = wait_request(&req, err)) < 0)
        goto out;
    if (hdr[0] < 0) {
        rc = (int)hdr[0];   /* rank 0 said why */
        goto out;
    }
    if (f->rank == 0 && local == VF_OK &&
        !(f->ids = vf_calloc((size_t)f->size, sizeof *f->ids, err)))
        local = VF_ENOMEM;
    if (f->rank != 0) {
        doc_text = malloc((size_t)hdr[1]);
        weights = malloc(hdr[2] ? (size_t)hdr[2] : 1);
        weights_len = (size_t)hdr[2];
        yaml = malloc(hdr[3] ? (size_t)hdr[3] : 1);
        yaml_len = (size_t)hdr[3];
        if (!doc_text || !weights || !yaml)
            local = vf_error_set(err, VF_ENOMEM, "rank %d: out of memory for the plan and weights",
                                 f->rank);
    }
    /* a rank without memory still takes part in the broadcasts, into a scratch buffer */
    if ((rc = agree(local, err)) < 0 || (rc = gather_ids(f, err)) < 0)
        goto out;
    if ((rc = bcast_bytes(doc_text, (size_t)hdr[1], err)) < 0 ||
        (rc = bcast_weights(f, weights, weights_len, err)) < 0 ||
        (rc = bcast_bytes(yaml, yaml_len, err)) < 0)
        goto out;
    /* 3. every rank: its own setup */
    if (f->rank != 0) {
        local = setup_worker(f, yaml, yaml_len, doc_text, weights, weights_len, err);
    } else {
        local = take_doc(f, doc_text, err);
        f->frames = f->info->frames;
    }
    if (local == VF_OK) {
        vf_shard_encode_spec(f->film, &f->spec);
        if (f->spec.codec && (!strcmp(f->spec.codec, "libx264") || !strcmp(f->spec.codec, "libx265")))
            same_heap_bytes();   /* before any encoder of this run is opened */
        local = f->null_ms >= 0 ? VF_OK : create_engine(f, err);
    }
    if (local < 0)
        vf_error_prefix(err, "rank %d (%s)", f->rank, f->host);
    free(weights);
    weights = NULL;
    /* a rank that failed prints why; the others exit with the same code quietly; a rank that does
     * not answer in time is named */
    if ((rc = agree_setup(f, local, err)) < 0)
        goto out;
    double setup_s = vf_now() - t_start;

    /* 4. colorize */
    if (f->rank == 0) {
        if ((rc = vf_mailbox_create(&w0.link.to_coord, err)) < 0 ||
            (rc = vf_mailbox_create(&w0.link.to_worker, err)) < 0)
            goto stop_others;
        pthread_t th;
        int e;
        if ((e = pthread_create(&th, NULL, worker0_main, &w0)) != 0) {
            rc = vf_error_set(err, VF_EINTERNAL, "pthread_create: %s", strerror(e));
            goto stop_others;
        }
        thread_started = true;
        coordinating = true;
        rc = vf_farm_coordinate(f, &w0.link, t_start, setup_s, err);
        if ((e = pthread_join(th, NULL)) != 0 && rc == VF_OK)
            rc = vf_error_set(err, VF_EINTERNAL, "pthread_join: %s", strerror(e));
        if (rc == VF_OK && w0.rc < 0 && w0.rc != VF_EINTERRUPTED) {
            *err = w0.err;
            rc = w0.rc;
        }
    } else {
        /* a STOP's status comes without a message: the coordinator has said why */
        rc = vf_farm_worker(f, &(struct vf_link){.mpi = true}, err);
    }
    goto out;

stop_others:
    /* the coordinator could not start: tell the other ranks, which wait for work */
    if (!thread_started) {
        struct vf_msg m;
        vf_msg_init(&m, VF_MSG_STOP, 0);
        m.status = rc;
        int waiting = 0;
        for (int r = 1; r < f->size; r++) {
            struct vf_error e = {0};
            if (vf_msg_send_mpi(&m, r, 2.0, &e) < 0)
                vf_log(NULL, VF_LOG_ERROR, "could not tell rank %d to stop (%s): end the job with "
                       "scancel or Ctrl-C", r, e.msg);
            else
                waiting++;
        }
        /* take what they sent (READY, then BYE) so that nothing is unreceived at MPI_Finalize,
         * and release each (its relay waits for that) */
        for (double until = vf_now() + 5; waiting > 0 && vf_now() < until;) {
            struct vf_msg in;
            struct vf_error e = {0};
            int from = -1;
            int got = vf_msg_recv_mpi(MPI_ANY_SOURCE, &in, &from, &e);
            if (got < 0)
                break;
            if (got == 0) {
                vf_farm_sleep_ms(2);
                continue;
            }
            if (in.type == VF_MSG_BYE || in.type == VF_MSG_LEAVE) {
                waiting--;
                vf_msg_init(&m, VF_MSG_RELEASE, 0);
                if (vf_msg_send_mpi(&m, from, 2.0, &e) < 0)
                    vf_log(NULL, VF_LOG_VERBOSE, "rank %d: RELEASE not sent: %s", from, e.msg);
            }
        }
    }
    goto out;
mpi_fail:
    rc = err->code;
out:
    /* refused before the coordinator began: nothing was journaled, nothing is to resume */
    f->undo_work_dir = rc < 0 && f->rank == 0 && !coordinating;
    vf_mailbox_destroy(&w0.link.to_coord);
    vf_mailbox_destroy(&w0.link.to_worker);
    free(doc_text);
    free(weights);
    free(yaml);
    return rc;
}

/* Under mpirun --enable-recovery, Open MPI 4.1.4's closing fence in MPI_Finalize sometimes waits
 * forever for a rank that was killed (measured: 1 run in 6-13 of tests/cli_farm_scale.sh's real
 * kill -9, before and after the lost-rank changes). There a rank still in MPI_Finalize after
 * FINALIZE_WAIT_S leaves without it: under recovery mpirun ends the job normally all the same. */
#define FINALIZE_WAIT_S 10

struct finalize_watch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rank, code;
};

static void *finalize_watchdog(void *opaque)
{
    struct finalize_watch *w = opaque;
    struct timespec until;
    VF_ASSERT(clock_gettime(CLOCK_MONOTONIC, &until) == 0);
    until.tv_sec += FINALIZE_WAIT_S;
    VF_ASSERT(pthread_mutex_lock(&w->mu) == 0);
    while (!w->done) {
        int rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
        if (rc == ETIMEDOUT && !w->done) {
            fprintf(stderr, "vaefarm: rank %d: MPI_Finalize has not returned for %d s (under mpirun "
                    "--enable-recovery it can wait for a dead rank forever): leaving without it\n",
                    w->rank, FINALIZE_WAIT_S);
            _exit(w->code);
        }
        VF_ASSERT(rc == 0 || rc == ETIMEDOUT);
    }
    VF_ASSERT(pthread_mutex_unlock(&w->mu) == 0);
    return NULL;
}

/* MPI_Finalize, watched under recovery (above). */
static void finalize(int rank, int code)
{
    struct finalize_watch w = {.rank = rank, .code = code};
    pthread_condattr_t ca;
    pthread_t th;
    bool watched = false;
    if (vf_farm_mpi_recovery() && pthread_mutex_init(&w.mu, NULL) == 0) {
        if (pthread_condattr_init(&ca) == 0) {
            if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                pthread_cond_init(&w.cv, &ca) == 0) {
                if (pthread_create(&th, NULL, finalize_watchdog, &w) == 0)
                    watched = true;
                else
                    VF_ASSERT(pthread_cond_destroy(&w.cv) == 0);
            }
            VF_ASSERT(pthread_condattr_destroy(&ca) == 0);
        }
        if (!watched) {
            VF_ASSERT(pthread_mutex_destroy(&w.mu) == 0);
            fprintf(stderr, "vaefarm: rank %d: no watch on MPI_Finalize (a thread could not "
                    "start)\n", rank);
        }
    }
    if (MPI_Finalize() != MPI_SUCCESS)
        fprintf(stderr, "vaefarm: rank %d: MPI_Finalize failed\n", rank);
    if (watched) {
        VF_ASSERT(pthread_mutex_lock(&w.mu) == 0);
        w.done = true;
        VF_ASSERT(pthread_cond_signal(&w.cv) == 0);
        VF_ASSERT(pthread_mutex_unlock(&w.mu) == 0);
        VF_ASSERT(pthread_join(th, NULL) == 0);
        VF_ASSERT(pthread_cond_destroy(&w.cv) == 0);
        VF_ASSERT(pthread_mutex_destroy(&w.mu) == 0);
    }
}

int vf_cmd_run(int argc, char **argv, struct vf_cli *cli)
{
    struct vf_farm f = {.retries = 2, .ranks_per_gpu = 1, .queue = 4, .quiet = cli->quiet,
                        .verbose = cli->verbose, .json = cli->json, .null_ms = -1,
                        .rank_timeout = 60};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--threads") == 0) {
            if (parse_count(a, v, 0, 1024, &f.threads))
                return VF_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--retries") == 0) {
            if (parse_count(a, v, 0, 15, &f.retries))
                return VF_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--queue") == 0) {
            if (parse_count(a, v, 0, 64, &f.queue))
                return VF_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--ranks-per-gpu") == 0) {
            if (parse_count(a, v, 1, 64, &f.ranks_per_gpu))
                return VF_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--rank-timeout") == 0 || strcmp(a, "--null-colorizer") == 0) {
            int n;
            bool null = a[2] == 'n';
            if (parse_count(a, v, null ? 0 : 1, null ? 60000 : 86400, &n))
                return VF_EXIT_USAGE;
            *(null ? &f.null_ms : &f.rank_timeout) = n;
            if (null)
                snprintf(f.device, sizeof f.device, "null");
            i++;
        } else if (a[0] == '-' || f.yaml) {
            fprintf(stderr, "vaefarm run: unexpected argument '%s'\n%s", a, run_usage);
            return VF_EXIT_USAGE;
        } else {
            f.yaml = a;
        }
    }
    if (!f.yaml) {
        fputs(run_usage, stderr);
        return VF_EXIT_USAGE;
    }

    int provided = 0;
    /* now, not after MPI_Init (a few tenths of a second): a job cancelled while it starts
     * stops as one cancelled later does (exit 10, nothing half-written), not by the signal;
     * installed again below, over anything MPI_Init put in their place */
    vf_farm_install_signals();
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        if (vf_farm_signal) {   /* the signal broke it off */
            fprintf(stderr, "vaefarm: interrupted by %s while starting; nothing was colorized "
                    "yet: run the same command again\n", vf_farm_signal_name(vf_farm_signal));
            return VF_EXIT_INTERRUPTED;
        }
        fprintf(stderr, "vaefarm: MPI_Init_thread failed: is Open MPI installed and, under Slurm, "
                        "started with srun --mpi=pmix or mpirun?\n");
        return VF_EXIT_INTERNAL;
    }
    struct vf_error err = {0};
    MPI_Comm local = MPI_COMM_NULL;
    int rc = VF_OK, lock_fd = -1;
    /* errors come back as codes, never abort the job from inside MPI */
    VF_CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), &err, done);
    if (provided < MPI_THREAD_FUNNELED) {
        rc = vf_error_set(&err, VF_EINTERNAL, "this MPI gives thread level %d; vaefarm needs "
                          "MPI_THREAD_FUNNELED", provided);
        goto done;
    }
    VF_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &f.rank), &err, done);
    VF_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &f.size), &err, done);
    VF_CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, f.rank, MPI_INFO_NULL,
                                     &local), &err, done);
    VF_CHECK_MPI(MPI_Comm_rank(local, &f.local_rank), &err, done);
    VF_CHECK_MPI(MPI_Comm_size(local, &f.local_size), &err, done);
    /* the CPU backends' memory budget: measured by every rank of the node now, before any of
     * them holds much, and the least taken, so that no rank's share depends on when it looked */
    if ((rc = vf_cpu_memory_budget(f.local_size, &f.mem_budget, &err)) < 0)
        goto done;
    {
        unsigned long long mine = f.mem_budget ? (unsigned long long)f.mem_budget : ULLONG_MAX,
                           least = 0;
        VF_CHECK_MPI(MPI_Allreduce(&mine, &least, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, local), &err,
                     done);
        f.mem_budget = least == ULLONG_MAX ? 0 : (size_t)least;
    }
    if (gethostname(f.host, sizeof f.host) != 0)
        snprintf(f.host, sizeof f.host, "unknown");
    f.host[sizeof f.host - 1] = 0;
    if (f.threads == 0)
        f.threads = default_threads(f.local_size);
    f.tty = isatty(STDERR_FILENO) && !f.quiet && !f.json;
    vf_farm_install_signals();

    g_sink.rank = f.rank;
    g_sink.tty = f.tty && f.rank == 0;
    g_sink.stderr_level = f.quiet ? VF_LOG_ERROR : f.verbose ? VF_LOG_VERBOSE : VF_LOG_INFO;
    vf_log_set_sink(farm_sink, &g_sink);
    vf_log_set_level(VF_LOG_VERBOSE);   /* the log file gets every line; stderr is filtered */

    rc = run_farm(&f, &lock_fd, &err);
done:
    /* the rank that failed says why (rank 0 also into vaefarm.log); a rank that only follows
     * another's failure (a STOP's status, a failed agreement) has no message and stays quiet */
    if (rc < 0 && err.msg[0]) {
        if (g_sink.file)
            fprintf(g_sink.file, "error: %s\n", err.msg);
        fprintf(stderr, "%svaefarm: %s\n", g_sink.tty ? "\r\033[K" : "", err.msg);
    }
    if (g_sink.file)
        fclose(g_sink.file);
    g_sink.file = NULL;
    vf_log_set_sink(NULL, NULL);
    if (f.undo_work_dir && f.made_dir)
        undo_work_dir(&f);
    bool abort_job = f.abort_job;
    int *release = f.release_later, n_release = f.n_release_later;
    f.release_later = NULL;
    farm_free(&f);
    if (local != MPI_COMM_NULL && MPI_Comm_free(&local) != MPI_SUCCESS)
        fprintf(stderr, "vaefarm: rank %d: MPI_Comm_free failed\n", f.rank);
    if (abort_job) {
        /* A rank that answers nothing (stopped, hung) is still there: MPI_Finalize would wait for
         * it forever, and killing it would make the launcher end the job as crashed (exit 137;
         * docs/FARM.md "Lost ranks"). The launcher ends the job, that rank included, with the
         * job's exit code instead: Open MPI 4's mpirun when the ranks exit without MPI_Finalize
         * (every rank does, as rank 0's RELEASE, sent below once rank 0 has said why, tells
         * them; its MPI_Abort, with a stopped rank about,
         * sometimes crashed or hung mpirun itself here; an exit code of 0 reads as 1 there),
         * srun on rank 0's MPI_Abort. */
        int code = vf_exit_code(rc);
        if (lock_fd >= 0)
            close(lock_fd);
        fflush(NULL);
        /* rank 0 has said why: now the ranks that wait for their RELEASE leave as this one */
        for (int i = 0; i < n_release; i++) {
            struct vf_msg m;
            struct vf_error e = {0};
            vf_msg_init(&m, VF_MSG_RELEASE, 0);
            m.status = 1;
            if (vf_msg_send_mpi(&m, release[i], 2.0, &e) < 0)
                fprintf(stderr, "vaefarm: rank %d: RELEASE not sent: %s\n", release[i], e.msg);
        }
        free(release);
        if (vf_farm_under_mpirun())
            exit(code);
        if (MPI_Abort(MPI_COMM_WORLD, code) != MPI_SUCCESS)
            fprintf(stderr, "vaefarm: MPI_Abort failed\n");
        return code;
    }
    free(release);
    finalize(f.rank, vf_exit_code(rc));
    if (lock_fd >= 0)
        close(lock_fd);
    return vf_exit_code(rc);
}
