"""The batch pages over HTTP: logging a batch through the form, the checks as the user types, the receiver
directory, the steps (dispatch, receipt, rejection, cancellation) from the batch page, and the list's filters,
sorting and pages. Every expectation is derived from the world (tests/world.py) and what the test adds to it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, or_, select

from app.i18n import LANGUAGES, catalogue
from flows.access import accounts
from flows.kernel.uscc import make_uscc
from flows.pages.batches import CORRECTABLE_WEIGHTS, FORM_FIELDS, PAGE_STEPS
from flows.waste.manifests import STEPS
from models import CorrectionRequest, Enterprise, Manifest, PeriodLock
from models.enums import Channel, ManifestStatus, Route
from tests.world import NOW, PASSWORD, World, build_world, t


def _auth(w: World, role: str, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}", "Accept-Language": lang}


def _add_receiver_account(session: Session, w: World) -> None:
    """An account for E2, the receiver of the world's batches, with its token as w.tokens['ent2']."""
    user = accounts.create_user(
        session=session, username="ent2", password=PASSWORD, role="enterprise", now=NOW, enterprise_id=w.e2
    )
    _, raw = accounts.create_token(
        session=session, principal=accounts.principal_of(user, Channel.api), name="test", now=NOW
    )
    session.commit()
    w.tokens["ent2"] = raw


def _uscc(session: Session, enterprise_id: int) -> str:
    e = session.get(Enterprise, enterprise_id)
    assert e is not None
    return e.uscc


def _count(session: Session) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(Manifest)).one())


def _batch(session: Session, batch_id: int) -> Manifest:
    session.expire_all()
    batch = session.get(Manifest, batch_id)
    assert batch is not None
    return batch


def _form(w: World, **changes: str) -> dict[str, str]:
    data = {
        "receiver_id": str(w.e2),
        "receiver_q": "",
        "category": "SW01",
        "route": "road_base",
        "weight": "12500",
        "unit": "kg",
        "action": "draft",
        "idempotency_key": "form-key-1",
    }
    data.update(changes)
    return data


def _error(html: str, field: str) -> str:
    found = re.search(rf'id="f-{field}-error"[^>]*>([^<]*)<', html)
    assert found, f"no error line for {field}"
    return found.group(1).strip()


# ---- Logging a batch --------------------------------------------------------------------------------------------


def test_form_creates_a_draft_once_per_key_and_dispatches_on_request(client: TestClient, session: Session) -> None:
    w = build_world(session)
    page = client.get("/batches/new", headers=_auth(w, "ent1"))
    assert page.status_code == 200
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert key and len(key.group(1)) >= 16
    for label in ("Receiver", "Waste category", "Route", "Weight"):
        assert f">{label} <span" in page.text
    before = _count(session)

    created = client.post("/batches/new", data=_form(w), headers=_auth(w, "ent1"), follow_redirects=False)
    assert created.status_code == 303, created.text[:500]
    match = re.fullmatch(r"/batches/(\d+)\?done=create", created.headers["location"])
    assert match
    batch = _batch(session, int(match.group(1)))
    assert (batch.shipper_id, batch.receiver_id, batch.category_code, str(batch.route)) == (
        w.e1,
        w.e2,
        "SW01",
        "road_base",
    )
    assert batch.weight_dispatched_t == 12.5 and batch.status == ManifestStatus.draft
    assert _count(session) == before + 1

    # The same form sent twice (a double click, a retry) finds the batch the first one made.
    again = client.post("/batches/new", data=_form(w), headers=_auth(w, "ent1"), follow_redirects=False)
    assert again.headers["location"] == created.headers["location"]
    # A retry that now asks to dispatch gets the first attempt's draft, and the page says it is a draft.
    retry = client.post(
        "/batches/new", data=_form(w, action="dispatch"), headers=_auth(w, "ent1"), follow_redirects=False
    )
    assert retry.headers["location"] == created.headers["location"]
    assert _count(session) == before + 1 and _batch(session, batch.id or 0).status == ManifestStatus.draft

    # "Save and dispatch" with a time typed in Beijing time; htmx gets its redirect as a header.
    dispatched = client.post(
        "/batches/new",
        data=_form(
            w,
            idempotency_key="form-key-2",
            action="dispatch",
            dispatched_at="2024-06-01T08:30",
            weight="7.25",
            unit="t",
        ),
        headers={**_auth(w, "ent1"), "HX-Request": "true"},
    )
    assert dispatched.status_code == 200
    match = re.fullmatch(r"/batches/(\d+)\?done=dispatch", dispatched.headers["HX-Redirect"])
    assert match
    batch = _batch(session, int(match.group(1)))
    assert batch.status == ManifestStatus.dispatched and batch.weight_dispatched_t == 7.25 and batch.year == 2024
    assert batch.dispatched_at is not None
    assert batch.dispatched_at.replace(tzinfo=UTC) == datetime(2024, 6, 1, 0, 30, tzinfo=UTC)


