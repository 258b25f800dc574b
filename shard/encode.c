/*
 * shard/encode.c: one chunk's frames -> one self-contained segment (shard.h, "encode").
 *
 * A segment is a Matroska file with exactly one video stream. It is written to a temporary file
 * of its own, "<path>.<pid>-<n>.tmp" (created exclusively: a chunk retried on another rank while
 * the first is still alive never shares it), and renamed by vf_shard_segment_close once the
 * encoder is flushed, the trailer written, the frame count checked and the bytes fsync'ed; a
 * crash therefore never leaves a half segment under the final name (DESIGN.md §6).
 * docs/ENCODE.md states the defaults and the timestamp rules.
 *
 * Invariants:
 *   - the encoder's time base is the source's, so a frame's pts goes in and comes out unchanged;
 *     the Matroska muxer stores it rounded to its 1/1000 s time base (merge.c restores it exactly);
 *   - the first frame is coded as a keyframe (IDR for x264/x265), so every segment decodes alone;
 *   - the same frames and settings give the same bytes on any machine (DESIGN.md §4): encoder
 *     threading is pinned (VF_ENCODE_THREADS), never "auto" (which follows the core count);
 *   - no frame-sized allocation per frame: converted frames come from one buffer pool and the
 *     swscale context is made once, for the first frame's format.
 */
#include "shard/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
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

/* Encoder threads, the same on every machine: x264's bitstream depends on its thread count
 * (and only on that), x265's on its frame threads and thread pool (and its info SEI records
 * them), so "auto" (the core count) would make a segment's bytes depend on the machine that
 * encoded it (DESIGN.md §4). encode.options threads / x265-params override it (and are hashed). */
#define VF_ENCODE_THREADS 4
#define VF_STR_(x) #x
#define VF_STR(x) VF_STR_(x)

/* Default pixel format per codec and source luma depth (docs/ENCODE.md explains each choice),
 * and the memory the encoder holds at its peak, per pixel of the film: mem_px bytes plus mem_fb
 * times the bytes of a frame in its pixel format, per pixel (1.5 for yuv420p, 6 for yuv444p16le).
 * Measured on Debian 12's FFmpeg 5.1 with vaefarm's settings (4 threads, default options), peak
 * RSS over 48 frames at 1920x1080 and 3840x2160 above a pass-through (docs/NODE.md "Memory"),
 * rounded up; options such as a longer x264 lookahead hold more. NVENC's are a guess (no GPU
 * encoder was at hand): two host frames. */
struct codec_rule {
    const char *name;   /* FFmpeg encoder name, as written in film.yaml encode.codec */
    const char *pix8;   /* default for sources of 8 bits or fewer */
    const char *pix10;  /* default for 9- and 10-bit sources */
    const char *pix16;  /* default for deeper sources */
    bool gpu;           /* needs an NVIDIA GPU with NVENC */
    double mem_px, mem_fb;
};

static const struct codec_rule codec_rules[] = {
    {"ffv1", "yuv444p", "yuv444p10le", "yuv444p16le", false, 165, 0},
    {"prores_ks", "yuv422p10le", "yuv422p10le", "yuv422p10le", false, 0, 5},
    {"libx264", "yuv420p", "yuv420p10le", "yuv420p10le", false, 0, 145},
    {"libx265", "yuv420p10le", "yuv420p10le", "yuv420p12le", false, 190, 60},
    {"dnxhd", "yuv422p", "yuv422p10le", "yuv422p10le", false, 165, 6},
    /* NVENC: H.264 is 8-bit only (4:2:0 or yuv444p); HEVC Main 10 (p010le) like libx265 */
    {"h264_nvenc", "yuv420p", "yuv420p", "yuv420p", true, 0, 2},
    {"hevc_nvenc", "p010le", "p010le", "p010le", true, 0, 2},
};
#define N_CODEC_RULES (sizeof codec_rules / sizeof codec_rules[0])

/* Options vaefarm derives from the source; setting them in encode.options would break the
 * segment's promise (same size, time base and pixel format as planned). */
static const char *const reserved_options[] = {"pix_fmt", "s", "video_size", "width", "height",
                                               "time_base", "framerate", "r"};

