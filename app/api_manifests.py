"""JSON API for manifests: create (idempotent), dispatch, receive, reject, cancel, correct, list, read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from pydantic import BaseModel, Field

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.params import Id, IdQuery, Offset, TextQuery, YearQuery, checked_json, described_by
from flows.kernel.bounds import MAX_MANIFEST_T, Code, Key, Moment, Reason, Text
from flows.kernel.bounds import Id as IdField
from flows.waste import chains, correction_asks, manifests
from flows.waste.chains import ManifestChain
from models import Manifest, ManifestCorrection
from models.enums import ManifestStatus, Route, TransportMode, Weighing

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["manifests"])


class ManifestPublic(BaseModel):
    id: int
    number: str
    reference: str | None
    shipper_id: int
    receiver_id: int
    carrier_id: int | None
    category_code: str
    route: str
    year: int
    status: ManifestStatus
    weight_dispatched_t: float
    weight_received_t: float | None
    rejected_t: float | None
    dispatched_at: datetime | None
    received_at: datetime | None
    rejection_reason: str | None
    cancel_reason: str | None
    idempotency_key: str | None
    vehicle_plate: str | None
    transport_mode: TransportMode | None
    packaging: str | None
    weighing: Weighing | None
    discrepancy_t: float | None
    discrepancy_flag: bool
    sealed: list[str]
    next_steps: list[str]


class CorrectionEntry(BaseModel):
    at: datetime
    user_id: int | None
    reason: str
    before: dict[str, Any]
    after: dict[str, Any]


class ManifestDetail(ManifestPublic):
    corrections: list[CorrectionEntry]
    under_correction: list[int] = Field(
        default_factory=list, description="the open correction asks of a bureau on this manifest (their ids)"
    )


class ManifestsPage(BaseModel):
    data: list[ManifestPublic]
    count: int


Tonnes = Annotated[float, Field(ge=0, le=MAX_MANIFEST_T)]
Kilograms = Annotated[float, Field(ge=0, le=MAX_MANIFEST_T * 1000)]


class _Parties(BaseModel):
    """The fields a new manifest and a draft's changes share."""

    receiver_id: IdField | None = Field(default=None, description="the receiving enterprise (or receiver_uscc)")
    receiver_uscc: Code | None = Field(default=None, description="the receiver's credit code (or receiver_id)")
    carrier_id: IdField | None = Field(default=None, description="the carrier, if another enterprise (or carrier_uscc)")
    carrier_uscc: Code | None = Field(default=None, description="the carrier's credit code (or carrier_id)")
    weight_dispatched_t: Tonnes | None = Field(default=None, description="the weight sent, in t (or in kg)")
    weight_dispatched_kg: Kilograms | None = Field(default=None, description="the weight sent, in kg (or in t)")


class ManifestCreate(_Parties):
    """A new manifest (manifests.parse_manifest reads it): parties by id or credit code, the weight in t or kg.

    Give one of each pair (receiver_id or receiver_uscc, weight_dispatched_t or weight_dispatched_kg), not both;
    keys not named here are ignored.
    """

    shipper_id: IdField | None = Field(default=None, description="the shipping enterprise (an enterprise user's own)")
    shipper_uscc: Code | None = Field(default=None, description="the shipper's credit code (or shipper_id)")
    category_code: Code = Field(description="the waste category's code")
    route: Route = Field(description="the intended treatment at the receiver")
    dispatched_at: Moment | None = Field(default=None, description="dispatched at once, at this time (else a draft)")
    idempotency_key: Key | None = Field(
        default=None, description="a retry with the same key returns the first manifest (or the Idempotency-Key header)"
    )
    reference: Code | None = Field(default=None, description="the shipper's own number for the batch")
    sources: list[manifests.SourceIn] = Field(
        default_factory=list,
        max_length=manifests.MAX_SOURCES,
        description="the lots this waste came from, received by this shipper: {number or id, weight_t (else pro rata)}",
    )
    vehicle_plate: Code | None = Field(default=None, max_length=16, description="the vehicle's plate number")
    transport_mode: TransportMode | None = Field(default=None, description="road, rail, waterway, conveyor, pipeline")
    packaging: Code | None = Field(default=None, max_length=64, description="how the lot is packed (bulk, bags, ...)")
    weighing: Weighing | None = Field(
        default=None, description="whether the dispatched weight was weighed or estimated"
    )


