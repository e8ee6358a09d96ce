#!/bin/sh
# check-format.sh: every C file git tracks follows .clang-format. Prints the
# files that do not (fix them with `clang-format -i FILE`); exit 1 if any,
# 77 (a skip) where clang-format is missing.
set -eu
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null 2>&1 || { echo "clang-format not found"; exit 77; }
bad=0
for f in $(git ls-files '*.c' '*.h'); do
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
                echo "not formatted: $f"
                bad=1
        fi
done
exit $bad
