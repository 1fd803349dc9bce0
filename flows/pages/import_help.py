"""The import page's help: a template file per kind (Chinese headers, CSV and XLSX) and the reader's import history.

The columns are the importers' own (flows.waste.imports): a template's headers are read back by the same header
aliases, so a filled template imports as it is. The history is the audit log's one entry per import.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.kernel.clock import stored_utc
from flows.kernel.messages import render
from flows.kernel.principal import Principal
from flows.waste import imports
from models import AuditLog
from models.enums import UserRole

# The importers' column specs, by kind (the importers hold them as class data).
SPECS: dict[str, Any] = {
    "enterprises": imports._Enterprises.spec,
    "declarations": imports._Declarations.spec,
    "manifests": imports._Manifests.spec,
    "licences": imports._Licences.spec,
    "targets": imports._Targets.spec,
    "categories": imports._Categories.spec,
}
TABLE_KINDS = {spec.table: kind for kind, spec in SPECS.items()}
HISTORY_LIMIT = 20


def _cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def chinese_header(name: str) -> str:
    """The Chinese header of a column: the first Chinese alias the importer reads as that column."""
    for spec in SPECS.values():
        for alias, canonical in spec.aliases:
            if canonical == name and _cjk(alias):
                return str(alias)
    for alias, canonical in imports.HEADER_ALIASES.items():
        if canonical == name and _cjk(alias):
            return alias.replace("(", "（").replace(")", "）")
    if name.endswith("_t") and (base := chinese_header(name[:-2] + "_kg")) != name[:-2] + "_kg":
        return base.replace("千克", "吨")
    return name


@dataclass(frozen=True)
class TemplateColumn:
    """One column of a template: its importer name, its Chinese header, and whether a row must fill it."""

    name: str
    header: str
    required: bool


def template_columns(kind: str) -> list[TemplateColumn]:
    """The columns of a kind's template: required first (one of each pair), then the optional ones."""
    spec = SPECS[kind]
    required = [*spec.required, *(pair[0] for pair in spec.one_of)]
    optional = [*spec.optional, *(pair[1] for pair in spec.one_of)]

    def header(name: str) -> str:
        # A declaration's figures are tonnes: the unit in the header says so, and the importer reads it as the same.
        said = chinese_header(name)
        return said + "（吨）" if kind == "declarations" and name.endswith("_t") and "吨" not in said else said

    return [TemplateColumn(n, header(n), True) for n in required] + [
        TemplateColumn(n, header(n), False) for n in optional
    ]


def template_file(kind: str, fmt: str, lang: str) -> bytes:
    """A kind's template: the header row alone (CSV), or with a sheet telling each column (XLSX)."""
    columns = template_columns(kind)
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow([c.header for c in columns])
        return ("\ufeff" + out.getvalue()).encode("utf-8")  # with a BOM, so that Excel reads the Chinese
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = kind
    ws.append([c.header for c in columns])
    for cell, column in zip(ws[1], columns, strict=True):
        cell.font = Font(bold=column.required)
    ws.freeze_panes = "A2"
    notes = wb.create_sheet(render(lang, "pages.import_help.notes", {})[:31])
    notes.append([render(lang, f"pages.import_help.{k}", {}) for k in ("header", "name", "required")])
    for column in columns:
        notes.append([column.header, column.name, render(lang, f"pages.import_help.required.{column.required}", {})])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class PastImport:
    """One import the reader made, as the audit log holds it."""

    at: datetime
    kind: str
    file: str
    sha256: str
    rows: int
    inserted: int
    updated: int
    skipped: int
    href: str | None  # where what was imported can be seen


def imported_href(kind: str, principal: Principal) -> str | None:
    """Where the rows of a kind land for this reader: the batch list, its own enterprise page, the directory."""
    if kind == "manifests":
        return "/batches?direction=out" if principal.role is UserRole.enterprise else "/batches"
    if kind == "declarations" and principal.enterprise_id is not None:
        return f"/enterprises/{principal.enterprise_id}"
    return "/enterprises"


def import_history(*, session: Session, principal: Principal, limit: int = HISTORY_LIMIT) -> list[PastImport]:
    """The reader's latest imports, newest first, read from the audit log (one entry per import)."""
    if principal.user_id is None:
        return []
    rows = session.execute(
        sa_select(col(AuditLog.at), col(AuditLog.table_name), col(AuditLog.after))
        .where(col(AuditLog.user_id) == principal.user_id, col(AuditLog.action) == "import")
        .order_by(col(AuditLog.id).desc())
        .limit(limit)
    ).all()
    found = []
    for at, table, after in rows:
        kind = TABLE_KINDS.get(table, table)
        a = after or {}
        found.append(
            PastImport(
                at=stored_utc(at),
                kind=kind,
                file=str(a.get("file", "")),
                sha256=str(a.get("sha256", "")),
                rows=int(a.get("rows", 0)),
                inserted=int(a.get("inserted", 0)),
                updated=int(a.get("updated", 0)),
                skipped=int(a.get("skipped", 0)),
                href=imported_href(kind, principal),
            )
        )
    return found
