"""Correction asks: a bureau asks, the enterprise files or contests, the bureau decides; races leave one winner."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.settings import Settings
from flows.kernel.clock import CST
from flows.kernel.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from flows.waste import correction_asks as asks
from models import AuditLog, CorrectionAsk, CorrectionRequest, Declaration, Manifest
from models.db import writer
from models.notices import Notice
from tests.test_web_audit import _sign_in as sign_in
from tests.world import NOW, World, add_receiver_account, build_world, t

DUE = date(2025, 3, 15)


def _ask(session: Session, w: World, role: str = "bureau_pzh", **changes: Any) -> CorrectionAsk:
    args: dict[str, Any] = {
        "table": "transfer_batch",
        "row_id": w.batch_received,
        "fields": ["weight_dispatched_t"],
        "reason": "the weighbridge ticket says 31 t",
        "due_on": DUE,
        **changes,
    }
    ask = asks.ask_correction(session=session, principal=w.principals[role], now=NOW, **args)
    session.commit()
    return ask


def _status(session: Session, w: World, ask_id: int, role: str = "bureau_sc") -> str:
    session.expire_all()
    return asks.get_ask(session=session, principal=w.principals[role], ask_id=ask_id, now=NOW).status


def _kinds(session: Session, user_id: int) -> list[str]:
    return list(session.exec(select(Notice.kind).where(Notice.user_id == user_id).order_by(col(Notice.id))).all())


def test_an_asked_correction_is_filed_approved_and_applied(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    ask = _ask(session, w)
    assert ask.id is not None and ask.enterprise_id == w.e1 and ask.party == "shipper" and ask.year == 2024
    marked = asks.under_correction(session=session, table="transfer_batch", row_ids=[w.batch_received])
    assert marked == {w.batch_received: [ask.id]}
    assert _kinds(session, w.users["ent1"]) == ["ask_sent"]
    # Asks are read in scope: the enterprise asked and the bureaus over it, not the other city's.
    for role, seen in (("ent1", 1), ("ent3", 0), ("bureau_dy", 0), ("park_a", 1)):
        assert asks.list_asks(session=session, principal=w.principals[role], now=NOW)[1] == seen, role
    asks.answer_ask(
        session=session,
        principal=w.principals["ent1"],
        ask_id=ask.id,
        contest=False,
        values={"weight_dispatched_t": "31"},
        reason="the ticket was misread",
        now=NOW,
    )
    session.commit()
    assert _status(session, w, ask.id) == "filed"
    # The bureau that asked hears of the answer; no word of a "locked year" (this one is not).
    assert _kinds(session, w.users["bureau_pzh"]) == ["ask_answered"]
    batch = session.get(Manifest, w.batch_received)
    assert batch is not None and batch.weight_dispatched_t == t(30)  # the year is not locked, yet nothing changes
    correction = session.get(CorrectionRequest, ask.correction_id)
    assert correction is not None and correction.status == "pending" and correction.enterprise_id == w.e1
    assert asks.under_correction(session=session, table="transfer_batch", row_ids=[w.batch_received])
    asks.decide_ask(
        session=session, principal=w.principals["bureau_sc"], ask_id=ask.id, accept=True, note="ticket seen", now=NOW
    )
    session.commit()
    assert _status(session, w, ask.id) == "corrected"
    batch = session.get(Manifest, w.batch_received)
    assert batch is not None and batch.weight_dispatched_t == t(31) and batch.status == "corrected"
    assert asks.under_correction(session=session, table="transfer_batch", row_ids=[w.batch_received]) == {}
    assert _kinds(session, w.users["ent1"])[-1] == "ask_decided"
    logged = session.exec(
        select(AuditLog.action).where(AuditLog.table_name == "correction_ask").order_by(col(AuditLog.id))
    ).all()
    assert list(logged) == ["ask_correction", "answer_ask", "decide_ask"]


def test_a_contest_and_a_filing_are_rejected_then_the_ask_is_withdrawn(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    ent1, bureau = w.principals["ent1"], w.principals["bureau_sc"]
    ask = _ask(session, w, "bureau_sc", table="declaration", row_id=w.decl_e1, fields=["utilised_t"])
    assert ask.id is not None and ask.enterprise_id == w.e1 and ask.party is None
    asks.answer_ask(
        session=session, principal=ent1, ask_id=ask.id, contest=True, values={}, reason="sales invoices", now=NOW
    )
    session.commit()
    assert _status(session, w, ask.id) == "contested"
    with pytest.raises(InvalidInput) as refused:
        asks.decide_ask(session=session, principal=bureau, ask_id=ask.id, accept=False, note=" ", now=NOW)
    assert refused.value.field == "note"
    session.rollback()
    asks.decide_ask(session=session, principal=bureau, ask_id=ask.id, accept=False, note="invoices cover 2022", now=NOW)
    session.commit()
    assert _status(session, w, ask.id) == "open"
    with pytest.raises(InvalidInput) as refused:
        asks.answer_ask(
            session=session, principal=ent1, ask_id=ask.id, contest=False, values={"stored_t": 1}, reason="x", now=NOW
        )
    assert refused.value.field == "stored_t"  # not asked for
    session.rollback()
    asks.answer_ask(
        session=session,
        principal=ent1,
        ask_id=ask.id,
        contest=False,
        values={"utilised_t": "85"},
        reason="re-read",
        now=NOW,
    )
    session.commit()
    asks.decide_ask(session=session, principal=bureau, ask_id=ask.id, accept=False, note="still wrong", now=NOW)
    session.commit()
    assert _status(session, w, ask.id) == "open"  # the filing was rejected: the ask waits for another answer
    decl = session.get(Declaration, {"id": w.decl_e1, "enterprise_id": w.e1})
    assert decl is not None and decl.utilised_t == t(80)
    with pytest.raises(Conflict):
        asks.decide_ask(session=session, principal=bureau, ask_id=ask.id, accept=True, note="", now=NOW)
    session.rollback()
    asks.withdraw_ask(session=session, principal=bureau, ask_id=ask.id, note="settled by phone", now=NOW)
    session.commit()
    assert _status(session, w, ask.id) == "withdrawn"
    assert asks.under_correction(session=session, table="declaration", row_ids=[w.decl_e1]) == {}
    with pytest.raises(Conflict):
        asks.answer_ask(session=session, principal=ent1, ask_id=ask.id, contest=True, values={}, reason="x", now=NOW)


@pytest.mark.parametrize(
    ("role", "changes", "error", "field"),
    [
        ("ent1", {}, Forbidden, None),
        ("park_a", {}, Forbidden, None),
        ("bureau_dy", {}, NotFound, "batch_id"),
        ("bureau_pzh", {"fields": ["weight_dispatched_t", "weight_received_t"]}, InvalidInput, "fields"),
        ("bureau_pzh", {"fields": ["shipper_id"]}, InvalidInput, "fields"),
        ("bureau_pzh", {"fields": []}, InvalidInput, "fields"),
        ("bureau_pzh", {"reason": "  "}, InvalidInput, "reason"),
        ("bureau_pzh", {"due_on": date(2025, 2, 28)}, InvalidInput, "due_on"),
        ("bureau_pzh", {"due_on": date(2026, 12, 31)}, InvalidInput, "due_on"),
        ("bureau_pzh", {"table": "licence"}, InvalidInput, "table"),
        ("bureau_pzh", {"row_id": 0, "table": "declaration"}, NotFound, "row_id"),
    ],
)
def test_asks_that_are_refused(
    session: Session, role: str, changes: dict[str, Any], error: type[DomainError], field: str | None
) -> None:
    w = build_world(session, with_tokens=False)
    with pytest.raises(error) as refused:
        _ask(session, w, role, **changes)
    if field:
        assert refused.value.field == field
    session.rollback()
    assert session.exec(select(CorrectionAsk)).first() is None


def test_one_open_ask_per_record_and_only_settled_batches(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    _ask(session, w)
    with pytest.raises(Conflict):
        _ask(session, w, "bureau_sc", fields=["received_at"])
    session.rollback()
    with pytest.raises(Conflict) as refused:
        _ask(session, w, row_id=w.batch_dispatched)
    assert refused.value.field == "row_id"


def test_only_the_enterprise_asked_answers(session: Session) -> None:
    w = add_receiver_account(session, build_world(session, with_tokens=False))
    ask = _ask(session, w)
    assert ask.id is not None
    for role, error in (("ent3", NotFound), ("ent2", NotFound), ("bureau_pzh", Forbidden), ("admin", Forbidden)):
        with pytest.raises(error):
            asks.answer_ask(
                session=session,
                principal=w.principals[role],
                ask_id=ask.id,
                contest=True,
                values={},
                reason="r",
                now=NOW,
            )
        session.rollback()
    with pytest.raises(Forbidden):
        asks.withdraw_ask(session=session, principal=w.principals["ent1"], ask_id=ask.id, note="", now=NOW)


def _race(engine: Engine, steps: list[Callable[[Session], object]]) -> Counter[str]:
    """Run the steps at once, each in its own writing session; count how each ended."""
    barrier = threading.Barrier(len(steps))

    def run(step: Callable[[Session], object]) -> str:
        with Session(writer(engine)) as s:
            barrier.wait()
            try:
                step(s)
                s.commit()
            except Conflict:
                s.rollback()
                return "conflict"
            return "ok"

    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        return Counter(pool.map(run, steps))


def test_answer_and_withdraw_at_once_leave_one_winner(session: Session, engine: Engine) -> None:
    w = build_world(session, with_tokens=False)
    ask = _ask(session, w)
    ask_id = ask.id or 0

    def answer(s: Session) -> object:
        return asks.answer_ask(
            session=s, principal=w.principals["ent1"], ask_id=ask_id, contest=True, values={}, reason="r", now=NOW
        )

    def withdraw(s: Session) -> object:
        return asks.withdraw_ask(session=s, principal=w.principals["bureau_pzh"], ask_id=ask_id, note="", now=NOW)

    assert _race(engine, [answer, withdraw]) == Counter({"ok": 1, "conflict": 1})
    status = _status(session, w, ask_id)
    assert status in ("contested", "withdrawn")
    logged = session.exec(select(AuditLog.action).where(AuditLog.table_name == "correction_ask")).all()
    assert len(logged) == 2  # the ask, and the one step that won


def test_two_decisions_at_once_apply_the_correction_once(session: Session, engine: Engine) -> None:
    w = build_world(session, with_tokens=False)
    ask = _ask(session, w)
    ask_id = ask.id or 0
    asks.answer_ask(
        session=session,
        principal=w.principals["ent1"],
        ask_id=ask_id,
        contest=False,
        values={"weight_dispatched_t": "31"},
        reason="r",
        now=NOW,
    )
    session.commit()

    def decide(role: str, accept: bool) -> Callable[[Session], object]:
        return lambda s: asks.decide_ask(
            session=s, principal=w.principals[role], ask_id=ask_id, accept=accept, note="n", now=NOW
        )

    outcome = _race(engine, [decide("bureau_pzh", True), decide("bureau_sc", False)])
    assert outcome == Counter({"ok": 1, "conflict": 1})
    session.expire_all()
    decided = session.exec(select(AuditLog.action).where(col(AuditLog.action).like("%_correction"))).all()
    assert Counter(decided)["approve_correction"] + Counter(decided)["reject_correction"] == 1
    batch = session.get(Manifest, w.batch_received)
    status = _status(session, w, ask_id)
    assert batch is not None
    assert (status, batch.weight_dispatched_t) in (("corrected", t(31)), ("open", t(30)))


# --- the API ---------------------------------------------------------------------------------------------------


def _h(w: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}"}


def _today() -> date:
    return datetime.now(UTC).astimezone(CST).date()


def test_the_api_offers_every_step(client: TestClient, session: Session) -> None:
    w = build_world(session)
    body = {
        "table": "transfer_batch",
        "row_id": w.batch_received,
        "fields": ["weight_dispatched_t"],
        "reason": "ticket",
        "due_on": (_today() + timedelta(days=7)).isoformat(),
    }
    made = client.post("/api/v1/correction-asks", json=body, headers=_h(w, "bureau_pzh"))
    assert made.status_code == 201, made.text
    ask = made.json()
    assert (ask["status"], ask["overdue"], ask["enterprise_id"], ask["subject"][:6]) == ("open", False, w.e1, "SC2024")
    detail = client.get(f"/api/v1/manifests/{w.batch_received}", headers=_h(w, "ent1")).json()
    assert detail["under_correction"] == [ask["id"]]
    again = client.post("/api/v1/correction-asks", json=body, headers=_h(w, "bureau_sc"))
    assert again.status_code == 409
    listed = client.get("/api/v1/correction-asks", params={"state": "open"}, headers=_h(w, "ent1")).json()
    assert [a["id"] for a in listed["data"]] == [ask["id"]] and listed["count"] == 1
    assert client.get("/api/v1/correction-asks", headers=_h(w, "ent3")).json()["count"] == 0
    answer = {"action": "file", "values": {"weight_dispatched_t": 31}, "reason": "misread"}
    filed = client.post(f"/api/v1/correction-asks/{ask['id']}/answer", json=answer, headers=_h(w, "ent1"))
    assert filed.status_code == 200 and filed.json()["status"] == "filed", filed.text
    assert filed.json()["correction_status"] == "pending"
    decided = client.post(
        f"/api/v1/correction-asks/{ask['id']}/decide", json={"accept": True}, headers=_h(w, "bureau_pzh")
    )
    assert decided.status_code == 200 and decided.json()["status"] == "corrected"
    one = client.get(f"/api/v1/correction-asks/{ask['id']}", headers=_h(w, "ent1")).json()
    assert one["correction_status"] == "approved"
    batch = client.get(f"/api/v1/manifests/{w.batch_received}", headers=_h(w, "ent1")).json()
    assert batch["weight_dispatched_t"] == 31 and batch["under_correction"] == []


def test_the_api_lists_overdue_asks_and_marks_declarations(client: TestClient, session: Session) -> None:
    w = build_world(session)
    ask = _ask(session, w, table="declaration", row_id=w.decl_e1, fields=["generated_t"])  # due in 2025: overdue now
    overdue = client.get("/api/v1/correction-asks", params={"overdue": "true"}, headers=_h(w, "bureau_pzh")).json()
    assert [a["id"] for a in overdue["data"]] == [ask.id] and overdue["data"][0]["overdue"] is True
    on_time = client.get("/api/v1/correction-asks", params={"overdue": "false"}, headers=_h(w, "bureau_pzh")).json()
    assert on_time["count"] == 0
    decls = client.get("/api/v1/declarations", headers=_h(w, "ent1")).json()
    assert [d["under_correction"] for d in decls] == [[ask.id]]
    one = client.get(f"/api/v1/declarations/{w.decl_e1}", headers=_h(w, "bureau_sc")).json()
    assert one["under_correction"] == [ask.id]
    withdrawn = client.post(
        f"/api/v1/correction-asks/{ask.id}/withdraw", json={"note": "late, not needed"}, headers=_h(w, "bureau_pzh")
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert client.get(f"/api/v1/declarations/{w.decl_e1}", headers=_h(w, "ent1")).json()["under_correction"] == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("", {"table": "transfer_batch", "row_id": 1, "fields": [], "reason": "r", "due_on": "2099-01-01"}, "fields"),
        ("", {"table": "licence", "row_id": 1, "fields": ["x"], "reason": "r", "due_on": "2099-01-01"}, "table"),
        ("", {"table": "declaration", "row_id": 1, "fields": ["x"], "reason": "r", "due_on": "01/02"}, "due_on"),
        (
            "",
            {"table": "declaration", "row_id": 1, "fields": ["x"], "reason": "r" * 1001, "due_on": "2099-01-01"},
            "reason",
        ),
        ("/1/answer", {"action": "shrug", "reason": "r"}, "action"),
        ("/1/decide", {"accept": "perhaps"}, "accept"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(
    client: TestClient, session: Session, path: str, body: dict[str, Any], field: str
) -> None:
    w = build_world(session)
    response = client.post(f"/api/v1/correction-asks{path}", json=body, headers=_h(w, "bureau_pzh"))
    assert response.status_code == 422 and field in response.text, response.text
    listed = client.get("/api/v1/correction-asks", params={"state": "bogus"}, headers=_h(w, "bureau_pzh"))
    assert listed.status_code == 422 and "state" in listed.text


# --- the pages -------------------------------------------------------------------------------------------------


def _sign_in(client: TestClient, session: Session, settings: Settings, username: str, lang: str = "en") -> str:
    client.cookies.set("lang", lang)
    return sign_in(client, session, settings, username)


def test_the_pages_ask_answer_and_decide(client: TestClient, session: Session, settings: Settings) -> None:
    w = build_world(session)
    csrf = _sign_in(client, session, settings, "bureau_pzh")
    form = client.get(f"/asks/new?table=transfer_batch&row_id={w.batch_received}")
    assert form.status_code == 200 and 'name="fields"' in form.text
    due = (_today() + timedelta(days=3)).isoformat()
    data = {"table": "transfer_batch", "row_id": w.batch_received, "reason": "", "due_on": due, "csrf_token": csrf}
    refused = client.post("/asks", data={**data, "fields": ["weight_received_t"]})
    assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
    sent = client.post(
        "/asks", data={**data, "reason": "ticket", "fields": ["weight_received_t"]}, follow_redirects=False
    )
    assert sent.status_code == 303
    ask_id = int(sent.headers["location"].split("/")[2].split("?")[0])
    batch_page = client.get(f"/batches/{w.batch_received}")
    assert f'data-under-correction="{ask_id}"' in batch_page.text and "Under correction" in batch_page.text
    tabs = client.get("/audit/asks?tab=sent")
    assert f'data-ask="{ask_id}"' in tabs.text and 'href="/audit/asks"' in tabs.text
    assert f'data-ask="{ask_id}"' not in client.get("/audit/asks?tab=overdue").text
    # E2, the receiver, owns weight_received_t: its account answers.
    add_receiver_account(session, w)
    csrf2 = _sign_in(client, session, settings, "ent2", "zh-CN")
    page = client.get(f"/asks/{ask_id}")
    assert page.status_code == 200 and 'id="answer-form"' in page.text and "提交更正" in page.text
    answered = client.post(
        f"/asks/{ask_id}/answer",
        data={"action": "file", "value.weight_received_t": "29.5", "reason": "磅单复核", "csrf_token": csrf2},
        follow_redirects=False,
    )
    assert answered.status_code == 303, answered.text
    assert f'data-ask="{ask_id}"' in client.get("/asks?tab=answered").text
    csrf = _sign_in(client, session, settings, "bureau_pzh")
    decided = client.post(f"/asks/{ask_id}/decide", data={"accept": "true", "csrf_token": csrf}, follow_redirects=False)
    assert decided.status_code == 303
    session.expire_all()
    batch = session.get(Manifest, w.batch_received)
    assert batch is not None and batch.weight_received_t == t(29.5)


def test_declaration_rows_show_the_mark(client: TestClient, session: Session, settings: Settings) -> None:
    w = build_world(session)
    ask = _ask(session, w, table="declaration", row_id=w.decl_e1, fields=["utilised_t"])
    _sign_in(client, session, settings, "ent1", "zh-CN")
    page = client.get(f"/enterprises/{w.e1}?year=2023")
    assert page.status_code == 200 and f'data-under-correction="{ask.id}"' in page.text and "更正中" in page.text
    _sign_in(client, session, settings, "bureau_pzh")
    rows = client.get(f"/audit/rows?kind=declarations&enterprise={w.e1}&year=2023")
    assert rows.status_code == 200 and f'data-under-correction="{ask.id}"' in rows.text
    other = client.get(f"/audit/rows?kind=declarations&enterprise={w.e1}&year=2024")
    assert "data-under-correction" not in other.text
