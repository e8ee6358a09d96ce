/*
 * report: dynmem-sim's outputs: the human summary, the --json object and
 * the self-contained HTML page (inline SVG charts, no scripts, no network).
 */
#include "report.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "units.h"

#define CHART_W    720
#define CHART_H    160
#define CHARTS_MAX 64 /* per-VM charts drawn; more VMs are listed in the table only */

json_t *report_json(const struct simrun_result *r)
{
        return json_pack("{s:s, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:I, s:I, s:I, "
                         "s:f, s:f, s:I, s:b}",
                         "policy", r->policy, "duration_s", (double)r->duration_ms / 1000.0, "vms",
                         (json_int_t)r->vms, "started", (json_int_t)r->started, "refused",
                         (json_int_t)r->refused, "vm_seconds", r->vm_seconds, "short_seconds",
                         r->short_seconds, "short_byte_seconds", r->short_byte_seconds, "oom_kills",
                         (json_int_t)r->oom_kills, "host_mean_bytes", r->host_mean_bytes,
                         "host_peak_bytes", (json_int_t)r->host_peak_bytes, "budget_violations",
                         (json_int_t)r->budget_violations, "resize_ops", (json_int_t)r->resize_ops,
                         "reaction_p50_s", r->reaction_p50_s, "reaction_p95_s", r->reaction_p95_s,
                         "policy_failures", (json_int_t)r->policy_failures, "policy_failed",
                         r->policy_failed);
}

void report_human(FILE *out, const struct simrun_result *r)
{
        char a[32], b[32], c[32];

        fprintf(out, "policy %s, %zu VM%s over %s on a host with %s for VMs\n", r->policy, r->vms,
                r->vms == 1 ? "" : "s", duration_format(r->duration_ms, a, sizeof(a)),
                size_format(r->memory_bytes, b, sizeof(b)));
        fprintf(out, "  started %zu, never started %zu, OOM kills %llu, budget violations %llu\n",
                r->started, r->refused, (unsigned long long)r->oom_kills,
                (unsigned long long)r->budget_violations);
        fprintf(out, "  short %.0f of %.0f VM-seconds (%.2f %%), %.3g GiB-seconds short\n",
                r->short_seconds, r->vm_seconds,
                r->vm_seconds > 0 ? 100.0 * r->short_seconds / r->vm_seconds : 0.0,
                r->short_byte_seconds / (double)GIB);
        fprintf(out, "  host memory held: mean %s, peak %s; %llu resize operation%s\n",
                size_format((uint64_t)r->host_mean_bytes, a, sizeof(a)),
                size_format(r->host_peak_bytes, b, sizeof(b)), (unsigned long long)r->resize_ops,
                r->resize_ops == 1 ? "" : "s");
        fprintf(out, "  reaction (short until enough): p50 %.1f s, p95 %.1f s\n", r->reaction_p50_s,
                r->reaction_p95_s);
        if (r->policy_failed)
                fprintf(out,
                        "  external policy failed: it never answered (%llu failures); every VM "
                        "kept its startup size\n",
                        (unsigned long long)r->policy_failures);
        else if (r->policy_failures)
                fprintf(out, "  external policy failures: %llu (previous targets stood)\n",
                        (unsigned long long)r->policy_failures);
        fputs("  resizes by reason:", out);
        for (size_t i = 0; i <= REASON_LENT; i++) {
                uint64_t g = r->grow_ops_by_reason[i], s = r->shrink_ops_by_reason[i];
                if (g || s)
                        fprintf(out, " %s +%llu/-%llu", policy_reason_name((enum policy_reason)i),
                                (unsigned long long)g, (unsigned long long)s);
        }
        fputs("\n\n", out);
        fprintf(out, "%-16s %8s %10s %10s %9s %6s %8s\n", "VM", "STARTED", "MEAN", "PEAK",
                "SHORT_S", "OOM", "RESIZES");
        for (size_t i = 0; i < r->vms; i++) {
                const struct simrun_vm_result *v = &r->per_vm[i];
                fprintf(out, "%-16s %8s %10s %10s %9.0f %6llu %8llu\n", v->name,
                        v->started ? "yes" : "no", size_format(v->mean_assigned, a, sizeof(a)),
                        size_format(v->peak_assigned, c, sizeof(c)), (double)v->short_ms / 1000.0,
                        (unsigned long long)v->oom_kills,
                        (unsigned long long)(v->add_ops + v->remove_ops));
        }
}

void report_html_escape(FILE *out, const char *s)
{
        for (; *s; s++) {
                switch (*s) {
                case '<':
                        fputs("&lt;", out);
                        break;
                case '>':
                        fputs("&gt;", out);
                        break;
                case '&':
                        fputs("&amp;", out);
                        break;
                case '"':
                        fputs("&quot;", out);
                        break;
                default:
                        fputc(*s, out);
                }
        }
}

static void polyline(FILE *out, const struct simrun_series *s, const uint64_t *v, uint64_t t_max,
                     uint64_t y_max, const char *cls)
{
        fprintf(out, "<polyline class=\"%s\" points=\"", cls);
        for (size_t i = 0; i < s->n; i++) {
                double x = t_max ? (double)s->t_ms[i] * CHART_W / (double)t_max : 0.0;
                double y = CHART_H - (y_max ? (double)v[i] * CHART_H / (double)y_max : 0.0);
                fprintf(out, "%.1f,%.1f ", x, y);
        }
        fputs("\"/>\n", out);
}

