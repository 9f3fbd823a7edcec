"""What every reader returns: one delivered file as text (:class:`RawBatch`), each row
with the number a person sees in the file (:data:`ROW`), and the file's fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import polars as pl

ROW = "__row"
# Whether the person's ID was a number cell of a workbook (True), a text cell (False), or
# the format does not say (None): Excel keeps 15 significant digits of a number.
ID_CELL = "id_cell"


@dataclass
class RawBatch:
    """One delivered file as text: canonical column names plus the row of origin."""

    source: str
    file: str  # relative to the inbox, as users name it
    sha256: str
    size: int
    frame: pl.DataFrame
    header_row: int
    warnings: list[str] = field(default_factory=list)
    rejected: pl.DataFrame | None = None  # rows the reader could not split into fields
    # Rows read but not kept in ``frame``: an exchange pull's rows the stage already holds
    # exactly as they are (its look-back window re-reads them every night), duplicates.
    known: int = 0


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
