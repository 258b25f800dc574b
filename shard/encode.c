/*
 * shard/encode.c: one chunk's frames -> one self-contained segment (shard.h, "encode").
 *
 * A segment is a Matroska file with exactly one video stream. It is written to "<path>.tmp" and
 * renamed by vf_shard_segment_close once the encoder is flushed, the trailer written, the frame
 * count checked and the bytes fsync'ed; a crash therefore never leaves a half segment under the
 * final name (DESIGN.md §6). docs/ENCODE.md states the defaults and the timestamp rules.
 *
 * Invariants:
 *   - the encoder's time base is the source's, so a frame's pts goes in and comes out unchanged;
 *     the Matroska muxer stores it rounded to its 1/1000 s time base (merge.c restores it exactly);
 *   - the first frame is coded as a keyframe (IDR for x264/x265), so every segment decodes alone;
 *   - no frame-sized allocation per frame: converted frames come from one buffer pool and the
 *     swscale context is made once, for the first frame's format.
 */
#include "shard/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/hash.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "shard/internal.h"

/* ---- the codecs vaefarm encodes segments with ------------------------------------------- */

/* Default pixel format per codec and source luma depth (docs/ENCODE.md explains each choice). */
struct codec_rule {
    const char *name;   /* FFmpeg encoder name, as written in film.yaml encode.codec */
    const char *pix8;   /* default for sources of 8 bits or fewer */
    const char *pix10;  /* default for 9- and 10-bit sources */
    const char *pix16;  /* default for deeper sources */
};

static const struct codec_rule codec_rules[] = {
    {"ffv1", "yuv444p", "yuv444p10le", "yuv444p16le"},
    {"prores_ks", "yuv422p10le", "yuv422p10le", "yuv422p10le"},
    {"libx264", "yuv420p", "yuv420p10le", "yuv420p10le"},
    {"libx265", "yuv420p10le", "yuv420p10le", "yuv420p12le"},
    {"dnxhd", "yuv422p", "yuv422p10le", "yuv422p10le"},
};
#define N_CODEC_RULES (sizeof codec_rules / sizeof codec_rules[0])

/* Options vaefarm derives from the source; setting them in encode.options would break the
 * segment's promise (same size, time base and pixel format as planned). */
static const char *const reserved_options[] = {"pix_fmt", "s", "video_size", "width", "height",
                                               "time_base", "framerate", "r"};

struct vf_segment_writer {
    char *path;                 /* final name */
    char *tmp;                  /* "<path>.tmp", what is being written */
    const struct vf_media_info *src; /* borrowed: must outlive the writer */
    const struct codec_rule *rule;
    AVFormatContext *oc;
    AVStream *st;
    AVCodecContext *enc;
    AVPacket *pkt;
    AVFrame *in;                /* what goes to the encoder: a ref of, or a copy of, the caller's frame */
    AVBufferPool *pool;         /* image buffers for converted/copied frames */
    size_t pool_size;           /* bytes per pooled image */
    struct SwsContext *sws;     /* made for the first frame that needs converting */
    int sws_fmt, sws_w, sws_h;  /* the input format the sws context was made for */
    int64_t frames_in;          /* frames given to the encoder */
    int64_t packets_out;        /* packets handed to the muxer */
    int64_t last_pts;           /* pts of the previous frame (source tb) */
};

int vf_shard_av_error_(struct vf_error *err, int code, int averr, const char *fmt, ...)
{
    char head[VF_ERROR_MSG_MAX];
    char av[AV_ERROR_MAX_STRING_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    av_strerror(averr, av, sizeof av);
    return vf_error_set(err, code, "%s: %s", head, av);
}

static const struct codec_rule *find_rule(const char *name)
{
    for (size_t i = 0; i < N_CODEC_RULES; i++)
        if (!strcmp(codec_rules[i].name, name))
            return &codec_rules[i];
    return NULL;
}

/* "a, b, c" of the codec names, for messages. */
static void codec_list(char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < N_CODEC_RULES; i++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? ", " : "", codec_rules[i].name);
}

/* "a, b, c" of the pixel formats an encoder takes. */
static void pix_fmt_list(const AVCodec *codec, char *buf, size_t size)
{
    buf[0] = '\0';
    for (const enum AVPixelFormat *p = codec->pix_fmts; p && *p != AV_PIX_FMT_NONE; p++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", p == codec->pix_fmts ? "" : ", ",
                 av_get_pix_fmt_name(*p));
}

