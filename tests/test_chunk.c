// needs: media
/*
 * tests/test_chunk.c: the node's chunk pipeline (node.h "chunk pipeline", docs/NODE.md) on the
 * standard test film (tests/MATERIAL.md: films/film_grey.mkv, FFV1 gray, BT.601 limited range),
 * with a random `tiny` network at a small inference size. The film is planned from a film.yaml
 * (its 6 shots listed, chunks of 10 kept frames with 4 warm-up frames); two adjacent chunks of
 * shot 2 ([65, 215)) are colorized: chunk A = [65, 75) (the shot's first, no warm-up) and
 * chunk B = [75, 85) with warm-up [71, 75). Checked: frame counts and every pts (no warm-up
 * frame in the output), the output's luma is the input's bit for bit (FFV1 is lossless), the
 * chroma is not neutral, the same chunk twice gives the same bytes, a missing film leaves no
 * file; the reference loader (identity at the native size, area average at half size).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "media_ref.h"
#include "node/node.h"

#define IH 72   /* inference size: the film's 16:9, multiples of 8 */
#define IW 128
#define FILMS VF_TEST_DATA "/films"

static char workdir[512];
static struct vf_film *film;
static struct vf_media_info *info;
static struct vf_plan *plan;
static struct vf_net *net;
static struct vf_backend *be;
static struct vf_colorizer *cz;
static float ref_rgb[3 * IH * IW];
static const struct vf_chunk *chunk_a, *chunk_b;
static struct vf_encode_spec spec;

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static void check_ok(int rc, const struct vf_error *err)
{
    if (rc < 0)
        fail_msg("rc %d: %s", rc, err->msg);
}

static int setup(void **state)
{
    (void)state;
    struct vf_error err = {0};
    media_ref_require(FILMS "/film_grey.mkv");
    snprintf(workdir, sizeof workdir, "/tmp/vf_test_chunk_XXXXXX");
    assert_non_null(mkdtemp(workdir));
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "version: 1\n"
             "input: film_grey.mkv\n"
             "output: %s/out.mkv\n"
             "shots:\n"
             "  detect: off\n"
             "  list:\n"
             "    - { start: 0, end: 50, reference: film_ref_0.png }\n"
             "    - { start: 50, end: 65, reference: film_ref_1.png }\n"
             "    - { start: 65, end: 215, reference: film_ref_2.png }\n"
             "    - { start: 215, end: 245, reference: film_ref_3.png }\n"
             "    - { start: 245, end: 265, reference: film_ref_4.png }\n"
             "    - { start: 265, end: 300, reference: film_ref_5.png }\n"
             "chunks: { length: 10, warmup: 4 }\n"
             "encode: { codec: ffv1 }\n",
             workdir);
    check_ok(vf_config_load_string(&film, yaml, strlen(yaml), "film.yaml", FILMS, &err), &err);
    check_ok(vf_shard_probe(&info, film->input, &err), &err);
    spec = (struct vf_encode_spec){.codec = film->codec, .pix_fmt = film->pix_fmt,
                                   .options = film->encode_options,
                                   .n_options = film->n_encode_options};
    check_ok(vf_shard_encoder_check(&spec, info, &err), &err);
    check_ok(vf_shard_plan_create(&plan, film, info, NULL, 0, &err), &err);
    for (size_t i = 0; i < plan->n_chunks; i++) {
        const struct vf_chunk *c = &plan->chunks[i];
        if (c->start == 65)
            chunk_a = c;
        if (c->start == 75)
            chunk_b = c;
    }
    assert_non_null(chunk_a);
    assert_non_null(chunk_b);
    assert_int_equal(chunk_a->warm_start, 65);
    assert_int_equal(chunk_a->end, 75);
    assert_int_equal(chunk_b->warm_start, 71);
    assert_int_equal(chunk_b->end, 85);
    assert_int_equal(chunk_a->shot, chunk_b->shot);

    struct vf_arch arch;
    check_ok(vf_arch_preset("tiny", &arch, &err), &err);
    check_ok(vf_net_random(&arch, 7, &net, &err), &err);
    struct vf_backend_opts bo = {.device = VF_DEVICE_CPU, .threads = 2};
    check_ok(vf_backend_create(&be, &bo, &err), &err);
    struct vf_colorizer_opts co = {.be = be, .precision = VF_F32, .h = IH, .w = IW};
    vf_node_colorizer_opts(info, &co);
    assert_int_equal(co.full_w, 320);
    assert_int_equal(co.full_h, 180);
    assert_true(fabsf(co.kr - 0.299f) < 1e-6f && fabsf(co.kb - 0.114f) < 1e-6f); /* smpte170m */
    check_ok(vf_colorizer_create(&cz, net, &co, &err), &err);
    check_ok(vf_node_load_reference(chunk_a->reference, IH, IW, ref_rgb, &err), &err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vf_colorizer_destroy(&cz);
    vf_backend_destroy(&be);
    vf_net_free(&net);
    vf_shard_plan_destroy(&plan);
    vf_shard_media_info_destroy(&info);
    vf_config_destroy(&film);
    DIR *d = opendir(workdir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof p, "%s/%s", workdir, e->d_name);
                unlink(p);
            }
        closedir(d);
        rmdir(workdir);
    }
    return 0;
}

