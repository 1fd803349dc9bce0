"""Battery traceability: the state machine, registration and genealogy, events, trace, reverse trace, scoping."""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from flows.access.accounts import system_principal
from flows.battery import chain as battery
from flows.battery.chain import STEPS, allowed_events, ensure_allowed
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound, PeriodLocked
from models import AuditLog, Battery, BatteryEvent, RecoveryReport
from models.enums import BatteryEventType, BatteryLevel, BatteryState
from tests.access_cases import ROLES, Case
from tests.access_cases_battery import (
    CELL,
    MODULE,
    PACK,
    SEEDED_CASES,
    VIN,
    Chain,
    build_chain,
    code,
    seed_batteries,
)
from tests.test_access_matrix import _fingerprint
from tests.world import NOW, World, build_world

ADMIN = system_principal()


@pytest.fixture
def chain(session: Session) -> Chain:
    return build_chain(session, build_world(session))


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(model)).one())


def _register(session: Session, c: Chain, *rows: dict[str, Any]) -> list[Battery]:
    full = [{"maker_id": c.maker, **row} for row in rows]
    saved = battery.register_batteries(session=session, principal=ADMIN, rows=full, now=NOW)
    session.commit()
    return saved


def _event(session: Session, c: Chain, code_: str, type_: str, when: str, reporter: int, **extra: Any) -> BatteryEvent:
    row = {"type": type_, "occurred_at": when, "reporter_id": reporter, **extra}
    event = battery.record_event(session=session, principal=ADMIN, code=code_, row=row, now=NOW)
    session.commit()
    return event


def _life_to(session: Session, c: Chain, code_: str, last: str) -> None:
    """Walk a battery along the main chain up to (and including) an event type."""
    steps: list[tuple[str, str, int, dict[str, Any]]] = [
        ("transferred", "2019-03-01T10:00", c.maker, {"counterpart_id": c.vehicle}),
        ("installed", "2019-03-10T10:00", c.vehicle, {"vin": VIN}),
        ("retired", "2024-01-08T10:00", c.vehicle, {}),
        ("collected", "2024-01-15T10:00", c.outlet, {}),
        ("transferred", "2024-01-20T10:00", c.outlet, {"counterpart_id": c.cascade}),
        ("tested", "2024-01-25T10:00", c.cascade, {"soh": 0.81}),
        ("repurposed", "2024-02-01T10:00", c.cascade, {"new_code": code(BatteryLevel.pack, 500, maker="7C1")}),
        ("in_cascade_use", "2024-02-10T10:00", c.cascade, {"application": "base-station backup power"}),
        ("retired", "2024-08-01T10:00", c.cascade, {}),
        ("collected", "2024-08-06T10:00", c.recycler, {}),
        ("dismantled", "2024-08-12T10:00", c.recycler, {"mass_kg": 380}),
        (
            "recovered",
            "2024-09-02T10:00",
            c.recycler,
            {"input_mass_kg": 370, "lithium_in_kg": 5, "lithium_out_kg": 4.7},
        ),
    ]
    current = code_
    for type_, when, reporter, extra in steps:
        _event(session, c, current, type_, when, reporter, **extra)
        if type_ == "repurposed":
            current = extra["new_code"]
        if type_ == last:
            return


# --- the state machine, as a table ---------------------------------------------------------------------------

PAIRS = list(product(BatteryState, BatteryEventType))


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s.value}-{e.value}" for s, e in PAIRS])
def test_every_transition_is_allowed_or_refused_by_the_table(state: BatteryState, event: BatteryEventType) -> None:
    expected = {
        BatteryState.produced: {"installed", "transferred"},
        BatteryState.installed: {"retired", "transferred"},
        BatteryState.retired: {"collected", "transferred"},
        BatteryState.collected: {"tested", "dismantled", "transferred"},
        BatteryState.tested: {"repurposed", "dismantled", "transferred"},
        BatteryState.repurposed: {"in_cascade_use", "transferred"},
        BatteryState.in_cascade_use: {"retired", "transferred"},
        BatteryState.dismantled: {"recovered", "transferred"},
        BatteryState.recovered: set(),
    }[state]
    assert set(allowed_events(state)) == expected
    if event.value in expected:
        ensure_allowed("X", state, event)
        return
    with pytest.raises(Conflict) as refused:
        ensure_allowed("X", state, event)
    message = refused.value.message
    assert f"is {state.value}" in message and "allowed next events" in message
    for name in expected:
        assert name in message


