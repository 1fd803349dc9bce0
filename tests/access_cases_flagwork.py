"""Access-matrix cases of the flags as work (app/api_flags.py, app/web_flags.py).

The world's 2023 declaration of E1 (Panzhihua, park A) does not balance: its flag is worked by the bureaus over
Panzhihua and the administrator, read by whoever reads E1, and answered by E1 alone.
"""

from __future__ import annotations

from typing import Any

from flows.waste.alerts import flag_key
from tests.access_cases import GOVERNS_PZH, SEES_E1, SIGNED_IN, Case
from tests.world import World


def _key(w: World) -> str:
    # The key flag_notice and flag_work give E1's balance break.
    return flag_key("balance_break", 2023, f"declaration/{w.decl_e1}")


def _status(_w: World) -> dict[str, Any]:
    return {"status": "under_review"}


def _text(_w: World) -> dict[str, Any]:
    return {"text": "checked"}


FLAGWORK_CASES: list[Case] = [
    Case("PATCH", "/api/v1/flags/{key}", GOVERNS_PZH, lambda w: f"/api/v1/flags/{_key(w)}", _status, writes=True),
    Case(
        "POST",
        "/api/v1/flags/bulk",
        GOVERNS_PZH,
        lambda w: "/api/v1/flags/bulk",
        lambda w: {"keys": [_key(w)], "status": "resolved"},
        writes=True,
    ),
    Case(
        "POST", "/api/v1/flags/{key}/notes", GOVERNS_PZH, lambda w: f"/api/v1/flags/{_key(w)}/notes", _text, writes=True
    ),
    Case(
        "POST",
        "/api/v1/flags/{key}/answers",
        frozenset({"ent1"}),
        lambda w: f"/api/v1/flags/{_key(w)}/answers",
        _text,
        writes=True,
    ),
    Case("GET", "/flags", SIGNED_IN, lambda w: "/flags"),
    Case("GET", "/flags/{key}", SEES_E1, lambda w: f"/flags/{_key(w)}"),
    Case(
        "POST", "/flags/{key}", GOVERNS_PZH, lambda w: f"/flags/{_key(w)}", _status, writes=True, extra={"form": True}
    ),
    Case(
        "POST",
        "/flags/{key}/notes",
        GOVERNS_PZH,
        lambda w: f"/flags/{_key(w)}/notes",
        _text,
        writes=True,
        extra={"form": True},
    ),
    Case(
        "POST",
        "/flags/{key}/answers",
        frozenset({"ent1"}),
        lambda w: f"/flags/{_key(w)}/answers",
        _text,
        writes=True,
        extra={"form": True},
    ),
    Case(
        "POST",
        "/audit/flags/bulk",
        GOVERNS_PZH,
        lambda w: "/audit/flags/bulk",
        lambda w: {"keys": [_key(w)], "status": "resolved"},
        writes=True,
        extra={"form": True},
    ),
]
