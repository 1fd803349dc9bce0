"""The enterprise, park and directory pages: figures from the world's rows, scoped to the signed-in user."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from flows.access.accounts import system_principal
from flows.battery import audit as battery_audit
from flows.battery import chain as battery
from flows.kernel.numbers import Numbers
from flows.waste import flags
from flows.waste.rates import RECEIVED_STATUSES, SENT_STATUSES, percent_truncated
from models import Enterprise, Licence, Manifest
from models.enums import BatteryLevel, EnterpriseRole, LicenceActivity, ManifestStatus, Route
from tests.access_cases_battery import VIN, build_chain, code
from tests.world import NOW, World, add_enterprise, build_world, t


def _get(client: TestClient, w: World, who: str, url: str, lang: str = "en", **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {w.tokens[who]}", "Accept-Language": lang, "Accept": "text/html"}
    return client.get(url, params=params, headers=headers)


def _figure(text: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}"[^>]*>([^<]*)<', text)
    assert match, name
    return match.group(1).strip()


def _section(text: str, element_id: str) -> str:
    """The HTML of one table (from its id to its end)."""
    start = text.index(f'id="{element_id}"')
    return text[start : text.index("</table>", start)]


def _overlay(text: str, map_id: str) -> dict[str, Any]:
    tag = text[text.index(f'id="{map_id}"') :]
    raw = re.search(r"data-overlay='([^']*)'", tag)
    assert raw is not None
    data: dict[str, Any] = json.loads(html.unescape(raw.group(1)))
    return data


def _t(value: float | Decimal) -> str:
    return Numbers("en").tonnes(value)


def _batch(
    session: Session,
    n: int,
    shipper: int,
    receiver: int,
    category: str,
    weight: float,
    *,
    received: float | None = None,
    status: str = "received",
    route: str = "cement_admixture",
    year: int = 2024,
) -> None:
    on = datetime(year, 6, 1 + n % 20, 8, tzinfo=UTC)
    session.add(
        Manifest(
            number=f"PL{year}-{n:07d}",
            shipper_id=shipper,
            receiver_id=receiver,
            category_code=category,
            route=Route(route),
            year=year,
            status=ManifestStatus(status),
            weight_dispatched_t=t(weight),
            dispatched_at=on,
            weight_received_t=t(received),
            received_at=on.replace(hour=15) if received is not None else None,
            created_at=on,
        )
    )


def _expected_flows(
    session: Session, own: Any, other: Any, enterprise_id: int, year: int
) -> dict[tuple[int, str], Any]:
    """Flows by counterpart and category, reckoned from the batch rows with the rate engine's status sets."""
    out: dict[tuple[int, str], dict[str, Any]] = {}
    rows = session.exec(select(Manifest).where(own == enterprise_id, col(Manifest.year) == year)).all()
    for b in rows:
        if b.status not in SENT_STATUSES:
            continue
        key = (getattr(b, other), b.category_code)
        agg = out.setdefault(key, {"batches": 0, "received_t": Decimal(0), "in_transit_t": Decimal(0)})
        agg["batches"] += 1
        if b.status in RECEIVED_STATUSES and b.weight_received_t is not None:
            agg["received_t"] += b.weight_received_t
        if b.status == "dispatched":
            agg["in_transit_t"] += b.weight_dispatched_t
    return out


