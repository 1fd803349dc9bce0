"""Pages for reference data: the battery whitelist, and enterprises and parks edited by administrators."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from shapely.geometry import mapping
from sqlmodel import Session

from app.api_registry import today
from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep, SettingsDep
from app.errors import status_for
from app.i18n import LanguageDep, field_label, local_name, say
from app.params import Id
from app.web import beijing, render
from app.web_battery_work import XLSX
from flows.access import directory, registry
from flows.battery import columns, whitelist
from flows.battery.chain import RowsRefused, read_table
from flows.kernel.bounds import MAX_TEXT, check_size, check_text
from flows.kernel.errors import DomainError, InvalidInput, NotFound
from flows.kernel.principal import Principal
from maps.datum import Datum
from models.enums import EnterpriseRole, ParkLevel, TransformationStatus, WhitelistKind

router = APIRouter(include_in_schema=False)

SHOWN_ROWS = 50  # refused rows listed on the page; the API lists them all
ENTRY_FIELDS = ("uscc", "activity", "edition", "batch", "listed_on", "delisted_on")
ENTERPRISE_FIELDS = ("name_zh", "name_en", "lon", "lat", "datum", "park", "version")
PARK_FIELDS = ("name_zh", "name_en", "level", "transformation_status", "transformation_year", "datum", "version")


async def _form(request: Request) -> tuple[dict[str, str], dict[str, list[str]], Any]:
    """The posted fields (each bounded), the repeated ones as lists, and an uploaded file if any."""
    form = await request.form()
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    upload = None
    for name, value in form.multi_items():
        if isinstance(value, str):
            check_text(value, field=name, max_length=MAX_TEXT)
            single[name] = value.strip()
            multi.setdefault(name, []).append(value.strip())
        else:
            upload = value
    return single, multi, upload


def history_names(session: Session, lang: str) -> dict[str, dict[Any, str]]:
    """Parks and regions by name in the reader's language: the histories name them, not their ids and codes."""
    parks = {p.id: local_name(lang, p.name_zh, p.name_en) for p in directory.list_parks(session=session)}
    regions = {r.adcode: local_name(lang, r.name_zh, r.name_en) for r in directory.list_regions(session=session)}
    return {"parks": parks, "regions": regions}


def _problems(lang: str, exc: DomainError, fields: tuple[str, ...]) -> dict[str, str]:
    where = exc.field if exc.field in fields else "form"
    problem = exc.params.get("problem")
    text = say(lang, problem) if problem is not None else say(lang, exc)
    if where == "form" and exc.field:
        text = f"{field_label(lang, exc.field)}: {text}"
    return {where: text}


# --- the whitelist ---------------------------------------------------------------------------------------------


def _whitelist_response(
    request: Request,
    session: Session,
    lang: str,
    principal: Principal,
    *,
    activity: WhitelistKind | None = None,
    listed: bool = False,
    data: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
    saved: str | None = None,
    refused: list[dict[str, Any]] | None = None,
    status_code: int = 200,
) -> Response:
    day = today()
    context = {
        "entries": whitelist.whitelist_page(session=session, on=day, activity=activity, listed_only=listed),
        "today": day,
        "activity": activity.value if activity else "",
        "listed": listed,
        "activities": [k.value for k in WhitelistKind],
        "may_keep": whitelist.may_keep(principal),
        "data": data or {},
        "problems": problems or {},
        "saved": saved,
        "refused": refused or [],
        "beijing": beijing,
    }
    return render(request, "whitelist.html", context, lang=lang, status_code=status_code)