static struct vf_chunk_job job_for(const struct vf_chunk *c, const char *segment)
{
    return (struct vf_chunk_job){.info = info, .chunk = c, .encode = &spec, .segment = segment,
                                 .colorizer = cz, .h = IH, .w = IW, .reference_rgb = ref_rgb};
}

/* ---- decoded frames of a file, [first, first + n) --------------------------------------- */

struct grab {
    int64_t first, n, got;
    int w, h;
    uint8_t *y, *cb, *cr;       /* n × w × h, 8-bit (the film and its default output) */
    int64_t *pts;
    int format;
};

static void grab_frame(const AVFrame *f, int64_t index, void *opaque)
{
    struct grab *g = opaque;
    g->got++;
    if (index < g->first || index >= g->first + g->n)
        return;
    int64_t k = index - g->first;
    g->format = f->format;
    g->pts[k] = f->pts;
    for (int y = 0; y < g->h; y++) {
        memcpy(g->y + (size_t)(k * g->h + y) * g->w, f->data[0] + (size_t)y * f->linesize[0], g->w);
        if (f->format == AV_PIX_FMT_YUV444P) {
            memcpy(g->cb + (size_t)(k * g->h + y) * g->w, f->data[1] + (size_t)y * f->linesize[1], g->w);
            memcpy(g->cr + (size_t)(k * g->h + y) * g->w, f->data[2] + (size_t)y * f->linesize[2], g->w);
        }
    }
}

static void grab_init(struct grab *g, int64_t first, int64_t n)
{
    *g = (struct grab){.first = first, .n = n, .w = info->width, .h = info->height};
    size_t sz = (size_t)n * g->w * g->h;
    g->y = calloc(sz, 1);
    g->cb = calloc(sz, 1);
    g->cr = calloc(sz, 1);
    g->pts = calloc((size_t)n, sizeof *g->pts);
    assert_true(g->y && g->cb && g->cr && g->pts);
}

static void grab_free(struct grab *g)
{
    free(g->y);
    free(g->cb);
    free(g->cr);
    free(g->pts);
}

/* The segment of chunk c: exactly end − start frames with the source's pts, the source's luma
 * bit for bit, chroma that is not neutral. */
static void check_segment(const char *path, const struct vf_chunk *c)
{
    int64_t n = c->end - c->start;
    struct grab src, seg;
    grab_init(&src, c->start, n);
    grab_init(&seg, 0, n);
    assert_true(media_ref_decode(info->path, grab_frame, &src) == info->frames);
    assert_int_equal(media_ref_decode(path, grab_frame, &seg), n);
    assert_int_equal(seg.format, AV_PIX_FMT_YUV444P); /* ffv1's default for an 8-bit film */

    /* pts: the source's own (Matroska, 1/1000 on both sides). Not checked with vf_shard_probe:
     * it takes a segment that starts after 0 for a truncated file (docs/NODE.md, "Gaps"). */
    for (int64_t k = 0; k < n; k++) {
        assert_int_equal(seg.pts[k], src.pts[k]);
        assert_int_equal(seg.pts[k], info->pts[c->start + k]);
    }

    size_t sz = (size_t)n * seg.w * seg.h;
    assert_memory_equal(seg.y, src.y, sz);
    size_t coloured = 0, out_of_range = 0;
    for (size_t i = 0; i < sz; i++) {
        coloured += seg.cb[i] != 128 || seg.cr[i] != 128;
        out_of_range += seg.cb[i] < 16 || seg.cb[i] > 240 || seg.cr[i] < 16 || seg.cr[i] > 240;
    }
    print_message("  %s: %zu of %zu pixels off neutral chroma\n", path, coloured, sz);
    assert_true(coloured > sz / 10);
    assert_int_equal(out_of_range, 0);
    grab_free(&src);
    grab_free(&seg);
}

