"""The flow map: received tonnes as lines between places, enterprises as points, regions by rate against the target.

Flows are aggregated in SQL at one of two levels: prefecture -> prefecture when the enterprise pairs are many (the
map stays light and fast), enterprise -> enterprise when they are few or the user has narrowed the map to a region
or a park. Lines run between the places' positions with a slight bend to the right of their direction, so that
the two directions between a pair of places stay apart; a prefecture's flows within itself are a point.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, exists, false, func, or_, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.scope import can_read_enterprise, readable_batches, readable_enterprises
from flows.kernel.adcode import region_prefix
from flows.kernel.errors import Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from flows.waste import rates
from flows.waste.movements import (
    FlowFilter,
    FlowSum,
    Receiver,
    Shipper,
    category_names,
    flow_condition,
    grouped_sums,
    pair_count,
    region_names,
    total,
)
from flows.waste.targets import TargetPoint, resolve_category_set
from maps.geometry import from_geojson, label_point, lat_lon_bounds, to_geojson
from models import Enterprise, EnterpriseRoleLink, Manifest, Park, Region
from models.enums import EnterpriseRole, RegionLevel, UserRole
from models.quantity import Tonnes

Level = Literal["prefecture", "enterprise"]
LEVELS: tuple[str, ...] = ("auto", "prefecture", "enterprise")
# Above this many shipper -> receiver pairs the whole-scope map rolls up to prefectures.
ENTERPRISE_PAIRS_MAX = 200
# Sideways bend of a flow line at its middle, as a share of its length.
BEND = 0.12
# Coordinates to 4 decimals (about 10 m): plenty for a province map and a third fewer bytes than full floats.
PLACES = 4
# An enterprise's main role on the map: the first of these it plays.
ROLE_ORDER: tuple[EnterpriseRole, ...] = (
    EnterpriseRole.generator,
    EnterpriseRole.utiliser,
    EnterpriseRole.recycler,
    EnterpriseRole.disposer,
    EnterpriseRole.collector,
    EnterpriseRole.transporter,
    EnterpriseRole.battery_maker,
    EnterpriseRole.vehicle_maker,
    EnterpriseRole.collection_outlet,
    EnterpriseRole.cascade_user,
    EnterpriseRole.dismantler,
)
# Legend groups of the main roles.
ROLE_GROUP: dict[str, str] = {
    "generator": "generator",
    "utiliser": "utiliser",
    "recycler": "utiliser",
    "disposer": "disposer",
    "collector": "intermediary",
    "transporter": "intermediary",
    "battery_maker": "battery",
    "vehicle_maker": "battery",
    "collection_outlet": "battery",
    "cascade_user": "battery",
    "dismantler": "battery",
}
ROLE_GROUPS: tuple[str, ...] = ("generator", "utiliser", "disposer", "intermediary", "battery")


def _round(value: float) -> float:
    return round(value, PLACES)


def _key(value: Any) -> str:
    # Enterprises outside every loaded region have no prefecture: their place is the empty key.
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------------------------------------------
# Flows between places


@dataclass(frozen=True)
class Place:
    """One end of a flow: a prefecture (adcode) or an enterprise (id), with its names and map position."""

    key: str
    name_zh: str
    name_en: str | None
    lon: float
    lat: float


@dataclass(frozen=True)
class Flow:
    """Received tonnes from one place to another in the filter: the lorries' tonnes, and of them the allocated
    utilised tonnes, and the tonnes delivered to intermediaries that they still hold or have forwarded."""

    origin: Place
    destination: Place
    tonnes: Tonnes
    batches: int
    utilised_t: Tonnes
    held_t: Tonnes = Decimal(0)
    forwarded_t: Tonnes = Decimal(0)

    @property
    def within(self) -> bool:
        return self.origin.key == self.destination.key


@dataclass(frozen=True)
class FlowLayer:
    """The flows of a filter at one level, largest first, with the totals they add up to."""

    level: Level
    requested: str
    pairs: int  # shipper -> receiver pairs behind the flows
    total: FlowSum
    flows: list[Flow]

    def geojson(self, top: int | None = None) -> dict[str, Any]:
        """A FeatureCollection: lines between places, points for a prefecture's flows within itself (the largest
        `top` of them, all by default; the totals are always the filter's)."""
        features = []
        for flow in self.flows[:top]:
            a, b = flow.origin, flow.destination
            if flow.within:
                geometry: dict[str, Any] = {"type": "Point", "coordinates": [_round(a.lon), _round(a.lat)]}
            else:
                geometry = {"type": "LineString", "coordinates": bent_line((a.lon, a.lat), (b.lon, b.lat))}
            features.append(
                {
                    "type": "Feature",
                    "geometry": geometry,
                    "properties": {
                        "kind": "within" if flow.within else "flow",
                        "level": self.level,
                        "from": a.key,
                        "to": b.key,
                        "from_zh": a.name_zh,
                        "from_en": a.name_en,
                        "to_zh": b.name_zh,
                        "to_en": b.name_en,
                        "tonnes": round(flow.tonnes, 3),
                        "batches": flow.batches,
                        "utilised_t": round(flow.utilised_t, 3),
                        "held_t": round(flow.held_t, 3),
                        "forwarded_t": round(flow.forwarded_t, 3),
                    },
                }
            )
        return {
            "type": "FeatureCollection",
            "level": self.level,
            "pairs": self.pairs,
            "tonnes": round(self.total.tonnes, 3),
            "batches": self.total.batches,
            "utilised_t": round(self.total.utilised_t, 3),
            "held_t": round(self.total.held_t, 3),
            "forwarded_t": round(self.total.forwarded_t, 3),
            "flows": len(self.flows),
            "features": features,
        }

    def scale(self) -> FlowScale:
        """The one scale of the layer's symbols, set by its largest flow whatever the top-N shows."""
        return FlowScale(max(float(flow.tonnes) for flow in self.flows) if self.flows else 0.0)

    def top(self, n: int | None) -> TopFlows:
        """The largest n flows (all when n is None or beyond their number): how many, and the tonnes they carry."""
        count = len(self.flows)
        shown = count if n is None else max(0, min(n, count))
        covered = sum((flow.tonnes for flow in self.flows[:shown]), Decimal(0))
        return TopFlows(shown, count, covered, share(float(covered), float(self.total.tonnes)))


