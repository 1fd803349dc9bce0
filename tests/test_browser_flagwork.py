"""Flags as work in a real headless Chromium, in Chinese and in English: the Panzhihua auditor finds an enterprise's
flags by name, sorts them by size, puts two under review and takes them on in one bulk action; the enterprise sees
them, answers one with a weighbridge ticket; the auditor reads the answer and dismisses the flag with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from flows.kernel.principal import principal_of
from flows.pages.dashboard import declared_years
from flows.waste.flags import list_flags
from models import Enterprise, User
from models.db import make_engine
from models.enums import Channel
from tests.browser import DemoSite, browser_page, demo_settings, screenshot, serve, sign_in

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
WORDS = {
    "zh-CN": {"under_review": "核查中", "dismissed": "已驳回", "suffix": "zh"},
    "en": {"under_review": "under review", "dismissed": "dismissed", "suffix": "en"},
}


def _generator(path: Path) -> tuple[int, str, int]:
    """The demo generator's year with the most flags on it, its name, and how many flags it has that year."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        with Session(engine) as session:
            user = session.exec(select(User).where(User.username == "ent.generator")).one()
            enterprise = session.get(Enterprise, user.scope_enterprise_id)
            assert enterprise is not None
            me = principal_of(user, Channel.web)
            years = declared_years(session=session, principal=me)
            counts = {y: list_flags(session=session, principal=me, year=y, limit=1).count for y in years}
            year = max(counts, key=lambda y: (counts[y], y))
            return year, enterprise.name_zh, counts[year]
    finally:
        engine.dispose()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_an_auditor_works_flags_and_the_enterprise_answers(
    sync_playwright: Any, demo_file: tuple[Path, dict[str, str]], tmp_path: Path, lang: str
) -> None:
    source, passwords = demo_file
    path = tmp_path / "demo.sqlite3"
    shutil.copyfile(source, path)  # this journey writes: its own copy of the demo
    year, name, flagged = _generator(path)
    assert flagged >= 2, "the demo generator should carry flags"
    words = WORDS[lang]
    settings = demo_settings(path)
    pdf = tmp_path / "weighbridge-ticket.pdf"
    pdf.write_bytes(PDF)
    with serve(settings) as url, sync_playwright() as pw:
        site = DemoSite(url, passwords, settings)
        with browser_page(pw, url, locale=lang) as (page, requests, errors):
            sign_in(page, site, "auditor.panzhihua", then="/dashboard")
            assert page.locator("#flag-statuses [data-status=open]").count() == 1
            page.goto(f"{url}/audit/flags?year={year}")
            # The enterprise by part of its name, the largest first.
            page.locator("#filter-enterprise").fill(name[2:8])
            page.locator("#filter-sort").select_option("size")
            page.locator("form.audit-filters button[type=submit]").click()
            page.wait_for_url("**sort=size*")
            rows = page.locator("#flags-table tbody tr")
            assert rows.count() == flagged
            keys = [rows.nth(i).get_attribute("data-key") for i in range(2)]
            page.locator("#pick-1").check()
            page.locator("#pick-2").check()
            page.locator("#bulk-status").select_option("under_review")
            page.locator("#bulk-assignee").select_option(label="auditor.panzhihua")
            page.locator("#bulk-form button[type=submit]").click()
            page.wait_for_url("**done=2*")
            for key in keys:
                row = page.locator(f'#flags-table tr[data-key="{key}"]')
                assert row.get_attribute("data-status") == "under_review"
                assert words["under_review"] in row.inner_text()
            screenshot(page, f"flagwork-queue-{words['suffix']}")
            assert not [u for u in requests if not u.startswith(url)]
            assert not errors, errors

        with browser_page(pw, url, locale=lang) as (page, requests, errors):
            sign_in(page, site, "ent.generator", then="/flags")
            mine = page.locator(f'#my-flags tr[data-key="{keys[0]}"]')
            assert mine.get_attribute("data-status") == "under_review"
            mine.locator("th a").click()
            page.wait_for_url(f"**/flags/{keys[0]}")
            assert page.locator("#work-form").count() == 0 and page.locator("#note-form").count() == 0
            page.locator("#answer-text").fill("20 t went to the yard in March; the weighbridge ticket is attached")
            page.locator("#answer-file").set_input_files(str(pdf))
            page.locator("#answer-form button[type=submit]").click()
            page.wait_for_url("**done=answered")
            assert page.locator("#answers .flag-entry__file a").inner_text().endswith("weighbridge-ticket.pdf")
            screenshot(page, f"flagwork-answer-{words['suffix']}")
            assert not errors, errors

        with browser_page(pw, url, locale=lang) as (page, requests, errors):
            sign_in(page, site, "auditor.panzhihua", then=f"/flags/{keys[0]}")
            assert "weighbridge ticket" in page.locator("#answers").inner_text()
            # Dismissing needs a reason: refused in words, then done with one.
            page.locator("#work-status").select_option("dismissed")
            page.locator("#work-form button[type=submit]").click()
            assert page.locator("#flag-problem").is_visible()
            page.locator("#work-status").select_option("dismissed")
            page.locator("#work-reason").fill("stock drawn down, confirmed by the ticket")
            page.locator("#work-form button[type=submit]").click()
            page.wait_for_url("**done=changed")
            assert words["dismissed"] in page.locator("#flag-status").inner_text()
            assert page.locator("#flag-history tbody tr").count() == 2
            screenshot(page, f"flagwork-flag-{words['suffix']}")
            page.set_viewport_size({"width": 390, "height": 844})
            screenshot(page, f"flagwork-flag-phone-{words['suffix']}")
            page.goto(f"{url}/audit/flags?year={year}&status=under_review")
            assert page.locator("#flags-table tbody tr").count() == 1
            screenshot(page, f"flagwork-queue-phone-{words['suffix']}")
            # The refused form answers 422, which the browser logs; nothing else may fail.
            assert [e for e in errors if "422" not in e] == [], errors
