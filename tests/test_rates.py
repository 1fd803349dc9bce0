"""Utilisation rates, category sets, scopes, breakdowns, the bottom-up figure, target paths and projections.

Every expected figure is computed by hand from the rows the test writes, never by the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import MultiPolygon, box
from sqlmodel import Session

from flows.access.accounts import system_principal
from flows.kernel.errors import Forbidden, InvalidInput, NotFound
from flows.kernel.uscc import make_uscc
from flows.waste import rates
from flows.waste.rates import percent_truncated, rate_of
from flows.waste.targets import TargetPoint, next_target, path_value, project
from models import Declaration, Enterprise, Licence, Manifest, Park, Target, TargetCategory
from models.enums import LicenceActivity, ManifestStatus, Route
from tests.world import build_world, t

SYSTEM = system_principal()
# Counties used below: Panzhihua's 东区 and 仁和区, Deyang's 旌阳区.
PZH, PZH_EAST, PZH_RENHE = "510400", "510402", "510411"
DY, DY_JINGYANG = "510600", "510603"


@dataclass
class Builder:
    """Hand-built rows: enterprises with their regions set directly, parks, declarations, licences, batches."""

    session: Session
    n: int = 0

    def park(self, name: str, adcode: str) -> int:
        self.n += 1
        x = 100 + self.n  # boundaries do not matter here: membership is the enterprise's park_id
        p = Park(name_zh=name, region_adcode=adcode, boundary=MultiPolygon([box(x, 20, x + 0.1, 20.1)]))
        self.session.add(p)
        self.session.flush()
        assert p.id is not None
        return p.id

    def enterprise(self, county: str, park: int | None = None, name: str = "") -> int:
        self.n += 1
        e = Enterprise(
            uscc=make_uscc(f"91510000MB{self.n:06d}"),
            name_zh=name or f"企业{self.n}",
            lon=104.0,
            lat=30.0,
            province_adcode=county[:2] + "0000",
            prefecture_adcode=county[:4] + "00",
            county_adcode=county,
            park_id=park,
        )
        self.session.add(e)
        self.session.flush()
        assert e.id is not None
        return e.id

    def declare(self, enterprise: int, category: str, year: int, **figures: float) -> int:
        d = Declaration.model_validate(
            {"enterprise_id": enterprise, "category_code": category, "year": year, **figures}
        )
        self.session.add(d)
        self.session.flush()
        assert d.id is not None
        return d.id

    def licence(
        self,
        enterprise: int,
        category: str,
        activity: LicenceActivity = LicenceActivity.utilisation,
        capacity: float = 1_000_000,
        valid_from: date = date(2019, 1, 1),
        valid_to: date | None = None,
    ) -> int:
        lic = Licence(
            enterprise_id=enterprise,
            category_code=category,
            activity=activity,
            capacity_t=t(capacity),
            licence_no=f"L{self.n}-{category}-{activity}-{valid_from}",
            valid_from=valid_from,
            valid_to=valid_to,
        )
        self.session.add(lic)
        self.session.flush()
        assert lic.id is not None
        return lic.id

    def batch(
        self,
        shipper: int,
        receiver: int,
        category: str,
        dispatched: float,
        received: float | None = None,
        *,
        year: int = 2023,
        route: Route = Route.cement_admixture,
        status: ManifestStatus = ManifestStatus.received,
        at: datetime | None = None,
        rejected: float | None = None,
    ) -> int:
        self.n += 1
        when = at or datetime(year, 6, 1, 4, 0, tzinfo=UTC)
        b = Manifest(
            number=f"T{year}-{self.n:07d}",
            shipper_id=shipper,
            receiver_id=receiver,
            category_code=category,
            route=route,
            year=year,
            status=status,
            weight_dispatched_t=t(dispatched),
            weight_received_t=t(received),
            rejected_t=t(rejected),
            dispatched_at=None if status == ManifestStatus.draft else when,
            received_at=when
            if status in (ManifestStatus.received, ManifestStatus.corrected, ManifestStatus.rejected)
            else None,
            created_at=when,
        )
        self.session.add(b)
        self.session.flush()
        assert b.id is not None
        return b.id


@dataclass
class Province:
    """A small province: A (Panzhihua East, park P1), B (Panzhihua Renhe, no park), C (Deyang, park P2)."""

    a: int
    b: int
    c: int
    p1: int
    p2: int


def small_province(session: Session) -> Province:
    """Declarations of 2023 with hand-computed rates (see the tests)."""
    build = Builder(session)
    p1, p2 = build.park("园区一", PZH_EAST), build.park("园区二", DY_JINGYANG)
    a, b, c = build.enterprise(PZH_EAST, p1), build.enterprise(PZH_RENHE), build.enterprise(DY_JINGYANG, p2)
    # A: generated 100, utilised 90 of which 10 from prior-year stock (the 81.82% example).
    build.declare(a, "SW01", 2023, generated_t=100, utilised_t=90, utilised_prior_t=10)
    build.declare(b, "SW02", 2023, generated_t=50, utilised_t=20)
    build.declare(c, "SW01", 2023, generated_t=200, utilised_t=150)
    # Outside the Sichuan target set: tailings and sludge.
    build.declare(a, "SW05", 2023, generated_t=1000, utilised_t=100)
    build.declare(b, "SW07", 2023, generated_t=10, utilised_t=10)
    session.commit()
    return Province(a, b, c, p1, p2)


def _rate(session: Session, **kw: Any) -> rates.RateReport:
    return rates.utilisation(session=session, principal=kw.pop("principal", SYSTEM), year=kw.pop("year", 2023), **kw)


# --- the formula ----------------------------------------------------------------------------------------------


def test_prior_year_stock_is_in_the_denominator(session: Session) -> None:
    build = Builder(session)
    e = build.enterprise(PZH_EAST)
    build.declare(e, "SW01", 2023, generated_t=100, utilised_t=90, utilised_prior_t=10)
    session.commit()
    report = _rate(session, enterprise=e)
    assert report.rate is not None and report.rate == pytest.approx(90 / 110, rel=1e-12)
    assert round(report.rate * 100, 2) == 81.82
    assert report.rate != pytest.approx(0.9)
    assert (report.generated_t, report.utilised_t, report.utilised_prior_t) == (100, 90, 10)
    assert percent_truncated(report.rate) == Decimal("81.8")


def test_rate_of_and_zero_denominator() -> None:
    assert rate_of(100, 90, 10) == 90 / 110
    assert rate_of(0, 0, 0) is None
    assert rate_of(0, 5, 5) == 1.0  # only stock drawn down: the prior stock is the whole denominator


def test_rate_is_null_with_nothing_to_divide_by(session: Session) -> None:
    build = Builder(session)
    e = build.enterprise(PZH_EAST)
    build.declare(e, "SW01", 2023, generated_t=0, utilised_t=0)
    session.commit()
    report = _rate(session, enterprise=e)
    assert report.rate is None and report.declarations == 1 and report.generated_t == 0
    empty = _rate(session, year=2019)
    assert empty.rate is None and empty.generated_t == 0 and empty.declarations == 0 and not empty.over_100


def test_rate_above_100_is_kept_not_clipped(session: Session) -> None:
    build = Builder(session)
    e = build.enterprise(PZH_EAST)
    build.declare(e, "SW01", 2023, generated_t=100, utilised_t=130)
    session.commit()
    report = _rate(session, region=PZH)
    assert report.rate == pytest.approx(1.3) and report.over_100


def test_percent_truncated_truncates_and_survives_binary_floats() -> None:
    assert percent_truncated(0.816) == Decimal("81.6")  # 0.816 * 100 is 81.59999... in binary
    assert percent_truncated(0.71599999) == Decimal("71.5")
    assert percent_truncated(0.99999) == Decimal("99.9")
    assert percent_truncated(1.0) == Decimal("100.0")
    assert percent_truncated(0.0) == Decimal("0.0")
    assert percent_truncated(90 / 110, places=2) == Decimal("81.81")


# --- scopes, category sets and breakdowns ---------------------------------------------------------------------


def test_scopes_on_hand_built_data(session: Session) -> None:
    w = small_province(session)
    cases: list[tuple[dict[str, Any], float, str]] = [
        ({}, (90 + 20 + 150) / (110 + 50 + 200), "province"),
        ({"region": "510000"}, (90 + 20 + 150) / (110 + 50 + 200), "province"),
        ({"region": PZH}, (90 + 20) / (110 + 50), "prefecture"),
        ({"region": PZH_EAST}, 90 / 110, "county"),
        ({"region": PZH_RENHE}, 20 / 50, "county"),
        ({"region": DY}, 150 / 200, "prefecture"),
        ({"park": w.p1}, 90 / 110, "park"),
        ({"park": w.p2}, 150 / 200, "park"),
        ({"enterprise": w.b}, 20 / 50, "enterprise"),
    ]
    for scope, expected, kind in cases:
        report = _rate(session, **scope)
        assert report.rate == pytest.approx(expected, rel=1e-12), scope
        assert report.scope.kind == kind
    by_code = _rate(session, enterprise=session.get(Enterprise, w.c).uscc)  # type: ignore[union-attr]
    assert by_code.rate == pytest.approx(0.75) and by_code.scope.key == str(w.c)


def test_default_set_excludes_tailings_and_is_shown(session: Session) -> None:
    small_province(session)
    report = _rate(session, region=PZH)
    assert report.categories == ["SW01", "SW02", "SW03", "SW04", "SW06", "SW09", "SW10", "SW11"]
    assert report.category_source == "default" and report.series == "sichuan-bulk-excl-tailings"
    assert report.generated_t == 150  # A's SW01 and B's SW02: A's tailings and B's sludge are not counted


def test_explicit_category_sets(session: Session) -> None:
    small_province(session)
    tailings = _rate(session, categories=["SW05"])
    assert tailings.rate == pytest.approx(100 / 1000) and tailings.categories == ["SW05"]
    assert tailings.category_source == "explicit" and tailings.target is None and tailings.next_target is None
    mixed = _rate(session, categories=["sw01", "SW05", "SW01"])
    assert mixed.rate == pytest.approx((90 + 150 + 100) / (110 + 200 + 1000))
    assert mixed.categories == ["SW01", "SW05"]


def test_unknown_category_and_ambiguous_sets_are_refused(session: Session) -> None:
    with pytest.raises(InvalidInput) as exc:
        _rate(session, categories=["SW01", "SW99"])
    assert exc.value.field == "categories" and "SW99" in exc.value.message
    with pytest.raises(InvalidInput) as exc:
        _rate(session, categories=[" "])
    assert exc.value.field == "categories"
    with pytest.raises(InvalidInput) as exc:
        _rate(session, categories=["SW01"], target="sichuan-2025")
    assert exc.value.field == "categories"
    with pytest.raises(InvalidInput) as exc:
        _rate(session, target="no-such-target")
    assert exc.value.field == "target"
    with pytest.raises(InvalidInput) as exc:
        _rate(session, region=PZH, park=1)
    assert exc.value.field == "park"
    with pytest.raises(InvalidInput) as exc:
        _rate(session, by="county")
    assert exc.value.field == "by"


def test_unknown_scopes_are_not_found(session: Session) -> None:
    for scope, field in (
        ({"region": "519999"}, "region"),
        ({"park": 9999}, "park"),
        ({"enterprise": 9999}, "enterprise"),
    ):
        with pytest.raises(NotFound) as exc:
            _rate(session, **scope)
        assert exc.value.field == field


def _assert_rows_sum_to_total(report: rates.RateReport) -> None:
    assert report.rows is not None
    for key in ("generated_t", "utilised_t", "utilised_prior_t", "manifest_utilised_t"):
        assert sum(getattr(r, key) for r in report.rows) == pytest.approx(getattr(report, key)), key
    assert sum(r.declarations for r in report.rows) == report.declarations


def test_breakdown_by_category(session: Session) -> None:
    small_province(session)
    report = _rate(session, by="category")
    assert report.rows is not None
    rows = {r.key: r for r in report.rows}
    assert list(rows) == report.categories  # every code of the set, with or without data
    assert rows["SW01"].rate == pytest.approx((90 + 150) / (110 + 200))
    assert rows["SW02"].rate == pytest.approx(20 / 50)
    assert rows["SW04"].rate is None and rows["SW04"].generated_t == 0
    assert rows["SW01"].name_en == "Smelting slag"
    _assert_rows_sum_to_total(report)


def test_breakdown_by_region_goes_one_level_down(session: Session) -> None:
    small_province(session)
    province = _rate(session, by="region")
    assert province.rows is not None and len(province.rows) == 21  # every prefecture, with or without data
    rows = {r.key: r for r in province.rows}
    assert rows[PZH].rate == pytest.approx(110 / 160) and rows[PZH].name_en == "Panzhihua"
    assert rows[DY].rate == pytest.approx(150 / 200)
    assert rows["510100"].rate is None
    _assert_rows_sum_to_total(province)
    city = _rate(session, region=PZH, by="region")
    assert city.rows is not None
    counties = {r.key: r.rate for r in city.rows if r.declarations}
    assert counties == {PZH_EAST: pytest.approx(90 / 110), PZH_RENHE: pytest.approx(20 / 50)}
    assert all(r.key and r.key.startswith("5104") for r in city.rows)
    _assert_rows_sum_to_total(city)
    with pytest.raises(InvalidInput) as exc:
        _rate(session, region=PZH_EAST, by="region")
    assert exc.value.field == "by"


def test_breakdown_by_park_keeps_enterprises_outside_parks(session: Session) -> None:
    w = small_province(session)
    report = _rate(session, by="park")
    assert report.rows is not None
    rows = {r.key: r for r in report.rows}
    assert set(rows) == {str(w.p1), str(w.p2), None}
    assert rows[str(w.p1)].rate == pytest.approx(90 / 110) and rows[str(w.p1)].name_zh == "园区一"
    assert rows[None].rate == pytest.approx(20 / 50)  # B lies in no park
    _assert_rows_sum_to_total(report)
    by_enterprise = _rate(session, region=PZH, by="enterprise")
    assert by_enterprise.rows is not None
    assert {r.key for r in by_enterprise.rows} == {str(w.a), str(w.b)}
    _assert_rows_sum_to_total(by_enterprise)


# --- the bottom-up manifest figure ----------------------------------------------------------------------------


def test_bottom_up_counts_received_tonnes_at_licensed_utilisers(session: Session) -> None:
    build = Builder(session)
    g = build.enterprise(PZH_EAST)
    licensed, unlicensed, lapsed, other_cat = (build.enterprise(PZH_RENHE) for _ in range(4))
    build.licence(licensed, "SW01")
    build.licence(lapsed, "SW01", valid_to=date(2023, 3, 31))
    build.licence(other_cat, "SW02")
    build.declare(g, "SW01", 2023, generated_t=100, utilised_t=80)
    build.batch(g, licensed, "SW01", 31, 30)  # counted: 30
    build.batch(g, licensed, "SW01", 5, 5, route=Route.disposal)  # not a utilisation route
    build.batch(g, licensed, "SW01", 6, 6, route=Route.storage)  # storage: not the final step
    build.batch(g, unlicensed, "SW01", 10, 10)  # no licence
    build.batch(g, lapsed, "SW01", 4, 4, at=datetime(2023, 2, 1, tzinfo=UTC))  # counted: 4, licence still valid
    build.batch(g, lapsed, "SW01", 9, 9, at=datetime(2023, 6, 1, tzinfo=UTC))  # licence expired
    build.batch(g, other_cat, "SW01", 7, 7)  # licensed for another category
    build.batch(g, licensed, "SW01", 20, None, status=ManifestStatus.dispatched)  # not received yet
    build.batch(g, licensed, "SW01", 8, None, status=ManifestStatus.rejected)  # refused
    build.batch(g, licensed, "SW01", 6.5, 6, status=ManifestStatus.corrected)  # counted: 6
    build.batch(g, licensed, "SW01", 3, 3, status=ManifestStatus.draft)  # never left
    build.batch(g, licensed, "SW01", 50, 50, year=2022)  # another year
    build.batch(licensed, g, "SW01", 11, 11)  # the other way: g receives, and holds no licence
    session.commit()
    report = _rate(session, enterprise=g)
    assert report.manifest_utilised_t == pytest.approx(30 + 4 + 6)
    assert report.gap_t == pytest.approx(80 - 40)
    assert report.gap_pct == pytest.approx(50.0)
    # A scope's figure counts what the generators in it shipped.
    assert _rate(session, region=PZH_EAST).manifest_utilised_t == pytest.approx(40)
    assert _rate(session, region=PZH_RENHE).manifest_utilised_t == 0
    build.licence(g, "SW01")
    session.commit()
    # The 11 t sent back name no source: they draw first on the 6 t of g's still held in storage there (credited
    # to g, the generator), and the other 5 t are the receiver's own.
    assert _rate(session, region=PZH_RENHE).manifest_utilised_t == pytest.approx(5)
    assert _rate(session, region=PZH_EAST).manifest_utilised_t == pytest.approx(40 + 6)
    assert _rate(session, region=PZH).manifest_utilised_t == pytest.approx(51)


def test_licence_validity_is_judged_on_the_local_receipt_date(session: Session) -> None:
    build = Builder(session)
    g, u = build.enterprise(PZH_EAST), build.enterprise(PZH_RENHE)
    build.licence(u, "SW01", valid_to=date(2022, 12, 31))
    # 15:00 UTC is 23:00 in Sichuan on the 31st (valid); 17:00 UTC is 01:00 on 1 January (lapsed).
    build.batch(g, u, "SW01", 2, 2, year=2022, at=datetime(2022, 12, 31, 15, 0, tzinfo=UTC))
    build.batch(g, u, "SW01", 5, 5, year=2022, at=datetime(2022, 12, 31, 17, 0, tzinfo=UTC))
    build.declare(g, "SW01", 2022, generated_t=10, utilised_t=7)
    session.commit()
    assert _rate(session, enterprise=g, year=2022).manifest_utilised_t == pytest.approx(2)


def test_bottom_up_in_breakdowns(session: Session) -> None:
    build = Builder(session)
    g1, g2, u = build.enterprise(PZH_EAST), build.enterprise(DY_JINGYANG), build.enterprise(PZH_RENHE)
    build.licence(u, "SW01")
    build.licence(u, "SW02")
    build.declare(g1, "SW01", 2023, generated_t=100, utilised_t=50)
    build.declare(g2, "SW02", 2023, generated_t=100, utilised_t=50)
    build.batch(g1, u, "SW01", 12, 12)
    build.batch(g2, u, "SW02", 25, 25)
    session.commit()
    by_region = {r.key: r.manifest_utilised_t for r in _rate(session, by="region").rows or []}
    assert by_region[PZH] == pytest.approx(12) and by_region[DY] == pytest.approx(25)
    by_cat = {r.key: r.manifest_utilised_t for r in _rate(session, by="category").rows or []}
    assert by_cat["SW01"] == pytest.approx(12) and by_cat["SW02"] == pytest.approx(25)


# --- targets: the path and the projection -----------------------------------------------------------------------

SICHUAN = [
    TargetPoint(name="sichuan-2025", year=2025, value=0.78),
    TargetPoint(name="sichuan-2030", year=2030, value=0.82),
]


def test_target_path_is_linear_between_targets() -> None:
    assert path_value(SICHUAN, 2025) == 0.78
    assert path_value(SICHUAN, 2030) == 0.82
    assert path_value(SICHUAN, 2027) == pytest.approx(0.78 + (0.82 - 0.78) * 2 / 5)
    assert path_value(SICHUAN, 2027) == pytest.approx(0.796)
    assert path_value(SICHUAN, 2024) is None and path_value(SICHUAN, 2031) is None
    three = [*SICHUAN, TargetPoint(name="x", year=2035, value=0.90)]
    assert path_value(three, 2033) == pytest.approx(0.82 + 0.08 * 3 / 5)
    assert path_value([], 2025) is None


def test_next_target() -> None:
    assert next_target(SICHUAN, 2024) == SICHUAN[0]
    assert next_target(SICHUAN, 2025) == SICHUAN[0]
    assert next_target(SICHUAN, 2025, strictly_after=True) == SICHUAN[1]
    assert next_target(SICHUAN, 2031) is None


def test_projection_least_squares_by_hand() -> None:
    series = [(2020, 0.60), (2021, 0.62), (2022, 0.65), (2023, 0.66), (2024, 0.70), (2019, None)]
    p = project(series, SICHUAN)
    # x - 2022 = -2..2, mean rate 0.646; sum(dx*dy) = 0.24, sum(dx^2) = 10: slope 0.024 a year.
    assert p.years == [2020, 2021, 2022, 2023, 2024]
    assert p.slope_per_year == pytest.approx(0.024)
    assert p.mean_year == 2022 and p.mean_rate == pytest.approx(0.646)
    assert p.target_year == 2025 and p.target == 0.78 and p.target_name == "sichuan-2025"
    assert p.projected_rate == pytest.approx(0.646 + 0.024 * 3)  # 0.718
    assert p.meets is False and p.margin_pts == pytest.approx((0.718 - 0.78) * 100)
    # Reproducible from what it returns.
    assert p.mean_rate is not None and p.slope_per_year is not None and p.target_year is not None
    assert p.mean_rate + p.slope_per_year * (p.target_year - p.mean_year) == pytest.approx(p.projected_rate)


def test_projection_window_and_edge_cases() -> None:
    series = [(2020, 0.60), (2021, 0.62), (2022, 0.65), (2023, 0.66), (2024, 0.70)]
    last_two = project(series, SICHUAN, window=2)
    assert last_two.years == [2023, 2024]
    assert last_two.projected_rate == pytest.approx(0.68 + 0.04 * 1.5)  # 0.74
    fast = project([(2023, 0.76), (2024, 0.79)], SICHUAN)
    assert fast.meets is True and fast.margin_pts == pytest.approx((0.82 - 0.78) * 100)
    after_2025 = project([(2025, 0.78), (2026, 0.79)], SICHUAN)
    assert after_2025.target_year == 2030 and after_2025.projected_rate == pytest.approx(0.785 + 0.01 * 4.5)
    lonely = project([(2024, 0.7), (2023, None)], SICHUAN)
    assert lonely.projected_rate is None and lonely.reason and "at least 2" in lonely.reason
    late = project([(2030, 0.8), (2031, 0.81)], SICHUAN)
    assert late.projected_rate is None and late.slope_per_year == pytest.approx(0.01) and late.reason
    with pytest.raises(InvalidInput):
        project(series, SICHUAN, window=1)


def test_report_target_and_next_target_from_the_seeded_series(session: Session) -> None:
    small_province(session)
    assert _rate(session, year=2023).target is None  # before the first target
    report = _rate(session, year=2027)
    assert report.target == pytest.approx(0.796) and report.target_scope == "510000"
    assert report.next_target is not None and report.next_target.name == "sichuan-2030"
    assert _rate(session, year=2025, target="sichuan-2025").target == 0.78
    assert _rate(session, year=2031).target is None and _rate(session, year=2031).next_target is None


def test_most_specific_targets_and_a_named_target_with_its_own_set(session: Session) -> None:
    w = small_province(session)
    local = Target(name="pzh-2025", series="sichuan-bulk-excl-tailings", scope_adcode=PZH, year=2025, value=0.70)
    own = Target(name="pzh-slag-2025", series="pzh-slag", scope_adcode=PZH, year=2025, value=0.5)
    session.add_all([local, own])
    session.flush()
    assert local.id is not None and own.id is not None
    session.add_all(TargetCategory(target_id=local.id, category_code=c) for c in ("SW01", "SW02"))
    session.add(TargetCategory(target_id=own.id, category_code="SW01"))
    session.commit()
    city = _rate(session, region=PZH, year=2025)
    assert city.target == 0.70 and city.target_scope == PZH and city.categories == ["SW01", "SW02"]
    assert _rate(session, region=DY, year=2025).target == 0.78  # Deyang has none: the province's apply
    assert _rate(session, park=w.p1, year=2025).target_scope == PZH  # a park takes its region's
    named = _rate(session, region=PZH, year=2023, target="pzh-slag-2025")
    assert named.categories == ["SW01"] and named.category_source == "target" and named.series == "pzh-slag"
    assert named.rate == pytest.approx(90 / 110)


def test_trend_with_path_and_projection(session: Session) -> None:
    build = Builder(session)
    e = build.enterprise(PZH_EAST)
    # Rates 0.60, 0.62, (no 2022), 0.66, 0.70 from generated 100 and the utilised tonnes below.
    for year, used in ((2020, 60), (2021, 62), (2023, 66), (2024, 70)):
        build.declare(e, "SW01", year, generated_t=100, utilised_t=used)
    session.commit()
    trend = rates.rate_trend(session=session, principal=SYSTEM, region=PZH)
    assert [y.year for y in trend.years] == [2020, 2021, 2022, 2023, 2024]
    assert [y.rate for y in trend.years] == [pytest.approx(v) if v else None for v in (0.6, 0.62, None, 0.66, 0.7)]
    p = trend.projection
    assert p.years == [2020, 2021, 2023, 2024]
    # Hand fit: mean year 2022, mean rate 0.645; sum(dx*dy) = 0.09+0.025+0.015+0.11 = 0.24, sum(dx^2) = 10.
    assert p.slope_per_year == pytest.approx(0.024)
    assert p.projected_rate == pytest.approx(0.645 + 0.024 * 3)
    assert p.target_year == 2025 and p.meets is False
    assert [t.year for t in trend.targets] == [2025, 2030]
    ahead = rates.rate_trend(session=session, principal=SYSTEM, region=PZH, from_year=2024, to_year=2027)
    assert [(y.year, y.target) for y in ahead.years] == [
        (2024, None),
        (2025, 0.78),
        (2026, pytest.approx(0.788)),
        (2027, pytest.approx(0.796)),
    ]
    with pytest.raises(InvalidInput) as exc:
        rates.rate_trend(session=session, principal=SYSTEM, from_year=2025, to_year=2020)
    assert exc.value.field == "from"


# --- scoping by role --------------------------------------------------------------------------------------------


def test_principals_see_only_their_scope(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    p = w.principals
    # Each world enterprise declared SW01 2023: generated 100, utilised 80.
    assert _rate(session, principal=p["ent1"]).scope.key == str(w.e1)
    assert _rate(session, principal=p["ent1"]).rate == pytest.approx(0.8)
    assert _rate(session, principal=p["park_a"]).scope.kind == "park"
    assert _rate(session, principal=p["bureau_pzh"]).scope.key == PZH
    assert _rate(session, principal=p["bureau_sc"]).generated_t == 200
    assert _rate(session, principal=p["bureau_pzh"]).generated_t == 100
    assert _rate(session, principal=p["bureau_sc"], region=DY).generated_t == 100
    refused: list[tuple[str, dict[str, Any], type[Exception]]] = [
        ("ent1", {"enterprise": w.e3}, NotFound),
        ("ent1", {"region": PZH}, Forbidden),
        ("ent1", {"park": w.park_a}, NotFound),
        ("park_a", {"park": w.park_b}, NotFound),
        ("park_a", {"region": PZH}, Forbidden),
        ("bureau_pzh", {"region": DY}, Forbidden),
        ("bureau_pzh", {"region": "510000"}, Forbidden),
        ("bureau_pzh", {"park": w.park_b}, NotFound),
        ("bureau_pzh", {"enterprise": w.e3}, NotFound),
        ("bureau_dy", {"enterprise": w.e1}, NotFound),
    ]
    for role, scope, error in refused:
        with pytest.raises(error):
            _rate(session, principal=p[role], **scope)
    assert _rate(session, principal=p["bureau_pzh"], park=w.park_a).rate == pytest.approx(0.8)
    assert _rate(session, principal=p["bureau_pzh"], enterprise=w.e1).rate == pytest.approx(0.8)


def test_api_rates(client: TestClient, session: Session) -> None:
    w = build_world(session)

    def get(role: str, path: str, **params: Any) -> Any:
        return client.get(path, params=params, headers={"Authorization": f"Bearer {w.tokens[role]}"})

    own = get("ent1", "/api/v1/rates", year=2023)
    assert own.status_code == 200
    body = own.json()
    for key in ("rate", "generated_t", "utilised_t", "utilised_prior_t", "target", "categories", "next_target"):
        assert key in body
    assert body["rate"] == pytest.approx(0.8) and body["scope"]["kind"] == "enterprise"
    assert get("ent1", "/api/v1/rates", year=2023, enterprise=w.e3).status_code == 404
    assert get("ent1", "/api/v1/rates", year=2023, region=PZH).status_code == 403
    bad = get("admin", "/api/v1/rates", year=2023, categories="SW01,SW99")
    assert bad.status_code == 422 and bad.json()["field"] == "categories"
    rows = get("bureau_sc", "/api/v1/rates", year=2023, by="region").json()["rows"]
    assert {r["key"]: r["generated_t"] for r in rows if r["generated_t"]} == {PZH: 100, DY: 100}
    for row in rows:
        assert {"key", "name_zh", "rate", "generated_t", "utilised_t", "utilised_prior_t", "target"} <= set(row)
    trend = get("bureau_pzh", "/api/v1/rates/trend", **{"from": 2022, "to": 2025}).json()
    assert [y["year"] for y in trend["years"]] == [2022, 2023, 2024, 2025]
    assert trend["years"][1]["rate"] == pytest.approx(0.8) and trend["years"][3]["target"] == 0.78
    assert trend["projection"]["reason"]  # one year with data is no trend
