/*
 * hook: `dynmem libvirt-hook DOMAIN OPERATION SUB-OPERATION EXTRA`, what
 * libvirt's qemu hook runs (installed as /etc/libvirt/hooks/qemu.d/dynmem,
 * docs/libvirt.md). libvirt runs it for every domain operation with the
 * domain's XML on stdin; only "prepare" (a domain is about to start)
 * matters: dynmemd is asked whether the host has room for the domain's
 * startup memory (the control command admit), which it frees from
 * lower-weight VMs if it can. Exit 0 lets the start go on, 1 refuses it
 * with dynmemd's reason on stderr (libvirt shows it to whoever started it).
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

/* libvirt writes the domain's XML to stdin: take it, so that its write never blocks. */
static void drain_stdin(void)
{
        char buf[65536];
        size_t total = 0;
        ssize_t n;

        while (total < HOOK_STDIN_MAX && (n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
                total += (size_t)n;
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

int commands_libvirt_hook(struct cli *cli, int argc, char **argv)
{
        json_t *reply = NULL;
        bool answered;
        char err[CONTROL_ERROR_MAX + 256];
        int r;

        drain_stdin();
        if (argc < 2 || strcmp(argv[1], "prepare") != 0)
                return CLI_OK; /* only starts are admitted */
        if (!config_name_valid(argv[0])) {
                say(LOG_NOTICE, "%.80s: not a name dynmem uses; it starts unchecked", argv[0]);
                return CLI_OK;
        }
        if (started_by_dynmemd(cli->socket, argv[0]))
                return CLI_OK;
        cli->req.command = CONTROL_ADMIT;
        snprintf(cli->req.name, sizeof(cli->req.name), "%s", argv[0]);
        if (cli->timeout_ms > HOOK_TIMEOUT_MS)
                cli->timeout_ms = HOOK_TIMEOUT_MS;
        r = client_call_answered(cli, &reply, &answered, err, sizeof(err));
        if (r == 0) {
                json_decref(reply);
                return CLI_OK;
        }
        if (!answered) {
                say(LOG_WARNING, "%s: starts without admission: %s", argv[0], err);
                return CLI_OK;
        }
        fprintf(stderr, "dynmem: %s\n", err);
        return CLI_FAILED;
}
