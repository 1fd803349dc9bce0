"""Battery commands: validate battery, trace (--json keys), import batteries and battery events (all or none)."""

from __future__ import annotations

import json
from pathlib import Path

from openpyxl import Workbook
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from app.cli import cli
from models import Battery, BatteryEvent
from models.enums import BatteryLevel
from tests.access_cases_battery import CELL, MODULE, PACK, VIN, Chain, build_chain, code
from tests.world import build_world

runner = CliRunner()


def _count(session: Session, model: type[Battery] | type[BatteryEvent]) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(model)).one())


def test_validate_battery_shows_the_decoded_fields() -> None:
    result = runner.invoke(cli, ["validate", "battery", "4a6pcpm27klpcle7-42946319", "--json"])
    assert result.exit_code == 0, result.output
    decoded = json.loads(result.stdout)
    assert decoded["code"] == "4A6PCPM27KLPCLE742946319" and decoded["valid"] is True
    assert (decoded["level"], decoded["production_date"], decoded["serial"]) == ("pack", "2024-07-04", "2946319")
    result = runner.invoke(cli, ["validate", "battery", "X12CCPM27KLPCLE662382320"])
    assert result.exit_code == 0 and "2024-06-06" in result.stdout and "cell" in result.stdout


def test_validate_battery_names_the_wrong_field() -> None:
    cases = {
        "4A6PCPM27KLPCLE74294631": "code:",
        "4A6XCPM27KLPCLE742946319": "product_type:",
        "4A6PCPM27KLPCLE7U2946319": "production_day:",  # U is no day character
        "4A6PCPM27KLPCLE2Y2946319": "production_day:",  # 30 February 2024
    }
    for raw, field in cases.items():
        result = runner.invoke(cli, ["validate", "battery", raw])
        assert result.exit_code == 1, raw
        assert field in result.stderr and result.stdout == ""
    result = runner.invoke(cli, ["validate", "battery", "4A6PCPM27KLPCLE2Y2946319", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["field"] == "production_day"


def _chain(session: Session) -> Chain:
    return build_chain(session, build_world(session))


def test_import_batteries_then_events_then_trace(cli_env: dict[str, str], session: Session, tmp_path: Path) -> None:
    c = _chain(session)
    batteries = tmp_path / "batteries.csv"
    batteries.write_text(
        f"Code,Parent Code,Rated kWh,Mass kg\n{CELL},{MODULE},0.5,\n{MODULE},{PACK},10,60\n{PACK},,60,380\n",
        encoding="utf-8-sig",
    )
    result = runner.invoke(cli, ["import", "batteries", str(batteries), "--enterprise", c.uscc["maker"]])
    assert result.exit_code == 0, result.output
    assert "imported 3 batteries" in result.stdout and _count(session, Battery) == 3

    events = tmp_path / "events.csv"
    events.write_bytes(
        (
            "code,type,occurred_at,reporter_uscc,counterpart_uscc,vin,place\n"
            f"{PACK},installed,2019-03-10 10:00,{c.uscc['vehicle']},,{VIN},成都总装车间\n"
            f"{PACK},transferred,2019-03-01 10:00,{c.uscc['maker']},{c.uscc['vehicle']},,攀枝花成品库\n"
        ).encode("gb18030")
    )
    result = runner.invoke(cli, ["import", "battery-events", str(events)])
    assert result.exit_code == 0, result.output
    assert "imported 2 battery events (4 copied to modules and cells)" in result.stdout

    result = runner.invoke(cli, ["trace", CELL, "--json"])
    assert result.exit_code == 0, result.output
    t = json.loads(result.stdout)
    for key in ("code", "state", "holder", "parent", "children", "events"):
        assert key in t
    assert (t["code"], t["state"], t["parent"], t["children"]) == (CELL, "installed", MODULE, [])
    assert t["holder"]["id"] == c.vehicle
    for event in t["events"]:
        assert {"type", "at", "enterprise", "counterpart"} <= set(event)
    assert [e["type"] for e in t["events"]] == ["produced", "transferred", "installed"]
    assert t["events"][1]["counterpart"]["id"] == c.vehicle and t["events"][2]["place"]["text"] == "成都总装车间"

    result = runner.invoke(cli, ["trace", MODULE, "--pack", "--json"])
    assert result.exit_code == 0 and [m["code"] for m in json.loads(result.stdout)["members"]] == [MODULE, CELL]
    result = runner.invoke(cli, ["trace", PACK])
    assert result.exit_code == 0 and "installed" in result.stdout and "链条企业vehicle" in result.stdout


def test_import_refuses_bad_rows_and_saves_nothing(cli_env: dict[str, str], session: Session, tmp_path: Path) -> None:
    c = _chain(session)
    batteries = tmp_path / "batteries.csv"
    batteries.write_text(
        f"code,parent_code\n{PACK},\n{PACK[:-2]},\n\n{MODULE},{code(BatteryLevel.pack, 404)}\n", encoding="utf-8"
    )
    result = runner.invoke(cli, ["import", "batteries", str(batteries), "--enterprise", c.uscc["maker"]])
    assert result.exit_code == 1
    assert "2 of 3 rows are wrong; nothing was saved" in result.stderr
    assert "line 3, code:" in result.stderr and "line 5, parent_code:" in result.stderr
    assert _count(session, Battery) == 0

    runner.invoke(cli, ["import", "batteries", str(_csv(tmp_path, f"code\n{PACK}\n")), "--enterprise", c.uscc["maker"]])
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["code", "type", "occurred_at", "reporter_uscc", "vin"])
    sheet.append([PACK, "retired", "2019-03-10 10:00", c.uscc["maker"], None])
    sheet.append([PACK, "installed", "2019-03-01 10:00", c.uscc["maker"], None])
    path = tmp_path / "events.xlsx"
    book.save(path)
    before = _count(session, BatteryEvent)
    result = runner.invoke(cli, ["import", "battery-events", str(path)])
    assert result.exit_code == 1
    assert "line 2, type:" in result.stderr and "is produced" in result.stderr
    assert "line 3, vin:" in result.stderr
    assert _count(session, BatteryEvent) == before


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "one.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_trace_of_an_unknown_code_exits_1(cli_env: dict[str, str]) -> None:
    result = runner.invoke(cli, ["trace", code(BatteryLevel.pack, 404), "--json"])
    assert result.exit_code == 1 and "no battery with code" in result.stderr and result.stdout == ""
