"""Access-matrix cases of the reference data (app/api_refdata.py and app/web_refdata.py).

Targets and categories are read by every signed-in account. Targets are set by administrators and by the bureaus
for their region and below (the cases' targets lie in Panzhihua); categories are kept by administrators alone.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from flows.waste import refdata
from tests.access_cases import GOVERNS_PZH, SIGNED_IN, Case
from tests.world import NOW, World

ADMIN = frozenset({"admin"})


def _target(w: World, **changes: Any) -> dict[str, Any]:
    return {
        "name": "panzhihua-2030",
        "scope_adcode": "510400",
        "year": 2030,
        "value": "85%",
        "categories": "SW01, SW02",
        "source": "攀枝花市工业固废综合利用实施方案",
        **changes,
    }


def _category(w: World) -> dict[str, Any]:
    return {"code": "261-001-S01", "name_zh": "钛白粉生产废渣", "name_en": "Titanium dioxide slag"}


def seed_target(session: Session, w: World) -> dict[str, str]:
    """A Panzhihua target set by its bureau; its id for the cases' URLs."""
    written = refdata.write_target(
        session=session,
        principal=w.principals["bureau_pzh"],
        target=refdata.parse_target(_target(w, name="panzhihua-2025", year=2025)),
        now=NOW,
    )
    session.commit()
    return {"target": str(written.target.id)}


SEED = {"seed": seed_target}

REFDATA_CASES: list[Case] = [
    Case("GET", "/api/v1/targets", SIGNED_IN, lambda w: "/api/v1/targets?scope=510400"),
    Case("POST", "/api/v1/targets", GOVERNS_PZH, lambda w: "/api/v1/targets", _target, writes=True),
    Case("GET", "/api/v1/targets/{target_id}", SIGNED_IN, lambda w: "/api/v1/targets/{target}", extra=SEED),
    Case(
        "PUT",
        "/api/v1/targets/{target_id}",
        GOVERNS_PZH,
        lambda w: "/api/v1/targets/{target}",
        lambda w: _target(w, name="panzhihua-2025", year=2025, value=0.86, revision=1),
        writes=True,
        extra=SEED,
    ),
    Case(
        "POST",
        "/api/v1/targets/{target_id}/retire",
        GOVERNS_PZH,
        lambda w: "/api/v1/targets/{target}/retire",
        lambda w: {"revision": 1},
        writes=True,
        extra=SEED,
    ),
    Case(
        "GET",
        "/api/v1/targets/{target_id}/history",
        SIGNED_IN,
        lambda w: "/api/v1/targets/{target}/history",
        extra=SEED,
    ),
    Case("GET", "/api/v1/categories", SIGNED_IN, lambda w: "/api/v1/categories"),
    Case("POST", "/api/v1/categories", ADMIN, lambda w: "/api/v1/categories", _category, writes=True),
    Case("GET", "/api/v1/categories/{code}", SIGNED_IN, lambda w: "/api/v1/categories/SW01"),
    Case("GET", "/api/v1/categories/{code}/history", SIGNED_IN, lambda w: "/api/v1/categories/SW01/history"),
    Case("GET", "/targets", SIGNED_IN, lambda w: "/targets"),
    Case(
        "POST",
        "/targets",
        GOVERNS_PZH,
        lambda w: "/targets",
        lambda w: {k: str(v) for k, v in _target(w).items()},
        writes=True,
        extra={"form": True},
    ),
    Case(
        "POST",
        "/targets/{target_id}/retire",
        GOVERNS_PZH,
        lambda w: "/targets/{target}/retire",
        lambda w: {"revision": "1"},
        writes=True,
        extra={"form": True, **SEED},
    ),
    Case("GET", "/categories", SIGNED_IN, lambda w: "/categories"),
    Case("POST", "/categories", ADMIN, lambda w: "/categories", _category, writes=True, extra={"form": True}),
]
