/*
 * shard/edl.c: CMX3600 EDL import (shard.h "shots"; docs/SHOTS.md, "EDL import").
 *
 * What is read:
 *   TITLE: ...                      ignored
 *   FCM: DROP FRAME | NON-DROP FRAME   the timecode mode of the event lines that follow
 *   * ...                           comments (FROM CLIP NAME, LOC, ...): ignored
 *   001  AX  V  C        00:00:10:00 00:00:15:00 01:00:00:00 01:00:05:00
 *   002  BX  V  D    030 ...        an event: number, reel, track, transition [duration],
 *                                   source in/out, record in/out
 *   M2 ...                          motion effects: ignored with a warning (they change source
 *                                   timing, never record timing)
 * Video events (track V, B, or any track with V in it such as AA/V) make the shots; audio-only
 * events are checked but do not cut. Transitions: C is a cut; D (dissolve) and Wnnn (wipe) are
 * accepted with a warning, the shot boundary being the event's record in (the transition's
 * first frame); K (key) events are refused: a key layers two pictures over each other, which is
 * not a sequence of shots. Zero-length events (the "from" half of a dissolve) are skipped.
 *
 * Record timecodes become frames at the film's rate (24, 25, 30, 50, 60, and the NTSC rates
 * 23.976 and 29.97/59.94, the latter with drop-frame timecode when FCM or a ';' separator says
 * so), relative to the film's own timecode when the probe found one, else to the first video
 * event's record in. Video events must be contiguous and ascending and lie inside the film.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shard/internal.h"

#define EDL_LINE_MAX 4096

static const struct vf_log_ctx log_ctx = {.module = "edl", .rank = -1, .chunk = -1};

/* The film's timecode rate. */
struct tc_rate {
    int nominal; /* frames per timecode second: 24, 25, 30, ... */
    bool ntsc;   /* the real rate is nominal * 1000/1001 */
};

static int rate_of(const struct vf_media_info *info, struct tc_rate *r, struct vf_error *err)
{
    const int num = info->fps_num, den = info->fps_den;
    if (num > 0 && den > 0) {
        if (den == 1001 && num % 1000 == 0) {
            *r = (struct tc_rate){num / 1000, true};
            return 0;
        }
        if (num % den == 0) {
            *r = (struct tc_rate){num / den, false};
            return 0;
        }
        double fps = (double)num / den, ntsc = fps * 1.001;
        if (fabs(ntsc - (double)(int)(ntsc + 0.5)) < 1e-3) {
            *r = (struct tc_rate){(int)(ntsc + 0.5), true};
            return 0;
        }
    }
    return vf_error_set(err, VF_EUNSUPPORTED,
                        "the film's frame rate %d/%d has no SMPTE timecode, so EDL timecodes "
                        "cannot be turned into frames: give the shots as shots.list instead",
                        num, den);
}

/* Parse "HH:MM:SS:FF" (last separator ';', '.' or ',' = drop frame) into frames at `r`.
 * `drop` is the FCM mode in effect; a drop-frame separator also selects drop frame. Returns 0,
 * or VF_EINVAL with the reason in `why`. */
static int parse_timecode(const char *s, struct tc_rate r, bool drop, int64_t *frames, char *why,
                          size_t why_size)
{
    int v[4], sep_drop = 0;
    const char *p = s;
    for (int i = 0; i < 4; i++) {
        if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1])) {
            snprintf(why, why_size, "'%s' is not a timecode HH:MM:SS:FF", s);
            return VF_EINVAL;
        }
        v[i] = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (i < 3) {
            if (*p == ':' || (i == 2 && (*p == ';' || *p == '.' || *p == ','))) {
                sep_drop = *p != ':';
                p++;
            } else {
                snprintf(why, why_size, "'%s' is not a timecode HH:MM:SS:FF", s);
                return VF_EINVAL;
            }
        }
    }
    if (*p) {
        snprintf(why, why_size, "'%s' is not a timecode HH:MM:SS:FF", s);
        return VF_EINVAL;
    }
    drop = drop || sep_drop;
    if (v[1] > 59 || v[2] > 59 || v[3] >= r.nominal) {
        snprintf(why, why_size, "timecode %s is out of range (minutes and seconds < 60, frames < %d)",
                 s, r.nominal);
        return VF_EINVAL;
    }
    int64_t secs = (int64_t)v[0] * 3600 + v[1] * 60 + v[2];
    int64_t f = secs * r.nominal + v[3];
    if (drop) {
        if (!r.ntsc || r.nominal % 30) {
            snprintf(why, why_size,
                     "timecode %s is drop-frame, but drop-frame timecode exists only at 29.97 and "
                     "59.94 fps and this film runs at %s%d fps: use a NON-DROP FRAME EDL",
                     s, r.ntsc ? "NTSC " : "", r.nominal);
            return VF_EINVAL;
        }
        const int d = r.nominal / 15; /* frame numbers dropped per minute: 2 at 29.97, 4 at 59.94 */
        if (v[2] == 0 && v[3] < d && v[1] % 10 != 0) {
            snprintf(why, why_size, "timecode %s does not exist in drop-frame timecode (frames 0..%d "
                     "are skipped at the start of every minute but each tenth)", s, d - 1);
            return VF_EINVAL;
        }
        int64_t minutes = (int64_t)v[0] * 60 + v[1];
        f -= d * (minutes - minutes / 10);
    }
    *frames = f;
    return 0;
}

