/*
 * simrun: replays a scenario through the shared balancer loop with a virtual
 * clock and collects the figures dynmem-sim reports. The order inside one
 * step is fixed by the model: judge (who is short at the start of the step),
 * then reports and the decision (balancer_tick), then movement; when a grow
 * or a start waits for memory that the decision's shrinks free, one more
 * decision once they have landed (follow_up()).
 */
#include "simrun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy_exec.h"
#include "sim.h"
#include "trace.h"
#include "units.h"

#define SIMRUN_MESSAGE_MAX 320 /* a policy failure on stderr, bytes */

static const char *const sim_only_keys_hint = "trace, start, swap, report_scale, psi";

/*
 * A VM asked to start at or after the end of the run would count as never started, as one
 * refused for want of memory does (and fail every --slo): refuse it.
 */
static int check_start(const struct config *cfg, const struct config_vm *cvm,
                       struct config_diag *diag)
{
        const struct config_kv *kv = config_vm_key(cvm, "start");
        uint64_t start_ms;
        char a[32];

        if (!kv || !cfg->sim.duration_ms || duration_parse(kv->value, &start_ms) < 0 ||
            start_ms < cfg->sim.duration_ms)
                return 0;
        config_diag_add(diag, cfg->path, kv->line,
                        "start: \"%s\" is not before the end of the run ([sim] duration %s)",
                        kv->value, duration_format(cfg->sim.duration_ms, a, sizeof(a)));
        return -EINVAL;
}

/*
 * A VM whose startup is more than the host's memory is never admitted: it would show only
 * as never started. A warning at its startup line, not an error (such a what-if is
 * legitimate); swept is the largest host of a sweep (0: [host] memory is run).
 */
static void warn_startup_beyond_memory(struct config *cfg, uint64_t swept)
{
        uint64_t memory = swept ? swept : cfg->host.memory_bytes;
        char b[32], limit[64];

        size_format_exact(memory, b, sizeof(b));
        snprintf(limit, sizeof(limit),
                 swept ? "the largest host of the sweep (%s)" : "[host] memory %s", b);
        config_warn_startup_beyond(
            cfg, memory, limit,
            swept ? "it starts at no size (each point counts it as never started)"
                  : "it can never start (the results count it as never started)",
            swept ? "sweep up to" : "raise [host] memory to");
}

/*
 * Keys of dynmemd's alone ([host] socket, http...): a scenario may be a real
 * dynmem.conf, so a warning rather than an error.
 */
static void warn_daemon_keys(struct config *cfg)
{
        for (size_t i = 0; i < cfg->n_daemon_keys; i++)
                config_diag_add(&cfg->warnings, cfg->path, cfg->daemon_keys[i].line,
                                "warning: %s: used by dynmemd only; dynmem-sim ignores it",
                                cfg->daemon_keys[i].key);
}

/* The narrowest peak of the trace at path (trace_narrowest_peak_ms()); 0 when it cannot be read
 * (check_vm said why). */
static uint64_t narrowest_peak_ms(const char *path, uint64_t *from_ms, uint64_t *to_ms)
{
        struct config_diag ignored = {0};
        struct trace t = {0};
        uint64_t least =
            trace_load(path, &t, &ignored) == 0 ? trace_narrowest_peak_ms(&t, from_ms, to_ms) : 0;

        trace_free(&t);
        config_diag_free(&ignored);
        return least;
}

/*
 * The run reads a trace's demand once a step: a peak narrower than a step can
 * fall between two steps and is never seen, neither as time short nor as an
 * OOM kill. A warning once per trace file, at [sim] step's line (at the VM's
 * trace line when step is left at its default), with the step, the width of
 * the narrowest peak and its rows.
 */
