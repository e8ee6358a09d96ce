/*
 * proto: the guest's side of the protocol (docs/guest-protocol.md): reading
 * the host's hello, choosing the version, and writing the agent's hello and
 * reports with the words of lib/agent_wire.h. Pure: text in, text out.
 */
#ifndef DYNMEM_GUEST_PROTO_H
#define DYNMEM_GUEST_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_wire.h"
#include "sample.h"

struct proto_host_hello {
        uint64_t min, max;
        bool has_interval;
        uint64_t interval_ms;
};

/* What the agent offers in its hello. */
struct proto_offer {
        uint32_t min, max; /* versions it speaks */
        uint32_t version;  /* chosen one; 0 = incompatible; ignored in an announcement */
        bool announce;     /* no version: the agent announces itself */
        uint64_t interval_ms;
        unsigned caps; /* AGENT_CAP_* */
        uint64_t page_size;
        const char *software;
};

/*
 * Classify a line from the host: 1 = a hello (parsed into ret), 0 = some
 * other type (ignored), <0 = malformed or a hello with bad values.
 */
int proto_parse_host(const char *line, size_t len, struct proto_host_hello *ret);

/* Highest version both speak, or 0 when the ranges do not meet. */
uint32_t proto_choose(uint32_t my_min, uint32_t my_max, uint64_t host_min, uint64_t host_max);

/* Write the hello / a report line (with newline). Length, or 0 if buf is too small. */
size_t proto_hello(const struct proto_offer *o, char *buf, size_t len);
size_t proto_report(const struct sample *s, uint64_t seq, enum agent_cause cause, uint64_t onlined,
                    char *buf, size_t len);

#endif