struct vf_segment_writer {
    char *path;                 /* final name */
    char *tmp;                  /* "<path>.<pid>-<n>.tmp", what is being written (ours alone) */
    bool tmp_owned;             /* tmp exists and this writer created it: only then remove it */
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

/* FFmpeg's log lines come in pieces (a line may be logged in several calls): `pending` holds
 * the error line being written, `first` the first whole one since vf_shard_av_log_forget_, the
 * cause (what follows is what failed because of it: "ff_frame_thread_encoder_init failed").
 * Per thread: each rank's decode, network and encode threads fail on their own. */
static _Thread_local char av_pending[256], av_first[256];

static void keep_av_errors(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level <= AV_LOG_ERROR) {
        char piece[256];
        int prefix = 0;   /* no "[h264_nvenc @ 0x55f2...]": the message names the codec */
        va_list copy;
        va_copy(copy, vl);
        av_log_format_line2(avcl, level, fmt, copy, piece, sizeof piece, &prefix);
        va_end(copy);
        size_t have = strlen(av_pending);
        snprintf(av_pending + have, sizeof av_pending - have, "%s", piece);
        size_t n = strlen(av_pending);
        if (n && av_pending[n - 1] == '\n') {
            while (n && (av_pending[n - 1] == '\n' || av_pending[n - 1] == ' '))
                av_pending[--n] = '\0';
            if (n && !av_first[0])
                memcpy(av_first, av_pending, n + 1);
            av_pending[0] = '\0';
        }
    }
    av_log_default_callback(avcl, level, fmt, vl);   /* prints only at av_log's level */
}

void vf_shard_log_setup(bool verbose)
{
    av_log_set_level(verbose ? AV_LOG_WARNING : AV_LOG_FATAL);
    av_log_set_callback(keep_av_errors);
}

void vf_shard_av_log_forget_(void)
{
    av_pending[0] = av_first[0] = '\0';
}

const char *vf_shard_av_said_(char *buf, size_t n)
{
    const char *line = av_first[0] ? av_first : av_pending;
    if (line[0])
        snprintf(buf, n, "FFmpeg said: %s", line);
    else
        snprintf(buf, n, "--verbose shows FFmpeg's log");
    return buf;
}

int vf_shard_av_error_(struct vf_error *err, int code, int averr, const char *fmt, ...)
{
    char head[VF_ERROR_MSG_MAX];
    char av[AV_ERROR_MAX_STRING_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    av_strerror(averr, av, sizeof av);
    /* a full disk is VF_ENOSPC whatever the call: no other place or rank can write there */
    if (averr < 0 && vf_io_status(AVUNERROR(averr)) == VF_ENOSPC)
        code = VF_ENOSPC;
    return vf_error_set(err, code, "%s: %s", head, av);
}

static const struct codec_rule *find_rule(const char *name)
{
    for (size_t i = 0; i < N_CODEC_RULES; i++)
        if (!strcmp(codec_rules[i].name, name))
            return &codec_rules[i];
    return NULL;
}

/* "a, b, c" of the codec names, for messages (`cpu_only`: those that need no GPU). */
static void codec_list(char *buf, size_t size, bool cpu_only)
{
    buf[0] = '\0';
    for (size_t i = 0; i < N_CODEC_RULES; i++)
        if (!cpu_only || !codec_rules[i].gpu)
            snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? ", " : "",
                     codec_rules[i].name);
}

