/*
 * node/chunk.c: one chunk of a planned film → one segment (node.h "chunk pipeline",
 * docs/NODE.md). decode (shard/) ▶ grey → colorizer (F/A/C, post) ▶ keep the luma, pack the
 * chroma ▶ encode (shard/). Single-threaded; every buffer is made once per chunk.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>

#include "node/node.h"

/* ---- resizing ------------------------------------------------------------------------------ */

/* One axis of a separable resize: output o = sum_k wt[o·taps + k] · in[idx[o·taps + k]].
 * Shrinking: area average (each input sample weighted by its overlap with the output cell).
 * Growing (or equal): bilinear, align_corners = false, clamped at the borders (equal size is
 * the identity). */
struct axis {
    int n_in, n_out, taps;
    int *idx;
    float *wt;
};

static void axis_free(struct axis *a)
{
    free(a->idx);
    free(a->wt);
    memset(a, 0, sizeof *a);
}

static int axis_make(struct axis *a, int n_in, int n_out, struct vf_error *err)
{
    memset(a, 0, sizeof *a);
    double s = (double)n_in / n_out;
    a->n_in = n_in;
    a->n_out = n_out;
    a->taps = s > 1 ? (int)ceil(s) + 1 : 2;
    a->idx = vf_calloc((size_t)n_out * a->taps, sizeof *a->idx, err);
    a->wt = vf_calloc((size_t)n_out * a->taps, sizeof *a->wt, err);
    if (!a->idx || !a->wt) {
        axis_free(a);
        return VF_ENOMEM;
    }
    for (int o = 0; o < n_out; o++) {
        int *idx = a->idx + (size_t)o * a->taps;
        float *wt = a->wt + (size_t)o * a->taps;
        if (s > 1) {
            double lo = o * s, hi = (o + 1) * s;
            int k = 0;
            for (int i = (int)floor(lo); i < n_in && i < hi && k < a->taps; i++) {
                double ov = fmin(hi, i + 1.0) - fmax(lo, (double)i);
                if (ov <= 0)
                    continue;
                idx[k] = i;
                wt[k++] = (float)(ov / s);
            }
        } else {
            double x = (o + 0.5) * s - 0.5;
            if (x < 0)
                x = 0;
            int i0 = (int)floor(x);
            if (i0 > n_in - 1)
                i0 = n_in - 1;
            double f = x - i0;
            idx[0] = i0;
            idx[1] = i0 + 1 < n_in ? i0 + 1 : n_in - 1;
            wt[0] = (float)(1 - f);
            wt[1] = (float)f;
        }
    }
    return VF_OK;
}

/* in (ay.n_in rows × ax.n_in, row stride `stride` floats) → out (ay.n_out × ax.n_out, packed);
 * tmp holds ay.n_in × ax.n_out floats. */
static void resize_plane(const float *in, size_t stride, const struct axis *ax,
                         const struct axis *ay, float *tmp, float *out)
{
    for (int y = 0; y < ay->n_in; y++) {
        const float *row = in + (size_t)y * stride;
        float *t = tmp + (size_t)y * ax->n_out;
        for (int o = 0; o < ax->n_out; o++) {
            const int *idx = ax->idx + (size_t)o * ax->taps;
            const float *wt = ax->wt + (size_t)o * ax->taps;
            float acc = 0;
            for (int k = 0; k < ax->taps; k++)
                acc += wt[k] * row[idx[k]];
            t[o] = acc;
        }
    }
    for (int o = 0; o < ay->n_out; o++) {
        const int *idx = ay->idx + (size_t)o * ay->taps;
        const float *wt = ay->wt + (size_t)o * ay->taps;
        float *dst = out + (size_t)o * ax->n_out;
        for (int x = 0; x < ax->n_out; x++)
            dst[x] = 0;
        for (int k = 0; k < ay->taps; k++) {
            if (wt[k] == 0)
                continue;
            const float *src = tmp + (size_t)idx[k] * ax->n_out;
            for (int x = 0; x < ax->n_out; x++)
                dst[x] += wt[k] * src[x];
        }
    }
}

/* ---- colour ------------------------------------------------------------------------------- */

