"""Sankey diagrams of a year's tonnes followed to their end: generator -> intermediary -> utiliser or disposer.

Built from the allocation (flows/waste/chains.py, table manifest_share) through its summary kept on write
(summary_path, flows/waste/summaries.py), not from the lorries: every first manifest of the year (its origin year, as
the rate counts it) is followed to where its kilograms are now. Tonnes at a final step (a utilisation route or
disposal) run from the left column to the right one; those that passed an intermediary (collector, store,
pre-treatment plant: routes storage and transfer) run through the middle column, and those an intermediary still
holds stop there. So the right column adds up to the allocated final tonnes, each tonne counted once however many
lorries carried it, and a middle node takes in what it sends on plus what it holds. Tonnes still on the road are
left out until they arrive.

Two diagrams: category -> the route of the first hop to an intermediary -> the final route; and the generator's
prefecture -> the prefecture of the intermediary that holds the tonnes or sent them on last -> the final receiver's.
The summary names the parties of each path, not their regions, so a region is read from the enterprise as it is now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, String, Table, and_, case, func, literal_column, null, or_, true, type_coerce
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from flows.access.scope import readable_enterprise_ids, region_clause
from flows.kernel.principal import Principal
from flows.waste.movements import (
    FlowFilter,
    Receiver,
    Shipper,
    category_names,
    parse_filter,
    region_names,
)
from models import Enterprise, SummaryPath
from models.enums import Placement, UserRole
from models.quantity import Tonnes, TonnesKg

PATHS: Table = SummaryPath.__table__  # type: ignore[attr-defined]
Generator = aliased(Enterprise, name="generator")

STRAIGHT, VIA, HELD = "straight", "via", "held"  # how a share reached where it is


def _inline(value: str) -> ColumnElement[str]:
    # Constants of our own written inline: PostgreSQL matches a GROUP BY expression to the SELECT's only when they
    # are written the same, and two bind parameters never are (as in flows/waste/rates.py).
    return literal_column(f"'{value}'", String)


def _at(placement: Placement) -> ColumnElement[bool]:
    placed: ColumnElement[bool] = PATHS.c.placement == _inline(placement.value)
    return placed


class Path(NamedTuple):
    """Tonnes of the year that took one path: from `origin`, through `via` (None: straight), to `end` (None: held at
    `via`), with the part utilised at a licensed receiver and the first manifests they came from (a first manifest
    whose tonnes reached several receivers, or were sent on by several intermediaries, counts once for each)."""

    origin: str
    via: str | None
    end: str | None
    tonnes: Tonnes
    utilised_t: Tonnes
    batches: int


@dataclass(frozen=True)
class SankeyTotals:
    """What the diagrams add up to: final tonnes (the right column), of which utilised, and held at intermediaries."""

    final_t: Tonnes
    utilised_t: Tonnes
    held_t: Tonnes
    via_t: Tonnes  # of the final and held tonnes, those that passed an intermediary
    batches: int  # first manifests followed, once for each path they took (the sum of the paths' column)

    @property
    def tonnes(self) -> Tonnes:
        """Every tonne followed: at a final step or held on the way."""
        return self.final_t + self.held_t


@dataclass(frozen=True)
class SankeyData:
    """The two diagrams of one year and scope, with the names of their nodes."""

    filter: FlowFilter
    total: SankeyTotals
    by_route: list[Path]  # category code -> route of the first hop -> final route
    by_place: list[Path]  # generator's prefecture -> intermediary's -> final receiver's ('' outside every region)
    categories: dict[str, tuple[str, str]]
    regions: dict[str, tuple[str, str | None]]


def default_region(principal: Principal) -> str | None:
    """The scope a diagram shows when none is chosen: a bureau's own region; everything visible otherwise."""
    return principal.scope_adcode if principal.role is UserRole.bureau else None


def _any_party_in(ids: Any) -> ColumnElement[bool]:
    # The generator, the first intermediary, and both ends of the manifest the tonnes are in now.
    p = PATHS.c
    return or_(p.generator_id.in_(ids), p.first_receiver_id.in_(ids), p.shipper_id.in_(ids), p.receiver_id.in_(ids))


def path_condition(principal: Principal, f: FlowFilter) -> ColumnElement[bool]:
    """A condition on summary_path: paths of the filter's year and categories with a party visible to the principal
    and, when asked, in the region or park."""
    p = PATHS.c
    clauses: list[ColumnElement[bool]] = [p.year == f.year]
    if principal.role is not UserRole.admin:
        clauses.append(_any_party_in(readable_enterprise_ids(principal)))
    if f.categories:
        clauses.append(p.category_code.in_(list(f.categories)))
    if f.region:
        clauses.append(_any_party_in(sa_select(col(Enterprise.id)).where(region_clause(f.region))))
    if f.park is not None:
        clauses.append(_any_party_in(sa_select(col(Enterprise.id)).where(col(Enterprise.park_id) == f.park)))
    return and_(true(), *clauses)


def _stage() -> Any:
    return case(
        (_at(Placement.held), _inline(HELD)),
        (PATHS.c.straight, _inline(STRAIGHT)),
        else_=_inline(VIA),
    )


def _kg(expression: Any) -> Any:
    return type_coerce(func.coalesce(func.sum(expression), 0), TonnesKg())


def _from_paths() -> Any:
    p = PATHS.c
    return (
        PATHS.join(Generator, col(Generator.id) == p.generator_id)
        .join(Shipper, col(Shipper.id) == p.shipper_id)
        .join(Receiver, col(Receiver.id) == p.receiver_id)
    )


