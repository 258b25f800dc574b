/*
 * tests/fuzz/as_file.h: the fuzz input as a file for the readers that take a path: a memfd,
 * rewritten for each input, named /proc/self/fd/N. Included by one harness each.
 */
#ifndef VF_FUZZ_AS_FILE_H
#define VF_FUZZ_AS_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/fuzz/quiet.h"

static const char *fuzz_as_file(const char *name, const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create(name, 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    return path;
}

#endif