static void print_times(const char *what, const struct vf_chunk_result *r)
{
    print_message("  %s: %lld decoded (%lld warm-up), %lld kept; decode %.3f s, infer %.3f s, "
                  "encode %.3f s, total %.3f s (%.1f ms/frame)\n",
                  what, (long long)r->frames_decoded, (long long)r->frames_warmup,
                  (long long)r->frames_kept, r->t_decode, r->t_infer, r->t_encode, r->t_total,
                  1e3 * r->t_total / (double)r->frames_decoded);
}

static void test_two_chunks(void **state)
{
    (void)state;
    struct vf_error err = {0};
    char pa[600], pb[600], pb2[600];
    snprintf(pa, sizeof pa, "%s/%05d.mkv", workdir, chunk_a->id);
    snprintf(pb, sizeof pb, "%s/%05d.mkv", workdir, chunk_b->id);
    snprintf(pb2, sizeof pb2, "%s/%05d.again.mkv", workdir, chunk_b->id);

    struct vf_chunk_job ja = job_for(chunk_a, pa), jb = job_for(chunk_b, pb);
    struct vf_chunk_result ra, rb, rb2;
    check_ok(vf_node_colorize_chunk(&ja, &ra, &err), &err);
    check_ok(vf_node_colorize_chunk(&jb, &rb, &err), &err);
    print_times("chunk A [65, 75)", &ra);
    print_times("chunk B [71|75, 85)", &rb);

    assert_int_equal(ra.frames_decoded, 10);
    assert_int_equal(ra.frames_warmup, 0);
    assert_int_equal(ra.frames_kept, 10);
    assert_null(ra.warm_ab);
    assert_non_null(ra.last_ab);
    assert_int_equal(rb.frames_decoded, 14);
    assert_int_equal(rb.frames_warmup, 4);
    assert_int_equal(rb.frames_kept, 10);
    assert_non_null(rb.warm_ab);

    assert_true(exists(pa) && exists(pb));
    char sum[65];
    check_ok(vf_shard_file_checksum(pb, sum, &err), &err);
    assert_string_equal(sum, rb.checksum);
    check_segment(pa, chunk_a);
    check_segment(pb, chunk_b); /* its first pts is frame 75's: the warm-up is not there */

    /* seam error at frame 74: A's kept output against B's last warm-up output */
    double seam = vf_node_seam_error(ra.last_ab, rb.warm_ab, IH, IW);
    print_message("  seam error at frame 74 (4 warm-up frames, random weights): %.4f ab\n", seam);
    assert_true(isfinite(seam));

    /* a warm-up that reaches back to the shot's first frame replays chunk A exactly: its last
     * warm-up ab (frame 74) is A's last kept ab, bit for bit (reset + recurrence + determinism) */
    char pc[600];
    snprintf(pc, sizeof pc, "%s/full_warmup.mkv", workdir);
    struct vf_chunk full = *chunk_b;
    full.warm_start = chunk_a->start;
    struct vf_chunk_job jc = job_for(&full, pc);
    struct vf_chunk_result rc_;
    check_ok(vf_node_colorize_chunk(&jc, &rc_, &err), &err);
    assert_int_equal(rc_.frames_warmup, 10);
    assert_memory_equal(rc_.warm_ab, ra.last_ab, sizeof(float) * 2 * IH * IW);
    print_message("  seam error with the warm-up from the shot's start: %.4f ab\n",
                  vf_node_seam_error(ra.last_ab, rc_.warm_ab, IH, IW));
    vf_node_chunk_result_free(&rc_);

    /* the same chunk again: the same bytes */
    struct vf_chunk_job jb2 = job_for(chunk_b, pb2);
    check_ok(vf_node_colorize_chunk(&jb2, &rb2, &err), &err);
    assert_string_equal(rb2.checksum, rb.checksum);
    check_ok(vf_shard_file_checksum(pb2, sum, &err), &err);
    assert_string_equal(sum, rb.checksum);
    assert_memory_equal(rb2.warm_ab, rb.warm_ab, sizeof(float) * 2 * IH * IW);

    vf_node_chunk_result_free(&ra);
    vf_node_chunk_result_free(&rb);
    vf_node_chunk_result_free(&rb2);
}

/* No file of the segment's, final or temporary, in the work folder. */
static void assert_no_segment_files(const char *name)
{
    DIR *d = opendir(workdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, name, strlen(name)))
            fail_msg("%s/%s left behind", workdir, e->d_name);
    closedir(d);
}

