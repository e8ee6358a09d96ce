#!/usr/bin/env python3
"""Count the real tests in meson test logs and print 'N passed, N failed, N skipped'.

usage: test-summary.py TESTLOG.json [TESTLOG.json...]  (one line for all of them)

TAP tests (cmocka unit tests) count each test case; other tests count once.
Exit status 1 when anything failed or nothing ran.
"""
import json
import re
import sys


def tap_counts(stdout):
    passed = failed = skipped = 0
    for line in stdout.splitlines():
        m = re.match(r"^(not ok|ok)\b(.*)$", line)
        if not m:
            continue
        directive = m.group(2)
        if re.search(r"#\s*skip", directive, re.I):
            skipped += 1
        elif m.group(1) == "ok":
            passed += 1
        else:
            failed += 1
    return passed, failed, skipped


def main():
    passed = failed = skipped = 0
    for path in sys.argv[1:]:
        p, f, s = count_log(path)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


def count_log(path):
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
            result = entry.get("result", "")
            p = f = s = 0
            if entry.get("protocol") == "tap" or "1.." in entry.get("stdout", "")[:200]:
                p, f, s = tap_counts(entry.get("stdout", ""))
            if p + f + s == 0:
                if result in ("OK", "EXPECTEDFAIL"):
                    p = 1
                elif result == "SKIP":
                    s = 1
                else:
                    f = 1
            elif result not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
                f = 1  # crashed or timed out after its last TAP line
            passed, failed, skipped = passed + p, failed + f, skipped + s
    return passed, failed, skipped


if __name__ == "__main__":
    sys.exit(main())
