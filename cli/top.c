/*
 * top: `dynmem top`, a live view of the VMs in the terminal, the most
 * pressed first (pressure, highest first; unknown last; then by name),
 * under one line about the host and, when the host has something the
 * operator must see (the backend unreachable, memory overcommitted, state
 * not saved, the relief rule short of memory), one line of warnings in the
 * blank line's place, so that the table does not move. NAME is narrowed to
 * fit the terminal (output_vm_table_fit). It redraws every second with plain
 * ANSI escapes on the alternate screen and quits on q (or Ctrl-C, SIGTERM,
 * SIGHUP), putting the terminal back as it was. Without a terminal on its
 * standard output it is a usage error (exit 2) that names the commands
 * that print instead.
 */
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "commands.h"
#include "output.h"
#include "units.h"
#include "mono.h"

#define TOP_REFRESH_MS 1000

#define ESC_ENTER "\x1b[?1049h\x1b[?25l" /* alternate screen, cursor hidden */
#define ESC_LEAVE "\x1b[?25h\x1b[?1049l"
#define ESC_HOME  "\x1b[H"
#define ESC_EOL   "\x1b[K"
#define ESC_EOS   "\x1b[J"
#define ESC_BOLD  "\x1b[1m"
#define ESC_INV   "\x1b[7m"
#define ESC_RESET "\x1b[0m"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
        stop_signal = sig;
}

static void on_winch(int sig)
{
        (void)sig; /* only to interrupt poll(): the next frame reads the new size */
}

static const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
#define N_SIGNALS (sizeof(signals) / sizeof(signals[0]))

struct terminal {
        struct termios saved;
        bool raw;
        struct sigaction old[N_SIGNALS]; /* what each of signals[] did before */
};

/* Keys without Enter and without echo; Ctrl-C still signals. */
static void terminal_enter(struct terminal *t)
{
        struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll() returns */

        for (size_t i = 0; i < N_SIGNALS; i++) {
                sa.sa_handler = signals[i] == SIGWINCH ? on_winch : on_signal;
                sigaction(signals[i], &sa, &t->old[i]);
        }
        if (tcgetattr(STDIN_FILENO, &t->saved) == 0) {
                struct termios raw = t->saved;
                raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
                raw.c_cc[VMIN] = 0;
                raw.c_cc[VTIME] = 0;
                t->raw = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
        }
        fputs(ESC_ENTER, stdout);
        fflush(stdout);
}

static void terminal_leave(struct terminal *t)
{
        fputs(ESC_LEAVE, stdout);
        fflush(stdout);
        if (t->raw)
                tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
        for (size_t i = 0; i < N_SIGNALS; i++)
                sigaction(signals[i], &t->old[i], NULL);
}

/* ---- one frame ---- */

static double pressure_of(const json_t *vm)
{
        const json_t *p = json_object_get(vm, "pressure_percent");

        return json_is_number(p) ? json_number_value(p) : -1.0;
}

static int by_pressure(const void *a, const void *b)
{
        const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
        double px = pressure_of(x), py = pressure_of(y);

        if (px != py)
                return px > py ? -1 : 1;
        return strcmp(json_string_value(json_object_get(x, "name")),
                      json_string_value(json_object_get(y, "name")));
}

/* The VMs, most pressed first, as a new array. */
static json_t *sorted(const json_t *vms)
{
        size_t n = json_array_size(vms);
        json_t **items = calloc(n ? n : 1, sizeof(*items)), *out = json_array();

        for (size_t i = 0; items && i < n; i++) {
                items[i] = json_array_get(vms, i);
                if (!json_is_string(json_object_get(items[i], "name")))
                        items[i] = NULL;
        }
        size_t k = 0;
        for (size_t i = 0; items && i < n; i++)
                if (items[i])
                        items[k++] = items[i];
        if (items)
                qsort(items, k, sizeof(*items), by_pressure);
        for (size_t i = 0; items && out && i < k; i++)
                json_array_append(out, items[i]);
        free(items);
        return out;
}