def test_enterprise_page_shows_roles_licences_flows_rate_and_flags(client: TestClient, session: Session) -> None:
    w = build_world(session)
    # E2 holds a utilisation licence for SW01 that has run out, and a current one for SW02.
    session.add(
        Licence(
            enterprise_id=w.e2,
            category_code="SW01",
            activity=LicenceActivity.utilisation,
            capacity_t=t(5000),
            licence_no="川固利〔2019〕0001号",
            valid_from=date(2019, 1, 1),
            valid_to=date(2021, 12, 31),
        )
    )
    session.add(
        Licence(
            enterprise_id=w.e2,
            category_code="SW02",
            activity=LicenceActivity.utilisation,
            capacity_t=t(8000),
            licence_no="川固利〔2022〕0002号",
            valid_from=date(2022, 1, 1),
        )
    )
    session.commit()

    page = _get(client, w, "ent1", f"/enterprises/{w.e1}", year=2024)
    assert page.status_code == 200, page.text
    text = page.text
    e1 = session.get(Enterprise, w.e1)
    assert e1 is not None
    assert f"<h1>{e1.name_en}</h1>" in text and e1.uscc in text
    assert "Generator" in text  # its role, in words
    assert f'href="/parks/{w.park_a}"' in text  # its own park's page is open to it

    # Flows out of E1 in 2024, to E2: the dispatched and the received batch moved, the draft did not.
    expected = _expected_flows(session, col(Manifest.shipper_id), "receiver_id", w.e1, 2024)
    assert set(expected) == {(w.e2, "SW01")}
    out = _section(text, "flows-out")
    row = out[out.index(f'data-counterpart="{w.e2}"') :]
    want = expected[(w.e2, "SW01")]
    assert f'data-tonnes="{want["received_t"]}"' in row
    assert f">{want['batches']}</a>" in row and f">{_t(want['in_transit_t'])}<" in row
    e2 = session.get(Enterprise, w.e2)
    assert e2 is not None
    # The count links to the batch list narrowed to this flow: the batches counted, and the draft that did not move.
    href = f"/batches?shipper={w.e1}&amp;receiver={w.e2}&amp;year=2024&amp;category=SW01"
    assert href in row
    listed = client.get(href.replace("&amp;", "&"), headers={"Authorization": f"Bearer {w.tokens['ent1']}"}).text
    moved = listed.count("<tr data-batch=") - listed.count('data-status="draft"')
    assert moved == want["batches"] and listed.count('data-status="draft"') == 1
    assert e2.name_zh in listed[listed.index('id="narrowed"') :]  # the list says whom it is narrowed to
    # E2 lies outside what ent1 may read: its name is shown, its page is not linked.
    assert f'href="/enterprises/{w.e2}"' not in text
    assert "No batch reached this enterprise in 2024." in text
    assert f'data-figure="out" data-value="{want["received_t"]}"' in text

    # No declaration in 2024; in 2023 E1 utilised 80 of 100 t generated.
    assert _figure(text, "rate") == "–"
    page_2023 = _get(client, w, "ent1", f"/enterprises/{w.e1}", year=2023).text
    assert _figure(page_2023, "rate") == f"{percent_truncated(80 / 100)}%"
    assert 'data-year="2023"' in _section(page_2023, "by-year")
    assert 'data-category="SW01"' in _section(page_2023, "declaration")

    # Flags: the same counts as the flag engine for E1 in 2024, by kind.
    found = flags.list_flags(session=session, principal=w.principals["ent1"], year=2024, enterprise=w.e1)
    assert _figure(text, "flags-count") == f"{found.count} in all"
    for kind, n in found.counts.items():
        if n:
            assert f'<li data-kind="{kind}"><span class="places-flag-counts__n">{n}</span>' in text

    # E2's page (for its bureau): its licences, the lapsed one marked in words, and E1 as its counterpart in.
    e2_page = _get(client, w, "bureau_pzh", f"/enterprises/{w.e2}", year=2024).text
    licences = _section(e2_page, "licences")
    assert licences.count('data-state="expired"') == 1 and licences.count('data-state="valid"') == 1
    assert "Expired" in licences and "川固利〔2019〕0001号" in licences
    flows_in = _section(e2_page, "flows-in")
    assert f'data-counterpart="{w.e1}"' in flows_in and f'href="/enterprises/{w.e1}"' in flows_in
    assert f"/batches?shipper={w.e1}&amp;receiver={w.e2}&amp;year=2024&amp;category=SW01" in flows_in
    assert f'<a href="/parks/{w.park_a}"' not in e2_page  # E2 lies outside the park
    overlay = _overlay(e2_page, "enterprise-map")
    kinds = [f["properties"]["kind"] for f in overlay["features"]]
    assert kinds.count("self") == 1 and kinds.count("flow-in") == 1
    point = next(f for f in overlay["features"] if f["properties"]["kind"] == "self")
    e2_row = session.get(Enterprise, w.e2)
    assert e2_row is not None and point["geometry"]["coordinates"] == [e2_row.lon, e2_row.lat]

    # The same page in Chinese.
    zh = _get(client, w, "ent1", f"/enterprises/{w.e1}", lang="zh-CN", year=2024).text
    assert "产生单位" in zh and f"<h1>{e1.name_zh}</h1>" in zh and 'lang="zh-CN"' in zh


