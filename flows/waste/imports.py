"""Bulk imports of enterprises, declarations and manifests from CSV or XLSX: every row lands, or none does.

Files are CSV in UTF-8, UTF-8 with BOM or GB18030 (detected: a BOM means UTF-8; otherwise the first chunk that
holds non-ASCII bytes is tried as strict UTF-8, else GB18030), or XLSX (the first sheet, read with openpyxl in
read-only mode). The first non-blank row names the columns, in English or in Chinese (HEADER_ALIASES); headers
match after trimming spaces and ignoring case and full-width brackets. Unknown, repeated or missing columns are
refused before any row is read.

Rows are read one at a time, never the whole file at once, and written in chunks of CHUNK rows with Core
executemany, all inside the caller's one transaction. Every row is checked and every fault collected (line as in
the file, the header being line 1; the column as the file names it; the reason). If there is any, the transaction
is rolled back and ImportRefused lists them: nothing is half-saved. On success the caller commits.

An import writes ONE audit-log entry (channel import, action "import") naming the file, its SHA-256 and the counts,
rather than one entry per row: a 100,000-row file would otherwise add 100,000 chained entries, each waiting on the
audit chain's lock, and the file's hash already pins down exactly what was imported.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import math
import re
import unicodedata
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, ClassVar

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from flows.access import registry
from flows.access.locks import ensure_unlocked, guard_year
from flows.access.trail import record, serialise_writers
from flows.kernel.bounds import (
    DEFAULT_UPLOAD_LIMITS,
    MAX_COLUMNS,
    MAX_DECLARED_T,
    MAX_MANIFEST_T,
    MAX_SHEET_LINES,
    UploadLimits,
    check_size,
    check_workbook,
    overlong_field,
    printable,
    text_problem,
)
from flows.kernel.clock import CST
from flows.kernel.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, PeriodLocked
from flows.kernel.messages import Message, Term, msg
from flows.kernel.principal import Principal
from flows.kernel.quantity import QuantityError, read_number, to_kg
from flows.kernel.quantity import tonnes as kg_as_tonnes
from flows.kernel.uscc import validate_uscc
from flows.waste import chains, late_filings, licences, refdata, summaries
from flows.waste import numbers as number_rows
from flows.waste.corrections import request_correction
from flows.waste.declarations import FIGURES, parse_declaration
from flows.waste.manifests import MAX_SOURCES, FieldProblem, reserve_numbers
from maps.datum import Datum, parse_datum, point_to_wgs84
from maps.locate import locate_many
from models import Declaration, Enterprise, EnterpriseRoleLink, Manifest, ManifestSource, PeriodLock, WasteCategory
from models.enums import (
    Channel,
    EnterpriseRole,
    LicenceActivity,
    ManifestStatus,
    Route,
    TransportMode,
    UserRole,
    Weighing,
)
from models.quantity import Tonnes, TonnesKg

# ---------------------------------------------------------------------------------------------------------------
# Data: column names and value aliases. Keys are matched after _norm() (NFKC, case-folded, spaces removed), so
# "移出量（吨）", "移出量 (吨)" and "移出量(吨)" are one header.

HEADER_ALIASES: dict[str, str] = {
    # enterprises (uscc also for declarations)
    "统一社会信用代码": "uscc",
    "社会信用代码": "uscc",
    "信用代码": "uscc",
    "credit_code": "uscc",
    "企业名称": "name",
    "单位名称": "name",
    "name_zh": "name",
    "英文名称": "name_en",
    "角色": "roles",
    "企业角色": "roles",
    "role": "roles",
    "经度": "lon",
    "longitude": "lon",
    "lng": "lon",
    "纬度": "lat",
    "latitude": "lat",
    "坐标系": "datum",
    "坐标系统": "datum",
    # declarations
    "年份": "year",
    "年度": "year",
    "申报年度": "year",
    "废物类别": "category",
    "类别代码": "category",
    "废物代码": "category",
    "category_code": "category",
    "产生量": "generated_t",
    "综合利用量": "utilised_t",
    "其中利用往年贮存量": "utilised_prior_t",
    "处置量": "disposed_t",
    "其中处置往年贮存量": "disposed_prior_t",
    "贮存量": "stored_t",
    "倾倒丢弃量": "dumped_t",
    # manifests
    "联单编号": "number",
    "来源联单": "sources",
    "车牌号": "vehicle_plate",
    "车牌号码": "vehicle_plate",
    "运输方式": "transport_mode",
    "包装方式": "packaging",
    "计量方式": "weighing",
    "移出单位统一社会信用代码": "shipper_uscc",
    "接收单位统一社会信用代码": "receiver_uscc",
    "运输单位统一社会信用代码": "carrier_uscc",
    "利用处置方式": "route",
    "移出量(吨)": "weight_dispatched_t",
    "移出量(千克)": "weight_dispatched_kg",
    "移出时间": "dispatched_at",
    "接收量(吨)": "weight_received_t",
    "接收量(千克)": "weight_received_kg",
    "接收时间": "received_at",
    "拒收量(吨)": "rejected_t",
    "拒收量(千克)": "rejected_kg",
    "拒收原因": "rejection_reason",
    "幂等键": "idempotency_key",
}

# A unit in brackets after a known figure's name ("产生量(吨)") names the same column.
UNIT_SUFFIXES: dict[str, str] = {"(吨)": "_t", "(t)": "_t", "(千克)": "_kg", "(kg)": "_kg"}

ROUTE_ALIASES: dict[str, Route] = {
    "水泥掺合料": Route.cement_admixture,
    "水泥掺和料": Route.cement_admixture,
    "建材": Route.building_materials,
    "建材制品": Route.building_materials,
    "建筑材料": Route.building_materials,
    "充填": Route.backfill,
    "回填": Route.backfill,
    "路基材料": Route.road_base,
    "金属回收": Route.metal_recovery,
    "有价金属回收": Route.metal_recovery,
    "其他利用": Route.other_utilisation,
    "处置": Route.disposal,
    "贮存": Route.storage,
    "收集转运": Route.transfer,
    "预处理": Route.transfer,
    "收集": Route.transfer,
    "转运": Route.transfer,
    "分拣": Route.transfer,
    "储存": Route.storage,
    "暂存": Route.storage,
}

# What a handover records (models.enums.TransportMode, Weighing), in the words of a Chinese ledger.
TRANSPORT_ALIASES: dict[str, TransportMode] = {
    "公路": TransportMode.road,
    "公路运输": TransportMode.road,
    "铁路": TransportMode.rail,
    "铁路运输": TransportMode.rail,
    "水路": TransportMode.waterway,
    "水路运输": TransportMode.waterway,
    "水运": TransportMode.waterway,
    "传送带": TransportMode.conveyor,
    "皮带廊": TransportMode.conveyor,
    "管道": TransportMode.pipeline,
    "管道输送": TransportMode.pipeline,
}

WEIGHING_ALIASES: dict[str, Weighing] = {
    "称重": Weighing.weighed,
    "过磅": Weighing.weighed,
    "估算": Weighing.estimated,
}

_MODE_TERMS = [Term(f"waste.import.transport_mode.{m.value}") for m in TransportMode]
_WEIGHING_TERMS = [Term(f"waste.import.weighing.{w.value}") for w in Weighing]

# Between the lots of a `sources` cell and between a lot and its tonnes; full-width forms are read as these (NFKC).
SOURCE_SEPARATOR = ";"
SOURCE_TONNES = ":"

ROLE_ALIASES: dict[str, EnterpriseRole] = {
    "产生单位": EnterpriseRole.generator,
    "产废单位": EnterpriseRole.generator,
    "收集单位": EnterpriseRole.collector,
    "运输单位": EnterpriseRole.transporter,
    "利用单位": EnterpriseRole.utiliser,
    "处置单位": EnterpriseRole.disposer,
    "电池生产企业": EnterpriseRole.battery_maker,
    "汽车生产企业": EnterpriseRole.vehicle_maker,
    "回收服务网点": EnterpriseRole.collection_outlet,
    "梯次利用企业": EnterpriseRole.cascade_user,
    "再生利用企业": EnterpriseRole.recycler,
    "报废机动车回收拆解企业": EnterpriseRole.dismantler,
}

ROLE_SEPARATORS = re.compile(r"[;；,，、]")

CHUNK = 5000  # rows per executemany; also the batch size of the existence checks against the database
PROGRESS_EVERY = 1000
SCAN_CHUNK = 1 << 16
UTF8_EVIDENCE = 4  # valid non-ASCII UTF-8 characters before a bad byte that make a file UTF-8 all the same
MAX_KEPT_ERRORS = 10_000  # a file that is wrong throughout is counted to the end, but only this many are kept
QUOTED = 200  # characters of a cell quoted in a reason: a refusal stays readable (and small)
# Times without an offset are Beijing time, as ledgers write them: the same rule as flows.waste.manifests.

Progress = Callable[[int, int | None], None]
Source = Path | str | IO[bytes]


# ---------------------------------------------------------------------------------------------------------------
# Results and refusals


@dataclass(frozen=True)
class RowError:
    """One fault: the line in the file (header = 1), the column as the file names it, why, and the column as told."""

    line: int
    column: str
    problem: Message
    label: Message  # the column in the reader's words: the file's own header, else the column's name or number

    @property
    def reason(self) -> str:
        """Why, in English (the command line, the API)."""
        return self.problem.render("en")

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "reason": self.reason}


def _named(column: str) -> Message:
    """A column as a reader is told it: a header as the file writes it, or a column's name (a Term)."""
    return msg("waste.import.column_named", column=column)


def _position(position: int) -> tuple[str, Message]:
    """A column by its number (0-based position), as the file has no header for it."""
    return f"column {position + 1}", msg("waste.import.column_at", position=position + 1)


FILE_COLUMN = ("file", _named(Term("waste.import.column.file")))


class ImportRefused(InvalidInput):
    """An import with faulty rows: nothing was saved; `errors` lists them (up to MAX_KEPT_ERRORS), `total` counts."""

    def __init__(self, file: str, errors: list[RowError], total: int, rows: int) -> None:
        first = errors[0]
        super().__init__(
            "waste.import.refused" if total != 1 else "waste.import.refused_one",
            field=first.column,
            row=first.line,
            file=file,
            total=total,
            rows=rows,
            line=first.line,
            column=first.label,
            reason=first.problem,
        )
        self.file = file
        self.errors = errors
        self.total = total
        self.rows = rows


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    kind: str
    file: str
    sha256: str
    format: str
    encoding: str | None
    rows: int
    inserted: int
    updated: int
    skipped: int
    late_filed: int = 0  # new rows of locked years, held as late filings for a bureau to approve

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "sha256": self.sha256,
            "format": self.format,
            "encoding": self.encoding,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "skipped": self.skipped,
            "late_filed": self.late_filed,
        }


class _Bad(Exception):
    """A value that cannot be used; `problem` is the reason shown to the user."""

    def __init__(self, problem: Message) -> None:
        super().__init__(problem.code)
        self.problem = problem


def _quoted(value: object) -> str:
    """A cell as a reason quotes it: cut short, with anything no JSON answer can carry escaped."""
    return printable(value, QUOTED)


# ---------------------------------------------------------------------------------------------------------------
# Reading files


def _norm(header: str) -> str:
    return "".join(unicodedata.normalize("NFKC", header).casefold().split())


@dataclass
class _Scan:
    sha256: str
    format: str
    encoding: str | None
    lines: int


