"""Downloads of the pages' lists: `?download=csv|xlsx` on a list's own URL answers its table as a file."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import Response

from flows.kernel.errors import InvalidInput
from flows.pages import exports

PARAM = "download"


def wanted(request: Request) -> str | None:
    """The format asked for, if any; an unknown one is refused naming the parameter."""
    fmt = request.query_params.get(PARAM)
    if fmt is None or fmt == "":
        return None
    if fmt not in exports.FORMATS:
        raise InvalidInput("pages.exports.format", field=PARAM, allowed=", ".join(exports.FORMATS))
    return fmt


def response(table: exports.Table, lang: str, fmt: str, stem: str | None = None) -> Response:
    """The table as a file to save, named after the list (and its year or subject when given)."""
    body = exports.file_bytes(table, lang, fmt)
    name = f"circuflow-{stem or table.name}.{fmt}"
    media = "text/csv; charset=utf-8" if fmt == "csv" else exports.XLSX_MEDIA
    headers = {
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}",
        "X-Rows-Cap": str(exports.ROW_CAP),
    }
    if table.truncated:
        headers["X-Rows-Truncated"] = "1"
    return Response(body, media_type=media, headers=headers)


def links(request: Request, cap: int = exports.ROW_CAP, **extra: str) -> dict[str, str]:
    """The page's own URL with its filters, asking for each format (the page offset dropped: files hold every page)."""
    dropped = (PARAM, "page", "offset", *extra)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in dropped] + list(extra.items())
    found = {fmt: request.url.path + "?" + urlencode([*kept, (PARAM, fmt)]) for fmt in exports.FORMATS}
    return {**found, "cap": f"{cap:,}"}
