"""HTML pages (placeholder until the web layer lands)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> str:
    """The home page."""
    return "<!doctype html><html lang='zh-CN'><title>circuflow</title><h1>circuflow</h1></html>"
