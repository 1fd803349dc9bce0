"""What the battery trace pages read beyond trace() and chain_flags(): a code read field by field as it is typed,
batteries whose code starts with what was typed, the custodians' locations in order, the flags of a battery and of
the batteries it sits in, a battery's recovery reports against their edition, and the batteries reported lately.

The code is read with the layout and tables of flows.battery.code (one source of truth); a complete code is then
handed to parse_battery_code, whose verdict wins. Nothing here writes.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, or_, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.scope import readable_enterprise_ids, readable_enterprises
from flows.battery import audit as battery_audit
from flows.battery import chain as battery_chain
from flows.battery.audit import BatteryFlag
from flows.battery.chain import BatteryTrace, Party, readable_batteries
from flows.battery.code import (
    BATTERY_TYPES,
    BATTERY_TYPES_CERTAIN,
    CODE_CHARSET,
    CODE_LENGTH,
    DAYS,
    LAYOUT,
    MONTHS,
    PRODUCT_TYPES,
    SERIAL_CHARSET,
    YEARS,
    DecodedCode,
    normalise_battery_code,
    parse_battery_code,
)
from flows.battery.rules import METALS, edition_in_force, local_day, metal_thresholds
from flows.kernel.clock import stored_utc
from flows.kernel.errors import InvalidInput, NotFound
from flows.kernel.messages import Message
from flows.kernel.principal import Principal
from models import Battery, BatteryEvent, Enterprise, EnterpriseRoleLink, RecoveryReport, Region
from models.enums import BatteryEventType, UserRole

# ---------------------------------------------------------------------------------------------------------------
# A code, read as it is typed


@dataclass(frozen=True)
class CodeError:
    """What is wrong with a code: the field, a kind (a message key), the 1-based position and character, numbers."""

    field: str
    kind: str
    position: int | None = None
    char: str | None = None
    params: dict[str, Any] = dataclass_field(default_factory=dict)  # a Message: read in the reader's language


@dataclass(frozen=True)
class CodeField:
    """One field of the GB/T 34014 layout, with the characters typed for it so far and what they mean."""

    name: str
    start: int  # first position, 1-based
    length: int
    value: str  # the characters typed so far (may be fewer than length)
    meaning: Any = None  # a level, a chemistry letter, a year, month or day number; None until complete and valid
    certain: bool = True  # False for a battery type whose meaning is taken from practice
    error: CodeError | None = None

    @property
    def end(self) -> int:
        return self.start + self.length - 1

    @property
    def complete(self) -> bool:
        return len(self.value) == self.length

    @property
    def cells(self) -> list[str]:
        """The field's characters, padded with empty strings for those still to type."""
        return list(self.value) + [""] * (self.length - len(self.value))


@dataclass(frozen=True)
class CodeAnalysis:
    """A code as typed: normalised, split into its fields, every error found, and the decoding when it is valid."""

    raw: str
    code: str
    fields: list[CodeField]
    errors: list[CodeError]
    decoded: DecodedCode | None

    @property
    def length(self) -> int:
        return len(self.code)

    @property
    def missing(self) -> int:
        return max(0, CODE_LENGTH - len(self.code))

    @property
    def empty(self) -> bool:
        return not self.code

    @property
    def valid(self) -> bool:
        return self.decoded is not None


def _read_field(name: str, value: str) -> tuple[Any, CodeError | None]:
    """The meaning of one complete field, or the error naming it."""
    position = {n: s for n, s, _l in LAYOUT}[name]
    tables: dict[str, dict[str, Any]] = {
        "product_type": {k: v.value for k, v in PRODUCT_TYPES.items()},
        "battery_type": {k: k for k in BATTERY_TYPES},
        "production_year": YEARS,
        "production_month": MONTHS,
        "production_day": DAYS,
    }
    if name not in tables:
        return value, None
    meaning = tables[name].get(value)
    if meaning is None:
        return None, CodeError(name, name, position, value)
    return meaning, None


