#!/usr/bin/env bash
# A streaming replica of the local PostgreSQL cluster (<major>/main on 5432), for the read-replica tests.
# Creates the cluster "circuflow_replica" once with Debian's pg_createcluster, fills it with pg_basebackup -R from the
# primary, starts it, waits until it streams, and prints its administrative URL on stdout (scripts/test.sh exports it
# as CIRCUFLOW_TEST_REPLICA_URL). Idempotent: a replica that exists and streams is kept; one that cannot start or no
# longer streams is made again, with a replication slot on the primary (named as the cluster) that keeps the WAL it
# has not received. Needs root (or the postgres user).
# The primary's configuration is only reloaded, never restarted: a replication line for 127.0.0.1 is added to its
# pg_hba.conf when missing. Exits non-zero, saying why on stderr, where the replica cannot be made.
set -euo pipefail

pg_major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)
pg_major=${pg_major:-15}
name=circuflow_replica
primary="postgresql://postgres@127.0.0.1:5432/postgres"

fail() {
  echo "replica: $*" >&2
  exit 1
}
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

for tool in pg_createcluster pg_ctlcluster pg_dropcluster pg_lsclusters pg_basebackup psql pg_isready; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (Debian's postgresql-common and postgresql-$pg_major)"
done
[ "$(id -u)" = 0 ] || [ "$(id -un)" = postgres ] || fail "run as root or postgres (pg_createcluster writes /etc)"
pg_isready -q -h 127.0.0.1 -p 5432 || fail "the primary does not answer on 127.0.0.1:5432"

setting() { psql "$primary" -qAtc "SELECT setting FROM pg_settings WHERE name = '$1'"; }
wal_level=$(setting wal_level)
[ "$wal_level" = replica ] || [ "$wal_level" = logical ] || fail "the primary's wal_level is $wal_level (needs replica; changing it needs a restart)"
[ "$(setting max_wal_senders)" -gt 0 ] || fail "the primary's max_wal_senders is 0 (changing it needs a restart)"

# The primary lets local replication connections in (a reload suffices).
hba=$(setting hba_file)
if ! grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
  # At the top: the first line that matches decides, and Debian's default asks replication for a password.
  sed -i '1i # circuflow tests: a streaming replica on this machine (scripts/replica.sh)\nhost replication all 127.0.0.1/32 trust' "$hba"
  psql "$primary" -qAtc "SELECT pg_reload_conf()" >/dev/null
  sleep 1
fi

port_of() { pg_lsclusters -h | awk -v c="$name" -v v="$pg_major" '$1 == v && $2 == c {print $3}'; }
streams() {
  # This cluster (not another one on the port), in recovery, and its WAL receiver streams from the primary.
  replica="postgresql://postgres@127.0.0.1:$(port_of)/postgres"
  [ "$(psql "$replica" -qAtc "SELECT current_setting('cluster_name') = '$pg_major/$name' AND pg_is_in_recovery()
    AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')" 2>/dev/null)" = t ]
}
wait_streaming() {
  for _ in $(seq 1 60); do
    streams && return 0
    sleep 0.5
  done
  return 1
}

if [ -n "$(port_of)" ]; then
  pg_ctlcluster --skip-systemctl-redirect "$pg_major" "$name" start >/dev/null 2>&1 || true
  if wait_streaming; then
    echo "$replica"
    exit 0
  fi
  echo "replica: $pg_major/$name exists but does not stream; making it again" >&2
  pg_dropcluster --stop "$pg_major" "$name"
fi

# Settings a hot standby must have at least as high as its primary's.
options=()
for guc in max_connections max_worker_processes max_wal_senders max_prepared_transactions max_locks_per_transaction; do
  options+=(-o "$guc=$(setting "$guc")")
done
# The next port no other cluster has, unless one is asked for.
port=()
[ -z "${CIRCUFLOW_TEST_REPLICA_PORT:-}" ] || port=(-p "$CIRCUFLOW_TEST_REPLICA_PORT")
pg_createcluster --start-conf=manual "${port[@]}" "$pg_major" "$name" \
  -o shared_buffers=32MB -o hot_standby=on "${options[@]}" >/dev/null
# The replica admits whom the primary admits.
install -o postgres -g postgres -m 640 "$hba" "/etc/postgresql/$pg_major/$name/pg_hba.conf"
data=/var/lib/postgresql/$pg_major/$name
find "$data" -mindepth 1 -delete
# A replication slot keeps on the primary the WAL the replica has not received yet: without it a primary writing fast
# (a benchmark beside the tests) recycles the segments the new replica still needs, and it never streams.
psql "$primary" -qAtc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$name'" >/dev/null
as_postgres pg_basebackup -h 127.0.0.1 -p 5432 -U postgres -D "$data" -R -X stream -c fast -C -S "$name"
pg_ctlcluster --skip-systemctl-redirect "$pg_major" "$name" start
wait_streaming || fail "$pg_major/$name started but does not stream from the primary (see /var/log/postgresql/postgresql-$pg_major-$name.log)"
echo "$replica"
