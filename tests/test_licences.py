"""Licences as reference data kept by the bureaus: one writer for the API, the page and the import; history kept."""

from __future__ import annotations

import csv
import io
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from flows.kernel.errors import Forbidden
from flows.kernel.principal import system_principal
from flows.waste.flags import FlagKind, FlagPage, list_flags
from flows.waste.imports import ImportRefused, import_licences, importable_kinds
from models import AuditLog, Enterprise, Licence, LicenceRevision
from models.enums import Channel
from tests.browser import serve
from tests.world import NOW, World, build_world

SYSTEM = system_principal(Channel.import_)
runner = CliRunner()


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def _as(w: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}"}


def _uscc(session: Session, enterprise_id: int) -> str:
    e = session.get(Enterprise, enterprise_id)
    assert e is not None
    return e.uscc


def _body(session: Session, w: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uscc": _uscc(session, w.e2),
        "activity": "utilisation",
        "category": "SW01",
        "valid_from": "2020-01-01",
        "valid_to": None,
        "capacity_t": "50000",
        "number": "川固利〔2020〕0001号",
    }
    body.update(changes)
    return body


def _csv(rows: list[list[Any]]) -> io.BytesIO:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return io.BytesIO(out.getvalue().encode())


ZH_HEADER = ["统一社会信用代码", "经营类别", "废物类别", "有效期起", "有效期止", "年许可能力(吨)", "许可证编号"]
EN_HEADER = ["uscc", "activity", "category", "valid_from", "valid_to", "capacity_t", "number"]


def _count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(model)).one())


def _flags(session: Session, kind: FlagKind) -> FlagPage:
    return list_flags(session=session, principal=SYSTEM, kinds=kind.value, year=2024, limit=None)


# --- the API ---------------------------------------------------------------------------------------------------


