"""Received tonnes between places: the selection and the SQL aggregates behind the flow map and the Sankey diagrams.

A flow is what arrived: batches received (or received and later corrected), counted at their received weight, each
hop a lorry of its own. Drafts, cancelled and rejected batches never arrived; a dispatched batch is still on its way.
Each principal sees the batches with one end in its scope (flows/access/scope.py).

What a flow means for utilisation comes from the allocation (flows/waste/chains.py, table manifest_share), never
from the received weight: `utilised_t` is the tonnes that ended on a utilisation route at a licensed receiver, as
allocated back to the first manifests (the rate engine's bottom-up figure); `held_t` is what a lot delivered to an
intermediary still holds, `forwarded_t` what was drawn from it and sent on. A tonne passing a collector is moved twice
but utilised once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, type_coerce
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from flows.access.scope import ensure_region_in_scope, readable_batches, region_clause
from flows.kernel.errors import InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from flows.waste.rates import RECEIVED_STATUSES, SHARES, manifest_utilised
from models import Enterprise, Manifest, ManifestDraw, Park, Region, WasteCategory
from models.enums import Placement, RegionLevel, Route
from models.quantity import Tonnes, TonnesKg

DRAWS = ManifestDraw.__table__  # type: ignore[attr-defined]
ZERO_T = Decimal(0)

# The two ends of a batch, each an Enterprise row of its own in one query.
Shipper = aliased(Enterprise, name="shipper")
Receiver = aliased(Enterprise, name="receiver")


@dataclass(frozen=True)
class FlowFilter:
    """Which received batches a figure covers: a year, optionally one category, one route, one place."""

    year: int
    category: str | None = None
    categories: tuple[str, ...] = ()  # the category and the 2024-catalogue codes filed under it
    route: str | None = None
    region: str | None = None  # batches with one end in this region (province or prefecture)
    park: int | None = None  # batches with one end in this park

    def query(self, **extra: Any) -> dict[str, Any]:
        """The filter as URL query parameters (the empty ones left out)."""
        params: dict[str, Any] = {"year": self.year}
        for name in ("category", "route", "region", "park"):
            value = getattr(self, name)
            if value not in (None, ""):
                params[name] = value
        params.update({k: v for k, v in extra.items() if v not in (None, "")})
        return params


def parse_filter(
    *,
    session: Session,
    principal: Principal,
    year: int,
    category: str | None = None,
    route: str | None = None,
    region: str | None = None,
    park: int | None = None,
) -> FlowFilter:
    """Check a filter: a known category and route, a region of the principal's own scope, an existing park."""
    category = (category or "").strip().upper() or None
    route = (route or "").strip() or None
    region = (region or "").strip() or None
    codes: tuple[str, ...] = ()
    if category is not None:
        known = session.exec(select(WasteCategory.code).where(col(WasteCategory.code) == category)).first()
        if known is None:
            raise InvalidInput(
                "waste.unknown_category_code", field="category", column=Term("field.category"), code=category
            )
        children = session.exec(select(WasteCategory.code).where(col(WasteCategory.parent_code) == category)).all()
        codes = (category, *sorted(children))
    if route is not None and route not in {r.value for r in Route}:
        raise InvalidInput(
            "waste.one_of", field="route", column=Term("field.route"), choices=", ".join(r.value for r in Route)
        )
    if region is not None:
        ensure_region_in_scope(session, principal, region)
        level = session.exec(select(Region.level).where(Region.adcode == region)).one()
        if RegionLevel(level) is RegionLevel.county:
            raise InvalidInput("waste.region_is_county", field="region", column=Term("field.region"), region=region)
    if park is not None and session.exec(select(Park.id).where(Park.id == park)).first() is None:
        raise NotFound("waste.no_park", field="park", park=park)
    return FlowFilter(year=year, category=category, categories=codes, route=route, region=region, park=park)


