// needs: media
/*
 * tests/test_decode.c: frame-exact decoding (shard.h "decode", docs/MEDIA.md "Seeking").
 *
 * For every file in testdata/codecs/: a plain single-threaded libavcodec decode (the ground
 * truth, written here independently of shard/decode.c) hashes each frame's luma; vaefarm's
 * sequential read must match it frame by frame; then 50 seeks (fixed seed: frame 0, the last
 * frame, keyframes, frames either side of keyframes, random frames, in a shuffled order) each
 * read 1..5 frames that must be bit-identical to the sequential decode's frames.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "shard/shard.h"
#include "tests/media_ref.h"

#define N_SEEKS 50

static const char *data_dir(void)
{
    const char *d = getenv("VF_TEST_DATA");
    return d && d[0] ? d : VF_TEST_DATA;
}

static void codec_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/codecs/%s", data_dir(), name);
}

/* FNV-1a 64 over the visible luma samples, row by row (stride padding excluded). */
static uint64_t hash_plane(const uint8_t *p, int stride, int width_bytes, int height)
{
    uint64_t h = 1469598103934665603ULL;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width_bytes; x++) {
            h ^= p[(size_t)y * stride + x];
            h *= 1099511628211ULL;
        }
    return h;
}

/* Ground truth (tests/media_ref.h): a plain single-threaded libavcodec decode; hash each
 * output frame's Y plane, in output order. Returns the frame count. */
struct ref_hashes {
    uint64_t *h;
    int64_t cap;
};

static void hash_ref_frame(const AVFrame *fr, int64_t n, void *opaque)
{
    struct ref_hashes *r = opaque;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fr->format);
    int bps = d->comp[0].depth > 8 ? 2 : 1;
    if (n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->h = realloc(r->h, (size_t)r->cap * sizeof *r->h);
        assert_non_null(r->h);
    }
    r->h[n] = hash_plane(fr->data[0], fr->linesize[0], fr->width * bps, fr->height);
}

static int64_t reference_decode(const char *path, uint64_t **hashes)
{
    struct ref_hashes r = {0};
    int64_t n = media_ref_decode(path, hash_ref_frame, &r);
    assert_true(n >= 0);
    *hashes = r.h;
    return n;
}

static uint64_t hash_frame(const struct vf_frame *f)
{
    return hash_plane(f->luma, f->luma_stride, f->width * (f->luma_bits > 8 ? 2 : 1), f->height);
}

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* 50 start frames: 0, the last, keyframes and their neighbours, then random; shuffled. */
static int pick_starts(const struct vf_media_info *info, int64_t *starts)
{
    int n = 0;
    int64_t f = info->frames;
    starts[n++] = 0;
    starts[n++] = f - 1;
    for (int64_t i = 1; i < f && n + 3 <= N_SEEKS - 10; i++)
        if (info->key[i]) {
            starts[n++] = i;
            starts[n++] = i - 1;
            if (i + 1 < f)
                starts[n++] = i + 1;
        }
    while (n < N_SEEKS)
        starts[n++] = (int64_t)(rng() % (uint32_t)f);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng() % (uint32_t)(i + 1));
        int64_t t = starts[i];
        starts[i] = starts[j];
        starts[j] = t;
    }
    return n;
}

