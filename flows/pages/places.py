"""What the enterprise, park and directory pages show: each block one set-based query, every figure the domain's.

Tonnes follow the manifests' own reckoning (flows.waste.rates): a batch has moved once dispatched (drafts, cancelled and
rejected batches never count), its tonnes are the weight received for batches received (or corrected), and a batch
still on the road is counted apart with its dispatched weight. Rates, flags and chain flags are those of
flows.waste.rates, flows.waste.flags and flows.battery.audit for the same scope; nothing here recomputes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, union
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from flows.access import directory
from flows.access.scope import readable_enterprises, resolve_scope
from flows.battery import audit as battery_audit
from flows.kernel.adcode import prefecture_of, within
from flows.kernel.clock import CST
from flows.kernel.errors import InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from flows.waste import flags, licences, rates
from maps.geometry import to_geojson
from models import (
    BatteryEvent,
    Declaration,
    Enterprise,
    EnterpriseRoleLink,
    Manifest,
    Park,
    Region,
    WasteCategory,
    WhitelistEntry,
)
from models.enums import UTILISATION_ROUTES, EnterpriseRole, ManifestStatus, UserRole
from models.quantity import Tonnes as Weight

# Roles that put an enterprise on the battery chain: its page shows the chain audit's flags.
BATTERY_ROLES = frozenset(
    {
        EnterpriseRole.battery_maker.value,
        EnterpriseRole.vehicle_maker.value,
        EnterpriseRole.collection_outlet.value,
        EnterpriseRole.cascade_user.value,
        EnterpriseRole.recycler.value,
        EnterpriseRole.dismantler.value,
    }
)
# How many flags of each list a page shows; the counts cover them all.
FLAG_ROWS = 10
# A park page lists (and maps) at most this many of its enterprises; the directory pages through the rest.
MEMBER_LIMIT = 300
DIRECTORY_PAGE = 25

_RECEIVED = tuple(rates.RECEIVED_STATUSES)
_SENT = tuple(rates.SENT_STATUSES)
_USE_ROUTES = tuple(sorted(r.value for r in UTILISATION_ROUTES))

Access = Literal["full", "public"]


# ---------------------------------------------------------------------------------------------------------------
# Small records


@dataclass(frozen=True)
class Named:
    """Something with a key and a name in both languages (a region, a park, a category)."""

    key: str
    name_zh: str
    name_en: str | None = None


@dataclass(frozen=True)
class LicenceRow:
    """One licence, with where it stands today and whether it covered the page's year."""

    category: Named
    activity: str
    capacity_t: Weight
    licence_no: str
    valid_from: date
    valid_to: date | None
    state: Literal["valid", "expired", "future"]
    covers_year: bool
    id: int = 0
    revision: int = 1
    recorded_at: datetime | None = None
    recorded_by: str | None = None
    history: list[licences.LicenceVersion] = field(default_factory=list)  # superseded versions, newest first


@dataclass(frozen=True)
class WhitelistRow:
    """A listing under the MIIT battery-utilisation conditions."""

    kind: str
    batch: str
    listed_on: date
    revoked_on: date | None


@dataclass(frozen=True)
class EnterpriseView:
    """An enterprise's own facts: identity, place, roles, licences and listings."""

    id: int
    uscc: str
    name_zh: str
    name_en: str | None
    lon: float
    lat: float
    location_overridden: bool
    roles: list[str]
    province: Named | None
    prefecture: Named | None
    county: Named | None
    park: Named | None
    park_access: Access | None  # whether the viewer may open the park's page, and how much of it
    licences: list[LicenceRow]
    whitelist: list[WhitelistRow]
    may_license: bool = False  # whether the viewer may record this enterprise's licences (a bureau of its region)

    @property
    def handles_batteries(self) -> bool:
        """Whether it plays a part on the power-battery chain."""
        return bool(BATTERY_ROLES.intersection(self.roles)) or bool(self.whitelist)


