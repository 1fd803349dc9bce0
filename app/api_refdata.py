"""JSON API for reference data: targets (list, create, change, retire, history) and waste categories."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, Field

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.params import CodePath, Id, checked_json, described_by
from flows.kernel.bounds import MAX_ID
from flows.waste import refdata
from flows.waste.refdata import CategoryIn, CategoryPublic, HistoryEntry, TargetIn, TargetPublic

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)], tags=["reference data"])

ScopeQuery = Annotated[str | None, Query(pattern=r"^\d{6}$", description="targets set for this region and above")]


class TargetsPage(BaseModel):
    data: list[TargetPublic]
    count: int


class CategoriesPage(BaseModel):
    data: list[CategoryPublic]
    count: int


class Retirement(BaseModel):
    revision: int = Field(ge=1, le=MAX_ID, description="the revision read: a stale one is refused (409)")


@router.get("/targets", response_model=TargetsPage)
def list_targets(
    session: SessionDep, principal: PrincipalDep, scope: ScopeQuery = None, retired: bool = False
) -> TargetsPage:
    """Targets in force (with `retired`, the retired ones too); `scope` gives those a region is held to."""
    rows = refdata.list_targets(session=session, principal=principal, scope_adcode=scope, retired=retired)
    return TargetsPage(data=rows, count=len(rows))


@router.post("/targets", response_model=TargetPublic, status_code=201)
def create_target(
    body: Annotated[dict[str, Any], described_by(TargetIn), Body()],
    session: SessionDep,
    principal: PrincipalDep,
) -> TargetPublic:
    """Set a target (administrators; bureaus for their region and below)."""
    written = refdata.save_target(session=session, principal=principal, data=body, now=utcnow())
    session.commit()
    return refdata.get_target(session=session, principal=principal, target_id=written.target.id or 0)


@router.get("/targets/{target_id}", response_model=TargetPublic)
def read_target(target_id: Id, session: SessionDep, principal: PrincipalDep) -> TargetPublic:
    """One target as it stands."""
    return refdata.get_target(session=session, principal=principal, target_id=target_id)


@router.put("/targets/{target_id}", response_model=TargetPublic)
def change_target(
    target_id: Id,
    body: Annotated[dict[str, Any], described_by(TargetIn), Body()],
    session: SessionDep,
    principal: PrincipalDep,
) -> TargetPublic:
    """Change a target, naming the revision read (409 when it moved on); the change is in its history."""
    refdata.save_target(session=session, principal=principal, data=body, now=utcnow(), target_id=target_id)
    session.commit()
    return refdata.get_target(session=session, principal=principal, target_id=target_id)


@router.post("/targets/{target_id}/retire", response_model=TargetPublic)
def retire_target(target_id: Id, body: Retirement, session: SessionDep, principal: PrincipalDep) -> TargetPublic:
    """Retire a target: the rates no longer read it; it stays listed with `retired`, with its history."""
    refdata.retire_target(
        session=session, principal=principal, target_id=target_id, revision=body.revision, now=utcnow()
    )
    session.commit()
    return refdata.get_target(session=session, principal=principal, target_id=target_id)


@router.get("/targets/{target_id}/history", response_model=list[HistoryEntry])
def target_history(target_id: Id, session: SessionDep, principal: PrincipalDep) -> list[HistoryEntry]:
    """Every change of a target, from the audit log."""
    return refdata.target_history(session=session, target_id=target_id)


@router.get("/categories", response_model=CategoriesPage)
def list_categories(session: SessionDep, principal: PrincipalDep) -> CategoriesPage:
    """The waste categories: the SW classes and the 2024 catalogue's codes, each with its class."""
    rows = refdata.list_categories(session=session)
    return CategoriesPage(data=rows, count=len(rows))


@router.post("/categories", response_model=CategoryPublic)
def save_category(
    body: Annotated[dict[str, Any], described_by(CategoryIn), Body()],
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
) -> CategoryPublic:
    """Add a category (201) or change one by its code (200; administrators)."""
    written = refdata.save_category(session=session, principal=principal, data=body, now=utcnow())
    session.commit()
    response.status_code = 201 if written.outcome == "created" else 200
    return refdata.get_category(session=session, code=written.category.code)


@router.get("/categories/{code}", response_model=CategoryPublic)
def read_category(code: CodePath, session: SessionDep, principal: PrincipalDep) -> CategoryPublic:
    """One category, by either form of its code."""
    return refdata.get_category(session=session, code=code)


@router.get("/categories/{code}/history", response_model=list[HistoryEntry])
def category_history(code: CodePath, session: SessionDep, principal: PrincipalDep) -> list[HistoryEntry]:
    """Every change of a category, from the audit log."""
    return refdata.category_history(session=session, code=code)
