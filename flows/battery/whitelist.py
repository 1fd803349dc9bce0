"""The battery whitelist: enterprises listed under the MIIT standard conditions, kept by administrators and bureaus.

MIIT publishes the listed enterprises in batches (第一批, 第二批, ...) under an edition of the conditions (2016年本,
2019年本, 2024年本), separately for cascade use (梯次利用) and recycling (再生利用); a listing can be withdrawn. An
entry says who was listed for which activity, in which edition and batch, from which day, and from which day it was
delisted. The chain audit reads the entries valid on each event's day (flows.battery.audit).

One writer for every channel (the API, the page, the import): an administrator, or a bureau for enterprises in its
region, records an entry or delists one; every change is in the audit log, which is the entry's history. An entry
is known by (enterprise, activity, batch): recording it again with the same values changes nothing; with other
values it is refused by the API and the page (409) and replaced by an import, which states what the list is now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from flows.access.scope import can_read_enterprise
from flows.access.trail import record, snapshot
from flows.battery.chain import RowError, RowsRefused
from flows.kernel.bounds import printable, text_problem
from flows.kernel.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Message, Term, msg
from flows.kernel.principal import Principal
from flows.kernel.uscc import validate_uscc
from models import AuditLog, Enterprise, User, WhitelistEntry
from models.enums import UserRole, WhitelistKind

MAX_LABEL = 32  # the edition and batch columns
FIELDS = ("uscc", "activity", "edition", "batch", "listed_on", "delisted_on")

# The activity as MIIT's lists name it (and the English value itself).
ACTIVITY_ALIASES: dict[str, WhitelistKind] = {
    "梯次利用": WhitelistKind.cascade_use,
    "梯次": WhitelistKind.cascade_use,
    "再生利用": WhitelistKind.recycling,
    "再生": WhitelistKind.recycling,
    "cascade": WhitelistKind.cascade_use,
    "cascadeuse": WhitelistKind.cascade_use,
    **{k.value: k for k in WhitelistKind},
}


class _Problem(Exception):
    """A field's problem, raised inside validation and turned into InvalidInput naming the field."""

    def __init__(self, field: str, problem: Message) -> None:
        super().__init__(field)
        self.field, self.problem = field, problem


def _text(value: object, field: str, limit: int, *, required: bool = True) -> str:
    if value is None:
        value = ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Problem(field, msg("battery.whitelist.not_text"))
    text = value.strip()
    if not text and required:
        raise _Problem(field, msg("battery.whitelist.required"))
    problem = text_problem(text, limit)
    if problem is not None:
        raise _Problem(field, problem)
    return text


def parse_activity(value: object) -> WhitelistKind:
    """An activity from its English value or MIIT's Chinese word."""
    if isinstance(value, WhitelistKind):
        return value
    text = _text(value, "activity", MAX_LABEL)
    found = ACTIVITY_ALIASES.get("".join(text.split()).replace("_", "").lower()) or ACTIVITY_ALIASES.get(text.lower())
    if found is None:
        allowed = [Term(f"battery.whitelist.{k.value}") for k in WhitelistKind]
        raise _Problem(
            "activity", msg("battery.whitelist.unknown_activity", value=printable(text, 40), allowed=allowed)
        )
    return found


def _day(value: object, field: str, *, required: bool) -> date | None:
    if value in (None, ""):
        if required:
            raise _Problem(field, msg("battery.whitelist.required"))
        return None
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        day = value
    else:
        text = _text(value, field, 32)
        try:
            day = date.fromisoformat(text[:10] if "T" in text or " " in text else text)
        except ValueError:
            raise _Problem(field, msg("battery.whitelist.not_a_date", value=printable(text, 40))) from None
    if not 2000 <= day.year <= 2100:
        raise _Problem(field, msg("battery.whitelist.date_outside", value=day.isoformat(), low=2000, high=2100))
    return day