static void test_missing_film(void **state)
{
    (void)state;
    struct vf_error err = {0};
    char seg[600], saved[sizeof info->path];
    snprintf(seg, sizeof seg, "%s/missing.mkv", workdir);
    memcpy(saved, info->path, sizeof saved);
    snprintf(info->path, sizeof info->path, "%s/no_such_film.mkv", workdir);
    struct vf_chunk_job j = job_for(chunk_b, seg);
    struct vf_chunk_result r;
    int rc = vf_node_colorize_chunk(&j, &r, &err);
    memcpy(info->path, saved, sizeof saved);
    assert_true(rc < 0);
    print_message("  error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "no_such_film.mkv"));
    assert_non_null(strstr(err.msg, "chunk"));
    assert_null(r.warm_ab);
    assert_null(r.last_ab);
    assert_false(exists(seg));
    assert_no_segment_files("missing.mkv");

    /* a bad chunk range is refused before anything is opened */
    struct vf_chunk bad = *chunk_b;
    bad.end = info->frames + 1;
    j.chunk = &bad;
    rc = vf_node_colorize_chunk(&j, &r, &err);
    assert_int_equal(rc, VF_EINVAL);
    assert_false(exists(seg));

    /* a missing reference image */
    static float buf[3 * 8 * 8];
    rc = vf_node_load_reference(VF_TEST_DATA "/films/no_such_ref.png", 8, 8, buf, &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.msg, "no_such_ref.png"));
}

/* The reference loader: at the image's own size the identity (rgb/255), at half size the mean
 * of each 2×2 block (area average). */
struct rgb_grab {
    int w, h;
    uint8_t *rgb;   /* packed rgb24 */
};

static void grab_rgb(const AVFrame *f, int64_t index, void *opaque)
{
    struct rgb_grab *g = opaque;
    if (index != 0)
        return;
    assert_int_equal(f->format, AV_PIX_FMT_RGB24);
    g->w = f->width;
    g->h = f->height;
    g->rgb = malloc((size_t)3 * g->w * g->h);
    assert_non_null(g->rgb);
    for (int y = 0; y < g->h; y++)
        memcpy(g->rgb + (size_t)3 * y * g->w, f->data[0] + (size_t)y * f->linesize[0], (size_t)3 * g->w);
}

static void test_reference_loader(void **state)
{
    (void)state;
    struct vf_error err = {0};
    struct rgb_grab g = {0};
    const char *path = FILMS "/film_ref_2.png";
    assert_int_equal(media_ref_decode(path, grab_rgb, &g), 1);
    assert_int_equal(g.w, 320);
    assert_int_equal(g.h, 180);
    float *full = malloc(sizeof(float) * 3 * 320 * 180), *half = malloc(sizeof(float) * 3 * 90 * 160);
    assert_true(full && half);
    check_ok(vf_node_load_reference(path, 180, 320, full, &err), &err);
    check_ok(vf_node_load_reference(path, 90, 160, half, &err), &err);
    double max_full = 0, max_half = 0, sat = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 180; y++)
            for (int x = 0; x < 320; x++) {
                float want = g.rgb[(size_t)3 * (y * 320 + x) + c] / 255.0f;
                max_full = fmax(max_full, fabs(full[((size_t)c * 180 + y) * 320 + x] - want));
            }
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 90; y++)
            for (int x = 0; x < 160; x++) {
                float want = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        want += g.rgb[(size_t)3 * ((2 * y + dy) * 320 + 2 * x + dx) + c] / 255.0f;
                want /= 4;
                max_half = fmax(max_half, fabs(half[((size_t)c * 90 + y) * 160 + x] - want));
            }
    for (size_t i = 0; i < (size_t)IH * IW; i++)
        sat += fabs(ref_rgb[i] - ref_rgb[(size_t)IH * IW + i]) + fabs(ref_rgb[(size_t)2 * IH * IW + i] - ref_rgb[(size_t)IH * IW + i]);
    print_message("  reference: max error %.2g (native), %.2g (half, area); mean |R-G|+|B-G| %.3f\n",
                  max_full, max_half, sat / (IH * IW));
    assert_true(max_full < 1e-6);
    assert_true(max_half < 1e-5);
    assert_true(sat / (IH * IW) > 0.01); /* a colour image, not grey */
    free(full);
    free(half);
    free(g.rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_loader),
        cmocka_unit_test(test_two_chunks),
        cmocka_unit_test(test_missing_film),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
