"""Manifests through the API: the step table, idempotency, units, refusals, locks, corrections and lists."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from flows.waste import manifests
from models import AuditLog, Manifest, ManifestCorrection
from models.enums import ManifestStatus
from tests.world import World, add_receiver_account, build_world


@pytest.fixture
def world(session: Session) -> World:
    return add_receiver_account(session, build_world(session))


def _as(w: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}"}


def _count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(model)).one())


def _new(w: World, **extra: Any) -> dict[str, Any]:
    return {
        "receiver_id": w.e2,
        "category_code": "SW02",
        "route": "cement_admixture",
        "weight_dispatched_kg": 30500,
        **extra,
    }


def test_life_of_a_batch(client: TestClient, world: World, session: Session) -> None:
    w = world
    created = client.post("/api/v1/manifests", json=_new(w), headers=_as(w, "ent1"))
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["status"] == "draft" and batch["weight_dispatched_t"] == pytest.approx(30.5)  # kg converted once
    assert batch["shipper_id"] == w.e1 and batch["number"].startswith("SC20")
    assert batch["next_steps"] == ["update", "dispatch", "cancel"] and batch["sealed"] == []
    bid = batch["id"]
    # Only the receiver may confirm receipt, and only once dispatched.
    early = client.post(f"/api/v1/manifests/{bid}/receive", json={"weight_received_t": 30}, headers=_as(w, "ent2"))
    # A draft is the shipper's unsent work: the receiver does not see it yet.
    assert early.status_code == 404, early.text
    assert client.get(f"/api/v1/manifests/{bid}", headers=_as(w, "ent2")).status_code == 404
    sent = client.post(f"/api/v1/manifests/{bid}/dispatch", json={}, headers=_as(w, "ent1")).json()
    assert sent["status"] == "dispatched" and "weight_dispatched_t" in sent["sealed"]
    assert client.post(f"/api/v1/manifests/{bid}/dispatch", json={}, headers=_as(w, "ent1")).status_code == 409
    assert (
        client.patch(f"/api/v1/manifests/{bid}", json={"weight_dispatched_t": 1}, headers=_as(w, "ent1")).status_code
        == 409
    )  # sealed by dispatch
    assert (
        client.post(
            f"/api/v1/manifests/{bid}/receive", json={"weight_received_t": 30}, headers=_as(w, "ent1")
        ).status_code
        == 403
    )  # the shipper cannot confirm its own batch
    got = client.post(
        f"/api/v1/manifests/{bid}/receive", json={"weight_received_kg": 29000}, headers=_as(w, "ent2")
    ).json()
    assert got["status"] == "received" and got["weight_received_t"] == pytest.approx(29.0)
    assert got["discrepancy_t"] == pytest.approx(-1.5) and got["discrepancy_flag"]  # 4.9% > 2%
    # A correction keeps the old values; each party corrects its own side only.
    refused = client.post(
        f"/api/v1/manifests/{bid}/correct",
        json={"changes": {"weight_received_t": 30.4}, "reason": "x"},
        headers=_as(w, "ent1"),
    )
    assert refused.status_code == 403
    fixed = client.post(
        f"/api/v1/manifests/{bid}/correct",
        json={"changes": {"weight_received_t": 30.4}, "reason": "second weighbridge ticket"},
        headers=_as(w, "ent2"),
    )
    assert fixed.status_code == 200, fixed.text
    detail = fixed.json()
    assert detail["status"] == "corrected" and not detail["discrepancy_flag"]
    assert detail["corrections"] == [
        {
            **detail["corrections"][0],
            "reason": "second weighbridge ticket",
            "before": {"weight_received_t": 29.0},
            "after": {"weight_received_t": 30.4},
        }
    ]
    actions = session.exec(
        select(AuditLog.action)
        .where(AuditLog.table_name == "transfer_batch", AuditLog.row_id == str(bid))
        .order_by(col(AuditLog.id))
    ).all()
    assert actions == ["create", "dispatch", "receive", "correct"]


def test_idempotent_create(client: TestClient, world: World, session: Session) -> None:
    w = world
    before = _count(session, Manifest)
    first = client.post("/api/v1/manifests", json=_new(w), headers={**_as(w, "ent1"), "Idempotency-Key": "k-1"})
    again = client.post("/api/v1/manifests", json=_new(w), headers={**_as(w, "ent1"), "Idempotency-Key": "k-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert _count(session, Manifest) == before + 1
    other = client.post(
        "/api/v1/manifests", json=_new(w, weight_dispatched_kg=1), headers={**_as(w, "ent1"), "Idempotency-Key": "k-1"}
    )
    assert other.status_code == 409 and other.json()["field"] == "idempotency_key"
    # Another shipper may use the same key for its own batch.
    third = client.post(
        "/api/v1/manifests", json={**_new(w), "receiver_id": w.e1}, headers={**_as(w, "ent3"), "Idempotency-Key": "k-1"}
    )
    assert third.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weight_dispatched_kg": -5}, "weight_dispatched_kg"),
        ({"weight_dispatched_kg": "heavy"}, "weight_dispatched_kg"),
        ({"weight_dispatched_t": 3}, "weight_dispatched_t"),  # both t and kg
        ({"category_code": "SW08"}, "category_code"),
        ({"route": "river"}, "route"),
        ({"receiver_id": 99999}, "receiver_id"),
        ({"receiver_id": None, "receiver_uscc": "91350100M000100Y43"}, "receiver_uscc"),
    ],
)
def test_bad_manifest_names_the_field_and_saves_nothing(
    client: TestClient, world: World, session: Session, change: dict[str, Any], field: str
) -> None:
    w = world
    batches, audit = _count(session, Manifest), _count(session, AuditLog)
    response = client.post("/api/v1/manifests", json=_new(w, **change), headers=_as(w, "ent1"))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body.get("field") == field or body["detail"][0]["loc"][-1] == field
    assert (_count(session, Manifest), _count(session, AuditLog)) == (batches, audit)


def test_receiver_must_differ_and_roles_that_cannot_log(client: TestClient, world: World) -> None:
    w = world
    same = client.post("/api/v1/manifests", json=_new(w, receiver_id=w.e1), headers=_as(w, "ent1"))
    assert same.status_code == 422 and same.json()["field"] == "receiver_uscc"
    for role in ("bureau_pzh", "park_a"):
        body = _new(w, shipper_id=w.e1)
        assert client.post("/api/v1/manifests", json=body, headers=_as(w, role)).status_code == 403


def test_rejections(client: TestClient, world: World) -> None:
    w = world
    bid = w.batch_dispatched
    partial = client.post(
        f"/api/v1/manifests/{bid}/receive", json={"weight_received_t": 20, "rejected_t": 10}, headers=_as(w, "ent2")
    )
    assert partial.status_code == 422 and partial.json()["field"] == "rejection_reason"
    ok = client.post(
        f"/api/v1/manifests/{bid}/receive",
        json={"weight_received_t": 20, "rejected_t": 10, "rejection_reason": "a third was wet"},
        headers=_as(w, "ent2"),
    ).json()
    assert ok["status"] == "received" and ok["rejected_t"] == 10 and ok["discrepancy_t"] == pytest.approx(0)
    draft = client.post(
        "/api/v1/manifests", json=_new(w, dispatched_at="2024-06-01T08:00:00Z"), headers=_as(w, "ent1")
    ).json()
    assert draft["status"] == "dispatched"
    whole = client.post(
        f"/api/v1/manifests/{draft['id']}/reject", json={"rejection_reason": "not the category"}, headers=_as(w, "ent2")
    ).json()
    assert whole["status"] == "rejected" and whole["rejected_t"] == pytest.approx(30.5)
    assert whole["weight_received_t"] is None


def test_locked_year_refuses_steps_and_takes_an_approved_correction(client: TestClient, world: World) -> None:
    w = world
    assert (
        client.post(
            "/api/v1/locks",
            json={"region_adcode": "510400", "year": 2024, "confirm": True},
            headers=_as(w, "bureau_pzh"),
        ).status_code
        == 201
    )
    refused = client.post(
        f"/api/v1/manifests/{w.batch_dispatched}/receive", json={"weight_received_t": 30}, headers=_as(w, "ent2")
    )
    assert refused.status_code == 423 and "locked for region 510400" in refused.json()["detail"]
    direct = client.post(
        f"/api/v1/manifests/{w.batch_received}/correct",
        json={"changes": {"weight_dispatched_t": 29.8}, "reason": "ticket"},
        headers=_as(w, "ent1"),
    )
    assert direct.status_code == 423
    request = client.post(
        "/api/v1/corrections",
        headers=_as(w, "ent1"),
        json={
            "table": "transfer_batch",
            "reason": "weighbridge ticket re-read",
            "payload": {
                "batch_id": w.batch_received,
                "changes": {"weight_dispatched_t": 29.8},
                "reason": "weighbridge ticket re-read",
            },
        },
    )
    assert request.status_code == 201, request.text
    unchanged = client.get(f"/api/v1/manifests/{w.batch_received}", headers=_as(w, "ent1")).json()
    assert unchanged["weight_dispatched_t"] == 30.0
    approved = client.post(
        f"/api/v1/corrections/{request.json()['id']}/approve", json={"note": "seen"}, headers=_as(w, "bureau_pzh")
    )
    assert approved.status_code == 200, approved.text
    after = client.get(f"/api/v1/manifests/{w.batch_received}", headers=_as(w, "ent1")).json()
    assert after["weight_dispatched_t"] == 29.8 and after["status"] == "corrected"
    assert after["corrections"][0]["before"] == {"weight_dispatched_t": 30.0}


def test_lists_filter_sort_and_scope(client: TestClient, world: World) -> None:
    w = world
    for kg in (1000, 2000, 3000):
        client.post("/api/v1/manifests", json=_new(w, weight_dispatched_kg=kg), headers=_as(w, "ent1"))
    page = client.get(
        "/api/v1/manifests", params={"sort": "weight", "order": "asc", "limit": 2}, headers=_as(w, "ent1")
    ).json()
    assert page["count"] == 6 and [b["weight_dispatched_t"] for b in page["data"]] == [1.0, 2.0]
    drafts = client.get("/api/v1/manifests", params={"status": "draft"}, headers=_as(w, "ent1")).json()
    assert drafts["count"] == 4
    received = client.get(
        "/api/v1/manifests", params={"enterprise_id": w.e1, "direction": "received"}, headers=_as(w, "ent1")
    ).json()
    assert received["count"] == 0
    assert client.get("/api/v1/manifests", headers=_as(w, "park_a")).json()["count"] == 6
    assert client.get("/api/v1/manifests", headers=_as(w, "ent3")).json()["count"] == 0
    assert client.get("/api/v1/manifests", headers=_as(w, "bureau_dy")).json()["count"] == 0
    assert client.get(f"/api/v1/manifests/{w.batch_draft}", headers=_as(w, "ent3")).status_code == 404
    assert client.get("/api/v1/manifests", params={"sort": "colour"}, headers=_as(w, "ent1")).status_code == 422


def test_step_table_is_served_and_enforced() -> None:
    table = {row["step"]: row for row in manifests.steps_table()}
    assert table["receive"]["from"] == ["dispatched"] and table["receive"]["actor"] == "receiver"
    assert "weight_received_t" in table["receive"]["requires"]
    for status in ManifestStatus:
        for step in manifests.next_steps(status):
            assert status in manifests.STEPS[step].from_status
    assert manifests.next_steps(ManifestStatus.cancelled) == []
    assert set(manifests.sealed_fields(ManifestStatus.received)) >= {"weight_dispatched_t", "weight_received_t"}


def test_corrections_of_unlocked_batches_are_direct(client: TestClient, world: World, session: Session) -> None:
    w = world
    bad = client.post(
        f"/api/v1/manifests/{w.batch_received}/correct",
        json={"changes": {"number": "X"}, "reason": "r"},
        headers=_as(w, "ent1"),
    )
    assert bad.status_code == 422 and bad.json()["field"] == "number"
    empty = client.post(
        f"/api/v1/manifests/{w.batch_received}/correct", json={"changes": {}, "reason": "r"}, headers=_as(w, "ent1")
    )
    assert empty.status_code == 422
    assert _count(session, ManifestCorrection) == 0


def test_reporting_year_is_the_beijing_year(client: TestClient, world: World) -> None:
    """A time without an offset is Beijing time; an explicit UTC time late on 31 December is already next year."""
    w = world
    local = client.post("/api/v1/manifests", json=_new(w, dispatched_at="2024-12-31T20:00:00"), headers=_as(w, "ent1"))
    utc = client.post("/api/v1/manifests", json=_new(w, dispatched_at="2024-12-31T20:00:00Z"), headers=_as(w, "ent1"))
    assert (
        local.json()["year"] == 2024
        and local.json()["dispatched_at"].endswith("+08:00")
        or local.json()["year"] == 2024
    )
    assert utc.json()["year"] == 2025
    future = client.post(
        "/api/v1/manifests", json=_new(w, dispatched_at="2999-01-01T00:00:00Z"), headers=_as(w, "ent1")
    )
    assert future.status_code == 422 and future.json()["field"] == "dispatched_at"