void vf_node_colorizer_opts(const struct vf_media_info *info, struct vf_colorizer_opts *opts)
{
    const char *cs = info->color_space;
    float kr, kb;
    if (!strcmp(cs, "bt709")) {
        kr = 0.2126f, kb = 0.0722f;
    } else if (!strcmp(cs, "smpte170m") || !strcmp(cs, "bt470bg")) {
        kr = 0.299f, kb = 0.114f;
    } else if (!strcmp(cs, "bt2020nc") || !strcmp(cs, "bt2020c")) {
        kr = 0.2627f, kb = 0.0593f;
    } else if (!strcmp(cs, "fcc")) {
        kr = 0.30f, kb = 0.11f;
    } else if (!strcmp(cs, "smpte240m")) {
        kr = 0.212f, kb = 0.087f;
    } else if (info->height >= 720) { /* unknown: as shard/ and players guess */
        kr = 0.2126f, kb = 0.0722f;
    } else {
        kr = 0.299f, kb = 0.114f;
    }
    opts->full_h = info->height;
    opts->full_w = info->width;
    opts->kr = kr;
    opts->kb = kb;
}

double vf_node_seam_error(const float *a, const float *b, int h, int w)
{
    size_t n = (size_t)2 * h * w;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabs((double)a[i] - b[i]);
    return n ? s / n : 0;
}

/* ---- reference ---------------------------------------------------------------------------- */

int vf_node_load_reference(const char *path, int h, int w, float *rgb, struct vf_error *err)
{
    struct vf_media_info *info = NULL;
    struct vf_decoder *dec = NULL;
    struct axis ax = {0}, ay = {0};
    float *full = NULL, *tmp = NULL;
    struct vf_frame fr;
    int rc;
    if (!path || h <= 0 || w <= 0 || !rgb)
        return vf_error_set(err, VF_EINVAL, "vf_node_load_reference: path, size and buffer are required");
    if ((rc = vf_shard_probe(&info, path, err)) < 0)
        goto fail;
    if ((rc = vf_shard_decoder_create(&dec, info, VF_DECODE_RGB, err)) < 0)
        goto fail;
    rc = vf_shard_decoder_read(dec, &fr, err);
    if (rc == 0)
        rc = vf_error_set(err, VF_EMEDIA, "it decodes to no picture");
    if (rc < 0)
        goto fail;
    int fw = fr.width, fh = fr.height;
    full = vf_calloc((size_t)fw * fh, sizeof *full, err);
    tmp = vf_calloc((size_t)fh * w, sizeof *tmp, err);
    if (!full || !tmp) {
        rc = VF_ENOMEM;
        goto fail;
    }
    if ((rc = axis_make(&ax, fw, w, err)) < 0 || (rc = axis_make(&ay, fh, h, err)) < 0)
        goto fail;
    float scale = 1.0f / (float)((1 << fr.rgb_bits) - 1);
    for (int c = 0; c < 3; c++) {
        for (int y = 0; y < fh; y++) {
            const uint8_t *row = fr.rgb[c] + (size_t)y * fr.rgb_stride;
            float *dst = full + (size_t)y * fw;
            if (fr.rgb_bits > 8)
                for (int x = 0; x < fw; x++)
                    dst[x] = ((const uint16_t *)(const void *)row)[x] * scale;
            else
                for (int x = 0; x < fw; x++)
                    dst[x] = row[x] * scale;
        }
        resize_plane(full, (size_t)fw, &ax, &ay, tmp, rgb + (size_t)c * h * w);
    }
    rc = VF_OK;
fail:
    if (rc < 0)
        vf_error_prefix(err, "reference image %s", path);
    axis_free(&ax);
    axis_free(&ay);
    free(full);
    free(tmp);
    vf_shard_decoder_destroy(&dec);
    vf_shard_media_info_destroy(&info);
    return rc;
}

/* ---- the chunk ---------------------------------------------------------------------------- */

struct chunk_run {
    const struct vf_chunk_job *job;
    const struct vf_chunk *ch;
    struct vf_decoder *dec;
    struct vf_segment_writer *wr;
    AVFrame *out;
    const AVPixFmtDescriptor *desc;
    int out_bits;
    bool full_range;            /* the source's (and so the output's) levels */
    struct axis ax, ay;
    float *grey_full, *grey, *tmp, *ab, *cbcr;
    int64_t frame;              /* the frame being worked on, for messages */
};

static void run_free(struct chunk_run *r)
{
    vf_shard_decoder_destroy(&r->dec);
    vf_shard_segment_abort(&r->wr); /* NULL after a successful close */
    av_frame_free(&r->out);
    axis_free(&r->ax);
    axis_free(&r->ay);
    free(r->grey_full);
    free(r->grey);
    free(r->tmp);
    free(r->ab);
    free(r->cbcr);
}

