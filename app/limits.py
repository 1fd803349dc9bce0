"""Request limits enforced before any route runs: the body's size as it streams, and NUL in the URL."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flows.kernel import bounds, messages


def _refusal(field: str, problem: messages.Message) -> messages.Message:
    return messages.msg("kernel.field_problem", column=bounds.label(field), problem=problem)


async def _answer(send: Send, status: int, title: str, refusal: messages.Message, field: str) -> None:
    """A problem JSON answer, sent straight from the middleware (in English, as the API answers by default)."""
    problem = {
        "title": title,
        "status": status,
        "code": refusal.code,
        "params": messages.plain(refusal.params),
        "detail": refusal.render("en"),
        "field": field,
        "row": None,
    }
    body = json.dumps(problem, ensure_ascii=False).encode("utf-8")
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        # Whatever of the body is still on its way is never read: the connection is not reused.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# A multipart body carries the file and, around it, the boundaries, part headers and small fields of the form.
UPLOAD_ENVELOPE = 64 * 1024


class RequestLimits:
    """Pure ASGI: a body past its limit answers 413, counted as it streams (Content-Length is only a first hint).

    Multipart bodies (uploads) get the upload limit, every other body (JSON, forms) the JSON limit. Once the limit
    is passed the application is told the client went away, and whatever it answers to that is replaced by the
    413; nothing past the limit is ever read. A NUL in the path or the query string (PostgreSQL refuses NUL in text)
    answers 422 naming the parameter, before any route runs.
    """

    def __init__(self, app: ASGIApp, *, json_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nul = _nul_parameter(scope)
        if nul is not None:
            await _answer(send, 422, "InvalidInput", _refusal(nul, messages.msg("kernel.text_nul")), nul)
            return
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").startswith("multipart/form-data")
        shown = self.upload_bytes if upload else self.json_bytes
        limit = shown + UPLOAD_ENVELOPE if upload else shown
        field = "file" if upload else "body"
        refusal = _refusal(field, messages.msg("kernel.body_too_large", limit=shown / bounds.MB))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, "PayloadTooLarge", refusal, field)
            return

        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the application's answer to a body cut short gives way to the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused or started:
                raise
        if refused and not started:
            await _answer(send, 413, "PayloadTooLarge", refusal, field)


def _nul_parameter(scope: Scope) -> str | None:
    """The name of the query parameter (or "path") that holds a NUL character, or None."""
    if "\x00" in scope.get("path", ""):
        return "path"
    query = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return bounds.printable(name.replace("\x00", ""), 64) or "query"
    return None
