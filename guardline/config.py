"""Configuration that the command line and the scheduler both need, resolved here once
from the environment, so that a night means the same date and the same warehouse
whichever of them runs it.

- ``GUARDLINE_TIMEZONE`` (default ``Asia/Shanghai``): where every contract date lives;
  "today" and the schedules' wall-clock times are read there.
- ``GUARDLINE_WAREHOUSE_URL``: the warehouse when none is given (``--warehouse``, or the
  Airflow connection); without it, the embedded DuckDB file ``warehouse.duckdb`` in the
  deployment's folder (beside the inbox for the command line, the stage root for Airflow).
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

TIMEZONE_VARIABLE = "GUARDLINE_TIMEZONE"
WAREHOUSE_VARIABLE = "GUARDLINE_WAREHOUSE_URL"


def timezone() -> ZoneInfo:
    return ZoneInfo(os.environ.get(TIMEZONE_VARIABLE) or "Asia/Shanghai")


def today() -> date:
    """The calendar date where the contracts' dates live."""
    return datetime.now(timezone()).date()


def night_of(moment: datetime) -> date:
    """The date of an instant (a scheduler's logical date) in that time zone; a naive
    instant is taken to be in it already."""
    return (moment if moment.tzinfo is None else moment.astimezone(timezone())).date()


def embedded_url(home: Path) -> str:
    """The embedded DuckDB warehouse file of a deployment folder."""
    return f"duckdb:///{(home / 'warehouse.duckdb').resolve()}"


def warehouse_url(given: str | None, home: Path) -> str:
    """The warehouse: the one given, else ``GUARDLINE_WAREHOUSE_URL``, else the embedded
    DuckDB file in ``home``."""
    return given or os.environ.get(WAREHOUSE_VARIABLE) or embedded_url(home)
