"""Manifests (transfer batches): created by the shipper, dispatched, received or rejected by the receiver, corrected.

Which step may follow which status, who takes it, which fields it requires and which it seals is one table of
data (STEPS), enforced on every write and served to the form so that sealed fields show greyed out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError, model_validator
from sqlalchemy import delete as sa_delete
from sqlalchemy import func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, col, select

from flows.access.accounts import Principal
from flows.access.locks import ensure_unlocked
from flows.access.scope import readable_batches
from flows.access.trail import record, serialise_writers, snapshot
from flows.kernel.bounds import MAX_MANIFEST_T, Code, Id, Key, Moment, printable, quantity_problem
from flows.kernel.clock import CST, stored_utc
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Message, Term, catalogue, msg
from flows.kernel.quantity import ExactTonnes, QuantityError, read_number, to_kg
from flows.kernel.quantity import tonnes as kg_as_tonnes
from flows.waste import alerts, chains, numbers
from flows.waste.reference import stored_code
from models import Enterprise, Manifest, ManifestCorrection, ManifestSource, NumberCounter
from models.enums import ManifestStatus, Route, TransportMode, UserRole, Weighing

WEIGHT_TOLERANCE = Decimal("0.02")  # a received weight more than 2% off the dispatched one is flagged

Actor = Literal["shipper", "receiver", "either"]


@dataclass(frozen=True)
class Step:
    """One step of a manifest's life."""

    name: str
    from_status: frozenset[ManifestStatus | None]
    to_status: ManifestStatus
    actor: Actor
    requires: tuple[str, ...]
    seals: tuple[str, ...]


_DISPATCH_FIELDS = (
    "shipper_id",
    "receiver_id",
    "carrier_id",
    "category_code",
    "route",
    "weight_dispatched_t",
    "dispatched_at",
    "vehicle_plate",
    "transport_mode",
    "packaging",
    "weighing",
)
HANDOVER = ("vehicle_plate", "transport_mode", "packaging", "weighing")
_RECEIPT_FIELDS = ("weight_received_t", "received_at", "rejected_t", "rejection_reason")

STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step(
            "create",
            frozenset({None}),
            ManifestStatus.draft,
            "shipper",
            ("shipper_id", "receiver_id", "category_code", "route", "weight_dispatched_t"),
            (),
        ),
        Step("update", frozenset({ManifestStatus.draft}), ManifestStatus.draft, "shipper", (), ()),
        Step(
            "dispatch",
            frozenset({ManifestStatus.draft}),
            ManifestStatus.dispatched,
            "shipper",
            ("dispatched_at",),
            _DISPATCH_FIELDS,
        ),
        Step(
            "receive",
            frozenset({ManifestStatus.dispatched}),
            ManifestStatus.received,
            "receiver",
            ("weight_received_t", "received_at"),
            _RECEIPT_FIELDS,
        ),
        Step(
            "reject",
            frozenset({ManifestStatus.dispatched}),
            ManifestStatus.rejected,
            "receiver",
            ("rejection_reason",),
            _RECEIPT_FIELDS,
        ),
        Step(
            "cancel",
            frozenset({ManifestStatus.draft, ManifestStatus.dispatched}),
            ManifestStatus.cancelled,
            "shipper",
            ("cancel_reason",),
            ("cancel_reason",),
        ),
        Step(
            "correct",
            frozenset({ManifestStatus.received, ManifestStatus.rejected, ManifestStatus.corrected}),
            ManifestStatus.corrected,
            "either",
            ("reason",),
            (),
        ),
    )
}

# What a correction may change, and which party owns each field.
CORRECTABLE: dict[str, Actor] = {
    "category_code": "shipper",
    "route": "shipper",
    "carrier_id": "shipper",
    "weight_dispatched_t": "shipper",
    "dispatched_at": "shipper",
    "weight_received_t": "receiver",
    "received_at": "receiver",
    "rejected_t": "receiver",
}


def sealed_fields(status: ManifestStatus) -> list[str]:
    """Fields that no ordinary step may change any more in this status (only a correction may)."""
    order = ["create", "dispatch", "receive" if status != ManifestStatus.rejected else "reject"]
    reached = {
        ManifestStatus.draft: 1,
        ManifestStatus.dispatched: 2,
        ManifestStatus.received: 3,
        ManifestStatus.rejected: 3,
        ManifestStatus.corrected: 3,
        ManifestStatus.cancelled: 2,
    }[status]
    fields: list[str] = []
    for name in order[:reached]:
        fields.extend(f for f in STEPS[name].seals if f not in fields)
    if status is ManifestStatus.cancelled:
        fields.extend(f for f in (*_RECEIPT_FIELDS, "cancel_reason") if f not in fields)
    return fields