def test_bad_input_is_named_field_by_field_and_nothing_is_saved(client: TestClient, session: Session) -> None:
    w = build_world(session)
    before = _count(session)
    bad = _form(w, receiver_id="", receiver_q=_uscc(session, w.e1), category="SW99", weight="-3", unit="t")
    response = client.post("/batches/new", data=bad, headers=_auth(w, "ent1"))
    assert response.status_code == 422
    assert _error(response.text, "weight") == "Weight: cannot be negative (got -3)."
    assert _error(response.text, "category") == "Waste category: unknown waste category SW99."
    assert _error(response.text, "receiver") == "Receiver: your own enterprise cannot be the receiver."
    assert _error(response.text, "route") == ""
    # Each wrong field points at its message and is marked invalid; the summary lists all three.
    assert re.search(
        r'id="f-weight"[^>]*aria-describedby="f-weight-status f-weight-error" aria-invalid="true"', response.text
    )
    assert "3 fields need attention" in response.text
    # The form keeps what was typed, and its key, so that fixing it and sending again logs one batch.
    assert 'value="form-key-1"' in response.text and 'value="-3"' in response.text
    assert _count(session) == before

    zh = client.post("/batches/new", data=_form(w, weight="12,5", unit="t"), headers=_auth(w, "ent1", "zh-CN"))
    assert zh.status_code == 422
    assert _error(zh.text, "weight") == "重量：“12,5”不是数字，请按 12.5 的格式填写。"
    assert _count(session) == before

    # A full credit code typed into the receiver field resolves without picking from the list.
    typed = _form(w, receiver_id="", receiver_q=_uscc(session, w.e3).lower(), weight="12,500")
    done = client.post("/batches/new", data=typed, headers=_auth(w, "ent1"), follow_redirects=False)
    assert done.status_code == 303
    batch = _batch(session, int(done.headers["location"].split("/")[2].split("?")[0]))
    assert batch.receiver_id == w.e3 and batch.weight_dispatched_t == 12.5


def test_checks_as_the_user_types_answer_per_field(client: TestClient, session: Session) -> None:
    w = build_world(session)

    def check(field: str, lang: str = "en", **data: str) -> str:
        response = client.post("/batches/new/check", data={"field": field, **data}, headers=_auth(w, "ent1", lang))
        assert response.status_code == 200
        return response.text

    assert check("weight", weight="abc", unit="t").startswith("Weight: “abc” is not a number")
    assert check("weight", "zh-CN", weight="abc", unit="t").startswith("重量：“abc”不是数字")
    ok = check("weight", weight="12500", unit="kg")
    assert ok.startswith('<span id="f-weight-status"') and "= 12.5 t" in ok
    assert check("category", category="").startswith("Waste category: required.")
    assert check("category", category="SW02") == ""
    assert check("route", route="landfill").startswith("Route: unknown route landfill.")
    assert check("receiver", receiver_q=_uscc(session, w.e1)).startswith("Receiver: your own enterprise")
    chosen = check("receiver", receiver_id=str(w.e2))
    assert chosen.startswith('<span id="f-receiver-status"') and "Chosen: Test Enterprise 2." in chosen
    assert check("dispatched_at", dispatched_at="2999-01-01T00:00").startswith(
        "Dispatch time (Beijing): lies in the future"
    )
    # The world locks 2021 for Panzhihua, where E1 lies: the form says so before anything is sent.
    locked = check("dispatched_at", dispatched_at="2021-03-01T08:00", receiver_id=str(w.e2))
    assert locked.startswith("Dispatch time (Beijing): 2021 is locked for Panzhihua.")
    assert client.post("/batches/new/check", data={"field": "colour"}, headers=_auth(w, "ent1")).status_code == 422


