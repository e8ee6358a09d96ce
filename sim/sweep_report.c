/*
 * sweep_report: how dynmem-sim presents a sweep: a table for people, one JSON
 * object for programs, and a self-contained HTML page (inline SVG, no
 * scripts, no network) with the curves of short VM-seconds and OOM kills
 * against host memory for each policy, the smallest host meeting the service
 * level, and the table.
 */
#include "sweep_report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "units.h"

#define PLOT_W    720
#define PLOT_H    260
#define PLOT_L    64   /* room for the y labels */
#define PLOT_B    36   /* room for the x labels */
#define PLOT_R    32   /* room for the last x label */
#define SHARE_MIN 1e-6 /* the log axis's floor: 0.0001 % (and shorter, drawn there) */
#define OOM_FLOOR 0.3  /* where 0 OOM kills are drawn, under 1 on the log axis */

static const char *const colours[] = {"#7f8c8d", "#c0392b", "#2471a3", "#27ae60",
                                      "#8e44ad", "#d35400", "#16a085", "#2c3e50"};

/* The scenario's file name, for the page's heading (the full path is in its title). */
static const char *base_name(const char *path)
{
        const char *slash = strrchr(path, '/');
        return slash && slash[1] ? slash + 1 : path;
}

/* An exec: policy can fail: its columns add its count of failures. */
static bool can_fail(const char *policy)
{
        return strncmp(policy, "exec:", 5) == 0;
}

static double share_of(const struct sweep_figures *f)
{
        return f->vm_seconds > 0 ? f->short_seconds / f->vm_seconds : 0.0;
}

static void slo_text(char *buf, size_t len, const struct sweep_result *r)
{
        int n = snprintf(buf, len, "every VM started");
        if (r->slo.short_given && n >= 0 && (size_t)n < len)
                n += snprintf(buf + n, len - (size_t)n, ", short at most %g %% of VM-seconds",
                              r->slo.short_share * 100.0);
        if (r->slo.oom_given && n >= 0 && (size_t)n < len)
                snprintf(buf + n, len - (size_t)n, ", at most %llu OOM kills",
                         (unsigned long long)r->slo.oom_max);
}

void sweep_report_human(FILE *out, const char *scenario, const struct sweep_result *r)
{
        char a[32], b[32], slo[160];
        bool starred = false;

        fprintf(out, "sweep of %s: %zu host size%s x %zu polic%s in %.1f s on %u worker%s\n",
                scenario, r->n_sizes, r->n_sizes == 1 ? "" : "s", r->n_policies,
                r->n_policies == 1 ? "y" : "ies", r->wall_s, r->jobs, r->jobs == 1 ? "" : "s");
        fprintf(out, "%-10s", "memory");
        for (size_t p = 0; p < r->n_policies; p++)
                fprintf(out, can_fail(r->policies[p]) ? " %36.36s" : " %27.27s", r->policies[p]);
        fprintf(out, "\n%-10s", "");
        for (size_t p = 0; p < r->n_policies; p++)
                fprintf(out, can_fail(r->policies[p]) ? " %10s %5s %10s %8s" : " %10s %5s %10s",
                        "short %", "OOM", "mean", "failures");
        fputc('\n', out);
        for (size_t s = 0; s < r->n_sizes; s++) {
                fprintf(out, "%-10s", size_format(r->sizes[s], a, sizeof(a)));
                for (size_t p = 0; p < r->n_policies; p++) {
                        const struct sweep_figures *f = sweep_at(r, s, p);
                        bool counted = can_fail(r->policies[p]);
                        if (f->status < 0) {
                                fprintf(out, counted ? " %36s" : " %27s", "failed");
                                continue;
                        }
                        if (f->policy_failed)
                                fprintf(out, " %27s", "never answered");
                        else
                                fprintf(out, " %9.4f%c %5llu %10s", share_of(f) * 100.0,
                                        f->started < f->vms ? '*' : ' ',
                                        (unsigned long long)f->oom_kills,
                                        size_format((uint64_t)f->host_mean_bytes, b, sizeof(b)));
                        starred |= !f->policy_failed && f->started < f->vms;
                        if (counted)
                                fprintf(out, " %8llu", (unsigned long long)f->policy_failures);
                }
                fputc('\n', out);
        }
        if (starred) /* the note, only under a table that has a star to explain */
                fputs("(* not every VM started)\n", out);
        if (!r->slo_given)
                return;
        slo_text(slo, sizeof(slo), r);
        fprintf(out, "smallest host meeting the service level (%s):\n", slo);
        for (size_t p = 0; p < r->n_policies; p++)
                fprintf(out, "  %-24s %s\n", r->policies[p],
                        r->smallest[p] ? size_format(r->smallest[p], a, sizeof(a)) : "none");
}

