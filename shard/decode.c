/*
 * shard/decode.c: frames by index, frame-exact (shard.h, docs/MEDIA.md "Seeking").
 *
 * A decoder reads the film's video stream in presentation order and returns frame i as the
 * i-th frame of one sequential decode, bit for bit, wherever it was positioned with seek.
 *
 * Seek rule: the decode starts at a keyframe packet S found in the probe's decode-order index:
 * K = the last keyframe (in decode order, at or before the target's packet) whose pts is at or
 * before the target's; when K opens an open GOP (packets decoded after K show before it, and
 * reference the previous GOP), S is the keyframe before K, so that K's leading pictures, and
 * whatever references them, are decoded from the same references as in a sequential decode.
 * HEVC and MPEG-1/2 start at K itself: their standards forbid later pictures from referencing
 * leading pictures (which are discarded, being before the target). The demuxer is seeked to
 * S's timestamp (backward), then packets are dropped until S itself arrives (matched by pts
 * and size; an overshoot retries further back); frames before the target are decoded and
 * discarded. Every decoded frame is mapped to its index by its pts (binary search in the
 * probe's index), so a frame the decoder dropped or invented is an error, never a shift.
 *
 * Invariants: dec->next is the index the next read returns; when dec->ready, dec->frame holds
 * frame dec->next. Buffers (swscale contexts, luma/RGB planes) are allocated at create.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avconfig.h>
#include <libavutil/cpu.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "shard/internal.h"

static const struct vf_log_ctx log_ctx = {.module = "shard", .rank = -1, .chunk = -1};

/* How far back (seconds) successive seek attempts go before the start packet when the demuxer
 * lands after it; the last attempt seeks to the start of the file. */
static const double seek_backoff_s[] = {0, 0, 1, 4, 16, 64};
#define SEEK_ATTEMPTS ((int)(sizeof seek_backoff_s / sizeof seek_backoff_s[0]) + 1)
/* A keyframe opens an open GOP when one of the packets right after it (decode order) shows
 * before it; leading pictures follow their keyframe immediately, so a few packets suffice. */
#define LEADING_SCAN 32

struct vf_decoder {
    const struct vf_media_info *info; /* borrowed */
    unsigned flags;             /* enum vf_decode_flags */
    AVFormatContext *fmt;
    AVStream *st;
    AVCodecContext *cc;
    AVPacket *pkt;
    AVFrame *frame;
    bool ready;                 /* frame holds frame `next`, not yet returned */
    bool flushing;              /* the demuxer hit EOF, the decoder was sent its flush packet */
    bool ended;                 /* the decoder returned AVERROR_EOF */
    int64_t next;               /* index the next read returns */

    enum AVPixelFormat src_fmt; /* the stream's pixel format; frames must keep it */
    bool luma_direct;           /* luma points into frame->data[0] */
    int luma_bits;
    struct SwsContext *luma_sws; /* RGB or palette: Y' into luma_buf */
    uint16_t *luma_row;         /* other YUV and grey: component 0 read into luma_buf, a row at a
                                   time through this (av_read_image_line2) */
    uint8_t *luma_buf[4];
    int luma_linesize[4];
    struct SwsContext *rgb_sws; /* VF_DECODE_RGB */
    uint8_t *rgb_buf[4];
    int rgb_linesize[4];
    int rgb_bits;
};

/* ---- setup -------------------------------------------------------------------------------- */

int vf_shard_decode_threads_(void)
{
    const int cpus = av_cpu_count();   /* the affinity mask's, as FFmpeg's auto */
    return cpus > 1 ? (cpus + 1 < 16 ? cpus + 1 : 16) : 1;
}

/* A YUV or grey format whose luma samples are whole code values of 8 to 16 bits somewhere in
 * memory (planar, packed, either endian: yuv*, gray*, uyvy422, p010 ...). */
static bool luma_is_readable(const AVPixFmtDescriptor *d)
{
    return !vf_shard_is_rgb_(d) &&
           !(d->flags & (AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_FLOAT)) &&
           d->comp[0].depth >= 8 && d->comp[0].depth <= 16;
}

/* Of those, the Y plane can be used in place: planar, first plane, one sample per step, native
 * endian, no shift (yuv*, gray*, nv12/nv21 ...). */
