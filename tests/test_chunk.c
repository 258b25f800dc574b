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
 * The pipelined path (job->queue > 0: decode and encode threads around the calling thread): the
 * same bytes as queue = 0 at several depths, the progress callback (1..total, in order, on the
 * calling thread), a stop flag set from it (VF_EINTERRUPTED, nothing left, the colorizer still
 * holds its reference), errors in the decode stage (the film removed after probing, the film cut
 * short inside the chunk) and in the encode stage (the segment cannot be renamed into place)
 * with and without threads. vf_node_inference_size on synthetic films.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "media_ref.h"
#include "node/internal.h"
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
    check_ok(vf_node_load_reference(chunk_a->reference, IH, IW, ref_rgb, NULL, &err), &err);
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

/* 4:2:0 chroma rows: progressive ones average rows 2cy and 2cy+1; an interlaced picture's each
 * average two rows of one field, and together they cover every row once; the last row of an odd
 * or short picture stands alone; 4:4:4 and 4:2:2 rows are the row itself. */
static void test_chroma_rows(void **state)
{
    (void)state;
    int y0, step, n;
    static const int want_p[][4] = {{6, 0, 0, 2}, {6, 1, 2, 2}, {5, 2, 4, 1}};   /* fh, cy, y0, n */
    for (size_t i = 0; i < sizeof want_p / sizeof *want_p; i++) {
        vf_chroma_rows_(want_p[i][1], 1, false, want_p[i][0], &y0, &step, &n);
        assert_int_equal(y0, want_p[i][2]);
        assert_int_equal(step, 1);
        assert_int_equal(n, want_p[i][3]);
    }
    static const int want_i[][5] = {{8, 0, 0, 2, 2}, {8, 1, 1, 2, 2}, {8, 2, 4, 2, 2},
                                    {8, 3, 5, 2, 2}, {6, 2, 4, 2, 1}, {7, 3, 5, 2, 1},
                                    {2, 0, 0, 1, 2}};   /* fh, cy, y0, step, n */
    for (size_t i = 0; i < sizeof want_i / sizeof *want_i; i++) {
        vf_chroma_rows_(want_i[i][1], 1, true, want_i[i][0], &y0, &step, &n);
        assert_int_equal(y0, want_i[i][2]);
        assert_int_equal(step, want_i[i][3]);
        assert_int_equal(n, want_i[i][4]);
    }
    /* interlaced, a multiple of 4 rows high (as interlaced 4:2:0 pictures are): one field per
     * chroma row, every row once */
    for (int fh = 4; fh <= 64; fh += 4) {
        int seen[64] = {0};
        for (int cy = 0; cy < fh / 2; cy++) {
            vf_chroma_rows_(cy, 1, true, fh, &y0, &step, &n);
            for (int k = 0; k < n; k++) {
                assert_int_equal((y0 + k * step) % 2, cy % 2);
                seen[y0 + k * step]++;
            }
        }
        for (int y = 0; y < fh; y++)
            assert_int_equal(seen[y], 1);
    }
    vf_chroma_rows_(5, 0, true, 8, &y0, &step, &n);
    assert_int_equal(y0, 5);
    assert_int_equal(n, 1);
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
    rc = vf_node_load_reference(VF_TEST_DATA "/films/no_such_ref.png", 8, 8, buf, NULL, &err);
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
    int64_t nf = 0;   /* a picture: one frame */
    check_ok(vf_node_load_reference(path, 180, 320, full, &nf, &err), &err);
    assert_int_equal(nf, 1);
    check_ok(vf_node_load_reference(path, 90, 160, half, NULL, &err), &err);
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

/* Reference pass-through end to end (docs/NODE.md): chunk A starts at its shot's first frame,
 * whose reference (film_ref_2.png) is that frame in colour. With pass-through on, that frame's
 * output chroma is the reference's own Cb, Cr (BT.601 limited, as the segment is), from the
 * full-size reference; the next frames go through the (random) network. */
static void test_passthrough(void **state)
{
    (void)state;
    struct vf_error err = {0};
    struct vf_colorizer *pt = NULL;
    struct vf_colorizer_opts co = {.be = be, .precision = VF_F32, .h = IH, .w = IW,
                                   .passthrough = true};
    vf_node_colorizer_opts(info, &co);
    check_ok(vf_colorizer_create(&pt, net, &co, &err), &err);
    const int W = info->width, H = info->height;
    float *full = malloc(sizeof(float) * 3 * (size_t)W * H);
    assert_non_null(full);
    check_ok(vf_node_load_reference(chunk_a->reference, H, W, full, NULL, &err), &err);
    struct rgb_grab ref = {0};
    assert_int_equal(media_ref_decode(chunk_a->reference, grab_rgb, &ref), 1);

    double diff[2][2] = {{0}};   /* [pass-through off, on][frame 65, 66]: mean |Δ| of Cb, Cr */
    for (int on = 0; on < 2; on++) {
        char path[600];
        snprintf(path, sizeof path, "%s/passthrough%d.mkv", workdir, on);
        struct vf_chunk_job j = job_for(chunk_a, path);
        if (on) {
            j.colorizer = pt;
            j.reference_rgb_full = full;
        }
        struct vf_chunk_result r;
        check_ok(vf_node_colorize_chunk(&j, &r, &err), &err);
        assert_int_equal(r.frames_passthrough, on);   /* frame 65 only, and only when on */
        struct grab seg;
        grab_init(&seg, 0, 2);
        assert_int_equal(media_ref_decode(path, grab_frame, &seg), chunk_a->end - chunk_a->start);
        const float kr = 0.299f, kb = 0.114f;      /* the film's smpte170m */
        for (int k = 0; k < 2; k++) {
            double sum = 0;
            for (size_t i = 0; i < (size_t)W * H; i++) {
                const uint8_t *p = ref.rgb + 3 * i;
                float R = p[0] / 255.0f, G = p[1] / 255.0f, B = p[2] / 255.0f;
                float Y = kr * R + (1 - kr - kb) * G + kb * B;
                float cb = 128 + 224 * (B - Y) / (2 * (1 - kb)), cr = 128 + 224 * (R - Y) / (2 * (1 - kr));
                size_t at = (size_t)k * W * H + i;
                sum += fabs(seg.cb[at] - cb) + fabs(seg.cr[at] - cr);
            }
            diff[on][k] = sum / (2.0 * W * H);
        }
        grab_free(&seg);
        vf_node_chunk_result_free(&r);
        unlink(path);
    }
    print_message("  mean |chroma - the reference's| (codes), frame 65 / 66: pass-through off "
                  "%.2f / %.2f, on %.2f / %.2f; frames passed through: %ld\n", diff[0][0],
                  diff[0][1], diff[1][0], diff[1][1], vf_colorizer_times(pt)->passthrough);
    assert_int_equal(vf_colorizer_times(pt)->passthrough, 1);
    assert_true(diff[1][0] < 1.0);            /* the reference's colours, up to rounding */
    assert_true(diff[0][0] > 4.0);            /* the random network's are not */
    assert_true(diff[1][1] > 4.0);            /* frame 66 goes through the network */
    free(ref.rgb);
    free(full);
    vf_colorizer_destroy(&pt);
}

/* ---- the pipeline (job->queue > 0), progress, stop ------------------------------------- */

/* What a progress callback saw. */
struct watch {
    pthread_t caller;
    int64_t calls, last_done, total, out_of_order;
    bool other_thread;
    int64_t stop_at;            /* > 0: set *stop when done reaches it */
    atomic_int *stop;
};

static void on_progress(void *opaque, int64_t done, int64_t total)
{
    struct watch *w = opaque;
    w->calls++;
    w->out_of_order += done != w->last_done + 1;
    w->last_done = done;
    w->total = total;
    w->other_thread |= !pthread_equal(pthread_self(), w->caller);
    if (w->stop_at > 0 && done == w->stop_at)
        atomic_store(w->stop, 1);
}

static struct watch watch_new(atomic_int *stop, int64_t stop_at)
{
    return (struct watch){.caller = pthread_self(), .stop = stop, .stop_at = stop_at};
}

/* The callback saw 1..total in order, on the calling thread. */
static void check_progress(const struct watch *w, int64_t total)
{
    assert_int_equal(w->calls, total);
    assert_int_equal(w->last_done, total);
    assert_int_equal(w->total, total);
    assert_int_equal(w->out_of_order, 0);
    assert_false(w->other_thread);
}

/* No temporary file of any writer in the work folder. */
static void assert_no_tmp_files(void)
{
    DIR *d = opendir(workdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n >= 4 && !strcmp(e->d_name + n - 4, ".tmp"))
            fail_msg("%s/%s left behind", workdir, e->d_name);
    }
    closedir(d);
}

