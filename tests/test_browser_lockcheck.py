"""Locking with a checklist and a late filing, in headless Chromium, in Chinese and in English.

A bureau auditor reviews what is open in Panzhihua's 2024 and locks it; the shipper then logs a batch of 2024,
is offered the late-filing path and files it; the auditor approves it in the corrections queue and the batch is
recorded. Screenshots: lockcheck-checklist, lockcheck-late, lockcheck-queue (desktop and phone, each language).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import Session, select

from app.settings import Settings
from flows.access import accounts
from models import Enterprise, Manifest, PeriodLock
from tests.browser import browser_page, screenshot, session_cookie_for
from tests.test_browser_batches import NAMES
from tests.world import World, build_world

WORDS = {
    "zh-CN": {
        "region": "地区",
        "year": "年度",
        "receiver": "接收单位 （必填）",
        "category": "废物类别 （必填）",
        "route": "利用处置方式 （必填）",
        "weight": "重量 （必填）",
        "dispatched_at": "发运时间（北京时间） （选填）",
        "dispatch": "保存并发运",
        "reason": "逾期原因 （必填）",
        "late": "按逾期补报提交",
        "approve": "批准",
        "in_transit": "在途批次",
        "badge": "逾期补报",
    },
    "en": {
        "region": "Region",
        "year": "Year",
        "receiver": "Receiver (required)",
        "category": "Waste category (required)",
        "route": "Route (required)",
        "weight": "Weight (required)",
        "dispatched_at": "Dispatch time (Beijing) (optional)",
        "dispatch": "Save and dispatch",
        "reason": "Why it is filed late (required)",
        "late": "Submit as a late filing",
        "approve": "Approve",
        "in_transit": "Batches in transit",
        "badge": "Late filing",
    },
}


def _world(session: Session) -> World:
    w = build_world(session, with_tokens=False)
    # The names of the batch pages' journey, so that the pictures read as a real province would.
    named = {getattr(w, key): names for key, names in NAMES.items()}
    for enterprise in session.exec(select(Enterprise)).all():
        enterprise.name_zh, enterprise.name_en = named[enterprise.id or 0]
    session.commit()
    return w


def _both_widths(page: Any, name: str) -> None:
    screenshot(page, name)
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, f"{name}-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_year_is_locked_after_its_checklist_and_a_late_batch_is_approved(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, lang: str
) -> None:
    w = _world(session)
    say = WORDS[lang]
    bureau = session_cookie_for(session, settings, accounts.get_user(session=session, username="bureau_pzh"))
    shipper = session_cookie_for(session, settings, accounts.get_user(session=session, username="ent1"))
    with sync_playwright() as pw:
        with browser_page(pw, live_server, cookie=bureau, locale=lang) as (page, requests, errors):
            page.goto(f"{live_server}/lang/{lang}?next=/audit/locks")
            page.get_by_label(say["region"], exact=True).select_option("510400")
            page.get_by_label(say["year"], exact=True).fill("2024")
            page.locator("#lock-form button[type=submit]").click()
            page.wait_for_url("**/audit/locks/checklist?*")
            counts = page.locator('[data-count="in_transit"]')
            assert say["in_transit"] in counts.inner_text() and counts.locator("dd").inner_text() == "1"
            row = page.locator(f'#lockcheck-transit-table tr[data-batch="{w.batch_dispatched}"] a')
            assert row.get_attribute("href") == f"/batches/{w.batch_dispatched}"
            assert page.locator("#lockcheck-undeclared-table tbody tr").count() == 2
            _both_widths(page, f"lockcheck-checklist-{lang}")

            page.locator("#lock-confirm").check()
            page.locator("#lock-confirm-form button[type=submit]").click()
            page.wait_for_url("**/audit/locks?done=locked*")
            assert page.locator('#locks-table tr[data-lock="510400/2024"]').count() == 1
            assert not [u for u in requests if not u.startswith(live_server)]
            assert not errors, errors

        with browser_page(pw, live_server, cookie=shipper, locale=lang) as (page, requests, errors):
            page.goto(f"{live_server}/lang/{lang}?next=/batches/new")
            page.get_by_label(say["receiver"]).press_sequentially("泰和", delay=30)
            option = page.locator("#f-receiver-options input[type=radio]").first
            option.wait_for()
            option.check()
            page.get_by_label(say["category"]).select_option("SW01")
            page.get_by_label(say["route"]).select_option("cement_admixture")
            page.get_by_label(say["weight"]).fill("31.2")
            page.get_by_label(say["dispatched_at"]).fill("2024-11-20T09:30")
            page.get_by_role("button", name=say["dispatch"]).click()
            late = page.locator("#late-filing")
            late.wait_for()
            assert "2024" in page.locator("#late-help").inner_text()
            page.get_by_label(say["reason"]).fill(
                "地磅单据年后才找到" if lang == "zh-CN" else "The weighbridge tickets turned up after the year closed"
            )
            _both_widths(page, f"lockcheck-late-{lang}")
            page.get_by_role("button", name=say["late"]).click()
            page.wait_for_url(re.compile(r".*/batches/new\?late=\d+$"))
            filed = int(page.url.rsplit("=", 1)[1])
            assert page.locator("#late-filed").is_visible()
            # The form refused for the locked year answers 422, as a refused form does; nothing else failed.
            assert [e for e in errors if "status of 422" not in e] == [], errors

        with browser_page(pw, live_server, cookie=bureau, locale=lang) as (page, requests, errors):
            page.goto(f"{live_server}/lang/{lang}?next=/audit/corrections")
            card = page.locator(f'article[data-correction="{filed}"]')
            assert say["badge"] in card.locator(".audit-late-badge").inner_text()
            assert "31.2" in card.locator(".audit-diff").inner_text()
            _both_widths(page, f"lockcheck-queue-{lang}")
            card.get_by_role("button", name=say["approve"]).click()
            page.wait_for_url("**/audit/corrections?done=approved*")
            assert not errors, errors

    session.expire_all()
    assert session.get(PeriodLock, ("510400", 2024)) is not None
    late = session.exec(select(Manifest).where(Manifest.year == 2024, Manifest.category_code == "SW01")).all()
    assert [b.weight_dispatched_t for b in late if b.dispatched_at and b.dispatched_at.month == 11] == [Decimal("31.2")]
