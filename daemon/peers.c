/*
 * peers: what the peer hosts' dynmemds say, over their HTTP API. See
 * peers.h.
 */
#include "peers.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "mono.h"
#include "settings.h"

#define PEER_HOST_MAX 256

/*
 * A peer's name lookup under way. libevent's HTTP client does not cancel its
 * own lookup when its connection is freed (it runs on to its timeout, then
 * connects for nobody), so peers.c looks the name up itself and connects to
 * the address. A lookup given up (the peer removed at a reload or freed, its
 * deadline passed) is cancelled: it leaves the name servers at once, and its
 * callback, which libevent still runs later in the loop, finds p NULL and
 * only frees this. What it found can never reach another peer.
 */
struct lookup {
        struct peer *p; /* NULL once given up */
        struct evdns_getaddrinfo_request *req;
        bool in_ask; /* the answer came within ask_one() (an address, /etc/hosts) */
};

struct peer {
        struct peers *owner;
        char name[CONFIG_NAME_MAX];
        char *libvirt_uri, *http;
        char host[PEER_HOST_MAX]; /* to connect to: a name, or an address without brackets */
        char host_header[PEER_HOST_MAX + 8]; /* "name:port", "[v6addr]:port" (RFC 7230, 5.4) */
        int port;
        struct evhttp_connection *conn;
        char conn_addr[INET6_ADDRSTRLEN]; /* the address conn connects to */
        struct lookup *lookup;            /* under way, or NULL */
        bool asking;
        struct event *deadline; /* the whole answer within the timeout, not each read */
        struct peer_view view;  /* name, libvirt_uri, http point into this struct */
        char error[160];
};

struct peers {
        struct event_base *base;
        struct evdns_base *dns; /* a peer's name looked up in the loop (the owner's resolver) */
        struct peer *p;
        size_t n;
        uint64_t timeout_ms;
        struct event *timer;
        void (*on_answered)(void *);
        void *userdata;
};

/* ---- a reply ---- */

static int get_size(const json_t *h, const char *key, uint64_t max, uint64_t *ret, char *err,
                    size_t errlen)
{
        const json_t *v = json_object_get(h, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > max) {
                snprintf(err, errlen, "\"%s\" is missing or not a whole number in range", key);
                return -EINVAL;
        }
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

int peers_parse_status(const char *body, size_t len, struct peer_view *ret, char *err,
                       size_t errlen)
{
        /* a host's memory for VMs: at most CONFIG_VMS_MAX VMs of SETTINGS_SIZE_MAX each */
        const uint64_t max = (uint64_t)CONFIG_VMS_MAX * SETTINGS_SIZE_MAX;
        json_error_t jerr;
        json_t *h;
        int r;

        if (len > PEERS_BODY_MAX) {
                snprintf(err, errlen, "reply longer than %d bytes", PEERS_BODY_MAX);
                return -EINVAL;
        }
        h = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(h)) {
                snprintf(err, errlen, "not a dynmemd status: %s",
                         h ? "not a JSON object" : jerr.text);
                json_decref(h);
                return -EINVAL;
        }
        r = get_size(h, "memory_bytes", max, &ret->memory_bytes, err, errlen);
        if (r == 0)
                r = get_size(h, "assigned_bytes", max, &ret->assigned_bytes, err, errlen);
        if (r == 0)
                r = get_size(h, "available_for_balancing_bytes", max, &ret->available_bytes, err,
                             errlen);
        if (r == 0)
                r = get_size(h, "running", CONFIG_VMS_MAX, &ret->running, err, errlen);
        json_decref(h);
        return r;
}

/* ---- asking ---- */

static void round_over(struct peers *ps)
{
        if (!peers_asking(ps) && ps->on_answered)
                ps->on_answered(ps->userdata);
}

static void down(struct peer *p, const char *why)
{
        p->view.state = PEER_DOWN;
        snprintf(p->error, sizeof(p->error), "%s", why);
}