@dataclass(frozen=True)
class Tonnes:
    """Batches that moved and their tonnes: received weight of those received, dispatched weight of those en route."""

    batches: int = 0
    received_batches: int = 0
    received_t: Weight = Decimal(0)
    in_transit_batches: int = 0
    in_transit_t: Weight = Decimal(0)
    utilised_t: Weight = Decimal(0)  # of received_t, received on a utilisation route

    def __add__(self, other: Tonnes) -> Tonnes:
        return Tonnes(
            self.batches + other.batches,
            self.received_batches + other.received_batches,
            self.received_t + other.received_t,
            self.in_transit_batches + other.in_transit_batches,
            self.in_transit_t + other.in_transit_t,
            self.utilised_t + other.utilised_t,
        )


@dataclass(frozen=True)
class Party:
    """An end of a flow, with its place (for the map) and whether the viewer may open its page."""

    id: int
    uscc: str
    name_zh: str
    name_en: str | None
    lon: float
    lat: float
    readable: bool


@dataclass(frozen=True)
class FlowRow:
    """The batches between an enterprise and one counterpart in one category, in one direction, in a year."""

    counterpart: Party
    category: Named
    tonnes: Tonnes


@dataclass(frozen=True)
class DeclarationRow:
    """One category of an enterprise's annual declaration, and whether it counts toward the rate."""

    category: Named
    counted: bool
    generated_t: Weight
    utilised_t: Weight
    utilised_prior_t: Weight
    disposed_t: Weight
    stored_t: Weight
    dumped_t: Weight
    id: int | None = None  # the declaration's row: the "under correction" mark looks its asks up by it


@dataclass(frozen=True)
class EnterprisePage:
    """Everything the enterprise page shows for one year."""

    enterprise: EnterpriseView
    year: int
    years: list[int]
    flows_in: list[FlowRow]
    flows_out: list[FlowRow]
    total_in: Tonnes
    total_out: Tonnes
    rate: rates.RateReport
    trend: rates.TrendReport
    declarations: list[DeclarationRow]
    flags: flags.FlagPage
    battery_flags: battery_audit.FlagReport | None


# ---------------------------------------------------------------------------------------------------------------
# Shared lookups


def _region_names(session: Session, adcodes: set[str | None]) -> dict[str, Named]:
    wanted = sorted(a for a in adcodes if a)
    if not wanted:
        return {}
    query = sa_select(col(Region.adcode), col(Region.name_zh), col(Region.name_en)).where(
        col(Region.adcode).in_(wanted)
    )
    return {row[0]: Named(row[0], row[1], row[2]) for row in session.execute(query)}


def _category_names(session: Session, codes: set[str]) -> dict[str, Named]:
    if not codes:
        return {}
    query = sa_select(col(WasteCategory.code), col(WasteCategory.name_zh), col(WasteCategory.name_en)).where(
        col(WasteCategory.code).in_(sorted(codes))
    )
    return {row[0]: Named(row[0], row[1], row[2]) for row in session.execute(query)}


def _category(names: dict[str, Named], code: str) -> Named:
    return names.get(code) or Named(code, code, code)


