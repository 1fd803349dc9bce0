"""The battery trace page: search by code, the timeline of events, the custody path and the chain's flags."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
