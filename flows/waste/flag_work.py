"""Flags as work items: the one writer of a flag's status, assignee and reason, and of the notes and answers on it.

A flag is computed on read (flows/waste/flags.py); its work is kept in flag_work under the flag's key (kind, year and
subject hashed, as flag_notice keys it). A flag without a row is open and unassigned, so nothing is written until a
bureau acts; a flag that clears keeps its row, notes and answers, and they are found again if it comes back.
Every change is one transaction: the row is created if missing, locked, changed, audited and told, or nothing is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from flows.access.files import FileStore, attachments_for_use, store_attachment
from flows.access.scope import Scope, ScopeRef, can_read_enterprise, readable_enterprises, require_role, resolve_scope
from flows.access.trail import record, snapshot
from flows.kernel.bounds import MAX_ID
from flows.kernel.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal, principal_of
from flows.notices.inbox import bilingual, notify, of_enterprises, of_users, term
from flows.waste.alerts import flag_key
from flows.waste.flags import Flag, FlagKind, list_flags
from models import Attachment, AuditLog, Enterprise, FlagEntry, FlagNotice, FlagWork, User
from models.enums import Channel, UserRole

MAX_TEXT = 2000  # a note or an answer
MAX_REASON = 1000
MAX_BULK = 500  # flags in one bulk action
MAX_NAME = 100  # the enterprise-name filter
CHUNK = 500  # keys per IN list


class FlagStatus(StrEnum):
    """Where the bureau stands on a flag."""

    open = "open"
    under_review = "under_review"
    resolved = "resolved"
    dismissed = "dismissed"


# What the lock checklist and the dashboard count as still to be dealt with.
UNSETTLED = (FlagStatus.open, FlagStatus.under_review)


class FlagChange(BaseModel):
    """A change to a flag's work: a new status (dismissed needs a reason), an assignee (null to unassign), or both."""

    model_config = ConfigDict(extra="forbid")
    status: FlagStatus | None = None
    assignee_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    reason: str | None = Field(default=None, max_length=MAX_REASON)


def parse_change(data: dict[str, Any], model: type[FlagChange] = FlagChange) -> Any:
    """A change from a form's fields, refused naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "status"
        raise InvalidInput("flagwork.invalid_field", field=field, field_name=Term(f"flagwork.field.{field}")) from None


class BulkChange(FlagChange):
    """One change applied to many flags, all or none."""

    keys: list[str] = Field(max_length=MAX_BULK)


class EntryIn(BaseModel):
    """A note."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class AnswerIn(EntryIn):
    """An answer, with the id of an evidence file uploaded first (POST /api/v1/attachments) if any."""

    attachment_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class AttachmentRef(BaseModel):
    """An answer's evidence file: its number, name and type (the bytes at /attachments/{id})."""

    id: int
    filename: str
    media_type: str


class EntryPublic(BaseModel):
    """A note or an answer as it reads: who wrote it, when, and its attachment if any."""

    id: int
    kind: str
    text: str
    author: str | None
    enterprise_id: int | None
    written_at: datetime
    attachment: AttachmentRef | None = None


class WorkedFlag(Flag):
    """A flag with its work: its key, status, assignee, reason, size in tonnes, and the notes and answers on it."""

    key: str
    status: FlagStatus
    assignee_id: int | None
    assignee: str | None
    reason: str | None
    updated_at: datetime | None
    tonnes: Decimal
    notes: list[EntryPublic]  # the bureau's own: empty for anyone else
    answers: list[EntryPublic]


class WorkPage(BaseModel):
    """A page of flags with their work, the counts by kind and by status, after the filters."""

    scope: ScopeRef | None = None
    kinds: list[FlagKind] = Field(default_factory=list)
    tolerances: dict[str, float] = Field(default_factory=dict)
    year: int | None
    counts: dict[str, int]
    status_counts: dict[str, int]
    count: int
    offset: int
    limit: int | None
    data: list[WorkedFlag]


def key_of(flag: Flag) -> str:
    """The key a flag's work is kept under (the one flag_notice uses)."""
    return flag_key(flag.kind.value, flag.year, flag.subject)


def _number(value: Any) -> Decimal:
    if value is None or isinstance(value, bool):
        return Decimal(0)
    return abs(Decimal(str(value)))


