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
    # The enterprises the row belongs to (a manifest has two), so that an auditor can filter by enterprise.
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id", index=True)
    other_enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id", index=True)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The last entry of the audit log, signed with a key the database does not hold: one row, moved by each entry."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_head_one_row"),)
    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    # No foreign key: the head must outlive the entries it names, or removing them would remove the evidence.
    entry_id: int
    entry_hash: str = Field(max_length=64)
    count: int = Field(description="entries in the chain up to and including entry_id")
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    signature: str = Field(max_length=128)


class PeriodLock(SQLModel, table=True):
    """A reporting year closed for a region by a bureau."""

    __tablename__ = "period_lock"
    region_adcode: str = Field(foreign_key="region.adcode", primary_key=True)
    year: int = Field(primary_key=True)
    locked_by: int | None = Field(default=None, foreign_key="user_account.id")
    locked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LoginSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, the database only its hash."""

    __tablename__ = "login_session"
    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token of a machine client, acting with its owner's role and scope."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=64)
    prefix: str = Field(max_length=12, description="first characters, to recognise a token without revealing it")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class LoginFailure(SQLModel, table=True):
    """A failed sign-in, counted by the throttle."""

    __tablename__ = "login_failure"
    __table_args__ = (
        Index("ix_login_failure_username_at", "username", "at"),
        # The throttle also counts per client address, across accounts.
        Index("ix_login_failure_client_at", "client", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    client: str = Field(default="", max_length=64)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CorrectionRequest(SQLModel, table=True):
    """A change to locked data, held until a bureau approves or rejects it."""

    __tablename__ = "correction_request"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="ck_correction_status"),
        CheckConstraint("length(reason) > 0", name="ck_correction_reason"),
    )
    id: int | None = Field(default=None, primary_key=True)
    table_name: str = Field(max_length=64)
    row_id: str | None = Field(default=None, max_length=64, description="None for a row that does not exist yet")
    enterprise_id: int = Field(foreign_key="enterprise.id", index=True)
    year: int
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    reason: str = Field(max_length=1000)
    status: str = Field(default="pending", max_length=16)
    requested_by: int | None = Field(default=None, foreign_key="user_account.id")
    requested_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    decided_by: int | None = Field(default=None, foreign_key="user_account.id")
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decision_note: str | None = Field(default=None, max_length=1000)
