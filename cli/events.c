/*
 * events: `dynmem events [--follow]`, what the balancer did lately, one line
 * per event with its time ("2026-11-26 17:17:34  web1 +256 MiB: pressure
 * 118 %"). --follow keeps asking dynmemd for the events after the last one
 * it printed; when dynmemd no longer holds some of them (this reader fell
 * behind by more than its ring) a line says how many were missed.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "commands.h"
#include "output.h"

#define FOLLOW_POLL_MS 500

/* The events after `since`. */
static int fetch(struct cli *cli, uint64_t since, json_t **ret_reply)
{
        char err[CONTROL_ERROR_MAX + 256] = "";

        cli->req = (struct control_request){.command = CONTROL_EVENTS, .since = since};
        if (client_call(cli, ret_reply, err, sizeof(err)) < 0) {
                fprintf(stderr, "dynmem: %s\n", err);
                return CLI_FAILED;
        }
        if (!json_is_array(json_object_get(*ret_reply, "events")) ||
            !json_is_integer(json_object_get(*ret_reply, "next"))) {
                fprintf(stderr, "dynmem: the reply from dynmemd has no \"events\"\n");
                json_decref(*ret_reply);
                return CLI_FAILED;
        }
        return CLI_OK;
}

static void print_event(const struct cli *cli, const json_t *ev)
{
        const json_t *ms = json_object_get(ev, "time_ms"), *text = json_object_get(ev, "text");
        time_t t = json_is_integer(ms) ? (time_t)(json_integer_value(ms) / 1000) : 0;
        char when[64];
        struct tm tm;

        if (cli->json) {
                json_dumpf(ev, stdout, JSON_COMPACT | JSON_REAL_PRECISION(12));
                putchar('\n');
                return;
        }
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
        printf("%s  %s\n", when, json_is_string(text) ? json_string_value(text) : "?");
}

static void print_dropped(const struct cli *cli, json_int_t n)
{
        if (cli->json)
                printf("{\"kind\":\"dropped\",\"count\":%lld}\n", (long long)n);
        else
                printf("(%lld events missed: dynmemd keeps only the latest ones)\n", (long long)n);
}

/* Print one reply's events; returns the next `since`. */
static uint64_t print_reply(const struct cli *cli, const json_t *reply)
{
        const json_t *dropped = json_object_get(reply, "dropped"), *ev;
        size_t i;

        if (json_is_integer(dropped) && json_integer_value(dropped) > 0)
                print_dropped(cli, json_integer_value(dropped));
        json_array_foreach(json_object_get(reply, "events"), i, ev) print_event(cli, ev);
        fflush(stdout);
        return (uint64_t)json_integer_value(json_object_get(reply, "next"));
}

static void pause_ms(uint64_t ms)
{
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

        nanosleep(&ts, NULL);
}

int commands_events(struct cli *cli)
{
        uint64_t since = 0;
        json_t *reply, *all = NULL;
        bool more;
        int r;

        if (cli->json && !cli->follow)
                all = json_array();
        do {
                r = fetch(cli, since, &reply);
                if (r != CLI_OK)
                        break;
                more = json_is_true(json_object_get(reply, "more"));
                if (all)
                        json_array_extend(all, json_object_get(reply, "events"));
                else
                        since = print_reply(cli, reply);
                if (all)
                        since = (uint64_t)json_integer_value(json_object_get(reply, "next"));
                json_decref(reply);
                if (ferror(stdout)) {
                        r = CLI_FAILED; /* the reader went away */
                        break;
                }
                if (!more && cli->follow)
                        pause_ms(FOLLOW_POLL_MS);
        } while (more || cli->follow);
        if (all && r == CLI_OK)
                output_json(stdout, all);
        json_decref(all);
        return r;
}
