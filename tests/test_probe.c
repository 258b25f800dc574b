// needs: media
/*
 * tests/test_probe.c: vf_shard_probe (shard.h "probe", docs/MEDIA.md).
 *
 * The frame count of every test codec must equal a full sequential decode's (the ground truth
 * `ffprobe -count_frames` gives, computed here with plain libavcodec); the fields must be sane;
 * bad inputs (missing, not media, no video stream, truncated) must fail with a clear message.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "shard/shard.h"
#include "tests/media_ref.h"

static const char *data_dir(void)
{
    const char *d = getenv("VF_TEST_DATA");
    return d && d[0] ? d : VF_TEST_DATA;
}

static void codec_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/codecs/%s", data_dir(), name);
}

/* Frames a full sequential decode of the best video stream outputs (ffprobe -count_frames). */
static int64_t count_decoded_frames(const char *path)
{
    return media_ref_decode(path, NULL, NULL);
}

struct expect {
    const char *file;
    const char *codec;
    const char *pix_fmt;
    int bits;
    bool b_frames;
    bool all_key;               /* intra-only codec */
};

static const struct expect expects[] = {
    {"h264.mkv", "h264", "yuv420p", 8, true, false},
    {"hevc.mkv", "hevc", "yuv420p", 8, true, false},
    {"mpeg2.ts", "mpeg2video", "yuv420p", 8, true, false},
    {"prores.mov", "prores", "yuv422p10le", 10, false, true},
    {"ffv1.mkv", "ffv1", "yuv420p", 8, false, false},
    {"ffv1_gray.mkv", "ffv1", "gray", 8, false, false},
    {"mjpeg.avi", "mjpeg", "yuvj420p", 8, false, true},
    {"ffv1_rgb.mkv", "ffv1", "bgr0", 8, false, false}, /* FFV1 decodes 8-bit RGB packed */
    {"h264.mp4", "h264", "yuv420p", 8, true, false},
};

