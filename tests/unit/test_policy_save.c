/*
 * Tests for what the dynmem policy keeps of a VM across a restart
 * (lib/policy_save.c): a memory saved to JSON text and restored decides
 * exactly as one kept in memory over the same restart, keeps nothing of the
 * instant, is aged by the time away, and every field that is missing, of
 * the wrong type or out of range is refused by name.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy.h"
#include "policy_fixture.h"
#include "policy_save.h"

#define STEP_MS 2000

/* Two VMs: a jumps by 300 MiB for 10 s every minute, b drifts up and down. */
static void feed(struct fx *f, uint64_t k)
{
        demand(&f->vms[0], (k % 30) >= 25 ? GIB + 300 * MIB : GIB);
        demand(&f->vms[1], 2 * GIB + (k % 7) * 24 * MIB);
        stall(&f->vms[0], 0.0);
        stall(&f->vms[1], 0.0);
}

static void two_vms(struct fx *f)
{
        add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        add(f, "b", dyn(2 * GIB, 512 * MIB, 4 * GIB), 2 * GIB);
}

/* The two VMs, decided on every 2 s for 10 minutes: a has learned its jumps. */
static void learned_for_ten_minutes(struct fx *f)
{
        two_vms(f);
        for (uint64_t k = 0; k < 300; k++) {
                feed(f, k);
                decide(f, k * STEP_MS);
                settle(f);
        }
}

/* The memory through JSON text, as dynmemd writes and reads it. */
static void through_text(const struct policy_learned *in, struct policy_learned *out)
{
        json_t *obj = policy_learned_json(in), *back;
        char err[256] = "";
        char *text;

        assert_non_null(obj);
        text = json_dumps(obj, JSON_REAL_PRECISION(17));
        assert_non_null(text);
        back = json_loads(text, 0, NULL);
        assert_non_null(back);
        assert_int_equal(policy_learned_parse(back, out, err, sizeof(err)), 0);
        json_decref(obj);
        json_decref(back);
        free(text);
}

static void assert_same_decisions(const struct fx *a, const struct fx *b)
{
        for (size_t i = 0; i < a->n; i++) {
                const struct policy_vm *x = &a->vms[i], *y = &b->vms[i];
                assert_int_equal(x->target_bytes, y->target_bytes);
                assert_int_equal(x->ideal_bytes, y->ideal_bytes);
                assert_int_equal(x->want_bytes, y->want_bytes);
                assert_int_equal(x->need_bytes, y->need_bytes);
                assert_int_equal(x->cover_bytes, y->cover_bytes);
                assert_int_equal(x->reason, y->reason);
        }
}

