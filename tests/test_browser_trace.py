"""The journey "trace a demo battery and see its path" in a real headless Chromium: type a code, see its fields
appear, open its trace, and find the custody path drawn on the map and the timeline beside it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from app.settings import Settings
from flows.access import accounts
from flows.battery import chain as battery
from flows.battery.code import parse_battery_code
from models import User
from tests.access_cases_battery import Chain, build_chain
from tests.access_cases_trace import TRACED_PACK, walk_chain
from tests.browser import browser_page, screenshot, session_cookie_for
from tests.world import build_world


@pytest.fixture
def chain(session: Session) -> Chain:
    c = build_chain(session, build_world(session))
    walk_chain(session, c)
    return c


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_trace_a_battery_and_see_its_path(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, chain: Chain
) -> None:
    user = session.get(User, chain.world.users["bureau_sc"])
    assert user is not None
    cookie = session_cookie_for(session, settings, user)
    trace = battery.trace(session=session, principal=accounts.system_principal(), code=TRACED_PACK)
    places = len({s.enterprise.id for s in trace.custody if s.enterprise})  # each custodian at its own place here
    decoded = parse_battery_code(TRACED_PACK)
    with (
        sync_playwright() as pw,
        browser_page(pw, live_server, cookie=cookie, locale="zh-CN") as (page, requests, errors),
    ):
        page.goto(live_server + "/batteries")
        assert page.locator("h1").inner_text() == "电池溯源"  # the signed-in user's default language
        page.locator('.lang-switch a[hreflang="en"]').click()
        page.wait_for_url(live_server + "/batteries")
        assert page.locator("h1").inner_text() == "Battery trace"
        # The chains at risk in the auditor's province include this pack.
        assert page.locator(f'#risk-flags a[href="/batteries/{TRACED_PACK}"]').count() >= 1
        screenshot(page, "batteries")

        field = page.get_by_label("Battery code (24 characters, GB/T 34014-2017)")
        field.click()
        page.keyboard.type(TRACED_PACK[:4].lower(), delay=60)
        # The fields typed so far are read while typing: maker and product type already.
        meaning = page.locator('#code-fields tr[data-field="product_type"] td[data-meaning]')
        meaning.filter(has_text="pack").wait_for()
        assert page.locator('#code-fields tr[data-field="manufacturer_code"] td.code').inner_text() == decoded.maker
        page.keyboard.type(TRACED_PACK[4:], delay=30)
        page.locator(".parsed__summary--ok").wait_for()
        assert decoded.production_date.isoformat() in page.locator("#code-summary").inner_text()
        # Screen readers hear the same verdict through the live region the field points at.
        assert page.locator("#code-status").count() == 1
        assert decoded.production_date.isoformat() in page.locator("#code-status").text_content()
        assert page.locator('#code-fields tr[data-field="serial"] td.code').inner_text() == decoded.serial
        assert page.locator(f'#code-matches a[href="/batteries/{TRACED_PACK}"]').count() == 1
        screenshot(page, "batteries-typed", full_page=False)

        field.press("Enter")
        page.wait_for_url(f"{live_server}/batteries/{TRACED_PACK}")
        page.wait_for_selector('#custody-map[data-map-ready="true"]')
        page.wait_for_selector('#custody-map[data-trace-numbered="true"]')
        # The path: one dashed line through the custodians in order, a circle and a number at each place.
        assert page.locator("#custody-map path.custody-line").count() == 1
        assert page.locator("#custody-map path.custody-stop").count() == places
        numbers = page.locator("#custody-map .trace-num").all_inner_texts()
        assert numbers == [str(n) for n in range(1, places + 1)]
        assert page.locator("#custody-map .trace-num--current").inner_text() == str(places)
        assert page.locator("#stops li").count() == len(trace.custody)
        assert page.locator("#timeline > li").count() == len(trace.events)
        assert page.locator('#flags tr[data-kind="late_report"]').count() == 1
        screenshot(page, "trace")
        assert not [u for u in requests if not u.startswith(live_server)], "requests left the site"
        assert not errors, errors