static void probe_codecs_count_frames_like_a_full_decode(void **state)
{
    (void)state;
    char first_digest[65] = "";
    for (size_t c = 0; c < sizeof expects / sizeof expects[0]; c++) {
        const struct expect *e = &expects[c];
        char path[4096];
        codec_path(path, sizeof path, e->file);
        struct vf_error err = {0};
        struct vf_media_info *info = NULL;
        double t0 = vf_now();
        if (vf_shard_probe(&info, path, &err) < 0)
            fail_msg("probe %s: %s", path, err.msg);
        double ms = (vf_now() - t0) * 1000;
        int64_t truth = count_decoded_frames(path);
        print_message("%-14s %-10s %-16s %s %dx%d sar %d:%d %d/%d fps tb %d/%d frames %" PRId64
                      " (decode %" PRId64 ") keys %" PRId64 " b=%d vfr=%d %.3fs field %s range %s "
                      "matrix %s tc '%s' streams %d, %.0f ms\n",
                      e->file, info->codec, info->container, info->pix_fmt, info->width,
                      info->height, info->sar_num, info->sar_den, info->fps_num, info->fps_den,
                      info->tb_num, info->tb_den, info->frames, truth, info->keyframes,
                      info->has_b_frames, info->vfr, info->duration, info->field_order,
                      info->color_range, info->color_space, info->timecode, info->n_streams, ms);
        assert_int_equal(info->frames, truth);
        assert_string_equal(info->codec, e->codec);
        assert_string_equal(info->pix_fmt, e->pix_fmt);
        assert_int_equal(info->bits_per_sample, e->bits);
        assert_int_equal(info->has_b_frames, e->b_frames);
        assert_false(info->vfr);
        assert_true(info->width > 0 && info->height > 0);
        assert_int_equal(info->fps_num, 25);
        assert_int_equal(info->fps_den, 1);
        assert_true(info->tb_num > 0 && info->tb_den > 0);
        assert_true(info->container[0]);
        assert_int_equal(info->start_pts, info->pts[0]);
        double want = info->frames / 25.0;
        assert_true(info->duration > want - 0.001 && info->duration < want + 0.001);
        /* pts ascending, each frame lasting 1/25 s */
        for (int64_t i = 0; i < info->frames; i++) {
            if (i > 0)
                assert_true(info->pts[i] > info->pts[i - 1]);
            double d = info->frame_duration[i] * (double)info->tb_num / info->tb_den;
            assert_true(d > 0.0399 && d < 0.0401);
        }
        assert_int_equal(info->key[0], 1);
        int64_t keys = 0;
        for (int64_t i = 0; i < info->frames; i++)
            keys += info->key[i];
        assert_int_equal(keys, info->keyframes);
        if (e->all_key)
            assert_int_equal(info->keyframes, info->frames);
        else
            assert_true(info->keyframes > 1 && info->keyframes < info->frames / 4);
        assert_int_equal(strlen(info->video_digest), 64);
        assert_true(strcmp(info->video_digest, first_digest) != 0);
        if (!first_digest[0])
            memcpy(first_digest, info->video_digest, 65);
        assert_true(strcmp(info->field_order, "tt") && strcmp(info->field_order, "bb"));
        if (!strcmp(e->codec, "mjpeg"))
            assert_string_equal(info->color_range, "pc");
        /* the streams: this video, one audio track, maybe a timecode track (MP4) */
        assert_true(info->n_streams >= 2);
        int audio = 0;
        for (int s = 0; s < info->n_streams; s++) {
            const struct vf_stream_info *si = &info->streams[s];
            assert_int_equal(si->index, s);
            if (si->kind == VF_STREAM_AUDIO) {
                audio++;
                assert_true(si->sample_rate > 0);
                assert_true(si->channels > 0);
                assert_true(si->codec[0]);
                if (si->duration >= 0 && fabs(si->duration - info->duration) > 0.3)
                    fail_msg("%s: audio duration %.3f", e->file, si->duration);
            } else if (si->kind == VF_STREAM_VIDEO) {
                assert_int_equal(s, info->video_stream);
            } else {
                assert_int_equal(si->kind, VF_STREAM_DATA);
            }
        }
        if (!strcmp(e->file, "h264.mp4"))
            assert_string_equal(info->timecode, "10:00:00:00");
        if (!strcmp(e->file, "mpeg2.ts")) /* the GOP header's, read from the first frame */
            assert_string_equal(info->timecode, "00:00:00:00");
        assert_int_equal(audio, 1);
        vf_shard_media_info_destroy(&info);
        assert_null(info);
    }
}

/* vfr.mkv: 100 frames at 1/25 s, then 1/15 s (rounded by the encoder's time base). */
static void probe_detects_variable_frame_rate(void **state)
{
    (void)state;
    char path[4096];
    codec_path(path, sizeof path, "vfr.mkv");
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    if (vf_shard_probe(&info, path, &err) < 0)
        fail_msg("probe %s: %s", path, err.msg);
    assert_int_equal(info->frames, count_decoded_frames(path));
    assert_true(info->frames > 100);
    assert_true(info->vfr);
    assert_true(info->has_b_frames);
    double fps = (double)info->fps_num / info->fps_den;
    double span = (info->pts[info->frames - 1] + info->frame_duration[info->frames - 1] - info->pts[0]) *
                  (double)info->tb_num / info->tb_den;
    print_message("vfr.mkv: fps %d/%d (%.3f), %.3f s, first durations %" PRId64 " last %" PRId64 "\n",
                  info->fps_num, info->fps_den, fps, info->duration, info->frame_duration[0],
                  info->frame_duration[info->frames - 2]);
    assert_true(fps < 24.0 && fps > 15.0);
    assert_true(info->duration > span - 1e-6 && info->duration < span + 1e-6);
    assert_true(info->frame_duration[info->frames - 2] > info->frame_duration[0]);
    vf_shard_media_info_destroy(&info);

    /* and a constant-rate film is not VFR */
    codec_path(path, sizeof path, "h264.mkv");
    assert_int_equal(vf_shard_probe(&info, path, &err), 0);
    assert_false(info->vfr);
    vf_shard_media_info_destroy(&info);
}

