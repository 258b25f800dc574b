/*
 * tests/fuzz/fuzz_seam.c: libFuzzer harness for the seam file reader (coordinator/farm_msg.c,
 * vf_seam_read, "VFSEAM2"). farm_msg.c is compiled into the harness (it includes <mpi.h> and
 * calls MPI in other functions, so it links libmpi, but MPI is never initialised here).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/common.h"
#include "coordinator/farm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        vf_log_set_level(-1);
        fd = memfd_create("seam", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    int h = 0, w = 0;
    float *warm = NULL, *last = NULL;
    struct vf_error err = {0};
    if (vf_seam_read(path, NULL, &h, &w, &warm, &last, &err) == 0) {
        if (h <= 0 || w <= 0 || !last)
            abort();
        volatile float sink = last[(size_t)2 * h * w - 1];
        if (warm)
            sink = warm[(size_t)2 * h * w - 1];
        (void)sink;
    } else if (warm || last) {
        abort();
    }
    free(warm);
    free(last);
    return 0;
}
