/*
 * shard/internal.h: private declarations shared by the files of shard/ (never included from
 * outside this folder). Keep it small; add what two or more of its .c files need.
 */
#ifndef VF_SHARD_INTERNAL_H
#define VF_SHARD_INTERNAL_H

#include <libavutil/error.h>

#include "common/common.h"
#include "shard/shard.h"

/* Check an FFmpeg call that returns a negative AVERROR on failure: on failure record
 * VF_EMEDIA with the statement, function, file:line and FFmpeg's message, then `goto label`.
 * Callers usually vf_error_prefix() at `label` with the file/frame and what to do. */
#define VF_CHECK_AV(call, err, label)                                                          \
    do {                                                                                       \
        int vf_av_rc_ = (call);                                                                \
        if (vf_av_rc_ < 0) {                                                                   \
            char vf_av_msg_[AV_ERROR_MAX_STRING_SIZE];                                         \
            av_strerror(vf_av_rc_, vf_av_msg_, sizeof vf_av_msg_);                             \
            VF_CHECK_(1, (err), VF_EMEDIA, label, #call, vf_av_msg_);                          \
        }                                                                                      \
    } while (0)

/* Same, keeping the call's result in `rc` (for calls whose non-negative result matters). */
#define VF_CHECK_AV_RC(rc, call, err, label)                                                   \
    do {                                                                                       \
        (rc) = (call);                                                                         \
        if ((rc) < 0) {                                                                        \
            char vf_av_msg_[AV_ERROR_MAX_STRING_SIZE];                                         \
            av_strerror((rc), vf_av_msg_, sizeof vf_av_msg_);                                  \
            VF_CHECK_(1, (err), VF_EMEDIA, label, #call, vf_av_msg_);                          \
        }                                                                                      \
    } while (0)

/* An FFmpeg allocation (av_frame_alloc, av_packet_alloc, sws_getContext, ...) that returns
 * NULL on failure: record VF_ENOMEM and `goto label`. */
#define VF_CHECK_AV_ALLOC(ptr, err, label)                                                     \
    VF_CHECK_((ptr) == NULL, (err), VF_ENOMEM, label, #ptr, "out of memory")

/* The probe's packet index, in decode (demux) order, private to shard/: what the decoder needs
 * to find the exact packet a seek must start from. Kept by struct vf_media_info::packets_. */
struct vf_packet_entry {
    int64_t pts;                /* presentation timestamp (dts when the packet had no pts) */
    int64_t dts;                /* AV_NOPTS_VALUE when unknown */
    int64_t pos;                /* byte offset in the file, -1 when unknown */
    int64_t duration;           /* the packet's duration in tb units, 0 when unknown */
    int size;                   /* bytes */
    int key;                    /* flagged AV_PKT_FLAG_KEY */
};

struct vf_packet_index {
    int64_t n;                  /* == info->frames */
    struct vf_packet_entry *pkt; /* n entries, decode order */
    int64_t *decode_pos;        /* n entries: frame i (presentation order) is pkt[decode_pos[i]] */
};

/* Frame index of the frame whose pts is `pts`, or -1 (binary search of info->pts). */
int64_t vf_shard_frame_of_pts_(const struct vf_media_info *info, int64_t pts);

/* ---- decode.c / encode.c ----------------------------------------------------------------- */
#include <libavutil/pixdesc.h>
#include <libavutil/pixfmt.h>
#include <libswscale/swscale.h>

/* RGB or palette pictures: colour by nature, read by swscale as full range whatever their tag,
 * their luma made with a matrix of vaefarm's choosing (docs/MEDIA.md). */
static inline bool vf_shard_is_rgb_(const AVPixFmtDescriptor *d)
{
    return d && (d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL));
}

/* swscale's matrix (SWS_CS_*) for a stream's colour space; unspecified: BT.709 for HD
 * (height >= 720), BT.601 below, as players guess. For sws_getCoefficients(). */
static inline int vf_shard_sws_matrix_(enum AVColorSpace cs, int height)
{
    switch (cs) {
    case AVCOL_SPC_BT709: return SWS_CS_ITU709;
    case AVCOL_SPC_FCC: return SWS_CS_FCC;
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M: return SWS_CS_ITU601;
    case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
    default: return height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601;
    }
}

/* ---- encode.c / merge.c ------------------------------------------------------------------ */
#include <libavutil/mathematics.h>

/* Reserve a temporary file "<head><pid>-<n><tail>" that this process alone owns: created with
 * O_CREAT|O_EXCL (n counts up on EEXIST, so two writers of the same final name, in one process
 * or in two, never share a temporary file). On success *out is the malloc'd name (the file
 * exists, empty) and 0 is returned; on failure -errno and *out is NULL. Defined in encode.c. */
int vf_shard_tmp_create_(char **out, const char *head, const char *tail);

/* The video stream's parameters as the encoder for `spec` and `src` makes them (opened and
 * closed: extradata included), for the output check before any work. Defined in encode.c. */
struct AVCodecParameters;
int vf_shard_encoder_params_(const struct vf_encode_spec *spec, const struct vf_media_info *src,
                             struct AVCodecParameters **par, struct vf_error *err);

/* avformat_open_input(ic, path) with the file read as named: FFmpeg's image demuxer would take a
 * name with a printf pattern (ref%03d.png, shot%d.jpg) for a numbered sequence and find no
 * file, and FFmpeg would take a name that starts like a URL (concat:a.mkv, pipe:0,
 * take1:final.mkv) for another protocol. Defined in probe.c. */
struct AVFormatContext;
int vf_shard_open_input_(struct AVFormatContext **ic, const char *path);
/* FFmpeg's genpts on ic where it gives the right presentation times: MPEG-1/2 video and MPEG-4
 * Part 2, whose B-frames FFmpeg's parser sees, so that a packet without pts (the I and P frames
 * of an AVI with B-frames: Xvid, DivX) gets the dts of the frame shown after it. Not H.264 or
 * HEVC: there each packet without pts would take the next packet's dts, one frame late even
 * without B-frames (the probe refuses those with B-frames and no pts). Packets with a pts keep
 * it. The probe and every decoder of the film call it, after avformat_find_stream_info. */
void vf_shard_genpts_(struct AVFormatContext *ic, int video_stream);
/* avio_open(pb, path, AVIO_FLAG_WRITE) of the file named, whatever its name looks like. */
struct AVIOContext;
int vf_shard_open_output_(struct AVIOContext **pb, const char *path);

/* The decoder's frame threads as FFmpeg's "auto" (thread_count 0, which the decoder keeps)
 * chooses them, for the memory estimate (vf_shard_codec_bytes): the CPUs this process may run on
 * plus one, at most 16; 1 on one CPU. Slice threads are as many or fewer. Defined in decode.c. */
int vf_shard_decode_threads_(void);

/* fsync the folder that holds `path` (after a rename into it): 0, or VF_EIO recorded with the
 * folder's name. A filesystem that cannot sync folders (EINVAL) counts as success. */
int vf_shard_fsync_dir_(const char *path, struct vf_error *err);

/* FFmpeg's first error line on this thread since vf_shard_av_log_forget_() (vf_shard_log_setup):
 * forget before the call whose failure should quote it; then vf_shard_av_said_ writes "FFmpeg said:
 * LINE" into buf, or, where it said nothing at error level, that --verbose shows its log. */
void vf_shard_av_log_forget_(void);
const char *vf_shard_av_said_(char *buf, size_t n);

/* Record `code` with a printf-style message followed by ": <FFmpeg's text for averr>";
 * returns `code`. For FFmpeg failures whose message must say what to do (defined in encode.c). */
int vf_shard_av_error_(struct vf_error *err, int code, int averr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A segment's Matroska muxer stores video timestamps in 1/1000 s, coarser than many sources'
 * time bases. encode.c (writing) and merge.c (checking) round a source pts to the segment's
 * time base with this one function, so that the two always agree. */
static inline int64_t vf_shard_round_pts_(int64_t pts, AVRational from, AVRational to)
{
    return av_rescale_q_rnd(pts, from, to, AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX);
}

/* ---- chunking.c: the schedule model and the auto cutting (docs/PLAN.md) ------------------- */

/* One piece of a shot: kept frames [off, off + kept) counted from the shot's first frame. */
struct vf_piece_ {
    size_t shot;
    int64_t off, kept;
};

/* The makespan of the coordinator's schedule on `ranks` equal ranks for chunks costing
 * cost[0..n) frames: longest first, each to the rank idle first. Sorts `cost` in place
 * (descending). -1 when out of memory. The one model of the schedule: vf_shard_plan_simulate
 * and the auto cutting both use it. */
int64_t vf_shard_makespan_(int64_t *cost, size_t n, int64_t ranks);

/* The bound of vf_shard_plan_bound for shots of len[0..n) frames. */
int64_t vf_shard_bound_(const int64_t *len, size_t n, int64_t warmup, int64_t ranks);

/* chunks.length: auto for shots of len[0..n) frames: *pieces (malloc'd, *n_pieces entries)
 * in film order (by shot, then offset), *target the per-rank load the cutting aimed at.
 * Deterministic. 0, or VF_ENOMEM. */
int vf_shard_auto_cut_(const int64_t *len, size_t n, int64_t warmup, int64_t ranks,
                       struct vf_piece_ **pieces, size_t *n_pieces, int64_t *target,
                       struct vf_error *err);

#endif /* VF_SHARD_INTERNAL_H */
