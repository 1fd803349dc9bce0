"""The battery trace pages: the code read as it is typed, a battery's timeline, custody path, flags and recovery,
the search page's chains at risk, and who may see what (both databases)."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.i18n import translate
from flows.access.accounts import system_principal
from flows.battery import audit as battery_audit
from flows.battery import chain as battery
from flows.battery.code import parse_battery_code
from flows.kernel.errors import InvalidInput
from flows.pages.batteries import analyse_code, flags_of
from models import Enterprise
from models.enums import BatteryLevel
from tests.access_cases_battery import CELL, MODULE, PACK, VIN, Chain, build_chain, code, seed_batteries
from tests.access_cases_trace import LATE_UPLOAD, TRACED_MODULE, TRACED_PACK, walk_chain
from tests.world import NOW, World, build_world

ADMIN = system_principal()


@pytest.fixture
def chain(session: Session) -> Chain:
    c = build_chain(session, build_world(session))
    walk_chain(session, c)
    return c


def _get(client: TestClient, url: str, token: str, *, lang: str = "en", hx: bool = False, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": lang, "Accept": "text/html"}
    if hx:
        headers["HX-Request"] = "true"
    return client.get(url, params=params or None, headers=headers, follow_redirects=False)


class Rows(HTMLParser):
    """The text of each cell of the rows carrying a given attribute (data-field, data-kind ...), row by row."""

    def __init__(self, text: str, attribute: str, within: str | None = None) -> None:
        super().__init__()
        self.attribute = attribute
        self.within = within  # only inside the element with this id
        self.rows: list[tuple[str, list[str]]] = []
        self._inside = within is None
        self._depth = 0
        self._row: tuple[str, list[str]] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self.within and a.get("id") == self.within:
            self._inside, self._depth = True, 0
        if self._inside and self.within:
            self._depth += 1
        if not self._inside:
            return
        if tag == "tr" and self.attribute in a:
            self._row = (a[self.attribute] or "", [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._inside and self.within:
            self._depth -= 1
            if self._depth == 0:
                self._inside = False
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row[1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _fields(text: str) -> dict[str, list[str]]:
    """The code's fields as the page shows them: name -> [label, positions, characters, meaning]."""
    return dict(Rows(text, "data-field").rows)


def _section(text: str, element_id: str) -> str:
    start = text.index(f'id="{element_id}"')
    return text[start : text.index("</section>", start)]


# ---------------------------------------------------------------------------------------------------------------
# The code, read as it is typed


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_parse_shows_the_fields_of_a_valid_code(client: TestClient, session: Session, lang: str) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    typed = PACK.lower()[:10] + "-" + PACK.lower()[10:]  # as printed on a plate
    response = _get(client, "/batteries/parse", w.tokens["ent1"], lang=lang, hx=True, code=typed)
    assert response.status_code == 200
    assert "<html" not in response.text  # the block under the field, not a page
    d = parse_battery_code(PACK)
    fields = _fields(response.text)
    assert list(fields) == [
        "manufacturer_code",
        "product_type",
        "battery_type",
        "specification_code",
        "traceability",
        "production_year",
        "production_month",
        "production_day",
        "serial",
    ]
    assert fields["manufacturer_code"][0] == translate(lang, "trace.field.manufacturer_code")
    assert fields["manufacturer_code"][2] == d.maker and fields["serial"][2] == d.serial
    assert fields["product_type"][3] == translate(lang, f"trace.level.{d.level.value}")
    assert fields["battery_type"][3] == translate(lang, f"trace.chem.{d.chemistry}")
    assert fields["production_year"][3] == translate(lang, "trace.meaning.year", year=d.production_date.year)
    assert fields["production_month"][3] == translate(lang, f"trace.month.{d.production_date.month}")
    assert fields["production_day"][3] == translate(lang, "trace.meaning.day", day=d.production_date.day)
    assert fields["traceability"][1] == "8–14" and fields["traceability"][2] == d.trace
    summary = translate(
        lang,
        "trace.parse.valid",
        level=translate(lang, f"trace.level.{d.level.value}"),
        chemistry=translate(lang, f"trace.chem.{d.chemistry}"),
        date=d.production_date.isoformat(),
    )
    assert summary in response.text
    # The battery is in ent1's scope: the block links to its page.
    assert f'href="/batteries/{PACK}"' in response.text


