"""Who may see and change what: every scoped read and write goes through these helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from flows.kernel.adcode import region_prefix, within
from flows.kernel.errors import Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from models import Enterprise, Manifest, Park, Region
from models.enums import ManifestStatus, RegionLevel, UserRole


def region_clause(adcode: str) -> ColumnElement[bool]:
    """Enterprises that lie in a region (province, prefecture or county)."""
    prefix = region_prefix(adcode)
    if len(prefix) == 6:
        return col(Enterprise.county_adcode) == adcode
    return col(Enterprise.prefecture_adcode).startswith(prefix)


def readable_enterprises(principal: Principal) -> ColumnElement[bool]:
    """A condition on Enterprise: the enterprises whose own data the principal may read."""
    match principal.role:
        case UserRole.admin:
            return true()
        case UserRole.bureau:
            return region_clause(principal.scope_adcode) if principal.scope_adcode else false()
        case UserRole.park_manager:
            return col(Enterprise.park_id) == principal.park_id if principal.park_id else false()
        case UserRole.enterprise:
            return col(Enterprise.id) == principal.enterprise_id if principal.enterprise_id else false()
    return false()


def readable_enterprise_ids(principal: Principal) -> Any:
    """A subquery of the ids of the enterprises the principal may read."""
    return select(Enterprise.id).where(readable_enterprises(principal))


def readable_batches(principal: Principal) -> ColumnElement[bool]:
    """A condition on Manifest: a flow is visible when one of its ends is within the principal's scope.

    A draft is the shipper's unsent work: only the shipper's side sees it until it is dispatched.
    """
    if principal.role is UserRole.admin:
        return true()
    ids = readable_enterprise_ids(principal)
    return or_(
        col(Manifest.shipper_id).in_(ids),
        and_(col(Manifest.receiver_id).in_(ids), col(Manifest.status) != ManifestStatus.draft.value),
    )


def can_read_enterprise(session: Session, principal: Principal, enterprise_id: int) -> bool:
    """Whether the principal may read this enterprise's own data."""
    query = select(Enterprise.id).where(and_(col(Enterprise.id) == enterprise_id, readable_enterprises(principal)))
    return session.exec(query).first() is not None


def ensure_read_enterprise(session: Session, principal: Principal, enterprise_id: int) -> None:
    """Refuse as not found: out-of-scope rows are not confirmed to exist."""
    if not can_read_enterprise(session, principal, enterprise_id):
        raise NotFound("access.enterprise_not_found", field="enterprise_id", enterprise_id=enterprise_id)


def ensure_write_for_enterprise(principal: Principal, enterprise_id: int, what: str) -> None:
    """Only the enterprise itself (or an administrator) writes its declarations, manifests and battery events.

    `what` names the records as the reader knows them: a Term where they have a name of their own in Chinese.
    """
    if principal.is_admin:
        return
    if principal.role is UserRole.enterprise and principal.enterprise_id == enterprise_id:
        return
    raise Forbidden(
        "access.cannot_write_for", role=Term(f"role.{principal.role.value}"), what=what, enterprise_id=enterprise_id
    )


def require_role(principal: Principal, *roles: UserRole) -> None:
    """Refuse unless the principal has one of the roles (administrators always pass)."""
    if principal.is_admin or principal.role in roles:
        return
    raise Forbidden("access.needs_role", roles=[Term(f"role.{r.value}") for r in roles])


def ensure_region_in_scope(session: Session, principal: Principal, adcode: str) -> None:
    """A bureau acts only on its own region and what lies in it."""
    if session.get(Region, adcode) is None:
        raise NotFound("access.region_not_found", field="adcode", adcode=adcode)
    if principal.is_admin:
        return
    if principal.role is UserRole.bureau and principal.scope_adcode:
        if within(adcode, principal.scope_adcode):
            return
    raise Forbidden("access.region_outside_scope", adcode=adcode)


# ---------------------------------------------------------------------------------------------------------------
# Scopes of a figure: resolved once per request and handed to the domain's functions


ScopeKind = Literal["province", "prefecture", "county", "park", "enterprise"]


class ScopeRef(BaseModel):
    """What a figure covers: a region (by adcode), a park or an enterprise."""

    kind: ScopeKind
    key: str
    name_zh: str | None = None
    name_en: str | None = None
    uscc: str | None = None


@dataclass(frozen=True)
class Scope:
    """A resolved, authorised scope: its reference and the condition on Enterprise that selects it."""

    ref: ScopeRef
    region_adcode: str | None  # where its targets are looked for
    condition: ColumnElement[bool]  # already narrowed to what the principal may read

    @property
    def narrow(self) -> bool:
        """A park or an enterprise: few enterprises, best reached through their own rows."""
        return self.ref.kind in ("park", "enterprise")


