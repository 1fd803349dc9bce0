"""Accounts: users, password hashing, browser sessions, API tokens and the sign-in throttle."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import DateTime, String, delete, insert, literal, text
from sqlmodel import Session, col, func, select

from flows.access.trail import record
from flows.kernel.bounds import check_text
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound, TooManyAttempts
from flows.kernel.messages import Message, Term, msg
from flows.kernel.principal import Principal as Principal
from flows.kernel.principal import principal_of as principal_of
from flows.kernel.principal import system_principal as system_principal
from models import ApiToken, Enterprise, LoginFailure, LoginSession, Park, Region, User
from models.enums import Channel, UserRole

SESSION_LIFETIME = timedelta(hours=12)
THROTTLE_WINDOW = timedelta(minutes=15)
TOKEN_USE_GRANULARITY = timedelta(minutes=5)
THROTTLE_LIMIT = 5  # failed sign-ins per account from one client address within the window
# Failed sign-ins from one client address within the window, all accounts together: a guesser spraying names from
# one place is stopped, while a stranger elsewhere cannot lock an account out (they fill only their own count).
ADDRESS_LIMIT = 20
_THROTTLE_LOCK = 7263002  # PostgreSQL advisory lock class of the throttle (the audit log uses 7263001)
TOKEN_PREFIX = "cf_"
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so that timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def use_password_hasher(hasher: PasswordHasher) -> None:
    """Replace the argon2 parameters (the test suite uses cheap ones; production keeps the library defaults)."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    role: str,
    now: datetime,
    scope_adcode: str | None = None,
    park_id: int | None = None,
    enterprise_id: int | None = None,
    display_name: str = "",
    actor: Principal | None = None,
) -> User:
    """Create an account; the role decides which scope it must have."""
    username = username.strip().lower()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise InvalidInput("access.username_invalid", field="username", column=Term("field.username"))
    _check_password(password)
    try:
        user_role = UserRole(role)
    except ValueError:
        allowed = ", ".join(r.value for r in UserRole)
        raise InvalidInput(
            "access.role_unknown", field="role", column=Term("field.role"), role=role, allowed=allowed
        ) from None
    _check_scope(session, user_role, scope_adcode, park_id, enterprise_id)
    if session.exec(select(User.id).where(User.username == username)).first() is not None:
        raise Conflict("access.username_taken", field="username", column=Term("field.username"), username=username)
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=user_role,
        scope_adcode=scope_adcode if user_role is UserRole.bureau else None,
        scope_park_id=park_id if user_role is UserRole.park_manager else None,
        scope_enterprise_id=enterprise_id if user_role is UserRole.enterprise else None,
        created_at=now,
    )
    session.add(user)
    session.flush()
    _record(session, actor, "create", user, None, _account_view(user), now)
    return user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            "access.password_too_short", field="password", column=Term("field.password"), length=MIN_PASSWORD
        )


def _record(
    session: Session,
    actor: Principal | None,
    action: str,
    user: User,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
    table: str = "user_account",
    row_id: object = None,
) -> None:
    # Account changes are audited here, once, whichever door (web, API, CLI) they came through.
    record(
        session=session,
        principal=actor or system_principal(Channel.system),
        action=action,
        table=table,
        row_id=row_id if row_id is not None else user.id,
        before=before,
        after=after,
        now=now,
        enterprises=(user.scope_enterprise_id,) if user.scope_enterprise_id else (),
    )


def _account_view(user: User) -> dict[str, Any]:
    # Never the password hash.
    return {
        "username": user.username,
        "role": str(user.role),
        "scope_adcode": user.scope_adcode,
        "scope_park_id": user.scope_park_id,
        "scope_enterprise_id": user.scope_enterprise_id,
        "is_active": user.is_active,
    }


def _check_scope(
    session: Session, role: UserRole, adcode: str | None, park_id: int | None, enterprise_id: int | None
) -> None:
    if role is UserRole.bureau:
        if adcode is None or session.get(Region, adcode) is None:
            raise InvalidInput("access.bureau_needs_region", field="scope_adcode", column=Term("field.scope_adcode"))
    elif role is UserRole.park_manager:
        if park_id is None or session.get(Park, park_id) is None:
            raise InvalidInput("access.park_manager_needs_park", field="park_id", column=Term("field.park_id"))
    elif role is UserRole.enterprise:
        if enterprise_id is None or session.get(Enterprise, enterprise_id) is None:
            raise InvalidInput(
                "access.enterprise_account_needs_enterprise", field="enterprise_id", column=Term("field.enterprise_id")
            )