# Symbols of flows: a line's width and an internal flow's circle radius are the same pixels for the same tonnes,
# on a square-root scale (a circle's area, a line's cross-section), with the largest flow at FLOW_MAX_PX.
FLOW_MAX_PX = 16.0
FLOW_MIN_PX = 1.5


@dataclass(frozen=True)
class FlowScale:
    """Pixels for tonnes: the width of a line, the radius of an internal flow's circle."""

    max_tonnes: float
    max_px: float = FLOW_MAX_PX

    def px(self, tonnes: float) -> float:
        """The symbol size of a flow, never thinner than FLOW_MIN_PX so that the smallest stays visible."""
        if self.max_tonnes <= 0:
            return FLOW_MIN_PX
        return max(FLOW_MIN_PX, self.max_px * math.sqrt(max(0.0, tonnes) / self.max_tonnes))

    def samples(self) -> list[float]:
        """Round tonnages for the legend: the largest flow rounded down to one significant figure, and a tenth of it."""
        if self.max_tonnes <= 0:
            return []
        big = 10 ** math.floor(math.log10(self.max_tonnes))
        top = math.floor(self.max_tonnes / big) * big
        return [top, top / 10]


@dataclass(frozen=True)
class TopFlows:
    """The largest flows a map shows: their number, out of how many, and the tonnes they carry."""

    shown: int
    count: int
    tonnes: Decimal
    share: float | None  # of all the filter's received tonnes


