"""Every list as a download: one table shape, as CSV (UTF-8 with a BOM) or XLSX, headers in the reader's language.

A page builds its `Table` from the same read model and the same filters it shows, so the file holds what the page
lists, every page of it, up to `ROW_CAP` rows (the table says when it stopped there). Tonnes stay exact decimals.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlmodel import Session

from flows.battery.audit import BatteryFlag
from flows.battery.chain import Party
from flows.kernel.clock import CST
from flows.kernel.messages import render
from flows.kernel.principal import Principal
from flows.pages import places
from flows.pages.audit_export import safe_cell
from flows.pages.batches import BatchQuery, list_batches
from flows.pages.batteries import RecentBattery
from flows.pages.sankey import Path
from models.quantity import json_default

ROW_CAP = 50_000  # rows in one file; a wider list is narrowed by its filters first
CHUNK = 1_000  # rows read per query while filling a file
FORMATS = ("csv", "xlsx")
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Table:
    """A list as plain rows: `columns` are keys whose headers come from the catalogue (`exports.col.<key>`)."""

    name: str  # the file's stem and, through `exports.sheet.<name>`, the sheet's title
    columns: tuple[str, ...]
    rows: list[list[Any]]
    truncated: bool = False  # more rows matched than ROW_CAP


def header(lang: str, table: Table) -> list[str]:
    """The column headers in `lang`."""
    return [render(lang, f"exports.col.{key}", {}) for key in table.columns]


def plain(value: Any) -> Any:
    """A cell value: None blank, Decimal exact, times in Beijing time, enums as their value, lists joined."""
    match value:
        case None:
            return ""
        case bool():
            return "1" if value else "0"
        case Enum():
            return value.value
        case datetime():
            aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # stored times are UTC
            return aware.astimezone(CST).strftime("%Y-%m-%d %H:%M")
        case list() | tuple():
            return ", ".join(str(plain(v)) for v in value)
        case dict():
            return json.dumps(value, ensure_ascii=False, default=json_default)
        case Decimal():
            # Kilograms stored, tonnes shown: at most three decimals, never in exponent form.
            return format(value, "f")
    return value


def csv_bytes(table: Table, lang: str) -> bytes:
    """The table as CSV, UTF-8 with a BOM so that Excel reads Chinese."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header(lang, table))
    for row in table.rows:
        writer.writerow([safe_cell(plain(v)) for v in row])
    if table.truncated:
        writer.writerow([render(lang, "exports.truncated", {"cap": ROW_CAP})])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value  # openpyxl writes a Decimal's own digits: the file holds the exact tonnes
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return safe_cell(plain(value))


def xlsx_bytes(table: Table, lang: str) -> bytes:
    """The table as a one-sheet workbook, bold frozen header."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = render(lang, f"exports.sheet.{table.name}", {})[:31]  # Excel's limit
    head = header(lang, table)
    ws.append(head)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in table.rows:
        ws.append([_xlsx_cell(v) for v in row])
    if table.truncated:
        ws.append([render(lang, "exports.truncated", {"cap": ROW_CAP})])
    ws.freeze_panes = "A2"
    for index, text in enumerate(head, start=1):
        ws.column_dimensions[get_column_letter(index)].width = max(10, min(40, len(text) * 2 + 2))
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def file_bytes(table: Table, lang: str, fmt: str) -> bytes:
    """The table in one of FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"format: one of {', '.join(FORMATS)}")
    return csv_bytes(table, lang) if fmt == "csv" else xlsx_bytes(table, lang)


def _name(lang: str, zh: str | None, en: str | None) -> str:
    return (en or zh or "") if lang == "en" else (zh or en or "")


# ---------------------------------------------------------------------------------------------------------------
# The pages' tables

BATCH_COLUMNS = (
    "number",
    "status",
    "year",
    "category_code",
    "category",
    "route",
    "shipper_uscc",
    "shipper",
    "receiver_uscc",
    "receiver",
    "weight_dispatched_t",
    "weight_received_t",
    "rejected_t",
    "discrepancy_t",
    "dispatched_at",
    "created_at",
)


