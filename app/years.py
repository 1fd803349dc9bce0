"""One year across pages: the year chosen in a URL is remembered in a cookie and offered again on the next page."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

COOKIE = "year"
COOKIE_MAX_AGE = 180 * 24 * 3600
FIRST, LAST = 2000, 2100  # the reporting years any page accepts (app.params.YearQuery)


def _year(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) != 4:
        return None
    year = int(value)
    return year if FIRST <= year <= LAST else None


def remembered(request: Request) -> int | None:
    """The year the reader last chose on any page (a malformed cookie counts as none)."""
    return _year(request.cookies.get(COOKIE))


def remember(request: Request, response: Response) -> None:
    """Keep the year a page was asked for, so that the next page opens on it."""
    if request.method != "GET":
        return
    asked = _year(request.query_params.get("year"))
    if asked is not None and asked != remembered(request):
        response.set_cookie(
            COOKIE,
            str(asked),
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="lax",
            path="/",
            secure=request.url.scheme == "https",
        )