class ManifestChanges(_Parties):
    """Changes to a draft (manifests.update_draft reads them); fields not given keep their values."""

    category_code: Code | None = Field(default=None, description="the waste category's code")
    route: Route | None = Field(default=None, description="the intended treatment at the receiver")
    vehicle_plate: Code | None = Field(default=None, max_length=16, description="the vehicle's plate number")
    transport_mode: TransportMode | None = Field(default=None, description="road, rail, waterway, conveyor, pipeline")
    packaging: Code | None = Field(default=None, max_length=64, description="how the lot is packed (bulk, bags, ...)")
    weighing: Weighing | None = Field(
        default=None, description="whether the dispatched weight was weighed or estimated"
    )
    sources: list[manifests.SourceIn] | None = Field(
        default=None,
        max_length=manifests.MAX_SOURCES,
        description="the lots this waste came from, named anew (an empty list names none); not given: kept",
    )


class DispatchIn(BaseModel):
    dispatched_at: Moment | None = None


class ReceiveIn(BaseModel):
    weight_received_t: Tonnes | None = None
    weight_received_kg: Kilograms | None = None
    rejected_t: Tonnes | None = None
    rejected_kg: Kilograms | None = None
    rejection_reason: Reason | None = None
    received_at: Moment | None = None


class RejectIn(BaseModel):
    rejection_reason: Reason = Field(min_length=1)
    received_at: Moment | None = None


class CancelIn(BaseModel):
    cancel_reason: Reason = Field(min_length=1)


class CorrectIn(BaseModel):
    changes: dict[str, Any]
    reason: Text = Field(min_length=1)


_STORED = set(ManifestPublic.model_fields) - {"discrepancy_t", "discrepancy_flag", "sealed", "next_steps"}


def public(batch: Manifest) -> ManifestPublic:
    """The API view of a manifest, with its discrepancy and what its status seals and allows."""
    gap, flagged = manifests.discrepancy(batch)
    status = ManifestStatus(batch.status)
    return ManifestPublic(
        # Read the attributes: enumerations come back from the database as plain strings.
        **{name: getattr(batch, name) for name in _STORED},
        discrepancy_t=gap,
        discrepancy_flag=flagged,
        sealed=manifests.sealed_fields(status),
        next_steps=manifests.next_steps(status),
    )


def _detail(batch: Manifest, history: list[ManifestCorrection]) -> ManifestDetail:
    entries = [CorrectionEntry.model_validate(c, from_attributes=True) for c in history]
    return ManifestDetail(**public(batch).model_dump(), corrections=entries)


@router.get("/manifests/steps")
def steps() -> list[dict[str, Any]]:
    """The step table: which step follows which status, who takes it, what it requires and seals."""
    return manifests.steps_table()


@router.post("/manifests", response_model=ManifestPublic, status_code=201)
def create(
    body: Annotated[dict[str, Any], described_by(ManifestCreate), Body()],
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[Key | None, Header()] = None,
) -> ManifestPublic:
    """Log a manifest (a draft, or dispatched at once with dispatched_at); a retried key returns the first one."""
    if idempotency_key and not body.get("idempotency_key"):
        body = {**body, "idempotency_key": idempotency_key}
    manifest = manifests.parse_manifest(body)
    batch, new = manifests.create_manifest(session=session, principal=principal, manifest=manifest, now=utcnow())
    session.commit()
    if not new:
        response.status_code = 200
    return public(batch)


