/*
 * http: dynmemd's read-only HTTP interface ([host] http = ADDRESS:PORT),
 * served by libmicrohttpd inside the daemon's libevent loop: MHD runs in
 * its external-epoll mode (no thread of its own), libevent watches MHD's
 * epoll descriptor and MHD's next timeout, both at the priority of client
 * traffic, so a balancing cycle that is due always runs first.
 *
 *   GET /metrics           Prometheus text format 0.0.4
 *   GET /api/v1/vms        the VMs, as `dynmem list --json`
 *   GET /api/v1/vms/NAME   one VM, as `dynmem show NAME --json`
 *   GET /api/v1/counters   the counter sets, as `dynmem counters --json`
 *   GET /api/v1/status     the host, as `dynmem status --json`
 *   GET /api/v1/events     recent events (?since=N, ?last=N), as `dynmem events --json`
 *   GET /                  the live page (index.html, app.js, style.css), and
 *   GET /lib/dygraph.min.js, /lib/dygraph.min.css from Debian's libjs-dygraphs
 *
 * Only GET and HEAD (405 otherwise); unknown paths get 404, bad queries
 * 400. Dynamic bodies are built at most once per balancing cycle (and at
 * most once a second between cycles) and shared by every request that
 * asks in that time. Limits: HTTP_CONNECTIONS_MAX connections at once,
 * HTTP_PER_IP_MAX from one address, HTTP_TIMEOUT_S without progress.
 * docs/http.md is the reference.
 */
#ifndef DYNMEM_HTTP_H
#define DYNMEM_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_CONNECTIONS_MAX 64
#define HTTP_PER_IP_MAX      16
#define HTTP_TIMEOUT_S       10
#define HTTP_BACKLOG         128
#define HTTP_CACHE_MS        1000 /* a dynamic body is rebuilt after a cycle, or this */
#define HTTP_FILE_MAX        (4u * 1024 * 1024) /* a page or library file read at start */
#define HTTP_DYGRAPHS_DIR    "/usr/share/javascript/dygraphs"

struct config_host;
struct daemon;
struct http_server;

struct http_options {
        const char *address; /* ADDRESS:PORT (address.h) */
        bool allow_remote;   /* [host] http_allow_remote: listen beyond loopback */
        const char *web_dir; /* [host] web_dir: page files that replace the built-in ones */
};

/*
 * Listen and serve from d's event loop. Returns 0, or a negative errno with
 * one sentence in err (address in use, bad address, out of memory).
 */
int http_server_new(struct daemon *d, const struct http_options *opt, struct http_server **ret,
                    char *err, size_t errlen);

/*
 * Start d->http from [host] http, http_allow_remote and web_dir when http
 * is set (an empty value or "off" leaves it off). Returns 0, -EINVAL for a
 * bad address or another negative errno (logged).
 */
int http_setup(struct daemon *d);

/* "http://127.0.0.1:9100/" with the port really bound; NULL for NULL. */
const char *http_server_url(const struct http_server *s);

/* Close every connection and the socket. Accepts NULL. */
void http_server_free(struct http_server *s);

#endif
