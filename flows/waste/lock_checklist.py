"""What is still open in a region's year before it locks: batches in transit, missing declarations, flags, corrections.

The auditor sees the list, then confirms; the lock keeps the counts it was confirmed with in the audit log.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, computed_field
from sqlalchemy import and_, exists, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from flows.access import locks
from flows.access.accounts import Principal
from flows.access.scope import ensure_region_in_scope, region_clause, require_role, resolve_scope
from flows.waste.flag_work import open_flag_count
from models import CorrectionRequest, Declaration, Enterprise, Manifest, PeriodLock, Region
from models.enums import ManifestStatus, UserRole
from models.quantity import Tonnes

SHOWN = 50  # rows listed per section; the counts are always whole


class InTransit(BaseModel):
    """A batch dispatched and not yet received (or rejected)."""

    batch_id: int
    number: str
    shipper_zh: str
    shipper_en: str | None
    receiver_zh: str
    receiver_en: str | None
    dispatched_at: datetime | None
    weight_t: Tonnes


class Undeclared(BaseModel):
    """An enterprise of the region with manifests in the year and no declaration for it."""

    enterprise_id: int
    uscc: str
    name_zh: str
    name_en: str | None
    manifests: int


class PendingRequest(BaseModel):
    """A correction or late filing that waits for a bureau's decision."""

    correction_id: int
    table: str
    enterprise_zh: str
    enterprise_en: str | None


class LockChecklist(BaseModel):
    """The checklist of one region and year, each section counted in full and listed up to SHOWN rows."""

    adcode: str
    region_zh: str
    region_en: str | None
    year: int
    locked: bool
    in_transit_count: int
    undeclared_count: int
    open_flags: int
    pending_count: int
    in_transit: list[InTransit] = Field(description=f"the first {SHOWN}, the oldest dispatch first")
    undeclared: list[Undeclared] = Field(description=f"the first {SHOWN}, by name")
    pending: list[PendingRequest] = Field(description=f"the first {SHOWN}, the oldest first")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def clear(self) -> bool:
        """Nothing left open: locking changes nobody's pending work."""
        return not (self.in_transit_count or self.undeclared_count or self.open_flags or self.pending_count)

    def counts(self) -> dict[str, int]:
        """The counts as the audit log keeps them beside the lock."""
        return {
            "in_transit": self.in_transit_count,
            "undeclared": self.undeclared_count,
            "open_flags": self.open_flags,
            "pending_corrections": self.pending_count,
        }


def _names(session: Session, ids: set[int]) -> dict[int, tuple[str, str | None]]:
    if not ids:
        return {}
    rows = session.execute(
        sa_select(col(Enterprise.id), col(Enterprise.name_zh), col(Enterprise.name_en)).where(
            col(Enterprise.id).in_(ids)
        )
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def _open_flags(session: Session, principal: Principal, adcode: str, year: int) -> int:
    # A flag resolved or dismissed by a bureau no longer holds the year open; open and under review do.
    scope = resolve_scope(session=session, principal=principal, region=adcode)
    return open_flag_count(session=session, principal=principal, scope=scope, year=year)


def lock_checklist(*, session: Session, principal: Principal, adcode: str, year: int) -> LockChecklist:
    """The open work of a region's year, for the bureaus that may lock it."""
    require_role(principal, UserRole.bureau)
    ensure_region_in_scope(session, principal, adcode)
    region = session.get(Region, adcode)
    in_region = select(Enterprise.id).where(region_clause(adcode))

    transit = and_(
        col(Manifest.year) == year,
        col(Manifest.status) == ManifestStatus.dispatched.value,
        or_(col(Manifest.shipper_id).in_(in_region), col(Manifest.receiver_id).in_(in_region)),
    )
    transit_count = session.exec(select(func.count()).select_from(Manifest).where(transit)).one()
    batches = list(
        session.exec(
            select(Manifest).where(transit).order_by(col(Manifest.dispatched_at), col(Manifest.id)).limit(SHOWN)
        ).all()
    )

    # Who moved waste in the year (a draft or a cancelled batch moved nothing) and declared nothing for it.
    moved = and_(
        col(Manifest.year) == year,
        col(Manifest.status).not_in([ManifestStatus.draft.value, ManifestStatus.cancelled.value]),
        or_(col(Manifest.shipper_id) == Enterprise.id, col(Manifest.receiver_id) == Enterprise.id),
    )
    declared = exists().where(col(Declaration.enterprise_id) == Enterprise.id, col(Declaration.year) == year)
    undeclared_query = (
        sa_select(
            col(Enterprise.id),
            col(Enterprise.uscc),
            col(Enterprise.name_zh),
            col(Enterprise.name_en),
            sa_select(func.count()).select_from(Manifest).where(moved).scalar_subquery(),
        )
        .where(region_clause(adcode), exists().where(moved), ~declared)
        .order_by(col(Enterprise.name_zh), col(Enterprise.id))
    )
    undeclared_count = session.execute(sa_select(func.count()).select_from(undeclared_query.subquery())).scalar_one()
    undeclared = [
        Undeclared(enterprise_id=row[0], uscc=row[1], name_zh=row[2], name_en=row[3], manifests=row[4])
        for row in session.execute(undeclared_query.limit(SHOWN))
    ]

    waiting = and_(
        col(CorrectionRequest.status) == "pending",
        col(CorrectionRequest.year) == year,
        col(CorrectionRequest.enterprise_id).in_(in_region),
    )
    pending_count = session.exec(select(func.count()).select_from(CorrectionRequest).where(waiting)).one()
    requests = list(
        session.exec(select(CorrectionRequest).where(waiting).order_by(col(CorrectionRequest.id)).limit(SHOWN)).all()
    )

    names = _names(
        session,
        {b.shipper_id for b in batches} | {b.receiver_id for b in batches} | {r.enterprise_id for r in requests},
    )
    return LockChecklist(
        adcode=adcode,
        region_zh=region.name_zh if region else adcode,
        region_en=region.name_en if region else None,
        year=year,
        locked=session.get(PeriodLock, (adcode, year)) is not None,
        in_transit_count=transit_count,
        undeclared_count=undeclared_count,
        open_flags=_open_flags(session, principal, adcode, year),
        pending_count=pending_count,
        in_transit=[
            InTransit(
                batch_id=b.id or 0,
                number=b.number,
                shipper_zh=names[b.shipper_id][0],
                shipper_en=names[b.shipper_id][1],
                receiver_zh=names[b.receiver_id][0],
                receiver_en=names[b.receiver_id][1],
                dispatched_at=b.dispatched_at,
                weight_t=b.weight_dispatched_t,
            )
            for b in batches
        ],
        undeclared=undeclared,
        pending=[
            PendingRequest(
                correction_id=r.id or 0,
                table=r.table_name,
                enterprise_zh=names[r.enterprise_id][0],
                enterprise_en=names[r.enterprise_id][1],
            )
            for r in requests
        ],
    )


def lock_year(
    *, session: Session, principal: Principal, adcode: str, year: int, confirm: bool, now: datetime
) -> PeriodLock:
    """Lock a region's year once the auditor confirmed its checklist; the counts seen go into the audit log."""
    # Unconfirmed, the lock refuses before anything is counted.
    seen = lock_checklist(session=session, principal=principal, adcode=adcode, year=year).counts() if confirm else None
    return locks.lock_period(
        session=session, principal=principal, adcode=adcode, year=year, now=now, confirmed=confirm, seen=seen
    )
