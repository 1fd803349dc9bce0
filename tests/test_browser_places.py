"""The enterprise and park pages in a real headless Chromium: the maps draw the point and the circular links."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session

from app.settings import Settings
from flows.access import accounts
from models import Manifest
from models.enums import EnterpriseRole, ManifestStatus, Route
from tests.browser import browser_page, screenshot, session_cookie_for
from tests.world import World, add_enterprise, build_world, t

# Counts of what Leaflet drew on a map: circle markers (points), plain lines and polygons.
COUNT_LAYERS = """el => {
    const map = window.circuflowMaps.get(el);
    const out = {points: 0, lines: 0, polygons: 0};
    map.eachLayer(layer => {
        if (layer instanceof L.CircleMarker) out.points += 1;
        else if (layer instanceof L.Polygon) out.polygons += 1;
        else if (layer instanceof L.Polyline) out.lines += 1;
    });
    return out;
}"""


@pytest.fixture
def world(session: Session) -> tuple[World, int]:
    """The small world, with a utiliser inside park A that takes E1's slag: one circular link."""
    w = build_world(session, with_tokens=False)
    e4 = add_enterprise(session, 4, 101.71, 26.57, EnterpriseRole.utiliser, name=("攀枝花测试建材有限公司", None))
    for n, weight in enumerate((40.0, 25.0), start=1):
        on = datetime(2024, 7, n, 8, tzinfo=UTC)
        session.add(
            Manifest(
                number=f"PB2024-{n:07d}",
                shipper_id=w.e1,
                receiver_id=e4,
                category_code="SW01",
                route=Route.building_materials,
                year=2024,
                status=ManifestStatus.received,
                weight_dispatched_t=t(weight),
                weight_received_t=t(weight),
                dispatched_at=on,
                received_at=on.replace(hour=14),
                created_at=on,
            )
        )
    session.commit()
    return w, e4


@pytest.fixture
def admin_cookie(session: Session, settings: Settings, world: tuple[World, int]) -> str:
    user = accounts.get_user(session=session, username="admin")
    return session_cookie_for(session, settings, user)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_enterprise_and_park_pages_in_chromium(
    sync_playwright: Any, live_server: str, world: tuple[World, int], admin_cookie: str
) -> None:
    w, e4 = world
    with sync_playwright() as pw, browser_page(pw, live_server, cookie=admin_cookie) as (page, requests, errors):
        page.goto(f"{live_server}/enterprises/{w.e1}?year=2024")
        assert page.get_attribute("html", "lang") == "zh-CN"
        assert page.locator("h1").inner_text() == "测试企业1"
        page.wait_for_selector('#enterprise-map[data-map-ready="true"]')
        drawn = page.eval_on_selector("#enterprise-map", COUNT_LAYERS)
        # Its own point and one point per counterpart (E2 outside the park, E4 inside), one line to each.
        assert drawn["points"] == 3 and drawn["lines"] == 2, drawn
        own = page.eval_on_selector(
            "#enterprise-map",
            """el => { let found = null; window.circuflowMaps.get(el).eachLayer(l => {
                   if (l instanceof L.CircleMarker && l.feature && l.feature.properties.kind === "self") found = l;
               }); const p = found.getLatLng(); return [p.lng, p.lat, found.getRadius()]; }""",
        )
        assert own == [101.72, 26.58, 9]
        assert page.locator("#flows-out tbody tr").count() == 2
        assert "产生单位" in page.locator(".places-header").inner_text()
        screenshot(page, "enterprise")

        page.locator('.lang-switch a[hreflang="en"]').click()
        page.wait_for_load_state("load")
        assert page.get_attribute("html", "lang") == "en"
        assert page.locator("h1").inner_text() == "Test Enterprise 1"
        assert "Generator" in page.locator(".places-header").inner_text()
        page.wait_for_selector('#enterprise-map[data-map-ready="true"]')

        # From the enterprise to its park, through the link on the page.
        page.locator("#park-link").click()
        page.wait_for_load_state("load")
        assert page.url.startswith(f"{live_server}/parks/{w.park_a}")
        page.wait_for_selector('#park-map[data-map-ready="true"]')
        drawn = page.eval_on_selector("#park-map", COUNT_LAYERS)
        # Its two enterprises and the one link E1 -> E4, over the park's boundary and the prefecture's counties.
        assert drawn["points"] == 2 and drawn["lines"] == 1 and drawn["polygons"] >= 2, drawn
        link = page.locator("#links tbody tr")
        assert link.count() == 1
        assert "Test Enterprise 1" in link.inner_text() and "SW01" in link.inner_text()
        assert "65.0" in link.inner_text()
        visible = page.eval_on_selector_all(
            "#park-map path.leaflet-interactive", "els => els.filter(e => e.getBBox().width > 1).length"
        )
        assert visible >= 4  # the polygon, the line and the two points are all on screen
        screenshot(page, "park")

        foreign = [url for url in requests if not url.startswith(live_server)]
        assert not foreign, foreign
        assert not errors, errors
