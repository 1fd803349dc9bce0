"""Batch logging for enterprise users: the form, dispatch, receipt and rejection, and the list of batches."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from app import downloads
from app import years as year_memory
from app.api_revisions import ToleranceDep, stored_evidence, tolerance_of
from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.errors import status_for
from app.files import FileStoreDep
from app.i18n import LanguageDep, field_label, local_name, say, translate
from app.params import Id
from app.web import beijing, is_fragment_request, render
from flows.access.locks import lock_for
from flows.kernel.bounds import MAX_ID, MAX_TEXT, check_text
from flows.kernel.clock import CST
from flows.kernel.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, PeriodLocked
from flows.kernel.messages import Message, Term
from flows.kernel.principal import Principal
from flows.pages import asks as ask_pages
from flows.pages import batches as pages
from flows.pages import exports
from flows.pages.batches import BatchForm, BatchQuery, Problem
from flows.pages.years import choose
from flows.waste import corrections, late_filings, manifests
from flows.waste.revisions import Tolerance
from models import Enterprise, Manifest, ManifestSource, WasteCategory
from models.enums import ManifestStatus, Route, TransportMode, UserRole, Weighing

router = APIRouter(include_in_schema=False)

# Which form field a domain error names (flows.waste.manifests speaks of columns; the form of fields).
FIELD_OF = {
    "receiver_id": "receiver",
    "receiver_uscc": "receiver",
    "carrier_id": "carrier",
    "carrier_uscc": "carrier",
    "category_code": "category",
    "weight_dispatched_t": "weight",
    "weight_dispatched_kg": "weight",
    "weight_received_t": "weight_received",
    "weight_received_kg": "weight_received",
    "rejected_t": "rejected",
    "rejected_kg": "rejected",
    "attachment_ids": "file",
}
DEFAULT_DESCENDING = {"date": True, "weight": True, "number": False, "status": False}


# ---- Wording ----------------------------------------------------------------------------------------------------


def exact_tonnes(value: float | Decimal | None) -> str:
    """A weight to the kilogram, as a form takes it and its refusals quote it (pages print `app.numbers.tonnes`)."""
    if value is None:
        return "–"
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    # A true minus sign, as in print; "-0" is what rounding leaves of a tiny negative gap.
    return "0" if text == "-0" else text.replace("-", "\u2212")


def problem_text(lang: str, problem: Problem) -> str:
    """A problem worded in the user's language, naming the field."""
    # A refusal of the domain travels as the error itself: worded here, in the reader's language.
    params = {k: say(lang, v) if isinstance(v, (DomainError, Message)) else v for k, v in problem.params.items()}
    params = {
        k: exact_tonnes(v) if isinstance(v, Decimal) else translate(lang, v) if isinstance(v, Term) else v
        for k, v in params.items()
    }
    if "region_zh" in params:
        params["region"] = local_name(lang, params.pop("region_zh"), params.pop("region_en", None))
    if "status" in params:
        params["status"] = translate(lang, f"batches.status.{params['status']}")
    if "step" in params:
        params["step"] = translate(lang, f"batches.step.{params['step']}")
    message = translate(lang, f"batches.problem.{problem.code}", **params)
    label = translate(lang, f"batches.field.{problem.field}")
    return translate(lang, "batches.problem.format", field=label, message=message)


# The writer's refusals of a forwarding's sources, worded for the form: the lot by its number, weights in tonnes
# (the writer's own message speaks of the new manifest by an id the form never shows).
CHAIN_PROBLEMS = {
    "waste.chain.overdrawn": "chain_overdrawn",
    "waste.chain.no_source": "chain_no_source",
    "waste.chain.source_elsewhere": "chain_no_source",
    "waste.chain.source_twice": "chain_twice",
    "waste.chain.source_not_a_lot": "chain_not_a_lot",
    "waste.chain.source_category": "chain_category",
    "waste.chain.source_not_received": "chain_not_received",
    "waste.chain.cycle": "chain_cycle",
}


def _chain_params(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"source": str(params.get("source", ""))}
    for name in ("kg", "left"):
        if name in params:
            out[f"{name}_t"] = Decimal(int(params[name])) / 1000
    if "route" in params:
        out["route"] = Term(f"batches.route.{params['route']}")
    for name in ("category", "expected"):
        if name in params:
            out[name] = str(params[name])
    return out


