"""The work on audit flags: each flag's status, assignee and reason, and the notes and answers written on it.

Flags are computed on read (flows/waste/flags.py); the work is kept beside them under the flag's key (kind, year and
subject, hashed, as in flag_notice), so it outlives a flag that clears and is found again when it comes back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, Index
from sqlmodel import Field, SQLModel

FLAG_STATUSES = ("open", "under_review", "resolved", "dismissed")
ENTRY_KINDS = ("note", "answer")


class FlagWork(SQLModel, table=True):
    """Where the bureau stands on one flag; a flag without a row is open and unassigned."""

    __tablename__ = "flag_work"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'under_review', 'resolved', 'dismissed')", name="ck_flag_work_status"),
        # A dismissal says why, so that a later reader can judge it.
        CheckConstraint("status <> 'dismissed' OR length(reason) > 0", name="ck_flag_work_reason"),
        Index("ix_flag_work_year_status", "year", "status"),
    )
    key: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32)
    year: int
    subject: str = Field(max_length=128)
    # The enterprises the flag concerned when its work began: who may read it after it clears.
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id", index=True)
    other_enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id")
    status: str = Field(default="open", max_length=16)
    assignee_id: int | None = Field(default=None, foreign_key="user_account.id", index=True)
    reason: str | None = Field(default=None, max_length=1000)
    version: int = 0
    updated_by: int | None = Field(default=None, foreign_key="user_account.id")
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class FlagEntry(SQLModel, table=True):
    """A bureau's note on a flag (read by bureaus only) or an enterprise's answer to it (read by both)."""

    __tablename__ = "flag_entry"
    __table_args__ = (
        CheckConstraint("kind IN ('note', 'answer')", name="ck_flag_entry_kind"),
        CheckConstraint("length(body) > 0", name="ck_flag_entry_body"),
    )
    id: int | None = Field(default=None, primary_key=True)
    flag_key: str = Field(foreign_key="flag_work.key", max_length=64, index=True)
    kind: str = Field(max_length=8)
    body: str = Field(max_length=2000)
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id", description="who answered")
    author_id: int | None = Field(default=None, foreign_key="user_account.id")
    attachment_id: int | None = Field(default=None, foreign_key="attachment.id", description="the answer's evidence")
    written_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
