"""The dashboard page: figures equal the rate engine's, scoped to the signed-in user."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlmodel import Session

from flows.kernel.numbers import Numbers
from models import Declaration
from tests.world import build_world


def _figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, name
    return match.group(1).strip()


def test_dashboard_for_the_province_and_for_an_enterprise(client: TestClient, session: Session) -> None:
    w = build_world(session)
    # E3 utilised 60 of 100 t generated with 20 t drawn from prior-year stock: 60 / 120.
    e3 = session.get(Declaration, {"id": w.decl_e3, "enterprise_id": w.e3})
    assert e3 is not None
    e3.utilised_t, e3.utilised_prior_t = Decimal(60), Decimal(20)
    session.add(e3)
    session.commit()
    admin = {"Authorization": f"Bearer {w.tokens['admin']}", "Accept-Language": "en"}
    page = client.get("/dashboard", params={"year": 2023}, headers=admin)
    assert page.status_code == 200, page.text
    # Province: (80 + 60) / (200 + 20) = 63.63...%, truncated as published.
    assert _figure(page.text, "rate") == "63.6%"
    ranking = page.text.split('id="ranking"', 1)[1]
    assert ranking.index('data-key="510400"') < ranking.index('data-key="510600"')  # 80.0% ranks above 50.0%
    assert ">80.0%<" in ranking and ">50.0%<" in ranking
    raw = re.search(r"data-chart='([^']*)'", page.text)
    assert raw is not None
    chart = json.loads(html.unescape(raw.group(1)))
    assert chart["years"] == [2023] and abs(chart["rates"][0] - 140 / 220 * 100) < 1e-9
    assert [t[0] for t in chart["targets"]] == [2025, 2030]
    ent1 = client.get(
        "/dashboard",
        params={"year": 2023},
        headers={"Authorization": f"Bearer {w.tokens['ent1']}", "Accept-Language": "en"},
    )
    assert _figure(ent1.text, "rate") == "80.0%"
    assert "Categories ranked by rate" in ent1.text
    bureau = client.get("/dashboard", headers={"Authorization": f"Bearer {w.tokens['bureau_dy']}"})
    assert _figure(bureau.text, "rate") == "50.0%"  # the latest declared year, Deyang alone


def test_dashboard_shows_the_sums_and_the_bottom_up_figure_of_the_rate_engine(
    client: TestClient, session: Session
) -> None:
    w = build_world(session)
    headers = {"Authorization": f"Bearer {w.tokens['admin']}", "Accept-Language": "en"}
    api = client.get("/api/v1/rates", params={"year": 2023}, headers=headers).json()
    page = client.get("/dashboard", params={"year": 2023}, headers=headers).text
    en = Numbers("en")
    for field in ("generated_t", "utilised_t", "utilised_prior_t", "manifest_utilised_t"):
        assert _figure(page, field) == en.tonnes(api[field]), field
    assert _figure(page, "gap_t").startswith(en.tonnes(api["gap_t"], signed=True))


def test_auditors_follow_dashboard_figures_into_the_audit_workspace(client: TestClient, session: Session) -> None:
    w = build_world(session)
    bureau = client.get(
        "/dashboard", params={"year": 2023}, headers={"Authorization": f"Bearer {w.tokens['bureau_sc']}"}
    )
    assert 'href="/audit?region=510400&amp;year=2023"' in bureau.text
    flagged = re.findall(r'<a href="(/audit/flags\?kind=(\w+)&amp;year=2023)" data-flag="\w+">(\d+)</a>', bureau.text)
    queue = client.get(
        "/api/v1/flags", params={"year": 2023}, headers={"Authorization": f"Bearer {w.tokens['bureau_sc']}"}
    ).json()
    assert {kind: int(n) for _href, kind, n in flagged} == {k: n for k, n in queue["counts"].items() if n}
    for href, kind, n in flagged:  # each count opens the queue filtered to that kind, listing that many
        listed = client.get(href.replace("&amp;", "&"), headers={"Authorization": f"Bearer {w.tokens['bureau_sc']}"})
        assert listed.text.count(f'<tr data-kind="{kind}" data-subject=') == int(n)
    ent = client.get("/dashboard", params={"year": 2023}, headers={"Authorization": f"Bearer {w.tokens['ent1']}"})
    assert "/audit" not in ent.text.split('id="content"', 1)[1].split("</main>", 1)[0]


def test_dashboard_counts_flags_by_status_as_the_flag_list_does(client: TestClient, session: Session) -> None:
    w = build_world(session)
    bureau = {"Authorization": f"Bearer {w.tokens['bureau_sc']}"}
    listed = client.get("/api/v1/flags", params={"year": 2023, "limit": 1000}, headers=bureau).json()
    assert listed["count"] >= 2
    # The bureau takes one flag under review and dismisses another: the chips must move with the stored statuses.
    first, second = listed["data"][0]["key"], listed["data"][1]["key"]
    for key, body in ((first, {"status": "under_review"}), (second, {"status": "dismissed", "reason": "seen"})):
        done = client.patch(f"/api/v1/flags/{key}", json=body, headers=bureau)
        assert done.status_code == 200, done.text
    expected: dict[str, int] = {}
    for flag in client.get("/api/v1/flags", params={"year": 2023, "limit": 1000}, headers=bureau).json()["data"]:
        expected[flag["status"]] = expected.get(flag["status"], 0) + 1
    page = client.get("/dashboard", params={"year": 2023}, headers=bureau)
    chips = re.findall(r'data-status="(\w+)">.*?<span class="audit-chips__n">(\d+)</span>', page.text)
    assert {status: int(n) for status, n in chips if int(n)} == expected
    assert expected["under_review"] == 1 and expected["dismissed"] == 1
