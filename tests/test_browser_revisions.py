"""Corrections with evidence in headless Chromium, in Chinese and English: the enterprise's correction of a locked
year asks for a weighbridge ticket; the bureau sees the evidence and the effect on the rates, approves, and the
published figures carry a "revised" mark. Screenshots: revisions-form, revisions-queue, revisions-marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from app.settings import Settings
from flows.access import locks
from tests.browser import browser_page, screenshot
from tests.test_browser_daily import PHONE, _cookie
from tests.test_revisions import PDF, license_e2
from tests.world import NOW, World, build_world

WORDS = {
    "zh-CN": {"requested": "更正申请已提交", "revised": "已修订", "before": "修订前 80.0%，现 42.5%"},
    "en": {"requested": "Correction requested", "revised": "revised", "before": "was 80.0%, now 42.5%"},
}


def _prepare(session: Session) -> World:
    """The access world with E2 licensed to utilise SW01, and Panzhihua's 2023 and 2024 locked."""
    w = build_world(session)
    license_e2(session, w)
    for year in (2023, 2024):
        locks.lock_period(
            session=session, principal=w.principals["bureau_pzh"], adcode="510400", year=year, now=NOW, confirmed=True
        )
    session.commit()
    return w


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_correction_with_evidence_its_effect_and_the_revised_mark(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, locale: str, tmp_path: Path
) -> None:
    w = _prepare(session)
    words = WORDS[locale]
    ticket = tmp_path / "weighbridge-ticket.pdf"
    ticket.write_bytes(PDF)
    with sync_playwright() as pw:
        with browser_page(pw, live_server, cookie=_cookie(session, settings, "ent1"), locale=locale) as (
            page,
            _r,
            errors,
        ):
            page.goto(f"{live_server}/batches/{w.batch_received}")
            form = page.locator(f'form[action="/batches/{w.batch_received}/correct"]')
            form.locator('input[name="weight"]').fill("5")
            form.locator('textarea[name="reason"]').fill("磅单读错" if locale == "zh-CN" else "ticket misread")
            form.locator('button[type="submit"]').click()
            error = page.locator("#a-file-error")
            error.wait_for()
            assert "30.0" in error.inner_text() and page.locator("#a-file").get_attribute("aria-invalid") == "true"
            page.locator("#a-file").scroll_into_view_if_needed()
            screenshot(page, f"revisions-form-{locale}", full_page=False)
            form = page.locator(f'form[action="/batches/{w.batch_received}/correct"]')
            form.locator('textarea[name="reason"]').fill("磅单读错" if locale == "zh-CN" else "ticket misread")
            page.locator("#a-file").set_input_files(str(ticket))
            form.locator('button[type="submit"]').click()
            page.get_by_text(words["requested"]).first.wait_for()
            # The browser logs the refused post (422) as a failed load; nothing else may fail.
            assert not [e for e in errors if "422" not in e], errors

        # A declaration's correction through the API, with its ticket, for the bureau to weigh.
        ent1 = {"Authorization": f"Bearer {w.tokens['ent1']}"}
        with browser_page(pw, live_server) as (page, _r, _e):
            uploaded = page.request.post(
                f"{live_server}/api/v1/attachments",
                multipart={
                    "file": {"name": "磅单-2023.pdf", "mimeType": "application/pdf", "buffer": PDF},
                    "enterprise_id": str(w.e1),
                },
                headers=ent1,
            )
            assert uploaded.status == 201, uploaded.text()
            filed = page.request.post(
                f"{live_server}/api/v1/corrections",
                data={
                    "table": "declaration",
                    "reason": "utilised tonnes mistyped",
                    "attachment_ids": [uploaded.json()["id"]],
                    "payload": {
                        "enterprise_id": w.e1,
                        "category_code": "SW01",
                        "year": 2023,
                        "generated_t": 100,
                        "utilised_t": 5,
                    },
                },
                headers=ent1,
            )
            assert filed.status == 201, filed.text()
            declaration = filed.json()["id"]

        bureau = _cookie(session, settings, "bureau_sc")
        with browser_page(pw, live_server, cookie=bureau, locale=locale) as (page, requests, errors):
            page.goto(f"{live_server}/audit/corrections")
            card = page.locator(f'article[data-correction="{declaration}"]')
            assert card.locator("[data-attachment]").inner_text() == "磅单-2023.pdf"
            effect = card.locator(f'table[data-effect="{declaration}"]')
            assert effect.locator('tr[data-scope="510400"] [data-figure="rate-after"]').inner_text() == "5.0%"
            assert effect.locator('tr[data-scope="510000"] [data-figure="rate-now"]').inner_text() == "80.0%"
            screenshot(page, f"revisions-queue-{locale}")
            page.set_viewport_size(PHONE)
            screenshot(page, f"revisions-queue-{locale}-phone")
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            page.set_viewport_size({"width": 1280, "height": 900})

            card.locator('form[action$="/approve"] button[type="submit"]').click()
            page.wait_for_url("**/audit/corrections?done=approved*")
            assert page.locator(f'[data-revised-by="{declaration}"] li[data-scope="510000"]').count() == 1

            page.goto(f"{live_server}/audit?region=510000&year=2023")
            mark = page.locator('.audit-stats [data-figure="rate"] .revised')
            assert words["revised"] in mark.inner_text() and words["before"] in mark.inner_text()
            row = page.locator('#children-prefecture-table tr[data-key="510400"] .revised')
            assert row.count() == 1
            screenshot(page, f"revisions-marked-{locale}", full_page=False)
            page.set_viewport_size(PHONE)
            screenshot(page, f"revisions-marked-{locale}-phone", full_page=False)
            page.goto(f"{live_server}/dashboard?year=2023")
            assert words["revised"] in page.locator('[data-figure="rate"] .revised').inner_text()
            assert not [u for u in requests if not u.startswith(live_server)]
            assert not errors, errors