def test_receiver_search_by_name_and_credit_code(client: TestClient, session: Session) -> None:
    w = build_world(session)

    def search(role: str, text: str) -> Any:
        return client.post(
            "/batches/new/search", data={"field": "receiver", "receiver_q": text}, headers=_auth(w, role)
        )

    # Any enterprise may address any other by name or code (the directory's rule), never itself.
    by_name = search("ent1", "测试企业")
    assert by_name.status_code == 200
    offered = {int(i) for i in re.findall(r'name="receiver_id" value="(\d+)"', by_name.text)}
    assert offered == {w.e2, w.e3}
    assert "2 found" in by_name.text and "checked" not in by_name.text
    from_e3 = {int(i) for i in re.findall(r'name="receiver_id" value="(\d+)"', search("ent3", "测试企业").text)}
    assert from_e3 == {w.e1, w.e2}
    # Names and codes only: nothing else of the other enterprise reaches the page.
    assert "101.6" not in by_name.text and "510400" not in by_name.text

    code = _uscc(session, w.e3)
    by_code = search("ent1", code)
    assert re.search(rf'value="{w.e3}" checked', by_code.text) and "Found: Test Enterprise 3." in by_code.text
    wrong = code[:17] + ("0" if code[17] != "0" else "1")
    assert f"should be “{code[17]}”" in search("ent1", wrong).text
    unknown = make_uscc("91510000MA000999")
    assert f"no enterprise is registered with the credit code {unknown}" in search("ent1", unknown).text
    short = search("ent1", "测").text
    assert "Type at least 2 characters." in short and "radio" not in short
    assert search("bureau_pzh", "测试企业").status_code == 403
    client.cookies.clear()
    anon = client.post("/batches/new/search", data={"field": "receiver", "receiver_q": "测试"})
    assert anon.status_code == 401


# ---- Steps from the batch page ----------------------------------------------------------------------------------


