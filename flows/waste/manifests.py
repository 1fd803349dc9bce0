"""Manifests (transfer batches): created by the shipper, dispatched, received or rejected by the receiver, corrected.

Which step may follow which status, who takes it, which fields it requires and which it seals is one table of
data (STEPS), enforced on every write and served to the form so that sealed fields show greyed out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, col, select

from flows.access.accounts import Principal
from flows.access.locks import ensure_unlocked
from flows.access.scope import readable_batches
from flows.access.trail import record, snapshot
from flows.kernel.bounds import MAX_MANIFEST_T, Code, Id, Key, Moment, printable, quantity_problem
from flows.kernel.clock import CST, stored_utc
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from models import Enterprise, Manifest, ManifestCorrection, NumberCounter, WasteCategory
from models.enums import ManifestStatus, Route, UserRole

WEIGHT_TOLERANCE = 0.02  # a received weight more than 2% off the dispatched one is flagged

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
)
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


class _Weights(BaseModel):
    """Weights arrive in t or kg and are converted to tonnes once, here."""

    @staticmethod
    def tonnes(data: dict[str, Any], name: str, *, required: bool) -> float | None:
        t_key, kg_key = f"{name}_t", f"{name}_kg"
        given = [k for k in (t_key, kg_key) if data.get(k) not in (None, "")]
        if len(given) > 1:
            raise ValueError(f"{t_key}: give the weight in t or in kg, not both")
        if not given:
            if required:
                raise ValueError(f"{t_key}: required (or {kg_key})")
            return None
        key = given[0]
        try:
            if isinstance(data[key], bool):
                raise TypeError
            value = float(data[key])
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{key}: not a number: {printable(repr(data[key]), 64)}") from None
        # Finite, zero or more, and within one lot (flows/kernel/bounds.py): Infinity and 1e308 never reach a sum.
        problem = (
            quantity_problem(value, MAX_MANIFEST_T * 1000, "kg per manifest")
            if key == kg_key
            else quantity_problem(value, MAX_MANIFEST_T, "t per manifest")
        )
        if problem is not None:
            raise ValueError(f"{key}: {problem}")
        return value / 1000 if key == kg_key else value


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
    weight_dispatched_t: float
    dispatched_at: Moment | None = None
    idempotency_key: Key | None = None
    reference: Code | None = Field(default=None, description="the shipper's own number for the batch")

    @model_validator(mode="before")
    @classmethod
    def _weights(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data["weight_dispatched_t"] = _Weights.tonnes(data, "weight_dispatched", required=True)
            data.pop("weight_dispatched_kg", None)
        return data


def _invalid(exc: ValidationError | ValueError, row: int | None) -> InvalidInput:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "manifest"
        message = str(first["msg"]).removeprefix("Value error, ")
        if ":" in message and message.split(":", 1)[0].replace("_", "").isalnum():
            field = message.split(":", 1)[0]
            return InvalidInput(message, field=field, row=row)
        return InvalidInput(f"{field}: {message}", field=field, row=row)
    message = str(exc)
    return InvalidInput(message, field=message.split(":", 1)[0], row=row)


def parse_manifest(data: dict[str, Any], *, row: int | None = None) -> ManifestIn:
    """Validate a submission, naming the first wrong field (and the row, for imports)."""
    try:
        return ManifestIn.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise _invalid(exc, row) from None


def _enterprise(session: Session, ident: int | None, uscc: str | None, field: str, row: int | None) -> int | None:
    if ident is not None:
        if session.get(Enterprise, ident) is None:
            raise InvalidInput(f"{field}_id: no enterprise {ident}", field=f"{field}_id", row=row)
        return ident
    if uscc:
        found = session.exec(select(Enterprise.id).where(Enterprise.uscc == uscc.strip().upper())).first()
        if found is None:
            raise InvalidInput(f"{field}_uscc: no enterprise with credit code {uscc}", field=f"{field}_uscc", row=row)
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
        raise Forbidden(f"only the {step.actor} of manifest {batch.number} may {step.name} it")


def _ensure_status(batch: Manifest, step: Step) -> None:
    status = ManifestStatus(batch.status)
    if status not in step.from_status:
        allowed = ", ".join(next_steps(status)) or "none"
        raise Conflict(
            f"manifest {batch.number} is {status.value}: it cannot be {step.name}ed; allowed next steps: {allowed}",
            field="status",
        )


def _ensure_unlocked(session: Session, batch: Manifest) -> None:
    for enterprise_id in (batch.shipper_id, batch.receiver_id):
        ensure_unlocked(session=session, enterprise_id=enterprise_id, year=batch.year)


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


def create_manifest(
    *, session: Session, principal: Principal, manifest: ManifestIn, now: datetime, row: int | None = None
) -> tuple[Manifest, bool]:
    """Create a draft (dispatched at once when dispatched_at is given); returns it and whether it is new.

    A retry with the same idempotency key returns the batch the first attempt made; the same key with other
    content is refused.
    """
    shipper = _enterprise(session, manifest.shipper_id, manifest.shipper_uscc, "shipper", row)
    if shipper is None:
        shipper = principal.enterprise_id
    if shipper is None:
        raise InvalidInput("shipper_uscc: required (an administrator names the shipper)", field="shipper_uscc", row=row)
    receiver = _enterprise(session, manifest.receiver_id, manifest.receiver_uscc, "receiver", row)
    if receiver is None:
        raise InvalidInput("receiver_uscc: required (or receiver_id)", field="receiver_uscc", row=row)
    if receiver == shipper:
        raise InvalidInput("receiver_uscc: the receiver must differ from the shipper", field="receiver_uscc", row=row)
    carrier = _enterprise(session, manifest.carrier_id, manifest.carrier_uscc, "carrier", row)
    if session.get(WasteCategory, manifest.category_code) is None:
        raise InvalidInput(
            f"category_code: unknown waste category {manifest.category_code!r}", field="category_code", row=row
        )
    if not principal.is_admin and not (principal.role is UserRole.enterprise and principal.enterprise_id == shipper):
        raise Forbidden("only the shipper's own account logs its manifests")
    if manifest.idempotency_key:
        _guard_idempotency(session, shipper, manifest.idempotency_key)
        existing = session.exec(
            select(Manifest).where(Manifest.shipper_id == shipper, Manifest.idempotency_key == manifest.idempotency_key)
        ).first()
        if existing is not None:
            if _same_submission(existing, manifest, shipper, receiver, carrier):
                return existing, False
            raise Conflict(
                f"idempotency_key: {manifest.idempotency_key!r} was used for manifest {existing.number} "
                "with other content",
                field="idempotency_key",
                row=row,
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
        created_at=now,
    )
    _ensure_unlocked(session, batch)
    session.add(batch)
    session.flush()
    _audit(session, principal, "create", batch, None, now)
    if manifest.dispatched_at is not None:
        dispatch(session=session, principal=principal, batch_id=batch.id or 0, at=manifest.dispatched_at, now=now)
    return batch, True


def _load(session: Session, principal: Principal, batch_id: int, *, for_update: bool = False) -> Manifest:
    query = select(Manifest).where(Manifest.id == batch_id, readable_batches(principal))
    if for_update:
        # A step reads the status and writes the next one: the row is locked first (PostgreSQL; SQLite's write
        # transactions hold the database), and re-read, so that of two concurrent steps the second sees the first.
        query = query.with_for_update(of=Manifest).execution_options(populate_existing=True)
    batch = session.exec(query).first()
    if batch is None:
        raise NotFound(f"no manifest {batch_id}", field="batch_id")
    return batch


def _begin(session: Session, principal: Principal, batch_id: int, step_name: str) -> tuple[Manifest, dict[str, Any]]:
    step = STEPS[step_name]
    batch = _load(session, principal, batch_id, for_update=True)
    _ensure_actor(principal, batch, step)
    _ensure_status(batch, step)
    _ensure_unlocked(session, batch)
    return batch, snapshot(batch) or {}


def _finish(
    session: Session, principal: Principal, batch: Manifest, step_name: str, before: dict[str, Any], now: datetime
) -> Manifest:
    batch.status = STEPS[step_name].to_status
    session.add(batch)
    session.flush()
    _audit(session, principal, step_name, batch, before, now)
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


def dispatch(*, session: Session, principal: Principal, batch_id: int, at: datetime, now: datetime) -> Manifest:
    """The shipper sends the batch off; what it declared is sealed from here on."""
    batch, before = _begin(session, principal, batch_id, "dispatch")
    if _aware(at) > now:
        raise InvalidInput("dispatched_at: lies in the future", field="dispatched_at")
    batch.dispatched_at = _stored(at)
    batch.year = reporting_year(at)
    # The dispatch date decides the reporting year: a draft cannot be dispatched into a locked one.
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
        raise InvalidInput("rejection_reason: say why part of the batch was refused", field="rejection_reason")
    if batch.dispatched_at and _aware(at) < stored_utc(batch.dispatched_at):
        raise InvalidInput("received_at: before the batch was dispatched", field="received_at")
    if _aware(at) > now:
        raise InvalidInput("received_at: lies in the future", field="received_at")
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
        raise InvalidInput("rejection_reason: say why the batch was refused", field="rejection_reason")
    batch.rejected_t = batch.weight_dispatched_t
    batch.weight_received_t = None
    batch.rejection_reason = reason.strip()
    batch.received_at = _stored(at)
    return _finish(session, principal, batch, "reject", before, now)


def cancel(*, session: Session, principal: Principal, batch_id: int, reason: str, now: datetime) -> Manifest:
    """The shipper withdraws a draft or a batch not yet received."""
    batch, before = _begin(session, principal, batch_id, "cancel")
    if not reason.strip():
        raise InvalidInput("cancel_reason: say why the batch is cancelled", field="cancel_reason")
    batch.cancel_reason = reason.strip()
    return _finish(session, principal, batch, "cancel", before, now)


def update_draft(
    *, session: Session, principal: Principal, batch_id: int, changes: dict[str, Any], now: datetime
) -> Manifest:
    """Change a draft before dispatch (category, route, receiver, carrier, weight)."""
    batch, before = _begin(session, principal, batch_id, "update")
    merged = {
        "shipper_id": batch.shipper_id,
        "receiver_id": batch.receiver_id,
        "carrier_id": batch.carrier_id,
        "category_code": batch.category_code,
        "route": batch.route,
        "weight_dispatched_t": batch.weight_dispatched_t,
        **changes,
    }
    if "weight_dispatched_kg" in changes:
        merged.pop("weight_dispatched_t")
    if "receiver_uscc" in changes:
        merged.pop("receiver_id")
    m = parse_manifest(merged)
    receiver = _enterprise(session, m.receiver_id, m.receiver_uscc, "receiver", None)
    if receiver is None or receiver == batch.shipper_id:
        raise InvalidInput("receiver_uscc: the receiver must be another enterprise", field="receiver_uscc")
    if session.get(WasteCategory, m.category_code) is None:
        raise InvalidInput(f"category_code: unknown waste category {m.category_code!r}", field="category_code")
    batch.receiver_id = receiver
    batch.carrier_id = _enterprise(session, m.carrier_id, m.carrier_uscc, "carrier", None)
    batch.category_code = m.category_code
    batch.route = m.route
    batch.weight_dispatched_t = m.weight_dispatched_t
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
            f"{unknown[0]}: cannot be corrected (correctable: {', '.join(CORRECTABLE)})", field=unknown[0]
        )
    if not values:
        raise InvalidInput("changes: name at least one field to correct", field="changes")
    for name in values:
        owner = CORRECTABLE[name]
        if party is not None and party != owner:
            raise Forbidden(f"{name} is the {owner}'s to correct", field=name)
    if "weight_dispatched_t" in values and values["weight_dispatched_t"] is None:
        raise InvalidInput("weight_dispatched_t: a dispatched weight cannot be removed", field="weight_dispatched_t")
    if "category_code" in values and session.get(WasteCategory, values["category_code"]) is None:
        raise InvalidInput(f"category_code: unknown waste category {values['category_code']!r}", field="category_code")
    if "route" in values:
        try:
            values["route"] = Route(values["route"])
        except ValueError:
            raise InvalidInput(f"route: {values['route']!r} is not a known route", field="route") from None
    if "carrier_id" in values and values["carrier_id"] is not None:
        if not isinstance(values["carrier_id"], int) or session.get(Enterprise, values["carrier_id"]) is None:
            raise InvalidInput(f"carrier_id: no enterprise {values['carrier_id']!r}", field="carrier_id")
    for name in ("dispatched_at", "received_at"):
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise InvalidInput(f"{name}: not an ISO date-time", field=name) from None
        if not isinstance(value, datetime):
            raise InvalidInput(f"{name}: not an ISO date-time", field=name)
        values[name] = _stored(value)
    dispatched = values.get("dispatched_at", batch.dispatched_at)
    received = values.get("received_at", batch.received_at)
    if dispatched is not None and received is not None and stored_utc(received) < stored_utc(dispatched):
        raise InvalidInput("received_at: before the batch was dispatched", field="received_at")
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
        raise InvalidInput("reason: a correction must say why", field="reason")
    approved = approved_for is not None
    if approved:
        if principal.role not in (UserRole.bureau, UserRole.admin):
            raise Forbidden("only a bureau auditor applies an approved correction")
        party: Actor | None = None if approved_for == "either" else approved_for
    else:
        party = _party_of(principal, batch)
        if not principal.is_admin and party is None:
            raise Forbidden(f"only the parties of manifest {batch.number} may correct it")
        _ensure_unlocked(session, batch)
    values = correction_changes(session=session, batch=batch, party=party, changes=changes)
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
        raise InvalidInput(f"sort: one of {', '.join(SORTS)}", field="sort")
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


def discrepancy(batch: Manifest) -> tuple[float | None, bool]:
    """Received (plus refused) minus dispatched, in t, and whether it is beyond the tolerance."""
    if batch.weight_received_t is None:
        return None, False
    gap = batch.weight_received_t + (batch.rejected_t or 0) - batch.weight_dispatched_t
    flagged = batch.weight_dispatched_t > 0 and abs(gap) / batch.weight_dispatched_t > WEIGHT_TOLERANCE
    return gap, flagged
