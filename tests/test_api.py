"""The JSON API through the ASGI app: health, regions, parks, enterprises, locate, errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlmodel import Session

from flows.access import accounts
from maps.parks import ParkSpec, create_park
from models.enums import Channel, EnterpriseRole
from tests.world import NOW, add_enterprise


@pytest.fixture
def api(client: TestClient, session: Session) -> TestClient:
    """The test client, signed in as an administrator through an API token."""
    user = accounts.create_user(session=session, username="root", password="long enough pw", role="admin", now=NOW)
    _, raw = accounts.create_token(
        session=session, principal=accounts.principal_of(user, Channel.api), name="t", now=NOW
    )
    session.commit()
    client.headers["Authorization"] = f"Bearer {raw}"
    return client


def test_healthz_checks_the_database(client: TestClient, backend: str) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": backend}


def test_healthz_reports_a_dead_database(client: TestClient) -> None:
    client.app.state.health_engine.dispose()  # type: ignore[attr-defined]
    from models.db import make_engine

    dead = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    client.app.state.health_engine = dead  # type: ignore[attr-defined]
    response = client.get("/healthz")
    # Unhealthy, and the answer names neither the database's host nor the driver's message.
    assert response.status_code == 503 and response.json() == {"status": "error", "database": "unreachable"}
    assert "127.0.0.1" not in response.text


def test_openapi_documents_the_read_endpoints(api: TestClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/regions", "/api/v1/parks", "/api/v1/enterprises", "/api/v1/locate"):
        assert path in paths
    assert api.get("/docs").status_code == 200


def test_regions(api: TestClient) -> None:
    prefectures = api.get("/api/v1/regions", params={"level": "prefecture"}).json()
    assert len(prefectures) == 21
    assert {
        "adcode": "510400",
        "name_zh": "攀枝花市",
        "name_en": "Panzhihua",
        "level": "prefecture",
        "parent_adcode": "510000",
    } in prefectures
    counties = api.get("/api/v1/regions", params={"parent": "510400"}).json()
    assert counties and all(c["adcode"].startswith("5104") for c in counties)
    assert api.get("/api/v1/regions/510400").json()["name_en"] == "Panzhihua"
    layer = api.get("/api/v1/regions/geojson", params={"level": "prefecture"}).json()
    assert layer["type"] == "FeatureCollection" and len(layer["features"]) == 21
    one = api.get("/api/v1/regions/510400/geojson").json()
    assert one["type"] == "Feature" and one["properties"]["adcode"] == "510400"


def test_unknown_region_is_problem_json(api: TestClient) -> None:
    response = api.get("/api/v1/regions/999999")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["field"] == "adcode" and "999999" in body["detail"]


def test_bad_query_parameter_names_the_field(api: TestClient) -> None:
    response = api.get("/api/v1/regions", params={"level": "planet"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "level"]


def test_locate(api: TestClient) -> None:
    body = api.get("/api/v1/locate", params={"lon": 101.72, "lat": 26.58}).json()
    assert body["province"] == "510000" and body["prefecture"] == "510400" and body["park"] is None
    outside = api.get("/api/v1/locate", params={"lon": 116.4, "lat": 39.9})
    assert outside.status_code == 422 and "outside every loaded region" in outside.json()["detail"]


def _seed(session: Session) -> tuple[int, int]:
    park = create_park(
        ParkSpec(name_zh="攀枝花钒钛高新区", boundary=box(101.70, 26.56, 101.74, 26.60)), session=session
    )
    first = add_enterprise(session, 10, 101.72, 26.58, EnterpriseRole.generator, ("企业0", None))
    add_enterprise(session, 11, 104.06, 30.66, EnterpriseRole.utiliser, ("企业1", None))
    session.commit()
    assert park.id is not None
    return park.id, first


def test_parks_and_enterprises(api: TestClient, session: Session) -> None:
    park_id, first = _seed(session)
    parks = api.get("/api/v1/parks").json()
    assert [p["id"] for p in parks] == [park_id]
    assert api.get("/api/v1/parks", params={"region": "510100"}).json() == []
    assert api.get(f"/api/v1/parks/{park_id}").json()["region_adcode"].startswith("5104")
    assert api.get("/api/v1/parks/geojson").json()["features"][0]["id"] == park_id
    assert api.get("/api/v1/parks/999").status_code == 404

    everything = api.get("/api/v1/enterprises").json()
    assert everything["count"] == 2
    in_panzhihua = api.get("/api/v1/enterprises", params={"region": "510400"}).json()
    assert in_panzhihua["count"] == 1 and in_panzhihua["data"][0]["park_id"] == park_id
    assert in_panzhihua["data"][0]["roles"] == ["generator"]
    utilisers = api.get("/api/v1/enterprises", params={"role": "utiliser"}).json()
    assert utilisers["count"] == 1 and utilisers["data"][0]["prefecture_adcode"] == "510100"
    page = api.get("/api/v1/enterprises", params={"limit": 1, "offset": 1}).json()
    assert page["count"] == 2 and len(page["data"]) == 1 and page["data"][0]["id"] != first
    assert api.get("/api/v1/enterprises", params={"q": "企业1"}).json()["count"] == 1
    assert api.get(f"/api/v1/enterprises/{first}").json()["roles"] == ["generator"]
    assert api.get("/api/v1/enterprises/999999").status_code == 404
    assert api.get("/api/v1/enterprises/0").status_code == 422  # no id is below 1 (flows/kernel/bounds.py)
    assert api.get("/api/v1/enterprises", params={"limit": 0}).status_code == 422
    stats = api.get("/api/v1/stats").json()
    assert stats["enterprises"] == 2 and stats["parks"] == 1 and stats["regions"] == 205 and stats["users"] == 1