static bool luma_is_direct(const AVPixFmtDescriptor *d)
{
    if (!luma_is_readable(d))
        return false;
    if (!!(d->flags & AV_PIX_FMT_FLAG_BE) != !!AV_HAVE_BIGENDIAN && d->comp[0].depth > 8)
        return false;
    const AVComponentDescriptor *c = &d->comp[0];
    return c->plane == 0 && c->offset == 0 && c->shift == 0 && c->step == (c->depth > 8 ? 2 : 1);
}

static enum AVPixelFormat gray_fmt(int depth)
{
    switch (depth) {
    case 8: return AV_PIX_FMT_GRAY8;
    case 9: return AV_PIX_FMT_GRAY9;
    case 10: return AV_PIX_FMT_GRAY10;
    case 12: return AV_PIX_FMT_GRAY12;
    case 14: return AV_PIX_FMT_GRAY14;
    default: return depth < 8 ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_GRAY16;
    }
}

/* yuvj* are yuv* with full range: swscale wants the plain format and the range set apart. */
static enum AVPixelFormat unjpeg(enum AVPixelFormat f, int *full)
{
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full = 1; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

/* One swscale context from the stream's format to `dst` at the same size, with the stream's
 * matrix and range in, full range out. */
static int make_sws(struct SwsContext **out, const struct vf_decoder *dec, enum AVPixelFormat dst,
                    struct vf_error *err)
{
    int full = dec->cc->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat src = unjpeg(dec->src_fmt, &full);
    int w = dec->cc->width, h = dec->cc->height;
    const int *coef = sws_getCoefficients(vf_shard_sws_matrix_(dec->cc->colorspace, h));
    struct SwsContext *s = sws_getContext(w, h, src, w, h, dst,
                                          SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT |
                                              SWS_FULL_CHR_H_INP | SWS_BITEXACT,
                                          NULL, NULL, NULL);
    if (!s)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "%s: swscale cannot convert %s to %s; transcode the film to yuv420p or "
                            "yuv444p first", dec->info->path, av_get_pix_fmt_name(src),
                            av_get_pix_fmt_name(dst));
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(src);
    if (vf_shard_is_rgb_(d))
        full = 1; /* RGB in: full range by nature */
    /* the same matrix both ways: YUV->RGB uses inv_table, RGB->gray uses table */
    if (sws_setColorspaceDetails(s, coef, full, coef, 1, 0, 1 << 16, 1 << 16) < 0)
        vf_log(&log_ctx, VF_LOG_WARN, "%s: swscale ignores the colour matrix for %s -> %s",
               dec->info->path, av_get_pix_fmt_name(src), av_get_pix_fmt_name(dst));
    *out = s;
    return VF_OK;
}

static int setup_conversions(struct vf_decoder *dec, struct vf_error *err)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(dec->src_fmt);
    int w = dec->cc->width, h = dec->cc->height;
    int depth = d->comp[0].depth;
    int rc;
    dec->luma_direct = luma_is_direct(d);
    if (dec->luma_direct) {
        dec->luma_bits = depth;
    } else if (luma_is_readable(d)) {
        /* packed or big-endian YUV and grey, p010 ...: the luma's own code values, range and
         * depth, read exactly (swscale would turn them to full range for some of these) */
        dec->luma_bits = depth;
        dec->luma_row = vf_calloc((size_t)w, sizeof *dec->luma_row, err);
        if (!dec->luma_row)
            return VF_ENOMEM;
        VF_CHECK_AV(av_image_alloc(dec->luma_buf, dec->luma_linesize, w, h,
                                   depth > 8 ? AV_PIX_FMT_GRAY16 : AV_PIX_FMT_GRAY8, 64),
                    err, fail);
    } else {
        enum AVPixelFormat g = gray_fmt(depth);
        dec->luma_bits = av_pix_fmt_desc_get(g)->comp[0].depth;
        if ((rc = make_sws(&dec->luma_sws, dec, g, err)) < 0)
            return rc;
        VF_CHECK_AV(av_image_alloc(dec->luma_buf, dec->luma_linesize, w, h, g, 64), err, fail);
    }
    if (dec->flags & VF_DECODE_RGB) {
        enum AVPixelFormat rgb = depth > 8 ? AV_PIX_FMT_GBRP16 : AV_PIX_FMT_GBRP;
        dec->rgb_bits = depth > 8 ? 16 : 8;
        if ((rc = make_sws(&dec->rgb_sws, dec, rgb, err)) < 0)
            return rc;
        VF_CHECK_AV(av_image_alloc(dec->rgb_buf, dec->rgb_linesize, w, h, rgb, 64), err, fail);
    }
    return VF_OK;
