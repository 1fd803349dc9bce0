"""The battery trace pages: search by code (its fields read as it is typed), and one battery's life: the timeline
of events, the custody path drawn on the map, its genealogy and the flags of its chain."""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from app import downloads
from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.i18n import LanguageDep, local_name, say, translate
from app.params import CodePath
from app.web import beijing, is_fragment_request, pct, render
from flows.battery import chain as battery
from flows.battery.audit import BatteryFlag, chain_flags
from flows.battery.chain import BatteryTrace, Party, TraceEvent
from flows.kernel.clock import CST, stored_utc
from flows.kernel.errors import NotFound
from flows.kernel.messages import Message
from flows.kernel.principal import Principal
from flows.pages import batteries as battery_pages
from flows.pages import exports
from flows.pages.batteries import CodeAnalysis, CodeError, EnterprisePlace, Stop
from models.quantity import json_default

router = APIRouter(include_in_schema=False)

RISK_ROWS = 12  # flags listed on the search page; the counts cover them all
RECENT_ROWS = 8
BOUNDARIES = "/api/v1/regions/geojson?level=prefecture"

# Colour-blind-safe (Tableau 10 colour-blind): the path in blue, stops in blue, the current custodian in dark orange
# and larger, with a thicker ring; the numbers and the list beside the map carry the meaning, not the colour.
PATH_STYLE = {"color": "#006BA4", "weight": 3, "opacity": 0.9, "dashArray": "8 6", "className": "custody-line"}
STOP_STYLE = {
    "radius": 11,
    "color": "#12304D",
    "weight": 2,
    "fillColor": "#006BA4",
    "fillOpacity": 1,
    "className": "custody-stop",
}
CURRENT_STYLE = {**STOP_STYLE, "radius": 13, "weight": 4, "fillColor": "#C85200"}

# Event attributes shown on the timeline, in this order, with how to show them.
KG_ATTRIBUTES = ("mass_kg", "input_mass_kg", "electrode_powder_kg")
TEXT_ATTRIBUTES = ("application", "vehicle_type", "place", "reason", "note")
HIDDEN_ATTRIBUTES = frozenset(
    {"via", "original_code"}
    | {f"{m}_{end}_kg" for m in ("lithium", "nickel", "cobalt", "manganese") for end in ("in", "out")}
)


# ---------------------------------------------------------------------------------------------------------------
# Small formatters


def _day(value: str | date | datetime | None) -> str:
    """A day as Beijing sees it: evidence carries days ("2024-03-12") and UTC moments ("2024-01-08T23:00:00+00:00")."""
    if value is None:
        return "–"
    moment: date | datetime
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    if isinstance(moment, datetime):
        return stored_utc(moment).astimezone(CST).date().isoformat()
    return moment.isoformat()


def _num(value: Any) -> str:
    number = float(value)
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.2f}".rstrip("0").rstrip(".")


def _party(party: Party | None, lang: str, places: dict[int, EnterprisePlace]) -> dict[str, Any] | None:
    """An enterprise as the pages show it: name, credit code, and a link when the reader may open its page."""
    if party is None:
        return None
    place = places.get(party.id)
    return {
        "id": party.id,
        "name": local_name(lang, party.name_zh, party.name_en),
        "uscc": party.uscc,
        "href": f"/enterprises/{party.id}" if place and place.readable else None,
    }


# ---------------------------------------------------------------------------------------------------------------
# The code, read as typed


def _error_text(lang: str, error: CodeError) -> str:
    # The parser's own refusal comes as a message: it is read in the page's language too.
    params = {"position": error.position, "char": error.char, **error.params}
    shown = {name: value.render(lang) if isinstance(value, Message) else value for name, value in params.items()}
    return translate(lang, f"trace.err.{error.kind}", **shown)


