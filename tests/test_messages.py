"""Errors and findings are data: every code raised has a message in zh-CN and English with the same parameters."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from flows.kernel.errors import Forbidden, InvalidInput
from flows.kernel.messages import LANGUAGES, Term, catalogue, msg, placeholders, plain

ROOT = Path(__file__).resolve().parents[1]
ERRORS = {
    "DomainError",
    "InvalidInput",
    "NotFound",
    "OutsideRegions",
    "Conflict",
    "NotAuthenticated",
    "Forbidden",
    "TooManyAttempts",
    "PeriodLocked",
}
# What builds a message from a code: the errors, msg() and Message().
MAKERS = ERRORS | {"msg", "Message"}
CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _calls() -> list[tuple[str, int, ast.Call]]:
    found = []
    for package in ("app", "flows", "maps", "models"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _name(node.func) in MAKERS and node.args:
                    found.append((str(path.relative_to(ROOT)), node.lineno, node))
    return found


def _is_sentence(node: ast.expr) -> bool:
    if isinstance(node, (ast.JoinedStr, ast.BinOp)):
        return True
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value


def test_every_error_is_raised_with_a_code_not_a_sentence() -> None:
    sentences = [f"{path}:{line}" for path, line, call in _calls() if _is_sentence(call.args[0])]
    assert sentences == []


def test_every_code_raised_is_in_both_catalogues_with_its_parameters() -> None:
    problems = []
    for path, line, call in _calls():
        first = call.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        code = first.value
        if not CODE.match(code):
            problems.append(f"{path}:{line}: {code!r} is not a code")
            continue
        given = {kw.arg for kw in call.keywords if kw.arg is not None} - {"field", "row"}
        spread = any(kw.arg is None for kw in call.keywords)
        for lang in LANGUAGES:
            template = catalogue(lang).get(code)
            if template is None:
                problems.append(f"{path}:{line}: {code} has no {lang} message")
            elif not spread and not placeholders(template) <= given:
                problems.append(f"{path}:{line}: {code} in {lang} needs {sorted(placeholders(template) - given)}")
    assert problems == []


def test_both_catalogues_hold_the_same_codes_with_the_same_parameters() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert sorted(zh.keys() ^ en.keys()) == []
    assert {code: placeholders(zh[code]) for code in zh} == {code: placeholders(en[code]) for code in zh}


def test_a_chinese_message_has_no_english_sentence() -> None:
    # Codes, units and names in placeholders aside, a zh-CN message is written in Chinese.
    english = {
        code: text
        for code, text in catalogue("zh-CN").items()
        if re.search(r"[A-Za-z]{3,}\s+[A-Za-z]{3,}\s+[A-Za-z]{3,}", re.sub(r"\{[^}]*\}", "", text))
    }
    assert english == {}


def test_an_error_renders_in_each_language_and_as_data() -> None:
    code = next(iter(catalogue("en")))
    template = catalogue("en")[code]
    params = dict.fromkeys(placeholders(template), 7)
    error = InvalidInput(code, field="weight_t", row=3, **params)
    assert error.code == code and error.field == "weight_t" and error.row == 3
    assert str(error) == error.render("en") != error.render("zh-CN")


def test_terms_and_nested_messages_render_in_the_readers_language() -> None:
    role = next(code for code in catalogue("en") if code.startswith("role."))
    error = Forbidden(msg("kernel.unknown_probe", role=Term(role)))
    assert catalogue("zh-CN")[role] in msg("kernel.wrapper_probe", inner=error.params["role"]).render("zh-CN")
    assert plain({"inner": msg("x.y", role=Term(role))}) == {"inner": {"code": "x.y", "params": {"role": role}}}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_an_unknown_code_shows_itself_and_its_parameters(lang: str) -> None:
    assert msg("nowhere.to_be_found", n=3).render(lang) == "nowhere.to_be_found(n=3)"
