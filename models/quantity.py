"""Weights stored exactly: whole kilograms in a BIGINT column, exact Decimal tonnes in Python (three places)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import PlainSerializer
from sqlalchemy import BigInteger, Column, Float, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

KG_PER_T = 1000


def kg_to_tonnes(kg: int | Decimal | float) -> Decimal:
    """Kilograms from the database (a column, a SUM, or arithmetic on them such as a tolerance) as tonnes."""
    # Whole kilograms (every stored weight and every sum of them) come back exact; a product such as
    # "generated x 5%" is a tolerance, not a weight, and comes back from its shortest decimal text.
    value = Decimal(repr(kg)) if isinstance(kg, float) else Decimal(kg)
    return plain_decimal(value.scaleb(-3))


def plain_decimal(value: Decimal) -> Decimal:
    """Without trailing zeros and never in exponent form: 100 t prints as 100, not 1E+2."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def as_tonnes(value: Decimal | int | float | str) -> Decimal:
    """A weight in tonnes as an exact Decimal of whole kilograms (a float by its shortest decimal text)."""
    return kg_to_tonnes(tonnes_to_kg(Decimal(value) if isinstance(value, str) else value))


def tonnes_to_kg(tonnes: Decimal | int | float) -> int:
    """Exact tonnes as whole kilograms; a value finer than a kilogram is a programming error here (the edge refuses)."""
    amount = tonnes if isinstance(tonnes, Decimal) else Decimal(repr(tonnes) if isinstance(tonnes, float) else tonnes)
    kg = amount * KG_PER_T
    if kg != kg.to_integral_value():
        raise ValueError(f"{tonnes} t is finer than a kilogram")
    return int(kg)


class TonnesKg(TypeDecorator[Decimal]):
    """A weight in tonnes, stored as whole kilograms: sums in SQL are integer sums, exact on every database."""

    impl = BigInteger
    cache_ok = True

    class Comparator(TypeDecorator.Comparator):  # type: ignore[type-arg]
        """Weights added to or taken from weights stay weights (read back as tonnes); a weight times a factor is a
        weight too (5% of the generated tonnes); a weight divided by a weight is a plain ratio."""

        def _adapt_expression(self, op: Any, other_comparator: Any) -> Any:
            other = other_comparator.type
            if op in (operators.add, operators.sub) and isinstance(other, (TonnesKg, Integer)):
                return op, self.type
            if op is operators.mul and not isinstance(other, TonnesKg):
                return op, self.type
            if op is operators.truediv and isinstance(other, TonnesKg):
                return op, Float()
            return super()._adapt_expression(op, other_comparator)

    comparator_factory = Comparator

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        """Tonnes in, kilograms to the database."""
        if value is None:
            return None
        return tonnes_to_kg(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Kilograms (or a SUM of them) from the database, tonnes out."""
        if value is None:
            return None
        return kg_to_tonnes(value)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        """A number beside a weight: tonnes to compare, add or subtract (so kilograms in SQL); a plain factor to
        multiply or divide by (5% of a weight is not 0.05 t)."""
        if op in (operators.mul, operators.truediv, operators.floordiv, operators.mod):
            return Float()
        return self


def _json_number(value: Decimal) -> float | int:
    # JSON has one number type; a value of at most 15 significant digits reads back from a double exactly as written.
    return int(value) if value == value.to_integral_value() else float(value)


# A weight in an API model: exact in Python, a plain JSON number on the wire.
Tonnes = Annotated[Decimal, PlainSerializer(_json_number, return_type=float, when_used="json")]


def tonnes_column(name: str, *, null: bool = False) -> Column[Decimal]:
    """The column of a weight `<x>_t`: stored as `<x>_kg`, whole kilograms, addressed in code by its tonnes name."""
    stored = name.removesuffix("_t") + "_kg"
    return Column(stored, TonnesKg(), key=name, nullable=null)


class ExactWeights:
    """A table model whose weight columns hold exact Decimal tonnes from the moment they are assigned."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        # Whatever a writer assigns (a float from JSON, an int), the object holds what the database will hold.
        if (
            value is not None
            and name.endswith("_t")
            and isinstance(value, (float, int))
            and not isinstance(value, bool)
        ):
            value = as_tonnes(value)
        super().__setattr__(name, value)


def json_default(value: Any) -> Any:
    """For json.dumps: a Decimal weight as a plain JSON number, exact as its decimal text."""
    if isinstance(value, Decimal):
        return _json_number(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