/* Chunk B at several queue depths: the same segment bytes, the same warm-up and last ab, the
 * same counts (each run's stage times are printed; docs/BENCHMARKS.md times the pipeline). */
static void test_pipeline_same_bytes(void **state)
{
    (void)state;
    struct vf_error err = {0};
    const int queues[] = {0, 4, 1, 2, 8};
    const size_t n = sizeof queues / sizeof queues[0];
    char sum0[65] = "", path[600];
    struct vf_chunk_result r0 = {0};
    for (size_t k = 0; k < n; k++) {
        int q = queues[k];
        snprintf(path, sizeof path, "%s/same_q%d_%zu.mkv", workdir, q, k);
        atomic_int stop = 0;
        struct watch w = watch_new(&stop, 0);
        struct vf_chunk_job j = job_for(chunk_b, path);
        j.queue = q;
        j.stop = &stop;
        j.progress = on_progress;
        j.progress_opaque = &w;
        struct vf_chunk_result r;
        check_ok(vf_node_colorize_chunk(&j, &r, &err), &err);
        char what[64];
        snprintf(what, sizeof what, "queue %d", q);
        print_times(what, &r);
        check_progress(&w, 14);
        assert_int_equal(r.frames_decoded, 14);
        assert_int_equal(r.frames_warmup, 4);
        assert_int_equal(r.frames_kept, 10);
        assert_true(r.t_decode > 0 && r.t_infer > 0 && r.t_encode > 0);
        char sum[65];
        check_ok(vf_shard_file_checksum(path, sum, &err), &err);
        assert_string_equal(sum, r.checksum);
        if (k == 0) {
            strcpy(sum0, r.checksum);
            r0 = r;
            print_message("  queue 0 checksum %s\n", sum0);
            continue;
        }
        assert_string_equal(r.checksum, sum0);
        assert_memory_equal(r.warm_ab, r0.warm_ab, sizeof(float) * 2 * IH * IW);
        assert_memory_equal(r.last_ab, r0.last_ab, sizeof(float) * 2 * IH * IW);
        vf_node_chunk_result_free(&r);
        unlink(path);
    }
    vf_node_chunk_result_free(&r0);

    /* a chunk without warm-up, threaded: the same bytes as chunk A's test_two_chunks run (same
     * check as there: against queue 0 here) */
    char pa0[600], pa3[600];
    snprintf(pa0, sizeof pa0, "%s/same_a_q0.mkv", workdir);
    snprintf(pa3, sizeof pa3, "%s/same_a_q3.mkv", workdir);
    struct vf_chunk_job ja0 = job_for(chunk_a, pa0), ja3 = job_for(chunk_a, pa3);
    ja3.queue = 3;
    struct vf_chunk_result ra0, ra3;
    check_ok(vf_node_colorize_chunk(&ja0, &ra0, &err), &err);
    check_ok(vf_node_colorize_chunk(&ja3, &ra3, &err), &err);
    assert_string_equal(ra0.checksum, ra3.checksum);
    assert_null(ra3.warm_ab);
    assert_memory_equal(ra0.last_ab, ra3.last_ab, sizeof(float) * 2 * IH * IW);
    vf_node_chunk_result_free(&ra0);
    vf_node_chunk_result_free(&ra3);

    /* a queue depth out of range is refused */
    struct vf_chunk_job jbad = job_for(chunk_b, path);
    struct vf_chunk_result rbad;
    jbad.queue = -1;
    assert_int_equal(vf_node_colorize_chunk(&jbad, &rbad, &err), VF_EINVAL);
    jbad.queue = 100000;
    assert_int_equal(vf_node_colorize_chunk(&jbad, &rbad, &err), VF_EINVAL);
    assert_false(exists(path));
}