fail:
    return err->code;
}

int vf_shard_decoder_create(struct vf_decoder **out, const struct vf_media_info *info,
                            unsigned flags, struct vf_error *err)
{
    struct vf_error local;
    if (!err)
        err = &local;
    vf_error_clear(err);
    *out = NULL;
    VF_ASSERT(info && info->packets_ && info->frames > 0);
    struct vf_decoder *dec = vf_calloc(1, sizeof *dec, err);
    if (!dec)
        return VF_ENOMEM;
    dec->info = info;
    dec->flags = flags;

    VF_CHECK_AV(vf_shard_open_input_(&dec->fmt, info->path), err, fail);
    VF_CHECK_AV(avformat_find_stream_info(dec->fmt, NULL), err, fail);
    if (info->video_stream < 0 || info->video_stream >= (int)dec->fmt->nb_streams ||
        dec->fmt->streams[info->video_stream]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) {
        vf_error_set(err, VF_EMEDIA, "stream %d is not a video stream any more", info->video_stream);
        goto fail;
    }
    vf_shard_genpts_(dec->fmt, info->video_stream);   /* the probe's timing, packet for packet */
    dec->st = dec->fmt->streams[info->video_stream];
    for (unsigned i = 0; i < dec->fmt->nb_streams; i++)
        if ((int)i != info->video_stream)
            dec->fmt->streams[i]->discard = AVDISCARD_ALL;

    const AVCodec *codec = avcodec_find_decoder(dec->st->codecpar->codec_id);
    if (!codec) {
        vf_error_set(err, VF_EUNSUPPORTED, "no decoder for the video codec %s", info->codec);
        goto fail;
    }
    dec->cc = avcodec_alloc_context3(codec);
    VF_CHECK_AV_ALLOC(dec->cc, err, fail);
    VF_CHECK_AV(avcodec_parameters_to_context(dec->cc, dec->st->codecpar), err, fail);
    dec->cc->pkt_timebase = dec->st->time_base;
    /* Frame and slice threads: FFmpeg's threaded decoders output the same bytes as the
     * single-threaded ones (checked by tests/test_decode.c against every seek). */
    dec->cc->thread_count = 0;   /* FFmpeg's auto: vf_shard_decode_threads_ counts its frame threads */
    dec->cc->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    VF_CHECK_AV(avcodec_open2(dec->cc, codec, NULL), err, fail);
    dec->src_fmt = dec->cc->pix_fmt;
    if (dec->src_fmt == AV_PIX_FMT_NONE || dec->cc->width <= 0 || dec->cc->height <= 0) {
        vf_error_set(err, VF_EMEDIA, "the decoder does not know the size or pixel format");
        goto fail;
    }
    dec->pkt = av_packet_alloc();
    VF_CHECK_AV_ALLOC(dec->pkt, err, fail);
    dec->frame = av_frame_alloc();
    VF_CHECK_AV_ALLOC(dec->frame, err, fail);
    if (setup_conversions(dec, err) < 0)
        goto fail;
    *out = dec;
    return VF_OK;
fail:
    vf_error_prefix(err, "%s: cannot open the video for decoding (was it changed since it was "
                         "probed?)", info->path);
    vf_shard_decoder_destroy(&dec);
    return err->code;
}

void vf_shard_decoder_destroy(struct vf_decoder **decp)
{
    if (!decp || !*decp)
        return;
    struct vf_decoder *dec = *decp;
    sws_freeContext(dec->luma_sws);
    free(dec->luma_row);
    sws_freeContext(dec->rgb_sws);
    av_freep(&dec->luma_buf[0]);
    av_freep(&dec->rgb_buf[0]);
    av_frame_free(&dec->frame);
    av_packet_free(&dec->pkt);
    avcodec_free_context(&dec->cc);
    avformat_close_input(&dec->fmt);
    free(dec);
    *decp = NULL;
}

