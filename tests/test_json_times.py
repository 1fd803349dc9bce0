"""Times in JSON always carry their offset, on both databases (SQLite hands back naive times; stored ones are UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from flows.access.accounts import system_principal
from flows.battery import chain as battery
from models import ApiToken, AuditLog, Manifest
from tests.access_cases_battery import PACK, build_chain
from tests.world import NOW, build_world

# An ISO 8601 date with a time, with or without an offset; a plain date ("2024-05-02") is a day, not a moment.
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(?P<offset>Z|[+-]\d{2}:?\d{2})?$")


def _times(value: Any, path: str = "$") -> list[tuple[str, str, bool]]:
    """Every datetime-looking string in a JSON value: where it is, what it says, whether it carries an offset."""
    found: list[tuple[str, str, bool]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _times(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += _times(item, f"{path}[{n}]")
    elif isinstance(value, str):
        match = _DATETIME.match(value)
        if match:
            found.append((path, value, match.group("offset") is not None))
    return found


def test_every_time_in_json_answers_carries_its_offset(client: TestClient, session: Session) -> None:
    w = build_world(session)
    chain = build_chain(session, w)
    battery.register_batteries(
        session=session, principal=system_principal(), rows=[{"code": PACK, "maker_id": chain.maker}], now=NOW
    )
    session.commit()
    admin = {"Authorization": f"Bearer {w.tokens['admin']}"}
    ent1 = {"Authorization": f"Bearer {w.tokens['ent1']}"}
    created = client.post("/api/v1/tokens", json={"name": "clock"}, headers=ent1)
    correction = client.post(
        "/api/v1/corrections",
        json={
            "table": "declaration",
            "reason": "scale fault",
            "payload": {"enterprise_id": w.e1, "category_code": "SW01", "year": 2021, "generated_t": 5},
        },
        headers=ent1,
    )
    answers = {
        "token created": created,
        "correction filed": correction,
        "manifest": client.get(f"/api/v1/manifests/{w.batch_received}", headers=admin),
        "manifests": client.get("/api/v1/manifests", headers=admin),
        "battery trace": client.get(f"/api/v1/batteries/{PACK}/trace", headers=admin),
        "audit entries": client.get("/api/v1/audit", headers=admin),
        "audit anchor": client.get("/api/v1/audit/anchor", headers=admin),
        "corrections": client.get("/api/v1/corrections", headers=admin),
        "tokens": client.get("/api/v1/tokens", headers=ent1),
        "locks": client.get("/api/v1/locks", headers=admin),
    }
    naive = []
    for name, response in answers.items():
        assert 200 <= response.status_code < 300, (name, response.text)
        times = _times(response.json())
        assert times, f"{name}: no times to check"
        naive += [(name, where, value) for where, value, has_offset in times if not has_offset]
    assert naive == []
    # The offset is the right one: the stored moment, in UTC.
    manifest = answers["manifest"].json()
    assert datetime.fromisoformat(manifest["dispatched_at"]) == datetime(2024, 5, 2, 8, tzinfo=UTC)


def test_stored_times_are_loaded_aware(session: Session) -> None:
    build_world(session)
    session.expire_all()
    batch = session.exec(select(Manifest).where(Manifest.received_at.is_not(None))).first()  # type: ignore[union-attr]
    token = session.exec(select(ApiToken)).first()
    entry = session.exec(select(AuditLog)).first()
    assert batch is not None and token is not None and entry is not None
    assert batch.received_at == datetime(2024, 5, 2, 15, tzinfo=UTC) and batch.received_at.tzinfo is not None
    assert token.created_at.tzinfo is not None and entry.at.tzinfo is not None
    # Loading them aware is not a change: nothing is written back.
    assert not session.dirty
