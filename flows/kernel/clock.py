"""China Standard Time: how ledgers, weighbridges and reporting deadlines in Sichuan count days and years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Date
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

CST = timezone(timedelta(hours=8), "CST")
LOCAL_TIME_ZONE = "Asia/Shanghai"
LOCAL_UTC_OFFSET_HOURS = 8


def stored_utc(moment: datetime) -> datetime:
    """A stored moment as an aware UTC datetime (SQLite hands back naive ones; every stored time is UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class local_date(FunctionElement[Any]):
    """The China Standard Time calendar date of a stored UTC timestamp, in SQL on either backend."""

    type = Date()
    inherit_cache = True


@compiles(local_date, "postgresql")
def _local_date_pg(element: local_date, compiler: SQLCompiler, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"CAST(timezone('{LOCAL_TIME_ZONE}', {arg}) AS DATE)"


@compiles(local_date)
def _local_date_sqlite(element: local_date, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps timestamps as 'YYYY-MM-DD HH:MM:SS' text in UTC and dates as 'YYYY-MM-DD': compared as text.
    arg = compiler.process(element.clauses, **kw)
    return f"date({arg}, '+{LOCAL_UTC_OFFSET_HOURS} hours')"
