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
#include "tests/fuzz/as_file.h"
#include "coordinator/farm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_as_file("seam", data, size);
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