/* ---- decoding ----------------------------------------------------------------------------- */

static int64_t byte_pos(const struct vf_decoder *dec)
{
    return dec->fmt->pb ? avio_tell(dec->fmt->pb) : -1;
}

/* Feed the decoder one video packet (or its flush packet at EOF). */
static int feed(struct vf_decoder *dec, struct vf_error *err)
{
    for (;;) {
        int ret = av_read_frame(dec->fmt, dec->pkt);
        if (ret == AVERROR_EOF) {
            dec->flushing = true;
            VF_CHECK_AV(avcodec_send_packet(dec->cc, NULL), err, fail);
            return VF_OK;
        }
        VF_CHECK_(ret < 0, err, VF_EMEDIA, fail_demux, "av_read_frame", av_err2str(ret));
        if (dec->pkt->stream_index != dec->st->index || dec->pkt->size == 0) {
            av_packet_unref(dec->pkt); /* an empty packet is no frame (and would flush) */
            continue;
        }
        ret = avcodec_send_packet(dec->cc, dec->pkt);
        av_packet_unref(dec->pkt);
        if (ret == AVERROR_INVALIDDATA) {
            /* a damaged packet: FFmpeg goes on; if it costs a frame, next_frame says which */
            vf_log(&log_ctx, VF_LOG_WARN, "%s: damaged video data near frame %" PRId64 " (byte %" PRId64 ")",
                   dec->info->path, dec->next, byte_pos(dec));
            return VF_OK;
        }
        VF_CHECK_(ret < 0, err, VF_EMEDIA, fail, "avcodec_send_packet", av_err2str(ret));
        return VF_OK;
    }
fail_demux:
    return vf_error_prefix(err, "%s: demuxing failed near frame %" PRId64 " (byte %" PRId64 "); the "
                                "file is damaged or was truncated since it was probed",
                           dec->info->path, dec->next, byte_pos(dec));
fail:
    return vf_error_prefix(err, "%s: decoding failed near frame %" PRId64, dec->info->path, dec->next);
}

/* Decode until dec->frame holds frame dec->next (frames before it are discarded). Returns 1,
 * 0 at the end of the stream, < 0 on error. */
