"""The audit workspace of bureau auditors: drill-down, flags queue, period locks, corrections and exports."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
