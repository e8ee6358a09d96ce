/*
 * config: reads dynmem's INI files (daemon configuration and simulator
 * scenarios) through inih. A reader callback counts lines so that every
 * message carries FILE:LINE; tables describe each section's keys, their type
 * and their range; an unknown key is named with the nearest known one
 * (lib/suggest). See config.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suggest.h"
#include "trace.h"
#include "units.h"

/* ---- diagnostics ---- */

void config_diag_add(struct config_diag *d, const char *file, unsigned line, const char *fmt, ...)
{
        char msg[512], *full = NULL;
        va_list ap;

        if (!d)
                return;
        if (d->count >= CONFIG_DIAG_MAX) {
                d->more++;
                return;
        }
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        int r = line ? asprintf(&full, "%s:%u: %s", file, line, msg)
                     : asprintf(&full, "%s: %s", file, msg);
        if (r < 0)
                return;
        char **grown = realloc(d->messages, (d->count + 1) * sizeof(*grown));
        if (!grown) {
                free(full);
                return;
        }
        d->messages = grown;
        d->messages[d->count++] = full;
}

/* Where comments start, as config_comment_hint() and the warnings of text values say it. */
#define COMMENT_RULE                                                                               \
        "a comment after a value starts with \" ;\", white space and ';'; '#' starts a comment "   \
        "only at the start of a line"

/* Whether d holds a message at FILE:LINE that says where comments start. */
static bool explained_at(const struct config_diag *d, const char *file, unsigned long line)
{
        size_t n = strlen(file);
        char at[32];
        int k = snprintf(at, sizeof(at), ":%lu:", line);

        for (size_t i = 0; i < d->count; i++)
                if (strncmp(d->messages[i], file, n) == 0 &&
                    strncmp(d->messages[i] + n, at, (size_t)k) == 0 &&
                    strstr(d->messages[i], COMMENT_RULE))
                        return true;
        return false;
}

bool config_diag_explains(const struct config_diag *d, const char *file, const char *message)
{
        size_t n = strlen(file);
        unsigned long line, from;
        char *end;
        int used = -1;

        if (!d || strncmp(message, file, n) != 0 || message[n] != ':' ||
            !isdigit((unsigned char)message[n + 1]))
                return false;
        line = strtoul(message + n + 1, &end, 10);
        if (*end != ':')
                return false;
        if (explained_at(d, file, line))
                return true;
        /* "FILE:LINE: warning: KEY (continued from line N): ...": also at the key's line */
        if (strncmp(end, ": warning: ", 11) != 0)
                return false;
        end += 11 + strcspn(end + 11, " :");
        if (sscanf(end, " (continued from line %lu):%n", &from, &used) != 1 || used < 0)
                return false;
        return explained_at(d, file, from);
}

/* The text of message after its "FILE:LINE: " or "FILE: ", or NULL when it is not about file. */
static const char *text_after_place(const char *message, const char *file)
{
        size_t n = strlen(file);
        const char *at = message + n;

        if (strncmp(message, file, n) != 0 || *at != ':')
                return NULL;
        if (isdigit((unsigned char)at[1]))
                for (at++; isdigit((unsigned char)*at); at++)
                        ;
        return strncmp(at, ": ", 2) == 0 ? at + 2 : NULL;
}

size_t config_diag_drop(struct config_diag *d, const char *file, const char *start)
{
        size_t kept = 0, n = strlen(start);

        if (!d)
                return 0;
        for (size_t i = 0; i < d->count; i++) {
                const char *text = text_after_place(d->messages[i], file);
                if (text && strncmp(text, start, n) == 0)
                        free(d->messages[i]);
                else
                        d->messages[kept++] = d->messages[i];
        }
        size_t dropped = d->count - kept;
        d->count = kept;
        return dropped;
}

char *config_count_format(size_t n, char *buf, size_t len)
{
        char digits[24];
        int nd = snprintf(digits, sizeof(digits), "%zu", n);
        size_t o = 0;

        for (int i = 0; i < nd && o + 1 < len; i++) {
                if (i > 0 && (nd - i) % 3 == 0 && o + 2 < len)
                        buf[o++] = ',';
                buf[o++] = digits[i];
        }
        if (len)
                buf[o] = '\0';
        return buf;
}

const char *config_diag_more(const struct config_diag *d, const char *what, char *buf, size_t len)
{
        char n[32];

        if (!d || !d->more)
                return NULL;
        snprintf(buf, len, "... and %s more %s%s", config_count_format(d->more, n, sizeof(n)), what,
                 d->more == 1 ? "" : "s");
        return buf;
}

void config_diag_free(struct config_diag *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->count; i++)
                free(d->messages[i]);
        free(d->messages);
        d->messages = NULL;
        d->count = 0;
        d->more = 0;
}

/* ---- key tables ---- */

enum key_type {
        KEY_SIZE,     /* uint64_t bytes */
        KEY_DURATION, /* uint64_t ms */
        KEY_U32,      /* uint32_t in [min, max] */
        KEY_U64,      /* uint64_t */
        KEY_BOOL,     /* bool: yes/no, on/off, true/false, 1/0 */
        KEY_STRING,   /* char *, owned */
        KEY_DOUBLE,   /* double in [min, max] */
        KEY_POLICY,   /* char *, owned: a policy name policy_kind_parse() accepts */
};

struct key_spec {
        const char *name;
        enum key_type type;
        size_t offset;
        double min, max;     /* for KEY_U32 / KEY_DOUBLE / KEY_SIZE (max 0 = none) */
        size_t given_offset; /* offset of a bool "given" flag, or SIZE_MAX */
};

#define NO_FLAG SIZE_MAX

static const struct key_spec host_keys[] = {
    /* Less than one VM's smallest minimum holds no VM. */
    {"memory", KEY_SIZE, offsetof(struct config_host, memory_bytes), SETTINGS_MINIMUM_FLOOR, 0,
     offsetof(struct config_host, memory_given)},
    {"reserve", KEY_SIZE, offsetof(struct config_host, reserve_bytes), 0, 0,
     offsetof(struct config_host, reserve_given)},
    {"policy", KEY_POLICY, offsetof(struct config_host, policy), 0, 0, NO_FLAG},
    {"backend", KEY_STRING, offsetof(struct config_host, backend), 0, 0, NO_FLAG},
    {"interval", KEY_DURATION, offsetof(struct config_host, interval_ms), 10, 60000, NO_FLAG},
    {"socket", KEY_STRING, offsetof(struct config_host, socket), 0, 0, NO_FLAG},
    {"state_dir", KEY_STRING, offsetof(struct config_host, state_dir), 0, 0, NO_FLAG},
    {"http", KEY_STRING, offsetof(struct config_host, http), 0, 0, NO_FLAG},
    {"http_allow_remote", KEY_BOOL, offsetof(struct config_host, http_allow_remote), 0, 0, NO_FLAG},
    {"web_dir", KEY_STRING, offsetof(struct config_host, web_dir), 0, 0, NO_FLAG},
    {"admin_group", KEY_STRING, offsetof(struct config_host, admin_group), 0, 0, NO_FLAG},
    {"qemu_user", KEY_STRING, offsetof(struct config_host, qemu_user), 0, 0, NO_FLAG},
    {"libvirt_uri", KEY_STRING, offsetof(struct config_host, libvirt_uri), 0, 0, NO_FLAG},
    {NULL, 0, 0, 0, 0, 0},
};

