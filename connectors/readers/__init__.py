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

Modules: :mod:`.batch` (what a reader returns), :mod:`.bounds` (the limits and the xlsx
scan), :mod:`.header` (the header search), :mod:`.encoding` and :mod:`.csv_reader` (CSV),
:mod:`.xlsx_reader` (xlsx), :mod:`.countable` (the rows of a refused file); here, the
reader for a file's format.
"""

from __future__ import annotations

from pathlib import Path

from connectors.readers.batch import RawBatch
from connectors.readers.bounds import LIMITS
from connectors.readers.csv_reader import read_csv
from connectors.readers.xlsx_reader import read_xlsx
from connectors.spec import Source
from guardline.errors import DeliveryError


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
