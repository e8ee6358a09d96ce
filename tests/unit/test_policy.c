/*
 * Tests for policy: the decision every program shares. Plenty, scarcity and
 * weights; the static, hyperv, dynmem and external kinds; hysteresis, stall
 * and probing; admission; hostile inputs. The randomised invariant checks
 * are in test_policy_props.c.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy.h"
#include "policy_fixture.h"

/* ---- names and parsing ---- */

static void kind_names_parse(void **state)
{
        enum policy_kind k = POLICY_STATIC;
        const char *cmd = "x";

        assert_int_equal(policy_kind_parse("dynmem", &k, &cmd), 0);
        assert_int_equal(k, POLICY_DYNMEM);
        assert_null(cmd);
        assert_int_equal(policy_kind_parse("static", &k, NULL), 0);
        assert_int_equal(k, POLICY_STATIC);
        assert_int_equal(policy_kind_parse("hyperv", &k, NULL), 0);
        assert_int_equal(k, POLICY_HYPERV);
        assert_int_equal(policy_kind_parse("exec:python3 my.py --x", &k, &cmd), 0);
        assert_int_equal(k, POLICY_EXTERNAL);
        assert_string_equal(cmd, "python3 my.py --x");

        k = POLICY_STATIC;
        assert_int_equal(policy_kind_parse("exec:", &k, &cmd), -EINVAL);
        assert_int_equal(policy_kind_parse("exec: ", &k, &cmd), -EINVAL);
        assert_int_equal(policy_kind_parse("exec: \t\n", &k, &cmd), -EINVAL);
        assert_int_equal(policy_kind_parse("exec", &k, &cmd), -EINVAL);
        assert_int_equal(policy_kind_parse("Dynmem", &k, &cmd), -EINVAL);
        assert_int_equal(policy_kind_parse("", &k, &cmd), -EINVAL);
        assert_int_equal(policy_kind_parse(NULL, &k, &cmd), -EINVAL);
        assert_int_equal(policy_kind_parse("dynmem ", &k, &cmd), -EINVAL);
        assert_int_equal(k, POLICY_STATIC); /* untouched on failure */
        assert_int_equal(policy_kind_parse("exec: x", &k, &cmd), 0);
        assert_string_equal(cmd, " x");

        assert_string_equal(policy_kind_name(POLICY_DYNMEM), "dynmem");
        assert_string_equal(policy_kind_name(POLICY_HYPERV), "hyperv");
        assert_string_equal(policy_kind_name(POLICY_EXTERNAL), "exec");
        assert_string_equal(policy_kind_name((enum policy_kind)99), "unknown");
}

static void reason_names(void **state)
{
        for (int r = REASON_NONE; r <= REASON_LENT; r++) {
                const char *name = policy_reason_name((enum policy_reason)r);
                assert_non_null(name);
                assert_string_not_equal(name, "unknown");
                for (int q = REASON_NONE; q < r; q++)
                        assert_string_not_equal(name, policy_reason_name((enum policy_reason)q));
        }
        assert_string_equal(policy_reason_name(REASON_STALL), "stall");
        assert_string_equal(policy_reason_name((enum policy_reason)1000), "unknown");
        assert_string_equal(policy_reason_name((enum policy_reason) - 1), "unknown");
}

static void scratch_too_small(void **state)
{
        struct fx *f = *state;
        struct policy_scratch small = {0};

        add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        add(f, "b", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        assert_int_equal(policy_scratch_reserve(&small, 1), 0);
        assert_int_equal(policy_decide(&f->cfg, &f->host, f->vms, 2, 0, &small, NULL), -ENOMEM);
        assert_int_equal(policy_scratch_reserve(&small, 2), 0);
        assert_int_equal(policy_decide(&f->cfg, &f->host, f->vms, 2, 0, &small, NULL), 0);
        assert_int_equal(policy_decide(&f->cfg, &f->host, f->vms, 0, 0, &small, NULL), 0);
        policy_scratch_free(&small);
}

/* ---- plenty ---- */

struct plenty_case {
        uint64_t demand;
        unsigned buffer;
        uint64_t block, minimum, maximum;
        uint64_t target;
        enum policy_reason reason;
};

static void plenty_target_is_demand_plus_buffer(void **state)
{
        static const struct plenty_case cases[] = {
            {1000 * MIB + 1, 20, 2 * MIB, 512 * MIB, 4 * GIB, 1202 * MIB, REASON_DEMAND},
            {1000 * MIB, 20, 2 * MIB, 512 * MIB, 4 * GIB, 1200 * MIB, REASON_DEMAND},
            {2000 * MIB, 5, 2 * MIB, 512 * MIB, 4 * GIB, 2100 * MIB, REASON_DEMAND},
            {100 * MIB, 2000, 2 * MIB, 512 * MIB, 4 * GIB, 2100 * MIB, REASON_DEMAND},
            {700 * MIB, 20, 64 * MIB, 512 * MIB, 4 * GIB, 896 * MIB, REASON_DEMAND},
            {100 * MIB, 20, 2 * MIB, 512 * MIB, 4 * GIB, 512 * MIB, REASON_MINIMUM},
            {0, 20, 2 * MIB, 512 * MIB, 4 * GIB, 512 * MIB, REASON_MINIMUM},
            {10 * GIB, 20, 2 * MIB, 512 * MIB, 4 * GIB, 4 * GIB, REASON_MAXIMUM},
            {3500 * MIB, 20, 2 * MIB, 512 * MIB, 4 * GIB, 4 * GIB, REASON_MAXIMUM},
        };
        static const enum policy_kind kinds[] = {POLICY_HYPERV, POLICY_DYNMEM};

        for (size_t k = 0; k < 2; k++) {
                for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                        const struct plenty_case *c = &cases[i];
                        struct fx *f = *state;
                        struct vm_settings s = dyn(GIB, c->minimum, c->maximum);

                        f->n = 0;
                        f->cfg.kind = kinds[k];
                        s.buffer_percent = c->buffer;
                        s.block_bytes = c->block;
                        /* Assigned below everything: each target is a grow, taken at once. */
                        struct policy_vm *vm = add(f, "a", s, 256 * MIB);
                        demand(vm, c->demand);
                        decide(f, 0);
                        if (vm->target_bytes != c->target || vm->reason != c->reason)
                                fail_msg("%s case %zu: target %llu (%s), expected %llu (%s)",
                                         policy_kind_name(kinds[k]), i,
                                         (unsigned long long)vm->target_bytes,
                                         policy_reason_name(vm->reason),
                                         (unsigned long long)c->target,
                                         policy_reason_name(c->reason));
                        assert_int_equal(vm->ideal_bytes, c->target);
                        assert_int_equal(vm->admission, ADMISSION_NONE);
                        assert_false(f->sum.scarcity);
                        assert_false(f->sum.overcommitted);
                        assert_false(f->sum.refused);
                }
        }
}

static void plenty_everyone_gets_want(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        f->host.memory_bytes = 8 * GIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *c = add(f, "c", fixed(GIB), GIB);
        demand(a, 2 * GIB);
        demand(b, 3 * GIB / 2);
        decide(f, 0);
        assert_int_equal(a->target_bytes, want_of(2 * GIB, 20));
        assert_int_equal(b->target_bytes, want_of(3 * GIB / 2, 20));
        assert_int_equal(c->target_bytes, GIB);
        assert_int_equal(c->reason, REASON_STATIC);
        assert_false(f->sum.scarcity);
        assert_int_equal(f->sum.sum_target_bytes,
                         a->target_bytes + b->target_bytes + c->target_bytes);
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
}

/* ---- scarcity ---- */