/* Chunk B with a stop flag set from the progress callback at frame `stop_at` of 14 (0: set
 * before the call): VF_EINTERRUPTED, no further progress, nothing left. */
static void run_stopped(int queue, int64_t stop_at)
{
    struct vf_error err = {0};
    char name[64], path[600];
    snprintf(name, sizeof name, "stop_q%d_at%lld.mkv", queue, (long long)stop_at);
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    atomic_int stop = stop_at == 0;
    struct watch w = watch_new(&stop, stop_at);
    struct vf_chunk_job j = job_for(chunk_b, path);
    j.queue = queue;
    j.stop = &stop;
    j.progress = on_progress;
    j.progress_opaque = &w;
    struct vf_chunk_result r;
    int rc = vf_node_colorize_chunk(&j, &r, &err);
    print_message("  queue %d, stop at %lld: %s\n", queue, (long long)stop_at, err.msg);
    assert_int_equal(rc, VF_EINTERRUPTED);
    assert_int_equal(err.code, VF_EINTERRUPTED);
    char want[128];
    int64_t next = chunk_b->warm_start + stop_at; /* the frame not colorized */
    if (next < chunk_b->end)
        snprintf(want, sizeof want, "film_grey.mkv, frame %lld: interrupted", (long long)next);
    else
        snprintf(want, sizeof want, "film_grey.mkv: interrupted");
    assert_non_null(strstr(err.msg, "chunk 8 (frames [75, 85), warm-up from 71) of "));
    assert_non_null(strstr(err.msg, want));
    size_t len = strlen(err.msg);
    assert_true(len > 13 && !strcmp(err.msg + len - 13, ": interrupted"));
    assert_int_equal(w.calls, stop_at); /* checked before the next frame */
    assert_false(w.other_thread);
    assert_null(r.warm_ab);
    assert_null(r.last_ab);
    assert_false(exists(path));
    assert_no_segment_files(name);
    assert_no_tmp_files();
}

