/*
 * dynmem: the command operators use to see and change dynmem's VMs, a
 * client of dynmemd's control socket. Git-style: `dynmem COMMAND [ARGS]`,
 * one function per command (commands.c). See dynmem(1).
 *
 * Exit status: 0 done, 1 dynmemd refused or could not be reached (or the output
 * could not be written), 2 bad usage (also a value dynmemd refuses as invalid).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "dynmem-config.h"
#include "units.h"

/* Options, and which commands take them. */
enum {
        OPT_COMMON = 1u << 0,   /* --json, --socket, --timeout, --help: every command */
        OPT_FORCE = 1u << 1,    /* stop */
        OPT_SETTINGS = 1u << 2, /* set, create */
        OPT_CREATE = 1u << 3,   /* create: -o KEY=VALUE, --autostart */
        OPT_COUNTERS = 1u << 4, /* counters: --set, --vm, --interval, --count */
        OPT_FOLLOW = 1u << 5,   /* events: --follow */
        OPT_MIGRATE = 1u << 6,  /* migrate: --connect, --migrate-uri, --persistent, ... */
        OPT_SET = 1u << 7,      /* set: --autostart on|off, --reset KEY */
        OPT_LIST = 1u << 8,     /* list: --name */
        OPT_TOP = 1u << 9,      /* before the command: -V, --version */
};

#define OPERAND_COMMAND 3

struct command {
        const char *name;
        int (*run)(struct cli *cli);
        unsigned options;
        unsigned operands; /* 0: none, 1: a VM name, 2: a VM name and DEST_URI (migrate),
                              OPERAND_COMMAND: a command's name, or none (help) */
        const char *summary;
};

