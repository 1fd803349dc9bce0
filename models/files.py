"""Attachments: evidence files (weighbridge tickets, letters) whose bytes live outside the rows, named by their hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime
from sqlmodel import Field, SQLModel

MEDIA_TYPES = ("application/pdf", "image/png", "image/jpeg")


class Attachment(SQLModel, table=True):
    """One uploaded file: its SHA-256 (the name of its bytes in the store), size, type and whose record it supports."""

    __tablename__ = "attachment"
    __table_args__ = (
        CheckConstraint("size_bytes > 0", name="ck_attachment_size"),
        CheckConstraint("length(sha256) = 64", name="ck_attachment_sha256"),
        CheckConstraint(
            "media_type IN ('application/pdf', 'image/png', 'image/jpeg')", name="ck_attachment_media_type"
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, index=True)
    size_bytes: int
    media_type: str = Field(max_length=32)
    filename: str = Field(max_length=200)
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id", index=True)
    uploaded_by: int | None = Field(default=None, foreign_key="user_account.id")
    uploaded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
