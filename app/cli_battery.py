"""Battery commands: validate battery, trace, import batteries and battery events (filled in by the battery work)."""

from __future__ import annotations

import typer


def register(cli: typer.Typer, validate_cli: typer.Typer, import_cli: typer.Typer) -> None:
    """Add the battery commands to the main command and its validate and import groups."""
