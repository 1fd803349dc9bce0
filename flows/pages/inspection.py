"""The inspection sheet of one enterprise and year, as an inspector takes it on site (France's VigieDéchets gives
its inspectors the same): identity and licences, flows in and out, capacity use against the licences month by
month, the declaration against the manifests, and the flags with their state.

Every figure is the domain's: flows as the enterprise page counts them (flows.pages.places), the bottom-up figure
and the flags of flows.waste.rates and flows.waste.flags, the capacity rule of the capacity flag. The words come
from the caller (a function from catalogue key to text in the reader's language), as for the printed manifest.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import extract, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.scope import resolve_scope
from flows.kernel.clock import CST, local_date
from flows.kernel.principal import Principal
from flows.pages import places
from flows.pages.audit import require_auditor
from flows.pages.audit_export import enterprise_names, finding_text, flag_states, local
from flows.pages.places import EnterpriseView, FlowRow, Named
from flows.pages.printable import Words, beijing_text, document_font
from flows.waste import flags, rates
from flows.waste.flags import FlagKind
from models import Enterprise, Manifest, WasteCategory
from models.enums import UserRole

MONTHS = tuple(range(1, 13))
ALARM = "#b42318"  # an intake above the licensed capacity


@dataclass(frozen=True)
class CapacityLine:
    """An activity on a category at the enterprise: what it took in each month of the year against its licence."""

    category: Named
    activity: str
    capacity_t: Decimal | None  # the largest licence covering the year (the capacity flag's rule); None: unlicensed
    months: tuple[Decimal, ...]  # tonnes received, January to December

    @property
    def intake_t(self) -> Decimal:
        """Tonnes taken in over the year."""
        return sum(self.months, Decimal(0))

    @property
    def use(self) -> float | None:
        """Intake over capacity (a fraction); None without a capacity."""
        return float(self.intake_t / self.capacity_t) if self.capacity_t else None

    @property
    def exceeded(self) -> bool:
        """Whether the year's intake is above the licensed capacity (as the capacity flag says)."""
        return self.capacity_t is not None and self.intake_t > self.capacity_t


@dataclass(frozen=True)
class ReconLine:
    """One category: the enterprise's declaration beside what the manifests say of it."""

    category: Named
    counted: bool  # one of the categories of the rate's target
    declared: places.DeclarationRow | None
    sent_t: Decimal  # manifests sent that moved: received weight, or dispatched weight while on the road
    manifest_utilised_t: Decimal  # of its own waste, tonnes that ended utilised at a licensed receiver
    received_t: Decimal  # manifests received

    @property
    def gap_t(self) -> Decimal | None:
        """Declared utilisation less the bottom-up figure (the audit's gap); None without a declaration."""
        return None if self.declared is None else self.declared.utilised_t - self.manifest_utilised_t


@dataclass(frozen=True)
class FlagLine:
    """A flag of the enterprise, in words: what kind, what it found, and where it stands."""

    kind: FlagKind
    finding: str
    state: str


@dataclass(frozen=True)
class InspectionSheet:
    """Everything the inspection sheet of an enterprise and year carries."""

    enterprise: EnterpriseView
    year: int
    flows_in: list[FlowRow]
    flows_out: list[FlowRow]
    capacity: list[CapacityLine]
    declarations: list[ReconLine]
    flags: list[FlagLine]


def _monthly_intake(session: Session, enterprise_id: int, year: int) -> dict[tuple[str, str], list[Decimal]]:
    """Tonnes received per category, licence activity and month of dispatch (the month of the reporting year)."""
    b = Manifest
    # The year of a batch is the year of its dispatch (Beijing time): its month is taken from the same date, so that
    # the twelve months add up to the year's intake that the capacity flag compares with the licence.
    rows = (
        sa_select(
            col(b.category_code).label("category_code"),
            rates.route_activity().label("activity"),
            extract("month", local_date(func.coalesce(col(b.dispatched_at), col(b.received_at)))).label("month"),
            col(b.weight_received_t).label("weight_t"),
        )
        .where(
            col(b.receiver_id) == enterprise_id,
            col(b.year) == year,
            col(b.status).in_(rates.RECEIVED_STATUSES),
            col(b.weight_received_t).is_not(None),
        )
        .subquery("intake")
    )
    query = sa_select(rows.c.category_code, rows.c.activity, rows.c.month, func.sum(rows.c.weight_t)).group_by(
        rows.c.category_code, rows.c.activity, rows.c.month
    )
    found: dict[tuple[str, str], list[Decimal]] = {}
    for code, activity, month, tonnes in session.execute(query):
        months = found.setdefault((str(code), str(activity)), [Decimal(0)] * 12)
        months[int(month) - 1] += Decimal(tonnes)
    return found