static void test_stop(void **state)
{
    (void)state;
    struct vf_error err = {0};
    char path[600];
    /* the bytes of an uninterrupted run */
    snprintf(path, sizeof path, "%s/stop_ref.mkv", workdir);
    struct vf_chunk_job j = job_for(chunk_b, path);
    struct vf_chunk_result r;
    check_ok(vf_node_colorize_chunk(&j, &r, &err), &err);
    char want[65];
    strcpy(want, r.checksum);
    vf_node_chunk_result_free(&r);

    /* in the warm-up, among the kept frames, after the last frame (before the segment is
     * closed), before the first */
    const int64_t at[] = {2, 7, 14, 0};
    const int queues[] = {0, 1, 2, 8};
    for (size_t q = 0; q < sizeof queues / sizeof queues[0]; q++)
        for (size_t k = 0; k < sizeof at / sizeof at[0]; k++)
            run_stopped(queues[q], at[k]);

    /* the colorizer still holds the shot's reference: a chunk that borrows it (reference_rgb =
     * NULL, as a rank does for the next chunk of the same shot) gives the same bytes, with and
     * without threads */
    for (int q = 0; q <= 2; q += 2) {
        snprintf(path, sizeof path, "%s/after_stop_q%d.mkv", workdir, q);
        j = job_for(chunk_b, path);
        j.reference_rgb = NULL;
        j.queue = q;
        check_ok(vf_node_colorize_chunk(&j, &r, &err), &err);
        assert_string_equal(r.checksum, want);
        vf_node_chunk_result_free(&r);
    }
}

