"""The `rate` and `audit` report commands (filled in by the rates work)."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    """Add the report commands to the main command."""
