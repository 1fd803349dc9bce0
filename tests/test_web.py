"""The server-rendered pages: language choice, the home page's figures, htmx fragments and the language switch."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlmodel import Session

from app.auth import SESSION_COOKIE, signed
from app.i18n import (
    LANGUAGES,
    LOCALES_DIR,
    catalogue,
    catalogue_files,
    choose_language,
    parse_accept_language,
    safe_next,
    translate,
)
from app.main import create_app
from app.settings import Settings
from app.web import HOME_COUNTS, TEMPLATES_DIR
from flows.access import accounts
from flows.kernel.messages import placeholders
from flows.pages.stats import table_counts
from maps.parks import ParkSpec, create_parks
from models.enums import ParkLevel

PREFECTURES = 21


class Elements(HTMLParser):
    """Every start tag of a page with its attributes, and the text inside elements of interest."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.counts: dict[str, int] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if "data-count" in attributes:
            self.counts[attributes["data-count"]] = int(attributes["data-value"])

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in wanted.items())]


def html_lang(html: str) -> str:
    match = re.search(r"<html[^>]*\blang=\"([^\"]+)\"", html)
    assert match, "no <html lang=...> in the page"
    return match.group(1)


@pytest.fixture
def session_cookie(session: Session, settings: Settings) -> str:
    """A browser session of an administrator in this test's database: the value of its cookie."""
    now = datetime.now(UTC)
    user = accounts.create_user(
        session=session, username="web-admin", password="correct horse battery", role="admin", now=now
    )
    raw, _csrf = accounts.start_session(session=session, user=user, now=now)
    session.commit()
    return signed(raw, settings.secret_key)


@pytest.fixture
def web(client: TestClient, session_cookie: str) -> TestClient:
    """The test client, signed in (pages are for signed-in users)."""
    client.cookies.set(SESSION_COOKIE, session_cookie)
    return client


@pytest.fixture
def parks(session: Session) -> list[str]:
    """Two parks, in Chengdu (a county of 510100) and Panzhihua; their Chinese names."""
    specs = [
        ParkSpec(
            name_zh="成都测试循环经济产业园",
            name_en="Chengdu Test Circular Park",
            level=ParkLevel.national,
            boundary=box(104.05, 30.64, 104.07, 30.66),
        ),
        ParkSpec(name_zh="攀枝花钒钛测试园区", level=ParkLevel.provincial, boundary=box(101.70, 26.55, 101.73, 26.58)),
    ]
    create_parks(specs, session=session)
    session.commit()
    return [s.name_zh for s in specs]


def test_home_defaults_to_chinese(web: TestClient) -> None:
    response = web.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-language"] == "zh-CN"
    html = response.text
    assert html_lang(html) == "zh-CN"
    assert "<title>四川省循环经济概览 · 循环流 circuflow</title>" in html
    assert "循环流" in html and "circuflow" in html
    assert 'src="/static/vendor/htmx.min.js"' in html
    assert 'href="/static/app.css"' in html
    page = Elements(html)
    rows = page.find("tr")
    prefecture_rows = [a["data-adcode"] for a in rows if "data-adcode" in a]
    assert len(prefecture_rows) == PREFECTURES
    assert prefecture_rows[0] == "510100"
    assert ">成都市<" in html
    assert "510100" in html


def test_home_in_english_by_cookie(web: TestClient) -> None:
    web.cookies.set("lang", "en")
    response = web.get("/")
    assert response.headers["content-language"] == "en"
    assert html_lang(response.text) == "en"
    assert "Sichuan circular economy overview" in response.text
    assert ">Chengdu<" in response.text
    assert "四川省循环经济概览" not in response.text


@pytest.mark.parametrize(
    ("header", "expected"),
    [("en-GB,en;q=0.9", "en"), ("fr-FR, en;q=0.5", "en"), ("zh-TW,en;q=0.5", "zh-CN"), ("de", "zh-CN")],
)
def test_home_follows_accept_language(web: TestClient, header: str, expected: str) -> None:
    response = web.get("/", headers={"Accept-Language": header})
    assert html_lang(response.text) == expected
    assert response.headers["content-language"] == expected


def test_cookie_beats_accept_language(web: TestClient) -> None:
    web.cookies.set("lang", "zh-CN")
    response = web.get("/", headers={"Accept-Language": "en"})
    assert html_lang(response.text) == "zh-CN"


def test_unknown_cookie_is_ignored(web: TestClient) -> None:
    web.cookies.set("lang", "xx")
    assert html_lang(web.get("/", headers={"Accept-Language": "en"}).text) == "en"


def test_default_language_from_settings(settings: Settings, session_cookie: str) -> None:
    with TestClient(create_app(settings.model_copy(update={"default_language": "en"}))) as english:
        english.cookies.set(SESSION_COOKIE, session_cookie)
        assert html_lang(english.get("/").text) == "en"