BAD_CODES = [
    (PACK[:3] + "X" + PACK[4:], "product_type", 4),
    (PACK[:4] + "Q" + PACK[5:], "battery_type", 5),
    (PACK[:8] + "*" + PACK[9:], "traceability", 9),
    (PACK[:14] + "0" + PACK[15:], "production_year", 15),
    (PACK[:15] + "D" + PACK[16:], "production_month", 16),
    (PACK[:14] + "220" + PACK[17:], "production_day", 17),  # the 31st of February 2022
    (PACK[:14] + "82Y" + PACK[17:], "production_day", 17),  # the 30th of February 2018
]


@pytest.mark.parametrize(("bad", "field", "position"), BAD_CODES)
def test_parse_names_the_wrong_field_and_its_position(
    client: TestClient, session: Session, bad: str, field: str, position: int
) -> None:
    w = build_world(session)
    with pytest.raises(InvalidInput) as refused:
        parse_battery_code(bad)
    assert refused.value.field == field  # the page names the field the parser refuses
    response = _get(client, "/batteries/parse", w.tokens["ent1"], hx=True, code=bad)
    assert response.status_code == 200
    fields = _fields(response.text)
    errors = re.search(r'<ul class="parsed__errors" id="code-errors">(.*?)</ul>', response.text, re.S)
    assert errors is not None
    assert f"Position {position}:" in html.unescape(errors.group(1))
    wrong = [name for name, cells in fields.items() if cells[3].startswith("!")]
    assert wrong == [field]
    assert 'class="is-error"' in response.text and "trace.err." not in response.text
    # In Chinese, the same field and position.
    zh = _get(client, "/batteries/parse", w.tokens["ent1"], lang="zh-CN", hx=True, code=bad)
    assert f"第 {position} 位" in zh.text


def test_parse_while_typing_reads_what_is_there_and_counts_the_rest(client: TestClient, session: Session) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    response = _get(client, "/batteries/parse", w.tokens["ent1"], hx=True, code="0d1pe")
    text = html.unescape(response.text)
    typing = translate("en", "trace.parse.typing", length=5, missing=19)
    # Shown, and said to screen readers through the live region the field points at (swapped out of band).
    assert f'<p id="code-status" hx-swap-oob="innerHTML">{typing}</p>' in text
    fields = _fields(response.text)
    assert fields["product_type"][3] == "pack" and fields["battery_type"][3] == translate("en", "trace.chem.E")
    assert fields["specification_code"][3] == translate("en", "trace.parse.pending")
    assert 'id="code-errors"' not in response.text
    # Every battery of ent1 made by maker 0D1 as a pack of chemistry E: the pack, not its module or cell.
    assert f'href="/batteries/{PACK}"' in response.text
    assert MODULE not in response.text and CELL not in response.text
    # Too long is an error even while typing.
    longer = _get(client, "/batteries/parse", w.tokens["ent1"], hx=True, code=PACK + "12")
    assert "26 characters: a code has 24; remove 2." in html.unescape(longer.text)


def test_matches_while_typing_are_scoped(client: TestClient, session: Session) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    for role, sees in (("ent1", True), ("bureau_pzh", True), ("park_a", True), ("ent3", False), ("bureau_dy", False)):
        response = _get(client, "/batteries/parse", w.tokens[role], hx=True, code="0D1")
        assert (f'href="/batteries/{MODULE}"' in response.text) is sees, role
        assert (f'href="/batteries/{CELL}"' in response.text) is sees, role


def test_without_htmx_the_parse_address_is_the_whole_search_page(client: TestClient, session: Session) -> None:
    w = build_world(session)
    response = _get(client, "/batteries/parse", w.tokens["ent1"], code="0D1P")
    assert response.status_code == 200
    assert "<html" in response.text and 'id="risk-heading"' in response.text and 'value="0D1P"' in response.text


