"""The `circuflow` command line."""

from __future__ import annotations

import json
import os
import secrets
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
from sqlmodel import Session, select

from app import cli_battery, cli_citus, cli_partitions, cli_reports, cli_summaries
from app.settings import Settings, write_engine_for
from app.setup import upgrade_database
from flows.access import accounts
from flows.access import trail as audit
from flows.access.accounts import system_principal
from flows.demo.accounts import DemoAccount
from flows.kernel.errors import DomainError, InvalidInput
from flows.kernel.messages import Term
from flows.kernel.uscc import validate_uscc
from flows.pages.stats import table_counts
from flows.waste import chains
from flows.waste.flag_alerts import announce_flags
from maps.datum import Datum, point_to_wgs84
from maps.locate import locate as locate_point
from maps.parks import create_parks, read_parks_file
from models import Enterprise
from models.enums import Channel, UserRole
from models.quantity import json_default

cli = typer.Typer(
    help="circuflow: solid-waste and power-battery flows of an industrial province.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema and reference data.", no_args_is_help=True)
validate_cli = typer.Typer(help="Check identifiers.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
import_cli = typer.Typer(help="Bulk imports: all rows land, or none.", no_args_is_help=True)
cli.add_typer(import_cli, name="import")
user_cli = typer.Typer(help="Accounts: add, list, disable, and API tokens.", no_args_is_help=True)
cli.add_typer(validate_cli, name="validate")
cli.add_typer(user_cli, name="user")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _settings() -> Settings:
    settings = Settings()
    # Commands that write append to the audit log, whose head they sign with the settings' key.
    audit.use_signing_key(settings.audit_signing_key())
    return settings


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=json_default) + "\n")


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
    engine = write_engine_for(settings)
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
    from flows.demo.accounts import create_demo_accounts
    from flows.demo.load import load_demo

    settings = _settings()
    _upgrade(settings)
    engine = write_engine_for(settings)
    tasks: dict[str, Any] = {}
    try:
        with _progress() as progress, Session(engine) as session:

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            summary = load_demo(session=session, seed=seed, progress=tick)
            demo_accounts = create_demo_accounts(session=session, now=_now())
            session.commit()
    except DomainError as exc:
        if not serve_after:
            _fail(exc.message)
        err.print(f"demo not loaded: {exc.message}", highlight=False)
        err.print(
            "demo accounts keep their passwords; set a new one with `circuflow user password NAME`", highlight=False
        )
    else:
        err.print(f"demo loaded: {summary}", highlight=False)
        _print_accounts(demo_accounts)
    finally:
        engine.dispose()
    if serve_after:
        serve()


def _print_accounts(demo_accounts: list[DemoAccount]) -> None:
    table = Table(title="Demo accounts (passwords are shown this once)", title_justify="left")
    for column in ("username", "password", "role"):
        table.add_column(column, no_wrap=True)
    table.add_column("scope", overflow="fold")
    for account in demo_accounts:
        table.add_row(account.username, account.password, account.role.value, account.scope)
    out.print(table)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes (default CIRCUFLOW_WORKERS, 1).")
    ] = None,
) -> None:
    """Serve the web app and the API."""
    import uvicorn

    settings = _settings()
    count = workers or settings.workers
    if count > 1:
        # Each worker process builds its own app (and its own pool) from the environment.
        os.environ["CIRCUFLOW_DATABASE_URL"] = settings.database_url
        uvicorn.run(
            "app.main:app_from_environment",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=count,
            # A worker imports the whole command before it answers the supervisor's first ping: on a busy machine
            # that takes longer than uvicorn's default 5 s, and the worker would be killed while it starts.
            timeout_worker_healthcheck=60,
        )
        return
    from app.main import create_app

    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port)


@cli.command()
def stats(as_json: JsonOpt = False) -> None:
    """Row counts of the main tables."""
    settings = _settings()
    engine = write_engine_for(settings)
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
    datum: Annotated[
        Datum, typer.Option("--datum", help="The point's datum: wgs84, gcj02 (AMap, Tencent) or bd09 (Baidu).")
    ] = Datum.wgs84,
) -> None:
    """Name the province, prefecture, county and park a point lies in."""
    settings = _settings()
    engine = write_engine_for(settings)
    lon, lat = point_to_wgs84(lon, lat, datum)
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


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _session() -> Iterator[Session]:
    engine = write_engine_for(_settings())
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


