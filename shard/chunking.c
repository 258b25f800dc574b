/*
 * shard/chunking.c: the model of the farm's schedule, the least makespan any cutting could
 * reach, and chunks.length: auto, which cuts the shots for a rank count (docs/PLAN.md, "Auto
 * chunking" and "Simulated schedule").
 *
 * Costs are frames of work: a piece keeping k frames costs k, plus min(W, its offset in the
 * shot) warm-up frames when it is not the shot's first piece (the warm-up never reaches back
 * past the shot's start; plan.c's rule).
 *
 * Everything here is integer arithmetic with fixed tie-breaks, so the same shots, warm-up and
 * rank count always give the same pieces.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "shard/internal.h"

/* Longest piece auto chunking keeps in one chunk: what a rank that fails or is preempted can
 * lose, and what progress and resume are counted in. The larger of this and 100 warm-ups,
 * so the warm-up the cap adds is at most 1% of the work. */
#define AUTO_MAX_KEPT 2400
/* Target loads tried: T_k = B + max(k, B k / AUTO_STEP_DIV) for k = 0 .. AUTO_STEPS, B the
 * bound: every frame above B for small B, steps of 0.2% of B up to +8% for large B. */
#define AUTO_STEPS 40
#define AUTO_STEP_DIV 500

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- the schedule ------------------------------------------------------------------------- */

static int cmp_cost_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The coordinator hands out chunks longest first (ties by id, which cannot change the
 * makespan: equal costs are interchangeable), each to a rank that is idle; with equal ranks
 * the rank idle first is the root of a min-heap of finish times. */
int64_t vf_shard_makespan_(int64_t *cost, size_t n, int64_t ranks)
{
    if (n == 0)
        return 0;
    const size_t r = ranks < (int64_t)n ? (size_t)ranks : n;
    int64_t *heap = calloc(r, sizeof *heap);
    if (!heap)
        return -1;
    qsort(cost, n, sizeof *cost, cmp_cost_desc);
    for (size_t i = 0; i < n; i++) {
        int64_t v = heap[0] + cost[i];
        size_t at = 0; /* sift the root's new finish time down */
        for (;;) {
            size_t l = 2 * at + 1, m = at;
            int64_t mv = v;
            if (l < r && heap[l] < mv)
                m = l, mv = heap[l];
            if (l + 1 < r && heap[l + 1] < mv)
                m = l + 1;
            if (m == at)
                break;
            heap[at] = heap[m];
            at = m;
        }
        heap[at] = v;
    }
    int64_t makespan = 0;
    for (size_t i = 0; i < r; i++)
        makespan = max64(makespan, heap[i]);
    free(heap);
    return makespan;
}

/* ---- the bound ---------------------------------------------------------------------------- */

/* Work of the shots when no piece may cost more than T, with the fewest cuts, or -1 when some
 * shot cannot be cut that way. A non-first piece whose offset is at most W starts its warm-up
 * at the shot's start, so it costs as much as everything before it too: merging it with the
 * pieces before it removes cuts and work. So the least work has every cut more than W frames
 * into its shot, each costing a full W, and the fewest cuts: a first piece of T kept frames,
 * then pieces of T - W. A shot longer than T cannot be cut at all when T <= W. Saturates at
 * `limit` (the caller compares with T x ranks). */
static int64_t least_work(const int64_t *len, size_t n, int64_t W, int64_t T, int64_t limit)
{
    int64_t work = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t L = len[i];
        work += L; /* frames <= 2^40 (config) */
        if (L <= T)
            continue;
        if (T <= W)
            return -1;
        int64_t cuts = (L - T) / (T - W) + ((L - T) % (T - W) != 0);
        if (W > 0 && cuts > (limit - work) / W)
            return limit;
        work += W * cuts;
        if (work >= limit)
            return limit;
    }
    return work;
}

