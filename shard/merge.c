/*
 * shard/merge.c: segments in film order + the source's audio, subtitles, chapters and metadata
 * -> the output (shard.h, "merge"; DESIGN.md §6: the output is the input's twin).
 *
 * Two passes over the segments:
 *   1. scan: every segment exists, has one video stream with the first segment's codec
 *      parameters, starts with a keyframe, and its frames, in presentation order, carry the
 *      source's timestamps (as rounded by the segment's 1/1000 s Matroska time base) for
 *      consecutive film frames; together they hold exactly source->frames frames. This maps
 *      every video packet (decode order) to its film frame index, so the exact source pts and
 *      duration can be restored, and gives the reorder depth D of B-frame codecs.
 *   2. write: video packets copied as they are (no re-encoding) with pts = the source's exact
 *      pts and dts = the pts of the frame D places earlier in presentation order (monotonic and
 *      never after the pts), interleaved with the source's audio/subtitle packets by time.
 * The output is written to a temporary file of this merge's own, "<dir>/.<name>.<pid>-<n>.tmp.<ext>"
 * (created exclusively, so two merges of the same output never share it), and renamed only when
 * the trailer is written and fsync'ed; on any error that file, and only that one, is removed.
 */
#include "shard/shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/pixdesc.h>

#include "shard/internal.h"

struct merge {
    const struct vf_merge_spec *spec;
    const struct vf_media_info *src;
    AVRational src_tb;          /* the source video time base */
    int64_t *frame_of;          /* film frames entries: packet J (decode order) is film frame frame_of[J] */
    int64_t *seg_frames;        /* n_segments entries: frames in each segment */
    int64_t reorder;            /* D: max over packets of (decode position - presentation position) */
    int64_t video_bytes;        /* the segments' video packets: the least the output holds */
    AVCodecParameters *par;     /* the first segment's video parameters */
    char *tmp;                  /* the temporary output, NULL until created (then ours alone) */
    AVFormatContext *ic;        /* the source (audio, subtitles, chapters, metadata) */
    AVFormatContext *oc;        /* the output */
    int *out_index;             /* ic->nb_streams entries: output stream index, or -1 */
    int video_out;              /* output index of the video stream */
    const char *ext;            /* the output's extension, as written */
    long only;                  /* the output check's trials: -2 every stream, -1 the video
                                   alone, i ≥ 0 the video and the source's stream i */
};

/* ---- output path ------------------------------------------------------------------------ */

static const struct vf_log_ctx log_ctx = {.module = "shard", .rank = -1, .chunk = -1};

/* The muxer for the output's extension, or an error listing the ones vaefarm writes. */
static int output_format(const char *output, const char **fmt, const char **ext, struct vf_error *err)
{
    static const char *const map[][2] = {{"mkv", "matroska"}, {"mov", "mov"}, {"mp4", "mp4"}};
    const char *base = strrchr(output, '/');
    base = base ? base + 1 : output;
    const char *dot = strrchr(base, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(dot + 1, map[i][0])) {
            *fmt = map[i][1];
            *ext = dot + 1;
            return 0;
        }
    return vf_error_set(err, VF_EUNSUPPORTED,
                        "output %s: vaefarm writes .mkv, .mov or .mp4 (the container is chosen by the "
                        "extension); change output in film.yaml",
                        output);
}

/* Say clearly, before any work, when the output cannot be written. */
static int check_output_path(const char *output, struct vf_error *err)
{
    struct stat sb;
    if (stat(output, &sb) == 0 && S_ISDIR(sb.st_mode))
        return vf_error_set(err, VF_EINVAL,
                            "output %s is a folder: give a file name (e.g. %s/film.mkv) in film.yaml",
                            output, output);
    char *dir = vf_path_dirname(output, err);
    if (!dir)
        return VF_ENOMEM;
    int r = 0;
    if (stat(dir, &sb) != 0)
        r = vf_error_set(err, errno == ENOENT ? VF_ENOENT : VF_EIO,
                         "cannot write output %s: its folder %s %s: create the folder or change "
                         "output in film.yaml",
                         output, dir, errno == ENOENT ? "does not exist" : strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        r = vf_error_set(err, VF_EINVAL, "cannot write output %s: %s is not a folder", output, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        r = vf_error_set(err, VF_EIO,
                         "cannot write output %s: no permission to create files in %s (%s): fix the "
                         "folder's permissions or change output in film.yaml",
                         output, dir, strerror(errno));
    free(dir);
    return r;
}

/* What make_tmp's name adds to the output's file name: "." before it, then "." pid "-" n ".tmp."
 * ext, the pid and the counter up to 10 digits each. */
static size_t tmp_name_extra(const char *ext) { return 1 + 1 + 10 + 1 + 10 + 5 + strlen(ext); }

/* Reserve this merge's own temporary output "<dir>/.<name>.<pid>-<n>.tmp.<ext>" (hidden, in the
 * output's folder so that the rename is atomic; the extension kept, for people and tools). */
static int make_tmp(struct merge *m, const char *ext, struct vf_error *err)
{
    const char *output = m->spec->output;
    const char *slash = strrchr(output, '/');
    size_t dir_len = slash ? (size_t)(slash - output) + 1 : 0;
    size_t n = strlen(output) + strlen(ext) + 16;
    char *head = malloc(n), *tail = malloc(n);
    int r = 0;
    if (!head || !tail) {
        r = vf_error_set(err, VF_ENOMEM, "out of memory merging %s", output);
        goto out;
    }
    snprintf(head, n, "%.*s.%s.", (int)dir_len, output, output + dir_len);
    snprintf(tail, n, ".tmp.%s", ext);
    r = vf_shard_tmp_create_(&m->tmp, head, tail);
    if (r < 0)
        r = vf_error_set(err, r == -ENOMEM ? VF_ENOMEM : vf_io_status(-r),
                         "cannot create %s<pid>-<n>%s (the output %s's temporary file): %s", head,
                         tail, output, strerror(-r));
out:
    free(head);
    free(tail);
    return r;
}

/* make_tmp's names ("." name "." pid "-" n ".tmp." ext) of dead pids, for a new run (shard.h). */
void vf_shard_merge_remove_stale(const char *output)
{
    const char *slash = strrchr(output, '/');
    const char *name = slash ? slash + 1 : output;
    const char *dot = strrchr(name, '.');
    char *dir = vf_path_dirname(output, NULL);
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d || !dot) {
        free(dir);
        if (d)
            closedir(d);
        return;
    }
    const size_t nl = strlen(name);
    char tail[64];
    snprintf(tail, sizeof tail, ".tmp%s", dot);
    const size_t tl = strlen(tail);
    struct dirent *e;
    while ((e = readdir(d))) {
        /* "." name "." digits "-" digits tail */
        const char *s = e->d_name;
        const size_t n = strlen(s);
        if (n <= nl + 2 + tl || s[0] != '.' || strncmp(s + 1, name, nl) != 0 || s[1 + nl] != '.' ||
            strcmp(s + n - tl, tail) != 0)
            continue;
        const char *p = s + nl + 2, *end = s + n - tl;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || p[digits] != '-')
            continue;
        const long pid = digits <= 9 ? strtol(p, NULL, 10) : 0;
        p += digits + 1;
        digits = strspn(p, "0123456789");
        if (digits == 0 || p + digits != end)
            continue;
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
            continue;   /* a merge that runs now */
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, s);
        if (unlink(path) == 0)
            vf_log(&log_ctx, VF_LOG_INFO, "removed %s, the output's temporary file left by an "
                   "interrupted merge", path);
    }
    closedir(d);
    free(dir);
}

