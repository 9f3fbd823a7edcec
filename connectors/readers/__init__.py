"""One reader per delivery format: CSV (GBK or UTF-8), xlsx, and the header search.

A reader returns every data row as text, under the source's canonical column names,
with the row number a person sees in the file (CSV line, sheet row). What stops the
whole file — empty, binary, wrong encoding, truncated, no header, a missing column,
more than the reader may allocate — raises :class:`DeliveryError` naming the file and,
where it can, the row and field; :func:`countable_rows` then recovers the rows a person
would see in it, so that they can be quarantined with that reason.

What a reader may allocate is bounded before it reads (:data:`LIMITS`): the file's size,
an xlsx's inflated XML, and the area of a sheet's cells (a 7 KB workbook whose one
cell sits at XFD1048576 would otherwise ask for 512 GiB).
"""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from connectors.readers.batch import ROW, RawBatch, fingerprint
from connectors.readers.bounds import LIMITS, check_xlsx_bounds
from connectors.readers.encoding import decode
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


def _frame(
    rows: list[list[str | None]], numbers: list[int], positions: dict[int, str], source: Source
) -> pl.DataFrame:
    data = {name: [r[j] if j < len(r) else None for r in rows] for j, name in positions.items()}
    for c in source.columns:  # optional columns a delivery left out
        data.setdefault(c.name, [None] * len(rows))
    return pl.DataFrame(
        {ROW: numbers, **data}, schema={ROW: pl.Int64, **{c.name: pl.String for c in source.columns}}
    )


def read_csv(source: Source, path: Path, file: str) -> RawBatch:
    """A CSV in the source's encoding, header found in the first rows.

    Rows are split by polars; a row whose field count differs from the header's is
    set aside with its reason (a short last row without a line end means the file
    was cut off). Quoted fields spanning lines take the slower exact path.
    """
    data = path.read_bytes()
    if not data or data.isspace():
        raise DeliveryError(file, "the file is empty")
    if b"\x00" in data[:65536]:
        raise DeliveryError(file, "the file is binary, not CSV text")
    with ThreadPoolExecutor(1) as pool:  # hashlib lets go of the GIL: hash while decoding
        digest = pool.submit(fingerprint, data)
        body = decode(data, source.encoding, file).encode("utf-8")
        sha256 = digest.result()
    ends_cleanly = body.endswith((b"\n", b"\r"))
    lines = pl.read_csv(
        body,
        separator="\x1f",
        quote_char=None,
        has_header=False,
        schema={"line": pl.String},
        empty_string_is_null=False,
    )["line"]
    head = [[c or None for c in r] for r in csv.reader(lines.head(HEADER_SEARCH_ROWS).to_list())]
    header_index, positions, warnings = locate_header(head, source, file)
    width = len(head[header_index])
    if (lines.str.count_matches('"', literal=True) % 2 == 1).any():
        frame, bad = _split_exact(lines.to_list(), header_index, width, ends_cleanly, file)
    else:
        frame, bad = _split_fast(body, lines, header_index, width, ends_cleanly, file)
    if frame.height == 0 and not bad:
        raise DeliveryError(file, "the file has a header but no rows")
    columns = {f"f{j}": name for j, name in positions.items()}
    frame = frame.select(ROW, *(pl.col(f).alias(name) for f, name in columns.items()))
    frame = frame.with_columns(
        pl.lit(None, pl.String).alias(c.name) for c in source.columns if c.name not in frame.columns
    )
    batch = RawBatch(
        source.name,
        file,
        sha256,
        len(data),
        frame.select(ROW, *(c.name for c in source.columns)),
        header_index + 1,
        warnings,
    )
    if bad:
        batch.rejected = pl.DataFrame(bad, schema=["row", "reason", "raw"], orient="row")
    return batch


def _field_counts(lines: pl.Series) -> pl.Series:
    """Fields per line, commas inside quotes not counted; the regex only where quotes are."""
    counts = lines.str.count_matches(",", literal=True) + 1
    quoted = lines.str.contains('"', literal=True)
    if quoted.any():
        fixed = lines.filter(quoted).str.replace_all('"[^"]*"', "").str.count_matches(",", literal=True) + 1
        counts = counts.scatter(quoted.arg_true(), fixed)
    return counts


