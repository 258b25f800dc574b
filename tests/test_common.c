/*
 * tests/test_common.c: common/common.h's reading of the memory a process can still take
 * (vf_mem_available), on made-up /proc and /sys/fs/cgroup trees in a temporary folder: cgroup v2
 * and v1, a parent group tighter than the process's own, inactive file pages not counted as
 * held, nothing left, nothing readable; and on this machine. vf_write_all through a short write
 * (RLIMIT_FSIZE): the bytes that went out, and the errno of the write that failed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

static char root[256];

/* write `text` to root/rel, making the folders on the way */
static void put(const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static size_t avail(void)
{
    char proc[512], cg[512];
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(cg, sizeof cg, "%s/cg", root);
    return vf_mem_available_at_(proc, cg);
}

static void fresh(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", root, root);
    assert_int_equal(system(cmd), 0);
    put("proc/meminfo", "MemTotal:        4000 kB\nMemFree:  100 kB\nMemAvailable:    1000 kB\n");
}

static void mem_available_v2(void **state)
{
    (void)state;
    /* no group files: MemAvailable (kB) */
    fresh();
    put("proc/self/cgroup", "0::/job/step\n");
    assert_int_equal(avail(), 1000 * 1024);
    /* the group's limit less what it holds, its inactive file pages not counted */
    put("cg/job/step/memory.max", "600000\n");
    put("cg/job/step/memory.current", "500000\n");
    put("cg/job/step/memory.stat", "anon 300000\nfile 200000\nactive_file 0\ninactive_file 200000\n");
    assert_int_equal(avail(), 600000 - (500000 - 200000));
    /* "max": no limit there; a parent tighter than the group itself wins */
    put("cg/job/memory.max", "max\n");
    put("cg/job/memory.current", "900000\n");
    assert_int_equal(avail(), 300000);
    put("cg/job/memory.max", "350000\n");
    put("cg/job/memory.current", "320000\n");
    assert_int_equal(avail(), 30000);
    /* the namespace's root as the group ("0::/"): its own files */
    fresh();
    put("proc/self/cgroup", "0::/\n");
    put("cg/memory.max", "2000\n");
    put("cg/memory.current", "500\n");
    assert_int_equal(avail(), 1500);
    /* more held than the limit: nothing left is 1 byte, never 0 ("unknown": no limit) */
    put("cg/memory.current", "5000\n");
    assert_int_equal(avail(), 1);
}

static void mem_available_v1(void **state)
{
    (void)state;
    fresh();
    put("proc/self/cgroup", "9:pids:/x\n4:memory:/process_api/abc\n0::/\n");
    /* v1's "no limit" is a huge number */
    put("cg/memory/process_api/abc/memory.limit_in_bytes", "9223372036854771712\n");
    put("cg/memory/process_api/abc/memory.usage_in_bytes", "3625369600\n");
    assert_int_equal(avail(), 1000 * 1024);
    put("cg/memory/process_api/abc/memory.limit_in_bytes", "2000000\n");
    put("cg/memory/process_api/abc/memory.usage_in_bytes", "1900000\n");
    put("cg/memory/process_api/abc/memory.stat",
        "cache 0\ninactive_file 5\ntotal_inactive_file 900000\n");
    assert_int_equal(avail(), 1000000);
    /* a controller list with memory among others */
    fresh();
    put("proc/self/cgroup", "4:cpu,memory:/j\n");
    put("cg/memory/j/memory.limit_in_bytes", "700000\n");
    put("cg/memory/j/memory.usage_in_bytes", "100000\n");
    assert_int_equal(avail(), 600000);
    /* "memoryx" is not the memory controller */
    fresh();
    put("proc/self/cgroup", "4:memoryx:/j\n");
    put("cg/memory/j/memory.limit_in_bytes", "700000\n");
    put("cg/memory/j/memory.usage_in_bytes", "100000\n");
    assert_int_equal(avail(), 1000 * 1024);
}

static void mem_available_unknown_and_here(void **state)
{
    (void)state;
    fresh();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -f '%s/proc/meminfo'", root);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(avail(), 0);                  /* nothing readable: unknown */
    /* this machine: something, and no more than its memory */
    const size_t here = vf_mem_available();
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    assert_true(here > 0);
    assert_true(pages <= 0 || page <= 0 || here <= (size_t)pages * (size_t)page);
    printf("this machine: %zu MiB available\n", here >> 20);
}

static void write_all_through_short_writes(void **state)
{
    (void)state;
    fresh();
    char path[512];
    snprintf(path, sizeof path, "%s/w", root);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    char buf[100];
    memset(buf, 'x', sizeof buf);
    size_t done = 1;
    assert_int_equal(vf_write_all(fd, buf, sizeof buf, &done), 0);
    assert_int_equal(done, 100);
    /* 140 bytes allowed: 40 of the next 100 go out (a short write), then the write of the rest
     * fails with EFBIG, which is what the caller reports */
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = 140;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    errno = 0;
    int r = vf_write_all(fd, buf, sizeof buf, &done);
    int errnum = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old);
    assert_int_equal(r, -1);
    assert_int_equal(errnum, EFBIG);
    assert_int_equal(done, 40);
    assert_int_equal(vf_io_status(errnum), VF_EIO);
    assert_int_equal(vf_io_status(ENOSPC), VF_ENOSPC);
    close(fd);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 140);
}

