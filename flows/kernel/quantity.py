"""Exact quantities: weights as whole kilograms, numbers read strictly, rates as exact fractions truncated exactly."""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator

from flows.kernel.messages import Message, msg
from models.quantity import plain_decimal

KG_PER_T = 1000
UNITS: dict[str, int] = {"t": KG_PER_T, "kg": 1}

# Digits with an optional decimal part; thousands separators only as commas between groups of exactly three digits
# ("12,500.5" yes; "1,5" and "1,2345" no: in Chinese and European habits alike a comma there may mean a decimal point).
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|[+-]?\.[0-9]+")
# Binary noise a spreadsheet leaves on a computed cell (0.1 + 0.2 = 0.30000000000000004) is below this many places.
_SPREADSHEET_PLACES = 9


class QuantityError(ValueError):
    """A number that cannot be read, or a weight more precise than a kilogram; carries the message to show."""

    def __init__(self, message: Message) -> None:
        # The message itself as the argument: a pydantic validator passes it on, and it renders in either language.
        super().__init__(message)
        self.problem = message


def read_number(value: object) -> Decimal | None:
    """A finite number from a typed value or a text, exactly; None when blank."""
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise QuantityError(msg("kernel.quantity.not_a_number", value=str(value)))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(msg("kernel.quantity.not_finite", value=repr(value)))
        # repr is the shortest text that reads back as the same double: what the person typed into the cell.
        return plain_decimal(Decimal(repr(round(value, _SPREADSHEET_PLACES))))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise QuantityError(msg("kernel.quantity.not_finite", value=str(value)))
        return value
    # Full-width digits and punctuation (an input method left in full-width mode) read as their ASCII forms.
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not text:
        return None
    if not _NUMBER.fullmatch(text):
        if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise QuantityError(msg("kernel.quantity.not_finite", value=text[:40]))
        raise QuantityError(msg("kernel.quantity.not_a_number", value=text[:40]))
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        raise QuantityError(msg("kernel.quantity.not_a_number", value=text[:40])) from None


def to_kg(amount: Decimal, unit: str = "t") -> int:
    """Whole kilograms of an amount in t or kg; an amount finer than a kilogram is refused, never rounded."""
    kg = amount * UNITS[unit]
    if kg != kg.to_integral_value():
        raise QuantityError(msg("kernel.quantity.finer_than_kg", value=str(amount), unit=unit))
    return int(kg)


def exact_tonnes(value: object) -> Decimal:
    """A weight in tonnes as typed or sent (text, JSON number, spreadsheet cell): exact, to the kilogram."""
    amount = read_number(value)
    if amount is None:
        raise QuantityError(msg("kernel.quantity.blank"))
    return tonnes(to_kg(amount, "t"))


def exact_kg_as_tonnes(value: object) -> Decimal:
    """A weight in kilograms as typed or sent, as exact tonnes."""
    amount = read_number(value)
    if amount is None:
        raise QuantityError(msg("kernel.quantity.blank"))
    return tonnes(to_kg(amount, "kg"))


# A weight field of an input model: read strictly and exactly, then bounded by the field's own ge/le.
ExactTonnes = Annotated[Decimal, BeforeValidator(exact_tonnes)]


def tonnes(kg: int) -> Decimal:
    """Kilograms as exact tonnes (three decimal places at most)."""
    return plain_decimal(Decimal(kg).scaleb(-3))


def kg_of_tonnes(value: Decimal | float | int) -> int:
    """Whole kilograms of a weight already in tonnes (a stored or summed figure)."""
    amount = value if isinstance(value, Decimal) else read_number(value)
    assert amount is not None
    return to_kg(amount, "t")


def rate(utilised_kg: int, generated_kg: int, utilised_prior_kg: int) -> Fraction | None:
    """utilised / (generated + utilised_prior) exactly, or None when there is nothing to divide by."""
    base = generated_kg + utilised_prior_kg
    return Fraction(utilised_kg, base) if base > 0 else None


def truncated_percent(fraction: Fraction, places: int = 1) -> Decimal:
    """A fraction as a percentage truncated (not rounded) to `places` decimals, exactly: 7803.9/10005.0 -> 78.0."""
    scale = 10**places
    whole = math.floor(fraction * 100 * scale)
    result: Decimal = (Decimal(whole) / scale).quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR)
    return result


def exact_fraction(value: float | Decimal | Fraction) -> Fraction:
    """A stored target or factor (0.78) as the exact fraction its decimal text says, not its binary neighbour."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(Decimal(repr(value)))
    return Fraction(value)


def meets(rate_value: Fraction, target: float | Decimal | Fraction) -> bool:
    """Whether a rate reaches its target; a rate exactly on target meets it."""
    return rate_value >= exact_fraction(target)