def next_steps(status: ManifestStatus) -> list[str]:
    """The steps the status allows."""
    return [name for name, step in STEPS.items() if status in step.from_status]


def steps_table() -> list[dict[str, Any]]:
    """The step table as data, for the API and the form."""
    return [
        {
            "step": s.name,
            "from": sorted(str(x) for x in s.from_status if x is not None) or [None],
            "to": str(s.to_status),
            "actor": s.actor,
            "requires": list(s.requires),
            "seals": list(s.seals),
        }
        for s in STEPS.values()
    ]


def field_term(name: str) -> str:
    """A field's name as a message parameter: its label where the catalogue has one, else the name as given."""
    return Term(f"field.{name}") if f"field.{name}" in catalogue("en") else name


class FieldProblem(ValueError):
    """What is wrong with one field, raised where pydantic expects a ValueError: the field and the message."""

    def __init__(self, field: str, problem: Message | str) -> None:
        super().__init__(str(problem))
        self.field = field
        self.problem = problem


# Pydantic's own refusals as messages: the English template gives pydantic's words, the parameters its context.
_PYDANTIC: dict[str, str] = {
    "missing": "waste.input.missing",
    "enum": "waste.input.enum",
    "literal_error": "waste.input.enum",
    "int_parsing": "waste.input.int_parsing",
    "int_type": "waste.input.int_type",
    "int_from_float": "waste.input.int_from_float",
    "float_parsing": "waste.input.float_parsing",
    "float_type": "waste.input.float_type",
    "string_type": "waste.input.string_type",
    "string_too_long": "waste.input.string_too_long",
    "greater_than_equal": "waste.input.greater_than_equal",
    "less_than_equal": "waste.input.less_than_equal",
    "greater_than": "waste.input.greater_than",
    "less_than": "waste.input.less_than",
    "datetime_parsing": "waste.input.datetime_parsing",
    "datetime_from_date_parsing": "waste.input.datetime_from_date_parsing",
    "datetime_type": "waste.input.datetime_type",
    "dict_type": "waste.input.dict_type",
}


def _shown(value: Any) -> Any:
    # Pydantic prints a whole-number bound without its decimals (le=1e9 reads 1000000000).
    return int(value) if isinstance(value, float) and value.is_integer() else value


