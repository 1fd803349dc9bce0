"""The audit report of a scope and year as XLSX and CSV, and the audit's map layers as GeoJSON.

The report is the drill-down's own figures (flows.pages.audit.drill_down, itself flows.waste.rates and
flows.waste.flags, the functions behind `circuflow rate` and `circuflow audit`), so the page, the files and the CLI
give the same numbers.
Header texts, sheet names and findings come from the catalogue in the reader's language (`lang`); keys stay stable.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.kernel.adcode import prefecture_of, region_prefix
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import render
from flows.kernel.principal import Principal
from flows.pages.audit import (
    AuditRow,
    DeclarationLine,
    DrillDown,
    ScopeArgs,
    args_of,
    drill_down,
    figure_rows,
    reference_target,
    resolve,
)
from flows.pages.map import RateClass, rate_class, region_layer, roles_of
from flows.waste import rates
from flows.waste.flags import Flag
from flows.waste.rates import RateBy, percent_truncated
from maps.layers import parks_layer
from models import Enterprise
from models.enums import RegionLevel
from models.quantity import json_default

ALL_ROWS = 1_000_000  # the report lists every declaration of its scope and year


def _word(lang: str, code: str) -> str:
    """A header, sheet name or label in `lang`."""
    return render(lang, code, {})


@dataclass
class AuditReport:
    """The audit report of a scope and year: its figures, its children's, the declarations behind them, the flags."""

    drill: DrillDown
    declarations: list[DeclarationLine]
    declaration_totals: dict[str, Decimal]
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
    return AuditReport(
        drill=drill,
        declarations=declared.declarations,
        declaration_totals=declared.totals,
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


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A value safe to put in a spreadsheet: text that a spreadsheet would run as a formula is quoted."""
    # Names and messages come from users' data; "=HYPERLINK(...)" in an enterprise name must stay text.
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _header(lang: str, keys: Sequence[str]) -> list[str]:
    return [_word(lang, f"audit.col.{key}") for key in keys]


def csv_bytes(report: AuditReport, lang: str = "en") -> bytes:
    """The breakdown as one CSV table (the scope's line first), UTF-8 with a BOM so that Excel reads Chinese."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_word(lang, "audit.col.year"), *_header(lang, ROW_COLUMNS)])
    for row in report.rows:
        values = row_values(row)
        writer.writerow([report.drill.year, *("" if values[k] is None else safe_cell(values[k]) for k in ROW_COLUMNS)])
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
        ws.append([safe_cell(value) for value in row])
    ws.freeze_panes = "A2"
    for index, text in enumerate(header, start=1):
        ws.column_dimensions[get_column_letter(index)].width = max(10, min(40, len(str(text)) + 4))


def xlsx_bytes(report: AuditReport, lang: str = "en") -> bytes:
    """The audit report as a workbook: summary, breakdown, the declarations of the formula, the flags."""
    d = report.drill
    wb = Workbook()
    total = row_values(d.total)

    def word(code: str) -> str:
        return _word(lang, code)

    summary: list[list[Any]] = [
        [word("audit.col.scope"), d.scope.name_zh or d.scope.key, d.scope.name_en or ""],
        [word("audit.col.key"), d.scope.key, d.scope.kind],
        [word("audit.col.year"), d.year, ""],
        [word("audit.col.categories"), ", ".join(d.report.categories), d.report.category_source],
        [word("audit.col.formula"), word("audit.formula"), ""],
        *([word(f"audit.col.{k}"), total[k], ""] for k in FIGURE_COLUMNS),
    ]
    _sheet(wb, word("audit.sheet.summary"), [word("audit.col.item"), word("audit.col.value"), ""], iter(summary), True)
    _sheet(
        wb,
        word("audit.sheet.breakdown"),
        _header(lang, ROW_COLUMNS),
        ([row_values(r)[k] for k in ROW_COLUMNS] for r in report.rows),
    )
    _sheet(
        wb,
        word("audit.sheet.declarations"),
        _header(lang, DECLARATION_COLUMNS),
        ([getattr(line, k) for k in DECLARATION_COLUMNS] for line in report.declarations),
    )
    _sheet(
        wb,
        word("audit.sheet.flags"),
        _header(lang, FLAG_COLUMNS),
        (
            [
                f.kind.value,
                f.year,
                f.subject,
                ", ".join(str(e) for e in f.enterprise_ids),
                f.finding().render(lang),
                json.dumps(f.evidence, ensure_ascii=False, default=json_default),
            ]
            for f in report.flags
        ),
    )
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Map layers: the classes are the map's (flows.pages.map.rate_class), against the year's target or else the next one


def _rate_properties(row: rates.RateFigures | None, reference: float | None) -> dict[str, Any]:
    if row is None:
        return {"rate": None, "rate_pct": None, "reference": reference, "class": RateClass.no_data.value}
    return {
        "rate": row.rate,
        "rate_pct": _pct(row.rate),
        "target": row.target,
        "reference": reference,
        "class": rate_class(row.rate, reference).value,
        "generated_t": row.generated_t,
        "utilised_t": row.utilised_t,
        "utilised_prior_t": row.utilised_prior_t,
        "manifest_utilised_t": row.manifest_utilised_t,
    }


def _collection(features: list[dict[str, Any]], year: int, report: rates.RateReport) -> dict[str, Any]:
    reference = reference_target(report)
    return {
        "type": "FeatureCollection",
        "year": year,
        "categories": report.categories,
        "reference": None if reference is None else {"value": reference[0], "year": reference[1]},
        "features": features,
    }


def regions_geojson(*, session: Session, principal: Principal, year: int, args: ScopeArgs) -> dict[str, Any]:
    """The divisions right below a region (a county: itself), with rate, target and how the rate stands."""
    if args.park is not None or args.enterprise is not None:
        raise InvalidInput("pages.audit.regions_layer_scope", field="region")
    scope = resolve(session=session, principal=principal, args=ScopeArgs(region=args.region))
    key = scope.ref.key
    if scope.ref.kind == "county":
        report = rates.utilisation(session=session, principal=principal, year=year, region=key)
        figures: dict[str | None, rates.RateFigures] = {key: report}
        layer = region_layer(session=session, level=RegionLevel.county, parent=prefecture_of(key))
        features = [f for f in layer["features"] if f["properties"]["adcode"] == key]
    else:
        report = rates.utilisation(session=session, principal=principal, year=year, region=key, by=RateBy.region.value)
        figures = {row.key: row for row in report.rows or []}
        level = RegionLevel.prefecture if scope.ref.kind == "province" else RegionLevel.county
        features = region_layer(session=session, level=level, parent=key)["features"]
    reference = reference_target(report)
    for feature in features:
        props = feature["properties"]
        props.update(_rate_properties(figures.get(props["adcode"]), reference[0] if reference else None))
        props["year"] = year
    return _collection(features, year, report)


def parks_geojson(*, session: Session, principal: Principal, year: int, args: ScopeArgs) -> dict[str, Any]:
    """The parks of a region (or one park) with their rate, target and how the rate stands."""
    if args.enterprise is not None:
        raise InvalidInput("pages.audit.parks_layer_scope", field="park")
    scope = resolve(session=session, principal=principal, args=ScopeArgs(region=args.region, park=args.park))
    if scope.ref.kind == "park":
        report = rates.utilisation(session=session, principal=principal, year=year, park=int(scope.ref.key))
        figures: dict[str | None, rates.RateFigures] = {scope.ref.key: report}
        features = [f for f in parks_layer(session=session)["features"] if str(f["id"]) == scope.ref.key]
    else:
        report = rates.utilisation(
            session=session, principal=principal, year=year, region=scope.ref.key, by=RateBy.park.value
        )
        figures = {row.key: row for row in report.rows or []}
        features = parks_layer(session=session, region_prefix=region_prefix(scope.ref.key))["features"]
    reference = reference_target(report)
    for feature in features:
        props = feature["properties"]
        props.update(_rate_properties(figures.get(str(props["id"])), reference[0] if reference else None))
        props["year"] = year
    return _collection(features, year, report)


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
    roles = roles_of(session, [r.id for r in rows])
    reference = reference_target(report)
    features = []
    for r in rows:
        props: dict[str, Any] = {
            "id": r.id,
            "uscc": r.uscc,
            "name_zh": r.name_zh,
            "name_en": r.name_en,
            "roles": roles.get(r.id, []),
            "prefecture_adcode": r.prefecture_adcode,
            "county_adcode": r.county_adcode,
            "park_id": r.park_id,
            "year": year,
            **_rate_properties(figures.get(str(r.id)), reference[0] if reference else None),
        }
        point = {"type": "Point", "coordinates": [r.lon, r.lat]}
        features.append({"type": "Feature", "id": r.id, "geometry": point, "properties": props})
    return _collection(features, year, report)
