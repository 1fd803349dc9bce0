"""Benchmark: importing manifests from CSV against a plain executemany of the same rows; memory as the file grows.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--backends sqlite,postgresql]

For each backend: a database with 2,000 enterprises; a CSV of N manifests; the import (flows.waste.imports, with every
check) timed against an executemany of the same rows (pre-built dicts, no checks) into a second database.
Peak memory is measured in a child process per file size (N/4, N/2, N rows). Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench.common import CATEGORIES, UTILISATION_ROUTES, database, fill_province  # noqa: E402
from flows.access.accounts import system_principal  # noqa: E402
from flows.waste.imports import import_manifests  # noqa: E402
from models import Manifest  # noqa: E402
from models.enums import Channel  # noqa: E402

ENTERPRISES = 2_000


def write_csv(path: Path, rows: int, usccs: list[str], seed: int = 3, collect: bool = True) -> list[dict[str, Any]]:
    """A manifest file as a ledger would export it; returns the same rows as table dicts for executemany."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    table_rows = []
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "number",
                "shipper_uscc",
                "receiver_uscc",
                "category",
                "route",
                "weight_dispatched_t",
                "dispatched_at",
                "weight_received_t",
                "received_at",
            ]
        )
        for i in range(1, rows + 1):
            s, r = rng.sample(range(len(usccs)), 2)
            sent = start + timedelta(minutes=rng.randrange(300 * 24 * 60))
            weight = round(rng.uniform(5, 60), 2)
            got = round(weight * rng.uniform(0.98, 1.01), 2)
            category, route = rng.choice(CATEGORIES), rng.choice(UTILISATION_ROUTES).value
            out.writerow(
                [
                    f"IMP{i:09d}",
                    usccs[s],
                    usccs[r],
                    category,
                    route,
                    weight,
                    sent.isoformat(),
                    got,
                    (sent + timedelta(hours=5)).isoformat(),
                ]
            )
            table_rows.append(
                {
                    "number": f"IMP{i:09d}",
                    "shipper_id": s + 1,
                    "receiver_id": r + 1,
                    "category_code": category,
                    "route": route,
                    "year": 2024,
                    "status": "received",
                    "weight_dispatched_t": weight,
                    "weight_received_t": got,
                    "dispatched_at": sent,
                    "received_at": sent + timedelta(hours=5),
                    "created_at": sent,
                }
            )
    return table_rows


def _peak_rss(backend: str, tmp: str, rows: int, queue: Any) -> None:
    with database(backend, Path(tmp)) as engine:
        province = fill_province(engine, enterprises=ENTERPRISES, declarations=0, manifests=0, log=lambda _m: None)
        path = Path(tmp) / f"mem-{rows}.csv"
        write_csv(path, rows, [e["uscc"] for e in province.enterprises], collect=False)
        del province
        # Python's own allocations during the import alone (the process peak is set earlier, by the boundaries).
        tracemalloc.start()
        with Session(engine) as session:
            import_manifests(
                session=session, principal=system_principal(Channel.import_), source=path, now=datetime.now(UTC)
            )
            session.commit()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        queue.put((peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"import: {args.rows:,} manifests from CSV vs executemany of the same rows")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            print(f"[{backend}]")
            with database(backend, Path(tmp)) as engine, database(backend, Path(tmp)) as plain:
                province = fill_province(
                    engine, enterprises=ENTERPRISES, declarations=0, manifests=0, log=lambda _m: None
                )
                fill_province(plain, enterprises=ENTERPRISES, declarations=0, manifests=0, log=lambda _m: None)
                path = Path(tmp) / "manifests.csv"
                table_rows = write_csv(path, args.rows, [e["uscc"] for e in province.enterprises])
                began = time.perf_counter()
                with Session(engine) as session:
                    summary = import_manifests(
                        session=session, principal=system_principal(Channel.import_), source=path, now=datetime.now(UTC)
                    )
                    session.commit()
                imported = time.perf_counter() - began
                began = time.perf_counter()
                with plain.begin() as conn:
                    for start in range(0, len(table_rows), 5_000):
                        conn.execute(insert(Manifest), table_rows[start : start + 5_000])
                raw = time.perf_counter() - began
                print(
                    f"  import (checked, {summary.inserted:,} rows): {imported:.1f} s = "
                    f"{args.rows / imported:,.0f} rows/s"
                )
                print(f"  plain executemany: {raw:.1f} s = {args.rows / raw:,.0f} rows/s")
                print(f"  import / executemany speed = {raw / imported:.2f} (target >= 0.33)")
            ctx = multiprocessing.get_context("spawn")
            for rows in (args.rows // 4, args.rows // 2, args.rows):
                queue = ctx.Queue()
                child = ctx.Process(target=_peak_rss, args=(backend, tmp, rows, queue))
                child.start()
                child.join()
                traced, process = queue.get()
                print(
                    f"  importing {rows:,} rows: peak of the import's own allocations {traced / 2**20:.1f} MB "
                    f"(process peak {process / 1024:.0f} MB)"
                )


if __name__ == "__main__":
    main()
