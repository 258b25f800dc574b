/*
 * shard/shard.h: the film as media and as units of work (DESIGN.md §1, §4, §6).
 *
 *   probe   what the film is: frames, rates, size, pixel format, streams, timecode, VFR
 *   decode  frames [a, b) by frame index, frame-exact (bit-identical to one sequential decode)
 *   shots   scene-cut detection over luma, explicit lists, CMX3600 EDL import
 *   plan    shots -> chunks (kept + warm-up frames), references, the plan hash
 *   encode  one chunk's frames -> a self-contained segment (temporary name, then rename)
 *   merge   segments in order + the source's audio/subtitles -> the output (atomic rename)
 *   journal <work_dir>/journal: one line per finished chunk, appended and fsync'd (resume)
 *
 * Frame index i is the i-th frame of the video stream in presentation order (the order of
 * one sequential decode). Every frame keeps the source's own timestamp through to the output.
 *
 * Uses: common/, config/, FFmpeg's libraries, jansson (the journal's lines). Knows nothing of
 * networks or MPI.
 */
#ifndef VF_SHARD_H
#define VF_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include <libavutil/frame.h>

#include "common/common.h"
#include "config/config.h"

/* FFmpeg's log: its lines reach stderr at `verbose` only (our messages carry what matters), but
 * its first error line on each thread is kept either way, and the messages of a codec that will
 * not open or a header the container refuses quote it. Call once, before any FFmpeg work. */
void vf_shard_log_setup(bool verbose);

/* ============================== probe ====================================================== */

enum vf_stream_kind { VF_STREAM_VIDEO, VF_STREAM_AUDIO, VF_STREAM_SUBTITLE, VF_STREAM_DATA, VF_STREAM_OTHER };

struct vf_stream_info {
    int index;                  /* stream index in the container */
    enum vf_stream_kind kind;
    char codec[32];             /* FFmpeg codec name, e.g. "aac" */
    char language[16];          /* from metadata, "" when none */
    int sample_rate;            /* audio only */
    int channels;               /* audio only */
    double duration;            /* seconds, from the container; < 0 when unknown */
};

struct vf_packet_index;

struct vf_media_info {
    char path[4096];
    char container[64];         /* demuxer name, e.g. "matroska,webm" */
    int video_stream;           /* index of the video stream vaefarm colorizes */
    char codec[32];             /* e.g. "h264" */
    char pix_fmt[32];           /* e.g. "yuv420p" */
    int width, height;
    int sar_num, sar_den;       /* sample aspect ratio (0/1 when unknown) */
    int fps_num, fps_den;       /* nominal frame rate (avg for VFR) */
    int tb_num, tb_den;         /* the video stream's time base */
    int64_t frames;             /* counted from the packet index, never guessed */
    double duration;            /* seconds of video: last pts + its duration - first pts */
    int64_t start_pts;          /* pts of frame 0 in tb units */
    bool vfr;                   /* frame durations differ (see docs/MEDIA.md for the rule) */
    int64_t gap_missing;        /* 0, or the frame times with no frame after gap_frame, the
                                   frame (not the last) that lasts longest, when it lasts at
                                   least VF_SHARD_GAP median frame durations (damage, drops, or
                                   a hold): its duration / the median - 1, rounded */
    int64_t gap_frame;
    double gap_seconds;         /* gap_frame's duration, seconds */
    bool has_b_frames;          /* presentation order differs from decode order */
    int64_t keyframes;          /* packets flagged key in the video stream */
    char video_digest[65];      /* sha256 hex over the video stream's packets (data, pts, flags):
                                   the input's identity for the plan hash, blind to mtime/renames */
    char timecode[32];          /* SMPTE timecode of frame 0, "" when none */
    char field_order[16];       /* "progressive", "tt", "bb", "tb", "bt", "unknown" */
    char color_range[16];       /* "tv", "pc", "unknown" */
    char color_space[32];       /* matrix, e.g. "bt709" */
    char color_transfer[32];
    char color_primaries[32];
    int bits_per_sample;        /* luma bit depth of the pixel format */
    bool display_matrix;        /* the video stream has a display matrix (a phone's rotation):
                                   players turn the stored picture; vaefarm colorizes the stored
                                   picture and the output keeps the matrix */
    double rotation;            /* its rotation in degrees, as ffprobe reports it (0 when none) */
    bool mirrored;              /* its matrix also flips the picture */
    int n_streams;              /* every stream in the container, video included */
    struct vf_stream_info *streams;
    int64_t *pts;               /* frames entries: frame i's pts in tb units, ascending */
    int64_t *frame_duration;    /* frames entries: frame i's duration in tb units */
    uint8_t *key;               /* frames entries: 1 when frame i's packet is flagged key (a
                                   seek point; see docs/MEDIA.md), else 0 */
    struct vf_packet_index *packets_; /* private to shard/ (internal.h): decode-order index */
};

