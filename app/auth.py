"""Who is calling: a bearer token or a session cookie, resolved once per request; CSRF checked for cookies."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, Response

from app.deps import SessionDep
from flows.accounts import Principal, resolve_session, resolve_token
from flows.errors import Forbidden, NotAuthenticated

SESSION_COOKIE = "circuflow_session"
PRELOGIN_COOKIE = "circuflow_prelogin"  # double-submit token that protects the sign-in form itself
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """The authenticated caller; 401 without credentials, 403 for a cookie write without its CSRF token."""
    auth = request.headers.get("authorization", "")
    now = utcnow()
    if auth.lower().startswith("bearer "):
        principal = resolve_token(session=session, raw=auth[7:].strip(), now=now)
        session.commit()  # keeps last_used_at of the token
        if principal is None:
            raise NotAuthenticated("the API token is unknown or revoked")
        request.state.principal = principal
        return principal
    raw = session_token(request)
    principal = resolve_session(session=session, raw=raw, now=now) if raw else None
    if principal is None:
        raise NotAuthenticated("sign in first")
    if request.method not in SAFE_METHODS:
        submitted = await _submitted_csrf(request)
        if not principal.csrf_token or not hmac.compare_digest(submitted, principal.csrf_token):
            raise Forbidden("the form's CSRF token is missing or wrong; reload the page and try again")
    request.state.principal = principal
    return principal


async def optional_principal(request: Request, session: SessionDep) -> Principal | None:
    """The caller if signed in, else None (for pages that anonymous users may see)."""
    raw = session_token(request)
    if not raw:
        return None
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
        raise Forbidden("the sign-in form expired; reload the page and try again")


PrincipalDep = Annotated[Principal, Depends(get_principal)]
OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]