def analyse_code(raw: str, *, final: bool = False) -> CodeAnalysis:
    """Read a code (complete or being typed) field by field; `final` treats a short code as an error, not as typing.

    Every field typed so far is checked on its own (characters, product type, battery type, year, month, day, a date
    that does not exist), so the reader sees each wrong field at once, with its position. A complete code with no
    error is then decoded by parse_battery_code, whose refusal, if any, is reported as it stands.
    """
    code = normalise_battery_code(raw or "")
    errors: list[CodeError] = []
    if len(code) > CODE_LENGTH:
        errors.append(CodeError("code", "too_long", params={"length": len(code), "extra": len(code) - CODE_LENGTH}))
    elif final and len(code) < CODE_LENGTH:
        errors.append(CodeError("code", "too_short", params={"length": len(code), "missing": CODE_LENGTH - len(code)}))
    fields: list[CodeField] = []
    for name, start, length in LAYOUT:
        value = code[start - 1 : start - 1 + length]
        allowed = SERIAL_CHARSET if name == "serial" else CODE_CHARSET
        bad = next(((p, ch) for p, ch in enumerate(value, start=start) if ch not in allowed), None)
        meaning: Any = None
        error: CodeError | None = None
        if bad is not None:
            error = CodeError(name, "char", bad[0], bad[1])
        elif len(value) == length:
            meaning, error = _read_field(name, value)
        certain = name != "battery_type" or meaning is None or meaning in BATTERY_TYPES_CERTAIN
        fields.append(CodeField(name, start, length, value, meaning, certain, error))
    by_name = {f.name: f for f in fields}
    year, month, day = (by_name[n].meaning for n in ("production_year", "production_month", "production_day"))
    if year is not None and month is not None and day is not None:
        last = calendar.monthrange(year, month)[1]
        if day > last:
            f = by_name["production_day"]
            impossible = CodeError(
                f.name,
                "impossible_date",
                f.start,
                f.value,
                {"day": day, "year": year, "month": f"{month:02d}", "last": last},
            )
            by_name[f.name] = CodeField(f.name, f.start, f.length, f.value, None, True, impossible)
            fields = [by_name[n] for n, _s, _l in LAYOUT]
    errors.extend(f.error for f in fields if f.error is not None)
    decoded = None
    if len(code) == CODE_LENGTH and not errors:
        try:
            decoded = parse_battery_code(code)
        except InvalidInput as exc:  # the parser knows a rule the reading above does not: its word wins
            problem = Message(exc.code, exc.params)
            errors.append(CodeError(exc.field or "code", "other", params={"message": problem}))
    return CodeAnalysis(raw=raw or "", code=code, fields=fields, errors=errors, decoded=decoded)


# ---------------------------------------------------------------------------------------------------------------
# Finding batteries


@dataclass(frozen=True)
class CodeMatch:
    code: str
    level: str
    state: str


PREFIX_MIN = 3  # the manufacturer code: fewer characters match too much to be useful
PREFIX_WINDOW = 200  # codes looked at per keystroke, whatever the scope: a bounded index range


def codes_starting(*, session: Session, principal: Principal, prefix: str, limit: int = 5) -> list[CodeMatch]:
    """Batteries the principal may read whose code starts with `prefix` (normalised), first by code.

    The codes are taken from an index range of at most PREFIX_WINDOW codes, then narrowed to the principal's scope,
    so a keystroke costs the same for everyone; a reader with few batteries among many may see fewer matches.
    """
    wanted = normalise_battery_code(prefix)
    if len(wanted) < PREFIX_MIN or len(wanted) > CODE_LENGTH or any(ch not in CODE_CHARSET for ch in wanted):
        return []
    # Codes hold digits and capital letters only, which sort the same under any collation: a range finds them.
    upper = wanted + "Z" * (CODE_LENGTH - len(wanted))
    window = (
        sa_select(col(Battery.id))
        .where(col(Battery.code) >= wanted, col(Battery.code) <= upper)
        .order_by(col(Battery.code))
        .limit(PREFIX_WINDOW)
    )
    rows = session.execute(
        sa_select(col(Battery.code), col(Battery.level), col(Battery.state))
        .where(col(Battery.id).in_(window), readable_batteries(principal))
        .order_by(col(Battery.code))
        .limit(limit)
    ).all()
    return [CodeMatch(r.code, str(r.level), str(r.state)) for r in rows]


def lineage(*, session: Session, code: str) -> list[Battery]:
    """A battery (by its current code) and the batteries it sits in, nearest first: itself, its module, its pack."""
    current = session.execute(sa_select(Battery).where(col(Battery.code) == code)).scalars().first()
    found: list[Battery] = []
    for _ in range(3):  # cell < module < pack: at most two steps up
        if current is None:
            break
        found.append(current)
        current = session.get(Battery, current.parent_id) if current.parent_id is not None else None
    return found


