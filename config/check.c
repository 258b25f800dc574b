/*
 * config/check.c: vf_config_check_files: before any work starts, check every file the film
 * names, and report every problem at once, one line each, "FILE:LINE:COL: KEY: problem; what
 * to do", so that a colorist fixes them in one go instead of one rerun per missing file.
 *
 * The returned code is that of the gravest kind of problem: VF_EINVAL (a path that can never
 * work: the output is the input, a folder where a file is needed), then VF_ENOENT (something
 * missing), then VF_EIO (permissions).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/internal.h"

struct problems {
    const struct vf_film *film;
    char msg[VF_ERROR_MSG_MAX];
    size_t len;
    int n, dropped;
    int code;
    bool writing;               /* the problem being added is only that this user cannot write */
    int n_other;                /* problems that are not that */
};

static int gravity(int code)
{
    return code == VF_ENOMEM ? 4 : code == VF_EINVAL ? 3 : code == VF_ENOENT ? 2
         : code == VF_EIO || code == VF_ENOSPC ? 1 : 0;
}

static void add(struct problems *p, int code, struct vf_config_pos pos, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add(struct problems *p, int code, struct vf_config_pos pos, const char *key,
                const char *fmt, ...)
{
    char line[768], what[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (pos.line > 0)
        snprintf(line, sizeof line, "%s:%d:%d: %s: %s", p->film->path, pos.line, pos.col, key,
                 what);
    else   /* a key the film leaves out (work_dir: its default): no line to point at */
        snprintf(line, sizeof line, "%s: %s (not set): %s", p->film->path, key, what);
    if (gravity(code) > gravity(p->code))
        p->code = code;
    if (!p->writing)
        p->n_other++;
    /* Keep room for the closing "(and N more problems)". */
    size_t need = strlen(line) + (p->len ? 1 : 0);
    if (p->len + need + 40 >= sizeof p->msg) {
        p->dropped++;
        return;
    }
    p->len += (size_t)snprintf(p->msg + p->len, sizeof p->msg - p->len, "%s%s", p->len ? "\n" : "",
                               line);
    p->n++;
}

/* A file the film reads: it must exist, be a file and be readable. */
static void need_file(struct problems *p, struct vf_config_pos pos, const char *key,
                      const char *path)
{
    struct stat st;
    if (!path)
        return;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            add(p, VF_ENOENT, pos, key,
                "%s does not exist; check the path (relative paths are relative to the folder "
                "of %s)", path, p->film->path);
        else
            add(p, VF_EIO, pos, key, "cannot reach %s: %s; check the folders' permissions", path,
                strerror(e));
    } else if (S_ISDIR(st.st_mode)) {
        add(p, VF_EINVAL, pos, key, "%s is a folder; give the path of a file", path);
    } else if (!S_ISREG(st.st_mode)) {
        /* opening a FIFO waits for a writer, and vaefarm reads each file more than once */
        add(p, VF_EINVAL, pos, key, "%s is %s, not a file; give the path of a file (save a "
            "stream to a file first)", path, S_ISFIFO(st.st_mode) ? "a pipe (FIFO)"
                                                                   : "a device or socket");
    } else if (access(path, R_OK) != 0) {
        add(p, VF_EIO, pos, key, "%s is not readable: %s; check its permissions", path,
            strerror(errno));
    }
}

/* A folder vaefarm writes into: it must be a writable folder. */
static bool writable_dir(struct problems *p, struct vf_config_pos pos, const char *key,
                         const char *dir, const char *role)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            add(p, VF_ENOENT, pos, key, "%s %s does not exist; create it (mkdir -p %s) or choose "
                "another path", role, dir, dir);
        else
            add(p, VF_EIO, pos, key, "cannot reach %s %s: %s", role, dir, strerror(e));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        add(p, VF_EINVAL, pos, key, "%s %s is not a folder", role, dir);
        return false;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        p->writing = errno == EACCES || errno == EPERM || errno == EROFS;
        add(p, VF_EIO, pos, key, "%s %s is not writable: %s; check its permissions or choose "
            "another path", role, dir, strerror(errno));
        p->writing = false;
        return false;
    }
    return true;
}

