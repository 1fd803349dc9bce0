"""The inbox page (/inbox): a user's notifications, mark read, e-mail preferences; and the bell in the header."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.errors import status_for
from app.i18n import LanguageDep
from app.params import Id
from app.web import beijing, render
from flows.kernel.errors import DomainError
from flows.notices import inbox

PAGE = 20

router = APIRouter(include_in_schema=False)


def _link(*, unread: bool = False, page: int = 1) -> str:
    shown = {"unread": 1} if unread else {}
    if page > 1:
        shown["page"] = page
    return "/inbox" + (f"?{urlencode(shown)}" if shown else "")


def _page(
    request: Request,
    session: SessionDep,
    lang: str,
    principal: PrincipalDep,
    *,
    unread: bool,
    page: int,
    problem: DomainError | None = None,
    done: str | None = None,
) -> Response:
    rows, count = inbox.list_notices(
        session=session, user_id=principal.user_id, unread=unread, offset=(page - 1) * PAGE, limit=PAGE
    )
    pages = max(1, -(-count // PAGE))
    items = [
        {
            "id": n.id,
            "text": inbox.text_of(n, lang),
            "link": inbox.link_of(n, principal.role.value),
            "kind": n.kind,
            "at": beijing(n.created_at),
            "unread": n.read_at is None,
        }
        for n in rows
    ]
    context = {
        "items": items,
        "count": count,
        "unread_count": inbox.unread_count(session=session, user_id=principal.user_id),
        "unread": unread,
        "page": page,
        "pages": pages,
        "prev_href": _link(unread=unread, page=page - 1) if page > 1 else None,
        "next_href": _link(unread=unread, page=page + 1) if page < pages else None,
        "all_href": _link(),
        "unread_href": _link(unread=True),
        "back": _link(unread=unread, page=page),
        "prefs": inbox.preferences(session=session, user_id=principal.user_id),
        "mail_on": bool(request.app.state.settings.smtp_url),
        "problem": problem,
        "done": done,
    }
    status = status_for(problem) if problem else 200
    return render(request, "inbox.html", context, lang=lang, status_code=status)


@router.get("/inbox", name="inbox")
def inbox_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    unread: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: Annotated[str | None, Query(pattern="^(saved|read)$")] = None,
) -> Response:
    """The signed-in user's notifications, newest first, a page at a time; unread ones marked."""
    return _page(request, session, lang, principal, unread=unread, page=page, done=done)


@router.get("/inbox/bell", name="inbox_bell")
def bell(request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep) -> Response:
    """The header's bell with the unread count (one indexed count), refreshed by htmx."""
    count = inbox.unread_count(session=session, user_id=principal.user_id)
    return render(request, "_bell.html", {"unread_count": count, "live": True}, lang=lang, block="bell")


def _back(back: str) -> str:
    # Only back into the inbox: never an open redirect.
    return back if back.startswith("/inbox") and "//" not in back else "/inbox"


@router.post("/inbox/read-all", name="inbox_read_all")
def read_all(
    session: SessionDep, principal: PrincipalDep, back: Annotated[str, Form(max_length=200)] = "/inbox"
) -> Response:
    """Mark every notification read, and back to the inbox."""
    inbox.mark_all_read(session=session, user_id=principal.user_id, now=utcnow())
    session.commit()
    return RedirectResponse(_back(back), status_code=303)


@router.post("/inbox/{notice_id}/read", name="inbox_read")
def read_one(
    notice_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    back: Annotated[str, Form(max_length=200)] = "/inbox",
) -> Response:
    """Mark one notification read, and back to where the reader was in the inbox."""
    inbox.mark_read(session=session, user_id=principal.user_id, notice_id=notice_id, now=utcnow())
    session.commit()
    return RedirectResponse(_back(back), status_code=303)


@router.post("/inbox/preferences", name="inbox_preferences")
def save_preferences(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    email: Annotated[str, Form(max_length=254)] = "",
    mail_enabled: Annotated[bool, Form()] = False,
) -> Response:
    """Save the e-mail address and whether notifications are e-mailed (an unticked box: off)."""
    try:
        inbox.set_preferences(
            session=session, user_id=principal.user_id, email=email, mail_enabled=mail_enabled, now=utcnow()
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        return _page(request, session, lang, principal, unread=False, page=1, problem=exc)
    return RedirectResponse("/inbox?done=saved", status_code=303)
