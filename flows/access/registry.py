"""Enterprises and parks edited by administrators: one writer for the pages and the API, every change audited.

An edit names the version it read (the record's `version` column): of two edits made at once from the same version
one wins and the other is refused (409) with nothing lost. A location may be given in WGS84, GCJ-02 (AMap, Tencent)
or BD-09 (Baidu) and is stored in WGS84. A moved point re-derives the province, prefecture, county and park, as the
enterprise import does (flows.waste.imports uses `derived_place`); a park set by hand in the same edit is kept and
marked so. The audit log is the history: each entry holds the location, region, park and roles before and after.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shapely.geometry.base import BaseGeometry
from sqlmodel import Session, col, select

from flows.access.trail import record
from flows.kernel.bounds import printable
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from maps.datum import Datum, geometry_to_wgs84, point_to_wgs84
from maps.geometry import from_geojson, to_multipolygon
from maps.locate import Location, locate, try_locate
from maps.parks import ParkSpec, build_park
from models import AuditLog, Enterprise, EnterpriseRoleLink, Park, User
from models.enums import EnterpriseRole, ParkLevel, TransformationStatus

MAX_VERSION = 1_000_000_000
Place = tuple[str | None, str | None, str | None, int | None]  # province, prefecture, county, park


def ensure_registrar(principal: Principal) -> None:
    """Enterprises and parks are reference data: administrators edit them."""
    if not principal.is_admin:
        raise Forbidden("registry.admins_only", role=Term(f"role.{principal.role.value}"))


def derived_place(*, loc: Location, moved: bool, overridden: bool, stored: Place | None) -> tuple[Place, bool]:
    """Where an enterprise lies after a write: a region or park set by hand stays while the point stays put."""
    if stored is not None and overridden and not moved:
        return stored, True
    return (loc.province, loc.prefecture, loc.county, loc.park), False


def _version(value: int, stored: int, field: str = "version") -> None:
    if value != stored:
        raise Conflict("registry.stale", field=field, given=value, version=stored)


def _problem(exc: ValidationError, what: str) -> InvalidInput:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or what
    return InvalidInput("registry.invalid", field=where, detail=printable(first["msg"], 160))


# ---------------------------------------------------------------------------------------------------------------
# Enterprises


class EnterpriseEdit(BaseModel):
    """What an edit of an enterprise may change; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_VERSION, description="the version as last read: a stale one is refused (409)")
    name_zh: str | None = Field(default=None, min_length=1, max_length=128)
    name_en: str | None = Field(default=None, max_length=128, description="empty: no English name")
    roles: list[EnterpriseRole] | None = Field(default=None, min_length=1, max_length=len(EnterpriseRole))
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    datum: Datum = Field(default=Datum.wgs84, description="the datum lon/lat were taken in: wgs84, gcj02 or bd09")
    park_id: int | None = Field(
        default=None, ge=0, le=MAX_VERSION, description="the park set by hand (0: in no park); left out: derived"
    )
    derive: bool = Field(default=False, description="drop a region and park set by hand: derive them from the point")


def parse_enterprise_edit(data: object) -> EnterpriseEdit:
    """Validate an edit, naming the first wrong field."""
    if not isinstance(data, dict):
        raise InvalidInput("registry.not_an_object", field="enterprise")
    try:
        edit = EnterpriseEdit.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc, "enterprise") from None
    if (edit.lon is None) != (edit.lat is None):
        raise InvalidInput("registry.lonlat_together", field="lat" if edit.lat is None else "lon")
    if edit.name_zh is not None and not edit.name_zh.strip():
        raise InvalidInput("registry.required", field="name_zh")
    return edit


def _roles(session: Session, enterprise_id: int) -> list[str]:
    rows = session.exec(select(EnterpriseRoleLink.role).where(EnterpriseRoleLink.enterprise_id == enterprise_id))
    return sorted(str(r) for r in rows)


def _state(e: Enterprise, roles: list[str]) -> dict[str, Any]:
    """What the history keeps of an enterprise: its name, location, divisions, park and roles."""
    return {
        "name_zh": e.name_zh,
        "name_en": e.name_en,
        "lon": e.lon,
        "lat": e.lat,
        "province_adcode": e.province_adcode,
        "prefecture_adcode": e.prefecture_adcode,
        "county_adcode": e.county_adcode,
        "park_id": e.park_id,
        "location_overridden": e.location_overridden,
        "roles": roles,
        "version": e.version,
    }


def _locked_enterprise(session: Session, ident: int) -> Enterprise | None:
    query = select(Enterprise).where(Enterprise.id == ident).with_for_update()
    return session.exec(query.execution_options(populate_existing=True)).first()


def _locked_park(session: Session, ident: int) -> Park | None:
    query = select(Park).where(Park.id == ident).with_for_update()
    return session.exec(query.execution_options(populate_existing=True)).first()