def _scan(stream: IO[bytes], limits: UploadLimits) -> _Scan:
    """One pass over the bytes: size, hash, format, encoding and a line count for the progress bar."""
    digest = hashlib.sha256()
    size = 0
    start = stream.tell()
    head = stream.read(SCAN_CHUNK)
    fmt = "xlsx" if head.startswith(b"PK\x03\x04") else "csv"
    encoding: str | None = None
    if fmt == "csv":
        if head.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise InvalidInput("waste.import.utf16", field="file")
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    lines = 0
    last = b""
    chunk = head
    while chunk:
        size += len(chunk)
        check_size(size, limits)  # refused as soon as the limit is passed, before the rest is read
        digest.update(chunk)
        lines += chunk.count(b"\n")
        last = chunk
        # ASCII says nothing about the encoding: the first chunk that completes a non-ASCII character decides
        # (strict UTF-8, else GB18030), even when that character began at the end of the chunk before.
        if fmt == "csv" and encoding is None:
            try:
                if not decoder.decode(chunk, final=False).isascii():
                    encoding = "utf-8"
            except UnicodeDecodeError as exc:
                # GB18030 text does not form several valid UTF-8 characters in a row: a chunk that does and then
                # breaks is UTF-8 with a stray line, which is then refused on its own line instead of garbled.
                valid = chunk[: max(exc.start, 0)].decode("utf-8", errors="ignore")
                encoding = "utf-8" if sum(not ch.isascii() for ch in valid) >= UTF8_EVIDENCE else "gb18030"
        chunk = stream.read(SCAN_CHUNK)
    if last and not last.endswith(b"\n"):
        lines += 1
    if fmt == "csv" and encoding is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            encoding = "gb18030"
    stream.seek(start)
    return _Scan(digest.hexdigest(), fmt, encoding or ("utf-8" if fmt == "csv" else None), lines)


@dataclass
class _Table:
    header_line: int
    headers: list[str]
    rows: Iterator[tuple[int, Sequence[object]]]
    total: int | None
    undecodable: list[int] = field(default_factory=list)  # lines that are not valid in the detected encoding


def _blank(values: Sequence[object]) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in values)


def _decoded_lines(stream: IO[bytes], encoding: str, undecodable: list[int]) -> Iterator[str]:
    """The file's lines as text, decoded one by one so that a bad byte is reported on its own line."""
    # b"\n" never occurs inside a UTF-8 or GB18030 character, so splitting the bytes first is safe.
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError:
            undecodable.append(number)
            yield raw.decode(encoding, errors="replace")


class _FieldTooLong(Exception):
    """A CSV field longer than the reader holds: its line and its position in the record, when found."""

    def __init__(self, line: int, position: int | None) -> None:
        super().__init__(line, position)
        self.line = line
        self.position = position


def _kept(lines: Iterator[str], record: list[str]) -> Iterator[str]:
    """The lines, each also kept in `record` until the reader has made a record of them."""
    for line in lines:
        record.append(line)
        yield line


def _csv_rows(reader: Any, record: list[str] | None = None) -> Iterator[tuple[int, Sequence[object]]]:
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error:
            # csv.field_size_limit: the reader says no more than that a field was too long; find which.
            text = "".join(record or ())
            raise _FieldTooLong(start, overlong_field(text, csv.field_size_limit())) from None
        if record is not None:
            record.clear()
        # CSV cells are always strings: one join tells a blank row (skipped, not counted) from a real one.
        if "".join(values).strip():
            yield start, values
        start = reader.line_num + 1


@contextmanager
def _open_table(stream: IO[bytes], scan: _Scan, limits: UploadLimits) -> Iterator[_Table]:
    if scan.format == "xlsx":
        check_workbook(stream, limits)  # the parts' declared sizes, before anything is decompressed
        # Imported here: it takes a while to load, and most commands never read a workbook.
        import openpyxl

        try:
            book = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise InvalidInput("waste.import.unreadable_workbook", field="file", detail=printable(exc)) from None
        try:
            sheet = book.worksheets[0]
            # At most MAX_COLUMNS cells a row and Excel's own number of rows: openpyxl pads each row to the sheet's
            # declared width and fills every missing row in, which a tiny file can make 16,384 x 1,048,576.
            cells = sheet.iter_rows(min_row=1, max_col=MAX_COLUMNS, values_only=True)
            numbered = enumerate(_readable(itertools.islice(cells, MAX_SHEET_LINES)), start=1)
            rows = ((line, values) for line, values in numbered if not _blank(values))
            line, headers = _first(rows)
            max_row = sheet.max_row
            yield _Table(line, headers, rows, max_row - line if max_row else None)
        finally:
            book.close()
        return
    encoding = scan.encoding or "utf-8"
    undecodable: list[int] = []
    record: list[str] = []
    csv_rows = _csv_rows(csv.reader(_kept(_decoded_lines(stream, encoding, undecodable), record)), record)
    try:
        line, headers = _first(csv_rows)
    except _FieldTooLong as exc:
        raise InvalidInput(
            "waste.import.header_field_too_long",
            field="file",
            row=exc.line,
            line=exc.line,
            limit=csv.field_size_limit(),
        ) from None
    if undecodable:
        raise InvalidInput(
            "waste.import.header_undecodable", field="file", row=undecodable[0], line=undecodable[0], encoding=encoding
        )
    yield _Table(line, headers, csv_rows, max(scan.lines - line, 0), undecodable)


def _readable(rows: Iterator[Sequence[object]]) -> Iterator[Sequence[object]]:
    """A workbook's rows; a part that fails as it is read (its checksum, its XML) refuses the file."""
    try:
        yield from rows
    except (zipfile.BadZipFile, zlib.error, SyntaxError, EOFError, KeyError, ValueError) as exc:
        # SyntaxError covers the XML parsers' errors (xml.etree's ParseError, lxml's XMLSyntaxError).
        raise InvalidInput("waste.import.unreadable_workbook", field="file", detail=printable(exc)) from None


def _first(rows: Iterator[tuple[int, Sequence[object]]]) -> tuple[int, list[str]]:
    for line, values in rows:
        return line, [_text(v) for v in values]
    raise InvalidInput("waste.import.empty", field="file")


# ---------------------------------------------------------------------------------------------------------------
# Values


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _cell(values: Sequence[object], index: int | None) -> str:
    if index is None or index >= len(values):
        return ""
    value = values[index]
    return value.strip() if isinstance(value, str) else _text(value)


def _raw(values: Sequence[object], index: int | None) -> object:
    if index is None or index >= len(values):
        return None
    return values[index]


def _number(value: object) -> Decimal | None:
    """A finite number, exactly, or None when blank; thousands separators only in groups of three ("1,5" is refused)."""
    if value is None or value == "":
        return None
    try:
        return read_number(value)
    except QuantityError as exc:
        code = "waste.import.not_finite" if exc.problem.code == "kernel.quantity.not_finite" else None
        if code is not None:
            raise _Bad(msg(code, value=_quoted(_text(value)))) from None
        raise _Bad(msg("waste.import.not_a_number", value=_quoted(_text(value)))) from None


def _weight(value: object, ceiling: float, unit: str = "t") -> Decimal | None:
    """A weight in its column's unit, bounded, and no finer than a kilogram."""
    result = _number(value)
    if result is not None and result < 0:
        raise _Bad(msg("waste.import.negative", value=_quoted(_text(value))))
    if result is not None and result > ceiling:
        unit_term = Term(f"waste.import.unit.{unit}")
        raise _Bad(msg("waste.import.above_ceiling", ceiling=ceiling, unit=unit_term, value=_quoted(_text(value))))
    if result is not None:
        try:
            to_kg(result, unit)
        except QuantityError as exc:
            raise _Bad(exc.problem) from None
    return result


def _text_problem(value: str, max_chars: int) -> Message | None:
    """Why a cell cannot be stored, as data: the kernel's rule (text_problem), told in the reader's words."""
    if text_problem(value, max_chars) is None:
        return None
    if len(value) > max_chars:
        return msg("waste.import.cell_too_long", limit=max_chars, length=len(value))
    if "\x00" in value:
        return msg("waste.import.cell_nul")
    return msg("waste.import.cell_surrogate")


def _cell_problems(values: Sequence[object], max_chars: int) -> list[tuple[int, Message]]:
    """Cells no column can hold (longer than the field limit, NUL, a lone surrogate), by position in the row."""
    try:
        # A CSV row is all strings: one check of the whole row clears nearly every row at C speed.
        if text_problem("".join(values), max_chars) is None:  # type: ignore[arg-type]
            return []
    except TypeError:
        pass  # a workbook's row also holds numbers and dates
    found = []
    for position, value in enumerate(values):
        if isinstance(value, str):
            problem = _text_problem(value, max_chars)
            if problem is not None:
                found.append((position, problem))
    return found


_DATE = re.compile(
    r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]+(\d{1,2})[:：时](\d{1,2})分?(?:[:：](\d{1,2})(?:\.\d+)?秒?)?)?"
)


def _moment(value: object) -> datetime | None:
    """An aware date-time, or None when blank; dates and times without an offset are Beijing time."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = _text(value)
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            match = _DATE.fullmatch(text)
            if match is None:
                raise _Bad(msg("waste.import.not_a_date", value=_quoted(text))) from None
            try:
                year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
                moment = datetime(year, month, day, hour, minute, second)
            except ValueError:
                raise _Bad(msg("waste.import.invalid_date", value=_quoted(text))) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def _year(value: object) -> int:
    text = _text(value).removesuffix("年")
    if not text:
        raise _Bad(msg("waste.import.required"))
    try:
        year = int(text)
    except ValueError:
        raise _Bad(msg("waste.import.not_a_year", value=_quoted(text))) from None
    if not 2000 <= year <= 2100:
        raise _Bad(msg("waste.import.outside", value=year, low=2000, high=2100))
    return year


# ---------------------------------------------------------------------------------------------------------------
# Columns


@dataclass(frozen=True)
class _Spec:
    kind: str
    table: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    one_of: tuple[tuple[str, str], ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # headers of this kind alone (normalised), before HEADER_ALIASES

    @property
    def known(self) -> tuple[str, ...]:
        return self.required + self.optional + tuple(name for pair in self.one_of for name in pair)


_CANONICAL = {_norm(alias): name for alias, name in HEADER_ALIASES.items()}


def _canonical(header: str) -> str:
    """The canonical name a header stands for (unknown headers come back normalised, and are refused later)."""
    key = _norm(header)
    if key in _CANONICAL:
        return _CANONICAL[key]
    for unit, suffix in UNIT_SUFFIXES.items():
        if key.endswith(unit):
            base = key[: -len(unit)]
            name = _CANONICAL.get(base, base)
            return name if name.endswith(suffix) else name + suffix
    return key


@dataclass
class _Columns:
    """Where each canonical column sits in a row, and what the file calls it."""

    index: dict[str, int]
    header: dict[str, str]
    width: int = 0
    ignored: list[int] = field(default_factory=list)

    def name(self, canonical: str) -> str:
        return self.header.get(canonical, canonical)

    def label(self, canonical: str) -> Message:
        """The column as a reader is told it: its header in the file, else its name in the reader's language."""
        return _named(self.header.get(canonical) or _term(canonical))


def _term(canonical: str) -> Term:
    """A column's name (the importer's own Chinese header in zh-CN, the canonical name in English)."""
    return Term(f"waste.import.column.{canonical}")