static void host_line(FILE *f, const json_t *host)
{
        const json_t *p = json_object_get(host, "pressure_percent");
        char mem[32], assigned[32], avail[32], pressure[32] = "-";

        size_format((uint64_t)json_integer_value(json_object_get(host, "memory_bytes")), mem,
                    sizeof(mem));
        size_format((uint64_t)json_integer_value(json_object_get(host, "assigned_bytes")), assigned,
                    sizeof(assigned));
        size_format((uint64_t)json_integer_value(json_object_get(host, "available_bytes")), avail,
                    sizeof(avail));
        if (json_is_number(p))
                snprintf(pressure, sizeof(pressure), "%.0f %%", json_number_value(p));
        fprintf(f, "Memory %s  assigned %s  available %s  pressure %s  VMs %lld (%lld running)\n",
                mem, assigned, avail, pressure,
                (long long)json_integer_value(json_object_get(host, "vms")),
                (long long)json_integer_value(json_object_get(host, "running")));
}

/*
 * What dynmem status ends with, in a line: "! backend UNREACHABLE; memory OVERCOMMITTED; state
 * NOT SAVED; config RELOAD FAILED; 2 config warnings; short of 512 MiB for 90s (relief); see
 * dynmem status",
 * or a blank line when nothing is.
 */
static void warning_line(FILE *f, const json_t *host)
{
        const json_t *relief = json_object_get(host, "relief");
        json_int_t for_ms = json_integer_value(json_object_get(relief, "short_for_ms"));
        bool short_now = json_is_true(json_object_get(relief, "enabled")) &&
                         json_is_true(json_object_get(relief, "short"));
        const char *sep = "! ";
        char a[32], b[32];

        if (json_is_string(json_object_get(host, "backend_error"))) {
                fprintf(f, "%sbackend UNREACHABLE", sep);
                sep = "; ";
        }
        if (json_is_string(json_object_get(host, "overcommit_error"))) {
                fprintf(f, "%smemory OVERCOMMITTED", sep);
                sep = "; ";
        }
        if (json_is_string(json_object_get(host, "state_error"))) {
                fprintf(f, "%sstate NOT SAVED", sep);
                sep = "; ";
        }
        if (json_is_string(json_object_get(host, "reload_error"))) {
                fprintf(f, "%sconfig RELOAD FAILED", sep);
                sep = "; ";
        }
        json_int_t warned = json_integer_value(json_object_get(host, "config_warning_count"));
        if (warned > 0) {
                fprintf(f, "%s%lld config warning%s", sep, (long long)warned,
                        warned == 1 ? "" : "s");
                sep = "; ";
        }
        if (short_now) {
                fprintf(f, "%sshort of %s", sep,
                        size_format(
                            (uint64_t)json_integer_value(json_object_get(relief, "short_bytes")), a,
                            sizeof(a)));
                if (for_ms > 0)
                        fprintf(f, " for %s", duration_format((uint64_t)for_ms, b, sizeof(b)));
                fputs(" (relief)", f);
                sep = "; ";
        }
        fputs(sep[0] == ';' ? "; see dynmem status\n" : "\n", f);
}

/* The frame's text for `cols` columns, or a one-line error: NUL-terminated, caller frees. */
static char *frame_text(struct cli *cli, unsigned cols, const char *mark)
{
        char err[CONTROL_ERROR_MAX + 256] = "", *text = NULL, when[16];
        json_t *vms = NULL, *host = NULL, *order;
        size_t len;
        time_t now = time(NULL);
        struct tm tm;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                return NULL;
        strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&now, &tm));
        fprintf(f, "dynmem top  %s  (q quits)\n", when);
        cli->req = (struct control_request){.command = CONTROL_STATUS};
        if (client_call(cli, &host, err, sizeof(err)) == 0) {
                cli->req = (struct control_request){.command = CONTROL_LIST};
                if (client_call(cli, &vms, err, sizeof(err)) < 0)
                        vms = NULL;
        }
        if (!host || !vms) {
                fprintf(f, "\ndynmem: %s\n", err);
        } else {
                host_line(f, json_object_get(host, "host"));
                warning_line(f, json_object_get(host, "host"));
                order = sorted(json_object_get(vms, "vms"));
                output_vm_table_fit(f, order, cols, mark);
                json_decref(order);
        }
        json_decref(host);
        json_decref(vms);
        fclose(f);
        return text;
}

