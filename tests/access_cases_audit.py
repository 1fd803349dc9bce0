"""Access-matrix cases of the audit pages (app/web_audit.py): bureau auditors and administrators only, each bureau
within its own region (the world's E1 and E2 lie in Panzhihua 510400, E3 in Deyang)."""

from __future__ import annotations

from tests.access_cases import BUREAUS, GOVERNS_PZH, Case

FORM = {"form": True}

AUDIT_CASES: list[Case] = [
    Case("GET", "/audit", BUREAUS, lambda w: "/audit?year=2023"),
    Case("GET", "/audit", GOVERNS_PZH, lambda w: "/audit?region=510400&year=2023"),
    Case("GET", "/audit", GOVERNS_PZH, lambda w: f"/audit?enterprise={w.e1}&year=2024"),
    Case(
        "GET",
        "/audit/rows",
        GOVERNS_PZH,
        lambda w: f"/audit/rows?kind=declarations&park={w.park_a}&year=2023",
    ),
    Case("GET", "/audit/flags", BUREAUS, lambda w: "/audit/flags?year=2024"),
    Case("GET", "/audit/locks", BUREAUS, lambda w: "/audit/locks"),
    Case(
        "POST",
        "/audit/locks",
        GOVERNS_PZH,
        lambda w: "/audit/locks",
        lambda w: {"region_adcode": "510400", "year": "2022", "confirm": "true"},
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/audit/locks/unlock",
        GOVERNS_PZH,
        lambda w: "/audit/locks/unlock",
        lambda w: {"region_adcode": "510400", "year": "2021"},
        writes=True,
        extra=FORM,
    ),
    Case("GET", "/audit/corrections", BUREAUS, lambda w: "/audit/corrections"),
    Case(
        "POST",
        "/audit/corrections/{correction_id}/approve",
        GOVERNS_PZH,
        lambda w: "/audit/corrections/{correction}/approve",
        lambda w: {"note": "weighbridge ticket seen"},
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/audit/corrections/{correction_id}/reject",
        GOVERNS_PZH,
        lambda w: "/audit/corrections/{correction}/reject",
        lambda w: {"note": "no evidence"},
        writes=True,
        extra=FORM,
    ),
    Case("GET", "/audit/export.xlsx", BUREAUS, lambda w: "/audit/export.xlsx?year=2023"),
    Case("GET", "/audit/export.csv", GOVERNS_PZH, lambda w: "/audit/export.csv?region=510400&year=2023"),
    Case(
        "GET",
        "/audit/layers/regions.geojson",
        GOVERNS_PZH,
        lambda w: "/audit/layers/regions.geojson?region=510400&year=2023",
    ),
    Case("GET", "/audit/layers/parks.geojson", BUREAUS, lambda w: "/audit/layers/parks.geojson?year=2023"),
    Case(
        "GET",
        "/audit/layers/enterprises.geojson",
        GOVERNS_PZH,
        lambda w: f"/audit/layers/enterprises.geojson?park={w.park_a}&year=2023",
    ),
]