@user_cli.command("add")
def user_add(
    username: str,
    role: Annotated[UserRole, typer.Option(help="admin, bureau, park_manager or enterprise.")],
    region: Annotated[str | None, typer.Option(help="Adcode a bureau account is scoped to.")] = None,
    park: Annotated[int | None, typer.Option(help="Park id a park manager is scoped to.")] = None,
    enterprise: Annotated[str | None, typer.Option(help="Credit code (or id) of the enterprise.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (at least 10 characters); a strong one is generated when omitted.")
    ] = None,
    display_name: Annotated[str, typer.Option(help="Name shown in the app.")] = "",
) -> None:
    """Create an account with its role and scope; prints a generated password once."""
    generated = password is None
    secret = password or secrets.token_urlsafe(12)
    try:
        with _session() as session:
            enterprise_id = _enterprise_id(session, enterprise) if enterprise else None
            accounts.create_user(
                session=session,
                username=username,
                password=secret,
                role=role,
                now=_now(),
                scope_adcode=region,
                park_id=park,
                enterprise_id=enterprise_id,
                display_name=display_name,
                actor=system_principal(),
            )
            session.commit()
    except DomainError as exc:
        _fail(exc.message)
    out.print(f"created {username.strip().lower()} ({role.value})", highlight=False)
    if generated:
        out.print(f"password: {secret}", highlight=False)


def _enterprise_id(session: Session, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    found = session.exec(select(Enterprise.id).where(Enterprise.uscc == ref.strip().upper())).first()
    if found is None:
        raise InvalidInput(
            "access.enterprise_uscc_not_found", field="enterprise", column=Term("field.enterprise"), uscc=ref
        )
    return found


@user_cli.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """Every account with its role, scope and whether it is active."""
    with _session() as session:
        rows = [
            {
                "username": u.username,
                "role": str(u.role),
                "scope_adcode": u.scope_adcode,
                "park_id": u.scope_park_id,
                "enterprise_id": u.scope_enterprise_id,
                "active": u.is_active,
            }
            for u in accounts.list_users(session=session)
        ]
    if as_json:
        _emit(rows)
        return
    for row in rows:
        scope = row["scope_adcode"] or row["park_id"] or row["enterprise_id"] or "-"
        state = "" if row["active"] else "  (disabled)"
        out.print(f"{row['username']:<24} {row['role']:<13} {scope!s:<8}{state}", highlight=False)


@user_cli.command("disable")
def user_disable(username: str) -> None:
    """Disable an account: its sessions end and its tokens stop working."""
    try:
        with _session() as session:
            accounts.set_active(
                session=session,
                user=accounts.get_user(session=session, username=username),
                active=False,
                now=_now(),
                actor=system_principal(),
            )
            session.commit()
    except DomainError as exc:
        _fail(exc.message)
    out.print(f"disabled {username}", highlight=False)


@user_cli.command("password")
def user_password(
    username: str,
    password: Annotated[
        str | None, typer.Option(help="The new password; a strong one is generated when omitted.")
    ] = None,
) -> None:
    """Set a new password for an account (prints a generated one once); its sessions end."""
    secret = password or secrets.token_urlsafe(12)
    try:
        with _session() as session:
            accounts.set_password(
                session=session,
                user=accounts.get_user(session=session, username=username),
                password=secret,
                now=_now(),
                actor=system_principal(),
            )
            session.commit()
    except DomainError as exc:
        _fail(exc.message)
    out.print(f"password of {username} changed", highlight=False)
    if password is None:
        out.print(f"password: {secret}", highlight=False)


@user_cli.command("token")
def user_token(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for, e.g. the client system's name.")] = "cli",
    revoke: Annotated[int | None, typer.Option(help="Revoke the token with this id instead.")] = None,
) -> None:
    """Create an API token for an account (printed once), or revoke one with --revoke ID."""
    try:
        with _session() as session:
            user = accounts.get_user(session=session, username=username)
            owner = accounts.principal_of(user, Channel.cli)
            if revoke is not None:
                accounts.revoke_token(
                    session=session, principal=owner, token_id=revoke, now=_now(), actor=system_principal()
                )
                session.commit()
                out.print(f"revoked token {revoke}", highlight=False)
                return
            _, raw = accounts.create_token(
                session=session, principal=owner, name=name, now=_now(), actor=system_principal()
            )
            session.commit()
    except DomainError as exc:
        _fail(exc.message)
        return
    sys.stdout.write(raw + "\n")


# --- the audit log: its signed head exported as an anchor, and verified ------------------------------------------

chains_cli = typer.Typer(
    help="Waste chains: the allocation of each tonne to its first manifests.", no_args_is_help=True
)
cli.add_typer(chains_cli, name="chains")


@chains_cli.command("reallocate")
def chains_reallocate() -> None:
    """Recompute every chain's draws and shares from the manifests (after an upgrade from before 0008)."""
    with _session() as session:
        count = chains.reallocate_all(session)
        session.commit()
    err.print(f"{count} manifests allocated", highlight=False)


# --- the audit log: its signed head exported as an anchor, and verified ------------------------------------------

audit_cli = typer.Typer(
    help="The audit log: export its signed head as an anchor, verify the log.", no_args_is_help=True
)
cli.add_typer(audit_cli, name="audit-log")


@audit_cli.command("anchor")
def audit_anchor(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the anchor to this file instead of printing it.")
    ] = None,
    resign: Annotated[
        bool, typer.Option("--resign", help="After changing the audit key: sign the log as it stands with the new key.")
    ] = False,
) -> None:
    """Print the signed head of the audit log as a JSON anchor to keep outside the database; signs one if missing."""
    try:
        with _session() as session:
            anchor = audit.sign_head(session=session, principal=system_principal(), now=_now(), resign=resign)
            session.commit()
    except DomainError as exc:
        _fail(exc.message)
        return
    text = json.dumps(anchor.as_dict(), ensure_ascii=False, default=json_default)
    if out_file is None:
        sys.stdout.write(text + "\n")
        return
    out_file.write_text(text + "\n", encoding="utf-8")
    err.print(f"anchor of entry {anchor.entry_id} ({anchor.count} entries) written to {out_file}", highlight=False)