#define DAY_MS (86400.0 * 1000.0)
static const struct key_spec policy_keys[] = {
    {"min_change", KEY_SIZE, offsetof(struct policy_tunables, min_change_bytes), 0, 0, NO_FLAG},
    {"min_change_permille", KEY_U32, offsetof(struct policy_tunables, min_change_permille), 0, 1000,
     NO_FLAG},
    {"shrink_delay", KEY_DURATION, offsetof(struct policy_tunables, shrink_delay_ms), 0, DAY_MS,
     NO_FLAG},
    {"shrink_step_percent", KEY_U32, offsetof(struct policy_tunables, shrink_step_percent), 1, 100,
     NO_FLAG},
    {"trend_lookahead", KEY_DURATION, offsetof(struct policy_tunables, trend_lookahead_ms), 0,
     3600000, NO_FLAG},
    {"stall_threshold_permille", KEY_U32,
     offsetof(struct policy_tunables, stall_threshold_permille), 1, 1000, NO_FLAG},
    {"stall_grow_percent", KEY_U32, offsetof(struct policy_tunables, stall_grow_percent), 1, 1000,
     NO_FLAG},
    {"probe_after", KEY_DURATION, offsetof(struct policy_tunables, probe_after_ms), 0, DAY_MS,
     NO_FLAG},
    {"probe_rate_permille", KEY_U32, offsetof(struct policy_tunables, probe_rate_permille), 0, 1000,
     NO_FLAG},
    {"probe_max_percent", KEY_U32, offsetof(struct policy_tunables, probe_max_percent), 0, 90,
     NO_FLAG},
    {"probe_step_permille", KEY_U32, offsetof(struct policy_tunables, probe_step_permille), 1, 500,
     NO_FLAG},
    /* Above 100 % the VMs want more than the host: scarcity, where nothing is probed. */
    {"probe_contention_percent", KEY_U32,
     offsetof(struct policy_tunables, probe_contention_percent), 0, 100, NO_FLAG},
    {"probe_fine_percent", KEY_U32, offsetof(struct policy_tunables, probe_fine_percent), 0, 100,
     NO_FLAG},
    {"stall_backoff_max", KEY_U32, offsetof(struct policy_tunables, stall_backoff_max), 1, 64,
     NO_FLAG},
    {"stall_memory", KEY_DURATION, offsetof(struct policy_tunables, stall_memory_ms), 0, DAY_MS,
     NO_FLAG},
    {"lend_hold", KEY_DURATION, offsetof(struct policy_tunables, lend_hold_ms), 0, 7 * DAY_MS,
     NO_FLAG},
    {"history_halflife", KEY_DURATION, offsetof(struct policy_tunables, history_halflife_ms), 0,
     7 * DAY_MS, NO_FLAG},
    {"headroom_permille", KEY_U32, offsetof(struct policy_tunables, headroom_permille), 0, 1000,
     NO_FLAG},
    {"headroom_pool_percent", KEY_U32, offsetof(struct policy_tunables, headroom_pool_percent), 0,
     1000, NO_FLAG},
    {"headroom_kill_weight", KEY_U32, offsetof(struct policy_tunables, headroom_kill_weight), 0,
     1000, NO_FLAG},
    {"headroom_period", KEY_DURATION, offsetof(struct policy_tunables, headroom_period_ms), 0,
     DAY_MS, NO_FLAG},
    {"persistence_max_permille", KEY_U32,
     offsetof(struct policy_tunables, persistence_max_permille), 0, 1000, NO_FLAG},
    {"grow_band_percent", KEY_U32, offsetof(struct policy_tunables, grow_band_percent), 0, 100,
     NO_FLAG},
    {"shrink_band_percent", KEY_U32, offsetof(struct policy_tunables, shrink_band_percent), 0, 1000,
     NO_FLAG},
    {NULL, 0, 0, 0, 0, 0},
};

static const struct key_spec sim_keys[] = {
    /* As long as a trace may run (trace.h), and no longer; 0 would run nothing (left out, the
       run lasts until the last trace ends). */
    {"duration", KEY_DURATION, offsetof(struct config_sim, duration_ms), 1, (double)TRACE_MS_MAX,
     NO_FLAG},
    {"step", KEY_DURATION, offsetof(struct config_sim, step_ms), 10, 3600000, NO_FLAG},
    {"report_interval", KEY_DURATION, offsetof(struct config_sim, report_interval_ms), 10, 3600000,
     NO_FLAG},
    {"grow_rate", KEY_SIZE, offsetof(struct config_sim, grow_rate), 1, 0, NO_FLAG},
    {"shrink_rate", KEY_SIZE, offsetof(struct config_sim, shrink_rate), 1, 0, NO_FLAG},
    {"seed", KEY_U64, offsetof(struct config_sim, seed), 0, 0, NO_FLAG},
    {"speed", KEY_DOUBLE, offsetof(struct config_sim, speed), 0.001, 100000, NO_FLAG},
    {NULL, 0, 0, 0, 0, 0},
};
_Static_assert(sizeof(sim_keys) / sizeof(sim_keys[0]) == CONFIG_SIM_KEYS + 1,
               "CONFIG_SIM_KEYS counts the keys of [sim]");

static const struct key_spec cluster_keys[] = {
    {"relief", KEY_BOOL, offsetof(struct config_cluster, relief), 0, 0, NO_FLAG},
    {"shortage_for", KEY_DURATION, offsetof(struct config_cluster, shortage_for_ms), 1000, DAY_MS,
     NO_FLAG},
    {"cooldown", KEY_DURATION, offsetof(struct config_cluster, cooldown_ms), 1000, DAY_MS, NO_FLAG},
    {"peer_timeout", KEY_DURATION, offsetof(struct config_cluster, peer_timeout_ms), 100, 600000,
     NO_FLAG},
    {NULL, 0, 0, 0, 0, 0},
};