# The tonnes a flag is about, by kind: what is off, or what moved without a licence.
_SIZE = {
    FlagKind.balance_break: "residual_t",
    FlagKind.rate_above_100: "excess_t",
    FlagKind.unmatched_utilisation: "gap_t",
    FlagKind.capacity_exceeded: "excess_t",
    FlagKind.weight_discrepancy: "difference_t",
    FlagKind.unlinked_forwarding: "drawn_t",
}


def flag_tonnes(flag: Flag) -> Decimal:
    """The size of a flag in tonnes: the quantity it says is off (a rate above 100%: what was used beyond supply)."""
    ev = flag.evidence
    if flag.kind is FlagKind.unlicensed_receiver:
        return _number(
            ev.get("weight_received_t") if ev.get("weight_received_t") is not None else ev.get("weight_dispatched_t")
        )
    if flag.kind is FlagKind.scope_rate_above_100:
        return _number(
            _number(ev.get("utilised_t")) - _number(ev.get("generated_t")) - _number(ev.get("utilised_prior_t"))
        )
    return _number(ev.get(_SIZE[flag.kind]))


def _parties(flag: Flag | None, work: FlagWork | None) -> list[int]:
    if flag is not None:
        ids = list(flag.enterprise_ids)
        what, _, rest = flag.subject.partition("/")
        if not ids and what == "enterprise":
            ids = [int(rest.split("/")[0])]
        return ids
    if work is None:
        return []
    return [e for e in (work.enterprise_id, work.other_enterprise_id) if e is not None]


def _reads_subject(session: Session, principal: Principal, subject: str, parties: Sequence[int]) -> bool:
    """Whether the principal reads what a flag is about (its enterprises, else its region or park)."""
    if parties:
        return any(can_read_enterprise(session, principal, e) for e in parties)
    what, _, ident = subject.partition("/")
    try:
        if what in ("province", "prefecture", "county"):
            resolve_scope(session=session, principal=principal, region=ident)
            return True
        if what == "park" and ident.isdigit():
            resolve_scope(session=session, principal=principal, park=int(ident))
            return True
    except DomainError:
        return False
    return False


@dataclass(frozen=True)
class Upload:
    """A file sent with an answer, and the store that keeps it."""

    store: FileStore
    data: bytes
    filename: str


@dataclass(frozen=True)
class Found:
    """A flag found by its key: as computed now (None once it has cleared) and its stored work (None if none)."""

    key: str
    kind: str
    year: int
    subject: str
    flag: Flag | None
    work: FlagWork | None
    parties: list[int]


def find_flag(
    *, session: Session, principal: Principal, key: str, for_update: bool = False, now: datetime | None = None
) -> Found:
    """A flag the principal may read, by key, as computed now and with its work; not found otherwise."""
    key = key.strip().lower()
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise NotFound("flagwork.no_flag", field="key", key=key[:64])
    work = session.get(FlagWork, key)
    ident = (work.kind, work.year, work.subject) if work else None
    if ident is None:
        notice = session.get(FlagNotice, key)
        ident = (notice.kind, notice.year, notice.subject) if notice else None
    if ident is None:
        every = list_flags(session=session, principal=principal, limit=None).data
        flag = next((f for f in every if key_of(f) == key), None)
    else:
        kind, year, subject = ident
        page = list_flags(session=session, principal=principal, year=year, kinds=[kind], limit=None)
        flag = next((f for f in page.data if f.subject == subject), None)
    if flag is None and (work is None or not _reads_subject(session, principal, work.subject, _parties(None, work))):
        raise NotFound("flagwork.no_flag", field="key", key=key)
    if for_update:
        assert now is not None
        work = _locked(session, key, flag, work, now)
    if flag is not None:
        return Found(key, flag.kind.value, flag.year, flag.subject, flag, work, _parties(flag, work))
    assert work is not None
    return Found(key, work.kind, work.year, work.subject, None, work, _parties(None, work))


def _locked(session: Session, key: str, flag: Flag | None, work: FlagWork | None, now: datetime) -> FlagWork:
    """The flag's work row, created open if missing, locked until the transaction ends."""
    if work is None and flag is not None:
        parties = _parties(flag, None)
        table = FlagWork.__table__  # type: ignore[attr-defined]
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        row = {
            "key": key,
            "kind": flag.kind.value,
            "year": flag.year,
            "subject": flag.subject[:128],
            "enterprise_id": parties[0] if parties else None,
            "other_enterprise_id": parties[1] if len(parties) > 1 else None,
            "status": FlagStatus.open.value,
            "version": 0,
            "updated_at": now,
        }
        # Two first actions at once both insert: one row results, and both then queue on its lock.
        session.execute(insert(table).values(**row).on_conflict_do_nothing())
    query = select(FlagWork).where(FlagWork.key == key).with_for_update().execution_options(populate_existing=True)
    locked = session.exec(query).first()
    if locked is None:
        raise NotFound("flagwork.no_flag", field="key", key=key)
    return locked