static void warn_step_beyond_traces(struct config *cfg)
{
        uint64_t step = cfg->sim.step_ms;
        unsigned step_line = config_key_line(cfg, "sim", "step");
        char **seen = calloc(cfg->n_vms ? cfg->n_vms : 1, sizeof(*seen));
        size_t n_seen = 0;
        char a[32], b[32];

        for (size_t i = 0; seen && i < cfg->n_vms; i++) {
                const struct config_vm *vm = &cfg->vms[i];
                const struct config_kv *kv = config_vm_key(vm, "trace");
                char *path = kv ? sim_backend_trace_path(cfg, kv->value) : NULL;
                uint64_t from = 0, to = 0, width;
                bool again = false;

                for (size_t j = 0; path && j < n_seen && !again; j++)
                        again = strcmp(seen[j], path) == 0;
                if (!path || again) {
                        free(path);
                        continue;
                }
                seen[n_seen++] = path;
                width = narrowest_peak_ms(path, &from, &to);
                if (width == 0 || width > step)
                        continue;
                duration_format(step, a, sizeof(a));
                duration_format(width, b, sizeof(b));
                config_diag_add(&cfg->warnings, cfg->path, step_line ? step_line : kv->line,
                                "warning: [sim] step %s is not shorter than the %s of the "
                                "narrowest peak of the trace %s (vm \"%s\", between its rows at "
                                "%g and %g seconds): its demand is read once a step, so such a "
                                "peak can fall between two steps unseen (no time short, no OOM "
                                "kill); a step under %s sees every peak",
                                a, b, kv->value, vm->name, (double)from / 1000.0,
                                (double)to / 1000.0, b);
        }
        for (size_t j = 0; j < n_seen; j++)
                free(seen[j]);
        free(seen);
}

