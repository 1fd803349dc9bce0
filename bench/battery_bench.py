"""Benchmark: battery tracing and the year-wide chain audit at province scale.

The deterministic demo (seed 2024) is loaded once, then its batteries and events are replicated with new, valid and
unique GB/T 34014 codes (the traceability field carries the copy and the template battery; production and event dates
move by whole years so that the copies spread over 2018-2024) until there are 1,000,000 batteries and about 5,000,000
events; the shortfall of events is made up with repeated ``transferred`` handovers (same parties, a minute later).
Then, on SQLite and on PostgreSQL: tracing one code (median and p95 over random codes), tracing a whole pack (median
over random packs) and the province-wide chain audit for one year, with the real domain functions and the system
principal. Prints the figures beside the targets; asserts nothing.

    .venv/bin/python bench/battery_bench.py [--backends sqlite,postgresql] [--batteries N] [--events N] [--year Y]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import database  # noqa: E402
from flows.access.accounts import system_principal  # noqa: E402
from flows.battery.audit import chain_flags  # noqa: E402
from flows.battery.chain import trace, trace_pack  # noqa: E402
from flows.battery.code import YEARS  # noqa: E402
from flows.demo.load import load_demo  # noqa: E402
from models import Battery, BatteryEvent  # noqa: E402
from models.enums import BatteryEventType, BatteryLevel  # noqa: E402

CHUNK = 20_000
YEAR_LETTER = {v: k for k, v in YEARS.items()}
TARGET_TRACE_MS = 5
TARGET_PACK_MS = 50
TARGET_AUDIT_S = 10
TRANSFERRED = BatteryEventType.transferred.value


def _shift(moment: Any, years: int) -> Any:
    """The same moment whole years earlier or later (29 February becomes the 28th)."""
    if moment is None or years == 0:
        return moment
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _recode(code: str | None, copy: int, index: int, produced: date | None) -> str | None:
    """A new valid code: the traceability field names the copy and the template battery, the year letter moves."""
    if code is None:
        return None
    year = YEAR_LETTER[produced.year] if produced is not None else code[14]
    return f"{code[:7]}{copy:03d}{index:04d}{year}{code[15:]}"


def _value(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


def _templates(engine: Engine) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """The demo's batteries (in id order, parents before children) and their events by battery."""
    with engine.connect() as conn:
        batteries = [dict(r._mapping) for r in conn.execute(select(Battery.__table__).order_by(Battery.id))]
        events: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in conn.execute(select(BatteryEvent.__table__).order_by(BatteryEvent.id)):
            row = dict(r._mapping)
            del row["id"]
            row["type"] = _value(row["type"])
            events[row["battery_id"]].append(row)
    for b in batteries:
        b["level"] = _value(b["level"])
        b["state"] = _value(b["state"])
    return batteries, events


