"""Bulk imports from CSV (UTF-8, BOM, GB18030) and XLSX: every format, every refusal, nothing half-saved."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from app.cli import cli
from flows.kernel.errors import Forbidden, InvalidInput
from flows.kernel.principal import system_principal
from flows.kernel.uscc import make_uscc
from flows.waste import imports
from flows.waste.imports import ImportRefused, import_declarations, import_enterprises, import_manifests
from models import AuditLog, Declaration, Enterprise, EnterpriseRoleLink, Manifest
from models.enums import Channel
from tests.world import NOW, World, build_world

DOCS = Path(__file__).resolve().parent.parent / "docs" / "import"
FORMATS = ["utf8", "bom", "gb18030", "xlsx"]
ADMIN = system_principal(Channel.import_)
runner = CliRunner()

# Chinese headers, as a Chinese spreadsheet names the columns (used for the GB18030 and XLSX files).
ZH = {
    "uscc": "统一社会信用代码",
    "name": "企业名称",
    "name_en": "英文名称",
    "roles": "角色",
    "lon": "经度",
    "lat": "纬度",
    "year": "年度",
    "category": "废物类别",
    "generated_t": "产生量",
    "utilised_t": "综合利用量",
    "utilised_prior_t": "其中利用往年贮存量",
    "disposed_t": "处置量",
    "disposed_prior_t": "其中处置往年贮存量",
    "stored_t": "贮存量",
    "dumped_t": "倾倒丢弃量",
    "number": "联单编号",
    "shipper_uscc": "移出单位统一社会信用代码",
    "receiver_uscc": "接收单位统一社会信用代码",
    "carrier_uscc": "运输单位统一社会信用代码",
    "route": "利用处置方式",
    "weight_dispatched_t": "移出量（吨）",
    "weight_dispatched_kg": "移出量(千克)",
    "dispatched_at": "移出时间",
    "weight_received_t": "接收量(吨)",
    "weight_received_kg": "接收量（千克）",
    "received_at": "接收时间",
    "rejected_t": "拒收量(吨)",
    "rejection_reason": "拒收原因",
    "idempotency_key": "幂等键",
}


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session, with_tokens=False)


def _uscc(n: int) -> str:
    """The credit code of the world's enterprise e1, e2 or e3."""
    return make_uscc(f"91510000MA000{n:03d}")


def _new_uscc(n: int) -> str:
    return make_uscc(f"91510400MA{n:06d}")


def _wrong_check(code: str) -> str:
    return code[:17] + ("1" if code[17] == "0" else "0")


