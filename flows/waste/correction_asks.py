"""Correction asks: a bureau asks the enterprise that owns named fields of a manifest or declaration to correct them.

The enterprise answers by filing the correction (through flows/waste/corrections.py, so that it waits for the bureau's
decision like any other) or by contesting the ask with a reason; the bureau then decides. An ask is "open" until it is
answered, "filed" or "contested" while the answer waits, and closed as "corrected" (the filed correction approved),
"dropped" (the contest accepted) or "withdrawn". A rejected filing or contest opens the ask again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func
from sqlmodel import Session, col, select

from flows.access.accounts import Principal
from flows.access.scope import can_read_enterprise, readable_enterprise_ids
from flows.access.trail import record, serialise_writers, snapshot
from flows.kernel.bounds import MAX_TEXT
from flows.kernel.clock import CST
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.notices.inbox import bilingual, notify, of_enterprises, of_users, term
from flows.waste import corrections, manifests, numbers
from flows.waste.declarations import FIGURES
from flows.waste.revisions import DEFAULT_TOLERANCE, Tolerance
from models import CorrectionAsk, CorrectionRequest, Declaration, Enterprise, Manifest
from models.asks import ASK_TABLES
from models.enums import ManifestStatus, UserRole

STATUSES = ("open", "filed", "contested", "corrected", "dropped", "withdrawn")
UNDER_CORRECTION = ("open", "filed", "contested")
ANSWERED = ("filed", "contested")
CLOSED = ("corrected", "dropped", "withdrawn")
MAX_DUE_DAYS = 366  # a due date more than a year ahead is a typo, not a plan
MAX_PAGE = 200
# Statuses in which a manifest's correction step is allowed (flows/waste/manifests.py's step table).
_CORRECTABLE_STATUSES = manifests.STEPS["correct"].from_status


def today(now: datetime) -> date:
    """The Beijing calendar date of a moment: due dates are Sichuan's days."""
    return now.astimezone(CST).date()


def status_column() -> ColumnElement[str]:
    """The ask's status in SQL: its own state, or the decision of the correction it was answered with."""
    filed = col(CorrectionAsk.state) == "filed"
    return case(
        (and_(filed, col(CorrectionRequest.status) == "approved"), "corrected"),
        (and_(filed, col(CorrectionRequest.status) == "rejected"), "open"),
        else_=col(CorrectionAsk.state),
    )


def status_of(ask: CorrectionAsk, correction: CorrectionRequest | None) -> str:
    """The ask's status in Python, as status_column() computes it."""
    if ask.state == "filed" and correction is not None:
        return {"approved": "corrected", "rejected": "open"}.get(correction.status, "filed")
    return ask.state


@dataclass(frozen=True)
class AskView:
    """An ask with its status, its record's name and the correction it was answered with."""

    ask: CorrectionAsk
    status: str
    overdue: bool
    subject: str  # the manifest's number or the declaration's category and year
    enterprise_zh: str
    enterprise_en: str | None
    correction: CorrectionRequest | None


def _check_due(due_on: date, now: datetime) -> None:
    first = today(now)
    if not first <= due_on <= first + timedelta(days=MAX_DUE_DAYS):
        raise InvalidInput(
            "asks.bad_due", field="due_on", column=Term("asks.field.due_on"), first=first.isoformat(), days=MAX_DUE_DAYS
        )


def _check_reason(reason: str, field: str = "reason") -> str:
    text = reason.strip()
    if not text:
        raise InvalidInput("asks.reason_needed", field=field, column=Term(f"asks.field.{field}"))
    if len(text) > MAX_TEXT:
        raise InvalidInput("asks.too_long", field=field, column=Term(f"asks.field.{field}"), most=MAX_TEXT)
    return text


def require_auditor(principal: Principal) -> None:
    if principal.role not in (UserRole.bureau, UserRole.admin):
        raise Forbidden("asks.auditors_only")


