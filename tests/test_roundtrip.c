// needs: media
/*
 * tests/test_roundtrip.c: the farm's media path end to end, without the network: the 2-minute
 * film (tests/MATERIAL.md: long/long.mkv, FFV1 with an audio and a subtitle stream) is probed,
 * cut into 20 chunks, each chunk decoded (vf_shard_decoder_*) and encoded as an FFV1 segment in
 * the film's own pixel format, and the segments merged with the audio and subtitles copied.
 * The output must be the input's twin (DESIGN.md §6): same frame count and every pts, the very
 * same audio and subtitle packets, chapters and tags, and, FFV1 being lossless, the same
 * pictures. Then merge's refusals: a missing segment, a segment with a frame too few, an output
 * that cannot be written; none of them leaves anything at the output path.
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
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/hash.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>

#include "shard/shard.h"

#define N_CHUNKS 20

static char film[4096];
static char workdir[512];
static struct vf_media_info *info;
static char *segments[N_CHUNKS];

static bool exists(const char *path) { return access(path, F_OK) == 0; }
static int count_tmp_files(void);

/* Encode film frames [start, end) as a segment at `path`, skipping frame `skip` (-1: none). */
static int encode_chunk(const char *path, int64_t start, int64_t end, int64_t skip, struct vf_error *err)
{
    struct vf_decoder *dec = NULL;
    struct vf_segment_writer *w = NULL;
    struct vf_encode_spec spec = {.codec = "ffv1", .pix_fmt = info->pix_fmt}; /* lossless twin */
    AVFrame *f = av_frame_alloc();
    int r = vf_shard_decoder_create(&dec, info, VF_DECODE_LUMA, err);
    if (r == 0)
        r = vf_shard_decoder_seek(dec, start, err);
    if (r == 0)
        r = vf_shard_segment_open(&w, path, info, &spec, err);
    for (int64_t i = start; r == 0 && i < end; i++) {
        struct vf_frame frame;
        r = vf_shard_decoder_read(dec, &frame, err);
        if (r == 0)
            r = vf_error_set(err, VF_EINTERNAL, "decoder ended at frame %lld", (long long)i);
        if (r < 0)
            break;
        r = 0;
        if (frame.index != i)
            r = vf_error_set(err, VF_EINTERNAL, "decoder gave frame %lld for %lld",
                             (long long)frame.index, (long long)i);
        if (r < 0 || i == skip)
            continue;
        if (av_frame_ref(f, frame.av) < 0) {
            r = vf_error_set(err, VF_ENOMEM, "av_frame_ref of frame %lld", (long long)i);
            break;
        }
        f->pts = frame.pts;
        r = vf_shard_segment_write(w, f, err);
        av_frame_unref(f);
    }
    if (r == 0)
        r = vf_shard_segment_close(&w, NULL, err);
    vf_shard_segment_abort(&w);
    vf_shard_decoder_destroy(&dec);
    av_frame_free(&f);
    return r;
}

/* ---- what a file holds, read with the libraries ------------------------------------------ */

struct stream_digest {
    enum AVMediaType type;
    char codec[32];
    char language[16];
    AVRational tb;
    int64_t packets;
    int64_t end;        /* max pts + duration, stream tb */
    char sha[65];       /* sha256 over every packet's pts, duration, flags and data */
};

struct file_digest {
    int n;
    struct stream_digest s[8];
    int chapters;
    char title[128];
    char timecode[32];
};

static void hash_i64(struct AVHashContext *h, int64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    av_hash_update(h, b, 8);
}

