"""Targets and waste categories as reference data the bureaus keep: API, page, import, history, and the rates."""

from __future__ import annotations

import csv
import io
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from flows.kernel.errors import Forbidden
from flows.kernel.principal import system_principal
from flows.kernel.uscc import make_uscc
from flows.waste import rates
from flows.waste.imports import (
    ImportRefused,
    import_categories,
    import_declarations,
    import_targets,
    importable_kinds,
)
from models import AuditLog, Declaration, Manifest, Target, WasteCategory
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


def _target(**changes: Any) -> dict[str, Any]:
    return {
        "name": "panzhihua-2025",
        "scope_adcode": "510400",
        "year": 2025,
        "value": "90%",
        "categories": ["SW01", "SW02"],
        "source": "攀枝花市工业固废综合利用实施方案",
        "valid_from": "2023-01-01",
        **changes,
    }


def _csv(rows: list[list[Any]]) -> io.BytesIO:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return io.BytesIO(out.getvalue().encode())


def _audit(session: Session, table: str) -> list[str]:
    session.expire_all()
    return list(session.exec(select(AuditLog.action).where(AuditLog.table_name == table).order_by(col(AuditLog.id))))


# --- targets through the API --------------------------------------------------------------------------------------


def test_a_bureau_sets_its_prefectures_target_and_it_is_audited(
    client: TestClient, world: World, session: Session
) -> None:
    w = world
    made = client.post("/api/v1/targets", json=_target(), headers=_as(w, "bureau_pzh"))
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["value"] == 0.9 and body["categories"] == ["SW01", "SW02"] and body["revision"] == 1
    assert body["scope_name_zh"] == "攀枝花市" and body["valid_from"] == "2023-01-01"
    listed = client.get("/api/v1/targets?scope=510400", headers=_as(w, "ent1")).json()
    # A prefecture is held to its own targets and the province's.
    assert {t["scope_adcode"] for t in listed["data"]} == {"510000", "510400"}
    assert _audit(session, "target") == ["create"]
    history = client.get(f"/api/v1/targets/{body['id']}/history", headers=_as(w, "park_a")).json()
    assert [h["action"] for h in history] == ["create"] and history[0]["after"]["categories"] == ["SW01", "SW02"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"value": "120%"}, "value"),
        ({"value": "eighty"}, "value"),
        ({"value": 80}, "value"),
        ({"categories": ["SW99"]}, "categories"),
        ({"categories": ["SW77"]}, "categories"),
        ({"categories": []}, "categories"),
        ({"scope_adcode": "5104"}, "scope_adcode"),
        ({"scope_adcode": "999999"}, "scope_adcode"),
        ({"valid_to": "2022-01-01"}, "valid_to"),
        ({"valid_from": "1900-01-01"}, "valid_from"),
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"year": 1990}, "year"),
        ({"source": "s" * 257}, "source"),
    ],
)
def test_a_wrong_field_is_refused_by_name(
    client: TestClient, world: World, session: Session, changes: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/targets", json=_target(**changes), headers=_as(world, "admin"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert _audit(session, "target") == []


def test_a_target_counts_classes_not_catalogue_codes(client: TestClient, world: World, session: Session) -> None:
    w = world
    made = client.post(
        "/api/v1/categories",
        json={"code": "261-001-S01", "name_zh": "钛白粉生产废渣", "name_en": "Titanium dioxide slag"},
        headers=_as(w, "admin"),
    )
    assert made.status_code == 201, made.text
    refused = client.post("/api/v1/targets", json=_target(categories=["261001S01"]), headers=_as(w, "admin"))
    assert refused.status_code == 422 and refused.json()["field"] == "categories"
    assert "SW01" in refused.json()["detail"]


def test_bureaus_set_targets_for_their_region_and_below_only(client: TestClient, world: World) -> None:
    w = world
    for role, scope in (("bureau_pzh", "510600"), ("bureau_pzh", "510000"), ("ent1", "510400"), ("park_a", "510400")):
        response = client.post("/api/v1/targets", json=_target(scope_adcode=scope), headers=_as(w, role))
        assert response.status_code == 403, (role, scope, response.text)
    county = client.post(
        "/api/v1/targets", json=_target(name="renhe-2025", scope_adcode="510411"), headers=_as(w, "bureau_pzh")
    )
    assert county.status_code == 201, county.text
    province = client.post("/api/v1/targets", json=_target(), headers=_as(w, "bureau_sc"))
    assert province.status_code == 201, province.text


def test_a_change_names_its_revision_and_keeps_the_history(client: TestClient, world: World, session: Session) -> None:
    w = world
    made = client.post("/api/v1/targets", json=_target(), headers=_as(w, "bureau_pzh")).json()
    url = f"/api/v1/targets/{made['id']}"
    missing = client.put(url, json=_target(value=0.92), headers=_as(w, "bureau_pzh"))
    assert missing.status_code == 422 and missing.json()["field"] == "revision"
    changed = client.put(url, json=_target(value=0.92, revision=1), headers=_as(w, "bureau_pzh"))
    assert changed.status_code == 200 and changed.json()["revision"] == 2 and changed.json()["value"] == 0.92
    stale = client.put(url, json=_target(value=0.95, revision=1), headers=_as(w, "bureau_pzh"))
    assert stale.status_code == 409 and stale.json()["field"] == "revision"
    moved = client.put(url, json=_target(scope_adcode="510600", revision=2), headers=_as(w, "bureau_pzh"))
    assert moved.status_code == 403
    taken = client.post("/api/v1/targets", json=_target(year=2030), headers=_as(w, "bureau_pzh"))
    assert taken.status_code == 409 and taken.json()["field"] == "name"
    slot = client.post("/api/v1/targets", json=_target(name="pzh-again"), headers=_as(w, "bureau_pzh"))
    assert slot.status_code == 409 and slot.json()["field"] == "year"
    history = client.get(f"{url}/history", headers=_as(w, "admin")).json()
    assert [h["action"] for h in history] == ["create", "change"]
    assert (history[1]["before"]["value"], history[1]["after"]["value"]) == (0.9, 0.92)


def test_parallel_changes_leave_one_winner(settings: Settings, world: World, session: Session) -> None:
    w = world
    with serve(settings) as url:
        made = httpx.post(f"{url}/api/v1/targets", json=_target(), headers=_as(w, "bureau_pzh")).json()
        barrier = threading.Barrier(6)

        def change(n: int) -> httpx.Response:
            with httpx.Client(timeout=120) as client:
                barrier.wait()
                return client.put(
                    f"{url}/api/v1/targets/{made['id']}",
                    json=_target(value=0.91 + n / 1000, revision=1),
                    headers=_as(w, "bureau_pzh"),
                )

        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(pool.map(change, range(6)))
    assert Counter(r.status_code for r in responses) == Counter({200: 1, 409: 5}), [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    session.expire_all()
    stored = session.get(Target, made["id"])
    assert stored is not None and stored.revision == 2 and stored.value == winner["value"]
    assert _audit(session, "target") == ["create", "change"]


# --- the rates compare a prefecture with its own target -------------------------------------------------------------


def test_a_prefecture_is_held_to_its_own_target_with_the_provinces_beside(
    client: TestClient, world: World, session: Session
) -> None:
    w = world
    made = client.post("/api/v1/targets", json=_target(), headers=_as(w, "bureau_pzh")).json()
    own = rates.utilisation(session=session, principal=w.principals["bureau_pzh"], year=2025, region="510400")
    assert (own.target, own.target_scope) == (0.9, "510400")
    assert (own.outer_target, own.outer_target_scope) == (0.78, "510000")
    assert own.categories[:2] == ["SW01", "SW02"]
    other = rates.utilisation(session=session, principal=w.principals["bureau_dy"], year=2025, region="510600")
    assert (other.target, other.target_scope, other.outer_target) == (0.78, "510000", None)
    api = client.get("/api/v1/rates?year=2025&region=510400", headers=_as(w, "bureau_pzh")).json()
    # The keys the report always had are all there; the province's figure is beside them.
    assert {"rate", "target", "target_scope", "next_target", "series", "categories"} <= api.keys()
    assert (api["target"], api["outer_target"]) == (0.9, 0.78)
    page = client.get("/dashboard?year=2025", headers=_as(w, "bureau_pzh"))
    assert 'data-figure="outer_target">78.0%' in page.text
    retired = client.post(f"/api/v1/targets/{made['id']}/retire", json={"revision": 1}, headers=_as(w, "bureau_pzh"))
    assert retired.status_code == 200 and retired.json()["retired_at"] is not None
    again = rates.utilisation(session=session, principal=w.principals["bureau_pzh"], year=2025, region="510400")
    assert (again.target, again.target_scope, again.outer_target) == (0.78, "510000", None)
    twice = client.post(f"/api/v1/targets/{made['id']}/retire", json={"revision": 2}, headers=_as(w, "bureau_pzh"))
    assert twice.status_code == 409
    listed = client.get("/api/v1/targets?retired=true", headers=_as(w, "ent1")).json()
    assert made["id"] in {t["id"] for t in listed["data"]}
    assert made["id"] not in {t["id"] for t in client.get("/api/v1/targets", headers=_as(w, "ent1")).json()["data"]}
    assert _audit(session, "target") == ["create", "retire"]


# --- waste categories -------------------------------------------------------------------------------------------


def test_an_administrator_files_a_catalogue_code_under_its_class(
    client: TestClient, world: World, session: Session
) -> None:
    w = world
    body = {"code": "261-001-s01", "name_zh": "钛白粉生产废渣", "name_en": "Titanium dioxide slag"}
    made = client.post("/api/v1/categories", json=body, headers=_as(w, "admin"))
    assert made.status_code == 201, made.text
    assert made.json()["code"] == "261001S01" and made.json()["parent_code"] == "SW01" and made.json()["is_bulk"]
    again = client.post("/api/v1/categories", json=body, headers=_as(w, "admin"))
    assert again.status_code == 200
    changed = client.post("/api/v1/categories", json={**body, "valid_to": "2030-12-31"}, headers=_as(w, "admin")).json()
    assert changed["valid_to"] == "2030-12-31"
    assert client.get("/api/v1/categories/261-001-S01", headers=_as(w, "ent1")).json()["parent_code"] == "SW01"
    history = client.get("/api/v1/categories/261001S01/history", headers=_as(w, "ent1")).json()
    assert [h["action"] for h in history] == ["create", "change"]
    assert client.post("/api/v1/categories", json=body, headers=_as(w, "bureau_sc")).status_code == 403


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"code": "261-001-S08"}, "code"),  # S08 is unused
        ({"code": "261-001-S60"}, "code"),
        ({"code": "26100S01"}, "code"),
        ({"code": "261-001-S30"}, "code"),  # its class SW30 is not in the catalogue
        ({"name_zh": ""}, "name_zh"),
        ({"valid_from": "2025-01-01", "valid_to": "2024-01-01"}, "valid_to"),
        ({"is_bulk": "perhaps"}, "is_bulk"),
    ],
)
def test_a_wrong_category_is_refused_by_name(
    client: TestClient, world: World, session: Session, changes: dict[str, Any], field: str
) -> None:
    body = {"code": "261-001-S01", "name_zh": "钛白粉生产废渣", "name_en": "Titanium dioxide slag", **changes}
    response = client.post("/api/v1/categories", json=body, headers=_as(world, "admin"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert _audit(session, "waste_category") == []


def test_declarations_and_manifests_take_either_form(client: TestClient, world: World, session: Session) -> None:
    w = world
    client.post(
        "/api/v1/categories",
        json={"code": "261-001-S01", "name_zh": "钛白粉生产废渣", "name_en": "Titanium dioxide slag"},
        headers=_as(w, "admin"),
    )
    decl = client.post(
        "/api/v1/declarations",
        json={"enterprise_id": w.e1, "category_code": "261-001-S01", "year": 2024, "generated_t": 10},
        headers=_as(w, "ent1"),
    )
    assert decl.status_code == 200, decl.text
    assert decl.json()["category_code"] == "SW01"
    manifest = client.post(
        "/api/v1/manifests",
        json={
            "receiver_id": w.e2,
            "category_code": "261001S01",
            "route": "cement_admixture",
            "weight_dispatched_t": "5",
        },
        headers=_as(w, "ent1"),
    )
    assert manifest.status_code == 201, manifest.text
    stored = session.get(Manifest, manifest.json()["id"])
    assert stored is not None and stored.category_code == "SW01"
    unknown = client.post(
        "/api/v1/declarations",
        json={"enterprise_id": w.e1, "category_code": "261-002-S01", "year": 2024, "generated_t": 10},
        headers=_as(w, "ent1"),
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "category_code"
    session.expire_all()
    assert session.exec(select(Declaration).where(Declaration.category_code == "261001S01")).first() is None


def test_a_declaration_file_may_give_catalogue_codes(world: World, session: Session) -> None:
    w = world
    session.add(WasteCategory(code="261001S01", name_zh="钛白粉生产废渣", name_en="Titanium slag", parent_code="SW01"))
    session.commit()
    rows = [
        ["uscc", "year", "category", "generated_t", "utilised_t", "disposed_t", "stored_t", "dumped_t"],
        [make_uscc("91510000MA000001"), "2024", "261-001-S01", "10", "8", "0", "2", "0"],
        [make_uscc("91510000MA000003"), "2024", "261001s01", "20", "15", "0", "5", "0"],
    ]
    summary = import_declarations(session=session, principal=SYSTEM, source=_csv(rows), now=NOW)
    session.commit()
    assert summary.inserted == 2
    stored = session.exec(select(Declaration.category_code).where(Declaration.year == 2024)).all()
    assert sorted(stored) == ["SW01", "SW01"]
    assert w.e1 in set(session.exec(select(Declaration.enterprise_id).where(Declaration.year == 2024)).all())


# --- imports -------------------------------------------------------------------------------------------------------


def test_the_target_import_reads_chinese_headers_and_changes_by_name(world: World, session: Session) -> None:
    w = world
    header = ["目标名称", "地区代码", "年份", "目标值", "废物类别", "依据文件", "有效期起"]
    rows = [
        header,
        ["panzhihua-2025", "510400", "2025", "90%", "SW01;SW02", "攀枝花市方案", "2023-01-01"],
        ["panzhihua-2030", "510400", "2030", "0.92", "SW01，SW02", "攀枝花市方案", ""],
    ]
    summary = import_targets(session=session, principal=w.principals["bureau_pzh"], source=_csv(rows), now=NOW)
    session.commit()
    assert (summary.inserted, summary.updated) == (2, 0)
    rows[1][3] = "91%"
    summary = import_targets(session=session, principal=w.principals["bureau_pzh"], source=_csv(rows), now=NOW)
    session.commit()
    assert (summary.inserted, summary.updated, summary.skipped) == (0, 1, 1)
    stored = session.exec(select(Target).where(Target.name == "panzhihua-2025")).one()
    assert stored.value == 0.91 and stored.revision == 2
    assert _audit(session, "target") == ["create", "create", "import", "change", "import"]


def test_the_target_import_is_all_or_nothing_and_names_row_and_column(world: World, session: Session) -> None:
    w = world
    rows = [
        ["name", "scope_adcode", "year", "value", "categories"],
        ["pzh-a", "510400", "2025", "0.9", "SW01"],
        ["pzh-b", "510400", "2026", "1.5", "SW01"],
        ["dy-a", "510600", "2025", "0.9", "SW01"],
        ["pzh-a", "510400", "2027", "0.9", "SW01"],
    ]
    with pytest.raises(ImportRefused) as exc:
        import_targets(session=session, principal=w.principals["bureau_pzh"], source=_csv(rows), now=NOW)
    session.rollback()
    found = {(e.line, e.column) for e in exc.value.errors}
    assert (3, "value") in found and (5, "name") in found
    assert session.exec(select(Target).where(col(Target.name).like("pzh-%"))).first() is None
    # The region outside the bureau's is refused when the rows are written, naming the row.
    rows = [rows[0], rows[1], rows[3]]
    with pytest.raises(ImportRefused) as exc:
        import_targets(session=session, principal=w.principals["bureau_pzh"], source=_csv(rows), now=NOW)
    session.rollback()
    assert [(e.line, e.column) for e in exc.value.errors] == [(3, "scope_adcode")]
    assert session.exec(select(Target).where(col(Target.name).like("pzh-%"))).first() is None


def test_only_keepers_import_reference_data(world: World, session: Session) -> None:
    w = world
    rows = [["code", "name_zh", "name_en"], ["261-001-S01", "钛白粉生产废渣", "Titanium dioxide slag"]]
    for role in ("ent1", "park_a", "bureau_sc"):
        with pytest.raises(Forbidden):
            import_categories(session=session, principal=w.principals[role], source=_csv(rows), now=NOW)
    with pytest.raises(Forbidden):
        import_targets(session=session, principal=w.principals["ent1"], source=_csv(rows), now=NOW)
    assert "targets" in importable_kinds(w.principals["bureau_pzh"])
    assert "categories" not in importable_kinds(w.principals["bureau_pzh"])


def test_the_category_import_reads_a_workbook(world: World, session: Session, tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["类别代码", "中文名称", "英文名称", "大宗", "有效期起"])
    sheet.append(["261-001-S01", "钛白粉生产废渣", "Titanium dioxide slag", "是", NOW.date()])
    sheet.append(["SW18", "其他废渣", "Other slag", "否", None])
    path = tmp_path / "categories.xlsx"
    book.save(path)
    summary = import_categories(session=session, principal=SYSTEM, source=path, now=NOW)
    session.commit()
    assert summary.inserted == 2
    child = session.get(WasteCategory, "261001S01")
    assert child is not None and child.parent_code == "SW01" and child.valid_from == NOW.date()
    bad = [["code", "name_zh", "name_en"], ["261-001-S08", "x", "x"]]
    with pytest.raises(ImportRefused) as exc:
        import_categories(session=session, principal=SYSTEM, source=_csv(bad), now=NOW)
    assert [(e.line, e.column) for e in exc.value.errors] == [(2, "code")]


def test_the_command_line_imports_targets(cli_env: dict[str, str], session: Session, tmp_path: Path) -> None:
    build_world(session)
    path = tmp_path / "targets.csv"
    path.write_bytes(
        _csv(
            [["name", "scope_adcode", "year", "value", "categories"], ["pzh", "510400", "2025", "0.9", "SW01"]]
        ).getvalue()
    )
    result = runner.invoke(cli, ["import", "targets", str(path), "--json"], env=cli_env)
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.exec(select(Target).where(Target.name == "pzh")).one().value == 0.9


# --- pages -------------------------------------------------------------------------------------------------------


def test_the_targets_page_lists_and_its_form_names_the_wrong_field(client: TestClient, world: World) -> None:
    w = world
    page = client.get("/targets", headers={**_as(w, "bureau_pzh"), "Accept-Language": "zh-CN"})
    assert page.status_code == 200 and 'data-target="sichuan-2025"' in page.text and 'id="target-form"' in page.text
    assert 'id="target-form"' not in client.get("/targets", headers=_as(w, "ent1")).text
    sent = {k: str(v) for k, v in _target(value="180%", categories="SW01, SW02").items()}
    refused = client.post("/targets", data=sent, headers={**_as(w, "bureau_pzh"), "Accept-Language": "zh-CN"})
    assert refused.status_code == 422
    assert (
        'id="tf-value" name="value" type="text" value="180%"' in refused.text and 'aria-invalid="true"' in refused.text
    )
    saved = client.post("/targets", data={**sent, "value": "90%"}, headers=_as(w, "bureau_pzh"), follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/targets?done=created"
    listed = client.get("/targets?done=created", headers=_as(w, "bureau_pzh")).text
    assert 'data-target="panzhihua-2025"' in listed and "90.0%" in listed


def test_the_categories_page_offers_the_form_to_administrators(client: TestClient, world: World) -> None:
    w = world
    assert 'id="category-form"' in client.get("/categories", headers=_as(w, "admin")).text
    assert 'id="category-form"' not in client.get("/categories", headers=_as(w, "bureau_sc")).text
    refused = client.post("/categories", data={"code": "SW08", "name_zh": "x", "name_en": "x"}, headers=_as(w, "admin"))
    assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
