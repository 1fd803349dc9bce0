"""A forwarding logged in headless Chromium with its sources and handover, and the chain on the batch pages, at
desktop and phone widths, in Chinese and English. Screenshots: batch-chain-form, batch-chain, batch-chain-first."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.settings import Settings
from flows.access import accounts
from models import Manifest, ManifestShare, ManifestSource
from tests.browser import browser_page, screenshot, session_cookie_for, wait_until
from tests.test_web_batch_chain import CAT, NAMES, build_chain

PHONE = {"width": 390, "height": 844}


def _no_overflow(page: Any) -> None:
    """Nothing of the page runs off a phone's screen sideways (tables scroll inside their own box)."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_log_a_forwarding_and_read_its_chain(
    sync_playwright: Any, live_server: str, client: TestClient, session: Session, settings: Settings
) -> None:
    c = build_chain(client, session)
    m = c.m
    collector = session_cookie_for(session, settings, accounts.get_user(session=session, username="collector"))
    admin = session_cookie_for(session, settings, accounts.get_user(session=session, username="admin"))

    with sync_playwright() as pw:
        with browser_page(pw, live_server, cookie=collector) as (page, requests, errors):
            page.goto(live_server + "/batches/new")
            page.get_by_label("接收单位 （必填）").press_sequentially(NAMES["e2"][0], delay=20)
            wait_until(page, "document.querySelector('#f-receiver-options input:checked') !== null")
            page.get_by_label("废物类别 （必填）").select_option(CAT)
            page.get_by_label("利用处置方式 （必填）").select_option("road_base")
            page.get_by_label("重量 （必填）").fill("12")
            page.get_by_label("车牌号").fill("川D·12345")
            page.get_by_label("运输方式").select_option("road")
            page.get_by_label("包装方式").fill("散装")
            page.get_by_label("重量来源（称重或估算）").select_option("weighed")
            # The lots the collector holds are listed, open, with what is left of each.
            held = page.locator("#held-lots-list")
            assert f"{m['g1']['number']} · {CAT} · 接收 100.00 吨，尚余 10.00 吨" in held.inner_text()
            page.get_by_label("批次号，第 1 行").fill(m["g1"]["number"])
            page.get_by_label("转出量（吨），第 1 行").fill("1,5")
            page.get_by_role("button", name="保存并发运").click()
            error = page.locator("#f-sources-error")
            error.wait_for()
            wait_until(page, "document.querySelector('#f-sources-error').textContent.length > 0")
            assert error.inner_text().startswith(f"来源联单：第 1 行（{m['g1']['number']}）：“1,5”不是以吨计的重量")
            assert page.get_by_label("批次号，第 1 行").get_attribute("aria-invalid") == "true"
            # What was typed stays; one more row, then the second lot pro rata.
            assert page.get_by_label("车牌号").input_value() == "川D·12345"
            page.get_by_label("转出量（吨），第 1 行").fill("8")
            page.get_by_role("button", name="增加一行").click()
            page.get_by_label("批次号，第 3 行").wait_for()
            page.get_by_label("批次号，第 3 行").fill(m["g2"]["number"])
            screenshot(page, "batch-chain-form")
            page.get_by_role("button", name="保存并发运").click()
            page.wait_for_url(re.compile(r".*/batches/\d+\?done=dispatch$"))
            ident = int(page.url.split("/batches/")[1].split("?")[0])
            drew = page.locator("#chain-drew")
            assert "8.00 吨" in drew.locator(f'tr[data-batch="{m["g1"]["id"]}"]').inner_text()
            assert "4.00 吨" in drew.locator(f'tr[data-batch="{m["g2"]["id"]}"]').inner_text()
            assert page.locator('[data-handover="vehicle_plate"]').inner_text().startswith("川D·12345")
            assert not [u for u in requests if not u.startswith(live_server)]
            # The refused submission answers 422, which Chromium logs; nothing else may go wrong.
            assert not [e for e in errors if "status of 422" not in e], errors

        for lang, width in (("zh-CN", 1280), ("en", 1280), ("zh-CN", PHONE["width"]), ("en", PHONE["width"])):
            suffix = "" if width == 1280 else "-phone"
            with browser_page(pw, live_server, cookie=admin, locale=lang, width=width) as (page, _requests, errors):
                page.goto(f"{live_server}/lang/{lang}?next=/batches/{m['p2']['id']}")
                page.wait_for_url(f"{live_server}/batches/{m['p2']['id']}")
                made = page.locator("#chain-made")
                assert made.locator("tbody tr").count() == 2
                screenshot(page, f"batch-chain-{lang}{suffix}")
                page.goto(f"{live_server}/batches/{m['g1']['id']}")
                # Recomputed from the stored shares: what the page prints for G1 is what the rows hold.
                session.expire_all()
                kg: dict[str, int] = {"final": 0, "held": 0, "transit": 0}
                for share in session.exec(select(ManifestShare).where(ManifestShare.origin_id == m["g1"]["id"])):
                    kg[str(share.placement)] += share.kg
                for placement, value in kg.items():
                    shown = page.locator(f'#chain-totals [data-figure="{placement}"]').inner_text()
                    assert Decimal(shown.split()[0].replace(",", "")) == Decimal(value) / 1000
                # Held at the collector and at the plant, final twice, and the 8 t just sent on the road.
                assert page.locator("#chain-ended tbody tr").count() == 5
                assert (
                    page.locator(f'#chain-ended tr[data-batch="{ident}"]').get_attribute("data-placement") == "transit"
                )
                screenshot(page, f"batch-chain-first-{lang}{suffix}")
                if width != 1280:
                    _no_overflow(page)
                assert not errors, errors
            with browser_page(pw, live_server, cookie=collector, locale=lang, width=width) as (page, _requests, errors):
                page.goto(f"{live_server}/lang/{lang}?next=/batches/new")
                page.wait_for_url(f"{live_server}/batches/new")
                assert page.locator("#held-lots-list li").count() == 2
                screenshot(page, f"batch-chain-form-{lang}{suffix}")
                page.goto(f"{live_server}/batches/{ident}/edit")
                assert page.locator("#batch-sealed").is_visible()
                assert page.locator('[data-kept="vehicle_plate"]').inner_text() == "川D·12345"
                assert page.locator('input[name="vehicle_plate"]').count() == 0
                screenshot(page, f"batch-chain-sealed-{lang}{suffix}")
                if width != 1280:
                    _no_overflow(page)
                assert not errors, errors

    session.expire_all()
    sources = session.exec(select(ManifestSource).where(ManifestSource.manifest_id == ident)).all()
    assert {(s.source_id, s.weight_t) for s in sources} == {(m["g1"]["id"], Decimal("8")), (m["g2"]["id"], None)}
    batch = session.get(Manifest, ident)
    assert batch is not None and (batch.vehicle_plate, str(batch.transport_mode)) == ("川D·12345", "road")