static const struct command commands[] = {
    {"list", commands_list, OPT_LIST, 0, "the VMs, their memory and settings"},
    {"show", commands_show, 0, 1, "one VM in detail"},
    {"status", commands_status, 0, 0, "the host: memory, reserve, available, pressure"},
    {"start", commands_start, 0, 1, "start a VM (if the host has room for it)"},
    {"stop", commands_stop, OPT_FORCE, 1, "stop a VM (--force: at once)"},
    {"set", commands_set, OPT_SETTINGS | OPT_SET, 1, "change a VM's settings and autostart"},
    {"create", commands_create, OPT_SETTINGS | OPT_CREATE, 1, "define a new VM"},
    {"delete", commands_delete, 0, 1, "remove a VM made with create"},
    {"counters", commands_counters, OPT_COUNTERS, 0, "the performance counters"},
    {"top", commands_top, 0, 0, "a live view of the VMs by pressure (q quits)"},
    {"events", commands_events, OPT_FOLLOW, 0, "what the balancer did, with reasons"},
    {"enable", commands_enable, OPT_SETTINGS, 1,
     "libvirt: make a shut-off domain dynamic (settings in its XML)"},
    {"disable", commands_disable, 0, 1, "libvirt: make a shut-off domain static again"},
    {"admit", commands_admit, 0, 1, "ask whether a VM may start (waits for room)"},
    {"migrate", commands_migrate, OPT_MIGRATE, 2,
     "libvirt: live-migrate a domain to another host, showing progress"},
    {"libvirt-hook", NULL, 0, 0, "libvirt's qemu hook (DOMAIN OPERATION ...): admission"},
    {"help", NULL, 0, OPERAND_COMMAND, "this usage (help COMMAND: the same as COMMAND --help)"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* getopt values beyond characters; settings_table row i is KEY_SETTING + i. */
enum {
        KEY_AUTOSTART = 256,
        KEY_AUTOSTART_SET,
        KEY_RESET,
        KEY_TIMEOUT,
        KEY_SET,
        KEY_VM,
        KEY_INTERVAL,
        KEY_COUNT,
        KEY_FOLLOW,
        KEY_CONNECT,
        KEY_MIGRATE_URI,
        KEY_PERSISTENT,
        KEY_UNDEFINE_SOURCE,
        KEY_BANDWIDTH,
        KEY_NO_CARRY,
        KEY_NAME,
        KEY_SETTING,
};

static const struct {
        struct option opt;
        unsigned group;
} options[] = {
    {{"json", no_argument, NULL, 'j'}, OPT_COMMON},
    {{"socket", required_argument, NULL, 's'}, OPT_COMMON},
    {{"timeout", required_argument, NULL, KEY_TIMEOUT}, OPT_COMMON},
    {{"help", no_argument, NULL, 'h'}, OPT_COMMON},
    {{"version", no_argument, NULL, 'V'}, OPT_TOP},
    {{"force", no_argument, NULL, 'f'}, OPT_FORCE},
    {{"option", required_argument, NULL, 'o'}, OPT_CREATE},
    {{"autostart", no_argument, NULL, KEY_AUTOSTART}, OPT_CREATE},
    {{"autostart", required_argument, NULL, KEY_AUTOSTART_SET}, OPT_SET},
    {{"reset", required_argument, NULL, KEY_RESET}, OPT_SET},
    {{"set", required_argument, NULL, KEY_SET}, OPT_COUNTERS},
    {{"vm", required_argument, NULL, KEY_VM}, OPT_COUNTERS},
    {{"interval", required_argument, NULL, KEY_INTERVAL}, OPT_COUNTERS},
    {{"count", required_argument, NULL, KEY_COUNT}, OPT_COUNTERS},
    {{"follow", no_argument, NULL, KEY_FOLLOW}, OPT_FOLLOW},
    {{"connect", required_argument, NULL, KEY_CONNECT}, OPT_MIGRATE},
    {{"migrate-uri", required_argument, NULL, KEY_MIGRATE_URI}, OPT_MIGRATE},
    {{"persistent", no_argument, NULL, KEY_PERSISTENT}, OPT_MIGRATE},
    {{"undefinesource", no_argument, NULL, KEY_UNDEFINE_SOURCE}, OPT_MIGRATE},
    {{"bandwidth", required_argument, NULL, KEY_BANDWIDTH}, OPT_MIGRATE},
    {{"no-carry", no_argument, NULL, KEY_NO_CARRY}, OPT_MIGRATE},
    {{"name", no_argument, NULL, KEY_NAME}, OPT_LIST},
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* How an option's value is shown in the usage: on|off, SIZE, PERCENT or 0..10000. */
static const char *setting_metavar(const struct setting_desc *d, char *buf, size_t len)
{
        if (d->type == SETTING_SWITCH)
                return "on|off";
        if (d->type == SETTING_SIZE)
                return "SIZE";
        if (strcmp(d->unit, "%") == 0)
                return "PERCENT";
        snprintf(buf, len, "%llu..%llu", (unsigned long long)d->min, (unsigned long long)d->max);
        return buf;
}

static void usage(FILE *out)
{
        char buf[48];

        fputs("Usage: dynmem [--socket PATH] COMMAND [ARGS] [--json]\n\nCommands:\n", out);
        for (size_t i = 0; i < N_COMMANDS; i++)
                fprintf(out, "  %-12s %-15s %s\n", commands[i].name,
                        commands[i].operands == OPERAND_COMMAND ? "[COMMAND]"
                        : commands[i].operands == 2             ? "NAME DEST_URI"
                        : commands[i].operands == 1             ? "NAME"
                                                                : "",
                        commands[i].summary);
        fputs("\nOptions of set, create and enable (sizes: 512M, 2G, 1.5G):\n", out);
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                fprintf(out, "  --%s %s%s", d->name, setting_metavar(d, buf, sizeof(buf)),
                        i % 4 == 3 || i + 1 == SETTINGS_N ? "\n" : "");
        }
        fputs("Options of create: -o, --option KEY=VALUE (backend keys, e.g. trace=FILE.csv),\n"
              "  --autostart.  Options of set: --autostart on|off (start the VM when dynmemd\n"
              "  starts); --reset KEY[,KEY...] (KEY: a setting above, autostart or all: back\n"
              "  to the configuration file's value).  Option of stop: -f, --force.\n"
              "Options of counters: --set balancer|vm, --vm NAME, --interval DURATION,\n"
              "  --count N (a series, as CSV).  Option of events: --follow.\n"
              "Option of list: --name (the VM names alone, one a line; not with --json).\n"
              "Options of migrate: --connect URI (the source, default qemu:///system),\n"
              "  --migrate-uri URI (QEMU's data), --persistent, --undefinesource,\n"
              "  --bandwidth MIB (MiB/s at most), --timeout DURATION (abort it then),\n"
              "  --no-carry (dynmemd here is not asked first to write what it learned of\n"
              "  the domain into it, fresh, for the destination's dynmemd).\n"
              "Every command: -s, --socket PATH (default $" CONTROL_SOCKET_ENV
              " or " CONTROL_SOCKET_DEFAULT "),\n"
              "  -j, --json, --timeout DURATION (default 2m), -h, --help.\n"
              "dynmem -V, --version: the version.\n"
              "\nSee dynmem(1).\n",
              out);
}

static int fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail_usage(const char *fmt, ...)
{
        va_list ap;

        fputs("dynmem: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (dynmem --help)\n", stderr);
        return -EINVAL;
}

static int add_key(struct control_request *req, const char *arg)
{
        const char *eq = strchr(arg, '=');
        struct config_kv *grown;

        if (!eq || eq == arg || !eq[1])
                return fail_usage("--option: \"%s\" is not KEY=VALUE", arg);
        /* The request carries one value per key: a second would replace the first unseen. */
        for (size_t i = 0; i < req->n_keys; i++)
                if (strlen(req->keys[i].key) == (size_t)(eq - arg) &&
                    strncmp(req->keys[i].key, arg, (size_t)(eq - arg)) == 0)
                        return fail_usage("--option: %s given twice", req->keys[i].key);
        if (req->n_keys >= CONTROL_KEYS_MAX)
                return fail_usage("--option: more than %d keys", CONTROL_KEYS_MAX);
        grown = realloc(req->keys, (req->n_keys + 1) * sizeof(*grown));
        if (!grown)
                return -ENOMEM;
        req->keys = grown;
        grown[req->n_keys] =
            (struct config_kv){.key = strndup(arg, (size_t)(eq - arg)), .value = strdup(eq + 1)};
        if (!grown[req->n_keys].key || !grown[req->n_keys].value) {
                free(grown[req->n_keys].key);
                free(grown[req->n_keys].value);
                return -ENOMEM;
        }
        req->n_keys++;
        return 0;
}

/* --NAME VALUE for a setting: read by its type; dynmemd checks the range. */
static int take_setting(struct control_request *req, const struct setting_desc *d, const char *arg)
{
        char max[32], why[160];
        uint64_t v;
        int r = settings_parse_text(d, arg, &v);

        if (r == -ERANGE) {
                if (d->type == SETTING_SIZE)
                        size_format(d->max, max, sizeof(max));
                else
                        snprintf(max, sizeof(max), "%llu", (unsigned long long)d->max);
                return fail_usage("--%s: \"%s\" is larger than %s", d->name, arg, max);
        }
        if (r == -EINVAL && d->type == SETTING_SIZE && size_blank_inside(arg, why, sizeof(why)))
                return fail_usage("--%s: %s", d->name, why);
        if (r < 0)
                return fail_usage("--%s: \"%s\" is not %s", d->name, arg, settings_expected(d));
        if (d->type == SETTING_SIZE && size_unit_missing(arg, v, why, sizeof(why)))
                return fail_usage("--%s: %s", d->name, why);
        if (req->given & d->bit)
                return fail_usage("--%s given twice", d->name);
        settings_set(&req->settings, d, v);
        req->given |= d->bit;
        return 0;
}

/* --reset KEY[,KEY...]: settings by option name, autostart or all; repeatable. */
static int take_reset(struct control_request *req, const char *arg)
{
        char word[64];
        const char *p = arg;

        do {
                size_t n = strcspn(p, ",");
                if (n == 0 || n >= sizeof(word))
                        return fail_usage("--reset: \"%s\" is not KEY[,KEY...]", arg);
                memcpy(word, p, n);
                word[n] = '\0';
                if (!settings_find(word) && strcmp(word, "autostart") != 0 &&
                    strcmp(word, "all") != 0)
                        return fail_usage("--reset: \"%s\" is not a setting (--reset takes the "
                                          "options' names: buffer, weight, ...), autostart or all",
                                          word);
                control_reset_word(word, &req->reset, &req->reset_autostart);
                p += n;
        } while (*p++ == ',');
        return 0;
}

/* The options of counters and events. Returns 0 or -EINVAL (reported). */
static int take_view_option(struct cli *cli, int key, const char *arg)
{
        char *end;

        switch (key) {
        case KEY_SET:
                if (strcmp(arg, "balancer") != 0 && strcmp(arg, "vm") != 0)
                        return fail_usage("--set: \"%s\" is not balancer or vm", arg);
                cli->set = arg;
                return 0;
        case KEY_VM:
                if (!config_name_valid(arg))
                        return fail_usage("--vm: \"%s\" is not a valid VM name", arg);
                cli->vm = arg;
                return 0;
        case KEY_INTERVAL:
                if (duration_parse(arg, &cli->interval_ms) < 0 || cli->interval_ms < 100)
                        return fail_usage("--interval: \"%s\"%s is not a duration of 100ms or more",
                                          arg, duration_read_as(arg));
                return 0;
        case KEY_COUNT:
                errno = 0;
                cli->count = arg[0] >= '1' && arg[0] <= '9' ? strtoull(arg, &end, 10) : 0;
                if (cli->count == 0 || errno || *end)
                        return fail_usage("--count: \"%s\" is not a whole number from 1", arg);
                return 0;
        case KEY_FOLLOW:
                cli->follow = true;
                return 0;
        }
        return -EINVAL;
}

/* One option of a command. Returns 0 or -EINVAL (reported). */
static int take_option(struct cli *cli, int key, const char *arg)
{
        struct control_request *req = &cli->req;

        switch (key) {
        case 'j':
                cli->json = true;
                return 0;
        case 's':
                /* an unset variable ("--socket $HOSTB_SOCK") must not mean the default */
                if (!arg[0])
                        return fail_usage("--socket needs a path, not an empty word");
                cli->socket = arg;
                return 0;
        case 'f':
                req->force = true;
                return 0;
        case 'o':
                return add_key(req, arg);
        case KEY_AUTOSTART:
                req->autostart = req->autostart_given = true;
                return 0;
        case KEY_AUTOSTART_SET:
                if (req->autostart_given)
                        return fail_usage("--autostart given twice");
                if (switch_parse(arg, &req->autostart) < 0)
                        return fail_usage("--autostart: \"%s\" is not " SWITCH_WORDS, arg);
                req->autostart_given = true;
                return 0;
        case KEY_RESET:
                return take_reset(req, arg);
        case KEY_TIMEOUT:
                if (duration_parse(arg, &cli->timeout_ms) < 0 || cli->timeout_ms == 0)
                        return fail_usage("--timeout: \"%s\"%s is not a duration (30s, 5m)", arg,
                                          duration_read_as(arg));
                cli->timeout_given = true;
                return 0;
        case KEY_CONNECT:
                cli->connect = arg;
                return 0;
        case KEY_MIGRATE_URI:
                cli->migrate_uri = arg;
                return 0;
        case KEY_PERSISTENT:
                cli->persistent = true;
                return 0;
        case KEY_UNDEFINE_SOURCE:
                cli->undefine_source = true;
                return 0;
        case KEY_NO_CARRY:
                cli->no_carry = true;
                return 0;
        case KEY_NAME:
                cli->names_only = true;
                return 0;
        case KEY_BANDWIDTH: {
                char *end;
                errno = 0;
                cli->bandwidth_mib = arg[0] >= '1' && arg[0] <= '9' ? strtoull(arg, &end, 10) : 0;
                if (cli->bandwidth_mib == 0 || errno || *end || cli->bandwidth_mib > 1000000)
                        return fail_usage("--bandwidth: \"%s\" is not MiB/s from 1 to 1000000",
                                          arg);
                return 0;
        }
        case KEY_SET:
        case KEY_VM:
        case KEY_INTERVAL:
        case KEY_COUNT:
        case KEY_FOLLOW:
                return take_view_option(cli, key, arg);
        }
        if (key >= KEY_SETTING && key < KEY_SETTING + SETTINGS_N)
                return take_setting(req, &settings_table[key - KEY_SETTING], arg);
        return -EINVAL;
}

/* "+:" and each short option with its ':' fit, with the NUL. */
#define SHORTOPTS_MAX 48
_Static_assert(2 + 2 * N_OPTIONS + 1 <= SHORTOPTS_MAX, "every short option fits shortopts");

/*
 * Whether arg ("--b", "--b=30") is the start of more than one of longopts, which getopt
 * takes for any option it alone begins: their names ("--buffer, --block") into names.
 */
static bool ambiguous(const char *arg, const struct option *longopts, char *names, size_t len)
{
        size_t n, used = 0, found = 0;

        if (strncmp(arg, "--", 2) != 0)
                return false;
        arg += 2;
        n = strcspn(arg, "=");
        names[0] = '\0';
        for (const struct option *o = longopts; o->name; o++) {
                if (strncmp(o->name, arg, n) != 0 || used >= len)
                        continue;
                used += (size_t)snprintf(names + used, len - used, "%s--%s", found ? ", " : "",
                                         o->name);
                found++;
        }
        return found > 1;
}

/* Parse argv with the options of `allowed`; stop at the first operand when `stop`. */
static int parse(struct cli *cli, int argc, char **argv, unsigned allowed, bool stop)
{
        struct option longopts[N_OPTIONS + SETTINGS_N + 1];
        char shortopts[SHORTOPTS_MAX] = "";
        size_t n = 0;
        int c;

        snprintf(shortopts, sizeof(shortopts), "%s", stop ? "+:" : ":");
        for (size_t i = 0; i < N_OPTIONS; i++) {
                if (!(options[i].group & (allowed | OPT_COMMON)))
                        continue;
                longopts[n++] = options[i].opt;
                if (options[i].opt.val < 256) {
                        size_t l = strlen(shortopts);
                        shortopts[l] = (char)options[i].opt.val;
                        shortopts[l + 1] = options[i].opt.has_arg ? ':' : '\0';
                        shortopts[l + 2] = '\0';
                }
        }
        for (size_t i = 0; (allowed & OPT_SETTINGS) && i < SETTINGS_N; i++)
                longopts[n++] = (struct option){settings_table[i].name, required_argument, NULL,
                                                KEY_SETTING + (int)i};
        longopts[n] = (struct option){0};
        optind = 0; /* glibc: start afresh, as for a new argv */
        opterr = 0;
        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
                if (c == 'h') {
                        usage(stdout);
                        exit(CLI_OK);
                }
                if (c == 'V') { /* as dynmemd and dynmem-sim: whatever follows */
                        printf("dynmem %s\n", DYNMEM_VERSION);
                        exit(fflush(stdout) == 0 && !ferror(stdout) ? CLI_OK : CLI_FAILED);
                }
                const char *cmd = stop ? "" : argv[0], *sep = stop ? "" : ": ";
                if (c == ':')
                        return fail_usage("%s%soption %s needs a value", cmd, sep,
                                          argv[optind - 1]);
                if (c == '?') {
                        char names[256];
                        const char *arg = argv[optind - 1];
                        if (ambiguous(arg, longopts, names, sizeof(names)))
                                return fail_usage("%s%soption %.*s is ambiguous: %s", cmd, sep,
                                                  (int)strcspn(arg, "="), arg, names);
                        if (!stop && (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0))
                                return fail_usage("%s: %s goes before the command: dynmem %s", cmd,
                                                  arg, arg);
                        return fail_usage("%s%sunknown option %s", cmd, sep, argv[optind - 1]);
                }
                if (take_option(cli, c, optarg) < 0)
                        return -EINVAL;
        }
        return optind;
}

static const struct command *find_command(const char *name)
{
        for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static bool is_help_option(const char *arg)
{
        return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/*
 * dynmem help [COMMAND]: the usage, as dynmem --help and dynmem COMMAND --help
 * print it; also dynmem help --help, as every command takes -h, --help.
 */
static int help(const struct cli *cli, int argc, char **argv)
{
        for (int i = 0; i < argc; i++) {
                if (argv[i][0] != '-')
                        continue;
                if (is_help_option(argv[i])) { /* the first option, as getopt takes them */
                        usage(stdout);
                        return CLI_OK;
                }
                break; /* any other is refused below */
        }
        if (cli->json)
                return fail_usage("help: --json does not apply to the usage");
        if (argc > 1)
                return fail_usage("help: expected one COMMAND at most");
        if (argc == 1 && argv[0][0] == '-')
                return fail_usage("help: takes a COMMAND, no option");
        if (argc == 1 && !find_command(argv[0]))
                return fail_usage("unknown command \"%s\"", argv[0]);
        usage(stdout);
        return CLI_OK;
}

/* The command's own arguments: options and at most one VM name. */
static int parse_command(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
        int first = parse(cli, argc, argv, cmd->options, false);

        if (first < 0)
                return -EINVAL;
        if (cmd->operands == 2 && argc - first != 2)
                return fail_usage("%s: expected a VM name and DEST_URI", cmd->name);
        if (cmd->operands == 1 && argc - first != 1)
                return fail_usage("%s: expected one VM name", cmd->name);
        if (cmd->operands == 0 && argc - first != 0)
                return fail_usage("%s: takes no VM name", cmd->name);
        if (cmd->operands > 0) {
                cli->name = argv[first];
                if (!config_name_valid(cli->name))
                        return fail_usage("\"%s\" is not a valid VM name", cli->name);
                snprintf(cli->req.name, sizeof(cli->req.name), "%s", cli->name);
        }
        if (cmd->operands == 2)
                cli->operand = argv[first + 1];
        bool reset = cli->req.reset || cli->req.reset_autostart;
        if ((cmd->options & OPT_SET) && cli->req.given == 0 && !cli->req.autostart_given && !reset)
                return fail_usage("%s: nothing to change", cmd->name);
        if (reset && (cli->req.given || cli->req.autostart_given))
                return fail_usage("%s: --reset goes alone; make the changes with another set",
                                  cmd->name);
        if (cli->names_only && cli->json)
                return fail_usage("%s: --name prints the names alone; --json prints the whole VM "
                                  "objects (each has its \"name\"): give one of them",
                                  cmd->name);
        if (cli->json && strcmp(cmd->name, "top") == 0)
                return fail_usage("top: --json does not apply to the live view; for programs: "
                                  "dynmem list --json, or dynmem counters --json --interval 1s");
        if (cli->vm && cli->set && strcmp(cli->set, "balancer") == 0)
                return fail_usage("%s: --vm needs the vm set", cmd->name);
        return 0;
}

int main(int argc, char **argv)
{
        struct cli cli = {.timeout_ms = CLI_TIMEOUT_DEFAULT_MS};
        const struct command *cmd;
        int first, r;

        signal(SIGPIPE, SIG_IGN);
        first = parse(&cli, argc, argv, OPT_TOP, true); /* options before the command */
        if (first < 0)
                return CLI_USAGE;
        if (first >= argc) {
                usage(stderr);
                return CLI_USAGE;
        }
        cmd = find_command(argv[first]);
        if (!cmd) {
                fail_usage("unknown command \"%s\"", argv[first]);
                return CLI_USAGE;
        }
        if (cmd->operands == OPERAND_COMMAND)
                return help(&cli, argc - first - 1, argv + first + 1) < 0 ? CLI_USAGE : CLI_OK;
        if (!cli.socket)
                cli.socket = getenv(CONTROL_SOCKET_ENV);
        if (!cli.socket || !cli.socket[0])
                cli.socket = CONTROL_SOCKET_DEFAULT;
        if (!cmd->run) { /* libvirt-hook: libvirt's own arguments, never a usage error */
                /* libvirt gives four: one -h or --help alone is someone asking */
                if (argc - first == 2 && is_help_option(argv[first + 1])) {
                        usage(stdout);
                        return CLI_OK;
                }
                return commands_libvirt_hook(&cli, argc - first - 1, argv + first + 1);
        }
        if (parse_command(&cli, cmd, argc - first, argv + first) < 0) {
                control_request_free(&cli.req); /* the -o keys taken before the mistake */
                return CLI_USAGE;
        }
        r = cmd->run(&cli);
        control_request_free(&cli.req);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "dynmem: cannot write the standard output\n");
                r = CLI_FAILED;
        }
        return r;
}
