/*
 * resolver: the peers' name lookups on dynmemd's loop (evdns), and what
 * they are taken from, read again at a reload. See resolver.h.
 */
#include "resolver.h"

#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

/* What a resolv.conf gives: hosts come from their own file. */
#define CONF_OPTIONS (DNS_OPTION_NAMESERVERS | DNS_OPTION_SEARCH | DNS_OPTION_MISC)

/* Loop passes that let the callbacks of failed lookups run (each takes one or two). */
#define DRAIN_PASSES 16

struct resolver {
        struct event_base *base;
        struct evdns_base *dns;
        char *conf, *hosts;
};

/* Libevent's own values of the options a resolv.conf sets: one taken out goes back to it. */
static const char *const option_default[][2] = {
    {"ndots:", "1"}, {"timeout:", "5"}, {"attempts:", "3"}};

/*
 * 0 when path is a regular file this process may read, else -errno
 * (-EINVAL: not a regular file). Never waits: libevent reads the file
 * itself, blocking, and a FIFO there would stop the loop.
 */
static int readable(const char *path)
{
        struct stat st;
        int r = 0, fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EINVAL;
        close(fd);
        return r;
}

static const char *why(int r)
{
        return r == -EINVAL ? "not a regular file" : strerror(-r);
}

struct saved_servers {
        struct sockaddr_storage *sa;
        int *len;
        int n;
};

static void save_servers(struct evdns_base *dns, struct saved_servers *s)
{
        int n = evdns_base_count_nameservers(dns);

        *s = (struct saved_servers){0};
        if (n <= 0 || !(s->sa = calloc((size_t)n, sizeof(*s->sa))) ||
            !(s->len = calloc((size_t)n, sizeof(*s->len))))
                return;
        for (int i = 0; i < n; i++) {
                int len = evdns_base_get_nameserver_addr(dns, i, (struct sockaddr *)&s->sa[s->n],
                                                         sizeof(s->sa[s->n]));
                if (len > 0 && len <= (int)sizeof(s->sa[s->n]))
                        s->len[s->n++] = len;
        }
}

/* The saved name servers again, or libevent's default when there were none. */
static void restore_servers(struct evdns_base *dns, const struct saved_servers *s)
{
        evdns_base_clear_nameservers_and_suspend(dns);
        for (int i = 0; i < s->n; i++)
                evdns_base_nameserver_sockaddr_add(dns, (const struct sockaddr *)&s->sa[i],
                                                   (ev_socklen_t)s->len[i], 0);
        if (s->n == 0)
                evdns_base_resolv_conf_parse(dns, DNS_OPTION_NAMESERVERS, NULL);
}

/*
 * The name servers, search domains and options of r->conf. On a failure
 * what was in force stays (at the start: libevent's default name server).
 * Lookups under way wait while the servers change, then go to the new ones.
 */
static int load_conf(struct resolver *r, bool first)
{
        struct saved_servers was;
        int e = readable(r->conf);

        if (e < 0) {
                if (first) {
                        evdns_base_resolv_conf_parse(r->dns, CONF_OPTIONS, NULL);
                        log_msg(LOG_WARNING, "name lookups: %s: %s; name server 127.0.0.1", r->conf,
                                why(e));
                } else {
                        log_msg(LOG_WARNING, "name lookups: %s: %s; the name servers in force stay",
                                r->conf, why(e));
                }
                return e;
        }
        save_servers(r->dns, &was);
        evdns_base_clear_nameservers_and_suspend(r->dns);
        evdns_base_search_clear(r->dns);
        for (size_t i = 0; i < sizeof(option_default) / sizeof(option_default[0]); i++)
                evdns_base_set_option(r->dns, option_default[i][0], option_default[i][1]);
        int pr = evdns_base_resolv_conf_parse(r->dns, CONF_OPTIONS, r->conf);
        /* 1-4: it could not be read after all (replaced since); 6: none named, 127.0.0.1 */
        if ((pr >= 1 && pr <= 4) || evdns_base_count_nameservers(r->dns) == 0) {
                restore_servers(r->dns, &was);
                e = -EIO;
                log_msg(LOG_WARNING,
                        "name lookups: %s could not be read; the name servers "
                        "in force stay",
                        r->conf);
        }
        evdns_base_resume(r->dns);
        free(was.sa);
        free(was.len);
        return e;
}

/* The names of r->hosts, in place of those taken before; on a failure those stay. */
static int load_hosts(struct resolver *r, bool first)
{
        int e = readable(r->hosts);

        if (e < 0) {
                if (first)
                        evdns_base_load_hosts(r->dns, NULL); /* localhost */
                log_msg(LOG_WARNING, "name lookups: %s: %s; %s", r->hosts, why(e),
                        first ? "only localhost is known" : "the names taken before stay");
                return e;
        }
        evdns_base_clear_host_addresses(r->dns);
        if (evdns_base_load_hosts(r->dns, r->hosts) < 0) {
                log_msg(LOG_WARNING, "name lookups: %s could not be read; only localhost is known",
                        r->hosts);
                return -EIO;
        }
        return 0;
}

int resolver_new(struct event_base *base, const char *resolv_conf, const char *hosts,
                 struct resolver **ret)
{
        struct resolver *r = calloc(1, sizeof(*r));

        *ret = NULL;
        if (!r || !(r->conf = strdup(resolv_conf)) || !(r->hosts = strdup(hosts)) ||
            !(r->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE))) {
                if (r) {
                        free(r->conf);
                        free(r->hosts);
                }
                free(r);
                return -ENOMEM;
        }
        r->base = base;
        load_conf(r, true);
        load_hosts(r, true);
        *ret = r;
        return 0;
}

int resolver_reload(struct resolver *r)
{
        int e = load_conf(r, false), h = load_hosts(r, false);

        if (e == 0 && h == 0)
                log_msg(LOG_INFO, "name lookups: name servers from %s (%d), names from %s", r->conf,
                        evdns_base_count_nameservers(r->dns), r->hosts);
        return e < 0 ? e : h;
}

struct evdns_base *resolver_dns(const struct resolver *r)
{
        return r ? r->dns : NULL;
}

/* Run the callbacks queued on base (each pass may queue one more). */
static void drain(struct event_base *base)
{
        for (int i = 0;
             i < DRAIN_PASSES && event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0; i++)
                event_base_loop(base, EVLOOP_NONBLOCK);
}

void resolver_free(struct resolver *r)
{
        if (!r)
                return;
        /*
         * A lookup cancelled (a peer given up) still has its callback queued
         * on the loop, and that callback reads the evdns base: it runs first,
         * while the base exists. A lookup still under way is then failed; its
         * callback, deferred to the loop too, frees it. Without these passes
         * the loop would be freed with the callbacks still queued, and what
         * they free leaked.
         */
        drain(r->base);
        evdns_base_free(r->dns, 1);
        drain(r->base);
        free(r->conf);
        free(r->hosts);
        free(r);
}
