"""qga: a client for the QEMU guest agent (qemu-guest-agent, Debian's package in
the guest), spoken over the unix socket behind the guest's virtio-serial port
org.qemu.guest_agent.0. The tests and the application benchmark use it to run
commands in an ordinary guest and to ask it to reboot.

Every command first resynchronises with guest-sync-delimited (the agent may
have restarted, e.g. after a reboot, and a reply to an abandoned command may
still be in the stream), so each call stands alone; a connection that fails is
dropped and the next call opens a new one.
"""
import base64
import json
import random
import socket
import time


# seconds a command may take to be answered: a guest under TCG on a shared, busy
# machine (and short of memory when a test fills it) can be that slow; a call
# ends as soon as the answer comes (dynmemtest's WAIT)
CALL_TIMEOUT = 60.0


class QgaError(Exception):
    pass


class Qga:
    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock, self.buf = None, b""

    def _send(self, obj, raw_prefix=b""):
        self.sock.sendall(raw_prefix + json.dumps(obj).encode() + b"\n")

    def _reply(self, deadline):
        """The next JSON object from the stream (events and blank lines skipped)."""
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QgaError("no reply from the guest agent")
                self.sock.settimeout(left)
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout as e:
                    raise QgaError("no reply from the guest agent") from e
                if not chunk:
                    raise QgaError("the guest agent's socket closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.replace(b"\xff", b"").strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # a partial line from before the resynchronisation
            if isinstance(msg, dict) and "event" not in msg:
                return msg

    def _sync(self, deadline):
        token = random.randrange(1, 1 << 31)
        self._send({"execute": "guest-sync-delimited", "arguments": {"id": token}},
                   raw_prefix=b"\xff")
        while True:
            msg = self._reply(deadline)
            if msg.get("return") == token:
                return

    def call(self, execute, arguments=None, timeout=CALL_TIMEOUT):
        """The 'return' of one command; QgaError when the agent does not answer in time."""
        deadline = time.monotonic() + timeout
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(self.path)
            self._sync(deadline)
            msg = {"execute": execute}
            if arguments is not None:
                msg["arguments"] = arguments
            self._send(msg)
            if execute in ("guest-shutdown",):
                return None  # no reply when it succeeds
            reply = self._reply(deadline)
        except (OSError, QgaError):
            self.close()
            raise
        if "error" in reply:
            raise QgaError(f"{execute}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def ping(self, timeout=5.0):
        """True when the agent answers now."""
        try:
            self.call("guest-ping", timeout=timeout)
            return True
        except (OSError, QgaError):
            return False

    def wait_up(self, timeout, interval=1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping(timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
                return True
            time.sleep(interval)
        return False

    def spawn(self, argv, env=None):
        """Start argv in the guest (output captured); its guest pid."""
        args = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if env:
            args["env"] = [f"{k}={v}" for k, v in env.items()]
        return self.call("guest-exec", args)["pid"]

    def status(self, pid):
        """(exited, exit code or None, stdout, stderr) of a spawned command."""
        s = self.call("guest-exec-status", {"pid": pid})
        out = base64.b64decode(s.get("out-data", "")).decode(errors="replace")
        err = base64.b64decode(s.get("err-data", "")).decode(errors="replace")
        return s.get("exited", False), s.get("exitcode", s.get("signal")), out, err

    def run(self, argv, timeout=120.0, poll=0.5):
        """Run argv to its end: (exit code, stdout, stderr). QgaError on timeout."""
        pid = self.spawn(argv)
        deadline = time.monotonic() + timeout
        while True:
            exited, code, out, err = self.status(pid)
            if exited:
                return code, out, err
            if time.monotonic() > deadline:
                raise QgaError(f"{argv[0]} still runs after {timeout:.0f} s")
            time.sleep(poll)

    def sh(self, script, timeout=120.0):
        """Run a shell script: (exit code, stdout, stderr)."""
        return self.run(["/bin/sh", "-c", script], timeout=timeout)
