"""Solid-waste records: annual declarations and transfer batches (manifests)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false
from sqlmodel import Field, SQLModel

from models.enums import ENUM_STR, ManifestStatus, Placement, Route, TransportMode, Weighing, check_in
from models.quantity import ExactWeights, tonnes_column


class DeclarationBase(SQLModel):
    enterprise_id: int = Field(foreign_key="enterprise.id")
    category_code: str = Field(foreign_key="waste_category.code")
    year: int = Field(ge=2000, le=2100)
    generated_t: Decimal = Field(default=Decimal(0), ge=0)
    utilised_t: Decimal = Field(default=Decimal(0), ge=0)
    utilised_prior_t: Decimal = Field(default=Decimal(0), ge=0, description="of utilised_t, from prior-year stock")
    disposed_t: Decimal = Field(default=Decimal(0), ge=0)
    disposed_prior_t: Decimal = Field(default=Decimal(0), ge=0, description="of disposed_t, from prior-year stock")
    stored_t: Decimal = Field(default=Decimal(0), ge=0)
    dumped_t: Decimal = Field(default=Decimal(0), ge=0)


class Declaration(ExactWeights, DeclarationBase, table=True):
    """An enterprise's annual figures for one waste category: tonnes, stored as whole kilograms."""

    __table_args__ = (
        UniqueConstraint("enterprise_id", "category_code", "year", name="uq_declaration"),
        CheckConstraint(
            "generated_kg >= 0 AND utilised_kg >= 0 AND utilised_prior_kg >= 0 AND disposed_kg >= 0"
            " AND disposed_prior_kg >= 0 AND stored_kg >= 0 AND dumped_kg >= 0",
            name="ck_declaration_nonneg",
        ),
        CheckConstraint("utilised_prior_kg <= utilised_kg", name="ck_declaration_utilised_prior"),
        CheckConstraint("disposed_prior_kg <= disposed_kg", name="ck_declaration_disposed_prior"),
        Index("ix_declaration_year_category", "year", "category_code"),
    )
    # The key includes the enterprise, the distribution column on Citus, so a lookup by key reaches one shard.
    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs={"autoincrement": True})
    enterprise_id: int = Field(foreign_key="enterprise.id", primary_key=True)
    generated_t: Decimal = Field(default=Decimal(0), sa_column=tonnes_column("generated_t"))
    utilised_t: Decimal = Field(default=Decimal(0), sa_column=tonnes_column("utilised_t"))
    utilised_prior_t: Decimal = Field(default=Decimal(0), sa_column=tonnes_column("utilised_prior_t"))
    disposed_t: Decimal = Field(default=Decimal(0), sa_column=tonnes_column("disposed_t"))
    disposed_prior_t: Decimal = Field(default=Decimal(0), sa_column=tonnes_column("disposed_prior_t"))
    stored_t: Decimal = Field(default=Decimal(0), sa_column=tonnes_column("stored_t"))
    dumped_t: Decimal = Field(default=Decimal(0), sa_column=tonnes_column("dumped_t"))


class DeclarationPublic(DeclarationBase):
    id: int


