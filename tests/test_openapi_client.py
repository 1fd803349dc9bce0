"""The OpenAPI document is valid, types every request body, and a client generated from it works against a server.

openapi-python-client generates the client from the schema file, offline, once per test session; the client then
creates, dispatches and receives a manifest through a real server (uvicorn on a free local port), on SQLite and on
PostgreSQL, as the shipper's and the receiver's own tokens.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from sqlmodel import Session

from app.main import create_app
from app.settings import Settings
from models import Manifest
from models.enums import ManifestStatus
from tests.browser import serve
from tests.world import World, add_receiver_account, build_world

WRITES = ("post", "put", "patch", "delete")
# Write operations whose every input is in the path: they take no body at all.
BODYLESS = {
    "DELETE /api/v1/tokens/{token_id}",
    "DELETE /api/v1/locks/{adcode}/{year}",
    "POST /api/v1/users/{username}/disable",
    "POST /api/v1/notifications/{notice_id}/read",
    "POST /api/v1/notifications/read-all",
}
PACKAGE = "circuflow_client"


def _schema() -> dict[str, Any]:
    settings = Settings(database_url="sqlite://", environment="test", secret_key="x" * 32)
    return create_app(settings).openapi()


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    return _schema()


@pytest.fixture(scope="session")
def generated(schema: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package generated from the schema file (no network), importable for the session."""
    root = tmp_path_factory.mktemp("client")
    (root / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    # No post-hooks: the generator would otherwise run ruff over the generated code.
    (root / "config.yaml").write_text("post_hooks: []\n", encoding="utf-8")
    cli = Path(sys.executable).with_name("openapi-python-client")
    command = [str(cli), "generate", "--path", "schema.json", "--output-path", PACKAGE, "--meta", "none"]
    done = subprocess.run(
        [*command, "--config", "config.yaml"], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = schema["components"]["schemas"][name]
    return node


def _free_form(schema: dict[str, Any], node: dict[str, Any]) -> list[str]:
    """Why a body schema does not name its fields (an object without properties at its top level), if it does not."""
    node = _resolve(schema, node)
    if "anyOf" in node or "oneOf" in node:
        options: list[dict[str, Any]] = node.get("anyOf") or node.get("oneOf") or []
        return [why for option in options for why in _free_form(schema, option)]
    if node.get("type") == "array":
        return _free_form(schema, node.get("items", {}))
    if not node.get("properties"):
        return [f"{node.get('title', 'a body')} names no fields: {json.dumps(node)[:200]}"]
    return []


def test_the_schema_is_valid_openapi(schema: dict[str, Any]) -> None:
    validate(schema)


def test_every_write_names_its_body_fields(schema: dict[str, Any]) -> None:
    problems: list[str] = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in WRITES:
                continue
            label = f"{method.upper()} {path}"
            body = operation.get("requestBody")
            if body is None:
                if label not in BODYLESS:
                    problems.append(f"{label}: no request body")
                continue
            for media, content in body["content"].items():
                problems += [f"{label} ({media}): {why}" for why in _free_form(schema, content.get("schema", {}))]
    assert not problems, "\n".join(problems)


def test_the_served_schema_is_the_one_the_client_is_generated_from(settings: Settings) -> None:
    assert create_app(settings).openapi() == _schema()


@pytest.fixture
def world(session: Session) -> World:
    return add_receiver_account(session, build_world(session))


def test_a_generated_client_ships_and_receives_a_manifest(
    generated: ModuleType, settings: Settings, world: World, session: Session
) -> None:
    create = importlib.import_module(f"{PACKAGE}.api.manifests.create_api_v1_manifests_post")
    dispatch = importlib.import_module(f"{PACKAGE}.api.manifests.dispatch_api_v1_manifests_batch_id_dispatch_post")
    receive = importlib.import_module(f"{PACKAGE}.api.manifests.receive_api_v1_manifests_batch_id_receive_post")
    models = importlib.import_module(f"{PACKAGE}.models")
    with serve(settings) as url:

        def client(name: str) -> Any:
            return generated.AuthenticatedClient(base_url=url, token=world.tokens[name], timeout=httpx.Timeout(60))

        with client("ent1") as shipper, client("ent2") as receiver:
            # The weight in kg and the receiver by its id: the alternatives the schema offers.
            body = models.ManifestCreate(
                category_code="SW01",
                route=models.Route.CEMENT_ADMIXTURE,
                receiver_id=world.e2,
                weight_dispatched_kg=12_500,
                reference="generated-client-1",
            )
            made = create.sync_detailed(client=shipper, body=body)
            assert made.status_code == 201, made.content
            draft = made.parsed
            assert draft.status == models.ManifestStatus.DRAFT and draft.weight_dispatched_t == 12.5
            assert draft.shipper_id == world.e1 and draft.receiver_id == world.e2

            sent = dispatch.sync_detailed(draft.id, client=shipper, body=models.DispatchIn())
            assert sent.status_code == 200, sent.content
            assert sent.parsed.status == models.ManifestStatus.DISPATCHED

            got = receive.sync_detailed(draft.id, client=receiver, body=models.ReceiveIn(weight_received_t=12.25))
            assert got.status_code == 200, got.content
            assert got.parsed.status == models.ManifestStatus.RECEIVED
            assert got.parsed.weight_received_t == 12.25 and got.parsed.discrepancy_t == pytest.approx(-0.25)

            # The receiver cannot dispatch: the refusal comes back through the client too.
            refused = dispatch.sync_detailed(draft.id, client=receiver, body=models.DispatchIn())
            assert refused.status_code in (403, 409), refused.content

    session.expire_all()
    stored = session.get(Manifest, draft.id)
    assert stored is not None
    assert ManifestStatus(stored.status) is ManifestStatus.received
    assert stored.weight_dispatched_t == 12.5 and stored.weight_received_t == 12.25
    assert stored.reference == "generated-client-1" and stored.dispatched_at is not None
