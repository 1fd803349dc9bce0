"""Access-matrix cases of the battery work pages (app/web_battery_work.py): only enterprise accounts use them; a
write needs the role it asks for (a maker registers) and a battery the enterprise may act on."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from tests.access_cases import SIGNED_IN, Case
from tests.access_cases_battery import FRESH, PACK, VIN, seed_batteries
from tests.world import World

WORKERS = frozenset({"ent1", "ent3"})  # enterprise accounts; administrators and bureaus use the API
FORM = {"form": True}


def _seeded(session: Session, w: World) -> dict[str, str]:
    seed_batteries(session, w)
    return {}


SEEDED = {**FORM, "seed": _seeded}


def _const(url: str) -> Any:
    return lambda _w: url


BATTERY_WORK_CASES: list[Case] = [
    Case("GET", "/batteries/new", WORKERS, _const("/batteries/new")),
    # E1 makes batteries once seeded; E3 does not: refused (403) and nothing saved.
    Case(
        "POST", "/batteries/new", frozenset({"ent1"}), _const("/batteries/new"), lambda w: {"code": FRESH}, True, SEEDED
    ),
    Case("GET", "/batteries/{code}/events/new", WORKERS, _const(f"/batteries/{PACK}/events/new")),
    Case(
        "POST",
        "/batteries/{code}/events/search",
        WORKERS,
        _const(f"/batteries/{PACK}/events/search"),
        lambda w: {"counterpart_q": "测试"},
        extra=FORM,
    ),
    # Only the holder steps its battery; E3 never held it and is told nothing of it (404).
    Case(
        "POST",
        "/batteries/{code}/events/new",
        frozenset({"ent1"}),
        _const(f"/batteries/{PACK}/events/new"),
        lambda w: {"type": "installed", "occurred_at": "2024-03-01T10:00", "vin": VIN},
        True,
        SEEDED,
    ),
    Case("GET", "/batteries/import", WORKERS, _const("/batteries/import")),
    Case("GET", "/batteries/import/template/{name}", SIGNED_IN, _const("/batteries/import/template/batteries.csv")),
]
