"""The attachment store: evidence checked by content and size, kept under its hash outside the rows, read in scope."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.settings import Settings
from flows.access import files
from flows.access.files import FileStore
from flows.kernel.errors import InvalidInput, NotFound
from models import AuditLog
from models.files import Attachment
from tests.access_cases import ROLES, SEES_E1
from tests.world import NOW, World, build_world

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def _as(w: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}"} if role != "anon" else {}


def _upload(client: TestClient, w: World, role: str, data: bytes, name: str = "ticket.pdf", **form: object) -> object:
    return client.post(
        "/api/v1/attachments",
        files={"file": (name, data, "application/octet-stream")},
        data={k: str(v) for k, v in form.items()},
        headers=_as(w, role),
    )


def test_an_upload_is_kept_under_its_hash_and_logged(client: TestClient, settings: Settings, world: World) -> None:
    w = world
    reply = _upload(client, w, "ent1", PDF, "磅单.pdf", enterprise_id=w.e1)
    assert reply.status_code == 201, reply.text  # type: ignore[attr-defined]
    body = reply.json()  # type: ignore[attr-defined]
    digest = hashlib.sha256(PDF).hexdigest()
    assert body["sha256"] == digest and body["media_type"] == "application/pdf" and body["filename"] == "磅单.pdf"
    stored = settings.data_dir / "attachments" / digest[:2] / digest
    assert stored.read_bytes() == PDF
    got = client.get(f"/api/v1/attachments/{body['id']}", headers=_as(w, "ent1"))
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-security-policy"] == "sandbox"
    # The same bytes twice: two attachments (two acts of filing), one file.
    again = _upload(client, w, "bureau_pzh", PDF, "again.pdf", enterprise_id=w.e1).json()  # type: ignore[attr-defined]
    assert again["id"] != body["id"] and len(list(stored.parent.iterdir())) == 1


def test_the_audit_log_carries_the_hash(client: TestClient, session: Session, world: World) -> None:
    body = _upload(client, world, "ent1", PNG, "scan.png", enterprise_id=world.e1).json()  # type: ignore[attr-defined]
    session.expire_all()
    entry = session.exec(
        select(AuditLog).where(AuditLog.table_name == "attachment", AuditLog.row_id == str(body["id"]))
    ).one()
    assert entry.action == "attach" and entry.after is not None
    assert entry.after["sha256"] == hashlib.sha256(PNG).hexdigest() and entry.after["media_type"] == "image/png"


@pytest.mark.parametrize(
    ("data", "name", "form", "field"),
    [
        (b"", "empty.pdf", {}, "file"),
        (b"MZ\x90\x00 not evidence", "virus.pdf", {}, "file"),  # the name says PDF; the bytes do not
        (b"<html><script>alert(1)</script>", "x.png", {}, "file"),
        (PDF, "t.pdf", {"enterprise_id": 0}, "enterprise_id"),
    ],
)
def test_bad_uploads_are_refused_naming_the_field(
    client: TestClient, world: World, data: bytes, name: str, form: dict[str, object], field: str
) -> None:
    reply = _upload(client, world, "ent1", data, name, **(form or {"enterprise_id": world.e1}))
    assert reply.status_code == 422, reply.text  # type: ignore[attr-defined]
    assert field in reply.text  # type: ignore[attr-defined]


def test_an_enterprise_names_whose_record_it_supports(client: TestClient, session: Session, world: World) -> None:
    reply = _upload(client, world, "ent1", PDF)
    assert reply.status_code == 422 and "enterprise_id" in reply.text  # type: ignore[attr-defined]
    session.expire_all()
    assert session.exec(select(Attachment)).all() == []


def test_a_file_over_the_limit_is_refused(world: World, session: Session, tmp_path: Path) -> None:
    store = FileStore(root=tmp_path / "store", max_bytes=len(PDF) - 1)
    with pytest.raises(InvalidInput) as refused:
        files.store_attachment(
            session=session,
            principal=world.principals["ent1"],
            store=store,
            data=PDF,
            filename="big.pdf",
            enterprise_id=world.e1,
            now=NOW,
        )
    assert refused.value.field == "file" and not (tmp_path / "store").exists()


@pytest.mark.parametrize("role", ROLES)
def test_upload_and_read_role_by_role(client: TestClient, world: World, role: str) -> None:
    w = world
    reply = _upload(client, w, role, PDF, enterprise_id=w.e1)
    allowed = role in SEES_E1
    expected = 201 if allowed else (401 if role == "anon" else 404)
    assert reply.status_code == expected, reply.text  # type: ignore[attr-defined]
    owned = _upload(client, w, "ent1", PDF, enterprise_id=w.e1).json()  # type: ignore[attr-defined]
    for path in (f"/api/v1/attachments/{owned['id']}", f"/attachments/{owned['id']}"):
        got = client.get(path, headers=_as(w, role), follow_redirects=False)
        if allowed:
            assert got.status_code == 200 and got.content == PDF
        else:
            assert got.status_code in ((401, 303) if role == "anon" else (404,)), (path, got.status_code)


def test_altered_bytes_are_not_served(client: TestClient, settings: Settings, world: World) -> None:
    body = _upload(client, world, "ent1", PDF, enterprise_id=world.e1).json()  # type: ignore[attr-defined]
    path = settings.data_dir / "attachments" / body["sha256"][:2] / body["sha256"]
    path.write_bytes(PDF + b"tampered")
    assert client.get(f"/api/v1/attachments/{body['id']}", headers=_as(world, "ent1")).status_code == 404


def test_a_step_names_only_attachments_its_author_may_use(client: TestClient, session: Session, world: World) -> None:
    w = world
    mine = _upload(client, w, "ent1", PDF, enterprise_id=w.e1).json()  # type: ignore[attr-defined]
    used = files.attachments_for_use(session=session, principal=w.principals["ent1"], ids=[mine["id"], str(mine["id"])])
    assert [a.id for a in used] == [mine["id"]]
    for bad in ([mine["id"] + 999], ["x"], [True], [0]):
        with pytest.raises(InvalidInput) as refused:
            files.attachments_for_use(session=session, principal=w.principals["ent1"], ids=bad)
        assert refused.value.field == "attachment_ids"
    with pytest.raises(InvalidInput):
        files.attachments_for_use(session=session, principal=w.principals["ent3"], ids=[mine["id"]])
    with pytest.raises(NotFound):
        files.get_attachment(session=session, principal=w.principals["ent3"], attachment_id=mine["id"])
