"""Comprehensive utilisation rates from SQL aggregates: by scope, year and category set, with the bottom-up figure.

rate = utilised / (generated + utilised_prior), summed over the declarations of the scope, year and categories
(DESIGN.md). Sums are taken in the database (GROUP BY with SUM); only the aggregates come back to Python.
Full precision throughout: publishers truncate to 0.1 pt, and only the display does so here (percent_truncated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, NamedTuple

from pydantic import BaseModel
from sqlalchemy import (
    Column,
    ColumnElement,
    String,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    type_coerce,
)
from sqlalchemy import select as sa_select
from sqlalchemy.sql import visitors
from sqlmodel import Session, col, select

from flows.access.accounts import Principal
from flows.access.scope import Scope, ScopeRef, resolve_scope
from flows.kernel.clock import local_date
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Term
from flows.waste.revision_marks import RevisionMark, marks_for
from flows.waste.targets import (
    DEFAULT_WINDOW,
    MIN_WINDOW,
    CategorySet,
    Projection,
    TargetPoint,
    next_target,
    outer_path,
    path_value,
    project,
    resolve_category_set,
)
from models import (
    Declaration,
    Enterprise,
    Licence,
    Manifest,
    ManifestShare,
    Park,
    Region,
    SummaryCounty,
    SummaryGenerator,
    WasteCategory,
)
from models.enums import UTILISATION_ROUTES, LicenceActivity, ManifestStatus, Placement, Route
from models.quantity import Tonnes, TonnesKg

# A batch counts as received once the receiver has weighed it in; a later correction keeps it received
# (a corrected rejection has no received weight, so summing weight_received_t leaves it out).
RECEIVED_STATUSES = (ManifestStatus.received.value, ManifestStatus.corrected.value)
# Sent means it left the shipper: drafts and cancelled batches never moved, and a rejected one was refused.
SENT_STATUSES = (ManifestStatus.dispatched.value, ManifestStatus.received.value, ManifestStatus.corrected.value)
UTILISATION_ROUTE_VALUES = tuple(sorted(r.value for r in UTILISATION_ROUTES))
# Licences are issued for local (China Standard Time) dates; stored times are UTC: see flows.kernel.clock.local_date.


def _sql_text(value: str) -> ColumnElement[str]:
    # Inline constants from our own enumerations: PostgreSQL matches a GROUP BY expression to the SELECT's only
    # when they are written the same, and two bind parameters never are.
    return literal_column(f"'{value}'", String)


def route_activity() -> ColumnElement[str]:
    """The licence activity a batch's route calls for at the receiver."""
    route = col(Manifest.route)
    return case(
        (route == _sql_text(Route.disposal.value), _sql_text(LicenceActivity.disposal.value)),
        (route == _sql_text(Route.storage.value), _sql_text(LicenceActivity.storage.value)),
        (route == _sql_text(Route.transfer.value), _sql_text(LicenceActivity.collection.value)),
        else_=_sql_text(LicenceActivity.utilisation.value),
    )


def licensed_receiver(activity: ColumnElement[str] | str, on: ColumnElement[Any]) -> ColumnElement[bool]:
    """A condition on Manifest: its receiver held a licence for its category and the activity on that date."""
    return exists(
        sa_select(literal(1)).where(
            col(Licence.enterprise_id) == col(Manifest.receiver_id),
            col(Licence.category_code) == col(Manifest.category_code),
            col(Licence.activity) == activity,
            col(Licence.valid_from) <= on,
            or_(col(Licence.valid_to).is_(None), col(Licence.valid_to) >= on),
        )
    )


def manifest_utilised() -> ColumnElement[bool]:
    """A condition on Manifest: it counts toward the bottom-up utilisation figure of its shipper."""
    return and_(
        col(Manifest.status).in_(RECEIVED_STATUSES),
        col(Manifest.weight_received_t).is_not(None),
        col(Manifest.route).in_(UTILISATION_ROUTE_VALUES),
        licensed_receiver(LicenceActivity.utilisation.value, local_date(col(Manifest.received_at))),
    )