def _analysis(lang: str, analysis: CodeAnalysis) -> dict[str, Any]:
    """The code's fields with their labels, meanings and errors, in the reader's language."""
    fields = []
    for f in analysis.fields:
        meaning = None
        if f.meaning is not None and f.error is None:
            if f.name == "product_type":
                meaning = translate(lang, f"trace.level.{f.meaning}")
            elif f.name == "battery_type":
                meaning = translate(lang, f"trace.chem.{f.meaning}")
            elif f.name == "production_year":
                meaning = translate(lang, "trace.meaning.year", year=f.meaning)
            elif f.name == "production_month":
                meaning = translate(lang, f"trace.month.{f.meaning}")
            elif f.name == "production_day":
                meaning = translate(lang, "trace.meaning.day", day=f.meaning)
        fields.append(
            {
                "name": f.name,
                "label": translate(lang, f"trace.field.{f.name}"),
                "positions": f"{f.start}" if f.length == 1 else f"{f.start}–{f.end}",
                "value": f.value,
                "cells": f.cells,
                "typed": bool(f.value),
                "complete": f.complete,
                "meaning": meaning,
                "practice": not f.certain,
                "error": _error_text(lang, f.error) if f.error else None,
            }
        )
    decoded = analysis.decoded
    errors = [_error_text(lang, e) for e in analysis.errors]
    summary = (
        translate(
            lang,
            "trace.parse.valid",
            level=translate(lang, f"trace.level.{decoded.level.value}"),
            chemistry=translate(lang, f"trace.chem.{decoded.chemistry}"),
            date=decoded.production_date.isoformat(),
        )
        if decoded
        else None
    )
    if analysis.empty:
        status = ""
    elif errors:
        status = f"{translate(lang, 'trace.parse.invalid')} {' '.join(errors)}"
    else:
        status = summary or translate(lang, "trace.parse.typing", length=analysis.length, missing=analysis.missing)
    return {
        "raw": analysis.raw,
        "code": analysis.code,
        "length": analysis.length,
        "missing": analysis.missing,
        "empty": analysis.empty,
        "valid": analysis.valid,
        "fields": fields,
        "errors": errors,
        "summary": summary,
        "status": status,  # one sentence for screen readers, announced as the reading changes
    }


def _search_context(
    request: Request, session: Any, principal: Principal, lang: str, code: str, year: int | None
) -> dict[str, Any]:
    """The search page: the code's reading, matches in scope, and (for a whole page) the chains at risk and the
    batteries reported lately."""
    analysis = battery_pages.analyse_code(code)
    # A complete code matches itself: the reader learns at once whether the battery is in their scope.
    matches = battery_pages.codes_starting(session=session, principal=principal, prefix=analysis.code)
    fragment = is_fragment_request(request)
    context: dict[str, Any] = {"a": _analysis(lang, analysis), "matches": matches, "code": code, "fragment": fragment}
    context["can_register"] = battery_pages.may_register(session=session, principal=principal)
    context["can_log"] = battery_pages.may_log(principal)
    if fragment:
        return context
    now = utcnow()
    report = chain_flags(session=session, principal=principal, now=now, year=year, limit=RISK_ROWS)
    recent = battery_pages.recent_batteries(session=session, principal=principal, limit=RECENT_ROWS)
    holders = battery.Names(
        session, [r.holder_id for r in recent] + [f.enterprise.id for f in report.data if f.enterprise]
    )
    places = battery_pages.enterprise_places(session=session, principal=principal, ids=list(holders.parties))
    context.update(
        {
            "year": year,
            "years": battery_pages.battery_years(session=session, now=now),
            "risk": report,
            "risk_rows": [_flag_row(f, lang, places, []) for f in report.data],
            "recent": [
                {
                    "code": r.code,
                    "level": r.level,
                    "state": r.state,
                    "event": r.event,
                    "reported": beijing(r.reported_at),
                    "reported_iso": r.reported_at.isoformat(),
                    "holder": _party(holders.party(r.holder_id), lang, places),
                }
                for r in recent
            ],
        }
    )
    return context


