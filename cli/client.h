/*
 * client: one request to dynmemd and its reply, over the control socket,
 * with a timeout and a size limit on the reply.
 */
#ifndef DYNMEM_CLIENT_H
#define DYNMEM_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli.h"

/*
 * Send cli->req and read the reply. Returns 0 with the reply object in
 * *ret_reply (caller json_decref()s), or a negative errno with one sentence
 * for the operator in err: dynmemd's own error, or why it could not be
 * reached (naming the socket it tried).
 */
int client_call(const struct cli *cli, json_t **ret_reply, char *err, size_t errlen);

/* The same; *ret_answered says whether dynmemd answered (its error) or was not reached. */
int client_call_answered(const struct cli *cli, json_t **ret_reply, bool *ret_answered, char *err,
                         size_t errlen);

#endif
