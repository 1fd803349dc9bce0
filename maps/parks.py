"""Creating parks from polygons, and reading park boundaries from GeoJSON, GeoPackage or Shapefile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
from shapely.geometry.base import BaseGeometry
from sqlmodel import Session, select

from flows.kernel.bounds import label
from flows.kernel.errors import Conflict, InvalidInput
from flows.kernel.messages import Term, msg
from maps.datum import Datum, geometry_to_wgs84
from maps.geometry import from_geojson, to_multipolygon
from maps.locate import try_locate
from models import Park
from models.enums import ParkLevel, TransformationStatus


@dataclass(frozen=True)
class ParkSpec:
    """What a user gives to create a park."""

    name_zh: str
    boundary: BaseGeometry | dict[str, Any]
    name_en: str | None = None
    level: str = ParkLevel.provincial
    industries: str = ""
    transformation_status: str = TransformationStatus.not_started
    transformation_year: int | None = None
    waste_free: bool = False


E = TypeVar("E", ParkLevel, TransformationStatus)


def _enum(value: str, enum: type[E], field: str, row: int | None) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidInput(
            "maps.not_one_of", field=field, row=row, column=label(field), value=value, allowed=allowed
        ) from None


def build_park(spec: ParkSpec, *, session: Session, row: int | None = None, repair: bool = True) -> Park:
    """Validate a park and place it in the county (or prefecture) that holds its interior point."""
    if not spec.name_zh.strip():
        raise InvalidInput("maps.park_needs_name", field="name_zh", row=row, column=Term("field.name_zh"))
    raw = spec.boundary if isinstance(spec.boundary, BaseGeometry) else from_geojson(spec.boundary, field="boundary")
    try:
        boundary = to_multipolygon(raw, field="boundary", repair=repair)
    except InvalidInput as exc:
        raise InvalidInput(exc.code, field="boundary", row=row, **exc.params) from None
    point = boundary.representative_point()
    loc = try_locate(session=session, lon=point.x, lat=point.y)
    region = loc.county or loc.prefecture
    if region is None:
        raise InvalidInput(
            "maps.park_outside_regions",
            field="boundary",
            row=row,
            column=Term("field.boundary"),
            lon=point.x,
            lat=point.y,
        )
    return Park(
        name_zh=spec.name_zh.strip(),
        name_en=spec.name_en,
        level=_enum(spec.level, ParkLevel, "level", row),
        region_adcode=region,
        industries=spec.industries,
        transformation_status=_enum(spec.transformation_status, TransformationStatus, "transformation_status", row),
        transformation_year=spec.transformation_year,
        waste_free=spec.waste_free,
        boundary=boundary,
    )


def create_parks(specs: list[ParkSpec], *, session: Session, repair: bool = True) -> list[Park]:
    """Create several parks in one transaction: all of them, or none if any row is wrong."""
    names = set(session.exec(select(Park.name_zh)).all())
    parks: list[Park] = []
    errors: list[InvalidInput] = []
    for row, spec in enumerate(specs, start=1):
        try:
            park = build_park(spec, session=session, row=row, repair=repair)
        except InvalidInput as exc:
            errors.append(exc)
            continue
        if park.name_zh in names:
            errors.append(
                InvalidInput(
                    "maps.park_name_taken", field="name_zh", row=row, column=Term("field.name_zh"), name=park.name_zh
                )
            )
            continue
        names.add(park.name_zh)
        parks.append(park)
    if errors:
        rows = [msg("maps.park_row", number=e.row, problem=msg(e.code, **e.params)) for e in errors]
        raise InvalidInput(
            "maps.parks_refused",
            field=errors[0].field,
            row=errors[0].row,
            refused=len(errors),
            total=len(specs),
            rows=rows,
        )
    session.add_all(parks)
    session.flush()
    return parks


def create_park(spec: ParkSpec, *, session: Session, repair: bool = True) -> Park:
    """Create one park; a name already taken is a conflict."""
    if session.exec(select(Park.id).where(Park.name_zh == spec.name_zh.strip())).first() is not None:
        raise Conflict("maps.park_name_taken", field="name_zh", column=Term("field.name_zh"), name=spec.name_zh)
    return create_parks([spec], session=session, repair=repair)[0]


def read_parks_file(path: Path, datum: Datum = Datum.wgs84) -> list[ParkSpec]:
    """Read parks from a GeoJSON, GeoPackage or Shapefile; columns as ParkSpec's fields, CRS converted to 4326.

    A file drawn on AMap or Tencent (GCJ-02) or Baidu (BD-09) maps says so by `datum`: its lon/lat are moved to WGS84.
    """
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several types; the user needs the message
        raise InvalidInput("maps.parks_file_unreadable", field="file", file=path.name, error=str(exc)) from exc
    if "name_zh" not in frame.columns:
        raise InvalidInput("maps.parks_file_needs_name", field="name_zh", file=path.name)
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    specs = []
    for row, record in enumerate(frame.to_dict("records"), start=1):
        geom = record.get("geometry")
        if geom is None:
            raise InvalidInput("maps.feature_without_geometry", field="geometry", row=row, number=row)
        year = record.get("transformation_year")
        specs.append(
            ParkSpec(
                name_zh=str(record["name_zh"]),
                name_en=_opt_str(record.get("name_en")),
                level=str(record.get("level") or ParkLevel.provincial),
                industries=str(record.get("industries") or ""),
                transformation_status=str(record.get("transformation_status") or TransformationStatus.not_started),
                transformation_year=int(year) if year not in (None, "") and year == year else None,
                waste_free=bool(record.get("waste_free") or False),
                boundary=geometry_to_wgs84(geom, datum),
            )
        )
    return specs


def _opt_str(value: Any) -> str | None:
    if value is None or value != value:  # NaN from pandas
        return None
    return str(value)
