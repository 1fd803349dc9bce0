"""The import page and the import API: upload a CSV or XLSX file; it lands whole, or a row-by-row refusal is shown."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep, SettingsDep
from app.errors import api_language
from app.i18n import LanguageDep
from app.settings import Settings
from app.web import beijing, render
from flows.kernel.bounds import printable
from flows.kernel.errors import Forbidden, InvalidInput
from flows.kernel.messages import Term, plain
from flows.kernel.principal import Principal
from flows.pages import exports, import_help
from flows.waste import imports

SHOWN_ERRORS = 500  # rows listed on the page; the count says how many there are in all

router = APIRouter(include_in_schema=False)
api_router = APIRouter(dependencies=[Depends(get_principal)], tags=["imports"])


def _run(
    kind: str, upload: UploadFile, session: Any, principal: Principal, settings: Settings, late_reason: str = ""
) -> imports.ImportSummary:
    if kind not in imports.IMPORTERS:
        raise InvalidInput(
            "waste.import.kind_unknown", field="kind", kinds=[Term(f"waste.import.kind.{k}") for k in imports.IMPORTERS]
        )
    # Who may import what is the importer's rule: it refuses the others with Forbidden.
    summary = imports.IMPORTERS[kind](
        session=session,
        principal=principal,
        source=upload.file,
        now=utcnow(),
        # The name lands in the audit log: as sent, cut short, with anything no text column can hold escaped.
        name=printable(upload.filename or kind, 200),
        limits=settings.upload_limits(),
        # New declarations of a locked year are filed late with the reason given; nothing else takes one.
        **({"late_reason": late_reason} if kind == "declarations" and late_reason.strip() else {}),
    )
    session.commit()
    return summary


def _page(session: Any, principal: Principal, **extra: Any) -> dict[str, Any]:
    """What the page always shows: the kinds to choose, their templates and columns, and the reader's history."""
    kinds = imports.importable_kinds(principal)
    return {
        "kinds": kinds,
        "columns": {k: import_help.template_columns(k) for k in kinds},
        "history": import_help.import_history(session=session, principal=principal),
        "beijing": beijing,
        **extra,
    }


@router.get("/import", name="import")
def import_page(request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep) -> Response:
    """The upload form, offering the kinds this account may import, with their templates, help and history."""
    return render(request, "import.html", _page(session, principal), lang=lang)


def _template(lang: str, principal: Principal, kind: str, fmt: str) -> Response:
    """An empty file of a kind with its Chinese headers, for a kind this account may import."""
    if kind not in imports.importable_kinds(principal):
        raise Forbidden("pages.import_help.kind_not_yours", field="kind", kind=kind)
    body = import_help.template_file(kind, fmt, lang)
    name = f"circuflow-{kind}-template.{fmt}"
    media = "text/csv; charset=utf-8" if fmt == "csv" else exports.XLSX_MEDIA
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/import/templates/{kind}.csv", name="import_template_csv")
def import_template_csv(
    lang: LanguageDep, principal: PrincipalDep, kind: Annotated[str, Path(max_length=32)]
) -> Response:
    """A kind's template as CSV (UTF-8 with a BOM): its Chinese header row."""
    return _template(lang, principal, kind, "csv")


@router.get("/import/templates/{kind}.xlsx", name="import_template_xlsx")
def import_template_xlsx(
    lang: LanguageDep, principal: PrincipalDep, kind: Annotated[str, Path(max_length=32)]
) -> Response:
    """A kind's template as XLSX: its Chinese header row, and a sheet telling each column."""
    return _template(lang, principal, kind, "xlsx")


@router.post("/import")
def import_upload(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    kind: Annotated[str, Form(max_length=32)],
    file: Annotated[UploadFile, File()],
    late_reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Run the import and show what landed, or every refused row (nothing is saved then)."""
    context: dict[str, Any] = {"kind": kind, "late_reason": late_reason}
    try:
        context["summary"] = _run(kind, file, session, principal, settings, late_reason)
        context["imported_href"] = import_help.imported_href(kind, principal)
        status = 200
    except imports.ImportRefused as exc:
        session.rollback()
        context["refused"] = exc
        context["errors"] = exc.errors[:SHOWN_ERRORS]
        status = 422
    except (InvalidInput, Forbidden) as exc:
        session.rollback()
        context["problem"] = exc
        status = 403 if isinstance(exc, Forbidden) else 422
    return render(request, "import.html", _page(session, principal, **context), lang=lang, status_code=status)


class PastImportPublic(BaseModel):
    """One import the caller made, as the audit log holds it (the import page lists the same)."""

    at: datetime
    kind: str
    file: str
    sha256: str
    rows: int
    inserted: int
    updated: int
    skipped: int
    href: str | None = Field(description="the page where what was imported can be seen")


@api_router.get("/imports", response_model=list[PastImportPublic])
def import_history_api(session: SessionDep, principal: PrincipalDep) -> list[PastImportPublic]:
    """The caller's latest imports, newest first: when, which kind, which file (and its SHA-256), what landed."""
    return [
        PastImportPublic(**asdict(past)) for past in import_help.import_history(session=session, principal=principal)
    ]


@api_router.post("/imports/{kind}")
def import_api(
    request: Request,
    kind: Annotated[str, Path(max_length=32)],
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    late_reason: Annotated[str, Form(max_length=1000)] = "",
) -> JSONResponse:
    """Import a CSV or XLSX file of enterprises, declarations or manifests: all rows land, or none.

    Declarations: with late_reason, a new row of a locked year is filed as a late filing instead of refused.
    """
    try:
        summary = _run(kind, file, session, principal, settings, late_reason)
    except imports.ImportRefused as exc:
        session.rollback()
        body = {
            "title": "ImportRefused",
            "status": 422,
            "code": exc.code,
            "params": plain(exc.params),
            # The API speaks English unless Accept-Language asks otherwise, as every problem answer does.
            "detail": exc.render(api_language(request)),
            "total": exc.total,
            "rows": exc.rows,
            "errors": [e.as_dict() for e in exc.errors],
        }
        return JSONResponse(body, status_code=422, media_type="application/problem+json")
    return JSONResponse(summary.as_dict(), status_code=201)
