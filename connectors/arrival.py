"""Which delivered files a night reads.

A department's files are read by the first night that finds them in the inbox, and
that night is the night they arrived (the stage keeps it with every record version they
bring). A source delivered whole (the register, ``Source.snapshot``) is read as one
export: the latest made on or before D — the date in its name, else the file's
modification date.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

_DAY = re.compile(r"(20\d{2})-?(\d{2})-?(\d{2})")


def export_date(path: Path) -> date:
    """When an export was made: the day in its name, else the file's modification date."""
    m = _DAY.search(path.stem)
    if m:
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            pass
    return datetime.fromtimestamp(path.stat().st_mtime).date()


def current_export(paths: list[Path], as_of: date) -> list[Path]:
    """The latest export made on or before ``as_of`` (none if all are later)."""
    eligible = [p for p in paths if export_date(p) <= as_of]
    return [max(eligible, key=lambda p: (export_date(p), p.name))] if eligible else []


def arrived_by(paths: list[Path], as_of: date, snapshot: bool) -> list[Path]:
    """The files of one source the night ``as_of`` reads, in name order."""
    return current_export(paths, as_of) if snapshot else paths