static void check_path(const char *path, const char *name)
{
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    int rc = vf_shard_probe(&info, path, &err);
    if (rc < 0)
        fail_msg("probe %s: %s", path, err.msg);

    uint64_t *truth = NULL;
    int64_t n_truth = reference_decode(path, &truth);
    assert_int_equal(n_truth, info->frames);

    /* sequential, threaded: must equal the plain single-threaded decode */
    struct vf_decoder *dec = NULL;
    if (vf_shard_decoder_create(&dec, info, VF_DECODE_LUMA, &err) < 0)
        fail_msg("decoder %s: %s", name, err.msg);
    uint64_t *seq = calloc((size_t)info->frames, sizeof *seq);
    struct vf_frame fr;
    int64_t n = 0;
    double t0 = vf_now();
    while ((rc = vf_shard_decoder_read(dec, &fr, &err)) == 1) {
        assert_int_equal(fr.index, n);
        assert_int_equal(fr.pts, info->pts[n]);
        assert_int_equal(fr.width, info->width);
        assert_int_equal(fr.height, info->height);
        assert_int_equal(fr.luma_bits, info->bits_per_sample);
        assert_true(fr.luma_stride >= fr.width * (fr.luma_bits > 8 ? 2 : 1));
        seq[n] = hash_frame(&fr);
        /* the plain decode hashes the native first plane: comparable when luma is that plane */
        if (fr.luma == fr.av->data[0] && seq[n] != truth[n])
            fail_msg("%s: sequential frame %" PRId64 " differs from the plain decode", name, n);
        n++;
    }
    double seq_ms = (vf_now() - t0) * 1000.0 / (double)(n ? n : 1);
    if (rc < 0)
        fail_msg("read %s: %s", name, err.msg);
    assert_int_equal(n, info->frames);
    assert_int_equal(vf_shard_decoder_read(dec, &fr, &err), 0); /* stays at the end */
    /* and comes back from it */
    assert_int_equal(vf_shard_decoder_seek(dec, info->frames / 2, &err), 0);
    assert_int_equal(vf_shard_decoder_read(dec, &fr, &err), 1);
    assert_int_equal(fr.index, info->frames / 2);
    assert_true(hash_frame(&fr) == seq[info->frames / 2]);
    vf_shard_decoder_destroy(&dec);
    assert_null(dec);

    /* 50 seeks on one decoder, in shuffled order (forward and backward) */
    int64_t starts[N_SEEKS];
    int n_starts = pick_starts(info, starts);
    if (vf_shard_decoder_create(&dec, info, VF_DECODE_LUMA, &err) < 0)
        fail_msg("decoder %s: %s", name, err.msg);
    int ok = 0;
    double total = 0;
    for (int s = 0; s < n_starts; s++) {
        int64_t start = starts[s];
        int len = 1 + (int)(rng() % 5);
        double t1 = vf_now();
        if (vf_shard_decoder_seek(dec, start, &err) < 0)
            fail_msg("%s: seek to %" PRId64 ": %s", name, start, err.msg);
        bool same = true;
        for (int k = 0; k < len && start + k < info->frames; k++) {
            rc = vf_shard_decoder_read(dec, &fr, &err);
            if (rc != 1)
                fail_msg("%s: read after seek to %" PRId64 ": rc %d %s", name, start, rc, err.msg);
            assert_int_equal(fr.index, start + k);
            if (hash_frame(&fr) != seq[start + k]) {
                same = false;
                print_message("%s: seek to %" PRId64 ": frame %" PRId64 " differs (key[start]=%d)\n",
                              name, start, start + k, info->key[start]);
            }
        }
        total += vf_now() - t1;
        ok += same;
    }
    /* past the end and before the start are errors */
    assert_int_equal(vf_shard_decoder_seek(dec, info->frames, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_int_equal(vf_shard_decoder_seek(dec, -1, &err), VF_EINVAL);
    print_message("%s: %d/%d seeks bit-identical, mean seek+decode %.1f ms (%" PRId64
                  " frames, %" PRId64 " keyframes, sequential %.2f ms/frame)\n",
                  name, ok, n_starts, total * 1000.0 / n_starts, info->frames, info->keyframes, seq_ms);
    assert_int_equal(ok, n_starts);
    vf_shard_decoder_destroy(&dec);
    free(seq);
    free(truth);
    vf_shard_media_info_destroy(&info);
}

static void check_codec(const char *name)
{
    char path[4096];
    codec_path(path, sizeof path, name);
    check_path(path, name);
}

static void decode_h264_open_gop_seeks_are_bit_identical(void **state) { (void)state; check_codec("h264.mkv"); }
static void decode_hevc_open_gop_seeks_are_bit_identical(void **state) { (void)state; check_codec("hevc.mkv"); }
static void decode_mpeg2_ts_seeks_are_bit_identical(void **state) { (void)state; check_codec("mpeg2.ts"); }
static void decode_prores_seeks_are_bit_identical(void **state) { (void)state; check_codec("prores.mov"); }
static void decode_ffv1_seeks_are_bit_identical(void **state) { (void)state; check_codec("ffv1.mkv"); }
static void decode_ffv1_gray_seeks_are_bit_identical(void **state) { (void)state; check_codec("ffv1_gray.mkv"); }
static void decode_mjpeg_seeks_are_bit_identical(void **state) { (void)state; check_codec("mjpeg.avi"); }
static void decode_rgb_source_seeks_are_bit_identical(void **state) { (void)state; check_codec("ffv1_rgb.mkv"); }
static void decode_mp4_edit_list_seeks_are_bit_identical(void **state) { (void)state; check_codec("h264.mp4"); }
static void decode_vfr_seeks_are_bit_identical(void **state) { (void)state; check_codec("vfr.mkv"); }
/* h264.mkv cut at 1.3 s with -c copy: an edit list hides the lead-in (discarded packets, the
 * first GOP's keyframe among them), so the first frames shown depend on hidden packets */
static void decode_mp4_trimmed_by_edit_list_seeks_are_bit_identical(void **state) { (void)state; check_codec("trim.mp4"); }

/* A real clip (MPEG-1 program stream, material/10_fetch.sh; always there with the fixture). */
static void decode_real_mpeg_ps_clip_seeks_are_bit_identical(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/clips/cityCC0.mpg", data_dir());
    media_ref_require(path);
    check_path(path, "cityCC0.mpg");
}

/* An RGB source: luma is converted (not the native first plane, which is G), once, into the
 * decoder's own buffer, as Y' = 0.299 R + 0.587 G + 0.114 B (BT.601 below 720 lines), full range. */
static void decode_rgb_source_luma_is_converted(void **state)
{
    (void)state;
    char path[4096];
    codec_path(path, sizeof path, "ffv1_rgb.mkv");
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    if (vf_shard_probe(&info, path, &err) < 0)
        fail_msg("probe %s: %s", path, err.msg);
    struct vf_decoder *dec = NULL;
    assert_int_equal(vf_shard_decoder_create(&dec, info, VF_DECODE_LUMA | VF_DECODE_RGB, &err), 0);
    struct vf_frame f;
    const uint8_t *first = NULL;
    int worst = 0;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(vf_shard_decoder_read(dec, &f, &err), 1);
        assert_int_equal(f.luma_bits, 8);
        assert_ptr_not_equal(f.luma, f.av->data[0]);
        if (!first)
            first = f.luma;
        assert_ptr_equal(f.luma, first); /* one buffer, allocated at create */
        for (int y = 0; y < f.height; y++)
            for (int x = 0; x < f.width; x++) {
                /* the source's own R, G, B (an RGB source converts to RGB losslessly) */
                double r = f.rgb[0][y * f.rgb_stride + x];
                double g = f.rgb[1][y * f.rgb_stride + x];
                double b = f.rgb[2][y * f.rgb_stride + x];
                int want = (int)(0.299 * r + 0.587 * g + 0.114 * b + 0.5);
                int d = abs(want - f.luma[y * f.luma_stride + x]);
                worst = d > worst ? d : worst;
            }
    }
    print_message("ffv1_rgb.mkv (%s): luma vs BT.601 full-range Y': max |diff| %d\n",
                  info->pix_fmt, worst);
    assert_true(worst <= 2);
    vf_shard_decoder_destroy(&dec);
    vf_shard_media_info_destroy(&info);
}

/* VF_DECODE_RGB equals swscale of the native frame with the stream's matrix and range, into
 * planar RGB (8-bit, or 16-bit for deeper sources); a grey source gives R = G = B. */
static void check_rgb(const char *name, int want_bits, bool grey)
{
    char path[4096];
    codec_path(path, sizeof path, name);
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    if (vf_shard_probe(&info, path, &err) < 0)
        fail_msg("probe %s: %s", path, err.msg);
    struct vf_decoder *dec = NULL;
    if (vf_shard_decoder_create(&dec, info, VF_DECODE_LUMA | VF_DECODE_RGB, &err) < 0)
        fail_msg("decoder %s: %s", name, err.msg);
    assert_int_equal(vf_shard_decoder_seek(dec, info->frames / 2, &err), 0);
    struct vf_frame f;
    assert_int_equal(vf_shard_decoder_read(dec, &f, &err), 1);
    assert_int_equal(f.rgb_bits, want_bits);
    int bps = want_bits > 8 ? 2 : 1;
    assert_true(f.rgb_stride >= f.width * bps);
    for (int c = 0; c < 3; c++)
        assert_non_null(f.rgb[c]);

    /* independent conversion */
    enum AVPixelFormat src = f.av->format;
    int full = f.av->color_range == AVCOL_RANGE_JPEG || src == AV_PIX_FMT_YUVJ420P;
    if (src == AV_PIX_FMT_YUVJ420P)
        src = AV_PIX_FMT_YUV420P;
    enum AVPixelFormat dst = want_bits > 8 ? AV_PIX_FMT_GBRP16 : AV_PIX_FMT_GBRP;
    struct SwsContext *sws = sws_getContext(f.width, f.height, src, f.width, f.height, dst,
                                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT |
                                                SWS_FULL_CHR_H_INP | SWS_BITEXACT,
                                            NULL, NULL, NULL);
    assert_non_null(sws);
    const int *coef = sws_getCoefficients(f.height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601);
    if (f.av->colorspace == AVCOL_SPC_BT709)
        coef = sws_getCoefficients(SWS_CS_ITU709);
    sws_setColorspaceDetails(sws, coef, full, coef, 1, 0, 1 << 16, 1 << 16);
    uint8_t *planes[4];
    int ls[4];
    assert_true(av_image_alloc(planes, ls, f.width, f.height, dst, 64) >= 0);
    sws_scale(sws, (const uint8_t *const *)f.av->data, f.av->linesize, 0, f.height, planes, ls);
    const uint8_t *want[3] = {planes[2], planes[0], planes[1]}; /* GBRP: G, B, R */
    long diff_rg = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < f.height; y++)
            assert_memory_equal(f.rgb[c] + (size_t)y * f.rgb_stride, want[c] + (size_t)y * ls[0],
                                (size_t)f.width * bps);
    for (int y = 0; y < f.height; y++)
        diff_rg += memcmp(f.rgb[0] + (size_t)y * f.rgb_stride, f.rgb[1] + (size_t)y * f.rgb_stride,
                          (size_t)f.width * bps) != 0;
    if (grey)
        assert_int_equal(diff_rg, 0);
    else
        assert_true(diff_rg > 0);
    av_freep(&planes[0]);
    sws_freeContext(sws);
    vf_shard_decoder_destroy(&dec);
    vf_shard_media_info_destroy(&info);
}

