"""Translations (zh-CN, en) kept as data in app/locales, and the choice of language for a request."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request

from app.deps import SettingsDep
from flows.kernel import messages
from flows.kernel.errors import DomainError

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
LANGUAGE_NAMES: dict[str, str] = {"zh-CN": "中文", "en": "English"}
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

# Accept-Language may name any variant (zh-Hans-CN, zh-TW, en-GB); we have one Chinese and one English catalogue.
_PRIMARY = {"zh": "zh-CN", "en": "en"}

log = logging.getLogger(__name__)


def catalogue_files(lang: str) -> list[Path]:
    """The files holding one language's messages: app/locales/<lang>.json and one per page area in a subfolder."""
    return [LOCALES_DIR / f"{lang}.json", *sorted(LOCALES_DIR.glob(f"*/{lang}.json"))]


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The messages of one language, read once from its catalogue files."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    # The domain's messages (errors, findings, export headers) share the key space with the pages' words.
    return messages.load_catalogues(catalogue_files(lang), into=messages.catalogue(lang))


def translate(lang: str, key: str, **params: Any) -> str:
    """The message `key` in `lang`, with {placeholders} filled from params."""
    text = catalogue(lang).get(key)
    if text is None:
        # A missing message must not break a page; show the other language, else the key, and say so in the log.
        log.warning("no %s translation for %r", lang, key)
        text = next((catalogue(other)[key] for other in LANGUAGES if key in catalogue(other)), key)
    return text.format(**params) if params else text


def say(lang: str, what: DomainError | messages.Message | str) -> str:
    """A domain error or message in `lang` (a plain string is shown as it is)."""
    if isinstance(what, (DomainError, messages.Message)):
        return what.render(lang)
    return what


def field_label(lang: str, name: str | None) -> str:
    """A field's name as the reader knows it (the name itself when the catalogue has no label)."""
    if not name:
        return ""
    return catalogue(lang).get(f"field.{name}", name)


def match_language(tag: str) -> str | None:
    """The supported language a BCP 47 tag asks for, or None."""
    tag = tag.strip()
    for lang in LANGUAGES:
        if tag.lower() == lang.lower():
            return lang
    return _PRIMARY.get(tag.split("-")[0].lower())


def parse_accept_language(header: str) -> list[str]:
    """Supported languages named by an Accept-Language header, best first (q=0 means 'not this')."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, rest = part.partition(";")
        quality = 1.0
        for param in rest.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        lang = match_language(tag)
        if lang is not None and quality > 0:
            weighted.append((-quality, index, lang))
    ordered: list[str] = []
    for _, _, lang in sorted(weighted):
        if lang not in ordered:
            ordered.append(lang)
    return ordered


def choose_language(cookie: str | None, accept_language: str | None, default: str) -> str:
    """The cookie's language if valid, else the best of Accept-Language, else the default."""
    if cookie in LANGUAGES:
        return cookie
    if accept_language:
        preferred = parse_accept_language(accept_language)
        if preferred:
            return preferred[0]
    return default


def request_language(request: Request, settings: SettingsDep) -> str:
    """The language of this request (dependency)."""
    return choose_language(
        request.cookies.get(COOKIE), request.headers.get("accept-language"), settings.default_language
    )


LanguageDep = Annotated[str, Depends(request_language)]


def safe_next(target: str | None, fallback: str = "/") -> str:
    """`target` if it is a path on this site, else `fallback`: never redirect a user off-site."""
    if not target or len(target) > 2048:
        return fallback
    # Browsers read '//host' and '/\\host' as other hosts, and strip tabs and newlines before parsing.
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    return target


def local_name(lang: str, name_zh: str, name_en: str | None) -> str:
    """A place's name in the reader's language (the Chinese name when no English one is known)."""
    return name_en if lang == "en" and name_en else name_zh