def ensure_correctable(batch: Manifest) -> None:
    """Refuse a batch that the correction step does not take yet (a draft, or one still on its way)."""
    if ManifestStatus(batch.status) not in _CORRECTABLE_STATUSES:
        raise Conflict(
            "asks.not_correctable_yet",
            field="row_id",
            number=batch.number,
            status=Term(f"waste.status.{ManifestStatus(batch.status).value}"),
        )


def _target(
    session: Session, principal: Principal, table: str, row_id: int, fields: list[str]
) -> tuple[int, str | None, int]:
    """The enterprise that owns the fields, its side of a manifest, and the record's year; the record row locked."""
    if table == "transfer_batch":
        batch = manifests.get_manifest(session=session, principal=principal, batch_id=row_id)
        numbers.get(session, row_id, for_update=True)  # the row locked, found by its full key
        ensure_correctable(batch)
        unknown = [f for f in fields if f not in manifests.CORRECTABLE]
        if unknown:
            raise InvalidInput("asks.unknown_field", field="fields", column=Term("asks.field.fields"), name=unknown[0])
        owners = {manifests.CORRECTABLE[f] for f in fields}
        if len(owners) > 1:
            # Each side answers for its own fields: one ask goes to one enterprise.
            raise InvalidInput("asks.one_side", field="fields", column=Term("asks.field.fields"))
        party = owners.pop()
        return (batch.shipper_id if party == "shipper" else batch.receiver_id), party, batch.year
    if table == "declaration":
        decl = session.exec(
            select(Declaration)
            .where(Declaration.id == row_id, col(Declaration.enterprise_id).in_(readable_enterprise_ids(principal)))
            .with_for_update()
        ).first()
        if decl is None:
            raise NotFound("waste.no_declaration", field="row_id", declaration_id=row_id)
        unknown = [f for f in fields if f not in FIGURES]
        if unknown:
            raise InvalidInput("asks.unknown_field", field="fields", column=Term("asks.field.fields"), name=unknown[0])
        return decl.enterprise_id, None, decl.year
    raise InvalidInput("asks.unknown_table", field="table", column=Term("asks.field.table"), table=table)


def _enterprise_name(session: Session, enterprise_id: int) -> dict[str, str]:
    enterprise = session.get(Enterprise, enterprise_id)
    return bilingual(enterprise.name_zh, enterprise.name_en) if enterprise else bilingual("–", "–")


def _subject(session: Session, ask: CorrectionAsk) -> str:
    if ask.table_name == "transfer_batch":
        batch = numbers.get(session, ask.row_id)
        return batch.number if batch else f"#{ask.row_id}"
    decl = session.get(Declaration, {"id": ask.row_id, "enterprise_id": ask.enterprise_id})
    return f"{decl.category_code} · {decl.year}" if decl else f"#{ask.row_id}"


def _tell(session: Session, principal: Principal, ask: CorrectionAsk, kind: str, now: datetime, **params: Any) -> None:
    to = of_users(ask.asked_by) if kind == "ask_answered" else of_enterprises(ask.enterprise_id)
    notify(
        session=session,
        to=to,
        kind=kind,
        subject="ask",
        subject_id=ask.id or 0,
        params={
            "id": ask.id,
            "table": term(f"waste.table.{ask.table_name}"),
            "subject": _subject(session, ask),
            "enterprise": _enterprise_name(session, ask.enterprise_id),
            "due": ask.due_on.isoformat(),
            **params,
        },
        now=now,
        actor_id=principal.user_id,
    )


def _audit(
    session: Session,
    principal: Principal,
    action: str,
    ask: CorrectionAsk,
    before: dict[str, Any] | None,
    now: datetime,
) -> None:
    record(
        session=session,
        principal=principal,
        action=action,
        table="correction_ask",
        row_id=ask.id,
        before=before,
        after=snapshot(ask),
        now=now,
        enterprises=(ask.enterprise_id,),
    )


