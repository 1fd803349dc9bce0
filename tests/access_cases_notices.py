"""Access-matrix cases of the notifications (app/api_notifications.py and the inbox, app/web_inbox.py).

Every signed-in account has an inbox of its own; a notification is read and marked by its owner only (to anyone
else it is not found).
"""

from __future__ import annotations

from sqlmodel import Session, select

from flows.notices.inbox import notify, of_users
from models import Notice
from tests.access_cases import SIGNED_IN, Case
from tests.world import NOW, World

FORM = {"form": True}
OWNER = frozenset({"ent1"})


def seed_notice(session: Session, w: World) -> dict[str, str]:
    """A notification of ent1; its id for the cases' URLs."""
    notify(
        session=session,
        to=of_users(w.users["ent1"]),
        kind="batch_refused",
        subject="manifest",
        subject_id=w.batch_received,
        params={"number": "SC2024-0000003", "receiver": {"zh-CN": "乙", "en": "B"}, "reason": "wet"},
        now=NOW,
    )
    session.commit()
    notice = session.exec(select(Notice).where(Notice.user_id == w.users["ent1"])).one()
    return {"notice": str(notice.id)}


NOTICE_CASES: list[Case] = [
    Case("GET", "/api/v1/notifications", SIGNED_IN, lambda w: "/api/v1/notifications?unread=true"),
    Case(
        "POST",
        "/api/v1/notifications/{notice_id}/read",
        OWNER,
        lambda w: "/api/v1/notifications/{notice}/read",
        extra={"seed": seed_notice},
    ),
    Case("POST", "/api/v1/notifications/read-all", SIGNED_IN, lambda w: "/api/v1/notifications/read-all", writes=True),
    Case("GET", "/api/v1/notifications/preferences", SIGNED_IN, lambda w: "/api/v1/notifications/preferences"),
    Case(
        "PUT",
        "/api/v1/notifications/preferences",
        SIGNED_IN,
        lambda w: "/api/v1/notifications/preferences",
        lambda w: {"email": "someone@example.com", "mail_enabled": True},
        writes=True,
    ),
    Case("GET", "/inbox", SIGNED_IN, lambda w: "/inbox?unread=1"),
    Case("GET", "/inbox/bell", SIGNED_IN, lambda w: "/inbox/bell"),
    Case("POST", "/inbox/read-all", SIGNED_IN, lambda w: "/inbox/read-all", lambda w: {}, writes=True, extra=FORM),
    Case(
        "POST",
        "/inbox/{notice_id}/read",
        OWNER,
        lambda w: "/inbox/{notice}/read",
        lambda w: {},
        extra={**FORM, "seed": seed_notice},
    ),
    Case(
        "POST",
        "/inbox/preferences",
        SIGNED_IN,
        lambda w: "/inbox/preferences",
        lambda w: {"email": "someone@example.com", "mail_enabled": "true"},
        writes=True,
        extra=FORM,
    ),
]
