"""The battery chain audit: working-day deadlines, thresholds by edition, every flag both ways, share, scope."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from flows.access.accounts import system_principal
from flows.battery import audit as battery_audit
from flows.battery import chain as battery
from flows.battery.rules import (
    EDITIONS,
    deadline_for,
    edition_in_force,
    is_working_day,
    metal_thresholds,
    nth_working_day,
    working_days_between,
)
from flows.kernel.errors import Forbidden
from models import Battery
from models.enums import BatteryEventType, BatteryLevel
from tests.access_cases_battery import VIN, Chain, at, build_chain, code
from tests.world import NOW, build_world

ADMIN = system_principal()
AS_OF = date(2025, 3, 1)


@pytest.fixture
def chain(session: Session) -> Chain:
    return build_chain(session, build_world(session))


def _register(session: Session, c: Chain, *rows: dict[str, Any]) -> None:
    battery.register_batteries(
        session=session, principal=ADMIN, rows=[{"maker_id": c.maker, **r} for r in rows], now=NOW
    )
    session.commit()


def _walk(session: Session, code_: str, steps: list[tuple[Any, ...]]) -> None:
    """Record (type, when, reporter, extra[, reported]) steps; uploads come two hours later unless given."""
    for step in steps:
        type_, when, reporter, extra = step[:4]
        reported = step[4] if len(step) > 4 else (datetime.fromisoformat(when) + timedelta(hours=2)).isoformat()
        row = {"type": type_, "occurred_at": when, "reported_at": reported, "reporter_id": reporter, **extra}
        battery.record_event(session=session, principal=ADMIN, code=code_, row=row, now=NOW)
        if type_ == "repurposed":
            code_ = extra["new_code"]
    session.commit()


def _to_retired(c: Chain, retired: str = "2024-01-08T10:00") -> list[tuple[Any, ...]]:
    return [
        ("transferred", "2019-03-01T10:00", c.maker, {"counterpart_id": c.vehicle}),
        ("installed", "2019-03-10T10:00", c.vehicle, {"vin": VIN}),
        ("retired", retired, c.vehicle, {}),
    ]


def _to_collected(c: Chain) -> list[tuple[Any, ...]]:
    return [*_to_retired(c), ("collected", "2024-01-15T10:00", c.outlet, {})]


def _flags(session: Session, kind: str, **kw: Any) -> dict[str, list[battery_audit.BatteryFlag]]:
    report = battery_audit.chain_flags(session=session, principal=ADMIN, now=NOW, kinds=kind, limit=None, **kw)
    found: dict[str, list[battery_audit.BatteryFlag]] = {}
    for f in report.data:
        found.setdefault(f.code or "", []).append(f)
    return found


def _p(n: int) -> str:
    return code(BatteryLevel.pack, n)


# --- the calendar and the rules as data -----------------------------------------------------------------------


def test_working_days_know_the_national_day_holiday_and_its_adjusted_weekend_days() -> None:
    assert is_working_day(date(2024, 9, 29)) and is_working_day(date(2024, 10, 12))  # a Sunday and a Saturday
    assert not any(is_working_day(date(2024, 10, d)) for d in range(1, 8))
    assert nth_working_day(date(2024, 9, 27), 1) == date(2024, 9, 29)
    assert nth_working_day(date(2024, 9, 30), 1) == date(2024, 10, 8)
    # 15 working days from Friday 2024-09-27; counting Monday to Friday would say 2024-10-18.
    assert nth_working_day(date(2024, 9, 27), 15) == date(2024, 10, 23)
    assert working_days_between(date(2024, 9, 27), date(2024, 10, 23)) == 15
    # Across the Spring Festival of 2024 (10-17 February off; Sundays 4 and 18 February worked).
    assert nth_working_day(date(2024, 1, 8), 30) == date(2024, 2, 22)


def test_deadlines_come_from_the_2018_rule_by_actor_and_event() -> None:
    day = date(2024, 9, 27)
    installed = deadline_for(BatteryEventType.installed, {"vehicle_maker"}, day)
    assert installed is not None and installed.working_days == 15 and "2018" in installed.rule
    collected = deadline_for(BatteryEventType.collected, {"collection_outlet"}, day)
    assert collected is not None and collected.working_days == 30
    cascade = deadline_for(BatteryEventType.transferred, {"cascade_user"}, day)
    assert cascade is not None and cascade.working_days == 15
    assert deadline_for(BatteryEventType.produced, {"battery_maker"}, day) is None
    assert deadline_for(BatteryEventType.installed, {"vehicle_maker"}, date(2018, 7, 31)) is None  # before the rule


def test_thresholds_by_edition() -> None:
    assert [e.name for e in EDITIONS] == ["2019", "2024"]
    assert edition_in_force(date(2024, 12, 23)).name == "2019" and not edition_in_force(date(2024, 12, 23)).known
    assert "no thresholds known for edition 2019" in edition_in_force(date(2020, 1, 1)).note
    edition = edition_in_force(date(2024, 12, 24))
    assert edition.name == "2024"
    assert metal_thresholds(edition) == {"lithium": 0.90, "nickel": 0.98, "cobalt": 0.98, "manganese": 0.98}


# --- the flags, each both ways ----------------------------------------------------------------------------------


def test_late_report_across_national_day(session: Session, chain: Chain) -> None:
    on_time, late, mon_fri = _p(1), _p(2), _p(3)
    _register(session, chain, {"code": on_time}, {"code": late}, {"code": mon_fri})
    head = [("transferred", "2019-03-01T10:00", chain.maker, {"counterpart_id": chain.vehicle})]
    installed = "2024-09-27T10:00"
    _walk(session, on_time, [*head, ("installed", installed, chain.vehicle, {"vin": VIN}, "2024-10-23T17:00")])
    _walk(session, late, [*head, ("installed", installed, chain.vehicle, {"vin": VIN}, "2024-10-24T09:00")])
    # Late by a Monday-to-Friday count (after 2024-10-18), on time by China's calendar.
    _walk(session, mon_fri, [*head, ("installed", installed, chain.vehicle, {"vin": VIN}, "2024-10-21T09:00")])
    flags = _flags(session, "late_report", year=2024)
    assert set(flags) == {late}
    evidence = flags[late][0].evidence
    assert evidence["due"] == "2024-10-23" and evidence["working_days"] == 15 and evidence["working_days_late"] == 1
    late_flag = flags[late][0]
    assert late_flag.enterprise is not None and late_flag.enterprise.id == chain.vehicle


def test_lost_when_not_collected_within_the_window(session: Session, chain: Chain) -> None:
    lost, collected, found_late, recent = _p(1), _p(2), _p(3), _p(4)
    _register(session, chain, *({"code": c} for c in (lost, collected, found_late, recent)))
    _walk(session, lost, _to_retired(chain))
    _walk(session, collected, _to_collected(chain))
    _walk(session, found_late, [*_to_retired(chain), ("collected", "2024-04-01T10:00", chain.outlet, {})])
    _walk(session, recent, _to_retired(chain, "2025-02-20T10:00"))  # its window runs past the data's last day
    flags = _flags(session, "lost")
    assert set(flags) == {lost, found_late}
    assert flags[lost][0].evidence["due"] == "2024-02-22" and flags[lost][0].evidence["collected_at"] is None
    assert flags[found_late][0].evidence["collected_at"].startswith("2024-04-01")
    assert flags[lost][0].region_adcode == "510100"  # the vehicle maker in Chengdu retired it


def test_unlisted_receivers(session: Session, chain: Chain) -> None:
    listed, unlisted, revoked, early, wrong_kind, outlet = (_p(n) for n in range(1, 7))
    _register(session, chain, *({"code": c} for c in (listed, unlisted, revoked, early, wrong_kind, outlet)))
    handover = "2024-01-20T10:00"
    for code_, to, extra in (
        (listed, chain.recycler, {}),
        (unlisted, chain.unlisted, {}),
        (revoked, chain.revoked, {}),  # revoked on 2023-06-30
        (wrong_kind, chain.recycler, {"purpose": "cascade_use"}),  # listed for recycling only
        (outlet, chain.outlet, {}),  # the collection network needs no listing
    ):
        _walk(session, code_, [*_to_collected(chain)])
        holder = chain.outlet
        if code_ == outlet:  # hand it back and forth inside the network
            _walk(session, code_, [("transferred", handover, chain.outlet, {"counterpart_id": chain.vehicle})])
            holder, to = chain.vehicle, chain.outlet
        _walk(session, code_, [("transferred", "2024-01-21T10:00", holder, {"counterpart_id": to, **extra})])
    # Handed to the cascade user before it was listed (2020-12-18).
    _walk(
        session,
        early,
        [
            *_to_retired(chain, "2020-03-01T10:00"),
            ("collected", "2020-03-05T10:00", chain.outlet, {}),
            ("transferred", "2020-06-01T10:00", chain.outlet, {"counterpart_id": chain.cascade}),
        ],
    )
    flags = _flags(session, "unlisted_receiver")
    assert set(flags) == {unlisted, revoked, early, wrong_kind}
    assert flags[unlisted][0].evidence["needed"] == "recycling" and flags[unlisted][0].evidence["listings"] == []
    assert flags[revoked][0].evidence["listings"][0]["revoked_on"] == "2023-06-30"
    assert flags[early][0].evidence["needed"] == "cascade_use" and flags[early][0].year == 2020
    assert flags[wrong_kind][0].evidence["purpose"] == "cascade_use"
    unlisted_flag = flags[unlisted][0]
    assert unlisted_flag.enterprise is not None and unlisted_flag.enterprise.id == chain.outlet
    assert unlisted_flag.counterpart is not None and unlisted_flag.counterpart.id == chain.unlisted


def _recycle(c: Chain, recovered: dict[str, Any], reported: str) -> list[tuple[Any, ...]]:
    return [
        *_to_collected(c),
        ("transferred", "2024-01-20T10:00", c.outlet, {"counterpart_id": c.recycler}),
        ("dismantled", "2024-12-01T10:00", c.recycler, {}),
        ("recovered", "2024-12-20T10:00", c.recycler, {"input_mass_kg": 380, **recovered}, reported),
    ]


def test_recovery_below_threshold_or_above_input_by_edition(client: TestClient, session: Session, chain: Chain) -> None:
    below, fine, old_below, above, equal = (_p(n) for n in range(1, 6))
    _register(session, chain, *({"code": c} for c in (below, fine, old_below, above, equal)))
    metals = {"nickel_in_kg": 30, "nickel_out_kg": 29.7, "cobalt_in_kg": 9, "cobalt_out_kg": 8.9}
    _walk(session, below, _recycle(chain, {"lithium_in_kg": 5, "lithium_out_kg": 4.0, **metals}, "2024-12-30T10:00"))
    _walk(session, fine, _recycle(chain, {"lithium_in_kg": 5, "lithium_out_kg": 4.6, **metals}, "2024-12-30T10:00"))
    _walk(session, old_below, _recycle(chain, {"lithium_in_kg": 5, "lithium_out_kg": 4.0}, "2024-12-23T10:00"))
    _walk(session, above, _recycle(chain, {"lithium_in_kg": 5, "lithium_out_kg": 6.0}, "2024-12-23T10:00"))
    _walk(session, equal, _recycle(chain, {"lithium_in_kg": 5, "lithium_out_kg": 5.0}, "2024-12-30T10:00"))
    flags = _flags(session, "below_threshold,recovered_above_input", year=2024)
    assert {c: [f.kind.value for f in fs] for c, fs in flags.items()} == {
        below: ["below_threshold"],
        above: ["recovered_above_input"],
    }
    assert flags[below][0].evidence["below"] == {"lithium": {"rate": pytest.approx(0.8), "minimum": 0.9}}
    assert flags[below][0].evidence["edition_in_force"] == "2024"
    response = client.get(
        "/api/v1/battery-recovery?year=2024", headers={"Authorization": f"Bearer {chain.tokens['recycler']}"}
    )
    assert response.status_code == 200, response.text
    rows = {r["edition"]: r for r in response.json()["data"]}
    assert rows["2024"]["reports"] == 3 and rows["2024"]["compliant"] == 2 and rows["2024"]["below_threshold"] == 1
    assert rows["2024"]["status"] == "not compliant" and rows["2024"]["thresholds"]["lithium"] == 0.9
    assert rows["2019"]["reports"] == 2 and rows["2019"]["compliant"] is None and rows["2019"]["above_input"] == 1
    assert rows["2019"]["status"].startswith("no thresholds known for edition 2019")


def test_vanished_children(session: Session, chain: Chain) -> None:
    gone, kept = _p(1), _p(2)
    m_gone, m_kept = code(BatteryLevel.module, 11), code(BatteryLevel.module, 12)
    _register(
        session,
        chain,
        {"code": gone},
        {"code": kept},
        {"code": m_gone, "parent_code": gone},
        {"code": m_kept, "parent_code": kept},
    )
    for pack in (gone, kept):
        _walk(
            session,
            pack,
            [
                *_to_collected(chain),
                ("transferred", "2024-01-20T10:00", chain.outlet, {"counterpart_id": chain.recycler}),
                ("dismantled", "2024-03-01T10:00", chain.recycler, {}),
            ],
        )
    _walk(session, m_kept, [("dismantled", "2024-03-05T10:00", chain.recycler, {})])
    flags = _flags(session, "vanished_children", year=2024)
    assert set(flags) == {gone}
    assert flags[gone][0].evidence["children"] == [m_gone] and flags[gone][0].evidence["due"] == "2024-04-15"
    # The module's copies of the pack's events are not flagged again on the module itself.
    assert _flags(session, "late_report,lost,unlisted_receiver") == {}


def test_code_reused_and_two_parents(session: Session, chain: Chain) -> None:
    first, second, module = _p(1), _p(2), code(BatteryLevel.module, 3)
    _register(session, chain, {"code": first}, {"code": second}, {"code": module, "parent_code": first})
    assert _flags(session, "code_reused,two_parents") == {}
    # Written behind the application's back: the module moved into the second pack while the first is intact,
    # and another battery took the module's code after it was re-coded.
    m = session.exec(select(Battery).where(Battery.code == module)).one()
    p2 = session.exec(select(Battery).where(Battery.code == second)).one()
    m.parent_id = p2.id
    m.original_code, m.code = module, code(BatteryLevel.module, 4, maker="7C1")
    session.add(m)
    session.add(
        Battery(
            code=module,
            level=BatteryLevel.module,
            maker_code="0D1",
            chemistry="E",
            production_date=date(2018, 6, 5),
            holder_id=chain.maker,
        )
    )
    session.commit()
    flags = _flags(session, "code_reused,two_parents")
    assert flags[module][0].kind == "code_reused" and flags[module][0].evidence["other_battery"] == m.code
    assert flags[m.code][0].kind == "two_parents" and flags[m.code][0].evidence["registered_parent"] == first


def test_share_of_retired_batteries_reaching_listed_recyclers(
    client: TestClient, session: Session, chain: Chain
) -> None:
    reached, cascade, stuck = _p(1), _p(2), _p(3)
    _register(
        session,
        chain,
        {"code": reached, "rated_kwh": 60},
        {"code": cascade, "rated_kwh": 40},
        {"code": stuck, "rated_kwh": 100},
    )
    _walk(
        session,
        reached,
        [*_to_collected(chain), ("transferred", "2024-01-20T10:00", chain.outlet, {"counterpart_id": chain.recycler})],
    )
    _walk(
        session,
        cascade,
        [*_to_collected(chain), ("transferred", "2024-01-20T10:00", chain.outlet, {"counterpart_id": chain.cascade})],
    )
    _walk(session, stuck, _to_collected(chain))
    response = client.get(
        "/api/v1/battery-share?year=2024", headers={"Authorization": f"Bearer {chain.world.tokens['admin']}"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    [row] = body["data"]
    assert row["prefecture_adcode"] == "510100" and row["name_zh"] == "成都市"
    assert (row["retired"], row["reached_recycler"], row["reached_whitelisted"]) == (3, 1, 2)
    assert row["share_recycler"] == pytest.approx(1 / 3) and row["share_recycler_kwh"] == pytest.approx(60 / 200)
    assert row["share_whitelisted_kwh"] == pytest.approx(100 / 200)
    assert body["total"]["retired_kwh"] == 200
    empty = battery_audit.retired_share(session=session, principal=ADMIN, year=2023)
    assert empty.data == [] and empty.total.share_recycler is None


def test_flags_are_scoped(client: TestClient, session: Session, chain: Chain) -> None:
    lost = _p(1)
    _register(session, chain, {"code": lost})
    _walk(session, lost, _to_retired(chain))  # retired by the vehicle maker in Chengdu

    def flagged(token: str, **params: Any) -> Any:
        return client.get(
            "/api/v1/battery-flags", params={"kind": "lost", **params}, headers={"Authorization": f"Bearer {token}"}
        )

    w = chain.world
    assert flagged(w.tokens["admin"]).json()["count"] == 1
    assert flagged(w.tokens["bureau_sc"]).json()["count"] == 1
    assert flagged(w.tokens["bureau_pzh"]).json()["count"] == 0
    assert flagged(chain.tokens["vehicle"]).json()["count"] == 1
    assert flagged(w.tokens["ent1"]).json()["count"] == 0  # the maker is not the one who lost it
    assert flagged(w.tokens["bureau_dy"], region="510100").status_code == 403
    assert flagged(w.tokens["bureau_sc"], region="510100").json()["by_region"][0]["key"] == "510100"
    assert flagged(w.tokens["admin"], kind="nonsense").status_code == 422
    with pytest.raises(Forbidden):
        battery_audit.retired_share(session=session, principal=w.principals["park_a"], year=2024, region="510400")


def test_trace_marks_late_uploads(session: Session, chain: Chain) -> None:
    pack = _p(1)
    _register(session, chain, {"code": pack})
    _walk(session, pack, _to_retired(chain)[:2])
    t = battery.trace(session=session, principal=ADMIN, code=pack)
    assert [e.deadline.late if e.deadline else None for e in t.events] == [None, None, False]
    assert t.events[2].deadline is not None and t.events[2].deadline.due == nth_working_day(date(2019, 3, 10), 15)
    assert at("2019-03-10T10:00") == t.events[2].at
