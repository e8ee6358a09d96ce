#!/usr/bin/env python3
"""When QEMU 10.0 from bookworm-backports cannot be had, the tests of the
second QEMU are skipped visibly: tests/with-qemu.py prints why ("1..0 # SKIP
QEMU 10.0 from bookworm-backports cannot be had: REASON"), does not run the
test, and scripts/test-summary.py still names QEMU 10.0 on the closing line
with those skips. The archive is made unreachable for real
(DYNMEM_BACKPORTS_MIRROR pointing at a closed local port), no network is
needed. Prints TAP.

usage: test_qemu_unavailable.py SOURCE_ROOT
"""
import json
import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Tap  # noqa: E402


def closed_port():
    """A local TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    root = sys.argv[1]
    t = Tap()
    with tempfile.TemporaryDirectory() as tmp:
        ran = os.path.join(tmp, "ran")
        env = dict(os.environ, DYNMEM_BACKPORTS_MIRROR=f"http://127.0.0.1:{closed_port()}/debian")
        p = subprocess.run([sys.executable, os.path.join(root, "tests", "with-qemu.py"),
                            "--backports", os.path.join(tmp, "qemu-backports"), "--",
                            "touch", ran], capture_output=True, text=True, env=env, timeout=300)
        lines = p.stdout.splitlines()
        t.ok(p.returncode == 0 and not os.path.exists(ran),
             "the test is not run, and that is not a failure", p.stdout + p.stderr)
        prefix = "1..0 # SKIP QEMU 10.0 from bookworm-backports cannot be had: "
        t.ok(len(lines) == 2 and lines[0] == "# qemu-under-test: 10.0 unavailable" and
             lines[1].startswith(prefix + "apt-get update of bookworm-backports from ") and
             "Connection refused" in lines[1],
             "it says so as a TAP skip, with the reason", p.stdout)
        t.comment(lines[-1] if lines else "(nothing printed)")
        log = os.path.join(tmp, "testlog.json")
        with open(log, "w") as f:
            for name, out in (("qemu-vm", "# qemu-under-test: 7.2.22 /usr/bin/qemu\n1..1\nok 1 - a\n"),
                              ("qemu-vm-qemu10", p.stdout), ("e2e-grow-qemu10", p.stdout)):
                f.write(json.dumps({"name": f"dynmem:qemu / {name}", "protocol": "tap",
                                    "result": "SKIP" if "qemu10" in name else "OK",
                                    "stdout": out}) + "\n")
        s = subprocess.run([sys.executable, os.path.join(root, "scripts", "test-summary.py"), log],
                           capture_output=True, text=True)
        line = s.stdout.strip()
        t.ok(line.startswith("1 passed, 0 failed, 2 skipped (QEMU 10.0 from bookworm-backports "
                             "cannot be had: ") and "qemu-vm-qemu10, e2e-grow-qemu10)" in line,
             "the closing line counts the skips with their reason", line)
        t.ok(line.endswith("; QEMU 7.2.22: 1 passed, 0 failed, 0 skipped; "
                           "QEMU 10.0 (unavailable): 0 passed, 0 failed, 2 skipped"),
             "and names both QEMUs, 10.0 as unavailable", line)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