def get_user(*, session: Session, username: str) -> User:
    """A user by name."""
    user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFound("access.user_not_found", field="username", username=username)
    return user


def list_users(*, session: Session) -> list[User]:
    """Every account, by name."""
    return list(session.exec(select(User).order_by(col(User.username))).all())


def set_active(*, session: Session, user: User, active: bool, now: datetime, actor: Principal | None = None) -> User:
    """Enable or disable an account; disabling ends its sessions and tokens (never the last active administrator)."""
    if not active and user.is_active and user.role == UserRole.admin:
        _keep_an_administrator(session, user)
    before = _account_view(user)
    user.is_active = active
    session.add(user)
    if not active:
        for login in session.exec(select(LoginSession).where(LoginSession.user_id == user.id)).all():
            session.delete(login)
    session.flush()
    _record(session, actor, "enable" if active else "disable", user, before, _account_view(user), now)
    return user


def _keep_an_administrator(session: Session, user: User) -> None:
    # The active administrators are locked in id order (PostgreSQL), so that two administrators disabling each
    # other take turns and the second sees the first one's change; SQLite's writers take turns anyway.
    query = (
        select(User.id)
        .where(col(User.role) == UserRole.admin, col(User.is_active).is_(True))
        .order_by(col(User.id))
        .with_for_update()
    )
    if all(other == user.id for other in session.exec(query).all()):
        raise Conflict("access.last_administrator", field="username", username=user.username)


def set_password(*, session: Session, user: User, password: str, now: datetime, actor: Principal | None = None) -> User:
    """Replace a password; open sessions of the account end."""
    _check_password(password)
    user.password_hash = hash_password(password)
    session.add(user)
    for login in session.exec(select(LoginSession).where(LoginSession.user_id == user.id)).all():
        session.delete(login)
    session.flush()
    _record(session, actor, "set_password", user, None, None, now)
    return user


def authenticate(*, session: Session, username: str, password: str, client: str, now: datetime) -> User:
    """Check a password behind the throttle; commits the attempt's reservation before the (slow) check."""
    name = check_text(username, field="username", max_length=64).strip().lower()
    address = client[:64]
    if not _reserve_attempt(session, name, address, now):
        message = _throttled_message(session, name, address, now)
        session.commit()  # ends the transaction (and on PostgreSQL the throttle's lock) at once
        raise TooManyAttempts(message, field="username")
    user = session.exec(select(User).where(User.username == name)).first()
    # Read before the commit below: the loaded row expires with it, and reloading would open a new transaction.
    user_id = user.id if user else None
    active = user.is_active if user else False
    stored = user.password_hash if user else _DUMMY_HASH
    # The reservation is committed before argon2 runs: parallel attempts count it at once, and no lock is held
    # while the password is checked. A failure then needs no further write: the reservation is its record.
    session.commit()
    ok: bool
    try:
        ok = _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    user = session.get(User, user_id) if ok and user_id is not None else None
    if user is None or not active or not user.is_active:
        raise NotAuthenticated("access.sign_in_failed", field="password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    # A success releases its reservation and clears the count of this account at this address, so that a user who
    # mistyped is not locked out later; what others tried elsewhere stays counted where they tried it.
    session.execute(delete(LoginFailure).where(col(LoginFailure.username) == name, col(LoginFailure.client) == address))
    session.flush()
    return user


def _reserve_attempt(session: Session, name: str, address: str, now: datetime) -> bool:
    """Count this attempt as a failure in advance, unless a limit is reached; atomic against parallel attempts."""
    since = now - THROTTLE_WINDOW
    if session.get_bind().dialect.name == "postgresql":
        # Read committed lets two transactions count the same rows: attempts from one address take turns. Both
        # limits count rows of that address only, so one lock per address covers both.
        session.execute(
            text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:address))"),
            {"lock_class": _THROTTLE_LOCK, "address": address},
        )
    # One statement: on SQLite it takes the write lock before it counts, so no other attempt counts in between.
    recent = col(LoginFailure.at) >= since
    per_account = (
        select(func.count())
        .where(col(LoginFailure.username) == name, col(LoginFailure.client) == address, recent)
        .scalar_subquery()
    )
    per_address = select(func.count()).where(col(LoginFailure.client) == address, recent).scalar_subquery()
    reserve = insert(LoginFailure).from_select(
        ["username", "client", "at"],
        select(literal(name, String()), literal(address, String()), literal(now, DateTime(timezone=True))).where(
            per_account < THROTTLE_LIMIT, per_address < ADDRESS_LIMIT
        ),
    )
    # RETURNING rather than the row count, which psycopg does not report for this statement.
    return session.connection().execute(reserve.returning(col(LoginFailure.id))).first() is not None


