/*
 * psi: the guest's memory pressure-stall information (/proc/pressure/memory):
 * its figures, and the event that says the guest has started to stall. A
 * PSI trigger ("some 5000 500000": 5 ms of stall within 500 ms, the 1 % the
 * policy treats as short of memory, stall_threshold_permille) wakes the
 * agent through poll(POLLPRI). The window is the kernel's shortest: the
 * kernel compares the growth with the threshold every tenth of the window
 * (the first time a tenth after the stall began), so a 500 ms window fires
 * from 50 ms after the stall began, a 1 s window not before 100 ms. Where
 * triggers are not allowed (old kernels,
 * no privilege) the file is polled every 100 ms while pressure is non-zero,
 * with the same threshold. Stall events can be turned off (the agent's
 * --no-trigger, kernel command line dynmem.agent.trigger=0): the figures
 * are still read for the periodic reports, nothing else happens.
 */
#ifndef DYNMEM_GUEST_PSI_H
#define DYNMEM_GUEST_PSI_H

#include <stdbool.h>
#include <stdint.h>

#define PSI_TRIGGER      "some 5000 500000"
#define PSI_THRESHOLD_US 5000
#define PSI_WINDOW_MS    500
#define PSI_POLL_MS      100

struct psi_values {
        uint64_t some_avg10_bp, some_total_us;
        bool have_full;
        uint64_t full_avg10_bp, full_total_us;
};

struct psi {
        int read_fd;    /* -1: no PSI */
        int trigger_fd; /* -1: no trigger, polling instead */
        bool polling;   /* fallback: pressure was non-zero at the last look */
        uint64_t next_poll_ms;
        uint64_t window_start_ms, window_start_us; /* the fallback's window (PSI_WINDOW_MS) */
        uint64_t last_event_ms;
        uint64_t last_total_us;
        uint64_t poll_last_us; /* the fallback's own last reading: a new window's base */
        bool events_off;       /* no trigger, no polling: psi_check() never fires */
};

/* Open PSI and, with events, arm the trigger. Never fails: what is missing is noted in p. */
void psi_open(struct psi *p, bool events);
void psi_close(struct psi *p);

bool psi_available(const struct psi *p);
bool psi_has_trigger(const struct psi *p);

/* Parse the file's text ("some avg10=1.25 ... total=N\nfull ..."). 0 or -EINVAL. */
int psi_parse(const char *text, struct psi_values *ret);

/* Read the current figures. 0, -ENOENT (no PSI) or a negative errno. */
int psi_read(struct psi *p, struct psi_values *ret);

/* The fd to poll for POLLPRI, or -1. */
int psi_poll_fd(const struct psi *p);

/* Milliseconds until the fallback wants to look at the file again; -1 = not polling. */
int psi_timeout(const struct psi *p, uint64_t now_ms);

/*
 * Call after poll(): trigger_revents for the trigger fd (0 if not polled).
 * True when the guest has started to stall (at most once per PSI_WINDOW_MS).
 */
bool psi_check(struct psi *p, short trigger_revents, uint64_t now_ms);

/* Call with each periodic sample: the fallback starts polling when pressure is non-zero. */
void psi_note(struct psi *p, const struct psi_values *v, uint64_t now_ms);

#endif