@router.get("/whitelist", name="whitelist")
def whitelist_list(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    activity: WhitelistKind | None = None,
    listed: bool = False,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """The battery whitelist: who is listed for cascade use or recycling, in which edition and batch, since when."""
    saved = done if done in ("created", "unchanged", "delisted", "imported") else None
    return _whitelist_response(request, session, lang, principal, activity=activity, listed=listed, saved=saved)


@router.get("/whitelist/template.{suffix}", name="whitelist_template")
def whitelist_template(principal: PrincipalDep, suffix: Annotated[str, PathParam(max_length=8)]) -> Response:
    """The import template: Chinese headers and an example row (CSV in UTF-8 with BOM, or XLSX)."""
    if suffix == "csv":
        body, media = columns.template_csv("whitelist"), "text/csv; charset=utf-8"
    elif suffix == "xlsx":
        body, media = columns.template_xlsx("whitelist"), XLSX
    else:
        raise NotFound("battery.no_template", field="suffix", name=f"template.{suffix}")
    disposition = f'attachment; filename="whitelist-template.{suffix}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


@router.post("/whitelist", name="whitelist_add")
async def whitelist_add(request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep) -> Response:
    """Add an entry to the whitelist (administrators, and bureaus for enterprises of their region)."""
    whitelist.ensure_keeper(principal)
    data, _, _ = await _form(request)
    body = {name: data.get(name, "") for name in ENTRY_FIELDS}
    try:
        written = whitelist.save_entry(session=session, principal=principal, data=body, now=utcnow())
        session.commit()
    except DomainError as exc:
        session.rollback()
        problems = _problems(lang, exc, ENTRY_FIELDS)
        return _whitelist_response(
            request, session, lang, principal, data=body, problems=problems, status_code=status_for(exc)
        )
    outcome = "unchanged" if written.outcome == "unchanged" else "created"
    return RedirectResponse(f"/whitelist?done={outcome}", status_code=303)


@router.post("/whitelist/import", name="whitelist_import")
async def whitelist_import(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, settings: SettingsDep
) -> Response:
    """Import the list as it now stands from CSV or XLSX: every row lands, or none, each bad row named."""
    whitelist.ensure_keeper(principal)
    limits = settings.upload_limits()
    _, _, upload = await _form(request)
    try:
        if upload is None or not upload.filename:
            raise InvalidInput("battery.whitelist.empty", field="file")
        suffix = PurePath(upload.filename).suffix.lower()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"upload{suffix}"
            raw = await upload.read(limits.max_bytes + 1)
            check_size(len(raw), limits)
            path.write_bytes(raw)
            rows, lines = read_table(path, limits)
        whitelist.save_entries(session=session, principal=principal, rows=rows, lines=lines, now=utcnow())
        session.commit()
    except RowsRefused as exc:
        session.rollback()
        refused = [e.as_dict(lang) | {"label": field_label(lang, e.column)} for e in exc.errors[:SHOWN_ROWS]]
        problems = {"file": say(lang, exc)}
        return _whitelist_response(
            request, session, lang, principal, problems=problems, refused=refused, status_code=422
        )
    except DomainError as exc:
        session.rollback()
        return _whitelist_response(
            request, session, lang, principal, problems={"file": say(lang, exc)}, status_code=status_for(exc)
        )
    return RedirectResponse("/whitelist?done=imported", status_code=303)


@router.post("/whitelist/{entry_id}/delist", name="whitelist_delist")
async def whitelist_delist(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, entry_id: Id
) -> Response:
    """Delist an entry from a day on."""
    whitelist.ensure_keeper(principal)
    data, _, _ = await _form(request)
    try:
        whitelist.delist(
            session=session, principal=principal, entry_id=entry_id, delisted_on=data.get("delisted_on"), now=utcnow()
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        problems = {f"delist-{entry_id}": say(lang, exc.params.get("problem") or exc)}
        return _whitelist_response(request, session, lang, principal, problems=problems, status_code=status_for(exc))
    return RedirectResponse("/whitelist?done=delisted", status_code=303)


# --- enterprises -----------------------------------------------------------------------------------------------


def _enterprise_form(
    request: Request,
    session: Session,
    lang: str,
    principal: Principal,
    enterprise_id: int,
    *,
    data: dict[str, Any] | None = None,
    problems: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    registry.ensure_registrar(principal)
    e = directory.get_enterprise(session=session, principal=principal, enterprise_id=enterprise_id)
    stored = {
        "name_zh": e.name_zh,
        "name_en": e.name_en or "",
        "lon": f"{e.lon:.6f}",
        "lat": f"{e.lat:.6f}",
        "datum": "wgs84",
        "park": str(e.park_id or 0) if e.location_overridden else "",
        "version": str(e.version),
        "roles": list(e.roles),
    }
    context = {
        "e": e,
        "data": stored | (data or {}),
        "problems": problems or {},
        "roles": [r.value for r in EnterpriseRole],
        "datums": [d.value for d in Datum],
        "parks": directory.list_parks(session=session),
        "history": registry.history(session=session, table="enterprise", row_id=enterprise_id),
        "names": history_names(session, lang),
        "beijing": beijing,
    }
    return render(request, "enterprise_edit.html", context, lang=lang, status_code=status_code)


@router.get("/enterprises/{enterprise_id}/edit", name="enterprise_edit")
def enterprise_edit(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, enterprise_id: Id
) -> Response:
    """Edit an enterprise: name, roles, location on a map (with its datum), park."""
    return _enterprise_form(request, session, lang, principal, enterprise_id)


@router.post("/enterprises/{enterprise_id}/edit", name="enterprise_save")
async def enterprise_save(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, enterprise_id: Id
) -> Response:
    """Save an edit of an enterprise; a moved point re-derives its region and park."""
    registry.ensure_registrar(principal)
    data, multi, _ = await _form(request)
    typed: dict[str, Any] = {name: data.get(name, "") for name in ENTERPRISE_FIELDS} | {"roles": multi.get("roles", [])}
    body: dict[str, Any] = {
        "version": typed["version"],
        "name_zh": typed["name_zh"],
        "name_en": typed["name_en"],
        "roles": typed["roles"],
        "datum": typed["datum"] or "wgs84",
    }
    if typed["lon"] or typed["lat"]:
        body["lon"], body["lat"] = typed["lon"] or None, typed["lat"] or None
    if typed["park"]:
        body["park_id"] = typed["park"]
    else:
        body["derive"] = True
    try:
        registry.edit_enterprise(
            session=session, principal=principal, enterprise_id=enterprise_id, data=body, now=utcnow()
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        fields = (*ENTERPRISE_FIELDS, "roles", "lon/lat")
        problems = _problems(lang, exc, fields)
        if "lon/lat" in problems:
            problems["lon"] = problems.pop("lon/lat")
        if exc.field == "park_id":
            problems["park"] = problems.pop("form")
        if exc.field and exc.field.startswith("roles"):
            problems = {"roles": next(iter(problems.values()))}
        return _enterprise_form(
            request,
            session,
            lang,
            principal,
            enterprise_id,
            data=typed,
            problems=problems,
            status_code=status_for(exc),
        )
    return RedirectResponse(f"/enterprises/{enterprise_id}?edited=1#history", status_code=303)


# --- parks -----------------------------------------------------------------------------------------------------


def _park_form(
    request: Request,
    session: Session,
    lang: str,
    principal: Principal,
    park_id: int,
    *,
    data: dict[str, Any] | None = None,
    problems: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    registry.ensure_registrar(principal)
    park = directory.get_park(session=session, park_id=park_id)
    stored = {
        "name_zh": park.name_zh,
        "name_en": park.name_en or "",
        "level": str(park.level),
        "transformation_status": str(park.transformation_status),
        "transformation_year": str(park.transformation_year or ""),
        "waste_free": park.waste_free,
        "datum": "wgs84",
        "version": str(park.version),
    }
    context = {
        "park": park,
        "boundary": mapping(park.boundary),
        "data": stored | (data or {}),
        "problems": problems or {},
        "levels": [v.value for v in ParkLevel],
        "statuses": [v.value for v in TransformationStatus],
        "datums": [d.value for d in Datum],
        "history": registry.history(session=session, table="park", row_id=park_id),
        "names": history_names(session, lang),
        "beijing": beijing,
    }
    return render(request, "park_edit.html", context, lang=lang, status_code=status_code)


@router.get("/parks/{park_id}/edit", name="park_edit")
def park_edit(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, park_id: Id
) -> Response:
    """Edit a park: name, level, transformation status, boundary (GeoJSON upload with its datum)."""
    return _park_form(request, session, lang, principal, park_id)


@router.post("/parks/{park_id}/edit", name="park_save")
async def park_save(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    park_id: Id,
) -> Response:
    """Save an edit of a park; a new boundary re-derives the park of the enterprises not placed by hand."""
    registry.ensure_registrar(principal)
    data, _, upload = await _form(request)
    typed: dict[str, Any] = {name: data.get(name, "") for name in PARK_FIELDS} | {"waste_free": "waste_free" in data}
    body: dict[str, Any] = {
        "version": typed["version"],
        "name_zh": typed["name_zh"],
        "name_en": typed["name_en"],
        "level": typed["level"],
        "transformation_status": typed["transformation_status"],
        "transformation_year": typed["transformation_year"] or None,
        "waste_free": typed["waste_free"],
        "datum": typed["datum"] or "wgs84",
    }
    try:
        if upload is not None and upload.filename:
            limits = settings.upload_limits()
            raw = await upload.read(limits.max_bytes + 1)
            check_size(len(raw), limits)
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InvalidInput("registry.boundary_not_json", field="boundary", detail="not UTF-8") from None
            body["boundary"] = registry.read_boundary(text)
        registry.edit_park(session=session, principal=principal, park_id=park_id, data=body, now=utcnow())
        session.commit()
    except DomainError as exc:
        session.rollback()
        problems = _problems(lang, exc, (*PARK_FIELDS, "boundary"))
        return _park_form(
            request, session, lang, principal, park_id, data=typed, problems=problems, status_code=status_for(exc)
        )
    return RedirectResponse(f"/parks/{park_id}/edit?saved=1", status_code=303)
