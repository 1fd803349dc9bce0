#!/usr/bin/env bash
# Installs what the project needs from its own files: Python packages into .venv (pyproject.toml),
# front-end libraries from the npm registry (package.json) copied into app/static/vendor.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

if [ -f package.json ]; then
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
  .venv/bin/python scripts/vendor.py
fi
