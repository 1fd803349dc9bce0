"""A real streaming replica for the read-replica tests: where it is, and waiting for it or pausing it.

scripts/replica.sh makes and starts it (a cluster of Debian's pg_createcluster filled by pg_basebackup -R from the
local primary) and prints its URL; scripts/test.sh exports that as CIRCUFLOW_TEST_REPLICA_URL. Every database a test
creates on the primary (tests/conftest.py) appears on the replica once its creation is replayed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text

from app.settings import normalise_database_url

REPLICA_ADMIN_URL = os.environ.get("CIRCUFLOW_TEST_REPLICA_URL", "")
HOW = "scripts/replica.sh (run by scripts/test.sh, as root, where Debian's PostgreSQL tools are) starts one"
REPLAY_TIMEOUT_S = 120.0


def unavailable() -> str | None:
    """Why the replica tests cannot run here, or None when a streaming replica answers."""
    if not REPLICA_ADMIN_URL:
        return f"CIRCUFLOW_TEST_REPLICA_URL is not set: no streaming replica to test against ({HOW})"
    engine = create_engine(normalise_database_url(REPLICA_ADMIN_URL))
    try:
        with engine.connect() as conn:
            in_recovery = conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one()
            streaming = conn.execute(text("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"))
            if not in_recovery or not streaming.scalar_one():
                return f"{REPLICA_ADMIN_URL} is not a streaming replica ({HOW})"
    except Exception as exc:  # noqa: BLE001 - whatever stops it, the tests are skipped saying so
        return f"the replica at {REPLICA_ADMIN_URL} does not answer ({type(exc).__name__}; {HOW})"
    finally:
        engine.dispose()
    return None


def on_replica(primary_url: str) -> str:
    """The URL of the same database on the replica."""
    replica = make_url(normalise_database_url(REPLICA_ADMIN_URL))
    database = make_url(primary_url).database
    return replica.set(database=database).render_as_string(hide_password=False)


def _scalar(url: str, sql: str) -> object:
    engine = create_engine(normalise_database_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def primary_lsn(primary_url: str) -> str:
    """Where the primary's WAL is now."""
    return str(_scalar(primary_url, "SELECT pg_current_wal_lsn()"))


def wait_for(lsn: str, *, position: str = "replay") -> None:
    """Wait until the replica has received (or replayed) the WAL up to `lsn`; fail after two minutes."""
    function = {"replay": "pg_last_wal_replay_lsn()", "receive": "pg_last_wal_receive_lsn()"}[position]
    deadline = time.monotonic() + REPLAY_TIMEOUT_S
    while _scalar(REPLICA_ADMIN_URL, f"SELECT pg_wal_lsn_diff({function}, '{lsn}') >= 0") is not True:
        if time.monotonic() > deadline:
            raise AssertionError(f"the replica did not {position} the WAL up to {lsn} within {REPLAY_TIMEOUT_S:g} s")
        time.sleep(0.05)


def wait_for_replay(primary_url: str) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    wait_for(primary_lsn(primary_url))


@contextmanager
def replay_paused() -> Iterator[None]:
    """The replica receives the primary's WAL but applies none of it until the block ends."""
    _scalar(REPLICA_ADMIN_URL, "SELECT pg_wal_replay_pause()::text")
    try:
        yield
    finally:
        _scalar(REPLICA_ADMIN_URL, "SELECT pg_wal_replay_resume()::text")
