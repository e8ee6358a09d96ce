#!/usr/bin/env python3
"""scripts/test-summary.py: the counts of the closing line, and every skip's
reason in it (a whole test's, a case's, a test that exited 77, a suite that did
not run), so that nothing that could not run here goes unsaid. Prints TAP.

usage: test_summary.py SOURCE_ROOT
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dynmemtest import Tap  # noqa: E402

ENTRIES = [
    {"name": "dynmem:unit / units", "protocol": "tap", "result": "OK",
     "stdout": "1..2\nok 1 - a\nok 2 - b\n"},
    {"name": "dynmem:fuzz / fuzz-agent", "protocol": "tap", "result": "SKIP",
     "stdout": "1..0 # SKIP clang is not installed\n"},
    {"name": "dynmem:fuzz / fuzz-qmp", "protocol": "tap", "result": "SKIP",
     "stdout": "1..0 # SKIP clang is not installed\n"},
    {"name": "dynmem:faults / faults-state_dir", "protocol": "tap", "result": "OK",
     "stdout": "1..3\nok 1 - a\nok 2 - b # SKIP needs root\nok 3 - c # skip needs root\n"},
    {"name": "dynmem:web / web-page", "protocol": "exitcode", "result": "SKIP",
     "stdout": "installing\nchromium cannot be installed here\n"},
    {"name": "dynmem:e2e / e2e-grow", "protocol": "tap", "result": "TIMEOUT",
     "stdout": "1..5\nok 1 - a\n"},
]


QEMU_ENTRIES = [
    {"name": "dynmem:qemu / qemu-vm", "protocol": "tap", "result": "OK",
     "stdout": "# qemu-under-test: 7.2.22 /usr/bin/qemu-system-x86_64\n1..2\nok 1 - a\nok 2 - b\n"},
    {"name": "dynmem:qemu / qemu-vm-qemu10", "protocol": "tap", "result": "FAIL",
     "stdout": "# qemu-under-test: 10.0.2 /b/qemu-backports/bin/qemu-system-x86_64\n"
               "1..2\nok 1 - a\nnot ok 2 - b\n"},
    {"name": "dynmem:e2e / e2e-grow-qemu10", "protocol": "tap", "result": "OK",
     "stdout": "# qemu-under-test: 10.0.2 /b/qemu-backports/bin/qemu-system-x86_64\n"
               "1..1\nok 1 - a # SKIP no image\n"},
    {"name": "dynmem:agent / agent-qemu-qemu10", "protocol": "tap", "result": "SKIP",
     "stdout": "1..0 # SKIP QEMU 10.0 from bookworm-backports cannot be had: offline\n"},
    {"name": "dynmem:unit / units", "protocol": "tap", "result": "OK", "stdout": "1..1\nok 1\n"},
]


def summary(*args):
    p = subprocess.run([sys.executable, os.path.join(sys.argv[1], "scripts", "test-summary.py"),
                        *args], capture_output=True, text=True)
    return p.returncode, p.stdout.strip()


def main():
    t = Tap()
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "testlog.json")
        with open(log, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in ENTRIES)
        rc, line = summary(log)
        t.ok(line.startswith("4 passed, 1 failed, 5 skipped (") and rc == 1,
             "counts: cases of TAP tests, whole skips, a timeout after its last line", line)
        for reason in ("clang is not installed: fuzz-agent, fuzz-qmp",
                       "needs root: faults-state_dir",
                       "chromium cannot be installed here: web-page"):
            t.ok(reason in line, f"the reason is in the line: {reason}", line)
        rc, line = summary("--absent", "valgrind:turned off", log)
        t.ok("6 skipped" in line and "turned off: valgrind" in line,
             "a suite that did not run counts as a skip with its reason", line)
        rc, line = summary("--absent", "valgrind:", log)
        t.ok("5 skipped" in line, "an empty --absent counts nothing", line)
        qlog = os.path.join(tmp, "qemu.json")
        with open(qlog, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in QEMU_ENTRIES)
        rc, line = summary(qlog)
        t.ok(line.startswith("4 passed, 1 failed, 2 skipped (") and
             line.endswith("; QEMU 7.2.22: 2 passed, 0 failed, 0 skipped; "
                           "QEMU 10.0.2: 1 passed, 1 failed, 1 skipped") and rc == 1,
             "counts per QEMU, oldest first, after the totals", line)
        t.ok("QEMU 10.0 from bookworm-backports cannot be had: offline: agent-qemu-qemu10" in line,
             "the second QEMU's set, skipped, says why", line)
        # meson's log has no protocol member; a plan after long comments is still TAP.
        late = os.path.join(tmp, "late.json")
        with open(late, "w") as f:
            f.write(json.dumps({"name": "dynmem:hostile / hostile-guest-qemu10", "result": "OK",
                                "stdout": "# setting up\n" * 40 + "1..3\nok 1 - a\n"
                                          "ok 2 - b # SKIP not in the set\nok 3 - c\n"}) + "\n")
        rc, line = summary(late)
        t.ok(line.startswith("2 passed, 0 failed, 1 skipped (not in the set: hostile-guest-qemu10)"),
             "a TAP plan after many comment lines: its cases are counted", line)
        rc, line = summary(os.path.join(tmp, "missing.json"))
        t.ok(line == "0 passed, 1 failed, 0 skipped" and rc == 1,
             "a log that is not there is a failure", line)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