static int next_frame(struct vf_decoder *dec, struct vf_error *err)
{
    const struct vf_media_info *info = dec->info;
    while (!dec->ready) {
        if (dec->ended)
            goto end;
        int ret = avcodec_receive_frame(dec->cc, dec->frame);
        if (ret == AVERROR(EAGAIN)) {
            if (dec->flushing) {
                vf_error_set(err, VF_EINTERNAL, "%s: the decoder wants input after its flush",
                             info->path);
                return err->code;
            }
            if (feed(dec, err) < 0)
                return err->code;
            continue;
        }
        if (ret == AVERROR_EOF) {
            dec->ended = true;
            continue;
        }
        if (ret < 0) {   /* FFmpeg's decoders say little more than "invalid data" here */
            /* within the last few frames (a reorder window): perhaps a file cut short */
            const bool near_end = dec->next + 4 >= info->frames;
            char av[AV_ERROR_MAX_STRING_SIZE] = "its decoder gave no reason";   /* -1 */
            if (ret != -1)
                av_strerror(ret, av, sizeof av);
            vf_error_set(err, VF_EMEDIA,
                         "%s: frame %" PRId64 " (pts %" PRId64 ") does not decode (FFmpeg: %s); "
                         "the stream is damaged there%s: re-encode the film (ffmpeg -i IN -map 0 "
                         "-c copy -c:v ffv1 OUT.mkv: FFmpeg's decoder hides the damage), or check "
                         "the source",
                         info->path, dec->next,
                         dec->next < info->frames ? info->pts[dec->next] : (int64_t)-1, av,
                         near_end ? ", or its last frame was cut short" : "");
            return err->code;
        }
        int64_t ts = dec->frame->pts != AV_NOPTS_VALUE ? dec->frame->pts
                                                       : dec->frame->best_effort_timestamp;
        int64_t idx = ts == AV_NOPTS_VALUE ? -1 : vf_shard_frame_of_pts_(info, ts);
        if (idx < 0) {
            vf_error_set(err, VF_EMEDIA,
                         "%s: the decoder produced a frame with timestamp %" PRId64 " (near frame %"
                         PRId64 ") that the probe's index does not hold; the file changed since "
                         "it was probed, or its timestamps are broken: re-time the frames "
                         "(losslessly: ffmpeg -i IN -map 0 -c copy -vf setpts=N/FRAME_RATE/TB "
                         "-c:v ffv1 OUT.mkv)",
                         info->path, ts, dec->next);
            return err->code;
        }
        if (idx < dec->next) { /* before the target of a seek, or a leading picture */
            av_frame_unref(dec->frame);
            continue;
        }
        if (idx > dec->next) {
            vf_error_set(err, VF_EMEDIA,
                         "%s: frame %" PRId64 " (pts %" PRId64 ") was never decoded: the decoder "
                         "went on to frame %" PRId64 "; the stream is damaged there%s: "
                         "re-encode the film (e.g. to FFV1), or check the source",
                         info->path, dec->next, info->pts[dec->next], idx,
                         idx + 4 >= info->frames ? ", or the file was cut short there" : "");
            return err->code;
        }
        /* against the probe's size (the decoder's own follows a new sequence header) */
        if (dec->frame->format != dec->src_fmt || dec->frame->width != info->width ||
            dec->frame->height != info->height) {
            vf_error_set(err, VF_EUNSUPPORTED,
                         "%s: frame %" PRId64 " is %dx%d %s but the stream began %dx%d %s; vaefarm "
                         "needs one size and pixel format for the whole film: transcode it "
                         "(ffmpeg -i IN -vf scale=%d:%d -c:v ffv1 OUT.mkv)",
                         info->path, idx, dec->frame->width, dec->frame->height,
                         av_get_pix_fmt_name(dec->frame->format), info->width, info->height,
                         av_get_pix_fmt_name(dec->src_fmt), info->width, info->height);
            return err->code;
        }
        dec->ready = true;
    }
    return 1;
end:
    if (dec->next < info->frames) {
        vf_error_set(err, VF_EMEDIA,
                     "%s: the decoder ended after frame %" PRId64 " but the film has %" PRId64
                     " frames; the stream is damaged or was truncated since it was probed",
                     info->path, dec->next - 1, info->frames);
        return err->code;
    }
    return 0;
}

int vf_shard_decoder_read(struct vf_decoder *dec, struct vf_frame *f, struct vf_error *err)
{
    struct vf_error local;
    if (!err)
        err = &local;
    vf_error_clear(err);
    int rc = next_frame(dec, err);
    if (rc <= 0)
        return rc;
    AVFrame *av = dec->frame;
    memset(f, 0, sizeof *f);
    f->index = dec->next;
    f->pts = dec->info->pts[dec->next];
    f->width = av->width;
    f->height = av->height;
    f->luma_bits = dec->luma_bits;
    f->av = av;
    if (dec->luma_direct) {
        f->luma = av->data[0];
        f->luma_stride = av->linesize[0];
    } else if (dec->luma_row) {
        const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(dec->src_fmt);
        for (int y = 0; y < av->height; y++) {
            uint8_t *row = dec->luma_buf[0] + (size_t)y * dec->luma_linesize[0];
            uint16_t *dst = dec->luma_bits > 8 ? (uint16_t *)row : dec->luma_row;
            av_read_image_line2(dst, (const uint8_t **)av->data, av->linesize, d, 0, y, 0, av->width,
                                0, 2);
            if (dec->luma_bits == 8)
                for (int x = 0; x < av->width; x++)
                    row[x] = (uint8_t)dec->luma_row[x];
        }
        f->luma = dec->luma_buf[0];
        f->luma_stride = dec->luma_linesize[0];
    } else {
        VF_CHECK_AV(sws_scale(dec->luma_sws, (const uint8_t *const *)av->data, av->linesize, 0,
                              av->height, dec->luma_buf, dec->luma_linesize),
                    err, fail);
        f->luma = dec->luma_buf[0];
        f->luma_stride = dec->luma_linesize[0];
    }
    if (dec->rgb_sws) {
        /* GBRP planes are stored G, B, R */
        VF_CHECK_AV(sws_scale(dec->rgb_sws, (const uint8_t *const *)av->data, av->linesize, 0,
                              av->height, dec->rgb_buf, dec->rgb_linesize),
                    err, fail);
        f->rgb[0] = dec->rgb_buf[2];
        f->rgb[1] = dec->rgb_buf[0];
        f->rgb[2] = dec->rgb_buf[1];
        f->rgb_stride = dec->rgb_linesize[0];
        f->rgb_bits = dec->rgb_bits;
    }
    dec->ready = false; /* av stays referenced until the next read's receive */
    dec->next++;
    return 1;
fail:
    return vf_error_prefix(err, "%s: converting frame %" PRId64, dec->info->path, dec->next);
}

