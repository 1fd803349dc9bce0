"""Shared pieces of the access matrix: roles, role sets and the Case record; each area lists its own cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.world import World

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


BASE_CASES: list[Case] = [
    Case("GET", "/healthz", EVERYONE, _const("/healthz")),
    Case("GET", "/login", EVERYONE, _const("/login")),
    Case("GET", "/lang/{code}", EVERYONE, _const("/lang/en?next=/")),
    Case("GET", "/", SIGNED_IN, _const("/")),
    Case("GET", "/import", SIGNED_IN, _const("/import")),
    Case("GET", "/dashboard", SIGNED_IN, _const("/dashboard")),
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
    Case("GET", "/api/v1/audit/anchor", BUREAUS, _const("/api/v1/audit/anchor")),
    Case("GET", "/api/v1/locks", SIGNED_IN, _const("/api/v1/locks")),
    Case(
        "POST",
        "/api/v1/locks",
        GOVERNS_PZH,
        _const("/api/v1/locks"),
        lambda w: {"region_adcode": "510400", "year": 2022, "confirm": True},
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
