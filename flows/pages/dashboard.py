"""The dashboard of a principal's scope: its rate against the target path, the trend, the ranking and the flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from flows.access import trail
from flows.access.scope import Scope, readable_enterprise_ids
from flows.battery import audit as battery_audit
from flows.battery.rules import local_day
from flows.kernel.memo import Recent
from flows.kernel.principal import Principal
from flows.waste import flag_work, flags, rates
from models import Declaration
from models.enums import UserRole


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard page shows, computed from the data of one year."""

    year: int
    years: list[int]
    rate: rates.RateReport
    trend: rates.TrendReport
    ranking: list[rates.RateRow]
    flag_counts: dict[str, int]
    flag_status_counts: dict[str, int]  # the same flags by where the bureau stands on them
    battery_flag_counts: dict[str, int]


def declared_years(*, session: Session, principal: Principal) -> list[int]:
    """The years with declarations in the principal's scope, newest first."""
    query = (
        select(col(Declaration.year))
        .where(col(Declaration.enterprise_id).in_(readable_enterprise_ids(principal)))
        .distinct()
    )
    return sorted((int(y) for y in session.exec(query).all()), reverse=True)


def dashboard(*, session: Session, principal: Principal, scope: Scope, year: int | None, now: datetime) -> Dashboard:
    """The dashboard of the principal's own scope (resolved once by the caller) for a year (latest declared)."""
    years = declared_years(session=session, principal=principal)
    chosen = year if year is not None else (years[0] if years else now.year)
    # A bureau or an administrator ranks the divisions below its scope; the others see their categories.
    by = "region" if principal.role in (UserRole.admin, UserRole.bureau) else "category"
    report = rates.utilisation(session=session, principal=principal, year=chosen, by=by, scope=scope)
    trend = rates.rate_trend(session=session, principal=principal, to_year=chosen, scope=scope)
    ranking = sorted(report.rows or [], key=lambda row: (row.rate is None, -(row.rate or 0.0)))
    # Every flag once: the counts by kind and by status come from the same list, computed a single time.
    page = flags.list_flags(session=session, principal=principal, year=chosen, limit=None, scope=scope)
    return Dashboard(
        year=chosen,
        years=years,
        rate=report,
        trend=trend,
        ranking=ranking,
        flag_counts=dict(page.counts),
        flag_status_counts=flag_work.counts_by_status(session=session, flags=page.data),
        battery_flag_counts=battery_flag_counts(session=session, principal=principal, year=chosen, now=now),
    )


# The chain audit reads every battery event of a year (seconds at a million batteries) while the dashboard is read
# far more often than batteries are written: its counts are kept per process, for the last few hundred keys.
_Key = tuple[str, str, str | None, int | None, int | None, int, date, int | None, str]
_BATTERY_COUNTS: Recent[_Key, dict[str, int]] = Recent(256)


def _battery_counts_key(*, session: Session, principal: Principal, year: int, now: datetime) -> _Key:
    """All that the chain audit's counts depend on: database, principal's scope, year, day and data version."""
    bind = session.get_bind()
    entry_id, entry_hash = trail.data_version(session=session)
    return (
        # The database: a process may read a primary and a replica, each with its own version.
        bind.engine.url.render_as_string(hide_password=True),
        # The scope as the audit reads it (flows.access.scope.readable_enterprises): the role and its region, park
        # or enterprise. The user is not part of it: two users of one scope see the same counts.
        principal.role.value,
        principal.scope_adcode,
        principal.park_id,
        principal.enterprise_id,
        year,
        # `now` reaches the audit only as a day of China Standard Time (data_horizon: a lost battery or vanished
        # children are flagged once their window of working days has run out by that day), so the counts can change
        # at Beijing midnight with nothing written; within a day they cannot.
        local_day(now),
        # The data: every write of what the audit reads (batteries, their events and recovery reports, whitelist,
        # enterprises and their roles) adds an audit log entry in the same transaction.
        entry_id,
        entry_hash,
    )


def battery_flag_counts(*, session: Session, principal: Principal, year: int, now: datetime) -> dict[str, int]:
    """The battery chain flags of a year in the principal's scope by kind; the audit runs once per data version."""
    # The key first: a write committed while the audit runs then leaves its result under the older version.
    key = _battery_counts_key(session=session, principal=principal, year=year, now=now)
    kept = _BATTERY_COUNTS.get(key)
    if kept is None:
        report = battery_audit.chain_flags(session=session, principal=principal, now=now, year=year, limit=0)
        kept = dict(report.counts)
        _BATTERY_COUNTS.put(key, kept)
    return dict(kept)