def validation_problem(exc: ValidationError, default: str) -> tuple[str, Message | str]:
    """The field and the problem of a submission's first error, in words of the catalogue where it has them."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or default
    ctx = first.get("ctx") or {}
    error = ctx.get("error")
    if isinstance(error, FieldProblem):
        return error.field, error.problem
    if isinstance(error, ValueError):
        given = error.args[0] if error.args else ""
        return field, given if isinstance(given, Message) else str(given)
    english = str(first["msg"])
    code = _PYDANTIC.get(first["type"])
    if code is not None:
        params = {name: _shown(value) for name, value in ctx.items() if isinstance(value, (str, int, float))}
        problem = Message(code, params)
        try:
            if problem.render("en") == english:
                return field, problem
        except (KeyError, IndexError, ValueError):
            pass  # a context this version of pydantic words otherwise: its own words below
    return field, msg("waste.input.other", detail=english)


class _Weights(BaseModel):
    """Weights arrive in t or kg and are converted to tonnes once, here."""

    @staticmethod
    def tonnes(data: dict[str, Any], name: str, *, required: bool) -> Decimal | None:
        t_key, kg_key = f"{name}_t", f"{name}_kg"
        given = [k for k in (t_key, kg_key) if data.get(k) not in (None, "")]
        if len(given) > 1:
            raise FieldProblem(t_key, msg("waste.weight_both"))
        if not given:
            if required:
                raise FieldProblem(t_key, msg("waste.required_or", alternative=Term(f"field.{kg_key}")))
            return None
        key = given[0]
        if isinstance(data[key], bool) or not isinstance(data[key], (str, int, float, Decimal)):
            raise FieldProblem(key, msg("waste.not_a_number", value=printable(repr(data[key]), 64)))
        try:
            # Read strictly ("1,5" is refused, "12,500.5" is not) and exactly, then bounded as a float can be.
            amount = read_number(data[key])
        except QuantityError as exc:
            raise FieldProblem(key, exc.problem) from None
        if amount is None:
            raise FieldProblem(key, msg("waste.not_a_number", value=printable(repr(data[key]), 64)))
        # Finite, zero or more, and within one lot (flows/kernel/bounds.py): Infinity and 1e308 never reach a sum.
        problem = (
            quantity_problem(float(amount), MAX_MANIFEST_T * 1000, Term("waste.unit.kg_per_manifest"))
            if key == kg_key
            else quantity_problem(float(amount), MAX_MANIFEST_T, Term("waste.unit.t_per_manifest"))
        )
        if problem is not None:
            raise FieldProblem(key, problem)
        try:
            return kg_as_tonnes(to_kg(amount, "kg" if key == kg_key else "t"))
        except QuantityError as exc:
            raise FieldProblem(key, exc.problem) from None


class SourceIn(BaseModel):
    """A lot a forwarded manifest draws from: its number or id, and the tonnes drawn (none: pro rata)."""

    number: Code | None = None
    id: Id | None = None
    weight_t: Annotated[ExactTonnes, Field(gt=0, le=MAX_MANIFEST_T)] | None = None


MAX_SOURCES = 200  # lots one manifest draws from


class ManifestIn(BaseModel):
    """A new manifest as submitted (the edge of the system: ids or credit codes, t or kg)."""

    shipper_id: Id | None = None
    shipper_uscc: Code | None = None
    receiver_id: Id | None = None
    receiver_uscc: Code | None = None
    carrier_id: Id | None = None
    carrier_uscc: Code | None = None
    category_code: Code
    route: Route
    weight_dispatched_t: Decimal
    dispatched_at: Moment | None = None
    idempotency_key: Key | None = None
    reference: Code | None = Field(default=None, description="the shipper's own number for the batch")
    sources: list[SourceIn] = Field(default_factory=list, max_length=MAX_SOURCES, description="the lots it came from")
    vehicle_plate: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] | None = None
    transport_mode: TransportMode | None = None
    packaging: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    weighing: Weighing | None = None

    @model_validator(mode="before")
    @classmethod
    def _weights(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data["weight_dispatched_t"] = _Weights.tonnes(data, "weight_dispatched", required=True)
            data.pop("weight_dispatched_kg", None)
        return data


def field_error(field: str, problem: Message | str, row: int | None = None) -> InvalidInput:
    """InvalidInput naming the field, its problem nested (the page words both in the reader's language)."""
    return InvalidInput("waste.field_problem", field=field, row=row, column=field_term(field), problem=problem)


def _invalid(exc: ValidationError | ValueError, row: int | None) -> InvalidInput:
    if isinstance(exc, ValidationError):
        return field_error(*validation_problem(exc, "manifest"), row)
    if isinstance(exc, FieldProblem):
        return field_error(exc.field, exc.problem, row)
    return field_error("manifest", str(exc), row)


def parse_manifest(data: dict[str, Any], *, row: int | None = None) -> ManifestIn:
    """Validate a submission, naming the first wrong field (and the row, for imports)."""
    try:
        return ManifestIn.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise _invalid(exc, row) from None


def _enterprise(session: Session, ident: int | None, uscc: str | None, field: str, row: int | None) -> int | None:
    if ident is not None:
        if session.get(Enterprise, ident) is None:
            raise InvalidInput(
                "waste.no_enterprise", field=f"{field}_id", row=row, column=Term(f"field.{field}_id"), ident=ident
            )
        return ident
    if uscc:
        found = session.exec(select(Enterprise.id).where(Enterprise.uscc == uscc.strip().upper())).first()
        if found is None:
            raise InvalidInput(
                "waste.no_enterprise_uscc",
                field=f"{field}_uscc",
                row=row,
                column=Term(f"field.{field}_uscc"),
                uscc=uscc,
            )
        return found
    return None


def _party_of(principal: Principal, batch: Manifest) -> Actor | None:
    if principal.role is not UserRole.enterprise:
        return None
    if principal.enterprise_id == batch.shipper_id:
        return "shipper"
    if principal.enterprise_id == batch.receiver_id:
        return "receiver"
    return None


def _ensure_actor(principal: Principal, batch: Manifest, step: Step) -> None:
    if principal.is_admin:
        return
    party = _party_of(principal, batch)
    if party is None or (step.actor != "either" and party != step.actor):
        raise Forbidden(
            "waste.step_not_yours",
            actor=Term(f"waste.party.{step.actor}"),
            number=batch.number,
            step=Term(f"waste.step.{step.name}"),
        )


def _ensure_status(batch: Manifest, step: Step) -> None:
    status = ManifestStatus(batch.status)
    if status not in step.from_status:
        allowed = [Term(f"waste.step.{name}") for name in next_steps(status)] or [Term("waste.step.none")]
        raise Conflict(
            "waste.wrong_status",
            field="status",
            number=batch.number,
            status=Term(f"waste.status.{status.value}"),
            step=Term(f"waste.step.{step.name}"),
            allowed=allowed,
        )


def _ensure_unlocked(session: Session, batch: Manifest, *, new_record: bool = False) -> None:
    for enterprise_id in (batch.shipper_id, batch.receiver_id):
        ensure_unlocked(session=session, enterprise_id=enterprise_id, year=batch.year, new_record=new_record)


NUMBER_KIND = "manifest"


def reserve_numbers(session: Session, year: int, count: int = 1) -> list[str]:
    """The next `count` manifest numbers of a year (SC<year>-<7 digits>), from the service's own counter.

    The counter row is updated in the caller's transaction: concurrent writers of one year queue on it, a rolled
    back transaction gives its numbers back, and nothing a user typed can move it.
    """
    counters = SQLModel.metadata.tables[str(NumberCounter.__tablename__)]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(counters).values(kind=NUMBER_KIND, year=year, last=0).on_conflict_do_nothing())
    last = session.execute(
        update(counters)
        .where(counters.c.kind == NUMBER_KIND, counters.c.year == year)
        .values(last=counters.c.last + count)
        .returning(counters.c.last)
    ).scalar_one()
    return [f"SC{year}-{n:07d}" for n in range(last - count + 1, last + 1)]


