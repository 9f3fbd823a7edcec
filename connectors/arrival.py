"""Which delivered files a night reads: what had arrived by the night D.

A file's name may say when it was made: a day (``20261126``, ``2026-11-26``) or, for
the departments' monthly files, a month (``202611``). A file whose name says it was made
after D has not arrived by D, whatever else is in the inbox: a backfill of several
missed nights, run over an inbox that already holds the later nights' files, reads each
night's own. A file with no date in its name is taken by the first night that finds it.

A source delivered whole (the register, ``Source.snapshot``) is read as one export: the
latest made on or before D — the date in its name, else the file's modification date.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

_DAY = re.compile(r"(20\d{2})-?(\d{2})-?(\d{2})")
_MONTH = re.compile(r"(?<!\d)(20\d{2})-?(\d{2})(?!\d)")


def named_date(path: Path) -> date | None:
    """The day a file's name says it was made (a month: its first day), or None."""
    for pattern in (_DAY, _MONTH):
        m = pattern.search(path.stem)
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]) if pattern is _DAY else 1)
            except ValueError:
                continue
    return None


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
    if snapshot:
        return current_export(paths, as_of)
    return [p for p in paths if (named_date(p) or as_of) <= as_of]
