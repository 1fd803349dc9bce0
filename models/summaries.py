"""Summary tables of the bottom-up figure, kept on write (flows/waste/summaries.py) and checked against base rows.

Keys are NOT NULL ('' stands for "no region") so that one upsert key works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel


class SummaryGenerator(SQLModel, table=True):
    """Kilograms allocated back to one generator's first manifests of a year and category, by the final route.

    utilised_kg counts toward the rate (final, received, utilisation route, licensed receiver on the received date);
    final_kg is everything that reached a final step. The generator's region columns are the ones its kilograms were
    last added under in summary_county, so that a relocation can move them.
    """

    __tablename__ = "summary_generator"
    __table_args__ = (Index("ix_summary_generator_generator", "generator_id"),)
    year: int = Field(primary_key=True)
    generator_id: int = Field(primary_key=True, foreign_key="enterprise.id")
    category_code: str = Field(primary_key=True, max_length=9)
    route: str = Field(primary_key=True, max_length=32)
    province_adcode: str = Field(default="", max_length=12)
    prefecture_adcode: str = Field(default="", max_length=12)
    county_adcode: str = Field(default="", max_length=12)
    utilised_kg: int = Field(default=0, sa_type=BigInteger)
    final_kg: int = Field(default=0, sa_type=BigInteger)


class SummaryCounty(SQLModel, table=True):
    """The same kilograms over the generators of one region cell (province, prefecture, county) by year and category."""

    __tablename__ = "summary_county"
    year: int = Field(primary_key=True)
    province_adcode: str = Field(primary_key=True, max_length=12)
    prefecture_adcode: str = Field(primary_key=True, max_length=12)
    county_adcode: str = Field(primary_key=True, max_length=12)
    category_code: str = Field(primary_key=True, max_length=9)
    utilised_kg: int = Field(default=0, sa_type=BigInteger)
    final_kg: int = Field(default=0, sa_type=BigInteger)


class SummaryPath(SQLModel, table=True):
    """Kilograms of a year's first manifests by the path they took to where they are now, for the Sankey.

    The key names the parties (generator, first receiver, sender and receiver of the manifest the kilograms are in)
    rather than their regions, so that a move between regions needs no rewrite and every scope filter of the Sankey
    applies. `origins` counts the first manifests with kilograms on this path: one whose kilograms took several paths
    counts on each.
    """

    __tablename__ = "summary_path"
    year: int = Field(primary_key=True)
    category_code: str = Field(primary_key=True, max_length=9)
    placement: str = Field(primary_key=True, max_length=16)  # final or held
    straight: bool = Field(primary_key=True)  # the kilograms are in their own first manifest
    generator_id: int = Field(primary_key=True)
    first_receiver_id: int = Field(primary_key=True)
    shipper_id: int = Field(primary_key=True)
    receiver_id: int = Field(primary_key=True)
    first_route: str = Field(primary_key=True, max_length=32)
    route: str = Field(primary_key=True, max_length=32)
    kg: int = Field(default=0, sa_type=BigInteger)
    utilised_kg: int = Field(default=0, sa_type=BigInteger)
    origins: int = Field(default=0, sa_type=BigInteger)
