"""What the corrections page shows beside each request: its evidence, its effect on the rates before approval,
the tolerance that asks for evidence, and the published figures an approved one revised."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from flows.kernel.errors import DomainError
from flows.kernel.principal import Principal
from flows.pages.audit import require_auditor
from flows.waste import corrections, revisions
from flows.waste.revision_marks import mark_of
from flows.waste.revisions import Tolerance, WeightChange
from models import CorrectionRequest, Enterprise, Park, RateRevision, Region
from models.files import Attachment

# Each preview applies a correction in a savepoint and sums its region twice: the queue previews this many.
MAX_PREVIEWS = 20


@dataclass(frozen=True)
class EffectLine:
    """A scope's rate, gap to target and bottom-up figure, now and once the correction is approved."""

    kind: str
    key: str
    name_zh: str | None
    name_en: str | None
    rate_now: float | None
    rate_after: float | None
    target: float | None
    target_year: int | None
    gap_now: float | None  # points
    gap_after: float | None
    manifest_now: Decimal
    manifest_after: Decimal


@dataclass(frozen=True)
class EvidenceFile:
    """An attachment as the page lists it (a link to its bytes)."""

    id: int
    filename: str
    media_type: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Pending:
    """A pending correction's evidence, the weights it changes beyond the tolerance, and its effect."""

    evidence: list[EvidenceFile]
    beyond: list[WeightChange]
    effect: list[EffectLine] | None  # None: not previewed (past MAX_PREVIEWS)
    problem: DomainError | None = None


@dataclass(frozen=True)
class RevisionLine:
    """A published figure an approved correction revised: the scope, and its rate and bottom-up figure before and
    after."""

    kind: str
    key: str
    name_zh: str | None
    name_en: str | None
    rate_before: float | None
    rate_after: float | None
    manifest_before: Decimal
    manifest_after: Decimal


@dataclass(frozen=True)
class CorrectionsSupport:
    """Everything the corrections page shows beside the requests themselves."""

    tolerance: Tolerance
    previews: int  # how many pending corrections are previewed
    pending: dict[int, Pending]
    evidence: dict[int, list[EvidenceFile]]
    revised: dict[int, list[RevisionLine]]


def _file(attachment: Attachment) -> EvidenceFile:
    return EvidenceFile(
        id=attachment.id or 0,
        filename=attachment.filename,
        media_type=attachment.media_type,
        size_bytes=attachment.size_bytes,
        sha256=attachment.sha256,
    )


def _beyond(session: Session, correction: CorrectionRequest, tolerance: Tolerance) -> list[WeightChange]:
    try:
        changes = revisions.weight_changes(
            session=session,
            table=correction.table_name,
            enterprise_id=correction.enterprise_id,
            year=correction.year,
            payload=dict(correction.payload),
        )
    except DomainError:
        return []  # no longer applicable: the preview says why
    return revisions.beyond(changes, tolerance)


def corrections_support(
    *, session: Session, principal: Principal, correction_ids: Sequence[int], tolerance: Tolerance, now: datetime
) -> CorrectionsSupport:
    """The evidence of the listed corrections, the effect of the pending ones, the revisions of the approved ones."""
    require_auditor(principal)
    rows = corrections.list_corrections(session=session, principal=principal)
    shown = [c for c in rows if c.id in set(correction_ids)]
    stored = revisions.evidence_of(session=session, correction_ids=[c.id for c in shown if c.id is not None])
    evidence = {key: [_file(a) for a in files] for key, files in stored.items()}
    pending: dict[int, Pending] = {}
    for n, correction in enumerate(c for c in shown if c.status == "pending"):
        assert correction.id is not None
        beyond = _beyond(session, correction, tolerance)
        if n >= MAX_PREVIEWS:
            pending[correction.id] = Pending(evidence.get(correction.id, []), beyond, None)
            continue
        effect = corrections.preview_correction(
            session=session, principal=principal, correction_id=correction.id, now=now
        )
        lines = [
            EffectLine(
                kind=s.now.ref.kind,
                key=s.now.ref.key,
                name_zh=s.now.ref.name_zh,
                name_en=s.now.ref.name_en,
                rate_now=s.now.rate,
                rate_after=s.after.rate,
                target=s.now.target,
                target_year=s.now.target_year,
                gap_now=s.now.gap_pts,
                gap_after=s.after.gap_pts,
                manifest_now=s.now.manifest_utilised_t,
                manifest_after=s.after.manifest_utilised_t,
            )
            for s in effect.scopes
        ]
        pending[correction.id] = Pending(evidence.get(correction.id, []), beyond, lines, effect.problem)
    approved = [c.id for c in shown if c.status == "approved" and c.id is not None]
    return CorrectionsSupport(
        tolerance=tolerance,
        previews=MAX_PREVIEWS,
        pending=pending,
        evidence=evidence,
        revised=_revised(session, approved),
    )


def _revised(session: Session, correction_ids: list[int]) -> dict[int, list[RevisionLine]]:
    if not correction_ids:
        return {}
    query = select(RateRevision).where(col(RateRevision.correction_id).in_(correction_ids))
    found = list(session.exec(query.order_by(col(RateRevision.id))).all())
    names = _names(session, [(r.scope_kind, r.scope_key) for r in found])
    out: dict[int, list[RevisionLine]] = {}
    for row in found:
        mark = mark_of(row)
        zh, en = names.get((row.scope_kind, row.scope_key), (row.scope_key, None))
        out.setdefault(row.correction_id, []).append(
            RevisionLine(
                kind=row.scope_kind,
                key=row.scope_key,
                name_zh=zh,
                name_en=en,
                rate_before=mark.rate_before,
                rate_after=mark.rate_after,
                manifest_before=mark.manifest_utilised_before_t,
                manifest_after=mark.manifest_utilised_after_t,
            )
        )
    return out


def _names(session: Session, scopes: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str | None]]:
    regions = [key for kind, key in scopes if kind in ("province", "prefecture", "county")]
    parks = [int(key) for kind, key in scopes if kind == "park"]
    enterprises = [int(key) for kind, key in scopes if kind == "enterprise"]
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    if regions:
        named = sa_select(col(Region.adcode), col(Region.level), col(Region.name_zh), col(Region.name_en))
        for adcode, level, zh, en in session.execute(named.where(col(Region.adcode).in_(regions))):
            out[(str(level), adcode)] = (zh, en)
    if parks:
        query = sa_select(col(Park.id), col(Park.name_zh), col(Park.name_en)).where(col(Park.id).in_(parks))
        out.update({("park", str(key)): (zh, en) for key, zh, en in session.execute(query)})
    if enterprises:
        query = sa_select(col(Enterprise.id), col(Enterprise.name_zh), col(Enterprise.name_en))
        rows = session.execute(query.where(col(Enterprise.id).in_(enterprises)))
        out.update({("enterprise", str(key)): (zh, en) for key, zh, en in rows})
    return out
