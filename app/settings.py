"""Settings of the service, read from the environment (prefix CIRCUFLOW_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "change-me"  # noqa: S105 - a placeholder the app refuses outside development


class Settings(BaseSettings):
    """One settings object for the whole service."""

    model_config = SettingsConfigDict(env_prefix="CIRCUFLOW_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    secret_key: str = DEFAULT_SECRET
    default_language: Literal["zh-CN", "en"] = "zh-CN"
    tile_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'circuflow.sqlite3').as_posix()}"
        self.database_url = normalise_database_url(self.database_url)
        if self.environment != "development" and (self.secret_key == DEFAULT_SECRET or len(self.secret_key) < 16):
            raise ValueError(
                f"CIRCUFLOW_SECRET_KEY must be set to a real secret (16 characters or more) in {self.environment}"
            )
        return self


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres:// URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
