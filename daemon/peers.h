/*
 * peers: the hosts named in [peer "NAME"] sections, as this dynmemd sees
 * them (docs/migration.md). Each peer's dynmemd is asked, read-only, over
 * its HTTP API (GET /api/v1/status, libevent's HTTP client on dynmemd's
 * loop, never blocking it) how much memory it has available for balancing;
 * every PEERS_INTERVAL_MS, and at once when the relief rule needs a fresh
 * answer. A peer's reply is input from another machine: bounded in size,
 * and every number range-checked.
 */
#ifndef DYNMEM_PEERS_H
#define DYNMEM_PEERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define PEERS_INTERVAL_MS 30000        /* a peer is asked this often anyway */
#define PEERS_BODY_MAX    (256 * 1024) /* a larger reply is refused */
#define PEERS_FRESH_MS    60000        /* an answer older than this is not used */

struct event_base;
struct evdns_base;
struct peers;

enum peer_state {
        PEER_UNKNOWN, /* not asked yet */
        PEER_UP,      /* answered */
        PEER_DOWN,    /* did not answer, or answered nonsense (error says which) */
};

struct peer_view {
        const char *name, *libvirt_uri, *http;
        enum peer_state state;
        const char *error;     /* PEER_DOWN: why */
        uint64_t answered_ms;  /* monotonic ms of the last good answer, 0 never */
        uint64_t memory_bytes; /* its memory for VMs */
        uint64_t assigned_bytes;
        uint64_t available_bytes; /* available for balancing: free + what VMs hold above need */
        uint64_t running;         /* VMs running there */
};

/*
 * The peers of a configuration (none: *ret NULL, 0). Every http must be
 * http://HOST[:PORT]; -EINVAL with the reason in err otherwise.
 * on_answered(userdata) runs when a round of questions is over. A peer's
 * name is looked up with dns (resolver.h) before each question; peers_free()
 * cancels a lookup under way, whose callback, run later in the loop, uses
 * nothing of the peers: dns must outlive them.
 */
int peers_new(struct event_base *base, struct evdns_base *dns, const struct config_cluster *c,
              void (*on_answered)(void *userdata), void *userdata, struct peers **ret, char *err,
              size_t errlen);
void peers_free(struct peers *p);

/* Whether one peer's http is http://HOST[:PORT], as peers_new() takes it: 0, or -EINVAL and why. */
int peers_check_http(const struct config_peer *cp, char *err, size_t errlen);

/* Ask every peer now (a round; a peer with a question in flight is not asked again). */
void peers_ask(struct peers *p);

/* A round of questions is under way. */
bool peers_asking(const struct peers *p);

size_t peers_count(const struct peers *p);

/* What is known of peer i (valid until the next call into peers). */
void peers_view(const struct peers *p, size_t i, struct peer_view *ret);

/* Index of the peer named name, or peers_count() when none. */
size_t peers_find(const struct peers *p, const char *name);

/* [{name, libvirt_uri, http, state, error, age_ms, memory_bytes, ...}] for dynmem status. */
json_t *peers_json(const struct peers *p);

/* Parse a peer's status reply (exposed for tests and fuzzing): 0 or -EINVAL with err. */
int peers_parse_status(const char *body, size_t len, struct peer_view *ret, char *err,
                       size_t errlen);

#endif
