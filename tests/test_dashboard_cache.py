"""The dashboard's battery flag counts: kept per data version, scope, year and Beijing day, equal to a fresh audit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from flows.access import registry, trail
from flows.access.accounts import system_principal
from flows.access.scope import resolve_scope
from flows.battery import audit as battery_audit
from flows.battery import chain as battery
from flows.battery import whitelist
from flows.kernel.memo import Recent
from flows.kernel.principal import Principal
from flows.pages import dashboard as page
from models import AuditHead, Enterprise
from models.enums import BatteryLevel
from tests.access_cases_battery import VIN, Chain, build_chain, code
from tests.test_battery_audit import _walk
from tests.world import NOW, build_world

ADMIN = system_principal()
YEAR = 2024


class Audits:
    """chain_flags wrapped to count its runs; the results are the real ones."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = battery_audit.chain_flags
        self.runs = 0

        def counted(**kw: Any) -> battery_audit.FlagReport:
            self.runs += 1
            return self.real(**kw)

        monkeypatch.setattr(battery_audit, "chain_flags", counted)

    def fresh(self, session: Session, principal: Principal, year: int = YEAR, now: datetime = NOW) -> dict[str, int]:
        return dict(self.real(session=session, principal=principal, now=now, year=year, limit=0).counts)


@pytest.fixture
def audits(monkeypatch: pytest.MonkeyPatch) -> Audits:
    return Audits(monkeypatch)


@pytest.fixture
def chain(session: Session) -> Chain:
    return build_chain(session, build_world(session))


def _counts(session: Session, principal: Principal, year: int = YEAR, now: datetime = NOW) -> dict[str, int]:
    return page.battery_flag_counts(session=session, principal=principal, year=year, now=now)


def _p(n: int) -> str:
    return code(BatteryLevel.pack, n)


def _register(session: Session, c: Chain, *codes: str) -> None:
    rows = [{"maker_id": c.maker, "code": one} for one in codes]
    battery.register_batteries(session=session, principal=ADMIN, rows=rows, now=NOW)
    session.commit()


def _collected(c: Chain, retired: str = "2024-01-08T10:00") -> list[tuple[Any, ...]]:
    return [
        ("transferred", "2019-03-01T10:00", c.maker, {"counterpart_id": c.vehicle}),
        ("installed", "2019-03-10T10:00", c.vehicle, {"vin": VIN}),
        ("retired", retired, c.vehicle, {}),
        ("collected", "2024-01-15T10:00", c.outlet, {}),
    ]


def _later_upload(session: Session, c: Chain) -> None:
    """Another battery's upload of 2025-02-20: the data now tells up to that day."""
    _walk(session, _p(2), [("transferred", "2025-02-20T10:00", c.maker, {"counterpart_id": c.vehicle})])


def _same_and_kept(session: Session, audits: Audits, principal: Principal, runs: int) -> dict[str, int]:
    """The counts equal a fresh audit, the audit ran `runs` times so far, and asking again runs it no more."""
    counts = _counts(session, principal)
    assert counts == audits.fresh(session, principal)
    assert audits.runs == runs
    assert _counts(session, principal) == counts and audits.runs == runs
    return counts


def test_counts_follow_every_write_that_changes_them(session: Session, chain: Chain, audits: Audits) -> None:
    admin = chain.world.principals["admin"]
    before = _same_and_kept(session, audits, admin, 1)
    assert sum(before.values()) == 0
    # A battery registered: a write of what the audit reads, so the audit runs again.
    late, recycled, handed = _p(1), _p(2), _p(3)
    _register(session, chain, late, recycled, handed)
    _same_and_kept(session, audits, admin, 2)
    # An event uploaded after its deadline (installed 2024-09-27, 15 working days: due 2024-10-23).
    head = ("transferred", "2019-03-01T10:00", chain.maker, {"counterpart_id": chain.vehicle})
    _walk(session, late, [head, ("installed", "2024-09-27T10:00", chain.vehicle, {"vin": VIN}, "2024-10-24T09:00")])
    counts = _same_and_kept(session, audits, admin, 3)
    assert counts["late_report"] == 1
    # A recovery report below the 2024 edition's lithium threshold (80% recovered, 90% required).
    recovered = {"input_mass_kg": 380, "lithium_in_kg": 5, "lithium_out_kg": 4.0}
    _walk(
        session,
        recycled,
        [
            *_collected(chain),
            ("transferred", "2024-01-20T10:00", chain.outlet, {"counterpart_id": chain.recycler}),
            ("dismantled", "2024-12-01T10:00", chain.recycler, {}),
            ("recovered", "2024-12-20T10:00", chain.recycler, recovered, "2024-12-30T10:00"),
        ],
    )
    counts = _same_and_kept(session, audits, admin, 4)
    assert counts["below_threshold"] == 1
    # Handed to a recycler that is on no list: flagged; then the recycler is listed from before the handover.
    _walk(
        session,
        handed,
        [*_collected(chain), ("transferred", "2024-01-21T10:00", chain.outlet, {"counterpart_id": chain.unlisted})],
    )
    assert _same_and_kept(session, audits, admin, 5)["unlisted_receiver"] == 1
    entry = {"activity": "recycling", "edition": "2019年本", "batch": "第一批", "listed_on": "2018-09-20"}
    whitelist.save_entry(session=session, principal=ADMIN, data={"uscc": chain.uscc["unlisted"], **entry}, now=NOW)
    session.commit()
    assert _same_and_kept(session, audits, admin, 6)["unlisted_receiver"] == 0


