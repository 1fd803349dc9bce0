"""The one place where geometry is converted: GeoJSON <-> shapely, with repair and checks."""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel
from shapely.validation import explain_validity

from flows.kernel.bounds import label
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Term

# Generous box around Sichuan and its neighbours; anything outside is a typo or swapped lon/lat.
SICHUAN_BBOX = (92.0, 25.0, 110.5, 35.0)


def to_multipolygon(geom: BaseGeometry, *, field: str = "geometry", repair: bool = True) -> MultiPolygon:
    """Coerce a polygonal geometry to a valid MultiPolygon, repairing self-intersections with make_valid."""
    if geom.is_empty:
        raise InvalidInput("maps.geometry_empty", field=field, column=label(field))
    if not geom.is_valid:
        if not repair:
            raise InvalidInput(
                "maps.polygon_invalid", field=field, column=label(field), explanation=explain_validity(geom)
            )
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
        raise InvalidInput("maps.not_a_polygon", field=field, column=label(field), geom_type=geom.geom_type)
    return MultiPolygon(parts)


def from_geojson(obj: dict[str, Any], *, field: str = "geometry") -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry or Feature (RFC 7946, lon/lat)."""
    if obj.get("type") == "Feature":
        obj = obj.get("geometry") or {}
    try:
        return shape(obj)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput("maps.not_geojson", field=field, column=label(field), error=str(exc)) from exc


def to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """A GeoJSON geometry mapping (lon/lat)."""
    return dict(mapping(geom))


def check_lonlat(lon: float, lat: float, *, row: int | None = None) -> None:
    """Refuse coordinates outside the world, naming the field."""
    # The value as text: it may be NaN or Infinity, which no JSON answer can carry as a number.
    if not -180 <= lon <= 180:
        raise InvalidInput(
            "maps.coordinate_outside",
            field="lon",
            row=row,
            column=Term("field.lon"),
            value=str(lon),
            low=-180,
            high=180,
        )
    if not -90 <= lat <= 90:
        raise InvalidInput(
            "maps.coordinate_outside", field="lat", row=row, column=Term("field.lat"), value=str(lat), low=-90, high=90
        )


def label_point(geom: BaseGeometry, *, tolerance: float = 0.01) -> tuple[float, float]:
    """Where a place's name sits: the pole of inaccessibility of its largest part, always inside (lon, lat)."""
    # The centroid of a crescent or of a prefecture with islands may fall outside it; the point furthest from every
    # edge of the largest part is inside and where the eye expects the name.
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    largest = max(parts, key=lambda p: p.area)
    point = polylabel(largest, tolerance) if isinstance(largest, Polygon) else largest.representative_point()
    return point.x, point.y


def lat_lon_bounds(geom: BaseGeometry) -> list[list[float]]:
    """A geometry's extent as Leaflet reads it: [[south, west], [north, east]]."""
    west, south, east, north = geom.bounds
    return [[south, west], [north, east]]
