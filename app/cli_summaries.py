"""`circuflow summaries check` and `rebuild`: the summary tables against the base rows, and rebuilt from them."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated

import typer
from rich.console import Console
from sqlmodel import Session

from flows.waste import summaries

err = Console(stderr=True, soft_wrap=True)
summaries_cli = typer.Typer(
    help="Summaries of the bottom-up figure, kept on write: check them against the base rows, or rebuild them.",
    no_args_is_help=True,
)
SHOWN = 20  # differences listed in text; --json lists them all


Sessions = Callable[[], AbstractContextManager[Session]]
_sessions: list[Sessions] = []  # the main command's session factory, given at registration


def _session() -> AbstractContextManager[Session]:
    return _sessions[0]()


@summaries_cli.command("check")
def check(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Recompute the summaries from the base rows and report every difference (exit status 1 if any)."""
    with _session() as session:
        found = summaries.check(session)
    if as_json:
        body = {"ok": not found, "differences": [d.as_json() for d in found]}
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
    elif not found:
        err.print("summaries equal the base rows", highlight=False)
    else:
        for d in found[:SHOWN]:
            key = ", ".join(str(k) for k in d.key)
            mine = ", ".join(f"{name} {value}" for name, value in zip(d.figures(), d.summary, strict=True))
            theirs = ", ".join(f"{name} {value}" for name, value in zip(d.figures(), d.base, strict=True))
            err.print(f"{d.table} ({key}): summary {mine}; base rows {theirs}", highlight=False)
        more = f" ({len(found) - SHOWN} more with --json)" if len(found) > SHOWN else ""
        err.print(f"{len(found)} differences{more}; `circuflow summaries rebuild` replaces them", highlight=False)
    raise typer.Exit(1 if found else 0)


@summaries_cli.command("rebuild")
def rebuild() -> None:
    """Replace the summaries with sums of the base rows (after a bulk load, a restore or a repair)."""
    with _session() as session:
        summaries.rebuild(session)
        session.commit()
    err.print("summaries rebuilt", highlight=False)


def register(cli: typer.Typer, sessions: Sessions) -> None:
    """Add the `summaries` commands to the main command, with its sessions (on the primary database)."""
    _sessions[:] = [sessions]
    cli.add_typer(summaries_cli, name="summaries")
