/*
 * migrate: `dynmem migrate NAME DEST_URI`, the live migration of a libvirt
 * domain to another host, through libvirt (docs/migration.md). dynmem adds
 * no transport: this is virDomainMigrateToURI3, peer to peer (the source's
 * libvirtd connects to DEST_URI itself, as `virsh migrate --live --p2p`
 * does), with progress printed once a second and, at the end, what the
 * migration cost as libvirt measured it (time, bytes sent, downtime).
 *
 * dynmemd on either host follows the migration through libvirt (neither
 * resizes the domain while it moves) and the destination's admission hook
 * may refuse it, in which case libvirt's error, printed here, carries
 * dynmemd's reason. One word goes to the source's dynmemd first, when the
 * source is this host (a URI with "://" and no host; an alias may name any
 * host, so it is not asked): the control command "carry", which has what its
 * policy learned of the domain written into the live metadata now (the
 * relief rule's write, daemon/carry.c), so that the destination gets it
 * fresh rather than as written up to 5 minutes ago. Whatever stops that
 * (no dynmemd, an older one, the domain not balanced there, the write
 * failing or taking over CARRY_WAIT_MS), the migration goes ahead, with one
 * line on stderr saying so. --no-carry leaves it out (the relief rule,
 * which wrote it just before).
 *
 * Threads: the migration call blocks until the migration ends, so it runs
 * in a thread of its own; the main thread polls the job's progress on the
 * same connection (libvirt's client is thread-safe), and libvirt's default
 * event loop runs in a third, for the job-completed event whose statistics
 * (downtime among them) outlive the domain on the source.
 */
#include "commands.h"

#include <stdio.h>

#include "dynmem-config.h"

#if DYNMEM_HAVE_LIBVIRT

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "mono.h"
#include "output.h"
#include "units.h"

#define PROGRESS_MS 1000 /* a progress line this often */
#define POLL_MS     100  /* the main thread looks this often whether the migration ended */
/* dynmemd waits 5 s at most for the write and answers as soon as it is over */
#define CARRY_ASK_MS 10000

struct migration {
        virConnectPtr conn;
        virDomainPtr dom;
        const char *dest;
        virTypedParameterPtr params;
        int nparams;
        unsigned flags;
        bool carried;     /* dynmemd wrote what it learned of the domain just before */
        atomic_bool done; /* the migration call returned */
        int result;       /* its return value */
        char error[4096]; /* libvirt's error when it failed (a hook's message is long) */

        /* the job-completed event (event thread) */
        pthread_mutex_t lock;
        virTypedParameterPtr final;
        int nfinal;
        atomic_bool events_quit;
};

static void quiet(void *userdata, virErrorPtr e)
{
        (void)userdata, (void)e;
}

static const char *last_error(void)
{
        const char *m = virGetLastErrorMessage();

        return m && *m ? m : "unknown libvirt error";
}

static void *migrate_thread(void *arg)
{
        struct migration *m = arg;

        m->result =
            virDomainMigrateToURI3(m->dom, m->dest, m->params, (unsigned)m->nparams, m->flags);
        if (m->result < 0)
                snprintf(m->error, sizeof(m->error), "%s", last_error());
        atomic_store(&m->done, true);
        return NULL;
}

/* ---- the job-completed event ---- */

static int on_job_completed(virConnectPtr conn, virDomainPtr dom, virTypedParameterPtr params,
                            int nparams, void *opaque)
{
        struct migration *m = opaque;
        virTypedParameterPtr copy = NULL;
        int n = 0, max = 0;

        (void)conn, (void)dom;
        for (int i = 0; i < nparams; i++) {
                const virTypedParameter *p = &params[i];
                if (p->type == VIR_TYPED_PARAM_ULLONG)
                        virTypedParamsAddULLong(&copy, &n, &max, p->field, p->value.ul);
                else if (p->type == VIR_TYPED_PARAM_INT)
                        virTypedParamsAddInt(&copy, &n, &max, p->field, p->value.i);
        }
        pthread_mutex_lock(&m->lock);
        virTypedParamsFree(m->final, m->nfinal);
        m->final = copy;
        m->nfinal = n;
        pthread_mutex_unlock(&m->lock);
        return 0;
}

static void wake_loop(int timer, void *opaque)
{
        (void)opaque;
        virEventRemoveTimeout(timer);
}

