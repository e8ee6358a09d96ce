/*
 * policy_exec_check: whether an exec: policy's program can be run, judged
 * from its command before any start (dynmemd checks it with the
 * configuration). See policy_exec.h.
 *
 * The command goes to /bin/sh -c, so only what needs no shell to judge is
 * judged: the first word when it is a plain word (after VAR=value words and
 * an exec). A word with quotes, expansions or other shell syntax, and a
 * shell builtin or keyword, are left to the start, which reports them.
 */
#include "policy_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLANKS " \t\n"

/* Builtins and keywords of sh that may start a command: nothing to look up. */
static bool shell_word(const char *w, size_t n)
{
        static const char *const words[] = {
            ".",       ":",        "[",    "alias",   "bg",       "break",  "case",   "cd",
            "command", "continue", "do",   "echo",    "eval",     "exit",   "export", "false",
            "fc",      "fg",       "for",  "getopts", "hash",     "if",     "jobs",   "kill",
            "local",   "printf",   "pwd",  "read",    "readonly", "return", "set",    "shift",
            "test",    "times",    "trap", "true",    "type",     "ulimit", "umask",  "unalias",
            "unset",   "until",    "wait", "while",   "{",        "!",
        };

        for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
                if (strlen(words[i]) == n && strncmp(words[i], w, n) == 0)
                        return true;
        return false;
}

/* Whether a word is plain: nothing in it the shell would change. */
static bool plain(const char *w, size_t n)
{
        return strcspn(w, "'\"\\$`*?[]~{}()<>|;&#=") >= n;
}

/* Whether a word is a VAR=value assignment (the shell runs the next word). */
static bool assignment(const char *w, size_t n)
{
        size_t name = strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");

        return name > 0 && name < n && w[name] == '=' && !(w[0] >= '0' && w[0] <= '9');
}

/* 0 when path is a file this process may execute, else -errno. */
static int runnable(const char *path)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) < 0)
                return -errno;
        return 0;
}

static int check_path(const char *prog, char *err, size_t errlen)
{
        int r = runnable(prog);

        if (r == -EACCES)
                snprintf(err, errlen, "program %s is not executable (by this user)", prog);
        else if (r == -EISDIR)
                snprintf(err, errlen, "program %s is a directory", prog);
        else if (r < 0)
                snprintf(err, errlen, "program %s: %s", prog, strerror(-r));
        return r;
}

/* A name without '/': the first folder of PATH where it is executable, as sh finds it. */
static int check_name(const char *prog, char *err, size_t errlen)
{
        const char *path = getenv("PATH");
        char full[PATH_MAX];
        bool found = false;

        if (!path)
                return 0; /* sh's own default: not ours to guess */
        for (const char *p = path;; p += strcspn(p, ":") + 1) {
                size_t n = strcspn(p, ":");
                int len = n ? snprintf(full, sizeof(full), "%.*s/%s", (int)n, p, prog)
                            : snprintf(full, sizeof(full), "%s", prog); /* empty: the cwd */
                if (len > 0 && (size_t)len < sizeof(full) && access(full, F_OK) == 0) {
                        found = true;
                        if (runnable(full) == 0)
                                return 0;
                }
                if (p[n] == '\0')
                        break;
        }
        if (found)
                snprintf(err, errlen,
                         "program %s is in PATH (%s) but not executable (by this user)", prog,
                         path);
        else
                snprintf(err, errlen, "program %s is not in PATH (%s)", prog, path);
        return found ? -EACCES : -ENOENT;
}

int policy_exec_check_program(const char *command, char *err, size_t errlen)
{
        const char *w = command;
        char prog[PATH_MAX];

        for (;;) {
                w += strspn(w, BLANKS);
                size_t n = strcspn(w, BLANKS);
                if (n == 0)
                        return 0; /* nothing after the assignments: the shell's business */
                if (assignment(w, n) || (n == 4 && strncmp(w, "exec", 4) == 0)) {
                        w += n;
                        continue;
                }
                if (!plain(w, n) || w[0] == '-' || shell_word(w, n) || n >= sizeof(prog))
                        return 0;
                memcpy(prog, w, n);
                prog[n] = '\0';
                break;
        }
        return strchr(prog, '/') ? check_path(prog, err, errlen) : check_name(prog, err, errlen);
}
