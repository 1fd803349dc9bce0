"""The one place where geometry is converted: GeoJSON <-> shapely, with repair and checks."""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from flows.kernel.errors import InvalidInput

# Generous box around Sichuan and its neighbours; anything outside is a typo or swapped lon/lat.
SICHUAN_BBOX = (92.0, 25.0, 110.5, 35.0)


def to_multipolygon(geom: BaseGeometry, *, field: str = "geometry", repair: bool = True) -> MultiPolygon:
    """Coerce a polygonal geometry to a valid MultiPolygon, repairing self-intersections with make_valid."""
    if geom.is_empty:
        raise InvalidInput(f"{field}: the geometry is empty", field=field)
    if not geom.is_valid:
        if not repair:
            raise InvalidInput(f"{field}: invalid polygon ({explain_validity(geom)})", field=field)
        geom = shapely.make_valid(geom)
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    polygons = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon | MultiPolygon)]
    parts: list[Polygon] = []
    for g in polygons:
        parts.extend(g.geoms if isinstance(g, MultiPolygon) else [g])
    if not parts:
        raise InvalidInput(f"{field}: not a polygon (got {geom.geom_type})", field=field)
    return MultiPolygon(parts)


def from_geojson(obj: dict[str, Any], *, field: str = "geometry") -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry or Feature (RFC 7946, lon/lat)."""
    if obj.get("type") == "Feature":
        obj = obj.get("geometry") or {}
    try:
        return shape(obj)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{field}: not a GeoJSON geometry ({exc})", field=field) from exc


def to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """A GeoJSON geometry mapping (lon/lat)."""
    return dict(mapping(geom))


def check_lonlat(lon: float, lat: float, *, row: int | None = None) -> None:
    """Refuse coordinates outside the world, naming the field."""
    if not -180 <= lon <= 180:
        raise InvalidInput(f"lon {lon} is outside -180..180", field="lon", row=row)
    if not -90 <= lat <= 90:
        raise InvalidInput(f"lat {lat} is outside -90..90", field="lat", row=row)