def test_custody_events_never_change_the_state() -> None:
    assert STEPS[BatteryEventType.transferred].to is None
    assert all(s.to is not None for e, s in STEPS.items() if e is not BatteryEventType.transferred)


def test_a_whole_life_on_both_databases(session: Session, chain: Chain) -> None:
    _register(session, chain, {"code": PACK, "rated_kwh": 60, "mass_kg": 380})
    _life_to(session, chain, PACK, "recovered")
    session.expire_all()
    new_code = code(BatteryLevel.pack, 500, maker="7C1")
    b = session.exec(select(Battery).where(Battery.code == new_code)).one()
    assert (b.state, b.holder_id, b.original_code) == (BatteryState.recovered, chain.recycler, PACK)
    report = session.exec(select(RecoveryReport).where(RecoveryReport.battery_id == b.id)).one()
    assert report.recycler_id == chain.recycler and report.edition == "2024" and report.lithium_out_kg == 4.7
    with pytest.raises(Conflict, match="is recovered: it cannot be transferred; allowed next events: none"):
        _event(session, chain, new_code, "transferred", "2024-10-01T10:00", chain.recycler, counterpart_id=chain.outlet)


@pytest.mark.parametrize("event", ["tested", "collected", "dismantled", "recovered", "produced"])
def test_a_refused_event_names_the_state_and_the_allowed_ones(
    client: TestClient, session: Session, chain: Chain, event: str
) -> None:
    _register(session, chain, {"code": PACK})
    _life_to(session, chain, PACK, "installed")
    before = _count(session, BatteryEvent)
    response = client.post(
        f"/api/v1/batteries/{PACK}/events",
        json={"type": event, "occurred_at": "2024-01-02T10:00:00+08:00", "input_mass_kg": 1},
        headers=_as(chain.tokens["vehicle"]),
    )
    assert response.status_code == 409, response.text
    assert "is installed" in response.json()["detail"]
    assert "allowed next events: retired, transferred" in response.json()["detail"]
    assert _count(session, BatteryEvent) == before


# --- registration and genealogy -------------------------------------------------------------------------------


def test_register_one_through_the_api(client: TestClient, session: Session, chain: Chain) -> None:
    response = client.post(
        "/api/v1/batteries", json={"code": PACK.lower()[:12] + " " + PACK.lower()[12:], "rated_kwh": 61.5},
        headers=_as(chain.tokens["maker"]),
    )  # fmt: skip
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["code"] == PACK and body["state"] == "produced" and body["level"] == "pack"
    assert body["production_date"] == "2018-06-05" and body["chemistry_name"] == "ternary (NCM/NCA)"
    assert body["holder"]["id"] == chain.maker and body["allowed_next"] == ["installed", "transferred"]
    produced = session.exec(select(BatteryEvent).where(BatteryEvent.type == "produced")).one()
    assert produced.reporter_id == chain.maker
    assert _count(session, AuditLog) >= 1


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (PACK[:-1], "code"),
        (PACK[:3] + "X" + PACK[4:], "product_type"),
        (PACK[:14] + "22" + "0" + PACK[17:], "production_day"),  # 31 February 2022
        (PACK[:5] + "a_" + PACK[7:], "code"),
    ],
)
def test_a_wrong_code_is_refused_naming_the_field(client: TestClient, chain: Chain, bad: str, field: str) -> None:
    response = client.post("/api/v1/batteries", json={"code": bad}, headers=_as(chain.tokens["maker"]))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_only_a_maker_or_an_administrator_registers(client: TestClient, chain: Chain) -> None:
    w = chain.world
    for token in (w.tokens["ent3"], w.tokens["bureau_pzh"], chain.tokens["recycler"]):
        response = client.post("/api/v1/batteries", json={"code": PACK}, headers=_as(token))
        assert response.status_code == 403, response.text
    response = client.post(
        "/api/v1/batteries", json={"code": PACK, "maker_id": chain.vehicle}, headers=_as(chain.tokens["maker"])
    )
    assert response.status_code == 403
    response = client.post("/api/v1/batteries", json={"code": PACK}, headers=_as(w.tokens["admin"]))
    assert response.status_code == 422 and response.json()["field"] == "maker_uscc"


