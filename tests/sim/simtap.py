"""simtap: run a sim test script's cases and print TAP: a plan, then "ok N - name"
(with "# note" when a case returns one) or "not ok N - name" and the traceback as
comments. Returns the exit status: 1 when any case failed."""
import traceback


def run_cases(cases):
    print(f"1..{len(cases)}", flush=True)
    failed = 0
    for i, case in enumerate(cases, 1):
        try:
            note = case()
        except Exception:  # noqa: BLE001 (every failure is one TAP line, with its details)
            failed += 1
            print(f"not ok {i} - {case.__name__}", flush=True)
            for line in traceback.format_exc().splitlines():
                print(f"# {line}", flush=True)
        else:
            print(f"ok {i} - {case.__name__}" + (f" # {note}" if note else ""), flush=True)
    return 1 if failed else 0
