"""Batch logging for enterprise users: the form, dispatch, receipt and rejection, and the list of batches."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
