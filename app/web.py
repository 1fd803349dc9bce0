"""HTML pages: Jinja2 templates rendered on the server, whole or (for htmx) only their "content" block."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from jinja2_fragments.fastapi import Jinja2Blocks
from starlette.routing import NoMatchFound

from app import years as year_memory
from app.auth import PrincipalDep
from app.deps import SessionDep
from app.i18n import (
    COOKIE,
    COOKIE_MAX_AGE,
    LANGUAGE_NAMES,
    LANGUAGES,
    LanguageDep,
    local_name,
    safe_next,
    say,
    translate,
)
from app.numbers import install as install_numbers
from flows.access import directory
from flows.access.accounts import Principal
from flows.kernel.adcode import prefecture_of
from flows.kernel.clock import CST, stored_utc
from flows.kernel.messages import msg
from flows.kernel.numbers import Numbers
from flows.pages.stats import scoped_counts
from models.enums import RegionLevel
from models.reference import ParkPublic, RegionPublic

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
templates = Jinja2Blocks(directory=TEMPLATES_DIR)
install_numbers(templates.env)

# Navigation of the whole service: (message key, route name). An entry whose route does not exist yet is shown
# greyed out, so that pages added later light up in the menu by registering a route with that name.
NAV: tuple[tuple[str, str], ...] = (
    ("nav.home", "home"),
    ("nav.dashboard", "dashboard"),
    ("nav.map", "map"),
    ("nav.sankey", "sankey"),
    ("places.nav", "enterprises"),
    ("nav.batches", "batches"),
    ("nav.batteries", "batteries"),
    ("nav.audit", "audit"),
    ("nav.import", "import"),
)

# The counts shown on the home page, in this order (keys of flows.pages.stats.table_counts).
HOME_COUNTS: tuple[str, ...] = (
    "regions",
    "parks",
    "enterprises",
    "declarations",
    "manifests",
    "batteries",
    "battery_events",
)

router = APIRouter(include_in_schema=False)


def is_fragment_request(request: Request) -> bool:
    """Whether htmx asked for a part of a page rather than a whole page."""
    headers = request.headers
    # A boosted link or a history restore replaces the whole page, so those still need the full layout.
    return (
        headers.get("hx-request") == "true"
        and headers.get("hx-boosted") != "true"
        and headers.get("hx-history-restore-request") != "true"
    )


def nav_items(request: Request, lang: str) -> list[dict[str, Any]]:
    """The main menu: label, link (None while the page does not exist) and whether it is the current page."""
    items = []
    for key, route in NAV:
        try:
            href: str | None = str(request.app.url_path_for(route))
        except NoMatchFound:
            href = None
        items.append({"label": translate(lang, key), "href": href, "current": href == request.url.path})
    return items


def language_links(request: Request, lang: str) -> list[dict[str, Any]]:
    """The language switcher: each language with a link that comes back to this page."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    links = []
    for code in LANGUAGES:
        path = request.app.url_path_for("set_language", code=code)
        links.append(
            {
                "code": code,
                "name": LANGUAGE_NAMES[code],
                "href": f"{path}?{urlencode({'next': here})}",
                "current": code == lang,
            }
        )
    return links


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    lang: str,
    status_code: int = 200,
    block: str = "content",
    headers: dict[str, str] | None = None,
) -> Response:
    """Render a page template, or only one of its blocks ("content" unless named) for an htmx request."""
    principal: Principal | None = getattr(request.state, "principal", None)
    full: dict[str, Any] = {
        "lang": lang,
        "_": partial(translate, lang),
        "t": partial(translate, lang),
        "say": partial(say, lang),
        "name_of": partial(local_name, lang),
        "languages": language_links(request, lang),
        "home_href": request.app.url_path_for("home"),
        "nav": nav_items(request, lang),
        "tile_url": request.app.state.settings.tile_url,
        "user": principal,
        "role_label": translate(lang, f"role.{principal.role.value}") if principal else "",
        # Echoed by every form and, through hx-headers, by every htmx request that writes.
        "csrf_token": principal.csrf_token if principal and principal.csrf_token else "",
        **context,
    }
    # The same URL answers in either language and as page or fragment: caches must keep them apart.
    sent = {"Content-Language": lang, "Vary": "Accept-Language, Cookie, HX-Request", **(headers or {})}
    block_name = block if is_fragment_request(request) else None
    response = templates.TemplateResponse(
        request, name, full, status_code=status_code, headers=sent, block_name=block_name
    )
    if status_code == 200:
        year_memory.remember(request, response)  # the year asked for here is the one the next page opens on
    return response


def pct(fraction: float | None) -> str:
    """A rate as published: in percent, truncated (never rounded up) to 0.1 pt; a dash when there is none."""
    return Numbers("en").rate(fraction)  # the same in either language


def beijing(moment: datetime | None) -> str:
    """A stored moment on the Beijing clock, to the minute; a dash when there is none."""
    return "–" if moment is None else stored_utc(moment).astimezone(CST).strftime("%Y-%m-%d %H:%M")


def _prefecture_adcode(adcode: str) -> str:
    return prefecture_of(adcode)


def _park_rows(parks: list[ParkPublic], prefectures: list[RegionPublic], lang: str) -> list[dict[str, Any]]:
    names = {p.adcode: local_name(lang, p.name_zh, p.name_en) for p in prefectures}
    return [
        {
            "id": park.id,
            "name": local_name(lang, park.name_zh, park.name_en),
            "level": park.level.value,
            "prefecture": names.get(_prefecture_adcode(park.region_adcode), park.region_adcode),
        }
        for park in parks
    ]


@router.get("/", name="home")
def home(request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep) -> Response:
    """The province overview (signed-in users): record counts in their scope, prefectures, parks and a map."""
    counts = scoped_counts(session=session, principal=principal)
    prefectures = directory.list_regions(session=session, level=RegionLevel.prefecture)
    parks = directory.list_parks(session=session)
    context = {
        "counts": [{"key": key, "value": counts[key]} for key in HOME_COUNTS],
        "prefectures": prefectures,
        "parks": _park_rows(parks, prefectures, lang),
    }
    return render(request, "index.html", context, lang=lang)


@router.get("/lang/{code}", name="set_language")
def set_language(
    request: Request, lang: LanguageDep, code: str, next_: Annotated[str | None, Query(alias="next")] = None
) -> RedirectResponse:
    """Remember the chosen language in a cookie for a year and go back to the page the user was on."""
    if code not in LANGUAGES:
        # Said in the language the reader has now: the one asked for is not known.
        refusal = msg("kernel.unknown_language", language=code, known=", ".join(LANGUAGES))
        raise HTTPException(status_code=400, detail=refusal.render(lang))
    # An off-site `next` would make this an open redirect; such a link still switches language, then goes home.
    response = RedirectResponse(safe_next(next_), status_code=303)
    response.set_cookie(
        COOKIE,
        code,
        max_age=COOKIE_MAX_AGE,
        path="/",
        samesite="lax",
        httponly=True,
        # Mark it secure whenever it arrived over TLS; on plain http a secure cookie would be dropped silently.
        secure=request.url.scheme == "https",
    )
    return response
