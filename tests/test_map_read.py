"""A map that reads: place labels inside their regions, the top-N flows, one scale for lines and circles, the view
in the address, a park's map opened on the park, and colours that stay apart for colour-blind readers."""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import MultiPolygon, Point, Polygon, shape
from sqlmodel import Session

from app.web_map import PALETTE
from flows.kernel.errors import InvalidInput
from flows.pages import map as flowmap
from flows.waste.movements import parse_filter
from maps.geometry import label_point
from models import Park
from tests.test_web_map import _get, _world
from tests.world import World


def _attribute(page: str, name: str) -> str:
    found = re.search(rf"{name}=([\"'])(.*?)\1", page)
    assert found, name
    return html.unescape(found.group(2))


# ---------------------------------------------------------------------------------------------------------------
# Place names


def test_a_label_point_lies_inside_even_a_crescent() -> None:
    # An L-shaped region whose centroid falls outside it, and a far islet: the name goes inside the main part.
    ell = Polygon([(0, 0), (4, 0), (4, 1), (1, 1), (1, 4), (0, 4)])
    islet = Polygon([(10, 10), (10.1, 10), (10.1, 10.1)])
    assert not ell.contains(ell.centroid)
    lon, lat = label_point(MultiPolygon([ell, islet]))
    assert ell.contains(Point(lon, lat))


def test_regions_carry_their_name_and_a_label_point_inside(client: TestClient, session: Session) -> None:
    w = _world(session)
    for lang, key in (("en", "name_en"), ("zh-CN", "name_zh")):
        response = _get(client, w, "admin", "/map/layers/regions.geojson?year=2024", **{"Accept-Language": lang})
        assert response.status_code == 200
        features = response.json()["features"]
        assert features
        for feature in features:
            props = feature["properties"]
            assert props["name"] == (props[key] or props["name_zh"])
            assert shape(feature["geometry"]).buffer(1e-6).contains(Point(*props["label_point"])), props["adcode"]


def test_the_api_regions_carry_their_label_point(client: TestClient, session: Session) -> None:
    w = _world(session)
    features = _get(client, w, "ent1", "/api/v1/regions/geojson?level=prefecture").json()["features"]
    assert features
    for feature in features:
        inside = shape(feature["geometry"]).buffer(1e-6)
        assert inside.contains(Point(*feature["properties"]["label_point"])), feature["id"]


# ---------------------------------------------------------------------------------------------------------------
# The largest N flows, one scale


def test_top_flows_state_their_count_and_tonnes(client: TestClient, session: Session) -> None:
    w = _world(session)
    f = parse_filter(session=session, principal=w.principals["admin"], year=2024)
    layer = flowmap.flow_layer(session=session, principal=w.principals["admin"], f=f)
    assert len(layer.flows) == 2
    largest = layer.top(1)
    assert (largest.shown, largest.count) == (1, 2)
    assert largest.tonnes == layer.flows[0].tonnes >= layer.flows[1].tonnes
    assert largest.share == pytest.approx(float(layer.flows[0].tonnes / layer.total.tonnes))
    assert layer.top(None) == layer.top(99) == flowmap.TopFlows(2, 2, layer.total.tonnes, 1.0)

    # The layer and the page say the same; the totals stay the filter's.
    data = _get(client, w, "admin", "/map/layers/flows.geojson?year=2024&top=1").json()
    assert len(data["features"]) == 1 and data["flows"] == 2
    assert data["tonnes"] == pytest.approx(float(layer.total.tonnes))
    page = _get(client, w, "admin", "/map?year=2024&top=1", **{"Accept-Language": "en"}).text
    assert 'id="map-top" name="top"' in page and 'max="2"' in page and 'value="1"' in page
    status = re.search(r'<output id="map-top-status"[^>]*>([^<]*)</output>', page)
    assert status and status.group(1).startswith("The largest 1 of 2 flows: ")
    assert 'id="map-link" href="/map?year=2024&amp;top=1"' in page
    zh = _get(client, w, "admin", "/map?year=2024", **{"Accept-Language": "zh-CN"}).text
    assert "全部 2 条流向" in zh
    assert 'id="map-top" form=' in zh  # all drawn: not sent with the filters, so the next year shows all of its own
    empty = _get(client, w, "admin", "/map?year=2023").text  # a year without flows: nothing to count
    assert 'id="map-top"' not in empty and 'id="map-top-status"' not in empty and 'id="map-export"' in empty

    for query in ("top=0", "top=-1", "top=abc", "top=100001"):
        for url in (f"/map?year=2024&{query}", f"/map/layers/flows.geojson?year=2024&{query}"):
            response = _get(client, w, "admin", url, Accept="application/json")
            assert response.status_code == 422, url
            assert response.json()["field"] == "top", url