def _copy_rows(
    copy: int,
    shift: int,
    stride: int,
    template: list[dict[str, Any]],
    events: dict[int, list[dict[str, Any]]],
    pad: list[float],
    rate: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One copy of (a prefix of) the template batteries and their events, ids offset by copy * stride."""
    offset = copy * stride
    bats: list[dict[str, Any]] = []
    evs: list[dict[str, Any]] = []
    for index, b in enumerate(template):
        produced = _shift(b["production_date"], shift)
        row = dict(b)
        row["id"] = b["id"] + offset
        row["parent_id"] = b["parent_id"] + offset if b["parent_id"] is not None else None
        row["production_date"] = produced
        row["code"] = _recode(b["code"], copy, index, produced)
        row["original_code"] = _recode(b["original_code"], copy, index, None)
        bats.append(row)
        for e in events.get(b["id"], ()):
            ev = dict(e)
            ev["battery_id"] = row["id"]
            ev["occurred_at"] = _shift(e["occurred_at"], shift)
            ev["reported_at"] = _shift(e["reported_at"], shift)
            evs.append(ev)
            if e["type"] == TRANSFERRED:
                pad[0] += rate
                n = 0
                while pad[0] >= 1:
                    n += 1
                    pad[0] -= 1
                    extra = dict(ev)
                    extra["occurred_at"] = ev["occurred_at"] + timedelta(minutes=n)
                    extra["reported_at"] = ev["reported_at"] + timedelta(minutes=n)
                    evs.append(extra)
    return bats, evs


def _chunks(rows: list[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def fill_batteries(engine: Engine, *, batteries: int, events: int, log: Callable[[str], None]) -> tuple[int, int]:
    """Load the demo, replicate its batteries and events up to the sizes asked for; the counts loaded."""
    began = time.perf_counter()
    with Session(engine) as session:
        summary = load_demo(session=session, seed=2024)
        session.commit()
    log(
        f"  demo: {summary.batteries:,} batteries, {summary.battery_events:,} events "
        f"in {time.perf_counter() - began:.1f} s"
    )
    template, by_battery = _templates(engine)
    stride = max(b["id"] for b in template)
    per_copy = len(template)
    n_events = sum(len(v) for v in by_battery.values())
    transfers = sum(1 for v in by_battery.values() for e in v if e["type"] == TRANSFERRED)
    wanted = max(batteries - per_copy, 0)
    natural = n_events * wanted / per_copy
    rate = max(events - n_events - natural, 0) / max(transfers * wanted / per_copy, 1)
    pad = [0.0]
    loaded_b, loaded_e = per_copy, n_events
    copy = 0
    began = time.perf_counter()
    pending_b: list[dict[str, Any]] = []
    pending_e: list[dict[str, Any]] = []

    def flush(conn: Any) -> None:
        for chunk in _chunks(pending_b):
            conn.execute(insert(Battery.__table__), chunk)
        for chunk in _chunks(pending_e):
            conn.execute(insert(BatteryEvent.__table__), chunk)
        pending_b.clear()
        pending_e.clear()

    while loaded_b < batteries:
        with engine.begin() as conn:
            while loaded_b < batteries and len(pending_e) < 5 * CHUNK:
                copy += 1
                part = template[: batteries - loaded_b]
                shift = -(copy % 4)  # whole years back, 0..3, so the copies stay in the past
                bats, evs = _copy_rows(copy, shift, stride, part, by_battery, pad, rate)
                pending_b.extend(bats)
                pending_e.extend(evs)
                loaded_b += len(bats)
                loaded_e += len(evs)
            flush(conn)
        if copy % 50 < 10:
            log(f"    … {loaded_b:,} batteries, {loaded_e:,} events ({time.perf_counter() - began:.0f} s)")
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('battery_id_seq', (SELECT max(id) FROM battery))"))
    loaded = time.perf_counter() - began
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    with engine.connect() as conn:
        counted_b = conn.execute(select(func.count()).select_from(Battery.__table__)).scalar_one()
        counted_e = conn.execute(select(func.count()).select_from(BatteryEvent.__table__)).scalar_one()
    log(
        f"  loaded {counted_b:,} batteries, {counted_e:,} events ({copy} copies of the demo) in {loaded:.1f} s; "
        f"ANALYZE{' + WAL checkpoint' if engine.dialect.name == 'sqlite' else ''} {time.perf_counter() - began:.1f} s"
    )
    return counted_b, counted_e


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _verdict(value: float, target: float) -> str:
    return "meets" if value < target else "MISSES"


def measure(engine: Engine, *, codes: int, packs: int, year: int, audit_repeat: int, seed: int) -> None:
    """Trace random codes, trace random packs, audit one year; print the figures beside the targets."""
    rng = random.Random(seed)
    principal = system_principal()
    with engine.connect() as conn:
        top = conn.execute(select(func.max(Battery.id))).scalar_one()
        picked: list[str] = []
        while len(picked) < codes:
            ids = rng.sample(range(1, top + 1), min(top, codes * 2))
            picked.extend(conn.execute(select(Battery.code).where(Battery.id.in_(ids))).scalars())
        picked = picked[:codes]
        pack_ids = rng.sample(range(1, top + 1), min(top, packs * 20))
        pack_codes = list(
            conn.execute(
                select(Battery.code)
                .where(Battery.id.in_(pack_ids), Battery.level == BatteryLevel.pack.value)
                .limit(packs)
            ).scalars()
        )
    for code in picked[:5]:  # warm-up: first connections, statement caches
        with Session(engine) as session:
            trace(session=session, principal=principal, code=code)
    times: list[float] = []
    events = 0
    for code in picked:
        with Session(engine) as session:
            began = time.perf_counter()
            result = trace(session=session, principal=principal, code=code)
            times.append(time.perf_counter() - began)
            events += len(result.events)
    median = statistics.median(times)
    print(
        f"  trace one code: median {_ms(median)}, p95 {_ms(_p95(times))}, max {_ms(max(times))} over {len(times)} "
        f"random codes (mean {events / len(times):.1f} events) — target < {TARGET_TRACE_MS} ms median: "
        f"{_verdict(median * 1000, TARGET_TRACE_MS)}"
    )
    times = []
    members = 0
    for code in pack_codes:
        with Session(engine) as session:
            began = time.perf_counter()
            result = trace_pack(session=session, principal=principal, code=code)
            times.append(time.perf_counter() - began)
            members += len(result.members)
    median = statistics.median(times)
    print(
        f"  trace a pack: median {_ms(median)}, p95 {_ms(_p95(times))}, max {_ms(max(times))} over {len(times)} "
        f"random packs (mean {members / max(len(times), 1):.1f} members) — target < {TARGET_PACK_MS} ms median: "
        f"{_verdict(median * 1000, TARGET_PACK_MS)}"
    )
    now = datetime.now(UTC)
    times = []
    report = None
    for _ in range(audit_repeat):
        with Session(engine) as session:
            began = time.perf_counter()
            report = chain_flags(session=session, principal=principal, now=now, year=year)
            times.append(time.perf_counter() - began)
    assert report is not None
    median = statistics.median(times)
    counts = ", ".join(f"{k} {v:,}" for k, v in report.counts.items() if v)
    print(
        f"  chain audit {year} (province): first {times[0]:.2f} s, median {median:.2f} s of {len(times)}; "
        f"{report.count:,} flags ({counts}) — target < {TARGET_AUDIT_S} s: {_verdict(median, TARGET_AUDIT_S)}"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--batteries", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=None, help="default: five per battery")
    parser.add_argument("--codes", type=int, default=200)
    parser.add_argument("--packs", type=int, default=50)
    parser.add_argument("--year", type=int, default=2023)
    parser.add_argument("--audit-repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    events = args.events if args.events is not None else 5 * args.batteries
    print(
        f"battery: {args.batteries:,} batteries, ~{events:,} events (demo seed 2024 replicated); "
        f"trace {args.codes} codes, {args.packs} packs; chain audit {args.year}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            print(f"[{backend}]", flush=True)
            with database(backend, Path(tmp)) as engine:
                fill_batteries(engine, batteries=args.batteries, events=events, log=lambda s: print(s, flush=True))
                measure(
                    engine,
                    codes=args.codes,
                    packs=args.packs,
                    year=args.year,
                    audit_repeat=args.audit_repeat,
                    seed=args.seed,
                )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
