"""Access-matrix cases of the reference data kept on pages and through the API (app/api_registry.py,
app/web_registry.py): the battery whitelist (read by every account, kept by administrators and the bureaus over the
enterprise's region) and the enterprise and park edits (administrators only). E2 lies in Panzhihua.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from flows.battery import whitelist
from flows.kernel.uscc import make_uscc
from tests.access_cases import GOVERNS_PZH, SEES_E1, SIGNED_IN, Case
from tests.world import NOW, World

ADMIN = frozenset({"admin"})


def _entry(w: World) -> dict[str, Any]:
    return {
        "uscc": make_uscc("91510000MA000002"),  # as tests.world numbers E2
        "activity": "recycling",
        "edition": "2024年本",
        "batch": "第二批",
        "listed_on": "2025-01-10",
    }


def seed_entry(session: Session, w: World) -> dict[str, str]:
    """A whitelist entry of E2, recorded by the Panzhihua bureau; its id for the cases' URLs."""
    data = _entry(w) | {"batch": "第一批", "listed_on": "2024-12-20"}
    written = whitelist.save_entry(session=session, principal=w.principals["bureau_pzh"], data=data, now=NOW)
    session.commit()
    return {"entry": str(written.entry.id)}


SEEDED = {"seed": seed_entry}
FORM = {"form": True}
EDIT_E2 = {"version": 1, "name_en": "Renamed", "roles": ["utiliser", "recycler"]}

REGISTRY_CASES: list[Case] = [
    Case("GET", "/api/v1/whitelist", SIGNED_IN, lambda w: "/api/v1/whitelist?listed=true"),
    Case("POST", "/api/v1/whitelist", GOVERNS_PZH, lambda w: "/api/v1/whitelist", _entry, writes=True),
    Case("GET", "/api/v1/whitelist/{entry_id}", SIGNED_IN, lambda w: "/api/v1/whitelist/{entry}", extra=SEEDED),
    Case(
        "POST",
        "/api/v1/whitelist/{entry_id}/delist",
        GOVERNS_PZH,
        lambda w: "/api/v1/whitelist/{entry}/delist",
        lambda w: {"delisted_on": "2025-06-01"},
        writes=True,
        extra=SEEDED,
    ),
    Case(
        "PATCH",
        "/api/v1/enterprises/{enterprise_id}",
        ADMIN,
        lambda w: f"/api/v1/enterprises/{w.e2}",
        lambda w: EDIT_E2,
        writes=True,
    ),
    Case(
        "GET", "/api/v1/enterprises/{enterprise_id}/history", SEES_E1, lambda w: f"/api/v1/enterprises/{w.e1}/history"
    ),
    Case(
        "PATCH",
        "/api/v1/parks/{park_id}",
        ADMIN,
        lambda w: f"/api/v1/parks/{w.park_a}",
        lambda w: {"version": 1, "level": "national"},
        writes=True,
    ),
    Case("GET", "/api/v1/parks/{park_id}/history", SIGNED_IN, lambda w: f"/api/v1/parks/{w.park_a}/history"),
    Case("GET", "/whitelist", SIGNED_IN, lambda w: "/whitelist"),
    Case("GET", "/whitelist/template.{suffix}", SIGNED_IN, lambda w: "/whitelist/template.csv"),
    Case(
        "POST",
        "/whitelist",
        GOVERNS_PZH,
        lambda w: "/whitelist",
        lambda w: _entry(w) | {"delisted_on": ""},
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/whitelist/{entry_id}/delist",
        GOVERNS_PZH,
        lambda w: "/whitelist/{entry}/delist",
        lambda w: {"delisted_on": "2025-06-01"},
        writes=True,
        extra=SEEDED | FORM,
    ),
    Case("GET", "/enterprises/{enterprise_id}/edit", ADMIN, lambda w: f"/enterprises/{w.e2}/edit"),
    Case(
        "POST",
        "/enterprises/{enterprise_id}/edit",
        ADMIN,
        lambda w: f"/enterprises/{w.e2}/edit",
        lambda w: {"version": "1", "name_zh": "测试企业2", "roles": ["utiliser"], "lon": "101.6", "lat": "26.55"},
        writes=True,
        extra=FORM,
    ),
    Case("GET", "/parks/{park_id}/edit", ADMIN, lambda w: f"/parks/{w.park_a}/edit"),
    Case(
        "POST",
        "/parks/{park_id}/edit",
        ADMIN,
        lambda w: f"/parks/{w.park_a}/edit",
        lambda w: {
            "version": "1",
            "name_zh": "攀枝花钒钛园区",
            "level": "national",
            "transformation_status": "completed",
        },
        writes=True,
        extra=FORM,
    ),
]
