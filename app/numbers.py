"""The pages' numbers: every template and page model writes tonnes, rates, percentages and points through these."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from starlette.types import ASGIApp, Receive, Scope, Send

from flows.kernel.numbers import Number, Numbers, number_style, wan_threshold


class NumberStyle:
    """ASGI middleware: the app's 万吨 threshold for everything that formats a number while a request is served."""

    def __init__(self, app: ASGIApp, *, wan_threshold: Decimal) -> None:
        self.app = app
        self.wan_threshold = wan_threshold

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with wan_threshold(self.wan_threshold):
            await self.app(scope, receive, send)


def _of(context: Context) -> Numbers:
    return number_style(str(context.get("lang", "zh-CN")))


@pass_context
def tonnes(context: Context, value: Number | None, signed: bool = False) -> str:
    """Tonnes with their unit: 8,515.74 吨, 5,966.15 万吨, 59.66 Mt."""
    return _of(context).tonnes(value, signed=signed)


@pass_context
def count(context: Context, value: int | None) -> str:
    """A count of records: 1,234."""
    return _of(context).count(value)


@pass_context
def pct(context: Context, fraction: Number | None) -> str:
    """A rate as published: 87.3%."""
    return _of(context).rate(fraction)


@pass_context
def percent(context: Context, value: Number | None, signed: bool = False) -> str:
    """A value already in percent, to 0.1: +3.1%."""
    return _of(context).percent(value, signed=signed)


@pass_context
def points(context: Context, value: Number | None, signed: bool = True) -> str:
    """A difference of rates: +1.2 个百分点 / +1.2 pt."""
    return _of(context).points(value, signed=signed)


def threshold() -> str:
    """The threshold of this request, for app/static/numbers.js (<body data-wan-threshold>)."""
    return str(number_style("en").wan_threshold)


HELPERS: dict[str, Any] = {
    "wan_threshold": threshold,
    "tonnes": tonnes,
    "count": count,
    "pct": pct,
    "percent": percent,
    "points": points,
}


def install(env: Environment) -> None:
    """Offer the helpers as filters (`x | tonnes`) and as functions (`tonnes(x)`) to every template."""
    env.filters.update(HELPERS)
    env.globals.update(HELPERS)
