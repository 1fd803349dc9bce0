"""The battery chain audit: flags with their evidence, recovery compliance, and the share reaching recyclers.

Every flag kind is one SQL query over a year of events (an index range on type and time), narrowed in the database
to the few rows that may be wrong; only those come back to Python, where working-day deadlines are counted.
An event on a pack is copied to the modules and cells inside it, so a fact is counted once, on the outermost
battery that carried it: an event counts when its battery has no parent, or when its parent had been opened
(dismantled) by then. Thresholds, deadlines and waiting windows come from battery_rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, field_serializer
from sqlalchemy import ColumnElement, Float, and_, case, exists, func, literal, not_, or_, text, true
from sqlalchemy import select as sa_select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col

from flows.access.scope import readable_enterprise_ids, readable_enterprises, region_clause
from flows.battery.chain import Names, Party, event_term, state_term
from flows.battery.code import normalise_battery_code
from flows.battery.rules import (
    CHILD_FOLLOW_UP_WINDOW,
    COLLECTION_WINDOW,
    DEADLINE_TYPES,
    EDITIONS,
    METALS,
    MIN_DEADLINE_DAYS,
    Edition,
    deadline_for,
    due_date,
    edition_bounds,
    edition_in_force,
    local_day,
    metal_thresholds,
    nth_working_day,
    provisional,
    working_days_between,
)
from flows.kernel.adcode import within
from flows.kernel.clock import CST, local_date, stored_utc
from flows.kernel.errors import Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Message, Term, msg, plain
from flows.kernel.principal import Principal
from models import Battery, BatteryEvent, Enterprise, EnterpriseRoleLink, RecoveryReport, Region, WhitelistEntry
from models.enums import BatteryEventType, BatteryState, EnterpriseRole, UserRole, WhitelistKind

E = BatteryEventType

# ---------------------------------------------------------------------------------------------------------------
# SQL helpers, the same on SQLite and PostgreSQL


class days_between(FunctionElement[Any]):
    """Days (with fractions) from the first timestamp to the second."""

    type = Float()
    inherit_cache = True


@compiles(days_between, "postgresql")
def _days_between_pg(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 86400.0)"


@compiles(days_between)
def _days_between_sqlite(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(julianday({end}) - julianday({start}))"


def _alias(model: type[Any]) -> Any:
    # An alias typed loosely: its columns are SQL expressions, not the model's Python attribute types.
    return aliased(model)


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    start = datetime(year, 1, 1, tzinfo=CST).astimezone(UTC)
    end = datetime(year + 1, 1, 1, tzinfo=CST).astimezone(UTC)
    return start, end


def _in_year(moment: Any, year: int | None) -> ColumnElement[bool]:
    if year is None:
        return true()
    start, end = _year_bounds(year)
    return and_(moment >= start, moment < end)


def _unit(event: Any, battery: Any) -> ColumnElement[bool]:
    """The event counts on this battery: it has no parent, or its parent had been opened by then."""
    opened = _alias(BatteryEvent)
    return or_(
        battery.parent_id.is_(None),
        exists(
            sa_select(literal(1)).where(
                opened.battery_id == battery.parent_id,
                opened.type == E.dismantled.value,
                opened.occurred_at <= event.occurred_at,
            )
        ),
    )


def _listed(enterprise: Any, kind: WhitelistKind, on: Any) -> ColumnElement[bool]:
    """The enterprise was on the whitelist for this kind of activity on that day."""
    w = _alias(WhitelistEntry)
    return exists(
        sa_select(literal(1)).where(
            w.enterprise_id == enterprise,
            w.kind == kind.value,
            w.listed_on <= on,
            or_(w.revoked_on.is_(None), w.revoked_on > on),
        )
    )


def _has_role(enterprise: Any, role: EnterpriseRole) -> ColumnElement[bool]:
    link = _alias(EnterpriseRoleLink)
    return exists(sa_select(literal(1)).where(link.enterprise_id == enterprise, link.role == role.value))


# ---------------------------------------------------------------------------------------------------------------
# Scope


def _region_name(session: Session, adcode: str) -> str | None:
    row = session.execute(sa_select(col(Region.name_zh)).where(col(Region.adcode) == adcode)).first()
    return None if row is None else str(row[0])


def scope_ids(session: Session, principal: Principal, region: str | None) -> Any:
    """A subquery of the enterprise ids the audit covers (None: every enterprise), after checking the region."""
    if region:
        region = region.strip()
        if _region_name(session, region) is None:
            raise NotFound("battery.no_region_adcode", field="region", adcode=region)
        allowed = principal.is_admin or (
            principal.role is UserRole.bureau
            and principal.scope_adcode is not None
            and within(region, principal.scope_adcode)
        )
        if not allowed:
            raise Forbidden("battery.region_outside_scope", field="region", region=region)
        return sa_select(col(Enterprise.id)).where(region_clause(region), readable_enterprises(principal))
    if principal.is_admin:
        return None
    return readable_enterprise_ids(principal)


def _touches(ids: Any, *enterprises: Any) -> ColumnElement[bool]:
    if ids is None:
        return true()
    return or_(*(e.in_(ids) for e in enterprises))


def _no_jit(session: Session) -> None:
    # PostgreSQL's JIT spends longer compiling these one-off audit queries (about 0.4 s each, measured on a million
    # batteries) than running them. The setting ends with the transaction.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def data_horizon(session: Session, now: datetime) -> date:
    """The day up to which the data can tell: now, or the last upload when the data stops earlier (a demo)."""
    last = session.execute(sa_select(func.max(col(BatteryEvent.reported_at)))).scalar()
    if last is None:
        return local_day(now)
    return min(local_day(now), local_day(stored_utc(last)))


# ---------------------------------------------------------------------------------------------------------------
# Flags


class ChainFlagKind(StrEnum):
    """What a chain flag says is wrong."""

    lost = "lost"  # retired, not collected within the window
    unlisted_receiver = "unlisted_receiver"  # custody handed to an enterprise not listed for the next activity
    late_report = "late_report"  # uploaded after its deadline
    below_threshold = "below_threshold"  # a recovery report below the edition's thresholds
    recovered_above_input = "recovered_above_input"  # more recovered than went in
    vanished_children = "vanished_children"  # a pack opened whose modules or cells are never seen again
    code_reused = "code_reused"  # a code carried by two batteries
    two_parents = "two_parents"  # a child attached to a second parent while the first is intact


class BatteryFlag(BaseModel):
    """One finding, on one battery (or recovery report), with its evidence."""

    kind: ChainFlagKind
    year: int
    on: date  # the day of the fact flagged (China Standard Time)
    code: str | None
    level: str | None
    enterprise: Party | None  # who is answerable
    counterpart: Party | None = None
    region_adcode: str | None  # the prefecture of the answerable enterprise
    message: str  # the finding in English, as the API has always given it
    message_code: str  # the finding as data: its catalogue code and parameters (`code` is the battery's)
    params: dict[str, Any]
    evidence: dict[str, Any]

    def finding(self) -> Message:
        """What the audit finds, to be read in the reader's language."""
        return Message(self.message_code, self.params)

    @field_serializer("params")
    def _plain_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return plain(params)


