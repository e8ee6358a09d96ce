/*
 * Tests for dynmemd's name lookups (daemon/resolver.c): a reload takes a
 * changed resolv.conf and hosts file, lookups under way included; a file
 * that cannot be read at a reload (gone, a FIFO, a folder) leaves what was
 * in force, at once; freeing it with a lookup under way leaves nothing
 * behind (the sanitized build's LeakSanitizer checks at exit). The files
 * are temporary ones, the name servers UDP sockets of the test's that take
 * questions and never answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mono.h"
#include "resolver.h"

struct files {
        char dir[64], conf[96], hosts[96];
};

static void make_files(struct files *f)
{
        snprintf(f->dir, sizeof(f->dir), "/tmp/dynmem-resolver-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->conf, sizeof(f->conf), "%s/resolv.conf", f->dir);
        snprintf(f->hosts, sizeof(f->hosts), "%s/hosts", f->dir);
}

static void drop_files(struct files *f)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        assert_int_equal(system(cmd), 0);
}

/* Replace path's content with text, as an editor or resolvconf does (a new file renamed). */
static void put(const char *path, const char *text)
{
        char tmp[128];
        FILE *fp;

        snprintf(tmp, sizeof(tmp), "%s.new", path);
        assert_non_null(fp = fopen(tmp, "w"));
        assert_true(fputs(text, fp) >= 0);
        assert_int_equal(fclose(fp), 0);
        assert_int_equal(rename(tmp, path), 0);
}

/* A UDP socket on 127.0.0.1 that takes questions and never answers; its port. */
static int silent_server(unsigned *port)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(a);
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
        *port = ntohs(a.sin_port);
        return fd;
}

/* The ports of the resolver's name servers (all on 127.0.0.1), in order; their number. */
static int server_ports(struct resolver *r, unsigned *ports, int max)
{
        struct evdns_base *dns = resolver_dns(r);
        int n = evdns_base_count_nameservers(dns);

        for (int i = 0; i < n && i < max; i++) {
                struct sockaddr_in a;
                assert_int_equal(
                    evdns_base_get_nameserver_addr(dns, i, (struct sockaddr *)&a, sizeof(a)),
                    (int)sizeof(a));
                assert_int_equal(a.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
                ports[i] = ntohs(a.sin_port);
        }
        return n;
}

struct lookup {
        bool done;
        int result;
        char address[INET6_ADDRSTRLEN];
};

static void looked_up(int result, struct evutil_addrinfo *ai, void *arg)
{
        struct lookup *l = arg;

        l->done = true;
        l->result = result;
        if (ai && ai->ai_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, l->address,
                          sizeof(l->address));
        if (ai)
                evutil_freeaddrinfo(ai);
}

static struct evdns_getaddrinfo_request *look_up(struct resolver *r, const char *name,
                                                 struct lookup *l)
{
        struct evutil_addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};

        *l = (struct lookup){0};
        return evdns_getaddrinfo(resolver_dns(r), name, "80", &hints, looked_up, l);
}

/* What hosts says name is: the answer comes at once, from the file. */
static const char *host_address(struct resolver *r, const char *name, struct lookup *l)
{
        assert_null(look_up(r, name, l));
        assert_true(l->done);
        return l->result == 0 ? l->address : "";
}

/* Questions that arrived at fd since the last call. */
static unsigned questions(int fd)
{
        char buf[512];
        unsigned n = 0;

        while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                n++;
        return n;
}

/* Run base until fd has a question (or 10 s went by); whether it had. */
static bool asked(struct event_base *base, int fd)
{
        uint64_t until = mono_ms() + 10000;

        while (mono_ms() < until) {
                struct timeval tv = {0, 20 * 1000};
                event_base_loopexit(base, &tv);
                event_base_dispatch(base);
                if (questions(fd))
                        return true;
        }
        return false;
}

static void a_reload_takes_the_changed_files(void **state)
{
        struct event_base *base = event_base_new();
        struct resolver *r;
        struct files f;
        struct lookup l;
        unsigned ports[4];
        char text[256];

        (void)state;
        make_files(&f);
        put(f.conf, "nameserver 127.0.0.1:5301\noptions timeout:30\n");
        put(f.hosts, "127.0.0.2 peer-a\n");
        assert_int_equal(resolver_new(base, f.conf, f.hosts, &r), 0);
        assert_int_equal(server_ports(r, ports, 4), 1);
        assert_int_equal(ports[0], 5301);
        assert_string_equal(host_address(r, "peer-a", &l), "127.0.0.2");

        snprintf(text, sizeof(text), "nameserver 127.0.0.1:5302\nnameserver 127.0.0.1:5303\n");
        put(f.conf, text);
        put(f.hosts, "127.0.0.3 peer-a\n127.0.0.4 peer-b\n");
        assert_int_equal(resolver_reload(r), 0);
        assert_int_equal(server_ports(r, ports, 4), 2);
        assert_int_equal(ports[0], 5302);
        assert_int_equal(ports[1], 5303);
        assert_string_equal(host_address(r, "peer-a", &l), "127.0.0.3"); /* not both */
        assert_string_equal(host_address(r, "peer-b", &l), "127.0.0.4");

        resolver_free(r);
        event_base_free(base);
        drop_files(&f);
}

