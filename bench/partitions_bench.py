"""Years partitioned on PostgreSQL: which partitions a year's queries touch, from their plans.

Fills a throwaway PostgreSQL database with the province of bench/common.py (manifests of 2020-2024), creates the
years' partitions with `partitions.ensure` (the rows land in DEFAULT first: the migration made only the coming
years), then runs the rate by prefecture, a year's manifests list and a year's manifest sum, catches every statement
they send that reads transfer_batch, and prints each one's EXPLAIN (ANALYZE, BUFFERS) with the partitions it touched.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, fill_province  # noqa: E402
from flows.access.accounts import system_principal  # noqa: E402
from flows.kernel import partitions  # noqa: E402
from flows.waste.manifests import ManifestFilter, list_manifests  # noqa: E402
from flows.waste.rates import utilisation  # noqa: E402

YEAR = 2024
TOUCHED = re.compile(r"on (transfer_batch_\w+|battery_event_\w+)")


def _caught(session: Session, run: Any) -> list[tuple[str, Any]]:
    """The statements reading transfer_batch that `run` sends, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "transfer_batch" in statement and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", keep)
    try:
        run()
    finally:
        event.remove(bind, "before_cursor_execute", keep)
    return seen


def _explain(session: Session, statement: str, parameters: Any) -> str:
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
    return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    """Fill, partition, and print the plans."""
    parser = argparse.ArgumentParser(description=__doc__)
    sizes = {"enterprises": 20_000, "declarations": 100_000, "manifests": 1_000_000}
    for name, default in sizes.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--through", type=float, default=0.3, help="share of first manifests via intermediaries")
    given = vars(parser.parse_args())
    principal = system_principal()
    with tempfile.TemporaryDirectory() as tmp, database("postgresql", Path(tmp)) as engine:
        fill_province(engine, **{name: given[name] for name in (*sizes, "through")}, log=print)
        with Session(engine) as session:
            began = time.perf_counter()
            made = partitions.ensure(session=session, now=datetime.now(UTC))
            session.commit()
            session.execute(text("ANALYZE transfer_batch"))
            session.commit()
            print(f"partitions ensure: {time.perf_counter() - began:.1f} s")
            for c in made:
                print(f"  {c.table} {c.year}: {c.moved:,} rows moved from DEFAULT")
            for p in partitions.listing(session=session):
                print(f"  {p.name}: {p.rows:,} rows")
            queries: dict[str, Callable[[], Any]] = {
                f"rate by prefecture, {YEAR}": lambda: utilisation(
                    session=session, principal=principal, year=YEAR, by="region"
                ),
                f"manifests list, {YEAR} (first page and count)": lambda: list_manifests(
                    session=session, principal=principal, filters=ManifestFilter(year=YEAR)
                ),
            }
            # The year's received tonnes by shipper and category, straight from the manifests: the sum a summary per
            # (year, shipper, category) is rebuilt from.
            year_sum = (
                "SELECT shipper_id, category_code, SUM(weight_received_kg) FROM transfer_batch"
                f" WHERE year = {YEAR} AND status IN ('received', 'corrected') GROUP BY shipper_id, category_code"
            )
            queries[f"manifest sum by shipper and category, {YEAR}"] = lambda: session.execute(text(year_sum)).all()
            for title, run in queries.items():
                run()  # warm-up
                for statement, parameters in _caught(session, run):
                    plan = _explain(session, statement, parameters)
                    touched = sorted(set(TOUCHED.findall(plan)))
                    print(f"\n== {title}: touches {', '.join(touched)}\n{statement}\n-- plan\n{plan}")


if __name__ == "__main__":
    main()
