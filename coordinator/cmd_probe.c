/* coordinator/cmd_probe.c: `vaefarm probe VIDEO [--json]`: what the film is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coordinator.h"
#include "shard/shard.h"

static const char *kind_name(enum vf_stream_kind k)
{
    switch (k) {
    case VF_STREAM_VIDEO: return "video";
    case VF_STREAM_AUDIO: return "audio";
    case VF_STREAM_SUBTITLE: return "subtitle";
    case VF_STREAM_DATA: return "data";
    case VF_STREAM_OTHER: break;
    }
    return "other";
}

/* Bytes of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF), or 0 where s does not start one. */
static size_t utf8_seq(const unsigned char *s)
{
    const unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return 0;
    for (size_t i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
        if (s[i] < lo || s[i] > hi)   /* the terminating NUL fails here too */
            return 0;
    return n;
}

json_t *vf_json_text(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;   /* already UTF-8 */
    const unsigned char *u = (const unsigned char *)s;
    const size_t len = strlen(s);
    char *out = malloc(3 * len + 1);   /* a byte becomes at most U+FFFD's 3 */
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(u + i);
        if (n) {
            memcpy(out + o, u + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    j = json_string(out);
    free(out);
    return j;
}

bool vf_media_gap(const struct vf_media_info *m, char *buf, size_t n)
{
    if (m->gap_missing <= 0)
        return false;
    const double tb = (double)m->tb_num / m->tb_den;
    snprintf(buf, n, "%.3f s after frame %lld (at %.3f s): %lld frame time%s with no frame "
             "(damage, dropped frames, or a hold?); the colour film keeps the gap", m->gap_seconds,
             (long long)m->gap_frame, (double)(m->pts[m->gap_frame] - m->start_pts) * tb,
             (long long)m->gap_missing, m->gap_missing == 1 ? "" : "s");
    return true;
}

static json_t *rational(int num, int den) { return json_pack("[ii]", num, den); }

json_t *vf_media_info_json(const struct vf_media_info *m)
{
    json_t *streams = json_array();
    if (!streams)
        return NULL;
    for (int i = 0; i < m->n_streams; i++) {
        const struct vf_stream_info *s = &m->streams[i];
        json_t *o = json_pack("{s:i, s:s, s:s, s:o, s:f}", "index", s->index, "kind",
                              kind_name(s->kind), "codec", s->codec, "language",
                              vf_json_text(s->language), "duration", s->duration);
        if (o && s->kind == VF_STREAM_AUDIO) {
            json_object_set_new(o, "sample_rate", json_integer(s->sample_rate));
            json_object_set_new(o, "channels", json_integer(s->channels));
        }
        if (!o || json_array_append_new(streams, o)) {
            json_decref(streams);
            return NULL;
        }
    }
    json_t *gap = m->gap_missing > 0
                      ? json_pack("{s:I, s:f, s:I}", "after_frame", (json_int_t)m->gap_frame,
                                  "seconds", m->gap_seconds, "missing_frames",
                                  (json_int_t)m->gap_missing)
                      : json_null();
    json_t *rotation = m->display_matrix ? json_real(m->rotation) : json_null();
    json_t *mirrored = m->display_matrix ? json_boolean(m->mirrored) : json_null();
    return json_pack("{s:o, s:s, s:i, s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:I, s:f, s:I, s:b, "
                     "s:b, s:I, s:o, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:s, s:o, s:o}",
                     "path", vf_json_text(m->path), "container", m->container, "video_stream",
                     m->video_stream,
                     "codec", m->codec, "pix_fmt", m->pix_fmt, "width", m->width, "height",
                     m->height, "sample_aspect_ratio", rational(m->sar_num, m->sar_den),
                     "frame_rate", rational(m->fps_num, m->fps_den), "time_base",
                     rational(m->tb_num, m->tb_den), "frames", (json_int_t)m->frames,
                     "duration", m->duration, "start_pts", (json_int_t)m->start_pts,
                     "variable_frame_rate", m->vfr, "b_frames", m->has_b_frames, "keyframes",
                     (json_int_t)m->keyframes, "timecode", vf_json_text(m->timecode), "field_order",
                     m->field_order, "color_range", m->color_range, "color_space",
                     m->color_space, "color_transfer", m->color_transfer, "color_primaries",
                     m->color_primaries, "bits_per_sample", m->bits_per_sample, "display_rotation",
                     rotation, "display_mirrored", mirrored, "video_digest",
                     m->video_digest, "streams", streams, "gap", gap);
}

static void print_human(const struct vf_media_info *m)
{
    double fps = m->fps_den ? (double)m->fps_num / m->fps_den : 0;
    printf("%s\n", m->path);
    printf("  container   %s\n", m->container);
    printf("  video       #%d %s %s %dx%d (SAR %d:%d), %d-bit\n", m->video_stream, m->codec,
           m->pix_fmt, m->width, m->height, m->sar_num, m->sar_den, m->bits_per_sample);
    printf("  frames      %lld at %.3f fps (%d/%d%s), %.3f s, time base %d/%d\n",
           (long long)m->frames, fps, m->fps_num, m->fps_den,
           m->vfr ? ", variable frame rate" : "", m->duration, m->tb_num, m->tb_den);
    char gap[320];
    if (vf_media_gap(m, gap, sizeof gap))
        printf("  gap         %s\n", gap);
    printf("  structure   %lld keyframes%s, field order %s\n", (long long)m->keyframes,
           m->has_b_frames ? ", B-frames" : "", m->field_order);
    printf("  colour      range %s, matrix %s, transfer %s, primaries %s\n", m->color_range,
           m->color_space, m->color_transfer, m->color_primaries);
    printf("  timecode    %s\n", m->timecode[0] ? m->timecode : "(none)");
    if (m->display_matrix)
        printf("  display     rotation %g%s (display matrix: players turn the picture; vaefarm "
               "colorizes it as stored, and a .mov or .mp4 output keeps the matrix)\n",
               m->rotation, m->mirrored ? ", mirrored" : "");
    for (int i = 0; i < m->n_streams; i++) {
        const struct vf_stream_info *s = &m->streams[i];
        if (s->kind == VF_STREAM_VIDEO && s->index == m->video_stream)
            continue;
        printf("  stream #%d   %s %s", s->index, kind_name(s->kind), s->codec);
        if (s->kind == VF_STREAM_AUDIO)
            printf(" %d Hz %d ch", s->sample_rate, s->channels);
        if (s->language[0])
            printf(" [%s]", s->language);
        if (s->duration >= 0)
            printf(" %.3f s", s->duration);
        printf("\n");
    }
}

int vf_cmd_probe(int argc, char **argv, struct vf_cli *cli)
{
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "usage: vaefarm probe VIDEO [--json]\n");
        return VF_EXIT_USAGE;
    }
    struct vf_error err = {0};
    struct vf_media_info *info = NULL;
    if (vf_shard_probe(&info, argv[0], &err) < 0)
        return vf_report_error(&err);
    int rc = VF_EXIT_OK;
    if (cli->json)
        rc = vf_json_print(vf_media_info_json(info));
    else {
        print_human(info);
        rc = vf_stdout_done();
    }
    vf_shard_media_info_destroy(&info);
    return rc;
}
