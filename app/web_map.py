"""The flow map and the Sankey diagrams: where waste goes, by region, park, enterprise and route."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from app import downloads
from app import years as year_memory
from app.auth import PrincipalDep, utcnow
from app.deps import SessionDep
from app.i18n import LanguageDep, local_name, translate
from app.params import CodePath, Id
from app.web import pct, render
from flows.access import directory
from flows.kernel.adcode import within
from flows.kernel.bounds import MAX_ID
from flows.kernel.errors import InvalidInput, NotFound
from flows.kernel.messages import Term
from flows.kernel.numbers import number_style
from flows.kernel.principal import Principal
from flows.pages import exports
from flows.pages import map as flowmap
from flows.pages.map import RateClass, RegionRates
from flows.pages.sankey import SankeyData, default_region, graph, sankey
from flows.pages.years import data_years
from flows.waste.movements import FlowFilter, FlowSum, category_names, parse_filter, region_names
from flows.waste.rates import RateReport
from models.enums import RegionLevel, Route, UserRole
from models.quantity import json_default

router = APIRouter(include_in_schema=False)

GEOJSON = "application/geo+json"
TOP_FLOWS = 15  # rows of the flow list under the map; the GeoJSON layer has them all
YearQuery = Annotated[int | None, Query(ge=2000, le=2100)]
TextQuery = Annotated[str | None, Query(max_length=16)]
ParkQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
# The largest N flows drawn (all by default); beyond the flows there are, all are drawn.
TopQuery = Annotated[int | None, Query(ge=1, le=100_000)]

# The map's colours, in one place for the region fills, the symbols, the legend and the script. The region classes
# keep the Tableau colour-blind-safe colours (and patterns besides: no class rests on hue); selection, hover, battery
# chains and parks take Okabe-Ito and Paul Tol colours that stay apart from them and from each other under simulated
# protanopia, deuteranopia and tritanopia (tests/test_map_read.py measures it).
PALETTE: dict[str, str] = {
    "meets": "#006ba4",
    "near": "#ffbc79",
    "below": "#c85200",  # hatched with white
    "over_100": "#595959",  # cross-hatched with white
    "no_data": "#e3e7ec",  # dotted grey
    "outline": "#12304d",
    "flow": "#12304d",
    "hover": "#33bbee",
    "selected": "#000000",  # drawn on a white casing, so that it reads on every fill
    "casing": "#ffffff",
    "park": "#332288",
    "park_fill": "#88ccee",
    "generator": "#595959",
    "utiliser": "#006ba4",  # a ring: white inside
    "disposer": "#000000",
    "intermediary": "#a2c8ec",
    "battery": "#cc79a7",
    "battery_ring": "#882255",
    "label": "#1a1a1a",
}

# Region fills by rate class: the classes below the target and missing data are patterns (app/templates/map.html
# defines them from PALETTE), so no class rests on hue.
RATE_STYLES: dict[RateClass, dict[str, Any]] = {
    cls: {"color": PALETTE["outline"], "weight": 1.2, "className": f"map-region map-region--{cls.value}", **fill}
    for cls, fill in (
        (RateClass.meets, {"fillColor": PALETTE["meets"], "fillOpacity": 0.55}),
        (RateClass.near, {"fillColor": PALETTE["near"], "fillOpacity": 0.8}),
        (RateClass.below, {"fillColor": "url(#map-pattern-below)", "fillOpacity": 0.85}),
        (RateClass.over_100, {"fillColor": "url(#map-pattern-over)", "fillOpacity": 0.85}),
        (RateClass.no_data, {"fillColor": "url(#map-pattern-none)", "fillOpacity": 0.7, "color": "#595959"}),
    )
}
ROUTES: tuple[str, ...] = tuple(r.value for r in Route)


# ---------------------------------------------------------------------------------------------------------------
# Formatting


def tonnes(lang: str, value: float | Decimal | None) -> str:
    """Tonnes as every page writes them (app.numbers)."""
    return number_style(lang).tonnes(value)


def _name(lang: str, zh: str | None, en: str | None) -> str:
    return local_name(lang, zh or "—", en)


def _query(f: FlowFilter, **extra: Any) -> str:
    return urlencode(f.query(**extra))


# ---------------------------------------------------------------------------------------------------------------
# Filters


def _chosen_year(request: Request, session: Session, principal: Principal, year: int | None) -> tuple[int, list[int]]:
    """The URL's year, else the one remembered from another page, else the latest with declarations in scope."""
    data = data_years(session=session, principal=principal)
    return data.pick(year, year_memory.remembered(request), utcnow().year), data.years