class CountRow(BaseModel):
    key: str
    name_zh: str | None
    count: int
    kinds: dict[str, int]


class FlagReport(BaseModel):
    """The flags of a year in a scope: counts by kind, enterprise and prefecture, and a page of flags."""

    year: int | None
    region: str | None
    as_of: date
    kinds: list[str]
    counts: dict[str, int]
    by_enterprise: list[CountRow]
    by_region: list[CountRow]
    windows: dict[str, dict[str, Any]]
    count: int
    offset: int
    limit: int | None
    data: list[BatteryFlag]


class _Raw:
    """A flag before names are attached."""

    __slots__ = ("kind", "on", "code", "level", "enterprise_id", "counterpart_id", "message", "evidence")

    def __init__(
        self,
        kind: ChainFlagKind,
        on: date,
        code: str | None,
        level: Any,
        enterprise_id: int | None,
        counterpart_id: int | None,
        message: Message,
        evidence: dict[str, Any],
    ) -> None:
        self.kind = kind
        self.on = on
        self.code = code
        self.level = None if level is None else str(level)
        self.enterprise_id = enterprise_id
        self.counterpart_id = counterpart_id
        self.message = message
        self.evidence = evidence


class _Ctx:
    def __init__(self, session: Session, year: int | None, ids: Any, battery_ids: Any | None, as_of: date) -> None:
        self.session = session
        self.year = year
        self.ids = ids
        self.battery_ids = battery_ids
        self.as_of = as_of

    def only(self, battery: Any) -> ColumnElement[bool]:
        return true() if self.battery_ids is None else battery.id.in_(self.battery_ids)


def _late_reports(ctx: _Ctx) -> list[_Raw]:
    ev, bat = _alias(BatteryEvent), _alias(Battery)
    query = (
        sa_select(ev.type, ev.occurred_at, ev.reported_at, ev.reporter_id, ev.counterpart_id, bat.code, bat.level)
        .join(bat, bat.id == ev.battery_id)
        .where(
            ev.type.in_([t.value for t in DEADLINE_TYPES]),
            _in_year(ev.occurred_at, ctx.year),
            # No deadline is shorter than MIN_DEADLINE_DAYS working days, so nothing sooner can be late.
            days_between(ev.occurred_at, ev.reported_at) > MIN_DEADLINE_DAYS - 1,
            _unit(ev, bat),
            _touches(ctx.ids, ev.reporter_id),
            ctx.only(bat),
        )
    )
    rows = ctx.session.execute(query).all()
    roles = _roles(ctx.session, {r.reporter_id for r in rows})
    flags = []
    for r in rows:
        occurred, reported = stored_utc(r.occurred_at), stored_utc(r.reported_at)
        day, reported_day = local_day(occurred), local_day(reported)
        rule = deadline_for(E(r.type), roles.get(r.reporter_id, set()), day)
        if rule is None:
            continue
        due = due_date(day, rule)
        if reported_day <= due:
            continue
        late_by = working_days_between(due, reported_day)
        flags.append(
            _Raw(
                ChainFlagKind.late_report,
                day,
                r.code,
                r.level,
                r.reporter_id,
                r.counterpart_id,
                msg(
                    "battery.flag.late_report",
                    event=event_term(r.type),
                    on=day.isoformat(),
                    reported=reported_day.isoformat(),
                    late=late_by,
                    due=due.isoformat(),
                    days=rule.working_days,
                ),
                {
                    "event": str(r.type),
                    "occurred_at": occurred.isoformat(),
                    "reported_at": reported.isoformat(),
                    "due": due.isoformat(),
                    "working_days": rule.working_days,
                    "working_days_late": late_by,
                    "duty": rule.duty,
                    "rule": rule.rule,
                    # Counted over a year the holiday data does not cover: an estimate, said so.
                    "provisional": provisional(day, due, reported_day),
                },
            )
        )
    return flags


