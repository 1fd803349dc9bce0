"""The audit journey in a real headless Chromium: a bureau auditor drills from the province down to a batch, locks
the year, and the enterprise's writes to that year are refused (through the API and on the batch form)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, func, select

from app.settings import Settings
from flows.access import accounts
from models import Enterprise, Manifest
from tests.browser import browser_page, screenshot, session_cookie_for
from tests.test_web_audit import YEAR, _world


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_auditor_drills_down_locks_the_year_and_a_write_is_refused(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings
) -> None:
    w = _world(session)
    cookie = session_cookie_for(session, settings, accounts.get_user(session=session, username="bureau_sc"))
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=cookie) as (page, requests, errors):
        page.goto(f"{live_server}/audit?year={YEAR}")
        assert page.locator("h1").inner_text() == "审计核查 · 四川省"
        assert page.locator("#children-prefecture-table tbody tr").count() == 21
        screenshot(page, "audit")

        # Province -> Panzhihua -> park A -> enterprise E1 -> its received batch.
        page.locator('#children-prefecture-table tr[data-key="510400"] a.audit-drill').click()
        page.wait_for_url("**/audit?region=510400*")
        assert page.locator(".audit-crumbs li").count() == 2
        page.locator(f'#children-park-table tr[data-key="{w.park_a}"] a.audit-drill').click()
        page.wait_for_url(f"**/audit?park={w.park_a}*")
        page.locator(f'#children-enterprise-table tr[data-key="{w.e1}"] a.audit-drill').click()
        page.wait_for_url(f"**/audit?enterprise={w.e1}*")
        assert page.locator(".audit-crumbs li").count() == 4
        batch = page.locator(f'#batches-table tr[data-batch="{w.batch_received}"] a.code')
        assert batch.get_attribute("href") == f"/batches/{w.batch_received}"
        # Every figure leads to its rows: the bottom-up figure of E1 lists the one counted batch.
        page.locator('.audit-stats [data-figure="bottom-up"] a').click()
        page.wait_for_url("**/audit/rows?*kind=batches*")
        assert page.locator("#rows-table tbody tr").count() == 1
        page.go_back()
        batch = page.locator(f'#batches-table tr[data-batch="{w.batch_received}"] a.code')
        with page.expect_navigation():
            batch.click()
        assert page.url.endswith(f"/batches/{w.batch_received}")

        # Lock the year for Panzhihua.
        page.goto(f"{live_server}/audit/locks")
        page.get_by_label("地区", exact=True).select_option("510400")
        page.get_by_label("年度", exact=True).fill(str(YEAR))
        page.locator("#lock-form button[type=submit]").click()
        page.wait_for_url("**/audit/locks/checklist?*")
        page.locator("#lock-confirm").check()
        page.locator("#lock-confirm-form button[type=submit]").click()
        page.wait_for_url("**/audit/locks?done=locked*")
        assert "已锁定" in page.locator("#audit-status").inner_text()
        assert page.locator(f'#locks-table tr[data-lock="510400/{YEAR}"]').count() == 1

        # The enterprise, through the API with its own token, is refused and told what to do.
        refused = page.request.post(
            f"{live_server}/api/v1/declarations",
            data={"enterprise_id": w.e1, "category_code": "SW01", "year": YEAR, "generated_t": 1},
            headers={"Authorization": f"Bearer {w.tokens['ent1']}"},
        )
        assert refused.status == 423
        assert "correction" in refused.json()["detail"]

        # The drill-down says the year is locked; the flags queue.
        page.goto(f"{live_server}/audit?enterprise={w.e1}&year={YEAR}")
        assert page.locator(".audit-lock").is_visible()
        page.goto(f"{live_server}/audit/flags?year={YEAR}")
        assert page.locator("#flags-table tbody tr").count() > 0
        screenshot(page, "audit-flags")
        assert not [u for u in requests if not u.startswith(live_server)]
        assert not errors, errors

    # The enterprise's own user, on the batch form, is refused a batch dispatched in the locked year, in words.
    before = session.exec(select(func.count()).select_from(Manifest)).one()
    e2 = session.get(Enterprise, w.e2)
    assert e2 is not None
    shipper = session_cookie_for(session, settings, accounts.get_user(session=session, username="ent1"))
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=shipper) as (page, requests, errors):
        page.goto(f"{live_server}/batches/new")
        page.get_by_label("接收单位 （必填）").fill(e2.uscc)
        page.get_by_label("废物类别 （必填）").select_option("SW01")
        page.get_by_label("利用处置方式 （必填）").select_option("metal_recovery")
        page.get_by_label("重量 （必填）").fill("5")
        page.locator("#f-dispatched_at").fill(f"{YEAR}-06-01T10:00")
        page.get_by_role("button", name="保存并发运").click()
        refusal = page.get_by_text(f"{YEAR} 年度已锁定")
        refusal.first.wait_for()
        assert page.url.endswith("/batches/new")
        screenshot(page, "audit-refused")
        assert not [u for u in requests if not u.startswith(live_server)]
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Manifest)).one() == before  # nothing half-saved
