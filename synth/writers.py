"""Write deliveries in the exact formats of docs/sources.md, byte-reproducibly.

xlsx through XlsxWriter with fixed document dates (the zip entries carry a fixed
timestamp already), GBK and UTF-8-SIG CSV through the csv module, the 人社 exchange
database through sqlite3.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import xlsxwriter

EXCEL_EPOCH = date(1899, 12, 30)
FIXED_TIME = datetime(2026, 1, 1)


class Serial(int):
    """A date delivered as a bare Excel serial number."""


def excel_serial(d: date) -> Serial:
    return Serial((d - EXCEL_EPOCH).days)


def date_text(d: date, form: str) -> str:
    """A date the ways departments write it."""
    if form == "slash":
        return f"{d.year}/{d.month}/{d.day}"
    if form == "chinese":
        return f"{d.year}年{d.month}月{d.day}日"
    if form == "compact":
        return f"{d:%Y%m%d}"
    return d.isoformat()


def amount_text(x: float) -> str:
    return f"{x:,.2f}"


def write_xlsx(
    path: Path,
    sheet: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    subtitle: str | None = None,
) -> None:
    """One sheet; an optional merged title row (and a second title row) above the header.

    Strings stay text cells (an ID is never turned into a number here); floats are
    numbers, dates are date cells, :class:`Serial` a bare number.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False})
    wb.set_properties({"created": FIXED_TIME, "author": "guardline-synth"})
    ws = wb.add_worksheet(sheet)
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    bold = wb.add_format({"bold": True, "align": "center"})
    r = 0
    for line in (title, subtitle):
        if line is not None:
            ws.merge_range(r, 0, r, len(header) - 1, line, bold)
            r += 1
    for c, name in enumerate(header):
        ws.write_string(r, c, name)
    for row in rows:
        r += 1
        for c, value in enumerate(row):
            if value is None or value == "":
                continue
            if isinstance(value, Serial):
                ws.write_number(r, c, int(value))
            elif isinstance(value, date):
                ws.write_datetime(r, c, datetime(value.year, value.month, value.day), date_fmt)
            elif isinstance(value, int | float):
                ws.write_number(r, c, value)
            else:
                ws.write_string(r, c, str(value))
    wb.close()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], encoding: str) -> None:
    """CSV text exactly as given, in ``encoding`` (gbk or utf-8-sig), CRLF like Excel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    path.write_bytes(buf.getvalue().encode(encoding))


def write_sqlite(path: Path, tables: dict[str, tuple[str, Sequence[str], Iterable[Sequence[Any]]]]) -> None:
    """Create the exchange database afresh: {table: (DDL, columns, rows)}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        for table, (ddl, columns, rows) in tables.items():
            con.execute(ddl)
            marks = ", ".join("?" for _ in columns)
            con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        con.commit()
    finally:
        con.close()
