"""Period locks: a bureau closes a reporting year for its region; later writes need an approved correction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import text
from sqlmodel import Session, col, select

from flows.access.accounts import Principal
from flows.access.scope import ensure_region_in_scope, require_role
from flows.access.trail import record, snapshot
from flows.kernel.adcode import region_prefix
from flows.kernel.errors import Conflict, InvalidInput, PeriodLocked
from flows.kernel.messages import Term
from flows.notices import events
from models import Enterprise, PeriodLock
from models.enums import UserRole

_GUARD_BASE = 7263300  # advisory-lock keys of the period guards: this base plus the year


def guard_year(*, session: Session, year: int, exclusive: bool = False) -> None:
    """Hold the year's period guard to the end of the transaction: writers share it, locking takes it alone.

    A lock taken while a write to its year is in flight waits for that write to finish, and a write that starts
    after waits for the lock, so no write lands in a year that was locked before it committed. SQLite's write
    transactions hold the whole database and need no guard.
    """
    if session.get_bind().dialect.name == "postgresql":
        shared = "" if exclusive else "_shared"
        session.execute(text(f"SELECT pg_advisory_xact_lock{shared}(:key)"), {"key": _GUARD_BASE + year})


def lock_period(
    *,
    session: Session,
    principal: Principal,
    adcode: str,
    year: int,
    now: datetime,
    confirmed: bool,
    seen: Mapping[str, int] | None = None,
) -> PeriodLock:
    """Lock (region, year) once its checklist was seen and confirmed; bureau auditors of the region or above.

    `seen` is what the checklist showed when the auditor confirmed (batches in transit, missing declarations, ...):
    it is kept in the audit log beside the lock, so that a later reader knows what was locked in knowingly.
    """
    require_role(principal, UserRole.bureau)
    ensure_region_in_scope(session, principal, adcode)
    if not confirmed:
        raise InvalidInput("lockcheck.confirm_required", field="confirm", column=Term("field.confirm"), year=year)
    guard_year(session=session, year=year, exclusive=True)
    if session.get(PeriodLock, (adcode, year), populate_existing=True) is not None:
        raise Conflict("access.already_locked", field="year", year=year, adcode=adcode)
    lock = PeriodLock(region_adcode=adcode, year=year, locked_by=principal.user_id, locked_at=now)
    session.add(lock)
    session.flush()
    record(
        session=session,
        principal=principal,
        action="lock",
        table="period_lock",
        row_id=f"{adcode}/{year}",
        before=None,
        after={**(snapshot(lock) or {}), **({"checklist": dict(seen)} if seen is not None else {})},
        now=now,
    )
    events.period_lock_changed(
        session=session, adcode=adcode, year=year, locked=True, actor_id=principal.user_id, now=now
    )
    return lock


def unlock_period(*, session: Session, principal: Principal, adcode: str, year: int, now: datetime) -> None:
    """Lift a lock; same rights as locking."""
    require_role(principal, UserRole.bureau)
    ensure_region_in_scope(session, principal, adcode)
    guard_year(session=session, year=year, exclusive=True)
    lock = session.get(PeriodLock, (adcode, year), populate_existing=True)
    if lock is None:
        raise Conflict("access.not_locked", field="year", year=year, adcode=adcode)
    before = snapshot(lock)
    session.delete(lock)
    session.flush()
    record(
        session=session,
        principal=principal,
        action="unlock",
        table="period_lock",
        row_id=f"{adcode}/{year}",
        before=before,
        after=None,
        now=now,
    )
    events.period_lock_changed(
        session=session, adcode=adcode, year=year, locked=False, actor_id=principal.user_id, now=now
    )


def list_locks(*, session: Session, principal: Principal) -> list[PeriodLock]:
    """Locks a principal may see: a bureau those of its region and above and below it; others all (they are public)."""
    query = select(PeriodLock).order_by(col(PeriodLock.year).desc(), col(PeriodLock.region_adcode))
    locks = list(session.exec(query).all())
    if principal.role is UserRole.bureau and principal.scope_adcode:
        mine = region_prefix(principal.scope_adcode)
        locks = [
            lock
            for lock in locks
            if lock.region_adcode.startswith(mine) or mine.startswith(region_prefix(lock.region_adcode))
        ]
    return locks


def lock_for(*, session: Session, enterprise_id: int, year: int) -> PeriodLock | None:
    """The lock, if any, that covers an enterprise's data of a year (its province, prefecture or county)."""
    guard_year(session=session, year=year)
    enterprise = session.get(Enterprise, enterprise_id)
    if enterprise is None:
        return None
    regions = [r for r in (enterprise.province_adcode, enterprise.prefecture_adcode, enterprise.county_adcode) if r]
    if not regions:
        return None
    query = select(PeriodLock).where(col(PeriodLock.year) == year, col(PeriodLock.region_adcode).in_(regions))
    return session.exec(query).first()


def ensure_unlocked(*, session: Session, enterprise_id: int, year: int, new_record: bool = False) -> None:
    """Refuse a direct write to a locked period, saying how to proceed.

    A change to a record is filed as a correction; a record that is new has nothing to correct and is filed as a
    late filing instead, so the refusal names that path.
    """
    lock = lock_for(session=session, enterprise_id=enterprise_id, year=year)
    if lock is not None:
        code = "lockcheck.late_filing_path" if new_record else "access.period_locked"
        raise PeriodLocked(code, field="year", year=year, adcode=lock.region_adcode)
