"""Read models of the flags as work: the bureau's queue with status and filters, one flag's page, the download."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from flows.access.scope import ScopeRef
from flows.kernel.adcode import region_prefix
from flows.kernel.messages import render
from flows.kernel.principal import Principal
from flows.pages import audit
from flows.pages.audit import ScopeArgs
from flows.pages.exports import ROW_CAP, Table
from flows.waste import flag_work
from flows.waste.flag_work import EntryPublic, FlagStatus, HistoryLine, WorkedFlag, WorkFilters, WorkPage
from flows.waste.flags import Flag, list_flags
from models import Enterprise, User
from models.enums import UserRole


@dataclass
class WorkQueue:
    """A page of the flags of a scope with their work, the counts by kind and status, and who may be assigned."""

    year: int | None
    scope: ScopeRef
    page: WorkPage
    names: dict[int, tuple[str, str | None]]
    assignees: list[tuple[int, str]]


def assignable(*, session: Session, principal: Principal) -> list[tuple[int, str]]:
    """The active bureau accounts of the principal's region and the regions in it (all of them for an administrator)."""
    query = select(User).where(col(User.role) == UserRole.bureau.value, col(User.is_active).is_(True))
    if not principal.is_admin:
        if principal.role is not UserRole.bureau or not principal.scope_adcode:
            return []
        query = query.where(col(User.scope_adcode).startswith(region_prefix(principal.scope_adcode)))
    users = session.exec(query.order_by(col(User.scope_adcode), col(User.username))).all()
    return [(u.id, u.display_name or u.username) for u in users if u.id is not None]


def _names(session: Session, ids: set[int]) -> dict[int, tuple[str, str | None]]:
    if not ids:
        return {}
    rows = session.exec(select(Enterprise).where(col(Enterprise.id).in_(ids))).all()
    return {e.id: (e.name_zh, e.name_en) for e in rows if e.id is not None}


def work_queue(
    *,
    session: Session,
    principal: Principal,
    year: int | None,
    args: ScopeArgs,
    kinds: Sequence[str] | str | None = None,
    filters: WorkFilters = WorkFilters(),  # noqa: B008 (frozen)
    offset: int = 0,
    limit: int | None = 50,
) -> WorkQueue:
    """The flags of a scope (as the audit queue narrows them) with their work, filtered and sorted, a page."""
    every = audit.flag_queue(
        session=session, principal=principal, year=year, args=args, kinds=kinds, offset=0, limit=ROW_CAP
    )
    page = flag_work.filter_work(
        session=session, principal=principal, flags=every.data, filters=filters, offset=offset, limit=limit, year=year
    )
    return WorkQueue(
        year=year,
        scope=every.scope,
        page=page,
        names=_names(session, {e for f in page.data for e in f.enterprise_ids}),
        assignees=assignable(session=session, principal=principal),
    )


def own_flags(*, session: Session, principal: Principal, year: int | None) -> list[WorkedFlag]:
    """The flags in the principal's own scope with their work (an enterprise: the flags on it)."""
    flags = list_flags(session=session, principal=principal, year=year, limit=ROW_CAP).data
    return flag_work.with_work(session=session, principal=principal, flags=flags)


@dataclass
class FlagPage:
    """One flag as computed now (None once cleared), its work, notes, answers and history, and what one may do."""

    key: str
    kind: str
    year: int
    subject: str
    flag: Flag | None
    status: FlagStatus
    assignee_id: int | None
    assignee: str | None
    reason: str | None
    parties: list[tuple[int, str, str | None]]
    notes: list[EntryPublic]
    answers: list[EntryPublic]
    history: list[tuple[HistoryLine, str | None, str | None]]  # the change, who made it, the assignee's name
    can_work: bool
    can_answer: bool
    assignees: list[tuple[int, str]]
    updated_at: datetime | None
    size: Decimal | None  # the tonnes the flag is about (None once it has cleared)


def flag_page(*, session: Session, principal: Principal, key: str) -> FlagPage:
    """A flag the principal may read, with everything said and done about it."""
    found = flag_work.find_flag(session=session, principal=principal, key=key)
    work = found.work
    said = flag_work.entries(session, principal, [found.key]).get(found.key, [])
    changes = flag_work.history(session=session, key=found.key)
    names = flag_work.usernames(
        session,
        [work.assignee_id if work else None]
        + [e.author_id for e in said]
        + [h.user_id for h in changes]
        + [h.assignee_id for h in changes],
    )
    public = [flag_work.entry_public(session, e) for e in said]
    parties = _names(session, set(found.parties))
    worker = principal.is_admin or principal.role is UserRole.bureau
    return FlagPage(
        key=found.key,
        kind=found.kind,
        year=found.year,
        subject=found.subject,
        flag=found.flag,
        status=FlagStatus(work.status) if work else FlagStatus.open,
        assignee_id=work.assignee_id if work else None,
        assignee=names.get(work.assignee_id) if work and work.assignee_id else None,
        reason=work.reason if work else None,
        parties=[(e, *parties.get(e, (str(e), None))) for e in found.parties],
        notes=[e for e in public if e.kind == "note"],
        answers=[e for e in public if e.kind == "answer"],
        history=[
            (h, names.get(h.user_id) if h.user_id else None, names.get(h.assignee_id) if h.assignee_id else None)
            for h in changes
        ],
        can_work=worker,
        can_answer=principal.role is UserRole.enterprise and principal.enterprise_id in found.parties,
        assignees=assignable(session=session, principal=principal) if worker else [],
        updated_at=work.updated_at if work else None,
        size=flag_work.flag_tonnes(found.flag) if found.flag else None,
    )


WORK_COLUMNS = (
    "kind",
    "year",
    "subject",
    "enterprises",
    "finding",
    "tonnes",
    "status",
    "assignee",
    "reason",
    "answers",
)


def _name(lang: str, zh: str, en: str | None) -> str:
    return zh if lang == "zh-CN" or not en else en


def work_table(queue: WorkQueue, lang: str) -> Table:
    """The filtered flags as a file: kinds, status and findings in words, enterprises and assignees by name."""
    rows: list[list[Any]] = []
    for f in queue.page.data:
        parties = [_name(lang, *queue.names.get(e, (str(e), None))) for e in f.enterprise_ids]
        rows.append(
            [
                render(lang, f"flagwork.kind.{f.kind.value}", {}),
                f.year,
                str(f.evidence.get("number") or f.subject),
                "、".join(parties) if lang == "zh-CN" else ", ".join(parties),
                f.finding().render(lang),
                f.tonnes,
                render(lang, f"flagwork.status.{f.status.value}", {}),
                f.assignee or "",
                f.reason or "",
                "\n".join(a.text for a in f.answers),
            ]
        )
    return Table("flag_work", WORK_COLUMNS, rows[:ROW_CAP], truncated=queue.page.count > ROW_CAP)
