"""Reports a bureau hands on, in headless Chromium on the Sichuan demo: the provincial auditor finds the inspection
sheet on the enterprise page and in the audit drill-down, and the formatted workbook beside it, in Chinese and in
English. The PDF's pages, rendered by poppler, and the pages are saved as pictures (tests/_artifacts; docs/screenshots
with CIRCUFLOW_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session

from app.i18n import translate
from flows.access.accounts import system_principal
from flows.pages import places
from flows.waste.flags import list_flags
from models.db import make_engine
from tests.browser import (
    ARTIFACTS,
    DOCS_SCREENSHOTS,
    DemoSite,
    browser_page,
    playwright_entry,
    screenshot,
    sign_in,
)

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def _flagged_enterprise(site: DemoSite) -> tuple[int, int]:
    """The demo's enterprise with the most flags in its latest year, and that year."""
    engine = make_engine(site.settings.database_url)
    try:
        with Session(engine) as session:
            year = places.latest_year(session=session)
            assert year is not None
            found = list_flags(session=session, principal=system_principal(), year=year, limit=None).data
            counts = Counter(e for f in found for e in f.enterprise_ids)
            return counts.most_common(1)[0][0], year
    finally:
        engine.dispose()


def _pdf_pictures(pdf: bytes, name: str, tmp: Path) -> list[Path]:
    """Each page of the PDF as a PNG, saved as the screenshots are."""
    source = tmp / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "70", "-png", str(source), str(tmp / name)], check=True)
    pictures = sorted(tmp.glob(f"{name}-*.png"))
    ARTIFACTS.mkdir(exist_ok=True)
    for index, picture in enumerate(pictures, start=1):
        shutil.copyfile(picture, ARTIFACTS / f"{name}-{index}.png")
        if os.environ.get("CIRCUFLOW_UPDATE_SCREENSHOTS") and index <= 2:
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(picture, DOCS_SCREENSHOTS / f"{name}-{index}.png")
    return pictures


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_auditor_takes_the_inspection_sheet_and_the_workbook(
    demo_site: DemoSite, tmp_path: Path, lang: str
) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is missing")
    enterprise_id, year = _flagged_enterprise(demo_site)
    sheet_href = f"/enterprises/{enterprise_id}/inspection.pdf?year={year}"
    base = demo_site.url
    with playwright_entry()() as pw:
        for width_name, (width, height) in WIDTHS.items():
            with browser_page(pw, base, locale=lang, width=width, height=height) as (page, _requests, errors):
                sign_in(page, demo_site, "auditor.sichuan", then=f"/enterprises/{enterprise_id}?year={year}")
                link = page.locator("#inspection-link")
                assert link.inner_text().strip() == translate(lang, "inspection.link")
                assert link.get_attribute("href") == sheet_href
                link.scroll_into_view_if_needed()
                assert link.is_visible() and page.evaluate("document.documentElement.scrollWidth") <= width
                screenshot(page, f"reports-enterprise-{lang}-{width_name}", full_page=False)

                page.goto(f"{base}/audit?enterprise={enterprise_id}&year={year}")
                exported = page.locator('a[data-export="inspection"]')
                assert exported.get_attribute("href") == sheet_href
                assert exported.get_attribute("download") is None  # the PDF opens in the browser's viewer
                assert translate(lang, "audit.exports.inspection") in exported.inner_text()
                card = page.locator(".audit-exports")
                card.scroll_into_view_if_needed()
                screenshot(page, f"reports-audit-{lang}-{width_name}", full_page=False)
                workbook_href = page.locator('a[data-export="xlsx"]').get_attribute("href")
                assert errors == []

            if width_name != "desktop":
                continue
            # Chromium shows a PDF in its own viewer (headless: nothing to read back), so the browser's session
            # fetches what the links name, as the viewer and the download would.
            with browser_page(pw, base, locale=lang) as (page, _requests, errors):
                sign_in(page, demo_site, "auditor.sichuan", then="/audit")
                answer = page.request.get(f"{base}{sheet_href}", headers={"Accept-Language": lang})
                assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
                pdf = answer.body()
                book_answer = page.request.get(f"{base}{workbook_href}", headers={"Accept-Language": lang})
                assert book_answer.status == 200
                book = load_workbook(io.BytesIO(book_answer.body()))
                assert book.sheetnames[0] == translate(lang, "audit.sheet.summary")
                assert errors == []
            pictures = _pdf_pictures(pdf, f"reports-inspection-{lang}", tmp_path)
            assert len(pictures) >= 2
            text = subprocess.run(
                ["pdftotext", "-layout", str(tmp_path / f"reports-inspection-{lang}.pdf"), "-"],
                capture_output=True,
                check=True,
            ).stdout.decode()
            for key in ("inspection.title", "inspection.identity", "inspection.licences"):
                assert translate(lang, key) in text, key