def _require_worker(principal: Principal) -> None:
    require_role(principal, UserRole.bureau)


def _assignee(session: Session, found: Found, assignee_id: int) -> User:
    user = session.get(User, assignee_id)
    if user is None or not user.is_active or UserRole(user.role) is not UserRole.bureau:
        raise InvalidInput("flagwork.assignee_not_bureau", field="assignee_id", assignee_id=assignee_id)
    if not _reads_subject(session, principal_of(user, Channel.system), found.subject, found.parties):
        raise InvalidInput("flagwork.assignee_outside_scope", field="assignee_id", username=user.username)
    return user


def _finding(found: Found) -> dict[str, str]:
    finding = found.flag.finding() if found.flag else None
    return bilingual(finding.render("zh-CN"), finding.render("en")) if finding else bilingual("–", "–")


def _notify_parties(
    session: Session, principal: Principal, found: Found, kind: str, now: datetime, **params: Any
) -> None:
    if not found.parties:
        return
    notify(
        session=session,
        to=of_enterprises(*found.parties),
        kind=kind,
        subject="flag",
        subject_id=found.key,
        params={"year": found.year, "finding": _finding(found), **params},
        now=now,
        actor_id=principal.user_id,
    )


def change_flag(
    *, session: Session, principal: Principal, key: str, change: FlagChange, now: datetime, strict: bool = True
) -> FlagWork:
    """Set a flag's status (dismissed needs a reason) or assignee; audited, and the enterprise told of a new status.

    Nothing changed is a conflict when `strict` (two bureaus resolving one flag at once: the second is told it is
    resolved already); a bulk action passes over flags already as asked.
    """
    _require_worker(principal)
    given = change.model_fields_set
    if not given & {"status", "assignee_id"}:
        raise InvalidInput("flagwork.nothing_to_change", field="status")
    reason = (change.reason or "").strip() or None
    if change.status is FlagStatus.dismissed and not reason:
        raise InvalidInput("flagwork.dismiss_needs_reason", field="reason")
    found = find_flag(session=session, principal=principal, key=key, for_update=True, now=now)
    work = found.work
    assert work is not None
    assignee = _assignee(session, found, change.assignee_id) if change.assignee_id is not None else None
    before = snapshot(work)
    new_status = change.status.value if change.status is not None and "status" in given else work.status
    new_assignee = (assignee.id if assignee else None) if "assignee_id" in given else work.assignee_id
    status_moved = new_status != work.status
    if not status_moved and new_assignee == work.assignee_id:
        if strict:
            raise Conflict(
                "flagwork.unchanged", field="status", status=Term(f"flagwork.status.{work.status}"), key=found.key
            )
        return work
    if status_moved:
        work.status = new_status
        work.reason = reason
    work.assignee_id = new_assignee
    work.version += 1
    work.updated_by = principal.user_id
    work.updated_at = now
    session.add(work)
    session.flush()
    record(
        session=session,
        principal=principal,
        action="flag_status" if status_moved else "flag_assign",
        table="flag_work",
        row_id=found.key,
        before=before,
        after=snapshot(work),
        now=now,
        enterprises=tuple(found.parties[:2]),
    )
    if status_moved:
        _notify_parties(session, principal, found, "flag_worked", now, status=term(f"flagwork.status.{new_status}"))
    if assignee is not None and new_assignee != (before or {}).get("assignee_id"):
        notify(
            session=session,
            to=of_users(assignee.id),
            kind="flag_assigned",
            subject="flag",
            subject_id=found.key,
            params={"year": found.year, "finding": _finding(found)},
            now=now,
            actor_id=principal.user_id,
        )
    return work


