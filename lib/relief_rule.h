/*
 * relief_rule: the rule by which a host short of memory moves a VM to a peer
 * host (docs/migration.md, "The relief rule"). Pure: the daemon feeds it one
 * verdict a cycle and what its peers said; it answers when to move and what.
 *
 *   short      the running VMs need more than the host's memory for VMs:
 *              the sum of their need (demand without buffer, within minimum
 *              and maximum, as the last decision estimated it) exceeds it;
 *   sustained  short at every cycle for shortage_for; one cycle not short
 *              starts the count again;
 *   no flapping after a move is tried (done, failed or found no room)
 *              nothing is tried for cooldown, and the shortage must then be
 *              sustained anew, counted from the end of the move (the host
 *              stays short while a VM is on its way, which must not count
 *              toward moving the next); a VM that arrived by migration less than
 *              cooldown ago is not moved (no ping-pong between two hosts);
 *   the pick   among the VMs that may move, the lowest weight first, then
 *              the least memory to copy (what it holds); it goes to the peer
 *              with the most memory available for balancing, if that is at
 *              least what it holds. The peer's own admission still decides.
 */
#ifndef DYNMEM_RELIEF_RULE_H
#define DYNMEM_RELIEF_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relief_rule {
        uint64_t shortage_for_ms;
        uint64_t cooldown_ms;
};

struct relief_state {
        uint64_t short_since_ms; /* the current shortage began then; 0: not short */
        uint64_t quiet_until_ms; /* no try before then (cooldown) */
        uint64_t tries;          /* moves tried */
};

/*
 * One cycle's verdict (is_short) at now_ms. True when a move is due now:
 * short for shortage_for without a break, and out of the cooldown.
 */
bool relief_due(struct relief_state *s, const struct relief_rule *rule, bool is_short,
                uint64_t now_ms);

/* A move was tried (whatever came of it): cooldown, and the shortage counts anew. */
void relief_tried(struct relief_state *s, const struct relief_rule *rule, uint64_t now_ms);

/*
 * The move tried has ended (done or failed): the shortage it was to relieve
 * counts anew from the next verdict, however long the move took.
 */
void relief_ended(struct relief_state *s);

/* How long the current shortage has lasted at now_ms (0: not short). */
uint64_t relief_short_for(const struct relief_state *s, uint64_t now_ms);

struct relief_candidate {
        uint32_t weight;
        uint64_t bytes; /* what it holds: the memory to copy and to place on the peer */
        bool movable;   /* runs here, not migrating, not arrived within the cooldown */
};

struct relief_peer_room {
        bool known;               /* the peer answered lately */
        uint64_t available_bytes; /* its memory available for balancing */
};

/*
 * The VM to move and where to: 0 with the indexes, or -ENOENT when no
 * movable VM fits on any peer.
 */
int relief_pick(const struct relief_candidate *vms, size_t n, const struct relief_peer_room *peers,
                size_t n_peers, size_t *ret_vm, size_t *ret_peer);

#endif
