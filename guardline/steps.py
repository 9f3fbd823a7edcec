"""The night's steps as the DAG tasks call them: plain values in (paths, a date, a county),
plain values out (paths and counts), the data itself on disk.

Each step is a thin wrapper over the functions ``guardline run`` calls — ingest's
extract/validate/stage, ``match_stage``, ``flag_stage``, ``load_night``, ``write_lists`` —
laid out for a province: the inbox, stage and outbox roots hold one folder per county.
Nothing here imports Airflow, so every step runs and is tested without it; what a task
returns is JSON that XCom keeps as it is.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from contextlib import suppress
from datetime import date
from pathlib import Path
from typing import ParamSpec, TypeVar

from connectors.sources import REGISTER
from guardline.errors import GuardlineError, Unavailable
from guardline.files import private
from staging.layout import Layout
from staging.stage import Stage

P = ParamSpec("P")
R = TypeVar("R")

LANDING = "landing"


def writes_privately(step: Callable[P, R]) -> Callable[P, R]:
    """A step that writes identities: what it creates is its owner's alone, whatever the
    worker's umask (files 0600, folders 0700)."""

    @functools.wraps(step)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        private()
        return step(*args, **kwargs)

    return wrapper


def county_folders(root: Path) -> list[str]:
    """The counties of a province's inbox or stage: its sub-folders, by name."""
    if not root.is_dir():
        raise GuardlineError(f"no folder at {root}")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def inbox_counties(inbox_root: Path) -> list[str]:
    """Counties whose inbox follows the contract: at least one source folder in it."""
    from connectors.sources import DEPARTMENTS

    found = [c for c in county_folders(inbox_root) if any((inbox_root / c / d).is_dir() for d in DEPARTMENTS)]
    if not found:
        raise GuardlineError(
            f"no county inbox under {inbox_root}: expected <county>/registry/, <county>/health_insurance/, ..."
        )
    return found


def staged_counties(stage_root: Path) -> list[str]:
    """Counties with a staged register: the ones matching and rules can run for."""
    found = [
        c for c in county_folders(stage_root) if Stage(stage_root / c).versions(REGISTER.stage_name) is not None
    ]
    if not found:
        raise GuardlineError(f"no county under {stage_root} has a staged register yet")
    return found


def landing_folder(stage_root: Path, county: str, as_of: date, source: str) -> Path:
    return Layout(stage_root / county).landing(as_of, source)


@writes_privately
def extract(
    source: str, inbox_root: Path, stage_root: Path, county: str, as_of: date, hr_url: str | None
) -> str:
    """Read one county's new deliveries of ``source`` and land them; the landing's path."""
    from connectors.ingest import extract as extract_source

    # An exchange that does not answer raises Unavailable (worth retrying); a county with
    # no exchange database configured is not worth it.
    try:
        landing = extract_source(source, inbox_root / county, as_of, Stage(stage_root / county), hr_url)
    except Unavailable as exc:
        raise Unavailable(f"{source} for {county}: {exc}") from None
    if landing.fatal:
        raise GuardlineError(f"{source} for {county}: {landing.fatal}")
    return str(landing.save(landing_folder(stage_root, county, as_of, source)))


@writes_privately
def validate(landing_path: str) -> str:
    """Type the landed batches and run the Great Expectations suites; Data Docs rebuilt."""
    from connectors.ingest import Landing
    from connectors.ingest import validate as validate_landing
    from connectors.validation import Validator

    folder = Path(landing_path)
    validator = Validator(_county_stage(folder) / "reports")
    validate_landing(Landing.load(folder), validator).save(folder)
    validator.build_docs()
    return landing_path


@writes_privately
def stage(landing_paths: list[str]) -> dict[str, dict]:
    """Stage every county's validated landing; per county its status, reason and counts.

    A county whose delivery was refused has its rows quarantined and its ledger written
    like any other: the refusal is reported here, not raised, so that the others stage.
    """
    from connectors.ingest import Landing
    from connectors.ingest import stage as stage_landing

    out: dict[str, dict] = {}
    for path in landing_paths:
        folder = Path(path)
        county_stage = _county_stage(folder)
        result = stage_landing(Landing.load(folder), Stage(county_stage))
        out[county_stage.name] = {
            "status": result.status,
            "reason": result.reason,
            "records": result.records,
            "rows_read": result.total("rows_read"),
            "loaded": result.total("loaded"),
            "quarantined": result.total("quarantined"),
            "duplicates": result.total("duplicates"),
        }
        shutil.rmtree(folder)
        with suppress(OSError):  # the night's folder, once every source has staged
            folder.parent.rmdir()
    return out


def refusals(source: str, staged: dict[str, dict]) -> str:
    """One line naming every county whose ``source`` delivery was refused tonight, or ''."""
    failed = [f"{county}: {s['reason']}" for county, s in sorted(staged.items()) if s["status"] in ("failed", "partial")]
    return (
        f"{source} refused tonight in {len(failed)} of {len(staged)} counties — " + "; ".join(failed)
        if failed
        else ""
    )


@writes_privately
def match(stage_root: Path, county: str, as_of: date, settings: str = "china") -> dict[str, int]:
    """Link the records one county's night sees to its register; links by status."""
    from matching.run import match_stage

    return match_stage(Stage(stage_root / county), as_of, settings).counts()


@writes_privately
def flag(stage_root: Path, county: str, as_of: date) -> dict[str, int]:
    """The rules for one county's night; firing flags by rule, and the exit candidates."""
    from rules.run import flag_stage

    result = flag_stage(Stage(stage_root / county), as_of)
    return {**result.by_rule(), "households": result.households, "exit_candidates": result.exits.height}


@writes_privately
def load(url: str, stage_root: Path, counties: list[str], as_of: date, run_id: str = "") -> dict[str, int]:
    """Every county's night into the warehouse in one transaction, and the run's audit row
    (naming the Airflow run); rows per table."""
    from datetime import datetime

    from warehouse.db import engine
    from warehouse.load import load_night, record_run

    started = datetime.now()
    eng = engine(url)
    try:
        rows = load_night(eng, {c: Stage(stage_root / c) for c in counties}, as_of).rows
        record_run(eng, as_of, {"airflow_run_id": run_id, "counties": counties, "rows": rows}, started)
        return rows
    finally:
        eng.dispose()


@writes_privately
def publish(stage_root: Path, outbox_root: Path, counties: list[str], as_of: date) -> list[str]:
    """The township lists of every county: ``<outbox>/<county>/<as_of>/<township>.xlsx``."""
    from warehouse.lists import write_stage_lists

    return [
        str(path)
        for county in counties
        for path in write_stage_lists(Stage(stage_root / county), as_of, outbox_root / county)
    ]


def _county_stage(landing: Path) -> Path:
    """``<stage>/<county>/landing/<date>/<source>`` → ``<stage>/<county>``."""
    if landing.parents[1].name != LANDING:
        raise GuardlineError(f"{landing} is not a landing folder")
    return landing.parents[2]
