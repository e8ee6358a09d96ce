/*
 * hook: `dynmem libvirt-hook DOMAIN OPERATION SUB-OPERATION EXTRA`, what
 * libvirt's qemu hook runs (installed as /etc/libvirt/hooks/qemu.d/dynmem,
 * docs/libvirt.md). libvirt runs it for every domain operation with the
 * domain's XML on stdin; two matter:
 *
 *   - "prepare" (a domain is about to start): dynmemd is asked whether the
 *     host has room for the domain's startup memory (the control command
 *     admit), which it frees from lower-weight VMs if it can;
 *   - "migrate" (on the destination of a live migration, before libvirt
 *     creates the arriving domain; docs/migration.md): the domain's XML is
 *     read (libvirt_xml, every number range-checked) for what it holds on
 *     the source (<currentMemory>) and its settings (dynmem's metadata),
 *     and dynmemd is asked to admit it for that much, shrinking only VMs of
 *     lower weight. Its stdout stays empty: libvirt would take anything
 *     printed there as a new domain XML.
 *
 * Exit 0 lets the start or migration go on, 1 refuses it with dynmemd's
 * reason on stderr (libvirt shows it to whoever started or migrated it).
 *
 * It never keeps a start waiting longer than HOOK_TIMEOUT_MS, and never
 * calls back into libvirt (libvirt forbids it). When dynmemd cannot be
 * reached (not running, its socket gone, no answer in time) the start goes
 * ahead unchecked and that is logged (syslog, and stderr for libvirt's log):
 * a dynmemd that is down must not take the host's VMs down with it.
 * When dynmemd itself is making the start (dynmem start), it noted so in
 * RUN_DIR/starting/DOMAIN (lib/backend.h): it admitted the start already,
 * and is blocked in that very libvirt call, so it is not asked.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "client.h"
#include "commands.h"
#include "dynmem-config.h"
#if DYNMEM_HAVE_LIBVIRT
#include "libvirt_xml.h"
#endif

#define HOOK_TIMEOUT_MS (30 * 1000) /* dynmemd waits 20 s at most for memory to be freed */
#define HOOK_STDIN_MAX  (64u * 1024 * 1024)

static void say(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(int priority, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, "dynmem: %s\n", msg);
        openlog("dynmem-libvirt-hook", LOG_PID, LOG_DAEMON);
        syslog(priority, "%s", msg);
        closelog();
}

/*
 * libvirt writes the domain's XML to stdin: take it all, so that its write
 * never blocks; keep up to `keep` bytes of it (a NUL-terminated copy in
 * *ret, *ret_len bytes, NULL when keep is 0, it was longer, or no memory).
 */
static void read_stdin(size_t keep, char **ret, size_t *ret_len)
{
        char buf[65536], *text = NULL;
        size_t total = 0;
        ssize_t n;

        while (total < HOOK_STDIN_MAX && (n = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
                if (keep && total + (size_t)n <= keep) {
                        char *grown = realloc(text, total + (size_t)n + 1);
                        if (grown)
                                memcpy(grown + total, buf, (size_t)n);
                        text = grown;
                }
                total += (size_t)n;
        }
        if (text && total > keep) {
                free(text);
                text = NULL;
        }
        if (text)
                text[total] = '\0';
        if (ret) {
                *ret = text;
                *ret_len = text ? total : 0;
        } else {
                free(text);
        }
}

static void drain_stdin(void)
{
        read_stdin(0, NULL, NULL);
}

/* dynmemd noted that it is starting this domain itself, and it is still running. */
static bool started_by_dynmemd(const char *socket_path, const char *name)
{
        char copy[PATH_MAX], path[PATH_MAX + 64], text[32] = "";
        struct stat st;
        FILE *f;
        int pid = 0;

        snprintf(copy, sizeof(copy), "%s", socket_path);
        snprintf(path, sizeof(path), "%s/%s/%s", dirname(copy), BACKEND_STARTING_DIR, name);
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0)
                return false;
        if ((uint64_t)(time(NULL) - st.st_mtime) * 1000 > BACKEND_STARTING_MAX_MS)
                return false;
        if (!(f = fopen(path, "r")))
                return false;
        if (fgets(text, sizeof(text), f))
                pid = atoi(text);
        fclose(f);
        return pid > 0 && kill(pid, 0) == 0;
}

/* Ask dynmemd (the request is filled); 0 go on, 1 refused (said on stderr). */
static int ask(struct cli *cli, const char *name, const char *what)
{
        json_t *reply = NULL;
        bool answered;
        char err[CONTROL_ERROR_MAX + 256];
        int r;

        cli->req.command = CONTROL_ADMIT;
        snprintf(cli->req.name, sizeof(cli->req.name), "%s", name);
        if (cli->timeout_ms > HOOK_TIMEOUT_MS)
                cli->timeout_ms = HOOK_TIMEOUT_MS;
        r = client_call_answered(cli, &reply, &answered, err, sizeof(err));
        if (r == 0) {
                json_decref(reply);
                return CLI_OK;
        }
        if (!answered) {
                say(LOG_WARNING, "%s: %s without admission: %s", name, what, err);
                return CLI_OK;
        }
        fprintf(stderr, "dynmem: %s\n", err);
        return CLI_FAILED;
}

#if DYNMEM_HAVE_LIBVIRT
/* The destination of a live migration: admit the arriving domain for what it holds. */
static int hook_migrate(struct cli *cli, const char *name)
{
        struct libvirt_xml_domain x;
        size_t len = 0;
        char *xml = NULL, err[256], why[200];
        int r;

        read_stdin(LIBVIRT_XML_MAX, &xml, &len);
        if (!config_name_valid(name)) {
                free(xml);
                say(LOG_NOTICE, "%.80s: not a name dynmem uses; it arrives unchecked", name);
                return CLI_OK;
        }
        if (!xml)
                snprintf(err, sizeof(err), "too long or out of memory");
        r = xml ? libvirt_xml_parse(xml, len, &x, err, sizeof(err)) : -EINVAL;
        free(xml);
        if (r < 0) {
                say(LOG_WARNING, "%s: arrives without admission: its XML cannot be read: %s", name,
                    err);
                return CLI_OK;
        }
        if (libvirt_xml_settings(&x, &cli->req.settings, why, sizeof(why)) < 0)
                libvirt_xml_static_settings(&x, &cli->req.settings);
        cli->req.given = SETTINGS_ALL;
        cli->req.incoming_bytes = x.current_bytes ? x.current_bytes : x.total_bytes;
        libvirt_xml_domain_free(&x);
        return ask(cli, name, "arrives");
}
#else
static int hook_migrate(struct cli *cli, const char *name)
{
        (void)cli;
        drain_stdin();
        say(LOG_NOTICE, "%s: arrives unchecked (this dynmem was built without libvirt)", name);
        return CLI_OK;
}
#endif

int commands_libvirt_hook(struct cli *cli, int argc, char **argv)
{
        if (argc >= 2 && strcmp(argv[1], "migrate") == 0)
                return hook_migrate(cli, argv[0]);
        drain_stdin();
        if (argc < 2 || strcmp(argv[1], "prepare") != 0)
                return CLI_OK; /* only starts are admitted */
        if (!config_name_valid(argv[0])) {
                say(LOG_NOTICE, "%.80s: not a name dynmem uses; it starts unchecked", argv[0]);
                return CLI_OK;
        }
        if (started_by_dynmemd(cli->socket, argv[0]))
                return CLI_OK;
        return ask(cli, argv[0], "starts");
}
