"""Access cases of the printable manifest: the PDF for whoever may read the batch, its verification page for anyone."""

from __future__ import annotations

from app.web_print import verification_token
from tests.access_cases import EVERYONE, SEES_E1, Case
from tests.conftest import TEST_SECRET

PRINT_CASES = [
    Case("GET", "/batches/{batch_id}/manifest.pdf", SEES_E1, lambda w: f"/batches/{w.batch_received}/manifest.pdf"),
    Case("GET", "/api/v1/manifests/{batch_id}/pdf", SEES_E1, lambda w: f"/api/v1/manifests/{w.batch_received}/pdf"),
    # What the printed QR code opens needs no account: the signed token is the permission.
    Case("GET", "/verify/{token}", EVERYONE, lambda w: f"/verify/{verification_token(TEST_SECRET, w.batch_received)}"),
]
