/*
 * tests/test_encode.c: segment encoding (shard/encode.c) and merging (shard/merge.c) on synthetic
 * frames made here, so no test material is needed.
 *
 * Every codec vaefarm encodes with (ffv1, prores_ks, libx264, libx265, dnxhd) at 8 and 10 bits:
 * frame count, first packet a keyframe, timestamps (non-zero start, 1/90000 and a VFR 1/1000 time
 * base); FFV1 bit-exact; the errors a film.yaml can cause; abort leaves nothing; and a B-frame
 * codec merged to .mp4 (exact source pts) and .mkv; pinned encoder threads (the same bytes on
 * any machine); temporary files of each writer's own; vf_shard_encoder_check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>

#include "shard/internal.h"
#include "shard/shard.h"

/* field order of the fake sources (fake_source_init) */
static const char *field_order = "progressive";

/* frame size: small, but DNxHR needs at least 256x120 */
static int W = 128, H = 72;
#define MAX_FRAMES 16

static char tmpdir[256];

/* Under -DVF_SANITIZE=ON: libx265 3.5 (Debian 12) leaks 1168 bytes inside every
 * x265_encoder_open (x265_malloc, freed by no x265_encoder_close); libavcodec closes the encoder
 * correctly, so this is x265's, not vaefarm's. Only x265's own allocator is suppressed (the
 * default fast unwinder stops inside libx265, so the frame to match is x265_malloc). x265 3.5
 * also strdup's string parameters (the pinned pools=4, in x265_param_parse and again in
 * x265_copy_params) and never frees them: 2 bytes per string per encoder. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:x265_malloc\nleak:x265_param_parse\nleak:x265_copy_params\n";
}

/* A source description for frames made in the test: n frames at pts[], time base tb. */
struct fake_source {
    struct vf_media_info info;
    int64_t pts[MAX_FRAMES];
    int64_t dur[MAX_FRAMES];
};

static void fake_source_init(struct fake_source *s, int n, int tb_num, int tb_den, int64_t start,
                             const int64_t *steps, int bits)
{
    memset(s, 0, sizeof *s);
    struct vf_media_info *m = &s->info;
    snprintf(m->path, sizeof m->path, "synthetic");
    m->width = W;
    m->height = H;
    m->sar_num = 1;
    m->sar_den = 1;
    m->fps_num = 25;
    m->fps_den = 1;
    m->tb_num = tb_num;
    m->tb_den = tb_den;
    m->frames = n;
    m->bits_per_sample = bits;
    snprintf(m->pix_fmt, sizeof m->pix_fmt, "%s", bits > 8 ? "yuv420p10le" : "yuv420p");
    snprintf(m->field_order, sizeof m->field_order, "%s", field_order);
    snprintf(m->color_range, sizeof m->color_range, "tv");
    snprintf(m->color_space, sizeof m->color_space, "bt709");
    snprintf(m->color_transfer, sizeof m->color_transfer, "bt709");
    snprintf(m->color_primaries, sizeof m->color_primaries, "bt709");
    int64_t t = start;
    for (int i = 0; i < n; i++) {
        s->pts[i] = t;
        s->dur[i] = steps[i % 4];
        t += steps[i % 4];
    }
    m->pts = s->pts;
    m->frame_duration = s->dur;
    m->start_pts = start;
}

/* A gradient that moves with i, in any planar YUV/gray format of 8..16 bits. */
static AVFrame *make_frame(enum AVPixelFormat fmt, int i)
{
    AVFrame *f = av_frame_alloc();
    assert_non_null(f);
    f->format = fmt;
    f->width = W;
    f->height = H;
    assert_int_equal(av_frame_get_buffer(f, 0), 0);
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt);
    int depth = d->comp[0].depth, planes = av_pix_fmt_count_planes(fmt);
    for (int p = 0; p < planes; p++) {
        int pw = p ? AV_CEIL_RSHIFT(W, d->log2_chroma_w) : W;
        int ph = p ? AV_CEIL_RSHIFT(H, d->log2_chroma_h) : H;
        for (int y = 0; y < ph; y++)
            for (int x = 0; x < pw; x++) {
                int v = ((x * 3 + y * 2 + i * 5 + p * 40) << (depth - 8)) % (1 << depth);
                if (depth > 8)
                    ((uint16_t *)(f->data[p] + y * f->linesize[p]))[x] = (uint16_t)v;
                else
                    f->data[p][y * f->linesize[p] + x] = (uint8_t)v;
            }
    }
    return f;
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static bool file_holds(const char *path, const char *needle);

/* Files in tmpdir whose name contains `part` (e.g. ".tmp": temporary files left behind). */
static int count_files(const char *part)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

/* Encode n frames of format `in_fmt` with the source's pts; returns the writer's status. */
static int encode(const char *path, const struct fake_source *s, const struct vf_encode_spec *spec,
                  enum AVPixelFormat in_fmt, int n, char checksum[65], struct vf_error *err)
{
    struct vf_segment_writer *w = NULL;
    int r = vf_shard_segment_open(&w, path, &s->info, spec, err);
    if (r < 0)
        return r;
    /* it encodes in the format the chunk hashes name (film.yaml's, else the codec's default for
     * the source's depth) */
    const char *named = vf_shard_encode_pix_fmt(spec, &s->info);
    assert_non_null(named);
    assert_string_equal(av_get_pix_fmt_name(vf_shard_segment_pix_fmt(w)), named);
    for (int i = 0; i < n && r == 0; i++) {
        AVFrame *f = make_frame(in_fmt, i);
        f->pts = s->pts[i];
        r = vf_shard_segment_write(w, f, err);
        av_frame_free(&f);
    }
    if (r < 0) {
        vf_shard_segment_abort(&w);
        return r;
    }
    return vf_shard_segment_close(&w, checksum, err);
}

/* What a segment holds: packets, the first one's key flag, pts sorted, time base. */
struct seg_view {
    int n;
    bool first_key;
    int64_t pts[MAX_FRAMES * 2];
    AVRational tb;
    int64_t duration_sum;
    AVRational sar;             /* as a player sees them: after avformat_find_stream_info */
    enum AVColorSpace space;
    enum AVColorRange range;
    enum AVFieldOrder field;
};

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void read_segment(const char *path, struct seg_view *v)
{
    memset(v, 0, sizeof *v);
    AVFormatContext *ic = NULL;
    assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
    assert_int_equal(avformat_find_stream_info(ic, NULL) >= 0, 1);
    AVPacket *pkt = av_packet_alloc();
    int vi = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    assert_true(vi >= 0);
    v->tb = ic->streams[vi]->time_base;
    v->sar = av_guess_sample_aspect_ratio(ic, ic->streams[vi], NULL);
    v->space = ic->streams[vi]->codecpar->color_space;
    v->range = ic->streams[vi]->codecpar->color_range;
    v->field = ic->streams[vi]->codecpar->field_order;
    while (av_read_frame(ic, pkt) >= 0) {
        if (pkt->stream_index == vi) {
            if (v->n == 0)
                v->first_key = pkt->flags & AV_PKT_FLAG_KEY;
            assert_true(v->n < MAX_FRAMES * 2);
            v->pts[v->n++] = pkt->pts;
            v->duration_sum += pkt->duration;
        }
        av_packet_unref(pkt);
    }
    qsort(v->pts, v->n, sizeof v->pts[0], cmp64);
    av_packet_free(&pkt);
    avformat_close_input(&ic);
}

