/*
 * sweep: one scenario at every host size of a range under several policies,
 * spread over worker processes (each a fork of dynmem-sim that reads job
 * numbers from one pipe and writes fixed-size results to another), and the
 * smallest host meeting a service level. See sweep.h.
 */
#include "sweep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "settings.h"
#include "simrun.h"
#include "units.h"

#define JOBS_MAX 64

/* The least host a sweep runs: the least [host] memory a scenario takes. */
#define SWEEP_MEMORY_MIN SETTINGS_MINIMUM_FLOOR

/*
 * One size of --sweep memory=FROM:TO:STEP, read as [host] memory is: a unit,
 * or plain bytes of at least 1 MiB. Returns 0 or -EINVAL with the field and
 * its text in err.
 */
static int range_field(const char *name, const char *text, uint64_t *ret, char *err, size_t errlen)
{
        char why[160];
        int r = size_parse(text, ret);

        if (r == -ERANGE) {
                snprintf(err, errlen, "--sweep: %s \"%s\" is too large", name, text);
                return -EINVAL;
        }
        if (r < 0 && size_blank_inside(text, why, sizeof(why))) {
                snprintf(err, errlen, "--sweep: %s %s", name, why);
                return -EINVAL;
        }
        if (r < 0) {
                snprintf(err, errlen,
                         "--sweep: %s \"%s\" is not a size (bytes, or a number with K, M, G or "
                         "T, e.g. 40G)",
                         name, text);
                return -EINVAL;
        }
        if (size_unit_missing(text, *ret, why, sizeof(why))) {
                snprintf(err, errlen, "--sweep: %s %s", name, why);
                return -EINVAL;
        }
        return 0;
}

int sweep_range_parse(const char *text, struct sweep_range *ret, char *err, size_t errlen)
{
        char buf[128], *rest, *from, *to, *step, a[32];

        if (strncmp(text, "memory=", 7) != 0) {
                snprintf(err, errlen,
                         "--sweep: expected memory=FROM:TO:STEP, e.g. memory=40G:96G:4G");
                return -EINVAL;
        }
        if (strlen(text + 7) >= sizeof(buf)) {
                snprintf(err, errlen, "--sweep: memory=FROM:TO:STEP longer than %zu characters",
                         sizeof(buf) - 1);
                return -EINVAL;
        }
        /* Exactly three fields: an empty one (a doubled, leading or trailing ':') is wrong. */
        snprintf(buf, sizeof(buf), "%s", text + 7);
        rest = buf;
        from = strsep(&rest, ":");
        to = strsep(&rest, ":");
        step = strsep(&rest, ":");
        if (!to || !step || rest) {
                snprintf(err, errlen, "--sweep: \"%s\" is not memory=FROM:TO:STEP (sizes)", text);
                return -EINVAL;
        }
        if (range_field("FROM", from, &ret->from, err, errlen) < 0 ||
            range_field("TO", to, &ret->to, err, errlen) < 0 ||
            range_field("STEP", step, &ret->step, err, errlen) < 0)
                return -EINVAL;
        if (ret->step == 0) {
                snprintf(err, errlen,
                         "--sweep: STEP \"%s\" is 0: the sizes would never reach TO (e.g. "
                         "memory=40G:96G:4G)",
                         step);
                return -EINVAL;
        }
        if (ret->from > ret->to) {
                /* The sizes go up: the same range the other way round is what was meant. */
                snprintf(err, errlen,
                         "--sweep: FROM \"%s\" is above TO \"%s\": the sizes go up from FROM to "
                         "TO (memory=%s:%s:%s)",
                         from, to, to, from, step);
                return -EINVAL;
        }
        if (ret->from < SWEEP_MEMORY_MIN) {
                /* As [host] memory: the least a scenario's host may have. */
                snprintf(err, errlen, "--sweep: FROM %s is below %s", from,
                         size_format(SWEEP_MEMORY_MIN, a, sizeof(a)));
                return -EINVAL;
        }
        if (ret->to > (uint64_t)INT64_MAX) {
                /* The JSON's memory_bytes are signed 64-bit integers. */
                snprintf(err, errlen, "--sweep: sizes must be below 8 EiB");
                return -EINVAL;
        }
        if ((ret->to - ret->from) / ret->step + 1 > SWEEP_POINTS_MAX) {
                snprintf(err, errlen, "--sweep: more than %d host sizes", SWEEP_POINTS_MAX);
                return -EINVAL;
        }
        return 0;
}

uint64_t sweep_range_largest(const struct sweep_range *range)
{
        return range->from + (range->to - range->from) / range->step * range->step;
}