def ask_correction(
    *,
    session: Session,
    principal: Principal,
    table: str,
    row_id: int,
    fields: list[str],
    reason: str,
    due_on: date,
    now: datetime,
) -> CorrectionAsk:
    """A bureau over the record's enterprise asks it to correct the named fields by the due date."""
    require_auditor(principal)
    if table not in ASK_TABLES:
        raise InvalidInput("asks.unknown_table", field="table", column=Term("asks.field.table"), table=table)
    named = list(dict.fromkeys(f.strip() for f in fields if f.strip()))
    if not named:
        raise InvalidInput("asks.fields_needed", field="fields", column=Term("asks.field.fields"))
    text = _check_reason(reason)
    _check_due(due_on, now)
    serialise_writers(session)
    enterprise_id, party, year = _target(session, principal, table, row_id, named)
    if not principal.is_admin and not can_read_enterprise(session, principal, enterprise_id):
        # The other side's bureau reads the manifest but does not govern the enterprise that owns these fields.
        raise Forbidden("asks.not_your_region")
    if _open_on(session, table, [row_id]):
        raise Conflict("asks.already_open", field="row_id", subject=row_id)
    ask = CorrectionAsk(
        table_name=table,
        row_id=row_id,
        enterprise_id=enterprise_id,
        party=party,
        year=year,
        fields=named,
        reason=text,
        due_on=due_on,
        asked_by=principal.user_id,
        asked_at=now,
    )
    session.add(ask)
    session.flush()
    _audit(session, principal, "ask_correction", ask, None, now)
    _tell(session, principal, ask, "ask_sent", now, reason=text)
    return ask


def _load(session: Session, principal: Principal, ask_id: int, *, for_update: bool = False) -> CorrectionAsk:
    query = select(CorrectionAsk).where(
        CorrectionAsk.id == ask_id, col(CorrectionAsk.enterprise_id).in_(readable_enterprise_ids(principal))
    )
    if for_update:
        serialise_writers(session)  # before the row lock, as every writer of the audit log
        # Answer, withdraw and decide read the status and write the next: the second of two waits, then sees the first.
        query = query.with_for_update(of=CorrectionAsk).execution_options(populate_existing=True)
    ask = session.exec(query).first()
    if ask is None:
        raise NotFound("asks.no_ask", field="ask_id", ask_id=ask_id)
    return ask


def _correction(session: Session, ask: CorrectionAsk) -> CorrectionRequest | None:
    if ask.correction_id is None:
        return None
    return session.exec(
        select(CorrectionRequest)
        .where(CorrectionRequest.id == ask.correction_id)
        .execution_options(populate_existing=True)
    ).first()


def _ensure_status(session: Session, ask: CorrectionAsk, *allowed: str) -> str:
    status = status_of(ask, _correction(session, ask))
    if status not in allowed:
        raise Conflict("asks.wrong_status", field="status", ask_id=ask.id, status=Term(f"asks.status.{status}"))
    return status


def _changes(ask: CorrectionAsk, values: dict[str, Any]) -> dict[str, Any]:
    given = {k: v for k, v in values.items() if v is not None and v != ""}
    extra = sorted(set(given) - set(ask.fields))
    if extra:
        raise InvalidInput("asks.not_asked", field=extra[0], column=Term("asks.field.values"), name=extra[0])
    if not given:
        raise InvalidInput("asks.values_needed", field="values", column=Term("asks.field.values"))
    if isinstance(given.get("carrier_id"), str) and str(given["carrier_id"]).isdigit():
        given["carrier_id"] = int(given["carrier_id"])
    return given


def _payload(session: Session, ask: CorrectionAsk, values: dict[str, Any], reason: str) -> dict[str, Any]:
    if ask.table_name == "transfer_batch":
        return {"batch_id": ask.row_id, "changes": values, "reason": reason}
    decl = session.get(Declaration, {"id": ask.row_id, "enterprise_id": ask.enterprise_id})
    if decl is None:
        raise NotFound("waste.no_declaration", field="row_id", declaration_id=ask.row_id)
    figures: dict[str, Any] = {name: str(Decimal(getattr(decl, name) or 0)) for name in FIGURES}
    return {
        "enterprise_id": decl.enterprise_id,
        "category_code": decl.category_code,
        "year": decl.year,
        **figures,
        **values,
    }