def _capacity(session: Session, view: EnterpriseView, year: int) -> list[CapacityLine]:
    intake = _monthly_intake(session, view.id, year)
    capacity: dict[tuple[str, str], Decimal] = {}
    names: dict[str, Named] = {}
    for licence in view.licences:
        names[licence.category.key] = licence.category
        if licence.covers_year:
            key = (licence.category.key, licence.activity)
            # Successive licences may overlap a year (a renewal): the larger capacity applies, never their sum.
            capacity[key] = max(capacity.get(key, Decimal(0)), Decimal(licence.capacity_t))
    missing = {code for code, _ in intake} - names.keys()
    names |= _category_names(session, missing)
    return [
        CapacityLine(
            category=names.get(code) or Named(code, code),
            activity=activity,
            capacity_t=capacity.get((code, activity)),
            months=tuple(intake.get((code, activity), [Decimal(0)] * 12)),
        )
        for code, activity in sorted(intake.keys() | capacity.keys())
    ]


def _category_names(session: Session, codes: set[str]) -> dict[str, Named]:
    if not codes:
        return {}
    query = sa_select(col(WasteCategory.code), col(WasteCategory.name_zh), col(WasteCategory.name_en)).where(
        col(WasteCategory.code).in_(sorted(codes))
    )
    return {row[0]: Named(row[0], row[1], row[2]) for row in session.execute(query)}


def _moved_t(row: FlowRow) -> Decimal:
    return Decimal(row.tonnes.received_t) + Decimal(row.tonnes.in_transit_t)


def _reconciliation(
    session: Session, principal: Principal, view: EnterpriseView, year: int, flows_in: list[FlowRow], out: list[FlowRow]
) -> list[ReconLine]:
    scope = resolve_scope(session=session, principal=principal, enterprise=view.id)
    counted = rates.utilisation(session=session, principal=principal, year=year, scope=scope).categories
    declared = {
        row.category.key: row
        for row in places.declarations_of(session=session, enterprise_id=view.id, year=year, counted=counted)
    }
    sent: dict[str, Decimal] = {}
    received: dict[str, Decimal] = {}
    names = {row.category.key: row.category for row in declared.values()}
    names |= {row.category.key: row.category for row in [*flows_in, *out]}
    for row in out:
        sent[row.category.key] = sent.get(row.category.key, Decimal(0)) + _moved_t(row)
    for row in flows_in:
        received[row.category.key] = received.get(row.category.key, Decimal(0)) + Decimal(row.tonnes.received_t)
    codes = sorted(names)
    bottom_up = rates.manifested_sums(
        session, col(Enterprise.id) == view.id, codes, (year, year), [rates.BATCH_CATEGORY], narrow=True
    )
    return [
        ReconLine(
            category=names[code],
            counted=code in counted,
            declared=declared.get(code),
            sent_t=sent.get(code, Decimal(0)),
            manifest_utilised_t=bottom_up.get((code,), Decimal(0)),
            received_t=received.get(code, Decimal(0)),
        )
        for code in codes
    ]


def may_inspect(principal: Principal) -> bool:
    """Whether the principal audits enterprises (within its scope): the readers of the inspection sheet."""
    return principal.is_admin or principal.role is UserRole.bureau


