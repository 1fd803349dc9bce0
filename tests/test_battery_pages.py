"""Battery work pages: registering a battery and logging the next allowed event in the browser's forms, through the
API's writers, refused by field in the reader's language with nothing saved (both databases)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.settings import Settings
from flows.access.accounts import system_principal
from flows.battery import chain as battery
from models import Battery, BatteryEvent, RecoveryReport
from models.enums import BatteryLevel
from tests.access_cases_battery import VIN, Chain, build_chain, code
from tests.browser import serve
from tests.world import NOW, build_world

NEW_PACK = code(BatteryLevel.pack, 501)
NEW_MODULE = code(BatteryLevel.module, 502)


@pytest.fixture
def chain(session: Session) -> Chain:
    return build_chain(session, build_world(session))


def _headers(token: str, lang: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept-Language": lang, "Accept": "text/html"}


def _get(client: TestClient, url: str, token: str, lang: str = "en") -> Any:
    return client.get(url, headers=_headers(token, lang), follow_redirects=False)


def _post(client: TestClient, url: str, token: str, data: dict[str, Any], lang: str = "en", hx: bool = False) -> Any:
    headers = {**_headers(token, lang), **({"HX-Request": "true"} if hx else {})}
    return client.post(url, data=data, headers=headers, follow_redirects=False)


def _error(text: str, field: str) -> str:
    found = re.search(rf'id="f-{field}-error"[^>]*>([^<]*)<', text)
    assert found, f"no error line for {field}"
    return found.group(1).strip()


def _steps(text: str) -> list[str]:
    return re.findall(r'data-step="([a-z_]+)"', text)


def _register(client: TestClient, c: Chain, battery_code: str, **extra: Any) -> Any:
    return _post(client, "/batteries/new", c.tokens["maker"], {"code": battery_code, **extra})


def _state(session: Session, battery_code: str) -> tuple[str, int | None]:
    session.expire_all()
    b = session.exec(select(Battery).where(col(Battery.code) == battery_code)).one()
    return str(b.state), b.holder_id


# ---------------------------------------------------------------------------------------------------------------
# Registration


def test_a_maker_registers_a_battery_and_its_module_by_form(client: TestClient, session: Session, chain: Chain) -> None:
    page = _get(client, "/batteries", chain.tokens["maker"])
    assert 'id="register-battery"' in page.text
    form = _get(client, "/batteries/new", chain.tokens["maker"])
    assert form.status_code == 200 and 'id="register-form"' in form.text
    typed = NEW_PACK.lower()[:12] + " " + NEW_PACK.lower()[12:]  # as printed on a plate
    done = _register(client, chain, typed, rated_kwh="60.5", mass_kg="380")
    assert done.status_code == 303 and done.headers["location"] == f"/batteries/{NEW_PACK}?done=registered"
    done = _register(client, chain, NEW_MODULE, parent_code=NEW_PACK)
    assert done.status_code == 303
    session.expire_all()
    pack = session.exec(select(Battery).where(col(Battery.code) == NEW_PACK)).one()
    module = session.exec(select(Battery).where(col(Battery.code) == NEW_MODULE)).one()
    assert (pack.holder_id, pack.rated_kwh, pack.mass_kg, str(pack.state)) == (chain.maker, 60.5, 380.0, "produced")
    assert module.parent_id == pack.id


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_registration_refusals_name_the_field_in_the_readers_language(
    client: TestClient, session: Session, chain: Chain, lang: str
) -> None:
    bad = NEW_PACK[:4] + "Q" + NEW_PACK[5:]  # an unknown battery type
    refused = _post(client, "/batteries/new", chain.tokens["maker"], {"code": bad, "mass_kg": "380"}, lang)
    assert refused.status_code == 422
    message = _error(refused.text, "code")
    assert message
    if lang == "zh-CN":
        assert re.search(r"[\u4e00-\u9fff]", message) and not re.search(r"[a-z]{4,} [a-z]{4,}", message)
    refused = _post(client, "/batteries/new", chain.tokens["maker"], {"code": NEW_PACK, "mass_kg": "-3"}, lang)
    assert refused.status_code == 422 and _error(refused.text, "mass_kg")
    refused = _post(
        client, "/batteries/new", chain.tokens["maker"], {"code": NEW_MODULE, "parent_code": NEW_PACK}, lang
    )
    assert refused.status_code == 422 and _error(refused.text, "parent_code")
    assert 'value="' + NEW_MODULE + '"' in refused.text  # the form comes back as typed
    session.expire_all()
    assert session.exec(select(Battery)).all() == []  # nothing half-saved


def test_registration_is_closed_to_enterprises_that_do_not_make_batteries(
    client: TestClient, session: Session, chain: Chain
) -> None:
    assert 'id="register-battery"' not in _get(client, "/batteries", chain.tokens["recycler"]).text
    assert 'id="register-not-allowed"' in _get(client, "/batteries/new", chain.tokens["recycler"]).text
    refused = _post(client, "/batteries/new", chain.tokens["recycler"], {"code": NEW_PACK})
    assert refused.status_code == 403
    assert _get(client, "/batteries/new", chain.world.tokens["bureau_sc"]).status_code == 403
    session.expire_all()
    assert session.exec(select(Battery)).all() == []


# ---------------------------------------------------------------------------------------------------------------
# Events


def _event(client: TestClient, c: Chain, who: str, battery_code: str, lang: str = "en", **data: Any) -> Any:
    return _post(client, f"/batteries/{battery_code}/events/new", c.tokens[who], data, lang)


def test_the_form_offers_only_the_steps_the_state_allows_this_enterprise(
    client: TestClient, session: Session, chain: Chain
) -> None:
    assert _register(client, chain, NEW_PACK).status_code == 303
    page = _get(client, f"/batteries/{NEW_PACK}", chain.tokens["maker"])
    assert 'id="log-event"' in page.text
    form = _get(client, f"/batteries/{NEW_PACK}/events/new", chain.tokens["maker"])
    assert _steps(form.text) == ["installed", "transferred"]
    # A recycler that never held it may only take it in; whether the code exists is not said.
    stranger = _get(client, f"/batteries/{NEW_PACK}/events/new", chain.tokens["recycler"])
    assert _steps(stranger.text) == ["collected"] and 'id="battery-state"' in stranger.text
    assert "produced" not in stranger.text.split('id="battery-state"')[1][:300]
    # A step the form does not offer is refused by field, and nothing is saved.
    refused = _event(client, chain, "maker", NEW_PACK, type="retired", occurred_at="2024-01-01T10:00")
    assert refused.status_code == 422 and 'id="error-summary"' in refused.text
    assert _state(session, NEW_PACK) == ("produced", chain.maker)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_event_refusals_name_the_field_and_save_nothing(
    client: TestClient, session: Session, chain: Chain, lang: str
) -> None:
    assert _register(client, chain, NEW_PACK).status_code == 303
    refused = _event(client, chain, "maker", NEW_PACK, lang, type="installed", occurred_at="2024-03-01T10:00")
    assert refused.status_code == 422
    message = _error(refused.text, "vin")
    assert message
    if lang == "zh-CN":
        assert re.search(r"[\u4e00-\u9fff]", message)
    refused = _event(
        client,
        chain,
        "maker",
        NEW_PACK,
        lang,
        type="installed",
        occurred_at="2024-03-01T10:00",
        vin="LS4ASB3E6RJ12345X",
    )
    assert refused.status_code == 422 and _error(refused.text, "vin")
    refused = _event(client, chain, "maker", NEW_PACK, lang, type="installed", occurred_at="2099-03-01T10:00", vin=VIN)
    assert refused.status_code == 422 and _error(refused.text, "occurred_at")
    # The same refusal through the API: same writer, same field.
    api = client.post(
        f"/api/v1/batteries/{NEW_PACK}/events",
        json={"type": "installed", "occurred_at": "2024-03-01T10:00"},
        headers={"Authorization": f"Bearer {chain.tokens['maker']}"},
    )
    assert api.status_code == 422 and api.json()["field"] == "vin"
    session.expire_all()
    assert _state(session, NEW_PACK) == ("produced", chain.maker)
    assert [str(e.type) for e in session.exec(select(BatteryEvent)).all()] == ["produced"]


def test_a_battery_walks_from_maker_to_recovery_through_the_forms(
    client: TestClient, session: Session, chain: Chain
) -> None:
    assert _register(client, chain, NEW_PACK, mass_kg="370").status_code == 303
    # The counterpart is found by name in the picker, then chosen.
    found = _post(
        client, f"/batteries/{NEW_PACK}/events/search", chain.tokens["maker"], {"counterpart_q": "Chain veh"}, hx=True
    )
    assert found.status_code == 200 and "<html" not in found.text and f'value="{chain.vehicle}"' in found.text
    assert f'value="{chain.maker}"' not in found.text
    none = _post(
        client, f"/batteries/{NEW_PACK}/events/search", chain.tokens["maker"], {"counterpart_q": "测试企业2"}, hx=True
    )
    assert 'name="counterpart_id"' not in none.text  # a utiliser acts on no battery: not offered
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("maker", "transferred", {"counterpart_id": chain.vehicle, "purpose": ""}),
        ("vehicle", "installed", {"vin": VIN, "vehicle_type": "SUV"}),
        ("vehicle", "retired", {"reason": "scrapped", "soh": "0.71"}),
        # Typed as a full credit code, without choosing from the list.
        ("outlet", "collected", {"counterpart_q": chain.uscc["vehicle"]}),
        ("outlet", "transferred", {"counterpart_id": chain.recycler, "purpose": "recycling"}),
        ("recycler", "dismantled", {"mass_kg": "370"}),
    ]
    for day, (who, event, extra) in enumerate(steps, start=1):
        data = {"type": event, "occurred_at": f"2024-0{day}-03T10:00", "place": "仓库 3", **extra}
        done = _event(client, chain, who, NEW_PACK, **data)
        assert done.status_code == 303, (event, done.text[:2000])
        assert done.headers["location"] == f"/batteries/{NEW_PACK}?done={event}"
    assert _state(session, NEW_PACK) == ("dismantled", chain.recycler)
    form = _get(client, f"/batteries/{NEW_PACK}/events/new?type=recovered", chain.tokens["recycler"])
    assert _steps(form.text) == ["recovered", "transferred"] and 'id="event-form"' in form.text
    for f in ("input_mass_kg", "electrode_powder_kg", "lithium_in_kg", "lithium_out_kg", "manganese_out_kg"):
        assert f'name="{f}"' in form.text
    refused = _event(client, chain, "recycler", NEW_PACK, type="recovered", occurred_at="2024-08-01T10:00")
    assert refused.status_code == 422 and _error(refused.text, "input_mass_kg")
    done = _event(
        client,
        chain,
        "recycler",
        NEW_PACK,
        type="recovered",
        occurred_at="2024-08-01T10:00",
        input_mass_kg="360",
        electrode_powder_kg="120",
        lithium_in_kg="5",
        lithium_out_kg="4.7",
        nickel_in_kg="2",
        nickel_out_kg="1.9",
    )
    assert done.status_code == 303
    session.expire_all()
    report = session.exec(select(RecoveryReport)).one()
    assert (report.recycler_id, float(report.lithium_out_kg), float(report.input_mass_kg)) == (chain.recycler, 4.7, 360)
    events = session.exec(select(BatteryEvent).order_by(col(BatteryEvent.occurred_at))).all()
    assert [str(e.type) for e in events][-3:] == ["transferred", "dismantled", "recovered"]
    collected = next(e for e in events if str(e.type) == "collected")
    assert collected.counterpart_id == chain.vehicle and collected.attributes["place"] == "仓库 3"
    assert _steps(_get(client, f"/batteries/{NEW_PACK}/events/new", chain.tokens["recycler"]).text) == []
    # The battery's own page shows the whole walk.
    trace = battery.trace(session=session, principal=battery_principal(session, chain), code=NEW_PACK)
    assert [e.type for e in trace.events][:3] == ["produced", "transferred", "installed"]


def battery_principal(session: Session, c: Chain) -> Any:
    return system_principal()


def test_an_unchosen_counterpart_is_refused_in_the_form(client: TestClient, session: Session, chain: Chain) -> None:
    assert _register(client, chain, NEW_PACK).status_code == 303
    refused = _event(
        client, chain, "maker", NEW_PACK, type="transferred", occurred_at="2024-01-03T10:00", counterpart_q="Chain"
    )
    assert refused.status_code == 422 and _error(refused.text, "counterpart")
    assert 'name="counterpart_id"' in refused.text  # the matches are offered to choose from
    refused = _event(client, chain, "maker", NEW_PACK, type="transferred", occurred_at="2024-01-03T10:00")
    assert refused.status_code == 422 and _error(refused.text, "counterpart")
    assert _state(session, NEW_PACK) == ("produced", chain.maker)


# ---------------------------------------------------------------------------------------------------------------
# Files


def _upload(client: TestClient, c: Chain, who: str, kind: str, name: str, body: bytes, lang: str = "en") -> Any:
    return client.post(
        "/batteries/import",
        data={"kind": kind},
        files={"file": (name, body)},
        headers=_headers(c.tokens[who], lang),
        follow_redirects=False,
    )


def test_templates_carry_chinese_headers(client: TestClient, chain: Chain) -> None:
    page = _get(client, "/batteries/import", chain.tokens["maker"], "zh-CN")
    assert page.status_code == 200 and "/batteries/import/template/battery-events.xlsx" in page.text
    csv_file = _get(client, "/batteries/import/template/batteries.csv", chain.tokens["maker"])
    assert csv_file.status_code == 200 and csv_file.content.startswith("\ufeff电池编码,上级编码".encode())
    xlsx = _get(client, "/batteries/import/template/battery-events.xlsx", chain.tokens["maker"])
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert _get(client, "/batteries/import/template/flows.csv", chain.tokens["maker"]).status_code == 404


def test_a_file_of_batteries_and_of_events_lands_whole_or_not_at_all(
    client: TestClient, session: Session, chain: Chain
) -> None:
    batteries = f"电池编码,上级编码,质量（千克）\r\n{NEW_PACK},,380\r\n{NEW_MODULE},{NEW_PACK},\r\n"
    done = _upload(client, chain, "maker", "batteries", "电池.csv", batteries.encode("gb18030"))
    assert done.status_code == 200 and 'id="import-done"' in done.text and f"/batteries/{NEW_PACK}" in done.text
    assert _state(session, NEW_MODULE) == ("produced", chain.maker)
    events = (
        "电池编码,事件类型,发生时间,对方统一社会信用代码\r\n"
        f"{NEW_PACK},transferred,2024-02-01T10:00,{chain.uscc['vehicle']}\r\n"
        f"{NEW_PACK},fitted,2024-02-02T10:00,\r\n"
    )
    for lang in ("en", "zh-CN"):
        refused = _upload(client, chain, "maker", "battery-events", "events.csv", events.encode("utf-8-sig"), lang)
        assert refused.status_code == 422 and 'data-row="3" data-column="type"' in refused.text
    assert _state(session, NEW_PACK) == ("produced", chain.maker)  # the good first row was not saved either
    good = events.rsplit("\r\n", 2)[0] + "\r\n"
    done = _upload(client, chain, "maker", "battery-events", "events.csv", good.encode())
    assert done.status_code == 200, done.text[:3000]
    assert _state(session, NEW_PACK) == ("produced", chain.vehicle)
    assert _state(session, NEW_MODULE) == ("produced", chain.vehicle)  # the module moved inside its pack
    # The API refuses the same bad row the same way.
    api = client.post(
        "/api/v1/battery-events",
        json=[{"code": NEW_PACK, "type": "fitted", "occurred_at": "2024-02-02T10:00"}],
        headers={"Authorization": f"Bearer {chain.tokens['vehicle']}"},
    )
    assert api.status_code == 422 and api.json()["errors"][0]["column"] == "type"


def test_only_makers_import_batteries(client: TestClient, session: Session, chain: Chain) -> None:
    page = _get(client, "/batteries/import", chain.tokens["recycler"])
    assert 'value="batteries"' not in page.text and 'value="battery-events"' in page.text
    refused = _upload(client, chain, "recycler", "batteries", "b.csv", f"code\r\n{NEW_PACK}\r\n".encode())
    assert refused.status_code == 403
    chain.tokens["bureau_sc"] = chain.world.tokens["bureau_sc"]
    for kind in ("batteries", "battery-events"):
        body = f"code\r\n{NEW_PACK}\r\n".encode()
        assert _upload(client, chain, "bureau_sc", kind, "b.csv", body).status_code == 403
    anon = client.post("/batteries/import", data={"kind": "batteries"}, files={"file": ("b.csv", b"code\r\n")})
    assert anon.status_code == 401
    session.expire_all()
    assert session.exec(select(Battery)).all() == []


def test_two_collections_racing_through_the_form_leave_one_winner(
    settings: Settings, session: Session, chain: Chain
) -> None:
    """A retired pack; the outlet and the recycler post its collection at once: one takes it, the other is refused."""
    admin = system_principal()
    battery.register_batteries(
        session=session, principal=admin, rows=[{"code": NEW_PACK, "maker_id": chain.maker}], now=NOW
    )
    for type_, day, reporter, extra in (
        ("transferred", 1, chain.maker, {"counterpart_id": chain.vehicle}),
        ("installed", 2, chain.vehicle, {"vin": VIN}),
        ("retired", 3, chain.vehicle, {}),
    ):
        row = {"type": type_, "occurred_at": f"2024-01-0{day}T10:00", "reporter_id": reporter, **extra}
        battery.record_event(session=session, principal=admin, code=NEW_PACK, row=row, now=NOW)
    session.commit()
    barrier = threading.Barrier(4)
    takers = ["outlet", "recycler", "outlet", "recycler"]
    with serve(settings) as url:

        def race(who: str) -> httpx.Response:
            with httpx.Client(timeout=120) as own:
                barrier.wait()
                return own.post(
                    f"{url}/batteries/{NEW_PACK}/events/new",
                    data={"type": "collected", "occurred_at": "2024-01-05T10:00"},
                    headers=_headers(chain.tokens[who], "en"),
                )

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(race, takers))
    codes = sorted(a.status_code for a in answers)
    # One wins; a loser is refused as its view allows: a step no longer offered (422), a state that moved under it
    # (409), or, for an enterprise that never held the battery, nothing said of it (404).
    assert codes[0] == 303 and codes.count(303) == 1 and set(codes[1:]) <= {404, 409, 422}, codes
    session.expire_all()
    collected = session.exec(select(BatteryEvent).where(col(BatteryEvent.type) == "collected")).all()
    assert len(collected) == 1
    assert _state(session, NEW_PACK) == ("collected", collected[0].reporter_id)
