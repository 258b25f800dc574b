/*
 * shard/probe.c: what the film is (shard.h, docs/MEDIA.md).
 *
 * The probe demuxes the whole video stream once, without decoding it (but for the first
 * frame, decoded only to read a timecode the codec carries), and builds the frame index:
 * every packet of the video stream is one frame; sorting their presentation timestamps gives
 * frame i's pts. Everything vaefarm does afterwards (chunks, seeking, merging) works in these
 * frame indices, so the count is exact, never estimated from a duration.
 *
 * Invariants of a returned vf_media_info: frames > 0; pts[] strictly ascending (duplicate
 * timestamps are refused); frame_duration[i] > 0; packets_ holds the decode-order index with
 * decode_pos a permutation of 0..frames-1.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/hash.h>
#include <libavutil/pixdesc.h>
#include <libavutil/timecode.h>

#include "shard/internal.h"

static const struct vf_log_ctx log_ctx = {.module = "shard", .rank = -1, .chunk = -1};

/* How many packets the probe feeds the decoder, at most, to get the first frame's timecode. */
#define FIRST_FRAME_MAX_PACKETS 64

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static enum vf_stream_kind kind_of(enum AVMediaType t)
{
    switch (t) {
    case AVMEDIA_TYPE_VIDEO: return VF_STREAM_VIDEO;
    case AVMEDIA_TYPE_AUDIO: return VF_STREAM_AUDIO;
    case AVMEDIA_TYPE_SUBTITLE: return VF_STREAM_SUBTITLE;
    case AVMEDIA_TYPE_DATA: return VF_STREAM_DATA;
    default: return VF_STREAM_OTHER;
    }
}

static const char *field_order_name(enum AVFieldOrder f)
{
    switch (f) {
    case AV_FIELD_PROGRESSIVE: return "progressive";
    case AV_FIELD_TT: return "tt";
    case AV_FIELD_BB: return "bb";
    case AV_FIELD_TB: return "tb";
    case AV_FIELD_BT: return "bt";
    default: return "unknown";
    }
}

/* A stream's duration in seconds as the container declares it: the stream's own duration, else
 * Matroska's per-stream "DURATION" tag (HH:MM:SS.fffffffff), which FFmpeg's muxer writes as the
 * stream's end time: less its start time, so that a reel that starts later than 0 (ffmpeg's
 * segment muxer keeps the timestamps) is not taken for a longer one; -1 when unknown. */
static double stream_duration(const AVStream *st)
{
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        return st->duration * av_q2d(st->time_base);
    const AVDictionaryEntry *e = av_dict_get(st->metadata, "DURATION", NULL, 0);
    unsigned h, m;
    double s;
    if (e && sscanf(e->value, "%u:%u:%lf", &h, &m, &s) == 3) {
        const double end = h * 3600.0 + m * 60.0 + s;
        const double start = st->start_time != AV_NOPTS_VALUE && st->start_time > 0
                                 ? st->start_time * av_q2d(st->time_base) : 0.0;
        return end > start ? end - start : end;
    }
    return -1;
}

static int fill_streams(struct vf_media_info *info, const AVFormatContext *fmt,
                        struct vf_error *err)
{
    info->n_streams = (int)fmt->nb_streams;
    info->streams = vf_calloc(fmt->nb_streams, sizeof *info->streams, err);
    if (!info->streams)
        return VF_ENOMEM;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        struct vf_stream_info *s = &info->streams[i];
        const AVDictionaryEntry *lang = av_dict_get(st->metadata, "language", NULL, 0);
        s->index = st->index;
        s->kind = kind_of(st->codecpar->codec_type);
        copy_str(s->codec, sizeof s->codec, avcodec_get_name(st->codecpar->codec_id));
        copy_str(s->language, sizeof s->language, lang ? lang->value : "");
        if (s->kind == VF_STREAM_AUDIO) {
            s->sample_rate = st->codecpar->sample_rate;
            s->channels = st->codecpar->ch_layout.nb_channels;
        }
        s->duration = stream_duration(st);
    }
    return VF_OK;
}

/* Timecode from the frame's side data: SMPTE 12M (H.264/HEVC SEI) or an MPEG-2 GOP header. */
static void timecode_from_frame(struct vf_media_info *info, const AVFrame *f, AVRational rate)
{
    char buf[AV_TIMECODE_STR_SIZE];
    const AVFrameSideData *sd = av_frame_get_side_data(f, AV_FRAME_DATA_S12M_TIMECODE);
    if (sd && sd->size >= 2 * sizeof(uint32_t)) {
        const uint32_t *tc = (const uint32_t *)sd->data;
        if (tc[0] >= 1) {
            copy_str(info->timecode, sizeof info->timecode,
                     av_timecode_make_smpte_tc_string2(buf, rate, tc[1], 0, 0));
            return;
        }
    }
    sd = av_frame_get_side_data(f, AV_FRAME_DATA_GOP_TIMECODE);
    if (sd && sd->size >= sizeof(int64_t)) {
        int64_t tc;
        memcpy(&tc, sd->data, sizeof tc);
        if (tc >= 0)
            copy_str(info->timecode, sizeof info->timecode,
                     av_timecode_make_mpeg_tc_string(buf, (uint32_t)tc));
    }
}

