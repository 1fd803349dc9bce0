"""Domain errors mapped to HTTP in one table, answered as problem JSON (or an error page for HTML)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from flows.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    OutsideRegions,
    PeriodLocked,
    TooManyAttempts,
)

STATUS: dict[type[DomainError], int] = {
    InvalidInput: 422,
    OutsideRegions: 422,
    NotFound: 404,
    Conflict: 409,
    NotAuthenticated: 401,
    Forbidden: 403,
    TooManyAttempts: 429,
    PeriodLocked: 423,
}


def status_for(exc: DomainError) -> int:
    """The HTTP status of a domain error (the most specific class listed wins)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    """Render a domain error as problem JSON, or as a short HTML message for pages and htmx."""
    assert isinstance(exc, DomainError)
    status = status_for(exc)
    if isinstance(exc, NotAuthenticated) and _wants_html(request) and request.method == "GET":
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    if _wants_html(request):
        return HTMLResponse(f'<p class="error" role="alert">{_escape(exc.message)}</p>', status_code=status)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"title": type(exc).__name__, "status": status, "detail": exc.message, "field": exc.field, "row": exc.row}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def register(app: FastAPI) -> None:
    """Install the one handler for every domain error."""
    app.add_exception_handler(DomainError, domain_error_handler)
