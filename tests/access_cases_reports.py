"""Access-matrix cases of the rate and flag routes."""

from __future__ import annotations

from collections.abc import Callable

from tests.access_cases import GOVERNS_PZH, Case
from tests.world import World


def _const(url: str) -> Callable[[World], str]:
    return lambda _w: url


# Each is scoped to Panzhihua: the province and the city's bureaus see it; the park, the enterprises and the
# other city's bureau are refused (403 for a region outside their scope).
REPORT_CASES: list[Case] = [
    Case("GET", "/api/v1/rates", GOVERNS_PZH, _const("/api/v1/rates?year=2023&region=510400&by=category")),
    Case("GET", "/api/v1/rates/trend", GOVERNS_PZH, _const("/api/v1/rates/trend?region=510400&from=2021&to=2023")),
    Case("GET", "/api/v1/flags", GOVERNS_PZH, _const("/api/v1/flags?year=2023&region=510400")),
]