/* The byte offset of frame `index`'s packet in a Matroska file (its packets in file order). */
static int64_t packet_pos(const char *path, int64_t index)
{
    AVFormatContext *fmt = NULL;
    assert_int_equal(avformat_open_input(&fmt, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(fmt, NULL) >= 0);
    AVPacket *pkt = av_packet_alloc();
    assert_non_null(pkt);
    int64_t pos = -1;
    while (pos < 0 && av_read_frame(fmt, pkt) >= 0) {
        if (pkt->pts == info->pts[index])
            pos = pkt->pos;
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    avformat_close_input(&fmt);
    assert_true(pos > 0);
    return pos;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_true(in && out);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    assert_int_equal(fclose(in), 0);
    assert_int_equal(fclose(out), 0);
}

/* Chunk B of a probed copy of the film (`info2`) at `queue`, expected to fail; returns rc with
 * err filled and progress in *w. Leaves nothing. */
static int run_failing(const struct vf_media_info *info2, int queue, const char *name,
                       struct watch *w, struct vf_error *err)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    *w = watch_new(NULL, 0);
    struct vf_chunk_job j = job_for(chunk_b, path);
    j.info = info2;
    j.queue = queue;
    j.progress = on_progress;
    j.progress_opaque = w;
    struct vf_chunk_result r;
    int rc = vf_node_colorize_chunk(&j, &r, err);
    print_message("  queue %d: %d frames colorized, then: %s\n", queue, (int)w->calls, err->msg);
    assert_true(rc < 0);
    assert_int_equal(err->code, rc);
    assert_non_null(strstr(err->msg, "chunk 8 (frames [75, 85), warm-up from 71) of "));
    assert_null(r.warm_ab);
    assert_null(r.last_ab);
    assert_false(exists(path));
    assert_no_segment_files(name);
    assert_no_tmp_files();
    return rc;
}

static void test_pipeline_errors(void **state)
{
    (void)state;
    struct vf_error err = {0}, err0 = {0};
    struct watch w;
    char copy[600];
    struct vf_media_info *info2 = NULL;

    /* decode: the film removed after it was probed (the decoder fails to open, in the decode
     * thread) */
    snprintf(copy, sizeof copy, "%s/gone.mkv", workdir);
    copy_file(info->path, copy);
    check_ok(vf_shard_probe(&info2, copy, &err), &err);
    assert_int_equal(unlink(copy), 0);
    int rc = run_failing(info2, 4, "gone_seg.mkv", &w, &err);
    assert_non_null(strstr(err.msg, "gone.mkv"));
    assert_int_equal(w.calls, 0);
    assert_int_equal(run_failing(info2, 0, "gone_seg.mkv", &w, &err0), rc);
    assert_string_equal(err.msg, err0.msg);
    vf_shard_media_info_destroy(&info2);

    /* decode: the film cut short inside the chunk after it was probed (chunk B decodes frames
     * 71..84 of 300; the file is cut where frame 79's packet starts): frames flow through the
     * pipeline, then the decode thread fails; the same error at the same frame as without
     * threads */
    snprintf(copy, sizeof copy, "%s/short.mkv", workdir);
    copy_file(info->path, copy);
    check_ok(vf_shard_probe(&info2, copy, &err), &err);
    assert_int_equal(truncate(copy, packet_pos(copy, 79)), 0);
    rc = run_failing(info2, 2, "short_seg.mkv", &w, &err);
    assert_true(w.calls > 0 && w.calls < 14);
    assert_non_null(strstr(err.msg, ", frame "));
    assert_int_equal(run_failing(info2, 0, "short_seg.mkv", &w, &err0), rc);
    assert_true(w.calls > 0 && w.calls < 14);
    assert_string_equal(err.msg, err0.msg);
    assert_int_equal(run_failing(info2, 8, "short_seg.mkv", &w, &err), rc);
    assert_string_equal(err.msg, err0.msg);
    vf_shard_media_info_destroy(&info2);
    unlink(copy);

    /* encode: the segment path is a folder, so the encode thread's close cannot rename the
     * segment into place; its temporary file is removed */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/dir_seg.mkv", workdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    for (int q = 0; q <= 3; q += 3) {
        struct vf_chunk_job j = job_for(chunk_b, dir);
        j.queue = q;
        struct vf_chunk_result r;
        rc = vf_node_colorize_chunk(&j, &r, &err);
        print_message("  queue %d: %s\n", q, err.msg);
        assert_true(rc < 0);
        assert_non_null(strstr(err.msg, "renaming"));
        assert_null(r.last_ab);
        assert_no_tmp_files();
        struct stat sd;
        assert_int_equal(stat(dir, &sd), 0);
        assert_true(S_ISDIR(sd.st_mode));
    }
    assert_int_equal(rmdir(dir), 0);
}

