"""JSON API for utilisation rates and their trend against the targets (the flags: app/api_flags.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.auth import PrincipalDep, get_principal
from app.deps import SessionDep
from app.i18n import LanguageDep
from app.scope import ScopeDep
from app.web_audit import report_file
from flows.kernel.bounds import MAX_ID, MAX_QUERY_TEXT
from flows.pages import audit_export
from flows.pages.audit import ScopeArgs
from flows.waste import rates
from flows.waste.rates import RateReport, TrendReport
from flows.waste.targets import DEFAULT_WINDOW

router = APIRouter(dependencies=[Depends(get_principal)])

Year = Annotated[int, Query(ge=2000, le=2100)]
Categories = Annotated[
    str | None,
    Query(description="comma-separated category codes (instead of a target's set)", max_length=MAX_QUERY_TEXT),
]
TargetName = Annotated[
    str | None, Query(description="name of a target whose categories and path to use", max_length=MAX_QUERY_TEXT)
]


def _codes(categories: str | None) -> list[str] | None:
    return None if categories is None else categories.split(",")


@router.get("/rates", response_model=RateReport, tags=["rates"])
def get_rates(
    session: SessionDep,
    principal: PrincipalDep,
    year: Year,
    scope: ScopeDep,
    categories: Categories = None,
    target: TargetName = None,
    by: Annotated[str | None, Query(description="category, region, park or enterprise", max_length=32)] = None,
) -> RateReport:
    """The comprehensive utilisation rate of a scope in a year, against its target, with the manifest figure."""
    return rates.utilisation(
        session=session,
        principal=principal,
        year=year,
        scope=scope,
        categories=_codes(categories),
        target=target,
        by=by,
    )


@router.get("/rates/trend", response_model=TrendReport, tags=["rates"])
def get_trend(
    session: SessionDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    categories: Categories = None,
    target: TargetName = None,
    from_year: Annotated[int | None, Query(alias="from", ge=2000, le=2100)] = None,
    to_year: Annotated[int | None, Query(alias="to", ge=2000, le=2100)] = None,
    window: Annotated[int, Query(ge=2, le=50, description="years of data the projection is fitted on")] = (
        DEFAULT_WINDOW
    ),
) -> TrendReport:
    """The rate year by year, the target path, and a linear projection to the next target year."""
    return rates.rate_trend(
        session=session,
        principal=principal,
        scope=scope,
        categories=_codes(categories),
        target=target,
        from_year=from_year,
        to_year=to_year,
        window=window,
    )


ReportFormat = Annotated[Literal["xlsx", "csv"], Path(description="xlsx: the formatted workbook; csv: the breakdown")]
LangQuery = Annotated[Literal["zh-CN", "en"] | None, Query(description="the file's language (else the caller's)")]
ScopeId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


@router.get(
    "/reports/audit.{fmt}",
    response_class=Response,
    tags=["audit"],
    responses={
        200: {
            "content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}, "text/csv": {}},
            "description": "the audit report",
        }
    },
)
def audit_report_file(
    session: SessionDep,
    principal: PrincipalDep,
    language: LanguageDep,
    fmt: ReportFormat,
    year: Year,
    region: Annotated[str | None, Query(max_length=6, description="adcode of the scope")] = None,
    park: ScopeId = None,
    enterprise: ScopeId = None,
    lang: LangQuery = None,
) -> Response:
    """The audit report of a scope and year, as on the audit page: a formatted workbook, or its breakdown as CSV."""
    args = ScopeArgs(region=region, park=park, enterprise=enterprise)
    report = audit_export.audit_report(session=session, principal=principal, year=year, args=args)
    return report_file(report, fmt, lang or language)
