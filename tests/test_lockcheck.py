"""Locking with a checklist, and late filings into a locked year (SQLite and PostgreSQL).

The world (tests/world.py): in Panzhihua (510400) E1 ships to E2 in 2024, one batch dispatched and not received,
one received; E1 and E3 declared SW01 for 2023 only; Panzhihua's 2021 is locked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from app.settings import Settings
from flows.kernel.errors import Forbidden, InvalidInput
from flows.waste import lock_checklist
from flows.waste.flags import list_flags
from models import AuditLog, CorrectionRequest, Declaration, Enterprise, Manifest, PeriodLock
from tests.browser import serve
from tests.test_integrity import _at_once, _post
from tests.world import NOW, World, build_world

LATE_BATCH = {"category_code": "SW01", "route": "cement_admixture", "weight_dispatched_t": 12.5}


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def _as(w: World, name: str, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[name]}", "Accept-Language": lang}


def _lock(session: Session, adcode: str, year: int) -> None:
    session.add(PeriodLock(region_adcode=adcode, year=year, locked_at=NOW))
    session.commit()


def _late_batch(w: World, **changes: Any) -> dict[str, Any]:
    return {**LATE_BATCH, "receiver_id": w.e2, "dispatched_at": "2024-06-01T08:00:00+08:00", **changes}


def _manifests(session: Session) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(Manifest)).one())


def test_the_checklist_lists_what_is_open_in_the_year(session: Session, world: World) -> None:
    w = world
    bureau = w.principals["bureau_pzh"]
    found = lock_checklist.lock_checklist(session=session, principal=bureau, adcode="510400", year=2024)
    assert found.region_zh and not found.locked
    assert [b.batch_id for b in found.in_transit] == [w.batch_dispatched] and found.in_transit_count == 1
    # Both ends of a batch that moved declared nothing for 2024; the draft moved nothing.
    assert {e.enterprise_id for e in found.undeclared} == {w.e1, w.e2} and found.undeclared_count == 2
    assert {e.enterprise_id: e.manifests for e in found.undeclared} == {w.e1: 2, w.e2: 2}
    expected_flags = list_flags(session=session, principal=bureau, year=2024, region="510400", limit=1).count
    assert found.open_flags == expected_flags
    assert found.pending_count == 0 and not found.clear

    # 2023: nothing moved, nothing in transit; Deyang's bureau may not look at Panzhihua.
    quiet = lock_checklist.lock_checklist(session=session, principal=bureau, adcode="510400", year=2023)
    assert (quiet.in_transit_count, quiet.undeclared_count, quiet.pending_count) == (0, 0, 0)
    with pytest.raises(Forbidden):
        lock_checklist.lock_checklist(session=session, principal=w.principals["bureau_dy"], adcode="510400", year=2024)
    with pytest.raises(Forbidden):
        lock_checklist.lock_checklist(session=session, principal=w.principals["ent1"], adcode="510400", year=2024)


def test_a_lock_without_confirmation_is_refused_and_a_confirmed_one_keeps_its_checklist(
    session: Session, world: World
) -> None:
    w = world
    bureau = w.principals["bureau_pzh"]
    with pytest.raises(InvalidInput) as refused:
        lock_checklist.lock_year(session=session, principal=bureau, adcode="510400", year=2024, confirm=False, now=NOW)
    assert refused.value.field == "confirm"
    session.rollback()
    assert session.get(PeriodLock, ("510400", 2024)) is None
    lock_checklist.lock_year(session=session, principal=bureau, adcode="510400", year=2024, confirm=True, now=NOW)
    session.commit()
    entry = session.exec(select(AuditLog).where(AuditLog.table_name == "period_lock", AuditLog.action == "lock")).one()
    assert entry.after is not None
    seen = entry.after["checklist"]
    assert (seen["in_transit"], seen["undeclared"], seen["pending_corrections"]) == (1, 2, 0) and "open_flags" in seen


def test_the_api_gives_the_checklist_and_locks_only_when_confirmed(client: TestClient, world: World) -> None:
    w = world
    bureau = _as(w, "bureau_pzh")
    checklist = client.get("/api/v1/locks/checklist", params={"adcode": "510400", "year": 2024}, headers=bureau)
    assert checklist.status_code == 200, checklist.text
    data = checklist.json()
    assert data["in_transit_count"] == 1 and data["in_transit"][0]["batch_id"] == w.batch_dispatched
    assert data["undeclared_count"] == 2 and data["locked"] is False and data["clear"] is False
    bad = client.get("/api/v1/locks/checklist", params={"adcode": "51040", "year": 2024}, headers=bureau)
    assert bad.status_code == 422
    assert (
        client.get(
            "/api/v1/locks/checklist", params={"adcode": "510400", "year": 2024}, headers=_as(w, "bureau_dy")
        ).status_code
        == 403
    )

    unconfirmed = client.post("/api/v1/locks", json={"region_adcode": "510400", "year": 2024}, headers=bureau)
    assert unconfirmed.status_code == 422 and unconfirmed.json()["field"] == "confirm"
    locked = client.post(
        "/api/v1/locks", json={"region_adcode": "510400", "year": 2024, "confirm": True}, headers=bureau
    )
    assert locked.status_code == 201, locked.text
    again = client.get("/api/v1/locks/checklist", params={"adcode": "510400", "year": 2024}, headers=bureau)
    assert again.json()["locked"] is True


def test_a_new_batch_of_a_locked_year_is_filed_late_and_recorded_when_approved(
    client: TestClient, session: Session, world: World
) -> None:
    w = world
    _lock(session, "510400", 2024)
    before = _manifests(session)
    # A new record is not told to "file a correction": nothing exists to correct.
    refused = client.post("/api/v1/manifests", json=_late_batch(w), headers=_as(w, "ent1"))
    assert refused.status_code == 423 and "late filing" in refused.json()["detail"]
    assert "correction" not in refused.json()["detail"]
    zh = client.post("/api/v1/manifests", json=_late_batch(w), headers=_as(w, "ent1", "zh-CN"))
    assert "逾期补报" in zh.json()["detail"]

    # The late filing path: the payload is held, nothing is written yet.
    assert (
        client.post(
            "/api/v1/late-filings",
            json={"kind": "manifest", "payload": _late_batch(w), "reason": ""},
            headers=_as(w, "ent1"),
        ).status_code
        == 422
    )
    no_date = {"kind": "manifest", "payload": _late_batch(w, dispatched_at=None), "reason": "late"}
    undated = client.post("/api/v1/late-filings", json=no_date, headers=_as(w, "ent1"))
    assert undated.status_code == 422 and undated.json()["field"] == "dispatched_at"
    other = client.post(
        "/api/v1/late-filings",
        json={"kind": "manifest", "payload": _late_batch(w, shipper_id=w.e1), "reason": "late"},
        headers=_as(w, "ent3"),
    )
    assert other.status_code == 403
    body = {"kind": "manifest", "payload": _late_batch(w), "reason": "the weighbridge slips were found in March"}
    filed = client.post("/api/v1/late-filings", json=body, headers=_as(w, "ent1"))
    assert filed.status_code == 201, filed.text
    assert filed.json()["table_name"] == "late_manifest" and filed.json()["status"] == "pending"
    assert _manifests(session) == before

    # The queue shows it as a late filing, in both languages.
    page = client.get("/audit/corrections", headers=_as(w, "bureau_pzh", "zh-CN"))
    assert "逾期补报" in page.text and "新增转移联单" in page.text
    assert "Late filing" in client.get("/audit/corrections", headers=_as(w, "bureau_pzh")).text

    approved = client.post(f"/api/v1/corrections/{filed.json()['id']}/approve", json={}, headers=_as(w, "bureau_pzh"))
    assert approved.status_code == 200, approved.text
    assert _manifests(session) == before + 1
    batch = session.exec(select(Manifest).order_by(col(Manifest.id).desc())).first()
    assert batch is not None and (batch.shipper_id, batch.receiver_id, batch.year) == (w.e1, w.e2, 2024)
    assert batch.status == "dispatched" and batch.weight_dispatched_t == 12.5
    actions = session.exec(
        select(AuditLog.action).where(AuditLog.table_name == "transfer_batch", AuditLog.row_id == str(batch.id))
    ).all()
    assert sorted(actions) == ["dispatch", "late_filing"]


def test_a_new_declaration_of_a_locked_year_is_filed_late(client: TestClient, session: Session, world: World) -> None:
    w = world
    _lock(session, "510400", 2023)
    ent1 = _as(w, "ent1")
    new = {"enterprise_id": w.e1, "category_code": "SW02", "year": 2023, "generated_t": 40, "utilised_t": 30}
    refused = client.post("/api/v1/declarations", json=new, headers=ent1)
    assert refused.status_code == 423 and "late filing" in refused.json()["detail"]
    # A declaration that exists is corrected, not filed late.
    existing = {**new, "category_code": "SW01"}
    assert "correction" in client.post("/api/v1/declarations", json=existing, headers=ent1).json()["detail"]
    twice = client.post(
        "/api/v1/late-filings", json={"kind": "declaration", "payload": existing, "reason": "x"}, headers=ent1
    )
    assert twice.status_code == 409 and twice.json()["field"] == "category_code"
    # An unlocked year is written directly.
    open_year = {**new, "year": 2024}
    unlocked = client.post(
        "/api/v1/late-filings", json={"kind": "declaration", "payload": open_year, "reason": "x"}, headers=ent1
    )
    assert unlocked.status_code == 409 and unlocked.json()["field"] == "year"

    first = client.post(
        "/api/v1/late-filings", json={"kind": "declaration", "payload": new, "reason": "found late"}, headers=ent1
    )
    second = client.post(
        "/api/v1/late-filings",
        json={"kind": "declaration", "payload": {**new, "generated_t": 41}, "reason": "again"},
        headers=ent1,
    )
    assert first.status_code == second.status_code == 201
    bureau = _as(w, "bureau_sc")
    assert client.post(f"/api/v1/corrections/{first.json()['id']}/approve", json={}, headers=bureau).status_code == 200
    # The second one now finds the declaration filed: it would overwrite it without showing what changes.
    clash = client.post(f"/api/v1/corrections/{second.json()['id']}/approve", json={}, headers=bureau)
    assert clash.status_code == 409
    session.expire_all()
    stored = session.exec(
        select(Declaration).where(Declaration.enterprise_id == w.e1, Declaration.category_code == "SW02")
    ).one()
    assert stored.generated_t == 40 and stored.year == 2023
    assert session.get(CorrectionRequest, second.json()["id"]).status == "pending"  # type: ignore[union-attr]


# ---- pages ------------------------------------------------------------------------------------------------------


def test_the_locks_page_shows_the_checklist_and_asks_for_confirmation(
    client: TestClient, session: Session, world: World
) -> None:
    w = world
    bureau = _as(w, "bureau_pzh")
    page = client.get("/audit/locks", headers=bureau)
    assert 'action="/audit/locks/checklist"' in page.text
    checklist = client.get("/audit/locks/checklist", params={"region_adcode": "510400", "year": 2024}, headers=bureau)
    assert checklist.status_code == 200
    assert f'href="/batches/{w.batch_dispatched}"' in checklist.text and f'href="/enterprises/{w.e1}"' in checklist.text
    assert 'id="lock-confirm"' in checklist.text and "Test Enterprise 2" in checklist.text
    zh = client.get(
        "/audit/locks/checklist",
        params={"region_adcode": "510400", "year": 2024},
        headers=_as(w, "bureau_pzh", "zh-CN"),
    )
    assert "在途批次" in zh.text and "未申报企业" in zh.text
    assert (
        client.get(
            "/audit/locks/checklist", params={"region_adcode": "510400", "year": 1999}, headers=bureau
        ).status_code
        == 422
    )

    unconfirmed = client.post("/audit/locks", data={"region_adcode": "510400", "year": "2024"}, headers=bureau)
    assert (
        unconfirmed.status_code == 422
        and 'id="confirm-problem"' in unconfirmed.text
        and 'id="lock-checklist"' in unconfirmed.text
    )
    assert session.get(PeriodLock, ("510400", 2024)) is None
    done = client.post(
        "/audit/locks",
        data={"region_adcode": "510400", "year": "2024", "confirm": "true"},
        headers=bureau,
        follow_redirects=False,
    )
    assert done.status_code == 303
    session.expire_all()
    assert session.get(PeriodLock, ("510400", 2024)) is not None
    shown = client.get("/audit/locks/checklist", params={"region_adcode": "510400", "year": 2024}, headers=bureau)
    assert 'id="lockcheck-locked"' in shown.text and 'id="lock-confirm"' not in shown.text


def _form(w: World, **changes: str) -> dict[str, str]:
    return {
        "receiver_id": str(w.e2),
        "receiver_q": "",
        "category": "SW01",
        "route": "road_base",
        "weight": "12.5",
        "unit": "t",
        "action": "dispatch",
        "dispatched_at": "2024-06-01T08:00",
        "idempotency_key": "late-form-key",
        **changes,
    }


def test_the_batch_form_offers_the_late_filing_path(client: TestClient, session: Session, world: World) -> None:
    w = world
    _lock(session, "510400", 2024)
    ent1 = _as(w, "ent1")
    before = _manifests(session)
    offered = client.post("/batches/new", data=_form(w), headers=ent1)
    assert offered.status_code == 422 and 'id="late-filing"' in offered.text
    zh = client.post("/batches/new", data=_form(w), headers=_as(w, "ent1", "zh-CN"))
    assert "逾期补报" in zh.text
    no_reason = client.post("/batches/new", data=_form(w, action="late"), headers=ent1)
    assert no_reason.status_code == 422 and 'id="f-late_reason" name="late_reason"' in no_reason.text
    assert 'aria-invalid="true">' in no_reason.text
    # A fault of the batch itself is not waved through as late.
    bad = client.post("/batches/new", data=_form(w, action="late", weight="", late_reason="found late"), headers=ent1)
    assert bad.status_code == 422 and 'id="late-filing"' not in bad.text
    filed = client.post(
        "/batches/new", data=_form(w, action="late", late_reason="found late"), headers=ent1, follow_redirects=False
    )
    assert filed.status_code == 303, filed.text[:500]
    match = re.fullmatch(r"/batches/new\?late=(\d+)", filed.headers["location"])
    assert match
    request = session.get(CorrectionRequest, int(match.group(1)))
    assert request is not None and request.table_name == "late_manifest" and request.reason == "found late"
    assert request.payload["shipper_id"] == w.e1 and request.payload["receiver_id"] == w.e2
    assert _manifests(session) == before
    assert 'id="late-filed"' in client.get(filed.headers["location"], headers=ent1).text


# ---- one winner ---------------------------------------------------------------------------------------------------


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


def test_a_late_filing_approved_twice_at_once_is_written_once(server: str, session: Session, world: World) -> None:
    w = world
    _lock(session, "510400", 2024)
    body = {"kind": "manifest", "payload": _late_batch(w), "reason": "found late"}
    filed = httpx.post(f"{server}/api/v1/late-filings", json=body, headers=_as(w, "ent1"))
    assert filed.status_code == 201, filed.text
    cid = filed.json()["id"]
    before = _manifests(session)
    approve = [
        _post(f"{server}/api/v1/corrections/{cid}/approve", _as(w, name), {"note": "ok"})
        for name in ("bureau_pzh", "bureau_sc")
    ]
    responses = _at_once(approve)
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    assert _manifests(session) == before + 1
    approvals = session.exec(
        select(func.count()).where(
            AuditLog.table_name == "correction_request",
            AuditLog.row_id == str(cid),
            AuditLog.action == "approve_correction",
        )
    ).one()
    assert approvals == 1


# ---- declaration import -------------------------------------------------------------------------------------------


def _declarations_csv(session: Session, w: World) -> bytes:
    uscc = session.get(Enterprise, w.e1).uscc  # type: ignore[union-attr]
    lines = [
        "uscc,year,category,generated_t,utilised_t,disposed_t,stored_t,dumped_t",
        f"{uscc},2021,SW02,40,30,0,10,0",  # new, in locked 2021
        f"{uscc},2022,SW01,10,5,0,5,0",  # an open year: written directly
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_an_import_files_new_declarations_of_a_locked_year_late_when_given_a_reason(
    client: TestClient, session: Session, world: World
) -> None:
    w = world
    body = _declarations_csv(session, w)
    refused = client.post(
        "/api/v1/imports/declarations", files={"file": ("d.csv", body, "text/csv")}, headers=_as(w, "ent1")
    )
    assert refused.status_code == 422
    assert [e["line"] for e in refused.json()["errors"]] == [2]
    assert "late filing" in refused.json()["errors"][0]["reason"]

    filed = client.post(
        "/api/v1/imports/declarations",
        files={"file": ("d.csv", body, "text/csv")},
        data={"late_reason": "the 2021 ledger was found in an archive"},
        headers=_as(w, "ent1"),
    )
    assert filed.status_code == 201, filed.text
    assert (filed.json()["inserted"], filed.json()["late_filed"]) == (1, 1)
    session.expire_all()
    request = session.exec(select(CorrectionRequest).where(CorrectionRequest.table_name == "late_declaration")).one()
    assert request.year == 2021 and request.payload["category_code"] == "SW02"
    assert request.reason == "the 2021 ledger was found in an archive"
    assert session.exec(select(Declaration).where(Declaration.year == 2021)).first() is None

    # A stored declaration of a locked year still needs a correction, reason or not.
    _lock(session, "510400", 2023)
    uscc = session.get(Enterprise, w.e1).uscc  # type: ignore[union-attr]
    stored = f"uscc,year,category,generated_t,utilised_t,disposed_t,stored_t,dumped_t\n{uscc},2023,SW01,99,0,0,99,0\n"
    again = client.post(
        "/api/v1/imports/declarations",
        files={"file": ("s.csv", stored.encode(), "text/csv")},
        data={"late_reason": "x"},
        headers=_as(w, "ent1"),
    )
    assert again.status_code == 422 and "correction" in again.json()["errors"][0]["reason"]


def test_the_import_page_offers_the_late_reason(client: TestClient, session: Session, world: World) -> None:
    w = world
    page = client.get("/import", headers=_as(w, "ent1", "zh-CN"))
    assert 'name="late_reason"' in page.text and "逾期补报原因" in page.text
    done = client.post(
        "/import",
        data={"kind": "declarations", "late_reason": "档案中找到 2021 年台账"},
        files={"file": ("d.csv", _declarations_csv(session, w), "text/csv")},
        headers=_as(w, "ent1", "zh-CN"),
    )
    assert done.status_code == 200, done.text[:500]
    assert 'data-figure="late_filed">1<' in done.text and 'id="import-late-filed"' in done.text