def test_codes_are_unique_and_a_child_has_one_parent(session: Session, chain: Chain) -> None:
    other = code(BatteryLevel.pack, 40)
    _register(session, chain, {"code": PACK}, {"code": other}, {"code": MODULE, "parent_code": PACK})
    with pytest.raises(battery.RowsRefused) as refused:
        _register(session, chain, {"code": PACK})
    assert "already registered" in refused.value.errors[0].reason
    session.rollback()
    with pytest.raises(battery.RowsRefused) as refused:
        _register(session, chain, {"code": MODULE, "parent_code": other})
    assert refused.value.errors[0].column == "parent_code"
    assert "cannot have two parents" in refused.value.errors[0].reason
    session.rollback()
    # A module registered alone may be put into a pack later, by whoever holds it.
    loose = code(BatteryLevel.module, 41)
    _register(session, chain, {"code": loose})
    _register(session, chain, {"code": loose, "parent_code": other})
    session.expire_all()
    parent = session.exec(select(Battery).where(Battery.code == other)).one()
    assert session.exec(select(Battery).where(Battery.code == loose)).one().parent_id == parent.id


def test_levels_nest_pack_module_cell(session: Session, chain: Chain) -> None:
    with pytest.raises(battery.RowsRefused) as refused:
        _register(session, chain, {"code": MODULE}, {"code": PACK, "parent_code": MODULE})
    assert "a pack cannot sit inside a module" in refused.value.errors[0].reason
    session.rollback()
    # Cell-to-pack: a pack may hold cells directly.
    _register(session, chain, {"code": PACK}, {"code": CELL, "parent_code": PACK})


def test_bulk_registration_is_all_or_nothing_and_lists_every_bad_row(
    client: TestClient, session: Session, chain: Chain
) -> None:
    rows = [
        {"code": PACK},
        {"code": MODULE, "parent_code": PACK},
        {"code": "TOO-SHORT"},
        {"code": CELL, "parent_code": code(BatteryLevel.pack, 404)},
        {"code": code(BatteryLevel.pack, 5), "rated_kwh": -3},
        {"code": PACK},
    ]
    response = client.post("/api/v1/batteries", json=rows, headers=_as(chain.tokens["maker"]))
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [
        (3, "code"),
        (4, "parent_code"),
        (5, "rated_kwh"),
        (6, "code"),
    ]
    assert "also on line 1" in errors[-1]["reason"]
    assert _count(session, Battery) == 0 and _count(session, BatteryEvent) == 0
    response = client.post("/api/v1/batteries", json=rows[:2], headers=_as(chain.tokens["maker"]))
    assert response.status_code == 201 and response.json() == {"count": 2, "codes": [PACK, MODULE]}


# --- events ---------------------------------------------------------------------------------------------------


def test_custody_follows_handovers_and_only_the_holder_reports(session: Session, chain: Chain) -> None:
    _register(session, chain, {"code": PACK})
    _event(session, chain, PACK, "transferred", "2019-03-01T10:00", chain.maker, counterpart_id=chain.vehicle)
    b = session.exec(select(Battery).where(Battery.code == PACK)).one()
    assert b.holder_id == chain.vehicle and b.state == BatteryState.produced
    with pytest.raises(Conflict, match="only its holder records installed"):
        _event(session, chain, PACK, "installed", "2019-03-02T10:00", chain.maker, vin=VIN)
    session.rollback()
    with pytest.raises(InvalidInput, match="vin"):
        _event(session, chain, PACK, "installed", "2019-03-02T10:00", chain.vehicle)
    session.rollback()
    with pytest.raises(InvalidInput, match="check character"):
        _event(session, chain, PACK, "installed", "2019-03-02T10:00", chain.vehicle, vin=VIN[:8] + "0" + VIN[9:])
    session.rollback()
    _event(session, chain, PACK, "installed", "2019-03-02T10:00", chain.vehicle, vin=VIN)
    _event(session, chain, PACK, "retired", "2024-01-08T10:00", chain.vehicle)
    # The collector takes it in: it reports, the holder is the counterpart, and it holds it afterwards.
    event = _event(session, chain, PACK, "collected", "2024-01-09T10:00", chain.outlet)
    assert event.counterpart_id == chain.vehicle
    session.expire_all()
    assert session.exec(select(Battery).where(Battery.code == PACK)).one().holder_id == chain.outlet
    with pytest.raises(Conflict, match="before the last recorded event"):
        _event(session, chain, PACK, "tested", "2024-01-01T10:00", chain.outlet)