def test_enterprise_page_is_not_found_outside_the_scope(client: TestClient, session: Session) -> None:
    w = build_world(session)
    for role, eid in (
        ("ent3", w.e1),
        ("ent1", w.e2),
        ("bureau_dy", w.e1),
        ("bureau_dy", w.e2),
        ("park_b", w.e1),
        ("park_a", w.e2),
        ("bureau_pzh", w.e3),
    ):
        response = _get(client, w, role, f"/enterprises/{eid}")
        assert response.status_code == 404, (role, eid)
        assert "Test Enterprise" not in response.text, (role, eid)
    for role, eid in (("bureau_pzh", w.e2), ("park_a", w.e1), ("bureau_dy", w.e3), ("admin", w.e2)):
        assert _get(client, w, role, f"/enterprises/{eid}").status_code == 200, (role, eid)
    assert _get(client, w, "admin", "/enterprises/999999").status_code == 404


def test_park_page_lists_its_enterprises_and_circular_links(client: TestClient, session: Session) -> None:
    w = build_world(session)
    # Two more enterprises inside park A: a utiliser and a collector.
    e4 = add_enterprise(session, 4, 101.71, 26.57, EnterpriseRole.utiliser)
    e5 = add_enterprise(session, 5, 101.73, 26.59, EnterpriseRole.collector)
    assert session.get(Enterprise, e4).park_id == w.park_a  # type: ignore[union-attr]
    _batch(session, 1, w.e1, e4, "SW01", 40.0, received=39.5)
    _batch(session, 2, w.e1, e4, "SW01", 20.0, received=20.0)
    _batch(session, 3, w.e1, e4, "SW02", 10.0, received=9.9, route="disposal")
    _batch(session, 4, e5, e4, "SW02", 5.0)  # cancelled below: never moved
    _batch(session, 5, w.e3, e4, "SW01", 12.0, received=12.0)  # enters the park from Deyang
    _batch(session, 6, w.e1, e4, "SW01", 8.0, status="dispatched")  # still on the road
    session.commit()
    cancelled = session.exec(select(Manifest).where(Manifest.number == "PL2024-0000004")).one()
    cancelled.status = ManifestStatus.cancelled
    session.add(cancelled)
    session.commit()

    page = _get(client, w, "park_a", f"/parks/{w.park_a}", year=2024)
    assert page.status_code == 200, page.text
    text = page.text
    assert 'data-access="full"' in text
    members = _section(text, "members")
    assert {int(i) for i in re.findall(r'data-enterprise="(\d+)"', members)} == {w.e1, e4, e5}
    assert _figure(text, "enterprises") == "3"

    # Who uses whose waste: E1 -> E4, by category, reckoned from the batches with the engine's status sets.
    ids = {w.e1, e4, e5}
    pairs: dict[tuple[int, int, str], list[Manifest]] = {}
    for b in session.exec(select(Manifest).where(Manifest.year == 2024)).all():
        if b.shipper_id in ids and b.receiver_id in ids and b.status in SENT_STATUSES:
            pairs.setdefault((b.shipper_id, b.receiver_id, b.category_code), []).append(b)
    assert set(pairs) == {(w.e1, e4, "SW01"), (w.e1, e4, "SW02")}
    links = _section(text, "links")
    for (s, r, cat), batches in pairs.items():
        received = sum(b.weight_received_t or 0 for b in batches if b.status in RECEIVED_STATUSES)
        row = links[links.index(f'data-shipper="{s}" data-receiver="{r}" data-category="{cat}"') :]
        assert f'data-tonnes="{received}"' in row[: row.index("</tr>")]
        assert f">{len(batches)}</a>" in row[: row.index("</tr>")]
    # The disposal batch is received but not for utilisation.
    sw02 = links[links.index('data-category="SW02"') :]
    assert f">{_t(0)}<" in sw02[: sw02.index("</tr>")]

    # What stays in the park: received inside over received inside plus received outside (E1 -> E2, 29.8 t).
    within = sum(b.weight_received_t or 0 for v in pairs.values() for b in v if b.status in RECEIVED_STATUSES)
    leaving = sum(
        b.weight_received_t or 0
        for b in session.exec(select(Manifest).where(Manifest.shipper_id == w.e1)).all()
        if b.receiver_id not in ids and b.status in RECEIVED_STATUSES and b.year == 2024
    )
    assert leaving > 0
    boundary = _section(text, "boundary")
    assert f'data-total="within">{_t(within)}<' in boundary
    assert f'data-total="leaving">{_t(leaving)}<' in boundary
    assert f'data-total="entering">{_t(12.0)}<' in boundary
    assert _figure(text, "staying") == f"{percent_truncated(within / (within + leaving))}%"

    # The map: the park's boundary, its three enterprises as points, one line per linked pair.
    overlay = _overlay(text, "park-map")
    kinds = [f["properties"]["kind"] for f in overlay["features"]]
    assert kinds.count("park") == 1 and kinds.count("member") == 3 and kinds.count("link") == 1
    groups = {f["properties"]["group"] for f in overlay["features"] if f["properties"]["kind"] == "member"}
    assert groups == {"generator", "user", "other"}

    # The rate of the park for 2023 is the rate engine's (E1 alone declared: 80 of 100 t).
    assert _figure(_get(client, w, "park_a", f"/parks/{w.park_a}", year=2023).text, "rate") == "80.0%"

    # Chinese too.
    zh = _get(client, w, "bureau_pzh", f"/parks/{w.park_a}", lang="zh-CN", year=2024).text
    assert "园区内循环利用链接" in zh and "攀枝花钒钛园区" in zh


