"""GB 32100-2015 credit codes: check character, length and alphabet."""

from __future__ import annotations

import random

import pytest

from flows.kernel.uscc import ALPHABET, check_character, make_uscc, organisation_check, validate_uscc

# The example code printed in GB 32100-2015 guidance material.
VALID = ["91350100M000100Y43"]


@pytest.mark.parametrize("code", VALID)
def test_known_valid_codes(code: str) -> None:
    assert validate_uscc(code).ok


def test_lower_case_and_spaces_are_normalised() -> None:
    assert validate_uscc(" 91350100m000100y43 ").ok


def test_wrong_length_named() -> None:
    result = validate_uscc("91350100M000100Y4")
    assert not result.ok
    assert "wrong length" in result.reason and "17" in result.reason


def test_illegal_character_named_with_position() -> None:
    # I, O, S, V and Z are not in the alphabet.
    for bad in "IOSVZ":
        result = validate_uscc("91350100M000100Y4" + bad)
        assert not result.ok
        assert "illegal character" in result.reason and "position 18" in result.reason


def test_wrong_check_character_named_with_expected() -> None:
    result = validate_uscc("91350100M000100Y44")
    assert not result.ok
    assert "wrong check character" in result.reason and "'3'" in result.reason


def test_every_single_character_change_is_caught() -> None:
    code = VALID[0]
    for pos in range(17):
        for ch in ALPHABET:
            if ch == code[pos]:
                continue
            changed = code[:pos] + ch + code[pos + 1 :]
            assert not validate_uscc(changed).ok, changed


def test_make_uscc_round_trip() -> None:
    rng = random.Random(7)
    for _ in range(200):
        body = "".join(rng.choice(ALPHABET) for _ in range(16))
        code = make_uscc(body)
        assert code[:16] == body and code[17] == check_character(code[:17])
        assert validate_uscc(code).ok


def test_make_uscc_refuses_bad_body() -> None:
    with pytest.raises(ValueError):
        make_uscc("9135010OM000100Y")


def test_the_embedded_organisation_code_is_checked() -> None:
    # A code whose own check character is right but whose organisation code (GB 11714) is wrong.
    first17 = "91350100M000100Y5"
    code = first17 + check_character(first17)
    result = validate_uscc(code)
    assert not result.ok and result.problem is not None
    assert result.problem.code == "kernel.uscc_wrong_organisation_check"
    assert "M000100Y5" in result.reason and "'4'" in result.reason


def test_organisation_check_characters_of_published_codes() -> None:
    # GB 11714's mod-11 check: 10 is written X and 11 is written 0.
    assert organisation_check("M000100Y") == "4"
    assert {organisation_check(f"{n:08d}") for n in range(20_000_000, 20_000_400)} >= {"X", "0"}
