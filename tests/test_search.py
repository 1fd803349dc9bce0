"""The header's search: a batch number, credit code, enterprise name or battery code opens its page, or lists a few
matches, only within what the reader may read; the API answers the same (both databases)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from models import Enterprise, Manifest
from tests.access_cases_battery import MODULE, seed_batteries
from tests.world import World, build_world


def _get(client: TestClient, w: World, role: str, url: str, lang: str = "en", **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {w.tokens[role]}", "Accept-Language": lang}
    return client.get(url, params=params, headers=headers, follow_redirects=False)


def _number(session: Session, batch_id: int) -> str:
    batch = session.get(Manifest, batch_id)
    assert batch is not None
    return batch.number


def _uscc(session: Session, enterprise_id: int) -> str:
    e = session.get(Enterprise, enterprise_id)
    assert e is not None
    return e.uscc


def test_an_exact_number_or_code_opens_its_page(client: TestClient, session: Session) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    number = _number(session, w.batch_received)
    page = _get(client, w, "ent1", "/search", q=number.lower())
    assert page.status_code == 303 and page.headers["location"] == f"/batches/{w.batch_received}"
    uscc = _uscc(session, w.e2)
    assert _get(client, w, "bureau_sc", "/search", q=uscc).headers["location"] == f"/enterprises/{w.e2}"
    assert _get(client, w, "ent1", "/search", q=MODULE).headers["location"] == f"/batteries/{MODULE}"
    api = _get(client, w, "ent1", "/api/v1/search", q=number).json()
    assert api["go"] == f"/batches/{w.batch_received}"
    assert [h["kind"] for h in api["hits"]] == ["batch"]


def test_a_fragment_lists_a_few_matches_within_scope(client: TestClient, session: Session) -> None:
    w = build_world(session)
    many = _get(client, w, "bureau_sc", "/search", lang="zh-CN", q="测试企业")
    assert many.status_code == 200
    assert many.text.count('data-kind="enterprise"') == 3
    assert "企业" in many.text
    # A city bureau of Deyang finds only Deyang's enterprise (E3), and goes straight to it.
    one = _get(client, w, "bureau_dy", "/search", q="Test Enterprise")
    assert one.status_code == 303 and one.headers["location"] == f"/enterprises/{w.e3}"
    # Batches outside the reader's scope are not found, by page or API.
    number = _number(session, w.batch_received)
    none = _get(client, w, "ent3", "/search", q=number)
    assert none.status_code == 200 and 'id="search-hits"' not in none.text
    assert _get(client, w, "ent3", "/api/v1/search", q=number).json() == {"q": number, "go": None, "hits": []}
    prefix = _get(client, w, "ent1", "/api/v1/search", q="SC2024").json()
    assert prefix["go"] is None and len(prefix["hits"]) == 3
    assert _get(client, w, "ent1", "/api/v1/search", q="x" * 101).status_code == 422
    assert _get(client, w, "ent1", "/api/v1/search", q="%").json()["hits"] == []
    assert _get(client, w, "ent1", "/api/v1/search").json() == {"q": "", "go": None, "hits": []}
    assert client.get("/api/v1/search", params={"q": number}).status_code == 401


def test_text_no_database_can_hold_is_refused_naming_the_field(client: TestClient, session: Session) -> None:
    w = build_world(session)
    for bad in ("SC2024\x00", "测试\x00企业"):
        answer = _get(client, w, "ent1", "/api/v1/search", q=bad)
        assert answer.status_code == 422, bad
        assert "q" in answer.text