static int source_depth(const struct vf_media_info *src)
{
    if (src->bits_per_sample > 0)
        return src->bits_per_sample;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(av_get_pix_fmt(src->pix_fmt));
    return d ? d->comp[0].depth : 8;
}

/* The pixel format to encode in: spec->pix_fmt, or the rule's default for the source depth;
 * checked against what the encoder takes. */
static int choose_pix_fmt(enum AVPixelFormat *out, const AVCodec *codec, const struct codec_rule *rule,
                          const struct vf_media_info *src, const char *asked, struct vf_error *err)
{
    int depth = source_depth(src);
    const char *name = asked ? asked : depth <= 8 ? rule->pix8 : depth <= 10 ? rule->pix10 : rule->pix16;
    enum AVPixelFormat fmt = av_get_pix_fmt(name);
    char list[2048];
    pix_fmt_list(codec, list, sizeof list);
    if (fmt == AV_PIX_FMT_NONE)
        return vf_error_set(err, VF_EINVAL,
                            "encode.pix_fmt: '%s' is not a pixel format FFmpeg knows; the %s encoder "
                            "takes: %s",
                            name, rule->name, list);
    for (const enum AVPixelFormat *p = codec->pix_fmts; p && *p != AV_PIX_FMT_NONE; p++)
        if (*p == fmt) {
            *out = fmt;
            return 0;
        }
    return vf_error_set(err, VF_EINVAL,
                        "encode.pix_fmt: the %s encoder does not take '%s'; it takes: %s%s", rule->name,
                        name, list, asked ? "" : " (this is vaefarm's default: please report it)");
}

static enum AVFieldOrder field_order_from_name(const char *s)
{
    if (!strcmp(s, "progressive")) return AV_FIELD_PROGRESSIVE;
    if (!strcmp(s, "tt")) return AV_FIELD_TT;
    if (!strcmp(s, "bb")) return AV_FIELD_BB;
    if (!strcmp(s, "tb")) return AV_FIELD_TB;
    if (!strcmp(s, "bt")) return AV_FIELD_BT;
    return AV_FIELD_UNKNOWN;
}

/* av_*_from_name returns a negative value for "unknown" and ""; map that to unspecified. */
static int color_or(int v, int unspecified) { return v < 0 ? unspecified : v; }

/* Codec-specific settings vaefarm makes before the user's encode.options (which may override). */
static int set_codec_defaults(AVCodecContext *enc, const struct codec_rule *rule, struct vf_error *err)
{
    int r = 0;
    if (!strcmp(rule->name, "ffv1")) {
        /* archival FFV1: version 3 with slice CRCs, every frame intra (cut anywhere, repair anywhere) */
        enc->gop_size = 1;
        r = av_opt_set(enc, "level", "3", AV_OPT_SEARCH_CHILDREN);
        if (r >= 0) r = av_opt_set(enc, "slicecrc", "1", AV_OPT_SEARCH_CHILDREN);
    } else if (!strcmp(rule->name, "libx264") || !strcmp(rule->name, "libx265")) {
        /* the forced first keyframe becomes an IDR: the segment starts a closed GOP */
        r = av_opt_set(enc, "forced-idr", "1", AV_OPT_SEARCH_CHILDREN);
        /* x265 prints its banner on stderr itself; keep a farm's log for errors */
        if (r >= 0 && !strcmp(rule->name, "libx265"))
            r = av_opt_set(enc, "x265-params", "log-level=error", AV_OPT_SEARCH_CHILDREN);
    } else if (!strcmp(rule->name, "dnxhd")) {
        /* DNxHR profiles take any frame size; pick the one that matches the pixel format */
        const char *profile = enc->pix_fmt == AV_PIX_FMT_YUV422P ? "dnxhr_hq"
                              : enc->pix_fmt == AV_PIX_FMT_YUV422P10 ? "dnxhr_hqx"
                                                                     : "dnxhr_444";
        r = av_opt_set(enc, "profile", profile, AV_OPT_SEARCH_CHILDREN);
    }
    if (r < 0)
        return vf_shard_av_error_(err, VF_EINTERNAL, r, "setting the %s encoder's defaults", rule->name);
    return 0;
}

/* Apply encode.options; every option the encoder does not have (or whose value it refuses) is
 * reported, one per line, so that a film.yaml is fixed in one go. */