def answer_ask(
    *,
    session: Session,
    principal: Principal,
    ask_id: int,
    contest: bool,
    values: dict[str, Any],
    reason: str,
    now: datetime,
    attachment_ids: Sequence[object] = (),
    tolerance: Tolerance = DEFAULT_TOLERANCE,
) -> CorrectionAsk:
    """The enterprise asked files the correction (it then waits for the bureau; evidence as for any correction) or
    contests the ask, with a reason."""
    ask = _load(session, principal, ask_id, for_update=True)
    if principal.role is not UserRole.enterprise or principal.enterprise_id != ask.enterprise_id:
        raise Forbidden("asks.enterprise_answers")
    _ensure_status(session, ask, "open")
    field = "answer" if contest else "reason"
    text = _check_reason(reason, field)
    before = snapshot(ask)
    if contest:
        ask.state, ask.correction_id = "contested", None
    else:
        correction = corrections.request_correction(
            session=session,
            principal=principal,
            table=ask.table_name,
            payload=_payload(session, ask, _changes(ask, values), text),
            reason=text,
            now=now,
            asked=True,
            attachment_ids=attachment_ids,
            tolerance=tolerance,
        )
        ask.state, ask.correction_id = "filed", correction.id
    ask.answered_by, ask.answered_at, ask.answer = principal.user_id, now, text
    session.add(ask)
    session.flush()
    _audit(session, principal, "contest_ask" if contest else "answer_ask", ask, before, now)
    _tell(session, principal, ask, "ask_answered", now, answer=term(f"asks.answer.{ask.state}"), reason=text)
    return ask


def decide_ask(
    *, session: Session, principal: Principal, ask_id: int, accept: bool, note: str, now: datetime
) -> CorrectionAsk:
    """The bureau accepts or rejects the answer: a filed correction is approved (applied) or rejected; a contest is
    accepted (the ask is dropped) or rejected (the ask is open again). A rejection says why."""
    require_auditor(principal)
    ask = _load(session, principal, ask_id, for_update=True)
    status = _ensure_status(session, ask, *ANSWERED)
    text = note.strip()
    if not accept:
        text = _check_reason(note, "note")
    elif len(text) > MAX_TEXT:
        raise InvalidInput("asks.too_long", field="note", column=Term("asks.field.note"), most=MAX_TEXT)
    before = snapshot(ask)
    if status == "filed":
        assert ask.correction_id is not None
        corrections.decide_correction(
            session=session, principal=principal, correction_id=ask.correction_id, approve=accept, note=text, now=now
        )
    else:
        ask.state = "dropped" if accept else "open"
    ask.decided_by, ask.decided_at, ask.decision_note = principal.user_id, now, text or None
    session.add(ask)
    session.flush()
    _audit(session, principal, "decide_ask", ask, before, now)
    outcome = status_of(ask, _correction(session, ask))
    _tell(session, principal, ask, "ask_decided", now, outcome=term(f"asks.status.{outcome}"), note=text)
    return ask


def withdraw_ask(*, session: Session, principal: Principal, ask_id: int, note: str, now: datetime) -> CorrectionAsk:
    """The bureau withdraws an ask that is not answered; the record is no longer under correction."""
    require_auditor(principal)
    ask = _load(session, principal, ask_id, for_update=True)
    _ensure_status(session, ask, "open")
    text = note.strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput("asks.too_long", field="note", column=Term("asks.field.note"), most=MAX_TEXT)
    before = snapshot(ask)
    ask.state = "withdrawn"
    ask.decided_by, ask.decided_at, ask.decision_note = principal.user_id, now, text or None
    session.add(ask)
    session.flush()
    _audit(session, principal, "withdraw_ask", ask, before, now)
    _tell(session, principal, ask, "ask_withdrawn", now, note=text)
    return ask


