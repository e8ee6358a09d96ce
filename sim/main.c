/*
 * dynmem-sim: replays a scenario's demand traces through dynmem's balancer
 * loop and policy with a virtual clock, and reports how the VMs fared.
 *
 * Exit status: 0 done, 1 the run failed, 2 bad usage or a bad scenario.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynmem-config.h"
#include "report.h"
#include "simrun.h"

static void usage(FILE *out)
{
        fputs("Usage: dynmem-sim SCENARIO.ini [--policy NAME] [--json] [--timeline FILE.csv]\n"
              "                  [--report FILE.html]\n"
              "\n"
              "Replay a scenario's demand traces through dynmem's balancer and report how\n"
              "the VMs fared: time short of memory, OOM kills, host memory held, resizes.\n"
              "\n"
              "  -p, --policy NAME      dynmem (default), static, hyperv or exec:COMMAND;\n"
              "                         overrides [host] policy\n"
              "  -j, --json             print one JSON object instead of the summary\n"
              "  -t, --timeline FILE    write per-VM rows (seconds,vm,state,demand,assigned,\n"
              "                         target,reason) as CSV\n"
              "  -r, --report FILE      write a self-contained HTML page with charts\n"
              "  -h, --help             show this help\n"
              "  -V, --version          show the version\n"
              "\n"
              "See dynmem-sim(1) and docs/simulator.md for the scenario format and the model.\n",
              out);
}

static FILE *open_output(const char *path)
{
        FILE *f = fopen(path, "we");

        if (!f)
                fprintf(stderr, "dynmem-sim: %s: %s\n", path, strerror(errno));
        return f;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"policy", required_argument, NULL, 'p'},
            {"json", no_argument, NULL, 'j'},
            {"timeline", required_argument, NULL, 't'},
            {"report", required_argument, NULL, 'r'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {NULL, 0, NULL, 0},
        };
        const char *timeline_path = NULL, *report_path = NULL;
        struct simrun_options opt = {0};
        bool json = false;
        int c;

        signal(SIGPIPE, SIG_IGN);
        while ((c = getopt_long(argc, argv, "p:jt:r:hV", options, NULL)) != -1) {
                switch (c) {
                case 'p':
                        opt.policy = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 't':
                        timeline_path = optarg;
                        break;
                case 'r':
                        report_path = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("dynmem-sim %s\n", DYNMEM_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc - 1) {
                fprintf(stderr, "dynmem-sim: expected one scenario file\n");
                usage(stderr);
                return 2;
        }
        const char *scenario = argv[optind];
        struct config cfg;
        if (simrun_load_scenario(scenario, &cfg) < 0)
                return 2;
        if (opt.policy && policy_kind_parse(opt.policy, &(enum policy_kind){0}, NULL) < 0) {
                fprintf(stderr,
                        "dynmem-sim: unknown policy \"%s\" (dynmem, static, hyperv or "
                        "exec:COMMAND)\n",
                        opt.policy);
                config_free(&cfg);
                return 2;
        }
        if (timeline_path && !(opt.timeline = open_output(timeline_path))) {
                config_free(&cfg);
                return 1;
        }
        opt.series = report_path != NULL;

        struct simrun_result res;
        char err[256] = "";
        int status = 0;
        if (simrun(&cfg, &opt, &res, err, sizeof(err)) < 0) {
                fprintf(stderr, "dynmem-sim: %s: %s\n", scenario, err);
                status = 1;
                goto out;
        }
        if (json) {
                json_t *o = report_json(&res);
                if (!o || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) < 0) {
                        fprintf(stderr, "dynmem-sim: cannot write the JSON result\n");
                        status = 1;
                }
                fputc('\n', stdout);
                json_decref(o);
        } else {
                report_human(stdout, &res);
        }
        if (report_path) {
                FILE *f = open_output(report_path);
                int r = f ? report_html(f, scenario, &res) : -1;
                if ((f && fclose(f) != 0) || r < 0) {
                        fprintf(stderr, "dynmem-sim: cannot write %s\n", report_path);
                        status = 1;
                }
        }
out:
        if (opt.timeline && fclose(opt.timeline) != 0) {
                fprintf(stderr, "dynmem-sim: cannot write %s\n", timeline_path);
                status = 1;
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "dynmem-sim: cannot write the standard output\n");
                status = 1;
        }
        simrun_result_free(&res);
        config_free(&cfg);
        return status;
}
