/*
 * http: the read-only HTTP interface, libmicrohttpd in the daemon's
 * libevent loop. See http.h and docs/http.md.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "control.h"
#include "address.h"
#include "daemon.h"
#include "dconfig.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "mono.h"
#include "web_assets.h"

#define HTTP_PRIORITY   1   /* client traffic: after the cycle's timer (priority 0) */
#define HTTP_EVENTS_MAX 256 /* events in one reply */
#define HTTP_FILES_MAX  8   /* page and library files */
#define VM_PREFIX       "/api/v1/vms/"

#define CSP                                                                                        \
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "             \
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

typedef char *(*build_fn)(struct http_server *s, size_t *ret_len);

enum {
        ERR_BAD_REQUEST,
        ERR_NOT_FOUND,
        ERR_METHOD,
        ERR_INTERNAL,
        N_ERRORS,
};

static const struct {
        unsigned status;
        const char *body;
} error_pages[N_ERRORS] = {
    [ERR_BAD_REQUEST] = {MHD_HTTP_BAD_REQUEST, "400 bad request\n"},
    [ERR_NOT_FOUND] = {MHD_HTTP_NOT_FOUND, "404 not found\n"},
    [ERR_METHOD] = {MHD_HTTP_METHOD_NOT_ALLOWED, "405 method not allowed: GET and HEAD only\n"},
    [ERR_INTERNAL] = {MHD_HTTP_INTERNAL_SERVER_ERROR, "500 out of memory\n"},
};

/* A body built from the daemon's state, shared by every request until it is stale. */
struct cached {
        struct MHD_Response *resp;
        uint64_t cycle;
        double built_ms;
};

struct file {
        const char *path; /* URL path */
        struct MHD_Response *resp;
};

struct http_server {
        struct daemon *d;
        struct MHD_Daemon *mhd;
        struct event *ready_ev; /* MHD's epoll descriptor is readable */
        struct event *timer_ev; /* MHD's next timeout */
        char url[ADDRESS_URL_MAX];
        struct MHD_Response *errors[N_ERRORS];
        struct file files[HTTP_FILES_MAX];
        size_t n_files;
        struct cached *cache; /* one per route */
        struct MHD_Response *events_resp;
        uint64_t events_since, events_last;
        struct log_ratelimit rl;
};

static int listen_on(const struct sockaddr_storage *ss, socklen_t len, char *err, size_t errlen)
{
        int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
        int v6only = ss->ss_family == AF_INET6 &&
                     !IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);

        if (fd < 0) {
                snprintf(err, errlen, "socket: %s", strerror(errno));
                return -errno;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ss->ss_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
        if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, HTTP_BACKLOG) < 0) {
                int e = errno;
                close(fd);
                snprintf(err, errlen, "cannot listen: %s", strerror(e));
                return -e;
        }
        return fd;
}

/* The URL with the port really bound (port 0 asks the kernel for one). */
static void make_url(struct http_server *s, int fd)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
                ss.ss_family = AF_UNSPEC;
        address_url(&ss, s->url, sizeof(s->url));
}

/* ---- responses ---- */

static struct MHD_Response *response(const void *data, size_t len, enum MHD_ResponseMemoryMode mode,
                                     const char *type, bool dynamic)
{
        struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, mode);

        if (!r)
                return NULL;
        if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) == MHD_NO ||
            MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                                    dynamic ? "no-store" : "no-cache") == MHD_NO ||
            MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") == MHD_NO ||
            MHD_add_response_header(r, "Content-Security-Policy", CSP) == MHD_NO ||
            MHD_add_response_header(r, "Referrer-Policy", "no-referrer") == MHD_NO) {
                MHD_destroy_response(r);
                return NULL;
        }
        return r;
}

/* A response owning text (malloc'd; freed with the response, or now on failure). */
static struct MHD_Response *owned(char *text, size_t len, const char *type)
{
        struct MHD_Response *r =
            text ? response(text, len, MHD_RESPMEM_MUST_FREE, type, true) : NULL;

        if (!r)
                free(text);
        return r;
}

static int make_errors(struct http_server *s)
{
        for (size_t i = 0; i < N_ERRORS; i++) {
                s->errors[i] = response(error_pages[i].body, strlen(error_pages[i].body),
                                        MHD_RESPMEM_PERSISTENT, "text/plain; charset=utf-8", true);
                if (!s->errors[i])
                        return -ENOMEM;
        }
        return MHD_add_response_header(s->errors[ERR_METHOD], MHD_HTTP_HEADER_ALLOW, "GET, HEAD") ==
                       MHD_YES
                   ? 0
                   : -ENOMEM;
}