def _map_columns(spec: _Spec, headers: list[str], line: int, *, optional_required: frozenset[str]) -> _Columns:
    """Match the header row; unknown, repeated or missing columns refuse the file before any row is read."""
    known = set(spec.known)
    cols = _Columns({}, {}, len(headers))
    problems: list[RowError] = []
    for position, header in enumerate(headers):
        if not header:
            cols.ignored.append(position)
            continue
        name = dict(spec.aliases).get(_norm(header)) or _canonical(header)
        if name not in known:
            expected = [_term(column) for column in spec.known]
            unknown = msg("waste.import.unknown_column", expected=expected)
            problems.append(RowError(line, header, unknown, _named(header)))
        elif name in cols.index:
            repeats = msg("waste.import.repeated_column", first=_quoted(cols.header[name]), name=_term(name))
            problems.append(RowError(line, header, repeats, _named(header)))
        else:
            cols.index[name] = position
            cols.header[name] = header
    for name in spec.required:
        if name not in cols.index and name not in optional_required:
            problems.append(RowError(line, name, msg("waste.import.missing_column"), cols.label(name)))
    for pair in spec.one_of:
        if not any(name in cols.index for name in pair):
            missing = msg("waste.import.missing_either", first=_term(pair[0]), second=_term(pair[1]))
            problems.append(RowError(line, pair[0], missing, cols.label(pair[0])))

    if problems:
        raise ImportRefused("file", problems, len(problems), 0)
    return cols


# ---------------------------------------------------------------------------------------------------------------
# The importers


