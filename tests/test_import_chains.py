"""Chains and handovers through the manifest import: a `sources` column naming earlier rows and stored manifests,
checked by the API writer's own check, kept and allocated; handover columns stored; refusals naming row and column.

Every expected figure is worked out by hand from the tonnes in the files.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from flows.kernel.principal import system_principal
from flows.kernel.uscc import make_uscc
from flows.waste import chains, imports, rates
from flows.waste.imports import ImportRefused, RowError, import_manifests
from models import Enterprise, Licence, Manifest, ManifestDraw, ManifestShare, ManifestSource
from models.db import writer
from models.enums import Channel, EnterpriseRole, LicenceActivity
from tests.world import NOW, World, add_enterprise, build_world, t

ADMIN = system_principal(Channel.import_)
SYSTEM = system_principal()
CAT = "SW04"  # coal gangue: no other row of the world uses it
OTHER = "SW06"  # desulfurisation gypsum: the same chain again, through the API, for comparison

HEADER = [
    "number",
    "shipper_uscc",
    "receiver_uscc",
    "category",
    "route",
    "weight_dispatched_t",
    "dispatched_at",
    "weight_received_t",
    "received_at",
    "sources",
    "idempotency_key",
]
ZH = {
    "number": "联单编号",
    "shipper_uscc": "移出单位统一社会信用代码",
    "receiver_uscc": "接收单位统一社会信用代码",
    "category": "废物类别",
    "route": "利用处置方式",
    "weight_dispatched_t": "移出量（吨）",
    "dispatched_at": "移出时间",
    "weight_received_t": "接收量(吨)",
    "received_at": "接收时间",
    "sources": "来源联单",
    "idempotency_key": "幂等键",
    "vehicle_plate": "车牌号",
    "transport_mode": "运输方式",
    "packaging": "包装方式",
    "weighing": "计量方式",
}


def uscc(n: int) -> str:
    """The credit code of enterprise n of the world (1-3) or added by the test (10: the collector)."""
    return make_uscc(f"91510000MA000{n:03d}")


G1, U, G2, COLLECTOR = 1, 2, 3, 10


@pytest.fixture
def chain_world(session: Session) -> World:
    w = build_world(session)
    add_enterprise(session, COLLECTOR, 101.65, 26.57, EnterpriseRole.collector)
    for category in (CAT, OTHER):
        session.add(
            Licence(
                enterprise_id=w.e2,
                category_code=category,
                activity=LicenceActivity.utilisation,
                capacity_t=t(100_000),
                licence_no=f"L-{category}",
                valid_from=date(2020, 1, 1),
            )
        )
    session.commit()
    return w


def collector_id(session: Session) -> int:
    found = session.exec(select(Enterprise.id).where(Enterprise.uscc == uscc(COLLECTOR))).one()
    assert found is not None
    return found


def row(
    number: str,
    shipper: int,
    receiver: int,
    tonnes: Any,
    route: str = "transfer",
    *,
    received: Any = "same",
    sources: str = "",
    category: str = CAT,
    day: int = 1,
    key: str = "",
) -> dict[str, Any]:
    """One manifest of a file: dispatched on June `day`, received the next day (unless received is None)."""
    got = tonnes if received == "same" else received
    return {
        "number": number,
        "shipper_uscc": uscc(shipper),
        "receiver_uscc": uscc(receiver),
        "category": category,
        "route": route,
        "weight_dispatched_t": tonnes,
        "dispatched_at": f"2024-06-{day:02d} 08:00",
        "weight_received_t": "" if got is None else got,
        "received_at": "" if got is None else f"2024-06-{day + 1:02d} 08:00",
        "sources": sources,
        "idempotency_key": key,
    }


def write(path: Path, rows: Sequence[dict[str, Any]], *, chinese: bool = False, encoding: str = "utf-8") -> Path:
    header = list(dict.fromkeys(name for r in rows for name in r)) if rows else HEADER
    with path.open("w", newline="", encoding=encoding) as fh:
        out = csv.writer(fh)
        out.writerow([ZH[name] if chinese else name for name in header])
        out.writerows([r.get(name, "") for name in header] for r in rows)
    return path


def by_reference(session: Session) -> dict[str, Manifest]:
    session.expire_all()
    return {m.reference or "": m for m in session.exec(select(Manifest).where(col(Manifest.reference).is_not(None)))}


def draws(session: Session, manifest: Manifest) -> dict[int, Decimal]:
    """Tonnes a forwarding drew from each lot, as stored."""
    found = session.exec(select(ManifestDraw).where(ManifestDraw.manifest_id == manifest.id)).all()
    return {d.source_id: Decimal(d.kg) / 1000 for d in found}


def credited(session: Session, category: str) -> dict[int, Decimal]:
    """The bottom-up figure by enterprise (the generators credited with what ended utilised)."""
    report = rates.utilisation(
        session=session, principal=SYSTEM, year=2024, region="510000", categories=[category], by="enterprise"
    )
    return {int(r.key or 0): Decimal(str(r.manifest_utilised_t)) for r in report.rows or [] if r.manifest_utilised_t}


def counts(session: Session) -> tuple[int, ...]:
    session.expire_all()
    return tuple(
        int(session.exec(select(func.count()).select_from(model)).one())
        for model in (Manifest, ManifestSource, ManifestDraw, ManifestShare)
    )


def refused(session: Session, path: Path) -> list[RowError]:
    before = counts(session)
    with pytest.raises(ImportRefused) as exc:
        import_manifests(session=session, principal=ADMIN, source=path, now=NOW)
    assert counts(session) == before  # nothing half-saved
    return exc.value.errors


def where(errors: list[RowError]) -> dict[tuple[int, str], str]:
    """Each fault by (line, column as the file names it): its code."""
    return {(e.line, e.column): e.problem.code for e in errors}


def test_later_rows_draw_on_earlier_rows_and_stored_manifests(
    session: Session, chain_world: World, tmp_path: Path
) -> None:
    """G2's 50 t lot is stored; a file brings G1's 100 t lot and the collector's 120 t naming both: 80 t and 40 t."""
    w = chain_world
    first = write(tmp_path / "a.csv", [row("G2", G2, COLLECTOR, 50)])
    import_manifests(session=session, principal=ADMIN, source=first, now=NOW)
    session.commit()
    lot2 = by_reference(session)["G2"]
    # Full-width separators, as a Chinese input method types them; the stored lot by the number the service gave it.
    rows = [
        row("G1", G1, COLLECTOR, 100),
        row("ON-1", COLLECTOR, U, 120, "cement_admixture", sources=f"G1；{lot2.number}", day=5),
    ]
    summary = import_manifests(session=session, principal=ADMIN, source=write(tmp_path / "b.csv", rows), now=NOW)
    session.commit()
    assert (summary.rows, summary.inserted) == (2, 2)
    got = by_reference(session)
    lot1, on = got["G1"], got["ON-1"]
    kept = session.exec(select(ManifestSource).where(ManifestSource.manifest_id == on.id)).all()
    assert {(s.source_id, s.weight_t) for s in kept} == {(lot1.id, None), (lot2.id, None)}
    assert draws(session, on) == {lot1.id: 80, lot2.id: 40}
    assert credited(session, CAT) == {w.e1: 80, w.e3: 40}
    chain = chains.chain_of(session, lot1)
    assert (chain.final_t, chain.held_t, chain.transit_t) == (80, 20, 0)
    # What the earlier import left in the collector's lot is drawn on by a later file, and no more than that.
    more = [row("ON-2", COLLECTOR, U, 10, "road_base", sources=f"{lot2.number}:10", day=9)]
    import_manifests(session=session, principal=ADMIN, source=write(tmp_path / "c.csv", more), now=NOW)
    session.commit()
    assert draws(session, by_reference(session)["ON-2"]) == {lot2.id: 10}
    too_much = [row("ON-3", COLLECTOR, U, 1, "road_base", sources=f"{lot2.number}:0.001", day=9)]
    errors = refused(session, write(tmp_path / "d.csv", too_much))
    # 50 t received, 40 t drawn by ON-1 and 10 t by ON-2: nothing is left, and the refusal names the lot.
    assert where(errors) == {(2, "sources"): "waste.chain.overdrawn"}
    assert (errors[0].problem.params["left"], errors[0].problem.params["source"]) == (0, lot2.number)