/* A gap in a film's frame times worth saying (vf_media_info.gap_missing): a frame that lasts at
 * least this many median frame durations. */
#define VF_SHARD_GAP 4

/* Probe `path`. Demuxes the whole video stream (no decode) to count frames and index their
 * timestamps, so the count is exact. Fails with a clear message for a file that is not video,
 * has no video stream, or is truncated in a way that loses frames. */
int vf_shard_probe(struct vf_media_info **out, const char *path, struct vf_error *err);
void vf_shard_media_info_destroy(struct vf_media_info **info);

/* Whether the film's frames are two fields each (field order tt, bb, tb or bt). */
bool vf_shard_interlaced(const struct vf_media_info *info);

/* ============================== decode ===================================================== */

enum vf_decode_flags {
    VF_DECODE_LUMA = 1,         /* frame->luma points into the decoded frame's Y plane */
    VF_DECODE_RGB = 2,          /* also convert to planar RGB (for ground-truth files) */
};

/* One decoded frame. Pointers are owned by the decoder and valid until the next read. */
struct vf_frame {
    int64_t index;              /* frame index (presentation order) */
    int64_t pts;                /* the source's pts, tb units */
    int width, height;
    int luma_bits;              /* 8: uint8_t samples; 9..16: uint16_t samples (native endian) */
    const uint8_t *luma;        /* Y plane (Y' of the source's matrix); no copy */
    int luma_stride;            /* bytes */
    const uint8_t *rgb[3];      /* VF_DECODE_RGB: R, G, B planes, uint8_t (8-bit sources) or
                                   uint16_t (deeper sources, see rgb_bits) */
    int rgb_stride;             /* bytes */
    int rgb_bits;
    const AVFrame *av;          /* the decoded frame itself (native pixel format) */
};

struct vf_decoder;

int vf_shard_decoder_create(struct vf_decoder **out, const struct vf_media_info *info,
                            unsigned flags, struct vf_error *err);
/* Position so that the next read returns frame `index`. Seeks to a safe keyframe and decodes
 * forward; the frames it returns are bit-identical to a sequential decode's. */
int vf_shard_decoder_seek(struct vf_decoder *dec, int64_t index, struct vf_error *err);
/* Read the next frame: returns 1 with *frame filled, 0 at end of stream, < 0 on error. */
int vf_shard_decoder_read(struct vf_decoder *dec, struct vf_frame *frame, struct vf_error *err);
void vf_shard_decoder_destroy(struct vf_decoder **dec);

/* ============================== shots ====================================================== */

struct vf_shot_params {
    double threshold;           /* (0, 1]: higher = fewer cuts */
    int64_t min_length;         /* frames; a cut closer than this to the previous is dropped */
};

/* Scene-cut detection over the luma signal. Returns the cut frames (the first frame of every
 * shot but the first), ascending, in *cuts (malloc'd; free()). `scores`, when not NULL, gets the
 * per-frame cut score (frames entries, malloc'd) for measurement and tuning. */
int vf_shard_detect_cuts(const struct vf_media_info *info, const struct vf_shot_params *params,
                         int64_t **cuts, size_t *n_cuts, double **scores, struct vf_error *err);

/* Import a CMX3600 EDL: each event's record in/out (timecodes at the film's frame rate, made
 * relative to the first event's record in, or to `info`'s timecode when it has one) becomes a
 * shot. Returns the cut frames like vf_shard_detect_cuts. */
