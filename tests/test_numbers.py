"""Numbers as a bureau writes them: the formatter's rules, the setting, and one tonne format on every main page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.main import create_app
from app.settings import Settings
from flows.kernel.messages import msg
from flows.kernel.numbers import MINUS, Numbers, wan_threshold
from tests.world import World, build_world

ZH, EN = Numbers("zh-CN"), Numbers("en")
TEMPLATES = Path(__file__).resolve().parents[1] / "app" / "templates"
# A tonne figure as every page writes it: sign, thousands, two decimals, one space, the unit.
ONE_FORMAT = {
    "zh-CN": re.compile(rf"[{MINUS}+]?\d{{1,3}}(,\d{{3}})*\.\d{{2}} (吨|万吨)"),
    "en": re.compile(rf"[{MINUS}+]?\d{{1,3}}(,\d{{3}})*\.\d{{2}} (t|kt|Mt)"),
}
# Anything that looks like a weight on a page: a number (any style) followed by a tonne unit.
A_WEIGHT = {
    "zh-CN": re.compile(r"[−+-]?[\d,]*\d(\.\d+)? ?(万吨|吨)(?![/／])"),
    "en": re.compile(r"[−+-]?[\d,]*\d(\.\d+)? ?(t|kt|Mt)\b(?! a year)"),
}


@pytest.mark.parametrize(
    ("value", "zh", "en"),
    [
        (Decimal("8515.74"), "8,515.74 吨", "8,515.74 t"),
        (59_661_462.6, "5,966.15 万吨", "59.66 Mt"),
        (12_345, "1.23 万吨", "12.35 kt"),
        (Decimal(0), "0.00 吨", "0.00 t"),
        (2.675, "2.68 吨", "2.68 t"),  # half-up on the decimal written, not on the binary float (2.67499...)
        (0.125, "0.13 吨", "0.13 t"),
        (None, "–", "–"),
    ],
)
def test_tonnes_in_either_language(value: Decimal | float | int | None, zh: str, en: str) -> None:
    assert (ZH.tonnes(value), EN.tonnes(value)) == (zh, en)


def test_the_threshold_and_the_rounding_at_its_boundary() -> None:
    # The unit follows the figure as printed: 9,999.995 t rounds half-up to 10,000.00 t, so it is 1.00 万吨.
    assert ZH.tonnes(Decimal("9999.994")) == "9,999.99 吨"
    assert ZH.tonnes(Decimal("9999.995")) == "1.00 万吨"
    assert EN.tonnes(Decimal("9999.995")) == "10.00 kt"
    assert ZH.tonnes(Decimal("10000")) == "1.00 万吨"
    assert ZH.tonnes(Decimal("12345.5")) == "1.23 万吨"
    assert ZH.tonnes(Decimal("12350")) == "1.24 万吨"  # 1.235 万吨, half-up
    # English moves from kt to Mt where the kilotonnes would print as 1,000.00.
    assert EN.tonnes(Decimal("999994.9")) == "999.99 kt"
    assert EN.tonnes(Decimal("999995")) == "1.00 Mt"
    # The threshold is a setting: from 1,000 t on, or never below a billion.
    assert Numbers("zh-CN", Decimal(1000)).tonnes(1500) == "0.15 万吨"
    assert Numbers("en", Decimal(10**9)).tonnes(59_661_462.6) == "59,661,462.60 t"


def test_negative_and_signed_tonnes() -> None:
    assert ZH.tonnes(-59_661_462.6) == f"{MINUS}5,966.15 万吨"
    assert EN.tonnes(Decimal("-0.8"), signed=True) == f"{MINUS}0.80 t"
    assert ZH.tonnes(Decimal("1532.98"), signed=True) == "+1,532.98 吨"
    # A tiny difference that prints as zero is zero: no minus, no plus.
    assert ZH.tonnes(Decimal("-0.004"), signed=True) == "0.00 吨"
    assert EN.tonnes(Decimal("-9999.995")) == f"{MINUS}10.00 kt"


def test_rates_percentages_points_and_counts() -> None:
    # A rate as published is truncated, never rounded up (81.6 from 0.816, not 81.5999...).
    rates = (ZH.rate(0.816), ZH.rate(0.87999), ZH.rate(Decimal("0.78")), ZH.rate(None))
    assert rates == ("81.6%", "87.9%", "78.0%", "–")
    assert EN.percent(38.05, signed=True) == "+38.1%"
    assert EN.percent(-2.66, signed=True) == f"{MINUS}2.7%"
    assert EN.percent(-0.04, signed=True) == "0.0%"
    assert (ZH.points(-0.75), EN.points(-0.75), EN.points(1.25), EN.points(0)) == (
        f"{MINUS}0.8 个百分点",
        f"{MINUS}0.8 pt",
        "+1.3 pt",
        "0.0 pt",
    )
    assert (ZH.count(1234567), ZH.count(None)) == ("1,234,567", "–")


def test_domain_messages_write_tonnes_as_the_pages_do() -> None:
    """A finding names its tonnes `{name_t:t}`: the same unit, decimals and minus as the page around it."""
    finding = msg(
        "waste.flag.balance_break",
        category="SW01",
        generated_t=59_661_462.6,
        accounted_t="1234.5",
        residual_t=Decimal("-1823"),
        tolerance_t=10,
    )
    assert (
        finding.render("zh-CN")
        == f"SW01：产生 5,966.15 万吨，去向合计 1,234.50 吨（相差 {MINUS}1,823.00 吨，容差 10.00 吨）"
    )
    assert finding.render("en").startswith("SW01: generated 59.66 Mt but the uses account for 1,234.50 t")
    with wan_threshold(Decimal(10**9)):
        assert "产生 59,661,462.60 吨" in finding.render("zh-CN")
    # A parameter in tonnes without the `t` format is written as before (notices quote weights as they were typed).
    assert "12.5吨" in msg("notices.kind.batch_awaiting", shipper="A", number="N", category="C", weight_t=12.5).render(
        "zh-CN"
    )


def test_no_template_formats_a_number_on_its_own() -> None:
    """Every figure goes through app.numbers (tonnes, count, pct, percent, points): no ad-hoc formats left."""
    ad_hoc = re.compile(r"\"\{:[^}]*\}\"\.format|\"%[+.\d]*f|\| *round\b|(?<!Math\.)\bround\(")
    found = [
        f"{path.name}:{n}: {line.strip()[:80]}"
        for path in sorted(TEMPLATES.glob("*.html"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        # Coordinates are not figures: they keep their five decimals.
        if ad_hoc.search(line) and "e.lon" not in line
    ]
    assert found == []


def _main_pages(w: World) -> list[str]:
    return [
        "/dashboard?year=2024",
        "/audit?year=2024",
        f"/audit?year=2024&enterprise={w.e1}",
        "/audit/rows?year=2024&kind=declarations",
        "/audit/rows?year=2024&kind=batches",
        "/audit/flags?year=2024",
        "/map?year=2024",
        "/sankey?year=2024",
        "/batches",
        f"/batches/{w.batch_received}",
        f"/enterprises/{w.e1}?year=2024",
        f"/parks/{w.park_a}?year=2024",
    ]


def _page_text(body: str) -> str:
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_main_page_writes_tonnes_one_way(client: TestClient, session: Session, lang: str) -> None:
    w = build_world(session)
    headers = {"Authorization": f"Bearer {w.tokens['admin']}", "Accept-Language": lang}
    seen = 0
    for url in _main_pages(w):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, url
        text = _page_text(response.text)
        weights = [m.group(0) for m in A_WEIGHT[lang].finditer(text)]
        odd = [weight for weight in weights if not ONE_FORMAT[lang].fullmatch(weight)]
        assert odd == [], (url, odd)
        seen += len(weights)
    assert seen > 50


@pytest.fixture
def low_threshold_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"wan_t_threshold": Decimal(100)}))) as c:
        yield c


def test_the_threshold_is_the_setting_of_the_app(low_threshold_client: TestClient, session: Session) -> None:
    w = build_world(session)
    for lang, generated in (("zh-CN", "0.02 万吨"), ("en", "0.20 kt")):
        headers = {"Authorization": f"Bearer {w.tokens['admin']}", "Accept-Language": lang}
        page = low_threshold_client.get("/dashboard", params={"year": 2023}, headers=headers).text
        assert re.search(rf'data-figure="generated_t">{re.escape(generated)}<', page), lang
        # The page tells its scripts (charts, map tooltips) the same threshold.
        assert 'data-wan-threshold="100"' in page
