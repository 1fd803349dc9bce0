"""Numbers in a real headless Chromium on the Sichuan demo: the dashboard and the audit page write tonnes in 万吨 (Mt
in English), the trend chart's axes and tooltip write years as 2025 and rates to 0.1 pt, and the page's script writes
tonnes exactly as the server does. Screenshots of both pages, desktop and phone, in zh-CN and English."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flows.kernel.numbers import Numbers
from tests.browser import DemoSite, browser_page, playwright_entry, screenshot, sign_in, wait_until
from tests.test_numbers import ONE_FORMAT

SIZES = (("desktop", 1280, 900), ("phone", 390, 844))
# The trend chart's own formatters, called as ECharts calls them.
CHART_FORMATTERS = """() => {
    const chart = echarts.getInstanceByDom(document.getElementById("trend-chart"));
    const option = chart.getOption();
    return {
        year: option.xAxis[0].axisLabel.formatter(2025),
        pointer: option.xAxis[0].axisPointer.label.formatter({value: 2025}),
        tooltip: option.tooltip[0].valueFormatter(74.48),
        axis: option.yAxis[0].axisLabel.formatter(80),
    };
}"""
SAMPLES = ["8515.74", "9999.994", "9999.995", "12345", "999995", "59661462.6", "-1532.98", "2.675", "0"]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_dashboard_and_audit_write_numbers_as_a_bureau_does(demo_site: DemoSite, lang: str) -> None:
    big = "万吨" if lang == "zh-CN" else "Mt"
    with playwright_entry()() as pw:
        for size, width, height in SIZES:
            with browser_page(pw, demo_site.url, locale=lang, width=width, height=height) as (page, requests, errors):
                sign_in(page, demo_site, "auditor.sichuan", then="/dashboard")
                generated = page.locator('[data-figure="generated_t"]').inner_text()
                assert ONE_FORMAT[lang].fullmatch(generated) and generated.endswith(big), generated
                page.wait_for_selector('#trend-chart[data-chart-ready="true"]')
                assert page.evaluate(CHART_FORMATTERS) == {
                    "year": "2025",
                    "pointer": "2025",
                    "tooltip": "74.4%",  # a rate as published: truncated, not rounded up
                    "axis": "80%",
                }
                # The tooltip as a reader sees it: the year hovered, never 2,025.00.
                box = page.locator("#trend-chart").bounding_box()
                assert box is not None
                page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
                wait_until(page, "() => /\\b20\\d\\d\\b/.test(document.querySelector('#trend-chart').innerText)")
                assert "," not in page.locator("#trend-chart").inner_text().split("\n")[0]
                # The script writes tonnes as the server does (map and Sankey tooltips use it).
                written = page.evaluate("(values) => values.map((v) => window.circuflowNumbers.tonnes(v))", SAMPLES)
                assert written == [Numbers(lang).tonnes(Decimal(v)) for v in SAMPLES]
                page.mouse.move(0, 0)
                screenshot(page, f"numbers-dashboard-{lang}-{size}")

                page.goto(f"{demo_site.url}/audit")
                figures = page.locator(".audit-stats [data-figure='generated'], #children-prefecture-table td.num")
                firsts = [t.split("\n")[0].strip() for t in figures.all_inner_texts()]
                texts = [t for t in firsts if t.split(" ")[-1] in ("吨", "万吨", "t", "kt", "Mt")]
                assert len(texts) > 20 and all(ONE_FORMAT[lang].fullmatch(t) for t in texts), texts
                screenshot(page, f"numbers-audit-{lang}-{size}")
                assert not [u for u in requests if not u.startswith(demo_site.url)]
                assert not errors, errors
