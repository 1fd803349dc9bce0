"""Access-matrix cases of the battery trace pages (app/web_trace.py); battery routes that need batteries go to
SEEDED_TRACE_CASES, which run against the world seeded by tests/access_cases_battery.seed_batteries.

Also the chain the trace page tests walk (tests/test_web_trace.py, tests/test_browser_trace.py): a pack with a module
inside, handed from its maker in Panzhihua to a vehicle maker in Chengdu, collected by an outlet in Panzhihua and
handed to a recycler in Yibin, which opens it and recovers its materials; one upload comes late.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from flows.access.accounts import system_principal
from flows.battery import chain as battery
from models.enums import BatteryLevel
from tests.access_cases import SEES_E1, SIGNED_IN, Case
from tests.access_cases_battery import PACK, VIN, Chain, code
from tests.world import NOW

TRACE_CASES: list[Case] = [
    Case("GET", "/batteries", SIGNED_IN, lambda w: "/batteries"),
    Case("GET", "/batteries/parse", SIGNED_IN, lambda w: "/batteries/parse?code=0D1P"),
]
# The pack of seed_batteries is made and held by E1: those who see E1 see its page; the others are told "not found".
SEEDED_TRACE_CASES: list[Case] = [
    Case("GET", "/batteries/{code}", SEES_E1, lambda w: f"/batteries/{PACK}"),
]

TRACED_PACK = code(BatteryLevel.pack, 41, maker="3TR", chemistry="B")
TRACED_MODULE = code(BatteryLevel.module, 42, maker="3TR", chemistry="B")
LATE_UPLOAD = "2019-05-20T09:00"  # the installation of 2019-03-10, uploaded long after its 15 working days


def walk_chain(session: Session, c: Chain) -> list[tuple[str, str, int]]:
    """Register TRACED_PACK (with TRACED_MODULE inside) and walk it to recovery; returns (type, when, reporter)."""
    admin = system_principal()
    battery.register_batteries(
        session=session,
        principal=admin,
        rows=[
            {"code": TRACED_PACK, "maker_id": c.maker, "rated_kwh": 55.0, "mass_kg": 370.0},
            {"code": TRACED_MODULE, "maker_id": c.maker, "parent_code": TRACED_PACK, "rated_kwh": 9.2},
        ],
        now=NOW,
    )
    steps: list[tuple[str, str, int, dict[str, Any]]] = [
        ("transferred", "2019-03-01T10:00", c.maker, {"counterpart_id": c.vehicle}),
        ("installed", "2019-03-10T10:00", c.vehicle, {"vin": VIN, "reported_at": LATE_UPLOAD}),
        ("retired", "2024-01-08T10:00", c.vehicle, {}),
        ("collected", "2024-01-15T10:00", c.outlet, {}),
        ("transferred", "2024-01-20T10:00", c.outlet, {"counterpart_id": c.recycler, "purpose": "recycling"}),
        ("dismantled", "2024-01-25T10:00", c.recycler, {"mass_kg": 370}),
        (
            "recovered",
            "2025-01-06T10:00",
            c.recycler,
            {"input_mass_kg": 360, "lithium_in_kg": 5, "lithium_out_kg": 4.7, "nickel_in_kg": 2, "nickel_out_kg": 1.9},
        ),
    ]
    for type_, when, reporter, extra in steps:
        reported = extra.pop("reported_at", (datetime.fromisoformat(when) + timedelta(hours=3)).isoformat())
        row = {"type": type_, "occurred_at": when, "reported_at": reported, "reporter_id": reporter, **extra}
        battery.record_event(session=session, principal=admin, code=TRACED_PACK, row=row, now=NOW)
    session.commit()
    return [(t, w, r) for t, w, r, _e in steps]
