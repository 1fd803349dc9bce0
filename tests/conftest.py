"""Every test gets its own database, on SQLite and (when a server is given) on PostgreSQL + PostGIS.

A template database is migrated and loaded with the boundaries once per run; each test then gets a copy
(a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL), so tests never share rows.
Set CIRCUFLOW_TEST_POSTGRES_URL to an administrative URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres)
to run every database test on PostgreSQL as well; scripts/test.sh does.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url, text
from sqlmodel import Session

from app.main import create_app
from app.settings import Settings, normalise_database_url
from app.setup import upgrade_database
from flows.access import accounts
from models.db import make_engine
from tests import browser

PG_ADMIN_URL = os.environ.get("CIRCUFLOW_TEST_POSTGRES_URL", "")

# Real argon2id, with cheap parameters: the suite creates hundreds of accounts.
accounts.use_password_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
BACKENDS = ["sqlite", "postgresql"]
TEST_SECRET = "test-secret-" + "x" * 20


def _pg_admin() -> Engine:
    return create_engine(normalise_database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    return make_url(normalise_database_url(PG_ADMIN_URL)).set(database=name).render_as_string(hide_password=False)


class Templates:
    """Lazily built template databases, one per backend, for the whole run."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sqlite_path: Path | None = None
        self.pg_name: str | None = None

    def sqlite(self) -> Path:
        if self.sqlite_path is None:
            path = self.tmp / "template.sqlite3"
            engine = make_engine(f"sqlite:///{path}")
            upgrade_database(engine)
            engine.dispose()
            # Fold the WAL into the main file so that a plain copy is a complete database.
            con = sqlite3.connect(path)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.execute("PRAGMA journal_mode=DELETE")
            con.close()
            self.sqlite_path = path
        return self.sqlite_path

    def postgresql(self) -> str:
        if self.pg_name is None:
            name = f"circuflow_tpl_{uuid.uuid4().hex[:8]}"
            admin = _pg_admin()
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            engine = make_engine(_pg_url(name))
            with engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            upgrade_database(engine)
            engine.dispose()
            self.pg_name = name
        return self.pg_name

    def drop(self) -> None:
        if self.pg_name:
            admin = _pg_admin()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    tpl = Templates(tmp_path_factory.mktemp("templates"))
    yield tpl
    tpl.drop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test run; PostgreSQL is skipped when no server is given."""
    if request.param == "postgresql" and not PG_ADMIN_URL:
        pytest.skip("CIRCUFLOW_TEST_POSTGRES_URL is not set")
    return str(request.param)


@pytest.fixture
def db_url(backend: str, templates: Templates, tmp_path: Path) -> Iterator[str]:
    """A fresh database for this test alone, with the schema, boundaries and reference data."""
    if backend == "sqlite":
        path = tmp_path / "circuflow.sqlite3"
        shutil.copyfile(templates.sqlite(), path)
        yield f"sqlite:///{path}"
        return
    template = templates.postgresql()
    name = f"circuflow_t_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # No flag scan in the background of a test app: the scan is tested on its own (tests/test_flag_notices.py).
    return Settings(database_url=db_url, data_dir=tmp_path, environment="test", secret_key=TEST_SECRET, flag_scan_s=0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment under which the CLI talks to this test's database."""
    # The same secret as the settings fixture: the app and the CLI then sign the audit log's head with one key.
    env = {
        "CIRCUFLOW_DATABASE_URL": db_url,
        "CIRCUFLOW_DATA_DIR": str(tmp_path),
        "CIRCUFLOW_SECRET_KEY": TEST_SECRET,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def sync_playwright() -> Any:
    """Playwright's sync entry point for the browser tests (skipped without Chromium, failed under CI)."""
    return browser.playwright_entry()


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """The app on this test's database, served on a free localhost port for the browser."""
    with browser.serve(settings) as url:
        yield url


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The Sichuan demo in a SQLite file, built once per run (a few seconds); copy it before writing to it."""
    browser.playwright_entry()  # only the browser tests use it: skip (or fail under CI) before spending the time
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    return path, browser.build_demo_file(path)


@pytest.fixture(scope="session")
def demo_site(demo_file: tuple[Path, dict[str, str]]) -> Iterator[browser.DemoSite]:
    """The demo served, read-only by convention, for tours of the pages; journeys that write use their own copy."""
    path, passwords = demo_file
    settings = browser.demo_settings(path)
    with browser.serve(settings) as url:
        yield browser.DemoSite(url, passwords, settings)