static int set_user_options(AVCodecContext *enc, const struct vf_encode_spec *spec,
                            const char *codec, struct vf_error *err)
{
    char msg[VF_ERROR_MSG_MAX] = "";
    int bad = 0;
    for (size_t i = 0; i < spec->n_options; i++) {
        const char *key = spec->options[i].key, *value = spec->options[i].value;
        size_t len = strlen(msg);
        bool reserved = false;
        for (size_t k = 0; k < sizeof reserved_options / sizeof *reserved_options; k++)
            reserved |= !strcmp(key, reserved_options[k]);
        if (reserved) {
            snprintf(msg + len, sizeof msg - len,
                     "%sencode.options.%s: vaefarm sets this from the source%s", bad ? "\n" : "", key,
                     strcmp(key, "pix_fmt") ? "" : " (use encode.pix_fmt to choose the pixel format)");
            bad++;
            continue;
        }
        char x265[1024];
        if (!strcmp(key, "x265-params") && value && !strstr(value, "log-level")) {
            snprintf(x265, sizeof x265, "%s%slog-level=error", value, value[0] ? ":" : "");
            value = x265;
        }
        int r = av_opt_set(enc, key, value ? value : "", AV_OPT_SEARCH_CHILDREN);
        if (r == AVERROR_OPTION_NOT_FOUND) {
            snprintf(msg + len, sizeof msg - len,
                     "%sencode.options.%s: the %s encoder has no option '%s' (list them with: "
                     "ffmpeg -h encoder=%s)",
                     bad ? "\n" : "", key, codec, key, codec);
            bad++;
        } else if (r < 0) {
            char av[AV_ERROR_MAX_STRING_SIZE];
            av_strerror(r, av, sizeof av);
            snprintf(msg + len, sizeof msg - len,
                     "%sencode.options.%s: the %s encoder refuses the value '%s' (%s; see: ffmpeg -h "
                     "encoder=%s)",
                     bad ? "\n" : "", key, codec, value ? value : "", av, codec);
            bad++;
        }
    }
    if (bad)
        return vf_error_set(err, VF_EINVAL, "%s", msg);
    return 0;
}

/* Free everything; remove the temporary file when `remove_tmp`. */
static void writer_free(struct vf_segment_writer **pw, bool remove_tmp)
{
    struct vf_segment_writer *w = pw ? *pw : NULL;
    if (!w)
        return;
    if (w->oc) {
        if (w->oc->pb)
            avio_closep(&w->oc->pb);
        avformat_free_context(w->oc);
    }
    if (remove_tmp && w->tmp)
        unlink(w->tmp);
    avcodec_free_context(&w->enc);
    av_packet_free(&w->pkt);
    av_frame_free(&w->in);
    av_buffer_pool_uninit(&w->pool);
    sws_freeContext(w->sws);
    free(w->path);
    free(w->tmp);
    free(w);
    *pw = NULL;
}

/* DNxHR takes any size from 256x120 up; say so before FFmpeg's less helpful failure. */
static int check_dnxhr_size(AVCodecContext *enc, const struct vf_segment_writer *w, struct vf_error *err)
{
    int64_t profile = 0;
    if (strcmp(w->rule->name, "dnxhd") || av_opt_get_int(enc->priv_data, "profile", 0, &profile) < 0 ||
        profile == FF_PROFILE_DNXHD)
        return 0;
    if (enc->width >= 256 && enc->height >= 120)
        return 0;
    return vf_error_set(err, VF_EUNSUPPORTED,
                        "encode.codec: dnxhd (DNxHR) needs frames of at least 256x120 but %s is "
                        "%dx%d: choose another encode.codec (ffv1, prores_ks, libx264, libx265)",
                        w->src->path, enc->width, enc->height);
}