static void check_segment_pts(const struct seg_view *v, const struct fake_source *s, int n)
{
    AVRational src_tb = {s->info.tb_num, s->info.tb_den};
    assert_int_equal(v->n, n);
    assert_true(v->first_key);
    for (int i = 0; i < n; i++) {
        int64_t want = av_rescale_q_rnd(s->pts[i], src_tb, v->tb, AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX);
        if (v->pts[i] != want)
            fail_msg("frame %d: pts %lld, want %lld", i, (long long)v->pts[i], (long long)want);
    }
}

/* ---- every codec, 8 and 10 bits ---------------------------------------------------------- */

/* encode_codec leaves its segment at kept_path instead of removing it (the caller removes it) */
static bool keep_segment;
static char kept_path[512];

static void encode_codec(const char *codec, const char *pix_fmt, int bits, int tb_num, int tb_den,
                         int64_t start, const int64_t steps[4])
{
    struct fake_source s;
    bool dnxhd = !strcmp(codec, "dnxhd");
    W = dnxhd ? 256 : 128;
    H = dnxhd ? 120 : 72;
    fake_source_init(&s, 10, tb_num, tb_den, start, steps, bits);
    struct vf_encode_spec spec = {.codec = codec, .pix_fmt = pix_fmt};
    struct vf_error err = {0};
    char path[512], sum[65];
    snprintf(path, sizeof path, "%s/%s_%s_%d.mkv", tmpdir, codec, pix_fmt ? pix_fmt : "default", bits);
    enum AVPixelFormat in = bits > 8 ? AV_PIX_FMT_YUV420P10 : AV_PIX_FMT_YUV420P;
    int r = encode(path, &s, &spec, in, 10, sum, &err);
    if (r < 0)
        fail_msg("%s %s: %s", codec, pix_fmt ? pix_fmt : "(default)", err.msg);
    assert_int_equal(strlen(sum), 64);
    assert_int_equal(count_files(".tmp"), 0);
    struct seg_view v;
    read_segment(path, &v);
    check_segment_pts(&v, &s, 10);
    /* the source's tags (fake_source_init: bt709, tv, progressive, 1:1) survive the encoder */
    assert_int_equal(v.space, AVCOL_SPC_BT709);
    assert_int_equal(v.range, AVCOL_RANGE_MPEG);
    assert_int_equal(v.sar.num, 1);
    assert_int_equal(v.sar.den, 1);
    if (strcmp(codec, "dnxhd")) /* DNxHR has no field order flag for progressive frames */
        assert_int_equal(v.field, !strcmp(field_order, "tt")   ? AV_FIELD_TT
                                  : !strcmp(field_order, "bb") ? AV_FIELD_BB
                                  : !strcmp(field_order, "tb") ? AV_FIELD_TB
                                  : !strcmp(field_order, "bt") ? AV_FIELD_BT
                                                               : AV_FIELD_PROGRESSIVE);
    print_message("  %-10s %-12s %2d-bit src, tb %d/%d, %s: %d frames, first key, pts ok "
                  "(%lld..%lld ms)\n", codec, pix_fmt ? pix_fmt : "(default)", bits, tb_num, tb_den,
                  field_order, v.n, (long long)v.pts[0], (long long)v.pts[v.n - 1]);
    if (keep_segment)
        snprintf(kept_path, sizeof kept_path, "%s", path);
    else
        unlink(path);
    W = 128;
    H = 72;
}

static const int64_t cfr_90k[4] = {3600, 3600, 3600, 3600};
static const int64_t vfr_1k[4] = {40, 33, 50, 41};

static void every_codec_encodes_8_and_10_bit(void **state)
{
    (void)state;
    static const char *codecs[] = {"ffv1", "prores_ks", "libx264", "libx265", "dnxhd"};
    for (size_t c = 0; c < sizeof codecs / sizeof *codecs; c++) {
        encode_codec(codecs[c], NULL, 8, 1, 90000, 900000, cfr_90k);
        encode_codec(codecs[c], NULL, 10, 1, 90000, 900000, cfr_90k);
    }
    /* explicit 8- and 10-bit pixel formats */
    encode_codec("ffv1", "yuv420p", 8, 1, 90000, 3600, cfr_90k);
    encode_codec("ffv1", "yuv444p10le", 8, 1, 90000, 3600, cfr_90k);
    encode_codec("libx264", "yuv444p", 8, 1, 90000, 3600, cfr_90k);
    encode_codec("libx264", "yuv420p10le", 10, 1, 90000, 3600, cfr_90k);
    encode_codec("libx265", "yuv420p", 8, 1, 90000, 3600, cfr_90k);
    encode_codec("libx265", "yuv444p10le", 10, 1, 90000, 3600, cfr_90k);
    encode_codec("prores_ks", "yuv444p10le", 10, 1, 90000, 3600, cfr_90k);
    encode_codec("dnxhd", "yuv444p10le", 10, 1, 90000, 3600, cfr_90k);
}

/* A segment (one video stream) opened for decoding: its demuxer in *ic, its decoder returned. */
static AVCodecContext *open_decoder(const char *path, AVFormatContext **ic)
{
    assert_int_equal(avformat_open_input(ic, path, NULL, NULL), 0);
    const AVCodecParameters *par = (*ic)->streams[0]->codecpar;
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    AVCodecContext *dec = avcodec_alloc_context3(codec);
    assert_non_null(dec);
    assert_int_equal(avcodec_parameters_to_context(dec, par), 0);
    assert_int_equal(avcodec_open2(dec, codec, NULL), 0);
    return dec;
}

/* The first decoded frame of a segment (av_frame_free it). */
static AVFrame *first_frame(const char *path)
{
    AVFormatContext *ic = NULL;
    AVCodecContext *dec = open_decoder(path, &ic);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *got = av_frame_alloc();
    int r = AVERROR(EAGAIN);
    for (bool eof = false; r == AVERROR(EAGAIN) && !eof;) {
        eof = av_read_frame(ic, pkt) < 0;
        assert_int_equal(avcodec_send_packet(dec, eof ? NULL : pkt), 0);
        av_packet_unref(pkt);
        r = avcodec_receive_frame(dec, got);
    }
    assert_int_equal(r, 0);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&ic);
    return got;
}

