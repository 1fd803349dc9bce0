"""A manifest as printed for the road: its sealed fields, parties and steps on one PDF with a verification code, and
the little that the code's verification page may show of it.

The words come from the caller (a function from catalogue key to text in the reader's language), so that this
module stays free of the web layer; the fonts come from Debian packages (README: "Printing a manifest").
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.accounts import Principal
from flows.kernel.clock import CST, stored_utc
from flows.pages.batches import batch_history
from flows.waste import manifests, numbers
from models import Enterprise, Manifest, ManifestSource, WasteCategory
from models.enums import ManifestStatus

Words = Callable[..., str]  # a catalogue key (and its parameters) in the reader's language

# TrueType CJK fonts that Debian packages ship, best first (path, index in a collection). ReportLab embeds only
# TrueType outlines: the Noto CJK fonts (fonts-noto-cjk) are CFF and it refuses them.
CJK_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),  # fonts-wqy-zenhei
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),  # fonts-wqy-microhei
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),  # fonts-droid-fallback
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),  # fonts-arphic-uming
)
# Without any of them: ReportLab's built-in Adobe CID font, named in the PDF but not embedded (readers supply it).
FALLBACK_FONT = "STSong-Light"


@dataclass(frozen=True)
class PrintParty:
    """A party as the manifest names it."""

    name_zh: str
    name_en: str | None
    uscc: str


@dataclass(frozen=True)
class PrintStep:
    """One recorded step: what, when, and by which side (the account too, where the reader may see accounts)."""

    action: str
    at: datetime
    side: str | None
    party: PrintParty | None
    username: str | None


@dataclass(frozen=True)
class PrintedManifest:
    """Everything the printed manifest carries; on the verification page, the fields not yet sealed are None."""

    id: int
    number: str
    year: int
    status: ManifestStatus
    sealed: tuple[str, ...]
    shipper: PrintParty | None
    receiver: PrintParty | None
    carrier: PrintParty | None
    category_code: str | None
    category_zh: str | None
    category_en: str | None
    route: str | None
    weight_dispatched_t: Decimal | None
    weight_received_t: Decimal | None
    rejected_t: Decimal | None
    discrepancy_t: Decimal | None
    discrepancy_flag: bool
    created_at: datetime | None
    dispatched_at: datetime | None
    received_at: datetime | None
    vehicle_plate: str | None
    transport_mode: str | None
    packaging: str | None
    weighing: str | None
    rejection_reason: str | None
    cancel_reason: str | None
    reference: str | None
    sources: tuple[tuple[str, Decimal], ...]
    steps: tuple[PrintStep, ...]


def _party(session: Session, enterprise_id: int | None) -> PrintParty | None:
    if enterprise_id is None:
        return None
    e = session.get(Enterprise, enterprise_id)
    return None if e is None else PrintParty(e.name_zh, e.name_en, e.uscc)


def _sources(session: Session, batch_id: int) -> tuple[tuple[str, Decimal], ...]:
    s = ManifestSource.__table__.c  # type: ignore[attr-defined]
    rows = session.execute(
        sa_select(col(Manifest.number), s.weight_t)
        .join(Manifest, col(Manifest.id) == s.source_id)
        .where(s.manifest_id == batch_id)
        .order_by(col(Manifest.number))
    ).all()
    return tuple((str(number), Decimal(weight)) for number, weight in rows)


def _document(session: Session, batch: Manifest, steps: tuple[PrintStep, ...]) -> PrintedManifest:
    assert batch.id is not None
    category = session.get(WasteCategory, batch.category_code)
    gap, flagged = manifests.discrepancy(batch)
    return PrintedManifest(
        id=batch.id,
        number=batch.number,
        year=batch.year,
        status=ManifestStatus(batch.status),
        sealed=tuple(manifests.sealed_fields(ManifestStatus(batch.status))),
        shipper=_party(session, batch.shipper_id),
        receiver=_party(session, batch.receiver_id),
        carrier=_party(session, batch.carrier_id),
        category_code=batch.category_code,
        category_zh=category.name_zh if category else None,
        category_en=category.name_en if category else None,
        route=str(batch.route),
        weight_dispatched_t=batch.weight_dispatched_t,
        weight_received_t=batch.weight_received_t,
        rejected_t=batch.rejected_t,
        discrepancy_t=gap,
        discrepancy_flag=flagged,
        created_at=stored_utc(batch.created_at),
        dispatched_at=stored_utc(batch.dispatched_at) if batch.dispatched_at else None,
        received_at=stored_utc(batch.received_at) if batch.received_at else None,
        vehicle_plate=batch.vehicle_plate,
        transport_mode=str(batch.transport_mode) if batch.transport_mode else None,
        packaging=batch.packaging,
        weighing=str(batch.weighing) if batch.weighing else None,
        rejection_reason=batch.rejection_reason,
        cancel_reason=batch.cancel_reason,
        reference=batch.reference,
        sources=_sources(session, batch.id),
        steps=steps,
    )


def printable_manifest(*, session: Session, principal: Principal, batch_id: int) -> PrintedManifest:
    """A manifest the principal may read, with its parties, handover, sources and recorded steps."""
    batch = manifests.get_manifest(session=session, principal=principal, batch_id=batch_id)
    assert batch.id is not None
    parties = {"shipper": _party(session, batch.shipper_id), "receiver": _party(session, batch.receiver_id)}
    steps = tuple(
        PrintStep(h.action, h.at, h.side, parties.get(h.side or ""), h.username)
        for h in batch_history(session=session, principal=principal, batch_id=batch.id)
    )
    return _document(session, batch, steps)


# What the verification page may show of each field: shown once the field named on the right is sealed.
_SEALED_BY = {
    "shipper": "shipper_id",
    "receiver": "receiver_id",
    "carrier": "carrier_id",
    "category_code": "category_code",
    "category_zh": "category_code",
    "category_en": "category_code",
    "route": "route",
    "weight_dispatched_t": "weight_dispatched_t",
    "dispatched_at": "dispatched_at",
    "vehicle_plate": "vehicle_plate",
    "transport_mode": "transport_mode",
    "packaging": "packaging",
    "weighing": "weighing",
    "weight_received_t": "weight_received_t",
    "received_at": "received_at",
    "rejected_t": "rejected_t",
    "rejection_reason": "rejection_reason",
    "cancel_reason": "cancel_reason",
}


def verified_manifest(*, session: Session, batch_id: int) -> PrintedManifest | None:
    """What a verification code shows of its manifest, to anyone: number, status and the sealed fields alone."""
    batch = numbers.get(session, batch_id)
    if batch is None:
        return None
    doc = _document(session, batch, ())
    hidden: dict[str, Any] = {name: None for name, seal in _SEALED_BY.items() if seal not in doc.sealed}
    # The lots a forwarding drew from name other manifests, its reference is the shipper's own, its creation and
    # its steps tell who worked on it when: none of them are the manifest's sealed content.
    gap_shown = "weight_received_t" in doc.sealed
    return replace(
        doc,
        **hidden,
        sources=(),
        steps=(),
        reference=None,
        created_at=None,
        discrepancy_t=doc.discrepancy_t if gap_shown else None,
        discrepancy_flag=doc.discrepancy_flag and gap_shown,
    )


# ---- Wording ----------------------------------------------------------------------------------------------------


def tonnes_text(value: Decimal | None, minus: str = "\u2212") -> str:
    """Tonnes as the pages print them: thousands separated, at most three decimals (kilograms); a dash for none."""
    if value is None:
        return "–"
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text.replace("-", minus)


def beijing_text(moment: datetime | None) -> str:
    """A stored moment on the Beijing clock, to the minute; a dash for none."""
    return "–" if moment is None else stored_utc(moment).astimezone(CST).strftime("%Y-%m-%d %H:%M")


def party_name(lang: str, party: PrintParty) -> str:
    """A party's name in the reader's language (the Chinese name when no English one is known)."""
    return party.name_en if lang == "en" and party.name_en else party.name_zh


def category_name(lang: str, doc: PrintedManifest) -> str:
    """The category's code and name in the reader's language."""
    name = doc.category_en if lang == "en" and doc.category_en else doc.category_zh
    return f"{doc.category_code} {name or ''}".strip()


# ---- The PDF ----------------------------------------------------------------------------------------------------


@cache
def document_font() -> tuple[str, bool]:
    """The font every line of the PDF is set in, registered once; and whether it is embedded in the file."""
    for path, index in CJK_FONTS:
        if Path(path).is_file():
            try:
                pdfmetrics.registerFont(TTFont("circuflow-cjk", path, subfontIndex=index))
            except TTFError:
                continue
            return "circuflow-cjk", True
    pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_FONT))
    return FALLBACK_FONT, False


class _Qr(Flowable):
    """The verification URL as a QR code, drawn as vector squares with a quiet zone (medium error correction)."""

    def __init__(self, url: str, size: float) -> None:
        super().__init__()
        self.url, self.size = url, size
        self.width = self.height = size

    def draw(self) -> None:
        widget = QrCodeWidget(self.url, barLevel="M", barBorder=4)
        x0, y0, x1, y1 = widget.getBounds()
        drawing = Drawing(self.size, self.size, transform=[self.size / (x1 - x0), 0, 0, self.size / (y1 - y0), 0, 0])
        drawing.add(widget)
        drawing.drawOn(self.canv, 0, 0)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_pdf(
    doc: PrintedManifest,
    *,
    lang: str,
    words: Words,
    verify_url: str,
    printed_at: datetime,
    printed_by: str,
) -> bytes:
    """The manifest as an A4 PDF in the reader's language, with the QR code of its verification page."""
    font, _embedded = document_font()
    ink, muted, rule = colors.HexColor("#1b1f24"), colors.HexColor("#57606a"), colors.HexColor("#c9d1d9")
    base = ParagraphStyle("base", fontName=font, fontSize=8.5, leading=11.5, textColor=ink, wordWrap="CJK")
    small = ParagraphStyle("small", parent=base, fontSize=7.5, leading=10, textColor=muted)
    title = ParagraphStyle("title", parent=base, fontSize=16, leading=21)
    heading = ParagraphStyle("heading", parent=base, fontSize=10.5, leading=14, spaceBefore=8, spaceAfter=3)

    def p(text: str, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(_escape(text), style)

    def t(value: Decimal | None) -> str:
        # The ASCII minus: not every CJK font has a glyph for the true one.
        return "–" if value is None else f"{tonnes_text(value, '-')} {words('batches.unit.t')}"

    def cell(text: str) -> Paragraph:
        return Paragraph(_escape(text).replace("\n", "<br/>"), base)

    ruled = TableStyle(
        [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LINEBELOW", (0, 0), (-1, -1), 0.4, rule),
            ("TOPPADDING", (0, 0), (-1, -1), 2.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ]
    )

    def facts(rows: list[tuple[str, str]]) -> Table:
        table = Table([[p(k, small), cell(v)] for k, v in rows], colWidths=(31 * mm, 53 * mm), hAlign="LEFT")
        table.setStyle(ruled)
        return table

    def term(prefix: str, value: str | None) -> str:
        return "–" if not value else words(f"{prefix}.{value}")

    status = words(f"batches.status.{doc.status.value}")
    head = Table(
        [
            [
                [
                    p(words("print.title"), title),
                    p(f"{words('print.number')} {doc.number}", heading),
                    p(f"{words('batches.field.status')}: {status} · {words('batches.field.year')} {doc.year}"),
                    p(words("print.sealed_note") if doc.sealed else words("print.draft_note"), small),
                ],
                [_Qr(verify_url, 34 * mm), p(words("print.scan"), small)],
            ]
        ],
        colWidths=(136 * mm, 38 * mm),
    )
    head.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))

    story: list[Flowable] = [head, Spacer(1, 3 * mm)]
    story.append(p(words("print.parties"), heading))
    parties = [
        (words("batches.col.shipper"), doc.shipper),
        (words("batches.col.receiver"), doc.receiver),
        (words("batches.field.carrier"), doc.carrier),
    ]
    party_rows = [
        [p(label, small), p(party_name(lang, party) if party else "–"), p(party.uscc if party else "")]
        for label, party in parties
    ]
    party_table = Table(
        [[p("", small), p("", small), p(words("print.uscc"), small)], *party_rows],
        colWidths=(28 * mm, 100 * mm, 46 * mm),
        hAlign="LEFT",
    )
    party_table.setStyle(ruled)
    story.append(party_table)

    waste_rows = [
        (words("batches.field.category"), category_name(lang, doc)),
        (words("batches.field.route"), term("batches.route", doc.route)),
        (words("batches.w.dispatched"), t(doc.weight_dispatched_t)),
        (words("batches.w.received"), t(doc.weight_received_t)),
        (words("batches.w.refused"), t(doc.rejected_t)),
    ]
    if doc.discrepancy_t is not None:
        gap = ("+" if doc.discrepancy_t > 0 else "") + t(doc.discrepancy_t)
        if doc.discrepancy_flag:
            gap += f" · {words('print.gap_flagged')}"
        waste_rows.append((words("batches.w.gap"), gap))
    if doc.reference:
        waste_rows.append((words("print.reference"), doc.reference))
    if doc.rejection_reason:
        waste_rows.append((words("batches.field.rejection_reason"), doc.rejection_reason))
    if doc.cancel_reason:
        waste_rows.append((words("batches.field.cancel_reason"), doc.cancel_reason))
    sources = "\n".join(f"{number} · {t(weight)}" for number, weight in doc.sources)
    handover = [
        (words("batches.field.vehicle_plate"), doc.vehicle_plate or "–"),
        (words("batches.field.transport_mode"), term("batches.mode", doc.transport_mode)),
        (words("batches.field.packaging"), doc.packaging or "–"),
        (words("batches.field.weighing"), term("batches.weighing", doc.weighing)),
        (words("batches.field.dispatched_at"), beijing_text(doc.dispatched_at)),
        (words("batches.field.received_at"), beijing_text(doc.received_at)),
        (words("batches.field.sources"), sources or words("print.no_sources")),
    ]
    columns = Table(
        [
            [p(words("print.waste"), heading), p(words("print.handover"), heading)],
            [facts(waste_rows), facts(handover)],
        ],
        colWidths=(87 * mm, 87 * mm),
        hAlign="LEFT",
    )
    columns.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    story.append(columns)

    story.append(p(words("print.steps"), heading))
    rows: list[list[Any]] = [
        [p(words("print.step_when"), small), p(words("print.step_what"), small), p(words("print.step_who"), small)]
    ]
    for step in doc.steps:
        who = words(f"batches.side.{step.side or 'other'}")
        if step.party is not None:
            who += f" · {party_name(lang, step.party)}"
        if step.username:
            who += f" · {step.username}"
        rows.append([p(beijing_text(step.at)), p(words(f"batches.did.{step.action}")), cell(who)])
    if not doc.steps:
        rows.append([p("–"), p(words("print.no_steps")), p("")])
    steps = Table(rows, colWidths=(34 * mm, 36 * mm, 104 * mm), hAlign="LEFT", repeatRows=1)
    steps.setStyle(ruled)
    story.append(steps)
    story.append(Spacer(1, 4 * mm))
    story.append(p(words("print.verify_at", url=verify_url), small))
    story.append(p(words("print.printed", at=beijing_text(printed_at), by=printed_by), small))
    story.append(p(words("print.times_note"), small))

    out = io.BytesIO()

    def footer(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 7.5)
        canvas.setFillColor(muted)
        canvas.drawString(18 * mm, 10 * mm, f"{words('print.title')} {doc.number}")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, words("print.page", n=document.page))
        canvas.restoreState()

    pdf = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=f"{words('print.title')} {doc.number}",
        author="circuflow",
        lang=lang,
    )
    pdf.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
