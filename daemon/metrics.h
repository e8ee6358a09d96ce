/*
 * metrics: the two counter sets (lib/counters.h) for readers: the JSON of
 * `dynmem counters` and GET /api/v1/counters, and the Prometheus text
 * (format 0.0.4) of GET /metrics. Both are read from the same tables, so
 * every reader names and scales a counter alike; docs/counters.md lists
 * them.
 */
#ifndef DYNMEM_METRICS_H
#define DYNMEM_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

struct daemon;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * {"time_ms": ..., "balancer": {...}, "vms": {"NAME": {...}, ...}} with the
 * counters' snake-case keys; unknown values are null. With vm_name, only
 * that VM (-ENOENT when there is none). Returns 0 with the object in *ret,
 * -ENOENT or -ENOMEM.
 */
int metrics_counters_json(struct daemon *d, const char *vm_name, json_t **ret);

/* A label value with backslash, double quote and newline escaped, as the text format wants. */
void metrics_write_label(FILE *f, const char *text);

/* The Prometheus exposition text (caller frees), its length in *ret_len; NULL on ENOMEM. */
char *metrics_prometheus(struct daemon *d, size_t *ret_len);

#endif
