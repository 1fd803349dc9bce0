"""JSON API for power-battery traceability (filled in by the battery work)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.auth import get_principal

router = APIRouter(dependencies=[Depends(get_principal)], tags=["batteries"])
