"""The report of one county's night, written where its lists are:
``<outbox>/<D>/report.html`` (under Airflow ``<outbox>/<county>/<D>/report.html``)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from guardline.errors import GuardlineError
from report.facts import gather
from report.page import render
from staging.stage import Stage

FILE_NAME = "report.html"


def report_path(outbox: Path, as_of: date) -> Path:
    return outbox / as_of.isoformat() / FILE_NAME


def write_report(eng: sa.Engine, stage: Stage, as_of: date, outbox: Path, county: str = "") -> Path:
    """Gather the night from the warehouse and the stage, render it, and put the page in
    place in one step (a reader of the shared drive sees the old page or the new one)."""
    from warehouse.load import county_code

    register = stage.records("registry", as_of)
    if register is None:
        raise GuardlineError(f"no register staged by {as_of} in {stage.root}: nothing to report")
    code = county_code(register, county)
    if code is None:
        raise GuardlineError(f"cannot tell the county of {stage.root}: its register carries no area code")
    html = render(gather(eng, stage, code, as_of))
    path = report_path(outbox, as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE_NAME}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path
