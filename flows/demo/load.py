"""The deterministic Sichuan demo: parks, enterprises, licences, declarations, manifests and battery chains.

Everything is drawn from one random.Random(seed) against fixed dates, so the same seed gives the same rows on
SQLite and on PostgreSQL. Rows go in as bulk INSERTs (executemany) in chunks; nothing is added row by row.
The data is realistic in shape and magnitude but fictional; a few deliberate faults are planted for the audits
(balance breaks, weight gaps, unlicensed receivers, an expired and an exceeded licence, battery handovers to
unlisted enterprises, lost retired batteries, late reports, poor or impossible recovery reports).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shapely import prepare
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, insert, select
from sqlmodel import Session, SQLModel, col

from flows.battery.code import encode_battery_code
from flows.demo.data import (
    BATCH_REJECTIONS,
    BRAND_SYLLABLES,
    CASCADE_APPLICATIONS,
    CATEGORY_BEHAVIOUR,
    COUNTY_SHORT,
    KINDS,
    PARKS,
    POWER_GROUPS,
    PREFECTURE_SHORT,
    REVOKED_ON,
    SUFFIXES,
    TARGET_PATH,
    WHITELIST_BATCHES,
    WHITELIST_EDITIONS,
    Kind,
    ParkSpec,
)
from flows.kernel import partitions
from flows.kernel.adcode import prefecture_of
from flows.kernel.clock import CST
from flows.kernel.errors import Conflict, NotFound
from flows.kernel.uscc import make_uscc, organisation_check
from flows.waste import chains, numbers
from flows.waste.manifests import reserve_numbers
from flows.waste.reference import SICHUAN_TARGET_CATEGORIES
from maps.locate import locate_many
from models import (
    Battery,
    BatteryCode,
    BatteryEvent,
    Declaration,
    Enterprise,
    EnterpriseRoleLink,
    Licence,
    Manifest,
    ManifestSource,
    Park,
    RecoveryReport,
    Region,
    WasteCategory,
    WhitelistEntry,
)
from models.enums import (
    INTERMEDIATE_ROUTES,
    BatteryEventType,
    BatteryLevel,
    BatteryState,
    EnterpriseRole,
    LicenceActivity,
    ManifestStatus,
    RegionLevel,
    Route,
    TransportMode,
    Weighing,
    WhitelistKind,
)

Progress = Callable[[str, int, int], None]

YEARS = (2020, 2021, 2022, 2023, 2024)
# The demo's "now": nothing happens after it, so the data never depends on the day it is loaded.
DEMO_NOW = datetime(2024, 12, 31, 18, 0, tzinfo=CST)
CHUNK = 2000
TARGET_SET = frozenset(SICHUAN_TARGET_CATEGORIES)

# Fictional registry codes: battery makers file a manufacturer code, and so do cascade users before re-coding.
MAKER_CODES = ("0D1", "0J4", "0K7", "1E2", "1H8", "2B5", "3A9", "0R6")
CASCADE_CODES = ("7C1", "7C3", "7D2", "7F5", "7G8", "7H4", "7K6", "7M9", "7N2", "7P5")
WMIS = ("LS4", "LC6", "LY9", "LN3", "LZ7", "LJ5")
_VIN_VALUES = dict(
    zip("ABCDEFGHJKLMNPRSTUVWXYZ", (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9), strict=True)
)
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_YEAR = dict(zip(range(2010, 2026), "ABCDEFGHJKLMNPRS", strict=True))

# Lots a year on one route, by tonnes a year: weekly for the biggest flows, down to two a year.
_LOTS_PER_YEAR = ((600_000, 52), (200_000, 24), (30_000, 12), (6_000, 6), (1_000, 4), (0, 2))
# Sichuan plate letters by prefecture: 川A Chengdu, 川D Panzhihua, and so on.
_PLATE_LETTERS = {
    "510100": "A", "510300": "C", "510400": "D", "510500": "E", "510600": "F", "510700": "B", "510800": "H",
    "510900": "J", "511000": "K", "511100": "L", "511300": "R", "511400": "Z", "511500": "Q", "511600": "X",
    "511700": "S", "511800": "T", "511900": "Y", "512000": "M", "513200": "U", "513300": "V", "513400": "W",
}  # fmt: skip
_BAGGED = frozenset({"SW07", "SW13", "SW16", "SW59"})  # sludges, residues and the like go in tonne bags
_STRAY_ROUTES = frozenset({Route.building_materials, Route.cement_admixture, Route.road_base, Route.backfill})

PACK_COUNTS = {"ctp": 90, "modular": 200, "micro": 40}  # cell-to-pack, packs of modules, micro-car packs with cells


@dataclass(frozen=True)
class DemoSummary:
    """How many rows of each kind the demo added."""

    parks: int
    enterprises: int
    roles: int
    licences: int
    whitelist_entries: int
    declarations: int
    manifests: int
    batteries: int
    battery_events: int
    recovery_reports: int


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


def _insert(
    session: Session,
    model: type[SQLModel],
    id_column: Any,
    rows: Sequence[dict[str, Any]],
    stage: str,
    progress: Progress | None,
) -> list[int]:
    """Bulk-insert rows in chunks and return their new ids in the order given."""
    ids: list[int] = []
    total = len(rows)
    for start in range(0, total, CHUNK):
        chunk = rows[start : start + CHUNK]
        stmt = insert(model).returning(id_column, sort_by_parameter_order=True)
        ids.extend(session.scalars(stmt, list(chunk)).all())
        if progress:
            progress(stage, start + len(chunk), total)
    return ids


def _edition(listed: date) -> str:
    """The edition of the standard conditions a batch listed on that day was published under."""
    return next((name for before, name in WHITELIST_EDITIONS if listed < before), "2024年本")


def _insert_plain(
    session: Session, model: type[SQLModel], rows: Sequence[dict[str, Any]], stage: str, progress: Progress | None
) -> None:
    total = len(rows)
    for start in range(0, total, CHUNK):
        chunk = rows[start : start + CHUNK]
        session.execute(insert(model), list(chunk))
        if progress:
            progress(stage, start + len(chunk), total)


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    # Equirectangular distance: good to a percent over the few hundred km of a province.
    mean_lat = math.radians((a[1] + b[1]) / 2)
    return math.hypot((a[0] - b[0]) * 111.32 * math.cos(mean_lat), (a[1] - b[1]) * 110.57)


def _offset(lon: float, lat: float, east_km: float, north_km: float) -> tuple[float, float]:
    return lon + east_km / (111.32 * math.cos(math.radians(lat))), lat + north_km / 110.57


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _at(day: date, rng: random.Random, first_hour: int = 8, last_hour: int = 17) -> datetime:
    return datetime(day.year, day.month, day.day, rng.randint(first_hour, last_hour), rng.randint(0, 59), tzinfo=CST)


def _loguniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _vin(rng: random.Random, wmi: str, year: int, serial: int) -> str:
    """A 17-character VIN with a valid check character (position 9) and model-year letter (position 10)."""
    vds = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(5))
    body = f"{wmi}{vds}0{_VIN_YEAR[min(max(year, 2010), 2025)]}{rng.choice('ABCDEFGH')}{serial % 1_000_000:06d}"
    total = sum((int(ch) if ch.isdigit() else _VIN_VALUES[ch]) * w for ch, w in zip(body, _VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    return body[:8] + check + body[9:]


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code (GB 11714) with its mod-11 check character."""
    if rng.random() < 0.4:
        body = f"{rng.randint(20_000_000, 79_999_999)}"
    else:
        body = "MA6" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(5))
    return body + organisation_check(body)


# ---------------------------------------------------------------------------------------------------------------
# In-memory records while the demo is being drawn


@dataclass
class _Park:
    spec: ParkSpec
    polygon: Polygon
    id: int = 0