def bent_line(a: tuple[float, float], b: tuple[float, float]) -> list[list[float]]:
    """Three points from a to b, the middle one pushed to the right of the direction of travel."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    mid = ((a[0] + b[0]) / 2 + BEND * dy, (a[1] + b[1]) / 2 - BEND * dx)
    return [[_round(p[0]), _round(p[1])] for p in (a, mid, b)]


def is_zoomed(f: FlowFilter) -> bool:
    """Narrowed to a park or to a region below the province."""
    return f.park is not None or (f.region is not None and not f.region.endswith("0000"))


def choose_level(requested: str, pairs: int, f: FlowFilter, max_pairs: int = ENTERPRISE_PAIRS_MAX) -> Level:
    """The level asked for, or for "auto": enterprises when few or zoomed in, prefectures otherwise."""
    if requested not in LEVELS:
        raise InvalidInput("pages.map.one_of", field="level", column=Term("field.level"), allowed=", ".join(LEVELS))
    if requested == "prefecture":
        return "prefecture"
    if requested == "enterprise":
        return "enterprise"
    return "enterprise" if is_zoomed(f) or pairs <= max_pairs else "prefecture"


def _prefecture_places(session: Session, keys: set[str]) -> dict[str, Place]:
    # A prefecture's position is the centre of its enterprises: where its industry is, and no boundary to load.
    names = region_names(session, sorted(k for k in keys if k))
    column = col(Enterprise.prefecture_adcode)
    query = (
        sa_select(column, func.avg(col(Enterprise.lon)), func.avg(col(Enterprise.lat)))
        .where(or_(column.in_(sorted(k for k in keys if k)), column.is_(None) if "" in keys else false()))
        .group_by(column)
    )
    places = {}
    for adcode, lon, lat in session.execute(query):
        key = _key(adcode)
        name_zh, name_en = names.get(key, ("—", None))
        places[key] = Place(key, name_zh, name_en, float(lon), float(lat))
    return places


def _enterprise_places(session: Session, keys: set[str]) -> dict[str, Place]:
    ids = sorted(int(k) for k in keys)
    query = sa_select(
        col(Enterprise.id), col(Enterprise.name_zh), col(Enterprise.name_en), col(Enterprise.lon), col(Enterprise.lat)
    ).where(col(Enterprise.id).in_(ids))
    return {str(r[0]): Place(str(r[0]), r[1], r[2], float(r[3]), float(r[4])) for r in session.execute(query)}


def _ends(level: Level) -> tuple[Any, Any]:
    if level == "prefecture":
        return col(Shipper.prefecture_adcode), col(Receiver.prefecture_adcode)
    return col(Shipper.id), col(Receiver.id)


def flow_layer(
    *,
    session: Session,
    principal: Principal,
    f: FlowFilter,
    level: str = "auto",
    max_pairs: int = ENTERPRISE_PAIRS_MAX,
) -> FlowLayer:
    """The filter's received tonnes between places, at the level asked for or chosen by the number of pairs."""
    condition = flow_condition(principal, f)
    pairs = pair_count(session, condition)
    chosen = choose_level(level, pairs, f, max_pairs)
    sums = grouped_sums(session, condition, *_ends(chosen))
    keys = {_key(s.origin) for s in sums} | {_key(s.destination) for s in sums}
    places = _prefecture_places(session, keys) if chosen == "prefecture" else _enterprise_places(session, keys)
    flows = [
        Flow(
            places[_key(s.origin)],
            places[_key(s.destination)],
            s.tonnes,
            s.batches,
            s.utilised_t,
            s.held_t,
            s.forwarded_t,
        )
        for s in sums
    ]
    return FlowLayer(level=chosen, requested=level, pairs=pairs, total=total(session, condition), flows=flows)


# ---------------------------------------------------------------------------------------------------------------
# Details of one flow


@dataclass(frozen=True)
class FlowDetail:
    """One flow of the map opened: its totals, by category and route, and the enterprise pairs behind it."""

    level: Level
    origin: Place
    destination: Place
    total: FlowSum
    by_category_route: list[FlowSum]  # origin = category code, destination = route
    pairs: list[tuple[Place, Place, FlowSum]]
    more_pairs: int
    categories: dict[str, tuple[str, str]]


def _end_is(alias: Any, level: Level, key: str) -> ColumnElement[bool]:
    if level == "prefecture":
        column = col(alias.prefecture_adcode)
        return column.is_(None) if key == "" else column == key
    if not key.isdigit():
        raise InvalidInput("pages.map.enterprise_id_not_a_number", field="from", key=key)
    return col(alias.id) == int(key)


