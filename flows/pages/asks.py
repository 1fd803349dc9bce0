"""Read models of the correction-ask pages: the tabbed list, one ask with what its viewer may do, the form to ask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlmodel import Session

from flows.access.accounts import Principal
from flows.kernel.errors import NotFound
from flows.kernel.messages import Term
from flows.waste import correction_asks, declarations, manifests, numbers
from flows.waste.correction_asks import ANSWERED, CLOSED, AskView
from models import CorrectionAsk, Declaration
from models.enums import UserRole

Tab = Literal["sent", "answered", "overdue", "closed"]
TABS: tuple[Tab, ...] = ("sent", "answered", "overdue", "closed")
PER_PAGE = 50
DEFAULT_DUE_DAYS = 14  # two weeks, as a bureau's letters usually give


@dataclass(frozen=True)
class AsksPage:
    """One tab of the asks in the viewer's scope, with every tab's count."""

    tab: Tab
    counts: dict[str, int]
    rows: list[AskView]
    count: int
    offset: int
    auditor: bool


def _is_auditor(principal: Principal) -> bool:
    return principal.role in (UserRole.bureau, UserRole.admin)


def asks_page(*, session: Session, principal: Principal, tab: Tab, now: datetime, offset: int = 0) -> AsksPage:
    """The asks of one tab: sent (open, not yet due), answered, overdue (due and unanswered) or closed."""
    filters: dict[Tab, dict[str, Any]] = {
        "sent": {"statuses": ("open",), "overdue": False},
        "answered": {"statuses": ANSWERED},
        "overdue": {"statuses": ("open",), "overdue": True},
        "closed": {"statuses": CLOSED},
    }
    rows, count = correction_asks.list_asks(
        session=session, principal=principal, now=now, offset=offset, limit=PER_PAGE, **filters[tab]
    )
    counts = correction_asks.count_asks(session=session, principal=principal, now=now)
    return AsksPage(tab, counts, rows, count, offset, _is_auditor(principal))


@dataclass(frozen=True)
class AskedField:
    """A field asked for: its name, its value now and, once filed, the value the enterprise gave."""

    name: str
    now: Any
    filed: Any


@dataclass(frozen=True)
class AskDetail:
    view: AskView
    fields: list[AskedField]
    record_link: str | None
    can_answer: bool
    can_decide: bool
    can_withdraw: bool


def _value(row: Any, name: str) -> Any:
    value = getattr(row, name, None) if row is not None else None
    return value.isoformat() if isinstance(value, datetime) else value


def _record(session: Session, ask: CorrectionAsk) -> Any:
    if ask.table_name == "transfer_batch":
        return numbers.get(session, ask.row_id)
    # A declaration's key includes its enterprise (the ask's): one shard on Citus.
    return session.get(Declaration, {"id": ask.row_id, "enterprise_id": ask.enterprise_id})


def ask_detail(*, session: Session, principal: Principal, ask_id: int, now: datetime) -> AskDetail:
    """One ask: the fields asked for with their values now (and filed), and the steps open to the viewer."""
    view = correction_asks.get_ask(session=session, principal=principal, ask_id=ask_id, now=now)
    ask = view.ask
    row = _record(session, ask)
    payload = dict(view.correction.payload or {}) if view.correction else {}
    filed = dict(payload.get("changes") or {}) if ask.table_name == "transfer_batch" else payload
    fields = [AskedField(name, _value(row, name), filed.get(name)) for name in ask.fields]
    link = f"/batches/{ask.row_id}" if ask.table_name == "transfer_batch" else None
    mine = principal.role is UserRole.enterprise and principal.enterprise_id == ask.enterprise_id
    auditor = _is_auditor(principal)
    return AskDetail(
        view=view,
        fields=fields,
        record_link=link,
        can_answer=mine and view.status == "open",
        can_decide=auditor and view.status in ANSWERED,
        can_withdraw=auditor and view.status == "open",
    )


@dataclass(frozen=True)
class NewAsk:
    """The form to ask for a correction of one record: the fields that may be named, by owner, with their values."""

    table: str
    row_id: int
    subject: str
    year: int
    choices: Sequence[tuple[str, str | None, Any]]  # field, owner side (manifests), value now
    due_on: date


def new_ask(*, session: Session, principal: Principal, table: str, row_id: int, now: datetime) -> NewAsk:
    """What an auditor may ask to be corrected on this record."""
    correction_asks.require_auditor(principal)
    due = correction_asks.today(now) + timedelta(days=DEFAULT_DUE_DAYS)
    if table == "transfer_batch":
        batch = manifests.get_manifest(session=session, principal=principal, batch_id=row_id)
        correction_asks.ensure_correctable(batch)
        choices = [(name, owner, _value(batch, name)) for name, owner in manifests.CORRECTABLE.items()]
        return NewAsk(table, row_id, batch.number, batch.year, choices, due)
    if table == "declaration":
        decl = declarations.get_declaration(session=session, principal=principal, declaration_id=row_id)
        figures = [(name, None, _value(decl, name)) for name in declarations.FIGURES]
        return NewAsk(table, row_id, f"{decl.category_code} · {decl.year}", decl.year, figures, due)
    raise NotFound("asks.unknown_table", field="table", column=Term("asks.field.table"), table=table)


def open_asks(*, session: Session, table: str, row_ids: list[int]) -> dict[int, list[int]]:
    """The records of these (already readable) rows under correction, with their open asks."""
    return correction_asks.under_correction(session=session, table=table, row_ids=row_ids)
