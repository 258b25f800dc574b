/*
 * config/config.c: the public entry points of config/ (see config.h): read the file, build
 * the YAML tree (tree.c), fill struct vf_film from it (parse.c), and free it all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/internal.h"

static int film_alloc(struct vf_film **out, const char *name, const char *dir,
                      struct vf_error *err)
{
    struct vf_film *f = vf_calloc(1, sizeof *f, err);
    if (!f)
        return VF_ENOMEM;
    f->path = vf_strdup(name, err);
    f->dir = vf_strdup(dir && dir[0] ? dir : ".", err);
    f->key_pos = vf_calloc(cfg_n_options, sizeof *f->key_pos, err);
    if (!f->path || !f->dir || !f->key_pos) {
        vf_config_destroy(&f);
        return VF_ENOMEM;
    }
    *out = f;
    return 0;
}

int vf_config_load_string(struct vf_film **out, const char *yaml, size_t len, const char *name,
                          const char *dir, struct vf_error *err)
{
    struct vf_film *film = NULL;
    struct cfg_node *root = NULL;
    VF_ASSERT(out && (yaml || !len));
    *out = NULL;
    if (!name)
        name = "film.yaml";
    int rc = film_alloc(&film, name, dir, err);
    if (rc < 0)
        return rc;
    rc = cfg_tree_load(&root, yaml ? yaml : "", len, name, err);
    if (rc < 0)
        goto out;
    rc = cfg_parse_film(film, root, err);
out:
    cfg_tree_free(root);
    if (rc < 0) {
        vf_config_destroy(&film);
        return rc;
    }
    *out = film;
    return 0;
}

int vf_config_load(struct vf_film **out, const char *path, struct vf_error *err)
{
    struct stat st;
    char *buf = NULL, *dir = NULL;
    FILE *f = NULL;
    int rc;
    VF_ASSERT(out && path);
    *out = NULL;

    if (stat(path, &st) != 0)
        return vf_error_set(err, errno == ENOENT || errno == ENOTDIR ? VF_ENOENT : VF_EIO,
                            "%s: cannot open the film.yaml: %s; check the path", path,
                            strerror(errno));
    if (S_ISDIR(st.st_mode))
        return vf_error_set(err, VF_EINVAL, "%s: is a folder; give the path of the film.yaml file",
                            path);
    if (st.st_size > (off_t)CFG_MAX_FILE_BYTES)
        return vf_error_set(err, VF_EINVAL,
                            "%s: is %lld bytes, more than the %u MiB a film.yaml may have; is this "
                            "the right file?",
                            path, (long long)st.st_size, CFG_MAX_FILE_BYTES >> 20);
    f = fopen(path, "rb");
    if (!f)
        return vf_error_set(err, errno == ENOENT ? VF_ENOENT : VF_EIO,
                            "%s: cannot open the film.yaml: %s", path, strerror(errno));
    /* Read to the end (st_size may be 0 for pipes and special files), at most the limit + 1. */
    size_t cap = (size_t)st.st_size + 1, len = 0;
    buf = malloc(cap);
    if (!buf) {
        rc = vf_error_set(err, VF_ENOMEM, "%s: out of memory reading the film.yaml", path);
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > CFG_MAX_FILE_BYTES) {
                rc = vf_error_set(err, VF_EINVAL, "%s: larger than the %u MiB a film.yaml may "
                                  "have; is this the right file?", path, CFG_MAX_FILE_BYTES >> 20);
                goto out;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = vf_error_set(err, VF_ENOMEM, "%s: out of memory reading the film.yaml", path);
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = vf_error_set(err, VF_EIO, "%s: cannot read the film.yaml: %s", path, strerror(errno));
        goto out;
    }
    dir = vf_path_dirname(path, err);
    if (!dir) {
        rc = VF_ENOMEM;
        goto out;
    }
    rc = vf_config_load_string(out, buf, len, path, dir, err);
out:
    if (f)
        fclose(f);
    free(buf);
    free(dir);
    return rc;
}

void vf_config_destroy(struct vf_film **film)
{
    if (!film || !*film)
        return;
    struct vf_film *f = *film;
    cfg_free_owned(f, "");
    free(f->path);
    free(f->dir);
    free(f->key_pos);
    free(f);
    *film = NULL;
}

struct vf_config_pos vf_config_key_pos(const struct vf_film *film, const char *key)
{
    const struct cfg_option *opt = key ? cfg_option_find(key) : NULL;
    if (!film || !film->key_pos || !opt || strstr(key, "[]"))
        return (struct vf_config_pos){0, 0};
    return film->key_pos[cfg_option_index(opt)];
}

const char *vf_precision_name(enum vf_precision p)
{
    switch (p) {
    case VF_PRECISION_DEFAULT: return "default";
    case VF_PRECISION_F32: return "f32";
    case VF_PRECISION_BF16: return "bf16";
    case VF_PRECISION_F16: return "f16";
    }
    return "unknown";
}