class Manifest(ExactWeights, SQLModel, table=True):
    """A manifest: one lot of waste sent from a shipper to a receiver."""

    __tablename__ = "transfer_batch"
    __table_args__ = (
        CheckConstraint(check_in("status", ManifestStatus), name="ck_batch_status"),
        CheckConstraint(check_in("route", Route), name="ck_batch_route"),
        CheckConstraint("weight_dispatched_kg >= 0", name="ck_batch_dispatched_nonneg"),
        CheckConstraint("weight_received_kg IS NULL OR weight_received_kg >= 0", name="ck_batch_received_nonneg"),
        CheckConstraint("shipper_id <> receiver_id", name="ck_batch_distinct_parties"),
        CheckConstraint("rejected_kg IS NULL OR rejected_kg >= 0", name="ck_batch_rejected_nonneg"),
        CheckConstraint(
            f"transport_mode IS NULL OR {check_in('transport_mode', TransportMode)}", name="ck_batch_transport_mode"
        ),
        CheckConstraint(f"weighing IS NULL OR {check_in('weighing', Weighing)}", name="ck_batch_weighing"),
        # Numbers and idempotency keys are unique in manifest_number (a partitioned table can hold neither): these
        # two only find them.
        Index("ix_batch_number", "number"),
        Index("ix_batch_idempotency", "shipper_id", "idempotency_key"),
        Index("ix_batch_year_category", "year", "category_code"),
        Index("ix_batch_shipper_year", "shipper_id", "year"),
        Index("ix_batch_receiver_year", "receiver_id", "year"),
    )
    # The key holds the partition column (year) and the distribution column (shipper_id), id first so that a lookup
    # by id uses it. The ORM's identity stays id alone: year moves at dispatch and on correction, and an identity
    # that moves would turn every dispatch into a key change; the pages, the API and the chains name a manifest by id.
    __mapper_args__ = {"primary_key": ["id"]}
    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs={"autoincrement": True})
    number: str = Field(max_length=32, description="issued by the service from its own counter")
    reference: str | None = Field(default=None, max_length=64, description="the shipper's own number, kept as given")
    idempotency_key: str | None = Field(default=None, max_length=128)
    shipper_id: int = Field(foreign_key="enterprise.id", primary_key=True)
    receiver_id: int = Field(foreign_key="enterprise.id")
    carrier_id: int | None = Field(default=None, foreign_key="enterprise.id")
    category_code: str = Field(foreign_key="waste_category.code")
    route: Route = Field(sa_type=ENUM_STR)
    year: int = Field(ge=2000, le=2100, primary_key=True, description="reporting year, from the dispatch date")
    status: ManifestStatus = Field(default=ManifestStatus.draft, sa_type=ENUM_STR)
    weight_dispatched_t: Decimal = Field(sa_column=tonnes_column("weight_dispatched_t"))
    weight_received_t: Decimal | None = Field(default=None, sa_column=tonnes_column("weight_received_t", null=True))
    dispatched_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    received_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    rejected_t: Decimal | None = Field(
        default=None, sa_column=tonnes_column("rejected_t", null=True), description="tonnes refused by the receiver"
    )
    rejection_reason: str | None = Field(default=None, max_length=512)
    cancel_reason: str | None = Field(default=None, max_length=512)
    # What the handover records, sealed at dispatch with the rest of the lot.
    vehicle_plate: str | None = Field(default=None, max_length=16)
    transport_mode: TransportMode | None = Field(default=None, sa_type=ENUM_STR)
    packaging: str | None = Field(default=None, max_length=64)
    weighing: Weighing | None = Field(default=None, sa_type=ENUM_STR)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ManifestCorrection(SQLModel, table=True):
    """One correction of a manifest: the values before and after, who made it and why."""

    __tablename__ = "batch_correction"
    __table_args__ = (CheckConstraint("length(reason) > 0", name="ck_batch_correction_reason"),)
    # Carries its manifest's shipper, the distribution column on Citus, so that it sits on its manifest's shard.
    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs={"autoincrement": True})
    shipper_id: int = Field(foreign_key="enterprise.id", primary_key=True)
    batch_id: int = Field(foreign_key="manifest_number.manifest_id", index=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    reason: str = Field(max_length=1000)
    before: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    after: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class ManifestNumber(SQLModel, table=True):
    """A manifest's number, held once across every year and shard: written with the manifest, in its transaction.

    The manifest writers write the row (flows/waste/numbers.py: the ORM's flush and every bulk path), so that a
    number is unique across year partitions and Citus shards; year and shipper follow the manifest.
    Rows that point at a manifest (sources, draws, shares, corrections) point here.
    """

    __tablename__ = "manifest_number"
    __table_args__ = (
        # A retried submission carries the same key: unique per shipper, so clients never collide with each other.
        UniqueConstraint("shipper_id", "idempotency_key", name="uq_manifest_number_idempotency"),
        ForeignKeyConstraint(
            ["manifest_id", "year", "shipper_id"],
            ["transfer_batch.id", "transfer_batch.year", "transfer_batch.shipper_id"],
            name="fk_manifest_number_batch",
            onupdate="CASCADE",
        ),
    )
    number: str = Field(primary_key=True, max_length=32)
    manifest_id: int = Field(unique=True)
    year: int
    shipper_id: int
    idempotency_key: str | None = Field(default=None, max_length=128)


class NumberCounter(SQLModel, table=True):
    """The last number issued of a kind in a year: the service's own counter, never parsed from user text."""

    __tablename__ = "number_counter"
    __table_args__ = (CheckConstraint("last >= 0", name="ck_number_counter_nonneg"),)
    kind: str = Field(primary_key=True, max_length=16)
    year: int = Field(primary_key=True)
    last: int = Field(default=0)


class ManifestSource(SQLModel, table=True):
    """A lot a manifest's waste came from, as its shipper declared it: tonnes drawn, or none for pro rata."""

    __tablename__ = "manifest_source"
    __table_args__ = (
        CheckConstraint("manifest_id <> source_id", name="ck_manifest_source_not_itself"),
        CheckConstraint("weight_kg IS NULL OR weight_kg > 0", name="ck_manifest_source_weight"),
        Index("ix_manifest_source_source", "source_id"),
    )
    manifest_id: int = Field(foreign_key="manifest_number.manifest_id", primary_key=True)
    source_id: int = Field(foreign_key="manifest_number.manifest_id", primary_key=True)
    weight_t: Decimal | None = Field(default=None, sa_column=tonnes_column("weight_t", null=True))


class ManifestDraw(SQLModel, table=True):
    """Kilograms a forwarding drew from a lot: as named, pro rata, or (not named) from what its shipper held."""

    __tablename__ = "manifest_draw"
    __table_args__ = (
        CheckConstraint("kg >= 0", name="ck_manifest_draw_kg"),
        Index("ix_manifest_draw_source", "source_id"),
    )
    manifest_id: int = Field(foreign_key="manifest_number.manifest_id", primary_key=True)
    source_id: int = Field(foreign_key="manifest_number.manifest_id", primary_key=True)
    kg: int = Field(sa_type=BigInteger)
    named: bool = True


class ManifestShare(SQLModel, table=True):
    """Kilograms of a first manifest found in a manifest, and where: at a final step, held, or on the road.

    Kept on every write to a chain (flows/waste/chains.py), so that the bottom-up figure is one grouped sum.
    """

    __tablename__ = "manifest_share"
    __table_args__ = (
        CheckConstraint(check_in("placement", Placement), name="ck_manifest_share_placement"),
        CheckConstraint("kg > 0", name="ck_manifest_share_kg"),
        Index("ix_manifest_share_origin", "origin_id"),
        Index("ix_manifest_share_shipper_year", "origin_shipper_id", "origin_year"),
        Index("ix_manifest_share_year_category", "origin_year", "category_code"),
    )
    manifest_id: int = Field(foreign_key="manifest_number.manifest_id", primary_key=True)
    origin_id: int = Field(foreign_key="manifest_number.manifest_id", primary_key=True)
    placement: Placement = Field(sa_type=ENUM_STR, primary_key=True)
    kg: int = Field(sa_type=BigInteger)
    # Of the first manifest, so that a generator's figure needs no walk back: its shipper, category and year.
    origin_shipper_id: int = Field(foreign_key="enterprise.id")
    category_code: str = Field(max_length=9)
    origin_year: int
    # What this row adds to the summaries (flows/waste/summaries.py), so that a change can take back exactly that:
    # the route of the manifest it is in, and whether it counts toward the rate (final, received, utilisation route,
    # licensed receiver). Kept on write with the summaries; `circuflow summaries rebuild` recomputes them.
    route: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    counted: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # Where the path of these kilograms runs, for the Sankey's summary (summary_path): the first manifest's receiver
    # and route, and the parties of the manifest the row is in. Copies of the manifests' own columns (which carry the
    # foreign keys), taken when the row is written, so that a later change can take back what this row added.
    first_receiver_id: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    first_route: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    shipper_id: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    receiver_id: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
