"""Record integrity: concurrent steps leave one winner, numbers cannot be poisoned, one side per party, locks hold.

The concurrent cases go through a real server (uvicorn on a free local port) with real parallel requests, on
SQLite and on PostgreSQL; each fires its requests at once from threads released together by a barrier.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, col, func, select

from app.settings import Settings
from flows.access.accounts import system_principal
from flows.kernel.errors import PeriodLocked
from flows.waste.imports import ImportRefused, import_manifests
from flows.waste.manifests import ManifestIn, create_manifest, dispatch
from models import AuditLog, Battery, BatteryEvent, CorrectionRequest, Enterprise, Manifest, PeriodLock
from models.enums import BatteryLevel
from tests.access_cases_battery import VIN, Chain, build_chain, code
from tests.browser import serve
from tests.world import NOW, World, add_receiver_account, build_world

ADMIN = system_principal()


@pytest.fixture
def world(session: Session) -> World:
    return add_receiver_account(session, build_world(session))


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


def _as(w: World, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[name]}"}


def _at_once(calls: list[Callable[[httpx.Client], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls in parallel threads, released together, each with its own connection."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
        with httpx.Client(timeout=120) as client:
            barrier.wait()
            return call(client)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def _post(url: str, headers: dict[str, str], body: dict[str, Any]) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(url, json=body, headers=headers)


def _audited(session: Session, table: str, row_id: Any, action: str) -> int:
    session.expire_all()
    query = select(func.count()).where(
        AuditLog.table_name == table, AuditLog.row_id == str(row_id), AuditLog.action == action
    )
    return int(session.exec(query).one())


def _dispatched(session: Session, w: World, n: int) -> list[int]:
    """n batches E1 -> E2 dispatched in 2024, made through the one writer."""
    ids = []
    for _ in range(n):
        m = ManifestIn(receiver_id=w.e2, category_code="SW01", route="cement_admixture", weight_dispatched_t=30)
        batch, _new = create_manifest(session=session, principal=w.principals["ent1"], manifest=m, now=NOW)
        assert batch.id is not None
        dispatch(
            session=session,
            principal=w.principals["ent1"],
            batch_id=batch.id,
            at=NOW.replace(year=2024, month=6),
            now=NOW,
        )
        ids.append(batch.id)
    session.commit()
    return ids


# --- concurrent steps on one record ---------------------------------------------------------------------------


def test_eight_parallel_receipts_leave_one(server: str, world: World, session: Session) -> None:
    w = world
    url = f"{server}/api/v1/manifests/{w.batch_dispatched}/receive"
    body = {"weight_received_t": 29.9, "received_at": "2024-05-02T18:00:00+08:00"}
    responses = _at_once([_post(url, _as(w, "ent2"), body) for _ in range(8)])
    assert _statuses(responses) == Counter({200: 1, 409: 7}), [r.text for r in responses]
    assert all("is received" in r.json()["detail"] for r in responses if r.status_code == 409)
    assert _audited(session, "transfer_batch", w.batch_dispatched, "receive") == 1
    stored = session.get(Manifest, w.batch_dispatched, populate_existing=True)
    assert stored is not None and stored.status == "received"


def test_receipt_and_cancellation_at_once_leave_one(server: str, world: World, session: Session) -> None:
    w = world
    for batch_id in _dispatched(session, w, 4):
        receive = _post(
            f"{server}/api/v1/manifests/{batch_id}/receive",
            _as(w, "ent2"),
            {"weight_received_t": 30, "received_at": "2024-06-03T10:00:00+08:00"},
        )
        cancel = _post(f"{server}/api/v1/manifests/{batch_id}/cancel", _as(w, "ent1"), {"cancel_reason": "wrong lot"})
        responses = _at_once([receive, cancel])
        assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
        stored = session.get(Manifest, batch_id, populate_existing=True)
        assert stored is not None
        # Never a cancelled batch with a received weight, or a received one with a cancel reason.
        if stored.status == "received":
            assert stored.cancel_reason is None and stored.weight_received_t == 30
        else:
            assert stored.status == "cancelled" and stored.weight_received_t is None


def test_a_correction_approved_and_rejected_at_once_is_one_of_them(server: str, world: World, session: Session) -> None:
    w = world
    session.add(PeriodLock(region_adcode="510400", year=2024, locked_at=NOW))
    session.commit()
    filed = httpx.post(
        f"{server}/api/v1/corrections",
        json={
            "table": "transfer_batch",
            "payload": {"batch_id": w.batch_received, "changes": {"weight_received_t": 29.5}},
            "reason": "weighbridge recalibrated",
        },
        headers=_as(w, "ent2"),
    )
    assert filed.status_code == 201, filed.text
    cid = filed.json()["id"]
    approve = _post(f"{server}/api/v1/corrections/{cid}/approve", _as(w, "bureau_pzh"), {"note": "ok"})
    reject = _post(f"{server}/api/v1/corrections/{cid}/reject", _as(w, "bureau_sc"), {"note": "no"})
    responses = _at_once([approve, reject])
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    session.expire_all()
    correction = session.get(CorrectionRequest, cid)
    batch = session.get(Manifest, w.batch_received)
    assert correction is not None and batch is not None
    assert batch.weight_received_t == (Decimal("29.5") if correction.status == "approved" else Decimal("29.8"))
    decisions = session.exec(
        select(func.count()).where(
            AuditLog.table_name == "correction_request",
            AuditLog.row_id == str(cid),
            col(AuditLog.action).in_(["approve_correction", "reject_correction"]),
        )
    ).one()
    assert decisions == 1


def test_parallel_locks_and_unlocks_leave_one(server: str, world: World, session: Session) -> None:
    w = world
    lock = _post(
        f"{server}/api/v1/locks", _as(w, "bureau_sc"), {"region_adcode": "510600", "year": 2023, "confirm": True}
    )
    responses = _at_once([lock] * 4)
    assert _statuses(responses) == Counter({201: 1, 409: 3}), [r.text for r in responses]

    def unlock(client: httpx.Client) -> httpx.Response:
        return client.delete(f"{server}/api/v1/locks/510600/2023", headers=_as(w, "bureau_sc"))

    responses = _at_once([unlock] * 4)
    assert _statuses(responses) == Counter({204: 1, 409: 3}), [r.text for r in responses]
    session.expire_all()
    assert session.get(PeriodLock, ("510600", 2023)) is None


def test_parallel_creates_get_distinct_numbers(server: str, world: World, session: Session) -> None:
    w = world
    body = {"receiver_id": w.e2, "category_code": "SW01", "route": "cement_admixture", "weight_dispatched_t": 5}
    responses = _at_once([_post(f"{server}/api/v1/manifests", _as(w, "ent1"), body) for _ in range(8)])
    assert _statuses(responses) == Counter({201: 8}), [r.text for r in responses]
    numbers = sorted(r.json()["number"] for r in responses)
    year = numbers[0][2:6]
    # The year's counter hands out consecutive numbers: none lost, none twice.
    assert numbers == [f"SC{year}-{n:07d}" for n in range(1, 9)]


def test_parallel_first_attempts_with_one_key_make_one_batch(server: str, world: World, session: Session) -> None:
    w = world
    body = {"receiver_id": w.e2, "category_code": "SW01", "route": "cement_admixture", "weight_dispatched_t": 5}
    headers = {**_as(w, "ent1"), "Idempotency-Key": "lot-77"}
    responses = _at_once([_post(f"{server}/api/v1/manifests", headers, body) for _ in range(6)])
    assert _statuses(responses) == Counter({201: 1, 200: 5}), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    session.expire_all()
    count = session.exec(select(func.count()).where(Manifest.idempotency_key == "lot-77")).one()
    assert count == 1


def test_two_collectors_at_once_leave_one_holder(server: str, world: World, session: Session) -> None:
    chain = build_chain(session, world)
    pack = _retired_pack(session, chain)
    calls = [
        _post(
            f"{server}/api/v1/batteries/{pack}/events",
            {"Authorization": f"Bearer {chain.tokens[name]}"},
            {"type": "collected", "occurred_at": "2024-03-01T10:00:00+08:00"},
        )
        for name in ("outlet", "recycler", "outlet", "recycler")
    ]
    responses = _at_once(calls)
    assert _statuses(responses)[201] == 1, [r.text for r in responses]
    assert all(r.status_code in (201, 404, 409) for r in responses), [r.text for r in responses]
    session.expire_all()
    stored = session.exec(select(Battery).where(Battery.code == pack)).one()
    collections = session.exec(
        select(func.count()).where(BatteryEvent.battery_id == stored.id, BatteryEvent.type == "collected")
    ).one()
    assert stored.state == "collected" and collections == 1


# --- numbering ------------------------------------------------------------------------------------------------


def test_numbers_typed_by_a_user_cannot_block_numbering(
    client: Any, world: World, session: Session, tmp_path: Path
) -> None:
    w = world
    path = tmp_path / "poison.csv"
    path.write_text(
        "number,receiver_uscc,category,route,weight_dispatched_t,dispatched_at\n"
        f"SC2026-zzz,{_uscc(session, w.e2)},SW01,cement_admixture,1,2024-06-01\n"
        f"SC2024-9999999,{_uscc(session, w.e2)},SW01,cement_admixture,1,2024-06-01\n",
        encoding="utf-8",
    )
    summary = import_manifests(session=session, principal=w.principals["ent1"], source=path, now=NOW)
    session.commit()
    assert summary.inserted == 2
    session.expire_all()
    stored = session.exec(select(Manifest).where(col(Manifest.reference).is_not(None))).all()
    assert sorted(b.reference or "" for b in stored) == ["SC2024-9999999", "SC2026-zzz"]
    assert sorted(b.number for b in stored) == ["SC2024-0000004", "SC2024-0000005"]
    body = {
        "receiver_id": w.e2,
        "category_code": "SW01",
        "route": "cement_admixture",
        "weight_dispatched_t": 2,
        "dispatched_at": "2024-06-02T08:00:00+08:00",
    }
    for name in ("ent1", "ent3"):
        made = client.post("/api/v1/manifests", json={**body, "receiver_id": w.e2}, headers=_as(w, name))
        assert made.status_code == 201, made.text
    numbers = sorted(b.number for b in session.exec(select(Manifest).where(Manifest.year == 2024)).all())
    assert numbers == [f"SC2024-{n:07d}" for n in range(1, 8)]


def _uscc(session: Session, enterprise_id: int) -> str:
    enterprise = session.get(Enterprise, enterprise_id)
    assert enterprise is not None
    return enterprise.uscc


# --- one side per party ---------------------------------------------------------------------------------------


def test_a_shipper_import_cannot_record_the_receipt(world: World, session: Session, tmp_path: Path) -> None:
    w = world
    path = tmp_path / "receipt.csv"
    path.write_text(
        "receiver_uscc,category,route,weight_dispatched_t,dispatched_at,weight_received_t,received_at\n"
        f"{_uscc(session, w.e2)},SW01,cement_admixture,30,2024-06-01 08:00,30,2024-06-01 12:00\n",
        encoding="utf-8",
    )
    before = session.exec(select(func.count()).select_from(Manifest)).one()
    with pytest.raises(ImportRefused) as refused:
        import_manifests(session=session, principal=w.principals["ent1"], source=path, now=NOW)
    session.rollback()
    assert [(e.line, e.column) for e in refused.value.errors] == [(2, "weight_received_t")]
    assert "receiver records the receipt" in refused.value.errors[0].reason
    assert session.exec(select(func.count()).select_from(Manifest)).one() == before


def test_a_correction_request_is_checked_when_filed_and_applied_with_the_filers_rights(
    client: Any, world: World, session: Session
) -> None:
    w = world
    session.add(PeriodLock(region_adcode="510400", year=2024, locked_at=NOW))
    session.commit()

    def file(changes: dict[str, Any]) -> Any:
        payload = {"batch_id": w.batch_received, "changes": changes}
        body = {"table": "transfer_batch", "payload": payload, "reason": "recount"}
        return client.post("/api/v1/corrections", json=body, headers=_as(w, "ent2"))

    before = session.exec(select(func.count()).select_from(CorrectionRequest)).one()
    shippers = file({"weight_dispatched_t": 1, "weight_received_t": 29})
    assert shippers.status_code == 403 and shippers.json()["field"] == "weight_dispatched_t", shippers.text
    assert file({"route": "disposal"}).status_code == 403
    assert file({"weight_received_t": -3}).status_code == 422
    assert file({"received_at": "yesterday"}).status_code == 422
    assert session.exec(select(func.count()).select_from(CorrectionRequest)).one() == before
    good = file({"weight_received_t": 29.1})
    assert good.status_code == 201, good.text
    approved = client.post(f"/api/v1/corrections/{good.json()['id']}/approve", json={}, headers=_as(w, "bureau_pzh"))
    assert approved.status_code == 200, approved.text
    session.expire_all()
    batch = session.get(Manifest, w.batch_received)
    assert batch is not None and batch.weight_received_t == Decimal("29.1") and batch.weight_dispatched_t == 30


# --- locked years ---------------------------------------------------------------------------------------------


def test_a_draft_cannot_be_dispatched_into_a_locked_year(client: Any, world: World, session: Session) -> None:
    w = world
    # 2021 is locked for Panzhihua in the world; the draft was made in 2024.
    refused = client.post(
        f"/api/v1/manifests/{w.batch_draft}/dispatch",
        json={"dispatched_at": "2021-06-01T08:00:00+08:00"},
        headers=_as(w, "ent1"),
    )
    assert refused.status_code == 423, refused.text
    session.expire_all()
    batch = session.get(Manifest, w.batch_draft)
    assert batch is not None and (batch.status, batch.year, batch.dispatched_at) == ("draft", 2024, None)
    with pytest.raises(PeriodLocked):
        dispatch(
            session=session,
            principal=w.principals["ent1"],
            batch_id=w.batch_draft,
            at=NOW.replace(year=2021),
            now=NOW,
        )


def test_a_correction_cannot_move_a_batch_into_a_locked_year(client: Any, world: World, session: Session) -> None:
    w = world
    refused = client.post(
        f"/api/v1/manifests/{w.batch_received}/correct",
        json={"changes": {"dispatched_at": "2021-05-02T08:00:00+08:00"}, "reason": "wrong date"},
        headers=_as(w, "ent1"),
    )
    assert refused.status_code == 423, refused.text
    moved = client.post(
        f"/api/v1/manifests/{w.batch_received}/correct",
        json={"changes": {"dispatched_at": "2023-12-30T08:00:00+08:00"}, "reason": "wrong date"},
        headers=_as(w, "ent1"),
    )
    assert moved.status_code == 200 and moved.json()["year"] == 2023, moved.text


# --- batteries: one's own side, and nothing revealed ------------------------------------------------------------


def _retired_pack(session: Session, chain: Chain) -> str:
    """A pack made by E1, fitted and retired by the vehicle maker, which holds it."""
    from flows.battery import chain as battery

    pack = code(BatteryLevel.pack, 71)
    battery.register_batteries(
        session=session, principal=ADMIN, rows=[{"code": pack, "maker_id": chain.maker}], now=NOW
    )
    for type_, when, reporter, extra in (
        ("transferred", "2019-03-01T10:00", chain.maker, {"counterpart_id": chain.vehicle}),
        ("installed", "2019-03-10T10:00", chain.vehicle, {"vin": VIN}),
        ("retired", "2024-01-08T10:00", chain.vehicle, {}),
    ):
        row = {"type": type_, "occurred_at": when, "reporter_id": reporter, **extra}
        battery.record_event(session=session, principal=ADMIN, code=pack, row=row, now=NOW)
    session.commit()
    return pack


def test_an_enterprise_without_a_battery_role_cannot_take_a_battery(
    client: Any, world: World, session: Session
) -> None:
    chain = build_chain(session, world)
    pack = _retired_pack(session, chain)
    # E2 is a solid-waste utiliser with no battery role.
    taken = client.post(
        f"/api/v1/batteries/{pack}/events",
        json={"type": "collected", "occurred_at": "2024-03-01T10:00:00+08:00"},
        headers=_as(world, "ent2"),
    )
    assert taken.status_code == 403 and taken.json()["field"] == "reporter", taken.text
    assert client.get(f"/api/v1/batteries/{pack}/trace", headers=_as(world, "ent2")).status_code == 404
    stored = session.exec(select(Battery).where(Battery.code == pack)).one()
    session.refresh(stored)
    assert (stored.state, stored.holder_id) == ("retired", chain.vehicle)


def test_a_refusal_on_a_battery_one_cannot_read_reveals_nothing(client: Any, world: World, session: Session) -> None:
    chain = build_chain(session, world)
    pack = _retired_pack(session, chain)
    unknown = code(BatteryLevel.pack, 72)
    headers = {"Authorization": f"Bearer {chain.tokens['recycler']}"}
    answers = {}
    for name, target in (("known", pack), ("unknown", unknown)):
        answers[name] = client.post(
            f"/api/v1/batteries/{target}/events",
            json={"type": "dismantled", "occurred_at": "2024-03-01T10:00:00+08:00"},
            headers=headers,
        )
    assert answers["known"].status_code == answers["unknown"].status_code == 404
    known, unknown_body = answers["known"].json(), answers["unknown"].json()
    assert known["detail"].replace(pack, "X") == unknown_body["detail"].replace(unknown, "X")
    assert "retired" not in known["detail"] and "held by" not in known["detail"]


# --- the server keeps answering ----------------------------------------------------------------------------------


def test_health_answers_while_every_writer_waits(
    server: str, world: World, session: Session, engine: Engine, backend: str
) -> None:
    w = world
    body = {"receiver_id": w.e2, "category_code": "SW01", "route": "cement_admixture", "weight_dispatched_t": 1}
    blocker = engine.connect()
    try:
        # Hold the write lock (SQLite) or the year's number counter (PostgreSQL) so that every create waits.
        if backend == "sqlite":
            blocker.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            blocker.execute(text("BEGIN"))
            blocker.execute(text("LOCK TABLE number_counter IN EXCLUSIVE MODE"))
        results: list[httpx.Response] = []

        def create() -> None:
            with httpx.Client(timeout=120) as c:
                results.append(c.post(f"{server}/api/v1/manifests", json=body, headers=_as(w, "ent1")))

        writers = [threading.Thread(target=create) for _ in range(16)]
        for t in writers:
            t.start()
        health = [httpx.get(f"{server}/healthz", timeout=30) for _ in range(3)]
        # The app's own bound: a health check that cannot answer within a second says 503.
        assert [h.status_code for h in health] == [200, 200, 200], [h.text for h in health]
        assert not results  # the writers were still waiting
    finally:
        blocker.rollback()
        blocker.close()
    for t in writers:
        t.join(timeout=120)
    assert Counter(r.status_code for r in results) == Counter({201: 16}), [r.text for r in results]


def test_serve_runs_several_workers(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "CIRCUFLOW_DATABASE_URL": db_url,
        "CIRCUFLOW_DATA_DIR": str(tmp_path),
        "CIRCUFLOW_ENVIRONMENT": "test",
        "CIRCUFLOW_SECRET_KEY": "workers-test-secret-" + "x" * 16,
    }
    command = [str(Path(sys.executable).parent / "circuflow"), "serve", "--workers", "2", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180  # a loaded machine starts two workers slowly
        answered = None
        while time.monotonic() < deadline:
            try:
                answered = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert answered is not None and answered.status_code == 200
        # uvicorn's supervisor and two worker processes, each with the app.
        children = subprocess.run(
            ["ps", "--ppid", str(server.pid), "-o", "pid="], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) >= 2, children
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_more_requests_than_threads_and_connections_all_answer(settings: Settings, world: World) -> None:
    # Two connections, and more requests at once than the thread pool has threads: each request holds its
    # connection across several thread hops, so without admission the threads would all wait for connections held
    # by requests waiting for a thread, until the pool's timeout answered 503.
    small = settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout_s": 20.0})
    with serve(small) as url:
        calls = [
            (lambda client: client.get(f"{url}/api/v1/manifests?limit=5", headers=_as(world, "bureau_sc")))
            for _ in range(48)
        ]
        responses = _at_once(calls)
    assert _statuses(responses) == Counter({200: 48}), [r.text[:200] for r in responses if r.status_code != 200]