/* A real clip (MPEG-1 program stream, material/10_fetch.sh; always there with the fixture). */
static void probe_real_mpeg_ps_clip_counts_like_a_full_decode(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/clips/cityCC0.mpg", data_dir());
    media_ref_require(path);
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    if (vf_shard_probe(&info, path, &err) < 0)
        fail_msg("probe %s: %s", path, err.msg);
    print_message("cityCC0.mpg: %s %s %s %dx%d %d/%d fps, %" PRId64 " frames, %" PRId64 " keys\n",
                  info->container, info->codec, info->pix_fmt, info->width, info->height,
                  info->fps_num, info->fps_den, info->frames, info->keyframes);
    assert_int_equal(info->frames, count_decoded_frames(path));
    assert_false(info->vfr);
    vf_shard_media_info_destroy(&info);
}

/* A scratch folder per test run. */
static char scratch[256];

static const char *scratch_path(const char *name)
{
    static char buf[512];
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "/tmp/vf_test_probe.XXXXXX");
        assert_non_null(mkdtemp(scratch));
    }
    snprintf(buf, sizeof buf, "%s/%s", scratch, name);
    return buf;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Copy the first `num/den` of a file's bytes. */
static void copy_prefix(const char *src, const char *dst, long num, long den)
{
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f) * num / den;
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    write_file(dst, buf, (size_t)n);
    free(buf);
}

static struct vf_media_info *probe_ok(const char *path)
{
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    if (vf_shard_probe(&info, path, &err) < 0)
        fail_msg("probe %s: %s", path, err.msg);
    return info;
}

/* Run the ffmpeg command line tool (the media fixture needs it too); fail clearly without it. */
static void run_ffmpeg(const char *args)
{
    char cmd[10100];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -hide_banner -loglevel error -y %s", args);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("`%s` failed (status %d): the ffmpeg command line tool is needed to make this "
                 "test's remuxes", cmd, rc);
}

static void copy_file(const char *src, const char *dst) { copy_prefix(src, dst, 1, 1); }

/* The digest is the input's identity for the plan hash (docs/MEDIA.md "Video digest"): the same
 * for the same file probed twice, for an identical copy under another name and for a plain
 * remux into the same container; different for another film, and for a remux that changes
 * only the stream's tags (colour range and matrix): those change the output. */
