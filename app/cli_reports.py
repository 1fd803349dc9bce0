"""The `rate`, `trend` and `audit` report commands; each takes --json and acts as the system principal."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from app.i18n import translate
from app.settings import Settings
from flows.access.accounts import system_principal
from flows.access.scope import ScopeRef, resolve_scope
from flows.kernel.errors import DomainError
from flows.pages import audit_export, inspection
from flows.pages.audit import ScopeArgs
from flows.waste import flags, rates
from flows.waste.flags import FlagPage
from flows.waste.rates import RateFigures, RateReport, TrendReport, percent_truncated
from flows.waste.targets import DEFAULT_WINDOW, Projection
from models.db import make_engine
from models.quantity import json_default

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="Adcode of the province, a prefecture or a county.")]
ParkOpt = Annotated[int | None, typer.Option("--park", help="Park id.")]
EnterpriseOpt = Annotated[str | None, typer.Option("--enterprise", help="Credit code (or id) of an enterprise.")]
CategoriesOpt = Annotated[
    str | None, typer.Option("--categories", help="Comma-separated category codes, instead of a target's set.")
]


class Lang(StrEnum):
    """The languages a report file is written in."""

    zh = "zh-CN"
    en = "en"


LangOpt = Annotated[Lang, typer.Option("--lang", help="Language of the file.")]
TargetOpt = Annotated[str | None, typer.Option("--target", help="Name of the target whose categories and path to use.")]

TABLE_WIDTH = 110
TRUNCATION_NOTE = "Rates are truncated (not rounded) to 0.1 percentage point, as publishers print them."


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=json_default) + "\n")


def _fail(exc: DomainError) -> None:
    """One line on stderr naming the option at fault, and exit 1."""
    message = exc.message
    if exc.field:
        prefix = f"{exc.field}:"
        message = message[len(prefix) :].strip() if message.startswith(prefix) else message
        message = f"--{exc.field.replace('_', '-')}: {message}"
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


@contextmanager
def _session() -> Iterator[Session]:
    engine = make_engine(Settings().database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def _codes(categories: str | None) -> list[str] | None:
    return None if categories is None else categories.split(",")


def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{percent_truncated(fraction)}%"


def _t(tonnes: float | Decimal) -> str:
    return f"{tonnes:,.1f}"


def _whole_t(tonnes: float | Decimal) -> str:
    return f"{tonnes:,.0f}"


def _table(*headers: str) -> Table:
    table = Table(title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for header in headers:
        if header == "name":
            table.add_column(header, max_width=16, overflow="ellipsis", no_wrap=True)
        else:
            table.add_column(header, justify="left" if header == "key" else "right", no_wrap=True)
    return table


def _print_table(table: Table) -> None:
    # Wide enough that keys and tonnes are never cut, even when the output is piped (80 columns by default).
    wide = out if out.width >= TABLE_WIDTH else Console(soft_wrap=True, width=TABLE_WIDTH)
    wide.print(table)


def _scope_line(scope: ScopeRef) -> str:
    name = " / ".join(n for n in (scope.name_zh, scope.name_en) if n)
    key = scope.uscc or scope.key
    return f"{name} ({scope.kind} {key})" if name else f"{scope.kind} {key}"


def _categories_line(codes: list[str], source: str, series: str | None) -> str:
    origin = {"default": "the default target set", "target": "the target's set", "explicit": "as given"}[source]
    return f"{', '.join(codes)}  ({origin}{f', series {series}' if series else ''})"


def _rate_table(report: RateReport) -> None:
    out.print(f"Utilisation rate {report.year}: {_scope_line(report.scope)}", highlight=False)
    out.print(f"categories   {_categories_line(report.categories, report.category_source, report.series)}")
    target = _pct(report.target)
    upcoming = report.next_target
    if upcoming:
        target += f"   next: {upcoming.name} {_pct(upcoming.value)} in {upcoming.year}"
    out.print(f"rate         {_pct(report.rate)}{'   ABOVE 100%: a data error' if report.over_100 else ''}")
    out.print(f"target       {target}", highlight=False)
    out.print(
        f"tonnes       generated {_t(report.generated_t)}, utilised {_t(report.utilised_t)}"
        f" (of which prior-year stock {_t(report.utilised_prior_t)})",
        highlight=False,
    )
    gap = "-" if report.gap_pct is None else f"{report.gap_pct:.1f}%"
    out.print(
        f"manifests    {_t(report.manifest_utilised_t)} t received by licensed utilisers; gap {_t(report.gap_t)} t"
        f" ({gap} of declared)",
        highlight=False,
    )
    if report.rows is not None:
        table = _table("key", "name", "rate", "generated t", "utilised t", "prior t", "manifests t", "gap %")
        table.title = f"by {report.by}"
        for row in report.rows:
            table.add_row(*_row_cells(row.key or "-", row.name_zh or row.name_en or "", row))
        _print_table(table)
    out.print(TRUNCATION_NOTE, style="dim", highlight=False)


def _row_cells(key: str, name: str, row: RateFigures) -> list[str]:
    return [
        key,
        name,
        _pct(row.rate),
        _whole_t(row.generated_t),
        _whole_t(row.utilised_t),
        _whole_t(row.utilised_prior_t),
        _whole_t(row.manifest_utilised_t),
        "-" if row.gap_pct is None else f"{row.gap_pct:.1f}",
    ]


def rate(
    year: Annotated[int, typer.Option("--year", help="Reporting year.")],
    region: RegionOpt = None,
    park: ParkOpt = None,
    enterprise: EnterpriseOpt = None,
    categories: CategoriesOpt = None,
    target: TargetOpt = None,
    by: Annotated[str | None, typer.Option("--by", help="Break down by category, region, park or enterprise.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The comprehensive utilisation rate: utilised / (generated + utilised from prior-year stock)."""
    try:
        with _session() as session:
            report = rates.utilisation(
                session=session,
                principal=system_principal(),
                year=year,
                region=region,
                park=park,
                enterprise=enterprise,
                categories=_codes(categories),
                target=target,
                by=by,
            )
    except DomainError as exc:
        _fail(exc)
        return
    if as_json:
        _emit(report.model_dump(mode="json"))
    else:
        _rate_table(report)


