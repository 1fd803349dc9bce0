"""Access-matrix cases of the daily-work routes: the search (page and API), import templates and history.

Search answers every signed-in user, each within its own scope (tests/test_search.py checks what each one finds);
a template answers only those who may import its kind.
"""

from __future__ import annotations

from tests.access_cases import SIGNED_IN, Case

ENTERPRISES_AND_ADMIN = frozenset({"admin", "ent1", "ent3"})

DAILY_CASES: list[Case] = [
    Case("GET", "/search", SIGNED_IN, lambda w: "/search?q=测试"),
    Case("GET", "/api/v1/search", SIGNED_IN, lambda w: "/api/v1/search?q=SC2024"),
    # Every account reads its own import history (empty for one that imported nothing).
    Case("GET", "/api/v1/imports", SIGNED_IN, lambda w: "/api/v1/imports"),
    Case("GET", "/import/templates/{kind}.csv", ENTERPRISES_AND_ADMIN, lambda w: "/import/templates/manifests.csv"),
    Case("GET", "/import/templates/{kind}.xlsx", frozenset({"admin"}), lambda w: "/import/templates/enterprises.xlsx"),
]