/* The field order the first decoded frame of `path` says (its bitstream's own: x264's SEI,
 * ProRes's frame header), AV_FIELD_PROGRESSIVE for a frame coded whole. */
static enum AVFieldOrder coded_field_order(const char *path)
{
    AVFrame *got = first_frame(path);
    const enum AVFieldOrder f = !got->interlaced_frame ? AV_FIELD_PROGRESSIVE
                                : got->top_field_first ? AV_FIELD_TT
                                                       : AV_FIELD_BB;
    av_frame_free(&got);
    return f;
}

/* An interlaced source's segment: its container says the source's field order (ffv1, libx264,
 * ProRes), and so does the bitstream of the codecs that code fields (libx264 bottom first too:
 * x264 wrote top first into its SEI whatever the frames said); DNxHR codes frames only, so an
 * interlaced film is coded progressive rather than refused. */
static void interlaced_film_keeps_its_field_order(void **state)
{
    (void)state;
    /* tb and bt as FFmpeg's tools write them: top first and bottom first */
    static const char *const orders[] = {"tt", "bb", "tb", "bt"};
    for (int i = 0; i < 4; i++) {
        field_order = orders[i];
        const enum AVFieldOrder want = i % 2 == 0 ? AV_FIELD_TT : AV_FIELD_BB;
        static const char *const codecs[] = {"ffv1", "libx264", "prores_ks", "dnxhd"};
        for (int c = 0; c < 4; c++) {
            keep_segment = true;
            encode_codec(codecs[c], NULL, 8, 1, 90000, 900000, cfr_90k);
            keep_segment = false;
            if (c == 1 || c == 2)
                assert_int_equal(coded_field_order(kept_path), want);
            if (c == 3)
                assert_int_equal(coded_field_order(kept_path), AV_FIELD_PROGRESSIVE);
            unlink(kept_path);
        }
    }
    field_order = "progressive";
}

static void vfr_timestamps_pass_through(void **state)
{
    (void)state;
    encode_codec("libx264", NULL, 8, 1, 1000, 1234, vfr_1k);
    encode_codec("libx265", NULL, 8, 1, 1000, 1234, vfr_1k);
    encode_codec("ffv1", NULL, 8, 1, 1000, 1234, vfr_1k);
}

/* ---- FFV1 is lossless: decode and compare ------------------------------------------------ */

/* Decode every frame of a segment and compare it with make_frame(cmp_fmt, i), plane by plane
 * (only the first `planes` planes). */
static void check_decoded(const char *path, enum AVPixelFormat cmp_fmt, int planes, int n)
{
    AVFormatContext *ic = NULL;
    AVCodecContext *dec = open_decoder(path, &ic);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *got = av_frame_alloc();
    int i = 0;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(cmp_fmt);
    int bps = d->comp[0].depth > 8 ? 2 : 1;
    for (bool eof = false; !eof;) {
        int r = av_read_frame(ic, pkt);
        eof = r < 0;
        assert_int_equal(avcodec_send_packet(dec, eof ? NULL : pkt), 0);
        av_packet_unref(pkt);
        while (avcodec_receive_frame(dec, got) == 0) {
            AVFrame *want = make_frame(cmp_fmt, i);
            if (planes == 3)
                assert_int_equal(got->format, cmp_fmt);
            for (int p = 0; p < planes; p++) {
                int pw = p ? AV_CEIL_RSHIFT(W, d->log2_chroma_w) : W;
                int ph = p ? AV_CEIL_RSHIFT(H, d->log2_chroma_h) : H;
                for (int y = 0; y < ph; y++)
                    if (memcmp(got->data[p] + y * got->linesize[p], want->data[p] + y * want->linesize[p],
                               (size_t)pw * bps))
                        fail_msg("%s: frame %d plane %d row %d differs", path, i, p, y);
            }
            av_frame_free(&want);
            av_frame_unref(got);
            i++;
        }
    }
    assert_int_equal(i, n);
    av_frame_free(&got);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&ic);
}

static void ffv1_round_trip_is_bit_exact(void **state)
{
    (void)state;
    struct fake_source s;
    struct vf_error err = {0};
    char path[512], sum[65];
    tmp_path(path, sizeof path, "ffv1_exact.mkv");
    struct {
        enum AVPixelFormat in;
        const char *enc;
        int bits, planes;
    } cases[] = {
        {AV_PIX_FMT_YUV444P, "yuv444p", 8, 3},
        {AV_PIX_FMT_YUV444P10, "yuv444p10le", 10, 3},
        {AV_PIX_FMT_GRAY8, "yuv444p", 8, 1},   /* grey film in, swscale to 4:4:4: luma untouched */
        {AV_PIX_FMT_YUV420P, "yuv444p", 8, 1}, /* chroma upsampled, luma untouched */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        fake_source_init(&s, 6, 1, 90000, 7200, cfr_90k, cases[c].bits);
        struct vf_encode_spec spec = {.codec = "ffv1", .pix_fmt = cases[c].enc};
        if (encode(path, &s, &spec, cases[c].in, 6, sum, &err) < 0)
            fail_msg("%s", err.msg);
        check_decoded(path, cases[c].in, cases[c].planes, 6);
        char again[65];
        assert_int_equal(vf_shard_file_checksum(path, again, &err), 0);
        assert_string_equal(sum, again);
        unlink(path);
    }
}

/* ---- errors ------------------------------------------------------------------------------ */

static int open_error(const struct vf_encode_spec *spec, struct vf_error *err)
{
    struct fake_source s;
    fake_source_init(&s, 4, 1, 90000, 0, cfr_90k, 8);
    struct vf_segment_writer *w = NULL;
    char path[512];
    tmp_path(path, sizeof path, "bad.mkv");
    int r = vf_shard_segment_open(&w, path, &s.info, spec, err);
    if (r == 0)
        vf_shard_segment_abort(&w);
    assert_null(w);
    assert_false(exists(path));
    return r;
}

static void expect_msg(const struct vf_error *err, const char *needle)
{
    if (!strstr(err->msg, needle))
        fail_msg("message '%s' lacks '%s'", err->msg, needle);
}