def test_one_scale_sizes_lines_and_circles() -> None:
    scale = flowmap.FlowScale(2_345_678.0)
    assert scale.px(2_345_678.0) == flowmap.FLOW_MAX_PX
    # By the square root: a quarter of the tonnes, half the size; never thinner than the floor.
    assert scale.px(2_345_678.0 / 4) == pytest.approx(flowmap.FLOW_MAX_PX / 2)
    assert scale.px(0.001) == flowmap.FLOW_MIN_PX
    assert scale.samples() == [2_000_000, 200_000]
    assert flowmap.FlowScale(0.0).samples() == [] and flowmap.FlowScale(0.0).px(5) == flowmap.FLOW_MIN_PX


def test_the_legend_draws_the_scale_the_script_draws(client: TestClient, session: Session) -> None:
    w = _world(session)
    page = _get(client, w, "admin", "/map?year=2024").text
    f = parse_filter(session=session, principal=w.principals["admin"], year=2024)
    largest = float(flowmap.flow_layer(session=session, principal=w.principals["admin"], f=f).flows[0].tonnes)
    assert float(_attribute(page, "data-flow-max-tonnes")) == pytest.approx(largest)
    assert float(_attribute(page, "data-flow-max-px")) == flowmap.FLOW_MAX_PX
    sizes = [float(px) for px in re.findall(r'<li data-px="([0-9.]+)">', page)]
    scale = flowmap.FlowScale(largest)
    assert sizes == [pytest.approx(scale.px(t), abs=0.05) for t in scale.samples()]


# ---------------------------------------------------------------------------------------------------------------
# The view in the address


def test_the_view_and_the_selection_are_read_from_the_address(client: TestClient, session: Session) -> None:
    w = _world(session)
    sel = f"flow:enterprise:{w.e1}:{w.e2}"
    page = _get(client, w, "admin", f"/map?year=2024&sel={sel}&at=26.58,101.72,9.5").text
    assert _attribute(page, "data-selection") == sel
    assert _attribute(page, "data-view") == "26.58000,101.72000,9.5"
    assert _attribute(page, "data-level") == "enterprise"
    for good in ("region:510400", f"park:{w.park_a}", f"enterprise:{w.e1}", "flow:prefecture::510400"):
        assert flowmap.parse_selection(good) == good
    assert flowmap.parse_selection("") is None and flowmap.parse_view(" ") is None

    for field, bad in (
        ("sel", "flow:510400>510400"),
        ("sel", "region:51<script>"),
        ("sel", "audit:1"),
        ("at", "91,100,5"),
        ("at", "30,181,5"),
        ("at", "30,100,19"),
        ("at", "30,100"),
        ("at", "nan,nan,5"),
    ):
        response = _get(client, w, "admin", f"/map?year=2024&{field}={bad}", Accept="application/json")
        assert response.status_code == 422, bad
        assert response.json()["field"] == field, bad
    with pytest.raises(InvalidInput) as refused:
        flowmap.parse_view("1e400,0,1")
    assert refused.value.field == "at"
    assert _get(client, w, "admin", "/map?year=2024&sel=" + "1" * 65).status_code == 422


def test_a_flows_details_name_their_level_for_the_address(client: TestClient, session: Session) -> None:
    w = _world(session)
    url = f"/map/details/flow?year=2024&level=enterprise&from={w.e1}&to={w.e2}"
    body = _get(client, w, "admin", url, **{"HX-Request": "true"}).text
    assert f'data-select="flow:{w.e1}&gt;{w.e2}"' in body and 'data-level="enterprise"' in body