def inspection_sheet(
    *, session: Session, principal: Principal, enterprise_id: int, year: int, lang: str, now: datetime
) -> InspectionSheet:
    """The inspection sheet of an enterprise for a year, for whoever may read the enterprise's audit."""
    require_auditor(principal)
    scope = resolve_scope(session=session, principal=principal, enterprise=enterprise_id)
    view = places.enterprise_view(session, principal, enterprise_id, year, now.astimezone(CST).date())
    flows_in = places.enterprise_flows(
        session=session, principal=principal, enterprise_id=enterprise_id, year=year, direction="in"
    )
    flows_out = places.enterprise_flows(
        session=session, principal=principal, enterprise_id=enterprise_id, year=year, direction="out"
    )
    found = flags.list_flags(session=session, principal=principal, year=year, limit=None, scope=scope).data
    names = enterprise_names(session, found)
    states = flag_states(session=session, flags=found)
    return InspectionSheet(
        enterprise=view,
        year=year,
        flows_in=flows_in,
        flows_out=flows_out,
        capacity=_capacity(session, view, year),
        declarations=_reconciliation(session, principal, view, year, flows_in, flows_out),
        flags=[
            FlagLine(kind=f.kind, finding=finding_text(f, lang, names), state=state)
            for f, state in zip(found, states, strict=True)
        ],
    )


def default_year(*, session: Session, enterprise_id: int, today: date) -> int:
    """The enterprise's latest year with data, else the latest declared anywhere, else this year."""
    years = places.enterprise_years(session=session, enterprise_id=enterprise_id)
    return years[0] if years else places.latest_year(session=session) or today.year


@dataclass(frozen=True)
class PrintedSheet:
    """The inspection sheet as printed: its PDF, and the enterprise and year it covers (to name the file)."""

    uscc: str
    year: int
    pdf: bytes


def printed_sheet(
    *,
    session: Session,
    principal: Principal,
    enterprise_id: int,
    year: int | None,
    lang: str,
    words: Words,
    now: datetime,
) -> PrintedSheet:
    """The inspection sheet of an enterprise as a PDF, for a year or else its latest year with data."""
    chosen = year or default_year(session=session, enterprise_id=enterprise_id, today=now.astimezone(CST).date())
    sheet = inspection_sheet(
        session=session, principal=principal, enterprise_id=enterprise_id, year=chosen, lang=lang, now=now
    )
    pdf = render_pdf(sheet, lang=lang, words=words, printed_at=now, printed_by=principal.username)
    return PrintedSheet(uscc=sheet.enterprise.uscc, year=chosen, pdf=pdf)


# ---- The PDF ----------------------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def tonnes_cell(value: Decimal | None) -> str:
    """Tonnes as the pages write them (thousands separated, one decimal, the ASCII minus); a dash for none."""
    return "–" if value is None else f"{value:,.1f}"


def percent_cell(fraction: float | None) -> str:
    """A share in percent, truncated to 0.1 pt as the pages print rates; a dash for none."""
    return "–" if fraction is None else f"{rates.percent_truncated(fraction)}%"


def validity(start: date, end: date | None) -> str:
    """A licence's period of validity; open-ended when it names no end."""
    return f"{start.isoformat()} – {end.isoformat() if end else ''}"


