/*
 * tests/fuzz/fuzz_config.c: libFuzzer harness for film.yaml (config/): vf_config_load_string,
 * then the accessors a caller uses on a loaded film, then vf_config_destroy.
 */
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "tests/fuzz/quiet.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vf_film *film = NULL;
    struct vf_error err = {0};
    if (vf_config_load_string(&film, (const char *)data, size, "film.yaml", "/nonexistent/dir",
                              &err) == 0) {
        (void)vf_config_key_pos(film, "chunks.length");
        (void)vf_config_key_pos(film, "shots.list[].start");
        (void)vf_precision_name(film->precision);
        vf_config_destroy(&film);
    }
    return 0;
}
