"""Reference data every database starts with: waste categories and the Sichuan targets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, select

from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Term
from models import Region, Target, TargetCategory, WasteCategory


@dataclass(frozen=True)
class CategorySpec:
    code: str
    name_zh: str
    name_en: str
    is_bulk: bool
    is_tailings: bool = False
    verified: bool = True  # False where the code's meaning is taken from practice, not yet from the standard's text


# GB/T 39198-2020 codes of general industrial solid waste, as the statistics and ledger systems use them.
# SW08 is unused. SW01-SW07 are certain; the later codes follow the ledger systems and are marked unverified.
CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("SW01", "冶炼废渣", "Smelting slag", True),
    CategorySpec("SW02", "粉煤灰", "Fly ash", True),
    CategorySpec("SW03", "炉渣", "Furnace slag", True),
    CategorySpec("SW04", "煤矸石", "Coal gangue", True),
    CategorySpec("SW05", "尾矿", "Tailings", True, is_tailings=True),
    CategorySpec("SW06", "脱硫石膏", "Desulfurisation gypsum", True),
    CategorySpec("SW07", "污泥", "Sludge", False),
    CategorySpec("SW09", "赤泥", "Red mud", True, verified=False),
    CategorySpec("SW10", "磷石膏", "Phosphogypsum", True, verified=False),
    CategorySpec("SW11", "工业副产石膏", "Other industrial by-product gypsum", True, verified=False),
    CategorySpec("SW12", "钻井岩屑", "Drilling cuttings", False, verified=False),
    CategorySpec("SW13", "食品残渣", "Food residues", False, verified=False),
    CategorySpec("SW14", "纺织皮革业废物", "Textile and leather waste", False, verified=False),
    CategorySpec("SW15", "造纸印刷业废物", "Paper and printing waste", False, verified=False),
    CategorySpec("SW16", "化工废物", "Chemical industry waste", False, verified=False),
    CategorySpec("SW17", "可再生类废物", "Recyclable waste", False, verified=False),
    CategorySpec("SW59", "其他工业固体废物", "Other industrial solid waste", False, verified=False),
)

# Sichuan's default set for its targets: bulk categories without tailings (DESIGN.md).
SICHUAN_TARGET_CATEGORIES = ("SW01", "SW02", "SW03", "SW04", "SW06", "SW09", "SW10", "SW11")
SICHUAN_SERIES = "sichuan-bulk-excl-tailings"
# The document as it is titled (Implementation Plan for Carbon Peak in the Industrial Field of Sichuan Province).
SICHUAN_SOURCE = "四川省工业领域碳达峰实施方案（2023）"


@dataclass(frozen=True)
class TargetSpec:
    name: str
    series: str
    scope_adcode: str
    year: int
    value: float
    categories: tuple[str, ...]
    source: str


TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec("sichuan-2025", SICHUAN_SERIES, "510000", 2025, 0.78, SICHUAN_TARGET_CATEGORIES, SICHUAN_SOURCE),
    TargetSpec("sichuan-2030", SICHUAN_SERIES, "510000", 2030, 0.82, SICHUAN_TARGET_CATEGORIES, SICHUAN_SOURCE),
)


def seed_categories(*, session: Session) -> int:
    """Insert the catalogue's categories that are missing; returns how many were added."""
    existing = set(session.exec(select(WasteCategory.code)).all())
    added = 0
    for spec in CATEGORIES:
        if spec.code in existing:
            continue
        session.add(
            WasteCategory(
                code=spec.code,
                name_zh=spec.name_zh,
                name_en=spec.name_en,
                is_bulk=spec.is_bulk,
                is_tailings=spec.is_tailings,
            )
        )
        added += 1
    session.flush()
    return added


def seed_targets(*, session: Session) -> int:
    """Insert the default targets whose scope region is loaded and that are missing."""
    regions = set(session.exec(select(Region.adcode)).all())
    existing = set(session.exec(select(Target.name)).all())
    added = 0
    for spec in TARGETS:
        if spec.name in existing or spec.scope_adcode not in regions:
            continue
        target = Target(
            name=spec.name,
            series=spec.series,
            scope_adcode=spec.scope_adcode,
            year=spec.year,
            value=spec.value,
            source=spec.source,
        )
        session.add(target)
        session.flush()
        assert target.id is not None
        session.add_all(TargetCategory(target_id=target.id, category_code=c) for c in spec.categories)
        added += 1
    session.flush()
    return added


def category_codes(*, session: Session) -> set[str]:
    """Every category code stored."""
    return set(session.exec(select(WasteCategory.code)).all())


SW_CODE = re.compile(r"^SW(\d{2})$")
# The 2024 catalogue writes its codes with or without hyphens: 261-001-S01 or 261001S01.
CATALOGUE_CODE = re.compile(r"^(\d{3})-?(\d{3})-?S(\d{2})$")


def canonical_code(text: str) -> str:
    """A category code as stored: upper case, a 9-character code without its hyphens."""
    code = text.strip().upper()
    found = CATALOGUE_CODE.match(code)
    return f"{found[1]}{found[2]}S{found[3]}" if found else code


def class_number(code: str) -> int | None:
    """The class (1-59) an SW code or a 9-character code names; None for neither form or a class out of range."""
    found = SW_CODE.match(code) or CATALOGUE_CODE.match(code)
    if found is None:
        return None
    number = int(found.groups()[-1])
    return number if 1 <= number <= 59 and number != 8 else None


def class_code(number: int) -> str:
    """The SW code of a class."""
    return f"SW{number:02d}"


def stored_code(session: Session, text: str, *, field: str = "category_code", row: int | None = None) -> str:
    """The code a declaration or manifest is stored under: an SW class as given, a 9-character code as its class."""
    code = canonical_code(text)
    found = session.get(WasteCategory, code) if code else None
    if found is None:
        raise InvalidInput("waste.unknown_category", field=field, row=row, column=Term(f"field.{field}"), code=text)
    return found.parent_code if len(found.code) == 9 and found.parent_code else found.code