static void decode_rgb_8bit_matches_swscale(void **state) { (void)state; check_rgb("ffv1.mkv", 8, false); }
static void decode_rgb_10bit_gives_16bit_planes(void **state) { (void)state; check_rgb("prores.mov", 16, false); }
static void decode_rgb_grey_source_is_neutral(void **state) { (void)state; check_rgb("ffv1_gray.mkv", 8, true); }

int main(void)
{
    /* decoding the leading pictures of an open GOP after a seek makes FFmpeg complain about
     * missing references (those frames are discarded); keep the test output readable */
    av_log_set_level(AV_LOG_FATAL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_h264_open_gop_seeks_are_bit_identical),
        cmocka_unit_test(decode_hevc_open_gop_seeks_are_bit_identical),
        cmocka_unit_test(decode_mpeg2_ts_seeks_are_bit_identical),
        cmocka_unit_test(decode_prores_seeks_are_bit_identical),
        cmocka_unit_test(decode_ffv1_seeks_are_bit_identical),
        cmocka_unit_test(decode_ffv1_gray_seeks_are_bit_identical),
        cmocka_unit_test(decode_mjpeg_seeks_are_bit_identical),
        cmocka_unit_test(decode_rgb_source_seeks_are_bit_identical),
        cmocka_unit_test(decode_mp4_edit_list_seeks_are_bit_identical),
        cmocka_unit_test(decode_vfr_seeks_are_bit_identical),
        cmocka_unit_test(decode_mp4_trimmed_by_edit_list_seeks_are_bit_identical),
        cmocka_unit_test(decode_real_mpeg_ps_clip_seeks_are_bit_identical),
        cmocka_unit_test(decode_rgb_source_luma_is_converted),
        cmocka_unit_test(decode_rgb_8bit_matches_swscale),
        cmocka_unit_test(decode_rgb_10bit_gives_16bit_planes),
        cmocka_unit_test(decode_rgb_grey_source_is_neutral),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