def next_number(session: Session, year: int) -> str:
    """The next manifest number of a year, held by the caller's transaction."""
    return reserve_numbers(session, year)[0]


def _guard_idempotency(session: Session, shipper: int, key: str) -> None:
    # Two first attempts with one key at the same moment: the second waits for the first and then finds its batch.
    # (SQLite writers are serialised by their immediate transactions.)
    if session.get_bind().dialect.name == "postgresql":
        digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": shipper, "b": digest})


def _audit(
    session: Session,
    principal: Principal,
    action: str,
    batch: Manifest,
    before: dict[str, Any] | None,
    now: datetime,
) -> None:
    record(
        session=session,
        principal=principal,
        action=action,
        table="transfer_batch",
        row_id=batch.id,
        before=before,
        after=snapshot(batch),
        now=now,
        enterprises=(batch.shipper_id, batch.receiver_id),
    )


def _same_submission(batch: Manifest, m: ManifestIn, shipper: int, receiver: int, carrier: int | None) -> bool:
    return (batch.receiver_id, batch.carrier_id, batch.category_code, str(batch.route), batch.weight_dispatched_t) == (
        receiver,
        carrier,
        m.category_code,
        m.route.value,
        m.weight_dispatched_t,
    ) and batch.shipper_id == shipper


def parties_of(
    *, session: Session, principal: Principal, manifest: ManifestIn, row: int | None = None
) -> tuple[int, int, int | None]:
    """Shipper, receiver and carrier of a submission (the shipper defaults to the caller's enterprise), checked."""
    shipper = _enterprise(session, manifest.shipper_id, manifest.shipper_uscc, "shipper", row)
    if shipper is None:
        shipper = principal.enterprise_id
    if shipper is None:
        raise InvalidInput("waste.shipper_required", field="shipper_uscc", row=row, column=Term("field.shipper_uscc"))
    receiver = _enterprise(session, manifest.receiver_id, manifest.receiver_uscc, "receiver", row)
    if receiver is None:
        raise InvalidInput(
            "waste.field_problem",
            field="receiver_uscc",
            row=row,
            column=Term("field.receiver_uscc"),
            problem=msg("waste.required_or", alternative=Term("field.receiver_id")),
        )
    if receiver == shipper:
        raise InvalidInput(
            "waste.receiver_is_shipper", field="receiver_uscc", row=row, column=Term("field.receiver_uscc")
        )
    carrier = _enterprise(session, manifest.carrier_id, manifest.carrier_uscc, "carrier", row)
    # A 2024-catalogue code is stored under its class (flows/waste/refdata.py says why).
    manifest.category_code = stored_code(session, manifest.category_code, row=row)
    return shipper, receiver, carrier


