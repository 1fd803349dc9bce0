"""Power-battery traceability: registration, events on the state machine, trace and reverse trace.

The state machine is one table of data (STEPS): for each event type, the states it may follow, the state it leads
to, who holds the battery afterwards and what the event must carry. It is enforced on every write; a refusal names
the state and the events it allows. An event on a battery is copied to the children inside it (modules of an
unopened pack, cells of an unopened module), as the demo's data has them, so that each battery's history is whole
on its own rows; the audits count such copies once, on the outermost battery (see battery_audit).
Cascade use re-codes a battery in place: its row takes the new code and keeps the code before it in original_code.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ColumnElement, exists, func, or_, true, union_all
from sqlalchemy import delete as sa_delete
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from flows.access.locks import lock_for
from flows.access.scope import ensure_read_enterprise, readable_enterprise_ids
from flows.access.trail import record, snapshot
from flows.battery.code import DecodedCode, normalise_battery_code, parse_battery_code
from flows.battery.columns import alias
from flows.battery.rules import deadline_for, due_date, edition_in_force, local_day, provisional
from flows.kernel.bounds import (
    DEFAULT_UPLOAD_LIMITS,
    MAX_BATTERY_KG,
    MAX_BATTERY_KWH,
    MAX_COLUMNS,
    MAX_SHEET_LINES,
    Code,
    Id,
    Moment,
    UploadLimits,
    check_quantity,
    check_size,
    check_text,
    check_workbook,
    overlong_field,
    printable,
)
from flows.kernel.clock import CST, stored_utc
from flows.kernel.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, PeriodLocked
from flows.kernel.messages import Message, Term, msg, plain
from flows.kernel.principal import Principal
from models import Battery, BatteryCode, BatteryEvent, Enterprise, EnterpriseRoleLink, RecoveryReport, Region
from models.enums import BatteryEventType, BatteryLevel, BatteryState, EnterpriseRole, UserRole

Progress = Callable[[int, int], None]
E = BatteryEventType
S = BatteryState

# ---------------------------------------------------------------------------------------------------------------
# The state machine, as data

CustodyRule = Literal["keep", "counterpart", "reporter"]


@dataclass(frozen=True)
class Step:
    """One event type: the states it may follow, the state it leads to, custody afterwards, what it requires."""

    event: BatteryEventType
    after: frozenset[BatteryState]
    to: BatteryState | None  # None: the state does not change (a custody event)
    custody: CustodyRule  # keep: the holder reports it; counterpart: handed to the counterpart; reporter: taken in
    requires: tuple[str, ...] = ()


_LIVE = frozenset(S) - {S.recovered}

STEPS: dict[BatteryEventType, Step] = {
    step.event: step
    for step in (
        # A battery is produced once, when its maker registers it; no state allows it afterwards.
        Step(E.produced, frozenset(), S.produced, "reporter"),
        Step(E.installed, frozenset({S.produced}), S.installed, "keep", ("vin",)),
        Step(E.retired, frozenset({S.installed, S.in_cascade_use}), S.retired, "keep"),
        Step(E.collected, frozenset({S.retired}), S.collected, "reporter"),
        Step(E.tested, frozenset({S.collected}), S.tested, "keep"),
        Step(E.repurposed, frozenset({S.tested}), S.repurposed, "keep", ("new_code",)),
        Step(E.in_cascade_use, frozenset({S.repurposed}), S.in_cascade_use, "keep", ("application",)),
        # A pack is opened after collection (by a recycler, or by a cascade user regrouping its modules), or after a
        # test found it unfit for cascade use.
        Step(E.dismantled, frozenset({S.collected, S.tested}), S.dismantled, "keep"),
        Step(E.recovered, frozenset({S.dismantled}), S.recovered, "keep", ("input_mass_kg",)),
        Step(E.transferred, _LIVE, None, "counterpart", ("counterpart",)),
    )
}
HANDOVERS = frozenset(e for e, s in STEPS.items() if s.custody != "keep")


def allowed_events(state: BatteryState | str) -> list[str]:
    """The events a state allows next, in the order of the state machine."""
    return [e.value for e, step in STEPS.items() if BatteryState(state) in step.after]


def state_machine_table() -> list[dict[str, Any]]:
    """The state machine as rows, for the API and the docs."""
    return [
        {
            "event": s.event.value,
            "after": sorted(x.value for x in s.after),
            "to": s.to.value if s.to else None,
            "custody": s.custody,
            "requires": list(s.requires),
        }
        for s in STEPS.values()
    ]


def ensure_allowed(code: str, state: BatteryState | str, event: BatteryEventType) -> None:
    """Refuse an event the battery's state does not allow, naming the state and the allowed next events."""
    current = BatteryState(state)
    if current in STEPS[event].after:
        return
    following = allowed_events(current)
    allowed: list[Term] | Message = [event_term(e) for e in following] if following else msg("battery.no_next_event")
    raise Conflict(
        "battery.produced_again" if event is E.produced else "battery.event_not_allowed",
        field="type",
        battery=code,
        state=state_term(current),
        event=event_term(event),
        allowed=allowed,
    )


def event_term(event: BatteryEventType | str) -> Term:
    """An event type as the reader names it."""
    return Term(f"battery.event.{BatteryEventType(event).value}")


def state_term(state: BatteryState | str) -> Term:
    """A battery state as the reader names it."""
    return Term(f"battery.state.{BatteryState(state).value}")


def level_term(level: BatteryLevel | str) -> Term:
    """A battery level (pack, module, cell) as the reader names it."""
    return Term(f"battery.level.{BatteryLevel(level).value}")


_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def column_term(name: str) -> Term | str:
    """A column as the reader knows it: a field's label, or the name as given when it is no field's name."""
    return Term(f"field.{name}") if _IDENTIFIER.match(name) else name


# ---------------------------------------------------------------------------------------------------------------
# Errors of bulk writes


@dataclass(frozen=True)
class RowError:
    """One refused row: its line (file line, or 1-based position in a list), the column, and why."""

    row: int
    column: str
    problem: Message
    error: DomainError | None = field(default=None, compare=False)

    @property
    def reason(self) -> str:
        """Why, in English (the command line, logs)."""
        return self.problem.render("en")

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "reason": self.problem.render(lang),
            "code": self.problem.code,
            "params": plain(self.problem.params),
        }


SHOWN_ROW_ERRORS = 5  # bad rows named in a refusal's summary; as_dict lists them all


class RowsRefused(InvalidInput):
    """A bulk write refused whole: nothing was saved, and every bad row is listed."""

    def __init__(self, errors: Sequence[RowError], total: int) -> None:
        self.errors = list(errors)
        self.total = total
        shown = [
            msg("battery.row_problem", line=e.row, column=column_term(e.column), problem=e.problem)
            for e in self.errors[:SHOWN_ROW_ERRORS]
        ]
        more = len(self.errors) - len(shown)
        super().__init__(
            "battery.rows_refused_more" if more else "battery.rows_refused",
            row=self.errors[0].row,
            rows=len({e.row for e in self.errors}),
            total=total,
            problems=_one_after_another(shown),
            more=more,
        )

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        """The refusal as JSON: a summary and every bad row, in `lang`."""
        return {
            "detail": self.render(lang),
            "code": self.code,
            "params": plain(self.params),
            "total": self.total,
            "errors": [e.as_dict(lang) for e in self.errors],
        }


def _one_after_another(messages: Sequence[Message]) -> Message:
    """Messages read in turn, separated as a list of sentences is in each language (a semicolon)."""
    *head, last = messages
    joined = last
    for message in reversed(head):
        joined = msg("battery.then", first=message, rest=joined)
    return joined


def _refuse(errors: Sequence[RowError], total: int) -> None:
    """Refuse a bulk write: as Forbidden when every row was someone else's to write, else listing every bad row."""
    if not errors:
        return
    ordered = sorted(errors, key=lambda e: e.row)
    if all(isinstance(e.error, Forbidden) for e in ordered):
        first = ordered[0]
        if total == 1 and first.error is not None:
            raise first.error
        raise Forbidden("battery.row_refused", field=first.column, row=first.row, line=first.row, problem=first.problem)
    raise RowsRefused(ordered, total)


def _row_error(row: int, exc: DomainError, default_column: str) -> RowError:
    return RowError(row, exc.field or default_column, Message(exc.code, exc.params), exc)


