"""Unified Social Credit Code (GB 32100-2015): validation and check-character computation.

Characters 9 to 17 of a credit code are the organisation's code (GB 11714-1997): eight characters and a mod-11
check character of their own, which is checked too, so that a typo caught by neither check is rarer still.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.kernel.messages import Message, msg

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, S, V, Z
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 3^(i-1) mod 31 for positions 1..17
VALUES = {ch: i for i, ch in enumerate(ALPHABET)}
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714-1997, positions 1..8 of the organisation code


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


def organisation_check(body8: str) -> str:
    """The 9th character of an organisation code (GB 11714): digits count as themselves, A-Z as 10-35."""
    total = sum(
        (int(ch) if ch.isdigit() else ord(ch) - ord("A") + 10) * w for ch, w in zip(body8, ORG_WEIGHTS, strict=True)
    )
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


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
    org_expected = organisation_check(code[8:16])
    if code[16] != org_expected:
        problem = msg(
            "kernel.uscc_wrong_organisation_check", organisation=code[8:17], found=code[16], expected=org_expected
        )
        return UsccCheck(code, False, problem)
    return UsccCheck(code, True)


def make_uscc(body: str) -> str:
    """Complete a 16-character body: the organisation code's check character, then the code's own."""
    body = body.upper()
    if len(body) != 16 or any(ch not in VALUES for ch in body):
        raise ValueError(f"a USCC body is 16 characters of {ALPHABET}")
    first17 = body + organisation_check(body[8:16])
    return first17 + check_character(first17)
