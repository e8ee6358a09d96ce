/*
 * agent_wire: the words of the guest agent protocol (docs/guest-protocol.md),
 * described once for both ends: the host's parser (lib/agent.c) and the
 * guest agent (guest/agent/proto.c, which links agent_wire.c and nothing
 * else of libdynmem: it is static and needs libc only). The framing and its
 * limits, the message types, the hello's keys, the capabilities, the causes
 * and every report key with its range and group. No I/O.
 */
#ifndef DYNMEM_AGENT_WIRE_H
#define DYNMEM_AGENT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- framing and limits ---- */

#define AGENT_MAGIC            "DMG1" /* first word of every line: the framing, not the version */
#define AGENT_PROTO_MIN        1      /* protocol versions this side speaks */
#define AGENT_PROTO_MAX        1
#define AGENT_VERSION_MAX      1000 /* the largest version either side may name */
#define AGENT_LINE_MAX         1024 /* bytes per line, newline included */
#define AGENT_WORD_MAX         64   /* bytes per type, key or value */
#define AGENT_FIELDS_MAX       48   /* key=value pairs per line */
#define AGENT_INTERVAL_MIN     100  /* report interval range, ms */
#define AGENT_INTERVAL_MAX     60000
#define AGENT_INTERVAL_DEFAULT 1000
#define AGENT_PAGE_SIZE_MIN    4096
#define AGENT_PAGE_SIZE_MAX    (1u << 20)
#define AGENT_BYTES_MAX        ((uint64_t)1 << 44) /* 16 TiB: no byte field may exceed it */
#define AGENT_COUNT_MAX        ((uint64_t)1 << 62) /* counters: far beyond any real value */
#define AGENT_TIME_MAX         ((uint64_t)1 << 53)
#define AGENT_PORT_NAME        "org.dynmem.agent.0"

/* The message types. */
#define AGENT_TYPE_HELLO  "hello"
#define AGENT_TYPE_REPORT "report"

/* ---- hello ---- */

/* The hello's keys; numbers but for the agent's software version. */
enum agent_hello_key {
        AGENT_HELLO_MIN,         /* lowest version the sender speaks */
        AGENT_HELLO_MAX,         /* highest */
        AGENT_HELLO_VERSION,     /* the agent's choice (0: incompatible); absent: an announcement */
        AGENT_HELLO_INTERVAL_MS, /* the report interval */
        AGENT_HELLO_PAGE_SIZE,   /* the guest's page size */
        AGENT_HELLO_SOFTWARE,    /* the agent's own version, a word */
        AGENT_HELLO_N_KEYS,
};

struct agent_hello_key_desc {
        const char *key;
        uint64_t max; /* numbers: the largest value; 0 for the word */
};

extern const struct agent_hello_key_desc agent_hello_keys[AGENT_HELLO_N_KEYS];

/* Capabilities an agent announces in its hello, each a 0/1 key. */
enum agent_cap {
        AGENT_CAP_BALLOON = 1u << 0,        /* a virtio-balloon device is bound */
        AGENT_CAP_VIRTIO_MEM = 1u << 1,     /* a virtio-mem device is bound */
        AGENT_CAP_PSI = 1u << 2,            /* /proc/pressure/memory is readable */
        AGENT_CAP_PSI_TRIGGER = 1u << 3,    /* a PSI trigger is armed (else 100 ms polling) */
        AGENT_CAP_ONLINE_MOVABLE = 1u << 4, /* the agent can bring memory blocks online */
        AGENT_CAP_ABSORBER = 1u << 5,       /* the agent has set up its burst absorber */
};
#define AGENT_N_CAPS 6

struct agent_cap_desc {
        unsigned cap;
        const char *key;   /* in the hello: "virtio_mem" */
        const char *label; /* for people: "virtio-mem" */
};

/* Row i is the capability 1u << i. */
extern const struct agent_cap_desc agent_caps_table[AGENT_N_CAPS];

/* The labels of caps: "balloon,virtio-mem,psi,psi-trigger,online-movable", or "none". Returns buf.
 */
