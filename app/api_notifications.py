"""JSON API for notifications: the caller's inbox, paged; mark one or all read; e-mail preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.i18n import LanguageDep
from app.params import Id, Offset, checked_json
from flows.notices import inbox
from models.notices import Notice

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["notifications"])


class NotificationPublic(BaseModel):
    id: int
    kind: str = Field(description="what happened: " + ", ".join(inbox.KINDS))
    text: str = Field(description="what it says, in the caller's language")
    link: str | None = Field(description="the page of the thing it is about")
    subject: str
    subject_id: str
    params: dict[str, object]
    created_at: datetime
    read_at: datetime | None
    mail_state: str = Field(description="its e-mail copy: none, pending, sent or failed")


class NotificationsPage(BaseModel):
    data: list[NotificationPublic]
    count: int
    unread: int


class ReadAll(BaseModel):
    marked: int


class PreferencesPublic(BaseModel):
    email: str
    mail_enabled: bool


class PreferencesIn(BaseModel):
    email: str | None = Field(default=None, max_length=254, description="empty: no e-mail")
    mail_enabled: bool | None = Field(default=None, description="false: no e-mail copies (the inbox stays)")


def public(notice: Notice, lang: str, role: str) -> NotificationPublic:
    """A notification as the API shows it."""
    return NotificationPublic(
        id=notice.id or 0,
        kind=notice.kind,
        text=inbox.text_of(notice, lang),
        link=inbox.link_of(notice, role),
        subject=notice.subject,
        subject_id=notice.subject_id,
        params=notice.params,
        created_at=notice.created_at,
        read_at=notice.read_at,
        mail_state=notice.mail_state,
    )


@router.get("/notifications", response_model=NotificationsPage)
def list_(
    session: SessionDep,
    principal: PrincipalDep,
    lang: LanguageDep,
    unread: bool = False,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=inbox.MAX_PAGE)] = 50,
) -> NotificationsPage:
    """The caller's notifications, newest first (unread=true: only the unread), with the total and the unread count."""
    rows, count = inbox.list_notices(
        session=session, user_id=principal.user_id, unread=unread, offset=offset, limit=limit
    )
    return NotificationsPage(
        data=[public(n, lang, principal.role.value) for n in rows],
        count=count,
        unread=inbox.unread_count(session=session, user_id=principal.user_id),
    )


@router.post("/notifications/read-all", response_model=ReadAll)
def read_all(session: SessionDep, principal: PrincipalDep) -> ReadAll:
    """Mark every unread notification of the caller read."""
    marked = inbox.mark_all_read(session=session, user_id=principal.user_id, now=utcnow())
    session.commit()
    return ReadAll(marked=marked)


@router.post("/notifications/{notice_id}/read", response_model=NotificationPublic)
def read(notice_id: Id, session: SessionDep, principal: PrincipalDep, lang: LanguageDep) -> NotificationPublic:
    """Mark one of the caller's notifications read."""
    notice = inbox.mark_read(session=session, user_id=principal.user_id, notice_id=notice_id, now=utcnow())
    session.commit()
    return public(notice, lang, principal.role.value)


@router.get("/notifications/preferences", response_model=PreferencesPublic)
def get_preferences(session: SessionDep, principal: PrincipalDep) -> PreferencesPublic:
    """Where the caller's notifications are e-mailed, and whether."""
    prefs = inbox.preferences(session=session, user_id=principal.user_id)
    return PreferencesPublic(email=prefs.email, mail_enabled=prefs.mail_enabled)


@router.put("/notifications/preferences", response_model=PreferencesPublic)
def set_preferences(body: PreferencesIn, session: SessionDep, principal: PrincipalDep) -> PreferencesPublic:
    """Set the e-mail address and turn e-mail copies on or off (off also drops the e-mails not yet sent)."""
    prefs = inbox.set_preferences(
        session=session,
        user_id=principal.user_id,
        email=body.email,
        mail_enabled=body.mail_enabled,
        now=utcnow(),
    )
    session.commit()
    return PreferencesPublic(email=prefs.email, mail_enabled=prefs.mail_enabled)
