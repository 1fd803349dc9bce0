"""The flow map, the Sankey and the audit on allocated tonnes: hops drawn as moved, utilisation counted once.

The world: G1 100 t and G2 50 t to a collector, which sends 120 t to a utiliser; G1 80 t to a pre-treatment plant
that forwards 80 t; a diamond (G1 40 t to the collector, which sends 25 t to the plant and 15 t to a store, both of
which send on to the utiliser, the store keeping 5 t); and G2 10 t straight to the utiliser. Every expected figure is
recomputed from the manifests the test stored, or worked out from that arithmetic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from flows.access.accounts import system_principal
from flows.pages import audit
from flows.pages.sankey import sankey
from flows.waste import rates
from models import Licence, Manifest, ManifestSource
from models.enums import EnterpriseRole, LicenceActivity
from tests.world import World, add_enterprise, build_world, t

CAT = "SW04"  # coal gangue: no other row of the world uses it, and it is in Sichuan's default set
YEAR = 2024
SYSTEM = system_principal()
LOTS = ("storage", "transfer")


@dataclass
class Chains:
    w: World
    collector: int
    plant: int
    store: int
    ids: dict[str, int]  # manifest ids by name


def _admin(w: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens['admin']}"}


def _moved(
    client: TestClient,
    w: World,
    shipper: int,
    receiver: int,
    tonnes: float,
    route: str,
    sources: tuple[int, ...] = (),
) -> int:
    body = {
        "shipper_id": shipper,
        "receiver_id": receiver,
        "category_code": CAT,
        "route": route,
        "weight_dispatched_t": tonnes,
        "dispatched_at": "2024-06-01T08:00:00+08:00",
        "sources": [{"id": s} for s in sources],
    }
    made = client.post("/api/v1/manifests", json=body, headers=_admin(w))
    assert made.status_code == 201, made.text
    ident = int(made.json()["id"])
    arrived = {"weight_received_t": tonnes, "received_at": "2024-06-02T08:00:00+08:00"}
    answer = client.post(f"/api/v1/manifests/{ident}/receive", json=arrived, headers=_admin(w))
    assert answer.status_code == 200, answer.text
    return ident


@pytest.fixture
def chains(client: TestClient, session: Session) -> Chains:
    w = build_world(session)
    collector = add_enterprise(session, 10, 101.65, 26.57, EnterpriseRole.collector)
    plant = add_enterprise(session, 11, 101.66, 26.57, EnterpriseRole.collector)
    store = add_enterprise(session, 12, 101.64, 26.57, EnterpriseRole.collector)
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
    session.commit()
    g1, g2, u = w.e1, w.e3, w.e2
    ids: dict[str, int] = {}
    # The merge: 150 t in, 120 t on, 30 t held at the collector.
    ids["g1_c"] = _moved(client, w, g1, collector, 100, "transfer")
    ids["g2_c"] = _moved(client, w, g2, collector, 50, "transfer")
    ids["c_u"] = _moved(client, w, collector, u, 120, "cement_admixture", (ids["g1_c"], ids["g2_c"]))
    # Pre-treatment: 80 t in, 80 t on.
    ids["g1_p"] = _moved(client, w, g1, plant, 80, "transfer")
    ids["p_u"] = _moved(client, w, plant, u, 80, "cement_admixture", (ids["g1_p"],))
    # The diamond: one lot split over two intermediaries, both ending at the utiliser; the store keeps 5 t.
    ids["g1_c2"] = _moved(client, w, g1, collector, 40, "transfer")
    ids["c_p"] = _moved(client, w, collector, plant, 25, "transfer", (ids["g1_c2"],))
    ids["c_b"] = _moved(client, w, collector, store, 15, "storage", (ids["g1_c2"],))
    ids["p_u2"] = _moved(client, w, plant, u, 25, "cement_admixture", (ids["c_p"],))
    ids["b_u"] = _moved(client, w, store, u, 10, "cement_admixture", (ids["c_b"],))
    # Straight from a generator.
    ids["g2_u"] = _moved(client, w, g2, u, 10, "cement_admixture")
    session.expire_all()
    return Chains(w, collector, plant, store, ids)


# ---------------------------------------------------------------------------------------------------------------
# Figures recomputed from the stored manifests, independently of the code under test


def _manifests(session: Session) -> list[Manifest]:
    return list(session.exec(select(Manifest).where(col(Manifest.category_code) == CAT)).all())


def _is_lot(m: Manifest) -> bool:
    return str(m.route) in LOTS


def _expected(session: Session) -> dict[str, Decimal]:
    """Moved, utilised (final received: no losses in this world), forwarded (what forwardings carried) and held."""
    rows = _manifests(session)
    moved = sum((m.weight_received_t or Decimal(0) for m in rows), Decimal(0))
    final = sum((m.weight_received_t or Decimal(0) for m in rows if not _is_lot(m)), Decimal(0))
    forwarded = sum((m.weight_dispatched_t for m in rows if m.id in _forwardings(session)), Decimal(0))
    lots = sum((m.weight_received_t or Decimal(0) for m in rows if _is_lot(m)), Decimal(0))
    return {"moved": moved, "final": final, "forwarded": forwarded, "held": lots - forwarded}


def _forwardings(session: Session) -> set[int]:
    return {int(s) for s in session.exec(select(ManifestSource.manifest_id)).all()}


def test_the_worked_arithmetic_is_what_the_rows_say(chains: Chains, session: Session) -> None:
    """The example's own sums, so that the figures below are checked against arithmetic and not only the code."""
    e = _expected(session)
    assert e == {"moved": t(555), "final": t(245), "forwarded": t(275), "held": t(35)}


