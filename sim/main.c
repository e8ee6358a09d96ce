/*
 * dynmem-sim: replays a scenario's demand traces through dynmem's balancer
 * loop and policy with a virtual clock, and reports how the VMs fared; with
 * --sweep, does so at every host size of a range under several policies.
 *
 * Exit status: 0 done, 1 the run failed (or its exec: policy never answered), 2 bad
 * usage or a bad scenario.
 */
#include <getopt.h>
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dynmem-config.h"
#include "log.h"
#include "output.h"
#include "report.h"
#include "sim.h"
#include "simrun.h"
#include "sweep.h"
#include "sweep_report.h"

static void usage(FILE *out)
{
        fputs("Usage: dynmem-sim SCENARIO.ini [--policy NAME] [--json] [--timeline FILE.csv]\n"
              "                  [--report FILE.html]\n"
              "       dynmem-sim SCENARIO.ini --sweep memory=FROM:TO:STEP [--slo short=P%]\n"
              "                  [--slo oom=N] [--policy NAME]... [--jobs N] [--json]\n"
              "                  [--report FILE.html]\n"
              "\n"
              "Replay a scenario's demand traces through dynmem's balancer and report how\n"
              "the VMs fared: time short of memory, OOM kills, host memory held, resizes.\n"
              "\n"
              "  -p, --policy NAME      dynmem (default), static, hyperv or exec:COMMAND;\n"
              "                         overrides [host] policy (with --sweep: repeat it to\n"
              "                         compare several; default static, hyperv and dynmem);\n"
              "                         an exec: program that never answers fails the run\n"
              "  -j, --json             print one JSON object instead of the summary\n"
              "  -t, --timeline FILE    write per-VM rows (seconds,vm,state,demand,assigned,\n"
              "                         target,reason) as CSV\n"
              "  -r, --report FILE      write a self-contained HTML page with charts\n"
              "                         (both files are kept only when the run completes)\n"
              "  -s, --sweep memory=FROM:TO:STEP\n"
              "                         run every host size from FROM to TO (e.g. 40G:96G:4G)\n"
              "  -l, --slo short=P%|oom=N\n"
              "                         the service level the sweep looks for (one of each)\n"
              "  -J, --jobs N           worker processes for a sweep (default: one per processor)\n"
              "  -h, --help             show this help\n"
              "  -V, --version          show the version\n"
              "\n"
              "See dynmem-sim(1) and docs/simulator.md for the scenario format and the model.\n",
              out);
}

struct options {
        const char *scenario;
        const char *policies[SWEEP_POLICIES_MAX];
        size_t n_policies;
        const char *timeline_path, *report_path;
        bool json, sweep, slo_given;
        struct sweep_range range;
        struct sweep_slo slo;
        unsigned jobs;
};

static bool policy_given(const struct options *o, const char *policy)
{
        for (size_t i = 0; i < o->n_policies; i++)
                if (strcmp(o->policies[i], policy) == 0)
                        return true;
        return false;
}

