"""Audit flags, computed on the fly from declarations, manifests and licences (there is no flag table).

Each kind is one SQL query (an aggregate where the data is large) that counts and pages in the database; a page
of flags across kinds is cut from the kinds in a fixed order. Every flag carries its evidence numbers and the API
paths of the rows behind it. Tolerances are parameters, with their defaults in one place (Tolerances).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, Field, field_serializer
from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, exists, extract, func, literal, or_, type_coerce
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.accounts import Principal
from flows.access.scope import Scope, ScopeRef, resolve_scope
from flows.kernel.clock import local_date
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Message, Named, Term, msg, plain
from flows.waste.manifests import WEIGHT_TOLERANCE
from flows.waste.rates import (
    RECEIVED_STATUSES,
    SUMMARY_GENERATOR,
    RateBy,
    Sums,
    declared_sums,
    licensed_receiver,
    names,
    rate_of,
    route_activity,
    scope_condition_for_batches,
)
from flows.waste.targets import resolve_category_set
from models import Declaration, Enterprise, Licence, Manifest, ManifestDraw
from models.enums import LicenceActivity, ManifestStatus
from models.quantity import TonnesKg


class FlagKind(StrEnum):
    """What a flag says is wrong."""

    scope_rate_above_100 = "scope_rate_above_100"  # a region's or park's rate above 100%: a data error
    rate_above_100 = "rate_above_100"  # a declaration using more than it made plus its declared prior stock
    balance_break = "balance_break"  # generated != current use + stored + current disposal + dumped
    unmatched_utilisation = "unmatched_utilisation"  # declared use well above the manifests, with no licence to use
    unlicensed_receiver = "unlicensed_receiver"  # a batch sent to a receiver without a valid licence for it
    capacity_exceeded = "capacity_exceeded"  # a receiver took in more in a year than its licence allows
    weight_discrepancy = "weight_discrepancy"  # received (plus refused) off the dispatched weight
    unlinked_forwarding = "unlinked_forwarding"  # an intermediary sent waste on without naming the lots it came from


@dataclass(frozen=True)
class Tolerances:
    """How far a figure may be off before it is flagged; the defaults live here and nowhere else."""

    balance_abs_t: float = 1.0  # a balance break is beyond max(1 t, 1% of generated)
    balance_rel: float = 0.01
    weight_rel: float = float(WEIGHT_TOLERANCE)  # the manifests' own 2%, so that both screens agree
    unmatched_abs_t: float = 10.0  # declared use beyond the manifests by more than max(10 t, 10% of declared use)
    unmatched_rel: float = 0.10


DEFAULT_TOLERANCES = Tolerances()

Evidence = dict[str, float | int | str | bool | None]


class Flag(BaseModel):
    """One finding with its evidence and the API paths of the rows behind it."""

    kind: FlagKind
    year: int
    subject: str  # what the flag is about, as "table/id" (or "scope/key" for a rate)
    enterprise_ids: list[int]
    code: str  # the finding as data: its catalogue code and parameters, told in the reader's language
    params: dict[str, Any]
    message: str  # the finding in English, as the API has always carried it
    evidence: Evidence
    links: list[str]
    # The enterprises the finding names by id, by their names: what a reader is shown (the API keeps the ids).
    names: dict[str, Named] = Field(default_factory=dict, exclude=True)

    @field_serializer("params")
    def _plain_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return plain(params)

    def finding(self) -> Message:
        """The finding, to be rendered in the reader's language, naming enterprises by name where they are known."""
        return Message(self.code, {**self.params, **self.names})


class FlagPage(BaseModel):
    """A page of flags, the count of each kind and the tolerances they were computed with."""

    scope: ScopeRef
    year: int | None
    kinds: list[FlagKind]
    tolerances: dict[str, float]
    counts: dict[str, int]
    count: int
    offset: int
    limit: int | None
    data: list[Flag]


@dataclass(frozen=True)
class _Ctx:
    session: Session
    scope: Scope
    year: int | None
    tol: Tolerances


def _said(finding: Message) -> dict[str, Any]:
    """A flag's finding: its code and parameters, and its English words."""
    return {"code": finding.code, "params": dict(finding.params), "message": finding.render("en")}


def _route(route: object) -> Term:
    return Term(f"waste.flag.route.{route}")


def _activity(activity: object) -> Term:
    return Term(f"waste.flag.activity.{activity}")


