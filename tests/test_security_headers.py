"""Security headers (app/security.py): the pages' content security policy, no framing or sniffing, no caching of
audits; and the pages still work in Chromium with the policy enforced."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.auth import SESSION_COOKIE
from app.main import create_app
from app.security import (
    HTMX_INDICATOR_STYLE,
    TEMPLATES_DIR,
    content_security_policy,
    inline_scripts,
    source_hash,
    template_script_hashes,
    tile_source,
)
from app.settings import Settings
from flows.access import accounts
from tests.browser import VENDOR, browser_page, session_cookie_for
from tests.world import build_world


def _directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in policy.split("; ")}


def _assert_always(headers: Any) -> None:
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"


@pytest.fixture
def signed_in(client: TestClient, session: Session, settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The client signed in as the provincial bureau auditor (cookie), and the world's tokens."""
    w = build_world(session)
    client.cookies.set(
        SESSION_COOKIE,
        session_cookie_for(session, settings, accounts.get_user(session=session, username="bureau_sc")),
    )
    yield client, w.tokens
    client.cookies.clear()


def test_pages_carry_the_policy_and_every_answer_the_fixed_headers(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    _assert_always(page.headers)
    policy = _directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["img-src"] == ["'self'", "data:"] and policy["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert "cache-control" not in page.headers or "no-store" not in page.headers["cache-control"]
    for path in ("/healthz", "/static/app.css", "/api/v1/regions"):
        answer = client.get(path)
        _assert_always(answer.headers)
        assert "content-security-policy" not in answer.headers, path  # not a page


def test_audit_answers_are_never_stored(signed_in: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = signed_in
    for path in ("/audit?year=2023", "/audit/flags?year=2024", "/audit/locks"):
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 200, (path, page.text[:200])
        assert page.headers["cache-control"] == "no-store", path
        assert "content-security-policy" in page.headers
    bearer = {"Authorization": f"Bearer {tokens['admin']}"}
    for path in ("/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/anchor"):
        answer = client.get(path, headers=bearer)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store", path
    assert "no-store" not in client.get("/dashboard").headers.get("cache-control", "")
    assert "no-store" not in client.get("/api/v1/locks", headers=bearer).headers.get("cache-control", "")


def test_the_tile_host_may_serve_images(settings: Settings) -> None:
    tiled = settings.model_copy(update={"tile_url": "https://{s}.tile.example.org/{z}/{x}/{y}.png"})
    with TestClient(create_app(tiled)) as client:
        policy = _directives(client.get("/login").headers["content-security-policy"])
    assert policy["img-src"] == ["'self'", "data:", "https://*.tile.example.org"]
    assert tile_source("https://tiles.{region}.example.org/{z}/{x}/{y}.png") == "https://*.example.org"
    assert tile_source("http://127.0.0.1:8080/{z}/{x}/{y}.png") == "http://127.0.0.1:8080"
    assert tile_source("javascript:alert(1)") is None


def test_the_api_documentation_allows_only_its_own_script(signed_in: tuple[TestClient, dict[str, str]]) -> None:
    client, _tokens = signed_in
    docs = client.get("/docs")
    assert docs.status_code == 200
    scripts = inline_scripts(docs.text)
    assert len(scripts) == 1
    policy = _directives(docs.headers["content-security-policy"])
    assert source_hash(scripts[0]) in policy["script-src"]
    # That hash is for /docs alone.
    assert source_hash(scripts[0]) not in _directives(client.get("/login").headers["content-security-policy"])


def test_every_inline_script_of_the_templates_is_allowed_by_its_hash() -> None:
    policy = _directives(content_security_policy(script_hashes=template_script_hashes()))
    found = 0
    for path in sorted(TEMPLATES_DIR.rglob("*.html")):
        for script in inline_scripts(path.read_text(encoding="utf-8")):
            found += 1
            # A script that renders variables changes with them and cannot be allowed by a hash: keep data in
            # data- attributes and code in /static instead.
            assert "{{" not in script and "{%" not in script, path.name
            assert source_hash(script) in policy["script-src"], path.name
    assert found == len(template_script_hashes())


def test_the_htmx_indicator_style_is_the_one_vendored() -> None:
    htmx = (VENDOR / "htmx.min.js").read_text(encoding="utf-8")
    if "includeIndicatorStyles" not in htmx:
        pytest.skip("htmx is not vendored")
    # The minified source builds the element from the class names; these are its fixed parts, in order.
    pieces = re.split(r"\.htmx-(?:indicator|request)", HTMX_INDICATOR_STYLE)
    assert [p for p in pieces if p.strip(" ,")] == [
        "{opacity:0;visibility: hidden} ",
        "{opacity:1;visibility: visible;transition: opacity 200ms ease-in}",
    ]
    for piece in (
        "{opacity:0;visibility: hidden} ",
        "{opacity:1;visibility: visible;transition: opacity 200ms ease-in}",
    ):
        assert piece in htmx


def test_pages_work_in_the_browser_with_the_policy_enforced(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings
) -> None:
    """Pages with inline code of their own (the API documentation, the import page's progress script, htmx's style)
    and the maps and charts: no violation of the policy reaches the console."""
    build_world(session)
    cookie = session_cookie_for(session, settings, accounts.get_user(session=session, username="admin"))
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=cookie) as (page, _requests, errors):
        violations: list[str] = []
        page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
        for path in ("/docs", "/import", "/dashboard", "/", "/map", "/audit?year=2023", "/login"):
            response = page.goto(live_server + path)
            assert response is not None and response.status == 200, path
            page.wait_for_load_state("networkidle")
        assert page.evaluate("typeof htmx") == "object"  # htmx ran and added its style (allowed by its hash)
        page.goto(live_server + "/docs")
        page.wait_for_selector(".swagger-ui .info", timeout=20_000)  # Swagger UI ran
        assert violations == [] and errors == [], (violations, errors)
