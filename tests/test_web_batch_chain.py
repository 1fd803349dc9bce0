"""A batch's chain on its page, and the form's handover fields and sources.

The chain is built through the API from tonnes the test sends: a merge at a collector, a split to a plant and a
utiliser, a second hop from the plant, one lot on the road. The figures the page prints are checked against a hand
calculation and against the stored shares, recomputed here from their rows.
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from flows.kernel.numbers import Numbers
from models import Enterprise, Manifest, ManifestShare, ManifestSource
from models.enums import EnterpriseRole, ManifestStatus
from tests.world import World, add_account, add_enterprise, add_receiver_account, build_world

CAT = "SW04"  # coal gangue: no other row of the world uses it
NAMES = {
    "e1": ("甲钢铁有限公司", "Alpha Steel Co."),
    "e2": ("乙建材有限公司", "Beta Building Materials Co."),
    "e3": ("丙磷化工有限公司", "Gamma Phosphate Co."),
}
COLLECTOR = ("丁收集转运有限公司", "Delta Collection Co.")
PLANT = ("戊预处理有限公司", "Epsilon Pre-treatment Co.")


class Chain:
    """The world, the intermediaries, and the manifests of the chain by name (id and number)."""

    def __init__(self, w: World, collector: int, plant: int) -> None:
        self.w, self.collector, self.plant = w, collector, plant
        self.m: dict[str, dict[str, Any]] = {}


def _admin(w: World, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens['admin']}", "Accept-Language": lang}


def _as(w: World, who: str, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[who]}", "Accept-Language": lang}


def _move(
    client: TestClient,
    c: Chain,
    name: str,
    shipper: int,
    receiver: int,
    tonnes: str,
    route: str,
    *,
    arrive: bool = True,
    **extra: Any,
) -> None:
    body = {
        "shipper_id": shipper,
        "receiver_id": receiver,
        "category_code": CAT,
        "route": route,
        "weight_dispatched_t": tonnes,
        "dispatched_at": f"2024-06-{len(c.m) + 1:02d}T08:00:00+08:00",
        **extra,
    }
    made = client.post("/api/v1/manifests", json=body, headers=_admin(c.w))
    assert made.status_code == 201, made.text
    c.m[name] = made.json()
    if arrive:
        at = f"2024-06-{len(c.m):02d}T16:00:00+08:00"
        got = client.post(
            f"/api/v1/manifests/{made.json()['id']}/receive",
            json={"weight_received_t": tonnes, "received_at": at},
            headers=_admin(c.w),
        )
        assert got.status_code == 200, got.text


@pytest.fixture
def chain(client: TestClient, session: Session) -> Chain:
    """The chain of build_chain."""
    return build_chain(client, session)


def build_chain(client: TestClient, session: Session) -> Chain:
    """G1 100 t and G2 50 t to a collector; 90 t on to a plant pro rata and 30 t of G1's lot to the utiliser;
    45 t from the plant to the utiliser; 15 t of G2's lot on the road."""
    w = build_world(session)
    for key, (zh, en) in NAMES.items():
        e = session.get(Enterprise, getattr(w, key))
        assert e is not None
        e.name_zh, e.name_en = zh, en
        session.add(e)
    collector = add_enterprise(session, 10, 101.65, 26.57, EnterpriseRole.collector, COLLECTOR)
    plant = add_enterprise(session, 11, 101.66, 26.57, EnterpriseRole.collector, PLANT)
    session.commit()
    add_receiver_account(session, w)
    add_account(session, w, "collector", collector)
    c = Chain(w, collector, plant)
    _move(client, c, "g1", w.e1, collector, "100", "transfer")
    _move(client, c, "g2", w.e3, collector, "50", "transfer")
    lots = [{"number": c.m["g1"]["number"]}, {"number": c.m["g2"]["number"]}]
    _move(client, c, "p1", collector, plant, "90", "transfer", sources=lots)
    _move(
        client,
        c,
        "f",
        collector,
        w.e2,
        "30",
        "cement_admixture",
        sources=[{"number": c.m["g1"]["number"], "weight_t": "30"}],
    )
    _move(client, c, "p2", plant, w.e2, "45", "road_base", sources=[{"id": c.m["p1"]["id"]}])
    _move(client, c, "t1", collector, w.e2, "15", "road_base", sources=[{"id": c.m["g2"]["id"]}], arrive=False)
    return c


