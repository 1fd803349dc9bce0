"""The inbox journey in a real headless Chromium: the bell counts what is unread, the inbox lists it with links,
one and then all are marked read, and the e-mail setting is saved or refused; zh-CN and English, desktop and phone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session

from app.settings import Settings
from flows.access import accounts
from flows.waste import manifests
from tests.browser import browser_page, screenshot, session_cookie_for, wait_until
from tests.world import World, add_receiver_account, build_world


def _world_with_news(session: Session) -> World:
    w = add_receiver_account(session, build_world(session, with_tokens=False))
    # The shipper dispatches the draft: the receiver hears of a batch to receive, and of the flag (no licence).
    manifests.dispatch(
        session=session,
        principal=w.principals["ent1"],
        batch_id=w.batch_draft,
        at=datetime(2024, 5, 3, 8, tzinfo=UTC),
        now=datetime.now(UTC),
    )
    session.commit()
    return w


def _no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bell_inbox_mark_read_and_email_setting(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings
) -> None:
    w = _world_with_news(session)
    cookie = session_cookie_for(session, settings, accounts.get_user(session=session, username="ent2"))
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=cookie) as (page, _requests, errors):
        page.goto(f"{live_server}/batches")
        wait_until(page, "document.querySelector('#bell .bell__count') !== null")
        assert page.locator("#bell .bell__count").inner_text() == "2"
        assert page.locator("#bell").get_attribute("aria-label") == "消息：2条未读"
        page.locator("#bell").click()
        page.wait_for_url(f"{live_server}/inbox")
        assert page.locator("h1").inner_text() == "消息"
        items = page.locator("#inbox-items li")
        assert items.count() == 2 and page.locator(".inbox-item--unread").count() == 2
        awaiting = page.locator('li[data-kind="batch_awaiting"]')
        assert "待确认接收" in awaiting.inner_text() and "测试企业1" in awaiting.inner_text()
        assert awaiting.locator("a").get_attribute("href") == f"/batches/{w.batch_draft}"
        screenshot(page, "inbox-zh")
        page.set_viewport_size({"width": 390, "height": 844})
        _no_sideways_scroll(page)
        screenshot(page, "inbox-zh-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        # One read, then all.
        page.locator('li[data-kind="flag_raised"] button').click()
        page.wait_for_url(f"{live_server}/inbox")
        assert page.locator(".inbox-item--unread").count() == 1
        wait_until(page, "document.querySelector('#bell .bell__count')?.textContent === '1'")
        page.locator("#read-all").click()
        page.wait_for_url(f"{live_server}/inbox")
        assert page.locator(".inbox-item--unread").count() == 0 and page.locator("#read-all").count() == 0
        page.wait_for_timeout(300)
        assert page.locator("#bell .bell__count").count() == 0
        page.locator('a[href="/inbox?unread=1"]').click()
        assert page.locator(".inbox-empty").inner_text() == "没有未读消息。"

        # The e-mail setting: an address the service cannot use is refused, naming the field; a good one is saved.
        page.goto(f"{live_server}/inbox")
        page.get_by_label("电子邮箱", exact=True).fill("store@localhost")
        page.locator("#prefs-form button[type=submit]").click()
        assert "电子邮箱" in page.locator("#prefs-problem").inner_text()
        assert page.get_by_label("电子邮箱", exact=True).get_attribute("aria-invalid") == "true"
        page.get_by_label("电子邮箱", exact=True).fill("store@example.com")
        page.get_by_label("通过电子邮件接收消息").uncheck()
        page.locator("#prefs-form button[type=submit]").click()
        page.wait_for_url(f"{live_server}/inbox?done=saved")
        assert page.get_by_label("电子邮箱", exact=True).input_value() == "store@example.com"
        assert not page.get_by_label("通过电子邮件接收消息").is_checked()
        # The refused form came back as a 422, which the browser logs; nothing else went wrong.
        assert [e for e in errors if "422" not in e] == [] and len(errors) == 1

    # English at phone width: the list fits the screen and a notification leads to its batch.
    cookie = session_cookie_for(session, settings, accounts.get_user(session=session, username="ent1"))
    with (
        sync_playwright() as pw,
        browser_page(pw, live_server, cookie=cookie, locale="en", width=390, height=844) as (page, _requests, errors),
    ):
        page.goto(f"{live_server}/inbox")
        assert page.locator("h1").inner_text() == "Notifications"
        flag = page.locator('li[data-kind="flag_raised"]')
        assert "holds no valid licence" in flag.inner_text()
        _no_sideways_scroll(page)
        wait_until(page, "document.querySelector('#bell .bell__count')?.textContent === '1'")
        screenshot(page, "inbox-en-phone")
        page.set_viewport_size({"width": 1280, "height": 900})
        screenshot(page, "inbox-en")
        with page.expect_navigation():
            flag.get_by_role("link", name="Open").click()
        assert page.url.endswith(f"/batches/{w.batch_draft}")
        assert errors == []
