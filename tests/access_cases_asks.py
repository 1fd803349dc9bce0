"""Access-matrix cases of correction asks (app/api_asks.py and app/web_asks.py).

A bureau over the enterprise that owns the fields asks (E1, in Panzhihua, ships the world's batches); only that
enterprise answers; the bureaus over it decide and withdraw; whoever reads E1 reads its asks.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from flows.kernel.clock import CST
from flows.waste import correction_asks
from tests.access_cases import BUREAUS, GOVERNS_PZH, SEES_E1, SIGNED_IN, Case
from tests.world import NOW, World

ENT1 = frozenset({"ent1"})


def _body(w: World) -> dict[str, Any]:
    return {
        "table": "transfer_batch",
        "row_id": w.batch_received,
        "fields": ["weight_dispatched_t"],
        "reason": "the weighbridge ticket says otherwise",
        "due_on": (datetime.now(UTC).astimezone(CST).date() + timedelta(days=7)).isoformat(),
    }


def seed_open(session: Session, w: World) -> dict[str, str]:
    """An open ask to E1 about the received batch's dispatched weight."""
    ask = correction_asks.ask_correction(
        session=session,
        principal=w.principals["bureau_pzh"],
        table="transfer_batch",
        row_id=w.batch_received,
        fields=["weight_dispatched_t"],
        reason="ticket",
        due_on=date(2025, 3, 15),
        now=NOW,
    )
    session.commit()
    return {"ask": str(ask.id)}


def seed_contested(session: Session, w: World) -> dict[str, str]:
    """The open ask, contested by E1: it awaits the bureau's decision."""
    refs = seed_open(session, w)
    correction_asks.answer_ask(
        session=session,
        principal=w.principals["ent1"],
        ask_id=int(refs["ask"]),
        contest=True,
        values={},
        reason="the ticket is right",
        now=NOW,
    )
    session.commit()
    return refs


_OPEN = {"seed": seed_open}
_FORM_OPEN = {"seed": seed_open, "form": True}
_CONTESTED = {"seed": seed_contested}
_FORM_CONTESTED = {"seed": seed_contested, "form": True}

ASKS_CASES: list[Case] = [
    Case("POST", "/api/v1/correction-asks", GOVERNS_PZH, lambda w: "/api/v1/correction-asks", _body, writes=True),
    Case("GET", "/api/v1/correction-asks", SIGNED_IN, lambda w: "/api/v1/correction-asks?state=open&overdue=true"),
    Case("GET", "/api/v1/correction-asks/{ask_id}", SEES_E1, lambda w: "/api/v1/correction-asks/{ask}", extra=_OPEN),
    Case(
        "POST",
        "/api/v1/correction-asks/{ask_id}/answer",
        ENT1,
        lambda w: "/api/v1/correction-asks/{ask}/answer",
        lambda w: {"action": "contest", "reason": "the ticket is right"},
        writes=True,
        extra=_OPEN,
    ),
    Case(
        "POST",
        "/api/v1/correction-asks/{ask_id}/decide",
        GOVERNS_PZH,
        lambda w: "/api/v1/correction-asks/{ask}/decide",
        lambda w: {"accept": True, "note": "agreed"},
        writes=True,
        extra=_CONTESTED,
    ),
    Case(
        "POST",
        "/api/v1/correction-asks/{ask_id}/withdraw",
        GOVERNS_PZH,
        lambda w: "/api/v1/correction-asks/{ask}/withdraw",
        lambda w: {"note": "not needed"},
        writes=True,
        extra=_OPEN,
    ),
    Case("GET", "/audit/asks", BUREAUS, lambda w: "/audit/asks?tab=overdue"),
    Case("GET", "/asks", SIGNED_IN, lambda w: "/asks?tab=closed"),
    Case("GET", "/asks/new", GOVERNS_PZH, lambda w: f"/asks/new?table=transfer_batch&row_id={w.batch_received}"),
    Case(
        "POST",
        "/asks",
        GOVERNS_PZH,
        lambda w: "/asks",
        lambda w: {**_body(w), "fields": "weight_dispatched_t"},
        writes=True,
        extra={"form": True},
    ),
    Case("GET", "/asks/{ask_id}", SEES_E1, lambda w: "/asks/{ask}", extra=_OPEN),
    Case(
        "POST",
        "/asks/{ask_id}/answer",
        ENT1,
        lambda w: "/asks/{ask}/answer",
        lambda w: {"action": "contest", "reason": "the ticket is right"},
        writes=True,
        extra=_FORM_OPEN,
    ),
    Case(
        "POST",
        "/asks/{ask_id}/decide",
        GOVERNS_PZH,
        lambda w: "/asks/{ask}/decide",
        lambda w: {"accept": "false", "note": "the ticket is wrong"},
        writes=True,
        extra=_FORM_CONTESTED,
    ),
    Case(
        "POST",
        "/asks/{ask_id}/withdraw",
        GOVERNS_PZH,
        lambda w: "/asks/{ask}/withdraw",
        lambda w: {"note": ""},
        writes=True,
        extra=_FORM_OPEN,
    ),
]