def _larger(a: ColumnElement[Decimal], b_t: float) -> ColumnElement[Decimal]:
    # GREATEST on PostgreSQL is max() on SQLite: a CASE reads the same on both. `a` is a weight expression, held in
    # kilograms in the database, so the tonnes of `b_t` go in as kilograms too.
    b = literal(round(b_t * 1000), BigInteger)
    return case((a > b, a), else_=b)


def _decl_link(decl_id: int) -> str:
    return f"/api/v1/declarations/{decl_id}"


def _manifests_link(**params: Any) -> str:
    return "/api/v1/manifests?" + urlencode({k: v for k, v in params.items() if v is not None})


def _year_of_decl(ctx: _Ctx) -> ColumnElement[bool]:
    return col(Declaration.year) == ctx.year if ctx.year is not None else literal(True)


def _year_of_batch(ctx: _Ctx) -> ColumnElement[bool]:
    return col(Manifest.year) == ctx.year if ctx.year is not None else literal(True)


def _count(ctx: _Ctx, query: Select[Any]) -> int:
    return int(ctx.session.execute(sa_select(func.count()).select_from(query.subquery())).scalar_one())


def _page(ctx: _Ctx, query: Select[Any], offset: int, limit: int | None) -> list[Any]:
    # The window count is taken before LIMIT: one pass gives the page and the kind's total.
    query = query.add_columns(func.count().over().label("total_rows")).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(ctx.session.execute(query).all())


# ---------------------------------------------------------------------------------------------------------------
# Declarations


def _declaration_columns() -> list[Any]:
    return [
        col(Declaration.id),
        col(Declaration.enterprise_id),
        col(Declaration.category_code),
        col(Declaration.year),
        col(Declaration.generated_t),
        col(Declaration.utilised_t),
        col(Declaration.utilised_prior_t),
        col(Declaration.disposed_t),
        col(Declaration.disposed_prior_t),
        col(Declaration.stored_t),
        col(Declaration.dumped_t),
    ]


def _declarations(ctx: _Ctx, *extra: Any) -> Select[Any]:
    return (
        sa_select(*_declaration_columns(), *extra)
        .select_from(Declaration)
        .join(Enterprise, col(Enterprise.id) == col(Declaration.enterprise_id))
        .where(ctx.scope.condition, _year_of_decl(ctx))
        .order_by(col(Declaration.year), col(Declaration.enterprise_id), col(Declaration.category_code))
    )


def _balance_query(ctx: _Ctx) -> Select[Any]:
    d = Declaration
    accounted = (
        (col(d.utilised_t) - col(d.utilised_prior_t))
        + col(d.stored_t)
        + (col(d.disposed_t) - col(d.disposed_prior_t))
        + col(d.dumped_t)
    )
    residual = col(d.generated_t) - accounted
    allowed = _larger(col(d.generated_t) * ctx.tol.balance_rel, ctx.tol.balance_abs_t)
    return _declarations(ctx, residual.label("residual"), allowed.label("allowed")).where(func.abs(residual) > allowed)


def _balance_flag(row: Any) -> Flag:
    return Flag(
        kind=FlagKind.balance_break,
        year=row.year,
        subject=f"declaration/{row.id}",
        enterprise_ids=[row.enterprise_id],
        **_said(
            msg(
                "waste.flag.balance_break",
                category=row.category_code,
                generated_t=row.generated_t,
                accounted_t=row.generated_t - row.residual,
                residual_t=row.residual,
                tolerance_t=row.allowed,
            )
        ),
        evidence={
            "category": row.category_code,
            "generated_t": row.generated_t,
            "utilised_t": row.utilised_t,
            "utilised_prior_t": row.utilised_prior_t,
            "disposed_t": row.disposed_t,
            "disposed_prior_t": row.disposed_prior_t,
            "stored_t": row.stored_t,
            "dumped_t": row.dumped_t,
            "residual_t": row.residual,
            "tolerance_t": row.allowed,
        },
        links=[_decl_link(row.id)],
    )


def _over_100_query(ctx: _Ctx) -> Select[Any]:
    # utilised / (generated + prior) > 1; with no prior stock declared that is simply utilised above generated.
    d = Declaration
    return _declarations(ctx).where(col(d.utilised_t) > col(d.generated_t) + col(d.utilised_prior_t))


