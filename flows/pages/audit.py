"""The audit workspace of bureau auditors: the drill-down from province to batch, the rows behind every figure,
the flags queue, the locks and the corrections, as the pages show them.

Every figure comes from flows.waste.rates (the official formula, the bottom-up manifest figure), from
flows.waste.flags, or from one SQL aggregate over the same condition, so that a figure, the rows listed behind it
and the API agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, or_, type_coerce
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.locks import list_locks
from flows.access.scope import Scope, ScopeRef, require_role, resolve_scope
from flows.kernel.adcode import lineage, prefecture_of, region_prefix, within
from flows.kernel.clock import CST
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from flows.pages.map import rate_class
from flows.waste import late_filings, numbers, rates
from flows.waste.corrections import decide_correction, list_corrections
from flows.waste.flags import Flag, FlagKind, list_flags
from flows.waste.rates import RateBy, RateReport, RateRow
from flows.waste.targets import resolve_category_set
from models import CorrectionRequest, Declaration, Enterprise, Manifest, ManifestDraw, Park, Region, User
from models.enums import Placement, RegionLevel, UserRole
from models.quantity import Tonnes, TonnesKg

DRAWS = ManifestDraw.__table__  # type: ignore[attr-defined]

ChildKind = Literal["prefecture", "county", "park", "enterprise", "category"]
RowsKind = Literal["declarations", "batches"]
ROWS_KINDS: tuple[str, ...] = ("declarations", "batches")
OUTSIDE = "none"  # the key of a region's enterprises that lie in no park

# The tables of children each level shows: how the rates are broken down, and what each row is.
CHILD_TABLES: dict[str, tuple[tuple[RateBy, ChildKind], ...]] = {
    "province": ((RateBy.region, "prefecture"),),
    "prefecture": ((RateBy.park, "park"), (RateBy.region, "county")),
    "county": ((RateBy.enterprise, "enterprise"),),
    "park": ((RateBy.enterprise, "enterprise"),),
    "enterprise": ((RateBy.category, "category"),),
}


def require_auditor(principal: Principal) -> None:
    """The audit workspace is for bureau auditors and administrators."""
    require_role(principal, UserRole.bureau)


# ---------------------------------------------------------------------------------------------------------------
# Scopes


@dataclass(frozen=True)
class ScopeArgs:
    """A scope as pages and links name it: at most one of region, park and enterprise, and optional narrowings."""

    region: str | None = None
    park: int | None = None
    enterprise: int | None = None
    outside_parks: bool = False  # with a region: only its enterprises that lie in no park
    category: str | None = None  # only this category (one of the scope's set)

    def params(self) -> dict[str, str]:
        """The query parameters that name this scope."""
        out: dict[str, str] = {}
        if self.region:
            out["region"] = self.region
        if self.park is not None:
            out["park"] = str(self.park)
        if self.enterprise is not None:
            out["enterprise"] = str(self.enterprise)
        if self.outside_parks:
            out["outside_parks"] = "1"
        if self.category:
            out["category"] = self.category
        return out


def resolve(*, session: Session, principal: Principal, args: ScopeArgs) -> Scope:
    """The authorised scope named by args (the principal's own when none is named); auditors only."""
    require_auditor(principal)
    scope = resolve_scope(
        session=session, principal=principal, region=args.region, park=args.park, enterprise=args.enterprise
    )
    if not args.outside_parks:
        return scope
    if scope.ref.kind not in ("province", "prefecture", "county"):
        raise InvalidInput("pages.audit.outside_parks_region_only", field="outside_parks")
    narrowed = and_(scope.condition, col(Enterprise.park_id).is_(None))
    return Scope(ref=scope.ref, region_adcode=scope.region_adcode, condition=narrowed)


def args_of(ref: ScopeRef) -> ScopeArgs:
    """The arguments that name a resolved scope."""
    match ref.kind:
        case "park":
            return ScopeArgs(park=int(ref.key))
        case "enterprise":
            return ScopeArgs(enterprise=int(ref.key))
    return ScopeArgs(region=ref.key)


def category_codes(
    *, session: Session, scope: Scope, year: int, categories: Sequence[str] | None, category: str | None
) -> list[str]:
    """The categories a figure counts: as given (a link carries its figure's set), else the scope's default set."""
    cats, _ = resolve_category_set(session=session, region_adcode=scope.region_adcode, year=year, categories=categories)
    if category is None:
        return list(cats.codes)
    if category not in cats.codes:
        raise InvalidInput(
            "pages.audit.category_not_in_set", field="category", category=category, codes=", ".join(cats.codes)
        )
    return [category]


def reference_target(report: RateReport) -> tuple[float, int] | None:
    """The target a year's rate is held against, and its year: the path's value that year, else the next target."""
    if report.target is not None:
        return report.target, report.year
    if report.next_target is not None:
        return report.next_target.value, report.next_target.year
    return None


def standing(rate: float | None, reference: tuple[float, int] | None) -> str:
    """How a rate stands against its reference target, in the classes of the map (flows.pages.map.rate_class)."""
    return rate_class(rate, reference[0] if reference else None).value


# ---------------------------------------------------------------------------------------------------------------
# Disposal and storage, from the same declarations as the rate


@dataclass(frozen=True)
class Extras:
    """Disposed (of which from prior-year stock), stored and dumped tonnes."""

    disposed_t: Tonnes = Decimal(0)
    disposed_prior_t: Tonnes = Decimal(0)
    stored_t: Tonnes = Decimal(0)
    dumped_t: Tonnes = Decimal(0)


def declared_extras(
    session: Session, condition: ColumnElement[bool], codes: Sequence[str], year: int, group: Sequence[Any] = ()
) -> dict[tuple[Any, ...], Extras]:
    """Disposal, storage and dumping per group (the empty tuple when ungrouped), in one GROUP BY."""
    query = (
        sa_select(
            *group,
            func.coalesce(func.sum(col(Declaration.disposed_t)), 0.0),
            func.coalesce(func.sum(col(Declaration.disposed_prior_t)), 0.0),
            func.coalesce(func.sum(col(Declaration.stored_t)), 0.0),
            func.coalesce(func.sum(col(Declaration.dumped_t)), 0.0),
        )
        .select_from(Declaration)
        .join(Enterprise, col(Enterprise.id) == col(Declaration.enterprise_id))
        .where(col(Declaration.category_code).in_(list(codes)), col(Declaration.year) == year, condition)
    )
    if group:
        query = query.group_by(*group)
    width = len(group)
    return {tuple(row)[:width]: Extras(*(Decimal(v) for v in tuple(row)[width:])) for row in session.execute(query)}


# ---------------------------------------------------------------------------------------------------------------
# The drill-down


@dataclass
class AuditRow:
    """One line of the drill-down: its rate figures, disposal and storage, and the open flags that concern it."""

    kind: str  # a ChildKind, or the scope's own kind for the total
    key: str | None
    name_zh: str | None
    name_en: str | None
    figures: RateRow
    extras: Extras
    flags: int
    scope: ScopeArgs | None  # what its figures cover (rows pages and flags queue take it); None: no such scope
    drill: ScopeArgs | None = None  # the level below, when there is one
    # An intermediary's tonnes of the year's first manifests that it still holds: neither utilised nor its own.
    held_t: Tonnes = Decimal(0)


@dataclass
class ChildTable:
    """The children of a scope of one kind (the prefectures, the parks, the counties, ...)."""

    by: RateBy
    kind: ChildKind
    rows: list[AuditRow]


@dataclass(frozen=True)
class Crumb:
    """A step of the path from the auditor's own scope down to the current one."""

    kind: str
    key: str
    name_zh: str | None
    name_en: str | None
    args: ScopeArgs


@dataclass
class BatchLine:
    """A manifest of an enterprise in a year, as the batch level of the drill-down lists it."""

    id: int
    number: str
    direction: Literal["sent", "received"]
    counterpart_id: int
    counterpart_zh: str | None
    counterpart_en: str | None
    category_code: str
    route: str
    status: str
    weight_dispatched_t: Tonnes
    weight_received_t: Tonnes | None
    counts: bool  # part of the enterprise's bottom-up figure
    flags: list[str] = field(default_factory=list)  # kinds of the open flags on this batch
    # From the allocation (flows/waste/chains.py): of a batch sent, its tonnes that ended utilised wherever the chain
    # took them (its part of the bottom-up figure); of a lot received by an intermediary, what it still holds and what
    # was drawn from it and sent on.
    allocated_t: Tonnes = Decimal(0)
    held_t: Tonnes = Decimal(0)
    forwarded_t: Tonnes = Decimal(0)


@dataclass
class BatchPage:
    """A page of an enterprise's batches of a year."""

    count: int
    offset: int
    limit: int
    rows: list[BatchLine]


@dataclass
class LockLine:
    region_adcode: str
    region_zh: str
    region_en: str | None
    year: int
    locked_by: str | None
    locked_at: datetime
    can_unlock: bool


@dataclass
class DrillDown:
    """Everything the drill-down page shows for one scope and year."""

    year: int
    scope: ScopeRef
    args: ScopeArgs
    report: RateReport
    total: AuditRow
    crumbs: list[Crumb]
    tables: list[ChildTable]
    flag_counts: dict[str, int]
    locks: list[LockLine]  # the locks that cover this scope in this year
    flags: list[Flag] = field(default_factory=list)  # every open flag of the scope and year
    batches: BatchPage | None = None

    @property
    def level(self) -> str:
        return self.scope.kind


def _places(
    session: Session, ids: Iterable[int], condition: ColumnElement[bool]
) -> dict[int, tuple[str | None, str | None, int | None]]:
    """Prefecture, county and park of the given enterprises that lie in the scope (the other ends are left out)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = sa_select(
        col(Enterprise.id), col(Enterprise.prefecture_adcode), col(Enterprise.county_adcode), col(Enterprise.park_id)
    ).where(col(Enterprise.id).in_(wanted), condition)
    return {row[0]: (row[1], row[2], row[3]) for row in session.execute(query)}


def flag_keys(
    kind: ChildKind, places: dict[int, tuple[str | None, str | None, int | None]]
) -> Callable[[Flag], set[str]]:
    """For a kind of children: which children a flag concerns (through its enterprises, category or subject)."""
    subject_kind = {"prefecture": "prefecture", "county": "county", "park": "park"}.get(kind)

    def keys(flag: Flag) -> set[str]:
        if flag.kind is FlagKind.scope_rate_above_100:
            what, _, key = flag.subject.partition("/")
            return {key} if what == subject_kind else set()
        if kind == "category":
            category = flag.evidence.get("category")
            return {str(category)} if category else set()
        found: set[str] = set()
        for enterprise_id in flag.enterprise_ids:
            if enterprise_id not in places:
                continue  # the other end of a batch, outside the scope
            prefecture, county, park = places[enterprise_id]
            value: Any = {"prefecture": prefecture, "county": county, "park": OUTSIDE if park is None else park}.get(
                kind, enterprise_id
            )
            if value is not None:
                found.add(str(value))
        return found

    return keys


def _child_args(kind: ChildKind, key: str | None, parent: ScopeArgs) -> tuple[ScopeArgs | None, ScopeArgs | None]:
    """The scope a child's figures cover, and where its name leads."""
    match kind:
        case "prefecture" | "county":
            # Enterprises placed in no division of this level group under None: a remainder, not a scope.
            here = ScopeArgs(region=key) if key else None
            return here, here
        case "park":
            if key is None:
                outside = ScopeArgs(region=parent.region, outside_parks=True)
                return outside, None
            here = ScopeArgs(park=int(key))
            return here, here
        case "enterprise":
            here = ScopeArgs(enterprise=int(key or 0))
            return here, here
    return ScopeArgs(enterprise=parent.enterprise, category=key), None


def _rows_of(
    kind: ChildKind,
    rows: Sequence[RateRow],
    extras: dict[tuple[Any, ...], Extras],
    counts: dict[str, int],
    parent: ScopeArgs,
) -> list[AuditRow]:
    out = []
    for row in rows:
        key = row.key
        if kind == "category" and row.declarations == 0 and row.manifest_utilised_t == 0:
            continue  # a category of the set this enterprise neither declared nor shipped
        if kind == "park" and key is None:
            row = row.model_copy(update={"key": OUTSIDE})
        here, drill = _child_args(kind, key, parent)
        out.append(
            AuditRow(
                kind=kind,
                key=row.key,
                name_zh=row.name_zh,
                name_en=row.name_en,
                figures=row,
                extras=extras.get((key if kind == "category" or key is None else _typed(kind, key),), Extras()),
                flags=counts.get(row.key or "", 0),
                scope=here,
                drill=drill,
            )
        )
    return out


def _typed(kind: ChildKind, key: str) -> Any:
    # Park and enterprise ids group as integers, adcodes and category codes as text.
    return int(key) if kind in ("park", "enterprise") else key


def _group_column(kind: ChildKind) -> Any:
    return {
        "prefecture": col(Enterprise.prefecture_adcode),
        "county": col(Enterprise.county_adcode),
        "park": col(Enterprise.park_id),
        "enterprise": col(Enterprise.id),
        "category": col(Declaration.category_code),
    }[kind]


def _region_names(session: Session, adcodes: Iterable[str]) -> dict[str, tuple[str, str | None, str]]:
    wanted = sorted({a for a in adcodes if a})
    if not wanted:
        return {}
    query = sa_select(col(Region.adcode), col(Region.name_zh), col(Region.name_en), col(Region.level)).where(
        col(Region.adcode).in_(wanted)
    )
    return {row[0]: (row[1], row[2], str(row[3])) for row in session.execute(query)}


def _ancestry(adcode: str) -> list[str]:
    """The province, prefecture and county adcodes of a region, down to itself."""
    return lineage(adcode)[::-1]


def breadcrumbs(*, session: Session, principal: Principal, scope: ScopeRef) -> list[Crumb]:
    """The path from the auditor's own scope down to this one (higher levels would be refused)."""
    region: str | None = None
    tail: list[Crumb] = []
    if scope.kind == "enterprise":
        row = session.execute(
            sa_select(
                col(Enterprise.prefecture_adcode),
                col(Enterprise.county_adcode),
                col(Enterprise.park_id),
                col(Park.name_zh),
                col(Park.name_en),
            )
            .select_from(Enterprise)
            .outerjoin(Park, col(Park.id) == col(Enterprise.park_id))
            .where(col(Enterprise.id) == int(scope.key))
        ).one()
        tail.append(Crumb("enterprise", scope.key, scope.name_zh, scope.name_en, ScopeArgs(enterprise=int(scope.key))))
        if row.park_id is not None:
            tail.insert(0, Crumb("park", str(row.park_id), row.name_zh, row.name_en, ScopeArgs(park=row.park_id)))
            region = row.prefecture_adcode
        else:
            region = row.county_adcode or row.prefecture_adcode
    elif scope.kind == "park":
        park_region = session.execute(sa_select(col(Park.region_adcode)).where(col(Park.id) == int(scope.key))).scalar()
        region = prefecture_of(park_region) if park_region else None
        tail.append(Crumb("park", scope.key, scope.name_zh, scope.name_en, ScopeArgs(park=int(scope.key))))
    else:
        region = scope.key
    chain = _ancestry(region) if region else []
    if principal.role is UserRole.bureau and principal.scope_adcode:
        mine = region_prefix(principal.scope_adcode)
        chain = [a for a in chain if a.startswith(mine)]
    names = _region_names(session, chain)
    crumbs = [Crumb(names[a][2], a, names[a][0], names[a][1], ScopeArgs(region=a)) for a in chain if a in names]
    return crumbs + tail


def covering_locks(*, session: Session, principal: Principal, scope: Scope, year: int) -> list[LockLine]:
    """The locks of this year on the scope's region or a region above it (they close its data)."""
    region = scope.region_adcode or ""
    return [
        lock
        for lock in lock_lines(session=session, principal=principal)
        if lock.year == year and within(region, lock.region_adcode)
    ]


def drill_down(
    *,
    session: Session,
    principal: Principal,
    year: int,
    args: ScopeArgs,
    batch_offset: int = 0,
    batch_limit: int = 50,
) -> DrillDown:
    """The figures of a scope and of each of its children, with the open flags; an enterprise's batches too."""
    if args.outside_parks or args.category:
        raise InvalidInput("pages.audit.drill_down_scope", field="outside_parks")
    scope = resolve(session=session, principal=principal, args=args)
    here = args_of(scope.ref)
    level = scope.ref.kind
    flags = list_flags(session=session, principal=principal, year=year, limit=None, scope=scope)
    places = _places(session, (e for f in flags.data for e in f.enterprise_ids), scope.condition)
    tables: list[ChildTable] = []
    report: RateReport | None = None
    for by, kind in CHILD_TABLES[level]:
        if report is None:
            report = rates.utilisation(session=session, principal=principal, year=year, by=by.value, scope=scope)
            rows = report.rows or []
        else:
            # A second breakdown of the same scope, categories and target (a prefecture's counties after its parks).
            rows = rates.breakdown_rows(session, scope, by, report.categories, (year, year), report.target)
            rates.mark_rows(session, year=year, categories=report.categories, scope=scope.ref, by=by, rows=rows)
        extras = declared_extras(session, scope.condition, report.categories, year, [_group_column(kind)])
        counts: dict[str, int] = {}
        keys_of = flag_keys(kind, places)
        for flag in flags.data:
            for key in keys_of(flag):
                counts[key] = counts.get(key, 0) + 1
        child_rows = _rows_of(kind, rows, extras, counts, here)
        if kind == "enterprise":
            held = held_by_enterprise(session, scope.condition, report.categories, year)
            for child in child_rows:
                child.held_t = held.get(int(child.key or 0), Decimal(0))
        tables.append(ChildTable(by=by, kind=kind, rows=child_rows))
    assert report is not None  # every level has a table
    total_extras = declared_extras(session, scope.condition, report.categories, year).get((), Extras())
    total_row = RateRow(key=scope.ref.key, name_zh=scope.ref.name_zh, name_en=scope.ref.name_en, **_figures(report))
    total = AuditRow(
        kind=level,
        key=scope.ref.key,
        name_zh=scope.ref.name_zh,
        name_en=scope.ref.name_en,
        figures=total_row,
        extras=total_extras,
        flags=flags.count,
        scope=here,
    )
    if level == "enterprise":
        total.held_t = held_by_enterprise(session, scope.condition, report.categories, year).get(
            int(scope.ref.key), Decimal(0)
        )
    batches = None
    if level == "enterprise":
        batches = enterprise_batches(
            session=session,
            enterprise_id=int(scope.ref.key),
            year=year,
            codes=report.categories,
            flags=flags.data,
            offset=batch_offset,
            limit=batch_limit,
        )
    return DrillDown(
        year=year,
        scope=scope.ref,
        args=here,
        report=report,
        total=total,
        crumbs=breadcrumbs(session=session, principal=principal, scope=scope.ref),
        tables=tables,
        flag_counts=dict(flags.counts),
        locks=covering_locks(session=session, principal=principal, scope=scope, year=year),
        flags=flags.data,
        batches=batches,
    )


def held_by_enterprise(
    session: Session, condition: ColumnElement[bool], codes: Sequence[str], year: int
) -> dict[int, Tonnes]:
    """Tonnes of the year's first manifests (of these categories) still held by each intermediary of the scope."""
    share = rates.SHARES.c
    query = (
        sa_select(col(Manifest.receiver_id), type_coerce(func.sum(share.kg), TonnesKg()))
        .select_from(rates.SHARES)
        .join(Manifest, col(Manifest.id) == share.manifest_id)
        .where(
            share.placement == Placement.held.value,
            share.origin_year == year,
            share.category_code.in_(list(codes)),
            col(Manifest.receiver_id).in_(sa_select(col(Enterprise.id)).where(condition)),
        )
        .group_by(col(Manifest.receiver_id))
    )
    return {int(r[0]): Decimal(r[1]) for r in session.execute(query)}


def _figures(report: RateReport) -> dict[str, Any]:
    return {name: getattr(report, name) for name in rates.RateFigures.model_fields}


# ---------------------------------------------------------------------------------------------------------------
# The batch level


def enterprise_batches(
    *,
    session: Session,
    enterprise_id: int,
    year: int,
    codes: Sequence[str],
    flags: Sequence[Flag],
    offset: int = 0,
    limit: int = 50,
) -> BatchPage:
    """An enterprise's batches of a year, sent or received: of a batch sent, its allocated utilised tonnes (its part
    of the bottom-up figure, wherever the chain took it); of a lot received as an intermediary, held and forwarded."""
    if offset < 0:
        raise InvalidInput("pages.audit.negative_offset", field="offset")
    b = Manifest
    mine = or_(col(b.shipper_id) == enterprise_id, col(b.receiver_id) == enterprise_id)
    where = and_(col(b.year) == year, mine)
    count = int(session.execute(sa_select(func.count()).select_from(b).where(where)).scalar_one())
    query = (
        sa_select(
            col(b.id),
            col(b.number),
            col(b.shipper_id),
            col(b.receiver_id),
            col(b.category_code),
            col(b.route),
            col(b.status),
            col(b.weight_dispatched_t),
            col(b.weight_received_t),
        )
        .where(where)
        .order_by(col(b.number), col(b.id))
        .offset(offset)
        .limit(limit)
    )
    rows = list(session.execute(query))
    allocated, held, forwarded = allocation_of(session, [r.id for r in rows])
    others = {r.receiver_id if r.shipper_id == enterprise_id else r.shipper_id for r in rows}
    names = _enterprise_names(session, others)
    on_batch: dict[int, list[str]] = {}
    for flag in flags:
        what, _, ident = flag.subject.partition("/")
        if what == "manifest" and ident.isdigit():
            on_batch.setdefault(int(ident), []).append(flag.kind.value)
    lines = []
    for r in rows:
        sent = r.shipper_id == enterprise_id
        other = r.receiver_id if sent else r.shipper_id
        zh, en = names.get(other, (None, None))
        lines.append(
            BatchLine(
                id=r.id,
                number=r.number,
                direction="sent" if sent else "received",
                counterpart_id=other,
                counterpart_zh=zh,
                counterpart_en=en,
                category_code=r.category_code,
                route=str(r.route),
                status=str(r.status),
                weight_dispatched_t=Decimal(r.weight_dispatched_t),
                weight_received_t=None if r.weight_received_t is None else Decimal(r.weight_received_t),
                counts=sent and r.category_code in codes and allocated.get(r.id, 0) > 0,
                flags=on_batch.get(r.id, []),
                allocated_t=allocated.get(r.id, Decimal(0)) if sent else Decimal(0),
                # A lot is the receiver's: what it holds and sent on is shown on the intermediary's own list.
                held_t=Decimal(0) if sent else held.get(r.id, Decimal(0)),
                forwarded_t=Decimal(0) if sent else forwarded.get(r.id, Decimal(0)),
            )
        )
    return BatchPage(count=count, offset=offset, limit=limit, rows=lines)


def allocation_of(
    session: Session, ids: Sequence[int]
) -> tuple[dict[int, Tonnes], dict[int, Tonnes], dict[int, Tonnes]]:
    """Of manifests: tonnes of each (a first manifest) that ended utilised, still held in each lot, drawn from each."""
    if not ids:
        return {}, {}, {}
    share, draw = rates.SHARES.c, DRAWS.c
    kg = type_coerce(func.sum(share.kg), TonnesKg())
    utilised = rates.allocated_utilised(share.origin_id).where(share.origin_id.in_(list(ids)))
    held = (
        sa_select(share.manifest_id, kg)
        .where(share.manifest_id.in_(list(ids)), share.placement == Placement.held.value)
        .group_by(share.manifest_id)
    )
    drawn = (
        sa_select(draw.source_id, type_coerce(func.sum(draw.kg), TonnesKg()))
        .where(draw.source_id.in_(list(ids)))
        .group_by(draw.source_id)
    )
    ended, kept, sent_on = ({int(r[0]): Decimal(r[1]) for r in session.execute(q)} for q in (utilised, held, drawn))
    return ended, kept, sent_on


def _enterprise_names(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    query = sa_select(col(Enterprise.id), col(Enterprise.name_zh), col(Enterprise.name_en)).where(
        col(Enterprise.id).in_(wanted)
    )
    return {row[0]: (row[1], row[2]) for row in session.execute(query)}


# ---------------------------------------------------------------------------------------------------------------
# The rows behind a figure


@dataclass
class DeclarationLine:
    id: int
    enterprise_id: int
    enterprise_zh: str
    enterprise_en: str | None
    category_code: str
    generated_t: Tonnes
    utilised_t: Tonnes
    utilised_prior_t: Tonnes
    disposed_t: Tonnes
    disposed_prior_t: Tonnes
    stored_t: Tonnes
    dumped_t: Tonnes


@dataclass
class ManifestLine:
    id: int
    number: str
    shipper_id: int
    shipper_zh: str
    shipper_en: str | None
    receiver_id: int
    receiver_zh: str
    receiver_en: str | None
    category_code: str
    route: str
    status: str
    received_at: datetime | None
    weight_received_t: Tonnes
    allocated_t: Tonnes = Decimal(0)  # of its tonnes, those that ended utilised at a licensed receiver


@dataclass
class RowsPage:
    """The rows a figure is made of: a page of them, their count and their sums over all pages."""

    kind: RowsKind
    year: int
    scope: ScopeRef
    args: ScopeArgs
    categories: list[str]
    count: int
    offset: int
    limit: int
    totals: dict[str, Decimal]
    declarations: list[DeclarationLine] = field(default_factory=list)
    manifests: list[ManifestLine] = field(default_factory=list)


DECLARATION_SUMS = (
    "generated_t",
    "utilised_t",
    "utilised_prior_t",
    "disposed_t",
    "disposed_prior_t",
    "stored_t",
    "dumped_t",
)


def figure_rows(
    *,
    session: Session,
    principal: Principal,
    kind: str,
    year: int,
    args: ScopeArgs,
    categories: Sequence[str] | None = None,
    offset: int = 0,
    limit: int = 100,
) -> RowsPage:
    """The declarations summed into a scope's declared figures, or the manifests summed into its bottom-up figure."""
    if kind not in ROWS_KINDS:
        raise InvalidInput(
            "pages.audit.rows_kind", field="kind", kinds=[Term(f"pages.audit.rows_kind.{k}") for k in ROWS_KINDS]
        )
    if offset < 0:
        raise InvalidInput("pages.audit.negative_offset", field="offset")
    if limit < 1:
        raise InvalidInput("pages.audit.limit_below_one", field="limit")
    if args.category and args.enterprise is None:
        raise InvalidInput("pages.audit.category_needs_enterprise", field="category")
    scope = resolve(session=session, principal=principal, args=args)
    codes = category_codes(session=session, scope=scope, year=year, categories=categories, category=args.category)
    page = RowsPage(
        kind="declarations" if kind == "declarations" else "batches",
        year=year,
        scope=scope.ref,
        args=args,
        categories=codes,
        count=0,
        offset=offset,
        limit=limit,
        totals={},
    )
    if kind == "declarations":
        _declaration_rows(session, scope, codes, page)
    else:
        _manifest_rows(session, scope, codes, page)
    return page


def _declaration_rows(session: Session, scope: Scope, codes: Sequence[str], page: RowsPage) -> None:
    d = Declaration
    where = and_(col(d.category_code).in_(list(codes)), col(d.year) == page.year, scope.condition)
    sums = session.execute(
        sa_select(func.count(), *(func.coalesce(func.sum(getattr(d, name)), 0.0) for name in DECLARATION_SUMS))
        .select_from(d)
        .join(Enterprise, col(Enterprise.id) == col(d.enterprise_id))
        .where(where)
    ).one()
    page.count = int(sums[0])
    page.totals = {name: Decimal(value) for name, value in zip(DECLARATION_SUMS, sums[1:], strict=True)}
    query = (
        sa_select(
            col(d.id),
            col(d.enterprise_id),
            col(Enterprise.name_zh),
            col(Enterprise.name_en),
            col(d.category_code),
            *(getattr(d, name) for name in DECLARATION_SUMS),
        )
        .select_from(d)
        .join(Enterprise, col(Enterprise.id) == col(d.enterprise_id))
        .where(where)
        .order_by(col(Enterprise.name_zh), col(d.enterprise_id), col(d.category_code))
        .offset(page.offset)
        .limit(page.limit)
    )
    page.declarations = [DeclarationLine(*row) for row in session.execute(query)]


def _manifest_rows(session: Session, scope: Scope, codes: Sequence[str], page: RowsPage) -> None:
    # The first manifests of rates.manifested_sums: shipped by the scope in the year, each with its tonnes that ended
    # on a utilisation route at a licensed receiver, however many hops later (the same allocated shares).
    share = rates.SHARES.c
    allocated = (
        rates.allocated_utilised(share.origin_id.label("origin_id"))
        .where(
            share.category_code.in_(list(codes)),
            share.origin_year == page.year,
            share.origin_shipper_id.in_(sa_select(col(Enterprise.id)).where(scope.condition)),
        )
        .subquery("allocated")
    )
    b = Manifest
    sums = session.execute(
        sa_select(
            func.count(),
            type_coerce(func.coalesce(func.sum(allocated.c.tonnes), 0), TonnesKg()),
            func.coalesce(func.sum(col(b.weight_received_t)), 0.0),
        )
        .select_from(allocated)
        .join(b, col(b.id) == allocated.c.origin_id)
    ).one()
    page.count = int(sums[0])
    page.totals = {"allocated_t": Decimal(sums[1]), "weight_received_t": Decimal(sums[2])}
    query = (
        sa_select(
            col(b.id),
            col(b.number),
            col(b.shipper_id),
            col(b.receiver_id),
            col(b.category_code),
            col(b.route),
            col(b.status),
            col(b.received_at),
            col(b.weight_received_t),
            allocated.c.tonnes,
        )
        .select_from(allocated)
        .join(b, col(b.id) == allocated.c.origin_id)
        .order_by(col(b.received_at), col(b.number))
        .offset(page.offset)
        .limit(page.limit)
    )
    rows = list(session.execute(query))
    names = _enterprise_names(session, [r.shipper_id for r in rows] + [r.receiver_id for r in rows])
    page.manifests = [
        ManifestLine(
            id=r.id,
            number=r.number,
            shipper_id=r.shipper_id,
            shipper_zh=names.get(r.shipper_id, ("", None))[0],
            shipper_en=names.get(r.shipper_id, ("", None))[1],
            receiver_id=r.receiver_id,
            receiver_zh=names.get(r.receiver_id, ("", None))[0],
            receiver_en=names.get(r.receiver_id, ("", None))[1],
            category_code=r.category_code,
            route=str(r.route),
            status=str(r.status),
            received_at=r.received_at,
            weight_received_t=Decimal(r.weight_received_t or 0),
            allocated_t=Decimal(r.tonnes),
        )
        for r in rows
    ]


# ---------------------------------------------------------------------------------------------------------------
# The flags queue


@dataclass
class FlagQueue:
    """A page of the solid-waste flags of a scope, with the counts by kind and the enterprises' names."""

    year: int | None
    scope: ScopeRef
    args: ScopeArgs
    counts: dict[str, int]
    count: int
    offset: int
    limit: int
    data: list[Flag]
    names: dict[int, tuple[str, str | None]]


def flag_queue(
    *,
    session: Session,
    principal: Principal,
    year: int | None,
    args: ScopeArgs,
    kinds: Sequence[str] | str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> FlagQueue:
    """The flags of a scope (narrowed, when asked, to its enterprises outside parks or to one category), a page."""
    scope = resolve(session=session, principal=principal, args=args)
    if args.category and args.enterprise is None:
        raise InvalidInput("pages.audit.category_needs_enterprise", field="category")
    if not args.outside_parks and not args.category:
        page = list_flags(
            session=session, principal=principal, year=year, kinds=kinds, offset=offset, limit=limit, scope=scope
        )
        counts, count, data = dict(page.counts), page.count, page.data
    else:
        if offset < 0:
            raise InvalidInput("pages.audit.negative_offset", field="offset")
        every = list_flags(session=session, principal=principal, year=year, kinds=kinds, limit=None, scope=scope)
        if args.category:
            keep = flag_keys("category", {})
            chosen = [f for f in every.data if args.category in keep(f)]
        else:
            places = _places(session, (e for f in every.data for e in f.enterprise_ids), scope.condition)
            keep = flag_keys("park", places)
            chosen = [f for f in every.data if OUTSIDE in keep(f)]
        counts = {k: sum(1 for f in chosen if f.kind.value == k) for k in every.counts}
        count, data = len(chosen), chosen[offset : offset + limit]
    names = _enterprise_names(session, {e for f in data for e in f.enterprise_ids})
    return FlagQueue(
        year=year,
        scope=scope.ref,
        args=args,
        counts=counts,
        count=count,
        offset=offset,
        limit=limit,
        data=data,
        names=names,
    )


# ---------------------------------------------------------------------------------------------------------------
# Locks and corrections as the pages list them


def scope_regions(*, session: Session, principal: Principal) -> list[tuple[str, str, str | None]]:
    """An auditor's own region and the divisions right below it (what the lock form and the filters offer)."""
    require_auditor(principal)
    own = principal.scope_adcode if principal.role is UserRole.bureau else None
    query = sa_select(col(Region.adcode), col(Region.name_zh), col(Region.name_en), col(Region.level))
    if own:
        query = query.where(or_(col(Region.adcode) == own, col(Region.parent_adcode) == own))
    else:
        query = query.where(col(Region.level).in_([RegionLevel.province.value, RegionLevel.prefecture.value]))
    return [(row[0], row[1], row[2]) for row in session.execute(query.order_by(col(Region.adcode)))]


def lock_lines(*, session: Session, principal: Principal) -> list[LockLine]:
    """The locks an auditor sees, with the region's name, who locked it and whether this auditor may lift it."""
    require_auditor(principal)
    locks = list_locks(session=session, principal=principal)
    regions = _region_names(session, [lock.region_adcode for lock in locks])
    users = _usernames(session, [lock.locked_by for lock in locks])
    mine = region_prefix(principal.scope_adcode) if principal.role is UserRole.bureau and principal.scope_adcode else ""
    return [
        LockLine(
            region_adcode=lock.region_adcode,
            region_zh=regions.get(lock.region_adcode, (lock.region_adcode, None, ""))[0],
            region_en=regions.get(lock.region_adcode, (lock.region_adcode, None, ""))[1],
            year=lock.year,
            locked_by=users.get(lock.locked_by) if lock.locked_by is not None else None,
            locked_at=lock.locked_at,
            can_unlock=lock.region_adcode.startswith(mine),
        )
        for lock in locks
    ]


def _usernames(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    query = sa_select(col(User.id), col(User.username)).where(col(User.id).in_(wanted))
    return {row[0]: row[1] for row in session.execute(query)}


@dataclass
class Change:
    """One field of a correction: its value now and the value asked for."""

    field: str
    before: Any
    after: Any


@dataclass
class CorrectionLine:
    id: int
    table: str
    enterprise_id: int
    enterprise_zh: str
    enterprise_en: str | None
    year: int
    subject: str  # the declaration's category or the batch's number
    batch_id: int | None
    changes: list[Change]
    reason: str
    status: str
    requested_by: str | None
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None


DECLARATION_FIELDS = DECLARATION_SUMS


def correction_lines(*, session: Session, principal: Principal) -> list[CorrectionLine]:
    """The correction requests in the auditor's scope, newest first, each field with its value now and asked for."""
    require_auditor(principal)
    requests = list_corrections(session=session, principal=principal)
    names = _enterprise_names(session, [c.enterprise_id for c in requests])
    users = _usernames(session, [c.requested_by for c in requests] + [c.decided_by for c in requests])
    lines = []
    for c in requests:
        payload = dict(c.payload or {})
        batch_id: int | None = None
        if c.table_name == "transfer_batch":
            batch_id = int(payload.get("batch_id") or 0) or None
            batch = numbers.get(session, batch_id) if batch_id else None
            wanted = dict(payload.get("changes") or {})
            subject = batch.number if batch else f"#{batch_id}"
            changes = [Change(k, _field(batch, k), v) for k, v in sorted(wanted.items())]
        elif c.table_name == late_filings.MANIFEST:
            subject, changes = _late_manifest(session, payload)
        else:
            category = str(payload.get("category_code") or "")
            current = session.execute(
                sa_select(Declaration).where(
                    col(Declaration.enterprise_id) == c.enterprise_id,
                    col(Declaration.category_code) == category,
                    col(Declaration.year) == c.year,
                )
            ).scalar_one_or_none()
            subject = category
            changes = [
                Change(k, _field(current, k), payload.get(k, 0.0))
                for k in DECLARATION_FIELDS
                if k in payload or (current is not None and _field(current, k))
            ]
        zh, en = names.get(c.enterprise_id, (str(c.enterprise_id), None))
        lines.append(
            CorrectionLine(
                id=c.id or 0,
                table=c.table_name,
                enterprise_id=c.enterprise_id,
                enterprise_zh=zh,
                enterprise_en=en,
                year=c.year,
                subject=subject,
                batch_id=batch_id,
                changes=changes,
                reason=c.reason,
                status=c.status,
                requested_by=users.get(c.requested_by) if c.requested_by else None,
                requested_at=c.requested_at,
                decided_by=users.get(c.decided_by) if c.decided_by else None,
                decided_at=c.decided_at,
                decision_note=c.decision_note,
            )
        )
    return lines


LATE_MANIFEST_FIELDS = ("receiver_id", "carrier_id", "category_code", "route", "weight_dispatched_t", "dispatched_at")


def _late_manifest(session: Session, payload: dict[str, Any]) -> tuple[str, list[Change]]:
    """A batch filed late does not exist yet: each of its fields is new, the parties named, the weight in tonnes."""
    parties = _enterprise_names(session, [int(payload[k]) for k in ("receiver_id", "carrier_id") if payload.get(k)])
    shown = dict(payload)
    for key in ("receiver_id", "carrier_id"):
        if payload.get(key):
            shown[key] = parties.get(int(payload[key]), (str(payload[key]), None))[0]
    if payload.get("weight_dispatched_t") is not None:
        shown["weight_dispatched_t"] = float(payload["weight_dispatched_t"])
    if payload.get("dispatched_at"):
        # Kept as filed (a time without an offset is Beijing time); shown in Beijing time, as the queue shows times.
        at = datetime.fromisoformat(str(payload["dispatched_at"]))
        shown["dispatched_at"] = (
            (at if at.tzinfo else at.replace(tzinfo=CST)).astimezone(CST).strftime("%Y-%m-%d %H:%M")
        )
    changes = [Change(k, None, shown[k]) for k in LATE_MANIFEST_FIELDS if shown.get(k) is not None]
    return str(payload.get("category_code") or ""), changes


def _field(row: Any, name: str) -> Any:
    if row is None:
        return None
    value = getattr(row, name, None)
    return value.isoformat() if isinstance(value, datetime) else value


def decide(
    *, session: Session, principal: Principal, correction_id: int, approve: bool, note: str, now: datetime
) -> CorrectionRequest:
    """Approve (and so apply) or reject a pending correction; a rejection must say why."""
    require_auditor(principal)
    if not approve and not note.strip():
        raise InvalidInput("pages.audit.rejection_note", field="note")
    return decide_correction(
        session=session, principal=principal, correction_id=correction_id, approve=approve, note=note, now=now
    )