def _domain_problem(session: Session, exc: DomainError, batch: Manifest | None, step: str) -> Problem:
    """A refused write as a problem the page can word (the domain's message stays the detail of last resort)."""
    if isinstance(exc, PeriodLocked):
        lock = None
        if batch is not None:
            for enterprise_id in (batch.shipper_id, batch.receiver_id):
                lock = lock or lock_for(session=session, enterprise_id=enterprise_id, year=batch.year)
        if lock is not None:
            zh, en = pages.lock_region_name(session=session, adcode=lock.region_adcode)
            return Problem("year", "locked", {"year": lock.year, "region_zh": zh, "region_en": en})
        return Problem("year", "domain", {"detail": exc})
    if isinstance(exc, Conflict) and exc.field == "status" and batch is not None:
        return Problem("status", "wrong_state", {"status": str(batch.status), "step": step})
    if isinstance(exc, Conflict) and exc.field == "idempotency_key":
        return Problem("form", "idempotency", {})
    if isinstance(exc, Forbidden):
        return Problem("actor", "forbidden", {"step": step})
    field = exc.field or "form"
    if field == "sources" and exc.code in CHAIN_PROBLEMS:
        return Problem("sources", CHAIN_PROBLEMS[exc.code], _chain_params(exc.params))
    if field.startswith("sources"):
        field = "sources"  # a lot's tonnes refused by the writer (sources.0.weight_t): the form's one field
    return Problem(FIELD_OF.get(field, field), "domain", {"detail": exc})


# ---- The list ---------------------------------------------------------------------------------------------------

LIST_PARAMS = (
    "direction",
    "status",
    "category",
    "route",
    "year",
    "q",
    "shipper",
    "receiver",
    "party",
    "shipper_region",
    "receiver_region",
    "region",
    "park",
    "sort",
    "order",
    "page",
)
ID_PARAMS = ("shipper", "receiver", "party", "park")
REGION_PARAMS = ("shipper_region", "receiver_region", "region")


def _list_query(
    raw: dict[str, str], principal: Principal, categories: set[str]
) -> tuple[BatchQuery, dict[str, Problem]]:
    """The list's query parameters, checked: a bad value is named and left out of the query."""
    problems: dict[str, Problem] = {}
    values: dict[str, Any] = {}
    direction = raw.get("direction", "") or "all"
    if direction not in ("all", "in", "out") or (direction != "all" and principal.role is not UserRole.enterprise):
        problems["direction"] = Problem("direction", "bad_choice", {"value": direction})
    else:
        values["direction"] = direction
    if status := raw.get("status"):
        if status in ManifestStatus.__members__:
            values["status"] = ManifestStatus(status)
        else:
            problems["status"] = Problem("status", "bad_choice", {"value": status})
    if category := raw.get("category"):
        if category in categories:
            values["category"] = category
        else:
            problems["category"] = Problem("category", "unknown_category", {"code": category})
    if route := raw.get("route"):
        if route in Route.__members__:
            values["route"] = Route(route)
        else:
            problems["route"] = Problem("route", "unknown_route", {"route": route})
    if year := raw.get("year"):
        if year.isdigit() and 2000 <= int(year) <= 2100:
            values["year"] = int(year)
        else:
            problems["year"] = Problem("year", "bad_year", {"value": year})
    if text := raw.get("q", "").strip():
        values["text"] = text[:100]
    for name in ID_PARAMS:
        if value := raw.get(name):
            # An id: digits within the ids' range (a longer number would overflow the database's integer).
            if value.isdigit() and len(value) <= 10 and 1 <= int(value) <= MAX_ID:
                values[name] = int(value)
            else:
                problems[name] = Problem(name, "bad_choice", {"value": value})
    for name in REGION_PARAMS:
        if value := raw.get(name):
            # A GB/T 2260 code of Sichuan: the province, a prefecture or a county.
            if len(value) == 6 and value.isdigit() and value.startswith("51"):
                values[name] = value
            else:
                problems[name] = Problem(name, "bad_choice", {"value": value})
    sort = raw.get("sort") or "date"
    if sort in pages.SORT_KEYS:
        values["sort"] = sort
    else:
        problems["sort"] = Problem("sort", "bad_choice", {"value": sort})
        sort = "date"
    order = raw.get("order") or ("desc" if DEFAULT_DESCENDING[sort] else "asc")
    if order in ("asc", "desc"):
        values["descending"] = order == "desc"
    else:
        problems["order"] = Problem("order", "bad_choice", {"value": order})
    page = raw.get("page") or "1"
    if page.isdigit() and len(page) <= 6 and int(page) >= 1:
        values["page"] = int(page)
    else:
        problems["page"] = Problem("page", "bad_page", {"value": page})
    return BatchQuery(**values), problems


def _categories(session: Session) -> list[WasteCategory]:
    return list(session.exec(select(WasteCategory).order_by(col(WasteCategory.code))).all())


def _list_url(current: dict[str, str], **changes: Any) -> str:
    merged = {**current, **{k: str(v) for k, v in changes.items() if v is not None}}
    # An empty year stays in the URL: it is the reader's choice of every year, which a remembered year must not undo.
    kept = {k: v for k, v in merged.items() if (v or k == "year") and k in LIST_PARAMS}
    query = {k: v for k, v in kept.items() if not (k == "page" and v == "1")}
    return "/batches" + (f"?{urlencode(query)}" if query else "")