static void window_size(unsigned *rows, unsigned *cols)
{
        struct winsize ws;

        *rows = 24, *cols = 80;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
                *rows = ws.ws_row, *cols = ws.ws_col;
}

/* The bytes of the first `cols` characters (UTF-8) of line[0..n). */
static size_t cut(const char *line, size_t n, unsigned cols)
{
        size_t i = 0;

        for (unsigned w = 0; i < n; i++) {
                if (((unsigned char)line[i] & 0xC0) != 0x80 && w++ == cols)
                        break;
        }
        return i;
}

/* Draw over the previous frame, each line cut to the window. */
static void draw(const char *text, unsigned rows, unsigned cols)
{
        unsigned row = 0;
        const char *line = text;

        fputs(ESC_HOME, stdout);
        while (line && *line && row < rows) {
                const char *nl = strchr(line, '\n');
                size_t n = nl ? (size_t)(nl - line) : strlen(line);
                const char *style = row == 0 || (row == 2 && n) ? ESC_BOLD
                                    : row == 3                  ? ESC_INV
                                                                : "";
                printf("%s%.*s%s" ESC_EOL "%s", style, (int)cut(line, n, cols), line,
                       style[0] ? ESC_RESET : "", row + 1 < rows ? "\r\n" : "");
                line = nl ? nl + 1 : NULL;
                row++;
        }
        fputs(ESC_EOS, stdout);
        fflush(stdout);
}

/* Read keys until the next frame is due; true when it is time to quit. */
static bool wait_key(uint64_t ms, bool *keyboard)
{
        uint64_t deadline = mono_ms() + ms, now;
        char c;

        while (!stop_signal && (now = mono_ms()) < deadline) {
                struct pollfd p = {.fd = *keyboard ? STDIN_FILENO : -1, .events = POLLIN};
                if (poll(&p, 1, (int)(deadline - now)) <= 0 || !(p.revents & (POLLIN | POLLHUP)))
                        continue;
                ssize_t n = read(STDIN_FILENO, &c, 1);
                if (n == 1 && (c == 'q' || c == 'Q'))
                        return true;
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                        *keyboard = false; /* no more keys: only signals stop it */
        }
        return stop_signal != 0;
}

int commands_top(struct cli *cli)
{
        struct terminal t = {0};
        bool keyboard = true;
        const char *mark;
        unsigned rows, cols;

        /* A usage error, said as main.c says those: where top cannot draw, what can. */
        if (!isatty(STDOUT_FILENO)) {
                fprintf(stderr, "dynmem: top needs a terminal, and its standard output is not "
                                "one: use dynmem list (--json for programs) or dynmem counters "
                                "--interval 1s (dynmem --help)\n");
                return CLI_USAGE;
        }
        setlocale(LC_CTYPE, ""); /* a long name's mark: "…" where the terminal takes UTF-8 */
        mark = strcmp(nl_langinfo(CODESET), "UTF-8") == 0 ? "\u2026" : "~";
        if (cli->timeout_ms > 5000)
                cli->timeout_ms = 5000; /* a frame must not wait long for dynmemd */
        terminal_enter(&t);
        while (!stop_signal) {
                window_size(&rows, &cols);
                char *text = frame_text(cli, cols, mark);
                if (text)
                        draw(text, rows, cols);
                free(text);
                if (wait_key(TOP_REFRESH_MS, &keyboard))
                        break;
        }
        terminal_leave(&t);
        return CLI_OK;
}
