/*
 * output: tables and key-value listings of dynmemd's replies. See output.h.
 */
#include "output.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "settings.h"
#include "units.h"

#define CELL_MAX 80 /* a cell of the VM table: a whole name, a state with its migration */
_Static_assert(CELL_MAX > CONFIG_NAME_MAX, "the longest VM name fits a cell");

void output_json(FILE *out, const json_t *value)
{
        json_dumpf(value, out, JSON_INDENT(2) | JSON_REAL_PRECISION(12) | JSON_ENCODE_ANY);
        fputc('\n', out);
}

/* ---- cells: one field of a VM or host object as text ---- */

typedef void (*cell_fn)(const json_t *obj, const char *key, char *buf, size_t len);

static void cell_string(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *v = json_object_get(obj, key);

        snprintf(buf, len, "%s", json_is_string(v) ? json_string_value(v) : "-");
}

static void cell_size(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *v = json_object_get(obj, key);

        if (json_is_integer(v) && json_integer_value(v) >= 0)
                size_format((uint64_t)json_integer_value(v), buf, len);
        else
                snprintf(buf, len, "-");
}

static void cell_percent(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *v = json_object_get(obj, key);

        if (json_is_number(v))
                snprintf(buf, len, "%.0f %%", json_number_value(v));
        else
                snprintf(buf, len, "-");
}

static void cell_number(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *v = json_object_get(obj, key);

        if (json_is_integer(v))
                snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        else
                snprintf(buf, len, "-");
}

static void cell_bool(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *v = json_object_get(obj, key);

        snprintf(buf, len, "%s", json_is_true(v) ? "on" : json_is_false(v) ? "off" : "-");
}

/* Settings by JSON name as the options' names: "buffer, weight, autostart", or "none". */
static void cell_names(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *v = json_object_get(obj, key), *w;
        size_t i, at = 0;

        snprintf(buf, len, "none");
        json_array_foreach(v, i, w)
        {
                const char *name = json_string_value(w);
                const struct setting_desc *d = name ? settings_find_json(name) : NULL;
                if (at < len)
                        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "",
                                               d      ? d->name
                                               : name ? name
                                                      : "?");
        }
}

/* ---- the VM table ---- */

struct column {
        const char *header;
        const char *key;
        cell_fn cell;
        bool right;
        bool if_any; /* shown only when some VM has a figure above 0 (a loan) */
};

/* The state, and a live migration under way: "running (outgoing)". */
static void cell_state(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *mig = json_object_get(obj, "migration");

        cell_string(obj, key, buf, len);
        if (json_is_string(mig)) {
                size_t at = strlen(buf);
                snprintf(buf + at, len - at, " (%s)", json_string_value(mig));
        }
}

/*
 * The status, or "problem" when the VM's settings cannot be used (a libvirt domain's
 * bad metadata): it is then not balanced, and `dynmem show` says why.
 */
static void cell_status(const json_t *obj, const char *key, char *buf, size_t len)
{
        if (json_is_string(json_object_get(obj, "problem")))
                snprintf(buf, len, "problem");
        else
                cell_string(obj, key, buf, len);
}

static const struct column vm_columns[] = {
    {"NAME", "name", cell_string, false, false},
    {"STATE", "state", cell_state, false, false},
    {"ASSIGNED", "assigned_bytes", cell_size, true, false},
    {"LENT", "lent_bytes", cell_size, true, true},
    {"DEMAND", "demand_bytes", cell_size, true, false},
    {"PRESSURE", "pressure_percent", cell_percent, true, false},
    {"STATUS", "status", cell_status, false, false},
    {"MIN", "minimum_bytes", cell_size, true, false},
    {"STARTUP", "startup_bytes", cell_size, true, false},
    {"MAX", "maximum_bytes", cell_size, true, false},
    {"BUFFER", "buffer_percent", cell_percent, true, false},
    {"WEIGHT", "weight", cell_number, true, false},
};
#define N_COLUMNS (sizeof(vm_columns) / sizeof(vm_columns[0]))

/* Columns the text takes on a terminal: its characters (UTF-8), not its bytes. */
static size_t text_width(const char *s)
{
        size_t w = 0;

        for (; *s; s++)
                w += ((unsigned char)*s & 0xC0) != 0x80;
        return w;
}