class _Importer:
    """Checks rows as they come, buffers up to CHUNK of them, checks and writes each buffer as one batch."""

    spec: ClassVar[_Spec]
    # Given, the new rows of a locked year are filed late with this reason instead of refused (declarations).
    late_reason: str | None = None

    def __init__(self, session: Session, principal: Principal, cols: _Columns, now: datetime) -> None:
        self.session = session
        self.principal = principal
        self.cols = cols
        self.now = now
        self.errors: list[RowError] = []
        self.error_total = 0
        self.inserted = 0
        self.updated = 0
        self.skipped = 0
        self.late_filed = 0
        self._locks: dict[tuple[int, int], Message | None] = {}
        # Most databases hold no lock for most years; only a year that some region locked needs the full check.
        self._locked_years = set(session.scalars(select(_table_of(PeriodLock).c.year)))
        self._guarded: set[int] = set()

    # -- errors

    def fail(self, line: int, canonical: str, problem: Message) -> None:
        """A fault in a known column (named as the file names it)."""
        self.report(line, (self.cols.name(canonical), self.cols.label(canonical)), problem)

    def report(self, line: int, where: tuple[str, Message], problem: Message) -> None:
        """A fault at a column given as (the column as the file names it, as a reader is told it)."""
        self.error_total += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(RowError(line, where[0], problem, where[1]))

    @property
    def clean(self) -> bool:
        return self.error_total == 0

    def check_ignored(self, line: int, values: Sequence[object]) -> None:
        for position in self.cols.ignored:
            if _cell(values, position):
                self.report(line, _position(position), msg("waste.import.value_without_header"))
        if len(values) > self.cols.width and not _blank(values[self.cols.width :]):
            self.report(line, _position(self.cols.width), msg("waste.import.more_values_than_headers"))

    # -- shared lookups

    def locked(self, enterprise_id: int, year: int) -> Message | None:
        """The reason a write to this enterprise's year is refused, or None; the rule is flows.access.locks'."""
        if year not in self._guarded:
            # The year's guard first, then its locks as they are now: a lock that landed since the import began
            # is seen, and one that comes later waits for the import.
            guard_year(session=self.session, year=year)
            self._guarded.add(year)
            if (
                self.session.scalars(
                    select(_table_of(PeriodLock).c.year).where(_table_of(PeriodLock).c.year == year)
                ).first()
                is not None
            ):
                self._locked_years.add(year)
        if year not in self._locked_years:
            return None
        key = (enterprise_id, year)
        if key not in self._locks:
            try:
                ensure_unlocked(session=self.session, enterprise_id=enterprise_id, year=year)
                self._locks[key] = None
            except PeriodLocked as exc:
                self._locks[key] = _problem_of(exc)
        return self._locks[key]

    @classmethod
    def authorise(cls, principal: Principal) -> int | None:
        """Refuse a principal who may not import this kind; the enterprise it is restricted to, if any."""
        if principal.is_admin:
            return None
        if principal.role is UserRole.enterprise and principal.enterprise_id is not None:
            return principal.enterprise_id
        raise Forbidden(
            "waste.import.role_cannot_import",
            role=Term(f"role.{principal.role}"),
            kind=Term(f"waste.import.kind.{cls.spec.kind}"),
        )

    # -- the work

    def add(self, line: int, values: Sequence[object]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError


def _unknown_category(text: str) -> Message:
    return msg("waste.import.unknown_category", value=_quoted(text)) if text else msg("waste.import.required")


def _codes(session: Session) -> dict[str, int]:
    """Credit code -> enterprise id, read once per import."""
    table = _table_of(Enterprise)
    return {str(code): int(ident) for code, ident in session.execute(select(table.c.uscc, table.c.id))}


def _categories(session: Session) -> dict[str, str]:
    """Code (upper case) and Chinese name -> category code, read once per import."""
    found: dict[str, str] = {}
    table = _table_of(WasteCategory)
    for code, name_zh, parent in session.execute(select(table.c.code, table.c.name_zh, table.c.parent_code)):
        # A 2024-catalogue code (with or without hyphens) is stored under its class (flows/waste/refdata.py).
        stored = parent if len(code) == 9 and parent else code
        found[code.upper()] = stored
        if len(code) == 9:
            found[f"{code[:3]}-{code[3:6]}-{code[6:]}"] = stored
        found.setdefault(name_zh, stored)
    return found


def _party(codes: dict[str, int], raw: str) -> int:
    """The id of an enterprise named by credit code; the reason when there is none."""
    code = raw.upper()
    found = codes.get(code)
    if found is None:
        check = validate_uscc(code)
        if not check.ok:
            raise _Bad(msg("waste.import.invalid_uscc", reason=check.problem))
        raise _Bad(msg("waste.import.no_enterprise", uscc=code))
    return found


def _problem_of(exc: DomainError) -> Message:
    """What a domain check refused, as a row's reason: the problem a field error wraps, else the whole error."""
    problem = exc.params.get("problem")
    return problem if isinstance(problem, Message) else Message(exc.code, exc.params)


def _table_of(model: type[SQLModel]) -> Table:
    return SQLModel.metadata.tables[str(model.__tablename__)]


@dataclass
class _EnterpriseRow:
    line: int
    uscc: str
    name: str
    name_en: str | None
    lon: float
    lat: float
    roles: frozenset[str]


@dataclass(frozen=True)
class _Stored:
    id: int
    name: str
    name_en: str | None
    lon: float
    lat: float
    overridden: bool
    place: tuple[str | None, str | None, str | None, int | None]
    roles: frozenset[str]


class _Enterprises(_Importer):
    spec = _Spec("enterprises", "enterprise", ("uscc", "name", "roles", "lon", "lat"), ("name_en", "datum"))

    @classmethod
    def authorise(cls, principal: Principal) -> int | None:
        """Enterprises are reference data: administrators only."""
        if not principal.is_admin:
            raise Forbidden("waste.import.admins_only")
        return None

    def __init__(self, session: Session, principal: Principal, cols: _Columns, now: datetime) -> None:
        super().__init__(session, principal, cols, now)
        roles: dict[int, set[str]] = defaultdict(set)
        links = _table_of(EnterpriseRoleLink)
        for ident, role in session.execute(select(links.c.enterprise_id, links.c.role)):
            roles[ident].add(str(role))
        e = _table_of(Enterprise).c
        query = select(
            e.id, e.uscc, e.name_zh, e.name_en, e.lon, e.lat, e.location_overridden,
            e.province_adcode, e.prefecture_adcode, e.county_adcode, e.park_id,
        )  # fmt: skip
        self.stored = {
            row.uscc: _Stored(
                row.id,
                row.name_zh,
                row.name_en,
                row.lon,
                row.lat,
                row.location_overridden,
                (row.province_adcode, row.prefecture_adcode, row.county_adcode, row.park_id),
                frozenset(roles.get(row.id, ())),
            )
            for row in session.execute(query)
        }
        self.seen: dict[str, int] = {}
        self.pending: list[_EnterpriseRow] = []
        self.i = {name: cols.index.get(name) for name in self.spec.known}

    def _roles(self, text: str) -> frozenset[str]:
        roles: set[str] = set()
        for part in ROLE_SEPARATORS.split(text):
            word = part.strip()
            if not word:
                continue
            role = ROLE_ALIASES.get(_norm(word))
            if role is None:
                try:
                    role = EnterpriseRole(word.lower())
                except ValueError:
                    allowed = [Term(f"waste.import.enterprise_role.{r.value}") for r in EnterpriseRole]
                    raise _Bad(msg("waste.import.unknown_role", value=_quoted(word), allowed=allowed)) from None
            roles.add(role.value)
        if not roles:
            raise _Bad(msg("waste.import.no_role"))
        return frozenset(roles)

    def add(self, line: int, values: Sequence[object]) -> None:
        i = self.i
        ok = True
        raw = _cell(values, i["uscc"])
        check = validate_uscc(raw)
        if not raw:
            self.fail(line, "uscc", msg("waste.import.required"))
            ok = False
        elif not check.ok:
            self.fail(line, "uscc", msg("waste.import.invalid_uscc", reason=check.problem))
            ok = False
        elif check.code in self.seen:
            self.fail(line, "uscc", msg("waste.import.repeats_line", value=check.code, line=self.seen[check.code]))
            ok = False
        else:
            self.seen[check.code] = line
        name = _cell(values, i["name"])
        if not name or len(name) > 128:
            self.fail(line, "name", msg("waste.import.too_long", limit=128) if name else msg("waste.import.required"))
            ok = False
        name_en = _cell(values, i["name_en"]) or None
        if name_en and len(name_en) > 128:
            self.fail(line, "name_en", msg("waste.import.too_long", limit=128))
            ok = False
        roles: frozenset[str] = frozenset()
        try:
            roles = self._roles(_cell(values, i["roles"]))
        except _Bad as exc:
            self.fail(line, "roles", exc.problem)
            ok = False
        point: list[float] = []
        for axis, limit in (("lon", 180), ("lat", 90)):
            try:
                number = _number(_raw(values, i[axis]))
                if number is None:
                    raise _Bad(msg("waste.import.required"))
                value = float(number)
                if not -limit <= value <= limit:
                    raise _Bad(msg("waste.import.outside", value=value, low=-limit, high=limit))
                point.append(value)
            except _Bad as exc:
                self.fail(line, axis, exc.problem)
                ok = False
        datum = parse_datum(_cell(values, i["datum"]))
        if datum is None:
            allowed = [d.value for d in Datum]
            self.fail(
                line,
                "datum",
                msg("waste.import.unknown_datum", value=_quoted(_cell(values, i["datum"])), allowed=allowed),
            )
            ok = False
        self.check_ignored(line, values)
        if ok:
            assert datum is not None
            # Stored in WGS84: a point taken from AMap, Tencent or Baidu maps is moved back onto GPS coordinates.
            lon, lat = point_to_wgs84(point[0], point[1], datum)
            self.pending.append(_EnterpriseRow(line, check.code, name, name_en, lon, lat, roles))
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        places = locate_many(session=self.session, points=[(r.lon, r.lat) for r in batch])
        inserts: list[tuple[_EnterpriseRow, dict[str, Any]]] = []
        updates: list[tuple[_EnterpriseRow, dict[str, Any]]] = []
        keep_name_en = "name_en" not in self.cols.index
        for r, loc in zip(batch, places, strict=True):
            if loc.province is None:
                self.fail(r.line, "lon", msg("waste.import.outside_regions", lon=r.lon, lat=r.lat))
                continue

            stored = self.stored.get(r.uscc)
            place, overridden = registry.derived_place(
                loc=loc,
                moved=stored is None or (stored.lon, stored.lat) != (r.lon, r.lat),
                overridden=stored is not None and stored.overridden,
                stored=stored.place if stored is not None else None,
            )
            name_en = stored.name_en if stored is not None and keep_name_en else r.name_en
            values: dict[str, Any] = {
                "name_zh": r.name,
                "name_en": name_en,
                "lon": r.lon,
                "lat": r.lat,
                "province_adcode": place[0],
                "prefecture_adcode": place[1],
                "county_adcode": place[2],
                "park_id": place[3],
                "location_overridden": overridden,
            }
            if stored is None:
                inserts.append((r, {"uscc": r.uscc, **values}))
            elif (stored.name, stored.name_en, stored.lon, stored.lat, stored.place, stored.roles) == (
                r.name,
                name_en,
                r.lon,
                r.lat,
                place,
                r.roles,
            ):
                self.skipped += 1
            else:
                updates.append((r, {"b_id": stored.id, **values}))
        if not self.clean:
            return
        table = _table_of(Enterprise)
        role_rows: list[dict[str, Any]] = []
        if inserts:
            stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            ids = self.session.scalars(stmt, [values for _, values in inserts]).all()
            role_rows.extend(
                {"enterprise_id": ident, "role": role}
                for (r, _), ident in zip(inserts, ids, strict=True)
                for role in sorted(r.roles)
            )
            self.inserted += len(inserts)
        if updates:
            # A page edit names the version it read: an import in between makes it stale.
            bump = update(table).where(table.c.id == bindparam("b_id")).values(version=table.c.version + 1)
            self.session.execute(bump, [v for _, v in updates])
            ids = [v["b_id"] for _, v in updates]
            summaries.follow(self.session, ids)  # a moved generator's county figure moves with it
            roles_table = _table_of(EnterpriseRoleLink)
            self.session.execute(delete(roles_table).where(roles_table.c.enterprise_id.in_(ids)))
            role_rows.extend({"enterprise_id": v["b_id"], "role": role} for r, v in updates for role in sorted(r.roles))
            self.updated += len(updates)
            self._keep_history(updates)
        if role_rows:
            self.session.execute(insert(_table_of(EnterpriseRoleLink)), role_rows)

    def _keep_history(self, updates: list[tuple[_EnterpriseRow, dict[str, Any]]]) -> None:
        """A moved point or changed roles goes into the enterprise's history, as an edit on its page does."""
        for r, v in updates:
            stored = self.stored[r.uscc]
            before = self._state(
                stored.name, stored.name_en, stored.lon, stored.lat, stored.place, stored.overridden, stored.roles
            )
            place = (v["province_adcode"], v["prefecture_adcode"], v["county_adcode"], v["park_id"])
            after = self._state(r.name, v["name_en"], r.lon, r.lat, place, v["location_overridden"], r.roles)
            registry.audit_enterprise_change(
                session=self.session,
                principal=replace(self.principal, channel=Channel.import_),
                enterprise_id=stored.id,
                before=before,
                after=after,
                now=self.now,
            )

    @staticmethod
    def _state(
        name: str,
        name_en: str | None,
        lon: float,
        lat: float,
        place: registry.Place,
        overridden: bool,
        roles: frozenset[str],
    ) -> dict[str, Any]:
        return {
            "name_zh": name,
            "name_en": name_en,
            "lon": lon,
            "lat": lat,
            "province_adcode": place[0],
            "prefecture_adcode": place[1],
            "county_adcode": place[2],
            "park_id": place[3],
            "location_overridden": overridden,
            "roles": sorted(roles),
        }


@dataclass
class _DeclarationRow:
    line: int
    key: tuple[int, str, int]
    figures: dict[str, Decimal]
    locked: Message | None = None  # the year is locked: a stored row needs a correction, a new one a late filing


class _Declarations(_Importer):
    spec = _Spec(
        "declarations",
        "declaration",
        ("uscc", "year", "category", "generated_t", "utilised_t", "disposed_t", "stored_t", "dumped_t"),
        ("utilised_prior_t", "disposed_prior_t"),
    )
    FIELD_COLUMNS: ClassVar[dict[str, str]] = {"enterprise_id": "uscc", "category_code": "category"}

    def __init__(self, session: Session, principal: Principal, cols: _Columns, now: datetime) -> None:
        super().__init__(session, principal, cols, now)
        self.own = self.authorise(principal)
        self.codes = _codes(session)
        self.categories = _categories(session)
        self.seen: dict[tuple[int, str, int], int] = {}
        self.pending: list[_DeclarationRow] = []
        self.i = {name: cols.index.get(name) for name in self.spec.known}

    def add(self, line: int, values: Sequence[object]) -> None:
        i = self.i
        ok = True
        enterprise: int | None = None
        raw = _cell(values, i["uscc"])
        try:
            if not raw:
                raise _Bad(msg("waste.import.required"))
            enterprise = _party(self.codes, raw)
            if self.own is not None and enterprise != self.own:
                raise _Bad(msg("waste.import.own_declarations_only"))
        except _Bad as exc:
            self.fail(line, "uscc", exc.problem)
            ok = False
        year = 0
        try:
            year = _year(_raw(values, i["year"]))
        except _Bad as exc:
            self.fail(line, "year", exc.problem)
            ok = False
        text = _cell(values, i["category"])
        category = self.categories.get(text.upper()) or self.categories.get(text)
        if category is None:
            self.fail(line, "category", _unknown_category(text))
            ok = False
        figures: dict[str, Decimal] = {}
        for name in FIGURES:
            try:
                figures[name] = _weight(_raw(values, i[name]), MAX_DECLARED_T) or Decimal(0)
            except _Bad as exc:
                self.fail(line, name, exc.problem)
                ok = False
        self.check_ignored(line, values)
        if not ok or enterprise is None or category is None:
            return
        key = (enterprise, category, year)
        if key in self.seen:
            self.fail(line, "uscc", msg("waste.import.repeated_declaration", line=self.seen[key]))
            return
        self.seen[key] = line
        locked = self.locked(enterprise, year)
        try:
            parse_declaration({"enterprise_id": enterprise, "category_code": category, "year": year, **figures})
        except InvalidInput as exc:
            column = self.FIELD_COLUMNS.get(exc.field or "", exc.field or "uscc")
            self.fail(line, column, _problem_of(exc))
            return
        self.pending.append(_DeclarationRow(line, key, figures, locked))
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        d = _table_of(Declaration).c
        enterprises = {r.key[0] for r in batch}
        years = {r.key[2] for r in batch}
        query = select(d.id, d.enterprise_id, d.category_code, d.year, *(d[f] for f in FIGURES)).where(
            d.enterprise_id.in_(enterprises), d.year.in_(years)
        )
        stored = {(row[1], row[2], row[3]): row for row in self.session.execute(query)}
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        late: list[_DeclarationRow] = []
        for r in batch:
            old = stored.get(r.key)
            if r.locked is not None:
                if old is not None:
                    self.fail(r.line, "year", r.locked)
                elif self.late_reason:
                    late.append(r)
                else:
                    self.fail(r.line, "year", msg("lockcheck.import_late", **r.locked.params))
            elif old is None:
                inserts.append({"enterprise_id": r.key[0], "category_code": r.key[1], "year": r.key[2], **r.figures})
            elif tuple(old[4:]) == tuple(r.figures[f] for f in FIGURES):
                self.skipped += 1
            else:
                updates.append({"b_id": old[0], **r.figures})
        if not self.clean:
            return
        table = _table_of(Declaration)
        if inserts:
            self.session.execute(insert(table), inserts)
            self.inserted += len(inserts)
        if updates:
            self.session.execute(update(table).where(table.c.id == bindparam("b_id")), updates)
            self.updated += len(updates)
        for r in late:
            # Through the one writer of requests: each is checked, audited and announced as one filed alone.
            payload = {"enterprise_id": r.key[0], "category_code": r.key[1], "year": r.key[2], **r.figures}
            request_correction(
                session=self.session,
                principal=self.principal,
                table=late_filings.DECLARATION,
                payload=payload,
                reason=self.late_reason or "",
                now=self.now,
            )
            self.late_filed += 1


_PG_EARLIER_KEYS = text(
    "SELECT b.shipper_id, b.idempotency_key, b.number, b.receiver_id, b.carrier_id, b.category_code, b.route,"
    " b.weight_dispatched_kg AS weight_dispatched_t, b.reference"
    " FROM unnest(CAST(:shippers AS integer[]), CAST(:keys AS text[])) AS given(s, k)"
    " JOIN transfer_batch b ON b.shipper_id = given.s AND b.idempotency_key = given.k"
).columns(weight_dispatched_t=TonnesKg())  # kilograms in the table, tonnes here as everywhere


def _earlier_keys(session: Session, pairs: list[tuple[int, str]]) -> dict[tuple[int, str], Any]:
    """Batches already made with these (shipper, idempotency key) pairs: one index probe per pair."""
    if session.get_bind().dialect.name == "postgresql":
        # Two array parameters joined against the (shipper_id, idempotency_key) index: a third of the time of
        # the portable query below, which PostgreSQL answers with one bitmap scan per shipper.
        params = {"shippers": [p[0] for p in pairs], "keys": [p[1] for p in pairs]}
        return {(row[0], row[1]): row for row in session.execute(_PG_EARLIER_KEYS, params)}
    # Grouped by shipper, the index answers each group; a plain "shipper IN (...) AND key IN (...)" would probe
    # every combination of the two lists.
    groups: dict[int, set[str]] = defaultdict(set)
    for shipper, key in pairs:
        groups[shipper].add(key)
    b = _table_of(Manifest).c
    match = or_(*(and_(b.shipper_id == ship, b.idempotency_key.in_(keys)) for ship, keys in groups.items()))
    query = select(
        b.shipper_id, b.idempotency_key, b.number, b.receiver_id, b.carrier_id, b.category_code, b.route,
        b.weight_dispatched_t, b.reference,
    ).where(match)  # fmt: skip
    return {(row[0], row[1]): row for row in session.execute(query)}


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _sources(cell: object) -> list[tuple[str, int | None]]:
    """The lots a `sources` cell names, `NUMBER[:TONNES];NUMBER[:TONNES]`: (number, kilograms or None for pro rata)."""
    text = _nfkc(_text(cell))  # a Chinese input method types ； and ： (and may type the digits full-width)
    found: list[tuple[str, int | None]] = []
    for part in text.split(SOURCE_SEPARATOR):
        if not part.strip():
            continue  # "A;B;" and "A; ;B" name two lots
        number, colon, amount = (piece.strip() for piece in part.partition(SOURCE_TONNES))
        if not number:
            raise _Bad(msg("waste.import.source_number", value=_quoted(part.strip())))
        if len(number) > 64:
            raise _Bad(msg("waste.import.source_too_long", value=_quoted(number), limit=64))
        kg: int | None = None
        if colon:
            tonnes = _weight(amount, MAX_MANIFEST_T)  # read strictly: "1,5" is refused, never 15
            if not tonnes:
                raise _Bad(msg("waste.import.source_tonnes", source=number))
            kg = to_kg(tonnes)
        found.append((number, kg))
    if len(found) > MAX_SOURCES:
        raise _Bad(msg("waste.import.too_many_sources", count=len(found), limit=MAX_SOURCES))
    return found


@dataclass
class _ManifestRow:
    line: int
    number: str | None
    values: dict[str, Any]
    sources: list[tuple[str, int | None]] = field(default_factory=list)  # lots named: (number as given, kg or None)
    drawn: list[tuple[int, int | None]] = field(default_factory=list)  # the lots found: (hop id, kg or None)

    @property
    def hop(self) -> chains.Hop:
        """The row as the chain checks see it; a row of the file is known by -line until it has an id."""
        v = self.values
        arrived = v["status"] == ManifestStatus.received.value and v["weight_received_t"] is not None
        return chains.Hop(
            id=-self.line,
            shipper_id=v["shipper_id"],
            receiver_id=v["receiver_id"],
            category_code=v["category_code"],
            route=v["route"],
            dispatched_kg=to_kg(v["weight_dispatched_t"]),
            received_kg=to_kg(v["weight_received_t"]) if arrived else None,
            dispatched_at=v["dispatched_at"] or v["created_at"],
        )


_STORED_LOT = select(
    *(
        _table_of(Manifest).c[name]
        for name in (
            "id", "number", "shipper_id", "receiver_id", "category_code", "route", "status",
            "weight_dispatched_t", "weight_received_t", "dispatched_at", "created_at",
        )
    )
)  # fmt: skip


class _Manifests(_Importer):
    spec = _Spec(
        "manifests",
        "transfer_batch",
        ("shipper_uscc", "receiver_uscc", "category", "route"),
        (
            "number",
            "carrier_uscc",
            "dispatched_at",
            "weight_received_t",
            "weight_received_kg",
            "received_at",
            "rejected_t",
            "rejected_kg",
            "rejection_reason",
            "idempotency_key",
            "sources",
            "vehicle_plate",
            "transport_mode",
            "packaging",
            "weighing",
        ),
        (("weight_dispatched_t", "weight_dispatched_kg"),),
    )
    FIELDS: ClassVar[tuple[str, ...]] = (
        "number",
        "shipper_uscc",
        "receiver_uscc",
        "carrier_uscc",
        "category",
        "route",
        "weight_dispatched_t",
        "weight_dispatched_kg",
        "dispatched_at",
        "weight_received_t",
        "weight_received_kg",
        "received_at",
        "rejected_t",
        "rejected_kg",
        "rejection_reason",
        "idempotency_key",
        "sources",
        "vehicle_plate",
        "transport_mode",
        "packaging",
        "weighing",
    )

    def __init__(self, session: Session, principal: Principal, cols: _Columns, now: datetime) -> None:
        super().__init__(session, principal, cols, now)
        self.own = self.authorise(principal)
        self.codes = _codes(session)
        self.categories = _categories(session)
        self.routes: dict[str, str] = {_norm(r.value): r.value for r in Route}
        self.routes.update({_norm(k): v.value for k, v in ROUTE_ALIASES.items()})
        self.numbers: dict[tuple[int, str], int] = {}  # (shipper, its own number) given in this file -> line
        self.keys: dict[tuple[int, str], int] = {}
        self.pending: list[_ManifestRow] = []
        self.now_utc = now.astimezone(UTC)
        self.pick = itemgetter(*(cols.index.get(name, cols.width) for name in self.FIELDS))
        self.modes: dict[str, str] = {_norm(m.value): m.value for m in TransportMode}
        self.modes.update({_norm(k): v.value for k, v in TRANSPORT_ALIASES.items()})
        self.weighings: dict[str, str] = {_norm(w.value): w.value for w in Weighing}
        self.weighings.update({_norm(k): v.value for k, v in WEIGHING_ALIASES.items()})
        # Chains: every numbered row of the file by its number (NFKC), so that a later row can name it as a source.
        self.lines_of: dict[str, list[int]] = defaultdict(list)  # every row that gave the number, refused or not
        self.lots: dict[str, list[_ManifestRow]] = defaultdict(list)  # rows that gave the number and were accepted
        self.stored_as: dict[int, str] = {}  # line of a row imported before (skipped) -> its stored number
        self.stored_lots: dict[str, chains.Hop | None] = {}  # stored manifests named as sources, by number
        self.drawn: dict[int, int] = {}  # kg drawn from each lot so far: before the import, then by earlier rows
        self.ids: dict[int, int] = {}  # -line of an inserted row -> its id
        self.unresolved: list[tuple[int, str]] = []  # (line, number) of sources found neither in the file nor stored

    def _when(self, name: str, cell: object, bad: list[tuple[str, Message]]) -> datetime | None:
        try:
            moment = _moment(cell)
        except _Bad as exc:
            bad.append((name, exc.problem))
            return None
        if moment is not None and moment > self.now_utc:
            bad.append((name, msg("waste.import.in_future", value=_quoted(_text(cell)))))
            return None
        return moment

    def _pair(self, name: str, tonnes_cell: object, kg_cell: object, bad: list[tuple[str, Message]]) -> Decimal | None:
        if (tonnes_cell is None or tonnes_cell == "") and (kg_cell is None or kg_cell == ""):
            return None
        try:
            tonnes = _weight(tonnes_cell, MAX_MANIFEST_T)
        except _Bad as exc:
            bad.append((f"{name}_t", exc.problem))
            return None
        try:
            kilograms = _weight(kg_cell, MAX_MANIFEST_T * 1000, "kg")
        except _Bad as exc:
            bad.append((f"{name}_kg", exc.problem))
            return None
        if tonnes is not None and kilograms is not None:
            bad.append((f"{name}_kg", msg("waste.import.both_units", other=self.cols.label(name + "_t"))))
            return None
        # Converted once, here, at the edge: stored weights are exact tonnes of whole kilograms.
        return kg_as_tonnes(to_kg(kilograms, "kg")) if kilograms is not None else tonnes

    def _enterprise(self, name: str, cell: object, bad: list[tuple[str, Message]]) -> int | None:
        raw = _text(cell)
        if not raw:
            if name == "shipper_uscc" and self.own is not None:
                return self.own
            if name != "carrier_uscc":
                bad.append((name, msg("waste.import.required")))
            return None
        found = self.codes.get(raw) or self.codes.get(raw.upper())
        if found is None:
            try:
                found = _party(self.codes, raw)
            except _Bad as exc:
                bad.append((name, exc.problem))
        return found

    def _handover(
        self, plate: object, mode: object, packaging: object, weighing: object, bad: list[tuple[str, Message]]
    ) -> dict[str, str | None]:
        """What the handover records (sealed at dispatch, as the API's writer seals it): bounded, modes read aloud."""
        values: dict[str, str | None] = {
            "vehicle_plate": None,
            "transport_mode": None,
            "packaging": None,
            "weighing": None,
        }
        for name, cell, limit in (("vehicle_plate", plate, 16), ("packaging", packaging, 64)):
            text = _text(cell)
            if len(text) > limit:
                bad.append((name, msg("waste.import.too_long", limit=limit)))
            values[name] = text or None
        for name, cell, known, unknown, allowed in (
            ("transport_mode", mode, self.modes, "waste.import.unknown_transport_mode", _MODE_TERMS),
            ("weighing", weighing, self.weighings, "waste.import.unknown_weighing", _WEIGHING_TERMS),
        ):
            text = _text(cell)
            if not text:
                continue
            value = known.get(_norm(text))
            if value is None:
                bad.append((name, msg(unknown, value=_quoted(text), allowed=allowed)))
            values[name] = value
        return values

    def add(self, line: int, values: Sequence[object]) -> None:
        width = self.cols.width
        # Every column this importer knows, absent ones included, picked in one call: absent ones point at the
        # None appended after the row's own cells.
        cells = [*values, None] if len(values) == width else [*values[:width], *[None] * (width - len(values)), None]
        (
            number_cell, shipper_cell, receiver_cell, carrier_cell, category_cell, route_cell,
            dispatched_t_cell, dispatched_kg_cell, dispatched_at_cell,
            received_t_cell, received_kg_cell, received_at_cell,
            rejected_t_cell, rejected_kg_cell, reason_cell, key_cell,
            sources_cell, plate_cell, mode_cell, packaging_cell, weighing_cell,
        ) = self.pick(cells)  # fmt: skip
        bad: list[tuple[str, Message]] = []
        shipper = self._enterprise("shipper_uscc", shipper_cell, bad)
        receiver = self._enterprise("receiver_uscc", receiver_cell, bad)
        carrier = self._enterprise("carrier_uscc", carrier_cell, bad)
        if self.own is not None and shipper is not None and shipper != self.own:
            bad.append(("shipper_uscc", msg("waste.import.own_shipments_only")))
        if shipper is not None and shipper == receiver:
            bad.append(("receiver_uscc", msg("waste.import.receiver_is_shipper")))
        text = _text(category_cell)
        category = self.categories.get(text) or self.categories.get(text.upper())
        if category is None:
            bad.append(("category", _unknown_category(text)))
        text = _text(route_cell)
        route = self.routes.get(text) or self.routes.get(_norm(text))
        if route is None:
            if text:
                # Each route in the reader's words, which the importer also reads (ROUTE_ALIASES).
                routes = [Term(f"waste.flag.route.{r.value}") for r in Route]
                bad.append(("route", msg("waste.import.unknown_route", value=_quoted(text), routes=routes)))
            else:
                bad.append(("route", msg("waste.import.required")))
        parsed = len(bad)
        dispatched_t = self._pair("weight_dispatched", dispatched_t_cell, dispatched_kg_cell, bad)
        if dispatched_t is None and len(bad) == parsed:
            other = self.cols.label("weight_dispatched_kg")
            bad.append(("weight_dispatched_t", msg("waste.import.required_or", other=other)))
        parsed = len(bad)
        received_t = self._pair("weight_received", received_t_cell, received_kg_cell, bad)
        rejected_t = self._pair("rejected", rejected_t_cell, rejected_kg_cell, bad)
        dispatched_at = self._when("dispatched_at", dispatched_at_cell, bad)
        received_at = self._when("received_at", received_at_cell, bad)
        reason = _text(reason_cell) or None
        if reason is not None and len(reason) > 512:
            bad.append(("rejection_reason", msg("waste.import.too_long", limit=512)))
        receipt_parsed = len(bad) == parsed
        if self.own is not None:
            # One side per party: the receiver confirms what it received, through its own account.
            given = [
                name
                for name, cell in (
                    ("weight_received_t", received_t_cell),
                    ("weight_received_kg", received_kg_cell),
                    ("received_at", received_at_cell),
                    ("rejected_t", rejected_t_cell),
                    ("rejected_kg", rejected_kg_cell),
                    ("rejection_reason", reason_cell),
                )
                if _text(cell)
            ]
            if given:
                bad.append((given[0], msg("waste.import.receipt_is_receivers")))
        number = _text(number_cell) or None
        if number is not None and len(number) > 64:
            bad.append(("number", msg("waste.import.too_long", limit=64)))
        key = _text(key_cell) or None
        if key is not None and len(key) > 128:
            bad.append(("idempotency_key", msg("waste.import.too_long", limit=128)))
        handover = self._handover(plate_cell, mode_cell, packaging_cell, weighing_cell, bad)
        sources: list[tuple[str, int | None]] = []
        try:
            sources = _sources(sources_cell)
        except _Bad as exc:
            bad.append(("sources", exc.problem))
        if number is not None:
            # Every numbered row, refused or not: a source naming it is then told apart from one naming nothing.
            self.lines_of[_nfkc(number)].append(line)
        if self.cols.ignored or len(values) > width:
            self.check_ignored(line, values)
        status = ManifestStatus.dispatched if dispatched_at is not None else ManifestStatus.draft
        if received_t is not None or received_at is not None or rejected_t is not None or reason is not None:
            if receipt_parsed:
                status, rejected_t = self._receipt(dispatched_t, received_t, received_at, rejected_t, reason, bad)
            if dispatched_at is None and not _text(dispatched_at_cell):
                bad.append(("dispatched_at", msg("waste.import.dispatch_time_required")))
            elif dispatched_at is not None and received_at is not None and received_at < dispatched_at:
                bad.append(("received_at", msg("waste.import.received_before_dispatch")))
        local = (dispatched_at or self.now).astimezone(CST)
        if not 2000 <= local.year <= 2100:
            bad.append(("dispatched_at", msg("waste.import.year_outside", year=local.year)))
        if bad:
            for name, problem in bad:
                self.fail(line, name, problem)
            return
        assert shipper is not None and receiver is not None and category is not None and route is not None
        if number is not None:
            if (shipper, number) in self.numbers:
                earlier = self.numbers[(shipper, number)]
                self.fail(line, "number", msg("waste.import.repeats_line", value=number, line=earlier))
                return
            self.numbers[(shipper, number)] = line
        if key is not None:
            if (shipper, key) in self.keys:
                earlier = self.keys[(shipper, key)]
                self.fail(line, "idempotency_key", msg("waste.import.repeated_key", key=key, line=earlier))
                return
            self.keys[(shipper, key)] = line
        for party in (shipper, receiver):
            locked = self.locked(party, local.year)
            if locked is not None:
                self.fail(line, "dispatched_at", locked)
                return
        row = _ManifestRow(
            line,
            number,
            {
                # The service numbers every manifest from its own counter; a number in the file is the
                # shipper's own reference, kept beside it.
                "number": None,
                "reference": number,
                "idempotency_key": key,
                "shipper_id": shipper,
                "receiver_id": receiver,
                "carrier_id": carrier,
                "category_code": category,
                "route": route,
                "year": local.year,
                "status": status.value,
                "weight_dispatched_t": dispatched_t,
                "weight_received_t": received_t,
                "dispatched_at": dispatched_at.astimezone(UTC) if dispatched_at else None,
                "received_at": received_at.astimezone(UTC) if received_at else None,
                "rejected_t": rejected_t,
                "rejection_reason": reason,
                "cancel_reason": None,
                "created_at": self.now_utc,
                **handover,
            },
            sources,
        )
        self.pending.append(row)
        if number is not None:
            self.lots[_nfkc(number)].append(row)
        if len(self.pending) >= CHUNK:
            self.flush(final=False)

    @staticmethod
    def _receipt(
        dispatched_t: Tonnes | None,
        received_t: Tonnes | None,
        received_at: datetime | None,
        rejected_t: Tonnes | None,
        reason: str | None,
        bad: list[tuple[str, Message]],
    ) -> tuple[ManifestStatus, Decimal | None]:
        """The status and refused weight that the receipt columns describe (the API's receive and reject steps)."""
        if received_t is not None:
            if received_at is None:
                bad.append(("received_at", msg("waste.import.received_at_required")))
            if rejected_t and reason is None:
                bad.append(("rejection_reason", msg("waste.import.part_rejection_reason")))
            return ManifestStatus.received, rejected_t
        if reason is None:
            if rejected_t is not None:
                bad.append(("rejection_reason", msg("waste.import.rejection_reason")))
            else:
                bad.append(("weight_received_t", msg("waste.import.received_weight_required")))
            return ManifestStatus.received, rejected_t
        # A reason without a received weight: the whole batch was refused.
        if received_at is None:
            bad.append(("received_at", msg("waste.import.rejected_at_required")))
        if rejected_t is not None and dispatched_t is not None and not math.isclose(rejected_t, dispatched_t):
            bad.append(("rejected_t", msg("waste.import.whole_rejection")))
        return ManifestStatus.rejected, dispatched_t

    def flush(self, final: bool = True) -> None:
        batch, self.pending = self.pending, []
        accepted = self._new_rows(batch) if batch else []
        self._check_sources(accepted)
        if final:
            self._report_unresolved()
        if not self.clean or self.unresolved or not accepted:
            return
        by_year: dict[int, list[_ManifestRow]] = defaultdict(list)
        for r in accepted:
            by_year[r.values["year"]].append(r)
        for year, rows in by_year.items():
            for r, number in zip(rows, reserve_numbers(self.session, year, len(rows)), strict=True):
                r.values["number"] = number
        table = _table_of(Manifest)
        self.session.execute(insert(table), [r.values for r in accepted])
        self.inserted += len(accepted)
        # Inserted in bulk, outside the ORM's flush: their sources are kept and their chains allocated here, in
        # the same transaction.
        numbers = [r.values["number"] for r in accepted]
        id_of: dict[str, int] = {}
        for start in range(0, len(numbers), CHUNK):
            query = select(table.c.number, table.c.id).where(table.c.number.in_(numbers[start : start + CHUNK]))
            id_of.update((str(number), int(ident)) for number, ident in self.session.execute(query))
        for r in accepted:
            self.ids[-r.line] = id_of[r.values["number"]]
        number_rows.record(self.session, id_of.values())
        links = [
            {
                "manifest_id": self.ids[-r.line],
                "source_id": self.ids.get(lot, lot),
                "weight_t": None if kg is None else kg_as_tonnes(kg),
            }
            for r in accepted
            for lot, kg in r.drawn
        ]
        if links:
            self.session.execute(insert(_table_of(ManifestSource)), links)
        chains.reallocate(self.session, id_of.values())

    def _new_rows(self, batch: list[_ManifestRow]) -> list[_ManifestRow]:
        """The rows to insert: a row imported before (its shipper's idempotency key, the same content) is skipped."""
        pairs = [(r.values["shipper_id"], r.values["idempotency_key"]) for r in batch if r.values["idempotency_key"]]
        earlier = _earlier_keys(self.session, pairs) if pairs else {}
        accepted: list[_ManifestRow] = []
        for r in batch:
            v = r.values
            old = earlier.get((v["shipper_id"], v["idempotency_key"])) if v["idempotency_key"] else None
            if old is not None:
                same = (old[3], old[4], old[5], str(old[6]), old[7]) == (
                    v["receiver_id"],
                    v["carrier_id"],
                    v["category_code"],
                    v["route"],
                    v["weight_dispatched_t"],
                ) and r.number in (None, old[8])
                if same:
                    self.skipped += 1  # imported before: a re-run of the same file changes nothing
                    self.stored_as[r.line] = old[2]  # a later row naming it draws on the stored manifest
                else:
                    reused = msg("waste.import.key_reused", key=v["idempotency_key"], number=old[2])
                    self.fail(r.line, "idempotency_key", reused)
                continue

            accepted.append(r)
        return accepted

    # -- chains: the lots a row names, checked by the API writer's own check (chains.check_named)

    def _lot_of(self, r: _ManifestRow, given: str) -> _ManifestRow | str | Message:
        """Where a named lot is: an earlier row of the file, else a stored number; or why it cannot be."""
        if r.number is not None and _nfkc(r.number) == given:
            return msg("waste.chain.source_itself", source=given)
        shipper = r.values["shipper_id"]
        earlier = [
            lot for lot in self.lots.get(given, ()) if lot.line < r.line and lot.values["receiver_id"] == shipper
        ]
        if len(earlier) > 1:
            return msg("waste.chain.source_ambiguous", source=given, lines=", ".join(str(x.line) for x in earlier))
        if earlier:
            return self.stored_as.get(earlier[0].line, earlier[0])
        return given

    def _check_sources(self, rows: list[_ManifestRow]) -> None:
        named = [r for r in rows if r.sources]
        if not named:
            return
        where = {r.line: [(given, kg, self._lot_of(r, given)) for given, kg in r.sources] for r in named}
        wanted = sorted(
            {lot for found in where.values() for _, _, lot in found if isinstance(lot, str)} - set(self.stored_lots)
        )
        self._load_lots(wanted)
        for r in named:
            entries: list[chains.Named] = []
            for given, kg, lot in where[r.line]:
                if isinstance(lot, Message):
                    self.fail(r.line, "sources", lot)
                    break
                if isinstance(lot, str):
                    hop = self.stored_lots.get(lot)
                    if hop is None:
                        # Neither an earlier row nor a stored manifest: a later row, or nothing (known at the end).
                        self.unresolved.append((r.line, given))
                        break
                    entries.append(chains.Named(given, hop, kg, lot))
                else:
                    entries.append(chains.Named(given, lot.hop, kg))
            else:
                try:
                    draws = chains.check_named(r.hop, entries, self.drawn)
                except InvalidInput as exc:
                    params = dict(exc.params)
                    if "manifest" in params:
                        params["manifest"] = r.number or msg("waste.import.row_line", line=r.line)
                    self.fail(r.line, "sources", Message(exc.code, params))
                    continue
                for lot_id, kg in draws.items():
                    self.drawn[lot_id] = self.drawn.get(lot_id, 0) + kg
                r.drawn = [(entry.lot.id, entry.kg) for entry in entries if entry.lot is not None]

    def _load_lots(self, numbers: list[str]) -> None:
        """Stored manifests named as sources, locked as the API's writer locks them, and what was drawn from them."""
        found: list[chains.Hop] = []
        table = _table_of(Manifest)
        serialise_writers(self.session)  # before the lots are locked: see flows/access/trail.py
        for start in range(0, len(numbers), CHUNK):
            part = numbers[start : start + CHUNK]
            self.stored_lots.update(dict.fromkeys(part))
            query = _STORED_LOT.where(table.c.number.in_(part)).with_for_update()
            for row in self.session.execute(query):
                hop = chains.hop_of(row)
                self.stored_lots[row.number] = hop
                found.append(hop)
        if found:
            ids = [hop.id for hop in found]
            for start in range(0, len(ids), CHUNK):
                self.drawn.update(chains.drawn_from(self.session, ids[start : start + CHUNK]))

    def _report_unresolved(self) -> None:
        """Sources found nowhere, told once the whole file is read: a later row, or no manifest at all."""
        for line, given in self.unresolved:
            accepted = {lot.line for lot in self.lots.get(given, ())}
            lines = self.lines_of.get(given, [])
            if any(other < line and other not in accepted for other in lines):
                continue  # an earlier row of that number was refused: its own refusal says why
            later = [other for other in lines if other > line]
            if later:
                self.fail(line, "sources", msg("waste.chain.source_later", source=given, line=later[0]))
            else:
                self.fail(line, "sources", msg("waste.chain.no_source", source=given))


# ---------------------------------------------------------------------------------------------------------------
# Running an import


def _header_at(headers: Sequence[str], position: int | None) -> tuple[str, Message]:
    """A column named as the file names it (or by its number, past the header or when unknown)."""
    if position is not None and position < len(headers) and headers[position]:
        return headers[position], _named(headers[position])
    return _position(position) if position is not None else FILE_COLUMN


@contextmanager
def _binary(source: Source) -> Iterator[tuple[IO[bytes], str]]:
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            handle = path.open("rb")
        except OSError as exc:
            reason = exc.strerror
            raise InvalidInput("waste.import.unreadable_file", field="file", path=str(path), reason=reason) from None
        with handle:
            yield handle, path.name
        return
    yield source, Path(str(getattr(source, "name", "upload"))).name


def _run(
    importer: type[_Importer],
    *,
    session: Session,
    principal: Principal,
    source: Source,
    now: datetime,
    name: str | None,
    progress: Progress | None,
    limits: UploadLimits,
    late_reason: str | None = None,
) -> ImportSummary:
    spec = importer.spec
    importer.authorise(principal)  # before the file is read: a refusal says nothing about its content
    try:
        with _binary(source) as (stream, file_name):
            file_name = name or file_name
            scan = _scan(stream, limits)
            with _open_table(stream, scan, limits) as table:
                own = principal.enterprise_id if principal.role is UserRole.enterprise else None
                # An enterprise account's manifests are its own: the shipper column may be left out.
                optional = frozenset({"shipper_uscc"}) if own is not None and spec.kind == "manifests" else frozenset()
                try:
                    cols = _map_columns(spec, table.headers, table.header_line, optional_required=optional)
                except ImportRefused as exc:
                    raise ImportRefused(file_name, exc.errors, exc.total, 0) from None
                worker = importer(session, principal, cols, now)
                worker.late_reason = late_reason
                rows = 0
                try:
                    for line, values in table.rows:
                        rows += 1
                        if rows > limits.max_rows:
                            raise InvalidInput(
                                "waste.import.too_many_rows", field="file", row=line, limit=limits.max_rows, line=line
                            )
                        problems = _cell_problems(values, limits.max_field_chars)
                        if problems:
                            for position, problem in problems:
                                worker.report(line, _header_at(table.headers, position), problem)
                        else:
                            worker.add(line, values)
                        if progress is not None and rows % PROGRESS_EVERY == 0:
                            progress(rows, max(table.total or 0, rows) if table.total is not None else None)
                except _FieldTooLong as exc:
                    # The reader cannot go on past such a field: the rows so far and this one are what is refused.
                    too_long = msg("waste.import.csv_field_too_long", limit=csv.field_size_limit())
                    worker.report(exc.line, _header_at(table.headers, exc.position), too_long)
                    rows += 1
                worker.flush()
                for bad_line in table.undecodable:
                    worker.report(bad_line, FILE_COLUMN, msg("waste.import.undecodable", encoding=scan.encoding))
                if progress is not None:
                    progress(rows, rows)
            if not worker.clean:
                errors = sorted(worker.errors, key=lambda e: e.line)
                raise ImportRefused(file_name, errors, worker.error_total, rows)
            summary = ImportSummary(
                kind=spec.kind,
                file=file_name,
                sha256=scan.sha256,
                format=scan.format,
                encoding=scan.encoding,
                rows=rows,
                inserted=worker.inserted,
                updated=worker.updated,
                skipped=worker.skipped,
                late_filed=worker.late_filed,
            )
            record(
                session=session,
                principal=replace(principal, channel=Channel.import_),
                action="import",
                table=spec.table,
                row_id=f"{rows} rows",
                before=None,
                after={
                    "file": file_name,
                    "sha256": scan.sha256,
                    "rows": rows,
                    "inserted": worker.inserted,
                    "updated": worker.updated,
                    "skipped": worker.skipped,
                    # Said only when some were: each late filing has its own entry beside this one.
                    **({"late_filed": worker.late_filed} if worker.late_filed else {}),
                },
                now=now,
                enterprises=(principal.enterprise_id,) if principal.role is UserRole.enterprise else (),
            )
    except IntegrityError as exc:
        # Only a concurrent writer gets here (every rule is checked before writing); the message says what clashed.
        session.rollback()
        raise Conflict("waste.import.database_refused", field="file", detail=str(exc.orig)) from None

    except BaseException:
        session.rollback()
        raise
    # Rows were written with Core statements: objects loaded earlier in this session may be stale.
    session.expire_all()
    return summary


def import_enterprises(
    *,
    session: Session,
    principal: Principal,
    source: Source,
    now: datetime,
    name: str | None = None,
    progress: Progress | None = None,
    limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
) -> ImportSummary:
    """Create or update enterprises (uscc, name, roles, lon, lat; optional name_en); administrators only.

    An existing credit code is updated (name, roles, location and the region and park derived from it); a row
    identical to what is stored is skipped. Roles are separated by ';', '；' or ','.
    """
    return _run(
        _Enterprises,
        session=session,
        principal=principal,
        source=source,
        now=now,
        name=name,
        progress=progress,
        limits=limits,
    )


def import_declarations(
    *,
    session: Session,
    principal: Principal,
    source: Source,
    now: datetime,
    name: str | None = None,
    progress: Progress | None = None,
    limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
    late_reason: str | None = None,
) -> ImportSummary:
    """Insert or replace annual declarations (uscc, year, category and the figures in t; blank = 0).

    Checked as flows.waste.declarations.parse_declaration checks one; a (uscc, category, year) twice in the file, a
    locked period, or (for an enterprise account) another enterprise's row is refused. With `late_reason`, a new row
    of a locked year is filed as a late filing (flows/waste/late_filings.py) instead; a stored one still needs a
    correction.
    """
    return _run(
        _Declarations,
        session=session,
        principal=principal,
        source=source,
        now=now,
        name=name,
        progress=progress,
        limits=limits,
        late_reason=(late_reason or "").strip() or None,
    )


def import_manifests(
    *,
    session: Session,
    principal: Principal,
    source: Source,
    now: datetime,
    name: str | None = None,
    progress: Progress | None = None,
    limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
) -> ImportSummary:
    """Insert manifests (transfer batches); the status follows from the columns that are filled in.

    Columns (English names; Chinese aliases in HEADER_ALIASES):
      number                 optional; generated as SC<year>-<7 digits> when blank, else unique
      shipper_uscc           required (an enterprise account may leave it out: its own enterprise)
      receiver_uscc          required, another enterprise than the shipper
      carrier_uscc           optional
      category               a waste category code (SW01, ...) or its Chinese name
      route                  a Route value or its Chinese name (ROUTE_ALIASES: 水泥掺合料, 建材, 充填, ...)
      weight_dispatched_t    or weight_dispatched_kg: one of the two, zero or more
      dispatched_at          optional ISO date or date-time (without an offset: Beijing time); not in the future
      weight_received_t/_kg  with received_at (not before dispatched_at): the batch was received
      rejected_t/_kg         optional part refused on receipt; needs rejection_reason
      rejection_reason       alone (with received_at, no received weight): the whole batch was refused
      idempotency_key        optional; a key the shipper used before is skipped when the row is identical,
                             refused when it differs
      sources                optional; NUMBER[:TONNES];... (；and ：too): stored manifests' numbers or the number
                             of earlier rows, checked as the API checks sources (chains.check_named); no tonnes:
                             pro rata over what the lots received
      vehicle_plate          optional, up to 16 characters; packaging optional, up to 64
      transport_mode         optional; a TransportMode value or its Chinese word (TRANSPORT_ALIASES)
      weighing               optional; weighed or estimated (称重, 估算)
    Status: draft without dispatched_at; dispatched with it; received or rejected with the receipt columns.
    The reporting year is that of dispatched_at in Beijing time (else of now); locked years are refused.
    """
    return _run(
        _Manifests,
        session=session,
        principal=principal,
        source=source,
        now=now,
        name=name,
        progress=progress,
        limits=limits,
    )


# ---------------------------------------------------------------------------------------------------------------
# Licences: reference data kept by the bureaus, written row by row through flows.waste.licences' one writer


def _said(exc: FieldProblem) -> Message:
    """A field's problem as a message (the licence parsers always give one)."""
    problem = exc.problem
    return problem if isinstance(problem, Message) else msg("waste.input.other", detail=problem)


@dataclass
class _LicenceRow:
    line: int
    licence: licences.LicenceIn


class _Licences(_Importer):
    spec = _Spec(
        "licences",
        "licence",
        ("uscc", "activity", "category", "valid_from", "capacity_t", "licence_no"),
        ("valid_to",),
        aliases=tuple(
            (_norm(header), name)
            for header, name in (
                ("经营类别", "activity"),
                ("活动", "activity"),
                ("经营方式", "activity"),
                ("有效期起", "valid_from"),
                ("有效期自", "valid_from"),
                ("有效期止", "valid_to"),
                ("有效期至", "valid_to"),
                ("年许可能力(吨)", "capacity_t"),
                ("年许可能力", "capacity_t"),
                ("许可能力(吨/年)", "capacity_t"),
                ("许可证编号", "licence_no"),
                ("许可证号", "licence_no"),
                ("number", "licence_no"),
                ("licence_number", "licence_no"),
            )
        ),
    )
    # The writer names its fields; the file names its columns.
    COLUMN_OF: ClassVar[dict[str, str]] = {"number": "licence_no", "licence_id": "uscc", "revision": "uscc"}

    @classmethod
    def authorise(cls, principal: Principal) -> int | None:
        """Licences are kept by the bureaus (within their region) and administrators."""
        if principal.is_admin or principal.role is UserRole.bureau:
            return None
        raise Forbidden(
            "waste.import.role_cannot_import",
            role=Term(f"role.{principal.role}"),
            kind=Term(f"waste.import.kind.{cls.spec.kind}"),
        )

    def __init__(self, session: Session, principal: Principal, cols: _Columns, now: datetime) -> None:
        super().__init__(session, principal, cols, now)
        self.authorise(principal)
        self.categories = _categories(session)
        self.enterprises: dict[str, int | Message] = {}  # credit code -> id, or why it cannot be licensed here
        self.seen: dict[tuple[int, str, str, date], int] = {}
        self.pending: list[_LicenceRow] = []
        self.i = {name: cols.index.get(name) for name in self.spec.known}

    def _enterprise(self, raw: str) -> int:
        code = raw.strip().upper()
        if code not in self.enterprises:
            try:
                self.enterprises[code] = licences.licensed_enterprise(self.session, self.principal, code)
            except (InvalidInput, Forbidden) as exc:
                self.enterprises[code] = licences.problem_of(exc)
        found = self.enterprises[code]
        if isinstance(found, Message):
            raise _Bad(found)
        return found

    def _date(self, value: object, *, required: bool) -> date | None:
        moment = _moment(value)
        if moment is None:
            if required:
                raise _Bad(msg("waste.import.required"))
            return None
        day = moment.astimezone(CST).date()
        if not 1950 <= day.year <= 2100:
            raise _Bad(msg("waste.licence.date_outside", value=day.isoformat(), low=1950, high=2100))
        return day

    def add(self, line: int, values: Sequence[object]) -> None:
        i = self.i
        bad: list[tuple[str, Message]] = []
        enterprise: int | None = None
        raw = _cell(values, i["uscc"])
        try:
            if not raw:
                raise _Bad(msg("waste.import.required"))
            enterprise = self._enterprise(raw)
        except _Bad as exc:
            bad.append(("uscc", exc.problem))
        activity: LicenceActivity | None = None
        try:
            activity = licences.parse_activity(_cell(values, i["activity"]))
        except FieldProblem as exc:
            bad.append(("activity", _said(exc)))
        text = _cell(values, i["category"])
        category = self.categories.get(text.upper()) or self.categories.get(text)
        if category is None:
            bad.append(("category", _unknown_category(text)))
        days: dict[str, date | None] = {}
        for name in ("valid_from", "valid_to"):
            try:
                days[name] = self._date(_raw(values, i[name]), required=name == "valid_from")
            except _Bad as exc:
                bad.append((name, exc.problem))
        start, end = days.get("valid_from"), days.get("valid_to")
        if start is not None and end is not None and end < start:
            ends = msg("waste.licence.ends_before", valid_to=end.isoformat(), valid_from=start.isoformat())
            bad.append(("valid_to", ends))
        capacity: Decimal | None = None
        try:
            capacity = licences.parse_capacity(_raw(values, i["capacity_t"]))
        except FieldProblem as exc:
            bad.append(("capacity_t", _said(exc)))
        number = _cell(values, i["licence_no"])
        if not number:
            bad.append(("licence_no", msg("waste.import.required")))
        elif len(number) > licences.MAX_NUMBER:
            bad.append(("licence_no", msg("waste.import.too_long", limit=licences.MAX_NUMBER)))
        self.check_ignored(line, values)
        if bad:
            for name, problem in bad:
                self.fail(line, name, problem)
            return
        assert enterprise is not None and activity is not None and category is not None and capacity is not None
        assert start is not None
        try:
            licence = licences.parse_licence(
                {
                    "uscc": raw,
                    "activity": activity,
                    "category": category,
                    "valid_from": start,
                    "valid_to": end,
                    "capacity_t": capacity,
                    "number": number,
                },
                row=line,
            )
        except InvalidInput as exc:
            self.fail(line, self.COLUMN_OF.get(exc.field or "", exc.field or "uscc"), licences.problem_of(exc))
            return
        key = (enterprise, category, activity.value, start)
        if key in self.seen:
            self.fail(line, "uscc", msg("waste.import.repeated_licence", line=self.seen[key]))
            return
        self.seen[key] = line
        self.pending.append(_LicenceRow(line, licence))
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not self.clean:
            return  # nothing will be kept: the rows are only checked
        for r in batch:
            try:
                written = licences.record_licence(
                    session=self.session,
                    principal=self.principal,
                    licence=r.licence,
                    now=self.now,
                    row=r.line,
                    replace_by_key=True,
                    audit=False,  # the import's one entry names the file and its hash
                )
            except (InvalidInput, Forbidden, NotFound) as exc:
                self.fail(r.line, self.COLUMN_OF.get(exc.field or "", exc.field or "uscc"), licences.problem_of(exc))
                continue
            if written.outcome == "created":
                self.inserted += 1
            elif written.outcome == "replaced":
                self.updated += 1
            else:
                self.skipped += 1


def import_licences(
    *,
    session: Session,
    principal: Principal,
    source: Source,
    now: datetime,
    name: str | None = None,
    progress: Progress | None = None,
    limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
) -> ImportSummary:
    """Record licences (bureaus of the enterprises' region, and administrators); every version is kept.

    Columns (English; Chinese headers in brackets):
      uscc          the licensed enterprise's credit code (统一社会信用代码)
      activity      utilisation, disposal, storage, collection, transport, or 利用, 处置, 贮存, 收集, 运输 (经营类别)
      category      a waste category code (SW01, ...) or its Chinese name (废物类别)
      valid_from    first day of validity (有效期起)
      valid_to      optional last day, not before valid_from (有效期止)
      capacity_t    licensed tonnes a year, exact to the kilogram (年许可能力(吨))
      number        the licence's number (许可证编号)
    A row with the credit code, activity, category and valid_from of a stored licence replaces it (the old version
    stays in its history); an identical row is skipped.
    """
    return _run(
        _Licences,
        session=session,
        principal=principal,
        source=source,
        now=now,
        name=name,
        progress=progress,
        limits=limits,
    )


# ---------------------------------------------------------------------------------------------------------------
# Targets and waste categories: reference data written row by row through flows.waste.refdata's one writer each


_YES_NO = {"是": "true", "否": "false"}


class _RefData(_Importer):
    """A kind of reference data: every row parsed by the kind's one parser, written by its one writer when clean."""

    dates: ClassVar[tuple[str, ...]] = ("valid_from", "valid_to")
    key: ClassVar[str]
    by_bureaus: ClassVar[bool] = False  # kept by the bureaus too, or by administrators alone

    @classmethod
    def authorise(cls, principal: Principal) -> int | None:
        """Reference data is kept by administrators (and the bureaus, for kinds they keep)."""
        if principal.is_admin or (cls.by_bureaus and principal.role is UserRole.bureau):
            return None
        raise Forbidden(
            "waste.import.role_cannot_import",
            role=Term(f"role.{principal.role}"),
            kind=Term(f"waste.import.kind.{cls.spec.kind}"),
        )

    def __init__(self, session: Session, principal: Principal, cols: _Columns, now: datetime) -> None:
        super().__init__(session, principal, cols, now)
        self.authorise(principal)
        self.seen: dict[str, int] = {}
        self.pending: list[tuple[int, Any]] = []

    def parse(self, data: dict[str, Any], line: int) -> Any:
        raise NotImplementedError

    def write(self, parsed: Any, line: int) -> str:
        raise NotImplementedError

    def add(self, line: int, values: Sequence[object]) -> None:
        data: dict[str, Any] = {}
        for name, position in self.cols.index.items():
            if name in self.dates:
                try:
                    moment = _moment(_raw(values, position))
                except _Bad as exc:
                    self.fail(line, name, exc.problem)
                    return
                data[name] = moment.astimezone(CST).date() if moment else None
            else:
                cell = _cell(values, position)
                data[name] = _YES_NO.get(cell, cell)
        self.check_ignored(line, values)
        try:
            parsed = self.parse(data, line)
        except InvalidInput as exc:
            self.fail(line, exc.field or self.key, refdata.problem_of(exc))
            return
        key = str(getattr(parsed, self.key))
        if key in self.seen:
            self.fail(line, self.key, msg("refdata.import.repeated", line=self.seen[key]))
            return
        self.seen[key] = line
        self.pending.append((line, parsed))
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not self.clean:
            return  # nothing will be kept: the rows are only checked
        for line, parsed in batch:
            try:
                outcome = self.write(parsed, line)
            except (InvalidInput, Forbidden, NotFound, Conflict) as exc:
                self.fail(line, exc.field if exc.field in self.spec.known else self.key, refdata.problem_of(exc))
                continue
            if outcome == "created":
                self.inserted += 1
            elif outcome == "changed":
                self.updated += 1
            else:
                self.skipped += 1


def _aliases(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((_norm(header), name) for header, name in pairs)


class _Targets(_RefData):
    spec = _Spec(
        "targets",
        "target",
        ("name", "scope_adcode", "year", "value", "categories"),
        ("series", "source", "valid_from", "valid_to"),
        aliases=_aliases(
            ("name", "name"),
            ("目标名称", "name"),
            ("名称", "name"),
            ("地区代码", "scope_adcode"),
            ("行政区划代码", "scope_adcode"),
            ("年份", "year"),
            ("目标值", "value"),
            ("目标", "value"),
            ("废物类别", "categories"),
            ("类别", "categories"),
            ("系列", "series"),
            ("依据文件", "source"),
            ("来源", "source"),
            ("有效期起", "valid_from"),
            ("有效期止", "valid_to"),
        ),
    )
    key = "name"
    by_bureaus = True  # within their region, which the writer checks row by row

    def parse(self, data: dict[str, Any], line: int) -> Any:
        return refdata.parse_target(data, row=line)

    def write(self, parsed: Any, line: int) -> str:
        # A row names a stored target by its name: the file states what the targets are now.
        written = refdata.write_target(
            session=self.session, principal=self.principal, target=parsed, now=self.now, row=line, by_name=True
        )
        return written.outcome


class _Categories(_RefData):
    spec = _Spec(
        "categories",
        "waste_category",
        ("code", "name_zh", "name_en"),
        ("is_bulk", "is_tailings", "valid_from", "valid_to"),
        aliases=_aliases(
            ("code", "code"),
            ("category", "code"),
            ("category_code", "code"),
            ("类别代码", "code"),
            ("废物代码", "code"),
            ("代码", "code"),
            ("name_zh", "name_zh"),
            ("中文名称", "name_zh"),
            ("名称", "name_zh"),
            ("name_en", "name_en"),
            ("英文名称", "name_en"),
            ("大宗", "is_bulk"),
            ("尾矿", "is_tailings"),
            ("有效期起", "valid_from"),
            ("有效期止", "valid_to"),
        ),
    )
    key = "code"

    def parse(self, data: dict[str, Any], line: int) -> Any:
        return refdata.parse_category(data, row=line)

    def write(self, parsed: Any, line: int) -> str:
        written = refdata.write_category(
            session=self.session, principal=self.principal, category=parsed, now=self.now, row=line
        )
        return written.outcome


def import_targets(
    *,
    session: Session,
    principal: Principal,
    source: Source,
    now: datetime,
    name: str | None = None,
    progress: Progress | None = None,
    limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
) -> ImportSummary:
    """Create or change targets (administrators; bureaus for their region and below), all or nothing.

    Columns (English; Chinese headers in brackets):
      name          a unique name; a stored target of that name is changed (目标名称)
      scope_adcode  the region the target is set for (地区代码)
      year          the year it is due (年份)
      value         the rate due: a fraction (0.8) or a percent (80%) (目标值)
      categories    the SW classes it counts, separated by commas or semicolons (废物类别)
      series        optional: targets of one series are joined by a straight path (系列)
      source        optional: the document it comes from (依据文件)
      valid_from    optional first day in force (有效期起); valid_to optional last day (有效期止)
    Every created or changed target is its own entry in the audit log, beside the import's.
    """
    return _run(
        _Targets,
        session=session,
        principal=principal,
        source=source,
        now=now,
        name=name,
        progress=progress,
        limits=limits,
    )


def import_categories(
    *,
    session: Session,
    principal: Principal,
    source: Source,
    now: datetime,
    name: str | None = None,
    progress: Progress | None = None,
    limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
) -> ImportSummary:
    """Create or change waste categories (administrators), all or nothing.

    Columns (English; Chinese headers in brackets):
      code          SW01..SW59, or a 2024-catalogue code of 9 characters such as 261-001-S01 (类别代码)
      name_zh       the Chinese name (名称); name_en the English name (英文名称)
      is_bulk       optional: true/false or 是/否; a 9-character code takes its class's (大宗)
      is_tailings   optional, the same (尾矿)
      valid_from    optional first day in use (有效期起); valid_to optional last day (有效期止)
    """
    return _run(
        _Categories,
        session=session,
        principal=principal,
        source=source,
        now=now,
        name=name,
        progress=progress,
        limits=limits,
    )


IMPORTERS: dict[str, Callable[..., ImportSummary]] = {
    "enterprises": import_enterprises,
    "declarations": import_declarations,
    "manifests": import_manifests,
    "licences": import_licences,
    "targets": import_targets,
    "categories": import_categories,
}


def importable_kinds(principal: Principal) -> tuple[str, ...]:
    """The kinds of file a principal may import (the importers themselves enforce the same rule)."""
    if principal.is_admin:
        return tuple(IMPORTERS)
    if principal.role is UserRole.enterprise and principal.enterprise_id is not None:
        return ("declarations", "manifests")
    if principal.role is UserRole.bureau:
        return ("licences", "targets")
    return ()
