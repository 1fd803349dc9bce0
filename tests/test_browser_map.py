"""The flow map and the Sankey pages in headless Chromium: drawn offline, details without a page load, filters.

The first test runs on the small world (exact figures); the second on the Sichuan demo, for the README's pictures.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session

from app.settings import Settings
from app.web_map import PALETTE, RATE_STYLES
from flows.pages import map as flowmap
from flows.waste.movements import parse_filter
from models import Declaration, Manifest, User
from models.enums import ManifestStatus, Route
from tests.browser import DemoSite, browser_page, screenshot, session_cookie_for, sign_in, wait_until
from tests.world import World, build_world, t

PREFECTURES = 21
REGION_FILLS = {style["fillColor"] for style in RATE_STYLES.values()}
# A point on a flow line, in the window's coordinates: 40% of the way (clear of the enterprise dots at its ends).
POINT_ON_LINE = """el => {
    const p = el.getPointAtLength(el.getTotalLength() * 0.4);
    const m = el.getScreenCTM();
    return [p.x * m.a + p.y * m.c + m.e, p.x * m.b + p.y * m.d + m.f];
}"""


def _batch(w: World, number: str, shipper: int, year: int, tonnes: float, category: str, route: Route) -> Manifest:
    at = datetime(year, 7, 1, 8, tzinfo=UTC)
    return Manifest(
        number=number,
        shipper_id=shipper,
        receiver_id=w.e2,
        category_code=category,
        route=route,
        year=year,
        status=ManifestStatus.received,
        weight_dispatched_t=t(tonnes),
        weight_received_t=t(tonnes),
        dispatched_at=at,
        received_at=at,
        created_at=at,
    )


@pytest.fixture
def world(session: Session) -> World:
    """The access world with flows in two years and declarations of 2024 that put its prefectures in two classes."""
    w = build_world(session)
    session.add(_batch(w, "SC2024-0000101", w.e3, 2024, 11.5, "SW02", Route.building_materials))
    session.add(_batch(w, "SC2023-0000102", w.e1, 2023, 40.0, "SW01", Route.road_base))
    session.add(Declaration(enterprise_id=w.e1, category_code="SW01", year=2024, generated_t=t(100), utilised_t=t(76)))
    session.add(Declaration(enterprise_id=w.e3, category_code="SW01", year=2024, generated_t=t(100), utilised_t=t(90)))
    session.commit()
    return w


def _lines(session: Session, w: World, year: int) -> int:
    f = parse_filter(session=session, principal=w.principals["admin"], year=year)
    return sum(
        not flow.within for flow in flowmap.flow_layer(session=session, principal=w.principals["admin"], f=f).flows
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_flow_map_in_chromium(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings, world: World
) -> None:
    w = world
    admin = session.get(User, w.users["admin"])
    assert admin is not None
    cookie = session_cookie_for(session, settings, admin)
    rr = flowmap.region_rates(session=session, principal=w.principals["admin"], year=2024)
    assert rr is not None
    expected_fills = Counter(RATE_STYLES[r.cls]["fillColor"] for r in rr.regions)
    assert len(expected_fills) >= 3  # meets, within 5 pt, no data: the world's prefectures fall in three classes

    with sync_playwright() as pw, browser_page(pw, live_server, cookie=cookie) as (page, requests, errors):
        page.goto(live_server + "/map?year=2024")
        page.wait_for_selector('#flow-map[data-map-ready="true"][data-flows-ready="true"]')

        # Regions coloured by their class (a pattern for the classes below the target and for no data).
        fills = page.eval_on_selector_all("#flow-map path.map-region", "els => els.map(e => e.getAttribute('fill'))")
        assert Counter(fills) == expected_fills
        assert page.locator("svg.map-defs pattern").count() == 3
        caption = page.locator("#map-legend-caption").inner_text()
        assert "2024" in caption and "2025" in caption and "78.0%" in caption
        assert page.locator("#map-legend .map-swatch--below").count() == 1  # the legend names every class in words

        # Flow lines with their arrowheads, one per pair of enterprises.
        lines = page.locator("#flow-map path.flow-line")
        assert lines.count() == _lines(session, w, 2024) == 2
        assert lines.first.get_attribute("marker-mid") == "url(#map-arrow)"
        assert page.locator("#flow-map img.leaflet-tile").count() == 0

        # Clicking a line opens its details beside the map: an htmx request, no page load.
        page.evaluate("window.__stayed = true")
        page.locator("#flow-map").scroll_into_view_if_needed()
        longest = max(range(lines.count()), key=lambda i: lines.nth(i).evaluate("el => el.getTotalLength()"))
        x, y = lines.nth(longest).evaluate(POINT_ON_LINE)
        page.mouse.click(x, y)
        details = page.locator('#map-details [data-select^="flow:"]')
        details.wait_for()
        assert page.evaluate("window.__stayed") is True
        assert "→" in page.locator("#map-details h2").inner_text()
        selected = details.get_attribute("data-select")
        assert selected == f"flow:{lines.nth(longest).get_attribute('data-flow')}"
        # The address names the selection, so that a link opens it again.
        assert page.url == live_server + "/map?year=2024&sel=flow:enterprise:" + selected[5:].replace(">", ":")
        assert lines.nth(longest).get_attribute("stroke") == PALETTE["selected"]  # highlighted on the map

        # The same from the keyboard: the flow list's links load the details and move the focus to them.
        row = page.locator("#map-flows tbody tr").last
        row.locator("a").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector(f'#map-details [data-select="flow:{row.get_attribute("data-flow")}"]')
        wait_until(page, "document.activeElement && document.activeElement.id === 'map-details-heading'")
        assert page.evaluate("window.__stayed") is True

        # A region's details carry the links to the audit drill-down.
        page.locator('#map-regions a[href^="/map/details/region/510400"]').click()
        page.wait_for_selector('#map-details [data-select="region:510400"]')
        assert page.locator('#map-details a[href="/audit?region=510400&year=2024"]').count() == 1

        # Another year: the map is redrawn in place and the address follows the filter.
        page.select_option("#map-year", "2023")
        page.wait_for_url("**/map?year=2023*")
        wait_until(
            page,
            """() => { const el = document.querySelector('#flow-map');
                return el && el.dataset.flows.includes('year=2023') && el.dataset.flowsReady === 'true'; }""",
        )
        assert page.evaluate("window.__stayed") is True
        assert page.locator("#flow-map path.flow-line").count() == _lines(session, w, 2023)
        assert page.locator("#map-details [data-select]").count() == 0  # details of 2024 are gone

        page.goto(live_server + "/sankey?year=2024")
        page.wait_for_selector('#sankey-route[data-chart-ready="true"]')
        page.wait_for_selector('#sankey-place[data-chart-ready="true"]')
        texts = "els => els.map(e => e.textContent)"
        route_nodes = page.eval_on_selector_all("#sankey-route svg text", texts)
        place_nodes = page.eval_on_selector_all("#sankey-place svg text", texts)
        assert {"冶炼废渣", "粉煤灰", "水泥掺合料", "建材"} <= set(route_nodes), route_nodes
        assert place_nodes.count("攀枝花市") == 2 and "德阳市" in place_nodes  # both sides of a prefecture

        foreign = [url for url in requests if not url.startswith(live_server)]
        assert not foreign, foreign
        assert not errors, errors


def test_map_and_sankey_on_the_demo(demo_site: DemoSite) -> None:
    from tests.browser import playwright_entry

    with playwright_entry()() as pw, browser_page(pw, demo_site.url) as (page, requests, errors):
        sign_in(page, demo_site, "auditor.sichuan", then="/map")
        page.wait_for_selector('#flow-map[data-map-ready="true"][data-flows-ready="true"]')
        fills = page.eval_on_selector_all("#flow-map path.map-region", "els => els.map(e => e.getAttribute('fill'))")
        assert len(fills) == PREFECTURES and set(fills) <= REGION_FILLS and len(set(fills)) >= 3
        assert page.locator('#flow-map[data-map-ready="true"] path.flow-line').count() > 20
        assert page.locator("#map-flows tbody tr").count() == 15
        # A flow between two prefectures opened in the panel, as a reader would.
        page.locator("#map-flows tbody tr", has_text="→").first.locator("a").click()
        page.wait_for_selector('#map-details [data-select^="flow:"]')
        screenshot(page, "map")

        page.goto(demo_site.url + "/sankey")
        page.wait_for_selector('#sankey-route[data-chart-ready="true"]')
        page.wait_for_selector('#sankey-place[data-chart-ready="true"]')
        assert page.locator("#sankey-place-table tbody tr").count() > 20
        screenshot(page, "sankey")
        assert not [u for u in requests if not u.startswith(demo_site.url)]
        assert not errors, errors


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_the_sankey_counts_first_manifests_by_path(demo_site: DemoSite, locale: str, phone: bool) -> None:
    """The Sankey read from its summary: the first manifests of every path add up to the total it states."""
    from tests.browser import playwright_entry

    width, height = (390, 844) if phone else (1280, 900)
    with (
        playwright_entry()() as pw,
        browser_page(pw, demo_site.url, locale=locale, width=width, height=height) as (page, requests, errors),
    ):
        sign_in(page, demo_site, "auditor.sichuan", then="/sankey?lang=" + locale)
        page.wait_for_selector('#sankey-place[data-chart-ready="true"]')
        heading = page.locator("#sankey-place-table thead").inner_text()
        assert ("首程联单数" if locale == "zh-CN" else "First manifests") in heading, heading
        for table in ("#sankey-route-table", "#sankey-place-table"):
            column = page.eval_on_selector_all(
                f"{table} tbody tr td:last-child", "els => els.map(e => e.textContent.trim())"
            )
            total = page.locator(f"{table} tfoot td").last.inner_text().strip()
            assert column and sum(int(c) for c in column) == int(total), table
        stated = page.locator('[data-figure="batches"]').inner_text()
        assert int("".join(ch for ch in stated if ch.isdigit())) == int(total)
        screenshot(page, f"sankey-{'phone-' if phone else ''}{locale}")
        assert not [u for u in requests if not u.startswith(demo_site.url)]
        assert not errors, errors
