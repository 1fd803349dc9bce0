"""Messages as data: a code and its parameters, rendered in the reader's language from the rooms' catalogues."""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from flows.kernel.numbers import TonnesParam

LANGUAGES: tuple[str, ...] = ("zh-CN", "en")

_ROOT = Path(__file__).resolve().parents[2]


def catalogue_files(lang: str) -> list[Path]:
    """The domain's catalogue files of one language: `messages/[<part>/]<lang>.json` in each room and in maps/."""
    patterns = ("flows/*/messages", "flows/*/messages/*", "maps/messages", "maps/messages/*")
    return sorted(path for pattern in patterns for path in _ROOT.glob(f"{pattern}/{lang}.json"))


def load_catalogues(paths: Iterable[Path], into: Mapping[str, str] | None = None) -> dict[str, str]:
    """Flat JSON catalogues merged into one; a key defined twice is an error, as one of them would silently lose."""
    data: dict[str, str] = dict(into or {})
    for path in paths:
        part: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        if clash := data.keys() & part.keys():
            raise ValueError(f"{path}: keys already defined elsewhere: {', '.join(sorted(clash))}")
        data.update(part)
    return data


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The domain messages of one language, read once."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    return load_catalogues(catalogue_files(lang))


class Term(str):
    """A parameter that is itself a catalogue code (a role, a route, a field), rendered in the reader's language."""

    __slots__ = ()


@dataclass(frozen=True)
class Named:
    """A parameter that is a name (an enterprise's), shown in English where it has one and the reader reads English."""

    zh: str
    en: str | None = None

    def __str__(self) -> str:
        return self.zh


@dataclass(frozen=True)
class Message:
    """A code and its parameters; the words come from the catalogue of whoever reads it."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def render(self, lang: str = "en") -> str:
        """The message in `lang`."""
        return render(lang, self.code, self.params)

    def __str__(self) -> str:
        return self.render("en")


def msg(code: str, **params: Any) -> Message:
    """A message with its parameters."""
    return Message(code, params)


def placeholders(template: str) -> set[str]:
    """The parameter names a template uses."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def _value(lang: str, value: Any) -> Any:
    if isinstance(value, Named):
        return value.en if lang == "en" and value.en else value.zh
    if isinstance(value, Message):
        return value.render(lang)
    if isinstance(value, Term):
        return catalogue(lang).get(str(value), str(value).rsplit(".", 1)[-1])
    if isinstance(value, (list, tuple)) and any(isinstance(item, (Message, Term)) for item in value):
        sep = "、" if lang == "zh-CN" else ", "
        return sep.join(str(_value(lang, item)) for item in value)
    return value


def render(lang: str, code: str, params: Mapping[str, Any]) -> str:
    """The template of `code` in `lang` filled with params (nested messages and terms rendered in `lang` too)."""
    template = catalogue(lang).get(code)
    if template is None:
        template = next((catalogue(other)[code] for other in LANGUAGES if code in catalogue(other)), None)
    if template is None:
        # An unknown code must not hide what went wrong: show it with its parameters.
        shown = ", ".join(f"{name}={_value(lang, value)}" for name, value in params.items())
        return f"{code}({shown})" if shown else code
    return template.format(**{name: _figure(lang, name, _value(lang, value)) for name, value in params.items()})


def _figure(lang: str, name: str, value: Any) -> Any:
    # Parameters in tonnes are named *_t; `{name_t:t}` writes them with their unit, as every page does. Evidence
    # read back from JSON may carry them as decimal text.
    if not name.endswith("_t") or isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value = Decimal(value)
        except InvalidOperation:
            return value
    return TonnesParam(value, lang) if isinstance(value, int | float | Decimal) else value


def plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as JSON can carry them: messages and terms as their codes."""
    return {name: _plain(value) for name, value in params.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return {"code": value.code, "params": plain(value.params)}
    if isinstance(value, Term):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def codes(lang: str) -> Iterator[str]:
    """Every code the catalogues of `lang` define."""
    yield from catalogue(lang)