/* Whether text is digits with at most one inner dot ("0.1", "5", not ".5", "1e-3", " 1"). */
static bool plain_decimal(const char *text, size_t len)
{
        size_t digits = strspn(text, "0123456789");

        if (digits == 0)
                return false;
        if (digits == len)
                return true;
        if (text[digits] != '.' || digits + 1 == len)
                return false;
        return strspn(text + digits + 1, "0123456789") == len - digits - 1;
}

int sweep_slo_parse(const char *text, struct sweep_slo *slo, char *err, size_t errlen)
{
        if (strncmp(text, "short=", 6) == 0) {
                const char *num = text + 6;
                size_t len = strlen(num);
                double v = 0;
                /* Only plain decimals: strtod would take " 1", "1e-1", "0x1p-3" and "inf". */
                if (len < 2 || num[len - 1] != '%' || !plain_decimal(num, len - 1) ||
                    !((v = strtod(num, NULL)) <= 100.0)) {
                        snprintf(err, errlen, "--slo: \"%s\" is not short=P%% (0..100)", text);
                        return -EINVAL;
                }
                if (slo->short_given) {
                        snprintf(err, errlen, "--slo: short= given more than once");
                        return -EINVAL;
                }
                slo->short_given = true;
                slo->short_share = v / 100.0;
                return 0;
        }
        if (strncmp(text, "oom=", 4) == 0) {
                const char *num = text + 4;
                unsigned long long v = 0;
                errno = 0;
                /* Digits only (strtoull would take " 5", "+5" and wrap " -1"); at most
                 * INT64_MAX: the JSON's integers are signed. */
                if (!num[0] || num[strspn(num, "0123456789")] ||
                    ((v = strtoull(num, NULL, 10)), errno == ERANGE) ||
                    v > (unsigned long long)INT64_MAX) {
                        snprintf(err, errlen, "--slo: \"%s\" is not oom=N", text);
                        return -EINVAL;
                }
                if (slo->oom_given) {
                        snprintf(err, errlen, "--slo: oom= given more than once");
                        return -EINVAL;
                }
                slo->oom_given = true;
                slo->oom_max = v;
                return 0;
        }
        snprintf(err, errlen, "--slo: \"%s\": expected short=P%% or oom=N", text);
        return -EINVAL;
}

bool sweep_meets(const struct sweep_slo *slo, const struct sweep_figures *f)
{
        if (!sweep_point_ok(f) || f->started < f->vms)
                return false;
        if (slo->short_given &&
            f->short_seconds > slo->short_share * (f->vm_seconds > 0 ? f->vm_seconds : 0))
                return false;
        return !slo->oom_given || f->oom_kills <= slo->oom_max;
}

/* One run, as a worker does it. */
static struct sweep_figures run_one(const struct config *cfg, const char *policy, uint64_t memory)
{
        struct simrun_options opt = {.policy = policy, .memory_override = memory};
        struct simrun_result res;
        struct sweep_figures f = {0};
        char err[256];

        f.status = simrun(cfg, &opt, &res, err, sizeof(err));
        if (f.status < 0) {
                char size[32];
                fprintf(stderr, "dynmem-sim: %s at %s: %s\n", policy,
                        size_format(memory, size, sizeof(size)), err);
                return f;
        }
        f.vms = res.vms;
        f.started = res.started;
        f.oom_kills = res.oom_kills;
        f.resize_ops = res.resize_ops;
        f.budget_violations = res.budget_violations;
        f.vm_seconds = res.vm_seconds;
        f.short_seconds = res.short_seconds;
        f.host_mean_bytes = res.host_mean_bytes;
        f.reaction_p95_s = res.reaction_p95_s;
        f.policy_failures = res.policy_failures;
        f.policy_failed = res.policy_failed;
        if (f.policy_failed) {
                char size[32];
                fprintf(stderr,
                        "dynmem-sim: %s at %s: the policy never answered (%llu failures): "
                        "the run failed\n",
                        policy, size_format(memory, size, sizeof(size)),
                        (unsigned long long)f.policy_failures);
        }
        simrun_result_free(&res);
        return f;
}

struct job_result {
        uint32_t job;
        struct sweep_figures figures;
};

_Static_assert(sizeof(struct job_result) <= PIPE_BUF, "a result is written atomically");

