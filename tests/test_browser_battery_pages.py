"""The battery work journeys (register a battery, log its next steps, import a file) in a real headless Chromium, each
in Chinese and English at desktop and phone width: the form offers only the allowed steps, the counterpart is found by
name, a refusal is shown at its field, and no page scrolls sideways. One served site per test walks all four views."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from app.settings import Settings
from models import Battery, User
from models.enums import BatteryLevel
from tests.access_cases_battery import VIN, Chain, build_chain, code
from tests.browser import browser_page, screenshot, session_cookie_for
from tests.world import build_world

BROWSER_PACK = code(BatteryLevel.pack, 701)
SHOTS = Path("/tmp/shots-p14a")
# (locale, width, height): Chinese and English, desktop and phone.
VIEWS = (("zh-CN", 1280, 900), ("en", 1280, 900), ("zh-CN", 390, 844), ("en", 390, 844))
TEXT = {
    "zh-CN": {"register": "登记电池", "steps_maker": ["装车", "移交"], "installed": "已装车"},
    "en": {
        "register": "Register a battery",
        "steps_maker": ["Installed in a vehicle", "Handed over"],
        "installed": "installed",
    },
}


@pytest.fixture
def chain(session: Session) -> Chain:
    return build_chain(session, build_world(session))


def _shot(page: Any, name: str) -> None:
    path = screenshot(page, name)
    SHOTS.mkdir(exist_ok=True)
    shutil.copyfile(path, SHOTS / f"{name}.png")


def _view(locale: str, width: int) -> str:
    return f"{'zh' if locale == 'zh-CN' else 'en'}-{'phone' if width < 600 else 'desktop'}"


def _fits(page: Any, width: int) -> None:
    """The page is no wider than the window: nothing scrolls sideways."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


