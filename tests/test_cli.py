"""The circuflow command: stats, validate, locate, db upgrade, and the installed entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()


def test_stats_json_has_the_keys_other_tools_rely_on(cli_env: dict[str, str]) -> None:
    result = runner.invoke(cli, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    for key in ("regions", "parks", "enterprises", "declarations", "manifests", "batteries", "battery_events"):
        assert isinstance(counts[key], int)
    assert counts["regions"] == 205 and counts["enterprises"] == 0


def test_validate_uscc_valid() -> None:
    result = runner.invoke(cli, ["validate", "uscc", "91350100M000100Y43"])
    assert result.exit_code == 0 and "valid" in result.stdout


def test_validate_uscc_reasons() -> None:
    cases = {
        "91350100M000100Y4": "wrong length",
        "91350100M000100Y4O": "illegal character",
        "91350100M000100Y44": "wrong check character",
    }
    for code, reason in cases.items():
        result = runner.invoke(cli, ["validate", "uscc", code])
        assert result.exit_code == 1
        assert reason in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_locate_panzhihua(cli_env: dict[str, str]) -> None:
    result = runner.invoke(cli, ["locate", "101.72", "26.58", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"province": "510000", "prefecture": "510400", "county": "510402", "park": None}


def test_locate_outside(cli_env: dict[str, str]) -> None:
    result = runner.invoke(cli, ["locate", "116.40", "39.90", "--json"])
    assert result.exit_code == 1
    assert "outside every loaded region" in result.stderr
    assert result.stdout == ""


def test_db_upgrade_is_idempotent(cli_env: dict[str, str]) -> None:
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "0 regions, 0 categories, 0 targets added" in result.stderr


def test_fresh_database_from_nothing(tmp_path: Path) -> None:
    """The installed command creates the SQLite file and its data directory from nothing."""
    exe = shutil.which("circuflow") or str(Path(os.sys.executable).parent / "circuflow")
    env = {**os.environ, "CIRCUFLOW_DATA_DIR": str(tmp_path / "fresh"), "CIRCUFLOW_DATABASE_URL": ""}
    done = subprocess.run([exe, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fresh" / "circuflow.sqlite3").exists()
    done = subprocess.run([exe, "locate", "101.72", "26.58", "--json"], env=env, capture_output=True, text=True)
    assert json.loads(done.stdout)["prefecture"] == "510400"
