"""What a correction does to published figures: the evidence a large change needs, the effect on the rates before
approval, and the revisions of a locked year's figures that an approval records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.accounts import Principal
from flows.access.files import attachments_for_use
from flows.access.locks import lock_for
from flows.access.scope import ScopeRef
from flows.access.trail import record, snapshot
from flows.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import system_principal
from flows.waste import manifests, numbers, rates
from flows.waste.declarations import FIGURES
from flows.waste.revision_marks import category_key
from models import (
    CorrectionAttachment,
    CorrectionRequest,
    Declaration,
    Enterprise,
    ManifestShare,
    RateRevision,
)
from models.enums import Channel
from models.files import Attachment

MANIFEST_WEIGHTS = ("weight_dispatched_t", "weight_received_t", "rejected_t")


# ---------------------------------------------------------------------------------------------------------------
# The tolerance beyond which a correction needs evidence


@dataclass(frozen=True)
class Tolerance:
    """A weight may change by up to `share` of its value or `tonnes`, whichever is larger, without evidence."""

    share: Decimal = Decimal("0.10")
    tonnes: Decimal = Decimal(10)

    def exceeded(self, before: Decimal, after: Decimal) -> bool:
        """Whether a change from `before` to `after` goes beyond both the share and the tonnes."""
        change = abs(after - before)
        return change > self.tonnes and change > self.share * abs(before)


DEFAULT_TOLERANCE = Tolerance()


@dataclass(frozen=True)
class WeightChange:
    """A weight a correction changes: the value now and the value asked for, in tonnes."""

    field: str
    before: Decimal
    after: Decimal


def _tonnes(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def weight_changes(
    *, session: Session, table: str, enterprise_id: int, year: int, payload: dict[str, Any]
) -> list[WeightChange]:
    """The weights a (checked) correction payload changes, with their values now."""
    if table not in ("declaration", "transfer_batch"):
        return []  # a late filing is a new record: it changes no weight that was there
    if table == "declaration":
        current = session.execute(
            sa_select(Declaration).where(
                col(Declaration.enterprise_id) == enterprise_id,
                col(Declaration.category_code) == payload.get("category_code"),
                col(Declaration.year) == year,
            )
        ).scalar_one_or_none()
        pairs = [(name, getattr(current, name, None), payload.get(name)) for name in FIGURES]
    else:
        batch = numbers.get(session, int(payload["batch_id"]))
        if batch is None:
            return []
        wanted = manifests.correction_changes(session=session, batch=batch, party=None, changes=payload["changes"])
        pairs = [(name, getattr(batch, name), wanted[name]) for name in MANIFEST_WEIGHTS if name in wanted]
    changes = [WeightChange(name, _tonnes(before), _tonnes(after)) for name, before, after in pairs]
    return [change for change in changes if change.before != change.after]


def beyond(changes: list[WeightChange], tolerance: Tolerance) -> list[WeightChange]:
    """The changes that need evidence."""
    return [change for change in changes if tolerance.exceeded(change.before, change.after)]


def check_evidence(
    *,
    session: Session,
    principal: Principal,
    table: str,
    enterprise_id: int,
    year: int,
    payload: dict[str, Any],
    attachment_ids: Sequence[object],
    tolerance: Tolerance,
) -> list[Attachment]:
    """The attachments a correction names, refused naming the field when a weight changes beyond the tolerance
    and there are none."""
    attachments = attachments_for_use(session=session, principal=principal, ids=attachment_ids)
    over = beyond(
        weight_changes(session=session, table=table, enterprise_id=enterprise_id, year=year, payload=payload),
        tolerance,
    )
    if over and not attachments:
        raise InvalidInput(
            "revisions.evidence_required",
            field="attachment_ids",
            column=Term("field.attachment_ids"),
            weight=Term(f"field.{over[0].field}"),
            before=f"{over[0].before:,.1f}",
            after=f"{over[0].after:,.1f}",
            share=f"{(tolerance.share * 100).normalize():f}",
            tonnes=f"{tolerance.tonnes:,.1f}",
        )
    return attachments


def attach_evidence(*, session: Session, correction: CorrectionRequest, attachments: Sequence[Attachment]) -> None:
    """Link a new correction to its evidence files."""
    for attachment in attachments:
        session.add(CorrectionAttachment(correction_id=correction.id or 0, attachment_id=attachment.id or 0))
    session.flush()


def evidence_of(*, session: Session, correction_ids: Sequence[int]) -> dict[int, list[Attachment]]:
    """The evidence files of each correction, in the order they were given."""
    if not correction_ids:
        return {}
    query = (
        sa_select(col(CorrectionAttachment.correction_id), Attachment)
        .join(Attachment, col(Attachment.id) == col(CorrectionAttachment.attachment_id))
        .where(col(CorrectionAttachment.correction_id).in_(list(correction_ids)))
        .order_by(col(Attachment.id))
    )
    out: dict[int, list[Attachment]] = {}
    for correction_id, attachment in session.execute(query).all():
        out.setdefault(correction_id, []).append(attachment)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The figures a correction touches


@dataclass(frozen=True)
class Figures:
    """A scope's published sums of a year over its default category set, and its rate against the target."""

    ref: ScopeRef
    categories: list[str]
    rate: float | None
    target: float | None  # the year's value on the target path, else the next target's (as the drill-down holds it)
    target_year: int | None
    generated_t: Decimal
    utilised_t: Decimal
    utilised_prior_t: Decimal
    manifest_utilised_t: Decimal

    @property
    def gap_pts(self) -> float | None:
        """The rate minus the target, in percentage points (negative: below target)."""
        if self.rate is None or self.target is None:
            return None
        return (self.rate - self.target) * 100

    def sums(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """What a revision compares."""
        return (self.generated_t, self.utilised_t, self.utilised_prior_t, self.manifest_utilised_t)


ScopeKey = tuple[str, str]


def _figures(session: Session, principal: Principal, year: int, kind: str, key: str) -> Figures:
    named: dict[str, Any] = {kind: int(key)} if kind in ("park", "enterprise") else {"region": key}
    report = rates.utilisation(session=session, principal=principal, year=year, **named)
    target, target_year = report.target, year if report.target is not None else None
    if target is None and report.next_target is not None:
        target, target_year = report.next_target.value, report.next_target.year
    return Figures(
        ref=report.scope,
        categories=list(report.categories),
        rate=report.rate,
        target=target,
        target_year=target_year,
        generated_t=Decimal(report.generated_t),
        utilised_t=Decimal(report.utilised_t),
        utilised_prior_t=Decimal(report.utilised_prior_t),
        manifest_utilised_t=Decimal(report.manifest_utilised_t),
    )


def _enterprises(session: Session, correction: CorrectionRequest) -> list[int]:
    """The enterprises whose figures a correction may move: its own and, for a manifest, every generator whose
    tonnes the manifest carries (the bottom-up figure counts at the first shipper)."""
    ids = [correction.enterprise_id]
    if correction.table_name == "transfer_batch":
        batch_id = int(correction.payload.get("batch_id") or 0)
        origins = session.execute(
            sa_select(col(ManifestShare.origin_shipper_id)).where(col(ManifestShare.manifest_id) == batch_id)
        ).scalars()
        batch = numbers.get(session, batch_id)
        ids += [batch.shipper_id] if batch else []
        ids += list(origins)
    return list(dict.fromkeys(ids))


def affected_scopes(session: Session, correction: CorrectionRequest, *, wide: bool) -> list[ScopeKey]:
    """The scopes whose figures the correction may change: their prefectures and province, and when `wide` also
    their counties, parks and the enterprises themselves (every figure a page may mark as revised)."""
    scopes: list[ScopeKey] = []
    for enterprise_id in _enterprises(session, correction):
        enterprise = session.get(Enterprise, enterprise_id)
        if enterprise is None:
            continue
        regions = [("prefecture", enterprise.prefecture_adcode), ("province", enterprise.province_adcode)]
        if wide:
            regions += [("county", enterprise.county_adcode), ("park", _text(enterprise.park_id))]
            regions += [("enterprise", str(enterprise_id))]
        scopes += [(kind, key) for kind, key in regions if key]
    order = ("enterprise", "park", "county", "prefecture", "province")
    return sorted(dict.fromkeys(scopes), key=lambda s: (order.index(s[0]), s[1]))


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------------------------------------------------------
# The effect before approval


@dataclass(frozen=True)
class ScopeEffect:
    """A scope's figures now and as they would be once the correction is approved."""

    now: Figures
    after: Figures


@dataclass(frozen=True)
class Effect:
    """What approving a correction would do to the rates the decider may read; `problem` if it cannot apply."""

    scopes: list[ScopeEffect]
    problem: DomainError | None = None


Applier = Callable[[Session, Principal, dict[str, Any], datetime], Any]


def preview(
    *, session: Session, principal: Principal, correction: CorrectionRequest, apply: Applier, now: datetime
) -> Effect:
    """The rates and gaps to target of the correction's region and province now and after approval: the correction
    is applied as the approval would apply it, in a savepoint that is then rolled back."""
    readable: list[ScopeKey] = []
    before: dict[ScopeKey, Figures] = {}
    for kind, key in affected_scopes(session, correction, wide=False):
        try:
            before[(kind, key)] = _figures(session, principal, correction.year, kind, key)
        except (Forbidden, NotFound):
            continue  # a city's auditor sees its city's figures, not the province's
        readable.append((kind, key))
    after: dict[ScopeKey, Figures] = {}
    savepoint = session.begin_nested()
    try:
        apply(session, principal, dict(correction.payload), now)
        session.flush()
        after = {scope: _figures(session, principal, correction.year, *scope) for scope in readable}
    except DomainError as exc:
        return Effect(scopes=[], problem=exc)
    finally:
        savepoint.rollback()
        # Objects loaded inside the savepoint hold the applied values: read them again from the database.
        session.expire_all()
    return Effect(scopes=[ScopeEffect(now=before[s], after=after[s]) for s in readable])


# ---------------------------------------------------------------------------------------------------------------
# Revisions recorded on approval


def published_figures(*, session: Session, correction: CorrectionRequest) -> dict[ScopeKey, Figures]:
    """The figures an approval may revise, read before it applies: empty when the year is not locked (anymore)."""
    if lock_for(session=session, enterprise_id=correction.enterprise_id, year=correction.year) is None:
        return {}
    # Every scope's figure, whoever decides: a revision marks what the pages show to all who read that scope.
    reader = system_principal(Channel.system)
    return {
        scope: _figures(session, reader, correction.year, *scope)
        for scope in affected_scopes(session, correction, wide=True)
    }


def record_revisions(
    *,
    session: Session,
    principal: Principal,
    correction: CorrectionRequest,
    published: dict[ScopeKey, Figures],
    now: datetime,
) -> list[RateRevision]:
    """Store, for each scope whose figures the applied correction changed, the sums before and after; audited as one."""
    reader = system_principal(Channel.system)
    stored = []
    for (kind, key), was in published.items():
        now_figures = _figures(session, reader, correction.year, kind, key)
        if now_figures.sums() == was.sums():
            continue
        revision = RateRevision(
            correction_id=correction.id or 0,
            scope_kind=kind,
            scope_key=key,
            year=correction.year,
            categories=category_key(was.categories),
            generated_before_t=was.generated_t,
            generated_after_t=now_figures.generated_t,
            utilised_before_t=was.utilised_t,
            utilised_after_t=now_figures.utilised_t,
            utilised_prior_before_t=was.utilised_prior_t,
            utilised_prior_after_t=now_figures.utilised_prior_t,
            manifest_before_t=was.manifest_utilised_t,
            manifest_after_t=now_figures.manifest_utilised_t,
            revised_at=now,
        )
        session.add(revision)
        stored.append(revision)
    if stored:
        session.flush()
        record(
            session=session,
            principal=principal,
            action="revise_figures",
            table="correction_request",
            row_id=correction.id,
            before=None,
            after={"revisions": [snapshot(revision) for revision in stored]},
            now=now,
            enterprises=(correction.enterprise_id,),
        )
    return stored