def _throttled_message(session: Session, name: str, address: str, now: datetime) -> Message:
    minutes = int(THROTTLE_WINDOW.total_seconds() // 60)
    failures = session.exec(
        select(func.count()).where(
            col(LoginFailure.username) == name,
            col(LoginFailure.client) == address,
            col(LoginFailure.at) >= now - THROTTLE_WINDOW,
        )
    ).one()
    if failures >= THROTTLE_LIMIT:
        return msg("access.throttled_account", username=name, minutes=minutes)
    return msg("access.throttled_address", minutes=minutes)


def start_session(*, session: Session, user: User, now: datetime, client: str = "") -> tuple[str, str]:
    """Open a browser session; returns the cookie token and the CSRF token (only hashes are stored)."""
    assert user.id is not None
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        LoginSession(
            token_hash=_digest(raw), user_id=user.id, csrf_token=csrf, created_at=now, expires_at=now + SESSION_LIFETIME
        )
    )
    session.flush()
    _record(session, principal_of(user, Channel.web), "login", user, None, {"client": client}, now)
    return raw, csrf


def resolve_session(*, session: Session, raw: str, now: datetime) -> Principal | None:
    """The principal behind a session cookie, or None when it is unknown, expired or its user disabled."""
    login = session.get(LoginSession, _digest(raw))
    if login is None:
        return None
    user = session.get(User, login.user_id)
    if _aware(login.expires_at) <= now or user is None or not user.is_active:
        return None
    return principal_of(user, Channel.web, csrf_token=login.csrf_token)


def end_session(*, session: Session, raw: str, now: datetime) -> None:
    """Sign out: forget the session."""
    login = session.get(LoginSession, _digest(raw))
    if login is not None:
        user = session.get(User, login.user_id)
        session.delete(login)
        session.flush()
        if user is not None:
            _record(session, principal_of(user, Channel.web), "logout", user, None, None, now)


def create_token(
    *, session: Session, principal: Principal, name: str, now: datetime, actor: Principal | None = None
) -> tuple[ApiToken, str]:
    """Create an API token for the principal's own account; the raw token is returned once and never stored."""
    if principal.user_id is None:
        raise Forbidden("access.tokens_for_users")
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput("access.token_name_invalid", field="name", column=Term("field.name"))
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=principal.user_id, name=name, prefix=raw[:10], token_hash=_digest(raw), created_at=now)
    session.add(token)
    session.flush()
    owner = session.get(User, principal.user_id)
    if owner is not None:
        after = {"name": token.name, "prefix": token.prefix, "user_id": token.user_id}
        _record(session, actor or principal, "create", owner, None, after, now, table="api_token", row_id=token.id)
    return token, raw


def list_tokens(*, session: Session, principal: Principal) -> list[ApiToken]:
    """The principal's own tokens (hashes are never shown)."""
    query = select(ApiToken).where(ApiToken.user_id == principal.user_id).order_by(col(ApiToken.id))
    return list(session.exec(query).all())


def revoke_token(
    *, session: Session, principal: Principal, token_id: int, now: datetime, actor: Principal | None = None
) -> ApiToken:
    """Revoke one of the principal's own tokens (an administrator may revoke any)."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != principal.user_id and not principal.is_admin):
        raise NotFound("access.token_not_found", field="token_id", token_id=token_id)
    if token.revoked_at is None:
        token.revoked_at = now
        session.add(token)
        session.flush()
        owner = session.get(User, token.user_id)
        if owner is not None:
            after = {"revoked_at": now.isoformat()}
            _record(session, actor or principal, "revoke", owner, None, after, now, table="api_token", row_id=token.id)
    return token


def resolve_token(*, session: Session, raw: str, now: datetime) -> Principal | None:
    """The principal behind a bearer token, or None when it is unknown, revoked or its user disabled."""
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == _digest(raw))).first()
    if token is None or token.revoked_at is not None:
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.is_active:
        return None
    # Written at most every few minutes: a read request that writes on every call would queue behind writers.
    if token.last_used_at is None or _aware(token.last_used_at) < now - TOKEN_USE_GRANULARITY:
        token.last_used_at = now
        session.add(token)
    return principal_of(user, Channel.api)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
