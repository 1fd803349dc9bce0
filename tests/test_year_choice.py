"""One year across pages: each page opens on the latest year declared in the reader's scope (not the newest year
with a stray batch), a year chosen in a URL is remembered in a cookie by map, Sankey, dashboard, audit, park and the
batch list, the URL still wins, and the pickers offer only years with data: the batch list's only years with batches
in the reader's scope (both databases)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlmodel import Session

from flows.pages.years import data_years
from flows.waste.manifests import reserve_numbers
from models import Declaration, Manifest
from models.enums import ManifestStatus, Route
from tests.world import World, build_world, t

PAGES = ("/map", "/sankey", "/dashboard", "/audit")


def _world(session: Session) -> World:
    """The world's 2023 declarations, one more for 2024, and two stray received batches of 2026."""
    w = build_world(session)
    session.add(Declaration(enterprise_id=w.e1, category_code="SW01", year=2024, generated_t=t(90), utilised_t=t(70)))
    for number in reserve_numbers(session, 2026, 2):
        session.add(
            Manifest(
                number=number,
                shipper_id=w.e1,
                receiver_id=w.e2,
                category_code="SW01",
                route=Route.cement_admixture,
                year=2026,
                status=ManifestStatus.received,
                weight_dispatched_t=t(1),
                weight_received_t=t(1),
                dispatched_at=datetime(2026, 1, 3, tzinfo=UTC),
                received_at=datetime(2026, 1, 3, 5, tzinfo=UTC),
                created_at=datetime(2026, 1, 3, tzinfo=UTC),
            )
        )
    session.commit()
    return w


def _chosen(text: str) -> int:
    """The year a page shows as chosen: the selected option of its year select, or the current link of its switch."""
    found = re.search(r'<option value="(\d{4})" selected>', text) or re.search(
        r'\?[^"]*year=(\d{4})[^"]*" aria-current="page"', text
    )
    assert found, "no year chosen on the page"
    return int(found.group(1))


def _get(client: TestClient, w: World, role: str, url: str) -> str:
    answer = client.get(url, headers={"Authorization": f"Bearer {w.tokens[role]}", "Accept-Language": "en"})
    assert answer.status_code == 200, (url, answer.text[:300])
    return answer.text


def test_pages_open_on_the_latest_declared_year_in_scope(client: TestClient, session: Session) -> None:
    w = _world(session)
    data = data_years(session=session, principal=w.principals["bureau_sc"])
    assert data.years == [2026, 2024, 2023] and data.default == 2024
    for url in PAGES:
        assert _chosen(_get(client, w, "bureau_sc", url)) == 2024, url
    # Deyang declared 2023 only: its bureau's pages open there, whatever the province did in 2024.
    assert data_years(session=session, principal=w.principals["bureau_dy"]).default == 2023
    for url in ("/dashboard", "/audit", "/map"):
        assert _chosen(_get(client, w, "bureau_dy", url)) == 2023, url
    # The pickers offer years with data, never an empty one.
    sankey = _get(client, w, "bureau_sc", "/sankey")
    assert '<option value="2025"' not in sankey and '<option value="2026"' in sankey


def test_a_chosen_year_is_kept_across_pages_and_the_url_wins(client: TestClient, session: Session) -> None:
    w = _world(session)
    assert _chosen(_get(client, w, "bureau_sc", "/sankey?year=2023")) == 2023
    assert client.cookies.get("year") == "2023"
    for url in (*PAGES, f"/parks/{w.park_a}"):
        assert _chosen(_get(client, w, "bureau_sc", url)) == 2023, url
    # A year in the URL wins over the remembered one, and is remembered in turn.
    assert _chosen(_get(client, w, "bureau_sc", "/audit?year=2024")) == 2024
    assert _chosen(_get(client, w, "bureau_sc", "/map")) == 2024
    # A remembered year without data in this scope is passed over (Deyang has no 2024), as is a forged cookie.
    assert _chosen(_get(client, w, "bureau_dy", "/dashboard")) == 2023
    client.cookies.set("year", "9999")
    assert _chosen(_get(client, w, "bureau_sc", "/dashboard")) == 2024
    client.cookies.set("year", "x'--")
    assert _chosen(_get(client, w, "bureau_sc", "/map")) == 2024


def _batch_years(text: str) -> list[int]:
    """The years the batch list's year filter offers."""
    select = re.search(r'<select id="f-year" name="year"[^>]*>(.*?)</select>', text, re.S)
    assert select, "no year filter on the batch list"
    return [int(y) for y in re.findall(r'<option value="(\d{4})"', select.group(1))]


def _batches(text: str) -> int:
    return len(re.findall(r'<tr data-batch="\d+"', text))


def test_the_batch_list_offers_only_years_with_batches_in_scope(client: TestClient, session: Session) -> None:
    w = _world(session)
    # Sichuan sees the 2024 and 2026 batches; 2023 has declarations but no batch, so the list offers no 2023.
    assert _batch_years(_get(client, w, "bureau_sc", "/batches")) == [2026, 2024]
    assert _batch_years(_get(client, w, "bureau_pzh", "/batches")) == [2026, 2024]
    # Deyang's enterprise never shipped a batch: its bureau and the enterprise are offered no year at all.
    assert _batch_years(_get(client, w, "bureau_dy", "/batches")) == []
    assert _batch_years(_get(client, w, "ent3", "/batches")) == []
    assert _batch_years(_get(client, w, "ent1", "/batches")) == [2026, 2024]


def test_the_batch_list_opens_on_the_remembered_year_and_every_year_stays_a_choice(
    client: TestClient, session: Session
) -> None:
    w = _world(session)
    everything = _get(client, w, "ent1", "/batches")
    assert _batches(everything) == 5 and '" selected>' not in everything.split('id="f-year"')[1].split("</select>")[0]
    # A year chosen on another page is the one the list opens on, and its links keep it.
    _get(client, w, "ent1", "/sankey?year=2024")
    assert client.cookies.get("year") == "2024"
    kept = _get(client, w, "ent1", "/batches")
    assert _chosen(kept) == 2024 and _batches(kept) == 3
    assert 'href="/batches?year=2024&amp;sort=weight' in kept
    # The URL wins, and "every year" chosen in it stays chosen on the next page of links (sorting, paging).
    assert _batches(_get(client, w, "ent1", "/batches?year=2026")) == 2
    assert client.cookies.get("year") == "2026"
    every = _get(client, w, "ent1", "/batches?year=")
    assert _batches(every) == 5 and 'href="/batches?year=&amp;sort=weight' in every
    # A remembered year without batches in the scope (2023: declarations only) leaves the list on every year.
    client.cookies.clear()  # the answer's cookie is kept per host: set() beside it would send both
    client.cookies.set("year", "2023")
    assert _batches(_get(client, w, "ent1", "/batches")) == 5
    assert _batches(_get(client, w, "bureau_dy", "/batches")) == 0
    # A forged cookie counts as none.
    client.cookies.clear()
    client.cookies.set("year", "x'--")
    assert _batches(_get(client, w, "ent1", "/batches")) == 5