def render_pdf(sheet: InspectionSheet, *, lang: str, words: Words, printed_at: datetime, printed_by: str) -> bytes:
    """The inspection sheet as a landscape A4 PDF in the reader's language."""
    font, _embedded = document_font()
    ink, muted, rule = colors.HexColor("#1b1f24"), colors.HexColor("#57606a"), colors.HexColor("#c9d1d9")
    # Chinese breaks between any two characters; English only between words (else "Phosphogypsu / m").
    wrap = "CJK" if lang == "zh-CN" else None
    base = ParagraphStyle("base", fontName=font, fontSize=8, leading=10.5, textColor=ink, wordWrap=wrap)
    num = ParagraphStyle("num", parent=base, alignment=2)
    small = ParagraphStyle("small", parent=base, fontSize=7, leading=9, textColor=muted)
    small_num = ParagraphStyle("small_num", parent=small, alignment=2)
    title = ParagraphStyle("title", parent=base, fontSize=16, leading=21)
    heading = ParagraphStyle(
        "heading", parent=base, fontSize=11, leading=14, spaceBefore=9, spaceAfter=3, keepWithNext=1
    )
    note = ParagraphStyle("note", parent=small, spaceBefore=2)
    tight = ParagraphStyle("tight", parent=num, fontSize=7, leading=9)  # twelve months on one line
    e = sheet.enterprise
    name = local(lang, e.name_zh, e.name_en)
    width = landscape(A4)[0] - 28 * mm

    def p(text: str, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(_escape(text), style)

    def named(thing: Named | None) -> str:
        return "–" if thing is None else local(lang, thing.name_zh, thing.name_en)

    def category(thing: Named) -> str:
        return f"{thing.key} {named(thing)}"

    ruled = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, rule),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, muted),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2),
    ]

    def table(
        header: list[str], rows: list[list[Any]], widths: list[float], numeric_from: int, figures: ParagraphStyle = num
    ) -> Table:
        head = [p(h, small_num if i >= numeric_from else small) for i, h in enumerate(header)]
        body = [
            [
                cell if isinstance(cell, Flowable) else p(str(cell), figures if i >= numeric_from else base)
                for i, cell in enumerate(r)
            ]
            for r in rows
        ]
        scale = width / sum(widths)
        out = Table([head, *body], colWidths=[w * scale for w in widths], hAlign="LEFT", repeatRows=1)
        out.setStyle(TableStyle(ruled))
        return out

    def empty(key: str) -> Paragraph:
        return p(words(key, year=sheet.year), small)

    story: list[Flowable] = [
        p(words("inspection.title"), title),
        p(f"{name} · {words('inspection.year', year=sheet.year)}", heading),
        p(words("inspection.lead"), small),
    ]

    # Identity and licences
    story.append(p(words("inspection.identity"), heading))
    place = " · ".join(named(x) for x in (e.prefecture, e.county) if x is not None) or "–"
    identity = [
        (words("inspection.name"), f"{e.name_zh}" + (f" / {e.name_en}" if e.name_en else "")),
        (words("places.uscc"), e.uscc),
        (
            words("inspection.roles"),
            ("、" if lang == "zh-CN" else ", ").join(words(f"places.role.{r}") for r in e.roles),
        ),
        (words("inspection.place"), place),
        (words("inspection.park"), named(e.park) if e.park else words("places.no_park")),
        (words("inspection.location"), f"{e.lon:.5f}, {e.lat:.5f}"),
    ]
    facts = Table([[p(k, small), p(v)] for k, v in identity], colWidths=(40 * mm, width - 40 * mm), hAlign="LEFT")
    facts.setStyle(TableStyle([item for item in ruled if item[2] != (-1, 0)]))
    story.append(facts)
    story.append(p(words("inspection.licences"), heading))
    if e.licences:
        story.append(
            table(
                [
                    words("inspection.col.category"),
                    words("places.activity"),
                    words("inspection.col.licence_no"),
                    words("inspection.col.validity"),
                    words("inspection.col.state"),
                    words("inspection.col.covers_year", year=sheet.year),
                    words("inspection.col.capacity_t"),
                ],
                [
                    [
                        category(licence.category),
                        words(f"places.activity.{licence.activity}"),
                        licence.licence_no or "–",
                        validity(licence.valid_from, licence.valid_to),
                        words(f"places.state.{licence.state}"),
                        words("inspection.yes") if licence.covers_year else words("inspection.no"),
                        tonnes_cell(Decimal(licence.capacity_t)),
                    ]
                    for licence in e.licences
                ],
                [50, 22, 34, 40, 18, 18, 28],
                6,
            )
        )
    else:
        story.append(empty("inspection.no_licences"))

    # Flows in and out
    for direction, rows in (("in", sheet.flows_in), ("out", sheet.flows_out)):
        story.append(p(words(f"inspection.flows_{direction}", year=sheet.year), heading))
        if not rows:
            story.append(empty(f"inspection.no_flows_{direction}"))
            continue
        body: list[list[Any]] = [
            [
                local(lang, r.counterpart.name_zh, r.counterpart.name_en),
                r.counterpart.uscc,
                category(r.category),
                f"{r.tonnes.batches:,}",
                tonnes_cell(Decimal(r.tonnes.received_t)),
                tonnes_cell(Decimal(r.tonnes.in_transit_t)),
                tonnes_cell(Decimal(r.tonnes.utilised_t)),
            ]
            for r in rows
        ]
        total = sum((r.tonnes for r in rows), places.Tonnes())
        body.append(
            [
                words("inspection.total"),
                "",
                "",
                f"{total.batches:,}",
                tonnes_cell(Decimal(total.received_t)),
                tonnes_cell(Decimal(total.in_transit_t)),
                tonnes_cell(Decimal(total.utilised_t)),
            ]
        )
        story.append(
            table(
                [
                    words(f"inspection.col.counterpart_{direction}"),
                    words("places.uscc"),
                    words("inspection.col.category"),
                    words("inspection.col.batches"),
                    words("inspection.col.received_t"),
                    words("inspection.col.in_transit_t"),
                    words("inspection.col.utilisation_route_t"),
                ],
                body,
                [62, 36, 44, 16, 26, 24, 30],
                3,
            )
        )

    # Capacity by month
    story.append(p(words("inspection.capacity", year=sheet.year), heading))
    if sheet.capacity:
        month_heads = [words(f"inspection.month.{m}") for m in MONTHS]
        cap_rows: list[list[Any]] = []
        for line in sheet.capacity:
            use = percent_cell(line.use)
            cap_rows.append(
                [
                    category(line.category),
                    words(f"places.activity.{line.activity}"),
                    tonnes_cell(line.capacity_t) if line.capacity_t is not None else words("inspection.unlicensed"),
                    *(tonnes_cell(t) if t else "·" for t in line.months),
                    tonnes_cell(line.intake_t),
                    Paragraph(f'<font color="{ALARM}">{_escape(use)}</font>' if line.exceeded else _escape(use), tight),
                ]
            )
        story.append(
            table(
                [
                    words("inspection.col.category"),
                    words("places.activity"),
                    words("inspection.col.capacity_t"),
                    *month_heads,
                    words("inspection.col.intake_t"),
                    words("inspection.col.use"),
                ],
                cap_rows,
                [30, 18, 21, *([15] * 12), 21, 12],
                2,
                tight,
            )
        )
        story.append(p(words("inspection.capacity_note"), note))
    else:
        story.append(empty("inspection.no_capacity"))

    # Declarations against manifests
    story.append(p(words("inspection.declarations", year=sheet.year), heading))
    if sheet.declarations:
        recon: list[list[Any]] = []
        for recon_line in sheet.declarations:
            d = recon_line.declared
            recon.append(
                [
                    category(recon_line.category) + (" *" if recon_line.counted else ""),
                    tonnes_cell(d.generated_t if d else None),
                    tonnes_cell(d.utilised_t if d else None),
                    tonnes_cell(d.disposed_t if d else None),
                    tonnes_cell(d.stored_t if d else None),
                    tonnes_cell(recon_line.sent_t),
                    tonnes_cell(recon_line.manifest_utilised_t),
                    tonnes_cell(recon_line.gap_t),
                    tonnes_cell(recon_line.received_t),
                ]
            )
        story.append(
            table(
                [
                    words("inspection.col.category"),
                    words("inspection.col.declared_generated_t"),
                    words("inspection.col.declared_utilised_t"),
                    words("inspection.col.declared_disposed_t"),
                    words("inspection.col.declared_stored_t"),
                    words("inspection.col.sent_t"),
                    words("inspection.col.manifest_utilised_t"),
                    words("inspection.col.gap_t"),
                    words("inspection.col.manifest_received_t"),
                ],
                recon,
                [50, 24, 24, 24, 24, 24, 28, 26, 24],
                1,
            )
        )
        story.append(p(words("inspection.declarations_note"), note))
    else:
        story.append(empty("inspection.no_declarations"))

    # Flags
    story.append(p(words("inspection.flags", year=sheet.year), heading))
    if sheet.flags:
        story.append(
            table(
                [words("inspection.col.kind"), words("inspection.col.finding"), words("inspection.col.flag_state")],
                [
                    [words(f"flag.{f.kind.value}"), f.finding, words(f"inspection.flag_state.{f.state}")]
                    for f in sheet.flags
                ],
                [40, 180, 24],
                3,
            )
        )
    else:
        story.append(empty("inspection.no_flags"))

    story.append(Spacer(1, 4 * mm))
    story.append(p(words("inspection.printed", at=beijing_text(printed_at), by=printed_by), small))
    story.append(p(words("inspection.units_note"), small))

    out = io.BytesIO()
    running = f"{words('inspection.title')} · {name} · {sheet.year}"

    def footer(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.setFillColor(muted)
        canvas.drawString(14 * mm, 8 * mm, running)
        canvas.drawRightString(landscape(A4)[0] - 14 * mm, 8 * mm, words("print.page", n=document.page))
        canvas.restoreState()

    pdf = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title=running,
        author="circuflow",
        lang=lang,
    )
    pdf.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