static int open_encoder(struct vf_segment_writer *w, const AVCodec *codec, enum AVPixelFormat fmt,
                        const struct vf_encode_spec *spec, struct vf_error *err)
{
    const struct vf_media_info *src = w->src;
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    if (!enc)
        return vf_error_set(err, VF_ENOMEM, "out of memory allocating the %s encoder", codec->name);
    w->enc = enc;
    enc->width = src->width;
    enc->height = src->height;
    enc->pix_fmt = fmt;
    enc->time_base = (AVRational){src->tb_num, src->tb_den};
    if (src->fps_num > 0 && src->fps_den > 0)
        enc->framerate = (AVRational){src->fps_num, src->fps_den};
    if (src->sar_num > 0 && src->sar_den > 0)
        enc->sample_aspect_ratio = (AVRational){src->sar_num, src->sar_den};
    enc->color_range = color_or(av_color_range_from_name(src->color_range), AVCOL_RANGE_UNSPECIFIED);
    enc->colorspace = color_or(av_color_space_from_name(src->color_space), AVCOL_SPC_UNSPECIFIED);
    enc->color_trc = color_or(av_color_transfer_from_name(src->color_transfer), AVCOL_TRC_UNSPECIFIED);
    enc->color_primaries = color_or(av_color_primaries_from_name(src->color_primaries),
                                    AVCOL_PRI_UNSPECIFIED);
    enc->field_order = field_order_from_name(src->field_order);
    enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER | AV_CODEC_FLAG_BITEXACT;
    if (enc->field_order != AV_FIELD_PROGRESSIVE && enc->field_order != AV_FIELD_UNKNOWN)
        enc->flags |= AV_CODEC_FLAG_INTERLACED_DCT | AV_CODEC_FLAG_INTERLACED_ME; /* keep fields */
    enc->thread_count = 0; /* auto; encode.options threads=N overrides */

    int r = set_codec_defaults(enc, w->rule, err);
    if (r < 0)
        return r;
    r = set_user_options(enc, spec, codec->name, err);
    if (r < 0)
        return r;
    r = check_dnxhr_size(enc, w, err);
    if (r < 0)
        return r;
    r = avcodec_open2(enc, codec, NULL);
    if (r < 0) {
        const char *hint = "";
        if (!strcmp(codec->name, "dnxhd"))
            hint = "; DNxHR (the default profiles dnxhr_hq/dnxhr_hqx/dnxhr_444) takes any size but "
                   "needs the profile to match the pixel format (yuv422p: dnxhr_hq or dnxhr_sq/lb, "
                   "yuv422p10le: dnxhr_hqx, yuv444p10le: dnxhr_444); the old DNxHD profile only "
                   "takes 1920x1080/1280x720/1440x1080 at the bitrates `ffmpeg -h encoder=dnxhd` lists";
        else if (!strcmp(codec->name, "libx264") || !strcmp(codec->name, "libx265"))
            hint = "; 4:2:0 and 4:2:2 need an even width (and 4:2:0 an even height)";
        return vf_shard_av_error_(err, r == AVERROR(ENOMEM) ? VF_ENOMEM : VF_EUNSUPPORTED, r,
                                  "cannot open the %s encoder for %dx%d %s (segment %s; FFmpeg's log "
                                  "above says more)%s",
                                  codec->name, src->width, src->height, av_get_pix_fmt_name(fmt),
                                  w->path, hint);
    }
    return 0;
}

static int open_muxer(struct vf_segment_writer *w, struct vf_error *err)
{
    const struct vf_media_info *src = w->src;
    int r = avformat_alloc_output_context2(&w->oc, NULL, "matroska", w->tmp);
    if (r < 0 || !w->oc)
        return vf_shard_av_error_(err, VF_EINTERNAL, r, "no Matroska muxer for segment %s", w->path);
    w->oc->flags |= AVFMT_FLAG_BITEXACT; /* no random UID/date: same frames, same bytes */
    /* B-frame encoders give the first packets a dts before their pts; Matroska stores pts only,
     * so keep every pts as it is instead of letting the muxer shift the whole segment. */
    w->oc->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;
    w->st = avformat_new_stream(w->oc, NULL);
    if (!w->st)
        return vf_error_set(err, VF_ENOMEM, "out of memory adding the video stream to %s", w->path);
    r = avcodec_parameters_from_context(w->st->codecpar, w->enc);
    if (r < 0)
        return vf_shard_av_error_(err, VF_ENOMEM, r, "copying the encoder parameters for %s", w->path);
    w->st->time_base = w->enc->time_base;
    w->st->sample_aspect_ratio = w->enc->sample_aspect_ratio;
    if (src->fps_num > 0 && src->fps_den > 0)
        w->st->avg_frame_rate = w->st->r_frame_rate = (AVRational){src->fps_num, src->fps_den};
    char tb[64];
    snprintf(tb, sizeof tb, "%d/%d", src->tb_num, src->tb_den);
    av_dict_set(&w->oc->metadata, "VAEFARM_SOURCE_TIME_BASE", tb, 0);

    r = avio_open(&w->oc->pb, w->tmp, AVIO_FLAG_WRITE);
    if (r < 0)
        return vf_shard_av_error_(err, VF_EIO, r,
                                  "cannot create segment file %s (check that the work folder exists, "
                                  "is writable and has space)",
                                  w->tmp);
    r = avformat_write_header(w->oc, NULL);
    if (r < 0)
        return vf_shard_av_error_(err, VF_EMEDIA, r, "writing the Matroska header of %s", w->tmp);
    return 0;
}

