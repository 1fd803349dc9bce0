"""The audit log's signed head and its exported anchor: removed and rewritten tails are caught, on both databases.

Tampering is simulated as someone with database rights would do it: the append-only triggers are dropped (SQLite)
or disabled (PostgreSQL), then rows are deleted or rewritten with every following hash recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.cli import cli
from flows.access import trail as audit
from flows.access.accounts import system_principal
from flows.kernel.errors import Conflict
from models import AuditHead, AuditLog
from tests.world import NOW, build_world

runner = CliRunner()
KEY = "audit key of the tests, 32 chars"
ROTATED = "the audit key after a rotation.."


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> Iterator[bytes]:
    """One audit key for this process's writes and for the command line's (which reads it from the environment)."""
    previous = audit._signing_key
    monkeypatch.setenv("CIRCUFLOW_AUDIT_KEY", KEY)
    audit.use_signing_key(KEY.encode())
    yield KEY.encode()
    audit.use_signing_key(previous)


def _write(session: Session, n: int) -> list[int]:
    """Append n entries through the application, committed; their ids."""
    ids = []
    for i in range(n):
        entry = audit.record(
            session=session,
            principal=system_principal(),
            action="update",
            table="declaration",
            row_id=i,
            before={"utilised_t": i},
            after={"utilised_t": i + 1},
            now=NOW,
        )
        assert entry.id is not None
        ids.append(entry.id)
    session.commit()
    return ids


def _unguard(engine: Engine, backend: str) -> None:
    """Drop the database's guard on the audit tables, as someone with database rights can."""
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            conn.execute(text("ALTER TABLE audit_head DISABLE TRIGGER audit_head_kept"))
        else:
            for trigger in ("audit_log_no_update", "audit_log_no_delete", "audit_head_no_delete"):
                conn.execute(text(f"DROP TRIGGER {trigger}"))


