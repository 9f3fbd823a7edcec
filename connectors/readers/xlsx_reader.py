"""The xlsx reader: a workbook held to its bounds before it is opened, the declared sheet
(or the one whose header fits), cells read as the text the contract reads.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from connectors.readers.batch import ID_CELL, ROW, RawBatch, fingerprint
from connectors.readers.bounds import check_xlsx_bounds
from connectors.readers.header import HEADER_SEARCH_ROWS, locate_header
from connectors.spec import Source
from guardline.errors import DeliveryError


def cell_text(value: object) -> str | None:
    """A spreadsheet cell as the text the contract reads: numbers as their digits,
    date cells as ISO dates, an Excel-mangled ID as the integer digits of its value."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer():
            return format(Decimal(repr(value)).to_integral_value(), "f")
        return repr(value)
    return str(value)


# What Python's str.strip() removes (a row of only such cells is blank): polars' own
# strip keeps the information separators U+001C-U+001F, which Python counts as space.
_SPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


def column_text(values: list[object]) -> pl.Series:
    """A column of cells as :func:`cell_text` reads each. A column of text cells — most of
    any delivery — becomes a Series in one step; only a column holding numbers, dates or
    booleans is rendered cell by cell."""
    if set(map(type, values)) <= {str, type(None)}:
        return pl.Series(values, dtype=pl.String).replace("", None)
    return pl.Series([cell_text(v) for v in values], dtype=pl.String)


def _id_cells(values: list[object]) -> pl.Series:
    """Per row, whether the person's ID was a number cell (Excel keeps 15 significant
    digits of one: an 18-digit ID in it is rounded), a text cell, or empty."""
    return pl.Series(
        [
            None if v is None or v == "" else isinstance(v, int | float) and not isinstance(v, bool)
            for v in values
        ],
        dtype=pl.Boolean,
    )


def _body(raw: list[list[object]], first: int, positions: dict[int, str], source: Source) -> pl.DataFrame:
    """The rows below the header (``raw[first:]``, sheet row ``first + 1`` on) as the
    source's columns of text, built column by column; a row with no text in any cell,
    read or ignored, is left out."""
    rows = raw[first:]
    width = max(map(len, rows), default=0)
    columns = [column_text([r[j] if j < len(r) else None for r in rows]) for j in range(width)]
    data = {name: columns[j] for j, name in positions.items()}
    id_column = next((j for j, name in positions.items() if name == source.identity.id_number), None)
    ids = [r[id_column] if id_column < len(r) else None for r in rows] if id_column is not None else [None] * len(rows)
    filled = pl.Series([False] * len(rows), dtype=pl.Boolean)
    for column in columns:
        filled |= column.str.strip_chars(_SPACE).fill_null("") != ""
    frame = pl.DataFrame(
        {
            ROW: pl.int_range(first + 1, first + 1 + len(rows), dtype=pl.Int64, eager=True),
            **{c.name: data.get(c.name, pl.Series([None] * len(rows), dtype=pl.String)) for c in source.columns},
            ID_CELL: _id_cells(ids),
        }
    )
    return frame.filter(filled)


def read_xlsx(source: Source, path: Path, file: str) -> RawBatch:
    """An xlsx workbook: the declared sheet (or the one sheet whose header fits), any
    title rows above the header, merged cells, date and number cells."""
    from python_calamine import CalamineError, CalamineWorkbook

    data = path.read_bytes()
    if not data:
        raise DeliveryError(file, "the file is empty")
    check_xlsx_bounds(data, file)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except (CalamineError, ValueError, OSError) as exc:
        raise DeliveryError(file, f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    names = list(book.sheet_names)
    order = ([source.sheet] if source.sheet in names else []) + [n for n in names if n != source.sheet]
    warnings: list[str] = []
    last_error: DeliveryError | None = None
    for name in order:
        try:
            raw = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except (CalamineError, ValueError) as exc:
            raise DeliveryError(file, f"sheet {name!r} cannot be read ({exc})") from None
        head = [[cell_text(v) for v in r] for r in raw[:HEADER_SEARCH_ROWS]]
        try:
            header_index, positions, header_warnings = locate_header(head, source, file)
        except DeliveryError as exc:
            last_error = exc
            continue
        if source.sheet and name != source.sheet:
            warnings.append(f"no sheet {source.sheet!r}; read sheet {name!r}")
        body = _body(raw, header_index + 1, positions, source)
        if body.height == 0:
            raise DeliveryError(file, f"sheet {name!r} has a header but no rows")
        return RawBatch(
            source.name,
            file,
            fingerprint(data),
            len(data),
            body,
            header_index + 1,
            warnings + header_warnings,
        )
    if last_error is not None and len(order) == 1:
        raise last_error
    raise DeliveryError(file, f"no sheet with the columns of {source.title} (sheets: {', '.join(names)})")