def _one_end_in(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    ids = sa_select(col(Enterprise.id)).where(condition)
    return or_(col(Manifest.shipper_id).in_(ids), col(Manifest.receiver_id).in_(ids))


def flow_condition(principal: Principal, f: FlowFilter) -> ColumnElement[bool]:
    """A condition on Manifest: received in the year, visible to the principal, within the filter."""
    clauses: list[ColumnElement[bool]] = [
        col(Manifest.year) == f.year,
        col(Manifest.status).in_(RECEIVED_STATUSES),
        col(Manifest.weight_received_t).is_not(None),
        readable_batches(principal),
    ]
    if f.categories:
        clauses.append(col(Manifest.category_code).in_(list(f.categories)))
    if f.route:
        clauses.append(col(Manifest.route) == f.route)
    if f.region:
        clauses.append(_one_end_in(region_clause(f.region)))
    if f.park is not None:
        clauses.append(_one_end_in(col(Enterprise.park_id) == f.park))
    return and_(*clauses)


class FlowSum(NamedTuple):
    """Received tonnes of a group of batches, and what the allocation makes of them: utilised (allocated to the
    first manifests, the bottom-up figure's part), still held at the intermediaries they were delivered to, and
    drawn from those lots and sent on."""

    origin: Any
    destination: Any
    tonnes: Tonnes
    batches: int
    utilised_t: Tonnes
    held_t: Tonnes = ZERO_T
    forwarded_t: Tonnes = ZERO_T


def share_kg(placement: Placement) -> Any:
    """Kilograms of a manifest's shares at one placement (a correlated subquery on Manifest; NULL when none)."""
    share = SHARES.c
    return (
        sa_select(func.sum(share.kg))
        .where(share.manifest_id == col(Manifest.id), share.placement == placement.value)
        .scalar_subquery()
    )


def drawn_kg() -> Any:
    """Kilograms drawn from a manifest's lot by the forwardings that named it or drew from it (NULL when none)."""
    draw = DRAWS.c
    return sa_select(func.sum(draw.kg)).where(draw.source_id == col(Manifest.id)).scalar_subquery()


def _kg_sum(expression: Any) -> Any:
    # Sums of whole kilograms, read back as exact tonnes.
    return type_coerce(func.coalesce(func.sum(func.coalesce(expression, 0)), 0), TonnesKg())


def _sums() -> list[Any]:
    received = col(Manifest.weight_received_t)
    return [
        func.coalesce(func.sum(received), 0.0),
        func.count(),
        # Final tonnes allocated to this hop, where it is a utilisation route at a licensed receiver: the rate
        # engine's own test, on the same shares as its bottom-up figure.
        _kg_sum(case((manifest_utilised(), share_kg(Placement.final)), else_=0)),
        _kg_sum(share_kg(Placement.held)),
        _kg_sum(drawn_kg()),
    ]


def grouped_sums(
    session: Session, condition: ColumnElement[bool], origin: Any = None, destination: Any = None
) -> list[FlowSum]:
    """Received tonnes grouped by up to two expressions over Manifest, `Shipper` and `Receiver`, largest first.

    An expression left out is not grouped on (its field of the answer is None); with neither, one row of totals.
    """
    groups = [g for g in (origin, destination) if g is not None]
    query = (
        sa_select(*groups, *_sums())
        .select_from(Manifest)
        .join(Shipper, col(Shipper.id) == col(Manifest.shipper_id))
        .join(Receiver, col(Receiver.id) == col(Manifest.receiver_id))
        .where(condition)
    )
    if groups:
        query = query.group_by(*groups)
    rows = []
    for row in session.execute(query):
        values = list(row)
        keys = [values.pop(0) if g is not None else None for g in (origin, destination)]
        tonnes, batches, utilised, held, forwarded = values
        if not groups and not batches:
            continue  # an ungrouped aggregate over nothing still answers one row
        rows.append(
            FlowSum(
                keys[0], keys[1], Decimal(tonnes), int(batches), Decimal(utilised), Decimal(held), Decimal(forwarded)
            )
        )
    rows.sort(key=lambda r: (-r.tonnes, str(r.origin), str(r.destination)))
    return rows


def total(session: Session, condition: ColumnElement[bool]) -> FlowSum:
    """Received tonnes, batches, and the utilised, held and forwarded parts over every batch of the condition."""
    tonnes, batches, utilised, held, forwarded = session.execute(
        sa_select(*_sums()).select_from(Manifest).where(condition)
    ).one()
    return FlowSum(None, None, Decimal(tonnes), int(batches), Decimal(utilised), Decimal(held), Decimal(forwarded))


def pair_count(session: Session, condition: ColumnElement[bool]) -> int:
    """How many distinct shipper -> receiver pairs the batches of the condition form."""
    pairs = (
        sa_select(col(Manifest.shipper_id), col(Manifest.receiver_id))
        .where(condition)
        .group_by(col(Manifest.shipper_id), col(Manifest.receiver_id))
        .subquery()
    )
    return int(session.execute(sa_select(func.count()).select_from(pairs)).scalar_one())


def flow_years(*, session: Session, principal: Principal) -> list[int]:
    """The years with received batches the principal may see, newest first."""
    # The few distinct years come from the (year, category) index; each is then kept if one visible batch exists,
    # which stops at the first match instead of testing the scope on every batch of every year.
    years = sa_select(col(Manifest.year).label("year")).distinct().subquery("years")
    visible = sa_select(col(Manifest.id)).where(
        col(Manifest.year) == years.c.year,
        col(Manifest.status).in_(RECEIVED_STATUSES),
        readable_batches(principal),
    )
    query = sa_select(years.c.year).where(exists(visible))
    return sorted((int(y) for y in session.execute(query).scalars()), reverse=True)


def region_names(session: Session, adcodes: Sequence[str | None]) -> dict[str, tuple[str, str | None]]:
    """zh and en names of regions by adcode."""
    keys = sorted({a for a in adcodes if a})
    if not keys:
        return {}
    query = sa_select(col(Region.adcode), col(Region.name_zh), col(Region.name_en)).where(col(Region.adcode).in_(keys))
    return {row[0]: (row[1], row[2]) for row in session.execute(query)}


def category_names(session: Session, codes: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
    """zh and en names of waste categories by code (all of them when no codes are given)."""
    query = sa_select(col(WasteCategory.code), col(WasteCategory.name_zh), col(WasteCategory.name_en))
    if codes is not None:
        query = query.where(col(WasteCategory.code).in_(list(codes)))
    return {row[0]: (row[1], row[2]) for row in session.execute(query.order_by(col(WasteCategory.code)))}
