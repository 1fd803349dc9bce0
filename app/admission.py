"""Admission: at most as many requests inside the app at once as there are database connections."""

from __future__ import annotations

import json
import math

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from flows.kernel.messages import msg

# Answered without a database connection of the pool: they never wait behind the others.
_BYPASS = ("/healthz", "/static/")


class Admission:
    """A pure ASGI middleware that lets at most `limit` requests into the app at once; the others wait their turn.

    A request holds its connection from its handler until its answer is written, across several hops through the
    thread pool (dependencies, handler, serialisation). Were more requests inside than there are connections, the
    threads could all be waiting for connections held by requests that wait for a thread, until the pool's timeout.
    Waiting here costs only a place in a queue on the event loop; past `timeout_s` the request is answered 503.
    """

    def __init__(self, app: ASGIApp, *, limit: int, timeout_s: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s
        self._slots: anyio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_BYPASS):
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            # Made on the server's own event loop, at its first request.
            self._slots = anyio.Semaphore(self.limit)
        slots = self._slots
        admitted = False
        # Only the wait for a place is timed: once inside, a request runs as long as it needs.
        with anyio.move_on_after(self.timeout_s if math.isfinite(self.timeout_s) else None):
            await slots.acquire()
            admitted = True
        if not admitted:
            await _busy(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()


async def _busy(send: Send) -> None:
    busy = msg("kernel.busy")
    body = json.dumps(
        {
            "title": "Busy",
            "status": 503,
            "code": busy.code,
            "params": {},
            "detail": busy.render("en"),
            "field": None,
            "row": None,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"5"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