/* A worker: job numbers in, results out, until the job pipe is empty and closed. */
static _Noreturn void worker(const struct config *cfg, const struct sweep_result *r, int jobs_fd,
                             int results_fd)
{
        uint32_t job;

        /* SIGPIPE stays ignored, as in dynmem-sim: an exec: policy may close its end. */
        while (read(jobs_fd, &job, sizeof(job)) == (ssize_t)sizeof(job)) {
                struct job_result out = {.job = job};
                out.figures =
                    run_one(cfg, r->policies[job % r->n_policies], r->sizes[job / r->n_policies]);
                if (write(results_fd, &out, sizeof(out)) != (ssize_t)sizeof(out))
                        _exit(1);
        }
        fflush(stderr);
        _exit(0);
}

static unsigned worker_count(unsigned jobs, size_t n_jobs)
{
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        if (jobs == 0)
                jobs = cpus > 0 ? (unsigned)cpus : 1;
        if (jobs > JOBS_MAX)
                jobs = JOBS_MAX;
        return jobs > n_jobs ? (unsigned)n_jobs : jobs;
}

/* Fork the workers, hand out every job, gather every result. */
static int run_workers(const struct config *cfg, struct sweep_result *r, size_t n_jobs, char *err,
                       size_t errlen)
{
        int jobs_pipe[2], results_pipe[2];
        pid_t pids[JOBS_MAX];
        unsigned started = 0;
        size_t got = 0;

        if (pipe2(jobs_pipe, O_CLOEXEC) < 0 || pipe2(results_pipe, O_CLOEXEC) < 0) {
                snprintf(err, errlen, "pipe: %s", strerror(errno));
                return -errno;
        }
        /* Every job number fits in the pipe at once (4 bytes each, 8,000 at most). */
        for (uint32_t j = 0; j < n_jobs; j++)
                if (write(jobs_pipe[1], &j, sizeof(j)) != (ssize_t)sizeof(j))
                        break;
        close(jobs_pipe[1]);
        fflush(NULL);
        for (; started < r->jobs; started++) {
                pid_t pid = fork();
                if (pid < 0)
                        break;
                if (pid == 0) {
                        close(results_pipe[0]);
                        worker(cfg, r, jobs_pipe[0], results_pipe[1]);
                }
                pids[started] = pid;
        }
        close(jobs_pipe[0]);
        close(results_pipe[1]);
        struct job_result in;
        while (read(results_pipe[0], &in, sizeof(in)) == (ssize_t)sizeof(in))
                if (in.job < n_jobs) {
                        r->figures[in.job] = in.figures;
                        got++;
                }
        close(results_pipe[0]);
        for (unsigned i = 0; i < started; i++)
                waitpid(pids[i], NULL, 0);
        if (started == 0 || got < n_jobs) {
                snprintf(err, errlen, "%zu of %zu run%s did not report (%u worker%s)", n_jobs - got,
                         n_jobs, n_jobs == 1 ? "" : "s", started, started == 1 ? "" : "s");
                return -ECHILD;
        }
        return 0;
}

static void find_smallest(struct sweep_result *r)
{
        for (size_t p = 0; p < r->n_policies; p++) {
                r->smallest[p] = 0;
                for (size_t s = r->n_sizes; s-- > 0;) {
                        if (!sweep_meets(&r->slo, sweep_at(r, s, p)))
                                break;
                        r->smallest[p] = r->sizes[s];
                }
        }
}

int sweep_run(const struct config *cfg, const char *const *policies, size_t n_policies,
              const struct sweep_range *range, const struct sweep_slo *slo, bool slo_given,
              unsigned jobs, struct sweep_result *r, char *err, size_t errlen)
{
        struct timespec t0, t1;

        *r = (struct sweep_result){.n_policies = n_policies, .slo = *slo, .slo_given = slo_given};
        if (n_policies == 0 || n_policies > SWEEP_POLICIES_MAX) {
                snprintf(err, errlen, "--sweep takes 1 to %d policies", SWEEP_POLICIES_MAX);
                return -EINVAL;
        }
        for (size_t p = 0; p < n_policies; p++)
                r->policies[p] = policies[p];
        for (uint64_t m = range->from; m <= range->to && r->n_sizes < SWEEP_POINTS_MAX;
             m += range->step) {
                r->sizes[r->n_sizes++] = m;
                if (m > UINT64_MAX - range->step)
                        break;
        }
        size_t n_jobs = r->n_sizes * n_policies;
        r->figures = calloc(n_jobs, sizeof(*r->figures));
        if (!r->figures) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        for (size_t j = 0; j < n_jobs; j++)
                r->figures[j].status = -ECHILD;
        r->jobs = worker_count(jobs, n_jobs);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = run_workers(cfg, r, n_jobs, err, errlen);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        r->wall_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (rc == 0)
                find_smallest(r);
        return rc;
}

void sweep_result_free(struct sweep_result *r)
{
        if (r)
                free(r->figures);
}
