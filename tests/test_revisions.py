"""Corrections beyond a tolerance need evidence; their effect on the rates is shown before approval and equals the
rates after it; an approved correction of a locked year leaves a "revised" mark with before and after."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from flows.access import locks
from flows.access.accounts import system_principal
from flows.access.files import FileStore, store_attachment
from flows.kernel.errors import Conflict, Forbidden, InvalidInput
from flows.waste import corrections, rates, revisions
from flows.waste.revisions import Tolerance, evidence_of
from models import AuditLog, CorrectionRequest, Declaration, Licence, RateRevision
from models.enums import LicenceActivity
from tests.test_cli_reports import _json
from tests.world import NOW, World, add_receiver_account, build_world, t

PZH, PROVINCE = "510400", "510000"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _declaration_correction(session: Session, w: World, utilised: float = 90) -> CorrectionRequest:
    locks.lock_period(
        session=session, principal=w.principals["bureau_pzh"], adcode=PZH, year=2023, now=NOW, confirmed=True
    )
    payload = {"enterprise_id": w.e1, "category_code": "SW01", "year": 2023, "generated_t": 100, "utilised_t": utilised}
    correction = corrections.request_correction(
        session=session, principal=w.principals["ent1"], table="declaration", payload=payload, reason="re-read", now=NOW
    )
    session.commit()
    return correction


def license_e2(session: Session, w: World) -> None:
    """E2, the receiver of the world's batches, licensed to utilise SW01: its receipts count bottom-up."""
    licence = Licence(
        enterprise_id=w.e2,
        category_code="SW01",
        activity=LicenceActivity.utilisation,
        capacity_t=t(1000),
        licence_no="L-E2",
        valid_from=date(2020, 1, 1),
    )
    session.add(licence)


def _approve(session: Session, w: World, who: str, correction: CorrectionRequest) -> None:
    assert correction.id is not None
    corrections.decide_correction(
        session=session, principal=w.principals[who], correction_id=correction.id, approve=True, note="", now=NOW
    )


def _preview(session: Session, w: World, who: str, correction: CorrectionRequest) -> revisions.Effect:
    assert correction.id is not None
    return corrections.preview_correction(
        session=session, principal=w.principals[who], correction_id=correction.id, now=NOW
    )


def _rate(session: Session, year: int, **scope: Any) -> rates.RateReport:
    return rates.utilisation(session=session, principal=system_principal(), year=year, **scope)


def test_tolerance_needs_both_the_share_and_the_tonnes_exceeded() -> None:
    tolerance = Tolerance(share=Decimal("0.10"), tonnes=Decimal(10))
    assert tolerance.exceeded(Decimal("8515.74"), Decimal(100))
    assert not tolerance.exceeded(Decimal(80), Decimal(90))  # 12.5 % but 10 t: within
    assert not tolerance.exceeded(Decimal(1000), Decimal(1050))  # 50 t but 5 %: within
    assert tolerance.exceeded(Decimal(0), Decimal(11))
    assert not tolerance.exceeded(Decimal(0), Decimal(10))