static void probe_digest_follows_content_and_stream_properties(void **state)
{
    (void)state;
    char ffv1[4096], h264[4096];
    codec_path(ffv1, sizeof ffv1, "ffv1.mkv");
    codec_path(h264, sizeof h264, "h264.mkv");
    struct vf_media_info *a = probe_ok(ffv1), *b = probe_ok(ffv1);
    assert_int_equal(strlen(a->video_digest), 64);
    assert_string_equal(a->video_digest, b->video_digest); /* stable */
    vf_shard_media_info_destroy(&b);
    vf_shard_media_info_destroy(&b); /* NULL-safe */

    /* other content */
    b = probe_ok(h264);
    assert_true(strcmp(a->video_digest, b->video_digest) != 0);
    vf_shard_media_info_destroy(&b);

    /* an identical copy under another name */
    char copy[512];
    snprintf(copy, sizeof copy, "%s", scratch_path("renamed reel.mkv"));
    copy_file(ffv1, copy);
    b = probe_ok(copy);
    assert_string_equal(a->video_digest, b->video_digest);
    vf_shard_media_info_destroy(&b);

    /* a plain remux (same packets, timestamps and stream properties) */
    char remux[512], args[10000];
    snprintf(remux, sizeof remux, "%s", scratch_path("remux.mkv"));
    snprintf(args, sizeof args, "-i '%s' -map 0 -c copy '%s'", ffv1, remux);
    run_ffmpeg(args);
    b = probe_ok(remux);
    assert_string_equal(a->video_digest, b->video_digest);
    vf_shard_media_info_destroy(&b);

    /* only the tags change: the same packets, read and tagged as full range BT.709 */
    char tagged[512];
    snprintf(tagged, sizeof tagged, "%s", scratch_path("retagged.mkv"));
    snprintf(args, sizeof args, "-i '%s' -map 0 -c copy -color_range pc -colorspace bt709 '%s'",
             ffv1, tagged);
    run_ffmpeg(args);
    b = probe_ok(tagged);
    print_message("ffv1.mkv: range %s matrix %s digest %.16s...; retagged: range %s matrix %s "
                  "digest %.16s...\n", a->color_range, a->color_space, a->video_digest,
                  b->color_range, b->color_space, b->video_digest);
    assert_string_equal(b->color_range, "pc");
    assert_string_equal(b->color_space, "bt709");
    assert_true(strcmp(a->color_range, b->color_range) || strcmp(a->color_space, b->color_space));
    assert_int_equal(a->frames, b->frames);
    for (int64_t i = 0; i < a->frames; i++)
        assert_int_equal(a->pts[i], b->pts[i]);
    assert_true(strcmp(a->video_digest, b->video_digest) != 0);
    vf_shard_media_info_destroy(&b);
    vf_shard_media_info_destroy(&a);
}

/* trim.mp4 (material/30_codecs.sh): h264.mkv cut with -ss 1.3 -c copy. An edit list hides the
 * lead-in from the keyframe before 1.3 s: those packets are flagged discard, are no frames,
 * and the MP4 sample table counts them. Not truncated: the probe counts exactly what a full
 * decode outputs. */
