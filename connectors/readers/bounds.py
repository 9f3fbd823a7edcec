"""The bounds a reader holds a file to (:class:`Limits`), and the scan that checks an xlsx
against them without inflating it whole.

What a reader may allocate is bounded before it reads (:data:`LIMITS`): the file's size,
an xlsx's inflated XML, and the area of a sheet's cells (a 7 KB workbook whose one
cell sits at XFD1048576 would otherwise ask for 512 GiB).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from guardline.errors import DeliveryError


@dataclass(frozen=True)
class Limits:
    """What one delivered file may cost the reader, checked before it reads."""

    file_bytes: int = 2 << 30  # any file
    xlsx_xml_bytes: int = 1 << 30  # an xlsx's sheets and shared strings, inflated
    sheet_cells: int = 60_000_000  # rows x columns of a sheet's used area


LIMITS = Limits()
# A cell reference beyond column Z or row 999,999: rare in a delivery, and the only kind
# that can make a sheet's area large, so the scan looks at these alone.
_FAR_CELL = re.compile(rb'<c r="([A-Z]{2,3}\d+|[A-Z]\d{7,})"')
_REF = re.compile(r"([A-Z]+)(\d+)")
_ROW_TAG = re.compile(rb'<row r="(\d+)"')


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def check_xlsx_bounds(data: bytes, file: str, limits: Limits = LIMITS) -> None:
    """Refuse a workbook the xlsx reader could not hold: inflated XML over the limit (a
    zip bomb), or a sheet whose used area (up to its farthest cell) is too large.

    The parts are inflated in chunks and counted, never held whole.
    """
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        parts = [i for i in book.infolist() if i.filename.startswith("xl/") and i.filename.endswith(".xml")]
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip: the reader says what it is
    inflated = 0
    for info in parts:
        sheet = info.filename.startswith("xl/worksheets/")
        rows = cols = 0
        tail = b""
        try:
            with book.open(info) as stream:
                while chunk := stream.read(1 << 20):
                    inflated += len(chunk)
                    if inflated > limits.xlsx_xml_bytes:
                        raise DeliveryError(
                            file,
                            f"the workbook inflates to more than {limits.xlsx_xml_bytes >> 20} MiB of XML: "
                            "refused unread (a zip bomb, or far more than a delivery holds)",
                        )
                    if sheet:
                        window = tail + chunk
                        for m in _FAR_CELL.finditer(window):
                            letters, digits = _REF.fullmatch(m[1].decode()).groups()
                            cols, rows = max(cols, _column_number(letters)), max(rows, int(digits))
                        rows = max([rows, *map(int, _ROW_TAG.findall(window))])
                        tail = window[-24:]
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise DeliveryError(file, f"the workbook is damaged ({type(exc).__name__}: {exc})") from None
        area = rows * max(cols, 26)
        if area > limits.sheet_cells:
            raise DeliveryError(
                file,
                f"{info.filename.rsplit('/', 1)[-1]} has a cell as far as column {cols}, row {rows:,}: "
                f"its used area exceeds {limits.sheet_cells:,} cells; delete the stray cells far from the table",
            )