static void digest_file(const char *path, struct file_digest *d)
{
    memset(d, 0, sizeof *d);
    AVFormatContext *ic = NULL;
    assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(ic, NULL) >= 0);
    assert_true(ic->nb_streams <= 8);
    struct AVHashContext *h[8] = {0};
    d->n = (int)ic->nb_streams;
    for (int i = 0; i < d->n; i++) {
        AVStream *st = ic->streams[i];
        struct stream_digest *s = &d->s[i];
        s->type = st->codecpar->codec_type;
        s->tb = st->time_base;
        s->end = INT64_MIN;
        snprintf(s->codec, sizeof s->codec, "%s", avcodec_get_name(st->codecpar->codec_id));
        const AVDictionaryEntry *lang = av_dict_get(st->metadata, "language", NULL, 0);
        snprintf(s->language, sizeof s->language, "%s", lang ? lang->value : "");
        assert_int_equal(av_hash_alloc(&h[i], "SHA256"), 0);
        av_hash_init(h[i]);
    }
    AVPacket *pkt = av_packet_alloc();
    while (av_read_frame(ic, pkt) >= 0) {
        struct stream_digest *s = &d->s[pkt->stream_index];
        struct AVHashContext *hh = h[pkt->stream_index];
        hash_i64(hh, pkt->pts);
        hash_i64(hh, pkt->duration);
        hash_i64(hh, pkt->flags & AV_PKT_FLAG_KEY);
        av_hash_update(hh, pkt->data, (size_t)pkt->size);
        s->packets++;
        if (pkt->pts != AV_NOPTS_VALUE && pkt->pts + pkt->duration > s->end)
            s->end = pkt->pts + pkt->duration;
        av_packet_unref(pkt);
    }
    for (int i = 0; i < d->n; i++) {
        av_hash_final_hex(h[i], (uint8_t *)d->s[i].sha, sizeof d->s[i].sha);
        av_hash_freep(&h[i]);
    }
    d->chapters = (int)ic->nb_chapters;
    const AVDictionaryEntry *e = av_dict_get(ic->metadata, "title", NULL, 0);
    snprintf(d->title, sizeof d->title, "%s", e ? e->value : "");
    e = av_dict_get(ic->metadata, "timecode", NULL, 0);
    snprintf(d->timecode, sizeof d->timecode, "%s", e ? e->value : "");
    av_packet_free(&pkt);
    avformat_close_input(&ic);
}

static void print_digest(const char *label, const char *path, const struct file_digest *d)
{
    print_message("  %s %s: %d streams, %d chapters, title '%s', timecode '%s'\n", label, path, d->n,
                  d->chapters, d->title, d->timecode);
    for (int i = 0; i < d->n; i++) {
        const struct stream_digest *s = &d->s[i];
        print_message("    #%d %-8s %-8s lang=%-3s tb=%d/%d packets=%lld end=%.3f s sha256=%.16s...\n", i,
                      av_get_media_type_string(s->type), s->codec, s->language, s->tb.num, s->tb.den,
                      (long long)s->packets, s->end * av_q2d(s->tb), s->sha);
    }
}

/* A sequential decode of a file's video stream, frame by frame. */
struct seq {
    AVFormatContext *ic;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int vi;
    bool eof;
};

