"""The audit report of a scope and year as XLSX and CSV, and the audit's map layers as GeoJSON.

The report is the drill-down's own figures (flows.audit_workspace.drill_down, itself flows.rates and flows.flags, the
functions behind `circuflow rate` and `circuflow audit`), so the page, the files and the CLI give the same numbers.
Header texts come from the caller (`label`), so that the files speak the reader's language; keys stay stable.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows import rates
from flows.audit_workspace import (
    AuditRow,
    DeclarationLine,
    DrillDown,
    ScopeArgs,
    args_of,
    drill_down,
    figure_rows,
    resolve,
)
from flows.errors import InvalidInput
from flows.flags import Flag
from flows.principal import Principal
from flows.rates import RateBy, percent_truncated
from flows.scope import adcode_prefix
from maps.layers import parks_layer, regions_layer
from models import Enterprise, EnterpriseRoleLink
from models.enums import RegionLevel

Label = Callable[[str], str]
ALL_ROWS = 1_000_000  # the report lists every declaration of its scope and year


def _same(key: str) -> str:
    # Without translations, a header is its key: "audit.col.generated_t" -> "generated_t".
    return key.rsplit(".", 1)[-1]


@dataclass
class AuditReport:
    """The audit report of a scope and year: its figures, its children's, the declarations behind them, the flags."""

    drill: DrillDown
    declarations: list[DeclarationLine]
    declaration_totals: dict[str, float]
    manifests: int  # batches behind the bottom-up figure
    flags: list[Flag]

    @property
    def rows(self) -> list[AuditRow]:
        """The scope's own line, then every child of every table."""
        return [self.drill.total, *(row for table in self.drill.tables for row in table.rows)]


def audit_report(*, session: Session, principal: Principal, year: int, args: ScopeArgs) -> AuditReport:
    """The figures of the drill-down of a scope and year, with every declaration summed and every open flag."""
    drill = drill_down(session=session, principal=principal, year=year, args=args, batch_limit=1)
    here = drill.args
    declared = figure_rows(
        session=session,
        principal=principal,
        kind="declarations",
        year=year,
        args=here,
        categories=drill.report.categories,
        limit=ALL_ROWS,
    )
    shipped = figure_rows(
        session=session,
        principal=principal,
        kind="batches",
        year=year,
        args=here,
        categories=drill.report.categories,
        limit=1,
    )
    return AuditReport(
        drill=drill,
        declarations=declared.declarations,
        declaration_totals=declared.totals,
        manifests=shipped.count,
        flags=drill.flags,
    )


# ---------------------------------------------------------------------------------------------------------------
# Tables


FIGURE_COLUMNS = (
    "generated_t",
    "utilised_t",
    "utilised_prior_t",
    "disposed_t",
    "disposed_prior_t",
    "stored_t",
    "dumped_t",
    "rate_pct",
    "rate",
    "target_pct",
    "manifest_utilised_t",
    "gap_t",
    "declarations",
    "flags",
)
ROW_COLUMNS = ("level", "key", "name_zh", "name_en", *FIGURE_COLUMNS)


def _pct(fraction: float | None) -> float | None:
    # Truncated to 0.1 pt as published; a spreadsheet format would round instead, so the number itself is cut.
    return None if fraction is None else float(percent_truncated(fraction))


def row_values(row: AuditRow) -> dict[str, Any]:
    """One line of the breakdown as plain values (rates in percent truncated to 0.1 pt, and at full precision)."""
    f, x = row.figures, row.extras
    return {
        "level": row.kind,
        "key": row.key,
        "name_zh": row.name_zh,
        "name_en": row.name_en,
        "generated_t": f.generated_t,
        "utilised_t": f.utilised_t,
        "utilised_prior_t": f.utilised_prior_t,
        "disposed_t": x.disposed_t,
        "disposed_prior_t": x.disposed_prior_t,
        "stored_t": x.stored_t,
        "dumped_t": x.dumped_t,
        "rate_pct": _pct(f.rate),
        "rate": f.rate,
        "target_pct": None if f.target is None else round(f.target * 100, 4),
        "manifest_utilised_t": f.manifest_utilised_t,
        "gap_t": f.gap_t,
        "declarations": f.declarations,
        "flags": row.flags,
    }


def _header(label: Label, keys: Sequence[str]) -> list[str]:
    return [label(f"audit.col.{key}") for key in keys]