static void saved_and_restored_decides_the_same(void **state)
{
        struct fx *kept = *state, *saved = NULL, *forgot = NULL;
        bool differs = false;

        assert_int_equal(fx_setup((void **)&saved), 0);
        assert_int_equal(fx_setup((void **)&forgot), 0);
        two_vms(kept);
        two_vms(saved);
        two_vms(forgot);
        for (uint64_t k = 0; k < 400; k++) {
                uint64_t now = k * STEP_MS;
                if (k == 200) {
                        /* a correction the probe learned a minute ago, the second time */
                        for (struct fx **f = (struct fx *[]){kept, saved, forgot, NULL}; *f; f++) {
                                struct policy_vm_memory *m = &(*f)->vms[1].memory;
                                m->correction_permille = 900;
                                m->correction_ms = now - 60000;
                                m->stall_backoff = 2;
                        }
                }
                if (k == 250) { /* dynmemd restarts, 30 s away */
                        for (size_t i = 0; i < kept->n; i++) {
                                struct policy_learned l, back;
                                assert_true(policy_learned_take(&kept->vms[i].memory, now, &l));
                                assert_true(policy_learned_take(&saved->vms[i].memory, now, &back));
                                assert_memory_equal(&l, &back, sizeof(l));
                                policy_learned_apply(&l, 30000, now, &kept->cfg.tunables,
                                                     &kept->vms[i].memory);
                                through_text(&back, &back);
                                assert_memory_equal(&l, &back, sizeof(l));
                                policy_learned_apply(&back, 30000, now, &saved->cfg.tunables,
                                                     &saved->vms[i].memory);
                                assert_memory_equal(&kept->vms[i].memory, &saved->vms[i].memory,
                                                    sizeof(struct policy_vm_memory));
                                forgot->vms[i].memory = (struct policy_vm_memory){0};
                        }
                        /* nothing of the instant is kept */
                        const struct policy_vm_memory *m = &saved->vms[1].memory;
                        assert_false(m->history.primed || m->decided || m->probing || m->surplus);
                        assert_int_equal(m->history.last_demand, 0);
                        assert_true(m->history.trend_rate == 0.0);
                        assert_int_equal(m->last_target_bytes, 0);
                        assert_int_equal(m->correction_permille, 900);
                        assert_int_equal(m->correction_aged_ms, 60000 + 50 * STEP_MS + 30000);
                        now += 30000;
                }
                if (k > 250)
                        now += 30000;
                feed(kept, k);
                feed(saved, k);
                feed(forgot, k);
                decide(kept, now);
                decide(saved, now);
                decide(forgot, now);
                assert_same_decisions(kept, saved);
                differs |= kept->vms[0].want_bytes != forgot->vms[0].want_bytes;
                settle(kept);
                settle(saved);
                settle(forgot);
        }
        /* what was kept mattered: the VM that forgot its rises decided otherwise */
        assert_true(differs);
        fx_teardown((void **)&saved);
        fx_teardown((void **)&forgot);
}

static void restored_weights_are_aged_by_the_time_away(void **state)
{
        struct fx *f = *state;
        struct policy_learned l;
        struct policy_learned_summary before, after, later;
        struct policy_vm_memory m;
        uint64_t hl = f->cfg.tunables.history_halflife_ms;

        learned_for_ten_minutes(f);
        assert_true(policy_learned_summarize(&f->vms[0].memory, &f->cfg.tunables, &before));
        assert_true(before.cover_bytes >= 200 * MIB);
        assert_true(policy_learned_take(&f->vms[0].memory, 300 * STEP_MS, &l));
        assert_int_equal(l.age_ms, STEP_MS);
        /* away one half-life, less the time since the last sample: half the weight */
        policy_learned_apply(&l, hl - STEP_MS, 0, &f->cfg.tunables, &m);
        assert_true(policy_learned_summarize(&m, &f->cfg.tunables, &after));
        assert_true(fabs(after.samples - before.samples / 2) < before.samples * 1e-4);
        /* the same rises, in the same shares: the same cover */
        assert_int_equal(after.cover_bytes, before.cover_bytes);
        /* away far longer: nothing left to weigh */
        policy_learned_apply(&l, 400 * hl, 0, &f->cfg.tunables, &m);
        assert_false(policy_learned_summarize(&m, &f->cfg.tunables, &later));
        /* a correction older than it holds is kept, but no longer fresh */
        l.correction = true;
        l.correction_permille = 800;
        l.correction_age_ms = 0;
        l.stall_backoff = 64;
        policy_learned_apply(&l, 0, 5000, &f->cfg.tunables, &m);
        assert_int_equal(m.stall_backoff, f->cfg.tunables.stall_backoff_max);
        assert_int_equal(m.correction_ms, 5000);
}

static json_t *valid(void)
{
        json_t *w = json_array();

        for (int i = 0; i < POLICY_RISE_BUCKETS; i++)
                json_array_append_new(w, json_real(i == 0 ? 500.0 : i == 9 ? 2.5 : 0.0));
        return json_pack("{s:i, s:i, s:i, s:f, s:f, s:f, s:o, s:{s:i, s:i, s:i, s:i, s:i}}",
                         "version", 1, "age_ms", 1000, "interval_ms", 1000, "persistence", 0.5,
                         "persist_xy", 10.0, "persist_xx", 20.0, "rise_weights", w, "correction",
                         "permille", 900, "stall_floor_bytes", 0, "stall_figure_bytes", 0, "age_ms",
                         100, "backoff", 2);
}