/* Parse the command line. Returns 0, 1 (done: help or version) or 2 (bad usage). */
static int parse_options(int argc, char **argv, struct options *o)
{
        static const struct option options[] = {
            {"policy", required_argument, NULL, 'p'},   {"json", no_argument, NULL, 'j'},
            {"timeline", required_argument, NULL, 't'}, {"report", required_argument, NULL, 'r'},
            {"sweep", required_argument, NULL, 's'},    {"slo", required_argument, NULL, 'l'},
            {"jobs", required_argument, NULL, 'J'},     {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0},
        };
        char err[160], *end;
        int c;

        while ((c = getopt_long(argc, argv, "p:jt:r:s:l:J:hV", options, NULL)) != -1) {
                err[0] = '\0';
                switch (c) {
                case 'p': {
                        /* Quoted as a clean line: the text may hold any byte. */
                        char shown[84];
                        log_clean(shown, sizeof(shown), optarg);
                        if (policy_kind_parse(optarg, &(enum policy_kind){0}, NULL) < 0)
                                snprintf(err, sizeof(err),
                                         strncmp(optarg, "exec:", 5) == 0
                                             ? "--policy \"%s\" names no program after exec:"
                                             : "unknown policy \"%s\" (dynmem, static, hyperv or "
                                               "exec:COMMAND)",
                                         shown);
                        else if (policy_given(o, optarg))
                                snprintf(err, sizeof(err), "--policy \"%s\" given more than once",
                                         shown);
                        else if (o->n_policies == SWEEP_POLICIES_MAX)
                                snprintf(err, sizeof(err), "at most %d policies",
                                         SWEEP_POLICIES_MAX);
                        else
                                o->policies[o->n_policies++] = optarg;
                        break;
                }
                case 'j':
                        o->json = true;
                        break;
                case 't':
                        o->timeline_path = optarg;
                        break;
                case 'r':
                        o->report_path = optarg;
                        break;
                case 's':
                        if (o->sweep)
                                snprintf(err, sizeof(err), "--sweep given more than once");
                        else
                                sweep_range_parse(optarg, &o->range, err, sizeof(err));
                        o->sweep = true;
                        break;
                case 'l':
                        o->slo_given = true;
                        sweep_slo_parse(optarg, &o->slo, err, sizeof(err));
                        break;
                case 'J': {
                        /* Digits only: strtoul takes " 2" and "+2", and wraps "-1". */
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (*end || end == optarg || optarg[strspn(optarg, "0123456789")] ||
                            v < 1 || v > 64)
                                snprintf(err, sizeof(err), "--jobs: \"%s\" is not 1..64", optarg);
                        else if (o->jobs)
                                snprintf(err, sizeof(err), "--jobs given more than once");
                        o->jobs = (unsigned)v;
                        break;
                }
                case 'h':
                        usage(stdout);
                        return 1;
                case 'V':
                        printf("dynmem-sim %s\n", DYNMEM_VERSION);
                        return 1;
                default:
                        usage(stderr);
                        return 2;
                }
                if (err[0]) {
                        fprintf(stderr, "dynmem-sim: %s\n", err);
                        return 2;
                }
        }
        if (optind != argc - 1) {
                fprintf(stderr, "dynmem-sim: expected one scenario file\n");
                usage(stderr);
                return 2;
        }
        o->scenario = argv[optind];
        const char *wrong = !o->sweep && o->n_policies > 1 ? "--policy more than once"
                            : !o->sweep && o->slo_given    ? "--slo"
                            : !o->sweep && o->jobs         ? "--jobs"
                            : o->sweep && o->timeline_path ? "--timeline with --sweep"
                                                           : NULL;
        if (wrong) {
                fprintf(stderr, "dynmem-sim: %s %s\n", wrong,
                        o->sweep ? "is not possible" : "needs --sweep");
                return 2;
        }
        return 0;
}

static int write_json(json_t *o)
{
        int r = o && json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) == 0 ? 0 : -1;

        if (r < 0)
                fprintf(stderr, "dynmem-sim: cannot write the JSON result\n");
        fputc('\n', stdout);
        json_decref(o);
        return r;
}

static int run_single(const struct options *o, const struct config *cfg)
{
        struct simrun_options opt = {.policy = o->n_policies ? o->policies[0] : NULL,
                                     .series = o->report_path != NULL};
        struct output timeline = {.dir_fd = -1}, report = {.dir_fd = -1};
        struct simrun_result res;
        char err[256] = "";
        int status = 0;

        /* Both outputs before the run: a path that cannot be written fails at once. */
        if ((o->timeline_path && output_open(&timeline, o->timeline_path) < 0) ||
            (o->report_path && output_open(&report, o->report_path) < 0)) {
                output_discard(&timeline);
                return 1;
        }
        opt.timeline = timeline.fp;
        if (simrun(cfg, &opt, &res, err, sizeof(err)) < 0) {
                /* Nothing of a failed run is kept: no report, no half a timeline. */
                fprintf(stderr, "dynmem-sim: %s: %s\n", o->scenario, err);
                output_discard(&timeline);
                output_discard(&report);
                return 1;
        }
        if (res.policy_failed) {
                /* The figures are those of targets no policy moved: said, and exit status 1. */
                fprintf(stderr,
                        "dynmem-sim: %s: policy \"%s\" never answered (%llu failures): "
                        "the run failed\n",
                        o->scenario, res.policy, (unsigned long long)res.policy_failures);
                status = 1;
        }
        if (o->json)
                status |= write_json(report_json(&res)) < 0 ? 1 : 0;
        else
                report_human(stdout, &res);
        if (report.fp && report_html(report.fp, o->scenario, &res) < 0) {
                fprintf(stderr, "dynmem-sim: cannot write %s\n", o->report_path);
                output_discard(&report);
                status = 1;
        }
        if (output_commit(&report) < 0)
                status = 1;
        if (output_commit(&timeline) < 0)
                status = 1;
        simrun_result_free(&res);
        return status;
}

