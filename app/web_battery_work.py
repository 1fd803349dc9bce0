"""Battery work pages: register a battery, and log the next event the state machine allows, through the same
writers as the API (flows.battery.chain); a refusal is shown at the field it names, and nothing is saved."""

from __future__ import annotations

import tempfile
from pathlib import Path as FilePath
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep, SettingsDep
from app.errors import status_for
from app.i18n import LanguageDep, field_label, say, translate
from app.params import CodePath
from app.web import render
from flows.battery import chain as battery
from flows.battery import columns
from flows.battery.code import normalise_battery_code
from flows.kernel.bounds import MAX_TEXT, check_size, check_text
from flows.kernel.clock import CST
from flows.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from flows.pages import batteries as pages
from models import Battery

router = APIRouter(include_in_schema=False)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Which form field a refusal of the writer names (the writer speaks of columns, the form of fields).
FIELD_OF = {
    "counterpart_uscc": "counterpart",
    "counterpart_id": "counterpart",
    "reporter": "form",
    "reporter_uscc": "form",
    "maker_uscc": "form",
    "attributes": "form",
    "reported_at": "occurred_at",
    "region_adcode": "place",
    "mass_t": "mass_kg",
}


async def _form_data(request: Request) -> dict[str, str]:
    """The posted form's text fields, each refused (422, naming it) when too long or holding a NUL."""
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    for name, value in data.items():
        check_text(value, field=name, max_length=MAX_TEXT)
    return data


FormDep = Annotated[dict[str, str], Depends(_form_data)]


def _ensure_worker(principal: Principal) -> int:
    if not pages.may_log(principal) or principal.enterprise_id is None:
        raise Forbidden("battery.page_enterprise_only")
    return principal.enterprise_id


def _redirect(request: Request, url: str) -> Response:
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _problem(lang: str, exc: DomainError, fields: tuple[str, ...], default: str = "form") -> tuple[str, str]:
    """The form field a refusal belongs to, and the refusal in the reader's language."""
    field = FIELD_OF.get(exc.field or "", exc.field or default)
    return (field if field in fields else default), say(lang, exc)


def _now_local() -> str:
    return utcnow().astimezone(CST).strftime("%Y-%m-%dT%H:%M")


# ---------------------------------------------------------------------------------------------------------------
# Registration


def _register_context(session: Session, principal: Principal, data: dict[str, str], problems: dict[str, str]) -> Any:
    return {
        "data": data,
        "problems": problems,
        "fields": pages.REGISTER_FIELDS,
        "allowed": pages.may_register(session=session, principal=principal),
        "now_local": _now_local(),
    }


@router.get("/batteries/new", name="battery_new")
def battery_new(request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep) -> Response:
    """The registration form: a battery's code, its parent's code, rated energy, mass and day of production."""
    _ensure_worker(principal)
    context = _register_context(session, principal, {}, {})
    return render(request, "battery_register.html", context, lang=lang, block="form")


@router.post("/batteries/new")
def battery_create(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, data: FormDep
) -> Response:
    """Register one battery through the API's writer; a refusal names its field and nothing is saved."""
    _ensure_worker(principal)
    row = {k: data[k].strip() for k in pages.REGISTER_FIELDS if data.get(k, "").strip()}
    try:
        saved = battery.register_battery(session=session, principal=principal, row=row, now=utcnow())
        session.commit()
    except DomainError as exc:
        session.rollback()
        # A part of the code (maker, battery type, production day ...) is the code's field.
        field, text = _problem(lang, exc, pages.REGISTER_FIELDS, "code")
        context = _register_context(session, principal, data, {field: text})
        return render(request, "battery_register.html", context, lang=lang, block="form", status_code=status_for(exc))
    return _redirect(request, f"/batteries/{saved.code}?done=registered")


# ---------------------------------------------------------------------------------------------------------------
# Events


def _event_fields(event: str) -> tuple[str, ...]:
    return ("type", "occurred_at", *pages.EVENT_FIELDS.get(event, ()), "place", "note")


