"""Reads on a replica: which engine a request's session uses, the replica's state, and the read-after-write cookie.

With CIRCUFLOW_READ_DATABASE_URL set, a GET or HEAD request reads the replica, unless its caller wrote within
CIRCUFLOW_READ_AFTER_WRITE_S (a signed cookie set on every write answer, so that the page after a form's POST and the
target of its redirect show the caller's own change), or the replica is unreachable, not streaming, or further behind
than CIRCUFLOW_REPLICA_MAX_LAG_S: then the primary answers, and /healthz says why.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import ExceptionContext
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import signed
from app.deps import SAFE_METHODS
from app.settings import Settings
from models.db import make_engine

WROTE_COOKIE = "circuflow_wrote"
READ_APPLICATION = "circuflow-read"
CONNECT_TIMEOUT_S = 2
log = logging.getLogger("circuflow")

# How far the replica's replay is behind, in seconds: none when it has replayed all it received, else the age of the
# last transaction replayed; NULL receiver status on a standby: it does not stream from its primary right now.
_LAG_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) END,
       (SELECT status FROM pg_stat_wal_receiver LIMIT 1)
"""


def read_engine_for(settings: Settings) -> Engine:
    """The replica's engine: read-only sessions (a write fails there even on a primary), named in pg_stat_activity."""
    url = settings.read_database_url
    pool: dict[str, Any] = {
        "pool_size": settings.read_db_pool_size,
        "max_overflow": settings.read_db_max_overflow,
        "pool_timeout_s": settings.db_pool_timeout_s,
    }
    if url.startswith("sqlite"):
        engine = make_engine(url, busy_timeout_s=settings.sqlite_busy_timeout_s, **pool)
        event.listen(engine, "connect", _sqlite_query_only)
        return engine
    # A replica that does not answer its connect within two seconds is taken for down: the primary reads.
    options = {"application_name": READ_APPLICATION, "options": "-c default_transaction_read_only=on"}
    return make_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S, **options}, **pool)


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


@dataclass(frozen=True)
class ReplicaState:
    """What the last look at the replica found."""

    usable: bool
    reason: str  # why it is not used, or "streaming" / "in use"
    lag_s: float | None
    checked_at: float  # time.monotonic()


class Replica:
    """The replica's engine and whether to read it now: looked at every `check_s`, by one thread at a time."""

    def __init__(self, engine: Engine, *, secret: str, max_lag_s: float, check_s: float) -> None:
        self.engine = engine
        self.secret = secret
        self.max_lag_s = max_lag_s
        self.check_s = check_s
        self.state = ReplicaState(False, "not checked yet", None, -float("inf"))
        self._checking = threading.Lock()
        event.listen(engine, "handle_error", self._failed)

    def serves(self, request: HTTPConnection) -> bool:
        """Whether this read request goes to the replica: not after its caller's own write, and not when unfit."""
        return not wrote_recently(request, self.secret) and self.usable()

    def usable(self) -> bool:
        """Whether reads may go to the replica now (a look at it when the last one is older than `check_s`)."""
        if time.monotonic() - self.state.checked_at >= self.check_s and self._checking.acquire(blocking=False):
            # The other threads meanwhile go by the last look rather than queue behind a slow connect.
            try:
                self.state = self._look()
            finally:
                self._checking.release()
        return self.state.usable

    def _look(self) -> ReplicaState:
        now = time.monotonic()
        try:
            with self.engine.connect() as conn:
                if conn.dialect.name != "postgresql":
                    conn.execute(text("SELECT 1"))
                    return ReplicaState(True, "in use", 0.0, now)
                in_recovery, lag, receiver = conn.execute(text(_LAG_SQL)).one()
        except Exception as exc:  # noqa: BLE001 - any failure means: read the primary; the cause goes to the log
            return self._changed(ReplicaState(False, f"unreachable ({type(exc).__name__})", None, now))
        lag_s = float(lag)
        if in_recovery and receiver != "streaming":
            return self._changed(ReplicaState(False, "not streaming from the primary", lag_s, now))
        if lag_s > self.max_lag_s:
            return self._changed(ReplicaState(False, f"lagging {lag_s:.1f} s behind", lag_s, now))
        return self._changed(ReplicaState(True, "streaming" if in_recovery else "in use", lag_s, now))

    def _changed(self, state: ReplicaState) -> ReplicaState:
        if state.usable != self.state.usable or self.state.checked_at == -float("inf"):
            log.warning("read replica %s", "in use again" if state.usable else f"not used: {state.reason}")
        return state

    def _failed(self, context: ExceptionContext) -> None:
        # A connection lost mid-request: the following requests read the primary until the next look.
        if context.is_disconnect:
            self.state = ReplicaState(False, "connection lost", None, time.monotonic())

    def health(self) -> dict[str, Any]:
        """The replica's part of /healthz, from the last look at it."""
        state = self.state
        lag = None if state.lag_s is None else round(state.lag_s, 3)
        return {"used": state.usable, "state": state.reason, "lag_s": lag, "max_lag_s": self.max_lag_s}

    def dispose(self) -> None:
        """Close the replica's pool."""
        self.engine.dispose()


def wrote_recently(connection: HTTPConnection, secret: str) -> bool:
    """Whether the request carries a valid read-after-write cookie that has not run out."""
    value = connection.cookies.get(WROTE_COOKIE, "")
    until, _, _signature = value.partition(".")
    if not until.isdigit() or not hmac.compare_digest(value, signed(until, secret)):
        return False
    return int(until) >= time.time()


class ReadAfterWrite:
    """A pure ASGI middleware: every answer to a request that may write carries the read-after-write cookie."""

    def __init__(self, app: ASGIApp, *, secret: str, window_s: float) -> None:
        self.app = app
        self.secret = secret
        self.window_s = window_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or self.window_s <= 0:
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Whole seconds, rounded up: the window is at least what the setting says.
                until = str(int(time.time() + self.window_s) + 1)
                cookie = (
                    f"{WROTE_COOKIE}={signed(until, self.secret)}; Max-Age={int(self.window_s) + 1}; Path=/; "
                    f"HttpOnly; SameSite=Lax{'; Secure' if secure else ''}"
                )
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)