def csv_bytes(report: AuditReport, label: Label = _same) -> bytes:
    """The breakdown as one CSV table (the scope's line first), UTF-8 with a BOM so that Excel reads Chinese."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([label("audit.col.year"), *_header(label, ROW_COLUMNS)])
    for row in report.rows:
        values = row_values(row)
        writer.writerow([report.drill.year, *("" if values[k] is None else values[k] for k in ROW_COLUMNS)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


DECLARATION_COLUMNS = (
    "id",
    "enterprise_id",
    "enterprise_zh",
    "category_code",
    "generated_t",
    "utilised_t",
    "utilised_prior_t",
    "disposed_t",
    "disposed_prior_t",
    "stored_t",
    "dumped_t",
)
FLAG_COLUMNS = ("kind", "year", "subject", "enterprise_ids", "message", "evidence")


def _sheet(wb: Workbook, title: str, header: list[str], rows: Iterator[list[Any]], first: bool = False) -> None:
    ws = wb.active if first else wb.create_sheet()
    assert ws is not None
    ws.title = title[:31]  # Excel's limit
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(row)
    ws.freeze_panes = "A2"
    for index, text in enumerate(header, start=1):
        ws.column_dimensions[get_column_letter(index)].width = max(10, min(40, len(str(text)) + 4))


def xlsx_bytes(report: AuditReport, label: Label = _same) -> bytes:
    """The audit report as a workbook: summary, breakdown, the declarations of the formula, the flags."""
    d = report.drill
    wb = Workbook()
    total = row_values(d.total)
    summary: list[list[Any]] = [
        [label("audit.col.scope"), d.scope.name_zh or d.scope.key, d.scope.name_en or ""],
        [label("audit.col.key"), d.scope.key, d.scope.kind],
        [label("audit.col.year"), d.year, ""],
        [label("audit.col.categories"), ", ".join(d.report.categories), d.report.category_source],
        [label("audit.col.formula"), label("audit.formula"), ""],
        *([label(f"audit.col.{k}"), total[k], ""] for k in FIGURE_COLUMNS),
        [label("audit.col.manifests"), report.manifests, ""],
    ]
    _sheet(
        wb, label("audit.sheet.summary"), [label("audit.col.item"), label("audit.col.value"), ""], iter(summary), True
    )
    _sheet(
        wb,
        label("audit.sheet.breakdown"),
        _header(label, ROW_COLUMNS),
        ([row_values(r)[k] for k in ROW_COLUMNS] for r in report.rows),
    )
    _sheet(
        wb,
        label("audit.sheet.declarations"),
        _header(label, DECLARATION_COLUMNS),
        ([getattr(line, k) for k in DECLARATION_COLUMNS] for line in report.declarations),
    )
    _sheet(
        wb,
        label("audit.sheet.flags"),
        _header(label, FLAG_COLUMNS),
        (
            [
                f.kind.value,
                f.year,
                f.subject,
                ", ".join(str(e) for e in f.enterprise_ids),
                f.message,
                json.dumps(f.evidence, ensure_ascii=False),
            ]
            for f in report.flags
        ),
    )
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Map layers


def rate_class(rate: float | None, target: float | None) -> str:
    """How a rate stands: no_data, data_error (above 100%), meets or below the target, or no_target."""
    if rate is None:
        return "no_data"
    if rate > 1:
        return "data_error"
    if target is None:
        return "no_target"
    return "meets" if rate >= target else "below"


def _rate_properties(row: rates.RateFigures) -> dict[str, Any]:
    pct = _pct(row.rate)
    return {
        "rate": row.rate,
        "rate_pct": pct,
        "target": row.target,
        "class": rate_class(row.rate, row.target),
        "generated_t": row.generated_t,
        "utilised_t": row.utilised_t,
        "utilised_prior_t": row.utilised_prior_t,
        "manifest_utilised_t": row.manifest_utilised_t,
    }


def _region_scope(session: Session, principal: Principal, args: ScopeArgs) -> tuple[str, str]:
    scope = resolve(session=session, principal=principal, args=ScopeArgs(region=args.region))
    if scope.ref.kind not in ("province", "prefecture", "county"):  # pragma: no cover - region scopes only
        raise InvalidInput("region: give a region", field="region")
    return scope.ref.key, scope.ref.kind


def regions_geojson(*, session: Session, principal: Principal, year: int, args: ScopeArgs) -> dict[str, Any]:
    """The divisions right below a region (a county: itself), with rate, target and how the rate stands."""
    if args.park is not None or args.enterprise is not None:
        raise InvalidInput("region: the regions layer covers a region", field="region")
    key, kind = _region_scope(session, principal, args)
    if kind == "county":
        report = rates.utilisation(session=session, principal=principal, year=year, region=key)
        figures: dict[str | None, rates.RateFigures] = {key: report}
        layer = regions_layer(session=session, level=RegionLevel.county, parent=key[:4] + "00")
        layer["features"] = [f for f in layer["features"] if f["properties"]["adcode"] == key]
    else:
        report = rates.utilisation(session=session, principal=principal, year=year, region=key, by=RateBy.region.value)
        figures = {row.key: row for row in report.rows or []}
        level = RegionLevel.prefecture if kind == "province" else RegionLevel.county
        layer = regions_layer(session=session, level=level, parent=key)
    for feature in layer["features"]:
        row = figures.get(feature["properties"]["adcode"])
        if row is not None:
            feature["properties"].update(_rate_properties(row))
        else:
            feature["properties"].update({"rate": None, "rate_pct": None, "target": report.target, "class": "no_data"})
        feature["properties"]["year"] = year
    layer["year"] = year
    layer["categories"] = report.categories
    return layer


def parks_geojson(*, session: Session, principal: Principal, year: int, args: ScopeArgs) -> dict[str, Any]:
    """The parks of a region (or one park) with their rate, target and how the rate stands."""
    if args.enterprise is not None:
        raise InvalidInput("park: the parks layer covers a region or a park", field="park")
    scope = resolve(session=session, principal=principal, args=ScopeArgs(region=args.region, park=args.park))
    if scope.ref.kind == "park":
        report = rates.utilisation(session=session, principal=principal, year=year, park=int(scope.ref.key))
        figures: dict[str | None, rates.RateFigures] = {scope.ref.key: report}
        layer = parks_layer(session=session)
        layer["features"] = [f for f in layer["features"] if str(f["properties"]["id"]) == scope.ref.key]
    else:
        report = rates.utilisation(
            session=session, principal=principal, year=year, region=scope.ref.key, by=RateBy.park.value
        )
        figures = {row.key: row for row in report.rows or []}
        layer = parks_layer(session=session, region_prefix=adcode_prefix(scope.ref.key))
    for feature in layer["features"]:
        row = figures.get(str(feature["properties"]["id"]))
        props = feature["properties"]
        if row is not None:
            props.update(_rate_properties(row))
        else:
            props.update({"rate": None, "rate_pct": None, "target": report.target, "class": "no_data"})
        props["year"] = year
    layer["year"] = year
    layer["categories"] = report.categories
    return layer


def enterprises_geojson(*, session: Session, principal: Principal, year: int, args: ScopeArgs) -> dict[str, Any]:
    """The enterprises of a scope as points, with their roles and their rate of the year."""
    scope = resolve(session=session, principal=principal, args=args)
    here = args_of(scope.ref)
    by = None if scope.ref.kind == "enterprise" else RateBy.enterprise.value
    report = rates.utilisation(
        session=session,
        principal=principal,
        year=year,
        region=here.region,
        park=here.park,
        enterprise=here.enterprise,
        by=by,
    )
    figures: dict[str | None, rates.RateFigures] = (
        {row.key: row for row in report.rows or []} if by else {scope.ref.key: report}
    )
    query = (
        sa_select(
            col(Enterprise.id),
            col(Enterprise.uscc),
            col(Enterprise.name_zh),
            col(Enterprise.name_en),
            col(Enterprise.lon),
            col(Enterprise.lat),
            col(Enterprise.prefecture_adcode),
            col(Enterprise.county_adcode),
            col(Enterprise.park_id),
        )
        .where(scope.condition)
        .order_by(col(Enterprise.id))
    )
    rows = list(session.execute(query))
    roles: dict[int, list[str]] = {}
    if rows:
        links = session.execute(
            sa_select(col(EnterpriseRoleLink.enterprise_id), col(EnterpriseRoleLink.role))
            .join(Enterprise, col(Enterprise.id) == col(EnterpriseRoleLink.enterprise_id))
            .where(scope.condition)
        )
        for enterprise_id, role in links:
            roles.setdefault(enterprise_id, []).append(str(role))
    features = []
    for r in rows:
        props: dict[str, Any] = {
            "id": r.id,
            "uscc": r.uscc,
            "name_zh": r.name_zh,
            "name_en": r.name_en,
            "roles": sorted(roles.get(r.id, [])),
            "prefecture_adcode": r.prefecture_adcode,
            "county_adcode": r.county_adcode,
            "park_id": r.park_id,
            "year": year,
        }
        row = figures.get(str(r.id))
        props.update(_rate_properties(row) if row is not None else {"rate": None, "rate_pct": None, "class": "no_data"})
        features.append(
            {
                "type": "Feature",
                "id": r.id,
                "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "year": year, "categories": report.categories, "features": features}
