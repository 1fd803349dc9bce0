"""Sankey diagrams of received tonnes: by category to route, and by origin prefecture to destination prefecture.

The same batches as the flow map (flows/waste/movements.py): received in the year, at their received weight, visible to
the principal, and with one end in the chosen region when one is chosen. Both diagrams add up to the same total.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ColumnElement
from sqlmodel import Session, col

from flows.kernel.principal import Principal
from flows.waste.movements import (
    FlowFilter,
    FlowSum,
    Receiver,
    Shipper,
    category_names,
    flow_condition,
    grouped_sums,
    parse_filter,
    region_names,
)
from models import Manifest
from models.enums import UserRole


@dataclass(frozen=True)
class SankeyData:
    """The two diagrams of one year and scope, with the names of their nodes."""

    filter: FlowFilter
    total: FlowSum
    by_route: list[FlowSum]  # origin = category code, destination = route
    by_place: list[FlowSum]  # origin = shipper's prefecture adcode, destination = receiver's ('' outside every region)
    categories: dict[str, tuple[str, str]]
    regions: dict[str, tuple[str, str | None]]


def default_region(principal: Principal) -> str | None:
    """The scope a diagram shows when none is chosen: a bureau's own region; everything visible otherwise."""
    return principal.scope_adcode if principal.role is UserRole.bureau else None


def sankey(*, session: Session, principal: Principal, year: int, region: str | None = None) -> SankeyData:
    """Received tonnes of a year by category -> route and origin -> destination prefecture, in the chosen scope."""
    f = parse_filter(session=session, principal=principal, year=year, region=region or default_region(principal))
    condition: ColumnElement[bool] = flow_condition(principal, f)
    by_route = grouped_sums(session, condition, col(Manifest.category_code), col(Manifest.route))
    by_place = [
        s._replace(origin=s.origin or "", destination=s.destination or "")
        for s in grouped_sums(session, condition, col(Shipper.prefecture_adcode), col(Receiver.prefecture_adcode))
    ]
    totals = grouped_sums(session, condition)
    total = totals[0] if totals else FlowSum(None, None, Decimal(0), 0, Decimal(0))
    adcodes = [s.origin for s in by_place] + [s.destination for s in by_place]
    return SankeyData(
        filter=f,
        total=total,
        by_route=by_route,
        by_place=by_place,
        categories=category_names(session, sorted({str(s.origin) for s in by_route})),
        regions=region_names(session, adcodes),
    )
