"""The inspection sheet of an enterprise: every figure recomputed here from the rows themselves (manifests, licences,
declarations), and the PDF's text, read back with poppler's pdftotext, carrying them in Chinese and in English."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.kernel.clock import CST
from flows.pages import inspection
from flows.waste.flags import FlagKind
from models import Declaration, Licence, Manifest
from models.enums import UTILISATION_ROUTES, ManifestStatus
from tests.inspection_site import CAPACITY_T, GENERATOR, UTILISER, YEAR, Site, as_, build_site

# ---------------------------------------------------------------------------------------------------------------
# The figures, recomputed from the rows


def _manifests(session: Session, **where: int) -> list[Manifest]:
    query = sa_select(Manifest).where(col(Manifest.year) == YEAR)
    for column, value in where.items():
        query = query.where(getattr(Manifest, column) == value)
    return list(session.execute(query).scalars())


def _month(moment: datetime) -> int:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(CST).month


RECEIVED = (ManifestStatus.received, ManifestStatus.corrected)


def _licensed_on(session: Session, batch: Manifest) -> bool:
    assert batch.received_at is not None
    day = (batch.received_at if batch.received_at.tzinfo else batch.received_at.replace(tzinfo=UTC)).astimezone(CST)
    for licence in session.execute(sa_select(Licence).where(col(Licence.enterprise_id) == batch.receiver_id)).scalars():
        if (
            licence.category_code == batch.category_code
            and licence.activity == "utilisation"
            and licence.valid_from <= day.date()
            and (licence.valid_to is None or licence.valid_to >= day.date())
        ):
            return True
    return False


def _sheet(session: Session, site: Site, who: str, enterprise_id: int, lang: str) -> inspection.InspectionSheet:
    return inspection.inspection_sheet(
        session=session,
        principal=site.world.principals[who],
        enterprise_id=enterprise_id,
        year=YEAR,
        lang=lang,
        now=datetime.now(UTC),
    )


def test_the_utilisers_sheet_adds_up_from_its_manifests(client: TestClient, session: Session) -> None:
    site = build_site(client, session)
    sheet = _sheet(session, site, "bureau_pzh", site.utiliser, "zh-CN")
    rows = _manifests(session, receiver_id=site.utiliser)
    received = [b for b in rows if b.status in RECEIVED and b.weight_received_t is not None]
    on_road = [b for b in rows if b.status == ManifestStatus.dispatched]
    # Flows in: one sender, one category.
    (flow,) = sheet.flows_in
    assert flow.counterpart.id == site.generator and flow.category.key == "SW01"
    assert flow.tonnes.batches == len(rows) == 4
    assert flow.tonnes.received_t == sum(Decimal(b.weight_received_t or 0) for b in received) == Decimal(57)
    assert flow.tonnes.in_transit_t == sum(Decimal(b.weight_dispatched_t) for b in on_road) == Decimal(5)
    assert sheet.flows_out == []
    # Capacity by month of dispatch, against the licence.
    (line,) = sheet.capacity
    months = [Decimal(0)] * 12
    for b in received:
        assert b.dispatched_at is not None
        months[_month(b.dispatched_at) - 1] += Decimal(b.weight_received_t or 0)
    assert list(line.months) == months
    assert months[2] == 20 and months[5] == 37
    licensed = session.execute(sa_select(Licence).where(col(Licence.enterprise_id) == site.utiliser)).scalars().one()
    assert line.capacity_t == licensed.capacity_t == CAPACITY_T
    assert line.intake_t == sum(months) and line.exceeded
    assert line.use == pytest.approx(57 / 50)
    # The flags: the capacity excess and the short batch, each open.
    kinds = sorted(f.kind for f in sheet.flags)
    assert kinds == sorted([FlagKind.capacity_exceeded, FlagKind.weight_discrepancy])
    assert {f.state for f in sheet.flags} == {"open"}
    capacity = next(f for f in sheet.flags if f.kind is FlagKind.capacity_exceeded)
    assert UTILISER[0] in capacity.finding and "57.0" in capacity.finding  # the name, not the id


def test_the_generators_declaration_meets_its_manifests(client: TestClient, session: Session) -> None:
    site = build_site(client, session)
    sheet = _sheet(session, site, "bureau_sc", site.generator, "en")
    sent = _manifests(session, shipper_id=site.generator)
    (line,) = sheet.declarations
    declared = session.execute(
        sa_select(Declaration).where(col(Declaration.enterprise_id) == site.generator, col(Declaration.year) == YEAR)
    ).scalar_one()
    assert line.declared is not None and line.counted
    assert line.declared.generated_t == declared.generated_t == 120
    assert line.declared.utilised_t == declared.utilised_t == 90
    moved = [b for b in sent if b.status != ManifestStatus.draft]
    assert line.sent_t == sum(
        (Decimal(b.weight_received_t or 0) if b.status in RECEIVED else Decimal(b.weight_dispatched_t) for b in moved),
        Decimal(0),
    )
    bottom_up = sum(
        Decimal(b.weight_received_t or 0)
        for b in sent
        if b.status in RECEIVED and b.route in UTILISATION_ROUTES and _licensed_on(session, b)
    )
    assert line.manifest_utilised_t == bottom_up == 57
    assert line.gap_t == declared.utilised_t - bottom_up == 33
    assert line.received_t == 0
    (flow,) = sheet.flows_out
    assert flow.counterpart.id == site.utiliser and flow.tonnes.received_t == 57
    assert sheet.capacity == []  # it took nothing in and holds no licence
    kinds = {f.kind for f in sheet.flags}
    assert FlagKind.unmatched_utilisation in kinds and FlagKind.weight_discrepancy in kinds


# ---------------------------------------------------------------------------------------------------------------
# The PDF


def _text(pdf: bytes, tmp: Any) -> str:
    path = tmp / "sheet.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True)
    return done.stdout.decode("utf-8")


needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")


@needs_poppler
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_pdf_carries_the_figures(client: TestClient, session: Session, tmp_path: Any, lang: str) -> None:
    site = build_site(client, session)
    response = client.get(
        f"/enterprises/{site.utiliser}/inspection.pdf?year={YEAR}", headers=as_(site.world, "bureau_pzh", lang)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-language"] == lang
    text = _text(response.content, tmp_path)
    flat = " ".join(text.split())
    name = UTILISER[0] if lang == "zh-CN" else UTILISER[1]
    sender = GENERATOR[0] if lang == "zh-CN" else GENERATOR[1]
    assert name in flat and sender in flat
    assert "川固利〔2024〕0005号" in flat
    assert "57.0" in flat and "37.0" in flat and "114.0%" in flat and "50.0" in flat
    if lang == "zh-CN":
        for words in ("企业现场检查表", "许可能力", "申报与联单核对", "超出许可能力", "重量差异", "待处理", "6月"):
            assert words in flat, words
        assert "Capacity" not in flat and "open" not in flat
    else:
        for words in ("Enterprise inspection sheet", "Capacity exceeded", "Weight discrepancy", "open", "Jun"):
            assert words in flat, words
    # The API gives the same document.
    api = client.get(
        f"/api/v1/enterprises/{site.utiliser}/inspection.pdf?year={YEAR}&lang={lang}",
        headers=as_(site.world, "admin"),
    )
    assert api.status_code == 200 and name in " ".join(_text(api.content, tmp_path).split())


@needs_poppler
def test_the_generators_pdf_shows_the_gap(client: TestClient, session: Session, tmp_path: Any) -> None:
    site = build_site(client, session)
    response = client.get(
        f"/enterprises/{site.generator}/inspection.pdf?year={YEAR}", headers=as_(site.world, "bureau_sc", "en")
    )
    flat = " ".join(_text(response.content, tmp_path).split())
    assert "120.0" in flat and "90.0" in flat and "33.0" in flat and "62.0" in flat  # sent: 57 received + 5 en route
    assert "Utilisation without manifests" in flat


def test_the_sheet_is_for_those_who_audit_the_enterprise(client: TestClient, session: Session) -> None:
    site = build_site(client, session)
    url = f"/api/v1/enterprises/{site.generator}/inspection.pdf?year={YEAR}"
    assert client.get(url, headers=as_(site.world, "bureau_dy")).status_code == 404
    assert client.get(url, headers=as_(site.world, "gen")).status_code == 403
    assert client.get(url, headers=as_(site.world, "park_a")).status_code == 403
    assert client.get(url.replace(f"year={YEAR}", "year=1999"), headers=as_(site.world, "admin")).status_code == 422
    assert client.get(url.replace(f"year={YEAR}", "lang=fr"), headers=as_(site.world, "admin")).status_code == 422
    # Without a year: the enterprise's latest year with data.
    latest = client.get(url.split("?")[0], headers=as_(site.world, "admin"))
    assert latest.status_code == 200 and f"-{YEAR}-" in latest.headers["content-disposition"]
