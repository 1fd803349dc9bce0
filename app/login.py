"""Sign in and sign out of the web app."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.auth import (
    SESSION_COOKIE,
    PrincipalDep,
    check_prelogin,
    prelogin_token,
    session_token,
    set_prelogin_cookie,
    sign_cookie,
    utcnow,
)
from app.deps import SessionDep
from app.i18n import LanguageDep, safe_next, translate
from app.web import render
from flows.access import accounts
from flows.access.accounts import SESSION_LIFETIME
from flows.kernel.errors import NotAuthenticated, TooManyAttempts

router = APIRouter(include_in_schema=False)


def _login_page(request: Request, lang: str, next_: str, error: str | None, username: str, status: int) -> Response:
    token = prelogin_token(request)
    response = render(
        request,
        "login.html",
        {"next": safe_next(next_), "error": error, "username": username, "csrf_token": token},
        lang=lang,
        status_code=status,
    )
    set_prelogin_cookie(request, response, token)
    return response


@router.get("/login", name="login")
def login_form(request: Request, lang: LanguageDep, next: str = "/") -> Response:  # noqa: A002 - the query name
    """The sign-in form."""
    return _login_page(request, lang, next, None, "", 200)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",  # noqa: A002 - the form field's name
) -> Response:
    """Check the password (throttled), open a session and go where the user was heading."""
    check_prelogin(request, csrf_token)
    # The throttle counts per client address: behind a reverse proxy this is the address the proxy forwards
    # (uvicorn trusts X-Forwarded-For from --forwarded-allow-ips, by default 127.0.0.1).
    client = request.client.host if request.client else ""
    try:
        user = accounts.authenticate(session=session, username=username, password=password, client=client, now=utcnow())
    except TooManyAttempts:
        return _login_page(request, lang, next, translate(lang, "login.throttled"), username, 429)
    except NotAuthenticated:
        # Already counted: authenticate committed the attempt's reservation before it checked the password.
        return _login_page(request, lang, next, translate(lang, "login.failed"), username, 401)
    raw, _csrf = accounts.start_session(session=session, user=user, now=utcnow(), client=client)
    session.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sign_cookie(request, raw),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout", name="logout")
def logout(request: Request, session: SessionDep, principal: PrincipalDep) -> Response:
    """End the session (the CSRF check of the principal dependency applies)."""
    raw = session_token(request)
    if raw:
        accounts.end_session(session=session, raw=raw, now=utcnow())
        session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
