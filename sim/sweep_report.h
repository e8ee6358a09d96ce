/*
 * sweep_report: a sweep's outputs: a table for people, one JSON object for
 * programs, and a self-contained HTML page with the curves and the table.
 */
#ifndef DYNMEM_SIM_SWEEP_REPORT_H
#define DYNMEM_SIM_SWEEP_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "sweep.h"

void sweep_report_human(FILE *out, const char *scenario, const struct sweep_result *r);

/* The --json object (documented in docs/simulator.md), or NULL when out of memory. */
json_t *sweep_report_json(const struct sweep_result *r);

/* Returns 0, or -1 when writing failed. */
int sweep_report_html(FILE *out, const char *scenario, const struct sweep_result *r);

#endif