static void *event_thread(void *arg)
{
        struct migration *m = arg;

        while (!atomic_load(&m->events_quit))
                if (virEventRunDefaultImpl() < 0)
                        break;
        return NULL;
}

/* ---- what libvirt says of the job ---- */

static bool param(virTypedParameterPtr p, int n, const char *name, unsigned long long *ret)
{
        return virTypedParamsGetULLong(p, n, name, ret) == 1;
}

static void print_progress(struct migration *m, const char *name, uint64_t t0)
{
        virTypedParameterPtr p = NULL;
        unsigned long long total = 0, done = 0, left = 0;
        int type = 0, n = 0;
        char a[32], b[32];

        if (virDomainGetJobStats(m->dom, &type, &p, &n, 0) < 0)
                return; /* over already, or between phases: the next line will say */
        if (type != VIR_DOMAIN_JOB_NONE && param(p, n, VIR_DOMAIN_JOB_DATA_TOTAL, &total) &&
            param(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED, &done) &&
            param(p, n, VIR_DOMAIN_JOB_DATA_REMAINING, &left))
                printf("%s: %3.0f %%: %s sent, %s left, %.1f s\n", name,
                       /* libvirt's figures as QEMU gave them: never more left than in all */
                       total && left <= total ? 100.0 * (double)(total - left) / (double)total
                                              : 0.0,
                       size_format(done, a, sizeof(a)), size_format(left, b, sizeof(b)),
                       (double)(mono_ms() - t0) / 1000.0);
        else
                printf("%s: preparing, %.1f s\n", name, (double)(mono_ms() - t0) / 1000.0);
        fflush(stdout);
        virTypedParamsFree(p, n);
}

static json_t *stats_json(virTypedParameterPtr p, int n)
{
        json_t *o = json_object();

        for (int i = 0; o && i < n; i++) {
                json_int_t v = p[i].type == VIR_TYPED_PARAM_ULLONG ? (json_int_t)p[i].value.ul
                                                                   : (json_int_t)p[i].value.i;
                if (json_object_set_new(o, p[i].field, json_integer(v)) < 0) {
                        json_decref(o);
                        o = NULL;
                }
        }
        return o;
}

static void print_result(struct migration *m, const char *name, uint64_t elapsed_ms, bool json)
{
        unsigned long long sent = 0, downtime = 0, normal = 0, zero = 0;
        char a[32];

        pthread_mutex_lock(&m->lock);
        if (json) {
                json_t *o =
                    json_pack("{s:s, s:s, s:b, s:I, s:o, s:b}", "domain", name, "destination",
                              m->dest, "ok", m->result == 0, "elapsed_ms", (json_int_t)elapsed_ms,
                              "stats", m->final ? stats_json(m->final, m->nfinal) : json_null(),
                              "learned_fresh", m->carried);
                if (o && m->result < 0)
                        json_object_set_new(o, "error", json_string(m->error));
                if (o)
                        output_json(stdout, o);
                json_decref(o);
        } else if (m->result == 0) {
                bool known =
                    m->final && param(m->final, m->nfinal, VIR_DOMAIN_JOB_DATA_PROCESSED, &sent);
                param(m->final, m->nfinal, VIR_DOMAIN_JOB_DOWNTIME, &downtime);
                param(m->final, m->nfinal, VIR_DOMAIN_JOB_MEMORY_NORMAL, &normal);
                param(m->final, m->nfinal, VIR_DOMAIN_JOB_MEMORY_CONSTANT, &zero);
                printf("%s: migrated to %s in %.1f s", name, m->dest, (double)elapsed_ms / 1000.0);
                if (known)
                        printf(": %s sent (%llu pages, %llu zero pages), downtime %llu ms",
                               size_format(sent, a, sizeof(a)), normal, zero, downtime);
                printf("\n");
        }
        pthread_mutex_unlock(&m->lock);
}

/* ---- the command ---- */

static const char *source_uri(const struct cli *cli)
{
        return cli->connect ? cli->connect : "qemu:///system";
}

