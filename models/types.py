"""Column types that behave the same on SQLite and on PostgreSQL + PostGIS."""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

SRID = 4326


class _PostGISGeometry(UserDefinedType[Any]):
    """A PostGIS geometry column; values travel as hex EWKB text both ways."""

    cache_ok = True

    def __init__(self, geometry_type: str) -> None:
        self.geometry_type = geometry_type

    def get_col_spec(self, **_kw: Any) -> str:
        return f"geometry({self.geometry_type},{SRID})"


class Geometry(TypeDecorator[BaseGeometry]):
    """Shapely geometry in EPSG:4326: PostGIS geometry on PostgreSQL, WKB bytes elsewhere."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY") -> None:
        super().__init__()
        self.geometry_type = geometry_type.upper()

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PostGISGeometry(self.geometry_type))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return shapely.to_wkb(shapely.set_srid(value, SRID), hex=True, include_srid=True)
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        if isinstance(value, memoryview):
            value = bytes(value)
        return shapely.from_wkb(value)
