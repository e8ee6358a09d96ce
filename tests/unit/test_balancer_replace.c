/*
 * Tests for balancer_replace_policy(), a reload's change of policy: all or
 * nothing. Every allocation the replacement makes is made to fail in turn
 * (malloc, calloc, realloc and strdup are this test's, -Wl,--wrap): after
 * each failure the policy in force is the old one, untouched and still
 * holding its VMs; once nothing fails, the new one is in force with the old
 * one's host, counters and event callback.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <event2/event.h>

#include "balancer.h"

#define N_VMS 3

/* ---- allocations that fail on demand ---- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);

static long fail_at = -1; /* the allocation (0 the first) that fails, -1 none */
static long allocations;

static bool fails(void)
{
        return fail_at >= 0 && allocations++ == fail_at;
}

void *__wrap_malloc(size_t size)
{
        return fails() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
        return fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
        return fails() ? NULL : __real_realloc(p, size);
}

char *__wrap_strdup(const char *s)
{
        return fails() ? NULL : __real_strdup(s);
}

/* ---- the rig: a balancer in force with its VMs ---- */

struct rig {
        struct event_base *base;
        struct balancer bal;
        struct vm vms[N_VMS];
        struct vm *ptrs[N_VMS];
};

static void on_event(const struct balancer_event *ev, void *userdata)
{
        (void)ev, (void)userdata;
}

static void on_reply(void *userdata)
{
        (void)userdata;
}

static void rig_start(struct rig *r, const char *policy)
{
        char err[256] = "";

        *r = (struct rig){.base = event_base_new()};
        assert_non_null(r->base);
        for (size_t i = 0; i < N_VMS; i++) {
                snprintf(r->vms[i].name, sizeof(r->vms[i].name), "vm%zu", i);
                r->ptrs[i] = &r->vms[i];
        }
        assert_int_equal(balancer_init(&r->bal, policy, NULL, NULL, err, sizeof(err)), 0);
        assert_int_equal(balancer_attach_loop(&r->bal, r->base, on_reply, r), 0);
        assert_int_equal(balancer_set_vms(&r->bal, r->ptrs, N_VMS), 0);
        r->bal.host.memory_bytes = 8ULL << 30;
        r->bal.counters.policy_refusals = 7;
        r->bal.on_event = on_event;
        r->bal.event_userdata = r;
        r->bal.pv[1].memory.last_target_bytes = 1ULL << 30; /* what the policy remembers */
}

static void rig_stop(struct rig *r)
{
        balancer_fini(&r->bal);
        event_base_free(r->base);
}

/*
 * Replace r's policy with `policy`, failing each allocation in turn until
 * none fails; after every failure r's balancer must be exactly what it was.
 * Returns how many attempts failed.
 */
static long replace_failing_each_step(struct rig *r, const char *policy)
{
        const struct balancer before = r->bal;
        const struct policy_vm_memory remembered = r->bal.pv[1].memory;
        long failures = 0;

        for (long k = 0;; k++) {
                char err[256] = "";
                allocations = 0;
                fail_at = k;
                int ret = balancer_replace_policy(&r->bal, policy, NULL, r->ptrs, N_VMS, r->base,
                                                  on_reply, r, err, sizeof(err));
                fail_at = -1;
                if (ret == 0)
                        break;
                failures++;
                assert_int_equal(ret, -ENOMEM);
                assert_string_equal(err, "out of memory");
                /* the old policy runs on, with its VMs and what it remembers of them */
                assert_int_equal(r->bal.policy.kind, before.policy.kind);
                assert_ptr_equal(r->bal.exec, before.exec);
                assert_ptr_equal(r->bal.pv, before.pv);
                assert_ptr_equal(r->bal.vms, before.vms);
                assert_int_equal(r->bal.n_vms, before.n_vms);
                assert_int_equal(r->bal.generation, before.generation);
                assert_memory_equal(&r->bal.pv[1].memory, &remembered, sizeof(remembered));
                for (size_t i = 0; i < N_VMS; i++) {
                        assert_int_equal(r->vms[i].balancer_slot, i);
                        assert_int_equal(r->vms[i].balancer_generation, before.generation);
                }
                assert_true(k < 1000);
        }
        /* the new policy is in force, with the old one's host, counters and callback */
        assert_int_equal(r->bal.host.memory_bytes, 8ULL << 30);
        assert_int_equal(r->bal.counters.policy_refusals, 7);
        assert_ptr_equal(r->bal.on_event, on_event);
        assert_ptr_equal(r->bal.event_userdata, r);
        assert_int_equal(r->bal.n_vms, N_VMS);
        assert_ptr_equal(r->bal.vms, r->ptrs);
        assert_non_null(r->bal.pv);
        for (size_t i = 0; i < N_VMS; i++) {
                assert_int_equal(r->vms[i].balancer_slot, i);
                assert_int_equal(r->vms[i].balancer_generation, r->bal.generation);
        }
        assert_int_equal(r->bal.pv[1].memory.last_target_bytes, 0); /* a fresh memory */
        return failures;
}

static void builtin_to_exec(void **state)
{
        struct rig r;

        (void)state;
        rig_start(&r, "dynmem");
        /* the program's record and command, its loop, the VMs' slots and scratch */
        assert_true(replace_failing_each_step(&r, "exec:cat") >= 5);
        assert_int_equal(r.bal.policy.kind, POLICY_EXTERNAL);
        assert_non_null(r.bal.exec);
        rig_stop(&r);
}

static void exec_to_builtin(void **state)
{
        struct rig r;

        (void)state;
        rig_start(&r, "exec:cat");
        assert_true(replace_failing_each_step(&r, "hyperv") >= 2); /* the VMs' slots, scratch */
        assert_int_equal(r.bal.policy.kind, POLICY_HYPERV);
        assert_null(r.bal.exec);
        rig_stop(&r);
}

static void exec_to_another_exec(void **state)
{
        struct rig r;

        (void)state;
        rig_start(&r, "exec:cat");
        assert_true(replace_failing_each_step(&r, "exec:cat -u") >= 5);
        assert_int_equal(r.bal.policy.kind, POLICY_EXTERNAL);
        rig_stop(&r);
}

static void unknown_policy_keeps_the_old(void **state)
{
        struct rig r;
        char err[256] = "";

        (void)state;
        rig_start(&r, "static");
        struct policy_vm *pv = r.bal.pv;
        assert_int_equal(balancer_replace_policy(&r.bal, "magic", NULL, r.ptrs, N_VMS, r.base,
                                                 on_reply, &r, err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "unknown policy"));
        assert_int_equal(r.bal.policy.kind, POLICY_STATIC);
        assert_ptr_equal(r.bal.pv, pv);
        rig_stop(&r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(builtin_to_exec),
            cmocka_unit_test(exec_to_builtin),
            cmocka_unit_test(exec_to_another_exec),
            cmocka_unit_test(unknown_policy_keeps_the_old),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