/* ---- pass 1: scan the segments ------------------------------------------------------------ */

/* Name the first field where a segment's video parameters differ from the first segment's. */
static const char *par_difference(const AVCodecParameters *a, const AVCodecParameters *b)
{
    if (a->codec_id != b->codec_id) return "codec";
    if (a->width != b->width || a->height != b->height) return "frame size";
    if (a->format >= 0 && b->format >= 0 && a->format != b->format) return "pixel format";
    if (a->extradata_size != b->extradata_size ||
        (a->extradata_size && memcmp(a->extradata, b->extradata, a->extradata_size)))
        return "codec extradata (encoder settings)";
    if (a->profile != b->profile) return "profile";
    if (a->field_order != b->field_order) return "field order";
    if (a->color_range != b->color_range) return "colour range";
    if (a->color_space != b->color_space) return "colour matrix";
    if (a->color_trc != b->color_trc) return "colour transfer";
    if (a->color_primaries != b->color_primaries) return "colour primaries";
    if (av_cmp_q(a->sample_aspect_ratio, b->sample_aspect_ratio)) return "sample aspect ratio";
    return NULL;
}

/* Open segment `i` and return its only stream, a video stream. */
static int open_segment(struct merge *m, size_t i, AVFormatContext **ic, struct vf_error *err)
{
    const char *path = m->spec->segments[i];
    size_t n = m->spec->n_segments;
    if (access(path, F_OK) != 0)
        return vf_error_set(err, VF_ENOENT,
                            "segment %zu of %zu (%s) is missing: its chunk was not encoded or the "
                            "file was removed; run the job again to encode it",
                            i, n, path);
    int r = vf_shard_open_input_(ic, path);
    if (r < 0)
        return vf_shard_av_error_(err, VF_ECORRUPT, r,
                                  "segment %zu of %zu (%s) cannot be read (delete it and run the job "
                                  "again to encode it anew)",
                                  i, n, path);
    if ((*ic)->nb_streams != 1 || (*ic)->streams[0]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO)
        return vf_error_set(err, VF_ECORRUPT,
                            "segment %zu of %zu (%s) is not a vaefarm segment (it must hold one video "
                            "stream, it holds %u streams)",
                            i, n, path, (*ic)->nb_streams);
    return 0;
}

struct pts_pos {
    int64_t pts;    /* as stored in the segment */
    int64_t pos;    /* decode position in the segment */
};

static int cmp_pts_pos(const void *a, const void *b)
{
    const struct pts_pos *x = a, *y = b;
    return x->pts < y->pts ? -1 : x->pts > y->pts;
}

/* Explain a segment frame whose pts is not the expected film frame's: when it is another film
 * frame's pts, say which, and whether frames are missing before it or it repeats frames. */
static void which_frame(const struct merge *m, AVRational tb, int64_t pts, int64_t expected,
                        int64_t k, char *buf, size_t size)
{
    snprintf(buf, size, ": delete the segment and run the job again");
    for (int64_t f = 0; f < m->src->frames; f++) {
        if (vf_shard_round_pts_(m->src->pts[f], m->src_tb, tb) != pts)
            continue;
        if (f > expected && k == 0)
            snprintf(buf, size, " (film frame %lld's: film frames %lld..%lld are in no segment; the "
                                "segment that holds them is missing from the list before this one: run the job again "
                                "to encode it)",
                     (long long)f, (long long)expected, (long long)f - 1);
        else if (f > expected)
            snprintf(buf, size, " (film frame %lld's: this segment lacks film frames %lld..%lld: delete it and run the "
                                "job again)",
                     (long long)f, (long long)expected, (long long)f - 1);
        else
            snprintf(buf, size, " (film frame %lld's: this segment repeats frames an earlier "
                                "segment holds, or the segments are out of order: check the list, or delete this segment "
                                "and run the job again)",
                     (long long)f);
        return;
    }
}

