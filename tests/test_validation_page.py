"""A malformed query on a page: the error page names each field in the reader's language; the API keeps FastAPI's."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.settings import Settings
from tests.test_web_audit import _sign_in
from tests.world import build_world


@pytest.mark.parametrize(
    ("lang", "words"), [("zh-CN", ["年份：必填", "取值无效"]), ("en", ["year: required", "not a valid"])]
)
def test_the_page_names_the_fields_in_the_readers_language(
    client: TestClient, session: Session, settings: Settings, lang: str, words: list[str]
) -> None:
    build_world(session)
    _sign_in(client, session, settings, "bureau_pzh")
    client.cookies.set("lang", lang)
    page = client.get("/audit/locks/checklist?region_adcode=510400&year=x", headers={"Accept": "text/html"})
    assert page.status_code == 422 and "Input should be" not in page.text
    missing = client.get("/audit/locks/checklist?region_adcode=510400", headers={"Accept": "text/html"})
    assert missing.status_code == 422 and words[0] in missing.text and "Field required" not in missing.text
    assert words[1] in page.text


def test_the_api_keeps_fastapis_list(client: TestClient, session: Session) -> None:
    w = build_world(session)
    reply = client.get(
        "/api/v1/locks/checklist?adcode=510400", headers={"Authorization": f"Bearer {w.tokens['bureau_pzh']}"}
    )
    assert (
        reply.status_code == 422 and reply.json()["field"] == "year" and reply.json()["detail"][0]["type"] == "missing"
    )