# ---------------------------------------------------------------------------------------------------------------
# Places of the enterprises a trace names


@dataclass(frozen=True)
class EnterprisePlace:
    """Where an enterprise is, and whether the reader may open its own page."""

    lon: float
    lat: float
    readable: bool


def enterprise_places(
    *, session: Session, principal: Principal, ids: Sequence[int | None]
) -> dict[int, EnterprisePlace]:
    """Location and readability of each enterprise, in one query."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    readable = true() if principal.is_admin else readable_enterprises(principal)
    rows = session.execute(
        sa_select(
            col(Enterprise.id), col(Enterprise.lon), col(Enterprise.lat), case((readable, 1), else_=0).label("r")
        ).where(col(Enterprise.id).in_(wanted))
    ).all()
    return {r.id: EnterprisePlace(float(r.lon), float(r.lat), bool(r.r)) for r in rows}


def region_names(*, session: Session, adcodes: Sequence[str | None]) -> dict[str, tuple[str, str | None]]:
    """Chinese and English names of regions by adcode."""
    wanted = sorted({a for a in adcodes if a})
    if not wanted:
        return {}
    rows = session.execute(
        sa_select(col(Region.adcode), col(Region.name_zh), col(Region.name_en)).where(col(Region.adcode).in_(wanted))
    ).all()
    return {r.adcode: (r.name_zh, r.name_en) for r in rows}


@dataclass(frozen=True)
class Stop:
    """One custodian of the custody path, numbered in order, with where it is (None when not known)."""

    number: int
    enterprise: Party | None
    since: datetime
    until: datetime | None
    lon: float | None
    lat: float | None


def custody_path(trace: BatteryTrace, places: dict[int, EnterprisePlace]) -> list[Stop]:
    """The custody stints of a trace as numbered stops, each at its custodian's location."""
    stops = []
    for number, stint in enumerate(trace.custody, start=1):
        place = places.get(stint.enterprise.id) if stint.enterprise else None
        stops.append(
            Stop(
                number=number,
                enterprise=stint.enterprise,
                since=stint.since,
                until=stint.until,
                lon=place.lon if place else None,
                lat=place.lat if place else None,
            )
        )
    return stops


# ---------------------------------------------------------------------------------------------------------------
# Flags of a battery and of the batteries it sits in


def flags_of(*, session: Session, principal: Principal, now: datetime, codes: Sequence[str]) -> list[BatteryFlag]:
    """The chain flags of a battery and of the module and pack it sits in, in one pass of the audit, oldest first.

    The audit counts an event once, on the outermost battery that carried it, so a cell inside an intact pack has
    its flags on the pack: a battery's chain is itself and what holds it.
    """
    report = battery_audit.chain_flags(session=session, principal=principal, now=now, codes=codes, limit=None)
    if not report.data:
        return []
    return sorted(report.data, key=lambda f: (f.on, f.kind.value, f.code or ""))


# ---------------------------------------------------------------------------------------------------------------
# Recovery reports of one battery


@dataclass(frozen=True)
class MetalRecovery:
    metal: str
    in_kg: float
    out_kg: float
    rate: float | None  # out / in; None when none went in
    minimum: float | None  # the edition's threshold; None when it sets none (or is not known)

    @property
    def below(self) -> bool:
        return self.rate is not None and self.minimum is not None and self.rate < self.minimum

    @property
    def above_input(self) -> bool:
        return self.out_kg > self.in_kg


@dataclass(frozen=True)
class RecoveryView:
    """One recovery report on a battery, held against the edition of the standard conditions in force that day."""

    id: int
    recycler_id: int
    reported_on: date
    edition: str
    edition_known: bool
    input_mass_kg: float
    electrode_powder_kg: float
    metals: list[MetalRecovery]

    @property
    def compliant(self) -> bool | None:
        """Whether every metal meets its threshold and nothing exceeds its input (None: thresholds unknown)."""
        if any(m.above_input for m in self.metals) or self.electrode_powder_kg > self.input_mass_kg:
            return False
        if not self.edition_known:
            return None
        return not any(m.below for m in self.metals)