def edit_enterprise(
    *, session: Session, principal: Principal, enterprise_id: int, data: object, now: datetime
) -> Enterprise:
    """Apply an edit of an enterprise (name, roles, location, park) and audit it; the caller commits."""
    ensure_registrar(principal)
    edit = parse_enterprise_edit(data)
    e = _locked_enterprise(session, enterprise_id)
    if e is None:
        raise NotFound("access.enterprise_not_found", field="enterprise_id", enterprise_id=enterprise_id)
    _version(edit.version, e.version)
    roles = _roles(session, enterprise_id)
    before = _state(e, roles)
    if edit.name_zh is not None:
        e.name_zh = edit.name_zh.strip()
    if "name_en" in edit.model_fields_set:
        e.name_en = (edit.name_en or "").strip() or None
    lon, lat = e.lon, e.lat
    if edit.lon is not None and edit.lat is not None:
        lon, lat = point_to_wgs84(edit.lon, edit.lat, edit.datum)
    moved = (lon, lat) != (e.lon, e.lat)
    if moved or edit.derive or "park_id" in edit.model_fields_set:
        loc = locate(session=session, lon=lon, lat=lat)
        stored: Place = (e.province_adcode, e.prefecture_adcode, e.county_adcode, e.park_id)
        place, overridden = derived_place(
            loc=loc, moved=moved, overridden=e.location_overridden and not edit.derive, stored=stored
        )
        if "park_id" in edit.model_fields_set:
            park = edit.park_id or None
            if park is not None and session.get(Park, park) is None:
                raise InvalidInput("registry.no_park", field="park_id", park_id=park)
            place, overridden = (place[0], place[1], place[2], park), True
        e.lon, e.lat = lon, lat
        e.province_adcode, e.prefecture_adcode, e.county_adcode, e.park_id = place
        e.location_overridden = overridden
    if edit.roles is not None:
        wanted = sorted({r.value for r in edit.roles})
        if wanted != roles:
            for link in session.exec(select(EnterpriseRoleLink).where(EnterpriseRoleLink.enterprise_id == e.id)):
                session.delete(link)
            session.flush()
            session.add_all(EnterpriseRoleLink(enterprise_id=enterprise_id, role=EnterpriseRole(r)) for r in wanted)
            roles = wanted
    _keep(session, principal, e, "enterprise", before, _state(e, roles), now)
    return e


def _keep(
    session: Session,
    principal: Principal,
    row: Enterprise | Park,
    table: str,
    before: dict[str, Any],
    after: dict[str, Any],
    now: datetime,
) -> bool:
    """Count an edit that changed something up one version and audit it; False when it changed nothing."""
    if {k: v for k, v in after.items() if k != "version"} == {k: v for k, v in before.items() if k != "version"}:
        return False
    row.version += 1
    after["version"] = row.version
    session.add(row)
    session.flush()
    ids = (row.id,) if isinstance(row, Enterprise) else ()
    record(
        session=session,
        principal=principal,
        action="edit",
        table=table,
        row_id=row.id,
        before=before,
        after=after,
        now=now,
        enterprises=ids,
    )
    return True


def audit_enterprise_change(
    *,
    session: Session,
    principal: Principal,
    enterprise_id: int,
    before: dict[str, Any],
    after: dict[str, Any],
    now: datetime,
    action: str = "import",
) -> None:
    """Keep a change of an enterprise's location, divisions, park or roles made by other means than an edit (an
    import, a park's new boundary) in its history."""
    record(
        session=session,
        principal=principal,
        action=action,
        table="enterprise",
        row_id=enterprise_id,
        before=before,
        after=after,
        now=now,
        enterprises=(enterprise_id,),
    )


class Change(BaseModel):
    """One change of a record, from the audit log: who, when, through which channel, and what it was and became."""

    at: datetime
    action: str
    by: str | None
    channel: str
    changed: dict[str, tuple[Any, Any]]


def history(*, session: Session, table: str, row_id: int, limit: int = 50) -> list[Change]:
    """An enterprise's or park's changes, newest first, each with the fields it changed (before, after)."""
    rows = session.exec(
        select(AuditLog, User.username)
        .join(User, col(User.id) == AuditLog.user_id, isouter=True)
        .where(AuditLog.table_name == table, AuditLog.row_id == str(row_id), col(AuditLog.before).is_not(None))
        .order_by(col(AuditLog.id).desc())
        .limit(limit)
    ).all()
    out = []
    for log, name in rows:
        before, after = log.before or {}, log.after or {}
        changed = {
            k: (before.get(k), after.get(k))
            for k in sorted(set(before) | set(after))
            if k != "version" and before.get(k) != after.get(k)
        }
        out.append(Change(at=log.at, action=log.action, by=name, channel=str(log.channel), changed=changed))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Parks


