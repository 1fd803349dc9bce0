"""Row counts of the main tables."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, SQLModel, col, func, select

from flows.access.accounts import Principal
from flows.access.scope import readable_batches, readable_enterprise_ids
from models import (
    AuditLog,
    Battery,
    BatteryEvent,
    Declaration,
    Enterprise,
    Manifest,
    Park,
    RecoveryReport,
    Region,
    Target,
    User,
    WasteCategory,
)

COUNTED: dict[str, type[SQLModel]] = {
    "regions": Region,
    "parks": Park,
    "enterprises": Enterprise,
    "waste_categories": WasteCategory,
    "targets": Target,
    "declarations": Declaration,
    "manifests": Manifest,
    "batteries": Battery,
    "battery_events": BatteryEvent,
    "recovery_reports": RecoveryReport,
    "users": User,
    "audit_log": AuditLog,
}


def table_counts(*, session: Session) -> dict[str, int]:
    """How many rows each main table holds, keyed by the names other tools rely on."""
    return {key: int(session.exec(select(func.count()).select_from(model)).one()) for key, model in COUNTED.items()}


def scoped_counts(*, session: Session, principal: Principal) -> dict[str, int]:
    """The counts a principal may see: reference tables whole, the rest limited to its scope."""
    if principal.is_admin:
        return table_counts(session=session)
    ids = readable_enterprise_ids(principal)

    def count(model: type[SQLModel], *where: Any) -> int:
        return int(session.exec(select(func.count()).select_from(model).where(*where)).one())

    return {
        "regions": count(Region),
        "parks": count(Park),
        "enterprises": count(Enterprise, col(Enterprise.id).in_(ids)),
        "declarations": count(Declaration, col(Declaration.enterprise_id).in_(ids)),
        "manifests": count(Manifest, readable_batches(principal)),
        "batteries": count(Battery, col(Battery.holder_id).in_(ids)),
        "battery_events": count(BatteryEvent, col(BatteryEvent.reporter_id).in_(ids)),
    }
