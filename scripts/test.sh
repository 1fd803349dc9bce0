#!/usr/bin/env bash
# One command: install everything (Python and npm packages, PostGIS and Chromium from Debian when missing),
# then lint, type-check and run the whole test suite on SQLite and on PostgreSQL + PostGIS.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# System packages the tests use: PostGIS for the PostgreSQL run, Chromium for the browser tests.
need=()
pg_major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)
pg_major=${pg_major:-15}
[ -f "/usr/share/postgresql/$pg_major/extension/postgis.control" ] || need+=("postgresql-$pg_major-postgis-3")
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Chinese glyphs in the browser tests' screenshots.
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
# The printable manifest: a TrueType CJK font ReportLab can embed, and poppler to render the PDF in its tests.
dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 || need+=(fonts-wqy-zenhei)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  else
    echo "warning: missing system packages (install them as root): ${need[*]}" >&2
  fi
fi

# PostgreSQL: start the local cluster if it is installed but down, then check PostGIS in a throwaway database.
pg_url=${CIRCUFLOW_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$pg_major" main start || true
  for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  probe="circuflow_probe_$$"
  psql "$pg_url" -qAtc "CREATE DATABASE $probe" >/dev/null
  psql "${pg_url%/*}/$probe" -qAtc "CREATE EXTENSION postgis" >/dev/null
  psql "$pg_url" -qAtc "DROP DATABASE $probe" >/dev/null
  export CIRCUFLOW_TEST_POSTGRES_URL="$pg_url"
  # A streaming replica of the local cluster for tests/test_replica.py (skipped, saying why, where none starts).
  if [ -z "${CIRCUFLOW_TEST_REPLICA_URL:-}" ] && [ "$pg_url" = postgresql://postgres@127.0.0.1:5432/postgres ]; then
    if replica_url=$(scripts/replica.sh); then
      export CIRCUFLOW_TEST_REPLICA_URL="$replica_url"
    else
      echo "warning: no streaming replica (scripts/replica.sh said why above); the replica tests are skipped" >&2
    fi
  fi
elif [ "${CI:-}" = "true" ]; then
  echo "error: PostgreSQL is not reachable on 127.0.0.1:5432; CI runs every test on it too" >&2
  exit 1
else
  echo "warning: PostgreSQL is not reachable; the PostgreSQL half of the suite is skipped" >&2
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy app flows maps models tests
.venv/bin/lint-imports
# Two processes share the suite (pytest-xdist), one per core; tests that share a server of their own (the replica,
# the Citus nodes) are grouped onto one of them. CIRCUFLOW_TEST_WORKERS=0 runs it in one process.
workers=${CIRCUFLOW_TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
  exec .venv/bin/pytest "$@"
fi
exec .venv/bin/pytest -n "$workers" --dist loadgroup "$@"
