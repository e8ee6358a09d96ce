/*
 * testutil: helpers shared by the unit tests. See testutil.h.
 */
#include "testutil.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_tempdir(void)
{
        const char *base = getenv("TMPDIR");
        char *dir = NULL;

        if (!base || !*base)
                base = "/tmp";
        if (asprintf(&dir, "%s/dynmem-test-XXXXXX", base) < 0 || !mkdtemp(dir)) {
                perror("tu_tempdir");
                abort();
        }
        return dir;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st, (void)flag, (void)ftw;
        remove(path);
        return 0;
}

void tu_rmtree(char *dir)
{
        if (!dir)
                return;
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
}

char *tu_write(const char *dir, const char *name, const char *text, bool exec)
{
        char *path = NULL;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                abort();
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, exec ? 0755 : 0644);
        size_t len = strlen(text);
        if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) < 0) {
                perror(path);
                abort();
        }
        return path;
}

char *tu_read(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0;

        if (!f)
                return NULL;
        FILE *mem = open_memstream(&buf, &len);
        int c;
        while (mem && (c = fgetc(f)) != EOF)
                fputc(c, mem);
        fclose(f);
        if (mem)
                fclose(mem);
        return buf;
}

int tu_stderr_capture(const char *path)
{
        int saved = dup(STDERR_FILENO);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        fflush(stderr);
        if (saved < 0 || fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
                perror("tu_stderr_capture");
                abort();
        }
        close(fd);
        return saved;
}

char *tu_stderr_release(int saved, const char *path)
{
        fflush(stderr);
        if (dup2(saved, STDERR_FILENO) < 0) {
                perror("tu_stderr_release");
                abort();
        }
        close(saved);
        return tu_read(path);
}

size_t tu_count(const char *text, const char *needle)
{
        size_t n = 0;

        for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

const char *tu_diag_find(const struct config_diag *d, const char *prefix, const char *needle)
{
        for (size_t i = 0; i < d->count; i++) {
                const char *m = d->messages[i];
                if (strncmp(m, prefix, strlen(prefix)) != 0)
                        continue;
                if (!needle || strstr(m, needle))
                        return m;
        }
        return NULL;
}

void tu_diag_print(const struct config_diag *d)
{
        for (size_t i = 0; i < d->count; i++)
                printf("# diag: %s\n", d->messages[i]);
}
