"""Corrections to locked periods: filed with a reason, applied only when a bureau approves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from flows.access.accounts import Principal
from flows.access.locks import lock_for
from flows.access.scope import ensure_write_for_enterprise, readable_enterprise_ids
from flows.access.trail import record, snapshot
from flows.kernel.bounds import MAX_ID
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.waste import alerts, late_filings, manifests, numbers, revisions
from flows.waste.declarations import apply_declaration, parse_declaration
from models import CorrectionRequest
from models.enums import UserRole

Applier = Callable[[Session, Principal, dict[str, Any], datetime], Any]


def _apply_declaration(session: Session, principal: Principal, payload: dict[str, Any], now: datetime) -> Any:
    decl = parse_declaration(payload)
    return apply_declaration(session=session, principal=principal, decl=decl, now=now, action="correction")


def _apply_manifest(session: Session, principal: Principal, payload: dict[str, Any], now: datetime) -> Any:
    # The lock is what the approval overrides; the step rules of a correction, and the filer's side, still hold.
    party = payload.get("party")
    return manifests.correct(
        session=session,
        principal=principal,
        batch_id=int(payload["batch_id"]),
        changes=dict(payload.get("changes") or {}),
        reason=str(payload.get("reason") or "approved"),
        now=now,
        approved_for=party if party in ("shipper", "receiver", "either") else "either",
    )


# What each correctable table needs: how to read the enterprise and year from a payload, and how to apply it.
APPLIERS: dict[str, Applier] = {
    "declaration": _apply_declaration,
    "transfer_batch": _apply_manifest,
    late_filings.MANIFEST: late_filings.apply_manifest,
    late_filings.DECLARATION: late_filings.apply_declaration_late,
}


def _owner_and_year(
    session: Session, principal: Principal, table: str, payload: dict[str, Any]
) -> tuple[int, int, dict[str, Any]]:
    """The enterprise and year a correction concerns, and its payload checked as the applier will check it."""
    if table == "declaration":
        decl = parse_declaration(payload)
        # Stored as parsed: what waits for approval is exactly what will be applied, and nothing else.
        return decl.enterprise_id, decl.year, decl.model_dump(mode="json")
    if table == "transfer_batch":
        try:
            batch_id = int(payload["batch_id"])
        except (KeyError, TypeError, ValueError, OverflowError):
            batch_id = 0
        if not 1 <= batch_id <= MAX_ID:
            raise InvalidInput("waste.name_manifest", field="batch_id", column=Term("field.batch_id"))
        if not isinstance(payload.get("changes"), dict) or not payload["changes"]:
            raise InvalidInput("waste.name_changes", field="changes", column=Term("field.changes"))
        batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
        party = manifests.party_of(principal, batch)
        if party is None and not principal.is_admin:
            raise Forbidden("waste.parties_only", number=batch.number)
        # Checked when filed, with the filer's rights: a receiver's request cannot carry the shipper's fields.
        manifests.correction_changes(session=session, batch=batch, party=party, changes=payload["changes"])
        owner = principal.enterprise_id if party is not None else None
        checked = {"batch_id": batch_id, "changes": dict(payload["changes"]), "party": party or "either"}
        if payload.get("reason"):
            checked["reason"] = str(payload["reason"])
        return owner or batch.shipper_id, batch.year, checked
    raise InvalidInput("waste.correction_table", field="table", column=Term("field.table"), table=table)


def request_correction(
    *,
    session: Session,
    principal: Principal,
    table: str,
    payload: dict[str, Any],
    reason: str,
    now: datetime,
    asked: bool = False,
    attachment_ids: Sequence[object] = (),
    tolerance: revisions.Tolerance = revisions.DEFAULT_TOLERANCE,
) -> CorrectionRequest:
    """File a correction to a locked period (or one a bureau asked for), with evidence when a weight changes beyond
    the tolerance; it waits for a bureau's decision."""
    if table not in APPLIERS:
        raise InvalidInput("waste.correction_table", field="table", column=Term("field.table"), table=table)
    if not reason.strip():
        raise InvalidInput("waste.correction_reason", field="reason", column=Term("field.reason"))
    if table in late_filings.TABLES:
        enterprise_id, year, payload, parties = late_filings.checked(session, principal, table, payload)
    else:
        enterprise_id, year, payload = _owner_and_year(session, principal, table, payload)
        parties = (enterprise_id,)
    ensure_write_for_enterprise(principal, enterprise_id, Term(f"waste.table.{table}"))
    # A correction a bureau asked for waits for its decision, locked year or not.
    if not asked and all(lock_for(session=session, enterprise_id=party, year=year) is None for party in parties):
        raise Conflict("waste.year_not_locked", field="year", year=year, table=Term(f"waste.table.{table}"))
    evidence = revisions.check_evidence(
        session=session,
        principal=principal,
        table=table,
        enterprise_id=enterprise_id,
        year=year,
        payload=payload,
        attachment_ids=attachment_ids,
        tolerance=tolerance,
    )
    correction = CorrectionRequest(
        table_name=table,
        enterprise_id=enterprise_id,
        year=year,
        payload=payload,
        reason=reason.strip(),
        requested_by=principal.user_id,
        requested_at=now,
    )
    session.add(correction)
    session.flush()
    revisions.attach_evidence(session=session, correction=correction, attachments=evidence)
    record(
        session=session,
        principal=principal,
        action="request_correction",
        table="correction_request",
        row_id=correction.id,
        before=None,
        # The files' hashes are in the log since their upload; the request names which ones it rests on.
        after={**(snapshot(correction) or {}), "attachment_ids": [a.id for a in evidence]},
        now=now,
        enterprises=(enterprise_id,),
    )
    if asked:
        return correction  # the ask tells the bureau that asked (flows/waste/correction_asks.py), in its own words
    batch = numbers.get(session, int(payload["batch_id"])) if table == "transfer_batch" else None
    alerts.correction_filed(session=session, principal=principal, correction=correction, batch=batch, now=now)
    return correction