def paths(session: Session, condition: ColumnElement[bool], origin: Any, via: Any, end: Any) -> list[Path]:
    """The tonnes of the condition grouped by path: origin, intermediary (for tonnes that passed one), final end."""
    p = PATHS.c
    stage = _stage()
    # No middle for tonnes that went straight, no end for tonnes held: one path per (origin, via, end).
    via = case((stage == _inline(STRAIGHT), null()), else_=via)
    end = case((_at(Placement.held), null()), else_=end)
    query = (
        sa_select(stage, origin, via, end, _kg(p.kg), _kg(p.utilised_kg), func.coalesce(func.sum(p.origins), 0))
        .select_from(_from_paths())
        .where(condition)
        .group_by(stage, origin, via, end)
    )
    out = []
    for kind, o, v, e, tonnes, utilised, batches in session.execute(query):
        out.append(
            Path(
                origin=_text(o),
                via=None if kind == STRAIGHT else _text(v),
                end=None if kind == HELD else _text(e),
                tonnes=Decimal(tonnes),
                utilised_t=Decimal(utilised),
                batches=int(batches),
            )
        )
    out.sort(key=lambda x: (-x.tonnes, x.origin, x.via or "", x.end or ""))
    return out


def _text(value: Any) -> str:
    # Enterprises outside every loaded region have no prefecture: their place is the empty key.
    return "" if value is None else str(value)


def totals(session: Session, condition: ColumnElement[bool]) -> SankeyTotals:
    """Final, utilised, held and passed-an-intermediary tonnes, and the first manifests by path, of the condition."""
    p = PATHS.c
    final = _at(Placement.final)
    row = session.execute(
        sa_select(
            _kg(case((final, p.kg), else_=0)),
            _kg(p.utilised_kg),
            _kg(case((final, 0), else_=p.kg)),
            # Held tonnes are at an intermediary, even in their own first manifest (the lot it delivered).
            _kg(case((and_(final, p.straight), 0), else_=p.kg)),
            func.coalesce(func.sum(p.origins), 0),
        )
        .select_from(PATHS)
        .where(condition)
    ).one()
    final_t, utilised_t, held_t, via_t, batches = row
    return SankeyTotals(Decimal(final_t), Decimal(utilised_t), Decimal(held_t), Decimal(via_t), int(batches))


def _route_keys() -> tuple[Any, Any, Any]:
    # A path in its own first manifest went straight; otherwise its first hop went to an intermediary by this route.
    p = PATHS.c
    return p.category_code, p.first_route, p.route


def _place_keys() -> tuple[Any, Any, Any]:
    # Held: at the receiver of the lot it is in. Final: sent on last by the shipper of the final manifest.
    via = case((_at(Placement.held), col(Receiver.prefecture_adcode)), else_=col(Shipper.prefecture_adcode))
    return col(Generator.prefecture_adcode), via, col(Receiver.prefecture_adcode)


def sankey(
    *,
    session: Session,
    principal: Principal,
    year: int,
    region: str | None = None,
    category: str | None = None,
    park: int | None = None,
) -> SankeyData:
    """A year's tonnes followed to their end by category and by prefecture, in the chosen scope."""
    f = parse_filter(
        session=session,
        principal=principal,
        year=year,
        category=category,
        region=region or default_region(principal),
        park=park,
    )
    condition = path_condition(principal, f)
    by_route = paths(session, condition, *_route_keys())
    by_place = paths(session, condition, *_place_keys())
    return SankeyData(
        filter=f,
        total=totals(session, condition),
        by_route=by_route,
        by_place=by_place,
        categories=category_names(session, sorted({p.origin for p in by_route})),
        regions=region_names(session, _adcodes(by_place)),
    )


def _adcodes(rows: Sequence[Path]) -> list[str]:
    return sorted({key for p in rows for key in (p.origin, p.via, p.end) if key})


@dataclass(frozen=True)
class Node:
    """A node of a diagram with its column, the tonnes in and out, and what it holds (in = out + held)."""

    name: str
    depth: int
    tonnes_in: Tonnes
    tonnes_out: Tonnes

    @property
    def held_t(self) -> Tonnes:
        return self.tonnes_in - self.tonnes_out if self.depth == 1 else Decimal(0)


def graph(rows: Sequence[Path], prefixes: tuple[str, str, str]) -> tuple[list[Node], dict[tuple[str, str], Tonnes]]:
    """Nodes (named prefix:key, one column each) and links of a diagram; a path through an intermediary is two links."""
    left, middle, right = prefixes
    links: dict[tuple[str, str], Tonnes] = {}
    for p in rows:
        source = f"{left}:{p.origin}"
        if p.via is not None:
            hop = f"{middle}:{p.via}"
            links[(source, hop)] = links.get((source, hop), Decimal(0)) + p.tonnes
            source = hop
        if p.end is not None:
            target = f"{right}:{p.end}"
            links[(source, target)] = links.get((source, target), Decimal(0)) + p.tonnes
    depth = {left: 0, middle: 1, right: 2}
    ins: dict[str, Tonnes] = {}
    outs: dict[str, Tonnes] = {}
    for (source, target), tonnes in links.items():
        outs[source] = outs.get(source, Decimal(0)) + tonnes
        ins[target] = ins.get(target, Decimal(0)) + tonnes
    names = list(dict.fromkeys(name for pair in links for name in pair))
    names.sort(key=lambda n: depth[n.split(":", 1)[0]])
    nodes = [Node(n, depth[n.split(":", 1)[0]], ins.get(n, Decimal(0)), outs.get(n, Decimal(0))) for n in names]
    return nodes, links
