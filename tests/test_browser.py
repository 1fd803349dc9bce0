"""The home page in a real headless Chromium: title, the offline boundary map, the language switch, screenshots.

Needs /usr/bin/chromium (Debian package `chromium`) and the `playwright` Python package, whose wheel carries its
own driver; its browser download is never used. Without them the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from shapely.geometry import box
from sqlmodel import Session

from app.auth import SESSION_COOKIE, signed
from app.main import create_app
from app.settings import Settings
from flows import accounts
from maps.parks import ParkSpec, create_parks
from models.enums import ParkLevel

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
DOCS_SCREENSHOT = ROOT / "docs" / "screenshots" / "home.png"
VENDOR = ROOT / "app" / "static" / "vendor"
PREFECTURES = 21
TIMEOUT_MS = 20_000

# Parks for the page to list and draw: real national and provincial parks of Sichuan, with rough boxes near
# their locations (a test fixture and screenshot prop, not surveyed boundaries).
PARKS = [
    (
        "成都经济技术开发区",
        "Chengdu Economic and Technological Development Zone",
        ParkLevel.national,
        (104.22, 30.52, 104.32, 30.60),
    ),
    (
        "攀枝花钒钛高新技术产业开发区",
        "Panzhihua Vanadium and Titanium Hi-tech Zone",
        ParkLevel.national,
        (101.68, 26.52, 101.78, 26.60),
    ),
    (
        "德阳经济技术开发区",
        "Deyang Economic and Technological Development Zone",
        ParkLevel.national,
        (104.36, 31.08, 104.46, 31.16),
    ),
    (
        "宜宾临港经济技术开发区",
        "Yibin Lingang Economic and Technological Development Zone",
        ParkLevel.national,
        (104.70, 28.72, 104.80, 28.80),
    ),
    ("乐山高新技术产业开发区", "Leshan Hi-tech Zone", ParkLevel.national, (103.70, 29.56, 103.80, 29.64)),
    ("四川雅安经济开发区", "Ya'an Economic Development Zone", ParkLevel.provincial, (103.00, 29.96, 103.08, 30.04)),
    ("四川江油工业园区", "Jiangyou Industrial Park", ParkLevel.provincial, (104.70, 31.74, 104.80, 31.82)),
]


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail under CI, where a missing browser must not pass silently."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def sync_playwright() -> Any:
    """Playwright's sync entry point, once Chromium, Playwright and the vendored libraries are known to be here."""
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing; install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is missing; `pip install playwright` (never `playwright install`)")
    if not (VENDOR / "leaflet.js").is_file() or not (VENDOR / "htmx.min.js").is_file():
        _unavailable(f"{VENDOR} is not populated; run `npm ci && python scripts/vendor.py`")
    return sync_playwright


@pytest.fixture
def demo_parks(session: Session) -> list[str]:
    """Load the parks above into this test's database."""
    specs = [ParkSpec(name_zh=zh, name_en=en, level=level, boundary=box(*bounds)) for zh, en, level, bounds in PARKS]
    create_parks(specs, session=session)
    session.commit()
    return [zh for zh, *_ in PARKS]


@pytest.fixture
def session_cookie(session: Session, settings: Settings) -> str:
    """A browser session of an administrator: the value of its cookie (the pages are for signed-in users)."""
    now = datetime.now(UTC)
    user = accounts.create_user(
        session=session, username="browser-admin", password="correct horse battery", role="admin", now=now
    )
    raw, _csrf = accounts.start_session(session=session, user=user, now=now)
    session.commit()
    return signed(raw, settings.secret_key)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn in a background thread on a free localhost port."""
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


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_home_page_in_chromium(
    sync_playwright: Any, live_server: str, demo_parks: list[str], session_cookie: str
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            context.add_cookies([{"name": SESSION_COOKIE, "value": session_cookie, "url": live_server}])
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            requests: list[str] = []
            errors: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

            page.goto(live_server + "/")
            assert page.title() == "四川省循环经济概览 · 循环流 circuflow"
            assert page.get_attribute("html", "lang") == "zh-CN"
            assert page.locator("h1").inner_text() == "四川省循环经济概览"
            assert page.locator("#prefectures tbody tr").count() == PREFECTURES
            assert page.locator("#parks tbody tr").count() == len(demo_parks)

            # Leaflet draws GeoJSON as SVG paths: one per prefecture, plus one per park.
            page.wait_for_selector('#overview-map[data-map-ready="true"]')
            paths = page.locator("#overview-map svg path.leaflet-interactive")
            assert paths.count() == PREFECTURES + len(demo_parks)
            drawn = page.eval_on_selector_all(
                "#overview-map svg path.leaflet-interactive", "els => els.filter(e => e.getBBox().width > 1).length"
            )
            assert drawn == PREFECTURES + len(demo_parks)
            assert page.locator("#overview-map img.leaflet-tile").count() == 0
            page.screenshot(path=str(ARTIFACTS / "home-zh-CN.png"), full_page=True)
            if os.environ.get("CIRCUFLOW_UPDATE_SCREENSHOTS"):
                # Refreshes the README's picture on request, so that an ordinary run leaves the tree clean.
                DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ARTIFACTS / "home-zh-CN.png", DOCS_SCREENSHOT)

            # The switcher is reachable from the keyboard: a few Tabs from the top land on "English".
            english = page.locator('.lang-switch a[hreflang="en"]')
            for _ in range(10):
                page.keyboard.press("Tab")
                if english.evaluate("el => el === document.activeElement"):
                    break
            else:
                pytest.fail("the English link of the language switcher is not reachable with Tab")

            english.click()
            page.wait_for_load_state("load")
            assert page.get_attribute("html", "lang") == "en"
            assert page.locator("h1").inner_text() == "Sichuan circular economy overview"
            assert page.title() == "Sichuan circular economy overview · 循环流 circuflow"
            assert page.locator("#prefectures tbody tr").first.locator("th").inner_text() == "Chengdu"
            assert page.locator('.lang-switch a[aria-current="true"]').get_attribute("hreflang") == "en"
            page.wait_for_selector('#overview-map[data-map-ready="true"]')
            assert paths.count() == PREFECTURES + len(demo_parks)
            page.screenshot(path=str(ARTIFACTS / "home-en.png"), full_page=True)

            # On a phone-sized screen the layout folds into one column without sideways scrolling.
            page.set_viewport_size({"width": 390, "height": 844})
            too_wide = page.evaluate(
                """() => [...document.querySelectorAll("body *")]
                    .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
                    .map(el => el.tagName.toLowerCase() + (el.className ? "." + el.className : ""))"""
            )
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), too_wide[:10]
            # ... and the map refits the whole province into its narrower box.
            page.wait_for_function(
                """() => {
                    const box = document.querySelector("#overview-map").getBoundingClientRect();
                    const paths = [...document.querySelectorAll("#overview-map path.leaflet-interactive")];
                    return paths.every(p => {
                        const r = p.getBoundingClientRect();
                        return r.left >= box.left - 1 && r.right <= box.right + 1
                            && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
                    });
                }"""
            )
            page.screenshot(path=str(ARTIFACTS / "home-en-narrow.png"), full_page=True)

            # Offline by design: every request stayed on this server (no CDN, no tiles).
            foreign = [url for url in requests if not url.startswith(live_server)]
            assert not foreign, foreign
            assert not errors, errors
        finally:
            browser.close()