def test_a_pro_rata_split_is_exact_to_the_kilogram(session: Session, chain_world: World, tmp_path: Path) -> None:
    """60.001 t and 30.002 t received, 45.001 t forwarded pro rata: 30.000 t and 15.001 t, by largest remainder."""
    rows = [
        row("A", G1, COLLECTOR, "60.001"),
        row("B", G2, COLLECTOR, "30.002"),
        row("ON", COLLECTOR, U, "45.001", "cement_admixture", sources="A;B", day=5),
        # Named tonnes first, the rest pro rata over the open sources: 5.5 t from A, 4.5 t from B.
        row("MIX", COLLECTOR, U, 10, "cement_admixture", sources="A：5.5；B", day=6),
    ]
    import_manifests(session=session, principal=ADMIN, source=write(tmp_path / "m.csv", rows), now=NOW)
    session.commit()
    got = by_reference(session)
    a, b = got["A"].id, got["B"].id
    # 45,001 kg x 60,001 / 90,003 = 30,000.33 and x 30,002 / 90,003 = 15,000.67: the odd kilogram goes to B.
    assert draws(session, got["ON"]) == {a: Decimal("30.000"), b: Decimal("15.001")}
    assert draws(session, got["MIX"]) == {a: Decimal("5.5"), b: Decimal("4.5")}
    kept = session.exec(select(ManifestSource).where(ManifestSource.manifest_id == got["MIX"].id)).all()
    assert {(s.source_id, s.weight_t) for s in kept} == {(a, Decimal("5.5")), (b, None)}
    shares = session.exec(select(ManifestShare).where(ManifestShare.manifest_id == got["ON"].id)).all()
    assert sorted((s.origin_id, s.kg) for s in shares) == [(a, 30_000), (b, 15_001)]
    assert sum(s.kg for s in shares) == 45_001