# ---------------------------------------------------------------------------------------------------------------
# A park's map


def _bounds(session: Session, park_id: int) -> Any:
    park = session.get(Park, park_id)
    assert park is not None
    west, south, east, north = park.boundary.bounds
    return pytest.approx([south, west, north, east])


def _fit(page: str) -> list[float]:
    (south, west), (north, east) = json.loads(_attribute(page, "data-fit-bounds"))
    return [south, west, north, east]


def test_a_park_managers_map_opens_on_the_park(client: TestClient, session: Session) -> None:
    w: World = _world(session)
    page = _get(client, w, "park_a", "/map?year=2024").text
    assert _fit(page) == _bounds(session, w.park_a)
    assert "data-fit-layers" not in page
    # An administrator narrowed to a park: the same; over the province: the boundaries, no park.
    narrowed = _get(client, w, "admin", f"/map?year=2024&park={w.park_b}").text
    assert _fit(narrowed) == _bounds(session, w.park_b)
    assert "data-fit-bounds" not in _get(client, w, "admin", "/map?year=2024").text


# ---------------------------------------------------------------------------------------------------------------
# Colours that read for colour-blind readers

# Machado, Oliveira and Fernandes (2009), severity 1.0, on linear RGB.
SIMULATIONS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
    "tritanopia": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.303900)),
}
# The pairs a reader must tell apart: the (selection on a hatched region, battery dots against the classes
# below the target, hover against selection) and their neighbours.
MUST_DIFFER = [
    ("selected", "flow"),
    ("selected", "below"),
    ("selected", "near"),
    ("selected", "meets"),
    ("selected", "hover"),
    ("selected", "battery"),
    ("selected", "park"),
    ("hover", "flow"),
    ("hover", "below"),
    ("hover", "near"),
    ("battery", "below"),
    ("battery", "near"),
    ("battery", "meets"),
    ("battery", "generator"),
    ("generator", "disposer"),
    ("battery", "flow"),
    ("battery", "park_fill"),
    ("park", "below"),
    ("park_fill", "near"),
]
MIN_DELTA_E = 20.0  # CIE76 distance; about 2.3 is the smallest difference an eye notices


def _linear(hex_colour: str) -> list[float]:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    return [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]


def _lab(rgb: list[float]) -> tuple[float, float, float]:
    x = (0.4124 * rgb[0] + 0.3576 * rgb[1] + 0.1805 * rgb[2]) / 0.95047
    y = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    z = (0.0193 * rgb[0] + 0.1192 * rgb[1] + 0.9505 * rgb[2]) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def _seen(hex_colour: str, matrix: tuple[tuple[float, float, float], ...] | None) -> tuple[float, float, float]:
    rgb = _linear(hex_colour)
    if matrix is not None:
        rgb = [min(1.0, max(0.0, sum(m * c for m, c in zip(row, rgb, strict=True)))) for row in matrix]
    return _lab(rgb)


@pytest.mark.parametrize("vision", [None, *SIMULATIONS])
def test_the_palette_stays_apart_under_colour_blindness(vision: str | None) -> None:
    matrix = SIMULATIONS[vision] if vision else None
    close = {
        (a, b): round(math.dist(_seen(PALETTE[a], matrix), _seen(PALETTE[b], matrix)), 1)
        for a, b in MUST_DIFFER
        if math.dist(_seen(PALETTE[a], matrix), _seen(PALETTE[b], matrix)) < MIN_DELTA_E
    }
    assert close == {}


def test_the_page_and_its_styles_use_the_palette(client: TestClient, session: Session) -> None:
    w = _world(session)
    page = _get(client, w, "admin", "/map?year=2024").text
    assert json.loads(_attribute(page, "data-palette")) == PALETTE
    assert f'fill="{PALETTE["below"]}"' in page and f'fill="{PALETTE["selected"]}"' in page
    css = open("app/static/css/map.css", encoding="utf-8").read()
    for key in ("battery", "disposer", "generator", "park", "hover", "selected"):
        assert PALETTE[key] in css, key