/* The first decoded frame: fills what only decoding tells (timecode side data; field order
 * and colour properties when the container left them unknown). Best effort: a failure here
 * is left for the decoder to report with its frame number. */
struct first_frame {
    AVCodecContext *cc;
    AVFrame *frame;
    int fed;                    /* packets sent */
    bool done;
};

static void first_frame_feed(struct first_frame *ff, struct vf_media_info *info, const AVPacket *pkt)
{
    if (!ff->cc || ff->done)
        return;
    if (ff->fed++ >= FIRST_FRAME_MAX_PACKETS || avcodec_send_packet(ff->cc, pkt) < 0) {
        ff->done = true;
        return;
    }
    if (avcodec_receive_frame(ff->cc, ff->frame) < 0)
        return;
    ff->done = true;
    const AVFrame *f = ff->frame;
    if (!info->timecode[0])
        timecode_from_frame(info, f, (AVRational){info->fps_num, info->fps_den});
    if (!strcmp(info->field_order, "unknown"))
        copy_str(info->field_order, sizeof info->field_order,
                 !f->interlaced_frame ? "progressive" : f->top_field_first ? "tt" : "bb");
    if (!strcmp(info->color_range, "unknown") && f->color_range != AVCOL_RANGE_UNSPECIFIED)
        copy_str(info->color_range, sizeof info->color_range, av_color_range_name(f->color_range));
    if (!strcmp(info->color_space, "unknown") && f->colorspace != AVCOL_SPC_UNSPECIFIED)
        copy_str(info->color_space, sizeof info->color_space, av_color_space_name(f->colorspace));
    av_frame_unref(ff->frame);
}

static void first_frame_open(struct first_frame *ff, const AVStream *st)
{
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    memset(ff, 0, sizeof *ff);
    if (!codec || !(ff->cc = avcodec_alloc_context3(codec)) || !(ff->frame = av_frame_alloc()) ||
        avcodec_parameters_to_context(ff->cc, st->codecpar) < 0) {
        ff->done = true;
        return;
    }
    ff->cc->thread_count = 1;
    ff->cc->pkt_timebase = st->time_base;
    if (avcodec_open2(ff->cc, codec, NULL) < 0)
        ff->done = true;
}

static void first_frame_close(struct first_frame *ff)
{
    avcodec_free_context(&ff->cc);
    av_frame_free(&ff->frame);
}

/* Append one packet to the growing decode-order index. */
static int index_push(struct vf_packet_index *idx, int64_t *cap, const struct vf_packet_entry *e,
                      struct vf_error *err)
{
    if (idx->n == *cap) {
        int64_t ncap = *cap ? *cap * 2 : 1024;
        void *p = realloc(idx->pkt, (size_t)ncap * sizeof *idx->pkt);
        if (!p)
            return vf_error_set(err, VF_ENOMEM, "out of memory indexing %" PRId64 " packets", ncap);
        idx->pkt = p;
        *cap = ncap;
    }
    idx->pkt[idx->n++] = *e;
    return VF_OK;
}

/* Digest fields: u64le len(tag) | tag | u64le len(value) | value, so that no two different
 * field sequences hash the same bytes (docs/MEDIA.md "Video digest"). */
static void hash_field(struct AVHashContext *hash, const char *tag, const void *value, size_t n)
{
    uint8_t len[8];
    size_t t = strlen(tag);
    for (int b = 0; b < 8; b++)
        len[b] = (uint8_t)((uint64_t)t >> (8 * b));
    av_hash_update(hash, len, sizeof len);
    av_hash_update(hash, (const uint8_t *)tag, t);
    for (int b = 0; b < 8; b++)
        len[b] = (uint8_t)((uint64_t)n >> (8 * b));
    av_hash_update(hash, len, sizeof len);
    if (n)
        av_hash_update(hash, value, n);
}

static void hash_str(struct AVHashContext *hash, const char *tag, const char *value)
{
    hash_field(hash, tag, value, strlen(value ? value : ""));
}

static void hash_i64(struct AVHashContext *hash, const char *tag, int64_t v)
{
    uint8_t b8[8];
    for (int b = 0; b < 8; b++)
        b8[b] = (uint8_t)((uint64_t)v >> (8 * b));
    hash_field(hash, tag, b8, sizeof b8);
}