def exact_rate(
    generated_t: Decimal | int, utilised_t: Decimal | int, utilised_prior_t: Decimal | int
) -> Fraction | None:
    """utilised / (generated + utilised_prior) as an exact fraction of the exact sums, or None over nothing."""
    denominator = Fraction(generated_t) + Fraction(utilised_prior_t)
    return Fraction(utilised_t) / denominator if denominator > 0 else None


SHARES = ManifestShare.__table__  # type: ignore[attr-defined]


def allocated_utilised(*group: Any) -> Any:
    """Tonnes (as `tonnes`) that ended on a utilisation route at a licensed receiver, allocated back to the first
    manifests (flows/waste/chains.py), grouped by columns of manifest_share: the one bottom-up query of rates and flags.
    """
    share = SHARES.c
    return (
        sa_select(*group, type_coerce(func.sum(share.kg), TonnesKg()).label("tonnes"))
        .join(Manifest, col(Manifest.id) == share.manifest_id)
        .where(share.placement == _sql_text(Placement.final.value), manifest_utilised())
        .group_by(*group)
    )


def rate_of(generated_t: Decimal | int, utilised_t: Decimal | int, utilised_prior_t: Decimal | int) -> float | None:
    """The exact rate as the double nearest to it: sums are whole kilograms (below 1e15), so any two different
    rates, or a rate and a target, are further apart than a double can blur, and comparisons stay exact."""
    rate = exact_rate(generated_t, utilised_t, utilised_prior_t)
    return None if rate is None else float(rate)


def percent_truncated(fraction: float | Decimal, places: int = 1) -> Decimal:
    """A fraction as a percentage truncated (not rounded) to `places` decimals, the way publishers print rates."""
    # From the shortest decimal that round-trips the float, so that 0.816 gives 81.6 and not 81.5999...
    quantum = Decimal(1).scaleb(-places)
    exact = fraction if isinstance(fraction, Decimal) else Decimal(repr(fraction))
    return (exact * 100).quantize(quantum, rounding=ROUND_DOWN)


# ---------------------------------------------------------------------------------------------------------------
# Aggregates


class RateBy(StrEnum):
    """How a rate may be broken down."""

    category = "category"
    region = "region"
    park = "park"
    enterprise = "enterprise"


class Sums(NamedTuple):
    generated_t: Decimal
    utilised_t: Decimal
    utilised_prior_t: Decimal
    declarations: int
    enterprises: int


ZERO = Sums(Decimal(0), Decimal(0), Decimal(0), 0, 0)
NONE_T = Decimal(0)
Years = tuple[int, int]  # inclusive range


def declared_sums(
    session: Session,
    condition: ColumnElement[bool],
    codes: Sequence[str],
    years: Years | None,
    group: Sequence[Any] = (),
) -> dict[tuple[Any, ...], Sums]:
    """Declared sums per group (the empty tuple when ungrouped), in one GROUP BY over declarations x enterprise."""
    query = (
        sa_select(
            *group,
            func.coalesce(func.sum(col(Declaration.generated_t)), 0),
            func.coalesce(func.sum(col(Declaration.utilised_t)), 0),
            func.coalesce(func.sum(col(Declaration.utilised_prior_t)), 0),
            func.count(),
            func.count(func.distinct(col(Declaration.enterprise_id))),
        )
        .select_from(Declaration)
        .join(Enterprise, col(Enterprise.id) == col(Declaration.enterprise_id))
        .where(col(Declaration.category_code).in_(list(codes)), condition)
    )
    if years is not None:
        query = query.where(col(Declaration.year).between(*years))
    if group:
        query = query.group_by(*group)
    out: dict[tuple[Any, ...], Sums] = {}
    width = len(group)
    for row in session.execute(query):
        values = tuple(row)
        if not group and values[width + 3] == 0:
            continue  # an ungrouped aggregate over nothing still answers one row
        generated, utilised, prior, n, ents = values[width:]
        out[values[:width]] = Sums(Decimal(generated), Decimal(utilised), Decimal(prior), int(n), int(ents))
    return out