/* vf_open_regular: a file opens with its size; a folder, a FIFO (without waiting for a writer)
 * and a device are refused, each named; a missing path is VF_ENOENT */
static void open_regular_only(void **state)
{
    (void)state;
    fresh();
    put("f.txt", "hello");
    char path[600];
    struct vf_error err = {0};
    int64_t size = -1;
    snprintf(path, sizeof path, "%s/f.txt", root);
    int fd = vf_open_regular(path, &size, &err);
    assert_true(fd >= 0);
    assert_int_equal(size, 5);
    char b[8];
    assert_int_equal(read(fd, b, sizeof b), 5);   /* plain reads: not O_NONBLOCK */
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    close(fd);
    static const struct { const char *rel, *says; int code; } bad[] = {
        {"proc", "is a folder, not a file", VF_EINVAL},
        {"fifo", "is a pipe (FIFO), not a file", VF_EINVAL},
        {"none", "No such file", VF_ENOENT},
    };
    snprintf(path, sizeof path, "%s/fifo", root);
    assert_int_equal(mkfifo(path, 0600), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root, bad[i].rel);
        err = (struct vf_error){0};
        assert_int_equal(vf_open_regular(path, NULL, &err), -1);
        assert_int_equal(err.code, bad[i].code);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, bad[i].says));
    }
    err = (struct vf_error){0};
    assert_int_equal(vf_open_regular("/dev/zero", NULL, &err), -1);
    assert_non_null(strstr(err.msg, "/dev/zero is a device, not a file"));
}

/* vf_read_regular: the whole file, NUL-terminated past its length (an empty one too); what
 * vf_open_regular refuses it refuses with the same message, and gives back nothing */
static void read_regular_whole(void **state)
{
    (void)state;
    fresh();
    put("f.txt", "hello\nworld");
    put("empty", "");
    char path[600];
    struct vf_error err = {0};
    void *buf = NULL;
    size_t len = 99;
    snprintf(path, sizeof path, "%s/f.txt", root);
    assert_int_equal(vf_read_regular(path, &buf, &len, &err), VF_OK);
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "hello\nworld", 12);   /* with the terminating NUL */
    free(buf);
    snprintf(path, sizeof path, "%s/empty", root);
    assert_int_equal(vf_read_regular(path, &buf, &len, &err), VF_OK);
    assert_int_equal(len, 0);
    assert_non_null(buf);
    assert_int_equal(((char *)buf)[0], '\0');
    free(buf);
    snprintf(path, sizeof path, "%s/fifo", root);
    assert_int_equal(mkfifo(path, 0600), 0);
    buf = (void *)1;
    len = 7;
    assert_int_equal(vf_read_regular(path, &buf, &len, &err), VF_EINVAL);   /* must not block */
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err.msg, "is a pipe (FIFO), not a file"));
    snprintf(path, sizeof path, "%s/none", root);
    assert_int_equal(vf_read_regular(path, &buf, &len, NULL), VF_ENOENT);   /* err may be NULL */
    assert_null(buf);
}

