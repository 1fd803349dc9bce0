"""Every route of the app against every role: in scope gets 2xx, out of scope gets 401/403/404 and changes nothing.

The routes are read from the app's route table, so a route added without a line here fails the coverage test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.main import create_app
from app.settings import Settings
from tests.world import World, build_world

ROLES = ["anon", "admin", "bureau_sc", "bureau_pzh", "bureau_dy", "park_a", "park_b", "ent1", "ent3"]
SIGNED_IN = frozenset(ROLES) - {"anon"}
EVERYONE = frozenset(ROLES)
BUREAUS = frozenset({"admin", "bureau_sc", "bureau_pzh", "bureau_dy"})
SEES_E1 = frozenset({"admin", "bureau_sc", "bureau_pzh", "park_a", "ent1"})  # E1 lies in park A, Panzhihua
GOVERNS_PZH = frozenset({"admin", "bureau_sc", "bureau_pzh"})


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # the route's path template, as in the route table
    allowed: frozenset[str]
    url: Callable[[World], str]
    body: Callable[[World], Any] | None = None
    writes: bool = False  # a write succeeds once; later allowed roles would collide, so only the first is tried
    extra: dict[str, Any] = field(default_factory=dict)


def _const(url: str) -> Callable[[World], str]:
    return lambda _w: url


CASES: list[Case] = [
    Case("GET", "/healthz", EVERYONE, _const("/healthz")),
    Case("GET", "/login", EVERYONE, _const("/login")),
    Case("GET", "/lang/{code}", EVERYONE, _const("/lang/en?next=/")),
    Case("GET", "/", SIGNED_IN, _const("/")),
    Case("GET", "/docs", SIGNED_IN, _const("/docs")),
    Case("GET", "/api/v1/openapi.json", SIGNED_IN, _const("/api/v1/openapi.json")),
    Case("GET", "/api/v1/me", SIGNED_IN, _const("/api/v1/me")),
    Case("GET", "/api/v1/tokens", SIGNED_IN, _const("/api/v1/tokens")),
    Case("POST", "/api/v1/tokens", SIGNED_IN, _const("/api/v1/tokens"), lambda w: {"name": "n"}),
    Case(
        "DELETE",
        "/api/v1/tokens/{token_id}",
        frozenset({"admin", "ent1"}),
        lambda w: "/api/v1/tokens/{ent1_token}",
        writes=True,
    ),
    Case("GET", "/api/v1/users", frozenset({"admin"}), _const("/api/v1/users")),
    Case(
        "POST",
        "/api/v1/users",
        frozenset({"admin"}),
        _const("/api/v1/users"),
        lambda w: {"username": "newbie", "password": "long enough pw", "role": "bureau", "scope_adcode": "510100"},
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/users/{username}/disable",
        frozenset({"admin"}),
        _const("/api/v1/users/park_b/disable"),
        writes=True,
    ),
    Case("GET", "/api/v1/audit", BUREAUS, _const("/api/v1/audit")),
    Case("GET", "/api/v1/audit/verify", BUREAUS, _const("/api/v1/audit/verify")),
    Case("GET", "/api/v1/locks", SIGNED_IN, _const("/api/v1/locks")),
    Case(
        "POST",
        "/api/v1/locks",
        GOVERNS_PZH,
        _const("/api/v1/locks"),
        lambda w: {"region_adcode": "510400", "year": 2022},
        writes=True,
    ),
    Case("DELETE", "/api/v1/locks/{adcode}/{year}", GOVERNS_PZH, _const("/api/v1/locks/510400/2021"), writes=True),
    Case("GET", "/api/v1/corrections", SIGNED_IN, _const("/api/v1/corrections")),
    Case(
        "POST",
        "/api/v1/corrections",
        frozenset({"admin", "ent1"}),
        _const("/api/v1/corrections"),
        lambda w: {
            "table": "declaration",
            "reason": "scale fault",
            "payload": {"enterprise_id": w.e1, "category_code": "SW01", "year": 2021, "generated_t": 5},
        },
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/corrections/{correction_id}/approve",
        GOVERNS_PZH,
        lambda w: "/api/v1/corrections/{correction}/approve",
        lambda w: {"note": "ok"},
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/corrections/{correction_id}/reject",
        GOVERNS_PZH,
        lambda w: "/api/v1/corrections/{correction}/reject",
        lambda w: {"note": "no"},
        writes=True,
    ),
    Case("GET", "/api/v1/declarations", SIGNED_IN, _const("/api/v1/declarations")),
    Case(
        "POST",
        "/api/v1/declarations",
        frozenset({"admin", "ent1"}),
        _const("/api/v1/declarations"),
        lambda w: {"enterprise_id": w.e1, "category_code": "SW02", "year": 2024, "generated_t": 10},
        writes=True,
    ),
    Case("GET", "/api/v1/declarations/{declaration_id}", SEES_E1, lambda w: f"/api/v1/declarations/{w.decl_e1}"),
    Case("GET", "/api/v1/regions", SIGNED_IN, _const("/api/v1/regions?level=prefecture")),
    Case("GET", "/api/v1/regions/geojson", SIGNED_IN, _const("/api/v1/regions/geojson?tolerance=0.05")),
    Case("GET", "/api/v1/regions/{adcode}", SIGNED_IN, _const("/api/v1/regions/510400")),
    Case("GET", "/api/v1/regions/{adcode}/geojson", SIGNED_IN, _const("/api/v1/regions/510402/geojson")),
    Case("GET", "/api/v1/parks", SIGNED_IN, _const("/api/v1/parks")),
    Case("GET", "/api/v1/parks/geojson", SIGNED_IN, _const("/api/v1/parks/geojson")),
    Case("GET", "/api/v1/parks/{park_id}", SIGNED_IN, lambda w: f"/api/v1/parks/{w.park_a}"),
    Case("GET", "/api/v1/locate", SIGNED_IN, _const("/api/v1/locate?lon=101.72&lat=26.58")),
    Case("GET", "/api/v1/enterprises", SIGNED_IN, _const("/api/v1/enterprises")),
    Case("GET", "/api/v1/enterprises/directory", SIGNED_IN, _const("/api/v1/enterprises/directory?q=测试")),
    Case("GET", "/api/v1/enterprises/{enterprise_id}", SEES_E1, lambda w: f"/api/v1/enterprises/{w.e1}"),
    Case("GET", "/api/v1/stats", BUREAUS, _const("/api/v1/stats")),
]

# Routes exercised by their own tests (sign-in and sign-out need a browser session, not a token).
OWN_TESTS = {("POST", "/login"), ("POST", "/logout")}


def _walk(routes: list[Any], prefix: str = "") -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            # FastAPI >= 0.16x keeps included routers as branches of the route table.
            found |= _walk(included.routes, prefix + route.include_context.prefix)
        for method in getattr(route, "methods", None) or set():
            if method != "HEAD":
                found.add((method, prefix + route.path))
    return found


def _app_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite://", environment="test"))
    return _walk(list(app.routes))


def test_every_route_is_in_the_matrix() -> None:
    covered = {(c.method, c.path) for c in CASES} | OWN_TESTS
    assert _app_routes() - covered == set()
    assert covered - _app_routes() == set()


def _fingerprint(engine: Engine) -> str:
    """A digest of every row of every table this app writes (the boundaries excepted: nothing writes them)."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in (
            "enterprise",
            "declaration",
            "transfer_batch",
            "park",
            "user_account",
            "api_token",
            "period_lock",
            "correction_request",
            "audit_log",
            "login_session",
            "battery",
            "battery_event",
        ):
            # Using a token stamps its last_used_at: bookkeeping, not a change made by the request.
            cols = {"park": "id, name_zh, region_adcode", "api_token": "id, user_id, name, token_hash, revoked_at"}.get(
                table, "*"
            )
            for row in conn.execute(text(f"SELECT {cols} FROM {table} ORDER BY 1")):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _prepare(client: TestClient, w: World) -> dict[str, str]:
    """Objects some cases point at: a spare token of ent1 and a pending correction of E1 for locked 2021."""
    ent1 = {"Authorization": f"Bearer {w.tokens['ent1']}"}
    token = client.post("/api/v1/tokens", json={"name": "spare"}, headers=ent1).json()
    correction = client.post(
        "/api/v1/corrections",
        json={
            "table": "declaration",
            "reason": "scale fault",
            "payload": {"enterprise_id": w.e1, "category_code": "SW01", "year": 2021, "generated_t": 5},
        },
        headers=ent1,
    ).json()
    return {"ent1_token": str(token["id"]), "correction": str(correction["id"])}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