def test_a_change_beyond_the_tolerance_needs_an_attachment(session: Session, tmp_path: Path) -> None:
    w = build_world(session, with_tokens=False)
    ent1 = w.principals["ent1"]
    locks.lock_period(
        session=session, principal=w.principals["bureau_pzh"], adcode=PZH, year=2023, now=NOW, confirmed=True
    )
    payload = {"enterprise_id": w.e1, "category_code": "SW01", "year": 2023, "generated_t": 100, "utilised_t": 5}
    with pytest.raises(InvalidInput) as refused:
        corrections.request_correction(
            session=session, principal=ent1, table="declaration", payload=payload, reason="re-read", now=NOW
        )
    assert refused.value.field == "attachment_ids" and "80.0 t" in refused.value.render("en")
    assert "地磅单" in refused.value.render("zh-CN")
    # A wider tolerance (a setting) lets it through without one.
    wide = Tolerance(share=Decimal("0.95"), tonnes=Decimal(10))
    session.rollback()
    store = FileStore(root=tmp_path / "files", max_bytes=2**20)
    ticket = store_attachment(
        session=session, principal=ent1, store=store, data=PDF, filename="磅单.pdf", enterprise_id=w.e1, now=NOW
    )
    locks.lock_period(
        session=session, principal=w.principals["bureau_pzh"], adcode=PZH, year=2023, now=NOW, confirmed=True
    )
    correction = corrections.request_correction(
        session=session,
        principal=ent1,
        table="declaration",
        payload=payload,
        reason="re-read",
        now=NOW,
        attachment_ids=[ticket.id],
    )
    assert correction.id is not None
    loose = corrections.request_correction(
        session=session, principal=ent1, table="declaration", payload=payload, reason="x", now=NOW, tolerance=wide
    )
    session.commit()
    evidence = evidence_of(session=session, correction_ids=[correction.id, loose.id or 0])
    assert [a.sha256 for a in evidence[correction.id]] == [ticket.sha256] and loose.id not in evidence
    logged = session.exec(select(AuditLog).where(AuditLog.action == "request_correction")).all()
    assert logged[0].after is not None and logged[0].after["attachment_ids"] == [ticket.id]


