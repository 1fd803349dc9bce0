"""GB/T 34014-2017 traction-battery codes: the 24-character layout, encoding and parsing.

The layout and every table are data at the top of this module, so that a correction is one edit. What is taken
from practice (public implementations, real codes, the Catena-X examples) rather than from the standard's text is
marked as such beside the table; see /work/shared/BATTERY.md.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Term
from models.enums import BatteryLevel

CODE_LENGTH = 24
CODE_CHARSET = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# (field name, first position (1-based), length): the 24 characters in order.
LAYOUT: tuple[tuple[str, int, int], ...] = (
    ("manufacturer_code", 1, 3),
    ("product_type", 4, 1),
    ("battery_type", 5, 1),
    ("specification_code", 6, 2),
    ("traceability", 8, 7),
    ("production_year", 15, 1),
    ("production_month", 16, 1),
    ("production_day", 17, 1),
    ("serial", 18, 7),
)

PRODUCT_TYPES: dict[str, BatteryLevel] = {"P": BatteryLevel.pack, "M": BatteryLevel.module, "C": BatteryLevel.cell}

# B and E are certain. A, C, D, F, G are the names public implementations give; no public source settles them.
BATTERY_TYPES: dict[str, str] = {
    "A": "nickel-metal hydride",
    "B": "lithium iron phosphate",
    "C": "lithium manganese oxide",
    "D": "lithium cobalt oxide",
    "E": "ternary (NCM/NCA)",
    "F": "supercapacitor",
    "G": "lithium titanate",
    "Z": "other",
}
BATTERY_TYPES_CERTAIN = frozenset("BEZ")

# The 21 letters used after the digits run out: no I, O, Q, U, Z (they read like 1, 0, 0, V, 2).
LETTERS_21 = "ABCDEFGHJKLMNPRSTVWXY"

YEARS: dict[str, int] = {str(d): 2010 + d for d in range(1, 10)} | {ch: 2020 + i for i, ch in enumerate(LETTERS_21)}
MONTHS: dict[str, int] = {str(d): d for d in range(1, 10)} | {"A": 10, "B": 11, "C": 12}
# Days 1-9 are digits, 10-30 the 21 letters, and the 31st is written 0.
DAYS: dict[str, int] = {str(d): d for d in range(1, 10)} | {ch: 10 + i for i, ch in enumerate(LETTERS_21)} | {"0": 31}

# Serials are digits in every real code seen, but the standard's text does not exclude letters: accept both.
SERIAL_CHARSET = CODE_CHARSET
SERIAL_MAX = 9_999_999

_SEPARATORS = re.compile(r"[\s\-_]+")
_YEAR_LETTER = {v: k for k, v in YEARS.items()}
_MONTH_LETTER = {v: k for k, v in MONTHS.items()}
_DAY_LETTER = {v: k for k, v in DAYS.items()}
_LEVEL_LETTER = {v: k for k, v in PRODUCT_TYPES.items()}
_FIELDS = {name: (start, length) for name, start, length in LAYOUT}


@dataclass(frozen=True)
class DecodedCode:
    """The fields of one battery code, decoded."""

    code: str
    maker: str
    level: BatteryLevel
    chemistry: str
    chemistry_name: str
    spec: str
    trace: str
    production_date: date
    serial: str


def normalise_battery_code(raw: str) -> str:
    """Strip, drop spaces, hyphens and underscores (plates print codes in halves), and upper-case."""
    return _SEPARATORS.sub("", raw.strip()).upper()


def _split(code: str) -> dict[str, str]:
    return {name: code[start - 1 : start - 1 + length] for name, start, length in LAYOUT}


def _check_chars(field: str, value: str, start: int) -> None:
    allowed = SERIAL_CHARSET if field == "serial" else CODE_CHARSET
    for pos, ch in enumerate(value, start=start):
        if ch not in allowed:
            raise InvalidInput("battery.code_char", field=field, column=Term(f"field.{field}"), char=ch, position=pos)


def parse_battery_code(raw: str) -> DecodedCode:
    """Decode a GB/T 34014 code, raising InvalidInput that names the wrong field and why."""
    code = normalise_battery_code(raw)
    if len(code) != CODE_LENGTH:
        raise InvalidInput(
            "battery.code_length", field="code", column=Term("field.code"), length=len(code), expected=CODE_LENGTH
        )
    parts = _split(code)
    for name, start, _length in LAYOUT:
        _check_chars(name, parts[name], start)

    level = PRODUCT_TYPES.get(parts["product_type"])
    if level is None:
        raise InvalidInput(
            "battery.code_product_type",
            field="product_type",
            column=Term("field.product_type"),
            value=parts["product_type"],
            position=_FIELDS["product_type"][0],
        )
    chemistry = parts["battery_type"]
    if chemistry not in BATTERY_TYPES:
        raise InvalidInput(
            "battery.code_battery_type",
            field="battery_type",
            column=Term("field.battery_type"),
            value=chemistry,
            position=_FIELDS["battery_type"][0],
            allowed=", ".join(BATTERY_TYPES),
        )
    year = YEARS.get(parts["production_year"])
    if year is None:
        raise InvalidInput(
            "battery.code_year",
            field="production_year",
            column=Term("field.production_year"),
            value=parts["production_year"],
            letters=LETTERS_21,
        )
    month = MONTHS.get(parts["production_month"])
    if month is None:
        raise InvalidInput(
            "battery.code_month",
            field="production_month",
            column=Term("field.production_month"),
            value=parts["production_month"],
        )
    day = DAYS.get(parts["production_day"])
    if day is None:
        raise InvalidInput(
            "battery.code_day",
            field="production_day",
            column=Term("field.production_day"),
            value=parts["production_day"],
            letters=LETTERS_21,
        )
    last = calendar.monthrange(year, month)[1]
    if day > last:
        raise InvalidInput(
            "battery.code_no_such_day",
            field="production_day",
            column=Term("field.production_day"),
            day=day,
            char=parts["production_day"],
            year=year,
            month=month,
            last=last,
        )
    return DecodedCode(
        code=code,
        maker=parts["manufacturer_code"],
        level=level,
        chemistry=chemistry,
        chemistry_name=BATTERY_TYPES[chemistry],
        spec=parts["specification_code"],
        trace=parts["traceability"],
        production_date=date(year, month, day),
        serial=parts["serial"],
    )


def _fixed(field: str, value: str) -> str:
    value = value.strip().upper()
    start, width = _FIELDS[field]
    if len(value) != width:
        raise InvalidInput(
            "battery.code_field_width",
            field=field,
            column=Term(f"field.{field}"),
            value=value,
            length=len(value),
            width=width,
        )
    _check_chars(field, value, start)
    return value


def encode_battery_code(
    maker: str, level: BatteryLevel, chemistry: str, spec: str, trace: str, produced: date, serial: int
) -> str:
    """Build a 24-character GB/T 34014 code from its fields; the inverse of parse_battery_code."""
    chemistry = chemistry.strip().upper()
    if chemistry not in BATTERY_TYPES:
        raise InvalidInput(
            "battery.code_battery_type_unknown",
            field="battery_type",
            column=Term("field.battery_type"),
            value=chemistry,
            allowed=", ".join(BATTERY_TYPES),
        )
    if produced.year not in _YEAR_LETTER:
        raise InvalidInput(
            "battery.code_year_range", field="production_year", column=Term("field.production_year"), year=produced.year
        )
    if not 0 <= serial <= SERIAL_MAX:
        raise InvalidInput(
            "battery.code_serial_range", field="serial", column=Term("field.serial"), serial=serial, maximum=SERIAL_MAX
        )
    return "".join(
        (
            _fixed("manufacturer_code", maker),
            _LEVEL_LETTER[BatteryLevel(level)],
            chemistry,
            _fixed("specification_code", spec),
            _fixed("traceability", trace),
            _YEAR_LETTER[produced.year],
            _MONTH_LETTER[produced.month],
            _DAY_LETTER[produced.day],
            f"{serial:07d}",
        )
    )