def test_writes_are_by_the_acting_enterprise_only(client: TestClient, session: Session, chain: Chain) -> None:
    _register(session, chain, {"code": PACK})
    body = {"type": "transferred", "occurred_at": "2024-01-02T10:00:00+08:00", "counterpart_id": chain.vehicle}
    for token in (chain.world.tokens["bureau_sc"], chain.world.tokens["park_a"]):
        assert client.post(f"/api/v1/batteries/{PACK}/events", json=body, headers=_as(token)).status_code == 403
    named = {**body, "reporter_id": chain.vehicle}
    assert (
        client.post(f"/api/v1/batteries/{PACK}/events", json=named, headers=_as(chain.tokens["maker"])).status_code
        == 403
    )
    late = {**body, "reported_at": "2024-01-03T10:00:00+08:00"}
    response = client.post(f"/api/v1/batteries/{PACK}/events", json=late, headers=_as(chain.tokens["maker"]))
    assert response.status_code == 422 and response.json()["field"] == "reported_at"
    response = client.post(f"/api/v1/batteries/{PACK}/events", json=body, headers=_as(chain.tokens["maker"]))
    assert response.status_code == 201, response.text
    assert response.json()["battery"]["holder"]["id"] == chain.vehicle


def test_events_on_a_pack_reach_its_modules_and_cells_until_it_is_opened(session: Session, chain: Chain) -> None:
    _register(
        session, chain, {"code": PACK}, {"code": MODULE, "parent_code": PACK}, {"code": CELL, "parent_code": MODULE}
    )
    _life_to(session, chain, PACK, "transferred")  # up to the first handover, to the vehicle maker
    _event(session, chain, PACK, "installed", "2019-03-10T10:00", chain.vehicle, vin=VIN)
    _event(session, chain, PACK, "retired", "2024-01-08T10:00", chain.vehicle)
    _event(session, chain, PACK, "collected", "2024-01-15T10:00", chain.outlet)
    _event(session, chain, PACK, "transferred", "2024-01-20T10:00", chain.outlet, counterpart_id=chain.recycler)
    _event(session, chain, PACK, "dismantled", "2024-01-25T10:00", chain.recycler)
    session.expire_all()
    states = {b.code: (b.state, b.holder_id) for b in session.exec(select(Battery)).all()}
    assert states[PACK] == (BatteryState.dismantled, chain.recycler)
    assert states[MODULE] == states[CELL] == (BatteryState.collected, chain.recycler)
    copies = session.exec(select(BatteryEvent).join(Battery).where(Battery.code == CELL)).all()
    assert [e.type for e in copies] == ["produced", "transferred", "installed", "retired", "collected", "transferred"]
    assert all(e.attributes.get("via") == PACK for e in copies[1:])
    # Opened: the module now goes its own way, taking its cell with it.
    _event(session, chain, MODULE, "tested", "2024-01-26T10:00", chain.recycler, soh=0.7)
    session.expire_all()
    assert session.exec(select(Battery).where(Battery.code == CELL)).one().state == BatteryState.tested


def test_cascade_use_recodes_and_keeps_the_original(session: Session, chain: Chain) -> None:
    _register(session, chain, {"code": PACK})
    _life_to(session, chain, PACK, "tested")
    with pytest.raises(InvalidInput, match="codes a module"):
        _event(session, chain, PACK, "repurposed", "2024-02-01T10:00", chain.cascade, new_code=MODULE)
    session.rollback()
    with pytest.raises(Conflict, match="already in use"):
        _event(session, chain, PACK, "repurposed", "2024-02-01T10:00", chain.cascade, new_code=PACK)
    session.rollback()
    new_code = code(BatteryLevel.pack, 500, maker="7C1")
    _event(session, chain, PACK, "repurposed", "2024-02-01T10:00", chain.cascade, new_code=new_code)
    with pytest.raises(InvalidInput, match="application"):
        _event(session, chain, new_code, "in_cascade_use", "2024-02-10T10:00", chain.cascade)
    session.rollback()
    _event(session, chain, PACK, "in_cascade_use", "2024-02-10T10:00", chain.cascade, application="grid storage")
    t = battery.trace(session=session, principal=ADMIN, code=PACK)
    assert (t.code, t.original_code, t.queried, t.codes) == (new_code, PACK, PACK, [PACK, new_code])
    assert t.state == "in_cascade_use"