def test_the_bottom_up_figure_is_the_one_the_api_gives(
    client: TestClient, session: Session, chain_world: World, tmp_path: Path
) -> None:
    """The same chain (G1 100 t and G2 50 t merged, 120 t utilised, 30 t forwarded on through a store) twice."""
    w = chain_world
    headers = {"Authorization": f"Bearer {w.tokens['admin']}"}

    def send(shipper: int, receiver: int, tonnes: str, route: str, **extra: Any) -> dict[str, Any]:
        body = {
            "shipper_id": shipper,
            "receiver_id": receiver,
            "category_code": OTHER,
            "route": route,
            "weight_dispatched_t": tonnes,
            "dispatched_at": "2024-06-01T08:00:00+08:00",
            **extra,
        }
        made = client.post("/api/v1/manifests", json=body, headers=headers)
        assert made.status_code == 201, made.text
        arrived = {"weight_received_t": tonnes, "received_at": "2024-06-02T08:00:00+08:00"}
        answer = client.post(f"/api/v1/manifests/{made.json()['id']}/receive", json=arrived, headers=headers)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = made.json()
        return result

    collector = collector_id(session)
    g1 = send(w.e1, collector, "100.003", "transfer")
    g2 = send(w.e3, collector, "50.001", "transfer")
    send(collector, w.e2, "120.001", "cement_admixture", sources=[{"number": g1["number"]}, {"number": g2["number"]}])
    store = send(collector, w.e3, "20.002", "storage", sources=[{"number": g1["number"], "weight_t": "12.001"}])
    send(w.e3, w.e2, "20.002", "road_base", sources=[{"number": store["number"]}])

    rows = [
        row("G1", G1, COLLECTOR, "100.003"),
        row("G2", G2, COLLECTOR, "50.001"),
        row("ON", COLLECTOR, U, "120.001", "cement_admixture", sources="G1;G2"),
        row("ST", COLLECTOR, G2, "20.002", "storage", sources="G1:12.001"),
        row("OUT", G2, U, "20.002", "road_base", sources="ST"),
    ]
    import_manifests(session=session, principal=ADMIN, source=write(tmp_path / "same.csv", rows), now=NOW)
    session.commit()
    through_api, through_file = credited(session, OTHER), credited(session, CAT)
    assert through_file == through_api
    # 120.001 t utilised, and of the store's 20.002 t only the 12.001 t it named: a gain makes no waste.
    assert sum(through_file.values()) == Decimal("132.002")
    total = {
        category: rates.utilisation(
            session=session, principal=SYSTEM, year=2024, region="510000", categories=[category]
        ).manifest_utilised_t
        for category in (CAT, OTHER)
    }
    assert total[CAT] == total[OTHER]
    first_api = session.exec(select(Manifest).where(Manifest.number == g1["number"])).one()
    api_chain, file_chain = chains.chain_of(session, first_api), chains.chain_of(session, by_reference(session)["G1"])
    assert (file_chain.final_t, file_chain.held_t, file_chain.transit_t) == (
        api_chain.final_t,
        api_chain.held_t,
        api_chain.transit_t,
    )