static void on_reply(struct evhttp_request *req, void *arg)
{
        struct peer *p = arg;
        char err[160];
        struct peer_view v = {0};

        p->asking = false;
        if (p->deadline)
                event_del(p->deadline);
        if (!req || evhttp_request_get_response_code(req) == 0) {
                down(p, "no answer (connection refused, unreachable or timed out)");
        } else if (evhttp_request_get_response_code(req) != 200) {
                char why[32];
                snprintf(why, sizeof(why), "HTTP status %d", evhttp_request_get_response_code(req));
                down(p, why);
        } else {
                struct evbuffer *in = evhttp_request_get_input_buffer(req);
                size_t len = evbuffer_get_length(in);
                const char *body =
                    len <= PEERS_BODY_MAX ? (const char *)evbuffer_pullup(in, -1) : NULL;
                if (!body && len)
                        down(p, "reply too long");
                else if (peers_parse_status(body ? body : "", len, &v, err, sizeof(err)) < 0)
                        down(p, err);
                else {
                        p->view.memory_bytes = v.memory_bytes;
                        p->view.assigned_bytes = v.assigned_bytes;
                        p->view.available_bytes = v.available_bytes;
                        p->view.running = v.running;
                        p->view.state = PEER_UP;
                        p->view.answered_ms = mono_ms();
                        p->error[0] = '\0';
                }
        }
        round_over(p->owner);
}

/*
 * libevent's timeout bounds each wait for a byte: a peer that sends a little
 * now and then would keep the round waiting. Past the timeout, the question
 * is given up (freeing the connection cancels it, without on_reply).
 */
static void give_up_lookup(struct peer *p)
{
        struct lookup *l = p->lookup;

        if (!l)
                return;
        p->lookup = NULL;
        l->p = NULL;
        if (l->req)
                evdns_getaddrinfo_cancel(l->req); /* its callback, later, frees l */
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
        struct peer *p = arg;
        char why[96];

        (void)fd, (void)what;
        if (!p->asking)
                return;
        give_up_lookup(p);
        if (p->conn)
                evhttp_connection_free(p->conn);
        p->conn = NULL;
        p->asking = false;
        snprintf(why, sizeof(why), "no complete answer within %llu ms",
                 (unsigned long long)p->owner->timeout_ms);
        down(p, why);
        round_over(p->owner);
}

/* The question, to the address the peer's name has now. false: the peer is down. */
static bool send_question(struct peer *p, const char *addr)
{
        struct peers *ps = p->owner;
        struct evhttp_request *req;

        if (p->conn && strcmp(p->conn_addr, addr) != 0) {
                evhttp_connection_free(p->conn); /* the name moved */
                p->conn = NULL;
        }
        if (!p->conn) {
                p->conn = evhttp_connection_base_new(ps->base, NULL, addr, (uint16_t)p->port);
                if (!p->conn) {
                        down(p, "cannot make a connection (out of memory?)");
                        return false;
                }
                snprintf(p->conn_addr, sizeof(p->conn_addr), "%s", addr);
                struct timeval tv = {(time_t)(ps->timeout_ms / 1000),
                                     (suseconds_t)(ps->timeout_ms % 1000 * 1000)};
                evhttp_connection_set_timeout_tv(p->conn, &tv);
                evhttp_connection_set_max_body_size(p->conn, PEERS_BODY_MAX);
                evhttp_connection_set_retries(p->conn, 0);
        }
        req = evhttp_request_new(on_reply, p);
        if (!req) {
                down(p, "out of memory");
                return false;
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Host", p->host_header);
        if (evhttp_make_request(p->conn, req, EVHTTP_REQ_GET, "/api/v1/status") < 0) {
                down(p, "the request could not be sent"); /* libevent freed the request */
                return false;
        }
        return true;
}

/* The end of a lookup: the question sent to its first address, or the peer down. */
static void looked_up(int result, struct evutil_addrinfo *ai, void *arg)
{
        struct lookup *l = arg;
        struct peer *p = l->p;
        bool in_ask = l->in_ask;
        char addr[INET6_ADDRSTRLEN] = "", why[160];

        if (p)
                p->lookup = NULL;
        free(l);
        if (ai && ai->ai_family == AF_INET)
                evutil_inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, addr,
                                 sizeof(addr));
        else if (ai && ai->ai_family == AF_INET6)
                evutil_inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, addr,
                                 sizeof(addr));
        if (ai)
                evutil_freeaddrinfo(ai);
        if (!p)
                return; /* given up: nothing of it is used */
        if (result == 0 && addr[0] && send_question(p, addr))
                return;
        if (result != 0) {
                snprintf(why, sizeof(why), "name %.100s not found: %s", p->host,
                         evutil_gai_strerror(result));
                down(p, why);
        } else if (!addr[0]) {
                down(p, "no IPv4 or IPv6 address");
        }
        p->asking = false;
        if (p->deadline)
                event_del(p->deadline);
        if (!in_ask)
                round_over(p->owner); /* peers_ask() says it otherwise */
}

