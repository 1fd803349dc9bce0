"""Summaries kept on write: after every kind of write they equal the base rows (the check finds no difference), the
check finds a tampered row, concurrent receipts add up, and the rates read from them equal the base-row figures."""

from __future__ import annotations

import csv
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.cli import cli
from flows.access.accounts import system_principal
from flows.access.scope import readable_enterprise_ids, region_clause, resolve_scope
from flows.demo.load import load_demo
from flows.kernel.principal import Principal
from flows.kernel.uscc import make_uscc
from flows.pages.sankey import SankeyTotals, sankey
from flows.waste import manifests, rates, summaries
from flows.waste.imports import import_enterprises, import_manifests
from models import Enterprise, Manifest, SummaryCounty, SummaryGenerator, SummaryPath
from models.enums import Channel, ManifestStatus, Route, UserRole
from tests.test_chain_api import _admin
from tests.test_chain_api import _arrive as _arrive
from tests.test_chain_api import _send as send
from tests.test_chain_api import chain_world as chain_world
from tests.world import NOW, World, t

SYSTEM = system_principal()


def kg_t(kg: int) -> Decimal:
    """Kilograms as tonnes, exactly."""
    return Decimal(kg) / 1000


CAT = "SW04"
# A point in Deyang (510600), far from E1's county in Panzhihua.
DEYANG = (104.39, 31.13)


@pytest.fixture
def kept(chain_world: tuple[World, int, int]) -> tuple[World, int]:
    w, collector, _ = chain_world
    return w, collector


def _clean(session: Session) -> None:
    session.expire_all()
    assert summaries.check(session) == []


def _send(client: TestClient, w: World, shipper: int, receiver: int, tonnes: float, route: str, **extra: Any) -> int:
    made = send(client, w, shipper, receiver, tonnes, route, **extra)
    assert made.status_code == 201, made.text
    ident: int = made.json()["id"]
    return ident


def _correct(client: TestClient, w: World, ident: int, **changes: Any) -> None:
    body = {"changes": changes, "reason": "re-weighed"}
    answer = client.post(f"/api/v1/manifests/{ident}/correct", json=body, headers=_admin(w))
    assert answer.status_code == 200, answer.text


def _utilised(session: Session, generator: int, category: str = CAT) -> int:
    """Kilograms the generator's summary rows count toward the rate in 2024."""
    session.expire_all()
    rows = session.exec(
        select(SummaryGenerator).where(
            SummaryGenerator.generator_id == generator,
            SummaryGenerator.category_code == category,
            SummaryGenerator.year == 2024,
        )
    ).all()
    return sum(r.utilised_kg for r in rows)


def _licence(client: TestClient, w: World, session: Session, **fields: Any) -> dict[str, Any]:
    uscc = session.exec(select(Enterprise.uscc).where(Enterprise.id == w.e2)).one()
    body = {
        "uscc": uscc,
        "activity": "utilisation",
        "category": CAT,
        "valid_from": "2020-01-01",
        "valid_to": None,
        "capacity_t": "100000",
        "number": "L-U",
        **fields,
    }
    answer = client.post("/api/v1/licences", json=body, headers=_admin(w))
    assert answer.status_code in (200, 201), answer.text
    made: dict[str, Any] = answer.json()
    return made


