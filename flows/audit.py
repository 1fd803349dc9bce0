"""The audit trail: who changed which row, when, from where, before and after; chained by hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlmodel import Session, SQLModel, col, func, select

from flows.errors import Forbidden
from flows.principal import Principal
from models import AuditLog, Enterprise
from models.enums import UserRole

GENESIS = "0" * 64


def snapshot(row: SQLModel | None) -> dict[str, Any] | None:
    """A JSON-safe copy of a row's columns (geometries as WKT), for the before and after of an entry."""
    if row is None:
        return None
    # Read the mapped columns directly: values loaded from the database (enumerations as plain strings) need no
    # round trip through the model's validation.
    return {attr.key: _json_safe(getattr(row, attr.key)) for attr in sa_inspect(type(row)).column_attrs}


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "wkt"):
        return value.wkt
    return str(value)


def _entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _hashed_fields(entry: AuditLog) -> dict[str, Any]:
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
    return {
        "at": at.astimezone(UTC).isoformat(),
        "user_id": entry.user_id,
        "channel": str(entry.channel),
        "action": entry.action,
        "table_name": entry.table_name,
        "row_id": entry.row_id,
        "enterprise_id": entry.enterprise_id,
        "other_enterprise_id": entry.other_enterprise_id,
        "before": entry.before,
        "after": entry.after,
    }


def record(
    *,
    session: Session,
    principal: Principal,
    action: str,
    table: str,
    row_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
    enterprises: tuple[int | None, ...] = (),
) -> AuditLog:
    """Append one entry in the caller's transaction, chained to the last one."""
    if session.get_bind().dialect.name == "postgresql":
        # Serialise writers so that two transactions never chain to the same predecessor.
        session.execute(text("SELECT pg_advisory_xact_lock(7263001)"))
    last = session.exec(select(AuditLog.hash).order_by(col(AuditLog.id).desc()).limit(1)).first()
    entry = AuditLog(
        at=now.astimezone(UTC),
        user_id=principal.user_id,
        channel=principal.channel,
        action=action,
        table_name=table,
        row_id=str(row_id),
        enterprise_id=enterprises[0] if enterprises else None,
        other_enterprise_id=enterprises[1] if len(enterprises) > 1 else None,
        before=before,
        after=after,
        prev_hash=last or GENESIS,
        hash="",
    )
    entry.hash = _entry_hash(entry.prev_hash, _hashed_fields(entry))
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of re-computing the chain: ok, or the first entry that does not match."""

    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str = ""


def verify_chain(*, session: Session) -> ChainCheck:
    """Re-compute every hash; an entry edited, inserted or removed behind the application's back shows here."""
    prev = GENESIS
    checked = 0
    for entry in session.exec(select(AuditLog).order_by(col(AuditLog.id))).yield_per(1000):
        checked += 1
        if entry.prev_hash != prev:
            return ChainCheck(False, checked, entry.id, "its predecessor was changed or removed")
        if _entry_hash(prev, _hashed_fields(entry)) != entry.hash:
            return ChainCheck(False, checked, entry.id, "its content does not match its hash")
        prev = entry.hash
    return ChainCheck(True, checked)


@dataclass(frozen=True)
class AuditFilter:
    enterprise_id: int | None = None
    table: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    *, session: Session, principal: Principal, filters: AuditFilter, offset: int = 0, limit: int = 100
) -> tuple[list[AuditLog], int]:
    """Entries a bureau or administrator may read, newest first; a bureau sees those of its region's enterprises."""
    if principal.role not in (UserRole.admin, UserRole.bureau):
        raise Forbidden("the audit log is for bureau auditors and administrators")
    query = select(AuditLog)
    if filters.table:
        query = query.where(AuditLog.table_name == filters.table)
    if filters.since:
        query = query.where(col(AuditLog.at) >= filters.since)
    if filters.until:
        query = query.where(col(AuditLog.at) < filters.until)
    enterprise_ids = _enterprise_ids_in_scope(principal, filters.enterprise_id)
    if enterprise_ids is not None:
        query = query.where(
            col(AuditLog.enterprise_id).in_(enterprise_ids) | col(AuditLog.other_enterprise_id).in_(enterprise_ids)
        )
    count = int(session.exec(select(func.count()).select_from(query.subquery())).one())
    rows = session.exec(query.order_by(col(AuditLog.id).desc()).offset(offset).limit(limit)).all()
    return list(rows), count


def _enterprise_ids_in_scope(principal: Principal, enterprise_id: int | None) -> Any:
    from flows.scope import readable_enterprise_ids

    if principal.is_admin and enterprise_id is None:
        return None
    ids = readable_enterprise_ids(principal)
    if enterprise_id is not None:
        ids = ids.where(col(Enterprise.id) == enterprise_id)
    return ids
