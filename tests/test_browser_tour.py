"""The main pages on the Sichuan demo in headless Chromium, signed in through the real form: the README's pictures.

The demo (seed 2024) is loaded once per run into its own SQLite file and served by uvicorn (tests/conftest.py); the
tests sign in as the demo accounts and walk the pages people use every day, checking what each one shows and saving a
screenshot of it (tests/_artifacts; docs/screenshots with CIRCUFLOW_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from app.main import create_app
from bench.pages_bench import demo_parameters, page_paths
from flows.kernel.clock import CST
from models import Enterprise, Licence, User
from models.db import make_engine
from models.enums import LicenceActivity, Route
from tests.browser import (
    ROOT,
    DemoSite,
    browser_page,
    demo_settings,
    playwright_entry,
    screenshot,
    serve,
    sign_in,
    unavailable,
    wait_until,
)


def test_dashboard_of_the_provincial_auditor(demo_site: DemoSite) -> None:
    with playwright_entry()() as pw, browser_page(pw, demo_site.url) as (page, requests, errors):
        sign_in(page, demo_site, "auditor.sichuan", then="/dashboard")
        assert page.locator("h1").inner_text().startswith("仪表盘")
        rate = page.locator('[data-figure="rate"]').inner_text()
        assert rate.endswith("%") and 0 < float(rate.rstrip("%")) < 100
        assert page.locator("#ranking tbody tr").count() == 21  # every prefecture, ranked
        page.wait_for_selector('#trend-chart[data-chart-ready="true"]')
        assert page.locator("#trend-chart svg path").count() > 3
        screenshot(page, "dashboard")
        assert not [u for u in requests if not u.startswith(demo_site.url)]
        assert not errors, errors


AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# What axe-core checks (WCAG 2.1 A and AA: labels, names, contrast, landmarks, ARIA); "serious" and "critical"
# findings fail the test, lesser ones are left to review.
AXE_RUN = """async () => {
    const tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
    const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
    return result.violations
        .filter(v => v.impact === "serious" || v.impact === "critical")
        .map(v => v.id + ": " + v.help + " -> " + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(" | "));
}"""


@pytest.mark.parametrize("username", ["auditor.sichuan", "ent.generator"])
def test_every_page_passes_axe(demo_site: DemoSite, username: str) -> None:
    """Every page of the route table, as a bureau auditor and as an enterprise user, in both languages."""
    if not AXE.is_file():
        unavailable(f"{AXE} is missing; run `npm ci`")
    app = create_app(demo_site.settings)
    engine = make_engine(demo_site.settings.database_url)
    try:
        params = demo_parameters(engine)
    finally:
        engine.dispose()
    found: dict[str, list[str]] = {}
    with playwright_entry()() as pw, browser_page(pw, demo_site.url) as (page, _requests, errors):
        sign_in(page, demo_site, username)
        for path in page_paths(app):
            if path == "/login" or path.endswith((".geojson", ".csv", ".xlsx")):
                continue  # map layers and exports are data, not pages
            response = page.goto(demo_site.url + path.format(**params))
            assert response is not None
            if response.status in (403, 404):
                errors.clear()  # the browser logs the refused page itself as a failed load
                continue  # not this user's page
            assert response.status == 200, (path, response.status)
            # Maps and charts draw after load; check what the user finally sees.
            page.wait_for_load_state("networkidle")
            page.evaluate(AXE.read_text(encoding="utf-8"))  # not a script tag: the CSP refuses inline code
            for lang in ("zh-CN", "en"):
                if page.get_attribute("html", "lang") != lang:
                    page.locator(f'.lang-switch a[hreflang="{lang}"]').click()
                    page.wait_for_load_state("networkidle")
                    page.evaluate(AXE.read_text(encoding="utf-8"))  # not a script tag: the CSP refuses inline code
                violations = page.evaluate(AXE_RUN)
                if violations:
                    found[f"{path} ({lang})"] = violations
        assert not errors, errors
    assert not found, found


def test_journey_log_a_batch_confirm_it_and_see_it_on_the_map_and_in_the_rate(
    demo_file: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """ent.generator logs and dispatches a batch to ent.utiliser, who confirms the weight it weighed; the flow then
    shows on the map of the year and in the bottom-up figure beside the rate."""
    source, passwords = demo_file
    path = tmp_path / "journey.sqlite3"
    shutil.copyfile(source, path)  # this journey writes: a copy of its own
    settings = demo_settings(path)
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        users = {u.username: u for u in session.exec(select(User)).all()}
        shipper_id = users["ent.generator"].scope_enterprise_id
        receiver = session.get(Enterprise, users["ent.utiliser"].scope_enterprise_id)
        assert shipper_id is not None and receiver is not None
        # A category the receiver may utilise today, so that the batch counts in the bottom-up figure.
        licence = session.exec(
            select(Licence).where(
                Licence.enterprise_id == receiver.id,
                Licence.activity == LicenceActivity.utilisation,
                col(Licence.valid_to).is_(None),
            )
        ).first()
        assert licence is not None
    engine.dispose()
    year = datetime.now(CST).year  # dispatched now: this year's flows, which the demo (2020-2024) leaves empty

    with serve(settings) as url, playwright_entry()() as pw:
        site = DemoSite(url, passwords, settings)
        with browser_page(pw, url) as (page, requests, errors):
            sign_in(page, site, "ent.generator", then="/batches/new")
            page.get_by_label("接收单位 （必填）").press_sequentially(receiver.name_zh[:6], delay=30)
            choice = page.locator(f'#f-receiver-options input[value="{receiver.id}"]')
            choice.wait_for()
            choice.check()
            page.get_by_label("废物类别 （必填）").select_option(licence.category_code)
            page.get_by_label("利用处置方式 （必填）").select_option(Route.building_materials.value)
            page.get_by_label("重量 （必填）").press_sequentially("36.5", delay=30)
            page.get_by_role("button", name="保存并发运").click()
            page.wait_for_url(re.compile(r".*/batches/\d+\?done=dispatch$"))
            batch_id = int(page.url.split("/batches/")[1].split("?")[0])
            assert page.locator("#batch-status").inner_text() == "已发运"
            assert not errors, errors

        with browser_page(pw, url, locale="en") as (page, requests, errors):
            sign_in(page, site, "ent.utiliser", then="/batches")
            page.locator(f'tr[data-batch="{batch_id}"] a.batch-number').click()
            page.wait_for_url(f"{url}/batches/{batch_id}")
            page.get_by_label("Weight received (required)").fill("36.4")
            page.get_by_role("button", name="Confirm receipt").click()
            page.locator("#batch-done").wait_for()
            assert page.locator("#batch-status").inner_text() == "Received"
            assert not errors, errors

        with browser_page(pw, url) as (page, requests, errors):
            sign_in(page, site, "ent.generator", then=f"/map?year={year}")
            # The year's only flow: the batch just received, at the weight the receiver confirmed.
            assert page.locator('[data-figure="tonnes"]').get_attribute("data-value") == "36.4"
            assert page.locator('[data-figure="batches"]').inner_text() == "1"
            page.wait_for_selector('[data-map="flows"][data-map-ready="true"]')
            assert page.locator("tr[data-flow]").count() == 1
            page.locator("tr[data-flow] a").click()
            details = page.locator("#map-details")
            details.get_by_text("36.4").first.wait_for()
            # Details came without leaving the page; the selection is written into the view's address.
            assert page.url.startswith(f"{url}/map?year={year}") and "&sel=flow:" in page.url
            screenshot(page, "journey-map")

            page.goto(f"{url}/dashboard?year={year}")
            assert page.locator('[data-figure="manifest_utilised_t"]').inner_text() == "36.40 吨"
            assert not [u for u in requests if not u.startswith(url)]
            assert not errors, errors


def _maps_drawn(page: Any) -> None:
    """Wait until every map on the page has drawn (or said why not)."""
    wait_until(page, "[...document.querySelectorAll('[data-map]')].every(el => el.dataset.mapReady === 'true')")


def test_main_pages_on_the_demo(demo_site: DemoSite) -> None:
    """The audit workspace, an enterprise, a park, a battery and the batches, as their users see them on the demo.

    The screenshots show the first screen of each page, as the README wants them.
    """
    engine = make_engine(demo_site.settings.database_url)
    try:
        params = demo_parameters(engine)
    finally:
        engine.dispose()
    with playwright_entry()() as pw:
        with browser_page(pw, demo_site.url, locale="en") as (page, requests, errors):
            sign_in(page, demo_site, "auditor.sichuan", then="/audit")
            assert page.locator("h1").inner_text().startswith("Audit")
            screenshot(page, "demo-audit", full_page=False)
            page.goto(f"{demo_site.url}/audit/flags")
            screenshot(page, "demo-audit-flags", full_page=False)
            page.goto(f"{demo_site.url}/parks/{params['park_id']}")
            _maps_drawn(page)
            screenshot(page, "demo-park", full_page=False)
            page.goto(f"{demo_site.url}/batteries/{params['code']}")
            _maps_drawn(page)
            screenshot(page, "demo-trace", full_page=False)
            assert not [u for u in requests if not u.startswith(demo_site.url)]
            assert not errors, errors
        with browser_page(pw, demo_site.url) as (page, requests, errors):
            sign_in(page, demo_site, "ent.generator", then="/batches")
            assert page.locator("tr[data-batch]").count() == 25  # a full first page
            screenshot(page, "demo-batches", full_page=False)
            page.goto(f"{demo_site.url}/enterprises/{params['enterprise_id']}")
            _maps_drawn(page)
            screenshot(page, "demo-enterprise", full_page=False)
            page.goto(f"{demo_site.url}/sankey")
            screenshot(page, "demo-sankey", full_page=False)
            assert not errors, errors