json_t *sweep_report_json(const struct sweep_result *r)
{
        json_t *o = json_object(), *points = json_array(), *smallest = json_object();

        if (!o || !points || !smallest) {
                json_decref(o), json_decref(points), json_decref(smallest);
                return NULL;
        }
        for (size_t s = 0; s < r->n_sizes; s++)
                for (size_t p = 0; p < r->n_policies; p++) {
                        const struct sweep_figures *f = sweep_at(r, s, p);
                        json_array_append_new(
                            points,
                            json_pack(
                                "{s:I, s:s, s:b, s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:I, "
                                "s:I, s:b, s:I, s:b}",
                                "memory_bytes", (json_int_t)r->sizes[s], "policy", r->policies[p],
                                "ok", sweep_point_ok(f), "vms", (json_int_t)f->vms, "started",
                                (json_int_t)f->started, "vm_seconds", f->vm_seconds,
                                "short_seconds", f->short_seconds, "short_share", share_of(f),
                                "oom_kills", (json_int_t)f->oom_kills, "host_mean_bytes",
                                f->host_mean_bytes, "resize_ops", (json_int_t)f->resize_ops,
                                "budget_violations", (json_int_t)f->budget_violations, "meets_slo",
                                sweep_meets(&r->slo, f), "policy_failures",
                                (json_int_t)f->policy_failures, "policy_failed", f->policy_failed));
                }
        for (size_t p = 0; p < r->n_policies; p++)
                json_object_set_new(smallest, r->policies[p],
                                    r->smallest[p] ? json_integer((json_int_t)r->smallest[p])
                                                   : json_null());
        json_object_set_new(o, "points", points);
        json_object_set_new(o, "smallest_bytes", r->slo_given ? smallest : json_null());
        if (!r->slo_given)
                json_decref(smallest);
        json_object_set_new(
            o, "slo",
            json_pack("{s:o, s:o}", "short_share",
                      r->slo.short_given ? json_real(r->slo.short_share) : json_null(), "oom_kills",
                      r->slo.oom_given ? json_integer((json_int_t)r->slo.oom_max) : json_null()));
        json_object_set_new(o, "wall_s", json_real(r->wall_s));
        json_object_set_new(o, "workers", json_integer(r->jobs));
        return o;
}

/* ---- the page ---- */

/* Both charts have a log y axis; OOM kills start at a floor drawn as 0. */
struct axes {
        double x_lo, x_hi, y_lo, y_hi;
        bool percent;    /* tick labels as percentages */
        bool zero_floor; /* the floor stands for 0 */
};

static double px(const struct axes *ax, double x)
{
        double span = ax->x_hi > ax->x_lo ? ax->x_hi - ax->x_lo : 1.0;
        return PLOT_L + (x - ax->x_lo) * (PLOT_W - PLOT_L - PLOT_R) / span;
}

static double py(const struct axes *ax, double y)
{
        double lo = log10(ax->y_lo), hi = log10(ax->y_hi);
        double v = log10(y < ax->y_lo ? ax->y_lo : y);
        return (PLOT_H - PLOT_B) - (v - lo) * (PLOT_H - PLOT_B - 12) / (hi > lo ? hi - lo : 1.0);
}

static void y_tick(FILE *out, const struct axes *ax, double v, double label)
{
        fprintf(out,
                "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g%s</text>\n",
                PLOT_L, PLOT_W - PLOT_R, py(ax, v), py(ax, v), PLOT_L - 6, py(ax, v) + 4,
                ax->percent ? label * 100.0 : label, ax->percent ? " %" : "");
}

static void y_ticks(FILE *out, const struct axes *ax)
{
        double v = ax->y_lo;

        if (ax->zero_floor) {
                y_tick(out, ax, v, 0.0);
                v = 1.0;
        }
        for (; v <= ax->y_hi * 1.0001; v *= 10.0)
                y_tick(out, ax, v, v);
}

static void x_ticks(FILE *out, const struct axes *ax, const struct sweep_result *r)
{
        size_t every = r->n_sizes > 16 ? (r->n_sizes + 15) / 16 : 1;
        char a[32];

        for (size_t s = 0; s < r->n_sizes; s += every) {
                double x = px(ax, (double)r->sizes[s]);
                fprintf(
                    out,
                    "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"12\" y2=\"%d\"/>"
                    "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                    x, x, PLOT_H - PLOT_B, x, PLOT_H - PLOT_B + 16,
                    size_format(r->sizes[s], a, sizeof(a)));
        }
        fprintf(out,
                "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">host memory for "
                "VMs</text>\n",
                (PLOT_L + PLOT_W) / 2, PLOT_H - 4);
}

