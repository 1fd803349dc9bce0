"""The `rate`, `trend` and `audit` commands: the JSON keys other tools rely on, the table, and exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from app.cli import cli
from tests.test_rates import DY, DY_JINGYANG, PZH, PZH_EAST, Builder, small_province

runner = CliRunner()
KEYS = ("rate", "generated_t", "utilised_t", "utilised_prior_t", "target")


def _json(*args: str) -> dict[str, Any]:
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1  # one JSON object
    data: dict[str, Any] = json.loads(lines[0])
    return data


def test_rate_json_keys_and_values(cli_env: dict[str, str], session: Session) -> None:
    small_province(session)
    body = _json("rate", "--year", "2023")
    for key in KEYS:
        assert key in body
    assert body["rate"] == pytest.approx((90 + 20 + 150) / (110 + 50 + 200))
    assert (body["generated_t"], body["utilised_t"], body["utilised_prior_t"]) == (350, 260, 10)
    assert body["target"] is None  # 2023 lies before Sichuan's first target
    assert body["categories"] == ["SW01", "SW02", "SW03", "SW04", "SW06", "SW09", "SW10", "SW11"]
    city = _json("rate", "--year", "2023", "--region", PZH_EAST)
    assert city["rate"] == pytest.approx(90 / 110) and city["scope"]["kind"] == "county"
    assert _json("rate", "--year", "2027")["target"] == pytest.approx(0.796)
    assert _json("rate", "--year", "2025", "--target", "sichuan-2025")["target"] == 0.78
    tailings = _json("rate", "--year", "2023", "--categories", "SW05")
    assert tailings["rate"] == pytest.approx(0.1) and tailings["target"] is None


def test_rate_json_rows(cli_env: dict[str, str], session: Session) -> None:
    w = small_province(session)
    body = _json("rate", "--year", "2023", "--by", "region")
    assert len(body["rows"]) == 21
    for row in body["rows"]:
        assert {"key", *KEYS} <= set(row)
    rows = {r["key"]: r for r in body["rows"]}
    assert rows[PZH]["rate"] == pytest.approx(110 / 160) and rows[DY]["rate"] == pytest.approx(0.75)
    assert sum(r["generated_t"] for r in body["rows"]) == pytest.approx(body["generated_t"])
    parks = _json("rate", "--year", "2023", "--by", "park")
    assert {r["key"] for r in parks["rows"]} == {str(w.p1), str(w.p2), None}
    by_park = _json("rate", "--year", "2023", "--park", str(w.p2))
    assert by_park["rate"] == pytest.approx(0.75)


def test_rate_by_credit_code(cli_env: dict[str, str], session: Session) -> None:
    w = small_province(session)
    from models import Enterprise

    uscc = session.get(Enterprise, w.b).uscc  # type: ignore[union-attr]
    body = _json("rate", "--year", "2023", "--enterprise", uscc)
    assert body["rate"] == pytest.approx(20 / 50) and body["scope"]["uscc"] == uscc


def test_rate_table_truncates_and_says_so(cli_env: dict[str, str], session: Session) -> None:
    small_province(session)
    build = Builder(session)
    e = build.enterprise(DY_JINGYANG)
    build.declare(e, "SW02", 2023, generated_t=30, utilised_t=20)  # 66.666...%: 66.6 truncated, 66.7 rounded
    session.commit()
    result = runner.invoke(cli, ["rate", "--year", "2023", "--enterprise", str(e)])
    assert result.exit_code == 0, result.output
    assert "66.6%" in result.stdout and "66.7%" not in result.stdout
    assert "truncated (not rounded)" in result.stdout
    result = runner.invoke(cli, ["rate", "--year", "2023", "--by", "category"])
    assert result.exit_code == 0
    assert "77.4%" in result.stdout  # SW01: 240 / 310
    assert "50.0%" in result.stdout  # SW02: (20 + 20) / (50 + 30)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--region", "519999"], "--region"),
        (["--categories", "SW01,SW99"], "--categories"),
        (["--target", "no-such-target"], "--target"),
        (["--park", "9999"], "--park"),
        (["--enterprise", "91510000MA0000001X"], "--enterprise"),
        (["--by", "street"], "--by"),
        (["--region", PZH, "--park", "1"], "--park"),
    ],
)
def test_rate_bad_input_exits_1_naming_the_option(cli_env: dict[str, str], args: list[str], option: str) -> None:
    for extra in ([], ["--json"]):
        result = runner.invoke(cli, ["rate", "--year", "2023", *args, *extra])
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and option in lines[0]


def test_trend_json(cli_env: dict[str, str], session: Session) -> None:
    small_province(session)
    body = _json("trend", "--region", PZH, "--from", "2023", "--to", "2026")
    assert [y["year"] for y in body["years"]] == [2023, 2024, 2025, 2026]
    assert body["years"][0]["rate"] == pytest.approx(110 / 160)
    assert [y["target"] for y in body["years"]] == [None, None, 0.78, pytest.approx(0.788)]
    assert body["projection"]["projected_rate"] is None and body["projection"]["reason"]
    result = runner.invoke(cli, ["trend", "--from", "2025", "--to", "2020"])
    assert result.exit_code == 1 and "--from" in result.stderr


def test_audit_json_and_table(cli_env: dict[str, str], session: Session) -> None:
    small_province(session)
    body = _json("audit", "--year", "2023")
    assert body["year"] == 2023 and body["count"] == len(body["data"]) == sum(body["counts"].values())
    # The small province declares no stock, disposal or dumping: every declaration with a remainder breaks the
    # balance (A's SW01 by 20 t, B's SW02 by 30 t, C's SW01 by 50 t, A's tailings by 900 t; B's sludge is whole).
    assert body["counts"]["balance_break"] == 4
    assert {f["kind"] for f in body["data"]} >= {"balance_break"}
    for flag in body["data"]:
        assert {"kind", "year", "enterprise_ids", "evidence", "links"} <= set(flag)
    city = _json("audit", "--year", "2023", "--region", DY)
    assert city["counts"]["balance_break"] == 1
    table = runner.invoke(cli, ["audit", "--year", "2023", "--kind", "balance_break"])
    assert table.exit_code == 0 and "balance_break" in table.stdout and "total" in table.stdout
    bad = runner.invoke(cli, ["audit", "--year", "2023", "--region", "519999"])
    assert bad.exit_code == 1 and "--region" in bad.stderr
    bad = runner.invoke(cli, ["audit", "--year", "2023", "--kind", "nope"])
    assert bad.exit_code == 1 and "--kind" in bad.stderr
