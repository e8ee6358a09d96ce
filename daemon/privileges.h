/*
 * privileges: what dynmemd keeps. Under the shipped unit it runs as user
 * dynmem with CAP_SETUID and CAP_SETGID, only so that the QEMU backend's
 * launcher (backend/qemu_launch.h), forked when the backend is created, can
 * start QEMU as its own user. Right after that, privileges_drop() takes
 * every capability from the daemon itself (permitted, effective,
 * inheritable, ambient) and sets no_new_privs: the parsers of what guests
 * and clients send run with none. Run as root, dynmemd keeps root and says
 * so once, with what it needs instead (backend libvirt: libvirt's socket
 * group); QEMU never runs as root either way.
 */
#ifndef DYNMEM_PRIVILEGES_H
#define DYNMEM_PRIVILEGES_H

struct daemon;

/* Say who dynmemd and QEMU run as, and drop what the daemon holds. 0 or -errno (logged). */
int privileges_drop(struct daemon *d);

#endif
