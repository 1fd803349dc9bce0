"""Input bounds (flows/kernel/bounds.py, app/limits.py, app/params.py): each case reported from outside, both databases.

Infinity, 1e309 and 1e308 as weights; a 2,000,000-character reason; a 50 MB body; an XLSX zip bomb; a CSV field of
200 KB; ids past 2**31, a huge offset, year 0; NUL and lone surrogates: each is refused (422 naming the field, 413
for a body past its limit), nothing is saved, the audit log is unchanged, and the flow layer stays valid JSON.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError
from sqlmodel import Session, func, select

from app.limits import RequestLimits
from app.main import create_app
from app.settings import Settings
from app.web_map import _geojson
from flows.kernel import bounds
from flows.kernel.errors import InvalidInput
from flows.kernel.uscc import make_uscc
from flows.waste.imports import ImportRefused, import_manifests
from models import AuditLog, Manifest
from tests.world import NOW, World, build_world

MB = 1024 * 1024
HEADER = "shipper_uscc,receiver_uscc,category,route,weight_dispatched_t\n"


def _uscc(n: int) -> str:
    return make_uscc(f"91510000MA000{n:03d}")


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def _as(client: TestClient, world: World, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[name]}"}


def _counts(session: Session) -> tuple[int, int]:
    session.expire_all()
    batches = session.exec(select(func.count()).select_from(Manifest)).one()
    entries = session.exec(select(func.count()).select_from(AuditLog)).one()
    return int(batches), int(entries)


def _strict(text: str) -> Any:
    """JSON as every other parser reads it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in a JSON answer")

    return json.loads(text, parse_constant=refuse)


def _post_raw(client: TestClient, url: str, raw: str, headers: dict[str, str]) -> Any:
    return client.post(url, content=raw.encode("utf-8"), headers={**headers, "content-type": "application/json"})


def _manifest(world: World, weight: str) -> str:
    # Raw JSON text: json.dumps cannot write 1e309, and Python reads Infinity and 1e309 alike.
    return f'{{"receiver_id": {world.e2}, "category_code": "SW01", "route": "cement_admixture", "weight": {weight}}}'


# ---------------------------------------------------------------------------------------------------------------
# Weights: Infinity, 1e309, 1e308, through the API and through an import; the flow layer stays JSON