def test_bulk_events_are_all_or_nothing_in_the_order_they_happened(
    client: TestClient, session: Session, chain: Chain
) -> None:
    _register(session, chain, {"code": PACK}, {"code": code(BatteryLevel.pack, 8)})
    rows = [
        # Listed out of order: each battery's events are applied in the order they happened.
        {"code": PACK, "type": "installed", "occurred_at": "2019-03-10T10:00", "reporter_uscc": chain.uscc["vehicle"],
         "vin": VIN},
        {"code": PACK, "type": "transferred", "occurred_at": "2019-03-01T10:00", "reporter_uscc": chain.uscc["maker"],
         "counterpart_uscc": chain.uscc["vehicle"]},
        {"code": code(BatteryLevel.pack, 8), "type": "retired", "occurred_at": "2019-03-01T10:00",
         "reporter_id": chain.maker},
        {"code": code(BatteryLevel.pack, 404), "type": "installed", "occurred_at": "2019-03-01T10:00",
         "reporter_id": chain.maker},
        {"code": PACK, "type": "collected", "occurred_at": "2019-03-20", "reporter_id": chain.outlet, "soh": 7},
        {"code": PACK, "type": "explode", "occurred_at": "2019-03-20", "reporter_id": chain.outlet},
    ]  # fmt: skip
    response = client.post("/api/v1/battery-events", json=rows, headers=_as(chain.world.tokens["admin"]))
    assert response.status_code == 422, response.text
    errors = [(e["row"], e["column"]) for e in response.json()["errors"]]
    assert errors == [(3, "type"), (4, "code"), (5, "soh"), (6, "type")]
    assert _count(session, BatteryEvent) == 2  # the two produced events of the registration
    response = client.post("/api/v1/battery-events", json=rows[:2], headers=_as(chain.world.tokens["admin"]))
    assert response.status_code == 201 and response.json() == {"count": 2, "copied_to_children": 0}


def test_an_event_that_names_a_via_is_refused(session: Session, chain: Chain) -> None:
    # The writer marks the copies of an event on the modules and cells inside a pack with `via`: a submitted one
    # would pass for such a copy, so it is refused, naming the field, and nothing is written.
    _register(session, chain, {"code": PACK})
    before = (_count(session, AuditLog), _count(session, BatteryEvent))
    for key in ("via", "original_code"):
        extra = {"counterpart_id": chain.vehicle, "attributes": {key: "a note"}}
        with pytest.raises(InvalidInput) as refused:
            _event(session, chain, PACK, "transferred", "2019-03-01T10:00", chain.maker, **extra)
        assert refused.value.field == "attributes" and key in str(refused.value.params), refused.value
        session.rollback()
    assert (_count(session, AuditLog), _count(session, BatteryEvent)) == before


def test_a_locked_year_refuses_events(session: Session, chain: Chain) -> None:
    # The world locks 2021 for Panzhihua, where E1 (the maker) lies.
    _register(session, chain, {"code": PACK})
    with pytest.raises(PeriodLocked, match="2021 is locked for region 510400"):
        _event(session, chain, PACK, "transferred", "2021-05-01T10:00", chain.maker, counterpart_id=chain.vehicle)


# --- trace and reverse trace ----------------------------------------------------------------------------------


def test_trace_gives_the_life_in_order_with_custody(client: TestClient, session: Session, chain: Chain) -> None:
    _register(
        session, chain, {"code": PACK}, {"code": MODULE, "parent_code": PACK}, {"code": CELL, "parent_code": MODULE}
    )
    _life_to(session, chain, PACK, "collected")
    response = client.get(f"/api/v1/batteries/{PACK}/trace", headers=_as(chain.world.tokens["admin"]))
    assert response.status_code == 200, response.text
    t = response.json()
    assert [e["type"] for e in t["events"]] == ["produced", "transferred", "installed", "retired", "collected"]
    assert [c["enterprise"]["id"] for c in t["custody"]] == [chain.maker, chain.vehicle, chain.outlet]
    assert t["children"] == [MODULE] and t["parent"] is None
    installed = t["events"][2]
    assert installed["enterprise"]["id"] == chain.vehicle and installed["vin"] == VIN
    assert installed["place"]["region_adcode"].startswith("5101")
    assert installed["deadline"]["working_days"] == 15 and installed["deadline"]["late"] is True  # reported in 2025
    pack = client.get(f"/api/v1/batteries/{CELL}/trace?pack=true", headers=_as(chain.world.tokens["admin"])).json()
    assert pack["code"] == PACK and [m["code"] for m in pack["members"]] == [MODULE, CELL]
    assert pack["members"][1]["parent"] == MODULE and len(pack["members"][1]["events"]) == 5


