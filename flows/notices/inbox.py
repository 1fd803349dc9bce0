"""The notification record: written for the users an event concerns, in the event's transaction; read and marked.

Recipients are chosen in SQL (one INSERT ... SELECT per event), so that a lock over a province with thousands of
enterprise accounts costs one statement. The acting user never hears of their own act.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, DateTime, and_, case, false, func, insert, literal, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from flows.kernel.adcode import region_prefix
from flows.kernel.errors import InvalidInput, NotFound
from flows.kernel.messages import Term, render
from models import Enterprise, Park, User
from models.enums import UserRole
from models.notices import Notice, NoticePreference

KINDS = (
    "batch_awaiting",
    "batch_refused",
    "batch_part_refused",
    "weight_gap",
    "batch_corrected",
    "correction_requested",
    "correction_awaiting",
    "correction_approved",
    "correction_rejected",
    "flag_raised",
    "flag_found",
    "period_locked",
    "period_unlocked",
    "flag_worked",
    "flag_assigned",
    "flag_answered",
    "ask_sent",
    "ask_answered",
    "ask_decided",
    "ask_withdrawn",
)
MAX_PAGE = 200
_MOMENT = DateTime(timezone=True)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def of_enterprises(*enterprise_ids: int | None) -> ColumnElement[bool]:
    """The accounts of these enterprises."""
    ids = [e for e in enterprise_ids if e is not None]
    return col(User.scope_enterprise_id).in_(ids) if ids else false()


def of_users(*user_ids: int | None) -> ColumnElement[bool]:
    """These accounts."""
    ids = [u for u in user_ids if u is not None]
    return col(User.id).in_(ids) if ids else false()


def in_region(adcode: str) -> ColumnElement[bool]:
    """The accounts whose scope lies in the region, or holds it: its bureaus, its parks' managers, its enterprises."""
    inside = region_prefix(adcode)
    ent = Enterprise
    enterprises = sa_select(col(ent.id)).where(
        or_(
            col(ent.province_adcode) == adcode,
            col(ent.prefecture_adcode).startswith(inside),
            col(ent.county_adcode).startswith(inside),
        )
    )
    parks = sa_select(col(Park.id)).where(col(Park.region_adcode).startswith(inside))
    # A bureau of the region, of a region inside it, or of one holding it (the province hears of its cities' locks).
    holders = {adcode, adcode[:2] + "0000", adcode[:4] + "00"}
    bureau = and_(
        col(User.role) == UserRole.bureau.value,
        or_(col(User.scope_adcode).startswith(inside), col(User.scope_adcode).in_(holders)),
    )
    return or_(
        bureau,
        col(User.scope_park_id).in_(parks),
        col(User.scope_enterprise_id).in_(enterprises),
    )


def notify(
    *,
    session: Session,
    to: ColumnElement[bool],
    kind: str,
    subject: str,
    subject_id: int | str,
    params: Mapping[str, Any],
    now: datetime,
    actor_id: int | None = None,
) -> int:
    """Write one notification for each active account `to` selects (but the actor); returns how many."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    pref = NoticePreference
    wants_mail = and_(col(pref.mail_enabled).is_(True), func.coalesce(col(pref.email), "") != "")
    recipients = (
        sa_select(
            col(User.id),
            literal(kind),
            literal(subject),
            literal(str(subject_id)),
            literal(dict(params), JSON),
            literal(now, _MOMENT),
            case((wants_mail, "pending"), else_="none"),
            literal(0),
            case((wants_mail, literal(now, _MOMENT)), else_=None),
        )
        .select_from(User)
        .outerjoin(pref, col(pref.user_id) == col(User.id))
        .where(to, col(User.is_active).is_(True))
    )
    if actor_id is not None:
        recipients = recipients.where(col(User.id) != actor_id)
    columns = [
        "user_id",
        "kind",
        "subject",
        "subject_id",
        "params",
        "created_at",
        "mail_state",
        "mail_attempts",
        "mail_next_at",
    ]
    result = session.execute(insert(Notice).from_select(columns, recipients))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def bilingual(zh: str | None, en: str | None) -> dict[str, str]:
    """A name as both languages write it (a missing English name falls back to the Chinese one)."""
    return {"zh-CN": zh or en or "", "en": en or zh or ""}


def term(code: str) -> dict[str, str]:
    """A parameter that is a catalogue code, rendered in the reader's language."""
    return {"term": code}


def _param(lang: str, value: Any) -> Any:
    if isinstance(value, dict):
        if "term" in value:
            return Term(str(value["term"]))
        return value.get(lang) or next(iter(value.values()), "")
    return value


