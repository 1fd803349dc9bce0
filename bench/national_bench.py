"""Benchmark: national figures on paper, from the same province measured at two sizes on PostgreSQL.

Fills the synthetic province of rates_bench.py (the same enterprises, five years of manifests) at each size given,
measures the storage of every table that grows with the manifests (partitions and indexes included), the rows of the
summaries, and the rate by prefecture from the summaries and from the base rows, with DuckDB's same aggregation over the
same rows (rates_bench.duckdb_rates) beside them, then prints the growth per million manifests, the growth of each
time, and the figures extrapolated to 10x and 100x the benchmark and to a country's year. Asserts nothing.

    .venv/bin/python bench/national_bench.py [--sizes 1000000,3000000] [--enterprises N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text
from sqlmodel import Session, col

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Province, database, fill_province, timed  # noqa: E402
from bench.rates_bench import duckdb_rates  # noqa: E402
from flows.access.accounts import system_principal  # noqa: E402
from flows.access.scope import resolve_scope  # noqa: E402
from flows.pages.sankey import sankey  # noqa: E402
from flows.waste import summaries  # noqa: E402
from flows.waste.rates import manifested_sums, utilisation  # noqa: E402
from flows.waste.reference import SICHUAN_TARGET_CATEGORIES  # noqa: E402
from models import Enterprise  # noqa: E402

YEAR = 2024
YEARS = 5  # the bench spreads its manifests over 2020-2024
# What grows with the manifests; the declarations and the reference tables grow with the enterprises.
GROWING = (
    "transfer_batch",
    "manifest_number",
    "manifest_share",
    "manifest_source",
    "manifest_draw",
    "summary_generator",
    "summary_county",
    "summary_path",
)
COUNTRY_A_YEAR = 300_000_000  # manifests a year for the whole country (issue 17's order of magnitude)


def _tables(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        present = {
            str(name) for (name,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        }
    return [t for t in GROWING if t in present]


def measure(engine: Engine, province: Province) -> dict[str, float]:
    """Bytes and rows per table, summary rows, the rate's medians and DuckDB's (seconds), with the load averages."""
    out: dict[str, float] = {}
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        for table in _tables(engine):
            # A partitioned table's own size is nothing: add up its tree (a plain table's tree is itself).
            size = conn.execute(
                text(
                    "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(t.relid))"
                    " FROM pg_partition_tree(c.oid) t) ELSE pg_total_relation_size(c.oid) END"
                    " FROM pg_class c WHERE c.oid = to_regclass(:t)"
                ),
                {"t": table},
            ).scalar_one()
            rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            out[f"bytes:{table}"] = float(size)
            out[f"rows:{table}"] = float(rows)
    principal = system_principal()
    with Session(engine) as session:
        utilisation(session=session, principal=principal, year=YEAR, by="region")  # warm the caches
        out["rate_s"], _ = timed(lambda: utilisation(session=session, principal=principal, year=YEAR, by="region"))
        scope = resolve_scope(session=session, principal=principal, region="510000")
        group = [col(Enterprise.prefecture_adcode)]
        codes = list(SICHUAN_TARGET_CATEGORIES)
        out["base_s"], _ = timed(
            lambda: manifested_sums(session, scope.condition, codes, (YEAR, YEAR), group, base=True), repeat=3
        )
        # The Sankey of the province (both diagrams and the totals), read from summary_path.
        out["sankey_s"], _ = timed(lambda: sankey(session=session, principal=principal, year=YEAR))
        # The summaries' rebuild and check, as after a bulk load and from a monitoring job (rolled back).
        out["rebuild_s"], _ = timed(lambda: summaries.rebuild(session), repeat=1)
        session.rollback()
        out["check_s"], _ = timed(lambda: summaries.check(session), repeat=1)
    out["load_pg"] = os.getloadavg()[0]
    with engine.connect() as conn:
        shares = pd.read_sql("SELECT * FROM manifest_share", conn)
    out["duckdb_s"], frame = duckdb_rates(province, shares)
    out["duckdb_rows"] = float(len(frame))
    out["load_duckdb"] = os.getloadavg()[0]
    return out


def _mb(value: float) -> str:
    return (
        f"{value / 1e6:,.0f} MB"
        if value < 1e9
        else f"{value / 1e9:,.1f} GB"
        if value < 1e12
        else f"{value / 1e12:,.2f} TB"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,3000000")
    parser.add_argument("--enterprises", type=int, default=20_000)
    parser.add_argument("--declarations", type=int, default=100_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    found: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            print(f"[postgresql, {size:,} manifests]")
            with database("postgresql", Path(tmp)) as engine:
                province = fill_province(
                    engine,
                    enterprises=args.enterprises,
                    declarations=args.declarations,
                    manifests=size,
                    through=0.3,
                    log=print,
                )
                found[size] = measure(engine, province)
                del province
            m = found[size]
            for table in GROWING:
                if f"bytes:{table}" in m:
                    print(f"  {table}: {m[f'rows:{table}']:,.0f} rows, {_mb(m[f'bytes:{table}'])}")
            print(f"  rate by prefecture {m['rate_s'] * 1000:.0f} ms; from the base rows {m['base_s'] * 1000:.0f} ms")
            print(
                f"  sankey of the province {m['sankey_s'] * 1000:.0f} ms; summaries rebuild {m['rebuild_s']:.1f} s,"
                f" check {m['check_s']:.1f} s"
            )
            print(
                f"  duckdb, same aggregation over the same rows (in memory): {m['duckdb_s'] * 1000:.0f} ms"
                f" ({m['duckdb_rows']:.0f} rows); rate by prefecture / duckdb = {m['rate_s'] / m['duckdb_s']:.2f}x,"
                f" base rows / duckdb = {m['base_s'] / m['duckdb_s']:.2f}x"
            )
            print(
                f"  load average (1 min): {m['load_pg']:.1f} after the postgresql timings,"
                f" {m['load_duckdb']:.1f} after duckdb's"
            )
    if len(sizes) < 2:
        return
    low, high = sizes[0], sizes[-1]
    a, b = found[low], found[high]
    step = (high - low) / 1e6
    total = {n: sum(v for k, v in found[n].items() if k.startswith("bytes:")) for n in (low, high)}
    per_million = (total[high] - total[low]) / step
    print(f"[growth from {low:,} to {high:,} manifests]")
    for table in GROWING:
        if f"bytes:{table}" in a:
            grown = (b[f"bytes:{table}"] - a[f"bytes:{table}"]) / step
            rows = (b[f"rows:{table}"] - a[f"rows:{table}"]) / step
            print(f"  {table}: {_mb(grown)} and {rows:,.0f} rows per million manifests")
    print(f"  all: {_mb(per_million)} per million manifests ({per_million / 1e6:,.0f} bytes a manifest)")
    print(
        f"  rate by prefecture: {a['rate_s'] * 1000:.0f} -> {b['rate_s'] * 1000:.0f} ms"
        f" (x{b['rate_s'] / a['rate_s']:.2f}); base rows {a['base_s'] * 1000:.0f} -> {b['base_s'] * 1000:.0f} ms"
        f" (x{b['base_s'] / a['base_s']:.2f}); duckdb {a['duckdb_s'] * 1000:.0f} -> {b['duckdb_s'] * 1000:.0f} ms"
        f" (x{b['duckdb_s'] / a['duckdb_s']:.2f})"
    )
    print(f"  rate by prefecture / duckdb: {a['rate_s'] / a['duckdb_s']:.2f}x -> {b['rate_s'] / b['duckdb_s']:.2f}x")
    base_slope = (b["base_s"] - a["base_s"]) / step
    for factor in (10, 100):
        n = high * factor
        bytes_n = total[high] + per_million * (n - high) / 1e6
        base_n = b["base_s"] + base_slope * (n - high) / 1e6
        print(
            f"  {factor}x ({n:,} manifests): storage {_mb(bytes_n)}; rate from the base rows ~{base_n:,.1f} s,"
            f" from the summaries as at {high:,} (they grow with enterprises, not manifests)"
        )
    year = per_million * COUNTRY_A_YEAR / 1e6
    print(f"  a country's year ({COUNTRY_A_YEAR:,} manifests): {_mb(year)} of manifests, chains and summaries")


if __name__ == "__main__":
    main()
