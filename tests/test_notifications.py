"""Notifications: written by the events in their transaction, read and marked through the API, e-mailed after commit."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.main import create_app
from app.settings import Settings
from flows.notices import inbox, mail
from flows.waste import manifests
from models import Notice
from tests.conftest import TEST_SECRET
from tests.world import World, add_receiver_account, build_world


@pytest.fixture
def world(session: Session) -> World:
    return add_receiver_account(session, build_world(session))


def _as(w: World, who: str, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[who]}", "Accept-Language": lang}


def _inbox(client: TestClient, w: World, who: str, lang: str = "en", **params: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/notifications", params=params, headers=_as(w, who, lang))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _kinds(client: TestClient, w: World, who: str) -> list[str]:
    return sorted(n["kind"] for n in _inbox(client, w, who)["data"])


def _new_batch(client: TestClient, w: World, kg: int = 30_000) -> dict[str, Any]:
    body = {"receiver_id": w.e2, "category_code": "SW02", "route": "cement_admixture", "weight_dispatched_kg": kg}
    created = client.post("/api/v1/manifests", json=body, headers=_as(w, "ent1"))
    assert created.status_code == 201, created.text
    sent = client.post(f"/api/v1/manifests/{created.json()['id']}/dispatch", json={}, headers=_as(w, "ent1"))
    assert sent.status_code == 200, sent.text
    batch: dict[str, Any] = sent.json()
    return batch


def test_dispatch_tells_the_receiver_and_flags_an_unlicensed_receiver(client: TestClient, world: World) -> None:
    w = world
    batch = _new_batch(client, w)
    # E2 holds no licence for SW02: the flag reaches both parties; the batch to receive reaches only the receiver.
    assert _kinds(client, w, "ent2") == ["batch_awaiting", "flag_raised"]
    assert _kinds(client, w, "ent1") == ["flag_raised"]
    assert _kinds(client, w, "ent3") == [] and _kinds(client, w, "bureau_dy") == []
    awaiting = next(n for n in _inbox(client, w, "ent2")["data"] if n["kind"] == "batch_awaiting")
    assert awaiting["link"] == f"/batches/{batch['id']}" and awaiting["read_at"] is None
    assert (
        batch["number"] in awaiting["text"] and "30 t" in awaiting["text"] and "Test Enterprise 1" in awaiting["text"]
    )
    zh = next(n for n in _inbox(client, w, "ent2", "zh-CN")["data"] if n["kind"] == "batch_awaiting")
    assert "测试企业1" in zh["text"] and "30吨" in zh["text"] and "待确认接收" in zh["text"]


def test_refusals_gaps_and_corrections_reach_the_shipper(client: TestClient, world: World) -> None:
    w = world
    part = _new_batch(client, w)
    got = client.post(
        f"/api/v1/manifests/{part['id']}/receive",
        json={"weight_received_t": 25, "rejected_t": 2, "rejection_reason": "wet"},
        headers=_as(w, "ent2"),
    )
    assert got.status_code == 200, got.text
    shipper = {n["kind"]: n for n in _inbox(client, w, "ent1")["data"]}
    assert {"batch_part_refused", "weight_gap"} <= set(shipper)
    assert "refused 2 t" in shipper["batch_part_refused"]["text"] and "wet" in shipper["batch_part_refused"]["text"]
    assert "-10.0%" in shipper["weight_gap"]["text"] and "2% tolerance" in shipper["weight_gap"]["text"]
    # The receiver recorded the weights: it is not told of its own act.
    assert "weight_gap" not in _kinds(client, w, "ent2")
    whole = _new_batch(client, w)
    client.post(
        f"/api/v1/manifests/{whole['id']}/reject", json={"rejection_reason": "not ours"}, headers=_as(w, "ent2")
    )
    refused = [n for n in _inbox(client, w, "ent1")["data"] if n["kind"] == "batch_refused"]
    assert len(refused) == 1 and "not ours" in refused[0]["text"] and whole["number"] in refused[0]["text"]
    # A weight within the tolerance is no news; a correction by the receiver is, for the shipper.
    fine = _new_batch(client, w)
    client.post(f"/api/v1/manifests/{fine['id']}/receive", json={"weight_received_t": 29.9}, headers=_as(w, "ent2"))
    gaps = [n for n in _inbox(client, w, "ent1")["data"] if n["kind"] == "weight_gap"]
    assert [g["subject_id"] for g in gaps] == [str(part["id"])]
    fixed = client.post(
        f"/api/v1/manifests/{fine['id']}/correct",
        json={"changes": {"weight_received_t": 20}, "reason": "ticket"},
        headers=_as(w, "ent2"),
    )
    assert fixed.status_code == 200, fixed.text
    news = [n for n in _inbox(client, w, "ent1")["data"] if n["subject_id"] == str(fine["id"])]
    assert {n["kind"] for n in news} == {"flag_raised", "batch_corrected", "weight_gap"}


def test_locks_correction_requests_and_decisions(client: TestClient, world: World) -> None:
    w = world
    locked = client.post(
        "/api/v1/locks", json={"region_adcode": "510400", "year": 2024, "confirm": True}, headers=_as(w, "bureau_pzh")
    )
    assert locked.status_code == 201, locked.text
    # Everyone whose scope lies in Panzhihua, and the province's bureau above it; not the bureau that locked it.
    for who in ("ent1", "ent2", "park_a", "bureau_sc"):
        assert _kinds(client, w, who) == ["period_locked"], who
    for who in ("bureau_pzh", "bureau_dy", "ent3", "park_b", "admin"):
        assert _kinds(client, w, who) == [], who
    lock_news = _inbox(client, w, "bureau_sc")["data"][0]
    assert "2024" in lock_news["text"] and lock_news["link"] == "/audit/locks?year=2024"
    assert _inbox(client, w, "ent1")["data"][0]["link"] is None  # the audit workspace is not theirs
    request = client.post(
        "/api/v1/corrections",
        headers=_as(w, "ent1"),
        json={
            "table": "transfer_batch",
            "reason": "ticket re-read",
            "payload": {"batch_id": w.batch_received, "changes": {"weight_dispatched_t": 29.8}},
        },
    )
    assert request.status_code == 201, request.text
    asked = [n for n in _inbox(client, w, "ent2")["data"] if n["kind"] == "correction_requested"]
    assert len(asked) == 1 and "ticket re-read" in asked[0]["text"]
    assert asked[0]["link"] == f"/batches/{w.batch_received}"
    # The bureaus above the parties hear that a decision awaits them, with a link to the queue; others do not.
    for who in ("bureau_pzh", "bureau_sc"):
        awaiting = [n for n in _inbox(client, w, who)["data"] if n["kind"] == "correction_awaiting"]
        assert len(awaiting) == 1 and awaiting[0]["link"] == "/audit/corrections", who
    assert not [n for n in _inbox(client, w, "bureau_dy")["data"] if n["kind"] == "correction_awaiting"]
    refused = client.post(
        f"/api/v1/corrections/{request.json()['id']}/reject", json={"note": "no ticket"}, headers=_as(w, "bureau_pzh")
    )
    assert refused.status_code == 200, refused.text
    decided = [n for n in _inbox(client, w, "ent1")["data"] if n["kind"] == "correction_rejected"]
    assert len(decided) == 1 and "no ticket" in decided[0]["text"]
    zh = [n for n in _inbox(client, w, "ent1", "zh-CN")["data"] if n["kind"] == "correction_rejected"]
    assert "未获批准" in zh[0]["text"] and "no ticket" in zh[0]["text"]
    unlocked = client.delete("/api/v1/locks/510400/2024", headers=_as(w, "bureau_pzh"))
    assert unlocked.status_code == 204, unlocked.text
    assert _kinds(client, w, "ent1") == ["correction_rejected", "period_locked", "period_unlocked"]


def test_read_one_read_all_unread_filter_paging_and_owner(client: TestClient, world: World) -> None:
    w = world
    for _ in range(3):
        _new_batch(client, w)
    page = _inbox(client, w, "ent2", limit=2)
    assert page["count"] == 6 and page["unread"] == 6 and len(page["data"]) == 2
    ids = [n["id"] for n in page["data"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    read = client.post(f"/api/v1/notifications/{ids[0]}/read", headers=_as(w, "ent2"))
    assert read.status_code == 200 and read.json()["read_at"] is not None
    again = client.post(f"/api/v1/notifications/{ids[0]}/read", headers=_as(w, "ent2"))
    assert again.json()["read_at"] == read.json()["read_at"]  # marking twice keeps the first moment
    unread = _inbox(client, w, "ent2", unread="true")
    assert unread["count"] == 5 and ids[0] not in [n["id"] for n in unread["data"]]
    # Another user's notification is not found, and not marked.
    assert client.post(f"/api/v1/notifications/{ids[1]}/read", headers=_as(w, "ent1")).status_code == 404
    assert _inbox(client, w, "ent2", unread="true")["count"] == 5
    marked = client.post("/api/v1/notifications/read-all", headers=_as(w, "ent2"))
    assert marked.json() == {"marked": 5}
    assert _inbox(client, w, "ent2")["unread"] == 0 and _inbox(client, w, "ent1")["unread"] == 3
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"unread": "perhaps"}):
        answer = client.get("/api/v1/notifications", params=bad, headers=_as(w, "ent2"))
        assert answer.status_code == 422, bad
    assert client.get("/api/v1/notifications").status_code == 401


def test_a_notification_is_written_in_the_event_transaction(engine: Engine, world: World) -> None:
    w = world
    with Session(engine) as session:
        manifests.dispatch(
            session=session,
            principal=w.principals["ent1"],
            batch_id=w.batch_draft,
            at=datetime(2024, 5, 3, tzinfo=UTC),
            now=datetime.now(UTC),
        )
        pending = session.exec(select(Notice).where(col(Notice.subject_id) == str(w.batch_draft))).all()
        assert pending  # written, not yet committed
        session.rollback()
    with Session(engine) as session:
        assert session.exec(select(Notice)).all() == []  # the step rolled back, and its notifications with it


def test_preferences_are_checked(client: TestClient, world: World) -> None:
    w = world
    assert client.get("/api/v1/notifications/preferences", headers=_as(w, "ent2")).json() == {
        "email": "",
        "mail_enabled": True,
    }
    bad = client.put("/api/v1/notifications/preferences", json={"email": "not an address"}, headers=_as(w, "ent2"))
    assert bad.status_code == 422 and "email" in bad.text
    too_long = client.put("/api/v1/notifications/preferences", json={"email": "a" * 300}, headers=_as(w, "ent2"))
    assert too_long.status_code == 422
    ok = client.put(
        "/api/v1/notifications/preferences",
        json={"email": "store@example.com", "mail_enabled": False},
        headers=_as(w, "ent2"),
    )
    assert ok.json() == {"email": "store@example.com", "mail_enabled": False}


# --- e-mail, against a real SMTP server on 127.0.0.1 ----------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    handler = _Inbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _subject(message: Any) -> str:
    return str(make_header(decode_header(message["Subject"])))


def _wait(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_email_is_sent_after_commit_in_the_readers_language(
    db_url: str, tmp_path: Any, world: World, smtp: tuple[_Inbox, int]
) -> None:
    w = world
    handler, port = smtp
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path,
        environment="test",
        secret_key=TEST_SECRET,
        smtp_url=f"smtp://127.0.0.1:{port}",
        smtp_from="noreply@circuflow.test",
        smtp_poll_s=0.1,
        mail_base_url="https://circuflow.example",
    )
    with TestClient(create_app(settings)) as client:
        client.put("/api/v1/notifications/preferences", json={"email": "store@example.com"}, headers=_as(w, "ent2"))
        batch = _new_batch(client, w)
        _wait(lambda: len(handler.messages) == 2)
        by_subject = {_subject(m): m for m in handler.messages}
        awaiting = next(m for s, m in by_subject.items() if batch["number"] in s and "待确认接收" in s)
        assert awaiting["To"] == "store@example.com" and "noreply@circuflow.test" in awaiting["From"]
        body = awaiting.get_payload(decode=True).decode()
        assert f"https://circuflow.example/batches/{batch['id']}" in body and "测试企业1" in body
        states = {n["kind"]: n["mail_state"] for n in _inbox(client, w, "ent2")["data"]}
        assert states == {"batch_awaiting": "sent", "flag_raised": "sent"}
        # The shipper gave no address: its flag stays in the inbox and is never e-mailed.
        assert [n["mail_state"] for n in _inbox(client, w, "ent1")["data"]] == ["none"]
        # Opted out: the next notifications are not e-mailed.
        client.put("/api/v1/notifications/preferences", json={"mail_enabled": False}, headers=_as(w, "ent2"))
        _new_batch(client, w)
        time.sleep(0.5)
        assert len(handler.messages) == 2
        assert {n["mail_state"] for n in _inbox(client, w, "ent2")["data"][:2]} == {"none"}


def test_a_failed_send_is_retried_and_the_notification_kept(engine: Engine, world: World) -> None:
    w = world
    with Session(engine) as session:
        inbox.set_preferences(
            session=session,
            user_id=w.principals["ent2"].user_id,
            email="store@example.com",
            mail_enabled=True,
            now=_now(),
        )
        session.commit()
    with Session(engine) as session:
        manifests.dispatch(
            session=session,
            principal=w.principals["ent1"],
            batch_id=w.batch_draft,
            at=datetime(2024, 5, 3, tzinfo=UTC),
            now=_now(),
        )
        session.commit()
    port = _free_port()  # nothing listens there yet
    target = mail.parse_smtp_url(f"smtp://127.0.0.1:{port}", "noreply@circuflow.test")
    clock = [_now()]

    def sessions() -> Session:
        return Session(engine, expire_on_commit=False)

    assert mail.send_due(sessions=sessions, target=target, clock=lambda: clock[0]) == 0
    with Session(engine) as session:
        rows = session.exec(select(Notice).where(Notice.mail_state == "pending")).all()
        assert rows and all(r.mail_attempts == 1 and r.mail_error for r in rows)
        assert all(r.mail_next_at and r.mail_next_at > clock[0] for r in rows)
    # Not due yet: nothing is tried.
    assert mail.send_due(sessions=sessions, target=target, clock=lambda: clock[0]) == 0
    handler = _Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock[0] += timedelta(minutes=5)
        # Two workers at once: each e-mail is claimed by one of them and sent once.
        counts: list[int] = []
        workers = [
            threading.Thread(
                target=lambda: counts.append(mail.send_due(sessions=sessions, target=target, clock=lambda: clock[0]))
            )
            for _ in range(2)
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        assert sum(counts) == len(rows) == len(handler.messages)
    finally:
        controller.stop()
    with Session(engine) as session:
        mailed = session.exec(select(Notice).where(Notice.user_id == w.principals["ent2"].user_id)).all()
        assert {n.mail_state for n in mailed} == {"sent"} and all(n.read_at is None for n in mailed)


def _now() -> datetime:
    return datetime.now(UTC)


def test_smtp_urls() -> None:
    plain = mail.parse_smtp_url("smtp://mail.example:2525", "a@b.c")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("mail.example", 2525, "none", "")
    tls = mail.parse_smtp_url("smtp://u%40x:p%3Aw@mail.example?starttls=true", "a@b.c")
    assert (tls.port, tls.tls, tls.username, tls.password) == (587, "starttls", "u@x", "p:w")
    assert mail.parse_smtp_url("smtps://mail.example", "a@b.c").port == 465
    for bad in ("http://mail.example", "smtp://", "smtp://host:99999"):
        with pytest.raises(ValueError):
            mail.parse_smtp_url(bad, "a@b.c")
    with pytest.raises(ValueError):
        Settings(smtp_url="mailto:x")