def recovery_reports(*, session: Session, battery_id: int) -> list[RecoveryView]:
    """A battery's recovery reports with each metal's recovery rate beside its edition's threshold."""
    rows = session.execute(
        sa_select(RecoveryReport)
        .where(col(RecoveryReport.battery_id) == battery_id)
        .order_by(col(RecoveryReport.reported_on), col(RecoveryReport.id))
    ).scalars()
    out = []
    for r in rows:
        edition = edition_in_force(r.reported_on)
        mins = metal_thresholds(edition)
        metals = []
        for m in METALS:
            got_in, got_out = float(getattr(r, f"{m}_in_kg")), float(getattr(r, f"{m}_out_kg"))
            metals.append(MetalRecovery(m, got_in, got_out, got_out / got_in if got_in else None, mins.get(m)))
        assert r.id is not None
        out.append(
            RecoveryView(
                id=r.id,
                recycler_id=r.recycler_id,
                reported_on=r.reported_on,
                edition=edition.name,
                edition_known=edition.known,
                input_mass_kg=r.input_mass_kg,
                electrode_powder_kg=r.electrode_powder_kg,
                metals=metals,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Batteries reported lately, in the reader's scope


@dataclass(frozen=True)
class RecentBattery:
    code: str
    level: str
    state: str
    event: str
    at: datetime
    reported_at: datetime
    holder_id: int | None


def recent_batteries(*, session: Session, principal: Principal, limit: int = 8) -> list[RecentBattery]:
    """The batteries of the latest uploads the principal may read, newest first, each once.

    Events copied from a pack onto the modules and cells inside it are left out: the pack stands for them.
    """
    ev = BatteryEvent
    attributes: Any = col(ev.attributes)
    own = attributes["via"].as_string().is_(None)
    query = (
        sa_select(col(ev.battery_id), col(ev.type), col(ev.occurred_at), col(ev.reported_at))
        .where(own)
        .order_by(col(ev.reported_at).desc(), col(ev.id).desc())
        .limit(limit * 4)
    )
    if not principal.is_admin:
        ids = readable_enterprise_ids(principal)
        query = query.where(or_(col(ev.reporter_id).in_(ids), col(ev.counterpart_id).in_(ids)))
    latest: dict[int, Any] = {}
    for r in session.execute(query).all():
        if r.battery_id not in latest:
            latest[r.battery_id] = r
        if len(latest) == limit:
            break
    if not latest:
        return []
    batteries = {
        b.id: b
        for b in session.execute(
            sa_select(
                col(Battery.id), col(Battery.code), col(Battery.level), col(Battery.state), col(Battery.holder_id)
            ).where(col(Battery.id).in_(list(latest)))
        ).all()
    }
    return [
        RecentBattery(
            code=batteries[i].code,
            level=str(batteries[i].level),
            state=str(batteries[i].state),
            event=BatteryEventType(r.type).value,
            at=stored_utc(r.occurred_at),
            reported_at=stored_utc(r.reported_at),
            holder_id=batteries[i].holder_id,
        )
        for i, r in latest.items()
        if i in batteries
    ]


def battery_years(*, session: Session, now: datetime) -> list[int]:
    """The years the battery data spans (first production to last upload), newest first."""
    first = session.execute(
        sa_select(func.min(col(BatteryEvent.occurred_at))).where(col(BatteryEvent.type) == BatteryEventType.produced)
    ).scalar()
    last = session.execute(sa_select(func.max(col(BatteryEvent.reported_at)))).scalar()
    if first is None or last is None:
        return []
    start = local_day(stored_utc(first)).year
    end = min(local_day(stored_utc(last)).year, local_day(now).year)
    return list(range(end, start - 1, -1))


# ---------------------------------------------------------------------------------------------------------------
# Battery work: what a user's enterprise may register and log (the writes go through flows.battery.chain)

# The fields of the event form, by event type, in the order shown (each is a key chain.parse_event reads).
METAL_FIELDS = tuple(f"{metal}_{end}_kg" for metal in METALS for end in ("in", "out"))
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "installed": ("vin", "vehicle_type"),
    "retired": ("vin", "reason", "soh"),
    "collected": ("counterpart", "vin", "mass_kg", "soh"),
    "tested": ("soh", "purpose"),
    "repurposed": ("new_code", "application"),
    "in_cascade_use": ("application",),
    "dismantled": ("vin", "mass_kg"),
    "recovered": ("input_mass_kg", "electrode_powder_kg", *METAL_FIELDS),
    "transferred": ("counterpart", "purpose", "mass_kg"),
}
REQUIRED_FIELDS: dict[str, frozenset[str]] = {e.value: frozenset(s.requires) for e, s in battery_chain.STEPS.items()}
REGISTER_FIELDS = ("code", "parent_code", "rated_kwh", "mass_kg", "produced_at")
COUNTERPART_SUGGESTIONS = 8


def may_log(principal: Principal) -> bool:
    """Whether the battery work pages are open to this account (an enterprise's own; others use the API)."""
    return principal.role is UserRole.enterprise and principal.enterprise_id is not None


def own_roles(*, session: Session, principal: Principal) -> set[str]:
    """The roles of the account's enterprise."""
    if principal.enterprise_id is None:
        return set()
    query = sa_select(col(EnterpriseRoleLink.role)).where(
        col(EnterpriseRoleLink.enterprise_id) == principal.enterprise_id
    )
    return {str(r) for r in session.execute(query).scalars().all()}


def may_register(*, session: Session, principal: Principal) -> bool:
    """Whether the account's enterprise makes (or re-codes) batteries and so registers them."""
    return may_log(principal) and bool(own_roles(session=session, principal=principal) & battery_chain.REGISTER_ROLES)


@dataclass(frozen=True)
class NextSteps:
    """The events the form offers for a battery: those its state allows that this enterprise may report."""

    code: str
    known: bool  # the reader may read the battery (else only a collection is offered, revealing nothing)
    state: str | None
    events: tuple[str, ...]


def next_steps(*, session: Session, principal: Principal, code: str) -> NextSteps:
    """The next steps of a battery for the account's enterprise, as the writer would allow them."""
    wanted = normalise_battery_code(code)
    roles = own_roles(session=session, principal=principal)
    if not may_log(principal) or not roles & battery_chain.BATTERY_ROLES:
        return NextSteps(wanted, False, None, ())
    try:
        found = battery_chain.find_battery(session=session, principal=principal, code=wanted)
    except NotFound:
        # A battery the enterprise never held: it may only take it in; whether the code exists is not said.
        offered = ("collected",) if roles & battery_chain.COLLECTING_ROLES else ()
        return NextSteps(wanted, False, None, offered)
    allowed = battery_chain.allowed_events(found.state)
    own = found.holder_id == principal.enterprise_id
    events = []
    for name in allowed:
        step = battery_chain.STEPS[BatteryEventType(name)]
        if own or (step.custody == "reporter" and roles & battery_chain.COLLECTING_ROLES):
            events.append(name)
    return NextSteps(found.code, True, str(found.state), tuple(events))


@dataclass(frozen=True)
class Counterpart:
    """An enterprise offered as the other party of a handover."""

    id: int
    uscc: str
    name_zh: str
    name_en: str | None


def counterpart_search(*, session: Session, principal: Principal, text: str) -> list[Counterpart]:
    """Enterprises that act on batteries whose name or credit code holds the text (the account's own left out)."""
    text = text.strip()
    if len(text) < 2:
        return []
    pattern = f"%{text.replace('%', '').replace('_', '')}%"
    acting = sa_select(col(EnterpriseRoleLink.enterprise_id)).where(
        col(EnterpriseRoleLink.role).in_(sorted(battery_chain.BATTERY_ROLES))
    )
    query = (
        sa_select(col(Enterprise.id), col(Enterprise.uscc), col(Enterprise.name_zh), col(Enterprise.name_en))
        .where(
            col(Enterprise.id).in_(acting),
            or_(
                col(Enterprise.name_zh).like(pattern),
                func.lower(col(Enterprise.name_en)).like(pattern.lower()),
                col(Enterprise.uscc).like(pattern.upper()),
            ),
        )
        .order_by(col(Enterprise.name_zh))
        .limit(COUNTERPART_SUGGESTIONS + 1)
    )
    rows = [Counterpart(*r) for r in session.execute(query).all() if r[0] != principal.enterprise_id]
    return rows[:COUNTERPART_SUGGESTIONS]


def counterpart_by_id(*, session: Session, ident: int) -> Counterpart | None:
    """One enterprise as the picker shows it."""
    e = session.get(Enterprise, ident)
    if e is None or e.id is None:
        return None
    return Counterpart(e.id, e.uscc, e.name_zh, e.name_en)