static void scarcity_buffers_go_first(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        f->host.memory_bytes = 2560 * MIB; /* needs (2 GiB) fit, wants (3 GiB) do not */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        a->settings.buffer_percent = b->settings.buffer_percent = 50;
        demand(a, GIB);
        demand(b, GIB);
        decide(f, 0);
        assert_true(f->sum.scarcity);
        assert_false(f->sum.overcommitted);
        assert_int_equal(a->target_bytes, 1280 * MIB); /* demand + half the buffer each */
        assert_int_equal(b->target_bytes, 1280 * MIB);
        assert_int_equal(a->reason, REASON_SCARCITY);
        assert_int_equal(f->sum.sum_need_bytes, 2 * GIB);
        assert_int_equal(f->sum.sum_want_bytes, 3 * GIB);

        /* Unequal weights share the buffer room 4:1; both keep their demand. */
        a->settings.weight = 8000;
        b->settings.weight = 2000;
        decide(f, 1000);
        assert_true(a->target_bytes > b->target_bytes);
        assert_true(b->target_bytes >= GIB);
        assert_true(a->target_bytes <= 1536 * MIB);
        assert_int_equal(a->target_bytes, GIB + 408 * MIB);
        assert_int_equal(b->target_bytes, GIB + 104 * MIB);
        assert_true(a->target_bytes + b->target_bytes <= f->host.memory_bytes);
}

static void deep_scarcity_weight_decides(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        f->host.memory_bytes = 3 * GIB; /* floors 1.5 GiB fit, needs 6 GiB do not */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *c = add(f, "c", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        a->settings.weight = 10000;
        b->settings.weight = 5000;
        c->settings.weight = 1000;
        demand(a, 2 * GIB);
        demand(b, 2 * GIB);
        demand(c, 2 * GIB);
        decide(f, 0);
        assert_true(f->sum.scarcity);
        assert_false(f->sum.overcommitted);
        /* The allocation (ideal): heavier gets more, nobody below minimum or above need. */
        assert_true(a->ideal_bytes > b->ideal_bytes);
        assert_true(b->ideal_bytes > c->ideal_bytes);
        assert_true(c->ideal_bytes >= 512 * MIB);
        assert_true(a->ideal_bytes <= 2 * GIB);
        uint64_t total = a->ideal_bytes + b->ideal_bytes + c->ideal_bytes;
        assert_true(total <= 3 * GIB);
        assert_true(total >= 3 * GIB - 3 * 2 * MIB); /* nothing left unused but rounding */
        /* In proportion to weight: a's share above the floor is about twice b's. */
        double ra = (double)(a->ideal_bytes - 512 * MIB), rb = (double)(b->ideal_bytes - 512 * MIB);
        assert_true(ra / rb > 1.9 && ra / rb < 2.1);
        assert_int_equal(c->reason, REASON_SCARCITY);

        /*
         * The host is full (3 x 1 GiB held): the lighter VMs shrink now, but the
         * heavier one only grows once that memory is free.
         */
        assert_int_equal(c->target_bytes, c->ideal_bytes);
        assert_true(c->target_bytes < GIB);
        assert_int_equal(a->target_bytes, GIB);
        assert_int_equal(a->reason, REASON_WAITING);
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
        settle(f);
        decide(f, 1000);
        assert_int_equal(a->target_bytes, a->ideal_bytes);
        assert_true(a->target_bytes > GIB);
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
}

/*
 * A grow in flight: a was asked to go from 1 GiB to 2 GiB and has plugged half
 * of it. Its guest may still plug up to 2 GiB, so the memory between 1.5 and
 * 2 GiB is not free for b, even when a's target is cut.
 */
static void a_grow_in_flight_is_not_granted_twice(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        f->host.memory_bytes = 3 * GIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, GIB, 4 * GIB), GIB + 512 * MIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, GIB, 4 * GIB), GIB);
        a->requested_bytes = 2 * GIB;
        b->requested_bytes = GIB;
        b->settings.weight = 10000; /* b is granted first */
        demand(a, GIB);             /* a now wants less than its request ... */
        demand(b, 2 * GIB);         /* ... b much more */
        decide(f, 0);
        /* Held: 1.5 GiB plugged + 0.5 GiB that a may still plug + b's 1 GiB = 3 GiB. */
        assert_int_equal(b->target_bytes, GIB);
        assert_int_equal(b->reason, REASON_WAITING);
        /* Once a's plugged size is read back lower, b grows. */
        a->assigned_bytes = a->requested_bytes = a->target_bytes;
        decide(f, 1000);
        assert_true(b->target_bytes > GIB);
        assert_true(b->target_bytes + a->assigned_bytes <= f->host.memory_bytes);
}

/*
 * A request lowered a moment ago: a's read-back says 1.5 GiB and its new target
 * 1.5 GiB, but until the read-back can show it a may have plugged up to the
 * previous 2 GiB (the backend says so in may_hold_bytes). That memory is not
 * free for b; once the backend no longer says so, it is.
 */
static void a_lowered_request_is_held_until_read_back(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        f->host.memory_bytes = 3 * GIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, GIB, 4 * GIB), GIB + 512 * MIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, GIB, 4 * GIB), GIB);
        a->requested_bytes = GIB + 512 * MIB;
        a->may_hold_bytes = 2 * GIB;
        b->requested_bytes = GIB;
        b->settings.weight = 10000;
        demand(a, GIB);
        demand(b, 2 * GIB);
        decide(f, 0);
        assert_int_equal(b->target_bytes, GIB);
        assert_int_equal(b->reason, REASON_WAITING);
        a->may_hold_bytes = 0;
        a->requested_bytes = a->target_bytes;
        decide(f, 1000);
        assert_true(b->target_bytes > GIB);
        assert_true(b->target_bytes + a->assigned_bytes <= f->host.memory_bytes);
}

static void equal_weights_share_equally(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        f->host.memory_bytes = 3 * GIB;
        for (int i = 0; i < 3; i++)
                demand(add(f, "x", dyn(GIB, 512 * MIB, 4 * GIB), 512 * MIB), 2 * GIB);
        decide(f, 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(f->vms[i].target_bytes, GIB);
}

static void never_more_than_need(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        f->host.memory_bytes = 4 * GIB;
        /* a is heavy but needs little; b needs more than there is. */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), 512 * MIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 8 * GIB), 512 * MIB);
        a->settings.weight = 10000;
        b->settings.weight = 1;
        demand(a, 600 * MIB);
        demand(b, 6 * GIB);
        decide(f, 0);
        assert_int_equal(a->ideal_bytes, 600 * MIB); /* its need, not a byte more */
        assert_int_equal(b->ideal_bytes, 4 * GIB - 600 * MIB);
}

static void weight_zero_takes_leftovers_only(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        f->host.memory_bytes = 2560 * MIB;
        struct policy_vm *z = add(f, "zero", dyn(GIB, 512 * MIB, 4 * GIB), 512 * MIB);
        struct policy_vm *w = add(f, "weighted", dyn(GIB, 512 * MIB, 4 * GIB), 512 * MIB);
        z->settings.weight = 0;
        w->settings.weight = 1;
        demand(z, 2 * GIB);
        demand(w, 2 * GIB);
        decide(f, 0);
        assert_int_equal(w->ideal_bytes, 2 * GIB); /* its whole need first */
        assert_int_equal(z->ideal_bytes, 512 * MIB);

        f->host.memory_bytes = 3 * GIB;
        decide(f, 1000);
        assert_int_equal(w->ideal_bytes, 2 * GIB);
        assert_int_equal(z->ideal_bytes, GIB); /* what the weighted VM could not use */

        /* In the buffer stage too. */
        f->host.memory_bytes = 4096 * MIB + 600 * MIB;
        decide(f, 2000);
        assert_int_equal(w->ideal_bytes, want_of(2 * GIB, 20));
        assert_int_equal(z->ideal_bytes, 2 * GIB + 600 * MIB - (want_of(2 * GIB, 20) - 2 * GIB));
        f->host.memory_bytes = 4096 * MIB + 200 * MIB;
        decide(f, 2500);
        assert_int_equal(w->ideal_bytes, 2 * GIB + 200 * MIB);
        assert_int_equal(z->ideal_bytes, 2 * GIB);

        /* Only weight-0 VMs: they share equally. */
        w->settings.weight = 0;
        f->host.memory_bytes = 3 * GIB;
        decide(f, 3000);
        assert_int_equal(w->ideal_bytes, 1536 * MIB);
        assert_int_equal(z->ideal_bytes, 1536 * MIB);
}