# ---------------------------------------------------------------------------------------------------------------
# The map


def _layer(client: TestClient, w: World, url: str, role: str = "admin") -> dict[str, Any]:
    answer = client.get(url, headers={"Authorization": f"Bearer {w.tokens[role]}"})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_the_map_draws_every_hop_and_counts_utilisation_once(
    client: TestClient, session: Session, chains: Chains
) -> None:
    w, e = chains.w, _expected(session)
    data = _layer(client, w, f"/map/layers/flows.geojson?year={YEAR}&category={CAT}&level=enterprise")
    # Each hop is a lorry: the lines carry every received tonne ...
    assert Decimal(str(data["tonnes"])) == e["moved"]
    # ... but what is utilised is counted once, and equals the rate engine's bottom-up figure.
    assert Decimal(str(data["utilised_t"])) == e["final"]
    report = rates.utilisation(session=session, principal=SYSTEM, year=YEAR, region="510000", categories=[CAT])
    assert report.manifest_utilised_t == e["final"]
    assert Decimal(str(data["held_t"])) == e["held"] and Decimal(str(data["forwarded_t"])) == e["forwarded"]
    # No tonne is lost or made: every received tonne is utilised, held or forwarded.
    assert e["moved"] == e["final"] + e["held"] + e["forwarded"]
    rows = _manifests(session)
    for feature in data["features"]:
        p = feature["properties"]
        pair = [m for m in rows if str(m.shipper_id) == p["from"] and str(m.receiver_id) == p["to"]]
        received = sum((m.weight_received_t or Decimal(0) for m in pair), Decimal(0))
        assert Decimal(str(p["tonnes"])) == received
        if all(_is_lot(m) for m in pair):
            # Delivered to an intermediary: never utilised there, held or forwarded instead.
            assert p["utilised_t"] == 0
            assert Decimal(str(p["held_t"])) + Decimal(str(p["forwarded_t"])) == received
        else:
            assert Decimal(str(p["utilised_t"])) == received and p["held_t"] == 0
    # The collector is an intermediary, not a utiliser: it holds the merge's 30 t and forwarded the rest.
    points = _layer(client, w, f"/map/layers/enterprises.geojson?year={YEAR}&category={CAT}")
    by_id = {f["properties"]["id"]: f["properties"] for f in points["features"]}
    c = by_id[chains.collector]
    into_c = [m for m in rows if m.receiver_id == chains.collector]
    assert Decimal(str(c["received_t"])) == sum((m.weight_received_t or Decimal(0) for m in into_c), Decimal(0))
    assert c["utilised_t"] == 0 and Decimal(str(c["held_t"])) == t(100 + 50 - 120)
    assert Decimal(str(c["forwarded_t"])) == t(120 + 25 + 15)
    assert Decimal(str(by_id[chains.store]["held_t"])) == t(15 - 10)
    assert Decimal(str(by_id[chains.plant]["held_t"])) == 0
    u = by_id[w.e2]
    assert Decimal(str(u["utilised_t"])) == e["final"] and u["held_t"] == 0