def flow_detail(
    *,
    session: Session,
    principal: Principal,
    f: FlowFilter,
    level: str,
    origin: str,
    destination: str,
    limit: int = 8,
) -> FlowDetail:
    """The received batches of the filter from one place to another that the principal may see."""
    if level not in ("prefecture", "enterprise"):
        raise InvalidInput("pages.map.flow_level", field="level", column=Term("field.level"))
    chosen: Level = "prefecture" if level == "prefecture" else "enterprise"
    ends = and_(_end_is(Shipper, chosen, origin), _end_is(Receiver, chosen, destination))
    condition = and_(flow_condition(principal, f), ends)
    by = grouped_sums(session, condition, col(Manifest.category_code), col(Manifest.route))
    if not by:
        raise NotFound(
            "pages.map.no_flow", field="from", origin=origin or "—", destination=destination or "—", year=f.year
        )
    # The condition names both ends: the totals are taken over the same join.
    overall = grouped_sums(session, condition)[0]
    places = (_prefecture_places if chosen == "prefecture" else _enterprise_places)(session, {origin, destination})
    pair_sums = grouped_sums(session, condition, col(Shipper.id), col(Receiver.id))
    shown = pair_sums[:limit]
    firms = _enterprise_places(session, {str(p.origin) for p in shown} | {str(p.destination) for p in shown})
    pairs = [(firms[str(p.origin)], firms[str(p.destination)], p) for p in shown]
    return FlowDetail(
        level=chosen,
        origin=places[origin],
        destination=places[destination],
        total=overall._replace(origin=origin, destination=destination),
        by_category_route=by,
        pairs=pairs,
        more_pairs=max(0, len(pair_sums) - limit),
        categories=category_names(session, sorted({str(s.origin) for s in by})),
    )


# ---------------------------------------------------------------------------------------------------------------
# Enterprises as points


def main_role(roles: Sequence[str]) -> str | None:
    """The role an enterprise is drawn by: the first of ROLE_ORDER it plays."""
    held = set(roles)
    return next((r.value for r in ROLE_ORDER if r.value in held), None)


