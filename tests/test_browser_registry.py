"""Reference data kept on pages, in a real headless Chromium, in Chinese and English, on a desktop and a phone."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, select

from app.settings import Settings
from flows.access import accounts
from models import Enterprise, EnterpriseRoleLink, WhitelistEntry
from tests.browser import browser_page, screenshot, session_cookie_for
from tests.world import World, build_world

PICK = """([lon, lat]) => {
    const el = document.getElementById("picker-map");
    window.circuflowPickers.get(el).fire("click", {latlng: L.latLng(lat, lon)});
}"""


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session, with_tokens=False)


@pytest.fixture
def admin_cookie(session: Session, settings: Settings, world: World) -> str:
    user = accounts.get_user(session=session, username="admin")
    return session_cookie_for(session, settings, user)


def _unexpected(errors: list[str]) -> list[str]:
    """Script errors, less the browser's note of the refusals the journey provokes on purpose (422)."""
    return [e for e in errors if "status of 422" not in e]


def _uscc(session: Session, enterprise_id: int) -> str:
    e = session.get(Enterprise, enterprise_id)
    assert e is not None
    return e.uscc


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_whitelist_journey(
    sync_playwright: Any, live_server: str, world: World, admin_cookie: str, session: Session
) -> None:
    w = world
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=admin_cookie) as (page, requests, errors):
        page.goto(f"{live_server}/batteries")
        page.click("#whitelist-link")
        assert page.locator("h1").inner_text() == "动力电池白名单"
        page.fill("#wl-uscc", _uscc(session, w.e2))
        page.select_option("#wl-activity", "recycling")
        page.fill("#wl-edition", "2024年本")
        page.fill("#wl-batch", "第一批")
        page.fill("#wl-listed_on", "2024-12-20")
        page.click("#whitelist-submit")
        page.wait_for_selector("#whitelist-saved")
        row = page.locator("#whitelist tbody tr")
        assert row.count() == 1 and "再生利用" in row.inner_text() and "在册" in row.inner_text()
        page.fill("#wl-uscc", _uscc(session, w.e1))
        page.select_option("#wl-activity", "cascade_use")
        page.fill("#wl-edition", "2024年本")
        page.fill("#wl-batch", "第一批")
        page.fill("#wl-listed_on", "2024-12-20")
        page.fill("#wl-delisted_on", "2024-01-01")
        page.click("#whitelist-submit")
        assert "须晚于公告日期" in page.locator("#wl-delisted_on-error").inner_text()
        page.fill("#wl-delisted_on", "")
        page.click("#whitelist-submit")
        page.wait_for_selector("#whitelist-saved")
        assert page.locator("#whitelist tbody tr").count() == 2
        first = page.locator("#whitelist tbody tr").first
        first.locator('input[name="delisted_on"]').fill("2025-03-01")
        first.locator(".registry-delist button").click()
        page.wait_for_selector("#whitelist-saved")
        assert page.locator('#whitelist tbody tr[data-listed="no"]').count() == 1
        screenshot(page, "registry-whitelist-zh")
        assert not _unexpected(errors), errors
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=admin_cookie, locale="en") as (page, _, errors):
        page.goto(f"{live_server}/whitelist")
        assert page.locator("h1").inner_text() == "Battery whitelist"
        assert "Delisted" in page.locator("#whitelist").inner_text() or page.locator("details").count() == 2
        screenshot(page, "registry-whitelist-en")
        assert not _unexpected(errors), errors
    for locale in ("zh-CN", "en"):
        with (
            sync_playwright() as pw,
            browser_page(pw, live_server, cookie=admin_cookie, locale=locale, width=390, height=844) as (
                page,
                _,
                errors,
            ),
        ):
            page.goto(f"{live_server}/whitelist")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            screenshot(page, f"registry-whitelist-phone-{'zh' if locale == 'zh-CN' else 'en'}")
            assert not _unexpected(errors), errors
    session.expire_all()
    assert len(session.exec(select(WhitelistEntry)).all()) == 2
    foreign = [url for url in requests if not url.startswith(live_server)]
    assert not foreign, foreign


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_enterprise_and_park_edit_journey(
    sync_playwright: Any, live_server: str, world: World, admin_cookie: str, session: Session
) -> None:
    w = world
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=admin_cookie) as (page, requests, errors):
        page.goto(f"{live_server}/enterprises/{w.e2}")
        page.click("#edit-link")
        page.wait_for_selector('#picker-map[data-map-ready="true"]')
        page.select_option("#ef-datum", "gcj02")
        # A point picked on the map is WGS84: it sets the datum back.
        page.evaluate(PICK, [101.72, 26.57])
        assert (page.input_value("#ef-lon"), page.input_value("#ef-lat")) == ("101.720000", "26.570000")
        assert page.input_value("#ef-datum") == "wgs84"
        page.check('input[name="roles"][value="recycler"]')
        screenshot(page, "registry-enterprise-edit-zh")
        page.click("#enterprise-save")
        page.wait_for_selector("#history")
        history = page.locator("#history").inner_text()
        assert "攀枝花钒钛园区" in history and "再生利用企业" in history, history
        screenshot(page, "registry-enterprise-history-zh")
        assert not _unexpected(errors), errors
    session.expire_all()
    moved = session.get(Enterprise, w.e2)
    assert moved is not None and moved.park_id == w.park_a and moved.version == 2
    roles = session.exec(select(EnterpriseRoleLink.role).where(EnterpriseRoleLink.enterprise_id == w.e2)).all()
    assert sorted(roles) == ["recycler", "utiliser"]
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=admin_cookie, locale="en") as (page, _, errors):
        page.goto(f"{live_server}/enterprises/{w.e2}/edit")
        page.wait_for_selector('#picker-map[data-map-ready="true"]')
        page.fill("#ef-lat", "95")
        page.click("#enterprise-save")
        assert page.locator("#ef-lat-error").inner_text() != ""
        assert "Latitude" in page.locator("#enterprise-form").inner_text()
        screenshot(page, "registry-enterprise-edit-en")
        page.goto(f"{live_server}/parks/{w.park_a}/edit")
        page.wait_for_selector('#park-map[data-map-ready="true"]')
        page.select_option("#pf-level", "national")
        page.click("#park-save")
        page.wait_for_selector("#park-saved")
        assert "National" in page.locator("#history").inner_text()
        screenshot(page, "registry-park-edit-en")
        assert not _unexpected(errors), errors
    for locale in ("zh-CN", "en"):
        with (
            sync_playwright() as pw,
            browser_page(pw, live_server, cookie=admin_cookie, locale=locale, width=390, height=844) as (
                page,
                _,
                errors,
            ),
        ):
            page.goto(f"{live_server}/enterprises/{w.e2}/edit")
            page.wait_for_selector('#picker-map[data-map-ready="true"]')
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            screenshot(page, f"registry-enterprise-edit-phone-{'zh' if locale == 'zh-CN' else 'en'}")
            assert not _unexpected(errors), errors
    foreign = [url for url in requests if not url.startswith(live_server)]
    assert not foreign, foreign