@dataclass
class _Ent:
    n: int
    kind: Kind
    site: str
    lon: float
    lat: float
    county: str = ""
    prefecture: str = ""
    park_id: int | None = None
    name_zh: str = ""
    name_en: str = ""
    uscc: str = ""
    whitelist: str | None = None
    code: str = ""
    wmi: str = ""
    id: int = 0

    @property
    def point(self) -> tuple[float, float]:
        return (self.lon, self.lat)

    def has(self, role: EnterpriseRole) -> bool:
        return role in self.kind.roles


@dataclass
class _Decl:
    ent: _Ent
    cat: str
    year: int
    generated: float
    offset: float
    prior: float
    disposed_prior: float
    dumped_share: float
    utilised: float = 0.0
    disposed: float = 0.0
    stored: float = 0.0
    dumped: float = 0.0


@dataclass
class _Batch:
    shipper: _Ent
    receiver: _Ent
    carrier: _Ent | None
    cat: str
    route: Route
    planned: datetime
    weight: float
    keep: bool = False  # a lot another manifest draws from: it arrives whole, no planted fault
    # A forwarding by an intermediary: the lots it draws from (index in batches, tonnes or None for pro rata);
    # None for a first manifest, an empty list for a forwarding that names no source.
    sources: list[tuple[int, float | None]] | None = None


@dataclass
class _Ev:
    type: BatteryEventType
    at: datetime
    reporter: _Ent
    counterpart: _Ent | None
    holder: _Ent
    vin: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    late: bool = False


@dataclass
class _Bat:
    level: BatteryLevel
    maker: _Ent
    chemistry: str
    produced: date
    code: str
    rated_kwh: float
    mass_kg: float
    parent: _Bat | None = None
    children: list[_Bat] = field(default_factory=list)
    events: list[_Ev] = field(default_factory=list)
    original_code: str | None = None
    scenario: str = "normal"
    id: int = 0


# ---------------------------------------------------------------------------------------------------------------
# The generator