def test_every_kind_of_write_keeps_the_summaries_equal_to_the_base_rows(
    client: TestClient, session: Session, kept: tuple[World, int]
) -> None:
    w, collector = kept
    _clean(session)
    # Created, dispatched and received: 10 t utilised, credited to E1.
    direct = _send(client, w, w.e1, w.e2, 10, "cement_admixture")
    _clean(session)
    _arrive(client, w, direct, 10)
    _clean(session)
    assert _utilised(session, w.e1) == 10_000
    # Refused whole: nothing counts.
    refused = _send(client, w, w.e1, w.e2, 4, "cement_admixture")
    answer = client.post(
        f"/api/v1/manifests/{refused}/reject",
        json={"rejection_reason": "wet", "received_at": "2024-06-02T08:00:00+08:00", "reason": "wet"},
        headers=_admin(w),
    )
    assert answer.status_code == 200, answer.text
    _clean(session)
    # Corrections: weight, route away from utilisation and back, category (to one E2 holds no licence for).
    _correct(client, w, direct, weight_received_t=9.5)
    _clean(session)
    assert _utilised(session, w.e1) == 9_500
    _correct(client, w, direct, route="disposal")
    _clean(session)
    assert _utilised(session, w.e1) == 0
    _correct(client, w, direct, route="road_base")
    _clean(session)
    _correct(client, w, direct, category_code="SW06")
    _clean(session)
    assert (_utilised(session, w.e1), _utilised(session, w.e1, "SW06")) == (0, 0)
    _correct(client, w, direct, category_code=CAT)
    _clean(session)
    assert _utilised(session, w.e1) == 9_500
    # The licence ended the day before the receipt, then a new one from that day: it stops counting, then counts.
    current = _licence(client, w, session)
    _licence(client, w, session, valid_to="2024-06-01", licence_id=current["id"], revision=current["revision"])
    _clean(session)
    assert _utilised(session, w.e1) == 0
    _licence(client, w, session, valid_from="2024-06-02", number="L-U2")
    _clean(session)
    assert _utilised(session, w.e1) == 9_500
    # Through a collector: a forwarding naming its lot, and one naming none.
    lot = _send(client, w, w.e3, collector, 20, "transfer")
    _arrive(client, w, lot, 20)
    _clean(session)
    onward = _send(client, w, collector, w.e2, 8, "building_materials", sources=[{"id": lot, "weight_t": 8}])
    _arrive(client, w, onward, 8)
    _clean(session)
    unnamed = _send(client, w, collector, w.e2, 5, "building_materials")
    _arrive(client, w, unnamed, 5)
    _clean(session)
    assert _utilised(session, w.e3) == 13_000
    # E3's lot corrected upwards: the chain is reallocated, the summaries follow.
    _correct(client, w, lot, weight_received_t=19)
    _clean(session)


def test_a_relocation_moves_the_county_figure(
    client: TestClient, session: Session, kept: tuple[World, int], tmp_path: Path
) -> None:
    w, _ = kept
    direct = _send(client, w, w.e1, w.e2, 10, "cement_admixture")
    _arrive(client, w, direct, 10)
    cells = session.exec(select(SummaryCounty).where(SummaryCounty.category_code == CAT)).all()
    assert [(c.prefecture_adcode, c.utilised_kg) for c in cells] == [("510400", 10_000)]
    body = {"version": 1, "lon": DEYANG[0], "lat": DEYANG[1]}
    answer = client.patch(f"/api/v1/enterprises/{w.e1}", json=body, headers=_admin(w))
    assert answer.status_code == 200, answer.text
    _clean(session)
    cells = session.exec(select(SummaryCounty).where(SummaryCounty.category_code == CAT)).all()
    assert {c.prefecture_adcode: c.utilised_kg for c in cells} == {"510400": 0, "510600": 10_000}
    deyang = rates.utilisation(session=session, principal=SYSTEM, year=2024, region="510600", categories=[CAT])
    assert deyang.manifest_utilised_t == 10
    # Moved back by an enterprise import (a bulk update, not a page edit): the figure follows again.
    path = tmp_path / "enterprises.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(
            [
                ["uscc", "name", "roles", "lon", "lat"],
                [make_uscc("91510000MA000001"), "测试企业1", "generator", 101.72, 26.58],
            ]
        )
    import_enterprises(session=session, principal=system_principal(Channel.import_), source=path, now=NOW)
    session.commit()
    _clean(session)
    cells = session.exec(select(SummaryCounty).where(SummaryCounty.category_code == CAT)).all()
    assert {c.prefecture_adcode: c.utilised_kg for c in cells} == {"510400": 10_000, "510600": 0}


