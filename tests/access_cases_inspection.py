"""Access cases of the reports a bureau hands on: the inspection sheet of an enterprise and the audit report files."""

from __future__ import annotations

from tests.access_cases import GOVERNS_PZH, Case

# E1 lies in Panzhihua: the province's and the city's bureaus audit it (and the administrator); Deyang's bureau is
# told it is not found, the park and the enterprises are refused (the sheet is the auditor's, not the enterprise's).
INSPECTION_CASES: list[Case] = [
    Case(
        "GET",
        "/enterprises/{enterprise_id}/inspection.pdf",
        GOVERNS_PZH,
        lambda w: f"/enterprises/{w.e1}/inspection.pdf?year=2023",
    ),
    Case(
        "GET",
        "/api/v1/enterprises/{enterprise_id}/inspection.pdf",
        GOVERNS_PZH,
        lambda w: f"/api/v1/enterprises/{w.e1}/inspection.pdf?year=2024&lang=en",
    ),
    Case(
        "GET",
        "/api/v1/reports/audit.{fmt}",
        GOVERNS_PZH,
        lambda w: "/api/v1/reports/audit.xlsx?year=2023&region=510400",
    ),
]
