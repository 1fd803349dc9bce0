"""JSON API for utilisation rates, their trend against the targets, and the audit flags."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.auth import PrincipalDep, get_principal
from app.deps import SessionDep
from app.i18n import LanguageDep
from app.params import Offset
from app.scope import ScopeDep
from app.web_audit import report_file
from flows.kernel.bounds import MAX_DECLARED_T, MAX_ID, MAX_QUERY_TEXT
from flows.pages import audit_export
from flows.pages.audit import ScopeArgs
from flows.waste import flags, rates
from flows.waste.flags import FlagPage, Tolerances
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


Fraction = Annotated[float | None, Query(ge=0, le=1)]
Tonnes = Annotated[float | None, Query(ge=0, le=MAX_DECLARED_T)]


@router.get("/flags", response_model=FlagPage, tags=["audit"])
def get_flags(
    session: SessionDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    kind: Annotated[
        list[str] | None, Query(description="flag kinds (repeat, or comma-separated)", max_length=50)
    ] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    balance_abs_t: Tonnes = None,
    balance_rel: Fraction = None,
    weight_rel: Fraction = None,
    unmatched_abs_t: Tonnes = None,
    unmatched_rel: Fraction = None,
) -> FlagPage:
    """Audit flags of a scope, computed from the data, with evidence and links; paginated across kinds."""
    given = {
        "balance_abs_t": balance_abs_t,
        "balance_rel": balance_rel,
        "weight_rel": weight_rel,
        "unmatched_abs_t": unmatched_abs_t,
        "unmatched_rel": unmatched_rel,
    }
    return flags.list_flags(
        session=session,
        principal=principal,
        year=year,
        scope=scope,
        kinds=kind,
        offset=offset,
        limit=limit,
        tolerances=Tolerances(**{k: v for k, v in given.items() if v is not None}),
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
