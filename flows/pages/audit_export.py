"""The audit report of a scope and year as XLSX and CSV, and the audit's map layers as GeoJSON.

The report is the drill-down's own figures (flows.pages.audit.drill_down, itself flows.waste.rates and
flows.waste.flags, the functions behind `circuflow rate` and `circuflow audit`), so the page, the files and the CLI
give the same numbers.
Header texts, sheet names and findings come from the catalogue in the reader's language (`lang`); keys stay stable.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.kernel.adcode import prefecture_of, region_prefix
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Message, Named, render
from flows.kernel.principal import Principal
from flows.pages.audit import (
    OUTSIDE,
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
from flows.pages.printable import Words
from flows.waste import flag_work, rates
from flows.waste.flags import NAMED_PARAMS, Flag
from flows.waste.rates import RateBy, percent_truncated
from maps.layers import parks_layer
from models import Enterprise, WasteCategory
from models.enums import RegionLevel

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
    flag_states: list[str] = field(default_factory=list)  # one per flag (flag_states)
    usccs: dict[int, str] = field(default_factory=dict)  # credit codes of the enterprises the report names
    category_names: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # Chinese and English
    enterprise_names: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # those the flags name

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
    named = {line.enterprise_id for line in declared.declarations}
    named |= {int(row.key) for table in drill.tables if table.kind == "enterprise" for row in table.rows if row.key}
    codes = {*drill.report.categories, *(line.category_code for line in declared.declarations)}
    return AuditReport(
        drill=drill,
        declarations=declared.declarations,
        declaration_totals=declared.totals,
        flags=drill.flags,
        flag_states=flag_states(session=session, flags=drill.flags),
        usccs=_usccs(session, named),
        category_names={
            code: (zh, en)
            for code, zh, en in session.execute(
                sa_select(col(WasteCategory.code), col(WasteCategory.name_zh), col(WasteCategory.name_en)).where(
                    col(WasteCategory.code).in_(sorted(codes))
                )
            )
        },
        enterprise_names=enterprise_names(session, drill.flags),
    )


def _usccs(session: Session, ids: set[int]) -> dict[int, str]:
    wanted, found = sorted(ids), {}
    for start in range(0, len(wanted), 500):  # a bounded IN list per query
        query = sa_select(col(Enterprise.id), col(Enterprise.uscc)).where(
            col(Enterprise.id).in_(wanted[start : start + 500])
        )
        found.update({int(i): str(u) for i, u in session.execute(query)})
    return found


# ---------------------------------------------------------------------------------------------------------------
# Flags in words: their state, and their findings with names where the catalogue would print ids


FLAG_STATES = ("open", "under_review", "resolved", "dismissed")


def flag_states(*, session: Session, flags: Sequence[Flag]) -> list[str]:
    """The state of each flag (one of FLAG_STATES), as the reports print it: what the bureau's work on it says."""
    return [str(status) for status in flag_work.statuses(session=session, flags=flags)]


def enterprise_names(session: Session, flags: Sequence[Flag]) -> dict[int, tuple[str, str | None]]:
    """Chinese and English names of the enterprises the flags concern or name in their findings."""
    ids = {e for f in flags for e in f.enterprise_ids}
    ids |= {v for f in flags for k, v in f.params.items() if k in NAMED_PARAMS and isinstance(v, int)}
    if not ids:
        return {}
    query = sa_select(col(Enterprise.id), col(Enterprise.name_zh), col(Enterprise.name_en)).where(
        col(Enterprise.id).in_(sorted(ids))
    )
    return {row[0]: (row[1], row[2]) for row in session.execute(query)}


def local(lang: str, name_zh: str | None, name_en: str | None) -> str:
    """A name in the reader's language (the Chinese one when no English one is known)."""
    return (name_en if lang == "en" and name_en else name_zh) or ""


def finding_text(flag: Flag, lang: str, names: Mapping[int, tuple[str, str | None]]) -> str:
    """A flag's finding in `lang`, naming enterprises by name rather than by id."""
    params = dict(flag.params)
    for key in NAMED_PARAMS:
        ident = params.get(key)
        if isinstance(ident, int) and ident in names:
            params[key] = Named(*names[ident])
    return Message(flag.code, params).render(lang)


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


DECLARED_FIGURES = (
    "generated_t",
    "utilised_t",
    "utilised_prior_t",
    "disposed_t",
    "disposed_prior_t",
    "stored_t",
    "dumped_t",
)

# Number formats as a bureau writes its figures: tonnes to one decimal with separators, 万吨 to two, percentages
# (already truncated to 0.1 pt) to one decimal, counts whole.
T_FORMAT = "#,##0.0"
WAN_FORMAT = "#,##0.00"
PCT_FORMAT = '0.0"%"'
COUNT_FORMAT = "#,##0"
RATE_FORMAT = "0.000000"
WAN = Decimal(10_000)
TEXT_WIDTH = (10, 60)  # the narrowest and widest column, in characters


def _format_of(key: str) -> str | None:
    if key.endswith("_t"):
        return T_FORMAT
    if key.endswith("_pct"):
        return PCT_FORMAT
    return {"rate": RATE_FORMAT, "declarations": COUNT_FORMAT, "flags": COUNT_FORMAT, "year": "0"}.get(key)


def _display_width(value: Any, number_format: str | None) -> int:
    if value is None:
        return 0
    if number_format and isinstance(value, (int, float, Decimal)):
        return len(f"{value:,.2f}") + 1
    text = str(value)
    # A Chinese character takes two columns of a spreadsheet's width.
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _start(wb: Workbook, title: str, header: list[str], first: bool) -> Worksheet:
    """A sheet with its bold, wrapped header row, frozen so that it stays in view."""
    ws = wb.active if first else wb.create_sheet()
    assert isinstance(ws, Worksheet)
    ws.title = title[:31]  # Excel's limit
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    return ws