def test_submitting_a_code_opens_its_page_or_says_what_is_wrong(client: TestClient, session: Session) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    found = _get(client, "/batteries", w.tokens["ent1"], code=" " + PACK.lower() + " ")
    assert found.status_code == 303 and found.headers["location"] == f"/batteries/{PACK}"
    short = _get(client, "/batteries", w.tokens["ent1"], code=PACK[:20])
    assert short.status_code == 422
    assert 'aria-invalid="true"' in short.text
    assert translate("en", "trace.err.too_short", length=20, missing=4) in html.unescape(short.text)
    # The error is tied to the field for screen readers: the status the field points at says it.
    assert 'aria-describedby="code-help code-status"' in short.text
    status = re.search(r'<p id="code-status"[^>]*role="status"[^>]*>(.*?)</p>', short.text, re.S)
    assert status is not None
    assert translate("en", "trace.err.too_short", length=20, missing=4) in html.unescape(status.group(1))


def test_the_reading_agrees_with_the_parser_on_every_valid_code() -> None:
    for good in (PACK, MODULE, CELL, TRACED_PACK, "X12CCPM27KLPCLE662382320", "4A6PCPM27KLPCLE742946319"):
        a = analyse_code(good)
        assert a.valid and a.decoded == parse_battery_code(good)
        assert "".join(f.value for f in a.fields) == good


# ---------------------------------------------------------------------------------------------------------------
# One battery


def test_battery_page_shows_the_timeline_in_order(client: TestClient, session: Session, chain: Chain) -> None:
    response = _get(client, f"/batteries/{TRACED_PACK}", chain.world.tokens["admin"])
    assert response.status_code == 200
    trace = battery.trace(session=session, principal=ADMIN, code=TRACED_PACK)
    timeline = _section(response.text, "timeline-heading")
    assert re.findall(r'data-event="(\w+)"', timeline) == [e.type for e in trace.events]
    assert len(trace.events) == 8 and trace.events[0].type == "produced"
    stamps = re.findall(r'<time datetime="([^"]+)">', timeline)
    assert stamps == [e.at.isoformat() for e in trace.events] and stamps == sorted(stamps)
    # Beijing time, and the late upload marked late with its deadline.
    assert "2019-03-10 10:00" in timeline
    installed = trace.events[2]
    assert installed.type == "installed" and installed.deadline is not None and installed.deadline.late
    assert f"due {installed.deadline.due.isoformat()}" in timeline
    assert timeline.count('class="tag tag--late"') == sum(1 for e in trace.events if e.deadline and e.deadline.late)
    assert f'data-figure="events">{len(trace.events)}<' in response.text
    # Enterprises link to their pages (the reader may see them all).
    assert f'href="/enterprises/{chain.vehicle}"' in timeline


def test_battery_page_draws_the_custody_path(client: TestClient, session: Session, chain: Chain) -> None:
    response = _get(client, f"/batteries/{TRACED_PACK}", chain.world.tokens["admin"])
    trace = battery.trace(session=session, principal=ADMIN, code=TRACED_PACK)
    holders = [s.enterprise.id for s in trace.custody if s.enterprise]
    assert holders == [chain.maker, chain.vehicle, chain.outlet, chain.recycler]
    places = []
    for eid in holders:
        e = session.get(Enterprise, eid)
        assert e is not None
        places.append([round(e.lon, 5), round(e.lat, 5)])
    match = re.search(r"data-overlay='([^']*)'", response.text)
    assert match is not None
    overlay = json.loads(html.unescape(match.group(1)))
    lines = [f for f in overlay["features"] if f["geometry"]["type"] == "LineString"]
    points = [f for f in overlay["features"] if f["geometry"]["type"] == "Point"]
    assert len(lines) == 1 and lines[0]["geometry"]["coordinates"] == places
    assert [p["geometry"]["coordinates"] for p in points] == places
    assert [p["properties"]["number"] for p in points] == ["1", "2", "3", "4"]
    assert [p["properties"]["current"] for p in points] == [False, False, False, True]
    assert 'data-boundaries="/api/v1/regions/geojson?level=prefecture"' in response.text
    assert 'data-fit="overlay"' in response.text
    # The same path as a list beside the map, for those who do not see the map.
    assert re.findall(r'data-stop="(\d+)"', response.text) == ["1", "2", "3", "4"]
    assert f'data-figure="custodians">{len(holders)}<' in response.text


