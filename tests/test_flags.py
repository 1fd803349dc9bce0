"""Audit flags: each kind flags its case and leaves the near miss alone; filters, pagination and scoping."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from flows.access.accounts import system_principal
from flows.kernel.errors import Forbidden, InvalidInput, NotFound
from flows.waste.flags import DEFAULT_TOLERANCES, Flag, FlagKind, FlagPage, list_flags
from models.enums import LicenceActivity, ManifestStatus, Route
from tests.test_rates import DY_JINGYANG, PZH, PZH_EAST, PZH_RENHE, Builder
from tests.world import build_world

SYSTEM = system_principal()


def _flags(session: Session, kind: FlagKind | None = None, **kw: Any) -> FlagPage:
    return list_flags(
        session=session,
        principal=kw.pop("principal", SYSTEM),
        kinds=kind.value if kind else None,
        limit=kw.pop("limit", None),
        **kw,
    )


def _subjects(page: FlagPage) -> set[str]:
    return {f.subject for f in page.data}


# --- declarations ---------------------------------------------------------------------------------------------


def test_balance_break_beyond_max_of_1t_and_1pct(session: Session) -> None:
    build = Builder(session)
    e = build.enterprise(PZH_EAST)
    balanced = build.declare(e, "SW01", 2023, generated_t=100, utilised_t=50, stored_t=50)
    # Prior stock used comes out of the stock, not out of this year's waste: 60 - 10 + 50 = 100.
    with_prior = build.declare(e, "SW02", 2023, generated_t=100, utilised_t=60, utilised_prior_t=10, stored_t=50)
    off_10t = build.declare(e, "SW03", 2023, generated_t=100, utilised_t=50, stored_t=40)
    within_1pct = build.declare(e, "SW04", 2023, generated_t=1000, utilised_t=500, stored_t=495)  # off 5 < 10
    within_1t = build.declare(e, "SW06", 2023, generated_t=50, utilised_t=20, stored_t=29.1)  # off 0.9 < 1
    off_1_5t = build.declare(e, "SW10", 2023, generated_t=50, utilised_t=20, stored_t=28.5)  # off 1.5 > 1
    over = build.declare(
        e, "SW11", 2023, generated_t=100, utilised_t=40, disposed_t=50, disposed_prior_t=20, stored_t=25, dumped_t=5
    )  # 40 + 25 + (50 - 20) + 5 = 100: balanced
    session.commit()
    page = _flags(session, FlagKind.balance_break, year=2023)
    assert _subjects(page) == {f"declaration/{off_10t}", f"declaration/{off_1_5t}"}
    assert not {balanced, with_prior, within_1pct, within_1t, over} & {int(s.split("/")[1]) for s in _subjects(page)}
    flag = next(f for f in page.data if f.subject == f"declaration/{off_10t}")
    assert flag.evidence["residual_t"] == pytest.approx(10) and flag.evidence["tolerance_t"] == pytest.approx(1)
    assert flag.enterprise_ids == [e] and flag.links == [f"/api/v1/declarations/{off_10t}"]
    # A tolerance is a parameter: at 20%, the 10 t break passes.
    loose = replace(DEFAULT_TOLERANCES, balance_rel=0.2)
    assert f"declaration/{off_10t}" not in _subjects(_flags(session, FlagKind.balance_break, tolerances=loose))


def test_rate_above_100_per_declaration(session: Session) -> None:
    build = Builder(session)
    e = build.enterprise(PZH_EAST)
    no_prior = build.declare(e, "SW01", 2023, generated_t=100, utilised_t=120)
    stock_drawn = build.declare(e, "SW02", 2023, generated_t=100, utilised_t=120, utilised_prior_t=20)
    exactly_all = build.declare(e, "SW03", 2023, generated_t=100, utilised_t=100)
    beyond_prior = build.declare(e, "SW04", 2023, generated_t=100, utilised_t=130, utilised_prior_t=20)
    session.commit()
    page = _flags(session, FlagKind.rate_above_100)
    assert _subjects(page) == {f"declaration/{no_prior}", f"declaration/{beyond_prior}"}
    assert f"declaration/{stock_drawn}" not in _subjects(page) and f"declaration/{exactly_all}" not in _subjects(page)
    flag = next(f for f in page.data if f.subject == f"declaration/{no_prior}")
    assert flag.evidence["rate"] == pytest.approx(1.2) and flag.evidence["excess_t"] == pytest.approx(20)


def test_rate_above_100_per_scope(session: Session) -> None:
    build = Builder(session)
    park = build.park("园区", PZH_EAST)
    a, b = build.enterprise(PZH_EAST, park), build.enterprise(DY_JINGYANG)
    build.declare(a, "SW01", 2023, generated_t=100, utilised_t=150)  # Panzhihua: 150 / 100
    build.declare(b, "SW01", 2023, generated_t=100, utilised_t=20)  # Deyang: 20 / 100; province 170 / 200
    build.declare(b, "SW05", 2023, generated_t=1, utilised_t=50)  # tailings: outside the target set
    session.commit()
    page = _flags(session, FlagKind.scope_rate_above_100, year=2023)
    assert _subjects(page) == {f"prefecture/{PZH}", f"park/{park}"}
    flag = next(f for f in page.data if f.subject == f"prefecture/{PZH}")
    assert flag.evidence["rate"] == pytest.approx(1.5) and str(flag.evidence["categories"]).startswith("SW01,SW02")
    assert flag.links[0].startswith("/api/v1/rates?year=2023&region=510400")
    city = _flags(session, FlagKind.scope_rate_above_100, region=PZH)
    assert _subjects(city) == {f"prefecture/{PZH}", f"county/{PZH_EAST}", f"park/{park}"}
    build.declare(b, "SW02", 2023, generated_t=0, utilised_t=200)  # now the province is above 100% too
    session.commit()
    assert "province/510000" in _subjects(_flags(session, FlagKind.scope_rate_above_100))


# --- manifests ------------------------------------------------------------------------------------------------


def test_weight_discrepancy(session: Session) -> None:
    build = Builder(session)
    s, r = build.enterprise(PZH_EAST), build.enterprise(PZH_RENHE)
    gap_3pct = build.batch(s, r, "SW01", 100, 97)
    gap_1_5pct = build.batch(s, r, "SW01", 100, 98.5)
    heavier = build.batch(s, r, "SW01", 100, 102.5)
    partly_refused = build.batch(s, r, "SW01", 100, 90, rejected=9.5)  # 99.5 accounted for: within 2%
    in_transit = build.batch(s, r, "SW01", 100, None, status=ManifestStatus.dispatched)
    corrected = build.batch(s, r, "SW01", 100, 95, status=ManifestStatus.corrected)
    session.commit()
    page = _flags(session, FlagKind.weight_discrepancy, year=2023)
    assert _subjects(page) == {f"manifest/{gap_3pct}", f"manifest/{heavier}", f"manifest/{corrected}"}
    assert not {gap_1_5pct, partly_refused, in_transit} & {int(x.split("/")[1]) for x in _subjects(page)}
    flag = next(f for f in page.data if f.subject == f"manifest/{gap_3pct}")
    assert flag.evidence["difference_t"] == pytest.approx(-3) and flag.evidence["difference_pct"] == pytest.approx(-3)
    assert flag.enterprise_ids == [s, r] and flag.links == [f"/api/v1/manifests/{gap_3pct}"]
    assert _flags(session, FlagKind.weight_discrepancy, year=2022).count == 0
    strict = replace(DEFAULT_TOLERANCES, weight_rel=0.01)
    assert f"manifest/{gap_1_5pct}" in _subjects(_flags(session, FlagKind.weight_discrepancy, tolerances=strict))


def test_unlicensed_receiver(session: Session) -> None:
    build = Builder(session)
    s = build.enterprise(PZH_EAST)
    licensed, bare, lapsed, store, tip = (build.enterprise(PZH_RENHE) for _ in range(5))
    build.licence(licensed, "SW01")
    build.licence(lapsed, "SW01", valid_to=date(2023, 3, 31))
    build.licence(store, "SW01", LicenceActivity.storage)
    build.licence(tip, "SW01")  # a utilisation licence does not cover disposal
    ok = build.batch(s, licensed, "SW01", 10, 10)
    to_bare = build.batch(s, bare, "SW01", 10, 10)
    before_lapse = build.batch(s, lapsed, "SW01", 10, 10, at=datetime(2023, 3, 1, tzinfo=UTC))
    after_lapse = build.batch(s, lapsed, "SW01", 10, 10, at=datetime(2023, 5, 1, tzinfo=UTC))
    stored = build.batch(s, store, "SW01", 10, 10, route=Route.storage)
    stored_for_use = build.batch(s, store, "SW01", 10, 10, route=Route.road_base)
    dumped = build.batch(s, tip, "SW01", 10, 10, route=Route.disposal)
    refused = build.batch(s, bare, "SW01", 10, None, status=ManifestStatus.rejected)
    draft = build.batch(s, bare, "SW01", 10, None, status=ManifestStatus.draft)
    on_the_road = build.batch(s, bare, "SW01", 10, None, status=ManifestStatus.dispatched)
    session.commit()
    page = _flags(session, FlagKind.unlicensed_receiver)
    flagged = {to_bare, after_lapse, stored_for_use, dumped, on_the_road}
    assert _subjects(page) == {f"manifest/{i}" for i in flagged}
    assert not {ok, before_lapse, stored, refused, draft} & {int(x.split("/")[1]) for x in _subjects(page)}
    lapse = next(f for f in page.data if f.subject == f"manifest/{after_lapse}")
    assert lapse.evidence["licence_valid_to"] == "2023-03-31" and "expired" in lapse.message
    bare_flag = next(f for f in page.data if f.subject == f"manifest/{to_bare}")
    assert bare_flag.evidence["licence_valid_to"] is None and bare_flag.evidence["activity"] == "utilisation"
    assert next(f for f in page.data if f.subject == f"manifest/{dumped}").evidence["activity"] == "disposal"


def test_capacity_exceeded(session: Session) -> None:
    build = Builder(session)
    s1, s2, r = build.enterprise(PZH_EAST), build.enterprise(DY_JINGYANG), build.enterprise(PZH_RENHE)
    build.licence(r, "SW01", capacity=50)
    build.licence(r, "SW02", capacity=50)
    build.batch(s1, r, "SW01", 30, 30)
    build.batch(s2, r, "SW01", 25, 25)  # 55 t of SW01 in 2023 against 50
    build.batch(s1, r, "SW01", 30, 30, year=2022)  # 30 t in 2022: within
    build.batch(s1, r, "SW02", 30, 30)
    build.batch(s1, r, "SW02", 30, None, status=ManifestStatus.dispatched)  # not taken in yet: 30 t of SW02
    build.batch(s1, r, "SW01", 30, 30, route=Route.disposal)  # another activity, with no licence at all
    session.commit()
    page = _flags(session, FlagKind.capacity_exceeded)
    assert _subjects(page) == {f"enterprise/{r}/SW01/utilisation"}
    flag = page.data[0]
    assert flag.year == 2023 and flag.enterprise_ids == [r]
    assert (flag.evidence["intake_t"], flag.evidence["capacity_t"], flag.evidence["batches"]) == (55, 50, 2)
    assert flag.evidence["excess_t"] == pytest.approx(5)
    # A renewal mid-year: the larger of the two capacities applies, not their sum (110 t) nor the smaller.
    renewed = build.enterprise(PZH_RENHE)
    build.licence(renewed, "SW03", capacity=50, valid_to=date(2023, 6, 30))
    build.licence(renewed, "SW03", capacity=60, valid_from=date(2023, 7, 1))
    build.batch(s1, renewed, "SW03", 65, 65, at=datetime(2023, 8, 1, tzinfo=UTC))
    session.commit()
    renewal = _flags(session, FlagKind.capacity_exceeded, enterprise=renewed)
    assert renewal.count == 1 and renewal.data[0].evidence["capacity_t"] == 60
    # The receiver's region sees it; the shippers' do not (the intake is the receiver's).
    assert _flags(session, FlagKind.capacity_exceeded, region=PZH_RENHE).count == 2
    assert _flags(session, FlagKind.capacity_exceeded, region="510600").count == 0


def test_unmatched_utilisation(session: Session) -> None:
    build = Builder(session)
    u = build.enterprise(PZH_RENHE)
    build.licence(u, "SW01")
    no_manifests, close, in_house = (build.enterprise(PZH_EAST) for _ in range(3))
    build.licence(in_house, "SW01")  # may utilise on site: no manifest needed
    flagged = build.declare(no_manifests, "SW01", 2023, generated_t=100, utilised_t=80)
    build.batch(no_manifests, u, "SW01", 40, 40)  # 40 of 80 on manifests: 40 t > max(10 t, 8 t)
    matched = build.declare(close, "SW01", 2023, generated_t=100, utilised_t=80)
    build.batch(close, u, "SW01", 75, 75)  # 5 t short: within 10 t
    own = build.declare(in_house, "SW01", 2023, generated_t=100, utilised_t=80)
    session.commit()
    page = _flags(session, FlagKind.unmatched_utilisation)
    assert _subjects(page) == {f"declaration/{flagged}"}
    assert f"declaration/{matched}" not in _subjects(page) and f"declaration/{own}" not in _subjects(page)
    flag = page.data[0]
    assert flag.evidence["manifest_utilised_t"] == pytest.approx(40) and flag.evidence["gap_t"] == pytest.approx(40)
    assert flag.evidence["gap_pct"] == pytest.approx(50)
    assert any("direction=sent" in link for link in flag.links)


# --- filters, pagination, scoping --------------------------------------------------------------------------------


def _mixed(session: Session) -> dict[str, int]:
    build = Builder(session)
    a, b, c = build.enterprise(PZH_EAST), build.enterprise(PZH_RENHE), build.enterprise(DY_JINGYANG)
    ids = {
        "a_break": build.declare(a, "SW01", 2023, generated_t=100, utilised_t=10),
        "c_break": build.declare(c, "SW01", 2023, generated_t=100, utilised_t=10),
        "c_break_2022": build.declare(c, "SW01", 2022, generated_t=100, utilised_t=10),
        "c_gap": build.batch(c, b, "SW02", 100, 90),
    }
    build.licence(b, "SW02")
    session.commit()
    return ids | {"a": a, "b": b, "c": c}


def test_filters_by_year_region_and_kind(session: Session) -> None:
    ids = _mixed(session)
    every = _flags(session)
    assert every.count == sum(every.counts.values()) == len(every.data)
    assert every.counts["balance_break"] == 3 and every.counts["weight_discrepancy"] == 1
    year = _flags(session, year=2022)
    assert _subjects(year) == {f"declaration/{ids['c_break_2022']}"} and {f.year for f in year.data} == {2022}
    pzh = _flags(session, FlagKind.balance_break, region=PZH)
    assert _subjects(pzh) == {f"declaration/{ids['a_break']}"}
    # A manifest is seen from both of its ends.
    assert _subjects(_flags(session, FlagKind.weight_discrepancy, region=PZH)) == {f"manifest/{ids['c_gap']}"}
    both = list_flags(session=session, principal=SYSTEM, kinds=["balance_break,weight_discrepancy"], limit=None)
    assert set(both.counts) == {"balance_break", "weight_discrepancy"} and both.count == 4
    with pytest.raises(InvalidInput) as exc:
        list_flags(session=session, principal=SYSTEM, kinds="balance_brake")
    assert exc.value.field == "kind"


def test_pages_cut_across_kinds(session: Session) -> None:
    build = Builder(session)
    e, r = build.enterprise(PZH_EAST), build.enterprise(PZH_RENHE)
    for n, code in enumerate(("SW01", "SW02", "SW03", "SW04")):
        build.declare(e, code, 2023, generated_t=100, stored_t=10 + n)  # 4 balance breaks, nothing utilised
    for _ in range(3):
        build.batch(e, r, "SW01", 100, 90)  # 3 weight gaps (and 3 unlicensed receipts)
    session.commit()
    whole = _flags(session)
    assert whole.count == 10 and len(whole.data) == 10
    keys = [(f.kind, f.subject) for f in whole.data]
    pieces: list[Flag] = []
    for offset in range(0, 12, 3):
        page = list_flags(session=session, principal=SYSTEM, offset=offset, limit=3)
        assert page.count == 10 and page.counts == whole.counts
        pieces.extend(page.data)
    assert [(f.kind, f.subject) for f in pieces] == keys
    assert list_flags(session=session, principal=SYSTEM, offset=50, limit=3).data == []
    with pytest.raises(InvalidInput):
        list_flags(session=session, principal=SYSTEM, limit=0)


def test_flags_are_scoped_by_principal(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    build = Builder(session)
    build.declare(w.e1, "SW02", 2023, generated_t=100, utilised_t=10)  # a balance break of E1
    build.declare(w.e3, "SW02", 2023, generated_t=100, utilised_t=10)  # and of E3
    session.commit()
    p = w.principals

    def enterprises(role: str, **kw: Any) -> set[int]:
        page = _flags(session, FlagKind.balance_break, principal=p[role], **kw)
        return {e for f in page.data for e in f.enterprise_ids}

    # The world's own declarations (generated 100, utilised 80, nothing else) break the balance too.
    assert enterprises("admin") == {w.e1, w.e3}
    assert enterprises("ent1") == {w.e1}
    assert enterprises("ent3") == {w.e3}
    assert enterprises("park_a") == {w.e1}
    assert enterprises("bureau_pzh") == {w.e1}
    assert enterprises("bureau_dy") == {w.e3}
    with pytest.raises(Forbidden):
        _flags(session, principal=p["bureau_dy"], region=PZH)
    with pytest.raises(Forbidden):
        _flags(session, principal=p["ent1"], region=PZH)
    with pytest.raises(NotFound):
        _flags(session, principal=p["park_a"], park=w.park_b)
    with pytest.raises(NotFound):
        _flags(session, principal=p["ent1"], enterprise=w.e3)


def test_api_flags(client: TestClient, session: Session) -> None:
    w = build_world(session)

    def get(role: str, **params: Any) -> Any:
        return client.get("/api/v1/flags", params=params, headers={"Authorization": f"Bearer {w.tokens[role]}"})

    page = get("bureau_sc", year=2023, kind="balance_break", limit=1)
    assert page.status_code == 200
    body = page.json()
    assert body["count"] == 2 and len(body["data"]) == 1 and body["counts"] == {"balance_break": 2}
    flag = body["data"][0]
    assert {"kind", "year", "enterprise_ids", "evidence", "links", "message", "subject"} <= set(flag)
    assert flag["links"][0].startswith("/api/v1/declarations/")
    assert client.get(flag["links"][0], headers={"Authorization": f"Bearer {w.tokens['bureau_sc']}"}).status_code == 200
    assert get("bureau_sc", year=2023, kind="balance_break", offset=1).json()["data"][0] != flag
    assert get("ent3", region=PZH).status_code == 403
    assert get("admin", kind="nope").status_code == 422
    assert get("admin", kind="balance_break", balance_rel=0.5).json()["count"] == 0  # 20 t off 100 is within 50%
