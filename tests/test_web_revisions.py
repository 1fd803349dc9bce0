"""Corrections with evidence, their effect before approval and the revised marks, through the API and the pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.main import create_app
from app.settings import Settings
from app.web import pct
from flows.kernel.clock import CST
from models import CorrectionAttachment, CorrectionRequest, PeriodLock
from tests.test_revisions import PDF
from tests.test_web_audit import _sign_in
from tests.world import NOW, World, build_world

PZH, PROVINCE = "510400", "510000"


def _as(w: World, role: str, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}", "Accept-Language": lang}


def _file_beyond_tolerance(client: TestClient, w: World) -> tuple[int, int]:
    """Lock Panzhihua's 2023 and file E1's utilised tonnes 80 -> 5 with a weighbridge ticket: (correction, file)."""
    locked = client.post(
        "/api/v1/locks", json={"region_adcode": PZH, "year": 2023, "confirm": True}, headers=_as(w, "bureau_pzh")
    )
    assert locked.status_code == 201
    body: dict[str, Any] = {
        "table": "declaration",
        "reason": "utilised tonnes mistyped",
        "payload": {"enterprise_id": w.e1, "category_code": "SW01", "year": 2023, "generated_t": 100, "utilised_t": 5},
    }
    bare = client.post("/api/v1/corrections", json=body, headers=_as(w, "ent1"))
    assert bare.status_code == 422 and "attachment_ids" in bare.text and "80.0 t to 5.0 t" in bare.text
    ticket = client.post(
        "/api/v1/attachments",
        files={"file": ("磅单.pdf", PDF, "application/pdf")},
        data={"enterprise_id": str(w.e1)},
        headers=_as(w, "ent1"),
    )
    assert ticket.status_code == 201, ticket.text
    unknown = client.post("/api/v1/corrections", json={**body, "attachment_ids": [999999]}, headers=_as(w, "ent1"))
    assert unknown.status_code == 422 and "attachment_ids" in unknown.text
    filed = client.post(
        "/api/v1/corrections", json={**body, "attachment_ids": [ticket.json()["id"]]}, headers=_as(w, "ent1")
    )
    assert filed.status_code == 201, filed.text
    assert filed.json()["attachment_ids"] == [ticket.json()["id"]]
    return filed.json()["id"], ticket.json()["id"]


def test_evidence_effect_and_revised_marks(client: TestClient, session: Session, settings: Settings) -> None:
    w = build_world(session)
    correction_id, file_id = _file_beyond_tolerance(client, w)
    effect = client.get(f"/api/v1/corrections/{correction_id}/effect", headers=_as(w, "bureau_sc"))
    assert effect.status_code == 200, effect.text
    scopes = {s["scope"]["key"]: s for s in effect.json()["scopes"]}
    assert set(scopes) == {PZH, PROVINCE}
    assert client.get(f"/api/v1/corrections/{correction_id}/effect", headers=_as(w, "ent1")).status_code == 403
    assert client.get(f"/api/v1/corrections/{correction_id}/effect", headers=_as(w, "bureau_dy")).status_code == 404

    csrf = _sign_in(client, session, settings, "bureau_sc")
    page = client.get("/audit/corrections", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "more than 10.0% and more than 10.00 t must carry evidence" in page.text
    assert f'href="/attachments/{file_id}"' in page.text and "磅单.pdf" in page.text
    assert 'data-beyond="utilised_t"' in page.text
    shown = re.findall(r'data-scope="(\d+)".*?data-figure="rate-after">([^<]+)<', page.text, re.S)
    assert dict(shown) == {key: pct(s["after"]["rate"]) for key, s in scopes.items()}
    assert client.get(f"/attachments/{file_id}").content == PDF

    approved = client.post(f"/audit/corrections/{correction_id}/approve", data={"note": "ticket", "csrf_token": csrf})
    assert approved.status_code == 200
    for key, scope in scopes.items():
        rate = client.get("/api/v1/rates", params={"year": 2023, "region": key}, headers=_as(w, "bureau_sc")).json()
        assert rate["rate"] == scope["after"]["rate"]
        [mark] = rate["revisions"]
        assert (mark["rate_before"], mark["rate_after"]) == (scope["now"]["rate"], scope["after"]["rate"])
    decided = client.get("/audit/corrections", headers={"Accept-Language": "en"}).text
    assert f'data-revised-by="{correction_id}"' in decided and "rate 80.0% → 42.5%" in decided

    drill = client.get("/audit", params={"region": PROVINCE, "year": 2023}, headers={"Accept-Language": "en"}).text
    assert drill.count('data-revised="rate"') == 2  # the province's figure and Panzhihua's row
    assert "was 80.0%, now 42.5%" in drill
    zh = client.get("/audit", params={"region": PROVINCE, "year": 2023}, headers={"Accept-Language": "zh-CN"}).text
    assert "已修订" in zh and "修订前 80.0%，现 42.5%" in zh and "was 80.0%" not in zh
    dashboard = client.get("/dashboard", params={"year": 2023}, headers={"Accept-Language": "en"}).text
    assert dashboard.count('data-revised="rate"') == 2
    # A year's other figures (2024: nothing approved) carry no mark.
    assert 'data-revised="' not in client.get("/dashboard", params={"year": 2024}).text


def test_the_batch_form_takes_a_weighbridge_ticket_in_a_locked_year(client: TestClient, session: Session) -> None:
    w = build_world(session)
    session.add(PeriodLock(region_adcode=PZH, year=2024, locked_at=NOW))
    session.commit()
    page = client.get(f"/batches/{w.batch_received}", headers=_as(w, "ent1"))
    assert 'enctype="multipart/form-data"' in page.text and 'name="file" type="file"' in page.text
    url = f"/batches/{w.batch_received}/correct"
    body = {"what": "weight_dispatched", "weight": "5", "unit": "t", "reason": "wrong ticket read"}
    refused = client.post(url, data=body, headers=_as(w, "ent1"))
    assert refused.status_code == 422 and 'id="a-file-error"' in refused.text
    assert "30.0 t to 5.0 t" in refused.text
    zh = client.post(url, data=body, headers=_as(w, "ent1", "zh-CN"))
    assert zh.status_code == 422 and "须附地磅单" in zh.text
    not_evidence = client.post(
        url, data=body, files={"file": ("a.txt", b"hello", "text/plain")}, headers=_as(w, "ent1")
    )
    assert not_evidence.status_code == 422 and 'id="a-file-error"' in not_evidence.text
    assert session.exec(select(CorrectionRequest)).all() == []
    asked = client.post(url, data=body, files={"file": ("ticket.pdf", PDF, "application/pdf")}, headers=_as(w, "ent1"))
    assert asked.status_code == 200 and "Correction requested" in asked.text
    session.expire_all()
    [correction] = session.exec(select(CorrectionRequest)).all()
    [link] = session.exec(select(CorrectionAttachment)).all()
    assert link.correction_id == correction.id


def test_the_tolerance_is_a_setting(session: Session, settings: Settings) -> None:
    w = build_world(session)
    session.add(PeriodLock(region_adcode=PZH, year=2023, locked_at=NOW))
    session.commit()
    wide = settings.model_copy(update={"correction_tolerance_pct": 95.0})
    body = {
        "table": "declaration",
        "reason": "utilised tonnes mistyped",
        "payload": {"enterprise_id": w.e1, "category_code": "SW01", "year": 2023, "generated_t": 100, "utilised_t": 5},
    }
    with TestClient(create_app(wide)) as client:
        assert client.post("/api/v1/corrections", json=body, headers=_as(w, "ent1")).status_code == 201
        _sign_in(client, session, wide, "bureau_pzh")
        assert (
            "more than 95.0% and more than 10.00 t"
            in client.get("/audit/corrections", headers={"Accept-Language": "en"}).text
        )


def test_an_asked_correction_beyond_the_tolerance_carries_evidence(
    client: TestClient, session: Session, settings: Settings
) -> None:
    w = build_world(session)
    due = (datetime.now(UTC).astimezone(CST).date() + timedelta(days=7)).isoformat()
    asked = {"table": "transfer_batch", "row_id": w.batch_received, "fields": ["weight_dispatched_t"], "due_on": due}
    made = client.post("/api/v1/correction-asks", json={**asked, "reason": "ticket"}, headers=_as(w, "bureau_pzh"))
    assert made.status_code == 201, made.text
    url = f"/api/v1/correction-asks/{made.json()['id']}/answer"
    answer = {"action": "file", "values": {"weight_dispatched_t": 5}, "reason": "misread"}
    refused = client.post(url, json=answer, headers=_as(w, "ent1"))
    assert refused.status_code == 422 and "attachment_ids" in refused.text
    # The page's answer form takes the ticket.
    csrf = _sign_in(client, session, settings, "ent1")
    page = client.get(f"/asks/{made.json()['id']}", headers={"Accept-Language": "en"})
    assert 'enctype="multipart/form-data"' in page.text and "more than 10.0% and more than 10.00 t" in page.text
    form = {"action": "file", "value.weight_dispatched_t": "5", "reason": "misread", "csrf_token": csrf}
    bare = client.post(f"/asks/{made.json()['id']}/answer", data=form)
    assert bare.status_code == 422 and 'aria-invalid="true"' in bare.text
    filed = client.post(
        f"/asks/{made.json()['id']}/answer",
        data=form,
        files={"file": ("ticket.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert filed.status_code == 303, filed.text
    session.expire_all()
    [link] = session.exec(select(CorrectionAttachment)).all()
    assert session.get(CorrectionRequest, link.correction_id) is not None
