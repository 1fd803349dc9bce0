"""Point-in-polygon: which province, prefecture, county and park a point lies in.

One interface, two backends: PostGIS answers on PostgreSQL (GiST indexes), a shapely STRtree answers elsewhere.
Both use "covers" (a point on a boundary belongs to the polygon), take the lowest adcode where divisions touch
and the smallest park where parks overlap, so that they give the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point
from sqlalchemy import text
from sqlmodel import Session, col, func, select

from flows.kernel.errors import OutsideRegions
from maps.geometry import check_lonlat
from models import Park, Region
from models.enums import RegionLevel


@dataclass(frozen=True)
class Location:
    """Where a point lies; None where it lies in no division or park of that kind."""

    province: str | None
    prefecture: str | None
    county: str | None
    park: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _ShapelyIndex:
    """STRtrees over the stored regions and parks of one database."""

    def __init__(self, session: Session) -> None:
        regions = session.exec(select(Region.adcode, Region.level, Region.geom).order_by(Region.adcode)).all()
        parks = session.exec(select(Park.id, Park.boundary).order_by(col(Park.id))).all()
        self.region_codes = [r[0] for r in regions]
        self.region_levels = [RegionLevel(r[1]) for r in regions]
        self.region_geoms = np.array([r[2] for r in regions], dtype=object)
        self.park_ids = [p[0] for p in parks]
        self.park_geoms = np.array([p[1] for p in parks], dtype=object)
        self.park_areas = [g.area for g in self.park_geoms]
        for geoms in (self.region_geoms, self.park_geoms):
            shapely.prepare(geoms)
        self.region_tree = shapely.STRtree(self.region_geoms)
        self.park_tree = shapely.STRtree(self.park_geoms)

    def locate(self, lon: float, lat: float) -> Location:
        point = Point(lon, lat)
        found: dict[RegionLevel, str] = {}
        for i in sorted(self.region_tree.query(point, predicate="covered_by"), key=lambda j: self.region_codes[j]):
            found.setdefault(self.region_levels[i], self.region_codes[i])
        park_hits = list(self.park_tree.query(point, predicate="covered_by"))
        park = min(park_hits, key=lambda j: (self.park_areas[j], self.park_ids[j])) if park_hits else None
        return Location(
            province=found.get(RegionLevel.province),
            prefecture=found.get(RegionLevel.prefecture),
            county=found.get(RegionLevel.county),
            park=self.park_ids[park] if park is not None else None,
        )


_cache: dict[tuple[Any, ...], _ShapelyIndex] = {}


def _fingerprint(session: Session) -> tuple[Any, ...]:
    # Cheap to compute, and changes whenever a region or park is added, removed or reshaped (an edited park counts
    # its version up: a new boundary may be as long as the old one).
    bind = session.get_bind()
    regions = session.exec(select(func.count()).select_from(Region)).one()
    parks = session.exec(
        select(
            func.count(), func.max(Park.id), func.sum(func.length(Park.boundary)), func.sum(Park.version)
        ).select_from(Park)
    ).one()
    return (str(bind.engine.url), regions, *parks)


def _shapely_index(session: Session) -> _ShapelyIndex:
    key = _fingerprint(session)
    index = _cache.get(key)
    if index is None:
        _cache.clear()
        index = _cache[key] = _ShapelyIndex(session)
    return index


_PG_REGIONS = text(
    "SELECT adcode, level FROM region WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) ORDER BY adcode"
)
_PG_PARK = text(
    "SELECT id FROM park WHERE ST_Covers(boundary, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
    " ORDER BY ST_Area(boundary), id LIMIT 1"
)


def _postgis_locate(session: Session, lon: float, lat: float) -> Location:
    found: dict[RegionLevel, str] = {}
    for adcode, level in session.execute(_PG_REGIONS, {"lon": lon, "lat": lat}):
        found.setdefault(RegionLevel(level), adcode)
    park = session.execute(_PG_PARK, {"lon": lon, "lat": lat}).scalar()
    return Location(
        province=found.get(RegionLevel.province),
        prefecture=found.get(RegionLevel.prefecture),
        county=found.get(RegionLevel.county),
        park=park,
    )


def backend_name(session: Session) -> str:
    """Which backend answers spatial questions for this session."""
    return "postgis" if session.get_bind().dialect.name == "postgresql" else "shapely"


def try_locate(*, session: Session, lon: float, lat: float) -> Location:
    """Locate a point; every field may be None."""
    check_lonlat(lon, lat)
    if backend_name(session) == "postgis":
        return _postgis_locate(session, lon, lat)
    return _shapely_index(session).locate(lon, lat)


def locate(*, session: Session, lon: float, lat: float) -> Location:
    """Locate a point that must lie inside a loaded province."""
    loc = try_locate(session=session, lon=lon, lat=lat)
    if loc.province is None:
        raise OutsideRegions("maps.point_outside_regions", field="lon/lat", lon=lon, lat=lat)
    return loc


def locate_many(*, session: Session, points: Iterable[tuple[float, float]]) -> Sequence[Location]:
    """Locate many points with one index build (or one connection on PostGIS)."""
    return [try_locate(session=session, lon=lon, lat=lat) for lon, lat in points]
