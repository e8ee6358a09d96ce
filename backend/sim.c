/*
 * sim backend: the simulator's model of VMs that follow demand traces,
 * behind the backend interface. See sim.h and docs/simulator.md.
 */
#include "sim.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trace.h"
#include "units.h"

/*
 * The guest starts to stall a little before it is short (reclaim works hard
 * when free memory is nearly gone) and is fully stalled when it is a
 * quarter short. Stall = clamp((demand - STALL_ONSET x held) / (STALL_FULL x
 * demand), 0, 1).
 */
#define STALL_ONSET 0.98
#define STALL_FULL  0.25

/* One trace file, loaded once for every VM that replays it. */
struct shared_trace {
        char *path;
        struct stat st; /* the file when loaded: a changed file is loaded anew */
        struct trace trace;
        unsigned refs;
};

struct sim_vm {
        struct vm *vm;
        struct shared_trace *trace;
        size_t cursor;
        uint64_t start_ms; /* [vm] start: when the scenario asks for it */
        uint64_t swap_bytes;
        double report_scale;
        bool psi;
        bool outlive; /* a restarted dynmemd finds it still running */

        bool running;
        uint64_t started_ms;
        uint64_t held;
        uint64_t target;

        bool reported;
        uint64_t last_report_ms;
        uint64_t reported_demand;
        double reported_stall;
        double stall_accum_ms; /* stall x time since the last report */
        uint64_t stall_window_ms;

        bool is_short;
        uint64_t short_since_ms;
        bool in_oom;
        struct sim_vm_stats stats;
};

struct sim_backend {
        struct config_sim params;
        uint64_t memory;
        char *base_dir;
        struct sim_vm **vms;
        size_t n, cap;
        struct shared_trace **traces;
        size_t n_traces;
        uint64_t last_advance_ms;
        bool advanced_once;
        bool reports_held; /* a cycle between two reports: observe() takes no new one */
};

static const char *const sim_vm_keys[] = {"trace", "start",   "swap", "report_scale",
                                          "psi",   "outlive", NULL};

static struct sim_backend *priv(struct backend *b)
{
        return b->priv;
}

static char *resolve(const char *base_dir, const char *path)
{
        char *out = NULL;

        if (path[0] == '/' || !base_dir)
                return strdup(path);
        if (asprintf(&out, "%s/%s", base_dir, path) < 0)
                return NULL;
        return out;
}

/* Parse the VM's backend keys into sv (trace not loaded). Reports to diag. */
static int parse_keys(const struct config *cfg, const struct config_vm *cvm, struct sim_vm *sv,
                      struct config_diag *diag)
{
        const struct config_kv *kv;
        int errors = 0;

        sv->report_scale = 1.0;
        sv->psi = true;
        if ((kv = config_vm_key(cvm, "start")) && duration_parse(kv->value, &sv->start_ms) < 0) {
                config_diag_add(diag, cfg->path, kv->line, "start: \"%s\" is not a duration%s",
                                kv->value, config_comment_hint(kv->value));
                errors++;
        } else if (kv && sv->start_ms > TRACE_MS_MAX) {
                config_diag_add(diag, cfg->path, kv->line, "start: \"%s\"%s is more than 366 days",
                                kv->value, duration_read_as(kv->value));
                errors++;
        }
        char why[160];
        int r = (kv = config_vm_key(cvm, "swap")) ? size_parse(kv->value, &sv->swap_bytes) : 0;
        if (r == -ERANGE) {
                config_diag_add(diag, cfg->path, kv->line, "swap: \"%s\" is too large", kv->value);
                errors++;
        } else if (r < 0 && size_blank_inside(kv->value, why, sizeof(why))) {
                config_diag_add(diag, cfg->path, kv->line, "swap: %s", why);
                errors++;
        } else if (r < 0) {
                config_diag_add(diag, cfg->path, kv->line, "swap: \"%s\" is not a size%s",
                                kv->value, config_comment_hint(kv->value));
                errors++;
        } else if (kv && size_unit_missing(kv->value, sv->swap_bytes, why, sizeof(why))) {
                config_diag_add(diag, cfg->path, kv->line, "swap: %s", why);
                errors++;
        }
        if ((kv = config_vm_key(cvm, "report_scale"))) {
                char *end;
                double d = strtod(kv->value, &end);
                if (*end || end == kv->value || !(d >= 0.1 && d <= 10.0)) {
                        config_diag_add(diag, cfg->path, kv->line,
                                        "report_scale: \"%s\" is not a number in 0.1..10%s",
                                        kv->value, config_comment_hint(kv->value));
                        errors++;
                } else {
                        sv->report_scale = d;
                }
        }
        if ((kv = config_vm_key(cvm, "psi"))) {
                if (switch_parse(kv->value, &sv->psi) < 0) {
                        config_diag_add(diag, cfg->path, kv->line,
                                        "psi: \"%s\" is not " SWITCH_WORDS "%s", kv->value,
                                        config_comment_hint(kv->value));
                        errors++;
                }
        }
        if ((kv = config_vm_key(cvm, "outlive")) && switch_parse(kv->value, &sv->outlive) < 0) {
                config_diag_add(diag, cfg->path, kv->line,
                                "outlive: \"%s\" is not " SWITCH_WORDS "%s", kv->value,
                                config_comment_hint(kv->value));
                errors++;
        }
        if (!config_vm_key(cvm, "trace")) {
                config_diag_add(diag, cfg->path, cvm->line,
                                "vm \"%s\": the sim backend needs a trace = FILE.csv", cvm->name);
                errors++;
        }
        return errors ? -EINVAL : 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * The trace's own problems ("/srv/t.csv: cannot open: ...", "/srv/t.csv:12:
 * ...") each with the configuration line of its trace = key before it.
 */
static void trace_diag(const struct config *cfg, const struct config_kv *kv,
                       const struct config_diag *from, struct config_diag *diag)
{
        for (size_t i = 0; i < from->count; i++)
                config_diag_add(diag, cfg->path, kv->line, "trace: %s", from->messages[i]);
        if (diag)
                diag->more += from->more;
}

/* The VM's trace, shared with other VMs replaying the same unchanged file. */
static int trace_get(struct sim_backend *sb, const struct config *cfg, const struct config_vm *cvm,
                     struct shared_trace **ret, struct config_diag *diag)
{
        const struct config_kv *kv = config_vm_key(cvm, "trace");
        char *path = kv ? resolve(sb->base_dir, kv->value) : NULL;
        struct stat st;
        int r;

