/*
 * qmp_fuzz: libFuzzer target for the QMP client (lib/qmp.c): what a QEMU,
 * only as trusted as its guest, can write on the monitor socket. The client
 * runs for real on a socketpair inside a libevent loop with two commands
 * pending (ids 1 and 2 are likely to be hit by the dictionary); the input is
 * written to the other end, which is then closed. Whatever arrives, the
 * client must end closed or ready, every pending command must get exactly
 * one callback, and nothing may crash or leak (ASan).
 *
 * Build and run: fuzz/run.sh qmp SECONDS.
 */
#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond))                                                                       \
                        abort();                                                                   \
        } while (0)

static unsigned replies;

static void on_reply(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        (void)q, (void)reply, (void)userdata;
        replies++;
}

static void on_ready(struct qmp *q, void *userdata)
{
        (void)userdata;
        qmp_command(q, "query-balloon", NULL, on_reply, NULL);
        qmp_command(q, "query-memory-devices", NULL, on_reply, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct event_base *base = event_base_new();
        struct qmp_callbacks cb = {.ready = on_ready};
        struct qmp *q = NULL;
        int sv[2];

        if (!base || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                if (base)
                        event_base_free(base);
                return 0;
        }
        if (qmp_new_fd(base, sv[0], &cb, NULL, &q) < 0) {
                close(sv[0]), close(sv[1]);
                event_base_free(base);
                return 0;
        }
        replies = 0;
        size_t off = 0;
        while (off < size) {
                ssize_t w = write(sv[1], data + off, size - off);
                if (w <= 0)
                        break;
                off += (size_t)w;
                for (int i = 0; i < 4; i++)
                        event_base_loop(base, EVLOOP_NONBLOCK);
        }
        close(sv[1]);
        for (int i = 0; i < 16 && !qmp_is_closed(q); i++)
                event_base_loop(base, EVLOOP_NONBLOCK);
        qmp_free(q); /* pending commands get their callback here at the latest */
        CHECK(replies <= 2);
        event_base_free(base);
        return 0;
}
