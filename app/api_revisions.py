"""Corrections over the API beyond filing and deciding: the tolerance setting, and the effect of a pending one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, UploadFile
from pydantic import BaseModel
from sqlmodel import Session

from app.auth import PrincipalDep, utcnow
from app.deps import PrimarySessionDep, SettingsDep
from app.files import upload_bytes
from app.params import Id
from app.settings import Settings
from flows.access import files
from flows.access.files import FileStore
from flows.access.scope import ScopeRef
from flows.kernel.principal import Principal
from flows.waste import corrections
from flows.waste.revisions import Figures, Tolerance
from models.quantity import Tonnes

router = APIRouter(tags=["audit"])


def tolerance(settings: SettingsDep) -> Tolerance:
    """The tolerance of the app's settings."""
    return tolerance_of(settings)


def tolerance_of(settings: Settings) -> Tolerance:
    """The tolerance of these settings: beyond it a weight's correction needs an attachment."""
    return Tolerance(
        share=Decimal(str(settings.correction_tolerance_pct)) / 100,
        tonnes=Decimal(str(settings.correction_tolerance_t)),
    )


ToleranceDep = Annotated[Tolerance, Depends(tolerance)]


def stored_evidence(
    *, session: Session, principal: Principal, store: FileStore, upload: UploadFile | None, now: datetime
) -> list[int]:
    """A page form's evidence file, stored in the request's transaction (kept only if the correction is filed)."""
    if upload is None or not upload.filename:
        return []
    attachment = files.store_attachment(
        session=session,
        principal=principal,
        store=store,
        data=upload_bytes(upload, store),
        filename=upload.filename,
        enterprise_id=principal.enterprise_id,
        now=now,
    )
    return [attachment.id] if attachment.id is not None else []


class FiguresPublic(BaseModel):
    """A scope's rate, target and gap to it (in points), with the sums behind them."""

    rate: float | None
    target: float | None  # the year's value on the target path, else the next target's
    target_year: int | None
    gap_pts: float | None
    generated_t: Tonnes
    utilised_t: Tonnes
    utilised_prior_t: Tonnes
    manifest_utilised_t: Tonnes


class ScopeEffectPublic(BaseModel):
    """One scope's figures now and after the correction's approval."""

    scope: ScopeRef
    categories: list[str]
    now: FiguresPublic
    after: FiguresPublic


class CorrectionEffect(BaseModel):
    """What approving a pending correction would do to the rates the caller may read."""

    correction_id: int
    scopes: list[ScopeEffectPublic]
    problem: str | None  # why it could not be applied, in English; then no scopes


def _figures(f: Figures) -> FiguresPublic:
    return FiguresPublic(
        rate=f.rate,
        target=f.target,
        target_year=f.target_year,
        gap_pts=f.gap_pts,
        generated_t=f.generated_t,
        utilised_t=f.utilised_t,
        utilised_prior_t=f.utilised_prior_t,
        manifest_utilised_t=f.manifest_utilised_t,
    )


@router.get("/corrections/{correction_id}/effect", response_model=CorrectionEffect)
def correction_effect(correction_id: Id, session: PrimarySessionDep, principal: PrincipalDep) -> CorrectionEffect:
    """The rate and gap to target of the correction's region (and province) now and once approved (bureaus)."""
    effect = corrections.preview_correction(
        session=session, principal=principal, correction_id=correction_id, now=utcnow()
    )
    session.rollback()
    return CorrectionEffect(
        correction_id=correction_id,
        scopes=[
            ScopeEffectPublic(
                scope=s.now.ref, categories=s.now.categories, now=_figures(s.now), after=_figures(s.after)
            )
            for s in effect.scopes
        ],
        problem=effect.problem.message if effect.problem else None,
    )