def _sort_links(current: dict[str, str], query: BatchQuery) -> dict[str, dict[str, str]]:
    links = {}
    for key in pages.SORT_KEYS:
        active = query.sort == key
        descending = not query.descending if active else DEFAULT_DESCENDING[key]
        links[key] = {
            "href": _list_url(current, sort=key, order="desc" if descending else "asc", page=1),
            "aria": ("descending" if query.descending else "ascending") if active else "none",
        }
    return links


@router.get("/batches", name="batches")
def batches_page(request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep) -> Response:
    """The viewer's batches: an enterprise's own (shipped and received); a bureau's or park's scope, read-only."""
    categories = _categories(session)
    raw = {k: v for k, v in request.query_params.items() if k in LIST_PARAMS}
    years = pages.batch_years(session=session, principal=principal)
    if "year" not in raw and (kept := year_memory.remembered(request)) is not None:
        # No year asked: the one chosen on another page, where the scope has batches of it; else every year.
        if choose(years, None, kept, 0) == kept:
            raw["year"] = str(kept)
    query, problems = _list_query(raw, principal, {c.code for c in categories})
    if (fmt := downloads.wanted(request)) and not problems:
        table = exports.batches_table(session=session, principal=principal, query=query, lang=lang)
        return downloads.response(table, lang, fmt)
    counts = pages.batch_counts(session=session, principal=principal)
    result = pages.list_batches(session=session, principal=principal, query=query, counts=counts)
    current = {**raw, "sort": query.sort, "order": "desc" if query.descending else "asc"}
    context = {
        "q": query,
        "raw": raw,
        "result": result,
        "problems": {f: problem_text(lang, p) for f, p in problems.items()},
        "counts": counts,
        "years": years,
        "categories": categories,
        "routes": list(Route),
        "statuses": list(ManifestStatus),
        "is_enterprise": principal.role is UserRole.enterprise,
        "fragment": is_fragment_request(request),
        "narrowed": pages.narrowing(session=session, query=query),
        "sort_links": _sort_links(current, query),
        "prev_href": _list_url(current, page=result.page - 1) if result.page > 1 else None,
        "next_href": _list_url(current, page=result.page + 1) if result.page < result.pages else None,
        "list_url": lambda **kw: _list_url({}, **kw),
        "beijing": beijing,
        "downloads": downloads.links(request),
    }
    return render(request, "batches.html", context, lang=lang, block="results", status_code=422 if problems else 200)


# ---- The form ---------------------------------------------------------------------------------------------------


def _ensure_logger(principal: Principal) -> int:
    """Batches are logged by the shipper's own account; others (administrators too) use the API or an import."""
    if principal.role is not UserRole.enterprise or principal.enterprise_id is None:
        raise Forbidden("waste.page_enterprise_only")
    return principal.enterprise_id


SOURCE_ROWS = 50  # rows of sources the form takes; a forwarding from more lots goes through the API or an import


