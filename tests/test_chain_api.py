"""Waste chains through the API: sources named on a forwarding, allocation back to the generators in the bottom-up
figure and the flags, refusals that name the lot, unlinked forwardings flagged, and a manifest's chain.

Every expected figure is worked out by hand from the tonnes the test sends.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from flows.access.accounts import system_principal
from flows.waste import flags, rates
from models import Declaration, Licence, ManifestDraw, ManifestShare, SummaryCounty, SummaryGenerator
from models.enums import EnterpriseRole, LicenceActivity
from tests.browser import serve
from tests.world import World, add_enterprise, build_world, t

SYSTEM = system_principal()
CAT = "SW04"  # coal gangue: no other row of the world uses it


@pytest.fixture
def chain_world(session: Session) -> tuple[World, int, int]:
    w = build_world(session)
    collector = add_enterprise(session, 10, 101.65, 26.57, EnterpriseRole.collector)
    plant = add_enterprise(session, 11, 101.66, 26.57, EnterpriseRole.collector)
    session.add(
        Licence(
            enterprise_id=w.e2,
            category_code=CAT,
            activity=LicenceActivity.utilisation,
            capacity_t=t(100_000),
            licence_no="L-U",
            valid_from=date(2020, 1, 1),
        )
    )
    for who, used in ((w.e1, 80), (w.e3, 40)):
        session.add(
            Declaration(enterprise_id=who, category_code=CAT, year=2024, generated_t=t(200), utilised_t=t(used))
        )
    session.commit()
    return w, collector, plant


def _admin(w: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens['admin']}"}


def _send(client: TestClient, w: World, shipper: int, receiver: int, tonnes: float, route: str, **extra: Any) -> Any:
    body = {
        "shipper_id": shipper,
        "receiver_id": receiver,
        "category_code": CAT,
        "route": route,
        "weight_dispatched_t": tonnes,
        "dispatched_at": "2024-06-01T08:00:00+08:00",
        **extra,
    }
    return client.post("/api/v1/manifests", json=body, headers=_admin(w))


def _arrive(client: TestClient, w: World, ident: int, tonnes: float) -> None:
    body = {"weight_received_t": tonnes, "received_at": "2024-06-02T08:00:00+08:00"}
    answer = client.post(f"/api/v1/manifests/{ident}/receive", json=body, headers=_admin(w))
    assert answer.status_code == 200, answer.text


def _moved(
    client: TestClient, w: World, shipper: int, receiver: int, tonnes: float, route: str, **extra: Any
) -> dict[str, Any]:
    made = _send(client, w, shipper, receiver, tonnes, route, **extra)
    assert made.status_code == 201, made.text
    _arrive(client, w, made.json()["id"], tonnes)
    body: dict[str, Any] = made.json()
    return body


def _by_enterprise(session: Session) -> dict[str, Decimal]:
    report = rates.utilisation(
        session=session, principal=SYSTEM, year=2024, region="510000", categories=[CAT], by="enterprise"
    )
    # The enterprises that shipped something that ended utilised (a declaring enterprise with none shows 0).
    return {
        row.key or "": Decimal(str(row.manifest_utilised_t)) for row in report.rows or [] if row.manifest_utilised_t
    }


def test_a_merge_through_a_collector_is_credited_to_the_generators(
    client: TestClient, session: Session, chain_world: tuple[World, int, int]
) -> None:
    """G1 sends 100 t and G2 50 t to a collector, which sends 120 t to a utiliser: 80 t and 40 t, pro rata."""
    w, collector, _ = chain_world
    g1 = _moved(client, w, w.e1, collector, 100, "transfer")
    g2 = _moved(client, w, w.e3, collector, 50, "transfer")
    on = _moved(
        client, w, collector, w.e2, 120, "cement_admixture", sources=[{"number": g1["number"]}, {"id": g2["id"]}]
    )
    session.expire_all()
    assert _by_enterprise(session) == {str(w.e1): 80, str(w.e3): 40}
    report = rates.utilisation(session=session, principal=SYSTEM, year=2024, region="510000", categories=[CAT])
    assert report.manifest_utilised_t == 120
    # Both generators declared what their manifests now show: no false unmatched utilisation.
    found = flags.list_flags(session=session, principal=SYSTEM, year=2024, kinds="unmatched_utilisation", limit=None)
    assert not [f for f in found.data if f.evidence.get("category") == CAT]

    chain = client.get(f"/api/v1/manifests/{on['id']}/chain", headers=_admin(w)).json()
    assert {(x["number"], x["tonnes"], x["placement"]) for x in chain["made_of"]} == {
        (g1["number"], 80, "final"),
        (g2["number"], 40, "final"),
    }
    assert {(x["number"], x["tonnes"], x["named"]) for x in chain["drew_from"]} == {
        (g1["number"], 80, True),
        (g2["number"], 40, True),
    }
    first = client.get(f"/api/v1/manifests/{g1['id']}/chain", headers=_admin(w)).json()
    assert (first["final_t"], first["held_t"], first["transit_t"]) == (80, 20, 0)
    assert [x["number"] for x in first["drawn_by"]] == [on["number"]]


def test_a_pre_treatment_hop_is_counted_once(
    client: TestClient, session: Session, chain_world: tuple[World, int, int]
) -> None:
    w, _, plant = chain_world
    lot = _moved(client, w, w.e1, plant, 80, "transfer")
    _moved(client, w, plant, w.e2, 80, "road_base", sources=[{"number": lot["number"]}])
    session.expire_all()
    assert _by_enterprise(session) == {str(w.e1): 80}


def test_tonnes_named_are_drawn_as_named_and_a_lot_cannot_be_overdrawn(
    client: TestClient, session: Session, chain_world: tuple[World, int, int]
) -> None:
    w, collector, _ = chain_world
    g1 = _moved(client, w, w.e1, collector, 60, "storage")
    g2 = _moved(client, w, w.e3, collector, 30, "storage")
    # 60 t and 30 t held, 45 t sent on without tonnes: 30 t and 15 t.
    on = _moved(client, w, collector, w.e2, 45, "cement_admixture", sources=[{"id": g1["id"]}, {"id": g2["id"]}])
    chain = client.get(f"/api/v1/manifests/{on['id']}/chain", headers=_admin(w)).json()
    assert {x["number"]: x["tonnes"] for x in chain["drew_from"]} == {g1["number"]: 30, g2["number"]: 15}
    # 30 t of g1's lot are left: 31 t cannot be drawn from it, and the refusal names the lot.
    refused = _send(
        client, w, collector, w.e2, 31, "cement_admixture", sources=[{"number": g1["number"], "weight_t": 31}]
    )
    assert refused.status_code == 422 and refused.json()["field"] == "sources"
    assert g1["number"] in refused.json()["detail"]
    assert refused.json()["code"] == "waste.chain.overdrawn"
    # A lot of another shipper, or a manifest that went to a final step, cannot be named either.
    elsewhere = _send(client, w, w.e3, w.e2, 5, "cement_admixture", sources=[{"id": g1["id"]}])
    assert elsewhere.status_code == 422 and elsewhere.json()["code"] == "waste.chain.no_source"
    final = _send(client, w, w.e2, collector, 5, "cement_admixture", sources=[{"id": on["id"]}])
    assert final.status_code == 422 and final.json()["code"] == "waste.chain.source_not_a_lot"


def test_a_forwarding_that_names_no_source_draws_on_what_is_held_and_is_flagged(
    client: TestClient, session: Session, chain_world: tuple[World, int, int]
) -> None:
    w, collector, _ = chain_world
    _moved(client, w, w.e1, collector, 100, "transfer")
    on = _moved(client, w, collector, w.e2, 70, "cement_admixture")
    session.expire_all()
    assert _by_enterprise(session) == {str(w.e1): 70}
    found = flags.list_flags(session=session, principal=SYSTEM, year=2024, kinds="unlinked_forwarding", limit=None)
    assert [f.subject for f in found.data] == [f"manifest/{on['id']}"]
    assert found.data[0].evidence["drawn_t"] == 70
    chain = client.get(f"/api/v1/manifests/{on['id']}/chain", headers=_admin(w)).json()
    assert [x["named"] for x in chain["drew_from"]] == [False]


def test_a_lot_cannot_be_corrected_below_what_was_drawn_from_it(
    client: TestClient, session: Session, chain_world: tuple[World, int, int]
) -> None:
    w, collector, _ = chain_world
    lot = _moved(client, w, w.e1, collector, 100, "transfer")
    _moved(client, w, collector, w.e2, 90, "cement_admixture", sources=[{"id": lot["id"]}])
    body = {"changes": {"weight_received_t": 80}, "reason": "re-weighed"}
    refused = client.post(f"/api/v1/manifests/{lot['id']}/correct", json=body, headers=_admin(w))
    assert refused.status_code == 422 and refused.json()["code"] == "waste.chain.below_drawn"
    body = {"changes": {"weight_received_t": 95}, "reason": "re-weighed"}
    assert client.post(f"/api/v1/manifests/{lot['id']}/correct", json=body, headers=_admin(w)).status_code == 200
    first = client.get(f"/api/v1/manifests/{lot['id']}/chain", headers=_admin(w)).json()
    assert (first["final_t"], first["held_t"]) == (90, 5)


def test_the_handover_is_recorded_and_sealed_at_dispatch(
    client: TestClient, session: Session, chain_world: tuple[World, int, int]
) -> None:
    w, collector, _ = chain_world
    extra = {"vehicle_plate": "川D12345", "transport_mode": "road", "packaging": "bulk", "weighing": "estimated"}
    made = _send(client, w, w.e1, collector, 12, "transfer", **extra)
    assert made.status_code == 201, made.text
    got = made.json()
    assert {k: got[k] for k in extra} == extra
    assert {"vehicle_plate", "transport_mode", "packaging", "weighing"} <= set(got["sealed"])
    bad = _send(client, w, w.e1, collector, 12, "transfer", transport_mode="airship")
    assert bad.status_code == 422 and bad.json()["field"] == "transport_mode"


def test_two_forwardings_racing_for_one_lot_leave_one_winner(
    settings: Settings, session: Session, chain_world: tuple[World, int, int]
) -> None:
    """100 t held; six requests for 60 t each, released together: one draws, five are refused naming the lot."""
    w, collector, _ = chain_world
    with serve(settings) as url, httpx.Client(timeout=120) as client:
        body = {
            "shipper_id": w.e1,
            "receiver_id": collector,
            "category_code": CAT,
            "route": "transfer",
            "weight_dispatched_t": 100,
            "dispatched_at": "2024-06-01T08:00:00+08:00",
        }
        lot = client.post(f"{url}/api/v1/manifests", json=body, headers=_admin(w)).json()
        received = {"weight_received_t": 100, "received_at": "2024-06-02T08:00:00+08:00"}
        client.post(f"{url}/api/v1/manifests/{lot['id']}/receive", json=received, headers=_admin(w))
        onward = {**body, "shipper_id": collector, "receiver_id": w.e2, "route": "cement_admixture"}
        onward |= {"weight_dispatched_t": 60, "sources": [{"id": lot["id"]}]}
        barrier = threading.Barrier(6)

        def race(_: int) -> httpx.Response:
            with httpx.Client(timeout=120) as own:
                barrier.wait()
                return own.post(f"{url}/api/v1/manifests", json=onward, headers=_admin(w))

        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(race, range(6)))
    assert Counter(a.status_code for a in answers) == Counter({201: 1, 422: 5}), [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 422} == {"waste.chain.overdrawn"}
    session.expire_all()
    drawn = session.exec(select(ManifestDraw).where(ManifestDraw.source_id == lot["id"])).all()
    assert [(d.kg, d.named) for d in drawn] == [(60_000, True)]


def test_the_command_line_recomputes_every_chain(
    client: TestClient, session: Session, chain_world: tuple[World, int, int], cli_env: dict[str, str]
) -> None:
    w, collector, _ = chain_world
    lot = _moved(client, w, w.e1, collector, 100, "transfer")
    _moved(client, w, collector, w.e2, 90, "cement_admixture", sources=[{"id": lot["id"]}])
    before = _by_enterprise(session)
    # As a database from before the shares and the summaries were kept: neither is there.
    for table in (ManifestShare, SummaryGenerator, SummaryCounty):
        session.execute(delete(table))
    session.commit()
    assert _by_enterprise(session) == {}
    result = CliRunner().invoke(cli, ["chains", "reallocate"])
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert _by_enterprise(session) == before == {str(w.e1): 90}


@pytest.mark.parametrize("seed", [1, 2])
def test_kept_on_write_equals_recomputed_at_once(
    client: TestClient, session: Session, chain_world: tuple[World, int, int], seed: int
) -> None:
    """Shares and draws kept chain by chain on every write are the ones a recomputation of everything at once gives,
    with named, pro rata and unlinked forwardings through one and two intermediaries."""
    import random

    from flows.waste import chains

    w, collector, plant = chain_world
    rng = random.Random(seed)
    lots: dict[int, list[dict[str, Any]]] = {collector: [], plant: []}
    for _ in range(24):
        holder = rng.choice([collector, plant])
        if not lots[holder] or rng.random() < 0.45:
            made = _moved(client, w, rng.choice([w.e1, w.e3]), holder, rng.randint(5, 60), "transfer")
            lots[holder].append(made)
            continue
        onward = holder == collector and rng.random() < 0.4
        to, route = (plant, "transfer") if onward else (w.e2, "cement_admixture")
        picked = rng.sample(lots[holder], k=min(len(lots[holder]), rng.randint(1, 2)))
        kind = rng.random()
        extra: dict[str, Any] = {}
        if kind < 0.5:
            extra["sources"] = [{"id": lot["id"]} for lot in picked]
        elif kind < 0.8:
            extra["sources"] = [{"id": lot["id"], "weight_t": rng.randint(1, 5)} for lot in picked]
        tonnes = rng.randint(2, 20)  # kind >= 0.8: names no lot, drawn from what the holder has
        made = _send(client, w, holder, to, tonnes, route, **extra)
        if made.status_code == 422:
            continue  # drawn beyond what a lot received: refused, as it should be
        assert made.status_code == 201, made.text
        _arrive(client, w, made.json()["id"], tonnes)
        if onward:
            lots[plant].append(made.json())

    def snapshot() -> tuple[list[Any], list[Any]]:
        session.expire_all()
        shares = sorted(
            (s.manifest_id, s.origin_id, s.placement, s.kg, s.origin_shipper_id, s.origin_year)
            for s in session.exec(select(ManifestShare)).all()
        )
        draws = sorted((d.manifest_id, d.source_id, d.kg, d.named) for d in session.exec(select(ManifestDraw)).all())
        return shares, draws

    kept = snapshot()
    # The walk drew both ways: lots it named, and lots drawn for a forwarding that named none.
    assert {named for *_, named in kept[1]} == {True, False}
    chains.reallocate_all(session)
    session.commit()
    assert snapshot() == kept


def test_forwardings_of_one_intermediary_racing_each_other_never_fail(
    settings: Settings, session: Session, chain_world: tuple[World, int, int]
) -> None:
    """Two lots of 100 t held; fired together: two forwardings of 60 t naming each lot, and two naming none. One per
    lot draws, the other is refused naming it, both unnamed ones go through; no request meets a database error, and
    what was kept on write is what a recomputation gives."""
    from flows.waste import chains

    w, collector, _ = chain_world
    with serve(settings) as url, httpx.Client(timeout=120) as client:
        base = {
            "category_code": CAT,
            "dispatched_at": "2024-06-01T08:00:00+08:00",
        }
        lots = []
        for _ in range(2):
            body = {
                **base,
                "shipper_id": w.e1,
                "receiver_id": collector,
                "route": "transfer",
                "weight_dispatched_t": 100,
            }
            lot = client.post(f"{url}/api/v1/manifests", json=body, headers=_admin(w)).json()
            received = {"weight_received_t": 100, "received_at": "2024-06-02T08:00:00+08:00"}
            client.post(f"{url}/api/v1/manifests/{lot['id']}/receive", json=received, headers=_admin(w))
            lots.append(lot["id"])
        onward = {**base, "shipper_id": collector, "receiver_id": w.e2, "route": "cement_admixture"}
        bodies = [{**onward, "weight_dispatched_t": 60, "sources": [{"id": lot}]} for lot in lots for _ in range(2)]
        bodies += [{**onward, "weight_dispatched_t": 10}] * 2
        barrier = threading.Barrier(len(bodies))

        def race(body: dict[str, Any]) -> httpx.Response:
            with httpx.Client(timeout=120) as own:
                barrier.wait()
                return own.post(f"{url}/api/v1/manifests", json=body, headers=_admin(w))

        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            answers = list(pool.map(race, bodies))
    codes = [a.status_code for a in answers]
    assert codes[:4].count(201) == 2 and codes[:4].count(422) == 2 and codes[4:] == [201, 201], [
        a.text for a in answers
    ]
    assert {answers[i].json()["code"] for i in range(4) if codes[i] == 422} == {"waste.chain.overdrawn"}
    session.expire_all()
    kept = sorted((s.manifest_id, s.origin_id, s.placement, s.kg) for s in session.exec(select(ManifestShare)).all())
    chains.reallocate_all(session)
    session.commit()
    session.expire_all()
    again = sorted((s.manifest_id, s.origin_id, s.placement, s.kg) for s in session.exec(select(ManifestShare)).all())
    assert again == kept


def test_a_draft_takes_new_handover_fields_and_sources_until_dispatch(
    client: TestClient, session: Session, chain_world: tuple[World, int, int]
) -> None:
    w, collector, _ = chain_world
    first = _moved(client, w, w.e1, collector, 40, "transfer")
    second = _moved(client, w, w.e3, collector, 20, "transfer")
    body = {
        "shipper_id": collector,
        "receiver_id": w.e2,
        "category_code": CAT,
        "route": "cement_admixture",
        "weight_dispatched_t": 30,
        "vehicle_plate": "川A12345",
        "sources": [{"id": first["id"]}],
    }
    draft = client.post("/api/v1/manifests", json=body, headers=_admin(w))
    assert draft.status_code == 201, draft.text
    ident = draft.json()["id"]
    changes = {"transport_mode": "rail", "sources": [{"id": first["id"], "weight_t": 20}, {"id": second["id"]}]}
    patched = client.patch(f"/api/v1/manifests/{ident}", json=changes, headers=_admin(w))
    assert patched.status_code == 200, patched.text
    # Fields not given keep their values; given ones are taken.
    assert (patched.json()["vehicle_plate"], patched.json()["transport_mode"]) == ("川A12345", "rail")
    too_much = client.patch(
        f"/api/v1/manifests/{ident}", json={"sources": [{"id": second["id"], "weight_t": 25}]}, headers=_admin(w)
    )
    assert too_much.status_code == 422 and too_much.json()["code"] == "waste.chain.overdrawn"
    sent = client.post(f"/api/v1/manifests/{ident}/dispatch", json={}, headers=_admin(w))
    assert sent.status_code == 200, sent.text
    session.expire_all()
    drawn = sorted(
        (d.source_id, d.kg) for d in session.exec(select(ManifestDraw).where(ManifestDraw.manifest_id == ident))
    )
    # 20 t named from the first lot, the other 10 t from the second (the only one left to pro rata).
    assert drawn == sorted([(first["id"], 20_000), (second["id"], 10_000)])
    sealed = client.patch(f"/api/v1/manifests/{ident}", json={"vehicle_plate": "川A00000"}, headers=_admin(w))
    assert sealed.status_code == 409
