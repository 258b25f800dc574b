/*
 * tests/fuzz/fuzz_edl.c: libFuzzer harness for the CMX3600 EDL import (shard/edl.c):
 * vf_shard_edl_load on the input (a memfd, read back through /proc/self/fd/N) against a few
 * media infos: 24, 25 and 29.97 fps, short and long films, with and without the film's own
 * timecode (as tests/test_shots.c builds them).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/common.h"
#include "tests/fuzz/as_file.h"
#include "shard/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static struct vf_media_info *media(int64_t frames, int num, int den, const char *timecode)
{
    static struct vf_media_info m; /* big (4 KiB path): not on the stack */
    memset(&m, 0, sizeof m);
    m.frames = frames;
    m.fps_num = num;
    m.fps_den = den;
    snprintf(m.path, sizeof m.path, "reel1.mkv");
    snprintf(m.timecode, sizeof m.timecode, "%s", timecode ? timecode : "");
    return &m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_as_file("fuzz.edl", data, size);
    static const struct {
        int64_t frames;
        int num, den;
        const char *tc;
    } cases[] = {
        {300, 24, 1, NULL},
        {(int64_t)3 * 86400 * 24, 24, 1, NULL},
        {100000, 30000, 1001, NULL},
        {(int64_t)3 * 86400 * 30, 30000, 1001, "00:59:59;28"},
        {1000, 25, 1, "00:59:59:00"},
        {(int64_t)86400 * 60, 60000, 1001, "23:59:58:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t *cuts = NULL;
        size_t n = 0;
        struct vf_error err = {0};
        const struct vf_media_info *m = media(cases[i].frames, cases[i].num, cases[i].den,
                                              cases[i].tc);
        int rc = vf_shard_edl_load(path, m, &cuts, &n, &err);
        if (rc == 0) {
            /* the contract: ascending cut frames inside the film */
            for (size_t k = 0; k < n; k++)
                if (cuts[k] <= 0 || cuts[k] >= m->frames || (k && cuts[k] <= cuts[k - 1])) {
                    fprintf(stderr, "case %zu: bad cut %zu = %lld\n", i, k, (long long)cuts[k]);
                    abort();
                }
        } else if (cuts) {
            abort();
        }
        free(cuts);
    }
    return 0;
}
