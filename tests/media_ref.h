/*
 * tests/media_ref.h: the tests' ground truth for decoding, written with plain libavcodec and
 * independent of shard/decode.c: one single-threaded sequential decode of the best video
 * stream, calling `on_frame` for every frame it outputs, in output order. Header-only (static),
 * for test programs; returns the frame count, or -1 when the file cannot be opened.
 */
#ifndef VF_TESTS_MEDIA_REF_H
#define VF_TESTS_MEDIA_REF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

typedef void (*media_ref_frame_fn)(const AVFrame *frame, int64_t index, void *opaque);

static int64_t media_ref_decode(const char *path, media_ref_frame_fn on_frame, void *opaque)
{
    AVFormatContext *fmt = NULL;
    if (avformat_open_input(&fmt, path, NULL, NULL) < 0)
        return -1;
    assert_true(avformat_find_stream_info(fmt, NULL) >= 0);
    int vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    assert_true(vs >= 0);
    const AVCodec *codec = avcodec_find_decoder(fmt->streams[vs]->codecpar->codec_id);
    assert_non_null(codec);
    AVCodecContext *cc = avcodec_alloc_context3(codec);
    assert_non_null(cc);
    assert_true(avcodec_parameters_to_context(cc, fmt->streams[vs]->codecpar) >= 0);
    cc->thread_count = 1;
    assert_int_equal(avcodec_open2(cc, codec, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    assert_true(pkt && fr);
    int64_t n = 0;
    bool eof = false;
    for (;;) {
        int ret = avcodec_receive_frame(cc, fr);
        if (ret == AVERROR_EOF)
            break;
        if (ret == AVERROR(EAGAIN)) {
            assert_false(eof);
            if (av_read_frame(fmt, pkt) < 0) {
                eof = true;
                assert_true(avcodec_send_packet(cc, NULL) >= 0);
            } else {
                /* a damaged packet is the decoder's to report through the frames it loses */
                if (pkt->stream_index == vs && pkt->size > 0)
                    (void)avcodec_send_packet(cc, pkt);
                av_packet_unref(pkt);
            }
            continue;
        }
        assert_int_equal(ret, 0);
        if (on_frame)
            on_frame(fr, n, opaque);
        n++;
        av_frame_unref(fr);
    }
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    avformat_close_input(&fmt);
    return n;
}

/* Material the fixture always makes (tests/MATERIAL.md): a missing file means its script failed,
 * which must fail the test rather than skip it. */
static void media_ref_require(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s is missing: the media fixture (scripts/make_test_material.sh) always makes "
                 "it, so its script failed; rerun it and check its log", path);
    fclose(f);
}

#endif /* VF_TESTS_MEDIA_REF_H */
