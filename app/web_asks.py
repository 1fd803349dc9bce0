"""Pages of correction asks: the bureau's tabs, the enterprise's list, one ask with its answer and decision forms."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from app.api_revisions import ToleranceDep, stored_evidence, tolerance_of
from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.errors import status_for
from app.files import FileStoreDep
from app.i18n import LanguageDep, translate
from app.params import Id
from app.web import beijing, render
from app.web_audit import TABS
from app.web_batches import FormDep
from flows.kernel.bounds import MAX_ID, MAX_OFFSET, MAX_TEXT
from flows.kernel.errors import DomainError, InvalidInput
from flows.kernel.messages import Term
from flows.kernel.numbers import number_style
from flows.kernel.principal import Principal
from flows.pages import asks as pages
from flows.waste import correction_asks

router = APIRouter(include_in_schema=False)

TabQuery = Annotated[pages.Tab, Query()]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
Done = Annotated[str | None, Query(pattern="^(sent|filed|contested|decided|withdrawn)$")]
Note = Annotated[str, Form(max_length=MAX_TEXT)]
VALUE = "value."  # the answer form names each corrected value "value.<field>"


def _shown(lang: str, name: str, value: Any) -> str:
    """A field's value as the pages write it: tonnes, Beijing times, routes in words."""
    if value is None or value == "":
        return "–"
    if name.endswith("_at"):
        try:
            return beijing(datetime.fromisoformat(str(value)))
        except ValueError:
            return str(value)
    if name == "route":
        return translate(lang, f"batches.route.{value}")
    if name.endswith("_t"):
        try:
            return number_style(lang).tonnes(Decimal(str(value)))
        except InvalidOperation:
            return str(value)
    return str(value)


def _tools(lang: str) -> dict[str, Any]:
    return {
        "shown": partial(_shown, lang),
        "local_time": beijing,
        "tabs": TABS,
        "current_tab": "asks",
        "value_prefix": VALUE,
    }


@router.get("/audit/asks", name="audit_asks")
@router.get("/asks", name="asks")
def asks_list(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    tab: TabQuery = "sent",
    offset: Offset = 0,
) -> Response:
    """The correction asks by tab: sent (open), answered, overdue (due and unanswered), closed; /audit/asks is the
    bureau's tab of the audit workspace, /asks every reader's list (an enterprise: the asks sent to it)."""
    if request.url.path == "/audit/asks":
        correction_asks.require_auditor(principal)
    page = pages.asks_page(session=session, principal=principal, tab=tab, now=utcnow(), offset=offset)
    return render(request, "asks.html", {**_tools(lang), "p": page, "base": request.url.path}, lang=lang)


@router.get("/asks/new", name="ask_new")
def ask_form(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    table: Annotated[str, Query(max_length=32)],
    row_id: Annotated[int, Query(ge=1, le=MAX_ID)],
) -> Response:
    """The form to ask the owner of a manifest's or declaration's fields to correct them."""
    form = pages.new_ask(session=session, principal=principal, table=table, row_id=row_id, now=utcnow())
    return render(request, "ask_form.html", {**_tools(lang), "f": form, "data": {}}, lang=lang)


@router.post("/asks", name="ask_create")
def ask_create(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    table: Annotated[str, Form(max_length=32)],
    row_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    due_on: Annotated[str, Form(max_length=10)],
    reason: Note = "",
    fields: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006 - FastAPI copies form defaults
) -> Response:
    """Send the ask: the enterprise that owns the fields is notified; the record shows "under correction"."""
    now = utcnow()
    try:
        try:
            due = date.fromisoformat(due_on)
        except ValueError:
            first = correction_asks.today(now).isoformat()
            raise InvalidInput(
                "asks.bad_due",
                field="due_on",
                column=Term("asks.field.due_on"),
                first=first,
                days=correction_asks.MAX_DUE_DAYS,
            ) from None
        ask = correction_asks.ask_correction(
            session=session,
            principal=principal,
            table=table,
            row_id=row_id,
            fields=fields,
            reason=reason,
            due_on=due,
            now=now,
        )
        session.commit()
    except InvalidInput as exc:
        session.rollback()
        form = pages.new_ask(session=session, principal=principal, table=table, row_id=row_id, now=now)
        data = {"fields": fields, "reason": reason, "due_on": due_on}
        context = {**_tools(lang), "f": form, "data": data, "problem": exc}
        return render(request, "ask_form.html", context, lang=lang, status_code=status_for(exc))
    return RedirectResponse(f"/asks/{ask.id}?done=sent", status_code=303)


