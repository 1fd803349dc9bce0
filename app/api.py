"""JSON API under /api/v1: thin routes over flows/ and maps/."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.deps import SessionDep
from flows import directory
from flows.stats import table_counts
from maps.geometry import to_geojson
from maps.layers import parks_layer, regions_layer
from maps.locate import locate
from models.enterprise import EnterprisePublic
from models.enums import RegionLevel
from models.reference import ParkPublic, RegionPublic

router = APIRouter()


class EnterprisesPublic(BaseModel):
    data: list[EnterprisePublic]
    count: int


class LocationPublic(BaseModel):
    province: str | None
    prefecture: str | None
    county: str | None
    park: int | None


@router.get("/regions", response_model=list[RegionPublic], tags=["regions"])
def list_regions(
    session: SessionDep, level: RegionLevel | None = None, parent: str | None = None
) -> list[RegionPublic]:
    """Administrative divisions (without boundaries)."""
    return directory.list_regions(session=session, level=level, parent=parent)


@router.get("/regions/geojson", tags=["regions"])
def regions_geojson(
    session: SessionDep,
    level: RegionLevel = RegionLevel.prefecture,
    parent: str | None = None,
    tolerance: Annotated[float, Query(ge=0, le=0.1)] = 0.005,
) -> dict[str, Any]:
    """Region boundaries as a GeoJSON FeatureCollection, simplified for display."""
    return regions_layer(session=session, level=level, parent=parent, tolerance=tolerance)


@router.get("/regions/{adcode}", response_model=RegionPublic, tags=["regions"])
def get_region(session: SessionDep, adcode: str) -> RegionPublic:
    """One division."""
    return RegionPublic.model_validate(directory.get_region(session=session, adcode=adcode))


@router.get("/regions/{adcode}/geojson", tags=["regions"])
def region_geojson(session: SessionDep, adcode: str) -> dict[str, Any]:
    """One division's full boundary as a GeoJSON Feature."""
    region = directory.get_region(session=session, adcode=adcode)
    props = RegionPublic.model_validate(region).model_dump(mode="json")
    return {"type": "Feature", "id": adcode, "geometry": to_geojson(region.geom), "properties": props}


@router.get("/parks", response_model=list[ParkPublic], tags=["parks"])
def list_parks(session: SessionDep, region: str | None = None) -> list[ParkPublic]:
    """Industrial parks, optionally within a region."""
    return directory.list_parks(session=session, region=region)


@router.get("/parks/geojson", tags=["parks"])
def parks_geojson(session: SessionDep) -> dict[str, Any]:
    """Park boundaries as a GeoJSON FeatureCollection."""
    return parks_layer(session=session)


@router.get("/parks/{park_id}", response_model=ParkPublic, tags=["parks"])
def get_park(session: SessionDep, park_id: int) -> ParkPublic:
    """One park."""
    return ParkPublic.model_validate(directory.get_park(session=session, park_id=park_id))


@router.get("/enterprises", response_model=EnterprisesPublic, tags=["enterprises"])
def list_enterprises(
    session: SessionDep,
    region: str | None = None,
    park_id: int | None = None,
    role: str | None = None,
    q: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EnterprisesPublic:
    """Enterprises, filtered and paginated; count is the total before pagination."""
    page = directory.list_enterprises(
        session=session, region=region, park_id=park_id, role=role, q=q, offset=offset, limit=limit
    )
    return EnterprisesPublic(data=page.data, count=page.count)


@router.get("/enterprises/{enterprise_id}", response_model=EnterprisePublic, tags=["enterprises"])
def get_enterprise(session: SessionDep, enterprise_id: int) -> EnterprisePublic:
    """One enterprise with its roles."""
    return directory.get_enterprise(session=session, enterprise_id=enterprise_id)


@router.get("/locate", response_model=LocationPublic, tags=["regions"])
def locate_point(
    session: SessionDep,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
) -> LocationPublic:
    """The province, prefecture, county and park a WGS84 point lies in."""
    return LocationPublic(**locate(session=session, lon=lon, lat=lat).as_dict())


@router.get("/stats", tags=["health"])
def stats(session: SessionDep) -> dict[str, int]:
    """Row counts of the main tables."""
    return table_counts(session=session)