def _split_fast(
    body: bytes, lines: pl.Series, header_index: int, width: int, ends_cleanly: bool, file: str
) -> tuple[pl.DataFrame, list[tuple[int, str, str]]]:
    """One polars parse of the body, with the field count of every line checked."""
    data_lines = lines.slice(header_index + 1)
    info = pl.DataFrame(
        {
            ROW: pl.int_range(
                header_index + 2, header_index + 2 + data_lines.len(), eager=True, dtype=pl.Int64
            ),
            "fields": _field_counts(data_lines),
            "blank": data_lines.str.strip_chars(', \t\u3000"') == "",
        }
    )
    last = lines.len()
    bad: list[tuple[int, str, str]] = []
    wrong = info.filter((pl.col("fields") != width) & ~pl.col("blank"))
    for n, fields in wrong.select(ROW, "fields").iter_rows():
        if n == last and not ends_cleanly and fields < width:
            raise DeliveryError(
                file, f"the last row has {fields} of {width} fields: the file is truncated", row=n
            )
        bad.append((n, f"row has {fields} fields, the header has {width}", data_lines[n - header_index - 2]))
    names = [f"f{j}" for j in range(width)]
    if data_lines.len() == 0:
        return pl.DataFrame(schema={ROW: pl.Int64, **dict.fromkeys(names, pl.String)}), bad
    parsed = pl.read_csv(
        body,
        has_header=False,
        skip_rows=header_index + 1,
        infer_schema=False,
        schema=dict.fromkeys(names, pl.String),
        truncate_ragged_lines=True,
        missing_columns="insert",
    )
    if parsed.height != info.height:  # pragma: no cover - guarded by the quote check above
        raise DeliveryError(file, "rows could not be split into fields consistently")
    keep = (info["fields"] == width) & ~info["blank"]
    return parsed.with_columns(info[ROW]).filter(keep), bad


def _split_exact(
    lines: list[str], header_index: int, width: int, ends_cleanly: bool, file: str
) -> tuple[pl.DataFrame, list[tuple[int, str, str]]]:
    """The csv module's reading, for files with quoted fields that span lines."""
    reader = csv.reader(lines[header_index + 1 :])
    rows: list[list[str | None]] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    start = header_index + 2
    try:
        for r in reader:
            n = start
            start = header_index + 2 + reader.line_num
            if not any(c.strip() for c in r):
                continue
            if len(r) != width:
                if start > len(lines) and not ends_cleanly and len(r) < width:
                    raise DeliveryError(
                        file, f"the last row has {len(r)} of {width} fields: the file is truncated", row=n
                    )
                bad.append((n, f"row has {len(r)} fields, the header has {width}", ",".join(r)))
                continue
            rows.append([c if c != "" else None for c in r])
            numbers.append(n)
    except csv.Error as exc:
        raise DeliveryError(
            file, f"cannot split the rows into fields ({exc}): truncated?", row=start
        ) from None
    data = {f"f{j}": [r[j] for r in rows] for j in range(width)}
    return pl.DataFrame({ROW: numbers, **data}, schema={ROW: pl.Int64, **{k: pl.String for k in data}}), bad


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
        body, numbers = [], []
        for n, r in enumerate(rows[header_index + 1 :], start=header_index + 2):
            if any(c is not None and str(c).strip() for c in r):
                body.append(r)
                numbers.append(n)
        if not body:
            raise DeliveryError(file, f"sheet {name!r} has a header but no rows")
        return RawBatch(
            source.name,
            file,
            fingerprint(data),
            len(data),
            _frame(body, numbers, positions, source),
            header_index + 1,
            warnings + header_warnings,
        )
    if last_error is not None and len(order) == 1:
        raise last_error
    raise DeliveryError(file, f"no sheet with the columns of {source.title} (sheets: {', '.join(names)})")


def read_file(source: Source, path: Path, file: str) -> RawBatch:
    """The reader for this file's format, once the file is known to be within bounds."""
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if size > LIMITS.file_bytes:
        raise DeliveryError(
            file,
            f"the file is {size >> 20:,} MiB, over the reader's limit of {LIMITS.file_bytes >> 20:,} MiB",
        )
    if suffix == ".csv" and source.fmt in ("csv", "csv_or_xlsx"):
        return read_csv(source, path, file)
    if suffix in (".xlsx", ".xlsm") and source.fmt in ("xlsx", "csv_or_xlsx"):
        return read_xlsx(source, path, file)
    raise DeliveryError(file, f"{suffix or 'no extension'} is not a format {source.title} delivers")