@audit_cli.command("verify")
def audit_verify(
    anchor_file: Annotated[
        Path | None, typer.Option("--anchor", help="An anchor exported earlier: its entry must still be in the log.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-compute the chain and check the signed head (and an anchor): exit 0 when all holds, 1 naming what broke."""
    from app.settings import engine_for

    anchor = None
    if anchor_file is not None:
        try:
            anchor = audit.Anchor.from_dict(json.loads(anchor_file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            _fail(f"anchor: cannot read {anchor_file}: {exc}")
        except DomainError as exc:
            _fail(exc.message)
    # A read-only walk: on SQLite it must not hold the write lock while it reads the whole log.
    engine = engine_for(_settings())
    try:
        with Session(engine) as session:
            check = audit.verify_chain(session=session, anchor=anchor)
    finally:
        engine.dispose()
    if as_json:
        _emit(
            {
                "ok": check.ok,
                "checked": check.checked,
                "broken_at": check.broken_at,
                "reason": check.reason or None,
                "fault": check.fault or None,
                "anchored": check.anchored,
                "anchor_checked": check.anchor_checked,
                "head": check.head.as_dict() if check.head else None,
            }
        )
        raise typer.Exit(0 if check.ok else 1)
    if not check.ok:
        _fail(str(check.fault_message()))
    if check.head is None:
        out.print("audit log verified: it is empty", highlight=False)
        return
    against = f"; the anchor of entry {anchor.entry_id} matches" if anchor is not None else ""
    out.print(
        f"audit log verified: {check.checked} entries, signed head at entry {check.head.entry_id}{against}",
        highlight=False,
    )


@import_cli.command("parks")
def import_parks(
    path: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage or Shapefile with a name_zh column.")],
    no_repair: Annotated[bool, typer.Option("--no-repair", help="Refuse self-crossing polygons instead.")] = False,
    datum: Annotated[
        Datum, typer.Option("--datum", help="The lon/lat datum of the file: wgs84, gcj02 (AMap, Tencent) or bd09.")
    ] = Datum.wgs84,
) -> None:
    """Import industrial parks with their boundaries; each is placed in the county that holds it."""
    try:
        specs = read_parks_file(path, datum)
        with _session() as session:
            parks = create_parks(specs, session=session, repair=not no_repair)
            for park in parks:
                audit.record(
                    session=session,
                    principal=system_principal(Channel.import_),
                    action="create",
                    table="park",
                    row_id=park.id,
                    before=None,
                    after=audit.snapshot(park),
                    now=_now(),
                )
            session.commit()
    except DomainError as exc:
        _fail(exc.message)
        return
    out.print(f"imported {len(parks)} parks", highlight=False)


MAX_PRINTED_ERRORS = 200
ImportFile = Annotated[Path, typer.Argument(help="CSV (UTF-8, UTF-8 with BOM or GB18030) or XLSX (first sheet).")]


def _import_rows(kind: str, path: Path, as_json: bool) -> None:
    """Run one bulk import as the system principal; on refusal list the bad rows and exit 1."""
    from flows.waste.imports import IMPORTERS, ImportRefused

    settings = _settings()
    try:
        with _session() as session, _progress() as progress:
            task = progress.add_task(f"{kind}: {path.name}"[:28], total=None)

            def tick(done: int, total: int | None) -> None:
                progress.update(task, completed=done, total=total)

            summary = IMPORTERS[kind](
                session=session,
                principal=system_principal(Channel.import_),
                source=path,
                now=_now(),
                progress=tick,
                limits=settings.upload_limits(),
            )
            session.commit()
    except ImportRefused as exc:
        shown = exc.errors[:MAX_PRINTED_ERRORS]
        if as_json:
            _emit(
                {
                    "refused": True,
                    "file": exc.file,
                    "rows": exc.rows,
                    "total": exc.total,
                    "errors": [e.as_dict() for e in shown],
                }
            )
            raise typer.Exit(1) from None
        err.print(
            f"error: {exc.file}: import refused, nothing saved: {exc.total} errors in {exc.rows} rows",
            markup=False,
            highlight=False,
        )
        for e in shown:
            # User text goes out verbatim: a "[...]" in a cell must not be read as rich markup.
            err.print(f"  line {e.line}, {e.column}: {e.reason}", markup=False, highlight=False)
        if exc.total > len(shown):
            err.print(f"  ... and {exc.total - len(shown)} more errors", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except DomainError as exc:
        _fail(exc.message)
        return
    if as_json:
        _emit(summary.as_dict())
        return
    out.print(
        f"imported {kind} from {summary.file}: {summary.rows} rows read, {summary.inserted} inserted, "
        f"{summary.updated} updated, {summary.skipped} skipped",
        highlight=False,
    )


@import_cli.command("enterprises")
def import_enterprises_cmd(path: ImportFile, as_json: JsonOpt = False) -> None:
    """Import enterprises (uscc, name, roles, lon, lat; name_en); an existing credit code is updated."""
    _import_rows("enterprises", path, as_json)


@import_cli.command("declarations")
def import_declarations_cmd(path: ImportFile, as_json: JsonOpt = False) -> None:
    """Import annual declarations (uscc, year, category and the figures in t); existing ones are replaced."""
    _import_rows("declarations", path, as_json)


@import_cli.command("manifests")
def import_manifests_cmd(path: ImportFile, as_json: JsonOpt = False) -> None:
    """Import manifests; the status follows from the columns filled in (see flows/waste/imports.py for the columns)."""
    _import_rows("manifests", path, as_json)


@import_cli.command("licences")
def import_licences_cmd(path: ImportFile, as_json: JsonOpt = False) -> None:
    """Import licences (uscc, activity, category, valid_from, valid_to, capacity_t, number); a stored one is replaced,
    its old version kept."""
    _import_rows("licences", path, as_json)


@import_cli.command("targets")
def import_targets_cmd(path: ImportFile, as_json: JsonOpt = False) -> None:
    """Import targets (name, scope_adcode, year, value, categories; series, source, valid_from, valid_to); a stored
    name is changed, the change kept in the audit log."""
    _import_rows("targets", path, as_json)


@import_cli.command("categories")
def import_categories_cmd(path: ImportFile, as_json: JsonOpt = False) -> None:
    """Import waste categories (code, name_zh, name_en; is_bulk, is_tailings, valid_from, valid_to): SW classes or
    the 2024 catalogue's 9-character codes, each filed under its class."""
    _import_rows("categories", path, as_json)


notices_cli = typer.Typer(help="Notifications.", no_args_is_help=True)
cli.add_typer(notices_cli, name="notices")


@notices_cli.command("flags")
def notices_flags_cmd(as_json: JsonOpt = False) -> None:
    """Tell each enterprise's users of the flags on it not told before (this year and last; for cron)."""
    with _session() as session:
        result = announce_flags(session, _now())
        session.commit()
    if as_json:
        _emit({"read": result.read, "told": result.told})
        return
    out.print(f"{result.read} flags read, {result.told} told to their enterprises now", highlight=False)


cli_reports.register(cli)
cli_battery.register(cli, validate_cli, import_cli)
cli_citus.register(cli)
cli_partitions.register(cli)
cli_summaries.register(cli, _session)


def main() -> None:
    """Entry point of the `circuflow` command."""
    cli()
