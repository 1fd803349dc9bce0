"""Enterprises, their roles, licences and battery-whitelist entries."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.enums import ENUM_STR, EnterpriseRole, LicenceActivity, WhitelistKind, check_in
from models.quantity import ExactWeights, tonnes_column


class EnterpriseBase(SQLModel):
    uscc: str = Field(max_length=18, min_length=18, unique=True, index=True)
    name_zh: str = Field(max_length=128)
    name_en: str | None = Field(default=None, max_length=128)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class Enterprise(EnterpriseBase, table=True):
    """A legal entity with a Unified Social Credit Code and a location."""

    __table_args__ = (
        CheckConstraint("lon >= -180 AND lon <= 180 AND lat >= -90 AND lat <= 90", name="ck_enterprise_lonlat"),
        CheckConstraint("length(uscc) = 18", name="ck_enterprise_uscc_len"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # Derived by point-in-polygon on save; kept as columns because every rate aggregates on them.
    province_adcode: str | None = Field(default=None, foreign_key="region.adcode", index=True)
    prefecture_adcode: str | None = Field(default=None, foreign_key="region.adcode", index=True)
    county_adcode: str | None = Field(default=None, foreign_key="region.adcode", index=True)
    park_id: int | None = Field(default=None, foreign_key="park.id", index=True)
    location_overridden: bool = False
    # Counts edits made on a page or through the API: an edit names the version it read, so of two at once one wins.
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class EnterprisePublic(EnterpriseBase):
    id: int
    province_adcode: str | None
    prefecture_adcode: str | None
    county_adcode: str | None
    park_id: int | None
    location_overridden: bool = False
    version: int = 1
    roles: list[str] = []


class EnterpriseRoleLink(SQLModel, table=True):
    """One role an enterprise plays (it may play several)."""

    __tablename__ = "enterprise_role"
    __table_args__ = (CheckConstraint(check_in("role", EnterpriseRole), name="ck_enterprise_role_role"),)
    enterprise_id: int = Field(foreign_key="enterprise.id", primary_key=True, ondelete="CASCADE")
    role: EnterpriseRole = Field(primary_key=True, sa_type=ENUM_STR)


class Licence(ExactWeights, SQLModel, table=True):
    """A permit to handle one waste category by one activity, with a yearly capacity: its current version.

    A replacement never overwrites silently: the version it supersedes is first copied to licence_revision, and
    `revision` counts the versions (a replacement names the revision it replaces, so of two at once one wins).
    """

    __table_args__ = (
        CheckConstraint(check_in("activity", LicenceActivity), name="ck_licence_activity"),
        CheckConstraint("capacity_kg >= 0", name="ck_licence_capacity_nonneg"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="ck_licence_validity"),
        CheckConstraint("revision >= 1", name="ck_licence_revision"),
        UniqueConstraint("enterprise_id", "category_code", "activity", "valid_from", name="uq_licence"),
    )
    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: int = Field(foreign_key="enterprise.id", index=True)
    category_code: str = Field(foreign_key="waste_category.code")
    activity: LicenceActivity = Field(sa_type=ENUM_STR)
    capacity_t: Decimal = Field(sa_column=tonnes_column("capacity_t"), description="licensed tonnes per year")
    licence_no: str = Field(default="", max_length=64)
    valid_from: date
    valid_to: date | None = None
    revision: int = Field(default=1, description="versions so far: 1 when first recorded")
    # Who recorded this version and when; empty for licences loaded before versions were kept (and by the demo).
    recorded_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    recorded_by: int | None = Field(default=None, foreign_key="user_account.id")


class LicenceRevision(ExactWeights, SQLModel, table=True):
    """A superseded version of a licence, as it stood until it was replaced: append-only."""

    __tablename__ = "licence_revision"
    __table_args__ = (
        CheckConstraint(check_in("activity", LicenceActivity), name="ck_licence_revision_activity"),
        CheckConstraint("capacity_kg >= 0", name="ck_licence_revision_capacity"),
        UniqueConstraint("licence_id", "revision", name="uq_licence_revision"),
    )
    id: int | None = Field(default=None, primary_key=True)
    licence_id: int = Field(foreign_key="licence.id", index=True)
    revision: int
    enterprise_id: int = Field(foreign_key="enterprise.id")
    category_code: str = Field(foreign_key="waste_category.code")
    activity: LicenceActivity = Field(sa_type=ENUM_STR)
    capacity_t: Decimal = Field(sa_column=tonnes_column("capacity_t"))
    licence_no: str = Field(default="", max_length=64)
    valid_from: date
    valid_to: date | None = None
    recorded_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    recorded_by: int | None = Field(default=None, foreign_key="user_account.id")
    superseded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    superseded_by: int | None = Field(default=None, foreign_key="user_account.id")


class WhitelistEntry(SQLModel, table=True):
    """A listing under the MIIT standard conditions for waste power-battery utilisation."""

    __tablename__ = "whitelist_entry"

    __table_args__ = (
        CheckConstraint(check_in("kind", WhitelistKind), name="ck_whitelist_kind"),
        UniqueConstraint("enterprise_id", "kind", "batch", name="uq_whitelist"),
    )
    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: int = Field(foreign_key="enterprise.id", index=True)
    kind: WhitelistKind = Field(sa_type=ENUM_STR)
    edition: str = Field(
        default="", max_length=32, sa_column_kwargs={"server_default": ""}, description="the conditions' edition"
    )
    batch: str = Field(max_length=32, description="the published list it appeared in")
    listed_on: date
    revoked_on: date | None = Field(default=None, description="delisted from this day on")