def test_park_page_scope(client: TestClient, session: Session) -> None:
    w = build_world(session)
    for role in ("ent3", "park_b", "bureau_dy"):
        assert _get(client, w, role, f"/parks/{w.park_a}").status_code == 404, role
    for role in ("admin", "bureau_sc", "bureau_pzh", "park_a"):
        page = _get(client, w, role, f"/parks/{w.park_a}")
        assert page.status_code == 200 and 'data-access="full"' in page.text, role
    # An enterprise of the park sees the park's public facts and itself, not the park's figures.
    public = _get(client, w, "ent1", f"/parks/{w.park_a}")
    assert public.status_code == 200
    assert 'data-access="public"' in public.text and 'id="links"' not in public.text
    assert 'data-figure="rate"' not in public.text and 'role="status"' in public.text
    assert set(re.findall(r'data-enterprise="(\d+)"', _section(public.text, "members"))) == {str(w.e1)}
    assert _get(client, w, "admin", "/parks/999999").status_code == 404


def _directory_ids(client: TestClient, w: World, who: str, **params: Any) -> set[int]:
    page = _get(client, w, who, "/enterprises", **params)
    assert page.status_code == 200, page.text
    if "No enterprise in your scope" in page.text:
        return set()
    return {int(i) for i in re.findall(r'data-enterprise="(\d+)"', _section(page.text, "directory"))}


def test_directory_search_is_scoped_and_filtered(client: TestClient, session: Session) -> None:
    w = build_world(session)
    assert _directory_ids(client, w, "admin") == {w.e1, w.e2, w.e3}
    assert _directory_ids(client, w, "bureau_pzh", q="测试") == {w.e1, w.e2}
    assert _directory_ids(client, w, "bureau_dy", q="测试") == {w.e3}
    assert _directory_ids(client, w, "ent1") == {w.e1}
    assert _directory_ids(client, w, "park_b") == {w.e3}
    e2 = session.get(Enterprise, w.e2)
    assert e2 is not None
    # By a fragment of the credit code, in lower case too; by English name; by role, park and prefecture.
    assert _directory_ids(client, w, "admin", q=e2.uscc[-6:].lower()) == {w.e2}
    assert _directory_ids(client, w, "admin", q="enterprise 3") == {w.e3}
    assert _directory_ids(client, w, "admin", role="utiliser") == {w.e2}
    assert _directory_ids(client, w, "admin", park=str(w.park_a)) == {w.e1}
    assert _directory_ids(client, w, "admin", prefecture="510600") == {w.e3}
    assert _directory_ids(client, w, "admin", prefecture="", park="", role="") == {w.e1, w.e2, w.e3}
    assert _directory_ids(client, w, "ent3", q=e2.uscc) == set()  # exists, but not for ent3

    # The filters offer what the user may find: ent1 sees its own prefecture and park only.
    own = _get(client, w, "ent1", "/enterprises").text
    assert re.findall(r'<option value="(\d{6})"', own) == ["510400"]
    assert re.findall(r'<option value="(\d+)"', own[own.index('id="park"') :])[:1] == [str(w.park_a)]

    # A wrong role is refused, naming the field; htmx gets the results block alone.
    bad = _get(client, w, "admin", "/enterprises", role="smelter")
    assert bad.status_code == 422 and "role" in bad.text
    fragment = client.get(
        "/enterprises",
        params={"q": "测试"},
        headers={"Authorization": f"Bearer {w.tokens['admin']}", "HX-Request": "true", "Accept-Language": "en"},
    )
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section class="card card--table" id="directory-results"')
    assert "<html" not in fragment.text


