#!/usr/bin/env bash
# One command: install everything, create the SQLite database, load the Sichuan demo, serve on :8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Printed manifests embed a CJK font that a Debian package ships (as root; elsewhere the PDF names a font to substitute).
if ! dpkg -s fonts-wqy-zenhei >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fonts-wqy-zenhei
  else
    echo "warning: install fonts-wqy-zenhei (as root) for printed manifests with an embedded Chinese font" >&2
  fi
fi
exec .venv/bin/circuflow demo --serve "$@"
