"""The reference-data pages: targets with their history, and the waste categories."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from flows.kernel.principal import Principal
from flows.waste import refdata
from flows.waste.refdata import CategoryPublic, HistoryEntry, TargetPublic


@dataclass(frozen=True)
class TargetsPage:
    """Targets (in force, or all), each with its history; whether the reader may set targets, and the categories."""

    targets: list[TargetPublic]
    history: dict[int, list[HistoryEntry]]
    may_set: bool
    retired: bool
    scope: str | None
    categories: list[CategoryPublic]


def targets_page(*, session: Session, principal: Principal, scope: str | None, retired: bool) -> TargetsPage:
    """The targets page of a reader."""
    rows = refdata.list_targets(session=session, principal=principal, scope_adcode=scope, retired=retired)
    return TargetsPage(
        targets=rows,
        history={t.id: refdata.target_history(session=session, target_id=t.id) for t in rows},
        may_set=principal.is_admin or refdata.may_keep_scope(principal, principal.scope_adcode or ""),
        retired=retired,
        scope=scope,
        categories=[c for c in refdata.list_categories(session=session) if c.parent_code is None],
    )


@dataclass(frozen=True)
class CategoriesPage:
    """Every category, and whether the reader may keep them."""

    categories: list[CategoryPublic]
    may_keep: bool


def categories_page(*, session: Session, principal: Principal) -> CategoriesPage:
    """The waste categories page."""
    return CategoriesPage(categories=refdata.list_categories(session=session), may_keep=principal.is_admin)
