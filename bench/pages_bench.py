"""Benchmark: every page of the web app on the demo data, as the users who would open it.

The deterministic Sichuan demo (seed 2024) is loaded into a throwaway database with its accounts. The page routes
are read from the app's route table, so a page added later is measured without touching this script; the path
parameters are filled from the demo (its busiest enterprise, park, a received batch, the battery with the longest
chain). Each page is requested through the ASGI app, as a bureau auditor of the province and as an enterprise user
(where the page lets them in): the first request, then the median and the slowest of the next ones. GeoJSON layers
are measured the same way, with their size. Prints the figures beside the targets (300 ms a page, 2 MB a year of
map layers); asserts nothing.

    .venv/bin/python bench/pages_bench.py [--backends sqlite,postgresql] [--repeat N] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.common import database  # noqa: E402
from flows.access import accounts  # noqa: E402
from flows.demo.accounts import create_demo_accounts  # noqa: E402
from flows.demo.load import load_demo  # noqa: E402
from flows.kernel.principal import principal_of  # noqa: E402
from models import Battery, BatteryEvent, Enterprise, Manifest, Park, User  # noqa: E402
from models.db import make_engine  # noqa: E402
from models.enums import Channel, ManifestStatus  # noqa: E402

USERS = ("auditor.sichuan", "ent.generator")
PAGE_TARGET_MS = 300.0
LAYER_TARGET_BYTES = 2_000_000
# Views of the same routes that cost differently: the drill-down's lower levels, a code half typed, the map between
# enterprises of one prefecture.
VARIANTS = (
    "/audit?region=510400&year={year}",
    "/audit?park={park_id}&year={year}",
    "/audit?enterprise={enterprise_id}&year={year}",
    "/batteries/parse?code={half_code}",
    "/map?year={year}&region=510400&level=enterprise",
)
# Not pages: redirects, the health check, the API documentation, the header bell's count (a fragment of every page),
# downloads (a template file, the printed manifest, the inspection sheet), and the verification page, which opens
# only from a signed code and has its own browser test (tests/test_browser_verify.py).
SKIP = {
    "/lang/{code}",
    "/healthz",
    "/docs",
    "/logout",
    "/inbox/bell",
    "/batteries/import/template/{name}",
    "/batches/{batch_id}/manifest.pdf",
    "/verify/{token}",
    "/whitelist/template.{suffix}",
    "/enterprises/{enterprise_id}/inspection.pdf",
    # Records the demo does not hold (a flag's work, a bureau's ask, an uploaded file): their journeys have their
    # own browser tests (tests/test_browser_flagwork.py, test_browser_asks.py, test_browser_revisions.py).
    "/flags/{key}",
    "/asks/{ask_id}",
    "/attachments/{attachment_id}",
}


@dataclass
class Row:
    path: str
    user: str
    status: int
    size: int
    first_ms: float
    median_ms: float
    worst_ms: float


def _load(engine: Engine) -> None:
    started = time.perf_counter()
    with Session(engine) as session:
        load_demo(session=session)
        create_demo_accounts(session=session, now=datetime.now(UTC))
        session.commit()
    print(f"  demo loaded in {time.perf_counter() - started:.0f} s")


def _tokens(engine: Engine) -> dict[str, str]:
    tokens = {}
    with Session(engine) as session:
        for name in USERS:
            user = session.execute(select(User).where(col(User.username) == name)).scalars().one()
            _token, raw = accounts.create_token(
                session=session, principal=principal_of(user, Channel.cli), name="bench", now=datetime.now(UTC)
            )
            tokens[name] = raw
        session.commit()
    return tokens


def demo_parameters(engine: Engine) -> dict[str, str]:
    """Values for the path parameters of the page routes, taken from the demo."""
    with Session(engine) as session:
        generator = session.execute(select(User).where(col(User.username) == "ent.generator")).scalars().one()
        enterprise_id = generator.scope_enterprise_id
        park_id = session.get(Enterprise, enterprise_id).park_id if enterprise_id else None  # type: ignore[union-attr]
        if park_id is None:
            park_id = session.execute(select(func.min(Park.id))).scalars().one()
        batch_id = (
            session.execute(
                select(func.max(Manifest.id)).where(
                    col(Manifest.shipper_id) == enterprise_id, col(Manifest.status) == ManifestStatus.received
                )
            )
            .scalars()
            .one()
        )
        longest = (
            session.execute(
                select(col(BatteryEvent.battery_id))
                .group_by(col(BatteryEvent.battery_id))
                .order_by(func.count().desc())
                .limit(1)
            )
            .scalars()
            .one()
        )
        code = session.get(Battery, longest).code  # type: ignore[union-attr]
        year = session.execute(select(func.max(Manifest.year))).scalars().one()
    return {
        "enterprise_id": str(enterprise_id),
        "park_id": str(park_id),
        "batch_id": str(batch_id),
        "code": code,
        "half_code": code[:12],
        "adcode": "510400",
        "year": str(year),
        "kind": "manifests",  # the import templates' kind: one the generator may import
    }


# Pages that answer only with a query naming what they are about: the query they are toured with.
QUERIES = {
    "/asks/new": "?table=transfer_batch&row_id={batch_id}",
    "/audit/locks/checklist": "?region_adcode={adcode}&year={year}",
}


def page_paths(app: Any) -> list[str]:
    """The GET routes of the web pages (not the JSON API), from the app's route table, with the query they need."""
    found: list[str] = []

    def walk(routes: list[Any], prefix: str = "") -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:
                walk(included.routes, prefix + route.include_context.prefix)
            path = prefix + getattr(route, "path", "")
            if "GET" in (getattr(route, "methods", None) or set()) and not getattr(route, "include_in_schema", True):
                if not path.startswith(("/api/", "/static")) and path not in SKIP and path not in found:
                    found.append(path + QUERIES.get(path, ""))

    walk(list(app.routes))
    return found


