"""Access-matrix cases of the battery routes."""

from __future__ import annotations

from tests.access_cases import Case

BATTERY_CASES: list[Case] = []
