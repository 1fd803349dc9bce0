"""Domain errors mapped to HTTP in one table, answered as problem JSON (or an error page for HTML)."""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.i18n import field_label, parse_accept_language, request_language, translate
from app.web import render
from flows.kernel.bounds import printable
from flows.kernel.errors import (
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
from flows.kernel.messages import catalogue, plain
from flows.kernel.messages import render as render_message

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


logger = logging.getLogger("circuflow.errors")

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
    html = _wants_html(request)
    lang = request_language(request, request.app.state.settings) if html else api_language(request)
    # A message may quote what was typed: cut short, and with anything no JSON answer can carry escaped.
    message = printable(exc.render(lang), 2000)
    if html:
        return _error_page(request, status, message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    field = printable(exc.field, 200) if exc.field is not None else None
    body = {
        "title": type(exc).__name__,
        "status": status,
        "code": exc.code,
        "params": _printable_params(plain(exc.params)),
        "detail": message,
        "field": field,
        "row": exc.row,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def api_language(request: Request) -> str:
    """The language of an API answer's messages: what Accept-Language asks for, else English."""
    preferred = parse_accept_language(request.headers.get("accept-language", ""))
    return preferred[0] if preferred else "en"


def _safe_api_language(request: Request) -> str:
    try:
        return api_language(request)
    except Exception:  # noqa: BLE001 - the safety net must answer even when the request's headers cannot be read
        return "en"


def _printable_params(params: dict[str, Any]) -> dict[str, Any]:
    # Parameters may quote what was typed, as the message does; JSON has no NaN or Infinity.
    return {name: _printable_param(value) for name, value in params.items()}


def _printable_param(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value, 500)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _printable_param(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable_param(item) for item in value]
    return value


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Framework errors (unknown URL, bad parameter): an error page for browsers, JSON for the API."""
    assert isinstance(exc, StarletteHTTPException)
    if _wants_html(request):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if detail == _phrase(exc.status_code) and f"kernel.http_{exc.status_code}" in catalogue("en"):
            # The framework's own words ("Not Found"): the page says it in the reader's language.
            lang = request_language(request, request.app.state.settings)
            detail = render_message(lang, f"kernel.http_{exc.status_code}", {})
        return _error_page(request, exc.status_code, detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's error list without the input it echoes: that may be a megabyte, NaN or a lone surrogate."""
    return [
        {
            "type": str(error.get("type", "")),
            "loc": [part if isinstance(part, int) else printable(part, 64) for part in error.get("loc", ())],
            "msg": printable(error.get("msg", ""), 300),
        }
        for error in exc.errors()[:20]
    ]


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """A malformed parameter: an error page naming it for browsers, problem JSON naming it (and FastAPI's list)."""
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if _wants_html(request):
        # A page names each field in the reader's words; FastAPI's own wording is English and stays in the JSON.
        lang = request_language(request, request.app.state.settings)
        detail = "；" if lang == "zh-CN" else "; "
        detail = detail.join(
            translate(
                lang,
                "kernel.validation.missing" if error["type"] == "missing" else "kernel.validation.invalid",
                column=field_label(lang, str(error["loc"][-1]) if error["loc"] else ""),
            )
            for error in errors
        )
        return _error_page(request, 422, detail)
    loc = errors[0]["loc"] if errors else []
    field = str(loc[-1]) if loc else None
    body = {"title": "RequestValidationError", "status": 422, "detail": errors, "field": field, "row": None}
    return JSONResponse(body, status_code=422, media_type="application/problem+json")


# Errors the database raised although every input should have been checked before: honest statuses, nothing of
# the database, the SQL or the code in the answer, every detail in the log.
_UNEXPECTED: dict[type[Exception], tuple[int, str, str]] = {
    DataError: (422, "InvalidInput", "kernel.unexpected_data"),
    IntegrityError: (409, "Conflict", "kernel.unexpected_conflict"),
    # Every pooled connection busy past the pool timeout, or the database's lock held past the busy timeout.
    PoolTimeout: (503, "Busy", "kernel.busy"),
    OperationalError: (503, "Busy", "kernel.database_timeout"),
}
_INTERNAL = (500, "InternalError", "kernel.internal")


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """The safety net: a generic problem JSON (or error page), with the details logged on the server only."""
    status, title, code = next((answer for cls, answer in _UNEXPECTED.items() if isinstance(exc, cls)), _INTERNAL)
    logger.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc, exc_info=exc)
    if _wants_html(request):
        try:
            lang = request_language(request, request.app.state.settings)
            return _error_page(request, status, render_message(lang, code, {}))
        except Exception:  # noqa: BLE001 - the page itself failed: the plain answer below still goes out
            logger.exception("the error page failed")
    detail = render_message(_safe_api_language(request), code, {})
    body = {"title": title, "status": status, "code": code, "detail": detail, "field": None, "row": None}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def register(app: FastAPI) -> None:
    """Install the one handler for every domain error, the page for framework errors, and the safety net."""
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for cls in _UNEXPECTED:
        app.add_exception_handler(cls, unexpected_error_handler)
    # Starlette answers with this handler from its outermost middleware, then re-raises for the server's own log.
    app.add_exception_handler(Exception, unexpected_error_handler)
