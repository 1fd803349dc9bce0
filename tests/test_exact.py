"""Exact quantities end to end: whole kilograms stored and summed, rates on target meeting it, numbers read strictly.

The cases seen from outside: 7803.9 / 10005.0 printed 77.9% and missed the 78% target; the 2028 target path printed
80.3%; "1,5" was read as 15; weights were binary floats summed in whatever order.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from fractions import Fraction

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from flows.access.accounts import system_principal
from flows.pages.map import RateClass, rate_class
from flows.waste import rates
from flows.waste.imports import ImportRefused, import_manifests
from flows.waste.rates import percent_truncated
from migrations import alembic_config
from models import Declaration, Enterprise, Manifest
from tests.test_rates import PZH_EAST, Builder
from tests.world import NOW, build_world

SYSTEM = system_principal()


def test_a_rate_exactly_on_its_target_meets_it(session: Session) -> None:
    build = Builder(session)
    e = build.enterprise(PZH_EAST)
    build.declare(e, "SW01", 2025, generated_t=10005.0, utilised_t=7803.9, stored_t=2201.1)
    session.commit()
    report = rates.utilisation(session=session, principal=SYSTEM, year=2025, region=PZH_EAST)
    # By hand: 7803.9 / 10005.0 = 78039 / 100050 = 0.78 exactly.
    assert Fraction(78039, 100050) == Fraction(78, 100)
    assert report.rate == 0.78 and report.target == 0.78
    assert percent_truncated(report.rate) == Decimal("78.0")
    assert rate_class(report.rate, report.target) is RateClass.meets


def test_the_target_path_between_targets_is_exact(session: Session) -> None:
    build = Builder(session)
    e = build.enterprise(PZH_EAST)
    build.declare(e, "SW01", 2028, generated_t=1000, utilised_t=804, stored_t=196)
    session.commit()
    report = rates.utilisation(session=session, principal=SYSTEM, year=2028, region=PZH_EAST)
    # 78% in 2025, 82% in 2030: 2028 is 78 + 3/5 x 4 = 80.4%, and 804 of 1000 t is exactly on it.
    assert report.target is not None and percent_truncated(report.target) == Decimal("80.4")
    assert report.rate == report.target and rate_class(report.rate, report.target) is RateClass.meets


def test_many_small_weights_sum_exactly(session: Session) -> None:
    build = Builder(session)
    shipper, receiver = build.enterprise(PZH_EAST), build.enterprise(PZH_EAST)
    build.licence(receiver, "SW01")
    for _ in range(300):
        build.batch(shipper, receiver, "SW01", 0.1, 0.1, year=2023)
    build.declare(shipper, "SW01", 2023, generated_t=30, utilised_t=30)
    session.commit()
    report = rates.utilisation(session=session, principal=SYSTEM, year=2023, region=PZH_EAST)
    # 300 x 0.1 t in binary floating point is 30.000000000000156; in kilograms it is 30,000.
    assert sum([0.1] * 300) != 30
    assert report.manifest_utilised_t == 30 and report.gap_t == 0
    stored = session.execute(text("SELECT SUM(weight_received_kg) FROM transfer_batch")).scalar_one()
    assert int(stored) == 30_000


def test_weights_are_stored_as_whole_kilograms(session: Session) -> None:
    build = Builder(session)
    a, b = build.enterprise(PZH_EAST), build.enterprise(PZH_EAST)
    ident = build.batch(a, b, "SW01", 12.345, 12.3)
    session.commit()
    row = session.execute(
        text("SELECT weight_dispatched_kg, weight_received_kg FROM transfer_batch WHERE id = :i"), {"i": ident}
    ).one()
    assert (int(row[0]), int(row[1])) == (12_345, 12_300)
    got = session.get(Manifest, ident)
    assert got is not None and got.weight_dispatched_t == Decimal("12.345")
    with pytest.raises(ValueError, match="finer than a kilogram"):
        got.weight_received_t = 1.0005  # type: ignore[assignment]


@pytest.mark.parametrize(("typed", "ok"), [("12,500.5", True), ("1,5", False), ("1,2345", False), ("12.5", True)])
def test_the_api_reads_numbers_strictly(client: TestClient, session: Session, typed: str, ok: bool) -> None:
    w = build_world(session)
    body = {"receiver_id": w.e2, "category_code": "SW01", "route": "cement_admixture", "weight_dispatched_t": typed}
    response = client.post("/api/v1/manifests", json=body, headers={"Authorization": f"Bearer {w.tokens['ent1']}"})
    if ok:
        assert response.status_code == 201, response.text
        assert Decimal(str(response.json()["weight_dispatched_t"])) == Decimal(typed.replace(",", ""))
    else:
        assert response.status_code == 422 and response.json()["field"] == "weight_dispatched_t"


def test_the_importer_refuses_an_ambiguous_comma_naming_the_row_and_column(session: Session) -> None:
    w = build_world(session)
    shipper, receiver = session.get(Enterprise, w.e1), session.get(Enterprise, w.e2)
    assert shipper is not None and receiver is not None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["移出单位统一社会信用代码", "接收单位统一社会信用代码", "废物类别", "利用处置方式", "移出量(吨)"])
    writer.writerow([shipper.uscc, receiver.uscc, "SW01", "cement_admixture", "12,500.5"])
    writer.writerow([shipper.uscc, receiver.uscc, "SW01", "cement_admixture", "1,5"])
    before = session.execute(text("SELECT COUNT(*) FROM transfer_batch")).scalar()
    with pytest.raises(ImportRefused) as caught:
        import_manifests(session=session, principal=SYSTEM, source=io.BytesIO(out.getvalue().encode()), now=NOW)
    session.rollback()
    errors = [(e.line, e.column) for e in caught.value.errors]
    assert errors == [(3, "移出量(吨)")]  # the column as the file names it
    assert session.execute(text("SELECT COUNT(*) FROM transfer_batch")).scalar() == before


def test_the_migration_turns_tonnes_into_kilograms_and_back(engine: Engine, session: Session) -> None:
    build = Builder(session)
    a, b = build.enterprise(PZH_EAST), build.enterprise(PZH_EAST)
    build.declare(a, "SW01", 2023, generated_t=100.5, utilised_t=0.001)
    build.batch(a, b, "SW01", 7803.9, 7803.9)
    session.commit()
    session.close()
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
    with engine.connect() as conn:
        tonnes = conn.execute(text("SELECT weight_dispatched_t FROM transfer_batch")).scalar_one()
        generated = conn.execute(text("SELECT generated_t, utilised_t FROM declaration")).one()
    assert float(tonnes) == pytest.approx(7803.9) and float(generated[0]) == pytest.approx(100.5)
    with engine.begin() as conn:
        conn.execute(text("UPDATE transfer_batch SET weight_dispatched_t = 7803.9000000000005"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with Session(engine) as fresh:
        manifest = fresh.exec(select(Manifest)).one()
        declaration = fresh.exec(select(Declaration)).one()
        assert manifest.weight_dispatched_t == Decimal("7803.9") and manifest.weight_received_t == Decimal("7803.9")
        assert (declaration.generated_t, declaration.utilised_t) == (Decimal("100.5"), Decimal("0.001"))
