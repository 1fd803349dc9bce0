"""Access-matrix cases of the licences (app/api_licences.py and the form on the enterprise page).

Licences are read by whoever may read the enterprise and recorded by the bureaus over its region (and the
administrator); an enterprise never records its own. E2 lies in Panzhihua, outside park A.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from flows.kernel.uscc import make_uscc
from flows.waste import licences
from tests.access_cases import GOVERNS_PZH, SEES_E1, Case
from tests.world import NOW, World

SEES_E2 = frozenset({"admin", "bureau_sc", "bureau_pzh"})


def _e2_uscc() -> str:
    return make_uscc("91510000MA000002")  # as tests.world numbers E2


def _licence(w: World, **changes: Any) -> dict[str, Any]:
    return {
        "uscc": _e2_uscc(),
        "activity": "utilisation",
        "category": "SW01",
        "valid_from": "2020-01-01",
        "capacity_t": 100,
        "number": "川固利〔2020〕0001号",
        **changes,
    }


def seed_licence(session: Session, w: World) -> dict[str, str]:
    """A licence of E2, recorded by the Panzhihua bureau; its id for the cases' URLs."""
    written = licences.record_licence(
        session=session,
        principal=w.principals["bureau_pzh"],
        licence=licences.parse_licence(_licence(w, valid_from="2019-01-01")),
        now=NOW,
    )
    session.commit()
    return {"licence": str(written.licence.id)}


LICENCE_CASES: list[Case] = [
    Case("POST", "/api/v1/licences", GOVERNS_PZH, lambda w: "/api/v1/licences", _licence, writes=True),
    Case("GET", "/api/v1/licences", SEES_E1, lambda w: f"/api/v1/licences?enterprise_id={w.e1}"),
    Case(
        "GET",
        "/api/v1/licences/{licence_id}",
        SEES_E2,
        lambda w: "/api/v1/licences/{licence}",
        extra={"seed": seed_licence},
    ),
    Case(
        "POST",
        "/enterprises/{enterprise_id}/licences",
        GOVERNS_PZH,
        lambda w: f"/enterprises/{w.e2}/licences",
        lambda w: {k: str(v) for k, v in _licence(w).items() if k != "uscc"},
        writes=True,
        extra={"form": True},
    ),
]
