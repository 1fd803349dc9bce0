"""Access-matrix cases of the audit pages (app/web_audit.py)."""

from __future__ import annotations

from tests.access_cases import Case

AUDIT_CASES: list[Case] = []