static void errors_name_the_problem(void **state)
{
    (void)state;
    struct vf_error err = {0};
    struct vf_encode_spec spec = {.codec = "mpeg4"};
    assert_int_equal(open_error(&spec, &err), VF_EUNSUPPORTED);
    expect_msg(&err, "'mpeg4'");
    expect_msg(&err, "ffv1, prores_ks, libx264, libx265, dnxhd");
    print_message("  %s\n", err.msg);
    struct fake_source src;
    fake_source_init(&src, 1, 1, 25, 0, cfr_90k, 8);
    assert_null(vf_shard_encode_pix_fmt(&spec, &src.info)); /* no default for it */
    /* FFmpeg's own name for an alias: the chunk hashes see one format */
    struct vf_encode_spec alias = {.codec = "ffv1", .pix_fmt = "yuv444p10"};
    assert_string_equal(vf_shard_encode_pix_fmt(&alias, &src.info), "yuv444p10le");

    spec = (struct vf_encode_spec){.codec = "libx264", .pix_fmt = "yuv999p"};
    assert_int_equal(open_error(&spec, &err), VF_EINVAL);
    expect_msg(&err, "'yuv999p' is not a pixel format");
    print_message("  %s\n", err.msg);

    spec = (struct vf_encode_spec){.codec = "libx264", .pix_fmt = "rgb24"};
    assert_int_equal(open_error(&spec, &err), VF_EINVAL);
    expect_msg(&err, "does not take 'rgb24'");
    expect_msg(&err, "yuv420p");
    print_message("  %s\n", err.msg);

    spec = (struct vf_encode_spec){.codec = "dnxhd", .pix_fmt = "yuv420p"};
    assert_int_equal(open_error(&spec, &err), VF_EINVAL);
    expect_msg(&err, "yuv422p, yuv422p10le, yuv444p10le");

    struct vf_encode_option opts[] = {{"foo", "1"}, {"crf", "18"}, {"preset", "nosuchpreset"}, {"pix_fmt", "yuv420p"}};
    spec = (struct vf_encode_spec){.codec = "libx264", .options = opts, .n_options = 1};
    assert_int_equal(open_error(&spec, &err), VF_EINVAL);
    expect_msg(&err, "encode.options.foo: the libx264 encoder has no option 'foo'");
    print_message("  %s\n", err.msg);
    spec.n_options = 4; /* all problems at once; crf is fine */
    assert_int_equal(open_error(&spec, &err), VF_EINVAL);
    expect_msg(&err, "encode.options.foo");
    expect_msg(&err, "encode.options.pix_fmt");
    assert_null(strstr(err.msg, "encode.options.crf"));
    print_message("  %s\n", err.msg);

    struct vf_encode_option bad_value[] = {{"crf", "very-good"}};
    spec = (struct vf_encode_spec){.codec = "libx264", .options = bad_value, .n_options = 1};
    assert_int_equal(open_error(&spec, &err), VF_EINVAL);
    expect_msg(&err, "encode.options.crf: the libx264 encoder refuses the value 'very-good'");

    /* DNxHR needs 256x120 or more; the old DNxHD profile only broadcast sizes */
    spec = (struct vf_encode_spec){.codec = "dnxhd"};
    assert_int_equal(open_error(&spec, &err), VF_EUNSUPPORTED);
    expect_msg(&err, "at least 256x120");
    print_message("  %s\n", err.msg);
    struct vf_encode_option old_dnxhd[] = {{"profile", "dnxhd"}};
    spec = (struct vf_encode_spec){.codec = "dnxhd", .options = old_dnxhd, .n_options = 1};
    assert_true(open_error(&spec, &err) < 0);
    expect_msg(&err, "DNxHR");
    print_message("  %s\n", err.msg);
}

static void bad_timestamps_are_refused(void **state)
{
    (void)state;
    struct fake_source s;
    fake_source_init(&s, 4, 1, 90000, 0, cfr_90k, 8);
    struct vf_encode_spec spec = {.codec = "ffv1"};
    struct vf_error err = {0};
    struct vf_segment_writer *w = NULL;
    char path[512];
    tmp_path(path, sizeof path, "ts.mkv");
    assert_int_equal(vf_shard_segment_open(&w, path, &s.info, &spec, &err), 0);
    AVFrame *f = make_frame(AV_PIX_FMT_YUV420P, 0);
    f->pts = s.pts[1];
    assert_int_equal(vf_shard_segment_write(w, f, &err), 0);
    f->pts = s.pts[0]; /* going back */
    assert_int_equal(vf_shard_segment_write(w, f, &err), VF_EINVAL);
    expect_msg(&err, "not after the previous frame's");
    f->pts = s.pts[1] + 1; /* not a source frame */
    assert_int_equal(vf_shard_segment_write(w, f, &err), VF_EINVAL);
    expect_msg(&err, "no frame's pts");
    av_frame_free(&f);
    vf_shard_segment_abort(&w);
    assert_null(w);
}

static void abort_leaves_no_file(void **state)
{
    (void)state;
    struct fake_source s;
    fake_source_init(&s, 4, 1, 90000, 0, cfr_90k, 8);
    struct vf_encode_spec spec = {.codec = "libx264"};
    struct vf_error err = {0};
    struct vf_segment_writer *w = NULL;
    char path[512];
    tmp_path(path, sizeof path, "aborted.mkv");
    assert_int_equal(vf_shard_segment_open(&w, path, &s.info, &spec, &err), 0);
    assert_int_equal(count_files("aborted.mkv."), 1); /* its temporary file */
    for (int i = 0; i < 3; i++) {
        AVFrame *f = make_frame(AV_PIX_FMT_YUV420P, i);
        f->pts = s.pts[i];
        assert_int_equal(vf_shard_segment_write(w, f, &err), 0);
        av_frame_free(&f);
    }
    vf_shard_segment_abort(&w);
    assert_null(w);
    assert_int_equal(count_files(".tmp"), 0);
    assert_false(exists(path));
    vf_shard_segment_abort(&w); /* NULL-safe */

    /* closing an empty segment is an error and leaves nothing either */
    char sum[65];
    assert_int_equal(vf_shard_segment_open(&w, path, &s.info, &spec, &err), 0);
    assert_int_equal(vf_shard_segment_close(&w, sum, &err), VF_EINVAL);
    assert_null(w);
    assert_int_equal(count_files(".tmp"), 0);
    assert_false(exists(path));

    /* a folder that does not exist */
    char nowhere[600];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/dir/x.mkv", tmpdir);
    assert_int_equal(vf_shard_segment_open(&w, nowhere, &s.info, &spec, &err), VF_EIO);
    expect_msg(&err, "cannot create segment file");
}

