"""Which manifest steps and corrections are news, and to whom: written as notifications in the step's transaction.

Flags are computed on the fly (flows/waste/flags.py keeps no flag table), so a flag is announced when the record
that raises it is written, checked on that one record with the flag's own condition: a weight gap beyond the
manifests' tolerance when weights are recorded or corrected, a receiver without a valid licence when a batch is
dispatched. Every other flag, and one that arises later from other records (a licence lapsing, a year's capacity
filling), is announced by the scan of flows/waste/flag_alerts.py; both mark the flag told in flag_notice under one key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from flows.access.accounts import Principal
from flows.access.trail import snapshot
from flows.kernel.clock import local_date
from flows.notices.inbox import bilingual, notify, of_enterprises, of_users, term
from flows.waste import numbers
from flows.waste.rates import licensed_receiver, route_activity
from models import CorrectionRequest, Enterprise, FlagNotice, Manifest, User
from models.enums import UserRole

WEIGHT_FIELDS = ("weight_dispatched_t", "weight_received_t", "rejected_t")


def flag_key(kind: str, year: int, subject: str) -> str:
    """The key a flag is told under: its kind, year and subject ("manifest/12"), hashed."""
    return hashlib.sha256(f"{kind}|{year}|{subject}".encode()).hexdigest()


def mark_told(*, session: Session, kind: str, year: int, subject: str, now: datetime) -> bool:
    """Record a flag as announced; False when it was already (by another writer too: the key is the primary key)."""
    table = FlagNotice.__table__  # type: ignore[attr-defined]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    row = {"key": flag_key(kind, year, subject), "kind": kind, "year": year, "subject": subject[:128]}
    written = insert(table).values(**row, announced_at=now).on_conflict_do_nothing().returning(table.c.key)
    return session.execute(written).first() is not None


def _name(session: Session, enterprise_id: int | None) -> dict[str, str]:
    enterprise = session.get(Enterprise, enterprise_id) if enterprise_id else None
    return bilingual(enterprise.name_zh, enterprise.name_en) if enterprise else bilingual("–", "–")


def _t(value: Decimal | None) -> str:
    return "0" if value is None else format(Decimal(value).normalize(), "f")


def _others(principal: Principal, batch: Manifest) -> ColumnElement[bool]:
    # The parties other than the actor's own enterprise (an administrator or a bureau acting: both parties).
    parties = [e for e in (batch.shipper_id, batch.receiver_id) if e != principal.enterprise_id]
    return of_enterprises(*parties)


def _licensed(session: Session, batch: Manifest) -> bool:
    on = local_date(func.coalesce(col(Manifest.received_at), col(Manifest.dispatched_at)))
    query = sa_select(licensed_receiver(route_activity(), on)).where(col(Manifest.id) == batch.id)
    return bool(session.execute(query).scalar())


def manifest_step(
    *,
    session: Session,
    principal: Principal,
    batch: Manifest,
    step: str,
    before: dict[str, Any],
    gap_flagged: bool,
    tolerance_pct: Decimal,
    now: datetime,
) -> None:
    """Notify the parties a step concerns: a batch to receive, a refusal, a weight gap, a correction, a flag."""
    base: dict[str, Any] = {"number": batch.number}

    def tell(to: ColumnElement[bool], kind: str, params: dict[str, Any], *, actor_too: bool = False) -> None:
        notify(
            session=session,
            to=to,
            kind=kind,
            subject="manifest",
            subject_id=batch.id or 0,
            params=params,
            now=now,
            actor_id=None if actor_too else principal.user_id,
        )

    if step == "dispatch":
        params = base | {
            "shipper": _name(session, batch.shipper_id),
            "category": batch.category_code,
            "weight_t": _t(batch.weight_dispatched_t),
        }
        tell(of_enterprises(batch.receiver_id), "batch_awaiting", params)
        if not _licensed(session, batch):
            params = base | {
                "receiver": _name(session, batch.receiver_id),
                "category": batch.category_code,
            }
            to = of_enterprises(batch.shipper_id, batch.receiver_id)
            # The one who dispatched hears of the flag too: nothing on the form told them of it.
            if mark_told(
                session=session, kind="unlicensed_receiver", year=batch.year, subject=f"manifest/{batch.id}", now=now
            ):
                tell(to, "flag_raised", params, actor_too=True)
        return
    receiver = {"receiver": _name(session, batch.receiver_id), "reason": batch.rejection_reason or ""}
    if step == "reject":
        tell(_others(principal, batch), "batch_refused", base | receiver)
    if step == "receive" and batch.rejected_t:
        params = base | receiver | {"rejected_t": _t(batch.rejected_t)}
        tell(_others(principal, batch), "batch_part_refused", params)
    if step == "correct":
        tell(_others(principal, batch), "batch_corrected", base)
    after = snapshot(batch) or {}
    weighed = step == "receive" or (step == "correct" and any(before.get(f) != after.get(f) for f in WEIGHT_FIELDS))
    if gap_flagged and weighed:
        gap = (batch.weight_received_t or 0) + (batch.rejected_t or 0) - batch.weight_dispatched_t
        params = base | {
            "dispatched_t": _t(batch.weight_dispatched_t),
            "received_t": _t(batch.weight_received_t),
            "gap_pct": f"{gap / batch.weight_dispatched_t * 100:+.1f}",
            "tolerance_pct": _t(tolerance_pct),
        }
        tell(_others(principal, batch), "weight_gap", params)
        # Told here (again after a correction): the scan then does not repeat it.
        mark_told(session=session, kind="weight_discrepancy", year=batch.year, subject=f"manifest/{batch.id}", now=now)


def correction_filed(
    *, session: Session, principal: Principal, correction: CorrectionRequest, batch: Manifest | None, now: datetime
) -> None:
    """A correction to a locked batch was filed: the other party hears of it, and the bureaus that may decide it."""
    if batch is None:
        return
    params = {"number": batch.number, "by": _name(session, correction.enterprise_id), "reason": correction.reason}
    notify(
        session=session,
        to=_others(principal, batch),
        kind="correction_requested",
        subject="manifest",
        subject_id=batch.id or 0,
        params=params,
        now=now,
        actor_id=principal.user_id,
    )
    # The bureaus of the parties' counties, cities and province: one of them holds the lock and decides.
    regions: set[str] = set()
    for party in (session.get(Enterprise, batch.shipper_id), session.get(Enterprise, batch.receiver_id)):
        if party is not None:
            regions |= {r for r in (party.county_adcode, party.prefecture_adcode, party.province_adcode) if r}
    notify(
        session=session,
        to=and_(col(User.role) == UserRole.bureau.value, col(User.scope_adcode).in_(sorted(regions))),
        kind="correction_awaiting",
        subject="correction",
        subject_id=correction.id or 0,
        params=params,
        now=now,
        actor_id=principal.user_id,
    )


def correction_decided(*, session: Session, principal: Principal, correction: CorrectionRequest, now: datetime) -> None:
    """A bureau decided on a correction: whoever filed it hears of the decision."""
    batch_id = (correction.payload or {}).get("batch_id") if correction.table_name == "transfer_batch" else None
    batch = numbers.get(session, int(batch_id)) if batch_id else None
    params = {
        "id": correction.id,
        "table": term(f"waste.table.{correction.table_name}"),
        "year": correction.year,
        "number": batch.number if batch else "",
        "note": correction.decision_note or "",
    }
    notify(
        session=session,
        to=of_users(correction.requested_by),
        kind="correction_approved" if correction.status == "approved" else "correction_rejected",
        subject="manifest" if batch else "correction",
        subject_id=batch.id if batch and batch.id else correction.id or 0,
        params=params,
        now=now,
        actor_id=principal.user_id,
    )