BATCH_CATEGORY = "batch_category"  # a manifest group on the batches' category rather than a column of the shipper


def manifested_sums(
    session: Session,
    condition: ColumnElement[bool],
    codes: Sequence[str],
    years: Years | None,
    group: Sequence[Any] = (),
    *,
    narrow: bool = False,
    base: bool = False,
) -> dict[tuple[Any, ...], Decimal]:
    """Tonnes that ended on a utilisation route at a licensed receiver, allocated back through every hop to the
    first manifests and so to their generators, per group (the generators' columns, BATCH_CATEGORY): read from the
    summaries kept on write (flows/waste/summaries.py), or with `base` from the base rows (their reference)."""
    if base:
        return _base_sums(session, condition, codes, years, group, narrow)
    cells = _county_columns(condition, group)
    if cells is not None and not narrow:
        return _county_sums(session, condition, codes, years, group, cells)
    g = SUMMARY_GENERATOR.c
    shipped: Any = (
        sa_select(
            g.generator_id.label("shipper_id"),
            g.category_code.label("category_code"),
            type_coerce(func.sum(g.utilised_kg), TonnesKg()).label("tonnes"),
        )
        # Rows with nothing utilised (final elsewhere, or moved away) are left out, as the base rows leave them.
        .where(g.category_code.in_(list(codes)), g.utilised_kg != 0)
        .group_by(g.generator_id, g.category_code)
    )
    return _by_shipper(session, shipped, (g.year, g.generator_id), years, narrow, condition, group)


def _base_sums(
    session: Session,
    condition: ColumnElement[bool],
    codes: Sequence[str],
    years: Years | None,
    group: Sequence[Any],
    narrow: bool,
) -> dict[tuple[Any, ...], Decimal]:
    """manifested_sums from the base rows (manifest_share and the final manifests): the reference of the summaries."""
    # The shares are kept on write (flows/waste/chains.py): a direct manifest is its own one share, a chain's final
    # manifest has one per first manifest it carries. The year and category are those of the first manifest.
    # `narrow`: the scope is a park or an enterprise, whose few shares are best found through the shipper index.
    share = SHARES.c
    shipped: Any = allocated_utilised(
        share.origin_shipper_id.label("shipper_id"), share.category_code.label("category_code")
    ).where(share.category_code.in_(list(codes)))
    keys = (share.origin_year, share.origin_shipper_id)
    return _by_shipper(session, shipped, keys, years, narrow, condition, group)


def _by_shipper(
    session: Session,
    shipped: Any,
    keys: tuple[Any, Any],
    years: Years | None,
    narrow: bool,
    condition: ColumnElement[bool],
    group: Sequence[Any],
) -> dict[tuple[Any, ...], Decimal]:
    # Sums per generator and category first (`shipped`, whose year and generator columns are `keys`), and only
    # those joined to the enterprises, so that a region's figure costs one pass and a few thousand lookups.
    year, shipper = keys
    if years is not None:
        shipped = shipped.where(year.between(*years))
    if narrow:
        shipped = shipped.where(shipper.in_(sa_select(col(Enterprise.id)).where(condition)))
    sub = shipped.subquery("shipped")
    columns = [sub.c.category_code if g is BATCH_CATEGORY else g for g in group]
    query = (
        sa_select(*columns, func.coalesce(type_coerce(func.sum(sub.c.tonnes), TonnesKg()), 0))
        .select_from(sub)
        .join(Enterprise, col(Enterprise.id) == sub.c.shipper_id)
        .where(condition)
    )
    if group:
        query = query.group_by(*columns)
    return {tuple(row)[: len(group)]: Decimal(tuple(row)[len(group)]) for row in session.execute(query)}


SUMMARY_GENERATOR = SummaryGenerator.__table__  # type: ignore[attr-defined]
SUMMARY_COUNTY = SummaryCounty.__table__  # type: ignore[attr-defined]
REGION_COLUMNS = ("province_adcode", "prefecture_adcode", "county_adcode")


