/*
 * shard/shots.c: scene-cut detection over the luma signal (shard.h "shots"; docs/SHOTS.md).
 *
 * Every frame is decoded (luma only) and reduced to two small signatures: a GRID_W x GRID_H
 * grid of box-averaged luma and a HIST_BINS-bin luma histogram, both in [0, 1] whatever the
 * bit depth. Between two frames i and j:
 *
 *   block(i,j) = mean over cells of |grid(j) - grid(i)|       (layout: what is where)
 *   hist(i,j)  = 1/2 sum over bins of |hist(j) - hist(i)|      (tones: what is there)
 *   diff(i,j)  = (block / BLOCK_SCALE + hist / HIST_SCALE) / 2  (~1 or more at a cut)
 *
 * The change at frame t must hold from t-1 to t, from t-1 to t+1 and from t-2 to t, so a single
 * odd frame (a flash, a damaged frame) between two like frames is not a cut:
 *
 *   d(t) = min(diff(t-1,t), diff(t-1,t+1), diff(t-2,t))        (terms past either end dropped)
 *
 * A cut is a change that stands out from the frames around it (the adaptive part, after
 * PySceneDetect's AdaptiveDetector): the baseline is the largest of the medians of d over the
 * WINDOW frames before and the WINDOW frames after, and d(t+1), so that the onset of a fast camera
 * move (a step in d, not a spike) is not a cut; then
 *
 *   score(t) = clamp((d(t) - baseline(t)) / (1 + baseline(t)), 0, 1)
 *
 * Cuts are the frames whose score exceeds the threshold, strongest first, keeping only those at
 * least min_length frames from frame 0 and from every cut already kept.
 *
 * No allocation per frame: the signatures of two frames and the per-frame d values are
 * allocated once, when the first frame's size is known.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shard/internal.h"

#define GRID_W 64       /* grid cells across (fewer when the frame is narrower) */
#define GRID_H 36       /* grid cells down */
#define HIST_BINS 32    /* luma histogram bins */
#define WINDOW 6        /* frames each side of t for the local baseline */
#define BLOCK_SCALE 0.10 /* block difference that counts as a full change (luma 0..1) */
#define HIST_SCALE 0.35  /* histogram difference that counts as a full change */

static const struct vf_log_ctx log_ctx = {.module = "shots", .rank = -1, .chunk = -1};

/* One frame's signature. */
struct signature {
    float grid[GRID_W * GRID_H];
    float hist[HIST_BINS];
};

/* Fixed per film: how pixels map to grid cells. */
struct grid_map {
    int width, height, bits;
    int gw, gh;
    int *cell_x;               /* width entries: the grid column of pixel column x */
    int *cell_y;               /* height entries: the grid row of pixel row y */
    double *inv_count;         /* gw * gh: 1 / (pixels in the cell * max sample value) */
    uint64_t *acc;             /* gw * gh accumulators */
};

static void grid_map_free(struct grid_map *m)
{
    free(m->cell_x);
    free(m->cell_y);
    free(m->inv_count);
    free(m->acc);
    memset(m, 0, sizeof *m);
}

