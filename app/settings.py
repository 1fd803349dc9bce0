"""Settings of the service, read from the environment (prefix CIRCUFLOW_)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from flows.access.trail import derive_key
from flows.kernel.bounds import MB, UploadLimits
from flows.kernel.numbers import DEFAULT_WAN_THRESHOLD
from flows.notices.mail import SmtpTarget, parse_smtp_url
from models.db import make_engine, writer

DEFAULT_SECRET = "change-me"  # noqa: S105 - a placeholder the app refuses outside development


class Settings(BaseSettings):
    """One settings object for the whole service."""

    model_config = SettingsConfigDict(env_prefix="CIRCUFLOW_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    secret_key: str = DEFAULT_SECRET
    # Signs the audit log's head; empty: derived from secret_key. Set it on its own so that a new secret_key (which
    # ends the sessions) does not also invalidate the audit log's signature.
    audit_key: str = ""
    default_language: Literal["zh-CN", "en"] = "zh-CN"
    tile_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Serving: worker processes, and per worker the database pool. Keep workers x (pool + overflow) under the
    # server's max_connections (PostgreSQL's default is 100).
    workers: int = Field(default=1, ge=1, le=64)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_s: float = Field(default=30.0, gt=0, le=600)
    sqlite_busy_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # A read replica (README: A read replica): when set, read-only requests use it, writes and the writer's own reads
    # the primary; its pool is per worker as the primary's, and counts against the replica's max_connections.
    read_database_url: str = ""
    read_db_pool_size: int = Field(default=10, ge=1, le=200)
    read_db_max_overflow: int = Field(default=10, ge=0, le=200)
    read_after_write_s: float = Field(default=10.0, ge=0, le=3600)  # after a write, the writer reads the primary
    replica_max_lag_s: float = Field(default=5.0, ge=0, le=3600)  # a replica further behind is not read
    replica_check_s: float = Field(default=2.0, gt=0, le=600)  # how often its lag (or its absence) is looked at
    # E-mail copies of notifications (README: Notifications): off while smtp_url is empty. smtp://host:port,
    # smtp://user:password@host:587?starttls=true, or smtps://host:465; sent after commit by a worker thread.
    smtp_url: str = ""
    smtp_from: str = "circuflow@localhost"
    smtp_poll_s: float = Field(default=5.0, gt=0, le=3600)  # how often the worker looks for e-mails due
    # How often the notice worker tells enterprises of new flags (README: Notifications); 0: not in this process.
    flag_scan_s: float = Field(default=600.0, ge=0, le=86400)
    mail_base_url: str = ""  # the service's address as readers reach it, to make the links in e-mails whole
    # From this many tonnes on, pages write 万吨 (kt / Mt in English), as bureaus do (README: Numbers).
    wan_t_threshold: Decimal = Field(default=DEFAULT_WAN_THRESHOLD, ge=0, le=10**9)

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'circuflow.sqlite3').as_posix()}"
        self.database_url = normalise_database_url(self.database_url)
        self.read_database_url = normalise_database_url(self.read_database_url)
        if self.environment != "development" and (self.secret_key == DEFAULT_SECRET or len(self.secret_key) < 16):
            raise ValueError(
                f"CIRCUFLOW_SECRET_KEY must be set to a real secret (16 characters or more) in {self.environment}"
            )
        if self.smtp_url:
            parse_smtp_url(self.smtp_url, self.smtp_from)  # a malformed URL stops the start, naming the fault
        if self.environment != "development" and self.audit_key and len(self.audit_key) < 16:
            raise ValueError(f"CIRCUFLOW_AUDIT_KEY must be 16 characters or more in {self.environment}")
        return self

    def audit_signing_key(self) -> bytes:
        """The key that signs the audit log's head: CIRCUFLOW_AUDIT_KEY, or one derived from the secret key."""
        return self.audit_key.encode() if self.audit_key else derive_key(self.secret_key)

    # Input bounds (README: Configuration, "Input bounds"): what one request or one imported file may be.
    max_json_mb: float = Field(default=1, gt=0, le=100)  # a request body other than an upload
    max_upload_mb: float = Field(default=20, gt=0, le=1024)  # an uploaded file
    max_xlsx_expanded_mb: float = Field(default=100, gt=0, le=4096)  # an XLSX's parts, decompressed
    max_import_rows: int = Field(default=200_000, ge=1, le=10_000_000)  # rows below the header of an imported file
    # Python's csv module refuses a longer field on its own (a process-wide switch): 128 KB is also the most.
    max_csv_field_kb: int = Field(default=128, ge=1, le=128)
    # Evidence files (weighbridge tickets, letters): kept outside the database, under their SHA-256.
    attachments_dir: Path | None = None  # default: <data_dir>/attachments
    max_attachment_mb: float = Field(default=10, gt=0, le=100)
    # A correction that changes a weight by more than this share AND more than these tonnes needs an attachment.
    correction_tolerance_pct: float = Field(default=10, ge=0, le=100)
    correction_tolerance_t: float = Field(default=10, ge=0, le=1_000_000)

    def smtp_target(self) -> SmtpTarget | None:
        """Where notifications are e-mailed; None when e-mail is off."""
        return parse_smtp_url(self.smtp_url, self.smtp_from) if self.smtp_url else None

    def upload_limits(self) -> UploadLimits:
        """The limits of an imported file."""
        return UploadLimits(
            max_bytes=int(self.max_upload_mb * MB),
            max_expanded_bytes=int(self.max_xlsx_expanded_mb * MB),
            max_rows=self.max_import_rows,
            max_field_chars=self.max_csv_field_kb * 1024,
        )


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres:// URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_for(settings: Settings) -> Engine:
    """The engine the settings describe, with their pool and busy timeout."""
    return make_engine(
        settings.database_url,
        busy_timeout_s=settings.sqlite_busy_timeout_s,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_s=settings.db_pool_timeout_s,
    )


def write_engine_for(settings: Settings) -> Engine:
    """The engine for a process whose sessions write (the CLI): on SQLite its transactions take the lock up front."""
    return writer(engine_for(settings))
