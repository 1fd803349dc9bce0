"""The dashboard of a principal's scope: its rate against the target path, the trend, the ranking and the flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from flows.access.scope import Scope, readable_enterprise_ids
from flows.battery import audit as battery_audit
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
    chain = battery_audit.chain_flags(session=session, principal=principal, now=now, year=chosen, limit=1)
    return Dashboard(
        year=chosen,
        years=years,
        rate=report,
        trend=trend,
        ranking=ranking,
        flag_counts=dict(page.counts),
        flag_status_counts=flag_work.counts_by_status(session=session, flags=page.data),
        battery_flag_counts=dict(chain.counts),
    )
