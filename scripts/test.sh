#!/usr/bin/env bash
# Install livr-viz with its test and dev extras (plus Debian chromium for the browser tests), lint, type-check and run
# the whole suite.
# The README's test command and .ci/run both call exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

# the README's virtual environment when there is one (and none is active), else the Python on PATH
PYTHON=python
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi

"$PYTHON" -m pip install -q -e ".[test,dev]"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || { echo "could not install chromium with apt-get" >&2; [ "${CI:-}" = true ] && exit 1; }
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium is not installed and apt-get needs root; browser tests will be skipped" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

# the habits CI keeps: lint with the rule set in pyproject.toml, formatting, and the type checker over core/ and methods/
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
"$PYTHON" -m mypy

set +e
"$PYTHON" -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
