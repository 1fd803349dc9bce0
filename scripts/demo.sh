#!/usr/bin/env bash
# One command: install everything, create the SQLite database, load the Sichuan demo, serve on :8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/circuflow demo --serve "$@"