def test_a_bureau_records_a_licence_and_it_is_audited(client: TestClient, world: World, session: Session) -> None:
    w = world
    response = client.post("/api/v1/licences", json=_body(session, w, activity="利用"), headers=_as(w, "bureau_pzh"))
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["revision"], made["activity"], made["capacity_t"], made["recorded_by"]) == (
        1,
        "utilisation",
        50000,
        "bureau_pzh",
    )
    assert made["history"] == [] and made["category_name_zh"]
    listed = client.get("/api/v1/licences", params={"enterprise_id": w.e2}, headers=_as(w, "bureau_pzh")).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == made["id"]
    by_code = client.get("/api/v1/licences", params={"uscc": _uscc(session, w.e2)}, headers=_as(w, "admin")).json()
    assert [r["id"] for r in by_code["data"]] == [made["id"]]
    entries = session.exec(select(AuditLog).where(AuditLog.table_name == "licence")).all()
    assert [(e.action, e.row_id, e.enterprise_id) for e in entries] == [("create", str(made["id"]), w.e2)]
    # The same submission again changes nothing.
    again = client.post("/api/v1/licences", json=_body(session, w, activity="利用"), headers=_as(w, "bureau_pzh"))
    assert again.status_code == 200 and again.json()["revision"] == 1
    session.expire_all()
    assert len(session.exec(select(AuditLog.id).where(AuditLog.table_name == "licence")).all()) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"capacity_t": "1,5"}, "capacity_t"),
        ({"capacity_t": -1}, "capacity_t"),
        ({"capacity_t": 2e9}, "capacity_t"),
        ({"capacity_t": "0.0001"}, "capacity_t"),
        ({"valid_to": "2019-12-31"}, "valid_to"),
        ({"valid_from": "yesterday"}, "valid_from"),
        ({"activity": "烧掉"}, "activity"),
        ({"category": "SW99X"}, "category"),
        ({"uscc": "91510000MA0000001X"}, "uscc"),
        ({"number": ""}, "number"),
        ({"number": "号" * 65}, "number"),
        ({"licence_id": 1}, "revision"),
    ],
)
def test_a_wrong_field_is_refused_by_name(
    client: TestClient, world: World, session: Session, changes: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/licences", json=_body(session, world, **changes), headers=_as(world, "admin"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert _count(session, Licence) == 0
    zh = client.post(
        "/api/v1/licences",
        json=_body(session, world, **changes),
        headers={**_as(world, "admin"), "Accept-Language": "zh-CN"},
    )
    assert zh.json()["detail"] != response.json()["detail"]


@pytest.mark.parametrize("role", ["ent1", "park_a", "bureau_dy"])
def test_only_the_bureaus_of_the_region_record_licences(
    client: TestClient, world: World, session: Session, role: str
) -> None:
    response = client.post("/api/v1/licences", json=_body(session, world), headers=_as(world, role))
    assert response.status_code == 403, response.text
    assert _count(session, Licence) == 0


def test_an_enterprise_cannot_licence_itself(client: TestClient, world: World, session: Session) -> None:
    body = _body(session, world, uscc=_uscc(session, world.e1))
    response = client.post("/api/v1/licences", json=body, headers=_as(world, "ent1"))
    assert response.status_code == 403 and "licences" in response.json()["detail"]


def test_a_replacement_keeps_the_old_version(client: TestClient, world: World, session: Session) -> None:
    w = world
    made = client.post("/api/v1/licences", json=_body(session, w), headers=_as(w, "bureau_pzh")).json()
    # Without naming the licence, a second one with the same key is refused: nothing is overwritten by surprise.
    clash = client.post("/api/v1/licences", json=_body(session, w, capacity_t=9), headers=_as(w, "bureau_sc"))
    assert clash.status_code == 409 and clash.json()["field"] == "valid_from"
    body = _body(session, w, capacity_t="60000.5", valid_to="2026-12-31", licence_id=made["id"], revision=1)
    replaced = client.post("/api/v1/licences", json=body, headers=_as(w, "bureau_sc"))
    assert replaced.status_code == 200, replaced.text
    now = replaced.json()
    assert (now["id"], now["revision"], now["capacity_t"], now["valid_to"]) == (made["id"], 2, 60000.5, "2026-12-31")
    assert now["recorded_by"] == "bureau_sc"
    [old] = now["history"]
    assert (old["revision"], old["capacity_t"], old["valid_to"], old["recorded_by"], old["superseded_by"]) == (
        1,
        50000,
        None,
        "bureau_pzh",
        "bureau_sc",
    )
    assert old["recorded_at"] and old["superseded_at"]
    # A replacement from a version already replaced is refused, naming the revision.
    stale = client.post("/api/v1/licences", json={**body, "capacity_t": 1}, headers=_as(w, "bureau_pzh"))
    assert stale.status_code == 409 and stale.json()["field"] == "revision"
    one = client.get(f"/api/v1/licences/{made['id']}", headers=_as(w, "ent1"))
    assert one.status_code == 404  # E2's licence: ent1 reads its own enterprise only
    seen = client.get(f"/api/v1/licences/{made['id']}", headers=_as(w, "bureau_pzh")).json()
    assert [v["revision"] for v in seen["history"]] == [1]
    actions = session.exec(select(AuditLog.action).where(AuditLog.table_name == "licence")).all()
    assert list(actions) == ["create", "replace"]
    assert _count(session, LicenceRevision) == 1


def test_parallel_replacements_leave_one_winner_and_the_whole_history(
    settings: Settings, world: World, session: Session
) -> None:
    w = world
    with serve(settings) as url:
        made = httpx.post(f"{url}/api/v1/licences", json=_body(session, w), headers=_as(w, "bureau_pzh")).json()
        barrier = threading.Barrier(6)

        def replace(n: int) -> httpx.Response:
            body = _body(session, w, capacity_t=1000 + n, licence_id=made["id"], revision=1)
            with httpx.Client(timeout=120) as client:
                barrier.wait()
                return client.post(f"{url}/api/v1/licences", json=body, headers=_as(w, "bureau_pzh"))

        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(pool.map(replace, range(6)))
    assert Counter(r.status_code for r in responses) == Counter({200: 1, 409: 5}), [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    session.expire_all()
    stored = session.get(Licence, made["id"])
    assert stored is not None and stored.revision == 2 and stored.capacity_t == Decimal(winner["capacity_t"])
    history = session.exec(select(LicenceRevision).where(LicenceRevision.licence_id == made["id"])).all()
    assert [(h.revision, h.capacity_t) for h in history] == [(1, Decimal(50000))]


# --- the import ------------------------------------------------------------------------------------------------


def test_the_import_reads_chinese_headers_and_replaces_keeping_history(world: World, session: Session) -> None:
    w = world
    e2 = _uscc(session, w.e2)
    bureau = w.principals["bureau_pzh"]
    rows = [ZH_HEADER, [e2, "利用", "SW01", "2020-01-01", "", "50,000", "川固利〔2020〕0001号"]]
    rows.append([e2, "贮存", "冶炼废渣", "2021/3/1", "2025-12-31", "800.5", "川固贮〔2021〕0002号"])
    summary = import_licences(session=session, principal=bureau, source=_csv(rows), now=NOW, name="l.csv")
    session.commit()
    assert (summary.inserted, summary.updated, summary.skipped) == (2, 0, 0)
    again = import_licences(session=session, principal=bureau, source=_csv(rows), now=NOW, name="l.csv")
    session.commit()
    assert (again.inserted, again.updated, again.skipped) == (0, 0, 2)
    rows[1][5] = "55000"
    changed = import_licences(session=session, principal=bureau, source=_csv(rows), now=NOW, name="l.csv")
    session.commit()
    assert (changed.inserted, changed.updated, changed.skipped) == (0, 1, 1)
    session.expire_all()
    current = session.exec(select(Licence).where(Licence.activity == "utilisation")).one()
    assert (current.revision, current.capacity_t, current.recorded_by) == (2, Decimal(55000), w.users["bureau_pzh"])
    [old] = session.exec(select(LicenceRevision)).all()
    assert (old.revision, old.capacity_t, old.licence_id) == (1, Decimal(50000), current.id)
    storage = session.exec(select(Licence).where(Licence.activity == "storage")).one()
    assert (storage.category_code, str(storage.valid_from), storage.capacity_t) == (
        "SW01",
        "2021-03-01",
        Decimal("800.5"),
    )
    # One audit entry per file, naming it and its hash.
    entries = session.exec(select(AuditLog).where(AuditLog.table_name == "licence")).all()
    assert [e.action for e in entries] == ["import"] * 3 and (entries[0].after or {}).get("file") == "l.csv"


def test_the_import_is_all_or_nothing_and_names_row_and_column(world: World, session: Session) -> None:
    w = world
    e2, e3 = _uscc(session, w.e2), _uscc(session, w.e3)
    rows = [
        EN_HEADER,
        [e2, "utilisation", "SW01", "2020-01-01", "", "100", "A-1"],
        [e2, "焚烧", "SW01", "2020-01-01", "", "100", "A-2"],
        [e2, "disposal", "SW01", "2020-01-01", "2019-01-01", "1,5", "A-3"],
        [e3, "disposal", "SW02", "2020-01-01", "", "10", "A-4"],  # Deyang: outside Panzhihua
        [e2, "utilisation", "SW01", "2020-01-01", "", "200", "A-5"],  # the same licence as line 2
    ]
    with pytest.raises(ImportRefused) as caught:
        import_licences(session=session, principal=w.principals["bureau_pzh"], source=_csv(rows), now=NOW)
    session.rollback()
    found = {(e.line, e.column) for e in caught.value.errors}
    assert found == {(3, "activity"), (4, "valid_to"), (4, "capacity_t"), (5, "uscc"), (6, "uscc")}
    reasons = {(e.line, e.column): e.problem.render("zh-CN") for e in caught.value.errors}
    assert "不在本辖区内" in reasons[(5, "uscc")] and "第 2 行" in reasons[(6, "uscc")]
    assert "有效期止" in reasons[(4, "valid_to")]
    assert _count(session, Licence) == 0


def test_a_missing_column_is_named_in_the_readers_words(world: World, session: Session) -> None:
    rows = [ZH_HEADER[:-1], [_uscc(session, world.e2), "利用", "SW01", "2020-01-01", "", "1"]]
    with pytest.raises(ImportRefused) as caught:
        import_licences(session=session, principal=SYSTEM, source=_csv(rows), now=NOW)
    [error] = caught.value.errors
    assert error.column == "licence_no" and error.label.render("zh-CN") == "许可证编号"


def test_only_bureaus_and_administrators_import_licences(world: World, session: Session) -> None:
    rows = [EN_HEADER, [_uscc(session, world.e1), "utilisation", "SW01", "2020-01-01", "", "1", "X"]]
    for role in ("ent1", "park_a"):
        with pytest.raises(Forbidden):
            import_licences(session=session, principal=world.principals[role], source=_csv(rows), now=NOW)
        assert "licences" not in importable_kinds(world.principals[role])
    assert importable_kinds(world.principals["bureau_dy"]) == ("licences", "targets")
    assert "licences" in importable_kinds(SYSTEM)


def test_the_import_reads_a_workbook(world: World, session: Session, tmp_path: Path) -> None:
    from datetime import date

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(ZH_HEADER)
    sheet.append([_uscc(session, world.e2), "处置", "SW02", date(2022, 1, 1), None, 1234.5, "川固处〔2022〕7号"])
    path = tmp_path / "licences.xlsx"
    book.save(path)
    summary = import_licences(session=session, principal=world.principals["bureau_sc"], source=path, now=NOW)
    session.commit()
    assert summary.inserted == 1
    stored = session.exec(select(Licence)).one()
    assert (stored.activity, stored.capacity_t, str(stored.valid_from)) == ("disposal", Decimal("1234.5"), "2022-01-01")


def test_the_command_line_imports_licences(
    cli_env: dict[str, str], world: World, session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "licences.csv"
    path.write_bytes(
        _csv([EN_HEADER, [_uscc(session, world.e2), "utilisation", "SW01", "2020-01-01", "", "9", "N"]]).getvalue()
    )
    result = runner.invoke(cli, ["import", "licences", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"inserted": 1' in result.output
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        _csv([EN_HEADER, [_uscc(session, world.e2), "utilisation", "SW01", "2020-01-01", "", "x", "N"]]).getvalue()
    )
    refused = runner.invoke(cli, ["import", "licences", str(bad)])
    assert refused.exit_code == 1 and "line 2, capacity_t" in refused.output


# --- the flags follow the current version ---------------------------------------------------------------------


def test_flags_follow_the_current_licence(client: TestClient, world: World, session: Session) -> None:
    w = world  # E1 -> E2: 29.8 t of SW01 received on 2024-05-02 for cement admixture
    subject = f"manifest/{w.batch_received}"
    assert subject in {f.subject for f in _flags(session, FlagKind.unlicensed_receiver).data}
    rows = [EN_HEADER, [_uscc(session, w.e2), "utilisation", "SW01", "2020-01-01", "", "10", "N-1"]]
    import_licences(session=session, principal=w.principals["bureau_pzh"], source=_csv(rows), now=NOW)
    session.commit()
    assert subject not in {f.subject for f in _flags(session, FlagKind.unlicensed_receiver).data}
    assert [f.evidence["capacity_t"] for f in _flags(session, FlagKind.capacity_exceeded).data] == [10]
    licence = session.exec(select(Licence)).one()
    body = _body(session, w, capacity_t=100, number="N-1", licence_id=licence.id, revision=1)
    assert client.post("/api/v1/licences", json=body, headers=_as(w, "bureau_pzh")).status_code == 200
    assert _flags(session, FlagKind.capacity_exceeded).data == []
    # A replacement that ends the licence before the receipt brings the flag back; the history keeps the rest.
    body = {**body, "valid_to": "2023-12-31", "revision": 2}
    assert client.post("/api/v1/licences", json=body, headers=_as(w, "bureau_pzh")).status_code == 200
    assert subject in {f.subject for f in _flags(session, FlagKind.unlicensed_receiver).data}
    assert _count(session, LicenceRevision) == 2
    assert session.exec(select(func.count()).select_from(Licence).where(col(Licence.revision) == 3)).one() == 1


# --- the form on the enterprise page ----------------------------------------------------------------------------


def _form(**changes: str) -> dict[str, str]:
    data = {
        "activity": "utilisation",
        "category": "SW01",
        "valid_from": "2020-01-01",
        "valid_to": "",
        "capacity_t": "50,000",
        "number": "川固利〔2020〕0001号",
    }
    data.update(changes)
    return data


def test_the_page_offers_the_form_to_the_regions_bureau_only(client: TestClient, world: World) -> None:
    w = world
    page = client.get(f"/enterprises/{w.e1}", headers=_as(w, "bureau_pzh"))
    assert page.status_code == 200 and 'id="licence-form"' in page.text
    for role in ("ent1", "park_a"):
        other = client.get(f"/enterprises/{w.e1}", headers=_as(w, role))
        assert other.status_code == 200 and 'id="licence-form"' not in other.text
    refused = client.post(f"/enterprises/{w.e1}/licences", data=_form(), headers=_as(w, "ent1"))
    assert refused.status_code == 403
    outside = client.post(f"/enterprises/{w.e1}/licences", data=_form(), headers=_as(w, "bureau_dy"))
    assert outside.status_code in (403, 404)


def test_the_form_names_the_wrong_field_and_keeps_what_was_typed(
    client: TestClient, world: World, session: Session
) -> None:
    w = world
    url = f"/enterprises/{w.e2}/licences"
    headers = {**_as(w, "bureau_pzh"), "HX-Request": "true", "Accept-Language": "zh-CN"}
    sent = client.post(url, data=_form(capacity_t="1,5", number="N-9"), headers=headers, follow_redirects=False)
    assert sent.status_code == 422
    assert 'id="lf-capacity_t-error"' in sent.text and 'aria-invalid="true"' in sent.text
    assert "N-9" in sent.text and "<html" not in sent.text  # the card alone, as typed
    assert _count(session, Licence) == 0
    made = client.post(url, data=_form(), headers=_as(w, "bureau_pzh"), follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"].startswith(f"/enterprises/{w.e2}?done=created")
    licence = session.exec(select(Licence)).one()
    assert licence.capacity_t == Decimal(50000)
    filled = client.get(f"/enterprises/{w.e2}?licence={licence.id}", headers=_as(w, "bureau_pzh"))
    assert 'name="revision" value="1"' in filled.text
    data = _form(capacity_t="70000", licence_id=str(licence.id), revision="1")
    replaced = client.post(url, data=data, headers={**_as(w, "bureau_pzh"), "HX-Request": "true"})
    assert replaced.status_code == 200 and 'data-revision="2"' in replaced.text
    assert "licence-history" in replaced.text
    stale = client.post(url, data=data, headers={**_as(w, "bureau_pzh"), "HX-Request": "true"})
    assert stale.status_code == 409 and 'id="lf-form-error"' in stale.text
    assert _count(session, LicenceRevision) == 1


def test_the_example_file_imports(world: World, session: Session) -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "import"
    from flows.waste.imports import import_enterprises

    import_enterprises(session=session, principal=SYSTEM, source=docs / "enterprises.csv", now=NOW)
    summary = import_licences(session=session, principal=SYSTEM, source=docs / "licences.csv", now=NOW)
    session.commit()
    assert summary.inserted == 3
    fly_ash = session.exec(select(Licence).where(Licence.category_code == "SW02")).one()
    assert fly_ash.capacity_t == Decimal("45000.5") and str(fly_ash.valid_to) == "2026-12-31"
