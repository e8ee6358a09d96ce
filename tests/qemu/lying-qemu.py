#!/usr/bin/env python3
"""A program that speaks QMP like QEMU and lies, for the unhappy paths of
backend/qemu_probe.c. It takes QEMU's arguments, listens on the socket of
`-chardev socket,...,fd=N,...` (handed over, as dynmemd does) or
`-chardev socket,...,path=P,...`, greets, accepts qmp_capabilities, then
behaves as LYING_QEMU_MODE says:

  version   query-version answers a negative version
  machines  query-machines answers a machine type name with a space in it
  hangup    closes the connection after qmp_capabilities and exits
  linger    closes the connection after qmp_capabilities and stays (a minute)

Without LYING_QEMU_MODE it tells the truth of a QEMU 10.0 with nothing but
machine types to offer. Everything else gets an empty list. It exits when
the client goes away.
"""
import json
import os
import socket
import sys
import time


def listening_socket(argv):
    """The QMP socket: the listening one it was handed (fd=N), or one it binds (path=P)."""
    for i, a in enumerate(argv):
        if a == "-chardev" and i + 1 < len(argv):
            for part in argv[i + 1].split(","):
                if part.startswith("fd="):
                    return socket.socket(fileno=int(part[3:]))
                if part.startswith("path="):
                    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    srv.bind(part[5:])
                    srv.listen(1)
                    return srv
    sys.exit("lying-qemu: no -chardev socket")


def answer(mode, execute):
    if execute == "query-version" and mode == "version":
        return {"qemu": {"major": -1, "minor": 0, "micro": 0}, "package": ""}
    if execute == "query-version":
        return {"qemu": {"major": 10, "minor": 0, "micro": 0}, "package": ""}
    if execute == "query-machines" and mode == "machines":
        return [{"name": "pc i440fx 10.0", "alias": "pc"}]
    if execute == "query-machines":
        return [{"name": "pc-i440fx-10.0", "alias": "pc"}]
    return []


def main():
    mode = os.environ.get("LYING_QEMU_MODE", "")
    srv = listening_socket(sys.argv)
    conn, _ = srv.accept()
    # Separate reader and writer: a text file open for both drops what it read ahead.
    r, f = conn.makefile("r"), conn.makefile("w")
    f.write(json.dumps({"QMP": {"version": {"qemu": {"major": 10, "minor": 0, "micro": 0},
                                            "package": ""}, "capabilities": []}}) + "\n")
    f.flush()
    for line in r:
        cmd = json.loads(line)
        reply = {"return": {}} if cmd["execute"] == "qmp_capabilities" else \
            {"return": answer(mode, cmd["execute"])}
        if "id" in cmd:
            reply["id"] = cmd["id"]
        f.write(json.dumps(reply) + "\n")
        f.flush()
        if cmd["execute"] == "qmp_capabilities" and mode in ("hangup", "linger"):
            break
        if cmd["execute"] == "quit":
            break
    conn.shutdown(socket.SHUT_RDWR)  # the files made from it would keep it open
    conn.close()
    if mode == "linger":
        time.sleep(60)


if __name__ == "__main__":
    main()