def decide_correction(
    *, session: Session, principal: Principal, correction_id: int, approve: bool, note: str, now: datetime
) -> CorrectionRequest:
    """A bureau of the enterprise's region approves (and so applies) or rejects a pending correction."""
    if principal.role not in (UserRole.bureau, UserRole.admin):
        raise Forbidden("waste.bureau_approves")
    correction = _visible(session, principal, correction_id, for_update=True)
    if correction.status != "pending":
        raise Conflict(
            "waste.already_decided",
            field="status",
            correction_id=correction_id,
            status=Term(f"waste.decision.{correction.status}"),
        )
    before = snapshot(correction)
    correction.status = "approved" if approve else "rejected"
    correction.decided_by = principal.user_id
    correction.decided_at = now
    correction.decision_note = note.strip() or None
    session.add(correction)
    if approve:
        published = revisions.published_figures(session=session, correction=correction)
        APPLIERS[correction.table_name](session, principal, correction.payload, now)
        session.flush()
        revisions.record_revisions(
            session=session, principal=principal, correction=correction, published=published, now=now
        )
    session.flush()
    record(
        session=session,
        principal=principal,
        action="approve_correction" if approve else "reject_correction",
        table="correction_request",
        row_id=correction.id,
        before=before,
        after=snapshot(correction),
        now=now,
        enterprises=(correction.enterprise_id,),
    )
    alerts.correction_decided(session=session, principal=principal, correction=correction, now=now)
    return correction


def preview_correction(
    *, session: Session, principal: Principal, correction_id: int, now: datetime
) -> revisions.Effect:
    """What approving a pending correction would do to the rates and gaps of its region and province."""
    if principal.role not in (UserRole.bureau, UserRole.admin):
        raise Forbidden("waste.bureau_approves")
    correction = _visible(session, principal, correction_id)
    return revisions.preview(
        session=session, principal=principal, correction=correction, apply=APPLIERS[correction.table_name], now=now
    )


def _visible(
    session: Session, principal: Principal, correction_id: int, *, for_update: bool = False
) -> CorrectionRequest:
    query = select(CorrectionRequest).where(
        CorrectionRequest.id == correction_id,
        col(CorrectionRequest.enterprise_id).in_(readable_enterprise_ids(principal)),
    )
    if for_update:
        # Approve and reject at the same moment: the second waits for the first and then finds it decided.
        query = query.with_for_update(of=CorrectionRequest).execution_options(populate_existing=True)
    correction = session.exec(query).first()
    if correction is None:
        raise NotFound("waste.no_correction", field="correction_id", correction_id=correction_id)
    return correction


def list_corrections(*, session: Session, principal: Principal, status: str | None = None) -> list[CorrectionRequest]:
    """Corrections in the principal's scope, newest first."""
    query = select(CorrectionRequest).where(
        col(CorrectionRequest.enterprise_id).in_(readable_enterprise_ids(principal))
    )
    if status:
        query = query.where(CorrectionRequest.status == status)
    return list(session.exec(query.order_by(col(CorrectionRequest.id).desc())).all())