def test_access(case: Case, client: TestClient, engine: Engine, session: Any) -> None:
    w = build_world(session)
    refs = _prepare(client, w)
    url = case.url(w).format(**refs)
    body = case.body(w) if case.body else None
    denied = [r for r in ROLES if r not in case.allowed]
    allowed = [r for r in ROLES if r in case.allowed]
    for role in denied + allowed:
        before = _fingerprint(engine)
        headers = {"Accept": "application/json"}
        if role != "anon":
            headers["Authorization"] = f"Bearer {w.tokens[role]}"
        client.cookies.clear()
        response = client.request(case.method, url, json=body, headers=headers, follow_redirects=False)
        if role in case.allowed:
            assert 200 <= response.status_code < 400, (role, response.status_code, response.text[:300])
            if case.writes:
                break
        else:
            expected = {401} if role == "anon" else {403, 404}
            assert response.status_code in expected, (role, response.status_code, response.text[:300])
            assert _fingerprint(engine) == before, f"{role} changed the database through a refused request"


def _names(client: TestClient, w: World, role: str, url: str) -> set[Any]:
    response = client.get(url, headers={"Authorization": f"Bearer {w.tokens[role]}"})
    assert response.status_code == 200
    data = response.json()
    rows = data["data"] if isinstance(data, dict) else data
    return {row.get("id") for row in rows}