def _filter(
    session: Session,
    principal: Principal,
    year: int | None,
    category: str | None = None,
    route: str | None = None,
    region: str | None = None,
    park: int | None = None,
) -> tuple[FlowFilter, list[int]]:
    """The checked filter, and the years offered (the latest declared in scope by default, as every page)."""
    if year is None:
        data = data_years(session=session, principal=principal)
        year, years = data.pick(None, None, utcnow().year), data.years
    else:
        years = []
    f = parse_filter(
        session=session, principal=principal, year=year, category=category, route=route, region=region, park=park
    )
    return f, years


def region_options(session: Session, principal: Principal, lang: str) -> list[dict[str, str]]:
    """The regions a user may narrow to: the province or prefectures within an administrator's or bureau's scope."""
    if principal.role not in (UserRole.admin, UserRole.bureau):
        return []
    scope = principal.scope_adcode if principal.role is UserRole.bureau else None
    options = []
    for level in (RegionLevel.province, RegionLevel.prefecture):
        for region in directory.list_regions(session=session, level=level):
            if scope is None or within(region.adcode, scope):
                options.append({"value": region.adcode, "label": _name(lang, region.name_zh, region.name_en)})
    return options


def park_options(session: Session, principal: Principal, lang: str) -> list[dict[str, Any]]:
    """Parks to narrow the map to: those in an administrator's or bureau's scope, a park manager's own."""
    match principal.role:
        case UserRole.admin:
            parks = directory.list_parks(session=session)
        case UserRole.bureau if principal.scope_adcode:
            parks = directory.list_parks(session=session, region=principal.scope_adcode)
        case UserRole.park_manager if principal.park_id:
            parks = [p for p in directory.list_parks(session=session) if p.id == principal.park_id]
        case _:
            parks = []
    return [{"value": p.id, "label": _name(lang, p.name_zh, p.name_en)} for p in parks]


def _category_options(session: Session, lang: str) -> list[dict[str, str]]:
    return [
        {"value": code, "label": f"{code} {_name(lang, zh, en)}"}
        for code, (zh, en) in category_names(session).items()
        if len(code) == 4  # the SW codes; 2024-catalogue codes count under them
    ]


def _route_options(lang: str) -> list[dict[str, str]]:
    return [{"value": r, "label": translate(lang, f"map.route.{r}")} for r in ROUTES]


# ---------------------------------------------------------------------------------------------------------------
# Rates of regions


def reference_text(lang: str, rr: RegionRates | None) -> str:
    """What the region colours are held against, in words (the legend's caption)."""
    if rr is None or rr.reference is None:
        return translate(lang, "map.legend.no_target", year=rr.year if rr else "")
    ref = rr.reference
    value = pct(ref.value)
    categories = ", ".join(rr.report.categories)
    key = {"path": "map.legend.path", "next": "map.legend.next", "last": "map.legend.last"}[ref.kind]
    return translate(lang, key, year=rr.year, target_year=ref.year, target=value, categories=categories)


def class_label(lang: str, cls: RateClass) -> str:
    return translate(lang, f"map.class.{cls.value}", pts=int(flowmap.NEAR_PTS))


def _region_rows(lang: str, rr: RegionRates | None) -> list[dict[str, Any]]:
    if rr is None:
        return []
    return [
        {
            "adcode": r.adcode,
            "name": _name(lang, r.name_zh, r.name_en),
            "rate": pct(r.row.rate),
            "raw": r.row.rate,
            "cls": r.cls.value,
            "cls_label": class_label(lang, r.cls),
            "generated": tonnes(lang, r.row.generated_t),
            "manifest": tonnes(lang, r.row.manifest_utilised_t),
        }
        for r in rr.regions
    ]


def _own_rate(session: Session, principal: Principal, year: int) -> RateReport | None:
    """A park manager's or enterprise user's own rate, shown where the others see regions coloured."""
    match principal.role:
        case UserRole.park_manager if principal.park_id:
            return flowmap.scope_rate(session=session, principal=principal, year=year, park=principal.park_id)
        case UserRole.enterprise if principal.enterprise_id:
            return flowmap.scope_rate(
                session=session, principal=principal, year=year, enterprise=principal.enterprise_id
            )
    return None


