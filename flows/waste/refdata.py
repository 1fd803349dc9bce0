"""Reference data the bureaus keep: utilisation targets and waste categories, one writer each, every change audited.

A target holds a scope region, a category set, a year, a value (a fraction), the document it comes from and the
dates it is in force; a prefecture holds its own beside the province's, and the rates look for the most specific
one up the region's lineage. Administrators keep every target, a bureau those of its region and below. A change
names the revision it replaces (of two changes at once one wins, 409 for the other); retiring keeps the row, so
the rates stop reading it and its history stays in the audit log.

Waste categories are the SW classes and the 2024 catalogue's 9-character codes: three digits of the GB/T 4754
industry, a three-digit sequence and the class S01-S59 (S08 unused), each filed under its SW class. Declarations
and manifests may give either form; neither has a column for the code as given, so a 9-character code is stored
and reported under its class, and the catalogue keeps the mapping. Only administrators keep the categories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from flows.access.trail import record, snapshot
from flows.kernel.adcode import lineage, within
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Message, Term, msg
from flows.kernel.principal import Principal
from flows.waste.licences import text_field
from flows.waste.manifests import FieldProblem, field_error, validation_problem
from flows.waste.reference import SICHUAN_SERIES, canonical_code, class_code, class_number
from models import AuditLog, Region, Target, TargetCategory, User, WasteCategory
from models.enums import UserRole

MAX_CATEGORIES = 64  # a target's set: the catalogue has 59 classes
MAX_REVISION = 1_000_000
LOW_DAY, HIGH_DAY = date(1950, 1, 1), date(2100, 12, 31)

# ---------------------------------------------------------------------------------------------------------------
# Parsing: one parser per kind for every channel (API, page, import)


def _fraction(value: object) -> float:
    # "80%" as a plan writes it, or the fraction itself; 80 alone is refused rather than guessed as a percent.
    if isinstance(value, bool) or value is None or value == "":
        raise FieldProblem("value", msg("refdata.required"))
    try:
        if isinstance(value, str):
            text = value.strip()
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        elif isinstance(value, int | float):
            number = float(value)
        else:
            raise ValueError
    except ValueError:
        raise FieldProblem("value", msg("refdata.value_not_number", value=str(value)[:32])) from None
    if not 0 <= number <= 1:
        raise FieldProblem("value", msg("refdata.value_fraction", value=str(value)[:32]))
    return number


def _codes(value: object) -> list[str]:
    if isinstance(value, str):
        value = [part for part in re.split(r"[\s,;，；、]+", value) if part]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FieldProblem("categories", msg("refdata.categories_list"))
    codes = list(dict.fromkeys(canonical_code(v) for v in value if v.strip()))
    if not codes:
        raise FieldProblem("categories", msg("refdata.required"))
    if len(codes) > MAX_CATEGORIES:
        raise FieldProblem("categories", msg("refdata.too_many_categories", limit=MAX_CATEGORIES))
    return codes


def _day(value: date | None) -> date | None:
    if value is not None and not LOW_DAY <= value <= HIGH_DAY:
        raise ValueError(msg("refdata.date_outside", value=value.isoformat(), low=1950, high=2100))
    return value


class _Validity(BaseModel):
    valid_from: date | None = Field(default=None, description="first day in force; none: always")
    valid_to: date | None = Field(default=None, description="last day in force; none: open-ended")

    @field_validator("valid_from", "valid_to", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _plausible(cls, value: date | None) -> date | None:
        return _day(value)

    def _period(self) -> None:
        if self.valid_from is not None and self.valid_to is not None and self.valid_to < self.valid_from:
            raise FieldProblem(
                "valid_to",
                msg("refdata.ends_before", valid_to=self.valid_to.isoformat(), valid_from=self.valid_from.isoformat()),
            )


class TargetIn(_Validity):
    """A target as submitted by any channel: the scope by adcode, the value as a fraction (or "80%")."""

    name: str = Field(description="a unique name, e.g. chengdu-2025")
    series: str = Field(default=SICHUAN_SERIES, description="targets of one series are joined by a straight path")
    scope_adcode: str = Field(description="the region the target is set for (GB/T 2260 adcode)")
    year: int = Field(ge=2000, le=2100, description="the year the target is due")
    value: float = Field(ge=0, le=1, description='the utilisation rate due, as a fraction (0.8) or "80%"')
    categories: list[str] = Field(description="the SW classes the rate counts")
    source: str = Field(default="", description="the document the target comes from")
    revision: int | None = Field(default=None, ge=1, le=MAX_REVISION, description="for a change: the revision read")

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data["name"] = text_field(data.get("name"), "name", 64, required=True)
        data["series"] = text_field(data.get("series"), "series", 64, required=False) or SICHUAN_SERIES
        scope = text_field(data.get("scope_adcode"), "scope_adcode", 6, required=True)
        if not re.fullmatch(r"\d{6}", scope):
            raise FieldProblem("scope_adcode", msg("refdata.bad_adcode", value=scope))
        data["scope_adcode"] = scope
        data["value"] = _fraction(data.get("value"))
        data["categories"] = _codes(data.get("categories"))
        data["source"] = text_field(data.get("source"), "source", 256, required=False)
        if data.get("revision") == "":
            data["revision"] = None
        return data

    @model_validator(mode="after")
    def _check(self) -> TargetIn:
        self._period()
        return self


class CategoryIn(_Validity):
    """A waste category as submitted: an SW class, or a 9-character code of the 2024 catalogue."""

    code: str = Field(description="SW01..SW59, or a 9-character code such as 261-001-S01")
    name_zh: str = Field(description="the Chinese name")
    name_en: str = Field(description="the English name")
    is_bulk: bool | None = Field(default=None, description="a bulk category; a 9-character code takes its class's")
    is_tailings: bool | None = Field(default=None, description="tailings; a 9-character code takes its class's")

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        code = canonical_code(text_field(data.get("code"), "code", 16, required=True))
        if class_number(code) is None:
            raise FieldProblem("code", msg("refdata.bad_category_code", value=code))
        data["code"] = code
        data["name_zh"] = text_field(data.get("name_zh"), "name_zh", 64, required=True)
        data["name_en"] = text_field(data.get("name_en"), "name_en", 96, required=True)
        for name in ("is_bulk", "is_tailings"):
            if data.get(name) in ("", None):
                data[name] = None
        return data

    @model_validator(mode="after")
    def _check(self) -> CategoryIn:
        self._period()
        return self


def _parse(model: type[BaseModel], data: object, default: str, row: int | None) -> Any:
    if not isinstance(data, dict):
        raise field_error(default, msg("refdata.not_an_object"), row)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise field_error(*validation_problem(exc, default), row) from None
    except FieldProblem as exc:
        raise field_error(exc.field, exc.problem, row) from None


def parse_target(data: object, *, row: int | None = None) -> TargetIn:
    """Validate a target as submitted, naming the first wrong field (and the row, for imports)."""
    parsed: TargetIn = _parse(TargetIn, data, "target", row)
    return parsed


def parse_category(data: object, *, row: int | None = None) -> CategoryIn:
    """Validate a category as submitted, naming the first wrong field (and the row, for imports)."""
    parsed: CategoryIn = _parse(CategoryIn, data, "category", row)
    return parsed


# ---------------------------------------------------------------------------------------------------------------
# Who may keep what


def ensure_target_keeper(principal: Principal) -> None:
    """Targets are kept by administrators and the bureaus: refuse every other account."""
    if principal.is_admin or principal.role is UserRole.bureau:
        return
    raise Forbidden("refdata.target_keepers_only", role=Term(f"role.{principal.role.value}"))


def ensure_category_keeper(principal: Principal) -> None:
    """The categories are kept by administrators alone."""
    if not principal.is_admin:
        raise Forbidden("refdata.category_keepers_only", role=Term(f"role.{principal.role.value}"))


def may_keep_scope(principal: Principal, adcode: str) -> bool:
    """Whether the principal may set targets for the region: administrators anywhere, a bureau in its region."""
    if principal.is_admin:
        return True
    return (
        principal.role is UserRole.bureau
        and bool(principal.scope_adcode)
        and within(adcode, principal.scope_adcode or "")
    )


def _scope(session: Session, principal: Principal, adcode: str, row: int | None) -> None:
    if session.get(Region, adcode) is None:
        raise InvalidInput(
            "refdata.unknown_region", field="scope_adcode", row=row, column=Term("field.scope_adcode"), adcode=adcode
        )
    if not may_keep_scope(principal, adcode):
        raise Forbidden("refdata.scope_outside", field="scope_adcode", row=row, adcode=adcode)


# ---------------------------------------------------------------------------------------------------------------
# The target writer

Outcome = Literal["created", "changed", "unchanged", "retired"]


@dataclass(frozen=True)
class TargetWritten:
    """What a write did to a target."""

    target: Target
    outcome: Outcome


def _target_codes(session: Session, codes: list[str], row: int | None) -> list[str]:
    rows = {c.code: c for c in session.exec(select(WasteCategory).where(col(WasteCategory.code).in_(codes))).all()}
    for code in codes:
        found = rows.get(code)
        if found is None:
            raise InvalidInput(
                "refdata.unknown_category", field="categories", row=row, column=Term("field.categories"), code=code
            )
        if len(code) == 9:
            # Records are stored under their class: a target counts classes.
            raise InvalidInput(
                "refdata.target_counts_classes",
                field="categories",
                row=row,
                column=Term("field.categories"),
                code=code,
                parent=found.parent_code or "",
            )
    return sorted(codes)


def _categories_of(session: Session, target_id: int | None) -> list[str]:
    return list(
        session.exec(
            select(TargetCategory.category_code)
            .where(TargetCategory.target_id == target_id)
            .order_by(col(TargetCategory.category_code))
        ).all()
    )


def _target_snapshot(session: Session, target: Target) -> dict[str, Any]:
    return {**(snapshot(target) or {}), "categories": _categories_of(session, target.id)}


def _locked_target(session: Session, **where: Any) -> Target | None:
    query = select(Target).with_for_update().execution_options(populate_existing=True)
    for name, value in where.items():
        query = query.where(getattr(Target, name) == value)
    return session.exec(query).first()


def _flush(session: Session, row: int | None, code: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        # Every rule was checked before: only a concurrent writer of the same record gets here.
        session.rollback()
        raise Conflict(code, field="name", row=row) from None


def _target_values(target: TargetIn) -> dict[str, Any]:
    return {
        "name": target.name,
        "series": target.series,
        "scope_adcode": target.scope_adcode,
        "year": target.year,
        "value": target.value,
        "source": target.source,
        "valid_from": target.valid_from,
        "valid_to": target.valid_to,
    }


def _clash(session: Session, target: TargetIn, own_id: int | None, row: int | None) -> None:
    by_name = session.exec(select(Target).where(Target.name == target.name)).first()
    if by_name is not None and by_name.id != own_id:
        raise Conflict("refdata.target_name_taken", field="name", row=row, name=target.name, target_id=by_name.id)
    same_slot = session.exec(
        select(Target).where(
            Target.scope_adcode == target.scope_adcode, Target.year == target.year, Target.series == target.series
        )
    ).first()
    if same_slot is not None and same_slot.id != own_id:
        raise Conflict(
            "refdata.target_slot_taken",
            field="year",
            row=row,
            name=same_slot.name,
            year=target.year,
            adcode=target.scope_adcode,
        )


def _audit(
    session: Session,
    principal: Principal,
    action: str,
    row: Target | WasteCategory,
    before: dict[str, Any] | None,
    now: datetime,
) -> None:
    """One audit entry for a target (with its category set) or a category."""
    record(
        session=session,
        principal=principal,
        action=action,
        table="target" if isinstance(row, Target) else "waste_category",
        row_id=row.id if isinstance(row, Target) else row.code,
        before=before,
        after=_target_snapshot(session, row) if isinstance(row, Target) else snapshot(row),
        now=now,
    )


def write_target(
    *,
    session: Session,
    principal: Principal,
    target: TargetIn,
    now: datetime,
    target_id: int | None = None,
    row: int | None = None,
    by_name: bool = False,
) -> TargetWritten:
    """Create a target, or change one (target_id with the revision read; an import by name): audited, one writer."""
    ensure_target_keeper(principal)
    _scope(session, principal, target.scope_adcode, row)
    codes = _target_codes(session, target.categories, row)
    values = _target_values(target)
    if target_id is not None:
        current = _locked_target(session, id=target_id)
        if current is None:
            raise NotFound("refdata.target_not_found", field="target_id", row=row, target_id=target_id)
        if target.revision is None:
            raise InvalidInput("refdata.revision_required", field="revision", row=row, column=Term("field.revision"))
        if current.revision != target.revision:
            raise Conflict(
                "refdata.target_stale", field="revision", row=row, given=target.revision, revision=current.revision
            )
    else:
        current = _locked_target(session, name=target.name) if by_name else None
    if current is not None:
        # A bureau changes only targets of its region, and moves them only within it.
        _scope(session, principal, current.scope_adcode, row)
        if current.retired_at is not None:
            raise Conflict("refdata.target_retired", field="target_id", row=row, name=current.name)
        same = all(getattr(current, k) == v for k, v in values.items()) and _categories_of(session, current.id) == codes
        if same:
            return TargetWritten(current, "unchanged")
    _clash(session, target, current.id if current else None, row)
    if current is None:
        created = Target(**values)
        session.add(created)
        _flush(session, row, "refdata.target_concurrent")
        assert created.id is not None
        session.add_all(TargetCategory(target_id=created.id, category_code=c) for c in codes)
        _flush(session, row, "refdata.target_concurrent")
        _audit(session, principal, "create", created, None, now)
        return TargetWritten(created, "created")
    before = _target_snapshot(session, current)
    for name, value in values.items():
        setattr(current, name, value)
    current.revision += 1
    session.add(current)
    for link in session.exec(select(TargetCategory).where(TargetCategory.target_id == current.id)).all():
        session.delete(link)
    session.flush()
    assert current.id is not None
    session.add_all(TargetCategory(target_id=current.id, category_code=c) for c in codes)
    _flush(session, row, "refdata.target_concurrent")
    _audit(session, principal, "change", current, before, now)
    return TargetWritten(current, "changed")


def save_target(
    *, session: Session, principal: Principal, data: dict[str, Any], now: datetime, target_id: int | None = None
) -> TargetWritten:
    """Parse and write one target (the API and the page); the caller commits."""
    ensure_target_keeper(principal)  # before the content is read: a refusal says nothing about it
    return write_target(session=session, principal=principal, target=parse_target(data), now=now, target_id=target_id)


def retire_target(
    *, session: Session, principal: Principal, target_id: int, revision: int, now: datetime
) -> TargetWritten:
    """Retire a target (the revision read): the rates stop reading it; the row and its history stay."""
    ensure_target_keeper(principal)
    current = _locked_target(session, id=target_id)
    if current is None:
        raise NotFound("refdata.target_not_found", field="target_id", target_id=target_id)
    _scope(session, principal, current.scope_adcode, None)
    if current.revision != revision:
        raise Conflict("refdata.target_stale", field="revision", given=revision, revision=current.revision)
    if current.retired_at is not None:
        raise Conflict("refdata.target_retired", field="target_id", name=current.name)
    before = _target_snapshot(session, current)
    current.retired_at = now
    current.revision += 1
    session.add(current)
    _flush(session, None, "refdata.target_concurrent")
    _audit(session, principal, "retire", current, before, now)
    return TargetWritten(current, "retired")


# ---------------------------------------------------------------------------------------------------------------
# The category writer


@dataclass(frozen=True)
class CategoryWritten:
    """What a write did to a category."""

    category: WasteCategory
    outcome: Literal["created", "changed", "unchanged"]


def write_category(
    *, session: Session, principal: Principal, category: CategoryIn, now: datetime, row: int | None = None
) -> CategoryWritten:
    """Create or change a category by its code (administrators); a 9-character code is filed under its class."""
    ensure_category_keeper(principal)
    code = category.code
    parent: WasteCategory | None = None
    if len(code) == 9:
        number = class_number(code)
        assert number is not None  # the parser refused every other code
        parent = session.get(WasteCategory, class_code(number))
        if parent is None:
            raise InvalidInput(
                "refdata.no_class",
                field="code",
                row=row,
                column=Term("field.code"),
                code=code,
                parent=class_code(number),
            )
    values: dict[str, Any] = {
        "name_zh": category.name_zh,
        "name_en": category.name_en,
        "is_bulk": category.is_bulk if category.is_bulk is not None else bool(parent and parent.is_bulk),
        "is_tailings": category.is_tailings
        if category.is_tailings is not None
        else bool(parent and parent.is_tailings),
        "parent_code": parent.code if parent else None,
        "valid_from": category.valid_from,
        "valid_to": category.valid_to,
    }
    if len(code) == 9:
        values["catalogue"] = "2024"
    query = select(WasteCategory).where(WasteCategory.code == code).with_for_update()
    current = session.exec(query.execution_options(populate_existing=True)).first()
    if current is None:
        created = WasteCategory(code=code, **values)
        session.add(created)
        _flush(session, row, "refdata.category_concurrent")
        _audit(session, principal, "create", created, None, now)
        return CategoryWritten(created, "created")
    if all(getattr(current, k) == v for k, v in values.items()):
        return CategoryWritten(current, "unchanged")
    before = snapshot(current)
    for name, value in values.items():
        setattr(current, name, value)
    session.add(current)
    _flush(session, row, "refdata.category_concurrent")
    _audit(session, principal, "change", current, before, now)
    return CategoryWritten(current, "changed")


def save_category(*, session: Session, principal: Principal, data: dict[str, Any], now: datetime) -> CategoryWritten:
    """Parse and write one category (the API and the page); the caller commits."""
    ensure_category_keeper(principal)
    return write_category(session=session, principal=principal, category=parse_category(data), now=now)


# ---------------------------------------------------------------------------------------------------------------
# Reading: targets and categories are published policy, read by every signed-in account


class TargetPublic(BaseModel):
    """A target as it stands."""

    id: int
    name: str
    series: str
    scope_adcode: str
    scope_name_zh: str | None
    scope_name_en: str | None
    year: int
    value: float
    categories: list[str]
    source: str
    valid_from: date | None
    valid_to: date | None
    retired_at: datetime | None
    revision: int
    may_change: bool = False


class HistoryEntry(BaseModel):
    """One audited change of a record: when, by whom, what it did, before and after."""

    at: datetime
    action: str
    user: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class CategoryPublic(BaseModel):
    """A waste category and the class it is filed under."""

    code: str
    name_zh: str
    name_en: str
    is_bulk: bool
    is_tailings: bool
    catalogue: str
    parent_code: str | None
    valid_from: date | None
    valid_to: date | None


def _target_public(session: Session, principal: Principal, target: Target, names: dict[str, Region]) -> TargetPublic:
    region = names.get(target.scope_adcode)
    assert target.id is not None
    return TargetPublic(
        id=target.id,
        name=target.name,
        series=target.series,
        scope_adcode=target.scope_adcode,
        scope_name_zh=region.name_zh if region else None,
        scope_name_en=region.name_en if region else None,
        year=target.year,
        value=target.value,
        categories=_categories_of(session, target.id),
        source=target.source,
        valid_from=target.valid_from,
        valid_to=target.valid_to,
        retired_at=target.retired_at,
        revision=target.revision,
        may_change=target.retired_at is None and may_keep_scope(principal, target.scope_adcode),
    )


def _regions(session: Session, codes: set[str]) -> dict[str, Region]:
    # Names only: a region's boundary is megabytes.
    rows = session.exec(
        select(Region.adcode, Region.name_zh, Region.name_en).where(col(Region.adcode).in_(codes))
    ).all()
    return {adcode: Region.model_construct(adcode=adcode, name_zh=zh, name_en=en) for adcode, zh, en in rows}


def list_targets(
    *, session: Session, principal: Principal, scope_adcode: str | None = None, retired: bool = False
) -> list[TargetPublic]:
    """Targets, by scope and year; a scope gives those set for it and the regions above it (what it is held to)."""
    query = select(Target).order_by(col(Target.scope_adcode), col(Target.series), col(Target.year))
    if scope_adcode is not None:
        query = query.where(col(Target.scope_adcode).in_(lineage(scope_adcode)))
    if not retired:
        query = query.where(col(Target.retired_at).is_(None))
    rows = session.exec(query).all()
    names = _regions(session, {t.scope_adcode for t in rows})
    return [_target_public(session, principal, t, names) for t in rows]


def get_target(*, session: Session, principal: Principal, target_id: int) -> TargetPublic:
    """One target as it stands."""
    found = session.get(Target, target_id)
    if found is None:
        raise NotFound("refdata.target_not_found", field="target_id", target_id=target_id)
    return _target_public(session, principal, found, _regions(session, {found.scope_adcode}))


def history(*, session: Session, table: str, row_id: str) -> list[HistoryEntry]:
    """Every audited change of one record, oldest first."""
    rows = session.exec(
        select(AuditLog, User.username)
        .join(User, col(User.id) == col(AuditLog.user_id), isouter=True)
        .where(AuditLog.table_name == table, AuditLog.row_id == row_id)
        .order_by(col(AuditLog.id))
    ).all()
    return [HistoryEntry(at=e.at, action=e.action, user=who, before=e.before, after=e.after) for e, who in rows]


def target_history(*, session: Session, target_id: int) -> list[HistoryEntry]:
    """A target's changes from the audit log."""
    if session.get(Target, target_id) is None:
        raise NotFound("refdata.target_not_found", field="target_id", target_id=target_id)
    return history(session=session, table="target", row_id=str(target_id))


def list_categories(*, session: Session) -> list[CategoryPublic]:
    """Every category, classes first, each 9-character code after."""
    rows = session.exec(select(WasteCategory)).all()
    ordered = sorted(rows, key=lambda c: (c.parent_code or c.code, c.parent_code is not None, c.code))
    return [CategoryPublic.model_validate(c, from_attributes=True) for c in ordered]


def get_category(*, session: Session, code: str) -> CategoryPublic:
    """One category by code (either form)."""
    found = session.get(WasteCategory, canonical_code(code))
    if found is None:
        raise NotFound("refdata.category_not_found", field="code", code=code[:16])
    return CategoryPublic.model_validate(found, from_attributes=True)


def category_history(*, session: Session, code: str) -> list[HistoryEntry]:
    """A category's changes from the audit log."""
    found = get_category(session=session, code=code)
    return history(session=session, table="waste_category", row_id=found.code)


def problem_of(exc: InvalidInput | Conflict | NotFound | Forbidden) -> Message:
    """What a refusal says about its field (the problem a field error wraps, else the whole error)."""
    problem = exc.params.get("problem")
    return problem if isinstance(problem, Message) else Message(exc.code, exc.params)