def batches_table(*, session: Session, principal: Principal, query: BatchQuery, lang: str) -> Table:
    """The batch list with its filters and sort order, every page of it up to ROW_CAP."""
    rows: list[list[Any]] = []
    page, count = 1, 0
    while len(rows) < ROW_CAP:
        found = list_batches(session=session, principal=principal, query=replace(query, page=page, page_size=CHUNK))
        count = found.count
        for b in found.rows:
            rows.append(
                [
                    b.number,
                    b.status,
                    b.year,
                    b.category_code,
                    _name(lang, b.category_zh, b.category_en),
                    b.route,
                    b.shipper.uscc,
                    _name(lang, b.shipper.name_zh, b.shipper.name_en),
                    b.receiver.uscc,
                    _name(lang, b.receiver.name_zh, b.receiver.name_en),
                    b.weight_dispatched_t,
                    b.weight_received_t,
                    b.rejected_t,
                    b.discrepancy_t,
                    b.dispatched_at,
                    b.created_at,
                ]
            )
        if found.page >= found.pages:
            break
        page += 1
    return Table("batches", BATCH_COLUMNS, rows[:ROW_CAP], truncated=count > ROW_CAP)


ENTERPRISE_COLUMNS = ("uscc", "name_zh", "name_en", "roles", "prefecture", "county", "park")


def enterprises_table(
    *,
    session: Session,
    principal: Principal,
    lang: str,
    q: str | None,
    prefecture: str | None,
    park_id: int | None,
    role: str | None,
) -> Table:
    """The enterprise directory with its filters, every page of it up to ROW_CAP."""
    rows: list[list[Any]] = []
    count = 0
    while len(rows) < ROW_CAP:
        found = places.directory_page(
            session=session,
            principal=principal,
            q=q,
            prefecture=prefecture,
            park_id=park_id,
            role=role,
            offset=len(rows),
            limit=CHUNK,
        )
        count = found.count
        for e in found.rows:
            rows.append(
                [
                    e.uscc,
                    e.name_zh,
                    e.name_en,
                    e.roles,
                    _name(lang, e.prefecture.name_zh, e.prefecture.name_en) if e.prefecture else None,
                    _name(lang, e.county.name_zh, e.county.name_en) if e.county else None,
                    _name(lang, e.park.name_zh, e.park.name_en) if e.park else None,
                ]
            )
        if not found.rows or len(rows) >= count:
            break
    return Table("enterprises", ENTERPRISE_COLUMNS, rows[:ROW_CAP], truncated=count > ROW_CAP)


TONNE_COLUMNS = (
    "batches",
    "received_batches",
    "received_t",
    "in_transit_batches",
    "in_transit_t",
    "utilised_t",
)


def _tonnes(t: places.Tonnes) -> list[Any]:
    return [t.batches, t.received_batches, t.received_t, t.in_transit_batches, t.in_transit_t, t.utilised_t]


ENTERPRISE_FLOW_COLUMNS = ("year", "direction", "counterpart_uscc", "counterpart", "category_code", "category")


def enterprise_flows_table(page: places.EnterprisePage, lang: str) -> Table:
    """An enterprise's flows of the year, received and sent, by counterpart and category."""
    rows: list[list[Any]] = []
    for direction, flows in (("in", page.flows_in), ("out", page.flows_out)):
        for r in flows:
            c = r.counterpart
            rows.append(
                [
                    page.year,
                    render(lang, f"exports.direction.{direction}", {}),
                    c.uscc,
                    _name(lang, c.name_zh, c.name_en),
                    r.category.key,
                    _name(lang, r.category.name_zh, r.category.name_en),
                    *_tonnes(r.tonnes),
                ]
            )
    return Table("enterprise_flows", ENTERPRISE_FLOW_COLUMNS + TONNE_COLUMNS, rows[:ROW_CAP], len(rows) > ROW_CAP)