static void probe_mp4_trimmed_by_edit_list_counts_like_a_full_decode(void **state)
{
    (void)state;
    char path[4096];
    codec_path(path, sizeof path, "trim.mp4");
    struct vf_media_info *info = probe_ok(path);
    int64_t truth = count_decoded_frames(path);
    /* what the container declares: more packets than frames */
    AVFormatContext *fmt = NULL;
    assert_int_equal(avformat_open_input(&fmt, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(fmt, NULL) >= 0);
    int64_t declared = fmt->streams[info->video_stream]->nb_frames;
    avformat_close_input(&fmt);
    print_message("trim.mp4: %" PRId64 " frames (decode %" PRId64 "), the container declares %"
                  PRId64 " samples; frame 0 is %sa keyframe, %.3f s\n", info->frames, truth,
                  declared, info->key[0] ? "" : "not ", info->duration);
    assert_int_equal(info->frames, truth);
    assert_true(declared > info->frames); /* the test exercises discarded packets */
    assert_false(info->vfr);
    assert_int_equal(info->fps_num, 25);
    vf_shard_media_info_destroy(&info);
}

static void probe_missing_file_says_not_found(void **state)
{
    (void)state;
    struct vf_error err = {0};
    struct vf_media_info *info = (void *)1;
    assert_int_equal(vf_shard_probe(&info, "/nonexistent/reel9.mkv", &err), VF_ENOENT);
    assert_null(info);
    assert_non_null(strstr(err.msg, "/nonexistent/reel9.mkv"));
    assert_non_null(strstr(err.msg, "check the path"));
}

static void probe_text_file_is_not_a_video(void **state)
{
    (void)state;
    const char *p = scratch_path("notes.mkv");
    const char *text = "this is a shot list, not a film\nshot 1: street\nshot 2: room\n";
    write_file(p, text, strlen(text));
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    assert_int_equal(vf_shard_probe(&info, p, &err), VF_EMEDIA);
    assert_null(info);
    assert_non_null(strstr(err.msg, "is not a video FFmpeg can read"));
    assert_non_null(strstr(err.msg, p));

    /* random bytes */
    unsigned char junk[65536];
    uint32_t s = 7;
    for (size_t i = 0; i < sizeof junk; i++) {
        s = s * 1103515245u + 12345u;
        junk[i] = (unsigned char)(s >> 16);
    }
    p = scratch_path("junk.mov");
    write_file(p, junk, sizeof junk);
    assert_true(vf_shard_probe(&info, p, &err) < 0);
    assert_null(info);
    assert_non_null(strstr(err.msg, p));

    /* empty file, folder */
    p = scratch_path("empty.mkv");
    write_file(p, "", 0);
    assert_int_equal(vf_shard_probe(&info, p, &err), VF_EMEDIA);
    assert_true(vf_shard_probe(&info, scratch, &err) < 0);
    assert_non_null(strstr(err.msg, "not a video"));
}

static void probe_audio_only_file_has_no_video_stream(void **state)
{
    (void)state;
    char path[4096];
    codec_path(path, sizeof path, "audio_only.mka");
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    assert_int_equal(vf_shard_probe(&info, path, &err), VF_EMEDIA);
    assert_null(info);
    assert_non_null(strstr(err.msg, "has no video stream"));
}

/* Truncated at half its bytes: per docs/MEDIA.md, an error when the container says how long
 * the video is (Matroska, AVI, MOV), else exactly the frames that are there (MPEG-TS). */
static void probe_truncated_file_fails_or_counts_exactly(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        bool must_fail;
    } cases[] = {{"h264.mkv", true}, {"ffv1.mkv", true}, {"mjpeg.avi", true},
                 {"prores.mov", true}, {"mpeg2.ts", false}, {"hevc.mkv", true},
                 {"h264.mp4", true}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char src[4096];
        codec_path(src, sizeof src, cases[c].file);
        char name[64];
        snprintf(name, sizeof name, "half_%s", cases[c].file);
        const char *dst = scratch_path(name);
        char dstc[512];
        snprintf(dstc, sizeof dstc, "%s", dst);
        copy_prefix(src, dstc, 1, 2);
        struct vf_error err = {0};
        struct vf_media_info *info = NULL;
        int rc = vf_shard_probe(&info, dstc, &err);
        print_message("%-14s cut at 1/2: %s\n", cases[c].file,
                      rc < 0 ? err.msg : "probed (frames counted exactly)");
        if (cases[c].must_fail) {
            assert_true(rc < 0);
            assert_null(info);
            assert_non_null(strstr(err.msg, dstc));
        } else if (rc == 0) {
            char full[4096];
            codec_path(full, sizeof full, cases[c].file);
            int64_t all = count_decoded_frames(full);
            assert_int_equal(info->frames, count_decoded_frames(dstc));
            assert_true(info->frames > all / 5 && info->frames < all * 4 / 5);
            vf_shard_media_info_destroy(&info);
        }
    }
}

static int teardown_scratch(void **state)
{
    (void)state;
    if (scratch[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

int main(void)
{
    av_log_set_level(AV_LOG_FATAL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(probe_codecs_count_frames_like_a_full_decode),
        cmocka_unit_test(probe_detects_variable_frame_rate),
        cmocka_unit_test(probe_real_mpeg_ps_clip_counts_like_a_full_decode),
        cmocka_unit_test(probe_digest_follows_content_and_stream_properties),
        cmocka_unit_test(probe_mp4_trimmed_by_edit_list_counts_like_a_full_decode),
        cmocka_unit_test(probe_missing_file_says_not_found),
        cmocka_unit_test(probe_text_file_is_not_a_video),
        cmocka_unit_test(probe_audio_only_file_has_no_video_stream),
        cmocka_unit_test(probe_truncated_file_fails_or_counts_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_scratch);
}
