"""The import page and the import API: upload a CSV or XLSX file; it lands whole, or a row-by-row refusal is shown."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep, SettingsDep
from app.errors import api_language
from app.i18n import LanguageDep
from app.settings import Settings
from app.web import render
from flows.kernel.bounds import printable
from flows.kernel.errors import Forbidden, InvalidInput
from flows.kernel.messages import Term, plain
from flows.kernel.principal import Principal
from flows.waste import imports

SHOWN_ERRORS = 500  # rows listed on the page; the count says how many there are in all

router = APIRouter(include_in_schema=False)
api_router = APIRouter(dependencies=[Depends(get_principal)], tags=["imports"])


def _run(
    kind: str, upload: UploadFile, session: Any, principal: Principal, settings: Settings
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
    )
    session.commit()
    return summary


@router.get("/import", name="import")
def import_page(request: Request, lang: LanguageDep, principal: PrincipalDep) -> Response:
    """The upload form, offering the kinds this account may import."""
    return render(request, "import.html", {"kinds": imports.importable_kinds(principal)}, lang=lang)


@router.post("/import")
def import_upload(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    kind: Annotated[str, Form(max_length=32)],
    file: Annotated[UploadFile, File()],
) -> Response:
    """Run the import and show what landed, or every refused row (nothing is saved then)."""
    context: dict[str, Any] = {"kinds": imports.importable_kinds(principal), "kind": kind}
    try:
        context["summary"] = _run(kind, file, session, principal, settings)
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
    return render(request, "import.html", context, lang=lang, status_code=status)


@api_router.post("/imports/{kind}")
def import_api(
    request: Request,
    kind: Annotated[str, Path(max_length=32)],
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
) -> JSONResponse:
    """Import a CSV or XLSX file of enterprises, declarations or manifests: all rows land, or none."""
    try:
        summary = _run(kind, file, session, principal, settings)
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
