"""The home page in a real headless Chromium: title, the offline boundary map, the language switch, screenshots."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from shapely.geometry import box
from sqlmodel import Session

from app.settings import Settings
from flows.access import accounts
from maps.parks import ParkSpec, create_parks
from models.enums import ParkLevel
from tests.browser import browser_page, screenshot, session_cookie_for, wait_until

PREFECTURES = 21

# Parks for the page to list and draw: real national and provincial parks of Sichuan, with rough boxes near
# their locations (a test fixture and screenshot prop, not surveyed boundaries).
PARKS = [
    (
        "成都经济技术开发区",
        "Chengdu Economic and Technological Development Zone",
        ParkLevel.national,
        (104.22, 30.52, 104.32, 30.60),
    ),
    (
        "攀枝花钒钛高新技术产业开发区",
        "Panzhihua Vanadium and Titanium Hi-tech Zone",
        ParkLevel.national,
        (101.68, 26.52, 101.78, 26.60),
    ),
    (
        "德阳经济技术开发区",
        "Deyang Economic and Technological Development Zone",
        ParkLevel.national,
        (104.36, 31.08, 104.46, 31.16),
    ),
    (
        "宜宾临港经济技术开发区",
        "Yibin Lingang Economic and Technological Development Zone",
        ParkLevel.national,
        (104.70, 28.72, 104.80, 28.80),
    ),
    ("乐山高新技术产业开发区", "Leshan Hi-tech Zone", ParkLevel.national, (103.70, 29.56, 103.80, 29.64)),
    ("四川雅安经济开发区", "Ya'an Economic Development Zone", ParkLevel.provincial, (103.00, 29.96, 103.08, 30.04)),
    ("四川江油工业园区", "Jiangyou Industrial Park", ParkLevel.provincial, (104.70, 31.74, 104.80, 31.82)),
]


@pytest.fixture
def demo_parks(session: Session) -> list[str]:
    """Load the parks above into this test's database."""
    specs = [ParkSpec(name_zh=zh, name_en=en, level=level, boundary=box(*bounds)) for zh, en, level, bounds in PARKS]
    create_parks(specs, session=session)
    session.commit()
    return [zh for zh, *_ in PARKS]


@pytest.fixture
def session_cookie(session: Session, settings: Settings) -> str:
    """A browser session of an administrator: the value of its cookie (the pages are for signed-in users)."""
    user = accounts.create_user(
        session=session, username="browser-admin", password="correct horse battery", role="admin", now=datetime.now(UTC)
    )
    return session_cookie_for(session, settings, user)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_home_page_in_chromium(
    sync_playwright: Any, live_server: str, demo_parks: list[str], session_cookie: str
) -> None:
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=session_cookie) as (page, requests, errors):
        page.goto(live_server + "/")
        assert page.title() == "四川省循环经济概览 · 循环流 circuflow"
        assert page.get_attribute("html", "lang") == "zh-CN"
        assert page.locator("h1").inner_text() == "四川省循环经济概览"
        assert page.locator("#prefectures tbody tr").count() == PREFECTURES
        assert page.locator("#parks tbody tr").count() == len(demo_parks)

        # Leaflet draws GeoJSON as SVG paths: one per prefecture, plus one per park.
        page.wait_for_selector('#overview-map[data-map-ready="true"]')
        paths = page.locator("#overview-map svg path.leaflet-interactive")
        assert paths.count() == PREFECTURES + len(demo_parks)
        drawn = page.eval_on_selector_all(
            "#overview-map svg path.leaflet-interactive", "els => els.filter(e => e.getBBox().width > 1).length"
        )
        assert drawn == PREFECTURES + len(demo_parks)
        assert page.locator("#overview-map img.leaflet-tile").count() == 0
        screenshot(page, "home")

        # The switcher is reachable from the keyboard: a few Tabs from the top land on "English".
        english = page.locator('.lang-switch a[hreflang="en"]')
        for _ in range(10):
            page.keyboard.press("Tab")
            if english.evaluate("el => el === document.activeElement"):
                break
        else:
            pytest.fail("the English link of the language switcher is not reachable with Tab")

        english.click()
        page.wait_for_load_state("load")
        assert page.get_attribute("html", "lang") == "en"
        assert page.locator("h1").inner_text() == "Sichuan circular economy overview"
        assert page.title() == "Sichuan circular economy overview · 循环流 circuflow"
        assert page.locator("#prefectures tbody tr").first.locator("th").inner_text() == "Chengdu"
        assert page.locator('.lang-switch a[aria-current="true"]').get_attribute("hreflang") == "en"
        page.wait_for_selector('#overview-map[data-map-ready="true"]')
        assert paths.count() == PREFECTURES + len(demo_parks)
        screenshot(page, "home-en")

        # On a phone-sized screen the layout folds into one column without sideways scrolling.
        page.set_viewport_size({"width": 390, "height": 844})
        too_wide = page.evaluate(
            """() => [...document.querySelectorAll("body *")]
                .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
                .map(el => el.tagName.toLowerCase() + (el.className ? "." + el.className : ""))"""
        )
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), too_wide[:10]
        # ... and the map refits the whole province into its narrower box.
        wait_until(
            page,
            """() => {
                const box = document.querySelector("#overview-map").getBoundingClientRect();
                const paths = [...document.querySelectorAll("#overview-map path.leaflet-interactive")];
                return paths.every(p => {
                    const r = p.getBoundingClientRect();
                    return r.left >= box.left - 1 && r.right <= box.right + 1
                        && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
                });
            }""",
        )
        screenshot(page, "home-en-narrow")

        # Offline by design: every request stayed on this server (no CDN, no tiles).
        foreign = [url for url in requests if not url.startswith(live_server)]
        assert not foreign, foreign
        assert not errors, errors


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_htmx_after_the_session_ended_goes_to_sign_in(
    sync_playwright: Any, live_server: str, session_cookie: str
) -> None:
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=session_cookie) as (page, _requests, _errors):
        page.goto(live_server + "/batches?year=2024")
        page.context.clear_cookies()  # the session ends (expired, signed out elsewhere)
        page.locator("#f-status").select_option("received")  # the filter form asks htmx for the results block
        page.wait_for_url(re.compile(r".*/login\?next="))
        # The whole window is on the sign-in page, which will bring the user back to the list.
        assert page.locator("main form[action='/login']").count() == 1
        assert page.locator("input[name=next]").get_attribute("value") == "/batches?year=2024"
