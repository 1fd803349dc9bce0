"""Domain errors mapped to HTTP in one table, answered as problem JSON (or an error page for HTML)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.i18n import request_language
from app.web import render
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


# Statuses whose error page has a title of its own (app/locales: error.<status>).
ERROR_TITLES = frozenset({400, 403, 404, 405, 409, 422, 423, 429})


def status_for(exc: DomainError) -> int:
    """The HTTP status of a domain error (the most specific class listed wins)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _wants_html(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return False
    # htmx asks with Accept: */*; what it swaps in is HTML all the same.
    return "text/html" in request.headers.get("accept", "") or _is_htmx(request)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _login_url(request: Request) -> str:
    # For htmx, come back to the page the user was on, not to the fragment it asked for.
    here = request.headers.get("hx-current-url", "") if _is_htmx(request) else ""
    parts = urlsplit(here) if here else None
    path = (parts.path + (f"?{parts.query}" if parts.query else "")) if parts else request.url.path
    return f"/login?next={quote(path)}"


def _error_page(request: Request, status: int, detail: str) -> Response:
    """A whole page in the site's layout for a browser that opened a URL; a short alert for htmx."""
    if _is_htmx(request):
        return HTMLResponse(f'<p class="error" role="alert">{_escape(detail)}</p>', status_code=status)
    lang = request_language(request, request.app.state.settings)
    title_key = f"error.{status}" if status in ERROR_TITLES else "error.other"
    context = {"status": status, "detail": detail, "title_key": title_key}
    return render(request, "error.html", context, lang=lang, status_code=status)


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    """Render a domain error as problem JSON, or as an error page (a short alert for htmx)."""
    assert isinstance(exc, DomainError)
    status = status_for(exc)
    if isinstance(exc, NotAuthenticated) and _wants_html(request):
        if _is_htmx(request):
            # A fragment request after the session ended: send the whole window to the sign-in page, rather
            # than swapping the sign-in form into the middle of the page.
            return Response(status_code=401, headers={"HX-Redirect": _login_url(request)})
        if request.method == "GET":
            return RedirectResponse(_login_url(request), status_code=303)
    if _wants_html(request):
        return _error_page(request, status, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"title": type(exc).__name__, "status": status, "detail": exc.message, "field": exc.field, "row": exc.row}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Framework errors (unknown URL, bad parameter): an error page for browsers, JSON for the API."""
    assert isinstance(exc, StarletteHTTPException)
    if _wants_html(request):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return _error_page(request, exc.status_code, detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """A malformed parameter: an error page naming it for browsers, FastAPI's usual JSON for the API."""
    assert isinstance(exc, RequestValidationError)
    if _wants_html(request):
        detail = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or error['loc'][0]}: {error['msg']}"
            for error in exc.errors()
        )
        return _error_page(request, 422, detail)
    return await request_validation_exception_handler(request, exc)


def register(app: FastAPI) -> None:
    """Install the one handler for every domain error, and the page for framework errors."""
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
