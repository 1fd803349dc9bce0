"""Schemathesis against the JSON API, in-process, as each role: whatever it sends, no answer is a server error.

The schema is the app's own /api/v1/openapi.json, fetched with a bearer token (it is behind sign-in like every
route). Every operation gets a few positive and a few negative examples (out-of-range numbers, wrong types, odd
strings), derandomised so that a run is repeatable, and each example is sent as an enterprise user, a park
manager, a bureau auditor and an administrator (least privileged first, so that the administrator's writes come
last); the check is not_a_server_error. PostgreSQL, where integer ranges and NUL bytes bite, gets fewer examples,
so that the module stays within a couple of minutes. For a longer hunt, CIRCUFLOW_FUZZ_EXAMPLES=50 runs that many
examples per operation and mode on each backend, with fresh random data each run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.python import asgi
from sqlmodel import Session

from app.main import create_app
from app.settings import Settings
from tests.world import World, build_world

# One account of each role (tests/world.py), least privileged first.
ROLES = {"enterprise": "ent1", "park_manager": "park_a", "bureau": "bureau_pzh", "admin": "admin"}
EXAMPLES = {"sqlite": 4, "postgresql": 2}
HUNT = int(os.environ.get("CIRCUFLOW_FUZZ_EXAMPLES", "0"))
# Operations that would end the run's own sessions (revoking a token, disabling an account) go last.
LAST = ("DELETE /api/v1/tokens/{token_id}", "POST /api/v1/users/{username}/disable")


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


@pytest.fixture
def lifespans() -> Iterator[None]:
    """Schemathesis keeps each app's lifespan open for the process; end it with the test and its database."""
    yield
    asgi.shutdown_lifespans()


def test_no_input_gets_a_server_error(backend: str, settings: Settings, world: World, lifespans: None) -> None:
    app = create_app(settings)
    tokens = {role: {"Authorization": f"Bearer {world.tokens[name]}"} for role, name in ROLES.items()}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers=tokens["admin"])
    loaded = list(schema.get_all_operations())
    broken = [result.err() for result in loaded if isinstance(result, Err)]
    assert not broken, broken  # every operation's schema loads
    operations = sorted((r.ok() for r in loaded if isinstance(r, Ok)), key=lambda op: op.label in LAST)
    assert len(operations) > 40  # the whole API, not a schema that failed to load
    found: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis_settings(
                max_examples=HUNT or EXAMPLES[backend],
                deadline=None,
                derandomize=not HUNT,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: the example that failed is enough to read
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case[Any]) -> None:
                for role, auth in tokens.items():
                    # This test hunts server errors, not slowness (benchmarks measure that): a busy machine's
                    # first call of a heavy report may take longer than the client's default 10 s.
                    response = case.call(headers=auth, timeout=120)
                    try:
                        case.validate_response(response, checks=[not_a_server_error])
                    except Exception as exc:
                        exc.add_note(f"as {role}")
                        raise

            try:
                run()
            except Unsatisfiable:
                pass  # nothing to make invalid: an operation without parameters or body
            except Exception as exc:  # noqa: BLE001 - every operation is tried; the failures are listed at the end
                notes = " ".join(getattr(exc, "__notes__", []))
                found.append(f"{operation.label} ({mode.value}, {notes}): {str(exc).strip()[:1500]}")
    assert not found, "\n\n".join(found)
