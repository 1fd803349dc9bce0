"""The attachment store: evidence files checked by content, kept outside the rows under their SHA-256, audit-logged."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from flows.access.scope import can_read_enterprise, ensure_read_enterprise
from flows.access.trail import record, snapshot
from flows.kernel.bounds import MAX_ID, printable
from flows.kernel.errors import InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.principal import Principal
from models.enums import UserRole
from models.files import Attachment

# The types a bureau accepts as evidence, told by their first bytes: the name and the declared type prove nothing.
_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
MAX_ATTACHMENTS = 10  # files one step may carry


@dataclass(frozen=True)
class FileStore:
    """Where attachment bytes live, and the largest file accepted."""

    root: Path
    max_bytes: int

    def path_of(self, sha256: str) -> Path:
        """The file of a hash: two levels of folders, so that no folder grows too large."""
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str) -> None:
        """Write the bytes once under their hash; written to a temporary file and renamed, so never half there."""
        target = self.path_of(sha256)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, sha256: str) -> bytes:
        """The bytes of a hash, checked against it: a file changed on disk is refused, not served."""
        try:
            data = self.path_of(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFound("access.attachment_missing", field="attachment_id", sha256=sha256) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise NotFound("access.attachment_altered", field="attachment_id", sha256=sha256)
        return data


def media_type_of(data: bytes) -> str | None:
    """The evidence type the bytes are, or None."""
    for magic, media_type in _SIGNATURES:
        if data.startswith(magic):
            return media_type
    return None


def store_attachment(
    *,
    session: Session,
    principal: Principal,
    store: FileStore,
    data: bytes,
    filename: str,
    enterprise_id: int | None,
    now: datetime,
) -> Attachment:
    """Keep one evidence file for a record of an enterprise the principal may read; its hash goes into the audit log."""
    file_field = Term("field.file")
    if not data:
        raise InvalidInput("access.attachment_empty", field="file", column=file_field)
    if len(data) > store.max_bytes:
        raise InvalidInput(
            "access.attachment_too_large", field="file", column=file_field, limit_mb=round(store.max_bytes / 2**20, 1)
        )
    media_type = media_type_of(data)
    if media_type is None:
        raise InvalidInput("access.attachment_type", field="file", column=file_field)
    if enterprise_id is not None:
        if not 1 <= enterprise_id <= MAX_ID:
            raise InvalidInput(
                "access.attachment_enterprise", field="enterprise_id", column=Term("field.enterprise_id")
            )
        ensure_read_enterprise(session, principal, enterprise_id)
    elif principal.role not in (UserRole.bureau, UserRole.admin):
        # An enterprise's or a park's evidence belongs to an enterprise; only the bureaus file their own letters.
        raise InvalidInput("access.attachment_enterprise", field="enterprise_id", column=Term("field.enterprise_id"))
    sha256 = hashlib.sha256(data).hexdigest()
    store.put(data, sha256)
    attachment = Attachment(
        sha256=sha256,
        size_bytes=len(data),
        media_type=media_type,
        filename=printable(filename or "attachment", 200),
        enterprise_id=enterprise_id,
        uploaded_by=principal.user_id,
        uploaded_at=now,
    )
    session.add(attachment)
    session.flush()
    record(
        session=session,
        principal=principal,
        action="attach",
        table="attachment",
        row_id=attachment.id,
        before=None,
        after=snapshot(attachment),
        now=now,
        enterprises=(enterprise_id,),
    )
    return attachment


def _readable(session: Session, principal: Principal, attachment: Attachment) -> bool:
    if attachment.enterprise_id is not None:
        return can_read_enterprise(session, principal, attachment.enterprise_id)
    return principal.role in (UserRole.bureau, UserRole.admin) or attachment.uploaded_by == principal.user_id


def get_attachment(*, session: Session, principal: Principal, attachment_id: int) -> Attachment:
    """One attachment the principal may read; others are not confirmed to exist."""
    attachment = session.get(Attachment, attachment_id) if 1 <= attachment_id <= MAX_ID else None
    if attachment is None or not _readable(session, principal, attachment):
        raise NotFound("access.attachment_not_found", field="attachment_id", attachment_id=attachment_id)
    return attachment


def read_attachment(
    *, session: Session, principal: Principal, store: FileStore, attachment_id: int
) -> tuple[Attachment, bytes]:
    """An attachment and its bytes, for a reader of the record it supports."""
    attachment = get_attachment(session=session, principal=principal, attachment_id=attachment_id)
    return attachment, store.get(attachment.sha256)


def attachments_for_use(*, session: Session, principal: Principal, ids: Sequence[object]) -> list[Attachment]:
    """The attachments a step names, each one existing and readable by the principal; refused naming the field."""
    if len(ids) > MAX_ATTACHMENTS:
        raise InvalidInput(
            "access.attachments_too_many",
            field="attachment_ids",
            column=Term("field.attachment_ids"),
            most=MAX_ATTACHMENTS,
        )
    wanted: list[int] = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise InvalidInput("access.attachment_ids", field="attachment_ids", column=Term("field.attachment_ids"))
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise InvalidInput("access.attachment_ids", field="attachment_ids", column=Term("field.attachment_ids"))
        if number not in wanted:
            wanted.append(number)
    if not wanted:
        return []
    found = {a.id: a for a in session.exec(select(Attachment).where(col(Attachment.id).in_(wanted))).all()}
    out: list[Attachment] = []
    for number in wanted:
        attachment = found.get(number)
        if attachment is None or not _readable(session, principal, attachment):
            raise InvalidInput(
                "access.attachment_unknown",
                field="attachment_ids",
                column=Term("field.attachment_ids"),
                attachment_id=number,
            )
        out.append(attachment)
    return out