def _views(
    session: Session, rows: list[tuple[CorrectionAsk, CorrectionRequest | None]], now: datetime
) -> list[AskView]:
    names = {
        e.id: (e.name_zh, e.name_en)
        for e in session.exec(
            select(Enterprise).where(col(Enterprise.id).in_({a.enterprise_id for a, _ in rows}))
        ).all()
    }
    first = today(now)
    views = []
    for ask, correction in rows:
        status = status_of(ask, correction)
        zh, en = names.get(ask.enterprise_id, (str(ask.enterprise_id), None))
        views.append(
            AskView(
                ask=ask,
                status=status,
                overdue=status == "open" and ask.due_on < first,
                subject=_subject(session, ask),
                enterprise_zh=zh,
                enterprise_en=en,
                correction=correction,
            )
        )
    return views


def _base(principal: Principal) -> Any:
    return (
        select(CorrectionAsk, CorrectionRequest)
        .outerjoin(CorrectionRequest, col(CorrectionRequest.id) == col(CorrectionAsk.correction_id))
        .where(col(CorrectionAsk.enterprise_id).in_(readable_enterprise_ids(principal)))
    )


def list_asks(
    *,
    session: Session,
    principal: Principal,
    now: datetime,
    statuses: tuple[str, ...] = (),
    overdue: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[AskView], int]:
    """The asks in the principal's scope (an enterprise: its own), newest first, filtered, with the total."""
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise InvalidInput(
            "asks.unknown_status", field="state", column=Term("asks.field.state"), choices=", ".join(STATUSES)
        )
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("asks.bad_limit", field="limit", column=Term("asks.field.limit"), most=MAX_PAGE)
    query = _base(principal)
    status = status_column()
    if statuses:
        query = query.where(status.in_(statuses))
    if overdue is not None:
        late = and_(status == "open", col(CorrectionAsk.due_on) < today(now))
        query = query.where(late if overdue else ~late)
    count = int(session.exec(select(func.count()).select_from(query.subquery())).one())
    rows = session.exec(query.order_by(col(CorrectionAsk.id).desc()).offset(offset).limit(limit)).all()
    return _views(session, [(a, c) for a, c in rows], now), count


def count_asks(*, session: Session, principal: Principal, now: datetime) -> dict[str, int]:
    """How many asks in scope are open and not due, answered, overdue and closed (the tabs of the asks page)."""
    status = status_column()
    late = and_(status == "open", col(CorrectionAsk.due_on) < today(now))
    tab = case((late, "overdue"), (status == "open", "sent"), (status.in_(ANSWERED), "answered"), else_="closed")
    query = (
        select(tab, func.count())
        .select_from(CorrectionAsk)
        .outerjoin(CorrectionRequest, col(CorrectionRequest.id) == col(CorrectionAsk.correction_id))
        .where(col(CorrectionAsk.enterprise_id).in_(readable_enterprise_ids(principal)))
        .group_by(tab)
    )
    counts = {"sent": 0, "answered": 0, "overdue": 0, "closed": 0}
    counts.update({str(k): int(n) for k, n in session.exec(query).all()})
    return counts


def get_ask(*, session: Session, principal: Principal, ask_id: int, now: datetime) -> AskView:
    """One ask in scope, with its status."""
    ask = _load(session, principal, ask_id)
    return _views(session, [(ask, _correction(session, ask))], now)[0]


def _open_on(session: Session, table: str, row_ids: list[int]) -> dict[int, list[CorrectionAsk]]:
    query = (
        select(CorrectionAsk)
        .outerjoin(CorrectionRequest, col(CorrectionRequest.id) == col(CorrectionAsk.correction_id))
        .where(
            col(CorrectionAsk.table_name) == table,
            col(CorrectionAsk.row_id).in_(row_ids),
            status_column().in_(UNDER_CORRECTION),
        )
        .order_by(col(CorrectionAsk.id))
    )
    found: dict[int, list[CorrectionAsk]] = {}
    for ask in session.exec(query).all():
        found.setdefault(ask.row_id, []).append(ask)
    return found


def under_correction(*, session: Session, table: str, row_ids: list[int]) -> dict[int, list[int]]:
    """The records (of rows the caller may already read) under correction, with the ids of their open asks."""
    if not row_ids:
        return {}
    return {row: [a.id or 0 for a in asks] for row, asks in _open_on(session, table, row_ids).items()}
