"""Users, the audit log and period locks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, DateTime, Index
from sqlmodel import Field, SQLModel

from models.enums import ENUM_STR, Channel, UserRole, check_in


class User(SQLModel, table=True):
    """An account with one role and the scope that role reads and writes."""

    __tablename__ = "user_account"
    __table_args__ = (CheckConstraint(check_in("role", UserRole), name="ck_user_role"),)
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(default="", max_length=128)
    password_hash: str = Field(max_length=256)
    role: UserRole = Field(sa_type=ENUM_STR)
    scope_adcode: str | None = Field(default=None, foreign_key="region.adcode")
    scope_park_id: int | None = Field(default=None, foreign_key="park.id")
    scope_enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id")
    language: str = Field(default="zh-CN", max_length=8)
    is_active: bool = True
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AuditLog(SQLModel, table=True):
    """One write, chained to the previous row by hash so that edits behind the app's back show."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(check_in("channel", Channel), name="ck_audit_channel"),
        Index("ix_audit_table_row", "table_name", "row_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    channel: Channel = Field(sa_type=ENUM_STR)
    action: str = Field(max_length=32)
    table_name: str = Field(max_length=64)
    row_id: str = Field(max_length=64)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class PeriodLock(SQLModel, table=True):
    """A reporting year closed for a region by a bureau."""

    __tablename__ = "period_lock"
    region_adcode: str = Field(foreign_key="region.adcode", primary_key=True)
    year: int = Field(primary_key=True)
    locked_by: int | None = Field(default=None, foreign_key="user_account.id")
    locked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