PARK_FLOW_COLUMNS = (
    "year",
    "part",
    "shipper_uscc",
    "shipper",
    "receiver_uscc",
    "receiver",
    "category_code",
    "category",
)


def park_flows_table(page: places.ParkPage, lang: str) -> Table:
    """A park's flows of the year: the circular links inside it, then each category within, leaving and entering."""
    rows: list[list[Any]] = []
    for link in page.links:
        s, r = link.shipper, link.receiver
        rows.append(
            [
                page.year,
                render(lang, "exports.part.link", {}),
                s.uscc,
                _name(lang, s.name_zh, s.name_en),
                r.uscc,
                _name(lang, r.name_zh, r.name_en),
                link.category.key,
                _name(lang, link.category.name_zh, link.category.name_en),
                *_tonnes(link.tonnes),
            ]
        )
    for b in page.boundary:
        for part in ("within", "leaving", "entering"):
            rows.append(
                [
                    page.year,
                    render(lang, f"exports.part.{part}", {}),
                    None,
                    None,
                    None,
                    None,
                    b.category.key,
                    _name(lang, b.category.name_zh, b.category.name_en),
                    *_tonnes(getattr(b, part)),
                ]
            )
    return Table("park_flows", PARK_FLOW_COLUMNS + TONNE_COLUMNS, rows[:ROW_CAP], len(rows) > ROW_CAP)


SANKEY_COLUMNS = ("year", "origin_code", "origin", "via", "end", "tonnes", "utilised_t", "batches")


def sankey_table(year: int, which: str, paths: Sequence[Path], label: Callable[[str, Any], str | None]) -> Table:
    """One Sankey diagram as its table: one row per path; `label(position, key)` names a node in the reader's words."""
    rows = [
        [
            year,
            p.origin,
            label("origin", p.origin),
            label("via", p.via) if p.via is not None else None,
            label("end", p.end) if p.end is not None else None,
            p.tonnes,
            p.utilised_t,
            p.batches,
        ]
        for p in paths
    ]
    return Table(f"sankey_{which}", SANKEY_COLUMNS, rows[:ROW_CAP], len(rows) > ROW_CAP)


BATTERY_FLAG_COLUMNS = ("kind", "year", "on", "code", "level", "holder_uscc", "holder", "counterpart", "finding")


def battery_flags_table(flags: Iterable[BatteryFlag], count: int, lang: str) -> Table:
    """The chain flags of batteries with their filters (the caller reads up to ROW_CAP of them)."""
    rows = [
        [
            f.kind,
            f.year,
            f.on.isoformat(),
            f.code,
            f.level,
            f.enterprise.uscc if f.enterprise else None,
            _name(lang, f.enterprise.name_zh, f.enterprise.name_en) if f.enterprise else None,
            _name(lang, f.counterpart.name_zh, f.counterpart.name_en) if f.counterpart else None,
            f.finding().render(lang),
        ]
        for f in flags
    ]
    return Table("battery_flags", BATTERY_FLAG_COLUMNS, rows[:ROW_CAP], truncated=count > ROW_CAP)


RECENT_BATTERY_COLUMNS = ("code", "level", "state", "event", "occurred_at", "reported_at", "holder_uscc", "holder")
RECENT_BATTERY_CAP = 5_000  # the latest batteries reported; the whole register is the audit's, by year and region


def recent_batteries_table(rows: Iterable[RecentBattery], holders: Mapping[int, Party], lang: str) -> Table:
    """The batteries reported lately in the reader's scope, newest first, with their holders (by id)."""
    found = []
    for r in rows:
        holder = holders.get(r.holder_id) if r.holder_id is not None else None
        found.append(
            [
                r.code,
                r.level,
                r.state,
                r.event,
                r.at,
                r.reported_at,
                holder.uscc if holder else None,
                _name(lang, holder.name_zh, holder.name_en) if holder else None,
            ]
        )
    return Table("batteries", RECENT_BATTERY_COLUMNS, found[:RECENT_BATTERY_CAP], len(found) > RECENT_BATTERY_CAP)
