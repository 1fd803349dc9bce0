"""Reference data kept on pages and through the API: the battery whitelist, enterprise and park edits."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from flows.battery import whitelist
from flows.battery.chain import RowsRefused, read_table
from flows.kernel.errors import Forbidden
from flows.waste.imports import import_enterprises
from maps.datum import wgs84_to_gcj02
from models import AuditLog, Enterprise, EnterpriseRoleLink, Park, WhitelistEntry
from tests.access_cases_battery import build_chain
from tests.browser import serve
from tests.test_battery_audit import ADMIN, _flags, _p, _register, _to_collected, _walk
from tests.world import NOW, World, build_world


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def _as(w: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}"}


def _uscc(session: Session, enterprise_id: int) -> str:
    e = session.get(Enterprise, enterprise_id)
    assert e is not None
    return e.uscc


def _entry(session: Session, w: World, **changes: Any) -> dict[str, Any]:
    return {
        "uscc": _uscc(session, w.e2),
        "activity": "recycling",
        "edition": "2024年本",
        "batch": "第一批",
        "listed_on": "2024-12-20",
        **changes,
    }


# --- the whitelist ---------------------------------------------------------------------------------------------


def test_a_bureau_lists_and_delists_an_enterprise_with_history(
    client: TestClient, world: World, session: Session
) -> None:
    w = world
    made = client.post("/api/v1/whitelist", json=_entry(session, w), headers=_as(w, "bureau_pzh"))
    assert made.status_code == 201, made.text
    entry = made.json()
    assert (entry["activity"], entry["edition"], entry["batch"], entry["delisted_on"]) == (
        "recycling",
        "2024年本",
        "第一批",
        None,
    )
    again = client.post("/api/v1/whitelist", json=_entry(session, w), headers=_as(w, "bureau_pzh"))
    assert again.status_code == 201 and again.json()["id"] == entry["id"]
    other = client.post("/api/v1/whitelist", json=_entry(session, w, edition="2019年本"), headers=_as(w, "bureau_pzh"))
    assert other.status_code == 409 and other.json()["field"] == "batch"
    gone = client.post(
        f"/api/v1/whitelist/{entry['id']}/delist", json={"delisted_on": "2025-06-01"}, headers=_as(w, "admin")
    )
    assert gone.status_code == 200, gone.text
    assert gone.json()["delisted_on"] == "2025-06-01"
    assert [c["action"] for c in gone.json()["history"]] == ["create", "delist"]
    twice = client.post(
        f"/api/v1/whitelist/{entry['id']}/delist", json={"delisted_on": "2025-07-01"}, headers=_as(w, "admin")
    )
    assert twice.status_code == 409
    listed = client.get("/api/v1/whitelist?on=2025-01-01&listed=true", headers=_as(w, "ent1")).json()
    assert [e["id"] for e in listed["data"]] == [entry["id"]]
    after = client.get("/api/v1/whitelist?on=2025-06-01&listed=true", headers=_as(w, "ent1")).json()
    assert after["count"] == 0


def test_only_keepers_of_the_region_record_entries(client: TestClient, world: World, session: Session) -> None:
    w = world
    for role in ("ent1", "park_a"):
        assert client.post("/api/v1/whitelist", json=_entry(session, w), headers=_as(w, role)).status_code == 403
    assert client.post("/api/v1/whitelist", json=_entry(session, w), headers=_as(w, "bureau_dy")).status_code == 403
    with pytest.raises(Forbidden):
        whitelist.save_entry(session=session, principal=w.principals["ent1"], data={}, now=NOW)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"activity": "smelting"}, "activity"),
        ({"listed_on": "2024-13-01"}, "listed_on"),
        ({"delisted_on": "2024-01-01"}, "delisted_on"),
        ({"batch": ""}, "batch"),
        ({"uscc": "91510000MA0000001X"}, "uscc"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_wrong_field_is_refused_by_name(
    client: TestClient, world: World, session: Session, change: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/whitelist", json=_entry(session, world, **change), headers=_as(world, "admin"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def _csv_file(tmp_path: Path, rows: list[list[str]]) -> Path:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path = tmp_path / "whitelist.csv"
    path.write_text(out.getvalue(), encoding="utf-8-sig")
    return path


HEADER = ["统一社会信用代码", "企业名称", "类型", "版本", "批次", "公告日期", "撤销日期"]


def test_the_import_is_all_or_nothing_naming_rows_and_columns(world: World, session: Session, tmp_path: Path) -> None:
    w = world
    e1, e2 = _uscc(session, w.e1), _uscc(session, w.e2)
    bad = _csv_file(
        tmp_path,
        [
            HEADER,
            [e2, "二", "再生利用", "2024年本", "第一批", "2024-12-20", ""],
            [e1, "一", "冶炼", "2024年本", "第一批", "2024-12-20", ""],
        ],
    )
    rows, lines = read_table(bad)
    with pytest.raises(RowsRefused) as refused:
        whitelist.save_entries(session=session, principal=w.principals["admin"], rows=rows, lines=lines, now=NOW)
    assert [(e.row, e.column) for e in refused.value.errors] == [(3, "activity")]
    assert session.exec(select(WhitelistEntry)).all() == []
    good = _csv_file(
        tmp_path,
        [
            HEADER,
            [e2, "二", "再生利用", "2024年本", "第一批", "2024-12-20", ""],
            [e1, "一", "梯次利用", "2024年本", "第一批", "2024-12-20", "2025-03-01"],
        ],
    )
    rows, lines = read_table(good)
    done = whitelist.save_entries(session=session, principal=w.principals["admin"], rows=rows, lines=lines, now=NOW)
    session.commit()
    assert [d.outcome for d in done] == ["created", "created"]
    kinds = {(e.enterprise_id, e.kind, e.revoked_on) for e in session.exec(select(WhitelistEntry))}
    assert kinds == {(w.e2, "recycling", None), (w.e1, "cascade_use", date(2025, 3, 1))}


def test_the_import_reads_a_workbook_and_replaces_by_key(world: World, session: Session, tmp_path: Path) -> None:
    w = world
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["uscc", "activity", "edition", "batch", "listed_on", "delisted_on"])
    sheet.append([_uscc(session, w.e2), "recycling", "2019年本", "第五批", date(2022, 1, 5), None])
    path = tmp_path / "list.xlsx"
    book.save(path)
    rows, lines = read_table(path)
    whitelist.save_entries(session=session, principal=w.principals["admin"], rows=rows, lines=lines, now=NOW)
    sheet.cell(row=2, column=6, value=date(2024, 1, 1))
    book.save(path)
    rows, lines = read_table(path)
    done = whitelist.save_entries(session=session, principal=w.principals["admin"], rows=rows, lines=lines, now=NOW)
    session.commit()
    assert [d.outcome for d in done] == ["replaced"]
    actions = session.exec(select(AuditLog.action).where(AuditLog.table_name == "whitelist_entry")).all()
    assert list(actions) == ["create", "replace"]


def test_parallel_delistings_leave_one_winner(settings: Settings, world: World, session: Session) -> None:
    w = world
    with serve(settings) as url:
        made = httpx.post(f"{url}/api/v1/whitelist", json=_entry(session, w), headers=_as(w, "admin")).json()
        barrier = threading.Barrier(4)

        def delist(n: int) -> httpx.Response:
            with httpx.Client(timeout=120) as client:
                barrier.wait()
                return client.post(
                    f"{url}/api/v1/whitelist/{made['id']}/delist",
                    json={"delisted_on": f"2025-0{n + 1}-15"},
                    headers=_as(w, "admin"),
                )

        with ThreadPoolExecutor(max_workers=4) as pool:
            responses = list(pool.map(delist, range(4)))
    assert Counter(r.status_code for r in responses) == Counter({200: 1, 409: 3}), [r.text for r in responses]
    actions = session.exec(select(AuditLog.action).where(AuditLog.table_name == "whitelist_entry")).all()
    assert list(actions) == ["create", "delist"]


# --- enterprises -----------------------------------------------------------------------------------------------


def test_an_administrator_moves_an_enterprise_given_in_gcj02(
    client: TestClient, world: World, session: Session
) -> None:
    w = world
    # E2 lies outside park A in Panzhihua; its new point, read off AMap, lies inside park A.
    inside = wgs84_to_gcj02(__import__("numpy").array([[101.72, 26.57]]))[0]
    body = {
        "version": 1,
        "lon": float(inside[0]),
        "lat": float(inside[1]),
        "datum": "gcj02",
        "roles": ["utiliser", "recycler"],
    }
    response = client.patch(f"/api/v1/enterprises/{w.e2}", json=body, headers=_as(w, "admin"))
    assert response.status_code == 200, response.text
    moved = response.json()
    assert abs(moved["lon"] - 101.72) < 1e-7 and abs(moved["lat"] - 26.57) < 1e-7
    assert (moved["park_id"], moved["version"], moved["roles"]) == (w.park_a, 2, ["recycler", "utiliser"])
    history = client.get(f"/api/v1/enterprises/{w.e2}/history", headers=_as(w, "bureau_pzh")).json()
    assert history[0]["changed"]["park_id"] == [None, w.park_a]
    assert history[0]["changed"]["roles"] == [["utiliser"], ["recycler", "utiliser"]]
    stale = client.patch(f"/api/v1/enterprises/{w.e2}", json={"version": 1, "name_zh": "新"}, headers=_as(w, "admin"))
    assert stale.status_code == 409 and stale.json()["field"] == "version"
    assert (
        client.patch(f"/api/v1/enterprises/{w.e2}", json={"version": 2}, headers=_as(w, "bureau_pzh")).status_code
        == 403
    )


def test_a_park_set_by_hand_stays_until_the_point_moves(client: TestClient, world: World, session: Session) -> None:
    w = world
    hand = client.patch(
        f"/api/v1/enterprises/{w.e2}", json={"version": 1, "park_id": w.park_a}, headers=_as(w, "admin")
    )
    assert hand.json()["park_id"] == w.park_a and hand.json()["location_overridden"] is True
    named = client.patch(
        f"/api/v1/enterprises/{w.e2}", json={"version": 2, "name_en": "Renamed"}, headers=_as(w, "admin")
    )
    assert named.json()["park_id"] == w.park_a
    moved = client.patch(
        f"/api/v1/enterprises/{w.e2}", json={"version": 3, "lon": 101.61, "lat": 26.55}, headers=_as(w, "admin")
    )
    assert moved.json()["park_id"] is None and moved.json()["location_overridden"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": 1, "lon": 200, "lat": 26}, "lon"),
        ({"version": 1, "lon": 101.6}, "lat"),
        ({"version": 1, "datum": "utm"}, "datum"),
        ({"version": 1, "roles": ["wizard"]}, "roles.0"),
        ({"version": 1, "roles": []}, "roles"),
        ({"version": 1, "park_id": 999}, "park_id"),
        ({"name_zh": "x"}, "version"),
        ({"version": 1, "lon": 0.0, "lat": 0.0}, "lon/lat"),
    ],
)
def test_a_wrong_edit_is_refused_by_name(client: TestClient, world: World, body: dict[str, Any], field: str) -> None:
    response = client.patch(f"/api/v1/enterprises/{world.e2}", json=body, headers=_as(world, "admin"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_parallel_edits_of_one_enterprise_leave_one_winner(settings: Settings, world: World, session: Session) -> None:
    w = world
    with serve(settings) as url:
        barrier = threading.Barrier(5)

        def edit(n: int) -> httpx.Response:
            with httpx.Client(timeout=120) as client:
                barrier.wait()
                body = {"version": 1, "name_zh": f"改名{n}", "lon": 101.60 + n / 1000, "lat": 26.55}
                return client.patch(f"{url}/api/v1/enterprises/{w.e2}", json=body, headers=_as(w, "admin"))

        with ThreadPoolExecutor(max_workers=5) as pool:
            responses = list(pool.map(edit, range(5)))
    assert Counter(r.status_code for r in responses) == Counter({200: 1, 409: 4}), [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    session.expire_all()
    stored = session.get(Enterprise, w.e2)
    assert stored is not None and stored.version == 2 and stored.name_zh == winner["name_zh"]
    edits = session.exec(select(AuditLog).where(AuditLog.table_name == "enterprise")).all()
    assert len(edits) == 1


def test_an_import_that_moves_an_enterprise_is_in_its_history(world: World, session: Session) -> None:
    w = world
    text = f"uscc,name,roles,lon,lat\n{_uscc(session, w.e2)},测试企业2,utiliser;recycler,101.72,26.57\n"
    import_enterprises(session=session, principal=w.principals["admin"], source=io.BytesIO(text.encode()), now=NOW)
    session.commit()
    stored = session.get(Enterprise, w.e2)
    assert stored is not None and stored.park_id == w.park_a and stored.version == 2
    roles = session.exec(select(EnterpriseRoleLink.role).where(EnterpriseRoleLink.enterprise_id == w.e2)).all()
    assert sorted(roles) == ["recycler", "utiliser"]
    entries = session.exec(
        select(AuditLog).where(AuditLog.table_name == "enterprise", AuditLog.row_id == str(w.e2))
    ).all()
    assert [e.action for e in entries] == ["import"]
    assert entries[0].before is not None and entries[0].before["park_id"] is None


# --- parks -----------------------------------------------------------------------------------------------------


def _square(west: float, south: float, size: float) -> dict[str, Any]:
    ring = [[west, south], [west + size, south], [west + size, south + size], [west, south + size], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_a_new_park_boundary_takes_in_the_enterprises_now_inside(
    client: TestClient, world: World, session: Session
) -> None:
    w = world
    body = {
        "version": 1,
        "name_en": "Panzhihua V-Ti Park",
        "level": "national",
        "boundary": _square(101.58, 26.53, 0.2),
    }
    response = client.patch(f"/api/v1/parks/{w.park_a}", json=body, headers=_as(w, "admin"))
    assert response.status_code == 200, response.text
    assert (response.json()["level"], response.json()["version"]) == ("national", 2)
    session.expire_all()
    e2 = session.get(Enterprise, w.e2)
    assert e2 is not None and e2.park_id == w.park_a
    history = client.get(f"/api/v1/parks/{w.park_a}/history", headers=_as(w, "ent1")).json()
    assert history[0]["changed"]["level"] == ["provincial", "national"]
    bad = client.patch(
        f"/api/v1/parks/{w.park_a}",
        json={"version": 2, "boundary": {"type": "Point", "coordinates": [1, 2]}},
        headers=_as(w, "admin"),
    )
    assert bad.status_code == 422 and bad.json()["field"] == "boundary"
    assert (
        client.patch(f"/api/v1/parks/{w.park_a}", json={"version": 2}, headers=_as(w, "bureau_sc")).status_code == 403
    )
    park = session.get(Park, w.park_a)
    assert park is not None and park.version == 2


# --- the pages -------------------------------------------------------------------------------------------------


def test_the_whitelist_page_adds_imports_and_delists(client: TestClient, world: World, session: Session) -> None:
    w = world
    zh = {**_as(w, "bureau_pzh"), "Accept-Language": "zh-CN"}
    form = _entry(session, w) | {"activity": "梯次利用"}
    bad = client.post("/whitelist", data=form | {"listed_on": "x"}, headers=zh, follow_redirects=False)
    assert bad.status_code == 422 and 'id="wl-listed_on-error"' in bad.text and 'aria-invalid="true"' in bad.text
    made = client.post("/whitelist", data=form, headers=zh, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/whitelist?done=created"
    page = client.get("/whitelist", headers=zh)
    assert page.status_code == 200 and "梯次利用" in page.text and 'data-listed="yes"' in page.text
    entry = session.exec(select(WhitelistEntry)).one()
    gone = client.post(f"/whitelist/{entry.id}/delist", data={"delisted_on": "2025-01-02"}, headers=zh)
    assert gone.status_code == 200 and 'data-listed="no"' in gone.text
    rows = "uscc,activity,edition,batch,listed_on\n" + f"{_uscc(session, w.e1)},再生,2024年本,第二批,2025-13-01\n"
    refused = client.post("/whitelist/import", files={"file": ("w.csv", rows.encode(), "text/csv")}, headers=zh)
    assert refused.status_code == 422 and 'data-row="2" data-column="listed_on"' in refused.text
    fixed = rows.replace("2025-13-01", "2025-03-01")
    done = client.post("/whitelist/import", files={"file": ("w.csv", fixed.encode(), "text/csv")}, headers=zh)
    assert done.status_code == 200 and "名单已导入" in done.text
    template = client.get("/whitelist/template.xlsx", headers=zh)
    assert template.status_code == 200 and template.content[:2] == b"PK"
    reader = client.get("/whitelist", headers=_as(w, "ent1"))
    assert reader.status_code == 200 and 'id="whitelist-form"' not in reader.text
    # The upload route is left out of the access matrix (multipart): every other role is refused here.
    for role in ("ent1", "ent3", "park_a", "park_b", "bureau_dy"):
        files = {"file": ("w.csv", fixed.encode(), "text/csv")}
        assert client.post("/whitelist/import", files=files, headers=_as(w, role)).status_code == 403, role
    files = {"file": ("w.csv", fixed.encode(), "text/csv")}
    anonymous = client.post("/whitelist/import", files=files, headers={"Accept": "application/json"})
    assert anonymous.status_code == 401
    for role in ("admin", "bureau_sc"):
        files = {"file": ("w.csv", fixed.encode(), "text/csv")}
        assert client.post("/whitelist/import", files=files, headers=_as(w, role)).status_code == 200, role


def test_the_edit_page_moves_an_enterprise_and_its_page_shows_the_history(
    client: TestClient, world: World, session: Session
) -> None:
    w = world
    zh = {**_as(w, "admin"), "Accept-Language": "zh-CN"}
    form = client.get(f"/enterprises/{w.e2}/edit", headers=zh)
    assert form.status_code == 200 and 'id="picker-map"' in form.text and 'name="version" value="1"' in form.text
    data = {
        "version": "1",
        "name_zh": "测试企业2",
        "name_en": "Test Enterprise 2",
        "roles": ["utiliser", "recycler"],
        "lon": "101.72",
        "lat": "26.57",
        "datum": "wgs84",
        "park": "",
    }
    wrong = client.post(f"/enterprises/{w.e2}/edit", data=data | {"lat": "95"}, headers=zh, follow_redirects=False)
    assert wrong.status_code == 422 and 'id="ef-lat-error"' in wrong.text and 'value="95"' in wrong.text
    saved = client.post(f"/enterprises/{w.e2}/edit", data=data, headers=zh, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    page = client.get(saved.headers["location"], headers=zh)
    assert 'id="history"' in page.text and 'data-field="park_id"' in page.text and "攀枝花钒钛园区" in page.text
    roles = page.text[page.text.find('data-field="roles"') :][:300]
    assert "利用单位 → 再生利用企业、利用单位" in roles, roles
    stale = client.post(f"/enterprises/{w.e2}/edit", data=data, headers=zh, follow_redirects=False)
    assert stale.status_code == 409 and 'id="edit-problem"' in stale.text
    assert client.get(f"/enterprises/{w.e2}/edit", headers=_as(w, "bureau_pzh")).status_code == 403


def test_the_park_edit_page_takes_a_boundary_file(client: TestClient, world: World, session: Session) -> None:
    w = world
    en = {**_as(w, "admin"), "Accept-Language": "en"}
    page = client.get(f"/parks/{w.park_a}/edit", headers=en)
    assert page.status_code == 200 and 'id="park-map"' in page.text
    data = {"version": "1", "name_zh": "攀枝花钒钛园区", "level": "national", "transformation_status": "completed"}
    shape = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": _square(101.58, 26.53, 0.2)}]}
    upload = {"boundary": ("park.geojson", json.dumps(shape).encode(), "application/geo+json")}
    saved = client.post(f"/parks/{w.park_a}/edit", data=data, files=upload, headers=en, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    session.expire_all()
    e2 = session.get(Enterprise, w.e2)
    assert e2 is not None and e2.park_id == w.park_a
    broken = {"boundary": ("park.geojson", b"{not json", "application/geo+json")}
    refused = client.post(f"/parks/{w.park_a}/edit", data=data | {"version": "2"}, files=broken, headers=en)
    assert refused.status_code == 422 and 'id="pf-boundary-error"' in refused.text


def test_the_command_line_imports_the_whitelist(
    cli_env: dict[str, str], world: World, session: Session, tmp_path: Path
) -> None:
    good = _csv_file(
        tmp_path, [HEADER, [_uscc(session, world.e2), "二", "再生利用", "2024年本", "第一批", "2024-12-20", ""]]
    )
    result = CliRunner().invoke(cli, ["import", "whitelist", str(good)], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "1 created" in result.output
    bad = _csv_file(
        tmp_path, [HEADER, [_uscc(session, world.e2), "二", "冶炼", "2024年本", "第一批", "2024-12-20", ""]]
    )
    refused = CliRunner().invoke(cli, ["import", "whitelist", str(bad)], env=cli_env)
    assert refused.exit_code == 1 and "line 2, activity" in refused.output


def test_the_chain_audit_reads_the_entries_valid_on_the_events_day(session: Session) -> None:
    chain = build_chain(session, build_world(session))
    battery_code = _p(1)
    _register(session, chain, {"code": battery_code})
    _walk(session, battery_code, [*_to_collected(chain)])
    _walk(
        session, battery_code, [("transferred", "2024-01-21T10:00", chain.outlet, {"counterpart_id": chain.unlisted})]
    )
    assert set(_flags(session, "unlisted_receiver")) == {battery_code}
    listing = {
        "uscc": _uscc(session, chain.unlisted),
        "activity": "再生利用",
        "edition": "2019年本",
        "batch": "第四批",
        "listed_on": "2024-01-01",
    }
    written = whitelist.save_entry(session=session, principal=ADMIN, data=listing, now=NOW)
    session.commit()
    assert _flags(session, "unlisted_receiver") == {}
    assert written.entry.id is not None
    whitelist.delist(session=session, principal=ADMIN, entry_id=written.entry.id, delisted_on="2024-01-21", now=NOW)
    session.commit()
    assert set(_flags(session, "unlisted_receiver")) == {battery_code}  # delisted from the handover's day on
