"""A map that reads, in headless Chromium on the Sichuan demo, in Chinese and in English: place names, the largest
N flows, the view in the address (a link reproduces it, back and forward walk it), the PNG export and a park
manager's map opened on the park."""

from __future__ import annotations

import io
import os
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from sqlalchemy import create_engine, select
from sqlmodel import Session, col

from models import Park, Region, User
from models.enums import RegionLevel
from tests.browser import (
    ARTIFACTS,
    DOCS_SCREENSHOTS,
    DemoSite,
    browser_page,
    playwright_entry,
    screenshot,
    sign_in,
    wait_until,
)

READY = '#flow-map[data-map-ready="true"][data-flows-ready="true"]'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Every flow the map draws carries its key (lines and the circles of flows within one place).
DRAWN = "#flow-map path[data-flow]"
VIEW = """() => { const el = document.querySelector('#flow-map'); const m = window.circuflowMaps.get(el);
    const b = m.getBounds(); const c = m.getCenter();
    return {zoom: m.getZoom(), lat: c.lat, lng: c.lng,
            s: b.getSouth(), w: b.getWest(), n: b.getNorth(), e: b.getEast()}; }"""


def _prefecture_names(site: DemoSite, lang: str) -> set[str]:
    engine = create_engine(site.settings.database_url)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(col(Region.name_zh), col(Region.name_en)).where(col(Region.level) == RegionLevel.prefecture)
            ).all()
    finally:
        engine.dispose()
    return {(en if lang == "en" and en else zh) for zh, en in rows}


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def keep(data: bytes, name: str) -> None:
    """The exported picture beside the screenshots (and in docs/ when they are refreshed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(data)
    if os.environ.get("CIRCUFLOW_UPDATE_SCREENSHOTS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (DOCS_SCREENSHOTS / f"{name}.png").write_bytes(data)


def _drawn_after(page: Any, n: int) -> None:
    wait_until(page, f"document.querySelectorAll('{DRAWN}').length === {n}")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_map_reads_and_its_view_travels_by_link(demo_site: DemoSite, locale: str) -> None:
    lang = "en" if locale == "en" else "zh"
    with playwright_entry()() as pw, browser_page(pw, demo_site.url, locale=locale) as (page, requests, errors):
        sign_in(page, demo_site, "auditor.sichuan", then="/map")
        page.wait_for_selector(READY)

        # Every prefecture named in the reader's language, most of them visible at the province's zoom.
        names = page.eval_on_selector_all("#flow-map .map-label", "els => els.map(e => e.textContent)")
        assert set(names) == _prefecture_names(demo_site, locale) and len(names) == 21
        if locale == "en":
            assert not [n for n in names if re.search(r"[\u4e00-\u9fff]", n)], names
        visible = page.locator("#flow-map .map-label:not(.map-label--hidden)").count()
        assert visible >= 12, visible

        # The year shown is in the address, even when it came from the reader's last visit.
        assert _query(page.url)["year"] == page.locator("#flow-map").get_attribute("data-year")

        # The slider draws the largest N flows and says how many tonnes they carry.
        slider = page.locator("#map-top")
        count = int(slider.get_attribute("max") or 0)
        assert page.locator(DRAWN).count() == count > 20
        slider.fill("12")
        _drawn_after(page, 12)
        status = page.locator("#map-top-status").inner_text()
        assert "12" in status and str(count) in status and "%" in status
        assert _query(page.url)["top"] == "12"
        # The largest flow (Panzhihua within itself) is a circle as large as the widest line is wide.
        radii = page.eval_on_selector_all(
            DRAWN, "els => els.filter(e => !e.classList.contains('flow-line')).map(e => e.getBBox().width / 2)"
        )
        widths = page.eval_on_selector_all(
            "#flow-map path.flow-line[data-flow]", "els => els.map(e => Number(e.getAttribute('stroke-width')))"
        )
        assert radii and max(radii) >= max(widths) - 0.5 and max(radii) > 12

        # A flow opened from the list, then the map zoomed: the selection and the view go into the address.
        page.locator("#map-flows tbody tr a").first.click()
        page.wait_for_selector('#map-details [data-select^="flow:"]')
        selection = _query(page.url)["sel"]
        assert selection.startswith("flow:prefecture:")
        screenshot(page, f"mapread-{lang}-desktop")
        zoom = page.evaluate(VIEW)["zoom"]
        page.locator("#flow-map .leaflet-control-zoom-in").click()
        wait_until(page, f"(new URLSearchParams(location.search).get('at') || '').endsWith(',{zoom + 1:g}')")
        view = page.evaluate(VIEW)
        assert view["zoom"] == zoom + 1
        link = page.url
        assert page.locator("#map-link").get_attribute("href") == link.removeprefix(demo_site.url)

        # The link reproduces the view in a new page: the same flows drawn, the same selection, the same place.
        other = page.context.new_page()
        other.goto(link)
        other.wait_for_selector(READY)
        _drawn_after(other, 12)
        other.wait_for_selector(f'#map-details [data-select="flow:{selection.split(":", 2)[2].replace(":", ">")}"]')
        again = other.evaluate(VIEW)
        assert again["zoom"] == view["zoom"], (again, view, link)
        # The same centre to a few pixels (a layout change as the details arrive re-centres to the pixel).
        pixels = (view["n"] - view["s"]) / 100
        assert abs(again["lat"] - view["lat"]) < pixels and abs(again["lng"] - view["lng"]) < pixels, (again, view)
        other.close()

        # Back and forward walk the reader's choices (moving the map is not one of them).
        page.go_back()
        wait_until(page, "!new URLSearchParams(location.search).has('sel')")
        page.wait_for_selector("#map-details .map-details__empty")
        _drawn_after(page, 12)
        page.go_back()
        wait_until(page, "!new URLSearchParams(location.search).has('top')")
        _drawn_after(page, count)
        assert slider.input_value() == str(count)
        page.go_forward()
        _drawn_after(page, 12)
        page.go_forward()
        page.wait_for_selector('#map-details [data-select^="flow:"]')

        # The current view as a PNG, made in the browser.
        with page.expect_download() as download:
            page.locator("#map-export").click()
        assert download.value.suggested_filename.endswith(".png")
        data = open(download.value.path(), "rb").read()
        assert data.startswith(PNG_SIGNATURE)
        image = Image.open(io.BytesIO(data))
        box = page.locator("#flow-map").bounding_box()
        assert box is not None
        assert image.size == (round(box["width"]) * 2, (round(box["height"]) + 30) * 2)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 200  # the regions, flows, names and heading, not a blank canvas
        keep(data, f"mapread-{lang}-export")

        # Another year from the filters (the view swapped in place) keeps N; back brings the year before as it was.
        year = page.locator("#map-year").input_value()
        other_year = next(
            y for y in page.eval_on_selector_all("#map-year option", "os => os.map(o => o.value)") if y != year
        )
        page.select_option("#map-year", other_year)
        wait_until(
            page,
            f"(document.querySelector('#flow-map') || {{dataset: {{}}}}).dataset.flows.includes('year={other_year}')",
        )
        page.wait_for_selector(READY)
        assert _query(page.url)["year"] == other_year and "sel" not in _query(page.url)
        assert _query(page.url)["top"] == "12"
        page.go_back()
        wait_until(
            page, f"(document.querySelector('#flow-map') || {{dataset: {{}}}}).dataset.flows.includes('year={year}')"
        )
        page.wait_for_selector(READY)
        _drawn_after(page, 12)
        page.wait_for_selector('#map-details [data-select^="flow:"]')

        assert not [u for u in requests if not u.startswith(demo_site.url)]
        assert not errors, errors

    with (
        playwright_entry()() as pw,
        browser_page(pw, demo_site.url, locale=locale, width=390, height=844) as (
            page,
            _requests,
            errors,
        ),
    ):
        sign_in(page, demo_site, "auditor.sichuan", then="/map")
        page.wait_for_selector(READY)
        page.locator("#flow-map").scroll_into_view_if_needed()
        screenshot(page, f"mapread-{lang}-phone", full_page=False)
        assert not errors, errors


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_park_managers_map_opens_on_the_park(demo_site: DemoSite, locale: str) -> None:
    engine = create_engine(demo_site.settings.database_url)
    with Session(engine) as session:
        user = session.exec(select(User).where(col(User.username) == "park.panzhihua")).one()  # type: ignore[call-overload]
        park = session.get(Park, user[0].scope_park_id)
        assert park is not None
        west, south, east, north = park.boundary.bounds
    engine.dispose()
    with playwright_entry()() as pw, browser_page(pw, demo_site.url, locale=locale) as (page, requests, errors):
        sign_in(page, demo_site, "park.panzhihua", then="/map")
        page.wait_for_selector(READY)
        view = page.evaluate(VIEW)
        # The whole park in view, and filling most of it in one direction: not the province around it.
        assert view["s"] <= south and view["n"] >= north and view["w"] <= west and view["e"] >= east
        assert max((north - south) / (view["n"] - view["s"]), (east - west) / (view["e"] - view["w"])) > 0.5
        assert "at" not in _query(page.url)  # fitting is not the reader's move
        screenshot(page, f"mapread-park-{'en' if locale == 'en' else 'zh'}-desktop")
        assert not errors, errors
