/* tests/test_kernels.c: what the kernels/ module reports about this build and machine. The
 * GPU checks run where a GPU is visible and say "skipped: no GPU" elsewhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"

static void cpu_backend_names_onednn_and_an_isa(void **state)
{
    (void)state;
    char buf[128];
    vf_kernels_cpu_describe(buf, sizeof buf);
    printf("cpu backend: %s\n", buf);
    assert_non_null(strstr(buf, "oneDNN 2."));
    assert_non_null(strstr(buf, "ISA "));
    assert_null(strstr(buf, "ISA other"));
}

static void gpu_count_is_zero_without_cuda_and_never_fails_without_a_device(void **state)
{
    (void)state;
    struct vf_error err = {0};
    int n = -1;
    assert_int_equal(vf_kernels_gpu_count(&n, &err), VF_OK);
    assert_true(n >= 0);
    if (!vf_kernels_has_cuda()) {
        assert_int_equal(n, 0);
        char line[64];
        assert_int_equal(vf_kernels_gpu_describe(0, line, sizeof line, &err), VF_EUNSUPPORTED);
        assert_non_null(strstr(err.msg, "without the CUDA backend"));
        return;
    }
    if (n == 0) {
        printf("skipped: no GPU (the CUDA backend is built; its device queries were not run)\n");
        return;
    }
    for (int i = 0; i < n; i++) {
        char line[320];
        assert_int_equal(vf_kernels_gpu_describe(i, line, sizeof line, &err), VF_OK);
        printf("%s\n", line);
        assert_non_null(strstr(line, "compute capability"));
    }
    char line[320];
    assert_true(vf_kernels_gpu_describe(n, line, sizeof line, &err) < 0); /* no such device */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_backend_names_onednn_and_an_isa),
        cmocka_unit_test(gpu_count_is_zero_without_cuda_and_never_fails_without_a_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
