"""Row counts of the main tables."""

from __future__ import annotations

from sqlmodel import Session, SQLModel, func, select

from models import (
    AuditLog,
    Battery,
    BatteryEvent,
    Declaration,
    Enterprise,
    Park,
    RecoveryReport,
    Region,
    Target,
    TransferBatch,
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
    "manifests": TransferBatch,
    "batteries": Battery,
    "battery_events": BatteryEvent,
    "recovery_reports": RecoveryReport,
    "users": User,
    "audit_log": AuditLog,
}


def table_counts(*, session: Session) -> dict[str, int]:
    """How many rows each main table holds, keyed by the names other tools rely on."""
    return {key: int(session.exec(select(func.count()).select_from(model)).one()) for key, model in COUNTED.items()}