def _delete_from(engine: Engine, first_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id >= :id"), {"id": first_id})


def _rewrite_from(engine: Engine, session: Session, first_id: int) -> None:
    """Edit one entry and recompute its hash and every following one, so that the chain alone still holds."""
    session.expire_all()
    entries = session.exec(select(AuditLog).where(col(AuditLog.id) >= first_id).order_by(col(AuditLog.id))).all()
    prev = entries[0].prev_hash
    updates = []
    for n, entry in enumerate(entries):
        row_id = "999" if n == 0 else entry.row_id
        entry.row_id, entry.prev_hash = row_id, prev
        prev = audit._entry_hash(prev, audit._hashed_fields(entry))
        updates.append({"id": entry.id, "row_id": row_id, "prev": entry.prev_hash, "hash": prev})
    session.rollback()
    with engine.begin() as conn:
        for u in updates:
            conn.execute(
                text("UPDATE audit_log SET row_id = :row_id, prev_hash = :prev, hash = :hash WHERE id = :id"), u
            )
    session.expire_all()


def _cli_verify(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(cli, ["audit-log", "verify", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_an_untouched_log_verifies_and_its_anchor_matches(
    session: Session, key: bytes, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ids = _write(session, 5)
    check = audit.verify_chain(session=session)
    assert check.ok and check.anchored and check.checked == 5
    assert check.head is not None and check.head.entry_id == ids[-1] and check.head.count == 5
    anchor_file = tmp_path / "anchor.json"
    result = runner.invoke(cli, ["audit-log", "anchor", "--out", str(anchor_file)])
    assert result.exit_code == 0, result.output
    anchor = json.loads(anchor_file.read_text())
    assert set(anchor) == {"entry_id", "hash", "count", "at", "signature"}
    assert anchor["entry_id"] == ids[-1] and anchor["count"] == 5 and anchor["at"].endswith("+00:00")
    # Printed without --out: the same anchor, nothing written to the log by asking for it.
    printed = runner.invoke(cli, ["audit-log", "anchor"])
    assert printed.exit_code == 0 and json.loads(printed.stdout) == anchor
    _write(session, 2)  # the log goes on; the anchor still holds for the entries it covers
    code, report = _cli_verify("--anchor", str(anchor_file))
    assert code == 0, report
    assert report["ok"] and report["anchored"] and report["anchor_checked"] and report["checked"] == 7
    plain = runner.invoke(cli, ["audit-log", "verify"])
    assert plain.exit_code == 0 and "7 entries" in plain.stdout


def test_removing_the_last_entries_is_caught_by_the_signed_head(
    engine: Engine, session: Session, backend: str, key: bytes, cli_env: dict[str, str]
) -> None:
    ids = _write(session, 6)
    _unguard(engine, backend)
    _delete_from(engine, ids[-2])
    session.expire_all()
    check = audit.verify_chain(session=session)
    assert not check.ok and check.fault == "head"
    assert check.broken_at == ids[-1] and "removed" in check.reason
    code, report = _cli_verify()
    assert code == 1 and report["broken_at"] == ids[-1] and not report["anchored"]
    result = runner.invoke(cli, ["audit-log", "verify"])
    assert result.exit_code == 1 and f"entry {ids[-1]}" in result.stderr and "removed" in result.stderr
    # The next entry chains to what the head signed, not to the shortened log: the gap stays visible.
    new = _write(session, 1)[0]
    check = audit.verify_chain(session=session)
    assert not check.ok and check.fault == "chain" and check.broken_at == new
    # No anchor can be taken of a log that does not verify.
    assert runner.invoke(cli, ["audit-log", "anchor"]).exit_code == 1


def test_removing_every_entry_is_caught(engine: Engine, session: Session, backend: str, key: bytes) -> None:
    ids = _write(session, 3)
    _unguard(engine, backend)
    _delete_from(engine, ids[0])
    session.expire_all()
    check = audit.verify_chain(session=session)
    assert not check.ok and check.fault == "head" and check.broken_at == ids[-1]


def test_a_rewritten_tail_with_recomputed_hashes_is_caught(
    engine: Engine, session: Session, backend: str, key: bytes
) -> None:
    ids = _write(session, 6)
    _unguard(engine, backend)
    _rewrite_from(engine, session, ids[2])
    check = audit.verify_chain(session=session)
    # The chain alone is consistent again; the signed head is not.
    assert not check.ok and check.fault == "head" and check.broken_at == ids[-1] and "rewritten" in check.reason
    # Moving the head to the rewritten tail needs the key: without it the signature fails.
    session.expire_all()
    last = session.exec(select(AuditLog).order_by(col(AuditLog.id).desc())).first()
    assert last is not None
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET entry_hash = :hash"), {"hash": last.hash})
    session.expire_all()
    check = audit.verify_chain(session=session)
    assert not check.ok and check.fault == "signature" and "signature" in check.reason
    # The application keeps writing, and leaves the forged head as evidence rather than signing over it.
    _write(session, 1)
    assert audit.verify_chain(session=session).fault == "signature"


def test_the_anchor_catches_what_a_key_holder_rewrote(
    engine: Engine, session: Session, backend: str, key: bytes, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ids = _write(session, 4)
    anchor_file = tmp_path / "anchor.json"
    assert runner.invoke(cli, ["audit-log", "anchor", "--out", str(anchor_file)]).exit_code == 0
    ids += _write(session, 2)
    # Someone holding the key rewrites an entry the anchor covers, recomputes the hashes and re-signs the head.
    _unguard(engine, backend)
    _rewrite_from(engine, session, ids[1])
    audit.sign_head(session=session, principal=system_principal(), now=NOW, resign=True)
    session.commit()
    assert audit.verify_chain(session=session).ok  # the database alone cannot tell any more
    code, report = _cli_verify("--anchor", str(anchor_file))
    assert code == 1 and report["fault"] == "anchor" and report["broken_at"] == ids[3]
    assert "differs from the anchor" in str(report["reason"])
    result = runner.invoke(cli, ["audit-log", "verify", "--anchor", str(anchor_file)])
    assert result.exit_code == 1 and f"entry {ids[3]}" in result.stderr


def test_the_anchor_catches_a_truncation_re_signed_with_the_key(
    engine: Engine, session: Session, backend: str, key: bytes, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ids = _write(session, 5)
    anchor_file = tmp_path / "anchor.json"
    assert runner.invoke(cli, ["audit-log", "anchor", "--out", str(anchor_file)]).exit_code == 0
    _unguard(engine, backend)
    _delete_from(engine, ids[3])
    session.expire_all()
    assert runner.invoke(cli, ["audit-log", "anchor", "--resign"]).exit_code == 0
    assert _cli_verify()[0] == 0
    code, report = _cli_verify("--anchor", str(anchor_file))
    assert code == 1 and report["fault"] == "anchor" and report["broken_at"] == ids[-1]
    assert "anchored entry is gone" in str(report["reason"])


def test_a_log_from_before_the_head_is_reported_until_signed(
    engine: Engine, session: Session, backend: str, key: bytes, cli_env: dict[str, str]
) -> None:
    ids = _write(session, 3)
    # As a database upgraded from 0005 looks: entries, no head (the migration cannot sign without the key).
    _unguard(engine, backend)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_head"))
    session.expire_all()
    check = audit.verify_chain(session=session)
    assert not check.ok and check.fault == "unanchored" and "not anchored" in check.reason
    assert _cli_verify()[0] == 1
    result = runner.invoke(cli, ["audit-log", "anchor"])
    assert result.exit_code == 0, result.output
    anchor = json.loads(result.stdout)
    # Signing is itself on the record: the head now covers the three entries and the one saying so.
    session.expire_all()
    last = session.exec(select(AuditLog).order_by(col(AuditLog.id).desc())).first()
    assert last is not None and last.table_name == "audit_head" and last.action == "anchor"
    assert anchor["entry_id"] == last.id and anchor["count"] == len(ids) + 1
    assert audit.verify_chain(session=session).ok


def test_the_first_entry_signs_a_log_without_head(engine: Engine, session: Session, backend: str, key: bytes) -> None:
    _write(session, 2)
    _unguard(engine, backend)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_head"))
    session.expire_all()
    _write(session, 1)
    check = audit.verify_chain(session=session)
    assert check.ok and check.head is not None and check.head.count == 3


def test_an_empty_log_verifies_and_has_nothing_to_anchor(session: Session, key: bytes) -> None:
    check = audit.verify_chain(session=session)
    assert check.ok and check.checked == 0 and not check.anchored
    with pytest.raises(Conflict, match="empty"):
        audit.current_anchor(session=session)


def test_the_head_cannot_be_deleted_and_has_one_row(engine: Engine, session: Session, key: bytes) -> None:
    _write(session, 1)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_head"))
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_head (id, entry_id, entry_hash, count, at, signature)"
                " VALUES (2, 1, 'x', 1, :at, 'x')"
            ),
            {"at": NOW},
        )
    assert len(session.exec(select(AuditHead)).all()) == 1


def test_another_key_fails_until_the_log_is_re_signed(session: Session, key: bytes, cli_env: dict[str, str]) -> None:
    _write(session, 2)
    audit.use_signing_key(ROTATED.encode())
    check = audit.verify_chain(session=session)
    assert not check.ok and check.fault == "signature"
    with pytest.raises(Conflict, match="--resign"):
        audit.sign_head(session=session, principal=system_principal(), now=NOW)
    session.rollback()
    # The command line reads the key from the environment: re-signing there takes the new key.
    result = runner.invoke(cli, ["audit-log", "anchor", "--resign"], env={"CIRCUFLOW_AUDIT_KEY": ROTATED})
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["audit-log", "verify"], env={"CIRCUFLOW_AUDIT_KEY": ROTATED}).exit_code == 0
    assert runner.invoke(cli, ["audit-log", "verify"]).exit_code == 1  # the old key no longer signs the head
    session.expire_all()
    last = session.exec(select(AuditLog).order_by(col(AuditLog.id).desc())).first()
    assert last is not None and last.action == "resign" and last.before is not None


def test_the_anchor_file_is_checked(cli_env: dict[str, str], tmp_path: Path, key: bytes) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"entry_id": 1}')
    result = runner.invoke(cli, ["audit-log", "verify", "--anchor", str(bad)])
    assert result.exit_code == 1 and "not an audit anchor" in result.stderr
    result = runner.invoke(cli, ["audit-log", "verify", "--anchor", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "cannot read" in result.stderr


def test_api_anchor_and_verify_report_the_head(
    client: TestClient, engine: Engine, session: Session, backend: str
) -> None:
    w = build_world(session)
    admin = {"Authorization": f"Bearer {w.tokens['admin']}"}
    response = client.get("/api/v1/audit/anchor", headers=admin)
    assert response.status_code == 200, response.text
    anchor = response.json()
    assert set(anchor) == {"entry_id", "hash", "count", "at", "signature"} and anchor["at"].endswith(("Z", "+00:00"))
    verify = client.get("/api/v1/audit/verify", headers=admin).json()
    assert verify["ok"] and verify["anchored"] and verify["head"]["entry_id"] == anchor["entry_id"]
    assert verify["head"]["count"] == verify["checked"]
    bureau = client.get("/api/v1/audit/anchor", headers={"Authorization": f"Bearer {w.tokens['bureau_pzh']}"})
    assert bureau.status_code == 200
    for role in ("ent1", "park_a"):
        assert (
            client.get("/api/v1/audit/anchor", headers={"Authorization": f"Bearer {w.tokens[role]}"}).status_code == 403
        )
    _unguard(engine, backend)
    _delete_from(engine, anchor["entry_id"])
    verify = client.get("/api/v1/audit/verify", headers=admin).json()
    assert not verify["ok"] and verify["fault"] == "head" and verify["broken_at"] == anchor["entry_id"]
    assert not verify["anchored"]
    refused = client.get("/api/v1/audit/anchor", headers=admin)
    assert refused.status_code == 409 and "does not verify" in refused.text
