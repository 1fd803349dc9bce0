"""Read access to regions, parks and enterprises."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from flows.access.accounts import Principal
from flows.access.scope import readable_enterprises, region_clause
from flows.kernel.adcode import region_prefix
from flows.kernel.errors import NotFound
from models import Enterprise, EnterpriseRoleLink, Park, Region
from models.enterprise import EnterprisePublic
from models.enums import RegionLevel
from models.reference import ParkPublic, RegionPublic

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the count of the whole list."""

    data: list[T]
    count: int


def list_regions(
    *, session: Session, level: RegionLevel | None = None, parent: str | None = None
) -> list[RegionPublic]:
    """Regions, optionally of one level or under one parent, ordered by adcode."""
    # Five plain columns: the boundaries are megabytes and a list does not need them.
    query = sa_select(
        col(Region.adcode), col(Region.name_zh), col(Region.name_en), col(Region.level), col(Region.parent_adcode)
    )
    if level is not None:
        query = query.where(col(Region.level) == level)
    if parent is not None:
        query = query.where(col(Region.parent_adcode) == parent)
    rows = session.execute(query.order_by(Region.adcode)).all()
    return [
        RegionPublic(adcode=r[0], name_zh=r[1], name_en=r[2], level=RegionLevel(r[3]), parent_adcode=r[4]) for r in rows
    ]


def get_region(*, session: Session, adcode: str) -> Region:
    """One region with its boundary."""
    region = session.get(Region, adcode)
    if region is None:
        raise NotFound("access.region_not_found", field="adcode", adcode=adcode)
    return region


def list_parks(*, session: Session, region: str | None = None) -> list[ParkPublic]:
    """Parks, optionally those in a region (by prefecture or county adcode, or the province)."""
    query = select(Park).order_by(col(Park.id))
    if region is not None:
        query = query.where(col(Park.region_adcode).startswith(region_prefix(region)))
    return [ParkPublic.model_validate(p) for p in session.exec(query).all()]


def get_park(*, session: Session, park_id: int) -> Park:
    """One park with its boundary."""
    park = session.get(Park, park_id)
    if park is None:
        raise NotFound("access.park_not_found", field="park_id", park_id=park_id)
    return park


def _roles_of(session: Session, ids: list[int]) -> dict[int, list[str]]:
    roles: dict[int, list[str]] = defaultdict(list)
    if ids:
        rows = session.exec(
            select(EnterpriseRoleLink.enterprise_id, EnterpriseRoleLink.role)
            .where(col(EnterpriseRoleLink.enterprise_id).in_(ids))
            .order_by(col(EnterpriseRoleLink.enterprise_id), col(EnterpriseRoleLink.role))
        ).all()
        for enterprise_id, role in rows:
            roles[enterprise_id].append(str(role))
    return roles


def _public(enterprise: Enterprise, roles: list[str]) -> EnterprisePublic:
    return EnterprisePublic.model_validate(enterprise, update={"roles": roles})


def list_enterprises(
    *,
    session: Session,
    principal: Principal,
    region: str | None = None,
    park_id: int | None = None,
    role: str | None = None,
    q: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page[EnterprisePublic]:
    """Enterprises filtered by region, park, role or a name/credit-code fragment, a page at a time."""
    query = select(Enterprise).where(readable_enterprises(principal))
    if region is not None:
        query = query.where(region_clause(region))
    if park_id is not None:
        query = query.where(Enterprise.park_id == park_id)
    if role is not None:
        query = query.where(
            col(Enterprise.id).in_(select(EnterpriseRoleLink.enterprise_id).where(EnterpriseRoleLink.role == role))
        )
    if q:
        pattern = f"%{q.strip()}%"
        query = query.where(
            col(Enterprise.name_zh).like(pattern)
            | col(Enterprise.name_en).ilike(pattern)
            | col(Enterprise.uscc).like(pattern.upper())
        )
    count = int(session.exec(select(func.count()).select_from(query.subquery())).one())
    rows = session.exec(query.order_by(col(Enterprise.id)).offset(offset).limit(limit)).all()
    roles = _roles_of(session, [e.id for e in rows if e.id is not None])
    return Page([_public(e, roles.get(e.id or 0, [])) for e in rows], count)


def get_enterprise(*, session: Session, principal: Principal, enterprise_id: int) -> EnterprisePublic:
    """One enterprise in the principal's scope, with its roles."""
    query = select(Enterprise).where(col(Enterprise.id) == enterprise_id, readable_enterprises(principal))
    enterprise = session.exec(query).first()
    if enterprise is None or enterprise.id is None:
        raise NotFound("access.enterprise_not_found", field="enterprise_id", enterprise_id=enterprise_id)
    return _public(enterprise, _roles_of(session, [enterprise.id]).get(enterprise.id, []))


def search_directory(*, session: Session, q: str, limit: int = 20) -> list[dict[str, Any]]:
    """Names and credit codes matching a fragment: what any account needs to address a receiver."""
    pattern = f"%{q.strip()}%"
    query = (
        sa_select(col(Enterprise.id), col(Enterprise.uscc), col(Enterprise.name_zh), col(Enterprise.name_en))
        .where(
            col(Enterprise.name_zh).like(pattern)
            | col(Enterprise.name_en).ilike(pattern)
            | col(Enterprise.uscc).like(pattern.upper())
        )
        .order_by(col(Enterprise.name_zh))
        .limit(limit)
    )
    return [dict(row._mapping) for row in session.execute(query)]