# ---------------------------------------------------------------------------------------------------------------
# The map page


def _flow_rows(lang: str, layer: flowmap.FlowLayer, f: FlowFilter) -> list[dict[str, Any]]:
    rows = []
    for flow in layer.flows[:TOP_FLOWS]:
        rows.append(
            {
                "from": _name(lang, flow.origin.name_zh, flow.origin.name_en),
                "to": _name(lang, flow.destination.name_zh, flow.destination.name_en),
                "within": flow.within,
                "tonnes": tonnes(lang, flow.tonnes),
                "batches": flow.batches,
                "share": pct(float(flow.tonnes / layer.total.tonnes)) if layer.total.tonnes else "–",
                "key": f"{flow.origin.key}>{flow.destination.key}",
                "href": "/map/details/flow?"
                + _query(f, level=layer.level, **{"from": flow.origin.key, "to": flow.destination.key}),
            }
        )
    return rows


def _top_context(lang: str, shown: flowmap.TopFlows) -> dict[str, Any]:
    return {
        "shown": shown.shown,
        "count": shown.count,
        "text": translate(
            lang,
            "mapread.top.status" if shown.shown < shown.count else "mapread.top.all",
            n=f"{shown.shown:,}",
            count=f"{shown.count:,}",
            tonnes=tonnes(lang, shown.tonnes),
            share=pct(shown.share),
        ),
    }


def _labels(lang: str) -> dict[str, str]:
    """Words the map's script puts in tooltips and in the top-N line (no other text is built in JavaScript)."""
    keys = ("within", "batches", "sent", "received")
    labels = {key: translate(lang, f"map.js.{key}") for key in keys}
    for key in ("status", "all"):
        labels[f"top.{key}"] = translate(
            lang, f"mapread.top.{key}", n="{n}", count="{count}", tonnes="{tonnes}", share="{share}"
        )
    labels.update({key: translate(lang, f"flowmap.js.{key}") for key in ("utilised", "held", "forwarded")})
    labels.update({f"role.{r.value}": translate(lang, f"map.erole.{r.value}") for r in flowmap.ROLE_ORDER})
    return labels


def map_context(
    request: Request,
    session: Session,
    principal: Principal,
    lang: str,
    f: FlowFilter,
    years: list[int],
    level: str,
    top: int | None = None,
    selection: str | None = None,
    view: flowmap.MapView | None = None,
) -> dict[str, Any]:
    """Everything the map page shows for a filter, and the view a link asked for (top-N, selection, centre)."""
    layer = flowmap.flow_layer(session=session, principal=principal, f=f, level=level)
    shown = layer.top(top)
    scale = layer.scale()
    rr = flowmap.region_rates(session=session, principal=principal, year=f.year, region=f.region)
    own = _own_rate(session, principal, f.year) if rr is None else None
    present = {r.cls for r in rr.regions} if rr else set()
    park_id = f.park or (principal.park_id if principal.role is UserRole.park_manager else None)
    classes = [c for c in flowmap.RATE_CLASSES if c is not RateClass.over_100 or c in present]
    query = _query(f, level=level if level != "auto" else None)
    top_query = {"top": shown.shown} if shown.shown < shown.count else {}
    region_query = urlencode({k: v for k, v in f.query().items() if k in ("year", "region")})
    return {
        "f": f,
        "years": years,
        "level": level,
        "layer": layer,
        "levels": flowmap.LEVELS,
        "rr": rr,
        # Without regions to colour (an enterprise's map): zoom to the flows. A park's map (a park manager's own, or
        # one narrowed to a park) opens on the park's boundary instead.
        "fit_layers": rr is None and park_id is None,
        "fit_bounds": json.dumps(flowmap.park_bounds(session=session, park_id=park_id)) if park_id else "",
        "top": _top_context(lang, shown),
        "scale": {
            "max_tonnes": scale.max_tonnes,
            "max_px": scale.max_px,
            "samples": [{"px": scale.px(t), "label": tonnes(lang, t)} for t in scale.samples()],
        },
        "palette": PALETTE,
        "palette_json": json.dumps(PALETTE),
        "selection": selection or "",
        "view": view.text() if view else "",
        "own": own,
        "own_rate": pct(own.rate) if own else None,
        "own_target": pct(own.target or (own.next_target.value if own.next_target else None)) if own else None,
        "reference": reference_text(lang, rr) if rr else None,
        "classes": [{"value": c.value, "label": class_label(lang, c)} for c in classes],
        "regions": _region_rows(lang, rr),
        "flows": _flow_rows(lang, layer, f),
        "more_flows": max(0, len(layer.flows) - TOP_FLOWS),
        "total": tonnes(lang, layer.total.tonnes),
        "utilised_total": tonnes(lang, layer.total.utilised_t),
        "held_total": tonnes(lang, layer.total.held_t),
        "forwarded_total": tonnes(lang, layer.total.forwarded_t),
        "region_options": region_options(session, principal, lang),
        "park_options": park_options(session, principal, lang),
        "category_options": _category_options(session, lang),
        "route_options": _route_options(lang),
        "role_groups": flowmap.ROLE_GROUPS,
        "flows_url": f"/map/layers/flows.geojson?{query}",
        "enterprises_url": f"/map/layers/enterprises.geojson?{query}",
        "regions_url": f"/map/layers/regions.geojson?{region_query}",
        "page_url": f"/map?{_query(f, level=level if level != 'auto' else None, **top_query)}",
        "detail_query": _query(f),
        "labels": json.dumps(_labels(lang), ensure_ascii=False, default=json_default, allow_nan=False),
        "audit_href": "/audit?" + urlencode({"region": f.region or principal.scope_adcode or "510000", "year": f.year}),
    }


