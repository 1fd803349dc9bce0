"""The printable manifest in headless Chromium: the shipper downloads it from the batch page, its QR code (rendered
and decoded) is followed by someone with no account, at desktop and phone width, in Chinese and English; a tampered
code gets the refusal page. Screenshots: manifest-pdf-<lang>, verify-<lang>-<width>, verify-refused-<lang>.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.settings import Settings
from models import Enterprise, Manifest, User
from tests.browser import ARTIFACTS, browser_page, screenshot, session_cookie_for
from tests.test_manifest_pdf import CARRIER, PLATE, _decode_qr, _received_batch

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
WORDS = {
    "zh-CN": {"link": "打印 / PDF", "title": "联单核验", "status": "已接收", "refused": "无法核验"},
    "en": {"link": "Print / PDF", "title": "Manifest verification", "status": "Received", "refused": "Cannot verify"},
}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_print_the_manifest_and_verify_its_qr_code(
    sync_playwright: Any,
    live_server: str,
    client: TestClient,
    session: Session,
    settings: Settings,
    tmp_path: Path,
    lang: str,
) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is missing")
    w, batch_id = _received_batch(client, session)
    batch, e1 = session.get(Manifest, batch_id), session.get(Enterprise, w.e1)
    user = session.get(User, w.users["ent1"])
    assert batch is not None and e1 is not None and user is not None
    words = WORDS[lang]
    cookie = session_cookie_for(session, settings, user)

    with sync_playwright() as pw:
        with browser_page(pw, live_server, cookie=cookie, locale=lang) as (page, _requests, errors):
            page.goto(f"{live_server}/batches/{batch_id}")
            link = page.get_by_role("link", name=words["link"])
            assert link.is_visible()
            # Chromium shows a PDF in its own viewer (headless: nothing to read back), so the browser's session
            # fetches what the link names, as the viewer would.
            href = link.get_attribute("href")
            assert href == f"/batches/{batch_id}/manifest.pdf"
            answer = page.request.get(f"{live_server}{href}", headers={"Accept-Language": lang})
            assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
            assert answer.headers["content-language"] == lang
            pdf = answer.body()
            assert errors == []
        pdf_path = tmp_path / "manifest.pdf"
        pdf_path.write_bytes(pdf)
        assert pdf.startswith(b"%PDF-")
        url = _decode_qr(pdf, tmp_path)
        assert url.startswith(f"{live_server}/verify/")
        # The printed page as a picture, to look at beside the screenshots.
        ARTIFACTS.mkdir(exist_ok=True)
        out = ARTIFACTS / f"manifest-pdf-{lang}"
        subprocess.run(["pdftoppm", "-r", "80", "-f", "1", "-l", "1", "-png", "-singlefile", str(pdf_path), str(out)])

        for width_name, (width, height) in WIDTHS.items():
            # Whoever holds the paper: no account, no cookie.
            with browser_page(pw, live_server, locale=lang, width=width, height=height) as (page, _requests, errors):
                page.goto(url)
                assert page.locator("h1").inner_text() == words["title"]
                assert page.locator("#verify-number").inner_text() == batch.number
                assert page.locator("#verify-status").inner_text().strip() == words["status"]
                sealed = page.locator("#verify-sealed").inner_text()
                name = e1.name_zh if lang == "zh-CN" else e1.name_en
                for expected in (name, e1.uscc, CARRIER[0] if lang == "zh-CN" else CARRIER[1], PLATE, "42.125"):
                    assert expected and expected in sealed, expected
                # Nothing to go to: no menu, no link but the language switch.
                hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
                assert all(h.startswith("/lang/") for h in hrefs), hrefs
                # Nothing wider than the phone's screen.
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                assert errors == []
                screenshot(page, f"verify-{lang}-{width_name}")

        with browser_page(pw, live_server, locale=lang, width=390, height=844) as (page, _requests, _errors):
            tampered = url[:-1] + ("A" if url[-1] != "A" else "B")
            answer = page.goto(tampered)
            assert answer is not None and answer.status == 404
            assert page.locator("h1").inner_text() == words["refused"]
            assert batch.number not in page.content()
            screenshot(page, f"verify-refused-{lang}")
