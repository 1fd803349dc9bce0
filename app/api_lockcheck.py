"""JSON API for locking with a checklist and for late filings into a locked year."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.api import CorrectionPublic
from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.params import Year, checked_json
from flows.kernel.bounds import Text
from flows.waste import corrections, late_filings, lock_checklist

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["audit"])

Adcode = Annotated[str, Query(min_length=6, max_length=6, pattern="^[0-9]{6}$")]


class LateFilingCreate(BaseModel):
    kind: Literal["manifest", "declaration"]
    payload: dict[str, Any] = Field(description="the record as POST /manifests or POST /declarations takes it")
    reason: Text = Field(min_length=1)


@router.get("/locks/checklist", response_model=lock_checklist.LockChecklist)
def checklist(adcode: Adcode, year: Year, session: SessionDep, principal: PrincipalDep) -> lock_checklist.LockChecklist:
    """What is still open in a region's year before it locks (bureaus of the region or above)."""
    return lock_checklist.lock_checklist(session=session, principal=principal, adcode=adcode, year=year)


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