def _detail(request: Request, session: Any, principal: Principal, lang: str, ask_id: int, **extra: Any) -> Response:
    detail = pages.ask_detail(session=session, principal=principal, ask_id=ask_id, now=utcnow())
    problem = extra.get("problem")
    status = status_for(problem) if problem is not None else 200
    tolerance = tolerance_of(request.app.state.settings)
    context = {**_tools(lang), "d": detail, "evidence_tolerance": tolerance, **extra}
    return render(request, "ask.html", context, lang=lang, status_code=status)


@router.get("/asks/{ask_id}", name="ask")
def ask_page(
    request: Request, ask_id: Id, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, done: Done = None
) -> Response:
    """One ask: the fields asked for with their values now, the answer, and what the viewer may do next."""
    return _detail(request, session, principal, lang, ask_id, done=done, data={})


def _write(
    request: Request,
    session: Any,
    principal: Principal,
    lang: str,
    ask_id: int,
    done: str,
    step: Any,
    data: dict[str, Any],
) -> Response:
    """Take one step from a form: the ask again with a confirmation, or with the reason and the input refused."""
    try:
        step()
        session.commit()
    except DomainError as exc:
        session.rollback()
        return _detail(request, session, principal, lang, ask_id, problem=exc, data=data)
    return RedirectResponse(f"/asks/{ask_id}?done={done}", status_code=303)


@router.post("/asks/{ask_id}/answer", name="ask_answer")
def ask_answer(
    request: Request,
    ask_id: Id,
    data: FormDep,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    store: FileStoreDep,
    tolerance: ToleranceDep,
    file: Annotated[UploadFile | None, File(description="evidence: a weighbridge ticket, PDF or image")] = None,
) -> Response:
    """The enterprise files the corrected values (they wait for the bureau), with evidence for a change beyond the
    tolerance, or contests the ask, saying why."""
    contest = data.get("action") == "contest"
    values = {k.removeprefix(VALUE): v for k, v in data.items() if k.startswith(VALUE) and v.strip()}

    def step() -> None:
        now = utcnow()
        evidence = (
            [] if contest else stored_evidence(session=session, principal=principal, store=store, upload=file, now=now)
        )
        correction_asks.answer_ask(
            session=session,
            principal=principal,
            ask_id=ask_id,
            contest=contest,
            values=values,
            reason=data.get("reason", ""),
            now=now,
            attachment_ids=evidence,
            tolerance=tolerance,
        )

    return _write(request, session, principal, lang, ask_id, "contested" if contest else "filed", step, data)


@router.post("/asks/{ask_id}/decide", name="ask_decide")
def ask_decide(
    request: Request,
    ask_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    accept: Annotated[bool, Form()],
    note: Note = "",
) -> Response:
    """The bureau accepts the answer (applies the filed correction, or drops the ask) or rejects it, saying why."""

    def step() -> None:
        correction_asks.decide_ask(
            session=session, principal=principal, ask_id=ask_id, accept=accept, note=note, now=utcnow()
        )

    return _write(request, session, principal, lang, ask_id, "decided", step, {"note": note, "accept": accept})


@router.post("/asks/{ask_id}/withdraw", name="ask_withdraw")
def ask_withdraw(
    request: Request, ask_id: Id, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, note: Note = ""
) -> Response:
    """The bureau withdraws an ask that is not answered."""

    def step() -> None:
        correction_asks.withdraw_ask(session=session, principal=principal, ask_id=ask_id, note=note, now=utcnow())

    return _write(request, session, principal, lang, ask_id, "withdrawn", step, {"note": note})
