"""Targets as data: the category set a rate counts, the linear path between a series' targets, and the projection."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from flows.kernel.adcode import lineage
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Message, Term, msg
from flows.kernel.quantity import exact_fraction
from flows.waste.reference import SICHUAN_SERIES, SICHUAN_TARGET_CATEGORIES
from models import Target, TargetCategory, WasteCategory

DEFAULT_SERIES = SICHUAN_SERIES
DEFAULT_WINDOW = 5  # years of data the projection's trend is fitted on
MIN_WINDOW = 2  # a line needs two points


class TargetPoint(BaseModel):
    """One target of a series: a knot of its path."""

    name: str
    year: int
    value: float


class CategorySet(BaseModel):
    """The categories a rate counts, and where the set came from."""

    codes: list[str]
    source: Literal["default", "target", "explicit"]
    series: str | None = None
    target_name: str | None = None


class TargetPath(BaseModel):
    """The targets of one series for one scope, joined by straight lines."""

    series: str
    scope_adcode: str
    points: list[TargetPoint]


class Projection(BaseModel):
    """A least-squares line through the last years' rates, extrapolated to the next target year."""

    window: int
    years: list[int]
    rates: list[float]
    mean_year: float | None = None
    mean_rate: float | None = None
    slope_per_year: float | None = None
    target_name: str | None = None
    target_year: int | None = None
    target: float | None = None
    projected_rate: float | None = None
    meets: bool | None = None
    margin_pts: float | None = None
    reason: str | None = None  # why there is no projected rate, when there is none (in English)
    reason_code: str | None = None  # the same as a catalogue code and its parameters, for any reader's language
    reason_params: dict[str, Any] = Field(default_factory=dict)

    def why(self) -> Message | None:
        """Why there is no projected rate, in words of the catalogue; None when there is one."""
        return Message(self.reason_code, self.reason_params) if self.reason_code else None

    def explain(self, why: Message) -> None:
        """Say why there is no projected rate (the code and parameters, and the English words for the API)."""
        self.reason, self.reason_code, self.reason_params = why.render("en"), why.code, dict(why.params)


def region_ancestry(adcode: str) -> list[str]:
    """The region and the regions above it, most specific first (GB/T 2260 codes nest by digits)."""
    return lineage(adcode)


def path_value(points: Sequence[TargetPoint], year: int) -> float | None:
    """The target on the path in a year: exact at target years, linear between, None outside the path."""
    ordered = sorted(points, key=lambda p: p.year)
    for point in ordered:
        if point.year == year:
            return point.value
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.year < year < after.year:
            # In exact fractions of the targets as written (0.78, 0.82): 2028 is 0.804, not 0.8039999999999999.
            low, high = exact_fraction(before.value), exact_fraction(after.value)
            share = Fraction(year - before.year, after.year - before.year)
            return float(low + (high - low) * share)
    return None


def next_target(points: Sequence[TargetPoint], year: int, *, strictly_after: bool = False) -> TargetPoint | None:
    """The first target due in or after the year (strictly after, when asked)."""
    for point in sorted(points, key=lambda p: p.year):
        if point.year > year or (point.year == year and not strictly_after):
            return point
    return None


def project(
    rates_by_year: Sequence[tuple[int, float | None]], points: Sequence[TargetPoint], *, window: int = DEFAULT_WINDOW
) -> Projection:
    """Fit a line to the last `window` years with a rate and read it off at the next target year after them."""
    if window < MIN_WINDOW:
        raise InvalidInput("waste.window_min", field="window", column=Term("field.window"), n=MIN_WINDOW)
    with_data = sorted((year, rate) for year, rate in rates_by_year if rate is not None)[-window:]
    years = [year for year, _ in with_data]
    rates = [rate for _, rate in with_data]
    result = Projection(window=window, years=years, rates=rates)
    if len(with_data) < MIN_WINDOW:
        result.explain(msg("waste.trend_too_short", n=len(with_data), needed=MIN_WINDOW))
        return result
    # Centred on the mean year, so that the fit is exact to read back and well conditioned.
    mean_year = sum(years) / len(years)
    mean_rate = sum(rates) / len(rates)
    spread = sum((year - mean_year) ** 2 for year in years)
    slope = sum((year - mean_year) * (rate - mean_rate) for year, rate in with_data) / spread
    result.mean_year, result.mean_rate, result.slope_per_year = mean_year, mean_rate, slope
    goal = next_target(points, years[-1], strictly_after=True)
    if goal is None:
        result.explain(msg("waste.no_target_after", year=years[-1]))
        return result
    projected = mean_rate + slope * (goal.year - mean_year)
    result.target_name, result.target_year, result.target = goal.name, goal.year, goal.value
    result.projected_rate = projected
    result.meets = projected >= goal.value
    result.margin_pts = (projected - goal.value) * 100
    return result


