"""The `circuflow` command line."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlmodel import Session

from app.settings import Settings
from flows.errors import DomainError
from flows.setup import upgrade_database
from flows.stats import table_counts
from flows.uscc import validate_uscc
from maps.locate import locate as locate_point
from models.db import make_engine

cli = typer.Typer(
    help="circuflow: solid-waste and power-battery flows of an industrial province.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema and reference data.", no_args_is_help=True)
validate_cli = typer.Typer(help="Check identifiers.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(validate_cli, name="validate")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _settings() -> Settings:
    return Settings()


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _upgrade(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    with _progress() as progress:
        task = progress.add_task("schema and boundaries", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = upgrade_database(engine, progress=tick)
    engine.dispose()
    err.print(
        f"database ready: {report.regions_added} regions, {report.categories_added} categories, "
        f"{report.targets_added} targets added",
        highlight=False,
    )


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations and load the boundaries and reference data that are missing."""
    _upgrade(_settings())


@cli.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve", help="Serve the app once the demo is loaded.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the generator; the same seed gives the same data.")] = 2024,
) -> None:
    """Load the deterministic Sichuan demo into an empty database (after `db upgrade`)."""
    from flows.demo import load_demo

    settings = _settings()
    _upgrade(settings)
    engine = make_engine(settings.database_url)
    tasks: dict[str, Any] = {}
    try:
        with _progress() as progress, Session(engine) as session:

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            summary = load_demo(session=session, seed=seed, progress=tick)
            session.commit()
    except DomainError as exc:
        if not serve_after:
            _fail(exc.message)
        err.print(f"demo not loaded: {exc.message}", highlight=False)
    else:
        err.print(f"demo loaded: {summary}", highlight=False)
    finally:
        engine.dispose()
    if serve_after:
        serve()


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the web app and the API."""
    import uvicorn

    from app.main import create_app

    settings = _settings()
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port)


@cli.command()
def stats(as_json: JsonOpt = False) -> None:
    """Row counts of the main tables."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        counts = table_counts(session=session)
    engine.dispose()
    if as_json:
        _emit(counts)
        return
    for key, value in counts.items():
        out.print(f"{key:<18} {value:>12,}", highlight=False)


@validate_cli.command("uscc")
def validate_uscc_cmd(code: str, as_json: JsonOpt = False) -> None:
    """Check a Unified Social Credit Code (GB 32100-2015): exit 0 if valid, 1 with the reason if not."""
    result = validate_uscc(code)
    if as_json:
        _emit({"code": result.code, "valid": result.ok, "reason": result.reason or None})
        raise typer.Exit(0 if result.ok else 1)
    if not result.ok:
        _fail(f"{result.code}: {result.reason}")
    out.print(f"{result.code}: valid", highlight=False)


@cli.command()
def locate(
    lon: Annotated[float, typer.Argument(help="Longitude, WGS84 degrees.")],
    lat: Annotated[float, typer.Argument(help="Latitude, WGS84 degrees.")],
    as_json: JsonOpt = False,
) -> None:
    """Name the province, prefecture, county and park a point lies in."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            loc = locate_point(session=session, lon=lon, lat=lat)
    except DomainError as exc:
        _fail(exc.message)
        return
    finally:
        engine.dispose()
    if as_json:
        _emit(loc.as_dict())
    else:
        for key, value in loc.as_dict().items():
            out.print(f"{key:<11} {value if value is not None else '-'}", highlight=False)


def main() -> None:
    """Entry point of the `circuflow` command."""
    cli()
