"""Access-matrix cases of the rate and flag routes."""

from __future__ import annotations

from tests.access_cases import Case

REPORT_CASES: list[Case] = []