/* obj's member path ("a" or "a.b") set to the JSON text value (NULL: removed). */
static void set_member(json_t *obj, const char *path, const char *value)
{
        char key[64];
        const char *dot = strchr(path, '.');

        if (dot) {
                snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
                obj = json_object_get(obj, key);
                path = dot + 1;
        }
        if (!value) {
                json_object_del(obj, path);
                return;
        }
        json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        json_object_set_new(obj, path, v);
}

static void expect(const char *path, const char *value, int rc, const char *said)
{
        json_t *obj = valid();
        struct policy_learned l;
        char err[256] = "";

        set_member(obj, path, value);
        assert_int_equal(policy_learned_parse(obj, &l, err, sizeof(err)), rc);
        if (!strstr(err, said))
                fail_msg("%s = %s: \"%s\" does not say \"%s\"", path, value ? value : "(none)", err,
                         said);
        json_decref(obj);
}

static void every_field_is_checked(void **state)
{
        struct policy_learned l;
        char err[256] = "";
        json_t *obj = valid();

        (void)state;
        assert_int_equal(policy_learned_parse(obj, &l, err, sizeof(err)), 0);
        assert_true(l.correction && l.correction_permille == 900 && l.stall_backoff == 2);
        json_decref(obj);
        obj = json_array();
        assert_int_equal(policy_learned_parse(obj, &l, err, sizeof(err)), -EINVAL);
        json_decref(obj);

        static const struct {
                const char *path, *value, *said;
        } bad[] = {
            {"version", NULL, "version"},
            {"version", "\"1\"", "version"},
            {"version", "0", "version"},
            {"age_ms", NULL, "age_ms: missing"},
            {"age_ms", "-1", "age_ms: not a whole number"},
            {"age_ms", "1.5", "age_ms: not a whole number"},
            {"age_ms", "31622400001", "age_ms: not a whole number"},
            {"interval_ms", NULL, "interval_ms: missing"},
            {"interval_ms", "\"1s\"", "interval_ms: not a whole number"},
            {"persistence", NULL, "persistence: missing"},
            {"persistence", "1.5", "persistence: not a number"},
            {"persistence", "-0.1", "persistence: not a number"},
            {"persistence", "null", "persistence: not a number"},
            {"persist_xy", "1e300", "persist_xy: not a number"},
            {"persist_xx", "-1", "persist_xx: not a number"},
            {"persist_xx", NULL, "persist_xx: missing"},
            {"rise_weights", NULL, "rise_weights: missing"},
            {"rise_weights", "{}", "rise_weights: not a list of 24"},
            {"rise_weights", "[1,2,3]", "rise_weights: not a list of 24"},
            {"rise_weights", "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]",
             "rise_weights: not a list of 24"},
            {"rise_weights", "[0,0,0,0,0,0,0,0,0,0,0,-1,0,0,0,0,0,0,0,0,0,0,0,0]",
             "rise_weights[11]: not a weight"},
            {"rise_weights", "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\"x\"]",
             "rise_weights[23]: not a weight"},
            {"rise_weights", "[1e16,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]",
             "rise_weights[0]: not a weight"},
            {"correction", "[]", "correction: not an object"},
            {"correction.permille", "0", "correction: permille: not a whole number"},
            {"correction.permille", "1001", "correction: permille: not a whole number"},
            {"correction.permille", NULL, "correction: permille: missing"},
            {"correction.backoff", "0", "correction: backoff: not a whole number"},
            {"correction.backoff", "129", "correction: backoff: not a whole number"},
            {"correction.stall_floor_bytes", "17592186044417",
             "correction: stall_floor_bytes: not a whole number"},
            {"correction.stall_floor_bytes", "1073741824", "a stall floor with a permille"},
            {"correction.stall_figure_bytes", "true", "correction: stall_figure_bytes"},
            {"correction.age_ms", NULL, "correction: age_ms: missing"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect(bad[i].path, bad[i].value, -EINVAL, bad[i].said);
        /* a newer version is not misread: told apart */
        expect("version", "2", -EPROTONOSUPPORT, "version 2 is newer");
        /* without a correction, none */
        obj = valid();
        json_object_del(obj, "correction");
        assert_int_equal(policy_learned_parse(obj, &l, err, sizeof(err)), 0);
        assert_false(l.correction);
        json_decref(obj);
}

/* A VM that took no sample yet has nothing to keep. */
static void nothing_learned_nothing_kept(void **state)
{
        struct policy_vm_memory m = {0};
        struct policy_learned l;
        struct policy_learned_summary sum;
        struct fx *f = *state;

        (void)state;
        assert_false(policy_learned_take(&m, 1000, &l));
        assert_false(policy_learned_summarize(&m, &f->cfg.tunables, &sum));
}

/*
 * A memory restored and not sampled since (its VM's first sample after a
 * restart has not come, or never comes: no signal) is saved again as it was
 * given, aged by the time since: a second restart before that sample loses
 * nothing, nor ages it twice.
 */
static void restored_and_not_sampled_is_saved_again(void **state)
{
        struct fx *f = *state;
        struct policy_learned l, again, twice;
        struct policy_learned_summary sum, restored, after;
        struct policy_vm_memory m, m2;
        uint64_t hl = f->cfg.tunables.history_halflife_ms;

        learned_for_ten_minutes(f);
        /* a correction the probe learned a minute before the save */
        f->vms[1].memory.correction_permille = 900;
        f->vms[1].memory.correction_ms = 300 * STEP_MS - 60000;
        f->vms[1].memory.stall_backoff = 2;
        assert_true(policy_learned_take(&f->vms[1].memory, 300 * STEP_MS, &l));
        assert_true(l.correction);
        assert_true(policy_learned_summarize(&f->vms[1].memory, &f->cfg.tunables, &sum));
        /* restored at 5000 after half a half-life away, less the time since its last sample */
        policy_learned_apply(&l, hl / 2 - STEP_MS, 5000, &f->cfg.tunables, &m);
        assert_false(m.history.primed);
        assert_true(policy_learned_summarize(&m, &f->cfg.tunables, &restored));
        /* taken again another half half-life later: what was given, as old as it is by then */
        assert_true(policy_learned_take(&m, 5000 + hl / 2, &again));
        assert_int_equal(again.age_ms, hl / 2);
        assert_int_equal(again.interval_ms, l.interval_ms);
        assert_true(again.persistence == l.persistence);
        assert_true(again.correction && again.correction_permille == 900 &&
                    again.stall_backoff == 2);
        assert_int_equal(again.correction_age_ms, 60000 + (hl / 2 - STEP_MS) + hl / 2);
        for (int b = 0; b < POLICY_RISE_BUCKETS; b++)
                assert_true(fabs(again.rise_weight[b] - l.rise_weight[b] / sqrt(2.0)) <=
                            l.rise_weight[b] * 1e-6);
        /* restored from that: one half-life in all, as had it been kept in memory */
        policy_learned_apply(&again, 0, 0, &f->cfg.tunables, &m2);
        assert_true(policy_learned_summarize(&m2, &f->cfg.tunables, &after));
        assert_true(fabs(after.samples - sum.samples / 2) < sum.samples * 1e-4);
        assert_int_equal(after.cover_bytes, sum.cover_bytes);
        assert_true(policy_learned_take(&m2, 0, &twice));
        assert_true(restored.samples > after.samples);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
        const struct CMUnitTest tests[] = {
            T(saved_and_restored_decides_the_same),
            T(restored_weights_are_aged_by_the_time_away),
            T(every_field_is_checked),
            T(nothing_learned_nothing_kept),
            T(restored_and_not_sampled_is_saved_again),
        };
#undef T
        return cmocka_run_group_tests(tests, NULL, NULL);
}