def bulk_change(*, session: Session, principal: Principal, change: BulkChange, now: datetime) -> list[FlagWork]:
    """One change over many flags in one transaction: every flag changes, or (the first refusal raised) none does."""
    _require_worker(principal)
    keys = list(dict.fromkeys(k.strip().lower() for k in change.keys))
    if not keys:
        raise InvalidInput("flagwork.none_selected", field="keys")
    one = FlagChange.model_validate(change.model_dump(include=change.model_fields_set - {"keys"}))
    done = []
    for row, key in enumerate(keys, start=1):
        try:
            done.append(change_flag(session=session, principal=principal, key=key, change=one, now=now, strict=False))
        except DomainError as exc:
            exc.row = row
            raise
    return done


def _write_entry(
    session: Session,
    principal: Principal,
    found: Found,
    kind: str,
    text: str,
    now: datetime,
    enterprise_id: int | None,
    attachment_id: int | None = None,
) -> FlagEntry:
    body = text.strip()
    if not body:
        raise InvalidInput("flagwork.empty_text", field="text")
    if len(body) > MAX_TEXT:
        raise InvalidInput("flagwork.text_too_long", field="text", max=MAX_TEXT)
    entry = FlagEntry(
        flag_key=found.key,
        kind=kind,
        body=body,
        enterprise_id=enterprise_id,
        author_id=principal.user_id,
        attachment_id=attachment_id,
        written_at=now,
    )
    session.add(entry)
    session.flush()
    record(
        session=session,
        principal=principal,
        action=f"flag_{kind}",
        table="flag_entry",
        row_id=entry.id,
        before=None,
        after=snapshot(entry),
        now=now,
        enterprises=tuple(found.parties[:2]),
    )
    return entry


def add_note(*, session: Session, principal: Principal, key: str, text: str, now: datetime) -> FlagEntry:
    """A bureau's note on a flag (read by bureaus only)."""
    _require_worker(principal)
    found = find_flag(session=session, principal=principal, key=key, for_update=True, now=now)
    return _write_entry(session, principal, found, "note", text, now, None)


def _bureaus_of(session: Session, enterprise_id: int) -> ColumnElement[bool]:
    ent = session.get(Enterprise, enterprise_id)
    regions = [r for r in (ent.county_adcode, ent.prefecture_adcode) if r] if ent else []
    return and_(col(User.role) == UserRole.bureau.value, col(User.scope_adcode).in_(regions))


def answer_flag(
    *,
    session: Session,
    principal: Principal,
    key: str,
    text: str,
    now: datetime,
    attachment_id: int | None = None,
    upload: Upload | None = None,
) -> FlagEntry:
    """An enterprise's answer to a flag on it, with an evidence file (uploaded before, or with the answer) if any.

    The bureaus of its county and city (and the assignee) are told.
    """
    if principal.role is not UserRole.enterprise or principal.enterprise_id is None:
        raise Forbidden("flagwork.only_enterprise_answers")
    found = find_flag(session=session, principal=principal, key=key, for_update=True, now=now)
    if principal.enterprise_id not in found.parties:
        raise Forbidden("flagwork.not_your_flag")
    if upload is not None:
        stored = store_attachment(
            session=session,
            principal=principal,
            store=upload.store,
            data=upload.data,
            filename=upload.filename,
            enterprise_id=principal.enterprise_id,
            now=now,
        )
        attachment_id = stored.id
    elif attachment_id is not None:
        attachments_for_use(session=session, principal=principal, ids=[attachment_id])
    entry = _write_entry(session, principal, found, "answer", text, now, principal.enterprise_id, attachment_id)
    work = found.work
    told = _bureaus_of(session, principal.enterprise_id)
    if work is not None and work.assignee_id is not None:
        told = or_(told, of_users(work.assignee_id))
    ent = session.get(Enterprise, principal.enterprise_id)
    notify(
        session=session,
        to=told,
        kind="flag_answered",
        subject="flag",
        subject_id=found.key,
        params={"year": found.year, "enterprise": bilingual(ent.name_zh if ent else "", ent.name_en if ent else "")},
        now=now,
        actor_id=principal.user_id,
    )
    return entry


# ---------------------------------------------------------------------------------------------------------------
# Reading the work beside the flags


def _works(session: Session, keys: Sequence[str]) -> dict[str, FlagWork]:
    found: dict[str, FlagWork] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        found.update({w.key: w for w in session.exec(select(FlagWork).where(col(FlagWork.key).in_(chunk))).all()})
    return found


def statuses(*, session: Session, flags: Sequence[Flag]) -> list[FlagStatus]:
    """Each flag's status as stored (open where nothing is)."""
    keys = [key_of(flag) for flag in flags]
    works = _works(session, sorted(set(keys)))
    return [FlagStatus(works[key].status) if key in works else FlagStatus.open for key in keys]


