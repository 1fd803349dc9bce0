"""`circuflow citus`: spreading the database over a Citus cluster (README, "Going to Citus")."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from app.settings import Settings
from flows.kernel import citus
from models.db import make_engine

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

citus_cli = typer.Typer(help="Spread the database over a Citus cluster.", no_args_is_help=True)


@citus_cli.command("distribute")
def distribute(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the statements; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Make the reference tables and distribute the rest by enterprise and battery, in one transaction."""
    engine = make_engine(Settings().database_url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name != "postgresql" or not citus.is_citus(conn):
                err.print("[red]error:[/red] the database is not a Citus coordinator (no citus extension)")
                raise typer.Exit(1)
            steps = citus.plan(conn) if dry_run else citus.distribute(conn)
    finally:
        engine.dispose()
    if as_json:
        report = {
            "statements": steps.statements,
            "reference": steps.reference,
            "distributed": [d.table for d in steps.distributed],
            "blocked": steps.blocked,
            "foreign_keys_not_kept": steps.dropped,
            "ran": not dry_run,
        }
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
        return
    for statement in steps.statements:
        out.print(f"{statement};", highlight=False)
    for table, reason in steps.blocked.items():
        out.print(f"-- stays on the coordinator: {table} ({reason})", highlight=False)
    for name, reason in steps.dropped.items():
        out.print(f"-- foreign key not kept: {name} ({reason})", highlight=False)


def register(cli: typer.Typer) -> None:
    """Add `circuflow citus` to the main command."""
    cli.add_typer(citus_cli, name="citus")
