"""Input bounds: the ceilings every channel holds values to, and the checks; each refusal names the field.

A value that no real record can hold is refused at the edge (JSON API, query and path parameters, forms, CSV and
XLSX imports) with InvalidInput naming the field (and the row of a file or list), before it can reach a column
whose type would refuse it with a server error (PostgreSQL's integer range, its refusal of NUL in text), an
arithmetic overflow, or a JSON answer that is not JSON (Infinity). The ceilings are data, documented here and in
the README ("Input bounds"); choose new ones here, never in a route.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Annotated, Any

from pydantic import AfterValidator, Field

from flows.kernel.clock import CST
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Message, Term, msg

# ---------------------------------------------------------------------------------------------------------------
# Ceilings

# Every id column is a PostgreSQL integer; a larger id would make the database refuse the query, not find nothing.
MAX_ID = 2**31 - 1
# Pages are offsets into a few million rows at most; past 2**31 an offset only overflows SQLite's integer binding.
MAX_OFFSET = 2**31 - 1
# The reporting years of every table (the ge/le of models' year columns): no record predates 2000 or lies past 2100.
YEAR_MIN, YEAR_MAX = 2000, 2100
# A time in a filter (since, until, from, to) may lie outside the record years ("everything since 1990"), but not at
# the calendar's ends, where converting it between time zones or adding a day overflows.
FILTER_YEAR_MIN, FILTER_YEAR_MAX = 2, 9998
# One manifest is one lot: the demo's largest consolidated lot is 23,570 t and a unit train of bulk waste carries
# about 4,000 t, so 100,000 t per manifest leaves room for any real lot and none for a typing slip of 1e308.
MAX_MANIFEST_T = 100_000.0
# A declaration is one enterprise's year of one category: Sichuan's largest is about 1.3e7 t, China's whole yearly
# industrial solid waste about 4e9 t; 1e9 t per figure is beyond any single enterprise.
MAX_DECLARED_T = 1e9
# One battery (pack, module or cell): a heavy truck's pack is 3-5 t, a containerised storage pack 30-40 t and
# 3-5 MWh; the demo's largest are 2.7 t and 318 kWh.
MAX_BATTERY_KG = 50_000.0
MAX_BATTERY_KWH = 10_000.0
# Free text: the longest text column (correction reasons, decision notes) holds 1,000 characters.
MAX_TEXT = 1000
# Columns of an imported sheet that are read: every import has fewer than 20; the rest of a 16,384-column sheet is
# never materialised (openpyxl would otherwise fill each row out to the sheet's declared width).
MAX_COLUMNS = 64
# Excel's own row limit: a sheet claiming more rows than a workbook can hold is not a spreadsheet.
MAX_SHEET_LINES = 1_048_576
# Anything in a JSON body, whatever its field: no quantity, id or count in this domain comes near 1e15 (the
# province's yearly tonnage in kg is about 1e12), and no value of a column is longer than MAX_TEXT; the generic
# string ceiling is ten times that, so that a field's own, tighter ceiling is the one a user reads about.
MAX_JSON_NUMBER = 1e15
MAX_JSON_STRING = 10 * MAX_TEXT
MAX_JSON_DEPTH = 32
# A query or path parameter that is text (a search, a code): longer than any name or code.
MAX_QUERY_TEXT = 200

MB = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    """What an imported file may be: bytes, expanded workbook size, rows, and the longest field (cell)."""

    max_bytes: int = 20 * MB
    max_expanded_bytes: int = 100 * MB
    max_rows: int = 200_000
    # Python's csv module refuses a longer field itself (csv.field_size_limit, a process-wide switch): it is also
    # the most this ceiling can be for a CSV. Each column's own length (a name, a reason) is checked besides.
    max_field_chars: int = 128 * 1024


DEFAULT_UPLOAD_LIMITS = UploadLimits()

# ---------------------------------------------------------------------------------------------------------------
# Text

_SURROGATE = re.compile("[\ud800-\udfff]")


def label(field: str) -> str:
    """A field's name as its reader knows it: the catalogue's label (`field.<name>`) of a plain name, else as given.

    A path into a JSON document (`attributes.mass_kg`) or a name no catalogue could hold is shown as it is.
    """
    return Term(f"field.{field}") if field.isidentifier() else field


def field_problem(field: str, problem: Message, *, row: int | None = None) -> InvalidInput:
    """InvalidInput naming the field, in the words `{field}: {problem}`."""
    return InvalidInput("kernel.field_problem", field=field, row=row, column=label(field), problem=problem)


def text_problem(value: str, max_length: int) -> Message | None:
    """Why a text cannot be stored (too long, a NUL character, a lone surrogate), or None."""
    if len(value) > max_length:
        return msg("kernel.text_too_long", max_length=max_length, length=len(value))
    if "\x00" in value:
        return msg("kernel.text_nul")
    # JSON's "\ud800" escape decodes to a half of a UTF-16 pair that no database or JSON answer can encode.
    if not value.isascii() and _SURROGATE.search(value):
        return msg("kernel.text_surrogate")
    return None


def check_text(value: str, *, field: str, max_length: int = MAX_TEXT, row: int | None = None) -> str:
    """The text, or InvalidInput naming the field."""
    problem = text_problem(value, max_length)
    if problem is not None:
        raise field_problem(field, problem, row=row)
    return value


def printable(value: object, limit: int = 200) -> str:
    """A value as text that any JSON answer can carry: lone surrogates escaped, NUL shown, and cut at `limit`."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


