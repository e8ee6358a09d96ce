/*
 * policy_save: what the dynmem kind learned about one VM, to and from a
 * plain struct and JSON. See policy_save.h.
 */
#include "policy_save.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "policy_int.h"
#include "settings.h"

/* ---- memory <-> struct ---- */

bool policy_learned_take(const struct policy_vm_memory *m, uint64_t now_ms,
                         struct policy_learned *ret)
{
        const struct policy_history *h = &m->history;
        double unit = h->weight_unit;

        *ret = (struct policy_learned){0};
        /* restored and not sampled since: what it was given, aged from when (last_ms) */
        if (!h->primed && !(h->weight_sum > 0.0f) && !(h->persist_xx > 0.0) &&
            !m->correction_permille)
                return false;
        ret->age_ms = ms_since(now_ms, h->last_ms);
        ret->interval_ms = h->last_dt_ms;
        ret->persistence = h->persistence;
        ret->persist_xy = h->persist_xy;
        ret->persist_xx = h->persist_xx;
        for (unsigned b = 0; unit > 0.0 && b <= h->top && b < POLICY_RISE_BUCKETS; b++)
                ret->rise_weight[b] = (double)h->rise_weight[b] / unit;
        if (m->correction_permille) {
                ret->correction = true;
                ret->correction_permille = m->correction_permille;
                ret->stall_floor_bytes = m->stall_floor_bytes;
                ret->stall_figure_bytes = m->stall_figure_bytes;
                ret->correction_age_ms =
                    add_sat(ms_since(now_ms, m->correction_ms), m->correction_aged_ms);
                ret->stall_backoff = m->stall_backoff ? m->stall_backoff : 1;
        }
        return true;
}

/* 2^(-ms / half-life): what a weight keeps after ms (a half-life of 0 keeps only the latest). */
static double aged_by(uint64_t ms, const struct policy_tunables *t)
{
        if (t->history_halflife_ms == 0)
                return ms ? 0.0 : 1.0;
        return exp2(-(double)ms / (double)t->history_halflife_ms);
}

void policy_learned_apply(const struct policy_learned *l, uint64_t away_ms, uint64_t now_ms,
                          const struct policy_tunables *t, struct policy_vm_memory *ret)
{
        struct policy_history *h = &ret->history;
        double keep = aged_by(add_sat(l->age_ms, away_ms), t), sum = 0.0;

        *ret = (struct policy_vm_memory){0};
        for (unsigned b = 0; b < POLICY_RISE_BUCKETS; b++) {
                h->rise_weight[b] = (float)(l->rise_weight[b] * keep);
                sum += h->rise_weight[b];
                if (h->rise_weight[b] > 0.0f)
                        h->top = (uint8_t)b;
        }
        if (sum > 0.0) { /* else nothing is left: the next surprise starts the histogram */
                h->weight_sum = (float)sum;
                h->weight_unit = 1.0f;
        } else {
                memset(h->rise_weight, 0, sizeof(h->rise_weight));
                h->top = 0;
        }
        h->persistence = (float)l->persistence;
        h->persist_xy = l->persist_xy * keep;
        h->persist_xx = l->persist_xx * keep;
        h->last_dt_ms = l->interval_ms;
        h->last_ms = now_ms; /* not primed: only how old the weights are, should it be taken */
        if (!l->correction)
                return;
        uint32_t backoff =
            l->stall_backoff < t->stall_backoff_max ? l->stall_backoff : t->stall_backoff_max;
        ret->correction_permille = l->correction_permille;
        ret->stall_floor_bytes = l->stall_floor_bytes;
        ret->stall_figure_bytes = l->stall_figure_bytes;
        ret->stall_backoff = backoff ? backoff : 1;
        ret->correction_ms = now_ms;
        /* 32 bits (49 days) in the VM's record: a correction is fresh for at most
         * stall_memory x stall_backoff_max, hours, so any older one is simply old */
        uint64_t aged = add_sat(l->correction_age_ms, away_ms);
        ret->correction_aged_ms = aged < UINT32_MAX ? (uint32_t)aged : UINT32_MAX;
}

