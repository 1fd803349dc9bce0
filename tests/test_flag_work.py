"""Flags as work items: status, assignee, notes, answers, bulk actions, filters, download, history, one winner."""

from __future__ import annotations

import csv
import io
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.settings import Settings
from flows.access.scope import resolve_scope
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from flows.pages import audit_export
from flows.waste import flag_work
from flows.waste.flag_work import FlagChange, FlagStatus
from flows.waste.flags import FlagKind, list_flags
from models import AuditLog, Declaration, Enterprise, FlagEntry, FlagWork, Notice
from tests.browser import serve
from tests.test_web_audit import _sign_in
from tests.world import NOW, World, build_world, t

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def _as(w: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}"}


def _balance_key(session: Session, w: World, enterprise_id: int) -> str:
    """The key of the 2023 balance break the world's declaration of this enterprise raises (80 of 100 t used)."""
    page = list_flags(session=session, principal=w.principals["admin"], year=2023, kinds=["balance_break"])
    flag = next(f for f in page.data if f.enterprise_ids == [enterprise_id])
    return flag_work.key_of(flag)


def test_a_flag_is_open_until_a_bureau_acts_and_each_change_is_audited(world: World, session: Session) -> None:
    w = world
    bureau = w.principals["bureau_pzh"]
    key = _balance_key(session, w, w.e1)
    scope = resolve_scope(session=session, principal=bureau)
    before = flag_work.status_counts(session=session, principal=bureau, scope=scope, year=2023)
    assert before["open"] >= 1 and before["resolved"] == 0
    assert flag_work.open_flag_count(session=session, principal=bureau, scope=scope, year=2023) == sum(before.values())

    change = FlagChange(status=FlagStatus.under_review, assignee_id=w.users["bureau_pzh"])
    work = flag_work.change_flag(session=session, principal=bureau, key=key, change=change, now=NOW)
    session.commit()
    assert (work.status, work.assignee_id, work.version) == ("under_review", w.users["bureau_pzh"], 1)
    entry = session.exec(select(AuditLog).where(AuditLog.table_name == "flag_work", AuditLog.row_id == key)).one()
    assert entry.action == "flag_status" and entry.after is not None and entry.after["status"] == "under_review"
    # The enterprise hears of the new status, in its own words.
    told = session.exec(select(Notice).where(Notice.kind == "flag_worked", Notice.user_id == w.users["ent1"])).one()
    assert told.subject_id == key

    with pytest.raises(InvalidInput) as refused:
        flag_work.change_flag(
            session=session, principal=bureau, key=key, change=FlagChange(status=FlagStatus.dismissed), now=NOW
        )
    assert refused.value.field == "reason"
    session.rollback()
    with pytest.raises(Conflict):
        flag_work.change_flag(
            session=session, principal=bureau, key=key, change=FlagChange(status=FlagStatus.under_review), now=NOW
        )
    session.rollback()
    dismissed = FlagChange(status=FlagStatus.dismissed, reason="declared stock drawn down, checked on site")
    flag_work.change_flag(session=session, principal=bureau, key=key, change=dismissed, now=NOW)
    session.commit()
    after = flag_work.status_counts(session=session, principal=bureau, scope=scope, year=2023)
    assert after["dismissed"] == 1 and after["open"] == before["open"] - 1


