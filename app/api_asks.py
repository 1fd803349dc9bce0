"""JSON API for correction asks: a bureau asks, the enterprise files or contests, the bureau decides or withdraws."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.api_revisions import ToleranceDep
from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.params import Id, Offset, checked_json
from flows.access.files import MAX_ATTACHMENTS
from flows.kernel.bounds import Code, Text
from flows.kernel.bounds import Id as IdField
from flows.waste import correction_asks
from flows.waste.correction_asks import AskView

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["correction asks"])

Status = Literal["open", "filed", "contested", "corrected", "dropped", "withdrawn"]


class AskCreate(BaseModel):
    """What a bureau asks: the record, the fields its owner is to correct, why, and by when (a Beijing date)."""

    table: Literal["transfer_batch", "declaration"] = Field(description="the kind of record")
    row_id: IdField = Field(description="the manifest's or the declaration's id")
    fields: list[Code] = Field(min_length=1, max_length=20, description="the fields to correct, of one owner")
    reason: Text = Field(min_length=1)
    due_on: date = Field(description="the day by which the enterprise answers")


class AskAnswer(BaseModel):
    """The enterprise's answer: file the correction (values of the fields asked for) or contest, with a reason."""

    action: Literal["file", "contest"]
    values: dict[str, Any] = Field(default_factory=dict, description="corrected values, by field asked for (file)")
    reason: Text = Field(min_length=1, description="why the values are as filed, or why the ask is contested")
    attachment_ids: list[int] = Field(
        default_factory=list, max_length=MAX_ATTACHMENTS, description="evidence (POST /attachments) for large changes"
    )


class AskDecision(BaseModel):
    """The bureau's decision on an answer: accept (approve the filing, or accept the contest) or reject, saying why."""

    accept: bool
    note: Text = ""


class AskWithdrawal(BaseModel):
    note: Text = ""


class AskPublic(BaseModel):
    id: int
    table: str
    row_id: int
    subject: str = Field(description="the manifest's number, or the declaration's category and year")
    enterprise_id: int
    party: str | None
    year: int
    fields: list[str]
    reason: str
    due_on: date
    status: Status
    overdue: bool
    asked_by: int | None
    asked_at: datetime
    answered_by: int | None
    answered_at: datetime | None
    answer: str | None
    correction_id: int | None
    correction_status: str | None
    decided_by: int | None
    decided_at: datetime | None
    decision_note: str | None


class AsksPage(BaseModel):
    data: list[AskPublic]
    count: int


def public(view: AskView) -> AskPublic:
    """The API view of an ask."""
    a = view.ask
    return AskPublic(
        id=a.id or 0,
        table=a.table_name,
        row_id=a.row_id,
        subject=view.subject,
        enterprise_id=a.enterprise_id,
        party=a.party,
        year=a.year,
        fields=list(a.fields),
        reason=a.reason,
        due_on=a.due_on,
        status=view.status,
        overdue=view.overdue,
        asked_by=a.asked_by,
        asked_at=a.asked_at,
        answered_by=a.answered_by,
        answered_at=a.answered_at,
        answer=a.answer,
        correction_id=a.correction_id,
        correction_status=view.correction.status if view.correction else None,
        decided_by=a.decided_by,
        decided_at=a.decided_at,
        decision_note=a.decision_note,
    )


def _one(session: Any, principal: Any, ask_id: int) -> AskPublic:
    return public(correction_asks.get_ask(session=session, principal=principal, ask_id=ask_id, now=utcnow()))


@router.post("/correction-asks", response_model=AskPublic, status_code=201)
def create(body: AskCreate, session: SessionDep, principal: PrincipalDep) -> AskPublic:
    """Ask the enterprise that owns the fields to correct them (bureaus over that enterprise); it is notified."""
    ask = correction_asks.ask_correction(
        session=session,
        principal=principal,
        table=body.table,
        row_id=body.row_id,
        fields=list(body.fields),
        reason=body.reason,
        due_on=body.due_on,
        now=utcnow(),
    )
    session.commit()
    return _one(session, principal, ask.id or 0)


@router.get("/correction-asks", response_model=AsksPage)
def list_(
    session: SessionDep,
    principal: PrincipalDep,
    state: Annotated[list[Status] | None, Query(max_length=6)] = None,
    overdue: bool | None = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=correction_asks.MAX_PAGE)] = 50,
) -> AsksPage:
    """Asks in the caller's scope (an enterprise: those sent to it), newest first; by status, and overdue or not."""
    rows, count = correction_asks.list_asks(
        session=session,
        principal=principal,
        now=utcnow(),
        statuses=tuple(state or ()),
        overdue=overdue,
        offset=offset,
        limit=limit,
    )
    return AsksPage(data=[public(v) for v in rows], count=count)


@router.get("/correction-asks/{ask_id}", response_model=AskPublic)
def read(ask_id: Id, session: SessionDep, principal: PrincipalDep) -> AskPublic:
    """One ask, with its status and the correction it was answered with."""
    return _one(session, principal, ask_id)


@router.post("/correction-asks/{ask_id}/answer", response_model=AskPublic)
def answer(
    ask_id: Id, body: AskAnswer, session: SessionDep, principal: PrincipalDep, tolerance: ToleranceDep
) -> AskPublic:
    """File the correction asked for (it waits for the bureau's decision) or contest the ask (the enterprise asked)."""
    correction_asks.answer_ask(
        session=session,
        principal=principal,
        ask_id=ask_id,
        contest=body.action == "contest",
        values=body.values,
        reason=body.reason,
        now=utcnow(),
        attachment_ids=body.attachment_ids,
        tolerance=tolerance,
    )
    session.commit()
    return _one(session, principal, ask_id)


@router.post("/correction-asks/{ask_id}/decide", response_model=AskPublic)
def decide(ask_id: Id, body: AskDecision, session: SessionDep, principal: PrincipalDep) -> AskPublic:
    """Accept or reject the answer: a filed correction is applied or refused; a contest closes or reopens the ask."""
    correction_asks.decide_ask(
        session=session, principal=principal, ask_id=ask_id, accept=body.accept, note=body.note, now=utcnow()
    )
    session.commit()
    return _one(session, principal, ask_id)


@router.post("/correction-asks/{ask_id}/withdraw", response_model=AskPublic)
def withdraw(ask_id: Id, body: AskWithdrawal, session: SessionDep, principal: PrincipalDep) -> AskPublic:
    """Withdraw an ask not yet answered (the bureau); the record is no longer under correction."""
    correction_asks.withdraw_ask(session=session, principal=principal, ask_id=ask_id, note=body.note, now=utcnow())
    session.commit()
    return _one(session, principal, ask_id)
