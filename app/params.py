"""Bounded parameter types for every route, and the check of JSON bodies (flows/kernel/bounds.py holds the ceilings)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import AfterValidator, PlainValidator, TypeAdapter

from flows.kernel import bounds

# Path ids: every id column is a PostgreSQL integer, so a larger id is refused here rather than by the database.
Id = Annotated[int, Path(ge=1, le=bounds.MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=bounds.MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=bounds.MAX_OFFSET)]
Year = Annotated[int, Query(ge=bounds.YEAR_MIN, le=bounds.YEAR_MAX)]
YearQuery = Annotated[int | None, Query(ge=bounds.YEAR_MIN, le=bounds.YEAR_MAX)]
YearPath = Annotated[int, Path(ge=bounds.YEAR_MIN, le=bounds.YEAR_MAX)]
# Text in a query (a search, a code, a filter) or a path (a battery code, a region code, a username).
TextQuery = Annotated[str | None, Query(max_length=bounds.MAX_QUERY_TEXT)]
CodePath = Annotated[str, Path(max_length=bounds.MAX_QUERY_TEXT)]


def _moment(value: datetime | None) -> datetime | None:
    problem = bounds.filter_year_problem(value.year) if value is not None else None
    if problem is not None:
        raise ValueError(str(problem))  # pydantic reports the text: the English message
    return value


def _day(value: date | None) -> date | None:
    problem = bounds.filter_year_problem(value.year) if value is not None else None
    if problem is not None:
        raise ValueError(str(problem))  # pydantic reports the text: the English message
    return value


# Times and days in a filter: any year but the calendar's ends, where converting between zones overflows.
MomentQuery = Annotated[datetime | None, Query(), AfterValidator(_moment)]
DayQuery = Annotated[date | None, AfterValidator(_day)]


def described_by(model: Any, accepted: Any = dict[str, Any]) -> PlainValidator:
    """A body the domain's own parser validates, described in the OpenAPI schema by `model`.

    The route receives the JSON as FastAPI read it (`accepted`, checked as before) and hands it to the one parser
    every channel shares (API, form, file), so that a refusal reads the same everywhere and lists every bad row of
    a bulk write; the model gives clients every field, type and bound that parser holds to.
    """
    return PlainValidator(TypeAdapter(accepted).validate_python, json_schema_input_type=model)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def checked_json(request: Request) -> None:
    """Refuse a JSON body holding a value no record can hold (NaN, Infinity, NUL, a lone surrogate, ...).

    FastAPI has read and parsed the body before dependencies run (request.json() is cached), so this costs one walk.
    """
    if request.method not in _BODY_METHODS:
        return
    content_type = request.headers.get("content-type", "")
    if content_type and "json" not in content_type.split(";", 1)[0]:
        return
    if not await request.body():
        return
    try:
        data = await request.json()
    except (ValueError, RecursionError):
        return  # a body that is not JSON is the route's to refuse, as FastAPI does
    bounds.check_json(data)
