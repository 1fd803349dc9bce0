"""Region codes nest by digits: the rules in flows/kernel/adcode.py."""

from __future__ import annotations

import pytest

from flows.kernel.adcode import (
    is_adcode,
    level_of,
    lineage,
    parent_of,
    prefecture_of,
    province_of,
    region_prefix,
    within,
)


@pytest.mark.parametrize(
    ("code", "level", "prefix", "parent", "chain"),
    [
        ("510000", "province", "51", None, ["510000"]),
        ("510400", "prefecture", "5104", "510000", ["510400", "510000"]),
        ("510402", "county", "510402", "510400", ["510402", "510400", "510000"]),
    ],
)
def test_levels_prefixes_parents_and_lineage(
    code: str, level: str, prefix: str, parent: str | None, chain: list[str]
) -> None:
    assert level_of(code) == level
    assert region_prefix(code) == prefix
    assert parent_of(code) == parent
    assert lineage(code) == chain
    assert province_of(code) == "510000"


def test_a_region_lies_within_its_ancestors_and_not_its_neighbours() -> None:
    assert within("510402", "510400") and within("510402", "510000") and within("510400", "510400")
    assert not within("510502", "510400") and not within("510000", "510400") and not within("520102", "510000")
    assert prefecture_of("510402") == "510400" and prefecture_of("510400") == "510400"
    assert prefecture_of("510000") == "510000"


@pytest.mark.parametrize(("text", "valid"), [("510402", True), ("051040", False), ("51040", False), ("5104a2", False)])
def test_what_an_adcode_looks_like(text: str, valid: bool) -> None:
    assert is_adcode(text) is valid
