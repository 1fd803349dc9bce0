"""The circuflow command: stats, validate, locate, db upgrade, and the installed entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from shapely.geometry import box
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
    exe = shutil.which("circuflow") or str(Path(sys.executable).parent / "circuflow")
    env = {**os.environ, "CIRCUFLOW_DATA_DIR": str(tmp_path / "fresh"), "CIRCUFLOW_DATABASE_URL": ""}
    done = subprocess.run([exe, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fresh" / "circuflow.sqlite3").exists()
    done = subprocess.run([exe, "locate", "101.72", "26.58", "--json"], env=env, capture_output=True, text=True)
    assert json.loads(done.stdout)["prefecture"] == "510400"


def _parks_geojson(path: Path, features: list[tuple[str, list[tuple[float, float]]]]) -> Path:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name_zh": name, "level": "national"},
                "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
            }
            for name, ring in features
        ],
    }
    path.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    return path


def _box(lon: float, lat: float, d: float = 0.02) -> list[tuple[float, float]]:
    return [(lon - d, lat - d), (lon + d, lat - d), (lon + d, lat + d), (lon - d, lat + d), (lon - d, lat - d)]


def test_import_parks_geojson_and_geopackage(cli_env: dict[str, str], tmp_path: Path) -> None:
    bowtie = [(104.0, 30.6), (104.02, 30.62), (104.02, 30.6), (104.0, 30.62), (104.0, 30.6)]
    path = _parks_geojson(
        tmp_path / "parks.geojson", [("攀枝花测试园区", _box(101.72, 26.58)), ("成都蝴蝶园区", bowtie)]
    )
    result = runner.invoke(cli, ["import", "parks", str(path)])
    assert result.exit_code == 0, result.output
    assert "imported 2 parks" in result.stdout
    located = json.loads(runner.invoke(cli, ["locate", "101.72", "26.58", "--json"]).stdout)
    assert located["park"] is not None
    import geopandas as gpd

    frame = gpd.read_file(path)
    frame["name_zh"] = ["乐山测试园区", "宜宾测试园区"]
    # Boxes in lon/lat, as a user's file would hold them (no buffering in degrees).
    frame.geometry = gpd.GeoSeries([box(103.76, 29.54, 103.78, 29.56), box(104.63, 28.75, 104.65, 28.77)], crs=4326)
    gpkg = tmp_path / "parks.gpkg"
    frame.to_file(gpkg, driver="GPKG")
    assert runner.invoke(cli, ["import", "parks", str(gpkg)]).exit_code == 0
    assert json.loads(runner.invoke(cli, ["stats", "--json"]).stdout)["parks"] == 4


def test_import_parks_refuses_bad_rows_and_saves_nothing(cli_env: dict[str, str], tmp_path: Path) -> None:
    bowtie = [(104.0, 30.6), (104.02, 30.62), (104.02, 30.6), (104.0, 30.62), (104.0, 30.6)]
    path = _parks_geojson(
        tmp_path / "bad.geojson",
        [("好园区", _box(104.40, 31.13)), ("北京园区", _box(116.4, 39.9)), ("蝴蝶园区", bowtie)],
    )
    result = runner.invoke(cli, ["import", "parks", str(path), "--no-repair"])
    assert result.exit_code == 1
    assert "row 2" in result.stderr and "outside every loaded region" in result.stderr
    assert "row 3" in result.stderr and "Self-intersection" in result.stderr
    assert json.loads(runner.invoke(cli, ["stats", "--json"]).stdout)["parks"] == 0
    missing = runner.invoke(cli, ["import", "parks", str(tmp_path / "nope.geojson")])
    assert missing.exit_code == 1 and "cannot read" in missing.stderr