/*
 * A decision packs the participants' levels for the water-filling while it
 * sums them when the one before water-filled, and otherwise only once it
 * finds it must: the host turns short and plentiful in turn, and every
 * decision, made again on copies with the other guess, gives the same ideals.
 */
static void water_filling_whatever_the_last_decision_did(void **state)
{
        struct fx *f = *state;
        struct policy_scratch other = {0};
        struct policy_vm copy[MAX_VMS];
        unsigned filled = 0;

        assert_int_equal(policy_scratch_reserve(&other, MAX_VMS), 0);
        f->cfg.kind = POLICY_HYPERV;
        for (size_t i = 0; i < 4; i++) {
                struct policy_vm *vm = add(f, "vm", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
                vm->settings.weight = (uint32_t)(1 + 100 * i);
        }
        for (uint64_t k = 0; k < 12; k++) {
                f->host.memory_bytes = k % 3 == 0 ? 32 * GIB : (4 + k % 2) * GIB;
                for (size_t i = 0; i < f->n; i++)
                        demand(&f->vms[i], GIB + (k * 7 + i * 3) % 5 * 256 * MIB);
                memcpy(copy, f->vms, sizeof(copy));
                other.filled = !f->scratch.filled;
                assert_int_equal(
                    policy_decide(&f->cfg, &f->host, copy, f->n, k * 1000, &other, NULL), 0);
                decide(f, k * 1000);
                for (size_t i = 0; i < f->n; i++)
                        assert_int_equal(copy[i].ideal_bytes, f->vms[i].ideal_bytes);
                assert_int_equal(other.filled, f->scratch.filled);
                filled += f->scratch.filled;
        }
        /* The short hosts were water-filled, the plentiful ones not. */
        assert_int_equal(filled, 8);
        policy_scratch_free(&other);
}

static void overcommitted_holds_everyone_at_minimum(void **state)
{
        static const enum policy_kind kinds[] = {POLICY_HYPERV, POLICY_DYNMEM};

        for (size_t k = 0; k < 2; k++) {
                struct fx *f = *state;
                f->n = 0;
                f->cfg.kind = kinds[k];
                f->host.memory_bytes = 768 * MIB; /* lowered below the two minimums */
                struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
                struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
                demand(a, GIB);
                demand(b, 100 * MIB);
                decide(f, 0);
                assert_true(f->sum.overcommitted);
                assert_true(f->sum.scarcity);
                assert_int_equal(a->target_bytes, 512 * MIB);
                assert_int_equal(b->target_bytes, 512 * MIB);
                assert_int_equal(a->reason, REASON_OVERCOMMITTED);
        }
}

/* ---- the static and hyperv kinds ---- */

static void static_policy_pins_startup(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_STATIC;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *b = add(f, "b", dyn(2 * GIB, 512 * MIB, 4 * GIB), 3 * GIB);
        demand(a, 3 * GIB);
        demand(b, 100 * MIB);
        stall(a, 0.9);
        for (uint64_t t = 0; t < 120000; t += 1000) {
                decide(f, t);
                assert_int_equal(a->target_bytes, GIB);
                assert_int_equal(b->target_bytes, 2 * GIB);
                assert_int_equal(a->reason, REASON_STATIC);
                settle(f);
        }

        /* A VM with dynamic memory off keeps its startup size under dynmem too. */
        f->cfg.kind = POLICY_DYNMEM;
        f->n = 0;
        struct policy_vm *c = add(f, "c", fixed(GIB), GIB);
        demand(c, 3 * GIB);
        stall(c, 1.0);
        decide(f, 0);
        assert_int_equal(c->target_bytes, GIB);
        assert_int_equal(c->reason, REASON_STATIC);
}

static void hyperv_follows_demand_without_hysteresis(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), 2 * GIB);
        demand(a, GIB);
        decide(f, 0);
        assert_int_equal(a->target_bytes, 1230 * MIB); /* shrinks at once */
        settle(f);
        demand(a, GIB + 2 * MIB);
        decide(f, 1000);
        assert_int_equal(a->target_bytes, 1232 * MIB); /* follows a 2 MiB change */
        settle(f);
        demand(a, GIB);
        decide(f, 2000);
        assert_int_equal(a->target_bytes, 1230 * MIB);
        /* A guest that stalls is not helped: hyperv looks at demand only. */
        stall(a, 0.5);
        decide(f, 3000);
        assert_int_equal(a->target_bytes, 1230 * MIB);
        /* Nor is one that never stalls probed. */
        stall(a, 0.0);
        for (uint64_t t = 4000; t < 600000; t += 1000) {
                settle(f);
                decide(f, t);
                assert_int_equal(a->target_bytes, 1230 * MIB);
        }
}

static void no_demand_keeps_size(void **state)
{
        struct fx *f = *state;

        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), 1500 * MIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 4 * GIB), 100 * MIB);
        decide(f, 0);
        assert_int_equal(a->target_bytes, 1500 * MIB);
        assert_int_equal(a->reason, REASON_NO_SIGNAL);
        assert_int_equal(b->target_bytes, 512 * MIB); /* clamped to the minimum */
}

/* ---- dynmem hysteresis ---- */

static void dynmem_grows_at_once(void **state)
{
        struct fx *f = *state;

        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), GIB);
        demand(a, 800 * MIB);
        decide(f, 0);
        settle(f);
        demand(a, 2 * GIB);
        decide(f, 1000);
        assert_true(a->target_bytes >= want_of(2 * GIB, 20));
        assert_true(a->target_bytes <= 8 * GIB);
        assert_int_not_equal(a->reason, REASON_HOLD);
}

static void dynmem_ignores_small_changes(void **state)
{
        struct fx *f = *state;

        f->cfg.tunables.trend_lookahead_ms = 0; /* the raw demand only */
        f->cfg.tunables.persistence_max_permille = 0;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), GIB);
        demand(a, GIB);
        decide(f, 0);
        assert_int_equal(a->target_bytes, 1230 * MIB);
        settle(f);

        /* +10 MiB of demand (+12 MiB of want): below the deadband. */
        demand(a, GIB + 10 * MIB);
        decide(f, 1000);
        assert_int_equal(a->target_bytes, 1230 * MIB);
        assert_int_equal(a->reason, REASON_HOLD);

        /* -10 MiB: held as well, and for good (the surplus is below the deadband). */
        demand(a, GIB - 10 * MIB);
        for (uint64_t t = 2000; t < 200000; t += 1000) {
                decide(f, t);
                assert_int_equal(a->target_bytes, 1230 * MIB);
                settle(f);
        }

        /*
         * A rise larger than the deadband (3 % of 1230 MiB = 37 MiB) that still leaves
         * the VM above its grow edge (need + 30 % of its headroom) waits too.
         */
        demand(a, GIB + 40 * MIB);
        decide(f, 200000);
        assert_int_equal(a->target_bytes, 1230 * MIB);
        assert_int_equal(a->reason, REASON_HOLD);

        /* Below its grow edge (1174 MiB + 30 % of its 235 MiB of headroom) it grows, to its want.
         */
        demand(a, GIB + 150 * MIB);
        decide(f, 201000);
        assert_int_equal(a->target_bytes, want_of(GIB + 150 * MIB, 20));

        /* A demand above what it holds is never held back, however small. */
        settle(f);
        demand(a, a->assigned_bytes + MIB);
        decide(f, 202000);
        assert_true(a->target_bytes > a->assigned_bytes);
}