static void checksum_is_sha256(void **state)
{
    (void)state;
    char path[512], sum[65];
    struct vf_error err = {0};
    tmp_path(path, sizeof path, "abc.txt");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("abc", f);
    fclose(f);
    assert_int_equal(vf_shard_file_checksum(path, sum, &err), 0);
    assert_string_equal(sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unlink(path);
    assert_int_equal(vf_shard_file_checksum(path, sum, &err), VF_ENOENT);
}

/* ---- merge of a B-frame codec: exact source pts restored ----------------------------------- */

/* Output video packets' pts (sorted) and dts (decode order) in the source time base. */
static void read_output(const char *path, AVRational src_tb, int64_t *pts, int *n)
{
    AVFormatContext *ic = NULL;
    assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    *n = 0;
    while (av_read_frame(ic, pkt) >= 0) {
        AVRational tb = ic->streams[pkt->stream_index]->time_base;
        assert_true(*n < MAX_FRAMES);
        pts[(*n)++] = av_rescale_q(pkt->pts, tb, src_tb);
        av_packet_unref(pkt);
    }
    qsort(pts, *n, sizeof *pts, cmp64);
    av_packet_free(&pkt);
    avformat_close_input(&ic);
}

static void merge_restores_exact_pts(void **state)
{
    (void)state;
    struct fake_source s;
    struct vf_error err = {0};
    /* 29.97 fps in 1/90000: 3003 ticks, not a whole number of ms, so the segments round */
    static const int64_t ntsc[4] = {3003, 3003, 3003, 3003};
    fake_source_init(&s, 12, 1, 90000, 3003 * 100, ntsc, 8);
    char src_path[512], seg[2][512], out[512];
    tmp_path(src_path, sizeof src_path, "merge_src.mkv");
    tmp_path(seg[0], sizeof seg[0], "merge_0.mkv");
    tmp_path(seg[1], sizeof seg[1], "merge_1.mkv");
    /* the "source file": any file with the video stream at index 0 and no other stream */
    struct vf_encode_spec ffv1 = {.codec = "ffv1"};
    assert_int_equal(encode(src_path, &s, &ffv1, AV_PIX_FMT_YUV420P, 12, NULL, &err), 0);
    snprintf(s.info.path, sizeof s.info.path, "%s", src_path);

    /* two x264 segments with B-frames: frames 0..6 and 7..11 */
    struct vf_encode_option bf[] = {{"bf", "3"}};
    struct vf_encode_spec x264 = {.codec = "libx264", .options = bf, .n_options = 1};
    for (int k = 0; k < 2; k++) {
        struct vf_segment_writer *w = NULL;
        assert_int_equal(vf_shard_segment_open(&w, seg[k], &s.info, &x264, &err), 0);
        for (int i = k ? 7 : 0; i < (k ? 12 : 7); i++) {
            AVFrame *f = make_frame(AV_PIX_FMT_YUV420P, i);
            f->pts = s.pts[i];
            assert_int_equal(vf_shard_segment_write(w, f, &err), 0);
            av_frame_free(&f);
        }
        if (vf_shard_segment_close(&w, NULL, &err) < 0)
            fail_msg("%s", err.msg);
    }
    const char *segs[2] = {seg[0], seg[1]};
    static const char *exts[] = {"mp4", "mov", "mkv"};
    for (size_t e = 0; e < 3; e++) {
        snprintf(out, sizeof out, "%s/merged.%s", tmpdir, exts[e]);
        struct vf_merge_spec ms = {.output = out, .source = &s.info, .segments = segs, .n_segments = 2,
                                   .copy_audio = true, .copy_subtitles = true};
        if (vf_shard_merge(&ms, &err) < 0)
            fail_msg("merge to .%s: %s", exts[e], err.msg);
        int64_t pts[MAX_FRAMES];
        int n;
        read_output(out, (AVRational){1, 90000}, pts, &n);
        assert_int_equal(n, 12);
        for (int i = 0; i < 12; i++) {
            /* .mkv stores ms: the pts is the source's rounded to 1 ms; the others are exact */
            int64_t want = e == 2 ? av_rescale_q(av_rescale_q(s.pts[i], (AVRational){1, 90000},
                                                              (AVRational){1, 1000}),
                                                 (AVRational){1, 1000}, (AVRational){1, 90000})
                                  : s.pts[i];
            if (pts[i] != want)
                fail_msg(".%s frame %d: pts %lld, source %lld", exts[e], i, (long long)pts[i],
                         (long long)want);
        }
        print_message("  libx264 B-frames, 2 segments -> .%s: 12 frames, pts %s the source's\n",
                      exts[e], e == 2 ? "= (1 ms rounding of)" : "exactly");
        unlink(out);
    }
    assert_int_equal(count_files(".tmp"), 0);
    /* another merge's temporary file for the same output (another process): never touched */
    char decoy[512];
    tmp_path(decoy, sizeof decoy, ".merged.mp4.1-0.tmp.mp4");
    FILE *df = fopen(decoy, "wb");
    assert_non_null(df);
    fputs("another merge's", df);
    fclose(df);
    /* ffv1 cannot go into .mp4: a clear error, no file */
    char seg_ffv1[512];
    tmp_path(seg_ffv1, sizeof seg_ffv1, "merge_ffv1.mkv");
    assert_int_equal(encode(seg_ffv1, &s, &ffv1, AV_PIX_FMT_YUV420P, 12, NULL, &err), 0);
    snprintf(out, sizeof out, "%s/merged.mp4", tmpdir);
    const char *one[1] = {seg_ffv1};
    struct vf_merge_spec ms = {.output = out, .source = &s.info, .segments = one, .n_segments = 1};
    assert_int_equal(vf_shard_merge(&ms, &err), VF_EUNSUPPORTED);
    expect_msg(&err, "ffv1");
    expect_msg(&err, ".mkv");
    print_message("  %s\n", err.msg);
    assert_false(exists(out));
    /* an extension vaefarm does not write */
    snprintf(out, sizeof out, "%s/merged.avi", tmpdir);
    assert_int_equal(vf_shard_merge(&ms, &err), VF_EUNSUPPORTED);
    expect_msg(&err, ".mkv, .mov or .mp4");
    /* segments that do not match each other */
    const char *mixed[2] = {seg[0], seg_ffv1};
    snprintf(out, sizeof out, "%s/merged.mkv", tmpdir);
    ms = (struct vf_merge_spec){.output = out, .source = &s.info, .segments = mixed, .n_segments = 2};
    assert_int_equal(vf_shard_merge(&ms, &err), VF_ECORRUPT);
    expect_msg(&err, "segment 1");
    expect_msg(&err, "differs from segment 0");
    print_message("  %s\n", err.msg);
    assert_false(exists(out));
    assert_int_equal(count_files(".tmp"), 1); /* only the decoy, as it was */
    assert_true(file_holds(decoy, "another merge's"));
    unlink(decoy);
    unlink(seg_ffv1);
    unlink(seg[0]);
    unlink(seg[1]);
    unlink(src_path);
}

/* ---- determinism: pinned encoder threads ------------------------------------------------ */

/* The whole file, malloc'd (*size bytes). */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = 0;
    *size = (size_t)n;
    return buf;
}

