"""Access-matrix cases of corrections' effects (app/api_revisions.py): the bureaus that decide a correction, and
the administrator, see what approving it would do; its enterprise and others do not."""

from __future__ import annotations

from tests.access_cases import GOVERNS_PZH, Case

REVISION_CASES: list[Case] = [
    Case(
        "GET",
        "/api/v1/corrections/{correction_id}/effect",
        GOVERNS_PZH,
        lambda w: "/api/v1/corrections/{correction}/effect",
    ),
]