static void chart(FILE *out, const char *title, const struct simrun_series *s, uint64_t t_max,
                  uint64_t limit)
{
        uint64_t y_max = limit;
        char a[32];

        for (size_t i = 0; i < s->n; i++) {
                if (s->demand[i] > y_max)
                        y_max = s->demand[i];
                if (s->assigned[i] > y_max)
                        y_max = s->assigned[i];
        }
        y_max = y_max + y_max / 10 + 1;
        fputs("<figure><figcaption>", out);
        report_html_escape(out, title);
        fprintf(out, " <small>(0 .. %s)</small></figcaption>\n", size_format(y_max, a, sizeof(a)));
        fprintf(out, "<svg viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\">\n", CHART_W, CHART_H,
                CHART_W, CHART_H);
        fprintf(out, "<rect width=\"%d\" height=\"%d\" class=\"bg\"/>\n", CHART_W, CHART_H);
        if (limit) {
                double y = CHART_H - (double)limit * CHART_H / (double)y_max;
                fprintf(out, "<line class=\"limit\" x1=\"0\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
                        CHART_W, y, y);
        }
        polyline(out, s, s->assigned, t_max, y_max, "assigned");
        polyline(out, s, s->demand, t_max, y_max, "demand");
        fputs("</svg></figure>\n", out);
}

void report_html_begin(FILE *out, const char *title, const char *scenario, const char *css)
{
        fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", out);
        report_html_escape(out, title);
        fputs(": ", out);
        report_html_escape(out, scenario);
        fputs("</title>\n<style>\n"
              "body{font-family:sans-serif;margin:1.5em;color:#222}\n"
              "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
              "text-align:right}th:first-child,td:first-child{text-align:left}\n"
              ".bg{fill:#fafafa;stroke:#ccc}.key span{display:inline-block;width:2em;"
              "height:0.3em;margin:0 0.4em 0.15em 1em;vertical-align:middle}\n",
              out);
        fputs(css, out);
        fputs("</style></head><body>\n", out);
}

int report_html(FILE *out, const char *scenario, const struct simrun_result *r)
{
        char a[32], b[32];

        report_html_begin(out, "dynmem-sim", scenario,
                          "figure{display:inline-block;margin:0.5em}figcaption{font-size:90%}\n"
                          ".demand{fill:none;stroke:#c0392b;stroke-width:1.2}\n"
                          ".assigned{fill:none;stroke:#2471a3;stroke-width:1.6}"
                          ".limit{stroke:#777;stroke-dasharray:4 3}\n");
        fputs("<h1>dynmem-sim: ", out);
        report_html_escape(out, scenario);
        fprintf(out, "</h1>\n<p>Policy <b>");
        report_html_escape(out, r->policy);
        fprintf(out, "</b>, %zu VMs over %s, host memory for VMs %s.</p>\n", r->vms,
                duration_format(r->duration_ms, a, sizeof(a)),
                size_format(r->memory_bytes, b, sizeof(b)));
        fprintf(out,
                "<table><tr><th>figure</th><th>value</th></tr>\n"
                "<tr><td>started / never started</td><td>%zu / %zu</td></tr>\n"
                "<tr><td>short VM-seconds</td><td>%.0f of %.0f</td></tr>\n"
                "<tr><td>OOM kills</td><td>%llu</td></tr>\n"
                "<tr><td>host memory held, mean</td><td>%s</td></tr>\n",
                r->started, r->refused, r->short_seconds, r->vm_seconds,
                (unsigned long long)r->oom_kills,
                size_format((uint64_t)r->host_mean_bytes, a, sizeof(a)));
        fprintf(out,
                "<tr><td>host memory held, peak</td><td>%s</td></tr>\n"
                "<tr><td>resize operations</td><td>%llu</td></tr>\n"
                "<tr><td>reaction p50 / p95</td><td>%.1f s / %.1f s</td></tr>\n"
                "<tr><td>budget violations</td><td>%llu</td></tr>\n",
                size_format(r->host_peak_bytes, a, sizeof(a)), (unsigned long long)r->resize_ops,
                r->reaction_p50_s, r->reaction_p95_s, (unsigned long long)r->budget_violations);
        if (strncmp(r->policy, "exec:", 5) == 0)
                fprintf(out,
                        "<tr><td>policy failures</td><td id=\"policy-failures\">%llu</td></tr>\n",
                        (unsigned long long)r->policy_failures);
        fputs("</table>\n", out);
        if (r->policy_failed)
                fputs("<p id=\"policy-failed\"><b>The policy never answered</b>: every VM kept its "
                      "startup size, and these are not its figures (its failures are on "
                      "stderr).</p>\n",
                      out);
        fputs("<p class=\"key\"><span style=\"background:#2471a3\"></span>assigned"
              "<span style=\"background:#c0392b\"></span>demand"
              "<span style=\"border-top:1px dashed #777\"></span>host memory</p>\n",
              out);
        if (r->host_series)
                chart(out, "host: all VMs", r->host_series, r->duration_ms, r->memory_bytes);
        for (size_t i = 0; i < r->vms && i < CHARTS_MAX; i++)
                if (r->per_vm[i].series)
                        chart(out, r->per_vm[i].name, r->per_vm[i].series, r->duration_ms, 0);
        if (r->vms > CHARTS_MAX)
                fprintf(out, "<p>Charts for the first %d VMs only.</p>\n", CHARTS_MAX);
        fputs("</body></html>\n", out);
        return ferror(out) ? -1 : 0;
}