int vf_shard_segment_open(struct vf_segment_writer **out, const char *path,
                          const struct vf_media_info *src, const struct vf_encode_spec *spec,
                          struct vf_error *err)
{
    char list[256];
    VF_ASSERT(out);
    *out = NULL;
    if (!path || !path[0] || !src || !spec)
        return vf_error_set(err, VF_EINVAL, "vf_shard_segment_open: path, source and spec are required");
    codec_list(list, sizeof list);
    if (!spec->codec || !spec->codec[0])
        return vf_error_set(err, VF_EINVAL, "encode.codec is empty: use one of: %s", list);
    const struct codec_rule *rule = find_rule(spec->codec);
    if (!rule)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "encode.codec: vaefarm does not encode segments with '%s'; use one of: %s",
                            spec->codec, list);
    const AVCodec *codec = avcodec_find_encoder_by_name(rule->name);
    if (!codec)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "encode.codec: this FFmpeg has no '%s' encoder (install an FFmpeg built "
                            "with it, or choose another of: %s)",
                            rule->name, list);
    if (src->width <= 0 || src->height <= 0 || src->tb_num <= 0 || src->tb_den <= 0)
        return vf_error_set(err, VF_EINVAL,
                            "segment %s: the source %s has no usable size (%dx%d) or time base (%d/%d)",
                            path, src->path, src->width, src->height, src->tb_num, src->tb_den);
    enum AVPixelFormat fmt = AV_PIX_FMT_NONE;
    int r = choose_pix_fmt(&fmt, codec, rule, src, spec->pix_fmt, err);
    if (r < 0)
        return r;

    struct vf_segment_writer *w = vf_calloc(1, sizeof *w, err);
    if (!w)
        return VF_ENOMEM;
    w->src = src;
    w->rule = rule;
    w->last_pts = INT64_MIN;
    w->sws_fmt = AV_PIX_FMT_NONE;
    size_t n = strlen(path) + 5;
    w->path = vf_strdup(path, err);
    w->tmp = malloc(n);
    w->pkt = av_packet_alloc();
    w->in = av_frame_alloc();
    if (!w->path || !w->tmp || !w->pkt || !w->in) {
        r = vf_error_set(err, VF_ENOMEM, "out of memory opening segment %s", path);
        goto fail;
    }
    snprintf(w->tmp, n, "%s.tmp", path);
    r = open_encoder(w, codec, fmt, spec, err);
    if (r < 0)
        goto fail;
    r = open_muxer(w, err);
    if (r < 0)
        goto fail;
    int size = av_image_get_buffer_size(fmt, src->width, src->height, 64);
    if (size < 0) {
        r = vf_shard_av_error_(err, VF_EINVAL, size, "segment %s: %dx%d %s images", path, src->width,
                               src->height, av_get_pix_fmt_name(fmt));
        goto fail;
    }
    w->pool_size = (size_t)size + 64;
    w->pool = av_buffer_pool_init(w->pool_size, NULL);
    if (!w->pool) {
        r = vf_error_set(err, VF_ENOMEM, "out of memory making the frame pool of %s", path);
        goto fail;
    }
    *out = w;
    return 0;
fail:
    writer_free(&w, true);
    return r;
}

/* Point w->in at a pooled image buffer in the encoder's format (reused once the encoder lets go
 * of it: no frame-sized allocation in the steady state). */
static int pooled_frame(struct vf_segment_writer *w, struct vf_error *err)
{
    AVFrame *f = w->in;
    av_frame_unref(f);
    f->buf[0] = av_buffer_pool_get(w->pool);
    if (!f->buf[0])
        return vf_error_set(err, VF_ENOMEM, "out of memory for a frame of segment %s", w->path);
    f->format = w->enc->pix_fmt;
    f->width = w->enc->width;
    f->height = w->enc->height;
    int r = av_image_fill_arrays(f->data, f->linesize, f->buf[0]->data, f->format, f->width,
                                 f->height, 64);
    if (r < 0)
        return vf_shard_av_error_(err, VF_EINTERNAL, r, "laying out a frame of segment %s", w->path);
    return 0;
}

