"""Daily work in headless Chromium: the header's search, the lists' download links, lists as cards on a phone, and
one year kept across pages, in Chinese and English. Screenshots: daily-search, daily-batches-phone, daily-import."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from app.settings import Settings
from flows.access import accounts
from models import Declaration
from tests.browser import browser_page, screenshot, session_cookie_for, wait_until
from tests.test_browser_batches import _prepare
from tests.world import t

PHONE = {"width": 390, "height": 844}


def _cookie(session: Session, settings: Settings, username: str) -> str:
    return session_cookie_for(session, settings, accounts.get_user(session=session, username=username))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_search_and_download_from_the_header_and_the_list(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, tmp_path: Path
) -> None:
    _prepare(session)
    shipper = _cookie(session, settings, "ent1")
    bureau = _cookie(session, settings, "bureau_pzh")
    with sync_playwright() as pw:
        with browser_page(pw, live_server, cookie=shipper) as (page, _requests, errors):
            page.goto(live_server + "/batches")
            box = page.get_by_role("searchbox", name="联单编号、统一社会信用代码、企业名称或电池编码")
            box.fill("sc2024-0000105")
            box.press("Enter")
            page.wait_for_url("**/batches/*")
            assert "SC2024-0000105" in page.locator("h1").inner_text()

            page.goto(live_server + "/batches?status=received")
            link = page.locator("#downloads a[data-format=csv]")
            assert "status=received" in (link.get_attribute("href") or "")
            with page.expect_download() as info:
                link.click()
            saved = tmp_path / "batches.csv"
            info.value.save_as(saved)
            raw = saved.read_bytes()
            assert raw.startswith("\ufeff".encode())
            rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
            assert rows[0][0] == "联单编号"
            assert {r[1] for r in rows[1:]} == {"received"} and len(rows) > 1
            assert not errors, errors

        with browser_page(pw, live_server, cookie=bureau, locale="en") as (page, _requests, errors):
            page.goto(live_server + "/?lang=en")
            page.goto(live_server + "/search?q=Taihe")
            hits = page.locator("#search-hits li")
            assert hits.count() == 2
            assert all(k == "enterprise" for k in hits.evaluate_all("els => els.map(e => e.dataset.kind)"))
            screenshot(page, "daily-search")
            assert not errors, errors


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_lists_are_cards_on_a_phone_and_the_header_stays_small(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, locale: str
) -> None:
    _prepare(session)
    shipper = _cookie(session, settings, "ent1")
    with sync_playwright() as pw:
        with browser_page(pw, live_server, cookie=shipper, locale=locale, **PHONE) as (page, _requests, errors):
            page.goto(live_server + "/batches")
            page.locator("#batch-table tbody tr").first.wait_for()
            # Nothing scrolls sideways, and the header leaves most of the screen to the list.
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            assert page.locator(".site-header").bounding_box()["height"] < 0.25 * PHONE["height"]
            card = page.locator("#batch-table tbody tr").first
            for cell in ("th", "td.party", "td.num", "td:last-child"):
                shown = card.locator(cell).first.bounding_box()
                assert shown is not None and shown["x"] >= 0 and shown["x"] + shown["width"] <= PHONE["width"], cell
            status = card.locator("td:last-child").inner_text()
            assert status.strip()
            label = page.evaluate(
                "getComputedStyle(document.querySelector('#batch-table tbody td.num'), '::before').content"
            )
            assert label.strip('"') in ("重量（吨）", "Weight (t)") or len(label) > 2
            if locale == "zh-CN":
                screenshot(page, "daily-batches-phone")
            page.goto(live_server + "/import")
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            assert page.locator("#import-templates a[href$='declarations.xlsx']").is_visible()
            assert not errors, errors


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_year_chosen_on_one_page_opens_the_next(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings
) -> None:
    w, _ = _prepare(session)
    session.add(Declaration(enterprise_id=w.e1, category_code="SW01", year=2024, generated_t=t(90), utilised_t=t(70)))
    session.commit()
    bureau = _cookie(session, settings, "bureau_sc")
    with sync_playwright() as pw:
        with browser_page(pw, live_server, cookie=bureau, locale="en") as (page, _requests, errors):
            page.goto(live_server + "/map")
            assert page.locator("#map-year").input_value() == "2024"  # the latest declared year in scope
            page.goto(live_server + "/sankey")
            page.locator("#sankey-year").select_option("2023")
            wait_until(page, "location.search.includes('year=2023')")
            for url in ("/map", "/dashboard", "/audit", f"/parks/{w.park_a}"):
                page.goto(live_server + url)
                if url == "/map":
                    assert page.locator("#map-year").input_value() == "2023"
                else:
                    assert page.locator(".year-switch [aria-current=page]").first.inner_text() == "2023", url
            page.goto(live_server + "/import")
            screenshot(page, "daily-import")
            assert not errors, errors