def test_only_bureaus_of_the_flag_work_it_and_only_its_enterprise_answers(world: World, session: Session) -> None:
    w = world
    key = _balance_key(session, w, w.e1)
    resolve = FlagChange(status=FlagStatus.resolved)
    for role in ("ent1", "park_a"):
        with pytest.raises(Forbidden):
            flag_work.change_flag(session=session, principal=w.principals[role], key=key, change=resolve, now=NOW)
    # Deyang's bureau does not see a Panzhihua flag at all, nor may a Deyang account be assigned to it.
    with pytest.raises(NotFound):
        flag_work.change_flag(session=session, principal=w.principals["bureau_dy"], key=key, change=resolve, now=NOW)
    with pytest.raises(InvalidInput) as outside:
        flag_work.change_flag(
            session=session,
            principal=w.principals["bureau_sc"],
            key=key,
            change=FlagChange(assignee_id=w.users["bureau_dy"]),
            now=NOW,
        )
    assert outside.value.field == "assignee_id"
    session.rollback()
    with pytest.raises(NotFound):
        flag_work.answer_flag(session=session, principal=w.principals["ent3"], key=key, text="not ours", now=NOW)
    answer = flag_work.answer_flag(
        session=session, principal=w.principals["ent1"], key=key, text="20 t went to the yard in March", now=NOW
    )
    session.commit()
    assert answer.enterprise_id == w.e1
    heard = session.exec(select(Notice.user_id).where(Notice.kind == "flag_answered")).all()
    assert w.users["bureau_pzh"] in heard and w.users["ent1"] not in heard
    flag_work.add_note(session=session, principal=w.principals["bureau_pzh"], key=key, text="call them", now=NOW)
    session.commit()
    # The enterprise reads the answers, never the bureau's notes.
    flags = list_flags(session=session, principal=w.principals["ent1"], year=2023, kinds=["balance_break"]).data
    mine = flag_work.with_work(session=session, principal=w.principals["ent1"], flags=flags)
    assert [a.text for a in mine[0].answers] == ["20 t went to the yard in March"] and mine[0].notes == []
    theirs = flag_work.with_work(session=session, principal=w.principals["bureau_pzh"], flags=flags)
    assert [n.text for n in theirs[0].notes] == ["call them"]


def test_a_flag_that_clears_keeps_its_history(world: World, session: Session) -> None:
    w = world
    bureau = w.principals["bureau_pzh"]
    key = _balance_key(session, w, w.e1)
    change = FlagChange(status=FlagStatus.under_review)
    flag_work.change_flag(session=session, principal=bureau, key=key, change=change, now=NOW)
    flag_work.add_note(session=session, principal=bureau, key=key, text="asked for the stock ledger", now=NOW)
    session.commit()
    declaration = session.get(Declaration, {"id": w.decl_e1, "enterprise_id": w.e1})
    assert declaration is not None
    declaration.stored_t = t(20)  # the balance now holds: the flag clears
    session.add(declaration)
    session.commit()
    found = flag_work.find_flag(session=session, principal=bureau, key=key)
    assert found.flag is None and found.work is not None and found.work.status == "under_review"
    assert [h.status for h in flag_work.history(session=session, key=key)] == ["under_review"]
    assert session.exec(select(FlagEntry).where(FlagEntry.flag_key == key)).one().body == "asked for the stock ledger"
    with pytest.raises(NotFound):
        flag_work.find_flag(session=session, principal=w.principals["bureau_dy"], key=key)


