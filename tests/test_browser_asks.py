"""The correction-ask journey in headless Chromium, in Chinese and in English: a bureau asks from the batch page, the
enterprise files the correction from its asks, the bureau approves it and the batch is corrected."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from app.settings import Settings
from flows.access import accounts
from models import Manifest
from tests.browser import browser_page, screenshot, session_cookie_for
from tests.world import build_world, t

WORDS = {
    "zh-CN": {"sent": "更正要求已发出", "mark": "更正中", "filed": "更正已提交", "corrected": "已更正"},
    "en": {
        "sent": "The ask was sent",
        "mark": "Under correction",
        "filed": "Your correction was filed",
        "corrected": "corrected",
    },
}


def _phone(page: Any, name: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_bureau_asks_enterprise_files_bureau_approves(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, lang: str
) -> None:
    w = build_world(session, with_tokens=False)
    words = WORDS[lang]
    bureau = session_cookie_for(session, settings, accounts.get_user(session=session, username="bureau_pzh"))
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=bureau, locale=lang) as (page, requests, errors):
        page.goto(f"{live_server}/batches/{w.batch_received}")
        page.locator("#batch-ask").click()
        page.wait_for_url("**/asks/new?*")
        page.locator('input[name="fields"][value="weight_dispatched_t"]').check()
        page.locator("#ask-reason").fill("磅单显示 31 吨" if lang == "zh-CN" else "The weighbridge ticket says 31 t")
        screenshot(page, f"asks-new-{lang}")
        page.locator("#ask-send").click()
        page.wait_for_url("**/asks/*?done=sent")
        assert words["sent"] in page.locator("#ask-done").inner_text()
        page.goto(f"{live_server}/batches/{w.batch_received}")
        assert page.locator(".ask-mark").inner_text().strip().endswith(words["mark"])
        screenshot(page, f"asks-batch-{lang}", full_page=False)
        page.goto(f"{live_server}/audit/asks")
        assert page.locator("#asks-table tbody tr").count() == 1
        screenshot(page, f"asks-sent-{lang}")
        _phone(page, f"asks-sent-phone-{lang}")
        assert not [u for u in requests if not u.startswith(live_server)]
        assert not errors, errors

    shipper = session_cookie_for(session, settings, accounts.get_user(session=session, username="ent1"))
    with (
        sync_playwright() as pw,
        browser_page(pw, live_server, cookie=shipper, locale=lang) as (page, requests, errors),
    ):
        page.goto(f"{live_server}/asks")
        page.locator("#asks-table tbody tr th a").click()
        page.wait_for_url("**/asks/*")
        page.locator("#v-weight_dispatched_t").fill("31")
        page.locator("#answer-reason").fill("磅单复核" if lang == "zh-CN" else "Ticket re-read")
        screenshot(page, f"asks-answer-{lang}")
        _phone(page, f"asks-answer-phone-{lang}")
        page.locator("#answer-file").click()
        page.wait_for_url("**/asks/*?done=filed")
        assert words["filed"] in page.locator("#ask-done").inner_text()
        if lang == "zh-CN":
            body = page.locator("main").inner_text()
            assert not [word for word in ("correction", "Status", "Field", "Value") if word in body], body
        assert not [u for u in requests if not u.startswith(live_server)]
        assert not errors, errors

    with sync_playwright() as pw, browser_page(pw, live_server, cookie=bureau, locale=lang) as (page, requests, errors):
        page.goto(f"{live_server}/audit/asks?tab=answered")
        page.locator("#asks-table tbody tr th a").click()
        page.wait_for_url("**/asks/*")
        screenshot(page, f"asks-decide-{lang}")
        page.locator("#decide-accept button").click()
        page.wait_for_url("**/asks/*?done=decided")
        assert words["corrected"] in page.locator("#ask-status").inner_text()
        assert not errors, errors
    session.expire_all()
    batch = session.get(Manifest, w.batch_received)
    assert batch is not None and batch.weight_dispatched_t == t(31)