static const struct key_spec peer_keys[] = {
    {"libvirt_uri", KEY_STRING, offsetof(struct config_peer, libvirt_uri), 0, 0, NO_FLAG},
    {"http", KEY_STRING, offsetof(struct config_peer, http), 0, 0, NO_FLAG},
    {NULL, 0, 0, 0, 0, 0},
};

/* The settings themselves come from settings_table (lib/settings). */
static const struct key_spec vm_keys[] = {
    {"autostart", KEY_BOOL, offsetof(struct config_vm, autostart), 0, 0, NO_FLAG},
    {NULL, 0, 0, 0, 0, 0},
};

/* ---- parsing state ---- */

enum section {
        SECTION_NONE,
        SECTION_HOST,
        SECTION_POLICY,
        SECTION_SIM,
        SECTION_VM,
        SECTION_CLUSTER,
        SECTION_PEER,
        SECTION_BAD,
};

/* The keys given in a section, with the line of each. */
struct seen_key {
        char *key;
        unsigned line;
};

struct seen_keys {
        struct seen_key *keys;
        size_t n;
};

struct parse_state {
        const char *file;
        struct config *cfg;
        struct config_diag *diag;
        unsigned errors;
        /* line reader */
        const char *text; /* string source, or NULL */
        size_t text_pos;
        FILE *fp;
        unsigned line;
        bool line_continues; /* the last line read started with white space */
        bool overlong;
        unsigned unclosed_line; /* the first section header without ']', reported */
        /* section tracking */
        char section_raw[CONFIG_VALUE_MAX];
        enum section section;
        struct config_vm *vm;
        struct config_peer *peer;
        char last_key[64]; /* for continuation lines */
        /*
         * Keys given so far, by section, to catch duplicates: a [host] (or
         * [policy], [sim], [cluster]) given twice is one section, so its list
         * lasts the whole file; a [vm] or [peer] section starts its own.
         */
        struct seen_keys seen[SECTION_BAD + 1];
};

static void diag(struct parse_state *ps, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void diag(struct parse_state *ps, unsigned line, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        config_diag_add(ps->diag, ps->file, line, "%s", msg);
        ps->errors++;
}

static void enter_section(struct parse_state *ps, const char *section);

/*
 * Section headers are handled here, where every one is seen (inih calls the
 * key handler only for keys, so an empty [vm "x"] would otherwise be missed).
 * Like inih, an indented line after a key continues that key's value.
 */
static void notice_section(struct parse_state *ps, const char *line)
{
        const char *p = line;

        while (*p == ' ' || *p == '\t')
                p++;
        if (*p != '[' || (p > line && ps->last_key[0]))
                return;
        const char *end = strchr(p, ']');
        if (!end) {
                /* inih reports it only once the file is read, after what follows from it:
                 * said here, in its place, and the keys below it are not read as keys of
                 * the section before */
                int n = (int)strcspn(p, "\r");
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                diag(ps, ps->line,
                     "syntax error: \"%.*s\" has no ']' closing the section name; the keys "
                     "after it are ignored up to the next section",
                     n, p);
                if (!ps->unclosed_line)
                        ps->unclosed_line = ps->line;
                ps->section = SECTION_BAD;
                ps->section_raw[0] = ps->last_key[0] = '\0';
                ps->vm = NULL;
                ps->peer = NULL;
                return;
        }
        char name[CONFIG_VALUE_MAX];
        size_t n = (size_t)(end - p - 1);
        if (n >= sizeof(name))
                n = sizeof(name) - 1;
        memcpy(name, p + 1, n);
        name[n] = '\0';
        enter_section(ps, name);
        /* inih drops the rest of a header line: only a comment may follow. */
        const char *rest = end + 1 + strspn(end + 1, " \t\r");
        if (*rest && *rest != ';' && *rest != '#')
                diag(ps, ps->line, "\"%s\" after [%s] (a key goes on a line of its own)", rest,
                     name);
}

/*
 * inih's line reader. Counts lines, notes continuation lines, and reports
 * lines too long for inih's buffer (which would otherwise be split silently).
 */
static char *read_line(char *buf, int size, void *stream)
{
        struct parse_state *ps = stream;
        size_t n = 0, cap = (size_t)size - 1;
        bool nul = false;

        if (ps->text) {
                const char *src = ps->text + ps->text_pos;
                if (*src == '\0')
                        return NULL;
                while (src[n] && src[n] != '\n' && n < cap)
                        n++;
                memcpy(buf, src, n);
                bool newline = src[n] == '\n';
                bool more = src[n] && !newline;
                ps->text_pos += n + (newline ? 1 : 0);
                if (more) { /* skip the rest of an overlong line */
                        ps->overlong = true;
                        while (ps->text[ps->text_pos] && ps->text[ps->text_pos] != '\n')
                                ps->text_pos++;
                        if (ps->text[ps->text_pos] == '\n')
                                ps->text_pos++;
                }
                buf[n] = '\0';
        } else {
                /* By character, not fgets(), so that a NUL byte cannot end the line unseen. */
                int c = EOF;
                while (n < cap && (c = getc_unlocked(ps->fp)) != EOF && c != '\n') {
                        nul |= c == '\0';
                        buf[n++] = (char)c;
                }
                if (n == 0 && c == EOF)
                        return NULL;
                if (n == cap) {
                        /* The buffer is full: the line ends here or it is too long. */
                        c = getc_unlocked(ps->fp);
                        if (c != '\n' && c != EOF) {
                                ps->overlong = true;
                                while ((c = getc_unlocked(ps->fp)) != EOF && c != '\n')
                                        ;
                        }
                }
                buf[n] = '\0';
        }
        ps->line++;
        if (ps->overlong) {
                diag(ps, ps->line,
                     "line longer than %d characters (continue long values on "
                     "indented lines)",
                     size - 1);
                ps->overlong = false;
                buf[0] = '\0'; /* inih sees an empty line */
        } else if (nul) {
                diag(ps, ps->line, "a NUL byte in the line (not a text file?)");
                buf[0] = '\0';
        }
        if (ps->line == 1) {
                const char *text = config_skip_bom(buf);
                memmove(buf, text, strlen(text) + 1);
        }
        ps->line_continues = buf[0] == ' ' || buf[0] == '\t';
        notice_section(ps, buf);
        return buf;
}

/* The line that first gave `key` in the current section, or 0 (and it is noted now). */
static unsigned seen_before(struct parse_state *ps, const char *key)
{
        struct seen_keys *s = &ps->seen[ps->section];

        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->keys[i].key, key) == 0)
                        return s->keys[i].line;
        struct seen_key *grown = realloc(s->keys, (s->n + 1) * sizeof(*grown));
        if (!grown)
                return 0;
        s->keys = grown;
        s->keys[s->n] = (struct seen_key){strdup(key), ps->line};
        if (s->keys[s->n].key)
                s->n++;
        return 0;
}

