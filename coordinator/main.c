/*
 * coordinator/main.c: the vaefarm program (DESIGN.md §8): verb dispatch, --help, --version,
 * exit codes. Each verb lives in its own file (cmd_probe.c, cmd_plan.c, ...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <libavformat/avformat.h>
#include "shard/shard.h"

#include "config/config.h"
#include "kernels/kernels.h"
#include "coordinator/coordinator.h"

static const char usage_text[] =
    "usage: vaefarm [run] FILM.yaml [--threads N] [--retries N] [--queue N] [--ranks-per-gpu N]\n"
    "                              [--rank-timeout S] [--null-colorizer MS]\n"
    "                              [--quiet|--verbose] [--json]\n"
    "       vaefarm plan FILM.yaml [--json] [--simulate RANKS] [--frame-ms MS]\n"
    "       vaefarm probe VIDEO [--json]\n"
    "       vaefarm eval --truth VIDEO --output VIDEO [--shots FILM.yaml | --cuts F,...]\n"
    "                    [--per-frame] [--threads N] [--json]\n"
    "       vaefarm bench [--model FILE|tiny|full] [--size HxW] [--precision f32|bf16|f16]\n"
    "                     [--frames N] [--full-size HxW] [--threads N] [--no-reference-conv] [--json]\n"
    "                     [--device auto|cpu|cuda[:N]] [--graph|--no-graph]\n"
    "       vaefarm --help | --version\n";

static void print_help(void)
{
    fputs("vaefarm: colorize black-and-white films on a farm of GPUs (or CPUs)\n\n", stdout);
    fputs(usage_text, stdout);
    fputs("\nverbs:\n"
          "  run     colorize the film described by FILM.yaml (the default verb)\n"
          "  plan    show the shots, chunks and references the film would be split into, and\n"
          "          which chunks a run now would keep from the work folder and which it would\n"
          "          colorize; --simulate R: the makespan of a longest-first schedule on R ranks\n"
          "  probe   what a video file is: frames, rates, size, streams, timecode\n"
          "  eval    quality of a colorized film against its colour truth: PSNR and SSIM on RGB\n"
          "          and on Lab ab, colourfulness, flicker (docs/EVAL.md); per shot with --shots\n"
          "          (the film.yaml's plan) or --cuts (the shots' first frames)\n"
          "  bench   speed of the colorization network (f32 unless --precision: a run's\n"
          "          default is bf16 where the CPU has it; --threads 0 or none: all cores)\n"
          "\noptions:\n"
          "  --json     one JSON document on stdout and nothing else there\n"
          "  --quiet    errors only     --verbose    more detail\n"
          "\nexit codes: 0 success, 1 other failure, 2 bad command line, 3 invalid film.yaml or\n"
          "input, 4 missing file, 5 media error, 6 I/O error, 7 out of memory, 8 damaged work\n"
          "files, 9 internal error, 10 interrupted (rerun to resume)\n\n",
          stdout);
    vf_config_print_keys(stdout);
}

/* The version and what this build and machine have: media libraries, CPU backend, GPUs. */
static void print_version(void)
{
    char cpu[128];
    unsigned lavf = avformat_version();
    vf_kernels_cpu_describe(cpu, sizeof cpu);
    printf("vaefarm %s\n", VF_VERSION);
    printf("  media: libavformat %u.%u.%u\n", lavf >> 16, (lavf >> 8) & 0xff, lavf & 0xff);
    printf("  cpu backend: %s\n", cpu);
    if (!vf_kernels_has_cuda()) {
        printf("  cuda backend: not built (no nvcc at build time, or -DVF_CUDA=OFF)\n");
        return;
    }
    struct vf_error err = {0};
    int n = 0;
    if (vf_kernels_gpu_count(&n, &err) < 0) {
        printf("  cuda backend: built; %s\n", err.msg);
        return;
    }
    printf("  cuda backend: built; %d GPU%s visible%s\n", n, n == 1 ? "" : "s",
           n ? "" : " (ranks run on the CPU)");
    for (int i = 0; i < n; i++) {
        char line[320];
        if (vf_kernels_gpu_describe(i, line, sizeof line, &err) == 0)
            printf("  %s\n", line);
    }
}

int vf_exit_code(int status)
{
    switch (status) {
    case VF_OK: return VF_EXIT_OK;
    case VF_EINVAL:
    case VF_EUNSUPPORTED: return VF_EXIT_INVALID;
    case VF_ENOENT: return VF_EXIT_NOENT;
    case VF_EMEDIA: return VF_EXIT_MEDIA;
    case VF_EIO:
    case VF_ENOSPC: return VF_EXIT_IO;
    case VF_ENOMEM: return VF_EXIT_NOMEM;
    case VF_ECORRUPT: return VF_EXIT_CORRUPT;
    case VF_EINTERNAL: return VF_EXIT_INTERNAL;
    case VF_EINTERRUPTED: return VF_EXIT_INTERRUPTED;
    }
    return VF_EXIT_FAILURE;
}