/* The same file: the same path, or the same inode (links, ./ and ../ spellings). */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b)
        return false;
    return !strcmp(a, b) ||
           (stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

/* Whether the file `path` lies in the folder `dir` (an existing one) or below it: one of the
 * folders above it is that folder (links and ./ spellings included). */
static bool inside(const char *path, const char *dir)
{
    struct stat sd, sa;
    char *up = vf_path_dirname(path, NULL);
    char *real = up ? realpath(up, NULL) : NULL;
    free(up);
    bool found = false;
    if (real && stat(dir, &sd) == 0 && S_ISDIR(sd.st_mode)) {
        for (char *end = real + strlen(real);;) {
            if (stat(real, &sa) == 0 && sa.st_dev == sd.st_dev && sa.st_ino == sd.st_ino) {
                found = true;
                break;
            }
            while (end > real && *--end != '/') {}
            if (end == real)
                break;   /* "/" itself is never a work folder */
            *end = '\0';
        }
    }
    free(real);
    return found;
}

/* Whether `output` is a file the run manages in `work_dir`: inside its segments/ or
 * null-colorizer/ folders (any depth), or one of its own files beside them. */
static bool in_work_dir(const char *output, const char *work_dir)
{
    static const char *const folders[] = {"segments", "null-colorizer"};
    static const char *const files[] = {"plan.json", "journal", "lock", "vaefarm.log",
                                        "report.json"};
    bool hit = false;
    for (size_t i = 0; i < sizeof folders / sizeof folders[0] && !hit; i++) {
        char *d = vf_path_join(work_dir, folders[i], NULL);
        hit = d && inside(output, d);
        free(d);
    }
    const char *slash = strrchr(output, '/');
    const char *base = slash ? slash + 1 : output;
    char *dir = vf_path_dirname(output, NULL);
    for (size_t i = 0; i < sizeof files / sizeof files[0] && !hit; i++)
        hit = dir && !strcmp(base, files[i]) && same_file(dir, work_dir);
    free(dir);
    return hit;
}

/* The output must not be a file the film reads: the run would replace it. */
static void output_not_read(struct problems *p, const struct vf_film *f, struct vf_config_pos pos)
{
    const char *what = NULL, *path = NULL;
    for (size_t i = 0; i < f->n_shots && !what; i++)
        if (same_file(f->output, f->shots[i].reference))
            what = "a shot's reference", path = f->shots[i].reference;
    for (size_t i = 0; i < f->n_references && !what; i++)
        if (same_file(f->output, f->references[i].image))
            what = "a reference image", path = f->references[i].image;
    if (!what && same_file(f->output, f->default_reference))
        what = "default_reference", path = f->default_reference;
    if (!what && same_file(f->output, f->model))
        what = "the model", path = f->model;
    if (!what && same_file(f->output, f->edl))
        what = "shots.edl", path = f->edl;
    if (what)
        add(p, VF_EINVAL, pos, "output", "%s is %s (%s), which the run reads; vaefarm never "
            "writes its inputs: choose another output path", f->output, what, path);
    if (f->work_dir && same_file(f->output, f->work_dir))
        add(p, VF_EINVAL, pos, "output", "%s is also work_dir, the folder of the run's plan, "
            "journal and segments: give them different paths (work_dir defaults to "
            "<output>.vaefarm)", f->output);
    else if (f->work_dir && in_work_dir(f->output, f->work_dir))
        add(p, VF_EINVAL, pos, "output", "%s is one of the files of work_dir %s that the run "
            "manages (its segments/, plan.json, journal, lock, vaefarm.log, report.json, "
            "null-colorizer/: replaced or removed there): write the output elsewhere", f->output,
            f->work_dir);
}

static void check_output(struct problems *p, const struct vf_film *f)
{
    struct vf_config_pos pos = vf_config_key_pos(f, "output");
    struct stat so;
    char *dir = vf_path_dirname(f->output, NULL);
    if (!dir) {
        add(p, VF_ENOMEM, pos, "output", "out of memory");
        return;
    }
    writable_dir(p, pos, "output", dir, "the output's folder");
    free(dir);
    if (stat(f->output, &so) == 0 && S_ISDIR(so.st_mode))
        add(p, VF_EINVAL, pos, "output", "%s is a folder; give a file name such as "
            "%s/film_color.mkv", f->output, f->output);
    else if (same_file(f->output, f->input))
        add(p, VF_EINVAL, pos, "output", "%s is the input file (%s); vaefarm never writes "
            "its input: choose another output path", f->output, f->input);
    output_not_read(p, f, pos);
}

/* The work folder: an existing one must be writable; a new one must be creatable, so its
 * nearest existing ancestor must be writable. */
static void check_work_dir(struct problems *p, const struct vf_film *f)
{
    struct vf_config_pos pos = vf_config_key_pos(f, "work_dir");
    struct stat st;
    if (stat(f->work_dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            add(p, VF_EINVAL, pos, "work_dir", "%s exists and is not a folder; remove it or "
                "choose another work_dir", f->work_dir);
        else
            writable_dir(p, pos, "work_dir", f->work_dir, "the work folder");
        return;
    }
    char *dir = vf_path_dirname(f->work_dir, NULL);
    for (int depth = 0; dir && depth < 256; depth++) {
        if (stat(dir, &st) == 0 || !strcmp(dir, ".") || !strcmp(dir, "/")) {
            writable_dir(p, pos, "work_dir", dir, "the work folder's parent");
            break;
        }
        char *up = vf_path_dirname(dir, NULL);
        free(dir);
        dir = up;
    }
    free(dir);
}

int vf_config_check_files(const struct vf_film *film, bool *only_unwritable, struct vf_error *err)
{
    struct problems *p = calloc(1, sizeof *p);
    char key[64];
    VF_ASSERT(film);
    if (!p)
        return vf_error_set(err, VF_ENOMEM, "out of memory checking the film's files");
    p->film = film;

    need_file(p, vf_config_key_pos(film, "input"), "input", film->input);
    for (size_t i = 0; i < film->n_shots; i++) {
        snprintf(key, sizeof key, "shots.list[%zu].reference", i);
        need_file(p, film->shots[i].reference_pos, key, film->shots[i].reference);
    }
    for (size_t i = 0; i < film->n_references; i++) {
        snprintf(key, sizeof key, "references[%zu].image", i);
        need_file(p, film->references[i].image_pos, key, film->references[i].image);
    }
    need_file(p, vf_config_key_pos(film, "default_reference"), "default_reference",
              film->default_reference);
    need_file(p, vf_config_key_pos(film, "model"), "model", film->model);
    need_file(p, vf_config_key_pos(film, "shots.edl"), "shots.edl", film->edl);
    check_output(p, film);
    check_work_dir(p, film);

    int code = p->code;
    if (only_unwritable)
        *only_unwritable = code != VF_OK && p->n_other == 0;
    if (p->n + p->dropped > 0) {
        if (p->dropped)
            snprintf(p->msg + p->len, sizeof p->msg - p->len, "\n(and %d more problems)",
                     p->dropped);
        vf_error_set(err, code, "%s", p->msg);
    }
    free(p);
    return code;
}
