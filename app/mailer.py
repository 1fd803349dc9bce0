"""The worker thread that e-mails notifications after their commit, while CIRCUFLOW_SMTP_URL is set."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session

from flows.notices.mail import SmtpTarget, send_due

log = logging.getLogger("circuflow.mail")


class Mailer:
    """A daemon thread draining the due e-mails every poll_s seconds (or at once when woken), never in a request."""

    def __init__(self, *, engine: Engine, target: SmtpTarget, poll_s: float, base_url: str) -> None:
        self._engine, self._target, self._poll_s, self._base_url = engine, target, poll_s, base_url
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="circuflow-mailer", daemon=True)

    def start(self) -> None:
        """Start draining."""
        self._thread.start()

    def wake(self) -> None:
        """Look for due e-mails now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the send in hand and stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                send_due(
                    sessions=lambda: Session(self._engine, expire_on_commit=False),
                    target=self._target,
                    clock=lambda: datetime.now(UTC),
                    base_url=self._base_url,
                )
            except Exception:  # the database away for a moment must not end the worker: it tries again
                log.exception("sending notification e-mails failed; retrying at the next poll")
            self._wake.wait(self._poll_s)
            self._wake.clear()