static int grid_map_init(struct grid_map *m, const struct vf_frame *f, struct vf_error *err)
{
    m->width = f->width;
    m->height = f->height;
    m->bits = f->luma_bits;
    m->gw = f->width < GRID_W ? f->width : GRID_W;
    m->gh = f->height < GRID_H ? f->height : GRID_H;
    m->cell_x = vf_calloc((size_t)f->width, sizeof *m->cell_x, err);
    m->cell_y = vf_calloc((size_t)f->height, sizeof *m->cell_y, err);
    m->inv_count = vf_calloc((size_t)(m->gw * m->gh), sizeof *m->inv_count, err);
    m->acc = vf_calloc((size_t)(m->gw * m->gh), sizeof *m->acc, err);
    if (!m->cell_x || !m->cell_y || !m->inv_count || !m->acc)
        return VF_ENOMEM;
    for (int x = 0; x < f->width; x++)
        m->cell_x[x] = (int)((int64_t)x * m->gw / f->width);
    for (int y = 0; y < f->height; y++)
        m->cell_y[y] = (int)((int64_t)y * m->gh / f->height);
    const double maxv = (double)((1 << m->bits) - 1);
    for (int cy = 0; cy < m->gh; cy++)
        for (int cx = 0; cx < m->gw; cx++) {
            /* pixels in the cell: rows with cell_y == cy times columns with cell_x == cx */
            int64_t x0 = ((int64_t)cx * f->width + m->gw - 1) / m->gw;
            int64_t x1 = ((int64_t)(cx + 1) * f->width + m->gw - 1) / m->gw;
            int64_t y0 = ((int64_t)cy * f->height + m->gh - 1) / m->gh;
            int64_t y1 = ((int64_t)(cy + 1) * f->height + m->gh - 1) / m->gh;
            m->inv_count[cy * m->gw + cx] = 1.0 / ((double)((x1 - x0) * (y1 - y0)) * maxv);
        }
    return 0;
}

/* Reduce one frame's luma to its signature. */
static void signature_of(struct signature *s, struct grid_map *m, const struct vf_frame *f)
{
    uint64_t hist[HIST_BINS] = {0};
    const int shift = m->bits; /* bin = v * HIST_BINS >> bits */
    memset(m->acc, 0, (size_t)(m->gw * m->gh) * sizeof *m->acc);
    for (int y = 0; y < f->height; y++) {
        const uint8_t *row = f->luma + (size_t)y * (size_t)f->luma_stride;
        uint64_t *acc = m->acc + (size_t)m->cell_y[y] * (size_t)m->gw;
        if (m->bits <= 8) {
            for (int x = 0; x < f->width; x++) {
                unsigned v = row[x];
                acc[m->cell_x[x]] += v;
                hist[(v * HIST_BINS) >> shift]++;
            }
        } else {
            const uint16_t *r16 = (const uint16_t *)row;
            const unsigned maxv = (1u << m->bits) - 1;
            for (int x = 0; x < f->width; x++) {
                unsigned v = r16[x] > maxv ? maxv : r16[x];
                acc[m->cell_x[x]] += v;
                hist[(v * HIST_BINS) >> shift]++;
            }
        }
    }
    for (int i = 0; i < m->gw * m->gh; i++)
        s->grid[i] = (float)((double)m->acc[i] * m->inv_count[i]);
    const double inv_n = 1.0 / ((double)f->width * f->height);
    for (int b = 0; b < HIST_BINS; b++)
        s->hist[b] = (float)((double)hist[b] * inv_n);
}

/* diff(a, b) between two signatures, and its two parts for debugging. */
static double diff_of(const struct signature *a, const struct signature *b, int cells,
                      double *block, double *hist)
{
    double sb = 0, sh = 0;
    for (int i = 0; i < cells; i++)
        sb += fabs((double)a->grid[i] - b->grid[i]);
    for (int i = 0; i < HIST_BINS; i++)
        sh += fabs((double)a->hist[i] - b->hist[i]);
    *block = sb / cells;
    *hist = 0.5 * sh;
    return 0.5 * (*block / BLOCK_SCALE + *hist / HIST_SCALE);
}