def _over_100_flag(row: Any) -> Flag:
    rate = rate_of(row.generated_t, row.utilised_t, row.utilised_prior_t)
    return Flag(
        kind=FlagKind.rate_above_100,
        year=row.year,
        subject=f"declaration/{row.id}",
        enterprise_ids=[row.enterprise_id],
        **_said(
            msg(
                "waste.flag.rate_above_100",
                category=row.category_code,
                utilised_t=row.utilised_t,
                generated_t=row.generated_t,
                utilised_prior_t=row.utilised_prior_t,
            )
        ),
        evidence={
            "category": row.category_code,
            "generated_t": row.generated_t,
            "utilised_t": row.utilised_t,
            "utilised_prior_t": row.utilised_prior_t,
            "rate": rate,
            "excess_t": row.utilised_t - row.generated_t - row.utilised_prior_t,
        },
        links=[_decl_link(row.id)],
    )


def _own_licence_in_year(activity: str) -> ColumnElement[bool]:
    """A condition on Declaration: its enterprise held a licence for its category and the activity that year."""
    return exists(
        sa_select(literal(1)).where(
            col(Licence.enterprise_id) == col(Declaration.enterprise_id),
            col(Licence.category_code) == col(Declaration.category_code),
            col(Licence.activity) == activity,
            extract("year", col(Licence.valid_from)) <= col(Declaration.year),
            or_(col(Licence.valid_to).is_(None), extract("year", col(Licence.valid_to)) >= col(Declaration.year)),
        )
    )


def _unmatched_query(ctx: _Ctx) -> Select[Any]:
    # What ended utilised, allocated back through every hop to the generators (rates.manifested_sums does the same),
    # read from the summaries kept on write: waste sent through a collector counts for the generator, not for it.
    g = SUMMARY_GENERATOR.c
    shipped_query: Any = (
        sa_select(
            g.generator_id.label("enterprise_id"),
            g.category_code.label("category_code"),
            g.year.label("year"),
            type_coerce(func.sum(g.utilised_kg), TonnesKg()).label("tonnes"),
        )
        .where(g.utilised_kg != 0)
        .group_by(g.generator_id, g.category_code, g.year)
    )
    if ctx.year is not None:
        shipped_query = shipped_query.where(g.year == ctx.year)
    # A region's shipments are summed in one pass and matched to its declarations by the join; a park's or an
    # enterprise's are found through the generator index (as in rates.manifested_sums).
    if ctx.scope.narrow:
        shipped_query = shipped_query.where(scope_condition_for_batches(ctx.scope.condition, g.generator_id))
    shipped = shipped_query.subquery()
    manifest_t = func.coalesce(shipped.c.tonnes, 0)
    gap = col(Declaration.utilised_t) - manifest_t
    allowed = _larger(col(Declaration.utilised_t) * ctx.tol.unmatched_rel, ctx.tol.unmatched_abs_t)
    return (
        _declarations(ctx, manifest_t.label("manifest_t"), gap.label("gap"), allowed.label("allowed"))
        .outerjoin(
            shipped,
            and_(
                shipped.c.enterprise_id == col(Declaration.enterprise_id),
                shipped.c.category_code == col(Declaration.category_code),
                shipped.c.year == col(Declaration.year),
            ),
        )
        .where(
            col(Declaration.utilised_t) > 0,
            ~_own_licence_in_year(LicenceActivity.utilisation.value),
            gap > allowed,
        )
    )