def test_counts_shown_equal_table_counts(web: TestClient, session: Session, parks: list[str]) -> None:
    page = Elements(web.get("/").text)
    counts = table_counts(session=session)
    assert page.counts == {key: counts[key] for key in HOME_COUNTS}
    assert page.counts["regions"] == 205
    assert page.counts["parks"] == 2
    # Each figure is labelled: a <dt> precedes its <dd>, inside the summary section.
    assert len(page.find("dt")) == len(HOME_COUNTS)
    assert page.find("section", aria_labelledby="summary-heading")


def test_parks_listed_with_level_and_prefecture(web: TestClient, parks: list[str]) -> None:
    zh = web.get("/").text
    for name in parks:
        assert name in zh
    assert "国家级" in zh and "省级" in zh
    assert "攀枝花市" in zh
    web.cookies.set("lang", "en")
    en = web.get("/").text
    assert "Chengdu Test Circular Park" in en
    # A park without an English name keeps its Chinese one.
    assert "攀枝花钒钛测试园区" in en
    assert "National" in en and "Provincial" in en and "Panzhihua" in en
    assert 'data-parks="/api/v1/parks/geojson"' in en


def test_no_parks_says_so(web: TestClient) -> None:
    html = web.get("/").text
    assert translate("zh-CN", "parks.empty") in html
    assert "data-parks" not in html


def test_map_container_points_at_the_boundaries(web: TestClient) -> None:
    page = Elements(web.get("/").text)
    (container,) = page.find("div", id="overview-map")
    assert container["data-boundaries"] == "/api/v1/regions/geojson?level=prefecture"
    assert container["data-tile-url"] == ""
    assert container["aria-label"]
    layer = web.get(container["data-boundaries"]).json()
    assert len(layer["features"]) == PREFECTURES


def test_tile_url_reaches_the_map(settings: Settings, session_cookie: str) -> None:
    url = "https://tiles.example/{z}/{x}/{y}.png"
    with TestClient(create_app(settings.model_copy(update={"tile_url": url}))) as tiled:
        tiled.cookies.set(SESSION_COOKIE, session_cookie)
        (container,) = Elements(tiled.get("/").text).find("div", id="overview-map")
    assert container["data-tile-url"] == url


def test_htmx_request_gets_only_the_content_block(web: TestClient) -> None:
    response = web.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.text
    assert "<html" not in html and not re.search(r"<head[\s>]", html)
    assert 'class="site-header"' not in html and "<footer" not in html and "<script" not in html
    assert html.lstrip().startswith('<div class="page">')
    assert 'id="summary-heading"' in html
    assert "HX-Request" in response.headers["vary"]


def test_boosted_or_history_restore_requests_get_the_whole_page(web: TestClient) -> None:
    for extra in ({"HX-Boosted": "true"}, {"HX-History-Restore-Request": "true"}):
        response = web.get("/", headers={"HX-Request": "true", **extra})
        assert "<html" in response.text


def test_layout_has_nav_and_labelled_language_switch(web: TestClient) -> None:
    page = Elements(web.get("/").text)
    (switcher,) = page.find("nav", **{"class": "lang-switch"})
    assert switcher["aria-label"] == "语言"
    links = {a["lang"]: a for a in page.find("a") if a.get("hreflang")}
    assert links["en"]["href"] == "/lang/en?next=%2F"
    assert links["zh-CN"]["aria-current"] == "true"
    assert page.find("nav", aria_label="主导航")
    assert page.find("a", href="/", aria_current="page")
    html = web.get("/").text
    for key in ("nav.dashboard", "nav.map", "nav.batches", "nav.batteries", "nav.audit", "nav.import"):
        assert translate("zh-CN", key) in html


def test_home_needs_sign_in(client: TestClient) -> None:
    response = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    assert client.get("/", headers={"Accept": "application/json"}).status_code == 401