def write_table(
    path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "utf8", *, chinese: bool = False
) -> Path:
    """Write rows as CSV in the given encoding, or as XLSX; headers in Chinese when asked (always for GB18030)."""
    names = [ZH.get(h, h) if chinese or fmt == "gb18030" else h for h in header]
    if fmt == "xlsx":
        path = path.with_suffix(".xlsx")
        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(names)
        for row in rows:
            sheet.append([None if v == "" else v for v in row])
        book.save(path)
        return path
    encoding = {"utf8": "utf-8", "bom": "utf-8-sig", "gb18030": "gb18030"}[fmt]
    with path.open("w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(rows)
    return path


def counts(session: Session) -> dict[str, int]:
    session.expire_all()
    return {
        model.__name__: int(session.exec(select(func.count()).select_from(model)).one())
        for model in (Enterprise, EnterpriseRoleLink, Declaration, Manifest, AuditLog)
    }


def refusal(exc: pytest.ExceptionInfo[ImportRefused]) -> list[tuple[int, str, str]]:
    return [(e.line, e.column, e.reason) for e in exc.value.errors]


def has(errors: list[tuple[int, str, str]], line: int, column: str, fragment: str) -> bool:
    return any(e[0] == line and e[1] == column and fragment in e[2] for e in errors)


# ---------------------------------------------------------------------------------------------------------------
# Enterprises

ENTERPRISE_HEADER = ["uscc", "name", "name_en", "roles", "lon", "lat"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_enterprises_in_every_format(session: Session, world: World, tmp_path: Path, fmt: str) -> None:
    rows = [
        [_new_uscc(1), "攀枝花钒钛冶炼有限公司", "Panzhihua Smelting", "generator；utiliser", 101.72, 26.58],
        [_new_uscc(2), "德阳绿源建材有限公司", "", "utiliser, disposer", 104.30, 31.10],
        [_uscc(2), "测试企业2（更名）", "Renamed", "利用单位", 101.60, 26.55],
    ]
    path = write_table(tmp_path / "enterprises.csv", ENTERPRISE_HEADER, rows, fmt)
    summary = import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    session.commit()
    assert (summary.rows, summary.inserted, summary.updated, summary.skipped) == (3, 2, 1, 0)
    assert summary.format == ("xlsx" if fmt == "xlsx" else "csv")
    assert summary.encoding == {"utf8": "utf-8", "bom": "utf-8-sig", "gb18030": "gb18030", "xlsx": None}[fmt]
    smelter = session.exec(select(Enterprise).where(Enterprise.uscc == _new_uscc(1))).one()
    assert smelter.name_zh == "攀枝花钒钛冶炼有限公司" and smelter.name_en == "Panzhihua Smelting"
    assert (smelter.province_adcode, smelter.prefecture_adcode, smelter.park_id) == ("510000", "510400", world.park_a)
    green = session.exec(select(Enterprise).where(Enterprise.uscc == _new_uscc(2))).one()
    assert green.prefecture_adcode == "510600" and green.park_id is None and green.name_en is None
    roles = session.exec(select(EnterpriseRoleLink.role).where(EnterpriseRoleLink.enterprise_id == green.id)).all()
    assert sorted(roles) == ["disposer", "utiliser"]
    renamed = session.get(Enterprise, world.e2)
    assert renamed is not None and renamed.name_zh == "测试企业2（更名）"


def test_existing_enterprise_is_updated_and_an_identical_row_skipped(
    session: Session, world: World, tmp_path: Path
) -> None:
    # E1 moves from Panzhihua's park to Deyang, changes its name and becomes a utiliser as well.
    moved = [[_uscc(1), "测试企业1（迁址）", "Moved", "generator;utiliser", 104.30, 31.10]]
    unchanged = [[_uscc(3), "测试企业3", "Test Enterprise 3", "generator", 104.40, 31.13]]
    path = write_table(tmp_path / "e.csv", ENTERPRISE_HEADER, moved + unchanged)
    before = counts(session)
    summary = import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    session.commit()
    assert (summary.inserted, summary.updated, summary.skipped) == (0, 1, 1)
    e1 = session.get(Enterprise, world.e1)
    assert e1 is not None
    assert (e1.name_zh, e1.name_en, e1.lon, e1.lat) == ("测试企业1（迁址）", "Moved", 104.30, 31.10)
    assert (e1.prefecture_adcode, e1.park_id) == ("510600", None)
    roles = session.exec(select(EnterpriseRoleLink.role).where(EnterpriseRoleLink.enterprise_id == world.e1)).all()
    assert sorted(roles) == ["generator", "utiliser"]
    after = counts(session)
    # The import's own entry, and E1's move in its history (E3, unchanged, gets none).
    assert after["Enterprise"] == before["Enterprise"] and after["AuditLog"] == before["AuditLog"] + 2


def test_enterprise_name_en_kept_when_the_column_is_absent(session: Session, world: World, tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "e.csv",
        ["uscc", "name", "roles", "lon", "lat"],
        [[_uscc(3), "新名字", "generator", 104.4, 31.13]],
    )
    import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    e3 = session.get(Enterprise, world.e3)
    assert e3 is not None and e3.name_zh == "新名字" and e3.name_en == "Test Enterprise 3"


def test_bad_enterprises_are_all_listed_and_nothing_is_saved(
    session: Session, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK", 2)  # good rows are written chunk by chunk before the bad ones are met
    rows = [
        [_new_uscc(1), "好企业一", "", "generator", 101.72, 26.58],
        [_new_uscc(2), "好企业二", "", "utiliser", 104.30, 31.10],
        [_uscc(2), "更名", "", "utiliser", 101.60, 26.55],
        [_wrong_check(_new_uscc(3)), "错校验码", "", "generator", 104.0, 30.6],  # line 5
        [_new_uscc(4), "", "", "generator", 104.0, 30.6],  # line 6: no name
        [_new_uscc(5), "北京企业", "", "generator", 116.4, 39.9],  # line 7: outside every region
        [_new_uscc(6), "角色错", "", "generator;wizard", "东经104", 30.6],  # line 8: role and lon
        [_new_uscc(2), "重复", "", "generator", 104.0, 30.6],  # line 9: repeats line 3
    ]
    path = write_table(tmp_path / "bad.csv", ENTERPRISE_HEADER, rows)
    before = counts(session)
    with pytest.raises(ImportRefused) as exc:
        import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    errors = refusal(exc)
    assert has(errors, 5, "uscc", "wrong check character")
    assert has(errors, 6, "name", "required")
    assert has(errors, 7, "lon", "outside every loaded region")
    assert has(errors, 8, "roles", "unknown role 'wizard'") and has(errors, 8, "lon", "not a number")
    assert has(errors, 9, "uscc", "repeats line 3")
    assert exc.value.total == len(errors) == 6 and exc.value.rows == 8
    assert [e[0] for e in errors] == sorted(e[0] for e in errors)
    assert counts(session) == before
    e2 = session.get(Enterprise, world.e2)
    assert e2 is not None and e2.name_zh == "测试企业2"


def test_only_administrators_import_enterprises(session: Session, world: World, tmp_path: Path) -> None:
    path = write_table(tmp_path / "e.csv", ENTERPRISE_HEADER, [[_new_uscc(1), "某企业", "", "generator", 104, 30.6]])
    for name in ("ent1", "bureau_sc"):
        with pytest.raises(Forbidden):
            import_enterprises(session=session, principal=world.principals[name], source=path, now=NOW)
    assert import_enterprises(session=session, principal=world.principals["admin"], source=path, now=NOW).inserted == 1


# ---------------------------------------------------------------------------------------------------------------
# Declarations

DECLARATION_HEADER = [
    "uscc",
    "year",
    "category",
    "generated_t",
    "utilised_t",
    "utilised_prior_t",
    "disposed_t",
    "disposed_prior_t",
    "stored_t",
    "dumped_t",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_declarations_in_every_format(session: Session, world: World, tmp_path: Path, fmt: str) -> None:
    rows = [
        [_uscc(1), 2024, "SW02", 1000, 800, 50, 100, "", 150, ""],
        [_uscc(1), "2024年", "脱硫石膏", "1,200.5", 1000, 0, 0, 0, 200.5, 0],
        [_uscc(3), 2023, "sw01", 120, 90, 0, 10, 0, 20, 0],  # replaces the world's declaration
    ]
    path = write_table(tmp_path / "declarations.csv", DECLARATION_HEADER, rows, fmt)
    before = counts(session)
    summary = import_declarations(session=session, principal=ADMIN, source=path, now=NOW)
    session.commit()
    assert (summary.rows, summary.inserted, summary.updated) == (3, 2, 1)
    assert counts(session)["Declaration"] == before["Declaration"] + 2
    fly_ash = session.exec(
        select(Declaration).where(Declaration.enterprise_id == world.e1, Declaration.category_code == "SW02")
    ).one()
    assert (fly_ash.year, fly_ash.generated_t, fly_ash.utilised_prior_t, fly_ash.disposed_prior_t) == (
        2024,
        1000,
        50,
        0,
    )
    gypsum = session.exec(select(Declaration).where(Declaration.category_code == "SW06")).one()
    assert gypsum.generated_t == Decimal("1200.5")
    replaced = session.get(Declaration, {"id": world.decl_e3, "enterprise_id": world.e3})
    assert replaced is not None and (replaced.generated_t, replaced.utilised_t) == (120, 90)


def test_bad_declarations_are_all_listed_and_nothing_is_saved(session: Session, world: World, tmp_path: Path) -> None:
    rows = [
        [_uscc(1), 2024, "SW02", 1000, 800, 0, 0, 0, 200, 0],
        [_uscc(1), 2024, "SW99", 10, 5, 0, 0, 0, 5, 0],  # line 3: unknown category
        [_new_uscc(9), 2024, "SW01", 10, 5, 0, 0, 0, 5, 0],  # line 4: unknown enterprise
        [_uscc(3), 2024, "SW01", -1, 5, 6, 0, 0, 0, 0],  # line 5: negative, prior > total
        [_uscc(1), 2024, "SW02", 1, 1, 0, 0, 0, 0, 0],  # line 6: repeats line 2
        [_uscc(1), 1999, "SW01", "abc", 0, 0, 0, 0, 0, 0],  # line 7: year, number
        [_uscc(3), 2024, "SW03", 10, 5, 6, 0, 0, 5, 0],  # line 8: prior > total
    ]
    path = write_table(tmp_path / "bad.csv", DECLARATION_HEADER, rows)
    before = counts(session)
    with pytest.raises(ImportRefused) as exc:
        import_declarations(session=session, principal=ADMIN, source=path, now=NOW)
    errors = refusal(exc)
    assert has(errors, 3, "category", "unknown waste category 'SW99'")
    assert has(errors, 4, "uscc", "no enterprise with credit code")
    assert has(errors, 5, "generated_t", "must be zero or more")
    assert has(errors, 6, "uscc", "repeats line 2")
    assert has(errors, 7, "year", "outside 2000..2100") and has(errors, 7, "generated_t", "not a number")
    assert has(errors, 8, "utilised_prior_t", "cannot exceed utilised_t")
    assert not any(e[0] == 2 for e in errors)
    assert counts(session) == before
    assert "nothing saved" in exc.value.message and exc.value.row == 3


def test_declarations_of_a_locked_year_are_refused(session: Session, world: World, tmp_path: Path) -> None:
    # The world locks 2021 for Panzhihua (510400), where E1 lies; Deyang's E3 is free.
    rows = [
        [_uscc(1), 2021, "SW01", 10, 5, 0, 0, 0, 5, 0],
        [_uscc(3), 2021, "SW01", 10, 5, 0, 0, 0, 5, 0],
    ]
    path = write_table(tmp_path / "locked.csv", DECLARATION_HEADER, rows, "gb18030")
    with pytest.raises(ImportRefused) as exc:
        import_declarations(session=session, principal=ADMIN, source=path, now=NOW)
    errors = refusal(exc)
    assert len(errors) == 1 and errors[0][:2] == (2, "年度")
    # A new declaration has nothing to correct: the refusal names the late-filing path.
    assert errors[0][2] == (
        "2021 is locked for region 510400: a new declaration of a locked year is filed as a late filing; give the"
        " reason it comes late with the import, and a bureau approves it"
    )


def test_an_enterprise_account_imports_only_its_own_declarations(
    session: Session, world: World, tmp_path: Path
) -> None:
    ent1 = world.principals["ent1"]
    own = write_table(tmp_path / "own.csv", DECLARATION_HEADER, [[_uscc(1), 2024, "SW01", 10, 5, 0, 0, 0, 5, 0]])
    assert import_declarations(session=session, principal=ent1, source=own, now=NOW).inserted == 1
    other = write_table(tmp_path / "other.csv", DECLARATION_HEADER, [[_uscc(3), 2024, "SW01", 10, 5, 0, 0, 0, 5, 0]])
    with pytest.raises(ImportRefused) as exc:
        import_declarations(session=session, principal=ent1, source=other, now=NOW)
    assert has(refusal(exc), 2, "uscc", "only its own declarations")
    with pytest.raises(Forbidden):
        import_declarations(session=session, principal=world.principals["park_a"], source=own, now=NOW)


# ---------------------------------------------------------------------------------------------------------------
# Manifests

MANIFEST_HEADER = [
    "number",
    "shipper_uscc",
    "receiver_uscc",
    "carrier_uscc",
    "category",
    "route",
    "weight_dispatched_t",
    "weight_dispatched_kg",
    "dispatched_at",
    "weight_received_t",
    "weight_received_kg",
    "received_at",
    "rejected_t",
    "rejection_reason",
    "idempotency_key",
]


def manifest(world: World, **values: Any) -> list[Any]:
    row = {
        "shipper_uscc": _uscc(1),
        "receiver_uscc": _uscc(2),
        "category": "SW01",
        "route": "cement_admixture",
        "weight_dispatched_t": 30,
        **values,
    }
    return [row.get(name, "") for name in MANIFEST_HEADER]


def batches(session: Session) -> dict[str, Manifest]:
    session.expire_all()
    return {b.idempotency_key or b.number: b for b in session.exec(select(Manifest)).all()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_manifests_in_every_format(session: Session, world: World, tmp_path: Path, fmt: str) -> None:
    rows = [
        manifest(world, idempotency_key="draft", weight_dispatched_t="", weight_dispatched_kg=30500),
        manifest(world, idempotency_key="sent", route="水泥掺合料", dispatched_at="2024-06-01 08:00"),
        manifest(
            world,
            idempotency_key="got",
            carrier_uscc=_uscc(3),
            category="粉煤灰",
            route="建筑材料",
            dispatched_at="2024-06-02",
            weight_received_kg=29800,
            received_at="2024-06-02T15:30:00+08:00",
        ),
        manifest(
            world,
            idempotency_key="part",
            dispatched_at="2024-06-03 08:00",
            weight_received_t=20,
            received_at="2024-06-03 12:00",
            rejected_t=10,
            rejection_reason="含水率超标",
        ),
        manifest(
            world,
            idempotency_key="whole",
            number="MY-OWN-0001",
            route="处置",
            dispatched_at="2024/6/4 8:05",
            received_at="2024-06-04 13:00",
            rejection_reason="整车拒收",
        ),
    ]
    path = write_table(tmp_path / "manifests.csv", MANIFEST_HEADER, rows, fmt)
    summary = import_manifests(session=session, principal=ADMIN, source=path, now=NOW)
    session.commit()
    assert (summary.rows, summary.inserted, summary.skipped) == (5, 5, 0)
    b = batches(session)
    draft = b["draft"]
    assert (str(draft.status), draft.year) == ("draft", 2025) and draft.weight_dispatched_t == Decimal("30.5")
    assert b["draft"].dispatched_at is None and b["draft"].number == "SC2025-0000001"
    assert (b["sent"].status, b["sent"].route, b["sent"].year) == ("dispatched", "cement_admixture", 2024)
    # Numbers continue the year's sequence after the world's SC2024-0000001..3.
    numbers = sorted(x.number for x in b.values() if x.number.startswith("SC2024"))
    assert numbers == [f"SC2024-{n:07d}" for n in range(1, 8)]
    got = b["got"]
    assert (got.status, got.category_code, got.route, got.carrier_id) == (
        "received",
        "SW02",
        "building_materials",
        world.e3,
    )
    assert got.weight_received_t == Decimal("29.8")
    part = b["part"]
    assert (part.status, part.weight_received_t, part.rejected_t, part.rejection_reason) == (
        "received",
        20,
        10,
        "含水率超标",
    )
    whole = b["whole"]
    # A number in the file is the shipper's own reference: the service numbers the batch from its counter.
    assert whole.number.startswith("SC2024-")
    assert (whole.status, whole.reference, whole.rejected_t, whole.weight_received_t) == (
        "rejected",
        "MY-OWN-0001",
        30,
        None,
    )
    assert whole.route == "disposal"
    # Times without an offset are Beijing time: 08:00 in Sichuan is 00:00 UTC.
    sent_at = b["sent"].dispatched_at
    assert sent_at is not None and (sent_at.hour, sent_at.minute) == (0, 0)


def test_tonnes_and_kilograms(session: Session, world: World, tmp_path: Path) -> None:
    rows = [
        manifest(world, idempotency_key="t", weight_dispatched_t="12.5"),
        manifest(world, idempotency_key="kg", weight_dispatched_t="", weight_dispatched_kg="12500"),
        manifest(world, idempotency_key="both", weight_dispatched_kg=12500),  # line 4
        manifest(world, idempotency_key="none", weight_dispatched_t=""),  # line 5
        manifest(world, idempotency_key="neg", weight_dispatched_t=-1),  # line 6
        manifest(world, idempotency_key="nan", weight_dispatched_t="nan"),  # line 7
    ]
    path = write_table(tmp_path / "w.csv", MANIFEST_HEADER, rows)
    with pytest.raises(ImportRefused) as exc:
        import_manifests(session=session, principal=ADMIN, source=path, now=NOW)
    errors = refusal(exc)
    assert has(errors, 4, "weight_dispatched_kg", "in t or in kg, not both")
    assert has(errors, 5, "weight_dispatched_t", "required (or weight_dispatched_kg)")
    assert has(errors, 6, "weight_dispatched_t", "zero or more")
    assert has(errors, 7, "weight_dispatched_t", "not a finite number")
    assert len(errors) == 4
    good = write_table(tmp_path / "good.csv", MANIFEST_HEADER, rows[:2])
    import_manifests(session=session, principal=ADMIN, source=good, now=NOW)
    b = batches(session)
    assert b["t"].weight_dispatched_t == b["kg"].weight_dispatched_t == Decimal("12.5")


def test_bad_manifests_are_all_listed_and_nothing_is_saved(
    session: Session, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK", 2)
    good = [manifest(world, idempotency_key=f"ok{n}", dispatched_at="2024-05-01") for n in range(5)]
    bad = [
        manifest(world, receiver_uscc=_uscc(1)),  # line 7: receiver = shipper
        manifest(world, category="SW08", route="landfill"),  # line 8
        manifest(world, dispatched_at="2024-05-02 10:00", weight_received_t=30, received_at="2024-05-01 10:00"),
        manifest(world, dispatched_at="2030-01-01"),  # line 10: future
        manifest(world, weight_received_t=30),  # line 11: received without times
        manifest(world, dispatched_at="2024-05-02", rejected_t=5, weight_received_t=25, received_at="2024-05-02 12:00"),
        manifest(world, number="N" * 65),  # line 13: too long a reference
        manifest(world, shipper_uscc="91510000MA00000XYZ", dispatched_at="yesterday"),  # line 14
        manifest(world, dispatched_at="2021-03-01"),  # line 15: 2021 is locked for Panzhihua
    ]
    path = write_table(tmp_path / "bad.csv", MANIFEST_HEADER, good + bad)
    before = counts(session)
    with pytest.raises(ImportRefused) as exc:
        import_manifests(session=session, principal=ADMIN, source=path, now=NOW)
    errors = refusal(exc)
    assert has(errors, 7, "receiver_uscc", "must differ from the shipper")
    assert has(errors, 8, "category", "unknown waste category 'SW08'") and has(errors, 8, "route", "unknown route")
    assert has(errors, 9, "received_at", "before the batch was dispatched")
    assert has(errors, 10, "dispatched_at", "in the future")
    assert has(errors, 11, "received_at", "required with the received weight")
    assert has(errors, 11, "dispatched_at", "required once the batch is received")
    assert has(errors, 12, "rejection_reason", "say why part of the batch was refused")
    assert has(errors, 13, "number", "longer than 64 characters")
    assert has(errors, 14, "shipper_uscc", "not a valid credit code") and has(errors, 14, "dispatched_at", "not a date")
    assert has(errors, 15, "dispatched_at", "2021 is locked for region 510400")
    assert {e[0] for e in errors} == set(range(7, 16))
    assert counts(session) == before


def test_duplicates_in_a_file_are_refused(session: Session, world: World, tmp_path: Path) -> None:
    rows = [
        manifest(world, number="N-1", idempotency_key="a"),
        manifest(world, number="N-1", idempotency_key="b"),  # line 3: number repeats
        manifest(world, idempotency_key="a"),  # line 4: key repeats for the same shipper
        manifest(world, shipper_uscc=_uscc(3), idempotency_key="a"),  # another shipper may use "a"
        manifest(world, number="SC2025-0000001"),  # line 6
        manifest(world),
    ]
    path = write_table(tmp_path / "dup.csv", MANIFEST_HEADER, rows)
    with pytest.raises(ImportRefused) as exc:
        import_manifests(session=session, principal=ADMIN, source=path, now=NOW)
    errors = refusal(exc)
    assert has(errors, 3, "number", "N-1 repeats line 2")
    assert has(errors, 4, "idempotency_key", "'a' repeats line 2 (same shipper)")
    assert len(errors) == 2
    # A given number shaped like the service's own is only the shipper's reference: it cannot take or move a number.
    path = write_table(tmp_path / "ok.csv", MANIFEST_HEADER, [rows[0], rows[3], rows[4], rows[5]])
    assert import_manifests(session=session, principal=ADMIN, source=path, now=NOW).inserted == 4
    stored = list(session.exec(select(Manifest).where(col(Manifest.number).startswith("SC2025"))).all())
    assert sorted(b.number for b in stored) == [f"SC2025-{n:07d}" for n in range(1, 5)]
    assert sorted(b.reference for b in stored if b.reference) == ["N-1", "SC2025-0000001"]


def test_reimporting_manifests_is_idempotent(session: Session, world: World, tmp_path: Path) -> None:
    rows = [
        manifest(world, idempotency_key=f"k{n}", dispatched_at="2024-07-01", weight_dispatched_t=20 + n)
        for n in range(3)
    ]
    path = write_table(tmp_path / "m.csv", MANIFEST_HEADER, rows)
    assert import_manifests(session=session, principal=ADMIN, source=path, now=NOW).inserted == 3
    session.commit()
    before = counts(session)
    again = import_manifests(session=session, principal=ADMIN, source=path, now=NOW)
    session.commit()
    assert (again.inserted, again.skipped) == (0, 3)
    assert counts(session) == {**before, "AuditLog": before["AuditLog"] + 1}
    rows[1] = manifest(world, idempotency_key="k1", dispatched_at="2024-07-01", weight_dispatched_t=99)
    rows.append(manifest(world, idempotency_key="k9", dispatched_at="2024-07-01"))
    changed = write_table(tmp_path / "changed.csv", MANIFEST_HEADER, rows)
    with pytest.raises(ImportRefused) as exc:
        import_manifests(session=session, principal=ADMIN, source=changed, now=NOW)
    assert has(refusal(exc), 3, "idempotency_key", "'k1' was used for manifest SC2024-0000005 with other content")
    assert counts(session) == {**before, "AuditLog": before["AuditLog"] + 1}


def test_an_enterprise_account_imports_only_its_own_shipments(session: Session, world: World, tmp_path: Path) -> None:
    ent1 = world.principals["ent1"]
    header = [h for h in MANIFEST_HEADER if h != "shipper_uscc"]  # the account's own enterprise ships
    path = write_table(tmp_path / "own.csv", header, [manifest(world)[:1] + manifest(world)[2:]])
    assert import_manifests(session=session, principal=ent1, source=path, now=NOW).inserted == 1
    assert batches(session)["SC2025-0000001"].shipper_id == world.e1
    other = write_table(tmp_path / "other.csv", MANIFEST_HEADER, [manifest(world, shipper_uscc=_uscc(3))])
    with pytest.raises(ImportRefused) as exc:
        import_manifests(session=session, principal=ent1, source=other, now=NOW)
    assert has(refusal(exc), 2, "shipper_uscc", "only its own shipments")
    with pytest.raises(Forbidden):
        import_manifests(session=session, principal=world.principals["bureau_pzh"], source=other, now=NOW)
    # An administrator has no enterprise of its own: the shipper column is required.
    with pytest.raises(ImportRefused) as exc:
        import_manifests(session=session, principal=ADMIN, source=path, now=NOW)
    assert refusal(exc) == [(1, "shipper_uscc", "missing column (required)")]


# ---------------------------------------------------------------------------------------------------------------
# Files, headers, audit, progress


def test_unknown_and_missing_columns_are_refused_up_front(session: Session, world: World, tmp_path: Path) -> None:
    header = ["USCC", "name", "colour", "lon", "备注"]
    path = write_table(tmp_path / "cols.csv", header, [[_new_uscc(1), "x", "red", 104, ""]])
    with pytest.raises(ImportRefused) as exc:
        import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    errors = refusal(exc)
    assert has(errors, 1, "colour", "unknown column") and has(errors, 1, "备注", "unknown column")
    assert has(errors, 1, "roles", "missing column") and has(errors, 1, "lat", "missing column")
    assert exc.value.rows == 0 and len(errors) == 4
    path = write_table(tmp_path / "twice.csv", ["uscc", "统一社会信用代码", "name", "roles", "lon", "lat"], [])
    with pytest.raises(ImportRefused) as exc:
        import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    assert has(refusal(exc), 1, "统一社会信用代码", "repeats the column 'uscc'")
    weightless = write_table(tmp_path / "m.csv", ["shipper_uscc", "receiver_uscc", "category", "route"], [])
    with pytest.raises(ImportRefused) as exc:
        import_manifests(session=session, principal=ADMIN, source=weightless, now=NOW)
    assert has(refusal(exc), 1, "weight_dispatched_t", "give weight_dispatched_t or weight_dispatched_kg")


def test_headers_match_loosely(session: Session, world: World, tmp_path: Path) -> None:
    header = [" USCC ", "Name", "ROLES", "经 度", "Latitude"]
    path = write_table(tmp_path / "loose.csv", header, [[_new_uscc(1), "某企业", "generator", 104.1, 30.6]])
    assert import_enterprises(session=session, principal=ADMIN, source=path, now=NOW).inserted == 1
    header = [
        "移出单位统一社会信用代码",
        "接收单位统一社会信用代码",
        "废物类别",
        "利用处置方式",
        "移出量 ( 千克 )",
        "Weight_Received(t)",
    ]
    path = write_table(tmp_path / "m.csv", header, [[_uscc(1), _uscc(2), "SW01", "回填", 1000, ""]])
    assert import_manifests(session=session, principal=ADMIN, source=path, now=NOW).inserted == 1
    header = ["统一社会信用代码", "年份", "类别代码", "产生量（吨）", "综合利用量(T)", "处置量", "贮存量", "倾倒丢弃量"]
    path = write_table(tmp_path / "d.csv", header, [[_uscc(1), 2024, "SW01", 10, 5, 0, 5, 0]], "gb18030")
    assert import_declarations(session=session, principal=ADMIN, source=path, now=NOW).inserted == 1


def test_lines_are_counted_as_in_the_file(session: Session, world: World, tmp_path: Path) -> None:
    path = tmp_path / "lines.csv"
    good = ",".join(str(v) for v in [_new_uscc(1), "好", "", "generator", 104.1, 30.6])
    text = (
        ",".join(ENTERPRISE_HEADER) + "\n"
        + good + "\n"
        + "\n"  # a blank line: skipped, not a row
        + f'{_new_uscc(2)},"两行\n名字",,generator,104.2,30.6\n'  # one record over lines 4-5
        + f"{_new_uscc(3)},坏,,generator,104.2,x\n"  # line 6
    )  # fmt: skip
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImportRefused) as exc:
        import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    assert refusal(exc) == [(6, "lat", "not a number: 'x'")] and exc.value.rows == 3


def test_gb18030_detected_after_an_ascii_start(
    session: Session, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "SCAN_CHUNK", 64)  # the first chunks are plain ASCII
    rows = [[_new_uscc(n), f"Company {n}", "", "generator", 104.1, 30.6] for n in range(1, 4)]
    rows.append([_new_uscc(9), "宜宾翠屏水泥有限公司", "", "utiliser", 104.6, 28.78])
    path = write_table(tmp_path / "late.csv", ENTERPRISE_HEADER, rows, "utf8")
    path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))
    summary = import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    assert summary.encoding == "gb18030" and summary.inserted == 4
    assert (
        session.exec(select(Enterprise.name_zh).where(Enterprise.uscc == _new_uscc(9))).one() == "宜宾翠屏水泥有限公司"
    )


def test_a_line_in_another_encoding_is_reported_on_its_line(
    session: Session, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_table(
        tmp_path / "mixed.csv",
        ENTERPRISE_HEADER,
        [[_new_uscc(1), "成都锦程物流运输有限公司", "", "generator", 104.1, 30.6]],
    )
    stray = ",".join([_new_uscc(2), "宜宾企业", "", "generator", "104.6", "28.78"]).encode("gb18030") + b"\n"
    path.write_bytes(path.read_bytes() + stray)
    with pytest.raises(ImportRefused) as exc:
        import_enterprises(session=session, principal=ADMIN, source=path, now=NOW)
    assert has(refusal(exc), 3, "file", "not valid utf-8")
    monkeypatch.setattr(imports, "SCAN_CHUNK", 16)  # the UTF-8 start of the header decides the encoding
    header = tmp_path / "header.csv"
    header.write_bytes("uscc,企业名称".encode() + ",角色".encode("gb18030") + b",lon,lat\n")
    with pytest.raises(InvalidInput, match="line 1 is not valid utf-8"):
        import_enterprises(session=session, principal=ADMIN, source=header, now=NOW)


def test_unreadable_files(session: Session, world: World, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        import_enterprises(session=session, principal=ADMIN, source=tmp_path / "missing.csv", now=NOW)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInput, match="empty"):
        import_enterprises(session=session, principal=ADMIN, source=empty, now=NOW)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(InvalidInput, match="XLSX"):
        import_enterprises(session=session, principal=ADMIN, source=broken, now=NOW)


def test_one_audit_entry_per_import(session: Session, world: World, tmp_path: Path) -> None:
    rows = [manifest(world, idempotency_key=f"a{n}") for n in range(4)]
    path = write_table(tmp_path / "audit.csv", MANIFEST_HEADER, rows)
    before = counts(session)["AuditLog"]
    progress: list[tuple[int, int | None]] = []
    with path.open("rb") as stream:
        summary = import_manifests(
            session=session,
            principal=world.principals["ent1"],
            source=stream,
            now=NOW,
            progress=lambda done, total: progress.append((done, total)),
        )
    session.commit()
    assert counts(session)["AuditLog"] == before + 1
    entry = session.exec(select(AuditLog).order_by(col(AuditLog.id).desc())).first()
    assert entry is not None
    assert (entry.channel, entry.action, entry.table_name, entry.row_id) == (
        "import",
        "import",
        "transfer_batch",
        "4 rows",
    )
    assert entry.user_id == world.users["ent1"] and entry.enterprise_id == world.e1
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry.after == {"file": "audit.csv", "sha256": digest, "rows": 4, "inserted": 4, "updated": 0, "skipped": 0}
    assert summary.sha256 == digest and progress[-1] == (4, 4)


# ---------------------------------------------------------------------------------------------------------------
# The command line and the example files


def test_cli_imports_and_refusals(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = runner.invoke(cli, ["import", "enterprises", str(DOCS / "enterprises.csv")])
    assert result.exit_code == 0, result.output
    assert "imported enterprises from enterprises.csv: 8 rows read, 8 inserted" in result.stdout
    bad = write_table(
        tmp_path / "bad.csv",
        DECLARATION_HEADER,
        [["91510400MA6A1B2C38", 2024, "SW01", 10, 5, 0, 0, 0, 5, 0], ["nope", 2024, "SW01", 1, 1, 0, 0, 0, 0, 0]]
        + [["91510400MA6A1B2C38", 2024, f"[SW{n}]", 1, 1, 0, 0, 0, 0, 0] for n in range(300)],
    )
    result = runner.invoke(cli, ["import", "declarations", str(bad)])
    assert result.exit_code == 1
    assert "import refused, nothing saved: 301 errors in 302 rows" in result.stderr
    assert "line 3, uscc: not a valid credit code: wrong length" in result.stderr
    assert "line 4, category: unknown waste category '[SW0]'" in result.stderr  # brackets printed verbatim
    assert result.stderr.count("\n  line ") == 200 and "... and 101 more errors" in result.stderr
    as_json = runner.invoke(cli, ["import", "declarations", str(bad), "--json"])
    body = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and body["refused"] and body["total"] == 301 and len(body["errors"]) == 200
    assert body["errors"][0] == {
        "line": 3,
        "column": "uscc",
        "reason": "not a valid credit code: wrong length: 4 characters, expected 18",
    }
    stats = json.loads(runner.invoke(cli, ["stats", "--json"]).stdout)
    assert stats["declarations"] == 0 and stats["enterprises"] == 8
    missing = runner.invoke(cli, ["import", "manifests", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1 and "cannot read" in missing.stderr
    result = runner.invoke(cli, ["import", "manifests", str(DOCS / "manifests.xlsx"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inserted"] == 4


def test_the_example_files_import_cleanly(session: Session, tmp_path: Path) -> None:
    done = {}
    for name, importer in (
        ("enterprises.csv", import_enterprises),
        ("declarations.csv", import_declarations),
        ("manifests.csv", import_manifests),
        ("manifests.xlsx", import_manifests),
    ):
        done[name] = importer(session=session, principal=ADMIN, source=DOCS / name, now=NOW)
        session.commit()
    assert done["declarations.csv"].encoding == "gb18030" and done["manifests.csv"].encoding == "utf-8-sig"
    assert {name: s.inserted for name, s in done.items()} == {
        "enterprises.csv": 8,
        "declarations.csv": 6,
        "manifests.csv": 5,
        "manifests.xlsx": 4,
    }
    statuses = sorted(str(b.status) for b in session.exec(select(Manifest)).all())
    assert statuses == [
        "dispatched",
        "dispatched",
        "draft",
        "received",
        "received",
        "received",
        "received",
        "received",
        "rejected",
    ]
