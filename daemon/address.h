/*
 * address: ADDRESS:PORT, the form of dynmemd's listening addresses ([host]
 * http), parsed into a socket address and printed back as a URL. No sockets
 * are opened here: the configuration is checked with it before any server
 * exists (dconfig), and the HTTP server listens on what it returns.
 */
#ifndef DYNMEM_ADDRESS_H
#define DYNMEM_ADDRESS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define ADDRESS_URL_MAX (INET6_ADDRSTRLEN + 32)

/*
 * Parse ADDRESS:PORT. ADDRESS is an IPv4 address, an IPv6 address in
 * brackets, "localhost" (127.0.0.1) or "*" (every address, IPv4 and IPv6);
 * PORT 0..65535 (0: the kernel picks one). An address that is not loopback
 * is refused unless allow_remote. Returns 0 or -EINVAL with a sentence in
 * err.
 */
int address_parse(const char *text, bool allow_remote, struct sockaddr_storage *ret,
                  socklen_t *ret_len, char *err, size_t errlen);

/* "http://127.0.0.1:9100/", "http://[::1]:9100/" ("?" for a family it does not know). */
void address_url(const struct sockaddr_storage *ss, char *buf, size_t len);

#endif
