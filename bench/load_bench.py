"""Benchmark: the served app under concurrent API clients (reads, writes, health under writes), SQLite and PostgreSQL.

For each backend the Sichuan demo is built once by the command line (`circuflow demo`) into a throwaway database
(a SQLite file in a temporary folder; a `circuflow_loadbench_*` PostgreSQL database with PostGIS, dropped at the
end). Eight enterprise accounts are added over the demo's busiest shippers, and API tokens for them and for the
provincial auditor, with the domain functions `circuflow user add` and `circuflow user token` call (64 command-line
processes would take minutes). The app is then served as a separate process, `circuflow serve --workers N`, in
production mode, and measured from one asyncio process of httpx clients on 127.0.0.1, each with its own token and
connection, for a bounded time per scenario:

- reads: GET /api/v1/manifests?year=2024&limit=25, /api/v1/rates?year=2024, /api/v1/enterprises?limit=25 and
  /healthz in turn; half the clients are the provincial auditor (the whole province), half enterprise users;
- writes: enterprise users create manifests (POST /api/v1/manifests with an Idempotency-Key) and dispatch each one
  created; afterwards the rows are counted in the database by their keys against the 201 answers, manifest numbers
  are checked for duplicates and the audit chain is verified;
- health under writes: one prober asks /healthz ten times a second while the writes run;
- dashboard: GET /dashboard?year=2024 (the page that recomputes the rate, trend, flags and battery audit), by the
  same mix of auditor and enterprise readers, at --dashboard-clients (8 by default, as the issue measured it);
- with --replica URL (PostgreSQL only; the administrative URL of a streaming replica of the server, such as
  scripts/replica.sh starts): the reads and the dashboard again, served with CIRCUFLOW_READ_DATABASE_URL pointing at
  the demo's database on the replica (scenarios "reads (replica)" and "dashboard (replica)"), once it is replayed.

Each scenario prints throughput (answers with the expected status per second), p50/p95/p99 latency of the answered
requests, errors by status and transport errors, and the CPU the server and the clients used; the figures replace the
section "Load (concurrent clients)" of bench/README.md. Asserts nothing.

    .venv/bin/python -m bench.load_bench [--backend sqlite|postgresql|both] [--clients 8,32,64] [--workers 1,2,4]
                                         [--scenarios reads,dashboard,writes] [--dashboard-clients 8] [--replica URL]
                                         [--seconds 20] [--max-requests N] [--launcher circuflow|uvicorn] [--no-readme]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, make_url, select, text
from sqlmodel import Session, col

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.settings import Settings  # noqa: E402
from bench.common import PG_ADMIN  # noqa: E402
from flows.access import accounts
from flows.access import trail as audit  # noqa: E402
from flows.kernel.principal import principal_of, system_principal  # noqa: E402
from models import Enterprise, Manifest, User  # noqa: E402
from models.db import make_engine, writer  # noqa: E402
from models.enums import Channel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CIRCUFLOW = ROOT / ".venv" / "bin" / "circuflow"
README = ROOT / "bench" / "README.md"
SECTION = "## Load (concurrent clients) (`load_bench.py`)"
LOG_DIR = Path(tempfile.gettempdir()) / "circuflow-loadbench-logs"
README_WIDTH = 117  # as the README is wrapped
HOST = "127.0.0.1"  # the only address this benchmark ever contacts
SHIPPERS = 8
AUDITOR = "auditor.sichuan"
READS = (
    ("manifests", "/api/v1/manifests?year=2024&limit=25"),
    ("rates", "/api/v1/rates?year=2024"),
    ("enterprises", "/api/v1/enterprises?limit=25"),
    ("healthz", "/healthz"),
)
DASHBOARD = (("dashboard", "/dashboard?year=2024"),)
MIXES = {"reads": READS, "dashboard": DASHBOARD}
REPLICA = " (replica)"  # the suffix of the scenarios read from the replica
HEALTH_INTERVAL_S = 0.1
# Status each kind of request answers when it succeeds; anything else is an error.
EXPECTED = {"create": 201, "dispatch": 200}
BACKEND_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL 15"}


def log(message: str) -> None:
    """Progress on stdout, flushed so that a long run shows where it is."""
    print(message, flush=True)


# --- the database, the demo and the accounts ---------------------------------------------------------------------


@contextmanager
def scratch_database(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of an empty database for the CLI to build (PostgreSQL gets PostGIS), removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'loadbench.sqlite3'}"
        return  # the file goes with the temporary folder
    name = f"circuflow_loadbench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            # FORCE: a server that did not stop cleanly may still hold connections.
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def server_env(url: str, secret: str, pool: Pool) -> dict[str, str]:
    """The environment of the CLI and the served process: production mode, the database, the pool settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUFLOW_")}
    env.update(
        CIRCUFLOW_DATABASE_URL=url,
        CIRCUFLOW_ENVIRONMENT="production",
        CIRCUFLOW_SECRET_KEY=secret,
        CIRCUFLOW_DB_POOL_SIZE=str(pool.size),
        CIRCUFLOW_DB_MAX_OVERFLOW=str(pool.overflow),
        CIRCUFLOW_DB_POOL_TIMEOUT_S=str(pool.timeout_s),
        CIRCUFLOW_SQLITE_BUSY_TIMEOUT_S=str(pool.busy_timeout_s),
    )
    return env


