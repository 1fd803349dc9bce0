"""Licences: reference data kept by the ecology bureaus, one writer for every channel, every version kept.

A licence permits one enterprise one activity (utilisation, disposal, storage, collection, transport) on one waste
category from valid_from (to valid_to, or open-ended), with a yearly capacity in tonnes. It is recorded by a bureau
account of the enterprise's region (or an administrator); an enterprise never licenses itself.

A licence is known by (enterprise, category, activity, valid_from). Replacing it never overwrites silently: the
version it supersedes is copied to licence_revision (what it said, when and by whom it was recorded, when and by
whom it was superseded) and the licence's `revision` goes up by one. The flags read the licence table, that is
the current versions. A replacement through the API or the page names the licence and the revision it replaces:
of two replacements made at once from the same revision, one wins and the other is refused (409) with nothing
lost. An import states what the licences are now: a row with the key of a stored licence replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from flows.access.accounts import Principal
from flows.access.scope import can_read_enterprise, ensure_read_enterprise
from flows.access.trail import record, snapshot
from flows.kernel.bounds import MAX_DECLARED_T, Id, printable, text_problem
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Message, Term, msg
from flows.kernel.quantity import QuantityError, read_number, to_kg
from flows.kernel.quantity import tonnes as kg_as_tonnes
from flows.kernel.uscc import validate_uscc
from flows.waste.manifests import FieldProblem, field_error, validation_problem
from flows.waste.reference import canonical_code
from models import Enterprise, Licence, LicenceRevision, User, WasteCategory
from models.enums import LicenceActivity, UserRole
from models.quantity import Tonnes

# One enterprise's yearly capacity for one category: no plant comes near the ceiling of a declared figure.
MAX_CAPACITY_T = MAX_DECLARED_T
MAX_NUMBER = 64  # the licence_no column
MAX_REVISION = 1_000_000

# The activity as a Chinese permit names it (and the English value itself).
ACTIVITY_ALIASES: dict[str, LicenceActivity] = {
    "利用": LicenceActivity.utilisation,
    "综合利用": LicenceActivity.utilisation,
    "处置": LicenceActivity.disposal,
    "贮存": LicenceActivity.storage,
    "收集": LicenceActivity.collection,
    "运输": LicenceActivity.transport,
    **{a.value: a for a in LicenceActivity},
}

# The fields of a licence as every channel names them, in order (the import's columns, the form's fields).
FIELDS = ("uscc", "activity", "category", "valid_from", "valid_to", "capacity_t", "number")


def parse_activity(value: str) -> LicenceActivity:
    """An activity from its English value or its Chinese word; FieldProblem naming the field otherwise."""
    text = "".join(value.split()).lower()
    found = ACTIVITY_ALIASES.get(text)
    if found is None:
        allowed = [Term(f"waste.licence.activity.{a.value}") for a in LicenceActivity]
        raise FieldProblem(
            "activity",
            msg("waste.licence.unknown_activity", value=printable(value, 40), allowed=allowed)
            if text
            else msg("waste.licence.required"),
        )
    return found


def parse_capacity(value: object) -> Decimal:
    """Tonnes a year, read strictly and exactly, zero or more, bounded, to the kilogram."""
    if isinstance(value, bool):
        raise FieldProblem("capacity_t", msg("waste.licence.not_a_number", value=str(value)))
    try:
        amount = read_number(value)
    except QuantityError as exc:
        raise FieldProblem("capacity_t", exc.problem) from None
    if amount is None:
        raise FieldProblem("capacity_t", msg("waste.licence.required"))
    if amount < 0:
        raise FieldProblem("capacity_t", msg("waste.licence.capacity_negative", value=str(amount)))
    if amount > Decimal(MAX_CAPACITY_T):
        raise FieldProblem("capacity_t", msg("waste.licence.capacity_above", value=str(amount), ceiling=MAX_CAPACITY_T))
    try:
        return kg_as_tonnes(to_kg(amount, "t"))
    except QuantityError as exc:
        raise FieldProblem("capacity_t", exc.problem) from None


def text_field(value: object, field: str, limit: int, *, required: bool) -> str:
    """A submitted text field, trimmed: refused when not text, missing (if required), too long or unprintable."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FieldProblem(field, msg("waste.licence.not_text"))
    text = value.strip()
    if not text and required:
        raise FieldProblem(field, msg("waste.licence.required"))
    if len(text) > limit:
        raise FieldProblem(field, msg("waste.licence.too_long", limit=limit, length=len(text)))
    problem = text_problem(text, limit)
    if problem is not None:
        raise FieldProblem(field, problem)
    return text