/*
 * A buffer change moves the band, not the VM: a VM that holds more than its new grow edge
 * (need + 30 % of its headroom) stays where it is, however large the buffer that brought the
 * edge near. The numbers are the migration test's (tests/migration, buffer_that_resizes):
 * web arrived holding 638 MiB, demand 479 MiB under its 512 MiB minimum, 1 GiB maximum.
 */
static void a_raised_buffer_grows_only_below_the_new_grow_edge(void **state)
{
        struct fx *f = *state;
        struct vm_settings s = dyn(512 * MIB, 512 * MIB, GIB);

        s.buffer_percent = 60; /* want 768 MiB; grow edge 512 + 30 % of 256 = 589 MiB */
        struct policy_vm *web = add(f, "web", s, 638 * MIB);
        web->requested_bytes = 638 * MIB;
        for (uint64_t now = 1000; now <= 120000; now += 1000) {
                demand(web, 479 * MIB);
                decide(f, now);
                assert_int_equal(web->want_bytes, want_of(479 * MIB, 60));
                assert_int_equal(web->target_bytes, 638 * MIB);
                assert_int_equal(web->reason, REASON_HOLD);
        }

        /* A buffer that wants the maximum: the edge is 512 + 30 % of 512 = 665.6 MiB. */
        web->settings.buffer_percent = 168;
        demand(web, 479 * MIB);
        decide(f, 121000);
        assert_int_equal(web->target_bytes, GIB);
        assert_int_not_equal(web->reason, REASON_HOLD);

        /* Just above that edge it holds; 5 % then shrinks it once shrink_delay has passed. */
        memset(&web->memory, 0, sizeof(web->memory));
        web->assigned_bytes = web->requested_bytes = 668 * MIB;
        demand(web, 479 * MIB);
        decide(f, 122000);
        assert_int_equal(web->target_bytes, 668 * MIB);
        web->settings.buffer_percent = 5;
        for (uint64_t now = 123000; now < 123000 + f->cfg.tunables.shrink_delay_ms; now += 1000) {
                demand(web, 479 * MIB);
                decide(f, now);
                assert_int_equal(web->target_bytes, 668 * MIB);
        }
        demand(web, 479 * MIB);
        decide(f, 123000 + f->cfg.tunables.shrink_delay_ms);
        assert_int_equal(web->target_bytes, 512 * MIB); /* 479 MiB + 5 %, within its minimum */
}

static void dynmem_shrinks_after_delay_and_gradually(void **state)
{
        struct fx *f = *state;
        const struct policy_tunables *t = &f->cfg.tunables;

        f->cfg.tunables.shrink_step_percent = 25; /* the default shrinks in one step */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 4 * GIB);
        demand(a, GIB);
        uint64_t first_shrink = 0, steps = 0, ideal = 1230 * MIB;

        for (uint64_t now = 0; now <= 120000; now += 1000) {
                uint64_t before = a->assigned_bytes;
                decide(f, now);
                assert_true(a->target_bytes <= before);
                if (a->target_bytes < before) {
                        if (!first_shrink)
                                first_shrink = now;
                        steps++;
                        /* At most shrink_step_percent of what it holds, rounded to a block. */
                        assert_true(before - a->target_bytes <=
                                    before * t->shrink_step_percent / 100 + 2 * MIB);
                        assert_true(a->target_bytes >= ideal);
                } else if (before > ideal) {
                        assert_int_equal(a->reason, REASON_HOLD);
                }
                settle(f);
        }
        assert_int_equal(first_shrink, t->shrink_delay_ms);
        assert_true(steps >= 3); /* gradually */
        assert_int_equal(a->assigned_bytes, ideal);
}

static void dynmem_surplus_restarts_when_demand_returns(void **state)
{
        struct fx *f = *state;

        f->cfg.tunables.trend_lookahead_ms = 0;
        f->cfg.tunables.persistence_max_permille = 0;
        f->cfg.tunables.headroom_permille = 0; /* the buffer only: the return is no surprise */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 4 * GIB);
        for (uint64_t now = 0; now <= 60000; now += 1000) {
                /* Demand is low, briefly back near the VM's size at 20 s, low again from 25 s. */
                demand(a, now >= 20000 && now < 25000 ? 3400 * MIB : GIB);
                decide(f, now);
                if (now < 55000)
                        assert_int_equal(a->target_bytes, 4 * GIB);
                else
                        assert_true(a->target_bytes < 4 * GIB);
                settle(f);
        }
}

static void dynmem_hold_keeps_a_resize_in_flight(void **state)
{
        struct fx *f = *state;

        /* A shrink toward the ideal is under way (4 GiB -> 3 GiB); the surplus is young. */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 4 * GIB);
        a->requested_bytes = 3 * GIB;
        demand(a, GIB);
        decide(f, 0);
        assert_int_equal(a->reason, REASON_HOLD);
        assert_int_equal(a->target_bytes, 3 * GIB); /* not cancelled back to 4 GiB */

        /* A request past the ideal is not kept: the VM stays where it is. */
        a->requested_bytes = 600 * MIB;
        decide(f, 1000);
        assert_int_equal(a->target_bytes, 4 * GIB);

        /* Nor one moving away from it. */
        a->requested_bytes = 5 * GIB;
        decide(f, 2000);
        assert_int_equal(a->target_bytes, 4 * GIB);
}

static void dynmem_releases_holds_when_another_waits(void **state)
{
        struct fx *f = *state;

        f->host.memory_bytes = 4 * GIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 3 * GIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 8 * GIB), GIB);
        demand(a, GIB);     /* a surplus young enough to be held */
        demand(b, 2 * GIB); /* b needs to grow; the host is full */
        decide(f, 0);
        assert_false(f->sum.scarcity);
        assert_int_equal(a->target_bytes, 1230 * MIB);
        assert_int_equal(b->target_bytes, GIB); /* waits for a's shrink to happen */
        assert_int_equal(b->reason, REASON_WAITING);
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
        /* Only a's smoothing was done again: the summary counts its released target. */
        assert_int_equal(f->sum.sum_target_bytes, a->target_bytes + b->target_bytes);
        settle(f);
        decide(f, 1000);
        assert_int_equal(b->target_bytes, want_of(2 * GIB, 20));
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);

        /* The same for a VM waiting to start. */
        f->n = 0;
        a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 3584 * MIB);
        demand(a, GIB);
        struct policy_vm *s = add_starting(f, "s", dyn(GIB, 512 * MIB, 8 * GIB));
        decide(f, 0);
        assert_int_equal(s->admission, ADMISSION_WAIT);
        assert_int_equal(s->target_bytes, 0);
        assert_int_equal(a->target_bytes, 1230 * MIB);
        assert_int_equal(f->sum.sum_target_bytes, a->target_bytes);
        settle(f);
        decide(f, 1000);
        assert_int_equal(s->admission, ADMISSION_ADMIT);
        assert_int_equal(s->target_bytes, GIB);
        assert_int_equal(s->reason, REASON_STARTUP);
}

static void dynmem_projects_rising_demand(void **state)
{
        struct fx *f = *state;

        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 16 * GIB), GIB);
        for (uint64_t now = 0; now <= 10000; now += 1000) {
                demand(a, GIB + now * 100 * MIB / 1000); /* +100 MiB per second */
                decide(f, now);
                assert_true(a->target_bytes >= want_of(a->demand_bytes, 20));
                settle(f);
        }
        /* By now the projection runs ahead of the plain buffer target. */
        assert_true(a->target_bytes > want_of(a->demand_bytes, 20));
        /* It never more than doubles the demand. */
        assert_true(a->target_bytes <= want_of(2 * a->demand_bytes, 20));
}

