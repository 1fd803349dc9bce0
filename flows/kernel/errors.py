"""Domain errors; app/ maps each class to an HTTP status in one table."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises for a user to read."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.row = row


class InvalidInput(DomainError):
    """Malformed input: wrong type, unknown code, bad format."""


class NotFound(DomainError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class OutsideRegions(DomainError):
    """A point that lies in no loaded region."""


class Conflict(DomainError):
    """A write that collides with what is already stored."""


class NotAuthenticated(DomainError):
    """No valid session or token."""


class Forbidden(DomainError):
    """Authenticated, but the role or scope does not allow this."""


class TooManyAttempts(DomainError):
    """Sign-in throttled after repeated failures."""


class PeriodLocked(DomainError):
    """A write to a reporting year that a bureau has locked for the region."""