        if (!path)
                return -EINVAL;
        if (stat(path, &st) == 0) {
                for (size_t i = 0; i < sb->n_traces; i++) {
                        struct shared_trace *t = sb->traces[i];
                        if (strcmp(t->path, path) == 0 && same_file(&t->st, &st)) {
                                t->refs++;
                                free(path);
                                *ret = t;
                                return 0;
                        }
                }
        }
        struct shared_trace *t = calloc(1, sizeof(*t));
        struct shared_trace **grown = reallocarray(sb->traces, sb->n_traces + 1, sizeof(*grown));
        if (!t || !grown) {
                free(t), free(path);
                config_diag_add(diag, cvm->name, 0, "out of memory");
                return -ENOMEM;
        }
        sb->traces = grown;
        struct config_diag own = {0};
        r = trace_load(path, &t->trace, &own);
        trace_diag(cfg, kv, &own, diag);
        config_diag_free(&own);
        if (r < 0) {
                free(t), free(path);
                return r;
        }
        t->path = path;
        t->st = st;
        t->refs = 1;
        sb->traces[sb->n_traces++] = t;
        *ret = t;
        return 0;
}

static void trace_put(struct sim_backend *sb, struct shared_trace *t)
{
        if (!t || --t->refs > 0)
                return;
        for (size_t i = 0; i < sb->n_traces; i++) {
                if (sb->traces[i] == t) {
                        sb->traces[i] = sb->traces[--sb->n_traces];
                        break;
                }
        }
        trace_free(&t->trace);
        free(t->path);
        free(t);
}

static int sim_check_vm(struct backend *b, const struct config *cfg, const struct config_vm *cvm,
                        struct config_diag *diag)
{
        struct sim_vm sv = {0};
        struct shared_trace *t;
        int r = parse_keys(cfg, cvm, &sv, diag);

