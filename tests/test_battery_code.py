"""GB/T 34014 battery codes: the published examples, round trips, and errors that name their field."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from flows.battery.code import (
    BATTERY_TYPES,
    DAYS,
    LETTERS_21,
    YEARS,
    encode_battery_code,
    parse_battery_code,
)
from flows.kernel.errors import InvalidInput
from models.enums import BatteryLevel


@pytest.mark.parametrize(
    ("raw", "level", "produced", "maker", "serial"),
    [
        ("X12CCPM27KLPCLE662382320", BatteryLevel.cell, date(2024, 6, 6), "X12", "2382320"),
        ("B54MCPM27KLPCLE6A7519857", BatteryLevel.module, date(2024, 6, 10), "B54", "7519857"),
        ("4A6PCPM27KLPCLE742946319", BatteryLevel.pack, date(2024, 7, 4), "4A6", "2946319"),
    ],
)
def test_catena_x_examples_decode(raw: str, level: BatteryLevel, produced: date, maker: str, serial: str) -> None:
    decoded = parse_battery_code(raw)
    assert decoded.code == raw
    assert decoded.level is level
    assert decoded.production_date == produced
    assert decoded.maker == maker
    assert decoded.chemistry == "C"
    assert decoded.spec == "PM"
    assert decoded.trace == "27KLPCL"
    assert decoded.serial == serial


def test_printed_forms_are_normalised() -> None:
    assert parse_battery_code("  x12c-cpm27 klpcl-e66 2382320\n").code == "X12CCPM27KLPCLE662382320"


def test_round_trip_over_many_dates_and_fields() -> None:
    rng = random.Random(7)
    day = date(2011, 1, 1)
    while day <= date(2040, 12, 31):
        level = rng.choice(list(BatteryLevel))
        chemistry = rng.choice(list(BATTERY_TYPES))
        serial = rng.randrange(10_000_000)
        code = encode_battery_code("0K7", level, chemistry, "A1", "TR00042", day, serial)
        assert len(code) == 24
        decoded = parse_battery_code(code)
        assert (decoded.level, decoded.chemistry, decoded.production_date, int(decoded.serial)) == (
            level,
            chemistry,
            day,
            serial,
        )
        day += timedelta(days=rng.randint(1, 9))


def test_day_18_and_year_2028_skip_the_letters_i_o_q_u() -> None:
    # Linear decoders read J as day 19 and year 2029; the skipped I makes it 18 and 2028.
    code = encode_battery_code("0K7", BatteryLevel.pack, "B", "A1", "TR00042", date(2028, 3, 18), 1)
    assert code[14:17] == "J3J"
    assert parse_battery_code(code).production_date == date(2028, 3, 18)
    assert DAYS["Y"] == 30 and DAYS["0"] == 31 and YEARS["Y"] == 2040 and YEARS["G"] == 2026
    assert len(LETTERS_21) == 21 and not set("IOQUZ") & set(LETTERS_21)


def test_battery_types_b_and_e() -> None:
    base = "X12CCPM27KLPCLE662382320"
    assert parse_battery_code(base[:4] + "B" + base[5:]).chemistry_name == "lithium iron phosphate"
    assert parse_battery_code(base[:4] + "E" + base[5:]).chemistry_name.startswith("ternary")


def _field_of(raw: str) -> str | None:
    with pytest.raises(InvalidInput) as info:
        parse_battery_code(raw)
    assert info.value.message
    return info.value.field


@pytest.mark.parametrize(
    ("raw", "field", "why"),
    [
        ("X12CCPM27KLPCLE66238232", "code", "23 characters"),
        ("X12CCPM27KLPCLE6623823200", "code", "25 characters"),
        ("X12#CPM27KLPCLE662382320", "product_type", "position 4"),
        ("X1.CCPM27KLPCLE662382320", "manufacturer_code", "position 3"),
        ("X12CCPM27KLPCLE66238232*", "serial", "position 24"),
        ("X12XCPM27KLPCLE662382320", "product_type", "not one of P"),
        ("X12CXPM27KLPCLE662382320", "battery_type", "not one of"),
        ("X12CCPM27KLPCLI662382320", "production_year", "not a year"),
        ("X12CCPM27KLPCL0662382320", "production_year", "not a year"),
        ("X12CCPM27KLPCLED62382320", "production_month", "not a month"),
        ("X12CCPM27KLPCLE6Z2382320", "production_day", "not a day"),
        ("X12CCPM27KLPCLE2Y2382320", "production_day", "day 30"),  # 30 February
        ("X12CCPM27KLPCLE402382320", "production_day", "day 31"),  # a 0 (31st) in April
        ("X12CCPM27KLPCLD2X2382320", "production_day", "day 29"),  # 29 February 2023
    ],
)
def test_errors_name_the_field_and_why(raw: str, field: str, why: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_battery_code(raw)
    assert info.value.field == field
    assert why in info.value.message


def test_leap_day_is_accepted() -> None:
    assert parse_battery_code("X12CCPM27KLPCLE2X2382320").production_date == date(2024, 2, 29)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"maker": "00"}, "manufacturer_code"),
        ({"chemistry": "Q"}, "battery_type"),
        ({"spec": "A"}, "specification_code"),
        ({"trace": "TR0004!"}, "traceability"),
        ({"produced": date(2010, 5, 1)}, "production_year"),
        ({"serial": 10_000_000}, "serial"),
    ],
)
def test_encode_refuses_bad_fields(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "maker": "0K7",
        "level": BatteryLevel.module,
        "chemistry": "E",
        "spec": "A1",
        "trace": "TR00042",
        "produced": date(2022, 1, 31),
        "serial": 42,
    }
    args.update(kwargs)
    with pytest.raises(InvalidInput) as info:
        encode_battery_code(**args)  # type: ignore[arg-type]
    assert info.value.field == field