int vf_shard_edl_load(const char *path, const struct vf_media_info *info, int64_t **cuts,
                      size_t *n_cuts, struct vf_error *err);

/* ============================== plan ======================================================= */

struct vf_shot {
    int64_t start, end;         /* frames [start, end) */
    const char *reference;      /* path, borrowed from the film spec */
    char source[16];            /* "list", "edl", "detect", "whole" */
};

struct vf_chunk {
    int id;                     /* 0..n_chunks-1 in film order; segment NNNNN = id */
    int shot;                   /* index into plan->shots */
    int64_t warm_start;         /* first frame decoded (== start for a shot's first chunk) */
    int64_t start, end;         /* kept frames [start, end) */
    const char *reference;      /* == the shot's reference */
    char reference_sha[65];     /* sha256 hex of the reference image's bytes as planned */
    char hash[65];              /* sha256 hex of everything that shapes this chunk's output */
};

struct vf_plan {
    int64_t frames;             /* the film's frame count */
    struct vf_shot *shots;
    size_t n_shots;
    struct vf_chunk *chunks;
    size_t n_chunks;
    char hash[65];              /* sha256 hex over every chunk hash and the merge settings */
    char **warnings;            /* human-readable, n_warnings entries */
    size_t n_warnings;
    int64_t warmup;             /* chunks.warmup the chunks were cut with */
    int auto_ranks;             /* chunks.length auto: the rank count the cutting was planned for
                                   (film->ranks); 0 for a fixed chunks.length */
    int64_t auto_target;        /* chunks.length auto: the per-rank load T, in frames of work, the
                                   chosen cutting aimed at; 0 for a fixed chunks.length */
};

/* Build the plan: shots (film->shots list, else film->edl, else detection when film->detect is
 * AUTO, else one shot), references per DESIGN.md §8, chunks of film->chunk_length kept frames
 * with film->warmup warm-up frames before every non-first chunk of a shot (never crossing into
 * the previous shot). With film->chunk_length == VF_CHUNK_AUTO the shots are cut for
 * film->ranks ranks (>= 1, else VF_EINVAL) by the auto rule of docs/PLAN.md ("Auto chunking"):
 * deterministic, a function of the shot lengths, the warm-up and the rank count only. `cuts` (may be NULL) are the cut frames to use when the shots come from
 * detection or an EDL: the caller runs vf_shard_detect_cuts / vf_shard_edl_load first, so that
 * planning itself is pure and fast (property tests call it many thousand times).
 * Errors name the shot and the YAML line: overlaps, gaps, ranges past the end, shots with no
 * reference. */
int vf_shard_plan_create(struct vf_plan **out, const struct vf_film *film,
                         const struct vf_media_info *info, const int64_t *cuts, size_t n_cuts,
                         struct vf_error *err);
void vf_shard_plan_destroy(struct vf_plan **plan);

/* The makespan, in frames of work, of a dynamic longest-chunk-first schedule on `ranks` equal
 * ranks, each chunk costing (end - warm_start) frames: the coordinator's order (cost
 * descending, then chunk id; coordinator/farm_coord.c), each chunk to the rank that is idle
 * first. -1 for ranks < 1 or out of memory. */
int64_t vf_shard_plan_simulate(const struct vf_plan *plan, int ranks);

/* The least makespan, in frames of work, that any cutting of the plan's shots and any schedule
 * could reach on `ranks` equal ranks with plan->warmup warm-up frames per cut (docs/PLAN.md
 * "Auto chunking"): the smallest T with T >= (frames + warmup x C(T)) / ranks, where C(T) is
 * the fewest cuts that leave no piece costing more than T, and with every shot cuttable into
 * such pieces. 0 for a plan without shots, -1 for ranks < 1. */
int64_t vf_shard_plan_bound(const struct vf_plan *plan, int ranks);

/* ============================== encode ===================================================== */

struct vf_encode_spec {
    const char *codec;          /* ffv1 | prores_ks | libx264 | libx265 | dnxhd | h264_nvenc |
                                   hevc_nvenc */
    const char *pix_fmt;        /* NULL: the codec's default for the source's bit depth */
    const struct vf_encode_option *options;
    size_t n_options;
};