def test_a_custodian_held_twice_is_one_place_with_both_numbers(
    client: TestClient, session: Session, chain: Chain
) -> None:
    battery.register_batteries(
        session=session, principal=ADMIN, rows=[{"code": PACK, "maker_id": chain.maker}], now=NOW
    )
    for when, giver, taker in (
        ("2020-01-01T10:00", chain.maker, chain.vehicle),
        ("2020-02-01T10:00", chain.vehicle, chain.maker),
    ):
        row = {"type": "transferred", "occurred_at": when, "reporter_id": giver, "counterpart_id": taker}
        battery.record_event(session=session, principal=ADMIN, code=PACK, row=row, now=NOW)
    session.commit()
    response = _get(client, f"/batteries/{PACK}", chain.world.tokens["admin"])
    match = re.search(r"data-overlay='([^']*)'", response.text)
    assert match is not None
    overlay = json.loads(html.unescape(match.group(1)))
    points = [f["properties"]["number"] for f in overlay["features"] if f["geometry"]["type"] == "Point"]
    assert points == ["1, 3", "2"]
    line = next(f for f in overlay["features"] if f["geometry"]["type"] == "LineString")
    assert len(line["geometry"]["coordinates"]) == 3  # there and back
    assert re.findall(r'data-stop="(\d+)"', response.text) == ["1", "2", "3"]


def test_a_battery_coded_anew_for_cascade_use_is_found_by_either_code(
    client: TestClient, session: Session, chain: Chain
) -> None:
    new_code = code(BatteryLevel.pack, 500, maker="7C1")
    battery.register_batteries(
        session=session, principal=ADMIN, rows=[{"code": PACK, "maker_id": chain.maker}], now=NOW
    )
    steps: list[tuple[str, str, int, dict[str, Any]]] = [
        ("transferred", "2019-03-01T10:00", chain.maker, {"counterpart_id": chain.vehicle}),
        ("installed", "2019-03-10T10:00", chain.vehicle, {"vin": VIN}),
        ("retired", "2024-01-08T10:00", chain.vehicle, {}),
        ("collected", "2024-01-15T10:00", chain.outlet, {}),
        ("transferred", "2024-01-20T10:00", chain.outlet, {"counterpart_id": chain.cascade}),
        ("tested", "2024-01-25T10:00", chain.cascade, {"soh": 0.81}),
        ("repurposed", "2024-02-01T10:00", chain.cascade, {"new_code": new_code, "application": "backup power"}),
    ]
    current = PACK
    for type_, when, reporter, extra in steps:
        row = {"type": type_, "occurred_at": when, "reporter_id": reporter, **extra}
        battery.record_event(session=session, principal=ADMIN, code=current, row=row, now=NOW)
        current = extra.get("new_code", current)
    session.commit()
    page = _get(client, f"/batteries/{new_code}", chain.world.tokens["admin"])
    assert page.status_code == 200
    assert 'id="recoded-note"' in page.text and f"{PACK}</span> → <span" in page.text
    fields = _fields(page.text)
    assert fields["manufacturer_code"][2] == "7C1"  # the code read is the new one
    timeline = _section(page.text, "timeline-heading")
    assert f'<a class="code" href="/batteries/{new_code}">{new_code}</a>' in timeline  # the new code, linked
    assert "81.0%" in timeline and "backup power" in timeline
    old = _get(client, f"/batteries/{PACK}", chain.world.tokens["admin"])
    assert old.status_code == 200
    assert translate("en", "trace.battery.queried", code=PACK) in old.text