def test_language_route_works_signed_out(client: TestClient) -> None:
    response = client.get("/lang/en", params={"next": "/login"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert response.headers["set-cookie"].startswith("lang=en;")


def test_language_route_sets_cookie_and_goes_back(web: TestClient) -> None:
    response = web.get("/lang/en", params={"next": "/?tab=parks"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/?tab=parks"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("lang=en;")
    assert "Max-Age=31536000" in cookie and "Path=/" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    # The client keeps the cookie, as a browser would.
    assert html_lang(web.get("/").text) == "en"
    web.get("/lang/zh-CN", follow_redirects=False)
    assert html_lang(web.get("/").text) == "zh-CN"


def test_unknown_language_refused(client: TestClient) -> None:
    response = client.get("/lang/xx", params={"next": "/"}, follow_redirects=False)
    assert response.status_code in (400, 422)
    assert "set-cookie" not in response.headers
    # A browser gets a page in the site's layout that names the languages it knows, not JSON.
    page = client.get("/lang/xx", headers={"Accept": "text/html", "Accept-Language": "en"})
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "<title>Bad request" in page.text and "zh-CN, en" in page.text and 'class="site-header"' in page.text


def test_unknown_page_is_a_page_for_browsers_and_json_for_the_api(web: TestClient) -> None:
    page = web.get("/no/such/page", headers={"Accept": "text/html", "Accept-Language": "zh-CN"})
    assert page.status_code == 404 and "<title>未找到" in page.text and 'class="main-nav"' in page.text
    bad = web.get("/dashboard", params={"year": "soon"}, headers={"Accept": "text/html", "Accept-Language": "en"})
    assert bad.status_code == 422 and "<title>Invalid input" in bad.text and "year: " in bad.text
    api = web.get("/api/v1/no/such/thing", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


def test_htmx_request_after_the_session_ended_sends_the_window_to_sign_in(client: TestClient) -> None:
    # As htmx sends it: Accept */*, the page the user is on in HX-Current-URL.
    headers = {"Accept": "*/*", "HX-Request": "true", "HX-Current-URL": "http://testserver/dashboard?year=2023"}
    response = client.get("/dashboard", headers=headers, follow_redirects=False)
    # Not the sign-in form swapped into the content area: htmx follows HX-Redirect with the whole window.
    assert response.status_code == 401 and response.text == ""
    assert response.headers["hx-redirect"] == "/login?next=/dashboard%3Fyear%3D2023"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/\t/evil.example",
        "",
    ],
)
def test_external_next_not_followed(client: TestClient, target: str) -> None:
    response = client.get("/lang/en", params={"next": target}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_locales_have_the_same_keys() -> None:
    areas = [path.relative_to(LOCALES_DIR).parent for path in catalogue_files("en")]
    assert areas == [path.relative_to(LOCALES_DIR).parent for path in catalogue_files("zh-CN")]
    files = {lang: dict(catalogue(lang)) for lang in LANGUAGES}
    keys = {lang: set(data) for lang, data in files.items()}
    assert keys["zh-CN"] == keys["en"], keys["zh-CN"] ^ keys["en"]
    for lang, data in files.items():
        assert all(isinstance(v, str) and v.strip() for v in data.values()), lang
        # Placeholders must match, or a message would fail to format in one language only.
        for key, text in data.items():
            assert placeholders(text) == placeholders(files["en"][key]), (lang, key)


def test_every_key_used_in_templates_exists() -> None:
    used: set[str] = set()
    for path in Path(TEMPLATES_DIR).rglob("*.html"):
        used |= set(re.findall(r"""\b(?:_|t)\(\s*["']([\w.]+)["']\s*[,)]""", path.read_text(encoding="utf-8")))
    # Keys built in templates from data: "count." ~ key and "park.level." ~ level.
    used |= {f"count.{key}" for key in HOME_COUNTS} | {f"park.level.{level.value}" for level in ParkLevel}
    assert used, "no translated strings found in the templates"
    for lang in LANGUAGES:
        missing = used - set(catalogue(lang))
        assert not missing, (lang, missing)


def test_translate_fills_parameters_and_survives_missing_keys() -> None:
    assert translate("en", "prefectures.count", count=21) == "21 in all"
    assert translate("zh-CN", "prefectures.count", count=21) == "共 21 个"
    assert translate("en", "no.such.key") == "no.such.key"
    with pytest.raises(ValueError, match="unknown language"):
        translate("xx", "app.tagline")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("en-US,en;q=0.9,zh-CN;q=0.8", ["en", "zh-CN"]),
        ("zh-CN;q=0.4, en;q=0.8", ["en", "zh-CN"]),
        ("zh-Hans-CN", ["zh-CN"]),
        ("en;q=0, zh", ["zh-CN"]),
        ("fr, de;q=0.5, *;q=0.1", []),
        ("en;q=abc", []),
        ("", []),
    ],
)
def test_parse_accept_language(header: str, expected: list[str]) -> None:
    assert parse_accept_language(header) == expected


def test_choose_language_order() -> None:
    assert choose_language("en", "zh-CN", "zh-CN") == "en"
    assert choose_language(None, "en", "zh-CN") == "en"
    assert choose_language("xx", None, "en") == "en"
    assert choose_language(None, "fr", "zh-CN") == "zh-CN"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/map?region=510100#top", "/map?region=510100#top"),
        (None, "/"),
        ("https://evil.example/", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/ok\nLocation: x", "/"),
        ("http:/evil.example", "/"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_home_counts_are_scoped(client: TestClient, session: Session, settings: Settings) -> None:
    """An enterprise user sees its own records counted, not the province's."""
    from tests.world import build_world

    w = build_world(session, with_tokens=False)
    user = accounts.get_user(session=session, username="ent1")
    raw, _ = accounts.start_session(session=session, user=user, now=datetime.now(UTC))
    session.commit()
    client.cookies.set(SESSION_COOKIE, signed(raw, settings.secret_key))
    response = client.get("/")
    assert response.status_code == 200
    counts = Elements(response.text).counts
    assert (counts["enterprises"], counts["declarations"], counts["regions"]) == (1, 1, 205)
    assert table_counts(session=session)["enterprises"] == 3 and w.e1
