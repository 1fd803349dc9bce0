"""exact weights: every tonnage column becomes whole kilograms in a BIGINT (<x>_t -> <x>_kg)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 08:00:00.000000

Binary floats summed in whatever order the database chose; integer kilograms sum exactly on SQLite and PostgreSQL.
A stored value is rounded once, here, to the nearest kilogram (what a weighbridge shows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DECLARATION = ("generated", "utilised", "utilised_prior", "disposed", "disposed_prior", "stored", "dumped")
MANIFEST_REQUIRED = ("weight_dispatched",)
MANIFEST_OPTIONAL = ("weight_received", "rejected")
LICENCE = ("capacity",)

CHECKS: dict[str, list[tuple[str, str, str]]] = {
    # table: (name, condition on tonnes, condition on kilograms)
    "declaration": [
        (
            "ck_declaration_nonneg",
            "generated_t >= 0 AND utilised_t >= 0 AND utilised_prior_t >= 0 AND disposed_t >= 0"
            " AND disposed_prior_t >= 0 AND stored_t >= 0 AND dumped_t >= 0",
            "generated_kg >= 0 AND utilised_kg >= 0 AND utilised_prior_kg >= 0 AND disposed_kg >= 0"
            " AND disposed_prior_kg >= 0 AND stored_kg >= 0 AND dumped_kg >= 0",
        ),
        ("ck_declaration_utilised_prior", "utilised_prior_t <= utilised_t", "utilised_prior_kg <= utilised_kg"),
        ("ck_declaration_disposed_prior", "disposed_prior_t <= disposed_t", "disposed_prior_kg <= disposed_kg"),
    ],
    "transfer_batch": [
        ("ck_batch_dispatched_nonneg", "weight_dispatched_t >= 0", "weight_dispatched_kg >= 0"),
        (
            "ck_batch_received_nonneg",
            "weight_received_t IS NULL OR weight_received_t >= 0",
            "weight_received_kg IS NULL OR weight_received_kg >= 0",
        ),
        (
            "ck_batch_rejected_nonneg",
            "rejected_t IS NULL OR rejected_t >= 0",
            "rejected_kg IS NULL OR rejected_kg >= 0",
        ),
    ],
    "licence": [("ck_licence_capacity_nonneg", "capacity_t >= 0", "capacity_kg >= 0")],
}
COLUMNS: dict[str, list[tuple[str, bool]]] = {
    "declaration": [(name, False) for name in DECLARATION],
    "transfer_batch": [(name, False) for name in MANIFEST_REQUIRED] + [(name, True) for name in MANIFEST_OPTIONAL],
    "licence": [(name, False) for name in LICENCE],
}


def _scale(table: str, columns: list[tuple[str, bool]], suffix: str, to_kg: bool) -> None:
    for name, _ in columns:
        column = f"{name}{suffix}"
        scaled = f"ROUND({column} * 1000)" if to_kg else f"{column} / 1000.0"
        op.execute(f"UPDATE {table} SET {column} = {scaled} WHERE {column} IS NOT NULL")


def _convert(to_kg: bool) -> None:
    old, new = ("_t", "_kg") if to_kg else ("_kg", "_t")
    for table, columns in COLUMNS.items():
        if to_kg:
            # Scale in place first, while the column still takes any number; then rename and retype.
            _scale(table, columns, old, to_kg)
        with op.batch_alter_table(table, schema=None) as batch_op:
            for check, _on_t, _on_kg in CHECKS[table]:
                batch_op.drop_constraint(check, type_="check")
            for name, nullable in columns:
                batch_op.alter_column(
                    f"{name}{old}",
                    new_column_name=f"{name}{new}",
                    type_=sa.BigInteger() if to_kg else sa.Float(),
                    existing_nullable=nullable,
                    postgresql_using=f"{name}{old}::bigint" if to_kg else None,
                )
            for check, on_t, on_kg in CHECKS[table]:
                batch_op.create_check_constraint(check, on_kg if to_kg else on_t)
        if not to_kg:
            # Back to tonnes once the column takes fractions again.
            _scale(table, columns, new, to_kg)


def upgrade() -> None:
    _convert(to_kg=True)


def downgrade() -> None:
    _convert(to_kg=False)