# ---------------------------------------------------------------------------------------------------------------
# Small readers and checks shared by registration and events

_VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_VIN_VALUES = dict(
    zip("ABCDEFGHJKLMNPRSTUVWXYZ", (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9), strict=True)
)
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def validate_vin(raw: str) -> str:
    """Check a 17-character VIN (GB 16735: no I, O, Q; check character at position 9)."""
    vin = raw.strip().upper()
    if len(vin) != 17:
        raise InvalidInput("battery.vin_length", field="vin", column=Term("field.vin"), length=len(vin))
    bad = [ch for ch in vin if ch not in _VIN_CHARS]
    if bad:
        raise InvalidInput("battery.vin_char", field="vin", column=Term("field.vin"), char=bad[0])
    total = sum((int(ch) if ch.isdigit() else _VIN_VALUES[ch]) * w for ch, w in zip(vin, _VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    if vin[8] != check:
        raise InvalidInput("battery.vin_check", field="vin", column=Term("field.vin"), found=vin[8], expected=check)
    return vin


def as_utc(moment: datetime) -> datetime:
    """A moment in UTC; a naive one is read as China Standard Time, the clock of every ledger we import."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=CST)).astimezone(UTC)


_MASS_KEYS = ("mass", "input_mass", "electrode_powder") + tuple(
    f"{metal}_{end}" for metal in ("lithium", "nickel", "cobalt", "manganese") for end in ("in", "out")
)
# Attributes an event may carry as columns of their own (CSV) or inside `attributes` (API); others are kept as given.
TEXT_ATTRIBUTES = ("application", "new_code", "purpose", "reason", "vehicle_type", "note", "place")
MAX_ATTRIBUTES = 32  # an event names a handful; more is a dump of something else
NUMBER_ATTRIBUTES = ("soh",) + tuple(f"{k}_kg" for k in _MASS_KEYS) + tuple(f"{k}_t" for k in _MASS_KEYS)
PURPOSES = ("cascade_use", "recycling")
REPORT_MASSES = ("input_mass_kg", "electrode_powder_kg") + tuple(
    f"{metal}_{end}_kg" for metal in ("lithium", "nickel", "cobalt", "manganese") for end in ("in", "out")
)


def _number(name: str, value: Any, ceiling: float = MAX_BATTERY_KG, unit: str = "kg") -> float:
    if isinstance(value, bool):
        raise InvalidInput("battery.not_a_number", field=name, column=column_term(name), value=repr(value))
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(
            "battery.not_a_number", field=name, column=column_term(name), value=printable(repr(value), 64)
        ) from None
    return check_quantity(number, field=name, ceiling=ceiling, unit=unit)


def clean_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """Check the known attributes (numbers, shares, purposes) and convert tonnes to kilograms, once, here."""
    if len(raw) > MAX_ATTRIBUTES:
        raise InvalidInput(
            "battery.too_many_attributes",
            field="attributes",
            column=Term("field.attributes"),
            limit=MAX_ATTRIBUTES,
            count=len(raw),
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        check_text(str(key), field="attributes", max_length=64)
        if value is None or value == "":
            continue
        if key == "soh":
            share = _number(key, value, math.inf)
            if share > 1:
                raise InvalidInput("battery.share_above_one", field=key, column=Term("field.soh"), value=share)
            out[key] = share
        elif key.endswith("_t") and key[:-2] in _MASS_KEYS:
            kg_key = key[:-2] + "_kg"
            if raw.get(kg_key) not in (None, ""):
                raise InvalidInput(
                    "battery.mass_twice", field=key, column=column_term(key), mass=Term(f"battery.mass.{key[:-2]}")
                )
            out[kg_key] = round(_number(key, value, MAX_BATTERY_KG / 1000, "t") * 1000, 6)
        elif key.endswith("_kg") and key[:-3] in _MASS_KEYS:
            out[key] = _number(key, value)
        elif key == "rated_kwh":
            out[key] = _number(key, value, MAX_BATTERY_KWH, "kWh")
        elif key == "purpose":
            if str(value) not in PURPOSES:
                raise InvalidInput(
                    "battery.purpose_unknown",
                    field="purpose",
                    column=Term("field.purpose"),
                    value=printable(repr(value), 64),
                    allowed=", ".join(PURPOSES),
                )
            out[key] = str(value)
        elif key in TEXT_ATTRIBUTES:
            out[key] = check_text(str(value).strip(), field=key)
        elif isinstance(value, str):
            # Kept as given, like every attribute the service does not read: as text no longer than a note.
            out[key] = check_text(value, field=key)
        elif isinstance(value, bool | int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidInput("battery.not_finite", field=key, column=column_term(key))
            out[key] = value
        else:
            raise InvalidInput("battery.attribute_shape", field=key, column=column_term(key))
    return out


class _Refs:
    """Per-call caches of enterprises, roles and regions, so that a bulk write asks the database once per key."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.by_id: dict[int, Enterprise | None] = {}
        self.by_uscc: dict[str, int | None] = {}
        self.roles: dict[int, set[str]] = {}
        self.regions: dict[str, bool] = {}
        self.locks: dict[tuple[int, int], str | None] = {}

    def enterprise(self, ident: int | None, uscc: str | None, name: str) -> Enterprise | None:
        if ident is None and uscc:
            key = uscc.strip().upper()
            if key not in self.by_uscc:
                self.by_uscc[key] = self.session.exec(select(Enterprise.id).where(Enterprise.uscc == key)).first()
            ident = self.by_uscc[key]
            if ident is None:
                raise InvalidInput(
                    "battery.no_enterprise_uscc",
                    field=f"{name}_uscc",
                    column=column_term(f"{name}_uscc"),
                    uscc=uscc,
                )
        if ident is None:
            return None
        if ident not in self.by_id:
            self.by_id[ident] = self.session.get(Enterprise, ident)
        found = self.by_id[ident]
        if found is None:
            raise InvalidInput(
                "battery.no_enterprise_id", field=f"{name}_id", column=column_term(f"{name}_id"), ident=ident
            )
        return found

    def roles_of(self, enterprise_id: int) -> set[str]:
        if enterprise_id not in self.roles:
            rows = self.session.exec(
                select(EnterpriseRoleLink.role).where(EnterpriseRoleLink.enterprise_id == enterprise_id)
            ).all()
            self.roles[enterprise_id] = {str(r) for r in rows}
        return self.roles[enterprise_id]

    def region_exists(self, adcode: str) -> bool:
        if adcode not in self.regions:
            self.regions[adcode] = (
                self.session.exec(select(col(Region.adcode)).where(col(Region.adcode) == adcode)).first() is not None
            )
        return self.regions[adcode]

    def ensure_unlocked(self, enterprise_id: int, year: int) -> None:
        key = (enterprise_id, year)
        if key not in self.locks:
            lock = lock_for(session=self.session, enterprise_id=enterprise_id, year=year)
            self.locks[key] = lock.region_adcode if lock else None
        region = self.locks[key]
        if region is not None:
            raise PeriodLocked(
                "battery.year_locked", field="year", column=Term("field.occurred_at"), year=year, region=region
            )


def _acting_enterprise(refs: _Refs, principal: Principal, ident: int | None, uscc: str | None, name: str) -> Enterprise:
    """The enterprise a row is written for: the principal's own, or (for an administrator) the one it names."""
    named = refs.enterprise(ident, uscc, name)
    if principal.is_admin:
        if named is None:
            raise InvalidInput("battery.acting_for_required", field=f"{name}_uscc", column=column_term(f"{name}_uscc"))
        return named
    if principal.role is not UserRole.enterprise or principal.enterprise_id is None:
        raise Forbidden("battery.role_cannot_write", role=Term(f"role.{principal.role}"))
    if named is not None and named.id != principal.enterprise_id:
        raise Forbidden("battery.own_records_only", field=f"{name}_uscc", column=column_term(name))
    own = refs.enterprise(principal.enterprise_id, None, name)
    assert own is not None
    return own


def _enterprise_name(e: Enterprise) -> str:
    return f"{e.name_zh} ({e.uscc})"


# ---------------------------------------------------------------------------------------------------------------
# Registration

_LEVEL_RANK = {BatteryLevel.cell: 0, BatteryLevel.module: 1, BatteryLevel.pack: 2}
REGISTER_ROLES = frozenset({EnterpriseRole.battery_maker.value, EnterpriseRole.cascade_user.value})
# Enterprises that act on batteries at all, and those that may take in a battery they did not hold (a collection).
BATTERY_ROLES = frozenset(
    r.value
    for r in (
        EnterpriseRole.battery_maker,
        EnterpriseRole.vehicle_maker,
        EnterpriseRole.collection_outlet,
        EnterpriseRole.cascade_user,
        EnterpriseRole.recycler,
        EnterpriseRole.dismantler,
    )
)
COLLECTING_ROLES = BATTERY_ROLES - {EnterpriseRole.battery_maker.value}


class BatteryIn(BaseModel):
    """A battery to register, as submitted: its code, its parent's code, and what the maker knows of it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: Code
    parent_code: Code | None = None
    rated_kwh: Annotated[float, Field(ge=0, le=MAX_BATTERY_KWH)] | None = None
    mass_kg: Annotated[float, Field(ge=0, le=MAX_BATTERY_KG)] | None = None
    mass_t: Annotated[float, Field(ge=0, le=MAX_BATTERY_KG / 1000)] | None = None
    maker_id: Id | None = None
    maker_uscc: Code | None = None
    produced_at: Moment | None = None


# pydantic's refusals whose words the catalogue holds (in English, pydantic's own); others are quoted as pydantic says.
_INPUT_PROBLEMS = {
    "missing": "battery.input_missing",
    "extra_forbidden": "battery.input_unknown_column",
    "float_parsing": "battery.input_not_a_number",
    "float_type": "battery.input_not_a_number_type",
    "int_parsing": "battery.input_not_an_integer",
    "int_type": "battery.input_not_an_integer_type",
    "int_from_float": "battery.input_fraction",
    "string_type": "battery.input_not_a_text",
    "dict_type": "battery.input_not_a_dictionary",
    "greater_than_equal": "battery.input_at_least",
    "less_than_equal": "battery.input_at_most",
    "string_too_long": "battery.input_too_long",
    "datetime_from_date_parsing": "battery.input_not_a_moment",
}


def _bound(value: Any) -> str:
    # As pydantic writes a bound: 10000.0 as 10000.
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _validation_error(exc: ValidationError, default: str) -> InvalidInput:
    first = exc.errors()[0]
    column = ".".join(str(p) for p in first["loc"]) or default
    context = first.get("ctx") or {}
    error = context.get("error")
    problem: Message
    if first["type"] == "value_error" and isinstance(error, ValueError) and error.args:
        # A field type's own check (text, moment): its message, whether it came as data or as a sentence.
        reason = error.args[0]
        problem = reason if isinstance(reason, Message) else msg("battery.input_other", detail=str(reason))
    elif first["type"] in _INPUT_PROBLEMS:
        bounds = {k: _bound(context[k]) for k in ("ge", "le", "max_length") if k in context}
        detail = {"detail": str(error)} if first["type"] == "datetime_from_date_parsing" else {}
        problem = msg(_INPUT_PROBLEMS[first["type"]], **bounds, **detail)
    else:
        problem = msg("battery.input_other", detail=str(first["msg"]).removeprefix("Value error, "))
    return InvalidInput("battery.column_problem", field=column, column=column_term(column), problem=problem)


@dataclass
class _NewBattery:
    row: int
    data: BatteryIn
    decoded: DecodedCode
    maker: Enterprise
    produced_at: datetime
    mass_kg: float | None
    battery: Battery | None = None


def register_batteries(
    *,
    session: Session,
    principal: Principal,
    rows: Sequence[dict[str, Any]],
    now: datetime,
    lines: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> list[Battery]:
    """Register batteries with their genealogy, all or none; every bad row is listed (RowsRefused).

    A row may also attach an already registered battery that has no parent yet to a parent (a pack maker filing
    the genealogy of modules or cells it holds); a battery that already has a parent is refused: a child cannot
    have two parents.
    """
    if not principal.is_admin and principal.role is not UserRole.enterprise:
        raise Forbidden("battery.role_cannot_register", role=Term(f"role.{principal.role}"))
    refs = _Refs(session)
    if not principal.is_admin:
        assert principal.enterprise_id is not None
        if not refs.roles_of(principal.enterprise_id) & REGISTER_ROLES:
            raise Forbidden("battery.makers_register")
    numbers = list(lines) if lines is not None else list(range(1, len(rows) + 1))
    errors: list[RowError] = []
    new: list[_NewBattery] = []
    attach: list[tuple[int, Battery, str]] = []
    seen: dict[str, int] = {}
    codes = [normalise_battery_code(str(r.get("code") or "")) for r in rows]
    existing = _batteries_by_code(session, [c for c in codes if c])
    for n, raw in zip(numbers, rows, strict=True):
        try:
            item = _parse_battery_row(raw)
            decoded = parse_battery_code(item.code)
        except InvalidInput as exc:
            column = exc.field if exc.field in BatteryIn.model_fields else "code"
            errors.append(RowError(n, column, Message(exc.code, exc.params), exc))
            continue
        code = decoded.code
        if code in seen:
            errors.append(RowError(n, "code", msg("battery.code_twice_in_file", battery=code, line=seen[code])))
            continue
        seen[code] = n
        parent_code = normalise_battery_code(item.parent_code) if item.parent_code else None
        try:
            maker = _acting_enterprise(refs, principal, item.maker_id, item.maker_uscc, "maker")
            found = existing.get(code)
            if found is not None:
                attach.append((n, _attachable(refs, principal, found, code, parent_code, maker), parent_code or ""))
                continue
            produced_at = as_utc(item.produced_at) if item.produced_at else _start_of(decoded.production_date)
            if produced_at > now:
                raise InvalidInput("battery.in_future", field="produced_at", column=Term("field.produced_at"))
            mass = item.mass_kg
            if item.mass_t is not None:
                if mass is not None:
                    raise InvalidInput("battery.mass_t_and_kg", field="mass_t", column=Term("field.mass_t"))
                mass = item.mass_t * 1000
            for name, value in (("rated_kwh", item.rated_kwh), ("mass_kg", mass)):
                if value is not None and (value != value or value < 0):
                    raise InvalidInput("battery.not_negative", field=name, column=Term(f"field.{name}"))
            new.append(_NewBattery(n, item, decoded, maker, produced_at, mass))
        except DomainError as exc:
            errors.append(_row_error(n, exc, "code"))
    by_code = {b.decoded.code: b for b in new}
    # Locked: no foreign key holds parent_id once batteries are spread over shards (README, "Going to Citus"), so
    # the parent's existence and state are checked here and cannot change before the child names it.
    parents = _batteries_by_code(
        session,
        [normalise_battery_code(b.data.parent_code) for b in new if b.data.parent_code] + [p for *_, p in attach],
        for_update=True,
    )
    for b in new:
        if b.data.parent_code:
            parent_code = normalise_battery_code(b.data.parent_code)
            try:
                _check_parent(parent_code, b.decoded.level, by_code, parents)
            except DomainError as exc:
                errors.append(_row_error(b.row, exc, "parent_code"))
    for n, child, parent_code in attach:
        try:
            _check_parent(parent_code, BatteryLevel(child.level), by_code, parents)
        except DomainError as exc:
            errors.append(_row_error(n, exc, "parent_code"))
    _refuse(errors, len(rows))
    saved = _insert_batteries(session, new, now, progress)
    for b in new:
        if b.data.parent_code:
            parent = _resolve_parent(normalise_battery_code(b.data.parent_code), by_code, parents)
            assert b.battery is not None
            b.battery.parent_id = parent.id
    for _n, child, parent_code in attach:
        child.parent_id = _resolve_parent(parent_code, by_code, parents).id
        session.add(child)
    session.flush()
    _audit_registration(session, principal, saved + [c for _n, c, _p in attach], now)
    return saved + [c for _n, c, _p in attach]


def _parse_battery_row(raw: dict[str, Any]) -> BatteryIn:
    data = {k: v for k, v in raw.items() if v not in (None, "")}
    try:
        return BatteryIn.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, "code") from None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=CST).astimezone(UTC)


def _batteries_by_code(session: Session, codes: Iterable[str], *, for_update: bool = False) -> dict[str, Battery]:
    """Batteries by their current or original code, in chunks of an IN list (locked, for a writer)."""
    wanted = sorted(set(codes))
    found: dict[str, Battery] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(Battery).where(or_(col(Battery.code).in_(chunk), col(Battery.original_code).in_(chunk)))
        if for_update:
            query = _locked(query.order_by(col(Battery.id)))
        for battery in session.exec(query).all():
            found[battery.code] = battery
            if battery.original_code:
                found.setdefault(battery.original_code, battery)
    return found


def _attachable(
    refs: _Refs, principal: Principal, found: Battery, code: str, parent_code: str | None, maker: Enterprise
) -> Battery:
    if not parent_code:
        raise Conflict("battery.already_registered", field="code", battery=code)
    if found.parent_id is not None:
        parent = refs.session.get(Battery, found.parent_id)
        raise Conflict(
            "battery.has_parent",
            field="parent_code",
            column=Term("field.parent_code"),
            battery=code,
            parent=parent.code if parent else found.parent_id,
        )
    if not principal.is_admin and found.holder_id != maker.id:
        raise Conflict("battery.registered_elsewhere", field="code", battery=code)
    return found


def _check_parent(
    parent_code: str, level: BatteryLevel, in_batch: dict[str, _NewBattery], stored: dict[str, Battery]
) -> None:
    if parent_code in in_batch:
        parent_level = in_batch[parent_code].decoded.level
    elif parent_code in stored:
        parent = stored[parent_code]
        parent_level = BatteryLevel(parent.level)
        if BatteryState(parent.state) is not S.produced:
            raise Conflict(
                "battery.parent_not_produced",
                field="parent_code",
                column=Term("field.parent_code"),
                parent=parent_code,
                state=state_term(parent.state),
            )
    else:
        raise InvalidInput(
            "battery.parent_unknown", field="parent_code", column=Term("field.parent_code"), parent=parent_code
        )
    if _LEVEL_RANK[parent_level] <= _LEVEL_RANK[level]:
        raise InvalidInput(
            "battery.parent_level",
            field="parent_code",
            column=Term("field.parent_code"),
            level=level_term(level),
            parent_level=level_term(parent_level),
        )


def _resolve_parent(parent_code: str, in_batch: dict[str, _NewBattery], stored: dict[str, Battery]) -> Battery:
    if parent_code in in_batch:
        battery = in_batch[parent_code].battery
        assert battery is not None
        return battery
    return stored[parent_code]


def _insert_batteries(
    session: Session, new: Sequence[_NewBattery], now: datetime, progress: Progress | None
) -> list[Battery]:
    saved: list[Battery] = []
    total = len(new)
    for start in range(0, total, 1000):
        chunk = new[start : start + 1000]
        for b in chunk:
            b.battery = Battery(
                code=b.decoded.code,
                level=b.decoded.level,
                maker_code=b.decoded.maker,
                chemistry=b.decoded.chemistry,
                production_date=b.decoded.production_date,
                state=S.produced,
                holder_id=b.maker.id,
                rated_kwh=b.data.rated_kwh,
                mass_kg=b.mass_kg,
            )
            session.add(b.battery)
        session.flush()
        for b in chunk:
            assert b.battery is not None and b.battery.id is not None
            # The code table is what keeps codes unique (models/battery.py): a code taken twice fails at the flush.
            session.add(BatteryCode(code=b.battery.code, battery_id=b.battery.id))
            attributes: dict[str, Any] = {
                k: v for k, v in (("rated_kwh", b.data.rated_kwh), ("mass_kg", b.mass_kg)) if v is not None
            }
            if b.data.parent_code:
                attributes["parent_code"] = normalise_battery_code(b.data.parent_code)
            session.add(
                BatteryEvent(
                    battery_id=b.battery.id,
                    type=E.produced,
                    occurred_at=b.produced_at,
                    reported_at=max(now, b.produced_at),
                    reporter_id=b.maker.id or 0,
                    region_adcode=b.maker.county_adcode or b.maker.prefecture_adcode,
                    attributes=attributes,
                )
            )
            saved.append(b.battery)
        if progress:
            progress(start + len(chunk), total)
    session.flush()
    return saved


def _audit_registration(session: Session, principal: Principal, batteries: Sequence[Battery], now: datetime) -> None:
    if not batteries:
        return
    if len(batteries) == 1:
        after = snapshot(batteries[0])
    else:
        after = {"count": len(batteries), "codes": [b.code for b in batteries[:50]], "first_id": batteries[0].id}
    record(
        session=session,
        principal=principal,
        action="register",
        table="battery",
        row_id=batteries[0].id if len(batteries) == 1 else f"{len(batteries)} rows",
        before=None,
        after=after,
        now=now,
        enterprises=(batteries[0].holder_id,),
    )


def register_battery(*, session: Session, principal: Principal, row: dict[str, Any], now: datetime) -> Battery:
    """Register one battery; its refusal carries the error of its one row (field and reason)."""
    try:
        return register_batteries(session=session, principal=principal, rows=[row], now=now)[0]
    except RowsRefused as exc:
        first = exc.errors[0]
        raise first.error or InvalidInput(first.problem, field=first.column) from None


# ---------------------------------------------------------------------------------------------------------------
# Events


class EventIn(BaseModel):
    """An event as submitted (the edge: ids or credit codes; naive times are China Standard Time)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: Code
    type: BatteryEventType
    occurred_at: Moment
    reported_at: Moment | None = None
    reporter_id: Id | None = None
    reporter_uscc: Code | None = None
    counterpart_id: Id | None = None
    counterpart_uscc: Code | None = None
    region_adcode: Code | None = None
    vin: Code | None = None
    attributes: dict[str, Any] = {}


RESERVED_ATTRIBUTES = ("via", "original_code")


def parse_event(raw: dict[str, Any]) -> EventIn:
    """Validate one submitted event; attribute columns (soh, new_code, input_mass_kg, ...) join `attributes`."""
    data = {k: v for k, v in raw.items() if v not in (None, "")}
    # A file's attributes column holds JSON text; the API's, an object.
    attrs: Any = data.pop("attributes", None) or {}
    if isinstance(attrs, str):
        try:
            attrs = json.loads(attrs)
        except ValueError:
            raise InvalidInput(
                "battery.attributes_not_object", field="attributes", column=Term("field.attributes")
            ) from None
    if not isinstance(attrs, dict):
        raise InvalidInput("battery.attributes_not_object", field="attributes", column=Term("field.attributes"))
    attrs = dict(attrs)
    # The writer alone sets these: `via` marks the copies of an event on the batteries inside a pack, and
    # `original_code` the code a repurposed battery carried; a submitted one would pass for the writer's own.
    for key in RESERVED_ATTRIBUTES:
        if key in attrs:
            raise InvalidInput(
                "battery.attribute_reserved", field="attributes", column=Term("field.attributes"), name=key
            )
    for key in list(data):
        if key in TEXT_ATTRIBUTES or key in NUMBER_ATTRIBUTES:
            attrs[key] = data.pop(key)
    data["attributes"] = clean_attributes(attrs)
    if isinstance(data.get("type"), str):
        data["type"] = data["type"].strip().lower()
        if data["type"] not in E.__members__:
            raise InvalidInput(
                "battery.event_type_unknown",
                field="type",
                column=Term("field.type"),
                value=data["type"],
                allowed=", ".join(E),
            )
    try:
        return EventIn.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, "code") from None


def _locked(query: SelectOfScalar[Battery]) -> SelectOfScalar[Battery]:
    # A writer reads a battery's state and writes the next one: the rows are locked first (PostgreSQL; SQLite's
    # write transactions hold the database) and re-read, so that of two concurrent events the second sees the first.
    return query.with_for_update(of=Battery).execution_options(populate_existing=True)


@dataclass
class _Live:
    """A battery being written to in this call, with what the checks need to know of it."""

    battery: Battery
    last_at: datetime | None
    children: list[int] | None = None  # ids, loaded on first need
    application: bool | None = None  # whether its last repurposing named an application


class _EventWriter:
    """Applies events one by one to batteries cached for the call; every check runs before anything changes."""

    def __init__(self, session: Session, principal: Principal, now: datetime) -> None:
        self.session = session
        self.principal = principal
        self.now = now
        self.refs = _Refs(session)
        self.live: dict[int, _Live] = {}
        self.by_code: dict[str, Battery] = {}
        self.new_codes: dict[str, str] = {}  # re-coded in this call: new code -> code before
        self.events: list[BatteryEvent] = []
        self.reports: list[RecoveryReport] = []

    def preload(self, codes: Iterable[str]) -> None:
        self.by_code.update(_batteries_by_code(self.session, codes, for_update=True))
        ids = [b.id for b in self.by_code.values() if b.id is not None and b.id not in self.live]
        last = _last_event_times(self.session, ids)
        for battery in self.by_code.values():
            if battery.id is not None and battery.id not in self.live:
                self.live[battery.id] = _Live(battery, last.get(battery.id))

    def _live(self, battery: Battery) -> _Live:
        assert battery.id is not None
        if battery.id not in self.live:
            self.live[battery.id] = _Live(battery, _last_event_times(self.session, [battery.id]).get(battery.id))
        return self.live[battery.id]

    def _children(self, item: _Live) -> list[_Live]:
        if item.children is None:
            query = select(Battery).where(Battery.parent_id == item.battery.id).order_by(col(Battery.id))
            rows = self.session.exec(_locked(query)).all()
            last = _last_event_times(self.session, [b.id for b in rows if b.id is not None])
            for b in rows:
                assert b.id is not None
                if b.id not in self.live:
                    self.live[b.id] = _Live(b, last.get(b.id))
            item.children = [b.id for b in rows if b.id is not None]
        return [self.live[i] for i in item.children]

    def apply(self, event: EventIn) -> BatteryEvent:
        code = normalise_battery_code(event.code)
        battery = self.by_code.get(code)
        if battery is None:
            self.preload([code])
            battery = self.by_code.get(code)
        if battery is None:
            raise NotFound("battery.no_such_code", field="code", column=Term("field.code"), battery=code)
        item = self._live(battery)
        step = STEPS[event.type]
        reporter = _acting_enterprise(self.refs, self.principal, event.reporter_id, event.reporter_uscc, "reporter")
        assert reporter.id is not None
        roles = self.refs.roles_of(reporter.id)
        if not roles & BATTERY_ROLES:
            raise Forbidden(
                "battery.no_battery_role",
                field="reporter",
                column=Term("field.reporter"),
                enterprise=_enterprise_name(reporter),
            )
        if not self._may_read(battery, reporter):
            # A battery the reporter never held: it may only take it in (a collection), and a refusal says no more
            # than an unknown code would, so that its state and holder are not revealed.
            if step.custody != "reporter" or BatteryState(battery.state) not in step.after:
                raise NotFound("battery.no_such_code", field="code", column=Term("field.code"), battery=code)
            if not roles & COLLECTING_ROLES:
                raise NotFound("battery.no_such_code", field="code", column=Term("field.code"), battery=code)
        ensure_allowed(battery.code, battery.state, event.type)
        counterpart = self.refs.enterprise(event.counterpart_id, event.counterpart_uscc, "counterpart")
        occurred = as_utc(event.occurred_at)
        if occurred > self.now:
            raise InvalidInput("battery.in_future", field="occurred_at", column=Term("field.occurred_at"))
        if item.last_at is not None and occurred < stored_utc(item.last_at):
            raise Conflict(
                "battery.before_last_event",
                field="occurred_at",
                column=Term("field.occurred_at"),
                battery=battery.code,
                last=stored_utc(item.last_at).isoformat(),
            )
        reported = self.now
        if event.reported_at is not None:
            if not self.principal.is_admin:
                raise InvalidInput(
                    "battery.reported_at_by_service", field="reported_at", column=Term("field.reported_at")
                )
            reported = as_utc(event.reported_at)
            if reported > self.now:
                raise InvalidInput("battery.in_future", field="reported_at", column=Term("field.reported_at"))
        if reported < occurred:
            raise InvalidInput(
                "battery.reported_before_occurred", field="reported_at", column=Term("field.reported_at")
            )
        holder = self.refs.enterprise(battery.holder_id, None, "holder")
        new_holder = self._custody(step, battery, reporter, counterpart, holder)
        if event.type is E.collected and counterpart is None and holder is not None and holder.id != reporter.id:
            counterpart = holder
        attributes = dict(event.attributes)
        vin = validate_vin(event.vin) if event.vin else None
        self._requirements(step, item, event, vin, attributes)
        region = event.region_adcode or reporter.county_adcode or reporter.prefecture_adcode
        if event.region_adcode and not self.refs.region_exists(event.region_adcode):
            raise InvalidInput(
                "battery.no_region",
                field="region_adcode",
                column=Term("field.region_adcode"),
                adcode=event.region_adcode,
            )
        self.refs.ensure_unlocked(reporter.id, local_day(occurred).year)
        # Every check has passed: from here on, the row is applied.
        row = self._write(item, event.type, occurred, reported, reporter, counterpart, region, vin, attributes)
        self._move(item, step, new_holder, occurred, attributes)
        return row

    def _may_read(self, battery: Battery, reporter: Enterprise) -> bool:
        """Whether the acting enterprise holds or once held (reported or received) the battery."""
        if battery.holder_id == reporter.id:
            return True
        if battery.id is None:
            return False
        touched = select(BatteryEvent.id).where(
            BatteryEvent.battery_id == battery.id,
            or_(col(BatteryEvent.reporter_id) == reporter.id, col(BatteryEvent.counterpart_id) == reporter.id),
        )
        return self.session.exec(touched.limit(1)).first() is not None

    def _custody(
        self,
        step: Step,
        battery: Battery,
        reporter: Enterprise,
        counterpart: Enterprise | None,
        holder: Enterprise | None,
    ) -> Enterprise | None:
        if step.custody == "keep" or step.event is E.transferred:
            if holder is not None and reporter.id != holder.id:
                raise Conflict(
                    "battery.not_the_holder",
                    field="reporter",
                    column=Term("field.reporter"),
                    battery=battery.code,
                    holder=_enterprise_name(holder),
                    event=event_term(step.event),
                    handover=event_term(E.transferred),
                )
        if step.custody == "counterpart":
            if counterpart is None:
                raise InvalidInput(
                    "battery.receiver_required", field="counterpart_uscc", column=Term("field.counterpart_uscc")
                )
            if counterpart.id == reporter.id:
                raise InvalidInput(
                    "battery.receiver_is_reporter", field="counterpart_uscc", column=Term("field.counterpart_uscc")
                )
            return counterpart
        if step.custody == "reporter":
            if counterpart is not None and holder is not None and counterpart.id != holder.id:
                raise Conflict(
                    "battery.held_by_another",
                    field="counterpart_uscc",
                    column=Term("field.counterpart"),
                    battery=battery.code,
                    holder=_enterprise_name(holder),
                    counterpart=_enterprise_name(counterpart),
                )
            return reporter
        return holder

    def _requirements(
        self, step: Step, item: _Live, event: EventIn, vin: str | None, attributes: dict[str, Any]
    ) -> None:
        battery = item.battery
        if "vin" in step.requires and not vin:
            raise InvalidInput(
                "battery.vin_required", field="vin", column=Term("field.vin"), event=event_term(step.event)
            )
        if "input_mass_kg" in step.requires and "input_mass_kg" not in attributes:
            raise InvalidInput("battery.input_mass_required", field="input_mass_kg", column=Term("field.input_mass_kg"))
        if "new_code" in step.requires:
            if not attributes.get("new_code"):
                raise InvalidInput("battery.new_code_required", field="new_code", column=Term("field.new_code"))
            try:
                decoded = parse_battery_code(str(attributes["new_code"]))
            except InvalidInput as exc:
                raise InvalidInput(
                    "battery.new_code_invalid",
                    field="new_code",
                    column=Term("field.new_code"),
                    problem=Message(exc.code, exc.params),
                ) from None
            if decoded.level is not BatteryLevel(battery.level):
                raise InvalidInput(
                    "battery.new_code_level",
                    field="new_code",
                    column=Term("field.new_code"),
                    new_code=decoded.code,
                    new_level=level_term(decoded.level),
                    battery=battery.code,
                    level=level_term(battery.level),
                )
            if decoded.code in self.new_codes or _code_taken(self.session, decoded.code):
                raise Conflict(
                    "battery.new_code_taken", field="new_code", column=Term("field.new_code"), new_code=decoded.code
                )
            attributes["new_code"] = decoded.code
            attributes["original_code"] = battery.code
        if step.event is E.in_cascade_use and not attributes.get("application"):
            if not item.application and not _repurposing_named_application(self.session, battery.id):
                raise InvalidInput(
                    "battery.application_required", field="application", column=Term("field.application")
                )

    def _write(
        self,
        item: _Live,
        etype: BatteryEventType,
        occurred: datetime,
        reported: datetime,
        reporter: Enterprise,
        counterpart: Enterprise | None,
        region: str | None,
        vin: str | None,
        attributes: dict[str, Any],
    ) -> BatteryEvent:
        battery = item.battery
        assert battery.id is not None and reporter.id is not None
        row = BatteryEvent(
            battery_id=battery.id,
            type=etype,
            occurred_at=occurred,
            reported_at=reported,
            reporter_id=reporter.id,
            counterpart_id=counterpart.id if counterpart else None,
            region_adcode=region,
            vin=vin,
            attributes=attributes,
        )
        self.events.append(row)
        self.session.add(row)
        if etype is E.recovered:
            self._report(battery, reporter, reported, attributes)
        # The children inside move with it: an unopened pack carries its modules, an unopened module its cells.
        if etype is not E.dismantled and BatteryState(battery.state) is not S.dismantled:
            copied = {k: v for k, v in attributes.items() if k not in ("new_code", "original_code")}
            copied["via"] = attributes.get("via", battery.code)
            for child in self._children(item):
                if etype is E.transferred or BatteryState(child.battery.state) == BatteryState(battery.state):
                    self._write(child, etype, occurred, reported, reporter, counterpart, region, vin, copied)
                    self._move(
                        child,
                        STEPS[etype],
                        self._holder_after(STEPS[etype], child.battery, reporter, counterpart),
                        occurred,
                        copied,
                    )
        return row

    @staticmethod
    def _holder_after(
        step: Step, battery: Battery, reporter: Enterprise, counterpart: Enterprise | None
    ) -> Enterprise | None:
        if step.custody == "counterpart":
            return counterpart
        if step.custody == "reporter":
            return reporter
        return None  # unchanged

    def _move(
        self, item: _Live, step: Step, new_holder: Enterprise | None, occurred: datetime, attributes: dict[str, Any]
    ) -> None:
        battery = item.battery
        if step.to is not None:
            battery.state = step.to
        if new_holder is not None:
            battery.holder_id = new_holder.id
        if step.event is E.repurposed and attributes.get("new_code"):
            new_code = str(attributes["new_code"])
            self.new_codes[new_code] = battery.code
            # The code before cascade use stays beside the new one; the very first code is the one kept.
            battery.original_code = battery.original_code or battery.code
            self.session.execute(sa_delete(BatteryCode).where(col(BatteryCode.code) == battery.code))
            self.session.add(BatteryCode(code=new_code, battery_id=battery.id or 0))
            battery.code = new_code
            self.by_code[new_code] = battery
            item.application = bool(attributes.get("application"))
        item.last_at = occurred
        self.session.add(battery)

    def _report(self, battery: Battery, recycler: Enterprise, reported: datetime, a: dict[str, Any]) -> None:
        day = local_day(reported)
        masses = {key: float(a.get(key, 0.0)) for key in REPORT_MASSES}
        report = RecoveryReport(
            recycler_id=recycler.id or 0,
            battery_id=battery.id,
            reported_on=day,
            edition=edition_in_force(day).name,
        )
        for key, value in masses.items():
            setattr(report, key, value)
        self.reports.append(report)
        self.session.add(report)


def _last_event_times(session: Session, ids: Sequence[int]) -> dict[int, datetime]:
    found: dict[int, datetime] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        query = (
            sa_select(col(BatteryEvent.battery_id), func.max(col(BatteryEvent.occurred_at)))
            .where(col(BatteryEvent.battery_id).in_(chunk))
            .group_by(col(BatteryEvent.battery_id))
        )
        for battery_id, at in session.execute(query).all():
            found[battery_id] = at
    return found


def _code_taken(session: Session, code: str) -> bool:
    query = select(Battery.id).where(or_(col(Battery.code) == code, col(Battery.original_code) == code))
    return session.exec(query).first() is not None


def _repurposing_named_application(session: Session, battery_id: int | None) -> bool:
    query = (
        select(BatteryEvent.attributes)
        .where(BatteryEvent.battery_id == battery_id, BatteryEvent.type == E.repurposed)
        .order_by(col(BatteryEvent.occurred_at).desc())
        .limit(1)
    )
    attrs = session.exec(query).first()
    return bool(attrs and attrs.get("application"))


def record_events(
    *,
    session: Session,
    principal: Principal,
    rows: Sequence[dict[str, Any]],
    now: datetime,
    lines: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> list[BatteryEvent]:
    """Record events, all or none, in the order they happened; every bad row is listed (RowsRefused)."""
    if not principal.is_admin and principal.role is not UserRole.enterprise:
        raise Forbidden("battery.role_cannot_record", role=Term(f"role.{principal.role}"))
    numbers = list(lines) if lines is not None else list(range(1, len(rows) + 1))
    errors: list[RowError] = []
    parsed: list[tuple[int, EventIn]] = []
    for n, raw in zip(numbers, rows, strict=True):
        try:
            parsed.append((n, parse_event(raw)))
        except InvalidInput as exc:
            errors.append(_row_error(n, exc, "code"))
    writer = _EventWriter(session, principal, now)
    writer.preload(normalise_battery_code(e.code) for _n, e in parsed)
    # A file may list events in any order; each battery's are applied in the order they happened.
    parsed.sort(key=lambda item: as_utc(item[1].occurred_at))
    total = len(parsed)
    submitted: list[BatteryEvent] = []
    for done, (n, event) in enumerate(parsed, start=1):
        try:
            submitted.append(writer.apply(event))
        except DomainError as exc:
            errors.append(_row_error(n, exc, "code"))
        if progress and (done % 500 == 0 or done == total):
            progress(done, total)
    _refuse(errors, len(rows))
    session.flush()
    _audit_events(session, principal, submitted, len(writer.events) - len(submitted), now)
    return writer.events


def _audit_events(
    session: Session, principal: Principal, own: Sequence[BatteryEvent], copies: int, now: datetime
) -> None:
    # The events as submitted, known from the writer: a `via` among the attributes may be the submitter's own.
    if not own:
        return
    if len(own) == 1:
        after = snapshot(own[0])
    else:
        after = {"count": len(own), "copied_to_children": copies, "first_id": own[0].id}
    record(
        session=session,
        principal=principal,
        action="record",
        table="battery_event",
        row_id=own[0].id if len(own) == 1 else f"{len(own)} rows",
        before=None,
        after=after,
        now=now,
        enterprises=(own[0].reporter_id, own[0].counterpart_id),
    )


def record_event(
    *, session: Session, principal: Principal, code: str, row: dict[str, Any], now: datetime
) -> BatteryEvent:
    """Record one event on a battery; a refusal keeps its own kind (Conflict for a step the state forbids)."""
    try:
        return record_events(session=session, principal=principal, rows=[{**row, "code": code}], now=now)[0]
    except RowsRefused as exc:
        first = exc.errors[0]
        raise first.error or InvalidInput(first.problem, field=first.column) from None


# ---------------------------------------------------------------------------------------------------------------
# Reading: scope, one battery, trace, reverse trace


def readable_batteries(principal: Principal) -> ColumnElement[bool]:
    """A condition on Battery: those the principal holds or held (as holder, reporter or counterpart) in scope."""
    if principal.is_admin:
        return true()
    ids = readable_enterprise_ids(principal)
    touched = exists(
        sa_select(col(BatteryEvent.id)).where(
            col(BatteryEvent.battery_id) == col(Battery.id),
            or_(col(BatteryEvent.reporter_id).in_(ids), col(BatteryEvent.counterpart_id).in_(ids)),
        )
    )
    return or_(col(Battery.holder_id).in_(ids), touched)


def find_battery(*, session: Session, principal: Principal, code: str) -> Battery:
    """A battery by its code (or the code it had before cascade use), if the principal may read it."""
    wanted = normalise_battery_code(code)
    for column in (Battery.code, Battery.original_code):
        query = select(Battery).where(col(column) == wanted, readable_batteries(principal)).limit(1)
        found = session.exec(query).first()
        if found is not None:
            return found
    raise NotFound("battery.not_found", field="code", battery=wanted)


class Party(BaseModel):
    """An enterprise as the trace shows it."""

    id: int
    uscc: str
    name_zh: str
    name_en: str | None = None
    prefecture_adcode: str | None = None
    county_adcode: str | None = None


class Place(BaseModel):
    region_adcode: str | None = None
    region_name_zh: str | None = None
    text: str | None = None


class DeadlineView(BaseModel):
    """The upload deadline an event was held to and whether it was met."""

    due: date
    working_days: int
    rule: str
    late: bool
    provisional: bool = False  # the count runs over a year the holiday data does not cover: an estimate


class TraceEvent(BaseModel):
    type: str
    at: datetime
    reported_at: datetime
    enterprise: Party | None
    counterpart: Party | None
    place: Place
    vin: str | None = None
    attributes: dict[str, Any]
    via: str | None = None  # the code of the pack or module it was reported on, when copied to a child
    deadline: DeadlineView | None = None


class CustodyStint(BaseModel):
    enterprise: Party | None
    since: datetime
    until: datetime | None = None


class BatteryView(BaseModel):
    """A battery's decoded code and where it stands."""

    code: str
    original_code: str | None
    level: str
    maker_code: str
    chemistry: str
    chemistry_name: str | None
    spec: str | None
    trace: str | None
    production_date: date
    serial: str | None
    state: str
    allowed_next: list[str]
    holder: Party | None
    parent: str | None
    children: list[str]
    rated_kwh: float | None
    mass_kg: float | None


class BatteryTrace(BatteryView):
    """One battery's whole life: events in order, custody, genealogy and the codes it carried."""

    queried: str
    codes: list[str]  # every code it carried, oldest first (cascade use re-codes it)
    custody: list[CustodyStint]
    events: list[TraceEvent]


class PackTrace(BatteryTrace):
    """A pack with every module and cell inside it, each with its own life."""

    members: list[BatteryTrace]


def _decoded(code: str) -> DecodedCode | None:
    try:
        return parse_battery_code(code)
    except InvalidInput:
        return None


class Names:
    """Enterprises, roles and region names for a set of ids, fetched in one query each."""

    def __init__(
        self, session: Session, enterprise_ids: Iterable[int | None], adcodes: Iterable[str | None] = ()
    ) -> None:
        ids = sorted({i for i in enterprise_ids if i is not None})
        self.parties: dict[int, Party] = {}
        self.roles: dict[int, set[str]] = {}
        if ids:
            # One query: each enterprise once per role it plays (or once with no role).
            rows = session.execute(
                sa_select(
                    col(Enterprise.id),
                    col(Enterprise.uscc),
                    col(Enterprise.name_zh),
                    col(Enterprise.name_en),
                    col(Enterprise.prefecture_adcode),
                    col(Enterprise.county_adcode),
                    col(EnterpriseRoleLink.role),
                )
                .outerjoin(EnterpriseRoleLink, col(EnterpriseRoleLink.enterprise_id) == col(Enterprise.id))
                .where(col(Enterprise.id).in_(ids))
            ).all()
            for r in rows:
                if r.id not in self.parties:
                    self.parties[r.id] = Party(**{k: v for k, v in r._mapping.items() if k != "role"})
                if r.role is not None:
                    self.roles.setdefault(r.id, set()).add(str(r.role))
        codes = sorted({a for a in adcodes if a})
        self.regions: dict[str, str] = {}
        if codes:
            self.regions = dict(
                session.execute(
                    sa_select(col(Region.adcode), col(Region.name_zh)).where(col(Region.adcode).in_(codes))
                ).all()
            )

    def party(self, ident: int | None) -> Party | None:
        return self.parties.get(ident) if ident is not None else None


def _view(battery: Battery, names: Names, parent: str | None, children: list[str]) -> dict[str, Any]:
    decoded = _decoded(battery.code) or (_decoded(battery.original_code) if battery.original_code else None)
    return {
        "code": battery.code,
        "original_code": battery.original_code,
        "level": str(battery.level),
        "maker_code": battery.maker_code,
        "chemistry": battery.chemistry,
        "chemistry_name": decoded.chemistry_name if decoded else None,
        "spec": decoded.spec if decoded else None,
        "trace": decoded.trace if decoded else None,
        "production_date": battery.production_date,
        "serial": decoded.serial if decoded else None,
        "state": str(battery.state),
        "allowed_next": allowed_events(battery.state),
        "holder": names.party(battery.holder_id),
        "parent": parent,
        "children": children,
        "rated_kwh": battery.rated_kwh,
        "mass_kg": battery.mass_kg,
    }


def battery_view(*, session: Session, principal: Principal, code: str) -> BatteryView:
    """A battery's decoded fields, state, holder and genealogy."""
    battery = find_battery(session=session, principal=principal, code=code)
    parents, children = _genealogy(session, [battery])
    names = Names(session, [battery.holder_id], [])
    return BatteryView(**_view(battery, names, parents.get(battery.id), children.get(battery.id, [])))


def _genealogy(
    session: Session, batteries: Sequence[Battery]
) -> tuple[dict[int | None, str], dict[int | None, list[str]]]:
    ids = [b.id for b in batteries]
    parent_ids = sorted({b.parent_id for b in batteries if b.parent_id is not None})
    # Parents and children in one query.
    rows = session.execute(
        sa_select(col(Battery.id), col(Battery.code), col(Battery.parent_id))
        .where(or_(col(Battery.id).in_(parent_ids), col(Battery.parent_id).in_(ids)))
        .order_by(col(Battery.code))
    ).all()
    codes = {r.id: r.code for r in rows}
    parents = {b.id: codes[b.parent_id] for b in batteries if b.parent_id in codes}
    children: dict[int | None, list[str]] = {}
    for r in rows:
        if r.parent_id in ids:
            children.setdefault(r.parent_id, []).append(r.code)
    return parents, children


def _traces(session: Session, batteries: Sequence[Battery], queried: str) -> list[BatteryTrace]:
    ids = [b.id for b in batteries]
    rows = session.execute(
        sa_select(BatteryEvent, col(Region.name_zh))
        .outerjoin(Region, col(Region.adcode) == col(BatteryEvent.region_adcode))
        .where(col(BatteryEvent.battery_id).in_(ids))
        .order_by(col(BatteryEvent.battery_id), col(BatteryEvent.occurred_at), col(BatteryEvent.id))
    ).all()
    events = [r[0] for r in rows]
    names = Names(
        session, [b.holder_id for b in batteries] + [e.reporter_id for e in events] + [e.counterpart_id for e in events]
    )
    names.regions = {r[0].region_adcode: r[1] for r in rows if r[0].region_adcode and r[1]}
    parents, children = _genealogy(session, batteries)
    by_battery: dict[int, list[BatteryEvent]] = {}
    for e in events:
        by_battery.setdefault(e.battery_id, []).append(e)
    out = []
    for battery in batteries:
        own = by_battery.get(battery.id or 0, [])
        out.append(
            BatteryTrace(
                **_view(battery, names, parents.get(battery.id), children.get(battery.id, [])),
                queried=queried if queried in (battery.code, battery.original_code) else battery.code,
                codes=_codes(battery, own),
                custody=_custody(own, names),
                events=[_trace_event(e, names) for e in own],
            )
        )
    return out


def _codes(battery: Battery, events: Sequence[BatteryEvent]) -> list[str]:
    codes = [
        str(e.attributes["original_code"])
        for e in events
        if e.type == E.repurposed and e.attributes.get("original_code")
    ]
    if battery.original_code and battery.original_code not in codes:
        codes.insert(0, battery.original_code)
    return [*codes, battery.code]


def _custody(events: Sequence[BatteryEvent], names: Names) -> list[CustodyStint]:
    stints: list[CustodyStint] = []
    for e in events:
        step = STEPS[BatteryEventType(e.type)]
        holder = (
            e.reporter_id if step.custody == "reporter" else e.counterpart_id if step.custody == "counterpart" else None
        )
        if holder is None or (stints and stints[-1].enterprise and stints[-1].enterprise.id == holder):
            continue
        at = stored_utc(e.occurred_at)
        if stints:
            stints[-1].until = at
        stints.append(CustodyStint(enterprise=names.party(holder), since=at))
    return stints


def _trace_event(e: BatteryEvent, names: Names) -> TraceEvent:
    etype = BatteryEventType(e.type)
    occurred, reported = stored_utc(e.occurred_at), stored_utc(e.reported_at)
    day = local_day(occurred)
    rule = deadline_for(etype, names.roles.get(e.reporter_id, set()), day)
    deadline = None
    if rule is not None:
        due = due_date(day, rule)
        deadline = DeadlineView(
            due=due,
            working_days=rule.working_days,
            rule=rule.rule,
            late=local_day(reported) > due,
            provisional=provisional(day, due),
        )
    attributes = dict(e.attributes)
    return TraceEvent(
        type=etype.value,
        at=occurred,
        reported_at=reported,
        enterprise=names.party(e.reporter_id),
        counterpart=names.party(e.counterpart_id),
        place=Place(
            region_adcode=e.region_adcode,
            region_name_zh=names.regions.get(e.region_adcode or ""),
            text=attributes.get("place"),
        ),
        vin=e.vin,
        attributes=attributes,
        via=attributes.get("via"),
        deadline=deadline,
    )


def trace(*, session: Session, principal: Principal, code: str) -> BatteryTrace:
    """The whole life of one battery: events in order, custody, parent, children, the codes it carried."""
    battery = find_battery(session=session, principal=principal, code=code)
    return _traces(session, [battery], normalise_battery_code(code))[0]


def trace_pack(*, session: Session, principal: Principal, code: str) -> PackTrace:
    """The pack a code belongs to (or is), with every module and cell inside it."""
    battery = find_battery(session=session, principal=principal, code=code)
    root = battery
    for _ in range(3):  # pack > module > cell: at most two steps up
        if root.parent_id is None:
            break
        parent = session.get(Battery, root.parent_id)
        if parent is None:
            break
        root = parent
    members: list[Battery] = []
    frontier = [root.id]
    for _ in range(3):
        level = list(
            session.exec(select(Battery).where(col(Battery.parent_id).in_(frontier)).order_by(col(Battery.code))).all()
        )
        if not level:
            break
        members.extend(level)
        frontier = [b.id for b in level]
    traces = _traces(session, [root, *members], normalise_battery_code(code))
    return PackTrace(**traces[0].model_dump(), members=traces[1:])


class ThroughRow(BaseModel):
    """A battery that passed through an enterprise, and where it is now."""

    code: str
    original_code: str | None
    level: str
    parent: str | None
    state: str
    holder: Party | None
    first_at: datetime
    last_at: datetime
    events: int


class ThroughPage(BaseModel):
    enterprise: Party
    since: date | None
    until: date | None
    count: int
    offset: int
    limit: int
    data: list[ThroughRow]


def batteries_through(
    *,
    session: Session,
    principal: Principal,
    enterprise_id: int,
    since: date | None = None,
    until: date | None = None,
    offset: int = 0,
    limit: int = 100,
) -> ThroughPage:
    """Every battery that passed through an enterprise (as reporter or counterpart) in a period, and where it is now."""
    ensure_read_enterprise(session, principal, enterprise_id)
    if since and until and until < since:
        raise InvalidInput("battery.to_before_from", field="to", column=Term("field.to"), start=Term("field.from"))
    conditions = []
    if since:
        conditions.append(col(BatteryEvent.occurred_at) >= _start_of(since))
    if until:
        conditions.append(col(BatteryEvent.occurred_at) < _start_of(until + timedelta(days=1)))
    sides: list[Any] = [
        sa_select(col(BatteryEvent.battery_id).label("battery_id"), col(BatteryEvent.occurred_at).label("at")).where(
            column == enterprise_id, *conditions
        )
        for column in (col(BatteryEvent.reporter_id), col(BatteryEvent.counterpart_id))
    ]
    both = union_all(*sides).subquery()
    passed = (
        sa_select(
            both.c.battery_id,
            func.min(both.c.at).label("first_at"),
            func.max(both.c.at).label("last_at"),
            func.count().label("events"),
        )
        .group_by(both.c.battery_id)
        .subquery()
    )
    count = int(session.execute(sa_select(func.count()).select_from(passed)).scalar_one())
    parent_battery = aliased(Battery)
    query = (
        sa_select(
            col(Battery.code),
            col(Battery.original_code),
            col(Battery.level),
            col(parent_battery.code).label("parent"),
            col(Battery.state),
            col(Battery.holder_id),
            passed.c.first_at,
            passed.c.last_at,
            passed.c.events,
        )
        .join(passed, passed.c.battery_id == col(Battery.id))
        .outerjoin(parent_battery, col(parent_battery.id) == col(Battery.parent_id))
        .order_by(passed.c.first_at, col(Battery.code))
        .offset(offset)
        .limit(limit)
    )
    rows = session.execute(query).all()
    names = Names(session, [enterprise_id, *(r.holder_id for r in rows)], [])
    me = names.party(enterprise_id)
    assert me is not None
    data = [
        ThroughRow(
            code=r.code,
            original_code=r.original_code,
            level=str(r.level),
            parent=r.parent,
            state=str(r.state),
            holder=names.party(r.holder_id),
            first_at=stored_utc(r.first_at),
            last_at=stored_utc(r.last_at),
            events=r.events,
        )
        for r in rows
    ]
    return ThroughPage(enterprise=me, since=since, until=until, count=count, offset=offset, limit=limit, data=data)


# ---------------------------------------------------------------------------------------------------------------
# Files: CSV (UTF-8, UTF-8 with BOM, GB18030) and XLSX

_ENCODINGS = ("utf-8-sig", "gb18030")


def read_table(path: Path, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of a CSV or XLSX file as dicts keyed by the header, with each row's line number in the file."""
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".xlsm", ".csv", ".txt"):
        raise InvalidInput("battery.file_kind", field="file", column=Term("field.file"), name=path.name)
    try:
        check_size(path.stat().st_size, limits)
    except OSError as exc:
        raise InvalidInput(
            "battery.file_unreadable", field="file", column=Term("field.file"), name=path.name, reason=exc.strerror
        ) from None
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path, limits)
    raw = path.read_bytes()
    for encoding in _ENCODINGS:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InvalidInput("battery.file_encoding", field="file", column=Term("field.file"))
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    start = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error:
            # A field longer than the csv module holds: name its line and, from the record's text, its column.
            record = "\n".join(text.splitlines()[start - 1 : reader.line_num])
            position = overlong_field(record, csv.field_size_limit())
            column = header[position] if header and position is not None and position < len(header) else "file"
            raise InvalidInput(
                "battery.file_field_too_long",
                field=column,
                row=start,
                column=column_term(column),
                line=start,
                limit=csv.field_size_limit(),
            ) from None
        line, start = start, reader.line_num + 1
        if header is None:
            header = [_column(h) for h in values]
            continue
        if not any(v.strip() for v in values):
            continue
        if len(rows) >= limits.max_rows:
            raise InvalidInput(
                "battery.file_too_many_rows", field="file", row=line, column=Term("field.file"), limit=limits.max_rows
            )
        rows.append({h: v.strip() for h, v in zip(header, values, strict=False) if h})
        lines.append(reader.line_num)
    return rows, lines


def _read_xlsx(path: Path, limits: UploadLimits) -> tuple[list[dict[str, Any]], list[int]]:
    from openpyxl import load_workbook

    with path.open("rb") as handle:
        check_workbook(handle, limits)  # the parts' declared sizes, before anything is decompressed
    book = load_workbook(path, read_only=True, data_only=True)
    sheet = book.worksheets[0]
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    cells = sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS)
    for number, values in enumerate(itertools.islice(cells, MAX_SHEET_LINES), start=1):
        if header is None:
            header = [_column(str(h or "")) for h in values]
            continue
        if all(v is None or str(v).strip() == "" for v in values):
            continue
        if len(rows) >= limits.max_rows:
            book.close()
            raise InvalidInput(
                "battery.file_too_many_rows", field="file", row=number, column=Term("field.file"), limit=limits.max_rows
            )
        rows.append({h: _cell(v) for h, v in zip(header, values, strict=False) if h})
        lines.append(number)
    book.close()
    return rows, lines


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if value is None else str(value).strip()


_COLUMN = re.compile(r"[^a-z0-9_]+")


def _column(name: str) -> str:
    # A template's Chinese header reads as the key it stands for.
    return alias(name) or _COLUMN.sub("_", name.strip().lstrip("\ufeff").lower()).strip("_")