def _figures(html: str) -> dict[str, str]:
    """The chain's totals as printed: final, held, transit."""
    section = html[html.index('id="chain-totals"') :]
    found = re.findall(r'data-figure="(\w+)">(.*?)</dd>', section, re.S)[:3]
    return {k: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", v)).strip() for k, v in found}


def _rows(html: str, kind: str) -> dict[int, str]:
    """The chain's rows of one kind (drew, made, ended, onward): batch id -> the row's text, tags stripped."""
    found = {}
    for ident, body in re.findall(rf'<tr data-chain="{kind}" data-batch="(\d+)"[^>]*>(.*?)</tr>', html, re.S):
        found[int(ident)] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()
    return found


def _stored(session: Session, origin: int) -> dict[str, Decimal]:
    """Tonnes of one first manifest by placement, summed from the share rows."""
    session.expire_all()
    totals: dict[str, int] = defaultdict(int)
    for share in session.exec(select(ManifestShare).where(ManifestShare.origin_id == origin)):
        totals[str(share.placement)] += share.kg
    return {k: Decimal(totals.get(k, 0)) / 1000 for k in ("final", "held", "transit")}


def _t(value: Decimal) -> str:
    return Numbers("en").tonnes(value)


def test_the_page_shows_where_the_tonnes_of_a_first_batch_ended(
    client: TestClient, session: Session, chain: Chain
) -> None:
    g1, g2 = chain.m["g1"], chain.m["g2"]
    page = client.get(f"/batches/{g1['id']}", headers=_admin(chain.w))
    assert page.status_code == 200
    # By hand: 60 t of G1's 100 went to the plant and 30 t straight to the utiliser; the plant sent on 45 t of its
    # 90 (two thirds G1's: 30 t). Final 30 + 30, held 10 at the collector and 30 at the plant.
    assert _figures(page.text) == {"final": "60.00 t", "held": "40.00 t", "transit": "0.00 t"}
    stored = _stored(session, g1["id"])
    assert _figures(page.text) == {k: _t(v) for k, v in stored.items()}
    ended = _rows(page.text, "ended")
    m = chain.m
    assert set(ended) == {g1["id"], m["p1"]["id"], m["f"]["id"], m["p2"]["id"]}
    assert ended[m["f"]["id"]].startswith("Final") and ended[m["f"]["id"]].endswith("30.00 t")
    assert NAMES["e2"][1] in ended[m["f"]["id"]]
    # Through which hops: the plant's lot, then its forwarding.
    assert f"{m['p1']['number']} → {m['p2']['number']}" in ended[m["p2"]["id"]]
    assert ended[m["p1"]["id"]].startswith("Held") and PLANT[1] in ended[m["p1"]["id"]]
    assert ended[g1["id"]].startswith("Held") and "still in this batch" in ended[g1["id"]]
    onward = _rows(page.text, "onward")
    assert list(onward) == [m["p1"]["id"], m["p2"]["id"], m["f"]["id"]]
    assert onward[m["p1"]["id"]].endswith("60.00 t") and onward[m["p2"]["id"]].endswith("45.00 t")

    second = client.get(f"/batches/{g2['id']}", headers=_admin(chain.w, "zh-CN"))
    # G2: 30 t to the plant (15 t of it on to the utiliser), 15 t on the road, 5 t left at the collector.
    assert _figures(second.text) == {"final": "15.00 吨", "held": "20.00 吨", "transit": "15.00 吨"}
    assert {k: v.replace(" 吨", " t") for k, v in _figures(second.text).items()} == {
        k: _t(v) for k, v in _stored(session, g2["id"]).items()
    }
    assert "运输途中" in _rows(second.text, "ended")[m["t1"]["id"]]


def test_the_page_shows_what_went_into_a_forwarding(client: TestClient, session: Session, chain: Chain) -> None:
    m = chain.m
    page = client.get(f"/batches/{m['p2']['id']}", headers=_admin(chain.w))
    drew = _rows(page.text, "drew")
    assert list(drew) == [m["p1"]["id"]]
    assert drew[m["p1"]["id"]].endswith("45.00 t named, pro rata")
    assert "Its tonnes are at their final step: this batch ends the chain." in page.text
    made = _rows(page.text, "made")
    assert made == {
        m["g1"]["id"]: f"{m['g1']['number']} {NAMES['e1'][1]} 30.00 t at its final step",
        m["g2"]["id"]: f"{m['g2']['number']} {NAMES['e3'][1]} 15.00 t at its final step",
    }
    session.expire_all()
    shares = session.exec(select(ManifestShare).where(ManifestShare.manifest_id == m["p2"]["id"])).all()
    assert {s.origin_id: _t(Decimal(s.kg) / 1000) for s in shares} == {
        ident: re.findall(r"([\d,.]+ t) at its", text)[0] for ident, text in made.items()
    }
    # The plant's lot: made of both first batches, held there but for the 45 t it sent on.
    lot = client.get(f"/batches/{m['p1']['id']}", headers=_admin(chain.w))
    assert {i: t.split(" held")[0].split()[-2] for i, t in _rows(lot.text, "made").items()} == {
        m["g1"]["id"]: "30.00",
        m["g2"]["id"]: "15.00",
    }
    assert list(_rows(lot.text, "onward")) == [m["p2"]["id"]]
    # Named with its tonnes, and the batch pages link to each other.
    direct = client.get(f"/batches/{m['f']['id']}", headers=_admin(chain.w, "zh-CN"))
    assert _rows(direct.text, "drew")[m["g1"]["id"]].endswith("30.00 吨 已列明，按填写吨数")
    assert f'href="/batches/{m["g1"]["id"]}"' in direct.text
    # A plain batch of the world: a first batch, straight to its final step.
    plain = client.get(f"/batches/{chain.w.batch_received}", headers=_admin(chain.w))
    assert 'id="chain-first"' in plain.text and 'id="chain-direct"' in plain.text
    assert _figures(plain.text) == {"final": "29.80 t", "held": "0.00 t", "transit": "0.00 t"}
    draft = client.get(f"/batches/{chain.w.batch_draft}", headers=_admin(chain.w))
    assert 'id="chain-none"' in draft.text


def test_an_unlinked_forwarding_says_it_was_drawn_from_what_was_held(
    client: TestClient, session: Session, chain: Chain
) -> None:
    _move(client, chain, "u", chain.collector, chain.w.e2, "4", "road_base")
    page = client.get(f"/batches/{chain.m['u']['id']}", headers=_admin(chain.w))
    assert 'id="chain-unlinked"' in page.text
    drew = _rows(page.text, "drew")
    assert drew and all(text.endswith("not named: drawn from what was held") for text in drew.values())
    drawn = sum(Decimal(text.split(" t ")[0].split()[-1]) for text in drew.values())
    assert drawn == 4


def test_names_outside_the_viewers_rights_stay_hidden(client: TestClient, session: Session, chain: Chain) -> None:
    m = chain.m
    # The utiliser reads the plant's forwarding to it: the generators behind it are not its to see.
    page = client.get(f"/batches/{m['p2']['id']}", headers=_as(chain.w, "ent2"))
    assert page.status_code == 200
    for zh, en in (NAMES["e1"], NAMES["e3"], COLLECTOR):
        assert zh not in page.text and en not in page.text
    made = _rows(page.text, "made")
    assert all("an enterprise outside your view" in text for text in made.values())
    # Numbers and tonnes are given, as the API's chain gives them; the hidden batches are not linked.
    assert m["g1"]["number"] in page.text and f'href="/batches/{m["g1"]["id"]}"' not in page.text
    assert made[m["g1"]["id"]].endswith("30.00 t at its final step")
    api = client.get(f"/api/v1/manifests/{m['p2']['id']}/chain", headers=_as(chain.w, "ent2")).json()
    assert {x["number"] for x in api["made_of"]} == {m["g1"]["number"], m["g2"]["number"]}

    # The second generator reads its own batch: the collector (its receiver) is named, the utiliser is not.
    own = client.get(f"/batches/{m['g2']['id']}", headers=_as(chain.w, "ent3", "zh-CN"))
    assert own.status_code == 200
    assert COLLECTOR[0] in own.text
    for zh in (NAMES["e1"][0], NAMES["e2"][0], PLANT[0]):
        assert zh not in own.text
    assert "权限以外的单位" in _rows(own.text, "ended")[m["p2"]["id"]]
    # And a batch out of its scope stays out of it, chain or not.
    assert client.get(f"/batches/{m['p2']['id']}", headers=_as(chain.w, "ent3")).status_code == 404


def _form(c: Chain, **changes: str) -> dict[str, str]:
    data = {
        "receiver_id": str(c.w.e2),
        "category": CAT,
        "route": "road_base",
        "weight": "12",
        "unit": "t",
        "action": "dispatch",
        "idempotency_key": "chain-form-1",
        "vehicle_plate": "川D·12345",
        "transport_mode": "rail",
        "packaging": "散装",
        "weighing": "weighed",
    }
    data.update(changes)
    return data


def _error(html: str, field: str) -> str:
    found = re.search(rf'id="f-{field}-error"[^>]*>([^<]*)<', html)
    assert found, f"no error line for {field}"
    return found.group(1).strip()


def _counts(session: Session) -> tuple[int, int]:
    session.expire_all()
    return (
        int(session.exec(select(func.count()).select_from(Manifest)).one()),
        int(session.exec(select(func.count()).select_from(ManifestSource)).one()),
    )


def test_the_form_records_sources_and_the_handover(client: TestClient, session: Session, chain: Chain) -> None:
    m = chain.m
    form = client.get("/batches/new", headers=_as(chain.w, "collector"))
    # The lots the collector still holds are offered: G1's 10 t and G2's 5 t.
    assert f'<option value="{m["g1"]["number"]}">{CAT} · 10.00 t left of 100.00 t</option>' in form.text
    assert f'<option value="{m["g2"]["number"]}">{CAT} · 5.00 t left of 50.00 t</option>' in form.text
    more = client.post(
        "/batches/new", data=_form(chain, action="add_source", source_rows="2"), headers=_as(chain.w, "collector")
    )
    assert more.status_code == 200 and 'name="source_number_2"' in more.text
    assert 'value="川D·12345"' in more.text

    data = _form(
        chain,
        source_number_0=m["g1"]["number"].lower(),
        source_tonnes_0="8",
        source_number_2=m["g2"]["number"],
    )
    made = client.post("/batches/new", data=data, headers=_as(chain.w, "collector"), follow_redirects=False)
    assert made.status_code == 303, made.text[:800]
    ident = int(re.findall(r"/batches/(\d+)", made.headers["location"])[0])
    session.expire_all()
    batch = session.get(Manifest, ident)
    assert batch is not None and batch.status == ManifestStatus.dispatched
    assert (batch.vehicle_plate, str(batch.transport_mode), batch.packaging, str(batch.weighing)) == (
        "川D·12345",
        "rail",
        "散装",
        "weighed",
    )
    sources = session.exec(select(ManifestSource).where(ManifestSource.manifest_id == ident)).all()
    assert {(s.source_id, s.weight_t) for s in sources} == {(m["g1"]["id"], Decimal("8")), (m["g2"]["id"], None)}
    page = client.get(f"/batches/{ident}", headers=_as(chain.w, "collector", "zh-CN"))
    assert '<dd data-handover="transport_mode">铁路' in page.text
    drew = _rows(page.text, "drew")
    # 12 t: 8 t named from G1's lot, the other 4 t from G2's (the only lot left pro rata).
    assert drew[m["g1"]["id"]].endswith("8.00 吨 已列明，按填写吨数")
    assert drew[m["g2"]["id"]].endswith("4.00 吨 已列明，按比例分摊")

    # Sealed at dispatch: the form shows what was logged, read-only, and an edit is refused.
    sealed = client.get(f"/batches/{ident}/edit", headers=_as(chain.w, "collector"))
    assert 'id="batch-sealed"' in sealed.text and 'id="batch-form"' not in sealed.text
    assert '<dd data-kept="vehicle_plate"><span class="code">川D·12345</span>' in sealed.text
    assert 'name="vehicle_plate"' not in sealed.text
    late = client.post(
        f"/batches/{ident}/edit",
        data=_form(chain, vehicle_plate="川A·99999", transport_mode="road"),
        headers=_as(chain.w, "collector"),
    )
    assert late.status_code == 409
    session.expire_all()
    again = session.get(Manifest, ident)
    assert again is not None and (again.vehicle_plate, str(again.transport_mode)) == ("川D·12345", "rail")


def test_a_draft_changes_its_handover_and_sources_in_the_form(
    client: TestClient, session: Session, chain: Chain
) -> None:
    m = chain.m
    data = _form(chain, action="draft", idempotency_key="chain-draft-1", weight="5", source_number_0=m["g1"]["number"])
    made = client.post("/batches/new", data=data, headers=_as(chain.w, "collector"), follow_redirects=False)
    assert made.status_code == 303, made.text[:800]
    ident = int(re.findall(r"/batches/(\d+)", made.headers["location"])[0])
    form = client.get(f"/batches/{ident}/edit", headers=_as(chain.w, "collector"))
    # The draft's form offers its handover and its lots to change, filled as logged.
    assert 'value="川D·12345"' in form.text and f'value="{m["g1"]["number"]}"' in form.text
    changed = _form(
        chain,
        vehicle_plate="川D·54321",
        transport_mode="road",
        source_number_0=m["g1"]["number"],
        source_tonnes_0="7",
        source_number_1=m["g2"]["number"],
    )  # 12 t: 7 t of G1's lot as named, the other 5 t of G2's
    saved = client.post(
        f"/batches/{ident}/edit", data=changed, headers=_as(chain.w, "collector"), follow_redirects=False
    )
    assert saved.status_code == 303, saved.text[:800]
    session.expire_all()
    batch = session.get(Manifest, ident)
    assert batch is not None and (batch.vehicle_plate, str(batch.transport_mode)) == ("川D·54321", "road")
    sources = session.exec(select(ManifestSource).where(ManifestSource.manifest_id == ident)).all()
    assert {(s.source_id, s.weight_t) for s in sources} == {(m["g1"]["id"], Decimal("7")), (m["g2"]["id"], None)}
    # Beyond what a lot holds: refused by the field, and the draft keeps what it had.
    over = {**changed, "source_tonnes_0": "11"}
    refused = client.post(f"/batches/{ident}/edit", data=over, headers=_as(chain.w, "collector"))
    assert refused.status_code == 422 and _error(refused.text, "sources")
    session.expire_all()
    kept = session.exec(select(ManifestSource).where(ManifestSource.manifest_id == ident)).all()
    assert {(s.source_id, s.weight_t) for s in kept} == {(m["g1"]["id"], Decimal("7")), (m["g2"]["id"], None)}


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_bad_source_is_refused_by_its_field_and_nothing_is_saved(
    client: TestClient, session: Session, chain: Chain, lang: str
) -> None:
    m, w = chain.m, chain.w
    before = _counts(session)
    headers = _as(w, "collector", lang)
    expected = {
        "en": {
            "over": "Source batches: batch {} holds 10 t not yet forwarded; 11 t cannot be drawn from it.",
            "elsewhere": "Source batches: {} is no batch your enterprise received.",
            "comma": "Source batches: row 1 ({}): “1,5” is not a weight in tonnes",
            "plate": "Vehicle plate: at most 16 characters (this has 17).",
        },
        "zh-CN": {
            "over": "来源联单：批次 {} 尚余 10 吨未转出，不能从中转出 11 吨。",
            "elsewhere": "来源联单：{} 不是本单位接收的批次。",
            "comma": "来源联单：第 1 行（{}）：“1,5”不是以吨计的重量",
            "plate": "车牌号：最多 16 个字符（现为 17 个）。",
        },
    }[lang]
    # More than the lot holds: refused by the writer, naming the lot, the row marked.
    over = client.post(
        "/batches/new",
        data=_form(chain, source_number_0=m["g1"]["number"], source_tonnes_0="11"),
        headers=headers,
    )
    assert over.status_code == 422
    assert _error(over.text, "sources") == expected["over"].format(m["g1"]["number"])
    assert 'id="f-source_number_0"' in over.text and re.search(
        r'id="f-source_number_0"[^>]*aria-invalid="true"', over.text, re.S
    )
    # A batch the collector did not receive (the world's, from E1 to E2).
    number = session.get(Manifest, w.batch_received)
    assert number is not None
    elsewhere = client.post(
        "/batches/new",
        data=_form(chain, source_number_0="", source_number_1=number.number),
        headers=headers,
    )
    assert elsewhere.status_code == 422
    assert _error(elsewhere.text, "sources") == expected["elsewhere"].format(number.number)
    assert re.search(r'id="f-source_number_1"[^>]*aria-invalid="true"', elsewhere.text, re.S)
    # A decimal comma in the tonnes, and a plate longer than its column: named before anything is written.
    comma = client.post(
        "/batches/new",
        data=_form(chain, source_number_0=m["g1"]["number"], source_tonnes_0="1,5", vehicle_plate="X" * 17),
        headers=headers,
    )
    assert comma.status_code == 422
    assert _error(comma.text, "sources").startswith(expected["comma"].format(m["g1"]["number"]))
    assert _error(comma.text, "vehicle_plate") == expected["plate"]
    mode = client.post("/batches/new", data=_form(chain, transport_mode="teleport"), headers=headers)
    assert mode.status_code == 422 and "teleport" in _error(mode.text, "transport_mode")
    assert _counts(session) == before
