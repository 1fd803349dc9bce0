"""Batch logging in headless Chromium: the shipper logs and dispatches a batch with the keyboard, the receiver
confirms its weight. Screenshots: batch-new, batches, batch."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import Session, func, select

from app.settings import Settings
from flows.access import accounts
from models import Enterprise, Manifest
from models.enums import EnterpriseRole, ManifestStatus, Route
from tests.browser import browser_page, screenshot, session_cookie_for, wait_until
from tests.world import NOW, PASSWORD, World, add_enterprise, build_world, t

NAMES = {
    "e1": ("攀枝花钒钛钢铁有限公司", "Panzhihua Vanadium-Titanium Steel Co., Ltd."),
    "e2": ("攀枝花泰和资源综合利用有限公司", "Panzhihua Taihe Resource Utilisation Co., Ltd."),
    "e3": ("德阳磷化工有限公司", "Deyang Phosphate Chemicals Co., Ltd."),
}


def _prepare(session: Session) -> tuple[World, int]:
    """The world with plausible names, a second "泰和" enterprise to choose between, an account for the receiver
    and a season of batches between them for the list; returns the world and the new enterprise's id."""
    w = build_world(session, with_tokens=False)
    for key, (zh, en) in NAMES.items():
        e = session.get(Enterprise, getattr(w, key))
        assert e is not None
        e.name_zh, e.name_en = zh, en
        session.add(e)
    e4 = add_enterprise(
        session,
        4,
        101.65,
        26.57,
        EnterpriseRole.utiliser,
        ("攀枝花泰和新型建材有限公司", "Panzhihua Taihe Building Materials Co., Ltd."),
    )
    accounts.create_user(
        session=session, username="ent2", password=PASSWORD, role="enterprise", now=NOW, enterprise_id=w.e2
    )
    start = datetime(2024, 9, 2, 1, 30, tzinfo=UTC)
    for n in range(12):
        shipped = start + timedelta(days=7 * n)
        status = ManifestStatus.received if n < 9 else ManifestStatus.dispatched if n < 11 else ManifestStatus.rejected
        weight = 28.0 + (n * 37 % 11)
        received = round(weight * (0.985 if n == 4 else 0.997), 3) if status is ManifestStatus.received else None
        session.add(
            Manifest(
                number=f"SC2024-{100 + n:07d}",
                shipper_id=w.e1 if n % 4 else w.e3,
                receiver_id=w.e2,
                category_code=("SW01", "SW03", "SW02")[n % 3],
                route=(Route.metal_recovery, Route.building_materials, Route.cement_admixture)[n % 3],
                year=2024,
                status=status,
                weight_dispatched_t=t(weight),
                weight_received_t=t(received),
                rejected_t=t(weight if status is ManifestStatus.rejected else None),
                rejection_reason="含水率超标" if status is ManifestStatus.rejected else None,
                dispatched_at=shipped,
                received_at=shipped + timedelta(hours=5) if status is not ManifestStatus.dispatched else None,
                created_at=shipped - timedelta(hours=20),
            )
        )
    session.commit()
    return w, e4


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_log_dispatch_and_receive_a_batch(
    sync_playwright: Any, live_server: str, session: Session, settings: Settings
) -> None:
    w, e4 = _prepare(session)
    shipper = session_cookie_for(session, settings, accounts.get_user(session=session, username="ent1"))
    receiver = session_cookie_for(session, settings, accounts.get_user(session=session, username="ent2"))

    with sync_playwright() as pw:
        with browser_page(pw, live_server, cookie=shipper) as (page, requests, errors):
            page.goto(live_server + "/batches/new")
            assert page.locator("h1").inner_text() == "登记转移批次"

            # Type part of a name; two enterprises match; Tab into the list and pick the second with an arrow key.
            page.get_by_label("接收单位 （必填）").press_sequentially("泰和", delay=40)
            options = page.locator("#f-receiver-options input[type=radio]")
            options.first.wait_for()
            assert options.count() == 2
            assert page.locator("#f-receiver-status").inner_text() == "找到 2 个候选，请在下方选择。"
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.name") == "receiver_id"
            page.keyboard.press("ArrowDown")
            wait_until(
                page,
                "document.querySelector('#f-receiver-status').textContent.startsWith('已选择：攀枝花泰和资源综合利用')",
            )
            assert page.locator("#f-receiver-options input:checked").get_attribute("value") == str(w.e2)
            assert str(e4) in page.locator("#f-receiver-options").inner_html()

            page.get_by_label("废物类别 （必填）").select_option("SW01")
            page.get_by_label("利用处置方式 （必填）").select_option("metal_recovery")

            # A decimal comma is not a number here: the error appears under the field as it is typed.
            weight = page.get_by_label("重量 （必填）")
            weight.press_sequentially("12,5", delay=40)
            error = page.locator("#f-weight-error")
            wait_until(page, "document.querySelector('#f-weight-error').textContent.length > 0")
            assert error.inner_text() == "重量：“12,5”不是数字，请按 12.5 的格式填写。"
            assert "f-weight-error" in (weight.get_attribute("aria-describedby") or "")
            assert error.get_attribute("aria-live") == "polite"
            weight.fill("")
            weight.press_sequentially("12480", delay=20)
            page.get_by_label("千克").check()
            wait_until(page, "document.querySelector('#f-weight-status').textContent === '= 12.48 吨'")
            assert error.inner_text() == ""
            screenshot(page, "batch-new")

            page.get_by_role("button", name="保存并发运").click()
            page.wait_for_url(re.compile(r".*/batches/\d+\?done=dispatch$"))
            batch_id = int(page.url.split("/batches/")[1].split("?")[0])
            assert page.locator("#batch-status").inner_text() == "已发运"
            assert page.locator("#batch-done").inner_text().endswith("已发运，接收单位现在可以确认收货。")
            assert not [u for u in requests if not u.startswith(live_server)]
            assert not errors, errors

        with browser_page(pw, live_server, cookie=receiver, locale="en") as (page, requests, errors):
            page.goto(live_server + "/lang/en?next=/batches")
            session.expire_all()
            on_the_way = session.exec(
                select(func.count())
                .select_from(Manifest)
                .where(Manifest.receiver_id == w.e2, Manifest.status == ManifestStatus.dispatched)
            ).one()
            assert on_the_way == 4  # the world's, two of the season, and the one just sent
            assert page.locator('[data-count="awaiting"]').inner_text() == str(on_the_way)
            assert page.locator("tr.row--todo").count() == on_the_way
            screenshot(page, "batches")

            page.locator(f'tr[data-batch="{batch_id}"] a.batch-number').click()
            page.wait_for_url(f"{live_server}/batches/{batch_id}")
            page.get_by_label("Weight received (required)").fill("12.45")
            page.get_by_role("button", name="Confirm receipt").click()
            page.locator("#batch-done").wait_for()
            assert page.locator("#batch-status").inner_text() == "Received"
            assert page.locator('[data-figure="received"]').inner_text().startswith("12.45")
            assert page.locator('[data-figure="gap"]').inner_text().startswith("\u22120.03 t (\u22120.2%)")
            screenshot(page, "batch")
            assert not errors, errors

    session.expire_all()
    batch = session.get(Manifest, batch_id)
    assert batch is not None
    assert (batch.status, batch.shipper_id, batch.receiver_id) == (ManifestStatus.received, w.e1, w.e2)
    assert (batch.weight_dispatched_t, batch.weight_received_t) == (Decimal("12.48"), Decimal("12.45"))