/* Scan segment i whose first frame is film frame `base`; fills frame_of[base..]. */
static int scan_segment(struct merge *m, size_t i, int64_t base, struct pts_pos *scratch,
                        struct vf_error *err)
{
    const char *path = m->spec->segments[i];
    const int64_t frames = m->src->frames;
    AVFormatContext *ic = NULL;
    AVPacket *pkt = av_packet_alloc();
    int64_t n = 0;
    char hint[512];
    int r = pkt ? open_segment(m, i, &ic, err) : vf_error_set(err, VF_ENOMEM, "out of memory");
    if (r < 0)
        goto out;
    AVStream *st = ic->streams[0];
    if (!m->par) {
        if (!(m->par = avcodec_parameters_alloc()) || avcodec_parameters_copy(m->par, st->codecpar) < 0) {
            r = vf_error_set(err, VF_ENOMEM, "out of memory copying the parameters of %s", path);
            goto out;
        }
    } else {
        const char *diff = par_difference(m->par, st->codecpar);
        if (diff) {
            r = vf_error_set(err, VF_ECORRUPT,
                             "segment %zu (%s) differs from segment 0 (%s) in its %s: all segments "
                             "of a film must come from the same encode settings; delete the odd "
                             "segment and run the job again",
                             i, path, m->spec->segments[0], diff);
            goto out;
        }
    }
    while ((r = av_read_frame(ic, pkt)) >= 0) {
        if (n == 0 && !(pkt->flags & AV_PKT_FLAG_KEY)) {
            r = vf_error_set(err, VF_ECORRUPT,
                             "segment %zu (%s) does not start with a keyframe: it cannot be joined; "
                             "delete it and run the job again",
                             i, path);
            goto out;
        }
        if (base + n >= frames) {
            r = vf_error_set(err, VF_ECORRUPT,
                             "segment %zu (%s) holds more frames than the film has left: the film "
                             "has %lld frames and the segments up to this one hold more; delete the "
                             "work folder's segments that do not belong to this film",
                             i, path, (long long)frames);
            goto out;
        }
        if (pkt->pts == AV_NOPTS_VALUE) {
            r = vf_error_set(err, VF_ECORRUPT, "segment %zu (%s): packet %lld has no timestamp", i,
                             path, (long long)n);
            goto out;
        }
        scratch[n].pts = pkt->pts;
        scratch[n].pos = n;
        m->video_bytes += pkt->size;
        n++;
        av_packet_unref(pkt);
    }
    if (r != AVERROR_EOF) {
        r = vf_shard_av_error_(err, VF_ECORRUPT, r, "segment %zu (%s) is damaged after %lld frames", i,
                               path, (long long)n);
        goto out;
    }
    if (n == 0) {
        r = vf_error_set(err, VF_ECORRUPT, "segment %zu (%s) holds no frames", i, path);
        goto out;
    }
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_pts_pos);
    for (int64_t k = 0; k < n; k++) {
        int64_t want = vf_shard_round_pts_(m->src->pts[base + k], m->src_tb, st->time_base);
        if (scratch[k].pts != want) {
            which_frame(m, st->time_base, scratch[k].pts, base + k, k, hint, sizeof hint);
            r = vf_error_set(err, VF_ECORRUPT,
                             "segment %zu (%s), its frame %lld: expected film frame %lld's pts %lld "
                             "(%d/%d) but found %lld (%d/%d)%s",
                             i, path, (long long)k, (long long)(base + k),
                             (long long)m->src->pts[base + k], m->src_tb.num, m->src_tb.den,
                             (long long)scratch[k].pts, st->time_base.num, st->time_base.den, hint);
            goto out;
        }
        m->frame_of[base + scratch[k].pos] = base + k;
        if (scratch[k].pos - k > m->reorder)
            m->reorder = scratch[k].pos - k;
    }
    m->seg_frames[i] = n;
    r = 0;
out:
    avformat_close_input(&ic);
    av_packet_free(&pkt);
    return r;
}

static int scan_segments(struct merge *m, struct vf_error *err)
{
    const int64_t frames = m->src->frames;
    struct pts_pos *scratch = vf_calloc((size_t)frames, sizeof *scratch, err);
    if (!scratch)
        return VF_ENOMEM;
    int64_t base = 0;
    int r = 0;
    for (size_t i = 0; i < m->spec->n_segments; i++) {
        if ((r = scan_segment(m, i, base, scratch, err)) < 0)
            break;
        base += m->seg_frames[i];
    }
    free(scratch);
    if (r == 0 && base != frames)
        r = vf_error_set(err, VF_ECORRUPT,
                         "the %zu segments hold %lld frames but the film %s has %lld: frames %lld.. "
                         "have no segment (the last given is %s); run the job again to encode them",
                         m->spec->n_segments, (long long)base, m->src->path, (long long)frames,
                         (long long)base, m->spec->segments[m->spec->n_segments - 1]);
    return r;
}

/* The output holds at least every segment's video packets. Refuse before writing a byte when its
 * file system has less room, rather than fill a disk other jobs share and fail at the end. */
static int check_space(const struct merge *m, struct vf_error *err)
{
    char *dir = vf_path_dirname(m->spec->output, err);
    if (!dir)
        return VF_ENOMEM;
    uint64_t room;
    int r = 0;
    if (vf_dir_room(dir, &room, NULL) && room < (uint64_t)m->video_bytes)
        r = vf_error_set(err, VF_ENOSPC,
                         "the output %s needs at least %.1f MiB (its video alone) but %s has %.1f "
                         "MiB free: make room there and run the same command again (the colorized "
                         "segments are kept: it only merges)",
                         m->spec->output, m->video_bytes / 1048576.0, dir,
                         room / 1048576.0);
    free(dir);
    return r;
}

/* ---- output streams ------------------------------------------------------------------------ */