def roles_of(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    """The roles of enterprises, in ROLE_ORDER."""
    order = {r.value: i for i, r in enumerate(ROLE_ORDER)}
    out: dict[int, list[str]] = defaultdict(list)
    if ids:
        query = sa_select(col(EnterpriseRoleLink.enterprise_id), col(EnterpriseRoleLink.role)).where(
            col(EnterpriseRoleLink.enterprise_id).in_(list(ids))
        )
        for eid, role in session.execute(query):
            out[int(eid)].append(str(role))
    return {eid: sorted(rs, key=lambda r: order.get(r, len(order))) for eid, rs in out.items()}


def _place_condition(f: FlowFilter) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if f.region:
        clauses.append(col(Enterprise.prefecture_adcode).startswith(region_prefix(f.region)))
    if f.park is not None:
        clauses.append(col(Enterprise.park_id) == f.park)
    return and_(true(), *clauses)


def enterprise_layer(*, session: Session, principal: Principal, f: FlowFilter) -> dict[str, Any]:
    """Points: the enterprises the principal may read (in the filter's place) and the other ends of its flows.

    Each with the tonnes it sent and received, and of those received: utilised there (allocated), still held there
    and forwarded from there (an intermediary's lots), so that a collector never reads as a utiliser.
    """
    condition = flow_condition(principal, f)
    sent = {s.origin: s for s in grouped_sums(session, condition, origin=col(Shipper.id))}
    received = {s.destination: s for s in grouped_sums(session, condition, destination=col(Receiver.id))}
    ends = sorted(set(sent) | set(received))
    query = (
        sa_select(
            col(Enterprise.id),
            col(Enterprise.name_zh),
            col(Enterprise.name_en),
            col(Enterprise.lon),
            col(Enterprise.lat),
            col(Enterprise.park_id),
            case((readable_enterprises(principal), 1), else_=0).label("readable"),
        )
        .where(or_(and_(readable_enterprises(principal), _place_condition(f)), col(Enterprise.id).in_(ends)))
        .order_by(col(Enterprise.id))
    )
    rows = session.execute(query).all()
    roles = roles_of(session, [int(r[0]) for r in rows])
    features = []
    for eid, name_zh, name_en, lon, lat, park_id, readable in rows:
        held = roles.get(int(eid), [])
        role = main_role(held)
        out, into = sent.get(eid), received.get(eid)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [_round(lon), _round(lat)]},
                "properties": {
                    "kind": "enterprise",
                    "id": int(eid),
                    "name_zh": name_zh,
                    "name_en": name_en,
                    "role": role,
                    "group": ROLE_GROUP.get(role or "", "other"),
                    "roles": held,
                    "park_id": park_id,
                    "readable": bool(readable),
                    "sent_t": round(float(out.tonnes if out else 0), 3),
                    "received_t": round(float(into.tonnes if into else 0), 3),
                    "utilised_t": round(float(into.utilised_t if into else 0), 3),
                    "held_t": round(float(into.held_t if into else 0), 3),
                    "forwarded_t": round(float(into.forwarded_t if into else 0), 3),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


# ---------------------------------------------------------------------------------------------------------------
# Places opened: region, park, enterprise


@dataclass(frozen=True)
class PlaceFlows:
    """Received tonnes leaving a place, arriving in it and moving within it, with the main partners."""

    outgoing: FlowSum
    incoming: FlowSum
    within: FlowSum
    to: list[tuple[Place, FlowSum]]
    from_: list[tuple[Place, FlowSum]]


def _inside(alias: Any, kind: str, key: str) -> ColumnElement[bool]:
    match kind:
        case "region":
            prefix = region_prefix(key)
            if len(prefix) == 6:
                return col(alias.county_adcode) == key
            return col(alias.prefecture_adcode).startswith(prefix)
        case "park":
            return col(alias.park_id) == int(key)
    return col(alias.id) == int(key)


def place_flows(
    *, session: Session, principal: Principal, f: FlowFilter, kind: str, key: str, limit: int = 5
) -> PlaceFlows:
    """The visible received tonnes of the filter into, out of and within a region, a park or an enterprise."""
    condition = flow_condition(principal, f)
    out_of, into = _inside(Shipper, kind, key), _inside(Receiver, kind, key)
    sides = grouped_sums(
        session, and_(condition, or_(out_of, into)), case((out_of, 1), else_=0), case((into, 1), else_=0)
    )
    zero = FlowSum(None, None, Decimal(0), 0, Decimal(0))
    by_side = {(int(s.origin), int(s.destination)): s for s in sides}
    # Partners: prefectures for a region, enterprises for a park or an enterprise.
    partner_level: Level = "prefecture" if kind == "region" else "enterprise"
    ship_end, recv_end = _ends(partner_level)
    to = grouped_sums(session, and_(condition, out_of, ~into), destination=recv_end)[:limit]
    from_ = grouped_sums(session, and_(condition, into, ~out_of), origin=ship_end)[:limit]
    keys = {_key(s.destination) for s in to} | {_key(s.origin) for s in from_}
    places = (_prefecture_places if partner_level == "prefecture" else _enterprise_places)(session, keys)
    return PlaceFlows(
        outgoing=by_side.get((1, 0), zero),
        incoming=by_side.get((0, 1), zero),
        within=by_side.get((1, 1), zero),
        to=[(places[_key(s.destination)], s) for s in to],
        from_=[(places[_key(s.origin)], s) for s in from_],
    )


@dataclass(frozen=True)
class EnterpriseInfo:
    """An enterprise opened on the map."""

    id: int
    uscc: str
    name_zh: str
    name_en: str | None
    roles: list[str]
    park: tuple[int, str, str | None] | None
    prefecture: tuple[str, str, str | None] | None
    readable: bool  # its own data (rate, declarations) is the principal's to read


def enterprise_info(*, session: Session, principal: Principal, enterprise_id: int) -> EnterpriseInfo:
    """An enterprise the principal may read, or the other end of a batch it may see; others are not found."""
    readable = can_read_enterprise(session, principal, enterprise_id)
    if not readable:
        partner = exists(
            sa_select(col(Manifest.id)).where(
                readable_batches(principal),
                or_(col(Manifest.shipper_id) == enterprise_id, col(Manifest.receiver_id) == enterprise_id),
            )
        )
        if not session.execute(sa_select(partner)).scalar():
            raise NotFound("access.enterprise_not_found", field="enterprise_id", enterprise_id=enterprise_id)
    e = session.get(Enterprise, enterprise_id)
    if e is None:  # pragma: no cover - readable or a partner implies it exists
        raise NotFound("access.enterprise_not_found", field="enterprise_id", enterprise_id=enterprise_id)
    park = session.get(Park, e.park_id) if e.park_id else None
    pref = region_names(session, [e.prefecture_adcode]) if e.prefecture_adcode else {}
    return EnterpriseInfo(
        id=enterprise_id,
        uscc=e.uscc,
        name_zh=e.name_zh,
        name_en=e.name_en,
        roles=roles_of(session, [enterprise_id]).get(enterprise_id, []),
        park=(park.id, park.name_zh, park.name_en) if park and park.id else None,
        prefecture=(e.prefecture_adcode, *pref[e.prefecture_adcode]) if e.prefecture_adcode in pref else None,
        readable=readable,
    )


def scope_rate(
    *,
    session: Session,
    principal: Principal,
    year: int,
    region: str | None = None,
    park: int | None = None,
    enterprise: int | None = None,
) -> rates.RateReport | None:
    """The rate engine's figure for a place, or None where the place's own data is not the principal's to read."""
    try:
        return rates.utilisation(
            session=session, principal=principal, year=year, region=region, park=park, enterprise=enterprise
        )
    except (Forbidden, NotFound):
        return None


# ---------------------------------------------------------------------------------------------------------------
# Regions coloured by their rate against the target


class RateClass(StrEnum):
    """Where a region's rate stands against the target it is held to."""

    meets = "meets"
    near = "near"  # below, by at most NEAR_PTS points
    below = "below"  # below by more than NEAR_PTS points
    no_data = "no_data"
    over_100 = "over_100"  # a whole region above 100% is a data error, never a result


NEAR_PTS = 5.0
RATE_CLASSES: tuple[RateClass, ...] = tuple(RateClass)


def rate_class(rate: float | None, reference: float | None) -> RateClass:
    """The class of a rate against the reference target (full precision; the display truncates)."""
    if rate is None or reference is None:
        return RateClass.no_data
    if rate > 1:
        return RateClass.over_100
    if rate >= reference:
        return RateClass.meets
    # A hair of tolerance so that exactly 5.0 points below, as printed, stays "within 5 points".
    return RateClass.near if (reference - rate) * 100 <= NEAR_PTS + 1e-9 else RateClass.below


@dataclass(frozen=True)
class Reference:
    """The target a year's rates are held against, and how it was chosen."""

    value: float
    year: int
    kind: Literal["path", "next", "last"]  # on the path that year; the next target (before the path); the last one


@dataclass(frozen=True)
class RegionRate:
    adcode: str
    name_zh: str | None
    name_en: str | None
    row: rates.RateRow
    cls: RateClass


@dataclass(frozen=True)
class RegionRates:
    """The rates of the regions one level below a scope, classed against the year's reference target."""

    year: int
    level: RegionLevel  # of the regions coloured
    parent: str  # the scope they lie in
    report: rates.RateReport
    reference: Reference | None
    regions: list[RegionRate] = field(default_factory=list)

    def by_adcode(self) -> dict[str, RegionRate]:
        return {r.adcode: r for r in self.regions}


def _reference(session: Session, report: rates.RateReport) -> Reference | None:
    if report.target is not None:
        return Reference(report.target, report.year, "path")
    if report.next_target is not None:
        return Reference(report.next_target.value, report.next_target.year, "next")
    # Past the last target: held against the last one reached.
    _cats, path = resolve_category_set(
        session=session, region_adcode=report.target_scope or report.scope.key, year=report.year
    )
    points: list[TargetPoint] = sorted(path.points, key=lambda p: p.year) if path else []
    past = [p for p in points if p.year <= report.year]
    return Reference(past[-1].value, past[-1].year, "last") if past else None


def region_rates(*, session: Session, principal: Principal, year: int, region: str | None = None) -> RegionRates | None:
    """Rates of the divisions below a region (default: the principal's scope); None for park and enterprise users.

    The rate engine resolves the scope (the province for an administrator, a bureau's own region) and refuses a
    region outside it.
    """
    if principal.role not in (UserRole.admin, UserRole.bureau):
        return None
    report = rates.utilisation(session=session, principal=principal, year=year, region=region, by="region")
    reference = _reference(session, report)
    regions = [
        RegionRate(row.key, row.name_zh, row.name_en, row, rate_class(row.rate, reference.value if reference else None))
        for row in report.rows or []
        if row.key
    ]
    level = RegionLevel.prefecture if report.scope.kind == "province" else RegionLevel.county
    return RegionRates(
        year=year, level=level, parent=report.scope.key, report=report, reference=reference, regions=regions
    )


def region_layer(
    *, session: Session, level: RegionLevel, parent: str | None, tolerance: float = 0.005
) -> dict[str, Any]:
    """The boundaries the map colours, simplified for display; the web layer adds each region's rate and style."""
    # Douglas-Peucker without topology preservation: a tenth of the time of the topology-preserving simplification
    # (which would be most of the request), and at 0.005 degrees (about 500 m) a province map shows no difference.
    # PostGIS simplifies in the database and sends GeoJSON text, not the megabytes of the full boundaries.
    postgis = session.get_bind().dialect.name == "postgresql"
    geometry: Any = (
        func.ST_AsGeoJSON(func.ST_Simplify(col(Region.geom), tolerance, True), PLACES + 1)
        if postgis
        else col(Region.geom)
    )
    query = sa_select(
        col(Region.adcode), col(Region.name_zh), col(Region.name_en), col(Region.parent_adcode), geometry
    ).where(col(Region.level) == level)
    if parent is not None:
        query = query.where(col(Region.parent_adcode) == parent)
    features = []
    for adcode, name_zh, name_en, parent_adcode, geom in session.execute(query.order_by(col(Region.adcode))):
        if postgis:
            shape: dict[str, Any] | None = json.loads(geom) if geom else None
        else:
            simple = geom.simplify(tolerance, preserve_topology=False)
            shape = to_geojson(simple if not simple.is_empty else geom.envelope)
        features.append(
            {
                "type": "Feature",
                "id": adcode,
                "geometry": shape,
                "properties": {
                    "adcode": adcode,
                    "name_zh": name_zh,
                    "name_en": name_en,
                    "level": level.value,
                    "parent_adcode": parent_adcode,
                    # The name's place, from the simplified outline drawn: inside what the reader sees.
                    "label_point": [_round(c) for c in label_point(from_geojson(shape))] if shape else None,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


# ---------------------------------------------------------------------------------------------------------------
# The view in the address: what a link to the map reproduces beyond the filter


MAX_ZOOM = 18
_VIEW = re.compile(r"(-?\d{1,3}(?:\.\d{1,7})?),(-?\d{1,3}(?:\.\d{1,7})?),(\d{1,2}(?:\.\d{1,2})?)")
_SELECTION = re.compile(r"(region|park|enterprise):(\d{1,12})|flow:(prefecture|enterprise):(\d{0,12}):(\d{0,12})")


@dataclass(frozen=True)
class MapView:
    """The centre and zoom a link opens the map on (instead of fitting it to the scope)."""

    lat: float
    lon: float
    zoom: float

    def text(self) -> str:
        return f"{self.lat:.5f},{self.lon:.5f},{self.zoom:g}"


def parse_view(text: str | None) -> MapView | None:
    """`lat,lon,zoom` as the map writes it in its address; refused, naming the field, if malformed or off the world."""
    if text is None or not text.strip():
        return None
    found = _VIEW.fullmatch(text.strip())
    if found:
        lat, lon, zoom = (float(g) for g in found.groups())
        if -90 <= lat <= 90 and -180 <= lon <= 180 and zoom <= MAX_ZOOM:
            return MapView(lat, lon, zoom)
    raise InvalidInput("pages.mapread.view_malformed", field="at", column=Term("field.map_view"), value=text[:40])


def parse_selection(text: str | None) -> str | None:
    """What the details panel shows: `region:<adcode>`, `park:<id>`, `enterprise:<id>` or `flow:<level>:<from>:<to>`."""
    if text is None or not text.strip():
        return None
    if _SELECTION.fullmatch(text.strip()) is None:
        raise InvalidInput(
            "pages.mapread.selection_malformed", field="sel", column=Term("field.map_selection"), value=text[:64]
        )
    return text.strip()


def park_bounds(*, session: Session, park_id: int) -> list[list[float]] | None:
    """A park's extent as [[south, west], [north, east]], for a map to open on it; None without a boundary."""
    park = session.get(Park, park_id)
    return lat_lon_bounds(park.boundary) if park is not None and park.boundary is not None else None


def region_info(*, session: Session, adcode: str) -> tuple[str, str, str | None, str]:
    """adcode, names and level of a region (boundaries are not loaded)."""
    row = session.execute(
        sa_select(col(Region.adcode), col(Region.name_zh), col(Region.name_en), col(Region.level)).where(
            col(Region.adcode) == adcode
        )
    ).first()
    if row is None:
        raise NotFound("access.region_not_found", field="adcode", adcode=adcode)
    return str(row[0]), str(row[1]), row[2], str(row[3])


def share(part: float, whole: float) -> float | None:
    """part / whole, or None for an empty whole."""
    return part / whole if whole > 0 and math.isfinite(whole) else None
