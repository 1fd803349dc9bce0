"""The audit trail: who changed which row, when, from where, before and after; chained by hash, its head signed."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlmodel import Session, SQLModel, col, func, select

from flows.kernel.clock import stored_utc
from flows.kernel.errors import Conflict, Forbidden, InvalidInput
from flows.kernel.messages import Message, Term, msg
from flows.kernel.principal import Principal
from models import AuditHead, AuditLog, Enterprise
from models.enums import UserRole

GENESIS = "0" * 64


def snapshot(row: SQLModel | None) -> dict[str, Any] | None:
    """A JSON-safe copy of a row's columns (geometries as WKT), for the before and after of an entry."""
    if row is None:
        return None
    # Read the mapped columns directly: values loaded from the database (enumerations as plain strings) need no
    # round trip through the model's validation.
    return {attr.key: _json_safe(getattr(row, attr.key)) for attr in sa_inspect(type(row)).column_attrs}


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        # A weight: a JSON number, as exact as its decimal text (whole kilograms have at most three decimals).
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "wkt"):
        return value.wkt
    return str(value)


def _entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _hashed_fields(entry: AuditLog) -> dict[str, Any]:
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
    return {
        "at": at.astimezone(UTC).isoformat(),
        "user_id": entry.user_id,
        "channel": str(entry.channel),
        "action": entry.action,
        "table_name": entry.table_name,
        "row_id": entry.row_id,
        "enterprise_id": entry.enterprise_id,
        "other_enterprise_id": entry.other_enterprise_id,
        "before": entry.before,
        "after": entry.after,
    }


# --- the signed head ----------------------------------------------------------------------------------------------
#
# The chain alone proves that no entry was edited in place; it cannot show entries removed from the end, nor a tail
# edited with every following hash recomputed. The head (the last entry, its hash and the count) is therefore signed
# with a key the database does not hold, in the same transaction as the entry; exported as an anchor and kept
# elsewhere, it also catches a rollback to an older head by someone who holds the key or an old signature.

HEAD_ID = 1
_SIGNATURE_CONTEXT = "circuflow-audit-head/1"


def derive_key(secret: str) -> bytes:
    """The signing key derived from a secret: HMAC-SHA256 of "audit-log" under it."""
    return hmac.new(secret.encode(), b"audit-log", hashlib.sha256).digest()


# The app and the command line set the key from their settings when they start (use_signing_key). Code that runs
# before (a script, a test of the domain alone) signs with the key the development settings derive from their
# secret "change-me"; outside development the settings refuse that secret.
_signing_key = derive_key("change-me")


def use_signing_key(key: bytes) -> None:
    """Sign the head with this key from now on, in this process (the app and the command line pass the settings')."""
    global _signing_key
    if not key:
        raise ValueError("the audit signing key must not be empty")
    _signing_key = key