@router.get("/batteries", name="batteries")
def batteries_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    code: Annotated[str | None, Query(max_length=64)] = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> Response:
    """Search by code; before a search, the chains at risk and the batteries reported lately in the reader's scope."""
    if code is not None and code.strip():
        analysis = battery_pages.analyse_code(code, final=True)
        if analysis.valid:
            return RedirectResponse(request.app.url_path_for("battery", code=analysis.code), status_code=303)
        context = _search_context(request, session, principal, lang, code, year)
        context["a"] = _analysis(lang, analysis)
        context["submitted"] = True
        return render(request, "batteries.html", context, lang=lang, status_code=422)
    if fmt := downloads.wanted(request):
        recent = battery_pages.recent_batteries(
            session=session, principal=principal, limit=exports.RECENT_BATTERY_CAP + 1
        )
        holders = battery.Names(session, [r.holder_id for r in recent])
        return downloads.response(exports.recent_batteries_table(recent, holders.parties, lang), lang, fmt)
    context = _search_context(request, session, principal, lang, "", year)
    context["downloads"] = downloads.links(request, cap=exports.RECENT_BATTERY_CAP)
    return render(request, "batteries.html", context, lang=lang)


@router.get("/batteries/parse", name="battery_parse")
def parse_code(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    code: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The code's fields as typed so far, or the field that is wrong and why (the block under the search field)."""
    context = _search_context(request, session, principal, lang, code, None)
    return render(request, "batteries.html", context, lang=lang, block="parsed")


# ---------------------------------------------------------------------------------------------------------------
# One battery


def _flag_explanation(flag: BatteryFlag, lang: str, places: dict[int, EnterprisePlace]) -> str:
    """Why the audit flags this, in the reader's language, from the flag's evidence."""
    ev = flag.evidence
    t = partial(translate, lang)
    event = t(f"trace.event.{ev['event']}") if ev.get("event") else ""
    match flag.kind.value:
        case "lost":
            if ev.get("collected_at"):
                return t(
                    "trace.fx.lost_late",
                    retired=_day(ev["retired_at"]),
                    due=_day(ev["due"]),
                    days=ev["working_days"],
                    collected=_day(ev["collected_at"]),
                )
            return t("trace.fx.lost", retired=_day(ev["retired_at"]), due=_day(ev["due"]), days=ev["working_days"])
        case "unlisted_receiver":
            receiver = _party(flag.counterpart, lang, places)
            needed = ev.get("needed", "")
            return t(
                "trace.fx.unlisted_receiver",
                event=event,
                on=_day(flag.on),
                receiver=receiver["name"] if receiver else "–",
                needed=t(f"trace.needed.{needed}") if needed in ("cascade_use", "recycling") else t("trace.needed.any"),
            )
        case "late_report":
            return t(
                "trace.fx.late_report",
                event=event,
                on=_day(flag.on),
                reported=_day(ev["reported_at"]),
                late=ev["working_days_late"],
                due=_day(ev["due"]),
                days=ev["working_days"],
            )
        case "below_threshold":
            items = ", ".join(
                t("trace.fx.metal_below", metal=t(f"trace.metal.{m}"), rate=pct(v["rate"]), minimum=pct(v["minimum"]))
                for m, v in ev.get("below", {}).items()
            )
            return t("trace.fx.below_threshold", on=_day(flag.on), edition=ev.get("edition_in_force", ""), items=items)
        case "recovered_above_input":
            items = ", ".join(t(f"trace.metal.{m}") for m in ev.get("above_input", []))
            return t("trace.fx.recovered_above_input", on=_day(flag.on), items=items)
        case "vanished_children":
            return t("trace.fx.vanished_children", on=_day(flag.on), count=ev.get("vanished", 0), due=_day(ev["due"]))
        case "code_reused":
            return t("trace.fx.code_reused", other=ev.get("other_battery", ""))
        case "two_parents":
            return t(
                "trace.fx.two_parents",
                first=ev.get("registered_parent", ""),
                current=ev.get("current_parent", ""),
                state=t(f"trace.state.{ev.get('registered_parent_state', 'produced')}"),
            )
    return say(lang, flag.finding())


def _flag_row(flag: BatteryFlag, lang: str, places: dict[int, EnterprisePlace], own: list[str]) -> dict[str, Any]:
    due = flag.evidence.get("due")
    return {
        "kind": flag.kind.value,
        "code": flag.code,
        "other_code": bool(own) and flag.code not in own,
        "level": flag.level,
        "on": _day(flag.on),
        "due": _day(due) if due else None,
        "provisional": bool(flag.evidence.get("provisional")),
        "enterprise": _party(flag.enterprise, lang, places),
        "explanation": _flag_explanation(flag, lang, places),
    }


def _details(event: TraceEvent, lang: str) -> list[dict[str, str]]:
    """An event's attributes as label and value, the known ones first, in the reader's language."""
    t = partial(translate, lang)
    a = event.attributes
    out: list[dict[str, str]] = []
    if event.vin:
        out.append({"label": t("trace.attr.vin"), "value": event.vin, "code": "1"})
    if a.get("soh") is not None:
        out.append({"label": t("trace.attr.soh"), "value": pct(float(a["soh"]))})
    if a.get("purpose"):
        out.append({"label": t("trace.attr.purpose"), "value": t(f"trace.needed.{a['purpose']}")})
    for key in TEXT_ATTRIBUTES:
        if a.get(key):
            out.append({"label": t(f"trace.attr.{key}"), "value": str(a[key])})
    if a.get("rated_kwh") is not None:
        out.append({"label": t("trace.attr.rated_kwh"), "value": f"{_num(a['rated_kwh'])} kWh"})
    for key in KG_ATTRIBUTES:
        if a.get(key) is not None:
            out.append({"label": t(f"trace.attr.{key}"), "value": f"{_num(a[key])} kg"})
    for key in ("new_code", "parent_code"):
        if a.get(key):
            out.append({"label": t(f"trace.attr.{key}"), "value": str(a[key]), "href": f"/batteries/{a[key]}"})
    known = {"soh", "purpose", "rated_kwh", "new_code", "parent_code", *TEXT_ATTRIBUTES, *KG_ATTRIBUTES}
    for key, value in a.items():
        if key not in known and key not in HIDDEN_ATTRIBUTES and value not in (None, ""):
            out.append({"label": key, "value": str(value)})
    return out


def _timeline(
    trace: BatteryTrace,
    stops: list[Stop],
    lang: str,
    places: dict[int, EnterprisePlace],
    regions: dict[str, tuple[str, str | None]],
) -> list[dict[str, Any]]:
    starts = {(s.since, s.enterprise.id if s.enterprise else None): s.number for s in stops}
    rows = []
    for n, e in enumerate(trace.events, start=1):
        holder = None
        for who in (e.enterprise, e.counterpart):
            if who is not None and (e.at, who.id) in starts:
                holder = starts[(e.at, who.id)]
        region = regions.get(e.place.region_adcode or "")
        rows.append(
            {
                "n": n,
                "type": e.type,
                "label": translate(lang, f"trace.event.{e.type}"),
                "at": beijing(e.at),
                "at_iso": e.at.isoformat(),
                "reported": beijing(e.reported_at),
                "enterprise": _party(e.enterprise, lang, places),
                "counterpart": _party(e.counterpart, lang, places),
                # Who handed to whom: a transfer is reported by the giver, a collection by the taker.
                "handover": e.type in ("transferred", "collected") and e.counterpart is not None,
                "place": local_name(lang, *region) if region else (e.place.region_name_zh or e.place.text),
                "details": _details(e, lang),
                "via": e.via,
                "deadline": e.deadline,
                "stop": holder,
            }
        )
    return rows


def _overlay(stops: list[Stop], lang: str, names: dict[int, str]) -> str:
    """The custody path as a small GeoJSON FeatureCollection: the line through the custodians in order, and one
    numbered point per place (a custodian held twice carries both numbers)."""
    located = [s for s in stops if s.lon is not None and s.lat is not None]
    features: list[dict[str, Any]] = []
    coords = [[round(s.lon or 0, 5), round(s.lat or 0, 5)] for s in located]
    path = [c for i, c in enumerate(coords) if i == 0 or c != coords[i - 1]]
    if len(path) >= 2:
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": path},
                "properties": {"style": PATH_STYLE, "label": translate(lang, "trace.map.path")},
            }
        )
    last = stops[-1].number if stops else None
    by_place: dict[tuple[float, float], list[Stop]] = {}
    for s, c in zip(located, coords, strict=True):
        by_place.setdefault((c[0], c[1]), []).append(s)
    for (lon, lat), group in by_place.items():
        numbers = [s.number for s in group]
        current = last in numbers
        who = names.get(group[0].enterprise.id, "") if group[0].enterprise else ""
        label = f"{', '.join(map(str, numbers))} · {who}"
        if current:
            label += f" ({translate(lang, 'trace.map.current')})"
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "style": CURRENT_STYLE if current else STOP_STYLE,
                    "label": label,
                    "number": ", ".join(map(str, numbers)),
                    "current": current,
                },
            }
        )
    layer = {"type": "FeatureCollection", "features": features}
    return json.dumps(layer, ensure_ascii=False, default=json_default, separators=(",", ":"), allow_nan=False)