static bool is_address(const char *host)
{
        unsigned char buf[sizeof(struct in6_addr)];

        return evutil_inet_pton(AF_INET, host, buf) == 1 ||
               evutil_inet_pton(AF_INET6, host, buf) == 1;
}

/* p is being asked, until an answer or its deadline. */
static void start_deadline(struct peer *p)
{
        struct peers *ps = p->owner;

        p->asking = true;
        if (!p->deadline && ps->base)
                p->deadline = event_new(ps->base, -1, 0, on_deadline, p);
        if (p->deadline) {
                struct timeval tv = mono_timeval(ps->timeout_ms);
                event_add(p->deadline, &tv);
        }
}

/*
 * Ask p for its status: its name looked up again each time (an address
 * changed in DNS or the hosts file is used from the next question on), then
 * the question sent; the deadline bounds both.
 */
static void ask_one(struct peer *p)
{
        struct peers *ps = p->owner;
        struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                        .ai_socktype = SOCK_STREAM,
                                        .ai_protocol = IPPROTO_TCP,
                                        .ai_flags = EVUTIL_AI_ADDRCONFIG};
        struct lookup *l;

        if (p->asking)
                return;
        if (is_address(p->host)) { /* nothing to look up (and ::1 whatever the host's addresses) */
                start_deadline(p);
                if (!send_question(p, p->host)) {
                        p->asking = false;
                        if (p->deadline)
                                event_del(p->deadline);
                }
                return;
        }
        if (!(l = calloc(1, sizeof(*l)))) {
                down(p, "out of memory");
                return;
        }
        *l = (struct lookup){.p = p, .in_ask = true};
        p->lookup = l;
        start_deadline(p);
        struct evdns_getaddrinfo_request *req =
            evdns_getaddrinfo(ps->dns, p->host, NULL, &hints, looked_up, l);
        if (p->lookup) { /* still l: under way, it ends in looked_up(), later */
                l->req = req;
                l->in_ask = false;
        }
}

void peers_ask(struct peers *ps)
{
        if (!ps)
                return;
        for (size_t i = 0; i < ps->n; i++)
                ask_one(&ps->p[i]);
        round_over(ps);
}

bool peers_asking(const struct peers *ps)
{
        for (size_t i = 0; ps && i < ps->n; i++)
                if (ps->p[i].asking)
                        return true;
        return false;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        peers_ask(arg);
}

/* ---- set-up ---- */

static int parse_http(struct peer *p, const char *http, char *err, size_t errlen)
{
        struct evhttp_uri *u = evhttp_uri_parse(http);
        const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
        const char *host = u ? evhttp_uri_get_host(u) : NULL;
        const char *path = u ? evhttp_uri_get_path(u) : NULL;
        int r = 0;

        if (!u || !scheme || strcmp(scheme, "http") != 0 || !host || !host[0] ||
            strlen(host) >= sizeof(p->host) || (path && path[0] && strcmp(path, "/") != 0) ||
            evhttp_uri_get_query(u)) {
                snprintf(err, errlen, "peer \"%s\": http \"%s\" is not http://HOST[:PORT]", p->name,
                         http);
                r = -EINVAL;
        } else {
                /* libevent keeps an IPv6 literal's brackets; the connection takes it bare. */
                bool literal6 = host[0] == '[' || strchr(host, ':');
                size_t len = strlen(host);
                if (host[0] == '[' && len > 2 && host[len - 1] == ']')
                        snprintf(p->host, sizeof(p->host), "%.*s", (int)(len - 2), host + 1);
                else
                        snprintf(p->host, sizeof(p->host), "%s", host);
                p->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
                snprintf(p->host_header, sizeof(p->host_header), "%s%s%s:%d", literal6 ? "[" : "",
                         p->host, literal6 ? "]" : "", p->port);
        }
        if (u)
                evhttp_uri_free(u);
        return r;
}

