"""Numbers as a bureau writes them: tonnes (万吨 / kt, Mt above a threshold), counts, rates, percentages, points."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

DASH = "–"  # a figure that does not exist (no declaration, no rate): never shown as 0
MINUS = "\u2212"  # a true minus sign, as in print
DEFAULT_WAN_THRESHOLD = Decimal(10_000)
_HUNDREDTH = Decimal("0.01")
_TENTH = Decimal("0.1")
_WAN = Decimal(10_000)
_KT = Decimal(1_000)
_MT = Decimal(1_000_000)

Number = Decimal | float | int


def _exact(value: Number) -> Decimal:
    # From the shortest decimal that round-trips a float, so that 2.675 rounds to 2.68 as written, not 2.67.
    return value if isinstance(value, Decimal) else Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _signed(magnitude: str, negative: bool, signed: bool) -> str:
    if negative:
        return MINUS + magnitude
    return "+" + magnitude if signed else magnitude


def _in(value: Decimal, unit: Decimal) -> Decimal:
    return (abs(value) / unit).quantize(_HUNDREDTH, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Numbers:
    """One reader's number style: the language and the tonnage from which figures are written in larger units."""

    lang: str
    wan_threshold: Decimal = DEFAULT_WAN_THRESHOLD

    def tonnes(self, value: Number | None, *, signed: bool = False) -> str:
        """A weight with its unit, two decimals rounded half-up: 8,515.74 吨 / t; from the threshold on 5,966.15 万吨,
        or in English 12.35 kt and 59.66 Mt; a dash for none."""
        if value is None:
            return DASH
        exact = _exact(value)
        # The unit follows the figure as printed: 9,999.995 t prints as 10,000.00 t, so it is already 1.00 万吨.
        size = abs(exact).quantize(_HUNDREDTH, rounding=ROUND_HALF_UP)
        chinese = self.lang == "zh-CN"
        if size < self.wan_threshold:
            shown, unit = size, "吨" if chinese else "t"
        elif chinese:
            shown, unit = _in(exact, _WAN), "万吨"
        else:
            shown, unit = _in(exact, _KT), "kt"
            if shown >= _KT:
                shown, unit = _in(exact, _MT), "Mt"
        # A tiny negative that prints as zero is zero, with no sign either way.
        return f"{_signed(f'{shown:,.2f}', exact < 0 and shown != 0, signed and shown != 0)} {unit}"

    def count(self, value: int | None) -> str:
        """A count of records, thousands separated: 1,234."""
        return DASH if value is None else f"{value:,}"

    def rate(self, fraction: Number | None) -> str:
        """A rate (a fraction) in percent as published: truncated, never rounded up, to 0.1 pt: 87.3%."""
        if fraction is None:
            return DASH
        shown = (_exact(fraction) * 100).quantize(_TENTH, rounding=ROUND_DOWN)
        return f"{_signed(f'{abs(shown):.1f}', shown < 0, False)}%"

    def percent(self, value: Number | None, *, signed: bool = False) -> str:
        """A value already in percent (a share, a deviation), rounded half-up to 0.1: +3.1%."""
        if value is None:
            return DASH
        shown = _exact(value).quantize(_TENTH, rounding=ROUND_HALF_UP)
        return f"{_signed(f'{abs(shown):.1f}', shown < 0, signed and shown != 0)}%"

    def points(self, value: Number | None, *, signed: bool = True) -> str:
        """A difference of two rates in percentage points, rounded half-up to 0.1: +1.2 个百分点 / +1.2 pt."""
        if value is None:
            return DASH
        shown = _exact(value).quantize(_TENTH, rounding=ROUND_HALF_UP)
        text = _signed(f"{abs(shown):.1f}", shown < 0, signed and shown != 0)
        return f"{text} 个百分点" if self.lang == "zh-CN" else f"{text} pt"


# The threshold of the service answering now (CIRCUFLOW_WAN_T_THRESHOLD, set per request by app.numbers.NumberStyle),
# so that a figure written anywhere during a request, by a page or in a domain message, takes the same unit.
_threshold: ContextVar[Decimal] = ContextVar("wan_t_threshold", default=DEFAULT_WAN_THRESHOLD)


def number_style(lang: str) -> Numbers:
    """The number style in force now, in `lang`."""
    return Numbers(lang, _threshold.get())


@contextmanager
def wan_threshold(threshold: Decimal) -> Iterator[None]:
    """Write figures with this threshold while the block runs."""
    token = _threshold.set(threshold)
    try:
        yield
    finally:
        _threshold.reset(token)


@dataclass(frozen=True)
class TonnesParam:
    """A message parameter in tonnes: `{name_t:t}` in a catalogue writes it as the pages do; other specs as before."""

    value: Number
    lang: str

    def __format__(self, spec: str) -> str:
        return number_style(self.lang).tonnes(self.value) if spec == "t" else format(self.value, spec)