int vf_shard_tmp_create_(char **out, const char *head, const char *tail)
{
    static atomic_uint counter;
    *out = NULL;
    size_t n = strlen(head) + strlen(tail) + 48;
    char *name = malloc(n);
    if (!name)
        return -ENOMEM;
    for (int tries = 0; tries < 10000; tries++) {
        snprintf(name, n, "%s%ld-%u%s", head, (long)getpid(), atomic_fetch_add(&counter, 1u), tail);
        int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            close(fd);
            *out = name;
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno ? errno : EEXIST;
    free(name);
    return -e;
}

int vf_shard_fsync_dir_(const char *path, struct vf_error *err)
{
    char *dir = vf_path_dirname(path, err);
    if (!dir)
        return VF_ENOMEM;
    int r = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL)) /* EINVAL: the filesystem cannot */
        r = vf_error_set(err, vf_io_status(errno), "fsync of the folder %s (making %s durable): %s",
                         dir, path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return r;
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

static const char *default_pix_fmt(const struct codec_rule *rule, const struct vf_media_info *src)
{
    int depth = source_depth(src);
    return depth <= 8 ? rule->pix8 : depth <= 10 ? rule->pix10 : rule->pix16;
}

const char *vf_shard_encode_pix_fmt(const struct vf_encode_spec *spec, const struct vf_media_info *src)
{
    if (spec->pix_fmt) { /* FFmpeg's own name for it: "yuv444p10" is this machine's yuv444p10le */
        const char *name = av_get_pix_fmt_name(av_get_pix_fmt(spec->pix_fmt));
        return name ? name : spec->pix_fmt;
    }
    const struct codec_rule *rule = spec->codec ? find_rule(spec->codec) : NULL;
    return rule ? default_pix_fmt(rule, src) : NULL;
}

/* The pixel format to encode in: spec->pix_fmt, or the rule's default for the source depth;
 * checked against what the encoder takes. */
static int choose_pix_fmt(enum AVPixelFormat *out, const AVCodec *codec, const struct codec_rule *rule,
                          const struct vf_media_info *src, const char *asked, struct vf_error *err)
{
    const char *name = asked ? asked : default_pix_fmt(rule, src);
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

/* x265 settings vaefarm makes (docs/ENCODE.md): errors only in the log; no info SEI (it records
 * the CPU's feature bits, cpuid=..., so the bytes would depend on the machine); pinned frame
 * threads and thread pool (both change the bitstream, and "auto" follows the core count). */
static const char *const x265_defaults[][2] = {
    {"log-level", "error"},
    {"info", "0"},
    {"frame-threads", VF_STR(VF_ENCODE_THREADS)},
    {"pools", VF_STR(VF_ENCODE_THREADS)},
};

/* Whether an x265-params string ("k=v:k=v", as FFmpeg parses it) sets `key` (or its "no-"
 * form, or `alias`). */
static bool x265_sets(const char *params, const char *key, const char *alias)
{
    for (const char *p = params; p && *p;) {
        size_t len = strcspn(p, "=:");
        const char *k = p;
        if (len > 3 && !strncmp(k, "no-", 3)) {
            k += 3;
            len -= 3;
        }
        if ((strlen(key) == len && !strncmp(k, key, len)) ||
            (alias && strlen(alias) == len && !strncmp(k, alias, len)))
            return true;
        p += strcspn(p, ":");
        p += *p == ':';
    }
    return false;
}

/* `user` (may be NULL) followed by every x265 default it does not set itself. */
static void x265_params(char *buf, size_t size, const char *user)
{
    snprintf(buf, size, "%s", user ? user : "");
    for (size_t i = 0; i < sizeof x265_defaults / sizeof *x265_defaults; i++) {
        const char *key = x265_defaults[i][0];
        if (x265_sets(user, key, !strcmp(key, "pools") ? "numa-pools" : NULL))
            continue;
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s=%s", len ? ":" : "", key, x265_defaults[i][1]);
    }
}

/* Codec-specific settings vaefarm makes before the user's encode.options (which may override). */
static int set_codec_defaults(AVCodecContext *enc, const struct codec_rule *rule, struct vf_error *err)
{
    int r = 0;
    char x265[256];
    if (!strcmp(rule->name, "ffv1")) {
        /* archival FFV1: version 3 with slice CRCs, every frame intra (cut anywhere, repair anywhere) */
        enc->gop_size = 1;
        /* FFmpeg 5.1's FFV1 decodes a picture 1 pixel wide or high otherwise than it was coded
         * (any slice count), and one 2 pixels wide or high too when it is cut into slices (4,
         * from the encoder's threads): one slice there, a refusal below 2 */
        if (enc->width < 2 || enc->height < 2)
            return vf_error_set(err, VF_EUNSUPPORTED,
                                "encode.codec: ffv1 does not keep a %dx%d picture (FFmpeg 5.1 "
                                "decodes a picture 1 pixel wide or high otherwise than it was "
                                "coded): choose another encode.codec", enc->width, enc->height);
        r = av_opt_set(enc, "level", "3", AV_OPT_SEARCH_CHILDREN);
        if (r >= 0) r = av_opt_set(enc, "slicecrc", "1", AV_OPT_SEARCH_CHILDREN);
        if (r >= 0 && (enc->width < 3 || enc->height < 3))
            r = av_opt_set(enc, "slices", "1", AV_OPT_SEARCH_CHILDREN);
    } else if (!strcmp(rule->name, "libx264") || !strcmp(rule->name, "libx265") || rule->gpu) {
        /* the forced first keyframe becomes an IDR: the segment starts a closed GOP */
        r = av_opt_set(enc, "forced-idr", "1", AV_OPT_SEARCH_CHILDREN);
        /* x265 prints its banner on stderr itself (keep a farm's log for errors); see above */
        if (r >= 0 && !strcmp(rule->name, "libx265")) {
            x265_params(x265, sizeof x265, NULL);
            r = av_opt_set(enc, "x265-params", x265, AV_OPT_SEARCH_CHILDREN);
        }
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
        if (!strcmp(key, "x265-params") && value) { /* the user's, then vaefarm's other defaults */
            x265_params(x265, sizeof x265, value);
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

/* Free everything; remove the temporary file when `remove_tmp` and this writer created it (a
 * writer never removes a file it did not make: another rank may be writing the same chunk). */
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
    if (remove_tmp && w->tmp && w->tmp_owned)
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
static int check_dnxhr_size(AVCodecContext *enc, const struct codec_rule *rule,
                            const struct vf_media_info *src, struct vf_error *err)
{
    int64_t profile = 0;
    if (strcmp(rule->name, "dnxhd") || av_opt_get_int(enc->priv_data, "profile", 0, &profile) < 0 ||
        profile == FF_PROFILE_DNXHD)
        return 0;
    if (enc->width >= 256 && enc->height >= 120)
        return 0;
    return vf_error_set(err, VF_EUNSUPPORTED,
                        "encode.codec: dnxhd (DNxHR) needs frames of at least 256x120 but %s is "
                        "%dx%d: choose another encode.codec (ffv1, prores_ks, libx264, libx265)",
                        src->path, enc->width, enc->height);
}

/* Interlaced coding where the codec has it, after encode.options: the flags set for an interlaced
 * source are cleared for DNxHR, whose profiles code frames only (FFmpeg refuses the flags: the
 * field order stays a tag); libx264 is told a bottom-field-first display order (bb, and bt, which
 * FFmpeg's own tools write for bottom first, as tb for top first) with bff=1 added to x264opts
 * (x264's own default, top first, would be written into its SEI whatever the frames say), unless
 * the options' x264opts already say tff, bff or interlaced. */
static int set_field_coding(AVCodecContext *enc, const struct codec_rule *rule,
                            struct vf_error *err)
{
    if (!(enc->flags & AV_CODEC_FLAG_INTERLACED_DCT))
        return 0;
    int64_t profile = FF_PROFILE_DNXHD;
    if (!strcmp(rule->name, "dnxhd") &&
        av_opt_get_int(enc->priv_data, "profile", 0, &profile) >= 0 && profile != FF_PROFILE_DNXHD)
        enc->flags &= ~(AV_CODEC_FLAG_INTERLACED_DCT | AV_CODEC_FLAG_INTERLACED_ME);
    if (!strcmp(rule->name, "libx264") &&
        (enc->field_order == AV_FIELD_BB || enc->field_order == AV_FIELD_BT)) {
        uint8_t *user = NULL;
        int r = av_opt_get(enc->priv_data, "x264opts", 0, &user);
        if (r < 0)
            return vf_shard_av_error_(err, VF_EINTERNAL, r, "reading libx264's x264opts");
        char opts[1024];
        const char *u = user ? (const char *)user : "";
        const bool said = strstr(u, "tff") || strstr(u, "bff") || strstr(u, "interlaced");
        snprintf(opts, sizeof opts, "%s%sbff=1", u, *u ? ":" : "");
        av_free(user);
        if (!said && (r = av_opt_set(enc->priv_data, "x264opts", opts, 0)) < 0)
            return vf_shard_av_error_(err, VF_EINTERNAL, r, "setting libx264's field order");
    }
    return 0;
}

/* Whether an NVENC encoder opens at all here (a small plain 8-bit frame, no user options): tells
 * "no usable GPU" apart from "the GPU refuses these settings". */
static bool gpu_encoder_opens(const AVCodec *codec)
{
    AVCodecContext *c = avcodec_alloc_context3(codec);
    if (!c)
        return false;
    c->width = 256;
    c->height = 256;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = (AVRational){1, 25};
    c->framerate = (AVRational){25, 1};
    bool ok = avcodec_open2(c, codec, NULL) >= 0;
    avcodec_free_context(&c);
    return ok;
}

/* Make and open the encoder for `src` in `fmt` with vaefarm's settings and encode.options.
 * `what` names the segment (or the check) in messages. */
static int open_encoder(AVCodecContext **out, const AVCodec *codec, const struct codec_rule *rule,
                        enum AVPixelFormat fmt, const struct vf_media_info *src,
                        const struct vf_encode_spec *spec, const char *what, struct vf_error *err)
{
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    if (!enc)
        return vf_error_set(err, VF_ENOMEM, "out of memory allocating the %s encoder", codec->name);
    *out = enc; /* the caller frees it, also on failure */
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
    /* pinned, never auto (0 = the core count): see VF_ENCODE_THREADS; threads=N overrides */
    enc->thread_count = VF_ENCODE_THREADS;

    int r = set_codec_defaults(enc, rule, err);
    if (r < 0)
        return r;
    r = set_user_options(enc, spec, codec->name, err);
    if (r < 0)
        return r;
    r = check_dnxhr_size(enc, rule, src, err);
    if (r < 0)
        return r;
    r = set_field_coding(enc, rule, err);
    if (r < 0)
        return r;
    vf_shard_av_log_forget_();
    r = avcodec_open2(enc, codec, NULL);
    if (r < 0) {
        const char *hint = "";
        char said[300];
        vf_shard_av_said_(said, sizeof said);   /* before the trial open below logs its own */
        if (rule->gpu && !gpu_encoder_opens(codec)) {
            char av[AV_ERROR_MAX_STRING_SIZE], list[256];
            av_strerror(r, av, sizeof av);
            codec_list(list, sizeof list, true);
            return vf_error_set(err, VF_EUNSUPPORTED,
                                "%s needs an NVIDIA GPU with NVENC; none was usable on this machine "
                                "(%s; %s): choose another encode.codec (%s)", codec->name, av, said,
                                list);
        }
        if (rule->gpu)
            hint = "; the GPU's NVENC refuses these settings (h264_nvenc is 8-bit only; NVENC "
                   "has minimum frame sizes; check encode.pix_fmt and encode.options)";
        else if (!strcmp(codec->name, "dnxhd"))
            hint = "; DNxHR (the default profiles dnxhr_hq/dnxhr_hqx/dnxhr_444) takes any size but "
                   "needs the profile to match the pixel format (yuv422p: dnxhr_hq or dnxhr_sq/lb, "
                   "yuv422p10le: dnxhr_hqx, yuv444p10le: dnxhr_444); the old DNxHD profile only "
                   "takes 1920x1080/1280x720/1440x1080 at the bitrates `ffmpeg -h encoder=dnxhd` lists";
        else if ((!strcmp(codec->name, "libx264") || !strcmp(codec->name, "libx265")) &&
                 ((src->width & 1) || (src->height & 1)))
            hint = "; 4:2:0 and 4:2:2 need an even width (and 4:2:0 an even height): set "
                   "encode.pix_fmt: yuv444p, or crop the film to an even size first (ffmpeg -i "
                   "IN -map 0 -c copy -vf 'crop=trunc(iw/2)*2:trunc(ih/2)*2' -c:v ffv1 OUT.mkv)";
        return vf_shard_av_error_(err, r == AVERROR(ENOMEM) ? VF_ENOMEM : VF_EUNSUPPORTED, r,
                                  "cannot open the %s encoder for %dx%d %s (%s; %s)%s",
                                  codec->name, src->width, src->height, av_get_pix_fmt_name(fmt),
                                  what, said, hint);
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
    VF_CHECK_AV(av_dict_set(&w->oc->metadata, "VAEFARM_SOURCE_TIME_BASE", tb, 0), err, fail);

    r = vf_shard_open_output_(&w->oc->pb, w->tmp);
    if (r < 0)
        return vf_shard_av_error_(err, VF_EIO, r,
                                  "cannot create segment file %s (check that the work folder exists, "
                                  "is writable and has space)",
                                  w->tmp);
    r = avformat_write_header(w->oc, NULL);
    if (r < 0)
        return vf_shard_av_error_(err, VF_EMEDIA, r, "writing the Matroska header of %s", w->tmp);
    return 0;
fail:
    vf_error_prefix(err, "segment %s", w->path);
    return err ? err->code : VF_EMEDIA;
}

/* What vf_shard_segment_open and vf_shard_encoder_check both check first: the codec is one
 * vaefarm encodes with and this FFmpeg has, the source has a size and time base, and the pixel
 * format (asked or default) is one the encoder takes. `what` names the segment in messages. */
static int resolve(const struct vf_encode_spec *spec, const struct vf_media_info *src, const char *what,
                   const struct codec_rule **rule_out, const AVCodec **codec_out,
                   enum AVPixelFormat *fmt, struct vf_error *err)
{
    char list[256];
    codec_list(list, sizeof list, false);
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
                            "%s: the source %s has no usable size (%dx%d) or time base (%d/%d)",
                            what, src->path, src->width, src->height, src->tb_num, src->tb_den);
    int r = choose_pix_fmt(fmt, codec, rule, src, spec->pix_fmt, err);
    if (r < 0)
        return r;
    *rule_out = rule;
    *codec_out = codec;
    return 0;
}

void vf_shard_encode_spec(const struct vf_film *film, struct vf_encode_spec *spec)
{
    VF_ASSERT(film && spec);
    *spec = (struct vf_encode_spec){
        .codec = film->codec,
        .pix_fmt = film->pix_fmt, /* NULL: the codec's default for the source's depth */
        .options = film->n_encode_options ? film->encode_options : NULL,
        .n_options = film->encode_options ? film->n_encode_options : 0,
    };
}

/* Open (and close) the encoder for `spec` and `src`; with `par`, its stream parameters into
 * *par (extradata included). `doing` names the check in messages. */
static int try_encoder(const struct vf_encode_spec *spec, const struct vf_media_info *src,
                       const char *doing, AVCodecParameters **par, struct vf_error *err)
{
    if (!spec || !src)
        return vf_error_set(err, VF_EINVAL, "%s: spec and source are required", doing);
    const struct codec_rule *rule = NULL;
    const AVCodec *codec = NULL;
    enum AVPixelFormat fmt = AV_PIX_FMT_NONE;
    char what[4200];
    snprintf(what, sizeof what, "%s for %s", doing, src->path);
    int r = resolve(spec, src, what, &rule, &codec, &fmt, err);
    if (r < 0)
        return r;
    AVCodecContext *enc = NULL;
    r = open_encoder(&enc, codec, rule, fmt, src, spec, what, err);
    if (r >= 0 && par && !(*par = avcodec_parameters_alloc()))
        r = vf_error_set(err, VF_ENOMEM, "out of memory %s", what);
    if (r >= 0 && par && (r = avcodec_parameters_from_context(*par, enc)) < 0)
        r = vf_shard_av_error_(err, VF_ENOMEM, r, "%s", what);
    if (r < 0 && par)
        avcodec_parameters_free(par);
    avcodec_free_context(&enc);
    return r < 0 ? r : 0;
}

size_t vf_shard_codec_bytes(const struct vf_encode_spec *spec, const struct vf_media_info *src)
{
    const struct codec_rule *rule = NULL;
    const AVCodec *codec = NULL;
    enum AVPixelFormat fmt = AV_PIX_FMT_NONE;
    struct vf_error ignored = {0};
    const double px = (double)src->width * src->height;
    /* the decoder: its frame threads' pictures and the references (docs/NODE.md "Memory") */
    const int threads = vf_shard_decode_threads_();
    const int sfb = av_image_get_buffer_size(av_get_pix_fmt(src->pix_fmt), src->width, src->height, 1);
    double bytes = (sfb > 0 ? (double)sfb : 3.0 * px) * (2 * threads + 8) + threads * 4194304.0;
    /* the encoder, and the writer's frame in its format */
    if (resolve(spec, src, "memory", &rule, &codec, &fmt, &ignored) == 0) {
        const int fb = av_image_get_buffer_size(fmt, src->width, src->height, 1);
        bytes += rule->mem_px * px + (rule->mem_fb + 2) * (fb > 0 ? fb : 6.0 * px);
    } else {
        bytes += 400.0 * px;   /* a spec the check refuses before any work: about x265's */
    }
    return bytes < (double)SIZE_MAX ? (size_t)bytes : SIZE_MAX;
}

int vf_shard_encoder_check(const struct vf_encode_spec *spec, const struct vf_media_info *src,
                           struct vf_error *err)
{
    return try_encoder(spec, src, "checking encode settings", NULL, err);
}

int vf_shard_encoder_params_(const struct vf_encode_spec *spec, const struct vf_media_info *src,
                             AVCodecParameters **par, struct vf_error *err)
{
    *par = NULL;
    return try_encoder(spec, src, "checking the output's streams", par, err);
}

int vf_shard_segment_open(struct vf_segment_writer **out, const char *path,
                          const struct vf_media_info *src, const struct vf_encode_spec *spec,
                          struct vf_error *err)
{
    VF_ASSERT(out);
    *out = NULL;
    if (!path || !path[0] || !src || !spec)
        return vf_error_set(err, VF_EINVAL, "vf_shard_segment_open: path, source and spec are required");
    const struct codec_rule *rule = NULL;
    const AVCodec *codec = NULL;
    enum AVPixelFormat fmt = AV_PIX_FMT_NONE;
    char what[4200];
    snprintf(what, sizeof what, "segment %s", path);
    int r = resolve(spec, src, what, &rule, &codec, &fmt, err);
    if (r < 0)
        return r;

    struct vf_segment_writer *w = vf_calloc(1, sizeof *w, err);
    if (!w)
        return VF_ENOMEM;
    w->src = src;
    w->rule = rule;
    w->last_pts = INT64_MIN;
    w->sws_fmt = AV_PIX_FMT_NONE;
    w->path = vf_strdup(path, err);
    w->pkt = av_packet_alloc();
    w->in = av_frame_alloc();
    if (!w->path || !w->pkt || !w->in) {
        r = vf_error_set(err, VF_ENOMEM, "out of memory opening segment %s", path);
        goto fail;
    }
    r = open_encoder(&w->enc, codec, rule, fmt, src, spec, what, err);
    if (r < 0)
        goto fail;
    /* a temporary name of our own, reserved before anything is written to it */
    char head[4200];
    snprintf(head, sizeof head, "%s.", path);
    r = vf_shard_tmp_create_(&w->tmp, head, ".tmp");
    if (r < 0) {
        r = vf_error_set(err, r == -ENOMEM ? VF_ENOMEM : vf_io_status(-r),
                         "cannot create segment file %s.<pid>-<n>.tmp (check that the work folder "
                         "exists, is writable and has space): %s",
                         path, strerror(-r));
        goto fail;
    }
    w->tmp_owned = true;
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
    if (r < 0) {
        av_frame_unref(f); /* back to the pool: w->in is clean again */
        return vf_shard_av_error_(err, VF_EINTERNAL, r, "laying out a frame of segment %s", w->path);
    }
    return 0;
}

/* Make the swscale context for frames like `frame` (once per segment). YUV (or gray) in and YUV
 * out keep their levels: the same range on both sides, so only depth/subsampling/size change.
 * RGB in (full range by nature) is converted with the source's matrix (vf_shard_sws_matrix_:
 * BT.709 for a bt709 film, BT.601 for bt470bg/smpte170m, ...) to the source's range. */
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
    const AVPixFmtDescriptor *in = av_pix_fmt_desc_get(frame->format);
    const AVPixFmtDescriptor *out = av_pix_fmt_desc_get(w->enc->pix_fmt);
    bool rgb_in = in && (in->flags & AV_PIX_FMT_FLAG_RGB), rgb_out = out && (out->flags & AV_PIX_FMT_FLAG_RGB);
    /* the YUV levels: the source's, or the frame's own when it is YUV and says full range */
    int yuv_full = w->enc->color_range == AVCOL_RANGE_JPEG ||
                   (!rgb_in && frame->color_range == AVCOL_RANGE_JPEG);
    const int *coefs = sws_getCoefficients(vf_shard_sws_matrix_(w->enc->colorspace, w->enc->height));
    /* YUV->RGB uses the first table (inv_table), RGB->YUV the second: the source's matrix both */
    if (sws_setColorspaceDetails(w->sws, coefs, rgb_in ? 1 : yuv_full, coefs, rgb_out ? 1 : yuv_full,
                                 0, 1 << 16, 1 << 16) < 0)
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
            return vf_shard_av_error_(err, VF_EMEDIA, r, /* a full disk: VF_ENOSPC */
                                      "writing packet %lld to %s", (long long)w->packets_out, w->tmp);
        w->packets_out++;
    }
}

enum AVPixelFormat vf_shard_segment_pix_fmt(const struct vf_segment_writer *w)
{
    return w->enc->pix_fmt;
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
            if (r < 0) {
                av_frame_unref(w->in); /* the pooled buffer goes back: w->in stays clean */
                return vf_shard_av_error_(err, VF_EINVAL, r,
                                          "copying frame %lld of %s (a frame without its planes?)",
                                          (long long)w->frames_in, w->path);
            }
        } else {
            r = sws_scale(w->sws, (const uint8_t *const *)frame->data, frame->linesize, 0,
                          frame->height, w->in->data, w->in->linesize);
            if (r <= 0) {
                av_frame_unref(w->in);
                return vf_error_set(err, VF_EINTERNAL, "segment %s: swscale failed on frame %lld",
                                    w->path, (long long)w->frames_in);
            }
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
    int r = pkt ? vf_shard_open_input_(&ic, file) : AVERROR(ENOMEM);
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
        r = vf_error_set(err, vf_io_status(errno), "fsync %s: %s", w->tmp, strerror(errno));
        goto fail;
    }
    if (rename(w->tmp, w->path) < 0) {
        r = vf_error_set(err, vf_io_status(errno), "renaming %s to %s: %s", w->tmp, w->path,
                         strerror(errno));
        goto fail;
    }
    w->tmp_owned = false; /* renamed: the file is the segment now, not a temporary */
    /* make the rename itself durable; on failure the segment stays (complete, but perhaps not
     * on disk after a crash): the caller does not journal it and encodes the chunk again */
    if ((r = vf_shard_fsync_dir_(w->path, err)) < 0) {
        writer_free(pw, false);
        return r;
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

int vf_shard_buffer_checksum(const void *buf, size_t len, char checksum[65], struct vf_error *err)
{
    VF_ASSERT((buf || len == 0) && checksum);
    checksum[0] = '\0';
    struct AVHashContext *h = NULL;
    int r = av_hash_alloc(&h, "SHA256");
    if (r < 0)
        return vf_shard_av_error_(err, VF_EINTERNAL, r, "libavutil has no SHA256 hash");
    av_hash_init(h);
    av_hash_update(h, buf, len);
    av_hash_final_hex(h, (uint8_t *)checksum, 65);
    av_hash_freep(&h);
    return 0;
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
    /* a regular file only: a FIFO or a device (a link to /dev/zero) would never end */
    FILE *f = NULL;
    int fd = vf_open_regular(path, NULL, err);
    if (fd < 0) {
        r = vf_error_prefix(err, "cannot checksum");
        goto out;
    }
    if (!(f = fdopen(fd, "rb"))) {
        r = vf_error_set(err, VF_EIO, "cannot read %s to checksum it: %s", path, strerror(errno));
        close(fd);
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
