"""The night's steps, which ``guardline run`` (pipeline.night) and the DAG tasks both
call: extract, validate and stage per source (the command line chains them in memory
through ``connectors.ingest.ingest``; a sync DAG saves the landing between its tasks),
then match, flag, load and publish per county.

Each step returns its result object, which carries its own account (``summary()``): the
command line prints it, a task returns it to XCom as JSON, and the run audit is written
from it in one schema (:func:`audit`), whoever ran the night. In a province the inbox,
stage and outbox roots hold one folder per county. Nothing here imports Airflow.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import sqlalchemy as sa

from connectors.sources import REGISTER
from guardline.atomic import Hook
from guardline.errors import GuardlineError, Unavailable
from guardline.files import private
from staging.layout import Layout
from staging.stage import Stage

if TYPE_CHECKING:
    from matching.run import MatchResult
    from rules.catalogue import Catalogue
    from rules.run import FlagResult
    from warehouse.load import LoadResult

P = ParamSpec("P")
R = TypeVar("R")

LANDING = "landing"
LOAD_LOCK_TIMEOUT = 600.0  # seconds a county's load waits for the warehouse before it is retried


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
def validate(landing_path: str) -> dict:
    """Type the landed batches and run the Great Expectations suites; Data Docs rebuilt.
    The verdict per file, and the seconds it took."""
    import time

    from connectors.ingest import Landing
    from connectors.ingest import validate as validate_landing
    from connectors.validation import Validator

    t = time.perf_counter()
    folder = Path(landing_path)
    validator = Validator(_county_stage(folder) / "reports")
    landing = validate_landing(Landing.load(folder), validator)
    landing.save(folder)
    validator.build_docs()
    return {**landing.summary(), "seconds": round(time.perf_counter() - t, 3)}


def landing_inputs(landing_path: str, county_inbox: Path, exchange_url: str | None) -> list[str]:
    """What a landing read, as lineage URIs: each file of the county's inbox read tonight
    (``file://``), or each exchange table pulled (the database's URL without its password,
    then the table; the synthetic layout's exchange file when no URL is configured)."""
    import json

    manifest = json.loads((Path(landing_path) / "manifest.json").read_text("utf-8"))
    read = sorted({b["result"]["file"] for b in manifest["batches"]} | {f["result"]["file"] for f in manifest["failures"]})
    if manifest["source"] != "human_resources":
        return [(county_inbox / f).resolve().as_uri() for f in read]
    if exchange_url is None:
        return [(county_inbox / "human_resources" / "exchange.sqlite").resolve().as_uri()]
    from warehouse.db import describe

    return [f"{describe(exchange_url)}/{f.removeprefix('exchange:')}" for f in read]


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
        out[county_stage.name] = result.summary()
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
def match(county_stage: Path, as_of: date, settings: str = "china", full: bool = False) -> MatchResult:
    """Link the records one county's night sees to its register (``full``: score every
    record, not only those new or changed since the night it continues)."""
    from matching.run import match_stage

    return match_stage(Stage(county_stage), as_of, settings, full=full)


@writes_privately
def flag(county_stage: Path, as_of: date, catalogue: Catalogue | None = None, full: bool = False) -> FlagResult:
    """The rules for one county's night: flags with their lifecycle, exit candidates
    (``full``: every household's features computed, not only those that can have changed)."""
    from rules.run import flag_stage

    return flag_stage(Stage(county_stage), as_of, catalogue, full)


@writes_privately
def load(
    eng: sa.Engine,
    county_stage: Path,
    as_of: date,
    county: str = "",
    demo: bool = False,
    rekey: bool = False,
    on_step: Hook | None = None,
    full: bool = False,
) -> LoadResult:
    """One county's night into the warehouse, in a transaction of its own (``full``: its
    rows replaced, not only the changed ones)."""
    from warehouse.load import load_night

    return load_night(eng, Stage(county_stage), as_of, county, demo=demo, rekey=rekey, on_step=on_step, full=full)


@writes_privately
def publish(county_stage: Path, outbox: Path, as_of: date, on_step: Hook | None = None) -> list[Path]:
    """One county's township lists of the night: ``<outbox>/<as_of>/<township>.xlsx``."""
    from lists.write import write_stage_lists

    return write_stage_lists(Stage(county_stage), as_of, outbox, on_step)


def report(eng: sa.Engine, county_stage: Path, outbox: Path, as_of: date, county: str = "") -> Path:
    """The night's page of one county, beside its lists: ``<outbox>/<as_of>/report.html``,
    from the warehouse and the stage (run after the load and the run audit)."""
    from report.write import write_report

    return write_report(eng, Stage(county_stage), as_of, outbox, county)


def load_county(
    url: str,
    county: str,
    county_stage: Path,
    as_of: date,
    runner: str,
    summaries: Mapping[str, dict],
    missing: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """The scheduler's load of one county's night: the warehouse's night lock taken (a
    county's load waits for another's, or for a command-line night, rather than
    interleave), the county's rows replaced in its own transaction, then its run audit
    (the one schema of :func:`audit`) from the earlier tasks' summaries and the sources
    the night went without (``missing``: source -> (status, reason)); the load's summary."""
    import time
    from datetime import datetime

    from guardline.memory import peak_mib
    from warehouse.db import engine, night_lock
    from warehouse.load import record_run

    started, t = datetime.now(), time.perf_counter()
    eng = engine(url)
    try:
        with night_lock(eng, LOAD_LOCK_TIMEOUT):
            loaded = load(eng, county_stage, as_of, county)
        seconds = {step: s.get("seconds", 0.0) for step, s in summaries.items()} | {"load": time.perf_counter() - t}
        peaks = {step: s["peak_mib"] for step, s in summaries.items() if "peak_mib" in s} | {"load": peak_mib()}
        steps_done = {step: {county: s} for step, s in summaries.items()} | {"load": {"*": loaded.summary()}}
        failed = missing_reasons(missing or {})
        counts = audit(runner, as_of, {county: county_stage}, steps_done, seconds, failed_sources=failed, peak_mib=peaks)
        record_run(eng, as_of, counts, started)
        Stage(county_stage).save_run(as_of, counts)  # the county's account of the night, beside its results
        return loaded.summary()
    finally:
        eng.dispose()


def unsettled(county_stage: Path, as_of: date) -> list[str]:
    """The sources whose sync has not yet ended the night for the county (none for a
    night older than the stage's first record of one: a stage staged before the sources
    recorded how their nights ended has nothing to wait for)."""
    from connectors.sources import DEPARTMENTS

    stage = Stage(county_stage)
    first = stage.first_settled()
    if first is None or as_of < first:
        return []
    settled = stage.settled(as_of)
    return [s for s in DEPARTMENTS if s not in settled]


def missing_sources(county_stage: Path, as_of: date) -> dict[str, tuple[str, str]]:
    """The sources the county's night goes without: not settled, refused, partly refused."""
    from connectors.sources import DEPARTMENTS

    return Stage(county_stage).missing(as_of, DEPARTMENTS)


def missing_reasons(missing: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Per missing source, its status and reason as one phrase (``failed: x.xlsx: not a workbook``)."""
    return {source: ": ".join(x for x in why if x) for source, why in missing.items()}


def describe_missing(missing: Mapping[str, Sequence[str]]) -> str:
    """``civil_affairs (failed: mz_202612.xlsx: not a readable workbook), human_resources (not settled)``."""
    return ", ".join(f"{source} ({why})" for source, why in missing_reasons(missing).items())


def warehouse_tables(url: str, loaded: Mapping[str, Any]) -> list[str]:
    """The warehouse tables a load wrote, as lineage URIs (``postgres://host:port/db/schema/table``;
    the embedded DuckDB file as one ``file://`` URI)."""
    from warehouse.db import normalise_url

    parsed = sa.make_url(normalise_url(url))
    if parsed.get_backend_name() == "postgresql":
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"
        return [f"postgres://{where}/public/{table}" for table in loaded.get("rows", {})]
    return [Path(parsed.database or "warehouse.duckdb").resolve().as_uri()]


def province_night(stage_root: Path, outbox: Path, counties: Sequence[str], as_of: date) -> dict[str, dict]:
    """Per county, how its night ended: ``lists out`` (loaded and published), else
    ``not complete``; its households to visit and flags by rule; the sources it went without."""
    out = {}
    for county in counties:
        stage = Stage(stage_root / county)
        run = stage.run(as_of) or {}
        done = bool(run) and (outbox / county / as_of.isoformat()).is_dir()
        night = run.get("counties", {}).get(county, {})
        page = outbox / county / as_of.isoformat() / "report.html"
        out[county] = {
            "state": "lists out" if done else "not complete",
            "report": str(page) if page.exists() else "",
            "households to visit": night.get("households", 0),
            "flags": night.get("flags", {}),
            "missing": missing_sources(stage_root / county, as_of),
        }
    return out


def audit(
    runner: str,
    as_of: date,
    county_stages: Mapping[str, Path],
    steps: Mapping[str, Mapping[str, dict]],
    seconds: Mapping[str, float],
    stopped: str = "",
    failed_sources: Mapping[str, str] | None = None,
    peak_mib: Mapping[str, float] | None = None,
) -> dict:
    """The run audit of a night, one schema whoever ran it (``guardline run`` or an
    Airflow run): per county the night's files (from its ledger), links, flags; rows
    loaded; seconds and peak memory (MiB) per step; why it stopped. ``steps``: step name -> county -> the step
    result's ``summary()`` (the load's under the county ``*``)."""
    counties = {}
    for county, path in county_stages.items():
        ledger = Stage(path).ledger()
        night = ledger.filter(ledger["as_of"] == as_of).select(
            "source", "file", "status", "rows_read", "loaded", "quarantined", "duplicates"
        )
        counties[county] = {
            "files": night.to_dicts(),
            **{
                k: v
                for step in ("match", "rules")
                for k, v in steps.get(step, {}).get(county, {}).items()
                if k not in ("seconds", "peak_mib")  # per step, below
            },
        }
    return {
        "runner": runner,
        "counties": counties,
        "failed_sources": dict(failed_sources or {}),
        "rows": steps.get("load", {}).get("*", {}).get("rows", {}),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "peak_mib": dict(peak_mib or {}),
        "stopped": stopped,
    }


def _county_stage(landing: Path) -> Path:
    """``<stage>/<county>/landing/<date>/<source>`` → ``<stage>/<county>``."""
    if landing.parents[1].name != LANDING:
        raise GuardlineError(f"{landing} is not a landing folder")
    return landing.parents[2]