class EntryIn(BaseModel):
    """A whitelist entry as any channel submits it: the enterprise by credit code."""

    uscc: str = Field(description="the listed enterprise's Unified Social Credit Code")
    activity: WhitelistKind = Field(description="cascade_use (梯次利用) or recycling (再生利用)")
    edition: str = Field(description="the edition of the conditions the list was published under, e.g. 2024年本")
    batch: str = Field(description="the published batch, e.g. 第一批")
    listed_on: date = Field(description="first day on the list")
    delisted_on: date | None = Field(default=None, description="first day off the list; none: still listed")

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data["uscc"] = _text(data.get("uscc"), "uscc", 32).upper()
        data["activity"] = parse_activity(data.get("activity"))
        data["edition"] = _text(data.get("edition"), "edition", MAX_LABEL)
        data["batch"] = _text(data.get("batch"), "batch", MAX_LABEL)
        data["listed_on"] = _day(data.get("listed_on"), "listed_on", required=True)
        data["delisted_on"] = _day(data.get("delisted_on"), "delisted_on", required=False)
        return data

    @field_validator("uscc")
    @classmethod
    def _code(cls, value: str) -> str:
        check = validate_uscc(value)
        if not check.ok:
            raise _Problem("uscc", msg("battery.whitelist.bad_uscc", reason=check.problem))
        return check.code

    @model_validator(mode="after")
    def _period(self) -> EntryIn:
        if self.delisted_on is not None and self.delisted_on <= self.listed_on:
            raise _Problem(
                "delisted_on",
                msg("battery.whitelist.delisted_before", delisted_on=self.delisted_on, listed_on=self.listed_on),
            )
        return self


def parse_entry(data: object, *, row: int | None = None) -> EntryIn:
    """Validate a submission, naming the first wrong field (and the row, for imports)."""
    if not isinstance(data, dict):
        raise InvalidInput("battery.whitelist.not_an_object", field="entry", row=row)
    known = {*FIELDS, "name"}  # a published list names the enterprise too; the credit code says who
    for name in data:
        if name not in known:
            raise InvalidInput(
                "battery.whitelist.unknown_field", field=str(name)[:40], row=row, name=printable(name, 40)
            )
    try:
        return EntryIn.model_validate(data)
    except _Problem as exc:
        raise InvalidInput("battery.whitelist.field", field=exc.field, row=row, problem=exc.problem) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, _Problem):
            raise InvalidInput("battery.whitelist.field", field=cause.field, row=row, problem=cause.problem) from None
        where = str(first["loc"][0]) if first["loc"] else "entry"
        problem = msg("battery.whitelist.invalid", detail=printable(first["msg"], 120))
        raise InvalidInput("battery.whitelist.field", field=where, row=row, problem=problem) from None


# ---------------------------------------------------------------------------------------------------------------
# Who keeps the list


def may_keep(principal: Principal) -> bool:
    """Administrators keep the list, and the bureaus for the enterprises of their region."""
    return principal.is_admin or principal.role is UserRole.bureau


def ensure_keeper(principal: Principal) -> None:
    """Refuse every account but administrators and bureaus, before anything is read."""
    if not may_keep(principal):
        raise Forbidden("battery.whitelist.keepers_only", role=Term(f"role.{principal.role.value}"))


def _enterprise(session: Session, principal: Principal, uscc: str, row: int | None) -> Enterprise:
    found = session.exec(select(Enterprise).where(Enterprise.uscc == uscc)).first()
    if found is None or found.id is None:
        raise InvalidInput("battery.whitelist.no_enterprise", field="uscc", row=row, uscc=uscc)
    if not can_read_enterprise(session, principal, found.id):
        raise Forbidden("battery.whitelist.outside_region", field="uscc", row=row, uscc=uscc)
    return found


# ---------------------------------------------------------------------------------------------------------------
# The writer

Outcome = Literal["created", "replaced", "unchanged"]


@dataclass(frozen=True)
class Written:
    entry: WhitelistEntry
    outcome: Outcome


def _locked(session: Session, **where: Any) -> WhitelistEntry | None:
    """The stored entry, locked to the end of the transaction (SQLite's writers hold the whole file)."""
    query = select(WhitelistEntry).with_for_update().execution_options(populate_existing=True)
    for name, value in where.items():
        query = query.where(getattr(WhitelistEntry, name) == value)
    return session.exec(query).first()


def _audit(
    session: Session, principal: Principal, action: str, entry: WhitelistEntry, before: Any, now: datetime
) -> None:
    record(
        session=session,
        principal=principal,
        action=action,
        table="whitelist_entry",
        row_id=entry.id,
        before=before,
        after=snapshot(entry),
        now=now,
        enterprises=(entry.enterprise_id,),
    )


def _flush(session: Session, row: int | None) -> None:
    try:
        session.flush()
    except IntegrityError:
        # Only a concurrent writer of the same entry gets here: every rule was checked before.
        session.rollback()
        raise Conflict("battery.whitelist.concurrent", field="batch", row=row) from None


