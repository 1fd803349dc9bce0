"""JSON API for utilisation rates, targets and audit flags (filled in by the rates work)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.auth import get_principal

router = APIRouter(dependencies=[Depends(get_principal)])
