"""Access-matrix cases of the batches pages (app/web_batches.py)."""

from __future__ import annotations

from tests.access_cases import Case

BATCHES_CASES: list[Case] = []