class LicenceIn(BaseModel):
    """A licence as submitted by any channel: the enterprise by credit code, the category by code or Chinese name."""

    uscc: str = Field(description="the licensed enterprise's Unified Social Credit Code")
    activity: LicenceActivity = Field(description="utilisation, disposal, storage, collection or transport (利用, ...)")
    category: str = Field(description="the waste category: its code (SW01) or its Chinese name")
    valid_from: date = Field(description="first day of validity")
    valid_to: date | None = Field(default=None, description="last day of validity; none: open-ended")
    capacity_t: Tonnes = Field(description="licensed tonnes a year, exact to the kilogram")
    number: str = Field(description="the licence's number as issued (许可证编号)")
    licence_id: Id | None = Field(default=None, description="the licence this version replaces (with revision)")
    revision: Annotated[int, Field(ge=1, le=MAX_REVISION)] | None = Field(
        default=None, description="the revision being replaced, as last read: a stale one is refused (409)"
    )

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data["uscc"] = text_field(data.get("uscc"), "uscc", 32, required=True).upper()
        data["category"] = text_field(data.get("category"), "category", 64, required=True)
        data["number"] = text_field(data.get("number"), "number", MAX_NUMBER, required=True)
        activity = data.get("activity")
        if not isinstance(activity, LicenceActivity):
            data["activity"] = parse_activity(text_field(activity, "activity", 32, required=True))
        data["capacity_t"] = parse_capacity(data.get("capacity_t"))
        if data.get("valid_to") in ("", None):
            data["valid_to"] = None
        return data

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _plausible(cls, value: date | None) -> date | None:
        if value is not None and not 1950 <= value.year <= 2100:
            raise ValueError(msg("waste.licence.date_outside", value=value.isoformat(), low=1950, high=2100))
        return value

    @model_validator(mode="after")
    def _period(self) -> LicenceIn:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise FieldProblem(
                "valid_to",
                msg("waste.licence.ends_before", valid_to=self.valid_to.isoformat(), valid_from=self.valid_from),
            )
        if (self.licence_id is None) != (self.revision is None):
            missing = "revision" if self.revision is None else "licence_id"
            raise FieldProblem(missing, msg("waste.licence.replace_needs_both"))
        return self


def parse_licence(data: dict[str, Any], *, row: int | None = None) -> LicenceIn:
    """Validate a submission, naming the first wrong field (and the row, for imports)."""
    if not isinstance(data, dict):
        raise field_error("licence", msg("waste.licence.not_an_object"), row)
    try:
        return LicenceIn.model_validate(data)
    except ValidationError as exc:
        raise field_error(*validation_problem(exc, "licence"), row) from None
    except FieldProblem as exc:
        raise field_error(exc.field, exc.problem, row) from None


# ---------------------------------------------------------------------------------------------------------------
# Who may write, and what a submission names


def ensure_licensor(principal: Principal) -> None:
    """Licences are kept by the bureaus (and administrators): refuse every other account."""
    if principal.is_admin or principal.role is UserRole.bureau:
        return
    raise Forbidden("waste.licence.bureaus_only", role=Term(f"role.{principal.role.value}"))