/* The digest's header: what the stream's packets mean besides their bytes. The codec's
 * extradata (H.264/HEVC parameter sets with their VUI, FFV1's configuration record, ...) and
 * the stream properties the container declares (range, matrix, transfer, primaries, field
 * order, SAR, pixel format and bit depth, size, time base, frame rate): a remux that only
 * retags these (ffmpeg -c copy -color_range pc) changes how every frame is read and what the
 * output is tagged with, so it changes the digest. Values come from the demuxer (codecpar after
 * avformat_find_stream_info), before the first-frame decode fills in unknowns; those are read
 * from the packet data, which the digest covers anyway. */
static void hash_stream_header(struct AVHashContext *hash, const struct vf_media_info *info,
                               const AVStream *st)
{
    const AVCodecParameters *par = st->codecpar;
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(par->format);
    hash_str(hash, "digest", "vaefarm-video-digest-v2");
    hash_str(hash, "codec", avcodec_get_name(par->codec_id));
    hash_field(hash, "extradata", par->extradata, par->extradata ? (size_t)par->extradata_size : 0);
    hash_str(hash, "pix_fmt", desc ? desc->name : "unknown");
    hash_i64(hash, "bits_per_raw_sample", par->bits_per_raw_sample);
    hash_i64(hash, "width", par->width);
    hash_i64(hash, "height", par->height);
    hash_i64(hash, "sar_num", info->sar_num);
    hash_i64(hash, "sar_den", info->sar_den);
    hash_str(hash, "field_order", field_order_name(par->field_order));
    hash_i64(hash, "color_range", par->color_range);
    hash_i64(hash, "color_space", par->color_space);
    hash_i64(hash, "color_trc", par->color_trc);
    hash_i64(hash, "color_primaries", par->color_primaries);
    hash_i64(hash, "chroma_location", par->chroma_location);
    hash_i64(hash, "tb_num", st->time_base.num);
    hash_i64(hash, "tb_den", st->time_base.den);
    hash_i64(hash, "fps_num", st->r_frame_rate.num);
    hash_i64(hash, "fps_den", st->r_frame_rate.den);
}

static void hash_packet(struct AVHashContext *hash, const AVPacket *pkt, int64_t pts, int key)
{
    uint8_t meta[9];
    for (int b = 0; b < 8; b++)
        meta[b] = (uint8_t)((uint64_t)pts >> (8 * b));
    meta[8] = (uint8_t)key;
    av_hash_update(hash, meta, sizeof meta);
    av_hash_update(hash, pkt->data, (size_t)pkt->size);
}

/* Demux every packet of the video stream (others are discarded by the demuxer) into
 * info->packets_, hashing the stream header and them into video_digest. *skipped counts the
 * video packets that are no frame (empty, or flagged for discarding by an edit list): the
 * container's declared frame count includes them. */