def test_the_map_pages_show_held_and_forwarded(client: TestClient, session: Session, chains: Chains) -> None:
    w = chains.w
    headers = {**_admin(w), "Accept-Language": "en"}
    page = client.get(f"/map?year={YEAR}&category={CAT}", headers=headers).text
    assert re.search(r'data-figure="held" data-value="35(\.0+)?"', page)
    assert "moved twice but utilised once" in page
    details = client.get(f"/map/details/enterprise/{chains.collector}?year={YEAR}&category={CAT}", headers=headers)
    assert details.status_code == 200
    held = re.search(r'<dd data-figure="held" data-value="([^"]+)"', details.text)
    utilised = re.search(r'<dd data-figure="utilised" data-value="([^"]+)"', details.text)
    assert held and float(held.group(1)) == 30 and utilised and float(utilised.group(1)) == 0
    flow = client.get(
        f"/map/details/flow?year={YEAR}&category={CAT}&level=enterprise&from={w.e1}&to={chains.collector}",
        headers=headers,
    )
    assert "Delivered to intermediaries, not utilised here" in flow.text


# ---------------------------------------------------------------------------------------------------------------
# The Sankey


def _charts(html: str) -> dict[str, dict[str, Any]]:
    found = re.finditer(r'id="sankey-(route|place)" class="sankey"[^>]*data-sankey=\'([^\']+)\'', html)
    return {m.group(1): json.loads(unescape(m.group(2))) for m in found}


