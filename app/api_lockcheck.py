"""JSON API for locking with a checklist and for late filings into a locked year."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api import CorrectionPublic
from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.params import Year, checked_json
from flows.kernel.bounds import Text
from flows.waste import corrections, late_filings, lock_checklist

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["audit"])

Adcode = Annotated[str, Query(min_length=6, max_length=6, pattern="^[0-9]{6}$")]


class _Rows(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class InTransitPublic(_Rows):
    batch_id: int
    number: str
    shipper_zh: str
    shipper_en: str | None
    receiver_zh: str
    receiver_en: str | None
    dispatched_at: datetime | None
    weight_t: Decimal


class UndeclaredPublic(_Rows):
    enterprise_id: int
    uscc: str
    name_zh: str
    name_en: str | None
    manifests: int


class PendingPublic(_Rows):
    correction_id: int
    table: str
    enterprise_zh: str
    enterprise_en: str | None


class ChecklistPublic(_Rows):
    adcode: str
    region_zh: str
    region_en: str | None
    year: int
    locked: bool
    clear: bool = Field(description="nothing open: no batch in transit, missing declaration, open flag or request")
    in_transit_count: int
    undeclared_count: int
    open_flags: int
    pending_count: int
    in_transit: list[InTransitPublic] = Field(description=f"the first {lock_checklist.SHOWN}, oldest dispatch first")
    undeclared: list[UndeclaredPublic]
    pending: list[PendingPublic]


class LateFilingCreate(BaseModel):
    kind: Literal["manifest", "declaration"]
    payload: dict[str, Any] = Field(description="the record as POST /manifests or POST /declarations takes it")
    reason: Text = Field(min_length=1)


@router.get("/locks/checklist", response_model=ChecklistPublic)
def checklist(adcode: Adcode, year: Year, session: SessionDep, principal: PrincipalDep) -> ChecklistPublic:
    """What is still open in a region's year before it locks (bureaus of the region or above)."""
    found = lock_checklist.lock_checklist(session=session, principal=principal, adcode=adcode, year=year)
    return ChecklistPublic.model_validate(found)


@router.post("/late-filings", response_model=CorrectionPublic, status_code=201)
def file_late(body: LateFilingCreate, session: SessionDep, principal: PrincipalDep) -> CorrectionPublic:
    """File a new manifest or declaration of a locked year; it is recorded when a bureau approves it."""
    request = corrections.request_correction(
        session=session,
        principal=principal,
        table=late_filings.KINDS[body.kind],
        payload=body.payload,
        reason=body.reason,
        now=utcnow(),
    )
    session.commit()
    return CorrectionPublic.model_validate(request, from_attributes=True)
