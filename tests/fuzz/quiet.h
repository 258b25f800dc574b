/*
 * tests/fuzz/quiet.h: every harness's one-time setup, libFuzzer's LLVMFuzzerInitialize: no log
 * lines (they only slow the fuzzer). Included once by each harness.
 */
#ifndef VF_FUZZ_QUIET_H
#define VF_FUZZ_QUIET_H

#include "common/common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vf_log_set_level(-1);
    return 0;
}

#endif
