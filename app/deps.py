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


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, closed afterwards; a request that may write gets a write transaction."""
    engine = get_engine(request) if request.method in SAFE_METHODS else request.app.state.write_engine
    # What a handler committed stays readable without a new transaction (on SQLite, a second write lock held until
    # the session closes).
    with Session(engine, expire_on_commit=False) as session:
        yield session


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