def create_manifest(
    *,
    session: Session,
    principal: Principal,
    manifest: ManifestIn,
    now: datetime,
    row: int | None = None,
    late_approved: bool = False,
) -> tuple[Manifest, bool]:
    """Create a draft (dispatched at once when dispatched_at is given); returns it and whether it is new.

    A retry with the same idempotency key returns the batch the first attempt made; the same key with other
    content is refused. `late_approved` is set when a bureau applies a late filing it approved: the lock is then
    overridden and the bureau writes for the shipper named in the filing, which the shipper's own rights admitted.
    """
    if late_approved and principal.role not in (UserRole.bureau, UserRole.admin):
        raise Forbidden("waste.bureau_applies")
    serialise_writers(session)  # before any lot is locked: see flows/access/trail.py
    shipper, receiver, carrier = parties_of(session=session, principal=principal, manifest=manifest, row=row)
    own = principal.role is UserRole.enterprise and principal.enterprise_id == shipper
    if not (principal.is_admin or own or late_approved):
        raise Forbidden("waste.shipper_logs_own")
    if manifest.idempotency_key:
        _guard_idempotency(session, shipper, manifest.idempotency_key)
        existing = session.exec(
            select(Manifest).where(Manifest.shipper_id == shipper, Manifest.idempotency_key == manifest.idempotency_key)
        ).first()
        if existing is not None:
            if _same_submission(existing, manifest, shipper, receiver, carrier):
                return existing, False
            raise Conflict(
                "waste.idempotency_reused",
                field="idempotency_key",
                row=row,
                column=Term("field.idempotency_key"),
                key=manifest.idempotency_key,
                number=existing.number,
            )
    year = reporting_year(manifest.dispatched_at or now)
    batch = Manifest(
        number=next_number(session, year),
        reference=manifest.reference,
        idempotency_key=manifest.idempotency_key,
        shipper_id=shipper,
        receiver_id=receiver,
        carrier_id=carrier,
        category_code=manifest.category_code,
        route=manifest.route,
        year=year,
        status=ManifestStatus.draft,
        weight_dispatched_t=manifest.weight_dispatched_t,
        vehicle_plate=manifest.vehicle_plate or None,
        transport_mode=manifest.transport_mode,
        packaging=manifest.packaging or None,
        weighing=manifest.weighing,
        created_at=now,
    )
    if not late_approved:
        _ensure_unlocked(session, batch, new_record=True)
    session.add(batch)
    session.flush()
    if manifest.sources:
        _record_sources(session, batch, manifest.sources, row)
    _audit(session, principal, "late_filing" if late_approved else "create", batch, None, now)
    if manifest.dispatched_at is not None:
        dispatch(
            session=session,
            principal=principal,
            batch_id=batch.id or 0,
            at=manifest.dispatched_at,
            now=now,
            late_approved=late_approved,
        )
    return batch, True


def _record_sources(session: Session, batch: Manifest, given: Sequence[SourceIn], row: int | None) -> None:
    """Check the lots a forwarding names against what they hold, then keep them; the refusal names the lot."""
    named: list[chains.Named] = []
    for position, source in enumerate(given):
        if (source.id is None) == (source.number is None):
            raise InvalidInput("waste.chain.source_ref", field="sources", row=row, position=position + 1)
        query = select(Manifest).where(
            Manifest.id == source.id if source.id is not None else Manifest.number == source.number
        )
        # Locked, so that two forwardings cannot both draw the last tonnes of one lot (SQLite's writer is alone).
        lot = session.exec(query.with_for_update(of=Manifest).execution_options(populate_existing=True)).first()
        kg = None if source.weight_t is None else int(source.weight_t * 1000)
        named.append(
            chains.Named(
                str(source.number or source.id),
                None if lot is None else chains.hop_of(lot),
                kg,
                None if lot is None else lot.number,
            )
        )
    wanted = [entry.lot.id for entry in named if entry.lot is not None]
    try:
        chains.check_named(chains.hop_of(batch), named, drawn_before=chains.drawn_from(session, wanted))
    except InvalidInput as exc:
        exc.row = row
        raise
    for entry in named:
        assert entry.lot is not None  # check_named refused any lot not found
        weight = None if entry.kg is None else kg_as_tonnes(entry.kg)
        session.add(ManifestSource(manifest_id=batch.id or 0, source_id=entry.lot.id, weight_t=weight))
    session.flush()


def _load(session: Session, principal: Principal, batch_id: int, *, for_update: bool = False) -> Manifest:
    if for_update:
        serialise_writers(session)  # before the row lock: see flows/access/trail.py
    # A step reads the status and writes the next one: the row is locked first (PostgreSQL; SQLite's write
    # transactions hold the database), and re-read, so that of two concurrent steps the second sees the first.
    batch = numbers.get(session, batch_id, readable_batches(principal), for_update=for_update)
    if batch is None:
        raise NotFound("waste.no_manifest", field="batch_id", batch_id=batch_id)
    return batch


def _begin(
    session: Session, principal: Principal, batch_id: int, step_name: str, *, late_approved: bool = False
) -> tuple[Manifest, dict[str, Any]]:
    step = STEPS[step_name]
    batch = _load(session, principal, batch_id, for_update=True)
    if not late_approved:
        _ensure_actor(principal, batch, step)
    _ensure_status(batch, step)
    if not late_approved:
        _ensure_unlocked(session, batch)
    return batch, snapshot(batch) or {}