def test_an_edit_of_an_enterprise_moves_its_flags_between_scopes(
    session: Session, chain: Chain, audits: Audits
) -> None:
    lost = _p(1)
    _register(session, chain, lost, _p(2))
    # Retired in Chengdu and never collected; a later upload carries the data past its window.
    _walk(session, lost, [*_collected(chain)[:3]])
    _later_upload(session, chain)
    pzh = chain.world.principals["bureau_pzh"]
    vehicle = session.get(Enterprise, chain.vehicle)
    assert vehicle is not None
    assert _counts(session, pzh) == audits.fresh(session, pzh)
    assert _counts(session, pzh)["lost"] == 0
    # The vehicle maker is moved into Panzhihua: the flag it answers for moves with it.
    moved = {"version": vehicle.version, "lon": 101.72, "lat": 26.58}
    registry.edit_enterprise(session=session, principal=ADMIN, enterprise_id=chain.vehicle, data=moved, now=NOW)
    session.commit()
    runs = audits.runs
    assert _counts(session, pzh) == audits.fresh(session, pzh)
    assert _counts(session, pzh)["lost"] == 1 and audits.runs == runs + 1


def test_principals_of_different_scopes_never_share_an_entry(session: Session, chain: Chain, audits: Audits) -> None:
    late = _p(1)
    _register(session, chain, late)
    head = ("transferred", "2019-03-01T10:00", chain.maker, {"counterpart_id": chain.vehicle})
    # Reported late by the vehicle maker in Chengdu: in the province's scope, not in Panzhihua's nor E1's.
    _walk(session, late, [head, ("installed", "2024-09-27T10:00", chain.vehicle, {"vin": VIN}, "2024-10-24T09:00")])
    p = chain.world.principals
    vehicle = Principal(user_id=None, username="ent_vehicle", role=p["ent1"].role, enterprise_id=chain.vehicle)
    scopes = [p["admin"], p["bureau_sc"], p["bureau_pzh"], p["bureau_dy"], p["park_a"], p["park_b"], p["ent1"]]
    scopes.append(vehicle)
    seen = {}
    for n, principal in enumerate(scopes, start=1):
        seen[principal.username] = _counts(session, principal)
        assert seen[principal.username] == audits.fresh(session, principal)
        assert audits.runs == n  # a scope of its own: the audit runs for it
    assert seen["bureau_sc"]["late_report"] == seen["ent_vehicle"]["late_report"] == 1
    assert seen["bureau_pzh"]["late_report"] == seen["ent1"]["late_report"] == seen["park_a"]["late_report"] == 0
    # Another user of one of these scopes reads what was kept for it; another year is another entry.
    runs = audits.runs
    assert _counts(session, replace(p["bureau_sc"], user_id=None, username="another")) == seen["bureau_sc"]
    assert audits.runs == runs
    assert _counts(session, p["bureau_sc"], year=2023) == audits.fresh(session, p["bureau_sc"], year=2023)
    assert audits.runs == runs + 1


def test_counts_move_at_beijing_midnight_with_nothing_written(session: Session, chain: Chain, audits: Audits) -> None:
    lost = _p(1)
    _register(session, chain, lost, _p(2))
    _walk(session, lost, [*_collected(chain)[:3]])  # retired 2024-01-08, never collected: due 2024-02-22
    _later_upload(session, chain)
    admin = chain.world.principals["admin"]
    last_day = datetime(2024, 2, 22, 15, 59, tzinfo=UTC)  # 23:59 in Beijing, the window's last day
    assert _counts(session, admin, now=last_day)["lost"] == 0
    assert _counts(session, admin, now=last_day - timedelta(hours=7)) == audits.fresh(session, admin, now=last_day)
    assert audits.runs == 1  # the same Beijing day
    next_day = last_day + timedelta(minutes=1)
    assert _counts(session, admin, now=next_day)["lost"] == 1
    assert audits.fresh(session, admin, now=next_day)["lost"] == 1 and audits.runs == 2


def _head(session: Session) -> AuditHead:
    head = session.get(AuditHead, trail.HEAD_ID, populate_existing=True)
    assert head is not None
    return head


def test_the_version_moves_while_the_heads_signature_fails(
    session: Session, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost = _p(1)
    _register(session, chain, lost)
    assert trail.signature_holds(_head(session))
    head_id, version = _head(session).entry_id, trail.data_version(session=session)
    # Signed from now on with another key: the stored head no longer verifies, and the log goes on.
    monkeypatch.setattr(trail, "_signing_key", trail.derive_key("another secret"))
    _walk(session, lost, [*_collected(chain)[:1]])
    assert _head(session).entry_id == head_id  # the head is kept as found, as evidence
    assert trail.data_version(session=session) != version


def test_the_dashboard_reads_its_battery_counts_through_the_memory(
    session: Session, chain: Chain, audits: Audits
) -> None:
    bureau = chain.world.principals["bureau_sc"]
    scope = resolve_scope(session=session, principal=bureau)
    first = page.dashboard(session=session, principal=bureau, scope=scope, year=YEAR, now=NOW)
    again = page.dashboard(session=session, principal=bureau, scope=scope, year=YEAR, now=NOW)
    assert first.battery_flag_counts == again.battery_flag_counts == audits.fresh(session, bureau)
    assert audits.runs == 1
    again.battery_flag_counts["lost"] = 99  # a reader's copy: what is kept does not change with it
    third = page.dashboard(session=session, principal=bureau, scope=scope, year=YEAR, now=NOW)
    assert third.battery_flag_counts == first.battery_flag_counts


def test_recent_forgets_the_least_recently_used_first() -> None:
    kept: Recent[str, int] = Recent(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1  # now the most recently used
    kept.put("c", 3)
    assert kept.get("b") is None and kept.get("a") == 1 and kept.get("c") == 3 and len(kept) == 2
    kept.clear()
    assert len(kept) == 0
    with pytest.raises(ValueError):
        Recent(0)
