"""The enterprise and park pages: location, roles, licences, flows in and out, rate and flags; and the directory."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from app import downloads
from app import years as year_memory
from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.errors import status_for
from app.i18n import LanguageDep, local_name, say, translate
from app.params import Id, IdQuery
from app.web import beijing, pct, render
from flows.access import directory
from flows.kernel.bounds import MAX_TEXT, check_text, label
from flows.kernel.errors import Conflict, InvalidInput, NotFound
from flows.kernel.numbers import number_style
from flows.kernel.principal import Principal
from flows.pages import asks as ask_pages
from flows.pages import exports, inspection, places
from flows.pages.places import FlowRow, LinkRow, Member, ParkPage
from flows.waste import licences
from models import WasteCategory
from models.enums import LicenceActivity
from models.quantity import json_default

router = APIRouter(include_in_schema=False)

YearQuery = Annotated[int | None, Query(ge=2000, le=2100)]

# Tableau colour-blind 10: the same hues as app.css. On the maps a meaning never rests on hue alone: lines in and
# out differ by dash pattern too, points by outline and size, and every feature has a tooltip in words.
BLUE, ORANGE, DARK_ORANGE, LIGHT_BLUE, GREY, DARK_GREY, NAVY = (
    "#006BA4",
    "#FF800E",
    "#C85200",
    "#5F9ED1",
    "#ABABAB",
    "#595959",
    "#12304d",
)
# Roles that take waste in to use or treat it (the receivers of a circular link).
USER_ROLES = frozenset({"utiliser", "recycler", "disposer", "cascade_user"})


def _role_group(roles: list[str]) -> str:
    """How a park map draws an enterprise: it generates waste, uses it, both, or neither (a carrier, a maker)."""
    makes, uses = "generator" in roles, bool(USER_ROLES.intersection(roles))
    return "both" if makes and uses else "generator" if makes else "user" if uses else "other"


POINT_STYLES: dict[str, dict[str, Any]] = {
    "generator": {"radius": 7, "color": NAVY, "weight": 1.5, "fillColor": BLUE, "fillOpacity": 0.95},
    "user": {"radius": 7, "color": NAVY, "weight": 1.5, "fillColor": ORANGE, "fillOpacity": 0.95},
    "both": {"radius": 8, "color": DARK_ORANGE, "weight": 3.5, "fillColor": BLUE, "fillOpacity": 0.95},
    "other": {"radius": 6, "color": DARK_GREY, "weight": 2, "fillColor": GREY, "fillOpacity": 0.5},
}


def _point(lon: float, lat: float, label: str, style: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"label": label, "style": style, **props},
    }


def _line(a: tuple[float, float], b: tuple[float, float], label: str, style: dict[str, Any], **props: Any) -> Any:
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [list(a), list(b)]},
        "properties": {"label": label, "style": style, **props},
    }


def _weight(tonnes: Decimal, largest: Decimal) -> float:
    # Line width grows with the square root of the tonnes, from 1.5 px to 7 px, so that small links stay visible.
    return 1.5 if largest <= 0 else round(1.5 + 5.5 * float(tonnes / largest) ** 0.5, 2)


def _by_counterpart(rows: list[FlowRow]) -> dict[int, tuple[FlowRow, Decimal]]:
    out: dict[int, tuple[FlowRow, Decimal]] = {}
    for row in rows:
        first, total = out.get(row.counterpart.id, (row, Decimal(0)))
        out[row.counterpart.id] = (first, total + row.tonnes.received_t + row.tonnes.in_transit_t)
    return out


def _enterprise_overlay(page: places.EnterprisePage, lang: str) -> str:
    """The enterprise as a point, its counterparts of the year as small points joined to it by lines in and out."""
    e = page.enterprise
    here = (e.lon, e.lat)
    features: list[dict[str, Any]] = []
    incoming, outgoing = _by_counterpart(page.flows_in), _by_counterpart(page.flows_out)
    largest = max([t for _, t in [*incoming.values(), *outgoing.values()]] or [Decimal(0)])
    for direction, parties in (("in", incoming), ("out", outgoing)):
        for row, moved_t in parties.values():
            c = row.counterpart
            name = local_name(lang, c.name_zh, c.name_en)
            there = (c.lon, c.lat)
            label = translate(
                lang, f"places.map.flow_{direction}", name=name, tonnes=number_style(lang).tonnes(moved_t)
            )
            style = {
                "color": LIGHT_BLUE if direction == "in" else DARK_ORANGE,
                "weight": _weight(moved_t, largest),
                "opacity": 0.85,
                "dashArray": "8 6" if direction == "in" else None,
            }
            ends = (there, here) if direction == "in" else (here, there)
            features.append(_line(*ends, label, style, kind=f"flow-{direction}"))
            features.append(
                _point(*there, name, {"radius": 4, "color": DARK_GREY, "weight": 1, "fillColor": GREY}, kind="party")
            )
    name = local_name(lang, e.name_zh, e.name_en)
    style = {"radius": 9, "color": NAVY, "weight": 3, "fillColor": BLUE, "fillOpacity": 1}
    features.append(_point(e.lon, e.lat, name, style, kind="self"))
    return json.dumps(
        {"type": "FeatureCollection", "features": features},
        ensure_ascii=False,
        default=json_default,
        allow_nan=False,
    )


def _park_overlay(page: ParkPage, lang: str) -> str:
    """The park's boundary, its enterprises as points by role, and its circular links as lines."""
    p = page.park
    name = local_name(lang, p.name_zh, p.name_en)
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": p.boundary,
            "properties": {
                "label": name,
                "kind": "park",
                "style": {
                    "color": DARK_ORANGE,
                    "weight": 2.5,
                    "dashArray": "6 4",
                    "fillColor": "#FFF2E6",
                    "fillOpacity": 0.8,
                },
            },
        }
    ]
    pairs: dict[tuple[int, int], list[LinkRow]] = defaultdict(list)
    for link in page.links:
        pairs[(link.shipper.id, link.receiver.id)].append(link)
    totals = {k: sum((r.tonnes.received_t + r.tonnes.in_transit_t for r in v), Decimal(0)) for k, v in pairs.items()}
    largest = max(totals.values(), default=Decimal(0))
    for key, rows in pairs.items():
        s, r = rows[0].shipper, rows[0].receiver
        label = translate(
            lang,
            "places.map.link",
            shipper=local_name(lang, s.name_zh, s.name_en),
            receiver=local_name(lang, r.name_zh, r.name_en),
            tonnes=number_style(lang).tonnes(totals[key]),
        )
        style = {"color": DARK_ORANGE, "weight": _weight(totals[key], largest), "opacity": 0.75}
        features.append(_line((s.lon, s.lat), (r.lon, r.lat), label, style, kind="link"))
    for m in page.members:
        group = _role_group(m.roles)
        label = f"{local_name(lang, m.name_zh, m.name_en)} · {translate(lang, 'places.group.' + group)}"
        features.append(_point(m.lon, m.lat, label, POINT_STYLES[group], kind="member", group=group))
    return json.dumps(
        {"type": "FeatureCollection", "features": features},
        ensure_ascii=False,
        default=json_default,
        allow_nan=False,
    )