/*
 * Reports come once a second; decisions also come between them (extra cycles
 * another VM asked for). A report's rise is measured over the time between the
 * samples, not since the last decision: seen 50 ms after a decision, 100 MiB
 * of rise in a second is not 2 GiB a second, and an extra decision without a
 * new sample changes nothing.
 */
static void dynmem_trend_is_measured_between_samples(void **state)
{
        struct fx *f = *state;

        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 16 * GIB), GIB);
        for (uint64_t s = 0; s <= 4; s++) { /* a steady 600 MiB, sampled every second */
                demand(a, 600 * MIB);
                a->demand_time_ms = s * 1000 + 10;
                decide(f, s * 1000 + 950);
                settle(f);
        }
        /* The next report (+100 MiB, sampled at 5010) is decided on at 5010 + 20. */
        demand(a, 700 * MIB);
        a->demand_time_ms = 5010;
        decide(f, 5030);
        uint64_t target = a->target_bytes;
        /* 100 MiB/s smoothed to 50 MiB/s, 5 s ahead: 950 MiB of demand, not twice 700. */
        assert_true(target <= want_of(960 * MIB, 20));
        assert_true(target >= want_of(700 * MIB, 20));
        settle(f);
        decide(f, 5080); /* an extra decision, the same sample */
        assert_int_equal(a->target_bytes, target);
}

/* ---- stall and probing ---- */

/*
 * Decide once a second while the VM stalls; returns the number of decisions
 * until its target rose above what it held (0 = never within `limit`).
 */
static int decisions_until_growth(struct fx *f, struct policy_vm *a, uint64_t *now, int limit)
{
        for (int i = 1; i <= limit; i++) {
                uint64_t before = a->assigned_bytes;
                decide(f, *now);
                *now += 1000;
                if (a->target_bytes > before)
                        return i;
                settle(f);
        }
        return 0;
}

static void stall_grows_a_vm_whose_demand_looks_fine(void **state)
{
        struct fx *f = *state;
        uint64_t now = 0;

        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        demand(a, GIB); /* its demand says 1230 MiB is right */
        stall(a, 0.0);
        decide(f, now);
        assert_int_equal(a->target_bytes, 1230 * MIB);
        now += 1000;
        stall(a, 0.2);
        assert_int_not_equal(decisions_until_growth(f, a, &now, 3), 0);
        assert_int_equal(a->reason, REASON_STALL);
        /* at least current size + stall_grow_percent (10 %) */
        assert_true(a->target_bytes >= size_round_up(1230 * MIB * 11 / 10, 2 * MIB));
        assert_true(a->target_bytes <= 8 * GIB);

        /* Below the threshold (1 %) a stall does not count. */
        f->n = 0;
        now = 0;
        a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        demand(a, GIB);
        stall(a, 0.005);
        assert_int_equal(decisions_until_growth(f, a, &now, 30), 0);

        /* The same stall under hyperv changes nothing. */
        f->n = 0;
        now = 0;
        f->cfg.kind = POLICY_HYPERV;
        a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        demand(a, GIB);
        stall(a, 0.5);
        assert_int_equal(decisions_until_growth(f, a, &now, 30), 0);
        f->cfg.kind = POLICY_DYNMEM;

        /* Never above the maximum. */
        f->n = 0;
        now = 0;
        a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 7 * GIB);
        demand(a, 5 * GIB);
        stall(a, 1.0);
        assert_int_not_equal(decisions_until_growth(f, a, &now, 3), 0);
        assert_int_equal(a->target_bytes, 8 * GIB);
}

/*
 * A stall at want waits for a second stalling decision: the first may be a rise
 * the guest has not reported yet. A stall the guest reported as it began
 * (stall_urgent) comes with a current figure: the first decision grows it.
 */
static void urgent_stall_at_want_grows_at_once(void **state)
{
        struct fx *f = *state;

        for (int urgent = 0; urgent <= 1; urgent++) {
                uint64_t now = 0;
                f->n = 0;
                struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
                demand(a, GIB); /* want: 1 GiB + 20 % = 1230 MiB, what it holds */
                stall(a, 0.0);
                decide(f, now);
                assert_int_equal(a->target_bytes, 1230 * MIB);
                settle(f);
                now += 1000;

                stall(a, 0.2);
                a->stall_urgent = urgent;
                decide(f, now);
                if (!urgent) {
                        assert_int_equal(a->target_bytes, 1230 * MIB);
                        settle(f);
                        now += 1000;
                        decide(f, now); /* the second stalling decision */
                }
                assert_int_equal(a->reason, REASON_STALL);
                /* current size + stall_grow_percent (10 %) + the stalled share (20 %) */
                assert_int_equal(a->target_bytes, size_round_up(1230 * MIB * 13 / 10, 2 * MIB));
        }
}

/*
 * What a stall at want learns is a floor under the working set (what the VM held +
 * stall_grow_percent), not a ratio of the figure: once the figure rises past it (the
 * cache the guest read back entering the figure), the VM is sized as one that never
 * stalled. A ratio would multiply the risen figure, and count the cache twice.
 */
static void a_stall_learns_a_floor_not_a_ratio(void **state)
{
        struct fx *f = *state;
        uint64_t now = 0;

        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 6 * GIB), 1230 * MIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 6 * GIB), 1230 * MIB);
        demand(a, GIB); /* want: 1 GiB + 20 %, what each holds */
        demand(b, GIB);
        stall(a, 0.0);
        stall(b, 0.0);
        decide(f, now);
        settle(f);
        now += 1000;
        stall(a, 0.2); /* a stalls at want; its figure under-counts */
        a->stall_urgent = true;
        decide(f, now);
        assert_int_equal(a->reason, REASON_STALL);
        assert_int_equal(a->target_bytes, size_round_up(1230 * MIB * 13 / 10, 2 * MIB));
        settle(f);
        stall(a, 0.0);
        a->stall_urgent = false;
        /* The floor holds while the figure stays below it: 1230 MiB + 10 % at least. */
        for (int i = 0; i < 5; i++) {
                now += 1000;
                decide(f, now);
                settle(f);
        }
        assert_true(a->target_bytes >= size_round_up(1230 * MIB * 11 / 10, 2 * MIB));
        assert_int_equal(b->target_bytes, 1230 * MIB);

        /* Both figures rise past the floor: a is sized as b, the twin that never stalled. */
        for (int i = 0; i < 10; i++) {
                now += 1000;
                demand(a, 2 * GIB);
                demand(b, 2 * GIB);
                decide(f, now);
                settle(f);
        }
        assert_true(b->target_bytes >= want_of(2 * GIB, 20));
        assert_int_equal(a->target_bytes, b->target_bytes);
}

/*
 * Below the figure it was learned against, the stall's floor falls in proportion:
 * a figure that halves (the job that stalled ended) halves the floor, so a fresh
 * floor does not hold the VM's memory through the quiet that follows.
 */
static void a_stall_floor_falls_with_the_figure(void **state)
{
        struct fx *f = *state;
        uint64_t now = 0;

        struct policy_vm *a = add(f, "a", dyn(GIB, 256 * MIB, 6 * GIB), 1230 * MIB);
        demand(a, GIB);
        stall(a, 0.0);
        decide(f, now);
        settle(f);
        now += 1000;
        stall(a, 0.2);
        a->stall_urgent = true;
        decide(f, now); /* floor: 1230 MiB + 10 %, learned against 1 GiB */
        assert_int_equal(a->reason, REASON_STALL);
        settle(f);
        stall(a, 0.0);
        a->stall_urgent = false;
        for (int i = 0; i < 120; i++) { /* the figure halves; two minutes pass */
                now += 1000;
                demand(a, 512 * MIB);
                decide(f, now);
                settle(f);
        }
        /* half the floor, 677 MiB, + 20 %: not the whole floor's 1624 MiB */
        assert_int_equal(a->target_bytes, size_round_up(1353 * MIB / 2 * 12 / 10, 2 * MIB));
}

