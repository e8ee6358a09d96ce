/*
 * metrics: the counter sets as JSON and as Prometheus text. See metrics.h
 * and docs/counters.md.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counters.h"
#include "daemon.h"
#include "relief.h"

/* ---- JSON ---- */

static json_t *value_json(const struct counters_def *def, const struct counters_value *v)
{
        if (!v->known)
                return json_null();
        if (def->unit == COUNTERS_PERCENT)
                return json_real(round(v->percent * 10.0) / 10.0);
        return json_integer((json_int_t)v->n);
}

static json_t *set_json(const struct counters_def *defs, const struct counters_value *values,
                        size_t n)
{
        json_t *o = json_object();

        for (size_t i = 0; o && i < n; i++) {
                if (json_object_set_new(o, defs[i].key, value_json(&defs[i], &values[i])) < 0) {
                        json_decref(o);
                        o = NULL;
                }
        }
        return o;
}

static json_t *vm_set_json(const struct vm *vm)
{
        struct counters_value v[COUNTERS_VM_N];

        counters_vm_read(vm, v);
        return set_json(counters_vm_defs, v, COUNTERS_VM_N);
}

static uint64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int metrics_counters_json(struct daemon *d, const char *vm_name, json_t **ret)
{
        struct counters_value b[COUNTERS_BALANCER_N];
        const struct registry_entry *only = vm_name ? registry_find(&d->reg, vm_name) : NULL;
        json_t *vms = json_object(), *out;
        int bad = !vms;

        if (vm_name && !only) {
                json_decref(vms);
                return -ENOENT;
        }
        counters_balancer_read(&d->bal.counters, b);
        for (size_t i = 0; !bad && i < d->reg.n; i++) {
                const struct vm *vm = d->reg.vms[i];
                if (!only || vm == &only->vm)
                        bad = json_object_set_new(vms, vm->name, vm_set_json(vm)) < 0;
        }
        out = bad ? NULL
                  : json_pack("{s:I, s:o, s:o}", "time_ms", (json_int_t)wall_ms(), "balancer",
                              set_json(counters_balancer_defs, b, COUNTERS_BALANCER_N), "vms", vms);
        if (bad)
                json_decref(vms);
        if (!out)
                return -ENOMEM;
        *ret = out;
        return 0;
}

/* ---- Prometheus ---- */

static void header(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(FILE *f, const struct counters_def *def, const struct counters_value *v)
{
        if (def->unit == COUNTERS_PERCENT)
                fprintf(f, " %.6g\n", v->percent / 100.0); /* a ratio: base units */
        else
                fprintf(f, " %llu\n", (unsigned long long)v->n);
}

void metrics_write_label(FILE *f, const char *text)
{
        for (const char *p = text; *p; p++) {
                if (*p == '\\' || *p == '"')
                        fputc('\\', f), fputc(*p, f);
                else if (*p == '\n')
                        fputs("\\n", f);
                else
                        fputc(*p, f);
        }
}

static void balancer_metrics(FILE *f, struct daemon *d)
{
        struct counters_value b[COUNTERS_BALANCER_N];
        char name[128];

        counters_balancer_read(&d->bal.counters, b);
        for (size_t i = 0; i < COUNTERS_BALANCER_N; i++) {
                const struct counters_def *def = &counters_balancer_defs[i];
                snprintf(name, sizeof(name), "dynmem_balancer_%s", def->metric);
                header(f, name, def->total ? "counter" : "gauge", def->help);
                if (b[i].known) {
                        fputs(name, f);
                        value(f, def, &b[i]);
                }
        }
}

static void vm_metric(FILE *f, struct daemon *d, size_t k)
{
        const struct counters_def *def = &counters_vm_defs[k];
        struct counters_value v[COUNTERS_VM_N];
        char name[128];

        snprintf(name, sizeof(name), "dynmem_vm_%s", def->metric);
        header(f, name, def->total ? "counter" : "gauge", def->help);
        for (size_t i = 0; i < d->reg.n; i++) {
                counters_vm_read(d->reg.vms[i], v);
                if (!v[k].known)
                        continue;
                fprintf(f, "%s{vm=\"", name);
                metrics_write_label(f, d->reg.vms[i]->name);
                fputs("\"}", f);
                value(f, def, &v[k]);
        }
}

/* Beyond Hyper-V's sets: what a dashboard needs next to them. */
static void vm_extras(FILE *f, struct daemon *d)
{
        header(f, "dynmem_vm_demand_bytes", "gauge",
               "The guest's memory demand without buffer, as last reported.");
        for (size_t i = 0; i < d->reg.n; i++) {
                const struct vm *vm = d->reg.vms[i];
                if (!vm_holds_memory(vm) || !vm->obs.demand_known)
                        continue;
                fputs("dynmem_vm_demand_bytes{vm=\"", f);
                metrics_write_label(f, vm->name);
                fprintf(f, "\"} %llu\n", (unsigned long long)vm->obs.demand_bytes);
        }
        header(f, "dynmem_vm_state", "gauge", "1 for the VM's life-cycle state, 0 for the others.");
        for (size_t i = 0; i < d->reg.n; i++) {
                for (int s = VM_OFF; s <= VM_CRASHED; s++) {
                        fputs("dynmem_vm_state{vm=\"", f);
                        metrics_write_label(f, d->reg.vms[i]->name);
                        fprintf(f, "\",state=\"%s\"} %d\n", vm_state_name((enum vm_state)s),
                                d->reg.vms[i]->state == (enum vm_state)s);
                }
        }
}

static void host_extras(FILE *f, struct daemon *d)
{
        const struct balancer_counters *c = &d->bal.counters;
        static const char *const names[] = {"dynmem_host_memory_bytes",
                                            "dynmem_host_reserve_bytes",
                                            "dynmem_balancer_refused_starts_total",
                                            "dynmem_balancer_crashes_total",
                                            "dynmem_daemon_cycles_total",
                                            "dynmem_daemon_cycles_skipped_total"};
        static const char *const helps[] = {
            "Memory the VMs may hold in all ([host] memory).",
            "Memory kept for the host itself, outside the VMs' memory.",
            "VM starts refused by admission since dynmemd started.",
            "VMs whose process died since dynmemd started.",
            "Balancing cycles run since dynmemd started.",
            "Whole cycles skipped because the loop was late by more than an interval."};
        uint64_t values[] = {d->bal.host.memory_bytes,
                             d->bal.host.reserve_bytes,
                             c->refused_starts,
                             c->crashes,
                             d->cycles,
                             d->cycles_skipped};

        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
                bool total = strstr(names[i], "_total") != NULL;
                header(f, names[i], total ? "counter" : "gauge", helps[i]);
                fprintf(f, "%s %llu\n", names[i], (unsigned long long)values[i]);
        }
        header(f, "dynmem_daemon_cycle_lateness_max_seconds", "gauge",
               "The latest start of a balancing cycle after its due time, since dynmemd started.");
        fprintf(f, "dynmem_daemon_cycle_lateness_max_seconds %.6f\n", d->lateness.max_ms / 1000.0);
}

char *metrics_prometheus(struct daemon *d, size_t *ret_len)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                return NULL;
        balancer_metrics(f, d);
        for (size_t k = 0; k < COUNTERS_VM_N; k++)
                vm_metric(f, d, k);
        vm_extras(f, d);
        host_extras(f, d);
        migration_metrics(f, d);
        relief_metrics(f, d);
        if (ferror(f)) {
                fclose(f);
                free(text);
                return NULL;
        }
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        *ret_len = len;
        return text;
}