def _finish(
    session: Session, principal: Principal, batch: Manifest, step_name: str, before: dict[str, Any], now: datetime
) -> Manifest:
    batch.status = STEPS[step_name].to_status
    session.add(batch)
    session.flush()
    _audit(session, principal, step_name, batch, before, now)
    gap_flagged = discrepancy(batch)[1]
    alerts.manifest_step(
        session=session,
        principal=principal,
        batch=batch,
        step=step_name,
        before=before,
        gap_flagged=gap_flagged,
        tolerance_pct=WEIGHT_TOLERANCE * 100,
        now=now,
    )
    return batch


def _aware(moment: datetime) -> datetime:
    # A time without an offset is Beijing time, as ledgers and weighbridges write it (the importer reads it so too).
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def _stored(moment: datetime) -> datetime:
    # Stored in UTC: SQLite keeps no offset, so every stored time must be in the same zone.
    return _aware(moment).astimezone(UTC)


def reporting_year(moment: datetime) -> int:
    """The reporting year of a moment: its year on the Beijing calendar."""
    return _aware(moment).astimezone(CST).year


def dispatch(
    *, session: Session, principal: Principal, batch_id: int, at: datetime, now: datetime, late_approved: bool = False
) -> Manifest:
    """The shipper sends the batch off; what it declared is sealed from here on (a late filing: as approved)."""
    batch, before = _begin(session, principal, batch_id, "dispatch", late_approved=late_approved)
    if _aware(at) > now:
        raise InvalidInput("waste.in_future", field="dispatched_at", column=Term("field.dispatched_at"))
    batch.dispatched_at = _stored(at)
    batch.year = reporting_year(at)
    # The dispatch date decides the reporting year: a draft cannot be dispatched into a locked one.
    if not late_approved:
        _ensure_unlocked(session, batch)
    return _finish(session, principal, batch, "dispatch", before, now)


def receive(
    *,
    session: Session,
    principal: Principal,
    batch_id: int,
    weights: dict[str, Any],
    at: datetime,
    now: datetime,
    rejection_reason: str | None = None,
) -> Manifest:
    """The receiver confirms the weight it weighed; a part it refuses (rejected_t) needs a reason."""
    batch, before = _begin(session, principal, batch_id, "receive")
    try:
        received = _Weights.tonnes(weights, "weight_received", required=True)
        rejected = _Weights.tonnes(weights, "rejected", required=False)
    except ValueError as exc:
        raise _invalid(exc, None) from None
    if rejected and not (rejection_reason or "").strip():
        raise InvalidInput("waste.reason_for_part", field="rejection_reason", column=Term("field.rejection_reason"))
    if batch.dispatched_at and _aware(at) < stored_utc(batch.dispatched_at):
        raise InvalidInput("waste.before_dispatch", field="received_at", column=Term("field.received_at"))
    if _aware(at) > now:
        raise InvalidInput("waste.in_future", field="received_at", column=Term("field.received_at"))
    batch.weight_received_t = received
    batch.rejected_t = rejected
    batch.rejection_reason = (rejection_reason or "").strip() or None
    batch.received_at = _stored(at)
    return _finish(session, principal, batch, "receive", before, now)


def reject(
    *, session: Session, principal: Principal, batch_id: int, reason: str, at: datetime, now: datetime
) -> Manifest:
    """The receiver refuses the whole batch, saying why."""
    batch, before = _begin(session, principal, batch_id, "reject")
    if not reason.strip():
        raise InvalidInput("waste.reason_for_reject", field="rejection_reason", column=Term("field.rejection_reason"))
    batch.rejected_t = batch.weight_dispatched_t
    batch.weight_received_t = None
    batch.rejection_reason = reason.strip()
    batch.received_at = _stored(at)
    return _finish(session, principal, batch, "reject", before, now)


def cancel(*, session: Session, principal: Principal, batch_id: int, reason: str, now: datetime) -> Manifest:
    """The shipper withdraws a draft or a batch not yet received."""
    batch, before = _begin(session, principal, batch_id, "cancel")
    if not reason.strip():
        raise InvalidInput("waste.reason_for_cancel", field="cancel_reason", column=Term("field.cancel_reason"))
    batch.cancel_reason = reason.strip()
    return _finish(session, principal, batch, "cancel", before, now)


