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
from connectors.readers.header import locate_header
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


def _frame(
    rows: list[list[str | None]],
    numbers: list[int],
    positions: dict[int, str],
    source: Source,
    id_cells: list[bool | None],
) -> pl.DataFrame:
    data = {name: [r[j] if j < len(r) else None for r in rows] for j, name in positions.items()}
    for c in source.columns:  # optional columns a delivery left out
        data.setdefault(c.name, [None] * len(rows))
    return pl.DataFrame(
        {ROW: numbers, **data, ID_CELL: id_cells},
        schema={ROW: pl.Int64, **{c.name: pl.String for c in source.columns}, ID_CELL: pl.Boolean},
    )


def _id_cells(raw: list[list[object]], positions: dict[int, str], source: Source) -> list[bool | None]:
    """Per row, whether the person's ID was a number cell (Excel keeps 15 significant
    digits of one: an 18-digit ID in it is rounded), a text cell, or empty."""
    column = next((j for j, name in positions.items() if name == source.identity.id_number), None)
    out: list[bool | None] = []
    for r in raw:
        value = r[column] if column is not None and column < len(r) else None
        empty = value is None or value == ""
        out.append(None if empty else isinstance(value, int | float) and not isinstance(value, bool))
    return out


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
        rows = [[cell_text(v) for v in r] for r in raw]
        try:
            header_index, positions, header_warnings = locate_header(rows, source, file)
        except DeliveryError as exc:
            last_error = exc
            continue
        if source.sheet and name != source.sheet:
            warnings.append(f"no sheet {source.sheet!r}; read sheet {name!r}")
        body, numbers, values = [], [], []
        for n, (r, v) in enumerate(zip(rows[header_index + 1 :], raw[header_index + 1 :], strict=True), start=header_index + 2):
            if any(c is not None and str(c).strip() for c in r):
                body.append(r)
                numbers.append(n)
                values.append(v)
        if not body:
            raise DeliveryError(file, f"sheet {name!r} has a header but no rows")
        return RawBatch(
            source.name,
            file,
            fingerprint(data),
            len(data),
            _frame(body, numbers, positions, source, _id_cells(values, positions, source)),
            header_index + 1,
            warnings + header_warnings,
        )
    if last_error is not None and len(order) == 1:
        raise last_error
    raise DeliveryError(file, f"no sheet with the columns of {source.title} (sheets: {', '.join(names)})")