def licensed_enterprise(session: Session, principal: Principal, uscc: str, *, row: int | None = None) -> int:
    """The id of the enterprise a credit code names, if it lies in the principal's region."""
    check = validate_uscc(uscc)
    if not check.ok:
        raise InvalidInput(
            "waste.licence.bad_uscc", field="uscc", row=row, column=Term("field.uscc"), reason=check.problem
        )
    found = session.exec(select(Enterprise.id).where(Enterprise.uscc == check.code)).first()
    if found is None:
        raise InvalidInput("waste.licence.no_enterprise", field="uscc", row=row, column=Term("field.uscc"), uscc=uscc)
    if not can_read_enterprise(session, principal, found):
        raise Forbidden("waste.licence.outside_region", field="uscc", row=row, uscc=check.code)
    return found


def category_code(session: Session, text: str, *, row: int | None = None) -> str:
    """A category's code from its code (any case) or its Chinese name, as the importers read categories."""
    found = session.exec(
        select(WasteCategory).where(
            (col(WasteCategory.code) == canonical_code(text)) | (col(WasteCategory.name_zh) == text)
        )
    ).first()
    if found is None:
        raise InvalidInput(
            "waste.licence.unknown_category", field="category", row=row, column=Term("field.category"), value=text
        )
    # A 2024-catalogue code is licensed under its class, as declarations and manifests are stored.
    return found.parent_code if len(found.code) == 9 and found.parent_code else found.code


# ---------------------------------------------------------------------------------------------------------------
# The writer

Outcome = Literal["created", "replaced", "unchanged"]


@dataclass(frozen=True)
class Written:
    """What a write did: the licence as it now stands and whether it was created, replaced or left as it was."""

    licence: Licence
    outcome: Outcome


def _same(licence: Licence, values: dict[str, Any]) -> bool:
    return all(getattr(licence, name) == value for name, value in values.items())


def _locked(session: Session, **where: Any) -> Licence | None:
    """The licence's stored row, locked to the end of the transaction (SQLite's writers hold the whole file)."""
    query = select(Licence).with_for_update().execution_options(populate_existing=True)
    for name, value in where.items():
        query = query.where(getattr(Licence, name) == value)
    return session.exec(query).first()


def record_licence(
    *,
    session: Session,
    principal: Principal,
    licence: LicenceIn,
    now: datetime,
    row: int | None = None,
    replace_by_key: bool = False,
    audit: bool = True,
) -> Written:
    """Create a licence or replace one, keeping the version it supersedes; audited unless the caller audits.

    A submission with licence_id and revision replaces that licence if revision is still its current one. Without
    them, a licence with the same enterprise, category, activity and valid_from is refused (name it to replace
    it), unless `replace_by_key` (an import): then it is replaced. Resubmitting what is stored changes nothing.
    """
    ensure_licensor(principal)
    enterprise_id = licensed_enterprise(session, principal, licence.uscc, row=row)
    values: dict[str, Any] = {
        "category_code": category_code(session, licence.category, row=row),
        "activity": licence.activity.value,
        "capacity_t": licence.capacity_t,
        "licence_no": licence.number,
        "valid_from": licence.valid_from,
        "valid_to": licence.valid_to,
    }
    key = {name: values[name] for name in ("category_code", "activity", "valid_from")}
    if licence.licence_id is not None:
        current = _locked(session, id=licence.licence_id)
        if current is None or current.enterprise_id != enterprise_id:
            raise NotFound(
                "waste.licence.not_found", field="licence_id", row=row, licence_id=licence.licence_id, uscc=licence.uscc
            )
        if current.revision != licence.revision:
            raise Conflict(
                "waste.licence.stale",
                field="revision",
                row=row,
                licence_id=current.id,
                given=licence.revision,
                revision=current.revision,
            )
        if any(getattr(current, name) != value for name, value in key.items()):
            clash = _locked(session, enterprise_id=enterprise_id, **key)
            if clash is not None and clash.id != current.id:
                raise _exists(clash, row)
    else:
        current = _locked(session, enterprise_id=enterprise_id, **key)
        if current is not None and not _same(current, values) and not replace_by_key:
            raise _exists(current, row)
    if current is not None and _same(current, values):
        return Written(current, "unchanged")
    if current is None:
        created = Licence(
            enterprise_id=enterprise_id, revision=1, recorded_at=now, recorded_by=principal.user_id, **values
        )
        session.add(created)
        _flush(session, row)
        if audit:
            _audit(session, principal, "create", created, None, now)
        return Written(created, "created")
    assert current.id is not None
    before = snapshot(current)
    session.add(
        LicenceRevision(
            licence_id=current.id,
            revision=current.revision,
            enterprise_id=current.enterprise_id,
            category_code=current.category_code,
            activity=current.activity,
            capacity_t=current.capacity_t,
            licence_no=current.licence_no,
            valid_from=current.valid_from,
            valid_to=current.valid_to,
            recorded_at=current.recorded_at,
            recorded_by=current.recorded_by,
            superseded_at=now,
            superseded_by=principal.user_id,
        )
    )
    for name, value in values.items():
        setattr(current, name, value)
    current.revision += 1
    current.recorded_at, current.recorded_by = now, principal.user_id
    session.add(current)
    _flush(session, row)
    if audit:
        _audit(session, principal, "replace", current, before, now)
    return Written(current, "replaced")