@dataclass(frozen=True)
class Anchor:
    """The signed head as it can be exported and kept outside the database."""

    entry_id: int
    hash: str
    count: int
    at: datetime
    signature: str

    def as_dict(self) -> dict[str, Any]:
        """The anchor as JSON-safe values (the time in UTC, with its offset)."""
        return {
            "entry_id": self.entry_id,
            "hash": self.hash,
            "count": self.count,
            "at": stored_utc(self.at).astimezone(UTC).isoformat(),
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Anchor:
        """Read an exported anchor; a file that is not one is refused, naming what is wrong."""
        column = Term("field.anchor")
        if not isinstance(data, dict):
            raise InvalidInput("access.anchor_not_an_object", field="anchor", column=column)
        try:
            at = datetime.fromisoformat(str(data["at"]))
            anchor = cls(int(data["entry_id"]), str(data["hash"]), int(data["count"]), at, str(data["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("access.anchor_unreadable", field="anchor", column=column, error=str(exc)) from None
        if at.tzinfo is None:
            raise InvalidInput("access.anchor_without_offset", field="anchor", column=column)
        return anchor


def _utc_text(moment: datetime) -> str:
    return stored_utc(moment).astimezone(UTC).isoformat(timespec="microseconds")


def _sign(key: bytes, entry_id: int, entry_hash: str, count: int, at: datetime) -> str:
    message = f"{_SIGNATURE_CONTEXT}|{entry_id}|{count}|{entry_hash}|{_utc_text(at)}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def signature_holds(anchor: Anchor | AuditHead, key: bytes | None = None) -> bool:
    """Whether a head or anchor carries the signature of the key (by default the process's signing key)."""
    entry_hash = anchor.hash if isinstance(anchor, Anchor) else anchor.entry_hash
    expected = _sign(key or _signing_key, anchor.entry_id, entry_hash, anchor.count, anchor.at)
    return hmac.compare_digest(expected, anchor.signature)


def _head(session: Session) -> AuditHead | None:
    # Always the stored row: an earlier read in this session may be older than the last writer's head.
    return session.get(AuditHead, HEAD_ID, populate_existing=True)


def _move_head(session: Session, head: AuditHead | None, entry: AuditLog, count: int) -> AuditHead:
    assert entry.id is not None
    if head is None:
        head = AuditHead(id=HEAD_ID, entry_id=0, entry_hash=GENESIS, count=0, at=entry.at, signature="")
    head.entry_id, head.entry_hash, head.count, head.at = entry.id, entry.hash, count, entry.at
    head.signature = _sign(_signing_key, entry.id, entry.hash, count, entry.at)
    session.add(head)
    session.flush()
    return head


def _last_entry(session: Session) -> tuple[int | None, str]:
    last = session.exec(select(AuditLog.id, AuditLog.hash).order_by(col(AuditLog.id).desc()).limit(1)).first()
    return (last[0], last[1]) if last else (None, GENESIS)


def data_version(*, session: Session) -> tuple[int | None, str]:
    """The last entry of the log (id and hash): it moves with every write the service records, and only then.

    A version of the data for results kept between requests. Not the head: `record` leaves a head whose signature
    fails where it was found and goes on writing entries. The log is append-only (triggers of migration 0002) and its
    writers are serialised up to their commit (serialise_writers), so a larger id is always a later commit. Read it
    before the data it versions: a result made after a write that commits in between is then kept under the older
    version, which no later reader asks for, never the other way round. The hash as well as the id: on SQLite an entry
    rolled back (a preview) leaves its id to the next one.
    """
    return _last_entry(session)


def serialise_writers(session: Session) -> None:
    """Hold the record's one writer lock until the transaction ends (PostgreSQL; SQLite has one writer anyway).

    Writers of the audit log take it, and so do writers of waste chains, before any row lock of theirs: a step that
    locks a lot and a forwarding that draws on it then queue in one order and cannot deadlock, and two reallocations
    of one chain cannot interleave.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Two transactions must never chain to the same predecessor nor move the head past each other.
        session.execute(text("SELECT pg_advisory_xact_lock(7263001)"))


def record(
    *,
    session: Session,
    principal: Principal,
    action: str,
    table: str,
    row_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
    enterprises: tuple[int | None, ...] = (),
) -> AuditLog:
    """Append one entry in the caller's transaction, chained to the signed head, and move the head to it."""
    serialise_writers(session)
    head = _head(session)
    if head is not None and signature_holds(head):
        # Chained to what the head signed, not to the last row: after a removed or rewritten tail the new entry
        # does not fit the rows before it, so the break stays visible once the head has moved on.
        prev_hash, count, sign = head.entry_hash, head.count, True
    elif head is None:
        # A log from before the head existed (or an empty one): its first entry signs it as it stands.
        prev_hash = _last_entry(session)[1]
        count = int(session.exec(select(func.count()).select_from(AuditLog)).one())
        sign = True
    else:
        # A head whose signature fails is evidence: keep it as found, so that verification keeps saying so,
        # and keep writing (the application must not stop); `audit-log anchor --resign` is the deliberate way out.
        prev_hash, count, sign = _last_entry(session)[1], 0, False
    entry = AuditLog(
        at=now.astimezone(UTC),
        user_id=principal.user_id,
        channel=principal.channel,
        action=action,
        table_name=table,
        row_id=str(row_id),
        enterprise_id=enterprises[0] if enterprises else None,
        other_enterprise_id=enterprises[1] if len(enterprises) > 1 else None,
        before=before,
        after=after,
        prev_hash=prev_hash,
        hash="",
    )
    entry.hash = _entry_hash(entry.prev_hash, _hashed_fields(entry))
    session.add(entry)
    session.flush()
    if sign:
        _move_head(session, head, entry, count + 1)
    return entry


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of re-computing the chain and checking its signed head: ok, or the first fault found."""

    ok: bool
    checked: int
    broken_at: int | None = None
    problem: Message | None = None
    # chain (an entry does not match), unanchored (no signed head), signature (the head's signature fails),
    # head (the signed head does not match the log), anchor (the exported anchor does not match the log)
    fault: str = ""
    head: Anchor | None = None
    anchor_checked: bool = False

    @property
    def reason(self) -> str:
        """What is wrong, in English (empty when the log verifies)."""
        return self.problem.render("en") if self.problem is not None else ""

    def fault_message(self) -> Message | None:
        """What is wrong, naming the entry at fault when there is one."""
        if self.problem is None:
            return None
        if self.broken_at is None:
            return self.problem
        return msg("access.chain_fault_at", entry_id=self.broken_at, problem=self.problem)

    @property
    def anchored(self) -> bool:
        """Whether a signed head covers the whole log (and the anchor given, if any, matches it)."""
        return self.ok and self.head is not None


def _as_anchor(head: AuditHead) -> Anchor:
    return Anchor(head.entry_id, head.entry_hash, head.count, stored_utc(head.at), head.signature)


def verify_chain(*, session: Session, anchor: Anchor | None = None) -> ChainCheck:
    """Re-compute every hash, then check the signed head and an exported anchor; names the first entry at fault."""
    # An entry edited, removed or added behind the application's back shows here: in the chain itself, against the
    # signed head (a removed or rewritten tail), or against an anchor kept outside (a key holder's rewrite).
    stored = _head(session)
    head = _as_anchor(stored) if stored is not None else None
    prev = GENESIS
    checked = 0
    last_id: int | None = None
    after_head: int | None = None  # the first entry past the head's, if any
    anchor_seen = False

    def broken(entry_id: int | None, problem: Message, fault: str) -> ChainCheck:
        return ChainCheck(False, checked, entry_id, problem, fault, head, anchor is not None)

    for entry in session.exec(select(AuditLog).order_by(col(AuditLog.id))).yield_per(1000):
        assert entry.id is not None
        checked += 1
        if entry.prev_hash != prev:
            return broken(entry.id, msg("access.chain_predecessor_changed"), "chain")
        if _entry_hash(prev, _hashed_fields(entry)) != entry.hash:
            return broken(entry.id, msg("access.chain_content_changed"), "chain")
        if anchor is not None and not anchor_seen:
            if entry.id > anchor.entry_id:
                return broken(anchor.entry_id, msg("access.chain_anchored_entry_gone"), "anchor")
            if entry.id == anchor.entry_id:
                anchor_seen = True
                if entry.hash != anchor.hash:
                    return broken(entry.id, msg("access.chain_anchor_hash_differs"), "anchor")
                if checked != anchor.count:
                    problem = msg("access.chain_anchor_count_differs", checked=checked, count=anchor.count)
                    return broken(entry.id, problem, "anchor")
        if head is not None and after_head is None and entry.id > head.entry_id:
            after_head = entry.id
        prev, last_id = entry.hash, entry.id
    if anchor is not None and not anchor_seen:
        return broken(anchor.entry_id, msg("access.chain_anchored_entry_gone_at_end", last_id=last_id), "anchor")
    if head is None:
        if checked == 0:
            return ChainCheck(True, 0, anchor_checked=anchor is not None)
        return broken(None, msg("access.chain_unanchored"), "unanchored")
    if not signature_holds(head):
        return broken(head.entry_id, msg("access.chain_signature_fails"), "signature")
    if last_id is None or last_id < head.entry_id:
        problem = msg("access.chain_tail_removed", last_id=last_id, head_id=head.entry_id, count=head.count)
        return broken(head.entry_id, problem, "head")
    if after_head is not None:
        return broken(after_head, msg("access.chain_written_after_head", head_id=head.entry_id), "head")
    if prev != head.hash:
        return broken(last_id, msg("access.chain_head_hash_differs"), "head")
    if checked != head.count:
        return broken(last_id, msg("access.chain_head_count_differs", checked=checked, count=head.count), "head")
    return ChainCheck(True, checked, head=head, anchor_checked=anchor is not None)


def current_anchor(*, session: Session) -> Anchor:
    """The signed head as an anchor to keep outside the database; refused while the log does not verify."""
    check = verify_chain(session=session)
    if not check.ok:
        raise Conflict("access.nothing_to_anchor_unverified", problem=check.fault_message())
    if check.head is None:
        raise Conflict("access.nothing_to_anchor_empty")
    return check.head


def sign_head(*, session: Session, principal: Principal, now: datetime, resign: bool = False) -> Anchor:
    """Sign the head of a log without one (from before 0006), or with resign the log as it stands with a new key."""
    # Either way the hashes must hold, and the act is itself an entry of the log. Re-signing accepts whatever the old
    # head said is missing: it is for a changed key, and anchors kept outside still show what changed since.
    serialise_writers(session)
    check = verify_chain(session=session)
    if check.ok and check.head is not None:
        return check.head
    allowed = {"unanchored"} | ({"signature", "head"} if resign else set())
    if check.fault not in allowed:
        if resign or check.fault != "signature":
            raise Conflict("access.log_unverified", problem=check.fault_message())
        raise Conflict("access.log_unverified_resign", problem=check.fault_message())
    last_id, last_hash = _last_entry(session)
    if last_id is None:
        raise Conflict("access.nothing_to_anchor_empty")
    stored = _head(session)
    before = _as_anchor(stored).as_dict() if stored is not None else None
    last = session.get(AuditLog, last_id)
    assert last is not None
    _move_head(session, stored, last, check.checked)
    # The act is on the record: the entry says when the head was signed over a log it had not signed before.
    record(
        session=session,
        principal=principal,
        action="resign" if stored is not None else "anchor",
        table="audit_head",
        row_id=HEAD_ID,
        before=before,
        after={"entry_id": last_id, "hash": last_hash, "count": check.checked},
        now=now,
    )
    return current_anchor(session=session)


@dataclass(frozen=True)
class AuditFilter:
    enterprise_id: int | None = None
    table: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    *, session: Session, principal: Principal, filters: AuditFilter, offset: int = 0, limit: int = 100
) -> tuple[list[AuditLog], int]:
    """Entries a bureau or administrator may read, newest first; a bureau sees those of its region's enterprises."""
    if principal.role not in (UserRole.admin, UserRole.bureau):
        raise Forbidden("access.audit_log_readers")
    query = select(AuditLog)
    if filters.table:
        query = query.where(AuditLog.table_name == filters.table)
    if filters.since:
        query = query.where(col(AuditLog.at) >= filters.since)
    if filters.until:
        query = query.where(col(AuditLog.at) < filters.until)
    enterprise_ids = _enterprise_ids_in_scope(principal, filters.enterprise_id)
    if enterprise_ids is not None:
        query = query.where(
            col(AuditLog.enterprise_id).in_(enterprise_ids) | col(AuditLog.other_enterprise_id).in_(enterprise_ids)
        )
    count = int(session.exec(select(func.count()).select_from(query.subquery())).one())
    rows = session.exec(query.order_by(col(AuditLog.id).desc()).offset(offset).limit(limit)).all()
    return list(rows), count


def _enterprise_ids_in_scope(principal: Principal, enterprise_id: int | None) -> Any:
    from flows.access.scope import readable_enterprise_ids

    if principal.is_admin and enterprise_id is None:
        return None
    ids = readable_enterprise_ids(principal)
    if enterprise_id is not None:
        ids = ids.where(col(Enterprise.id) == enterprise_id)
    return ids
