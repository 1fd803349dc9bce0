"""Access-matrix cases of the manifest routes (the world's batches go from E1 in park A to E2, both in Panzhihua)."""

from __future__ import annotations

from tests.access_cases import SEES_E1, SIGNED_IN, Case

SHIPPER = frozenset({"admin", "ent1"})
# E2, the receiver, has no account in the world: among its roles only an administrator acts for a receiver.
RECEIVER = frozenset({"admin"})

MANIFEST_CASES: list[Case] = [
    Case("GET", "/api/v1/manifests/steps", SIGNED_IN, lambda w: "/api/v1/manifests/steps"),
    Case("GET", "/api/v1/manifests", SIGNED_IN, lambda w: "/api/v1/manifests?year=2024"),
    Case("GET", "/api/v1/manifests/{batch_id}", SEES_E1, lambda w: f"/api/v1/manifests/{w.batch_received}"),
    Case("GET", "/api/v1/manifests/{batch_id}/chain", SEES_E1, lambda w: f"/api/v1/manifests/{w.batch_received}/chain"),
    Case(
        "POST",
        "/api/v1/manifests",
        SHIPPER,
        lambda w: "/api/v1/manifests",
        lambda w: {
            "shipper_id": w.e1,
            "receiver_id": w.e2,
            "category_code": "SW01",
            "route": "road_base",
            "weight_dispatched_t": 12.5,
        },
        writes=True,
    ),
    Case(
        "PATCH",
        "/api/v1/manifests/{batch_id}",
        SHIPPER,
        lambda w: f"/api/v1/manifests/{w.batch_draft}",
        lambda w: {"weight_dispatched_t": 31.0},
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/manifests/{batch_id}/dispatch",
        SHIPPER,
        lambda w: f"/api/v1/manifests/{w.batch_draft}/dispatch",
        lambda w: {},
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/manifests/{batch_id}/cancel",
        SHIPPER,
        lambda w: f"/api/v1/manifests/{w.batch_draft}/cancel",
        lambda w: {"cancel_reason": "truck broke down"},
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/manifests/{batch_id}/receive",
        RECEIVER,
        lambda w: f"/api/v1/manifests/{w.batch_dispatched}/receive",
        lambda w: {"weight_received_t": 29.9},
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/manifests/{batch_id}/reject",
        RECEIVER,
        lambda w: f"/api/v1/manifests/{w.batch_dispatched}/reject",
        lambda w: {"rejection_reason": "wet"},
        writes=True,
    ),
    Case(
        "POST",
        "/api/v1/manifests/{batch_id}/correct",
        SHIPPER,
        lambda w: f"/api/v1/manifests/{w.batch_received}/correct",
        lambda w: {"changes": {"weight_dispatched_t": 29.9}, "reason": "weighbridge ticket re-read"},
        writes=True,
    ),
]
