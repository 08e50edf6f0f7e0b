#!/usr/bin/env bash
# The whole test suite: lint, types, the compiled core under AddressSanitizer + UBSan, then
# pytest (vectors, properties, database on SQLite and PostgreSQL, browser, MQTT, SMTP, PKCS#11).
# Under CI=true a missing ../shared/vectors, PostgreSQL, Chromium, SoftHSM2, compiled core or
# sanitizer run is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests drive for real: Debian's Chromium (Playwright cannot download its
# own browser offline), SoftHSM2 (the PKCS#11 security module) and Mosquitto (MQTT broker);
# and a C compiler with Python's headers for the compiled core (installing sts builds it).
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
core=()
command -v "${CC:-cc}" >/dev/null 2>&1 || core+=(gcc)
uv run --frozen --no-sync python -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || core+=(python3-dev)
need+=("${core[@]}")
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || true
        if [ ${#core[@]} -gt 0 ]; then  # sts was installed without its core: build it now
            uv sync --frozen --quiet --reinstall-package sts
        fi
    else
        echo "   (not root or no apt-get: install ${need[*]} by hand)" >&2
    fi
fi

echo "== ruff"; uv run --frozen --no-sync ruff check src tests benchmarks setup.py
echo "== mypy"; uv run --frozen --no-sync mypy
echo "== import layers"; uv run --frozen --no-sync lint-imports --no-cache
echo "== compiled core under AddressSanitizer + UBSan"; bash scripts/sanitized.sh
echo "== pytest"
exec uv run --frozen --no-sync pytest -n 2 "$@"