/* Messages show control characters of a file name instead of passing them to the terminal. */
static void messages_escape_controls(void **state)
{
    (void)state;
    char s[64];
    snprintf(s, sizeof s, "plain\ttab\nline \xc3\xa9t\xc3\xa9");   /* kept as they are */
    vf_escape_controls(s, sizeof s);
    assert_string_equal(s, "plain\ttab\nline \xc3\xa9t\xc3\xa9");
    snprintf(s, sizeof s, "a\x1b[2Jb\rc\x7f" "d\xc2\x9b" "1m\xc2\xa0");   /* ESC, CR, DEL, CSI */
    vf_escape_controls(s, sizeof s);
    assert_string_equal(s, "a\\x1B[2Jb\\x0Dc\\x7Fd\\xC2\\x9B1m\xc2\xa0");   /* NBSP is text */
    char small[12] = "ab\x1b\x1b\x1b";   /* what does not fit is cut whole, never half */
    vf_escape_controls(small, sizeof small);
    assert_string_equal(small, "ab\\x1B\\x1B");
    /* invalid UTF-8 (a lone C1 byte, Latin-1, an overlong NUL, a surrogate, a cut sequence) is
     * escaped byte by byte: every message is a valid JSON string */
    snprintf(s, sizeof s, "h\x85-\xff-\xc0\x80-\xed\xa0\x80-\xe2\x82");
    vf_escape_controls(s, sizeof s);
    assert_string_equal(s, "h\\x85-\\xFF-\\xC0\\x80-\\xED\\xA0\\x80-\\xE2\\x82");
    snprintf(s, sizeof s, "\xf0\x9f\x8e\x9e \xe2\x82\xac \xf4\x8f\xbf\xbf");   /* kept */
    vf_escape_controls(s, sizeof s);
    assert_string_equal(s, "\xf0\x9f\x8e\x9e \xe2\x82\xac \xf4\x8f\xbf\xbf");
    char cut[11] = "\x1b\x1b\xe2\x82\xac";   /* 8 bytes of escapes, then a 3-byte character */
    vf_escape_controls(cut, sizeof cut);
    assert_string_equal(cut, "\\x1B\\x1B");   /* 10 would split the euro sign: it goes whole */
    struct vf_error err = {0};
    vf_error_set(&err, VF_ENOENT, "%s: no such file", "x\x1b]0;title\x07.mkv");
    assert_string_equal(err.msg, "x\\x1B]0;title\\x07.mkv: no such file");
    vf_error_prefix(&err, "input %s", "\x1b");
    assert_string_equal(err.msg, "input \\x1B: x\\x1B]0;title\\x07.mkv: no such file");
    /* advice appended after a callee's message; the code stays */
    vf_error_set(&err, VF_ENOENT, "ref.png: No such file");
    vf_error_prefix(&err, "the %s cannot be read", "reference");
    assert_int_equal(vf_error_suffix(&err, "; check the path in %s", "f.yaml"), VF_ENOENT);
    assert_string_equal(err.msg, "the reference cannot be read: ref.png: No such file; check the "
                                 "path in f.yaml");
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/vf_test_common.%d", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mem_available_v2),
        cmocka_unit_test(mem_available_v1),
        cmocka_unit_test(mem_available_unknown_and_here),
        cmocka_unit_test(write_all_through_short_writes),
        cmocka_unit_test(open_regular_only),
        cmocka_unit_test(read_regular_whole),
        cmocka_unit_test(messages_escape_controls),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return rc;
}