/* Luma → grey Y′ in [0, 1] at full size (the source's range and depth), then the inference
 * size (area average when shrinking). */
static void make_grey(struct chunk_run *r, const struct vf_frame *fr)
{
    int fw = fr->width, fh = fr->height, b = fr->luma_bits;
    float off, scale;
    if (r->full_range) {
        off = 0;
        scale = 1.0f / (float)((1 << b) - 1);
    } else {
        off = (float)(16 << (b - 8));
        scale = 1.0f / (float)(219 << (b - 8));
    }
    for (int y = 0; y < fh; y++) {
        const uint8_t *row = fr->luma + (size_t)y * fr->luma_stride;
        float *dst = r->grey_full + (size_t)y * fw;
        for (int x = 0; x < fw; x++) {
            float v = ((b > 8 ? ((const uint16_t *)(const void *)row)[x] : row[x]) - off) * scale;
            dst[x] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    }
    resize_plane(r->grey_full, (size_t)fw, &r->ax, &r->ay, r->tmp, r->grey);
}

static inline void put_sample(uint8_t *row, int x, int bits, unsigned v)
{
    if (bits > 8)
        ((uint16_t *)(void *)row)[x] = (uint16_t)v;
    else
        row[x] = (uint8_t)v;
}

/* Fill r->out: the input's luma, the colorizer's Cb, Cr in the output's format. */
static void pack_frame(struct chunk_run *r, const struct vf_frame *fr)
{
    AVFrame *o = r->out;
    int fw = fr->width, fh = fr->height, ib = fr->luma_bits, ob = r->out_bits;
    uint8_t *yp = o->data[r->desc->comp[0].plane];
    for (int y = 0; y < fh; y++) {
        const uint8_t *src = fr->luma + (size_t)y * fr->luma_stride;
        uint8_t *dst = yp + (size_t)y * o->linesize[r->desc->comp[0].plane];
        if (ib == ob) {
            memcpy(dst, src, (size_t)fw * (ib > 8 ? 2 : 1));
            continue;
        }
        for (int x = 0; x < fw; x++) {
            unsigned v = ib > 8 ? ((const uint16_t *)(const void *)src)[x] : src[x];
            v = ob > ib ? v << (ob - ib) : v >> (ib - ob);
            put_sample(dst, x, ob, v);
        }
    }
    int sw = r->desc->log2_chroma_w, sh = r->desc->log2_chroma_h;
    int cw = (fw + (1 << sw) - 1) >> sw, chh = (fh + (1 << sh) - 1) >> sh;
    float centre, gain, lo, hi;
    if (r->full_range) {
        float maxv = (float)((1 << ob) - 1);
        centre = (float)(1 << (ob - 1));
        gain = maxv;
        lo = 0;
        hi = maxv;
    } else {
        float s = (float)(1 << (ob - 8));
        centre = 128 * s;
        gain = 224 * s;
        lo = 16 * s;
        hi = 240 * s;
    }
    for (int c = 0; c < 2; c++) {
        int plane = r->desc->comp[1 + c].plane;
        const float *src = r->cbcr + (size_t)c * fw * fh;
        for (int cy = 0; cy < chh; cy++) {
            uint8_t *dst = o->data[plane] + (size_t)cy * o->linesize[plane];
            int y0 = cy << sh, y1 = (cy + 1) << sh;
            if (y1 > fh)
                y1 = fh;
            for (int cx = 0; cx < cw; cx++) {
                int x0 = cx << sw, x1 = (cx + 1) << sw;
                if (x1 > fw)
                    x1 = fw;
                float acc = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        acc += src[(size_t)y * fw + x];
                float v = centre + gain * acc / (float)((y1 - y0) * (x1 - x0));
                v = v < lo ? lo : v > hi ? hi : v;
                put_sample(dst, cx, ob, (unsigned)floorf(v + 0.5f));
            }
        }
    }
}

static int setup(struct chunk_run *r, struct vf_error *err)
{
    const struct vf_chunk_job *job = r->job;
    const struct vf_media_info *info = job->info;
    int fw = info->width, fh = info->height, h = job->h, w = job->w;
    enum AVPixelFormat fmt = vf_shard_segment_pix_fmt(r->wr);
    const AVPixFmtDescriptor *d = fmt == AV_PIX_FMT_NONE ? NULL : av_pix_fmt_desc_get(fmt);
    if (!d)
        return vf_error_set(err, VF_EUNSUPPORTED, "encode: codec '%s' / pix_fmt '%s' gives no pixel "
                            "format vaefarm knows", job->encode->codec ? job->encode->codec : "",
                            job->encode->pix_fmt ? job->encode->pix_fmt : "(default)");
    bool ok = !(d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BE |
                            AV_PIX_FMT_FLAG_ALPHA)) &&
              (d->flags & AV_PIX_FMT_FLAG_PLANAR) && d->nb_components == 3 &&
              d->log2_chroma_w <= 1 && d->log2_chroma_h <= 1 && d->comp[0].depth >= 8 &&
              d->comp[0].depth <= 16 && d->comp[1].depth == d->comp[0].depth;
    for (int c = 0; ok && c < 3; c++)
        ok = d->comp[c].shift == 0 && d->comp[c].offset == 0 &&
             d->comp[c].step == (d->comp[0].depth > 8 ? 2 : 1) && d->comp[c].plane == c;
    if (!ok)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "encode.pix_fmt %s: the chunk pipeline writes planar YUV 4:4:4, 4:2:2 or "
                            "4:2:0 at 8..16 bits only; choose e.g. yuv444p, yuv422p10le, yuv420p",
                            d->name);
    r->desc = d;
    r->out_bits = d->comp[0].depth;
    r->full_range = !strcmp(info->color_range, "pc");

    if (axis_make(&r->ax, fw, w, err) < 0 || axis_make(&r->ay, fh, h, err) < 0)
        return VF_ENOMEM;
    r->grey_full = vf_calloc((size_t)fw * fh, sizeof(float), err);
    r->grey = vf_calloc((size_t)h * w, sizeof(float), err);
    r->tmp = vf_calloc((size_t)fh * w, sizeof(float), err);
    r->ab = vf_calloc((size_t)2 * h * w, sizeof(float), err);
    r->cbcr = vf_calloc((size_t)2 * fw * fh, sizeof(float), err);
    if (!r->grey_full || !r->grey || !r->tmp || !r->ab || !r->cbcr)
        return VF_ENOMEM;
    r->out = av_frame_alloc();
    if (!r->out)
        return vf_error_set(err, VF_ENOMEM, "out of memory for the output frame");
    r->out->format = fmt;
    r->out->width = fw;
    r->out->height = fh;
    if (av_frame_get_buffer(r->out, 0) < 0)
        return vf_error_set(err, VF_ENOMEM, "out of memory for a %dx%d %s frame", fw, fh, d->name);
    return VF_OK;
}

