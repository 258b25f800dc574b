/*
 * coordinator/coordinator.h: the vaefarm program's verbs and the exit-code mapping
 * (DESIGN.md §8). Private to coordinator/: nothing else includes it.
 */
#ifndef VF_COORDINATOR_H
#define VF_COORDINATOR_H

#include <jansson.h>
#include <stdbool.h>

#include "common/common.h"

/* Exit codes, documented in the README. */
enum vf_exit {
    VF_EXIT_OK = 0,
    VF_EXIT_FAILURE = 1,     /* anything not listed below */
    VF_EXIT_USAGE = 2,       /* bad command line */
    VF_EXIT_INVALID = 3,     /* invalid film.yaml, input or arguments (VF_EINVAL, VF_EUNSUPPORTED) */
    VF_EXIT_NOENT = 4,       /* a file that must exist does not */
    VF_EXIT_MEDIA = 5,       /* FFmpeg could not read or write the media */
    VF_EXIT_IO = 6,          /* reading or writing failed (permissions, disk full) */
    VF_EXIT_NOMEM = 7,
    VF_EXIT_CORRUPT = 8,     /* the work folder's files are damaged: remove them and rerun */
    VF_EXIT_INTERNAL = 9,    /* a bug or a library failure: please report */
    VF_EXIT_INTERRUPTED = 10,/* stopped by SIGTERM/SIGINT/SIGUSR1/SIGUSR2: rerun to resume */
};

int vf_exit_code(int status);

/* Output options shared by the verbs. */
struct vf_cli {
    bool json;               /* --json: one JSON document on stdout, nothing else there */
    bool quiet;
    bool verbose;
};

int vf_cmd_probe(int argc, char **argv, struct vf_cli *cli);
int vf_cmd_plan(int argc, char **argv, struct vf_cli *cli);
int vf_cmd_bench(int argc, char **argv, struct vf_cli *cli);
int vf_cmd_eval(int argc, char **argv, struct vf_cli *cli);

struct vf_arch;
struct vf_film;
struct vf_media_info;
struct vf_plan;

/* The bytes a CPU rank's frames in flight, codecs and network may hold (bench: its backend alone):
 * VAEFARM_MEMORY_LIMIT (MiB), else 90% of the node's
 * available memory (or its control group's) over the `local_size` ranks on the node; 0 where
 * unknown (no limit). */
int vf_cpu_memory_budget(int local_size, size_t *budget, struct vf_error *err);

/* Load film.yaml, check its files, probe the input and check the encoder settings. With
 * `unwritable` (`vaefarm plan`), problems that are all folders this user may not write (the
 * output's, the work folder) are not an error: their message is left there ("" when none). */
int vf_film_open(const char *yaml, char *unwritable, size_t n, struct vf_film **film,
                 struct vf_media_info **info, struct vf_error *err);
/* The model a run of the film uses, into film->model: film.yaml's `model:`, else
 * $VAEFARM_MODEL, else the bundled default; an error saying which of the two when that is not a
 * readable file (VF_ENOENT when it is missing, VF_EINVAL when it is a folder). */
int vf_film_resolve_model(struct vf_film *film, struct vf_error *err);
/* The warning (into buf, true) when the model treats the frames after a reference pass-through
 * apart (C.gate_ramp, propagate) for more frames than chunks.warmup covers and some chunk warms up
 * inside its shot (docs/PLAN.md "Chunks"); false when there is nothing to say. */
bool vf_plan_passthrough_warning(const struct vf_film *film, const struct vf_arch *arch,
                                 const struct vf_plan *plan, char *buf, size_t n);
/* Find the shots (detection / EDL) and plan the chunks. */
int vf_film_plan(const struct vf_film *film, const struct vf_media_info *info,
                 struct vf_plan **plan, struct vf_error *err);
/* The work folder's plan.json, the last run's record: NULL when there is none, or it is not a
 * regular file (a FIFO would block the reader), or it does not parse (bad, n bytes, then says
 * why; "" otherwise). The caller json_decref's it. */
json_t *vf_plan_record(const struct vf_film *film, char *bad, size_t n);
/* chunks.length auto (docs/PLAN.md "Auto chunking"): the rank count to plan for, into
 * film->ranks: film.yaml's ranks:, else the count in `record` (vf_plan_record) if an earlier
 * auto-chunked run recorded one (so resumes with another -np keep its chunks; a null-colorizer
 * run resumes nothing and passes NULL), else `fallback` (named `fallback_name`; with a warning
 * when `record_bad` says why a record could not be read). *from says which; NULL for a fixed
 * chunks.length (nothing done). */
void vf_plan_auto_ranks(struct vf_film *film, const json_t *record, const char *record_bad,
                        int fallback, const char *fallback_name, const char **from);
/* The plan as JSON (`plan --json`'s document, without the simulation). */
json_t *vf_plan_json(const struct vf_film *film, const struct vf_media_info *info,
                     const struct vf_plan *plan);
/* Write a JSON document to `path` (temporary file, fsync, rename). */
int vf_farm_write_json(const char *path, json_t *doc, struct vf_error *err);
int vf_cmd_run(int argc, char **argv, struct vf_cli *cli);
/* A JSON string for text shown to people (a path, a file's tag): s as it is when it is UTF-8,
 * else with each byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD (a
 * Latin-1 folder name). json_null() for NULL; NULL when out of memory. */
json_t *vf_json_text(const char *s);
/* The longest gap in the film's frame times, said for people (into buf): false when there is
 * none worth saying (vf_media_info.gap_missing). */
bool vf_media_gap(const struct vf_media_info *m, char *buf, size_t n);
/* The probe as JSON (the `probe --json` document). */
json_t *vf_media_info_json(const struct vf_media_info *info);

/* Flush stdout at the end of a verb's output: 0, or VF_EXIT_IO (said on stderr) when any of it
 * could not be written (a full disk, a closed pipe). */
int vf_stdout_done(void);
/* Print a JSON document on stdout (indent 2); returns 0 or an exit code. */
int vf_json_print(json_t *doc);
/* Report an error: on stderr as "vaefarm: <msg>", and (with --json) nothing on stdout. */
int vf_report_error(const struct vf_error *err);

#endif /* VF_COORDINATOR_H */
