"""Attachments over HTTP: upload evidence (API), and read it back (API and pages) for readers of its record."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep, SettingsDep
from app.params import Id
from app.settings import Settings
from flows.access import files
from flows.access.files import FileStore
from models.files import Attachment

router = APIRouter(include_in_schema=False)
api_router = APIRouter(dependencies=[Depends(get_principal)], tags=["attachments"])


def file_store(settings: SettingsDep) -> FileStore:
    """The attachment store of these settings."""
    return store_of(settings)


def store_of(settings: Settings) -> FileStore:
    """Where these settings keep attachment bytes, and the largest file they accept."""
    root = settings.attachments_dir or settings.data_dir / "attachments"
    return FileStore(root=root, max_bytes=int(settings.max_attachment_mb * 2**20))


FileStoreDep = Annotated[FileStore, Depends(file_store)]


def upload_bytes(upload: UploadFile, store: FileStore) -> bytes:
    """The upload's bytes, read to one byte past the limit (the store then refuses it, naming the field)."""
    return upload.file.read(store.max_bytes + 1)


class AttachmentPublic(BaseModel):
    """An attachment as the API shows it: its number, hash, size, type and name."""

    id: int
    sha256: str
    size_bytes: int
    media_type: str
    filename: str
    enterprise_id: int | None


def public(attachment: Attachment) -> AttachmentPublic:
    """The API's view of an attachment."""
    assert attachment.id is not None
    return AttachmentPublic(
        id=attachment.id,
        sha256=attachment.sha256,
        size_bytes=attachment.size_bytes,
        media_type=attachment.media_type,
        filename=attachment.filename,
        enterprise_id=attachment.enterprise_id,
    )


@api_router.post("/attachments", response_model=AttachmentPublic, status_code=201)
def upload(
    file: Annotated[UploadFile, File()],
    session: SessionDep,
    principal: PrincipalDep,
    store: FileStoreDep,
    enterprise_id: Annotated[int | None, Form(ge=1)] = None,
) -> AttachmentPublic:
    """Keep an evidence file (PDF, PNG or JPEG) for a record of an enterprise; a later step names it by its id."""
    attachment = files.store_attachment(
        session=session,
        principal=principal,
        store=store,
        data=upload_bytes(file, store),
        filename=file.filename or "",
        enterprise_id=enterprise_id,
        now=utcnow(),
    )
    session.commit()
    return public(attachment)


def _served(attachment: Attachment, data: bytes) -> Response:
    name = attachment.filename or f"attachment-{attachment.id}"
    return Response(
        data,
        media_type=attachment.media_type,
        headers={
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
            # Evidence is shown, never run: no script of an uploaded file acts in the service's origin.
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
            "ETag": f'"{attachment.sha256}"',
        },
    )


@api_router.get("/attachments/{attachment_id}", response_class=Response)
def download(attachment_id: Id, session: SessionDep, principal: PrincipalDep, store: FileStoreDep) -> Response:
    """An attachment's bytes, for whoever may read the record it supports."""
    attachment, data = files.read_attachment(
        session=session, principal=principal, store=store, attachment_id=attachment_id
    )
    return _served(attachment, data)


@router.get("/attachments/{attachment_id}", name="attachment")
def page_download(attachment_id: Id, session: SessionDep, principal: PrincipalDep, store: FileStoreDep) -> Response:
    """The same bytes for a signed-in page reader (a link on a correction or a flag)."""
    attachment, data = files.read_attachment(
        session=session, principal=principal, store=store, attachment_id=attachment_id
    )
    return _served(attachment, data)