static void pad(FILE *out, size_t n)
{
        while (n--)
                fputc(' ', out);
}

static void print_row(FILE *out, char (*cells)[CELL_MAX], const size_t *width, const bool *shown)
{
        size_t last = 0;

        for (size_t c = 0; c < N_COLUMNS; c++)
                last = shown[c] ? c : last;
        for (size_t c = 0; c <= last; c++) {
                size_t w = text_width(cells[c]), room = width[c] > w ? width[c] - w : 0;
                if (!shown[c])
                        continue;
                if (vm_columns[c].right)
                        pad(out, room);
                fputs(cells[c], out);
                if (!vm_columns[c].right && c != last)
                        pad(out, room);
                fputs(c == last ? "\n" : "  ", out);
        }
}

/* A column shown only if any VM has it above 0. */
static bool any_above_zero(const json_t *vms, const char *key)
{
        size_t i;
        const json_t *vm;

        json_array_foreach(vms, i, vm)
        {
                const json_t *v = json_object_get(vm, key);
                if (json_is_integer(v) && json_integer_value(v) > 0)
                        return true;
        }
        return false;
}

/*
 * How a name longer than cap characters is shortened: its first `head`
 * characters, the mark, and, with a window (width > 0), `width` characters
 * from `from` and the mark again, then its last `tail` characters.
 */
struct cut {
        size_t head, from, width, tail;
};

/* name (ASCII, longer than the cut keeps) shortened by c into out[CELL_MAX]. */
static void cut_name(const char *name, struct cut c, const char *mark, char *out)
{
        size_t n = strlen(name);

        if (c.width)
                snprintf(out, CELL_MAX, "%.*s%s%.*s%s%s", (int)c.head, name, mark, (int)c.width,
                         name + c.from, mark, name + n - c.tail);
        else
                snprintf(out, CELL_MAX, "%.*s%s%s", (int)c.head, name, mark, name + n - c.tail);
}

/*
 * The usual cut at cap: the head and the tail around the mark, the tail a
 * third (it tells web-prod-01 from web-prod-02): "averyveryl…name" at 15.
 */
static struct cut usual_cut(size_t cap)
{
        size_t tail = (cap - 1) / 3;

        return (struct cut){.head = cap - 1 - tail, .tail = tail};
}

/*
 * The k-th cut to try at cap when names alike at the usual cut must be told
 * apart, for names that first differ at index `differ`: more of the end
 * (where names usually differ: web-frontend-production-01 and
 * web-frontend-staging-01), then more of the start, then a window at the
 * difference between a shorter head and tail ("db-p…eu-we…ica"). False when
 * there is none left.
 */
static bool other_cut(size_t cap, size_t differ, size_t k, struct cut *c)
{
        struct cut u = usual_cut(cap);
        size_t longer_tails = cap - 2 - u.tail, longer_heads = u.tail - 1;

        if (k < longer_tails) {
                *c = (struct cut){.head = u.head - 1 - k, .tail = u.tail + 1 + k};
                return true;
        }
        k -= longer_tails;
        if (k < longer_heads) {
                *c = (struct cut){.head = u.head + 1 + k, .tail = u.tail - 1 - k};
                return true;
        }
        if (k > longer_heads || cap < 7)
                return false;
        size_t side = (cap - 2) / 4;
        *c = (struct cut){.head = side, .from = differ, .width = cap - 2 - 2 * side, .tail = side};
        return true;
}

/* Whether c can cut name: it keeps fewer characters than the name has, each once. */
static bool cut_fits(const char *name, struct cut c)
{
        size_t n = strlen(name);

        if (c.width)
                return c.head <= c.from && c.from + c.width + c.tail < n;
        return c.head + c.tail < n;
}

/* The index of the first character where the names of rows[0..k) are not all alike. */
static size_t first_difference(char (*cells)[N_COLUMNS][CELL_MAX], const size_t *rows, size_t k)
{
        for (size_t i = 0;; i++)
                for (size_t j = 1; j < k; j++)
                        if (cells[rows[j]][0][i] != cells[rows[0]][0][i] || !cells[rows[0]][0][i])
                                return i;
}