char *agent_caps_format(unsigned caps, char *buf, size_t len);

/* ---- report ---- */

/* Why the agent sent a report (the "cause" key; an unknown one reads as tick). */
enum agent_cause {
        AGENT_CAUSE_TICK,  /* the interval elapsed */
        AGENT_CAUSE_PSI,   /* the guest started to stall (PSI trigger or polling) */
        AGENT_CAUSE_HELLO, /* first report after the handshake */
        AGENT_N_CAUSES,
};

#define AGENT_CAUSE_KEY "cause"

extern const char *const agent_cause_names[AGENT_N_CAUSES];

/* Groups of optional report keys: when one key of a group is present, all must be. */
enum agent_have {
        AGENT_HAVE_AVAILABLE = 1u << 0, /* mem_available_bytes (Linux >= 3.14) */
        AGENT_HAVE_PSI = 1u << 1,       /* psi_some_* */
        AGENT_HAVE_PSI_FULL = 1u << 2,  /* psi_full_* */
        AGENT_HAVE_REFAULTS = 1u << 3,  /* refaults */
        AGENT_HAVE_BALLOON = 1u << 4,   /* balloon_bytes, balloon_in_total */
        AGENT_HAVE_SELF = 1u << 5,      /* self_rss_bytes, self_cpu_us */
        AGENT_HAVE_ABSORBER = 1u << 6, /* absorber_bytes, absorber_ram_bytes, absorber_size_bytes */
        AGENT_HAVE_RECLAIM = 1u << 7,  /* file_reclaimed (Linux >= 5.8) */
        AGENT_HAVE_SWAP = 1u << 8,     /* swap_free_bytes (older agents: swap unknown) */
};

#define AGENT_ABSORBER_MAX_TOTALS 2 /* an absorber holds at most 2 x MemTotal */
/*
 * The room a guest drains its absorber into: MemAvailable + absorber_ram_bytes
 * must reach absorber_bytes + MemTotal / AGENT_ABSORBER_ROOM_DIV. The agent waits
 * for it; the host counts it in the demand while the absorber holds pages.
 */
#define AGENT_ABSORBER_ROOM_DIV 32

/* The report's number keys. */
enum agent_report_key {
        AGENT_R_SEQ,
        AGENT_R_TIME_MS,
        AGENT_R_MEM_TOTAL,
        AGENT_R_MEM_FREE,
        AGENT_R_MEM_AVAILABLE,
        AGENT_R_CACHED,
        AGENT_R_ACTIVE_FILE,
        AGENT_R_COMMITTED,
        AGENT_R_SWAP_USED,
        AGENT_R_BALLOON,
        AGENT_R_BALLOON_IN_TOTAL,
        AGENT_R_PSI_SOME_AVG10,
        AGENT_R_PSI_SOME_TOTAL,
        AGENT_R_PSI_FULL_AVG10,
        AGENT_R_PSI_FULL_TOTAL,
        AGENT_R_PGMAJFAULT,
        AGENT_R_REFAULTS,
        AGENT_R_OOM_KILL,
        AGENT_R_ONLINED,
        AGENT_R_SELF_RSS,
        AGENT_R_SELF_CPU,
        AGENT_R_ABSORBER,       /* pages in the guest's burst absorber: what RAM lacks */
        AGENT_R_ABSORBER_RAM,   /* RAM the absorber holds for them (compressed) */
        AGENT_R_ABSORBER_SIZE,  /* its size, <= AGENT_ABSORBER_MAX_TOTALS x MemTotal */
        AGENT_R_FILE_RECLAIMED, /* page-cache pages the kernel reclaimed (pgsteal_file) */
        AGENT_R_SWAP_FREE,      /* SwapFree: room left in its swap areas, the absorber's too */
        AGENT_R_N_KEYS,
};

struct agent_report_key_desc {
        const char *key;
        uint64_t max;  /* the largest value (the parser checks more, e.g. against MemTotal) */
        uint32_t have; /* its group (enum agent_have), 0 for none */
        bool required;
};

extern const struct agent_report_key_desc agent_report_keys[AGENT_R_N_KEYS];

#endif
