"""The audit workspace of bureau auditors: drill-down, flags queue, period locks, corrections and exports."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from app import downloads
from app import years as year_memory
from app.api_revisions import tolerance_of
from app.auth import PrincipalDep, utcnow
from app.deps import PrimarySessionDep, SessionDep
from app.errors import status_for
from app.i18n import LanguageDep, local_name, translate
from app.params import Id
from app.web import beijing, render
from flows.access import locks
from flows.access.scope import resolve_scope
from flows.battery import audit as battery_audit
from flows.kernel.bounds import MAX_ID, MAX_OFFSET
from flows.kernel.clock import CST
from flows.kernel.errors import DomainError, InvalidInput
from flows.kernel.numbers import number_style
from flows.kernel.principal import Principal
from flows.pages import asks as ask_pages
from flows.pages import audit as audit_workspace
from flows.pages import audit_export, exports, flagwork
from flows.pages import revisions as revision_pages
from flows.pages.audit import AuditRow, ScopeArgs
from flows.pages.dashboard import declared_years
from flows.pages.years import choose
from flows.waste import lock_checklist
from flows.waste.flag_work import WorkFilters
from flows.waste.flags import Flag, FlagKind
from models.quantity import json_default

router = APIRouter(include_in_schema=False)

Year = Annotated[int | None, Query(ge=2000, le=2100)]
Region = Annotated[str | None, Query(max_length=6)]
ParkId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
EnterpriseId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]

FLAGS_PER_PAGE = 50
ROWS_PER_PAGE = 100
BATCHES_PER_PAGE = 50
FLOWS_LAYER = "/map/layers/flows.geojson"  # drawn by the map pages; the export panel links to it
TABS = (
    ("audit", "/audit"),
    ("flags", "/audit/flags"),
    ("locks", "/audit/locks"),
    ("corrections", "/audit/corrections"),
    ("asks", "/audit/asks"),
)


# ---------------------------------------------------------------------------------------------------------------
# Formatting and links


def link(path: str, *parts: Mapping[str, Any] | None, **params: Any) -> str:
    """A path with the query parameters of the given mappings and keywords (None and empty values left out)."""
    merged: dict[str, Any] = {}
    for part in (*parts, params):
        merged.update(part or {})
    query = urlencode({k: v for k, v in merged.items() if v is not None and v != ""})
    return f"{path}?{query}" if query else path


def _tools() -> dict[str, Any]:
    return {"link": link, "local_time": beijing, "tabs": TABS}


def _year(session: Any, principal: Principal, year: int | None, remembered: int | None = None) -> tuple[int, list[int]]:
    years = declared_years(session=session, principal=principal)
    # The URL's year, else the one chosen on another page (where this scope declared it), else the latest declared.
    chosen = choose(years, year, remembered, years[0] if years else utcnow().astimezone(CST).year)
    return chosen, years


def _args(
    region: str | None,
    park: int | None,
    enterprise: int | None,
    outside_parks: bool = False,
    category: str | None = None,
) -> ScopeArgs:
    return ScopeArgs(
        region=region.strip() if region else None,
        park=park,
        enterprise=enterprise,
        outside_parks=outside_parks,
        category=category.strip().upper() if category else None,
    )


def _name(lang: str, zh: str | None, en: str | None, fallback: str = "") -> str:
    return local_name(lang, zh or fallback, en)


# ---------------------------------------------------------------------------------------------------------------
# The drill-down


def _row_view(
    row: AuditRow, lang: str, year: int, categories: str, reference: tuple[float, int] | None
) -> dict[str, Any]:
    f = row.figures
    scope = row.scope.params() if row.scope else None

    def rows_link(kind: str) -> str | None:
        # The rows page takes the figure's own category set, so that its sums are the figure's.
        return link("/audit/rows", scope, kind=kind, year=year, categories=categories) if scope else None

    name = row.name_zh or row.key or ""
    if row.kind == "park" and row.key == audit_workspace.OUTSIDE:
        name_text = translate(lang, "audit.outside_parks")
    elif row.kind == "category":
        name_text = f"{row.key} {_name(lang, row.name_zh, row.name_en, row.key or '')}"
    else:
        name_text = _name(lang, row.name_zh, row.name_en, name)
    return {
        "row": row,
        "key": row.key,
        "name": name_text,
        "drill": link("/audit", row.drill.params(), year=year) if row.drill else None,
        "page": (
            f"/enterprises/{row.key}"
            if row.kind == "enterprise"
            else f"/parks/{row.key}"
            if row.kind == "park" and row.key != audit_workspace.OUTSIDE
            else None
        ),
        "declarations": rows_link("declarations"),
        "batches": rows_link("batches"),
        "flags": link("/audit/flags", scope, year=year) if scope else None,
        "standing": audit_workspace.standing(f.rate, reference),
    }


@router.get("/audit", name="audit")
def audit_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    year: Year = None,
    region: Region = None,
    park: ParkId = None,
    enterprise: EnterpriseId = None,
    offset: Offset = 0,
) -> Response:
    """The drill-down: province, prefecture, park or county, enterprise and its batches, every figure linked."""
    audit_workspace.require_auditor(principal)
    chosen, years = _year(session, principal, year, year_memory.remembered(request))
    d = audit_workspace.drill_down(
        session=session,
        principal=principal,
        year=chosen,
        args=_args(region, park, enterprise),
        batch_offset=offset,
        batch_limit=BATCHES_PER_PAGE,
    )
    categories = ",".join(d.report.categories)
    reference = audit_workspace.reference_target(d.report)
    scope_params = d.args.params()
    context = {
        **_tools(),
        "d": d,
        "year": chosen,
        "years": years,
        "scope_name": _name(lang, d.scope.name_zh, d.scope.name_en, d.scope.key),
        "scope_params": scope_params,
        "reference": reference,
        "total": _row_view(d.total, lang, chosen, categories, reference),
        "tables": [
            {"kind": t.kind, "rows": [_row_view(r, lang, chosen, categories, reference) for r in t.rows]}
            for t in d.tables
        ],
        "crumbs": [
            {"name": _name(lang, c.name_zh, c.name_en, c.key), "href": link("/audit", c.args.params(), year=chosen)}
            for c in d.crumbs
        ],
        "exports": _exports(d.scope.kind, scope_params, chosen),
        "current_tab": "audit",
    }
    return render(request, "audit.html", context, lang=lang)


def _exports(kind: str, scope: dict[str, str], year: int) -> list[dict[str, str]]:
    items = [
        {"key": "xlsx", "href": link("/audit/export.xlsx", scope, year=year), "type": "XLSX"},
        {"key": "csv", "href": link("/audit/export.csv", scope, year=year), "type": "CSV"},
    ]
    if kind in ("province", "prefecture", "county"):
        items.append(
            {"key": "regions", "href": link("/audit/layers/regions.geojson", scope, year=year), "type": "GeoJSON"}
        )
    if kind != "enterprise":
        items.append({"key": "parks", "href": link("/audit/layers/parks.geojson", scope, year=year), "type": "GeoJSON"})
    items.append(
        {"key": "enterprises", "href": link("/audit/layers/enterprises.geojson", scope, year=year), "type": "GeoJSON"}
    )
    if kind != "enterprise":  # the flow layer filters by region or park
        items.append({"key": "flows", "href": link(FLOWS_LAYER, scope, year=year), "type": "GeoJSON"})
    else:
        sheet = link(f"/enterprises/{scope['enterprise']}/inspection.pdf", year=year)
        items.insert(0, {"key": "inspection", "href": sheet, "type": "PDF"})
    return items


# ---------------------------------------------------------------------------------------------------------------
# The rows behind a figure


@router.get("/audit/rows", name="audit_rows")
def rows_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    kind: Annotated[str, Query(max_length=16)] = "declarations",
    year: Year = None,
    region: Region = None,
    park: ParkId = None,
    enterprise: EnterpriseId = None,
    outside_parks: bool = False,
    category: Annotated[str | None, Query(max_length=9)] = None,
    categories: Annotated[str | None, Query(max_length=400)] = None,
    offset: Offset = 0,
) -> Response:
    """The declarations summed into a figure, or the manifests summed into the bottom-up figure, with their sums."""
    audit_workspace.require_auditor(principal)
    chosen, _years = _year(session, principal, year)
    args = _args(region, park, enterprise, outside_parks, category)
    page = audit_workspace.figure_rows(
        session=session,
        principal=principal,
        kind=kind,
        year=chosen,
        args=args,
        categories=categories.split(",") if categories else None,
        offset=offset,
        limit=ROWS_PER_PAGE,
    )
    here = {**args.params(), "kind": page.kind, "year": chosen, "categories": ",".join(page.categories)}
    if args.outside_parks:
        scope_name = f"{_name(lang, page.scope.name_zh, page.scope.name_en, page.scope.key)} · " + translate(
            lang, "audit.outside_parks"
        )
    else:
        scope_name = _name(lang, page.scope.name_zh, page.scope.name_en, page.scope.key)
    if args.category:
        scope_name += f" · {args.category}"
    context = {
        **_tools(),
        "p": page,
        "year": chosen,
        "scope_name": scope_name,
        "back": link("/audit", audit_workspace.args_of(page.scope).params(), year=chosen),
        "other": link("/audit/rows", here, kind="batches" if page.kind == "declarations" else "declarations"),
        "prev": link("/audit/rows", here, offset=max(page.offset - page.limit, 0)) if page.offset > 0 else None,
        "next": link("/audit/rows", here, offset=page.offset + page.limit)
        if page.offset + page.limit < page.count
        else None,
        "current_tab": "audit",
        "asks": ask_pages.open_asks(session=session, table="declaration", row_ids=[d.id for d in page.declarations]),
    }
    return render(request, "audit_rows.html", context, lang=lang)


# ---------------------------------------------------------------------------------------------------------------
# The flags queue


def _subject_link(flag: Flag, year: int | None) -> dict[str, str] | None:
    what, _, ident = flag.subject.partition("/")
    enterprise = flag.enterprise_ids[0] if flag.enterprise_ids else None
    match what:
        case "manifest":
            return {"href": f"/batches/{ident}", "text": str(flag.evidence.get("number") or ident)}
        case "declaration" if enterprise is not None:
            href = link("/audit", enterprise=enterprise, year=flag.year)
            return {"href": href, "text": f"{flag.evidence.get('category', '')} · {flag.year}"}
        case "enterprise" if enterprise is not None:
            return {
                "href": link("/audit", enterprise=enterprise, year=flag.year),
                "text": str(flag.evidence.get("category", "")),
            }
        case "prefecture" | "county" | "province":
            return {"href": link("/audit", region=ident, year=flag.year), "text": ident}
        case "park":
            return {"href": link("/audit", park=ident, year=flag.year), "text": ident}
    return None


@router.get("/audit/flags", name="audit_flags")
def flags_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    tab: Annotated[str, Query(pattern="^(waste|battery)$")] = "waste",
    kind: Annotated[str | None, Query(max_length=40)] = None,
    year: Year = None,
    region: Region = None,
    park: ParkId = None,
    enterprise: Annotated[str | None, Query(max_length=100)] = None,
    outside_parks: bool = False,
    category: Annotated[str | None, Query(max_length=9)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    assignee: Annotated[str | None, Query(max_length=12, pattern="^[0-9]*$")] = None,
    sort: Annotated[str | None, Query(pattern="^(-?size)?$")] = None,
    offset: Offset = 0,
) -> Response:
    """The flags of a scope with their work, filtered by kind, status, region, year, enterprise and assignee."""
    audit_workspace.require_auditor(principal)
    chosen, years = _year(session, principal, year, year_memory.remembered(request))
    # The enterprise field takes a credit code or id, or else part of a name.
    name = enterprise.strip() if enterprise and not _is_enterprise_ref(enterprise) else None
    enterprise_id = None if name else _enterprise_ref(session, principal, enterprise)
    # An enterprise named in the filter is the scope; the region select only narrows when none is.
    args = _args(
        None if enterprise_id else region, None if enterprise_id else park, enterprise_id, outside_parks, category
    )
    kind = kind or None
    status, sort = status or None, sort or None
    assignee_id = int(assignee) if assignee else None
    filters = {**args.params(), "year": chosen, "kind": kind, "status": status, "assignee": assignee_id, "sort": sort}
    if name:
        filters["enterprise"] = name
    context: dict[str, Any] = {
        **_tools(),
        "tab": tab,
        "year": chosen,
        "years": years,
        "kind": kind,
        "region": args.region or "",
        "enterprise": enterprise or "",
        "regions": [
            {"adcode": a, "name": _name(lang, zh, en, a)}
            for a, zh, en in audit_workspace.scope_regions(session=session, principal=principal)
        ],
        "current_tab": "flags",
        "tab_links": {
            "waste": link("/audit/flags", filters, kind=None),
            "battery": link("/audit/flags", filters, kind=None, tab="battery"),
        },
    }
    fmt = downloads.wanted(request)
    context["downloads"] = downloads.links(request)
    if tab == "battery":
        if args.park is not None or args.outside_parks or args.category:
            raise InvalidInput("pages.audit.battery_flags_filters", field="park")
        report = battery_audit.chain_flags(
            session=session,
            principal=principal,
            now=utcnow(),
            year=chosen,
            region=args.region,
            kinds=kind,
            enterprise_id=enterprise_id,
            offset=0 if fmt else offset,
            limit=exports.ROW_CAP if fmt else FLAGS_PER_PAGE,
        )
        if fmt:
            table = exports.battery_flags_table(report.data, report.count, lang)
            return downloads.response(table, lang, fmt, f"battery-flags-{chosen}")
        count, counts = report.count, report.counts
        context.update(
            kinds=[k.value for k in battery_audit.ChainFlagKind],
            battery=report.data,
            count=count,
            counts=counts,
            scope_name=None,
        )
        here = {**filters, "tab": "battery"}
    else:
        queue = flagwork.work_queue(
            session=session,
            principal=principal,
            year=chosen,
            args=args,
            kinds=kind,
            filters=WorkFilters(status=status, assignee_id=assignee_id, name=name, sort=sort),
            offset=0 if fmt else offset,
            limit=None if fmt else FLAGS_PER_PAGE,
        )
        if fmt:
            return downloads.response(flagwork.work_table(queue, lang), lang, fmt, f"flags-{chosen}")
        count, counts = queue.page.count, queue.page.counts
        context.update(
            kinds=[k.value for k in FlagKind],
            flags=[
                {
                    "flag": f,
                    "subject": _subject_link(f, chosen),
                    "enterprises": [
                        {"id": e, "name": _name(lang, *queue.names.get(e, (str(e), None)))} for e in f.enterprise_ids
                    ],
                }
                for f in queue.page.data
            ],
            count=count,
            counts=counts,
            status=status,
            status_counts=queue.page.status_counts,
            status_links={s: link("/audit/flags", filters, status=s, offset=None) for s in queue.page.status_counts},
            assignee=assignee_id,
            assignees=queue.assignees,
            sort=sort,
            size_link=link("/audit/flags", filters, sort=None if sort == "size" else "size"),
            here=link("/audit/flags", filters, offset=offset or None),
            done=request.query_params.get("done"),
            scope_name=_name(lang, queue.scope.name_zh, queue.scope.name_en, queue.scope.key),
        )
        here = filters
    context["kind_links"] = {k: link("/audit/flags", here, kind=k) for k in counts}
    context["all_kinds_link"] = link("/audit/flags", here, kind=None)
    context["offset"] = offset
    context["shown"] = min(count - offset, FLAGS_PER_PAGE) if count > offset else 0
    context["prev"] = link("/audit/flags", here, offset=max(offset - FLAGS_PER_PAGE, 0)) if offset > 0 else None
    context["next"] = (
        link("/audit/flags", here, offset=offset + FLAGS_PER_PAGE) if offset + FLAGS_PER_PAGE < count else None
    )
    return render(request, "audit_flags.html", context, lang=lang)


def _is_enterprise_ref(text: str) -> bool:
    """A credit code (18 characters of letters and digits) or an id, rather than part of a name."""
    ref = text.strip()
    return ref.isdigit() or (len(ref) == 18 and ref.isascii() and ref.isalnum())


def _enterprise_ref(session: Any, principal: Principal, ref: str | None) -> int | None:
    """An enterprise named by id or credit code in a filter, checked to be readable (404 otherwise)."""
    if not ref or not ref.strip():
        return None
    return int(resolve_scope(session=session, principal=principal, enterprise=ref.strip()).ref.key)


# ---------------------------------------------------------------------------------------------------------------
# Locks


def _locks_context(session: Any, principal: Principal, lang: str, year: int, **extra: Any) -> dict[str, Any]:
    return {
        **_tools(),
        "locks": audit_workspace.lock_lines(session=session, principal=principal),
        "regions": [
            {"adcode": a, "name": _name(lang, zh, en, a)}
            for a, zh, en in audit_workspace.scope_regions(session=session, principal=principal)
        ],
        "year": year,
        "current_tab": "locks",
        **extra,
    }


@router.get("/audit/locks", name="audit_locks")
def locks_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    done: Annotated[str | None, Query(pattern="^(locked|unlocked)$")] = None,
    region: Region = None,
    year: Year = None,
) -> Response:
    """The locks in scope (who locked, when), the form to lock a year, and unlock with confirmation."""
    audit_workspace.require_auditor(principal)
    chosen, _years = _year(session, principal, year)
    message = None
    if done and region and year:
        names = {
            a: _name(lang, zh, en, a)
            for a, zh, en in audit_workspace.scope_regions(session=session, principal=principal)
        }
        message = translate(lang, f"audit.locks.{done}", region=names.get(region, region), year=year)
    context = _locks_context(session, principal, lang, chosen, message=message, chosen_region=region)
    return render(request, "audit_locks.html", context, lang=lang)


def _form_failure(
    request: Request, session: Any, principal: Principal, lang: str, exc: DomainError, **extra: Any
) -> Response:
    session.rollback()
    year = extra.pop("year", None) or _year(session, principal, None)[0]
    if exc.field == "confirm":
        # Locking unconfirmed: the checklist again, beside the refusal.
        extra["checklist"] = lock_checklist.lock_checklist(
            session=session, principal=principal, adcode=extra["chosen_region"], year=year
        )
    context = _locks_context(session, principal, lang, year, problem=exc, problem_field=exc.field, **extra)
    return render(request, "audit_locks.html", context, lang=lang, status_code=status_for(exc))


@router.get("/audit/locks/checklist", name="audit_lock_checklist")
def lock_checklist_page(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    region_adcode: Annotated[str, Query(max_length=6)],
    year: Annotated[int, Query(ge=2000, le=2100)],
) -> Response:
    """Before a year locks: what is still open in it, and the confirmation that locks it."""
    audit_workspace.require_auditor(principal)
    adcode = region_adcode.strip()
    try:
        checklist = lock_checklist.lock_checklist(session=session, principal=principal, adcode=adcode, year=year)
    except DomainError as exc:
        return _form_failure(request, session, principal, lang, exc, year=year, chosen_region=adcode)
    context = _locks_context(session, principal, lang, year, checklist=checklist, chosen_region=adcode)
    return render(request, "audit_locks.html", context, lang=lang)


def _change_lock(
    request: Request,
    session: Any,
    principal: Principal,
    lang: str,
    region_adcode: str,
    year: int,
    *,
    lock: bool,
    confirm: bool = False,
) -> Response:
    """Lock or unlock a year for a region, then back to the list saying so (or the form with the refusal)."""
    audit_workspace.require_auditor(principal)
    adcode = region_adcode.strip()
    try:
        if lock:
            lock_checklist.lock_year(
                session=session, principal=principal, adcode=adcode, year=year, confirm=confirm, now=utcnow()
            )
        else:
            locks.unlock_period(session=session, principal=principal, adcode=adcode, year=year, now=utcnow())
        session.commit()
    except DomainError as exc:
        return _form_failure(request, session, principal, lang, exc, year=year, chosen_region=adcode)
    done = "locked" if lock else "unlocked"
    return RedirectResponse(link("/audit/locks", done=done, region=adcode, year=year), status_code=303)


@router.post("/audit/locks", name="audit_lock")
def lock_year(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    region_adcode: Annotated[str, Form(max_length=6)],
    year: Annotated[int, Form(ge=2000, le=2100)],
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Lock a reporting year for a region, its checklist confirmed; direct writes to it are refused from now on."""
    return _change_lock(request, session, principal, lang, region_adcode, year, lock=True, confirm=confirm == "true")