def _event_context(
    session: Session,
    principal: Principal,
    lang: str,
    steps: pages.NextSteps,
    event: str | None,
    data: dict[str, str],
    problems: dict[str, str],
) -> dict[str, Any]:
    chosen = None
    suggestions: list[pages.Counterpart] = []
    if event and "counterpart" in pages.EVENT_FIELDS.get(event, ()):
        suggestions = pages.counterpart_search(session=session, principal=principal, text=data.get("counterpart_q", ""))
        ident = data.get("counterpart_id", "")
        if ident.isdigit():
            chosen = pages.counterpart_by_id(session=session, ident=int(ident))
            if chosen is not None and all(s.id != chosen.id for s in suggestions):
                suggestions.insert(0, chosen)
    return {
        "steps": steps,
        "event": event,
        "fields": pages.EVENT_FIELDS.get(event or "", ()),
        "required": pages.REQUIRED_FIELDS.get(event or "", frozenset()),
        "data": data,
        "problems": problems,
        "suggestions": suggestions,
        "chosen": chosen.id if chosen else None,
        "now_local": _now_local(),
        "state_label": translate(lang, f"trace.state.{steps.state}") if steps.state else None,
    }


@router.get("/batteries/{code}/events/new", name="battery_event_new")
def battery_event_new(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    code: CodePath,
    type: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """The next steps this battery allows this enterprise; with a step chosen, its form."""
    _ensure_worker(principal)
    steps = pages.next_steps(session=session, principal=principal, code=code)
    event = type if type in steps.events else None
    if event is None and len(steps.events) == 1:
        event = steps.events[0]
    context = _event_context(session, principal, lang, steps, event, {}, {})
    return render(request, "battery_event_form.html", context, lang=lang, block="form")


@router.post("/batteries/{code}/events/search", name="battery_counterpart_search")
def battery_counterpart_search(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, code: CodePath, data: FormDep
) -> Response:
    """Enterprises acting on batteries whose name or credit code holds what is typed in the counterpart field."""
    _ensure_worker(principal)
    steps = pages.next_steps(session=session, principal=principal, code=code)
    event = "transferred" if "transferred" in steps.events else None
    context = _event_context(session, principal, lang, steps, event, data, {})
    return render(request, "battery_event_form.html", context, lang=lang, block="options")


@router.post("/batteries/{code}/events/new")
def battery_event_create(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, code: CodePath, data: FormDep
) -> Response:
    """Record one event through the API's writer; a refusal names its field and nothing is saved."""
    _ensure_worker(principal)
    steps = pages.next_steps(session=session, principal=principal, code=code)
    event = data.get("type", "")
    fields = _event_fields(event)
    problems: dict[str, str] = {}
    if event not in steps.events:
        if not steps.known:
            # A battery this enterprise never held and may not take in: nothing is said of it.
            raise NotFound("battery.no_such_code", field="code", column=Term("field.code"), battery=steps.code)
        problems["type"] = translate(lang, "work.log.choose_step")
    row: dict[str, Any] = {"type": event, "occurred_at": data.get("occurred_at", "").strip()}
    for name in fields[2:]:
        value = data.get(name, "").strip()
        if name == "counterpart":
            ident = data.get("counterpart_id", "").strip()
            typed = data.get("counterpart_q", "").strip()
            if ident.isdigit():
                row["counterpart_id"] = int(ident)
            elif typed:
                matches = pages.counterpart_search(session=session, principal=principal, text=typed)
                exact = [m for m in matches if typed.upper() == m.uscc or typed in (m.name_zh, m.name_en)]
                if len(exact) == 1:
                    row["counterpart_id"] = exact[0].id
                    data["counterpart_id"] = str(exact[0].id)
                else:
                    problems["counterpart"] = translate(lang, "work.log.pick_counterpart")
        elif value:
            row[name] = value
    if not problems:
        try:
            battery.record_event(
                session=session, principal=principal, code=normalise_battery_code(code), row=row, now=utcnow()
            )
            session.commit()
            written = battery.find_battery(session=session, principal=principal, code=code)
            return _redirect(request, f"/batteries/{written.code}?done={event}")
        except DomainError as exc:
            session.rollback()
            field, text = _problem(lang, exc, fields)
            problems[field] = text
            status = status_for(exc)
    else:
        status = 422
    context = _event_context(session, principal, lang, steps, event if event in steps.events else None, data, problems)
    return render(request, "battery_event_form.html", context, lang=lang, block="form", status_code=status)


# ---------------------------------------------------------------------------------------------------------------
# Files: many batteries or events at once, all rows or none, through the same bulk writers as the API

SHOWN_ROWS = 50  # refused rows listed on the page; the count covers them all


def _import_context(session: Session, principal: Principal, lang: str, kind: str, **extra: Any) -> dict[str, Any]:
    kinds = [k for k in columns.KINDS if k != "batteries" or pages.may_register(session=session, principal=principal)]
    return {
        "kinds": kinds,
        "kind": kind if kind in kinds else (kinds[-1] if kinds else ""),
        "headers": {k: [(c.zh, c.key) for c in columns.KINDS[k]] for k in kinds},
        **extra,
    }


@router.get("/batteries/import", name="battery_import")
def battery_import(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    kind: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    """Upload a file of batteries or of battery events, with templates to download."""
    _ensure_worker(principal)
    return render(request, "battery_import.html", _import_context(session, principal, lang, kind), lang=lang)


@router.get("/batteries/import/template/{name}", name="battery_template")
def battery_template(principal: PrincipalDep, name: Annotated[str, Path(max_length=40)]) -> Response:
    """A template with Chinese headers and an example row (CSV in UTF-8 with BOM, or XLSX)."""
    kind, _, suffix = name.rpartition(".")
    if kind not in columns.KINDS or suffix not in ("csv", "xlsx"):
        raise NotFound("battery.no_template", field="name", name=name)
    if suffix == "csv":
        body, media = columns.template_csv(kind), "text/csv; charset=utf-8"
    else:
        body, media = columns.template_xlsx(kind), XLSX
    filename = f"{kind}-template.{suffix}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/batteries/import")
def battery_import_upload(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    kind: Annotated[str, Form(max_length=32)],
    file: Annotated[UploadFile, File()],
) -> Response:
    """Register the batteries or record the events of a file: every row lands, or none, each bad row named."""
    _ensure_worker(principal)
    limits = settings.upload_limits()
    suffix = PurePath(file.filename or "").suffix.lower()
    context = _import_context(session, principal, lang, kind)
    try:
        if kind not in context["kinds"]:
            raise (
                Forbidden("battery.makers_register")
                if kind == "batteries"
                else NotFound("battery.no_template", field="kind", name=kind)
            )
        with tempfile.TemporaryDirectory() as folder:
            path = FilePath(folder) / f"upload{suffix}"
            data = file.file.read(limits.max_bytes + 1)
            check_size(len(data), limits)
            path.write_bytes(data)
            rows, lines = battery.read_table(path, limits)
        if not rows:
            raise InvalidInput("battery.file_empty", field="file", column=Term("field.file"))
        now = utcnow()
        if kind == "batteries":
            saved = battery.register_batteries(session=session, principal=principal, rows=rows, lines=lines, now=now)
            codes = [b.code for b in saved]
        else:
            events = battery.record_events(session=session, principal=principal, rows=rows, lines=lines, now=now)
            ids = {e.battery_id for e in events if "via" not in e.attributes}
            codes = sorted({b.code for b in session.exec(select(Battery).where(col(Battery.id).in_(ids))).all()})
            context["events"] = sum(1 for e in events if "via" not in e.attributes)
        session.commit()
        context.update({"done": True, "codes": codes, "count": len(rows)})
        return render(request, "battery_import.html", context, lang=lang)
    except battery.RowsRefused as exc:
        session.rollback()
        refused = [e.as_dict(lang) | {"label": field_label(lang, e.column)} for e in exc.errors[:SHOWN_ROWS]]
        context.update({"refused": refused, "refused_rows": len({e.row for e in exc.errors}), "total": exc.total})
        return render(request, "battery_import.html", context, lang=lang, status_code=422)
    except DomainError as exc:
        session.rollback()
        context["problem"] = say(lang, exc)
        return render(request, "battery_import.html", context, lang=lang, status_code=status_for(exc))