class _Demo:
    def __init__(self, session: Session, seed: int, progress: Progress | None) -> None:
        self.session = session
        self.rng = random.Random(seed)
        self.progress = progress
        self.parks: list[_Park] = []
        self.ents: list[_Ent] = []
        self.decls: list[_Decl] = []
        self.batches: list[_Batch] = []
        self.row_of: dict[int, int] = {}  # batch index -> position among the manifest rows
        self.batteries: list[_Bat] = []
        self.serials: dict[tuple[str, date], int] = {}
        self.counties: dict[str, BaseGeometry] = {}
        self.prefectures: dict[str, BaseGeometry] = {}
        self.role_count = 0

    # --- preconditions and geography -----------------------------------------------------------------------------

    def check_empty(self) -> None:
        session = self.session
        if session.scalar(select(func.count()).select_from(Enterprise)):
            raise Conflict("demo.database_not_empty")
        names = [p.name_zh for p in PARKS]
        clash = session.scalars(select(col(Park.name_zh)).where(col(Park.name_zh).in_(names))).first()
        if clash:
            raise Conflict("demo.park_exists", name=clash)
        rows = session.execute(
            select(col(Region.adcode), col(Region.level), col(Region.geom)).where(
                col(Region.level) != RegionLevel.province
            )
        ).all()
        for adcode, level, geom in rows:
            prepare(geom)
            (self.counties if level == RegionLevel.county else self.prefectures)[adcode] = geom
        if "510100" not in self.prefectures:
            raise NotFound("demo.boundaries_missing")
        needed = {c for kind in KINDS for c, _lo, _hi in kind.generates} | {c for k in KINDS for c in k.accepts}
        known = set(session.scalars(select(col(WasteCategory.code))).all())
        missing = sorted(needed - known)
        if missing:
            raise NotFound("demo.categories_missing", codes=", ".join(missing))

    # --- parks ---------------------------------------------------------------------------------------------------

    def make_parks(self) -> None:
        for spec in PARKS:
            county = self.counties[spec.county]
            radius = spec.radius_km
            for _attempt in range(12):
                polygon = self._blob(spec.lon, spec.lat, radius)
                clear = all(not polygon.intersects(p.polygon) for p in self.parks)
                if polygon.is_valid and county.covers(polygon) and clear:
                    break
                radius *= 0.85
            else:  # pragma: no cover - the static table is wrong
                raise RuntimeError(f"no polygon for park {spec.key} fits inside county {spec.county}")
            self.parks.append(_Park(spec, polygon))
        rows = [
            {
                "name_zh": p.spec.name_zh,
                "name_en": p.spec.name_en,
                "level": p.spec.level,
                "region_adcode": prefecture_of(p.spec.county),
                "industries": p.spec.industries,
                "transformation_status": p.spec.status,
                "transformation_year": p.spec.year,
                "waste_free": p.spec.waste_free,
                "boundary": MultiPolygon([p.polygon]),
            }
            for p in self.parks
        ]
        for park, new_id in zip(
            self.parks, _insert(self.session, Park, col(Park.id), rows, "parks", self.progress), strict=True
        ):
            park.id = new_id

    def _blob(self, lon: float, lat: float, radius_km: float) -> Polygon:
        # A star-shaped outline: vertices at increasing angles never cross, so the polygon is always simple.
        rng = self.rng
        n = rng.randint(9, 14)
        step = 2 * math.pi / n
        ring = []
        for i in range(n):
            angle = i * step + rng.uniform(-0.3, 0.3) * step
            r = radius_km * rng.uniform(0.6, 1.25)
            x, y = _offset(lon, lat, r * math.cos(angle), r * math.sin(angle))
            ring.append((round(x, 6), round(y, 6)))
        return Polygon(ring)

    # --- enterprises ---------------------------------------------------------------------------------------------

    def make_enterprises(self) -> None:
        parks = {p.spec.key: p for p in self.parks}
        for kind in KINDS:
            instance = 0
            for site, count in kind.sites:
                for _ in range(count):
                    lon, lat = self._site_point(site, parks)
                    ent = _Ent(len(self.ents), kind, site, lon, lat)
                    if kind.whitelist:
                        ent.whitelist = kind.whitelist[instance]
                    instance += 1
                    self.ents.append(ent)
        located = locate_many(session=self.session, points=[e.point for e in self.ents])
        for ent, loc in zip(self.ents, located, strict=True):
            if loc.province is None or loc.county is None or loc.prefecture is None:  # pragma: no cover
                raise RuntimeError(f"demo site {ent.site} put an enterprise outside Sichuan")
            ent.county, ent.prefecture, ent.park_id = loc.county, loc.prefecture, loc.park
        self._name_enterprises()
        makers = iter(MAKER_CODES)
        cascades = iter(CASCADE_CODES)
        wmis = iter(WMIS)
        for ent in self.ents:
            if ent.has(EnterpriseRole.battery_maker):
                ent.code = next(makers)
            elif ent.has(EnterpriseRole.cascade_user):
                ent.code = next(cascades)
            elif ent.has(EnterpriseRole.vehicle_maker):
                ent.wmi = next(wmis)
        rows = [
            {
                "uscc": e.uscc,
                "name_zh": e.name_zh,
                "name_en": e.name_en,
                "lon": e.lon,
                "lat": e.lat,
                "province_adcode": "510000",
                "prefecture_adcode": e.prefecture,
                "county_adcode": e.county,
                "park_id": e.park_id,
                "location_overridden": False,
            }
            for e in self.ents
        ]
        ids = _insert(self.session, Enterprise, col(Enterprise.id), rows, "enterprises", self.progress)
        for ent, new_id in zip(self.ents, ids, strict=True):
            ent.id = new_id
        roles = [{"enterprise_id": e.id, "role": role} for e in self.ents for role in e.kind.roles]
        _insert_plain(self.session, EnterpriseRoleLink, roles, "roles", self.progress)
        self.role_count = len(roles)

    def _site_point(self, site: str, parks: dict[str, _Park]) -> tuple[float, float]:
        rng = self.rng
        if site in parks:
            polygon = parks[site].polygon
            minx, miny, maxx, maxy = polygon.bounds
            while True:
                lon, lat = round(rng.uniform(minx, maxx), 6), round(rng.uniform(miny, maxy), 6)
                if polygon.contains(Point(lon, lat)):
                    return lon, lat
        county = self.counties[site]
        seat = county.representative_point()
        reach = 10.0
        for attempt in range(400):
            angle, dist = rng.uniform(0, 2 * math.pi), reach * math.sqrt(rng.random())
            lon, lat = _offset(seat.x, seat.y, dist * math.cos(angle), dist * math.sin(angle))
            lon, lat = round(lon, 6), round(lat, 6)
            point = Point(lon, lat)
            if county.contains(point) and not any(p.polygon.covers(point) for p in self.parks):
                return lon, lat
            if attempt % 50 == 49:
                reach *= 0.7  # narrow counties: come closer to the representative point
        return round(seat.x, 6), round(seat.y, 6)  # pragma: no cover

    def _name_enterprises(self) -> None:
        rng = self.rng
        names: set[str] = set()
        orgs: set[str] = set()
        for ent in self.ents:
            place_zh, place_en = COUNTY_SHORT.get(ent.county) or PREFECTURE_SHORT[ent.prefecture]
            for attempt in range(50):
                suffix_zh, suffix_en = rng.choice(SUFFIXES)
                if ent.kind.style == "plant" and attempt < 10:
                    group_zh, group_en = rng.choice(POWER_GROUPS)
                    zh = f"{group_zh}{place_zh}发电有限责任公司"
                    en = f"{group_en} {place_en} Power Generation Co., Ltd."
                else:
                    (a_zh, a_en), (b_zh, b_en) = rng.sample(BRAND_SYLLABLES, 2)
                    prefix_zh, prefix_en = ("四川", "Sichuan") if rng.random() < 0.2 else (place_zh, place_en)
                    zh = f"{prefix_zh}{a_zh}{b_zh}{ent.kind.industry_zh}{suffix_zh}"
                    en = f"{prefix_en} {a_en}{b_en.lower()} {ent.kind.industry_en} {suffix_en}"
                if zh not in names:
                    break
            names.add(zh)
            ent.name_zh, ent.name_en = zh, en
            org = _org_code(rng)
            while org in orgs:
                org = _org_code(rng)
            orgs.add(org)
            ent.uscc = make_uscc("91" + ent.county + org[:8])

    def of_kind(self, *keys: str) -> list[_Ent]:
        return [e for e in self.ents if e.kind.key in keys]

    def with_role(self, role: EnterpriseRole) -> list[_Ent]:
        return [e for e in self.ents if e.has(role)]

    def nearest(self, origin: _Ent, pool: Sequence[_Ent], k: int) -> list[_Ent]:
        ranked = sorted((e for e in pool if e is not origin), key=lambda e: (_km(origin.point, e.point), e.n))
        return ranked[:k]

    # --- declarations --------------------------------------------------------------------------------------------

    def make_declarations(self) -> None:
        rng = self.rng
        for ent in self.ents:
            for cat, low, high in ent.kind.generates:
                base = _loguniform(rng, low, high)
                offset = rng.gauss(0, 0.07)
                first = rng.randint(*ent.kind.first_year)
                level = base
                for year in YEARS:
                    level *= rng.uniform(0.93, 1.09)
                    if year < first:
                        continue
                    # A ramping plant declares less in its first year.
                    generated = level * (rng.uniform(0.3, 0.6) if year == first and first > 2020 else 1.0)
                    prior = generated * rng.uniform(0.02, 0.12) if rng.random() < 0.22 else 0.0
                    disposed_prior = generated * rng.uniform(0.005, 0.03) if rng.random() < 0.05 else 0.0
                    dumped = rng.uniform(0.001, 0.01) if rng.random() < 0.03 else 0.0
                    self.decls.append(_Decl(ent, cat, year, generated, offset, prior, disposed_prior, dumped))
        # Shift each year's utilisation so that the province's target-set rate follows TARGET_PATH.
        shifts = {year: self._calibrate([d for d in self.decls if d.year == year and d.cat in TARGET_SET], goal)
                  for year, goal in TARGET_PATH.items()}  # fmt: skip
        for d in self.decls:
            share = self._share(d, shifts[d.year] if d.cat in TARGET_SET else 0.0)
            behaviour = CATEGORY_BEHAVIOUR[d.cat]
            g = round(d.generated, 1)
            current_use = round(share * g, 1)
            rest = g - current_use
            current_disposal = round(rest * behaviour.disposed_of_rest * rng.uniform(0.7, 1.1), 1)
            current_disposal = min(current_disposal, rest)
            dumped = round(min(g * d.dumped_share, rest - current_disposal), 1)
            d.generated = g
            d.prior = round(d.prior, 1)
            d.disposed_prior = round(d.disposed_prior, 1)
            d.utilised = round(current_use + d.prior, 1)
            d.disposed = round(current_disposal + d.disposed_prior, 1)
            d.dumped = max(dumped, 0.0)
            d.stored = max(round(g - current_use - current_disposal - d.dumped, 1), 0.0)
        self._break_balances()

    @staticmethod
    def _share(d: _Decl, shift: float) -> float:
        b = CATEGORY_BEHAVIOUR[d.cat]
        return min(0.97, max(0.02, b.utilised_2020 + b.rise * (d.year - 2020) + d.offset + shift))

    def _calibrate(self, decls: list[_Decl], goal: float) -> float:
        def rate(shift: float) -> float:
            used = sum(self._share(d, shift) * d.generated + d.prior for d in decls)
            return used / sum(d.generated + d.prior for d in decls)

        low, high = -0.6, 0.6
        for _ in range(50):
            mid = (low + high) / 2
            low, high = (mid, high) if rate(mid) < goal else (low, mid)
        return (low + high) / 2

    def _break_balances(self) -> None:
        # Audit fodder: stock over-declared on a few rows, and one row using more than it made without prior stock.
        rng = self.rng
        small = [d for d in self.decls if d.generated < 200_000]
        for d in rng.sample(small, 8):
            d.stored = round(d.stored + d.generated * rng.uniform(0.05, 0.25), 1)
        d = rng.choice([d for d in small if d.prior == 0 and d.year >= 2022])
        d.utilised, d.disposed, d.disposed_prior, d.stored, d.dumped = round(d.generated * 1.18, 1), 0.0, 0.0, 0.0, 0.0

    def declaration_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "enterprise_id": d.ent.id,
                "category_code": d.cat,
                "year": d.year,
                "generated_t": d.generated,
                "utilised_t": d.utilised,
                "utilised_prior_t": d.prior,
                "disposed_t": d.disposed,
                "disposed_prior_t": d.disposed_prior,
                "stored_t": d.stored,
                "dumped_t": d.dumped,
            }
            for d in self.decls
        ]

    # --- manifests -----------------------------------------------------------------------------------------------

    def make_batches(self) -> None:
        rng = self.rng
        utilisers = self.with_role(EnterpriseRole.utiliser)
        disposers = self.with_role(EnterpriseRole.disposer)
        collectors = [c for c in self.with_role(EnterpriseRole.collector) if c.kind.route is Route.storage]
        pretreaters = self.of_kind("pretreat")
        carriers = self.with_role(EnterpriseRole.transporter)
        links: dict[
            tuple[int, str], tuple[list[tuple[_Ent, float]], _Ent | None, _Ent | None, _Ent | None, _Ent, list[_Ent]]
        ] = {}
        for d in self.decls:
            key = (d.ent.n, d.cat)
            if key not in links:
                licensed = [u for u in utilisers if d.cat in u.kind.accepts]
                # Strays are plausible mistakes: a building-materials or cement works without this category.
                unlicensed = [u for u in utilisers if d.cat not in u.kind.accepts and u.kind.route in _STRAY_ROUTES]
                unlicensed = unlicensed or [u for u in utilisers if d.cat not in u.kind.accepts]
                volume = d.generated
                k = 1 if volume < 50_000 else 2 if volume < 500_000 else 3
                near = self.nearest(d.ent, licensed, 5)
                chosen = rng.sample(near, min(k, len(near)))
                weights = [rng.uniform(0.5, 1.5) for _ in chosen]
                shares = [(u, w / sum(weights)) for u, w in zip(chosen, weights, strict=True)]
                disposer = next(iter(self.nearest(d.ent, [x for x in disposers if d.cat in x.kind.accepts], 1)), None)
                collector = None
                if volume < 80_000:
                    collector = next(
                        iter(self.nearest(d.ent, [x for x in collectors if d.cat in x.kind.accepts], 1)), None
                    )
                stray = self.nearest(d.ent, unlicensed, 3)[rng.randrange(3)]
                plant = next(iter(self.nearest(d.ent, [x for x in pretreaters if d.cat in x.kind.accepts], 1)), None)
                if plant is not None and _km(d.ent.point, plant.point) > 150:
                    plant = None
                links[key] = (shares, disposer, collector, plant, stray, self.nearest(d.ent, carriers, 3))
            shares, disposer, collector, plant, stray, fleet = links[key]
            offsite = d.utilised * (1 - d.ent.kind.in_house)
            to_collector = offsite * 0.08 if collector else 0.0
            to_plant = offsite * 0.2 if plant else 0.0
            for receiver, share in shares:
                self._lots(d, receiver, (offsite - to_collector - to_plant) * share, receiver.kind.route, fleet, stray)
            if collector:
                self._lots(d, collector, to_collector, Route.storage, fleet, None)
            if plant:
                self._lots(d, plant, to_plant, Route.transfer, fleet, None)
            if disposer:
                self._lots(d, disposer, d.disposed * d.ent.kind.offsite_disposal, Route.disposal, fleet, None)

    def _lots(
        self, d: _Decl, receiver: _Ent, tonnes: float, route: Route | None, fleet: list[_Ent], stray: _Ent | None
    ) -> None:
        # A manifest here is a consolidated lot (a fortnight's or a month's loads on one route), so that the
        # manifests add up to the declarations: the bottom-up check then shows real gaps, not sampling noise.
        if tonnes < 50:
            return
        rng = self.rng
        n = next(count for floor, count in _LOTS_PER_YEAR if tonnes >= floor)
        raw = [rng.uniform(0.75, 1.25) for _ in range(n)]
        scale = tonnes / sum(raw)
        days = 366 if d.year % 4 == 0 else 365
        for i, r in enumerate(raw):
            day = date(d.year, 1, 1) + timedelta(days=int((i + rng.random()) * days / n))
            to = receiver
            if stray is not None and rng.random() < 0.015:
                to = stray  # a receiver without a licence for this category: audit fodder
            carrier = rng.choice(fleet) if rng.random() < 0.9 else None
            self.batches.append(
                _Batch(d.ent, to, carrier, d.cat, route or Route.other_utilisation, _at(day, rng, 6, 19), r * scale)
            )

    def make_forwardings(self) -> None:
        """Intermediaries send on what they received, month by month: collectors first, then pre-treatment plants."""
        rng = self.rng
        utilisers = self.with_role(EnterpriseRole.utiliser)
        plants = self.of_kind("pretreat")
        unlinked: tuple[int, int] | None = None  # (collector, group) whose forwarding names no source
        for stage in ("collector", "pretreat"):
            for ent in self.of_kind(stage):
                incoming: dict[tuple[str, int, int], list[int]] = {}
                for i, b in enumerate(self.batches):
                    if b.receiver is ent and b.route in INTERMEDIATE_ROUTES:
                        incoming.setdefault((b.cat, b.planned.year, b.planned.month), []).append(i)
                for g, ((cat, year, _month), lots) in enumerate(sorted(incoming.items())):
                    last = max(self.batches[i].planned for i in lots)
                    planned = last + timedelta(days=rng.randint(7, 20), hours=rng.randint(0, 8))
                    if planned > DEMO_NOW - timedelta(days=10):
                        continue  # still held at the end of the demo
                    licensed = [u for u in utilisers if cat in u.kind.accepts]
                    onward = [p for p in plants if cat in p.kind.accepts]
                    if stage == "collector" and onward and rng.random() < 0.25:
                        to, route = self.nearest(ent, onward, 1)[0], Route.transfer  # a second intermediary
                    else:
                        to = self.nearest(ent, licensed, 2)[rng.randrange(min(2, len(licensed)))]
                        route = to.kind.route or Route.other_utilisation
                    # Collectors keep a tenth in store; pre-treatment loses a little moisture and fines.
                    factor = 0.9 if stage == "collector" else rng.uniform(0.93, 0.98)
                    named = stage == "pretreat" or rng.random() < 0.35
                    sources: list[tuple[int, float | None]] = [
                        (i, round(self.batches[i].weight * factor, 2) if named else None) for i in lots
                    ]
                    weight = (
                        sum(t for _i, t in sources if t is not None)
                        if named
                        else (sum(self.batches[i].weight for i in lots) * factor)
                    )
                    for i in lots:
                        self.batches[i].keep = True
                    if stage == "collector" and unlinked is None and year == 2024:
                        unlinked, sources = (ent.n, g), []  # forwarded without naming its lots: audit fodder
                    carrier = self.nearest(ent, self.with_role(EnterpriseRole.transporter), 1)[0]
                    self.batches.append(
                        _Batch(ent, to, carrier, cat, route, planned, weight, keep=True, sources=sources)
                    )

    def batch_rows(self) -> list[dict[str, Any]]:
        rng = self.rng
        order = sorted(range(len(self.batches)), key=lambda i: (self.batches[i].planned, i))
        rows: list[dict[str, Any]] = []
        for i in order:
            b = self.batches[i]
            year = b.planned.year
            weight = round(b.weight, 2)
            created = min(
                b.planned - timedelta(hours=rng.uniform(2, 48)), DEMO_NOW - timedelta(hours=rng.uniform(0, 6))
            )
            transit = timedelta(hours=_km(b.shipper.point, b.receiver.point) / 45 + rng.uniform(0.5, 3))
            arrived = b.planned + transit
            status = ManifestStatus.received
            dispatched_at: datetime | None = b.planned
            received_at: datetime | None = arrived
            received: float | None = weight
            reason = None
            roll = rng.random()
            if b.keep:
                received = round(weight * (1 + rng.gauss(0, 0.003)), 2)  # drawn from later: arrives whole
            elif b.planned > DEMO_NOW - timedelta(days=6):
                if b.planned > DEMO_NOW or roll < 0.5:
                    status, dispatched_at, received_at, received = ManifestStatus.draft, None, None, None
                else:
                    status, received_at, received = ManifestStatus.dispatched, None, None
            elif arrived > DEMO_NOW or roll < 0.003:
                status, received_at, received = ManifestStatus.dispatched, None, None  # in transit, or stuck
            elif roll < 0.015:
                status, received = ManifestStatus.rejected, None
                reason = rng.choice(BATCH_REJECTIONS)
            elif roll < 0.028:
                status, dispatched_at, received_at, received = ManifestStatus.cancelled, None, None, None
            elif roll < 0.036:
                status, received = ManifestStatus.corrected, round(weight * rng.uniform(0.97, 0.995), 2)
            elif roll < 0.051:
                # A weighbridge gap beyond the 2% tolerance.
                gap = rng.uniform(0.025, 0.09) * (1 if rng.random() < 0.8 else -0.5)
                received = round(weight * (1 - gap), 2)
            else:
                received = round(weight * (1 + rng.gauss(0, 0.003)), 2)
            self.row_of[i] = len(rows)
            rows.append(
                {
                    "shipper_id": b.shipper.id,
                    "receiver_id": b.receiver.id,
                    "carrier_id": b.carrier.id if b.carrier else None,
                    "category_code": b.cat,
                    "route": b.route,
                    "year": year,
                    "status": status,
                    "weight_dispatched_t": weight,
                    "weight_received_t": received,
                    "dispatched_at": _utc(dispatched_at) if dispatched_at else None,
                    "received_at": _utc(received_at) if received_at else None,
                    "rejection_reason": reason,
                    "created_at": _utc(created),
                    **(self._handover(b, weight) if dispatched_at else {}),
                }
            )
        return rows

    def _handover(self, b: _Batch, weight: float) -> dict[str, Any]:
        """What the handover records: plate, mode, packaging, and whether the lot was weighed."""
        rng = self.rng
        km = _km(b.shipper.point, b.receiver.point)
        if b.shipper.park_id is not None and b.shipper.park_id == b.receiver.park_id and km < 3:
            mode = TransportMode.conveyor  # a belt to the neighbour in the same park
        elif km > 150 and weight > 5_000:
            mode = TransportMode.rail
        else:
            mode = TransportMode.road
        letter = _PLATE_LETTERS.get(b.shipper.prefecture, "A")
        plate = f"川{letter}" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
        return {
            "vehicle_plate": plate if mode is TransportMode.road else None,
            "transport_mode": mode,
            "packaging": "散装" if b.cat not in _BAGGED else "吨袋",
            # Belts have scales too: a few lots of every mode go estimated.
            "weighing": Weighing.estimated if rng.random() < 0.04 else Weighing.weighed,
        }

    def source_rows(self, ids: list[int]) -> list[dict[str, Any]]:
        """The lots each forwarding names, against the ids its rows were given."""
        rows: list[dict[str, Any]] = []
        for i, b in enumerate(self.batches):
            for source, tonnes in b.sources or ():
                rows.append(
                    {
                        "manifest_id": ids[self.row_of[i]],
                        "source_id": ids[self.row_of[source]],
                        "weight_t": tonnes,
                    }
                )
        return rows

    # --- licences and whitelist ----------------------------------------------------------------------------------

    def licence_rows(self) -> list[dict[str, Any]]:
        rng = self.rng
        activity_of = {
            Route.disposal: LicenceActivity.disposal,
            Route.storage: LicenceActivity.storage,
            Route.transfer: LicenceActivity.collection,
        }
        received: dict[tuple[int, str, LicenceActivity], dict[int, float]] = {}
        for b in self.batches:
            activity = activity_of.get(b.route, LicenceActivity.utilisation)
            per_year = received.setdefault((b.receiver.n, b.cat, activity), {})
            per_year[b.planned.year] = per_year.get(b.planned.year, 0.0) + b.weight
        wanted: list[tuple[_Ent, str, LicenceActivity]] = []
        for ent in self.ents:
            for cat in ent.kind.accepts:
                if ent.has(EnterpriseRole.disposer):
                    wanted.append((ent, cat, LicenceActivity.disposal))
                elif ent.has(EnterpriseRole.collector):
                    wanted += [(ent, cat, LicenceActivity.collection), (ent, cat, LicenceActivity.storage)]
                elif ent.has(EnterpriseRole.transporter):
                    wanted.append((ent, cat, LicenceActivity.transport))
                else:
                    wanted.append((ent, cat, LicenceActivity.utilisation))
        prefix = {
            LicenceActivity.utilisation: "川固利",
            LicenceActivity.disposal: "川固处",
            LicenceActivity.storage: "川固贮",
            LicenceActivity.collection: "川固收",
            LicenceActivity.transport: "川固运",
        }
        busy = [i for i, (e, c, a) in enumerate(wanted) if len(received.get((e.n, c, a), {})) == 5]
        over, expired = rng.sample(busy, 3), rng.choice(busy)
        # Generators that utilise part of their waste on site hold a utilisation licence for it, all but a few:
        # those are the audit's "declared utilisation without matching manifests".
        in_house = [
            (ent, cat, LicenceActivity.utilisation)
            for ent in self.ents
            if ent.kind.in_house > 0
            for cat, _low, _high in ent.kind.generates
            if (ent, cat, LicenceActivity.utilisation) not in wanted
        ]
        # A generator of its own, so that the main stream (and every later record) stays as it was.
        local = random.Random(len(in_house))
        unlicensed = set(local.sample(range(len(in_house)), min(3, len(in_house))))
        rows = []
        for i, (ent, cat, activity) in enumerate(wanted):
            peak = max(received.get((ent.n, cat, activity), {}).values(), default=0.0)
            capacity = peak * rng.uniform(1.3, 2.0) if peak else rng.uniform(10_000, 150_000)
            if i in over[:2]:
                capacity = peak * 0.7  # received more than licensed: audit fodder
            start = date(2019, 1, 1) + timedelta(days=rng.randint(0, 360))
            rows.append(
                {
                    "enterprise_id": ent.id,
                    "category_code": cat,
                    "activity": activity,
                    "capacity_t": float(math.ceil(capacity / 1000) * 1000),
                    "licence_no": f"{prefix[activity]}〔{start.year}〕{i + 1:04d}号",
                    "valid_from": start,
                    "valid_to": date(2022, 12, 31) if i == expired else None,
                }
            )
        for n, (ent, cat, activity) in enumerate(in_house):
            if n in unlicensed:
                continue
            start = date(2019, 1, 1) + timedelta(days=local.randint(0, 360))
            rows.append(
                {
                    "enterprise_id": ent.id,
                    "category_code": cat,
                    "activity": activity,
                    "capacity_t": float(local.randrange(200, 3000) * 1000),
                    "licence_no": f"{prefix[activity]}〔{start.year}〕{len(wanted) + n + 1:04d}号",
                    "valid_from": start,
                    "valid_to": None,
                }
            )
        return rows

    def whitelist_rows(self) -> list[dict[str, Any]]:
        rows = []
        for ent in self.ents:
            if ent.whitelist is None:
                continue
            batch, listed = WHITELIST_BATCHES[ent.whitelist]
            kind = WhitelistKind.cascade_use if ent.has(EnterpriseRole.cascade_user) else WhitelistKind.recycling
            revoked = REVOKED_ON if ent.kind.key == "recycler_revoked" else None
            rows.append(
                {
                    "enterprise_id": ent.id,
                    "kind": kind,
                    "edition": _edition(listed),
                    "batch": batch,
                    "listed_on": listed,
                    "revoked_on": revoked,
                }
            )
        first_recycler = self.of_kind("recycler")[0]
        batch, listed = WHITELIST_BATCHES["2021-3"]
        rows.append(
            {
                "enterprise_id": first_recycler.id,
                "kind": WhitelistKind.cascade_use,
                "edition": _edition(listed),
                "batch": batch,
                "listed_on": listed,
                "revoked_on": None,
            }
        )
        return rows

    # --- batteries -----------------------------------------------------------------------------------------------

    def _code(self, maker: str, level: BatteryLevel, chemistry: str, produced: date, trace: str | None = None) -> str:
        rng = self.rng
        key = (maker, produced)
        serial = self.serials.get(key) or rng.randint(1, 400_000)
        self.serials[key] = serial + 1
        spec = f"{rng.choice('ABCDEFGH')}{rng.randint(0, 9)}"
        if trace is None:
            trace = f"L{rng.choice('123456789ABC')}{produced.year % 100:02d}{rng.randint(0, 999):03d}"
        return encode_battery_code(maker, level, chemistry, spec, trace, produced, serial)

    def make_batteries(self) -> None:
        rng = self.rng
        makers = self.with_role(EnterpriseRole.battery_maker)
        kinds = [k for k, n in PACK_COUNTS.items() for _ in range(n)]
        # Deliberate scenarios ride on cell-to-pack packs (no children), so that each fault is flagged once.
        scenarios = (
            ["lost"] * 5 + ["unlisted_cascade"] * 2 + ["unlisted_recycler"] * 2 + ["revoked"] * 2 + ["late"] * 6
            + ["below"] * 2 + ["mass_above"] * 2 + ["stop_produced"] * 3 + ["stop_tested"] * 2
            + ["stop_repurposed"] * 2 + ["stop_dismantled"] * 2
        )  # fmt: skip
        year_weights = {2016: 6, 2017: 9, 2018: 12, 2019: 12, 2020: 11, 2021: 13, 2022: 14, 2023: 12, 2024: 11}
        ctp_seen = 0
        modular_seen = 0
        for pack_kind in kinds:
            scenario = "normal"
            if pack_kind == "ctp" and ctp_seen < len(scenarios):
                scenario = scenarios[ctp_seen]
                ctp_seen += 1
            if pack_kind == "modular":
                modular_seen += 1
                if modular_seen == 7:
                    scenario = "vanish"
            year = rng.choices(list(year_weights), weights=list(year_weights.values()))[0]
            if scenario == "stop_produced":
                produced = date(2024, 12, rng.randint(20, 28))
            elif scenario in ("lost", "unlisted_cascade", "unlisted_recycler", "revoked", "late", "below",
                              "mass_above", "stop_tested", "stop_repurposed", "stop_dismantled", "vanish"):  # fmt: skip
                produced = date(rng.randint(2016, 2018), rng.randint(1, 12), rng.randint(1, 28))
            else:
                produced = date(year, 1, 1) + timedelta(days=rng.randint(0, 364))
            maker = rng.choice(makers)
            if pack_kind == "micro":
                vehicle, chemistry, kwh = "micro", "B", rng.uniform(13, 18)
            else:
                vehicle = rng.choices(["private", "taxi", "bus", "van"], weights=[55, 25, 12, 8])[0]
                if vehicle == "bus":
                    chemistry, kwh = rng.choice("BBBBG"), rng.uniform(180, 320)
                elif vehicle == "van":
                    chemistry, kwh = "B", rng.uniform(40, 60)
                else:
                    chemistry, kwh = rng.choice("BBBEEE" if vehicle == "private" else "BBBBEE"), rng.uniform(45, 85)
            per_kwh = {"B": rng.uniform(6.8, 7.5), "E": rng.uniform(5.8, 6.4), "G": rng.uniform(9.5, 11.0)}[chemistry]
            pack = _Bat(
                BatteryLevel.pack,
                maker,
                chemistry,
                produced,
                self._code(maker.code, BatteryLevel.pack, chemistry, produced),
                round(kwh, 1),
                round(kwh * per_kwh, 1),
                scenario=scenario,
            )
            self.batteries.append(pack)
            if pack_kind != "ctp":
                modules = 4 if pack_kind == "micro" else rng.randint(4, 6)
                for _ in range(modules):
                    made = produced - timedelta(days=rng.randint(1, 6))
                    module = _Bat(
                        BatteryLevel.module,
                        maker,
                        chemistry,
                        made,
                        self._code(maker.code, BatteryLevel.module, chemistry, made),
                        round(pack.rated_kwh * 0.98 / modules, 2),
                        round(pack.mass_kg * 0.88 / modules, 2),
                        parent=pack,
                    )
                    pack.children.append(module)
                    self.batteries.append(module)
                    if pack_kind == "micro":
                        for _ in range(6):
                            cell_made = made - timedelta(days=rng.randint(1, 8))
                            cell = _Bat(
                                BatteryLevel.cell,
                                maker,
                                chemistry,
                                cell_made,
                                self._code(maker.code, BatteryLevel.cell, chemistry, cell_made),
                                round(module.rated_kwh / 6, 3),
                                round(module.mass_kg * 0.92 / 6, 2),
                                parent=module,
                            )
                            module.children.append(cell)
                            self.batteries.append(cell)
            self._pack_life(pack, vehicle)
            self._fill_children(pack)

    def _eligible(self, kind: WhitelistKind, when: date) -> list[_Ent]:
        role = EnterpriseRole.cascade_user if kind is WhitelistKind.cascade_use else EnterpriseRole.recycler
        found = []
        for ent in self.with_role(role):
            if ent.whitelist is None or ent.kind.key == "recycler_revoked":
                continue
            if WHITELIST_BATCHES[ent.whitelist][1] <= when:
                found.append(ent)
        return found

    def _pick(self, kind: WhitelistKind, when: datetime, near: _Ent) -> _Ent:
        pool = self._eligible(kind, when.date()) or self._eligible(kind, date(2018, 12, 31))
        return self.rng.choice(self.nearest(near, pool, 2))

    def _pack_life(self, pack: _Bat, vehicle: str) -> None:
        rng = self.rng
        scenario = pack.scenario
        fast = scenario.startswith("stop_")
        c = _Cursor(rng, pack, pack.maker, fast)
        c.first(_at(pack.produced, rng), attrs={"rated_kwh": pack.rated_kwh, "mass_kg": pack.mass_kg})
        if scenario == "stop_produced":
            return
        vm = rng.choice(self.with_role(EnterpriseRole.vehicle_maker))
        if not c.add(BatteryEventType.transferred, (3, 20), counterpart=vm, holder=vm, attrs={"reason": "delivery"}):
            return
        vin_year = c.t.year
        vin = _vin(rng, vm.wmi, vin_year, rng.randint(0, 999_999))
        if not c.add(BatteryEventType.installed, (2, 30), reporter=vm, vin=vin, attrs={"vehicle_type": vehicle}):
            return
        life_years = {"private": (7, 11), "taxi": (3, 5), "bus": (5, 8), "van": (4, 7), "micro": (5, 8)}[vehicle]
        retire = c.t + timedelta(days=int(365 * rng.uniform(*life_years)))
        if scenario == "lost":
            retire = datetime(2022, 3, 1, 10, tzinfo=CST) + timedelta(days=rng.randint(0, 460))
        elif fast or scenario == "vanish":
            retire = datetime(2024, 6, 1, 10, tzinfo=CST) + timedelta(days=rng.randint(0, 30))
        elif scenario != "normal":
            retire = datetime(2023, 8, 1, 10, tzinfo=CST) + timedelta(days=rng.randint(0, 200))
        if not c.add(BatteryEventType.retired, at=retire, reporter=vm, vin=vin):
            return
        if scenario == "lost":
            return  # retired, never collected
        outlets = self.nearest(vm, self.with_role(EnterpriseRole.collection_outlet), 8)
        outlet = rng.choice(outlets)
        if not c.add(BatteryEventType.collected, (5, 45), reporter=outlet, counterpart=vm, holder=outlet):
            return
        soh = round(rng.uniform(0.55, 0.88), 3)
        cascade = soh >= 0.7 and rng.random() < (0.7 if pack.chemistry == "B" else 0.35)
        if scenario in ("unlisted_cascade", "stop_tested", "stop_repurposed"):
            cascade = True
        elif scenario != "normal":
            cascade = False
        when = c.peek((7, 60))
        if when is None:
            return
        if scenario == "unlisted_cascade":
            receiver = rng.choice(self.of_kind("cascade_unlisted"))
        elif scenario == "unlisted_recycler":
            receiver = rng.choice(self.of_kind("recycler_unlisted"))
        elif scenario == "revoked":
            receiver = self.of_kind("recycler_revoked")[0]
            when = max(when, datetime(REVOKED_ON.year, REVOKED_ON.month, REVOKED_ON.day, 10, tzinfo=CST)
                       + timedelta(days=rng.randint(5, 60)))  # fmt: skip
        else:
            kind = WhitelistKind.cascade_use if cascade else WhitelistKind.recycling
            receiver = self._pick(kind, when, outlet)
        if not c.add(BatteryEventType.transferred, at=when, counterpart=receiver, holder=receiver,
                     attrs={"reason": "移交梯次利用" if cascade else "移交再生利用"}):  # fmt: skip
            return
        if cascade and pack.children and scenario == "normal" and rng.random() < 0.6:
            # The cascade user opens the pack and regroups its modules.
            if c.add(BatteryEventType.dismantled, (5, 30), attrs={"mass_kg": pack.mass_kg}):
                self._children(pack, "cascade")
            return
        if cascade:
            if not self._cascade(c, pack, soh, stop=scenario):
                return
        self._recycle(c, pack, scenario)

    def _cascade(self, c: _Cursor, bat: _Bat, soh: float, stop: str = "normal") -> bool:
        """Test, repurpose (re-code), use and retire again; True when the battery came back for recycling."""
        rng = self.rng
        user = c.holder
        if not c.add(BatteryEventType.tested, (3, 20), attrs={"soh": soh}) or stop == "stop_tested":
            return False
        when = c.peek((10, 45))
        if when is None:
            return False
        new_code = self._code(user.code, bat.level, bat.chemistry, when.date(), trace="0000000")
        if not c.add(BatteryEventType.repurposed, at=when, attrs={"original_code": bat.code, "new_code": new_code}):
            return False
        bat.original_code, bat.code = bat.code, new_code
        if stop == "stop_repurposed":
            return False
        if not c.add(BatteryEventType.in_cascade_use, (5, 30), attrs={"application": rng.choice(CASCADE_APPLICATIONS)}):
            return False
        if not c.add(BatteryEventType.retired, (365 * 2, 365 * 5)):
            return False
        when = c.peek((10, 60))
        if when is None:
            return False
        recycler = self._pick(WhitelistKind.recycling, when, user)
        return c.add(BatteryEventType.collected, at=when, reporter=recycler, counterpart=user, holder=recycler)

    def _recycle(self, c: _Cursor, bat: _Bat, scenario: str) -> None:
        if not c.add(BatteryEventType.dismantled, (5, 40), attrs={"mass_kg": bat.mass_kg}):
            return
        if bat.children:
            if scenario != "vanish":  # the modules of a "vanish" pack are never seen again
                self._children(bat, "recycle")
            return
        if scenario == "stop_dismantled":
            return
        at = None
        if scenario == "below" and bat is self._first("below"):
            # Reported after the 2024 edition took effect, so it is held against the 2024 thresholds.
            at = max(c.t + timedelta(days=1), datetime(2024, 12, 26, 10, tzinfo=CST))
        c.add(BatteryEventType.recovered, (15, 90), at=at)

    def _first(self, scenario: str) -> _Bat | None:
        return next((b for b in self.batteries if b.scenario == scenario), None)

    def _children(self, parent: _Bat, plan: str) -> None:
        rng = self.rng
        cut = next(i for i, e in enumerate(parent.events) if e.type is BatteryEventType.dismantled)
        dismantled = parent.events[cut]
        for child in parent.children:
            child.events = [
                _Ev(BatteryEventType.produced, _at(child.produced, rng), child.maker, None, child.maker,
                    attrs={"rated_kwh": child.rated_kwh, "mass_kg": child.mass_kg})
            ]  # fmt: skip
            child.events += _mirror(parent.events[1:cut])
            c = _Cursor(rng, child, dismantled.holder, False, start=dismantled.at)
            if plan == "cascade":
                soh = round(rng.uniform(0.7, 0.9), 3)
                if not self._cascade(c, child, soh):
                    continue
            if not c.add(BatteryEventType.dismantled, (1, 10), attrs={"mass_kg": child.mass_kg}):
                continue
            if child.children:
                self._children(child, "recycle")
            else:
                c.add(BatteryEventType.recovered, (10, 60))

    def _fill_children(self, parent: _Bat) -> None:
        # Children that no event of their own reached share their parent's whole history (up to its opening).
        cut = next(
            (i for i, e in enumerate(parent.events) if e.type is BatteryEventType.dismantled), len(parent.events)
        )
        for child in parent.children:
            if not child.events:
                child.events = [
                    _Ev(BatteryEventType.produced, _at(child.produced, self.rng), child.maker, None, child.maker,
                        attrs={"rated_kwh": child.rated_kwh, "mass_kg": child.mass_kg})
                ]  # fmt: skip
                child.events += _mirror(parent.events[1:cut])
            self._fill_children(child)

    def battery_rows(self, level: BatteryLevel) -> list[dict[str, Any]]:
        rows = []
        for b in self.batteries:
            if b.level is not level:
                continue
            state, holder = BatteryState.produced, b.maker
            for e in b.events:
                if e.type is not BatteryEventType.transferred:
                    state = BatteryState(e.type.value)
                holder = e.holder
            rows.append(
                {
                    "code": b.code,
                    "original_code": b.original_code,
                    "level": b.level,
                    "maker_code": b.maker.code,
                    "chemistry": b.chemistry,
                    "production_date": b.produced,
                    "parent_id": b.parent.id if b.parent else None,
                    "state": state,
                    "holder_id": holder.id,
                    "rated_kwh": b.rated_kwh,
                    "mass_kg": b.mass_kg,
                }
            )
        return rows

    def event_rows(self) -> list[dict[str, Any]]:
        rng = self.rng
        for b in self.batteries:
            if b.scenario == "late":
                # Late by months, but still reported before DEMO_NOW.
                old = [e for e in b.events[1:] if e.at < DEMO_NOW - timedelta(days=260)]
                if old:
                    rng.choice(old).late = True
        rows = []
        for b in self.batteries:
            for e in b.events:
                if e.late:
                    reported = e.at + timedelta(days=rng.randint(60, 240), hours=rng.uniform(0, 8))
                else:
                    reported = min(e.at + timedelta(hours=rng.uniform(0.2, 72)), max(e.at, DEMO_NOW))
                rows.append(
                    {
                        "battery_id": b.id,
                        "type": e.type,
                        "occurred_at": _utc(e.at),
                        "reported_at": _utc(reported),
                        "reporter_id": e.reporter.id,
                        "counterpart_id": e.counterpart.id if e.counterpart else None,
                        "region_adcode": e.reporter.county,
                        "vin": e.vin,
                        "attributes": e.attrs,
                    }
                )
        return rows

    def recovery_rows(self) -> list[dict[str, Any]]:
        rng = self.rng
        rows = []
        below_seen = 0
        for b in self.batteries:
            if not b.events or b.events[-1].type is not BatteryEventType.recovered:
                continue
            last = b.events[-1]
            reported = min(last.at + timedelta(days=rng.randint(5, 25)), max(last.at, DEMO_NOW)).date()
            mass = b.mass_kg * rng.uniform(0.97, 1.0)
            powder_share = rng.uniform(0.25, 0.30) if b.level is BatteryLevel.pack else rng.uniform(0.33, 0.38)
            lithium = mass * (0.011 if b.chemistry == "B" else 0.014 if b.chemistry == "E" else 0.01)
            ternary = b.chemistry == "E"
            nickel = mass * rng.uniform(0.09, 0.11) if ternary else 0.0
            cobalt = mass * rng.uniform(0.025, 0.035) if ternary else 0.0
            manganese = mass * rng.uniform(0.02, 0.03) if ternary else 0.0
            li_rate, metal_rate = rng.uniform(0.905, 0.96), rng.uniform(0.982, 0.995)
            powder = mass * powder_share
            if b.scenario == "below":
                li_rate, metal_rate = 0.80 + below_seen * 0.02, 0.95
                below_seen += 1
            elif b.scenario == "mass_above":
                powder, li_rate = mass * 1.08, 1.12  # more out than went in: impossible, to be flagged
            rows.append(
                {
                    "recycler_id": last.holder.id,
                    "battery_id": b.id,
                    "reported_on": reported,
                    "edition": "2024" if reported >= date(2024, 12, 24) else "2019",
                    "input_mass_kg": round(mass, 2),
                    "electrode_powder_kg": round(powder, 2),
                    "lithium_in_kg": round(lithium, 3),
                    "lithium_out_kg": round(lithium * li_rate, 3),
                    "nickel_in_kg": round(nickel, 3),
                    "nickel_out_kg": round(nickel * metal_rate, 3),
                    "cobalt_in_kg": round(cobalt, 3),
                    "cobalt_out_kg": round(cobalt * metal_rate, 3),
                    "manganese_in_kg": round(manganese, 3),
                    "manganese_out_kg": round(manganese * metal_rate, 3),
                }
            )
        return rows