def text_of(notice: Notice, lang: str) -> str:
    """What the notification says, in `lang`."""
    params = {name: _param(lang, value) for name, value in (notice.params or {}).items()}
    return render(lang, f"notices.kind.{notice.kind}", params)


def link_of(notice: Notice, role: UserRole | str) -> str | None:
    """The page of the thing the notification is about, for a reader of this role (None: no page of theirs)."""
    if notice.subject == "manifest":
        return f"/batches/{notice.subject_id}"
    if notice.subject == "flag":
        return f"/flags/{notice.subject_id}"
    if notice.subject == "ask":
        return f"/asks/{notice.subject_id}"
    auditor = str(role) in (UserRole.bureau.value, UserRole.admin.value)
    if notice.subject == "lock" and auditor:
        return f"/audit/locks?year={int((notice.params or {}).get('year') or 0)}"
    if notice.subject == "correction" and auditor:
        return "/audit/corrections"
    return None


def _requester(user_id: int | None) -> int:
    if user_id is None:
        # The operator's command-line principal has no inbox.
        raise NotFound("notices.no_inbox", field="user")
    return user_id


def list_notices(
    *, session: Session, user_id: int | None, unread: bool = False, offset: int = 0, limit: int = 50
) -> tuple[list[Notice], int]:
    """A user's notifications, newest first, a page at a time, with the total."""
    owner = _requester(user_id)
    if not 0 <= offset <= 10_000_000:
        raise InvalidInput("notices.bad_offset", field="offset")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("notices.bad_limit", field="limit", most=MAX_PAGE)
    query = select(Notice).where(Notice.user_id == owner)
    if unread:
        query = query.where(col(Notice.read_at).is_(None))
    count = int(session.exec(select(func.count()).select_from(query.subquery())).one())
    rows = session.exec(query.order_by(col(Notice.id).desc()).offset(offset).limit(limit)).all()
    return list(rows), count


def unread_count(*, session: Session, user_id: int | None) -> int:
    """How many of a user's notifications are unread (one indexed count: the bell)."""
    if user_id is None:
        return 0
    query = select(func.count()).where(col(Notice.user_id) == user_id, col(Notice.read_at).is_(None))
    return int(session.exec(query).one())


def mark_read(*, session: Session, user_id: int | None, notice_id: int, now: datetime) -> Notice:
    """Mark one of the user's notifications read (already read: unchanged)."""
    owner = _requester(user_id)
    notice = session.exec(select(Notice).where(Notice.id == notice_id, Notice.user_id == owner)).first()
    if notice is None:
        # Another user's notification is not found either: ids reveal nothing.
        raise NotFound("notices.no_notice", field="notice_id", notice_id=notice_id)
    if notice.read_at is None:
        notice.read_at = now
        session.add(notice)
        session.flush()
    return notice


def mark_all_read(*, session: Session, user_id: int | None, now: datetime) -> int:
    """Mark every unread notification of the user read; returns how many."""
    owner = _requester(user_id)
    query = (
        update(Notice)
        .where(col(Notice.user_id) == owner, col(Notice.read_at).is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Preferences:
    """Where a user's notifications are e-mailed, and whether."""

    email: str
    mail_enabled: bool


def preferences(*, session: Session, user_id: int | None) -> Preferences:
    """A user's e-mail preferences (no row yet: no address, e-mail on once one is given)."""
    row = session.get(NoticePreference, _requester(user_id))
    return Preferences(email=row.email, mail_enabled=row.mail_enabled) if row else Preferences("", True)


def set_preferences(
    *, session: Session, user_id: int | None, email: str | None, mail_enabled: bool | None, now: datetime
) -> Preferences:
    """Change a user's e-mail address and opt-in; an opt-out also drops the e-mails not yet sent."""
    owner = _requester(user_id)
    row = session.get(NoticePreference, owner, with_for_update=True) or NoticePreference(user_id=owner, updated_at=now)
    if email is not None:
        email = email.strip()
        if email and (len(email) > 254 or not _EMAIL.match(email)):
            raise InvalidInput("notices.bad_email", field="email")
        row.email = email
    if mail_enabled is not None:
        row.mail_enabled = mail_enabled
    row.updated_at = now
    session.add(row)
    if not row.mail_enabled or not row.email:
        session.execute(
            update(Notice)
            .where(col(Notice.user_id) == owner, col(Notice.mail_state) == "pending")
            .values(mail_state="none", mail_next_at=None)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return Preferences(email=row.email, mail_enabled=row.mail_enabled)
