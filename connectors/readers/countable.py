"""The rows a person would see in a file refused whole, so that they can be quarantined
with the reason it was refused.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl

from connectors.readers.bounds import LIMITS, check_xlsx_bounds
from connectors.readers.xlsx_reader import cell_text
from connectors.spec import Source
from guardline.errors import DeliveryError


def countable_rows(source: Source, path: Path, error: DeliveryError) -> pl.DataFrame | None:
    """The rows a person sees in a file refused whole (``row``, ``raw``), for the
    quarantine; None when none can be told (an empty, binary or unreadable file).

    The header is the row the error names, else the first non-blank one.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.strip() or len(data) > LIMITS.file_bytes:
        return None
    rows: list[tuple[int, str]] = []
    if path.suffix.lower() == ".csv":
        if b"\x00" in data[:65536]:
            return None
        text = None
        for encoding in (source.encoding, "utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except (UnicodeDecodeError, LookupError):
                continue
        if text is None:
            text = data.decode(source.encoding, errors="replace")
        rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip(" ,\t\u3000")]
    else:
        try:
            check_xlsx_bounds(data, error.file)
            from python_calamine import CalamineWorkbook

            book = CalamineWorkbook.from_filelike(io.BytesIO(data))
            names = list(book.sheet_names)
            name = source.sheet if source.sheet in names else names[0]
            cells = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except Exception:  # the workbook cannot be opened at all: nothing to count
            return None
        rows = [
            (n, json.dumps([cell_text(v) for v in r], ensure_ascii=False))
            for n, r in enumerate(cells, start=1)
            if any(c is not None and str(c).strip() for c in r)
        ]
    header = error.row if error.row is not None else (rows[0][0] if rows else None)
    body = [(n, raw) for n, raw in rows if header is None or n > header]
    if not body:
        return None
    return pl.DataFrame(body, schema={"row": pl.Int64, "raw": pl.String}, orient="row")