static int demux_index(struct vf_media_info *info, AVFormatContext *fmt, AVStream *st,
                       int64_t *skipped, struct vf_error *err)
{
    int rc = VF_OK;
    int64_t cap = 0;
    AVPacket *pkt = av_packet_alloc();
    struct AVHashContext *hash = NULL;
    struct first_frame ff;
    first_frame_open(&ff, st);
    VF_CHECK_AV_ALLOC(pkt, err, out);
    VF_CHECK_AV(av_hash_alloc(&hash, "SHA256"), err, out);
    av_hash_init(hash);
    hash_stream_header(hash, info, st);
    *skipped = 0;
    info->packets_ = vf_calloc(1, sizeof *info->packets_, err);
    if (!info->packets_) {
        rc = VF_ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if ((int)i != st->index)
            fmt->streams[i]->discard = AVDISCARD_ALL;

    int64_t last_dts = AV_NOPTS_VALUE;
    for (;;) {
        int64_t byte = avio_tell(fmt->pb);
        int ret = av_read_frame(fmt, pkt);
        if (ret == AVERROR_EOF)
            break;
        if (ret < 0) {
            char msg[AV_ERROR_MAX_STRING_SIZE];
            av_strerror(ret, msg, sizeof msg);
            rc = vf_error_set(err, VF_EMEDIA,
                              "%s: demuxing stopped after %" PRId64 " video frames, at byte %" PRId64
                              ": %s; the file is damaged or truncated: re-copy it from its source",
                              info->path, info->packets_->n, byte, msg);
            goto out;
        }
        if (pkt->stream_index != st->index) {
            av_packet_unref(pkt);
            continue;
        }
        if (pkt->size == 0 || (pkt->flags & AV_PKT_FLAG_DISCARD)) {
            /* Empty packets (AVI drop markers) and packets the demuxer marks for discarding
             * (MP4 edit lists) produce no frame: they are not frames. A discarded packet is
             * still decoded (the frames after it may reference it; the decoder drops its
             * frame), so the first-frame decode gets it; the digest covers it too, as a
             * discarded packet (a different edit list is a different film). */
            if (pkt->size > 0) {
                hash_i64(hash, "discarded", pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts);
                av_hash_update(hash, pkt->data, (size_t)pkt->size);
                first_frame_feed(&ff, info, pkt);
            }
            ++*skipped;
            av_packet_unref(pkt);
            continue;
        }
        struct vf_packet_entry e = {
            .pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts,
            .dts = pkt->dts,
            .pos = pkt->pos,
            .duration = pkt->duration,
            .size = pkt->size,
            .key = (pkt->flags & AV_PKT_FLAG_KEY) != 0,
        };
        if (e.pts == AV_NOPTS_VALUE) {
            rc = vf_error_set(err, VF_EUNSUPPORTED,
                              "%s: video packet %" PRId64 " (byte %" PRId64 ") has no timestamp; "
                              "vaefarm indexes frames by timestamp: re-time the frames first "
                              "(losslessly: ffmpeg -i IN -map 0 -c copy -vf setpts=N/FRAME_RATE/TB "
                              "-c:v ffv1 OUT.mkv)",
                              info->path, info->packets_->n, pkt->pos);
            goto out;
        }
        if (pkt->pts == AV_NOPTS_VALUE && st->codecpar->video_delay > 0 &&
            !(fmt->flags & AVFMT_FLAG_GENPTS)) {
            /* H.264 or HEVC with B-frames in AVI: decode-order dts only, and no parser that
             * could give presentation times (vf_shard_genpts_); every chunk would fail */
            rc = vf_error_set(err, VF_EUNSUPPORTED,
                              "%s: its %s frames are stored without presentation times and "
                              "reordered (B-frames; %s keeps only their decode order), so "
                              "vaefarm cannot tell which frame is shown when: re-encode the video "
                              "(losslessly: ffmpeg -i IN -map 0 -c copy -c:v ffv1 OUT.mkv)",
                              info->path, avcodec_get_name(st->codecpar->codec_id),
                              fmt->iformat->name);
            goto out;
        }
        /* decode order's clock going back by more than a second: two recordings joined (cat
         * a.ts b.ts) or a reset clock. Sorted by time, the two would interleave, and no chunk
         * would decode in the index's order. Only where timestamps may jump (MPEG-TS/PS, FLV:
         * AVFMT_TS_DISCONT); elsewhere a made-up dts may step back by a reorder window */
        if ((fmt->iformat->flags & AVFMT_TS_DISCONT) && pkt->dts != AV_NOPTS_VALUE &&
            last_dts != AV_NOPTS_VALUE &&
            (double)(last_dts - pkt->dts) * av_q2d(st->time_base) > 1.0) {
            rc = vf_error_set(err, VF_EUNSUPPORTED,
                              "%s: the video's clock goes back %.3f s at packet %" PRId64 " (byte "
                              "%" PRId64 "): two recordings joined into one file (cat a.ts b.ts?) "
                              "or a reset clock; vaefarm orders frames by time, which would mix "
                              "the two: join the parts with FFmpeg's concat demuxer (ffmpeg -f "
                              "concat -safe 0 -i parts.txt -c copy OUT.mkv), or re-time the frames "
                              "(ffmpeg -i IN -map 0 -c copy -vf setpts=N/FRAME_RATE/TB -c:v ffv1 "
                              "OUT.mkv)",
                              info->path, (double)(last_dts - pkt->dts) * av_q2d(st->time_base),
                              info->packets_->n, pkt->pos);
            goto out;
        }
        if (pkt->dts != AV_NOPTS_VALUE)
            last_dts = pkt->dts;
        if (pkt->pts == AV_NOPTS_VALUE)
            info->has_b_frames |= st->codecpar->video_delay > 0; /* checked after sorting */
        if (pkt->flags & AV_PKT_FLAG_CORRUPT)
            vf_log(&log_ctx, VF_LOG_WARN, "%s: video packet %" PRId64 " is flagged corrupt by the demuxer",
                   info->path, info->packets_->n);
        hash_packet(hash, pkt, e.pts, e.key);
        first_frame_feed(&ff, info, pkt);
        rc = index_push(info->packets_, &cap, &e, err);
        av_packet_unref(pkt);
        if (rc < 0)
            goto out;
    }
    uint8_t hex[65];
    av_hash_final_hex(hash, hex, sizeof hex);
    copy_str(info->video_digest, sizeof info->video_digest, (const char *)hex);
    /* RGB and palette pictures have no limited range: swscale reads them as full range whatever
     * the tag says, and so do vaefarm's luma and its output's tag. Their matrix ("gbr": none) is
     * the one the luma is made with, which the YUV output is tagged with (docs/MEDIA.md). */
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(av_get_pix_fmt(info->pix_fmt));
    if (vf_shard_is_rgb_(d)) {
        copy_str(info->color_range, sizeof info->color_range, "pc");
        const int cs = av_color_space_from_name(info->color_space);
        if (cs < 0 || cs == AVCOL_SPC_RGB || cs == AVCOL_SPC_UNSPECIFIED)
            copy_str(info->color_space, sizeof info->color_space,
                     vf_shard_sws_matrix_(AVCOL_SPC_UNSPECIFIED, info->height) == SWS_CS_ITU709
                         ? "bt709" : "smpte170m");
    }
out:
    first_frame_close(&ff);
    av_hash_freep(&hash);
    av_packet_free(&pkt);
    return rc < 0 ? rc : err->code;
}

struct pts_pos {
    int64_t pts;
    int64_t pos;
};

static int cmp_pts_pos(const void *a, const void *b)
{
    const struct pts_pos *x = a, *y = b;
    return (x->pts > y->pts) - (x->pts < y->pts);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sort the decode-order index by pts into the per-frame arrays; frame durations; VFR; B-frames. */
static int build_frames(struct vf_media_info *info, const AVStream *st, struct vf_error *err)
{
    struct vf_packet_index *idx = info->packets_;
    int64_t n = idx->n;
    int rc = VF_OK;
    struct pts_pos *order = vf_calloc((size_t)n, sizeof *order, err);
    int64_t *deltas = vf_calloc((size_t)n, sizeof *deltas, err);
    info->pts = vf_calloc((size_t)n, sizeof *info->pts, err);
    info->frame_duration = vf_calloc((size_t)n, sizeof *info->frame_duration, err);
    info->key = vf_calloc((size_t)n, sizeof *info->key, err);
    idx->decode_pos = vf_calloc((size_t)n, sizeof *idx->decode_pos, err);
    if (!order || !deltas || !info->pts || !info->frame_duration || !info->key || !idx->decode_pos) {
        rc = VF_ENOMEM;
        goto out;
    }
    for (int64_t j = 0; j < n; j++) {
        order[j] = (struct pts_pos){idx->pkt[j].pts, j};
        if (j > 0 && idx->pkt[j].pts < idx->pkt[j - 1].pts)
            info->has_b_frames = true;
        info->keyframes += idx->pkt[j].key;
    }
    qsort(order, (size_t)n, sizeof *order, cmp_pts_pos);
    for (int64_t i = 0; i < n; i++) {
        if (i > 0 && order[i].pts == order[i - 1].pts) {
            rc = vf_error_set(err, VF_EUNSUPPORTED,
                              "%s: video packets %" PRId64 " and %" PRId64 " (decode order) share the "
                              "timestamp %" PRId64 "; vaefarm needs one timestamp per frame: "
                              "re-time the frames (losslessly: ffmpeg -i IN -map 0 -c copy -vf "
                              "setpts=N/FRAME_RATE/TB -c:v ffv1 OUT.mkv)",
                              info->path, order[i - 1].pos, order[i].pos, order[i].pts);
            goto out;
        }
        info->pts[i] = order[i].pts;
        idx->decode_pos[i] = order[i].pos;
        info->key[i] = (uint8_t)idx->pkt[order[i].pos].key;
    }
    info->start_pts = info->pts[0];

    /* Frame i lasts until frame i+1; the last frame keeps its packet's duration (else the
     * median). VFR: some frame's duration differs from the median by more than
     * max(1 tick, 0.5% of the median). */
    for (int64_t i = 0; i + 1 < n; i++)
        deltas[i] = info->frame_duration[i] = info->pts[i + 1] - info->pts[i];
    int64_t median = 0;
    if (n > 1) {
        qsort(deltas, (size_t)(n - 1), sizeof *deltas, cmp_i64);
        median = deltas[(n - 1) / 2];
    }
    if (median <= 0) {
        AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
        median = fr.num > 0 ? av_rescale_q(1, av_inv_q(fr), st->time_base) : 1;
        if (median <= 0)
            median = 1;
    }
    int64_t last_dur = idx->pkt[idx->decode_pos[n - 1]].duration;
    if (last_dur <= 0)
        last_dur = median;
    info->frame_duration[n - 1] = last_dur;
    int64_t tol = median / 200 > 1 ? median / 200 : 1;
    int64_t longest = 0;
    for (int64_t i = 0; i + 1 < n; i++) {
        const int64_t d = info->frame_duration[i];
        if (llabs(d - median) > tol)
            info->vfr = true;
        if (d > longest) {
            longest = d;
            info->gap_frame = i;
        }
    }
    if (longest >= VF_SHARD_GAP * median) {
        info->gap_missing = (longest + median / 2) / median - 1;
        info->gap_seconds = (double)longest * av_q2d(st->time_base);
    } else {
        info->gap_frame = 0;
    }
    info->duration = (double)(info->pts[n - 1] + last_dur - info->pts[0]) * av_q2d(st->time_base);

    /* Frame rate: the stream's r_frame_rate (its nominal cadence) for CFR; for VFR (or when
     * the stream has none) the average over the index: frames / duration. */
    AVRational fps = st->r_frame_rate;
    int64_t span = info->pts[n - 1] + last_dur - info->pts[0];
    if (info->vfr || fps.num <= 0 || fps.den <= 0)
        av_reduce(&fps.num, &fps.den, n * (int64_t)st->time_base.den,
                  span * (int64_t)st->time_base.num, 1 << 30);
    info->fps_num = fps.num;
    info->fps_den = fps.den;
out:
    free(order);
    free(deltas);
    return rc;
}

/* The truncation rule (docs/MEDIA.md): the container's own statement of the video's length is
 * compared with what the demuxer delivered. */
static int check_truncated(const struct vf_media_info *info, const AVFormatContext *fmt,
                           const AVStream *st, int64_t skipped, struct vf_error *err)
{
    double frame_s = info->frame_duration[0] * av_q2d(st->time_base);
    /* the declared count is of packets (MOV sample tables, AVI index entries): it includes
     * packets that are no frame (an edit list's discarded lead-in, AVI drop markers). FFmpeg's
     * AVI demuxer does not deliver a drop marker (an empty index entry) at all, but the frames
     * around it keep their slots' times (an AVI index entry is one tick of the stream's time
     * base): a file whose last frame ends at or past the declared count of ticks lacks none at
     * its end (a truncated one does); a drop in the very last slot cannot be told from a cut */
    const int64_t n = info->frames;
    const int64_t keep = n > 1 ? n - 1 : n;   /* the remux's frames */
    const bool avi_complete = fmt->iformat && !strcmp(fmt->iformat->name, "avi") && n > 0 &&
                              info->pts[n - 1] + info->frame_duration[n - 1] >= st->nb_frames;
    if (st->nb_frames > 0 && info->frames + skipped < st->nb_frames && !avi_complete)
        return vf_error_set(err, VF_EMEDIA,
                            "%s: the container declares %" PRId64 " video frames but only %" PRId64
                            " could be read (%" PRId64 " frames and %" PRId64 " packets an edit "
                            "list discards or that are empty; the file ends at byte %" PRId64 "); "
                            "it is probably "
                            "truncated: re-copy it from its source, or, to colorize only what is "
                            "there, remux all but its last video frame (which the cut may have "
                            "cut into): ffmpeg -i IN -map 0 -c copy -frames:v %" PRId64 " OUT.mkv",
                            info->path, st->nb_frames, info->frames + skipped, info->frames,
                            skipped, avio_size(fmt->pb), keep);
    double declared = stream_duration(st);
    double slack = 2 * frame_s + 0.1;
    if (declared < 0 && fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
        declared = fmt->duration / (double)AV_TIME_BASE; /* covers audio too: be lenient */
        /* Matroska's is the end time: less the start, as for the DURATION tag */
        if (fmt->start_time != AV_NOPTS_VALUE && fmt->start_time > 0 &&
            declared > fmt->start_time / (double)AV_TIME_BASE)
            declared -= fmt->start_time / (double)AV_TIME_BASE;
        slack = declared * 0.01 > 1.0 ? declared * 0.01 : 1.0;
    }
    if (declared > 0 && info->duration + slack < declared)
        return vf_error_set(err, VF_EMEDIA,
                            "%s: the container declares %.3f s of video but its packets stop after "
                            "%" PRId64 " frames (%.3f s, byte %" PRId64 "); it is probably truncated: "
                            "re-copy it from its source, or, to colorize only what is there, remux "
                            "all but its last video frame (which the cut may have cut into): "
                            "ffmpeg -i IN -map 0 -c copy -frames:v %" PRId64 " OUT.mkv",
                            info->path, declared, info->frames, info->duration, avio_size(fmt->pb),
                            keep);
    return VF_OK;
}

static void fill_video_fields(struct vf_media_info *info, const AVFormatContext *fmt,
                              const AVStream *st)
{
    const AVCodecParameters *par = st->codecpar;
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(par->format);
    copy_str(info->container, sizeof info->container, fmt->iformat->name);
    info->video_stream = st->index;
    copy_str(info->codec, sizeof info->codec, avcodec_get_name(par->codec_id));
    copy_str(info->pix_fmt, sizeof info->pix_fmt, desc ? desc->name : "unknown");
    info->width = par->width;
    info->height = par->height;
    AVRational sar = av_guess_sample_aspect_ratio((AVFormatContext *)fmt, (AVStream *)st, NULL);
    info->sar_num = sar.num > 0 ? sar.num : 0;
    info->sar_den = sar.num > 0 ? sar.den : 1;
    info->tb_num = st->time_base.num;
    info->tb_den = st->time_base.den;
    /* provisional, for the first frame's timecode; build_frames sets the final values */
    info->fps_num = st->r_frame_rate.num > 0 ? st->r_frame_rate.num : 25;
    info->fps_den = st->r_frame_rate.num > 0 ? st->r_frame_rate.den : 1;
    info->has_b_frames = false;
    copy_str(info->field_order, sizeof info->field_order, field_order_name(par->field_order));
    copy_str(info->color_range, sizeof info->color_range,
             par->color_range == AVCOL_RANGE_UNSPECIFIED ? "unknown" : av_color_range_name(par->color_range));
    copy_str(info->color_space, sizeof info->color_space,
             par->color_space == AVCOL_SPC_UNSPECIFIED ? "unknown" : av_color_space_name(par->color_space));
    copy_str(info->color_transfer, sizeof info->color_transfer,
             par->color_trc == AVCOL_TRC_UNSPECIFIED ? "unknown" : av_color_transfer_name(par->color_trc));
    copy_str(info->color_primaries, sizeof info->color_primaries,
             par->color_primaries == AVCOL_PRI_UNSPECIFIED ? "unknown" : av_color_primaries_name(par->color_primaries));
    info->bits_per_sample = desc ? desc->comp[0].depth : 0;
    size_t dm_size = 0;
    const int32_t *dm = (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX,
                                                                 &dm_size);
    info->display_matrix = dm && dm_size >= 9 * sizeof *dm;
    if (info->display_matrix) {
        double deg = av_display_rotation_get(dm);
        info->rotation = isnan(deg) || deg == 0 ? 0 : deg; /* never NaN or -0 */
        info->mirrored = (double)dm[0] * dm[4] - (double)dm[1] * dm[3] < 0;
    }
    /* the video stream's tag, a timecode track's (MOV tmcd: a data stream), the container's */
    const AVDictionaryEntry *tc = av_dict_get(st->metadata, "timecode", NULL, 0);
    for (unsigned i = 0; !tc && i < fmt->nb_streams; i++)
        tc = av_dict_get(fmt->streams[i]->metadata, "timecode", NULL, 0);
    if (!tc)
        tc = av_dict_get(fmt->metadata, "timecode", NULL, 0);
    copy_str(info->timecode, sizeof info->timecode, tc ? tc->value : "");
}

/* "file:" + path, malloc'd (NULL when out of memory): FFmpeg's file protocol opens the rest of
 * the name as it is, where a bare name that starts with "word:" would be taken for protocol
 * "word" (concat:, pipe:, or a take named take1:final.mkv, "Protocol not found"). */
static char *file_url(const char *path)
{
    const size_t n = strlen(path) + sizeof "file:";
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "file:%s", path);
    return url;
}

void vf_shard_genpts_(AVFormatContext *ic, int video_stream)
{
    const enum AVCodecID id = ic->streams[video_stream]->codecpar->codec_id;
    if (id == AV_CODEC_ID_MPEG1VIDEO || id == AV_CODEC_ID_MPEG2VIDEO || id == AV_CODEC_ID_MPEG4)
        ic->flags |= AVFMT_FLAG_GENPTS;   /* read by every av_read_frame from now on */
}

int vf_shard_open_input_(AVFormatContext **ic, const char *path)
{
    AVDictionary *opts = NULL;
    char *url = file_url(path);
    int r = url ? av_dict_set(&opts, "pattern_type", "none", 0) : AVERROR(ENOMEM); /* image2's */
    if (r >= 0)
        r = avformat_open_input(ic, url, NULL, &opts);
    av_dict_free(&opts);
    free(url);
    return r;
}

int vf_shard_open_output_(AVIOContext **pb, const char *path)
{
    char *url = file_url(path);
    int r = url ? avio_open(pb, url, AVIO_FLAG_WRITE) : AVERROR(ENOMEM);
    free(url);
    return r;
}

bool vf_shard_interlaced(const struct vf_media_info *info)
{
    static const char *const fields[] = {"tt", "bb", "tb", "bt"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (!strcmp(info->field_order, fields[i]))
            return true;
    return false;
}

int vf_shard_probe(struct vf_media_info **out, const char *path, struct vf_error *err)
{
    int rc = VF_OK;
    AVFormatContext *fmt = NULL;
    struct vf_media_info *info = NULL;
    struct stat sb;
    struct vf_error local;
    if (!err)
        err = &local;
    vf_error_clear(err);
    *out = NULL;

    if (stat(path, &sb) != 0)
        return vf_error_set(err, errno == ENOENT ? VF_ENOENT : VF_EIO,
                            "%s: %s; check the path", path, strerror(errno));
    /* a pipe or a device cannot be read twice (the probe indexes it, then every rank decodes
     * it) and a FIFO would block here waiting for a writer */
    if (!S_ISREG(sb.st_mode))
        return vf_error_set(err, VF_EINVAL, "%s is %s, not a video file: vaefarm reads its films "
                            "more than once (probe, then decoding); give the path of a file%s",
                            path, S_ISDIR(sb.st_mode)    ? "a folder"
                                  : S_ISFIFO(sb.st_mode) ? "a pipe (FIFO)"
                                                         : "a device or socket",
                            S_ISDIR(sb.st_mode) ? "" : " (save a stream to a file first)");
    info = vf_calloc(1, sizeof *info, err);
    if (!info)
        return VF_ENOMEM;
    copy_str(info->path, sizeof info->path, path);
    info->video_stream = -1;

    int ret = vf_shard_open_input_(&fmt, path);
    if (ret >= 0)
        ret = avformat_find_stream_info(fmt, NULL);
    if (ret < 0) {
        char msg[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(ret, msg, sizeof msg);
        rc = vf_error_set(err, VF_EMEDIA, "%s is not a video FFmpeg can read: %s; check the path/format",
                          path, msg);
        goto fail;
    }
    rc = fill_streams(info, fmt, err);
    if (rc < 0)
        goto fail;
    int vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    /* cover art (an attached picture) is a video stream of one frame, not the film */
    if (vs >= 0 && (fmt->streams[vs]->disposition & AV_DISPOSITION_ATTACHED_PIC))
        vs = -1;
    if (vs < 0) {
        rc = vf_error_set(err, VF_EMEDIA, "%s (%s, %u streams) has no video stream or "
                                          "picture: check that this is the film (or, for a "
                                          "reference, an image)",
                          path, fmt->iformat->name, fmt->nb_streams);
        goto fail;
    }
    AVStream *st = fmt->streams[vs];
    vf_shard_genpts_(fmt, vs);
    fill_video_fields(info, fmt, st);
    if (info->width <= 0 || info->height <= 0 || st->codecpar->format < 0) {
        rc = vf_error_set(err, VF_EMEDIA, "%s: FFmpeg could not tell the video's size or pixel "
                                          "format (codec %s); the file may be damaged, or its codec unsupported",
                          path, info->codec);
        goto fail;
    }
    if (!avcodec_find_decoder(st->codecpar->codec_id)) {
        rc = vf_error_set(err, VF_EUNSUPPORTED, "%s: this FFmpeg has no decoder for the video "
                                                "codec %s; transcode the film to FFV1 or ProRes first",
                          path, info->codec);
        goto fail;
    }
    int64_t skipped = 0;
    rc = demux_index(info, fmt, st, &skipped, err);
    if (rc < 0)
        goto fail;
    info->frames = info->packets_->n;
    if (info->frames == 0) {
        rc = vf_error_set(err, VF_EMEDIA, "%s: the video stream (%s) holds no frames; check the file",
                          path, info->codec);
        goto fail;
    }
    rc = build_frames(info, st, err);
    if (rc < 0)
        goto fail;
    rc = check_truncated(info, fmt, st, skipped, err);
    if (rc < 0)
        goto fail;
    avformat_close_input(&fmt);
    *out = info;
    return VF_OK;
fail:
    avformat_close_input(&fmt);
    vf_shard_media_info_destroy(&info);
    return rc < 0 ? rc : VF_EINTERNAL;
}

void vf_shard_media_info_destroy(struct vf_media_info **info)
{
    if (!info || !*info)
        return;
    struct vf_media_info *m = *info;
    free(m->streams);
    free(m->pts);
    free(m->frame_duration);
    free(m->key);
    if (m->packets_) {
        free(m->packets_->pkt);
        free(m->packets_->decode_pos);
        free(m->packets_);
    }
    free(m);
    *info = NULL;
}

int64_t vf_shard_frame_of_pts_(const struct vf_media_info *info, int64_t pts)
{
    int64_t lo = 0, hi = info->frames - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (info->pts[mid] == pts)
            return mid;
        if (info->pts[mid] < pts)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}