def _county_columns(condition: ColumnElement[bool], group: Sequence[Any]) -> dict[Any, Any] | None:
    """Enterprise's region columns mapped to summary_county's, when the scope and groups use no other column of the
    enterprise (a region scope read by an administrator or a bureau); None otherwise."""
    enterprise = Enterprise.__table__  # type: ignore[attr-defined]
    mapping = {enterprise.c[name]: SUMMARY_COUNTY.c[name] for name in REGION_COLUMNS}
    used = [element for element in visitors.iterate(condition) if isinstance(element, Column)]
    used += [getattr(g, "expression", g) for g in group if g is not BATCH_CATEGORY]
    if not all(isinstance(column, Column) and column in mapping for column in used):
        return None
    return mapping


def _county_sums(
    session: Session,
    condition: ColumnElement[bool],
    codes: Sequence[str],
    years: Years | None,
    group: Sequence[Any],
    mapping: dict[Any, Any],
) -> dict[tuple[Any, ...], Decimal]:
    # One row per (year, region cell, category): a province's year is a few thousand rows, whatever the manifests.
    c = SUMMARY_COUNTY.c

    def swap(element: Any, **_: Any) -> Any:
        return mapping.get(element)

    where = visitors.replacement_traverse(condition, {}, swap)
    columns = [c.category_code if g is BATCH_CATEGORY else mapping[getattr(g, "expression", g)] for g in group]
    query = sa_select(*columns, func.coalesce(type_coerce(func.sum(c.utilised_kg), TonnesKg()), 0)).where(
        c.category_code.in_(list(codes)), where
    )
    if years is not None:
        query = query.where(c.year.between(*years))
    if group:
        query = query.group_by(*columns)
    out: dict[tuple[Any, ...], Decimal] = {}
    for row in session.execute(query):
        # '' stands for "no region" in the summary's key: the enterprises' NULL.
        key = tuple(
            None if value == "" and g is not BATCH_CATEGORY else value
            for value, g in zip(tuple(row)[: len(group)], group, strict=True)
        )
        out[key] = out.get(key, Decimal(0)) + Decimal(row[len(group)])
    return out


# ---------------------------------------------------------------------------------------------------------------
# The rate report


class RateFigures(BaseModel):
    """A utilisation rate with the sums behind it and the bottom-up figure beside it."""

    rate: float | None
    generated_t: Tonnes
    utilised_t: Tonnes
    utilised_prior_t: Tonnes
    target: float | None
    over_100: bool
    declarations: int
    enterprises: int
    manifest_utilised_t: Tonnes
    gap_t: Tonnes
    gap_pct: float | None  # (utilised - manifest) / utilised, in percent
    revisions: list[RevisionMark] = []  # approved corrections that changed this figure after its year was locked


class RateRow(RateFigures):
    """One group of a breakdown."""

    key: str | None
    name_zh: str | None = None
    name_en: str | None = None


class RateReport(RateFigures):
    """The rate of a scope in a year over a category set, against the target path; rows when broken down."""

    year: int
    scope: ScopeRef
    categories: list[str]
    category_source: str
    series: str | None
    target_scope: str | None
    next_target: TargetPoint | None
    by: RateBy | None = None
    rows: list[RateRow] | None = None
    # Beside a region's own target, the one of the region above it (a prefecture's: the province's), if any.
    outer_target: float | None = None
    outer_target_scope: str | None = None


def figures(sums: Sums, manifest_t: Tonnes, target: float | None) -> dict[str, Any]:
    """The fields of RateFigures from the sums."""
    rate = rate_of(sums.generated_t, sums.utilised_t, sums.utilised_prior_t)
    gap = sums.utilised_t - manifest_t
    return {
        "rate": rate,
        "generated_t": sums.generated_t,
        "utilised_t": sums.utilised_t,
        "utilised_prior_t": sums.utilised_prior_t,
        "target": target,
        "over_100": rate is not None and rate > 1,
        "declarations": sums.declarations,
        "enterprises": sums.enterprises,
        "manifest_utilised_t": manifest_t,
        "gap_t": gap,
        "gap_pct": gap / sums.utilised_t * 100 if sums.utilised_t > 0 else None,
    }


