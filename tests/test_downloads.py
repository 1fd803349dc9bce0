"""Downloads of the lists: the same filters as the page, every page of it, CSV with a BOM and XLSX, headers in the
reader's language, tonnes exact, within the reader's scope; links on the pages keep the filters."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlmodel import Session

from app.auth import SESSION_COOKIE, signed
from app.settings import Settings
from flows.access import accounts
from flows.kernel.messages import render
from flows.pages import exports
from models import Enterprise, Manifest
from tests.access_cases_battery import MODULE, seed_batteries
from tests.world import NOW, World, build_world


def _auth(w: World, role: str, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[role]}", "Accept-Language": lang}


def _csv(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def _xlsx(body: bytes) -> list[list[object]]:
    ws = load_workbook(io.BytesIO(body)).active
    assert ws is not None
    return [list(row) for row in ws.iter_rows(values_only=True)]


def test_batch_list_downloads_with_its_filters(client: TestClient, session: Session) -> None:
    w = build_world(session)
    # An odd weight: the file must carry the kilograms exactly, not a float's rounding.
    batch = session.get(Manifest, w.batch_received)
    assert batch is not None
    batch.weight_received_t = Decimal("29.817")
    session.add(batch)
    session.commit()
    page = client.get("/batches?status=received", headers=_auth(w, "ent1"))
    assert page.status_code == 200
    assert "/batches?status=received&amp;sort=date&amp;order=desc&amp;download=csv" in page.text or (
        "status=received" in page.text and "download=csv" in page.text
    )
    answer = client.get("/batches?status=received&download=csv", headers=_auth(w, "ent1", "zh-CN"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = _csv(answer.content)
    assert rows[0][0] == render("zh-CN", "exports.col.number", {}) == "联单编号"
    assert len(rows) == 2  # the header and the one received batch: the filter applies
    received = rows[0].index("接收量（吨）")
    assert rows[1][received] == "29.817"
    everything = _csv(client.get("/batches?download=csv", headers=_auth(w, "ent1")).content)
    assert everything[0][0] == "Batch number"
    assert len(everything) == 4
    book = _xlsx(client.get("/batches?status=received&download=xlsx", headers=_auth(w, "ent1")).content)
    assert book[0][0] == "Batch number"
    assert Decimal(str(book[1][book[0].index("Received (t)")])) == Decimal("29.817")
    # Outside the scope: an enterprise of another city sees none of these batches.
    assert len(_csv(client.get("/batches?download=csv", headers=_auth(w, "ent3")).content)) == 1
    assert client.get("/batches?download=pdf", headers=_auth(w, "ent1")).status_code == 422


def test_a_table_past_the_cap_says_so() -> None:
    table = exports.Table("batches", ("number",), [["a"]], truncated=True)
    rows = _csv(exports.csv_bytes(table, "en"))
    assert rows[-1][0].startswith("Only the first")
    said = render("zh-CN", "exports.truncated", {"cap": exports.ROW_CAP})
    assert _xlsx(exports.xlsx_bytes(table, "zh-CN"))[-1][0] == said


def test_formula_text_stays_text() -> None:
    table = exports.Table("enterprises", ("name_zh",), [["=HYPERLINK(1)"]])
    assert _csv(exports.csv_bytes(table, "en"))[1][0] == "'=HYPERLINK(1)"


def test_enterprises_flags_sankey_and_flows_download(client: TestClient, session: Session) -> None:
    w = build_world(session)
    bureau = _auth(w, "bureau_sc")
    page = client.get("/enterprises?role=generator", headers=bureau)
    assert "role=generator&amp;download=xlsx" in page.text
    rows = _csv(client.get("/enterprises?role=generator&download=csv", headers=bureau).content)
    assert rows[0][:2] == ["Unified social credit code", "Name (Chinese)"]
    assert len(rows) == 3  # E1 and E3 are generators, E2 is not
    # A park manager's scope is its park: E1 alone.
    assert len(_csv(client.get("/enterprises?download=csv", headers=_auth(w, "park_a")).content)) == 2

    flags = client.get("/audit/flags?year=2024&download=csv", headers=bureau)
    assert flags.status_code == 200
    assert _csv(flags.content)[0][0] == "Kind"

    sankey = client.get("/sankey?year=2024", headers=bureau)
    assert "table=route&amp;download=csv" in sankey.text
    by_place = _xlsx(
        client.get("/sankey?year=2024&table=place&download=xlsx", headers=_auth(w, "bureau_sc", "zh-CN")).content
    )
    assert by_place[0][0] == "年度"
    tonnes = by_place[0].index("数量（吨）")
    assert sum(Decimal(str(r[tonnes])) for r in by_place[1:]) == Decimal("29.8")
    assert client.get("/sankey?year=2024&table=x&download=csv", headers=bureau).status_code == 422

    mine = _csv(client.get(f"/enterprises/{w.e1}?year=2024&download=csv", headers=_auth(w, "ent1")).content)
    assert mine[0][1] == "Direction"
    sent = [r for r in mine[1:] if r[1] == "sent"]
    assert [Decimal(r[mine[0].index("Received (t)")]) for r in sent] == [Decimal("29.8")]
    park = client.get(f"/parks/{w.park_a}?year=2024&download=xlsx", headers=_auth(w, "park_a"))
    assert park.status_code == 200
    assert _xlsx(park.content)[0][1] == "Part"


def test_import_templates_fill_and_import_and_the_history_shows_it(
    client: TestClient, session: Session, settings: Settings
) -> None:
    w = build_world(session, with_tokens=False)
    csrf = _sign_in(client, session, settings, "ent1")
    page = client.get("/import", headers={"Accept-Language": "zh-CN"})
    assert 'href="/import/templates/declarations.xlsx"' in page.text and "README" not in page.text
    assert 'href="/import/templates/enterprises.csv"' not in page.text  # administrators' kind
    assert client.get("/import/templates/enterprises.csv").status_code == 403
    assert client.get("/import/templates/declarations.pdf").status_code == 404
    header = _csv(client.get("/import/templates/declarations.csv").content)[0]
    assert header[:3] == ["统一社会信用代码", "年份", "废物类别"]
    book = load_workbook(io.BytesIO(client.get("/import/templates/manifests.xlsx").content))
    assert book.worksheets[0]["A1"].value == "移出单位统一社会信用代码" and len(book.worksheets) == 2
    # The template filled in and sent back imports as it is.
    e1 = session.get(Enterprise, w.e1)
    assert e1 is not None
    values = {"统一社会信用代码": e1.uscc, "年份": "2022", "废物类别": "SW02"}
    row = [values.get(h, "10" if "吨" in h else "") for h in header]
    body = _csv_text([header, row])
    done = client.post(
        "/import",
        data={"kind": "declarations", "csrf_token": csrf},
        files={"file": ("申报2022.csv", body, "text/csv")},
        headers={"Accept-Language": "zh-CN"},
    )
    assert done.status_code == 200, done.text
    assert f'id="imported-link" href="/enterprises/{w.e1}"' in done.text
    history = client.get("/import", headers={"Accept-Language": "en"}).text
    table = history[history.index('id="import-history-table"') :]
    assert "申报2022.csv" in table and 'data-kind="declarations"' in table


def _csv_text(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _sign_in(client: TestClient, session: Session, settings: Settings, username: str) -> str:
    user = accounts.get_user(session=session, username=username)
    raw, csrf = accounts.start_session(session=session, user=user, now=NOW.replace(year=2099))
    session.commit()
    client.cookies.set(SESSION_COOKIE, signed(raw, settings.secret_key))
    return csrf


def test_battery_lists_download(client: TestClient, session: Session) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    page = client.get("/batteries", headers=_auth(w, "ent1"))
    assert "download=xlsx" in page.text
    rows = _csv(client.get("/batteries?download=csv", headers=_auth(w, "ent1", "zh-CN")).content)
    assert rows[0][0] == "电池编码" and MODULE in {r[0] for r in rows[1:]}
    # Outside the scope: Deyang's enterprise reads none of Panzhihua's batteries.
    assert len(_csv(client.get("/batteries?download=csv", headers=_auth(w, "ent3")).content)) == 1
    flags = client.get("/audit/flags?tab=battery&download=xlsx", headers=_auth(w, "bureau_sc"))
    assert flags.status_code == 200
    assert _xlsx(flags.content)[0][:2] == ["Kind", "Year"]