def test_directory_pages_through_long_lists(client: TestClient, session: Session) -> None:
    w = build_world(session)
    for n in range(10, 37):  # 27 more generators in Panzhihua, outside the parks
        add_enterprise(session, n, 101.50 + n / 1000, 26.60, EnterpriseRole.generator)
    session.commit()
    first = _get(client, w, "bureau_pzh", "/enterprises").text
    second = _get(client, w, "bureau_pzh", "/enterprises", page=2).text
    total = 2 + 27
    assert f'data-count="{total}"' in first
    ids_1 = set(re.findall(r'data-enterprise="(\d+)"', _section(first, "directory")))
    ids_2 = set(re.findall(r'data-enterprise="(\d+)"', _section(second, "directory")))
    assert len(ids_1) == 25 and len(ids_2) == total - 25 and not ids_1 & ids_2
    assert 'rel="next"' in first and 'rel="prev"' in second and 'rel="next"' not in second
    assert "Page 2 of 2" in second


def test_enterprise_page_of_a_battery_enterprise_shows_its_chain_flags(client: TestClient, session: Session) -> None:
    w = build_world(session)
    chain = build_chain(session, w)
    pack = code(BatteryLevel.pack, 1)
    battery.register_batteries(
        session=session, principal=system_principal(), rows=[{"code": pack, "maker_id": chain.maker}], now=NOW
    )
    # Made, fitted to a car in 2019, retired in January 2024 and never collected: lost, on the vehicle maker.
    for type_, when, reporter, extra in (
        ("transferred", "2019-03-01T10:00", chain.maker, {"counterpart_id": chain.vehicle}),
        ("installed", "2019-03-10T10:00", chain.vehicle, {"vin": VIN}),
        ("retired", "2024-01-08T10:00", chain.vehicle, {}),
    ):
        reported = (datetime.fromisoformat(when) + timedelta(hours=2)).isoformat()
        row = {"type": type_, "occurred_at": when, "reported_at": reported, "reporter_id": reporter, **extra}
        battery.record_event(session=session, principal=system_principal(), code=pack, row=row, now=NOW)
    session.commit()

    expected = battery_audit.chain_flags(
        session=session, principal=w.principals["admin"], now=datetime.now(UTC), year=2024, enterprise_id=chain.vehicle
    )
    assert expected.counts["lost"] == 1
    page = _get(client, w, "admin", f"/enterprises/{chain.vehicle}")
    assert page.status_code == 200
    text = page.text
    # Its years come from its battery events, the latest first: 2024 is shown without asking.
    assert f'href="/enterprises/{chain.vehicle}?year=2024" aria-current="page"' in text
    assert f'href="/enterprises/{chain.vehicle}?year=2019"' in text
    assert _figure(text, "chain-flags-count") == f"{expected.count} in all"
    chain_rows = _section(text, "chain-flags")
    assert chain_rows.count('data-kind="lost"') == 1 and pack in chain_rows
    # A waste-only enterprise has no battery card.
    assert 'id="chain-flags"' not in _get(client, w, "admin", f"/enterprises/{w.e2}").text


def test_pages_answer_htmx_with_their_content_block(client: TestClient, session: Session) -> None:
    w = build_world(session)
    headers = {"Authorization": f"Bearer {w.tokens['admin']}", "HX-Request": "true"}
    for url in (f"/enterprises/{w.e1}", f"/parks/{w.park_a}"):
        fragment = client.get(url, headers=headers)
        assert fragment.status_code == 200, url
        assert "<html" not in fragment.text and "data-map=" in fragment.text, url
