"""The flow map and the Sankey diagrams: where waste goes, by region, park, enterprise and route."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
