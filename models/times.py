"""Stored times come back aware: every stored time is UTC, and SQLite hands back naive datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import attributes
from sqlmodel import SQLModel

_TIME_COLUMNS: dict[type[Any], tuple[str, ...]] = {}


def _time_columns(model: type[Any]) -> tuple[str, ...]:
    found = _TIME_COLUMNS.get(model)
    if found is None:
        found = _TIME_COLUMNS[model] = tuple(
            attr.key
            for attr in sa_inspect(model).column_attrs
            if any(isinstance(column.type, DateTime) and column.type.timezone for column in attr.columns)
        )
    return found


def _aware(target: Any, *_args: Any) -> None:
    # Set as loaded, not as changed: the row is the same, only its Python value gains the offset it always had.
    state = attributes.instance_state(target)
    for key in _time_columns(type(target)):
        value = state.dict.get(key)
        if isinstance(value, datetime) and value.tzinfo is None:
            attributes.set_committed_value(target, key, value.replace(tzinfo=UTC))


# On every table model, whichever query loaded it, so that JSON answers, pages and comparisons with aware times all
# see the same aware value on SQLite as on PostgreSQL.
event.listen(SQLModel, "load", _aware, propagate=True)
event.listen(SQLModel, "refresh", _aware, propagate=True)
