#!/usr/bin/env bash
# Installs what tests/test_browse_browser.py needs: Debian's chromium and chromium-driver, and
# Playwright for Python (it drives /usr/bin/chromium; `playwright install` is never run).
# Idempotent: when everything is there it only checks, in about a second.
# Usage: bash tests/install_browser.sh [PYTHON]   (default: $PYTHON, else ./.venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT_VERSION=1.65.2
PY="${1:-${PYTHON:-}}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "install_browser: chromium present: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
else
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "install_browser: installing Debian chromium and chromium-driver"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
  echo "install_browser: playwright $PLAYWRIGHT_VERSION present in $PY"
else
  echo "install_browser: installing playwright==$PLAYWRIGHT_VERSION into $PY"
  "$PY" -m pip install -q "playwright==$PLAYWRIGHT_VERSION"
fi