/* Copy metadata, dropping what describes the old encoding of a re-encoded stream. */
static int copy_metadata(AVDictionary **dst, const AVDictionary *src, bool reencoded)
{
    const AVDictionaryEntry *e = NULL;
    while ((e = av_dict_get(src, "", e, AV_DICT_IGNORE_SUFFIX))) {
        if (reencoded && (!av_strncasecmp(e->key, "_STATISTICS", 11) || !av_strcasecmp(e->key, "encoder") ||
                          !av_strncasecmp(e->key, "BPS", 3) || !av_strncasecmp(e->key, "NUMBER_OF_", 10)))
            continue;
        int r = av_dict_set(dst, e->key, e->value, 0);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The source stream's side data (a display matrix: the rotation a player applies; stereo 3D,
 * mastering display, content light level, ...), but for what describes the old encoding of a
 * re-encoded stream (its buffer and bitrate properties). */
static int copy_side_data(AVStream *os, const AVStream *is, bool reencoded, unsigned i,
                          struct vf_error *err)
{
    for (int k = 0; k < is->nb_side_data; k++) {
        const AVPacketSideData *sd = &is->side_data[k];
        if (reencoded && sd->type == AV_PKT_DATA_CPB_PROPERTIES)
            continue;
        uint8_t *d = av_stream_new_side_data(os, sd->type, sd->size);
        if (!d)
            return vf_error_set(err, VF_ENOMEM, "out of memory copying stream #%u's side data", i);
        memcpy(d, sd->data, sd->size);
    }
    return 0;
}

static const char *kind_name(enum AVMediaType t)
{
    const char *s = av_get_media_type_string(t);
    return s ? s : "data";
}

/* What to do when a .ext output cannot hold a copied stream of type t: another container where
 * one holds it (Matroska holds every audio and subtitle codec FFmpeg reads but MP4's mov_text),
 * converting the subtitles, or leaving the audio and subtitles out. */
static void way_out(char *buf, size_t n, const char *ext, enum AVMediaType t)
{
    const bool mkv = !strcmp(ext, "mkv");
    if (t == AVMEDIA_TYPE_SUBTITLE)
        snprintf(buf, n, "%sconvert the subtitles (ffmpeg -i IN -map 0 -c copy -c:s %s "
                 "IN-2.%s, then give that as the input), or leave the audio and subtitles out "
                 "with audio: none", mkv ? "" : "write a .mkv output, ", mkv ? "srt" : "mov_text",
                 mkv ? "mkv" : ext);
    else if (t == AVMEDIA_TYPE_AUDIO)
        snprintf(buf, n, "%sleave the audio out with audio: none",
                 mkv ? "" : "write a .mkv output (Matroska holds every audio codec), or ");
    else
        snprintf(buf, n, "%sleave the source's other streams out with audio: none",
                 mkv ? "" : "write a .mkv output, or ");
}

/* Can the output container hold this codec? avformat_query_codec: 1 yes, 0 no, <0 unknown.
 * Asked at FF_COMPLIANCE_UNOFFICIAL: at NORMAL Matroska's answer leaves out the codecs it
 * stores through their Video for Windows tags (dnxhd), which its muxer writes all the same; the
 * header itself, written in vf_shard_output_check's trial before any work, has the last word. */
static int check_container(struct merge *m, const AVCodecParameters *par, int index, struct vf_error *err)
{
    /* Matroska stores an attachment (a subtitle's font) by its file name and MIME type, whatever
     * its codec id; no codec table lists them */
    if (par->codec_type == AVMEDIA_TYPE_ATTACHMENT && !strcmp(m->oc->oformat->name, "matroska"))
        return 0;
    if (avformat_query_codec(m->oc->oformat, par->codec_id, FF_COMPLIANCE_UNOFFICIAL) != 0)
        return 0;
    if (index == m->src->video_stream)   /* the colour film's video: encode.codec's */
        return vf_error_set(err, VF_EUNSUPPORTED, "output %s: a .%s file cannot hold %s video, "
                            "which encode.codec makes: write a .mkv output, or choose an "
                            "encode.codec that a .%s file holds (docs/ENCODE.md)",
                            m->spec->output, m->ext, avcodec_get_name(par->codec_id), m->ext);
    char way[320];
    way_out(way, sizeof way, m->ext, par->codec_type);
    return vf_error_set(err, VF_EUNSUPPORTED, "output %s: a .%s file cannot hold the %s stream #%d "
                        "(%s): %s", m->spec->output, m->ext, kind_name(par->codec_type), index,
                        avcodec_get_name(par->codec_id), way);
}

static int add_stream(struct merge *m, unsigned i, struct vf_error *err)
{
    AVStream *is = m->ic->streams[i];
    bool video = (int)i == m->src->video_stream;
    enum AVMediaType t = is->codecpar->codec_type;
    bool matroska = !strcmp(m->oc->oformat->name, "matroska");
    m->out_index[i] = -1;
    if (m->only >= -1 && !video && (long)i != m->only)   /* a trial of fewer streams */
        return 0;
    if (!video && !((t == AVMEDIA_TYPE_AUDIO && m->spec->copy_audio) ||
                    (t == AVMEDIA_TYPE_SUBTITLE && m->spec->copy_subtitles) ||
                    (t == AVMEDIA_TYPE_ATTACHMENT && m->spec->copy_subtitles && matroska)))
        return 0;
    const AVCodecParameters *par = video ? m->par : is->codecpar;
    int r = check_container(m, par, (int)i, err);
    if (r < 0)
        return r;
    AVStream *os = avformat_new_stream(m->oc, NULL);
    if (!os)
        return vf_error_set(err, VF_ENOMEM, "out of memory adding stream #%u to %s", i, m->tmp);
    if ((r = avcodec_parameters_copy(os->codecpar, par)) < 0)
        return vf_shard_av_error_(err, VF_ENOMEM, r, "copying stream #%u's parameters", i);
    os->codecpar->codec_tag = 0; /* let the output's muxer pick its own tag */
    os->time_base = video ? m->src_tb : is->time_base;
    os->disposition = is->disposition;
    os->avg_frame_rate = is->avg_frame_rate;
    os->r_frame_rate = is->r_frame_rate;
    os->sample_aspect_ratio = is->sample_aspect_ratio;
    if (video && m->src->sar_num > 0 && m->src->sar_den > 0) /* Matroska keeps it on the stream */
        os->sample_aspect_ratio = os->codecpar->sample_aspect_ratio =
            (AVRational){m->src->sar_num, m->src->sar_den};
    if ((r = copy_metadata(&os->metadata, is->metadata, video)) < 0)
        return vf_shard_av_error_(err, VF_ENOMEM, r, "copying stream #%u's metadata", i);
    /* a timecode the probe read from no tag (a data stream's, or the codec's own: an MPEG-2 GOP
     * header, an H.264/HEVC SEI, which the new video does not carry) becomes the video stream's
     * tag: Matroska writes it as TIMECODE, .mov/.mp4 make a tmcd track of it */
    if (video && m->src->timecode[0] && !av_dict_get(os->metadata, "timecode", NULL, 0) &&
        !av_dict_get(m->ic->metadata, "timecode", NULL, 0) &&
        (r = av_dict_set(&os->metadata, "timecode", m->src->timecode, 0)) < 0)
        return vf_shard_av_error_(err, VF_ENOMEM, r, "setting the video stream's timecode");
    if ((r = copy_side_data(os, is, video, i, err)) < 0)
        return r;
    m->out_index[i] = os->index;
    if (video)
        m->video_out = os->index;
    return 0;
}

static int copy_chapters(struct merge *m, struct vf_error *err)
{
    for (unsigned i = 0; i < m->ic->nb_chapters; i++) {
        const AVChapter *in = m->ic->chapters[i];
        AVChapter *c = av_mallocz(sizeof *c);
        if (!c)
            return vf_error_set(err, VF_ENOMEM, "out of memory copying chapter %u", i);
        c->id = in->id;
        c->time_base = in->time_base;
        c->start = in->start;
        c->end = in->end;
        if (av_dict_copy(&c->metadata, in->metadata, 0) < 0 ||
            av_dynarray_add_nofree(&m->oc->chapters, (int *)&m->oc->nb_chapters, c) < 0) {
            av_dict_free(&c->metadata);
            av_free(c);
            return vf_error_set(err, VF_ENOMEM, "out of memory copying chapter %u", i);
        }
    }
    return 0;
}

/* The source, for its audio, subtitles, chapters and metadata. */
static int open_source(struct merge *m, struct vf_error *err)
{
    int r = vf_shard_open_input_(&m->ic, m->src->path);
    if (r < 0)
        return vf_shard_av_error_(err, VF_ENOENT, r, "cannot open the source %s to copy its audio",
                                  m->src->path);
    if ((r = avformat_find_stream_info(m->ic, NULL)) < 0)
        return vf_shard_av_error_(err, VF_EMEDIA, r, "reading the streams of %s", m->src->path);
    if (m->src->video_stream < 0 || (unsigned)m->src->video_stream >= m->ic->nb_streams)
        return vf_error_set(err, VF_EINVAL, "the probe of %s names video stream %d, which it lacks",
                            m->src->path, m->src->video_stream);
    return 0;
}

/* m->oc for `format` named `name`: the video stream (m->par) and the source's streams that go
 * with it (m->only), its metadata and chapters; no file yet. */
static int build_output(struct merge *m, const char *format, const char *name,
                        struct vf_error *err)
{
    int r = avformat_alloc_output_context2(&m->oc, NULL, format, name);
    if (r < 0)
        return vf_shard_av_error_(err, VF_EINTERNAL, r, "no %s muxer", format);
    m->oc->flags |= AVFMT_FLAG_BITEXACT; /* same segments and source, same bytes */
    if (!strcmp(format, "matroska"))    /* keep every timestamp as it is: no shift */
        m->oc->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;
    free(m->out_index);
    m->out_index = vf_calloc(m->ic->nb_streams, sizeof *m->out_index, err);
    if (!m->out_index)
        return VF_ENOMEM;
    for (unsigned i = 0; i < m->ic->nb_streams; i++) {
        if ((r = add_stream(m, i, err)) < 0)
            return r;
        if (m->out_index[i] < 0)
            m->ic->streams[i]->discard = AVDISCARD_ALL;
    }
    m->ic->streams[m->src->video_stream]->discard = AVDISCARD_ALL; /* video comes from segments */
    if ((r = av_dict_copy(&m->oc->metadata, m->ic->metadata, 0)) < 0)
        return vf_shard_av_error_(err, VF_ENOMEM, r, "copying the metadata of %s", m->src->path);
    return copy_chapters(m, err);
}

/* avformat_write_header with the muxer's options: FFmpeg's status (an AVERROR), or
 * AVERROR(ENOMEM) where the options could not be set. */
static int write_header(struct merge *m, const char *format)
{
    AVDictionary *opts = NULL;
    if (strcmp(format, "matroska")) {
        /* the movie timescale (default 1/1000 s) carries the edit list that gives the first
         * frame its start time: use the source's, so that start is exact too */
        char ts[32];
        snprintf(ts, sizeof ts, "%d", m->src_tb.num == 1 ? m->src_tb.den : 90000);
        if (av_dict_set(&opts, "movie_timescale", ts, 0) < 0 ||
            av_dict_set(&opts, "video_track_timescale", ts, 0) < 0) {
            av_dict_free(&opts);
            return AVERROR(ENOMEM);
        }
    }
    int r = avformat_write_header(m->oc, &opts);
    av_dict_free(&opts);
    return r;
}

static int open_output(struct merge *m, const char *format, struct vf_error *err)
{
    int r = open_source(m, err);
    if (r < 0)
        return r;
    if ((r = build_output(m, format, m->tmp, err)) < 0)
        return r;
    if ((r = vf_shard_open_output_(&m->oc->pb, m->tmp)) < 0)
        return vf_shard_av_error_(err, VF_EIO, r, "cannot create %s (the output %s's temporary file)",
                                  m->tmp, m->spec->output);
    vf_shard_av_log_forget_();
    if ((r = write_header(m, format)) < 0) {
        char said[300];
        return vf_shard_av_error_(err, VF_EMEDIA, r,
                                  "writing the header of %s (%s; a .mkv output takes every "
                                  "stream)", m->tmp, vf_shard_av_said_(said, sizeof said));
    }
    return 0;
}

/* A header written to memory, read back followed by an empty Cluster (ID 0x1F43B675, size 0):
 * Matroska's demuxer reads a header up to the first Cluster, and an end of file before one is a
 * broken file to it. */
struct mem_reader {
    const uint8_t *data;
    int size, at;
};

static const uint8_t empty_cluster[5] = {0x1f, 0x43, 0xb6, 0x75, 0x80};

static int mem_read(void *opaque, uint8_t *buf, int size)
{
    struct mem_reader *rd = opaque;
    int n = 0;
    while (n < size && rd->at < rd->size + (int)sizeof empty_cluster) {
        buf[n++] = rd->at < rd->size ? rd->data[rd->at] : empty_cluster[rd->at - rd->size];
        rd->at++;
    }
    return n ? n : AVERROR_EOF;
}

/* Whether the Matroska header in data, read back by FFmpeg's own demuxer, holds a display matrix
 * on a stream: whether this FFmpeg's muxer writes one (5.1's does not). */
static bool header_keeps_matrix(const uint8_t *data, int size)
{
    struct mem_reader rd = {.data = data, .size = size};
    const int chunk = 4096;
    uint8_t *iobuf = av_malloc(chunk);
    AVIOContext *pb = iobuf ? avio_alloc_context(iobuf, chunk, 0, &rd, mem_read, NULL, NULL) : NULL;
    AVFormatContext *ic = pb ? avformat_alloc_context() : NULL;
    bool kept = false;
    if (ic) {
        ic->pb = pb;   /* our own: avformat_open_input and close leave it to us */
        if (avformat_open_input(&ic, NULL, av_find_input_format("matroska"), NULL) >= 0) {
            for (unsigned i = 0; i < ic->nb_streams && !kept; i++)
                kept = av_stream_get_side_data(ic->streams[i], AV_PKT_DATA_DISPLAYMATRIX, NULL);
            avformat_close_input(&ic);
        }
    }
    if (pb)
        av_freep(&pb->buffer);
    else
        av_free(iobuf);
    avio_context_free(&pb);
    return kept;
}

/* One trial of the output check: the header of the output with m->only's streams, written to
 * memory. 0, a vf error (a codec the container refuses outright), or 1 with *averr FFmpeg's
 * refusal of the header. With `matrix` (a Matroska output), whether that header holds the
 * source's display matrix. */
static int trial_header(struct merge *m, const char *format, int *averr, bool *matrix,
                        struct vf_error *err)
{
    int r = build_output(m, format, m->spec->output, err);
    if (r >= 0 && (r = avio_open_dyn_buf(&m->oc->pb)) < 0)
        r = vf_shard_av_error_(err, VF_ENOMEM, r, "checking the output %s", m->spec->output);
    if (r >= 0) {
        *averr = write_header(m, format);
        r = *averr < 0 ? 1 : 0;
    }
    if (m->oc) {
        if (m->oc->pb) {
            uint8_t *buf = NULL;
            int n = avio_close_dyn_buf(m->oc->pb, &buf);
            if (matrix && r == 0)
                *matrix = buf && header_keeps_matrix(buf, n);
            av_free(buf);
            m->oc->pb = NULL;
        }
        avformat_free_context(m->oc);
        m->oc = NULL;
    }
    return r;
}

/* A phone's film turned by its display matrix: the merge copies the matrix (copy_side_data), but
 * FFmpeg 5.1's Matroska muxer (Debian 12's) writes none, so a .mkv output would play unturned.
 * Said before any work, with the way out. (.mov and .mp4 write it in the trailer's track header,
 * which a header trial cannot show; they keep it: tests/cli_farm.sh.) */
static void warn_lost_rotation(const struct vf_merge_spec *spec)
{
    vf_log(&log_ctx, VF_LOG_WARN,
           "output %s: the source %s is shown turned by %g degrees (its display matrix), which "
           "this FFmpeg's Matroska muxer does not write: players will show the colour film as "
           "stored, unturned; to keep the turn, write a .mov output (encode.codec prores_ks or "
           "dnxhd) or an .mp4 one (libx264 or libx265)",
           spec->output, spec->source->path, spec->source->rotation);
}

int vf_shard_output_check(const struct vf_merge_spec *spec, const struct vf_encode_spec *enc,
                          struct vf_error *err)
{
    if (!spec || !spec->output || !spec->source || !enc)
        return vf_error_set(err, VF_EINVAL, "vf_shard_output_check: output, source and encode "
                            "settings are required");
    const struct vf_media_info *src = spec->source;
    struct merge m = {.spec = spec, .src = src, .src_tb = {src->tb_num, src->tb_den},
                      .video_out = -1, .only = -2};
    const char *format = NULL;
    int r = output_format(spec->output, &format, &m.ext, err);
    if (r < 0)
        return r;
    /* the temporary name must fit the 255 bytes a file name may have */
    const char *slash = strrchr(spec->output, '/'), *base = slash ? slash + 1 : spec->output;
    const size_t room = 255 - tmp_name_extra(m.ext);
    if (strlen(base) > room)
        return vf_error_set(err, VF_EINVAL, "output: the file name %s is %zu characters long; the "
                            "merge's temporary name (.NAME.PID-N.tmp.EXT) adds %zu to it, past "
                            "the 255 a file name may have: give a name of at most %zu characters",
                            base, strlen(base), 255 - room, room);
    /* FFmpeg 5.1's Matroska demuxer gives no timestamp to a block before 0, so a segment whose
     * frames start there could never be merged (read back as 0, 40, ...: "damaged" at every
     * rerun) */
    if (src->frames > 0 && src->start_pts < 0)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "input %s: its first frame's timestamp is negative (%.3f s: a "
                            "transport stream recorded across its 2^33 clock wrap, or a file "
                            "made to start before 0), which vaefarm's Matroska segments cannot "
                            "hold: remux it to start at 0 (ffmpeg -i IN -map 0 -c copy "
                            "-avoid_negative_ts make_zero OUT.mkv) and colorize that",
                            src->path, (double)src->start_pts * src->tb_num / src->tb_den);
    if ((r = vf_shard_encoder_params_(enc, src, &m.par, err)) < 0)
        goto out;
    if ((r = open_source(&m, err)) < 0)
        goto out;
    int averr = 0;
    const bool ask = src->display_matrix && !strcmp(format, "matroska");
    bool kept = true;
    if ((r = trial_header(&m, format, &averr, ask ? &kept : NULL, err)) != 1) {
        if (r == 0 && !kept)
            warn_lost_rotation(spec);
        goto out;
    }
    /* refused: find the stream, the video first, then each copied stream with it */
    long culprit = -2;
    for (long only = -1; only < (long)m.ic->nb_streams && culprit == -2; only++) {
        if (only == m.src->video_stream)
            continue;
        m.only = only;
        struct vf_error scratch = {0};
        int a = 0;
        if (trial_header(&m, format, &a, NULL, &scratch) != 0)
            culprit = only;
    }
    char av[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, av, sizeof av);
    if (culprit == -2)
        r = vf_error_set(err, VF_EUNSUPPORTED,
                         "output %s: a .%s file cannot hold this video and the source's streams "
                         "together, though it takes each alone (FFmpeg: %s): write a .mkv output, "
                         "or drop the audio and subtitles with audio: none", spec->output, m.ext,
                         av);
    else if (culprit == -1)
        r = vf_error_set(err, VF_EUNSUPPORTED,
                         "output %s: a .%s file cannot hold the %s video that encode.codec "
                         "makes (FFmpeg: %s): write a .mkv output, or choose another "
                         "encode.codec", spec->output, m.ext, enc->codec ? enc->codec : "ffv1",
                         av);
    else {
        const AVCodecParameters *p = m.ic->streams[culprit]->codecpar;
        char way[320];
        way_out(way, sizeof way, m.ext, p->codec_type);
        r = vf_error_set(err, VF_EUNSUPPORTED,
                         "output %s: a .%s file cannot hold the source's %s stream #%ld (%s) "
                         "(FFmpeg: %s): %s", spec->output, m.ext, kind_name(p->codec_type),
                         culprit, avcodec_get_name(p->codec_id), av, way);
    }
out:
    avformat_close_input(&m.ic);
    avcodec_parameters_free(&m.par);
    free(m.out_index);
    return r;
}

