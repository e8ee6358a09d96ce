/*
 * relief: hosts that relieve each other ([cluster] relief = yes,
 * docs/migration.md). After every cycle the host's verdict (short of memory
 * for its VMs' need, or not) goes to the rule (lib/relief_rule); when a move is
 * due the peers are asked what they have available for balancing, a VM is
 * picked (lowest weight that fits, then least memory to copy), and it is
 * live-migrated through libvirt by `dynmem migrate` (a child process: the
 * migration call blocks; dynmemd's loop never does), persistent on the peer
 * and undefined here. The peer's admission still decides. Every move, and
 * every shortage that found no room, is an event with its reason, counted,
 * in dynmem events, the web page and /metrics.
 *
 * The dynmem program run is $DYNMEM_CLI when set, else the installed one.
 */
#ifndef DYNMEM_RELIEF_DAEMON_H
#define DYNMEM_RELIEF_DAEMON_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#define RELIEF_MOVE_TIMEOUT "30m" /* a move still running then is aborted (dynmem migrate) */

struct daemon;
struct relief;

struct relief_counts {
        uint64_t moves;   /* moves started */
        uint64_t done;    /* ... that ended with the VM on the peer */
        uint64_t failed;  /* ... that did not */
        uint64_t no_room; /* sustained shortages that found no peer with room */
};

/* Set up from d->cfg.cluster (peers and the rule). 0, or a negative errno (logged). */
int relief_init(struct daemon *d);
void relief_free(struct daemon *d);

/* The configuration was reloaded: peers and rule from it (kept while a move runs). */
void relief_reload(struct daemon *d);

/* After each cycle. */
void relief_cycle(struct daemon *d);

/* A VM arrived here by live migration: not moved again within the cooldown. */
void relief_note_arrival(struct daemon *d, const char *name);

/* "relief" and "peers" for dynmem status: {enabled, short, short_for_ms, ...}, [...]. */
json_t *relief_json(struct daemon *d);
json_t *relief_peers_json(struct daemon *d);

/* Prometheus lines: moves, failures, shortage, peers. */
void relief_metrics(FILE *f, struct daemon *d);

#endif
