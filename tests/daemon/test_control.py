#!/usr/bin/env python3
"""The control socket under bad input and misbehaving clients, and who may do
what: malformed, oversized and unknown requests get error replies; silent and
non-reading clients stall nobody; a non-root caller may read only when the
socket's group allows it and may never change anything."""
import errno
import grp
import os
import pwd
import select
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (Tap, check, dynamic_vm, main, read_line, request, running,  # noqa: E402
                        sim_host, wait_for)


tap = Tap()

CONFIG = sim_host("4G") + dynamic_vm("web1", "rise.csv", maximum="3G")


def error_of(reply, num, text):
    check(reply is not None, "a reply", reply)
    check(reply.get("version") == 1 and reply.get("ok") is False, "an error reply", reply)
    check(reply.get("errno") == num, f"errno {num}", reply)
    check(text in reply.get("error", ""), f"error mentions {text!r}", reply)


def still_serving(d):
    cycles = d.json("status")["cycles"]
    wait_for(lambda: d.json("status")["cycles"] > cycles, "cycles to go on")
    check(d.vm("web1")["state"] == "running", "the VM carries on")


@tap.case
def malformed_requests_get_error_replies(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        cases = [
            (b"{not json\n", errno.EINVAL, "malformed request"),
            (b"[1,2,3]\n", errno.EINVAL, "expected a JSON object"),
            (b"42\n", errno.EINVAL, "malformed request"),
            (b'{"command":"list"}\n', errno.EPROTO, "without a \"version\""),
            (b'{"version":2,"command":"list"}\n', errno.EPROTO, "unsupported protocol version 2"),
            (b'{"version":1}\n', errno.EINVAL, "without a \"command\""),
            (request("frobnicate"), errno.EOPNOTSUPP, "unknown command \"frobnicate\""),
            (request("list", colour="red"), errno.EINVAL, "unknown field \"colour\""),
            (request("show"), errno.EINVAL, "a VM \"name\" string is required"),
            (request("show", name=7), errno.EINVAL, "name"),
            (request("show", name="../etc"), errno.EINVAL, "invalid VM name"),
            (request("set", name="web1", settings={"weight": "heavy"}), errno.EINVAL, "weight"),
            (request("set", name="web1", settings={"weight": -1}), errno.EINVAL, "weight"),
            (request("set", name="web1", settings={"colour": 1}), errno.EINVAL, "unknown setting"),
            (request("set", name="web1", settings={}), errno.EINVAL, "nothing to change"),
            (request("stop", name="web1", force="yes"), errno.EINVAL, "force"),
            (request("create", name="n1", backend={"trace": 5}), errno.EINVAL, "backend"),
            (b'{"version":1,"command":"list","command":"list"}\n', errno.EINVAL, "malformed"),
            (b'{"version":1,"command":"li\xffst"}\n', errno.EINVAL, "malformed"),
            (b'{"version":1,"command":"list\\u0000"}\n', errno.EINVAL, "malformed"),
            (b'\x00\x01\x02garbage\n', errno.EINVAL, "malformed"),
        ]
        for data, num, text in cases:
            replies = d.raw(data)
            check(len(replies) == 1, f"one reply to {data!r}", replies)
            error_of(replies[0], num, text)
        still_serving(d)


@tap.case
def a_bad_request_does_not_end_the_conversation(bins):
    with running(bins, CONFIG) as d:
        replies = d.raw(b"{oops\n" + request("list") + b"\n\n" + request("status"))
        check(len(replies) == 3, "three replies (blank lines are ignored)", replies)
        error_of(replies[0], errno.EINVAL, "malformed")
        check(replies[1]["ok"] and isinstance(replies[1]["vms"], list), "list", replies[1])
        check(replies[2]["ok"] and "host" in replies[2], "status", replies[2])
        last = d.raw(b'{"version":1,"command":"status"}')  # no newline before EOF
        check(last and last[0]["ok"], "a last line without newline is served", last)


@tap.case
def oversized_request_is_refused_and_the_connection_closed(bins):
    with running(bins, CONFIG) as d:
        s = d.connect()
        try:
            s.sendall(b'{"version":1,"command":"list","pad":"' + b"x" * 100000)
            error_of(read_line(s), errno.EMSGSIZE, "request longer than 65536 bytes")
            try:
                rest = s.recv(100)
            except ConnectionResetError:  # unread input makes the close a reset
                rest = b""
            check(rest == b"", "then closed", rest)
        finally:
            s.close()
        huge = request("show", name="web1", pad="y" * 70000)
        error_of(d.raw(huge)[0], errno.EMSGSIZE, "longer than")
        still_serving(d)


@tap.case
def silent_clients_do_not_block_others(bins):
    with running(bins, CONFIG) as d:
        silent = [d.connect() for _ in range(10)]
        partial = d.connect()
        partial.sendall(b'{"version":1,"comm')  # and never more
        try:
            for _ in range(5):
                d.ok("list")
            d.ok("set", "web1", "--weight", "77")
            check(d.vm("web1")["weight"] == 77, "changes go through too")
            still_serving(d)
        finally:
            for s in silent + [partial]:
                s.close()


@tap.case
def a_client_that_does_not_read_blocks_nobody(bins):
    with running(bins, CONFIG) as d:
        s = d.connect()
        s.setblocking(False)
        sent = 0
        try:
            try:  # pipeline requests and never read a reply, until the socket fills
                while sent < 200000:
                    s.send(request("list") * 100)
                    sent += 100
            except BlockingIOError:
                pass
            for _ in range(5):
                d.ok("status")
            still_serving(d)
            h = d.json("status")
            check(h["clients"] >= 2, "the stuck client is still connected", h)
        finally:
            s.close()


@tap.case
def too_many_clients_are_told_so(bins):
    with running(bins, CONFIG) as d:
        held = [d.connect() for _ in range(140)]
        try:
            # the clients over the limit are answered and closed; the others wait
            refused = wait_for(lambda: len(r := select.select(held, [], [], 0.5)[0]) >= 12 and r,
                               "12 clients to be refused")
            for s in refused:
                error_of(read_line(s), errno.EAGAIN, "too many clients")
            check(len(refused) <= 13, "only those over the limit", len(refused))
            d.fails("list", contains="too many clients")
        finally:
            for s in held:
                s.close()
        wait_for(lambda: d.cli("list").rc == 0, "service once clients leave")


def nobody_can(d, *args):
    return d.cli(*args, user="nobody")


@tap.case
def socket_is_0660_root_and_its_group(bins):
    with running(bins, CONFIG, group="nogroup") as d:
        st = os.stat(d.socket)
        check(stat.S_IMODE(st.st_mode) == 0o660, "mode 0660", oct(st.st_mode))
        check(st.st_gid == grp.getgrnam("nogroup").gr_gid, "group of the socket", st)


@tap.case
def group_members_may_read_but_not_change(bins):
    with running(bins, CONFIG, group="nogroup") as d:
        d.wait_state("web1", "running")
        check(pwd.getpwnam("nobody").pw_gid == grp.getgrnam("nogroup").gr_gid, "nobody:nogroup")
        for args in (["list"], ["show", "web1"], ["status"], ["list", "--json"]):
            r = nobody_can(d, *args)
            check(r.rc == 0, f"nobody may {args[0]}", r)
        changes = [["set", "web1", "--weight", "1"], ["stop", "web1"], ["start", "web1"],
                   ["create", "x1", "-o", "trace=/dev/null"], ["delete", "web1"]]
        for args in changes:
            r = nobody_can(d, *args)
            check(r.rc == 1 and "permission denied" in r.err and "needs root" in r.err,
                  f"nobody may not {args[0]}", r)
            check(r.err.count("\n") == 1, "one line", r)
        v = d.vm("web1")
        check(v["state"] == "running" and v["weight"] == 5000, "nothing changed", v)
        check("refused: needs root" in d.log(), "refusals logged", d.log())


@tap.case
def others_may_not_even_read(bins):
    with running(bins, CONFIG) as d:  # no group "dynmem" here: root only
        r = nobody_can(d, "list")
        check(r.rc == 1 and f"permission denied on {d.socket}" in r.err, "refused", r)
        group = grp.getgrgid(os.stat(d.socket).st_gid).gr_name
        check(r.err.rstrip().endswith(f"membership in its group, {group}"),
              "names the socket's own group", r, group)
        d.ok("list")


@tap.case
def refusal_names_the_group_given_with_g(bins):
    with running(bins, CONFIG, group="nogroup") as d:  # user daemon is not in nogroup
        r = d.cli("list", user="daemon")
        check(r.rc == 1 and r.err.rstrip().endswith("membership in its group, nogroup"),
              "the group of dynmemd -g, not dynmem", r)


if __name__ == "__main__":
    main(tap)