/* ---- pass 2: write ------------------------------------------------------------------------- */

struct video_cursor {
    size_t seg;                 /* segment being read */
    int64_t in_seg;             /* packets read from it */
    int64_t j;                  /* global decode position of the next packet */
    AVFormatContext *ic;
};

/* Read the next video packet into pkt with the exact source timestamps (source tb).
 * Returns 1, or 0 when every segment is read, or < 0. */
static int next_video(struct merge *m, struct video_cursor *c, AVPacket *pkt, struct vf_error *err)
{
    const struct vf_media_info *src = m->src;
    for (;;) {
        if (!c->ic) {
            if (c->seg >= m->spec->n_segments)
                return 0;
            int r = open_segment(m, c->seg, &c->ic, err);
            if (r < 0)
                return r;
            c->in_seg = 0;
        }
        const char *path = m->spec->segments[c->seg];
        int r = av_read_frame(c->ic, pkt);
        if (r == AVERROR_EOF) {
            avformat_close_input(&c->ic);
            if (c->in_seg != m->seg_frames[c->seg])
                return vf_error_set(err, VF_ECORRUPT,
                                    "segment %zu (%s) changed while merging: it held %lld frames, "
                                    "now %lld",
                                    c->seg, path, (long long)m->seg_frames[c->seg], (long long)c->in_seg);
            c->seg++;
            continue;
        }
        if (r < 0)
            return vf_shard_av_error_(err, VF_ECORRUPT, r, "reading segment %zu (%s) after %lld frames",
                                      c->seg, path, (long long)c->in_seg);
        if (c->j >= src->frames || c->in_seg >= m->seg_frames[c->seg])
            return vf_error_set(err, VF_ECORRUPT, "segment %zu (%s) changed while merging", c->seg, path);
        int64_t f = m->frame_of[c->j];
        /* verify again, packet by packet, against the source (the segment may have changed) */
        if (pkt->pts != vf_shard_round_pts_(src->pts[f], m->src_tb, c->ic->streams[0]->time_base))
            return vf_error_set(err, VF_ECORRUPT,
                                "segment %zu (%s), frame %lld: pts %lld is not film frame %lld's "
                                "(%lld); the segment changed while merging",
                                c->seg, path, (long long)c->in_seg, (long long)pkt->pts, (long long)f,
                                (long long)src->pts[f]);
        int64_t d = c->j - m->reorder;
        int64_t step = src->frames > 1 ? src->pts[1] - src->pts[0]
                       : src->frame_duration && src->frame_duration[0] > 0 ? src->frame_duration[0] : 1;
        pkt->pts = src->pts[f];
        pkt->dts = d >= 0 ? src->pts[d] : src->pts[0] + d * step;
        pkt->duration = src->frame_duration ? src->frame_duration[f] : 0;
        pkt->pos = -1;
        pkt->stream_index = m->video_out;
        c->j++;
        c->in_seg++;
        return 1;
    }
}

