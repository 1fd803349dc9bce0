"""Access-matrix cases of the battery routes, and the battery chain the battery tests build on the world.

BATTERY_CASES need nothing beyond tests/world.py. SEEDED_CASES need seed_batteries() run on the world first
(E1 made a battery maker, a pack with a module and a cell registered by E1); test_battery.py runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session

from flows.access import accounts
from flows.battery import chain as battery
from flows.battery.code import encode_battery_code
from models import Enterprise, EnterpriseRoleLink, WhitelistEntry
from models.enums import BatteryLevel, Channel, EnterpriseRole, WhitelistKind
from tests.access_cases import GOVERNS_PZH, SEES_E1, SIGNED_IN, Case
from tests.world import NOW, PASSWORD, World, add_enterprise

NOBODY: frozenset[str] = frozenset()
WRITERS = frozenset({"admin", "ent1", "ent3"})  # enterprise accounts and administrators record events


def code(
    level: BatteryLevel, serial: int, maker: str = "0D1", chemistry: str = "E", day: date = date(2018, 6, 5)
) -> str:
    """A valid GB/T 34014 code for the tests."""
    return encode_battery_code(maker, level, chemistry, "A1", "L123456", day, serial)


PACK = code(BatteryLevel.pack, 1)
MODULE = code(BatteryLevel.module, 2)
CELL = code(BatteryLevel.cell, 3)
FRESH = code(BatteryLevel.pack, 99)
UNKNOWN = code(BatteryLevel.pack, 777)
VIN = "LS4ASB3E6RJ123456"


def _const(url: str) -> Any:
    return lambda _w: url


BATTERY_CASES: list[Case] = [
    Case("GET", "/api/v1/battery-states", SIGNED_IN, _const("/api/v1/battery-states")),
    # E1 is no battery maker in the plain world: only an administrator may register for it.
    Case(
        "POST",
        "/api/v1/batteries",
        frozenset({"admin"}),
        _const("/api/v1/batteries"),
        lambda w: {"code": FRESH, "maker_id": w.e1, "rated_kwh": 60.0},
        writes=True,
    ),
    # No battery exists in the plain world: every role is told "not found" (or not signed in).
    Case("GET", "/api/v1/batteries/{code}", NOBODY, _const(f"/api/v1/batteries/{UNKNOWN}")),
    Case(
        "POST",
        "/api/v1/batteries/{code}/events",
        NOBODY,
        _const(f"/api/v1/batteries/{UNKNOWN}/events"),
        lambda w: {"type": "installed", "occurred_at": "2024-05-01T10:00:00+08:00", "vin": VIN, "reporter_id": w.e1},
    ),
    Case("POST", "/api/v1/battery-events", WRITERS, _const("/api/v1/battery-events"), lambda w: []),
    Case("GET", "/api/v1/batteries/{code}/trace", NOBODY, _const(f"/api/v1/batteries/{UNKNOWN}/trace?pack=true")),
    Case(
        "GET",
        "/api/v1/enterprises/{enterprise_id}/batteries",
        SEES_E1,
        lambda w: f"/api/v1/enterprises/{w.e1}/batteries?from=2024-01-01&to=2024-12-31",
    ),
    Case("GET", "/api/v1/battery-flags", GOVERNS_PZH, _const("/api/v1/battery-flags?year=2024&region=510400")),
    Case("GET", "/api/v1/battery-recovery", GOVERNS_PZH, _const("/api/v1/battery-recovery?year=2024&region=510400")),
    Case("GET", "/api/v1/battery-share", GOVERNS_PZH, _const("/api/v1/battery-share?year=2024&region=510400")),
]

# With seed_batteries() run on the world: the pack, its module and cell exist, made and held by E1 (Panzhihua).
# They run in this order on one database: each write leaves the pack where the next case expects it.
SEEDED_CASES: list[Case] = [
    Case(
        "POST",
        "/api/v1/batteries",
        frozenset({"admin", "ent1"}),
        _const("/api/v1/batteries"),
        lambda w: {"code": FRESH, "maker_id": w.e1, "rated_kwh": 60.0},
        writes=True,
    ),
    Case("GET", "/api/v1/batteries/{code}", SEES_E1, _const(f"/api/v1/batteries/{PACK}")),
    Case("GET", "/api/v1/batteries/{code}/trace", SEES_E1, _const(f"/api/v1/batteries/{CELL}/trace?pack=true")),
    Case(
        "POST",
        "/api/v1/batteries/{code}/events",
        frozenset({"admin", "ent1"}),
        _const(f"/api/v1/batteries/{PACK}/events"),
        lambda w: {"type": "installed", "occurred_at": "2024-05-01T10:00:00+08:00", "vin": VIN, "reporter_id": w.e1},
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/battery-events",
        frozenset({"admin", "ent1"}),
        _const("/api/v1/battery-events"),
        lambda w: [
            {
                "code": PACK,
                "type": "transferred",
                "occurred_at": "2024-05-01T10:00:00+08:00",
                "reporter_id": w.e1,
                "counterpart_id": w.e2,
            },
        ],  # fmt: skip
        writes=True,
    ),
    Case("GET", "/api/v1/battery-flags", SEES_E1, _const(f"/api/v1/battery-flags?code={PACK}")),
]


def seed_batteries(session: Session, w: World) -> None:
    """Make E1 a battery maker and register a pack with a module and a cell for it."""
    session.add(EnterpriseRoleLink(enterprise_id=w.e1, role=EnterpriseRole.battery_maker))
    session.flush()
    battery.register_batteries(
        session=session,
        principal=accounts.system_principal(),
        rows=[
            {"code": PACK, "maker_id": w.e1, "rated_kwh": 60.0, "mass_kg": 380.0},
            {"code": MODULE, "maker_id": w.e1, "parent_code": PACK, "rated_kwh": 10.0},
            {"code": CELL, "maker_id": w.e1, "parent_code": MODULE, "rated_kwh": 0.5},
        ],
        now=NOW,
    )
    session.commit()


# ---------------------------------------------------------------------------------------------------------------
# A whole chain for the battery tests: the actors of each role, with accounts and whitelist listings.


@dataclass
class Chain:
    world: World
    maker: int = 0  # E1, made a battery maker
    vehicle: int = 0  # a vehicle maker in Chengdu
    outlet: int = 0  # a collection outlet in Panzhihua
    cascade: int = 0  # a cascade-use enterprise in Deyang, listed 2020-12-18
    recycler: int = 0  # a recycler in Yibin, listed 2018-09-20
    unlisted: int = 0  # a recycler in Zigong, never listed
    revoked: int = 0  # a recycler in Luzhou, listed 2020-12-18, revoked 2023-06-30
    uscc: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


_SITES = {
    "vehicle": (104.06, 30.66, EnterpriseRole.vehicle_maker),
    "outlet": (101.65, 26.58, EnterpriseRole.collection_outlet),
    "cascade": (104.40, 31.10, EnterpriseRole.cascade_user),
    "recycler": (104.62, 28.77, EnterpriseRole.recycler),
    "unlisted": (104.77, 29.35, EnterpriseRole.recycler),
    "revoked": (105.44, 28.87, EnterpriseRole.recycler),
}


def build_chain(session: Session, w: World) -> Chain:
    """Add the chain's enterprises, their roles, accounts (ent_<name>) and listings to a built world; commit."""
    chain = Chain(world=w, maker=w.e1)
    session.add(EnterpriseRoleLink(enterprise_id=w.e1, role=EnterpriseRole.battery_maker))
    maker = session.get(Enterprise, w.e1)
    assert maker is not None
    chain.uscc["maker"] = maker.uscc
    chain.tokens["maker"] = w.tokens.get("ent1", "")
    for n, (name, (lon, lat, role)) in enumerate(_SITES.items(), start=50):
        eid = add_enterprise(session, n, lon, lat, role, (f"链条企业{name}", f"Chain {name}"))
        e = session.get(Enterprise, eid)
        assert e is not None and e.id is not None
        setattr(chain, name, e.id)
        chain.uscc[name] = e.uscc
        user = accounts.create_user(
            session=session, username=f"ent_{name}", password=PASSWORD, role="enterprise", now=NOW, enterprise_id=e.id
        )
        _, raw = accounts.create_token(
            session=session, principal=accounts.principal_of(user, Channel.api), name="t", now=NOW
        )
        chain.tokens[name] = raw
    for enterprise_id, kind, listed, revoked in (
        (chain.cascade, WhitelistKind.cascade_use, date(2020, 12, 18), None),
        (chain.recycler, WhitelistKind.recycling, date(2018, 9, 20), None),
        (chain.revoked, WhitelistKind.recycling, date(2020, 12, 18), date(2023, 6, 30)),
    ):
        session.add(
            WhitelistEntry(
                enterprise_id=enterprise_id, kind=kind, batch="MIIT-test", listed_on=listed, revoked_on=revoked
            )
        )
    session.commit()
    return chain


def at(text: str) -> datetime:
    """A moment written in China Standard Time, as UTC."""
    return battery.as_utc(datetime.fromisoformat(text))


def utc(y: int, m: int, d: int, h: int = 2) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)