        if (r < 0)
                return r;
        r = trace_get(priv(b), cfg, cvm, &t, diag);
        if (r == 0)
                trace_put(priv(b), t);
        return r;
}

static int sim_configure_vm(struct backend *b, struct vm *vm, const struct config *cfg,
                            const struct config_vm *cvm, char *err, size_t errlen)
{
        struct sim_backend *sb = priv(b);
        struct config_diag diag = {0};
        struct sim_vm *sv = vm->backend_data;
        bool fresh = sv == NULL;
        struct sim_vm parsed = {0};
        int r;

        r = parse_keys(cfg, cvm, &parsed, &diag);
        if (r == 0)
                r = trace_get(sb, cfg, cvm, &parsed.trace, &diag);
        if (r < 0) {
                snprintf(err, errlen, "%s", diag.count ? diag.messages[0] : "bad sim keys");
                config_diag_free(&diag);
                return r;
        }
        config_diag_free(&diag);
        if (fresh) {
                size_t cap = sb->n == sb->cap ? (sb->cap ? sb->cap * 2 : 16) : sb->cap;
                struct sim_vm **grown =
                    cap != sb->cap ? reallocarray(sb->vms, cap, sizeof(*grown)) : sb->vms;
                sv = calloc(1, sizeof(*sv));
                if (!sv || !grown) {
                        free(sv);
                        if (grown)
                                sb->vms = grown, sb->cap = cap;
                        trace_put(sb, parsed.trace);
                        snprintf(err, errlen, "out of memory");
                        return -ENOMEM;
                }
                sb->vms = grown;
                sb->cap = cap;
                sv->vm = vm;
                sb->vms[sb->n++] = sv;
                vm->backend_data = sv;
        } else {
                trace_put(sb, sv->trace);
        }
        sv->trace = parsed.trace;
        sv->cursor = 0;
        sv->start_ms = parsed.start_ms;
        sv->swap_bytes = parsed.swap_bytes;
        sv->report_scale = parsed.report_scale;
        sv->psi = parsed.psi;
        sv->outlive = parsed.outlive;
        return 0;
}

static uint64_t demand_now(struct sim_vm *sv, uint64_t now_ms)
{
        uint64_t rel = now_ms > sv->started_ms ? now_ms - sv->started_ms : 0;

        return trace_demand_at(&sv->trace->trace, rel, &sv->cursor);
}

static int sim_start(struct backend *b, struct vm *vm, uint64_t now_ms, char *err, size_t errlen)
{
        struct sim_vm *sv = vm->backend_data;

        if (!sv) {
                snprintf(err, errlen, "VM has no simulated model");
                return -EINVAL;
        }
        sv->running = true;
        sv->started_ms = now_ms;
        sv->cursor = 0;
        sv->held = sv->target = vm->settings.startup_bytes;
        sv->reported = false;
        sv->is_short = sv->in_oom = false;
        sv->stall_accum_ms = 0.0;
        sv->stall_window_ms = 0;
        sv->stats.ever_started = true;
        return 0;
}

static int sim_stop(struct backend *b, struct vm *vm, bool force, uint64_t now_ms)
{
        struct sim_vm *sv = vm->backend_data;

        if (sv)
                sv->running = false;
        return 0;
}

static int sim_set_target(struct backend *b, struct vm *vm, uint64_t target, uint64_t now_ms)
{
        struct sim_vm *sv = vm->backend_data;

        if (!sv || !sv->running)
                return -ESRCH;
        sv->target = target;
        return 0;
}

static double stall_model(uint64_t demand, uint64_t held)
{
        if (demand == 0)
                return 0.0;
        double s = ((double)demand - STALL_ONSET * (double)held) / (STALL_FULL * (double)demand);
        return s < 0.0 ? 0.0 : s > 1.0 ? 1.0 : s;
}

static int sim_observe(struct backend *b, struct vm *vm, uint64_t now_ms,
                       struct vm_observation *ret)
{
        struct sim_backend *sb = priv(b);
        struct sim_vm *sv = vm->backend_data;

