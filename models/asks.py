"""Correction asks: a bureau asks the enterprise that owns named fields of a record to correct them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, Column, DateTime, Index
from sqlmodel import Field, SQLModel

ASK_STATES = ("open", "filed", "contested", "dropped", "withdrawn")
ASK_TABLES = ("transfer_batch", "declaration")


class CorrectionAsk(SQLModel, table=True):
    """An auditor's request that an enterprise correct fields of a manifest or a declaration by a due date.

    The state is the ask's own; once a correction is filed, its decision lives on the linked correction request
    (one writer for corrections), and the ask's status is read from both.
    """

    __tablename__ = "correction_ask"
    __table_args__ = (
        CheckConstraint(
            "state IN ('open', 'filed', 'contested', 'dropped', 'withdrawn')", name="ck_correction_ask_state"
        ),
        CheckConstraint("table_name IN ('transfer_batch', 'declaration')", name="ck_correction_ask_table"),
        CheckConstraint("length(reason) > 0", name="ck_correction_ask_reason"),
        # Pages mark a record "under correction" by looking its asks up.
        Index("ix_correction_ask_record", "table_name", "row_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    table_name: str = Field(max_length=32)
    row_id: int
    enterprise_id: int = Field(foreign_key="enterprise.id", index=True)
    party: str | None = Field(default=None, max_length=16, description="shipper or receiver, for a manifest")
    year: int
    fields: list[str] = Field(sa_column=Column(JSON, nullable=False))
    reason: str = Field(max_length=1000)
    due_on: date
    state: str = Field(default="open", max_length=16)
    asked_by: int | None = Field(default=None, foreign_key="user_account.id")
    asked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    answered_by: int | None = Field(default=None, foreign_key="user_account.id")
    answered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    answer: str | None = Field(default=None, max_length=1000)
    correction_id: int | None = Field(default=None, foreign_key="correction_request.id")
    decided_by: int | None = Field(default=None, foreign_key="user_account.id")
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decision_note: str | None = Field(default=None, max_length=1000)