int peers_new(struct event_base *base, struct evdns_base *dns, const struct config_cluster *c,
              void (*on_answered)(void *userdata), void *userdata, struct peers **ret, char *err,
              size_t errlen)
{
        struct peers *ps;

        *ret = NULL;
        if (c->n_peers == 0)
                return 0;
        ps = calloc(1, sizeof(*ps));
        if (!ps || !(ps->p = calloc(c->n_peers, sizeof(*ps->p)))) {
                free(ps);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        *ps = (struct peers){.base = base,
                             .dns = dns,
                             .p = ps->p,
                             .n = c->n_peers,
                             .timeout_ms = c->peer_timeout_ms,
                             .on_answered = on_answered,
                             .userdata = userdata};
        for (size_t i = 0; i < c->n_peers; i++) {
                struct peer *p = &ps->p[i];
                p->owner = ps;
                snprintf(p->name, sizeof(p->name), "%s", c->peers[i].name);
                p->libvirt_uri = strdup(c->peers[i].libvirt_uri);
                p->http = strdup(c->peers[i].http);
                if (!p->libvirt_uri || !p->http) {
                        snprintf(err, errlen, "out of memory");
                        peers_free(ps);
                        return -ENOMEM;
                }
                if (parse_http(p, p->http, err, errlen) < 0) {
                        peers_free(ps);
                        return -EINVAL;
                }
        }
        struct timeval tv = mono_timeval(PEERS_INTERVAL_MS);
        ps->timer = base ? event_new(base, -1, EV_PERSIST, on_timer, ps) : NULL;
        if (ps->timer)
                event_add(ps->timer, &tv);
        *ret = ps;
        return 0;
}

int peers_check_http(const struct config_peer *cp, char *err, size_t errlen)
{
        struct peer p = {0};

        snprintf(p.name, sizeof(p.name), "%s", cp->name);
        return parse_http(&p, cp->http, err, errlen);
}

void peers_free(struct peers *ps)
{
        if (!ps)
                return;
        if (ps->timer)
                event_free(ps->timer);
        for (size_t i = 0; i < ps->n; i++) {
                give_up_lookup(&ps->p[i]); /* nothing left for the name servers */
                if (ps->p[i].conn)
                        evhttp_connection_free(ps->p[i].conn); /* cancels a request in flight */
                if (ps->p[i].deadline)
                        event_free(ps->p[i].deadline);
                free(ps->p[i].libvirt_uri);
                free(ps->p[i].http);
        }
        free(ps->p);
        free(ps);
}

/* ---- what is known ---- */

size_t peers_count(const struct peers *ps)
{
        return ps ? ps->n : 0;
}

size_t peers_find(const struct peers *ps, const char *name)
{
        for (size_t i = 0; ps && i < ps->n; i++)
                if (strcmp(ps->p[i].name, name) == 0)
                        return i;
        return peers_count(ps);
}

void peers_view(const struct peers *ps, size_t i, struct peer_view *ret)
{
        const struct peer *p = &ps->p[i];

        *ret = p->view;
        ret->name = p->name;
        ret->libvirt_uri = p->libvirt_uri;
        ret->http = p->http;
        ret->error = p->error[0] ? p->error : NULL;
}

static const char *state_name(enum peer_state s)
{
        return s == PEER_UP ? "up" : s == PEER_DOWN ? "down" : "unknown";
}

json_t *peers_json(const struct peers *ps)
{
        json_t *list = json_array();
        uint64_t now = mono_ms();

        for (size_t i = 0; list && i < peers_count(ps); i++) {
                struct peer_view v;
                peers_view(ps, i, &v);
                bool known = v.answered_ms > 0;
                json_t *o = json_pack(
                    "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "name", v.name,
                    "libvirt_uri", v.libvirt_uri, "http", v.http, "state", state_name(v.state),
                    "error", v.error ? json_string(v.error) : json_null(), "age_ms",
                    known ? json_integer((json_int_t)(now - v.answered_ms)) : json_null(),
                    "memory_bytes", known ? json_integer((json_int_t)v.memory_bytes) : json_null(),
                    "assigned_bytes",
                    known ? json_integer((json_int_t)v.assigned_bytes) : json_null(),
                    "available_for_balancing_bytes",
                    known ? json_integer((json_int_t)v.available_bytes) : json_null(), "running",
                    known ? json_integer((json_int_t)v.running) : json_null());
                if (!o || json_array_append_new(list, o) < 0) {
                        json_decref(list);
                        list = NULL;
                }
        }
        return list;
}