/* Read the next source packet of a copied stream into pkt (input tb). 1, 0 at EOF, or < 0. */
static int next_source(struct merge *m, AVPacket *pkt, struct vf_error *err)
{
    for (;;) {
        int r = av_read_frame(m->ic, pkt);
        if (r == AVERROR_EOF)
            return 0;
        if (r < 0)
            return vf_shard_av_error_(err, VF_EMEDIA, r, "reading the audio/subtitles of %s",
                                      m->src->path);
        if (pkt->stream_index < (int)m->ic->nb_streams && pkt->stream_index != m->src->video_stream &&
            m->out_index[pkt->stream_index] >= 0)
            return 1;
        av_packet_unref(pkt);
    }
}

static int64_t packet_time(const AVPacket *p) { return p->dts != AV_NOPTS_VALUE ? p->dts : p->pts; }

static int write_packets(struct merge *m, struct vf_error *err)
{
    struct video_cursor vc = {0};
    AVPacket *vp = av_packet_alloc(), *sp = av_packet_alloc();
    int have_v = 0, have_s = 0, r = 0;
    bool v_done = false, s_done = false;
    if (!vp || !sp) {
        r = vf_error_set(err, VF_ENOMEM, "out of memory merging into %s", m->tmp);
        goto out;
    }
    for (;;) {
        if (!have_v && !v_done) {
            if ((have_v = next_video(m, &vc, vp, err)) < 0) {
                r = have_v;
                goto out;
            }
            v_done = !have_v;
        }
        if (!have_s && !s_done) {
            if ((have_s = next_source(m, sp, err)) < 0) {
                r = have_s;
                goto out;
            }
            s_done = !have_s;
        }
        if (!have_v && !have_s)
            break;
        bool take_video = have_v;
        if (have_v && have_s && packet_time(sp) != AV_NOPTS_VALUE) {
            AVRational stb = m->ic->streams[sp->stream_index]->time_base;
            take_video = av_compare_ts(packet_time(vp), m->src_tb, packet_time(sp), stb) <= 0;
        } else if (have_s && packet_time(sp) == AV_NOPTS_VALUE) {
            take_video = false;
        }
        AVPacket *p = take_video ? vp : sp;
        AVRational tb = take_video ? m->src_tb : m->ic->streams[sp->stream_index]->time_base;
        if (!take_video) {
            sp->stream_index = m->out_index[sp->stream_index];
            sp->pos = -1;
        }
        av_packet_rescale_ts(p, tb, m->oc->streams[p->stream_index]->time_base);
        r = av_interleaved_write_frame(m->oc, p);
        if (take_video)
            have_v = 0;
        else
            have_s = 0;
        if (r < 0) {
            r = vf_shard_av_error_(err, VF_EMEDIA, r, /* a full disk: VF_ENOSPC */
                                   "writing a %s packet to %s (video frame %lld)",
                                   take_video ? "video" : "audio/subtitle", m->tmp, (long long)vc.j);
            goto out;
        }
    }
    if (vc.j != m->src->frames)
        r = vf_error_set(err, VF_ECORRUPT, "merged %lld video frames, the film has %lld",
                         (long long)vc.j, (long long)m->src->frames);
out:
    avformat_close_input(&vc.ic);
    av_packet_free(&vp);
    av_packet_free(&sp);
    return r;
}