def test_flags_of_the_chain_with_their_deadlines(client: TestClient, session: Session, chain: Chain) -> None:
    report = battery_audit.chain_flags(
        session=session, principal=ADMIN, now=datetime.now(UTC), code=TRACED_PACK, limit=None
    )
    kinds = sorted(f.kind.value for f in report.data)
    assert {"late_report", "below_threshold"} <= set(kinds)
    response = _get(client, f"/batteries/{TRACED_PACK}", chain.world.tokens["admin"])
    flags = Rows(response.text, "data-kind", within="flags").rows
    assert sorted(kind for kind, _cells in flags) == kinds
    late = next(f for f in report.data if f.kind == "late_report")
    row = next(cells for kind, cells in flags if kind == "late_report")
    assert row[0] == translate("en", "bflag.late_report")
    assert row[2] == late.evidence["due"]  # the deadline it was held to
    assert LATE_UPLOAD[:10] in row[4] and str(late.evidence["working_days_late"]) in row[4]
    below = next(cells for kind, cells in flags if kind == "below_threshold")
    assert "nickel 95.0% (at least 98.0%)" in below[4]
    assert f'data-figure="flags"><a href="#flags-heading">{len(kinds)}<' in response.text
    # In Chinese, the explanation too.
    zh = _get(client, f"/batteries/{TRACED_PACK}", chain.world.tokens["admin"], lang="zh-CN")
    zh_rows = dict(Rows(zh.text, "data-kind", within="flags").rows)
    assert zh_rows["late_report"][0] == translate("zh-CN", "bflag.late_report")
    assert "个工作日" in zh_rows["late_report"][4]


def test_a_module_shows_the_flags_of_the_pack_it_sits_in(client: TestClient, session: Session, chain: Chain) -> None:
    response = _get(client, f"/batteries/{TRACED_MODULE}", chain.world.tokens["admin"])
    assert response.status_code == 200
    report = battery_audit.chain_flags(
        session=session, principal=ADMIN, now=datetime.now(UTC), code=TRACED_PACK, limit=None
    )
    flags = Rows(response.text, "data-kind", within="flags").rows
    assert sorted(k for k, _c in flags) == sorted(f.kind.value for f in report.data)
    assert all(TRACED_PACK in cells[0] for _k, cells in flags)  # named as the pack's
    genealogy = _section(response.text, "identity-heading")
    assert f'href="/batteries/{TRACED_PACK}" data-rel="ancestor"' in genealogy
    # The module's own life: the pack's events until it was opened, each marked as recorded on the pack.
    trace = battery.trace(session=session, principal=ADMIN, code=TRACED_MODULE)
    timeline = _section(response.text, "timeline-heading")
    assert re.findall(r'data-event="(\w+)"', timeline) == [e.type for e in trace.events]
    assert timeline.count(translate("en", "trace.timeline.via", code=TRACED_PACK)) == sum(
        1 for e in trace.events if e.via
    )
    pack = _get(client, f"/batteries/{TRACED_PACK}", chain.world.tokens["admin"])
    assert f'href="/batteries/{TRACED_MODULE}" data-rel="child"' in pack.text


@pytest.mark.parametrize("role", ["admin", "bureau_sc", "bureau_pzh", "ent1"])
def test_one_pass_over_the_chain_finds_what_chain_flags_finds_code_by_code(
    session: Session, chain: Chain, role: str
) -> None:
    principal = chain.world.principals[role]
    now = datetime.now(UTC)
    codes = [TRACED_MODULE, TRACED_PACK]
    expected = [
        f.model_dump()
        for c in codes
        for f in battery_audit.chain_flags(session=session, principal=principal, now=now, code=c, limit=None).data
    ]
    found = [f.model_dump() for f in flags_of(session=session, principal=principal, now=now, codes=codes)]
    key = lambda f: (f["on"], f["kind"], f["code"], f["message"])  # noqa: E731
    assert sorted(found, key=key) == sorted(expected, key=key)
    assert found == sorted(found, key=lambda f: (f["on"], f["kind"].value, f["code"]))
    assert (len(found) > 0) is (role in ("admin", "bureau_sc"))  # the flags are answered for in Chengdu and Yibin


def test_a_battery_without_flags_says_so(client: TestClient, session: Session) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    response = _get(client, f"/batteries/{PACK}", w.tokens["ent1"])
    assert response.status_code == 200
    assert 'id="flags-none"' in response.text and 'id="flags"' not in response.text
    # The pack holds the module, which holds the cell.
    assert f'href="/batteries/{MODULE}" data-rel="child"' in response.text


