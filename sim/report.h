/*
 * report: how dynmem-sim presents a run: a summary for people, one JSON
 * object for programs, and a self-contained HTML page with charts.
 */
#ifndef DYNMEM_SIM_REPORT_H
#define DYNMEM_SIM_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "simrun.h"

/* The --json object, with exactly the documented keys. */
json_t *report_json(const struct simrun_result *r);

void report_human(FILE *out, const struct simrun_result *r);

/* Returns 0, or -1 when writing failed. */
int report_html(FILE *out, const char *scenario, const struct simrun_result *r);

/*
 * The start of a self-contained page: doctype, "TITLE: SCENARIO" as its
 * title, the styles every page shares and `css`, up to the open body.
 */
void report_html_begin(FILE *out, const char *title, const char *scenario, const char *css);

/* Write s with <, >, & and " escaped for HTML text and attributes. */
void report_html_escape(FILE *out, const char *s);

#endif
