/*
 * counters: `dynmem counters`, the two Dynamic Memory counter sets. One
 * sample as a listing (or the daemon's JSON), or with --interval/--count a
 * series like typeperf's: CSV with one quoted column per counter
 * ("\Dynamic Memory VM(web1)\Added Memory"), or one JSON object per line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "commands.h"
#include "counters.h"
#include "output.h"
#include "units.h"

#define BALANCER_TITLE "Dynamic Memory Balancer"
#define VM_TITLE       "Dynamic Memory VM"

static bool want_balancer(const struct cli *cli)
{
        return !cli->set || strcmp(cli->set, "balancer") == 0;
}

static bool want_vms(const struct cli *cli)
{
        return !cli->set || strcmp(cli->set, "vm") == 0;
}

/* One sample: the "counters" member, without the sets --set leaves out. */
static int sample(struct cli *cli, json_t **ret)
{
        char err[CONTROL_ERROR_MAX + 256] = "";
        json_t *reply, *counters;

        cli->req = (struct control_request){.command = CONTROL_COUNTERS};
        if (cli->vm)
                snprintf(cli->req.name, sizeof(cli->req.name), "%s", cli->vm);
        if (client_call(cli, &reply, err, sizeof(err)) < 0) {
                fprintf(stderr, "dynmem: %s\n", err);
                return CLI_FAILED;
        }
        counters = json_object_get(reply, "counters");
        if (!json_is_object(counters) || !json_is_object(json_object_get(counters, "vms"))) {
                fprintf(stderr, "dynmem: the reply from dynmemd has no \"counters\"\n");
                json_decref(reply);
                return CLI_FAILED;
        }
        json_incref(counters);
        json_decref(reply);
        if (!want_balancer(cli))
                json_object_del(counters, "balancer");
        if (!want_vms(cli))
                json_object_del(counters, "vms");
        *ret = counters;
        return CLI_OK;
}

/* ---- one sample for people ---- */

static void cell(const struct counters_def *def, const json_t *v, bool raw, char *buf, size_t len)
{
        if (!json_is_number(v))
                snprintf(buf, len, raw ? "" : "-");
        else if (def->unit == COUNTERS_PERCENT)
                snprintf(buf, len, raw ? "%.1f" : "%.0f %%", json_number_value(v));
        else if (def->unit == COUNTERS_BYTES && !raw)
                size_format((uint64_t)json_integer_value(v), buf, len);
        else
                snprintf(buf, len, "%lld", (long long)json_integer_value(v));
}

static void print_set(const char *title, const struct counters_def *defs, size_t n,
                      const json_t *values)
{
        char buf[64];

        printf("%s\n", title);
        for (size_t i = 0; i < n; i++) {
                cell(&defs[i], json_object_get(values, defs[i].key), false, buf, sizeof(buf));
                printf("  %-32s %14s\n", defs[i].title, buf);
        }
}

static void print_sample(const json_t *counters)
{
        const json_t *balancer = json_object_get(counters, "balancer"), *v;
        const char *name;
        char title[128];
        bool first = true;

        if (balancer) {
                print_set(BALANCER_TITLE, counters_balancer_defs, COUNTERS_BALANCER_N, balancer);
                first = false;
        }
        json_object_foreach((json_t *)json_object_get(counters, "vms"), name, v)
        {
                snprintf(title, sizeof(title), "%s(%s)", VM_TITLE, name);
                printf("%s", first ? "" : "\n");
                print_set(title, counters_vm_defs, COUNTERS_VM_N, v);
                first = false;
        }
}

/* ---- a series ---- */

static void csv_header(const json_t *counters)
{
        const char *name;
        json_t *v;

        printf("\"time\"");
        if (json_object_get(counters, "balancer"))
                for (size_t i = 0; i < COUNTERS_BALANCER_N; i++)
                        printf(",\"\\%s\\%s\"", BALANCER_TITLE, counters_balancer_defs[i].title);
        json_object_foreach((json_t *)json_object_get(counters, "vms"), name,
                            v) for (size_t i = 0; i < COUNTERS_VM_N; i++)
            printf(",\"\\%s(%s)\\%s\"", VM_TITLE, name, counters_vm_defs[i].title);
        printf("\n");
}

static void csv_values(const struct counters_def *defs, size_t n, const json_t *values)
{
        char buf[64];

        for (size_t i = 0; i < n; i++) {
                cell(&defs[i], json_object_get(values, defs[i].key), true, buf, sizeof(buf));
                printf(",\"%s\"", buf);
        }
}

/* One row in the first sample's columns: a VM gone since then has empty cells. */
static void csv_row(const json_t *first, const json_t *counters)
{
        const json_t *vms = json_object_get(counters, "vms"), *v;
        const char *name;
        char when[64];
        struct timespec now;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &now);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now.tv_sec, &tm));
        printf("\"%s.%03ld\"", when, now.tv_nsec / 1000000);
        if (json_object_get(first, "balancer"))
                csv_values(counters_balancer_defs, COUNTERS_BALANCER_N,
                           json_object_get(counters, "balancer"));
        json_object_foreach((json_t *)json_object_get(first, "vms"), name, v)
            csv_values(counters_vm_defs, COUNTERS_VM_N, json_object_get(vms, name));
        printf("\n");
}

static void sleep_until(const struct timespec *at)
{
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, at, NULL) == EINTR)
                ;
}

static int series(struct cli *cli)
{
        uint64_t interval = cli->interval_ms ? cli->interval_ms : 1000;
        json_t *first = NULL, *counters;
        struct timespec at;
        int r = CLI_OK;

        clock_gettime(CLOCK_MONOTONIC, &at);
        for (uint64_t k = 0; r == CLI_OK && (cli->count == 0 || k < cli->count); k++) {
                if (k > 0) {
                        at.tv_nsec += (long)(interval % 1000) * 1000000;
                        at.tv_sec += (time_t)(interval / 1000) + at.tv_nsec / 1000000000;
                        at.tv_nsec %= 1000000000;
                        sleep_until(&at);
                }
                r = sample(cli, &counters);
                if (r != CLI_OK)
                        break;
                if (cli->json) {
                        json_dumpf(counters, stdout, JSON_COMPACT | JSON_REAL_PRECISION(12));
                        putchar('\n');
                } else {
                        if (!first)
                                csv_header(first = json_incref(counters));
                        csv_row(first, counters);
                }
                json_decref(counters);
                if (fflush(stdout) != 0 || ferror(stdout))
                        r = CLI_FAILED; /* the reader went away: main says so */
        }
        json_decref(first);
        return r;
}

int commands_counters(struct cli *cli)
{
        json_t *counters;
        int r;

        if (cli->interval_ms || cli->count)
                return series(cli);
        r = sample(cli, &counters);
        if (r != CLI_OK)
                return r;
        if (cli->json)
                output_json(stdout, counters);
        else
                print_sample(counters);
        json_decref(counters);
        return CLI_OK;
}
