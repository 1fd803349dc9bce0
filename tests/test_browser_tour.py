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

from app.settings import Settings
from flows.demo import load_demo
from flows.demo_accounts import create_demo_accounts
from flows.setup import upgrade_database
from models.db import make_engine
from tests.browser import browser_page, playwright_entry, screenshot, serve


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
