#!/bin/sh
# setup.sh: what the browser test needs, installed once and then reused
# offline: Debian's chromium (apt, as root) and playwright-core from npm,
# kept in a cache directory outside the build tree.
#
#   tests/web/setup.sh    prints the node_modules directory holding playwright-core
#
# Exit status 77 (the test is skipped) when chromium is missing and cannot be
# installed, with the reason on stderr; 1 when npm cannot fetch
# playwright-core the first time.
set -eu

PLAYWRIGHT_VERSION=1.65.1
CACHE=${DYNMEM_WEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynmem/web-test}

apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
                >/dev/null 2>&1
}

if ! command -v chromium >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                apt_install chromium || { apt-get update -qq >/dev/null 2>&1 && apt_install chromium; } || true
        fi
        if ! command -v chromium >/dev/null 2>&1; then
                echo "setup.sh: Debian's chromium is not installed and cannot be installed here" \
                        "(needs root and the apt archive)" >&2
                exit 77
        fi
fi

have=$(node -e "process.stdout.write(require(process.argv[1]).version)" \
        "$CACHE/node_modules/playwright-core/package.json" 2>/dev/null || true)
if [ "$have" != "$PLAYWRIGHT_VERSION" ]; then
        if ! command -v npm >/dev/null 2>&1; then
                echo "setup.sh: npm is needed once to install playwright-core" >&2
                exit 1
        fi
        mkdir -p "$CACHE"
        if ! npm install --prefix "$CACHE" --no-audit --no-fund --no-package-lock \
                --loglevel=error "playwright-core@$PLAYWRIGHT_VERSION" >&2; then
                echo "setup.sh: npm could not install playwright-core@$PLAYWRIGHT_VERSION" >&2
                exit 1
        fi
fi
echo "$CACHE/node_modules"