/* Make the swscale context for frames like `frame` (once per segment). Luma and chroma keep
 * the source's range: no range or matrix conversion, only format/depth/subsampling/size. */
static int make_sws(struct vf_segment_writer *w, const AVFrame *frame, struct vf_error *err)
{
    w->sws = sws_getContext(frame->width, frame->height, frame->format, w->enc->width, w->enc->height,
                            w->enc->pix_fmt,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_BITEXACT, NULL,
                            NULL, NULL);
    if (!w->sws)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "segment %s: swscale cannot convert %dx%d %s frames to the encoder's %dx%d "
                            "%s",
                            w->path, frame->width, frame->height, av_get_pix_fmt_name(frame->format),
                            w->enc->width, w->enc->height, av_get_pix_fmt_name(w->enc->pix_fmt));
    int full = w->enc->color_range == AVCOL_RANGE_JPEG || frame->color_range == AVCOL_RANGE_JPEG;
    const int *coefs = sws_getCoefficients(SWS_CS_DEFAULT);
    /* same range on both sides: swscale must not expand or compress the levels */
    if (sws_setColorspaceDetails(w->sws, coefs, full, coefs, full, 0, 1 << 16, 1 << 16) < 0)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "segment %s: swscale cannot keep the colour range converting %s to %s",
                            w->path, av_get_pix_fmt_name(frame->format),
                            av_get_pix_fmt_name(w->enc->pix_fmt));
    w->sws_fmt = frame->format;
    w->sws_w = frame->width;
    w->sws_h = frame->height;
    return 0;
}

/* Frame index of `pts` in the source, or -1 (also when the source has no frame index). */
static int64_t source_index(const struct vf_media_info *src, int64_t pts)
{
    return src->pts ? vf_shard_frame_of_pts_(src, pts) : -1;
}

/* Drain the encoder into the muxer. `flushing`: after the NULL frame, until EOF. */
static int drain(struct vf_segment_writer *w, bool flushing, struct vf_error *err)
{
    for (;;) {
        int r = avcodec_receive_packet(w->enc, w->pkt);
        if (r == AVERROR(EAGAIN) && !flushing)
            return 0;
        if (r == AVERROR_EOF)
            return 0;
        if (r < 0)
            return vf_shard_av_error_(err, VF_EMEDIA, r, "the %s encoder failed after frame %lld of %s",
                                      w->rule->name, (long long)w->frames_in, w->path);
        if (w->pkt->duration <= 0 && w->src->frame_duration) {
            int64_t i = source_index(w->src, w->pkt->pts);
            if (i >= 0)
                w->pkt->duration = w->src->frame_duration[i];
        }
        w->pkt->stream_index = w->st->index;
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->st->time_base);
        r = av_interleaved_write_frame(w->oc, w->pkt); /* takes the packet's reference */
        if (r < 0)
            return vf_shard_av_error_(err, r == AVERROR(ENOSPC) ? VF_EIO : VF_EMEDIA, r,
                                      "writing packet %lld to %s", (long long)w->packets_out, w->tmp);
        w->packets_out++;
    }
}