/*
 * Below its grow edge (need + 30 % of its headroom) a stalling VM is believed,
 * urgent or not: the missing headroom explains the stall, and it grows back to
 * its want, no further. Above the edge and inside the deadband, a first stall
 * waits (it may be a rise not yet reported) unless the guest has just said it
 * stalls now (stall_urgent): then the figure is current, and it under-counts.
 */
static void urgent_stall_below_want_restores_the_buffer(void **state)
{
        struct fx *f = *state;

        for (int urgent = 0; urgent <= 1; urgent++) {
                f->n = 0;
                struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1060 * MIB);
                demand(a, GIB); /* want 1230 MiB, grow edge 1086 MiB */
                stall(a, 0.5);
                a->stall_urgent = urgent;
                for (uint64_t now = 0; now < 3000; now += 1000) {
                        decide(f, now);
                        assert_int_equal(a->target_bytes, 1230 * MIB);
                        assert_int_not_equal(a->reason, REASON_STALL);
                }

                f->n = 0;
                a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1220 * MIB);
                demand(a, GIB); /* 10 MiB under its want: above the edge, inside the deadband */
                stall(a, 0.5);
                a->stall_urgent = urgent;
                decide(f, 0);
                if (urgent) {
                        assert_int_equal(a->reason, REASON_STALL);
                        assert_true(a->target_bytes > 1230 * MIB);
                } else {
                        assert_int_equal(a->target_bytes, 1220 * MIB);
                        assert_int_equal(a->reason, REASON_HOLD);
                }
        }
}

/*
 * A guest that reports an urgent stall at every decision grows as fast as the
 * stall rule allows and no further: never above its maximum, and under
 * scarcity never at the cost of another VM's minimum or of the host's memory.
 */
static void hostile_urgent_stalls(void **state)
{
        struct fx *f = *state;

        f->host.memory_bytes = 4 * GIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 3 * GIB), GIB);
        struct policy_vm *b = add(f, "b", dyn(2 * GIB, GIB, 4 * GIB), 2 * GIB);
        demand(a, 800 * MIB);
        demand(b, 3 * GIB); /* b wants more than the host has left for it */
        stall(a, 1.0);
        stall(b, 0.0);
        for (uint64_t now = 0; now < 120000; now += 1000) {
                a->stall_urgent = true;
                decide(f, now);
                assert_true(a->target_bytes <= 3 * GIB);
                assert_true(b->target_bytes >= GIB);
                uint64_t held = 0;
                for (size_t i = 0; i < f->n; i++) {
                        const struct policy_vm *v = &f->vms[i];
                        held += v->assigned_bytes > v->target_bytes ? v->assigned_bytes
                                                                    : v->target_bytes;
                }
                assert_true(held <= f->host.memory_bytes);
                settle(f);
        }
        assert_true(b->assigned_bytes >= GIB);
}

/* Run a quiet (never stalling) VM for a while; returns the lowest target seen. */
static uint64_t run_quiet(struct fx *f, struct policy_vm *a, uint64_t from, uint64_t to,
                          uint64_t *first_cut)
{
        uint64_t lowest = UINT64_MAX;

        for (uint64_t now = from; now < to; now += 1000) {
                uint64_t before = a->assigned_bytes;
                decide(f, now);
                if (a->target_bytes < before && first_cut && !*first_cut)
                        *first_cut = now;
                if (a->target_bytes < lowest)
                        lowest = a->target_bytes;
                settle(f);
        }
        return lowest;
}

static void probing_lowers_a_quiet_vm(void **state)
{
        struct fx *f = *state;
        uint64_t first_cut = 0, probe_floor = size_round_up(GIB * 75 / 100, 2 * MIB);
        bool probed = false;

        f->host.memory_bytes = 1300 * MIB; /* contended: probing is worth it */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        demand(a, GIB);
        stall(a, 0.0);
        for (uint64_t now = 0; now < 150 * 1000; now += 1000) {
                uint64_t before = a->assigned_bytes;
                decide(f, now);
                if (a->target_bytes < before && !first_cut)
                        first_cut = now;
                probed |= a->reason == REASON_PROBE;
                /* probe_max_percent (25 %) under the reported demand at most */
                assert_true(a->target_bytes >= probe_floor);
                settle(f);
        }
        assert_true(first_cut >= f->cfg.tunables.probe_after_ms);
        assert_true(probed);
        assert_true(a->assigned_bytes < 1230 * MIB);

        /* It stalls: probing stops and the VM grows again. */
        uint64_t edge = a->assigned_bytes, now = 150 * 1000;
        stall(a, 0.3);
        assert_int_not_equal(decisions_until_growth(f, a, &now, 2), 0);
        assert_false(a->memory.probing);
        settle(f);

        /* For stall_memory_ms it is not probed below the size it stalled at. */
        stall(a, 0.0);
        uint64_t lowest = run_quiet(f, a, now, now + f->cfg.tunables.stall_memory_ms - 10000, NULL);
        assert_true(lowest >= edge);
}

/*
 * A probe learns how far a figure over-counts from where the guest stalls as
 * the probe lowers it. A guest whose figure jumps past what it holds while it
 * is probed stalls because of the rise: that teaches nothing, and the figure
 * is believed (before, the probe took the size held over the new figure as
 * the share the figure over-counts, and kept the VM that far below it for
 * stall_memory_ms).
 */
static void a_rise_during_a_probe_teaches_it_nothing(void **state)
{
        struct fx *f = *state;
        uint64_t now = 0;
        unsigned probing = 0;

        f->host.memory_bytes = 1300 * MIB; /* contended: probing is worth it */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        demand(a, GIB);
        stall(a, 0.0);
        for (; now < 300 * 1000 && probing < 5; now += 1000) {
                decide(f, now);
                probing += a->memory.probing && a->reason == REASON_PROBE;
                settle(f);
        }
        assert_int_equal(probing, 5);
        assert_true(a->assigned_bytes < 1200 * MIB);

        demand(a, 1400 * MIB); /* a job starts: far past what the probe holds */
        stall(a, 0.3);
        decide(f, now);
        assert_false(a->memory.probing);
        assert_true(a->memory.correction_permille == 0 || a->memory.correction_permille >= 1000);
        assert_true(a->need_bytes >= 1400 * MIB);
}

/*
 * A guest that never stalls is probed down to probe_max_percent under its
 * figure; the probe then learns that the figure over-counts and keeps the
 * buffer on top of the corrected demand: it grows back by the buffer only,
 * never to its old, uncorrected want.
 */
static void probing_stops_at_its_floor(void **state)
{
        struct fx *f = *state;
        uint64_t probe_floor = size_round_up(GIB * 75 / 100, 2 * MIB), lowest = UINT64_MAX;
        int regrowths = 0;

        f->host.memory_bytes = 1300 * MIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        demand(a, GIB);
        stall(a, 0.0);
        for (uint64_t now = 0; now < 1800 * 1000; now += 1000) {
                uint64_t before = a->assigned_bytes;
                decide(f, now);
                assert_true(a->target_bytes >= probe_floor);
                assert_true(a->target_bytes <= 1230 * MIB);
                if (a->target_bytes < lowest)
                        lowest = a->target_bytes;
                if (a->target_bytes > before) {
                        regrowths++;
                        /* the corrected demand (what it held without stalling) + 20 % */
                        uint64_t corrected_want = size_round_up(lowest * 12 / 10, 2 * MIB);
                        if (a->target_bytes > corrected_want + 2 * MIB)
                                fail_msg("at %llu ms the probed VM grew back to %llu bytes, above "
                                         "its corrected want %llu",
                                         (unsigned long long)now,
                                         (unsigned long long)a->target_bytes,
                                         (unsigned long long)corrected_want);
                }
                settle(f);
        }
        assert_true(lowest <= probe_floor * 102 / 100); /* all the way down, to a step */
        assert_true(regrowths >= 1);
}

