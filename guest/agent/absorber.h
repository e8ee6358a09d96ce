/*
 * absorber: a burst absorber for a guest whose demand jumps faster than the
 * host can plug memory. It is compressed swap in RAM (a zram device the
 * agent adds, sizes and swaps on), so that a guest out of free pages
 * compresses its coldest anonymous pages for the moment the host needs to
 * plug more, instead of killing a process. The agent reports how much sits
 * in it (what the guest is short of), and once the guest has room again it
 * drains it: swapoff brings every page back into RAM, swapon re-arms the
 * empty device. docs/guest-protocol.md, "The burst absorber".
 *
 * Never set up on a guest that already has swap (unless forced): that guest
 * has chosen where its pages go. A device the agent set up before it was
 * restarted is found again through a state file and adopted.
 */
#ifndef DYNMEM_GUEST_ABSORBER_H
#define DYNMEM_GUEST_ABSORBER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define ABSORBER_SIZE_PCT_DEFAULT 100 /* device size: % of MemTotal when set up */
#define ABSORBER_SIZE_PCT_MAX     200 /* a larger one only postpones the OOM kill */
#define ABSORBER_PRIORITY         100 /* swap priority, above any other swap */
#define ABSORBER_STATE_DIR        "/run/dynmem-guest"
#define ABSORBER_STATE_FILE       ABSORBER_STATE_DIR "/absorber"
#define ABSORBER_DRAIN_GAP_MS     1000  /* drains start at most this often */
#define ABSORBER_RETRY_MAX_MS     60000 /* after failed drains: the gap doubles up to this */
#define ABSORBER_CALM_MS          1000  /* ... and the guest has not stalled for this long */

enum absorber_mode {
        ABSORBER_AUTO,  /* on unless the guest has swap of its own */
        ABSORBER_OFF,   /* never */
        ABSORBER_FORCE, /* on, even next to the guest's own swap */
};

struct absorber_fill {
        uint64_t stored;   /* bytes of pages in it, uncompressed: what RAM lacks */
        uint64_t ram;      /* bytes of RAM it holds (compressed, and its overhead) */
        uint64_t capacity; /* its size, uncompressed */
};

struct absorber {
        enum absorber_mode mode;
        unsigned size_pct;
        int dev;     /* zram device number, -1 = none */
        bool active; /* swapped on */
        int mm_stat_fd;
        uint64_t capacity;
        uint64_t page_size;
        pid_t drain_pid; /* a child running swapoff + swapon; 0 = none */
        uint64_t drain_started_ms, next_drain_ms;
        uint64_t drains, drain_failures;
        unsigned failing;       /* drains failed in a row (the next waits longer) */
        uint64_t last_drain_ms; /* how long the last drain took */
        uint64_t drain_stored;  /* what the absorber held when the drain started */
        uint64_t held_most;     /* the most it held since it was last empty (0: empty) */
        bool psi_seen;          /* stall figures arrive (absorber_note_stall) */
        uint64_t stall_total_us, last_stall_ms;
        char why_off[96]; /* when not active: why (for the log) */
};

/*
 * Set the absorber up (or adopt the one set up before a restart), sized
 * size_pct % of mem_total. Returns true when active; else why_off says why.
 */
bool absorber_open(struct absorber *a, enum absorber_mode mode, unsigned size_pct,
                   uint64_t mem_total);

/* What it holds now; false when it is not active. */
bool absorber_read(struct absorber *a, struct absorber_fill *ret);

/*
 * Drain it when it holds pages (more than its swap header's page) and the guest has room for them
 * again (mem_available + ram >= stored + mem_total / AGENT_ABSORBER_ROOM_DIV); reap a finished
 * drain. After a failed drain the next waits twice as long as the one before, up to
 * ABSORBER_RETRY_MAX_MS, and only the first failure in a row is logged. An absorber that empties
 * without a drain (the workload used its pages again, which brings them back into RAM) is logged
 * once. A drain whose swapon fails leaves the device swapped off: the absorber is off for good
 * (active false; nothing swaps on or off again). Call after each sample and whenever the timeout
 * says.
 */
void absorber_run(struct absorber *a, const struct absorber_fill *f, uint64_t mem_total,
                  uint64_t mem_available, uint64_t now_ms);

/*
 * PSI memory "some" total at now_ms: a drain waits until the guest has not
 * stalled for ABSORBER_CALM_MS (a burst still arriving needs the absorber,
 * and swapoff takes it away while it runs). Without PSI nothing waits.
 */
void absorber_note_stall(struct absorber *a, uint64_t some_total_us, uint64_t now_ms);

/* Milliseconds until absorber_run() should look again (a drain running); -1 = none. */
int absorber_timeout(const struct absorber *a, uint64_t now_ms);

/* Parse zram's mm_stat (orig_data_size compr_data_size mem_used_total ...). 0 or -EINVAL. */
int absorber_parse_mm_stat(const char *text, uint64_t capacity, struct absorber_fill *ret);

/*
 * Whether /proc/swaps text lists a swap area other than /dev/zram<own_dev>
 * (own_dev -1: any). Also says whether own_dev is listed.
 */
bool absorber_other_swap(const char *swaps, int own_dev, bool *own_listed);

/* Write a version-1 swap header for a device of size bytes into page (page_size bytes). */
int absorber_swap_header(unsigned char *page, uint64_t page_size, uint64_t size);

#endif
