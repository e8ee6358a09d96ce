#!/usr/bin/env python3
"""Count the real tests in meson test logs and print one line:
'N passed, N failed, N skipped', and after it, when anything was skipped, why:
'N passed, 0 failed, 7 skipped (clang is not installed: fuzz-agent, fuzz-config; ...)'.

usage: test-summary.py [--absent NAME:REASON]... TESTLOG.json [TESTLOG.json...]

TAP tests (cmocka unit tests, the Python suites) count each test case; other
tests count once. A skip's reason is TAP's ("1..0 # SKIP why", "ok 3 - name #
SKIP why") or, for a test that exited 77, the last line it printed. --absent
counts a suite that was not run at all (scripts/test.sh: DYNMEM_TEST_VALGRIND=0)
as one skip with its reason, so that nothing is silently missing.
Tests that ran under a QEMU (tests/with-qemu.py prints "# qemu-under-test:
VERSION PATH") are counted per QEMU version too, last on the line: "...;
QEMU 7.2.22: N passed, N failed, N skipped; QEMU 10.0.2: ..."; tests skipped
because their QEMU could not be had ("# qemu-under-test: 10.0 unavailable")
count as "QEMU 10.0 (unavailable): 0 passed, 0 failed, N skipped".
Exit status 1 when anything failed or nothing ran.
"""
import json
import re
import sys


def tap_counts(stdout, name, reasons):
    passed = failed = skipped = 0
    for line in stdout.splitlines():
        m = re.match(r"^(not ok|ok)\b(.*)$", line)
        if not m:
            continue
        directive = m.group(2)
        skip = re.search(r"#\s*skip\b\s*(.*)$", directive, re.I)
        if skip:
            skipped += 1
            note(reasons, skip.group(1), name)
        elif m.group(1) == "ok":
            passed += 1
        else:
            failed += 1
    return passed, failed, skipped


def note(reasons, reason, name):
    reasons.setdefault(reason.strip() or "no reason given", []).append(name)


def whole_skip_reason(stdout):
    """Why a test skipped as a whole: its TAP plan's directive, or its last line."""
    m = re.search(r"^1\.\.0\s*#\s*skip\b\s*(.*)$", stdout, re.I | re.M)
    if m:
        return m.group(1)
    lines = [line for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else "exit status 77"


def count_entry(entry, reasons):
    name = entry.get("name", "?").split(" / ")[-1]
    stdout = entry.get("stdout", "")
    result = entry.get("result", "")
    p = f = s = 0
    if entry.get("protocol") == "tap" or re.search(r"^1\.\.\d+", stdout, re.M):
        p, f, s = tap_counts(stdout, name, reasons)
    if p + f + s == 0:
        if result in ("OK", "EXPECTEDFAIL"):
            p = 1
        elif result == "SKIP":
            s = 1
            note(reasons, whole_skip_reason(stdout), name)
        else:
            f = 1
    elif result not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
        f = 1  # crashed or timed out after its last TAP line
    return p, f, s


QEMU_LINE = re.compile(r"^# qemu-under-test: (\d+(?:\.\d+)+)(?: (unavailable)$| )", re.M)


def count_qemu(per_qemu, entry, counts):
    """Add a test's counts to its QEMU's, when it says which QEMU it ran under
    (or which one it could not have: "10.0 unavailable")."""
    m = QEMU_LINE.search(entry.get("stdout", ""))
    if m:
        key = (tuple(int(x) for x in m.group(1).split(".")), m.group(2) or "")
        per_qemu[key] = [a + b for a, b in zip(per_qemu.get(key, [0, 0, 0]), counts)]


def by_qemu(per_qemu):
    """'; QEMU 7.2.22: 51 passed, 0 failed, 0 skipped; QEMU 10.0.2: ...', or ''.
    A QEMU that could not be had: 'QEMU 10.0 (unavailable): 0 passed, 0 failed, 9 skipped'."""
    return "".join(f"; QEMU {'.'.join(map(str, v))}{f' ({note})' if note else ''}: "
                   f"{p} passed, {f} failed, {s} skipped"
                   for (v, note), (p, f, s) in sorted(per_qemu.items()))


def count_log(path, reasons, per_qemu):
    passed = failed = skipped = 0
    try:
        log = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        print(f"test-summary: {path}: {e.strerror}; counted as one failure", file=sys.stderr)
        return 0, 1, 0
    with log:
        for line in log:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                # Not a record of meson's: output a stray process appended.
                print(f"test-summary: ignoring a line that is not a test record: {line[:60]!r}",
                      file=sys.stderr)
                continue
            p, f, s = count_entry(entry, reasons)
            count_qemu(per_qemu, entry, (p, f, s))
            passed, failed, skipped = passed + p, failed + f, skipped + s
    return passed, failed, skipped


def why(reasons):
    """'(reason: a, b; reason2: c)', each test named once, or ''."""
    if not reasons:
        return ""
    parts = []
    for reason, names in sorted(reasons.items()):
        unique = list(dict.fromkeys(names))
        parts.append(f"{reason}: {', '.join(unique)}")
    return " (" + "; ".join(parts) + ")"


def main(argv):
    passed = failed = skipped = 0
    reasons = {}
    per_qemu = {}  # version -> [passed, failed, skipped]
    paths = []
    while argv:
        a = argv.pop(0)
        if a == "--absent" and argv:
            name, _, reason = argv.pop(0).partition(":")
            if reason:  # "NAME:" alone: nothing is absent
                note(reasons, reason, name)
                skipped += 1
        else:
            paths.append(a)
    for path in paths:
        p, f, s = count_log(path, reasons, per_qemu)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    print(f"{passed} passed, {failed} failed, {skipped} skipped{why(reasons)}{by_qemu(per_qemu)}")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
