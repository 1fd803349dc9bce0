"""Pages of the flags as work: one flag with its status, notes and answers; the bulk action; an enterprise's flags."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.errors import status_for
from app.files import FileStoreDep, upload_bytes
from app.i18n import LanguageDep, safe_next
from app.web import beijing, render
from flows.kernel.errors import DomainError
from flows.kernel.principal import Principal
from flows.pages import flagwork
from flows.waste import flag_work
from flows.waste.flag_work import BulkChange, FlagStatus
from models.enums import UserRole

router = APIRouter(include_in_schema=False)

Key = Annotated[str, Path(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")]
StatusField = Annotated[str, Form(max_length=16)]
AssigneeField = Annotated[str, Form(max_length=12)]
ReasonField = Annotated[str, Form(max_length=flag_work.MAX_REASON)]
TextField = Annotated[str, Form(max_length=flag_work.MAX_TEXT)]
YearQuery = Annotated[int | None, Query(ge=2000, le=2100)]


def _change(status: str, assignee: str, reason: str, *, keep_assignee: str = "keep") -> dict[str, Any]:
    """A change from a form: an empty status keeps it; "keep" keeps the assignee, "" unassigns."""
    data: dict[str, Any] = {"reason": reason or None}
    if status:
        data["status"] = status
    if assignee != keep_assignee:
        data["assignee_id"] = int(assignee) if assignee.isdigit() else None
    return data


def _page(
    request: Request, session: Any, principal: Principal, lang: str, key: str, status_code: int = 200, **extra: Any
) -> Response:
    page = flagwork.flag_page(session=session, principal=principal, key=key)
    context = {
        "page": page,
        "statuses": [s.value for s in FlagStatus],
        "local_time": beijing,
        "back": "/audit/flags" if page.can_work else "/flags",
        **extra,
    }
    return render(request, "flag.html", context, lang=lang, status_code=status_code)


def _failed(request: Request, session: Any, principal: Principal, lang: str, key: str, exc: DomainError) -> Response:
    session.rollback()
    return _page(request, session, principal, lang, key, status_for(exc), problem=exc, problem_field=exc.field)


def _acted(
    request: Request, session: Any, principal: Principal, lang: str, key: str, done: str, act: Callable[..., object]
) -> Response:
    """Do one thing to a flag and go back to its page saying so, or show the page with the refusal."""
    try:
        act(session=session, principal=principal, key=key, now=utcnow())
        session.commit()
    except DomainError as exc:
        return _failed(request, session, principal, lang, key, exc)
    return RedirectResponse(f"/flags/{key}?done={done}", status_code=303)


@router.get("/flags", name="my_flags")
def my_flags(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, year: YearQuery = None
) -> Response:
    """The flags on the reader's own enterprise (or park), with where the bureau stands and a link to answer."""
    if principal.is_admin or principal.role is UserRole.bureau:
        return RedirectResponse("/audit/flags", status_code=303)
    lines = flagwork.own_flags(session=session, principal=principal, year=year)
    context = {"lines": lines, "year": year}
    return render(request, "flags_mine.html", context, lang=lang)


@router.get("/flags/{key}", name="flag")
def flag(request: Request, key: Key, session: SessionDep, lang: LanguageDep, principal: PrincipalDep) -> Response:
    """One flag: its finding, status, assignee, answers (and notes for bureaus), history and forms."""
    return _page(request, session, principal, lang, key)


@router.post("/flags/{key}", name="flag_change")
def change(
    request: Request,
    key: Key,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    status: StatusField = "",
    assignee_id: AssigneeField = "keep",
    reason: ReasonField = "",
) -> Response:
    """Set a flag's status or assignee from its page."""
    try:
        body = flag_work.parse_change(_change(status, assignee_id, reason))
    except DomainError as exc:
        return _failed(request, session, principal, lang, key, exc)
    act = partial(flag_work.change_flag, change=body)
    return _acted(request, session, principal, lang, key, "changed", act)


@router.post("/flags/{key}/notes", name="flag_note")
def note(
    request: Request, key: Key, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, text: TextField
) -> Response:
    """Add a bureau's note to a flag."""
    return _acted(request, session, principal, lang, key, "noted", partial(flag_work.add_note, text=text))


@router.post("/flags/{key}/answers", name="flag_answer")
def answer(
    request: Request,
    key: Key,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    store: FileStoreDep,
    text: TextField,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """The enterprise answers a flag on it, with an evidence file if it sends one."""
    given = file is not None and bool(file.filename)
    upload = flag_work.Upload(store, upload_bytes(file, store), file.filename or "") if file and given else None
    act = partial(flag_work.answer_flag, text=text, upload=upload)
    return _acted(request, session, principal, lang, key, "answered", act)


@router.post("/audit/flags/bulk", name="flags_bulk")
def bulk(
    session: SessionDep,
    principal: PrincipalDep,
    keys: Annotated[list[str], Form(max_length=flag_work.MAX_BULK)] = [],  # noqa: B006 (FastAPI copies it)
    status: StatusField = "",
    assignee_id: AssigneeField = "keep",
    reason: ReasonField = "",
    back: Annotated[str, Form(max_length=2000)] = "/audit/flags",
) -> Response:
    """One change over the selected flags, all or none (a refusal is shown and nothing changes)."""
    body = flag_work.parse_change({"keys": keys, **_change(status, assignee_id, reason)}, BulkChange)
    done = flag_work.bulk_change(session=session, principal=principal, change=body, now=utcnow())
    session.commit()
    target = safe_next(back, "/audit/flags")
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}done={len(done)}", status_code=303)
