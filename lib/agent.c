/*
 * agent: the host side of the guest agent protocol: line framing, the
 * handshake and report validation; accepted reports go to the estimate
 * (agent_estimate.c). See agent.h for the contract and
 * docs/guest-protocol.md for the wire format.
 */
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"

#define MEM_TOTAL_MIN ((uint64_t)1 << 20)

struct agent_field {
        const char *key, *val;
        size_t klen, vlen;
};

struct agent_line {
        const char *type;
        size_t tlen;
        size_t n;
        struct agent_field f[AGENT_FIELDS_MAX];
};

struct agent {
        struct agent_options opt;
        enum agent_state state;

        char line[AGENT_LINE_MAX];
        size_t line_len;
        bool discarding; /* inside a line that was too long, until its newline */

        struct bucket lines; /* lines parsed: opt.rate_per_s, opt.burst */

        uint32_t version;
        unsigned caps;
        uint64_t page_size;
        char software[AGENT_WORD_MAX + 1];
        bool hello_pending;
        bool hello_sent;
        uint64_t hello_sent_ms;
        bool heard; /* a line arrived on this connection */
        uint64_t last_rx_ms;
        uint64_t rehello_gap_ms; /* silence before the next hello; doubles */
        uint64_t refused_ms;
        char refusal[200];
        char error[160];

        bool have_report;
        struct agent_report last;
        struct agent_estimator est;

        struct agent_counters c;
};

/* ---- words and numbers ---- */

static bool word_char(char ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
               ch == '-';
}

static bool word_ok(const char *s, size_t n)
{
        if (n == 0 || n > AGENT_WORD_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!word_char(s[i]))
                        return false;
        return true;
}