static enum MHD_Result fail(struct http_server *s, struct MHD_Connection *c, int which)
{
        return MHD_queue_response(c, error_pages[which].status, s->errors[which]);
}

/* ---- files: the page and the chart library ---- */

/* Read a whole regular file of at most HTTP_FILE_MAX bytes. */
static int read_file(const char *path, char **ret, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        size_t at = 0;
        char *buf;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > HTTP_FILE_MAX) {
                close(fd);
                return -EINVAL;
        }
        buf = malloc((size_t)st.st_size + 1);
        while (buf && at < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + at, (size_t)st.st_size - at);
                if (n <= 0)
                        break;
                at += (size_t)n;
        }
        close(fd);
        if (!buf || at != (size_t)st.st_size) {
                free(buf);
                return buf ? -EIO : -ENOMEM;
        }
        *ret = buf;
        *ret_len = at;
        return 0;
}

static int add_file(struct http_server *s, const char *url, struct MHD_Response *r)
{
        if (!r)
                return -ENOMEM;
        s->files[s->n_files++] = (struct file){url, r};
        return 0;
}

/* A file from disk for url; -ENOENT and friends when it cannot be read. */
static int add_disk_file(struct http_server *s, const char *url, const char *path, const char *type)
{
        char *data = NULL;
        size_t len = 0;
        int r = read_file(path, &data, &len);

        if (r < 0)
                return r;
        struct MHD_Response *resp = response(data, len, MHD_RESPMEM_MUST_FREE, type, false);
        if (!resp)
                free(data);
        return add_file(s, url, resp);
}