/*
 * NAME's cells (rows 1..n) cut to cap characters around `mark`. Names that
 * the usual cut makes alike are cut another way, the same for all of them,
 * so that every row's text differs from every other's: the first of
 * other_cut()'s that does it (none may at a very narrow column with many
 * names alike: those keep the usual cut). A name that fits stays whole.
 */
static void shorten_names(char (*cells)[N_COLUMNS][CELL_MAX], size_t n, size_t cap,
                          const char *mark)
{
        char(*shown)[CELL_MAX] = calloc(n + 1, CELL_MAX), (*try)[CELL_MAX] = calloc(n, CELL_MAX);
        size_t *alike = calloc(n, sizeof(*alike)), *group = calloc(n + 1, sizeof(*group));

        if (!shown || !try || !alike || !group)
                goto out;
        for (size_t r = 1; r <= n; r++) {
                if (strlen(cells[r][0]) > cap)
                        cut_name(cells[r][0], usual_cut(cap), mark, shown[r]);
                else
                        snprintf(shown[r], CELL_MAX, "%s", cells[r][0]);
        }
        for (size_t r = 1; r <= n; r++) {
                size_t k = 0, differ;
                struct cut c;
                if (group[r] || !strstr(shown[r], mark))
                        continue;
                for (size_t q = r; q <= n; q++)
                        if (!group[q] && strcmp(shown[q], shown[r]) == 0)
                                alike[k++] = q, group[q] = r;
                if (k < 2)
                        continue;
                differ = first_difference(cells, alike, k);
                for (size_t t = 0; other_cut(cap, differ, t, &c); t++) {
                        bool ok = true;
                        for (size_t i = 0; ok && i < k; i++) {
                                ok = cut_fits(cells[alike[i]][0], c);
                                if (ok)
                                        cut_name(cells[alike[i]][0], c, mark, try[i]);
                        }
                        /* told apart from each other and from every other row */
                        for (size_t i = 0; ok && i < k; i++) {
                                for (size_t j = 0; ok && j < i; j++)
                                        ok = strcmp(try[i], try[j]) != 0;
                                for (size_t q = 1; ok && q <= n; q++)
                                        ok = group[q] == r || strcmp(try[i], shown[q]) != 0;
                        }
                        if (!ok)
                                continue;
                        for (size_t i = 0; i < k; i++)
                                snprintf(shown[alike[i]], CELL_MAX, "%s", try[i]);
                        break;
                }
        }
        for (size_t r = 1; r <= n; r++)
                snprintf(cells[r][0], CELL_MAX, "%s", shown[r]);
out:
        free(shown);
        free(try);
        free(alike);
        free(group);
}

void output_vm_table(FILE *out, const json_t *vms)
{
        output_vm_table_fit(out, vms, 0, NULL);
}

void output_vm_names(FILE *out, const json_t *vms)
{
        size_t i;
        const json_t *vm;

        json_array_foreach(vms, i, vm)
        {
                const char *name = json_string_value(json_object_get(vm, "name"));
                if (name)
                        fprintf(out, "%s\n", name);
        }
}

void output_vm_table_fit(FILE *out, const json_t *vms, size_t columns, const char *mark)
{
        size_t n = json_array_size(vms), width[N_COLUMNS], others = 0;
        bool shown[N_COLUMNS];
        char(*cells)[N_COLUMNS][CELL_MAX] = calloc(n + 1, sizeof(*cells));

        if (!cells)
                return;
        for (size_t c = 0; c < N_COLUMNS; c++) {
                snprintf(cells[0][c], CELL_MAX, "%s", vm_columns[c].header);
                width[c] = strlen(vm_columns[c].header);
                shown[c] = !vm_columns[c].if_any || any_above_zero(vms, vm_columns[c].key);
        }
        for (size_t r = 0; r < n; r++) {
                for (size_t c = 0; c < N_COLUMNS; c++) {
                        vm_columns[c].cell(json_array_get(vms, r), vm_columns[c].key,
                                           cells[r + 1][c], CELL_MAX);
                        size_t w = text_width(cells[r + 1][c]);
                        width[c] = w > width[c] ? w : width[c];
                }
        }
        for (size_t c = 1; c < N_COLUMNS; c++)
                others += shown[c] ? width[c] + 2 : 0;
        if (columns && mark && width[0] > OUTPUT_NAME_MIN && width[0] + others > columns) {
                size_t cap =
                    columns > others + OUTPUT_NAME_MIN ? columns - others : OUTPUT_NAME_MIN;
                shorten_names(cells, n, cap, mark);
                width[0] = cap;
        }
        for (size_t r = 0; r <= n; r++)
                print_row(out, cells[r], width, shown);
        free(cells);
}