/* ---- struct <-> JSON ---- */

json_t *policy_learned_json(const struct policy_learned *l)
{
        json_t *weights = json_array(), *obj;

        for (unsigned b = 0; weights && b < POLICY_RISE_BUCKETS; b++)
                if (json_array_append_new(weights, json_real(l->rise_weight[b])) < 0) {
                        json_decref(weights);
                        return NULL;
                }
        obj = json_pack("{s:i, s:I, s:I, s:f, s:f, s:f, s:o}", "version", POLICY_SAVE_VERSION,
                        "age_ms", (json_int_t)l->age_ms, "interval_ms", (json_int_t)l->interval_ms,
                        "persistence", l->persistence, "persist_xy", l->persist_xy, "persist_xx",
                        l->persist_xx, "rise_weights", weights);
        if (!obj || !l->correction)
                return obj;
        json_t *c = json_pack("{s:i, s:I, s:I, s:I, s:i}", "permille", (int)l->correction_permille,
                              "stall_floor_bytes", (json_int_t)l->stall_floor_bytes,
                              "stall_figure_bytes", (json_int_t)l->stall_figure_bytes, "age_ms",
                              (json_int_t)l->correction_age_ms, "backoff", (int)l->stall_backoff);
        if (json_object_set_new(obj, "correction", c) < 0) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}

/* obj[key] as a whole number in lo..hi into *ret. 0, or -EINVAL with err naming it. */
static int get_whole(const json_t *obj, const char *key, uint64_t lo, uint64_t hi, uint64_t *ret,
                     char *err, size_t errlen)
{
        const json_t *v = json_object_get(obj, key);

        if (!v) {
                snprintf(err, errlen, "%s: missing", key);
                return -EINVAL;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) < lo || (uint64_t)json_integer_value(v) > hi) {
                snprintf(err, errlen, "%s: not a whole number in %llu..%llu", key,
                         (unsigned long long)lo, (unsigned long long)hi);
                return -EINVAL;
        }
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

/* A number (whole or not) in lo..hi, finite. */
static bool number_in(const json_t *v, double lo, double hi, double *ret)
{
        double x = json_number_value(v);

        if (!json_is_number(v) || !isfinite(x) || x < lo || x > hi)
                return false;
        *ret = x;
        return true;
}

static int get_number(const json_t *obj, const char *key, double lo, double hi, double *ret,
                      char *err, size_t errlen)
{
        const json_t *v = json_object_get(obj, key);

        if (!v) {
                snprintf(err, errlen, "%s: missing", key);
                return -EINVAL;
        }
        if (!number_in(v, lo, hi, ret)) {
                snprintf(err, errlen, "%s: not a number in %g..%g", key, lo, hi);
                return -EINVAL;
        }
        return 0;
}

/* "rise_weights": exactly POLICY_RISE_BUCKETS weights, each 0..POLICY_SAVE_WEIGHT_MAX. */
static int parse_weights(const json_t *a, double *ret, char *err, size_t errlen)
{
        size_t i;
        const json_t *v;

        if (!a) {
                snprintf(err, errlen, "rise_weights: missing");
                return -EINVAL;
        }
        if (!json_is_array(a) || json_array_size(a) != POLICY_RISE_BUCKETS) {
                snprintf(err, errlen, "rise_weights: not a list of %d numbers",
                         POLICY_RISE_BUCKETS);
                return -EINVAL;
        }
        json_array_foreach(a, i, v)
        {
                if (!number_in(v, 0.0, POLICY_SAVE_WEIGHT_MAX, &ret[i])) {
                        snprintf(err, errlen, "rise_weights[%zu]: not a weight in 0..%g", i,
                                 POLICY_SAVE_WEIGHT_MAX);
                        return -EINVAL;
                }
        }
        return 0;
}