def update_draft(
    *, session: Session, principal: Principal, batch_id: int, changes: dict[str, Any], now: datetime
) -> Manifest:
    """Change a draft before dispatch (category, route, receiver, carrier, weight, handover, sources)."""
    batch, before = _begin(session, principal, batch_id, "update")
    merged = {
        "shipper_id": batch.shipper_id,
        "receiver_id": batch.receiver_id,
        "carrier_id": batch.carrier_id,
        "category_code": batch.category_code,
        "route": batch.route,
        "weight_dispatched_t": batch.weight_dispatched_t,
        **{name: getattr(batch, name) for name in HANDOVER},
        **changes,
    }
    if "weight_dispatched_kg" in changes:
        merged.pop("weight_dispatched_t")
    if "receiver_uscc" in changes:
        merged.pop("receiver_id")
    m = parse_manifest(merged)
    receiver = _enterprise(session, m.receiver_id, m.receiver_uscc, "receiver", None)
    if receiver is None or receiver == batch.shipper_id:
        raise InvalidInput("waste.receiver_not_other", field="receiver_uscc", column=Term("field.receiver_uscc"))
    batch.receiver_id = receiver
    batch.carrier_id = _enterprise(session, m.carrier_id, m.carrier_uscc, "carrier", None)
    batch.category_code = stored_code(session, m.category_code)
    batch.route = m.route
    batch.weight_dispatched_t = m.weight_dispatched_t
    for name in HANDOVER:
        setattr(batch, name, getattr(m, name))
    if "sources" in changes:
        # The lots are named anew, checked as on creation; a draft has drawn nothing yet.
        session.execute(sa_delete(ManifestSource).where(col(ManifestSource.manifest_id) == batch.id))
        _record_sources(session, batch, m.sources, None)
    return _finish(session, principal, batch, "update", before, now)


def party_of(principal: Principal, batch: Manifest) -> Actor | None:
    """Which side of the batch the principal's enterprise is on, if any."""
    return _party_of(principal, batch)


def correction_changes(
    *, session: Session, batch: Manifest, party: Actor | None, changes: dict[str, Any]
) -> dict[str, Any]:
    """The changes of a correction, checked and converted (weights to tonnes, times to UTC).

    A party changes only its own side of the batch; `party` None (an administrator) may change either. The same
    check runs when a correction is filed for a locked year and when it is applied.
    """
    values = dict(changes)
    for name in ("weight_dispatched", "weight_received", "rejected"):
        if f"{name}_kg" in values or f"{name}_t" in values:
            try:
                values[f"{name}_t"] = _Weights.tonnes(values, name, required=False)
            except ValueError as exc:
                raise _invalid(exc, None) from None
            values.pop(f"{name}_kg", None)
    unknown = sorted(set(values) - set(CORRECTABLE))
    if unknown:
        raise InvalidInput(
            "waste.not_correctable",
            field=unknown[0],
            column=field_term(unknown[0]),
            correctable=[Term(f"field.{name}") for name in CORRECTABLE],
        )
    if not values:
        raise InvalidInput("waste.no_changes", field="changes", column=Term("field.changes"))
    for name in values:
        owner = CORRECTABLE[name]
        if party is not None and party != owner:
            raise Forbidden(
                "waste.not_your_side", field=name, column=Term(f"field.{name}"), owner=Term(f"waste.party.{owner}")
            )
    if "weight_dispatched_t" in values and values["weight_dispatched_t"] is None:
        raise InvalidInput(
            "waste.dispatched_weight_kept", field="weight_dispatched_t", column=Term("field.weight_dispatched_t")
        )
    if "category_code" in values:
        values["category_code"] = stored_code(session, values["category_code"])
    if "route" in values:
        try:
            values["route"] = Route(values["route"])
        except ValueError:
            raise InvalidInput(
                "waste.unknown_route", field="route", column=Term("field.route"), value=values["route"]
            ) from None
    if "carrier_id" in values and values["carrier_id"] is not None:
        if not isinstance(values["carrier_id"], int) or session.get(Enterprise, values["carrier_id"]) is None:
            raise InvalidInput(
                "waste.no_enterprise_given",
                field="carrier_id",
                column=Term("field.carrier_id"),
                value=values["carrier_id"],
            )
    for name in ("dispatched_at", "received_at"):
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise InvalidInput("waste.not_iso_time", field=name, column=Term(f"field.{name}")) from None
        if not isinstance(value, datetime):
            raise InvalidInput("waste.not_iso_time", field=name, column=Term(f"field.{name}"))
        values[name] = _stored(value)
    dispatched = values.get("dispatched_at", batch.dispatched_at)
    received = values.get("received_at", batch.received_at)
    if dispatched is not None and received is not None and stored_utc(received) < stored_utc(dispatched):
        raise InvalidInput("waste.before_dispatch", field="received_at", column=Term("field.received_at"))
    return values


