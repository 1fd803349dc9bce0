"""Engine creation shared by the app, the CLI and the tests, and the one rule for write transactions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from models.quantity import json_default

WRITE_OPTION = "circuflow_write"
DEFAULT_BUSY_TIMEOUT_S = 60.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; the constraints must hold there too.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A larger page cache and memory-mapped reads: the rate aggregations scan a year of manifests.
    cursor.execute("PRAGMA cache_size=-131072")
    cursor.execute("PRAGMA mmap_size=1073741824")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # The driver begins a transaction lazily, at the first write, after the reads that decided it. A write
    # transaction instead takes SQLite's write lock when it begins (waiting up to the busy timeout for the writer
    # before it), so that what it read cannot change before it writes: of concurrent steps on one record the
    # second sees the first's outcome instead of both winning, and a long import makes other writers wait.
    # Reading sessions keep the driver's way: each read sees the latest committed data, as on PostgreSQL.
    if conn.get_execution_options().get(WRITE_OPTION, False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _json_text(value: Any) -> str:
    return json.dumps(value, default=json_default)


def make_engine(
    url: str,
    *,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout_s: float | None = None,
    **kwargs: Any,
) -> Engine:
    """Create an engine; SQLite gets its data directory, foreign keys, WAL and a busy timeout."""
    # JSON columns (corrections' payloads, the audit log) hold exact weights as plain numbers.
    kwargs.setdefault("json_serializer", _json_text)
    pool: dict[str, Any] = {}
    if pool_size is not None:
        pool["pool_size"] = pool_size
    if max_overflow is not None:
        pool["max_overflow"] = max_overflow
    if pool_timeout_s is not None:
        pool["pool_timeout"] = pool_timeout_s
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        in_memory = not path or path == ":memory:"
        if not in_memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": busy_timeout_s}
        engine = create_engine(url, connect_args=connect_args, **({} if in_memory else pool), **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **pool, **kwargs)
    event.listen(engine, "connect", _citus_sequential)
    return engine


def _citus_sequential(dbapi_connection: Any, _record: Any) -> None:
    # On a Citus coordinator the numbers, the chains and the summaries are local tables tied to reference tables,
    # written in the transactions that write the manifests on the shards: Citus then wants one connection per node
    # for the whole transaction, or refuses the local write after a parallel read of the shards.
    cursor = dbapi_connection.cursor()
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
    if cursor.fetchone() is not None:
        cursor.execute("SET citus.multi_shard_modify_mode TO 'sequential'")
    cursor.close()
    dbapi_connection.commit()


def writer(engine: Engine) -> Engine:
    """The same engine, for sessions that write: on SQLite their transactions begin IMMEDIATE."""
    return engine.execution_options(**{WRITE_OPTION: True})