def test_lists_are_scoped(client: TestClient, session: Any) -> None:
    w = build_world(session)
    expected = {
        "admin": {w.e1, w.e2, w.e3},
        "bureau_sc": {w.e1, w.e2, w.e3},
        "bureau_pzh": {w.e1, w.e2},
        "bureau_dy": {w.e3},
        "park_a": {w.e1},
        "park_b": {w.e3},
        "ent1": {w.e1},
        "ent3": {w.e3},
    }
    for role, ids in expected.items():
        assert _names(client, w, role, "/api/v1/enterprises") == ids, role
    decls = {
        "bureau_pzh": {w.decl_e1},
        "bureau_dy": {w.decl_e3},
        "park_b": {w.decl_e3},
        "ent1": {w.decl_e1},
        "admin": {w.decl_e1, w.decl_e3},
    }
    for role, ids in decls.items():
        assert _names(client, w, role, "/api/v1/declarations") == ids, role
    # The directory gives any account the names and codes it needs to address a receiver, and nothing more.
    rows = client.get(
        "/api/v1/enterprises/directory", params={"q": "测试"}, headers={"Authorization": f"Bearer {w.tokens['ent1']}"}
    ).json()
    assert len(rows) == 3 and set(rows[0]) == {"id", "uscc", "name_zh", "name_en"}


def test_audit_log_is_scoped_and_filtered(client: TestClient, session: Any) -> None:
    w = build_world(session)
    for role, eid in (("ent1", w.e1), ("ent3", w.e3)):
        response = client.post(
            "/api/v1/declarations",
            json={"enterprise_id": eid, "category_code": "SW02", "year": 2024, "generated_t": 10},
            headers={"Authorization": f"Bearer {w.tokens[role]}"},
        )
        assert response.status_code == 200

    def entries(role: str, **params: Any) -> list[dict[str, Any]]:
        response = client.get("/api/v1/audit", params=params, headers={"Authorization": f"Bearer {w.tokens[role]}"})
        assert response.status_code == 200
        return response.json()["data"]

    assert {e["enterprise_id"] for e in entries("bureau_dy", table="declaration")} == {w.e3}
    assert {e["enterprise_id"] for e in entries("bureau_sc", table="declaration")} == {w.e1, w.e3}
    assert {e["enterprise_id"] for e in entries("admin", table="declaration", enterprise_id=w.e1)} == {w.e1}
    assert entries("admin", table="declaration", since="2999-01-01T00:00:00Z") == []
    assert client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {w.tokens['admin']}"}).json()["ok"]