def correct(
    *,
    session: Session,
    principal: Principal,
    batch_id: int,
    changes: dict[str, Any],
    reason: str,
    now: datetime,
    approved_for: Actor | None = None,
) -> Manifest:
    """Change a received or rejected batch; the old values are kept in its correction history.

    `approved_for` is set when a bureau applies a correction it approved for a locked period: the lock is then
    overridden and the bureau acts for the party that filed it, with that party's rights and no more.
    """
    step = STEPS["correct"]
    batch = _load(session, principal, batch_id, for_update=True)
    _ensure_status(batch, step)
    if not reason.strip():
        raise InvalidInput("waste.correction_reason", field="reason", column=Term("field.reason"))
    approved = approved_for is not None
    if approved:
        if principal.role not in (UserRole.bureau, UserRole.admin):
            raise Forbidden("waste.bureau_applies")
        party: Actor | None = None if approved_for == "either" else approved_for
    else:
        party = _party_of(principal, batch)
        if not principal.is_admin and party is None:
            raise Forbidden("waste.parties_only", number=batch.number)
        _ensure_unlocked(session, batch)
    values = correction_changes(session=session, batch=batch, party=party, changes=changes)
    if values.get("weight_received_t") is not None and str(batch.route) in chains.INTERMEDIATE_ROUTES:
        # A lot cannot be corrected below what has already been drawn from it.
        drawn = chains.drawn_from(session, [batch.id or 0]).get(batch.id or 0, 0)
        if int(values["weight_received_t"] * 1000) < drawn:
            raise InvalidInput("waste.chain.below_drawn", field="weight_received_t", number=batch.number, kg=drawn)
    before = snapshot(batch) or {}
    old = {name: before.get(name) for name in values}
    for name, value in values.items():
        setattr(batch, name, value)
    if "dispatched_at" in values:
        # The reporting year follows the dispatch date; a direct correction cannot move a batch into a locked year.
        batch.year = reporting_year(values["dispatched_at"])
        if not approved:
            _ensure_unlocked(session, batch)
    session.add(
        ManifestCorrection(
            batch_id=batch.id or 0,
            shipper_id=batch.shipper_id,
            at=now,
            user_id=principal.user_id,
            reason=reason.strip(),
            before=old,
            after={name: (snapshot(batch) or {}).get(name) for name in values},
        )
    )
    return _finish(session, principal, batch, "correct", before, now)


@dataclass(frozen=True)
class ManifestFilter:
    year: int | None = None
    status: str | None = None
    category: str | None = None
    route: str | None = None
    enterprise_id: int | None = None
    direction: Literal["any", "sent", "received"] = "any"
    q: str | None = None


SORTS = {
    "number": Manifest.number,
    "dispatched_at": Manifest.dispatched_at,
    "weight": Manifest.weight_dispatched_t,
    "status": Manifest.status,
    "created_at": Manifest.created_at,
}


def list_manifests(
    *,
    session: Session,
    principal: Principal,
    filters: ManifestFilter,
    sort: str = "created_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Manifest], int]:
    """Manifests in scope, filtered, sorted and a page at a time, with the total count."""
    query = select(Manifest).where(readable_batches(principal))
    f = filters
    if f.year is not None:
        query = query.where(Manifest.year == f.year)
    if f.status:
        query = query.where(Manifest.status == f.status)
    if f.category:
        query = query.where(Manifest.category_code == f.category)
    if f.route:
        query = query.where(Manifest.route == f.route)
    if f.enterprise_id is not None:
        sent = col(Manifest.shipper_id) == f.enterprise_id
        received = col(Manifest.receiver_id) == f.enterprise_id
        query = query.where({"sent": sent, "received": received}.get(f.direction, sent | received))
    if f.q:
        query = query.where(col(Manifest.number).contains(f.q.strip().upper()))
    if sort not in SORTS:
        raise InvalidInput("waste.one_of", field="sort", column=Term("field.sort"), choices=", ".join(SORTS))
    count = int(session.exec(select(func.count()).select_from(query.subquery())).one())
    column = col(SORTS[sort])
    ordered = query.order_by(column.desc() if descending else column.asc(), col(Manifest.id).desc())
    return list(session.exec(ordered.offset(offset).limit(limit)).all()), count


def get_manifest(*, session: Session, principal: Principal, batch_id: int) -> Manifest:
    """One manifest in scope."""
    return _load(session, principal, batch_id)


def corrections_of(*, session: Session, batch_id: int) -> list[ManifestCorrection]:
    """A manifest's correction history, oldest first."""
    query = (
        select(ManifestCorrection).where(ManifestCorrection.batch_id == batch_id).order_by(col(ManifestCorrection.id))
    )
    return list(session.exec(query).all())


def discrepancy(batch: Manifest) -> tuple[Decimal | None, bool]:
    """Received (plus refused) minus dispatched, in t, and whether it is beyond the tolerance."""
    if batch.weight_received_t is None:
        return None, False
    gap = batch.weight_received_t + (batch.rejected_t or 0) - batch.weight_dispatched_t
    flagged = batch.weight_dispatched_t > 0 and abs(gap) / batch.weight_dispatched_t > WEIGHT_TOLERANCE
    return gap, flagged