def _recovery(views: list[battery_pages.RecoveryView], lang: str) -> list[dict[str, Any]]:
    return [
        {
            "id": v.id,
            "on": v.reported_on.isoformat(),
            "edition": v.edition,
            "known": v.edition_known,
            "input": _num(v.input_mass_kg),
            "powder": _num(v.electrode_powder_kg),
            "compliant": v.compliant,
            "metals": [
                {
                    "metal": m.metal,
                    "label": translate(lang, f"trace.metal.{m.metal}"),
                    "in": _num(m.in_kg),
                    "out": _num(m.out_kg),
                    "rate": pct(m.rate),
                    "minimum": pct(m.minimum) if m.minimum is not None else "–",
                    "below": m.below,
                    "above": m.above_input,
                }
                for m in v.metals
            ],
        }
        for v in views
    ]


@router.get("/batteries/{code}", name="battery")
def battery_page(
    request: Request, session: SessionDep, lang: LanguageDep, principal: PrincipalDep, code: CodePath
) -> Response:
    """One battery: identity, genealogy, the custody path on the map, the flags of its chain, the timeline."""
    try:
        trace = battery.trace(session=session, principal=principal, code=code)
    except NotFound:
        analysis = battery_pages.analyse_code(code, final=True)
        context = {"missing": True, "code": analysis.code or code, "a": _analysis(lang, analysis)}
        return render(request, "battery.html", context, lang=lang, status_code=404)
    chain = battery_pages.lineage(session=session, code=trace.code)
    parties: list[Party | None] = [trace.holder]
    parties += [s.enterprise for s in trace.custody]
    parties += [p for e in trace.events for p in (e.enterprise, e.counterpart)]
    flags = battery_pages.flags_of(session=session, principal=principal, now=utcnow(), codes=[b.code for b in chain])
    parties += [p for f in flags for p in (f.enterprise, f.counterpart)]
    places = battery_pages.enterprise_places(session=session, principal=principal, ids=[p.id for p in parties if p])
    stops = battery_pages.custody_path(trace, places)
    names = {p.id: local_name(lang, p.name_zh, p.name_en) for p in parties if p}
    regions = battery_pages.region_names(session=session, adcodes=[e.place.region_adcode for e in trace.events])
    decoded = battery_pages.analyse_code(trace.code)
    context = {
        "b": trace,
        "a": _analysis(lang, decoded),
        "holder": _party(trace.holder, lang, places),
        "rated_kwh": _num(trace.rated_kwh) if trace.rated_kwh is not None else None,
        "mass_kg": _num(trace.mass_kg) if trace.mass_kg is not None else None,
        "ancestors": [{"code": b.code, "level": str(b.level)} for b in chain[1:]],
        "timeline": _timeline(trace, stops, lang, places, regions),
        "stops": [
            {
                "number": s.number,
                "enterprise": _party(s.enterprise, lang, places),
                "since": beijing(s.since),
                "until": beijing(s.until) if s.until else None,
                "located": s.lon is not None,
                "current": s.number == len(stops),
            }
            for s in stops
        ],
        "overlay": _overlay(stops, lang, names),
        "boundaries": BOUNDARIES,
        "flags": [_flag_row(f, lang, places, [trace.code]) for f in flags],
        "recovery": _recovery(battery_pages.recovery_reports(session=session, battery_id=chain[0].id or 0), lang)
        if chain
        else [],
        "late": sum(1 for e in trace.events if e.deadline and e.deadline.late),
        "can_log": battery_pages.may_log(principal),
    }
    return render(request, "battery.html", context, lang=lang)