/* ---- seeking ------------------------------------------------------------------------------ */

/* Codecs whose standard forbids pictures that follow a keyframe in presentation order from
 * referencing its leading pictures: HEVC (RASL pictures are never references of trailing
 * pictures) and MPEG-1/2 (B-pictures are never references). For them the decode may start at
 * the keyframe itself even when its GOP is open. */
static bool leading_never_referenced(enum AVCodecID id)
{
    return id == AV_CODEC_ID_HEVC || id == AV_CODEC_ID_MPEG2VIDEO || id == AV_CODEC_ID_MPEG1VIDEO;
}

/* Decode position of the packet a decode must start from to produce frame `index` exactly. */
static int64_t start_packet(const struct vf_decoder *dec, int64_t index)
{
    const struct vf_media_info *info = dec->info;
    const struct vf_packet_index *idx = info->packets_;
    int64_t target_pts = info->pts[index];
    int64_t k = idx->decode_pos[index];
    while (k > 0 && !(idx->pkt[k].key && idx->pkt[k].pts <= target_pts))
        k--;
    if (leading_never_referenced(dec->st->codecpar->codec_id))
        return k;
    /* open GOP: leading pictures of K may be references for what follows: start one GOP earlier */
    bool open = false;
    for (int64_t j = k + 1; j < idx->n && j <= k + LEADING_SCAN; j++)
        if (idx->pkt[j].pts < idx->pkt[k].pts) {
            open = true;
            break;
        }
    /* H.264: a non-IDR keyframe (x264's open-GOP I-frame, a recovery point) is not always a
     * clean start for FFmpeg's decoder: after a flush it may never output a P-frame that follows
     * it (seen on the last GOP of codecs/h264.mkv: frame 249 was lost). The packet index cannot
     * tell IDR from non-IDR, so H.264 always starts one GOP earlier; by the time the decode
     * reaches K the decoder holds the same references as a sequential decode. */
    if (dec->st->codecpar->codec_id == AV_CODEC_ID_H264)
        open = true;
    if (open && k > 0) {
        k--;
        while (k > 0 && !idx->pkt[k].key)
            k--;
    }
    return k;
}

/* Is the packet just read the start packet, before it, or past it (1, 0, -1)? */
static int locate(const struct vf_decoder *dec, const AVPacket *pkt, int64_t start)
{
    const struct vf_media_info *info = dec->info;
    const struct vf_packet_entry *s = &info->packets_->pkt[start];
    int64_t pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
    int64_t i = pts == AV_NOPTS_VALUE ? -1 : vf_shard_frame_of_pts_(info, pts);
    if (i >= 0) {
        int64_t j = info->packets_->decode_pos[i];
        if (j == start)
            return pkt->size == s->size ? 1 : 0;
        return j < start ? 0 : -1;
    }
    if (pkt->pos >= 0 && s->pos >= 0)
        return pkt->pos < s->pos ? 0 : -1;
    if (pkt->dts != AV_NOPTS_VALUE && s->dts != AV_NOPTS_VALUE)
        return pkt->dts < s->dts ? 0 : -1;
    return 0;
}

/* Position the demuxer so that the next video packet it returns is packet `start`, which is
 * then sent to the (flushed) decoder. */