static int open_source(struct cli *cli, struct migration *m, const char *name)
{
        const char *uri = source_uri(cli);

        virSetErrorFunc(NULL, quiet);
        if (virEventRegisterDefaultImpl() < 0) {
                fprintf(stderr, "dynmem: libvirt's event loop: %s\n", last_error());
                return -1;
        }
        if (!(m->conn = virConnectOpen(uri))) {
                fprintf(stderr, "dynmem: libvirt at %s: %s\n", uri, last_error());
                return -1;
        }
        if (!(m->dom = virDomainLookupByName(m->conn, name))) {
                fprintf(stderr, "dynmem: %s: %s\n", name, last_error());
                return -1;
        }
        if (virDomainIsActive(m->dom) != 1) {
                fprintf(stderr, "dynmem: %s: not running (live migration moves a running domain)\n",
                        name);
                return -1;
        }
        return 0;
}

static int set_params(struct cli *cli, struct migration *m)
{
        int max = 0;

        m->flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;
        if (cli->persistent)
                m->flags |= VIR_MIGRATE_PERSIST_DEST;
        if (cli->undefine_source)
                m->flags |= VIR_MIGRATE_UNDEFINE_SOURCE;
        if (cli->migrate_uri &&
            virTypedParamsAddString(&m->params, &m->nparams, &max, VIR_MIGRATE_PARAM_URI,
                                    cli->migrate_uri) < 0)
                return -1;
        if (cli->bandwidth_mib &&
            virTypedParamsAddULLong(&m->params, &m->nparams, &max, VIR_MIGRATE_PARAM_BANDWIDTH,
                                    cli->bandwidth_mib) < 0)
                return -1;
        return 0;
}

/* ---- what the domain carries of what dynmemd learned ---- */

/*
 * A URI without a host ("qemu:///system", "test:///default"): libvirt on
 * this host. One that names a host counts as another host's, even
 * "qemu+ssh://localhost/system"; one without "://" is an alias from
 * libvirt.conf, which may name any host: not known to be this one.
 */
enum uri_where { URI_HERE, URI_HOST, URI_ALIAS };

static enum uri_where uri_where(const char *uri)
{
        const char *p = strstr(uri, "://");

        if (!p)
                return URI_ALIAS;
        return p[3] == '/' ? URI_HERE : URI_HOST;
}

/*
 * Ask this host's dynmemd to write what it learned of the domain into it now
 * (the control command "carry"): true once written. Else one line on stderr
 * says why it goes as last written, and the migration goes ahead all the same.
 */
static bool ask_carry(const struct cli *cli, const char *name, const char *uri)
{
        struct cli ask = {.socket = cli->socket, .timeout_ms = CARRY_ASK_MS};
        json_t *reply = NULL;
        bool answered;
        char err[CONTROL_ERROR_MAX + 256], why[CONTROL_ERROR_MAX + 300];
        const char *own = err;
        size_t n = strlen(name);
        int r;

        if (uri_where(uri) == URI_HOST) {
                snprintf(why, sizeof(why),
                         "the source, %s, is another host: its dynmemd is not asked to write it "
                         "fresh",
                         uri);
        } else if (uri_where(uri) == URI_ALIAS) {
                snprintf(why, sizeof(why),
                         "the source, %s, is an alias (no \"://\"), which may name another host: "
                         "no dynmemd is asked to write it fresh",
                         uri);
        } else {
                ask.req.command = CONTROL_CARRY;
                snprintf(ask.req.name, sizeof(ask.req.name), "%s", name);
                r = client_call_answered(&ask, &reply, &answered, err, sizeof(err));
                json_decref(reply);
                if (r == 0)
                        return true;
                if (strncmp(err, name, n) == 0 && strncmp(err + n, ": ", 2) == 0)
                        own = err + n + 2; /* dynmemd's sentence names the domain: once is enough */
                if (answered && r == -ENODATA) {
                        /* nothing was ever written: no old state goes along either */
                        fprintf(stderr,
                                "dynmem: %s: nothing learned of it yet: nothing goes along: "
                                "%s\n",
                                name, own);
                        return false;
                }
                if (!answered && (r == -ENOENT || r == -ECONNREFUSED))
                        snprintf(why, sizeof(why), "no dynmemd is listening on %s", cli->socket);
                else if (r == -EOPNOTSUPP && strncmp(err, "unknown command", 15) == 0)
                        snprintf(why, sizeof(why),
                                 "dynmemd on %s is older than this dynmem and cannot be asked "
                                 "to write it fresh",
                                 cli->socket);
                else
                        snprintf(why, sizeof(why), "%s", own);
        }
        fprintf(stderr,
                "dynmem: %s: what dynmemd learned of it goes along as last written, up to 5 "
                "minutes ago: %s\n",
                name, why);
        return false;
}