/* One policy's curve: a polyline and a marker per size that ran. */
static void curve(FILE *out, const struct axes *ax, const struct sweep_result *r, size_t p,
                  bool oom)
{
        const char *colour = colours[p % (sizeof(colours) / sizeof(colours[0]))];

        fprintf(out, "<polyline class=\"curve\" data-policy=\"");
        report_html_escape(out, r->policies[p]);
        fprintf(out, "\" stroke=\"%s\" points=\"", colour);
        for (size_t s = 0; s < r->n_sizes; s++) {
                const struct sweep_figures *f = sweep_at(r, s, p);
                if (sweep_point_ok(f))
                        fprintf(out, "%.1f,%.1f ", px(ax, (double)r->sizes[s]),
                                py(ax, oom ? (double)f->oom_kills : share_of(f)));
        }
        fputs("\"/>\n", out);
        for (size_t s = 0; s < r->n_sizes; s++) {
                const struct sweep_figures *f = sweep_at(r, s, p);
                if (sweep_point_ok(f))
                        fprintf(out,
                                "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" "
                                "fill=\"%s\"/>\n",
                                px(ax, (double)r->sizes[s]),
                                py(ax, oom ? (double)f->oom_kills : share_of(f)),
                                f->started < f->vms ? "2" : "3.5", colour);
        }
}

static void smallest_markers(FILE *out, const struct axes *ax, const struct sweep_result *r)
{
        for (size_t p = 0; r->slo_given && p < r->n_policies; p++) {
                if (!r->smallest[p])
                        continue;
                double x = px(ax, (double)r->smallest[p]);
                fprintf(out,
                        "<line class=\"smallest\" stroke=\"%s\" x1=\"%.1f\" x2=\"%.1f\" y1=\"12\" "
                        "y2=\"%d\"/>\n",
                        colours[p % (sizeof(colours) / sizeof(colours[0]))], x, x, PLOT_H - PLOT_B);
        }
}

static void plot(FILE *out, const char *id, const char *title, const struct sweep_result *r,
                 bool oom)
{
        struct axes ax = {.x_lo = (double)r->sizes[0], .x_hi = (double)r->sizes[r->n_sizes - 1]};
        double top = 0.0;

        for (size_t j = 0; j < r->n_sizes * r->n_policies; j++)
                if (sweep_point_ok(&r->figures[j])) {
                        double v = oom ? (double)r->figures[j].oom_kills : share_of(&r->figures[j]);
                        top = v > top ? v : top;
                }
        ax.percent = !oom;
        ax.zero_floor = oom;
        ax.y_lo = oom ? OOM_FLOOR : SHARE_MIN;
        ax.y_hi = oom ? 10.0 : SHARE_MIN * 10.0;
        while (ax.y_hi < top && ax.y_hi < (oom ? 1e12 : 1.0))
                ax.y_hi *= 10.0;
        fprintf(out, "<figure><figcaption>%s</figcaption>\n", title);
        fprintf(out, "<svg id=\"%s\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\">\n", id,
                PLOT_W, PLOT_H, PLOT_W, PLOT_H);
        fprintf(out, "<rect class=\"bg\" x=\"%d\" y=\"12\" width=\"%d\" height=\"%d\"/>\n", PLOT_L,
                PLOT_W - PLOT_R - PLOT_L, PLOT_H - PLOT_B - 12);
        y_ticks(out, &ax);
        x_ticks(out, &ax, r);
        if (!oom && r->slo_given && r->slo.short_given && r->slo.short_share > 0) {
                double y = py(&ax, r->slo.short_share);
                fprintf(out,
                        "<line class=\"slo\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
                        "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">service "
                        "level</text>\n",
                        PLOT_L, PLOT_W - PLOT_R, y, y, PLOT_W - 20, y - 4);
        }
        smallest_markers(out, &ax, r);
        for (size_t p = 0; p < r->n_policies; p++)
                curve(out, &ax, r, p, oom);
        fputs("</svg></figure>\n", out);
}

static void legend(FILE *out, const struct sweep_result *r)
{
        fputs("<p class=\"key\">", out);
        for (size_t p = 0; p < r->n_policies; p++) {
                fprintf(out, "<span style=\"background:%s\"></span>",
                        colours[p % (sizeof(colours) / sizeof(colours[0]))]);
                report_html_escape(out, r->policies[p]);
        }
        fputs(" &nbsp; small dots: not every VM started; vertical lines: smallest host meeting "
              "the service level</p>\n",
              out);
}

