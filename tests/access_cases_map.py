"""Access-matrix cases of the map pages (app/web_map.py).

The world's received batch goes from E1 (park A, Panzhihua) to E2 (Panzhihua): the roles that see E1 see it.
Regions and parks are reference data every signed-in account may open; the figures inside are scoped.
"""

from __future__ import annotations

from tests.access_cases import SEES_E1, SIGNED_IN, Case

MAP_CASES: list[Case] = [
    Case("GET", "/map", SIGNED_IN, lambda w: "/map?year=2024"),
    Case("GET", "/sankey", SIGNED_IN, lambda w: "/sankey?year=2024"),
    Case("GET", "/map/layers/flows.geojson", SIGNED_IN, lambda w: "/map/layers/flows.geojson?year=2024"),
    Case("GET", "/map/layers/enterprises.geojson", SIGNED_IN, lambda w: "/map/layers/enterprises.geojson?year=2024"),
    Case("GET", "/map/layers/regions.geojson", SIGNED_IN, lambda w: "/map/layers/regions.geojson?year=2024"),
    Case("GET", "/map/details/region/{adcode}", SIGNED_IN, lambda w: "/map/details/region/510400?year=2024"),
    Case("GET", "/map/details/park/{park_id}", SIGNED_IN, lambda w: f"/map/details/park/{w.park_a}?year=2024"),
    Case(
        "GET",
        "/map/details/enterprise/{enterprise_id}",
        SEES_E1,
        lambda w: f"/map/details/enterprise/{w.e1}?year=2024",
    ),
    Case(
        "GET",
        "/map/details/flow",
        SEES_E1,
        lambda w: f"/map/details/flow?year=2024&level=enterprise&from={w.e1}&to={w.e2}",
    ),
]