def _projection_line(p: Projection) -> str:
    if p.projected_rate is None or p.target is None:
        return f"no projection: {p.reason}"
    verdict = "meets" if p.meets else "misses"
    return (
        f"{_pct(p.projected_rate)} in {p.target_year} from the {p.years[0]}-{p.years[-1]} trend"
        f" ({(p.slope_per_year or 0) * 100:+.2f} pt a year): {verdict} {p.target_name} {_pct(p.target)}"
        f" by {p.margin_pts:+.2f} pt"
    )


def trend(
    region: RegionOpt = None,
    park: ParkOpt = None,
    enterprise: EnterpriseOpt = None,
    categories: CategoriesOpt = None,
    target: TargetOpt = None,
    from_year: Annotated[int | None, typer.Option("--from", help="First year (default: the first with data).")] = None,
    to_year: Annotated[int | None, typer.Option("--to", help="Last year (default: the last with data).")] = None,
    window: Annotated[int, typer.Option("--window", help="Years of data the projection is fitted on.")] = (
        DEFAULT_WINDOW
    ),
    as_json: JsonOpt = False,
) -> None:
    """The rate year by year against the target path, and the projection to the next target."""
    try:
        with _session() as session:
            report = rates.rate_trend(
                session=session,
                principal=system_principal(),
                region=region,
                park=park,
                enterprise=enterprise,
                categories=_codes(categories),
                target=target,
                from_year=from_year,
                to_year=to_year,
                window=window,
            )
    except DomainError as exc:
        _fail(exc)
        return
    if as_json:
        _emit(report.model_dump(mode="json"))
        return
    _trend_table(report)


def _trend_table(report: TrendReport) -> None:
    out.print(f"Utilisation rate by year: {_scope_line(report.scope)}", highlight=False)
    out.print(f"categories   {_categories_line(report.categories, report.category_source, report.series)}")
    table = _table("year", "rate", "target", "generated t", "utilised t", "prior t")
    for y in report.years:
        table.add_row(
            str(y.year),
            _pct(y.rate),
            _pct(y.target),
            _whole_t(y.generated_t),
            _whole_t(y.utilised_t),
            _whole_t(y.utilised_prior_t),
        )
    _print_table(table)
    if report.targets:
        points = ", ".join(f"{p.name} {_pct(p.value)} in {p.year}" for p in report.targets)
        out.print(f"targets      {points}", highlight=False)
    out.print(f"projection   {_projection_line(report.projection)}", highlight=False)
    out.print(TRUNCATION_NOTE, style="dim", highlight=False)