int simrun_load_scenario(const char *path, uint64_t swept, struct config *ret)
{
        struct config_diag diag = {0};
        char more[64];
        struct backend *b = NULL;
        char err[256] = "";
        int r;

        r = config_load(path, ret, &diag);
        if (r == 0 && !ret->host.memory_given) {
                config_diag_add(&diag, path, 0, "[host] memory is required in a scenario");
                r = -EINVAL;
        }
        if (r == 0 && ret->n_vms == 0) {
                /* Nothing to replay: the figures would all be 0 and look like a result. */
                config_diag_add(&diag, path, 0, "no [vm \"NAME\"] section: a scenario needs a VM");
                r = -EINVAL;
        }
        if (r == 0)
                r = config_check_backend_keys(ret, "sim", sim_backend_ops.vm_keys, &diag);
        if (r == 0 && sim_backend_new(ret, &b, err, sizeof(err)) < 0) {
                config_diag_add(&diag, path, 0, "%s", err);
                r = -ENOMEM;
        }
        for (size_t i = 0; r == 0 && b && i < ret->n_vms; i++)
                if (sim_backend_ops.check_vm(b, ret, &ret->vms[i], &diag) < 0)
                        r = -EINVAL;
        for (size_t i = 0; r == 0 && i < ret->n_vms; i++)
                if (check_start(ret, &ret->vms[i], &diag) < 0)
                        r = -EINVAL;
        if (r == 0)
                warn_daemon_keys(ret);
        if (r == 0)
                config_warn_seed(ret, "dynmem-sim"); /* the model is not random */
        if (r == 0)
                warn_startup_beyond_memory(ret, swept);
        if (r == 0)
                warn_step_beyond_traces(ret);
        for (size_t i = 0; i < diag.count; i++)
                fprintf(stderr, "%s\n", diag.messages[i]);
        if (config_diag_more(&diag, "problem", more, sizeof(more)))
                fprintf(stderr, "%s\n", more);
        if (r < 0 && diag.count == 0)
                fprintf(stderr, "%s: invalid scenario (sim keys: %s)\n", path, sim_only_keys_hint);
        /* After the errors, less those an error at their line already explains. */
        for (size_t i = 0; i < ret->warnings.count; i++)
                if (!config_diag_explains(&diag, path, ret->warnings.messages[i]))
                        fprintf(stderr, "%s\n", ret->warnings.messages[i]);
        if (config_diag_more(&ret->warnings, "warning", more, sizeof(more)))
                fprintf(stderr, "%s\n", more);
        if (b)
                b->ops->destroy(b);
        config_diag_free(&diag);
        if (r < 0)
                config_free(ret);
        return r < 0 ? -EINVAL : 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static double percentile_s(uint64_t *v, size_t n, double p)
{
        if (n == 0)
                return 0.0;
        qsort(v, n, sizeof(*v), cmp_u64);
        size_t i = (size_t)(p * (double)(n - 1) + 0.5);
        return (double)v[i] / 1000.0;
}

static uint64_t scenario_duration(const struct config *cfg, struct vm *vms, size_t n)
{
        uint64_t end = 0;

        if (cfg->sim.duration_ms)
                return cfg->sim.duration_ms;
        for (size_t i = 0; i < n; i++) {
                uint64_t e =
                    sim_backend_vm_start_ms(&vms[i]) + sim_backend_vm_trace_end_ms(&vms[i]);
                if (e > end)
                        end = e;
        }
        return end + cfg->sim.step_ms;
}

static void series_add(struct simrun_series *s, uint64_t t, uint64_t demand, uint64_t assigned)
{
        if (s->n < SIMRUN_SERIES_POINTS) {
                s->t_ms[s->n] = t;
                s->demand[s->n] = demand;
                s->assigned[s->n] = assigned;
                s->n++;
        }
}

struct run_state {
        const struct config *cfg;
        const struct simrun_options *opt;
        struct backend *backend;
        struct balancer bal;
        struct vm *vms;
        struct vm **vm_ptrs;
        size_t n;
        double held_sum; /* sum over steps of held bytes */
        uint64_t steps;
        uint64_t *peak, *held_total;
};

static void sample(struct run_state *rs, struct simrun_result *res, uint64_t t, bool take_series,
                   bool take_timeline)
{
        uint64_t sum_demand = 0, sum_held = 0;

        for (size_t i = 0; i < rs->n; i++) {
                struct vm *vm = &rs->vms[i];
                const struct sim_vm_stats *st = sim_backend_vm_stats(vm);
                uint64_t held = vm_holds_memory(vm) ? vm->obs.assigned_bytes : 0;
                uint64_t demand = vm_holds_memory(vm) ? st->demand_bytes : 0;

                sum_demand += demand;
                sum_held += held;
                if (take_series && res->per_vm[i].series)
                        series_add(res->per_vm[i].series, t, demand, held);
                if (take_timeline)
                        fprintf(rs->opt->timeline, "%.3f,%s,%s,%llu,%llu,%llu,%s\n",
                                (double)t / 1000.0, vm->name, vm_state_name(vm->state),
                                (unsigned long long)demand, (unsigned long long)held,
                                (unsigned long long)vm->target_bytes,
                                policy_reason_name(vm->reason));
        }
        if (take_series && res->host_series)
                series_add(res->host_series, t, sum_demand, sum_held);
}

/* Count resize operations by direction and reason; report policy failures. */
static void on_event(const struct balancer_event *ev, void *userdata)
{
        struct simrun_result *res = userdata;

        if (ev->kind == BALANCER_EVENT_POLICY) {
                /* The first ten, then every hundredth: a broken policy must not flood. */
                /* It quotes the program's reply: printable only, and not too long. */
                char text[SIMRUN_MESSAGE_MAX];
                log_clean(text, sizeof(text), ev->message ? ev->message : "policy failure");
                if (res->policy_messages < 10 || res->policy_messages % 100 == 0)
                        fprintf(stderr, "dynmem-sim: at %.0f s: %s\n", (double)ev->time_ms / 1000.0,
                                text);
                res->policy_messages++;
                return;
        }
        if ((size_t)ev->reason > REASON_LENT)
                return;
        if (ev->kind == BALANCER_EVENT_ADD)
                res->grow_ops_by_reason[ev->reason]++;
        else if (ev->kind == BALANCER_EVENT_REMOVE)
                res->shrink_ops_by_reason[ev->reason]++;
}

static int setup(struct run_state *rs, struct simrun_result *res, char *err, size_t errlen)
{
        const struct config *cfg = rs->cfg;
        const char *policy = rs->opt->policy ? rs->opt->policy : cfg->host.policy;
        int r;

        r = sim_backend_new(cfg, &rs->backend, err, errlen);
        if (r < 0)
                return r;
        rs->n = cfg->n_vms;
        res->vms = rs->n;
        rs->vms = calloc(rs->n ? rs->n : 1, sizeof(*rs->vms));
        rs->vm_ptrs = calloc(rs->n ? rs->n : 1, sizeof(*rs->vm_ptrs));
        res->per_vm = calloc(rs->n ? rs->n : 1, sizeof(*res->per_vm));
        if (!rs->vms || !rs->vm_ptrs || !res->per_vm) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        for (size_t i = 0; i < rs->n; i++) {
                struct vm *vm = &rs->vms[i];
                snprintf(vm->name, sizeof(vm->name), "%s", cfg->vms[i].name);
                vm->settings = cfg->vms[i].settings;
                vm_counters_reset(&vm->counters);
                rs->vm_ptrs[i] = vm;
                r = rs->backend->ops->configure_vm(rs->backend, vm, cfg, &cfg->vms[i], err, errlen);
                if (r < 0)
                        return r;
                snprintf(res->per_vm[i].name, sizeof(res->per_vm[i].name), "%s", vm->name);
                if (rs->opt->series &&
                    !(res->per_vm[i].series = calloc(1, sizeof(struct simrun_series)))) {
                        snprintf(err, errlen, "out of memory");
                        return -ENOMEM;
                }
        }
        if (rs->opt->series && !(res->host_series = calloc(1, sizeof(*res->host_series)))) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        r = balancer_init(&rs->bal, policy, &cfg->tunables, rs->backend, err, errlen);
        if (r < 0)
                return r;
        rs->bal.host.memory_bytes =
            rs->opt->memory_override ? rs->opt->memory_override : cfg->host.memory_bytes;
        sim_backend_set_memory(rs->backend, rs->bal.host.memory_bytes);
        rs->bal.host.reserve_bytes = cfg->host.reserve_bytes;
        rs->bal.refused_starts_wait = true;
        rs->bal.on_event = on_event;
        rs->bal.event_userdata = res;
        res->policy = strdup(policy);
        if (!res->policy) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        return balancer_set_vms(&rs->bal, rs->vm_ptrs, rs->n) < 0 ? -ENOMEM : 0;
}

static void collect(struct run_state *rs, struct simrun_result *res)
{
        size_t total = 0, k = 0;

        for (size_t i = 0; i < rs->n; i++)
                total += sim_backend_vm_stats(&rs->vms[i])->n_reactions;
        uint64_t *all = calloc(total ? total : 1, sizeof(*all));
        for (size_t i = 0; i < rs->n; i++) {
                const struct sim_vm_stats *st = sim_backend_vm_stats(&rs->vms[i]);
                struct simrun_vm_result *v = &res->per_vm[i];

                v->started = st->ever_started;
                v->vm_ms = st->vm_ms;
                v->short_ms = st->short_ms;
                v->short_byte_s = st->short_byte_s;
                v->oom_kills = st->oom_kills;
                v->add_ops = rs->vms[i].counters.add_operations;
                v->remove_ops = rs->vms[i].counters.remove_operations;
                v->peak_assigned = rs->peak[i];
                v->mean_assigned = rs->steps ? rs->held_total[i] / rs->steps : 0;
                res->started += st->ever_started;
                res->vm_seconds += (double)st->vm_ms / 1000.0;
                res->short_seconds += (double)st->short_ms / 1000.0;
                res->short_byte_seconds += st->short_byte_s;
                res->oom_kills += st->oom_kills;
                for (size_t j = 0; all && j < st->n_reactions; j++)
                        all[k++] = st->reactions_ms[j];
        }
        res->vms = rs->n;
        res->refused = rs->n - res->started;
        res->resize_ops = rs->bal.counters.add_operations + rs->bal.counters.remove_operations;
        if (rs->bal.exec) {
                struct policy_exec_tally tally = policy_exec_tally(rs->bal.exec);
                res->policy_failures = tally.failures;
                res->policy_failed = tally.answers == 0;
        }
        res->host_mean_bytes = rs->steps ? rs->held_sum / (double)rs->steps : 0.0;
        if (all) {
                res->reaction_p50_s = percentile_s(all, k, 0.50);
                res->reaction_p95_s = percentile_s(all, k, 0.95);
        }
        free(all);
}

static void teardown(struct run_state *rs)
{
        balancer_fini(&rs->bal);
        if (rs->backend)
                rs->backend->ops->destroy(rs->backend);
        free(rs->vms);
        free(rs->vm_ptrs);
        free(rs->peak);
        free(rs->held_total);
}

/*
 * True when a grow was cut to the memory free now, or a start waits for its
 * startup size.
 */
static bool memory_awaited(const struct run_state *rs)
{
        for (size_t i = 0; i < rs->n; i++) {
                const struct vm *vm = &rs->vms[i];
                if (vm->state == VM_STARTING && vm->start_requested)
                        return true;
                if (vm->state == VM_RUNNING && vm->reason == REASON_WAITING)
                        return true;
        }
        return false;
}

/*
 * dynmemd decides every [host] interval, so the memory the shrinks of one
 * decision free goes to a grow (or a start) that waits for it once they have
 * landed, seconds later, not at the next step. When the step is longer than
 * that, one more decision runs in the step: after the shrinks have landed
 * (rounded up to the interval), on the reports of the step (none is taken
 * between two steps). *moved says how far the VMs were moved first.
 */
static int follow_up(struct run_state *rs, uint64_t t, uint64_t step, uint64_t *moved)
{
        uint64_t interval = rs->cfg->host.interval_ms ? rs->cfg->host.interval_ms : 1;
        uint64_t land = sim_backend_shrinks_land_ms(rs->backend);

        *moved = 0;
        if (land == 0 || !memory_awaited(rs))
                return 0;
        uint64_t at = (land + interval - 1) / interval * interval;
        if (at >= step)
                return 0;
        sim_backend_move(rs->backend, at);
        *moved = at;
        sim_backend_hold_reports(rs->backend, true);
        int r = balancer_tick(&rs->bal, t + at);
        sim_backend_hold_reports(rs->backend, false);
        return r;
}

int simrun(const struct config *cfg, const struct simrun_options *opt, struct simrun_result *res,
           char *err, size_t errlen)
{
        struct run_state rs = {.cfg = cfg, .opt = opt};
        int r;

        *res = (struct simrun_result){0};
        r = setup(&rs, res, err, errlen);
        rs.peak = calloc(rs.n ? rs.n : 1, sizeof(*rs.peak));
        rs.held_total = calloc(rs.n ? rs.n : 1, sizeof(*rs.held_total));
        if (r == 0 && (!rs.peak || !rs.held_total)) {
                snprintf(err, errlen, "out of memory");
                r = -ENOMEM;
        }
        if (r < 0) {
                teardown(&rs);
                return r;
        }
        uint64_t step = cfg->sim.step_ms, duration = scenario_duration(cfg, rs.vms, rs.n);
        uint64_t every = duration / SIMRUN_SERIES_POINTS;
        uint64_t tl_every = duration / SIMRUN_TIMELINE_POINTS;
        uint64_t next_sample = 0, next_row = 0, memory = rs.bal.host.memory_bytes;

        if (every < step)
                every = step;
        if (tl_every < step)
                tl_every = step;
        res->duration_ms = duration;
        res->memory_bytes = memory;
        if (opt->timeline)
                fprintf(opt->timeline, "seconds,vm,state,demand,assigned,target,reason\n");
        for (uint64_t t = 0; t < duration; t += step) {
                for (size_t i = 0; i < rs.n; i++) {
                        struct vm *vm = &rs.vms[i];
                        if (vm->state == VM_OFF && !sim_backend_vm_stats(vm)->ever_started &&
                            sim_backend_vm_start_ms(vm) <= t)
                                balancer_request_start(&rs.bal, vm);
                }
                sim_backend_judge(rs.backend, t, step);
                uint64_t held = sim_backend_held_bytes(rs.backend);
                rs.held_sum += (double)held;
                rs.steps++;
                if (held > res->host_peak_bytes)
                        res->host_peak_bytes = held;
                if (held > memory)
                        res->budget_violations++;
                r = balancer_tick(&rs.bal, t);
                if (r < 0) {
                        snprintf(err, errlen, "balancer: %s", strerror(-r));
                        break;
                }
                for (size_t i = 0; i < rs.n; i++) {
                        uint64_t h = vm_holds_memory(&rs.vms[i]) ? rs.vms[i].obs.assigned_bytes : 0;
                        rs.held_total[i] += h;
                        if (h > rs.peak[i])
                                rs.peak[i] = h;
                }
                bool take_series = opt->series && t >= next_sample;
                bool take_row = opt->timeline && t >= next_row;
                if (take_series || take_row)
                        sample(&rs, res, t, take_series, take_row);
                if (take_series)
                        next_sample += every;
                if (take_row)
                        next_row += tl_every;
                uint64_t moved = 0;
                r = follow_up(&rs, t, step, &moved);
                if (r < 0) {
                        snprintf(err, errlen, "balancer: %s", strerror(-r));
                        break;
                }
                sim_backend_move(rs.backend, step - moved);
        }
        if (r == 0)
                collect(&rs, res);
        teardown(&rs);
        return r;
}

void simrun_result_free(struct simrun_result *r)
{
        if (!r)
                return;
        for (size_t i = 0; r->per_vm && i < r->vms; i++)
                free(r->per_vm[i].series);
        free(r->per_vm);
        free(r->host_series);
        free(r->policy);
        *r = (struct simrun_result){0};
}
