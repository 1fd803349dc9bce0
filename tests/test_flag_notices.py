"""The flag scan: every flag on an enterprise told to its users once, by the worker or `circuflow notices flags`."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.cli import cli
from app.mailer import Mailer
from flows.kernel.principal import system_principal
from flows.notices.inbox import text_of
from flows.waste.flag_alerts import KINDS, announce_flags
from flows.waste.flags import list_flags
from models import Declaration, Manifest, ManifestDraw, Notice, User
from models.enums import ManifestStatus, Route
from tests.world import World, add_receiver_account, build_world, t

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
runner = CliRunner()


@pytest.fixture
def world(session: Session) -> World:
    """The world, with a 2026 declaration that does not balance and a 2026 forwarding that names no sources."""
    w = add_receiver_account(session, build_world(session))
    # Made 100 t, used 50 t, nothing stored, disposed or dumped: 50 t unaccounted for.
    session.add(Declaration(enterprise_id=w.e1, category_code="SW01", year=2026, generated_t=t(100), utilised_t=t(50)))
    forward = Manifest(
        number="SC2026-0000001",
        shipper_id=w.e2,
        receiver_id=w.e3,
        category_code="SW01",
        route=Route.cement_admixture,
        year=2026,
        status=ManifestStatus.dispatched,
        weight_dispatched_t=t(10),
        dispatched_at=datetime(2026, 5, 2, 8, tzinfo=UTC),
        created_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    session.add(forward)
    session.flush()
    assert forward.id is not None
    session.add(ManifestDraw(manifest_id=forward.id, source_id=w.batch_received, kg=10_000, named=False))
    session.commit()
    return w


def _flags(session: Session) -> list[tuple[str, str, list[int]]]:
    found = []
    for year in (2025, 2026):
        page = list_flags(session=session, principal=system_principal(), year=year, kinds=KINDS, limit=None)
        found += [(f.kind.value, f.subject, f.enterprise_ids) for f in page.data]
    return found


def _notices(session: Session) -> list[Notice]:
    session.expire_all()
    return list(session.exec(select(Notice).where(col(Notice.kind) == "flag_found").order_by(col(Notice.id))).all())


def test_one_scan_tells_each_flag_once_to_its_enterprises_users(session: Session, world: World) -> None:
    w = world
    flags = _flags(session)
    kinds = Counter(kind for kind, _, _ in flags)
    assert kinds["balance_break"] == 1 and kinds["unlinked_forwarding"] == 1
    result = announce_flags(session, NOW)
    session.commit()
    users = {u.id: u.scope_enterprise_id for u in session.exec(select(User)).all()}
    expected = Counter(
        (uid, subject.partition("/")[0], subject.partition("/")[2])
        for _, subject, enterprises in flags
        for uid, ent in users.items()
        if ent in enterprises
    )
    told = _notices(session)
    bureaus = [n for n in told if n.user_id in (w.users["bureau_pzh"], w.users["bureau_dy"], w.users["bureau_sc"])]
    told = [n for n in told if n not in bureaus]
    # The city bureaus hear of the flags on their enterprises (E1 and E2 in Panzhihua, E3 in Deyang); the province not.
    assert Counter(n.user_id for n in bureaus) == {
        w.users["bureau_pzh"]: sum(1 for _, _, ents in flags if {w.e1, w.e2} & set(ents)),
        w.users["bureau_dy"]: sum(1 for _, _, ents in flags if w.e3 in ents),
    }
    assert Counter((n.user_id, n.subject, n.subject_id) for n in told) == expected
    assert result.told == len(flags)
    # The declaration's flags (its balance break among them) reach E1's account (ent1) alone, one notice each.
    declared = [n for n in told if n.subject == "declaration"]
    assert {n.user_id for n in declared} == {w.users["ent1"]}
    assert len(declared) == sum(1 for _, subject, _ in flags if subject.startswith("declaration/"))
    assert any("off by 50.00 t" in text_of(n, "en") for n in declared)
    assert all("2026" in text_of(n, "zh-CN") for n in declared)
    forwarding = [n for n in told if "SC2026-0000001" in text_of(n, "en") and n.subject == "manifest"]
    assert {n.user_id for n in forwarding} >= {w.principals["ent2"].user_id}
    # A second scan finds every flag told already.
    again = announce_flags(session, NOW)
    session.commit()
    assert again.told == 0
    assert len(_notices(session)) == len(told) + len(bureaus)


def test_a_flag_told_on_write_is_not_told_again_by_the_scan(session: Session, world: World) -> None:
    from flows.waste.alerts import mark_told

    forward = session.exec(select(Manifest).where(Manifest.number == "SC2026-0000001")).one()
    assert mark_told(session=session, kind="unlinked_forwarding", year=2026, subject=f"manifest/{forward.id}", now=NOW)
    session.commit()
    announce_flags(session, NOW)
    session.commit()
    assert not [n for n in _notices(session) if n.subject_id == str(forward.id) and "drew" in text_of(n, "en")]
    assert [n for n in _notices(session) if n.subject == "declaration"]


def test_the_cli_runs_the_scan(cli_env: dict[str, str], session: Session, world: World) -> None:
    first = runner.invoke(cli, ["notices", "flags", "--json"])
    assert first.exit_code == 0, first.output
    body = json.loads(first.output)
    told = _notices(session)
    assert body["told"] >= 1 and {n.subject for n in told} == {"declaration", "manifest"}
    second = runner.invoke(cli, ["notices", "flags", "--json"])
    assert second.exit_code == 0 and json.loads(second.output)["told"] == 0


def test_the_notice_worker_runs_the_scan_on_its_period(engine: Engine, session: Session, world: World) -> None:
    worker = Mailer(engine=engine, target=None, poll_s=0.05, base_url="", flag_scan_s=0.1)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not _notices(session) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert {n.subject for n in _notices(session)} == {"declaration", "manifest"}


def test_a_flag_that_clears_and_comes_back_is_told_again(session: Session, world: World) -> None:
    announce_flags(session, NOW)
    session.commit()
    declaration = session.exec(select(Declaration).where(Declaration.year == 2026)).one()
    declaration.stored_t = t(50)  # the break is mended: the 50 t were stored
    session.add(declaration)
    session.commit()
    later = NOW + timedelta(hours=2)
    assert announce_flags(session, later).told == 0
    session.commit()
    declaration.stored_t = t(0)  # and broken again
    session.add(declaration)
    session.commit()
    before = len(_notices(session))
    assert announce_flags(session, later + timedelta(hours=2)).told == 1
    session.commit()
    again = _notices(session)[before:]
    assert sorted(n.user_id for n in again) == sorted([world.users["ent1"], world.users["bureau_pzh"]])
    assert all("off by 50.00 t" in text_of(n, "en") for n in again)
    # A key marked within the hour is kept though its flag is not seen: a mark made during a scan is never lost.
    declaration.stored_t = t(50)
    session.add(declaration)
    session.commit()
    assert announce_flags(session, later + timedelta(hours=2, minutes=1)).told == 0
    session.commit()
    declaration.stored_t = t(0)
    session.add(declaration)
    session.commit()
    assert announce_flags(session, later + timedelta(hours=2, minutes=2)).told == 0


def test_the_inbox_tells_the_flag_in_the_readers_language(client: TestClient, session: Session, world: World) -> None:
    announce_flags(session, NOW)
    session.commit()
    for lang, words in (
        ("en", "Audit flag on your 2026 records: SW01"),
        ("zh-CN", "贵单位2026年度数据出现审核提示：SW01"),
    ):
        headers = {"Authorization": f"Bearer {world.tokens['ent1']}", "Accept-Language": lang}
        answer = client.get("/api/v1/notifications", headers=headers)
        assert answer.status_code == 200, answer.text
        told = [n for n in answer.json()["data"] if n["kind"] == "flag_found"]
        assert told and all(n["text"].startswith(words) for n in told), told
        page = client.get("/inbox", headers=headers)
        assert page.status_code == 200 and ("Audit flag" if lang == "en" else "审核提示") in page.text