static bool file_holds(const char *path, const char *needle)
{
    size_t n, k = strlen(needle);
    uint8_t *buf = slurp(path, &n);
    bool found = false;
    for (size_t i = 0; !found && i + k <= n; i++)
        found = !memcmp(buf + i, needle, k);
    free(buf);
    return found;
}

/* Encode 10 frames with `spec` into `name`; returns the path (static buffer) and the checksum. */
static const char *encode_10(const char *name, const struct vf_encode_spec *spec, char sum[65])
{
    static char path[512];
    struct fake_source s;
    struct vf_error err = {0};
    fake_source_init(&s, 10, 1, 90000, 0, cfr_90k, 8);
    tmp_path(path, sizeof path, name);
    if (encode(path, &s, spec, AV_PIX_FMT_YUV420P, 10, sum, &err) < 0)
        fail_msg("%s: %s", spec->codec, err.msg);
    return path;
}

static void encoder_threads_are_pinned(void **state)
{
    (void)state;
    char a[65], b[65];
    /* x264 writes its settings into the stream (an SEI): the thread count is the pinned 4 */
    struct vf_encode_spec x264 = {.codec = "libx264"};
    const char *path = encode_10("threads_x264.mkv", &x264, a);
    assert_true(file_holds(path, " threads=4 "));
    assert_true(file_holds(path, " lookahead_threads=1 "));
    assert_true(file_holds(path, " sliced_threads=0 "));
    encode_10("threads_x264.mkv", &x264, b);
    assert_string_equal(a, b); /* same frames, same settings: same bytes */
    print_message("  libx264: threads=4 in the stream, two encodes identical (%.16s...)\n", a);
    /* encode.options threads=N is the user's choice (and part of the plan hash) */
    struct vf_encode_option two[] = {{"threads", "2"}};
    struct vf_encode_spec x264_2 = {.codec = "libx264", .options = two, .n_options = 1};
    path = encode_10("threads_x264.mkv", &x264_2, b);
    assert_true(file_holds(path, " threads=2 "));
    unlink(path);

    /* x265: no info SEI by default (it records cpuid=..., the machine's CPU features) */
    struct vf_encode_spec x265 = {.codec = "libx265"};
    path = encode_10("threads_x265.mkv", &x265, a);
    assert_false(file_holds(path, "x265 (build"));
    assert_false(file_holds(path, "cpuid="));
    encode_10("threads_x265.mkv", &x265, b);
    assert_string_equal(a, b);
    /* asked for, the info SEI shows the pinned frame threads and pool (the user's x265-params
     * come first; vaefarm's defaults are appended for what they do not set) */
    struct vf_encode_option info[] = {{"x265-params", "info=1"}};
    struct vf_encode_spec x265_info = {.codec = "libx265", .options = info, .n_options = 1};
    path = encode_10("threads_x265.mkv", &x265_info, b);
    assert_true(file_holds(path, "x265 (build"));
    assert_true(file_holds(path, " frame-threads=4 "));
    assert_true(file_holds(path, " numa-pools=4 "));
    /* the user's own frame threads win */
    struct vf_encode_option ft[] = {{"x265-params", "info=1:frame-threads=2"}};
    struct vf_encode_spec x265_ft = {.codec = "libx265", .options = ft, .n_options = 1};
    path = encode_10("threads_x265.mkv", &x265_ft, b);
    assert_true(file_holds(path, " frame-threads=2 "));
    assert_true(file_holds(path, " numa-pools=4 "));
    print_message("  libx265: no info SEI (cpuid), frame-threads=4 numa-pools=4, two encodes identical "
                  "(%.16s...)\n", a);
    unlink(path);
}

/* ---- temporary files: each writer its own ------------------------------------------------ */

static void write_frames(struct vf_segment_writer *w, const struct fake_source *s, int from, int to)
{
    struct vf_error err = {0};
    for (int i = from; i < to; i++) {
        AVFrame *f = make_frame(AV_PIX_FMT_YUV420P, i);
        f->pts = s->pts[i];
        if (vf_shard_segment_write(w, f, &err) < 0)
            fail_msg("frame %d: %s", i, err.msg);
        av_frame_free(&f);
    }
}