static int run_sweep(const struct options *o, const struct config *cfg)
{
        static const char *const defaults[] = {"static", "hyperv", "dynmem"};
        const char *const *policies = o->n_policies ? o->policies : defaults;
        size_t n = o->n_policies ? o->n_policies : 3;
        struct output report = {.dir_fd = -1};
        struct sweep_result res;
        char err[256];
        int status = 0;

        /* Before the sweep: a path that cannot be written fails at once, not after it. */
        if (o->report_path && output_open(&report, o->report_path) < 0)
                return 1;
        if (sweep_run(cfg, policies, n, &o->range, &o->slo, o->slo_given, o->jobs, &res, err,
                      sizeof(err)) < 0) {
                fprintf(stderr, "dynmem-sim: %s: %s\n", o->scenario, err);
                sweep_result_free(&res);
                output_discard(&report);
                return 1;
        }
        for (size_t j = 0; j < res.n_sizes * res.n_policies; j++)
                if (!sweep_point_ok(&res.figures[j]))
                        status = 1; /* reported by the worker */
        if (o->json)
                status |= write_json(sweep_report_json(&res)) < 0 ? 1 : 0;
        else
                sweep_report_human(stdout, o->scenario, &res);
        if (report.fp && sweep_report_html(report.fp, o->scenario, &res) < 0) {
                fprintf(stderr, "dynmem-sim: cannot write %s\n", o->report_path);
                output_discard(&report);
                status = 1;
        }
        if (output_commit(&report) < 0)
                status = 1;
        sweep_result_free(&res);
        return status;
}

/* Whether a and b are the same file; false when either does not exist. */
static bool same_file(const struct stat *a, const char *b)
{
        struct stat st;

        return stat(b, &st) == 0 && st.st_dev == a->st_dev && st.st_ino == a->st_ino;
}

/*
 * What an output at path would overwrite that the run reads: the scenario or
 * a VM's trace (every run reads the traces again). Writes it to what and
 * returns true.
 */
static bool output_is_input(const struct config *cfg, const char *path, char *what, size_t len)
{
        struct stat st;

        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                return false;
        if (same_file(&st, cfg->path)) {
                snprintf(what, len, "the scenario");
                return true;
        }
        for (size_t i = 0; i < cfg->n_vms; i++) {
                const struct config_kv *kv = config_vm_key(&cfg->vms[i], "trace");
                char *trace = kv ? sim_backend_trace_path(cfg, kv->value) : NULL;
                bool same = trace && same_file(&st, trace);
                free(trace);
                if (same) {
                        snprintf(what, len, "the trace of vm \"%s\" (%s:%u)", cfg->vms[i].name,
                                 cfg->path, kv->line);
                        return true;
                }
        }
        return false;
}

/*
 * --timeline and --report must not name a file the run reads, nor the same
 * regular (or new) file. Returns 0, or 2 after a message.
 */
static int check_outputs(const struct options *o, const struct config *cfg)
{
        const char *const names[] = {"--timeline", "--report"};
        const char *const paths[] = {o->timeline_path, o->report_path};
        char what[VM_NAME_MAX + PATH_MAX + 64];
        struct stat st;

        for (size_t i = 0; i < 2; i++)
                if (paths[i] && output_is_input(cfg, paths[i], what, sizeof(what))) {
                        fprintf(stderr, "dynmem-sim: %s %s is %s: it would be overwritten\n",
                                names[i], paths[i], what);
                        return 2;
                }
        if (paths[0] && paths[1] &&
            (stat(paths[0], &st) == 0 ? S_ISREG(st.st_mode) && same_file(&st, paths[1])
                                      : strcmp(paths[0], paths[1]) == 0)) {
                fprintf(stderr, "dynmem-sim: --timeline and --report name the same file %s\n",
                        paths[1]);
                return 2;
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct options o = {0};
        struct config cfg;
        int status;

        signal(SIGPIPE, SIG_IGN);
        log_setup("dynmem-sim", LOG_TARGET_STDERR, LOG_INFO); /* an exec: policy's stderr */
        status = parse_options(argc, argv, &o);
        if (status)
                return status == 1 ? 0 : 2;
        if (simrun_load_scenario(o.scenario, o.sweep ? sweep_range_largest(&o.range) : 0, &cfg) < 0)
                return 2;
        if (check_outputs(&o, &cfg) != 0) {
                config_free(&cfg);
                return 2;
        }
        status = o.sweep ? run_sweep(&o, &cfg) : run_single(&o, &cfg);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "dynmem-sim: cannot write the standard output\n");
                status = 1;
        }
        config_free(&cfg);
        return status;
}