class ParkEdit(BaseModel):
    """What an edit of a park may change; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_VERSION, description="the version as last read: a stale one is refused (409)")
    name_zh: str | None = Field(default=None, min_length=1, max_length=128)
    name_en: str | None = Field(default=None, max_length=128)
    level: ParkLevel | None = None
    transformation_status: TransformationStatus | None = None
    transformation_year: int | None = Field(default=None, ge=2000, le=2100)
    waste_free: bool | None = None
    boundary: dict[str, Any] | None = Field(default=None, description="a GeoJSON Polygon, MultiPolygon or Feature")
    datum: Datum = Field(default=Datum.wgs84, description="the datum the boundary was drawn in")


def _park_state(p: Park) -> dict[str, Any]:
    b = p.boundary
    return {
        "name_zh": p.name_zh,
        "name_en": p.name_en,
        "level": str(p.level),
        "transformation_status": str(p.transformation_status),
        "transformation_year": p.transformation_year,
        "waste_free": p.waste_free,
        "region_adcode": p.region_adcode,
        # The boundary itself is megabytes at worst: its extent and area say whether and how it moved.
        "boundary_bounds": [round(v, 6) for v in b.bounds] if isinstance(b, BaseGeometry) else None,
        "version": p.version,
    }


def edit_park(*, session: Session, principal: Principal, park_id: int, data: object, now: datetime) -> Park:
    """Apply an edit of a park; a new boundary re-places the park and re-derives its enterprises' park."""
    ensure_registrar(principal)
    if not isinstance(data, dict):
        raise InvalidInput("registry.not_an_object", field="park")
    try:
        edit = ParkEdit.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc, "park") from None
    p = _locked_park(session, park_id)
    if p is None:
        raise NotFound("access.park_not_found", field="park_id", park_id=park_id)
    _version(edit.version, p.version)
    before = _park_state(p)
    if edit.name_zh is not None:
        name = edit.name_zh.strip()
        if not name:
            raise InvalidInput("registry.required", field="name_zh")
        clash = session.exec(select(Park.id).where(Park.name_zh == name, col(Park.id) != park_id)).first()
        if clash is not None:
            raise Conflict("maps.park_name_taken", field="name_zh", column=Term("field.name_zh"), name=name)
        p.name_zh = name
    if "name_en" in edit.model_fields_set:
        p.name_en = (edit.name_en or "").strip() or None
    for name in ("level", "transformation_status", "waste_free"):
        value = getattr(edit, name)
        if value is not None:
            setattr(p, name, value)
    if "transformation_year" in edit.model_fields_set:
        p.transformation_year = edit.transformation_year
    moved = False
    if edit.boundary is not None:
        shape = geometry_to_wgs84(from_geojson(edit.boundary, field="boundary"), edit.datum)
        placed = build_park(
            ParkSpec(name_zh=p.name_zh, boundary=to_multipolygon(shape, field="boundary")), session=session
        )
        p.boundary, p.region_adcode = placed.boundary, placed.region_adcode
        moved = True
    if _keep(session, principal, p, "park", before, _park_state(p), now) and moved:
        _replace_enterprises(session, principal, p, now)
    return p


def _replace_enterprises(session: Session, principal: Principal, park: Park, now: datetime) -> None:
    """Derive again the park of every enterprise not placed by hand that was in it or now lies in its extent."""
    west, south, east, north = park.boundary.bounds
    candidates = session.exec(
        select(Enterprise)
        .where(
            col(Enterprise.location_overridden).is_(False),
            (col(Enterprise.park_id) == park.id)
            | (
                (col(Enterprise.lon) >= west)
                & (col(Enterprise.lon) <= east)
                & (col(Enterprise.lat) >= south)
                & (col(Enterprise.lat) <= north)
            ),
        )
        .order_by(col(Enterprise.id))
        .with_for_update()
    ).all()
    for e in candidates:
        assert e.id is not None
        now_in = try_locate(session=session, lon=e.lon, lat=e.lat).park
        if now_in == e.park_id:
            continue
        roles = _roles(session, e.id)
        before = _state(e, roles)
        e.park_id = now_in
        e.version += 1
        session.add(e)
        session.flush()
        audit_enterprise_change(
            session=session,
            principal=principal,
            enterprise_id=e.id,
            before=before,
            after=_state(e, roles),
            now=now,
            action="park_boundary",
        )


def read_boundary(text: str) -> dict[str, Any]:
    """A boundary uploaded as GeoJSON text (a geometry, a Feature or a collection of one), refused naming the field."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput("registry.boundary_not_json", field="boundary", detail=printable(str(exc), 120)) from None
    if not isinstance(data, dict):
        raise InvalidInput("registry.boundary_not_json", field="boundary", detail="not an object")
    if data.get("type") == "FeatureCollection":
        features = data.get("features") or []
        if len(features) != 1 or not isinstance(features[0], dict):
            raise InvalidInput("registry.boundary_one_feature", field="boundary", count=len(features))
        data = features[0]
    return data