def test_reverse_trace_lists_what_passed_through_and_where_it_is(
    client: TestClient, session: Session, chain: Chain
) -> None:
    other = code(BatteryLevel.pack, 9)
    _register(session, chain, {"code": PACK}, {"code": other})
    _life_to(session, chain, PACK, "transferred")  # to the vehicle maker, 2019-03-01
    _event(session, chain, other, "transferred", "2020-06-01T10:00", chain.maker, counterpart_id=chain.recycler)
    url = f"/api/v1/enterprises/{chain.vehicle}/batteries?from=2019-01-01&to=2019-12-31"
    page = client.get(url, headers=_as(chain.tokens["vehicle"])).json()
    assert page["count"] == 1 and page["data"][0]["code"] == PACK
    assert page["data"][0]["holder"]["id"] == chain.vehicle
    page = client.get(
        f"/api/v1/enterprises/{chain.maker}/batteries?from=2020-01-01", headers=_as(chain.tokens["maker"])
    )
    assert [r["code"] for r in page.json()["data"]] == [other]
    assert page.json()["data"][0]["holder"]["id"] == chain.recycler
    refused = client.get(f"/api/v1/enterprises/{chain.maker}/batteries", headers=_as(chain.tokens["vehicle"]))
    assert refused.status_code == 404


# --- scoping --------------------------------------------------------------------------------------------------


def test_who_sees_a_battery(client: TestClient, session: Session, chain: Chain) -> None:
    w = chain.world
    _register(session, chain, {"code": PACK})

    def sees(token: str) -> bool:
        status = client.get(f"/api/v1/batteries/{PACK}", headers=_as(token)).status_code
        assert status in (200, 404)
        return status == 200

    # Made and held by E1, in park A, Panzhihua.
    seen = {
        r
        for r in ("admin", "bureau_sc", "bureau_pzh", "bureau_dy", "park_a", "park_b", "ent1", "ent3")
        if sees(w.tokens[r])
    }
    assert seen == {"admin", "bureau_sc", "bureau_pzh", "park_a", "ent1"}
    assert not sees(chain.tokens["recycler"])
    _event(session, chain, PACK, "transferred", "2024-01-02T10:00", chain.maker, counterpart_id=chain.recycler)
    # The recycler (in Yibin) holds it now; the maker held it and still sees it.
    assert sees(chain.tokens["recycler"]) and sees(w.tokens["ent1"]) and not sees(w.tokens["bureau_dy"])


def test_seeded_access_cases(client: TestClient, engine: Engine, session: Session) -> None:
    """The cases that need a battery in the world, run the way the access matrix runs its own."""
    w = build_world(session)
    seed_batteries(session, w)
    for case in SEEDED_CASES:
        _run_case(client, engine, w, case)


def _run_case(client: TestClient, engine: Engine, w: World, case: Case) -> None:
    url = case.url(w)
    body = case.body(w) if case.body else None
    for role in [r for r in ROLES if r not in case.allowed] + [r for r in ROLES if r in case.allowed]:
        before = _fingerprint(engine)
        headers = {"Accept": "application/json"}
        if role != "anon":
            headers["Authorization"] = f"Bearer {w.tokens[role]}"
        response = client.request(case.method, url, json=body, headers=headers)
        if role in case.allowed:
            assert 200 <= response.status_code < 400, (case.path, role, response.status_code, response.text[:300])
            if case.writes:
                break
        else:
            assert response.status_code in ({401} if role == "anon" else {403, 404}), (case.path, role, response.text)
            assert _fingerprint(engine) == before, (case.path, role)


def test_not_found_does_not_confirm_existence(client: TestClient, session: Session, chain: Chain) -> None:
    _register(session, chain, {"code": PACK})
    hidden = client.get(f"/api/v1/batteries/{PACK}/trace", headers=_as(chain.world.tokens["ent3"]))
    missing = client.get(
        f"/api/v1/batteries/{code(BatteryLevel.pack, 404)}/trace", headers=_as(chain.world.tokens["ent3"])
    )
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(PACK, "X") == missing.json()["detail"].replace(
        code(BatteryLevel.pack, 404), "X"
    )
    with pytest.raises(NotFound):
        battery.find_battery(session=session, principal=chain.world.principals["ent3"], code=PACK)
    with pytest.raises(Forbidden):
        battery.record_events(session=session, principal=chain.world.principals["park_a"], rows=[], now=NOW)
    assert session.exec(select(func.count()).select_from(Battery).where(col(Battery.code) == PACK)).one() == 1