def parse_by(by: str | None) -> RateBy | None:
    """A breakdown name, refused naming the option when unknown."""
    if by is None or not by.strip():
        return None
    try:
        return RateBy(by.strip().lower())
    except ValueError:
        raise InvalidInput(
            "waste.one_of", field="by", column=Term("field.by"), choices=", ".join(b.value for b in RateBy)
        ) from None


@dataclass(frozen=True)
class Breakdown:
    """The group column on each side of the aggregate, and the members to list even where they have no data."""

    declared: Any
    manifested: Any
    members: list[str]


def breakdown(session: Session, scope: Scope, by: RateBy, codes: Sequence[str]) -> Breakdown:
    """The GROUP BY columns of a breakdown of this scope."""
    match by:
        case RateBy.category:
            return Breakdown(col(Declaration.category_code), BATCH_CATEGORY, list(codes))
        case RateBy.region:
            if scope.ref.kind not in ("province", "prefecture"):
                raise InvalidInput(
                    "waste.no_regions_below",
                    field="by",
                    column=Term("field.by"),
                    kind=Term(f"waste.scope.{scope.ref.kind}"),
                )
            column = col(Enterprise.prefecture_adcode if scope.ref.kind == "province" else Enterprise.county_adcode)
            children = session.exec(
                select(Region.adcode).where(Region.parent_adcode == scope.ref.key).order_by(col(Region.adcode))
            ).all()
            return Breakdown(column, column, list(children))
        case RateBy.park:
            return Breakdown(col(Enterprise.park_id), col(Enterprise.park_id), [])
        case RateBy.enterprise:
            return Breakdown(col(Enterprise.id), col(Enterprise.id), [])
    # The match is exhaustive: never reached.
    raise InvalidInput("waste.unknown_breakdown", field="by", column=Term("field.by"), by=by)  # pragma: no cover


