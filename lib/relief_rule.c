/*
 * relief_rule: the relief rule, pure. See relief_rule.h and docs/migration.md.
 */
#include "relief_rule.h"

#include <errno.h>

bool relief_due(struct relief_state *s, const struct relief_rule *rule, bool is_short,
                uint64_t now_ms)
{
        if (!is_short) {
                s->short_since_ms = 0;
                return false;
        }
        if (!s->short_since_ms)
                s->short_since_ms = now_ms ? now_ms : 1;
        return now_ms >= s->quiet_until_ms && now_ms - s->short_since_ms >= rule->shortage_for_ms;
}

void relief_tried(struct relief_state *s, const struct relief_rule *rule, uint64_t now_ms)
{
        s->quiet_until_ms = now_ms + rule->cooldown_ms;
        s->short_since_ms = 0;
        s->tries++;
}

void relief_ended(struct relief_state *s)
{
        s->short_since_ms = 0;
}

uint64_t relief_short_for(const struct relief_state *s, uint64_t now_ms)
{
        return s->short_since_ms && now_ms > s->short_since_ms ? now_ms - s->short_since_ms : 0;
}

/* a goes before b: lighter, then less to copy. */
static bool before(const struct relief_candidate *a, const struct relief_candidate *b)
{
        return a->weight != b->weight ? a->weight < b->weight : a->bytes < b->bytes;
}

/* The peer with the most room for bytes, or n_peers when none has enough. */
static size_t roomiest(const struct relief_peer_room *peers, size_t n_peers, uint64_t bytes)
{
        size_t best = n_peers;

        for (size_t j = 0; j < n_peers; j++)
                if (peers[j].known && peers[j].available_bytes >= bytes &&
                    (best == n_peers || peers[j].available_bytes > peers[best].available_bytes))
                        best = j;
        return best;
}

int relief_pick(const struct relief_candidate *vms, size_t n, const struct relief_peer_room *peers,
                size_t n_peers, size_t *ret_vm, size_t *ret_peer)
{
        size_t best = n, where = n_peers;

        for (size_t i = 0; i < n; i++) {
                if (!vms[i].movable || (best < n && !before(&vms[i], &vms[best])))
                        continue;
                size_t j = roomiest(peers, n_peers, vms[i].bytes);
                if (j < n_peers) {
                        best = i;
                        where = j;
                }
        }
        if (best == n)
                return -ENOENT;
        *ret_vm = best;
        *ret_peer = where;
        return 0;
}
