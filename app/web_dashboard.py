"""The dashboard page: the scope's rate against its target, the trend with the path and projection, the flags."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app import years as year_memory
from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.i18n import LanguageDep, local_name
from app.scope import OwnScopeDep
from app.web import pct, render
from flows.pages.dashboard import Dashboard, dashboard, declared_years
from models.enums import UserRole

router = APIRouter(include_in_schema=False)


def _chart(d: Dashboard) -> str:
    """The trend chart's data as JSON for app/static/charts.js (figures in percent, full precision)."""
    projection = d.trend.projection
    return json.dumps(
        {
            "years": [y.year for y in d.trend.years],
            "rates": [None if y.rate is None else y.rate * 100 for y in d.trend.years],
            "targets": [[t.year, t.value * 100] for t in d.trend.targets],
            "projection": (
                [
                    [projection.years[-1], projection.rates[-1] * 100],
                    [projection.target_year, projection.projected_rate * 100],
                ]
                if projection.projected_rate is not None and projection.years and projection.target_year
                else []
            ),
        },
        allow_nan=False,
    )


@router.get("/dashboard", name="dashboard")
def dashboard_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    scope: OwnScopeDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> Response:
    """The signed-in user's own scope at a glance."""
    kept = year_memory.remembered(request) if year is None else None
    if kept is not None and kept in declared_years(session=session, principal=principal):
        year = kept  # the year chosen on another page, where this scope has declarations
    d = dashboard(session=session, principal=principal, scope=scope, year=year, now=utcnow())
    rows: list[dict[str, Any]] = [
        {
            "key": row.key,
            "name": local_name(lang, row.name_zh or row.key or "", row.name_en),
            "rate": pct(row.rate),
            "raw": row.rate,
            "generated_t": row.generated_t,
            "revisions": row.revisions,
        }
        for row in d.ranking
    ]
    context = {
        "d": d,
        "rate": pct(d.rate.rate),
        "pct": pct,
        "target": pct(d.rate.target) if d.rate.target is not None else None,
        "next_target": d.rate.next_target,
        "outer_target": pct(d.rate.outer_target) if d.rate.outer_target is not None else None,
        "projection": d.trend.projection,
        "projected": pct(d.trend.projection.projected_rate),
        "scope_name": local_name(lang, d.rate.scope.name_zh or d.rate.scope.key, d.rate.scope.name_en),
        "rows": rows,
        "chart": _chart(d),
        "by": d.rate.by.value if d.rate.by else None,
        # Auditors follow a figure into the audit workspace: the division's drill-down, the flags of a kind.
        "auditor": principal.role in (UserRole.admin, UserRole.bureau),
    }
    return render(request, "dashboard.html", context, lang=lang)