def _region_row(session: Session, adcode: str) -> Any:
    # Columns only: a region's boundary is megabytes and nothing here needs it.
    query = sa_select(col(Region.adcode), col(Region.name_zh), col(Region.name_en), col(Region.level)).where(
        col(Region.adcode) == adcode
    )
    return session.execute(query).first()


def _region_scope(session: Session, principal: Principal, adcode: str) -> Scope:
    adcode = adcode.strip()
    row = _region_row(session, adcode)
    if row is None:
        raise NotFound("access.scope.no_region", field="region", adcode=adcode)
    allowed = principal.is_admin or (
        principal.role is UserRole.bureau
        and principal.scope_adcode is not None
        and within(adcode, principal.scope_adcode)
    )
    if not allowed:
        raise Forbidden("access.scope.region_outside_scope", field="region", adcode=adcode)
    ref = ScopeRef(kind=RegionLevel(row.level).value, key=adcode, name_zh=row.name_zh, name_en=row.name_en)
    return Scope(ref=ref, region_adcode=adcode, condition=and_(region_clause(adcode), readable_enterprises(principal)))


def _park_scope(session: Session, principal: Principal, park_id: int) -> Scope:
    query = sa_select(col(Park.id), col(Park.name_zh), col(Park.name_en), col(Park.region_adcode)).where(
        col(Park.id) == park_id
    )
    row = session.execute(query).first()
    match principal.role:
        case UserRole.admin:
            visible = True
        case UserRole.bureau:
            visible = (
                bool(principal.scope_adcode)
                and row is not None
                and within(row.region_adcode, principal.scope_adcode or "")
            )
        case UserRole.park_manager:
            visible = principal.park_id == park_id
        case _:
            visible = False
    if row is None or not visible:
        raise NotFound("access.scope.no_park", field="park", park=park_id)
    ref = ScopeRef(kind="park", key=str(park_id), name_zh=row.name_zh, name_en=row.name_en)
    condition = and_(col(Enterprise.park_id) == park_id, readable_enterprises(principal))
    return Scope(ref=ref, region_adcode=row.region_adcode, condition=condition)


def _enterprise_scope(session: Session, principal: Principal, enterprise: str | int) -> Scope:
    ref_text = str(enterprise).strip().upper()
    # Credit codes are 18 characters; anything shorter made of digits is an id.
    by_id = ref_text.isdigit() and len(ref_text) != 18
    query = sa_select(
        col(Enterprise.id),
        col(Enterprise.uscc),
        col(Enterprise.name_zh),
        col(Enterprise.name_en),
        col(Enterprise.province_adcode),
        col(Enterprise.prefecture_adcode),
        col(Enterprise.county_adcode),
    ).where(col(Enterprise.id) == int(ref_text) if by_id else col(Enterprise.uscc) == ref_text)
    row = session.execute(query).first()
    if row is None or not can_read_enterprise(session, principal, row.id):
        raise NotFound("access.scope.enterprise_not_found", field="enterprise", ref=ref_text)
    ref = ScopeRef(kind="enterprise", key=str(row.id), name_zh=row.name_zh, name_en=row.name_en, uscc=row.uscc)
    region = row.county_adcode or row.prefecture_adcode or row.province_adcode
    return Scope(ref=ref, region_adcode=region, condition=col(Enterprise.id) == row.id)


def resolve_scope(
    *,
    session: Session,
    principal: Principal,
    region: str | None = None,
    park: int | None = None,
    enterprise: str | int | None = None,
) -> Scope:
    """The scope asked for (at most one of region, park, enterprise), or the principal's own when none is."""
    given = [name for name, value in (("region", region), ("park", park), ("enterprise", enterprise)) if value]
    if len(given) > 1:
        raise InvalidInput("access.scope.one_scope", field=given[1], column=Term(f"field.{given[1]}"))
    if region:
        return _region_scope(session, principal, region)
    if park:
        return _park_scope(session, principal, park)
    if enterprise:
        return _enterprise_scope(session, principal, enterprise)
    match principal.role:
        case UserRole.bureau if principal.scope_adcode:
            return _region_scope(session, principal, principal.scope_adcode)
        case UserRole.park_manager if principal.park_id:
            return _park_scope(session, principal, principal.park_id)
        case UserRole.enterprise if principal.enterprise_id:
            return _enterprise_scope(session, principal, principal.enterprise_id)
        case UserRole.admin:
            province = session.exec(
                select(Region.adcode).where(Region.level == RegionLevel.province).order_by(col(Region.adcode))
            ).first()
            if province is None:
                raise InvalidInput("access.scope.no_province", field="region", column=Term("field.region"))
            return _region_scope(session, principal, province)
    raise Forbidden("access.scope.no_rate_scope")
