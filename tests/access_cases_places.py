"""Access-matrix cases of the places pages (app/web_places.py)."""

from __future__ import annotations

from tests.access_cases import Case

PLACES_CASES: list[Case] = []