@router.post("/audit/locks/unlock", name="audit_unlock")
def unlock_year(
    request: Request,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    region_adcode: Annotated[str, Form(max_length=6)],
    year: Annotated[int, Form(ge=2000, le=2100)],
) -> Response:
    """Lift a lock; the year is writable again."""
    return _change_lock(request, session, principal, lang, region_adcode, year, lock=False)


# ---------------------------------------------------------------------------------------------------------------
# Corrections


def _corrections_context(
    request: Request, session: Any, principal: Principal, lang: str, **extra: Any
) -> dict[str, Any]:
    lines = audit_workspace.correction_lines(session=session, principal=principal)
    support = revision_pages.corrections_support(
        session=session,
        principal=principal,
        correction_ids=[c.id for c in lines],
        tolerance=tolerance_of(request.app.state.settings),
        now=utcnow(),
    )
    # The previews applied each correction in a savepoint; nothing of them may reach a commit.
    session.rollback()
    return {
        **_tools(),
        "support": support,
        "pending": [c for c in lines if c.status == "pending"],
        "decided": [c for c in lines if c.status != "pending"],
        "fmt": partial(_value, lang),
        "current_tab": "corrections",
        **extra,
    }


def _value(lang: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return number_style(lang).tonnes(value)
    return json.dumps(value, ensure_ascii=False, default=json_default) if isinstance(value, dict | list) else str(value)


@router.get("/audit/corrections", name="audit_corrections")
def corrections_page(
    request: Request,
    session: PrimarySessionDep,  # the previews write (rolled back): never on a replica
    lang: LanguageDep,
    principal: PrincipalDep,
    done: Annotated[str | None, Query(pattern="^(approved|rejected)$")] = None,
    id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,  # noqa: A002 - the correction's id, as the message names it
) -> Response:
    """Pending correction requests with the values now and asked for; approve or reject; the decided ones."""
    audit_workspace.require_auditor(principal)
    message = translate(lang, f"audit.corrections.{done}", id=id) if done and id else None
    return render(
        request,
        "audit_corrections.html",
        _corrections_context(request, session, principal, lang, message=message),
        lang=lang,
    )


def _decide(
    request: Request, session: Any, lang: str, principal: Principal, correction_id: int, approve: bool, note: str
) -> Response:
    audit_workspace.require_auditor(principal)
    try:
        audit_workspace.decide(
            session=session, principal=principal, correction_id=correction_id, approve=approve, note=note, now=utcnow()
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        context = _corrections_context(
            request, session, principal, lang, problem=exc, problem_field=exc.field, problem_id=correction_id, note=note
        )
        return render(request, "audit_corrections.html", context, lang=lang, status_code=status_for(exc))
    done = "approved" if approve else "rejected"
    return RedirectResponse(link("/audit/corrections", done=done, id=correction_id), status_code=303)


@router.post("/audit/corrections/{correction_id}/approve", name="audit_approve")
def approve_correction(
    request: Request,
    correction_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Approve a correction: it is applied now."""
    return _decide(request, session, lang, principal, correction_id, True, note)


@router.post("/audit/corrections/{correction_id}/reject", name="audit_reject")
def reject_correction(
    request: Request,
    correction_id: Id,
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Reject a correction, saying why; the locked data stays as it was."""
    return _decide(request, session, lang, principal, correction_id, False, note)


# ---------------------------------------------------------------------------------------------------------------
# Exports


def _filename(report: audit_export.AuditReport, extension: str) -> str:
    scope = report.drill.scope
    return f"circuflow-audit-{scope.kind}-{scope.key}-{report.drill.year}.{extension}"


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"}


def _report(session: Any, principal: Principal, year: int | None, args: ScopeArgs) -> audit_export.AuditReport:
    audit_workspace.require_auditor(principal)
    chosen, _years = _year(session, principal, year)
    return audit_export.audit_report(session=session, principal=principal, year=chosen, args=args)


def report_file(report: audit_export.AuditReport, fmt: str, lang: str) -> Response:
    """The audit report as a file to save: the formatted workbook, or the breakdown as one CSV table."""
    if fmt == "xlsx":
        body = audit_export.xlsx_bytes(report, lang, partial(translate, lang))
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        body, media = audit_export.csv_bytes(report, lang), "text/csv; charset=utf-8"
    return Response(body, media_type=media, headers=_disposition(_filename(report, fmt)))


@router.get("/audit/export.xlsx", name="audit_export_xlsx")
def export_xlsx(
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    year: Year = None,
    region: Region = None,
    park: ParkId = None,
    enterprise: EnterpriseId = None,
) -> Response:
    """The audit report of the scope and year as a workbook (summary, breakdown, declarations, flags)."""
    return report_file(_report(session, principal, year, _args(region, park, enterprise)), "xlsx", lang)


@router.get("/audit/export.csv", name="audit_export_csv")
def export_csv(
    session: SessionDep,
    lang: LanguageDep,
    principal: PrincipalDep,
    year: Year = None,
    region: Region = None,
    park: ParkId = None,
    enterprise: EnterpriseId = None,
) -> Response:
    """The breakdown of the audit report as one CSV table (UTF-8 with a BOM, for Excel)."""
    return report_file(_report(session, principal, year, _args(region, park, enterprise)), "csv", lang)


def _geojson(data: dict[str, Any]) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False, default=json_default, allow_nan=False),
        media_type="application/geo+json",
    )


LayerFn = Callable[..., dict[str, Any]]


def _layer(fn: LayerFn, session: Any, principal: Principal, year: int | None, args: ScopeArgs) -> Response:
    audit_workspace.require_auditor(principal)
    chosen, _years = _year(session, principal, year)
    return _geojson(fn(session=session, principal=principal, year=chosen, args=args))


@router.get("/audit/layers/regions.geojson", name="audit_layer_regions")
def regions_layer(session: SessionDep, principal: PrincipalDep, year: Year = None, region: Region = None) -> Response:
    """The divisions below the region with rate, target and how the rate stands."""
    return _layer(audit_export.regions_geojson, session, principal, year, _args(region, None, None))


@router.get("/audit/layers/parks.geojson", name="audit_layer_parks")
def parks_layer(
    session: SessionDep, principal: PrincipalDep, year: Year = None, region: Region = None, park: ParkId = None
) -> Response:
    """The parks of the region (or one park) with rate, target and how the rate stands."""
    return _layer(audit_export.parks_geojson, session, principal, year, _args(region, park, None))


@router.get("/audit/layers/enterprises.geojson", name="audit_layer_enterprises")
def enterprises_layer(
    session: SessionDep,
    principal: PrincipalDep,
    year: Year = None,
    region: Region = None,
    park: ParkId = None,
    enterprise: EnterpriseId = None,
) -> Response:
    """The enterprises of the scope as points with their roles and rate."""
    return _layer(audit_export.enterprises_geojson, session, principal, year, _args(region, park, enterprise))