def batches_href(shipper: int, receiver: int, year: int, category: str) -> str:
    """The batch list narrowed to the batches from one enterprise to another, in a year and a category."""
    return "/batches?" + urlencode({"shipper": shipper, "receiver": receiver, "year": year, "category": category})


def _flag_text(lang: str, kind: str, ev: dict[str, Any], scope_name: str) -> str:
    """A flag's finding in the reader's language, from its evidence (the domain's message is in English)."""

    def n(key: str) -> str:
        value = ev.get(key)
        return number_style(lang).tonnes(value) if isinstance(value, int | float | Decimal) else "–"

    def word(prefix: str, key: str) -> str:
        value = ev.get(key)
        return translate(lang, f"{prefix}.{value}") if value else "–"

    params: dict[str, Any] = {
        "category": ev.get("category", ""),
        "number": ev.get("number", ""),
        "generated": n("generated_t"),
        "utilised": n("utilised_t"),
        "residual": n("residual_t"),
        "tolerance": n("tolerance_t"),
        "manifest": n("manifest_utilised_t"),
        "intake": n("intake_t"),
        "capacity": n("capacity_t"),
        "dispatched": n("weight_dispatched_t"),
        "received": n("weight_received_t"),
        "route": word("places.route", "route"),
        "activity": word("places.doing", "activity"),
        "pct": number_style(lang).percent(ev["difference_pct"], signed=True)
        if isinstance(ev.get("difference_pct"), int | float | Decimal)
        else "–",
        "rate": pct(float(ev["rate"])) if isinstance(ev.get("rate"), int | float | Decimal) else "–",
        "drawn": n("drawn_t"),
        "scope": scope_name,
    }
    return translate(lang, f"places.flagrow.{kind}", **params)


def _flag_rows(lang: str, page: Any, scope_name: str) -> list[dict[str, Any]]:
    rows = []
    for flag in page.data:
        subject_kind, _, subject_id = flag.subject.partition("/")
        rows.append(
            {
                "kind": flag.kind.value,
                "year": flag.year,
                "text": _flag_text(lang, flag.kind.value, flag.evidence, scope_name),
                "href": f"/batches/{subject_id}" if subject_kind == "manifest" else None,
            }
        )
    return rows


