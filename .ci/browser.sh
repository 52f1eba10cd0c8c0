#!/usr/bin/env bash
# The built book in a real browser (issue 17.2). Call it after `jupyter-book build book/`:
#
#   bash .ci/browser.sh            # checks _build/html, screenshots into _build/screenshots
#   bash .ci/browser.sh -k launch  # extra arguments go to pytest
#
# It builds nothing. It installs what it needs when missing (Debian's chromium, the
# `playwright` Python driver into the active environment), serves the HTML on 127.0.0.1
# with `python -m http.server` for a bounded time, and runs .ci/browser_test.py against it
# (outside pytest's testpaths: a plain `pytest` never runs it) with the network cut: the
# book must carry everything it loads, MathJax included (book/_ext/offline_mathjax.py).
# Environment: BOOK_HTML (default _build/html), BOOK_CONFIG (the _config.yml the HTML was
# built with, default _config.yml), SCREENSHOTS (default _build/screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."

HTML=${BOOK_HTML:-_build/html}
CONFIG=${BOOK_CONFIG:-_config.yml}
SHOTS=${SCREENSHOTS:-_build/screenshots}
WORK=_build/browser
PLAYWRIGHT=playwright==1.64.1   # drives Debian's chromium 156 (no browser download)
t0=$(date +%s)

if [ ! -f "$HTML/index.html" ]; then
    echo "browser.sh: no built book at $HTML (run 'jupyter-book build book/' first)" >&2
    exit 1
fi
mkdir -p "$WORK" "$SHOTS"

if ! command -v chromium >/dev/null 2>&1; then
    echo "browser.sh: installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi
if ! python -c "import playwright" >/dev/null 2>&1; then
    echo "browser.sh: installing $PLAYWRIGHT"
    python -m pip install -q "$PLAYWRIGHT"
fi
t_install=$(( $(date +%s) - t0 ))

PORT=$(python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
# Bounded lifetime: the server ends with this script, and after 30 minutes in any case.
timeout 1800 python -m http.server "$PORT" --bind 127.0.0.1 --directory "$HTML" \
    >"$WORK/http.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
python - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/index.html", timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("browser.sh: the HTTP server did not start")
PY

set +e
BOOK_URL="http://127.0.0.1:$PORT" BOOK_CONFIG="$CONFIG" \
    SCREENSHOTS="$SHOTS" CHROMIUM="$(command -v chromium)" \
    python -m pytest -q -p no:cacheprovider -o addopts="" .ci/browser_test.py "$@"
rc=$?
set -e
echo "browser.sh: install ${t_install}s, total $(( $(date +%s) - t0 ))s;" \
     "screenshots in $SHOTS ($(ls "$SHOTS" | wc -l) files)"
exit $rc