def audit(
    year: Annotated[int, typer.Option("--year", help="Reporting year.")],
    region: RegionOpt = None,
    park: ParkOpt = None,
    enterprise: EnterpriseOpt = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only these flag kinds (comma-separated).")] = None,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many flags.")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many flags (default: all).")] = None,
    as_json: JsonOpt = False,
    xlsx: Annotated[
        Path | None, typer.Option("--xlsx", help="Write the audit report of the scope as a formatted workbook here.")
    ] = None,
    lang: LangOpt = Lang.zh,
) -> None:
    """The audit flags of a year: balance breaks, rates above 100%, weight gaps, licence and capacity faults."""
    if xlsx is not None:
        _audit_workbook(xlsx, year, region, park, enterprise, lang.value)
        return
    try:
        with _session() as session:
            page = flags.list_flags(
                session=session,
                principal=system_principal(),
                year=year,
                region=region,
                park=park,
                enterprise=enterprise,
                kinds=kind,
                offset=offset,
                limit=limit,
            )
    except DomainError as exc:
        _fail(exc)
        return
    if as_json:
        _emit(page.model_dump(mode="json"))
        return
    _audit_table(page)


def _enterprise_id(session: Session, enterprise: str) -> int:
    """The id of an enterprise named by credit code or id (not found: an error naming --enterprise)."""
    return int(resolve_scope(session=session, principal=system_principal(), enterprise=enterprise).ref.key)


def _audit_workbook(
    path: Path, year: int, region: str | None, park: int | None, enterprise: str | None, lang: str
) -> None:
    """The audit report of a scope and year as the audit page's workbook, written to `path`."""
    try:
        with _session() as session:
            ident = _enterprise_id(session, enterprise) if enterprise else None
            args = ScopeArgs(region=region, park=park, enterprise=ident)
            report = audit_export.audit_report(session=session, principal=system_principal(), year=year, args=args)
            body = audit_export.xlsx_bytes(report, lang, partial(translate, lang))
    except DomainError as exc:
        _fail(exc)
        return
    path.write_bytes(body)
    out.print(f"wrote {path} ({len(body):,} bytes)", highlight=False)


def inspection_sheet(
    enterprise: Annotated[str, typer.Option("--enterprise", help="Credit code (or id) of the enterprise.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the PDF.")],
    year: Annotated[int | None, typer.Option("--year", help="Reporting year (default: its latest).")] = None,
    lang: LangOpt = Lang.zh,
) -> None:
    """The inspection sheet of an enterprise (PDF): licences, flows, capacity by month, declaration, flags."""
    try:
        with _session() as session:
            printed = inspection.printed_sheet(
                session=session,
                principal=system_principal(),
                enterprise_id=_enterprise_id(session, enterprise),
                year=year,
                lang=lang.value,
                words=partial(translate, lang.value),
                now=datetime.now(UTC),
            )
    except DomainError as exc:
        _fail(exc)
        return
    out_path.write_bytes(printed.pdf)
    out.print(f"wrote {out_path} ({len(printed.pdf):,} bytes)", highlight=False)


def _audit_table(page: FlagPage) -> None:
    out.print(f"Audit flags {page.year}: {_scope_line(page.scope)}", highlight=False)
    for name, n in page.counts.items():
        out.print(f"  {name:<24} {n:>7,}", highlight=False)
    out.print(f"  {'total':<24} {page.count:>7,}", highlight=False)
    for flag in page.data:
        out.print(f"{flag.kind.value:<22} {flag.subject:<30} {flag.message}", highlight=False)


def register(cli: typer.Typer) -> None:
    """Add the report commands to the main command."""
    cli.command("rate")(rate)
    cli.command("trend")(trend)
    cli.command("audit")(audit)
    cli.command("inspection")(inspection_sheet)
