"""JSON API for power-battery traceability: registration, events, trace, reverse trace, chain audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.errors import api_language
from app.params import (
    CodePath,
    DayQuery,
    Id,
    IdQuery,
    Offset,
    TextQuery,
    Year,
    YearQuery,
    checked_json,
    described_by,
)
from flows.battery import audit as battery_audit
from flows.battery import chain as battery
from flows.battery.chain import RowsRefused
from flows.kernel.bounds import MAX_BATTERY_KG, MAX_QUERY_TEXT, Text
from flows.kernel.clock import stored_utc
from models import Battery, BatteryEvent

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["batteries"])


class BulkResult(BaseModel):
    count: int
    codes: list[str]


class EventsResult(BaseModel):
    count: int  # rows recorded as submitted
    copied_to_children: int  # copies on the modules and cells inside the batteries named


class EventOut(BaseModel):
    type: str
    occurred_at: datetime
    reported_at: datetime
    reporter_id: int
    counterpart_id: int | None
    region_adcode: str | None
    vin: str | None
    attributes: dict[str, Any]


class EventRecorded(BaseModel):
    event: EventOut
    battery: battery.BatteryView


def _attribute(name: str) -> tuple[Any, Any]:
    """An attribute an event may carry as a key of its own, as chain.clean_attributes reads it."""
    if name == "soh":
        return float | None, Field(default=None, ge=0, le=1, description="state of health, a share (e.g. 0.82)")
    if name.endswith("_kg"):
        return float | None, Field(default=None, ge=0, le=MAX_BATTERY_KG, description="in kg (or the same in t)")
    if name.endswith("_t"):
        return float | None, Field(default=None, ge=0, le=MAX_BATTERY_KG / 1000, description="in t (or in kg)")
    if name == "purpose":
        return Literal["cascade_use", "recycling"] | None, Field(default=None)  # chain.PURPOSES
    return Text | None, Field(default=None)


_ATTRIBUTES: dict[str, Any] = {name: _attribute(name) for name in battery.TEXT_ATTRIBUTES + battery.NUMBER_ATTRIBUTES}
_EVENT: dict[str, Any] = {
    name: (info.annotation, info) for name, info in battery.EventIn.model_fields.items() if name != "code"
}
_ROW: dict[str, Any] = {"code": (str, battery.EventIn.model_fields["code"]), **_EVENT, **_ATTRIBUTES}
_FORBID = ConfigDict(extra="forbid")
# An event as chain.parse_event reads it: EventIn's fields, and the attributes it also takes as keys of their own
# (they join `attributes`); an unknown key is refused (422, "unknown column"). The battery's code is in the path.
BatteryEventCreate = create_model(
    "BatteryEventCreate",
    __config__=_FORBID,
    __doc__="One event on the battery named in the path.",
    **_EVENT,
    **_ATTRIBUTES,
)
# One row of a bulk write: the same, with the battery's code.
BatteryEventRow = create_model(
    "BatteryEventRow",
    __config__=_FORBID,
    __doc__="One event of a bulk write (all or none), naming its battery.",
    **_ROW,
)


def _refused(request: Request, exc: RowsRefused) -> JSONResponse:
    # In the language the client asks for (English unless it asks), as every other refusal is.
    body = {
        "title": "RowsRefused",
        "status": 422,
        "field": exc.field,
        "row": exc.row,
        **exc.as_dict(api_language(request)),
    }
    return JSONResponse(body, status_code=422, media_type="application/problem+json")


def _event_out(event: BatteryEvent) -> EventOut:
    return EventOut(
        type=str(event.type),
        occurred_at=stored_utc(event.occurred_at),
        reported_at=stored_utc(event.reported_at),
        reporter_id=event.reporter_id,
        counterpart_id=event.counterpart_id,
        region_adcode=event.region_adcode,
        vin=event.vin,
        attributes=event.attributes,
    )


@router.get("/battery-states")
def states() -> list[dict[str, Any]]:
    """The state machine: for each event, the states it may follow, where it leads, and what it requires."""
    return battery.state_machine_table()


@router.post("/batteries", status_code=201, response_model=None)
def register(
    body: Annotated[
        dict[str, Any] | list[dict[str, Any]],
        described_by(battery.BatteryIn | list[battery.BatteryIn], dict[str, Any] | list[dict[str, Any]]),
        Body(),
    ],
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> battery.BatteryView | BulkResult | JSONResponse:
    """Register one battery (an object) or many (a list, all or none) by GB/T 34014 code, with their parent codes."""
    now = utcnow()
    if isinstance(body, dict):
        saved = battery.register_battery(session=session, principal=principal, row=body, now=now)
        session.commit()
        return battery.battery_view(session=session, principal=principal, code=saved.code)
    try:
        rows = battery.register_batteries(session=session, principal=principal, rows=body, now=now)
    except RowsRefused as exc:
        return _refused(request, exc)
    session.commit()
    return BulkResult(count=len(rows), codes=[b.code for b in rows])


@router.get("/batteries/{code}", response_model=battery.BatteryView)
def read(code: CodePath, session: SessionDep, principal: PrincipalDep) -> battery.BatteryView:
    """A battery's decoded code, state, holder, parent and children."""
    return battery.battery_view(session=session, principal=principal, code=code)


