"""The enterprise and park pages: location, roles, licences, flows in and out, rate and flags."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
