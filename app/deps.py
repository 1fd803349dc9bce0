"""Request dependencies: the database session and the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from app.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_engine(request: Request) -> Engine:
    """The engine opened by the app's lifespan."""
    engine: Engine = request.app.state.engine
    return engine


def session_engine(request: Request) -> Engine:
    """The engine of the request's session: the primary's for writes and the writer's own reads, else the replica's."""
    if request.method not in SAFE_METHODS:
        write_engine: Engine = request.app.state.write_engine
        return write_engine
    replica = request.app.state.replica  # app.replica.Replica, when CIRCUFLOW_READ_DATABASE_URL is set
    if replica is not None and replica.serves(request):
        read_engine: Engine = replica.engine
        return read_engine
    return get_engine(request)


def _session(engine: Engine) -> Iterator[Session]:
    # What a handler committed stays readable without a new transaction (on SQLite, a second write lock held until
    # the session closes).
    with Session(engine, expire_on_commit=False) as session:
        yield session


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, closed afterwards; a request that may write gets a write transaction."""
    yield from _session(session_engine(request))


def get_primary_session(request: Request) -> Iterator[Session]:
    """A read request's session on the primary: for reads that write and roll back (a correction's preview)."""
    yield from _session(get_engine(request) if request.method in SAFE_METHODS else request.app.state.write_engine)


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
# Never the replica, which refuses every write, even one rolled back.
PrimarySessionDep = Annotated[Session, Depends(get_primary_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