def test_preview_equals_the_rates_after_approval(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    correction = _declaration_correction(session, w)
    assert correction.id is not None
    before = {key: _rate(session, 2023, region=key) for key in (PZH, PROVINCE)}
    effect = _preview(session, w, "bureau_sc", correction)
    session.rollback()
    assert effect.problem is None
    assert [(s.now.ref.kind, s.now.ref.key) for s in effect.scopes] == [("prefecture", PZH), ("province", PROVINCE)]
    # The preview changed nothing.
    assert session.get(Declaration, {"id": w.decl_e1, "enterprise_id": w.e1}).utilised_t == 80  # type: ignore[union-attr]
    for scope in effect.scopes:
        assert scope.now.rate == before[scope.now.ref.key].rate
    _approve(session, w, "bureau_sc", correction)
    session.commit()
    for scope in effect.scopes:
        after = _rate(session, 2023, region=scope.after.ref.key)
        assert scope.after.rate == after.rate and scope.after.rate != scope.now.rate
        assert scope.after.utilised_t == after.utilised_t
        target = after.target if after.target is not None else (after.next_target.value if after.next_target else None)
        assert scope.after.target == target
        assert scope.after.gap_pts == (None if target is None else ((after.rate or 0) - target) * 100)


def test_a_city_auditor_previews_its_city_only(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    correction = _declaration_correction(session, w)
    assert correction.id is not None
    effect = _preview(session, w, "bureau_pzh", correction)
    assert [s.now.ref.key for s in effect.scopes] == [PZH]
    with pytest.raises(Forbidden):
        corrections.preview_correction(
            session=session, principal=w.principals["ent1"], correction_id=correction.id, now=NOW
        )


def test_approval_in_a_locked_year_marks_the_figures_revised(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    published = _rate(session, 2023, region=PROVINCE, by="region")
    correction = _declaration_correction(session, w)
    assert correction.id is not None
    assert _rate(session, 2023, region=PROVINCE).revisions == []
    _approve(session, w, "bureau_pzh", correction)
    session.commit()
    stored = session.exec(select(RateRevision).order_by(col(RateRevision.id))).all()
    assert {(r.scope_kind, r.scope_key) for r in stored} >= {
        ("province", PROVINCE),
        ("prefecture", PZH),
        ("enterprise", str(w.e1)),
    }
    province = _rate(session, 2023, region=PROVINCE, by="region")
    [mark] = province.revisions
    assert mark.correction_id == correction.id
    assert mark.rate_before == published.rate and mark.rate_after == province.rate
    assert mark.utilised_before_t == 160 and mark.utilised_after_t == 170
    row = next(r for r in province.rows or [] if r.key == PZH)
    assert [m.rate_after for m in row.revisions] == [row.rate]
    assert all(r.revisions == [] for r in province.rows or [] if r.key != PZH)
    # The API and `rate --json` carry it as an added key, the other keys as they were.
    body = province.model_dump(mode="json")
    assert body["revisions"][0]["rate_before"] == published.rate and "rate" in body and "gap_t" in body
    # Another category set is another figure: no mark.
    assert _rate(session, 2023, region=PROVINCE, categories=["SW02"]).revisions == []


def test_rejection_and_unlocked_years_leave_no_revision(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    correction = _declaration_correction(session, w)
    assert correction.id is not None
    locks.unlock_period(session=session, principal=w.principals["bureau_pzh"], adcode=PZH, year=2023, now=NOW)
    _approve(session, w, "bureau_pzh", correction)
    session.commit()
    assert session.exec(select(RateRevision)).all() == []


def test_a_manifest_correction_previews_and_revises_the_bottom_up_figure(session: Session) -> None:
    w = add_receiver_account(session, build_world(session, with_tokens=False))
    license_e2(session, w)
    session.commit()
    assert _rate(session, 2024, region=PZH).manifest_utilised_t == Decimal("29.8")
    locks.lock_period(
        session=session, principal=w.principals["bureau_pzh"], adcode=PZH, year=2024, now=NOW, confirmed=True
    )
    payload = {"batch_id": w.batch_received, "changes": {"weight_received_t": 25}, "reason": "re-weighed"}
    correction = corrections.request_correction(
        session=session, principal=w.principals["ent2"], table="transfer_batch", payload=payload, reason="x", now=NOW
    )
    session.commit()
    assert correction.id is not None
    effect = _preview(session, w, "bureau_pzh", correction)
    session.rollback()
    assert effect.problem is None and len(effect.scopes) == 1
    _approve(session, w, "bureau_pzh", correction)
    session.commit()
    after = _rate(session, 2024, region=PZH)
    assert effect.scopes[0].now.manifest_utilised_t == Decimal("29.8")
    assert effect.scopes[0].after.manifest_utilised_t == after.manifest_utilised_t == 25
    [mark] = after.revisions
    assert (mark.manifest_utilised_before_t, mark.manifest_utilised_after_t) == (Decimal("29.8"), 25)


def test_concurrent_approvals_record_one_revision(engine: Engine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("concurrent transactions: PostgreSQL")
    with Session(engine) as session:
        w = build_world(session, with_tokens=False)
        correction = _declaration_correction(session, w)
        correction_id = correction.id
    assert correction_id is not None
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve() -> None:
        with Session(engine) as session:
            barrier.wait()
            try:
                corrections.decide_correction(
                    session=session,
                    principal=w.principals["bureau_pzh"],
                    correction_id=correction_id,
                    approve=True,
                    note="",
                    now=NOW,
                )
                session.commit()
                outcomes.append("won")
            except Conflict:
                session.rollback()
                outcomes.append("decided")

    threads = [threading.Thread(target=approve) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["decided", "won"]
    with Session(engine) as session:
        stored = session.exec(select(RateRevision).where(RateRevision.scope_kind == "province")).all()
        assert len(stored) == 1


def test_rate_json_carries_the_revisions_as_an_added_key(cli_env: dict[str, str], session: Session) -> None:
    w = build_world(session, with_tokens=False)
    plain = _json("rate", "--year", "2023", "--region", PROVINCE, "--by", "region")
    correction = _declaration_correction(session, w)
    _approve(session, w, "bureau_pzh", correction)
    session.commit()
    body = _json("rate", "--year", "2023", "--region", PROVINCE, "--by", "region")
    assert set(body) == set(plain) and plain["revisions"] == []
    [mark] = body["revisions"]
    assert (mark["correction_id"], mark["rate_before"], mark["rate_after"]) == (
        correction.id,
        plain["rate"],
        body["rate"],
    )
    row = next(r for r in body["rows"] if r["key"] == PZH)
    assert row["revisions"][0]["utilised_after_t"] == 90