def _roles(session: Session, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for start in range(0, len(ids), 500):
        query = (
            sa_select(col(EnterpriseRoleLink.enterprise_id), col(EnterpriseRoleLink.role))
            .where(col(EnterpriseRoleLink.enterprise_id).in_(ids[start : start + 500]))
            .order_by(col(EnterpriseRoleLink.enterprise_id), col(EnterpriseRoleLink.role))
        )
        for enterprise_id, role in session.execute(query):
            found.setdefault(enterprise_id, []).append(str(role))
    return found


def _readable_flag(principal: Principal) -> ColumnElement[int]:
    # 1 where the principal may open the enterprise's page: lets one query name counterparts in and out of scope.
    return case((readable_enterprises(principal), literal(1)), else_=literal(0))


def _today(now: datetime) -> date:
    return now.astimezone(CST).date()


def _moved() -> ColumnElement[bool]:
    return col(Manifest.status).in_(_SENT)


def _tonnage_columns() -> list[Any]:
    """Aggregates of a group of batches that moved (see Tonnes), in its field order after `batches`."""
    b = Manifest
    received = and_(col(b.status).in_(_RECEIVED), col(b.weight_received_t).is_not(None))
    on_road = col(b.status) == ManifestStatus.dispatched.value
    used = and_(received, col(b.route).in_(_USE_ROUTES))
    zero = literal(0.0)
    return [
        func.count().label("batches"),
        func.coalesce(func.sum(case((received, 1), else_=0)), 0).label("received_batches"),
        func.coalesce(func.sum(case((received, col(b.weight_received_t)), else_=zero)), 0.0).label("received_t"),
        func.coalesce(func.sum(case((on_road, 1), else_=0)), 0).label("in_transit_batches"),
        func.coalesce(func.sum(case((on_road, col(b.weight_dispatched_t)), else_=zero)), 0.0).label("in_transit_t"),
        func.coalesce(func.sum(case((used, col(b.weight_received_t)), else_=zero)), 0.0).label("utilised_t"),
    ]


def _tonnes(row: Any) -> Tonnes:
    return Tonnes(
        int(row.batches),
        int(row.received_batches),
        Decimal(row.received_t),
        int(row.in_transit_batches),
        Decimal(row.in_transit_t),
        Decimal(row.utilised_t),
    )


def _sum(rows: list[Any]) -> Tonnes:
    total = Tonnes()
    for row in rows:
        total = total + row.tonnes
    return total


# ---------------------------------------------------------------------------------------------------------------
# Who may open a park's page


def park_access(session: Session, principal: Principal, park_id: int, region_adcode: str) -> Access | None:
    """'full' for those who read the park's figures (as flows.waste.rates decides), 'public' for its own enterprises."""
    match principal.role:
        case UserRole.admin:
            return "full"
        case UserRole.bureau:
            scope = principal.scope_adcode
            return "full" if scope and within(region_adcode, scope) else None
        case UserRole.park_manager:
            return "full" if principal.park_id == park_id else None
        case UserRole.enterprise:
            if principal.enterprise_id is None:
                return None
            own = session.execute(
                sa_select(col(Enterprise.park_id)).where(col(Enterprise.id) == principal.enterprise_id)
            ).scalar()
            return "public" if own == park_id else None
    return None


# ---------------------------------------------------------------------------------------------------------------
# The enterprise page


def enterprise_view(
    session: Session, principal: Principal, enterprise_id: int, year: int, today: date
) -> EnterpriseView:
    """An enterprise's identity, place, roles, licences (against `year`) and listings; not found outside scope."""
    query = sa_select(Enterprise).where(col(Enterprise.id) == enterprise_id, readable_enterprises(principal))
    e = session.execute(query).scalar()
    if e is None or e.id is None:
        raise NotFound("access.enterprise_not_found", field="enterprise_id", enterprise_id=enterprise_id)
    regions = _region_names(session, {e.province_adcode, e.prefecture_adcode, e.county_adcode})
    park: Named | None = None
    access: Access | None = None
    if e.park_id is not None:
        row = session.execute(
            sa_select(col(Park.name_zh), col(Park.name_en), col(Park.region_adcode)).where(col(Park.id) == e.park_id)
        ).first()
        if row is not None:
            park = Named(str(e.park_id), row.name_zh, row.name_en)
            access = park_access(session, principal, e.park_id, row.region_adcode)
    start, end = date(year, 1, 1), date(year, 12, 31)
    licence_rows = []
    for licence in licences.licences_of(session=session, principal=principal, enterprise_id=e.id):
        to = licence.valid_to
        state: Literal["valid", "expired", "future"] = (
            "future" if licence.valid_from > today else "expired" if to is not None and to < today else "valid"
        )
        licence_rows.append(
            LicenceRow(
                category=Named(licence.category_code, licence.category_name_zh, licence.category_name_en),
                activity=licence.activity.value,
                capacity_t=licence.capacity_t,
                licence_no=licence.number,
                valid_from=licence.valid_from,
                valid_to=to,
                state=state,
                covers_year=licence.valid_from <= end and (to is None or to >= start),
                id=licence.id,
                revision=licence.revision,
                recorded_at=licence.recorded_at,
                recorded_by=licence.recorded_by,
                history=licence.history,
            )
        )
    listings = session.execute(
        sa_select(WhitelistEntry)
        .where(col(WhitelistEntry.enterprise_id) == e.id)
        .order_by(col(WhitelistEntry.listed_on), col(WhitelistEntry.kind))
    ).scalars()
    return EnterpriseView(
        id=e.id,
        uscc=e.uscc,
        name_zh=e.name_zh,
        name_en=e.name_en,
        lon=e.lon,
        lat=e.lat,
        location_overridden=e.location_overridden,
        roles=_roles(session, [e.id]).get(e.id, []),
        province=regions.get(e.province_adcode or ""),
        prefecture=regions.get(e.prefecture_adcode or ""),
        county=regions.get(e.county_adcode or ""),
        park=park,
        park_access=access,
        licences=licence_rows,
        whitelist=[WhitelistRow(str(w.kind), w.batch, w.listed_on, w.revoked_on) for w in listings],
        may_license=licences.may_record(session, principal, e.id),
    )


def enterprise_years(*, session: Session, enterprise_id: int) -> list[int]:
    """Years with a declaration, a batch or a battery event of the enterprise, newest first."""
    b = Manifest
    query = union(
        sa_select(col(Declaration.year)).where(col(Declaration.enterprise_id) == enterprise_id),
        sa_select(col(b.year)).where(col(b.shipper_id) == enterprise_id),
        sa_select(col(b.year)).where(col(b.receiver_id) == enterprise_id),
    )
    years = {int(y) for (y,) in session.execute(query)}
    # Battery events: the first and last of each end, read off the (party, time) indexes; the years between count.
    ev = BatteryEvent
    for party in (ev.reporter_id, ev.counterpart_id):
        first, last = session.execute(
            sa_select(func.min(col(ev.occurred_at)), func.max(col(ev.occurred_at))).where(col(party) == enterprise_id)
        ).one()
        if first is not None and last is not None:
            years.update(range(_local_year(first), _local_year(last) + 1))
    return sorted(years, reverse=True)


def _local_year(moment: datetime) -> int:
    # Stored times are UTC (SQLite hands them back without a zone); years are counted on China Standard Time.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(CST).year


def latest_year(*, session: Session) -> int | None:
    """The latest year anything was declared, for pages of enterprises and parks with no data of their own."""
    return session.execute(sa_select(func.max(col(Declaration.year)))).scalar()


def enterprise_flows(
    *, session: Session, principal: Principal, enterprise_id: int, year: int, direction: Literal["in", "out"]
) -> list[FlowRow]:
    """The batches that moved to (in) or from (out) an enterprise in a year, by counterpart and category."""
    b = Manifest
    own, other = (b.receiver_id, b.shipper_id) if direction == "in" else (b.shipper_id, b.receiver_id)
    inner = (
        sa_select(col(other).label("counterpart_id"), col(b.category_code).label("category_code"), *_tonnage_columns())
        .where(col(own) == enterprise_id, col(b.year) == year, _moved())
        .group_by(col(other), col(b.category_code))
        .subquery("flows")
    )
    query = (
        sa_select(
            inner,
            col(Enterprise.uscc),
            col(Enterprise.name_zh),
            col(Enterprise.name_en),
            col(Enterprise.lon),
            col(Enterprise.lat),
            _readable_flag(principal).label("readable"),
        )
        .join(Enterprise, col(Enterprise.id) == inner.c.counterpart_id)
        .order_by(inner.c.received_t.desc(), inner.c.in_transit_t.desc(), inner.c.counterpart_id, inner.c.category_code)
    )
    rows = session.execute(query).all()
    categories = _category_names(session, {r.category_code for r in rows})
    return [
        FlowRow(
            counterpart=Party(r.counterpart_id, r.uscc, r.name_zh, r.name_en, r.lon, r.lat, bool(r.readable)),
            category=_category(categories, r.category_code),
            tonnes=_tonnes(r),
        )
        for r in rows
    ]


def declarations_of(*, session: Session, enterprise_id: int, year: int, counted: list[str]) -> list[DeclarationRow]:
    """An enterprise's declaration for a year, category by category."""
    d = Declaration
    query = (
        sa_select(d, col(WasteCategory.name_zh), col(WasteCategory.name_en))
        .join(WasteCategory, col(WasteCategory.code) == col(d.category_code))
        .where(col(d.enterprise_id) == enterprise_id, col(d.year) == year)
        .order_by(col(d.category_code))
    )
    return [
        DeclarationRow(
            category=Named(decl.category_code, name_zh, name_en),
            counted=decl.category_code in counted,
            generated_t=decl.generated_t,
            utilised_t=decl.utilised_t,
            utilised_prior_t=decl.utilised_prior_t,
            disposed_t=decl.disposed_t,
            stored_t=decl.stored_t,
            dumped_t=decl.dumped_t,
            id=decl.id,
        )
        for decl, name_zh, name_en in session.execute(query)
    ]


def enterprise_page(
    *, session: Session, principal: Principal, enterprise_id: int, year: int | None, now: datetime
) -> EnterprisePage:
    """The enterprise page for a year (its latest year with data by default); not found outside the viewer's scope."""
    years = enterprise_years(session=session, enterprise_id=enterprise_id)
    chosen = year if year is not None else (years[0] if years else latest_year(session=session) or _today(now).year)
    view = enterprise_view(session, principal, enterprise_id, chosen, _today(now))
    flows_in = enterprise_flows(
        session=session, principal=principal, enterprise_id=enterprise_id, year=chosen, direction="in"
    )
    flows_out = enterprise_flows(
        session=session, principal=principal, enterprise_id=enterprise_id, year=chosen, direction="out"
    )
    scope = resolve_scope(session=session, principal=principal, enterprise=enterprise_id)
    report = rates.utilisation(session=session, principal=principal, year=chosen, scope=scope)
    trend = rates.rate_trend(session=session, principal=principal, scope=scope)
    found = flags.list_flags(session=session, principal=principal, year=chosen, limit=FLAG_ROWS, scope=scope)
    chain = (
        battery_audit.chain_flags(
            session=session, principal=principal, now=now, year=chosen, enterprise_id=enterprise_id, limit=FLAG_ROWS
        )
        if view.handles_batteries
        else None
    )
    return EnterprisePage(
        enterprise=view,
        year=chosen,
        years=sorted({*years, chosen}, reverse=True),
        flows_in=flows_in,
        flows_out=flows_out,
        total_in=_sum(flows_in),
        total_out=_sum(flows_out),
        rate=report,
        trend=trend,
        declarations=declarations_of(
            session=session, enterprise_id=enterprise_id, year=chosen, counted=report.categories
        ),
        flags=found,
        battery_flags=chain,
    )


# ---------------------------------------------------------------------------------------------------------------
# The park page


@dataclass(frozen=True)
class ParkView:
    """A park's public facts and its boundary (GeoJSON geometry, lon/lat)."""

    id: int
    name_zh: str
    name_en: str | None
    level: str
    region_adcode: str
    prefecture: Named | None
    county: Named | None
    industries: str
    transformation_status: str
    transformation_year: int | None
    waste_free: bool
    boundary: dict[str, Any]


@dataclass(frozen=True)
class Member:
    """One of the park's enterprises, with its own rate for the year when it declared."""

    id: int
    uscc: str
    name_zh: str
    name_en: str | None
    lon: float
    lat: float
    roles: list[str]
    rate: rates.RateRow | None = None


@dataclass(frozen=True)
class LinkRow:
    """A circular link: one of the park's enterprises sent waste of a category to another of them."""

    shipper: Party
    receiver: Party
    category: Named
    tonnes: Tonnes


@dataclass(frozen=True)
class BoundaryRow:
    """A category's batches that stayed in the park, left it and entered it, in a year."""

    category: Named
    within: Tonnes
    leaving: Tonnes
    entering: Tonnes

    @property
    def staying_share(self) -> float | None:
        """Of the tonnes the park's enterprises sent and that were received, the share received inside the park."""
        sent = self.within.received_t + self.leaving.received_t
        return float(self.within.received_t / sent) if sent > 0 else None


@dataclass(frozen=True)
class ParkPage:
    """Everything the park page shows for one year; with public access only the park's facts and one's own."""

    park: ParkView
    access: Access
    year: int
    years: list[int]
    members: list[Member]
    member_count: int
    rate: rates.RateReport | None
    flags: flags.FlagPage | None
    links: list[LinkRow] = field(default_factory=list)
    boundary: list[BoundaryRow] = field(default_factory=list)
    total: BoundaryRow | None = None


def _members_condition(park_id: int, principal: Principal) -> ColumnElement[bool]:
    return and_(col(Enterprise.park_id) == park_id, readable_enterprises(principal))


def park_members(*, session: Session, principal: Principal, park_id: int, limit: int = MEMBER_LIMIT) -> list[Member]:
    """The park's enterprises that the principal may read, by name."""
    rows = session.execute(
        sa_select(
            col(Enterprise.id),
            col(Enterprise.uscc),
            col(Enterprise.name_zh),
            col(Enterprise.name_en),
            col(Enterprise.lon),
            col(Enterprise.lat),
        )
        .where(_members_condition(park_id, principal))
        .order_by(col(Enterprise.name_zh), col(Enterprise.id))
        .limit(limit)
    ).all()
    roles = _roles(session, [r.id for r in rows])
    return [Member(r.id, r.uscc, r.name_zh, r.name_en, r.lon, r.lat, roles.get(r.id, [])) for r in rows]


def park_links(*, session: Session, principal: Principal, park_id: int, year: int) -> list[LinkRow]:
    """Who uses whose waste: batches in a year from one of the park's enterprises to another, by pair and category."""
    b = Manifest
    ids = sa_select(col(Enterprise.id)).where(_members_condition(park_id, principal))
    inner = (
        sa_select(
            col(b.shipper_id).label("shipper_id"),
            col(b.receiver_id).label("receiver_id"),
            col(b.category_code).label("category_code"),
            *_tonnage_columns(),
        )
        .where(col(b.year) == year, _moved(), col(b.shipper_id).in_(ids), col(b.receiver_id).in_(ids))
        .group_by(col(b.shipper_id), col(b.receiver_id), col(b.category_code))
        .subquery("links")
    )
    s: Any = aliased(Enterprise, name="s")
    r: Any = aliased(Enterprise, name="r")
    query = (
        sa_select(
            inner,
            s.uscc.label("s_uscc"),
            s.name_zh.label("s_zh"),
            s.name_en.label("s_en"),
            s.lon.label("s_lon"),
            s.lat.label("s_lat"),
            r.uscc.label("r_uscc"),
            r.name_zh.label("r_zh"),
            r.name_en.label("r_en"),
            r.lon.label("r_lon"),
            r.lat.label("r_lat"),
        )
        .join(s, s.id == inner.c.shipper_id)
        .join(r, r.id == inner.c.receiver_id)
        .order_by(inner.c.received_t.desc(), inner.c.shipper_id, inner.c.receiver_id, inner.c.category_code)
    )
    rows = session.execute(query).all()
    categories = _category_names(session, {row.category_code for row in rows})
    return [
        LinkRow(
            shipper=Party(row.shipper_id, row.s_uscc, row.s_zh, row.s_en, row.s_lon, row.s_lat, True),
            receiver=Party(row.receiver_id, row.r_uscc, row.r_zh, row.r_en, row.r_lon, row.r_lat, True),
            category=_category(categories, row.category_code),
            tonnes=_tonnes(row),
        )
        for row in rows
    ]


def park_boundary(*, session: Session, principal: Principal, park_id: int, year: int) -> list[BoundaryRow]:
    """By category, the park's batches of a year that stayed inside, left it and entered it."""
    b = Manifest
    ids = sa_select(col(Enterprise.id)).where(_members_condition(park_id, principal))
    from_in, to_in = col(b.shipper_id).in_(ids), col(b.receiver_id).in_(ids)
    # Classified in a subquery and grouped outside it: PostgreSQL groups by an expression only when the select
    # list writes it identically, which an IN with its own bind parameters never is.
    classified = (
        sa_select(
            col(b.category_code).label("category_code"),
            case((from_in, 1), else_=0).label("from_in"),
            case((to_in, 1), else_=0).label("to_in"),
            col(b.status).label("status"),
            col(b.route).label("route"),
            col(b.weight_received_t).label("weight_received_t"),
            col(b.weight_dispatched_t).label("weight_dispatched_t"),
        )
        .where(col(b.year) == year, _moved(), or_(from_in, to_in))
        .subquery("crossing")
    )
    c = classified.c
    received = and_(c.status.in_(_RECEIVED), c.weight_received_t.is_not(None))
    on_road = c.status == ManifestStatus.dispatched.value
    zero = literal(0.0)
    query = sa_select(
        c.category_code,
        c.from_in,
        c.to_in,
        func.count().label("batches"),
        func.coalesce(func.sum(case((received, 1), else_=0)), 0).label("received_batches"),
        func.coalesce(func.sum(case((received, c.weight_received_t), else_=zero)), 0.0).label("received_t"),
        func.coalesce(func.sum(case((on_road, 1), else_=0)), 0).label("in_transit_batches"),
        func.coalesce(func.sum(case((on_road, c.weight_dispatched_t), else_=zero)), 0.0).label("in_transit_t"),
        func.coalesce(
            func.sum(case((and_(received, c.route.in_(_USE_ROUTES)), c.weight_received_t), else_=zero)), 0.0
        ).label("utilised_t"),
    ).group_by(c.category_code, c.from_in, c.to_in)
    parts: dict[str, dict[str, Tonnes]] = {}
    for row in session.execute(query):
        where = "within" if row.from_in and row.to_in else "leaving" if row.from_in else "entering"
        parts.setdefault(row.category_code, {})[where] = _tonnes(row)
    categories = _category_names(session, set(parts))
    out = [
        BoundaryRow(
            category=_category(categories, code),
            within=p.get("within", Tonnes()),
            leaving=p.get("leaving", Tonnes()),
            entering=p.get("entering", Tonnes()),
        )
        for code, p in parts.items()
    ]
    return sorted(out, key=lambda r: (-(r.within.received_t + r.leaving.received_t), r.category.key))


def park_years(*, session: Session, principal: Principal, park_id: int) -> list[int]:
    """Years with a declaration or a shipment of the park's enterprises, newest first."""
    ids = sa_select(col(Enterprise.id)).where(_members_condition(park_id, principal))
    b = Manifest
    query = union(
        sa_select(col(Declaration.year)).where(col(Declaration.enterprise_id).in_(ids)),
        sa_select(col(b.year)).where(col(b.shipper_id).in_(ids)),
        sa_select(col(b.year)).where(col(b.receiver_id).in_(ids)),
    )
    return sorted({int(y) for (y,) in session.execute(query)}, reverse=True)


def _park_view(session: Session, park: Park) -> ParkView:
    assert park.id is not None
    prefecture = prefecture_of(park.region_adcode)
    names = _region_names(session, {prefecture, park.region_adcode})
    return ParkView(
        id=park.id,
        name_zh=park.name_zh,
        name_en=park.name_en,
        level=str(park.level),
        region_adcode=park.region_adcode,
        prefecture=names.get(prefecture),
        county=names.get(park.region_adcode) if park.region_adcode != prefecture else None,
        industries=park.industries,
        transformation_status=str(park.transformation_status),
        transformation_year=park.transformation_year,
        waste_free=park.waste_free,
        boundary=to_geojson(park.boundary),
    )


def park_page(*, session: Session, principal: Principal, park_id: int, year: int | None, now: datetime) -> ParkPage:
    """The park page for a year (its latest year with data by default); not found outside the viewer's scope."""
    park = session.get(Park, park_id)
    access = park_access(session, principal, park_id, park.region_adcode) if park is not None else None
    if park is None or access is None:
        raise NotFound("access.park_not_found", field="park_id", park_id=park_id)
    years = park_years(session=session, principal=principal, park_id=park_id)
    chosen = year if year is not None else (years[0] if years else latest_year(session=session) or _today(now).year)
    members = park_members(session=session, principal=principal, park_id=park_id)
    count = int(
        session.execute(
            sa_select(func.count()).select_from(Enterprise).where(_members_condition(park_id, principal))
        ).scalar_one()
    )
    page = ParkPage(
        park=_park_view(session, park),
        access=access,
        year=chosen,
        years=sorted({*years, chosen}, reverse=True),
        members=members,
        member_count=count,
        rate=None,
        flags=None,
    )
    if access != "full":
        return page
    scope = resolve_scope(session=session, principal=principal, park=park_id)
    report = rates.utilisation(session=session, principal=principal, year=chosen, by="enterprise", scope=scope)
    by_enterprise = {row.key: row for row in report.rows or []}
    boundary = park_boundary(session=session, principal=principal, park_id=park_id, year=chosen)
    total = BoundaryRow(
        category=Named("", "", ""),
        within=_sum_part(boundary, "within"),
        leaving=_sum_part(boundary, "leaving"),
        entering=_sum_part(boundary, "entering"),
    )
    return ParkPage(
        park=page.park,
        access=access,
        year=chosen,
        years=page.years,
        members=[
            Member(m.id, m.uscc, m.name_zh, m.name_en, m.lon, m.lat, m.roles, by_enterprise.get(str(m.id)))
            for m in members
        ],
        member_count=count,
        rate=report,
        flags=flags.list_flags(session=session, principal=principal, year=chosen, limit=FLAG_ROWS, scope=scope),
        links=park_links(session=session, principal=principal, park_id=park_id, year=chosen),
        boundary=boundary,
        total=total,
    )


def _sum_part(rows: list[BoundaryRow], part: str) -> Tonnes:
    total = Tonnes()
    for row in rows:
        total = total + getattr(row, part)
    return total


# ---------------------------------------------------------------------------------------------------------------
# The directory


@dataclass(frozen=True)
class DirectoryRow:
    """One enterprise of the directory, with its place by name."""

    id: int
    uscc: str
    name_zh: str
    name_en: str | None
    roles: list[str]
    prefecture: Named | None
    county: Named | None
    park: Named | None


@dataclass(frozen=True)
class DirectoryPage:
    """A page of the enterprises the principal may read, and what the filters may choose from."""

    rows: list[DirectoryRow]
    count: int
    offset: int
    limit: int
    prefectures: list[Named]
    parks: list[Named]
    roles: list[str]


def directory_page(
    *,
    session: Session,
    principal: Principal,
    q: str | None = None,
    prefecture: str | None = None,
    park_id: int | None = None,
    role: str | None = None,
    offset: int = 0,
    limit: int = DIRECTORY_PAGE,
) -> DirectoryPage:
    """Enterprises in scope found by name or credit code, filtered by prefecture, park and role, a page at a time."""
    if role is not None and role not in EnterpriseRole.__members__:
        raise InvalidInput(
            "pages.places.one_of", field="role", column=Term("field.role"), allowed=", ".join(EnterpriseRole)
        )
    if prefecture is not None and not (len(prefecture) == 6 and prefecture.isdigit()):
        raise InvalidInput("pages.places.six_digit_adcode", field="prefecture", column=Term("field.prefecture"))
    if offset < 0:
        raise InvalidInput("pages.places.negative_offset", field="offset", column=Term("field.offset"))
    found = directory.list_enterprises(
        session=session,
        principal=principal,
        region=prefecture,
        park_id=park_id,
        role=role,
        q=q.strip() if q and q.strip() else None,
        offset=offset,
        limit=limit,
    )
    readable = readable_enterprises(principal)
    # What the filters offer: the prefectures and parks where the principal has enterprises to find.
    pref_codes = session.execute(sa_select(col(Enterprise.prefecture_adcode)).where(readable).distinct()).scalars()
    prefectures = _region_names(session, set(pref_codes))
    park_rows = session.execute(
        sa_select(col(Park.id), col(Park.name_zh), col(Park.name_en))
        .where(
            col(Park.id).in_(sa_select(col(Enterprise.park_id)).where(readable, col(Enterprise.park_id).is_not(None)))
        )
        .order_by(col(Park.id))
    ).all()
    parks = {str(p.id): Named(str(p.id), p.name_zh, p.name_en) for p in park_rows}
    regions = (
        _region_names(session, {e.prefecture_adcode for e in found.data} | {e.county_adcode for e in found.data})
        | prefectures
    )
    return DirectoryPage(
        rows=[
            DirectoryRow(
                id=e.id,
                uscc=e.uscc,
                name_zh=e.name_zh,
                name_en=e.name_en,
                roles=e.roles,
                prefecture=regions.get(e.prefecture_adcode or ""),
                county=regions.get(e.county_adcode or ""),
                park=parks.get(str(e.park_id)) if e.park_id is not None else None,
            )
            for e in found.data
        ],
        count=found.count,
        offset=offset,
        limit=limit,
        prefectures=sorted(prefectures.values(), key=lambda n: n.key),
        parks=list(parks.values()),
        roles=[r.value for r in EnterpriseRole],
    )