def _lost(ctx: _Ctx) -> list[_Raw]:
    ev, bat, c = _alias(BatteryEvent), _alias(Battery), _alias(BatteryEvent)
    collected = (
        sa_select(func.min(c.occurred_at))
        .where(c.battery_id == ev.battery_id, c.type == E.collected.value, c.occurred_at >= ev.occurred_at)
        .scalar_subquery()
    )
    retired = (
        sa_select(ev.occurred_at, ev.reporter_id, bat.code, bat.level, collected.label("collected_at"))
        .join(bat, bat.id == ev.battery_id)
        .where(
            ev.type == E.retired.value,
            _in_year(ev.occurred_at, ctx.year),
            _unit(ev, bat),
            _touches(ctx.ids, ev.reporter_id),
            ctx.only(bat),
        )
        # Materialised, so that the first collection is looked up once per retirement and then filtered on.
        .cte("retired")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    x = retired.c
    query = sa_select(retired).where(
        or_(x.collected_at.is_(None), days_between(x.occurred_at, x.collected_at) > COLLECTION_WINDOW.working_days - 1)
    )
    flags = []
    for r in ctx.session.execute(query).all():
        day = local_day(stored_utc(r.occurred_at))
        due = nth_working_day(day, COLLECTION_WINDOW.working_days)
        evidence: dict[str, Any] = {
            "retired_at": stored_utc(r.occurred_at).isoformat(),
            "due": due.isoformat(),
            "working_days": COLLECTION_WINDOW.working_days,
            "window": COLLECTION_WINDOW.source,
            "provisional": provisional(day, due),
        }
        if r.collected_at is None:
            if due >= ctx.as_of:
                continue  # still within the window
            message = msg("battery.flag.lost", on=day.isoformat(), due=due.isoformat())
            evidence["collected_at"] = None
        else:
            found = local_day(stored_utc(r.collected_at))
            if found <= due:
                continue
            late_by = working_days_between(due, found)
            message = msg(
                "battery.flag.lost_late",
                on=day.isoformat(),
                due=due.isoformat(),
                collected=found.isoformat(),
                days=(found - due).days,
            )
            evidence["collected_at"] = stored_utc(r.collected_at).isoformat()
            evidence["working_days_late"] = late_by
        flags.append(_Raw(ChainFlagKind.lost, day, r.code, r.level, r.reporter_id, None, message, evidence))
    return flags


def _role_flags() -> Any:
    """Per enterprise, whether it is a cascade user, a recycler, or part of the collection network (a subquery)."""
    link = _alias(EnterpriseRoleLink)

    def flag(*roles: EnterpriseRole) -> Any:
        return func.max(case((link.role.in_([r.value for r in roles]), 1), else_=0))

    return (
        sa_select(
            link.enterprise_id.label("id"),
            flag(EnterpriseRole.cascade_user).label("cascade"),
            flag(EnterpriseRole.recycler).label("recycler"),
            # Collection outlets and vehicle makers are the collection network itself; they need no listing.
            # Dismantlers take batteries in with the scrapped vehicles they hold (Art. 13 of the 2018 provisions).
            flag(EnterpriseRole.collection_outlet, EnterpriseRole.vehicle_maker, EnterpriseRole.dismantler).label(
                "network"
            ),
        )
        .group_by(link.enterprise_id)
        .subquery()
    )


def _unlisted(ctx: _Ctx) -> list[_Raw]:
    ev, bat, r, w = _alias(BatteryEvent), _alias(Battery), _alias(BatteryEvent), _alias(WhitelistEntry)
    receiver = case((ev.type == E.transferred.value, ev.counterpart_id), else_=ev.reporter_id)
    giver = case((ev.type == E.transferred.value, ev.reporter_id), else_=ev.counterpart_id)
    handovers = (
        sa_select(
            ev.type,
            ev.occurred_at,
            ev.battery_id,
            giver.label("giver"),
            receiver.label("receiver"),
            local_date(ev.occurred_at).label("day"),
            func.coalesce(ev.attributes["purpose"].as_string(), "").label("purpose"),
            bat.code,
            bat.level,
        )
        .join(bat, bat.id == ev.battery_id)
        .where(
            ev.type.in_([E.transferred.value, E.collected.value]),
            _in_year(ev.occurred_at, ctx.year),
            receiver.is_not(None),
            _unit(ev, bat),
            _touches(ctx.ids, ev.reporter_id, ev.counterpart_id),
            ctx.only(bat),
        )
        .subquery()
    )
    h = handovers.c
    roles = _role_flags()
    cascade, recycler = func.coalesce(roles.c.cascade, 0), func.coalesce(roles.c.recycler, 0)
    needed_kind = case(
        (h.purpose == WhitelistKind.cascade_use.value, WhitelistKind.cascade_use.value),
        (h.purpose == WhitelistKind.recycling.value, WhitelistKind.recycling.value),
        (and_(cascade == 1, recycler == 0), WhitelistKind.cascade_use.value),
        (and_(recycler == 1, cascade == 0), WhitelistKind.recycling.value),
        else_="any",
    )
    # Top-level EXISTS and NOT EXISTS, so that PostgreSQL plans them as semi- and anti-joins.
    query = (
        sa_select(
            h.type,
            h.occurred_at,
            h.giver,
            h.receiver,
            h.code,
            h.level,
            h.purpose,
            cascade.label("cascade_role"),
            recycler.label("recycler_role"),
        )
        .select_from(handovers)
        .outerjoin(roles, roles.c.id == h.receiver)
        .where(
            func.coalesce(roles.c.network, 0) == 0,
            exists(
                sa_select(literal(1)).where(
                    r.battery_id == h.battery_id, r.type == E.retired.value, r.occurred_at <= h.occurred_at
                )
            ),
            not_(
                exists(
                    sa_select(literal(1)).where(
                        w.enterprise_id == h.receiver,
                        or_(w.kind == needed_kind, needed_kind == "any"),
                        w.listed_on <= h.day,
                        or_(w.revoked_on.is_(None), w.revoked_on > h.day),
                    )
                )
            ),
        )
    )
    rows = ctx.session.execute(query).all()
    listings = _listings(ctx.session, {row.receiver for row in rows})
    flags = []
    for row in rows:
        on = local_day(stored_utc(row.occurred_at))
        if row.purpose in ("cascade_use", "recycling"):
            needed, why = row.purpose, msg("battery.needed_because.named")
        elif row.cascade_role and not row.recycler_role:
            needed, why = WhitelistKind.cascade_use.value, msg("battery.needed_because.cascade_user")
        elif row.recycler_role and not row.cascade_role:
            needed, why = WhitelistKind.recycling.value, msg("battery.needed_because.recycler")
        else:
            needed, why = "any", msg("battery.needed_because.unknown")
        entries = listings.get(row.receiver, [])
        message = msg(
            "battery.flag.unlisted_receiver",
            event=event_term(row.type),
            on=on.isoformat(),
            needed=Term(f"battery.whitelist.{needed}"),
            why=why,
        )
        flags.append(
            _Raw(
                ChainFlagKind.unlisted_receiver,
                on,
                row.code,
                row.level,
                row.giver if row.giver is not None else row.receiver,
                row.receiver,
                message,
                {
                    "event": str(row.type),
                    "occurred_at": stored_utc(row.occurred_at).isoformat(),
                    "receiver_id": row.receiver,
                    "needed": "cascade_use or recycling" if needed == "any" else needed,
                    "purpose": row.purpose or None,
                    "listings": entries,
                },
            )
        )
    return flags


def _recovery_conditions(rr: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(above input, below the thresholds of the edition in force) as conditions on a recovery report."""
    above = or_(
        rr.electrode_powder_kg > rr.input_mass_kg,
        *(getattr(rr, f"{m}_out_kg") > getattr(rr, f"{m}_in_kg") for m in METALS),
    )
    below_parts = []
    for edition in EDITIONS:
        mins = metal_thresholds(edition)
        if not mins:
            continue
        start, end = edition_bounds(edition)
        span = [rr.reported_on >= start] + ([rr.reported_on < end] if end else [])
        metals = [
            and_(getattr(rr, f"{m}_in_kg") > 0, getattr(rr, f"{m}_out_kg") < getattr(rr, f"{m}_in_kg") * share)
            for m, share in mins.items()
        ]
        below_parts.append(and_(*span, or_(*metals)))
    below = or_(*below_parts) if below_parts else literal(False)
    return above, below


def _report_rates(r: Any) -> dict[str, float | None]:
    return {
        m: (getattr(r, f"{m}_out_kg") / getattr(r, f"{m}_in_kg") if getattr(r, f"{m}_in_kg") else None) for m in METALS
    }


def _recovery_flags(ctx: _Ctx) -> list[_Raw]:
    rr, bat = _alias(RecoveryReport), _alias(Battery)
    above, below = _recovery_conditions(rr)
    query = (
        sa_select(rr, bat.code, bat.level)
        .outerjoin(bat, bat.id == rr.battery_id)
        .where(
            _report_year(rr, ctx.year),
            or_(above, below),
            _touches(ctx.ids, rr.recycler_id),
            true() if ctx.battery_ids is None else rr.battery_id.in_(ctx.battery_ids),
        )
    )
    flags = []
    for report, code, level in ctx.session.execute(query).all():
        edition = edition_in_force(report.reported_on)
        rates = _report_rates(report)
        base = {
            "report_id": report.id,
            "reported_on": report.reported_on.isoformat(),
            "edition_in_force": edition.name,
            "edition_stated": report.edition,
            "input_mass_kg": report.input_mass_kg,
            "electrode_powder_kg": report.electrode_powder_kg,
            "rates": rates,
            **{f"{m}_{end}_kg": getattr(report, f"{m}_{end}_kg") for m in METALS for end in ("in", "out")},
        }
        over = [m for m in METALS if getattr(report, f"{m}_out_kg") > getattr(report, f"{m}_in_kg")]
        if report.electrode_powder_kg > report.input_mass_kg:
            over.insert(0, "electrode_powder")
        if over:
            flags.append(
                _Raw(
                    ChainFlagKind.recovered_above_input,
                    report.reported_on,
                    code,
                    level,
                    report.recycler_id,
                    None,
                    msg(
                        "battery.flag.recovered_above_input",
                        report=report.id,
                        recovered=[Term(f"battery.material.{m}") for m in over],
                    ),
                    {**base, "above_input": over},
                )
            )
        mins = metal_thresholds(edition)
        short: dict[str, dict[str, float]] = {}
        for m, share in mins.items():
            rate = rates[m]
            if rate is not None and rate < share and m not in over:
                short[m] = {"rate": rate, "minimum": share}
        if short:
            listed = [
                msg("battery.metal_below", metal=Term(f"battery.material.{m}"), rate=v["rate"], minimum=v["minimum"])
                for m, v in short.items()
            ]
            flags.append(
                _Raw(
                    ChainFlagKind.below_threshold,
                    report.reported_on,
                    code,
                    level,
                    report.recycler_id,
                    None,
                    msg("battery.flag.below_threshold", report=report.id, edition=edition.name, metals=listed),
                    {**base, "below": short},
                )
            )
    return flags


def _report_year(rr: Any, year: int | None) -> ColumnElement[bool]:
    if year is None:
        return true()
    return and_(rr.reported_on >= date(year, 1, 1), rr.reported_on <= date(year, 12, 31))


def _vanished(ctx: _Ctx) -> list[_Raw]:
    ev, bat, child, later = _alias(BatteryEvent), _alias(Battery), _alias(Battery), _alias(BatteryEvent)
    query = (
        sa_select(ev.id, ev.occurred_at, ev.reporter_id, bat.code, bat.level, child.code.label("child"))
        .join(bat, bat.id == ev.battery_id)
        .join(child, child.parent_id == ev.battery_id)
        .where(
            ev.type == E.dismantled.value,
            _in_year(ev.occurred_at, ctx.year),
            _unit(ev, bat),
            not_(exists(sa_select(literal(1)).where(later.battery_id == child.id, later.occurred_at > ev.occurred_at))),
            _touches(ctx.ids, ev.reporter_id),
            ctx.only(bat),
        )
        .order_by(ev.id, child.code)
    )
    grouped: dict[int, list[Any]] = defaultdict(list)
    for r in ctx.session.execute(query).all():
        grouped[r.id].append(r)
    flags = []
    for rows in grouped.values():
        first = rows[0]
        day = local_day(stored_utc(first.occurred_at))
        due = nth_working_day(day, CHILD_FOLLOW_UP_WINDOW.working_days)
        if due >= ctx.as_of:
            continue
        children = [r.child for r in rows]
        flags.append(
            _Raw(
                ChainFlagKind.vanished_children,
                day,
                first.code,
                first.level,
                first.reporter_id,
                None,
                msg(
                    "battery.flag.vanished_children",
                    on=day.isoformat(),
                    count=len(children),
                    children=_child_word(first.level),
                    due=due.isoformat(),
                ),
                {
                    "dismantled_at": stored_utc(first.occurred_at).isoformat(),
                    "due": due.isoformat(),
                    "window": CHILD_FOLLOW_UP_WINDOW.source,
                    "vanished": len(children),
                    "children": children[:100],
                },
            )
        )
    return flags


def _child_word(level: Any) -> Term:
    return Term("battery.children.cells" if str(level) == "module" else "battery.children.modules_or_cells")


def _code_reused(ctx: _Ctx) -> list[_Raw]:
    bat, other = _alias(Battery), _alias(Battery)
    flags = []
    # A code carried now by one battery and kept as the original code of another, or one original code kept twice.
    checks = (
        (and_(other.original_code == bat.code, other.id != bat.id), "battery.flag.code_reused"),
        (
            and_(bat.original_code.is_not(None), other.original_code == bat.original_code, other.id > bat.id),
            "battery.flag.original_code_reused",
        ),
    )
    for condition, finding in checks:
        query = (
            sa_select(
                bat.code, bat.level, bat.holder_id, bat.production_date, bat.original_code, other.code.label("other")
            )
            .join(other, condition)
            .where(
                _report_year_date(bat.production_date, ctx.year),
                _touches(ctx.ids, bat.holder_id, other.holder_id),
                ctx.only(bat),
            )
        )
        for r in ctx.session.execute(query).all():
            flags.append(
                _Raw(
                    ChainFlagKind.code_reused,
                    r.production_date,
                    r.code,
                    r.level,
                    r.holder_id,
                    None,
                    msg(finding, battery=r.code, original=r.original_code, other=r.other),
                    {"code": r.code, "original_code": r.original_code, "other_battery": r.other},
                )
            )
    return flags


def _report_year_date(day: Any, year: int | None) -> ColumnElement[bool]:
    if year is None:
        return true()
    return and_(day >= date(year, 1, 1), day <= date(year, 12, 31))


def _two_parents(ctx: _Ctx) -> list[_Raw]:
    ev, bat, parent, first = _alias(BatteryEvent), _alias(Battery), _alias(Battery), _alias(Battery)
    named = ev.attributes["parent_code"].as_string()
    query = (
        sa_select(
            ev.occurred_at,
            bat.code,
            bat.level,
            bat.holder_id,
            parent.code.label("parent"),
            first.code.label("first"),
            first.state.label("first_state"),
        )
        .join(bat, bat.id == ev.battery_id)
        .join(parent, parent.id == bat.parent_id)
        .join(first, first.code == named)
        .where(
            ev.type == E.produced.value,
            _in_year(ev.occurred_at, ctx.year),
            named.is_not(None),
            parent.id != first.id,
            first.state.not_in([BatteryState.dismantled.value, BatteryState.recovered.value]),
            _touches(ctx.ids, bat.holder_id),
            ctx.only(bat),
        )
    )
    flags = []
    for r in ctx.session.execute(query).all():
        day = local_day(stored_utc(r.occurred_at))
        flags.append(
            _Raw(
                ChainFlagKind.two_parents,
                day,
                r.code,
                r.level,
                r.holder_id,
                None,
                msg(
                    "battery.flag.two_parents",
                    first=r.first,
                    current=r.parent,
                    state=state_term(r.first_state),
                ),
                {
                    "registered_parent": r.first,
                    "current_parent": r.parent,
                    "registered_parent_state": str(r.first_state),
                },
            )
        )
    return flags


KINDS: dict[ChainFlagKind, Any] = {
    ChainFlagKind.lost: _lost,
    ChainFlagKind.unlisted_receiver: _unlisted,
    ChainFlagKind.late_report: _late_reports,
    ChainFlagKind.below_threshold: _recovery_flags,
    ChainFlagKind.recovered_above_input: _recovery_flags,
    ChainFlagKind.vanished_children: _vanished,
    ChainFlagKind.code_reused: _code_reused,
    ChainFlagKind.two_parents: _two_parents,
}


def _roles(session: Session, ids: Iterable[int]) -> dict[int, set[str]]:
    wanted = sorted({i for i in ids if i is not None})
    found: dict[int, set[str]] = defaultdict(set)
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            sa_select(col(EnterpriseRoleLink.enterprise_id), col(EnterpriseRoleLink.role)).where(
                col(EnterpriseRoleLink.enterprise_id).in_(wanted[start : start + 500])
            )
        ).all()
        for enterprise_id, role in rows:
            found[enterprise_id].add(str(role))
    return found


def _listings(session: Session, ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    wanted = sorted({i for i in ids if i is not None})
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not wanted:
        return found
    rows = session.execute(
        sa_select(
            col(WhitelistEntry.enterprise_id),
            col(WhitelistEntry.kind),
            col(WhitelistEntry.batch),
            col(WhitelistEntry.listed_on),
            col(WhitelistEntry.revoked_on),
        ).where(col(WhitelistEntry.enterprise_id).in_(wanted))
    ).all()
    for r in rows:
        found[r.enterprise_id].append(
            {
                "kind": str(r.kind),
                "batch": r.batch,
                "listed_on": r.listed_on.isoformat(),
                "revoked_on": r.revoked_on.isoformat() if r.revoked_on else None,
            }
        )
    return found


def parse_kinds(kinds: str | Sequence[str] | None) -> list[ChainFlagKind]:
    """Flag kinds from a comma-separated list (all when none is given)."""
    if not kinds:
        return list(ChainFlagKind)
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    out = []
    for item in (k.strip() for k in items):
        if not item:
            continue
        if item not in ChainFlagKind.__members__:
            raise InvalidInput(
                "battery.flag_kind_unknown",
                field="kind",
                column=Term("field.kind"),
                value=item,
                allowed=", ".join(ChainFlagKind),
            )
        out.append(ChainFlagKind(item))
    return out or list(ChainFlagKind)


def chain_flags(
    *,
    session: Session,
    principal: Principal,
    now: datetime,
    year: int | None = None,
    region: str | None = None,
    kinds: str | Sequence[str] | None = None,
    code: str | None = None,
    codes: Sequence[str] | None = None,
    enterprise_id: int | None = None,
    as_of: date | None = None,
    offset: int = 0,
    limit: int | None = 200,
) -> FlagReport:
    """The chain flags of a year (all years when none) in the principal's scope, with counts and evidence.

    `code` narrows to one battery (not found when unreadable); `codes` to several at once, in one pass of each query
    (a battery and the module and pack it sits in, say), leaving out those the principal may not read.
    """
    wanted = parse_kinds(kinds)
    ids = scope_ids(session, principal, region)
    if enterprise_id is not None:
        only = sa_select(col(Enterprise.id)).where(col(Enterprise.id) == enterprise_id)
        ids = only if ids is None else only.where(col(Enterprise.id).in_(ids))
    battery_ids = None
    if code:
        from flows.battery.chain import find_battery

        battery = find_battery(session=session, principal=principal, code=normalise_battery_code(code))
        battery_ids = [battery.id]
    if codes is not None:
        from flows.battery.chain import find_battery

        battery_ids = battery_ids or []
        for one in codes:
            try:
                found = find_battery(session=session, principal=principal, code=normalise_battery_code(one))
            except NotFound:
                continue  # a battery above it that the principal may not see
            battery_ids.append(found.id)
        # None of them readable: an id no battery has, so that the queries narrow to nothing rather than to nobody.
        battery_ids = battery_ids or [-1]
    _no_jit(session)
    horizon = as_of or data_horizon(session, now)
    ctx = _Ctx(session, year, ids, battery_ids, horizon)
    raw: list[_Raw] = []
    done: set[Any] = set()
    for kind in wanted:
        fn = KINDS[kind]
        if fn in done:
            continue
        done.add(fn)
        raw.extend(f for f in fn(ctx) if f.kind in wanted)
    raw.sort(key=lambda f: (list(ChainFlagKind).index(f.kind), f.on, f.code or ""))
    names = Names(session, [f.enterprise_id for f in raw] + [f.counterpart_id for f in raw], [])
    flags = [
        BatteryFlag(
            kind=f.kind,
            year=f.on.year,
            on=f.on,
            code=f.code,
            level=f.level,
            enterprise=names.party(f.enterprise_id),
            counterpart=names.party(f.counterpart_id),
            region_adcode=_prefecture(names.party(f.enterprise_id)),
            message=f.message.render("en"),
            message_code=f.message.code,
            params=dict(f.message.params),
            evidence=f.evidence,
        )
        for f in raw
    ]
    counts = Counter(f.kind.value for f in flags)
    page = flags[offset : offset + limit if limit is not None else None]
    return FlagReport(
        year=year,
        region=region,
        as_of=horizon,
        kinds=[k.value for k in wanted],
        counts={k.value: counts.get(k.value, 0) for k in wanted},
        by_enterprise=_count_by(
            flags, lambda f: (str(f.enterprise.id), f.enterprise.name_zh) if f.enterprise else None
        ),
        by_region=_count_by(flags, lambda f: (f.region_adcode, None) if f.region_adcode else None, session),
        windows={
            w.key: {"working_days": w.working_days, "source": w.source}
            for w in (COLLECTION_WINDOW, CHILD_FOLLOW_UP_WINDOW)
        },
        count=len(flags),
        offset=offset,
        limit=limit,
        data=page,
    )


def _prefecture(party: Party | None) -> str | None:
    return party.prefecture_adcode if party else None


def _count_by(flags: Sequence[BatteryFlag], key: Any, session: Session | None = None) -> list[CountRow]:
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    labels: dict[str, str | None] = {}
    for f in flags:
        k = key(f)
        if k is None:
            continue
        totals[k[0]][f.kind.value] += 1
        labels[k[0]] = k[1]
    if session is not None and totals:
        labels.update(
            dict(
                session.execute(
                    sa_select(col(Region.adcode), col(Region.name_zh)).where(col(Region.adcode).in_(sorted(totals)))
                ).all()
            )
        )
    rows = [
        CountRow(key=k, name_zh=labels.get(k), count=sum(c.values()), kinds=dict(sorted(c.items())))
        for k, c in totals.items()
    ]
    return sorted(rows, key=lambda r: (-r.count, r.key))


# ---------------------------------------------------------------------------------------------------------------
# Recovery compliance


class EditionRef(BaseModel):
    name: str
    title: str
    in_force_from: date | None
    thresholds: dict[str, float] | None
    note: str


class RecyclerCompliance(BaseModel):
    """One recycler's recovery reports of a year under one edition, against its thresholds."""

    recycler: Party | None
    edition: str
    reports: int
    compliant: int | None  # None when the edition's thresholds are not known
    below_threshold: int | None
    above_input: int
    input_mass_kg: float
    rates: dict[str, float | None]  # recovered / contained, over all the reports
    thresholds: dict[str, float] | None
    status: str


class ComplianceReport(BaseModel):
    year: int
    region: str | None
    editions: list[EditionRef]
    data: list[RecyclerCompliance]


def _edition_ref(edition: Edition) -> EditionRef:
    return EditionRef(
        name=edition.name,
        title=edition.title,
        in_force_from=None if edition.in_force_from == date.min else edition.in_force_from,
        thresholds=metal_thresholds(edition) if edition.known else None,
        note=edition.note,
    )


def recovery_compliance(
    *, session: Session, principal: Principal, year: int, region: str | None = None
) -> ComplianceReport:
    """Each recycler's recovery reports of a year against the thresholds of the edition in force on each report."""
    _no_jit(session)
    ids = scope_ids(session, principal, region)
    rr = _alias(RecoveryReport)
    above, below = _recovery_conditions(rr)
    whens = []
    for edition in EDITIONS:
        start, end = edition_bounds(edition)
        whens.append((and_(rr.reported_on >= start, *([rr.reported_on < end] if end else [])), literal(edition.name)))
    bucket = case(*whens, else_=literal(EDITIONS[-1].name))
    sums = [func.sum(getattr(rr, f"{m}_{end}_kg")).label(f"{m}_{end}") for m in METALS for end in ("in", "out")]
    query = (
        sa_select(
            rr.recycler_id,
            bucket.label("edition"),
            func.count().label("reports"),
            func.sum(case((below, 1), else_=0)).label("below"),
            func.sum(case((above, 1), else_=0)).label("above"),
            func.sum(case((or_(below, above), 1), else_=0)).label("failing"),
            func.sum(rr.input_mass_kg).label("input_mass"),
            *sums,
        )
        .where(_report_year(rr, year), _touches(ids, rr.recycler_id))
        .group_by(rr.recycler_id, bucket)
    )
    rows = session.execute(query).all()
    names = Names(session, [r.recycler_id for r in rows], [])
    editions = {e.name: e for e in EDITIONS}
    data = []
    for r in rows:
        edition = editions[r.edition]
        mins = metal_thresholds(edition) if edition.known else None
        rates = {m: (getattr(r, f"{m}_out") / getattr(r, f"{m}_in")) if getattr(r, f"{m}_in") else None for m in METALS}
        above_n = int(r.above or 0)
        below_n = int(r.below or 0) if edition.known else None
        if not edition.known:
            status = edition.note
        elif below_n or above_n:
            status = "not compliant"
        else:
            status = "compliant"
        data.append(
            RecyclerCompliance(
                recycler=names.party(r.recycler_id),
                edition=edition.name,
                reports=int(r.reports),
                compliant=None if below_n is None else int(r.reports) - int(r.failing or 0),
                below_threshold=below_n,
                above_input=above_n,
                input_mass_kg=float(r.input_mass or 0.0),
                rates=rates,
                thresholds=mins,
                status=status,
            )
        )
    data.sort(key=lambda d: (d.recycler.name_zh if d.recycler else "", d.edition))
    return ComplianceReport(year=year, region=region, editions=[_edition_ref(e) for e in EDITIONS], data=data)


# ---------------------------------------------------------------------------------------------------------------
# Share of retired batteries reaching whitelisted enterprises


class ShareRow(BaseModel):
    """Retired batteries of a prefecture and year, and how many of them reached a whitelisted enterprise."""

    prefecture_adcode: str
    name_zh: str | None
    retired: int
    retired_kwh: float
    reached_recycler: int
    reached_recycler_kwh: float
    reached_whitelisted: int  # a listed recycler or a listed cascade-use enterprise
    reached_whitelisted_kwh: float
    share_recycler: float | None
    share_recycler_kwh: float | None
    share_whitelisted: float | None
    share_whitelisted_kwh: float | None


class ShareReport(BaseModel):
    year: int
    region: str | None
    total: ShareRow
    data: list[ShareRow]


def _reached(battery_id: Any, since: Any, kinds: Sequence[WhitelistKind]) -> ColumnElement[bool]:
    """Some event from `since` on put the battery in the hands of an enterprise listed, that day, for a kind."""
    x = _alias(BatteryEvent)
    custodian = case((x.type == E.transferred.value, x.counterpart_id), else_=x.reporter_id)
    day = local_date(x.occurred_at)
    return exists(
        sa_select(literal(1)).where(
            x.battery_id == battery_id, x.occurred_at >= since, or_(*(_listed(custodian, k, day) for k in kinds))
        )
    )


def _share(n: float, d: float) -> float | None:
    return n / d if d else None


def retired_share(*, session: Session, principal: Principal, year: int, region: str | None = None) -> ShareReport:
    """Per prefecture, the retired batteries of a year (by count and kWh) that reached a whitelisted recycler.

    A battery counts once a year, at its first retirement that year, where that retirement was reported; a module
    or cell counts on its own only once its pack has been opened (inside an intact pack, the pack counts).
    """
    _no_jit(session)
    ids = scope_ids(session, principal, region)
    ev, bat, rep = _alias(BatteryEvent), _alias(Battery), _alias(Enterprise)
    first = (
        sa_select(ev.battery_id.label("battery_id"), func.min(ev.occurred_at).label("at"))
        .join(bat, bat.id == ev.battery_id)
        .where(ev.type == E.retired.value, _in_year(ev.occurred_at, year), _unit(ev, bat))
        .group_by(ev.battery_id)
        .subquery()
    )
    r = _alias(BatteryEvent)
    prefecture = func.coalesce(func.substr(r.region_adcode, 1, 4), func.substr(rep.prefecture_adcode, 1, 4)) + "00"
    kwh = func.coalesce(bat.rated_kwh, 0.0)
    recycler = _reached(first.c.battery_id, first.c.at, [WhitelistKind.recycling])
    listed = _reached(first.c.battery_id, first.c.at, [WhitelistKind.recycling, WhitelistKind.cascade_use])
    query = (
        sa_select(
            prefecture.label("prefecture"),
            func.count().label("retired"),
            func.sum(kwh).label("retired_kwh"),
            func.sum(case((recycler, 1), else_=0)).label("recycler"),
            func.sum(case((recycler, kwh), else_=0.0)).label("recycler_kwh"),
            func.sum(case((listed, 1), else_=0)).label("listed"),
            func.sum(case((listed, kwh), else_=0.0)).label("listed_kwh"),
        )
        .select_from(first)
        .join(r, and_(r.battery_id == first.c.battery_id, r.occurred_at == first.c.at, r.type == E.retired.value))
        .join(bat, bat.id == first.c.battery_id)
        .join(rep, rep.id == r.reporter_id)
        .where(_touches(ids, r.reporter_id))
        .group_by(prefecture)
        .order_by(prefecture)
    )
    rows = session.execute(query).all()
    names = dict(
        session.execute(
            sa_select(col(Region.adcode), col(Region.name_zh)).where(
                col(Region.adcode).in_([x.prefecture for x in rows])
            )
        ).all()
    )
    data = [
        _share_row(
            x.prefecture,
            names.get(x.prefecture),
            x.retired,
            x.retired_kwh,
            x.recycler,
            x.recycler_kwh,
            x.listed,
            x.listed_kwh,
        )
        for x in rows
    ]
    total = _share_row(
        region or "all",
        _region_name(session, region) if region else None,
        sum(d.retired for d in data),
        sum(d.retired_kwh for d in data),
        sum(d.reached_recycler for d in data),
        sum(d.reached_recycler_kwh for d in data),
        sum(d.reached_whitelisted for d in data),
        sum(d.reached_whitelisted_kwh for d in data),
    )
    return ShareReport(year=year, region=region, total=total, data=data)


def _share_row(key: str, name: str | None, n: Any, kwh: Any, rn: Any, rkwh: Any, ln: Any, lkwh: Any) -> ShareRow:
    n, kwh, rn, rkwh, ln, lkwh = (
        int(n or 0),
        float(kwh or 0),
        int(rn or 0),
        float(rkwh or 0),
        int(ln or 0),
        float(lkwh or 0),
    )
    return ShareRow(
        prefecture_adcode=key,
        name_zh=name,
        retired=n,
        retired_kwh=round(kwh, 3),
        reached_recycler=rn,
        reached_recycler_kwh=round(rkwh, 3),
        reached_whitelisted=ln,
        reached_whitelisted_kwh=round(lkwh, 3),
        share_recycler=_share(rn, n),
        share_recycler_kwh=_share(rkwh, kwh),
        share_whitelisted=_share(ln, n),
        share_whitelisted_kwh=_share(lkwh, kwh),
    )