@router.post("/batteries/{code}/events", status_code=201, response_model=EventRecorded)
def record(
    code: CodePath,
    body: Annotated[dict[str, Any], described_by(BatteryEventCreate), Body()],
    session: SessionDep,
    principal: PrincipalDep,
) -> EventRecorded:
    """Record one event; a step the battery's state does not allow is refused (409) naming the allowed ones."""
    event = battery.record_event(session=session, principal=principal, code=code, row=body, now=utcnow())
    session.commit()
    holder = session.get(Battery, event.battery_id)
    assert holder is not None
    view = battery.battery_view(session=session, principal=principal, code=holder.code)
    return EventRecorded(event=_event_out(event), battery=view)


@router.post("/battery-events", status_code=201, response_model=None)
def record_many(
    body: Annotated[list[dict[str, Any]], described_by(list[BatteryEventRow], list[dict[str, Any]]), Body()],
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> EventsResult | JSONResponse:
    """Record many events, all or none; a refusal lists every bad row (position in the list, column, reason)."""
    try:
        events = battery.record_events(session=session, principal=principal, rows=body, now=utcnow())
    except RowsRefused as exc:
        return _refused(request, exc)
    session.commit()
    own = sum(1 for e in events if "via" not in e.attributes)
    return EventsResult(count=own, copied_to_children=len(events) - own)


@router.get("/batteries/{code}/trace", response_model=None)
def trace(
    code: CodePath,
    session: SessionDep,
    principal: PrincipalDep,
    pack: Annotated[bool, Query(description="The whole pack: the pack and every module and cell in it.")] = False,
) -> battery.BatteryTrace | battery.PackTrace:
    """A battery's whole life in order, custody and genealogy; with pack=true, its whole pack at once."""
    if pack:
        return battery.trace_pack(session=session, principal=principal, code=code)
    return battery.trace(session=session, principal=principal, code=code)


@router.get("/enterprises/{enterprise_id}/batteries", response_model=battery.ThroughPage)
def through(
    enterprise_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    since: Annotated[DayQuery, Query(alias="from")] = None,
    until: Annotated[DayQuery, Query(alias="to")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> battery.ThroughPage:
    """Reverse trace: every battery that passed through an enterprise in a period (days, inclusive), and where it is."""
    return battery.batteries_through(
        session=session,
        principal=principal,
        enterprise_id=enterprise_id,
        since=since,
        until=until,
        offset=offset,
        limit=limit,
    )


@router.get("/battery-flags", response_model=battery_audit.FlagReport)
def flags(
    session: SessionDep,
    principal: PrincipalDep,
    year: YearQuery = None,
    region: TextQuery = None,
    kind: Annotated[
        str | None, Query(description="Comma-separated flag kinds; all when omitted.", max_length=MAX_QUERY_TEXT)
    ] = None,
    code: TextQuery = None,
    enterprise_id: IdQuery = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> battery_audit.FlagReport:
    """Chain flags with their evidence, counted by kind, enterprise and prefecture, in the caller's scope."""
    return battery_audit.chain_flags(
        session=session,
        principal=principal,
        now=utcnow(),
        year=year,
        region=region,
        kinds=kind,
        code=code,
        enterprise_id=enterprise_id,
        offset=offset,
        limit=limit,
    )


@router.get("/battery-recovery", response_model=battery_audit.ComplianceReport)
def recovery(
    session: SessionDep, principal: PrincipalDep, year: Year, region: TextQuery = None
) -> battery_audit.ComplianceReport:
    """Recovery compliance: each recycler's reports of a year against the edition of the thresholds in force."""
    return battery_audit.recovery_compliance(session=session, principal=principal, year=year, region=region)


@router.get("/battery-share", response_model=battery_audit.ShareReport)
def share(
    session: SessionDep, principal: PrincipalDep, year: Year, region: TextQuery = None
) -> battery_audit.ShareReport:
    """The share of a year's retired batteries, by count and kWh, that reached a whitelisted recycler, by prefecture."""
    return battery_audit.retired_share(session=session, principal=principal, year=year, region=region)
