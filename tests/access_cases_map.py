"""Access-matrix cases of the map pages (app/web_map.py)."""

from __future__ import annotations

from tests.access_cases import Case

MAP_CASES: list[Case] = []
