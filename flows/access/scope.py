"""Who may see and change what: every scoped read and write goes through these helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlmodel import Session, col, select

from flows.kernel.errors import Forbidden, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from models import Enterprise, Manifest, Region
from models.enums import ManifestStatus, UserRole


def adcode_prefix(adcode: str) -> str:
    """GB/T 2260 codes nest by digits: 510000 -> '51', 510400 -> '5104', 510402 -> '510402'."""
    if adcode.endswith("0000"):
        return adcode[:2]
    if adcode.endswith("00"):
        return adcode[:4]
    return adcode


def region_clause(adcode: str) -> ColumnElement[bool]:
    """Enterprises that lie in a region (province, prefecture or county)."""
    prefix = adcode_prefix(adcode)
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
        if adcode.startswith(adcode_prefix(principal.scope_adcode)):
            return
    raise Forbidden("access.region_outside_scope", adcode=adcode)
