"""Access-matrix cases of the batches pages (app/web_batches.py).

The world's batches go from E1 (park A, Panzhihua; account ent1) to E2 (Panzhihua, no account). Batches are logged
on the page by the shipper's own enterprise account; the steps follow the manifest rules (flows.waste.manifests), which
let an administrator act for either party.
"""

from __future__ import annotations

from tests.access_cases import SEES_E1, SIGNED_IN, Case

LOGGERS = frozenset({"ent1", "ent3"})  # enterprise accounts log their own batches; nobody else uses the form
SHIPPER = frozenset({"admin", "ent1"})
RECEIVER = frozenset({"admin"})  # E2 has no account in the world
FORM = {"form": True}

BATCHES_CASES: list[Case] = [
    Case("GET", "/batches", SIGNED_IN, lambda w: "/batches?year=2024&sort=weight&order=asc"),
    Case("GET", "/batches/new", LOGGERS, lambda w: "/batches/new"),
    Case(
        "POST",
        "/batches/new",
        LOGGERS,
        lambda w: "/batches/new",
        lambda w: {
            "receiver_id": str(w.e2),
            "category": "SW01",
            "route": "road_base",
            "weight": "12500",
            "unit": "kg",
            "action": "draft",
            "idempotency_key": "matrix",
        },
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/batches/new/check",
        LOGGERS,
        lambda w: "/batches/new/check",
        lambda w: {"field": "weight", "weight": "12.5", "unit": "t"},
        extra=FORM,
    ),
    Case(
        "POST",
        "/batches/new/search",
        LOGGERS,
        lambda w: "/batches/new/search",
        lambda w: {"field": "receiver", "receiver_q": "测试"},
        extra=FORM,
    ),
    Case("GET", "/batches/{batch_id}", SEES_E1, lambda w: f"/batches/{w.batch_received}"),
    Case("GET", "/batches/{batch_id}/edit", frozenset({"ent1"}), lambda w: f"/batches/{w.batch_draft}/edit"),
    Case(
        "POST",
        "/batches/{batch_id}/edit",
        frozenset({"ent1"}),
        lambda w: f"/batches/{w.batch_draft}/edit",
        lambda w: {"receiver_id": str(w.e2), "category": "SW01", "route": "road_base", "weight": "31", "unit": "t"},
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/batches/{batch_id}/dispatch",
        SHIPPER,
        lambda w: f"/batches/{w.batch_draft}/dispatch",
        lambda w: {"dispatched_at": ""},
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/batches/{batch_id}/cancel",
        SHIPPER,
        lambda w: f"/batches/{w.batch_draft}/cancel",
        lambda w: {"cancel_reason": "truck broke down"},
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/batches/{batch_id}/receive",
        RECEIVER,
        lambda w: f"/batches/{w.batch_dispatched}/receive",
        lambda w: {"weight_received": "29900", "unit": "kg"},
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/batches/{batch_id}/reject",
        RECEIVER,
        lambda w: f"/batches/{w.batch_dispatched}/reject",
        lambda w: {"rejection_reason": "wet"},
        writes=True,
        extra=FORM,
    ),
    Case(
        "POST",
        "/batches/{batch_id}/correct",
        SHIPPER,
        lambda w: f"/batches/{w.batch_received}/correct",
        lambda w: {"what": "weight_dispatched", "weight": "29.9", "unit": "t", "reason": "weighbridge ticket re-read"},
        writes=True,
        extra=FORM,
    ),
]
