"""`circuflow partitions list | ensure`: the years' partitions of transfer_batch and battery_event (PostgreSQL)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from app.settings import Settings, write_engine_for
from flows.kernel import partitions
from models.partitions import AHEAD

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
partitions_cli = typer.Typer(
    help="Years partitioned on PostgreSQL: list the partitions, create the coming years'.", no_args_is_help=True
)


@partitions_cli.command("list")
def list_partitions(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List each partition with its year and rows (DEFAULT's counted, a year's estimated)."""
    engine = write_engine_for(Settings())
    try:
        with Session(engine) as session:
            found = partitions.listing(session=session)
    finally:
        engine.dispose()
    if as_json:
        rows = [{"table": p.table, "partition": p.name, "year": p.year, "rows": p.rows} for p in found]
        sys.stdout.write(json.dumps({"partitions": rows}, ensure_ascii=False) + "\n")
        return
    if not found:
        err.print("no partitioned tables (SQLite keeps plain tables)", highlight=False)
        return
    table = Table("table", "partition", "year", "rows")
    for p in found:
        table.add_row(p.table, p.name, "DEFAULT" if p.year is None else str(p.year), str(p.rows))
    out.print(table)


@partitions_cli.command("ensure")
def ensure_partitions(
    ahead: Annotated[int, typer.Option(min=0, max=50, help="Years after this one to create.")] = AHEAD,
) -> None:
    """Create this year's partitions and the next ones', and move rows held in DEFAULT into their year."""
    engine = write_engine_for(Settings())
    try:
        if engine.dialect.name != "postgresql":
            err.print("SQLite keeps plain tables: nothing to partition", highlight=False)
            return
        with Session(engine) as session:
            created = partitions.ensure(session=session, now=datetime.now(UTC), ahead=ahead)
            session.commit()
    finally:
        engine.dispose()
    for c in created:
        err.print(f"{c.table}: {c.year} created, {c.moved} rows moved from DEFAULT", highlight=False)
    if not created:
        err.print("every partition is there", highlight=False)


def register(cli: typer.Typer) -> None:
    """Add the partitions commands to the main command."""
    cli.add_typer(partitions_cli, name="partitions")
