"""Shared pieces of the browser tests: Debian's Chromium driven by Playwright, a live server, signed-in contexts.

Needs /usr/bin/chromium (Debian package `chromium`) and the `playwright` Python package, whose wheel carries its
own driver; its browser download is never used. Without them a browser test is skipped, except under CI, where it
fails. The fixtures `sync_playwright` and `live_server` are registered in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlmodel import Session

from app.auth import SESSION_COOKIE, signed
from app.main import create_app
from app.settings import Settings
from app.setup import upgrade_database
from flows.access import accounts
from flows.demo.accounts import create_demo_accounts
from flows.demo.load import load_demo
from models import User
from models.db import make_engine

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
VENDOR = ROOT / "app" / "static" / "vendor"
TIMEOUT_MS = 20_000


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail under CI, where a missing browser must not pass silently."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def playwright_entry() -> Any:
    """Playwright's sync entry point, once Chromium, Playwright and the vendored libraries are known to be here."""
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is missing; install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the Python package playwright is missing; `pip install playwright` (never `playwright install`)")
    if not (VENDOR / "leaflet.js").is_file() or not (VENDOR / "htmx.min.js").is_file():
        unavailable(f"{VENDOR} is not populated; run `npm ci && python scripts/vendor.py`")
    return sync_playwright


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn in a background thread on a free localhost port; yields its base URL."""
    # Binding the socket here and handing it to uvicorn leaves no window in which another process takes the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def session_cookie_for(session: Session, settings: Settings, user: User) -> str:
    """A browser session for an existing account: the value of its session cookie."""
    raw, _csrf = accounts.start_session(session=session, user=user, now=datetime.now(UTC))
    session.commit()
    return signed(raw, settings.secret_key)


@contextmanager
def browser_page(
    pw: Any, base_url: str, *, cookie: str | None = None, locale: str = "zh-CN", width: int = 1280, height: int = 900
) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A new page in headless Chromium, optionally signed in; yields (page, requested URLs, script errors)."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    try:
        context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
        if cookie:
            context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": base_url}])
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        yield page, requests, errors
    finally:
        browser.close()


def wait_until(page: Any, expression: str, *, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until a JavaScript expression (or function) is truthy in the page."""
    # Playwright's wait_for_function compiles its predicate with `new Function` in the page, which the app's
    # Content-Security-Policy refuses (no 'unsafe-eval'); page.evaluate goes through the debugging protocol instead.
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_ms} ms: {expression}")
        page.wait_for_timeout(50)


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under tests/_artifacts; with CIRCUFLOW_UPDATE_SCREENSHOTS also as docs/screenshots/<name>."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("CIRCUFLOW_UPDATE_SCREENSHOTS"):
        # Refreshes the README's pictures on request only, so that an ordinary run leaves the tree clean.
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{name}.png")
    return path


def build_demo_file(path: Path) -> dict[str, str]:
    """The Sichuan demo (seed 2024) with its accounts in a new SQLite file; returns the accounts' passwords."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade_database(engine)
        with Session(engine) as session:
            load_demo(session=session)
            made = create_demo_accounts(session=session, now=datetime.now(UTC))
            session.commit()
    finally:
        engine.dispose()
    return {a.username: a.password for a in made}


class DemoSite:
    """The demo served for the browser: its base URL, the accounts' passwords and the settings it runs with."""

    def __init__(self, url: str, passwords: dict[str, str], settings: Settings) -> None:
        self.url = url
        self.passwords = passwords
        self.settings = settings


def demo_settings(path: Path) -> Settings:
    """Settings of a served copy of the demo."""
    return Settings(database_url=f"sqlite:///{path}", environment="test", secret_key="tour-secret-" * 3, flag_scan_s=0)


def sign_in(page: Any, site: DemoSite, username: str, *, then: str = "/") -> None:
    """Sign in through the sign-in form, as a person would, and land on `then`."""
    page.goto(f"{site.url}/login?next={then}")
    # By their labels: a field without one would fail here.
    zh = page.get_attribute("html", "lang") == "zh-CN"
    page.get_by_label("用户名" if zh else "Username").fill(username)
    page.get_by_label("密码" if zh else "Password").fill(site.passwords[username])
    page.locator('form[action="/login"] button[type="submit"]').click()
    page.wait_for_url(f"{site.url}{then}")