def _chain_rows(lang: str, report: Any) -> list[dict[str, Any]]:
    rows = []
    for flag in report.data if report else []:
        other = flag.counterpart or (flag.enterprise if flag.enterprise and flag.enterprise.id else None)
        key = "places.bflagrow_with" if flag.counterpart else "places.bflagrow"
        text = translate(
            lang,
            key,
            code=flag.code or "–",
            on=flag.on.isoformat(),
            counterpart=local_name(lang, other.name_zh, other.name_en) if other else "",
        )
        rows.append({"kind": flag.kind.value, "year": flag.year, "text": text, "href": None})
    return rows


@router.get("/enterprises/{enterprise_id}", name="enterprise")
def enterprise(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    enterprise_id: Id,
    year: YearQuery = None,
    licence: IdQuery = None,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """One enterprise: where it is, what it does and may do, what it sent and received, its rate and its flags."""
    saved = done if done in ("created", "replaced", "unchanged") else None
    kept = year_memory.remembered(request) if year is None else None
    if kept is not None and kept in places.enterprise_years(session=session, enterprise_id=enterprise_id):
        year = kept  # the year chosen on another page, where this enterprise has data
    form = LicenceForm(replace=licence, saved=saved)
    return _enterprise_response(request, session, lang, principal, enterprise_id, year, form)


@dataclass
class LicenceForm:
    """The licence form as the page shows it: blank, filled to replace a licence, or sent back with its problems."""

    replace: int | None = None  # the licence whose current version fills the form
    data: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    saved: str | None = None  # created, replaced or unchanged, after a write


LICENCE_FIELDS = ("activity", "category", "valid_from", "valid_to", "capacity_t", "number")


def _licence_form(page: places.EnterprisePage, form: LicenceForm) -> dict[str, Any]:
    """What the form shows: the values typed, else those of the licence being replaced, else blanks."""
    data = dict(form.data)
    if not data and form.replace is not None:
        row = next((r for r in page.enterprise.licences if r.id == form.replace), None)
        if row is not None:
            data = {
                "activity": row.activity,
                "category": row.category.key,
                "valid_from": row.valid_from.isoformat(),
                "valid_to": row.valid_to.isoformat() if row.valid_to else "",
                "capacity_t": f"{row.capacity_t}",
                "number": row.licence_no,
                "licence_id": str(row.id),
                "revision": str(row.revision),
            }
    return {"data": data, "problems": form.problems, "saved": form.saved, "replacing": bool(data.get("licence_id"))}


def _enterprise_response(
    request: Request,
    session: Session,
    lang: str,
    principal: Principal,
    enterprise_id: int,
    year: int | None,
    form: LicenceForm,
    status_code: int = 200,
) -> Response:
    page = places.enterprise_page(
        session=session, principal=principal, enterprise_id=enterprise_id, year=year, now=utcnow()
    )
    e = page.enterprise
    if request.method == "GET" and (fmt := downloads.wanted(request)):
        stem = f"enterprise-{e.uscc}-{page.year}"
        return downloads.response(exports.enterprise_flows_table(page, lang), lang, fmt, stem)
    name = local_name(lang, e.name_zh, e.name_en)
    context = {
        "p": page,
        "e": e,
        "name": name,
        "overlay": _enterprise_overlay(page, lang),
        "prefecture": e.prefecture.key if e.prefecture else None,
        "batches_href": lambda row, direction: (
            batches_href(row.counterpart.id, enterprise_id, page.year, row.category.key)
            if direction == "in"
            else batches_href(enterprise_id, row.counterpart.id, page.year, row.category.key)
        ),
        "flag_rows": _flag_rows(lang, page.flags, name),
        "open_flags": sum(page.flags.counts.values()),
        "chain_rows": _chain_rows(lang, page.battery_flags),
        "chain_count": page.battery_flags.count if page.battery_flags else 0,
        "lf": _licence_form(page, form),
        "activities": [a.value for a in LicenceActivity],
        "categories": _categories(session) if e.may_license else [],
        "beijing": beijing,
        "downloads": downloads.links(request) if page.flows_in or page.flows_out else None,
        "inspection_href": (
            f"/enterprises/{e.id}/inspection.pdf?year={page.year}" if inspection.may_inspect(principal) else None
        ),
        "asks": ask_pages.open_asks(
            session=session, table="declaration", row_ids=[d.id for d in page.declarations if d.id]
        ),
    }
    # An htmx write swaps the licences card alone; every other request gets the page (or its content).
    block = "licences" if request.method == "POST" else "content"
    return render(request, "enterprise.html", context, lang=lang, block=block, status_code=status_code)


def _categories(session: Session) -> list[WasteCategory]:
    return list(session.exec(select(WasteCategory).order_by(col(WasteCategory.code))).all())


async def _posted(request: Request) -> dict[str, str]:
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    for name, value in data.items():
        check_text(value, field=name, max_length=MAX_TEXT)
    return data


@router.post("/enterprises/{enterprise_id}/licences", name="enterprise_licences")
def record_licence(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    enterprise_id: Id,
    data: Annotated[dict[str, str], Depends(_posted)],
) -> Response:
    """Add a licence, or replace one (licence_id and revision): the old version stays in its history."""
    licences.ensure_licensor(principal)
    uscc = directory.get_enterprise(session=session, principal=principal, enterprise_id=enterprise_id).uscc
    typed = {name: data.get(name, "").strip() for name in (*LICENCE_FIELDS, "licence_id", "revision")}
    body: dict[str, Any] = {name: typed[name] for name in LICENCE_FIELDS}
    body["uscc"] = uscc
    for name in ("licence_id", "revision"):
        if typed[name]:
            body[name] = typed[name]
    try:
        written = licences.save_licence(session=session, principal=principal, data=body, now=utcnow())
        session.commit()
    except (InvalidInput, Conflict, NotFound) as exc:
        session.rollback()
        where = exc.field if exc.field in LICENCE_FIELDS else "form"
        form = LicenceForm(data=typed, problems={where: say(lang, licences.problem_of(exc))})
        return _enterprise_response(request, session, lang, principal, enterprise_id, None, form, status_for(exc))
    url = f"/enterprises/{enterprise_id}?done={written.outcome}#licences"
    if request.headers.get("hx-request") == "true":
        return _enterprise_response(
            request, session, lang, principal, enterprise_id, None, LicenceForm(saved=written.outcome)
        )
    return RedirectResponse(url, status_code=303)


@router.get("/parks/{park_id}", name="park")
def park(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    park_id: Id,
    year: YearQuery = None,
) -> Response:
    """One park: its boundary and enterprises, its rate, its flags and its circular links (who uses whose waste)."""
    kept = year_memory.remembered(request) if year is None else None
    if kept is not None and kept in places.park_years(session=session, principal=principal, park_id=park_id):
        year = kept  # the year chosen on another page, where this park has data
    page = places.park_page(session=session, principal=principal, park_id=park_id, year=year, now=utcnow())
    if fmt := downloads.wanted(request):
        return downloads.response(exports.park_flows_table(page, lang), lang, fmt, f"park-{park_id}-{page.year}")
    name = local_name(lang, page.park.name_zh, page.park.name_en)
    members: list[Member] = page.members
    context = {
        "p": page,
        "park": page.park,
        "name": name,
        "members": [{"m": m, "group": _role_group(m.roles)} for m in members],
        "batches_href": batches_href,
        "overlay": _park_overlay(page, lang),
        "prefecture": page.park.prefecture.key if page.park.prefecture else page.park.region_adcode,
        "flag_rows": _flag_rows(lang, page.flags, name) if page.flags else [],
        "open_flags": sum(page.flags.counts.values()) if page.flags else 0,
        "downloads": downloads.links(request) if page.links or page.boundary else None,
    }
    return render(request, "park.html", context, lang=lang)


def _optional_int(value: str | None, field: str) -> int | None:
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit():
        raise InvalidInput("pages.places.not_a_number", field=field, column=label(field))
    return int(value)


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@router.get("/enterprises", name="enterprises")
def enterprises(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    q: Annotated[str | None, Query(max_length=100)] = None,
    prefecture: str | None = None,
    park: str | None = None,
    role: str | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """The enterprises the user may read, found by name or credit code and filtered by prefecture, park and role."""
    text, region, park_id, kind = _blank(q), _blank(prefecture), _optional_int(park, "park"), _blank(role)
    filters: dict[str, str | int | None] = {"q": text, "prefecture": region, "park": park_id, "role": kind}
    if fmt := downloads.wanted(request):
        table = exports.enterprises_table(
            session=session, principal=principal, lang=lang, q=text, prefecture=region, park_id=park_id, role=kind
        )
        return downloads.response(table, lang, fmt)
    size = places.DIRECTORY_PAGE
    found = places.directory_page(
        session=session,
        principal=principal,
        q=text,
        prefecture=region,
        park_id=park_id,
        role=kind,
        offset=(page - 1) * size,
        limit=size,
    )
    pages = max(1, -(-found.count // size))
    kept = {k: v for k, v in filters.items() if v is not None}

    def href(number: int) -> str:
        return (
            "/enterprises?" + urlencode({**kept, "page": number})
            if number > 1
            else ("/enterprises" + ("?" + urlencode(kept) if kept else ""))
        )

    context = {
        "d": found,
        "filters": filters,
        "page": page,
        "pages": pages,
        "prev_href": href(page - 1) if page > 1 else None,
        "next_href": href(page + 1) if page < pages else None,
        "first": found.offset + 1 if found.rows else 0,
        "last": found.offset + len(found.rows),
        "downloads": downloads.links(request),
    }
    return render(request, "enterprises.html", context, lang=lang, block="results")
