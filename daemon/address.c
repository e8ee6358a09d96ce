/*
 * address: ADDRESS:PORT to a socket address and back to a URL. See
 * address.h.
 */
#include "address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_loopback(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
                return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        }
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static int parse_port(const char *text, uint16_t *ret)
{
        char *end;
        unsigned long v;

        if (text[0] < '0' || text[0] > '9' || strlen(text) > 5)
                return -EINVAL;
        v = strtoul(text, &end, 10);
        if (*end || v > 65535)
                return -EINVAL;
        *ret = (uint16_t)v;
        return 0;
}

/* The host part into ss (port not set). */
static int parse_host(const char *host, size_t n, struct sockaddr_storage *ss, socklen_t *len)
{
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        char buf[INET6_ADDRSTRLEN];

        memset(ss, 0, sizeof(*ss));
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
                host++, n -= 2;
                if (n >= sizeof(buf))
                        return -EINVAL;
                memcpy(buf, host, n);
                buf[n] = '\0';
                in6->sin6_family = AF_INET6;
                *len = sizeof(*in6);
                return inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
        }
        if (n == 1 && host[0] == '*') {
                in6->sin6_family = AF_INET6;
                in6->sin6_addr = in6addr_any;
                *len = sizeof(*in6);
                return 0;
        }
        if (n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, host, n);
        buf[n] = '\0';
        in->sin_family = AF_INET;
        *len = sizeof(*in);
        if (strcmp(buf, "localhost") == 0)
                return inet_pton(AF_INET, "127.0.0.1", &in->sin_addr) == 1 ? 0 : -EINVAL;
        return inet_pton(AF_INET, buf, &in->sin_addr) == 1 ? 0 : -EINVAL;
}

int address_parse(const char *text, bool allow_remote, struct sockaddr_storage *ret,
                  socklen_t *ret_len, char *err, size_t errlen)
{
        const char *colon = strrchr(text, ':');
        struct sockaddr_storage ss;
        socklen_t len = 0;
        uint16_t port;

        if (!colon || colon == text || parse_port(colon + 1, &port) < 0) {
                snprintf(err, errlen, "\"%.80s\" is not ADDRESS:PORT (e.g. 127.0.0.1:9100)", text);
                return -EINVAL;
        }
        if (parse_host(text, (size_t)(colon - text), &ss, &len) < 0) {
                snprintf(err, errlen,
                         "\"%.*s\" is not an IP address (IPv4, [IPv6], localhost or *)",
                         (int)(colon - text > 80 ? 80 : colon - text), text);
                return -EINVAL;
        }
        if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        else
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
        if (!allow_remote && !is_loopback(&ss)) {
                snprintf(err, errlen,
                         "%.80s is not a loopback address; the page and metrics are not "
                         "protected: set http_allow_remote = yes to serve them beyond this host",
                         text);
                return -EINVAL;
        }
        *ret = ss;
        *ret_len = len;
        return 0;
}

void address_url(const struct sockaddr_storage *ss, char *buf, size_t len)
{
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;

        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                port = ntohs(in->sin_port);
        } else if (ss->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                port = ntohs(in6->sin6_port);
        }
        snprintf(buf, len, ss->ss_family == AF_INET6 ? "http://[%s]:%u/" : "http://%s:%u/", host,
                 port);
}