def _sums(chart: dict[str, Any]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    ins: dict[str, Decimal] = {}
    outs: dict[str, Decimal] = {}
    for link in chart["links"]:
        value = Decimal(str(link["value"]))
        outs[link["source"]] = outs.get(link["source"], Decimal(0)) + value
        ins[link["target"]] = ins.get(link["target"], Decimal(0)) + value
    return ins, outs


def _followed(session: Session, shipper: int) -> Decimal:
    """What a generator's first manifests delivered (no losses here): the tonnes followed from it."""
    return sum(
        (m.weight_received_t or Decimal(0) for m in _manifests(session) if m.shipper_id == shipper),
        Decimal(0),
    )


def test_the_sankey_has_an_intermediary_stage_and_no_double_count(
    client: TestClient, session: Session, chains: Chains
) -> None:
    w, e = chains.w, _expected(session)
    html = client.get(f"/sankey?year={YEAR}&category={CAT}", headers=_admin(w)).text
    figure = {name: Decimal(value) for name, value in re.findall(r'data-figure="(\w+)" data-value="([^"]+)"', html)}
    assert figure["final"] == e["final"] and figure["held"] == e["held"] and figure["utilised"] == e["final"]
    assert figure["tonnes"] == e["final"] + e["held"]
    straight = sum(
        (m.weight_received_t or Decimal(0) for m in _manifests(session) if m.id == chains.ids["g2_u"]), Decimal(0)
    )
    assert figure["via"] == e["final"] + e["held"] - straight
    charts = _charts(html)
    assert set(charts) == {"route", "place"}
    for which, chart in charts.items():
        ins, outs = _sums(chart)
        nodes = {n["name"]: n for n in chart["nodes"]}
        right = [n for n in nodes.values() if n["depth"] == 2]
        middle = [n for n in nodes.values() if n["depth"] == 1]
        left = [n for n in nodes.values() if n["depth"] == 0]
        # The right end adds up to the allocated final tonnes; the left to every tonne followed.
        assert sum((ins[n["name"]] for n in right), Decimal(0)) == e["final"], which
        assert sum((outs[n["name"]] for n in left), Decimal(0)) == e["final"] + e["held"], which
        # Each intermediary takes in what it sends on plus what it holds, and says so.
        for n in middle:
            held = Decimal(str(n["held"]))
            assert ins[n["name"]] == outs.get(n["name"], Decimal(0)) + held, n
            assert Decimal(str(n["in"])) == ins[n["name"]]
        assert sum((Decimal(str(n["held"])) for n in middle), Decimal(0)) == e["held"], which
        # Tonnes that went straight skip the middle column.
        straight_links = [
            x for x in chart["links"] if nodes[x["source"]]["depth"] == 0 and nodes[x["target"]]["depth"] == 2
        ]
        assert sum((Decimal(str(x["value"])) for x in straight_links), Decimal(0)) == straight, which
    place = charts["place"]
    _, outs = _sums(place)
    assert outs["o:510400"] == _followed(session, w.e1)  # G1 in Panzhihua
    assert outs["o:510600"] == _followed(session, w.e3)  # G2 in Deyang
    assert {n["name"] for n in place["nodes"] if n["depth"] == 1} == {"m:510400"}
    assert {n["name"] for n in charts["route"]["nodes"] if n["depth"] == 1} == {"v:transfer"}
    # The table: one row per path, adding up to the tonnes followed; held paths say so.
    table = re.findall(r'id="sankey-place-table".*?</table>', html, re.S)[0]
    values = [Decimal(v) for v in re.findall(r'<tr data-value="([^"]+)"', table)]
    assert sum(values, Decimal(0)) == figure["tonnes"]
    assert 'data-held="true"' in table


def test_a_bureau_follows_its_generators_tonnes_to_their_end(session: Session, chains: Chains) -> None:
    """Deyang's bureau sees G2's tonnes through the Panzhihua collector, and nothing of G1's."""
    data = sankey(session=session, principal=chains.w.principals["bureau_dy"], year=YEAR, category=CAT)
    assert data.filter.region == "510600"
    # G2: 50 t into the merge (of which 40 t went on, 10 t held) and 10 t straight.
    assert data.total.final_t == t(40 + 10) and data.total.held_t == t(10)
    assert {p.origin for p in data.by_place} == {"510600"}
    # Two first manifests: the straight one, and the merged one on two paths (40 t sent on, 10 t held), once on each.
    assert data.total.batches == 3
    assert sum(p.batches for p in data.by_place) == sum(p.batches for p in data.by_route) == data.total.batches


# ---------------------------------------------------------------------------------------------------------------
# The audit


def test_the_audit_credits_generators_and_shows_intermediaries_holding(
    client: TestClient, session: Session, chains: Chains
) -> None:
    w = chains.w
    bureau = w.principals["bureau_sc"]
    report = rates.utilisation(
        session=session, principal=SYSTEM, year=YEAR, region="510000", categories=[CAT], by="enterprise"
    )
    by = {row.key: row.manifest_utilised_t for row in report.rows or []}
    # G1: 80 t of its 100 (the merge's 120 t pro rata over 150 t), its 80 t pre-treated, 35 t of the diamond's 40.
    assert by[str(w.e1)] == t(80 + 80 + 35) and by[str(w.e3)] == t(40 + 10)
    assert not by.get(str(chains.collector)) and not by.get(str(w.e2))
    # An intermediary's own figures: what it still holds, never utilised.
    drill = audit.drill_down(
        session=session, principal=bureau, year=YEAR, args=audit.ScopeArgs(enterprise=chains.collector)
    )
    assert drill.total.held_t == t(30) and drill.total.figures.manifest_utilised_t == 0
    assert drill.batches is not None
    lots = {line.id: line for line in drill.batches.rows}
    assert lots[chains.ids["g1_c"]].held_t == t(20) and lots[chains.ids["g1_c"]].forwarded_t == t(80)
    assert lots[chains.ids["g2_c"]].held_t == t(10) and lots[chains.ids["g2_c"]].forwarded_t == t(40)
    assert lots[chains.ids["g1_c2"]].held_t == 0 and lots[chains.ids["g1_c2"]].forwarded_t == t(40)
    assert not any(line.counts for line in drill.batches.rows if line.direction == "received")
    # A generator's batches count for their allocated tonnes, wherever the chain took them.
    g1 = audit.drill_down(session=session, principal=bureau, year=YEAR, args=audit.ScopeArgs(enterprise=w.e1))
    assert g1.batches is not None
    sent = {line.id: line for line in g1.batches.rows}
    assert sent[chains.ids["g1_c"]].allocated_t == t(80) and sent[chains.ids["g1_c"]].counts
    assert sent[chains.ids["g1_p"]].allocated_t == t(80)
    assert sent[chains.ids["g1_c2"]].allocated_t == t(35)
    assert sum((line.allocated_t for line in sent.values()), Decimal(0)) == by[str(w.e1)]
    # The rows behind the province's bottom-up figure: the first manifests, summing to the figure.
    rows = audit.figure_rows(
        session=session,
        principal=bureau,
        kind="batches",
        year=YEAR,
        args=audit.ScopeArgs(region="510000"),
        categories=[CAT],
    )
    first = {chains.ids[k] for k in ("g1_c", "g2_c", "g1_p", "g1_c2", "g2_u")}
    assert {m.id for m in rows.manifests} == first and rows.count == len(first)
    assert rows.totals["allocated_t"] == sum(by.values(), Decimal(0)) == _expected(session)["final"]
    assert sum((m.allocated_t for m in rows.manifests), Decimal(0)) == rows.totals["allocated_t"]
    # The page shows the collector's held tonnes.
    page = client.get(
        f"/audit?enterprise={chains.collector}&year={YEAR}",
        headers={"Authorization": f"Bearer {w.tokens['bureau_sc']}"},
    )
    assert page.status_code == 200, page.text[:300]
    held = re.search(r'data-figure="held" data-value="([^"]+)"', page.text)
    assert held and Decimal(held.group(1)) == t(30)