def _cookie(session: Session, settings: Settings, username: str) -> str:
    user = session.exec(select(User).where(col(User.username) == username)).one()
    return session_cookie_for(session, settings, user)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_register_and_log_battery_steps_in_the_browser(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, chain: Chain
) -> None:
    packs = [code(BatteryLevel.pack, 701 + i) for i in range(len(VIEWS))]
    for pack, (locale, width, height) in zip(packs, VIEWS, strict=True):
        text, view = TEXT[locale], _view(locale, width)
        with (
            sync_playwright() as pw,
            browser_page(
                pw, live_server, cookie=_cookie(session, settings, "ent1"), locale=locale, width=width, height=height
            ) as (page, _r, errors),
        ):
            page.goto(live_server + "/batteries")
            page.locator("#register-battery").click()
            page.wait_for_url(live_server + "/batteries/new")
            assert page.locator("h1").inner_text() == text["register"]
            page.locator("#f-code").fill(pack[:4] + "Q" + pack[5:])
            page.locator("#register-submit").click()
            page.locator("#f-code-error").filter(has_text="Q").wait_for()
            assert page.locator("#f-code").get_attribute("aria-invalid") == "true"
            assert page.locator("#error-summary").is_visible()
            _fits(page, width)
            _shot(page, f"battery-register-refused-{view}")
            page.locator("#f-code").fill(pack.lower())
            page.locator("#f-mass_kg").fill("380")
            page.locator("#register-submit").click()
            page.wait_for_url(f"{live_server}/batteries/{pack}?done=registered")
            _fits(page, width)
            page.locator("#log-event").click()
            page.wait_for_url(f"{live_server}/batteries/{pack}/events/new")
            assert page.locator("#step-list a").all_inner_texts() == text["steps_maker"]
            page.locator('a[data-step="transferred"]').click()
            page.locator("#f-occurred_at").fill("2024-03-01T10:00")
            page.locator("#f-counterpart").type("Chain veh", delay=40)
            option = page.locator('#f-counterpart-options input[name="counterpart_id"]')
            option.first.wait_for()
            assert option.count() == 1
            option.first.check()
            _fits(page, width)
            _shot(page, f"battery-event-transfer-{view}")
            page.locator("#event-submit").click()
            page.wait_for_url(f"{live_server}/batteries/{pack}?done=transferred")
            assert [e for e in errors if "status of 422" not in e] == []  # a refusal answers 422, as it should
    session.expire_all()
    for pack in packs:
        assert session.exec(select(Battery).where(col(Battery.code) == pack)).one().holder_id == chain.vehicle

    for pack, (locale, width, height) in zip(packs, VIEWS, strict=True):
        text, view = TEXT[locale], _view(locale, width)
        with (
            sync_playwright() as pw,
            browser_page(
                pw,
                live_server,
                cookie=_cookie(session, settings, "ent_vehicle"),
                locale=locale,
                width=width,
                height=height,
            ) as (page, _r, errors),
        ):
            page.goto(f"{live_server}/batteries/{pack}/events/new")
            assert page.locator("#step-list a").all_inner_texts() == text["steps_maker"]
            page.locator('a[data-step="installed"]').click()
            page.locator("#f-occurred_at").fill("2024-03-04T09:30")
            page.locator("#event-submit").click()
            page.locator("#f-vin-error").filter(has_text="VIN").wait_for()
            assert page.locator("#f-vin").get_attribute("aria-invalid") == "true"
            _fits(page, width)
            _shot(page, f"battery-event-refused-{view}")
            page.locator("#f-vin").fill(VIN)
            page.locator("#event-submit").click()
            page.wait_for_url(f"{live_server}/batteries/{pack}?done=installed")
            assert page.locator('[data-figure="state"]').inner_text() == text["installed"]
            _fits(page, width)
            _shot(page, f"battery-installed-{view}")
            assert [e for e in errors if "status of 422" not in e] == []  # a refusal answers 422, as it should


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_import_a_file_of_events_in_the_browser(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, chain: Chain, tmp_path: Path
) -> None:
    good = tmp_path / "batteries.csv"
    good.write_text(f"电池编码,质量（千克）\n{BROWSER_PACK},380\n", encoding="utf-8-sig")
    bad = tmp_path / "events.csv"
    bad.write_text(
        f"电池编码,事件类型,发生时间,对方统一社会信用代码\n{BROWSER_PACK},transferred,2024-02-01T10:00,"
        f"{chain.uscc['vehicle']}\n{BROWSER_PACK},fitted,2024-02-02T10:00,\n",
        encoding="utf-8-sig",
    )
    for first, (locale, width, height) in zip((True, False, False, False), VIEWS, strict=True):
        cookie = _cookie(session, settings, "ent1")
        with (
            sync_playwright() as pw,
            browser_page(pw, live_server, cookie=cookie, locale=locale, width=width, height=height) as (page, _r, errs),
        ):
            page.goto(live_server + "/batteries")
            page.locator("#import-batteries").click()
            page.wait_for_url(live_server + "/batteries/import")
            _fits(page, width)
            if first:  # the battery the refused file names is registered once, by a file of batteries
                page.locator('input[name="kind"][value="batteries"]').check()
                page.locator("#f-file").set_input_files(str(good))
                page.locator("#import-submit").click()
                page.locator("#import-done").wait_for()
                assert page.locator(f'#import-done a[href="/batteries/{BROWSER_PACK}"]').count() == 1
                _fits(page, width)
                _shot(page, f"battery-import-done-{_view(locale, width)}")
            page.locator('input[name="kind"][value="battery-events"]').check()
            page.locator("#f-file").set_input_files(str(bad))
            page.locator("#import-submit").click()
            page.locator("#import-refused").wait_for()
            assert page.locator('#import-refused tr[data-row="3"][data-column="type"]').count() == 1
            _fits(page, width)
            _shot(page, f"battery-import-refused-{_view(locale, width)}")
            assert [e for e in errs if "status of 422" not in e] == []
    session.expire_all()
    pack = session.exec(select(Battery).where(col(Battery.code) == BROWSER_PACK)).one()
    assert pack.holder_id == chain.maker  # the refused files moved nothing
