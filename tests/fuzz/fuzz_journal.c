/*
 * tests/fuzz/fuzz_journal.c: libFuzzer harness for the journal reader (shard/journal.c):
 * vf_journal_read on the input (a memfd through /proc/self/fd/N), then the queries.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_as_file("journal", data, size);
    struct vf_journal *j = NULL;
    struct vf_error err = {0};
    if (vf_journal_read(&j, path, &err) == 0) {
        size_t n = vf_journal_count(j);
        for (size_t i = 0; i < n; i++) {
            const struct vf_journal_entry *e = vf_journal_get(j, i);
            if (!e || strlen(e->hash) != 64 || strlen(e->checksum) != 64 || e->frames < 1 ||
                e->chunk < 0 || e->segment[0] == '/' || strlen(e->time) != 20)
                abort();
            if (vf_journal_find(j, e->chunk, NULL) == NULL)
                abort();
        }
        vf_journal_close(&j);
    } else if (j) {
        abort();
    }
    return 0;
}