def _exists(licence: Licence, row: int | None) -> Conflict:
    return Conflict(
        "waste.licence.exists",
        field="valid_from",
        row=row,
        licence_id=licence.id,
        revision=licence.revision,
        valid_from=licence.valid_from.isoformat(),
    )


def _flush(session: Session, row: int | None) -> None:
    try:
        session.flush()
    except IntegrityError:
        # Only a concurrent writer of the same licence gets here: every rule was checked before.
        session.rollback()
        raise Conflict("waste.licence.concurrent", field="licence_id", row=row) from None


def _audit(session: Session, principal: Principal, action: str, licence: Licence, before: Any, now: datetime) -> None:
    record(
        session=session,
        principal=principal,
        action=action,
        table="licence",
        row_id=licence.id,
        before=before,
        after=snapshot(licence),
        now=now,
        enterprises=(licence.enterprise_id,),
    )


def save_licence(*, session: Session, principal: Principal, data: dict[str, Any], now: datetime) -> Written:
    """Parse and record one licence (the API and the page): the caller commits."""
    ensure_licensor(principal)  # before the content is read: a refusal says nothing about it
    return record_licence(session=session, principal=principal, licence=parse_licence(data), now=now)


# ---------------------------------------------------------------------------------------------------------------
# Reading


class LicenceVersion(BaseModel):
    """One version of a licence: what it said, who recorded it and when, and when it was superseded."""

    revision: int
    category_code: str
    activity: LicenceActivity
    capacity_t: Tonnes
    number: str
    valid_from: date
    valid_to: date | None
    recorded_at: datetime | None
    recorded_by: str | None
    superseded_at: datetime | None = None
    superseded_by: str | None = None


class LicencePublic(LicenceVersion):
    """A licence as it stands, with the versions it superseded (newest first)."""

    id: int
    enterprise_id: int
    category_name_zh: str
    category_name_en: str | None
    history: list[LicenceVersion]


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.exec(select(User.id, User.username).where(col(User.id).in_(wanted)))
    return {int(ident): name for ident, name in rows if ident is not None}


def enterprise_ref(*, session: Session, principal: Principal, enterprise_id: int | None, uscc: str | None) -> int:
    """The enterprise a listing asks for, by id or credit code, if the principal may read it."""
    if enterprise_id is None:
        if not uscc or not uscc.strip():
            raise InvalidInput("waste.licence.enterprise_required", field="enterprise_id")
        code = uscc.strip().upper()
        found = session.exec(select(Enterprise.id).where(Enterprise.uscc == code)).first()
        if found is None:
            raise NotFound("access.enterprise_not_found", field="uscc", enterprise_id=printable(code, 40))
        enterprise_id = found
    ensure_read_enterprise(session, principal, enterprise_id)
    return enterprise_id


