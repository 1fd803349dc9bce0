"""The end-of-life vehicle dismantler (报废机动车回收拆解企业): its role, Art. 13's 15 working days on its intake and
hand-out, and deadlines counted over a year the holiday data does not cover marked provisional (both databases)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from flows.access.accounts import system_principal
from flows.battery import audit as battery_audit
from flows.battery import chain as battery
from flows.battery.rules import HOLIDAY_DATA_THROUGH, deadline_for, nth_working_day, provisional
from models import EnterpriseRoleLink
from models.enums import BatteryEventType, BatteryLevel, EnterpriseRole
from tests.access_cases_battery import VIN, Chain, build_chain, code
from tests.world import add_enterprise, build_world

ADMIN = system_principal()
SCRAPPED = code(BatteryLevel.pack, 601)
LATER = datetime(2027, 6, 1, tzinfo=UTC)


@pytest.fixture
def chain(session: Session) -> tuple[Chain, int]:
    c = build_chain(session, build_world(session))
    dismantler = add_enterprise(session, 70, 104.10, 30.60, EnterpriseRole.dismantler, ("拆解企业", "Dismantler"))
    session.commit()
    return c, dismantler


def _at(day: date, hour: int = 10) -> str:
    return datetime.combine(day, time(hour)).isoformat()


def _retired(session: Session, c: Chain, retired_on: date) -> None:
    """A pack made, fitted and retired by the vehicle maker, held by it."""
    battery.register_batteries(
        session=session, principal=ADMIN, rows=[{"code": SCRAPPED, "maker_id": c.maker}], now=LATER
    )
    for type_, when, reporter, extra in (
        ("transferred", date(2019, 3, 1), c.maker, {"counterpart_id": c.vehicle}),
        ("installed", date(2019, 3, 4), c.vehicle, {"vin": VIN}),
        ("retired", retired_on, c.vehicle, {}),
    ):
        row = {"type": type_, "occurred_at": _at(when), "reported_at": _at(when, 12), "reporter_id": reporter, **extra}
        battery.record_event(session=session, principal=ADMIN, code=SCRAPPED, row=row, now=LATER)


def _log(session: Session, type_: str, on: date, reported: date, reporter: int, **extra: object) -> None:
    row = {"type": type_, "occurred_at": _at(on), "reported_at": _at(reported, 16), "reporter_id": reporter, **extra}
    battery.record_event(session=session, principal=ADMIN, code=SCRAPPED, row=row, now=LATER)
    session.commit()


def _late(session: Session) -> list[battery_audit.BatteryFlag]:
    report = battery_audit.chain_flags(
        session=session, principal=ADMIN, now=LATER, kinds="late_report", code=SCRAPPED, limit=50
    )
    return list(report.data)


def test_the_role_is_stored_and_its_deadlines_are_data(session: Session, chain: tuple[Chain, int]) -> None:
    _c, dismantler = chain
    assert session.get(EnterpriseRoleLink, (dismantler, "dismantler")) is not None
    day = date(2024, 3, 4)
    for event in (BatteryEventType.collected, BatteryEventType.transferred):
        rule = deadline_for(event, {"dismantler"}, day)
        assert rule is not None and rule.working_days == 15 and "Art. 13" in rule.rule
    # Before the 2018 provisions were in force, no deadline binds.
    assert deadline_for(BatteryEventType.collected, {"dismantler"}, date(2018, 7, 31)) is None


@pytest.mark.parametrize("days_after", [15, 16, 30])
def test_a_dismantlers_intake_is_late_from_the_16th_working_day(
    session: Session, chain: tuple[Chain, int], days_after: int
) -> None:
    c, dismantler = chain
    _retired(session, c, date(2024, 9, 2))
    taken_in = date(2024, 9, 20)  # the 15 working days run over the National Day week and its adjusted Sundays
    reported = nth_working_day(taken_in, days_after)
    _log(session, "collected", taken_in, reported, dismantler, counterpart_id=c.vehicle)
    flags = _late(session)
    if days_after <= 15:
        assert flags == []
        return
    assert len(flags) == 1
    ev = flags[0].evidence
    assert (ev["event"], ev["working_days"], ev["due"]) == ("collected", 15, nth_working_day(taken_in, 15).isoformat())
    assert ev["working_days_late"] == days_after - 15 and "Art. 13" in ev["rule"] and ev["provisional"] is False


def test_the_same_late_intake_by_a_collection_outlet_is_within_its_30_days(
    session: Session, chain: tuple[Chain, int]
) -> None:
    c, _dismantler = chain
    _retired(session, c, date(2024, 9, 2))
    taken_in = date(2024, 9, 20)
    _log(session, "collected", taken_in, nth_working_day(taken_in, 20), c.outlet)
    assert _late(session) == []


def test_a_dismantlers_hand_out_of_a_removed_battery_is_held_to_15_working_days(
    session: Session, chain: tuple[Chain, int]
) -> None:
    c, dismantler = chain
    _retired(session, c, date(2024, 3, 1))
    _log(session, "collected", date(2024, 3, 4), date(2024, 3, 5), dismantler)
    handed = date(2024, 4, 1)
    _log(
        session,
        "transferred",
        handed,
        nth_working_day(handed, 16),
        dismantler,
        counterpart_id=c.recycler,
        purpose="recycling",
    )
    flags = _late(session)
    assert [f.evidence["event"] for f in flags] == ["transferred"]
    # A dismantler is part of the collection network: its intake is no leak.
    unlisted = battery_audit.chain_flags(
        session=session, principal=ADMIN, now=LATER, kinds="unlisted_receiver", code=SCRAPPED, limit=50
    )
    assert list(unlisted.data) == []


def test_a_deadline_past_the_holiday_data_is_provisional_in_json_and_page(
    client: TestClient, session: Session, chain: tuple[Chain, int]
) -> None:
    c, dismantler = chain
    assert HOLIDAY_DATA_THROUGH >= 2026
    year = HOLIDAY_DATA_THROUGH
    _retired(session, c, date(year, 12, 1))
    taken_in = date(year, 12, 21)  # its 15 working days end in the next year, whose holidays are not known
    due = nth_working_day(taken_in, 15)
    assert due.year == year + 1 and provisional(taken_in, due)
    _log(session, "collected", taken_in, due + timedelta(days=40), dismantler)
    trace = battery.trace(session=session, principal=ADMIN, code=SCRAPPED)
    deadlines = {e.type: e.deadline for e in trace.events}
    collected, retired = deadlines["collected"], deadlines["installed"]
    assert collected is not None and collected.provisional and collected.late
    assert retired is not None and not retired.provisional
    [flag] = _late(session)
    assert flag.evidence["provisional"] is True
    token = c.tokens["vehicle"]
    api = client.get(f"/api/v1/batteries/{SCRAPPED}/trace", headers={"Authorization": f"Bearer {token}"})
    shown = {e["type"]: e["deadline"] for e in api.json()["events"]}
    assert shown["collected"]["provisional"] is True and shown["installed"]["provisional"] is False
    for lang, word in (("en", "provisional"), ("zh-CN", "暂定")):
        page = client.get(
            f"/batteries/{SCRAPPED}", headers={"Authorization": f"Bearer {token}", "Accept-Language": lang}
        )
        assert page.status_code == 200
        assert page.text.count('data-provisional="1"') >= 1 and word in page.text