def _points(session: Session, series: str, scope_adcode: str) -> list[TargetPoint]:
    rows = session.exec(
        select(Target)
        .where(Target.series == series, Target.scope_adcode == scope_adcode, col(Target.retired_at).is_(None))
        .order_by(col(Target.year))
    ).all()
    return [TargetPoint(name=t.name, year=t.year, value=t.value) for t in rows]


def _codes_of(session: Session, target_id: int | None) -> list[str]:
    rows = session.exec(
        select(TargetCategory.category_code)
        .where(TargetCategory.target_id == target_id)
        .order_by(col(TargetCategory.category_code))
    ).all()
    return list(rows)


def _with_children(session: Session, codes: Sequence[str]) -> list[str]:
    # A 2024-catalogue code filed under an SW code counts wherever its parent does.
    children = session.exec(select(WasteCategory.code).where(col(WasteCategory.parent_code).in_(list(codes)))).all()
    return sorted(set(codes) | set(children))


def explicit_codes(session: Session, categories: Sequence[str]) -> list[str]:
    """Check a list of category codes against the catalogue; unknown codes are refused, naming them."""
    wanted = list(dict.fromkeys(code.strip().upper() for code in categories if code.strip()))
    if not wanted:
        raise InvalidInput("waste.categories_empty", field="categories", column=Term("field.categories"))
    known = set(session.exec(select(WasteCategory.code).where(col(WasteCategory.code).in_(wanted))).all())
    unknown = [code for code in wanted if code not in known]
    if unknown:
        raise InvalidInput(
            "waste.unknown_category_code", field="categories", column=Term("field.categories"), code=", ".join(unknown)
        )
    return wanted


def resolve_category_set(
    *,
    session: Session,
    region_adcode: str | None,
    year: int | None,
    categories: Sequence[str] | None = None,
    target: str | None = None,
) -> tuple[CategorySet, TargetPath | None]:
    """The categories to count and the target path to hold them against (named target, explicit list, default)."""
    # The default series is looked up from the scope's own region upwards: the most specific targets apply.
    if categories is not None and target is not None:
        raise InvalidInput("waste.categories_or_target", field="categories", column=Term("field.categories"))
    if categories is not None:
        # An explicit set is not the set any target was set on: no target is shown against it.
        return CategorySet(codes=_with_children(session, explicit_codes(session, categories)), source="explicit"), None
    if target is not None:
        named = session.exec(select(Target).where(Target.name == target.strip())).first()
        if named is None:
            raise InvalidInput("waste.no_target", field="target", column=Term("field.target"), name=target.strip())
        path = TargetPath(
            series=named.series,
            scope_adcode=named.scope_adcode,
            points=_points(session, named.series, named.scope_adcode),
        )
        codes = _with_children(session, _codes_of(session, named.id))
        return CategorySet(codes=codes, source="target", series=named.series, target_name=named.name), path
    for adcode in region_ancestry(region_adcode) if region_adcode else []:
        points = _points(session, DEFAULT_SERIES, adcode)
        if points:
            # The set of the target the year is heading to (the last one once past them all).
            due = (next_target(points, year) if year is not None else None) or points[-1]
            chosen = session.exec(select(Target).where(Target.name == due.name)).one()
            path = TargetPath(series=DEFAULT_SERIES, scope_adcode=adcode, points=points)
            codes = _with_children(session, _codes_of(session, chosen.id))
            return CategorySet(codes=codes, source="default", series=DEFAULT_SERIES), path
    # No target loaded for this scope: count the Sichuan set, with no target to hold it against.
    return CategorySet(codes=_with_children(session, SICHUAN_TARGET_CATEGORIES), source="default"), None


def outer_path(*, session: Session, path: TargetPath | None) -> TargetPath | None:
    """The path of the same series set for the nearest region above the path's own (a prefecture's: the province's)."""
    if path is None:
        return None
    for adcode in region_ancestry(path.scope_adcode)[1:]:
        points = _points(session, path.series, adcode)
        if points:
            return TargetPath(series=path.series, scope_adcode=adcode, points=points)
    return None
