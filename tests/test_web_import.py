"""The import page and the import API: who may import what, a landed file, a refused file listed row by row."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.auth import SESSION_COOKIE, signed
from app.settings import Settings
from flows.access import accounts
from models import Enterprise, Manifest
from tests.world import NOW, World, build_world

HEADER = "shipper_uscc,receiver_uscc,category,route,weight_dispatched_kg,dispatched_at\n"


def _sign_in(client: TestClient, session: Session, settings: Settings, username: str) -> str:
    user = accounts.get_user(session=session, username=username)
    raw, csrf = accounts.start_session(session=session, user=user, now=NOW.replace(year=2099))
    session.commit()
    client.cookies.set(SESSION_COOKIE, signed(raw, settings.secret_key))
    return csrf


def _usccs(session: Session, w: World) -> tuple[str, str, str]:
    def code(eid: int) -> str:
        e = session.get(Enterprise, eid)
        assert e is not None
        return e.uscc

    return code(w.e1), code(w.e2), code(w.e3)


def _batches(session: Session) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(Manifest)).one())


def test_enterprise_user_imports_its_manifests_on_the_page(
    client: TestClient, session: Session, settings: Settings
) -> None:
    w = build_world(session, with_tokens=False)
    e1, e2, _ = _usccs(session, w)
    csrf = _sign_in(client, session, settings, "ent1")
    page = client.get("/import")
    assert page.status_code == 200
    assert 'value="manifests"' in page.text and 'value="enterprises"' not in page.text
    body = (
        HEADER
        + f"{e1},{e2},SW01,cement_admixture,30500,2024-05-06 08:30\n"
        + f"{e1},{e2},SW02,road_base,12000,2024-05-07 09:00\n"
    )
    before = _batches(session)
    done = client.post(
        "/import",
        data={"kind": "manifests", "csrf_token": csrf},
        files={"file": ("m.csv", body.encode("utf-8"), "text/csv")},
    )
    assert done.status_code == 200, done.text
    assert 'data-figure="inserted">2<' in done.text
    assert _batches(session) == before + 2


def test_refused_file_lists_every_row_and_saves_nothing(
    client: TestClient, session: Session, settings: Settings
) -> None:
    w = build_world(session, with_tokens=False)
    e1, e2, e3 = _usccs(session, w)
    csrf = _sign_in(client, session, settings, "ent1")
    body = (
        HEADER
        + f"{e1},{e2},SW01,cement_admixture,30500,2024-05-06 08:30\n"
        + f"{e1},{e2},SW99,cement_admixture,-4,2024-05-06 08:30\n"
        + f"{e3},{e2},SW01,cement_admixture,1000,2024-05-06 08:30\n"
    )
    before = _batches(session)
    refused = client.post(
        "/import",
        data={"kind": "manifests", "csrf_token": csrf},
        files={"file": ("bad.csv", body.encode("gb18030"), "text/csv")},
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 422
    assert "<html" not in refused.text  # an htmx answer is the content block alone
    table = refused.text.split('id="import-errors"', 1)[1]
    for line, column in (("3", "category"), ("3", "weight_dispatched_kg"), ("4", "shipper_uscc")):
        assert f'<td class="num">{line}</td><td class="code">{column}</td>' in table, (line, column)
    assert _batches(session) == before


def test_who_may_import(client: TestClient, session: Session, settings: Settings) -> None:
    w = build_world(session, with_tokens=False)
    e1, e2, _ = _usccs(session, w)
    body = (HEADER + f"{e1},{e2},SW01,cement_admixture,30500,2024-05-06 08:30\n").encode()
    csrf = _sign_in(client, session, settings, "bureau_pzh")
    page = client.get("/import", headers={"Accept-Language": "en"}).text
    # A bureau imports the licences it keeps, and nothing an enterprise records.
    assert 'value="licences"' in page and 'value="manifests"' not in page
    denied = client.post(
        "/import", data={"kind": "manifests", "csrf_token": csrf}, files={"file": ("m.csv", body, "text/csv")}
    )
    assert denied.status_code == 403
    csrf = _sign_in(client, session, settings, "ent1")
    no_csrf = client.post("/import", data={"kind": "manifests"}, files={"file": ("m.csv", body, "text/csv")})
    assert no_csrf.status_code == 403
    assert (
        client.post(
            "/import", data={"kind": "enterprises", "csrf_token": csrf}, files={"file": ("m.csv", body, "text/csv")}
        ).status_code
        == 403
    )
    assert _batches(session) == 3


def test_import_api(client: TestClient, session: Session) -> None:
    w = build_world(session)
    e1, e2, _ = _usccs(session, w)
    headers = {"Authorization": f"Bearer {w.tokens['ent1']}"}
    good = (HEADER + f"{e1},{e2},SW01,cement_admixture,30500,2024-05-06 08:30\n").encode()
    landed = client.post("/api/v1/imports/manifests", files={"file": ("m.csv", good, "text/csv")}, headers=headers)
    assert landed.status_code == 201 and landed.json()["inserted"] == 1
    bad = (HEADER + f"{e1},{e1},SW01,cement_admixture,30500,2024-05-06 08:30\n").encode()
    refused = client.post("/api/v1/imports/manifests", files={"file": ("b.csv", bad, "text/csv")}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["line"] == 2 and refused.json()["total"] == 1
    assert client.post("/api/v1/imports/manifests", files={"file": ("m.csv", good, "text/csv")}).status_code == 401
    other = {"Authorization": f"Bearer {w.tokens['park_a']}"}
    assert (
        client.post("/api/v1/imports/manifests", files={"file": ("m.csv", good, "text/csv")}, headers=other).status_code
        == 403
    )
    assert (
        client.post("/api/v1/imports/planets", files={"file": ("m.csv", good, "text/csv")}, headers=headers).status_code
        == 422
    )
    assert _batches(session) == 4
    # The caller's history through the API: the file that landed, not the refused one; another account sees none.
    history = client.get("/api/v1/imports", headers=headers)
    assert history.status_code == 200, history.text
    assert [(h["kind"], h["file"], h["inserted"]) for h in history.json()] == [("manifests", "m.csv", 1)]
    assert history.json()[0]["href"] == "/batches?direction=out"
    assert client.get("/api/v1/imports", headers=other).json() == []
    assert client.get("/api/v1/imports").status_code == 401