/* The film's encode settings (encode.codec, encode.pix_fmt, encode.options) as a spec; the
 * strings are borrowed from `film`. The coordinator and the node build every spec with it. */
void vf_shard_encode_spec(const struct vf_film *film, struct vf_encode_spec *spec);

/* The name of the pixel format `spec` encodes `src` in: spec->pix_fmt (FFmpeg's own name for it,
 * so an alias such as yuv444p10 reads yuv444p10le), else the codec's default for the source's
 * depth (docs/ENCODE.md); NULL for a codec vaefarm does not encode with. Not checked against the
 * encoder (vf_shard_encoder_check does that). Chunk hashes hold it, so writing the default in
 * film.yaml changes no hash. */
const char *vf_shard_encode_pix_fmt(const struct vf_encode_spec *spec, const struct vf_media_info *src);

struct vf_segment_writer;

/* Check encode settings before any work: the codec is one vaefarm encodes with and this FFmpeg
 * has, the pixel format (asked or default) is one it takes, and the encoder opens (then is
 * closed) for `src`'s size, time base and colours with vaefarm's settings and spec->options.
 * Writes no file. The errors are vf_shard_segment_open's (an NVENC codec on a machine without a
 * usable NVIDIA GPU: VF_EUNSUPPORTED, "h264_nvenc needs an NVIDIA GPU with NVENC; ..."). */
int vf_shard_encoder_check(const struct vf_encode_spec *spec, const struct vf_media_info *src,
                           struct vf_error *err);
/* The bytes a chunk's decoder (of `src`, with its threads) and encoder (for `spec`, in its pixel
 * format) hold at their peak, estimated from the frame size (measured coefficients per codec,
 * docs/NODE.md "Memory"): part of a CPU rank's memory budget. A spec the check refuses gets 400
 * bytes a pixel for its encoder. */
size_t vf_shard_codec_bytes(const struct vf_encode_spec *spec, const struct vf_media_info *src);

/* Open a segment at `path` (written to a temporary file of this writer's own,
 * "<path>.<pid>-<n>.tmp", created exclusively, renamed by close; two writers of the same path
 * never share it). Encoder threading is pinned, so the bytes do not depend on the machine
 * (docs/ENCODE.md, "Determinism"). Its video stream has
 * the source's size, SAR, time base, frame rate and colour properties; the first frame is a
 * keyframe; packets keep the source frames' timestamps. The container is Matroska. */
int vf_shard_segment_open(struct vf_segment_writer **out, const char *path,
                          const struct vf_media_info *src, const struct vf_encode_spec *spec,
                          struct vf_error *err);
/* The pixel format the writer encodes in (encode.pix_fmt, or the codec's default for the
 * source's depth): frames in it go to the encoder without conversion. */
enum AVPixelFormat vf_shard_segment_pix_fmt(const struct vf_segment_writer *w);
/* Encode one frame; frame->pts must be the source frame's pts (tb units). Converted to the
 * encoder's pixel format with swscale when it differs. */
int vf_shard_segment_write(struct vf_segment_writer *w, const AVFrame *frame, struct vf_error *err);
/* Flush, write the trailer, fsync, rename to the final path; fills sha256 hex of the file. */
int vf_shard_segment_close(struct vf_segment_writer **w, char checksum[65], struct vf_error *err);
/* Drop the segment: removes its temporary file (never another writer's). NULL-safe. */
void vf_shard_segment_abort(struct vf_segment_writer **w);

/* sha256 hex of a regular file's bytes (vf_open_regular's refusals). */
int vf_shard_file_checksum(const char *path, char checksum[65], struct vf_error *err);
/* sha256 hex of len bytes in memory. */
int vf_shard_buffer_checksum(const void *buf, size_t len, char checksum[65], struct vf_error *err);

/* ============================== merge ====================================================== */

struct vf_merge_spec {
    const char *output;         /* final path; written as "<dir>/.<name>.<pid>-<n>.tmp.<ext>"
                                   (this merge's own), renamed when done */
    const struct vf_media_info *source; /* audio, subtitles, chapters and metadata come from it */
    const char *const *segments;/* in film order */
    size_t n_segments;
    bool copy_audio;            /* film.yaml audio: copy */
    bool copy_subtitles;
};

