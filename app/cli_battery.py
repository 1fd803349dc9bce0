"""Battery commands: validate battery, trace, import batteries and battery events (as the system principal)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

from app.settings import Settings, write_engine_for
from flows.battery import chain as battery
from flows.battery import whitelist
from flows.battery.code import parse_battery_code
from flows.kernel.errors import DomainError, InvalidInput
from flows.kernel.principal import system_principal
from models.enums import Channel
from models.quantity import json_default

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
EnterpriseOpt = Annotated[
    str | None,
    typer.Option("--enterprise", help="Credit code of the enterprise the rows are for, when a row does not say."),
]


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=json_default) + "\n")


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


@contextmanager
def _session() -> Iterator[Session]:
    engine = write_engine_for(Settings())
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def validate_battery(code: str, as_json: JsonOpt = False) -> None:
    """Check a GB/T 34014 battery code: exit 0 with its decoded fields, or 1 naming the field that is wrong."""
    try:
        decoded = parse_battery_code(code)
    except InvalidInput as exc:
        if as_json:
            _emit({"code": code, "valid": False, "field": exc.field, "reason": exc.message})
            raise typer.Exit(1) from None
        _fail(exc.message)
        return
    fields = {
        "code": decoded.code,
        "maker": decoded.maker,
        "level": decoded.level.value,
        "chemistry": decoded.chemistry,
        "chemistry_name": decoded.chemistry_name,
        "spec": decoded.spec,
        "trace": decoded.trace,
        "production_date": decoded.production_date.isoformat(),
        "serial": decoded.serial,
    }
    if as_json:
        _emit({**fields, "valid": True})
        return
    for key, value in fields.items():
        out.print(f"{key:<16} {value}", highlight=False)


def trace_cmd(
    code: str,
    as_json: JsonOpt = False,
    pack: Annotated[bool, typer.Option("--pack", help="The whole pack: the pack, its modules and cells.")] = False,
) -> None:
    """The whole life of a battery: events in order, custody, parent and children (--pack: its whole pack)."""
    try:
        with _session() as session:
            principal = system_principal()
            result: battery.BatteryTrace = (
                battery.trace_pack(session=session, principal=principal, code=code)
                if pack
                else battery.trace(session=session, principal=principal, code=code)
            )
    except DomainError as exc:
        _fail(exc.message)
        return
    if as_json:
        _emit(result.model_dump(mode="json"))
        return
    _print_trace(result)
    for member in getattr(result, "members", []):
        out.print()
        _print_trace(member)


def _party(p: battery.Party | None) -> str:
    return f"{p.name_zh} ({p.uscc})" if p else "-"


def _print_trace(t: battery.BatteryTrace) -> None:
    out.print(f"[bold]{t.code}[/bold]  {t.level}, {t.chemistry_name or t.chemistry}, made {t.production_date}")
    if t.original_code:
        out.print(f"codes      {' -> '.join(t.codes)}", highlight=False)
    out.print(f"state      {t.state} (next: {', '.join(t.allowed_next) or 'none'})", highlight=False)
    out.print(f"holder     {_party(t.holder)}", highlight=False)
    out.print(f"parent     {t.parent or '-'}", highlight=False)
    if t.children:
        out.print(f"children   {', '.join(t.children)}", highlight=False)
    table = Table(show_edge=False, pad_edge=False)
    for column in ("at (UTC)", "event", "enterprise", "counterpart", "place", "upload"):
        table.add_column(column, overflow="fold")
    for e in t.events:
        upload = "-"
        if e.deadline:
            upload = f"late (due {e.deadline.due})" if e.deadline.late else f"on time (due {e.deadline.due})"
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M"),
            e.type,
            _party(e.enterprise),
            _party(e.counterpart),
            e.place.region_name_zh or e.place.region_adcode or "-",
            upload,
        )
    out.print(table)


def _import(kind: str, path: Path, enterprise: str | None) -> None:
    try:
        rows, lines = battery.read_table(path, Settings().upload_limits())
    except (DomainError, OSError) as exc:
        _fail(exc.message if isinstance(exc, DomainError) else str(exc))
        return
    if not rows:
        _fail(f"{path.name}: no rows under the header")
    key = "maker_uscc" if kind == "batteries" else "reporter_uscc"
    if enterprise:
        rows = [{**row, key: row.get(key) or enterprise} for row in rows]
    principal = system_principal(Channel.import_)
    now = datetime.now(UTC)
    try:
        with _session() as session, _progress() as progress:
            task = progress.add_task(f"{kind}", total=len(rows))

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            if kind == "batteries":
                saved = battery.register_batteries(
                    session=session, principal=principal, rows=rows, lines=lines, now=now, progress=tick
                )
                done = f"imported {len(saved)} batteries"
            else:
                events = battery.record_events(
                    session=session, principal=principal, rows=rows, lines=lines, now=now, progress=tick
                )
                own = sum(1 for e in events if "via" not in e.attributes)
                done = f"imported {own} battery events ({len(events) - own} copied to modules and cells)"
            session.commit()
    except battery.RowsRefused as exc:
        rows_wrong = len({e.row for e in exc.errors})
        err.print(f"[red]refused:[/red] {rows_wrong} of {exc.total} rows are wrong; nothing was saved", highlight=False)
        for e in exc.errors:
            err.print(f"  line {e.row}, {e.column}: {e.reason}", highlight=False)
        raise typer.Exit(1) from None
    except DomainError as exc:
        _fail(exc.message)
        return
    out.print(done, highlight=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def import_batteries(
    path: Annotated[Path, typer.Argument(help="CSV (UTF-8 or GB18030) or XLSX: code, parent_code, rated_kwh, ...")],
    enterprise: EnterpriseOpt = None,
) -> None:
    """Register batteries with their genealogy from a file: all rows land, or none (bad rows are listed)."""
    _import("batteries", path, enterprise)


def import_battery_events(
    path: Annotated[
        Path, typer.Argument(help="CSV (UTF-8 or GB18030) or XLSX: code, type, occurred_at, reporter_uscc, ...")
    ],
    enterprise: EnterpriseOpt = None,
) -> None:
    """Record battery events from a file, in the order they happened: all rows land, or none."""
    _import("battery-events", path, enterprise)


def import_whitelist(
    path: Annotated[
        Path, typer.Argument(help="CSV (UTF-8 or GB18030) or XLSX: uscc, activity, edition, batch, listed_on, ...")
    ],
) -> None:
    """Import the battery whitelist as it now stands: all rows land, or none; a stored entry's key replaces it."""
    try:
        rows, lines = battery.read_table(path, Settings().upload_limits())
        with _session() as session:
            done = whitelist.save_entries(
                session=session,
                principal=system_principal(Channel.import_),
                rows=rows,
                lines=lines,
                now=datetime.now(UTC),
            )
            session.commit()
    except battery.RowsRefused as exc:
        err.print(
            f"[red]refused:[/red] {len({e.row for e in exc.errors})} of {exc.total} rows are wrong; nothing was saved"
        )
        for e in exc.errors:
            err.print(f"  line {e.row}, {e.column}: {e.reason}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except DomainError as exc:
        _fail(exc.message)
        return
    counts = {outcome: sum(w.outcome == outcome for w in done) for outcome in ("created", "replaced", "unchanged")}
    out.print(
        f"imported the whitelist: {counts['created']} created, {counts['replaced']} replaced, "
        f"{counts['unchanged']} unchanged",
        highlight=False,
    )


def register(cli: typer.Typer, validate_cli: typer.Typer, import_cli: typer.Typer) -> None:
    """Add the battery commands to the main command and its validate and import groups."""
    validate_cli.command("battery")(validate_battery)
    cli.command("trace")(trace_cmd)
    import_cli.command("batteries")(import_batteries)
    import_cli.command("battery-events")(import_battery_events)
    import_cli.command("whitelist")(import_whitelist)