static void writers_of_one_path_do_not_collide(void **state)
{
    (void)state;
    struct fake_source s;
    fake_source_init(&s, 8, 1, 90000, 0, cfr_90k, 8);
    struct vf_encode_spec spec = {.codec = "ffv1"};
    struct vf_error err = {0};
    char path[512], sum_a[65], sum_b[65];
    tmp_path(path, sizeof path, "twice.mkv");
    /* a chunk retried on another rank while the first is still writing: same final path */
    struct vf_segment_writer *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(vf_shard_segment_open(&a, path, &s.info, &spec, &err), 0);
    assert_int_equal(vf_shard_segment_open(&b, path, &s.info, &spec, &err), 0);
    assert_int_equal(vf_shard_segment_open(&c, path, &s.info, &spec, &err), 0);
    assert_int_equal(count_files("twice.mkv."), 3); /* three temporary files */
    write_frames(a, &s, 0, 4);
    write_frames(b, &s, 0, 8);
    write_frames(c, &s, 0, 2);
    vf_shard_segment_abort(&c); /* removes its own file, not the others' */
    assert_int_equal(count_files("twice.mkv."), 2);
    write_frames(a, &s, 4, 8);
    if (vf_shard_segment_close(&b, sum_b, &err) < 0)
        fail_msg("%s", err.msg);
    assert_true(exists(path));
    assert_int_equal(count_files("twice.mkv."), 1); /* a's, still being written */
    if (vf_shard_segment_close(&a, sum_a, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(sum_a, sum_b); /* the same chunk, the same bytes */
    assert_int_equal(count_files("twice.mkv"), 1);
    assert_int_equal(count_files(".tmp"), 0);
    struct seg_view v;
    read_segment(path, &v);
    check_segment_pts(&v, &s, 8);
    unlink(path);

    /* a failing writer (its open fails after the encoder) removes nothing of another's */
    assert_int_equal(vf_shard_segment_open(&a, path, &s.info, &spec, &err), 0);
    struct vf_encode_option bad[] = {{"nosuchoption", "1"}};
    struct vf_encode_spec bad_spec = {.codec = "ffv1", .options = bad, .n_options = 1};
    assert_int_equal(vf_shard_segment_open(&b, path, &s.info, &bad_spec, &err), VF_EINVAL);
    assert_int_equal(count_files("twice.mkv."), 1);
    vf_shard_segment_abort(&a);
    assert_int_equal(count_files(".tmp"), 0);
    print_message("  3 writers of one path: own temporary files, abort removes only its own, "
                  "one final file, equal checksums\n");
}

/* A frame that cannot be copied (no chroma planes) is refused, and the writer goes on cleanly
 * (under ASan: nothing leaks from the pooled frame the failed write had taken). */
static void failed_write_leaves_writer_clean(void **state)
{
    (void)state;
    struct fake_source s;
    fake_source_init(&s, 6, 1, 90000, 0, cfr_90k, 8);
    struct vf_encode_spec spec = {.codec = "ffv1", .pix_fmt = "yuv420p"};
    struct vf_error err = {0};
    struct vf_segment_writer *w = NULL;
    char path[512], sum[65];
    tmp_path(path, sizeof path, "clean.mkv");
    assert_int_equal(vf_shard_segment_open(&w, path, &s.info, &spec, &err), 0);
    uint8_t *luma = calloc((size_t)W * H, 1);
    AVFrame *bad = av_frame_alloc();
    bad->format = AV_PIX_FMT_YUV420P;
    bad->width = W;
    bad->height = H;
    bad->data[0] = luma; /* not refcounted: copied into a pooled frame; no U, V planes */
    bad->linesize[0] = W;
    for (int k = 0; k < 2; k++) {
        bad->pts = s.pts[0];
        assert_int_equal(vf_shard_segment_write(w, bad, &err), VF_EINVAL);
        expect_msg(&err, "copying frame 0");
    }
    av_frame_free(&bad);
    free(luma);
    write_frames(w, &s, 0, 6); /* refcounted frames in the encoder's format: by reference */
    if (vf_shard_segment_close(&w, sum, &err) < 0)
        fail_msg("%s", err.msg);
    struct seg_view v;
    read_segment(path, &v);
    check_segment_pts(&v, &s, 6);
    unlink(path);
}

/* ---- RGB in: the source's matrix ---------------------------------------------------------- */

/* Luma of the first decoded frame at its centre. */
static int first_luma(const char *path)
{
    AVFrame *got = first_frame(path);
    int y = got->data[0][(H / 2) * got->linesize[0] + W / 2];
    av_frame_free(&got);
    return y;
}

static void rgb_frames_use_the_source_matrix(void **state)
{
    (void)state;
    /* pure red, limited range: Y = 16 + 219 * Kr; BT.709 Kr = 0.2126 (63), BT.601 0.299 (81.5) */
    struct {
        const char *space;
        int y;
    } cases[] = {{"bt709", 63}, {"smpte170m", 81}, {"bt470bg", 81}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        struct fake_source s;
        fake_source_init(&s, 2, 1, 90000, 0, cfr_90k, 8);
        snprintf(s.info.color_space, sizeof s.info.color_space, "%s", cases[c].space);
        struct vf_encode_spec spec = {.codec = "ffv1", .pix_fmt = "yuv444p"};
        struct vf_error err = {0};
        struct vf_segment_writer *w = NULL;
        char path[512];
        tmp_path(path, sizeof path, "rgb.mkv");
        assert_int_equal(vf_shard_segment_open(&w, path, &s.info, &spec, &err), 0);
        for (int i = 0; i < 2; i++) {
            AVFrame *f = av_frame_alloc();
            f->format = AV_PIX_FMT_GBRP; /* planes G, B, R */
            f->width = W;
            f->height = H;
            assert_int_equal(av_frame_get_buffer(f, 0), 0);
            for (int p = 0; p < 3; p++)
                memset(f->data[p], p == 2 ? 255 : 0, (size_t)f->linesize[p] * H);
            f->pts = s.pts[i];
            assert_int_equal(vf_shard_segment_write(w, f, &err), 0);
            av_frame_free(&f);
        }
        if (vf_shard_segment_close(&w, NULL, &err) < 0)
            fail_msg("%s", err.msg);
        int y = first_luma(path);
        if (y < cases[c].y - 1 || y > cases[c].y + 1)
            fail_msg("%s: red became Y=%d, want %d", cases[c].space, y, cases[c].y);
        print_message("  RGB red -> %s yuv444p: Y=%d\n", cases[c].space, y);
        unlink(path);
    }
}

/* ---- vf_shard_codec_bytes -------------------------------------------------------------------- */

/* The estimate is the documented sum (docs/NODE.md "Memory"): the decoder's (2T + 8) source frames
 * and 4 MiB a thread, the encoder's bytes per pixel and per byte of a frame in its pixel format
 * (the default for the source's depth, or encode.pix_fmt), and the writer's two frames. */
static void codec_bytes_follow_the_table(void **state)
{
    (void)state;
    struct fake_source s;
    fake_source_init(&s, 4, 1, 90000, 0, cfr_90k, 8);
    s.info.width = 1920;
    s.info.height = 1080;
    const double px = 1920.0 * 1080.0;
    const int t = vf_shard_decode_threads_();
    assert_true(t >= 1 && t <= 16);
    const double dec8 = 1.5 * px * (2 * t + 8) + t * 4194304.0;
    struct {
        struct vf_encode_spec spec;
        int bits;
        double want;
    } cases[] = {
        {{.codec = "ffv1"}, 8, dec8 + 165 * px + 2 * 3 * px},
        {{.codec = "ffv1"}, 10, 2 * dec8 - t * 4194304.0 + 165 * px + 2 * 6 * px},
        {{.codec = "libx264"}, 8, dec8 + 147 * 1.5 * px},
        {{.codec = "libx264", .pix_fmt = "yuv444p"}, 8, dec8 + 147 * 3 * px},
        {{.codec = "libx265"}, 8, dec8 + 190 * px + 62 * 3 * px},
        {{.codec = "prores_ks"}, 8, dec8 + 7 * 4 * px},
        {{.codec = "dnxhd"}, 8, dec8 + 165 * px + 8 * 2 * px},
        {{.codec = "mpeg4"}, 8, dec8 + 400 * px},   /* refused by the check */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(s.info.pix_fmt, sizeof s.info.pix_fmt, "%s", cases[i].bits > 8 ? "yuv420p10le" : "yuv420p");
        s.info.bits_per_sample = cases[i].bits;
        const double got = (double)vf_shard_codec_bytes(&cases[i].spec, &s.info);
        if (got < cases[i].want - 1 || got > cases[i].want + 1)
            fail_msg("%s %s (%d-bit source): %.0f bytes, want %.0f", cases[i].spec.codec,
                     cases[i].spec.pix_fmt ? cases[i].spec.pix_fmt : "(default)", cases[i].bits, got,
                     cases[i].want);
        print_message("  1920x1080 %d-bit, %s: %.0f MiB with %d decoder threads\n", cases[i].bits,
                      cases[i].spec.codec, got / 1048576.0, t);
    }
}

/* ---- vf_shard_encoder_check ------------------------------------------------------------------ */

static void encoder_check_validates_before_work(void **state)
{
    (void)state;
    struct fake_source s;
    fake_source_init(&s, 4, 1, 90000, 0, cfr_90k, 8);
    struct vf_error err = {0};
    struct vf_encode_option x264_opts[] = {{"crf", "16"}, {"preset", "slow"}};
    struct vf_encode_spec good[] = {
        {.codec = "ffv1"},
        {.codec = "libx264", .options = x264_opts, .n_options = 2},
        {.codec = "libx265", .pix_fmt = "yuv444p10le"},
        {.codec = "prores_ks"},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (vf_shard_encoder_check(&good[i], &s.info, &err) < 0)
            fail_msg("%s: %s", good[i].codec, err.msg);

    struct vf_encode_spec spec = {.codec = "mpeg4"};
    assert_int_equal(vf_shard_encoder_check(&spec, &s.info, &err), VF_EUNSUPPORTED);
    expect_msg(&err, "'mpeg4'");
    expect_msg(&err, "h264_nvenc, hevc_nvenc");
    spec = (struct vf_encode_spec){.codec = "libx264", .pix_fmt = "rgb24"};
    assert_int_equal(vf_shard_encoder_check(&spec, &s.info, &err), VF_EINVAL);
    expect_msg(&err, "does not take 'rgb24'");
    struct vf_encode_option unknown[] = {{"foo", "1"}};
    spec = (struct vf_encode_spec){.codec = "libx264", .options = unknown, .n_options = 1};
    assert_int_equal(vf_shard_encoder_check(&spec, &s.info, &err), VF_EINVAL);
    expect_msg(&err, "encode.options.foo: the libx264 encoder has no option 'foo'");
    /* refused only when the encoder opens: the old DNxHD profile at a non-broadcast size (not
     * x264 with an odd width: x264 leaks on that failed open, which ASan would report) */
    struct vf_encode_option old_dnxhd[] = {{"profile", "dnxhd"}};
    spec = (struct vf_encode_spec){.codec = "dnxhd", .options = old_dnxhd, .n_options = 1};
    assert_int_equal(vf_shard_encoder_check(&spec, &s.info, &err), VF_EUNSUPPORTED);
    expect_msg(&err, "cannot open the dnxhd encoder for 128x72");
    expect_msg(&err, "checking encode settings for synthetic");
    /* NVENC: opens where an NVIDIA GPU with NVENC is; elsewhere, a clear error */
    static const char *nvenc[] = {"h264_nvenc", "hevc_nvenc"};
    for (size_t i = 0; i < 2; i++) {
        if (!avcodec_find_encoder_by_name(nvenc[i])) {
            print_message("  %s: not in this FFmpeg\n", nvenc[i]);
            continue;
        }
        spec = (struct vf_encode_spec){.codec = nvenc[i]};
        int r = vf_shard_encoder_check(&spec, &s.info, &err);
        if (r == 0) {
            print_message("  %s: opens (an NVENC GPU is here)\n", nvenc[i]);
            continue;
        }
        assert_int_equal(r, VF_EUNSUPPORTED);
        char want[128];
        snprintf(want, sizeof want, "%s needs an NVIDIA GPU with NVENC; none was usable on this machine (",
                 nvenc[i]);
        expect_msg(&err, want);
        expect_msg(&err, "choose another encode.codec (ffv1, prores_ks, libx264, libx265, dnxhd)");
        print_message("  %s\n", err.msg);
    }
    /* the pixel formats NVENC takes are accepted before any GPU is asked */
    spec = (struct vf_encode_spec){.codec = "hevc_nvenc", .pix_fmt = "yuv422p10le"};
    if (avcodec_find_encoder_by_name("hevc_nvenc")) {
        assert_int_equal(vf_shard_encoder_check(&spec, &s.info, &err), VF_EINVAL);
        expect_msg(&err, "p010le");
    }
    assert_int_equal(count_files(""), 0); /* no file written */
}

static int setup(void **state)
{
    (void)state;
    av_log_set_level(AV_LOG_ERROR);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vf_test_encode_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmpdir); /* every test removes its files; a leftover keeps the folder for a look */
    return 0;
}

/* FFmpeg's full disk (or quota) is VF_ENOSPC whatever the call's own code, which the farm does
 * not retry (docs/FARM.md); any other error keeps the code the call gave */
static void full_disk_is_its_own_status(void **state)
{
    (void)state;
    struct vf_error err = {0};
    assert_int_equal(vf_shard_av_error_(&err, VF_EMEDIA, AVERROR(ENOSPC), "writing %s", "x.mkv"),
                     VF_ENOSPC);
    assert_int_equal(err.code, VF_ENOSPC);
    assert_non_null(strstr(err.msg, "writing x.mkv: No space left on device"));
    assert_int_equal(vf_shard_av_error_(&err, VF_EIO, AVERROR(EDQUOT), "closing"), VF_ENOSPC);
    assert_int_equal(vf_shard_av_error_(&err, VF_EMEDIA, AVERROR(EIO), "writing"), VF_EMEDIA);
    assert_int_equal(vf_shard_av_error_(&err, VF_EIO, AVERROR_INVALIDDATA, "reading"), VF_EIO);
    assert_int_equal(vf_io_status(ENOSPC), VF_ENOSPC);
    assert_int_equal(vf_io_status(EDQUOT), VF_ENOSPC);
    assert_int_equal(vf_io_status(EACCES), VF_EIO);
    assert_int_equal(vf_io_status(0), VF_EIO);
    assert_string_equal(vf_status_str(VF_ENOSPC), "no space left on device");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_disk_is_its_own_status),
        cmocka_unit_test(every_codec_encodes_8_and_10_bit),
        cmocka_unit_test(vfr_timestamps_pass_through),
        cmocka_unit_test(interlaced_film_keeps_its_field_order),
        cmocka_unit_test(ffv1_round_trip_is_bit_exact),
        cmocka_unit_test(errors_name_the_problem),
        cmocka_unit_test(bad_timestamps_are_refused),
        cmocka_unit_test(abort_leaves_no_file),
        cmocka_unit_test(checksum_is_sha256),
        cmocka_unit_test(merge_restores_exact_pts),
        cmocka_unit_test(encoder_threads_are_pinned),
        cmocka_unit_test(writers_of_one_path_do_not_collide),
        cmocka_unit_test(failed_write_leaves_writer_clean),
        cmocka_unit_test(rgb_frames_use_the_source_matrix),
        cmocka_unit_test(codec_bytes_follow_the_table),
        cmocka_unit_test(encoder_check_validates_before_work),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