/*
 * A probe's want runs ahead of the VM when decisions are far apart (it
 * descends by the time since the last one, the VM one probing step per
 * decision); when another VM starts to wait for memory, that want is still
 * taken one step at a time, never all at once below what was tested.
 */
static void probe_lands_one_step_at_a_time(void **state)
{
        struct fx *f = *state;
        unsigned probes = 0;

        f->host.memory_bytes = 1400 * MIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        struct policy_vm *b = add(f, "b", dyn(128 * MIB, 64 * MIB, 2 * GIB), 128 * MIB);
        demand(a, GIB);
        stall(a, 0.0);
        demand(b, 100 * MIB);
        stall(b, 0.0);
        for (uint64_t now = 0; now < 1800 * 1000; now += 30 * 1000) {
                uint64_t before = a->assigned_bytes;
                uint64_t step = before / 100 > 2 * MIB ? before / 100 : 2 * MIB;
                /* The fine zone: 5 % over the figure (a steady VM has no cover). */
                uint64_t zone = size_round_up(GIB * 105 / 100, 2 * MIB);
                uint64_t tested = before < zone ? before : zone;
                bool b_waits = probes >= 3;

                if (b_waits)
                        demand(b, 900 * MIB); /* wants far more than is free */
                decide(f, now);
                if (a->target_bytes + step + 2 * MIB < tested)
                        fail_msg("at %llu ms (b waiting: %d) the probed VM went from %llu to %llu "
                                 "bytes at once",
                                 (unsigned long long)now, b_waits, (unsigned long long)before,
                                 (unsigned long long)a->target_bytes);
                probes += a->reason == REASON_PROBE;
                if (b_waits)
                        break;
                settle(f);
        }
        assert_true(probes >= 3);
}

static void probing_never_below_minimum(void **state)
{
        struct fx *f = *state;

        f->host.memory_bytes = 700 * MIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 700 * MIB);
        demand(a, 560 * MIB); /* want 672 MiB; 25 % under demand would be 420 MiB */
        stall(a, 0.0);
        uint64_t lowest = run_quiet(f, a, 0, 1200 * 1000, NULL);
        assert_true(lowest >= 512 * MIB);
        assert_true(lowest < 560 * MIB); /* it was probed, down to the minimum */
}

static void probing_needs_stall_information(void **state)
{
        struct fx *f = *state;

        f->host.memory_bytes = 1300 * MIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        demand(a, GIB);
        uint64_t lowest = run_quiet(f, a, 0, 1200 * 1000, NULL);
        assert_int_equal(lowest, 1230 * MIB);
}

/* ---- admission ---- */

static void admission_admits_when_free(void **state)
{
        struct fx *f = *state;

        f->host.memory_bytes = 4 * GIB;
        add(f, "r", fixed(GIB), GIB);
        struct policy_vm *s = add_starting(f, "s", dyn(2 * GIB, 512 * MIB, 8 * GIB));
        decide(f, 0);
        assert_int_equal(s->admission, ADMISSION_ADMIT);
        assert_int_equal(s->target_bytes, 2 * GIB);
        assert_int_equal(s->reason, REASON_STARTUP);
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
}

static void admission_waits_while_others_shrink(void **state)
{
        static const enum policy_kind kinds[] = {POLICY_HYPERV, POLICY_DYNMEM};

        for (size_t k = 0; k < 2; k++) {
                struct fx *f = *state;
                f->n = 0;
                f->cfg.kind = kinds[k];
                f->host.memory_bytes = 4 * GIB;
                struct policy_vm *r = add(f, "r", dyn(2 * GIB, 512 * MIB, 8 * GIB), 3900 * MIB);
                demand(r, 3 * GIB); /* wants all it has and more */
                struct policy_vm *s = add_starting(f, "s", fixed(3584 * MIB));
                decide(f, 0);
                /* Room exists only with r at its minimum: s waits, r goes down. */
                assert_int_equal(s->admission, ADMISSION_WAIT);
                assert_int_equal(s->target_bytes, 0);
                assert_int_equal(r->target_bytes, 512 * MIB);
                assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
                settle(f);
                decide(f, 1000);
                assert_int_equal(s->admission, ADMISSION_ADMIT);
                assert_int_equal(s->target_bytes, 3584 * MIB);
                assert_int_equal(r->target_bytes, 512 * MIB);
                assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
        }
}

static void admission_refuses_what_cannot_fit(void **state)
{
        struct fx *f = *state;

        f->host.memory_bytes = 4 * GIB;
        add(f, "r1", fixed(2 * GIB), 2 * GIB);
        struct policy_vm *r2 = add(f, "r2", dyn(2 * GIB, 1536 * MIB, 8 * GIB), 2 * GIB);
        demand(r2, 10 * MIB);
        struct policy_vm *s = add_starting(f, "s", fixed(GIB));
        decide(f, 0);
        assert_int_equal(s->admission, ADMISSION_REFUSE);
        assert_int_equal(s->target_bytes, 0);
        /* 512 MiB would fit next to the minimums. */
        s->settings = fixed(512 * MIB);
        decide(f, 1000);
        assert_int_not_equal(s->admission, ADMISSION_REFUSE);

        /* Larger than the whole host. */
        f->n = 0;
        s = add_starting(f, "s", fixed(8 * GIB));
        decide(f, 0);
        assert_int_equal(s->admission, ADMISSION_REFUSE);

        /* Two starters: the first fits, the second does not. */
        f->n = 0;
        f->host.memory_bytes = 2 * GIB;
        struct policy_vm *s1 = add_starting(f, "s1", fixed(1536 * MIB));
        struct policy_vm *s2 = add_starting(f, "s2", fixed(GIB));
        decide(f, 0);
        assert_int_equal(s1->admission, ADMISSION_ADMIT);
        assert_int_equal(s2->admission, ADMISSION_REFUSE);
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);

        /* Off VMs take no part and hold nothing. */
        f->n = 0;
        struct policy_vm *off = add(f, "off", dyn(GIB, 512 * MIB, 4 * GIB), 3 * GIB);
        off->phase = POLICY_PHASE_OFF;
        demand(off, 3 * GIB);
        s = add_starting(f, "s", fixed(2 * GIB));
        decide(f, 0);
        assert_int_equal(s->admission, ADMISSION_ADMIT);
        assert_int_equal(off->target_bytes, 0);
        assert_int_equal(off->admission, ADMISSION_NONE);
}

/* ---- hostile inputs ---- */

static void hostile_demand(void **state)
{
        static const enum policy_kind kinds[] = {POLICY_HYPERV, POLICY_DYNMEM};
        static const uint64_t demands[] = {UINT64_MAX, 0, UINT64_MAX - 1, 1, UINT64_MAX / 2};

        for (size_t k = 0; k < 2; k++) {
                struct fx *f = *state;
                f->n = 0;
                f->cfg.kind = kinds[k];
                struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
                a->settings.buffer_percent = 2000;
                for (uint64_t now = 0; now < 40000; now += 1000) {
                        demand(a, demands[(now / 1000) % 5]);
                        decide(f, now);
                        assert_true(a->target_bytes >= 512 * MIB);
                        assert_true(a->target_bytes <= 4 * GIB);
                        assert_int_equal(a->target_bytes % (2 * MIB), 0);
                        settle(f);
                }
                demand(a, UINT64_MAX);
                decide(f, 50000);
                assert_int_equal(a->target_bytes, 4 * GIB);
        }
}

