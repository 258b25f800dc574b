/*
 * tests/fuzz/fuzz_arch.c: libFuzzer harness for the model's architecture metadata
 * (node/net.c, vf_arch_from_json: the "vaefarm" JSON string of a .safetensors file).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tests/fuzz/quiet.h"
#include "node/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1); /* the metadata reaches it as a C string */
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct vf_arch arch;
    struct vf_error err = {0};
    (void)vf_arch_from_json(text, "fuzz.safetensors", &arch, &err);
    free(text);
    return 0;
}