def test_the_api_lists_filters_changes_and_bulk_changes_all_or_nothing(
    world: World, session: Session, client: TestClient
) -> None:
    w = world
    bureau = _as(w, "bureau_sc")
    listed = client.get("/api/v1/flags", params={"year": 2023}, headers=bureau).json()
    assert listed["count"] >= 2 and all(f["status"] == "open" for f in listed["data"])
    keys = {f["enterprise_ids"][0]: f["key"] for f in listed["data"] if f["kind"] == "balance_break"}

    changed = client.patch(
        f"/api/v1/flags/{keys[w.e1]}",
        json={"status": "under_review", "assignee_id": w.users["bureau_pzh"]},
        headers=bureau,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "under_review"
    assert client.patch(f"/api/v1/flags/{keys[w.e1]}", json={"status": "closed"}, headers=bureau).status_code == 422
    by_enterprise = client.patch(f"/api/v1/flags/{keys[w.e1]}", json={"status": "resolved"}, headers=_as(w, "ent1"))
    assert by_enterprise.status_code == 403

    mine = client.get("/api/v1/flags", params={"year": 2023, "status": "under_review"}, headers=bureau).json()
    assert [f["key"] for f in mine["data"]] == [keys[w.e1]] and mine["data"][0]["assignee"] == "bureau_pzh"
    assert mine["status_counts"]["under_review"] == 1
    by_name = client.get("/api/v1/flags", params={"year": 2023, "name": "enterprise 3"}, headers=bureau).json()
    assert by_name["count"] >= 1 and all(w.e3 in f["enterprise_ids"] for f in by_name["data"])
    by_size = client.get("/api/v1/flags", params={"year": 2023, "sort": "size"}, headers=bureau).json()
    sizes = [float(f["tonnes"]) for f in by_size["data"]]
    assert sizes == sorted(sizes, reverse=True)
    assert client.get("/api/v1/flags", params={"status": "closed"}, headers=bureau).status_code == 422

    # One key the bureau may not act on (Deyang for the Panzhihua bureau): nothing changes, the row is named.
    refused = client.post(
        "/api/v1/flags/bulk",
        json={"keys": [keys[w.e1], keys[w.e3]], "status": "dismissed", "reason": "duplicate"},
        headers=_as(w, "bureau_pzh"),
    )
    assert refused.status_code == 404, refused.text
    session.expire_all()
    assert session.get(FlagWork, keys[w.e1]).status == "under_review"  # type: ignore[union-attr]
    nothing = client.post("/api/v1/flags/bulk", json={"keys": [], "status": "resolved"}, headers=bureau)
    assert nothing.status_code == 422 and nothing.json()["field"] == "keys"
    done = client.post(
        "/api/v1/flags/bulk",
        json={"keys": [keys[w.e1], keys[w.e3]], "status": "dismissed", "reason": "duplicate"},
        headers=bureau,
    )
    assert done.status_code == 200 and done.json()["count"] == 2
    assert {f["status"] for f in done.json()["data"]} == {"dismissed"}

    note = client.post(f"/api/v1/flags/{keys[w.e3]}/notes", json={"text": "see the 2024 audit"}, headers=bureau)
    assert note.status_code == 201 and note.json()["kind"] == "note"
    assert client.post(f"/api/v1/flags/{keys[w.e3]}/notes", json={"text": ""}, headers=bureau).status_code == 422
    ticket = client.post(
        "/api/v1/attachments",
        files={"file": ("ticket.pdf", PDF, "application/pdf")},
        data={"enterprise_id": str(w.e3)},
        headers=_as(w, "ent3"),
    ).json()
    answer = client.post(
        f"/api/v1/flags/{keys[w.e3]}/answers",
        json={"text": "stock", "attachment_id": ticket["id"]},
        headers=_as(w, "ent3"),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["attachment"]["filename"] == "ticket.pdf"
    foreign = client.post(
        f"/api/v1/flags/{keys[w.e3]}/answers",
        json={"text": "stock", "attachment_id": ticket["id"]},
        headers=_as(w, "ent1"),
    )
    assert foreign.status_code == 404
    assert client.post(f"/api/v1/flags/{keys[w.e3]}/answers", json={"text": "x"}, headers=bureau).status_code == 403
    seen = client.get("/api/v1/flags", params={"year": 2023, "kind": "balance_break"}, headers=_as(w, "ent3")).json()
    assert [a["text"] for a in seen["data"][0]["answers"]] == ["stock"] and seen["data"][0]["notes"] == []


def test_the_queue_page_shows_status_and_downloads_it_in_words(
    world: World, session: Session, client: TestClient, settings: Settings
) -> None:
    w = world
    key = _balance_key(session, w, w.e1)
    flag_work.change_flag(
        session=session,
        principal=w.principals["bureau_sc"],
        key=key,
        change=FlagChange(status=FlagStatus.resolved, assignee_id=w.users["bureau_pzh"]),
        now=NOW,
    )
    session.commit()
    client.cookies.set("lang", "zh-CN")
    csrf = _sign_in(client, session, settings, "bureau_sc")
    sent = {"status": "resolved", "csrf_token": csrf}
    nothing = client.post("/audit/flags/bulk", data=sent, headers={"Accept": "text/html"}, follow_redirects=False)
    assert nothing.status_code == 422 and "请至少选择一条" in nothing.text
    page = client.get("/audit/flags", params={"year": 2023, "status": "resolved"})
    assert page.status_code == 200 and key in page.text and "已解决" in page.text
    found = client.get("/audit/flags", params={"year": 2023, "enterprise": "测试企业1"})
    assert key in found.text and "测试企业3" not in found.text
    got = client.get("/audit/flags", params={"year": 2023, "download": "csv"})
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["预警类型", "年度"] and rows[0][6] == "状态"
    line = next(r for r in rows[1:] if r[6] == "已解决")
    assert line[0] == "物料不平衡" and line[7] == "bureau_pzh" and "测试企业1" in line[3] and "{" not in line[4]


def test_the_flag_page_takes_a_status_and_an_answer(
    world: World, session: Session, client: TestClient, settings: Settings
) -> None:
    w = world
    key = _balance_key(session, w, w.e1)
    csrf = _sign_in(client, session, settings, "ent1")
    page = client.get(f"/flags/{key}")
    assert page.status_code == 200 and 'id="answer-form"' in page.text and 'id="work-form"' not in page.text
    sent = client.post(
        f"/flags/{key}/answers",
        data={"text": "stock drawn down", "csrf_token": csrf},
        files={"file": ("ticket.pdf", PDF, "application/pdf")},
    )
    assert sent.status_code == 200 and "stock drawn down" in sent.text and "ticket.pdf" in sent.text
    refused = client.post(
        f"/flags/{key}/answers",
        data={"text": "and this", "csrf_token": csrf},
        files={"file": ("notes.txt", b"plain words", "text/plain")},
    )
    assert refused.status_code == 422 and 'id="flag-problem"' in refused.text and "and this" not in refused.text
    assert key in client.get("/flags").text
    csrf = _sign_in(client, session, settings, "bureau_pzh")
    refused = client.post(f"/flags/{key}", data={"status": "dismissed", "assignee_id": "", "csrf_token": csrf})
    assert refused.status_code == 422 and 'id="flag-problem"' in refused.text
    done = client.post(f"/flags/{key}", data={"status": "resolved", "assignee_id": "", "csrf_token": csrf})
    assert done.status_code == 200 and 'id="flag-history"' in done.text and "stock drawn down" in done.text
    link = done.text.split('href="/attachments/')[1].split('"')[0]
    assert client.get(f"/attachments/{link}").content == PDF


def test_two_bureaus_resolving_one_flag_at_once_leave_one_winner(
    settings: Settings, world: World, session: Session
) -> None:
    w = world
    key = _balance_key(session, w, w.e1)
    barrier = threading.Barrier(6)

    def resolve(_n: int) -> httpx.Response:
        with httpx.Client(timeout=120) as client:
            barrier.wait()
            return client.patch(f"{url}/api/v1/flags/{key}", json={"status": "resolved"}, headers=_as(w, "bureau_sc"))

    with serve(settings) as url, ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(resolve, range(6)))
    assert Counter(r.status_code for r in responses) == Counter({200: 1, 409: 5}), [r.text for r in responses]
    changes = session.exec(
        select(AuditLog).where(AuditLog.table_name == "flag_work", col(AuditLog.row_id) == key)
    ).all()
    assert [c.action for c in changes] == ["flag_status"]
    assert FlagKind.balance_break.value in {c.after["kind"] for c in changes if c.after}


def test_the_reports_print_each_flags_status(world: World, session: Session) -> None:
    w = world
    bureau = w.principals["bureau_pzh"]
    key = _balance_key(session, w, w.e1)
    change = FlagChange(status=FlagStatus.resolved, reason="re-declared")
    flag_work.change_flag(session=session, principal=bureau, key=key, change=change, now=NOW)
    session.commit()
    flags = list_flags(session=session, principal=w.principals["admin"], year=2023).data
    printed = audit_export.flag_states(session=session, flags=flags)
    states = dict(zip([flag_work.key_of(f) for f in flags], printed, strict=True))
    assert states[key] == "resolved"
    assert {state for k, state in states.items() if k != key} == {"open"}


def test_findings_name_enterprises_by_name_and_the_api_keeps_ids(world: World, session: Session) -> None:
    w = world
    named = 0
    for year in (2023, 2024):
        for flag in list_flags(session=session, principal=w.principals["admin"], year=year).data:
            for param in ("enterprise", "receiver", "shipper"):
                ident = flag.params.get(param)
                if not isinstance(ident, int):
                    continue
                ent = session.get(Enterprise, ident)
                assert ent is not None
                zh, en = flag.finding().render("zh-CN"), flag.finding().render("en")
                assert ent.name_zh in zh and f"企业 {ident}" not in zh
                assert (ent.name_en or ent.name_zh) in en
                assert flag.model_dump()["params"][param] == ident and "names" not in flag.model_dump()
                named += 1
    assert named >= 1