def test_weights_beyond_a_real_lot_are_refused_naming_the_field(
    client: TestClient, session: Session, world: World
) -> None:
    before = _counts(session)
    for unit, weights in (
        ("weight_dispatched_t", ["Infinity", "-Infinity", "NaN", "1e309", "1e308", "100000.001", "-1", '"1e309"']),
        ("weight_dispatched_kg", ["Infinity", "1e309", "1e308", "100000001", '"NaN"']),
    ):
        for weight in weights:
            body = _manifest(world, weight).replace('"weight"', f'"{unit}"')
            response = _post_raw(client, "/api/v1/manifests", body, _as(client, world, "ent1"))
            assert response.status_code == 422, (weight, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["field"] == unit
    assert _counts(session) == before


def test_the_largest_lot_is_accepted_and_the_flow_layer_stays_json(
    client: TestClient, session: Session, world: World
) -> None:
    auth = _as(client, world, "ent1")
    for weight in ("Infinity", "1e309", "1e308"):
        body = _manifest(world, weight).replace('"weight"', '"weight_dispatched_t"')
        assert _post_raw(client, "/api/v1/manifests", body, auth).json()["field"] == "weight_dispatched_t"
    body = _manifest(world, "100000").replace('"weight"', '"weight_dispatched_t"')
    body = body[:-1] + ', "dispatched_at": "2024-06-01T08:00:00+08:00"}'
    created = _post_raw(client, "/api/v1/manifests", body, auth)
    assert created.status_code == 201, created.text
    layer = client.get("/map/layers/flows.geojson", params={"year": 2024}, headers=_as(client, world, "admin"))
    assert layer.status_code == 200
    features = _strict(layer.text)["features"]
    assert features  # the world's received batch and this one; every figure a finite number
    listed = _strict(client.get("/api/v1/manifests", params={"year": 2024}, headers=auth).text)
    assert max(m["weight_dispatched_t"] for m in listed["data"]) == 100000


def test_an_import_refuses_the_same_weights_naming_row_and_column(
    session: Session, world: World, tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    weights = ("12", "inf", "1e309", "1e308", "NaN", "100001", "100000")
    rows = [f"{_uscc(1)},{_uscc(2)},SW01,cement_admixture,{w}\n" for w in weights]
    path.write_text(HEADER + "".join(rows))
    before = _counts(session)
    with pytest.raises(ImportRefused) as refused:
        import_manifests(session=session, principal=world.principals["admin"], source=path, now=NOW)
    assert [(e.line, e.column) for e in refused.value.errors] == [(n, "weight_dispatched_t") for n in range(3, 8)]
    assert _counts(session) == before


def test_receipts_batteries_and_declarations_are_bounded_too(client: TestClient, world: World) -> None:
    admin = _as(client, world, "admin")
    receipt = '{"weight_received_kg": 1e308, "received_at": "2024-05-02T16:00:00+08:00"}'
    response = _post_raw(client, f"/api/v1/manifests/{world.batch_dispatched}/receive", receipt, admin)
    assert response.status_code == 422 and response.json()["field"] == "weight_received_kg"
    declaration = f'{{"enterprise_id": {world.e1}, "category_code": "SW01", "year": 2024, "generated_t": 1e12}}'
    response = _post_raw(client, "/api/v1/declarations", declaration, _as(client, world, "ent1"))
    assert response.status_code == 422 and response.json()["field"] == "generated_t"
    battery = '{"code": "001PBEA0000000000000001", "mass_kg": 1e308}'
    response = _post_raw(client, "/api/v1/batteries", battery, admin)
    assert response.status_code == 422 and response.json()["field"] == "mass_kg"
    event = '[{"code": "001PBEA0000000000000001", "type": "tested", "occurred_at": "2024-01-01", "soh": "NaN"}]'
    response = _post_raw(client, "/api/v1/battery-events", event, admin)
    assert response.status_code == 422, response.text


# ---------------------------------------------------------------------------------------------------------------
# Text: a 2,000,000-character reason, NUL, lone surrogates


def test_a_two_million_character_reason_is_refused_and_never_logged(
    settings: Settings, session: Session, world: World
) -> None:
    reason = "拒" * 2_000_000
    url = f"/api/v1/manifests/{world.batch_dispatched}/reject"
    before = _counts(session)
    # With the default body limit the request is refused whole (413) before the route reads it ...
    with TestClient(create_app(settings)) as client:
        response = client.post(url, json={"rejection_reason": reason}, headers=_as(client, world, "admin"))
        assert response.status_code == 413
        assert response.json()["field"] == "body"
        # ... and 513 characters, which pass the body limit, are refused by the column's own.
        response = client.post(url, json={"rejection_reason": "x" * 513}, headers=_as(client, world, "admin"))
        assert response.status_code == 422 and response.json()["field"] == "rejection_reason"
    # With a body limit raised far past it, the field's own ceiling still holds.
    roomy = settings.model_copy(update={"max_json_mb": 16})
    with TestClient(create_app(roomy)) as client:
        response = client.post(url, json={"rejection_reason": reason}, headers=_as(client, world, "admin"))
        assert response.status_code == 422, response.text[:300]
        assert response.json()["field"] == "rejection_reason"
        assert len(response.content) < 10_000  # the answer does not echo what was sent
    assert _counts(session) == before


def test_nul_and_lone_surrogates_are_refused_in_every_channel(
    client: TestClient, session: Session, world: World
) -> None:
    admin = _as(client, world, "admin")
    before = _counts(session)
    for text in ("a\\u0000b", "\\ud800", "ok \\udfff"):
        url = f"/api/v1/manifests/{world.batch_draft}/cancel"
        response = _post_raw(client, url, f'{{"cancel_reason": "{text}"}}', admin)
        assert response.status_code == 422 and response.json()["field"] == "cancel_reason"
        body = _manifest(world, "12").replace('"weight"', '"weight_dispatched_t"')
        response = _post_raw(client, "/api/v1/manifests", body[:-1] + f', "idempotency_key": "{text}"}}', admin)
        assert response.status_code == 422 and response.json()["field"] == "idempotency_key"
        response = _post_raw(client, "/api/v1/batteries", f'{{"code": "{text}"}}', admin)
        assert response.status_code == 422 and response.json()["field"] == "code"
    # The page's form: the same refusal (a NUL in a form field; a form cannot carry a lone surrogate).
    response = client.post(f"/batches/{world.batch_draft}/cancel", data={"cancel_reason": "a\x00b"}, headers=admin)
    assert response.status_code == 422
    assert _counts(session) == before


def test_nul_in_a_query_or_path_is_refused_naming_it(client: TestClient, world: World) -> None:
    admin = _as(client, world, "admin")
    response = client.get("/api/v1/enterprises?q=a%00b", headers=admin)
    assert response.status_code == 422 and response.json()["field"] == "q"
    response = client.get("/batches?q=%00", headers=admin)  # a page: the same guard, before any route
    assert response.status_code == 422 and response.json()["field"] == "q"
    response = client.get("/api/v1/batteries/ab%00cd", headers=admin)
    assert response.status_code == 422 and response.json()["field"] == "path"


# ---------------------------------------------------------------------------------------------------------------
# Integers and years


OUT_OF_RANGE = [
    ("/api/v1/manifests/2147483648", "batch_id"),
    ("/api/v1/manifests/0", "batch_id"),
    ("/api/v1/enterprises/99999999999999999999999", "enterprise_id"),
    ("/api/v1/enterprises?park_id=2147483648", "park_id"),
    ("/api/v1/manifests?offset=100000000000000000000", "offset"),
    ("/api/v1/manifests?enterprise_id=4294967296", "enterprise_id"),
    ("/api/v1/manifests?year=0", "year"),
    ("/api/v1/battery-share?year=0", "year"),
    ("/api/v1/rates?year=0", "year"),
    ("/api/v1/audit?since=0001-01-01T00:00:00", "since"),
    ("/api/v1/enterprises/1/batteries?from=0001-01-01", "from"),
    ("/batches/2147483648", "batch_id"),
]


def test_integers_and_years_out_of_range_are_refused(client: TestClient, world: World) -> None:
    for url, field in OUT_OF_RANGE:
        response = client.get(url, headers=_as(client, world, "admin"))
        assert response.status_code == 422, (url, response.text)
        assert response.json()["field"] == field, url


def test_the_largest_offset_and_id_answer_normally(client: TestClient, world: World) -> None:
    admin = _as(client, world, "admin")
    page = client.get("/api/v1/manifests", params={"offset": bounds.MAX_OFFSET}, headers=admin)
    assert page.status_code == 200 and page.json()["data"] == []
    assert client.get(f"/api/v1/manifests/{bounds.MAX_ID}", headers=admin).status_code == 404
    # The batches page names filters it cannot use (422) instead of handing the database an overflowing integer.
    listed = client.get("/batches", params={"party": "99999999999", "page": "9" * 30}, headers=admin)
    assert listed.status_code == 422


BODIES = [
    '{"receiver_id": 2147483648, "category_code": "SW01", "route": "backfill", "weight_dispatched_t": 1}',
    '{"receiver_id": %(e2)d, "category_code": "SW01", "route": "backfill", "weight_dispatched_t": 1,'
    ' "dispatched_at": "0001-01-01T00:00:00"}',
    '{"receiver_id": %(e2)d, "category_code": "SW01", "route": "backfill", "weight_dispatched_t": true}',
    '{"receiver_id": %(e2)d, "category_code": "SW01", "route": "backfill", "weight_dispatched_t": 1' + "0" * 400 + "}",
]


def test_bodies_with_ids_times_and_numbers_out_of_range(client: TestClient, world: World) -> None:
    fields = ("receiver_id", "dispatched_at", "weight_dispatched_t", "weight_dispatched_t")
    for body, field in zip(BODIES, fields, strict=True):
        response = _post_raw(client, "/api/v1/manifests", body % {"e2": world.e2}, _as(client, world, "ent1"))
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field


def test_a_correction_cannot_carry_a_time_outside_the_record_years(client: TestClient, world: World) -> None:
    body = '{"changes": {"received_at": "0001-01-01T00:00:00"}, "reason": "typo"}'
    response = _post_raw(client, f"/api/v1/manifests/{world.batch_received}/correct", body, _as(client, world, "admin"))
    assert response.status_code == 422 and response.json()["field"] == "changes.received_at"


# ---------------------------------------------------------------------------------------------------------------
# Bodies past their limit


def test_a_50_mb_body_is_refused_with_413_and_nothing_is_logged(
    client: TestClient, session: Session, world: World
) -> None:
    before = _counts(session)
    huge = b'{"cancel_reason": "' + b"x" * (50 * MB) + b'"}'
    admin = _as(client, world, "admin")
    url = f"/api/v1/manifests/{world.batch_draft}/cancel"
    response = client.post(url, content=huge, headers={**admin, "content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "body"

    # Without a Content-Length (chunked), the bytes are counted as they arrive.
    def chunks() -> Any:
        for _ in range(60):
            yield b"x" * MB

    response = client.post(url, content=chunks(), headers={**admin, "content-type": "application/json"})
    assert response.status_code == 413
    assert _counts(session) == before


def test_the_body_limit_counts_streamed_bytes_and_reads_no_further() -> None:
    read: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            read.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"the app's own answer"})

    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True} for _ in range(50)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "POST", "path": "/x", "query_string": b"", "headers": []}
    asyncio.run(RequestLimits(app, json_bytes=4500, upload_bytes=10_000)(scope, receive, send))
    assert sum(read) <= 4500 and len(chunks) == 45  # four chunks read, the fifth passed the limit, none more
    assert sent[0]["status"] == 413
    assert b"the app's own answer" not in b"".join(m.get("body", b"") for m in sent)


