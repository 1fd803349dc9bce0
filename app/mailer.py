"""The notice worker thread: e-mails notifications after their commit (while CIRCUFLOW_SMTP_URL is set) and, every
flag_scan_s seconds, tells enterprises of the flags raised on them (flows/waste/flag_alerts.py)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session

from flows.notices.mail import SmtpTarget, send_due
from flows.waste.flag_alerts import announce_flags

log = logging.getLogger("circuflow.mail")


class Mailer:
    """A daemon thread draining the due e-mails every poll_s seconds (or at once when woken), never in a request."""

    def __init__(
        self,
        *,
        engine: Engine,
        target: SmtpTarget | None,
        poll_s: float,
        base_url: str,
        flag_scan_s: float = 0,
    ) -> None:
        self._engine, self._target, self._poll_s, self._base_url = engine, target, poll_s, base_url
        self._flag_scan_s = flag_scan_s  # 0: no flag scan in this process (cron runs `circuflow notices flags`)
        self._next_scan = time.monotonic() + flag_scan_s
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

    def _scan(self) -> None:
        if not self._flag_scan_s or time.monotonic() < self._next_scan:
            return
        self._next_scan = time.monotonic() + self._flag_scan_s
        try:
            with Session(self._engine) as session:
                announce_flags(session, datetime.now(UTC))
                session.commit()
        except Exception:  # a failed scan is tried again at the next period; the mail keeps going
            log.exception("announcing flags failed; retrying at the next period")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._scan()
            if self._target is None:
                self._wake.wait(min(self._poll_s, self._flag_scan_s or self._poll_s))
                self._wake.clear()
                continue
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