def _measure(client: TestClient, url: str, token: str, repeat: int) -> tuple[int, int, list[float]]:
    times = []
    status = size = 0
    for _ in range(repeat + 1):
        started = time.perf_counter()
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        times.append((time.perf_counter() - started) * 1000)
        status, size = response.status_code, len(response.content)
    return status, size, times


def run(backend: str, repeat: int, only: str, existing: str = "") -> list[Row]:
    """Measure every page on one backend (or on an existing demo database, which gets two API tokens)."""
    with tempfile.TemporaryDirectory() as tmp:
        if existing:
            engine = make_engine(existing)
            try:
                return _run(engine, repeat, only)
            finally:
                engine.dispose()
        with database(backend, Path(tmp)) as engine:
            _load(engine)
            return _run(engine, repeat, only)


def _run(engine: Engine, repeat: int, only: str) -> list[Row]:
    rows: list[Row] = []
    tokens = _tokens(engine)
    params = demo_parameters(engine)
    url = engine.url.render_as_string(hide_password=False)
    app = create_app(Settings(database_url=url, environment="test", secret_key="bench" * 8))
    with TestClient(app) as client:
        targets = []
        for path in page_paths(app):
            try:
                url_path = path.format(**params)
            except KeyError as missing:
                print(f"  skipped {path}: no demo value for {missing}")
                continue
            # Query-driven pages (year filters) get the demo's latest year.
            targets.append(f"{url_path}?year={params['year']}" if "{" not in path and path != "/login" else url_path)
        targets += [variant.format(**params) for variant in VARIANTS]
        for target in targets:
            if only and only not in target:
                continue
            for user in USERS:
                status, size, times = _measure(client, target, tokens[user], repeat)
                if status in (401, 403, 404):
                    continue  # the page is not for this user
                rows.append(Row(target, user, status, size, times[0], statistics.median(times[1:]), max(times[1:])))
    return rows


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--only", default="", help="only routes whose path contains this")
    parser.add_argument("--database", default="", help="measure an existing demo database instead (gets 2 tokens)")
    args = parser.parse_args()
    for backend in [args.database] if args.database else args.backends.split(","):
        print(f"\n## {backend}")
        rows = run(backend, args.repeat, args.only, existing=args.database)
        print("| page | user | status | size | first | median | slowest | within target |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            layer = r.path.split("?")[0].endswith(".geojson")
            ok = r.median_ms < PAGE_TARGET_MS and (not layer or r.size < LAYER_TARGET_BYTES)
            size = f"{r.size / 1e6:.2f} MB" if r.size >= 100_000 else f"{r.size / 1e3:.0f} kB"
            print(
                f"| `{r.path}` | {r.user} | {r.status} | {size} | {r.first_ms:.0f} ms | {r.median_ms:.0f} ms "
                f"| {r.worst_ms:.0f} ms | {'yes' if ok else 'NO'} |"
            )


if __name__ == "__main__":
    main()
