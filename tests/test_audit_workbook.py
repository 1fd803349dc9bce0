"""The audit report as a workbook a bureau hands on: Chinese (or English) headers, names not ids, tonnes, 万吨 and
percentages formatted, findings in words with their state; the same file from the audit page, the API and the CLI,
its figures recomputed here from the declaration and manifest rows."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from openpyxl.workbook import Workbook
from sqlalchemy import select as sa_select
from sqlmodel import Session, col
from typer.testing import CliRunner

from app.cli import cli
from app.i18n import translate
from flows.waste.flags import list_flags
from models import Declaration, Enterprise, WasteCategory
from tests.inspection_site import GENERATOR, UTILISER, YEAR, Site, as_, build_site

PZH = "510400"
runner = CliRunner()


def _book(content: bytes) -> Workbook:
    return load_workbook(io.BytesIO(content))


def _table(book: Workbook, index: int) -> tuple[list[str], list[list[Any]]]:
    rows = [list(r) for r in book.worksheets[index].iter_rows(values_only=True)]
    return [str(h) for h in rows[0]], rows[1:]


def _formats(book: Workbook, index: int, column: int) -> set[str]:
    ws = book.worksheets[index]
    return {ws.cell(r, column).number_format for r in range(2, ws.max_row + 1) if ws.cell(r, column).value is not None}


def _declared(session: Session) -> list[tuple[Declaration, Enterprise]]:
    query = (
        sa_select(Declaration, Enterprise)
        .join(Enterprise, col(Enterprise.id) == col(Declaration.enterprise_id))
        .where(col(Declaration.year) == YEAR, col(Enterprise.prefecture_adcode) == PZH)
        .order_by(col(Declaration.id))
    )
    return [(d, e) for d, e in session.execute(query).all()]


def _check_workbook(book: Workbook, session: Session, site: Site, lang: str) -> None:
    words = {key: translate(lang, key) for key in ("audit.sheet.summary", "audit.sheet.flags")}
    assert book.sheetnames[0] == words["audit.sheet.summary"] and book.sheetnames[3] == words["audit.sheet.flags"]
    for ws in book.worksheets:
        assert ws.freeze_panes == "A2"
        assert all(c.font.bold for c in ws[1] if c.value)
    declared = _declared(session)
    generated = sum((d.generated_t for d, _ in declared), Decimal(0))
    utilised = sum((d.utilised_t for d, _ in declared), Decimal(0))

    # Summary: the scope by name, figures formatted, 万吨 beside tonnes in Chinese.
    header, rows = _table(book, 0)
    facts = {str(r[0]): r[1:] for r in rows}
    assert facts[translate(lang, "audit.col.scope")][0] == ("攀枝花市" if lang == "zh-CN" else "Panzhihua")
    row = facts[translate(lang, "audit.col.generated_t")]
    assert Decimal(str(row[0])) == generated == 120
    summary = book.worksheets[0]
    cells = {str(summary.cell(r, 1).value): r for r in range(2, summary.max_row + 1)}
    at = cells[translate(lang, "audit.col.generated_t")]
    assert summary.cell(at, 2).number_format == "#,##0.0"
    rate_at = cells[translate(lang, "audit.col.rate_pct")]
    assert summary.cell(rate_at, 2).value == 75.0 and summary.cell(rate_at, 2).number_format == '0.0"%"'
    if lang == "zh-CN":
        assert header[2] == "万吨"
        assert Decimal(str(row[1])) == generated / 10_000 and summary.cell(at, 3).number_format == "#,##0.00"
    else:
        assert row[1] is None

    # Breakdown: names in the reader's language, the generator's park and the rest, figures that add up.
    header, rows = _table(book, 1)
    name, key = header.index(translate(lang, "report.col.name")), header.index(translate(lang, "audit.col.key"))
    total = rows[0]
    assert total[key] == PZH
    for column, expected in (("generated_t", generated), ("utilised_t", utilised), ("manifest_utilised_t", 57)):
        assert Decimal(str(total[header.index(translate(lang, f"audit.col.{column}"))])) == expected
    assert total[header.index(translate(lang, "audit.col.gap_t"))] == utilised - 57
    assert "#,##0.0" in _formats(book, 1, header.index(translate(lang, "audit.col.generated_t")) + 1)
    names = {r[name] for r in rows[1:]}
    assert "攀枝花钒钛园区" in names  # the park has no English name: its Chinese one stands
    assert ("Renhe District" if lang == "en" else "仁和区") in names  # a county in the reader's language
    levels = {r[0] for r in rows[1:]}
    assert levels == {translate(lang, "report.level.park"), translate(lang, "report.level.county")}

    # Declarations: every one of the formula, by name and credit code, the category named.
    header, rows = _table(book, 2)
    assert len(rows) == len(declared) == 1
    (line,) = rows
    d, e = declared[0]
    category = session.get(WasteCategory, d.category_code)
    assert category is not None
    assert line[0] == (GENERATOR[0] if lang == "zh-CN" else GENERATOR[1]) and line[1] == e.uscc
    assert line[2] == f"SW01 {category.name_zh if lang == 'zh-CN' else category.name_en}"
    assert [Decimal(str(v)) for v in line[3:5]] == [d.generated_t, d.utilised_t]
    assert _formats(book, 2, 4) == {"#,##0.0"}

    # Flags: every flag of the scope, in words, with names, and its state.
    header, rows = _table(book, 3)
    flags = list_flags(session=session, principal=site.world.principals["bureau_pzh"], year=YEAR, region=PZH)
    assert len(rows) == flags.count >= 3
    kinds = {translate(lang, f"flag.{f.kind.value}") for f in flags.data}
    assert {r[0] for r in rows} == kinds
    user = UTILISER[0] if lang == "zh-CN" else UTILISER[1]
    assert any(user in str(r[2]) and user in str(r[3]) for r in rows)  # the capacity flag names the utiliser
    assert {r[4] for r in rows} == {translate(lang, "inspection.flag_state.open")}
    for r in rows:
        assert not any(str(v).startswith(("{", "[")) for v in r)  # no JSON evidence
        assert f"enterprise {site.utiliser}" not in str(r[3]) and f"企业 {site.utiliser} " not in str(r[3])
    if lang == "zh-CN":
        assert all(not any(ch.isascii() and ch.isalpha() for ch in h) for h in header)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_audit_page_gives_the_formatted_workbook(client: TestClient, session: Session, lang: str) -> None:
    site = build_site(client, session)
    response = client.get(f"/audit/export.xlsx?region={PZH}&year={YEAR}", headers=as_(site.world, "bureau_pzh", lang))
    assert response.status_code == 200
    _check_workbook(_book(response.content), session, site, lang)


def test_the_api_gives_the_same_reports(client: TestClient, session: Session) -> None:
    site = build_site(client, session)
    url = f"/api/v1/reports/audit.xlsx?region={PZH}&year={YEAR}&lang=en"
    response = client.get(url, headers=as_(site.world, "bureau_sc", "zh-CN"))
    assert response.status_code == 200 and "510400-2025.xlsx" in response.headers["content-disposition"]
    _check_workbook(_book(response.content), session, site, "en")
    page = client.get(f"/audit/export.csv?region={PZH}&year={YEAR}", headers=as_(site.world, "bureau_pzh"))
    api = client.get(f"/api/v1/reports/audit.csv?region={PZH}&year={YEAR}", headers=as_(site.world, "bureau_pzh"))
    assert api.status_code == 200 and api.content == page.content
    for refused in ("audit.pdf", f"audit.xlsx?region={PZH}", f"audit.xlsx?year={YEAR}&lang=fr"):
        assert client.get(f"/api/v1/reports/{refused}", headers=as_(site.world, "admin")).status_code == 422
    assert client.get(url, headers=as_(site.world, "bureau_dy")).status_code == 403
    assert client.get(url, headers=as_(site.world, "ent1")).status_code == 403


def test_the_cli_writes_the_workbook_and_the_sheet(
    client: TestClient, session: Session, cli_env: dict[str, str], tmp_path: Path
) -> None:
    site = build_site(client, session)
    book = tmp_path / "audit.xlsx"
    result = runner.invoke(cli, ["audit", "--year", str(YEAR), "--region", PZH, "--xlsx", str(book)])
    assert result.exit_code == 0, result.output
    _check_workbook(load_workbook(book), session, site, "zh-CN")
    flags = runner.invoke(cli, ["audit", "--year", str(YEAR), "--region", PZH, "--json"])
    assert flags.exit_code == 0 and json.loads(flags.stdout)["count"] >= 3  # the flags as before
    uscc = session.get(Enterprise, site.utiliser)
    assert uscc is not None
    pdf = tmp_path / "sheet.pdf"
    done = runner.invoke(cli, ["inspection", "--enterprise", uscc.uscc, "--out", str(pdf), "--lang", "en"])
    assert done.exit_code == 0, done.output
    assert pdf.read_bytes().startswith(b"%PDF-")
    missing = runner.invoke(cli, ["inspection", "--enterprise", "999999", "--out", str(pdf)])
    assert missing.exit_code == 1 and "--enterprise" in missing.output