/* ---- key: value listings ---- */

struct field {
        const char *label;
        const char *key;
        cell_fn cell;
        bool if_known; /* left out while null (not known), rather than printed as "-" */
};

static void print_fields(FILE *out, const json_t *obj, const struct field *fields, size_t n)
{
        char buf[512];

        for (size_t i = 0; i < n; i++) {
                const json_t *v = json_object_get(obj, fields[i].key);
                if (!v || (fields[i].if_known && json_is_null(v)))
                        continue;
                fields[i].cell(obj, fields[i].key, buf, sizeof(buf));
                fprintf(out, "%-16s %s\n", fields[i].label, buf);
        }
}

static const struct field vm_fields[] = {
    {"Name:", "name", cell_string, false},
    {"State:", "state", cell_state, false},
    {"Dynamic memory:", "dynamic", cell_bool, false},
    {"Assigned:", "assigned_bytes", cell_size, false},
    {"Demand:", "demand_bytes", cell_size, false},
    {"Pressure:", "pressure_percent", cell_percent, false},
    {"Status:", "status", cell_string, false},
    {"Target:", "target_bytes", cell_size, false},
    {"Lent:", "lent_bytes", cell_size, false},
    {"Reason:", "reason", cell_string, false},
    {"Minimum:", "minimum_bytes", cell_size, false},
    {"Startup:", "startup_bytes", cell_size, false},
    {"Maximum:", "maximum_bytes", cell_size, false},
    {"Buffer:", "buffer_percent", cell_percent, false},
    {"Weight:", "weight", cell_number, false},
    {"Block:", "block_bytes", cell_size, false},
    {"Lend:", "lend", cell_bool, false},
    {"Defined by:", "origin", cell_string, false},
    {"Autostart:", "autostart", cell_bool, false},
    {"Overridden:", "overrides", cell_names, false},
    {"Guest sees:", "guest_visible_bytes", cell_size, true},
    {"Host RSS:", "host_rss_bytes", cell_size, true},
    {"Problem:", "problem", cell_string, false},
};

/* What the backend describes (the "backend" member); what does not apply is left out. */
static const struct field backend_fields[] = {
    {"Backend:", "name", cell_string, false},
    {"Demand from:", "signal", cell_string, false},
    {"Guest agent:", "agent_state", cell_string, false},
    {"Agent protocol:", "agent_protocol_version", cell_number, false},
    {"Agent can:", "agent_capabilities", cell_string, false},
    {"Process:", "pid", cell_number, false},
    {"Accelerator:", "accelerator", cell_string, false},
    {"Version:", "version", cell_string, false},
    {"Machine:", "machine", cell_string, false},
    {"Resizing:", "resizing", cell_bool, false},
};

/* A string member, or "?" when the reply has none. */
static const char *member_str(const json_t *o, const char *key)
{
        const char *v = json_string_value(json_object_get(o, key));

        return v ? v : "?";
}

/*
 * The backend's choices, one a line: "Chosen: NAME=VALUE (WHY)" ("NAME VALUE" when
 * the value is words, e.g. "-run-with user= not used"), then what it offers.
 */
static void print_choices(FILE *out, const json_t *backend)
{
        const json_t *choices = json_object_get(backend, "choices");
        const json_t *offers = json_object_get(backend, "offers");
        const json_t *c;
        size_t i;

        json_array_foreach(choices, i, c)
        {
                const char *value = member_str(c, "value");
                const char *why = json_string_value(json_object_get(c, "why"));
                fprintf(out, "%-16s %s%s%s%s%s%s\n", i == 0 ? "Chosen:" : "", member_str(c, "name"),
                        strchr(value, ' ') ? " " : "=", value, why && *why ? " (" : "",
                        why ? why : "", why && *why ? ")" : "");
        }
        if (json_is_string(offers))
                fprintf(out, "%-16s %s\n", "Also offered:", json_string_value(offers));
}