/* Concatenate the segments' video packets (no re-encoding) with the source's audio and
 * subtitle packets, chapters and metadata. Checks that the segments hold exactly
 * source->frames frames with the source's timestamps. */
int vf_shard_merge(const struct vf_merge_spec *spec, struct vf_error *err);

/* Remove the temporary outputs that merges of `output` killed before their rename left beside it
 * (vf_shard_merge's "<dir>/.<name>.<pid>-<n>.tmp.<ext>", as big as the film), but a live pid's on
 * this host. For a run that holds the output's work folder lock (so that no merge of this film
 * runs): not for the null colorizer, whose lock is its own folder's. */
void vf_shard_merge_remove_stale(const char *output);

/* Before any work: would the merge write spec->output? Its extension names a container vaefarm
 * writes, and that container takes the video `enc` makes (the encoder opened for the source,
 * as a segment's) with the source's streams the spec copies: their header is written to memory
 * (spec->segments are not read). Errors (VF_EUNSUPPORTED) name the stream and what to change
 * (the output's extension, encode.codec, audio: none). */
int vf_shard_output_check(const struct vf_merge_spec *spec, const struct vf_encode_spec *enc,
                          struct vf_error *err);

/* ============================== journal ==================================================== */
/* <work_dir>/journal (DESIGN.md §6, docs/FARM.md): one JSON object per line per finished chunk,
 * appended whole (vf_write_all) and fsync'd before vf_journal_append returns. Written by one
 * process (rank 0's coordinator); read back whole on open. Format version 1:
 *
 *   {"v":1,"chunk":12,"hash":"<chunk hash>","segment":"segments/00012.mkv","frames":240,
 *    "checksum":"<sha256 hex of the segment>","rank":3,"attempt":1,"seconds":81.25,
 *    "decode":1.5,"infer":77.0,"encode":2.5,"time":"2026-11-25T07:30:00Z"}
 *
 * Damage rules: a last line without its newline, or a last line that is not a complete entry
 * (a crash in the middle of an append), is dropped with a warning and the file is truncated to
 * the end of the last good line before the next append; a damaged line anywhere else, or an
 * entry of another version, is VF_ECORRUPT naming the file and line ("remove <work_dir> to start
 * over"). Later entries for the same chunk supersede earlier ones. */

struct vf_journal_entry {
    int chunk;                  /* the plan's chunk id */
    char hash[65];              /* that chunk's hash when it ran */
    char segment[256];          /* the segment's path relative to the work folder */
    int64_t frames;             /* kept frames in the segment */
    char checksum[65];          /* sha256 hex of the segment file */
    int rank;                   /* the rank that made it */
    int attempt;                /* 1 = first try */
    double seconds;             /* the chunk's wall time on its rank */
    double t_decode, t_infer, t_encode;
    char time[32];              /* UTC, ISO 8601, when it was appended (filled by append) */
};

struct vf_journal;

/* Open `path`, creating it (mode 0644) when missing, and read every entry. */
int vf_journal_open(struct vf_journal **out, const char *path, struct vf_error *err);
/* Open `path` only to read its entries (VF_ENOENT when it is missing): the file is not created,
 * locked or changed (an incomplete last line is dropped from the entries, not cut off), and
 * vf_journal_append refuses (VF_EINTERNAL). `vaefarm plan` reads a work folder this way. */
int vf_journal_read(struct vf_journal **out, const char *path, struct vf_error *err);
size_t vf_journal_count(const struct vf_journal *j);
const struct vf_journal_entry *vf_journal_get(const struct vf_journal *j, size_t i);
/* The latest entry for `chunk` whose hash is `hash` (NULL: whatever its hash), or NULL. */
const struct vf_journal_entry *vf_journal_find(const struct vf_journal *j, int chunk,
                                               const char *hash);
/* Append one entry (its time is filled in) and fsync. On error nothing partial stays behind
 * (a short write is truncated away). */
int vf_journal_append(struct vf_journal *j, struct vf_journal_entry *e, struct vf_error *err);
void vf_journal_close(struct vf_journal **j);

#endif /* VF_SHARD_H */
