"""The "revised" marks of published figures: what approved corrections changed in a locked year, read per scope."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from fractions import Fraction

from pydantic import BaseModel
from sqlmodel import Session, col, select

from models import RateRevision
from models.quantity import Tonnes


def category_key(codes: Sequence[str]) -> str:
    """The category set of a figure as a revision stores it."""
    return ",".join(sorted(codes))


class RevisionMark(BaseModel):
    """One approved correction's change to a published figure: the sums and the rate before and after."""

    correction_id: int
    revised_at: datetime
    rate_before: float | None
    rate_after: float | None
    generated_before_t: Tonnes
    generated_after_t: Tonnes
    utilised_before_t: Tonnes
    utilised_after_t: Tonnes
    utilised_prior_before_t: Tonnes
    utilised_prior_after_t: Tonnes
    manifest_utilised_before_t: Tonnes
    manifest_utilised_after_t: Tonnes


def _ratio(generated: Tonnes, utilised: Tonnes, prior: Tonnes) -> float | None:
    # The official formula (flows.waste.rates.rate_of), repeated here so that rates may import the marks.
    denominator = Fraction(generated) + Fraction(prior)
    return float(Fraction(utilised) / denominator) if denominator > 0 else None


def mark_of(row: RateRevision) -> RevisionMark:
    """A stored revision as the pages and the API show it."""
    return RevisionMark(
        correction_id=row.correction_id,
        revised_at=row.revised_at,
        rate_before=_ratio(row.generated_before_t, row.utilised_before_t, row.utilised_prior_before_t),
        rate_after=_ratio(row.generated_after_t, row.utilised_after_t, row.utilised_prior_after_t),
        generated_before_t=row.generated_before_t,
        generated_after_t=row.generated_after_t,
        utilised_before_t=row.utilised_before_t,
        utilised_after_t=row.utilised_after_t,
        utilised_prior_before_t=row.utilised_prior_before_t,
        utilised_prior_after_t=row.utilised_prior_after_t,
        manifest_utilised_before_t=row.manifest_before_t,
        manifest_utilised_after_t=row.manifest_after_t,
    )


def marks_for(
    *, session: Session, year: int, categories: Sequence[str], scopes: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[RevisionMark]]:
    """The revisions of each (scope kind, key) in a year over a category set, oldest first; scopes without none."""
    wanted = set(scopes)
    if not wanted:
        return {}
    query = (
        select(RateRevision)
        .where(
            col(RateRevision.year) == year,
            col(RateRevision.categories) == category_key(categories),
            col(RateRevision.scope_key).in_(sorted({key for _, key in wanted})),
        )
        .order_by(col(RateRevision.id))
    )
    out: dict[tuple[str, str], list[RevisionMark]] = {}
    for row in session.exec(query).all():
        scope = (row.scope_kind, row.scope_key)
        if scope in wanted:
            out.setdefault(scope, []).append(mark_of(row))
    return out