int vf_node_colorize_chunk(const struct vf_chunk_job *job, struct vf_chunk_result *res,
                           struct vf_error *err)
{
    struct vf_error local;
    if (!err)
        err = &local;
    vf_error_clear(err);
    VF_ASSERT(res);
    memset(res, 0, sizeof *res);
    if (!job || !job->info || !job->chunk || !job->encode || !job->segment || !job->colorizer ||
        job->h <= 0 || job->w <= 0)
        return vf_error_set(err, VF_EINVAL, "vf_node_colorize_chunk: info, chunk, encode, segment, "
                            "colorizer and the inference size are required");
    const struct vf_chunk *ch = job->chunk;
    const struct vf_media_info *info = job->info;
    if (ch->warm_start < 0 || ch->warm_start > ch->start || ch->start >= ch->end ||
        ch->end > info->frames)
        return vf_error_set(err, VF_EINVAL,
                            "chunk %d of %s: frames warm %lld, [%lld, %lld) are not a range of its "
                            "%lld frames",
                            ch->id, info->path, (long long)ch->warm_start, (long long)ch->start,
                            (long long)ch->end, (long long)info->frames);
    double t_all = vf_now();
    struct chunk_run r = {.job = job, .ch = ch, .frame = -1};
    int64_t n_warm = ch->start - ch->warm_start;
    size_t ab_n = (size_t)2 * job->h * job->w;
    int rc;
    double t = vf_now();
    if ((rc = vf_shard_segment_open(&r.wr, job->segment, info, job->encode, err)) < 0)
        goto fail;
    res->t_encode += vf_now() - t;
    if ((rc = setup(&r, err)) < 0)   /* in the writer's pixel format */
        goto fail;
    res->last_ab = vf_calloc(ab_n, sizeof(float), err);
    if (n_warm > 0)
        res->warm_ab = vf_calloc(ab_n, sizeof(float), err);
    if (!res->last_ab || (n_warm > 0 && !res->warm_ab)) {
        rc = VF_ENOMEM;
        goto fail;
    }
    t = vf_now();
    if ((rc = vf_shard_decoder_create(&r.dec, info, VF_DECODE_LUMA, err)) < 0 ||
        (rc = vf_shard_decoder_seek(r.dec, ch->warm_start, err)) < 0)
        goto fail;
    res->t_decode += vf_now() - t;
    if (job->reference_rgb) {
        t = vf_now();
        if ((rc = vf_colorizer_set_reference(job->colorizer, job->reference_rgb, err)) < 0)
            goto fail;
        res->t_infer += vf_now() - t;
    }
    vf_colorizer_reset(job->colorizer); /* zero state at a shot's first frame and every warm-up */