# ---------------------------------------------------------------------------------------------------------------
# Numbers and times


def not_finite(value: float) -> Message:
    """The problem of a number that is not finite (NaN, Infinity): shown as typed, since JSON cannot carry it."""
    return msg("kernel.not_finite", value=repr(value))


def quantity_problem(value: float, ceiling: float, unit: str | Term) -> Message | None:
    """Why a quantity cannot be stored (not finite, negative, above its ceiling), or None.

    `unit` is shown as given: a Term when it has words of its own ("t per manifest").
    """
    if not math.isfinite(value):
        return not_finite(value)
    if value < 0:
        return msg("kernel.below_zero", value=value)
    if value > ceiling:
        return msg("kernel.above_ceiling", ceiling=ceiling, unit=unit, value=value)
    return None


def check_quantity(value: float, *, field: str, ceiling: float, unit: str, row: int | None = None) -> float:
    """The quantity, or InvalidInput naming the field."""
    problem = quantity_problem(value, ceiling, unit)
    if problem is not None:
        raise field_problem(field, problem, row=row)
    return value


def year_problem(year: int) -> Message | None:
    """Why a year lies outside the years any record may have, or None."""
    if not YEAR_MIN <= year <= YEAR_MAX:
        return msg("kernel.year_outside", year=year, low=YEAR_MIN, high=YEAR_MAX)
    return None


def filter_year_problem(year: int) -> Message | None:
    """Why a year cannot be used in a filter (at the calendar's ends), or None."""
    if not FILTER_YEAR_MIN <= year <= FILTER_YEAR_MAX:
        return msg("kernel.year_outside", year=year, low=FILTER_YEAR_MIN, high=FILTER_YEAR_MAX)
    return None


def moment_problem(moment: datetime) -> Message | None:
    """Why a date-time lies outside the years any record may have (in Beijing time, as years are reported)."""
    problem = year_problem(moment.year)
    if problem is None and moment.tzinfo is not None:
        problem = year_problem(moment.astimezone(CST).year)
    return problem


# ---------------------------------------------------------------------------------------------------------------
# Field types for the submitted models (the API's bodies and the parsers behind every channel)


def _text(max_length: int) -> AfterValidator:
    def check(value: str) -> str:
        problem = text_problem(value, max_length)
        if problem is not None:
            # Pydantic reports a ValueError's text: the English message (the routes' bodies answer in English).
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _moment(value: datetime) -> datetime:
    problem = moment_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Year = Annotated[int, Field(ge=YEAR_MIN, le=YEAR_MAX)]
Moment = Annotated[datetime, AfterValidator(_moment)]
# Codes as typed (credit codes, battery codes, category and region codes, VINs): spaces and hyphens may come along.
Code = Annotated[str, Field(max_length=64), _text(64)]
ShortText = Annotated[str, Field(max_length=64), _text(64)]  # usernames, token names
Name = Annotated[str, Field(max_length=128), _text(128)]  # display names, enterprise names
Key = Annotated[str, Field(max_length=128), _text(128)]  # idempotency keys (the column's length)
Reason = Annotated[str, Field(max_length=512), _text(512)]  # rejection and cancel reasons (the columns' length)
Text = Annotated[str, Field(max_length=MAX_TEXT), _text(MAX_TEXT)]  # correction reasons, notes, attributes
Password = Annotated[str, Field(max_length=256), _text(256)]  # hashing a longer one would only cost time

# ---------------------------------------------------------------------------------------------------------------
# Anything in a JSON body


@dataclass(frozen=True)
class JsonProblem:
    """Where in a JSON document a value no record can hold sits, and why."""

    field: str
    row: int | None
    reason: Message