def test_an_upload_past_the_limit_is_refused(settings: Settings, world: World) -> None:
    small = settings.model_copy(update={"max_upload_mb": 1})
    with TestClient(create_app(small)) as client:
        files = {"file": ("m.csv", b"a" * (2 * MB), "text/csv")}
        response = client.post("/api/v1/imports/manifests", files=files, headers=_as(client, world, "admin"))
        assert response.status_code == 413 and response.json()["field"] == "file"


# ---------------------------------------------------------------------------------------------------------------
# Files: an XLSX zip bomb, a CSV field of 200 KB, too many rows


def _zip_bomb(path: Path, expanded: int) -> Path:
    """A real workbook whose sheet XML is replaced by one that expands to `expanded` bytes (a few hundred KB)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["shipper_uscc", "receiver_uscc", "category", "route", "weight_dispatched_t"])
    plain = io.BytesIO()
    book.save(plain)
    row = b'<row><c t="inlineStr"><is><t>' + b"A" * 1000 + b"</t></is></c></row>"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in source.infolist():
            if item.filename != "xl/worksheets/sheet1.xml":
                bomb.writestr(item, source.read(item))
                continue
            with bomb.open("xl/worksheets/sheet1.xml", "w") as part:
                part.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
                for _ in range(expanded // len(row)):
                    part.write(row)
                part.write(b"</sheetData></worksheet>")
    return path


def test_an_xlsx_zip_bomb_is_refused_before_it_is_read(client: TestClient, world: World, tmp_path: Path) -> None:
    path = _zip_bomb(tmp_path / "bomb.xlsx", 101 * MB)
    assert path.stat().st_size < 2 * MB
    with path.open("rb") as handle:
        files = {"file": ("bomb.xlsx", handle, "application/octet-stream")}
        response = client.post("/api/v1/imports/manifests", files=files, headers=_as(client, world, "admin"))
    assert response.status_code == 422
    assert response.json()["field"] == "file" and "expands to" in response.json()["detail"]


def test_a_part_that_lies_about_its_size_cannot_expand_past_it(session: Session, world: World, tmp_path: Path) -> None:
    path = _zip_bomb(tmp_path / "liar.xlsx", 2 * MB)
    raw = bytearray(path.read_bytes())
    # Declare the sheet 1 KB in the central directory: the check reads what is declared ...
    central = raw.find(b"PK\x01\x02")
    while raw[central + 46 : central + 70] != b"xl/worksheets/sheet1.xml":
        central = raw.find(b"PK\x01\x02", central + 4)
    raw[central + 24 : central + 28] = (1024).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with path.open("rb") as stream:
        bounds.check_workbook(stream, bounds.UploadLimits(max_expanded_bytes=MB))
    # ... and the import stops at the declared size: its checksum fails, and the file is refused, not a 500.
    with pytest.raises(InvalidInput) as refused:
        import_manifests(session=session, principal=world.principals["admin"], source=path, now=NOW)
    assert refused.value.field == "file"


def test_a_csv_field_of_200_kb_is_refused_naming_row_and_column(
    client: TestClient, session: Session, world: World
) -> None:
    before = _counts(session)
    text = HEADER.replace("weight_dispatched_t", "weight_dispatched_t,rejection_reason")
    text += f"{_uscc(1)},{_uscc(2)},SW01,cement_admixture,12,\n"
    text += f'{_uscc(1)},{_uscc(2)},SW01,cement_admixture,12,"{"y" * 200_000}"\n'
    files = {"file": ("m.csv", text.encode(), "text/csv")}
    response = client.post("/api/v1/imports/manifests", files=files, headers=_as(client, world, "admin"))
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors == [{"line": 3, "column": "rejection_reason", "reason": errors[0]["reason"]}]
    assert "131,072" in errors[0]["reason"]
    assert _counts(session) == before


def test_cells_no_column_can_hold_are_refused_naming_row_and_column(
    session: Session, world: World, tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        HEADER
        + f"{_uscc(1)},{_uscc(2)},SW01\x00,cement_admixture,12\n"
        + f"{_uscc(1)},{_uscc(2)},{'S' * 5000},cement_admixture,12\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRefused) as refused:
        admin = world.principals["admin"]
        import_manifests(
            session=session, principal=admin, source=path, now=NOW, limits=bounds.UploadLimits(max_field_chars=1000)
        )
    assert [(e.line, e.column) for e in refused.value.errors] == [(2, "category"), (3, "category")]
    assert "NUL" in refused.value.errors[0].reason and "(5000)" in refused.value.errors[1].reason
    # Within the field limit, a cell no category has is named, and what it quoted is cut short.
    with pytest.raises(ImportRefused) as refused:
        import_manifests(session=session, principal=world.principals["admin"], source=path, now=NOW)
    assert [(e.line, e.column) for e in refused.value.errors] == [(2, "category"), (3, "category")]
    assert len(refused.value.errors[1].reason) < 400


def test_too_many_rows_are_refused(session: Session, world: World, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEADER + f"{_uscc(1)},{_uscc(2)},SW01,cement_admixture,1\n" * 4)
    with pytest.raises(InvalidInput) as refused:
        import_manifests(
            session=session,
            principal=world.principals["admin"],
            source=path,
            now=NOW,
            limits=bounds.UploadLimits(max_rows=3),
        )
    assert refused.value.field == "file" and refused.value.row == 5


# ---------------------------------------------------------------------------------------------------------------
# The safety net and the JSON renderer


def _app_raising(settings: Settings, exc: Exception) -> FastAPI:
    app = create_app(settings)

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise exc

    return app


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (RuntimeError("connection to db.internal:5432 failed: SELECT secret FROM user_account"), 500),
        (DataError("SELECT * FROM transfer_batch WHERE id = %(id)s", {"id": 2**40}, Exception("db.internal")), 422),
    ],
)
def test_the_safety_net_answers_without_the_database_or_the_sql(
    settings: Settings, world: World, caplog: pytest.LogCaptureFixture, exc: Exception, status: int
) -> None:
    app = _app_raising(settings, exc)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/boom", headers=_as(client, world, "admin"))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    for secret in ("SELECT", "db.internal", "Traceback", "transfer_batch", "user_account"):
        assert secret not in response.text
    assert "db.internal" in caplog.text  # the details are in the server's log


def test_the_json_renderers_refuse_rather_than_emit_nan() -> None:
    with pytest.raises(ValueError):
        _geojson({"type": "FeatureCollection", "features": [{"properties": {"tonnes": float("inf")}}]})
    from starlette.responses import JSONResponse

    with pytest.raises(ValueError):
        JSONResponse({"tonnes": float("nan")})


# ---------------------------------------------------------------------------------------------------------------
# The checks themselves


def test_the_checks() -> None:
    assert str(bounds.text_problem("a" * 513, 512)) == "longer than 512 characters (513)"
    assert str(bounds.text_problem("a\x00", 10)) == "contains a NUL character"
    assert str(bounds.text_problem("b\ud800", 10)) == "contains a lone surrogate (not Unicode text)"
    assert bounds.text_problem("联单 😀", 10) is None
    assert str(bounds.quantity_problem(float("inf"), 1, "t")) == "not a finite number: inf"
    assert str(bounds.quantity_problem(2.0, 1, "t")) == "at most 1 t, got 2"
    assert bounds.quantity_problem(1.0, 1, "t") is None
    assert bounds.printable("a\ud800\x00" + "z" * 300, 5) == "a\\ud800\\x00zz…"
    assert bounds.overlong_field('a,"b,""c""",' + "d" * 9, 5) == 2
    assert bounds.overlong_field('a,"' + "q" * 9 + '"', 5) == 1
    assert bounds.overlong_field("a,b", 5) is None
    found = bounds.json_problem([{"code": "x"}, {"code": "y", "attributes": {"mass_kg": float("nan")}}])
    assert found is not None and (found.field, found.row, str(found.reason)) == (
        "attributes.mass_kg",
        2,
        "not a finite number: nan",
    )
    assert bounds.json_problem({"a": [[[[]]]]}) is None
    assert bounds.json_problem(json.loads("[" * 40 + "]" * 40)) is not None