static void smallest_line(FILE *out, const struct sweep_result *r)
{
        char a[32], slo[160];

        if (!r->slo_given)
                return;
        slo_text(slo, sizeof(slo), r);
        fprintf(out, "<p id=\"smallest\">Smallest host meeting the service level (%s):", slo);
        for (size_t p = 0; p < r->n_policies; p++) {
                fprintf(out, "%s <span data-policy=\"", p ? "," : "");
                report_html_escape(out, r->policies[p]);
                fprintf(out, "\" data-bytes=\"%llu\"><b>", (unsigned long long)r->smallest[p]);
                report_html_escape(out, r->policies[p]);
                fprintf(out, "</b> %s</span>",
                        r->smallest[p] ? size_format(r->smallest[p], a, sizeof(a))
                                       : "none in the sweep");
        }
        fputs(".</p>\n", out);
}

static void table(FILE *out, const struct sweep_result *r)
{
        char a[32], b[32];

        fputs("<table id=\"sweep-table\"><tr><th>host memory</th>", out);
        for (size_t p = 0; p < r->n_policies; p++) {
                fputs("<th>", out);
                report_html_escape(out, r->policies[p]);
                fputs(": short %</th><th>OOM kills</th><th>started</th><th>mean held</th>"
                      "<th>resizes</th>",
                      out);
                if (can_fail(r->policies[p]))
                        fputs("<th>policy failures</th>", out);
        }
        fputs("</tr>\n", out);
        for (size_t s = 0; s < r->n_sizes; s++) {
                fprintf(out, "<tr data-bytes=\"%llu\"><td>%s</td>", (unsigned long long)r->sizes[s],
                        size_format(r->sizes[s], a, sizeof(a)));
                for (size_t p = 0; p < r->n_policies; p++) {
                        const struct sweep_figures *f = sweep_at(r, s, p);
                        bool counted = can_fail(r->policies[p]);
                        if (f->status < 0) {
                                fprintf(out, "<td colspan=\"%d\">failed</td>", counted ? 6 : 5);
                                continue;
                        }
                        if (f->policy_failed)
                                fputs("<td colspan=\"5\" class=\"failed\">never answered</td>",
                                      out);
                        else
                                fprintf(out,
                                        "<td%s>%.4f</td><td>%llu</td><td>%llu/%llu</td><td>%s</td>"
                                        "<td>%llu</td>",
                                        r->slo_given && sweep_meets(&r->slo, f) ? " class=\"meets\""
                                                                                : "",
                                        share_of(f) * 100.0, (unsigned long long)f->oom_kills,
                                        (unsigned long long)f->started, (unsigned long long)f->vms,
                                        size_format((uint64_t)f->host_mean_bytes, b, sizeof(b)),
                                        (unsigned long long)f->resize_ops);
                        if (counted)
                                fprintf(out, "<td class=\"policy-failures\">%llu</td>",
                                        (unsigned long long)f->policy_failures);
                }
                fputs("</tr>\n", out);
        }
        fputs("</table>\n", out);
}

int sweep_report_html(FILE *out, const char *scenario, const struct sweep_result *r)
{
        report_html_begin(out, "dynmem-sim sweep", scenario,
                          "td.meets{background:#e8f6ec}td.failed{background:#fbe9e7}\n"
                          "figure{margin:0.5em 0}figcaption{font-size:95%;margin-bottom:0.2em}\n"
                          ".grid{stroke:#e4e4e4}.tick{font-size:11px;fill:#555}\n"
                          ".label{font-size:12px;fill:#333}.curve{fill:none;stroke-width:2}\n"
                          ".slo{stroke:#333;stroke-dasharray:6 4}"
                          ".smallest{stroke-dasharray:2 3;stroke-width:1.5}\n");
        fputs("<h1>Capacity sweep: ", out);
        report_html_escape(out, base_name(scenario));
        fprintf(out,
                "</h1>\n<p>%zu host size%s &times; %zu polic%s, simulated on %u worker process%s "
                "in %.1f s.</p>\n",
                r->n_sizes, r->n_sizes == 1 ? "" : "s", r->n_policies,
                r->n_policies == 1 ? "y" : "ies", r->jobs, r->jobs == 1 ? "" : "es", r->wall_s);
        smallest_line(out, r);
        legend(out, r);
        plot(out, "short-curve", "Short VM-seconds, % of VM-seconds (log scale)", r, false);
        plot(out, "oom-curve", "OOM kills (log scale)", r, true);
        table(out, r);
        fputs("</body></html>\n", out);
        return ferror(out) ? -1 : 0;
}
