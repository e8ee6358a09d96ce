/*
 * commands: one function per dynmem command. See commands.h.
 */
#include "commands.h"

#include <errno.h>
#include <stdio.h>

#include "client.h"
#include "output.h"

/*
 * Whether dynmemd's EINVAL to this command refuses what the command line gave: set,
 * create and enable carry the operator's settings and keys, and dynmemd checks what
 * dynmem cannot alone (ranges, minimum <= startup <= maximum, the backend's keys).
 */
static bool refuses_the_command_line(enum control_command command)
{
        return command == CONTROL_SET || command == CONTROL_CREATE || command == CONTROL_ENABLE;
}

/*
 * Make the request; on failure print dynmemd's or the connection's error. A value
 * dynmemd refuses as invalid is bad usage (exit 2), as when dynmem itself refuses it.
 */
static int call(struct cli *cli, enum control_command command, json_t **ret_reply)
{
        char err[CONTROL_ERROR_MAX + 256] = "";
        const json_t *warning, *note;
        bool answered;
        int r;

        cli->req.command = command;
        r = client_call_answered(cli, ret_reply, &answered, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "dynmem: %s\n", err);
                return answered && r == -EINVAL && refuses_the_command_line(command) ? CLI_USAGE
                                                                                     : CLI_FAILED;
        }
        warning = json_object_get(*ret_reply, "warning");
        if (json_is_string(warning))
                fprintf(stderr, "dynmem: warning: %s: %s\n", cli->name ? cli->name : "dynmemd",
                        json_string_value(warning));
        note = json_object_get(*ret_reply, "note");
        if (json_is_string(note) && !cli->json)
                printf("%s\n", json_string_value(note));
        return CLI_OK;
}

/* Print member `key` of the reply: as JSON with --json, else with print (may be NULL). */
static int show_member(struct cli *cli, json_t *reply, const char *key,
                       void (*print)(FILE *, const json_t *))
{
        const json_t *v = json_object_get(reply, key);
        int r = CLI_OK;

        if (!v) {
                fprintf(stderr, "dynmem: the reply from dynmemd has no \"%s\"\n", key);
                r = CLI_FAILED;
        } else if (cli->json) {
                output_json(stdout, v);
        } else if (print) {
                print(stdout, v);
        }
        json_decref(reply);
        return r;
}

static int run(struct cli *cli, enum control_command command, const char *key,
               void (*print)(FILE *, const json_t *))
{
        json_t *reply;
        int r = call(cli, command, &reply);

        if (r != CLI_OK)
                return r;
        if (!key) {
                json_decref(reply);
                return CLI_OK;
        }
        return show_member(cli, reply, key, print);
}

int commands_list(struct cli *cli)
{
        return run(cli, CONTROL_LIST, "vms", cli->names_only ? output_vm_names : output_vm_table);
}

int commands_show(struct cli *cli)
{
        return run(cli, CONTROL_SHOW, "vm", output_vm);
}

/*
 * The host, then the VMs that have a problem: the status reply is the host alone, so
 * the VMs are asked for as list asks. --json prints the status reply's host as it is.
 */
int commands_status(struct cli *cli)
{
        json_t *reply, *vms;
        int r = call(cli, CONTROL_STATUS, &reply);

        if (r != CLI_OK || cli->json || !json_object_get(reply, "host"))
                return r != CLI_OK ? r : show_member(cli, reply, "host", output_host);
        output_host(stdout, json_object_get(reply, "host"));
        json_decref(reply);
        fflush(stdout);
        r = call(cli, CONTROL_LIST, &vms);
        if (r != CLI_OK)
                return r;
        output_problems(stdout, json_object_get(vms, "vms"));
        json_decref(vms);
        return CLI_OK;
}

int commands_start(struct cli *cli)
{
        return run(cli, CONTROL_START, "vm", NULL);
}

int commands_stop(struct cli *cli)
{
        return run(cli, CONTROL_STOP, "vm", NULL);
}

int commands_set(struct cli *cli)
{
        return run(cli, CONTROL_SET, "vm", NULL);
}

int commands_create(struct cli *cli)
{
        return run(cli, CONTROL_CREATE, "vm", NULL);
}

int commands_delete(struct cli *cli)
{
        return run(cli, CONTROL_DELETE, "vm", NULL); /* the VM as it was */
}

/*
 * A reply that may name no VM: a domain whose owner's change is not seen yet (enable,
 * disable), a VM dynmemd does not know (admit). The VM is printed with print, or with
 * --json as JSON, null when there is none.
 */
static int run_maybe_vm(struct cli *cli, enum control_command command,
                        void (*print)(FILE *, const json_t *))
{
        json_t *reply;
        int r = call(cli, command, &reply);
        const json_t *vm;

        if (r != CLI_OK)
                return r;
        vm = json_object_get(reply, "vm");
        if (cli->json)
                output_json(stdout, vm ? vm : json_null());
        else if (vm && print)
                print(stdout, vm);
        json_decref(reply);
        return CLI_OK;
}

int commands_enable(struct cli *cli)
{
        return run_maybe_vm(cli, CONTROL_ENABLE, output_vm);
}

int commands_disable(struct cli *cli)
{
        return run_maybe_vm(cli, CONTROL_DISABLE, output_vm);
}

int commands_admit(struct cli *cli)
{
        return run_maybe_vm(cli, CONTROL_ADMIT, NULL); /* the note says it */
}