static void seen_reset(struct seen_keys *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->keys[i].key);
        free(s->keys);
        *s = (struct seen_keys){0};
}

const char *config_skip_bom(const char *text)
{
        return strncmp(text, "\xEF\xBB\xBF", 3) == 0 ? text + 3 : text;
}

bool config_name_valid(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n >= CONFIG_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)name[i];
                if (!isalnum(c) && c != '_' && c != '.' && c != '-')
                        return false;
        }
        return true;
}

/* The NAME of a section [KIND "NAME"] (kind: "vm", "peer"), checked like a VM name. */
static int section_name(struct parse_state *ps, const char *section, const char *kind,
                        char name[CONFIG_NAME_MAX])
{
        const char *p = section + strlen(kind) + 1;
        size_t n = strlen(p);

        if (n < 2 || p[0] != '"' || p[n - 1] != '"') {
                diag(ps, ps->line, "section [%s]: expected [%s \"NAME\"]", section, kind);
                return -1;
        }
        if (n - 2 >= CONFIG_NAME_MAX) {
                diag(ps, ps->line, "%s name longer than %d characters",
                     strcmp(kind, "vm") == 0 ? "VM" : kind, CONFIG_NAME_MAX - 1);
                return -1;
        }
        memcpy(name, p + 1, n - 2);
        name[n - 2] = '\0';
        if (!config_name_valid(name)) {
                diag(ps, ps->line,
                     "invalid %s name \"%s\" (1..%d of letters, digits, '_', '.', '-', not "
                     "starting with '.' or '-')",
                     strcmp(kind, "vm") == 0 ? "VM" : kind, name, CONFIG_NAME_MAX - 1);
                return -1;
        }
        return 0;
}

static int start_peer_section(struct parse_state *ps, const char *section)
{
        struct config_cluster *c = &ps->cfg->cluster;
        char name[CONFIG_NAME_MAX];

        if (section_name(ps, section, "peer", name) < 0)
                return -1;
        for (size_t i = 0; i < c->n_peers; i++) {
                if (strcmp(c->peers[i].name, name) == 0) {
                        diag(ps, ps->line, "peer \"%s\" is defined twice (first at line %u)", name,
                             c->peers[i].line);
                        return -1;
                }
        }
        if (c->n_peers >= CONFIG_PEERS_MAX) {
                diag(ps, ps->line, "more than %d peers", CONFIG_PEERS_MAX);
                return -1;
        }
        struct config_peer *grown = realloc(c->peers, (c->n_peers + 1) * sizeof(*grown));
        if (!grown) {
                diag(ps, ps->line, "out of memory");
                return -1;
        }
        c->peers = grown;
        ps->peer = &c->peers[c->n_peers++];
        *ps->peer = (struct config_peer){.line = ps->line};
        memcpy(ps->peer->name, name, strlen(name) + 1);
        return 0;
}

static int start_vm_section(struct parse_state *ps, const char *section)
{
        char name[CONFIG_NAME_MAX];

        if (section_name(ps, section, "vm", name) < 0)
                return -1;
        struct config *c = ps->cfg;
        for (size_t i = 0; i < c->n_vms; i++) {
                if (strcmp(c->vms[i].name, name) == 0) {
                        diag(ps, ps->line, "VM \"%s\" is defined twice (first at line %u)", name,
                             c->vms[i].line);
                        return -1;
                }
        }
        if (c->n_vms >= CONFIG_VMS_MAX) {
                diag(ps, ps->line, "more than %d VMs", CONFIG_VMS_MAX);
                return -1;
        }
        if ((c->n_vms & (c->n_vms - 1)) == 0) { /* grow at powers of two */
                size_t cap = c->n_vms ? c->n_vms * 2 : 8;
                struct config_vm *grown = realloc(c->vms, cap * sizeof(*grown));
                if (!grown) {
                        diag(ps, ps->line, "out of memory");
                        return -1;
                }
                c->vms = grown;
        }
        struct config_vm *vm = &c->vms[c->n_vms++];
        *vm = (struct config_vm){.line = ps->line};
        memcpy(vm->name, name, strlen(name) + 1);
        ps->vm = vm;
        return 0;
}

static void enter_section(struct parse_state *ps, const char *section)
{
        snprintf(ps->section_raw, sizeof(ps->section_raw), "%s", section);
        ps->vm = NULL;
        ps->peer = NULL;
        ps->last_key[0] = '\0';
        if (strcmp(section, "host") == 0)
                ps->section = SECTION_HOST;
        else if (strcmp(section, "policy") == 0)
                ps->section = SECTION_POLICY;
        else if (strcmp(section, "sim") == 0)
                ps->section = SECTION_SIM;
        else if (strncmp(section, "vm ", 3) == 0)
                ps->section = start_vm_section(ps, section) == 0 ? SECTION_VM : SECTION_BAD;
        else if (strcmp(section, "cluster") == 0)
                ps->section = SECTION_CLUSTER;
        else if (strncmp(section, "peer ", 5) == 0)
                ps->section = start_peer_section(ps, section) == 0 ? SECTION_PEER : SECTION_BAD;
        else {
                diag(ps, ps->line,
                     "unknown section [%s] (known: host, policy, sim, vm \"NAME\", cluster, peer "
                     "\"NAME\")",
                     section);
                ps->section = SECTION_BAD;
        }
        if (ps->section == SECTION_VM || ps->section == SECTION_PEER)
                seen_reset(&ps->seen[ps->section]);
}

static int parse_u64(const char *v, uint64_t *ret)
{
        char *end;

        if (!isdigit((unsigned char)v[0]))
                return -EINVAL;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end)
                return -EINVAL;
        *ret = x;
        return 0;
}

const char *config_comment_hint(const char *value)
{
        for (const char *p = value; *p; p++) {
                bool after_word = p > value && p[-1] != ' ' && p[-1] != '\t';
                if (*p == '#' && p > value && !after_word)
                        return " (" COMMENT_RULE ")";
                if (*p == ';' && after_word)
                        return " (a comment after a value starts with \" ;\": white space before "
                               "the ';')";
        }
        return "";
}

/* Where white space followed by '#' starts in a text value, or NULL. */
static const char *text_comment(const char *value)
{
        for (const char *p = value; *p; p++)
                if (*p == '#' && p > value && (p[-1] == ' ' || p[-1] == '\t')) {
                        while (p > value && (p[-1] == ' ' || p[-1] == '\t'))
                                p--;
                        return p;
                }
        return NULL;
}

bool config_text_has_comment(const char *value)
{
        return text_comment(value) != NULL;
}

/*
 * A text value that holds " #": a warning, not an error (a path may hold it).
 * It names the line that holds the " #": `at`, or `line` (the key's) when 0;
 * a value continued from the key's line says that line too.
 */
