/*
 * dynmemd: the dynmem host daemon. Reads the configuration, runs the
 * balancing cycle over the configured backend, and serves the control
 * socket the dynmem command talks to. See dynmemd(8).
 *
 * Exit status: 0 stopped cleanly (or -n: the configuration is good),
 * 1 a failure while running or starting, 2 bad usage or a bad configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "dconfig.h"
#include "dynmem-config.h"
#include "log.h"

#define MMAP_THRESHOLD (8 * 1024 * 1024)
#define TRIM_THRESHOLD (16 * 1024 * 1024)

struct options {
        const char *config;
        const char *group;
        bool foreground;
        bool check;
        bool verbose;
};

static void usage(FILE *out)
{
        fputs("Usage: dynmemd [-f FILE] [-d] [-n] [-v] [-g GROUP]\n"
              "\n"
              "The dynmem host daemon: gives each VM the memory its demand calls for, within\n"
              "its minimum and maximum, and serves the dynmem command.\n"
              "\n"
              "  -f, --config FILE  configuration file (default " DCONFIG_PATH_DEFAULT ")\n"
              "  -d, --foreground   stay in the foreground and log to stderr\n"
              "  -n, --check        check the configuration and exit (0 good, 2 bad)\n"
              "  -v, --verbose      log every memory change too\n"
              "  -g, --group GROUP  group whose members may read through the control socket\n"
              "                     (default " DAEMON_GROUP_DEFAULT ")\n"
              "  -h, --help         show this help\n"
              "  -V, --version      show the version\n"
              "\n"
              "SIGHUP reloads the configuration; SIGTERM stops. See dynmemd(8), dynmem.conf(5).\n",
              out);
}

static int parse_options(int argc, char **argv, struct options *opt)
{
        static const struct option longopts[] = {
            {"config", required_argument, NULL, 'f'}, {"foreground", no_argument, NULL, 'd'},
            {"check", no_argument, NULL, 'n'},        {"verbose", no_argument, NULL, 'v'},
            {"group", required_argument, NULL, 'g'},  {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
        };
        int c;

        *opt = (struct options){.config = DCONFIG_PATH_DEFAULT};
        while ((c = getopt_long(argc, argv, "f:dnvg:hV", longopts, NULL)) != -1) {
                switch (c) {
                case 'f':
                        if (!optarg[0]) {
                                /* An unset variable in a script: not the default file. */
                                fprintf(stderr, "dynmemd: -f/--config needs a file\n");
                                usage(stderr);
                                return -EINVAL;
                        }
                        opt->config = optarg;
                        break;
                case 'd':
                        opt->foreground = true;
                        break;
                case 'n':
                        opt->check = true;
                        break;
                case 'v':
                        opt->verbose = true;
                        break;
                case 'g':
                        opt->group = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                case 'V':
                        printf("dynmemd %s\n", DYNMEM_VERSION);
                        exit(0);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind != argc) {
                fprintf(stderr, "dynmemd: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return -EINVAL;
        }
        return 0;
}

static int check_config(const char *path, const char *group)
{
        struct config_diag diag = {0}, warnings = {0};
        char more[64];
        char summary[512] = "";
        int r = dconfig_check_file(path, group, &diag, &warnings, summary, sizeof(summary));

        for (size_t i = 0; i < diag.count; i++)
                fprintf(stderr, "%s\n", diag.messages[i]);
        if (config_diag_more(&diag, "problem", more, sizeof(more)))
                fprintf(stderr, "%s\n", more);
        /* After the errors, less those an error at their line already explains. */
        for (size_t i = 0; i < warnings.count; i++)
                if (!config_diag_explains(&diag, path, warnings.messages[i]))
                        fprintf(stderr, "%s\n", warnings.messages[i]);
        if (config_diag_more(&warnings, "warning", more, sizeof(more)))
                fprintf(stderr, "%s\n", more);
        config_diag_free(&diag);
        config_diag_free(&warnings);
        if (r < 0)
                return 2;
        printf("%s\n", summary);
        return 0;
}

/*
 * Fork into the background. The parent waits until the child is serving
 * (it writes one byte to *ret_ready) and exits 0, or exits with the child's
 * status when set-up failed; the child returns 0 with the pipe in *ret_ready.
 */
static int detach(int *ret_ready)
{
        int fds[2], status = 1;
        char byte;
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
                fprintf(stderr, "dynmemd: cannot go to the background: %s\n", strerror(errno));
                return -errno;
        }
        if (pid > 0) {
                close(fds[1]);
                if (read(fds[0], &byte, 1) == 1)
                        _exit(0);
                if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
                        _exit(WEXITSTATUS(status));
                _exit(1);
        }
        close(fds[0]);
        setsid();
        *ret_ready = fds[1];
        return 0;
}

/* Serving now: log to syslog, leave the terminal, release the parent. */
static void detached(int ready)
{
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);

        log_setup("dynmemd", LOG_TARGET_SYSLOG, LOG_INFO);
        if (null >= 0) {
                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
                close(null);
        }
        if (chdir("/") < 0) {
                /* nothing depends on the working directory any more */
        }
        (void)!write(ready, "R", 1);
        close(ready);
}

int main(int argc, char **argv)
{
        struct daemon d;
        struct options opt;
        char config[PATH_MAX], err[256];
        int ready = -1, r;

        if (parse_options(argc, argv, &opt) < 0)
                return 2;
        signal(SIGPIPE, SIG_IGN);
        /*
         * Replies to list are large and short-lived: keep them on the heap and keep
         * the heap, instead of mapping and faulting in fresh pages for every one.
         */
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        if (realpath(opt.config, config)) /* traces are found relative to it after chdir */
                opt.config = config;
        if (opt.check)
                return check_config(opt.config, opt.group);
        if (dconfig_check_group(opt.group, err, sizeof(err)) < 0) {
                fprintf(stderr, "dynmemd: %s\n", err);
                return 2;
        }
        log_setup("dynmemd", LOG_TARGET_STDERR, opt.verbose ? LOG_DEBUG : LOG_INFO);
        if (!opt.foreground && detach(&ready) < 0)
                return 1;
        r = daemon_init(&d,
                        &(struct daemon_options){.config_path = opt.config, .group = opt.group});
        if (r < 0) {
                daemon_fini(&d);
                return r == -EINVAL ? 2 : 1;
        }
        if (ready >= 0)
                detached(ready);
        daemon_run(&d);
        daemon_fini(&d);
        log_msg(LOG_INFO, "stopped");
        return 0;
}
