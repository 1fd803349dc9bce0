"""The reference-data pages: targets (set, change, retire, history) and waste categories (administrators)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.errors import status_for
from app.i18n import LanguageDep, say
from app.params import Id
from app.web import beijing, pct, render
from app.web_places import _posted
from flows.kernel.errors import Conflict, InvalidInput, NotFound
from flows.kernel.principal import Principal
from flows.pages import refdata as pages
from flows.waste import refdata

router = APIRouter(include_in_schema=False)

TARGET_FIELDS = ("name", "series", "scope_adcode", "year", "value", "categories", "source", "valid_from", "valid_to")
CATEGORY_FIELDS = ("code", "name_zh", "name_en", "is_bulk", "is_tailings", "valid_from", "valid_to")
ScopeQuery = Annotated[str | None, Query(pattern=r"^\d{6}$")]
Posted = Annotated[dict[str, str], Depends(_posted)]


def _targets(
    request: Request,
    session: SessionDep,
    lang: str,
    principal: Principal,
    *,
    scope: str | None = None,
    retired: bool = False,
    form: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
    saved: str | None = None,
    status_code: int = 200,
) -> Response:
    page = pages.targets_page(session=session, principal=principal, scope=scope, retired=retired)
    context: dict[str, Any] = {
        "p": page,
        "pct": pct,
        "beijing": beijing,
        "form": form or {},
        "problems": problems or {},
        "saved": saved,
    }
    return render(request, "targets.html", context, lang=lang, status_code=status_code)


@router.get("/targets", name="targets")
def targets(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    scope: ScopeQuery = None,
    retired: bool = False,
    change: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    done: Annotated[str | None, Query(pattern=r"^(created|changed|unchanged|retired)$")] = None,
) -> Response:
    """The targets a reader is held to, with their history; the form for those who keep them."""
    form: dict[str, str] = {}
    if change is not None:
        current = refdata.get_target(session=session, principal=principal, target_id=change)
        form = {
            "target_id": str(current.id),
            "revision": str(current.revision),
            "name": current.name,
            "series": current.series,
            "scope_adcode": current.scope_adcode,
            "year": str(current.year),
            "value": f"{current.value:g}",
            "categories": ", ".join(current.categories),
            "source": current.source,
            "valid_from": current.valid_from.isoformat() if current.valid_from else "",
            "valid_to": current.valid_to.isoformat() if current.valid_to else "",
        }
    return _targets(request, session, lang, principal, scope=scope, retired=retired, form=form, saved=done)


@router.post("/targets", name="save_target")
def save_target(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, data: Posted
) -> Response:
    """Set a target, or change one (target_id and revision)."""
    refdata.ensure_target_keeper(principal)
    typed = {name: data.get(name, "").strip() for name in (*TARGET_FIELDS, "target_id", "revision")}
    body: dict[str, Any] = {name: typed[name] for name in TARGET_FIELDS}
    body["revision"] = typed["revision"]
    target_id = int(typed["target_id"]) if typed["target_id"].isdigit() else None
    try:
        written = refdata.save_target(
            session=session, principal=principal, data=body, now=utcnow(), target_id=target_id
        )
        session.commit()
    except (InvalidInput, Conflict, NotFound) as exc:
        session.rollback()
        where = exc.field if exc.field in TARGET_FIELDS else "form"
        problems = {where: say(lang, refdata.problem_of(exc))}
        return _targets(request, session, lang, principal, form=typed, problems=problems, status_code=status_for(exc))
    return RedirectResponse(f"/targets?done={written.outcome}", status_code=303)


@router.post("/targets/{target_id}/retire", name="retire_target")
def retire_target(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, target_id: Id, data: Posted
) -> Response:
    """Retire a target (the revision read)."""
    refdata.ensure_target_keeper(principal)
    revision = data.get("revision", "")
    try:
        refdata.retire_target(
            session=session,
            principal=principal,
            target_id=target_id,
            revision=int(revision) if revision.isdigit() and len(revision) < 8 else 0,
            now=utcnow(),
        )
        session.commit()
    except (Conflict, NotFound) as exc:
        session.rollback()
        problems = {"form": say(lang, refdata.problem_of(exc))}
        return _targets(request, session, lang, principal, problems=problems, status_code=status_for(exc))
    return RedirectResponse("/targets?done=retired", status_code=303)


def _categories(
    request: Request,
    session: SessionDep,
    lang: str,
    principal: Principal,
    *,
    form: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
    saved: str | None = None,
    status_code: int = 200,
) -> Response:
    page = pages.categories_page(session=session, principal=principal)
    context = {"p": page, "form": form or {}, "problems": problems or {}, "saved": saved}
    return render(request, "categories.html", context, lang=lang, status_code=status_code)


@router.get("/categories", name="categories")
def categories(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    done: Annotated[str | None, Query(pattern=r"^(created|changed|unchanged)$")] = None,
) -> Response:
    """The waste categories: the SW classes and the 2024 catalogue's codes filed under them."""
    return _categories(request, session, lang, principal, saved=done)


@router.post("/categories", name="save_category")
def save_category(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, data: Posted
) -> Response:
    """Add a category or change one by its code (administrators)."""
    refdata.ensure_category_keeper(principal)
    typed = {name: data.get(name, "").strip() for name in CATEGORY_FIELDS}
    try:
        written = refdata.save_category(session=session, principal=principal, data=dict(typed), now=utcnow())
        session.commit()
    except (InvalidInput, Conflict) as exc:
        session.rollback()
        where = exc.field if exc.field in CATEGORY_FIELDS else "form"
        problems = {where: say(lang, refdata.problem_of(exc))}
        return _categories(
            request, session, lang, principal, form=typed, problems=problems, status_code=status_for(exc)
        )
    return RedirectResponse(f"/categories?done={written.outcome}", status_code=303)
