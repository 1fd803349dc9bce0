"""The header's search box: a batch number, credit code, enterprise name or battery code opens its page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from app.auth import PrincipalDep, get_principal
from app.deps import SessionDep
from app.i18n import LanguageDep, local_name
from app.web import render
from flows.pages import search as finder

router = APIRouter(include_in_schema=False)
api_router = APIRouter(dependencies=[Depends(get_principal)], tags=["search"])

SearchText = Annotated[str, Query(max_length=finder.MAX_QUERY, description="A batch number, credit code, name or code")]


@router.get("/search", name="search")
def search_page(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, q: SearchText = ""
) -> Response:
    """One exact match opens its page; otherwise the matches, a few of each kind."""
    found = finder.search(session=session, principal=principal, q=q)
    if found.go is not None:
        return RedirectResponse(found.go, status_code=303)
    hits: list[dict[str, Any]] = [{"hit": h, "name": local_name(lang, h.name_zh, h.name_en)} for h in found.hits]
    return render(request, "search.html", {"found": found, "hits": hits, "q": found.q}, lang=lang)


class HitPublic(BaseModel):
    """One match of a search."""

    kind: str
    key: str
    name_zh: str
    name_en: str | None
    href: str
    exact: bool


class SearchPublic(BaseModel):
    """The matches of a search and, when one is exact or alone, the page to open."""

    q: str
    go: str | None
    hits: list[HitPublic]


@api_router.get("/search", response_model=SearchPublic)
def search_api(session: SessionDep, principal: PrincipalDep, q: SearchText = "") -> SearchPublic:
    """Batches, enterprises and batteries the caller may read that the query names, a few of each."""
    found = finder.search(session=session, principal=principal, q=q)
    return SearchPublic(
        q=found.q,
        go=found.go,
        hits=[HitPublic(**h.__dict__) for h in found.hits],
    )