static void buffer_2000_percent(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_HYPERV;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 64 * GIB), GIB);
        a->settings.buffer_percent = 2000;
        demand(a, GIB);
        f->host.memory_bytes = 64 * GIB;
        decide(f, 0);
        assert_int_equal(a->target_bytes, 21 * GIB);
}

static void hostile_assigned_above_maximum(void **state)
{
        static const enum policy_kind kinds[] = {POLICY_HYPERV, POLICY_DYNMEM};

        for (size_t k = 0; k < 2; k++) {
                struct fx *f = *state;
                f->n = 0;
                f->cfg.kind = kinds[k];
                f->host.memory_bytes = 1024 * GIB;
                struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), 100 * GIB);
                demand(a, GIB);
                decide(f, 0);
                assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
                assert_true(a->ideal_bytes <= 4 * GIB);
                /* Never held above the maximum, not even for the shrink delay. */
                if (a->target_bytes > 4 * GIB)
                        fail_msg("%s keeps a VM assigned 100 GiB (maximum 4 GiB) at %llu bytes",
                                 policy_kind_name(kinds[k]), (unsigned long long)a->target_bytes);
        }
}

static void hostile_stall_values(void **state)
{
        static const double values[] = {-1.0, -0.0, 7.5, INFINITY, -INFINITY, 1e300, 1.0};

        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
                struct fx *f = *state;
                f->n = 0;
                struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
                demand(a, GIB);
                stall(a, values[i]);
                for (uint64_t now = 0; now < 300000; now += 1000) {
                        decide(f, now);
                        assert_true(a->target_bytes >= 512 * MIB);
                        assert_true(a->target_bytes <= 8 * GIB);
                        settle(f);
                }
                if (values[i] > 0.01) /* anything counted as a stall only grows it */
                        assert_int_equal(a->assigned_bytes, 8 * GIB);
        }
}

static void stall_nan_is_not_a_quiet_guest(void **state)
{
        struct fx *f = *state;

        f->host.memory_bytes = 1300 * MIB; /* contended: a quiet guest would be probed */
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1230 * MIB);
        demand(a, GIB);
        stall(a, NAN);
        uint64_t lowest = run_quiet(f, a, 0, 600 * 1000, NULL);
        /* NaN says nothing: the VM is treated as one without stall information. */
        if (lowest < 1230 * MIB)
                fail_msg("a guest reporting a NaN stall share was probed down to %llu bytes",
                         (unsigned long long)lowest);
        /* And a NaN does not make it grow either. */
        assert_int_equal(a->assigned_bytes, 1230 * MIB);
}

/* ---- external proposals ---- */

static void external_proposals_are_clamped(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_EXTERNAL;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *c = add(f, "c", dyn(GIB, 512 * MIB, 4 * GIB), 1500 * MIB);
        struct policy_vm *d = add(f, "d", dyn(GIB, 512 * MIB, 4 * GIB), GIB);
        struct policy_vm *st = add(f, "st", fixed(GIB), GIB);
        a->external_bytes = 10 * GIB;
        b->external_bytes = 100 * MIB;
        c->external_bytes = 0; /* keep */
        d->external_bytes = 1000 * MIB + 1;
        st->external_bytes = 3 * GIB; /* dynamic memory off: ignored */
        decide(f, 0);
        assert_false(f->sum.refused);
        assert_int_equal(a->target_bytes, 4 * GIB);
        assert_int_equal(b->target_bytes, 512 * MIB);
        assert_int_equal(c->target_bytes, 1500 * MIB);
        assert_int_equal(d->target_bytes, 1002 * MIB);
        assert_int_equal(st->target_bytes, GIB);
        assert_int_equal(a->reason, REASON_EXTERNAL);
        settle(f);

        /* "Keep" means the previous target, also after the VM moved. */
        a->external_bytes = b->external_bytes = c->external_bytes = d->external_bytes = 0;
        a->assigned_bytes = 3 * GIB;
        decide(f, 1000);
        assert_int_equal(a->target_bytes, 4 * GIB);
        assert_int_equal(b->target_bytes, 512 * MIB);
}

static void external_proposal_over_memory_is_refused(void **state)
{
        struct fx *f = *state;

        f->cfg.kind = POLICY_EXTERNAL;
        f->host.memory_bytes = 6 * GIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), GIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 8 * GIB), GIB);
        a->external_bytes = 2 * GIB;
        b->external_bytes = 2 * GIB;
        decide(f, 0);
        assert_false(f->sum.refused);
        assert_int_equal(a->target_bytes, 2 * GIB);
        settle(f);

        a->external_bytes = 5 * GIB;
        b->external_bytes = 4 * GIB;
        decide(f, 1000);
        assert_true(f->sum.refused);
        assert_int_equal(a->target_bytes, 2 * GIB); /* the previous targets stand */
        assert_int_equal(b->target_bytes, 2 * GIB);
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);

        /* The next good proposal is taken. */
        a->external_bytes = 3 * GIB;
        b->external_bytes = 3 * GIB;
        decide(f, 2000);
        assert_false(f->sum.refused);
        assert_int_equal(a->target_bytes, 3 * GIB);
        assert_int_equal(b->target_bytes, 3 * GIB);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(kind_names_parse),
            T(reason_names),
            T(scratch_too_small),
            T(plenty_target_is_demand_plus_buffer),
            T(plenty_everyone_gets_want),
            T(scarcity_buffers_go_first),
            T(deep_scarcity_weight_decides),
            T(a_grow_in_flight_is_not_granted_twice),
            T(a_lowered_request_is_held_until_read_back),
            T(equal_weights_share_equally),
            T(never_more_than_need),
            T(weight_zero_takes_leftovers_only),
            T(water_filling_whatever_the_last_decision_did),
            T(overcommitted_holds_everyone_at_minimum),
            T(static_policy_pins_startup),
            T(hyperv_follows_demand_without_hysteresis),
            T(no_demand_keeps_size),
            T(dynmem_grows_at_once),
            T(dynmem_ignores_small_changes),
            T(a_raised_buffer_grows_only_below_the_new_grow_edge),
            T(dynmem_shrinks_after_delay_and_gradually),
            T(dynmem_surplus_restarts_when_demand_returns),
            T(dynmem_hold_keeps_a_resize_in_flight),
            T(dynmem_releases_holds_when_another_waits),
            T(dynmem_projects_rising_demand),
            T(dynmem_trend_is_measured_between_samples),
            T(stall_grows_a_vm_whose_demand_looks_fine),
            T(urgent_stall_at_want_grows_at_once),
            T(a_stall_learns_a_floor_not_a_ratio),
            T(a_stall_floor_falls_with_the_figure),
            T(urgent_stall_below_want_restores_the_buffer),
            T(hostile_urgent_stalls),
            T(probing_lowers_a_quiet_vm),
            T(a_rise_during_a_probe_teaches_it_nothing),
            T(probing_stops_at_its_floor),
            T(probe_lands_one_step_at_a_time),
            T(probing_never_below_minimum),
            T(probing_needs_stall_information),
            T(admission_admits_when_free),
            T(admission_waits_while_others_shrink),
            T(admission_refuses_what_cannot_fit),
            T(hostile_demand),
            T(buffer_2000_percent),
            T(hostile_assigned_above_maximum),
            T(hostile_stall_values),
            T(stall_nan_is_not_a_quiet_guest),
            T(external_proposals_are_clamped),
            T(external_proposal_over_memory_is_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
