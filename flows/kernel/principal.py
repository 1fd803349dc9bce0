"""Who is acting: a user with a role and a scope, and through which channel."""

from __future__ import annotations

from dataclasses import dataclass

from models import User
from models.enums import Channel, UserRole


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user with a role and a scope, and through which channel."""

    user_id: int | None
    username: str
    role: UserRole
    scope_adcode: str | None = None
    park_id: int | None = None
    enterprise_id: int | None = None
    channel: Channel = Channel.web
    csrf_token: str | None = None  # set for cookie sessions: unsafe requests must echo it

    @property
    def is_admin(self) -> bool:
        return self.role is UserRole.admin


def system_principal(channel: Channel = Channel.cli) -> Principal:
    """The actor for command-line and system work run by the operator."""
    return Principal(user_id=None, username="system", role=UserRole.admin, channel=channel)


def principal_of(user: User, channel: Channel, csrf_token: str | None = None) -> Principal:
    """The principal a user acts as."""
    return Principal(
        user_id=user.id,
        username=user.username,
        role=UserRole(user.role),
        scope_adcode=user.scope_adcode,
        park_id=user.scope_park_id,
        enterprise_id=user.scope_enterprise_id,
        channel=channel,
        csrf_token=csrf_token,
    )
