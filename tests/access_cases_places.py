"""Access-matrix cases of the places pages (app/web_places.py).

An enterprise page answers whoever may read the enterprise (flows.access.scope); a park page answers those who read the
park's figures (the administrator, the bureaus over its region, its manager) and, with its public facts only, the
park's own enterprises; everyone else is told the page does not exist.
"""

from __future__ import annotations

from tests.access_cases import SEES_E1, SIGNED_IN, Case

# E3 lies in park B, Deyang.
SEES_E3 = frozenset({"admin", "bureau_sc", "bureau_dy", "park_b", "ent3"})

PLACES_CASES: list[Case] = [
    Case("GET", "/enterprises", SIGNED_IN, lambda w: "/enterprises?q=测试"),
    Case("GET", "/enterprises/{enterprise_id}", SEES_E1, lambda w: f"/enterprises/{w.e1}?year=2024"),
    Case("GET", "/enterprises/{enterprise_id}", SEES_E3, lambda w: f"/enterprises/{w.e3}"),
    Case("GET", "/parks/{park_id}", SEES_E1, lambda w: f"/parks/{w.park_a}?year=2024"),
    Case("GET", "/parks/{park_id}", SEES_E3, lambda w: f"/parks/{w.park_b}"),
]