int64_t vf_shard_bound_(const int64_t *len, size_t n, int64_t W, int64_t ranks)
{
    if (ranks < 1)
        return -1;
    if (n == 0)
        return 0;
    int64_t frames = 0, longest = 0;
    for (size_t i = 0; i < n; i++) {
        frames += len[i];
        longest = max64(longest, len[i]);
    }
    /* Some piece costs at least min(longest, W + 1): a shot longer than W + 1 needs a piece
     * of W + 1 or more (see least_work). hi is always feasible: no cuts, frames / ranks. */
    int64_t lo = max64(1, min64(longest, W + 1));
    int64_t hi = max64(longest, frames / ranks + (frames % ranks != 0));
    while (lo < hi) { /* T x ranks >= least_work(T) is monotone in T */
        int64_t T = lo + (hi - lo) / 2;
        int64_t cap = T > INT64_MAX / ranks ? INT64_MAX : T * ranks;
        int64_t w = least_work(len, n, W, T, INT64_MAX / 2);
        if (w >= 0 && w <= cap)
            hi = T;
        else
            lo = T + 1;
    }
    return lo;
}

int64_t vf_shard_plan_bound(const struct vf_plan *plan, int ranks)
{
    if (!plan || ranks < 1)
        return -1;
    int64_t *len = malloc((plan->n_shots ? plan->n_shots : 1) * sizeof *len);
    if (!len)
        return -1;
    for (size_t i = 0; i < plan->n_shots; i++)
        len[i] = plan->shots[i].end - plan->shots[i].start;
    int64_t b = vf_shard_bound_(len, plan->n_shots, plan->warmup, ranks);
    free(len);
    return b;
}

/* ---- auto chunking ------------------------------------------------------------------------ */

/* What is left of a shot to place: its next piece starts `off` frames in. */
struct item {
    int64_t cost; /* rem + its warm-up: what placing the rest whole costs */
    int64_t rem, off;
    size_t shot;
};

struct rank_load {
    int64_t load;
    int64_t rank;
};

/* max-heap of items: larger cost first, then lower shot index */
static bool item_before(const struct item *a, const struct item *b)
{
    return a->cost != b->cost ? a->cost > b->cost : a->shot < b->shot;
}

static void item_push(struct item *h, size_t *n, struct item x)
{
    size_t at = (*n)++;
    while (at > 0 && item_before(&x, &h[(at - 1) / 2])) {
        h[at] = h[(at - 1) / 2];
        at = (at - 1) / 2;
    }
    h[at] = x;
}

static struct item item_pop(struct item *h, size_t *n)
{
    struct item top = h[0], x = h[--(*n)];
    size_t at = 0;
    for (;;) {
        size_t l = 2 * at + 1, m = at;
        const struct item *mv = &x;
        if (l < *n && item_before(&h[l], mv))
            m = l, mv = &h[l];
        if (l + 1 < *n && item_before(&h[l + 1], mv))
            m = l + 1;
        if (m == at)
            break;
        h[at] = h[m];
        at = m;
    }
    if (*n)
        h[at] = x;
    return top;
}

/* min-heap of ranks: lower load first, then lower rank */
static bool rank_before(const struct rank_load *a, const struct rank_load *b)
{
    return a->load != b->load ? a->load < b->load : a->rank < b->rank;
}

static void rank_sift_down(struct rank_load *h, size_t n, size_t at)
{
    struct rank_load x = h[at];
    for (;;) {
        size_t l = 2 * at + 1, m = at;
        const struct rank_load *mv = &x;
        if (l < n && rank_before(&h[l], mv))
            m = l, mv = &h[l];
        if (l + 1 < n && rank_before(&h[l + 1], mv))
            m = l + 1;
        if (m == at)
            break;
        h[at] = h[m];
        at = m;
    }
    h[at] = x;
}

static void rank_pop(struct rank_load *h, size_t *n)
{
    h[0] = h[--(*n)];
    if (*n)
        rank_sift_down(h, *n, 0);
}