@pytest.mark.parametrize("chinese", [False, True], ids=["en-headers", "zh-headers"])
def test_every_refused_source_is_named_by_row_and_column(
    session: Session, chain_world: World, tmp_path: Path, chinese: bool
) -> None:
    """Each of the writer's refusals, one a row; nothing of the file is saved, not even the good lots."""
    rows = [
        row("L1", G1, COLLECTOR, 50),  # line 2
        row("L2", G2, COLLECTOR, 30, received=None),  # 3: on the road
        row("FIN", G1, COLLECTOR, 20, "cement_admixture"),  # 4: a final step
        row("L3", G1, COLLECTOR, 10, category="SW01"),  # 5: another category
        row("X1", COLLECTOR, U, 5, "road_base", sources="NOPE"),
        row("X2", COLLECTOR, U, 60, "road_base", sources="L1:60"),
        row("X3", COLLECTOR, U, 5, "road_base", sources="L2"),
        row("X4", COLLECTOR, U, 5, "road_base", sources="FIN"),
        row("X5", COLLECTOR, U, 5, "road_base", sources="L3"),  # 10
        row("X6", COLLECTOR, U, 5, "road_base", sources="X6"),
        row("X7", COLLECTOR, U, 5, "road_base", sources="LATER"),
        row("X8", COLLECTOR, U, 5, "road_base", sources="L1;L1"),
        row("X9", G2, U, 5, "road_base", sources="L1"),  # G2 received no L1
        row("X10", COLLECTOR, U, 5, "road_base", sources="L1:1,5"),  # 15
        row("X11", COLLECTOR, U, "1,5", "road_base"),
        row("X12", COLLECTOR, U, 5, "road_base", sources="L1:0"),
        row("LATER", G1, COLLECTOR, 5),
        row("X13", COLLECTOR, U, 5, "road_base", sources=":5"),
    ]
    errors = refused(session, write(tmp_path / "bad.csv", rows, chinese=chinese, encoding="gb18030"))
    column = ZH["sources"] if chinese else "sources"
    weight = ZH["weight_dispatched_t"] if chinese else "weight_dispatched_t"
    received = ZH["weight_received_t"] if chinese else "weight_received_t"
    assert where(errors) == {
        (6, column): "waste.chain.no_source",
        (7, column): "waste.chain.overdrawn",
        (8, column): "waste.chain.source_not_received",
        (9, column): "waste.chain.source_not_a_lot",
        (10, column): "waste.chain.source_category",
        (11, column): "waste.chain.source_itself",
        (12, column): "waste.chain.source_later",
        (13, column): "waste.chain.source_twice",
        (14, column): "waste.chain.no_source",
        (15, column): "waste.import.not_a_number",
        (16, weight): "waste.import.not_a_number",
        (16, received): "waste.import.not_a_number",
        (17, column): "waste.import.source_tonnes",
        (19, column): "waste.import.source_number",
    }
    said = {e.line: (e.label.render("en"), e.problem.render("en"), e.problem.render("zh-CN")) for e in errors}
    assert said[7] == (
        column,
        "source L1 holds 50 t not yet drawn; 60 t cannot be drawn from it",
        "来源联单 L1 尚余 50 吨未转出，不能从中转出 60 吨",
    )
    assert said[11][1:] == ("sources: X6 is this manifest itself", "来源联单：X6 就是本联单自身")
    assert "LATER is line 18" in said[12][1] and "第 18 行" in said[12][2]
    assert said[15][1:] == ("not a number: '1,5'", "不是数字：“1,5”")
    assert said[9][2] == "来源联单 FIN 已进入最终环节（水泥掺合料）；只有送往贮存或收集转运的批次才能转出"