void output_vm(FILE *out, const json_t *vm)
{
        const json_t *refusal = json_object_get(vm, "refusal");
        const json_t *backend = json_object_get(vm, "backend");

        print_fields(out, vm, vm_fields, sizeof(vm_fields) / sizeof(vm_fields[0]));
        if (json_array_size(json_object_get(vm, "reset_pending")) > 0) {
                char names[512];
                cell_names(vm, "reset_pending", names, sizeof(names));
                fprintf(out, "%-16s %s (the file's values once the VM is off)\n",
                        "Waits for off:", names);
        }
        if (json_is_string(refusal))
                fprintf(out, "%-16s %s\n", "Last refusal:", json_string_value(refusal));
        for (size_t i = 0;
             json_is_object(backend) && i < sizeof(backend_fields) / sizeof(backend_fields[0]);
             i++) {
                const struct field *f = &backend_fields[i];
                if (!json_is_null(json_object_get(backend, f->key)))
                        print_fields(out, backend, f, 1);
        }
        if (json_is_object(backend))
                print_choices(out, backend);
}

static void cell_ms(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *v = json_object_get(obj, key);

        if (json_is_number(v))
                snprintf(buf, len, "%.1f ms", json_number_value(v));
        else
                snprintf(buf, len, "-");
}

static void cell_duration(const json_t *obj, const char *key, char *buf, size_t len)
{
        const json_t *v = json_object_get(obj, key);

        if (json_is_integer(v) && json_integer_value(v) >= 0)
                duration_format((uint64_t)json_integer_value(v), buf, len);
        else
                snprintf(buf, len, "-");
}

static const struct field host_fields[] = {
    {"Host memory:", "host_total_bytes", cell_size, false},
    {"Reserve:", "reserve_bytes", cell_size, false},
    {"VM memory:", "memory_bytes", cell_size, false},
    {"Assigned:", "assigned_bytes", cell_size, false},
    {"Available:", "available_bytes", cell_size, false},
    {"Pressure:", "pressure_percent", cell_percent, false},
    {"VMs:", "vms", cell_number, false},
    {"Running:", "running", cell_number, false},
    {"Policy:", "policy", cell_string, false},
    {"Backend:", "backend", cell_string, false},
    {"Interval:", "interval_ms", cell_duration, false},
    {"Config:", "config", cell_string, false},
    {"Socket:", "socket", cell_string, false},
    {"State dir:", "state_dir", cell_string, false},
    {"Cycle late p99:", "cycle_lateness_p99_ms", cell_ms, false},
    {"Uptime:", "uptime_ms", cell_duration, false},
};

static json_int_t member_int(const json_t *o, const char *key)
{
        return json_integer_value(json_object_get(o, key));
}

/* Migrations: "1 arriving, 0 leaving; 3 arrived, 2 left, 1 failed, 1 refused". */
static void print_migrations(FILE *out, const json_t *m)
{
        if (!json_is_object(m))
                return;
        fprintf(out,
                "%-16s %lld arriving, %lld leaving; %lld arrived, %lld left, %lld failed, %lld "
                "refused\n",
                "Migrations:", member_int(m, "arriving"), member_int(m, "leaving"),
                member_int(m, "arrived"), member_int(m, "left"),
                member_int(m, "failed_in") + member_int(m, "failed_out"), member_int(m, "refused"));
}

