"""One demo account per role, scoped to real demo data; passwords are generated at demo time and shown once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from flows.access import accounts
from flows.kernel.errors import NotFound
from models import Enterprise, EnterpriseRoleLink, Manifest, Park, WhitelistEntry
from models.enums import EnterpriseRole, UserRole, WhitelistKind

PANZHIHUA = "510400"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: UserRole
    scope: str
    password: str


def _busiest(session: Session, column: object, where: object) -> Enterprise:
    """The enterprise with the most manifests on one side, among those matching a condition."""
    query = (
        select(Enterprise, func.count(col(Manifest.id)).label("n"))
        .join(Manifest, column == Enterprise.id)  # type: ignore[arg-type]
        .where(where)  # type: ignore[arg-type]
        .group_by(Enterprise.id)  # type: ignore[arg-type]
        .order_by(func.count(col(Manifest.id)).desc(), col(Enterprise.id))
    )
    row = session.exec(query).first()
    if row is None:
        raise NotFound("demo.no_enterprise_for_account")
    return row[0]


def create_demo_accounts(*, session: Session, now: datetime) -> list[DemoAccount]:
    """Create admin, two bureau auditors, a park manager and three enterprise users over the demo data."""
    park = session.exec(select(Park).where(col(Park.region_adcode).startswith("5104")).order_by(col(Park.id))).first()
    if park is None or park.id is None:
        raise NotFound("demo.no_park_in_panzhihua")
    generator = _busiest(session, Manifest.shipper_id, col(Enterprise.park_id) == park.id)
    receiver = _busiest(
        session,
        Manifest.receiver_id,
        col(Enterprise.id).in_(select(Manifest.receiver_id).where(Manifest.shipper_id == generator.id))
        & col(Enterprise.id).in_(
            select(EnterpriseRoleLink.enterprise_id).where(EnterpriseRoleLink.role == EnterpriseRole.utiliser)
        ),
    )
    recycler = session.exec(
        select(Enterprise)
        .join(WhitelistEntry, col(WhitelistEntry.enterprise_id) == Enterprise.id)
        .join(EnterpriseRoleLink, col(EnterpriseRoleLink.enterprise_id) == Enterprise.id)
        .where(WhitelistEntry.kind == WhitelistKind.recycling, EnterpriseRoleLink.role == EnterpriseRole.recycler)
        .order_by(col(Enterprise.id))
    ).first()
    plan: list[tuple[str, UserRole, dict[str, object], str]] = [
        ("admin", UserRole.admin, {}, "-"),
        ("auditor.sichuan", UserRole.bureau, {"scope_adcode": "510000"}, "510000"),
        ("auditor.panzhihua", UserRole.bureau, {"scope_adcode": PANZHIHUA}, PANZHIHUA),
        ("park.panzhihua", UserRole.park_manager, {"park_id": park.id}, f"park {park.id} {park.name_zh}"),
        ("ent.generator", UserRole.enterprise, {"enterprise_id": generator.id}, generator.name_zh),
        ("ent.utiliser", UserRole.enterprise, {"enterprise_id": receiver.id}, receiver.name_zh),
    ]
    if recycler is not None:
        plan.append(("ent.recycler", UserRole.enterprise, {"enterprise_id": recycler.id}, recycler.name_zh))
    created = []
    for username, role, scope, label in plan:
        password = secrets.token_urlsafe(9)
        accounts.create_user(
            session=session,
            username=username,
            password=password,
            role=role,
            now=now,
            **scope,  # type: ignore[arg-type]
        )
        created.append(DemoAccount(username, role, label, password))
    return created
