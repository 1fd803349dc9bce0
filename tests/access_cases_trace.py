"""Access-matrix cases of the battery trace pages (app/web_trace.py); battery routes that need batteries go to
SEEDED_TRACE_CASES, which run against the world seeded by tests/access_cases_battery.seed_batteries."""

from __future__ import annotations

from tests.access_cases import Case

TRACE_CASES: list[Case] = []
SEEDED_TRACE_CASES: list[Case] = []
