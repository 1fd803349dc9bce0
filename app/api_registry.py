"""JSON API for reference data kept by administrators and bureaus: the battery whitelist, enterprise and park edits."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.errors import api_language
from app.params import DayQuery, Id, IdQuery, checked_json, described_by
from flows.access import directory, registry
from flows.access.registry import Change, EnterpriseEdit, ParkEdit
from flows.battery import whitelist
from flows.battery.chain import RowsRefused
from flows.battery.whitelist import EntryHistory, EntryIn, EntryPublic
from flows.kernel.clock import CST
from models.enterprise import EnterprisePublic
from models.enums import WhitelistKind
from models.reference import ParkPublic

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)])


class WhitelistPage(BaseModel):
    data: list[EntryPublic]
    count: int


class WhitelistWritten(BaseModel):
    created: int
    replaced: int
    unchanged: int
    ids: list[int]


class Delisting(BaseModel):
    delisted_on: date = Field(description="first day off the list")


def today() -> date:
    """Today in China Standard Time: the day the lists are dated in."""
    return utcnow().astimezone(CST).date()


@router.get("/whitelist", response_model=WhitelistPage, tags=["whitelist"])
def list_whitelist(
    session: SessionDep,
    enterprise_id: IdQuery = None,
    activity: WhitelistKind | None = None,
    on: DayQuery = None,
    listed: Annotated[bool, Query(description="only the entries valid on `on` (today by default)")] = False,
) -> WhitelistPage:
    """The battery whitelist (published by MIIT, readable by every account), newest listing first."""
    rows = whitelist.list_whitelist(
        session=session, on=on or today(), enterprise_id=enterprise_id, activity=activity, listed_only=listed
    )
    return WhitelistPage(data=rows, count=len(rows))


@router.post("/whitelist", status_code=201, response_model=None, tags=["whitelist"])
def record_whitelist(
    body: Annotated[
        dict[str, Any] | list[dict[str, Any]],
        described_by(EntryIn | list[EntryIn], dict[str, Any] | list[dict[str, Any]]),
        Body(),
    ],
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> EntryPublic | WhitelistWritten | JSONResponse:
    """Record one entry (an object; 409 if its key is stored with other values) or the list as it now stands (a
    list, all or none: a stored key is replaced); administrators, and bureaus for enterprises of their region."""
    now = utcnow()
    if isinstance(body, dict):
        written = whitelist.save_entry(session=session, principal=principal, data=body, now=now)
        session.commit()
        assert written.entry.id is not None
        return whitelist.entry_history(session=session, entry_id=written.entry.id, on=today())
    try:
        done = whitelist.save_entries(session=session, principal=principal, rows=body, lines=None, now=now)
    except RowsRefused as exc:
        problem = {"title": "RowsRefused", "status": 422, "field": exc.field, "row": exc.row}
        problem |= exc.as_dict(api_language(request))
        return JSONResponse(problem, status_code=422, media_type="application/problem+json")
    session.commit()
    return WhitelistWritten(
        created=sum(w.outcome == "created" for w in done),
        replaced=sum(w.outcome == "replaced" for w in done),
        unchanged=sum(w.outcome == "unchanged" for w in done),
        ids=[w.entry.id for w in done if w.entry.id is not None],
    )


@router.get("/whitelist/{entry_id}", response_model=EntryHistory, tags=["whitelist"])
def read_whitelist_entry(entry_id: Id, session: SessionDep) -> EntryHistory:
    """One entry with its history (every change in the audit log)."""
    return whitelist.entry_history(session=session, entry_id=entry_id, on=today())


@router.post("/whitelist/{entry_id}/delist", response_model=EntryHistory, tags=["whitelist"])
def delist_whitelist_entry(entry_id: Id, body: Delisting, session: SessionDep, principal: PrincipalDep) -> EntryHistory:
    """Delist an entry from a day on (409 if it was delisted already)."""
    whitelist.delist(
        session=session, principal=principal, entry_id=entry_id, delisted_on=body.delisted_on, now=utcnow()
    )
    session.commit()
    return whitelist.entry_history(session=session, entry_id=entry_id, on=today())


@router.patch("/enterprises/{enterprise_id}", response_model=EnterprisePublic, tags=["enterprises"])
def edit_enterprise(
    enterprise_id: Id,
    body: Annotated[dict[str, Any], described_by(EnterpriseEdit), Body()],
    session: SessionDep,
    principal: PrincipalDep,
) -> EnterprisePublic:
    """Edit an enterprise (administrators): name, roles, location (with its datum), park set by hand; name the
    version read. A moved point re-derives the region and park; the change is kept in the enterprise's history."""
    registry.edit_enterprise(session=session, principal=principal, enterprise_id=enterprise_id, data=body, now=utcnow())
    session.commit()
    return directory.get_enterprise(session=session, principal=principal, enterprise_id=enterprise_id)


@router.get("/enterprises/{enterprise_id}/history", response_model=list[Change], tags=["enterprises"])
def enterprise_history(enterprise_id: Id, session: SessionDep, principal: PrincipalDep) -> list[Change]:
    """Changes of an enterprise's name, location, region, park and roles, newest first."""
    directory.get_enterprise(session=session, principal=principal, enterprise_id=enterprise_id)
    return registry.history(session=session, table="enterprise", row_id=enterprise_id)


@router.patch("/parks/{park_id}", response_model=ParkPublic, tags=["parks"])
def edit_park(
    park_id: Id,
    body: Annotated[dict[str, Any], described_by(ParkEdit), Body()],
    session: SessionDep,
    principal: PrincipalDep,
) -> ParkPublic:
    """Edit a park (administrators): name, level, status, boundary (GeoJSON, with its datum); name the version
    read. A new boundary re-derives the park of the enterprises not placed by hand."""
    park = registry.edit_park(session=session, principal=principal, park_id=park_id, data=body, now=utcnow())
    session.commit()
    return ParkPublic.model_validate(park)


@router.get("/parks/{park_id}/history", response_model=list[Change], tags=["parks"])
def park_history(park_id: Id, session: SessionDep) -> list[Change]:
    """Changes of a park, newest first."""
    directory.get_park(session=session, park_id=park_id)
    return registry.history(session=session, table="park", row_id=park_id)
