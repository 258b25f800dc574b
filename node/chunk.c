/*
 * node/chunk.c: one chunk of a planned film → one segment (node.h "chunk pipeline",
 * docs/NODE.md). decode (shard/) ▶ grey → colorizer (F/A/C, post) ▶ keep the luma, pack the
 * chroma ▶ encode (shard/). With job->queue > 0 the three stages overlap: a decode thread ▶ the
 * calling thread (the network) ▶ an encode thread, joined by bounded queues of preallocated frame
 * slots; with 0 they run one after the other on the calling thread, through the same per-frame
 * stage functions, so the bytes are the same. Every buffer is made once per chunk.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>

#include "node/node.h"

/* The deepest queue a job may ask for (each frame in flight holds the luma, grey and Cb, Cr of a
 * full-size frame: about 14 bytes a pixel). */
#define VF_NODE_MAX_QUEUE 64

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

/* x rounded to the nearest multiple of 8, at least 32. */
static int round8_min32(double x)
{
    long k = lround(x / 8);
    return k < 4 ? 32 : (int)(k * 8);
}

void vf_node_inference_size(const struct vf_arch *arch, const struct vf_media_info *info, int *h,
                            int *w)
{
    double n = (double)arch->inference_h * arch->inference_w;
    double aspect = (double)arch->inference_w / arch->inference_h; /* a film without a size */
    if (info->width > 0 && info->height > 0) {
        aspect = (double)info->width / info->height;
        if (info->sar_num > 0 && info->sar_den > 0) /* 0/x: unknown, square pixels */
            aspect *= (double)info->sar_num / info->sar_den;
    }
    *h = round8_min32(sqrt(n / aspect));
    *w = round8_min32(sqrt(n * aspect));
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

int vf_node_load_reference(const char *path, int h, int w, float *rgb, int64_t *frames,
                           struct vf_error *err)
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
    if (frames)
        *frames = info->frames;
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

/* ---- the chunk: its buffers and the three per-frame stages ---------------------------------- */

/* One frame on its way through the stages: what decode makes (a copy of the luma plane, since
 * the decoder's frame is valid only until its next read; grey at full and inference size) and
 * what infer adds (Cb, Cr at full size) for encode. Made once per chunk: 1 without threads,
 * 2 · queue + 3 with them (one per stage, and each queue full). */
struct slot {
    int64_t index, pts;
    int luma_bits;
    uint8_t *luma;              /* height rows of width samples, packed (1 or 2 bytes each) */
    float *grey_full, *grey, *cbcr;
};

/* A chunk being colorized. With threads, each stage's fields are touched by its own thread
 * only (joining the threads publishes them); the rest is read-only once set up. */
struct chunk_run {
    const struct vf_chunk_job *job;
    const struct vf_chunk *ch;
    const struct vf_media_info *info;
    bool full_range;            /* the source's (and so the output's) levels */
    bool interlaced;            /* 4:2:0 chroma rows are made from one field's rows each */
    int n_slots;
    struct slot *slots;
    int64_t frame;              /* the frame an error is about (-1: none), for the message */
    /* decode stage */
    struct vf_decoder *dec;
    struct axis ax, ay;
    float *tmp;
    int64_t n_decoded;
    double t_decode;
    /* infer stage (always the calling thread) */
    float *ab;
    double t_infer;
    /* encode stage */
    struct vf_segment_writer *wr;
    AVFrame *out;
    const AVPixFmtDescriptor *desc;
    int out_bits;
    int64_t n_kept;
    double t_encode;
    char checksum[65];
};

static void run_free(struct chunk_run *r)
{
    vf_shard_decoder_destroy(&r->dec);
    vf_shard_segment_abort(&r->wr); /* NULL after a successful close */
    av_frame_free(&r->out);
    axis_free(&r->ax);
    axis_free(&r->ay);
    free(r->tmp);
    free(r->ab);
    for (int i = 0; r->slots && i < r->n_slots; i++) {
        free(r->slots[i].luma);
        free(r->slots[i].grey_full);
        free(r->slots[i].grey);
        free(r->slots[i].cbcr);
    }
    free(r->slots);
    r->slots = NULL;
}

/* Luma → grey Y′ in [0, 1] at full size (the source's range and depth), then the inference
 * size (area average when shrinking). */
static void make_grey(struct chunk_run *r, struct slot *s)
{
    int fw = r->info->width, fh = r->info->height, b = s->luma_bits;
    size_t row_bytes = (size_t)fw * (b > 8 ? 2 : 1);
    float off, scale;
    if (r->full_range) {
        off = 0;
        scale = 1.0f / (float)((1 << b) - 1);
    } else {
        off = (float)(16 << (b - 8));
        scale = 1.0f / (float)(219 << (b - 8));
    }
    for (int y = 0; y < fh; y++) {
        const uint8_t *row = s->luma + (size_t)y * row_bytes;
        float *dst = s->grey_full + (size_t)y * fw;
        for (int x = 0; x < fw; x++) {
            float v = ((b > 8 ? ((const uint16_t *)(const void *)row)[x] : row[x]) - off) * scale;
            dst[x] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    }
    resize_plane(s->grey_full, (size_t)fw, &r->ax, &r->ay, r->tmp, s->grey);
}

static inline void put_sample(uint8_t *row, int x, int bits, unsigned v)
{
    if (bits > 8)
        ((uint16_t *)(void *)row)[x] = (uint16_t)v;
    else
        row[x] = (uint8_t)v;
}

void vf_chroma_rows_(int cy, int sh, bool interlaced, int fh, int *y0, int *step, int *n)
{
    /* 2cy and 2cy+1; in an interlaced 4:2:0 picture each chroma row belongs to one field (rows
     * 0, 1, 2, 3 to top, bottom, top, bottom), so its two rows are that field's: 4(cy/2) + cy%2
     * and the one two below. A picture under 4 rows high has no second row of a field. */
    *y0 = cy << sh;
    *step = 1;
    *n = 1 << sh;
    if (sh && interlaced && fh >= 4) {
        *y0 = 4 * (cy >> 1) + (cy & 1);
        *step = 2;
    }
    while (*n > 1 && *y0 + (*n - 1) * *step >= fh)
        --*n;
}

/* Fill r->out: the input's luma, the colorizer's Cb, Cr in the output's format. */
static void pack_frame(struct chunk_run *r, const struct slot *s)
{
    AVFrame *o = r->out;
    int fw = r->info->width, fh = r->info->height, ib = s->luma_bits, ob = r->out_bits;
    size_t row_bytes = (size_t)fw * (ib > 8 ? 2 : 1);
    uint8_t *yp = o->data[r->desc->comp[0].plane];
    for (int y = 0; y < fh; y++) {
        const uint8_t *src = s->luma + (size_t)y * row_bytes;
        uint8_t *dst = yp + (size_t)y * o->linesize[r->desc->comp[0].plane];
        if (ib == ob) {
            memcpy(dst, src, row_bytes);
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
        float sc = (float)(1 << (ob - 8));
        centre = 128 * sc;
        gain = 224 * sc;
        lo = 16 * sc;
        hi = 240 * sc;
    }
    for (int c = 0; c < 2; c++) {
        int plane = r->desc->comp[1 + c].plane;
        const float *src = s->cbcr + (size_t)c * fw * fh;
        for (int cy = 0; cy < chh; cy++) {
            uint8_t *dst = o->data[plane] + (size_t)cy * o->linesize[plane];
            int y0, step, n_rows;
            vf_chroma_rows_(cy, sh, r->interlaced, fh, &y0, &step, &n_rows);
            for (int cx = 0; cx < cw; cx++) {
                int x0 = cx << sw, x1 = (cx + 1) << sw;
                if (x1 > fw)
                    x1 = fw;
                float acc = 0;
                for (int k = 0; k < n_rows; k++)
                    for (int x = x0; x < x1; x++)
                        acc += src[(size_t)(y0 + k * step) * fw + x];
                float v = centre + gain * acc / (float)(n_rows * (x1 - x0));
                v = v < lo ? lo : v > hi ? hi : v;
                put_sample(dst, cx, ob, (unsigned)floorf(v + 0.5f));
            }
        }
    }
}

/* The pipeline writes planar YUV 4:4:4, 4:2:2 or 4:2:0 at 8 to 16 bits, little-endian. */
static bool pipeline_writes(const AVPixFmtDescriptor *d)
{
    bool ok = !(d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BE |
                            AV_PIX_FMT_FLAG_ALPHA)) &&
              (d->flags & AV_PIX_FMT_FLAG_PLANAR) && d->nb_components == 3 &&
              d->log2_chroma_w <= 1 && d->log2_chroma_h <= 1 && d->comp[0].depth >= 8 &&
              d->comp[0].depth <= 16 && d->comp[1].depth == d->comp[0].depth;
    for (int c = 0; ok && c < 3; c++)
        ok = d->comp[c].shift == 0 && d->comp[c].offset == 0 &&
             d->comp[c].step == (d->comp[0].depth > 8 ? 2 : 1) && d->comp[c].plane == c;
    return ok;
}

static int pix_fmt_refused(const char *name, struct vf_error *err)
{
    return vf_error_set(err, VF_EUNSUPPORTED,
                        "encode.pix_fmt %s: the chunk pipeline writes planar YUV 4:4:4, 4:2:2 or "
                        "4:2:0 at 8..16 bits only; choose e.g. yuv444p, yuv422p10le, yuv420p",
                        name);
}

int vf_node_check_pix_fmt(const char *name, struct vf_error *err)
{
    const enum AVPixelFormat fmt = name ? av_get_pix_fmt(name) : AV_PIX_FMT_NONE;
    const AVPixFmtDescriptor *d = fmt == AV_PIX_FMT_NONE ? NULL : av_pix_fmt_desc_get(fmt);
    if (!d)
        return vf_error_set(err, VF_EINVAL, "encode.pix_fmt %s: not a pixel format FFmpeg knows",
                            name ? name : "(none)");
    return pipeline_writes(d) ? VF_OK : pix_fmt_refused(d->name, err);
}

static int slot_count(int queue) { return queue > 0 ? 2 * queue + 3 : 1; }

size_t vf_node_chunk_bytes(const struct vf_media_info *info, int h, int w, int queue)
{
    size_t full = (size_t)info->width * (size_t)info->height, small = (size_t)h * (size_t)w;
    size_t slot = full * (2 + sizeof(float) + 2 * sizeof(float)) + small * sizeof(float);
    /* setup below: the slots, r->tmp, r->ab, and the output frame (at most 16-bit 4:4:4: 6 bytes
     * a pixel, with FFmpeg's padding) */
    return (size_t)slot_count(queue) * slot + (size_t)info->height * (size_t)w * sizeof(float) +
           2 * small * sizeof(float) + full * 8;
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
    if (!pipeline_writes(d))
        return pix_fmt_refused(d->name, err);
    r->desc = d;
    r->out_bits = d->comp[0].depth;
    r->full_range = !strcmp(info->color_range, "pc");
    r->interlaced = vf_shard_interlaced(info);

    if (axis_make(&r->ax, fw, w, err) < 0 || axis_make(&r->ay, fh, h, err) < 0)
        return VF_ENOMEM;
    r->tmp = vf_calloc((size_t)fh * w, sizeof(float), err);
    r->ab = vf_calloc((size_t)2 * h * w, sizeof(float), err);
    if (!r->tmp || !r->ab)
        return VF_ENOMEM;
    r->n_slots = slot_count(job->queue);
    r->slots = vf_calloc((size_t)r->n_slots, sizeof *r->slots, err);
    if (!r->slots)
        return VF_ENOMEM;
    size_t full = (size_t)fw * fh;
    for (int i = 0; i < r->n_slots; i++) {
        struct slot *s = &r->slots[i];
        s->luma = vf_calloc(full, 2, err); /* room for 9..16-bit samples */
        s->grey_full = vf_calloc(full, sizeof(float), err);
        s->grey = vf_calloc((size_t)h * w, sizeof(float), err);
        s->cbcr = vf_calloc(2 * full, sizeof(float), err);
        if (!s->luma || !s->grey_full || !s->grey || !s->cbcr)
            return VF_ENOMEM;
    }
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

static bool stop_requested(const struct chunk_run *r)
{
    return r->job->stop && atomic_load(r->job->stop) != 0;
}

static int interrupted(struct vf_error *err)
{
    return vf_error_set(err, VF_EINTERRUPTED, "interrupted");
}

/* Decode stage: open the decoder at the chunk's first frame. */
static int decode_open(struct chunk_run *r, struct vf_error *err)
{
    double t = vf_now();
    int rc = vf_shard_decoder_create(&r->dec, r->info, VF_DECODE_LUMA, err);
    if (rc >= 0)
        rc = vf_shard_decoder_seek(r->dec, r->ch->warm_start, err);
    r->t_decode += vf_now() - t;
    return rc;
}

/* Decode stage: frame i → s (its luma copied, grey at full and inference size, pts). */
static int decode_frame(struct chunk_run *r, int64_t i, struct slot *s, struct vf_error *err)
{
    const struct vf_media_info *info = r->info;
    double t = vf_now();
    struct vf_frame fr;
    int rc = vf_shard_decoder_read(r->dec, &fr, err);
    if (rc == 0)
        rc = vf_error_set(err, VF_EMEDIA, "the film ends before this frame");
    if (rc < 0)
        goto out;
    if (fr.index != i || fr.width != info->width || fr.height != info->height) {
        rc = vf_error_set(err, VF_EMEDIA, "the decoder gave frame %lld of %dx%d, not frame %lld "
                          "of %dx%d (was the film changed since it was probed?)",
                          (long long)fr.index, fr.width, fr.height, (long long)i, info->width,
                          info->height);
        goto out;
    }
    if (fr.luma_bits < 8 || fr.luma_bits > 16) {
        rc = vf_error_set(err, VF_EUNSUPPORTED, "the film's luma has %d bits; the chunk pipeline "
                          "reads 8..16", fr.luma_bits);
        goto out;
    }
    size_t row_bytes = (size_t)fr.width * (fr.luma_bits > 8 ? 2 : 1);
    for (int y = 0; y < fr.height; y++)
        memcpy(s->luma + (size_t)y * row_bytes, fr.luma + (size_t)y * fr.luma_stride, row_bytes);
    s->index = i;
    s->pts = fr.pts;
    s->luma_bits = fr.luma_bits;
    make_grey(r, s);
    r->n_decoded++;
    rc = VF_OK;
out:
    r->t_decode += vf_now() - t;
    return rc;
}

/* Infer stage: the shot's reference (when the job gives one) and the zero state. */
static int infer_begin(struct chunk_run *r, struct vf_error *err)
{
    double t = vf_now();
    int rc = VF_OK;
    if (r->job->reference_rgb)
        rc = vf_colorizer_set_reference(r->job->colorizer, r->job->reference_rgb,
                                        r->job->reference_rgb_full, err);
    if (rc >= 0)   /* zero state at a shot's first frame and every warm-up */
        rc = vf_colorizer_reset(r->job->colorizer, err);
    r->t_infer += vf_now() - t;
    return rc;
}

/* Infer stage: colorize s; 1 when it is kept (s->cbcr filled for encode), 0 for a warm-up frame
 * (colorized and dropped: no post-processing, but for the state the arch's propagate carries). */
static int infer_frame(struct chunk_run *r, struct slot *s, struct vf_chunk_result *res,
                       struct vf_error *err)
{
    const struct vf_chunk *ch = r->ch;
    size_t ab_bytes = sizeof(float) * 2 * r->job->h * r->job->w;
    double t = vf_now();
    int rc = vf_colorizer_frame(r->job->colorizer, s->grey, r->ab, NULL, err);
    if (rc < 0)
        goto out;
    if (s->index < ch->start) {
        if (s->index == ch->start - 1)
            memcpy(res->warm_ab, r->ab, ab_bytes);
        res->frames_warmup++;
        rc = 0;
        /* a dropped frame whose a, b the next one carries (the arch's propagate) is still
         * post-processed, for the kept frames to be those of a run that started earlier */
        if (vf_colorizer_post_carries(r->job->colorizer))
            rc = vf_colorizer_post(r->job->colorizer, s->grey_full, NULL, NULL, err);
        goto out;
    }
    if (s->index == ch->end - 1)
        memcpy(res->last_ab, r->ab, ab_bytes);
    rc = vf_colorizer_post(r->job->colorizer, s->grey_full, NULL, s->cbcr, err);
    if (rc >= 0)
        rc = 1;
out:
    r->t_infer += vf_now() - t;
    return rc;
}

/* After frame i is colorized, on the calling thread: before the frame goes on to encode, so
 * that a stop set from the callback always takes effect. */
static void report_progress(const struct chunk_run *r, int64_t i)
{
    if (r->job->progress)
        r->job->progress(r->job->progress_opaque, i - r->ch->warm_start + 1,
                         r->ch->end - r->ch->warm_start);
}

/* Encode stage: s (a kept frame) → the output frame → the writer. */
static int encode_frame(struct chunk_run *r, const struct slot *s, struct vf_error *err)
{
    double t = vf_now();
    int rc;
    if (av_frame_make_writable(r->out) < 0) {
        rc = vf_error_set(err, VF_ENOMEM, "out of memory for the output frame");
    } else {
        pack_frame(r, s);
        r->out->pts = s->pts;
        rc = vf_shard_segment_write(r->wr, r->out, err);
        if (rc >= 0)
            r->n_kept++;
    }
    r->t_encode += vf_now() - t;
    return rc;
}

/* Encode stage: flush, rename into place, checksum. */
static int encode_close(struct chunk_run *r, struct vf_error *err)
{
    double t = vf_now();
    int rc = vf_shard_segment_close(&r->wr, r->checksum, err);
    r->t_encode += vf_now() - t;
    return rc;
}

/* ---- queue = 0: one stage after the other on the calling thread --------------------------- */

static int run_serial(struct chunk_run *r, struct vf_chunk_result *res, struct vf_error *err)
{
    const struct vf_chunk *ch = r->ch;
    struct slot *s = &r->slots[0];
    int rc;
    if ((rc = decode_open(r, err)) < 0 || (rc = infer_begin(r, err)) < 0)
        return rc;
    for (int64_t i = ch->warm_start; i < ch->end; i++) {
        r->frame = i;
        if (stop_requested(r))
            return interrupted(err);
        if ((rc = decode_frame(r, i, s, err)) < 0 || (rc = infer_frame(r, s, res, err)) < 0)
            return rc;
        report_progress(r, i);
        if (rc == 1 && (rc = encode_frame(r, s, err)) < 0)
            return rc;
    }
    r->frame = -1;
    if (stop_requested(r))
        return interrupted(err);
    return encode_close(r, err);
}

/* ---- queue > 0: decode thread ▶ calling thread (infer) ▶ encode thread --------------------- */

/* A pthread call that fails only on a bug (a mutex or condition variable used wrongly). */
#define PT_CHECK(call) pt_check_((call), #call, __func__, __LINE__)

static void pt_check_(int e, const char *call, const char *func, int line)
{
    if (e) {
        fprintf(stderr, "vaefarm: %s: %s\n", call, strerror(e));
        vf_assert_fail_(call, __FILE__, line, func);
    }
}

/* A bounded FIFO of slots (its capacity fixed at creation); guarded by the pipe's mutex. */
struct slot_queue {
    struct slot **ring;
    int cap, head, n;
    pthread_cond_t not_empty, not_full;
    bool conds;                 /* both condition variables initialised */
};

struct pipe {
    struct chunk_run *r;
    struct vf_chunk_result *res;
    pthread_mutex_t m;
    bool mutex;                 /* m initialised */
    struct slot_queue free_q;   /* empty slots (capacity: all of them) */
    struct slot_queue decoded;  /* decode ▶ infer (job->queue) */
    struct slot_queue inferred; /* infer ▶ encode (job->queue) */
    /* The first failure (an error or a stop seen by any stage) wins; every wait wakes on it. */
    bool failed;
    int64_t fail_frame;
    struct vf_error fail_err;
    int64_t infer_next;         /* the frame the calling thread colorizes next (its own) */
};

static int pt_error(struct vf_error *err, int e, const char *what)
{
    return vf_error_set(err, e == ENOMEM || e == EAGAIN ? VF_ENOMEM : VF_EINTERNAL, "%s: %s", what,
                        strerror(e));
}

static int queue_init(struct slot_queue *q, int cap, struct vf_error *err)
{
    q->ring = vf_calloc((size_t)cap, sizeof *q->ring, err);
    if (!q->ring)
        return VF_ENOMEM;
    q->cap = cap;
    int e = pthread_cond_init(&q->not_empty, NULL);
    if (e)
        return pt_error(err, e, "pthread_cond_init");
    if ((e = pthread_cond_init(&q->not_full, NULL))) {
        PT_CHECK(pthread_cond_destroy(&q->not_empty));
        return pt_error(err, e, "pthread_cond_init");
    }
    q->conds = true;
    return VF_OK;
}

static void queue_destroy(struct slot_queue *q)
{
    if (q->conds) {
        PT_CHECK(pthread_cond_destroy(&q->not_empty));
        PT_CHECK(pthread_cond_destroy(&q->not_full));
    }
    free(q->ring);
    memset(q, 0, sizeof *q);
}

static void pipe_destroy(struct pipe *p)
{
    queue_destroy(&p->free_q);
    queue_destroy(&p->decoded);
    queue_destroy(&p->inferred);
    if (p->mutex)
        PT_CHECK(pthread_mutex_destroy(&p->m));
    p->mutex = false;
}

static int pipe_init(struct pipe *p, struct chunk_run *r, struct vf_chunk_result *res,
                     struct vf_error *err)
{
    memset(p, 0, sizeof *p);
    p->r = r;
    p->res = res;
    p->fail_frame = -1;
    p->infer_next = r->ch->warm_start;
    int e = pthread_mutex_init(&p->m, NULL), rc;
    if (e)
        return pt_error(err, e, "pthread_mutex_init");
    p->mutex = true;
    if ((rc = queue_init(&p->free_q, r->n_slots, err)) < 0 ||
        (rc = queue_init(&p->decoded, r->job->queue, err)) < 0 ||
        (rc = queue_init(&p->inferred, r->job->queue, err)) < 0)
        return rc;
    for (int i = 0; i < r->n_slots; i++)
        p->free_q.ring[p->free_q.n++] = &r->slots[i];
    return VF_OK;
}

/* Record failure rc (< 0, described by e) at `frame` (-1: none) unless one is already recorded,
 * and wake every wait. With `over_stop` a real error replaces a recorded interruption (the
 * reference stage: an interrupted chunk promises that the colorizer holds its reference). */
static void pipe_fail(struct pipe *p, int64_t frame, int rc, const struct vf_error *e,
                      bool over_stop)
{
    VF_ASSERT(rc < 0);
    PT_CHECK(pthread_mutex_lock(&p->m));
    if (!p->failed || (over_stop && p->fail_err.code == VF_EINTERRUPTED)) {
        p->failed = true;
        p->fail_frame = frame;
        p->fail_err = *e;
        p->fail_err.code = rc;
    }
    struct slot_queue *qs[] = {&p->free_q, &p->decoded, &p->inferred};
    for (int k = 0; k < 3; k++) {
        PT_CHECK(pthread_cond_broadcast(&qs[k]->not_empty));
        PT_CHECK(pthread_cond_broadcast(&qs[k]->not_full));
    }
    PT_CHECK(pthread_mutex_unlock(&p->m));
}

/* Append s, waiting for room; false (s not appended) once the pipeline has failed. */
static bool queue_push(struct pipe *p, struct slot_queue *q, struct slot *s)
{
    PT_CHECK(pthread_mutex_lock(&p->m));
    while (q->n == q->cap && !p->failed)
        PT_CHECK(pthread_cond_wait(&q->not_full, &p->m));
    bool ok = !p->failed;
    if (ok) {
        q->ring[(q->head + q->n) % q->cap] = s;
        q->n++;
        PT_CHECK(pthread_cond_signal(&q->not_empty));
    }
    PT_CHECK(pthread_mutex_unlock(&p->m));
    return ok;
}

/* Take the oldest slot, waiting for one; NULL once the pipeline has failed. */
static struct slot *queue_pop(struct pipe *p, struct slot_queue *q)
{
    struct slot *s = NULL;
    PT_CHECK(pthread_mutex_lock(&p->m));
    while (q->n == 0 && !p->failed)
        PT_CHECK(pthread_cond_wait(&q->not_empty, &p->m));
    if (!p->failed) {
        s = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        PT_CHECK(pthread_cond_signal(&q->not_full));
    }
    PT_CHECK(pthread_mutex_unlock(&p->m));
    return s;
}

static void *decode_main(void *arg)
{
    struct pipe *p = arg;
    struct chunk_run *r = p->r;
    struct vf_error err;
    vf_error_clear(&err);
    int rc = decode_open(r, &err);
    if (rc < 0) {
        pipe_fail(p, -1, rc, &err, false);
        return NULL;
    }
    for (int64_t i = r->ch->warm_start; i < r->ch->end; i++) {
        if (stop_requested(r)) {
            pipe_fail(p, i, interrupted(&err), &err, false);
            return NULL;
        }
        struct slot *s = queue_pop(p, &p->free_q);
        if (!s)
            return NULL;
        if ((rc = decode_frame(r, i, s, &err)) < 0) {
            pipe_fail(p, i, rc, &err, false);
            return NULL;
        }
        if (!queue_push(p, &p->decoded, s))
            return NULL;
    }
    return NULL;
}

static void *encode_main(void *arg)
{
    struct pipe *p = arg;
    struct chunk_run *r = p->r;
    struct vf_error err;
    vf_error_clear(&err);
    int rc;
    for (int64_t i = r->ch->start; i < r->ch->end; i++) {
        if (stop_requested(r)) {
            pipe_fail(p, i, interrupted(&err), &err, false);
            return NULL;
        }
        struct slot *s = queue_pop(p, &p->inferred);
        if (!s)
            return NULL;
        VF_ASSERT(s->index == i);
        if ((rc = encode_frame(r, s, &err)) < 0) {
            pipe_fail(p, i, rc, &err, false);
            return NULL;
        }
        if (!queue_push(p, &p->free_q, s))
            return NULL;
    }
    /* nothing can fail after the last kept frame has been colorized, so a segment renamed into
     * place here is always the call's success */
    rc = stop_requested(r) ? interrupted(&err) : encode_close(r, &err);
    if (rc < 0)
        pipe_fail(p, -1, rc, &err, false);
    return NULL;
}

/* The calling thread's part: infer, between the queues. */
static void infer_loop(struct pipe *p)
{
    struct chunk_run *r = p->r;
    struct vf_error err;
    vf_error_clear(&err);
    int rc = infer_begin(r, &err);
    if (rc < 0) {
        pipe_fail(p, -1, rc, &err, true);
        return;
    }
    for (int64_t i = r->ch->warm_start; i < r->ch->end; i++) {
        p->infer_next = i;
        if (stop_requested(r)) {
            pipe_fail(p, i, interrupted(&err), &err, false);
            return;
        }
        struct slot *s = queue_pop(p, &p->decoded);
        if (!s)
            return;
        VF_ASSERT(s->index == i);
        int keep = infer_frame(r, s, p->res, &err);
        if (keep < 0) {
            pipe_fail(p, i, keep, &err, false);
            return;
        }
        report_progress(r, i);
        if (!queue_push(p, keep ? &p->inferred : &p->free_q, s))
            return;
    }
    p->infer_next = r->ch->end;
}

static int run_threaded(struct chunk_run *r, struct vf_chunk_result *res, struct vf_error *err)
{
    struct pipe p;
    pthread_t dec_thread, enc_thread;
    bool have_dec = false, have_enc = false;
    int rc = pipe_init(&p, r, res, err), e;
    if (rc < 0)
        goto out;
    if ((e = pthread_create(&dec_thread, NULL, decode_main, &p))) {
        rc = pt_error(err, e, "starting the decode thread");
        goto out;
    }
    have_dec = true;
    if ((e = pthread_create(&enc_thread, NULL, encode_main, &p))) {
        struct vf_error pe;
        pipe_fail(&p, -1, pt_error(&pe, e, "starting the encode thread"), &pe, true);
    } else {
        have_enc = true;
        infer_loop(&p);
    }
    /* a thread that cannot be joined may still be using the chunk's buffers: abort */
    if (have_dec)
        PT_CHECK(pthread_join(dec_thread, NULL));
    if (have_enc)
        PT_CHECK(pthread_join(enc_thread, NULL));
    rc = VF_OK;
    if (p.failed) { /* the threads are gone: no lock needed */
        *err = p.fail_err;
        r->frame = p.fail_frame;
        rc = p.fail_err.code;
        /* whichever thread saw the stop first, it is reported where the network stopped, as
         * without threads: at the frame it did not colorize, none after the last */
        if (rc == VF_EINTERRUPTED)
            r->frame = p.infer_next < r->ch->end ? p.infer_next : -1;
    }
out:
    pipe_destroy(&p);
    return rc;
}

/* ---- the chunk ---------------------------------------------------------------------------- */

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
    if (job->queue < 0 || job->queue > VF_NODE_MAX_QUEUE)
        return vf_error_set(err, VF_EINVAL, "vf_node_colorize_chunk: queue %d is not in 0..%d",
                            job->queue, VF_NODE_MAX_QUEUE);
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
    const long passthrough0 = vf_colorizer_times(job->colorizer)->passthrough;
    struct chunk_run r = {.job = job, .ch = ch, .info = info, .frame = -1};
    int64_t n_warm = ch->start - ch->warm_start;
    size_t ab_n = (size_t)2 * job->h * job->w;
    int rc;
    double t = vf_now();
    rc = vf_shard_segment_open(&r.wr, job->segment, info, job->encode, err);
    r.t_encode += vf_now() - t;
    if (rc < 0 || (rc = setup(&r, err)) < 0) /* setup: in the writer's pixel format */
        goto fail;
    res->last_ab = vf_calloc(ab_n, sizeof(float), err);
    if (n_warm > 0)
        res->warm_ab = vf_calloc(ab_n, sizeof(float), err);
    if (!res->last_ab || (n_warm > 0 && !res->warm_ab)) {
        rc = VF_ENOMEM;
        goto fail;
    }
    rc = job->queue > 0 ? run_threaded(&r, res, err) : run_serial(&r, res, err);
    if (rc < 0)
        goto fail;
    memcpy(res->checksum, r.checksum, sizeof res->checksum);
    res->frames_decoded = r.n_decoded;
    res->frames_kept = r.n_kept;
    res->frames_passthrough = vf_colorizer_times(job->colorizer)->passthrough - passthrough0;
    res->t_decode = r.t_decode;
    res->t_infer = r.t_infer;
    res->t_encode = r.t_encode;
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
