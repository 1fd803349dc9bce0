"""A Chinese reader sees no English sentence: every page, form error, import refusal, error page and export in zh-CN.

Codes, names, units and credit codes aside, what a page shows in zh-CN is written in Chinese. The walk signs in as
each demo account in headless Chromium, opens every page of the route table, and reads the text a person sees (and
what a screen reader hears: titles, labels, placeholders); then it provokes the errors a person meets.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from app.main import create_app
from bench.pages_bench import demo_parameters, page_paths
from models import Enterprise, Park, Region
from models.db import make_engine
from tests.browser import DemoSite, browser_page, playwright_entry, sign_in

# Three or more words of Latin letters in a row: a sentence or a phrase, not a code (SW01, unmatched_utilisation),
# a unit (t, kg, CO2), a credit code or a single proper name.
SENTENCE = re.compile(r"\b[A-Za-z][a-z'’]+(?:[ ,;:]+[A-Za-z][a-z'’]+){2,}\b")

VISIBLE_TEXT = """() => {
    const parts = [document.title, document.body.innerText];
    for (const el of document.querySelectorAll("[title], [aria-label], [placeholder], [alt]")) {
        for (const name of ["title", "aria-label", "placeholder", "alt"]) {
            const value = el.getAttribute(name);
            if (value) parts.push(value);
        }
    }
    return parts.join("\\n");
}"""


def english_sentences(text: str, names: frozenset[str] = frozenset()) -> list[str]:
    """The English sentences (three or more Latin words in a row) in a text, English proper names aside."""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    return sorted({match.group(0) for match in SENTENCE.finditer(text)})


def english_names(url: str) -> frozenset[str]:
    """The English names of the places and enterprises of a database: proper names, shown beside the Chinese."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            found = {
                name
                for model in (Enterprise, Park, Region)
                for name in session.execute(select(model.name_en)).scalars()
                if name
            }
    finally:
        engine.dispose()
    return frozenset(found)


def test_the_detector_sees_an_english_sentence_and_lets_codes_pass() -> None:
    assert english_sentences("重量：weight must be zero or more") == ["weight must be zero or more"]
    assert english_sentences("类别 SW01，路线 cement_admixture，12.5 t，CO2，91510100MA6CGFKX4N，English") == []


def _seen(page: Any) -> str:
    page.wait_for_load_state("networkidle")
    text: str = page.evaluate(VISIBLE_TEXT)
    return text


ACCOUNTS = [
    "admin",
    "auditor.sichuan",
    "auditor.panzhihua",
    "park.panzhihua",
    "ent.generator",
    "ent.utiliser",
    "ent.recycler",
]


@pytest.mark.parametrize("username", ACCOUNTS)
def test_every_page_in_chinese_shows_no_english_sentence(demo_site: DemoSite, username: str) -> None:
    """Every page of the route table, as each demo account, including the refusals (403, 404) it meets."""
    app = create_app(demo_site.settings)
    engine = make_engine(demo_site.settings.database_url)
    try:
        params = demo_parameters(engine)
    finally:
        engine.dispose()
    names = english_names(demo_site.settings.database_url)
    found: dict[str, list[str]] = {}
    with playwright_entry()() as pw, browser_page(pw, demo_site.url) as (page, _requests, _errors):
        sign_in(page, demo_site, username)
        for path in [*page_paths(app), "/batches/999999999", "/no/such/page"]:
            if path == "/login" or path.endswith((".geojson", ".csv", ".xlsx", ".pdf")):
                continue  # exports are checked below
            page.goto(demo_site.url + path.format(**params))
            assert page.get_attribute("html", "lang") == "zh-CN", path
            if sentences := english_sentences(_seen(page), names):
                found[path] = sentences
    assert found == {}


def test_form_errors_and_import_refusals_are_in_chinese(demo_site: DemoSite) -> None:
    """A batch form with every field wrong, and an import whose rows are refused, as the generator sees them."""
    found: dict[str, list[str]] = {}
    with playwright_entry()() as pw, browser_page(pw, demo_site.url) as (page, _requests, _errors):
        sign_in(page, demo_site, "ent.generator", then="/batches/new")
        page.fill("#f-weight", "1,5")
        page.locator('button[name="action"][value="dispatch"]').click()
        if sentences := english_sentences(_seen(page)):
            found["batch form"] = sentences
        assert page.locator('[role="alert"]').count() > 0, "the form refused nothing"
        page.fill("#f-weight", "-3")
        page.locator('button[name="action"][value="draft"]').click()
        if sentences := english_sentences(_seen(page)):
            found["batch form, negative weight"] = sentences
        assert page.locator('[aria-invalid="true"]').count() > 0, "no field is marked wrong"

        page.goto(f"{demo_site.url}/import")
        bad = (
            "联单编号,移出单位统一社会信用代码,接收单位统一社会信用代码,废物类别,利用处置方式,移出量(吨),移出时间\n"
            "X-1,91510100MA6CGFKX4N,00000000000000000X,SW99,焚烧,1,5,2031-13-01\n"
            ",,,,,abc,\n"
        )
        page.select_option("#import-kind", "manifests")
        page.set_input_files(
            "#import-file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode("utf-8")}]
        )
        page.locator('form[action="/import"] button[type="submit"]').click()
        if sentences := english_sentences(_seen(page)):
            found["import refusal"] = sentences
        assert "不是数字" in _seen(page), "the refusal does not name the bad number"
        page.set_input_files(
            "#import-file", files=[{"name": "empty.csv", "mimeType": "text/csv", "buffer": b"\xff\xfe\x00"}]
        )
        page.locator('form[action="/import"] button[type="submit"]').click()
        if sentences := english_sentences(_seen(page)):
            found["unreadable import"] = sentences
        assert page.locator('[role="alert"]').count() > 0, "the unreadable file was not refused"
    assert found == {}


@pytest.mark.parametrize("username", ["auditor.sichuan", "ent.generator"])
def test_every_export_in_chinese_has_chinese_headers(demo_site: DemoSite, username: str) -> None:
    """The CSV and XLSX downloads of the route table, opened as a spreadsheet program would."""
    app = create_app(demo_site.settings)
    engine = make_engine(demo_site.settings.database_url)
    try:
        params = demo_parameters(engine)
    finally:
        engine.dispose()
    names = english_names(demo_site.settings.database_url)
    exports = [path for path in page_paths(app) if path.endswith((".csv", ".xlsx"))]
    assert exports, "no export in the route table"
    found: dict[str, list[str]] = {}
    with playwright_entry()() as pw, browser_page(pw, demo_site.url) as (page, _requests, _errors):
        sign_in(page, demo_site, username)
        for path in exports:
            response = page.request.get(demo_site.url + path.format(**params))
            if response.status in (403, 404):
                continue  # not this user's export
            assert response.status == 200, (path, response.status)
            if path.endswith(".csv"):
                rows = list(csv.reader(io.StringIO(response.body().decode("utf-8-sig"))))
                text = "\n".join(" ".join(row) for row in rows[:1])
            else:
                book = load_workbook(io.BytesIO(response.body()), read_only=True)
                cells = [str(sheet.title) for sheet in book.worksheets]
                for sheet in book.worksheets:
                    for row in sheet.iter_rows(max_row=3, values_only=True):
                        cells.extend(str(value) for value in row if isinstance(value, str))
                text = "\n".join(cells)
            if sentences := english_sentences(text, names):
                found[path] = sentences
    assert found == {}