def _mirror(events: Sequence[_Ev]) -> list[_Ev]:
    """Copies of a parent's events for a child inside it; the parent's own codes stay with the parent."""
    return [
        _Ev(e.type, e.at, e.reporter, e.counterpart, e.holder, e.vin,
            {k: v for k, v in e.attrs.items() if k not in ("original_code", "new_code")})
        for e in events
    ]  # fmt: skip


class _Cursor:
    """Appends a battery's events one after another, never past DEMO_NOW."""

    def __init__(self, rng: random.Random, bat: _Bat, holder: _Ent, fast: bool, start: datetime | None = None) -> None:
        self.rng = rng
        self.bat = bat
        self.holder = holder
        self.fast = fast  # scenario batteries move in days, so that their last state is reached before DEMO_NOW
        self.t = start or datetime.combine(bat.produced, datetime.min.time(), tzinfo=CST)

    def first(self, at: datetime, attrs: dict[str, Any]) -> None:
        self.bat.events.append(_Ev(BatteryEventType.produced, at, self.holder, None, self.holder, attrs=attrs))
        self.t = at

    def peek(self, gap: tuple[int, int]) -> datetime | None:
        low, high = (1, 6) if self.fast else gap
        at = _at(self.t.date() + timedelta(days=self.rng.randint(low, high)), self.rng)
        if at <= self.t:
            at = self.t + timedelta(minutes=self.rng.randint(10, 120))
        return at if at <= DEMO_NOW else None

    def add(
        self,
        etype: BatteryEventType,
        gap: tuple[int, int] = (1, 10),
        *,
        at: datetime | None = None,
        reporter: _Ent | None = None,
        counterpart: _Ent | None = None,
        holder: _Ent | None = None,
        vin: str | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> bool:
        when = self.peek(gap) if at is None else max(at, self.t + timedelta(minutes=10))
        if when is None or when > DEMO_NOW:
            return False
        new_holder = holder or self.holder
        self.bat.events.append(
            _Ev(etype, when, reporter or self.holder, counterpart, new_holder, vin, dict(attrs or {}))
        )
        self.t, self.holder = when, new_holder
        return True


def _add_dismantler(session: Session) -> None:
    """One end-of-life vehicle dismantler, fixed and added last, so that no draw of the seeded demo moves."""
    lon, lat = 104.2530, 30.8830  # Qingbaijiang, Chengdu
    loc = locate_many(session=session, points=[(lon, lat)])[0]
    e = Enterprise(
        uscc=make_uscc("91510113MA6CJ001"),
        name_zh="成都青白江报废机动车回收拆解有限公司",
        name_en="Chengdu Qingbaijiang End-of-Life Vehicle Dismantling Co., Ltd.",
        lon=lon,
        lat=lat,
        province_adcode="510000",
        prefecture_adcode=loc.prefecture,
        county_adcode=loc.county,
        park_id=loc.park,
    )
    session.add(e)
    session.flush()
    assert e.id is not None
    session.add(EnterpriseRoleLink(enterprise_id=e.id, role=EnterpriseRole.dismantler))


def load_demo(*, session: Session, seed: int = 2024, progress: Progress | None = None) -> DemoSummary:
    """Load the Sichuan demo into a database brought up by upgrade_database; the caller commits."""
    demo = _Demo(session, seed, progress)
    demo.check_empty()
    demo.make_parks()
    demo.make_enterprises()
    demo.make_declarations()
    demo.make_batches()
    demo.make_forwardings()
    licences = demo.licence_rows()
    _insert_plain(session, Licence, licences, "licences", progress)
    whitelist = demo.whitelist_rows()
    _insert_plain(session, WhitelistEntry, whitelist, "whitelist", progress)
    declarations = demo.declaration_rows()
    _insert_plain(session, Declaration, declarations, "declarations", progress)
    batches = demo.batch_rows()
    # Numbered by the service's counter, as every manifest is, in the order the rows were planned.
    by_year: dict[int, list[dict[str, Any]]] = {}
    for row in batches:
        by_year.setdefault(row["year"], []).append(row)
    for year, rows in by_year.items():
        for row, number in zip(rows, reserve_numbers(session, year, len(rows)), strict=True):
            row["number"] = number
    # Each year gets its partition before its rows arrive (PostgreSQL), so that they go straight in.
    partitions.ensure(session=session, now=datetime.now(UTC), years=by_year)
    ids = _insert(session, Manifest, col(Manifest.id), batches, "manifests", progress)
    numbers.record(session, ids)  # inserted in bulk, past the ORM's hook: their number rows are written here
    sources = demo.source_rows(ids)
    _insert_plain(session, ManifestSource, sources, "manifest sources", progress)
    chains.reallocate_all(session)  # inserted in bulk: their shares are computed here rather than on each flush
    demo.make_batteries()
    for level in (BatteryLevel.pack, BatteryLevel.module, BatteryLevel.cell):
        # Parents first, so that children can point at their ids.
        bats = [b for b in demo.batteries if b.level is level]
        ids = _insert(
            session, Battery, col(Battery.id), demo.battery_rows(level), f"batteries ({level.value}s)", progress
        )
        for bat, new_id in zip(bats, ids, strict=True):
            bat.id = new_id
    codes = [{"code": b.code, "battery_id": b.id} for b in demo.batteries]
    _insert_plain(session, BatteryCode, codes, "battery codes", progress)
    events = demo.event_rows()
    years = {row["occurred_at"].astimezone(CST).year for row in events}
    partitions.ensure(session=session, now=datetime.now(UTC), years=years)
    _insert_plain(session, BatteryEvent, events, "battery events", progress)
    reports = demo.recovery_rows()
    _insert_plain(session, RecoveryReport, reports, "recovery reports", progress)
    _add_dismantler(session)
    # The demo's past years landed in DEFAULT (PostgreSQL): each gets its partition, its rows moved into it.
    partitions.ensure(session=session, now=datetime.now(UTC))
    session.flush()
    return DemoSummary(
        parks=len(demo.parks),
        enterprises=len(demo.ents) + 1,
        roles=demo.role_count + 1,
        licences=len(licences),
        whitelist_entries=len(whitelist),
        declarations=len(declarations),
        manifests=len(batches),
        batteries=len(demo.batteries),
        battery_events=len(events),
        recovery_reports=len(reports),
    )
