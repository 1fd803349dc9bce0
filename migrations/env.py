"""Alembic environment: the same scripts run on SQLite (batch mode) and PostgreSQL + PostGIS."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import models  # noqa: F401 - registers every table on the metadata
from models.db import make_engine
from models.partitions import SCHEMA

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from app.settings import Settings

    return Settings().database_url


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = make_engine(_url())
        with engine.connect() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connection)


def _include(obj: object, _name: object, type_: str, reflected: bool, _compare_to: object) -> bool:
    # PostgreSQL copies a key into a partitioned table for each partition; autogenerate would read them as extras.
    if type_ == "foreign_key_constraint" and reflected:
        return getattr(getattr(obj, "referred_table", None), "schema", None) != SCHEMA
    return True


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