/* The relief rule and the peers ([cluster]), when configured. */
static void print_cluster(FILE *out, const json_t *relief, const json_t *peers)
{
        char a[32], b[32];
        size_t i;
        const json_t *p;

        if (json_is_true(json_object_get(relief, "enabled"))) {
                json_int_t for_ms = member_int(relief, "short_for_ms");
                fprintf(out,
                        "%-16s on: %s; %lld moves (%lld done, %lld failed), %lld without room\n",
                        "Relief:",
                        json_is_true(json_object_get(relief, "short")) ? "short of memory now"
                                                                       : "not short",
                        member_int(relief, "moves"), member_int(relief, "done"),
                        member_int(relief, "failed"), member_int(relief, "no_room"));
                if (for_ms > 0)
                        fprintf(
                            out, "%-16s short of %s for %s\n", "",
                            size_format((uint64_t)member_int(relief, "short_bytes"), a, sizeof(a)),
                            duration_format((uint64_t)for_ms, b, sizeof(b)));
                if (json_is_string(json_object_get(relief, "moving")))
                        fprintf(out, "%-16s moving %s now\n", "", member_str(relief, "moving"));
                if (json_is_string(json_object_get(relief, "last")))
                        fprintf(out, "%-16s last: %s\n", "", member_str(relief, "last"));
        }
        json_array_foreach(peers, i, p)
        {
                const json_t *avail = json_object_get(p, "available_for_balancing_bytes");
                const json_t *err = json_object_get(p, "error");
                fprintf(out, "%-16s %s %s (%s): %s%s%s\n", i ? "" : "Peers:", member_str(p, "name"),
                        member_str(p, "state"), member_str(p, "libvirt_uri"),
                        json_is_integer(avail)
                            ? size_format((uint64_t)json_integer_value(avail), a, sizeof(a))
                            : "-",
                        json_is_integer(avail) ? " available for balancing" : "",
                        json_is_string(err) ? "; " : "");
                if (json_is_string(err))
                        fprintf(out, "%-16s   %s\n", "", json_string_value(err));
        }
}

/*
 * The warnings of the configuration in force, one a line under "Config: N
 * warnings", and how many more the log has.
 */
static void print_config_warnings(FILE *out, const json_t *host)
{
        const json_t *list = json_object_get(host, "config_warnings"), *w;
        json_int_t total = member_int(host, "config_warning_count");
        size_t i;

        if (total <= 0)
                return;
        fprintf(out, "%-16s %lld warning%s in the configuration in force:\n",
                "Config:", (long long)total, total == 1 ? "" : "s");
        json_array_foreach(list, i, w) fprintf(out, "%-16s   %s\n", "", json_string_value(w));
        if (total > (json_int_t)json_array_size(list))
                fprintf(out, "%-16s   and %lld more in the log\n", "",
                        (long long)(total - (json_int_t)json_array_size(list)));
}

void output_host(FILE *out, const json_t *host)
{
        const json_t *state_error = json_object_get(host, "state_error");
        const json_t *overcommit = json_object_get(host, "overcommit_error");
        const json_t *reload_error = json_object_get(host, "reload_error");
        const json_t *backend_error = json_object_get(host, "backend_error");

        print_fields(out, host, host_fields, sizeof(host_fields) / sizeof(host_fields[0]));
        if (strcmp(member_str(host, "backend"), "libvirt") == 0)
                print_migrations(out, json_object_get(host, "migrations"));
        print_cluster(out, json_object_get(host, "relief"), json_object_get(host, "peers"));
        /* what needs the operator, last (dynmem(1), status) */
        if (json_is_string(backend_error))
                fprintf(out, "%-16s UNREACHABLE: %s\n",
                        "Backend:", json_string_value(backend_error));
        if (json_is_string(overcommit))
                fprintf(out, "%-16s OVERCOMMITTED: %s\n", "Memory:", json_string_value(overcommit));
        if (json_is_string(state_error))
                fprintf(out, "%-16s NOT SAVED: %s\n", "State:", json_string_value(state_error));
        if (json_is_string(reload_error))
                fprintf(out,
                        "%-16s RELOAD FAILED: %s; the configuration in force is the one read "
                        "before\n",
                        "Config:", json_string_value(reload_error));
        print_config_warnings(out, host);
}

void output_problems(FILE *out, const json_t *vms)
{
        size_t i, n = 0;
        const json_t *vm;

        json_array_foreach(vms, i, vm)
        {
                const json_t *name = json_object_get(vm, "name");
                if (!json_is_string(json_object_get(vm, "problem")) || !json_is_string(name))
                        continue;
                if (n++)
                        fprintf(out, ", %s", json_string_value(name));
                else
                        fprintf(out, "%-16s %s", "Problems:", json_string_value(name));
        }
        if (n)
                fputs(" (see dynmem show NAME)\n", out);
}