def record_entry(
    *,
    session: Session,
    principal: Principal,
    entry: EntryIn,
    now: datetime,
    row: int | None = None,
    replace: bool = False,
) -> Written:
    """Create an entry, or replace the stored one of the same enterprise, activity and batch (`replace`: an import).

    Resubmitting what is stored changes nothing; every change is audited. The caller commits.
    """
    ensure_keeper(principal)
    enterprise = _enterprise(session, principal, entry.uscc, row)
    values: dict[str, Any] = {
        "edition": entry.edition,
        "listed_on": entry.listed_on,
        "revoked_on": entry.delisted_on,
    }
    current = _locked(session, enterprise_id=enterprise.id, kind=entry.activity.value, batch=entry.batch)
    if current is not None:
        if all(getattr(current, name) == value for name, value in values.items()):
            return Written(current, "unchanged")
        if not replace:
            raise Conflict("battery.whitelist.exists", field="batch", row=row, entry_id=current.id, batch=entry.batch)
        before = snapshot(current)
        for name, value in values.items():
            setattr(current, name, value)
        session.add(current)
        _flush(session, row)
        _audit(session, principal, "replace", current, before, now)
        return Written(current, "replaced")
    assert enterprise.id is not None
    created = WhitelistEntry(enterprise_id=enterprise.id, kind=entry.activity, batch=entry.batch, **values)
    session.add(created)
    _flush(session, row)
    _audit(session, principal, "create", created, None, now)
    return Written(created, "created")


def save_entry(*, session: Session, principal: Principal, data: object, now: datetime) -> Written:
    """Parse and record one entry (the API and the page); an entry of the same key with other values is refused."""
    ensure_keeper(principal)  # before the content is read: a refusal says nothing about it
    return record_entry(session=session, principal=principal, entry=parse_entry(data), now=now)


def save_entries(
    *, session: Session, principal: Principal, rows: list[Any], lines: list[int] | None, now: datetime
) -> list[Written]:
    """Record many entries (an import or a JSON list), all or none; a refusal names every bad row and column.

    An import states what the list is now: a row of a stored entry's key replaces it.
    """
    ensure_keeper(principal)
    if not rows:
        raise InvalidInput("battery.whitelist.empty", field="file")
    numbers = lines or list(range(1, len(rows) + 1))
    errors: list[RowError] = []
    parsed: list[tuple[int, EntryIn]] = []
    seen: dict[tuple[str, str, str], int] = {}
    for line, data in zip(numbers, rows, strict=True):
        try:
            entry = parse_entry(data, row=line)
        except InvalidInput as exc:
            errors.append(_row_error(line, exc))
            continue
        key = (entry.uscc, entry.activity.value, entry.batch)
        if key in seen:
            errors.append(RowError(line, "batch", msg("battery.whitelist.repeated", line=seen[key])))
            continue
        seen[key] = line
        parsed.append((line, entry))
    written: list[Written] = []
    if not errors:
        for line, entry in parsed:
            try:
                written.append(
                    record_entry(session=session, principal=principal, entry=entry, now=now, row=line, replace=True)
                )
            except (InvalidInput, Forbidden, Conflict) as exc:
                errors.append(_row_error(line, exc))
    if errors:
        session.rollback()
        ordered = sorted(errors, key=lambda e: e.row)
        if all(isinstance(e.error, Forbidden) for e in ordered):
            # Every row was another region's to keep: a refusal of the account, not of the file.
            first = ordered[0]
            raise Forbidden(
                "battery.row_refused", field=first.column, row=first.row, line=first.row, problem=first.problem
            )
        raise RowsRefused(ordered, len(rows))
    return written


def _row_error(line: int, exc: DomainError) -> RowError:
    problem = exc.params.get("problem")
    said = problem if isinstance(problem, Message) else Message(exc.code, exc.params)
    return RowError(line, exc.field or "uscc", said, exc)


def delist(
    *, session: Session, principal: Principal, entry_id: int, delisted_on: object, now: datetime
) -> WhitelistEntry:
    """Delist an entry from a day on; an entry already delisted is refused (409), so of two at once one wins."""
    ensure_keeper(principal)
    try:
        day = _day(delisted_on, "delisted_on", required=True)
    except _Problem as exc:
        raise InvalidInput("battery.whitelist.field", field=exc.field, problem=exc.problem) from None
    assert day is not None
    current = _locked(session, id=entry_id)
    if current is None or not can_read_enterprise(session, principal, current.enterprise_id):
        raise NotFound("battery.whitelist.not_found", field="entry_id", entry_id=entry_id)
    if current.revoked_on is not None:
        raise Conflict(
            "battery.whitelist.already_delisted", field="delisted_on", entry_id=entry_id, day=current.revoked_on
        )
    if day <= current.listed_on:
        problem = msg("battery.whitelist.delisted_before", delisted_on=day, listed_on=current.listed_on)
        raise InvalidInput("battery.whitelist.field", field="delisted_on", problem=problem)
    before = snapshot(current)
    current.revoked_on = day
    session.add(current)
    session.flush()
    _audit(session, principal, "delist", current, before, now)
    return current