static int load_page(struct http_server *s, const char *web_dir)
{
        char path[PATH_MAX];

        for (size_t i = 0; i < web_assets_n && s->n_files < HTTP_FILES_MAX - 2; i++) {
                const struct web_asset *a = &web_assets[i];
                if (web_dir) {
                        snprintf(path, sizeof(path), "%s%s", web_dir, a->path);
                        int r = add_disk_file(s, a->path, path, a->content_type);
                        if (r == 0)
                                continue;
                        if (r == -ENOMEM)
                                return r;
                        log_msg(LOG_WARNING, "http: %s: %s; serving the built-in %s", path,
                                strerror(-r), a->path + 1);
                }
                if (add_file(s, a->path,
                             response(a->data, a->size, MHD_RESPMEM_PERSISTENT, a->content_type,
                                      false)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static void load_library(struct http_server *s)
{
        static const struct {
                const char *url, *file, *type;
        } lib[] = {
            {"/lib/dygraph.min.js", "dygraph.min.js", "text/javascript; charset=utf-8"},
            {"/lib/dygraph.min.css", "dygraph.min.css", "text/css; charset=utf-8"},
        };
        char path[PATH_MAX];

        for (size_t i = 0; i < sizeof(lib) / sizeof(lib[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", HTTP_DYGRAPHS_DIR, lib[i].file);
                int r = add_disk_file(s, lib[i].url, path, lib[i].type);
                if (r < 0)
                        log_msg(LOG_NOTICE,
                                "http: %s: %s; the page's charts need Debian's libjs-dygraphs",
                                path, strerror(-r));
        }
}

/* ---- dynamic bodies ---- */

/* text, with its length; NULL stays NULL. */
static char *measured(char *text, size_t *ret_len)
{
        if (text)
                *ret_len = strlen(text);
        return text;
}

static char *build_vms(struct http_server *s, size_t *ret_len)
{
        return measured(commands_vms_text(s->d), ret_len);
}

static char *build_status(struct http_server *s, size_t *ret_len)
{
        json_t *h = commands_host_json(s->d);
        char *text = h ? json_dumps(h, CONTROL_JSON_FLAGS) : NULL;

        json_decref(h);
        return measured(text, ret_len);
}

static char *build_counters(struct http_server *s, size_t *ret_len)
{
        json_t *obj = NULL;
        char *text = metrics_counters_json(s->d, NULL, &obj) == 0
                         ? json_dumps(obj, CONTROL_JSON_FLAGS)
                         : NULL;

        json_decref(obj);
        return measured(text, ret_len);
}

static char *build_metrics(struct http_server *s, size_t *ret_len)
{
        return metrics_prometheus(s->d, ret_len);
}

static const struct route {
        const char *path;
        build_fn build;
        const char *type;
} routes[] = {
    {"/metrics", build_metrics, METRICS_CONTENT_TYPE},
    {"/api/v1/vms", build_vms, "application/json"},
    {"/api/v1/counters", build_counters, "application/json"},
    {"/api/v1/status", build_status, "application/json"},
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static enum MHD_Result serve_route(struct http_server *s, struct MHD_Connection *c, size_t i)
{
        struct cached *k = &s->cache[i];
        double now = mono_ms_exact();

        if (!k->resp || k->cycle != s->d->cycles || now - k->built_ms >= HTTP_CACHE_MS) {
                size_t len = 0;
                char *text = routes[i].build(s, &len);
                struct MHD_Response *r = owned(text, len, routes[i].type);
                if (!r)
                        return fail(s, c, ERR_INTERNAL);
                if (k->resp)
                        MHD_destroy_response(k->resp); /* connections still sending keep it */
                *k = (struct cached){r, s->d->cycles, now};
        }
        return MHD_queue_response(c, MHD_HTTP_OK, k->resp);
}

/* One VM, as `dynmem show NAME --json`: 404 for a VM that does not exist. */
static enum MHD_Result serve_vm(struct http_server *s, struct MHD_Connection *c, const char *name)
{
        size_t len = 0;
        char *text;

        if (!config_name_valid(name) || !registry_find(&s->d->reg, name))
                return fail(s, c, ERR_NOT_FOUND);
        text = measured(commands_vm_text(s->d, name), &len);
        if (!text)
                return fail(s, c, ERR_INTERNAL);
        struct MHD_Response *r = owned(text, len, "application/json");
        if (!r)
                return fail(s, c, ERR_INTERNAL);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r); /* the connection holds it until it is sent */
        return ret;
}

/* since=N, last=N: digits only, no overflow. */
static int parse_since(const char *text, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!text) {
                *ret = 0;
                return 0;
        }
        if (text[0] < '0' || text[0] > '9' || strlen(text) > 20)
                return -EINVAL;
        errno = 0;
        v = strtoull(text, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static enum MHD_Result serve_events(struct http_server *s, struct MHD_Connection *c)
{
        const char *arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
        const char *newest = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "last");
        uint64_t since, n = 0, last = events_last(s->d->events);

        if (parse_since(arg, &since) < 0 || parse_since(newest, &n) < 0 ||
            (newest && (n == 0 || n > HTTP_EVENTS_MAX)))
                return fail(s, c, ERR_BAD_REQUEST);
        if (newest && last > n && since < last - n)
                since = last - n; /* only the newest n */
        if (!s->events_resp || s->events_since != since || s->events_last != last) {
                json_t *obj = events_json(s->d->events, since, HTTP_EVENTS_MAX);
                char *text = obj ? json_dumps(obj, CONTROL_JSON_FLAGS) : NULL;
                struct MHD_Response *r = owned(text, text ? strlen(text) : 0, "application/json");
                json_decref(obj);
                if (!r)
                        return fail(s, c, ERR_INTERNAL);
                if (s->events_resp)
                        MHD_destroy_response(s->events_resp);
                s->events_resp = r;
                s->events_since = since;
                s->events_last = last;
        }
        return MHD_queue_response(c, MHD_HTTP_OK, s->events_resp);
}

/* The request announces a body: a Content-Length other than 0, or chunks. */
static bool has_body(struct MHD_Connection *c)
{
        const char *length =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

        return (length && strspn(length, "0") != strlen(length)) ||
               MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) !=
                   NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
        static int headers_seen;
        struct http_server *s = cls;

        (void)version, (void)upload_data;
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
                return fail(s, c, ERR_METHOD); /* at once: its body is not read */
        if (!*req_cls) {
                /*
                 * A GET with a body: answered at once, its body not read (libmicrohttpd
                 * takes no response while a body is arriving).
                 */
                if (has_body(c))
                        return fail(s, c, ERR_BAD_REQUEST);
                /* answered on the next call, once the request is whole: the connection stays open
                 */
                *req_cls = &headers_seen;
                return MHD_YES;
        }
        if (*upload_data_size)
                return fail(s, c, ERR_BAD_REQUEST); /* a GET with a body */
        if (strcmp(url, "/") == 0)
                url = "/index.html";
        for (size_t i = 0; i < N_ROUTES; i++)
                if (strcmp(url, routes[i].path) == 0)
                        return serve_route(s, c, i);
        if (strcmp(url, "/api/v1/events") == 0)
                return serve_events(s, c);
        if (strncmp(url, VM_PREFIX, strlen(VM_PREFIX)) == 0)
                return serve_vm(s, c, url + strlen(VM_PREFIX));
        for (size_t i = 0; i < s->n_files; i++)
                if (strcmp(url, s->files[i].path) == 0)
                        return MHD_queue_response(c, MHD_HTTP_OK, s->files[i].resp);
        return fail(s, c, ERR_NOT_FOUND);
}

/* ---- the event loop ---- */

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        struct http_server *s = cls;
        char msg[256];

        if (!log_ratelimit_ok(&s->rl, (uint64_t)mono_ms_exact()))
                return;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        msg[strcspn(msg, "\n")] = '\0';
        log_msg(LOG_WARNING, "http: %s", msg);
}

static void schedule(struct http_server *s)
{
        MHD_UNSIGNED_LONG_LONG ms;

        if (MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
                struct timeval tv = mono_timeval(ms);
                evtimer_add(s->timer_ev, &tv);
        } else {
                evtimer_del(s->timer_ev);
        }
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
        struct http_server *s = arg;

        (void)fd, (void)what;
        MHD_run(s->mhd);
        schedule(s);
}

static int start_mhd(struct http_server *s, int fd, char *err, size_t errlen)
{
        const union MHD_DaemonInfo *info;

        s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS_MAX,
                                  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_PER_IP_MAX,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
                                  MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
        if (!s->mhd) {
                close(fd);
                snprintf(err, errlen, "libmicrohttpd would not start");
                return -ENOMEM;
        }
        info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info) {
                snprintf(err, errlen, "libmicrohttpd has no epoll descriptor");
                return -ENOTSUP;
        }
        s->ready_ev = event_new(s->d->base, info->epoll_fd, EV_READ | EV_PERSIST, on_ready, s);
        s->timer_ev = evtimer_new(s->d->base, on_ready, s);
        if (!s->ready_ev || !s->timer_ev || event_priority_set(s->ready_ev, HTTP_PRIORITY) < 0 ||
            event_priority_set(s->timer_ev, HTTP_PRIORITY) < 0 ||
            event_add(s->ready_ev, NULL) < 0) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        schedule(s);
        return 0;
}

int http_server_new(struct daemon *d, const struct http_options *opt, struct http_server **ret,
                    char *err, size_t errlen)
{
        struct http_server *s = calloc(1, sizeof(*s));
        struct sockaddr_storage ss;
        socklen_t len;
        int fd, r;

        if (!s || !(s->cache = calloc(N_ROUTES, sizeof(*s->cache)))) {
                free(s);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        s->d = d;
        s->rl = LOG_RATELIMIT(10, 10);
        r = address_parse(opt->address, opt->allow_remote, &ss, &len, err, errlen);
        if (r == 0 && ((r = make_errors(s)) < 0 || (r = load_page(s, opt->web_dir)) < 0))
                snprintf(err, errlen, "out of memory");
        if (r < 0) {
                http_server_free(s);
                return r;
        }
        load_library(s);
        fd = listen_on(&ss, len, err, errlen);
        if (fd < 0) {
                http_server_free(s);
                return fd;
        }
        make_url(s, fd);
        r = start_mhd(s, fd, err, errlen);
        if (r < 0) {
                http_server_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

const char *http_server_url(const struct http_server *s)
{
        return s ? s->url : NULL;
}

void http_server_free(struct http_server *s)
{
        if (!s)
                return;
        if (s->ready_ev)
                event_free(s->ready_ev);
        if (s->timer_ev)
                event_free(s->timer_ev);
        if (s->mhd)
                MHD_stop_daemon(s->mhd); /* closes the connections and the socket */
        for (size_t i = 0; i < N_ERRORS; i++)
                if (s->errors[i])
                        MHD_destroy_response(s->errors[i]);
        for (size_t i = 0; i < s->n_files; i++)
                MHD_destroy_response(s->files[i].resp);
        for (size_t i = 0; s->cache && i < N_ROUTES; i++)
                if (s->cache[i].resp)
                        MHD_destroy_response(s->cache[i].resp);
        if (s->events_resp)
                MHD_destroy_response(s->events_resp);
        free(s->cache);
        free(s);
}

/* ---- the daemon's configuration ---- */

int http_setup(struct daemon *d)
{
        const struct config_host *h = &d->cfg.host;
        struct http_options opt = {h->http, h->http_allow_remote, h->web_dir};
        char err[512] = "", at[PATH_MAX + 16];
        int r;

        if (!dconfig_http_wanted(h->http))
                return 0;
        r = http_server_new(d, &opt, &d->http, err, sizeof(err));
        if (r < 0)
                log_msg(LOG_ERR, "%s: [host] http = %s: %s",
                        dconfig_key_at(&d->cfg, "host", "http", at, sizeof(at)), h->http, err);
        return r;
}