static int position_at(struct vf_decoder *dec, int64_t start, struct vf_error *err)
{
    const struct vf_packet_entry *s = &dec->info->packets_->pkt[start];
    AVRational tb = dec->st->time_base;
    /* No keyframe in the index at or before the start packet: the first frames depend on
     * packets that are no frame and so are not in the index (an MP4/MOV edit list's discarded
     * lead-in, whose keyframe is hidden). Decode from the top of the file, feeding every packet
     * (the decoder drops the discarded packets' frames, as in a sequential decode). */
    bool from_top = !s->key;
    for (int attempt = from_top ? SEEK_ATTEMPTS - 1 : 0; attempt < SEEK_ATTEMPTS; attempt++) {
        int ret;
        if (attempt == SEEK_ATTEMPTS - 1) {
            /* from the top: the first packet of the file, else byte 0 */
            const struct vf_packet_entry *p0 = &dec->info->packets_->pkt[0];
            int64_t ts = p0->dts != AV_NOPTS_VALUE && p0->dts < p0->pts ? p0->dts : p0->pts;
            ret = av_seek_frame(dec->fmt, dec->st->index, ts, AVSEEK_FLAG_BACKWARD);
            if (ret < 0)
                ret = av_seek_frame(dec->fmt, dec->st->index, 0, AVSEEK_FLAG_BYTE);
        } else {
            /* first by pts (Matroska/MP4 index keyframes by pts), then by dts, then further back */
            int64_t ts = attempt == 0 || s->dts == AV_NOPTS_VALUE ? s->pts : s->dts;
            ts -= av_rescale_q((int64_t)(seek_backoff_s[attempt] * 1000), (AVRational){1, 1000}, tb);
            ret = av_seek_frame(dec->fmt, dec->st->index, ts, AVSEEK_FLAG_BACKWARD);
        }
        if (ret < 0)
            continue;
        avcodec_flush_buffers(dec->cc);
        dec->flushing = dec->ended = dec->ready = false;
        if (from_top)
            return VF_OK; /* feed() sends everything from here */
        for (;;) {
            ret = av_read_frame(dec->fmt, dec->pkt);
            if (ret < 0)
                break; /* EOF or error before the start packet: try further back */
            if (dec->pkt->stream_index != dec->st->index || dec->pkt->size == 0) {
                av_packet_unref(dec->pkt);
                continue;
            }
            int where = locate(dec, dec->pkt, start);
            if (where == 1) {
                ret = avcodec_send_packet(dec->cc, dec->pkt);
                av_packet_unref(dec->pkt);
                VF_CHECK_(ret < 0, err, VF_EMEDIA, fail, "avcodec_send_packet", av_err2str(ret));
                return VF_OK;
            }
            av_packet_unref(dec->pkt);
            if (where < 0)
                break; /* overshot */
        }
    }
    return vf_error_set(err, VF_EMEDIA,
                        "%s: cannot seek to the keyframe at pts %" PRId64 " (packet %" PRId64
                        "): the demuxer never returns it; the file is not seekable: remux it to "
                        "Matroska (ffmpeg -i IN -c copy OUT.mkv)",
                        dec->info->path, s->pts, start);
fail:
    return err->code;
}

int vf_shard_decoder_seek(struct vf_decoder *dec, int64_t index, struct vf_error *err)
{
    struct vf_error local;
    if (!err)
        err = &local;
    vf_error_clear(err);
    const struct vf_media_info *info = dec->info;
    if (index < 0 || index >= info->frames)
        return vf_error_set(err, VF_EINVAL, "%s: frame %" PRId64 " does not exist (the film has %"
                                            PRId64 " frames: 0..%" PRId64 ")",
                            info->path, index, info->frames, info->frames - 1);
    if (index == dec->next && (dec->ready || !dec->ended))
        return VF_OK;
    int64_t start = start_packet(dec, index);
    int64_t start_frame = vf_shard_frame_of_pts_(info, info->packets_->pkt[start].pts);
    VF_ASSERT(start_frame >= 0);
    if (index > dec->next && start_frame <= dec->next && !dec->ended) {
        /* the decode is already past the start keyframe: just decode forward */
        if (dec->ready)
            av_frame_unref(dec->frame);
        dec->ready = false;
        dec->next = index;
    } else {
        int rc = position_at(dec, start, err);
        if (rc < 0)
            return vf_error_prefix(err, "seeking to frame %" PRId64, index);
        dec->next = index;
    }
    int rc = next_frame(dec, err);
    if (rc == 0)
        return vf_error_set(err, VF_EMEDIA, "%s: frame %" PRId64 " could not be decoded (the "
                                            "stream ended first)", info->path, index);
    return rc < 0 ? vf_error_prefix(err, "seeking to frame %" PRId64, index) : VF_OK;
}