def _source_rows(data: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The source rows as typed (number, tonnes), up to the last one with anything in it."""
    rows = [(data.get(f"source_number_{i}", ""), data.get(f"source_tonnes_{i}", "")) for i in range(SOURCE_ROWS)]
    while rows and not (rows[-1][0].strip() or rows[-1][1].strip()):
        rows.pop()
    return tuple(rows)


def _rows_shown(data: dict[str, str], *, more: bool = False) -> int:
    """How many source rows the form shows: those filled, one or two empty, one more when asked."""
    asked = data.get("source_rows", "")
    shown = int(asked) if asked.isdigit() else 2
    shown = max(shown, len(_source_rows(data)), 2) + (1 if more else 0)
    return min(shown, SOURCE_ROWS)


def _form_of(data: dict[str, str]) -> BatchForm:
    return BatchForm(
        receiver_id=data.get("receiver_id", ""),
        receiver_q=data.get("receiver_q", ""),
        carrier_id=data.get("carrier_id", ""),
        carrier_q=data.get("carrier_q", ""),
        category=data.get("category", ""),
        route=data.get("route", ""),
        weight=data.get("weight", ""),
        unit=data.get("unit", "t") or "t",
        dispatched_at=data.get("dispatched_at", ""),
        dispatch=data.get("action") in ("dispatch", "late"),
        vehicle_plate=data.get("vehicle_plate", ""),
        transport_mode=data.get("transport_mode", ""),
        packaging=data.get("packaging", ""),
        weighing=data.get("weighing", ""),
        sources=_source_rows(data),
    )


async def _form_data(request: Request) -> dict[str, str]:
    """The posted form's text fields; reading the body is the only async part of a page's write.

    Each is refused (422, naming it) when no column could hold it: longer than its column, or with a NUL.
    """
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    for name, value in data.items():
        check_text(value, field=name, max_length=FORM_LIMITS.get(name, MAX_TEXT))
    return data


# The longest a form field may be: the column it is stored in (every other field: any free text).
FORM_LIMITS = {"rejection_reason": 512, "cancel_reason": 512}


# The handlers that take it are plain functions: FastAPI runs them in the thread pool, so their database work
# never holds up the event loop.
FormDep = Annotated[dict[str, str], Depends(_form_data)]


def _options(
    session: Session, field: str, text: str, chosen: str, exclude: int | None
) -> tuple[list[pages.Suggestion], int | None]:
    """The suggestions under a party field, with the chosen one among them (first if the text no longer finds it)."""
    lookup = pages.lookup_party(session=session, text=text, field_name=field, exclude=exclude)
    suggestions = list(lookup.suggestions)
    chosen_id = int(chosen) if chosen.isdigit() else None
    if chosen_id is None and lookup.resolved is not None:
        chosen_id = lookup.resolved.id
    if chosen_id is not None and all(s.id != chosen_id for s in suggestions):
        e = session.get(Enterprise, chosen_id)
        if e is not None and e.id is not None and e.id != exclude:
            suggestions.insert(0, pages.Suggestion(e.id, e.uscc, e.name_zh, e.name_en))
        else:
            chosen_id = None
    return suggestions, chosen_id


def _form_context(
    session: Session,
    lang: str,
    shipper_id: int | None,
    data: dict[str, str],
    problems: dict[str, Problem],
    *,
    batch: Manifest | None = None,
    key: str = "",
    more_rows: bool = False,
) -> dict[str, Any]:
    parties = {}
    for field in ("receiver", "carrier"):
        suggestions, chosen = _options(
            session,
            field,
            data.get(f"{field}_q", ""),
            data.get(f"{field}_id", ""),
            shipper_id if field == "receiver" else None,
        )
        parties[field] = {"suggestions": suggestions, "chosen": chosen, "q": data.get(f"{field}_q", "")}
    return {
        "data": data,
        "parties": parties,
        "problems": {f: problem_text(lang, p) for f, p in problems.items()},
        "problem_list": [(p.field, problem_text(lang, p)) for p in problems.values()],
        "categories": _categories(session),
        "routes": list(Route),
        "batch": batch,
        "idempotency_key": key,
        "now_local": utcnow().astimezone(CST).strftime("%Y-%m-%dT%H:%M"),
        "transport_modes": list(TransportMode),
        "weighings": list(Weighing),
        "handover_limits": pages.HANDOVER_LIMITS,
        "source_rows": _rows_shown(data, more=more_rows),
        "bad_source_row": _bad_source_row(data, problems.get("sources")),
        "held_lots": pages.held_lots(session=session, shipper_id=shipper_id) if shipper_id and batch is None else [],
        "kept": _kept(session, batch) if batch is not None else None,
    }


def _bad_source_row(data: dict[str, str], problem: Problem | None) -> int | None:
    """The row of the sources a refusal names (by its position, or by the lot's number), to mark it."""
    if problem is None:
        return None
    if "row" in problem.params:
        return int(problem.params["row"]) - 1
    detail = problem.params.get("detail")
    named = str(
        problem.params.get("source") or (detail.params.get("source", "") if isinstance(detail, DomainError) else "")
    )
    for i, (number, _) in enumerate(_source_rows(data)):
        if named and number.strip().upper() == named:
            return i
    return None


def _kept(session: Session, batch: Manifest) -> dict[str, Any]:
    """What a logged batch keeps as it was logged: its handover fields and the lots it came from, to show read-only."""
    s = ManifestSource.__table__.c  # type: ignore[attr-defined]
    sources = session.execute(
        select(col(Manifest.number), s.weight_t)
        .join(Manifest, col(Manifest.id) == s.source_id)
        .where(s.manifest_id == batch.id)
        .order_by(col(Manifest.number))
    ).all()
    return {
        "vehicle_plate": batch.vehicle_plate,
        "transport_mode": str(batch.transport_mode) if batch.transport_mode else None,
        "packaging": batch.packaging,
        "weighing": str(batch.weighing) if batch.weighing else None,
        "sources": [(number, weight) for number, weight in sources],
    }


@router.get("/batches/new", name="batch_new")
def batch_new(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    late: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """The logging form: receiver, category, route, weight; saved as a draft or dispatched at once."""
    shipper = _ensure_logger(principal)
    # A key minted with the form: a double submit (or a retry after a lost answer) finds the batch made first.
    context = _form_context(session, lang, shipper, {"unit": "t"}, {}, key=secrets.token_urlsafe(18))
    context["late_filed"] = late
    return render(request, "batch_form.html", context, lang=lang, block="form")


def _redirect(request: Request, url: str) -> Response:
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.post("/batches/new")
def batch_create(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, data: FormDep
) -> Response:
    """Create the batch (a draft, or dispatched when asked); every wrong field is named and nothing is saved."""
    shipper = _ensure_logger(principal)
    key = data.get("idempotency_key", "")[:128] or secrets.token_urlsafe(18)
    if data.get("action") == "add_source":
        # One more row of sources: the form again as typed, nothing checked or saved yet.
        context = _form_context(session, lang, shipper, data, {}, key=key, more_rows=True)
        return render(request, "batch_form.html", context, lang=lang, block="form")
    form = _form_of(data)
    now = utcnow()
    checked = pages.check_batch_form(session=session, form=form, shipper_id=shipper, now=now)
    problems = dict(checked.problems)
    status = 422
    late = data.get("action") == "late" and _locked_only(problems)
    if late:
        # The lock is why it is late, not a fault of the batch: only the reason is asked for in its place.
        problems.pop("dispatched_at")
        if not data.get("late_reason", "").strip():
            problems["late_reason"] = Problem("late_reason", "late_reason")
    if not problems:
        assert checked.receiver is not None and checked.weight_t is not None
        body: dict[str, Any] = {
            "receiver_id": checked.receiver.id,
            "carrier_id": checked.carrier.id if checked.carrier else None,
            "category_code": form.category,
            "route": form.route,
            "weight_dispatched_t": checked.weight_t,
            "idempotency_key": key,
            **{name: value for name, value in checked.handover.items() if value is not None},
            "sources": checked.sources,
        }
        if form.dispatch:
            body["dispatched_at"] = checked.dispatched_at or now
        if late:
            return _file_late(request, session, lang, principal, shipper, data, body, now)
        try:
            manifest = manifests.parse_manifest(body)
            batch, _new = manifests.create_manifest(session=session, principal=principal, manifest=manifest, now=now)
            session.commit()
            # A retried key returns the batch the first attempt made: say what it is, not what this attempt asked.
            done = "dispatch" if ManifestStatus(batch.status) is ManifestStatus.dispatched else "create"
            return _redirect(request, f"/batches/{batch.id}?done={done}")
        except (InvalidInput, Conflict, PeriodLocked) as exc:
            session.rollback()
            problem = _domain_problem(session, exc, None, "create")
            problems[problem.field] = problem
            status = status_for(exc)
    context = _form_context(session, lang, shipper, data, problems, key=key)
    if _locked_only(checked.problems):
        lock = checked.problems["dispatched_at"].params
        region = local_name(lang, lock["region_zh"], lock["region_en"])
        context["late_offer"] = translate(lang, "batches.form.late_help", year=lock["year"], region=region)
    return render(request, "batch_form.html", context, lang=lang, block="form", status_code=status)


def _locked_only(problems: dict[str, Problem]) -> bool:
    """The form is refused for the locked year alone, so it may go on as a late filing."""
    return list(problems) == ["dispatched_at"] and problems["dispatched_at"].code == "locked_new"


def _file_late(
    request: Request,
    session: Session,
    lang: str,
    principal: Principal,
    shipper: int | None,
    data: dict[str, str],
    body: dict[str, Any],
    now: datetime,
) -> Response:
    """Hold the batch as a late filing for a bureau to approve; the form again, with the refusal, if it is refused."""
    try:
        filed = corrections.request_correction(
            session=session,
            principal=principal,
            table=late_filings.MANIFEST,
            payload=body,
            reason=data.get("late_reason", ""),
            now=now,
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        problem = _domain_problem(session, exc, None, "create")
        context = _form_context(session, lang, shipper, data, {problem.field: problem}, key=body["idempotency_key"])
        return render(request, "batch_form.html", context, lang=lang, block="form", status_code=status_for(exc))
    return _redirect(request, f"/batches/new?late={filed.id}")


@router.post("/batches/new/check", name="batch_check")
def batch_check(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, data: FormDep
) -> Response:
    """Check one field of the form as the user types: its error (or nothing), and what it resolved to."""
    shipper = _ensure_logger(principal)
    field = data.get("field", "")
    if field not in pages.FORM_FIELDS:
        raise InvalidInput("waste.one_of", field="field", column="field", choices=", ".join(pages.FORM_FIELDS))
    form = _form_of(data)
    if field == "dispatched_at":
        form = BatchForm(**{**form.__dict__, "dispatch": True})
    checked = pages.check_batch_form(session=session, form=form, shipper_id=shipper, now=utcnow())
    problem = checked.problems.get(field)
    note = ""
    if problem is None and field in ("receiver", "carrier"):
        party = checked.receiver if field == "receiver" else checked.carrier
        if party is not None:
            note = translate(lang, "batches.form.chosen", name=local_name(lang, party.name_zh, party.name_en))
    if problem is None and field == "weight" and checked.weight_t is not None and form.unit == "kg":
        note = translate(lang, "batches.form.in_tonnes", weight=exact_tonnes(checked.weight_t))
    context = {"message": problem_text(lang, problem) if problem else "", "field": field, "note": note}
    return render(request, "_batch_check.html", context, lang=lang, block="check")


@router.post("/batches/new/search", name="batch_search")
def batch_search(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, data: FormDep
) -> Response:
    """Directory matches for what is typed in the receiver (or carrier) field: names and credit codes only."""
    shipper = _ensure_logger(principal)
    field = data.get("field", "receiver")
    if field not in ("receiver", "carrier"):
        raise InvalidInput("waste.receiver_or_carrier", field="field", column="field")
    text = data.get(f"{field}_q", data.get("q", ""))
    lookup = pages.lookup_party(
        session=session, text=text, field_name=field, exclude=shipper if field == "receiver" else None
    )
    context = {
        "field": field,
        "q": text.strip(),
        "suggestions": lookup.suggestions,
        "chosen": lookup.resolved.id if lookup.resolved else None,
        "message": problem_text(lang, lookup.problem) if lookup.problem else "",
        "oob": True,
    }
    return render(request, "_batch_party.html", context, lang=lang, block="options")


# ---- One batch --------------------------------------------------------------------------------------------------


def _tolerance(request: Request) -> Tolerance:
    return tolerance_of(request.app.state.settings)


def _detail_context(
    session: Session,
    principal: Principal,
    lang: str,
    batch_id: int,
    *,
    done: str | None = None,
    problems: dict[str, Problem] | None = None,
    failed: str | None = None,
    data: dict[str, str] | None = None,
    tolerance: Tolerance | None = None,
) -> dict[str, Any]:
    d = pages.batch_detail(session=session, principal=principal, batch_id=batch_id)
    status = d.row.status
    reached = {
        "created": True,
        "dispatched": d.batch.dispatched_at is not None,
        "closed": status
        in (ManifestStatus.received, ManifestStatus.rejected, ManifestStatus.corrected, ManifestStatus.cancelled),
    }
    # In a locked year only a correction request can be made; a correction needs a weight of the viewer's side.
    offered = [a for a in d.actions if (a != "correct" or d.correctable) and (d.lock is None or a == "correct")]
    return {
        "d": d,
        "offered": offered,
        "row": d.row,
        "reached": reached,
        "done": done if done in ("create", "correction_requested", *pages.PAGE_STEPS) else None,
        "problems": {f: problem_text(lang, p) for f, p in (problems or {}).items()},
        "failed": failed,
        "data": data or {},
        "is_bureau": principal.role in (UserRole.bureau, UserRole.admin),
        "evidence_tolerance": tolerance,
        "now_local": utcnow().astimezone(CST).strftime("%Y-%m-%dT%H:%M"),
        "beijing": beijing,
        "label": partial(field_label, lang),
        "tolerance": f"{float(manifests.WEIGHT_TOLERANCE * 100):g}",
        "chain": pages.batch_chain(session=session, principal=principal, batch=d.batch),
        "asks": ask_pages.open_asks(session=session, table="transfer_batch", row_ids=[batch_id]).get(batch_id, []),
        "can_ask": principal.role in (UserRole.bureau, UserRole.admin) and "correct" in manifests.next_steps(status),
    }


@router.get("/batches/{batch_id}", name="batch")
def batch_page(
    request: Request, batch_id: Id, session: SessionDep, lang: LanguageDep, principal: PrincipalDep
) -> Response:
    """One batch: its parties, weights shipped and received with the gap, its steps, and what the viewer may do now."""
    done = request.query_params.get("done")
    context = _detail_context(session, principal, lang, batch_id, done=done, tolerance=_tolerance(request))
    return render(request, "batch.html", context, lang=lang, block="batch")


def _act(
    request: Request,
    data: dict[str, str],
    session: Session,
    principal: Principal,
    lang: str,
    batch_id: int,
    step: str,
    run: Any,
) -> Response:
    """Take one step from a page form: the batch again with a confirmation, or with the reason it was refused.

    `run` answers the problems with the input, or nothing when the step was taken (or the name of what was done
    when it differs from the step, as for a correction that a locked year turns into a request).
    """
    batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
    now = utcnow()
    try:
        # Who and when before what: the party and the state are checked before the input is.
        if step not in pages.available_actions(principal, batch):
            if ManifestStatus(batch.status) not in manifests.STEPS[step].from_status:
                state = Term(f"waste.status.{ManifestStatus(batch.status).value}")
                raise Conflict("waste.manifest_status", field="status", number=batch.number, status=state)
            raise Forbidden("waste.step_not_for_account", step=Term(f"waste.step.{step}"), number=batch.number)
        outcome = run(batch, data, now)
        if not isinstance(outcome, dict) or not outcome:
            session.commit()
            done = outcome if isinstance(outcome, str) else step
            if not is_fragment_request(request):
                return RedirectResponse(f"/batches/{batch_id}?done={done}", status_code=303)
            context = _detail_context(session, principal, lang, batch_id, done=done, tolerance=_tolerance(request))
            return render(request, "batch.html", context, lang=lang, block="batch")
        problems = outcome
        status = 422
    except NotFound:
        raise
    except DomainError as exc:
        session.rollback()
        session.expire_all()
        batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
        problem = _domain_problem(session, exc, batch, step)
        problems = {problem.field: problem}
        status = status_for(exc)
    session.rollback()
    context = _detail_context(
        session, principal, lang, batch_id, problems=problems, failed=step, data=data, tolerance=_tolerance(request)
    )
    return render(request, "batch.html", context, lang=lang, block="batch", status_code=status)


@router.post("/batches/{batch_id}/dispatch", name="batch_dispatch")
def batch_dispatch(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    data: FormDep,
) -> Response:
    """The shipper sends the batch off (now, or at the time given, Beijing time)."""

    def run(batch: Manifest, data: dict[str, str], now: datetime) -> dict[str, Problem]:
        at, problem = pages.parse_local_time(data.get("dispatched_at", ""), "dispatched_at", now)
        if problem:
            return {problem.field: problem}
        manifests.dispatch(session=session, principal=principal, batch_id=batch_id, at=at or now, now=now)
        return {}

    return _act(request, data, session, principal, lang, batch_id, "dispatch", run)


@router.post("/batches/{batch_id}/receive", name="batch_receive")
def batch_receive(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    data: FormDep,
) -> Response:
    """The receiver confirms the weight it weighed (t or kg); a refused part needs its amount and a reason."""

    def run(batch: Manifest, data: dict[str, str], now: datetime) -> dict[str, Problem]:
        reason = data.get("rejection_reason", "")
        problems, values = pages.check_receipt(
            batch=batch,
            weight=data.get("weight_received", ""),
            unit=data.get("unit", "t") or "t",
            rejected=data.get("rejected", ""),
            rejected_unit=data.get("rejected_unit", "t") or "t",
            reason=reason,
            received_at=data.get("received_at", ""),
            now=now,
        )
        if problems:
            return problems
        manifests.receive(
            session=session,
            principal=principal,
            batch_id=batch_id,
            weights={"weight_received_t": values["weight_received_t"], "rejected_t": values["rejected_t"]},
            at=values["received_at"] or now,
            now=now,
            rejection_reason=reason,
        )
        return {}

    return _act(request, data, session, principal, lang, batch_id, "receive", run)


@router.post("/batches/{batch_id}/reject", name="batch_reject")
def batch_reject(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    data: FormDep,
) -> Response:
    """The receiver refuses the whole batch, saying why."""

    def run(batch: Manifest, data: dict[str, str], now: datetime) -> dict[str, Problem]:
        reason = data.get("rejection_reason", "").strip()
        if not reason:
            return {"reject_reason": Problem("reject_reason", "required")}
        manifests.reject(session=session, principal=principal, batch_id=batch_id, reason=reason, at=now, now=now)
        return {}

    return _act(request, data, session, principal, lang, batch_id, "reject", run)


@router.post("/batches/{batch_id}/cancel", name="batch_cancel")
def batch_cancel(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    data: FormDep,
) -> Response:
    """The shipper withdraws a draft, or a batch not yet received, saying why."""

    def run(batch: Manifest, data: dict[str, str], now: datetime) -> dict[str, Problem]:
        reason = data.get("cancel_reason", "").strip()
        if not reason:
            return {"cancel_reason": Problem("cancel_reason", "required")}
        manifests.cancel(session=session, principal=principal, batch_id=batch_id, reason=reason, now=now)
        return {}

    return _act(request, data, session, principal, lang, batch_id, "cancel", run)


@router.post("/batches/{batch_id}/correct", name="batch_correct")
def batch_correct(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    data: FormDep,
    store: FileStoreDep,
    tolerance: ToleranceDep,
    file: Annotated[UploadFile | None, File(description="evidence: a weighbridge ticket, PDF or image")] = None,
) -> Response:
    """A party corrects its own weight of a closed batch, saying why; in a locked year the correction is filed
    for a bureau to approve, with evidence when the weight changes beyond the tolerance, and nothing changes until
    then."""

    def run(batch: Manifest, data: dict[str, str], now: datetime) -> dict[str, Problem] | str:
        what = data.get("what", "")
        allowed = pages.correctable_weights(principal, batch)
        problems: dict[str, Problem] = {}
        if what not in allowed:
            problems["what"] = Problem("what", "bad_choice", {"value": what})
        value, problem = pages.parse_weight(data.get("weight", ""), data.get("unit", "t") or "t", "correction_weight")
        if problem:
            problems[problem.field] = problem
        reason = data.get("reason", "").strip()
        if not reason:
            problems["correction_reason"] = Problem("correction_reason", "required")
        if problems:
            return problems
        changes = {f"{what}_t": value}
        locked = any(
            lock_for(session=session, enterprise_id=e, year=batch.year) for e in (batch.shipper_id, batch.receiver_id)
        )
        if locked:
            payload = {"batch_id": batch_id, "changes": changes, "reason": reason}
            evidence = stored_evidence(session=session, principal=principal, store=store, upload=file, now=now)
            corrections.request_correction(
                session=session,
                principal=principal,
                table="transfer_batch",
                payload=payload,
                reason=reason,
                now=now,
                attachment_ids=evidence,
                tolerance=tolerance,
            )
            return "correction_requested"
        manifests.correct(
            session=session, principal=principal, batch_id=batch_id, changes=changes, reason=reason, now=now
        )
        return {}

    return _act(request, data, session, principal, lang, batch_id, "correct", run)


# ---- Editing a draft --------------------------------------------------------------------------------------------


def _draft_of(session: Session, principal: Principal, batch_id: int) -> tuple[Manifest, int]:
    shipper = _ensure_logger(principal)
    batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
    if batch.shipper_id != shipper:
        raise Forbidden("waste.shipper_edits", number=batch.number)
    return batch, shipper


def _draft_data(session: Session, batch: Manifest) -> dict[str, str]:
    kept = _kept(session, batch)
    receiver = session.get(Enterprise, batch.receiver_id)
    carrier = session.get(Enterprise, batch.carrier_id) if batch.carrier_id else None
    return {
        "receiver_id": str(batch.receiver_id),
        "receiver_q": receiver.uscc if receiver else "",
        "carrier_id": str(batch.carrier_id or ""),
        "carrier_q": carrier.uscc if carrier else "",
        "category": batch.category_code,
        "route": str(batch.route),
        "weight": exact_tonnes(batch.weight_dispatched_t).replace(",", ""),
        "unit": "t",
        **{name: str(value) for name, value in kept.items() if name != "sources" and value},
        **{f"source_number_{i}": number for i, (number, _) in enumerate(kept["sources"])},
        **{
            f"source_tonnes_{i}": exact_tonnes(weight).replace(",", "")
            for i, (_, weight) in enumerate(kept["sources"])
            if weight is not None
        },
    }


@router.get("/batches/{batch_id}/edit", name="batch_edit")
def batch_edit(
    request: Request, batch_id: Id, session: SessionDep, lang: LanguageDep, principal: PrincipalDep
) -> Response:
    """The form again, filled with a draft, for its shipper to change before dispatch."""
    batch, shipper = _draft_of(session, principal, batch_id)
    context = _form_context(session, lang, shipper, _draft_data(session, batch), {}, batch=batch)
    # Past its draft the batch is sealed: the page says so and links back rather than offering a form.
    context["sealed"] = ManifestStatus(batch.status) is not ManifestStatus.draft
    return render(request, "batch_form.html", context, lang=lang, block="form")


@router.post("/batches/{batch_id}/edit")
def batch_update(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    data: FormDep,
) -> Response:
    """Save the changed draft; every wrong field is named and nothing is saved."""
    batch, shipper = _draft_of(session, principal, batch_id)
    if data.get("action") == "add_source":
        # One more row of sources: the form again as typed, nothing checked or saved yet.
        context = _form_context(session, lang, shipper, data, {}, batch=batch, more_rows=True)
        return render(request, "batch_form.html", context, lang=lang, block="form")
    form = BatchForm(**{**_form_of(data).__dict__, "dispatch": False})
    now = utcnow()
    checked = pages.check_batch_form(session=session, form=form, shipper_id=shipper, now=now)
    problems = dict(checked.problems)
    status = 422
    if not problems:
        assert checked.receiver is not None and checked.weight_t is not None
        changes = {
            "receiver_id": checked.receiver.id,
            "carrier_id": checked.carrier.id if checked.carrier else None,
            "category_code": form.category,
            "route": form.route,
            "weight_dispatched_t": checked.weight_t,
            **checked.handover,
            "sources": checked.sources,
        }
        try:
            manifests.update_draft(session=session, principal=principal, batch_id=batch_id, changes=changes, now=now)
            session.commit()
            return _redirect(request, f"/batches/{batch_id}?done=update")
        except DomainError as exc:
            if isinstance(exc, NotFound):
                raise
            session.rollback()
            batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
            problem = _domain_problem(session, exc, batch, "update")
            problems[problem.field] = problem
            status = status_for(exc)
    context = _form_context(session, lang, shipper, data, problems, batch=batch)
    return render(request, "batch_form.html", context, lang=lang, block="form", status_code=status)
