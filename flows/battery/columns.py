"""The columns of battery and battery-event files, with the Chinese headers a template carries, and the templates.

A file's header may use either name of a column (the English key or the Chinese header); both read the same.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

METALS_ZH = {"lithium": "锂", "nickel": "镍", "cobalt": "钴", "manganese": "锰"}


@dataclass(frozen=True)
class Column:
    """One column of an import file: the key the writers read, its Chinese header, an example value."""

    key: str
    zh: str
    example: str = ""


BATTERY_COLUMNS: tuple[Column, ...] = (
    Column("code", "电池编码", "0D1PEA1L123456E650000101"),
    Column("parent_code", "上级编码", ""),
    Column("rated_kwh", "额定能量_千瓦时", "60"),
    Column("mass_kg", "质量_千克", "380"),
    Column("produced_at", "生产时间", "2024-06-05T08:00"),
)
EVENT_COLUMNS: tuple[Column, ...] = (
    Column("code", "电池编码", "0D1PEA1L123456E650000101"),
    Column("type", "事件类型", "transferred"),
    Column("occurred_at", "发生时间", "2024-07-01T10:00"),
    Column("counterpart_uscc", "对方统一社会信用代码", "91510000MA0000058A"),
    Column("vin", "车辆识别代号", ""),
    Column("region_adcode", "行政区划代码", ""),
    Column("place", "地点", ""),
    Column("purpose", "去向", ""),
    Column("soh", "健康度", ""),
    Column("mass_kg", "质量_千克", ""),
    Column("new_code", "新编码", ""),
    Column("application", "应用场景", ""),
    Column("input_mass_kg", "投入电池量_千克", ""),
    Column("electrode_powder_kg", "电极粉料_千克", ""),
    *(
        Column(f"{metal}_{end}_kg", f"{zh}{'投入量' if end == 'in' else '回收量'}_千克", "")
        for metal, zh in METALS_ZH.items()
        for end in ("in", "out")
    ),
    Column("note", "备注", ""),
)
KINDS: dict[str, tuple[Column, ...]] = {"batteries": BATTERY_COLUMNS, "battery-events": EVENT_COLUMNS}
# The Chinese headers (and their forms with the unit in parentheses), read as the keys they stand for.
ALIASES: dict[str, str] = {
    name: c.key
    for columns in KINDS.values()
    for c in columns
    for name in (c.zh, c.zh.replace("_", "（", 1) + "）" if "_" in c.zh else c.zh)
} | {"报告单位统一社会信用代码": "reporter_uscc", "生产企业统一社会信用代码": "maker_uscc"}


def alias(header: str) -> str | None:
    """The key a Chinese header stands for, or None."""
    return ALIASES.get(header.strip().lstrip("\ufeff").replace("(", "（").replace(")", "）"))


def template_csv(kind: str) -> bytes:
    """A template file: UTF-8 with a byte-order mark (Excel reads it so), Chinese headers, one example row."""
    columns = KINDS[kind]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.zh for c in columns])
    writer.writerow([c.example for c in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx(kind: str) -> bytes:
    """The same template as a workbook."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "电池" if kind == "batteries" else "电池事件"
    columns = KINDS[kind]
    sheet.append([c.zh for c in columns])
    sheet.append([c.example for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