static void warn_comment(struct parse_state *ps, unsigned line, unsigned at, const char *key,
                         const char *value)
{
        const char *tail = text_comment(value);
        char from[48] = "";

        if (!tail)
                return;
        if (at && at != line)
                snprintf(from, sizeof(from), " (continued from line %u)", line);
        config_diag_add(&ps->cfg->warnings, ps->file, at ? at : line,
                        "warning: %s%s: \"%.120s%s\" holds \"%.80s%s\" as part of the value "
                        "(" COMMENT_RULE ")",
                        key, from, value, strlen(value) > 120 ? "..." : "", tail,
                        strlen(tail) > 80 ? "..." : "");
}

/* A value that is not of its key's type: the message, and a word on a comment it holds. */
static void diag_value(struct parse_state *ps, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void diag_value(struct parse_state *ps, const char *value, const char *fmt, ...)
{
        char msg[400];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        diag(ps, ps->line, "%s%s", msg, config_comment_hint(value));
}

/* Store one value according to its spec. Returns 0 or -1 (reported). */
static int store_value(struct parse_state *ps, const struct key_spec *k, void *base,
                       const char *value)
{
        void *field = (char *)base + k->offset;
        uint64_t u;
        int r;

        switch (k->type) {
        case KEY_SIZE: {
                char a[32], why[160];
                r = size_parse(value, &u);
                if (r == -EINVAL && size_blank_inside(value, why, sizeof(why))) {
                        diag(ps, ps->line, "%s: %s", k->name, why);
                        return -1;
                }
                if (r == -EINVAL) {
                        diag_value(ps, value,
                                   "%s: \"%s\" is not a size (bytes, or a number with K, "
                                   "M, G or T)",
                                   k->name, value);
                        return -1;
                }
                if (r < 0) {
                        diag(ps, ps->line, "%s: \"%s\" is too large", k->name, value);
                        return -1;
                }
                if (size_unit_missing(value, u, why, sizeof(why))) {
                        diag(ps, ps->line, "%s: %s", k->name, why);
                        return -1;
                }
                if (u < (uint64_t)k->min) {
                        diag(ps, ps->line, "%s: %s is below %s", k->name, value,
                             size_format((uint64_t)k->min, a, sizeof(a)));
                        return -1;
                }
                *(uint64_t *)field = u;
                return 0;
        }
        case KEY_DURATION:
                r = duration_parse(value, &u);
                if (r == -EINVAL) {
                        diag_value(ps, value,
                                   "%s: \"%s\" is not a duration (a number with ms, s, m "
                                   "or h)",
                                   k->name, value);
                        return -1;
                }
                /* Every duration key has a maximum, so a number too large for any is outside. */
                if (r < 0 || (k->min > 0 && (double)u < k->min) ||
                    (k->max > 0 && (double)u > k->max)) {
                        char a[32], b[32];
                        diag(ps, ps->line, "%s: %s%s is outside %s..%s", k->name, value,
                             duration_read_as(value),
                             duration_format((uint64_t)k->min, a, sizeof(a)),
                             duration_format((uint64_t)k->max, b, sizeof(b)));
                        return -1;
                }
                *(uint64_t *)field = u;
                return 0;
        case KEY_U32:
                r = parse_u64(value, &u);
                if (r < 0 || (double)u < k->min || (double)u > k->max) {
                        diag_value(ps, value, "%s: \"%s\" is not a whole number in %.0f..%.0f",
                                   k->name, value, k->min, k->max);
                        return -1;
                }
                *(uint32_t *)field = (uint32_t)u;
                return 0;
        case KEY_U64:
                r = parse_u64(value, &u);
                if (r < 0) {
                        diag_value(ps, value, "%s: \"%s\" is %s", k->name, value,
                                   r == -ERANGE ? "too large" : "not a whole number");
                        return -1;
                }
                *(uint64_t *)field = u;
                return 0;
        case KEY_DOUBLE: {
                char *end;
                errno = 0;
                double d = strtod(value, &end);
                if (errno || *end || end == value || !(d >= k->min && d <= k->max)) {
                        diag_value(ps, value, "%s: \"%s\" is not a number in %g..%g", k->name,
                                   value, k->min, k->max);
                        return -1;
                }
                *(double *)field = d;
                return 0;
        }
        case KEY_BOOL:
                if (switch_parse(value, (bool *)field) < 0) {
                        diag_value(ps, value, "%s: \"%s\" is not " SWITCH_WORDS, k->name, value);
                        return -1;
                }
                return 0;
        case KEY_POLICY:
                if (policy_kind_parse(value, &(enum policy_kind){0}, NULL) < 0) {
                        diag_value(ps, value,
                                   "%s: \"%s\" is not dynmem, static, hyperv or "
                                   "exec:COMMAND",
                                   k->name, value);
                        return -1;
                }
                /* fall through */
        case KEY_STRING: {
                char *dup = strdup(value);
                if (!dup) {
                        diag(ps, ps->line, "out of memory");
                        return -1;
                }
                free(*(char **)field);
                *(char **)field = dup;
                return 0;
        }
        }
        return -1;
}

/*
 * Store one of a [vm]'s settings. Whole numbers are checked against the
 * setting's range here, on their own line; sizes, which depend on each
 * other and on the block, in check_whole(). Returns 0 or -1 (reported).
 */
static int store_setting(struct parse_state *ps, const struct setting_desc *d, const char *value)
{
        char a[32], why[160];
        uint64_t v;
        int r = settings_parse_text(d, value, &v);

        if (r == -EINVAL && d->type == SETTING_SIZE && size_blank_inside(value, why, sizeof(why))) {
                diag(ps, ps->line, "%s: %s", d->name, why);
                return -1;
        }
        if (r == -ERANGE && d->type == SETTING_SIZE) {
                diag(ps, ps->line, "%s: \"%s\" is larger than %s", d->name, value,
                     size_format(d->max, a, sizeof(a)));
                return -1;
        }
        if (r < 0 || (d->type == SETTING_NUMBER && (v < d->min || v > d->max))) {
                if (d->type == SETTING_NUMBER)
                        diag_value(ps, value, "%s: \"%s\" is not %s in %llu..%llu", d->name, value,
                                   settings_expected(d), (unsigned long long)d->min,
                                   (unsigned long long)d->max);
                else
                        diag_value(ps, value, "%s: \"%s\" is not %s", d->name, value,
                                   settings_expected(d));
                return -1;
        }
        if (d->type == SETTING_SIZE && size_unit_missing(value, v, why, sizeof(why))) {
                diag(ps, ps->line, "%s: %s", d->name, why);
                return -1;
        }
        settings_set(&ps->vm->settings, d, v);
        ps->vm->given |= d->bit;
        ps->vm->given_lines[__builtin_ctz(d->bit)] = ps->line;
        return 0;
}

static const struct key_spec *find_key(const struct key_spec *table, const char *name)
{
        for (; table->name; table++)
                if (strcmp(table->name, name) == 0)
                        return table;
        return NULL;
}

static void offer_keys(struct suggest *s, const struct key_spec *table)
{
        for (; table->name; table++)
                suggest_offer(s, table->name);
}

static void add_extra(struct parse_state *ps, const char *key, const char *value)
{
        struct config_vm *vm = ps->vm;
        struct config_kv *grown = realloc(vm->extra, (vm->n_extra + 1) * sizeof(*grown));

        if (!grown) {
                diag(ps, ps->line, "out of memory");
                return;
        }
        vm->extra = grown;
        vm->extra[vm->n_extra] = (struct config_kv){strdup(key), strdup(value), ps->line,
                                                    text_comment(value) ? ps->line : 0};
        if (!vm->extra[vm->n_extra].key || !vm->extra[vm->n_extra].value) {
                free(vm->extra[vm->n_extra].key);
                free(vm->extra[vm->n_extra].value);
                diag(ps, ps->line, "out of memory");
                return;
        }
        vm->n_extra++;
}

/* A continuation line appends " value" to the previous backend key's value. */
static int continue_value(struct parse_state *ps, const char *key, const char *value)
{
        struct config_vm *vm = ps->vm;

        if (ps->section != SECTION_VM || !vm || vm->n_extra == 0 ||
            strcmp(vm->extra[vm->n_extra - 1].key, key) != 0) {
                diag(ps, ps->line, "%s: only backend keys may continue on indented lines", key);
                return 0;
        }
        struct config_kv *kv = &vm->extra[vm->n_extra - 1];
        size_t a = strlen(kv->value), b = strlen(value);
        if (a + 1 + b >= CONFIG_VALUE_MAX) {
                diag(ps, ps->line, "%s: value longer than %d characters", key,
                     CONFIG_VALUE_MAX - 1);
                return 0;
        }
        char *grown = realloc(kv->value, a + b + 2);
        if (!grown)
                return 0;
        grown[a] = ' ';
        memcpy(grown + a + 1, value, b + 1);
        kv->value = grown;
        if (!kv->comment_line && text_comment(value))
                kv->comment_line = ps->line; /* the warning names this line, not the key's */
        return 1;
}

/* Whether only dynmemd reads a key of section (config.daemon_keys). */
static bool daemon_only(enum section section, const char *key)
{
        static const char *const host[] = {
            "backend", "socket",      "state_dir", "http",        "http_allow_remote",
            "web_dir", "admin_group", "qemu_user", "libvirt_uri", NULL};

        switch (section) {
        case SECTION_HOST:
                for (const char *const *k = host; *k; k++)
                        if (strcmp(*k, key) == 0)
                                return true;
                return false;
        case SECTION_SIM:
                return strcmp(key, "speed") == 0; /* dynmemd's sim backend runs in real time */
        case SECTION_VM:
                return strcmp(key, "autostart") == 0; /* dynmem-sim starts VMs at start = */
        case SECTION_CLUSTER:
        case SECTION_PEER:
                return true; /* relief and live migration */
        default:
                return false;
        }
}

static const char *section_label(enum section section)
{
        static const char *const names[] = {
            [SECTION_HOST] = "host", [SECTION_POLICY] = "policy",   [SECTION_SIM] = "sim",
            [SECTION_VM] = "vm",     [SECTION_CLUSTER] = "cluster", [SECTION_PEER] = "peer",
        };

        return section < sizeof(names) / sizeof(names[0]) && names[section] ? names[section] : "";
}

/* Note key, at the current line, in a list of config_key_at. */
static void note_key(struct parse_state *ps, struct config_key_at **list, size_t *n,
                     const char *key)
{
        struct config_key_at *grown = realloc(*list, (*n + 1) * sizeof(*grown));

        if (!grown) {
                diag(ps, ps->line, "out of memory");
                return;
        }
        *list = grown;
        (*list)[(*n)++] = (struct config_key_at){key, ps->line, section_label(ps->section)};
}

static int handle_key(void *user, const char *section, const char *key, const char *value)
{
        struct parse_state *ps = user;
        const struct key_spec *table = NULL;
        void *base = NULL;

        (void)section; /* inih truncates long section names; ours is ps->section_raw */
        if (ps->line_continues && strcmp(key, ps->last_key) == 0)
                return continue_value(ps, key, value);
        snprintf(ps->last_key, sizeof(ps->last_key), "%s", key);
        switch (ps->section) {
        case SECTION_NONE:
                diag(ps, ps->line, "%s: key outside any section", key);
                return 1;
        case SECTION_BAD:
                return 1; /* the section header was reported */
        case SECTION_HOST:
                table = host_keys, base = &ps->cfg->host;
                break;
        case SECTION_POLICY:
                table = policy_keys, base = &ps->cfg->tunables;
                break;
        case SECTION_SIM:
                table = sim_keys, base = &ps->cfg->sim;
                break;
        case SECTION_VM:
                table = vm_keys, base = ps->vm;
                if (strcmp(key, "autostart") == 0)
                        ps->vm->autostart_line = ps->line;
                break;
        case SECTION_CLUSTER:
                table = cluster_keys, base = &ps->cfg->cluster;
                if (strcmp(key, "relief") == 0)
                        ps->cfg->cluster.relief_line = ps->line;
                break;
        case SECTION_PEER:
                table = peer_keys, base = ps->peer;
                break;
        }
        if (value[0] == '\0') {
                diag(ps, ps->line, "%s: empty value", key);
                return 1;
        }
        unsigned first = seen_before(ps, key);
        if (first) {
                diag(ps, ps->line, "%s: given twice in [%s] (first at line %u)", key,
                     ps->section_raw, first);
                return 1;
        }
        const struct setting_desc *setting = ps->section == SECTION_VM ? settings_find(key) : NULL;
        if (setting) {
                store_setting(ps, setting, value);
                return 1;
        }
        const struct key_spec *k = find_key(table, key);
        if (!k) {
                if (ps->section == SECTION_VM) {
                        add_extra(ps, key, value); /* checked by the backend */
                        return 1;
                }
                struct suggest s;
                suggest_init(&s, key);
                offer_keys(&s, table);
                if (suggest_best(&s))
                        diag(ps, ps->line, "unknown key \"%s\" in [%s] (did you mean \"%s\"?)", key,
                             ps->section_raw, suggest_best(&s));
                else
                        diag(ps, ps->line, "unknown key \"%s\" in [%s]", key, ps->section_raw);
                return 1;
        }
        if (store_value(ps, k, base, value) < 0)
                return 1;
        if (k->type == KEY_STRING || k->type == KEY_POLICY)
                warn_comment(ps, ps->line, 0, key, value);
        if (k->given_offset != NO_FLAG)
                *(bool *)((char *)base + k->given_offset) = true;
        if (daemon_only(ps->section, k->name))
                note_key(ps, &ps->cfg->daemon_keys, &ps->cfg->n_daemon_keys, k->name);
        if (ps->section != SECTION_VM && ps->section != SECTION_PEER)
                note_key(ps, &ps->cfg->given_keys, &ps->cfg->n_given_keys, k->name);
        return 1;
}

static void config_defaults(struct config *c)
{
        policy_tunables_default(&c->tunables);
        c->host.interval_ms = MSEC_PER_SEC;
        c->sim = (struct config_sim){
            .step_ms = MSEC_PER_SEC,
            .report_interval_ms = MSEC_PER_SEC,
            .grow_rate = GIB,
            .shrink_rate = 512 * MIB,
            .seed = 1,
            .speed = 1.0,
        };
        c->cluster = (struct config_cluster){
            .shortage_for_ms = 60 * MSEC_PER_SEC,
            .cooldown_ms = 300 * MSEC_PER_SEC,
            .peer_timeout_ms = 5 * MSEC_PER_SEC,
        };
}

static int fill_string_default(char **field, const char *value)
{
        if (*field)
                return 0;
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

/*
 * A VM's settings error at the line of the key it is about, the first of
 * the settings its message names (named, settings_check_naming()) that the
 * section gives; the other one named, when the section gives it too, is
 * cited with its line: "t.ini:5: vm "a": minimum 2 GiB is above maximum 1 GiB
 * (maximum at line 4)". A message about settings the section leaves at their
 * defaults (it says so) is at the section's header.
 */
static void report_settings(struct parse_state *ps, const struct config_vm *vm,
                            const unsigned named[2], const char *err)
{
        unsigned line = 0, other = 0;
        const char *other_key = "";
        char also[96] = "";

        for (size_t i = 0; i < 2; i++) {
                if (!named[i] || !(vm->given & named[i]))
                        continue;
                unsigned at = vm->given_lines[__builtin_ctz(named[i])];
                if (!line) {
                        line = at;
                } else {
                        other = at;
                        other_key = settings_table[__builtin_ctz(named[i])].name;
                }
        }
        if (other)
                snprintf(also, sizeof(also), " (%s at line %u)", other_key, other);
        diag(ps, line ? line : vm->line, "vm \"%s\": %s%s", vm->name, err, also);
}

/* Checks that need more than one key: the settings rules. */
static void check_whole(struct parse_state *ps)
{
        struct config *c = ps->cfg;

        if (fill_string_default(&c->host.policy, "dynmem") < 0 ||
            fill_string_default(&c->host.backend, "sim") < 0)
                diag(ps, 0, "out of memory");
        for (size_t i = 0; i < c->n_vms; i++) {
                struct config_vm *vm = &c->vms[i];
                char err[256] = "";

                /* Backend keys are text here, continuation lines included. */
                for (size_t j = 0; j < vm->n_extra; j++)
                        warn_comment(ps, vm->extra[j].line, vm->extra[j].comment_line,
                                     vm->extra[j].key, vm->extra[j].value);

                unsigned named[2];
                settings_complete(&vm->settings, vm->given);
                if (settings_check_naming(&vm->settings, vm->given, named, err, sizeof(err)) < 0)
                        report_settings(ps, vm, named, err);
        }
        for (size_t i = 0; i < c->cluster.n_peers; i++) {
                const struct config_peer *p = &c->cluster.peers[i];
                if (!p->libvirt_uri || !p->http)
                        diag(ps, p->line, "peer \"%s\": needs libvirt_uri and http", p->name);
        }
        if (c->cluster.relief && c->cluster.n_peers == 0)
                diag(ps, c->cluster.relief_line, "relief: no [peer \"NAME\"] to move VMs to");
}

static int load(struct parse_state *ps, struct config *ret)
{
        int r;

        *ret = (struct config){0};
        config_defaults(ret);
        ret->path = strdup(ps->file);
        ps->cfg = ret;
        r = ini_parse_stream(read_line, ps, handle_key, ps);
        for (size_t i = 0; i < sizeof(ps->seen) / sizeof(ps->seen[0]); i++)
                seen_reset(&ps->seen[i]);
        if (r == -2) {
                diag(ps, 0, "out of memory");
        } else if (r > 0 && (unsigned)r != ps->unclosed_line) {
                diag(ps, (unsigned)r, "syntax error (expected [section] or key = value)");
        }
        check_whole(ps);
        if (ps->errors) {
                config_free(ret);
                return -EINVAL;
        }
        return 0;
}

FILE *config_open_text(const char *path, struct stat *st, struct config_diag *d, int *err)
{
        /* O_NONBLOCK: a FIFO put in the file's place is refused below, not waited on (a
         * reload would stop dynmemd's loop until the watchdog killed it) */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        FILE *fp = NULL;
        int r;

        if (fd < 0) {
                *err = -errno;
                config_diag_add(d, path, 0, "cannot open: %s", strerror(errno));
                return NULL;
        }
        r = fstat(fd, st) < 0                                ? -errno
            : S_ISDIR(st->st_mode)                           ? -EISDIR
            : S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode) ? -EINVAL
            : fcntl(fd, F_SETFL, 0) < 0                      ? -errno
                                                             : 0;
        fp = r == 0 ? fdopen(fd, "r") : NULL;
        if (r == 0 && !fp)
                r = -errno;
        if (r < 0) {
                if (r == -EINVAL)
                        config_diag_add(d, path, 0, "cannot read: a FIFO or socket, not a file");
                else
                        config_diag_add(d, path, 0, "cannot read: %s", strerror(-r));
                close(fd);
                *err = r;
                return NULL;
        }
        return fp;
}

int config_load(const char *path, struct config *ret, struct config_diag *d)
{
        struct parse_state ps = {.file = path, .diag = d};
        struct stat st;
        int r;

        *ret = (struct config){0};
        ps.fp = config_open_text(path, &st, d, &r);
        if (!ps.fp)
                return r;
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > CONFIG_FILE_MAX) {
                config_diag_add(d, path, 0, "larger than %u bytes", CONFIG_FILE_MAX);
                fclose(ps.fp);
                return -EFBIG;
        }
        r = load(&ps, ret);
        if (r == 0 && ferror(ps.fp)) {
                config_diag_add(d, path, 0, "read error");
                config_free(ret);
                r = -EIO;
        }
        fclose(ps.fp);
        return r;
}

