/*
 * control_fuzz: libFuzzer target for the control socket's request parser and
 * the CLI's reply parser (lib/control.c). The input is one line from a local
 * client (or, for replies, from a daemon). A parsed request must format back
 * to a line that parses to the same command; a refused one must say why.
 *
 * Build and run: fuzz/run.sh control SECONDS.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond))                                                                       \
                        abort();                                                                   \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct control_request req = {0}, again = {0};
        char err[256] = "";
        json_t *reply = NULL;

        if (control_request_parse((const char *)data, size, &req, err, sizeof(err)) == 0) {
                char *line = control_request_format(&req);
                if (line) {
                        CHECK(control_request_parse(line, strlen(line), &again, err, sizeof(err)) ==
                              0);
                        CHECK(again.command == req.command);
                        control_request_free(&again);
                        free(line);
                }
                control_request_free(&req);
        } else {
                CHECK(err[0] != '\0');
        }
        err[0] = '\0';
        if (control_reply_parse((const char *)data, size, &reply, err, sizeof(err)) == 0)
                json_decref(reply);
        else
                CHECK(err[0] != '\0');
        return 0;
}
