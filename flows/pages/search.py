"""The header's search: a batch number, a credit code, an enterprise name or a battery code, within the reader's scope.

An exact batch number, credit code or battery code is a destination (`go`); anything else is a short list of matches.
Every lookup is an index range or an exact match, bounded by HIT_LIMIT, and reads only what the reader may read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.scope import readable_batches, readable_enterprises
from flows.battery.code import normalise_battery_code
from flows.kernel.bounds import check_text
from flows.kernel.principal import Principal
from flows.pages.batteries import codes_starting
from models import Enterprise, Manifest

HIT_LIMIT = 5  # matches per kind
MAX_QUERY = 100
NUMBER_TEXT = re.compile(r"SC[0-9-]*")


@dataclass(frozen=True)
class Hit:
    """One match: what it is (batch, enterprise, battery), its key, its names and the page it opens."""

    kind: str
    key: str
    name_zh: str
    name_en: str | None
    href: str
    exact: bool = False


@dataclass(frozen=True)
class SearchResult:
    """The matches of a query and, when one of them is exact (or the only one), where to go straight away."""

    q: str
    hits: list[Hit] = field(default_factory=list)

    @property
    def go(self) -> str | None:
        """The page to open directly: the one exact match, or the only match."""
        exact = [h for h in self.hits if h.exact]
        if len(exact) == 1:
            return exact[0].href
        return self.hits[0].href if len(self.hits) == 1 else None


def _batches(session: Session, principal: Principal, text: str) -> list[Hit]:
    number = text.upper()
    # Numbers are SC<year>-<7 digits>: text of other characters names no batch and costs no query.
    if not NUMBER_TEXT.fullmatch(number):
        return []
    rows = session.execute(
        sa_select(col(Manifest.id), col(Manifest.number), col(Manifest.status))
        .where(col(Manifest.number).startswith(number, autoescape=True), readable_batches(principal))
        .order_by(col(Manifest.number))
        .limit(HIT_LIMIT)
    ).all()
    return [Hit("batch", r.number, r.number, None, f"/batches/{r.id}", exact=r.number == number) for r in rows]


def _enterprises(session: Session, principal: Principal, text: str) -> list[Hit]:
    code = text.upper()
    readable = readable_enterprises(principal)
    exact = session.execute(
        sa_select(col(Enterprise.id), col(Enterprise.uscc), col(Enterprise.name_zh), col(Enterprise.name_en)).where(
            col(Enterprise.uscc) == code, readable
        )
    ).all()
    if exact:
        r = exact[0]
        return [Hit("enterprise", r.uscc, r.name_zh, r.name_en, f"/enterprises/{r.id}", exact=True)]
    # The user's text is matched as written: % and _ are characters, not wildcards.
    rows = session.execute(
        sa_select(col(Enterprise.id), col(Enterprise.uscc), col(Enterprise.name_zh), col(Enterprise.name_en))
        .where(
            readable,
            col(Enterprise.name_zh).contains(text, autoescape=True)
            | col(Enterprise.name_en).icontains(text, autoescape=True)
            | col(Enterprise.uscc).startswith(code, autoescape=True),
        )
        .order_by(col(Enterprise.name_zh), col(Enterprise.id))
        .limit(HIT_LIMIT)
    ).all()
    return [Hit("enterprise", r.uscc, r.name_zh, r.name_en, f"/enterprises/{r.id}") for r in rows]


def _batteries(session: Session, principal: Principal, text: str) -> list[Hit]:
    wanted = normalise_battery_code(text)
    matches = codes_starting(session=session, principal=principal, prefix=wanted, limit=HIT_LIMIT)
    return [Hit("battery", m.code, m.code, None, f"/batteries/{m.code}", exact=m.code == wanted) for m in matches]


def search(*, session: Session, principal: Principal, q: str) -> SearchResult:
    """What the reader may open that a query names: batches, enterprises and batteries, a few of each."""
    # A NUL or a lone surrogate reaches no database: refused, naming the field, as every text input is.
    text = check_text(q.strip(), field="q", max_length=MAX_QUERY)
    if not text:
        return SearchResult(q="")
    hits = [
        *_batches(session, principal, text),
        *_enterprises(session, principal, text),
        *_batteries(session, principal, text),
    ]
    return SearchResult(q=text, hits=hits)
