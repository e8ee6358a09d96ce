/*
 * commands: the dynmem commands, one function each. The command line is
 * parsed (main.c); each function fills in its request, calls dynmemd and
 * prints the reply. They return an exit status (CLI_OK, CLI_FAILED).
 */
#ifndef DYNMEM_COMMANDS_H
#define DYNMEM_COMMANDS_H

#include "cli.h"

int commands_list(struct cli *cli);
int commands_show(struct cli *cli);
int commands_status(struct cli *cli);
int commands_start(struct cli *cli);
int commands_stop(struct cli *cli);
int commands_set(struct cli *cli);
int commands_create(struct cli *cli);
int commands_delete(struct cli *cli);
int commands_counters(struct cli *cli); /* counters.c */
int commands_events(struct cli *cli);   /* events.c */
int commands_top(struct cli *cli);      /* top.c */
int commands_enable(struct cli *cli);
int commands_disable(struct cli *cli);
int commands_admit(struct cli *cli);
int commands_migrate(struct cli *cli); /* migrate.c: NAME DEST_URI, through libvirt */
/* libvirt's qemu hook: DOMAIN OPERATION SUB-OPERATION EXTRA (hook.c) */
int commands_libvirt_hook(struct cli *cli, int argc, char **argv);

#endif