def _unmatched_flag(row: Any) -> Flag:
    return Flag(
        kind=FlagKind.unmatched_utilisation,
        year=row.year,
        subject=f"declaration/{row.id}",
        enterprise_ids=[row.enterprise_id],
        **_said(
            msg(
                "waste.flag.unmatched_utilisation",
                category=row.category_code,
                utilised_t=row.utilised_t,
                manifest_t=row.manifest_t,
            )
        ),
        evidence={
            "category": row.category_code,
            "utilised_t": row.utilised_t,
            "utilised_prior_t": row.utilised_prior_t,
            "manifest_utilised_t": row.manifest_t,
            "gap_t": row.gap,
            "gap_pct": row.gap / row.utilised_t * 100,
            "tolerance_t": row.allowed,
        },
        links=[
            _decl_link(row.id),
            _manifests_link(
                year=row.year, enterprise_id=row.enterprise_id, direction="sent", category=row.category_code
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------------------------
# Manifests


def _batch_columns() -> list[Any]:
    b = Manifest
    return [
        col(b.id),
        col(b.number),
        col(b.shipper_id),
        col(b.receiver_id),
        col(b.category_code),
        col(b.route),
        col(b.year),
        col(b.status),
        col(b.weight_dispatched_t),
        col(b.weight_received_t),
        col(b.rejected_t),
    ]


def _batches(ctx: _Ctx, *extra: Any) -> Select[Any]:
    ends = scope_condition_for_batches(
        ctx.scope.condition, Manifest.shipper_id, Manifest.receiver_id, narrow=ctx.scope.narrow
    )
    return (
        sa_select(*_batch_columns(), *extra)
        .where(ends, _year_of_batch(ctx))
        .order_by(col(Manifest.year), col(Manifest.number), col(Manifest.id))
    )


def _weight_query(ctx: _Ctx) -> Select[Any]:
    b = Manifest
    # As the manifest screen reckons it: what was weighed in plus what was refused, against what left.
    gap = col(b.weight_received_t) + func.coalesce(col(b.rejected_t), 0.0) - col(b.weight_dispatched_t)
    return _batches(ctx, gap.label("gap")).where(
        col(b.status).in_(RECEIVED_STATUSES),
        col(b.weight_received_t).is_not(None),
        col(b.weight_dispatched_t) > 0,
        func.abs(gap) > col(b.weight_dispatched_t) * ctx.tol.weight_rel,
    )


def _weight_flag(row: Any, tol: Tolerances) -> Flag:
    share = row.gap / row.weight_dispatched_t * 100
    return Flag(
        kind=FlagKind.weight_discrepancy,
        year=row.year,
        subject=f"manifest/{row.id}",
        enterprise_ids=[row.shipper_id, row.receiver_id],
        **_said(
            msg(
                "waste.flag.weight_discrepancy",
                number=row.number,
                dispatched_t=row.weight_dispatched_t,
                received_t=row.weight_received_t,
                difference_pct=share,
                tolerance_pct=tol.weight_rel * 100,
            )
        ),
        evidence={
            "number": row.number,
            "category": row.category_code,
            "route": row.route,
            "status": row.status,
            "weight_dispatched_t": row.weight_dispatched_t,
            "weight_received_t": row.weight_received_t,
            "rejected_t": row.rejected_t,
            "difference_t": row.gap,
            "difference_pct": share,
            "tolerance_pct": tol.weight_rel * 100,
        },
        links=[f"/api/v1/manifests/{row.id}"],
    )


def _unlicensed_query(ctx: _Ctx) -> Select[Any]:
    b = Manifest
    on = local_date(func.coalesce(col(b.received_at), col(b.dispatched_at)))
    activity = route_activity()
    moved = or_(
        col(b.status) == ManifestStatus.dispatched.value,
        and_(col(b.status).in_(RECEIVED_STATUSES), col(b.weight_received_t).is_not(None)),
    )
    return _batches(ctx, activity.label("activity"), on.label("on")).where(moved, ~licensed_receiver(activity, on))


def _unlicensed_flags(ctx: _Ctx, rows: Sequence[Any]) -> list[Flag]:
    # The receivers' licences for these categories, to say whether one had lapsed or none was ever held.
    held: dict[tuple[int, str, str], list[Licence]] = {}
    if rows:
        query = sa_select(Licence).where(
            col(Licence.enterprise_id).in_({r.receiver_id for r in rows}),
            col(Licence.category_code).in_({r.category_code for r in rows}),
        )
        for licence in ctx.session.execute(query).scalars():
            held.setdefault((licence.enterprise_id, licence.category_code, licence.activity), []).append(licence)
    flags = []
    for row in rows:
        on: date | None = row.on if isinstance(row.on, date) or row.on is None else date.fromisoformat(str(row.on))
        licences = held.get((row.receiver_id, row.category_code, row.activity), [])
        lapsed = [lic for lic in licences if lic.valid_to is not None and on is not None and lic.valid_to < on]
        latest = max(lapsed, key=lambda lic: lic.valid_to or date.min) if lapsed else None
        activity, category = _activity(row.activity), row.category_code
        why = (
            msg("waste.flag.licence_expired", activity=activity, category=category, expired=str(latest.valid_to))
            if latest
            else msg("waste.flag.no_licence", activity=activity, category=category, on=str(on))
        )
        finding = msg(
            "waste.flag.unlicensed_receiver",
            number=row.number,
            route=_route(row.route),
            receiver=row.receiver_id,
            why=why,
        )
        flags.append(
            Flag(
                kind=FlagKind.unlicensed_receiver,
                year=row.year,
                subject=f"manifest/{row.id}",
                enterprise_ids=[row.shipper_id, row.receiver_id],
                **_said(finding),
                evidence={
                    "number": row.number,
                    "category": row.category_code,
                    "route": row.route,
                    "activity": row.activity,
                    "status": row.status,
                    "on": on.isoformat() if on else None,
                    "weight_dispatched_t": row.weight_dispatched_t,
                    "weight_received_t": row.weight_received_t,
                    "licence_no": latest.licence_no if latest else None,
                    "licence_valid_to": latest.valid_to.isoformat() if latest and latest.valid_to else None,
                },
                links=[f"/api/v1/manifests/{row.id}"],
            )
        )
    return flags


def _capacity_query(ctx: _Ctx) -> Select[Any]:
    b = Manifest
    activity = route_activity()
    intake_query: Any = (
        sa_select(
            col(b.receiver_id).label("receiver_id"),
            col(b.category_code).label("category_code"),
            activity.label("activity"),
            col(b.year).label("year"),
            func.sum(col(b.weight_received_t)).label("intake_t"),
            func.count().label("batches"),
        )
        .where(col(b.status).in_(RECEIVED_STATUSES), col(b.weight_received_t).is_not(None), _year_of_batch(ctx))
        .group_by(col(b.receiver_id), col(b.category_code), activity, col(b.year))
    )
    receivers = scope_condition_for_batches(ctx.scope.condition, b.receiver_id)
    intake = (intake_query.where(receivers) if ctx.scope.narrow else intake_query).subquery()
    # Successive licences may overlap a year (a renewal): the larger capacity applies, never their sum.
    capacity = (
        sa_select(func.max(col(Licence.capacity_t)))
        .where(
            col(Licence.enterprise_id) == intake.c.receiver_id,
            col(Licence.category_code) == intake.c.category_code,
            col(Licence.activity) == intake.c.activity,
            extract("year", col(Licence.valid_from)) <= intake.c.year,
            or_(col(Licence.valid_to).is_(None), extract("year", col(Licence.valid_to)) >= intake.c.year),
        )
        .scalar_subquery()
    )
    in_scope = intake.c.receiver_id.in_(sa_select(col(Enterprise.id)).where(ctx.scope.condition))
    return (
        sa_select(intake, capacity.label("capacity_t"))
        .where(intake.c.intake_t > capacity, in_scope)
        .order_by(intake.c.year, intake.c.receiver_id, intake.c.category_code, intake.c.activity)
    )


def _capacity_flag(row: Any) -> Flag:
    excess = row.intake_t - row.capacity_t
    return Flag(
        kind=FlagKind.capacity_exceeded,
        year=row.year,
        subject=f"enterprise/{row.receiver_id}/{row.category_code}/{row.activity}",
        enterprise_ids=[row.receiver_id],
        **_said(
            msg(
                "waste.flag.capacity_exceeded",
                enterprise=row.receiver_id,
                intake_t=row.intake_t,
                category=row.category_code,
                activity=_activity(row.activity),
                year=row.year,
                capacity_t=row.capacity_t,
            )
        ),
        evidence={
            "category": row.category_code,
            "activity": row.activity,
            "intake_t": row.intake_t,
            "capacity_t": row.capacity_t,
            "excess_t": excess,
            "excess_pct": excess / row.capacity_t * 100 if row.capacity_t else None,
            "batches": row.batches,
        },
        links=[
            f"/api/v1/enterprises/{row.receiver_id}",
            _manifests_link(
                year=row.year, enterprise_id=row.receiver_id, direction="received", category=row.category_code
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------------------------
# Rates above 100% over a whole scope (a region, its regions below, its parks)


_PARAM = {"park": "park", "enterprise": "enterprise"}


def _rate(s: Sums) -> float | None:
    return rate_of(s.generated_t, s.utilised_t, s.utilised_prior_t)


def _scope_flags(ctx: _Ctx) -> list[Flag]:
    scope = ctx.scope
    cats, _ = resolve_category_set(session=ctx.session, region_adcode=scope.region_adcode, year=ctx.year)
    years = (ctx.year, ctx.year) if ctx.year is not None else None
    codes = ",".join(cats.codes)
    # (what a group is, the API parameter that selects it, its column); the scope itself has no column.
    levels: list[tuple[str, str, Any]] = [(scope.ref.kind, _PARAM.get(scope.ref.kind, "region"), None)]
    if scope.ref.kind == "province":
        levels.append(("prefecture", "region", col(Enterprise.prefecture_adcode)))
    elif scope.ref.kind == "prefecture":
        levels.append(("county", "region", col(Enterprise.county_adcode)))
    if scope.ref.kind in ("province", "prefecture", "county"):
        levels.append(("park", "park", col(Enterprise.park_id)))
    flags: list[Flag] = []
    for kind, param, column in levels:
        group = [col(Declaration.year)] if column is None else [col(Declaration.year), column]
        sums = declared_sums(ctx.session, scope.condition, cats.codes, years, group)
        # Enterprises outside every park (or region) are no scope of their own.
        over = {k: v for k, v in sums.items() if (_rate(v) or 0) > 1 and (column is None or k[1] is not None)}
        by = RateBy.park if kind == "park" else RateBy.region
        labels = names(ctx.session, by, [str(k[1]) for k in over]) if column is not None else {}
        for key, s in sorted(over.items(), key=lambda item: (item[0][0], str(item[0][-1]))):
            year, ident = int(key[0]), scope.ref.key if column is None else str(key[1])
            name = scope.ref.name_zh if column is None else labels.get(ident, (None, None))[0]
            query = urlencode({"year": year, param: ident, "categories": codes, "by": "enterprise"})
            flags.append(
                Flag(
                    kind=FlagKind.scope_rate_above_100,
                    year=year,
                    subject=f"{kind}/{ident}",
                    enterprise_ids=[],
                    **_said(
                        msg("waste.flag.scope_rate_above_100", name=name or ident, rate=_rate(s) or 0, categories=codes)
                    ),
                    evidence={
                        "scope_kind": kind,
                        "scope_key": ident,
                        "rate": _rate(s),
                        "generated_t": s.generated_t,
                        "utilised_t": s.utilised_t,
                        "utilised_prior_t": s.utilised_prior_t,
                        "categories": codes,
                    },
                    links=[f"/api/v1/rates?{query}"],
                )
            )
    return flags


# ---------------------------------------------------------------------------------------------------------------
def _unlinked_query(ctx: _Ctx) -> Select[Any]:
    draw = ManifestDraw.__table__.c  # type: ignore[attr-defined]
    drawn = (
        sa_select(
            draw.manifest_id, type_coerce(func.sum(draw.kg), TonnesKg()).label("drawn_t"), func.count().label("lots")
        )
        .where(draw.named.is_(False))
        .group_by(draw.manifest_id)
        .subquery()
    )
    return _batches(ctx, drawn.c.drawn_t, drawn.c.lots).join(drawn, drawn.c.manifest_id == col(Manifest.id))


def _unlinked_flag(row: Any) -> Flag:
    return Flag(
        kind=FlagKind.unlinked_forwarding,
        year=row.year,
        subject=f"manifest/{row.id}",
        enterprise_ids=[row.shipper_id],
        **_said(msg("waste.flag.unlinked_forwarding", number=row.number, drawn_t=row.drawn_t, lots=row.lots)),
        evidence={
            "number": row.number,
            "category": row.category_code,
            "weight_dispatched_t": row.weight_dispatched_t,
            "drawn_t": row.drawn_t,
            "lots": row.lots,
        },
        links=[f"/api/v1/manifests/{row.id}", f"/api/v1/manifests/{row.id}/chain"],
    )


# Putting the kinds together


@dataclass(frozen=True)
class _Kind:
    query: Callable[[_Ctx], Select[Any]] | None
    build: Callable[[_Ctx, Sequence[Any]], list[Flag]]


def _each(make: Callable[[Any], Flag]) -> Callable[[_Ctx, Sequence[Any]], list[Flag]]:
    return lambda _ctx, rows: [make(row) for row in rows]


KINDS: dict[FlagKind, _Kind] = {
    FlagKind.scope_rate_above_100: _Kind(None, lambda ctx, _rows: _scope_flags(ctx)),
    FlagKind.rate_above_100: _Kind(_over_100_query, _each(_over_100_flag)),
    FlagKind.balance_break: _Kind(_balance_query, _each(_balance_flag)),
    FlagKind.unmatched_utilisation: _Kind(_unmatched_query, _each(_unmatched_flag)),
    FlagKind.unlicensed_receiver: _Kind(_unlicensed_query, _unlicensed_flags),
    FlagKind.capacity_exceeded: _Kind(_capacity_query, _each(_capacity_flag)),
    FlagKind.weight_discrepancy: _Kind(_weight_query, lambda ctx, rows: [_weight_flag(r, ctx.tol) for r in rows]),
    FlagKind.unlinked_forwarding: _Kind(_unlinked_query, _each(_unlinked_flag)),
}


def parse_kinds(kinds: Sequence[str] | str | None) -> list[FlagKind]:
    """Flag kinds from names (a list, or one comma-separated string); every kind when none is given."""
    if kinds is None:
        return list(FlagKind)
    raw = kinds.split(",") if isinstance(kinds, str) else [part for k in kinds for part in k.split(",")]
    wanted = [k.strip().lower() for k in raw if k.strip()]
    if not wanted:
        return list(FlagKind)
    unknown = [k for k in wanted if k not in FlagKind.__members__]
    if unknown:
        raise InvalidInput(
            "waste.flag.unknown_kind", field="kind", unknown=", ".join(unknown), kinds=", ".join(FlagKind)
        )
    return [k for k in FlagKind if k.value in wanted]


NAMED_PARAMS = ("enterprise", "receiver", "shipper")  # finding parameters that hold an enterprise's id


def _name_parties(session: Session, flags: Sequence[Flag]) -> None:
    """Give each flag the names of the enterprises its finding names by id (one query for the page)."""
    ids = {v for f in flags for k, v in f.params.items() if k in NAMED_PARAMS and isinstance(v, int)}
    if not ids:
        return
    query = sa_select(col(Enterprise.id), col(Enterprise.name_zh), col(Enterprise.name_en))
    names = {row[0]: Named(row[1], row[2]) for row in session.execute(query.where(col(Enterprise.id).in_(sorted(ids))))}
    for flag in flags:
        flag.names = {
            k: names[v] for k, v in flag.params.items() if k in NAMED_PARAMS and isinstance(v, int) and v in names
        }


def list_flags(
    *,
    session: Session,
    principal: Principal,
    year: int | None = None,
    region: str | None = None,
    park: int | None = None,
    enterprise: str | int | None = None,
    kinds: Sequence[str] | str | None = None,
    offset: int = 0,
    limit: int | None = 100,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    scope: Scope | None = None,
) -> FlagPage:
    """The flags of a scope (the principal's own when none is given), filtered by year and kind, a page at a time.

    `scope`, when the caller resolved it already (once per request), stands for region, park and enterprise.
    """
    if offset < 0:
        raise InvalidInput("waste.flag.negative_offset", field="offset")
    if limit is not None and limit < 1:
        raise InvalidInput("waste.flag.limit_below_one", field="limit")

    selected = parse_kinds(kinds)
    if scope is None:
        scope = resolve_scope(session=session, principal=principal, region=region, park=park, enterprise=enterprise)
    ctx = _Ctx(session=session, scope=scope, year=year, tol=tolerances)
    counts: dict[str, int] = {}
    data: list[Flag] = []
    skip, room = offset, limit  # what is still to skip, and room left on the page (None: no limit)
    for kind in selected:
        spec = KINDS[kind]
        wanted = room is None or room > 0
        if spec.query is None:
            every = spec.build(ctx, [])
            total, part = len(every), every[skip : None if room is None else skip + room] if wanted else []
        elif wanted:
            rows = _page(ctx, spec.query(ctx), skip, room)
            # The page carries the kind's total; an empty page says it only when nothing was to be skipped.
            total = rows[0].total_rows if rows else (0 if skip == 0 else _count(ctx, spec.query(ctx)))
            part = spec.build(ctx, rows)
        else:
            total, part = _count(ctx, spec.query(ctx)), []
        counts[kind.value] = total
        data.extend(part)
        skip = 0 if part else max(skip - total, 0)
        room = None if room is None else room - len(part)
    _name_parties(session, data)
    return FlagPage(
        scope=scope.ref,
        year=year,
        kinds=selected,
        tolerances=asdict(tolerances),
        counts=counts,
        count=sum(counts.values()),
        offset=offset,
        limit=limit,
        data=data,
    )
