/*
 * Tests for the relief rule (lib/relief_rule): when a shortage is sustained
 * enough to move a VM (continuous, out of the cooldown, never twice for one
 * shortage, not counted through a move under way) and which VM goes where
 * (lowest weight that fits, then least memory to copy, to the peer with the
 * most room).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relief_rule.h"
#include "units.h"

static const struct relief_rule rule = {.shortage_for_ms = 60000, .cooldown_ms = 300000};

/* Feed one verdict a second from `from` to `to` (ms); the first time a move is due, or 0. */
static uint64_t first_due(struct relief_state *s, bool is_short, uint64_t from, uint64_t to)
{
        for (uint64_t t = from; t <= to; t += 1000)
                if (relief_due(s, &rule, is_short, t))
                        return t;
        return 0;
}

static void a_shortage_must_last(void **state)
{
        struct relief_state s = {0};

        (void)state;
        assert_int_equal(first_due(&s, true, 1000, 60000), 0);
        assert_int_equal(relief_short_for(&s, 60000), 59000);
        assert_int_equal(first_due(&s, true, 61000, 70000), 61000);
}

static void one_cycle_without_shortage_starts_the_count_again(void **state)
{
        struct relief_state s = {0};

        (void)state;
        assert_int_equal(first_due(&s, true, 1000, 59000), 0);
        assert_false(relief_due(&s, &rule, false, 60000)); /* a break: no flapping on a blip */
        assert_int_equal(relief_short_for(&s, 60000), 0);
        assert_int_equal(first_due(&s, true, 61000, 120000), 0);
        assert_int_equal(first_due(&s, true, 121000, 130000), 121000);
}

static void after_a_try_the_cooldown_and_a_new_shortage(void **state)
{
        struct relief_state s = {0};

        (void)state;
        uint64_t t = first_due(&s, true, 1000, 100000);
        assert_int_equal(t, 61000);
        relief_tried(&s, &rule, t);
        assert_int_equal(s.tries, 1);
        /* still short all along: nothing during the cooldown (5 min) */
        assert_int_equal(first_due(&s, true, t + 1000, t + 300000 - 1000), 0);
        /* the shortage counted from the try: due again at the end of the cooldown */
        assert_int_equal(first_due(&s, true, t + 300000, t + 400000), t + 300000);
}

static void the_cooldown_holds_even_for_a_new_long_shortage(void **state)
{
        struct relief_state s = {0};

        (void)state;
        relief_tried(&s, &rule, 10000);
        assert_false(relief_due(&s, &rule, false, 20000));
        assert_int_equal(first_due(&s, true, 21000, 309000), 0);
        assert_int_equal(first_due(&s, true, 310000, 320000), 310000);
}

/*
 * A move longer than both cooldown and shortage_for: the host stays short
 * while the VM is on its way, but the next move needs a shortage sustained
 * after this one ended, not one counted through it.
 */
static void a_long_move_does_not_count_toward_the_next(void **state)
{
        struct relief_state s = {0};

        (void)state;
        uint64_t t = first_due(&s, true, 1000, 100000);
        assert_int_equal(t, 61000);
        relief_tried(&s, &rule, t);
        /* the move runs 10 min, short all along (the daemon ignores a due move meanwhile) */
        uint64_t end = t + 600000;
        assert_int_equal(first_due(&s, true, t + 1000, end - 1000), t + 300000);
        relief_ended(&s);
        assert_int_equal(relief_short_for(&s, end), 0);
        assert_int_equal(first_due(&s, true, end, end + 59000), 0);
        assert_int_equal(first_due(&s, true, end + 60000, end + 70000), end + 60000);
}

/* ---- the pick ---- */

static void lowest_weight_that_fits_goes(void **state)
{
        const struct relief_candidate vms[] = {
            {.weight = 1000, .bytes = 4 * GIB, .movable = true}, /* lightest, fits nowhere */
            {.weight = 2000, .bytes = 1 * GIB, .movable = true},
            {.weight = 2000, .bytes = 512 * MIB, .movable = true}, /* same weight, less to copy */
            {.weight = 500, .bytes = 256 * MIB, .movable = false}, /* migrating, or just came */
        };
        const struct relief_peer_room peers[] = {
            {.known = true, .available_bytes = 2 * GIB},
            {.known = true, .available_bytes = 3 * GIB},
            {.known = false, .available_bytes = 100 * GIB}, /* not answering: not used */
        };
        size_t vm = 99, peer = 99;

        (void)state;
        assert_int_equal(relief_pick(vms, 4, peers, 3, &vm, &peer), 0);
        assert_int_equal(vm, 2);
        assert_int_equal(peer, 1); /* the peer with the most room */
}

static void nothing_fits_nothing_moves(void **state)
{
        const struct relief_candidate vms[] = {
            {.weight = 1000, .bytes = 4 * GIB, .movable = true},
            {.weight = 100, .bytes = 64 * MIB, .movable = false},
        };
        const struct relief_peer_room peers[] = {{.known = true, .available_bytes = 2 * GIB},
                                                 {.known = false, .available_bytes = 8 * GIB}};
        size_t vm = 99, peer = 99;

        (void)state;
        assert_int_equal(relief_pick(vms, 2, peers, 2, &vm, &peer), -ENOENT);
        assert_int_equal(relief_pick(vms, 0, peers, 2, &vm, &peer), -ENOENT);
        assert_int_equal(relief_pick(vms, 2, peers, 0, &vm, &peer), -ENOENT);
        assert_int_equal(vm, 99);
}

static void a_peer_with_just_enough_room_takes_it(void **state)
{
        const struct relief_candidate vms[] = {{.weight = 5000, .bytes = GIB, .movable = true}};
        const struct relief_peer_room peers[] = {{.known = true, .available_bytes = GIB - 1},
                                                 {.known = true, .available_bytes = GIB}};
        size_t vm = 99, peer = 99;

        (void)state;
        assert_int_equal(relief_pick(vms, 1, peers, 2, &vm, &peer), 0);
        assert_int_equal(vm, 0);
        assert_int_equal(peer, 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_shortage_must_last),
            cmocka_unit_test(one_cycle_without_shortage_starts_the_count_again),
            cmocka_unit_test(after_a_try_the_cooldown_and_a_new_shortage),
            cmocka_unit_test(the_cooldown_holds_even_for_a_new_long_shortage),
            cmocka_unit_test(a_long_move_does_not_count_toward_the_next),
            cmocka_unit_test(lowest_weight_that_fits_goes),
            cmocka_unit_test(nothing_fits_nothing_moves),
            cmocka_unit_test(a_peer_with_just_enough_room_takes_it),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