    for (int64_t i = ch->warm_start; i < ch->end; i++) {
        r.frame = i;
        struct vf_frame fr;
        t = vf_now();
        rc = vf_shard_decoder_read(r.dec, &fr, err);
        if (rc == 0)
            rc = vf_error_set(err, VF_EMEDIA, "the film ends before this frame");
        if (rc < 0)
            goto fail;
        if (fr.index != i || fr.width != info->width || fr.height != info->height) {
            rc = vf_error_set(err, VF_EMEDIA, "the decoder gave frame %lld of %dx%d, not frame %lld "
                              "of %dx%d (was the film changed since it was probed?)",
                              (long long)fr.index, fr.width, fr.height, (long long)i, info->width,
                              info->height);
            goto fail;
        }
        if (fr.av && fr.luma != fr.av->data[0] && !r.full_range) {
            rc = vf_error_set(err, VF_EUNSUPPORTED, "the film's pixel format %s has no luma plane "
                              "of its own (limited range); transcode it to gray or yuv first",
                              info->pix_fmt);
            goto fail;
        }
        make_grey(&r, &fr);
        res->frames_decoded++;
        double t1 = vf_now();
        res->t_decode += t1 - t;

        if ((rc = vf_colorizer_frame(job->colorizer, r.grey, r.ab, NULL, err)) < 0)
            goto fail;
        if (i < ch->start) {
            if (i == ch->start - 1)
                memcpy(res->warm_ab, r.ab, ab_n * sizeof(float));
            res->frames_warmup++;
            res->t_infer += vf_now() - t1;
            continue;
        }
        if (i == ch->end - 1)
            memcpy(res->last_ab, r.ab, ab_n * sizeof(float));
        if ((rc = vf_colorizer_post(job->colorizer, r.grey_full, NULL, r.cbcr, err)) < 0)
            goto fail;
        double t2 = vf_now();
        res->t_infer += t2 - t1;

        if (av_frame_make_writable(r.out) < 0) {
            rc = vf_error_set(err, VF_ENOMEM, "out of memory for the output frame");
            goto fail;
        }
        pack_frame(&r, &fr);
        r.out->pts = fr.pts;
        if ((rc = vf_shard_segment_write(r.wr, r.out, err)) < 0)
            goto fail;
        res->frames_kept++;
        res->t_encode += vf_now() - t2;
    }
    r.frame = -1;
    t = vf_now();
    if ((rc = vf_shard_segment_close(&r.wr, res->checksum, err)) < 0)
        goto fail;
    res->t_encode += vf_now() - t;
    run_free(&r);
    res->t_total = vf_now() - t_all;
    return VF_OK;
fail:
    if (r.frame >= 0)
        vf_error_prefix(err, "chunk %d (frames [%lld, %lld), warm-up from %lld) of %s, frame %lld",
                        ch->id, (long long)ch->start, (long long)ch->end, (long long)ch->warm_start,
                        info->path, (long long)r.frame);
    else
        vf_error_prefix(err, "chunk %d (frames [%lld, %lld), warm-up from %lld) of %s", ch->id,
                        (long long)ch->start, (long long)ch->end, (long long)ch->warm_start,
                        info->path);
    run_free(&r);
    vf_node_chunk_result_free(res);
    return rc;
}

void vf_node_chunk_result_free(struct vf_chunk_result *res)
{
    if (!res)
        return;
    free(res->warm_ab);
    free(res->last_ab);
    res->warm_ab = res->last_ab = NULL;
}
