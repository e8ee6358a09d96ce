/*
 * agent_estimate: what the host makes of a guest agent's reports
 * (docs/demand.md): the demand, and the stall share and fault rates measured
 * between two reports, never above the guest's MemTotal plus
 * AGENT_DEMAND_MARGIN_DIV-th of it nor above the VM's limit. The protocol
 * (framing, handshake, validation: lib/agent.c) hands every report it
 * accepted to agent_estimator_add(); reports are already range-checked.
 * Pure: no I/O, no clock (times are passed in, in milliseconds).
 */
#ifndef DYNMEM_AGENT_ESTIMATE_H
#define DYNMEM_AGENT_ESTIMATE_H

#include <stdbool.h>
#include <stdint.h>

#include "agent_wire.h"

#define AGENT_FRESH_INTERVALS     3  /* a report is fresh for this many intervals */
#define AGENT_STALL_MIN_WINDOW_MS 50 /* shorter report gaps do not yield a stall fraction */
#define AGENT_DEMAND_MARGIN_DIV   8  /* demand <= MemTotal + MemTotal / 8 (+ absorber_bytes) */

/*
 * One validated report. Sizes in bytes, times in the units their names say,
 * counts as counted since the guest booted. Keys the agent may omit have a
 * group bit in `have`; absent ones are 0.
 */
struct agent_report {
        uint64_t seq;     /* 1, 2, ... per agent run */
        uint64_t time_ms; /* the guest's CLOCK_MONOTONIC when sampled */
        enum agent_cause cause;
        uint32_t have;
        uint64_t mem_total_bytes;
        uint64_t mem_available_bytes;
        uint64_t mem_free_bytes;
        uint64_t cached_bytes;
        uint64_t active_file_bytes;
        uint64_t committed_bytes; /* Committed_AS */
        uint64_t swap_used_bytes;
        uint64_t balloon_bytes;     /* pages the balloon holds, from /proc/vmstat */
        uint64_t balloon_in_total;  /* 1: ballooned pages are part of MemTotal (deflate-on-oom) */
        uint64_t psi_some_avg10_bp; /* basis points: 0..10000 = 0..100 % */
        uint64_t psi_some_total_us;
        uint64_t psi_full_avg10_bp;
        uint64_t psi_full_total_us;
        uint64_t pgmajfault;
        uint64_t refaults; /* workingset_refault_anon + _file */
        uint64_t oom_kill;
        uint64_t onlined; /* memory blocks the agent brought online */
        uint64_t self_rss_bytes;
        uint64_t self_cpu_us;
        uint64_t absorber_bytes;      /* pages in the guest's burst absorber: what RAM lacks */
        uint64_t absorber_ram_bytes;  /* RAM the absorber holds for them (compressed) */
        uint64_t absorber_size_bytes; /* its size, <= AGENT_ABSORBER_MAX_TOTALS x MemTotal */
        uint64_t file_reclaimed;      /* page-cache pages reclaimed (pgsteal_file) */
        uint64_t swap_free_bytes;     /* SwapFree: its swap areas' room, the absorber's included */
        uint64_t received_ms;         /* host time it was accepted */
};

/* What the host makes of the reports. Fields are known only while the agent is fresh. */
struct agent_estimate {
        bool fresh;         /* a report arrived within AGENT_FRESH_INTERVALS intervals */
        uint64_t report_ms; /* host time of the latest report */
        bool demand_known;
        uint64_t demand_bytes; /* docs/demand.md; <= MemTotal + margin and <= limit */
        bool stall_known;
        /*
         * The share of the last interval the guest stalled short of memory it uses,
         * 0..1: its PSI "some" share, or 0 when the kernel showed no working-set
         * pressure in it (stall_turnover) or the guest has free memory at its end
         * (stall_relieved; docs/demand.md).
         */
        double stall_fraction;
        double psi_fraction; /* PSI "some" stall share of the last interval as measured */
        bool stall_turnover; /* it stalled turning over cache it does not read again */
        bool stall_relieved; /* it stalled short, and has free memory now (counted 0) */
        bool visible_known;
        uint64_t visible_bytes; /* MemTotal */
        bool available_known;
        uint64_t available_bytes; /* MemAvailable */
        bool rates_known;
        double refaults_per_s; /* workingset refaults, pages per second */
        /*
         * Page cache the guest reclaimed while it stalled on memory, summed over the
         * intervals since the agent connected (or the guest booted) in which it did so
         * at 1 MiB/s or more and no memory that came relieved the stall: what it would
         * have kept with that much more memory (docs/demand.md, "Cache evicted under a
         * stall"). Each interval counts at most MemTotal; the sum saturates.
         */
        uint64_t evicted_total_bytes;
        double majfaults_per_s;   /* major faults per second */
        uint64_t committed_bytes; /* Committed_AS as reported (not used for demand) */
        /*
         * The room the guest can still push pages out to before its OOM killer runs:
         * SwapFree, which holds the burst absorber's free room too (it is a swap area
         * of the guest's). Unknown from an agent that does not report swap_free_bytes.
         */
        bool swap_known;
        uint64_t swap_free_bytes;
        /*
         * Reports accepted so far that the guest sent because it started to stall
         * (cause psi): when it grew since the last estimate the caller took, a stall
         * began in between. A count, not a flag of the latest report, so that an
         * urgent report followed by an ordinary one in the same read is not lost.
         */
        uint64_t urgent_reports;
};

/* What the estimate carries from one report to the next (zeroed: none yet). */
struct agent_estimator {
        bool have_base; /* base: the report the deltas are measured from */
        struct agent_report base;
        bool stall_known;
        double stall, psi; /* the share that counts, the share measured */
        bool turnover;     /* the stall of the last interval was cache turnover */
        bool relieved;     /* it was short in it, and has free memory at its end */
        bool rates_known;
        double refault_rate, majfault_rate;
        uint64_t hot_bytes; /* the file working set: Active(file) as refaults proved it */
        uint64_t
            evicted_total; /* page cache reclaimed under stalls, summed (evicted_total_bytes) */
};

/*
 * Take one accepted report from a guest with pages of
 * page_size bytes. Returns how many counters it found going backwards (a
 * restarted agent or guest): the deltas start again from this report.
 */
unsigned agent_estimator_add(struct agent_estimator *e, const struct agent_report *r,
                             uint64_t page_size);

/*
 * The estimate at now_ms from the latest report r, for a VM that can hold at
 * most limit_bytes and an agent that reports every interval_ms. Fills every
 * field but urgent_reports (the protocol's count).
 */
void agent_estimator_get(const struct agent_estimator *e, const struct agent_report *r,
                         uint64_t limit_bytes, uint64_t interval_ms, uint64_t now_ms,
                         struct agent_estimate *ret);

#endif
