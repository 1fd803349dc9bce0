"""The reporting years a reader has data for, and the one a page opens on when none is asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from flows.kernel.principal import Principal
from flows.pages.dashboard import declared_years
from flows.waste.movements import flow_years


@dataclass(frozen=True)
class DataYears:
    """Years with declarations or received batches in the reader's scope (newest first), and the default one."""

    years: list[int]
    default: int | None

    def pick(self, asked: int | None, remembered: int | None, fallback: int) -> int:
        """The URL's year if asked; else the remembered one if it has data here; else the default."""
        return choose(self.years, asked, remembered, self.default if self.default is not None else fallback)


def choose(years: Sequence[int], asked: int | None, remembered: int | None, default: int) -> int:
    """A page's year: asked in the URL wins; a remembered year counts only where it has data; else the default."""
    if asked is not None:
        return asked
    if remembered is not None and remembered in years:
        return remembered
    return default


def data_years(*, session: Session, principal: Principal) -> DataYears:
    """The years the reader may pick: declared or with received batches in scope; by default the latest declared.

    A year counts as the default only when its declarations are in: a few batches of a new year (the first test
    shipments of January) do not make an empty year the one every page opens on.
    """
    declared = declared_years(session=session, principal=principal)
    flowed = flow_years(session=session, principal=principal)
    years = sorted({*declared, *flowed}, reverse=True)
    default = declared[0] if declared else (flowed[0] if flowed else None)
    return DataYears(years=years, default=default)