def build_demo(env: dict[str, str], workdir: Path) -> float:
    """Load the demo with `circuflow demo`; its output (with the demo passwords) stays in the temporary folder."""
    started = time.perf_counter()
    with open(workdir / "demo.log", "wb") as out:
        done = subprocess.run(
            [str(CIRCUFLOW), "demo"], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, timeout=600
        )
    if done.returncode != 0:
        tail = (workdir / "demo.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"circuflow demo failed ({done.returncode}):\n{tail}")
    return time.perf_counter() - started


@dataclass
class Shipper:
    """An enterprise account that writes, and what it ships: its most frequent receiver, category and route."""

    username: str
    receiver_uscc: str
    category_code: str
    route: str


@dataclass
class Accounts:
    """The tokens the clients use, one per client and scenario kind."""

    reads: list[tuple[str, str]]  # (token, who) per read client
    writes: list[tuple[str, Shipper]]  # (token, shipper) per write client
    auditor: str  # a spare token of the provincial auditor, for the audit chain check


def create_accounts(url: str, secret: str, clients: int) -> Accounts:
    """Enterprise accounts over the demo's busiest shippers, and one token per client (as the CLI would make)."""
    # The audit head is signed with the served settings' key, as `circuflow user add` would sign it.
    audit.use_signing_key(Settings(database_url=url, environment="production", secret_key=secret).audit_signing_key())
    engine = writer(make_engine(url))
    now = datetime.now(UTC)
    system = system_principal()
    try:
        with Session(engine) as session:
            busiest = session.execute(
                select(col(Manifest.shipper_id))
                .group_by(col(Manifest.shipper_id))
                .order_by(func.count().desc(), col(Manifest.shipper_id))
                .limit(SHIPPERS)
            ).scalars()
            shippers: list[tuple[User, Shipper]] = []
            for number, shipper_id in enumerate(list(busiest), start=1):
                receiver_id, category, route = session.execute(
                    select(col(Manifest.receiver_id), col(Manifest.category_code), col(Manifest.route))
                    .where(col(Manifest.shipper_id) == shipper_id)
                    .group_by(col(Manifest.receiver_id), col(Manifest.category_code), col(Manifest.route))
                    .order_by(func.count().desc())
                    .limit(1)
                ).one()
                receiver = session.get(Enterprise, receiver_id)
                assert receiver is not None
                username = f"lb.ent{number:02d}"
                user = accounts.create_user(
                    session=session,
                    username=username,
                    password=secrets.token_urlsafe(12),
                    role="enterprise",
                    now=now,
                    enterprise_id=shipper_id,
                    actor=system,
                )
                shippers.append((user, Shipper(username, receiver.uscc, category, str(route))))
            auditor = session.execute(select(User).where(col(User.username) == AUDITOR)).scalars().one()

            def token(user: User) -> str:
                _, raw = accounts.create_token(
                    session=session, principal=principal_of(user, Channel.cli), name="loadbench", now=now, actor=system
                )
                return raw

            reads = []
            for i in range(clients):
                # Half the readers see the whole province (the heaviest scope), half one enterprise.
                user, who = (auditor, AUDITOR) if i % 2 == 0 else (shippers[i % SHIPPERS][0], "enterprise")
                reads.append((token(user), who))
            writes = [(token(shippers[i % SHIPPERS][0]), shippers[i % SHIPPERS][1]) for i in range(clients)]
            spare = token(auditor)
            session.commit()
    finally:
        engine.dispose()
    return Accounts(reads, writes, spare)


# --- the served process ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """The serving settings the benchmark passes on (per worker process)."""

    size: int
    overflow: int
    timeout_s: float
    busy_timeout_s: float


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of a process group: the server and its workers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


@dataclass
class Server:
    """A served process: its address, its process group and its stderr."""

    base: str
    pgid: int
    stderr: Path
    workers: int

    def started(self) -> int:
        """Worker processes that finished their start-up so far."""
        return self.stderr.read_text(errors="replace").count("Application startup complete.")

    def replaced(self) -> int:
        """Workers uvicorn's supervisor killed and replaced (a worker that does not answer its ping within 5 s)."""
        return len(re.findall(r"Child process \[\d+\] died", self.stderr.read_text(errors="replace")))


def serve_command(launcher: str, workers: int, port: int) -> list[str]:
    """`circuflow serve`, or (for comparison) uvicorn's own command line on the factory `circuflow serve` hands it."""
    if launcher == "circuflow":
        return [str(CIRCUFLOW), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    factory = "app.main:app_from_environment"
    return [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", HOST, "--port", str(port)] + (
        ["--workers", str(workers)] if workers > 1 else []
    )


@contextmanager
def served(env: dict[str, str], workers: int, workdir: Path, tag: str, launcher: str) -> Iterator[Server]:
    """The app served on a free port until the block ends (stopped even on error), once its workers are up."""
    port = free_port()
    stderr_path = workdir / f"{tag}.stderr.log"
    with open(workdir / f"{tag}.stdout.log", "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            serve_command(launcher, workers, port),
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=err,
            # Its own process group: the workers are stopped with it, and nothing else is touched.
            start_new_session=True,
        )
    server = Server(f"http://{HOST}:{port}", process.pid, stderr_path, workers)
    began = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}: {stderr_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{server.base}/healthz", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - began > 120:
                raise RuntimeError(f"the server did not answer /healthz within 120 s: {stderr_path}")
            time.sleep(0.5)
        # /healthz answers as soon as one worker is up; the figures are for N workers only once all N are.
        while server.started() < workers and time.monotonic() - began < 90:
            time.sleep(0.5)
        log(
            f"  served by {launcher} with {server.started()} of {workers} worker(s) up after "
            f"{time.monotonic() - began:.0f} s ({server.replaced()} replaced meanwhile) at {server.base}"
        )
        yield server
    finally:
        _stop(process)
        LOG_DIR.mkdir(exist_ok=True)
        shutil.copy(stderr_path, LOG_DIR / stderr_path.name)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # uvicorn finishes what it holds and stops its workers
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
    # A worker that outlived its supervisor would keep the database open.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def server_errors(stderr: Path) -> Counter[str]:
    """The failures the server logged (the app's one line per failed request, failed health checks, uvicorn errors)."""
    found: Counter[str] = Counter()
    request_failure = re.compile(r"^([A-Za-z_][\w.]*) on (GET|POST|PUT|PATCH|DELETE) (\S+): (.*)$")
    for line in stderr.read_text(errors="replace").splitlines():
        failed = request_failure.match(line)
        if failed:
            # The first words of the message name the cause; SQLAlchemy's link to its docs does not.
            cause = failed.group(4).split(" (Background on this error")[0].split(", connection timed out")[0]
            found[f"{failed.group(1)} on {failed.group(2)} {failed.group(3)}: {cause[:90]}"] += 1
        elif line.startswith("health check failed"):
            found["health check failed (/healthz answered 503)"] += 1
        elif line.startswith(("ERROR", "CRITICAL", "WARNING")):
            found[re.sub(r"\b(0x)?[0-9a-f]{8,}\b", "...", line)[:120]] += 1
    return found


# --- the clients -------------------------------------------------------------------------------------------------


@dataclass
class Budget:
    """The most requests a scenario may start, shared by its clients."""

    left: int

    def take(self) -> bool:
        """Whether one more request may start."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True


@dataclass
class Record:
    """What the clients of a scenario saw: (kind, status or 0, milliseconds, transport error) per request."""

    calls: list[tuple[str, int, float, str]] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)  # idempotency key -> status of its create (0: no answer)
    dispatched: dict[str, int] = field(default_factory=dict)  # idempotency key -> status of its dispatch


async def _call(
    client: httpx.AsyncClient, kind: str, method: str, url: str, record: Record, **kwargs: Any
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:  # transport errors and timeouts: the request has no answer
        record.calls.append((kind, 0, (time.perf_counter() - started) * 1000, type(exc).__name__))
        # Reconnecting at once to a server that refuses connections would only spin.
        await asyncio.sleep(0.1)
        return None
    record.calls.append((kind, response.status_code, (time.perf_counter() - started) * 1000, ""))
    return response


def _client(base: str, token: str | None, timeout_s: float) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # One connection per client, kept alive, as one API client system would hold.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout_s, limits=limits, trust_env=False)


async def reader(
    base: str,
    token: str,
    first: int,
    stop_at: float,
    budget: Budget,
    record: Record,
    timeout_s: float,
    mix: Sequence[tuple[str, str]] = READS,
) -> None:
    """GET the read mix in turn, starting at a different request per client, until the time or the budget ends."""
    async with _client(base, token, timeout_s) as client:
        turn = first
        while time.monotonic() < stop_at and budget.take():
            kind, path = mix[turn % len(mix)]
            turn += 1
            await _call(client, kind, "GET", path, record)


async def writer_client(
    base: str,
    token: str,
    shipper: Shipper,
    key_prefix: str,
    stop_at: float,
    budget: Budget,
    record: Record,
    timeout_s: float,
) -> None:
    """Create manifests with an idempotency key and dispatch each one created."""
    rng = random.Random(key_prefix)
    async with _client(base, token, timeout_s) as client:
        n = 0
        while time.monotonic() < stop_at and budget.take():
            key = f"{key_prefix}-{n:05d}"
            n += 1
            body = {
                "receiver_uscc": shipper.receiver_uscc,
                "category_code": shipper.category_code,
                "route": shipper.route,
                "weight_dispatched_t": round(rng.uniform(5, 40), 3),
                "reference": key,
            }
            created = await _call(
                client, "create", "POST", "/api/v1/manifests", record, json=body, headers={"Idempotency-Key": key}
            )
            record.created[key] = created.status_code if created is not None else 0
            if created is None or created.status_code != 201:
                continue
            # The dispatch follows its create even past the deadline: a pair is one unit of work.
            dispatched = await _call(
                client, "dispatch", "POST", f"/api/v1/manifests/{created.json()['id']}/dispatch", record, json={}
            )
            record.dispatched[key] = dispatched.status_code if dispatched is not None else 0


async def prober(base: str, stop_at: float, record: Record, timeout_s: float) -> None:
    """GET /healthz every 100 ms (one at a time) until the time ends."""
    async with _client(base, None, timeout_s) as client:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            await _call(client, "healthz", "GET", "/healthz", record)
            await asyncio.sleep(max(0.0, HEALTH_INTERVAL_S - (time.monotonic() - started)))


async def _gather(tasks: Sequence[Awaitable[None]]) -> None:
    await asyncio.gather(*tasks)


def warm_up(base: str, tokens: list[str], timeout_s: float) -> None:
    """One request per token before measuring: the pools fill and each token's last use is written (not measured)."""

    async def one(token: str) -> None:
        async with _client(base, token, timeout_s) as client:
            await client.get("/api/v1/enterprises?limit=1")

    async def every() -> None:
        for start in range(0, len(tokens), 16):
            await asyncio.gather(*(one(t) for t in tokens[start : start + 16]))

    asyncio.run(every())


# --- scenarios and figures ---------------------------------------------------------------------------------------


@dataclass
class Result:
    """One scenario at one client count and worker count."""

    backend: str
    workers: int
    clients: int
    scenario: str  # reads, dashboard, writes, healthz under writes; "(replica)" after those read from a replica
    seconds: float
    record: Record
    server_cpu: float = 0.0  # share of one core over the scenario
    client_cpu: float = 0.0
    check: str = ""  # writes: the consistency check

    def calls(self, kind: str | None = None) -> list[tuple[str, int, float, str]]:
        """The requests of one kind, or all."""
        return [c for c in self.record.calls if kind is None or c[0] == kind]

    def ok(self) -> int:
        """Answers with the expected status."""
        return sum(1 for kind, status, _, _ in self.record.calls if status == EXPECTED.get(kind, 200))

    def errors(self) -> Counter[str]:
        """Unexpected statuses and transport errors, counted."""
        found: Counter[str] = Counter()
        for kind, status, _, error in self.record.calls:
            if error:
                found[error] += 1
            elif status != EXPECTED.get(kind, 200):
                found[str(status)] += 1
        return found


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of the values; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latencies(calls: list[tuple[str, int, float, str]]) -> list[float]:
    """Milliseconds of the answered requests (a timed-out request is an error, not a latency)."""
    return [ms for _, status, ms, _ in calls if status]


def run_load(pgid: int, tasks: Sequence[Awaitable[None]]) -> tuple[float, float, float]:
    """Run the clients to their end: wall seconds, and the server's and the clients' CPU as a share of one core."""
    server_before, client_before = group_cpu_s(pgid), time.process_time()
    started = time.perf_counter()
    asyncio.run(_gather(tasks))
    seconds = time.perf_counter() - started
    return seconds, (group_cpu_s(pgid) - server_before) / seconds, (time.process_time() - client_before) / seconds


def check_writes(url: str, key_prefix: str, record: Record, settle_s: float) -> str:
    """Rows in the database with the scenario's keys against the 201 answers; numbers issued twice; dispatches."""
    engine = make_engine(url)
    try:
        unanswered = sum(1 for status in record.created.values() if status == 0)
        rows: list[Any] = []
        # A request the client gave up on may still commit: wait for the count to settle before comparing.
        settle_until, last, stable_since = time.monotonic() + (settle_s if unanswered else 0), -1, time.monotonic()
        while True:
            with Session(engine) as session:
                rows = list(
                    session.execute(
                        select(col(Manifest.idempotency_key), col(Manifest.number), col(Manifest.status)).where(
                            col(Manifest.idempotency_key).startswith(key_prefix, autoescape=True)
                        )
                    )
                )
                twice = session.execute(
                    select(func.count()).select_from(
                        select(col(Manifest.number)).group_by(col(Manifest.number)).having(func.count() > 1).subquery()
                    )
                ).scalar_one()
            if len(rows) != last:
                last, stable_since = len(rows), time.monotonic()
            if time.monotonic() >= settle_until or time.monotonic() - stable_since >= 10:
                break
            time.sleep(2)
    finally:
        engine.dispose()
    answered_201 = {key for key, status in record.created.items() if status == 201}
    refused = {key for key, status in record.created.items() if status not in (0, 201)}
    in_db = {row[0] for row in rows}
    numbers = [row[1] for row in rows]
    dispatched_ok = sum(1 for status in record.dispatched.values() if status == 200)
    dispatched_unanswered = sum(1 for status in record.dispatched.values() if status == 0)
    dispatched_rows = sum(1 for row in rows if str(row[2]) == "dispatched")
    issued_twice = len(numbers) - len(set(numbers)) + twice
    parts = [
        f"rows {len(in_db)} / 201 answers {len(answered_201)}",
        f"dispatched rows {dispatched_rows} / 200 answers {dispatched_ok}",
        f"numbers issued twice {issued_twice}",
    ]
    # An error answer promises that nothing was saved; an unanswered request may or may not have been.
    saved_anyway = in_db & refused
    late = in_db - answered_201 - refused
    lost = answered_201 - in_db
    if late:
        parts.append(f"{len(late)} rows of creates the client gave up on (committed after its timeout)")
    if saved_anyway:
        parts.append(f"{len(saved_anyway)} rows of creates answered with an error")
    if lost:
        parts.append(f"{len(lost)} answered 201 and not in the database")
    broken = (
        saved_anyway
        or lost
        or issued_twice
        or not dispatched_ok <= dispatched_rows <= dispatched_ok + dispatched_unanswered
    )
    return ("INCONSISTENT: " if broken else "consistent: ") + ", ".join(parts)


def verify_audit(base: str, token: str) -> str:
    """The audit chain re-computed by the server after the writes."""
    try:
        answer = httpx.get(
            f"{base}/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}, timeout=120, trust_env=False
        )
    except httpx.HTTPError as exc:
        return f"audit verify failed: {type(exc).__name__}"
    if answer.status_code != 200:
        return f"audit verify answered {answer.status_code}"
    body = answer.json()
    return f"audit chain ok over {body['checked']:,} entries" if body["ok"] else f"AUDIT CHAIN BROKEN: {body}"


@dataclass
class Options:
    """What to run, from the command line."""

    clients: list[int]
    workers: list[int]
    seconds: float
    max_requests: int
    timeout_s: float
    pool: Pool
    launcher: str
    scenarios: list[str]
    dashboard_clients: list[int]
    replica: str  # the administrative URL of a streaming replica of the PostgreSQL server, or ""


@dataclass
class ServerLog:
    """What the server's stderr said by the end of the scenarios."""

    errors: Counter[str]
    started: int  # workers that completed their start-up
    replaced: int  # workers the supervisor killed and replaced


@dataclass
class BackendRun:
    """Everything one backend's run produced, for the table and the README."""

    backend: str
    launcher: str
    results: list[Result]
    demo_s: float
    audit: list[str]
    server_log: dict[int, ServerLog]
    load_before: str
    replica_health: dict[int, str] = field(default_factory=dict)  # per worker count: /healthz's replica part


def run_backend(backend: str, options: Options) -> BackendRun:
    """Build the demo, then serve it at each worker count and run the scenarios at each client count."""
    run = BackendRun(backend, options.launcher, [], 0.0, [], {}, ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    run_id = uuid.uuid4().hex[:6]
    secret = secrets.token_urlsafe(24)  # 32 characters
    with tempfile.TemporaryDirectory(prefix="circuflow-loadbench-") as tmp, scratch_database(backend, Path(tmp)) as url:
        workdir = Path(tmp)
        env = server_env(url, secret, options.pool)
        log(f"  building the demo with `circuflow demo` ({backend}) ...")
        run.demo_s = build_demo(env, workdir)
        log(f"  demo built in {run.demo_s:.0f} s")
        accounts_ = create_accounts(url, secret, max(options.clients + options.dashboard_clients))
        tokens = [t for t, _ in accounts_.reads + accounts_.writes] + [accounts_.auditor]
        replica_env = replica_environment(backend, env, url, options)
        for workers in options.workers:
            with served(env, workers, workdir, f"{backend}-{options.launcher}-w{workers}", options.launcher) as server:
                warm_up(server.base, tokens, options.timeout_s)
                for result in read_scenarios(backend, workers, server, accounts_, options, ""):
                    run.results.append(result)
                    log(_line(result))
                for clients in options.clients if "writes" in options.scenarios else []:
                    key_prefix = f"lb-{run_id}-w{workers}-c{clients}"
                    write, health = write_scenario(backend, workers, clients, server, accounts_, options, key_prefix)
                    write.check = check_writes(url, key_prefix, write.record, options.timeout_s)
                    run.results += [write, health]
                    log(_line(write))
                    log(_line(health))
                    log(f"    {write.check}")
                run.audit.append(f"{workers} worker(s): {verify_audit(server.base, accounts_.auditor)}")
                log(f"    {run.audit[-1]}")
                # Read before stopping: the shutdown itself logs workers ending.
                run.server_log[workers] = ServerLog(server_errors(server.stderr), server.started(), server.replaced())
            if replica_env is None:
                continue
            tag = f"{backend}-{options.launcher}-w{workers}-replica"
            with served(replica_env, workers, workdir, tag, options.launcher) as server:
                warm_up(server.base, tokens, options.timeout_s)
                for result in read_scenarios(backend, workers, server, accounts_, options, REPLICA):
                    run.results.append(result)
                    log(_line(result))
                run.replica_health[workers] = replica_health(server.base)
                log(f"    /healthz of the server reading the replica: {run.replica_health[workers]}")
    return run


def replica_environment(backend: str, env: dict[str, str], url: str, options: Options) -> dict[str, str] | None:
    """The served environment with CIRCUFLOW_READ_DATABASE_URL on the replica, once it has replayed the demo."""
    if not options.replica or backend != "postgresql":
        return None
    primary = create_engine(url, isolation_level="AUTOCOMMIT")
    standby = create_engine(options.replica, isolation_level="AUTOCOMMIT")
    try:
        with primary.connect() as conn:
            lsn = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
        deadline = time.monotonic() + 300
        with standby.connect() as conn:
            caught_up = text("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), CAST(:lsn AS pg_lsn)) >= 0")
            while not conn.execute(caught_up, {"lsn": lsn}).scalar_one():
                if time.monotonic() > deadline:
                    raise RuntimeError("the replica did not replay the demo within 300 s")
                time.sleep(0.2)
    finally:
        primary.dispose()
        standby.dispose()
    database = make_url(url).database
    read_url = make_url(options.replica).set(database=database).render_as_string(hide_password=False)
    return {**env, "CIRCUFLOW_READ_DATABASE_URL": read_url}


def replica_health(base: str) -> str:
    """What the server's /healthz says of its replica."""
    try:
        return str(httpx.get(f"{base}/healthz", timeout=10, trust_env=False).json().get("replica"))
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})"


def read_scenarios(
    backend: str, workers: int, server: Server, accounts_: Accounts, options: Options, suffix: str
) -> Iterator[Result]:
    """The reads at each client count and the dashboard at each of its client counts, as the options ask."""
    for clients in options.clients if "reads" in options.scenarios else []:
        yield read_scenario(backend, workers, clients, server, accounts_, options, "reads" + suffix)
    for clients in options.dashboard_clients if "dashboard" in options.scenarios else []:
        yield read_scenario(backend, workers, clients, server, accounts_, options, "dashboard" + suffix)


def read_scenario(
    backend: str, workers: int, clients: int, server: Server, accounts_: Accounts, options: Options, scenario: str
) -> Result:
    """`clients` readers of the scenario's mix for the scenario's time."""
    mix = MIXES[scenario.removesuffix(REPLICA)]
    record, budget = Record(), Budget(options.max_requests)
    stop_at = time.monotonic() + options.seconds
    tasks = [
        reader(server.base, accounts_.reads[i][0], i, stop_at, budget, record, options.timeout_s, mix)
        for i in range(clients)
    ]
    seconds, server_cpu, client_cpu = run_load(server.pgid, tasks)
    return Result(backend, workers, clients, scenario, seconds, record, server_cpu, client_cpu)


def write_scenario(
    backend: str,
    workers: int,
    clients: int,
    server: Server,
    accounts_: Accounts,
    options: Options,
    key_prefix: str,
) -> tuple[Result, Result]:
    """`clients` writers for the scenario's time, with the health prober beside them."""
    record, health, budget = Record(), Record(), Budget(options.max_requests)
    stop_at = time.monotonic() + options.seconds
    tasks: list[Awaitable[None]] = [
        writer_client(server.base, token, shipper, f"{key_prefix}-{i:02d}", stop_at, budget, record, options.timeout_s)
        for i, (token, shipper) in enumerate(accounts_.writes[:clients])
    ]
    tasks.append(prober(server.base, stop_at, health, options.timeout_s))
    seconds, server_cpu, client_cpu = run_load(server.pgid, tasks)
    return (
        Result(backend, workers, clients, "writes", seconds, record, server_cpu, client_cpu),
        Result(backend, workers, clients, "healthz under writes", seconds, health),
    )


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _errors(counts: Counter[str]) -> str:
    return ", ".join(f"{n:,} x {what}" for what, n in sorted(counts.items())) or "none"


def _line(r: Result) -> str:
    ms = latencies(r.calls())
    return (
        f"    {r.scenario:<21} workers {r.workers} clients {r.clients:>3}: {len(r.record.calls):>6,} requests "
        f"in {r.seconds:5.1f} s, {r.ok() / r.seconds:7.1f} ok/s, p50 {_ms(percentile(ms, 50))} "
        f"p95 {_ms(percentile(ms, 95))} p99 {_ms(percentile(ms, 99))} ms, errors: {_errors(r.errors())}"
    )


def table(run: BackendRun) -> list[str]:
    """The markdown figures of one backend."""
    lines = [
        "| scenario | workers | clients | requests | ok/s | p50 | p95 | p99 | max | errors | server CPU | client CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in run.results:
        ms = latencies(r.calls())
        cpu = (f"{r.server_cpu:.0%}", f"{r.client_cpu:.0%}") if r.scenario != "healthz under writes" else ("", "")
        lines.append(
            f"| {r.scenario} | {r.workers} | {r.clients} | {len(r.record.calls):,} | {r.ok() / r.seconds:,.1f} "
            f"| {_ms(percentile(ms, 50))} ms | {_ms(percentile(ms, 95))} ms | {_ms(percentile(ms, 99))} ms "
            f"| {_ms(max(ms, default=math.nan))} ms | {_errors(r.errors())} | {cpu[0]} | {cpu[1]} |"
        )
    read_kinds = [kind for kind, _ in READS]
    for scenario, kinds in (("reads", read_kinds), ("reads" + REPLICA, read_kinds), ("writes", list(EXPECTED))):
        columns = [r for r in run.results if r.scenario == scenario]
        if not columns:
            continue
        lines += ["", f"{scenario.capitalize()} by request, p50 / p95 ms:", ""]
        lines.append("| request | " + " | ".join(f"{r.workers} worker(s), {r.clients} clients" for r in columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        for kind in kinds:
            cells = [
                f"{_ms(percentile(ms, 50))} / {_ms(percentile(ms, 95))}"
                for ms in (latencies(r.calls(kind)) for r in columns)
            ]
            lines.append(f"| `{kind}` | " + " | ".join(cells) + " |")
    return lines


def reading(run: BackendRun, options: Options) -> list[str]:
    """What the figures say, in sentences built from them."""
    said: list[str] = []
    for scenario in ("reads", "reads" + REPLICA, "dashboard", "dashboard" + REPLICA):
        found = {(r.workers, r.clients): r for r in run.results if r.scenario == scenario}
        for clients in sorted({c for _, c in found}):
            rates = [
                (w, found[(w, clients)].ok() / found[(w, clients)].seconds)
                for w in options.workers
                if (w, clients) in found
            ]
            if len(rates) > 1 and rates[0][1] > 0:
                said.append(
                    f"{scenario.capitalize()} at {clients} clients: "
                    + ", ".join(f"{rate:,.1f} ok/s with {w} worker(s)" for w, rate in rates)
                    + f" (x{rates[-1][1] / rates[0][1]:.2f} from {rates[0][0]} to {rates[-1][0]})."
                )
    for workers, replica in run.replica_health.items():
        said.append(f"The server reading the replica, {workers} worker(s), said in /healthz: {replica}.")
    failing = [r for r in run.results if r.errors()]
    if failing:
        for r in failing:
            said.append(f"Errors in {r.scenario}, {r.workers} worker(s), {r.clients} clients: {_errors(r.errors())}.")
    else:
        said.append("No error answer and no transport error in any scenario.")
    for r in run.results:
        if r.scenario == "writes":
            said.append(f"Writes, {r.workers} worker(s), {r.clients} clients: {r.check}.")
    health = [r for r in run.results if r.scenario == "healthz under writes"]
    if health:
        worst = max(health, key=lambda r: percentile(latencies(r.calls()), 99))
        said.append(
            f"/healthz under writes: p99 at most {_ms(percentile(latencies(worst.calls()), 99))} ms "
            f"({worst.workers} worker(s), {worst.clients} writers)."
        )
    said += [f"{a}." for a in run.audit]
    for workers, server in run.server_log.items():
        if workers > 1:
            said.append(
                f"{workers} workers asked: {server.started} completed their start-up; uvicorn's supervisor killed and "
                f"replaced {server.replaced} worker process(es) that did not answer its ping within 5 s."
            )
        said.append(
            f"Server stderr with {workers} worker(s): "
            + (
                _errors(Counter(dict(server.errors.most_common(5))))
                if server.errors
                else "no error, warning or traceback"
            )
            + "."
        )
    logged = " ".join(what for server in run.server_log.values() for what in server.errors)
    said += [meaning for marker, meaning in CAUSES.items() if marker in logged]
    return [textwrap.fill(s, README_WIDTH, initial_indent="- ", subsequent_indent="  ") for s in said]


# What the failures the server logs mean, said once under the figures when they appear.
CAUSES = {
    "QueuePool limit": "QueuePool limit: a request waited longer than the pool timeout for one of its worker's pooled "
    "connections (503 Busy).",
    "database is locked": "database is locked: a write transaction waited longer than SQLite's busy timeout for the "
    "write lock (503 Busy).",
    "health check failed": "health check failed: the probe's `SELECT 1` did not finish within /healthz's 1 s, so the "
    "check answered 503 (database unreachable) while the worker was busy.",
}


def block_title(backend: str, launcher: str) -> str:
    """The README heading of one backend's figures (and of the comparison served by uvicorn's own command)."""
    title = f"### {BACKEND_TITLES[backend]}"
    return title if launcher == "circuflow" else f"{title}, served by `python -m uvicorn`"


def section_block(run: BackendRun, options: Options) -> list[str]:
    """The README block of one backend: conditions, figures, reading."""
    pool = options.pool
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    busy = f", SQLite busy timeout {pool.busy_timeout_s:g} s" if run.backend == "sqlite" else ""
    served_by = (
        "`circuflow serve --workers N`."
        if run.launcher == "circuflow"
        else "`python -m uvicorn app.main:app_from_environment --factory --workers N` (the factory `circuflow serve` "
        "hands uvicorn, without the command line's imports in each worker), for comparison."
    )
    conditions = (
        f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, shared with other people's "
        f"work, such as test runs (load average {run.load_before} over the 1, 5 and 15 minutes before the run). "
        f"Demo built in {run.demo_s:.0f} s. "
        f"Per worker: pool {pool.size} + {pool.overflow} overflow, pool timeout {pool.timeout_s:g} s{busy}; "
        f"{options.seconds:g} s per scenario, client timeout {options.timeout_s:g} s. Served by {served_by}"
    )
    return [
        block_title(run.backend, run.launcher),
        "",
        textwrap.fill(conditions, README_WIDTH),
        "",
        *table(run),
        "",
        *reading(run, options),
        "",
    ]


SECTION_INTRO = """\
The demo built by `circuflow demo` in a throwaway database, served by `circuflow serve --workers N` as its own
process (production mode, uvicorn's access log on), and driven from one asyncio process of httpx clients on the
same machine, each with its own API token and its own kept-alive connection. **reads**: the clients take turns
through `GET /api/v1/manifests?year=2024&limit=25`, `/api/v1/rates?year=2024`, `/api/v1/enterprises?limit=25` and
`/healthz`; half of them are the provincial auditor (the whole province), half enterprise users. **writes**: eight
enterprise accounts (the demo's busiest shippers, several tokens each) create manifests with an Idempotency-Key
(`POST /api/v1/manifests`, expected 201) and dispatch each one created (`POST .../dispatch`, expected 200);
afterwards the rows carrying the scenario's keys are counted in the database against the 201 answers, numbers
issued twice are looked for and the audit chain is verified. **healthz under writes**: one prober asks `/healthz`
every 100 ms while the writes run. **dashboard**: the same mix of readers GET `/dashboard?year=2024`, the page that
recomputes the rate, the trend, the flags and the battery audit (the issue measured 5.6 requests/s at 8 clients).
**(replica)**: the reads and the dashboard again on PostgreSQL, served with `CIRCUFLOW_READ_DATABASE_URL` on a
streaming replica of the same server (`scripts/replica.sh`, another cluster on the same two cores), once it has
replayed the demo. ok/s counts answers with the expected status; latencies are those of answered
requests (a request unanswered within the client timeout is counted under errors); CPU is the share of one core
used by the app's processes (not PostgreSQL's) and by the client process. The machine has two cores, shared by the
app, the database, the clients and whatever else runs on it: a second worker can only add throughput when the app's
CPU can rise above one core, so compare the server CPU column before reading a worker count as faster or slower.

```bash
.venv/bin/python -m bench.load_bench                       # both backends, 8, 32 and 64 clients, 1, 2 and 4 workers
.venv/bin/python -m bench.load_bench --backend postgresql --replica "$(scripts/replica.sh)"   # and on the replica
.venv/bin/python -m bench.load_bench --backend sqlite --clients 8 --workers 1 --seconds 5 --no-readme
```
"""


def update_readme(runs: list[BackendRun], options: Options) -> None:
    """Replace the section (keeping the blocks of backends not run this time), or append it."""
    current = README.read_text()
    start = current.find(SECTION)
    blocks: dict[str, str] = {}
    before, after = current.rstrip("\n") + "\n\n", ""
    if start >= 0:
        end = current.find("\n## ", start + len(SECTION))
        end = len(current) if end < 0 else end + 1
        old, before, after = current[start:end], current[:start], current[end:]
        for found in re.finditer(r"^(### [^\n]*)\n.*?(?=^### |\Z)", old, flags=re.M | re.S):
            blocks[found.group(1)] = found.group(0).rstrip("\n") + "\n"
    for run in runs:
        blocks[block_title(run.backend, run.launcher)] = "\n".join(section_block(run, options))
    known = [block_title(b, launcher) for b in BACKEND_TITLES for launcher in ("circuflow", "uvicorn")]
    ordered = [blocks[t] for t in known if t in blocks] + [b for t, b in blocks.items() if t not in known]
    section = "\n".join([SECTION, "", SECTION_INTRO, *ordered]).rstrip("\n") + "\n"
    README.write_text(before + section + ("\n" + after if after else ""))


def main() -> None:
    """Measure, print, and record the figures in bench/README.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--clients", default="8,32,64", help="concurrent clients, comma-separated")
    parser.add_argument("--workers", default="1,2,4", help="server worker processes, comma-separated")
    parser.add_argument("--dashboard-clients", default="8", help="concurrent /dashboard clients, comma-separated")
    parser.add_argument(
        "--replica",
        default="",
        help="administrative URL of a streaming replica of the PostgreSQL server (scripts/replica.sh prints one): "
        "the reads and the dashboard are measured again with CIRCUFLOW_READ_DATABASE_URL on it",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each scenario")
    parser.add_argument("--max-requests", type=int, default=50_000, help="most requests a scenario starts")
    # Past the server's own limits (pool timeout 30 s, SQLite busy timeout 60 s), so that its answer is what is seen.
    parser.add_argument("--timeout", type=float, default=70.0, help="client timeout of one request (s)")
    defaults = Settings.model_fields
    parser.add_argument("--pool-size", type=int, default=defaults["db_pool_size"].default)
    parser.add_argument("--max-overflow", type=int, default=defaults["db_max_overflow"].default)
    parser.add_argument("--pool-timeout", type=float, default=defaults["db_pool_timeout_s"].default)
    parser.add_argument("--busy-timeout", type=float, default=defaults["sqlite_busy_timeout_s"].default)
    parser.add_argument(
        "--launcher",
        choices=("circuflow", "uvicorn"),
        default="circuflow",
        help="serve with `circuflow serve` (default) or, to compare, uvicorn's own command on the same app factory",
    )
    parser.add_argument(
        "--scenarios", default="reads,dashboard,writes", help="any of reads, dashboard, writes (with healthz)"
    )
    parser.add_argument("--no-readme", action="store_true", help="print only; leave bench/README.md alone")
    args = parser.parse_args()
    options = Options(
        clients=[int(c) for c in args.clients.split(",")],
        workers=[int(w) for w in args.workers.split(",")],
        seconds=args.seconds,
        max_requests=args.max_requests,
        timeout_s=args.timeout,
        pool=Pool(args.pool_size, args.max_overflow, args.pool_timeout, args.busy_timeout),
        launcher=args.launcher,
        scenarios=args.scenarios.split(","),
        dashboard_clients=[int(c) for c in args.dashboard_clients.split(",")],
        replica=args.replica,
    )
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    runs = []
    started = time.perf_counter()
    for backend in backends:
        log(f"\n## {backend}")
        runs.append(run_backend(backend, options))
        print()
        print("\n".join(table(runs[-1])))
        print()
        print("\n".join(reading(runs[-1], options)))
    log(f"\nwhole run {time.perf_counter() - started:.0f} s; server logs in {LOG_DIR}")
    if not args.no_readme:
        update_readme(runs, options)
        log(f"figures written to {README}")


if __name__ == "__main__":
    main()