/* Wait for the migration thread, a progress line a second; abort it after the --timeout. */
static void follow(struct cli *cli, struct migration *m, const char *name, uint64_t t0)
{
        uint64_t next = t0 + PROGRESS_MS;
        bool aborted = false;

        while (!atomic_load(&m->done)) {
                struct timespec ts = {0, POLL_MS * 1000000L};
                nanosleep(&ts, NULL);
                uint64_t now = mono_ms();
                if (cli->timeout_given && !aborted && now - t0 >= cli->timeout_ms) {
                        fprintf(stderr, "dynmem: %s: still migrating after %.0f s: aborting\n",
                                name, (double)cli->timeout_ms / 1000.0);
                        if (virDomainAbortJob(m->dom) < 0)
                                fprintf(stderr, "dynmem: %s: libvirt cannot abort it: %s\n", name,
                                        last_error());
                        aborted = true;
                }
                if (!cli->json && now >= next && !atomic_load(&m->done)) {
                        print_progress(m, name, t0);
                        next = now + PROGRESS_MS;
                }
        }
}

int commands_migrate(struct cli *cli)
{
        struct migration m = {.dest = cli->operand, .lock = PTHREAD_MUTEX_INITIALIZER};
        pthread_t mig, ev;
        bool ev_started = false;
        int cb = -1, r = CLI_FAILED;
        uint64_t t0;

        if (open_source(cli, &m, cli->name) < 0 || set_params(cli, &m) < 0)
                goto out;
        if (!cli->no_carry)
                m.carried = ask_carry(cli, cli->name, source_uri(cli));
        if (m.carried && !cli->json)
                printf("%s: dynmemd wrote what it learned of it into it, fresh\n", cli->name);
        cb =
            virConnectDomainEventRegisterAny(m.conn, m.dom, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
                                             VIR_DOMAIN_EVENT_CALLBACK(on_job_completed), &m, NULL);
        ev_started = pthread_create(&ev, NULL, event_thread, &m) == 0;
        if (!cli->json)
                printf("%s: migrating to %s (live, peer to peer)\n", cli->name, m.dest);
        fflush(stdout);
        t0 = mono_ms();
        if (pthread_create(&mig, NULL, migrate_thread, &m) != 0) {
                fprintf(stderr, "dynmem: %s: cannot start a thread: %s\n", cli->name,
                        strerror(errno));
                goto out;
        }
        follow(cli, &m, cli->name, t0);
        pthread_join(mig, NULL);
        uint64_t elapsed = mono_ms() - t0;
        /* the event follows the call's return closely: give it a moment */
        for (int i = 0; i < 20 && m.result == 0 && cb >= 0; i++) {
                pthread_mutex_lock(&m.lock);
                bool have = m.final != NULL;
                pthread_mutex_unlock(&m.lock);
                if (have)
                        break;
                nanosleep(&(struct timespec){0, POLL_MS * 1000000L}, NULL);
        }
        print_result(&m, cli->name, elapsed, cli->json);
        if (m.result < 0)
                fprintf(stderr, "dynmem: %s: migration to %s failed: %s\n", cli->name, m.dest,
                        m.error);
        r = m.result == 0 ? CLI_OK : CLI_FAILED;
out:
        if (cb >= 0)
                virConnectDomainEventDeregisterAny(m.conn, cb);
        if (ev_started) {
                atomic_store(&m.events_quit, true);
                virEventAddTimeout(0, wake_loop, NULL, NULL);
                pthread_join(ev, NULL);
        }
        virTypedParamsFree(m.params, m.nparams);
        virTypedParamsFree(m.final, m.nfinal);
        if (m.dom)
                virDomainFree(m.dom);
        if (m.conn)
                virConnectClose(m.conn);
        return r;
}

#else

int commands_migrate(struct cli *cli)
{
        (void)cli;
        fprintf(stderr, "dynmem: migrate: this dynmem was built without libvirt\n");
        return CLI_FAILED;
}

#endif