def _write(
    wb: Workbook, title: str, header: list[str], formats: list[str | None], rows: Iterator[list[Any]], first: bool
) -> None:
    """One table on its own sheet: number formats per column, widths from the content."""
    ws = _start(wb, title, header, first)
    widths = [min(_display_width(text, None), 24) for text in header]
    for row in rows:
        ws.append([safe_cell(value) for value in row])
        for index, (cell, fmt) in enumerate(zip(ws[ws.max_row], formats, strict=True)):
            if fmt is not None and isinstance(cell.value, (int, float, Decimal)):
                cell.number_format = fmt
            widths[index] = max(widths[index], _display_width(cell.value, fmt))
    for index, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(index)].width = max(TEXT_WIDTH[0], min(TEXT_WIDTH[1], width + 2))


def _category(report: AuditReport, lang: str, code: str) -> str:
    zh, en = report.category_names.get(code, ("", None))
    return f"{code} {local(lang, zh, en)}".strip()


def _level(words: Words, kind: str) -> str:
    return words(f"report.level.{kind}")


def xlsx_bytes(report: AuditReport, lang: str, words: Words) -> bytes:
    """The audit report as a formatted workbook, one sheet per table: summary, breakdown, declarations, flags.

    Headers and findings in the reader's language, names rather than ids, tonnes, 万吨 and percentages formatted
    as the pages write them. `words` gives a catalogue key's text in `lang` (the pages' catalogue).
    """
    d = report.drill
    wb = Workbook()
    total = row_values(d.total)
    zh = lang == "zh-CN"

    def col(key: str) -> str:
        return words(f"audit.col.{key}")

    def name_of(row: AuditRow) -> str:
        if row.kind == "park" and row.key == OUTSIDE:
            return words("audit.outside_parks")
        return local(lang, row.name_zh, row.name_en) or (row.key or "")

    def code_of(row: AuditRow) -> str:
        if row.kind == "enterprise":
            return report.usccs.get(int(row.key or 0), "")
        return "" if row.kind == "park" else row.key or ""

    join = "、" if zh else ", "
    # The summary: what the report covers, then each figure of the scope; in Chinese, tonnes in 万吨 beside them.
    ws = _start(
        wb,
        words("audit.sheet.summary"),
        [col("item"), col("value"), words("report.col.value_wan_t") if zh else ""],
        True,
    )
    for fact in (
        [col("scope"), local(lang, d.scope.name_zh, d.scope.name_en) or d.scope.key],
        [words("report.col.level"), _level(words, d.scope.kind)],
        [col("key"), d.scope.uscc or ("" if d.scope.kind == "park" else d.scope.key)],
        [col("year"), d.year],
        [
            col("categories"),
            join.join(_category(report, lang, c) for c in d.report.categories),
            words(f"report.categories_{d.report.category_source}"),
        ],
        [col("formula"), words("audit.formula")],
    ):
        ws.append([safe_cell(v) for v in fact])
    for key in FIGURE_COLUMNS:
        if key == "rate":
            continue  # the summary gives the rate as published; the breakdown keeps it at full precision
        value = total[key]
        wan = Decimal(value) / WAN if zh and key.endswith("_t") and value is not None else None
        ws.append([col(key), value, wan])
        ws.cell(ws.max_row, 2).number_format = _format_of(key) or "General"
        ws.cell(ws.max_row, 3).number_format = WAN_FORMAT
    ws.column_dimensions["A"].width = 34
    ws.column_dimensions["B"].width = 60
    ws.column_dimensions["C"].width = 16
    for row in ws.iter_rows(min_row=2, max_col=2):
        row[1].alignment = Alignment(wrap_text=True, vertical="top", horizontal="left")

    figures = list(FIGURE_COLUMNS)
    _write(
        wb,
        words("audit.sheet.breakdown"),
        [words("report.col.level"), col("key"), words("report.col.name"), *(col(k) for k in figures)],
        [None, None, None, *(_format_of(k) for k in figures)],
        ([_level(words, r.kind), code_of(r), name_of(r), *(row_values(r)[k] for k in figures)] for r in report.rows),
        False,
    )
    _write(
        wb,
        words("audit.sheet.declarations"),
        [
            words("report.col.enterprise"),
            words("report.col.uscc"),
            words("report.col.category"),
            *(col(k) for k in DECLARED_FIGURES),
        ],
        [None, None, None, *(T_FORMAT for _ in DECLARED_FIGURES)],
        (
            [
                local(lang, line.enterprise_zh, line.enterprise_en),
                report.usccs.get(line.enterprise_id, ""),
                _category(report, lang, line.category_code),
                *(getattr(line, k) for k in DECLARED_FIGURES),
            ]
            for line in report.declarations
        ),
        False,
    )
    names = report.enterprise_names
    _write(
        wb,
        words("audit.sheet.flags"),
        [
            words("report.col.kind"),
            col("year"),
            words("report.col.enterprises"),
            words("report.col.finding"),
            words("report.col.state"),
        ],
        [None, "0", None, None, None],
        (
            [
                words(f"flag.{f.kind.value}"),
                f.year,
                join.join(local(lang, *names[e]) if e in names else str(e) for e in f.enterprise_ids),
                finding_text(f, lang, names),
                words(f"inspection.flag_state.{state}"),
            ]
            for f, state in zip(report.flags, report.flag_states, strict=True)
        ),
        False,
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