def json_problem(value: Any) -> JsonProblem | None:
    """The first value of a parsed JSON document that no record can hold, or None.

    Python's json module reads NaN, Infinity and 1e309 (as inf), integers of any length, lone surrogates ("\\ud800")
    and NUL ("\\u0000"), and nesting deep enough to exhaust the stack: none of them can be stored or answered. Fields
    named *_id must hold an id (1..MAX_ID) and fields named *_at a time within the record years, at any depth (a
    correction's changes, an event's times). In a list of objects (a bulk write) the row is the object's 1-based
    position and the field its key.
    """
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for position, item in enumerate(value, start=1):
            found = _walk(item, "", 1)
            if found is not None:
                return JsonProblem(found[0], position, found[1])
        return None
    found = _walk(value, "", 0)
    return JsonProblem(found[0] or "body", None, found[1]) if found is not None else None


def _walk(value: Any, path: str, depth: int) -> tuple[str, Message] | None:
    if depth > MAX_JSON_DEPTH:
        return path, msg("kernel.nested_too_deep", depth=MAX_JSON_DEPTH)
    if isinstance(value, str):
        problem = text_problem(value, MAX_JSON_STRING)
        return (path, problem) if problem else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return path, not_finite(value)
        if abs(value) > MAX_JSON_NUMBER:
            return path, msg("kernel.beyond", limit=MAX_JSON_NUMBER)
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            problem = text_problem(str(key), MAX_QUERY_TEXT)
            if problem is not None:
                return printable(name, 64), msg("kernel.bad_key", problem=problem)
            problem = _named_problem(str(key), item)
            if problem is not None:
                return name, problem
            found = _walk(item, name, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _walk(item, f"{path}.{index}" if path else str(index), depth + 1)
            if found is not None:
                return found
    return None


def _named_problem(key: str, value: Any) -> Message | None:
    """Fields named by the house's convention, wherever they sit: *_id holds an id, *_at a time of a record."""
    if key.endswith("_id") and isinstance(value, int) and not isinstance(value, bool):
        # The value as text: an integer of any length is valid JSON, but not every client reads it back exactly.
        return None if 1 <= value <= MAX_ID else msg("kernel.id_outside", high=MAX_ID, value=str(value))
    if key.endswith("_at") and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None  # not a time at all: the field's own parser says so
        return moment_problem(moment)
    return None


def check_json(value: Any) -> None:
    """Refuse a parsed JSON document holding a value no record can hold, naming its field (and row)."""
    found = json_problem(value)
    if found is not None:
        raise field_problem(found.field, found.reason, row=found.row)


# ---------------------------------------------------------------------------------------------------------------
# Files


def check_size(size: int, limits: UploadLimits) -> None:
    """Refuse a file larger than the upload limit."""
    if size > limits.max_bytes:
        raise field_problem("file", msg("kernel.file_too_large", size=size / MB, limit=limits.max_bytes / MB))


def check_workbook(stream: IO[bytes], limits: UploadLimits) -> None:
    """Refuse an XLSX whose parts expand past the limit, before any part is decompressed (a zip bomb).

    The sizes checked are those the archive declares; Python's zipfile stops each part at its declared size (and
    then fails its checksum), so a part that lies about its size cannot expand past it either.
    """
    start = stream.tell()
    try:
        with zipfile.ZipFile(stream) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise field_problem("file", msg("kernel.not_a_workbook", error=printable(exc))) from None
    finally:
        stream.seek(start)
    expanded = sum(part.file_size for part in parts)
    if expanded > limits.max_expanded_bytes:
        problem = msg("kernel.workbook_too_large", size=expanded / MB, limit=limits.max_expanded_bytes / MB)
        raise field_problem("file", problem)


def overlong_field(record: str, max_chars: int, delimiter: str = ",", quote: str = '"') -> int | None:
    """The 0-based position of the first field of a CSV record longer than max_chars, or None.

    csv.reader only says that some field was too long; this reads the record's text again to say which.
    """
    record = record.rstrip("\r\n")
    position = start = index = 0
    while True:
        quoted = record.startswith(quote, index)
        if quoted:
            # A quoted field ends at a quote that is not doubled; delimiters inside it are text.
            index += 1
            while True:
                found = record.find(quote, index)
                if found < 0:
                    index = len(record)
                    break
                if record.startswith(quote, found + 1):
                    index = found + 2
                    continue
                index = found + 1
                break
        end = record.find(delimiter, index)
        end = len(record) if end < 0 else end
        length = end - start
        if quoted:
            length -= 2 + record.count(quote * 2, start + 1, index - 1)
        if length > max_chars:
            return position
        if end >= len(record):
            return None
        position += 1
        start = index = end + 1
