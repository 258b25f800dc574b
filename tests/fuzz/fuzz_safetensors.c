/*
 * tests/fuzz/fuzz_safetensors.c: libFuzzer harness for the model file parser
 * (node/safetensors.c): vf_safetensors_parse (borrowing and copying), then every tensor's
 * conversion to f32, the lookups, and close.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tests/fuzz/quiet.h"
#include "node/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so that ASan sees any read past the end of the file's bytes */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    for (int copy = 0; copy < 2; copy++) {
        struct vf_safetensors *st = NULL;
        struct vf_error err = {0};
        if (vf_safetensors_parse(buf, size, copy, "fuzz.safetensors", &st, &err) != 0) {
            if (st)
                abort();
            break;
        }
        for (size_t i = 0; i < st->n; i++) {
            const struct vf_st_tensor *t = &st->tensors[i];
            if (vf_safetensors_find(st, t->name) == NULL)
                abort();
            (void)vf_st_dtype_name(t->dtype);
            if (t->count < 0 || (uint64_t)t->count > size)
                continue; /* would be a parser bug: nbytes must be within the file */
            float *out = malloc((size_t)t->count * sizeof *out + 1);
            if (out) {
                struct vf_error e2 = {0};
                (void)vf_st_to_f32(t, out, &e2);
                free(out);
            }
        }
        for (size_t i = 0; i < st->n_meta; i++)
            if (vf_safetensors_meta(st, st->meta_keys[i]) == NULL)
                abort();
        (void)vf_safetensors_meta(st, "vaefarm");
        vf_safetensors_close(&st);
    }
    free(buf);
    return 0;
}