int vf_report_error(const struct vf_error *err)
{
    fprintf(stderr, "vaefarm: %s\n", err->msg[0] ? err->msg : vf_status_str(err->code));
    return vf_exit_code(err->code);
}

int vf_stdout_done(void)
{
    /* ferror too: a write that failed when the buffer filled is not failed again by the flush */
    if (fflush(stdout) == 0 && !ferror(stdout))
        return VF_EXIT_OK;
    fprintf(stderr, "vaefarm: could not write to standard output\n");
    return VF_EXIT_IO;
}

int vf_json_print(json_t *doc)
{
    if (!doc) {
        fprintf(stderr, "vaefarm: out of memory building the JSON output\n");
        return VF_EXIT_NOMEM;
    }
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(doc);
    if (!s) {
        fprintf(stderr, "vaefarm: could not serialise the JSON output\n");
        return VF_EXIT_INTERNAL;
    }
    int rc = puts(s) < 0 ? (fprintf(stderr, "vaefarm: could not write to standard output\n"),
                            VF_EXIT_IO)
                         : vf_stdout_done();
    free(s);
    return rc;
}

/* Global flags may appear anywhere after the verb; verbs read the rest. */
static void take_global_flags(int *argc, char **argv, struct vf_cli *cli)
{
    int w = 0;
    for (int r = 0; r < *argc; r++) {
        if (strcmp(argv[r], "--json") == 0)
            cli->json = true;
        else if (strcmp(argv[r], "--quiet") == 0)
            cli->quiet = true;
        else if (strcmp(argv[r], "--verbose") == 0)
            cli->verbose = true;
        else
            argv[w++] = argv[r];
    }
    *argc = w;
}

/* Whether the first argument, not being a verb, names the film.yaml of `vaefarm FILM.yaml`:
 * something there, or a name ending in .yaml or .yml (whose absence the run then reports). */
static bool looks_like_film(const char *arg)
{
    struct stat st;
    size_t n = strlen(arg);
    return stat(arg, &st) == 0 || (n > 5 && !strcasecmp(arg + n - 5, ".yaml")) ||
           (n > 4 && !strcasecmp(arg + n - 4, ".yml"));
}

int main(int argc, char **argv)
{
    struct vf_cli cli = {0};
    if (argc < 2) {
        fputs(usage_text, stderr);
        return VF_EXIT_USAGE;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "help") == 0) {
        print_help();
        return VF_EXIT_OK;
    }
    if (strcmp(verb, "--version") == 0) {
        print_version();
        return VF_EXIT_OK;
    }

    int vargc = argc - 2;
    char **vargv = argv + 2;
    static const char *const verbs[] = {"run", "plan", "probe", "eval", "bench"};
    bool known = false;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        known = known || !strcmp(verb, verbs[i]);
    if (!known && verb[0] != '-' && !looks_like_film(verb)) {
        /* `vaefarm plna film.yaml` is a mistyped verb, not a film named "plna" */
        const char *near = vf_config_suggest(verb, verbs, sizeof verbs / sizeof verbs[0]);
        struct vf_error e = {0};
        vf_error_set(&e, VF_EINVAL, "'%s' is neither a verb (run, plan, probe, eval, bench) nor a "
                     "film.yaml file%s%s%s", verb, near ? " (did you mean '" : "",
                     near ? near : "", near ? "'?)" : "");   /* escaped, as every message */
        fprintf(stderr, "vaefarm: %s\n%s", e.msg, usage_text);
        return VF_EXIT_USAGE;
    }
    if (!known) {
        /* `vaefarm FILM.yaml`: the default verb is run. */
        verb = "run";
        vargc = argc - 1;
        vargv = argv + 1;
    }
    for (int i = 0; i < vargc; i++)   /* `vaefarm VERB --help`: the same help */
        if (strcmp(vargv[i], "--help") == 0 || strcmp(vargv[i], "-h") == 0) {
            print_help();
            return VF_EXIT_OK;
        }
    take_global_flags(&vargc, vargv, &cli);
    if (cli.quiet && cli.verbose) {
        fputs("vaefarm: --quiet and --verbose ask for opposite things: give one of them\n", stderr);
        fputs(usage_text, stderr);
        return VF_EXIT_USAGE;
    }
    vf_log_set_level(cli.quiet ? VF_LOG_ERROR : cli.verbose ? VF_LOG_VERBOSE : VF_LOG_INFO);
    /* FFmpeg's own lines only with --verbose: our errors carry its message already. */
    vf_shard_log_setup(cli.verbose);

    if (strcmp(verb, "probe") == 0)
        return vf_cmd_probe(vargc, vargv, &cli);
    if (strcmp(verb, "plan") == 0)
        return vf_cmd_plan(vargc, vargv, &cli);
    if (strcmp(verb, "bench") == 0)
        return vf_cmd_bench(vargc, vargv, &cli);
    if (strcmp(verb, "eval") == 0)
        return vf_cmd_eval(vargc, vargv, &cli);
    return vf_cmd_run(vargc, vargv, &cli);
}
