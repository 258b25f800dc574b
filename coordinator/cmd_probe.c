/* coordinator/cmd_probe.c: `vaefarm probe VIDEO [--json]`: what the film is. */
#include <stdio.h>
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

static json_t *rational(int num, int den) { return json_pack("[ii]", num, den); }

json_t *vf_media_info_json(const struct vf_media_info *m)
{
    json_t *streams = json_array();
    if (!streams)
        return NULL;
    for (int i = 0; i < m->n_streams; i++) {
        const struct vf_stream_info *s = &m->streams[i];
        json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:f}", "index", s->index, "kind",
                              kind_name(s->kind), "codec", s->codec, "language", s->language,
                              "duration", s->duration);
        if (o && s->kind == VF_STREAM_AUDIO) {
            json_object_set_new(o, "sample_rate", json_integer(s->sample_rate));
            json_object_set_new(o, "channels", json_integer(s->channels));
        }
        if (!o || json_array_append_new(streams, o)) {
            json_decref(streams);
            return NULL;
        }
    }
    json_t *rotation = m->display_matrix ? json_real(m->rotation) : json_null();
    json_t *mirrored = m->display_matrix ? json_boolean(m->mirrored) : json_null();
    return json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:I, s:f, s:I, s:b, "
                     "s:b, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:s, s:o}",
                     "path", m->path, "container", m->container, "video_stream", m->video_stream,
                     "codec", m->codec, "pix_fmt", m->pix_fmt, "width", m->width, "height",
                     m->height, "sample_aspect_ratio", rational(m->sar_num, m->sar_den),
                     "frame_rate", rational(m->fps_num, m->fps_den), "time_base",
                     rational(m->tb_num, m->tb_den), "frames", (json_int_t)m->frames,
                     "duration", m->duration, "start_pts", (json_int_t)m->start_pts,
                     "variable_frame_rate", m->vfr, "b_frames", m->has_b_frames, "keyframes",
                     (json_int_t)m->keyframes, "timecode", m->timecode, "field_order",
                     m->field_order, "color_range", m->color_range, "color_space",
                     m->color_space, "color_transfer", m->color_transfer, "color_primaries",
                     m->color_primaries, "bits_per_sample", m->bits_per_sample, "display_rotation",
                     rotation, "display_mirrored", mirrored, "video_digest",
                     m->video_digest, "streams", streams);
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
    else
        print_human(info);
    vf_shard_media_info_destroy(&info);
    return rc;
}
