"""GeoJSON layers (RFC 7946, lon/lat) for the map and the API."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from maps.geometry import label_point, to_geojson
from models import Park, Region
from models.enums import RegionLevel


def regions_layer(
    *, session: Session, level: RegionLevel, parent: str | None = None, tolerance: float = 0.005
) -> dict[str, Any]:
    """Regions of one level as a FeatureCollection, simplified for display (tolerance in degrees), each with the
    point where its name goes."""
    query = select(Region).where(Region.level == level)
    if parent is not None:
        query = query.where(Region.parent_adcode == parent)
    features = []
    for region in session.exec(query.order_by(Region.adcode)).all():
        geom = region.geom.simplify(tolerance, preserve_topology=True) if tolerance > 0 else region.geom
        features.append(
            {
                "type": "Feature",
                "id": region.adcode,
                "geometry": to_geojson(geom),
                "properties": {
                    "adcode": region.adcode,
                    "name_zh": region.name_zh,
                    "name_en": region.name_en,
                    "level": str(region.level),
                    "parent_adcode": region.parent_adcode,
                    # Where a map writes the region's name: inside the outline drawn.
                    "label_point": [round(c, 4) for c in label_point(geom)],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def parks_layer(*, session: Session, region_prefix: str | None = None) -> dict[str, Any]:
    """Park boundaries as a FeatureCollection."""
    query = select(Park)
    if region_prefix:
        query = query.where(col(Park.region_adcode).startswith(region_prefix))
    features = [
        {
            "type": "Feature",
            "id": park.id,
            "geometry": to_geojson(park.boundary),
            "properties": {
                "id": park.id,
                "name_zh": park.name_zh,
                "name_en": park.name_en,
                "level": str(park.level),
                "region_adcode": park.region_adcode,
                "transformation_status": str(park.transformation_status),
                "waste_free": park.waste_free,
            },
        }
        for park in session.exec(query.order_by(col(Park.id))).all()
    ]
    return {"type": "FeatureCollection", "features": features}