/* Split a line into whitespace-separated tokens (in place). */
static int tokenize(char *line, char **tok, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == max)
            return max + 1;
        tok[n++] = t;
    }
    return n;
}

/* Whether timecode s counts in drop frame: by FCM (drop) or by its own separator before the
 * frames (HH:MM:SS;FF, also '.' or ','), as parse_timecode reads it. */
static bool tc_is_drop(const char *s, bool drop)
{
    return drop || (strlen(s) == 11 && s[8] != ':');
}

/* Frames in a day of timecode at rate r: 24 h of frames, less the numbers drop frame skips. */
static int64_t day_of(struct tc_rate r, bool drop)
{
    char why[256];
    int64_t day = 0;
    if (parse_timecode("24:00:00:00", r, drop, &day, why, sizeof why) < 0 || day <= 0)
        day = (int64_t)86400 * r.nominal;   /* drop frame at a rate without it: refused anyway */
    return day;
}

/* A video event in record frames (absolute timecode frames). */
struct event {
    int64_t in, out;
    int line;
    char num[16];
};

int vf_shard_edl_load(const char *path, const struct vf_media_info *info, int64_t **cuts,
                      size_t *n_cuts, struct vf_error *err)
{
    VF_ASSERT(path && info && cuts && n_cuts);
    *cuts = NULL;
    *n_cuts = 0;
    struct tc_rate rate = {0};
    int rc = rate_of(info, &rate, err);
    if (rc < 0)
        return vf_error_prefix(err, "%s", path);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        return vf_error_set(err, e == ENOENT ? VF_ENOENT : VF_EIO,
                            "%s: cannot open the EDL: %s; check shots.edl in the film.yaml", path,
                            strerror(e));
    }
    struct event *ev = NULL;
    size_t n_ev = 0, cap_ev = 0;
    int64_t *result = NULL;
    char line[EDL_LINE_MAX];
    char why[256];
    bool drop = false;
    int64_t last_rec_out = 0;   /* the last event's record out, unwrapped past midnight */
    bool any_event = false, first_drop = false;
    int lineno = 0;
    rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            rc = vf_error_set(err, VF_EINVAL, "%s:%d: line longer than %d bytes: is this an EDL?",
                              path, lineno, EDL_LINE_MAX - 2);
            goto out;
        }
        while (len && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (lineno == 1 && (unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb &&
            (unsigned char)s[2] == 0xbf)
            s += 3; /* UTF-8 byte order mark */
        if (!*s || *s == '*' || strncasecmp(s, "TITLE:", 6) == 0)
            continue;
        if (strncasecmp(s, "FCM:", 4) == 0) {
            const char *m = s + 4;
            while (isspace((unsigned char)*m))
                m++;
            if (strcasecmp(m, "DROP FRAME") == 0)
                drop = true;
            else if (strcasecmp(m, "NON-DROP FRAME") == 0 || strcasecmp(m, "NON DROP FRAME") == 0)
                drop = false;
            else {
                rc = vf_error_set(err, VF_EINVAL,
                                  "%s:%d: FCM: '%s' is neither DROP FRAME nor NON-DROP FRAME", path,
                                  lineno, m);
                goto out;
            }
            continue;
        }
        if (strncmp(s, "M2 ", 3) == 0 || strncmp(s, "M2\t", 3) == 0) {
            vf_log(&log_ctx, VF_LOG_VERBOSE, "%s:%d: motion effect ignored (record timing is what "
                   "counts)", path, lineno);
            continue;
        }
        if (!isdigit((unsigned char)*s)) {
            vf_log(&log_ctx, VF_LOG_WARN, "%s:%d: ignoring a line that is not an event: %.60s", path,
                   lineno, s);
            continue;
        }

        /* an event line */
        char *tok[10];
        int nt = tokenize(s, tok, 9);
        if (nt >= 4 && tok[3][0] == 'K') {   /* a key (K, KB, K B, KO): 9 or 10 fields */
            rc = vf_error_set(err, VF_EUNSUPPORTED,
                              "%s:%d: event %s is a key (%s): it layers two pictures, which is not "
                              "a sequence of shots; flatten the key in the edit or give the shots "
                              "as shots.list",
                              path, lineno, tok[0], tok[3]);
            goto out;
        }
        if (nt != 8 && nt != 9) {
            rc = vf_error_set(err, VF_EINVAL,
                              "%s:%d: an event line has %s fields, expected 8 (number reel track "
                              "transition src-in src-out rec-in rec-out) or 9 (with a transition "
                              "duration)",
                              path, lineno, nt > 9 ? "more than 9" : nt == 1 ? "1" : "too few");
            goto out;
        }
        if (!vf_str_is_digits(tok[0]) || strlen(tok[0]) > 6) {
            rc = vf_error_set(err, VF_EINVAL, "%s:%d: event number '%s' is not a number", path,
                              lineno, tok[0]);
            goto out;
        }
        const char *track = tok[2], *trans = tok[3];
        bool video = strchr(track, 'V') || strcmp(track, "B") == 0;
        bool audio = track[0] == 'A' || strcmp(track, "B") == 0;
        if (!video && !audio && strcmp(track, "NONE") != 0) {
            rc = vf_error_set(err, VF_EINVAL,
                              "%s:%d: event %s: track '%s' is none of V, A, A2, AA, B, AA/V", path,
                              lineno, tok[0], track);
            goto out;
        }
        bool has_duration = nt == 9;
        if (strcmp(trans, "C") == 0) {
            if (has_duration) {
                rc = vf_error_set(err, VF_EINVAL,
                                  "%s:%d: event %s: a cut (C) takes no transition duration", path,
                                  lineno, tok[0]);
                goto out;
            }
        } else if (strcmp(trans, "D") == 0 || (trans[0] == 'W' && vf_str_is_digits(trans + 1))) {
            if (!has_duration || !vf_str_is_digits(tok[4])) {
                rc = vf_error_set(err, VF_EINVAL,
                                  "%s:%d: event %s: transition %s needs a duration in frames "
                                  "before the timecodes",
                                  path, lineno, tok[0], trans);
                goto out;
            }
        } else {
            rc = vf_error_set(err, VF_EINVAL,
                              "%s:%d: event %s: unknown transition '%s' (C, D, Wnnn or K)", path,
                              lineno, tok[0], trans);
            goto out;
        }
        int64_t tc[4];
        for (int i = 0; i < 4; i++) {
            if (parse_timecode(tok[nt - 4 + i], rate, drop, &tc[i], why, sizeof why) < 0) {
                static const char *names[4] = {"source in", "source out", "record in", "record out"};
                rc = vf_error_set(err, VF_EINVAL, "%s:%d: event %s: %s: %s", path, lineno, tok[0],
                                  names[i], why);
                goto out;
            }
        }
        /* timecode is a time of day: it wraps at midnight (a programme recorded from
         * 23:59:00:00). Each record in is placed within half a day of the last event's record
         * out (so a few frames back is still an overlap, reported below), and an out more than
         * half a day before its in crossed midnight; the day counted in this timecode's own
         * mode (drop frame by FCM or by its ';') */
        const int64_t sday = day_of(rate, tc_is_drop(tok[nt - 4], drop));
        const int64_t rday = day_of(rate, tc_is_drop(tok[nt - 2], drop));
        if (tc[1] < tc[0] && tc[0] - tc[1] > sday / 2)
            tc[1] += sday;
        int64_t rlen = tc[3] - tc[2];
        if (rlen < 0 && -rlen > rday / 2)
            rlen += rday;
        if (any_event) {
            int64_t d = ((tc[2] - last_rec_out) % rday + rday) % rday;
            tc[2] = last_rec_out + (d >= rday / 2 ? d - rday : d);
        }
        tc[3] = tc[2] + rlen;
        if (!any_event)
            first_drop = tc_is_drop(tok[nt - 2], drop);
        any_event = true;
        last_rec_out = tc[3];
        if (tc[1] < tc[0] || tc[3] < tc[2]) {
            rc = vf_error_set(err, VF_EINVAL, "%s:%d: event %s: its %s out %s is before its in %s",
                              path, lineno, tok[0], tc[3] < tc[2] ? "record" : "source",
                              tok[nt - (tc[3] < tc[2] ? 1 : 3)], tok[nt - (tc[3] < tc[2] ? 2 : 4)]);
            goto out;
        }
        if (!has_duration && tc[3] - tc[2] != tc[1] - tc[0])
            vf_log(&log_ctx, VF_LOG_VERBOSE,
                   "%s:%d: event %s: source and record lengths differ (a speed change)", path,
                   lineno, tok[0]);
        if (!video || tc[3] == tc[2])
            continue; /* audio only, or the zero-length "from" half of a transition */
        if (has_duration)
            vf_log(&log_ctx, VF_LOG_WARN,
                   "%s:%d: event %s: a %s of %s frames: its frames mix two shots; the shot starts "
                   "at the transition's first frame and uses the incoming shot's reference",
                   path, lineno, tok[0], trans[0] == 'D' ? "dissolve" : "wipe", tok[4]);
        if (n_ev) {
            const struct event *p = &ev[n_ev - 1];
            if (tc[2] != p->out) {
                rc = vf_error_set(err, VF_EINVAL,
                                  "%s:%d: event %s: record in %s %s the previous video event %s "
                                  "(line %d) ends (%" PRId64 " frames %s): video events must follow "
                                  "each other without gaps or overlaps, in record order",
                                  path, lineno, tok[0], tok[nt - 2],
                                  tc[2] < p->out ? "is before" : "is after where", p->num, p->line,
                                  tc[2] < p->out ? p->out - tc[2] : tc[2] - p->out,
                                  tc[2] < p->out ? "of overlap" : "of gap");
                goto out;
            }
        }
        if (n_ev == cap_ev) {
            size_t cap = cap_ev ? 2 * cap_ev : 64;
            struct event *e = realloc(ev, cap * sizeof *e);
            if (!e) {
                rc = vf_error_set(err, VF_ENOMEM, "out of memory reading %s", path);
                goto out;
            }
            ev = e;
            cap_ev = cap;
        }
        ev[n_ev] = (struct event){.in = tc[2], .out = tc[3], .line = lineno};
        snprintf(ev[n_ev].num, sizeof ev[n_ev].num, "%s", tok[0]);
        n_ev++;
    }
    if (ferror(f)) {
        rc = vf_error_set(err, VF_EIO, "%s: reading the EDL failed", path);
        goto out;
    }
    if (n_ev == 0) {
        rc = vf_error_set(err, VF_EINVAL,
                          "%s: no video events: an EDL for vaefarm lists the film's shots as video "
                          "(V) events",
                          path);
        goto out;
    }

    /* record frames -> film frames */
    int64_t base = ev[0].in;
    const char *base_what = "the first event's record in";
    if (info->timecode[0]) {
        if (parse_timecode(info->timecode, rate, false, &base, why, sizeof why) < 0) {
            rc = vf_error_set(err, VF_EMEDIA, "%s: the film's own timecode: %s", info->path, why);
            goto out;
        }
        base_what = "the film's timecode";
        /* the film's timecode and the first event on either side of midnight */
        const int64_t day = day_of(rate, first_drop);
        const int64_t shift = ev[0].in - base > day / 2   ? -day
                              : base - ev[0].in > day / 2 ? day
                                                          : 0;
        for (size_t i = 0; i < n_ev; i++) {
            ev[i].in += shift;
            ev[i].out += shift;
        }
    }
    const int64_t frames = info->frames;
    for (size_t i = 0; i < n_ev; i++) {
        int64_t a = ev[i].in - base, b = ev[i].out - base;
        if (a < 0) {
            rc = vf_error_set(err, VF_EINVAL,
                              "%s:%d: event %s starts %" PRId64 " frames before the film's first "
                              "frame (%s, %s): is this the EDL of this film?",
                              path, ev[i].line, ev[i].num, -a, base_what,
                              info->timecode[0] ? info->timecode : "");
            goto out;
        }
        if (b > frames) {
            rc = vf_error_set(err, VF_EINVAL,
                              "%s:%d: event %s ends at frame %" PRId64 ", past the end of the film "
                              "(%" PRId64 " frames, counted from %s): is this the EDL of this film, "
                              "at its frame rate %d/%d?",
                              path, ev[i].line, ev[i].num, b, frames, base_what, info->fps_num,
                              info->fps_den);
            goto out;
        }
    }
    result = vf_calloc(n_ev + 1, sizeof *result, err);
    if (!result) {
        rc = VF_ENOMEM;
        goto out;
    }
    size_t nc = 0;
    if (ev[0].in - base > 0) {
        vf_log(&log_ctx, VF_LOG_WARN,
               "%s: frames [0, %" PRId64 ") come before the first event: they make a shot of "
               "their own",
               path, ev[0].in - base);
        result[nc++] = ev[0].in - base;
    }
    for (size_t i = 1; i < n_ev; i++)
        result[nc++] = ev[i].in - base;
    if (ev[n_ev - 1].out - base < frames) {
        vf_log(&log_ctx, VF_LOG_WARN,
               "%s: frames [%" PRId64 ", %" PRId64 ") come after the last event: they make a shot "
               "of their own",
               path, ev[n_ev - 1].out - base, frames);
        result[nc++] = ev[n_ev - 1].out - base;
    }
    *cuts = result;
    *n_cuts = nc;
    result = NULL;
out:
    free(result);
    free(ev);
    fclose(f);
    return rc;
}
