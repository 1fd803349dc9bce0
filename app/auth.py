"""Who is calling: a bearer token or a session cookie, resolved once per request; CSRF checked for cookies."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app.deps import SAFE_METHODS, get_engine
from flows.access.accounts import Principal, resolve_session, resolve_token
from flows.kernel.errors import Forbidden, NotAuthenticated

SESSION_COOKIE = "circuflow_session"
PRELOGIN_COOKIE = "circuflow_prelogin"  # double-submit token that protects the sign-in form itself
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def _signature(value: str, secret: str) -> str:
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def signed(value: str, secret: str) -> str:
    """A cookie value signed with the session secret, so that a forged or foreign cookie is refused unread."""
    return f"{value}.{_signature(value, secret)}"


def sign_cookie(request: Request, value: str) -> str:
    """Sign a cookie value with the app's secret."""
    return signed(value, request.app.state.settings.secret_key)


def session_token(request: Request) -> str | None:
    """The session token of the request's cookie, if its signature holds."""
    signed = request.cookies.get(SESSION_COOKIE, "")
    value, _, signature = signed.rpartition(".")
    if not value or not hmac.compare_digest(signature, _signature(value, request.app.state.settings.secret_key)):
        return None
    return value


async def submitted_csrf(request: Request) -> str:
    """The CSRF token a cookie-authenticated write carries (header or form field); reading a form is async."""
    if request.method in SAFE_METHODS or request.headers.get("authorization", "").lower().startswith("bearer "):
        return ""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


# Resolving the caller reads the database: it is a plain function, so FastAPI runs it in the thread pool and the
# event loop never waits for a connection or a query. It has a short session of its own, closed before the handler
# runs: a connection (on SQLite, the write lock) held while the request waits for its next thread would let
# waiting requests hold every connection while the threads that could finish them wait for one.
def get_principal(request: Request, submitted: Annotated[str, Depends(submitted_csrf)]) -> Principal:
    """The authenticated caller; 401 without credentials, 403 for a cookie write without its CSRF token."""
    auth = request.headers.get("authorization", "")
    now = utcnow()
    with Session(get_engine(request)) as session:
        if auth.lower().startswith("bearer "):
            principal = resolve_token(session=session, raw=auth[7:].strip(), now=now)
            if principal is None:
                raise NotAuthenticated("access.token_unknown")
            _keep_last_use(session)
            request.state.principal = principal
            return principal
        raw = session_token(request)
        principal = resolve_session(session=session, raw=raw, now=now) if raw else None
    if principal is None:
        raise NotAuthenticated("access.sign_in_first")
    if request.method not in SAFE_METHODS:
        if not principal.csrf_token or not hmac.compare_digest(submitted, principal.csrf_token):
            raise Forbidden("access.csrf_failed")
    request.state.principal = principal
    return principal


def _keep_last_use(session: Session) -> None:
    # A token's last use is a convenience, written at most every few minutes: on a read request it must never cost
    # the request itself, so a busy database only skips the update.
    if not session.dirty:
        return
    try:
        session.commit()
    except OperationalError:
        session.rollback()


def optional_principal(request: Request) -> Principal | None:
    """The caller if signed in, else None (for pages that anonymous users may see)."""
    raw = session_token(request)
    if not raw:
        return None
    with Session(get_engine(request)) as session:
        return resolve_session(session=session, raw=raw, now=utcnow())


def prelogin_token(request: Request) -> str:
    """The sign-in form's CSRF token: the one in the browser's cookie, or a new one."""
    return request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(32)


def set_prelogin_cookie(request: Request, response: Response, token: str) -> None:
    """Keep the sign-in form's token in a cookie, to be echoed by the form."""
    secure = request.url.scheme == "https"
    response.set_cookie(PRELOGIN_COOKIE, token, httponly=True, samesite="lax", secure=secure, max_age=3600)


def check_prelogin(request: Request, submitted: str) -> None:
    """Refuse a sign-in post whose token does not match its cookie."""
    expected = request.cookies.get(PRELOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, submitted):
        raise Forbidden("access.sign_in_form_expired")


PrincipalDep = Annotated[Principal, Depends(get_principal)]
OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]