@router.get("/manifests", response_model=ManifestsPage)
def list_(
    session: SessionDep,
    principal: PrincipalDep,
    year: YearQuery = None,
    status: ManifestStatus | None = None,
    category: TextQuery = None,
    route: TextQuery = None,
    enterprise_id: IdQuery = None,
    direction: Literal["any", "sent", "received"] = "any",
    q: TextQuery = None,
    sort: Annotated[str, Query(max_length=32)] = "created_at",
    order: Literal["asc", "desc"] = "desc",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ManifestsPage:
    """Manifests with one end in the caller's scope, filtered, sorted, a page at a time."""
    filters = manifests.ManifestFilter(
        year=year,
        status=status.value if status else None,
        category=category,
        route=route,
        enterprise_id=enterprise_id,
        direction=direction,
        q=q,
    )
    rows, count = manifests.list_manifests(
        session=session,
        principal=principal,
        filters=filters,
        sort=sort,
        descending=order == "desc",
        offset=offset,
        limit=limit,
    )
    return ManifestsPage(data=[public(b) for b in rows], count=count)


@router.get("/manifests/{batch_id}", response_model=ManifestDetail)
def read(batch_id: Id, session: SessionDep, principal: PrincipalDep) -> ManifestDetail:
    """One manifest with its correction history."""
    batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
    detail = _detail(batch, manifests.corrections_of(session=session, batch_id=batch_id))
    asks = correction_asks.under_correction(session=session, table="transfer_batch", row_ids=[batch_id])
    return detail.model_copy(update={"under_correction": asks.get(batch_id, [])})


@router.get("/manifests/{batch_id}/chain", response_model=ManifestChain)
def read_chain(batch_id: Id, session: SessionDep, principal: PrincipalDep) -> ManifestChain:
    """Where a manifest's tonnes came from and where they ended, through every hop (draws, first manifests, shares)."""
    batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
    return chains.chain_of(session, batch)


@router.patch("/manifests/{batch_id}", response_model=ManifestPublic)
def update(
    batch_id: Id,
    body: Annotated[dict[str, Any], described_by(ManifestChanges), Body()],
    session: SessionDep,
    principal: PrincipalDep,
) -> ManifestPublic:
    """Change a draft before it is dispatched."""
    batch = manifests.update_draft(session=session, principal=principal, batch_id=batch_id, changes=body, now=utcnow())
    session.commit()
    return public(batch)


@router.post("/manifests/{batch_id}/dispatch", response_model=ManifestPublic)
def dispatch(batch_id: Id, body: DispatchIn, session: SessionDep, principal: PrincipalDep) -> ManifestPublic:
    """The shipper sends the batch off (now, unless dispatched_at says when)."""
    now = utcnow()
    batch = manifests.dispatch(
        session=session, principal=principal, batch_id=batch_id, at=body.dispatched_at or now, now=now
    )
    session.commit()
    return public(batch)


@router.post("/manifests/{batch_id}/receive", response_model=ManifestPublic)
def receive(batch_id: Id, body: ReceiveIn, session: SessionDep, principal: PrincipalDep) -> ManifestPublic:
    """The receiver confirms the weight it weighed (in t or kg), refusing part of it with a reason if need be."""
    now = utcnow()
    weights = body.model_dump(include={"weight_received_t", "weight_received_kg", "rejected_t", "rejected_kg"})
    batch = manifests.receive(
        session=session,
        principal=principal,
        batch_id=batch_id,
        weights=weights,
        at=body.received_at or now,
        now=now,
        rejection_reason=body.rejection_reason,
    )
    session.commit()
    return public(batch)


@router.post("/manifests/{batch_id}/reject", response_model=ManifestPublic)
def reject(batch_id: Id, body: RejectIn, session: SessionDep, principal: PrincipalDep) -> ManifestPublic:
    """The receiver refuses the whole batch, saying why."""
    now = utcnow()
    batch = manifests.reject(
        session=session,
        principal=principal,
        batch_id=batch_id,
        reason=body.rejection_reason,
        at=body.received_at or now,
        now=now,
    )
    session.commit()
    return public(batch)


@router.post("/manifests/{batch_id}/cancel", response_model=ManifestPublic)
def cancel(batch_id: Id, body: CancelIn, session: SessionDep, principal: PrincipalDep) -> ManifestPublic:
    """The shipper withdraws a draft or a batch not yet received."""
    batch = manifests.cancel(
        session=session, principal=principal, batch_id=batch_id, reason=body.cancel_reason, now=utcnow()
    )
    session.commit()
    return public(batch)


@router.post("/manifests/{batch_id}/correct", response_model=ManifestDetail)
def correct(batch_id: Id, body: CorrectIn, session: SessionDep, principal: PrincipalDep) -> ManifestDetail:
    """Correct a received or rejected batch; the old values stay in its history."""
    batch = manifests.correct(
        session=session, principal=principal, batch_id=batch_id, changes=body.changes, reason=body.reason, now=utcnow()
    )
    session.commit()
    return _detail(batch, manifests.corrections_of(session=session, batch_id=batch_id))
