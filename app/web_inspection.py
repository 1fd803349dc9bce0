"""The inspection sheet of an enterprise (PDF), from the enterprise page, the audit drill-down and the API."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.i18n import LanguageDep, translate
from app.params import Id, YearQuery
from app.web_print import pdf_response
from flows.pages import inspection

router = APIRouter(include_in_schema=False)
api_router = APIRouter(dependencies=[Depends(get_principal)], tags=["audit"])

LangQuery = Annotated[Literal["zh-CN", "en"] | None, Query(description="the document's language (else the user's)")]


@router.get("/enterprises/{enterprise_id}/inspection.pdf", name="inspection_pdf")
def inspection_pdf(
    session: SessionDep,
    language: LanguageDep,
    principal: PrincipalDep,
    enterprise_id: Id,
    year: YearQuery = None,
    lang: LangQuery = None,
) -> Response:
    """An enterprise's inspection sheet (PDF) for a year (its latest by default), for whoever audits it."""
    chosen = lang or language
    printed = inspection.printed_sheet(
        session=session,
        principal=principal,
        enterprise_id=enterprise_id,
        year=year,
        lang=chosen,
        words=partial(translate, chosen),
        now=utcnow(),
    )
    return pdf_response(printed.pdf, f"inspection-{printed.uscc}-{printed.year}-{chosen}.pdf", chosen)


# The API gives the same document under /api/v1, described in the OpenAPI schema.
api_router.get(
    "/enterprises/{enterprise_id}/inspection.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the inspection sheet"}},
    summary="An enterprise's inspection sheet (PDF)",
)(inspection_pdf)