@router.get("/map", name="map")
def map_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    year: YearQuery = None,
    category: TextQuery = None,
    route: Annotated[str | None, Query(max_length=32)] = None,
    region: TextQuery = None,
    park: Annotated[str | None, Query(max_length=12)] = None,
    level: Annotated[str, Query(max_length=12)] = "auto",
    top: TopQuery = None,
    sel: Annotated[str | None, Query(max_length=64)] = None,
    at: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The flow map of a year: regions by rate against the target, parks, enterprises and the flows between them;
    `top` draws the largest flows only, `sel` opens a place or flow beside the map, `at` is lat,lon,zoom."""
    chosen, years = _chosen_year(request, session, principal, year)
    f, _ = _filter(session, principal, chosen, category, route, region, _park_id(park))
    selection, view = flowmap.parse_selection(sel), flowmap.parse_view(at)
    context = map_context(request, session, principal, lang, f, years, level, top, selection, view)
    return render(request, "map.html", context, lang=lang, block="map_view")


def _park_id(value: str | None) -> int | None:
    # An empty select sends park= : that means no park, not a malformed number.
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit():
        raise InvalidInput("pages.map.park_id_not_a_number", field="park", column=Term("field.park"), value=value)
    return int(value)


# ---------------------------------------------------------------------------------------------------------------
# GeoJSON layers


def _geojson(data: dict[str, Any]) -> Response:
    # NaN or Infinity would make the layer unreadable for every user: refused (a logged 500) rather than sent.
    body = json.dumps(data, ensure_ascii=False, default=json_default, separators=(",", ":"), allow_nan=False)
    return Response(body, media_type=GEOJSON, headers={"Vary": "Cookie, Authorization"})


@router.get("/map/layers/flows.geojson", name="map_flows_geojson")
def flows_geojson(
    session: SessionDep,
    principal: PrincipalDep,
    year: YearQuery = None,
    category: TextQuery = None,
    route: Annotated[str | None, Query(max_length=32)] = None,
    region: TextQuery = None,
    park: Annotated[str | None, Query(max_length=12)] = None,
    level: Annotated[str, Query(max_length=12)] = "auto",
    top: TopQuery = None,
) -> Response:
    """Received tonnes between places as GeoJSON lines (and points for a prefecture's flows within itself), the
    largest `top` of them when asked."""
    f, _ = _filter(session, principal, year, category, route, region, _park_id(park))
    return _geojson(flowmap.flow_layer(session=session, principal=principal, f=f, level=level).geojson(top))


@router.get("/map/layers/enterprises.geojson", name="map_enterprises_geojson")
def enterprises_geojson(
    session: SessionDep,
    principal: PrincipalDep,
    year: YearQuery = None,
    category: TextQuery = None,
    route: Annotated[str | None, Query(max_length=32)] = None,
    region: TextQuery = None,
    park: Annotated[str | None, Query(max_length=12)] = None,
    level: Annotated[str, Query(max_length=12)] = "auto",
) -> Response:
    """Enterprises as points with their roles and the tonnes they sent and received in the filter."""
    f, _ = _filter(session, principal, year, category, route, region, _park_id(park))
    return _geojson(flowmap.enterprise_layer(session=session, principal=principal, f=f))


@router.get("/map/layers/regions.geojson", name="map_regions_geojson")
def regions_geojson(
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    year: YearQuery = None,
    region: TextQuery = None,
) -> Response:
    """Region boundaries with their rate, the target they are held against and the class, styled for the map."""
    f, _ = _filter(session, principal, year, region=region)
    rr = flowmap.region_rates(session=session, principal=principal, year=f.year, region=f.region)
    level, parent = (rr.level, rr.parent) if rr else (RegionLevel.prefecture, None)
    data = flowmap.region_layer(session=session, level=level, parent=parent)
    by_adcode = rr.by_adcode() if rr else {}
    for feature in data["features"]:
        props = feature["properties"]
        name = _name(lang, props["name_zh"], props["name_en"])
        props["name"] = name  # the place label, in the reader's language
        found = by_adcode.get(props["adcode"])
        if rr is None:
            props["label"] = name
            continue
        cls = found.cls if found else RateClass.no_data
        rate = found.row.rate if found else None
        props.update(
            {
                "rate": rate,
                "target": rr.reference.value if rr.reference else None,
                "target_year": rr.reference.year if rr.reference else None,
                "class": cls.value,
                "style": RATE_STYLES[cls],
                "label": f"{name} · {pct(rate)} · {class_label(lang, cls)}",
            }
        )
    data["year"] = f.year
    return _geojson(data)


# ---------------------------------------------------------------------------------------------------------------
# Details beside the map


def _side(lang: str, s: FlowSum) -> dict[str, Any]:
    return {"tonnes": tonnes(lang, s.tonnes), "batches": s.batches, "raw": float(s.tonnes)}


def _allocated(lang: str, *sides: FlowSum) -> dict[str, Any]:
    """What the tonnes received became, from the allocation: utilised there, held there, forwarded from there."""
    utilised, held, forwarded = (sum((getattr(s, name) for s in sides), Decimal(0)) for name in _ALLOCATED)
    return {
        "utilised": tonnes(lang, utilised),
        "held": tonnes(lang, held),
        "forwarded": tonnes(lang, forwarded),
        "raw": {"utilised": float(utilised), "held": float(held), "forwarded": float(forwarded)},
        "intermediary": held > 0 or forwarded > 0,
    }


_ALLOCATED = ("utilised_t", "held_t", "forwarded_t")


def _partners(lang: str, rows: list[tuple[flowmap.Place, FlowSum]]) -> list[dict[str, Any]]:
    return [{"name": _name(lang, p.name_zh, p.name_en), "tonnes": tonnes(lang, s.tonnes)} for p, s in rows]


def _rate_block(lang: str, report: RateReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    reference = report.target if report.target is not None else None
    ref_year = report.year
    if reference is None and report.next_target is not None:
        reference, ref_year = report.next_target.value, report.next_target.year
    cls = flowmap.rate_class(report.rate, reference)
    return {
        "rate": pct(report.rate),
        "target": pct(reference) if reference is not None else "–",
        "target_year": ref_year,
        "cls": cls.value,
        "cls_label": class_label(lang, cls),
        "generated": tonnes(lang, report.generated_t),
        "utilised": tonnes(lang, report.utilised_t),
        "manifest": tonnes(lang, report.manifest_utilised_t),
        "categories": ", ".join(report.categories),
        "declarations": report.declarations,
    }


def _details(request: Request, lang: str, context: dict[str, Any]) -> Response:
    return render(request, "map_details.html", context, lang=lang, block="details")


def _place_context(
    session: Session, principal: Principal, lang: str, f: FlowFilter, kind: str, key: str
) -> dict[str, Any]:
    flows = flowmap.place_flows(session=session, principal=principal, f=f, kind=kind, key=key)
    return {
        "outgoing": _side(lang, flows.outgoing),
        "incoming": _side(lang, flows.incoming),
        "within": _side(lang, flows.within),
        # Received from elsewhere or from within: what became of it here.
        "allocated": _allocated(lang, flows.incoming, flows.within),
        "to": _partners(lang, flows.to),
        "from_": _partners(lang, flows.from_),
        "f": f,
        "detail_query": _query(f),
        "back": "/map?" + _query(f),
    }


@router.get("/map/details/region/{adcode}", name="map_region_details")
def region_details(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    adcode: CodePath,
    year: YearQuery = None,
    category: TextQuery = None,
    route: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """A region opened on the map: its rate against the target (where it is the user's to read) and its flows."""
    code, name_zh, name_en, level = flowmap.region_info(session=session, adcode=adcode)
    f, _ = _filter(session, principal, year, category, route)
    report = flowmap.scope_rate(session=session, principal=principal, year=f.year, region=code)
    zoomable = report is not None and level != RegionLevel.county.value
    context = {
        "kind": "region",
        "title": _name(lang, name_zh, name_en),
        "code": code,
        "rate": _rate_block(lang, report),
        "select": f"region:{code}",
        "audit_href": "/audit?" + urlencode({"region": code, "year": f.year}),
        "batches_href": "/batches?" + urlencode({"year": f.year, "region": code}),
        "zoom_href": "/map?" + urlencode({**f.query(), "region": code}) if zoomable else None,
        **_place_context(session, principal, lang, f, "region", code),
    }
    return _details(request, lang, context)


@router.get("/map/details/park/{park_id}", name="map_park_details")
def park_details(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    park_id: Id,
    year: YearQuery = None,
    category: TextQuery = None,
    route: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """A park opened on the map: level, transformation, its rate (where readable) and the flows in, out and within."""
    park = directory.get_park(session=session, park_id=park_id)
    f, _ = _filter(session, principal, year, category, route)
    report = flowmap.scope_rate(session=session, principal=principal, year=f.year, park=park_id)
    context = {
        "kind": "park",
        "title": _name(lang, park.name_zh, park.name_en),
        "park": park,
        "rate": _rate_block(lang, report),
        "select": f"park:{park_id}",
        "page_href": f"/parks/{park_id}",
        "batches_href": "/batches?" + urlencode({"year": f.year, "park": park_id}),
        "zoom_href": "/map?" + urlencode({**f.query(), "park": park_id}),
        **_place_context(session, principal, lang, f, "park", str(park_id)),
    }
    return _details(request, lang, context)


@router.get("/map/details/enterprise/{enterprise_id}", name="map_enterprise_details")
def enterprise_details(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    enterprise_id: Id,
    year: YearQuery = None,
    category: TextQuery = None,
    route: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """An enterprise opened on the map: roles, place, its rate (its own data only) and its flows in the filter."""
    info = flowmap.enterprise_info(session=session, principal=principal, enterprise_id=enterprise_id)
    f, _ = _filter(session, principal, year, category, route)
    report = (
        flowmap.scope_rate(session=session, principal=principal, year=f.year, enterprise=enterprise_id)
        if info.readable
        else None
    )
    context = {
        "kind": "enterprise",
        "title": _name(lang, info.name_zh, info.name_en),
        "info": info,
        "roles": [translate(lang, f"map.erole.{r}") for r in info.roles],
        "park_name": _name(lang, info.park[1], info.park[2]) if info.park else None,
        "prefecture_name": _name(lang, info.prefecture[1], info.prefecture[2]) if info.prefecture else None,
        "rate": _rate_block(lang, report),
        "select": f"enterprise:{enterprise_id}",
        "page_href": f"/enterprises/{enterprise_id}" if info.readable else None,
        "batches_href": "/batches?" + urlencode({"year": f.year, "party": enterprise_id}),
        **_place_context(session, principal, lang, f, "enterprise", str(enterprise_id)),
    }
    return _details(request, lang, context)


@router.get("/map/details/flow", name="map_flow_details")
def flow_details(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    from_: Annotated[str | None, Query(alias="from", max_length=16)] = None,
    to: Annotated[str | None, Query(max_length=16)] = None,
    level: Annotated[str, Query(max_length=12)] = "auto",
    year: YearQuery = None,
    category: TextQuery = None,
    route: Annotated[str | None, Query(max_length=32)] = None,
    region: TextQuery = None,
    park: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    """A flow opened on the map: tonnes by category and route, and the enterprise pairs behind it.

    Without both ends (or with the level left to the map), the map's own choice: its largest flow, at its level.
    """
    f, _ = _filter(session, principal, year, category, route, region, _park_id(park))
    if from_ is None or to is None or level == "auto":
        layer = flowmap.flow_layer(session=session, principal=principal, f=f, level=level)
        if from_ is None or to is None:
            if not layer.flows:
                raise NotFound("pages.map.no_received_batches", field="year", year=f.year)
            from_, to = layer.flows[0].origin.key, layer.flows[0].destination.key
        level = layer.level
    d = flowmap.flow_detail(session=session, principal=principal, f=f, level=level, origin=from_, destination=to)
    by = [
        {
            "category": s.origin,
            "category_name": _name(lang, *d.categories.get(str(s.origin), ("", None))),
            "route": translate(lang, f"map.route.{s.destination}"),
            "tonnes": tonnes(lang, s.tonnes),
            "share": pct(float(s.tonnes / d.total.tonnes)) if d.total.tonnes else "–",
        }
        for s in d.by_category_route
    ]
    pairs = [
        {
            "from": _name(lang, a.name_zh, a.name_en),
            "to": _name(lang, b.name_zh, b.name_en),
            "tonnes": tonnes(lang, s.tonnes),
            "batches": s.batches,
            "href": "/map/details/flow?" + _query(f, level="enterprise", **{"from": a.key, "to": b.key}),
        }
        for a, b, s in d.pairs
    ]
    enterprise_level = d.level == "enterprise"
    batches_query: dict[str, Any] = {"year": f.year, "category": f.category, "route": f.route}
    if enterprise_level:
        batches_query.update({"shipper": d.origin.key, "receiver": d.destination.key})
    else:
        batches_query.update({"shipper_region": d.origin.key, "receiver_region": d.destination.key})
    context = {
        "kind": "flow",
        "title": translate(
            lang,
            "map.details.flow_title",
            origin=_name(lang, d.origin.name_zh, d.origin.name_en),
            destination=_name(lang, d.destination.name_zh, d.destination.name_en),
        ),
        "d": d,
        "total": _side(lang, d.total),
        "utilised": tonnes(lang, d.total.utilised_t),
        "allocated": _allocated(lang, d.total),
        "by": by,
        "pairs": pairs if not enterprise_level else [],
        "more_pairs": d.more_pairs if not enterprise_level else 0,
        "select": f"flow:{d.origin.key}>{d.destination.key}",
        "f": f,
        "back": "/map?" + _query(f),
        "batches_href": "/batches?" + urlencode({k: v for k, v in batches_query.items() if v}),
        "origin_href": (
            f"/map/details/enterprise/{d.origin.key}?{_query(f)}"
            if enterprise_level
            else f"/map/details/region/{d.origin.key}?{_query(f)}"
            if d.origin.key
            else None
        ),
        "destination_href": (
            f"/map/details/enterprise/{d.destination.key}?{_query(f)}"
            if enterprise_level
            else f"/map/details/region/{d.destination.key}?{_query(f)}"
            if d.destination.key
            else None
        ),
    }
    return _details(request, lang, context)


# ---------------------------------------------------------------------------------------------------------------
# Sankey

# Node prefixes of the two diagrams: left (origin), middle (intermediary), right (final end).
SANKEY_PREFIXES: dict[str, tuple[str, str, str]] = {"route": ("c", "v", "r"), "place": ("o", "m", "d")}


def _sankey_label(lang: str, data: SankeyData, which: str, node: str) -> str:
    kind, key = node.split(":", 1)
    match kind:
        case "c":
            return _name(lang, *data.categories.get(key, (key, None)))
        case "v":
            return translate(lang, "flowmap.sankey.via_route", route=translate(lang, f"map.route.{key}"))
        case "r":
            return translate(lang, f"map.route.{key}")
        case "m":
            return translate(lang, "flowmap.sankey.via_place", place=_region_label(lang, data, key))
    return _region_label(lang, data, key)


def sankey_chart(lang: str, data: SankeyData, which: str) -> dict[str, Any]:
    """Nodes (with their column and held tonnes) and links of one diagram for app/static/sankey.js; a node's name
    is an id, its label the words. Tonnes through an intermediary are two links, origin -> middle -> end."""
    rows = data.by_route if which == "route" else data.by_place
    nodes, links = graph(rows, SANKEY_PREFIXES[which])
    # Without any intermediary the diagram has two columns, not an empty one in the middle.
    columns = 3 if any(n.depth == 1 for n in nodes) else 2
    return {
        "nodes": [
            {
                "name": n.name,
                "label": _sankey_label(lang, data, which, n.name),
                "depth": min(n.depth, columns - 1),
                "in": round(n.tonnes_in, 3),
                "out": round(n.tonnes_out, 3),
                "held": round(n.held_t, 3),
            }
            for n in nodes
        ],
        "links": [{"source": a, "target": b, "value": round(v, 3)} for (a, b), v in links.items()],
    }


def _sankey_node(lang: str, data: SankeyData, prefixes: tuple[str, str, str], position: str, key: str) -> str:
    """A node of a Sankey path by its position (origin, via, end), in the reader's words, for the downloads."""
    prefix = prefixes[("origin", "via", "end").index(position)]
    return _sankey_label(lang, data, "", f"{prefix}:{key}")


def _region_label(lang: str, data: SankeyData, adcode: str) -> str:
    if not adcode:
        return translate(lang, "sankey.elsewhere")
    return _name(lang, *data.regions.get(adcode, (adcode, None)))


def _sankey_rows(lang: str, data: SankeyData, which: str) -> list[dict[str, Any]]:
    """One row per path (origin, intermediary or straight, end or held there): the rows add up to the total."""
    left, middle, right = SANKEY_PREFIXES[which]
    rows = data.by_route if which == "route" else data.by_place
    whole = data.total.tonnes
    out = []
    for p in rows:
        out.append(
            {
                "source": _sankey_label(lang, data, which, f"{left}:{p.origin}"),
                "via": _sankey_label(lang, data, which, f"{middle}:{p.via}") if p.via is not None else None,
                "target": _sankey_label(lang, data, which, f"{right}:{p.end}") if p.end is not None else None,
                "code": p.origin if which == "route" else None,
                "tonnes": tonnes(lang, p.tonnes),
                "utilised": tonnes(lang, p.utilised_t),
                "raw": float(p.tonnes),
                "batches": p.batches,
                "share": pct(float(p.tonnes / whole)) if whole else "–",
            }
        )
    return out


@router.get("/sankey", name="sankey")
def sankey_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    year: YearQuery = None,
    region: TextQuery = None,
    category: TextQuery = None,
    park: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    """A year's tonnes followed to their end: category and prefecture, through intermediaries, to the final step."""
    chosen, years = _chosen_year(request, session, principal, year)
    data = sankey(
        session=session,
        principal=principal,
        year=chosen,
        region=region or None,
        category=category,
        park=_park_id(park),
    )
    if fmt := downloads.wanted(request):
        which = request.query_params.get("table", "route")
        if which not in SANKEY_PREFIXES:
            raise InvalidInput("pages.exports.table", field="table", allowed=", ".join(SANKEY_PREFIXES))
        table = exports.sankey_table(
            chosen,
            which,
            data.by_route if which == "route" else data.by_place,
            partial(_sankey_node, lang, data, SANKEY_PREFIXES[which]),
        )
        return downloads.response(table, lang, fmt, f"sankey-{which}-{chosen}")
    f = data.filter
    scope_region = f.region
    if scope_region:
        names = region_names(session, [scope_region])
        scope_name = _name(lang, *names.get(scope_region, (scope_region, None)))
    else:
        scope_name = translate(lang, f"sankey.scope.{principal.role.value}")
    labels = {key: translate(lang, f"flowmap.sankey.js.{key}") for key in ("in", "out", "held")}
    t = data.total
    context = {
        "year": chosen,
        "years": years,
        "f": f,
        "region": scope_region or "",
        "default_region": default_region(principal) or "",
        "scope_name": scope_name,
        "region_options": region_options(session, principal, lang),
        "park_options": park_options(session, principal, lang),
        "category_options": _category_options(session, lang),
        "data": data,
        "total": tonnes(lang, t.tonnes),
        "figures": {
            "final": tonnes(lang, t.final_t),
            "utilised": tonnes(lang, t.utilised_t),
            "held": tonnes(lang, t.held_t),
            "via": tonnes(lang, t.via_t),
        },
        "charts": {
            which: json.dumps(
                sankey_chart(lang, data, which), ensure_ascii=False, default=json_default, allow_nan=False
            )
            for which in SANKEY_PREFIXES
        },
        "rows": {which: _sankey_rows(lang, data, which) for which in SANKEY_PREFIXES},
        "map_href": "/map?" + _query(f),
        "downloads": {which: downloads.links(request, table=which) for which in SANKEY_PREFIXES},
        "labels": json.dumps(labels, ensure_ascii=False, default=json_default),
    }
    return render(request, "sankey.html", context, lang=lang, block="sankey_view")
