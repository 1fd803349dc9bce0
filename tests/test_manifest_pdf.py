"""The printable manifest: the PDF from the batch page and the API carries every sealed field, the parties, the steps
with who and when, in the reader's language; its QR code, rendered and decoded, opens a verification page that shows
that manifest's sealed fields and status to anyone, and refuses a tampered or unknown token.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlmodel import Session

from app.web_print import token_manifest, verification_token
from flows.pages.printable import document_font
from models import Enterprise, Manifest
from tests.conftest import TEST_SECRET
from tests.world import World, add_enterprise, add_receiver_account, build_world

CARRIER = ("川运物流有限公司", "Chuanyun Logistics Co.")
PLATE = "川D·12345"


def _as(w: World, who: str, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[who]}", "Accept-Language": lang}


def _received_batch(client: TestClient, session: Session) -> tuple[World, int]:
    """A batch logged, dispatched and received (part refused) through the API, so that the log holds its steps."""
    w = add_receiver_account(session, build_world(session))
    from models.enums import EnterpriseRole

    carrier = add_enterprise(session, 9, 101.65, 26.57, EnterpriseRole.generator, name=CARRIER)
    session.commit()
    carrier_uscc = session.get(Enterprise, carrier)
    assert carrier_uscc is not None
    made = client.post(
        "/api/v1/manifests",
        headers=_as(w, "ent1"),
        json={
            "receiver_id": w.e2,
            "carrier_uscc": carrier_uscc.uscc,
            "category_code": "SW01",
            "route": "cement_admixture",
            "weight_dispatched_t": 42.125,
            "vehicle_plate": PLATE,
            "transport_mode": "road",
            "packaging": "散装",
            "weighing": "weighed",
            "reference": "PZH-0042",
        },
    )
    assert made.status_code == 201, made.text
    batch_id = made.json()["id"]
    sent = client.post(
        f"/api/v1/manifests/{batch_id}/dispatch",
        headers=_as(w, "ent1"),
        json={"dispatched_at": "2024-06-03T08:30:00+08:00"},
    )
    assert sent.status_code == 200, sent.text
    got = client.post(
        f"/api/v1/manifests/{batch_id}/receive",
        headers=_as(w, "ent2"),
        json={
            "weight_received_t": 40,
            "rejected_t": 2,
            "rejection_reason": "含水率过高",
            "received_at": "2024-06-03T15:05:00+08:00",
        },
    )
    assert got.status_code == 200, got.text
    return w, batch_id


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


def _flat(text: str) -> str:
    return "".join(text.split())


def _decode_qr(pdf: bytes, tmp_path: Path) -> str:
    """The text of the QR code on the PDF's first page, rendered by poppler and read by zxing-cpp."""
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is missing")
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    source = tmp_path / "manifest.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "150", "-f", "1", "-l", "1", "-png", str(source), str(tmp_path / "page")], check=True
    )
    (page,) = sorted(tmp_path.glob("page*.png"))
    found = zxingcpp.read_barcodes(Image.open(page))
    codes = [b.text for b in found if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(codes) == 1, f"expected one QR code on the page, found {codes}"
    return str(codes[0])


def test_pdf_carries_every_sealed_field_in_english(client: TestClient, session: Session) -> None:
    w, batch_id = _received_batch(client, session)
    answer = client.get(f"/api/v1/manifests/{batch_id}/pdf", headers=_as(w, "ent1", "en"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-language"] == "en"
    assert answer.content.startswith(b"%PDF-")
    batch = session.get(Manifest, batch_id)
    e1, e2 = session.get(Enterprise, w.e1), session.get(Enterprise, w.e2)
    assert batch is not None and e1 is not None and e2 is not None
    text = _flat(_text(answer.content))
    for expected in (
        "Solid waste transfer manifest",
        batch.number,
        "Received",  # the status
        e1.name_en or "",
        e1.uscc,
        e2.name_en or "",
        e2.uscc,
        CARRIER[1],
        "SW01",
        "Cement admixture",
        "42.125 t",
        "40 t",
        "2 t",
        "-0.125 t",  # received plus refused, less dispatched
        PLATE,
        "Road",
        "散装",
        "Weighed",
        "含水率过高",
        "PZH-0042",
        "2024-06-03 08:30",
        "2024-06-03 15:05",
        # The steps, with the side that took each.
        "Logged",
        "Dispatched",
        "Shipper",
        "Receiver",
    ):
        assert _flat(expected) in text, f"{expected!r} is missing from the PDF"
    # One step per line of the log: logged, dispatched (by the shipper), received (by the receiver).
    steps = _text(answer.content).split("Steps", 1)[1]
    assert steps.count("Shipper") >= 2 and steps.count("Receiver") >= 1


def test_pdf_in_chinese_embeds_a_cjk_font(client: TestClient, session: Session) -> None:
    w, batch_id = _received_batch(client, session)
    answer = client.get(f"/batches/{batch_id}/manifest.pdf?lang=zh-CN", headers=_as(w, "ent2", "en"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-language"] == "zh-CN"
    e1 = session.get(Enterprise, w.e1)
    assert e1 is not None
    text = _flat(_text(answer.content))
    for expected in (
        "固体废物转移联单",
        "已接收",
        e1.name_zh,
        CARRIER[0],
        "水泥掺合料",
        "公路",
        "称重",
        "42.125吨",
        "发运",
        "接收单位",
    ):
        assert _flat(expected) in text, f"{expected!r} is missing from the PDF"
    assert "Solid waste" not in text
    _name, embedded = document_font()
    # Under test the Debian font is installed (scripts/test.sh): it travels inside the file, subset, so that any
    # reader shows the Chinese as printed here.
    assert embedded
    assert b"/FontFile2" in answer.content


def test_the_user_language_chooses_the_document_language(client: TestClient, session: Session) -> None:
    w, batch_id = _received_batch(client, session)
    zh = client.get(f"/api/v1/manifests/{batch_id}/pdf", headers=_as(w, "ent1", "zh-CN"))
    assert zh.status_code == 200 and zh.headers["content-language"] == "zh-CN"
    assert "固体废物转移联单" in _flat(_text(zh.content))


def test_who_may_not_read_the_batch_gets_no_pdf(client: TestClient, session: Session) -> None:
    w, batch_id = _received_batch(client, session)
    # ent3 is neither party; a park manager of another park does not see it either.
    for who in ("ent3", "park_b"):
        answer = client.get(f"/api/v1/manifests/{batch_id}/pdf", headers=_as(w, who))
        assert answer.status_code == 404, (who, answer.status_code)
    assert client.get(f"/api/v1/manifests/{batch_id}/pdf").status_code == 401
    assert client.get("/api/v1/manifests/999999/pdf", headers=_as(w, "admin")).status_code == 404
    assert client.get("/api/v1/manifests/0/pdf", headers=_as(w, "admin")).status_code == 422
    # The bureaus in scope read it (and see the accounts that took each step).
    answer = client.get(f"/api/v1/manifests/{batch_id}/pdf", headers=_as(w, "admin"))
    assert answer.status_code == 200
    assert "ent1" in _text(answer.content) and "ent2" in _text(answer.content)


def test_the_qr_code_opens_the_verification_page(client: TestClient, session: Session, tmp_path: Path) -> None:
    w, batch_id = _received_batch(client, session)
    answer = client.get(f"/api/v1/manifests/{batch_id}/pdf", headers=_as(w, "ent1"))
    url = _decode_qr(answer.content, tmp_path)
    parts = urlsplit(url)
    assert parts.path.startswith("/verify/") and parts.scheme in ("http", "https")
    assert token_manifest(TEST_SECRET, parts.path.rsplit("/", 1)[1]) == batch_id
    # The URL printed under the code is the same.
    assert _flat(url) in _flat(_text(answer.content))
    # Followed by someone with no account at all.
    client.cookies.clear()
    page = client.get(parts.path, headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.text
    batch = session.get(Manifest, batch_id)
    e1 = session.get(Enterprise, w.e1)
    assert batch is not None and e1 is not None
    for expected in (
        batch.number,
        'data-status="received"',
        e1.uscc,
        e1.name_en,
        CARRIER[1],
        PLATE,
        "42.125",
        "含水率过高",
    ):
        assert expected and expected in html, expected
    # Nothing else: no steps, no accounts, no reference, no links into the service but the language switch.
    assert "PZH-0042" not in html and "ent1" not in html and "ent2" not in html
    links = [h for h in _hrefs(html) if not h.startswith(("/static/", "data:"))]  # the sheets and the inline icon
    assert links and all(h.startswith("/lang/") for h in links), links
    assert page.headers["cache-control"] == "no-store"


def _hrefs(html: str) -> list[str]:
    import re

    return re.findall(r'href="([^"]+)"', html)


def test_the_verification_page_in_chinese_and_for_a_draft(client: TestClient, session: Session) -> None:
    w = build_world(session)
    token = verification_token(TEST_SECRET, w.batch_draft)
    html = client.get(f"/verify/{token}", headers={"Accept-Language": "zh-CN"}).text
    assert "联单核验" in html and 'data-status="draft"' in html and "尚无锁定信息" in html
    # A draft seals nothing: not even its parties are shown.
    e2 = session.get(Enterprise, w.e2)
    assert e2 is not None and e2.uscc not in html and e2.name_zh not in html


@pytest.mark.parametrize(
    "token",
    [
        "1.AAAAAAAAAAAAAAAAAAAAAA",  # a well-formed token with a forged signature
        "x",
        "1",
        "1." + "A" * 60,
        "99999999.AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_a_tampered_token_is_refused_plainly(client: TestClient, session: Session, token: str) -> None:
    build_world(session)
    page = client.get(f"/verify/{token}", headers={"Accept-Language": "en"})
    assert page.status_code == 404
    assert "Cannot verify" in page.text and "not issued by circuflow" in page.text


def test_a_token_for_one_manifest_does_not_open_another(client: TestClient, session: Session) -> None:
    w = build_world(session)
    token = verification_token(TEST_SECRET, w.batch_received)
    number, mac = token.split(".")
    moved = f"{w.batch_dispatched}.{mac}"
    assert client.get(f"/verify/{moved}").status_code == 404
    # A token for a manifest that does not exist, correctly signed, is refused the same way.
    assert client.get(f"/verify/{verification_token(TEST_SECRET, 987654)}").status_code == 404
    # Signed under another secret: refused.
    assert client.get(f"/verify/{verification_token('another-secret-' * 2, w.batch_received)}").status_code == 404
    assert client.get(f"/verify/{token}").status_code == 200


def test_the_batch_page_links_to_the_pdf(client: TestClient, session: Session) -> None:
    w, batch_id = _received_batch(client, session)
    page = client.get(f"/batches/{batch_id}", headers=_as(w, "ent1", "zh-CN"))
    assert page.status_code == 200
    assert f'href="/batches/{batch_id}/manifest.pdf"' in page.text and "打印 / PDF" in page.text
