"""Domain errors as data (a code, its parameters, the field and the row); app/ maps each class to an HTTP status."""

from __future__ import annotations

from typing import Any

from flows.kernel.messages import Message, render


class DomainError(Exception):
    """Base of every error the domain raises for a user to read: rendered in the reader's language at the edge."""

    def __init__(
        self, code: str | Message, /, *, field: str | None = None, row: int | None = None, **params: Any
    ) -> None:
        if isinstance(code, Message):
            params = {**code.params, **params}
            code = code.code
        super().__init__(code)
        self.code = code
        self.params: dict[str, Any] = params
        self.field = field
        self.row = row

    def render(self, lang: str = "en") -> str:
        """The message in `lang`."""
        return render(lang, self.code, self.params)

    @property
    def message(self) -> str:
        """The message in English (logs, the command line)."""
        return self.render("en")

    def __str__(self) -> str:
        return self.message


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
