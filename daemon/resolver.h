/*
 * resolver: how dynmemd looks up the peer hosts' names (peers.c): one evdns
 * base on dynmemd's loop, so that a lookup never blocks it. It takes the
 * name servers, search domains and options of a resolv.conf, and the names
 * of a hosts file (/etc/resolv.conf and /etc/hosts in dynmemd) when made,
 * and again at every reload: what an operator changed there is used from
 * then on, by lookups under way too (they are sent again, to the new name
 * servers). A file that cannot be read at a reload (gone, no permission,
 * not a regular file) leaves what was taken from it in force, said in one
 * line of the log.
 *
 * It lives until dynmemd stops, across reloads: a peer's lookup that is
 * given up (a peer removed, a question past its deadline) is cancelled at
 * once (peers.c), but its callback still runs later in the loop, in code of
 * libevent's that uses the evdns base. resolver_free() lets those callbacks
 * run, then fails the lookups still under way and lets theirs run too
 * before it returns, so that the loop can be freed after it with nothing
 * leaked.
 */
#ifndef DYNMEM_RESOLVER_H
#define DYNMEM_RESOLVER_H

#define RESOLVER_CONF  "/etc/resolv.conf"
#define RESOLVER_HOSTS "/etc/hosts"

struct event_base;
struct evdns_base;
struct resolver;

/*
 * A resolver on base from resolv_conf and hosts (copied). A file that cannot
 * be read leaves libevent's defaults (a name server on 127.0.0.1, as the C
 * library's; localhost), logged. 0, or -ENOMEM.
 */
int resolver_new(struct event_base *base, const char *resolv_conf, const char *hosts,
                 struct resolver **ret);

/*
 * Read both files again (a reload). 0, or the negative errno of the first
 * that could not be read; what was taken from it stays, and one line says so.
 */
int resolver_reload(struct resolver *r);

/* The evdns base, for libevent's HTTP client (valid until resolver_free()). */
struct evdns_base *resolver_dns(const struct resolver *r);

/* After every user of resolver_dns() is gone, before its event base is freed. NULL: nothing. */
void resolver_free(struct resolver *r);

#endif
