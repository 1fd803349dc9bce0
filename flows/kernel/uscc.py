"""Unified Social Credit Code (GB 32100-2015): validation and check-character computation."""

from __future__ import annotations

from dataclasses import dataclass

from flows.kernel.messages import Message, msg

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, S, V, Z
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 3^(i-1) mod 31 for positions 1..17
VALUES = {ch: i for i, ch in enumerate(ALPHABET)}


@dataclass(frozen=True)
class UsccCheck:
    """The outcome of validating one code: ok, or the reason it is not."""

    code: str
    ok: bool
    problem: Message | None = None

    @property
    def reason(self) -> str:
        """Why the code is not valid, in English (empty when it is)."""
        return self.problem.render("en") if self.problem is not None else ""


def check_character(first17: str) -> str:
    """The 18th character that makes the first 17 a valid code."""
    total = sum(VALUES[ch] * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate_uscc(raw: str) -> UsccCheck:
    """Check length, character set and check character, naming the first fault found."""
    code = raw.strip().upper()
    if len(code) != 18:
        return UsccCheck(code, False, msg("kernel.uscc_wrong_length", length=len(code)))
    for pos, ch in enumerate(code, start=1):
        if ch not in VALUES:
            problem = msg("kernel.uscc_illegal_character", character=ch, position=pos, alphabet=ALPHABET)
            return UsccCheck(code, False, problem)
    expected = check_character(code[:17])
    if code[17] != expected:
        return UsccCheck(code, False, msg("kernel.uscc_wrong_check_character", found=code[17], expected=expected))
    return UsccCheck(code, True)


def make_uscc(body: str) -> str:
    """Complete a 17-character body with its check character."""
    body = body.upper()
    if len(body) != 17 or any(ch not in VALUES for ch in body):
        raise ValueError(f"a USCC body is 17 characters of {ALPHABET}")
    return body + check_character(body)