/* Growing arrays of pieces. */
struct pieces {
    struct vf_piece_ *p;
    size_t n, cap;
};

static bool piece_add(struct pieces *ps, size_t shot, int64_t off, int64_t kept)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 1024;
        struct vf_piece_ *p = realloc(ps->p, cap * sizeof *p);
        if (!p)
            return false;
        ps->p = p;
        ps->cap = cap;
    }
    ps->p[ps->n++] = (struct vf_piece_){shot, off, kept};
    return true;
}

static int cmp_piece(const void *a, const void *b)
{
    const struct vf_piece_ *x = a, *y = b;
    if (x->shot != y->shot)
        return x->shot < y->shot ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int64_t warm_of(int64_t off, int64_t W) { return off > 0 ? min64(W, off) : 0; }

/* Scratch space for one cutting, reused across the target loads tried. */
struct scratch {
    struct item *items;       /* n shots at most */
    struct rank_load *open;   /* ranks that can still take a piece */
    struct rank_load *closed; /* ranks filled to T (or within a warm-up of it) */
    int64_t *cost;
    size_t cap_cost;
};

/* Cut the shots for target load T: longest-first list scheduling on `ranks` ranks that cuts
 * an item to fill the least-loaded rank exactly to T when the item does not fit whole. The
 * cut-off rest (now with a warm-up) goes back to the queue. A rank whose room is within the
 * item's warm-up is closed; when every rank is closed, the rest is placed whole, longest first
 * on the least loaded (T was too small). Then pieces longer than the cap are split evenly.
 * Fills `out` in film order. */
static bool cut_for(const int64_t *len, size_t n, int64_t W, int64_t ranks, int64_t T,
                    int64_t max_kept, struct scratch *s, struct pieces *out)
{
    out->n = 0;
    size_t n_items = 0, n_open = (size_t)ranks, n_closed = 0;
    for (size_t i = 0; i < n; i++)
        item_push(s->items, &n_items, (struct item){len[i], len[i], 0, i});
    for (size_t r = 0; r < n_open; r++) /* all loads 0, ascending ranks: a heap */
        s->open[r] = (struct rank_load){0, (int64_t)r};
    bool overflow = false;
    while (n_items) {
        struct item it = item_pop(s->items, &n_items);
        for (;;) {
            if (n_open == 0) { /* every rank is full: T was too small; place the rest whole */
                memcpy(s->open, s->closed, n_closed * sizeof *s->closed);
                n_open = n_closed;
                n_closed = 0;
                for (size_t k = n_open / 2; k-- > 0;)
                    rank_sift_down(s->open, n_open, k);
                overflow = true;
            }
            struct rank_load *top = &s->open[0];
            int64_t room = T - top->load;
            if (overflow || it.cost <= room) {
                if (!piece_add(out, it.shot, it.off, it.rem))
                    return false;
                top->load += it.cost;
                rank_sift_down(s->open, n_open, 0);
                break;
            }
            int64_t kept = room - warm_of(it.off, W);
            if (kept >= 1) { /* kept < it.rem since it.cost > room */
                if (!piece_add(out, it.shot, it.off, kept))
                    return false;
                it.rem -= kept;
                it.off += kept;
                it.cost = it.rem + warm_of(it.off, W);
                item_push(s->items, &n_items, it);
                s->closed[n_closed++] = (struct rank_load){T, top->rank};
                rank_pop(s->open, &n_open);
                break;
            }
            s->closed[n_closed++] = *top; /* no room for a piece of this item */
            rank_pop(s->open, &n_open);
        }
    }
    /* the cap, then film order */
    size_t n0 = out->n;
    for (size_t i = 0; i < n0; i++) {
        struct vf_piece_ *p = &out->p[i];
        if (p->kept <= max_kept)
            continue;
        int64_t m = p->kept / max_kept + (p->kept % max_kept != 0);
        int64_t base = p->kept / m, extra = p->kept % m, at = p->off + base + (extra > 0);
        size_t shot = p->shot;
        p->kept = base + (extra > 0);
        for (int64_t c = 1; c < m; c++) {
            int64_t k = base + (c < extra);
            if (!piece_add(out, shot, at, k))
                return false;
            at += k;
        }
    }
    qsort(out->p, out->n, sizeof *out->p, cmp_piece);
    return true;
}

/* Simulated makespan and work of a cutting. */
static bool evaluate(const struct pieces *ps, int64_t W, int64_t ranks, struct scratch *s,
                     int64_t *makespan, int64_t *work)
{
    if (ps->n > s->cap_cost) {
        int64_t *c = realloc(s->cost, ps->n * sizeof *c);
        if (!c)
            return false;
        s->cost = c;
        s->cap_cost = ps->n;
    }
    *work = 0;
    for (size_t i = 0; i < ps->n; i++) {
        s->cost[i] = ps->p[i].kept + warm_of(ps->p[i].off, W);
        *work += s->cost[i];
    }
    *makespan = vf_shard_makespan_(s->cost, ps->n, ranks);
    return *makespan >= 0;
}

int vf_shard_auto_cut_(const int64_t *len, size_t n, int64_t warmup, int64_t ranks,
                       struct vf_piece_ **pieces, size_t *n_pieces, int64_t *target,
                       struct vf_error *err)
{
    VF_ASSERT(ranks >= 1 && warmup >= 0);
    *pieces = NULL;
    *n_pieces = 0;
    *target = 0;
    if (n == 0)
        return 0;
    const int64_t W = warmup, B = vf_shard_bound_(len, n, W, ranks);
    const int64_t max_kept = max64(AUTO_MAX_KEPT, W > (INT64_MAX / 100) ? INT64_MAX : 100 * W);
    struct scratch s = {0};
    struct pieces cur = {0};
    int rc = 0;
    s.items = malloc(n * sizeof *s.items);
    s.open = malloc((size_t)ranks * sizeof *s.open);
    s.closed = malloc((size_t)ranks * sizeof *s.closed);
    if (!s.items || !s.open || !s.closed) {
        rc = vf_error_set(err, VF_ENOMEM, "out of memory planning chunks for %lld ranks",
                          (long long)ranks);
        goto out;
    }
    /* Try target loads from the bound up; keep the least simulated makespan, then the least
     * work, then the lowest target. */
    int64_t best_T = -1, best_m = INT64_MAX, best_w = INT64_MAX;
    for (int64_t k = 0; k <= AUTO_STEPS; k++) {
        int64_t step = B > INT64_MAX / AUTO_STEP_DIV / AUTO_STEPS ? B / AUTO_STEP_DIV * k
                                                                   : B * k / AUTO_STEP_DIV;
        int64_t T = B + max64(k, step), m, w;
        if (!cut_for(len, n, W, ranks, T, max_kept, &s, &cur) ||
            !evaluate(&cur, W, ranks, &s, &m, &w)) {
            rc = vf_error_set(err, VF_ENOMEM, "out of memory planning chunks for %lld ranks",
                              (long long)ranks);
            goto out;
        }
        if (m < best_m || (m == best_m && w < best_w))
            best_T = T, best_m = m, best_w = w;
        if (best_m <= B)
            break; /* nothing can do better */
    }
    if (!cut_for(len, n, W, ranks, best_T, max_kept, &s, &cur)) {
        rc = vf_error_set(err, VF_ENOMEM, "out of memory planning chunks for %lld ranks",
                          (long long)ranks);
        goto out;
    }
    *pieces = cur.p;
    *n_pieces = cur.n;
    *target = best_T;
    cur.p = NULL;
out:
    free(cur.p);
    free(s.items);
    free(s.open);
    free(s.closed);
    free(s.cost);
    return rc;
}