def test_dispatch_receive_reject_and_cancel_from_the_page(client: TestClient, session: Session) -> None:
    w = build_world(session)
    _add_receiver_account(session, w)

    page = client.get(f"/batches/{w.batch_draft}", headers=_auth(w, "ent1"))
    assert page.status_code == 200
    assert f'action="/batches/{w.batch_draft}/dispatch"' in page.text and "/receive" not in page.text

    sent = client.post(
        f"/batches/{w.batch_draft}/dispatch",
        data={"dispatched_at": ""},
        headers=_auth(w, "ent1"),
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"/batches/{w.batch_draft}?done=dispatch"
    assert _batch(session, w.batch_draft).status == ManifestStatus.dispatched

    # The receiver sees the receipt form; a refused part without its reason is named and nothing changes.
    page = client.get(f"/batches/{w.batch_dispatched}", headers=_auth(w, "ent2"))
    assert f'action="/batches/{w.batch_dispatched}/receive"' in page.text and "/dispatch" not in page.text
    missing = client.post(
        f"/batches/{w.batch_dispatched}/receive",
        data={"weight_received": "29", "unit": "t", "rejected": "500", "rejected_unit": "kg"},
        headers={**_auth(w, "ent2"), "HX-Request": "true"},
    )
    assert missing.status_code == 422
    assert "Reason for refusing: say why part of the batch was refused." in missing.text
    assert "<html" not in missing.text  # htmx gets the page block back, with the reason in place
    assert _batch(session, w.batch_dispatched).status == ManifestStatus.dispatched

    received = client.post(
        f"/batches/{w.batch_dispatched}/receive",
        data={
            "weight_received": "29000",
            "unit": "kg",
            "rejected": "200",
            "rejected_unit": "kg",
            "rejection_reason": "wet top layer",
        },
        headers={**_auth(w, "ent2"), "HX-Request": "true"},
    )
    assert received.status_code == 200 and "Receipt confirmed." in received.text
    batch = _batch(session, w.batch_dispatched)
    assert (batch.status, batch.weight_received_t, batch.rejected_t) == (ManifestStatus.received, 29, Decimal("0.2"))
    # The gap is received + refused - dispatched (29 + 0.2 - 30 = -0.8 t, -2.7%), beyond the 2% tolerance.
    assert 'data-figure="gap">\u22120.80 t' in received.text
    assert "beyond the 2% tolerance" in received.text

    rejected = client.post(
        f"/batches/{w.batch_draft}/reject",
        data={"rejection_reason": "not what was agreed"},
        headers=_auth(w, "ent2"),
        follow_redirects=False,
    )
    assert rejected.status_code == 303
    batch = _batch(session, w.batch_draft)
    assert batch.status == ManifestStatus.rejected and batch.rejection_reason == "not what was agreed"

    # A draft made on the form is withdrawn by its shipper, with a reason.
    made = client.post("/batches/new", data=_form(w), headers=_auth(w, "ent1"), follow_redirects=False)
    new_id = int(made.headers["location"].split("/")[2].split("?")[0])
    empty = client.post(f"/batches/{new_id}/cancel", data={"cancel_reason": " "}, headers=_auth(w, "ent1"))
    assert empty.status_code == 422 and "Reason for cancelling: required." in empty.text
    assert _batch(session, new_id).status == ManifestStatus.draft
    client.post(f"/batches/{new_id}/cancel", data={"cancel_reason": "order withdrawn"}, headers=_auth(w, "ent1"))
    assert _batch(session, new_id).status == ManifestStatus.cancelled

    history = client.get(f"/batches/{w.batch_dispatched}", headers=_auth(w, "bureau_pzh")).text
    assert "Receipt confirmed</th>" in history and '<span class="code">ent2</span>' in history
    assert "/receive" not in history and 'href="/audit/corrections"' in history


def test_wrong_party_and_wrong_state_are_refused_and_change_nothing(client: TestClient, session: Session) -> None:
    w = build_world(session)
    before = _batch(session, w.batch_dispatched).status
    wrong_party = client.post(
        f"/batches/{w.batch_dispatched}/receive", data={"weight_received": "30"}, headers=_auth(w, "ent1")
    )
    assert wrong_party.status_code == 403
    # The party is checked before the input: a wrong account learns nothing about what it typed.
    typo = client.post(
        f"/batches/{w.batch_dispatched}/receive", data={"weight_received": "x"}, headers=_auth(w, "ent1")
    )
    assert typo.status_code == 403
    assert "Your account: “Confirm receipt” on this batch is not for your account to do" in wrong_party.text
    assert client.post(f"/batches/{w.batch_draft}/dispatch", data={}, headers=_auth(w, "bureau_pzh")).status_code == 403
    assert client.post(f"/batches/{w.batch_draft}/dispatch", data={}, headers=_auth(w, "ent3")).status_code == 404
    assert client.get(f"/batches/{w.batch_draft}", headers=_auth(w, "bureau_dy")).status_code == 404
    for role in ("admin", "bureau_sc", "park_a"):
        assert client.get("/batches/new", headers=_auth(w, role)).status_code == 403
    assert _batch(session, w.batch_dispatched).status == before

    # A step the status no longer allows: 409 with the state named in the user's language.
    again = client.post(f"/batches/{w.batch_received}/dispatch", data={}, headers=_auth(w, "admin", "zh-CN"))
    assert again.status_code == 409
    assert "该批次当前状态为“已接收”，已不能执行“发运”" in again.text
    assert _batch(session, w.batch_received).status == ManifestStatus.received


def test_a_locked_year_refuses_steps_with_423(client: TestClient, session: Session) -> None:
    w = build_world(session)
    session.add(PeriodLock(region_adcode="510400", year=2024, locked_at=NOW))
    session.commit()
    for headers in (_auth(w, "ent1"), {**_auth(w, "ent1"), "HX-Request": "true"}):
        response = client.post(f"/batches/{w.batch_draft}/dispatch", data={"dispatched_at": ""}, headers=headers)
        assert response.status_code == 423
        assert "Year: 2024 is locked for Panzhihua. Nothing was changed" in response.text
    assert _batch(session, w.batch_draft).status == ManifestStatus.draft
    page = client.get(f"/batches/{w.batch_draft}", headers=_auth(w, "ent1"))
    assert "The year 2024 is locked for one of the parties" in page.text and "/dispatch" not in page.text

    # A batch dispatched now lands in the year of its dispatch: log it into the locked 2024 and the form says why not.
    before = _count(session)
    refused = client.post(
        "/batches/new", data=_form(w, action="dispatch", dispatched_at="2024-07-01T10:00"), headers=_auth(w, "ent1")
    )
    assert refused.status_code == 422
    assert _error(refused.text, "dispatched_at").startswith("Dispatch time (Beijing): 2024 is locked for Panzhihua.")
    assert _count(session) == before


def test_corrections_from_the_page_direct_or_requested_in_a_locked_year(client: TestClient, session: Session) -> None:
    w = build_world(session)
    page = client.get(f"/batches/{w.batch_received}", headers=_auth(w, "ent1"))
    assert re.findall(r'name="what">\s*<option value="(\w+)"', page.text) == ["weight_dispatched"]
    url = f"/batches/{w.batch_received}/correct"
    body = {"what": "weight_dispatched", "weight": "29900", "unit": "kg", "reason": "weighbridge ticket re-read"}

    no_reason = client.post(url, data={**body, "reason": ""}, headers=_auth(w, "ent1"))
    assert no_reason.status_code == 422 and "Reason for the correction: required." in no_reason.text
    not_mine = client.post(url, data={**body, "what": "weight_received"}, headers=_auth(w, "ent1"))
    assert (
        not_mine.status_code == 422
        and "Weight to correct: “weight_received” is not one of the choices." in not_mine.text
    )
    assert _batch(session, w.batch_received).weight_dispatched_t == 30.0

    done = client.post(url, data=body, headers=_auth(w, "ent1"), follow_redirects=False)
    assert done.headers["location"] == f"/batches/{w.batch_received}?done=correct"
    batch = _batch(session, w.batch_received)
    assert (batch.status, batch.weight_dispatched_t) == (ManifestStatus.corrected, Decimal("29.9"))
    shown = client.get(f"/batches/{w.batch_received}", headers=_auth(w, "ent1")).text
    assert "weighbridge ticket re-read" in shown and 'id="batch-corrections"' in shown

    # Once the year is locked the same form files a request; nothing changes until a bureau approves it.
    session.add(PeriodLock(region_adcode="510400", year=2024, locked_at=NOW))
    session.commit()
    asked = client.post(url, data={**body, "weight": "29.7", "unit": "t"}, headers=_auth(w, "ent1"))
    assert (
        asked.status_code == 200 and "Correction requested. Nothing changes until a bureau approves it." in asked.text
    )
    assert "Corrections waiting for a bureau&#39;s decision: 1" in asked.text
    assert _batch(session, w.batch_received).weight_dispatched_t == Decimal("29.9")
    session.expire_all()
    pending = session.exec(select(CorrectionRequest).where(CorrectionRequest.status == "pending")).one()
    assert (
        pending.payload["changes"] == {"weight_dispatched_t": 29.7} and pending.payload["batch_id"] == w.batch_received
    )
    approved = client.post(
        f"/api/v1/corrections/{pending.id}/approve", json={"note": "ticket seen"}, headers=_auth(w, "bureau_pzh")
    )
    assert approved.status_code == 200
    assert _batch(session, w.batch_received).weight_dispatched_t == Decimal("29.7")


def test_edit_a_draft(client: TestClient, session: Session) -> None:
    w = build_world(session)
    form = client.get(f"/batches/{w.batch_draft}/edit", headers=_auth(w, "ent1"))
    assert form.status_code == 200 and 'name="weight" type="text" inputmode="decimal" value="30"' in form.text
    assert re.search(rf'value="{w.e2}" checked', form.text)
    bad = client.post(
        f"/batches/{w.batch_draft}/edit", data=_form(w, weight="lots", unit="t"), headers=_auth(w, "ent1")
    )
    assert bad.status_code == 422 and _error(bad.text, "weight").startswith("Weight: “lots” is not a number")
    assert _batch(session, w.batch_draft).weight_dispatched_t == 30.0
    done = client.post(
        f"/batches/{w.batch_draft}/edit",
        data=_form(w, weight="31.5", unit="t", route="backfill"),
        headers=_auth(w, "ent1"),
        follow_redirects=False,
    )
    assert done.status_code == 303
    batch = _batch(session, w.batch_draft)
    assert batch.weight_dispatched_t == 31.5 and str(batch.route) == "backfill"
    sealed = client.get(f"/batches/{w.batch_received}/edit", headers=_auth(w, "ent1"))
    assert sealed.status_code == 200 and 'id="batch-sealed"' in sealed.text and 'id="batch-form"' not in sealed.text
    late = client.post(f"/batches/{w.batch_received}/edit", data=_form(w), headers=_auth(w, "ent1"))
    assert late.status_code == 409
    assert _batch(session, w.batch_received).weight_dispatched_t == 30.0


# ---- The list ---------------------------------------------------------------------------------------------------


def _add_batches(session: Session, w: World) -> None:
    """30 more batches: E1 ships to E3 and receives from E2 and E3, in 2023 and 2024, of growing weight."""
    for n in range(30):
        shipper, receiver = [(w.e1, w.e3), (w.e2, w.e1), (w.e3, w.e1)][n % 3]
        status = ["received", "dispatched", "rejected"][n % 3]
        session.add(
            Manifest(
                number=f"SC{2023 + n % 2}-{9000000 + n:07d}",
                shipper_id=shipper,
                receiver_id=receiver,
                category_code="SW02" if n % 2 else "SW01",
                route=Route.road_base,
                year=2023 + n % 2,
                status=ManifestStatus(status),
                weight_dispatched_t=t(10.0 + n),
                dispatched_at=datetime(2023 + n % 2, 1 + n % 12, 1 + n, 8, tzinfo=UTC),
                created_at=datetime(2023 + n % 2, 1 + n % 12, 1, tzinfo=UTC),
            )
        )
    session.commit()


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-batch="(\d+)"', html)]


def _expected(session: Session, *conditions: Any, order: Any = None) -> list[int]:
    query = select(col(Manifest.id)).where(*conditions)
    if order is not None:
        query = query.order_by(order, col(Manifest.id).desc())
    return [int(i) for i in session.exec(query).all() if i is not None]


def test_list_filters_sorts_and_pages(client: TestClient, session: Session) -> None:
    w = build_world(session)
    _add_batches(session, w)
    mine = or_(col(Manifest.shipper_id) == w.e1, col(Manifest.receiver_id) == w.e1)

    first = client.get("/batches", headers=_auth(w, "ent1"))
    assert first.status_code == 200
    total = len(_expected(session, mine))
    assert f"Showing 1–25 of {total}" in first.text and len(_ids(first.text)) == 25
    second = client.get("/batches?page=2", headers=_auth(w, "ent1"))
    assert len(_ids(second.text)) == total - 25
    assert set(_ids(first.text)) | set(_ids(second.text)) == set(_expected(session, mine))
    assert not set(_ids(first.text)) & set(_ids(second.text))

    # Incoming batches on their way stand out: counted, and one click away.
    awaiting = _expected(session, col(Manifest.receiver_id) == w.e1, col(Manifest.status) == ManifestStatus.dispatched)
    assert f'data-count="awaiting">{len(awaiting)}<' in first.text
    todo = client.get("/batches?direction=in&status=dispatched", headers=_auth(w, "ent1"))
    assert sorted(_ids(todo.text)) == sorted(awaiting) and todo.text.count('class="row--todo"') == len(awaiting)

    out_2024 = client.get("/batches?direction=out&year=2024&category=SW01", headers=_auth(w, "ent1"))
    expected = _expected(
        session,
        col(Manifest.shipper_id) == w.e1,
        col(Manifest.year) == 2024,
        col(Manifest.category_code) == "SW01",
    )
    assert sorted(_ids(out_2024.text)) == sorted(expected) and expected

    client.cookies.clear()  # the year asked above is remembered, as on every page: the lists below span every year
    by_weight = client.get("/batches?sort=weight&order=asc&direction=in", headers=_auth(w, "ent1"))
    assert (
        _ids(by_weight.text)
        == _expected(session, col(Manifest.receiver_id) == w.e1, order=col(Manifest.weight_dispatched_t).asc())[:25]
    )
    assert 'aria-sort="ascending"' in by_weight.text and by_weight.text.count('aria-sort="none"') == 3

    # The other party's name or code, or the batch number.
    e3 = client.get("/batches", params={"q": _uscc(session, w.e3)[-6:]}, headers=_auth(w, "ent1"))
    assert sorted(_ids(e3.text)) == sorted(
        _expected(session, or_(col(Manifest.shipper_id) == w.e3, col(Manifest.receiver_id) == w.e3))
    )
    assert _ids(client.get("/batches?q=sc2024-0000002", headers=_auth(w, "ent1")).text) == [w.batch_dispatched]

    # htmx swaps only the results; a bad value is named and the rest still applies.
    fragment = client.get("/batches?status=lost&year=2024", headers={**_auth(w, "ent1"), "HX-Request": "true"})
    assert fragment.status_code == 422 and "<html" not in fragment.text and 'id="batch-results"' in fragment.text
    assert "Status: “lost” is not one of the choices." in fragment.text
    assert sorted(_ids(fragment.text)) == sorted(_expected(session, mine, col(Manifest.year) == 2024))

    # Bureaus and parks read their scope and have no direction filter or form.
    dy = client.get("/batches", headers=_auth(w, "bureau_dy"))
    deyang = _expected(session, or_(col(Manifest.shipper_id) == w.e3, col(Manifest.receiver_id) == w.e3))
    assert 0 < len(deyang) <= 25 and sorted(_ids(dy.text)) == sorted(deyang)
    assert 'href="/batches/new"' not in dy.text and 'name="direction"' not in dy.text
    assert client.get("/batches?direction=in", headers=_auth(w, "bureau_dy")).status_code == 422


def test_every_worded_value_has_its_message() -> None:
    """Keys the batch pages build from data (statuses, routes, steps, channels, fields, problem codes) exist in both
    languages with the same placeholders, so that no page shows a raw key."""
    codes = set(re.findall(r'Problem\(\s*(?:[\w"]+|field_name|p\.field),\s*"(\w+)"', _sources())) | {"no_match"}
    fields = set(re.findall(r'Problem\(\s*"(\w+)"', _sources())) | set(FORM_FIELDS)
    assert {"required", "not_number", "locked", "wrong_state", "uscc_check"} <= codes
    keys = (
        {f"batches.status.{s.value}" for s in ManifestStatus}
        | {f"batches.route.{r.value}" for r in Route}
        | {f"batches.step.{name}" for name in STEPS}
        | {f"batches.did.{name}" for name in STEPS}
        | {f"batches.channel.{c.value}" for c in Channel}
        | {f"batches.side.{side}" for side in ("shipper", "receiver", "either", "other")}
        | {f"batches.field.{f}" for f in fields | {"weight_received", "rejected", "rejection_reason", "year"}}
        | {f"batches.problem.{code}" for code in codes}
        | {f"batches.done.{step}" for step in ("create", "correction_requested", *PAGE_STEPS)}
        | {f"batches.what.{name}" for name in CORRECTABLE_WEIGHTS}
    )
    for lang in LANGUAGES:
        assert not keys - set(catalogue(lang)), (lang, keys - set(catalogue(lang)))


def _sources() -> str:
    root = Path(__file__).resolve().parent.parent
    return "".join(
        (root / name).read_text(encoding="utf-8") for name in ("flows/pages/batches.py", "app/web_batches.py")
    )


def test_list_narrowed_to_parties_and_places_from_links(client: TestClient, session: Session) -> None:
    """The map, the enterprise, park and audit pages link to the list narrowed to parties or places."""
    w = build_world(session)
    headers = {"Authorization": f"Bearer {w.tokens['bureau_sc']}", "Accept-Language": "en"}

    def listed(**params: str | int) -> set[int]:
        response = client.get("/batches", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {int(i) for i in re.findall(r'<tr data-batch="(\d+)"', response.text)}

    every = session.exec(select(Manifest)).all()
    e3 = session.get(Enterprise, w.e3)
    assert e3 is not None and e3.park_id is not None
    assert listed(shipper=w.e1) == {b.id for b in every if b.shipper_id == w.e1}
    assert listed(shipper=w.e1, receiver=w.e2) == {b.id for b in every if (b.shipper_id, b.receiver_id) == (w.e1, w.e2)}
    assert listed(party=w.e2) == {b.id for b in every if w.e2 in (b.shipper_id, b.receiver_id)}
    in_pzh = {w.e1, w.e2}  # the world's Panzhihua enterprises
    assert listed(region="510400") == {b.id for b in every if {b.shipper_id, b.receiver_id} & in_pzh}
    assert listed(shipper_region="510600") == {b.id for b in every if b.shipper_id == w.e3}
    assert listed(park=e3.park_id) == {b.id for b in every if w.e3 in (b.shipper_id, b.receiver_id)}
    bad = client.get("/batches", params={"shipper": "E1", "region": "110000"}, headers=headers)
    assert bad.status_code == 422 and "“E1”" in bad.text and "“110000”" in bad.text