static int finish_output(struct merge *m, struct vf_error *err)
{
    int r = av_write_trailer(m->oc);
    if (r < 0)
        return vf_shard_av_error_(err, VF_EIO, r, "writing the trailer of %s", m->tmp);
    if ((r = avio_closep(&m->oc->pb)) < 0)
        return vf_shard_av_error_(err, VF_EIO, r, "closing %s (disk full?)", m->tmp);
    int fd = open(m->tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) < 0) {
        r = vf_error_set(err, vf_io_status(errno), "fsync %s: %s", m->tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return r;
    }
    close(fd);
    if (rename(m->tmp, m->spec->output) < 0)
        return vf_error_set(err, vf_io_status(errno), "renaming %s to %s: %s", m->tmp,
                            m->spec->output, strerror(errno));
    free(m->tmp); /* renamed: nothing of ours is left to remove */
    m->tmp = NULL;
    /* make the rename durable (on failure the output is complete but may not survive a crash) */
    return vf_shard_fsync_dir_(m->spec->output, err);
}

int vf_shard_merge(const struct vf_merge_spec *spec, struct vf_error *err)
{
    if (!spec || !spec->output || !spec->source || !spec->segments || spec->n_segments == 0)
        return vf_error_set(err, VF_EINVAL, "vf_shard_merge: output, source and segments are required");
    const struct vf_media_info *src = spec->source;
    if (src->frames <= 0 || !src->pts || src->tb_num <= 0 || src->tb_den <= 0)
        return vf_error_set(err, VF_EINVAL, "vf_shard_merge: the source %s has no frame index",
                            src->path);
    struct merge m = {.spec = spec, .src = src, .src_tb = {src->tb_num, src->tb_den}, .video_out = -1,
                      .only = -2};
    const char *format = NULL, *ext = NULL;
    int r = output_format(spec->output, &format, &ext, err);
    m.ext = ext;
    if (r < 0)
        return r;
    if ((r = check_output_path(spec->output, err)) < 0)
        return r;
    m.frame_of = vf_calloc((size_t)src->frames, sizeof *m.frame_of, err);
    m.seg_frames = vf_calloc(spec->n_segments, sizeof *m.seg_frames, err);
    if (!m.frame_of || !m.seg_frames) {
        r = vf_error_set(err, VF_ENOMEM, "out of memory merging %s", spec->output);
        goto out;
    }

    double t0 = vf_now();
    if ((r = scan_segments(&m, err)) < 0)
        goto out;
    if ((r = check_space(&m, err)) < 0)
        goto out;
    if ((r = make_tmp(&m, ext, err)) < 0)
        goto out;
    if ((r = open_output(&m, format, err)) < 0)
        goto out;
    if ((r = write_packets(&m, err)) < 0)
        goto out;
    if ((r = finish_output(&m, err)) < 0)
        goto out;
    vf_log(&log_ctx, VF_LOG_VERBOSE,
           "merged %zu segments, %lld frames (reorder depth %lld) into %s in %.2f s", spec->n_segments,
           (long long)src->frames, (long long)m.reorder, spec->output, vf_now() - t0);
out:
    if (m.oc) {
        if (m.oc->pb) {
            avio_closep(&m.oc->pb);
        }
        avformat_free_context(m.oc);
    }
    if (r < 0 && m.tmp)
        unlink(m.tmp);
    avformat_close_input(&m.ic);
    avcodec_parameters_free(&m.par);
    free(m.out_index);
    free(m.frame_of);
    free(m.seg_frames);
    free(m.tmp);
    return r;
}