/* Median of n values (n <= WINDOW), sorting a copy. */
static double median(const double *v, int n)
{
    double t[WINDOW];
    if (n <= 0)
        return 0.0;
    memcpy(t, v, (size_t)n * sizeof *t);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* d(t) from diff1[t] = diff(t-1,t) and diff2[t] = diff(t-2,t), for t in [1, n). */
static void changes_of(const double *diff1, const double *diff2, int64_t n, double *d)
{
    d[0] = 0.0;
    for (int64_t t = 1; t < n; t++) {
        double v = diff1[t];
        if (t + 1 < n && diff2[t + 1] < v)
            v = diff2[t + 1];
        if (t >= 2 && diff2[t] < v)
            v = diff2[t];
        d[t] = v;
    }
}

/* score(t) from the changes d[1..n-1] (d[0] is unused). */
static void scores_of(const double *d, int64_t n, double *score)
{
    score[0] = 0.0;
    for (int64_t t = 1; t < n; t++) {
        int64_t b0 = t - WINDOW < 1 ? 1 : t - WINDOW;
        int64_t a1 = t + WINDOW >= n ? n - 1 : t + WINDOW;
        double mb = median(d + b0, (int)(t - b0));
        double ma = median(d + t + 1, (int)(a1 - t));
        double base = mb > ma ? mb : ma;
        if (t + 1 < n && d[t + 1] > base)
            base = d[t + 1];
        double s = (d[t] - base) / (1.0 + base);
        score[t] = s < 0 ? 0 : s > 1 ? 1 : s;
    }
}

struct candidate {
    int64_t frame;
    double score;
};

static int cmp_candidate(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->frame < y->frame ? -1 : x->frame > y->frame;
}

/* Frames with score > threshold, strongest first, each kept only at least min_length frames
 * from frame 0 and from every cut already kept; returned ascending.
 * The conflict test is O(1): frames are put in buckets of w = max(min_length, 1) frames, and
 * a bucket holds at most one kept cut (two cuts in one bucket are closer than min_length). A
 * kept cut closer than min_length to f lies in f's bucket or a neighbour, so three look-ups
 * decide; the whole pick is O(candidates log candidates) for the sort plus O(frames / w)
 * memory, whatever the threshold. */
static int pick_cuts(const double *score, int64_t n, double threshold, int64_t min_length,
                     int64_t **cuts, size_t *n_cuts, struct vf_error *err)
{
    size_t nc = 0;
    for (int64_t t = 1; t < n; t++)
        nc += score[t] > threshold;
    const int64_t w = min_length > 1 ? min_length : 1;
    const size_t n_buckets = (size_t)(n / w) + 1;
    struct candidate *cand = vf_calloc(nc, sizeof *cand, err);
    int64_t *kept = vf_calloc(nc, sizeof *kept, err);
    int64_t *bucket = vf_calloc(n_buckets, sizeof *bucket, err); /* kept cut, or 0: none */
    if (!cand || !kept || !bucket) {
        free(cand);
        free(kept);
        free(bucket);
        return VF_ENOMEM;
    }
    nc = 0;
    for (int64_t t = 1; t < n; t++)
        if (score[t] > threshold)
            cand[nc++] = (struct candidate){t, score[t]};
    qsort(cand, nc, sizeof *cand, cmp_candidate);
    for (size_t i = 0; i < nc; i++) {
        int64_t f = cand[i].frame; /* 1 <= f < n: 0 never holds a cut */
        size_t b = (size_t)(f / w);
        bool ok = f >= min_length;
        for (size_t j = b > 0 ? b - 1 : 0; ok && j <= b + 1 && j < n_buckets; j++)
            ok = bucket[j] == 0 || llabs(f - bucket[j]) >= min_length;
        if (ok)
            bucket[b] = f;
        else
            vf_log(&log_ctx, VF_LOG_DEBUG, "frame %" PRId64 ": score %.3f dropped (min_length %" PRId64 ")",
                   f, cand[i].score, min_length);
    }
    size_t nk = 0;
    for (size_t j = 0; j < n_buckets; j++) /* ascending */
        if (bucket[j])
            kept[nk++] = bucket[j];
    free(bucket);
    free(cand);
    *cuts = kept;
    *n_cuts = nk;
    return 0;
}

int vf_shard_detect_cuts(const struct vf_media_info *info, const struct vf_shot_params *params,
                         int64_t **cuts, size_t *n_cuts, double **scores, struct vf_error *err)
{
    VF_ASSERT(info && params && cuts && n_cuts);
    *cuts = NULL;
    *n_cuts = 0;
    if (scores)
        *scores = NULL;
    if (!(params->threshold > 0 && params->threshold <= 1))
        return vf_error_set(err, VF_EINVAL,
                            "shots.threshold is %g: it must be in (0, 1] (0.3 is a good start; "
                            "higher finds fewer cuts)",
                            params->threshold);
    const int64_t n = info->frames;
    const int64_t min_length = params->min_length > 1 ? params->min_length : 1;
    struct vf_decoder *dec = NULL;
    struct grid_map map = {0};
    struct signature *sig = NULL; /* three: frames t-2, t-1 and t, at index t % 3 */
    double *diff1 = NULL, *diff2 = NULL, *d = NULL, *score = NULL;
    int64_t t = 0;
    int rc;

    diff1 = vf_calloc((size_t)n, sizeof *diff1, err);
    diff2 = vf_calloc((size_t)n, sizeof *diff2, err);
    d = vf_calloc((size_t)n, sizeof *d, err);
    score = vf_calloc((size_t)n, sizeof *score, err);
    sig = vf_calloc(3, sizeof *sig, err);
    if (!diff1 || !diff2 || !d || !score || !sig) {
        rc = VF_ENOMEM;
        goto out;
    }
    rc = vf_shard_decoder_create(&dec, info, VF_DECODE_LUMA, err);
    if (rc < 0)
        goto out;
    double t0 = vf_now();
    struct vf_frame f;
    while ((rc = vf_shard_decoder_read(dec, &f, err)) == 1) {
        if (t >= n) {
            rc = vf_error_set(err, VF_EMEDIA,
                              "decoding gave more frames than the %" PRId64 " the probe counted", n);
            goto out;
        }
        if (t == 0) {
            rc = grid_map_init(&map, &f, err);
            if (rc < 0)
                goto out;
        } else if (f.width != map.width || f.height != map.height || f.luma_bits != map.bits) {
            rc = vf_error_set(err, VF_EUNSUPPORTED,
                              "frame %" PRId64 " is %dx%d (%d-bit) where frame 0 was %dx%d (%d-bit): "
                              "films whose frame size changes are not supported",
                              t, f.width, f.height, f.luma_bits, map.width, map.height, map.bits);
            goto out;
        }
        struct signature *cur = &sig[t % 3];
        signature_of(cur, &map, &f);
        const int cells = map.gw * map.gh;
        if (t >= 1) {
            double block, hist, b2 = 0, h2 = 0;
            diff1[t] = diff_of(&sig[(t - 1) % 3], cur, cells, &block, &hist);
            if (t >= 2)
                diff2[t] = diff_of(&sig[(t - 2) % 3], cur, cells, &b2, &h2);
            vf_log(&log_ctx, VF_LOG_DEBUG,
                   "frame %" PRId64 ": block %.4f hist %.4f diff %.3f, from t-2: block %.4f hist %.4f diff %.3f",
                   t, block, hist, diff1[t], b2, h2, diff2[t]);
        }
        t++;
    }
    if (rc < 0)
        goto out;
    if (t != n) {
        rc = vf_error_set(err, VF_EMEDIA,
                          "decoding gave %" PRId64 " frames where the probe counted %" PRId64
                          ": the file may be damaged",
                          t, n);
        goto out;
    }
    changes_of(diff1, diff2, n, d);
    scores_of(d, n, score);
    rc = pick_cuts(score, n, params->threshold, min_length, cuts, n_cuts, err);
    if (rc < 0)
        goto out;
    vf_log(&log_ctx, VF_LOG_VERBOSE,
           "%" PRId64 " frames in %.1f s: %zu cut(s) at threshold %.2f, min_length %" PRId64, n,
           vf_now() - t0, *n_cuts, params->threshold, min_length);
    if (scores) {
        *scores = score;
        score = NULL;
    }
out:
    if (rc < 0)
        vf_error_prefix(err, "%s: shot detection at frame %" PRId64, info->path, t);
    vf_shard_decoder_destroy(&dec);
    grid_map_free(&map);
    free(sig);
    free(diff1);
    free(diff2);
    free(d);
    free(score);
    return rc < 0 ? rc : 0;
}
