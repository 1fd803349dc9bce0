"""E-mail copies of notifications, sent after the event's commit by a worker that drains the due rows.

A row is claimed by moving its due time past a lease (one conditional UPDATE, committed before the send), so that
two workers never send one e-mail twice and a worker that dies mid-send leaves the row to be retried when the
lease ends. A failed send is retried with a growing pause; after the last attempt the e-mail is marked failed.
The notification itself is never touched: it stays in the inbox whatever happens to its e-mail.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import update
from sqlmodel import Session, col, select

from flows.kernel.messages import render
from flows.notices.inbox import link_of, text_of
from models import User
from models.notices import Notice, NoticePreference

LEASE = timedelta(minutes=2)  # longer than one send may take (the SMTP timeout below)
SEND_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 8
BATCH = 50


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to send: host, port, TLS (none, starttls or implicit ssl), login and the sender address."""

    host: str
    port: int
    tls: Literal["none", "starttls", "ssl"]
    username: str
    password: str
    sender: str


def parse_smtp_url(url: str, sender: str) -> SmtpTarget:
    """Read smtp://[user:password@]host[:port][?starttls=true] or smtps://...; raises ValueError naming the fault."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("CIRCUFLOW_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("CIRCUFLOW_SMTP_URL names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("CIRCUFLOW_SMTP_URL has a port that is not a number from 1 to 65535") from None
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "false") in ("1", "true", "yes")
    tls: Literal["none", "starttls", "ssl"] = "ssl" if parts.scheme == "smtps" else "starttls" if starttls else "none"
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if tls == "ssl" else 587 if tls == "starttls" else 25),
        tls=tls,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        sender=sender,
    )


def send(target: SmtpTarget, message: EmailMessage) -> None:
    """Hand one message to the SMTP server (raises on any refusal or network fault)."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if target.tls == "ssl":
        smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=SEND_TIMEOUT_S, context=context)
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=SEND_TIMEOUT_S)
    with smtp:
        if target.tls == "starttls":
            smtp.starttls(context=context)
        if target.username:
            smtp.login(target.username, target.password)
        smtp.send_message(message)


def compose(*, notice: Notice, email: str, lang: str, role: str, sender: str, base_url: str) -> EmailMessage:
    """The e-mail of one notification, in its reader's language, linking to the thing it is about."""
    text = text_of(notice, lang)
    message = EmailMessage()
    message["From"] = formataddr(("circuflow", sender))
    message["To"] = email
    message["Subject"] = render(lang, "notices.mail.subject", {"text": text[:120]})
    message["Message-ID"] = make_msgid(idstring=f"notice{notice.id}")
    link = link_of(notice, role)
    body = [text, ""]
    if link:
        body.append(f"{base_url.rstrip('/')}{link}" if base_url else link)
    body.append(f"{base_url.rstrip('/')}/inbox" if base_url else "/inbox")
    body += ["", render(lang, "notices.mail.footer", {})]
    message.set_content("\n".join(body))
    return message


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def send_due(
    *,
    sessions: Callable[[], Session],
    target: SmtpTarget,
    clock: Callable[[], datetime],
    base_url: str = "",
    sender: Callable[[SmtpTarget, EmailMessage], None] = send,
) -> int:
    """Send the e-mails that are due, each claimed and committed before it is sent; returns how many were sent."""
    sent = 0
    with sessions() as session:
        now = clock()
        due = select(Notice.id).where(Notice.mail_state == "pending", col(Notice.mail_next_at) <= now)
        ids = list(session.exec(due.order_by(col(Notice.id)).limit(BATCH)).all())
    for notice_id in ids:
        with sessions() as session:
            now = clock()
            claimed = session.execute(
                update(Notice)
                .where(
                    col(Notice.id) == notice_id, col(Notice.mail_state) == "pending", col(Notice.mail_next_at) <= now
                )
                .values(mail_next_at=now + LEASE)
            )
            session.commit()
            if not claimed.rowcount:  # type: ignore[attr-defined]
                continue  # another worker took it
            row = session.exec(
                select(Notice, User, NoticePreference)
                .join(User, col(User.id) == col(Notice.user_id))
                .join(NoticePreference, col(NoticePreference.user_id) == col(Notice.user_id))
                .where(Notice.id == notice_id)
            ).first()
            if row is None:
                continue
            notice, user, pref = row
            if not pref.mail_enabled or not pref.email:
                notice.mail_state, notice.mail_next_at = "none", None
                session.add(notice)
                session.commit()
                continue
            message = compose(
                notice=notice,
                email=pref.email,
                lang=user.language if user.language in ("zh-CN", "en") else "zh-CN",
                role=str(user.role),
                sender=target.sender,
                base_url=base_url,
            )
            try:
                sender(target, message)
            except (OSError, smtplib.SMTPException) as exc:
                notice.mail_attempts += 1
                notice.mail_error = f"{type(exc).__name__}: {exc}"[:500]
                if notice.mail_attempts >= MAX_ATTEMPTS:
                    notice.mail_state, notice.mail_next_at = "failed", None
                else:
                    notice.mail_next_at = clock() + _backoff(notice.mail_attempts)
            else:
                sent += 1
                notice.mail_attempts += 1
                notice.mail_state, notice.mail_next_at, notice.mail_error = "sent", None, None
            session.add(notice)
            session.commit()
    return sent
