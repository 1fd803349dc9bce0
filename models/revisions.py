"""Revisions of published figures: what an approved correction changed in a locked year, per scope."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.quantity import ExactWeights, tonnes_column

REVISION_SCOPES = ("province", "prefecture", "county", "park", "enterprise")


class RateRevision(ExactWeights, SQLModel, table=True):
    """The sums behind one scope's rate of a locked year before and after an approved correction."""

    __tablename__ = "rate_revision"
    __table_args__ = (
        CheckConstraint(
            "scope_kind IN ('province', 'prefecture', 'county', 'park', 'enterprise')", name="ck_revision_scope"
        ),
        UniqueConstraint("correction_id", "scope_kind", "scope_key", name="uq_revision_scope"),
        Index("ix_revision_year_scope", "year", "scope_kind", "scope_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    correction_id: int = Field(foreign_key="correction_request.id", index=True)
    scope_kind: str = Field(max_length=16)
    scope_key: str = Field(max_length=32)
    year: int
    categories: str = Field(max_length=400, description="the category set the figures count, comma-separated")
    generated_before_t: Decimal = Field(sa_column=tonnes_column("generated_before_t"))
    generated_after_t: Decimal = Field(sa_column=tonnes_column("generated_after_t"))
    utilised_before_t: Decimal = Field(sa_column=tonnes_column("utilised_before_t"))
    utilised_after_t: Decimal = Field(sa_column=tonnes_column("utilised_after_t"))
    utilised_prior_before_t: Decimal = Field(sa_column=tonnes_column("utilised_prior_before_t"))
    utilised_prior_after_t: Decimal = Field(sa_column=tonnes_column("utilised_prior_after_t"))
    manifest_before_t: Decimal = Field(sa_column=tonnes_column("manifest_before_t"))
    manifest_after_t: Decimal = Field(sa_column=tonnes_column("manifest_after_t"))
    revised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CorrectionAttachment(SQLModel, table=True):
    """An evidence file a correction request carries (a weighbridge ticket, a letter)."""

    __tablename__ = "correction_attachment"
    correction_id: int = Field(foreign_key="correction_request.id", primary_key=True)
    attachment_id: int = Field(foreign_key="attachment.id", primary_key=True, index=True)