        if (!sv || !sv->running) {
                *ret = (struct vm_observation){.alive = false};
                return 0;
        }
        if (!sv->reported ||
            (!sb->reports_held && now_ms >= sv->last_report_ms + sb->params.report_interval_ms)) {
                uint64_t d = demand_now(sv, now_ms);
                sv->reported_demand = (uint64_t)((double)d * sv->report_scale);
                sv->reported_stall = sv->stall_window_ms
                                         ? sv->stall_accum_ms / (double)sv->stall_window_ms
                                         : stall_model(d, sv->held);
                sv->stall_accum_ms = 0.0;
                sv->stall_window_ms = 0;
                sv->last_report_ms = now_ms;
                sv->reported = true;
        }
        *ret = (struct vm_observation){
            .alive = true,
            .assigned_bytes = sv->held,
            .demand_known = true,
            .demand_bytes = sv->reported_demand,
            .demand_time_ms = sv->last_report_ms,
            .stall_known = sv->psi,
            .stall_fraction = sv->psi ? sv->reported_stall : 0.0,
            .swap_known = true,
            .swap_bytes = sv->swap_bytes,
            .guest_visible_known = true,
            .guest_visible_bytes = sv->held,
            .guest_available_known = true,
            .guest_available_bytes =
                sv->held > sv->stats.demand_bytes ? sv->held - sv->stats.demand_bytes : 0,
        };
        return 0;
}

static void record_reaction(struct sim_vm_stats *st, uint64_t ms)
{
        if (st->n_reactions == st->cap_reactions) {
                size_t cap = st->cap_reactions ? st->cap_reactions * 2 : 16;
                uint64_t *grown = reallocarray(st->reactions_ms, cap, sizeof(*grown));
                if (!grown)
                        return;
                st->reactions_ms = grown;
                st->cap_reactions = cap;
        }
        st->reactions_ms[st->n_reactions++] = ms;
}

void sim_backend_judge(struct backend *b, uint64_t now_ms, uint64_t dt_ms)
{
        struct sim_backend *sb = priv(b);

        for (size_t i = 0; i < sb->n; i++) {
                struct sim_vm *sv = sb->vms[i];
                if (!sv->running)
                        continue;
                uint64_t d = demand_now(sv, now_ms);
                bool is_short = d > sv->held;

                sv->stats.demand_bytes = d;
                sv->stats.vm_ms += dt_ms;
                sv->stall_accum_ms += stall_model(d, sv->held) * (double)dt_ms;
                sv->stall_window_ms += dt_ms;
                if (is_short) {
                        sv->stats.short_ms += dt_ms;
                        sv->stats.short_byte_s += (double)(d - sv->held) * (double)dt_ms / 1000.0;
                        if (!sv->is_short)
                                sv->short_since_ms = now_ms;
                } else if (sv->is_short) {
                        record_reaction(&sv->stats, now_ms - sv->short_since_ms);
                }
                sv->is_short = is_short;
                bool oom = d > add_sat(sv->held, sv->swap_bytes); /* swap may be any size */
                if (oom && !sv->in_oom)
                        sv->stats.oom_kills++;
                sv->in_oom = oom;
        }
}

/*
 * Bytes moved at rate bytes per second in dt_ms, saturating: [sim] grow_rate
 * and shrink_rate may be any size, and a double beyond 2^64 does not convert.
 */
static uint64_t moved_bytes(uint64_t rate, uint64_t dt_ms)
{
        double v = (double)rate * (double)dt_ms / 1000.0;

        return v >= 0x1p64 ? UINT64_MAX : (uint64_t)v;
}

void sim_backend_move(struct backend *b, uint64_t dt_ms)
{
        struct sim_backend *sb = priv(b);
        uint64_t shrink = moved_bytes(sb->params.shrink_rate, dt_ms);
        uint64_t grow = moved_bytes(sb->params.grow_rate, dt_ms);
        uint64_t held = 0;

        for (size_t i = 0; i < sb->n; i++) {
                struct sim_vm *sv = sb->vms[i];
                if (!sv->running)
                        continue;
                if (sv->target < sv->held) {
                        uint64_t by = sv->held - sv->target;
                        sv->held -= by < shrink ? by : shrink;
                }
                held += sv->held;
        }
        uint64_t free_bytes = held < sb->memory ? sb->memory - held : 0;
        for (size_t i = 0; i < sb->n; i++) {
                struct sim_vm *sv = sb->vms[i];
                if (!sv->running || sv->target <= sv->held)
                        continue;
                uint64_t by = sv->target - sv->held;
                if (by > grow)
                        by = grow;
                if (by > free_bytes)
                        by = free_bytes;
                sv->held += by;
                free_bytes -= by;
        }
}

uint64_t sim_backend_shrinks_land_ms(struct backend *b)
{
        struct sim_backend *sb = priv(b);
        uint64_t largest = 0;

        for (size_t i = 0; i < sb->n; i++) {
                const struct sim_vm *sv = sb->vms[i];
                if (sv->running && sv->target < sv->held && sv->held - sv->target > largest)
                        largest = sv->held - sv->target;
        }
        if (largest == 0 || sb->params.shrink_rate == 0)
                return 0;
        /* Rounded up: the memory is free once the last byte of the largest shrink is. */
        return (uint64_t)ceil((double)largest * 1000.0 / (double)sb->params.shrink_rate);
}

void sim_backend_hold_reports(struct backend *b, bool hold)
{
        priv(b)->reports_held = hold;
}

void sim_backend_advance(struct backend *b, uint64_t now_ms)
{
        struct sim_backend *sb = priv(b);

        if (!sb->advanced_once) {
                sb->advanced_once = true;
                sb->last_advance_ms = now_ms;
                sim_backend_judge(b, now_ms, 0);
                return;
        }
        while (sb->last_advance_ms < now_ms) {
                uint64_t dt = now_ms - sb->last_advance_ms;
                if (dt > sb->params.step_ms)
                        dt = sb->params.step_ms;
                sim_backend_move(b, dt);
                sb->last_advance_ms += dt;
                sim_backend_judge(b, sb->last_advance_ms, dt);
        }
}

void sim_backend_set_memory(struct backend *b, uint64_t bytes)
{
        priv(b)->memory = bytes;
}

uint64_t sim_backend_held_bytes(struct backend *b)
{
        struct sim_backend *sb = priv(b);
        uint64_t held = 0;

        for (size_t i = 0; i < sb->n; i++)
                if (sb->vms[i]->running)
                        held += sb->vms[i]->held;
        return held;
}

uint64_t sim_backend_vm_start_ms(const struct vm *vm)
{
        const struct sim_vm *sv = vm->backend_data;
        return sv ? sv->start_ms : 0;
}

const struct sim_vm_stats *sim_backend_vm_stats(const struct vm *vm)
{
        const struct sim_vm *sv = vm->backend_data;
        return sv ? &sv->stats : NULL;
}

uint64_t sim_backend_vm_trace_end_ms(const struct vm *vm)
{
        const struct sim_vm *sv = vm->backend_data;
        return sv ? trace_end_ms(&sv->trace->trace) : 0;
}

static uint64_t sim_max_honourable(struct backend *b, const struct vm *vm)
{
        return SETTINGS_SIZE_MAX;
}

/* A simulated VM's demand is its trace; it moves toward its target at the model's rates. */
static void sim_describe(struct backend *b, const struct vm *vm, struct backend_vm_description *ret)
{
        const struct sim_vm *sv = vm->backend_data;

        ret->signal = sv && sv->running ? "trace" : "none";
        if (!sv || !sv->running)
                return;
        ret->resizing = sv->held != sv->target;
}

/*
 * Simulated VMs do not outlive the process, unless `outlive = yes` says to
 * take one as still running: it holds what the file said it held, and its
 * trace starts again from its beginning.
 */
static int sim_reattach(struct backend *b, struct vm *vm, uint64_t now_ms)
{
        struct sim_vm *sv = vm->backend_data;
        char err[64];

        if (!sv || !sv->outlive || sim_start(b, vm, now_ms, err, sizeof(err)) < 0)
                return -ENOENT;
        sv->held = sv->target = vm->obs.assigned_bytes;
        return 0;
}

static void sim_forget_vm(struct backend *b, struct vm *vm)
{
        struct sim_backend *sb = priv(b);
        struct sim_vm *sv = vm->backend_data;

        if (!sv)
                return;
        for (size_t i = 0; i < sb->n; i++) {
                if (sb->vms[i] == sv) {
                        sb->vms[i] = sb->vms[--sb->n];
                        break;
                }
        }
        trace_put(sb, sv->trace);
        free(sv->stats.reactions_ms);
        free(sv);
        vm->backend_data = NULL;
}

static void sim_destroy(struct backend *b)
{
        struct sim_backend *sb = priv(b);

        while (sb->n > 0)
                sim_forget_vm(b, sb->vms[0]->vm);
        free(sb->vms);
        free(sb->traces);
        free(sb->base_dir);
        free(sb);
        free(b);
}

const struct backend_ops sim_backend_ops = {
    .name = "sim",
    .vm_keys = sim_vm_keys,
    .check_vm = sim_check_vm,
    .configure_vm = sim_configure_vm,
    .start = sim_start,
    .stop = sim_stop,
    .set_target = sim_set_target,
    .observe = sim_observe,
    .max_honourable = sim_max_honourable,
    .describe = sim_describe,
    .reattach = sim_reattach,
    .forget_vm = sim_forget_vm,
    .destroy = sim_destroy,
};

char *sim_backend_trace_path(const struct config *cfg, const char *trace)
{
        char *copy = cfg->path ? strdup(cfg->path) : NULL;
        char *out = NULL;

        if (cfg->path && !copy)
                return NULL;
        out = resolve(copy ? dirname(copy) : NULL, trace);
        free(copy);
        return out;
}

int sim_backend_new(const struct config *cfg, struct backend **ret, char *err, size_t errlen)
{
        struct backend *b = calloc(1, sizeof(*b));
        struct sim_backend *sb = calloc(1, sizeof(*sb));
        char *copy = cfg->path ? strdup(cfg->path) : NULL;

        if (!b || !sb || (cfg->path && !copy)) {
                free(b), free(sb), free(copy);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        sb->params = cfg->sim;
        sb->memory = cfg->host.memory_bytes;
        if (copy) {
                sb->base_dir = strdup(dirname(copy));
                free(copy);
        }
        b->ops = &sim_backend_ops;
        b->priv = sb;
        *ret = b;
        return 0;
}
