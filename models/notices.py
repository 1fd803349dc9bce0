"""Notifications: one row per user and event, read in the inbox and, where the user wants it, sent by e-mail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, DateTime, Index
from sqlmodel import Field, SQLModel

MAIL_STATES = ("none", "pending", "sent", "failed")


class Notice(SQLModel, table=True):
    """Something a user should hear of: what happened (kind and params) and the record it links to."""

    __tablename__ = "notice"
    __table_args__ = (
        # The bell counts a user's unread rows; the inbox pages them newest first.
        Index("ix_notice_user_read", "user_id", "read_at", "id"),
        # The mailer looks for rows whose e-mail is due.
        Index("ix_notice_mail_due", "mail_state", "mail_next_at"),
        CheckConstraint("mail_state IN ('none', 'pending', 'sent', 'failed')", name="ck_notice_mail_state"),
        CheckConstraint("mail_attempts >= 0", name="ck_notice_mail_attempts"),
    )
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE")
    kind: str = Field(max_length=32)
    subject: str = Field(max_length=32, description="the kind of record it links to: manifest, correction, lock")
    subject_id: str = Field(max_length=64)
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    read_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # The e-mail copy: none (not wanted), pending (due at mail_next_at), sent, or failed after every retry.
    mail_state: str = Field(default="none", max_length=8)
    mail_attempts: int = 0
    mail_next_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    mail_error: str | None = Field(default=None, max_length=500)


class NoticePreference(SQLModel, table=True):
    """Where a user's notifications are e-mailed, and whether they are at all."""

    __tablename__ = "notice_preference"
    user_id: int = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    email: str = Field(default="", max_length=254)
    mail_enabled: bool = True
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class FlagNotice(SQLModel, table=True):
    """A flag already announced to its enterprise: its key (kind, year and subject, hashed), so it is told once."""

    __tablename__ = "flag_notice"
    key: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32)
    year: int
    subject: str = Field(max_length=128)
    announced_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
