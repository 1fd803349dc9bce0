"""The audit workspace: the drill-down's figures against flows.waste.rates, the rows behind every figure, scope
refusals, locks that refuse writes, corrections that apply, and the exports (XLSX, CSV, GeoJSON)."""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from html import unescape

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlmodel import Session, col, func, select

from app.auth import SESSION_COOKIE, signed
from app.settings import Settings
from flows.access import accounts
from flows.kernel.numbers import Numbers
from flows.waste import rates
from flows.waste.flags import list_flags
from models import CorrectionRequest, Declaration, Licence, Manifest, PeriodLock
from models.enums import LicenceActivity, ManifestStatus, Route
from tests.world import NOW, World, build_world, t

YEAR = 2024


def _batch(
    session: Session, n: int, parties: tuple[int, int], category: str, route: Route, tonnes: tuple[float, float]
) -> int:
    shipper, receiver = parties
    sent, got = tonnes
    batch = Manifest(
        number=f"SC2024-9{n:06d}",
        shipper_id=shipper,
        receiver_id=receiver,
        category_code=category,
        route=route,
        year=YEAR,
        status=ManifestStatus.received,
        weight_dispatched_t=t(sent),
        weight_received_t=t(got),
        dispatched_at=datetime(2024, 6, n, 8, tzinfo=UTC),
        received_at=datetime(2024, 6, n, 15, tzinfo=UTC),
        created_at=datetime(2024, 6, n, tzinfo=UTC),
    )
    session.add(batch)
    session.flush()
    assert batch.id is not None
    return batch.id


def _world(session: Session) -> World:
    """The access world with a year of declarations and batches, a licensed utiliser and some planted faults."""
    w = build_world(session)
    rows: list[tuple[int, str, dict[str, float]]] = [
        # e1 in park A: balanced; e2 outside the park; e3 in Deyang breaks its balance by 50 t; SW05 (tailings)
        # is outside the target set and must be left out of every figure.
        (
            w.e1,
            "SW01",
            {"generated_t": 500, "utilised_t": 420, "utilised_prior_t": 20, "disposed_t": 40, "stored_t": 60},
        ),
        (w.e1, "SW02", {"generated_t": 200, "utilised_t": 150, "stored_t": 50}),
        (w.e1, "SW05", {"generated_t": 1000, "utilised_t": 10, "stored_t": 990}),
        (
            w.e2,
            "SW03",
            {"generated_t": 80, "utilised_t": 60, "stored_t": 20, "disposed_t": 7.5, "disposed_prior_t": 2.5},
        ),
        (w.e3, "SW01", {"generated_t": 300, "utilised_t": 100, "disposed_t": 50, "stored_t": 100}),
    ]
    for enterprise, category, figures in rows:
        fields = {"enterprise_id": enterprise, "category_code": category, "year": YEAR, **figures}
        session.add(Declaration.model_validate(fields))
    session.add(
        Licence(
            enterprise_id=w.e2,
            category_code="SW01",
            activity=LicenceActivity.utilisation,
            capacity_t=t(1_000_000),
            licence_no="L-E2-SW01",
            valid_from=date(2020, 1, 1),
        )
    )
    _batch(session, 3, (w.e3, w.e2), "SW01", Route.road_base, (45.0, 45.5))  # counts for e3 (Deyang)
    _batch(session, 4, (w.e1, w.e2), "SW02", Route.building_materials, (50.0, 40.0))  # weight gap, no licence
    session.commit()
    return w


def _bearer(w: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}", "Accept": "text/html"}


def _sign_in(client: TestClient, session: Session, settings: Settings, username: str) -> str:
    user = accounts.get_user(session=session, username=username)
    raw, csrf = accounts.start_session(session=session, user=user, now=NOW.replace(year=2099))
    session.commit()
    client.cookies.set(SESSION_COOKIE, signed(raw, settings.secret_key))
    return csrf


UNITS = {"吨", "万吨", "t", "kt", "Mt"}


def _text(html: str) -> str:
    # The figure with its unit ("8.00 吨"), without what follows it (a standing mark, a note).
    words = unescape(re.sub(r"<[^>]+>", " ", html)).split()
    return " ".join(words[:2] if len(words) > 1 and words[1] in UNITS else words[:1])