static void seq_open(struct seq *s, const char *path)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(avformat_open_input(&s->ic, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(s->ic, NULL) >= 0);
    const AVCodec *codec = NULL;
    s->vi = av_find_best_stream(s->ic, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    assert_true(s->vi >= 0);
    s->dec = avcodec_alloc_context3(codec);
    assert_int_equal(avcodec_parameters_to_context(s->dec, s->ic->streams[s->vi]->codecpar), 0);
    assert_int_equal(avcodec_open2(s->dec, codec, NULL), 0);
    s->pkt = av_packet_alloc();
    s->frame = av_frame_alloc();
}

/* Next frame into s->frame: true, or false at the end. */
static bool seq_next(struct seq *s)
{
    av_frame_unref(s->frame);
    for (;;) {
        int r = avcodec_receive_frame(s->dec, s->frame);
        if (r == 0)
            return true;
        if (r == AVERROR_EOF)
            return false;
        assert_int_equal(r, AVERROR(EAGAIN));
        if (s->eof)
            return false;
        r = av_read_frame(s->ic, s->pkt);
        if (r < 0) {
            s->eof = true;
            assert_int_equal(avcodec_send_packet(s->dec, NULL), 0);
            continue;
        }
        if (s->pkt->stream_index == s->vi)
            assert_int_equal(avcodec_send_packet(s->dec, s->pkt), 0);
        av_packet_unref(s->pkt);
    }
}

static void seq_close(struct seq *s)
{
    av_frame_free(&s->frame);
    av_packet_free(&s->pkt);
    avcodec_free_context(&s->dec);
    avformat_close_input(&s->ic);
}

/* Decode both files and compare every frame's every plane; returns frames compared. */
static int64_t compare_pictures(const char *a_path, const char *b_path)
{
    struct seq a, b;
    seq_open(&a, a_path);
    seq_open(&b, b_path);
    int64_t n = 0;
    for (;;) {
        bool ha = seq_next(&a), hb = seq_next(&b);
        assert_int_equal(ha, hb);
        if (!ha)
            break;
        AVFrame *x = a.frame, *y = b.frame;
        assert_int_equal(x->format, y->format);
        assert_int_equal(x->width, y->width);
        assert_int_equal(x->height, y->height);
        const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(x->format);
        int planes = av_pix_fmt_count_planes(x->format);
        int bps = d->comp[0].step;
        for (int p = 0; p < planes; p++) {
            int pw = p == 1 || p == 2 ? AV_CEIL_RSHIFT(x->width, d->log2_chroma_w) : x->width;
            int ph = p == 1 || p == 2 ? AV_CEIL_RSHIFT(x->height, d->log2_chroma_h) : x->height;
            for (int r = 0; r < ph; r++)
                if (memcmp(x->data[p] + r * x->linesize[p], y->data[p] + r * y->linesize[p],
                           (size_t)pw * bps))
                    fail_msg("frame %lld plane %d row %d differs", (long long)n, p, r);
        }
        n++;
    }
    seq_close(&a);
    seq_close(&b);
    return n;
}

/* ---- the round trip ---------------------------------------------------------------------- */

static void long_film_round_trip(void **state)
{
    (void)state;
    struct vf_error err = {0};
    int64_t frames = info->frames;
    double t0 = vf_now();
    for (int k = 0; k < N_CHUNKS; k++) {
        int64_t a = frames * k / N_CHUNKS, b = frames * (k + 1) / N_CHUNKS;
        if (encode_chunk(segments[k], a, b, -1, &err) < 0)
            fail_msg("chunk %d [%lld, %lld): %s", k, (long long)a, (long long)b, err.msg);
    }
    double t_encode = vf_now() - t0;

    char out[600];
    snprintf(out, sizeof out, "%s/long_color.mkv", workdir);
    struct vf_merge_spec ms = {.output = out, .source = info, .segments = (const char *const *)segments,
                               .n_segments = N_CHUNKS, .copy_audio = true, .copy_subtitles = true};
    t0 = vf_now();
    if (vf_shard_merge(&ms, &err) < 0)
        fail_msg("merge: %s", err.msg);
    double t_merge = vf_now() - t0;
    assert_int_equal(count_tmp_files(), 0); /* no segment's nor the merge's temporary file left */

    /* frame count and every pts, as the project's own probe sees them */
    struct vf_media_info *o = NULL;
    if (vf_shard_probe(&o, out, &err) < 0)
        fail_msg("probe of the output: %s", err.msg);
    assert_int_equal(o->frames, frames);
    AVRational itb = {info->tb_num, info->tb_den}, otb = {o->tb_num, o->tb_den};
    int64_t same_pts = 0;
    for (int64_t i = 0; i < frames; i++)
        same_pts += av_rescale_q(o->pts[i], otb, itb) == info->pts[i];
    assert_int_equal(same_pts, frames);
    assert_int_equal(o->width, info->width);
    assert_int_equal(o->height, info->height);
    assert_int_equal(o->fps_num * (int64_t)info->fps_den, info->fps_num * (int64_t)o->fps_den);
    assert_string_equal(o->pix_fmt, info->pix_fmt);
    assert_string_equal(o->timecode, info->timecode);
    assert_string_equal(o->field_order, info->field_order);
    assert_string_equal(o->color_range, info->color_range);
    assert_string_equal(o->color_space, info->color_space);
    assert_string_equal(o->color_transfer, info->color_transfer);
    assert_string_equal(o->color_primaries, info->color_primaries);
    assert_int_equal(o->sar_num * (int64_t)info->sar_den, info->sar_num * (int64_t)o->sar_den);

    /* audio and subtitle packets: the very same bytes at the very same times */
    struct file_digest din, dout;
    digest_file(film, &din);
    digest_file(out, &dout);
    print_digest("source", film, &din);
    print_digest("output", out, &dout);
    assert_int_equal(dout.n, din.n);
    int audio = 0, subs = 0;
    int64_t audio_packets = 0, sub_packets = 0;
    double audio_end = 0;
    for (int i = 0; i < din.n; i++) {
        const struct stream_digest *a = &din.s[i], *b = &dout.s[i];
        assert_int_equal(a->type, b->type);
        assert_string_equal(a->codec, b->codec);
        assert_string_equal(a->language, b->language);
        assert_int_equal(a->packets, b->packets);
        if (a->type == AVMEDIA_TYPE_VIDEO)
            continue;
        assert_int_equal(av_cmp_q(a->tb, b->tb), 0);
        assert_string_equal(a->sha, b->sha);
        assert_int_equal(a->end, b->end);
        if (a->type == AVMEDIA_TYPE_AUDIO) {
            audio++;
            audio_packets += a->packets;
            audio_end = b->end * av_q2d(b->tb);
        } else if (a->type == AVMEDIA_TYPE_SUBTITLE) {
            subs++;
            sub_packets += a->packets;
        }
    }
    assert_true(audio >= 1);
    assert_true(subs >= 1);
    assert_int_equal(dout.chapters, din.chapters);
    assert_string_equal(dout.title, din.title);

    /* lossless: the same pictures, frame by frame */
    t0 = vf_now();
    int64_t pictures = compare_pictures(film, out);
    double t_compare = vf_now() - t0;
    assert_int_equal(pictures, frames);

    print_message("roundtrip: %lld frames (%dx%d %s) in %d segments: pts identical %lld/%lld, "
                  "%d audio stream(s) identical (%lld packets, ends %.3f s), %d subtitle stream(s) "
                  "identical (%lld packets), %d chapters, pictures identical %lld/%lld; "
                  "decode+encode %.2f s (%.0f fps), merge %.2f s, compare %.2f s\n",
                  (long long)frames, info->width, info->height, info->pix_fmt, N_CHUNKS,
                  (long long)same_pts, (long long)frames, audio, (long long)audio_packets, audio_end,
                  subs, (long long)sub_packets, dout.chapters, (long long)pictures, (long long)frames,
                  t_encode, frames / t_encode, t_merge, t_compare);
    vf_shard_media_info_destroy(&o);
    /* VF_ROUNDTRIP_KEEP=PATH keeps the merged film there, for a look with ffprobe */
    const char *keep = getenv("VF_ROUNDTRIP_KEEP");
    if (!keep || rename(out, keep) != 0)
        unlink(out);
}

/* ---- refusals ----------------------------------------------------------------------------- */

/* Temporary files (the merge's ".<name>.<pid>-<n>.tmp.<ext>", a segment's "<path>.<pid>-<n>.tmp")
 * left in the work folder. */
static int count_tmp_files(void)
{
    DIR *d = opendir(workdir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

static void expect_nothing_at(const char *out)
{
    assert_false(exists(out));
    assert_int_equal(count_tmp_files(), 0);
}

static void merge_refuses_bad_segments(void **state)
{
    (void)state;
    struct vf_error err = {0};
    char out[600];
    snprintf(out, sizeof out, "%s/refused.mkv", workdir);
    for (int k = 0; k < N_CHUNKS; k++)
        if (!exists(segments[k]))
            skip(); /* the round trip did not make them */

    /* a segment left out of the list */
    const char *list[N_CHUNKS];
    for (int k = 0; k < N_CHUNKS; k++)
        list[k] = segments[k];
    const char *missing[N_CHUNKS - 1];
    for (int k = 0, j = 0; k < N_CHUNKS; k++)
        if (k != 7)
            missing[j++] = segments[k];
    struct vf_merge_spec ms = {.output = out, .source = info, .segments = missing,
                               .n_segments = N_CHUNKS - 1, .copy_audio = true, .copy_subtitles = true};
    assert_int_equal(vf_shard_merge(&ms, &err), VF_ECORRUPT);
    print_message("  left out:  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "segment 7"));
    expect_nothing_at(out);

    /* a segment file that is not there */
    char gone[600];
    snprintf(gone, sizeof gone, "%s/gone.mkv", workdir);
    list[3] = gone;
    ms.segments = list;
    ms.n_segments = N_CHUNKS;
    assert_int_equal(vf_shard_merge(&ms, &err), VF_ENOENT);
    print_message("  missing:   %s\n", err.msg);
    assert_non_null(strstr(err.msg, "segment 3 of 20"));
    assert_non_null(strstr(err.msg, "missing"));
    expect_nothing_at(out);

    /* a segment with one frame too few (chunk 5 without its 4th frame) */
    char short_seg[600];
    snprintf(short_seg, sizeof short_seg, "%s/short.mkv", workdir);
    int64_t a = info->frames * 5 / N_CHUNKS, b = info->frames * 6 / N_CHUNKS;
    if (encode_chunk(short_seg, a, b, a + 3, &err) < 0)
        fail_msg("%s", err.msg);
    list[3] = segments[3];
    list[5] = short_seg;
    assert_int_equal(vf_shard_merge(&ms, &err), VF_ECORRUPT);
    print_message("  short:     %s\n", err.msg);
    assert_non_null(strstr(err.msg, "segment 5"));
    assert_non_null(strstr(err.msg, "frame 3"));
    expect_nothing_at(out);
    unlink(short_seg);

    /* outputs that cannot be written */
    list[5] = segments[5];
    char bad[1200];
    snprintf(bad, sizeof bad, "%s/no/such/folder/out.mkv", workdir);
    ms.output = bad;
    assert_int_equal(vf_shard_merge(&ms, &err), VF_ENOENT);
    print_message("  no folder: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "does not exist"));
    ms.output = workdir; /* a folder */
    assert_true(vf_shard_merge(&ms, &err) < 0);
    print_message("  a folder:  %s\n", err.msg);
    snprintf(bad, sizeof bad, "%s/dir.mkv", workdir);
    mkdir(bad, 0755);
    ms.output = bad;
    assert_int_equal(vf_shard_merge(&ms, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "is a folder"));
    rmdir(bad);
    if (geteuid() != 0) { /* root writes anywhere */
        char ro[1000];
        snprintf(ro, sizeof ro, "%s/ro", workdir);
        mkdir(ro, 0555);
        snprintf(bad, sizeof bad, "%s/out.mkv", ro);
        ms.output = bad;
        assert_int_equal(vf_shard_merge(&ms, &err), VF_EIO);
        print_message("  read-only: %s\n", err.msg);
        assert_non_null(strstr(err.msg, "no permission"));
        expect_nothing_at(bad);
        rmdir(ro);
    }
}

static int setup(void **state)
{
    (void)state;
    av_log_set_level(AV_LOG_ERROR);
    const char *env = getenv("VF_LONG_FILM");
    snprintf(film, sizeof film, "%s", env ? env : VF_TEST_DATA "/long/long.mkv");
    if (!exists(film)) {
        print_message("no %s: make it with scripts/make_test_material.sh %s (ctest -R material)\n",
                      film, VF_TEST_DATA);
        return 0; /* the tests skip */
    }
    struct vf_error err = {0};
    if (vf_shard_probe(&info, film, &err) < 0) {
        print_message("probe %s: %s\n", film, err.msg);
        return -1;
    }
    print_message("source %s: %lld frames, %dx%d %s, %d/%d fps, tb %d/%d, %d streams\n", film,
                  (long long)info->frames, info->width, info->height, info->pix_fmt, info->fps_num,
                  info->fps_den, info->tb_num, info->tb_den, info->n_streams);
    snprintf(workdir, sizeof workdir, "/tmp/vf_test_roundtrip_XXXXXX");
    if (!mkdtemp(workdir))
        return -1;
    for (int k = 0; k < N_CHUNKS; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%05d.mkv", workdir, k);
        segments[k] = strdup(p);
        if (!segments[k])
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int k = 0; k < N_CHUNKS; k++) {
        if (segments[k])
            unlink(segments[k]);
        free(segments[k]);
        segments[k] = NULL;
    }
    if (workdir[0])
        rmdir(workdir);
    vf_shard_media_info_destroy(&info);
    return 0;
}

static void skip_without_film(void **state)
{
    (void)state;
    if (!info)
        skip();
}

static void round_trip(void **state)
{
    skip_without_film(state);
    long_film_round_trip(state);
}

static void refusals(void **state)
{
    skip_without_film(state);
    merge_refuses_bad_segments(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