static int parse_correction(const json_t *c, struct policy_learned *l, char *err, size_t errlen)
{
        char why[160];
        uint64_t permille, backoff;

        if (!json_is_object(c)) {
                snprintf(err, errlen, "correction: not an object");
                return -EINVAL;
        }
        if (get_whole(c, "permille", 1, 1000, &permille, why, sizeof(why)) < 0 ||
            get_whole(c, "stall_floor_bytes", 0, SETTINGS_SIZE_MAX, &l->stall_floor_bytes, why,
                      sizeof(why)) < 0 ||
            get_whole(c, "stall_figure_bytes", 0, SETTINGS_SIZE_MAX, &l->stall_figure_bytes, why,
                      sizeof(why)) < 0 ||
            get_whole(c, "age_ms", 0, POLICY_SAVE_AGE_MAX, &l->correction_age_ms, why,
                      sizeof(why)) < 0 ||
            get_whole(c, "backoff", 1, POLICY_SAVE_BACKOFF_MAX, &backoff, why, sizeof(why)) < 0) {
                snprintf(err, errlen, "correction: %s", why);
                return -EINVAL;
        }
        /* a stall's floor is learned with the whole figure (stall_learn()) */
        if (l->stall_floor_bytes && permille != 1000) {
                snprintf(err, errlen, "correction: a stall floor with a permille other than 1000");
                return -EINVAL;
        }
        l->correction = true;
        l->correction_permille = (uint32_t)permille;
        l->stall_backoff = (uint32_t)backoff;
        return 0;
}

int policy_learned_parse(const json_t *obj, struct policy_learned *ret, char *err, size_t errlen)
{
        struct policy_learned l = {0};
        const json_t *version = json_object_get(obj, "version"), *c;

        if (!json_is_object(obj)) {
                snprintf(err, errlen, "not an object");
                return -EINVAL;
        }
        if (!json_is_integer(version) || json_integer_value(version) < 1) {
                snprintf(err, errlen, "version: not a version number");
                return -EINVAL;
        }
        if (json_integer_value(version) > POLICY_SAVE_VERSION) {
                snprintf(err, errlen, "version %lld is newer than this dynmem reads (%d)",
                         (long long)json_integer_value(version), POLICY_SAVE_VERSION);
                return -EPROTONOSUPPORT;
        }
        /* rates in bytes per ms squared and summed: finite, far from overflowing */
        if (get_whole(obj, "age_ms", 0, POLICY_SAVE_AGE_MAX, &l.age_ms, err, errlen) < 0 ||
            get_whole(obj, "interval_ms", 0, POLICY_SAVE_AGE_MAX, &l.interval_ms, err, errlen) <
                0 ||
            get_number(obj, "persistence", 0.0, 1.0, &l.persistence, err, errlen) < 0 ||
            get_number(obj, "persist_xy", -1e200, 1e200, &l.persist_xy, err, errlen) < 0 ||
            get_number(obj, "persist_xx", 0.0, 1e200, &l.persist_xx, err, errlen) < 0 ||
            parse_weights(json_object_get(obj, "rise_weights"), l.rise_weight, err, errlen) < 0)
                return -EINVAL;
        if ((c = json_object_get(obj, "correction")) && parse_correction(c, &l, err, errlen) < 0)
                return -EINVAL;
        *ret = l;
        return 0;
}

/* ---- for display ---- */

bool policy_learned_summarize(const struct policy_vm_memory *m, const struct policy_tunables *t,
                              struct policy_learned_summary *ret)
{
        const struct policy_history *h = &m->history;

        *ret = (struct policy_learned_summary){0};
        if (!h->primed && !(h->weight_sum > 0.0f))
                return false;
        ret->cover_bytes = policy_history_quantile(h, t->headroom_permille, t->headroom_period_ms);
        ret->persistence = h->persistence;
        ret->samples = h->weight_unit > 0.0f ? (double)h->weight_sum / h->weight_unit : 0.0;
        return true;
}
