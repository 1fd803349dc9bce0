"""Power batteries, their custody events and recovery reports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, DateTime, Index
from sqlmodel import Field, SQLModel

from models.enums import ENUM_STR, BatteryEventType, BatteryLevel, BatteryState, check_in


class Battery(SQLModel, table=True):
    """A pack, module or cell identified by its GB/T 34014 code."""

    __table_args__ = (
        CheckConstraint(check_in("level", BatteryLevel), name="ck_battery_level"),
        CheckConstraint(check_in("state", BatteryState), name="ck_battery_state"),
        CheckConstraint("rated_kwh IS NULL OR rated_kwh >= 0", name="ck_battery_kwh_nonneg"),
        CheckConstraint("mass_kg IS NULL OR mass_kg >= 0", name="ck_battery_mass_nonneg"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="ck_battery_not_own_parent"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # Unique through battery_code: a unique index here could not span the shards once batteries are distributed.
    code: str = Field(max_length=32, index=True)
    original_code: str | None = Field(default=None, max_length=32, index=True, description="code before cascade use")
    level: BatteryLevel = Field(sa_type=ENUM_STR)
    maker_code: str = Field(max_length=3)
    chemistry: str = Field(max_length=1)
    production_date: date
    parent_id: int | None = Field(default=None, foreign_key="battery.id", index=True)
    state: BatteryState = Field(default=BatteryState.produced, sa_type=ENUM_STR)
    holder_id: int | None = Field(default=None, foreign_key="enterprise.id", index=True)
    rated_kwh: float | None = None
    mass_kg: float | None = None


class BatteryCode(SQLModel, table=True):
    """A battery's current code, held once: keeps codes unique when batteries are spread over shards by id."""

    __tablename__ = "battery_code"
    # Keyed by the code itself, so that on Citus it distributes by code and its primary key still spans every shard;
    # no foreign key to battery for the same reason (the two are not co-located): the writers keep both in step.
    code: str = Field(primary_key=True, max_length=32)
    battery_id: int = Field(index=True)


class BatteryEvent(SQLModel, table=True):
    """One step in a battery's life, as reported by the enterprise that did it."""

    __tablename__ = "battery_event"
    __table_args__ = (
        CheckConstraint(check_in("type", BatteryEventType), name="ck_battery_event_type"),
        CheckConstraint("reported_at >= occurred_at", name="ck_battery_event_reported_after"),
        Index("ix_battery_event_battery_time", "battery_id", "occurred_at"),
        Index("ix_battery_event_reporter_time", "reporter_id", "occurred_at"),
        # Reverse trace reads both ends of a handover; the year-wide audits scan one event type over a period.
        Index("ix_battery_event_counterpart_time", "counterpart_id", "occurred_at"),
        Index("ix_battery_event_type_time", "type", "occurred_at"),
        Index("ix_battery_event_reported_at", "reported_at"),
    )
    # The key holds the partition column (occurred_at) and the distribution column (battery_id), id first; the ORM's
    # identity stays id, as the manifests' does (models/waste.py).
    __mapper_args__ = {"primary_key": ["id"]}
    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs={"autoincrement": True})
    battery_id: int = Field(foreign_key="battery.id", primary_key=True)
    type: BatteryEventType = Field(sa_type=ENUM_STR)
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, primary_key=True))
    reported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    reporter_id: int = Field(foreign_key="enterprise.id")
    counterpart_id: int | None = Field(default=None, foreign_key="enterprise.id")
    region_adcode: str | None = Field(default=None, foreign_key="region.adcode")
    vin: str | None = Field(default=None, max_length=17)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RecoveryReport(SQLModel, table=True):
    """A recycler's account of the materials recovered from a lot of batteries."""

    __tablename__ = "recovery_report"
    __table_args__ = (
        CheckConstraint(
            "input_mass_kg >= 0 AND electrode_powder_kg >= 0 AND lithium_in_kg >= 0 AND lithium_out_kg >= 0"
            " AND nickel_in_kg >= 0 AND nickel_out_kg >= 0 AND cobalt_in_kg >= 0 AND cobalt_out_kg >= 0"
            " AND manganese_in_kg >= 0 AND manganese_out_kg >= 0",
            name="ck_recovery_nonneg",
        ),
    )
    # The key includes the recycler, the distribution column on Citus: a report lives with the enterprise that filed it.
    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs={"autoincrement": True})
    recycler_id: int = Field(foreign_key="enterprise.id", index=True, primary_key=True)
    battery_id: int | None = Field(default=None, foreign_key="battery.id", index=True)
    reported_on: date = Field(index=True)
    edition: str = Field(max_length=16, description="whitelist standard edition the report is held against")
    input_mass_kg: float = 0
    electrode_powder_kg: float = 0
    lithium_in_kg: float = 0
    lithium_out_kg: float = 0
    nickel_in_kg: float = 0
    nickel_out_kg: float = 0
    cobalt_in_kg: float = 0
    cobalt_out_kg: float = 0
    manganese_in_kg: float = 0
    manganese_out_kg: float = 0