def _rows(page: str, table: str) -> dict[str, dict[str, tuple[str, str | None]]]:
    """The rows of a drill-down table: key -> figure -> (text shown, link)."""
    body = re.search(rf'id="{table}"(.*?)</table>', page, re.S)
    assert body, table
    out: dict[str, dict[str, tuple[str, str | None]]] = {}
    for key, row in re.findall(r'<tr data-key="([^"]*)">(.*?)</tr>', body.group(1), re.S):
        cells: dict[str, tuple[str, str | None]] = {}
        for figure, cell in re.findall(r'<td class="[^"]*" data-figure="([\w-]+)">(.*?)</td>', row, re.S):
            href = re.search(r'href="([^"]+)"', cell)
            cells[figure] = (_text(cell), unescape(href.group(1)) if href else None)
        drill = re.search(r'<th scope="row">\s*<a href="([^"]+)" class="audit-drill"', row)
        cells["drill"] = ("", unescape(drill.group(1)) if drill else None)
        out[key] = cells
    return out


def _t(value: float | Decimal) -> str:
    return Numbers("zh-CN").tonnes(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{rates.percent_truncated(value)}%"


def _assert_row(cells: dict[str, tuple[str, str | None]], row: rates.RateFigures, extras: dict[str, float]) -> None:
    assert cells["generated"][0] == _t(row.generated_t)
    assert cells["utilised"][0] == _t(row.utilised_t)
    assert cells["rate"][0] == _pct(row.rate)
    assert cells["bottom-up"][0] == _t(row.manifest_utilised_t)
    assert cells["disposed"][0] == _t(extras["disposed_t"])
    assert cells["stored"][0] == _t(extras["stored_t"])


def _declared(session: Session, ids: list[int], field: str, codes: list[str]) -> float:
    query = select(func.coalesce(func.sum(getattr(Declaration, field)), 0.0)).where(
        col(Declaration.enterprise_id).in_(ids),
        col(Declaration.year) == YEAR,
        col(Declaration.category_code).in_(codes),
    )
    return float(session.exec(query).one())


def test_drill_down_figures_equal_the_rate_engine(client: TestClient, session: Session) -> None:
    w = _world(session)
    sc = w.principals["bureau_sc"]
    page = client.get(f"/audit?year={YEAR}", headers=_bearer(w, "bureau_sc"))
    assert page.status_code == 200
    report = rates.utilisation(session=session, principal=sc, year=YEAR, by="region")
    shown = _rows(page.text, "children-prefecture-table")
    assert len(shown) == 21  # every prefecture, with or without data
    codes = report.categories
    for row in report.rows or []:
        assert row.key is not None
        ids = {"510400": [w.e1, w.e2], "510600": [w.e3]}.get(row.key, [])
        extras = {f: _declared(session, ids, f, codes) for f in ("disposed_t", "stored_t")}
        _assert_row(shown[row.key], row, extras)
    # The scope's own figures head the page: the engine's, tailings left out.
    assert 'data-figure="rate"><a class="audit-figure" href="' in page.text
    assert re.search(rf'data-figure="generated">.*?>{re.escape(_t(report.generated_t))}<', page.text)
    assert report.generated_t == 500 + 200 + 80 + 300
    # Panzhihua: the park and the enterprises outside every park, then the counties.
    pzh = client.get(shown["510400"]["drill"][1] or "", headers=_bearer(w, "bureau_sc"))
    assert pzh.status_code == 200
    by_park = rates.utilisation(session=session, principal=sc, year=YEAR, region="510400", by="park")
    parks = _rows(pzh.text, "children-park-table")
    assert set(parks) == {str(w.park_a), "none"}
    for row in by_park.rows or []:
        key = row.key or "none"
        ids = [w.e1] if key == str(w.park_a) else [w.e2]
        extras = {f: _declared(session, ids, f, codes) for f in ("disposed_t", "stored_t")}
        _assert_row(parks[key], row, extras)
    assert parks["none"]["drill"][1] is None  # no level of its own, but its figures still link to their rows
    # Park A -> E1 -> its batches, each linking to the batch page.
    park = client.get(parks[str(w.park_a)]["drill"][1] or "", headers=_bearer(w, "bureau_sc"))
    enterprises = _rows(park.text, "children-enterprise-table")
    assert set(enterprises) == {str(w.e1)}
    e1 = client.get(enterprises[str(w.e1)]["drill"][1] or "", headers=_bearer(w, "bureau_sc"))
    assert e1.status_code == 200
    by_category = rates.utilisation(session=session, principal=sc, year=YEAR, enterprise=w.e1, by="category")
    categories = _rows(e1.text, "children-category-table")
    assert set(categories) == {"SW01", "SW02"}  # the declared and shipped categories of the set
    assert categories["SW01"]["bottom-up"][0] == _t(29.8)  # the received batch to the licensed utiliser
    assert {r.key: r.utilised_t for r in by_category.rows or [] if r.key in categories} == {"SW01": 420, "SW02": 150}
    batch_ids = re.findall(r'<a class="code" href="/batches/(\d+)">', e1.text)
    assert str(w.batch_received) in batch_ids and str(w.batch_draft) in batch_ids
    assert 'href="/enterprises/' in e1.text


DECLARED = ("generated_t", "utilised_t", "utilised_prior_t", "disposed_t", "stored_t", "dumped_t")


def _cells(tr: str) -> dict[str, str]:
    """A row of the declarations page: its tonnes by column, in the page's order."""
    return dict(zip(DECLARED, re.findall(r'data-value="([^"]+)"', tr), strict=True))


def test_rows_pages_sum_to_the_figures(client: TestClient, session: Session) -> None:
    w = _world(session)
    headers = _bearer(w, "bureau_pzh")
    pages = [f"/audit?year={YEAR}", f"/audit?park={w.park_a}&year={YEAR}", f"/audit?enterprise={w.e1}&year={YEAR}"]
    checked = 0
    for url in pages:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.text[:300]
        for table in re.findall(r'id="(children-\w+-table)"', page.text):
            for key, cells in _rows(page.text, table).items():
                for figure, column in (("generated", "generated_t"), ("stored", "stored_t"), ("bottom-up", None)):
                    shown, href = cells[figure]
                    assert href, (url, key, figure)
                    rows = client.get(href, headers=headers)
                    assert rows.status_code == 200, (href, rows.text[:300])
                    if "<tbody>" not in rows.text:
                        assert shown == _t(0) and 'class="empty"' in rows.text, (href, shown)
                        continue
                    listed = rows.text.split("<tbody>")[1].split("</tbody>")[0]
                    if column is None:
                        assert "kind=batches" in href
                        values = re.findall(r'data-value="([^"]+)"', listed)
                        total = re.search(r'data-total="weight_received_t">([^<]+)<', rows.text)
                    else:
                        # Every row of the declarations page: its columns in order, the one wanted picked out.
                        values = [_cells(tr)[column] for tr in re.findall(r"<tr.*?</tr>", listed, re.S)]
                        total = re.search(rf'data-total="{column}">([^<]+)<', rows.text)
                    assert _t(math.fsum(float(v) for v in values)) == shown, (href, values, shown)
                    assert total and total.group(1) == shown
                    checked += 1
    assert checked >= 15


def test_rows_pages_list_exactly_the_counted_rows(client: TestClient, session: Session) -> None:
    w = _world(session)
    headers = _bearer(w, "bureau_sc")
    declared = client.get(f"/audit/rows?kind=declarations&region=510400&year={YEAR}", headers=headers)
    assert declared.status_code == 200
    ids = set(re.findall(r'data-declaration="(\d+)"', declared.text))
    expected = session.exec(
        select(Declaration.id).where(
            col(Declaration.year) == YEAR,
            col(Declaration.enterprise_id).in_([w.e1, w.e2]),
            col(Declaration.category_code) != "SW05",
        )
    ).all()
    assert ids == {str(i) for i in expected}
    shipped = client.get(f"/audit/rows?kind=batches&region=510400&year={YEAR}", headers=headers)
    assert set(re.findall(r'data-batch="(\d+)"', shipped.text)) == {str(w.batch_received)}
    outside = client.get(f"/audit/rows?kind=declarations&region=510400&outside_parks=1&year={YEAR}", headers=headers)
    assert re.findall(r'data-total="generated_t">([^<]+)<', outside.text) == [_t(80)]
    bad = client.get(f"/audit/rows?kind=declarations&enterprise={w.e1}&category=SW05&year={YEAR}", headers=headers)
    assert bad.status_code == 422 and "SW05" in bad.text


def test_scope_refusals(client: TestClient, session: Session) -> None:
    w = _world(session)
    dy = _bearer(w, "bureau_dy")
    assert client.get("/audit?region=510400", headers=dy).status_code == 403
    assert client.get(f"/audit?park={w.park_a}", headers=dy).status_code == 404
    assert client.get(f"/audit?enterprise={w.e1}", headers=dy).status_code == 404
    assert client.get(f"/audit/rows?kind=batches&enterprise={w.e1}", headers=dy).status_code == 404
    assert client.get("/audit/layers/regions.geojson?region=510400", headers=dy).status_code == 403
    assert client.get("/audit/export.csv?region=510400", headers=dy).status_code == 403
    for role in ("ent1", "park_a"):
        for url in ("/audit", "/audit/flags", "/audit/locks", "/audit/corrections", "/audit/export.xlsx"):
            assert client.get(url, headers=_bearer(w, role)).status_code == 403, (role, url)
    own = client.get(f"/audit?year={YEAR}", headers=_bearer(w, "bureau_pzh"))
    assert own.status_code == 200
    assert "德阳" not in own.text and str(w.park_b) not in _rows(own.text, "children-park-table")
    deyang = client.get(f"/audit?year={YEAR}", headers=dy)
    assert set(_rows(deyang.text, "children-park-table")) == {str(w.park_b)}


def _declaration(session: Session, enterprise: int, category: str, year: int) -> Declaration | None:
    session.expire_all()
    return session.exec(
        select(Declaration).where(
            Declaration.enterprise_id == enterprise, Declaration.category_code == category, Declaration.year == year
        )
    ).first()


def test_locked_year_refuses_writes_until_unlocked(client: TestClient, session: Session, settings: Settings) -> None:
    w = _world(session)
    csrf = _sign_in(client, session, settings, "bureau_pzh")
    page = client.get("/audit/locks")
    assert page.status_code == 200 and 'name="region_adcode"' in page.text
    assert client.post("/audit/locks", data={"region_adcode": "510400", "year": YEAR}).status_code == 403  # no CSRF
    form = {"region_adcode": "510400", "year": YEAR, "csrf_token": csrf, "confirm": "true"}
    locked = client.post("/audit/locks", data=form)
    assert locked.status_code == 200  # followed the redirect back to the list
    assert f'data-lock="510400/{YEAR}"' in locked.text and "bureau_pzh" in locked.text
    again = client.post("/audit/locks", data=form)
    assert again.status_code == 409 and 'role="alert"' in again.text
    drill = client.get(f"/audit?year={YEAR}")
    assert 'class="audit-lock"' in drill.text

    ent1 = {"Authorization": f"Bearer {w.tokens['ent1']}"}
    before = _declaration(session, w.e1, "SW01", YEAR)
    assert before is not None and before.generated_t == 500
    refused = client.post(
        "/api/v1/declarations",
        json={"enterprise_id": w.e1, "category_code": "SW01", "year": YEAR, "generated_t": 1},
        headers=ent1,
    )
    assert refused.status_code == 423 and "locked" in refused.json()["detail"]
    after = _declaration(session, w.e1, "SW01", YEAR)
    assert after is not None and after.generated_t == 500
    patched = client.patch(f"/api/v1/manifests/{w.batch_draft}", json={"weight_dispatched_t": 1.0}, headers=ent1)
    assert patched.status_code == 423
    session.expire_all()
    draft = session.get(Manifest, w.batch_draft)
    assert draft is not None and draft.weight_dispatched_t == 30.0

    # bureau_dy cannot lift Panzhihua's lock
    dy = client.post(
        "/audit/locks/unlock", data={"region_adcode": "510400", "year": YEAR}, headers=_bearer(w, "bureau_dy")
    )
    assert dy.status_code == 403
    unlocked = client.post("/audit/locks/unlock", data={"region_adcode": "510400", "year": YEAR, "csrf_token": csrf})
    assert unlocked.status_code == 200 and f'data-lock="510400/{YEAR}"' not in unlocked.text
    session.expire_all()
    assert session.get(PeriodLock, ("510400", YEAR)) is None
    saved = client.post(
        "/api/v1/declarations",
        json={"enterprise_id": w.e1, "category_code": "SW01", "year": YEAR, "generated_t": 1},
        headers=ent1,
    )
    assert saved.status_code == 200
    changed = _declaration(session, w.e1, "SW01", YEAR)
    assert changed is not None and changed.generated_t == 1


def test_correction_is_approved_and_applied(client: TestClient, session: Session, settings: Settings) -> None:
    w = _world(session)
    ent1 = {"Authorization": f"Bearer {w.tokens['ent1']}"}
    filed = []
    for generated in (5, 7):
        response = client.post(
            "/api/v1/corrections",
            json={
                "table": "declaration",
                "reason": "scale fault",
                "payload": {"enterprise_id": w.e1, "category_code": "SW02", "year": 2021, "generated_t": generated},
            },
            headers=ent1,
        )
        assert response.status_code == 201, response.text
        filed.append(response.json()["id"])
    assert _declaration(session, w.e1, "SW02", 2021) is None  # nothing changes before a decision
    csrf = _sign_in(client, session, settings, "bureau_pzh")
    page = client.get("/audit/corrections")
    assert page.status_code == 200
    assert all(f'data-correction="{i}"' in page.text for i in filed)
    assert "5.0" in page.text and "scale fault" in page.text

    approved = client.post(f"/audit/corrections/{filed[0]}/approve", data={"note": "ticket seen", "csrf_token": csrf})
    assert approved.status_code == 200
    row = _declaration(session, w.e1, "SW02", 2021)
    assert row is not None and row.generated_t == 5
    status = session.exec(select(CorrectionRequest.status).where(CorrectionRequest.id == filed[0])).one()
    assert status == "approved"

    empty = client.post(f"/audit/corrections/{filed[1]}/reject", data={"note": " ", "csrf_token": csrf})
    assert empty.status_code == 422 and 'aria-invalid="true"' in empty.text
    session.expire_all()
    assert session.exec(select(CorrectionRequest.status).where(CorrectionRequest.id == filed[1])).one() == "pending"
    rejected = client.post(f"/audit/corrections/{filed[1]}/reject", data={"note": "no ticket", "csrf_token": csrf})
    assert rejected.status_code == 200 and "no ticket" in rejected.text
    session.expire_all()
    assert session.exec(select(CorrectionRequest.status).where(CorrectionRequest.id == filed[1])).one() == "rejected"
    row = _declaration(session, w.e1, "SW02", 2021)
    assert row is not None and row.generated_t == 5  # the rejected one changed nothing
    twice = client.post(f"/audit/corrections/{filed[0]}/approve", data={"csrf_token": csrf})
    assert twice.status_code == 409


def test_xlsx_report_matches_the_page(client: TestClient, session: Session) -> None:
    w = _world(session)
    headers = _bearer(w, "bureau_sc")
    response = client.get(f"/audit/export.xlsx?year={YEAR}", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f"510000-{YEAR}.xlsx" in response.headers["content-disposition"]
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    assert len(book.sheetnames) == 4
    breakdown = list(book.worksheets[1].iter_rows(values_only=True))
    header = list(breakdown[0])
    rows = {str(r[header.index(_col("key"))]): r for r in breakdown[1:]}
    page = _rows(client.get(f"/audit?year={YEAR}", headers=headers).text, "children-prefecture-table")
    for key in ("510400", "510600", "510100"):
        r = rows[key]
        assert _t(float(r[header.index(_col("generated_t"))])) == page[key]["generated"][0]
        assert _t(float(r[header.index(_col("utilised_t"))])) == page[key]["utilised"][0]
        assert _t(float(r[header.index(_col("manifest_utilised_t"))])) == page[key]["bottom-up"][0]
        shown = page[key]["rate"][0]
        value = r[header.index(_col("rate_pct"))]
        assert shown == ("–" if value is None else f"{value:.1f}%")
    total = rows["510000"]
    report = rates.utilisation(session=session, principal=w.principals["bureau_sc"], year=YEAR)
    assert total[header.index(_col("generated_t"))] == pytest.approx(report.generated_t)
    assert total[header.index(_col("rate"))] == pytest.approx(report.rate)
    declarations = list(book.worksheets[2].iter_rows(values_only=True))
    assert len(declarations) - 1 == report.declarations  # every declaration of the formula, tailings left out
    flags = list(book.worksheets[3].iter_rows(values_only=True))
    expected = list_flags(session=session, principal=w.principals["bureau_sc"], year=YEAR, limit=None)
    assert len(flags) - 1 == expected.count > 0


def _col(key: str) -> str:
    # The headers of the files in the request's language (the test client asks for none: the default, zh-CN).
    from app.i18n import translate

    return translate("zh-CN", f"audit.col.{key}")


def test_csv_export_has_a_bom_and_the_engine_figures(client: TestClient, session: Session) -> None:
    w = _world(session)
    response = client.get(f"/audit/export.csv?region=510400&year={YEAR}", headers=_bearer(w, "bureau_pzh"))
    assert response.status_code == 200
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert "510400" in response.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header = table[0]
    assert header[0] == _col("year") and _col("generated_t") in header
    first = dict(zip(header, table[1], strict=True))
    report = rates.utilisation(session=session, principal=w.principals["bureau_pzh"], year=YEAR, region="510400")
    assert first[_col("key")] == "510400"
    assert float(first[_col("generated_t")]) == pytest.approx(report.generated_t)
    assert float(first[_col("rate")]) == pytest.approx(report.rate)
    assert first[_col("rate_pct")] == str(rates.percent_truncated(report.rate or 0))
    keys = [row[header.index(_col("key"))] for row in table[2:]]
    assert str(w.park_a) in keys and "none" in keys and "510402" in keys


def test_geojson_layers_are_scoped(client: TestClient, session: Session) -> None:
    w = _world(session)
    for role, prefix, parks, enterprises in (
        ("bureau_pzh", "5104", {w.park_a}, {w.e1, w.e2}),
        ("bureau_dy", "5106", {w.park_b}, {w.e3}),
    ):
        headers = _bearer(w, role)
        regions = client.get(f"/audit/layers/regions.geojson?year={YEAR}", headers=headers)
        assert regions.status_code == 200 and regions.headers["content-type"].startswith("application/geo+json")
        data = regions.json()
        assert data["type"] == "FeatureCollection" and data["features"]
        for feature in data["features"]:
            assert feature["type"] == "Feature"
            assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
            assert feature["properties"]["adcode"].startswith(prefix)
            assert feature["properties"]["class"] in ("meets", "near", "below", "over_100", "no_data")
        layer = client.get(f"/audit/layers/parks.geojson?year={YEAR}", headers=headers).json()
        assert {f["properties"]["id"] for f in layer["features"]} == parks
        points = client.get(f"/audit/layers/enterprises.geojson?year={YEAR}", headers=headers).json()
        assert {f["id"] for f in points["features"]} == enterprises
        assert all(f["geometry"]["type"] == "Point" and f["properties"]["roles"] for f in points["features"])
    pzh = client.get(f"/audit/layers/regions.geojson?year={YEAR}", headers=_bearer(w, "bureau_pzh")).json()
    east = next(f for f in pzh["features"] if f["properties"]["adcode"] == _county(session, w.e1))
    report = rates.utilisation(session=session, principal=w.principals["bureau_pzh"], year=YEAR, region="510400")
    assert east["properties"]["generated_t"] == pytest.approx(700)  # e1's SW01 and SW02 lie in its county
    assert report.generated_t == pytest.approx(780)


def _county(session: Session, enterprise_id: int) -> str:
    from models import Enterprise

    e = session.get(Enterprise, enterprise_id)
    assert e is not None and e.county_adcode
    return e.county_adcode


def test_flags_queue_filters_and_matches_the_drill_down(client: TestClient, session: Session) -> None:
    w = _world(session)
    headers = _bearer(w, "bureau_sc")
    page = client.get(f"/audit/flags?year={YEAR}", headers=headers)
    assert page.status_code == 200
    expected = list_flags(session=session, principal=w.principals["bureau_sc"], year=YEAR, limit=None)
    assert len(re.findall(r"<tr data-kind=", page.text)) == expected.count
    balance = client.get(f"/audit/flags?year={YEAR}&kind=balance_break", headers=headers)
    kinds = re.findall(r'<tr data-kind="([a-z_0-9]+)"', balance.text)
    breaks = list_flags(session=session, principal=w.principals["bureau_sc"], year=YEAR, kinds="balance_break")
    assert kinds == ["balance_break"] * breaks.count and breaks.count == 2  # e3's 50 t and e2's 5 t
    assert 'data-subject="declaration/' in balance.text
    # The drill-down's flag count of a prefecture is the number its flags queue lists.
    drill = _rows(client.get(f"/audit?year={YEAR}", headers=headers).text, "children-prefecture-table")
    for key in ("510400", "510600"):
        shown, href = drill[key]["flags"]
        assert href and f"region={key}" in href
        queue = client.get(href, headers=headers)
        assert len(re.findall(r"<tr data-kind=", queue.text)) == int(shown) > 0
    e3 = client.get(f"/audit/flags?year={YEAR}&enterprise={w.e3}", headers=headers)
    assert "balance_break" in e3.text
    assert client.get(f"/audit/flags?year={YEAR}&enterprise={w.e1}", headers=_bearer(w, "bureau_dy")).status_code == 404
    assert client.get(f"/audit/flags?year={YEAR}&region=510400", headers=_bearer(w, "bureau_dy")).status_code == 403
    chains = client.get(f"/audit/flags?tab=battery&year={YEAR}", headers=headers)
    assert chains.status_code == 200 and 'aria-current="page">' in chains.text


def test_pages_speak_both_languages(client: TestClient, session: Session) -> None:
    w = _world(session)
    headers = _bearer(w, "bureau_sc")
    for url in (f"/audit?year={YEAR}", "/audit/flags", "/audit/locks", "/audit/corrections"):
        zh = client.get(url, headers={**headers, "Accept-Language": "zh-CN"})
        en = client.get(url, headers={**headers, "Accept-Language": "en"})
        assert zh.status_code == en.status_code == 200
        assert '<html lang="zh-CN">' in zh.text and '<html lang="en">' in en.text
        assert "audit." not in re.sub(r'(href|class|id|data-[\w-]+)="[^"]*"', "", en.text).split("<main")[1]
    assert "逐级核查" in client.get("/audit", headers={**headers, "Accept-Language": "zh-CN"}).text
    assert "Drill-down" in client.get("/audit", headers={**headers, "Accept-Language": "en"}).text


def test_exports_keep_formulas_as_text(client: TestClient, session: Session) -> None:
    w = _world(session)
    from models import Enterprise

    e1 = session.get(Enterprise, w.e1)
    assert e1 is not None
    e1.name_zh = '=HYPERLINK("http://example.invalid","x")'
    session.add(e1)
    session.commit()
    headers = _bearer(w, "bureau_pzh")
    table = client.get(f"/audit/export.csv?park={w.park_a}&year={YEAR}", headers=headers).content.decode("utf-8-sig")
    names = [row[3] for row in csv.reader(io.StringIO(table))][1:]
    assert "'" + e1.name_zh in names and e1.name_zh not in names
    book = load_workbook(
        io.BytesIO(client.get(f"/audit/export.xlsx?park={w.park_a}&year={YEAR}", headers=headers).content)
    )
    values = [c.value for row in book.worksheets[1].iter_rows() for c in row]
    assert "'" + e1.name_zh in values
    assert all(c.data_type != "f" for ws in book.worksheets for row in ws.iter_rows() for c in row)