def test_a_refusal_through_the_api_speaks_the_readers_language(
    client: TestClient, session: Session, chain_world: World, tmp_path: Path
) -> None:
    w = chain_world
    path = write(tmp_path / "x.csv", [row("X", COLLECTOR, U, 5, "road_base", sources="NOPE")], chinese=True)
    for lang, expected in (
        ("en", "line 2, 来源联单: sources: NOPE is no manifest received by this shipper"),
        ("zh-CN", "第 2 行，来源联单：来源联单：NOPE 不是本移出单位接收的联单"),
    ):
        headers = {"Authorization": f"Bearer {w.tokens['admin']}", "Accept-Language": lang}
        with path.open("rb") as fh:
            answer = client.post("/api/v1/imports/manifests", files={"file": ("x.csv", fh)}, headers=headers)
        assert answer.status_code == 422
        body = answer.json()
        assert body["errors"] == [
            {"line": 2, "column": "来源联单", "reason": "sources: NOPE is no manifest received by this shipper"}
        ]
        assert expected in body["detail"], body["detail"]
    assert counts(session)[0] == 3  # the world's three manifests, no more


def test_sources_may_span_chunks_and_a_rerun_draws_on_what_is_stored(
    session: Session, chain_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are checked and written a chunk at a time: a lot in one chunk feeds a forwarding in the next."""
    w = chain_world
    monkeypatch.setattr(imports, "CHUNK", 2)
    lots = [row(f"L{n}", G1 if n % 2 else G2, COLLECTOR, 10, key=f"k{n}") for n in range(1, 6)]
    on = row("ON", COLLECTOR, U, 25, "cement_admixture", sources="L1;L2;L3;L4;L5", day=5, key="on")
    import_manifests(session=session, principal=ADMIN, source=write(tmp_path / "a.csv", [*lots, on]), now=NOW)
    session.commit()
    got = by_reference(session)
    assert draws(session, got["ON"]) == {got[f"L{n}"].id: 5 for n in range(1, 6)}
    assert credited(session, CAT) == {w.e1: 15, w.e3: 10}
    # The same lots again (skipped: imported before) and a new forwarding naming them by the file's numbers: it
    # draws on the stored lots, which still hold 5 t each.
    again = row("ON2", COLLECTOR, U, 25, "road_base", sources="L1;L2;L3;L4;L5", day=6, key="on2")
    summary = import_manifests(
        session=session, principal=ADMIN, source=write(tmp_path / "b.csv", [*lots, again]), now=NOW
    )
    session.commit()
    assert (summary.inserted, summary.skipped) == (1, 5)
    got = by_reference(session)
    assert draws(session, got["ON2"]) == {got[f"L{n}"].id: 5 for n in range(1, 6)}
    over = row("ON3", COLLECTOR, U, 1, "road_base", sources="L5", day=7)
    errors = refused(session, write(tmp_path / "c.csv", [*lots, over]))
    assert where(errors) == {(7, "sources"): "waste.chain.overdrawn"}


def test_handover_columns_are_stored_and_read_back(
    client: TestClient, session: Session, chain_world: World, tmp_path: Path
) -> None:
    w = chain_world
    handovers = [
        ("川D·12345", "公路", "吨袋", "称重"),
        ("", "皮带廊", "散装", "估算"),
        ("", "传送带", "", ""),
        ("川A12345", "管道", "", "estimated"),
        ("", "Rail", "", "weighed"),
        ("", "水路", "", ""),
    ]
    rows = [
        {
            **row(f"H{n}", G1, U, 10, "cement_admixture"),
            "vehicle_plate": plate,
            "transport_mode": mode,
            "packaging": packaging,
            "weighing": weighing,
        }
        for n, (plate, mode, packaging, weighing) in enumerate(handovers)
    ]
    import_manifests(session=session, principal=ADMIN, source=write(tmp_path / "h.csv", rows, chinese=True), now=NOW)
    session.commit()
    got = by_reference(session)
    stored = [
        (got[f"H{n}"].vehicle_plate, got[f"H{n}"].transport_mode, got[f"H{n}"].packaging, got[f"H{n}"].weighing)
        for n in range(len(handovers))
    ]
    assert stored == [
        ("川D·12345", "road", "吨袋", "weighed"),
        (None, "conveyor", "散装", "estimated"),
        (None, "conveyor", None, None),
        ("川A12345", "pipeline", None, "estimated"),
        (None, "rail", None, "weighed"),
        (None, "waterway", None, None),
    ]
    headers = {"Authorization": f"Bearer {w.tokens['admin']}"}
    detail = client.get(f"/api/v1/manifests/{got['H0'].id}", headers=headers).json()
    assert (detail["vehicle_plate"], detail["transport_mode"], detail["packaging"], detail["weighing"]) == (
        "川D·12345",
        "road",
        "吨袋",
        "weighed",
    )
    assert "vehicle_plate" in detail["sealed"]  # dispatched: sealed like the other fields of the handover

    bad = [
        {**row("B1", G1, U, 10, "cement_admixture"), "vehicle_plate": "川" * 17, "transport_mode": "飞机"},
        {**row("B2", G1, U, 10, "cement_admixture"), "packaging": "袋" * 65, "weighing": "目测"},
    ]
    errors = refused(session, write(tmp_path / "bad.csv", bad, chinese=True))
    assert where(errors) == {
        (2, "车牌号"): "waste.import.too_long",
        (2, "运输方式"): "waste.import.unknown_transport_mode",
        (3, "包装方式"): "waste.import.too_long",
        (3, "计量方式"): "waste.import.unknown_weighing",
    }
    mode = next(e for e in errors if e.column == "运输方式").problem
    assert mode.render("zh-CN") == "未知的运输方式“飞机”（可选：公路、铁路、水路、传送带、管道）"
    assert mode.render("en") == "unknown transport mode '飞机' (one of road, rail, waterway, conveyor, pipeline)"


@pytest.mark.parametrize("cell", ["1,5", "1，5", "12,50"])
def test_a_comma_that_may_be_a_decimal_point_is_refused(
    session: Session, chain_world: World, tmp_path: Path, cell: str
) -> None:
    rows = [row("L1", G1, COLLECTOR, cell), row("OK", G1, COLLECTOR, "12,500.5", key="thousands")]
    errors = refused(session, write(tmp_path / "w.csv", rows))
    assert where(errors) == {
        (2, "weight_dispatched_t"): "waste.import.not_a_number",
        (2, "weight_received_t"): "waste.import.not_a_number",
    }


def test_storage_and_transfer_are_read_in_chinese(session: Session, chain_world: World, tmp_path: Path) -> None:
    words = ["贮存", "储存", "暂存", "收集转运", "预处理", "转运"]
    rows = [row(f"R{n}", G1, COLLECTOR, 1, word) for n, word in enumerate(words)]
    import_manifests(session=session, principal=ADMIN, source=write(tmp_path / "r.csv", rows), now=NOW)
    session.commit()
    got = by_reference(session)
    assert [got[f"R{n}"].route for n in range(len(words))] == [
        "storage",
        "storage",
        "storage",
        "transfer",
        "transfer",
        "transfer",
    ]


def test_imports_racing_for_one_lot_leave_one_winner(
    engine: Engine, session: Session, chain_world: World, tmp_path: Path
) -> None:
    """50 t held; four imports each draw 30 t of it at once: one wins, the others are refused naming the lot."""
    import_manifests(
        session=session, principal=ADMIN, source=write(tmp_path / "lot.csv", [row("LOT", G1, COLLECTOR, 50)]), now=NOW
    )
    session.commit()
    lot = by_reference(session)["LOT"]
    path = write(tmp_path / "on.csv", [row("ON", COLLECTOR, U, 30, "road_base", sources=f"{lot.number}:30", day=5)])
    writes = writer(engine)  # as the app's writers: on SQLite, transactions begin IMMEDIATE
    barrier = threading.Barrier(4)

    def race(_: int) -> str:
        with Session(writes) as own:
            barrier.wait()
            try:
                import_manifests(session=own, principal=ADMIN, source=path, now=NOW)
                own.commit()
                return "drew"
            except ImportRefused as exc:
                return f"{exc.errors[0].problem.code} {exc.errors[0].problem.params['source']}"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(race, range(4)))
    assert outcomes == ["drew", *[f"waste.chain.overdrawn {lot.number}"] * 3]
    session.expire_all()
    drawn = session.exec(select(func.sum(ManifestDraw.kg)).where(ManifestDraw.source_id == lot.id)).one()
    assert drawn == 30_000