static bool word_is(const char *s, size_t n, const char *lit)
{
        return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* A plain decimal: digits only, no sign, no leading zero, at most max. */
static int num_parse(const char *s, size_t n, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;

        if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                unsigned d = (unsigned)(s[i] - '0');

                if (d > 9)
                        return -EINVAL;
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

/*
 * Split "DMG1 type key=value ..." (no newline). Single spaces only; every
 * word [a-z0-9_.-]; at most AGENT_FIELDS_MAX pairs.
 */
static int line_split(const char *s, size_t len, struct agent_line *ret)
{
        size_t mlen = strlen(AGENT_MAGIC), i, start;

        if (len < mlen + 2 || memcmp(s, AGENT_MAGIC, mlen) != 0 || s[mlen] != ' ')
                return -EINVAL;
        i = mlen + 1;
        for (start = i; i < len && s[i] != ' '; i++)
                ;
        if (!word_ok(s + start, i - start))
                return -EINVAL;
        ret->type = s + start;
        ret->tlen = i - start;
        ret->n = 0;
        while (i < len) {
                const char *tok, *eq;
                size_t tlen;

                start = ++i; /* past the space */
                for (; i < len && s[i] != ' '; i++)
                        ;
                tok = s + start;
                tlen = i - start;
                eq = memchr(tok, '=', tlen);
                if (!eq || ret->n == AGENT_FIELDS_MAX)
                        return -EINVAL;
                struct agent_field *f = &ret->f[ret->n++];
                f->key = tok;
                f->klen = (size_t)(eq - tok);
                f->val = eq + 1;
                f->vlen = tlen - f->klen - 1;
                if (!word_ok(f->key, f->klen) || !word_ok(f->val, f->vlen))
                        return -EINVAL;
        }
        return 0;
}

/* ---- options, life cycle ---- */

void agent_options_default(struct agent_options *ret)
{
        *ret = (struct agent_options){
            .interval_ms = AGENT_INTERVAL_DEFAULT,
            .limit_bytes = AGENT_BYTES_MAX,
            .rate_per_s = AGENT_RATE_DEFAULT,
            .burst = AGENT_BURST_DEFAULT,
            .proto_min = AGENT_PROTO_MIN,
            .proto_max = AGENT_PROTO_MAX,
        };
}

static int options_resolve(const struct agent_options *in, struct agent_options *ret)
{
        struct agent_options o;

        agent_options_default(&o);
        if (in->interval_ms)
                o.interval_ms = in->interval_ms;
        if (in->limit_bytes)
                o.limit_bytes = in->limit_bytes;
        if (in->rate_per_s)
                o.rate_per_s = in->rate_per_s;
        if (in->burst)
                o.burst = in->burst;
        if (in->proto_min || in->proto_max) {
                o.proto_min = in->proto_min;
                o.proto_max = in->proto_max;
        }
        if (o.interval_ms < AGENT_INTERVAL_MIN || o.interval_ms > AGENT_INTERVAL_MAX ||
            o.limit_bytes > AGENT_BYTES_MAX || o.rate_per_s > 100000 || o.burst > 100000 ||
            o.proto_min < 1 || o.proto_min > o.proto_max || o.proto_max > AGENT_VERSION_MAX)
                return -EINVAL;
        *ret = o;
        return 0;
}

int agent_new(const struct agent_options *opts, struct agent **ret)
{
        struct agent_options o;
        struct agent *a;
        int r;

        if (!opts)
                agent_options_default(&o);
        else if ((r = options_resolve(opts, &o)) < 0)
                return r;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->opt = o;
        a->state = AGENT_DISCONNECTED;
        a->lines = BUCKET(o.rate_per_s, o.burst);
        a->page_size = AGENT_PAGE_SIZE_MIN;
        *ret = a;
        return 0;
}

void agent_free(struct agent *a)
{
        free(a);
}

static void handshake_forget(struct agent *a)
{
        a->line_len = 0;
        a->discarding = false;
        a->version = 0;
        a->caps = 0;
        a->software[0] = '\0';
        a->page_size = AGENT_PAGE_SIZE_MIN;
        a->refusal[0] = '\0';
        a->hello_sent = false;
        a->heard = false;
        a->rehello_gap_ms = AGENT_REHELLO_MS;
}

void agent_connected(struct agent *a, uint64_t now_ms)
{
        handshake_forget(a);
        a->state = AGENT_WAITING;
        a->hello_pending = true;
        a->last_rx_ms = now_ms;
}

void agent_disconnected(struct agent *a)
{
        handshake_forget(a);
        a->state = AGENT_DISCONNECTED;
        a->hello_pending = false;
}

/* ---- handshake ---- */

static void refuse(struct agent *a, uint64_t now_ms, unsigned *ev)
{
        a->state = AGENT_REFUSED;
        a->version = 0;
        a->refused_ms = now_ms;
        *ev |= AGENT_EV_REFUSED;
}

struct hello {
        uint64_t min, max, version, interval_ms, page_size;
        bool has_version;
        unsigned caps;
        const char *software;
        size_t software_len;
};

/* A hello's seen mask: bit i for hello key i, bit HELLO_CAP_BIT + i for capability i. */
#define HELLO_CAP_BIT 8
_Static_assert(AGENT_HELLO_N_KEYS <= HELLO_CAP_BIT && HELLO_CAP_BIT + AGENT_N_CAPS <= 64,
               "a hello's keys and capabilities fit the seen mask");

/* One hello key into h; *seen has one bit per known key. 1 = unknown key, <0 = bad value. */
static int hello_key(const struct agent_field *f, struct hello *h, uint64_t *seen)
{
        uint64_t *dst[] = {
            [AGENT_HELLO_MIN] = &h->min,
            [AGENT_HELLO_MAX] = &h->max,
            [AGENT_HELLO_VERSION] = &h->version,
            [AGENT_HELLO_INTERVAL_MS] = &h->interval_ms,
            [AGENT_HELLO_PAGE_SIZE] = &h->page_size,
        };
        uint64_t v;

        for (unsigned i = 0; i < AGENT_HELLO_N_KEYS; i++) {
                if (!word_is(f->key, f->klen, agent_hello_keys[i].key))
                        continue;
                if (*seen & (1ull << i))
                        return -EINVAL;
                *seen |= 1ull << i;
                if (i == AGENT_HELLO_SOFTWARE) {
                        h->software = f->val;
                        h->software_len = f->vlen;
                        return 0;
                }
                return num_parse(f->val, f->vlen, agent_hello_keys[i].max, dst[i]) < 0 ? -EINVAL
                                                                                       : 0;
        }
        for (unsigned i = 0; i < AGENT_N_CAPS; i++) {
                if (!word_is(f->key, f->klen, agent_caps_table[i].key))
                        continue;
                if (*seen & (1ull << (HELLO_CAP_BIT + i)) || num_parse(f->val, f->vlen, 1, &v) < 0)
                        return -EINVAL;
                *seen |= 1ull << (HELLO_CAP_BIT + i);
                h->caps |= v ? agent_caps_table[i].cap : 0;
                return 0;
        }
        return 1;
}

static int hello_parse(struct agent *a, const struct agent_line *l, struct hello *h)
{
        uint64_t seen = 0;

        *h = (struct hello){.page_size = AGENT_PAGE_SIZE_MIN};
        for (size_t i = 0; i < l->n; i++) {
                int r = hello_key(&l->f[i], h, &seen);

                if (r < 0) {
                        snprintf(a->error, sizeof(a->error),
                                 "hello: a value is out of range, repeated or not a number");
                        return r;
                }
                a->c.unknown_keys += r;
        }
        h->has_version = seen & (1ull << AGENT_HELLO_VERSION);
        if (!(seen & (1ull << AGENT_HELLO_MIN)) || !(seen & (1ull << AGENT_HELLO_MAX)) ||
            h->min < 1 || h->min > h->max) {
                snprintf(a->error, sizeof(a->error), "hello: min and max versions missing or bad");
                return -EINVAL;
        }
        if ((seen & (1ull << AGENT_HELLO_PAGE_SIZE)) &&
            (h->page_size < AGENT_PAGE_SIZE_MIN || (h->page_size & (h->page_size - 1)) != 0)) {
                snprintf(a->error, sizeof(a->error), "hello: page_size is not a power of two");
                return -EINVAL;
        }
        return 0;
}

static void hello_accept(struct agent *a, const struct hello *h, uint32_t version, unsigned *ev)
{
        bool same = a->state == AGENT_READY && a->version == version && a->caps == h->caps &&
                    strlen(a->software) == h->software_len &&
                    memcmp(a->software, h->software ? h->software : "", h->software_len) == 0;

        if (!same)
                *ev |= AGENT_EV_READY;
        a->state = AGENT_READY;
        a->version = version;
        a->caps = h->caps;
        a->page_size = h->page_size;
        memcpy(a->software, h->software ? h->software : "", h->software_len);
        a->software[h->software_len] = '\0';
        a->refusal[0] = '\0';
        a->c.handshakes++;
}

static void on_hello(struct agent *a, const struct agent_line *l, uint64_t now_ms, unsigned *ev)
{
        uint64_t hi, lo;
        struct hello h;

        if (hello_parse(a, l, &h) < 0) {
                a->c.rejected++;
                *ev |= AGENT_EV_ERROR;
                return;
        }
        hi = h.max < a->opt.proto_max ? h.max : a->opt.proto_max;
        lo = h.min > a->opt.proto_min ? h.min : a->opt.proto_min;
        if (!h.has_version) { /* an agent announcing itself: answer with the host's hello */
                a->hello_pending = true;
                *ev |= AGENT_EV_OUTPUT;
                a->state = AGENT_WAITING;
                a->version = 0;
        }
        if (hi < lo) {
                snprintf(a->refusal, sizeof(a->refusal),
                         "guest agent speaks protocol versions %" PRIu64 "-%" PRIu64
                         ", the host %u-%u: incompatible, agent ignored",
                         h.min, h.max, a->opt.proto_min, a->opt.proto_max);
                refuse(a, now_ms, ev);
        } else if (h.has_version && h.version == 0) {
                /*
                 * "Incompatible" from an agent whose versions meet ours: not an answer to
                 * our hello. A virtio port keeps what the agent wrote while no host was
                 * there, so this is its answer to an earlier, incompatible host (or a lie):
                 * its answer to ours comes next.
                 */
                a->c.out_of_state++;
        } else if (h.has_version && h.version != hi) {
                snprintf(a->refusal, sizeof(a->refusal),
                         "guest agent chose protocol version %" PRIu64 " where %" PRIu64
                         " was due: agent ignored",
                         h.version, hi);
                refuse(a, now_ms, ev);
        } else if (h.has_version) {
                hello_accept(a, &h, (uint32_t)hi, ev);
        }
}

/* ---- reports ---- */

/* Where each report key goes (its name, range and group are agent_wire.c's). */
#define RF(name) offsetof(struct agent_report, name)
static const size_t report_offsets[AGENT_R_N_KEYS] = {
    [AGENT_R_SEQ] = RF(seq),
    [AGENT_R_TIME_MS] = RF(time_ms),
    [AGENT_R_MEM_TOTAL] = RF(mem_total_bytes),
    [AGENT_R_MEM_FREE] = RF(mem_free_bytes),
    [AGENT_R_MEM_AVAILABLE] = RF(mem_available_bytes),
    [AGENT_R_CACHED] = RF(cached_bytes),
    [AGENT_R_ACTIVE_FILE] = RF(active_file_bytes),
    [AGENT_R_COMMITTED] = RF(committed_bytes),
    [AGENT_R_SWAP_USED] = RF(swap_used_bytes),
    [AGENT_R_BALLOON] = RF(balloon_bytes),
    [AGENT_R_BALLOON_IN_TOTAL] = RF(balloon_in_total),
    [AGENT_R_PSI_SOME_AVG10] = RF(psi_some_avg10_bp),
    [AGENT_R_PSI_SOME_TOTAL] = RF(psi_some_total_us),
    [AGENT_R_PSI_FULL_AVG10] = RF(psi_full_avg10_bp),
    [AGENT_R_PSI_FULL_TOTAL] = RF(psi_full_total_us),
    [AGENT_R_PGMAJFAULT] = RF(pgmajfault),
    [AGENT_R_REFAULTS] = RF(refaults),
    [AGENT_R_OOM_KILL] = RF(oom_kill),
    [AGENT_R_ONLINED] = RF(onlined),
    [AGENT_R_SELF_RSS] = RF(self_rss_bytes),
    [AGENT_R_SELF_CPU] = RF(self_cpu_us),
    [AGENT_R_ABSORBER] = RF(absorber_bytes),
    [AGENT_R_ABSORBER_RAM] = RF(absorber_ram_bytes),
    [AGENT_R_ABSORBER_SIZE] = RF(absorber_size_bytes),
    [AGENT_R_FILE_RECLAIMED] = RF(file_reclaimed),
    [AGENT_R_SWAP_FREE] = RF(swap_free_bytes),
};
_Static_assert(AGENT_R_N_KEYS < 63, "a report's keys fit the seen mask beside the cause bit");

const char *agent_cause_name(enum agent_cause c)
{
        return (unsigned)c < AGENT_N_CAUSES ? agent_cause_names[c] : "?";
}

static int report_error(struct agent *a, const char *what, const char *key)
{
        snprintf(a->error, sizeof(a->error), "report: %s %s", key, what);
        return -EINVAL;
}

/* One key=value into r. 1 = unknown key, <0 = rejected. */
static int report_key(struct agent *a, const struct agent_field *f, struct agent_report *r,
                      uint64_t *seen)
{
        if (word_is(f->key, f->klen, AGENT_CAUSE_KEY)) {
                if (*seen & (1ull << 63))
                        return report_error(a, "is repeated", AGENT_CAUSE_KEY);
                *seen |= 1ull << 63;
                for (unsigned c = 0; c < AGENT_N_CAUSES; c++)
                        if (word_is(f->val, f->vlen, agent_cause_names[c])) {
                                r->cause = (enum agent_cause)c;
                                return 0;
                        }
                return 0; /* a cause this side does not know: an ordinary report */
        }
        for (size_t i = 0; i < AGENT_R_N_KEYS; i++) {
                const struct agent_report_key_desc *k = &agent_report_keys[i];

                if (!word_is(f->key, f->klen, k->key))
                        continue;
                if (*seen & (1ull << i))
                        return report_error(a, "is repeated", k->key);
                if (num_parse(f->val, f->vlen, k->max,
                              (uint64_t *)((char *)r + report_offsets[i])) < 0)
                        return report_error(a, "is out of range or not a number", k->key);
                *seen |= 1ull << i;
                r->have |= k->have;
                return 0;
        }
        return 1;
}

/* Required keys present, groups complete, and the figures consistent. */
static int report_check(struct agent *a, const struct agent_report *r, uint64_t seen)
{
        for (size_t i = 0; i < AGENT_R_N_KEYS; i++) {
                const struct agent_report_key_desc *k = &agent_report_keys[i];
                bool needed = k->required || (k->have && (r->have & k->have));

                if (needed && !(seen & (1ull << i)))
                        return report_error(a, "is missing", k->key);
        }
        if (r->seq == 0)
                return report_error(a, "is zero", "seq");
        if (r->mem_total_bytes < MEM_TOTAL_MIN || r->mem_total_bytes > a->opt.limit_bytes)
                return report_error(a, "is outside 1 MiB..the VM's limit", "mem_total_bytes");
        const struct {
                const char *key;
                uint64_t v;
                bool apply;
        } parts[] = {
            {"mem_available_bytes", r->mem_available_bytes, true},
            {"mem_free_bytes", r->mem_free_bytes, true},
            {"cached_bytes", r->cached_bytes, true},
            {"active_file_bytes", r->active_file_bytes, true},
            {"balloon_bytes", r->balloon_bytes, r->balloon_in_total == 1},
            {"absorber_ram_bytes", r->absorber_ram_bytes, true},
        };
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
                if (parts[i].apply && parts[i].v > r->mem_total_bytes)
                        return report_error(a, "is above mem_total_bytes", parts[i].key);
        if (r->absorber_size_bytes > AGENT_ABSORBER_MAX_TOTALS * r->mem_total_bytes)
                return report_error(a, "is above 2 x mem_total_bytes", "absorber_size_bytes");
        if (r->absorber_bytes > r->absorber_size_bytes)
                return report_error(a, "is above absorber_size_bytes", "absorber_bytes");
        return 0;
}

static int report_parse(struct agent *a, const struct agent_line *l, struct agent_report *ret)
{
        struct agent_report r = {.cause = AGENT_CAUSE_TICK};
        uint64_t seen = 0;
        int k;

        for (size_t i = 0; i < l->n; i++) {
                k = report_key(a, &l->f[i], &r, &seen);
                if (k < 0)
                        return k;
                a->c.unknown_keys += (uint64_t)k;
        }
        if (report_check(a, &r, seen) < 0)
                return -EINVAL;
        *ret = r;
        return 0;
}

static void on_report(struct agent *a, const struct agent_line *l, uint64_t now_ms, unsigned *ev)
{
        struct agent_report r;

        if (a->state != AGENT_READY) {
                a->c.out_of_state++;
                return;
        }
        if (report_parse(a, l, &r) < 0) {
                a->c.rejected++;
                *ev |= AGENT_EV_ERROR;
                return;
        }
        r.received_ms = now_ms;
        a->c.counter_resets += agent_estimator_add(&a->est, &r, a->page_size);
        a->last = r;
        a->have_report = true;
        a->c.reports++;
        *ev |= AGENT_EV_REPORT;
        if (r.cause == AGENT_CAUSE_PSI) {
                a->c.urgent++;
                *ev |= AGENT_EV_URGENT;
        }
}

/* ---- lines ---- */

static void on_line(struct agent *a, const char *s, size_t len, uint64_t now_ms, unsigned *ev)
{
        struct agent_line l;

        a->c.lines++;
        if (!bucket_take(&a->lines, (double)now_ms)) {
                a->c.rate_dropped++;
                return;
        }
        a->c.parsed++;
        a->heard = true;
        a->last_rx_ms = now_ms;
        a->rehello_gap_ms = AGENT_REHELLO_MS;
        if (line_split(s, len, &l) < 0) {
                a->c.malformed++;
                snprintf(a->error, sizeof(a->error),
                         "malformed line (magic, spacing or a "
                         "character outside [a-z0-9_.-])");
                *ev |= AGENT_EV_ERROR;
                return;
        }
        bool hello = word_is(l.type, l.tlen, AGENT_TYPE_HELLO);
        if (a->state == AGENT_REFUSED &&
            !(hello && now_ms - a->refused_ms >= AGENT_REFUSED_RETRY_MS)) {
                a->c.out_of_state++;
                return;
        }
        if (hello)
                on_hello(a, &l, now_ms, ev);
        else if (word_is(l.type, l.tlen, AGENT_TYPE_REPORT))
                on_report(a, &l, now_ms, ev);
        else
                a->c.unknown_types++;
}

unsigned agent_feed(struct agent *a, const void *buf, size_t len, uint64_t now_ms)
{
        const char *p = buf, *end = p + len;
        unsigned ev = 0;

        if (a->state == AGENT_DISCONNECTED)
                return 0;
        a->c.bytes += len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = (size_t)((nl ? nl : end) - p);

                if (a->discarding) {
                        a->discarding = !nl;
                } else if (a->line_len + n > AGENT_LINE_MAX - 1) {
                        a->c.too_long++;
                        a->line_len = 0;
                        a->discarding = !nl;
                } else {
                        memcpy(a->line + a->line_len, p, n);
                        a->line_len += n;
                        if (nl) {
                                on_line(a, a->line, a->line_len, now_ms, &ev);
                                a->line_len = 0;
                        }
                }
                p = nl ? nl + 1 : end;
        }
        return ev;
}

/* An agent heard on this connection has gone quiet for longer than the current gap. */
static bool agent_silent(const struct agent *a, uint64_t now_ms)
{
        if (a->state == AGENT_REFUSED || !a->heard || now_ms < a->last_rx_ms ||
            now_ms - a->last_rx_ms < a->rehello_gap_ms)
                return false;
        return !a->hello_sent || now_ms < a->hello_sent_ms ||
               now_ms - a->hello_sent_ms >= a->rehello_gap_ms;
}

size_t agent_output(struct agent *a, uint64_t now_ms, char *buf, size_t len)
{
        bool silent;
        int n;

        if (a->state == AGENT_DISCONNECTED)
                return 0;
        silent = !a->hello_pending && agent_silent(a, now_ms);
        if (!a->hello_pending && !silent)
                return 0;
        n = snprintf(buf, len, AGENT_MAGIC " hello min=%u max=%u interval_ms=%" PRIu64 "\n",
                     a->opt.proto_min, a->opt.proto_max, a->opt.interval_ms);
        if (n < 0 || (size_t)n >= len)
                return 0;
        if (silent && a->rehello_gap_ms < AGENT_REHELLO_MAX_MS)
                a->rehello_gap_ms = a->rehello_gap_ms * 2 < AGENT_REHELLO_MAX_MS
                                        ? a->rehello_gap_ms * 2
                                        : AGENT_REHELLO_MAX_MS;
        a->hello_pending = false;
        a->hello_sent = true;
        a->hello_sent_ms = now_ms;
        a->c.hellos_sent++;
        return (size_t)n;
}

/* ---- results ---- */

int agent_estimate(const struct agent *a, uint64_t now_ms, struct agent_estimate *ret)
{
        if (!a->have_report)
                return -ENODATA;
        agent_estimator_get(&a->est, &a->last, a->opt.limit_bytes, a->opt.interval_ms, now_ms, ret);
        ret->urgent_reports = a->c.urgent;
        return 0;
}

const struct agent_report *agent_last_report(const struct agent *a)
{
        return a->have_report ? &a->last : NULL;
}

enum agent_state agent_state(const struct agent *a)
{
        return a->state;
}

const char *agent_state_name(enum agent_state s)
{
        static const char *const names[] = {
            [AGENT_DISCONNECTED] = "disconnected",
            [AGENT_WAITING] = "waiting",
            [AGENT_READY] = "ready",
            [AGENT_REFUSED] = "refused",
        };

        return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

uint32_t agent_version(const struct agent *a)
{
        return a->version;
}

unsigned agent_caps(const struct agent *a)
{
        return a->caps;
}

const char *agent_software(const struct agent *a)
{
        return a->software;
}

const char *agent_refusal(const struct agent *a)
{
        return a->refusal;
}

const char *agent_last_error(const struct agent *a)
{
        return a->error;
}

const struct agent_counters *agent_counters(const struct agent *a)
{
        return &a->c;
}
