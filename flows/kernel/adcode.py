"""Region codes (GB/T 2260): how six digits nest province > prefecture > county; the one place that knows it."""

from __future__ import annotations

import re

_ADCODE = re.compile(r"[1-9][0-9]{5}")


def is_adcode(text: str) -> bool:
    """Six digits, not starting with 0."""
    return bool(_ADCODE.fullmatch(text))


def level_of(adcode: str) -> str:
    """'province' (510000), 'prefecture' (510400) or 'county' (510402)."""
    if adcode.endswith("0000"):
        return "province"
    if adcode.endswith("00"):
        return "prefecture"
    return "county"


def region_prefix(adcode: str) -> str:
    """The digits everything inside a region shares: 510000 -> '51', 510400 -> '5104', 510402 -> '510402'."""
    match level_of(adcode):
        case "province":
            return adcode[:2]
        case "prefecture":
            return adcode[:4]
    return adcode


def province_of(adcode: str) -> str:
    """The province a region lies in (itself for a province)."""
    return adcode[:2] + "0000"


def prefecture_of(adcode: str) -> str:
    """The prefecture a county lies in (itself for a prefecture; a province has none and gives itself)."""
    return adcode if level_of(adcode) == "province" else adcode[:4] + "00"


def parent_of(adcode: str) -> str | None:
    """The region one level up, or None for a province."""
    match level_of(adcode):
        case "province":
            return None
        case "prefecture":
            return province_of(adcode)
    return prefecture_of(adcode)


def lineage(adcode: str) -> list[str]:
    """The region and every region it lies in, nearest first: 510402 -> [510402, 510400, 510000]."""
    chain = [adcode]
    while (up := parent_of(chain[-1])) is not None:
        chain.append(up)
    return chain


def within(adcode: str, scope: str) -> bool:
    """Whether a region lies in (or is) another."""
    return adcode.startswith(region_prefix(scope))