/*
 * resolv.conf gone, a FIFO (libevent would wait in its read) or a folder,
 * and hosts gone: the reload says so at once, and the name servers and
 * names in force stay.
 */
static void a_file_that_cannot_be_read_leaves_what_is_in_force(void **state)
{
        struct event_base *base = event_base_new();
        struct resolver *r;
        struct files f;
        struct lookup l;
        unsigned ports[4];

        (void)state;
        alarm(60); /* a FIFO opened to read without a writer would wait: fail rather than hang */
        make_files(&f);
        put(f.conf, "nameserver 127.0.0.1:5301\n");
        put(f.hosts, "127.0.0.2 peer-a\n");
        assert_int_equal(resolver_new(base, f.conf, f.hosts, &r), 0);

        assert_int_equal(unlink(f.conf), 0);
        assert_int_equal(resolver_reload(r), -ENOENT);
        assert_int_equal(server_ports(r, ports, 4), 1);
        assert_int_equal(ports[0], 5301); /* not libevent's default, 127.0.0.1:53 */

        assert_int_equal(mkfifo(f.conf, 0600), 0);
        assert_int_equal(resolver_reload(r), -EINVAL);
        assert_int_equal(server_ports(r, ports, 4), 1);
        assert_int_equal(ports[0], 5301);
        assert_int_equal(unlink(f.conf), 0);

        assert_int_equal(mkdir(f.conf, 0700), 0);
        assert_int_equal(unlink(f.hosts), 0);
        assert_true(resolver_reload(r) < 0);
        assert_int_equal(server_ports(r, ports, 4), 1);
        assert_int_equal(ports[0], 5301);
        assert_string_equal(host_address(r, "peer-a", &l), "127.0.0.2");
        assert_int_equal(rmdir(f.conf), 0);

        /* readable again: taken */
        put(f.conf, "nameserver 127.0.0.1:5304\n");
        put(f.hosts, "127.0.0.5 peer-a\n");
        assert_int_equal(resolver_reload(r), 0);
        assert_int_equal(server_ports(r, ports, 4), 1);
        assert_int_equal(ports[0], 5304);
        assert_string_equal(host_address(r, "peer-a", &l), "127.0.0.5");

        resolver_free(r);
        event_base_free(base);
        drop_files(&f);
        alarm(0);
}

/*
 * A lookup under way when the name servers change goes to the new ones;
 * when the resolver is freed with it still under way (dynmemd stopping), its
 * callback has run by the time resolver_free() returns, and nothing is left
 * for the loop.
 */
static void a_lookup_under_way_moves_to_the_new_servers_and_ends_when_freed(void **state)
{
        struct event_base *base = event_base_new();
        struct resolver *r;
        struct files f;
        struct lookup l;
        unsigned p1, p2;
        char text[128];
        int s1 = silent_server(&p1), s2 = silent_server(&p2);

        (void)state;
        make_files(&f);
        snprintf(text, sizeof(text), "nameserver 127.0.0.1:%u\noptions timeout:30 attempts:1\n",
                 p1);
        put(f.conf, text);
        put(f.hosts, "");
        assert_int_equal(resolver_new(base, f.conf, f.hosts, &r), 0);
        assert_non_null(look_up(r, "peer.dynmem-test.invalid", &l));
        assert_true(asked(base, s1));
        assert_false(l.done);

        snprintf(text, sizeof(text), "nameserver 127.0.0.1:%u\noptions timeout:30 attempts:1\n",
                 p2);
        put(f.conf, text);
        assert_int_equal(resolver_reload(r), 0);
        assert_true(asked(base, s2)); /* asked again, of the new server */
        assert_false(l.done);

        resolver_free(r);
        assert_true(l.done); /* failed: its callback ran, and what it held is freed */
        assert_int_not_equal(l.result, 0);
        assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE), 0);
        event_base_free(base);
        close(s1);
        close(s2);
        drop_files(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_reload_takes_the_changed_files),
            cmocka_unit_test(a_file_that_cannot_be_read_leaves_what_is_in_force),
            cmocka_unit_test(a_lookup_under_way_moves_to_the_new_servers_and_ends_when_freed),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