def licences_of(*, session: Session, principal: Principal, enterprise_id: int) -> list[LicencePublic]:
    """An enterprise's licences with their histories, for whoever may read the enterprise."""
    ensure_read_enterprise(session, principal, enterprise_id)
    return _publics(session, select(Licence).where(Licence.enterprise_id == enterprise_id))


def get_licence(*, session: Session, principal: Principal, licence_id: int) -> LicencePublic:
    """One licence with its history; out of the principal's reach it is not found."""
    stored = session.get(Licence, licence_id)
    if stored is None or not can_read_enterprise(session, principal, stored.enterprise_id):
        raise NotFound("waste.licence.not_found", field="licence_id", licence_id=licence_id, uscc="")
    return _publics(session, select(Licence).where(Licence.id == licence_id))[0]


def public(session: Session, licence: Licence) -> LicencePublic:
    """The licence as the API shows it."""
    assert licence.id is not None
    return _publics(session, select(Licence).where(Licence.id == licence.id))[0]


def _publics(session: Session, query: Any) -> list[LicencePublic]:
    rows = list(
        session.exec(query.order_by(col(Licence.category_code), col(Licence.activity), col(Licence.valid_from))).all()
    )
    ids = [r.id for r in rows]
    versions: dict[int, list[LicenceRevision]] = {}
    if ids:
        for old in session.exec(
            select(LicenceRevision)
            .where(col(LicenceRevision.licence_id).in_(ids))
            .order_by(col(LicenceRevision.licence_id), col(LicenceRevision.revision).desc())
        ):
            versions.setdefault(old.licence_id, []).append(old)
    names = _names(
        session,
        {r.recorded_by for r in rows}
        | {v.recorded_by for vs in versions.values() for v in vs}
        | {v.superseded_by for vs in versions.values() for v in vs},
    )
    categories = {
        code: (zh, en)
        for code, zh, en in session.exec(
            select(WasteCategory.code, WasteCategory.name_zh, WasteCategory.name_en).where(
                col(WasteCategory.code).in_({r.category_code for r in rows})
            )
        )
    }

    def who(ident: int | None) -> str | None:
        return names.get(ident) if ident is not None else None

    out = []
    for r in rows:
        assert r.id is not None
        history = [
            LicenceVersion(
                revision=v.revision,
                category_code=v.category_code,
                activity=LicenceActivity(v.activity),
                capacity_t=v.capacity_t,
                number=v.licence_no,
                valid_from=v.valid_from,
                valid_to=v.valid_to,
                recorded_at=v.recorded_at,
                recorded_by=who(v.recorded_by),
                superseded_at=v.superseded_at,
                superseded_by=who(v.superseded_by),
            )
            for v in versions.get(r.id, [])
        ]
        zh, en = categories.get(r.category_code, (r.category_code, None))
        out.append(
            LicencePublic(
                id=r.id,
                enterprise_id=r.enterprise_id,
                revision=r.revision,
                category_code=r.category_code,
                category_name_zh=zh,
                category_name_en=en,
                activity=LicenceActivity(r.activity),
                capacity_t=r.capacity_t,
                number=r.licence_no,
                valid_from=r.valid_from,
                valid_to=r.valid_to,
                recorded_at=r.recorded_at,
                recorded_by=who(r.recorded_by),
                history=history,
            )
        )
    return out


def may_record(session: Session, principal: Principal, enterprise_id: int) -> bool:
    """Whether the principal may record licences of this enterprise (a page offers the form only then)."""
    if not (principal.is_admin or principal.role is UserRole.bureau):
        return False
    return can_read_enterprise(session, principal, enterprise_id)


def problem_of(exc: InvalidInput | Conflict | NotFound | Forbidden) -> Message:
    """What a refusal says about its field (the problem a field error wraps, else the whole error)."""
    problem = exc.params.get("problem")
    return problem if isinstance(problem, Message) else Message(exc.code, exc.params)
