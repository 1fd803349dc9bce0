"""The main pages on the Sichuan demo in headless Chromium, signed in through the real form: the README's pictures.

The demo (seed 2024) is loaded once for this module into its own SQLite file and served by uvicorn; the tests sign
in as the demo accounts and walk the pages people use every day, checking what each one shows and saving a
screenshot of it (tests/_artifacts; docs/screenshots with CIRCUFLOW_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from app.main import create_app
from app.settings import Settings
from bench.pages_bench import demo_parameters, page_paths
from flows.demo import load_demo
from flows.demo_accounts import create_demo_accounts
from flows.setup import upgrade_database
from models.db import make_engine
from tests.browser import ROOT, browser_page, playwright_entry, screenshot, serve, unavailable


class DemoSite:
    """The demo served for the browser: its base URL, the accounts' passwords and an engine on its database."""

    def __init__(self, url: str, passwords: dict[str, str], settings: Settings) -> None:
        self.url = url
        self.passwords = passwords
        self.settings = settings


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """The demo in a SQLite file of its own, served on a free port for the whole module."""
    playwright_entry()  # skip (or fail under CI) before spending seconds on the demo
    path: Path = tmp_path_factory.mktemp("tour") / "demo.sqlite3"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade_database(engine)
    with Session(engine) as session:
        load_demo(session=session)
        accounts = create_demo_accounts(session=session, now=datetime.now(UTC))
        session.commit()
    engine.dispose()
    settings = Settings(database_url=url, environment="test", secret_key="tour-secret-" * 3)
    with serve(settings) as base:
        yield DemoSite(base, {a.username: a.password for a in accounts}, settings)


def sign_in(page: Any, site: DemoSite, username: str, *, then: str = "/") -> None:
    """Sign in through the sign-in form, as a person would, and land on `then`."""
    page.goto(f"{site.url}/login?next={then}")
    # By their labels: a field without one would fail here.
    page.get_by_label("用户名" if page.get_attribute("html", "lang") == "zh-CN" else "Username").fill(username)
    page.get_by_label("密码" if page.get_attribute("html", "lang") == "zh-CN" else "Password").fill(
        site.passwords[username]
    )
    page.locator('form[action="/login"] button[type="submit"]').click()
    page.wait_for_url(f"{site.url}{then}")


def test_dashboard_of_the_provincial_auditor(demo_site: DemoSite) -> None:
    with playwright_entry()() as pw, browser_page(pw, demo_site.url) as (page, requests, errors):
        sign_in(page, demo_site, "auditor.sichuan", then="/dashboard")
        assert page.locator("h1").inner_text().startswith("仪表板")
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
                continue  # not this user's page
            assert response.status == 200, (path, response.status)
            # Maps and charts draw after load; check what the user finally sees.
            page.wait_for_load_state("networkidle")
            page.add_script_tag(path=str(AXE))
            for lang in ("zh-CN", "en"):
                if page.get_attribute("html", "lang") != lang:
                    page.locator(f'.lang-switch a[hreflang="{lang}"]').click()
                    page.wait_for_load_state("networkidle")
                    page.add_script_tag(path=str(AXE))
                violations = page.evaluate(AXE_RUN)
                if violations:
                    found[f"{path} ({lang})"] = violations
        assert not errors, errors
    assert not found, found
