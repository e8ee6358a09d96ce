/*
 * output: dynmem's replies printed for people: the VM table of `list` (and of
 * `top`, cut to the terminal) or its names alone (`list --name`), one VM for
 * `show`, the host for `status` with the VMs that have a problem; and the raw
 * JSON for --json. Sizes are printed in MiB/GiB; what is unknown is printed as "-".
 */
#ifndef DYNMEM_OUTPUT_H
#define DYNMEM_OUTPUT_H

#include <jansson.h>
#include <stdio.h>

/* The value as indented JSON and a newline. */
void output_json(FILE *out, const json_t *value);

/* An aligned table of VMs: NAME STATE ASSIGNED DEMAND PRESSURE STATUS MIN STARTUP MAX BUFFER
 * WEIGHT. */
void output_vm_table(FILE *out, const json_t *vms);

/* The VMs' names alone, one a line, in the table's order (list --name: scripts, completion). */
void output_vm_names(FILE *out, const json_t *vms);

/*
 * The same table cut to fit `columns` terminal columns (0: no limit) by narrowing NAME
 * alone, to the longer of OUTPUT_NAME_MIN characters and what the other columns leave: a
 * longer name keeps its head and tail around `mark` ("…" or "~", never part of a name).
 * Names that this would make alike are cut another way, the same for all of them, so that
 * no two rows show the same text: more of the end, else of the start, else a piece from
 * where they first differ between two marks ("db…eu-w…ca").
 */
#define OUTPUT_NAME_MIN 10 /* the other columns take about 90 of a 100-column terminal */
void output_vm_table_fit(FILE *out, const json_t *vms, size_t columns, const char *mark);

/* One VM, one "Key: value" line per field. */
void output_vm(FILE *out, const json_t *vm);

/* "Problems: vm1, vm2 (see dynmem show NAME)": the VMs whose settings cannot be used, if any. */
void output_problems(FILE *out, const json_t *vms);

/* The host, one "Key: value" line per field. */
void output_host(FILE *out, const json_t *host);

#endif