def entries(session: Session, principal: Principal, keys: Sequence[str]) -> dict[str, list[FlagEntry]]:
    """The notes (bureaus and administrators only) and answers on each flag, oldest first."""
    auditor = principal.is_admin or principal.role is UserRole.bureau
    kinds = ["note", "answer"] if auditor else ["answer"]
    out: dict[str, list[FlagEntry]] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        query = (
            select(FlagEntry)
            .where(col(FlagEntry.flag_key).in_(chunk), col(FlagEntry.kind).in_(kinds))
            .order_by(col(FlagEntry.id))
        )
        for entry in session.exec(query).all():
            out.setdefault(entry.flag_key, []).append(entry)
    return out


def usernames(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Users' names as shown (display name, else username)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.exec(select(User).where(col(User.id).in_(wanted))).all()
    return {u.id: u.display_name or u.username for u in rows if u.id is not None}


def _public(entry: FlagEntry, names: dict[int, str], files: dict[int, Attachment]) -> EntryPublic:
    assert entry.id is not None
    file = files.get(entry.attachment_id) if entry.attachment_id else None
    return EntryPublic(
        id=entry.id,
        kind=entry.kind,
        text=entry.body,
        author=names.get(entry.author_id) if entry.author_id else None,
        enterprise_id=entry.enterprise_id,
        written_at=entry.written_at,
        attachment=AttachmentRef(id=file.id, filename=file.filename, media_type=file.media_type)
        if file is not None and file.id is not None
        else None,
    )


def _files(session: Session, entries: Iterable[FlagEntry]) -> dict[int, Attachment]:
    ids = {e.attachment_id for e in entries if e.attachment_id is not None}
    if not ids:
        return {}
    return {a.id: a for a in session.exec(select(Attachment).where(col(Attachment.id).in_(ids))).all() if a.id}


def entry_public(session: Session, entry: FlagEntry) -> EntryPublic:
    """A note or an answer as the API gives it."""
    return _public(entry, usernames(session, [entry.author_id]), _files(session, [entry]))


def with_work(*, session: Session, principal: Principal, flags: Sequence[Flag]) -> list[WorkedFlag]:
    """The flags with their work beside them (open and unassigned where none is stored)."""
    keys = [key_of(f) for f in flags]
    works = _works(session, keys)
    notes = entries(session, principal, keys)
    names = usernames(
        session,
        [w.assignee_id for w in works.values()] + [e.author_id for es in notes.values() for e in es],
    )
    files = _files(session, (e for es in notes.values() for e in es))
    lines = []
    for flag, key in zip(flags, keys, strict=True):
        work = works.get(key)
        said = [_public(e, names, files) for e in notes.get(key, [])]
        lines.append(
            WorkedFlag(
                # The fields as they are (a dump would turn the finding's parameters into text).
                **{name: getattr(flag, name) for name in Flag.model_fields},
                key=key,
                status=FlagStatus(work.status) if work else FlagStatus.open,
                assignee_id=work.assignee_id if work else None,
                assignee=names.get(work.assignee_id) if work and work.assignee_id else None,
                reason=work.reason if work else None,
                updated_at=work.updated_at if work else None,
                tonnes=flag_tonnes(flag),
                notes=[e for e in said if e.kind == "note"],
                answers=[e for e in said if e.kind == "answer"],
            )
        )
    return lines


def parse_statuses(status: Sequence[str] | str | None) -> list[FlagStatus]:
    """Statuses from names (a list, or comma-separated); none given: every status."""
    if status is None:
        return []
    raw = status.split(",") if isinstance(status, str) else [p for s in status for p in s.split(",")]
    wanted = [s.strip().lower() for s in raw if s.strip()]
    unknown = [s for s in wanted if s not in FlagStatus.__members__]
    if unknown:
        raise InvalidInput(
            "flagwork.unknown_status", field="status", unknown=", ".join(unknown), statuses=", ".join(FlagStatus)
        )
    return [FlagStatus(s) for s in dict.fromkeys(wanted)]


def enterprises_named(*, session: Session, principal: Principal, name: str) -> set[int]:
    """The readable enterprises whose Chinese or English name contains the text (any case)."""
    text = name.strip()
    if len(text) > MAX_NAME:
        raise InvalidInput("flagwork.name_too_long", field="name", max=MAX_NAME)
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = select(Enterprise.id).where(
        readable_enterprises(principal),
        or_(col(Enterprise.name_zh).ilike(pattern, escape="\\"), col(Enterprise.name_en).ilike(pattern, escape="\\")),
    )
    return {int(i) for i in session.exec(query).all() if i is not None}


SORTS = ("size", "-size")


@dataclass(frozen=True)
class WorkFilters:
    """What a queue of flags is narrowed to (beyond scope, year and kind) and how it is ordered."""

    status: Sequence[str] | str | None = None
    assignee_id: int | None = None
    name: str | None = None  # part of an enterprise's name
    sort: str | None = None  # "size": largest tonnes first; "-size": smallest


def filter_work(
    *,
    session: Session,
    principal: Principal,
    flags: Sequence[Flag],
    filters: WorkFilters,
    offset: int = 0,
    limit: int | None = None,
    year: int | None = None,
) -> WorkPage:
    """The flags with their work, narrowed by status, assignee and enterprise name, sorted by size if asked, a page."""
    status, assignee_id, name, sort = filters.status, filters.assignee_id, filters.name, filters.sort
    if offset < 0:
        raise InvalidInput("waste.flag.negative_offset", field="offset")
    if sort and sort not in SORTS:
        raise InvalidInput("flagwork.unknown_sort", field="sort", sorts=", ".join(SORTS))
    statuses = parse_statuses(status)
    chosen = with_work(session=session, principal=principal, flags=flags)
    if name and name.strip():
        named = enterprises_named(session=session, principal=principal, name=name)
        chosen = [f for f in chosen if named & set(f.enterprise_ids)]
    if assignee_id is not None:
        chosen = [f for f in chosen if f.assignee_id == assignee_id]
    status_counts = {s.value: sum(1 for f in chosen if f.status is s) for s in FlagStatus}
    if statuses:
        chosen = [f for f in chosen if f.status in statuses]
    if sort:
        # Largest first for "size" (the auditor's question: where are the tonnes?), smallest first for "-size".
        chosen.sort(key=lambda f: f.tonnes, reverse=sort == "size")
    counts: dict[str, int] = {}
    for f in chosen:
        counts[f.kind.value] = counts.get(f.kind.value, 0) + 1
    page = chosen[offset:] if limit is None else chosen[offset : offset + limit]
    return WorkPage(
        year=year,
        counts=counts,
        status_counts=status_counts,
        count=len(chosen),
        offset=offset,
        limit=limit,
        data=page,
    )


def status_counts(*, session: Session, principal: Principal, scope: Scope, year: int | None) -> dict[str, int]:
    """How many of the scope's flags of the year stand in each status."""
    flags = list_flags(session=session, principal=principal, year=year, limit=None, scope=scope).data
    return counts_by_status(session=session, flags=flags)


def counts_by_status(*, session: Session, flags: Sequence[Flag]) -> dict[str, int]:
    """How many of these flags stand in each status (a flag with no work yet is open)."""
    counts = {s.value: 0 for s in FlagStatus}
    for status in statuses(session=session, flags=flags):
        counts[status.value] += 1
    return counts


def open_flag_count(*, session: Session, principal: Principal, scope: Scope, year: int | None) -> int:
    """The scope's flags of the year not yet resolved or dismissed (open or under review)."""
    counts = status_counts(session=session, principal=principal, scope=scope, year=year)
    return sum(counts[s.value] for s in UNSETTLED)


@dataclass(frozen=True)
class HistoryLine:
    """One change to a flag's work as the audit log holds it."""

    at: datetime
    user_id: int | None
    action: str
    status: str | None
    assignee_id: int | None
    reason: str | None


def history(*, session: Session, key: str) -> list[HistoryLine]:
    """The changes to a flag's status and assignee, oldest first (the caller found the flag readable)."""
    query = (
        select(AuditLog)
        .where(col(AuditLog.table_name) == "flag_work", col(AuditLog.row_id) == key)
        .order_by(col(AuditLog.id))
    )
    lines = []
    for entry in session.exec(query).all():
        after = entry.after or {}
        lines.append(
            HistoryLine(
                at=entry.at,
                user_id=entry.user_id,
                action=entry.action,
                status=after.get("status"),
                assignee_id=after.get("assignee_id"),
                reason=after.get("reason"),
            )
        )
    return lines
