"""Benchmark: the province-wide utilisation rate for one year, by prefecture, at province scale.

1,000,000 manifests and 100,000 declarations (20,000 enterprises over Sichuan's real counties), 30% of the first
manifests passing one or two intermediaries, on SQLite and on PostgreSQL, then the same aggregation in DuckDB over the
same rows. Prints the figures; asserts nothing.

    .venv/bin/python bench/rates_bench.py [--backends sqlite,postgresql] [--manifests N] [--declarations N]
        [--through F]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
from sqlalchemy import text
from sqlmodel import Session, col

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CATEGORIES, UTILISATION_ROUTES, database, fill_province, timed  # noqa: E402
from flows.access.accounts import system_principal  # noqa: E402
from flows.access.scope import resolve_scope  # noqa: E402
from flows.waste.rates import manifested_sums, utilisation  # noqa: E402
from flows.waste.reference import SICHUAN_TARGET_CATEGORIES  # noqa: E402
from models import Enterprise  # noqa: E402

YEAR = 2024


def duckdb_rates(province: object, shares: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """The same figures by prefecture in DuckDB: declared sums and the allocated (bottom-up) utilised tonnes."""
    con = duckdb.connect()
    con.register("manifest_share", shares)
    con.register("enterprise", pd.DataFrame(province.enterprises))  # type: ignore[attr-defined]
    con.register("declaration", pd.DataFrame(province.declarations))  # type: ignore[attr-defined]
    con.register("transfer_batch", pd.DataFrame(province.manifests))  # type: ignore[attr-defined]
    con.register("licence", pd.DataFrame(province.licences))  # type: ignore[attr-defined]
    cats = ", ".join(f"'{c}'" for c in SICHUAN_TARGET_CATEGORIES)
    routes = ", ".join(f"'{r.value}'" for r in UTILISATION_ROUTES)
    sql = f"""
        WITH declared AS (
            SELECT e.prefecture_adcode AS key, sum(d.generated_t) AS g, sum(d.utilised_t) AS u,
                   sum(d.utilised_prior_t) AS p
            FROM declaration d JOIN enterprise e ON e.id = d.enterprise_id
            WHERE d.year = {YEAR} AND d.category_code IN ({cats}) GROUP BY 1),
        manifested AS (
            SELECT e.prefecture_adcode AS key, sum(s.kg) / 1000 AS t
            FROM manifest_share s JOIN transfer_batch m ON m.id = s.manifest_id
            JOIN enterprise e ON e.id = s.origin_shipper_id
            WHERE s.origin_year = {YEAR} AND s.placement = 'final' AND s.category_code IN ({cats})
              AND m.route IN ({routes})
              AND EXISTS (SELECT 1 FROM licence l WHERE l.enterprise_id = m.receiver_id
                          AND l.category_code = m.category_code AND l.activity = 'utilisation')
            GROUP BY 1)
        SELECT d.key, d.u / (d.g + d.p) AS rate, m.t FROM declared d LEFT JOIN manifested m USING (key) ORDER BY 1
    """
    con.execute(sql).fetchall()  # warm-up: DuckDB reads the frames once
    seconds, result = timed(lambda: con.execute(sql).df())
    return seconds, result


def bottom_up(session: Session) -> tuple[float, float]:
    """Median seconds of the bottom-up sums by prefecture, from the summaries and from the base rows (the reference)."""
    scope = resolve_scope(session=session, principal=system_principal(), region="510000")
    group = [col(Enterprise.prefecture_adcode)]
    codes = list(SICHUAN_TARGET_CATEGORIES)
    kept, from_summaries = timed(lambda: manifested_sums(session, scope.condition, codes, (YEAR, YEAR), group))
    base, from_base = timed(lambda: manifested_sums(session, scope.condition, codes, (YEAR, YEAR), group, base=True))
    assert from_summaries == from_base, "the summaries differ from the base rows"
    return kept, base


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--enterprises", type=int, default=20_000)
    parser.add_argument("--declarations", type=int, default=100_000)
    parser.add_argument("--manifests", type=int, default=1_000_000)
    parser.add_argument("--through", type=float, default=0.3, help="share of first manifests via intermediaries")
    args = parser.parse_args()
    print(
        f"rates: {args.manifests:,} manifests, {args.declarations:,} declarations, {args.enterprises:,} enterprises;"
        f" province-wide rate {YEAR} by prefecture (categories {', '.join(CATEGORIES)} generated)"
    )
    principal = system_principal()
    results: dict[str, float] = {}
    province = None
    shares = pd.DataFrame()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            print(f"[{backend}]")
            with database(backend, Path(tmp)) as engine:
                province = fill_province(
                    engine,
                    enterprises=args.enterprises,
                    declarations=args.declarations,
                    manifests=args.manifests,
                    through=args.through,
                    log=print,
                )
                with engine.connect() as conn:
                    shares = pd.read_sql("SELECT * FROM manifest_share", conn)
                with Session(engine) as session:
                    began = time.perf_counter()
                    utilisation(session=session, principal=principal, year=YEAR, by="region")
                    print(f"  first call (cold caches): {time.perf_counter() - began:.3f} s")
                    seconds, report = timed(
                        lambda s=session: utilisation(session=s, principal=principal, year=YEAR, by="region")
                    )
                    total, _ = timed(lambda s=session: utilisation(session=s, principal=principal, year=YEAR))
                    kept, base = bottom_up(session)
                    sizes = [
                        session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                        for t in ("summary_generator", "summary_county")
                    ]
                rows = report.rows or []
                print(
                    f"  rate by prefecture: median {seconds * 1000:.0f} ms ({len(rows)} rows; province rate "
                    f"{report.rate:.4f}); province total alone: {total * 1000:.0f} ms"
                )
                print(
                    f"  bottom-up sums by prefecture alone: from the summaries {kept * 1000:.1f} ms, from the base rows"
                    f" {base * 1000:.0f} ms; summary rows: {sizes[0]:,} per generator, {sizes[1]:,} per region cell"
                )
                results[backend] = seconds
    if province is not None:
        seconds, frame = duckdb_rates(province, shares)
        print(
            f"[duckdb] same aggregation over the same rows (in memory): median {seconds * 1000:.0f} ms "
            f"({len(frame)} rows)"
        )
        for backend, value in results.items():
            print(f"  {backend} / duckdb = {value / seconds:.1f}x")


if __name__ == "__main__":
    main()
