"""What the batch pages ask of the manifests: a viewer's list with its filters, one batch with its story, and the
checks that the logging form runs field by field while the user types.

The checks answer with problem codes and parameters, never with sentences: the web layer words them in the
user's language. The writes themselves stay with flows.waste.manifests, which checks everything again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, exists, or_, true
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from flows.access.accounts import Principal
from flows.access.directory import search_directory
from flows.access.locks import lock_for
from flows.access.scope import readable_batches, readable_enterprise_ids, region_clause
from flows.kernel.bounds import MAX_ID, moment_problem
from flows.kernel.clock import CST, stored_utc
from flows.kernel.quantity import QuantityError, read_number, to_kg
from flows.kernel.quantity import tonnes as kg_as_tonnes
from flows.kernel.uscc import ALPHABET, check_character, validate_uscc
from flows.waste import chains, manifests
from models import (
    AuditLog,
    CorrectionRequest,
    Enterprise,
    Manifest,
    ManifestCorrection,
    ManifestDraw,
    ManifestSource,
    Park,
    PeriodLock,
    Region,
    User,
    WasteCategory,
)
from models.enums import ManifestStatus, Route, TransportMode, UserRole, Weighing
from models.quantity import Tonnes

PAGE_SIZE = 25
SUGGESTIONS = 8  # directory matches offered under the receiver field
Direction = Literal["all", "in", "out"]
SORT_KEYS = ("date", "number", "weight", "status")
# The steps a page offers as actions, in the order they are shown.
PAGE_STEPS = ("dispatch", "update", "cancel", "receive", "reject", "correct")
# The weights a correction on the page may change, and whose they are (flows.waste.manifests.CORRECTABLE).
CORRECTABLE_WEIGHTS = {
    name: manifests.CORRECTABLE[f"{name}_t"] for name in ("weight_dispatched", "weight_received", "rejected")
}


# ---- The list -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchQuery:
    """What the list shows: filters, sort order and page (direction is the enterprise user's own view)."""

    direction: Direction = "all"
    status: ManifestStatus | None = None
    category: str | None = None
    route: Route | None = None
    year: int | None = None
    text: str | None = None  # the counterpart's name or credit code, or the batch number
    # Links from the map, the enterprise and park pages and the audit: batches between given parties or places.
    shipper: int | None = None
    receiver: int | None = None
    party: int | None = None  # either end
    shipper_region: str | None = None  # adcode of the region the shipper lies in
    receiver_region: str | None = None
    region: str | None = None  # either end lies in it
    park: int | None = None  # either end lies in it
    sort: str = "date"
    descending: bool = True
    page: int = 1
    page_size: int = PAGE_SIZE


@dataclass(frozen=True)
class Party:
    """One end of a batch as a page shows it; `readable` says whether the viewer may open its page."""

    id: int
    name_zh: str
    name_en: str | None
    uscc: str
    readable: bool


@dataclass(frozen=True)
class BatchRow:
    id: int
    number: str
    status: ManifestStatus
    year: int
    category_code: str
    category_zh: str
    category_en: str
    route: Route
    weight_dispatched_t: Tonnes
    weight_received_t: Tonnes | None
    rejected_t: Tonnes | None
    dispatched_at: datetime | None
    created_at: datetime
    shipper: Party
    receiver: Party
    direction: Literal["in", "out"] | None  # for an enterprise user: whether it receives or ships this batch
    discrepancy_t: Tonnes | None
    discrepancy_flag: bool

    @property
    def counterpart(self) -> Party:
        """The other end, for an enterprise user (the receiver of what it ships, the shipper of what it gets)."""
        return self.shipper if self.direction == "in" else self.receiver

    @property
    def awaiting_receipt(self) -> bool:
        return self.direction == "in" and self.status is ManifestStatus.dispatched


@dataclass(frozen=True)
class BatchList:
    rows: list[BatchRow]
    count: int
    page: int
    pages: int
    page_size: int

    @property
    def first(self) -> int:
        return 0 if self.count == 0 else (self.page - 1) * self.page_size + 1

    @property
    def last(self) -> int:
        return min(self.count, self.page * self.page_size)


def _mine(principal: Principal) -> int | None:
    return principal.enterprise_id if principal.role is UserRole.enterprise else None


def _matching_enterprises(text: str) -> Any:
    pattern = f"%{text.strip()}%"
    return select(Enterprise.id).where(
        col(Enterprise.name_zh).like(pattern)
        | col(Enterprise.name_en).ilike(pattern)
        | col(Enterprise.uscc).like(pattern.upper())
    )


@dataclass(frozen=True)
class BatchCounts:
    """What stands out on the list: for an enterprise user, batches awaiting its receipt and its own drafts."""

    awaiting_receipt: int = 0
    drafts: int = 0
    in_transit: int = 0  # shipped by the viewer's enterprise, not yet received
    by_status: dict[str, int] = dc_field(default_factory=dict)


def _conditions(principal: Principal, q: BatchQuery) -> list[ColumnElement[bool]]:
    me = _mine(principal)
    shipper, receiver = col(Manifest.shipper_id), col(Manifest.receiver_id)
    where: list[ColumnElement[bool]] = [readable_batches(principal)]
    if me is not None and q.direction == "in":
        where.append(receiver == me)
    elif me is not None and q.direction == "out":
        where.append(shipper == me)
    if q.status is not None:
        where.append(col(Manifest.status) == q.status.value)
    if q.category:
        where.append(col(Manifest.category_code) == q.category)
    if q.route is not None:
        where.append(col(Manifest.route) == q.route.value)
    if q.year is not None:
        where.append(col(Manifest.year) == q.year)
    if q.shipper is not None:
        where.append(shipper == q.shipper)
    if q.receiver is not None:
        where.append(receiver == q.receiver)
    if q.party is not None:
        where.append(or_(shipper == q.party, receiver == q.party))
    if q.shipper_region:
        where.append(shipper.in_(sa_select(col(Enterprise.id)).where(region_clause(q.shipper_region))))
    if q.receiver_region:
        where.append(receiver.in_(sa_select(col(Enterprise.id)).where(region_clause(q.receiver_region))))
    if q.region:
        inside = sa_select(col(Enterprise.id)).where(region_clause(q.region))
        where.append(or_(shipper.in_(inside), receiver.in_(inside)))
    if q.park is not None:
        in_park = sa_select(col(Enterprise.id)).where(col(Enterprise.park_id) == q.park)
        where.append(or_(shipper.in_(in_park), receiver.in_(in_park)))
    if q.text and q.text.strip():
        # A few hundred enterprises match a fragment at most: a subquery of their ids, no join over the batches.
        matching = _matching_enterprises(q.text)
        if me is not None:
            party = or_(
                and_(shipper == me, receiver.in_(matching)),
                and_(receiver == me, shipper.in_(matching)),
            )
        else:
            party = or_(shipper.in_(matching), receiver.in_(matching))
        where.append(or_(party, col(Manifest.number).contains(q.text.strip().upper())))
    return where


def _sort_column(sort: str) -> Any:
    return {
        "date": func.coalesce(col(Manifest.dispatched_at), col(Manifest.created_at)),
        "number": col(Manifest.number),
        "weight": col(Manifest.weight_dispatched_t),
        "status": col(Manifest.status),
    }[sort]


def list_batches(
    *, session: Session, principal: Principal, query: BatchQuery, counts: BatchCounts | None = None
) -> BatchList:
    """One page of the batches the viewer may see, filtered and sorted, with the total count.

    Given the viewer's counts by status (batch_counts), an unfiltered list takes its total from them rather than
    counting the scope a second time.
    """
    if query.sort not in SORT_KEYS:
        raise ValueError(f"sort: one of {', '.join(SORT_KEYS)}")
    where = _conditions(principal, query)
    unfiltered = len(where) == 1
    if counts is not None and unfiltered:
        count = sum(counts.by_status.values())
    else:
        count = int(session.execute(sa_select(func.count()).select_from(Manifest).where(*where)).scalar_one())
    pages = max(1, math.ceil(count / query.page_size))
    page = min(max(1, query.page), pages)
    order = _sort_column(query.sort)
    ids_query = (
        sa_select(col(Manifest.id))
        .where(*where)
        .order_by(order.desc() if query.descending else order.asc(), col(Manifest.id).desc())
        .offset((page - 1) * query.page_size)
        .limit(query.page_size)
    )
    ids = [row[0] for row in session.execute(ids_query)]
    rows = _rows(session, principal, ids)
    return BatchList(rows=rows, count=count, page=page, pages=pages, page_size=query.page_size)


def _rows(session: Session, principal: Principal, ids: list[int]) -> list[BatchRow]:
    if not ids:
        return []
    s, r = aliased(Enterprise), aliased(Enterprise)
    readable = readable_enterprise_ids(principal)
    query = (
        sa_select(
            Manifest,
            col(s.name_zh),
            col(s.name_en),
            col(s.uscc),
            col(s.id).in_(readable) if not principal.is_admin else true(),
            col(r.name_zh),
            col(r.name_en),
            col(r.uscc),
            col(r.id).in_(readable) if not principal.is_admin else true(),
            col(WasteCategory.name_zh),
            col(WasteCategory.name_en),
        )
        .join(s, col(s.id) == col(Manifest.shipper_id))
        .join(r, col(r.id) == col(Manifest.receiver_id))
        .join(WasteCategory, col(WasteCategory.code) == col(Manifest.category_code))
        .where(col(Manifest.id).in_(ids))
    )
    me = _mine(principal)
    found: dict[int, BatchRow] = {}
    for batch, s_zh, s_en, s_uscc, s_ok, r_zh, r_en, r_uscc, r_ok, c_zh, c_en in session.execute(query):
        gap, flagged = manifests.discrepancy(batch)
        direction: Literal["in", "out"] | None = None
        if me is not None:
            direction = "in" if batch.receiver_id == me else "out"
        found[batch.id] = BatchRow(
            id=batch.id,
            number=batch.number,
            status=ManifestStatus(batch.status),
            year=batch.year,
            category_code=batch.category_code,
            category_zh=c_zh,
            category_en=c_en,
            route=Route(batch.route),
            weight_dispatched_t=batch.weight_dispatched_t,
            weight_received_t=batch.weight_received_t,
            rejected_t=batch.rejected_t,
            dispatched_at=(stored_utc(batch.dispatched_at) if batch.dispatched_at else None),
            created_at=stored_utc(batch.created_at),
            shipper=Party(batch.shipper_id, s_zh, s_en, s_uscc, bool(s_ok)),
            receiver=Party(batch.receiver_id, r_zh, r_en, r_uscc, bool(r_ok)),
            direction=direction,
            discrepancy_t=gap,
            discrepancy_flag=flagged,
        )
    return [found[i] for i in ids if i in found]


def batch_counts(*, session: Session, principal: Principal) -> BatchCounts:
    """Counts by status in the viewer's scope, and for an enterprise user what waits on it."""
    rows = session.execute(
        sa_select(col(Manifest.status), func.count()).where(readable_batches(principal)).group_by(col(Manifest.status))
    ).all()
    by_status = {str(status): int(n) for status, n in rows}
    me = _mine(principal)
    if me is None:
        return BatchCounts(by_status=by_status)

    def tally(party: Any, status: ManifestStatus) -> Any:
        return func.sum(case((and_(party == me, col(Manifest.status) == status.value), 1), else_=0))

    shipper, receiver = col(Manifest.shipper_id), col(Manifest.receiver_id)
    mine = session.execute(
        sa_select(
            tally(receiver, ManifestStatus.dispatched),
            tally(shipper, ManifestStatus.draft),
            tally(shipper, ManifestStatus.dispatched),
        ).where(or_(receiver == me, shipper == me))
    ).one()
    awaiting, drafts, transit = (int(v or 0) for v in mine)
    return BatchCounts(awaiting_receipt=awaiting, drafts=drafts, in_transit=transit, by_status=by_status)


def batch_years(*, session: Session, principal: Principal) -> list[int]:
    """The reporting years to offer in the list's filter, newest first: only years with a batch the viewer may see."""
    me = _mine(principal)
    if me is not None:
        # Two index range scans instead of a scan of the scope.
        shipped = sa_select(col(Manifest.year)).where(col(Manifest.shipper_id) == me).distinct()
        received = sa_select(col(Manifest.year)).where(col(Manifest.receiver_id) == me).distinct()
        years = {y for (y,) in session.execute(shipped)} | {y for (y,) in session.execute(received)}
        return sorted(years, reverse=True)
    # The few distinct years come from the year index; each is kept only if one batch in the scope exists, which
    # stops at the first match instead of testing the scope on every batch of every year.
    distinct = sa_select(col(Manifest.year).label("year")).distinct().subquery("years")
    visible = sa_select(col(Manifest.id)).where(col(Manifest.year) == distinct.c.year, readable_batches(principal))
    query = sa_select(distinct.c.year).where(exists(visible))
    return sorted((int(y) for y in session.execute(query).scalars()), reverse=True)


# ---- One batch ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded step of a batch: what, when, by which side, and (for bureaus and administrators) which account."""

    action: str
    at: datetime
    side: str | None  # shipper, receiver, either, or None for an administrator's or the system's work
    username: str | None
    channel: str


@dataclass(frozen=True)
class BatchDetail:
    row: BatchRow
    batch: Manifest
    carrier: Party | None
    received_at: datetime | None
    party: Literal["shipper", "receiver"] | None  # the viewer's side of the batch
    actions: list[str]  # the steps of PAGE_STEPS the viewer may take now
    lock: PeriodLock | None  # a lock on the batch's year for either party
    corrections: list[ManifestCorrection]
    history: list[HistoryEntry]
    sealed: list[str]
    correctable: list[str]  # the weights the viewer may correct (or ask to correct, in a locked year)
    pending: list[CorrectionRequest]  # corrections asked for and not yet decided by a bureau


def _actor_side(action: str) -> str | None:
    step = manifests.STEPS.get(action)
    return step.actor if step else None


def batch_history(*, session: Session, principal: Principal, batch_id: int) -> list[HistoryEntry]:
    """The steps recorded in the audit log for one batch, oldest first."""
    show_user = principal.role in (UserRole.admin, UserRole.bureau)
    query = (
        sa_select(col(AuditLog.action), col(AuditLog.at), col(AuditLog.channel), col(User.username))
        .outerjoin(User, col(User.id) == col(AuditLog.user_id))
        .where(col(AuditLog.table_name) == "transfer_batch", col(AuditLog.row_id) == str(batch_id))
        .order_by(col(AuditLog.id))
    )
    return [
        HistoryEntry(
            action=action,
            at=stored_utc(at),
            side=_actor_side(action),
            username=username if show_user else None,
            channel=str(channel),
        )
        for action, at, channel, username in session.execute(query)
    ]


def available_actions(principal: Principal, batch: Manifest) -> list[str]:
    """The page steps that the step table lets this viewer take on the batch now."""
    status = ManifestStatus(batch.status)
    me = _mine(principal)
    side = "shipper" if me == batch.shipper_id else "receiver" if me == batch.receiver_id else None
    allowed = []
    for name in PAGE_STEPS:
        step = manifests.STEPS[name]
        if status not in step.from_status:
            continue
        if principal.is_admin or (side is not None and step.actor in (side, "either")):
            allowed.append(name)
    return allowed


def correctable_weights(principal: Principal, batch: Manifest) -> list[str]:
    """The weights this viewer may correct on a closed batch: its own side's (an administrator's: any)."""
    if "correct" not in available_actions(principal, batch):
        return []
    me = _mine(principal)
    side = "shipper" if me == batch.shipper_id else "receiver" if me == batch.receiver_id else None
    return [name for name, owner in CORRECTABLE_WEIGHTS.items() if principal.is_admin or owner == side]


def pending_corrections(*, session: Session, batch: Manifest) -> list[CorrectionRequest]:
    """Corrections of this batch that wait for a bureau's decision."""
    query = select(CorrectionRequest).where(
        col(CorrectionRequest.table_name) == "transfer_batch",
        col(CorrectionRequest.status) == "pending",
        col(CorrectionRequest.enterprise_id).in_([batch.shipper_id, batch.receiver_id]),
    )
    # The batch is named inside the request's payload; a party has few pending requests, so filter them here.
    return [
        c
        for c in session.exec(query.order_by(col(CorrectionRequest.id))).all()
        if c.payload.get("batch_id") == batch.id
    ]


def batch_detail(*, session: Session, principal: Principal, batch_id: int) -> BatchDetail:
    """One batch in the viewer's scope, with its parties, what the viewer may do now, its corrections and history."""
    batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
    assert batch.id is not None
    row = _rows(session, principal, [batch.id])[0]
    carrier = None
    if batch.carrier_id is not None:
        c = session.get(Enterprise, batch.carrier_id)
        if c is not None and c.id is not None:
            readable = principal.is_admin or bool(
                session.execute(
                    sa_select(func.count()).where(
                        col(Enterprise.id) == c.id, col(Enterprise.id).in_(readable_enterprise_ids(principal))
                    )
                ).scalar_one()
            )
            carrier = Party(c.id, c.name_zh, c.name_en, c.uscc, readable)
    me = _mine(principal)
    party: Literal["shipper", "receiver"] | None = (
        "shipper" if me == batch.shipper_id else "receiver" if me == batch.receiver_id else None
    )
    lock = lock_for(session=session, enterprise_id=batch.shipper_id, year=batch.year) or lock_for(
        session=session, enterprise_id=batch.receiver_id, year=batch.year
    )
    return BatchDetail(
        row=row,
        batch=batch,
        carrier=carrier,
        received_at=(stored_utc(batch.received_at) if batch.received_at else None),
        party=party,
        actions=available_actions(principal, batch),
        lock=lock,
        corrections=manifests.corrections_of(session=session, batch_id=batch.id),
        history=batch_history(session=session, principal=principal, batch_id=batch.id),
        sealed=manifests.sealed_fields(ManifestStatus(batch.status)),
        correctable=correctable_weights(principal, batch),
        pending=pending_corrections(session=session, batch=batch),
    )


# ---- The form's checks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field: a code the page words in the user's language, and its parameters."""

    field: str
    code: str
    params: dict[str, Any] = dc_field(default_factory=dict)


@dataclass(frozen=True)
class Suggestion:
    id: int
    uscc: str
    name_zh: str
    name_en: str | None


@dataclass(frozen=True)
class PartyLookup:
    """What a typed receiver (or carrier) text gives: suggestions, the one it resolves to, or what is wrong."""

    suggestions: list[Suggestion]
    resolved: Suggestion | None = None
    problem: Problem | None = None


def _suggestion(row: dict[str, Any]) -> Suggestion:
    return Suggestion(id=row["id"], uscc=row["uscc"], name_zh=row["name_zh"], name_en=row["name_en"])


def _by_id(session: Session, enterprise_id: int) -> Suggestion | None:
    e = session.get(Enterprise, enterprise_id)
    if e is None or e.id is None:
        return None
    return Suggestion(e.id, e.uscc, e.name_zh, e.name_en)


def _looks_like_uscc(text: str) -> bool:
    # A typed code: 18 characters of digits and capital letters, no spaces or CJK.
    compact = text.strip().upper()
    return len(compact) == 18 and compact.isascii() and compact.isalnum()


def lookup_party(*, session: Session, text: str, field_name: str, exclude: int | None) -> PartyLookup:
    """Directory matches for a typed name or credit code (any account may address any enterprise by these).

    A full, valid credit code, or a name typed out whole that one enterprise bears, resolves at once.
    """
    text = text.strip()
    if len(text) < 2:
        return PartyLookup([])
    if _looks_like_uscc(text):
        code = text.upper()
        bad = next(((pos, ch) for pos, ch in enumerate(code, start=1) if ch not in ALPHABET), None)
        if bad is not None:
            problem = Problem(field_name, "uscc_char", {"char": bad[1], "position": bad[0]})
            return PartyLookup([], problem=problem)
        expected = check_character(code[:17])
        if code[17] != expected:
            problem = Problem(field_name, "uscc_check", {"char": code[17], "expected": expected})
            return PartyLookup([], problem=problem)
        check = validate_uscc(code)
        found = session.execute(
            sa_select(col(Enterprise.id), col(Enterprise.uscc), col(Enterprise.name_zh), col(Enterprise.name_en)).where(
                col(Enterprise.uscc) == check.code
            )
        ).first()
        if found is None:
            return PartyLookup([], problem=Problem(field_name, "uscc_unknown", {"code": check.code}))
        hit = _suggestion(dict(found._mapping))
        if hit.id == exclude:
            return PartyLookup([], problem=Problem(field_name, "self"))
        return PartyLookup([hit], resolved=hit)
    rows = [_suggestion(r) for r in search_directory(session=session, q=text, limit=SUGGESTIONS + 1)]
    rows = [r for r in rows if r.id != exclude][:SUGGESTIONS]
    exact = [r for r in rows if text in (r.name_zh, r.name_en)]
    return PartyLookup(rows, resolved=exact[0] if len(exact) == 1 else None)


@dataclass(frozen=True)
class BatchForm:
    """The logging form as submitted: raw strings, checked field by field."""

    receiver_id: str = ""
    receiver_q: str = ""
    carrier_id: str = ""
    carrier_q: str = ""
    category: str = ""
    route: str = ""
    weight: str = ""
    unit: str = "t"
    dispatched_at: str = ""
    dispatch: bool = False  # "save and dispatch" rather than "save as draft"
    # What the handover records, sealed at dispatch with the rest.
    vehicle_plate: str = ""
    transport_mode: str = ""
    packaging: str = ""
    weighing: str = ""
    # The lots a forwarding draws from: (number, tonnes or "" for pro rata), one per row of the form.
    sources: tuple[tuple[str, str], ...] = ()


FORM_FIELDS = (
    "receiver",
    "carrier",
    "category",
    "route",
    "weight",
    "dispatched_at",
    "vehicle_plate",
    "transport_mode",
    "packaging",
    "weighing",
    "sources",
)
HANDOVER_LIMITS = {"vehicle_plate": 16, "packaging": 64}  # the columns' lengths (models.waste.Manifest)


@dataclass(frozen=True)
class CheckedForm:
    """The outcome of the checks: problems by field, and the values ready for the manifest writer if there are none."""

    problems: dict[str, Problem]
    receiver: Suggestion | None = None
    carrier: Suggestion | None = None
    weight_t: Tonnes | None = None
    dispatched_at: datetime | None = None
    handover: dict[str, str | None] = dc_field(default_factory=dict)  # vehicle_plate, ..., None where not given
    sources: list[dict[str, Any]] = dc_field(default_factory=list)  # for manifests.SourceIn: number, weight_t

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_weight(
    raw: str, unit: str, field_name: str, *, required: bool = True
) -> tuple[Decimal | None, Problem | None]:
    """A weight typed in t or kg, in exact tonnes; or the problem with it."""
    text = raw.strip()
    if unit not in ("t", "kg"):
        return None, Problem(field_name, "unit", {"unit": unit})
    if not text:
        return None, (Problem(field_name, "required") if required else None)
    try:
        # Strictly: 12,500.5 (thousands as ledgers print them) yes, 1,5 (a decimal comma, or a typo) no.
        value = read_number(text)
    except QuantityError:
        return None, Problem(field_name, "not_number", {"value": text})
    if value is None:
        return None, Problem(field_name, "not_number", {"value": text})
    if value < 0:
        return None, Problem(field_name, "negative", {"value": text})
    try:
        return kg_as_tonnes(to_kg(value, unit)), None
    except QuantityError:
        return None, Problem(field_name, "finer_than_kg", {"value": text})


def parse_local_time(raw: str, field_name: str, now: datetime) -> tuple[datetime | None, Problem | None]:
    """A date and time as a browser sends it (no offset: Beijing time); not in the future."""
    text = raw.strip()
    if not text:
        return None, None
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None, Problem(field_name, "not_time", {"value": text})
    aware = moment if moment.tzinfo else moment.replace(tzinfo=CST)
    if aware > now:
        return None, Problem(field_name, "future")
    if moment_problem(moment) is not None:
        # Year 1 parses, and then overflows when converted to UTC: no record lies outside the record years.
        return None, Problem(field_name, "not_time", {"value": text})
    return moment, None


def _party(
    session: Session, ident: str, text: str, field_name: str, exclude: int | None, *, required: bool
) -> tuple[Suggestion | None, Problem | None]:
    if ident.strip():
        try:
            number = int(ident)
        except ValueError:
            number = 0
        # Past the ids' range the database would refuse the question rather than find nothing.
        chosen = _by_id(session, number) if 1 <= number <= MAX_ID else None
        if chosen is None:
            return None, Problem(field_name, "unknown")
        if chosen.id == exclude:
            return None, Problem(field_name, "self")
        return chosen, None
    if not text.strip():
        return None, (Problem(field_name, "required") if required else None)
    found = lookup_party(session=session, text=text, field_name=field_name, exclude=exclude)
    if found.problem is not None:
        return None, found.problem
    if found.resolved is not None:
        return found.resolved, None
    return None, Problem(field_name, "choose" if found.suggestions else "no_match", {"text": text.strip()})


def check_batch_form(*, session: Session, form: BatchForm, shipper_id: int | None, now: datetime) -> CheckedForm:
    """Check every field of the logging form; nothing is written."""
    problems: dict[str, Problem] = {}
    receiver, p = _party(session, form.receiver_id, form.receiver_q, "receiver", shipper_id, required=True)
    if p:
        problems[p.field] = p
    carrier, p = _party(session, form.carrier_id, form.carrier_q, "carrier", None, required=False)
    if p:
        problems[p.field] = p
    if not form.category:
        problems["category"] = Problem("category", "required")
    elif session.get(WasteCategory, form.category) is None:
        problems["category"] = Problem("category", "unknown_category", {"code": form.category})
    if not form.route:
        problems["route"] = Problem("route", "required")
    elif form.route not in {r.value for r in Route}:
        problems["route"] = Problem("route", "unknown_route", {"route": form.route})
    weight, p = parse_weight(form.weight, form.unit, "weight")
    if p:
        problems["weight"] = p
    at: datetime | None = None
    if form.dispatch:
        at, p = parse_local_time(form.dispatched_at, "dispatched_at", now)
        if p:
            problems["dispatched_at"] = p
    if "dispatched_at" not in problems and "receiver" not in problems:
        year = manifests.reporting_year(at or now)
        for enterprise_id in (shipper_id, receiver.id if receiver else None):
            lock = lock_for(session=session, enterprise_id=enterprise_id, year=year) if enterprise_id else None
            if lock is not None:
                zh, en = lock_region_name(session=session, adcode=lock.region_adcode)
                problems["dispatched_at"] = Problem(
                    "dispatched_at", "locked_new", {"year": year, "region_zh": zh, "region_en": en}
                )
                break
    handover, handover_problems = check_handover(form)
    problems.update(handover_problems)
    sources, p = check_sources(form.sources)
    if p:
        problems["sources"] = p
    return CheckedForm(
        problems,
        receiver=receiver,
        carrier=carrier,
        weight_t=weight,
        dispatched_at=at,
        handover=handover,
        sources=sources,
    )


def check_handover(form: BatchForm) -> tuple[dict[str, str | None], dict[str, Problem]]:
    """The handover fields: plate and packaging as free text within their columns, mode and weighing from a list."""
    problems: dict[str, Problem] = {}
    values: dict[str, str | None] = {}
    for name, limit in HANDOVER_LIMITS.items():
        text = getattr(form, name).strip()
        if len(text) > limit:
            problems[name] = Problem(name, "too_long", {"max": limit, "length": len(text)})
        values[name] = text or None
    for name, choices in (("transport_mode", TransportMode), ("weighing", Weighing)):
        value = getattr(form, name).strip()
        if value and value not in {c.value for c in choices}:
            problems[name] = Problem(name, "bad_choice", {"value": value})
        values[name] = value or None
    return values, problems


def check_sources(rows: tuple[tuple[str, str], ...]) -> tuple[list[dict[str, Any]], Problem | None]:
    """The source rows as the writer takes them (number, tonnes or pro rata); the first wrong row, named.

    Whether each lot was received by the shipper and still holds the tonnes is the writer's to say.
    """
    given: list[dict[str, Any]] = []
    seen: set[str] = set()
    for position, (number, weight) in enumerate(rows, start=1):
        number, weight = number.strip().upper(), weight.strip()
        if not number and not weight:
            continue  # an empty row of the form
        if not number:
            return [], Problem("sources", "source_number", {"row": position})
        if number in seen:
            return [], Problem("sources", "source_twice", {"row": position, "number": number})
        seen.add(number)
        tonnes_drawn = None
        if weight:
            tonnes_drawn, p = parse_weight(weight, "t", "sources")
            if p is not None:
                return [], Problem("sources", "source_weight", {"row": position, "number": number, "value": weight})
            if not tonnes_drawn:
                return [], Problem("sources", "source_zero", {"row": position, "number": number})
        given.append({"number": number, "weight_t": tonnes_drawn})
    if len(given) > manifests.MAX_SOURCES:
        return [], Problem("sources", "source_many", {"max": manifests.MAX_SOURCES})
    return given, None


def check_receipt(
    *,
    batch: Manifest,
    weight: str,
    unit: str,
    rejected: str,
    rejected_unit: str,
    reason: str,
    received_at: str,
    now: datetime,
) -> tuple[dict[str, Problem], dict[str, Any]]:
    """Check a receipt (weight received, a refused part with its reason, when); the weights in t when all is well."""
    problems: dict[str, Problem] = {}
    received_t, p = parse_weight(weight, unit, "weight_received")
    if p:
        problems[p.field] = p
    rejected_t, p = parse_weight(rejected, rejected_unit, "rejected", required=False)
    if p:
        problems[p.field] = p
    if rejected_t and not reason.strip():
        problems["rejection_reason"] = Problem("rejection_reason", "reason_for_part")
    at, p = parse_local_time(received_at, "received_at", now)
    if p:
        problems[p.field] = p
    dispatched = stored_utc(batch.dispatched_at) if batch.dispatched_at else None
    if at is not None and dispatched is not None:
        aware = at if at.tzinfo else at.replace(tzinfo=CST)
        if aware < dispatched:
            problems["received_at"] = Problem("received_at", "before_dispatch")
    values = {"weight_received_t": received_t, "rejected_t": rejected_t, "received_at": at}
    return problems, values


def lock_region_name(*, session: Session, adcode: str) -> tuple[str, str | None]:
    """The names of a locked region, for the message that says why a write was refused."""
    region = session.get(Region, adcode)
    return (region.name_zh, region.name_en) if region else (adcode, adcode)


@dataclass(frozen=True)
class Narrowing:
    """A party or place the list is narrowed to, named for the page."""

    param: str
    value: str
    name_zh: str
    name_en: str | None


def narrowing(*, session: Session, query: BatchQuery) -> list[Narrowing]:
    """The parties and places the query is narrowed to, with their names (ids the viewer gave, in any scope)."""
    found: list[Narrowing] = []
    for param in ("shipper", "receiver", "party"):
        ident = getattr(query, param)
        if ident is not None:
            ent = session.get(Enterprise, ident)
            found.append(Narrowing(param, str(ident), ent.name_zh if ent else str(ident), ent.name_en if ent else None))
    for param in ("shipper_region", "receiver_region", "region"):
        code = getattr(query, param)
        if code:
            region = session.get(Region, code)
            found.append(Narrowing(param, code, region.name_zh if region else code, region.name_en if region else None))
    if query.park is not None:
        park = session.get(Park, query.park)
        name_zh = park.name_zh if park else str(query.park)
        found.append(Narrowing("park", str(query.park), name_zh, park.name_en if park else None))
    return found


# ---- The chain ------------------------------------------------------------------------------------------------

HowDrawn = Literal["named", "pro_rata", "held"]
CHAIN_NODES = 200  # hops shown forward of one batch; a chain longer than this is cut, and the page says so
CHAIN_PATHS = 4  # paths shown to one end (a diamond has two)


@dataclass(frozen=True)
class ChainHop:
    """A manifest of a batch's chain as the page shows it, with the tonnes that link carries.

    `shipper` and `receiver` are None where the viewer may not see that enterprise: its name stays hidden.
    """

    id: int
    number: str
    readable: bool  # the viewer may open its batch page
    shipper: Party | None
    receiver: Party | None
    route: Route
    status: ManifestStatus
    tonnes: Decimal
    placement: str | None = None  # final, held or transit: where those tonnes are now
    how: HowDrawn | None = None  # for a lot drawn from: named with tonnes, pro rata, or from what was held
    depth: int = 0  # for a hop forward: how many hops on from the batch
    via: tuple[tuple[str, ...], ...] = ()  # for an end: the numbers of the hops from the batch to it, each path


@dataclass(frozen=True)
class BatchChain:
    """A batch's chain: what went into it (backward) and where its tonnes went (forward), in the viewer's rights."""

    drew_from: list[ChainHop]  # the lots it drew from, one hop back
    made_of: list[ChainHop]  # the first manifests its tonnes came from, at the end of every path back
    onward: list[ChainHop]  # the forwardings that drew from it, hop by hop (depth first)
    ended_in: list[ChainHop]  # where its tonnes are now, if it is a first manifest
    final_t: Decimal
    held_t: Decimal
    transit_t: Decimal
    origin: bool  # a first manifest: its tonnes are allocated to its shipper
    unlinked: bool  # a forwarding that named no source and was drawn from what its shipper held
    cut: bool = False  # more hops forward than the page shows

    @property
    def direct(self) -> bool:
        """A first manifest drawn on by nothing: all its tonnes are where it went, with no hop between."""
        return not self.drew_from and not self.onward and all(e.via == ((),) for e in self.ended_in)


def _forward_edges(session: Session, start: int) -> tuple[dict[int, list[tuple[int, int]]], bool]:
    """The draws forward of a manifest: lot -> [(forwarding, kg drawn)], up to CHAIN_NODES manifests."""
    d = ManifestDraw.__table__.c  # type: ignore[attr-defined]
    edges: dict[int, list[tuple[int, int]]] = {}
    seen = {start}
    frontier = [start]
    cut = False
    while frontier and not cut:
        rows = session.execute(
            sa_select(d.source_id, d.manifest_id, d.kg).where(d.source_id.in_(frontier)).order_by(d.manifest_id)
        ).all()
        frontier = []
        for source, forwarding, kg in rows:
            edges.setdefault(int(source), []).append((int(forwarding), int(kg)))
            if forwarding not in seen:
                if len(seen) >= CHAIN_NODES:
                    cut = True
                    break
                seen.add(int(forwarding))
                frontier.append(int(forwarding))
    return edges, cut


def _paths(edges: dict[int, list[tuple[int, int]]], start: int, end: int) -> list[list[int]]:
    """Up to CHAIN_PATHS paths from one manifest to another along the draws (the chain has no cycles)."""
    found: list[list[int]] = []

    def walk(node: int, path: list[int]) -> None:
        if len(found) >= CHAIN_PATHS:
            return
        if node == end:
            found.append(path)
            return
        for nxt, _ in edges.get(node, ()):
            walk(nxt, [*path, nxt])

    walk(start, [start])
    return found


def batch_chain(*, session: Session, principal: Principal, batch: Manifest) -> BatchChain:
    """The chain of a batch the viewer may read (chains.chain_of), each hop named only as far as the viewer may see.

    As the API's chain does, every hop is given by its number and tonnes; an enterprise is named where the viewer
    may read it, or where it is a party of a batch the viewer may open (whose page names it anyway).
    """
    ident = batch.id or 0
    chain = chains.chain_of(session, batch)
    edges, cut = _forward_edges(session, ident)
    onward_order: list[tuple[int, int, int]] = []  # (forwarding, kg drawn from its lot, depth)
    placed: set[int] = set()

    def descend(node: int, depth: int) -> None:
        for forwarding, kg in edges.get(node, ()):
            onward_order.append((forwarding, kg, depth))
            if forwarding not in placed:  # a diamond: each hop's own onward draws shown once
                placed.add(forwarding)
                descend(forwarding, depth + 1)

    descend(ident, 1)
    ids = (
        {ident}
        | {x.id for x in (*chain.drew_from, *chain.made_of, *chain.drawn_by, *chain.ended_in)}
        | {f for f, _, _ in onward_order}
    )
    m = Manifest
    rows = {
        r.id: r
        for r in session.execute(
            sa_select(
                col(m.id), col(m.number), col(m.shipper_id), col(m.receiver_id), col(m.route), col(m.status)
            ).where(col(m.id).in_(sorted(ids)))
        )
    }
    readable = set(
        session.execute(sa_select(col(m.id)).where(col(m.id).in_(sorted(ids)), readable_batches(principal))).scalars()
    )
    parties = {r.shipper_id for r in rows.values()} | {r.receiver_id for r in rows.values()}
    open_ids = (
        set(parties)
        if principal.is_admin
        else set(
            session.execute(
                sa_select(col(Enterprise.id)).where(
                    col(Enterprise.id).in_(sorted(parties)), col(Enterprise.id).in_(readable_enterprise_ids(principal))
                )
            ).scalars()
        )
    )
    # A party of a batch the viewer may open is named on that batch's page: naming it here tells nothing new.
    named = open_ids | {e for r in rows.values() if r.id in readable for e in (r.shipper_id, r.receiver_id)}
    enterprises = {e.id: e for e in session.exec(select(Enterprise).where(col(Enterprise.id).in_(sorted(named)))).all()}

    def party(enterprise_id: int) -> Party | None:
        e = enterprises.get(enterprise_id)
        if e is None or e.id is None:
            return None
        return Party(e.id, e.name_zh, e.name_en, e.uscc, e.id in open_ids)

    def hop(manifest_id: int, kg_or_t: Decimal | int, **extra: Any) -> ChainHop:
        r = rows[manifest_id]
        value = kg_or_t if isinstance(kg_or_t, Decimal) else kg_as_tonnes(kg_or_t)
        return ChainHop(
            id=r.id,
            number=r.number,
            readable=r.id in readable,
            shipper=party(r.shipper_id),
            receiver=party(r.receiver_id),
            route=Route(r.route),
            status=ManifestStatus(r.status),
            tonnes=value,
            **extra,
        )

    s = ManifestSource.__table__.c  # type: ignore[attr-defined]
    declared = {
        int(source): weight
        for source, weight in session.execute(sa_select(s.source_id, s.weight_t).where(s.manifest_id == ident))
    }

    def how(link: chains.ChainLink) -> HowDrawn:
        if not link.named:
            return "held"
        return "pro_rata" if declared.get(link.id) is None else "named"

    drew_from = [hop(x.id, x.tonnes, how=how(x)) for x in chain.drew_from if x.id in rows]
    made_of = [hop(x.id, x.tonnes, placement=str(x.placement)) for x in chain.made_of if x.id in rows]
    onward = [hop(f, kg, depth=depth) for f, kg, depth in onward_order if f in rows]
    ended_in = []
    for x in chain.ended_in:
        if x.id not in rows:
            continue
        via = tuple(tuple(rows[i].number for i in path[1:]) for path in _paths(edges, ident, x.id))
        ended_in.append(hop(x.id, x.tonnes, placement=str(x.placement), via=via))
    order = {"final": 0, "held": 1, "transit": 2}
    ended_in.sort(key=lambda e: (order.get(e.placement or "", 3), e.number))
    return BatchChain(
        drew_from=drew_from,
        made_of=made_of,
        onward=onward,
        ended_in=ended_in,
        final_t=chain.final_t,
        held_t=chain.held_t,
        transit_t=chain.transit_t,
        origin=any(x.id == ident for x in chain.made_of),
        unlinked=any(not x.named for x in chain.drew_from),
        cut=cut,
    )


@dataclass(frozen=True)
class HeldLot:
    """A lot the shipper received at an intermediate step and still holds tonnes of: a source it may name."""

    id: int
    number: str
    category_code: str
    received_t: Decimal
    left_t: Decimal


HELD_LOTS = 50  # lots offered under the sources of the form, newest first


def held_lots(*, session: Session, shipper_id: int) -> list[HeldLot]:
    """The lots received by this enterprise (storage or transfer) with tonnes not yet drawn, newest first."""
    m = Manifest
    d = ManifestDraw.__table__.c  # type: ignore[attr-defined]
    drawn = sa_select(d.source_id, func.sum(d.kg).label("kg")).group_by(d.source_id).subquery()
    query = (
        sa_select(col(m.id), col(m.number), col(m.category_code), col(m.weight_received_t), drawn.c.kg)
        .outerjoin(drawn, drawn.c.source_id == col(m.id))
        .where(
            col(m.receiver_id) == shipper_id,
            col(m.route).in_(chains.LOT_ROUTES),
            col(m.status).in_(chains.ARRIVED),
            col(m.weight_received_t).is_not(None),
        )
        .order_by(col(m.received_at).desc(), col(m.id).desc())
        .limit(HELD_LOTS * 20)  # most of a busy store's recent lots are drawn empty: look a little further back
    )
    found: list[HeldLot] = []
    for ident, number, category, received, kg in session.execute(query):
        left = int(received * 1000) - int(kg or 0)
        if left > 0:
            found.append(HeldLot(ident, number, category, received, kg_as_tonnes(left)))
            if len(found) >= HELD_LOTS:
                break
    return found