def test_recovery_against_the_edition_in_force(client: TestClient, session: Session, chain: Chain) -> None:
    response = _get(client, f"/batteries/{TRACED_PACK}", chain.world.tokens["admin"])
    recovery = _section(response.text, "recovery-heading")
    assert "edition 2024" in recovery
    rows = {cells[0]: cells for _m, cells in Rows(recovery, "data-metal").rows}
    assert rows["lithium"][1:5] == ["5", "4.7", "94.0%", "90.0%"] and "meets" in rows["lithium"][5]
    assert rows["nickel"][3:5] == ["95.0%", "98.0%"] and "below" in rows["nickel"][5]
    assert translate("en", "trace.recovery.not_compliant") in recovery


@pytest.mark.parametrize("role", ["bureau_dy", "ent3", "park_b"])
def test_out_of_scope_users_are_told_not_found(client: TestClient, chain: Chain, role: str) -> None:
    response = _get(client, f"/batteries/{TRACED_PACK}", chain.world.tokens[role])
    assert response.status_code == 404
    assert translate("en", "trace.missing.title") in response.text
    assert 'id="timeline"' not in response.text and "data-overlay" not in response.text
    assert "Chain recycler" not in response.text  # nothing of the chain leaks


@pytest.mark.parametrize("who", ["bureau_pzh", "bureau_sc", "park_a", "ent1", "recycler", "vehicle"])
def test_those_who_touched_it_or_govern_them_see_it(client: TestClient, chain: Chain, who: str) -> None:
    token = chain.world.tokens.get(who) or chain.tokens[who]
    response = _get(client, f"/batteries/{TRACED_PACK}", token)
    assert response.status_code == 200, who
    assert 'id="timeline"' in response.text


def test_unknown_or_malformed_codes_get_a_friendly_not_found(client: TestClient, session: Session) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    unknown = PACK[:-3] + "777"
    response = _get(client, f"/batteries/{unknown}", w.tokens["admin"])
    assert response.status_code == 404
    assert translate("en", "trace.missing.lead", code=unknown) in response.text
    assert 'action="/batteries"' in response.text  # search again from here
    malformed = _get(client, "/batteries/NOT-A-CODE", w.tokens["admin"], lang="zh-CN")
    assert malformed.status_code == 404
    assert translate("zh-CN", "trace.missing.title") in malformed.text
    assert translate("zh-CN", "trace.err.too_short", length=8, missing=16) in html.unescape(malformed.text)


# ---------------------------------------------------------------------------------------------------------------
# The search page before a search


def test_search_page_lists_chains_at_risk_and_recent_batteries(
    client: TestClient, session: Session, chain: Chain
) -> None:
    w: World = chain.world
    report = battery_audit.chain_flags(session=session, principal=ADMIN, now=datetime.now(UTC), limit=None)
    response = _get(client, "/batteries", w.tokens["admin"])
    assert response.status_code == 200
    risk = Rows(response.text, "data-kind", within="risk-flags").rows
    assert sorted(k for k, _c in risk) == sorted(f.kind.value for f in report.data)
    assert f'<a class="code" href="/batteries/{TRACED_PACK}">' in _section(response.text, "risk-heading")
    recent = _section(response.text, "recent-heading")
    assert f'href="/batteries/{TRACED_PACK}"' in recent
    assert f'href="/batteries/{TRACED_MODULE}"' in recent  # opened, it has a life of its own
    # A year narrows the flags to those of that year.
    in_2019 = _get(client, "/batteries", w.tokens["admin"], year="2019")
    kinds_2019 = [k for k, _c in Rows(in_2019.text, "data-kind", within="risk-flags").rows]
    assert kinds_2019 == [f.kind.value for f in report.data if f.year == 2019] and kinds_2019
    # Deyang sees none of it.
    other = _get(client, "/batteries", w.tokens["bureau_dy"])
    assert translate("en", "trace.risk.none") in other.text and translate("en", "trace.recent.none") in other.text
    assert TRACED_PACK not in other.text


def test_search_page_in_chinese(client: TestClient, chain: Chain) -> None:
    response = _get(client, "/batteries", chain.world.tokens["admin"], lang="zh-CN")
    assert '<html lang="zh-CN">' in response.text
    assert translate("zh-CN", "trace.title") in response.text
    assert '<label for="code">' in response.text and 'role="search"' in response.text
