"""Access-matrix cases of locking with a checklist and of late filings (app/api_lockcheck.py, the locks page).

The checklist is for the bureaus that may lock the region (Panzhihua: its own bureau, the province's, the
administrator); a late filing is the enterprise's own, as its direct write would have been. The world locks
Panzhihua's 2021, where E1 declared nothing of SW02.
"""

from __future__ import annotations

from tests.access_cases import GOVERNS_PZH, Case
from tests.world import World

FILES_FOR_E1 = frozenset({"admin", "ent1"})


def _late_declaration(w: World) -> dict[str, object]:
    return {
        "kind": "declaration",
        "reason": "the ledger of 2021 was found late",
        "payload": {"enterprise_id": w.e1, "category_code": "SW02", "year": 2021, "generated_t": 5},
    }


LOCKCHECK_CASES: list[Case] = [
    Case(
        "GET",
        "/audit/locks/checklist",
        GOVERNS_PZH,
        lambda w: "/audit/locks/checklist?region_adcode=510400&year=2024",
    ),
    Case("GET", "/api/v1/locks/checklist", GOVERNS_PZH, lambda w: "/api/v1/locks/checklist?adcode=510400&year=2024"),
    Case(
        "POST", "/api/v1/late-filings", FILES_FOR_E1, lambda w: "/api/v1/late-filings", _late_declaration, writes=True
    ),
]