int config_load_string(const char *name, const char *text, struct config *ret,
                       struct config_diag *d)
{
        struct parse_state ps = {.file = name, .diag = d, .text = text};

        return load(&ps, ret);
}

void config_free(struct config *c)
{
        if (!c)
                return;
        free(c->path);
        free(c->host.policy);
        free(c->host.backend);
        free(c->host.socket);
        free(c->host.state_dir);
        free(c->host.http);
        free(c->host.web_dir);
        free(c->host.admin_group);
        free(c->host.qemu_user);
        free(c->host.libvirt_uri);
        for (size_t i = 0; i < c->n_vms; i++) {
                for (size_t j = 0; j < c->vms[i].n_extra; j++) {
                        free(c->vms[i].extra[j].key);
                        free(c->vms[i].extra[j].value);
                }
                free(c->vms[i].extra);
        }
        free(c->vms);
        for (size_t i = 0; i < c->cluster.n_peers; i++) {
                free(c->cluster.peers[i].libvirt_uri);
                free(c->cluster.peers[i].http);
        }
        free(c->cluster.peers);
        free(c->daemon_keys);
        free(c->given_keys);
        config_diag_free(&c->warnings);
        *c = (struct config){0};
}

/* Append ", name" (or the first name) to buf of len bytes; names past its end are left out. */
static void list_add(char *buf, size_t len, const char *name)
{
        size_t used = strlen(buf);

        if (used < len)
                snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

/*
 * An unknown [vm] key: the nearest VM key or backend key when one is near
 * (a misspelt weight is not the backend's problem), or else where [vm] keys
 * come from, with both lists.
 */
static void report_vm_key(const struct config *c, const struct config_vm *vm,
                          const struct config_kv *kv, const char *backend,
                          const char *const *allowed, struct config_diag *d)
{
        char core[256] = "", own[256] = "";
        struct suggest s;

        suggest_init(&s, kv->key);
        for (size_t i = 0; i < SETTINGS_N; i++) {
                suggest_offer(&s, settings_table[i].name);
                list_add(core, sizeof(core), settings_table[i].name);
        }
        offer_keys(&s, vm_keys);
        for (const struct key_spec *k = vm_keys; k->name; k++)
                list_add(core, sizeof(core), k->name);
        for (const char *const *a = allowed; *a; a++) {
                suggest_offer(&s, *a);
                list_add(own, sizeof(own), *a);
        }
        if (suggest_best(&s))
                config_diag_add(d, c->path, kv->line,
                                "unknown key \"%s\" in [vm \"%s\"] (did you mean \"%s\"?)", kv->key,
                                vm->name, suggest_best(&s));
        else
                config_diag_add(
                    d, c->path, kv->line,
                    "unknown key \"%s\" in [vm \"%s\"]: neither a VM key (%s) nor a key "
                    "of backend %s (%s)",
                    kv->key, vm->name, core, backend, own[0] ? own : "it takes none");
}

int config_check_backend_keys(const struct config *c, const char *backend,
                              const char *const *allowed, struct config_diag *d)
{
        int errors = 0;

        for (size_t i = 0; i < c->n_vms; i++) {
                const struct config_vm *vm = &c->vms[i];
                for (size_t j = 0; j < vm->n_extra; j++) {
                        bool ok = false;
                        for (const char *const *a = allowed; *a && !ok; a++)
                                ok = strcmp(*a, vm->extra[j].key) == 0;
                        if (!ok) {
                                report_vm_key(c, vm, &vm->extra[j], backend, allowed, d);
                                errors++;
                        }
                }
        }
        return errors ? -EINVAL : 0;
}

unsigned config_key_line(const struct config *c, const char *section, const char *key)
{
        for (size_t i = 0; i < c->n_given_keys; i++)
                if (strcmp(c->given_keys[i].section, section) == 0 &&
                    strcmp(c->given_keys[i].key, key) == 0)
                        return c->given_keys[i].line;
        return 0;
}

/* Whether k's value differs between a and b, two structs of k's table. */
static bool key_differs(const struct key_spec *k, const void *a, const void *b)
{
        const char *va = (const char *)a + k->offset, *vb = (const char *)b + k->offset;

        switch (k->type) {
        case KEY_SIZE:
        case KEY_DURATION:
        case KEY_U64:
                return *(const uint64_t *)va != *(const uint64_t *)vb;
        case KEY_U32:
                return *(const uint32_t *)va != *(const uint32_t *)vb;
        case KEY_BOOL:
                return *(const bool *)va != *(const bool *)vb;
        case KEY_DOUBLE:
                return *(const double *)va != *(const double *)vb;
        case KEY_STRING:
        case KEY_POLICY: {
                const char *ta = *(char *const *)va, *tb = *(char *const *)vb;
                return (ta || tb) && (!ta || !tb || strcmp(ta, tb) != 0);
        }
        }
        return false;
}

size_t config_sim_differences(const struct config_sim *a, const struct config_sim *b,
                              const char **keys, size_t max)
{
        size_t n = 0;

        for (const struct key_spec *k = sim_keys; k->name && n < max; k++)
                if (key_differs(k, a, b))
                        keys[n++] = k->name;
        return n;
}

void config_warn_seed(struct config *c, const char *program)
{
        unsigned line = config_key_line(c, "sim", "seed");

        if (line)
                config_diag_add(&c->warnings, c->path, line,
                                "warning: seed: nothing in %s is random, so it ignores the seed (a "
                                "generated trace takes its seed from dynmem-tracegen --seed)",
                                program);
}

void config_warn_startup_beyond(struct config *c, uint64_t memory, const char *limit,
                                const char *consequence, const char *raise)
{
        char a[32], b[32];

        for (size_t i = 0; i < c->n_vms; i++) {
                const struct config_vm *vm = &c->vms[i];
                uint64_t startup = vm->settings.startup_bytes;

                if (startup <= memory)
                        continue;
                size_format_exact(startup, a, sizeof(a));
                size_format_exact(memory, b, sizeof(b));
                config_diag_add(&c->warnings, c->path, config_setting_line(vm, SETTINGS_STARTUP),
                                "warning: vm \"%s\": startup %s is more than %s: %s; lower its "
                                "startup to %s or less, or %s %s or more",
                                vm->name, a, limit, consequence, b, raise, a);
        }
}

unsigned config_setting_line(const struct config_vm *vm, unsigned bit)
{
        return vm->given & bit ? vm->given_lines[__builtin_ctz(bit)] : vm->line;
}

const struct config_kv *config_vm_key(const struct config_vm *vm, const char *key)
{
        for (size_t j = 0; j < vm->n_extra; j++)
                if (strcmp(vm->extra[j].key, key) == 0)
                        return &vm->extra[j];
        return NULL;
}
