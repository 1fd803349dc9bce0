"""JSON API for audit flags and the work on them: list with status and filters, change, note, answer, bulk."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.params import IdQuery, Offset, checked_json
from app.scope import ScopeDep
from flows.kernel.bounds import MAX_DECLARED_T
from flows.waste import flag_work, flags
from flows.waste.flag_work import AnswerIn, BulkChange, EntryIn, EntryPublic, FlagChange, FlagStatus, WorkPage
from flows.waste.flags import Tolerances
from models import FlagWork

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["audit"])

Key = Annotated[str, Path(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$", description="the flag's key")]
Fraction = Annotated[float | None, Query(ge=0, le=1)]
Tonnes = Annotated[float | None, Query(ge=0, le=MAX_DECLARED_T)]


class WorkPublic(BaseModel):
    """A flag's work after a change."""

    key: str
    status: FlagStatus
    assignee_id: int | None
    reason: str | None
    version: int


class BulkResult(BaseModel):
    """The flags a bulk action changed (or left as they were asked to be)."""

    data: list[WorkPublic]
    count: int


def _public(work: FlagWork) -> WorkPublic:
    return WorkPublic(
        key=work.key,
        status=FlagStatus(work.status),
        assignee_id=work.assignee_id,
        reason=work.reason,
        version=work.version,
    )


@router.get("/flags", response_model=WorkPage)
def get_flags(
    session: SessionDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    kind: Annotated[
        list[str] | None, Query(description="flag kinds (repeat, or comma-separated)", max_length=50)
    ] = None,
    status: Annotated[
        list[str] | None, Query(description="open, under_review, resolved, dismissed (repeat or comma-separated)")
    ] = None,
    assignee_id: IdQuery = None,
    name: Annotated[
        str | None, Query(max_length=flag_work.MAX_NAME, description="part of an enterprise's name")
    ] = None,
    sort: Annotated[
        str | None, Query(pattern="^-?size$", description="size: largest tonnes first; -size: smallest")
    ] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    balance_abs_t: Tonnes = None,
    balance_rel: Fraction = None,
    weight_rel: Fraction = None,
    unmatched_abs_t: Tonnes = None,
    unmatched_rel: Fraction = None,
) -> WorkPage:
    """Audit flags of a scope with their status, assignee, notes and answers; filtered, sorted by size, paginated."""
    given = {
        "balance_abs_t": balance_abs_t,
        "balance_rel": balance_rel,
        "weight_rel": weight_rel,
        "unmatched_abs_t": unmatched_abs_t,
        "unmatched_rel": unmatched_rel,
    }
    every = flags.list_flags(
        session=session,
        principal=principal,
        year=year,
        scope=scope,
        kinds=kind,
        limit=None,
        tolerances=Tolerances(**{k: v for k, v in given.items() if v is not None}),
    )
    page = flag_work.filter_work(
        session=session,
        principal=principal,
        flags=every.data,
        filters=flag_work.WorkFilters(status=status, assignee_id=assignee_id, name=name, sort=sort),
        offset=offset,
        limit=limit,
        year=year,
    )
    # What the list was computed over, as the API has always said it.
    return page.model_copy(update={"scope": every.scope, "kinds": every.kinds, "tolerances": every.tolerances})


@router.patch("/flags/{key}", response_model=WorkPublic)
def change(key: Key, body: FlagChange, session: SessionDep, principal: PrincipalDep) -> WorkPublic:
    """Set a flag's status (dismissed needs a reason) or assignee (null unassigns); bureaus of its region."""
    work = flag_work.change_flag(session=session, principal=principal, key=key, change=body, now=utcnow())
    session.commit()
    return _public(work)


@router.post("/flags/bulk", response_model=BulkResult)
def bulk(body: BulkChange, session: SessionDep, principal: PrincipalDep) -> BulkResult:
    """One change over many flags (by key): all change, or none does and the refusal names the row."""
    done = flag_work.bulk_change(session=session, principal=principal, change=body, now=utcnow())
    session.commit()
    return BulkResult(data=[_public(w) for w in done], count=len(done))


@router.post("/flags/{key}/notes", response_model=EntryPublic, status_code=201)
def note(key: Key, body: EntryIn, session: SessionDep, principal: PrincipalDep) -> EntryPublic:
    """A bureau's note on a flag (read by bureaus only)."""
    entry = flag_work.add_note(session=session, principal=principal, key=key, text=body.text, now=utcnow())
    session.commit()
    return flag_work.entry_public(session, entry)


@router.post("/flags/{key}/answers", response_model=EntryPublic, status_code=201)
def answer(key: Key, body: AnswerIn, session: SessionDep, principal: PrincipalDep) -> EntryPublic:
    """The enterprise's answer to a flag on it, naming an evidence file uploaded first if any; its bureaus are told."""
    entry = flag_work.answer_flag(
        session=session, principal=principal, key=key, text=body.text, attachment_id=body.attachment_id, now=utcnow()
    )
    session.commit()
    return flag_work.entry_public(session, entry)