def names(session: Session, by: RateBy, keys: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
    """zh and en names of the groups of a breakdown."""
    if not keys:
        return {}
    q: Any
    match by:
        case RateBy.category:
            q = sa_select(col(WasteCategory.code), col(WasteCategory.name_zh), col(WasteCategory.name_en)).where(
                col(WasteCategory.code).in_(keys)
            )
        case RateBy.region:
            q = sa_select(col(Region.adcode), col(Region.name_zh), col(Region.name_en)).where(
                col(Region.adcode).in_(keys)
            )
        case RateBy.park:
            q = sa_select(col(Park.id), col(Park.name_zh), col(Park.name_en)).where(
                col(Park.id).in_([int(k) for k in keys])
            )
        case RateBy.enterprise:
            q = sa_select(col(Enterprise.id), col(Enterprise.name_zh), col(Enterprise.name_en)).where(
                col(Enterprise.id).in_([int(k) for k in keys])
            )
    return {str(row[0]): (row[1], row[2]) for row in session.execute(q)}


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def _sort_key(key: str | None) -> tuple[int, int, str]:
    # Ids in numeric order (adcodes too: same length), codes as text; the ungrouped rest (no park) last.
    if key is None:
        return (2, 0, "")
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def breakdown_rows(
    session: Session,
    scope: Scope,
    by: RateBy,
    codes: Sequence[str],
    years: Years,
    target: float | None,
) -> list[RateRow]:
    """The rows of a breakdown: every member of a region or category level, and every park or enterprise with data."""
    parts = breakdown(session, scope, by, codes)
    declared_by = declared_sums(session, scope.condition, codes, years, [parts.declared])
    manifested_by = manifested_sums(session, scope.condition, codes, years, [parts.manifested], narrow=scope.narrow)
    declared = {_key(k[0]): v for k, v in declared_by.items()}
    manifested = {_key(k[0]): v for k, v in manifested_by.items()}
    keys = list(dict.fromkeys([*parts.members, *sorted(set(declared) | set(manifested), key=_sort_key)]))
    labels = names(session, by, [k for k in keys if k is not None])
    rows = []
    for key in keys:
        name_zh, name_en = labels.get(key, (None, None)) if key is not None else (None, None)
        body = figures(declared.get(key, ZERO), manifested.get(key, NONE_T), target)
        rows.append(RateRow(key=key, name_zh=name_zh, name_en=name_en, **body))
    return rows


def utilisation(
    *,
    session: Session,
    principal: Principal,
    year: int,
    region: str | None = None,
    park: int | None = None,
    enterprise: str | int | None = None,
    categories: Sequence[str] | None = None,
    target: str | None = None,
    by: str | None = None,
    scope: Scope | None = None,
) -> RateReport:
    """The comprehensive utilisation rate of a scope in a year, against its target path, optionally broken down.

    `scope`, when the caller resolved it already (once per request), stands for region, park and enterprise.
    """
    group = parse_by(by)
    if scope is None:
        scope = resolve_scope(session=session, principal=principal, region=region, park=park, enterprise=enterprise)
    cats, path = resolve_category_set(
        session=session, region_adcode=scope.region_adcode, year=year, categories=categories, target=target
    )
    years = (year, year)
    target_value = path_value(path.points, year) if path else None
    outer = outer_path(session=session, path=path) if cats.source == "default" else None
    rows = breakdown_rows(session, scope, group, cats.codes, years, target_value) if group else None
    # Declared totals again in SQL (an enterprise may fall in several categories: the distinct count is not a sum);
    # the manifest tonnes of a breakdown partition the scope's, so they add up to the total without a second pass.
    sums = declared_sums(session, scope.condition, cats.codes, years).get((), ZERO)
    if rows is None:
        manifest_t = manifested_sums(session, scope.condition, cats.codes, years, narrow=scope.narrow).get((), NONE_T)
    else:
        manifest_t = sum((Decimal(row.manifest_utilised_t) for row in rows), Decimal(0))
    report = RateReport(
        year=year,
        scope=scope.ref,
        categories=cats.codes,
        category_source=cats.source,
        series=path.series if path else cats.series,
        target_scope=path.scope_adcode if path else None,
        next_target=next_target(path.points, year) if path else None,
        by=group,
        rows=rows,
        outer_target=path_value(outer.points, year) if outer else None,
        outer_target_scope=outer.scope_adcode if outer else None,
        **figures(sums, manifest_t, target_value),
    )
    _mark_revisions(session, report, group)
    return report


# The scope kind of a breakdown's rows, by the kind of the scope broken down (categories carry no mark).
ROW_KINDS: dict[RateBy, dict[str, str]] = {
    RateBy.region: {"province": "prefecture", "prefecture": "county"},
    RateBy.park: {"province": "park", "prefecture": "park", "county": "park"},
    RateBy.enterprise: dict.fromkeys(("province", "prefecture", "county", "park"), "enterprise"),
}


def _mark_revisions(session: Session, report: RateReport, group: RateBy | None) -> None:
    scope = (report.scope.kind, report.scope.key)
    marks = marks_for(session=session, year=report.year, categories=report.categories, scopes=[scope])
    report.revisions = marks.get(scope, [])
    if group is not None and report.rows:
        mark_rows(
            session, year=report.year, categories=report.categories, scope=report.scope, by=group, rows=report.rows
        )


def mark_rows(
    session: Session, *, year: int, categories: Sequence[str], scope: ScopeRef, by: RateBy, rows: Sequence[RateRow]
) -> None:
    """Put on each row of a breakdown of `scope` the revisions of its figure, if any."""
    kind = ROW_KINDS.get(by, {}).get(scope.kind)
    if kind is None:
        return
    keyed = [row for row in rows if row.key is not None]
    marks = marks_for(
        session=session, year=year, categories=categories, scopes=[(kind, row.key or "") for row in keyed]
    )
    for row in keyed:
        row.revisions = marks.get((kind, row.key or ""), [])


# ---------------------------------------------------------------------------------------------------------------
# The trend against the target path


class TrendYear(BaseModel):
    """One year of a trend."""

    year: int
    rate: float | None
    generated_t: Tonnes
    utilised_t: Tonnes
    utilised_prior_t: Tonnes
    declarations: int
    target: float | None


class TrendReport(BaseModel):
    """Rates year by year, the target path over the same years, and the projection to the next target."""

    scope: ScopeRef
    categories: list[str]
    category_source: str
    series: str | None
    target_scope: str | None
    targets: list[TargetPoint]
    years: list[TrendYear]
    projection: Projection


def _year_span(session: Session, scope: Scope, cats: CategorySet) -> tuple[int, int] | None:
    query = (
        sa_select(func.min(col(Declaration.year)), func.max(col(Declaration.year)))
        .select_from(Declaration)
        .join(Enterprise, col(Enterprise.id) == col(Declaration.enterprise_id))
        .where(col(Declaration.category_code).in_(cats.codes), scope.condition)
    )
    low, high = session.execute(query).one()
    return None if low is None else (int(low), int(high))


def rate_trend(
    *,
    session: Session,
    principal: Principal,
    region: str | None = None,
    park: int | None = None,
    enterprise: str | int | None = None,
    categories: Sequence[str] | None = None,
    target: str | None = None,
    from_year: int | None = None,
    to_year: int | None = None,
    window: int = DEFAULT_WINDOW,
    scope: Scope | None = None,
) -> TrendReport:
    """The scope's rate by year (default: every year with data), the target path, and the projection.

    `scope`, when the caller resolved it already (once per request), stands for region, park and enterprise.
    """
    if window < MIN_WINDOW:
        raise InvalidInput("waste.window_min", field="window", column=Term("field.window"), n=MIN_WINDOW)
    if from_year is not None and to_year is not None and from_year > to_year:
        raise InvalidInput(
            "waste.from_after_to", field="from", column=Term("field.from"), from_year=from_year, to_year=to_year
        )
    if scope is None:
        scope = resolve_scope(session=session, principal=principal, region=region, park=park, enterprise=enterprise)
    cats, path = resolve_category_set(
        session=session, region_adcode=scope.region_adcode, year=to_year, categories=categories, target=target
    )
    span = _year_span(session, scope, cats)
    low = from_year if from_year is not None else (span[0] if span else None)
    high = to_year if to_year is not None else (span[1] if span else None)
    points = path.points if path else []
    trend: list[TrendYear] = []
    if low is not None and high is not None and low <= high:
        per_year = declared_sums(session, scope.condition, cats.codes, (low, high), [col(Declaration.year)])
        for year in range(low, high + 1):
            s = per_year.get((year,), ZERO)
            trend.append(
                TrendYear(
                    year=year,
                    rate=rate_of(s.generated_t, s.utilised_t, s.utilised_prior_t),
                    generated_t=s.generated_t,
                    utilised_t=s.utilised_t,
                    utilised_prior_t=s.utilised_prior_t,
                    declarations=s.declarations,
                    target=path_value(points, year),
                )
            )
    return TrendReport(
        scope=scope.ref,
        categories=cats.codes,
        category_source=cats.source,
        series=path.series if path else cats.series,
        target_scope=path.scope_adcode if path else None,
        targets=points,
        years=trend,
        projection=project([(t.year, t.rate) for t in trend], points, window=window),
    )


def scope_condition_for_batches(condition: ColumnElement[bool], *ends: Any, narrow: bool = True) -> ColumnElement[bool]:
    """A condition on Manifest: one of the given ends (shipper_id, receiver_id columns) lies in the scope."""
    ids = sa_select(col(Enterprise.id)).where(condition)
    # For a wide scope, `+ 0` hides the column from SQLite's index planner, which would otherwise probe the
    # shipper and receiver indexes once per enterprise of the list; one pass over the year's batches is cheaper.
    clauses = [(col(end) if narrow else col(end) + 0).in_(ids) for end in ends]
    return or_(*clauses) if clauses else false()
