"""CSV files a spreadsheet opens safely (OWASP, "CSV Injection").

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as
a formula by Excel and LibreOffice: a name delivered as ``=1+1`` or
``+cmd|' /C calc'!A0`` would compute, or worse, in a cadre's spreadsheet. Every CSV the
project writes goes through :func:`write_csv`, which prefixes such a text cell with a
single quote (shown by no spreadsheet, kept by every one); :func:`revive` takes it off
again when the project reads its own file back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: object) -> object:
    """A text cell made inert; other values (numbers, dates) as they are."""
    if isinstance(value, str) and value.startswith(TRIGGERS):
        return "'" + value
    return value


def revive(value: str) -> str:
    """The text :func:`inert` was given."""
    if value.startswith("'") and value[1:].startswith(TRIGGERS):
        return value[1:]
    return value


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with BOM (Excel reads it as such), CRLF, every text cell inert."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([inert(h) for h in header])
    for row in rows:
        writer.writerow(["" if v is None else inert(v) for v in row])
    return buf.getvalue().encode("utf-8-sig")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    path.write_bytes(csv_bytes(header, rows))