# ---------------------------------------------------------------------------------------------------------------
# Reading: the list is published by MIIT, so every signed-in account may read it


class EntryPublic(BaseModel):
    """A whitelist entry with its enterprise's name, as the API shows it."""

    id: int
    enterprise_id: int
    uscc: str
    enterprise_name_zh: str
    enterprise_name_en: str | None
    activity: WhitelistKind
    edition: str
    batch: str
    listed_on: date
    delisted_on: date | None
    listed_today: bool = Field(description="listed on the day asked for (today unless `on` is given)")


class EntryChange(BaseModel):
    """One change of an entry, from the audit log."""

    at: datetime
    action: str
    by: str | None
    channel: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class EntryHistory(EntryPublic):
    history: list[EntryChange]


def _publics(session: Session, query: Any, on: date) -> list[EntryPublic]:
    rows = session.exec(query).all()
    out = []
    for w, e in rows:
        assert w.id is not None
        out.append(
            EntryPublic(
                id=w.id,
                enterprise_id=w.enterprise_id,
                uscc=e.uscc,
                enterprise_name_zh=e.name_zh,
                enterprise_name_en=e.name_en,
                activity=WhitelistKind(w.kind),
                edition=w.edition,
                batch=w.batch,
                listed_on=w.listed_on,
                delisted_on=w.revoked_on,
                listed_today=w.listed_on <= on and (w.revoked_on is None or w.revoked_on > on),
            )
        )
    return out


def list_whitelist(
    *,
    session: Session,
    on: date,
    enterprise_id: int | None = None,
    activity: WhitelistKind | None = None,
    listed_only: bool = False,
) -> list[EntryPublic]:
    """Entries, newest listing first; `listed_only`: those valid on `on`."""
    query = select(WhitelistEntry, Enterprise).join(Enterprise, col(Enterprise.id) == WhitelistEntry.enterprise_id)
    if enterprise_id is not None:
        query = query.where(WhitelistEntry.enterprise_id == enterprise_id)
    if activity is not None:
        query = query.where(WhitelistEntry.kind == activity.value)
    if listed_only:
        query = query.where(
            col(WhitelistEntry.listed_on) <= on,
            col(WhitelistEntry.revoked_on).is_(None) | (col(WhitelistEntry.revoked_on) > on),
        )
    query = query.order_by(col(WhitelistEntry.listed_on).desc(), col(WhitelistEntry.id).desc())
    return _publics(session, query, on)


def _changes(session: Session, ids: list[int]) -> dict[int, list[EntryChange]]:
    found: dict[int, list[EntryChange]] = {i: [] for i in ids}
    if not ids:
        return found
    logs = session.exec(
        select(AuditLog, User.username)
        .join(User, col(User.id) == AuditLog.user_id, isouter=True)
        .where(AuditLog.table_name == "whitelist_entry", col(AuditLog.row_id).in_([str(i) for i in ids]))
        .order_by(col(AuditLog.id))
    ).all()
    for log, name in logs:
        change = EntryChange(
            at=log.at, action=log.action, by=name, channel=str(log.channel), before=log.before, after=log.after
        )
        found[int(log.row_id)].append(change)
    return found


def whitelist_page(
    *, session: Session, on: date, activity: WhitelistKind | None, listed_only: bool
) -> list[EntryHistory]:
    """The whitelist page: the entries with their histories."""
    entries = list_whitelist(session=session, on=on, activity=activity, listed_only=listed_only)
    changes = _changes(session, [e.id for e in entries])
    return [EntryHistory(**e.model_dump(), history=changes[e.id]) for e in entries]


def entry_history(*, session: Session, entry_id: int, on: date) -> EntryHistory:
    """One entry with every change the audit log holds of it, oldest first."""
    query = (
        select(WhitelistEntry, Enterprise)
        .join(Enterprise, col(Enterprise.id) == WhitelistEntry.enterprise_id)
        .where(WhitelistEntry.id == entry_id)
    )
    found = _publics(session, query, on)
    if not found:
        raise NotFound("battery.whitelist.not_found", field="entry_id", entry_id=entry_id)
    return EntryHistory(**found[0].model_dump(), history=_changes(session, [entry_id])[entry_id])
