"""Every route of the app against every role: in scope gets 2xx, out of scope gets 401/403/404 and changes nothing.

The routes are read from the app's route table, so a route added without a line here fails the coverage test.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.main import create_app
from app.settings import Settings
from tests.access_cases import BASE_CASES, ROLES, Case
from tests.access_cases_asks import ASKS_CASES
from tests.access_cases_audit import AUDIT_CASES
from tests.access_cases_batches import BATCHES_CASES
from tests.access_cases_battery import BATTERY_CASES, NOBODY, SEEDED_CASES, seed_batteries
from tests.access_cases_battery_work import BATTERY_WORK_CASES
from tests.access_cases_daily import DAILY_CASES
from tests.access_cases_flagwork import FLAGWORK_CASES
from tests.access_cases_inspection import INSPECTION_CASES
from tests.access_cases_licences import LICENCE_CASES
from tests.access_cases_lockcheck import LOCKCHECK_CASES
from tests.access_cases_manifests import MANIFEST_CASES
from tests.access_cases_map import MAP_CASES
from tests.access_cases_notices import NOTICE_CASES
from tests.access_cases_places import PLACES_CASES
from tests.access_cases_print import PRINT_CASES
from tests.access_cases_refdata import REFDATA_CASES
from tests.access_cases_registry import REGISTRY_CASES
from tests.access_cases_reports import REPORT_CASES
from tests.access_cases_revisions import REVISION_CASES
from tests.access_cases_trace import SEEDED_TRACE_CASES, TRACE_CASES
from tests.world import World, build_world

# Each area of the app contributes its own list; together they must cover the whole route table.
# The battery routes that need a battery run against the seeded world; the plain-world cases that could only
# answer "not found" to everyone are left out.
CASES: list[Case] = [
    *BASE_CASES,
    *MANIFEST_CASES,
    *REPORT_CASES,
    *(case for case in BATTERY_CASES if case.allowed != NOBODY),
    *SEEDED_CASES,
    *SEEDED_TRACE_CASES,
    *MAP_CASES,
    *BATCHES_CASES,
    *PLACES_CASES,
    *AUDIT_CASES,
    *TRACE_CASES,
    *LICENCE_CASES,
    *PRINT_CASES,
    *NOTICE_CASES,
    *BATTERY_WORK_CASES,
    *DAILY_CASES,
    *FLAGWORK_CASES,
    *INSPECTION_CASES,
    *ASKS_CASES,
    *REVISION_CASES,
    *LOCKCHECK_CASES,
    *REGISTRY_CASES,
    *REFDATA_CASES,
]

# Routes exercised by their own tests: sign-in and sign-out need a browser session, uploads a multipart body
# (tests/test_web_import.py checks them role by role).
OWN_TESTS = {("POST", "/login"), ("POST", "/logout"), ("POST", "/import"), ("POST", "/api/v1/imports/{kind}")}
OWN_TESTS |= {("POST", "/batteries/import")}  # tests/test_battery_pages.py, role by role
# tests/test_attachments.py, role by role: the upload is multipart, and a read needs the bytes in the test's store.
OWN_TESTS |= {("POST", "/api/v1/attachments"), ("GET", "/api/v1/attachments/{attachment_id}")}
OWN_TESTS |= {("GET", "/attachments/{attachment_id}")}
OWN_TESTS |= {("POST", "/whitelist/import")}  # tests/test_registry.py: the upload is multipart


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
    app = create_app(Settings(database_url="sqlite://", environment="test", secret_key="t" * 32))
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
            "correction_ask",
            "audit_log",
            "login_session",
            "battery",
            "battery_event",
            "licence",
            "licence_revision",
            "whitelist_entry",
            "notice",
            "notice_preference",
            "flag_work",
            "flag_entry",
            "rate_revision",
            "correction_attachment",
            "target",
            "target_category",
            "waste_category",
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
    if any(case is seeded for seeded in (*SEEDED_CASES, *SEEDED_TRACE_CASES)):
        seed_batteries(session, w)
    refs = _prepare(client, w)
    if "seed" in case.extra:
        refs.update(case.extra["seed"](session, w))
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
        # Pages post HTML forms (extra={"form": True}); the API takes JSON.
        sent: dict[str, Any] = {"data": body} if case.extra.get("form") else {"json": body}
        response = client.request(case.method, url, headers=headers, follow_redirects=False, **sent)
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
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    assert {e["enterprise_id"] for e in entries("bureau_dy", table="declaration")} == {w.e3}
    assert {e["enterprise_id"] for e in entries("bureau_sc", table="declaration")} == {w.e1, w.e3}
    assert {e["enterprise_id"] for e in entries("admin", table="declaration", enterprise_id=w.e1)} == {w.e1}
    assert entries("admin", table="declaration", since="2999-01-01T00:00:00Z") == []
    assert client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {w.tokens['admin']}"}).json()["ok"]