int vf_shard_segment_write(struct vf_segment_writer *w, const AVFrame *frame, struct vf_error *err)
{
    VF_ASSERT(w);
    int r;
    if (!frame)
        return vf_error_set(err, VF_EINVAL, "segment %s: NULL frame", w->path);
    if (frame->pts == AV_NOPTS_VALUE)
        return vf_error_set(err, VF_EINVAL,
                            "segment %s: frame %lld has no pts: give every frame its source pts",
                            w->path, (long long)w->frames_in);
    if (frame->pts <= w->last_pts)
        return vf_error_set(err, VF_EINVAL,
                            "segment %s: frame %lld has pts %lld, not after the previous frame's %lld: "
                            "write frames in presentation order with the source's timestamps",
                            w->path, (long long)w->frames_in, (long long)frame->pts,
                            (long long)w->last_pts);
    if (w->src->pts && source_index(w->src, frame->pts) < 0)
        return vf_error_set(err, VF_EINVAL,
                            "segment %s: frame %lld has pts %lld, which is no frame's pts in %s: give "
                            "every frame its source pts",
                            w->path, (long long)w->frames_in, (long long)frame->pts, w->src->path);

    bool same = frame->format == w->enc->pix_fmt && frame->width == w->enc->width &&
                frame->height == w->enc->height;
    if (same && frame->buf[0]) {
        r = av_frame_ref(w->in, frame);
        if (r < 0)
            return vf_shard_av_error_(err, VF_ENOMEM, r, "referencing frame %lld of %s",
                                      (long long)w->frames_in, w->path);
    } else {
        if (!same) {
            if (!w->sws && (r = make_sws(w, frame, err)) < 0)
                return r;
            if (frame->format != w->sws_fmt || frame->width != w->sws_w || frame->height != w->sws_h)
                return vf_error_set(err, VF_EINVAL,
                                    "segment %s: frame %lld is %dx%d %s but this segment's frames "
                                    "were %dx%d %s: one segment takes one format",
                                    w->path, (long long)w->frames_in, frame->width, frame->height,
                                    av_get_pix_fmt_name(frame->format), w->sws_w, w->sws_h,
                                    av_get_pix_fmt_name(w->sws_fmt));
        }
        if ((r = pooled_frame(w, err)) < 0)
            return r;
        if (same) {
            r = av_frame_copy(w->in, frame);
            if (r < 0)
                return vf_shard_av_error_(err, VF_EINTERNAL, r, "copying frame %lld of %s",
                                          (long long)w->frames_in, w->path);
        } else {
            r = sws_scale(w->sws, (const uint8_t *const *)frame->data, frame->linesize, 0,
                          frame->height, w->in->data, w->in->linesize);
            if (r <= 0)
                return vf_error_set(err, VF_EINTERNAL, "segment %s: swscale failed on frame %lld",
                                    w->path, (long long)w->frames_in);
        }
    }
    /* the frame's own colour tags are what some encoders (prores_ks, libx264's VUI) write into
     * the bitstream: make them the source's, as the container's are */
    w->in->color_range = w->enc->color_range;
    w->in->colorspace = w->enc->colorspace;
    w->in->color_trc = w->enc->color_trc;
    w->in->color_primaries = w->enc->color_primaries;
    w->in->sample_aspect_ratio = w->enc->sample_aspect_ratio;
    if (w->enc->field_order != AV_FIELD_UNKNOWN) {
        w->in->interlaced_frame = w->enc->field_order != AV_FIELD_PROGRESSIVE;
        w->in->top_field_first = w->enc->field_order == AV_FIELD_TT || w->enc->field_order == AV_FIELD_TB;
    }
    /* a decoded frame carries its source picture type: never let it steer the encoder */
    w->in->pict_type = w->frames_in == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    w->in->key_frame = w->frames_in == 0;
    w->in->pts = frame->pts;
    r = avcodec_send_frame(w->enc, w->in);
    av_frame_unref(w->in);
    if (r < 0)
        return vf_shard_av_error_(err, VF_EMEDIA, r, "the %s encoder refused frame %lld (pts %lld) of %s",
                                  w->rule->name, (long long)w->frames_in, (long long)frame->pts, w->path);
    w->frames_in++;
    w->last_pts = frame->pts;
    return drain(w, false, err);
}

/* Re-read the finished temporary file: it must hold exactly `frames` video packets, the first
 * a keyframe. Catches a truncated write before the segment gets its final name. */