def test_an_import_and_the_reallocation_keep_them(
    client: TestClient, session: Session, kept: tuple[World, int], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    w, collector = kept
    uscc = {n: make_uscc(f"91510000MA000{n:03d}") for n in (1, 2, 3, 10)}
    header = ["number", "shipper_uscc", "receiver_uscc", "category", "route", "weight_dispatched_t"]
    header += ["dispatched_at", "weight_received_t", "received_at", "sources"]
    rows = [
        ["A-1", uscc[1], uscc[10], CAT, "transfer", "30", "2024-06-01 08:00", "30", "2024-06-02 08:00", ""],
        ["A-2", uscc[3], uscc[2], CAT, "road_base", "7", "2024-06-01 08:00", "7", "2024-06-02 08:00", ""],
        ["A-3", uscc[10], uscc[2], CAT, "road_base", "12", "2024-06-03 08:00", "12", "2024-06-04 08:00", "A-1"],
    ]
    path = tmp_path / "manifests.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *rows])
    import_manifests(session=session, principal=system_principal(Channel.import_), source=path, now=NOW)
    session.commit()
    _clean(session)
    assert (_utilised(session, w.e1), _utilised(session, w.e3)) == (12_000, 7_000)
    result = CliRunner().invoke(cli, ["chains", "reallocate"])
    assert result.exit_code == 0, result.output
    _clean(session)
    assert (_utilised(session, w.e1), _utilised(session, w.e3)) == (12_000, 7_000)
    assert collector


def test_the_check_names_a_tampered_row_and_the_rebuild_mends_it(
    client: TestClient, session: Session, kept: tuple[World, int], cli_env: dict[str, str]
) -> None:
    w, _ = kept
    direct = _send(client, w, w.e1, w.e2, 10, "cement_admixture")
    _arrive(client, w, direct, 10)
    assert CliRunner().invoke(cli, ["summaries", "check"]).exit_code == 0
    g = SummaryGenerator
    session.execute(
        update(g).where(col(g.generator_id) == w.e1, col(g.category_code) == CAT).values(utilised_kg=g.utilised_kg + 1)
    )
    session.commit()
    found = summaries.check(session)
    assert [(d.table, d.key, d.summary, d.base) for d in found] == [
        ("summary_generator", (2024, w.e1, CAT, "cement_admixture"), (10_001, 10_000), (10_000, 10_000))
    ]
    result = CliRunner().invoke(cli, ["summaries", "check", "--json"])
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["ok"] is False and body["differences"][0]["summary"]["utilised_kg"] == 10_001
    rebuilt = CliRunner().invoke(cli, ["summaries", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert CliRunner().invoke(cli, ["summaries", "check"]).exit_code == 0
    # A county row out of step is found too.
    county = SummaryCounty
    session.execute(update(county).where(col(county.category_code) == CAT).values(final_kg=county.final_kg - 1))
    session.commit()
    assert [d.table for d in summaries.check(session)] == ["summary_county"]
    CliRunner().invoke(cli, ["summaries", "rebuild"])
    # A path out of step is found.
    path = SummaryPath
    mine = (col(path.generator_id) == w.e1, col(path.category_code) == CAT)
    session.execute(update(path).where(*mine).values(origins=path.origins + 1))
    session.commit()
    found = summaries.check(session)
    assert [(d.table, d.summary, d.base) for d in found] == [("summary_path", (10_000, 10_000, 2), (10_000, 10_000, 1))]
    assert found[0].as_json()["summary"] == {"kg": 10_000, "utilised_kg": 10_000, "origins": 2}
    # A share whose copy of its manifest's receiver was altered: the next write of its chain takes back under the
    # wrong path, which the check finds; the rebuild takes the copies from the manifests again.
    CliRunner().invoke(cli, ["summaries", "rebuild"])
    session.execute(update(rates.SHARES).where(rates.SHARES.c.manifest_id == direct).values(receiver_id=w.e3))
    session.commit()
    _correct(client, w, direct, weight_received_t=9)
    session.expire_all()
    assert {d.table for d in summaries.check(session)} == {"summary_path"}
    CliRunner().invoke(cli, ["summaries", "rebuild"])
    assert CliRunner().invoke(cli, ["summaries", "check"]).exit_code == 0


def test_concurrent_receipts_of_one_generator_add_up(engine: Engine, session: Session, kept: tuple[World, int]) -> None:
    w, _ = kept
    ids = []
    for n in range(6):
        batch = Manifest(
            number=f"C-{n}",
            shipper_id=w.e1,
            receiver_id=w.e2,
            category_code=CAT,
            route=Route.cement_admixture,
            year=2024,
            status=ManifestStatus.dispatched,
            weight_dispatched_t=t(n + 1),
            dispatched_at=datetime(2024, 6, 1, tzinfo=UTC),
            created_at=datetime(2024, 6, 1, tzinfo=UTC),
        )
        session.add(batch)
        session.flush()
        ids.append(batch.id or 0)
    session.commit()
    barrier = threading.Barrier(len(ids))
    admin = w.principals["admin"]

    def receive(ident: int) -> None:
        with Session(engine) as own:
            barrier.wait()
            manifests.receive(
                session=own,
                principal=admin,
                batch_id=ident,
                weights={"weight_received_t": t(ident % 7 + 1)},
                at=datetime(2024, 6, 2, tzinfo=UTC),
                now=NOW,
            )
            own.commit()

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        list(pool.map(receive, ids))
    _clean(session)
    assert _utilised(session, w.e1) == sum((i % 7 + 1) * 1000 for i in ids)


def test_the_rates_from_the_summaries_equal_the_base_rows_on_the_demo(session: Session) -> None:
    load_demo(session=session, seed=2024)
    session.commit()
    assert summaries.check(session) == []
    year = 2024
    codes = [c for (c,) in session.execute(select(SummaryGenerator.category_code).distinct())]
    parks = [p for (p,) in session.execute(select(Enterprise.park_id).where(col(Enterprise.park_id).is_not(None)))]
    wide = [
        (resolve_scope(session=session, principal=SYSTEM, region="510000"), ["category", "region", "park"]),
        (resolve_scope(session=session, principal=SYSTEM, region="510100"), ["region", "enterprise"]),
        (resolve_scope(session=session, principal=SYSTEM, park=parks[0]), ["category", "enterprise"]),
    ]
    # The province and the prefecture read the region-cell summary, the park the generator summary.
    assert [rates._county_columns(scope.condition, []) is not None for scope, _ in wide] == [True, True, False]
    compared = 0
    for scope, kinds in wide:
        for kind in (None, *kinds):
            group = [] if kind is None else [rates.breakdown(session, scope, rates.RateBy(kind), codes).manifested]
            args = (session, scope.condition, codes, (year, year), group)
            kept = rates.manifested_sums(*args, narrow=scope.narrow)
            base = rates.manifested_sums(*args, narrow=scope.narrow, base=True)
            assert kept == base, (scope.ref, kind)
            compared += len(base)
    assert compared > 50  # the demo has data in every scope above


def _sankey_from_base(session: Session, principal: Principal, year: int, region: str | None) -> dict[str, Any]:
    """The Sankey's paths and totals recomputed in Python from manifest_share, the manifests and the enterprises."""
    share, first = rates.SHARES.c, aliased(Manifest, name="first_m")
    query = (
        select(  # type: ignore[call-overload]
            share.origin_id,
            share.manifest_id,
            share.placement,
            share.kg,
            share.category_code,
            col(first.shipper_id),
            col(first.receiver_id),
            col(first.route),
            col(Manifest.shipper_id),
            col(Manifest.receiver_id),
            col(Manifest.route),
            rates.manifest_utilised(),
        )
        .select_from(rates.SHARES)
        .join(Manifest, col(Manifest.id) == share.manifest_id)
        .join(first, col(first.id) == share.origin_id)
        .where(share.origin_year == year, share.placement.in_(["final", "held"]))
    )
    place = {i: p or "" for i, p in session.execute(select(Enterprise.id, Enterprise.prefecture_adcode))}
    visible = None
    if principal.role is not UserRole.admin:
        visible = set(session.execute(readable_enterprise_ids(principal)).scalars())
    inside = set(session.execute(select(Enterprise.id).where(region_clause(region))).scalars()) if region else None
    by: dict[str, dict[tuple[Any, ...], list[Any]]] = {"route": {}, "place": {}}
    total: dict[str, Any] = {"final": 0, "utilised": 0, "held": 0, "via": 0, "batches": set()}
    for row in session.execute(query):
        origin, manifest, placement, kg, category, gen, first_to, first_route, sender, receiver, route, utilised = row
        parties = {gen, first_to, sender, receiver}
        if (visible is not None and not parties & visible) or (inside is not None and not parties & inside):
            continue
        held = placement == "held"
        straight = not held and origin == manifest
        first_route, route = str(getattr(first_route, "value", first_route)), str(getattr(route, "value", route))
        used = kg if placement == "final" and utilised else 0
        # A first manifest counts once on each path of the summary: its parties, routes and placement.
        on = (origin, placement, origin == manifest, gen, first_to, sender, receiver, first_route, route)
        keys = {
            "route": (category, None if straight else first_route, None if held else route),
            "place": (
                place[gen],
                None if straight else place[receiver if held else sender],
                None if held else place[receiver],
            ),
        }
        for which, key in keys.items():
            figures = by[which].setdefault(key, [0, 0, set()])
            figures[0] += kg
            figures[1] += used
            figures[2].add(on)
        total["held" if held else "final"] += kg
        total["utilised"] += used
        total["via"] += 0 if straight else kg
        total["batches"].add(on)
    return {"by": by, "total": total}


def test_the_sankey_from_its_summary_equals_the_base_rows_on_the_demo(session: Session) -> None:
    load_demo(session=session, seed=2024)
    session.commit()
    assert summaries.check(session) == []
    year = 2024
    park = session.execute(select(Enterprise.park_id).where(col(Enterprise.park_id).is_not(None))).scalars().first()
    holder = session.execute(select(SummaryPath.receiver_id).where(SummaryPath.placement == "held")).scalars().first()
    assert park is not None and holder is not None  # the demo has parks and tonnes held at an intermediary
    seen = [
        (SYSTEM, None),
        (SYSTEM, "510100"),
        (Principal(user_id=None, username="b", role=UserRole.bureau, scope_adcode="510300"), None),
        (Principal(user_id=None, username="p", role=UserRole.park_manager, park_id=park), None),
        (Principal(user_id=None, username="e", role=UserRole.enterprise, enterprise_id=holder), None),
    ]
    stages = set()
    for principal, region in seen:
        data = sankey(session=session, principal=principal, year=year, region=region)
        base = _sankey_from_base(session, principal, year, data.filter.region)
        for which, drawn in (("route", data.by_route), ("place", data.by_place)):
            mine = {(p.origin, p.via, p.end): (p.tonnes, p.utilised_t, p.batches) for p in drawn}
            theirs = {key: (kg_t(kg), kg_t(used), len(on)) for key, (kg, used, on) in base["by"][which].items()}
            assert mine == theirs, (principal.role, region, which)
            stages |= {("straight" if p.via is None else "held" if p.end is None else "via") for p in drawn}
        total = base["total"]
        assert data.total == SankeyTotals(
            kg_t(total["final"]),
            kg_t(total["utilised"]),
            kg_t(total["held"]),
            kg_t(total["via"]),
            len(total["batches"]),
        )
    assert stages == {"straight", "via", "held"}
