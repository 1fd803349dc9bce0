"""JSON API for licences: record one (create or replace, the old version kept), list an enterprise's, read one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from pydantic import BaseModel

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.params import Id, IdQuery, TextQuery, checked_json, described_by
from flows.waste import licences
from flows.waste.licences import LicenceIn, LicencePublic

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["licences"])


class LicencesPage(BaseModel):
    data: list[LicencePublic]
    count: int


@router.post("/licences", response_model=LicencePublic, status_code=201)
def record(
    body: Annotated[dict[str, Any], described_by(LicenceIn), Body()],
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
) -> LicencePublic:
    """Record a licence (bureaus of the enterprise's region): 201 new; 200 replaced (licence_id and revision) or
    unchanged; the replaced version stays in the licence's history."""
    written = licences.save_licence(session=session, principal=principal, data=body, now=utcnow())
    session.commit()
    if written.outcome != "created":
        response.status_code = 200
    return licences.public(session, written.licence)


@router.get("/licences", response_model=LicencesPage)
def list_(
    session: SessionDep,
    principal: PrincipalDep,
    enterprise_id: IdQuery = None,
    uscc: TextQuery = None,
) -> LicencesPage:
    """One enterprise's licences (by id or credit code), each with the versions it superseded."""
    wanted = licences.enterprise_ref(session=session, principal=principal, enterprise_id=enterprise_id, uscc=uscc)
    rows = licences.licences_of(session=session, principal=principal, enterprise_id=wanted)
    return LicencesPage(data=rows, count=len(rows))


@router.get("/licences/{licence_id}", response_model=LicencePublic)
def read(licence_id: Id, session: SessionDep, principal: PrincipalDep) -> LicencePublic:
    """One licence as it stands, with every version it superseded (what it said, who recorded it and when)."""
    return licences.get_licence(session=session, principal=principal, licence_id=licence_id)
