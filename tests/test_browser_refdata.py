"""The targets and categories pages in a real headless Chromium, in Chinese and English, desktop and phone."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from app.settings import Settings
from flows.access import accounts
from tests.browser import browser_page, screenshot, session_cookie_for
from tests.world import World, build_world


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session, with_tokens=False)


def _cookie(session: Session, settings: Settings, username: str) -> str:
    return session_cookie_for(session, settings, accounts.get_user(session=session, username=username))


def _unexpected(errors: list[str]) -> list[str]:
    # The refused form answers 422 on purpose; Chromium logs every such answer as a console error.
    return [e for e in errors if "status of 422" not in e]


def _fill(page: Any, values: dict[str, str]) -> None:
    for name, value in values.items():
        page.fill(f"#tf-{name}", value)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_bureau_sets_and_changes_its_prefectures_target(
    sync_playwright: Any, live_server: str, world: World, session: Session, settings: Settings
) -> None:
    cookie = _cookie(session, settings, "bureau_pzh")
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=cookie) as (page, _, errors):
        page.goto(f"{live_server}/targets")
        assert page.get_attribute("html", "lang") == "zh-CN"
        assert page.locator("h1").inner_text() == "目标"
        _fill(
            page,
            {
                "name": "panzhihua-2025",
                "scope_adcode": "510400",
                "year": "2025",
                "value": "180%",
                "categories": "SW01, SW02",
                "source": "攀枝花市工业固废综合利用实施方案",
            },
        )
        page.click("#target-form button[type=submit]")
        page.wait_for_selector('#tf-value[aria-invalid="true"]')
        said = page.locator("#tf-value-error").inner_text()
        assert "0 到 1" in said and not any(c.isascii() and c.isalpha() for c in said.replace("0.8", ""))
        assert page.input_value("#tf-source") == "攀枝花市工业固废综合利用实施方案"
        page.fill("#tf-value", "90%")
        page.click("#target-form button[type=submit]")
        page.wait_for_selector("#refdata-saved")
        row = page.locator('tr[data-target="panzhihua-2025"]')
        assert "攀枝花市" in row.inner_text() and "90.0%" in row.inner_text()
        row.locator("a.licence-replace").click()
        assert page.input_value("#tf-value") == "0.9"
        page.fill("#tf-value", "92%")
        page.click("#target-form button[type=submit]")
        page.wait_for_selector("#refdata-saved")
        row = page.locator('tr[data-target="panzhihua-2025"]')
        assert "92.0%" in row.inner_text() and "第 2 版" in row.inner_text()
        row.locator("details summary").click()
        assert row.locator("details li").count() == 2
        screenshot(page, "refdata-targets-zh")
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        screenshot(page, "refdata-targets-zh-phone")
        assert not _unexpected(errors), errors
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=cookie, locale="en") as (page, _, errors):
        page.goto(f"{live_server}/targets")
        assert page.get_attribute("html", "lang") == "en"
        row = page.locator('tr[data-target="panzhihua-2025"]')
        assert "Panzhihua" in row.inner_text() and "Version 2" in row.inner_text()
        screenshot(page, "refdata-targets-en")
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        screenshot(page, "refdata-targets-en-phone")
        assert not _unexpected(errors), errors


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_administrator_files_a_catalogue_code_under_its_class(
    sync_playwright: Any, live_server: str, world: World, session: Session, settings: Settings
) -> None:
    cookie = _cookie(session, settings, "admin")
    for locale, code, name in (("en", "261-001-S01", "Titanium dioxide slag"), ("zh-CN", "252-001-S02", "焦化粉煤灰")):
        with sync_playwright() as pw, browser_page(pw, live_server, cookie=cookie, locale=locale) as (page, _, errors):
            page.goto(f"{live_server}/categories")
            page.fill("#cf-code", code)
            page.fill("#cf-name_zh", "钛白粉生产废渣" if locale == "en" else name)
            page.fill("#cf-name_en", name if locale == "en" else "Coking fly ash")
            if locale == "en":
                page.fill("#cf-code", "261-001-S08")
                page.click("#category-form button[type=submit]")
                page.wait_for_selector('#cf-code[aria-invalid="true"]')
                assert "S08" in page.locator("#cf-code-error").inner_text()
                page.fill("#cf-code", code)
            page.click("#category-form button[type=submit]")
            page.wait_for_selector("#refdata-saved")
            stored = page.locator(f'tr[data-code="{code.replace("-", "")}"]')
            assert code in stored.inner_text() and ("SW01" if locale == "en" else "SW02") in stored.inner_text()
            suffix = "en" if locale == "en" else "zh"
            screenshot(page, f"refdata-categories-{suffix}")
            page.set_viewport_size({"width": 390, "height": 844})
            page.reload()
            screenshot(page, f"refdata-categories-{suffix}-phone")
            assert not _unexpected(errors), errors