static int count_segment_frames(const char *file, int64_t frames, struct vf_error *err)
{
    AVFormatContext *ic = NULL;
    AVPacket *pkt = av_packet_alloc();
    int64_t n = 0;
    bool first_key = false;
    int r = pkt ? avformat_open_input(&ic, file, NULL, NULL) : AVERROR(ENOMEM);
    if (r < 0) {
        r = vf_shard_av_error_(err, VF_ECORRUPT, r, "re-reading the segment just written (%s)", file);
        goto out;
    }
    while ((r = av_read_frame(ic, pkt)) >= 0) {
        if (n == 0)
            first_key = pkt->flags & AV_PKT_FLAG_KEY;
        n++;
        av_packet_unref(pkt);
    }
    if (r != AVERROR_EOF) {
        r = vf_shard_av_error_(err, VF_ECORRUPT, r, "re-reading the segment just written (%s)", file);
        goto out;
    }
    r = 0;
    if (n != frames || !first_key)
        r = vf_error_set(err, VF_ECORRUPT,
                         "segment %s holds %lld frames (first %s) but %lld were written: the disk "
                         "may be full or failing; the chunk will be encoded again",
                         file, (long long)n, first_key ? "a keyframe" : "not a keyframe",
                         (long long)frames);
out:
    avformat_close_input(&ic);
    av_packet_free(&pkt);
    return r;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int vf_shard_segment_close(struct vf_segment_writer **pw, char checksum[65], struct vf_error *err)
{
    VF_ASSERT(pw);
    struct vf_segment_writer *w = *pw;
    if (!w)
        return vf_error_set(err, VF_EINVAL, "vf_shard_segment_close: no segment writer");
    int r;
    if (w->frames_in == 0) {
        r = vf_error_set(err, VF_EINVAL, "segment %s: no frames were written; nothing to close", w->path);
        goto fail;
    }
    r = avcodec_send_frame(w->enc, NULL);
    if (r < 0) {
        r = vf_shard_av_error_(err, VF_EMEDIA, r, "flushing the %s encoder of %s", w->rule->name, w->path);
        goto fail;
    }
    if ((r = drain(w, true, err)) < 0)
        goto fail;
    if (w->packets_out != w->frames_in) {
        r = vf_error_set(err, VF_EINTERNAL,
                         "segment %s: the %s encoder gave %lld packets for %lld frames (it dropped or "
                         "duplicated frames; check encode.options)",
                         w->path, w->rule->name, (long long)w->packets_out, (long long)w->frames_in);
        goto fail;
    }
    r = av_write_trailer(w->oc);
    if (r < 0) {
        r = vf_shard_av_error_(err, VF_EIO, r, "writing the trailer of %s", w->tmp);
        goto fail;
    }
    r = avio_closep(&w->oc->pb);
    if (r < 0) {
        r = vf_shard_av_error_(err, VF_EIO, r, "closing %s (disk full?)", w->tmp);
        goto fail;
    }
    if ((r = count_segment_frames(w->tmp, w->frames_in, err)) < 0)
        goto fail;
    if (fsync_path(w->tmp, O_RDONLY) < 0) {
        r = vf_error_set(err, VF_EIO, "fsync %s: %s", w->tmp, strerror(errno));
        goto fail;
    }
    if (rename(w->tmp, w->path) < 0) {
        r = vf_error_set(err, VF_EIO, "renaming %s to %s: %s", w->tmp, w->path, strerror(errno));
        goto fail;
    }
    /* make the rename itself durable */
    char *dir = vf_path_dirname(w->path, NULL);
    if (dir) {
        fsync_path(dir, O_RDONLY | O_DIRECTORY);
        free(dir);
    }
    if (checksum && (r = vf_shard_file_checksum(w->path, checksum, err)) < 0) {
        writer_free(pw, false);
        return r;
    }
    writer_free(pw, false);
    return 0;
fail:
    writer_free(pw, true);
    return r;
}

void vf_shard_segment_abort(struct vf_segment_writer **w)
{
    writer_free(w, true);
}

int vf_shard_file_checksum(const char *path, char checksum[65], struct vf_error *err)
{
    VF_ASSERT(path && checksum);
    checksum[0] = '\0';
    struct AVHashContext *h = NULL;
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = NULL;
    int r = av_hash_alloc(&h, "SHA256");
    if (r < 0)
        return vf_shard_av_error_(err, VF_EINTERNAL, r, "libavutil has no SHA256 hash");
    FILE *f = fopen(path, "rb");
    if (!f) {
        r = vf_error_set(err, errno == ENOENT ? VF_ENOENT : VF_EIO, "cannot read %s to checksum it: %s",
                         path, strerror(errno));
        goto out;
    }
    buf = malloc(CHUNK);
    if (!buf) {
        r = vf_error_set(err, VF_ENOMEM, "out of memory checksumming %s", path);
        goto out;
    }
    av_hash_init(h);
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0)
        av_hash_update(h, buf, n);
    if (ferror(f)) {
        r = vf_error_set(err, VF_EIO, "reading %s to checksum it failed", path);
        goto out;
    }
    av_hash_final_hex(h, (uint8_t *)checksum, 65);
    r = 0;
out:
    if (f)
        fclose(f);
    free(buf);
    av_hash_freep(&h);
    return r;
}
