"""The flow map and the Sankey pages: figures from the world's batches, scope, aggregation levels, details, totals."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session, col

from app.main import create_app
from app.settings import Settings
from flows.pages import map as flowmap
from flows.pages.map import RateClass, rate_class
from flows.waste.movements import parse_filter
from flows.waste.targets import path_value, resolve_category_set
from models import Declaration, Licence, Manifest
from models.enums import LicenceActivity, ManifestStatus, Route
from tests.world import World, build_world, t

RECEIVED = (ManifestStatus.received.value, ManifestStatus.corrected.value)


def _get(client: TestClient, w: World, role: str, url: str, **headers: str) -> Any:
    return client.get(url, headers={"Authorization": f"Bearer {w.tokens[role]}", **headers})


def _world(session: Session) -> World:
    """The access world, plus a received batch from E3 (Deyang) to E2 (Panzhihua), E2's utilisation licence and a
    declaration of E1 for 2024."""
    w = build_world(session)
    session.add(Declaration(enterprise_id=w.e1, category_code="SW01", year=2024, generated_t=t(100), utilised_t=t(76)))
    session.add(
        Manifest(
            number="SC2024-0000099",
            shipper_id=w.e3,
            receiver_id=w.e2,
            category_code="SW02",
            route=Route.building_materials,
            year=2024,
            status=ManifestStatus.received,
            weight_dispatched_t=t(12.0),
            weight_received_t=t(11.5),
            dispatched_at=datetime(2024, 6, 1, 8, tzinfo=UTC),
            received_at=datetime(2024, 6, 2, 8, tzinfo=UTC),
            created_at=datetime(2024, 6, 1, tzinfo=UTC),
        )
    )
    session.add(
        Licence(
            enterprise_id=w.e2,
            category_code="SW01",
            activity=LicenceActivity.utilisation,
            capacity_t=t(10_000),
            valid_from=date(2024, 1, 1),
        )
    )
    session.commit()
    return w


def _received(session: Session, **where: Any) -> float:
    """Tonnes received in 2024 by the batches matching `where` (column == value), straight from the table."""
    query = select(func.coalesce(func.sum(Manifest.weight_received_t), 0.0)).where(
        col(Manifest.year) == 2024, col(Manifest.status).in_(RECEIVED)
    )
    for name, value in where.items():
        query = query.where(getattr(Manifest, name) == value)
    return float(session.execute(query).scalar_one())


def _flows(client: TestClient, w: World, role: str, query: str = "year=2024") -> dict[str, Any]:
    response = _get(client, w, role, f"/map/layers/flows.geojson?{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    data: dict[str, Any] = response.json()
    return data


def _pairs(data: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["properties"]["from"], f["properties"]["to"]) for f in data["features"]}


def test_flow_layer_is_scoped_and_adds_up(client: TestClient, session: Session) -> None:
    w = _world(session)
    e1, e2, e3 = str(w.e1), str(w.e2), str(w.e3)
    from_e1, from_e3 = _received(session, shipper_id=w.e1), _received(session, shipper_id=w.e3)
    expected = {
        "admin": {(e1, e2), (e3, e2)},
        "bureau_sc": {(e1, e2), (e3, e2)},
        "bureau_pzh": {(e1, e2), (e3, e2)},  # E2, the receiver of both, lies in Panzhihua
        "bureau_dy": {(e3, e2)},  # not Panzhihua's own flow
        "park_a": {(e1, e2)},
        "park_b": {(e3, e2)},  # E3 lies in park B
        "ent1": {(e1, e2)},  # its own flows only
        "ent3": {(e3, e2)},
    }
    for role, pairs in expected.items():
        data = _flows(client, w, role)
        assert data["type"] == "FeatureCollection" and data["level"] == "enterprise", role
        assert _pairs(data) == pairs, role
        by_pair = {(f["properties"]["from"], f["properties"]["to"]): f for f in data["features"]}
        for pair, tonnes in (((e1, e2), from_e1), ((e3, e2), from_e3)):
            if pair in by_pair:
                assert math.isclose(by_pair[pair]["properties"]["tonnes"], tonnes), (role, pair)
                assert by_pair[pair]["geometry"]["type"] == "LineString"
                assert len(by_pair[pair]["geometry"]["coordinates"]) == 3  # bent: both directions stay apart
        assert math.isclose(data["tonnes"], sum(f["properties"]["tonnes"] for f in data["features"]))

    # Drafts, dispatched batches (not arrived) and other years never count.
    assert math.isclose(_flows(client, w, "admin")["tonnes"], from_e1 + from_e3)
    assert _flows(client, w, "admin", "year=2023")["features"] == []


def test_filters_narrow_the_flows(client: TestClient, session: Session) -> None:
    w = _world(session)
    assert _pairs(_flows(client, w, "admin", "year=2024&category=SW02")) == {(str(w.e3), str(w.e2))}
    assert _pairs(_flows(client, w, "admin", "year=2024&route=cement_admixture")) == {(str(w.e1), str(w.e2))}
    assert _flows(client, w, "admin", "year=2024&route=disposal")["features"] == []
    # Narrowed to Deyang: flows with one end there.
    assert _pairs(_flows(client, w, "admin", "year=2024&region=510600")) == {(str(w.e3), str(w.e2))}
    assert _pairs(_flows(client, w, "admin", f"year=2024&park={w.park_a}")) == {(str(w.e1), str(w.e2))}
    # Bad input is refused naming the field; a region outside a bureau's scope is forbidden.
    for query, field in (
        ("year=2024&category=SW99", "category"),
        ("year=2024&route=teleport", "route"),
        ("year=2024&level=county", "level"),
        ("year=2024&region=510402", "region"),  # a county: the map narrows to the province or a prefecture
    ):
        response = _get(client, w, "admin", f"/map/layers/flows.geojson?{query}")
        assert response.status_code == 422, query
        assert field in response.text
    assert _get(client, w, "bureau_dy", "/map/layers/flows.geojson?year=2024&region=510400").status_code == 403
    assert _get(client, w, "admin", "/map/layers/flows.geojson?year=2024&region=999999").status_code == 404


def test_aggregation_switches_level(client: TestClient, session: Session) -> None:
    w = _world(session)
    admin = w.principals["admin"]
    f = parse_filter(session=session, principal=admin, year=2024)
    few = flowmap.flow_layer(session=session, principal=admin, f=f)
    assert few.level == "enterprise" and few.pairs == 2
    # Over the limit of pairs, the whole-scope map rolls up to prefectures.
    many = flowmap.flow_layer(session=session, principal=admin, f=f, max_pairs=1)
    assert many.level == "prefecture"
    assert {(x.origin.key, x.destination.key) for x in many.flows} == {("510400", "510400"), ("510600", "510400")}
    # ... unless the map is narrowed to a region or a park, where enterprises are drawn however many.
    zoomed = parse_filter(session=session, principal=admin, year=2024, region="510400")
    assert flowmap.flow_layer(session=session, principal=admin, f=zoomed, max_pairs=1).level == "enterprise"
    # The same tonnes at either level; a prefecture's flows within itself are a point, the others lines.
    assert math.isclose(many.total.tonnes, few.total.tonnes)
    data = _flows(client, w, "admin", "year=2024&level=prefecture")
    kinds = {(f["properties"]["from"], f["properties"]["to"]): f for f in data["features"]}
    assert kinds[("510400", "510400")]["properties"]["kind"] == "within"
    assert kinds[("510400", "510400")]["geometry"]["type"] == "Point"
    assert kinds[("510600", "510400")]["geometry"]["type"] == "LineString"
    assert math.isclose(kinds[("510400", "510400")]["properties"]["tonnes"], _received(session, shipper_id=w.e1))
    assert data["level"] == "prefecture" and data["pairs"] == 2


def test_bottom_up_part_matches_the_rate_engine(client: TestClient, session: Session) -> None:
    w = _world(session)
    rate = _get(client, w, "bureau_pzh", "/api/v1/rates?year=2024&region=510400").json()
    assert rate["manifest_utilised_t"] > 0
    # The flows shipped by Panzhihua's generators in the target's categories: E1's SW01 batch to licensed E2.
    data = _flows(client, w, "bureau_pzh", "year=2024&category=SW01")
    assert math.isclose(sum(f["properties"]["utilised_t"] for f in data["features"]), rate["manifest_utilised_t"])
    # E2 holds no licence for SW02: those tonnes arrived but count nowhere in the bottom-up figure.
    sw02 = _flows(client, w, "bureau_pzh", "year=2024&category=SW02")
    assert sw02["features"][0]["properties"]["utilised_t"] == 0 and sw02["tonnes"] > 0


def test_sankey_adds_up_to_the_map(client: TestClient, session: Session) -> None:
    w = _world(session)
    scopes = (("admin", ""), ("bureau_pzh", ""), ("bureau_dy", ""), ("ent1", ""), ("admin", "&region=510600"))
    for role, query in scopes:
        page = _get(client, w, role, f"/sankey?year=2024{query}")
        assert page.status_code == 200, (role, page.text[:300])
        html = page.text
        total = float(re.search(r'data-figure="tonnes" data-value="([^"]+)"', html).group(1))  # type: ignore[union-attr]
        assert math.isclose(total, _flows(client, w, role, f"year=2024{query}")["tonnes"]), role
        charts = {m.group(1): json.loads(m.group(2).replace("&#34;", '"')) for m in _charts(html)}
        for which in ("route", "place"):
            assert math.isclose(sum(link["value"] for link in charts[which]["links"]), total), (role, which)
            rows = re.findall(rf'id="sankey-{which}-table".*?</table>', html, re.S)[0]
            values = [float(v) for v in re.findall(r'<tr data-value="([^"]+)"', rows)]
            assert math.isclose(sum(values), total), (role, which)
    # Both sides of the place diagram are distinct nodes, so a prefecture shipping to itself stays acyclic.
    html = _get(client, w, "admin", "/sankey?year=2024").text
    place = {m.group(1): json.loads(m.group(2).replace("&#34;", '"')) for m in _charts(html)}["place"]
    names = {n["name"] for n in place["nodes"]}
    assert {"o:510400", "d:510400", "o:510600"} <= names
    assert {"source": "o:510400", "target": "d:510400", "value": _received(session, shipper_id=w.e1)} in place["links"]
    assert "攀枝花市" in html and "德阳市" in html and "水泥掺合料" in html
    # Scope: a bureau picks regions within its own; ent1's diagram has its own flow only.
    assert _get(client, w, "bureau_pzh", "/sankey?year=2024&region=510600").status_code == 403
    ent1 = _get(client, w, "ent1", "/sankey?year=2024").text
    assert "德阳市" not in ent1
    assert 'id="sankey-region"' not in ent1  # no scope to choose


def _charts(html: str) -> Any:
    return re.finditer(r'id="sankey-(route|place)" class="sankey"[^>]*data-sankey=\'([^\']+)\'', html)


def test_map_page(client: TestClient, session: Session, settings: Settings) -> None:
    w = _world(session)
    html = _get(client, w, "admin", "/map?year=2024", **{"Accept-Language": "en"}).text
    assert '<div id="flow-map"' in html and 'data-map="flows"' in html
    assert 'data-flows="/map/layers/flows.geojson?year=2024"' in html
    assert 'data-tile-url=""' in html  # no tiles unless a URL is set
    # The legend says what the colours are held against: 2024 is before the path starts in 2025.
    assert "utilisation rate 2024 against the 2025 target (78.0%)" in html
    total = _received(session)
    assert f'data-value="{total}"' in html
    # Every prefecture is listed with its class, in words as well as in colour.
    assert len(re.findall(r'<tr data-adcode="51\d{2}00" data-class="', html)) == 21
    # The flow list: links that load the details beside the map (and work as plain links).
    assert f'hx-get="/map/details/flow?year=2024&amp;level=enterprise&amp;from={w.e1}&amp;to={w.e2}"' in html
    # htmx filters swap the map view only.
    part = _get(client, w, "admin", "/map?year=2024&category=SW02", **{"HX-Request": "true"}).text
    assert part.lstrip().startswith('<div id="map-view"') and "<html" not in part
    assert 'data-flows="/map/layers/flows.geojson?year=2024&amp;category=SW02"' in part
    # A tile layer only when one is configured.
    tiles = "https://tiles.example.org/{z}/{x}/{y}.png"
    with TestClient(create_app(settings.model_copy(update={"tile_url": tiles}))) as tiled:
        assert f'data-tile-url="{tiles}"' in _get(tiled, w, "admin", "/map?year=2024").text
    # Park managers and enterprises see their own rate where the others see regions coloured.
    zh = _get(client, w, "park_a", "/map?year=2024").text
    assert "本园区 2024 年综合利用率" in zh and 'id="map-regions"' not in zh


def test_region_layer_classes(client: TestClient, session: Session) -> None:
    w = _world(session)
    data = _get(client, w, "admin", "/map/layers/regions.geojson?year=2023").json()
    assert len(data["features"]) == 21
    # Simplified (in PostGIS, or with shapely on SQLite), never emptied.
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in data["features"])
    assert all(len(json.dumps(f["geometry"])) > 200 for f in data["features"])
    rates = _get(client, w, "admin", "/api/v1/rates?year=2023&by=region").json()
    reference = rates["next_target"]["value"]
    by_key = {row["key"]: row for row in rates["rows"]}
    for feature in data["features"]:
        props = feature["properties"]
        row = by_key[props["adcode"]]
        assert props["class"] == rate_class(row["rate"], reference).value
        assert props["style"]["fillColor"] and props["label"]
    # The world's two declaring prefectures, and the others with no data: both kinds are there.
    classes = {f["properties"]["class"] for f in data["features"]}
    assert {"no_data", rate_class(by_key["510400"]["rate"], reference).value} <= classes
    # A prefecture bureau colours its counties; a park manager gets plain prefectures.
    counties = _get(client, w, "bureau_pzh", "/map/layers/regions.geojson?year=2023").json()["features"]
    assert counties and all(f["properties"]["parent_adcode"] == "510400" for f in counties)
    plain = _get(client, w, "park_a", "/map/layers/regions.geojson?year=2023").json()["features"]
    assert len(plain) == 21 and all("class" not in f["properties"] for f in plain)


def test_rate_classes_and_references(session: Session) -> None:
    assert rate_class(0.78, 0.78) is RateClass.meets
    assert rate_class(0.73, 0.78) is RateClass.near  # exactly 5 points below
    assert rate_class(0.7299, 0.78) is RateClass.below
    assert rate_class(None, 0.78) is RateClass.no_data
    assert rate_class(1.2, 0.78) is RateClass.over_100
    w = build_world(session)
    admin = w.principals["admin"]
    _cats, path = resolve_category_set(session=session, region_adcode="510000", year=2027)
    assert path is not None
    before = flowmap.region_rates(session=session, principal=admin, year=2024)
    on_path = flowmap.region_rates(session=session, principal=admin, year=2027)
    after = flowmap.region_rates(session=session, principal=admin, year=2031)
    assert before and before.reference and before.reference.kind == "next" and before.reference.year == 2025
    assert on_path and on_path.reference and on_path.reference.kind == "path"
    assert on_path.reference.value == path_value(path.points, 2027)
    assert after and after.reference and after.reference.kind == "last" and after.reference.year == 2030
    assert flowmap.region_rates(session=session, principal=w.principals["ent1"], year=2024) is None


def test_details(client: TestClient, session: Session) -> None:
    w = _world(session)
    htmx = {"HX-Request": "true"}
    # A flow: fragment for htmx, a whole page for a plain link.
    url = f"/map/details/flow?year=2024&level=enterprise&from={w.e1}&to={w.e2}"
    part = _get(client, w, "ent1", url, **htmx).text
    assert "<html" not in part and f'data-select="flow:{w.e1}&gt;{w.e2}"' in part
    assert f'data-value="{_received(session, shipper_id=w.e1)}"' in part
    assert "<html" in _get(client, w, "ent1", url).text
    assert _get(client, w, "ent3", url).status_code == 404
    # Without ends: the map's largest flow.
    assert 'data-select="flow:' in _get(client, w, "admin", "/map/details/flow?year=2024", **htmx).text
    # A prefecture-level flow lists the enterprise pairs behind it.
    pref = _get(client, w, "admin", "/map/details/flow?year=2024&level=prefecture&from=510600&to=510400").text
    assert f"from={w.e3}&amp;to={w.e2}" in pref

    # A region: the bureau that governs it sees its rate; another bureau only the flows it may see.
    pzh = _get(client, w, "bureau_pzh", "/map/details/region/510400?year=2024", **htmx).text
    within = _received(session, shipper_id=w.e1)
    incoming = _received(session, shipper_id=w.e3)
    assert f'data-figure="within" data-value="{within}"' in pzh
    assert f'data-figure="incoming" data-value="{incoming}"' in pzh
    assert 'data-figure="rate"' in pzh and "/audit?region=510400&amp;year=2024" in pzh
    dy = _get(client, w, "bureau_dy", "/map/details/region/510400?year=2024", **htmx).text
    assert 'data-figure="rate"' not in dy
    assert 'data-figure="within" data-value="0.0"' in dy and f'data-figure="incoming" data-value="{incoming}"' in dy

    # An enterprise: its own page link for those who read it; a partner is shown by name and shared flows only.
    e2_for_ent1 = _get(client, w, "ent1", f"/map/details/enterprise/{w.e2}?year=2024", **htmx).text
    assert f"/enterprises/{w.e2}" not in e2_for_ent1
    assert f'data-figure="incoming" data-value="{within}"' in e2_for_ent1  # E3's batch is not ent1's to see
    e1_for_admin = _get(client, w, "admin", f"/map/details/enterprise/{w.e1}?year=2024", **htmx).text
    assert f'href="/enterprises/{w.e1}"' in e1_for_admin
    assert _get(client, w, "ent3", f"/map/details/enterprise/{w.e1}?year=2024").status_code == 404

    # A park: reference data for everyone, its rate only where it is the user's to read.
    park = _get(client, w, "park_a", f"/map/details/park/{w.park_a}?year=2023", **htmx).text
    assert 'data-figure="rate"' in park and f'href="/parks/{w.park_a}"' in park
    other = _get(client, w, "park_b", f"/map/details/park/{w.park_a}?year=2023", **htmx).text
    assert 'data-figure="rate"' not in other
    assert _get(client, w, "admin", "/map/details/park/999999").status_code == 404


@pytest.mark.parametrize("role", ["admin", "ent1"])
def test_enterprise_points(client: TestClient, session: Session, role: str) -> None:
    w = _world(session)
    data = _get(client, w, role, "/map/layers/enterprises.geojson?year=2024").json()
    props = {f["properties"]["id"]: f["properties"] for f in data["features"]}
    if role == "admin":
        assert set(props) == {w.e1, w.e2, w.e3}
    else:
        # Itself, and the other end of its flows (as a partner: not its to read).
        assert set(props) == {w.e1, w.e2} and props[w.e1]["readable"] and not props[w.e2]["readable"]
    assert props[w.e1]["role"] == "generator" and props[w.e1]["group"] == "generator"
    assert props[w.e2]["group"] == "utiliser"
    assert math.isclose(props[w.e1]["sent_t"], _received(session, shipper_id=w.e1))
