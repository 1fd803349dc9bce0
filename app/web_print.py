"""The printable manifest (PDF, from the batch page and the API) and the page its QR code opens, for anyone."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep, SettingsDep
from app.i18n import LanguageDep, translate
from app.params import Id
from app.web import render
from flows.pages import printable
from flows.pages.printable import PrintedManifest

router = APIRouter(include_in_schema=False)
api_router = APIRouter(dependencies=[Depends(get_principal)], tags=["manifests"])

# A token names one manifest and nothing else: its id, and a MAC of it under a key kept for this purpose alone (so
# that no other signature the app makes, such as a session cookie's, can pass for one).
_TOKEN = re.compile(r"^([1-9][0-9]{0,9})\.([A-Za-z0-9_-]{22})$")
TokenPath = Annotated[str, Path(max_length=64)]
LangQuery = Annotated[Literal["zh-CN", "en"] | None, Query(description="the document's language (else the user's)")]


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"manifest-verification", hashlib.sha256).digest()


def _mac(secret: str, batch_id: int) -> str:
    digest = hmac.new(_key(secret), f"manifest:{batch_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")  # 128 bits: 22 characters


def verification_token(secret: str, batch_id: int) -> str:
    """The signed token of one manifest's verification page."""
    return f"{batch_id}.{_mac(secret, batch_id)}"


def token_manifest(secret: str, token: str) -> int | None:
    """The manifest a token names, or None if it is malformed or its signature does not hold."""
    found = _TOKEN.match(token)
    if found is None:
        return None
    batch_id = int(found.group(1))
    return batch_id if hmac.compare_digest(found.group(2), _mac(secret, batch_id)) else None


def verify_url(request: Request, secret: str, batch_id: int) -> str:
    """The absolute URL that the printed QR code opens (the host as this request reached the service)."""
    return str(request.url_for("verify", token=verification_token(secret, batch_id)))


def _pdf(request: Request, doc: PrintedManifest, *, lang: str, secret: str, by: str) -> Response:
    body = printable.render_pdf(
        doc,
        lang=lang,
        words=partial(translate, lang),
        verify_url=verify_url(request, secret, doc.id),
        printed_at=utcnow(),
        printed_by=by,
    )
    return pdf_response(body, f"manifest-{re.sub(r'[^A-Za-z0-9_-]', '_', doc.number)}-{lang}.pdf", lang)


def pdf_response(body: bytes, filename: str, lang: str) -> Response:
    """A printed document, shown inline by the browser's viewer and never kept by a cache."""
    return Response(
        body,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "Content-Language": lang,
            "Cache-Control": "no-store",  # it carries the reader's scope and the time it was printed
        },
    )


@router.get("/batches/{batch_id}/manifest.pdf", name="batch_pdf")
def batch_pdf(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    language: LanguageDep,
    principal: PrincipalDep,
    batch_id: Id,
    lang: LangQuery = None,
) -> Response:
    """The batch's printable manifest, in the user's language, for whoever may read the batch."""
    doc = printable.printable_manifest(session=session, principal=principal, batch_id=batch_id)
    return _pdf(request, doc, lang=lang or language, secret=settings.secret_key, by=principal.username)


@api_router.get(
    "/manifests/{batch_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the printable manifest"}},
)
def manifest_pdf(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    language: LanguageDep,
    principal: PrincipalDep,
    batch_id: Id,
    lang: LangQuery = None,
) -> Response:
    """The printable manifest (PDF) with its verification QR code, in `lang` or the caller's Accept-Language."""
    doc = printable.printable_manifest(session=session, principal=principal, batch_id=batch_id)
    return _pdf(request, doc, lang=lang or language, secret=settings.secret_key, by=principal.username)


@router.get("/verify/{token}", name="verify")
def verify(
    request: Request, session: SessionDep, settings: SettingsDep, lang: LanguageDep, token: TokenPath
) -> Response:
    """What a printed QR code opens, signed in or not: the manifest's number, status and sealed fields, or a refusal."""
    batch_id = token_manifest(settings.secret_key, token)
    doc = printable.verified_manifest(session=session, batch_id=batch_id) if batch_id is not None else None
    now: datetime = utcnow()
    context = {
        "doc": doc,
        "checked_at": printable.beijing_text(now),
        "tonnes": printable.tonnes_text,
        "when": printable.beijing_text,
        "party_name": partial(printable.party_name, lang),
        "category": partial(printable.category_name, lang),
    }
    # The page is the token's answer alone: never cached by a shared cache, never sent on as a referrer.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
    if doc is None:
        return render(request, "verify.html", context, lang=lang, status_code=404, headers=headers)
    return render(request, "verify.html", context, lang=lang, headers=headers)