/* ---- the default inference size ---------------------------------------------------------- */

static void test_inference_size(void **state)
{
    (void)state;
    struct vf_error err = {0};
    struct vf_arch tiny, full;
    check_ok(vf_arch_preset("tiny", &tiny, &err), &err);
    check_ok(vf_arch_preset("full", &full, &err), &err);
    assert_int_equal(tiny.inference_h * tiny.inference_w, 144 * 256);
    assert_int_equal(full.inference_h * full.inference_w, 216 * 384);
    /* width, height, SAR, then h × w for tiny and for full (computed independently: the nominal
     * pixel count at the display aspect, each side rounded to the nearest multiple of 8) */
    static const struct {
        int width, height, sar_num, sar_den, th, tw, fh, fw;
    } cases[] = {
        {1920, 1080, 1, 1, 144, 256, 216, 384},  /* 16:9 */
        {1920, 1080, 0, 1, 144, 256, 216, 384},  /* SAR unknown: square */
        {320, 180, 1, 1, 144, 256, 216, 384},    /* the test film */
        {640, 480, 1, 1, 168, 224, 248, 336},    /* 4:3 */
        {720, 576, 16, 15, 168, 224, 248, 336},  /* PAL 4:3 */
        {720, 576, 64, 45, 144, 256, 216, 384},  /* PAL anamorphic 16:9 */
        {720, 480, 32, 27, 144, 256, 216, 384},  /* NTSC anamorphic 16:9 */
        {1440, 1080, 4, 3, 144, 256, 216, 384},  /* HDV: 16:9 */
        {720, 576, 4, 3, 152, 248, 224, 368},    /* SAR 4:3 on 720x576: 5:3 */
        {720, 576, 0, 0, 168, 216, 256, 320},    /* SAR 0/0: square, 5:4 */
        {512, 512, 1, 1, 192, 192, 288, 288},    /* 1:1 */
        {1998, 1080, 1, 1, 144, 264, 208, 392},  /* 1.85:1 */
        {2048, 858, 1, 1, 128, 296, 184, 448},   /* 2.39:1 */
        {10000, 10, 1, 1, 32, 6072, 32, 9104},   /* absurd: at least 32 */
        {10, 10000, 1, 1, 6072, 32, 9104, 32},
    };
    static struct vf_media_info mi;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memset(&mi, 0, sizeof mi);
        mi.width = cases[k].width;
        mi.height = cases[k].height;
        mi.sar_num = cases[k].sar_num;
        mi.sar_den = cases[k].sar_den;
        int h = 0, w = 0;
        vf_node_inference_size(&tiny, &mi, &h, &w);
        if (h != cases[k].th || w != cases[k].tw)
            fail_msg("tiny, %dx%d SAR %d:%d: %dx%d, want %dx%d", mi.width, mi.height, mi.sar_num,
                     mi.sar_den, h, w, cases[k].th, cases[k].tw);
        vf_node_inference_size(&full, &mi, &h, &w);
        if (h != cases[k].fh || w != cases[k].fw)
            fail_msg("full, %dx%d SAR %d:%d: %dx%d, want %dx%d", mi.width, mi.height, mi.sar_num,
                     mi.sar_den, h, w, cases[k].fh, cases[k].fw);
    }
    /* the probed test film (320x180) */
    int h, w;
    vf_node_inference_size(&tiny, info, &h, &w);
    assert_int_equal(h, 144);
    assert_int_equal(w, 256);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chroma_rows),
        cmocka_unit_test(test_inference_size),
        cmocka_unit_test(test_reference_loader),
        cmocka_unit_test(test_two_chunks),
        cmocka_unit_test(test_passthrough),
        cmocka_unit_test(test_missing_film),
        cmocka_unit_test(test_pipeline_same_bytes),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_pipeline_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
