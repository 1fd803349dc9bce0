"""Reference data: regions, parks, waste categories and targets."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.enums import ENUM_STR, ParkLevel, RegionLevel, TransformationStatus, check_in
from models.types import Geometry

VALIDITY = "valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from"


class RegionBase(SQLModel):
    adcode: str = Field(primary_key=True, max_length=6, min_length=6, regex=r"^\d{6}$")
    name_zh: str = Field(max_length=64)
    name_en: str | None = Field(default=None, max_length=64)
    level: RegionLevel = Field(sa_type=ENUM_STR)
    parent_adcode: str | None = Field(default=None, foreign_key="region.adcode", index=True)


class Region(RegionBase, table=True):
    """An administrative division (GB/T 2260 adcode) with its boundary."""

    __table_args__ = (
        CheckConstraint(check_in("level", RegionLevel), name="ck_region_level"),
        CheckConstraint("length(adcode) = 6", name="ck_region_adcode_len"),
    )
    geom: Any = Field(sa_column=Column(Geometry("MULTIPOLYGON"), nullable=False))


class RegionPublic(RegionBase):
    pass


class ParkBase(SQLModel):
    name_zh: str = Field(max_length=128)
    name_en: str | None = Field(default=None, max_length=128)
    level: ParkLevel = Field(default=ParkLevel.provincial, sa_type=ENUM_STR)
    region_adcode: str = Field(foreign_key="region.adcode", index=True)
    industries: str = Field(default="", max_length=256)
    transformation_status: TransformationStatus = Field(default=TransformationStatus.not_started, sa_type=ENUM_STR)
    transformation_year: int | None = Field(default=None, ge=2000, le=2100)
    waste_free: bool = False


class Park(ParkBase, table=True):
    """An industrial park with its boundary polygon."""

    __table_args__ = (
        UniqueConstraint("name_zh", name="uq_park_name_zh"),
        CheckConstraint(check_in("level", ParkLevel), name="ck_park_level"),
        CheckConstraint(check_in("transformation_status", TransformationStatus), name="ck_park_transformation_status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    boundary: Any = Field(sa_column=Column(Geometry("MULTIPOLYGON"), nullable=False))
    # Counts edits made on a page or through the API: an edit names the version it read, so of two at once one wins.
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class ParkPublic(ParkBase):
    id: int
    version: int = 1


class WasteCategoryBase(SQLModel):
    code: str = Field(primary_key=True, max_length=9)
    name_zh: str = Field(max_length=64)
    name_en: str = Field(max_length=96)
    is_bulk: bool = False
    is_tailings: bool = False
    catalogue: str = Field(default="GB/T 39198-2020", max_length=32)
    parent_code: str | None = Field(default=None, foreign_key="waste_category.code")
    valid_from: date | None = Field(default=None, description="first day the code may be used; none: always")
    valid_to: date | None = Field(default=None, description="last day the code may be used; none: open-ended")


class WasteCategory(WasteCategoryBase, table=True):
    """A category of industrial solid waste (SW codes, or the 2024 catalogue's 9-character codes)."""

    __tablename__ = "waste_category"
    __table_args__ = (
        CheckConstraint(
            "valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from", name="ck_category_validity"
        ),
    )


class WasteCategoryPublic(WasteCategoryBase):
    pass


class Target(SQLModel, table=True):
    """A utilisation-rate target: scope, year, value and the categories it counts."""

    __table_args__ = (
        UniqueConstraint("name", name="uq_target_name"),
        UniqueConstraint("scope_adcode", "year", "series", name="uq_target_scope_year_series"),
        CheckConstraint("value >= 0 AND value <= 1", name="ck_target_value_fraction"),
        CheckConstraint(VALIDITY, name="ck_target_validity"),
        CheckConstraint("revision >= 1", name="ck_target_revision"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    series: str = Field(max_length=64, description="targets of one series are joined by the linear path")
    scope_adcode: str = Field(foreign_key="region.adcode", max_length=6)
    year: int
    value: float
    source: str = Field(default="", max_length=256)
    valid_from: date | None = Field(default=None, description="first day the target applies; none: always")
    valid_to: date | None = Field(default=None, description="last day the target applies; none: open-ended")
    retired_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True), description="when it was retired"
    )
    revision: int = Field(default=1, description="versions so far; a change names the revision it replaces")


class TargetCategory(SQLModel, table=True):
    """Which categories a target counts."""

    __tablename__ = "target_category"

    target_id: int = Field(foreign_key="target.id", primary_key=True, ondelete="CASCADE")
    category_code: str = Field(foreign_key="waste_category.code", primary_key=True)
